"""The one reader of feature folders (``tsplab.features.open_feature_folders``): one folder or several
joined per clip (BSP §3.4 two-stream), against hand-stacked arrays; a grid or clip-count mismatch
and a missing video reported as the house rules say; its written copy; the localizer (library and
CLI) and ``tsplab.similarity`` reading two folders."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from tsplab.errors import InputError
from tsplab.features import (FeatureMetadata, check_feature_folders, concat_feature_folders, load_features,
                             open_feature_folders, save_features)


def _two_folders(tmp_path):
    """tac: width 2, bsp: width 3, same grid; v1 and v2 in both, v3 only in tac. Values are distinct
    per folder, video, clip and channel, so any misplaced block shows."""
    tac, bsp = tmp_path / "tac", tmp_path / "bsp"
    FeatureMetadata(8, 8, 15.0, 2, backbone="r2plus1d_tiny", checkpoint="tac.pt").save(tac)
    FeatureMetadata(8, 8, 15.0, 3, backbone="r2plus1d_tiny", checkpoint="bsp.pt").save(bsp)
    arrays = {}
    for v, t in (("v1", 4), ("v2", 5), ("v3", 3)):
        arrays["tac", v] = 100 * int(v[1]) + np.arange(t * 2, dtype=np.float32).reshape(t, 2)
        arrays["bsp", v] = -100 * int(v[1]) - np.arange(t * 3, dtype=np.float32).reshape(t, 3)
        save_features(tac, v, arrays["tac", v])
        if v != "v3":
            save_features(bsp, v, arrays["bsp", v])
    return tac, bsp, arrays


def test_two_folders_read_as_the_hand_stacked_arrays(tmp_path):
    tac, bsp, arrays = _two_folders(tmp_path)
    with pytest.warns(UserWarning, match=re.escape("features_dir: 1 video(s) have features in some of the "
                                                   f"joined folders only and are left out: v3 (not in {bsp})")):
        joined = open_feature_folders([tac, str(bsp)])
    assert joined.videos == ["v1", "v2"]
    read = dict(joined)
    for v in ("v1", "v2"):
        by_hand = np.hstack([arrays["tac", v], arrays["bsp", v]])  # [T, 2 + 3], TAC first
        assert read[v].dtype == np.float32 and np.array_equal(read[v], by_hand), v
    assert read["v1"][1].tolist() == [102, 103, -103, -104, -105]
    meta = joined.metadata
    assert (meta.feature_dim, meta.stride_frames, meta.clip_length_frames, meta.frame_rate) == (5, 8, 8, 15.0)
    assert meta.extra == {"joined_folders": [str(tac), str(bsp)], "feature_dims": [2, 3]}
    assert meta.checkpoint == "tac.pt+bsp.pt"
    # one folder: its own arrays and metadata, no join
    alone = open_feature_folders(tac)
    assert alone.videos == ["v1", "v2", "v3"] and alone.missing.empty
    assert np.array_equal(alone.read("v3"), arrays["tac", "v3"])
    assert alone.metadata == FeatureMetadata.load(tac)


def test_a_missing_video_is_counted_named_and_never_read(tmp_path):
    tac, bsp, _ = _two_folders(tmp_path)
    joined = open_feature_folders([tac, bsp], warn=False)
    assert joined.missing.to_dict("records") == [{"video": "v3", "missing_from": str(bsp)}]
    assert "v3" not in joined and len(joined) == 2
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(str(bsp))}: no features for video 'v3'$"):
        joined.read("v3")


def test_grid_and_clip_count_mismatches_are_one_line_input_errors(tmp_path):
    tac, bsp, _ = _two_folders(tmp_path)
    other = tmp_path / "other"
    FeatureMetadata(16, 8, 15.0, 3).save(other)
    with pytest.raises(InputError) as error:
        open_feature_folders([tac, other])
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"features_dir: {other}: stride_frames=16 but {tac} has 8;")
    FeatureMetadata(8, 16, 15.0, 3).save(other)
    with pytest.raises(InputError, match="clip_length_frames=16 but"):
        open_feature_folders([tac, other], "feature_folders")
    save_features(bsp, "v2", np.zeros((4, 3)))  # one clip fewer than tac's v2
    joined = open_feature_folders([tac, bsp], warn=False)
    assert joined.read("v1").shape == (4, 5)
    for check in (lambda: joined.read("v2"), joined.check_clip_counts):
        with pytest.raises(InputError) as error:
            check()
        assert str(error.value).startswith(f"{bsp}: video 'v2' has 4 clips but {tac} has 5;")
    with pytest.raises(InputError, match="give a feature folder or a list of feature folders"):
        open_feature_folders([])


def test_written_copy_is_the_reader_output(tmp_path):
    tac, bsp, arrays = _two_folders(tmp_path)
    table = concat_feature_folders([tac, bsp], tmp_path / "both")
    assert table.to_dict("records") == [
        dict(video="v1", status="written", clips=4, reason=""),
        dict(video="v2", status="written", clips=5, reason=""),
        dict(video="v3", status="skipped", clips=0, reason=f"no features in {bsp}")]
    assert np.array_equal(load_features(tmp_path / "both", "v2"), np.hstack([arrays["tac", "v2"], arrays["bsp", "v2"]]))
    assert FeatureMetadata.load(tmp_path / "both") == open_feature_folders([tac, bsp], warn=False).metadata
    # a clip-count mismatch is found before anything is written
    save_features(bsp, "v2", np.zeros((4, 3)))
    with pytest.raises(InputError, match="video 'v2' has 4 clips"):
        concat_feature_folders([tac, bsp], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_concat_matches_activitynet_ids_with_and_without_prefix(tmp_path):
    """``v_<id>.npy`` (tsplab extract's naming) and ``<id>.npy`` (another extractor's) are one video."""
    from tsplab.features import feature_files

    tac, bsp = tmp_path / "tac", tmp_path / "bsp"
    FeatureMetadata(8, 8, 15.0, 2).save(tac)
    FeatureMetadata(8, 8, 15.0, 1).save(bsp)
    save_features(tac, "v_abcdefghijk", np.ones((3, 2)))
    save_features(bsp, "abcdefghijk", np.zeros((3, 1)))
    table = concat_feature_folders([tac, bsp], tmp_path / "both")
    assert table.to_dict("records") == [dict(video="abcdefghijk", status="written", clips=3, reason="")]
    assert list(feature_files(tmp_path / "both")) == ["abcdefghijk"]
    assert load_features(tmp_path / "both", "v_abcdefghijk").tolist() == [[1, 1, 0]] * 3


def test_check_feature_folders_takes_a_joined_set(tmp_path):
    tac, bsp, _ = _two_folders(tmp_path)
    assert check_feature_folders({"tac": str(tac), "tac+bsp": [str(tac), bsp]}) == {
        "tac": tac, "tac+bsp": [tac, bsp]}
    with pytest.raises(InputError, match=re.escape(f"no feature folder (metadata.json) at tac+x: {tmp_path / 'x'};")):
        check_feature_folders({"tac+x": [tac, tmp_path / "x"]})


def test_similarity_reads_a_joined_set_as_its_stacked_arrays(tmp_path):
    import pandas as pd

    from tsplab.similarity import sensitivity_per_video, video_sensitivity

    tac, bsp, arrays = _two_folders(tmp_path)
    instances = pd.DataFrame({"video": ["v1", "v2", "v3"], "t_start_s": [0.5, 1.0, 0.0],
                              "t_end_s": [1.5, 2.0, 1.0], "label": ["a"] * 3})
    with pytest.warns(UserWarning, match=r"v3 \(not in"):
        table = sensitivity_per_video({"tac+bsp": [tac, bsp]}, instances)
    assert table["video"].tolist() == ["v1", "v2"]  # v3 lacks bsp features: named in the warning
    meta = FeatureMetadata.load(tac)
    for row in table.itertuples():
        stacked = np.hstack([arrays["tac", row.video], arrays["bsp", row.video]])
        segs = instances.loc[instances.video == row.video, ["t_start_s", "t_end_s"]].to_numpy()
        expected = video_sensitivity(stacked, segs, meta.clip_centre_s(len(stacked)))
        assert row.fg_bg == pytest.approx(expected["fg_bg"], nan_ok=True)
        assert row.num_clips == len(stacked)


# ------------------------------------------------------------------------------- the localizer
def _localizer_folders(benchmark, root):
    """Two feature folders of every benchmark video: ``a`` (width 3) shows the actions, ``b`` (width
    2) is noise; the first training video has no file in ``b``."""
    ann = json.loads((benchmark / "annotations.json").read_text())["database"]
    stride, clip, fps = 2, 8, 15.0
    FeatureMetadata(stride, clip, fps, 3).save(root / "a")
    FeatureMetadata(stride, clip, fps, 2).save(root / "b")
    rng = np.random.default_rng(0)
    for video, info in sorted(ann.items()):
        t = max(1, math.ceil((info["duration"] * fps - clip) / stride) + 1)
        centres = FeatureMetadata(stride, clip, fps, 3).clip_centre_s(t)
        a = rng.normal(0, 0.1, (t, 3)).astype(np.float32)
        for inst in info["annotations"]:
            a[(centres >= inst["segment"][0]) & (centres <= inst["segment"][1]), 0] += 2.0
        save_features(root / "a", video, a)
        if video != "train_0000":
            save_features(root / "b", video, rng.normal(0, 0.1, (t, 2)))
    return [str(root / "a"), str(root / "b")]


@pytest.mark.filterwarnings("ignore:.*skipped 1 video")
def test_localizer_trains_on_two_folders_and_records_both(tiny_benchmark, tmp_path):
    import pandas as pd

    from tsplab.localizer import LocalizerConfig, load_localizer, train_localizer

    folders = _localizer_folders(tiny_benchmark, tmp_path)
    config = LocalizerConfig(features_dir=folders, annotations=str(tiny_benchmark / "annotations.json"),
                             out_dir=str(tmp_path / "run"), epochs=1, batch_size=4, embed_dim=16)
    result = train_localizer(config, progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["features_dir"] == folders
    _, _, meta = load_localizer(tmp_path / "run")
    assert meta.feature_dim == 5 and meta.extra["feature_dims"] == [3, 2]
    skipped = pd.read_csv(tmp_path / "run" / "skipped.csv")
    assert skipped["video"].tolist() == ["train_0000"]
    assert f"no feature file for train_0000 in {folders[1]}" in skipped["reason"][0]
    assert len(result.history) == 1


def test_cli_localize_takes_repeated_features(tiny_benchmark, tmp_path, capsys):
    from tsplab.cli import main

    folders = _localizer_folders(tiny_benchmark, tmp_path)
    common = ["--annotations", str(tiny_benchmark / "annotations.json"), "--epochs", "1", "--baseline"]
    with pytest.warns(UserWarning, match="skipped 1 video"):
        rc = main(["localize", "--features", folders[0], "--features", folders[1], "--out",
                   str(tmp_path / "run"), *common])
    assert rc == 1  # one video without usable features: the command says so
    assert json.loads((tmp_path / "run" / "config.json").read_text())["features_dir"] == folders
    capsys.readouterr()
    other = tmp_path / "other"
    FeatureMetadata(4, 8, 15.0, 2).save(other)  # another stride
    assert main(["localize", "--features", folders[0], "--features", str(other), "--out",
                 str(tmp_path / "run2"), *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tsplab localize: error: features_dir: {other}: stride_frames=4")
    assert not (tmp_path / "run2").exists()
