"""The benchmark dials (tsplab.benchmark.dials) and their manipulation checks
(tsplab.benchmark.checks): with every dial off the benchmark is main's, byte for byte; each dial
moves its own check in the direction it exists for."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from pathlib import Path

import numpy as np
import pytest

from tsplab import datasets as A
from tsplab import benchmark as S
from tsplab.benchmark import checks as C
from tsplab.benchmark import dials as D
from tsplab.benchmark import generate as G
from tsplab.cli import main
from tsplab.errors import InputError

TINY = S.SIZES["tiny"]
REFERENCE = json.loads((Path(__file__).with_name("synthetic_tiny_seed0_hashes.json")).read_text())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _manifest(path: Path) -> str:
    """A manifest's hash without its MP4 byte count (see below)."""
    meta = json.loads(path.read_text())
    meta["summary"].pop("video_bytes")
    return _sha(json.dumps(meta, sort_keys=True).encode())


def _without_label_ids(path: Path) -> bytes:
    """A label file's bytes; an annotation file's as its writer (``tsplab.runs.write_json``) writes it
    without each action's ``label_id``, which was added after the hashes were recorded (ActionFormer
    needs it, issue 23) and must be the label's index in the folder's ``action_label_mapping.json``."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "database" not in data:
        return path.read_bytes()
    mapping = json.loads((path.parent / "action_label_mapping.json").read_text())
    for video in data["database"].values():
        for action in video["annotations"]:
            assert mapping[action.pop("label_id")] == action["label"], (path, action)
    return (json.dumps(data, indent=2) + "\n").encode()


def test_all_dials_off_is_byte_identical_to_main(tiny_benchmark):
    """The tiny benchmark (seed 0, source set included) generated with every dial off is main's
    before the dials existed (hashes recorded then, ``synthetic_tiny_seed0_hashes.json``): the label
    files byte for byte (an annotation file less the ``label_id`` added since), the manifests, the list of videos, and every video's rendered frames and
    frame labels -- everything the H.264 encoder is given. The MP4 bytes themselves are not compared:
    x264 with its default threads was seen to encode one video three ways in one process on a
    loaded 2-core machine, with unchanged code."""
    for name, digest in REFERENCE["labels"].items():
        assert _sha(_without_label_ids(tiny_benchmark / name)) == digest, name
    for name, digest in REFERENCE["manifests"].items():
        assert _manifest(tiny_benchmark / name) == digest, name
    assert sorted(str(p.relative_to(tiny_benchmark)) for p in tiny_benchmark.rglob("*.mp4")) == REFERENCE["videos"]
    env = REFERENCE["environment"]
    if (np.__version__, platform.machine()) != (env["numpy"], env["machine"]):
        pytest.skip(f"frames recorded with {env}: numpy's vectorised sin/exp may differ in the last bit elsewhere")
    frames = {}
    for plan in S.plan_benchmark("tiny", 0) + S.plan_source("tiny", 0):
        video = S.render_video("tiny", plan, 0)
        frames[plan.video] = _sha(video.frames.tobytes() + video.frame_labels.astype(np.int64).tobytes())
    assert frames == REFERENCE["frames"]


def _with(size="tiny", **levels):
    return dataclasses.replace(S.SIZES[size], dials=D.BenchmarkDials(**levels))


def test_dials_validate_parse_and_are_recorded_only_when_on():
    assert S.SyntheticConfig(dials=D.BenchmarkDials()) == S.SIZES["default"]  # all off: the plain config
    assert D.parse_dial_options([]) is None
    dials = D.parse_dial_options(["context_distractors=0.5", "onset_cue=1", "onset_cue_kind=size"])
    assert (dials.context_distractors, dials.onset_cue, dials.onset_cue_kind) == (0.5, 1.0, "size")
    for option, message in (("context_distractors=1.5", r"context_distractors=1.5: must be in \[0, 1\]"),
                            ("cuts_elsewhere=x", r"cuts_elsewhere must be a number in \[0, 4\]"),
                            ("foreground_share=0.01", r"foreground_share=0.01: must be in 0 or \[0.05, 0.85\]"),
                            ("loudness=1", "NAME one of context_distractors"),
                            ("onset_cue_kind=smell", "onset_cue_kind='smell': must be one of colour, size")):
        with pytest.raises(InputError, match=message):
            D.parse_dial_options([option])
    config = _with(dense=0.5)
    assert S.SyntheticConfig.from_dict(json.loads(json.dumps(G._identity(config, 0)["config"]))) == config
    assert "dials" not in G._identity(S.SIZES["tiny"], 0)["config"]


def test_cli_synth_records_the_dials(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["synth", "--size", "tiny", "--out", str(out), "--workers", "1",
                 "--option", "context_distractors=0.5", "--option", "onset_cue=0.25"]) == 0
    meta = json.loads((out / "benchmark.json").read_text())
    assert meta["config"]["dials"]["context_distractors"] == 0.5 and meta["config"]["dials"]["onset_cue"] == 0.25
    assert S.read_benchmark_config(out)[0] == _with(context_distractors=0.5, onset_cue=0.25)
    # The same folder with other dials is another benchmark: refused, not mixed.
    with pytest.raises(InputError, match="another config or seed .dials: context_distractors 0.5 there, 0.0 "
                                         "asked; dials: onset_cue 0.25 there, 0.5 asked"):
        S.generate_benchmark(out, "tiny", 0, workers=1, progress=False, dials={"onset_cue": 0.5})
    assert main(["synth", "--size", "tiny", "--out", str(tmp_path / "b2"), "--option", "dense=2"]) == 2
    assert "dense=2: must be in [0, 1]" in capsys.readouterr().err


def test_context_distractors_put_class_motion_in_the_background():
    plans = S.plan_benchmark(_with(context_distractors=1.0), 0)
    plain = S.plan_benchmark("tiny", 0)
    for p, q in zip(plans, plain):
        assert (p.instances, p.scene_class, p.num_frames) == (q.instances, q.scene_class, q.num_frames)
        background = ~D.foreground_mask(p.num_frames, p.instances)
        covered = D.foreground_mask(p.num_frames, [d[:2] for d in p.distractors])
        assert not (covered & ~background).any()             # only in the background...
        assert covered.sum() >= background.sum() - 1 * (len(p.instances) + 1)  # ...all of it at level 1
        assert all(d[3] != p.label for d in p.distractors)   # another class's motion
        video = S.render_video(_with(context_distractors=1.0), p, 0)
        assert (video.foreground == D.foreground_mask(p.num_frames, p.instances)).all()  # still background


def test_clip_local_classifier_falls_towards_chance_with_distractors():
    aucs = [C.clip_local_foreground_auc(_with(context_distractors=level), 0)["auc"] for level in (0.0, 0.5, 1.0)]
    assert C.clip_local_foreground_auc("tiny", 0)["auc"] == aucs[0] >= 0.95  # motion alone decides today
    assert aucs[0] > aucs[1] > aucs[2] and aucs[2] < 0.75, aucs


def test_auc_and_logistic_regression_against_known_answers():
    assert C.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75  # sklearn's example
    assert C.auc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = x[:, 0] + 0.1 * rng.normal(size=400) > 0
    result = C.heldout_auc(x[:200], y[:200], x[200:], y[200:])
    assert result["auc"] > 0.99 and result["accuracy"] > 0.9
    noise = C.heldout_auc(x[:200], rng.random(200) > 0.5, x[200:], rng.random(200) > 0.5)
    assert abs(noise["auc"] - 0.5) < 0.15


def test_foreground_share_sets_the_share_of_action_frames():
    for level in (0.2, 0.5, 0.8):
        plans = S.plan_benchmark(_with("default", foreground_share=level), 0)
        shares = [D.foreground_mask(p.num_frames, p.instances).mean() for p in plans]
        assert abs(np.mean(shares) - level) < 0.03, (level, np.mean(shares))
        for p in plans:  # the plain benchmark's rules still hold: gaps and a pure background stretch
            assert all(b[0] - a[1] >= 8 for a, b in zip(p.instances, p.instances[1:]))
            assert D._longest_run(~D.foreground_mask(p.num_frames, p.instances)) >= 8


def test_source_shift_changes_only_the_source_set_and_is_measurable():
    shifted = _with(source_shift=1.0, source_shared_motions=0.6)
    for plan in S.plan_benchmark("tiny", 0)[:4]:  # target videos: untouched, pixel for pixel
        assert np.array_equal(S.render_video(shifted, plan, 0).frames, S.render_video("tiny", plan, 0).frames)
    names = S.source_class_names(shifted)  # 5 source classes, 3 of them performing target motions
    assert names[:2] == S.source_class_names("tiny")[:2]
    assert names[2:] == ["src02_horizontal", "src03_vertical", "src04_circle"]
    plan = S.plan_source(shifted, 0)[0]
    assert plan.motion == names[plan.label].split("_", 1)[1]
    plain = C.pixel_domain_auc("tiny", 0)["auc"]
    assert C.pixel_domain_auc(shifted, 0)["auc"] >= max(0.9, plain + 0.2)
    # The same classifier on any features: one distribution vs two.
    rng = np.random.default_rng(0)
    same = C.domain_auc(rng.normal(size=(200, 4)), rng.normal(size=(200, 4)))["auc"]
    apart = C.domain_auc(rng.normal(size=(200, 4)) + 2, rng.normal(size=(200, 4)))["auc"]
    assert abs(same - 0.5) < 0.12 and apart > 0.95


def test_feature_folder_domain_auc_reads_extracted_features(tmp_path):
    rng = np.random.default_rng(1)
    for domain, shift in (("source", 3.0), ("target", 0.0)):
        (tmp_path / domain).mkdir()
        for v in range(10):
            np.save(tmp_path / domain / f"{domain}_{v}.npy", rng.normal(size=(12, 5)).astype(np.float32) + shift)
    assert C.feature_folder_domain_auc(tmp_path / "source", tmp_path / "target")["auc"] > 0.99
    assert C.feature_folder_domain_auc(tmp_path / "source", tmp_path / "source")["auc"] == pytest.approx(0.5, abs=0.15)
    with pytest.raises(InputError, match="target_folder: .* holds no .npy feature files"):
        C.feature_folder_domain_auc(tmp_path / "source", tmp_path / "empty")


def test_cuts_land_where_the_dials_put_them_and_are_seen_in_the_frames():
    plain = C.rendered_cut_statistics("tiny", 0)
    assert plain["boundary_cut_share"] == 0.0 and plain["cuts_elsewhere_per_video"] == 0.0  # no false cuts
    assert C.rendered_cut_statistics(_with(cuts_at_boundaries=1.0), 0)["boundary_cut_share"] == 1.0
    config = _with(cuts_elsewhere=2.0)
    plans = [p for p in S.plan_benchmark(config, 0) if p.subset == "validation"]
    for p in plans:
        bounds = [b for s, e, _ in p.instances for b in (s, e) if 0 < b < p.num_frames]
        assert all(min(abs(c - b) for b in bounds) >= D.CUT_MARGIN_FRAMES for c in p.cuts)
        assert list(C.detect_cuts(S.render_video(config, p, 0).frames)) == p.cuts
    stats = C.rendered_cut_statistics(config, 0)
    assert stats["boundary_cut_share"] == 0.0
    assert stats["cuts_elsewhere_per_video"] == sum(len(p.cuts) for p in plans) / len(plans) > 0


def test_multi_action_gives_several_classes_per_video():
    config = _with(multi_action=1.0)
    plans = S.plan_benchmark(config, 0)
    for p in plans:
        assert p.instance_labels[0] == p.label and all(c != p.label for c in p.instance_labels[1:])
        video = S.render_video(config, p, 0)
        for (s, e, _), c in zip(p.instances, p.instance_labels):
            assert (video.frame_labels[s:e] == c).all()
    table = S.instance_table(config, plans)
    assert C.overlap_statistics(table)["classes_per_video"] > 1.5
    assert C.overlap_statistics(S.instance_table(TINY, S.plan_benchmark("tiny", 0)))["classes_per_video"] == 1.0


def test_dense_overlaps_reach_the_annotations_and_the_segment_table(tmp_path):
    config = _with("default", dense=1.0)
    plans = S.plan_benchmark(config, 0)
    stats = C.overlap_statistics(S.instance_table(config, plans))
    assert stats["overlap_time_share"] > 0.2 and stats["overlapping_instance_share"] > 0.5
    for p in plans:
        assert D._longest_run(~D.foreground_mask(p.num_frames, p.instances)) >= 8  # pure background left
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(S.activitynet_json(config, plans)))
    ann = A.read_annotations(path)
    assert len(ann.instances) == sum(len(p.instances) for p in plans)  # every overlapping instance kept
    table, report = A.build_segment_table(ann, min_background_s=7.5 / config.fps, overlap_free_background=True)
    assert report.empty
    actions = table[table["temporal-region-label"] == "Action"]
    background = table[table["temporal-region-label"] == "No action"]
    assert len(actions) == len(ann.instances)
    joined = background.merge(actions, on="video-name", suffixes=("", "_a"))
    assert not ((joined["t-start"] < joined["t-end_a"]) & (joined["t-start_a"] < joined["t-end"])).any()


def test_onset_cue_changes_only_onset_frames_and_is_measurable():
    for kind in ("colour", "size"):
        config = _with(onset_cue=1.0, onset_cue_kind=kind)
        for plan in S.plan_benchmark(config, 0)[:4]:
            changed = (S.render_video(config, plan, 0).frames != S.render_video("tiny", plan, 0).frames).any((1, 2, 3))
            onset = D.foreground_mask(plan.num_frames, [(s, s + D.ONSET_FRAMES) for s, _, _ in plan.instances])
            assert changed[onset].all() and not changed[~onset].any(), (kind, plan.video)
        assert C.onset_appearance_auc(config, 0)["auc"] > 0.95
        for plan in S.plan_source(config, 0)[:3]:  # a target dial leaves the source set as it was
            assert np.array_equal(S.render_video(config, plan, 0).frames, S.render_video("tiny", plan, 0).frames)
    assert C.onset_appearance_auc("tiny", 0)["auc"] < 0.75


def test_check_table_and_its_figures():
    import matplotlib.pyplot as plt

    from tsplab import plots

    table = C.check_table("tiny", 0, {"multi_action": [0.0, 1.0], "dense": [0.0, 1.0]})
    assert table[["dial", "level"]].values.tolist() == [["multi_action", 0.0], ["multi_action", 1.0],
                                                       ["dense", 0.0], ["dense", 1.0]]
    assert table["value"].tolist()[0] == 1.0 and table["value"].tolist()[2] == 0.0
    with pytest.raises(InputError, match="no check for dial 'loudness'"):
        C.check_table("tiny", 0, {"loudness": [1.0]})
    plt.close(plots.plot_check_curves(table))
    video = S.render_video(_with(cuts_elsewhere=2.0), S.plan_benchmark(_with(cuts_elsewhere=2.0), 0)[0], 0)
    fig = plots.plot_dial_frames({"plain": S.render_video("tiny", S.plan_benchmark("tiny", 0)[0], 0),
                                            "cuts": video}, frames_shown=4)
    assert len(fig.axes) == 8
    plt.close(fig)
