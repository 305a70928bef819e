"""The synthetic benchmark: presets, determinism, output layout, real MP4s, and the phenomenon it exists
to show (scene predicts the class; motion marks the actions, but only relative to the same video)."""
from __future__ import annotations

import dataclasses
import json
import shutil

import av
import numpy as np
import pytest

from tsplab import datasets as A
from tsplab import benchmark as S
from tsplab.cli import main
from tsplab.datasets.presets import SIZES

TINY = S.SIZES["tiny"]


def motion_energy(frames: np.ndarray) -> np.ndarray:
    """[T - 1]: mean absolute difference between consecutive frames (all pixels and channels)."""
    return np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))


def instance_energies(plan: S.VideoPlan, energy: np.ndarray) -> tuple[list[float], float]:
    """Mean energy inside each instance and over the video's background (frame pairs that are both
    background)."""
    fg = np.zeros(plan.num_frames, bool)
    inside = []
    for start, end, _ in plan.instances:
        fg[start:end] = True
        inside.append(float(energy[start:end - 1].mean()))
    both_bg = ~fg[1:] & ~fg[:-1]
    return inside, float(energy[both_bg].mean())


def test_presets_and_config_validation():
    d = S.SIZES["default"]
    assert (d.num_classes, d.num_train_videos, d.num_val_videos, d.fps, d.frame_size) == (6, 240, 96, 15.0, 64)
    assert d.num_frames_range == (64, 128) and d.per_video_motion_level
    assert (d.clip_length_frames, d.clip_short_side) == (8, 32)
    assert TINY.num_train_videos + TINY.num_val_videos <= 20 and TINY.num_frames_range[1] <= 64
    # A config survives the JSON round trip of benchmark.json (lists back to tuples).
    assert S.SyntheticConfig.from_dict(json.loads(json.dumps(dataclasses.asdict(d)))) == d
    with pytest.raises(ValueError, match="valid sizes: tiny, default"):
        S.plan_benchmark("huge")
    with pytest.raises(ValueError, match="num_classes=9"):
        S.SyntheticConfig(num_classes=9)
    with pytest.raises(ValueError, match="action_amplitude_radii"):
        S.SyntheticConfig(action_amplitude_radii=(1.0, 5.0))


def test_default_plan_is_deterministic_and_well_formed():
    plans = S.plan_benchmark("default", seed=0)
    assert plans == S.plan_benchmark("default", seed=0)
    assert [p.instances for p in plans] != [p.instances for p in S.plan_benchmark("default", seed=1)]
    assert [p.subset for p in plans] == ["training"] * 240 + ["validation"] * 96
    assert len({p.video for p in plans}) == 336
    for subset, per_class in (("training", 40), ("validation", 16)):
        labels = [p.label for p in plans if p.subset == subset]
        assert np.bincount(labels).tolist() == [per_class] * 6

    longest_share = 0.0
    for p in plans:
        assert 1 <= len(p.instances) <= 3 and 64 <= p.num_frames <= 128
        fg = np.zeros(p.num_frames, bool)
        previous_end = None
        for start, end, period in p.instances:
            assert 0 <= start and end <= p.num_frames and end - start >= 8 and 7 <= period <= 9
            if previous_end is not None:
                assert start - previous_end >= 8, p
            previous_end = end
            fg[start:end] = True
            longest_share = max(longest_share, (end - start) / p.num_frames)
        # Every video has a pure-background stretch of at least one 8-frame clip.
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[1], fg.astype(int), [1]]))))[::2]
        assert runs.max() >= 8, p
    assert longest_share > 0.7  # lengths reach "most of the video"

    table = S.instance_table(S.SIZES["default"], plans)
    shares = table["bucket"].value_counts(normalize=True).reindex(SIZES)
    assert (shares > 0.08).all(), shares  # every DETAD bucket holds a fair share
    scene_match = np.mean([p.scene_class == p.label for p in plans])
    assert abs(scene_match - 0.9) < 0.05
    levels = [p.motion_level for p in plans]
    assert min(levels) < 0.05 and max(levels) > 0.95


def test_frames_for_video_is_deterministic():
    v = S.frames_for_video("tiny", 0, "train_0003")
    again = S.frames_for_video("tiny", 0, "train_0003")
    other_seed = S.frames_for_video("tiny", 1, "train_0003")
    assert v.frames.shape == (v.plan.num_frames, 32, 32, 3) and v.frames.dtype == np.uint8
    np.testing.assert_array_equal(v.frames, again.frames)
    np.testing.assert_array_equal(v.frame_labels, again.frame_labels)
    assert not np.array_equal(v.frames[:8], other_seed.frames[:8])
    expected = np.full(v.plan.num_frames, -1)
    for start, end, _ in v.plan.instances:
        expected[start:end] = v.plan.label
    np.testing.assert_array_equal(v.frame_labels, expected)
    with pytest.raises(KeyError, match="train_9999"):
        S.frames_for_video("tiny", 0, "train_9999")


def _energies(config, seed=0):
    inside, background, ratios = [], [], []
    for plan in S.plan_benchmark(config, seed):
        instances, bg = instance_energies(plan, motion_energy(S.render_video(config, plan, seed).frames))
        inside += instances
        background.append(bg)
        ratios += [e / bg for e in instances]
    return np.array(inside), np.array(background), np.array(ratios)


def test_motion_marks_actions_only_relative_to_the_same_video():
    config = dataclasses.replace(TINY, num_train_videos=48, num_val_videos=0)
    inside, background, ratios = _energies(config)
    # Actions move more than their own video's background, for (nearly) every instance.
    assert (ratios > 1.0).mean() >= 0.95 and np.median(ratios) > 1.4, np.sort(ratios)[:5]
    # The GVF knob: the background of lively videos moves more than the actions of calm ones.
    crossed = (background[:, None] > inside[None, :]).mean()
    assert crossed > 0.02, crossed

    # Knob off (the prototype's idle background): absolute motion alone separates them everywhere.
    off = dataclasses.replace(config, per_video_motion_level=False)
    inside_off, background_off, ratios_off = _energies(off)
    assert (ratios_off > 1.5).all() and background_off.max() < inside_off.min()


def test_scene_colour_predicts_the_class():
    config = dataclasses.replace(TINY, num_train_videos=45, num_val_videos=45)
    plans = S.plan_benchmark(config, 0)
    colour = np.array([S.render_video(config, p, 0).frames[0].reshape(-1, 3).mean(0) for p in plans])
    labels = np.array([p.label for p in plans])
    scenes = np.array([p.scene_class for p in plans])
    train = np.array([p.subset == "training" for p in plans])
    # Nearest class centroid of the mean frame colour, fitted on training videos only.
    centroids = np.stack([colour[train & (labels == c)].mean(0) for c in range(config.num_classes)])
    predicted = np.argmin(((colour[~train, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (predicted == scenes[~train]).mean() >= 0.95  # the colour identifies the scene...
    accuracy = (predicted == labels[~train]).mean()
    assert 0.75 <= accuracy <= 1.0, accuracy  # ...which gives the class in about p_scene = 0.9


def test_folder_layout_and_activitynet_json(tiny_benchmark):
    plans = S.plan_benchmark("tiny", 0)
    mapping = json.loads((tiny_benchmark / "action_label_mapping.json").read_text())
    assert mapping == sorted(mapping) == S.class_names(TINY)
    ann = json.loads((tiny_benchmark / "annotations.json").read_text())
    assert ann == S.activitynet_json(TINY, plans)  # the file is the plan, deterministically
    db = ann["database"]
    assert sorted(db) == sorted(p.video for p in plans)
    assert sorted(p.name for p in (tiny_benchmark / "videos").glob("*.mp4")) == sorted(f"{v}.mp4" for v in db)
    assert {v["subset"] for v in db.values()} == {"training", "validation"}
    assert sum(v["subset"] == "training" for v in db.values()) == 12
    for video, entry in db.items():
        assert entry["fps"] == 15.0 and entry["duration"] == pytest.approx(entry["num_frames"] / 15.0)
        assert 1 <= len(entry["annotations"]) <= 3
        for a in entry["annotations"]:
            start, end = a["segment"]
            assert 0 <= start < end <= entry["duration"], (video, a)
            assert a["label"] in mapping
    meta = json.loads((tiny_benchmark / "benchmark.json").read_text())
    assert meta["complete"] and meta["seed"] == 0
    assert S.SyntheticConfig.from_dict(meta["config"]) == TINY
    assert S.read_benchmark_config(tiny_benchmark) == (TINY, 0)
    summary = S.benchmark_summary(tiny_benchmark)
    assert summary["videos"].tolist() == [12, 6]
    assert summary[list(SIZES)].to_numpy().sum() == sum(len(p.instances) for p in plans)


def test_annotation_reader_and_segment_table_accept_it(tmp_path):
    config = S.SIZES["default"]
    plans = S.plan_benchmark(config, 0)
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(S.activitynet_json(config, plans)))
    ann = A.read_annotations(path)
    assert len(ann.videos) == 336 and ann.labels == S.class_names(config)
    assert len(ann.instances) == sum(len(p.instances) for p in plans)
    # Every video yields background rows of one clip (8 frames); half a frame of slack because the
    # table compares float seconds and a gap of exactly 8 frames can come out 1e-16 s short.
    table, report = A.build_segment_table(ann, min_background_s=7.5 / config.fps)
    assert report.empty
    background = table[table["temporal-region-label"] == "No action"]
    assert set(background["video-name"]) == {p.video for p in plans}


def test_videos_decode_and_keep_their_motion(tiny_benchmark):
    ratios = []
    for plan in S.plan_benchmark("tiny", 0):
        with av.open(str(tiny_benchmark / "videos" / f"{plan.video}.mp4")) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and float(stream.average_rate) == 15.0
            decoded = [(f.to_ndarray(format="rgb24"), f.key_frame) for f in container.decode(stream)]
        frames = np.stack([f for f, _ in decoded])
        assert frames.shape == (plan.num_frames, 32, 32, 3), plan.video
        # A keyframe every second (15 frames) and nowhere else.
        assert [i for i, (_, key) in enumerate(decoded) if key] == list(range(0, plan.num_frames, 15))
        if plan.video == "train_0000":
            rendered = S.render_video(TINY, plan, 0).frames
            assert np.abs(frames.astype(float) - rendered).mean() < 6.0  # yuv420p + crf 18 loss
        instances, bg = instance_energies(plan, motion_energy(frames))
        ratios += [e / bg for e in instances]
    # After H.264 compression the actions still move more than their own background.
    assert (np.array(ratios) > 1.0).mean() >= 0.9, sorted(ratios)[:5]


def test_rerun_is_a_no_op_and_a_killed_run_resumes(tiny_benchmark, tmp_path):
    out = tmp_path / "bench"
    shutil.copytree(tiny_benchmark, out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert S.generate_benchmark(out, "tiny", seed=0, workers=1, progress=False) == out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps

    # A killed run: manifest not complete, two videos never written.
    lost = [out / "videos" / "train_0001.mp4", out / "videos" / "val_0002.mp4"]
    original = {p: p.read_bytes() for p in lost}
    for p in lost:
        p.unlink()
    meta = json.loads((out / "benchmark.json").read_text())
    (out / "benchmark.json").write_text(json.dumps({"config": meta["config"], "seed": 0, "complete": False}))
    S.generate_benchmark(out, "tiny", seed=0, workers=2, progress=False)
    assert json.loads((out / "benchmark.json").read_text())["complete"]
    for p, data in original.items():
        assert p.read_bytes() == data  # same frames, same encoder build: same bytes
    kept = [p for p in stamps if p.suffix == ".mp4" and p not in lost]
    assert all(p.stat().st_mtime_ns == stamps[p] for p in kept)  # finished videos were not redone

    with pytest.raises(ValueError, match="another config or seed"):
        S.generate_benchmark(out, "tiny", seed=1, progress=False)


def test_cli_synth_prints_the_summary(tiny_benchmark, tmp_path, capsys):
    out = tmp_path / "bench"
    shutil.copytree(tiny_benchmark, out)
    assert main(["synth", "--size", "tiny", "--out", str(out), "--seed", "0"]) == 0
    printed = capsys.readouterr().out
    assert "training" in printed and "validation" in printed and "XS" in printed
