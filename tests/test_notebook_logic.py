"""The library functions that hold what used to be notebook-only logic (issue 11): the parameter
check every notebook runs first, the benchmark-generation rule of 03/04, the encoder choice of 04,
the per-method configs and their short table of 03, the pretend detectors of 06, the feature-folder
check of 05/07, and the video tables of 02. Each one here can fail: values are hand-computed or
follow from the rule the docstring states."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tsplab.errors import InputError, check_choice


# --- tsplab.errors.check_choice -------------------------------------------------------------------

def test_check_choice_accepts_valid_values_and_lists():
    check_choice("method", "tsp", ["tac", "tsp"])
    check_choice("method", ["tac", "tsp"], {"tac": 1, "tsp": 2}, several=True)  # a dict: its keys
    check_choice("method", ("tsp",), ["tac", "tsp"], several=True)


@pytest.mark.parametrize("value, several, expected", [
    ("tps", False, "method: 'tps' is not a valid choice; valid: tac, tsp"),
    (["tac", "tps"], True, "method: 'tps' is not a valid choice; valid: tac, tsp"),
    ([], True, "method: no value given; give one or more of: tac, tsp"),
    (["tac"], False, "method: ['tac'] is not a valid choice; valid: tac, tsp"),  # a list where one name is due
    (None, False, "method: None is not a valid choice; valid: tac, tsp"),
])
def test_check_choice_names_the_parameter_the_value_and_every_choice(value, several, expected):
    with pytest.raises(InputError) as error:
        check_choice("method", value, ["tac", "tsp"], several=several)
    assert str(error.value) == expected
    assert "\n" not in str(error.value)


# --- tsplab.synthetic.ensure_benchmark ------------------------------------------------------------

@pytest.fixture
def generate_calls(monkeypatch):
    """Records the calls ensure_benchmark makes to generate_benchmark (nothing is generated)."""
    from tsplab import synthetic

    calls = []
    monkeypatch.setattr(synthetic, "generate_benchmark", lambda *args, **kwargs: calls.append((args, kwargs)))
    return calls


def test_ensure_benchmark_generates_into_an_empty_folder(generate_calls, tmp_path):
    from tsplab.synthetic import ensure_benchmark

    assert ensure_benchmark(tmp_path / "bench", "default", seed=3, workers=1) == tmp_path / "bench"
    assert generate_calls == [((tmp_path / "bench", "default", 3), {"workers": 1})]


def test_ensure_benchmark_resumes_a_synthetic_benchmark_but_never_writes_into_another_dataset(
        generate_calls, tmp_path):
    from tsplab.synthetic import ensure_benchmark

    other = tmp_path / "activitynet"
    other.mkdir()
    (other / "annotations.json").write_text("{}")
    ensure_benchmark(other, "tiny")
    assert generate_calls == []  # annotations.json without benchmark.json: left alone

    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "annotations.json").write_text("{}")
    (bench / "benchmark.json").write_text("{}")
    ensure_benchmark(bench, "tiny")
    assert generate_calls == [((bench, "tiny", 0), {})]  # generate_benchmark decides: done, resume, refuse


def test_ensure_benchmark_refuses_a_benchmark_of_another_size(tiny_benchmark):
    from tsplab.synthetic import ensure_benchmark

    before = (tiny_benchmark / "benchmark.json").read_bytes()
    with pytest.raises(InputError, match="another config or seed"):
        ensure_benchmark(tiny_benchmark, "default")
    assert (tiny_benchmark / "benchmark.json").read_bytes() == before
    assert ensure_benchmark(tiny_benchmark, "tiny", workers=1, progress=False) == tiny_benchmark  # complete: as is
    assert (tiny_benchmark / "benchmark.json").read_bytes() == before


# --- tsplab.backbones.choose_encoders (notebook 04) ----------------------------------------------

def _run_with_checkpoint(run_dir, name):
    folder = run_dir / "pretrain" / name
    folder.mkdir(parents=True)
    (folder / "best.pt").write_bytes(b"")  # resolve_checkpoint only looks for the file
    return folder


def test_choose_encoders_takes_each_methods_run(tmp_path):
    from tsplab.backbones import choose_encoders

    tac, tsp = _run_with_checkpoint(tmp_path, "tac"), _run_with_checkpoint(tmp_path, "tsp")
    assert choose_encoders(tmp_path, ["tac", "tsp"]) == {"tac": tac, "tsp": tsp}
    assert choose_encoders(tmp_path, "tsp") == {"tsp": tsp}
    assert choose_encoders(tmp_path, ["tsp", "random"]) == {"tsp": tsp, "random": None}
    assert choose_encoders(tmp_path, "random") == {"random": None}


def test_choose_encoders_a_given_checkpoint_is_the_only_one(tmp_path):
    from tsplab.backbones import choose_encoders

    folder = _run_with_checkpoint(tmp_path, "tsp_nogvf")
    assert choose_encoders(tmp_path, ["tac"], checkpoint=str(folder)) == {"tsp_nogvf": folder}
    assert choose_encoders(tmp_path, "tac", checkpoint=str(folder / "best.pt")) == {"best": folder / "best.pt"}
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        choose_encoders(tmp_path, "tac", checkpoint=str(tmp_path / "nothing_here"))


def test_choose_encoders_never_falls_back_to_random_weights(tmp_path):
    from tsplab.backbones import choose_encoders

    with pytest.raises(InputError, match=r"method: 'tps' is not a valid choice; valid: tac, tsp, bsp, pal, random"):
        choose_encoders(tmp_path, ["tac", "tps"])
    _run_with_checkpoint(tmp_path, "tac")
    (tmp_path / "pretrain" / "bsp").mkdir()  # a run folder without a checkpoint is not a run found
    with pytest.raises(InputError) as error:
        choose_encoders(tmp_path, ["tac", "tsp"])
    message = str(error.value)
    assert message.startswith("method: no pretraining run with a checkpoint for tsp under ")
    assert "(runs found: tac)" in message and "method='random'" in message and "\n" not in message


# --- tsplab.features.config.encoder_extraction_config --------------------------------------------

def test_encoder_extraction_config_checkpoint_brings_its_own_settings(tmp_path):
    from tsplab.features.config import encoder_extraction_config

    clip = dict(clip_length_frames=8, frame_rate=15.0, short_side=16, crop_size=14)
    config = encoder_extraction_config(tmp_path / "run", videos=tmp_path / "v", out_dir=tmp_path / "f",
                                       backbone="r2plus1d_tiny", random_clip=clip, stride_frames=2)
    assert config.checkpoint == str(tmp_path / "run") and config.backbone is None
    assert (config.clip_length_frames, config.frame_rate, config.short_side, config.crop_size) == (None,) * 4
    assert config.stride_frames == 2 and config.videos == str(tmp_path / "v")

    config = encoder_extraction_config(None, videos=tmp_path / "v", out_dir=tmp_path / "f",
                                       backbone="r2plus1d_tiny", random_clip=clip, stride_frames=2, seed=4)
    assert config.checkpoint is None and config.backbone == "r2plus1d_tiny" and config.seed == 4
    assert (config.clip_length_frames, config.frame_rate, config.short_side, config.crop_size) == (8, 15.0, 16, 14)


# --- tsplab.features.check_feature_folders (notebooks 05 and 07) ---------------------------------

def test_check_feature_folders_names_the_missing_and_the_found(tmp_path):
    from tsplab.features import FeatureMetadata, check_feature_folders

    for name in ("tac", "tsp"):
        FeatureMetadata(stride_frames=2, clip_length_frames=8, frame_rate=15.0, feature_dim=4).save(tmp_path / name)
    (tmp_path / "empty").mkdir()
    folders = {"tac": str(tmp_path / "tac"), "tsp": tmp_path / "tsp"}
    assert check_feature_folders(folders) == {"tac": tmp_path / "tac", "tsp": tmp_path / "tsp"}
    with pytest.raises(InputError) as error:
        check_feature_folders({"tac": tmp_path / "tac", "tps": tmp_path / "tps"}, "feature_folders")
    message = str(error.value)
    assert message.startswith(f"feature_folders: no feature folder (metadata.json) at tps: {tmp_path / 'tps'};")
    assert f"found beside them: {tmp_path / 'tac'}, {tmp_path / 'tsp'};" in message  # not 'empty'
    with pytest.raises(InputError, match="feature_dirs: give a non-empty"):
        check_feature_folders({})


# --- tsplab.detad.pretend_predictions and available_characteristics (notebook 06) -----------------

GT = pd.DataFrame({"video": ["a", "a", "b", "b", "c"], "t_start_s": [0.0, 10.0, 2.0, 20.0, 5.0],
                   "t_end_s": [2.0, 30.0, 4.5, 55.0, 6.0], "label": ["x", "y", "x", "y", "x"]})


def test_pretend_predictions_short_means_the_presets_first_length_bucket():
    from tsplab.detad import pretend_predictions

    exact = dict(boundary_jitter=0.0, drop_rate=0.0, label_error_rate=0.0, false_positives_per_video=0.0,
                 score_noise=0.0)
    # Lengths 2, 20, 2.5, 35 and 1 s. THUMOS14's XS bucket is (0, 3] s: three actions are short.
    preds = pretend_predictions(GT, {"miss_short": dict(exact, short_drop_rate=1.0),
                                     "all": exact}, preset="thumos14")
    kept = preds["miss_short"].sort_values("t_start_s")
    assert kept[["video", "t_start_s", "t_end_s"]].values.tolist() == [["a", 10.0, 30.0], ["b", 20.0, 55.0]]
    assert len(preds["all"]) == 5
    # ActivityNet's XS is (0, 30] s: all but the 35 s action are short; a method's own short_length_s wins.
    assert len(pretend_predictions(GT, {"m": dict(exact, short_drop_rate=1.0)})["m"]) == 1
    assert len(pretend_predictions(GT, {"m": dict(exact, short_drop_rate=1.0, short_length_s=1.5)})["m"]) == 4


def test_pretend_predictions_methods_draw_different_noise_and_check_their_arguments():
    from tsplab.detad import pretend_predictions

    same = dict(boundary_jitter=0.2)
    preds = pretend_predictions(GT, {"one": same, "two": same}, seed=5)
    assert not preds["one"]["t_start_s"].equals(preds["two"]["t_start_s"])  # seeds 5 and 6
    again = pretend_predictions(GT, {"zero": {}, "two": same}, seed=5)
    pd.testing.assert_frame_equal(again["two"], preds["two"])  # method i uses seed + i
    with pytest.raises(InputError, match=r"perturbations\['one'\]: unknown arguments \['jitter'\]; valid: "
                                         r"boundary_jitter, drop_rate"):
        pretend_predictions(GT, {"one": {"jitter": 0.1}})


def test_available_characteristics_coverage_needs_every_duration():
    from tsplab.detad import available_characteristics

    assert available_characteristics(pd.Series([10.0, 20.0])) == ["length", "coverage", "num_instances"]
    assert available_characteristics(pd.Series([10.0, np.nan])) == ["length", "num_instances"]
    assert available_characteristics(None) == ["length", "num_instances"]


# --- tsplab.pretrain_config.method_configs and config_changes (notebook 03) ----------------------

@pytest.fixture
def fake_benchmark(tmp_path):
    """A folder whose benchmark.json gives the synthetic preset its clip (12 frames at 10 fps, 20 px)."""
    (tmp_path / "benchmark.json").write_text(json.dumps(
        {"config": {"clip_length_frames": 12, "fps": 10.0, "clip_short_side": 20}, "seed": 0}))
    return tmp_path


def test_method_configs_gives_each_method_its_own_options(fake_benchmark):
    from tsplab.pretrain_config import method_configs

    configs = method_configs("synthetic", ["tac", "tsp"], method_options=dict(alpha_c=0.5, gvf_mode="epoch"),
                             dataset_dir=str(fake_benchmark), epochs=2)
    assert list(configs) == ["tac", "tsp"]
    assert configs["tsp"].options.alpha_c == 0.5 and configs["tsp"].options.gvf_mode == "epoch"
    assert not hasattr(configs["tac"].options, "alpha_c")
    assert all(c.epochs == 2 and c.clip_length_frames == 12 for c in configs.values())
    assert method_configs("synthetic", "tsp", output_name="nogvf", dataset_dir=str(fake_benchmark))["tsp"] \
        .output_name == "nogvf"


def test_method_configs_checks_before_any_run(fake_benchmark):
    from tsplab.pretrain_config import method_configs

    with pytest.raises(InputError, match="output_name: one run folder name .* several methods"):
        method_configs("synthetic", ["tac", "tsp"], output_name="x", dataset_dir=str(fake_benchmark))
    with pytest.raises(InputError, match="method: 'tps' is not a valid choice; valid: tac, tsp, bsp, pal"):
        method_configs("synthetic", ["tps"], dataset_dir=str(fake_benchmark))
    with pytest.raises(InputError, match="epochs"):  # check_config ran
        method_configs("synthetic", "tac", dataset_dir=str(fake_benchmark), epochs=0)


def test_config_changes_lists_what_differs_from_the_preset_then_the_options(fake_benchmark):
    from tsplab.pretrain_config import config_changes, pretrain_config

    config = pretrain_config("synthetic", method="tsp", dataset_dir=str(fake_benchmark), epochs=2,
                             batch_size=32, alpha_c=0.5)
    changes = config_changes(config, "synthetic")
    # batch_size 32 is the preset's and the benchmark's clip settings are the preset's reading of it.
    assert list(changes)[:2] == ["epochs", "alpha_c"] and changes["epochs"] == 2
    assert changes["alpha_c"] == 0.5 and changes["gvf_pooling"] == "max"
    assert set(changes) == {"epochs", "alpha_c", "alpha_r", "gvf_pooling", "gvf_mode", "gvf_momentum",
                            "gvf_refresh_steps", "gvf_stride_frames", "gvf_file"}
    assert config_changes(pretrain_config("synthetic", method="tac", dataset_dir=str(fake_benchmark)),
                          "synthetic") == {}


# --- notebook 02: probing, the frame cache, the prepared dataset's videos --------------------------

def _write_videos(folder, lengths):
    from tsplab.video import write_video

    paths = []
    for i, n in enumerate(lengths):
        frames = np.full((n, 16, 24, 3), 40 * i, dtype=np.uint8)
        paths.append(write_video(folder / f"v{i}.mp4", frames, fps=10.0))
    return paths


def test_probe_videos_keeps_a_row_for_every_file(tmp_path):
    from tsplab.video import probe_videos

    paths = _write_videos(tmp_path, [20, 35])
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    table = probe_videos([*paths, tmp_path / "broken.mp4", tmp_path / "missing.mp4"])
    assert table["video"].tolist() == ["v0", "v1", "broken", "missing"]
    assert table["num_frames"].iloc[:2].tolist() == [20, 35]
    np.testing.assert_allclose(table["duration_s"].iloc[:2], [2.0, 3.5])
    assert table[["width", "height"]].iloc[0].tolist() == [24, 16] and table["fps"].iloc[0] == 10.0
    assert (table["error"].iloc[:2] == "").all()
    assert "broken.mp4" in table["error"].iloc[2] and "missing.mp4" in table["error"].iloc[3]
    assert table["num_frames"].iloc[2:].isna().all()


def test_frame_cache_disk_usage_is_n_h_w_3_bytes(tmp_path):
    from tsplab.video import FrameCache

    paths = _write_videos(tmp_path / "videos", [20, 35])
    cache = FrameCache(tmp_path / "cache", frame_rate=5.0, short_side=8)
    cache.build(paths[:1], workers=1)
    usage = cache.disk_usage(paths)
    # 2 s at 5 fps = 10 frames of 8 x 12 (24 x 16 resized to a short side of 8).
    assert usage.iloc[0][["video", "frames", "height", "width"]].tolist() == ["v0", 10, 8, 12]
    assert usage["cache_kB"].iloc[0] * 1e3 == pytest.approx(10 * 8 * 12 * 3 + 128)  # + the .npy header
    assert usage["ratio"].iloc[0] == pytest.approx(usage["cache_kB"].iloc[0] / usage["video_kB"].iloc[0])
    assert usage["video"].iloc[1] == "v1" and np.isnan(usage["cache_kB"].iloc[1])  # not cached yet: kept


def test_prepared_dataset_video_paths(tmp_path):
    from tsplab.annotations import make_annotations
    from tsplab.datasets import PreparedDataset
    from tsplab.presets import get_preset

    videos = pd.DataFrame({"video": ["a", "b"], "subset": ["training", "validation"], "duration_s": [1.0, 2.0],
                           "fps": [10.0, 10.0], "num_frames": [10, 20], "filename": ["a.mkv", None]})
    instances = pd.DataFrame({"video": ["a"], "t_start_s": [0.0], "t_end_s": [0.5], "label": ["x"],
                              "subset": ["training"]})
    ann = make_annotations(videos, instances, ["x"])
    prepared = PreparedDataset(tmp_path, "custom", get_preset("activitynet"), ann, {}, pd.DataFrame(),
                               tmp_path / "videos")
    assert prepared.video_paths() == {"a": tmp_path / "videos" / "a.mkv", "b": tmp_path / "videos" / "b.mp4"}
    prepared.videos_dir = None
    with pytest.raises(InputError, match="prepared without videos"):
        prepared.video_paths()
