"""ActivityNet naming end to end: videos named ``v_<id>.mp4``, ground truth keyed by the bare
11-character ids, run through ``tsplab extract -> gvf -> localize -> evaluate`` on the command line.
Every video must be found at every step (issue 10: localize skipped them all)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tsplab.cli import main

FPS = 10.0
# ActivityNet-style YouTube ids (11 characters, with '-' and '_'); the last one itself begins with
# "v_", so its file is v_v_Vg4a8igc0.mp4 (a real ActivityNet case).
TRAIN = ["abcdefghijk", "JDg--pjY5gg", "x_Yz-0123ab", "v_Vg4a8igc0"]
VALID = ["Qwe_rty-uio", "zzzzzzzzzz9"]


def _frames(n, seed, action=None):
    """[n, 24, 32, 3] uint8 noise; frames inside ``action`` (first, last frame) carry a bright
    square, so the features see the action."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 60, size=(n, 24, 32, 3), dtype=np.uint8)
    if action:
        frames[action[0]:action[1], 6:18, 8:24] = 240
    return frames


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """``videos/v_<id>.mp4`` (4 s at 10 fps) and ``gt.json`` keyed by the bare ids."""
    from tsplab.video import write_video

    root = tmp_path_factory.mktemp("anet_ids")
    database = {}
    for i, video in enumerate(TRAIN + VALID):
        start, end = 10 + i % 3, 25 + i % 4  # frames at 10 fps
        write_video(root / "videos" / f"v_{video}.mp4", _frames(40, i, (start, end)), fps=FPS)
        database[video] = {"subset": "training" if video in TRAIN else "validation", "duration": 4.0,
                           "annotations": [{"segment": [start / FPS, end / FPS],
                                            "label": "jump" if i % 2 else "run"}]}
    (root / "gt.json").write_text(json.dumps({"version": "VERSION 1.3", "database": database}))
    return root


def test_extract_gvf_localize_evaluate_on_v_prefixed_files(dataset, tmp_path, capsys):
    from tsplab.features import FeatureMetadata, read_gvf_h5

    feats, run = tmp_path / "features", tmp_path / "run"
    with pytest.warns(UserWarning, match="RANDOM"):
        assert main(["extract", "--videos", str(dataset / "videos"), "--out", str(feats),
                     "--backbone", "r2plus1d_tiny", "--clip-length", "4", "--frame-rate", "10",
                     "--short-side", "16", "--crop", "16", "--workers", "0", "--batch-size", "16"]) == 0
    # Files keep the video file's name (ActionFormer's and OpenTAD's v_<id>.npy).
    assert sorted(p.name for p in feats.glob("*.npy")) == sorted(f"v_{v}.npy" for v in TRAIN + VALID)
    assert FeatureMetadata.load(feats).feature_dim == 128

    assert main(["gvf", str(feats), "--out", str(tmp_path / "gvf.h5")]) == 0
    assert set(read_gvf_h5(tmp_path / "gvf.h5")) == {f"v_{v}" for v in TRAIN + VALID}  # TSP's keys
    assert set(read_gvf_h5(tmp_path / "gvf.h5", by_id=True)) == set(TRAIN + VALID)  # the id rule

    capsys.readouterr()
    assert main(["localize", "--features", str(feats), "--annotations", str(dataset / "gt.json"),
                 "--out", str(run), "--epochs", "1", "--batch-size", "2"]) == 0
    printed = capsys.readouterr().out
    assert "metric preset: activitynet (told from the video ids)" in printed
    assert pd.read_csv(run / "skipped.csv").empty  # every video found its features
    config = json.loads((run / "config.json").read_text())
    assert (config["metric_preset"], config["max_predictions"]) == ("activitynet", 100)
    predictions = json.loads((run / "predictions.json").read_text())["results"]
    assert set(predictions) == set(VALID)  # every validation video was predicted, under its bare id

    assert main(["evaluate", str(dataset / "gt.json"), str(run / "predictions.json"),
                 "--json", str(tmp_path / "eval.json")]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    # The same numbers as the localizer's own evaluation: the ids matched on both sides.
    assert result["average_mAP"] == pytest.approx(
        json.loads((run / "metrics.json").read_text())["average_mAP"], abs=1e-12)


def test_a_failed_video_is_blocked_for_the_toolboxes_and_skipped_by_localize(dataset, tmp_path, capsys):
    """One broken video: extract finishes the others, exits 1 naming the count and the failures
    file, and lists the video (bare id, as the annotation spells it) in missing_files.txt; localize
    then trains on the rest, names the missing one in skipped.csv and exits 1 (not everything
    succeeded)."""
    import shutil

    videos, feats = tmp_path / "videos", tmp_path / "features"
    shutil.copytree(dataset / "videos", videos)
    (videos / f"v_{TRAIN[1]}.mp4").write_bytes(b"not a video")
    with pytest.warns(UserWarning):
        rc = main(["extract", "--videos", str(videos), "--out", str(feats), "--backbone", "r2plus1d_tiny",
                   "--clip-length", "4", "--frame-rate", "10", "--short-side", "16", "--crop", "16",
                   "--workers", "0"])
    assert rc == 1
    err = capsys.readouterr().err
    assert f"1 of {len(TRAIN + VALID)} videos failed" in err and str(feats / "failures.csv") in err
    assert (feats / "missing_files.txt").read_text() == f"{TRAIN[1]}\n"
    toolboxes = json.loads((feats / "toolboxes.json").read_text())
    assert toolboxes["actionformer"]["file_prefix"] == "v_"
    assert toolboxes["opentad"]["block_list"] == str(feats / "missing_files.txt")

    with pytest.warns(UserWarning, match="skipped 1 video"):
        assert main(["localize", "--features", str(feats), "--annotations", str(dataset / "gt.json"),
                     "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "2"]) == 1
    assert "1 video(s) without usable features were left out" in capsys.readouterr().err
    skipped = pd.read_csv(tmp_path / "run" / "skipped.csv")
    assert skipped["video"].tolist() == [TRAIN[1]]
    assert f"v_{TRAIN[1]}.npy" in skipped["reason"][0]
