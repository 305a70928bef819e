"""The synthetic benchmark's source stage (Kinetics' role, TSP §3.3 and §4.1): the trimmed,
class-labelled source set, TAC on it as every method's initial encoder (``weights="source"``), and
TSP's frozen GVF computed with that encoder."""
from __future__ import annotations

import dataclasses
import json
import shutil

import av
import numpy as np
import pytest

from tsplab import benchmark as B
from tsplab.errors import InputError
from tsplab.pretrain import source as source_stage
from tsplab.video import decode_frames

pytestmark = pytest.mark.filterwarnings("ignore:.*segments dropped")


@pytest.fixture(scope="module")
def bench(tiny_benchmark, tmp_path_factory):
    """A copy of the tiny benchmark without a source encoder (other tests may have trained one into
    the shared fixture), so that this module sees the first training happen."""
    out = tmp_path_factory.mktemp("source") / "bench"
    shutil.copytree(tiny_benchmark, out, ignore=shutil.ignore_patterns(B.SOURCE_ENCODER_DIR))
    return out


@pytest.fixture(scope="module")
def trained(bench):
    """``(checkpoint, number of pretrain calls)``: the first ensure_source_encoder trains, once."""
    calls = []
    real = source_stage.run_pretraining
    mp = pytest.MonkeyPatch()
    mp.setattr(source_stage, "run_pretraining", lambda config, **kw: calls.append(config) or real(config, **kw))
    try:
        path = source_stage.ensure_source_encoder(bench, progress=False)
    finally:
        mp.undo()
    return path, calls


# --------------------------------------------------------------------------------------- the data
def test_source_sizes_follow_one_rule():
    assert B.source_config("default") == B.SourceConfig(8, 480, 96, (24, 48))
    assert B.source_config("tiny") == B.SourceConfig(5, 24, 6, (24, 48))


def test_source_set_is_trimmed_with_classes_of_its_own(bench):
    plans = B.plan_source("tiny", 0)
    ann = json.loads((bench / "source" / "annotations.json").read_text())
    assert ann == B.activitynet_json(B.SIZES["tiny"], plans)  # the file is the plan
    db = ann["database"]
    assert sorted(p.name for p in (bench / "source" / "videos").glob("*.mp4")) == sorted(f"{v}.mp4" for v in db)
    assert [v["subset"] for v in db.values()] == ["training"] * 24 + ["validation"] * 6
    for video, entry in db.items():
        # Trimmed: one instance, spanning the whole video.
        assert [a["segment"] for a in entry["annotations"]] == [[0.0, entry["num_frames"] / 15.0]], video
        assert 24 <= entry["num_frames"] <= 48
    names = json.loads((bench / "source" / "action_label_mapping.json").read_text())
    target = json.loads((bench / "action_label_mapping.json").read_text())
    assert names == ["src00_square", "src01_triangle", "src02_swing", "src03_shake", "src04_ellipse"]
    assert not set(names) & set(target)
    # Classes differ in what they do, not only in name: no source motion is a target motion.
    assert not {p.motion for p in plans} & {p.motion for p in B.plan_benchmark("tiny", 0)}
    assert np.bincount([p.label for p in plans if p.subset == "training"]).tolist() == [5, 5, 5, 5, 4]
    # Every frame of a source video is inside its action.
    video = B.frames_for_video("tiny", 0, "src_val_0002")
    assert (video.frame_labels == video.plan.label).all() and video.frames.shape[1:] == (32, 32, 3)
    manifest = json.loads((bench / "source" / "source.json").read_text())
    assert manifest["complete"] and manifest["benchmark"]["seed"] == 0
    assert B.source_summary(bench)["videos"].tolist() == [24, 6]


def test_source_set_is_the_same_world_with_other_scenes(bench):
    with av.open(str(bench / "source" / "videos" / "src_train_0000.mp4")) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 15.0
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    assert frames.shape == (B.plan_source("tiny", 0)[0].num_frames, 32, 32, 3)  # the target's frame size
    # Other palettes: the source scenes' hues are not the target classes'.
    target = {round(p["background_hsv"][0], 6) for p in B.class_palette("tiny", 0)}
    source = {round(p["background_hsv"][0], 6) for p in B.source_palette("tiny", 0)}
    assert len(source) == 3 and not source & target
    # Classes share scenes two by two (as Kinetics' classes share places): the scene narrows a clip
    # down to two classes and the motion must tell which.
    assert [B.source_scene_of(c) for c in range(5)] == [0, 0, 1, 1, 2]
    plans = B.plan_source(dataclasses.replace(B.SIZES["tiny"], num_train_videos=200), 0)
    own = np.mean([p.scene_class == B.source_scene_of(p.label) for p in plans])
    assert abs(own - 0.9) < 0.05 and {p.scene_class for p in plans} == {0, 1, 2}


def test_source_plan_is_deterministic_and_leaves_the_target_unchanged():
    assert B.plan_source("tiny", 0) == B.plan_source("tiny", 0)
    assert [p.num_frames for p in B.plan_source("tiny", 0)] != [p.num_frames for p in B.plan_source("tiny", 1)]
    np.testing.assert_array_equal(B.frames_for_video("tiny", 0, "src_train_0003").frames,
                                  B.frames_for_video("tiny", 0, "src_train_0003").frames)
    # The target's pixels come from streams of their own: a source video is no target video re-used.
    assert not np.array_equal(B.frames_for_video("tiny", 0, "src_train_0000").frames[:8],
                              B.frames_for_video("tiny", 0, "train_0000").frames[:8])


def _saved(folder, data: bytes):
    path = folder / "original.mp4"
    path.write_bytes(data)
    return path


def test_a_killed_source_generation_resumes(bench, tmp_path):
    out = tmp_path / "bench"
    shutil.copytree(bench, out, ignore=shutil.ignore_patterns(B.SOURCE_ENCODER_DIR))
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    B.generate_benchmark(out, "tiny", seed=0, workers=1, progress=False)  # complete: nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps
    lost = out / "source" / "videos" / "src_val_0001.mp4"
    data = lost.read_bytes()
    lost.unlink()
    manifest = json.loads((out / "source" / "source.json").read_text())
    (out / "source" / "source.json").write_text(json.dumps({**manifest, "complete": False}))
    B.generate_benchmark(out, "tiny", seed=0, workers=1, progress=False)
    assert json.loads((out / "source" / "source.json").read_text())["complete"]
    # The same video, judged by its frames: x264 encoding in a process that has done much other work
    # was once seen (CI) to give other bytes for the same frames (process state such as the FPU mode
    # or the scaler's buffers); the resume's promise is the video, and spawned workers' bytes are
    # pinned in test_synthetic.
    regenerated, original = decode_frames(lost), decode_frames(_saved(tmp_path, data))
    assert regenerated.shape == original.shape
    assert np.abs(regenerated.astype(float) - original).mean() < 2.0  # two encodings of one video
    rendered = B.frames_for_video("tiny", 0, "src_val_0001").frames
    assert np.abs(regenerated.astype(float) - rendered).mean() < 6.0  # yuv420p + crf 18 loss
    kept = [p for p in stamps if p.suffix == ".mp4" and p != lost]
    assert all(p.stat().st_mtime_ns == stamps[p] for p in kept)


# ------------------------------------------------------------------------------ the source encoder
def test_ensure_source_encoder_trains_once_then_reuses(bench, trained, monkeypatch):
    from tsplab.pretrain import read_metrics

    path, calls = trained
    assert path == source_stage.source_encoder_path(bench) == bench / "source_encoder" / "pretrain" / "tac" / "best.pt"
    assert path.is_file() and len(calls) == 1
    config = calls[0]
    # TAC on the source set, from random weights, with the synthetic recipe's settings and the
    # benchmark's clip (tiny: 16 px frames, crop 14).
    assert (config.method, config.weights, config.dataset_dir) == ("tac", None, str(bench / "source"))
    assert (config.epochs, config.optimizer, config.resize_short_side, config.crop_size) == (4, "adam", 16, 14)
    assert read_metrics(path.parent)["epoch"].tolist() == [0, 1, 2, 3]
    done = json.loads((bench / "source_encoder" / "source_encoder.json").read_text())
    assert done["complete"] and done["seed"] == 0
    assert source_stage.source_encoder_summary(bench)["best"].sum() == 1

    stamp = path.stat().st_mtime_ns
    monkeypatch.setattr(source_stage, "run_pretraining", lambda *a, **k: pytest.fail("trained a second time"))
    assert source_stage.ensure_source_encoder(bench, progress=False) == path
    assert path.stat().st_mtime_ns == stamp
    with pytest.raises(InputError, match="trained with seed 0, not 1"):
        source_stage.ensure_source_encoder(bench, seed=1, progress=False)


def test_ensure_source_encoder_refuses_a_folder_without_a_benchmark(tmp_path):
    other = tmp_path / "activitynet"
    other.mkdir()
    (other / "annotations.json").write_text("{}")
    with pytest.raises(InputError, match="is not a synthetic benchmark") as error:
        source_stage.ensure_source_encoder(other)
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in other.iterdir()) == ["annotations.json"]  # nothing written


def test_weights_source_is_the_synthetic_default_and_resolves_to_the_benchmarks_encoder(bench, trained):
    from tsplab.pretrain.recipes import pretrain_config
    from tsplab.pretrain.source import resolve_weights

    config = pretrain_config("synthetic", method="tsp", dataset_dir=str(bench))
    assert config.weights == "source"
    resolved = resolve_weights(config)
    assert resolved.weights == str(trained[0]) and resolved.dataset_dir == config.dataset_dir
    assert resolve_weights(pretrain_config("synthetic", dataset_dir=str(bench), weights=None)).weights is None
    with pytest.raises(InputError, match="backbone='r2plus1d_18': weights='source' is a r2plus1d_tiny"):
        resolve_weights(pretrain_config("synthetic", dataset_dir=str(bench), backbone="r2plus1d_18"))


def test_weights_source_on_another_dataset_is_one_line_before_any_write(tmp_path, capsys):
    from tsplab.cli import main

    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    (data / "annotations.json").write_text(json.dumps({"database": {"train_0000": {
        "subset": "training", "duration": 4.0, "annotations": [{"segment": [1.0, 2.0], "label": "a"}]}}}))
    run = tmp_path / "run"
    code = main(["pretrain", "--recipe", "synthetic", "--method", "tac", "--dataset", str(data),
                 "--run-dir", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("tsplab pretrain: error: dataset_dir: ")
    assert "is not a synthetic benchmark" in err[0] and "weights=kinetics400" in err[0]
    assert not run.exists()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:no checkpoint given")
def test_frozen_gvf_is_the_max_pool_of_the_source_encoder(bench, trained, tmp_path):
    """TSP §3.3: the frozen GVF of each video is the max over its clip features computed by the
    *initial* encoder. Checked against features extracted by the extraction path (its own decoding)
    from the source checkpoint, on the GVF's clip grid (stride = one clip)."""
    from tsplab.features import read_gvf_h5
    from tsplab.features.config import ExtractionConfig
    from tsplab.features.extraction import extract_features
    from tsplab.pretrain import pretrain
    from tsplab.pretrain.recipes import pretrain_config

    config = pretrain_config("synthetic", method="tsp", dataset_dir=str(bench), run_dir=str(tmp_path / "run"),
                             epochs=1, max_steps_per_epoch=1, batch_size=8, workers=0, progress=False)
    pretrain(config)
    out = config.output_dir
    assert json.loads((out / "config.json").read_text())["weights"] == str(trained[0])
    gvf = read_gvf_h5(out / "gvf_initial_max.h5")

    def pooled(checkpoint, name, **random):
        extract_features(ExtractionConfig(videos=str(bench / "videos"), out_dir=str(tmp_path / name),
                                          checkpoint=str(checkpoint) if checkpoint else None, stride_frames=8,
                                          batch_size=16, **random))
        return {v: np.load(tmp_path / name / f"{v}.npy").max(axis=0) for v in gvf}

    source = pooled(trained[0], "source")
    assert len(gvf) == 12  # the training videos: the recipe validates on held-out training videos
    for video, value in gvf.items():
        np.testing.assert_allclose(value, source[video], rtol=1e-4, atol=1e-5, err_msg=video)
    # Not just any encoder's: a randomly initialised one gives other GVFs.
    rand = pooled(None, "random", backbone="r2plus1d_tiny", clip_length_frames=8, frame_rate=15.0,
                  short_side=16, crop_size=14)
    assert not np.allclose(gvf["train_0000"], rand["train_0000"], rtol=1e-2, atol=1e-3)
