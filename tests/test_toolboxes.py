"""Feature folders as ActionFormer and OpenTAD read them, and TSP's extraction rules.

The toolboxes' seconds-to-grid maps below are written from their code (ActionFormer's
``libs/datasets/anet.py``, OpenTAD's ``AnetPaddingDataset`` and ``ResizeFeat``), PyTorch's documented
``interpolate(mode="linear", align_corners=False)`` sampling, and TSP's extractor
(``extract_features/eval_video_dataset.py``, ``extract_features.py``); tsplab's clip centres come
from the folder's ``metadata.json``. Nothing here imports the toolboxes."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tsplab import features as F
from tsplab.datasets import make_annotations, read_annotations, write_activitynet_json
from tsplab.errors import InputError
from tsplab.features.config import ExtractionConfig
from tsplab.features.extraction import extract_features

TINY_GRID = dict(backbone="r2plus1d_tiny", frame_rate=15.0, short_side=16, crop_size=16, workers=0)


@pytest.fixture(scope="module")
def folders(tiny_benchmark, tmp_path_factory, one_torch_thread):
    """Two real feature folders of the tiny benchmark with its annotation file: the default
    benchmark's grid (8-frame clips every 2 frames, overlapping) and tiling clips (8 every 8)."""
    out = {}
    for name, stride in (("overlap", 2), ("tiling", 8)):
        folder = tmp_path_factory.mktemp(name)
        config = ExtractionConfig(videos=str(tiny_benchmark / "videos"), out_dir=str(folder),
                                  clip_length_frames=8, stride_frames=stride,
                                  annotations=str(tiny_benchmark / "annotations.json"), **TINY_GRID)
        with pytest.warns(UserWarning, match="RANDOM"):
            assert set(extract_features(config).status) == {"done"}
        out[name] = folder
    return out


def _actions(folder):
    """(video id, time in s, number of features) of every action boundary in the folder's
    filtered annotation file."""
    database = json.loads((folder / F.FILTERED_ANNOTATIONS).read_text())["database"]
    files = F.feature_files(folder)
    return [(video, t, int(np.load(files[video], mmap_mode="r").shape[0]))
            for video, entry in database.items() for act in entry["annotations"] for t in act["segment"]]


def _tsplab_time(index, meta):
    """Seconds of a fractional feature index on tsplab's grid: clip i's centre is
    (i * stride + clip_length / 2) / frame_rate."""
    return (index * meta.stride_frames + meta.clip_length_frames / 2) / meta.frame_rate


def _actionformer_time(t, num_features, af, meta, max_seq_len=192):
    """Where ActionFormer puts time ``t`` on tsplab's grid (seconds), in the mode ``af`` chose."""
    if not af["force_upsampling"]:  # anet.py case 1: feat_offset = 0.5 * num_frames / feat_stride
        position = t * af["default_fps"] / af["feat_stride"] - 0.5 * af["num_frames"] / af["feat_stride"]
        return _tsplab_time(position, meta)
    # anet.py case 2: the T features are resized to max_seq_len cells of this many frames, offset 0.5
    cell = ((num_features - 1) * af["feat_stride"] + af["num_frames"]) / max_seq_len
    position = t * af["default_fps"] / cell - 0.5
    # linear interpolation, align_corners=False: output j samples input (j + 0.5) * T / M - 0.5
    return _tsplab_time((position + 0.5) * num_features / max_seq_len - 0.5, meta)


def _opentad_time(t, ot, meta):
    """AnetPaddingDataset: gt frames t * fps, minus offset_frames, over feature_stride * sample_stride."""
    position = (t * ot["fps"] - ot["offset_frames"]) / (ot["feature_stride"] * ot["sample_stride"])
    return _tsplab_time(position, meta)


@pytest.mark.parametrize("name", ["overlap", "tiling"])
def test_every_annotation_lands_on_its_time_in_both_toolboxes(folders, name):
    folder = folders[name]
    config = json.loads((folder / F.TOOLBOXES_FILE).read_text())
    af, ot, meta = config["actionformer"], config["opentad"], F.FeatureMetadata.load(folder)
    assert af["force_upsampling"] is (name == "tiling")  # resize only where the clips tile the video
    assert ot["dataset_type"] == "AnetPaddingDataset"
    actions = _actions(folder)
    assert len(actions) >= 20
    for video, t, num_features in actions:
        assert abs(_actionformer_time(t, num_features, af, meta) - t) < 1e-3, (video, t)
        assert abs(_opentad_time(t, ot, meta) - t) < 1e-3, (video, t)
        # each toolbox builds the file name from the annotation id and finds it
        assert (folder / f"{af['file_prefix']}{video}{af['file_ext']}").is_file()
        assert (folder / f"{ot['load_feats']['prefix']}{video}.npy").is_file()


def test_the_resize_mode_would_misplace_overlapping_clips(folders):
    """The control: ActionFormer's resize mode on the overlapping grid is off by up to
    (clip length - stride) / (2 fps) = 6 / 30 s at the ends (the mode toolboxes.json avoids)."""
    folder = folders["overlap"]
    af = dict(json.loads((folder / F.TOOLBOXES_FILE).read_text())["actionformer"], force_upsampling=True)
    meta = F.FeatureMetadata.load(folder)
    errors = [abs(_actionformer_time(t, n, af, meta) - t) for _, t, n in _actions(folder)]
    assert max(errors) > 0.1 and max(errors) <= 0.2 + 1e-9
    assert F.toolboxes.resize_mode_error_s(meta) == pytest.approx(0.2)
    assert "0.200 s" in json.loads((folder / F.TOOLBOXES_FILE).read_text())["alignment"]["actionformer"]


def test_annotation_json_carries_label_id_and_readers_ignore_it(tiny_benchmark, tmp_path):
    mapping = json.loads((tiny_benchmark / "action_label_mapping.json").read_text())
    for path in (tiny_benchmark / "annotations.json",):
        for entry in json.loads(path.read_text())["database"].values():
            for act in entry["annotations"]:
                assert mapping[act["label_id"]] == act["label"]
    videos = pd.DataFrame(dict(video=["x", "y"], duration_s=[10.0, 8.0], subset="training"))
    instances = pd.DataFrame(dict(video=["x", "y", "y"], t_start_s=[1.0, 2.0, 3.0], t_end_s=[2.0, 3.0, 4.0],
                                  label=["walk", "jump", "walk"]))
    ann = make_annotations(videos, instances)
    path = write_activitynet_json(ann, tmp_path / "a.json")
    written = json.loads(path.read_text())["database"]
    assert [a["label_id"] for a in written["y"]["annotations"]] == [0, 1]  # sorted: jump, walk
    again = read_annotations(path)
    assert again.labels == ["jump", "walk"]
    pd.testing.assert_frame_equal(again.instances[["video", "t_start_s", "t_end_s", "label"]],
                                  ann.instances[["video", "t_start_s", "t_end_s", "label"]])


def test_filtered_annotations_and_block_lists(tmp_path):
    folder = tmp_path / "feats"
    F.FeatureMetadata(stride_frames=16, clip_length_frames=16, frame_rate=15.0, feature_dim=4).save(folder)
    F.save_features(folder, "v_aaaaaaaaaaa", np.zeros((3, 4)))
    pd.DataFrame(dict(video=["v_bbbbbbbbbbb"], path=["b.mp4"], error=["broken"])).to_csv(
        folder / "failures.csv", index=False)
    videos = pd.DataFrame(dict(video=["aaaaaaaaaaa", "bbbbbbbbbbb", "ccccccccccc"], duration_s=5.0,
                               subset="validation"))
    instances = pd.DataFrame(dict(video=["aaaaaaaaaaa", "bbbbbbbbbbb", "ccccccccccc"], t_start_s=1.0,
                                  t_end_s=2.0, label=["run", "jump", "swim"]))
    source = write_activitynet_json(make_annotations(videos, instances), tmp_path / "all.json")
    config = F.write_toolbox_files(folder, source)
    filtered = json.loads((folder / F.FILTERED_ANNOTATIONS).read_text())["database"]
    # only the video with features; its label keeps its index in the whole mapping (jump, run, swim)
    assert list(filtered) == ["aaaaaaaaaaa"]
    assert filtered["aaaaaaaaaaa"]["annotations"][0]["label_id"] == 1
    assert config["annotations"]["dropped_failed"] == ["bbbbbbbbbbb"]
    assert config["annotations"]["dropped_without_features"] == ["ccccccccccc"]
    assert json.loads((folder / F.MISSING_JSON).read_text()) == ["bbbbbbbbbbb"]  # OpenTAD's evaluator
    assert (folder / F.MISSING_FILE).read_text() == "bbbbbbbbbbb\n"
    assert config["actionformer"]["json_file"] == config["opentad"]["ann_file"] == str(folder / F.FILTERED_ANNOTATIONS)
    assert config["opentad"]["blocked_videos"] == str(folder / F.MISSING_JSON)
    # A later write without the file refreshes the filtered file from the same source.
    F.save_features(folder, "v_ccccccccccc", np.zeros((3, 4)))
    assert F.write_toolbox_files(folder)["annotations"]["videos"] == 2


def test_snippet_quotes_paths_so_yaml_reads_them_back(tmp_path):
    folder = tmp_path / "a, b # c: d"
    F.FeatureMetadata(stride_frames=2, clip_length_frames=8, frame_rate=15.0, feature_dim=4).save(folder)
    F.save_features(folder, "v_aaaaaaaaaaa", np.zeros((3, 4)))
    snippet = F.toolbox_snippet(folder)
    block = snippet.split("```yaml\n")[1].split("```")[0]
    dataset = yaml.safe_load(block)["dataset"]
    assert dataset["feat_folder"] == str(folder) and dataset["file_prefix"] == "v_"
    assert dataset["force_upsampling"] is False and dataset["feat_stride"] == 2
    python = snippet.split("```python\n")[1].split("```")[0]
    assert f"data_path = {json.dumps(str(folder))}" in python


@pytest.mark.parametrize("n,length,stride,pad,tsp", [
    # pad: ceil((N - L) / stride) + 1, at least 1; tsp: floor((N - L) / stride) + 1, 0 below one clip
    (40, 4, 8, 6, 5), (16, 16, 16, 1, 1), (17, 16, 16, 2, 1), (15, 16, 16, 1, 0), (47, 8, 2, 21, 20),
    (48, 8, 2, 21, 21), (100, 16, 16, 7, 6), (1, 8, 2, 1, 0),
])
def test_tsp_clip_rule_counts(n, length, stride, pad, tsp):
    from tsplab.video import num_clip_windows

    assert num_clip_windows(n, length, stride) == pad
    assert num_clip_windows(n, length, stride, "tsp") == tsp
    assert tsp == len(np.arange(0, n - length + 1, stride))  # TSP's eval_video_dataset.py


@pytest.mark.parametrize("h,w,short_side_hw", [(24, 32, (128, 171)), (36, 64, (128, 228)), (64, 36, (228, 128))])
def test_tsp_resize_gives_128x171_whatever_the_aspect(h, w, short_side_hw):
    from tsplab.backbones import KINETICS_MEAN, KINETICS_STD, ClipTransform

    clips = torch.randint(0, 256, (1, 2, h, w, 3), dtype=torch.uint8)
    assert ClipTransform(128, 112, train=False)._resized(clips).shape[-2:] == short_side_hw
    tsp = ClipTransform(128, 112, train=False, fixed_size=(128, 171))
    assert tsp._resized(clips).shape[-2:] == (128, 171)
    # TSP's transform: [0, 1] floats, bilinear to 128x171, normalise, centre crop at
    # int(round((128 - 112) / 2)) = 8 and int(round((171 - 112) / 2)) = round(29.5) = 30
    x = clips[0].permute(3, 0, 1, 2).float() / 255  # [3, T, H, W]
    x = torch.nn.functional.interpolate(x, size=(128, 171), mode="bilinear", align_corners=False)
    x = (x - torch.tensor(KINETICS_MEAN)[:, None, None, None]) / torch.tensor(KINETICS_STD)[:, None, None, None]
    torch.testing.assert_close(tsp(clips)[0], x[:, :, 8:120, 30:142], rtol=1e-5, atol=1e-5)


def test_extract_with_tsp_rules(tiny_benchmark, tmp_path, one_torch_thread):
    """--clip-rule tsp keeps the first floor((N - L) / stride) + 1 clips of the padded grid, the same
    features; --resize tsp records the fixed frame size; a video shorter than a clip fails."""
    from tsplab.video import probe_video

    video = sorted((tiny_benchmark / "videos").glob("*.mp4"))[0]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{video}\n")
    grid = dict(TINY_GRID, clip_length_frames=8, stride_frames=3)
    runs = {}
    for rule in ("pad", "tsp"):
        config = ExtractionConfig(videos=str(listing), out_dir=str(tmp_path / rule), clip_rule=rule, **grid)
        with pytest.warns(UserWarning, match="RANDOM"):
            extract_features(config)
        runs[rule] = F.load_features(tmp_path / rule, video.stem)
    n = probe_video(video).num_frames_at(15.0)
    assert len(runs["pad"]) == math.ceil((n - 8) / 3) + 1 and len(runs["tsp"]) == (n - 8) // 3 + 1
    np.testing.assert_allclose(runs["tsp"], runs["pad"][:len(runs["tsp"])], rtol=1e-5, atol=1e-6)
    assert F.FeatureMetadata.load(tmp_path / "tsp").extra["clip_rule"] == "tsp"
    long_clip = ExtractionConfig(videos=str(listing), out_dir=str(tmp_path / "short"), clip_rule="tsp",
                                 **dict(grid, clip_length_frames=n + 1, min_frames=1))
    with pytest.warns(UserWarning, match="RANDOM"):
        summary = extract_features(long_clip)
    assert summary.status.tolist() == ["failed"] and "too short for TSP's clip rule" in summary.error[0]
    resized = ExtractionConfig(videos=str(listing), out_dir=str(tmp_path / "resized"), resize="tsp",
                               **dict(grid, short_side=None, crop_size=112))
    with pytest.warns(UserWarning, match="RANDOM"):
        extract_features(resized)
    extra = F.FeatureMetadata.load(tmp_path / "resized").extra
    assert extra["resize"] == "tsp" and extra["frame_size"] == [128, 171]
    with pytest.raises(InputError, match="short_side: 16 given with resize='tsp'"):
        extract_features(ExtractionConfig(videos=str(listing), out_dir=str(tmp_path / "x"), resize="tsp",
                                          **grid))


def test_cli_extract_takes_the_tsp_rules_and_an_annotation_file(tiny_benchmark, tmp_path, capsys):
    from tsplab.cli import main

    video = sorted((tiny_benchmark / "videos").glob("*.mp4"))[0]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{video}\n")
    base = ["extract", "--videos", str(listing), "--backbone", "r2plus1d_tiny", "--clip-length", "8",
            "--stride", "8", "--short-side", "16", "--crop", "16", "--workers", "0"]
    out = tmp_path / "feats"
    with pytest.warns(UserWarning, match="RANDOM"):
        assert main(base + ["--out", str(out), "--clip-rule", "tsp", "--format", "h5",
                            "--annotations", str(tiny_benchmark / "annotations.json")]) == 0
    assert F.FeatureMetadata.load(out).extra["clip_rule"] == "tsp"
    assert list(json.loads((out / F.FILTERED_ANNOTATIONS).read_text())["database"]) == [video.stem]
    config = json.loads((out / F.TOOLBOXES_FILE).read_text())
    assert config["actionformer_hdf5"]["feat_folder"] == str(out / "features.hdf5")
    assert config["actionformer"]["force_upsampling"] is True  # stride 8 == clip length 8
    assert main(base + ["--out", str(tmp_path / "x"), "--resize", "tsp"]) == 2
    assert "short_side: 16 given with resize='tsp'" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(base + ["--out", str(tmp_path / "y"), "--annotations", str(tmp_path / "none.json")]) == 2
    assert "none.json" in capsys.readouterr().err and not (tmp_path / "y" / "metadata.json").exists()
