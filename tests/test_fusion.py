"""ActivityNet's external class-score fusion (``tsplab.localizer.fusion``, ``tsplab fuse``, the
localizer's ``class_scores`` / ``class_agnostic``): hand-computed fusion as ActionFormer's
``postprocess_results`` defines it (top-k classes, score = sqrt(class score x segment score),
class-major order), the CUHK file layout with ids with and without ``v_``, videos without scores
named, malformed files refused with one line, the CLI end to end, and a tiny localizer run."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from tsplab.errors import InputError
from tsplab.features import FeatureMetadata, save_features
from tsplab.localizer.fusion import AGNOSTIC_LABEL, fuse_predictions, read_class_scores
from tsplab.localizer.fusion import write_fused_predictions as write_fused

# Three classes, deliberately not in sorted order: a score's position is named by the file's "class".
CLASSES = ["swim", "run", "jump"]
# Perfect squares, so the fused scores are exact: sqrt(0.64 x 0.81) = 0.72, ...
SCORES = {"vid_one": [0.01, 0.64, 0.25],  # top 2: run (0.64), jump (0.25)
          "vid_two": [0.49, 0.09, 0.16]}  # top 2: swim (0.49), jump (0.16)


def _predictions(rows):
    return pd.DataFrame(rows, columns=["video", "t_start_s", "t_end_s", "label", "score"])


# Two segments per video, the weaker first: the fusion sorts them (ActionFormer re-sorts too).
PREDICTIONS = _predictions([("vid_one", 1.0, 3.0, AGNOSTIC_LABEL, 0.36), ("vid_one", 5.0, 8.0, AGNOSTIC_LABEL, 0.81),
                            ("vid_two", 4.0, 6.0, AGNOSTIC_LABEL, 0.04), ("vid_two", 0.0, 2.0, AGNOSTIC_LABEL, 0.25)])
# By hand: per video, class-major (best class's block first), segments by decreasing score.
EXPECTED = _predictions([
    ("vid_one", 5.0, 8.0, "run", 0.72),  # sqrt(0.64 x 0.81)
    ("vid_one", 1.0, 3.0, "run", 0.48),  # sqrt(0.64 x 0.36)
    ("vid_one", 5.0, 8.0, "jump", 0.45),  # sqrt(0.25 x 0.81)
    ("vid_one", 1.0, 3.0, "jump", 0.30),  # sqrt(0.25 x 0.36)
    ("vid_two", 0.0, 2.0, "swim", 0.35),  # sqrt(0.49 x 0.25)
    ("vid_two", 4.0, 6.0, "swim", 0.14),  # sqrt(0.49 x 0.04)
    ("vid_two", 0.0, 2.0, "jump", 0.20),  # sqrt(0.16 x 0.25)
    ("vid_two", 4.0, 6.0, "jump", 0.08),  # sqrt(0.16 x 0.04)
])


def _write_scores(path, scores=SCORES, classes=CLASSES, wrap=True):
    data = {"version": "VERSION 1.3", "results": scores, "class": classes} if wrap else scores
    if wrap and classes is None:
        del data["class"]
    path.write_text(json.dumps(data))
    return path


def _assert_same(table, expected):
    table = table.reset_index(drop=True)
    assert table[["video", "label"]].values.tolist() == expected[["video", "label"]].values.tolist()
    assert table[["t_start_s", "t_end_s"]].to_numpy() == pytest.approx(expected[["t_start_s", "t_end_s"]].to_numpy())
    assert table["score"].to_numpy() == pytest.approx(expected["score"].to_numpy(), abs=1e-12)


def test_hand_computed_fusion_of_two_videos(tmp_path):
    scores = read_class_scores(_write_scores(tmp_path / "cls.json"))
    assert scores.classes == CLASSES and scores.class_order == "file"
    result = fuse_predictions(PREDICTIONS, scores, top_k=2)
    _assert_same(result.predictions, EXPECTED)  # a product without the square root gives 0.5184, ...
    assert (result.missing_videos, result.missing_predictions, result.segments_left_out) == ([], 0, 0)
    # k = 1: only the best class's block; k = 3: every class, the weakest last
    one = fuse_predictions(PREDICTIONS, scores, top_k=1).predictions
    _assert_same(one, EXPECTED[EXPECTED.label.isin(["run", "swim"])])
    three = fuse_predictions(PREDICTIONS, scores, top_k=3).predictions
    assert three[three.video == "vid_one"]["label"].tolist() == ["run"] * 2 + ["jump"] * 2 + ["swim"] * 2
    assert three["score"].iloc[4] == pytest.approx(math.sqrt(0.01 * 0.81))
    # ActionFormer fuses at most num_pred segments per video, the best ones; the rest are counted
    capped = fuse_predictions(PREDICTIONS, scores, top_k=2, max_segments=1)
    _assert_same(capped.predictions, EXPECTED.iloc[[0, 2, 4, 6]])
    assert capped.segments_left_out == 2 and capped.report()["segments_beyond_max_segments"] == 2


def test_file_read_as_actionformer_reads_it_ids_with_and_without_v(tmp_path):
    # The CUHK file keys bare YouTube ids; feature files and some prediction files use v_<id>. An id
    # that itself begins with v_ (v_Vg4a8igc0, file v_v_Vg4a8igc0) keeps its prefix.
    scores = {"JDg--pjY5gg": SCORES["vid_one"], "v_abcdefghijk": SCORES["vid_two"],
              "v_Vg4a8igc0": [0.0, 0.0, 1.0]}
    predictions = PREDICTIONS.replace({"video": {"vid_one": "v_JDg--pjY5gg", "vid_two": "abcdefghijk"}})
    expected = EXPECTED.replace({"video": {"vid_one": "v_JDg--pjY5gg", "vid_two": "abcdefghijk"}})
    expected = expected.sort_values("video", kind="stable")  # videos in sorted order of their ids
    # A bare {video: scores} mapping (ActionFormer reads "results" when present, else the object):
    # without a "class" list the positions are the annotation's labels in sorted order.
    bare = read_class_scores(_write_scores(tmp_path / "bare.json", scores, wrap=False), labels=["swim", "run", "jump"])
    assert bare.classes == ["jump", "run", "swim"] and bare.class_order == "sorted labels"
    fused = fuse_predictions(predictions, bare, top_k=2).predictions
    relabel = {"run": "run", "jump": "swim", "swim": "jump"}  # positions 1, 2, 0 named jump, run, swim
    _assert_same(fused, expected.assign(label=expected["label"].map(relabel)))
    assert bare.row("v_JDg--pjY5gg") is not None and bare.row("Vg4a8igc0") is None
    assert bare.row("v_Vg4a8igc0").tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(InputError, match=r"bare.json: no \"class\" list names the 3 score positions"):
        read_class_scores(tmp_path / "bare.json")
    wrapped = read_class_scores(_write_scores(tmp_path / "wrapped.json", scores))
    _assert_same(fuse_predictions(predictions, wrapped).predictions, expected)


def test_real_activitynet_class_names_are_checked(real_data, tmp_path):
    from tsplab.datasets import read_label_mapping

    labels = read_label_mapping(real_data / "activitynet" / "activitynet_v1-3_action_label_mapping.json")
    assert len(labels) == 200
    order = labels[::-1]  # a classifier's own order; the names, not the positions, decide
    row = list(np.linspace(0.0, 1.0, 200))  # the last position (order[-1] = labels[0]) scores highest
    path = _write_scores(tmp_path / "cuhk.json", {"JDg--pjY5gg": row}, classes=order)
    scores = read_class_scores(path, labels)
    fused = fuse_predictions(PREDICTIONS.assign(video="JDg--pjY5gg"), scores, top_k=2).predictions
    assert fused["label"].unique().tolist() == [labels[0], labels[1]]
    misspelled = [*order[:-1], order[-1].lower()]
    _write_scores(path, {"JDg--pjY5gg": row}, classes=misspelled)
    wrong = labels[0].lower()
    with pytest.raises(InputError, match=rf"cuhk.json: \"class\" does not match the annotation's 200 labels "
                                         rf"\(1 class\(es\) not among the annotation's labels: \['{wrong}'\]"):
        read_class_scores(path, labels)


def test_video_without_class_scores_is_named_and_left_out(tmp_path):
    scores = read_class_scores(_write_scores(tmp_path / "cls.json"))
    predictions = pd.concat([PREDICTIONS, _predictions([("vid_three", 0.0, 1.0, AGNOSTIC_LABEL, 0.5)] * 3)])
    with pytest.warns(UserWarning, match=r"1 of 3 video\(s\) have no class scores in .*cls.json; their 3 "
                                         r"prediction\(s\) are left out of the fused predictions: vid_three"):
        result = fuse_predictions(predictions, scores)
    _assert_same(result.predictions, EXPECTED)
    assert result.missing_videos == ["vid_three"] and result.missing_predictions == 3
    report = result.report()
    assert report["videos_without_class_scores"] == ["vid_three"] and report["videos_fused"] == 2
    back = json.loads(write_fused(result, tmp_path / "fused.json").read_text())
    assert back["fusion"]["videos_without_class_scores"] == ["vid_three"]
    assert back["external_data"]["used"] is True and "vid_three" not in back["results"]


def test_predictions_with_several_labels_are_warned_about(tmp_path):
    scores = read_class_scores(_write_scores(tmp_path / "cls.json"))
    with pytest.warns(UserWarning, match="the predictions hold 2 labels .* class-agnostic"):
        result = fuse_predictions(PREDICTIONS.assign(label=["run", "swim"] * 2), scores)
    _assert_same(result.predictions, EXPECTED)  # the segments' own labels play no part


def _snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("content,named", [
    ("{not json", "not valid JSON"),
    ("[]", "a list, not a class-score file"),
    ('{"results": {}}', '"results" is empty'),
    ('{"results": {"vid_one": [0.1, 0.2]}, "class": ["swim", "run", "jump"]}',
     "video 'vid_one': class scores are a list of 2 values; give a list of 3 numbers"),
    ('{"results": {"vid_one": [0.1, 0.2, 0.3], "vid_two": {"run": 1}}, "class": ["swim", "run", "jump"]}',
     "video 'vid_two': class scores are dict"),
    ('{"results": {"vid_one": [0.1, "0.2", 0.3]}, "class": ["swim", "run", "jump"]}',
     "video 'vid_one': class scores are a list holding \"0.2\" (str, not a number); give a list of 3 numbers"),
    ('{"results": {"vid_one": ["0.1", "0.2", "0.3"]}, "class": ["swim", "run", "jump"]}',  # issue 22
     "video 'vid_one': class scores are a list holding \"0.1\" (str, not a number)"),
    ('{"results": {"vid_one": [0.1, -0.2, 0.3]}, "class": ["swim", "run", "jump"]}',
     "video 'vid_one': class score -0.2 is not a number >= 0"),
    ('{"results": {"JDg--pjY5gg": [1, 0, 0], "v_JDg--pjY5gg": [0, 1, 0]}, "class": ["swim", "run", "jump"]}',
     "videos 'JDg--pjY5gg' and 'v_JDg--pjY5gg' are the same video"),
    ('{"results": {"vid_one": [1, 0, 0]}, "class": ["swim", "run", "run"]}', "\"class\" repeats ['run']"),
    ('{"results": {"vid_one": [1, 0, 0]}, "class": ["swim", "run", "hop"]}',
     "1 class(es) not among the annotation's labels: ['hop']; 1 label(s) of the annotations missing: ['jump']"),
])
def test_malformed_class_score_file_exits_2_with_one_line(tmp_path, capsys, content, named):
    from tsplab.cli import main
    from tsplab.evaluation import write_predictions

    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"database": {v: {"subset": "validation", "duration": 10.0, "annotations": [
        {"segment": [1.0, 3.0], "label": label}]} for v, label in (("vid_one", "swim"), ("vid_two", "run"),
                                                                   ("vid_three", "jump"))}}))
    write_predictions(PREDICTIONS, tmp_path / "pred.json")
    (tmp_path / "cls.json").write_text(content)
    (tmp_path / "fused.json").write_text("an earlier result")
    before = _snapshot(tmp_path)
    rc = main(["fuse", "--predictions", str(tmp_path / "pred.json"), "--class-scores", str(tmp_path / "cls.json"),
               "--annotations", str(gt), "--out", str(tmp_path / "fused.json"), "--overwrite"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tsplab fuse: error: ")
    assert str(tmp_path / "cls.json") in err[0] and named in err[0]
    assert _snapshot(tmp_path) == before  # nothing written, nothing replaced


def test_cli_fuse_never_replaces_an_existing_file_without_overwrite(tmp_path, capsys, unchanged):
    """``fuse --out`` replaced an unrelated existing file although its help says "new file"."""
    from tsplab.cli import main
    from tsplab.evaluation import read_predictions, write_predictions

    write_predictions(PREDICTIONS, tmp_path / "pred.json")
    _write_scores(tmp_path / "cls.json")
    notes = tmp_path / "notes.json"
    notes.write_text("someone's notes")
    args = ["fuse", "--predictions", str(tmp_path / "pred.json"), "--class-scores", str(tmp_path / "cls.json"),
            "--out", str(notes)]
    with unchanged(tmp_path):
        assert main(args) == 2
    err = capsys.readouterr().err
    assert err == f"tsplab fuse: error: --out: {notes} already exists; give a new file, or --overwrite to replace it\n"
    assert main([*args, "--overwrite"]) == 0
    _assert_same(read_predictions(notes), EXPECTED)


def test_cli_fuse_end_to_end(tmp_path, capsys):
    from tsplab.cli import main
    from tsplab.evaluation import evaluate_files, read_predictions, write_predictions

    write_predictions(pd.concat([PREDICTIONS, _predictions([("vid_three", 0.0, 1.0, AGNOSTIC_LABEL, 0.5)])]),
                      tmp_path / "pred.json")
    _write_scores(tmp_path / "cls.json")
    args = ["fuse", "--predictions", str(tmp_path / "pred.json"), "--class-scores", str(tmp_path / "cls.json")]
    assert main([*args, "--out", str(tmp_path / "pred.json")]) == 2  # never onto an input
    assert "--out: " in capsys.readouterr().err
    rc = main([*args, "--out", str(tmp_path / "fused.json")])
    captured = capsys.readouterr()
    assert rc == 1  # one video had no class scores: named, counted, its predictions left out
    assert "vid_three" in captured.err and "1 of 3 video(s) have no class scores" in captured.err
    assert "8 predictions" in captured.out and "top-2 of 3 classes" in captured.out
    _assert_same(read_predictions(tmp_path / "fused.json"), EXPECTED)
    fused = json.loads((tmp_path / "fused.json").read_text())
    assert fused["fusion"]["videos_without_class_scores"] == ["vid_three"] and fused["fusion"]["top_k"] == 2
    # the fused file is an ActivityNet result file: the top class of each video is right on the
    # [5, 8] and [0, 2] segments of this ground truth, the second class nowhere
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"database": {
        video: {"subset": "validation", "duration": 10.0, "annotations": [{"segment": segment, "label": label}]}
        for video, segment, label in (("vid_one", [5.0, 8.0], "run"), ("vid_two", [0.0, 2.0], "swim"),
                                      ("vid_three", [0.0, 2.0], "jump"))}}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate_files(gt, tmp_path / "fused.json", "activitynet")
    assert result.ap.loc["run"].tolist() == [1.0] * 10 and result.ap.loc["swim"].tolist() == [1.0] * 10
    assert result.ap.loc["jump"].tolist() == [0.0] * 10  # vid_three was left out: a miss
    rc = main([*args, "--out", str(tmp_path / "k1.json"), "--top-k", "4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("tsplab fuse: error: top_k (--top-k): 4 is out of range")
    assert not (tmp_path / "k1.json").exists()


# ------------------------------------------------------------------------------------------------
# The localizer's option
# ------------------------------------------------------------------------------------------------

STRIDE_FRAMES, CLIP_FRAMES, FPS, DIM = 2, 8, 15.0, 8
LOC_CLASSES = ["jump", "run", "swim"]


def _tiny_dataset(root):
    """ActivityNet-like ids (11 characters), 9 training and 3 validation videos of 10 s, one action
    each; features with channel 0 on inside the action (what a class-agnostic model needs)."""
    rng = np.random.default_rng(0)
    database, meta = {}, FeatureMetadata(STRIDE_FRAMES, CLIP_FRAMES, FPS, DIM, backbone="hand-made")
    meta.save(root / "features")
    for i in range(12):
        video = f"tiny{i:03d}abcd"
        start = float(rng.uniform(0.5, 4.0))
        database[video] = {"subset": "training" if i < 9 else "validation", "duration": 10.0,
                           "annotations": [{"segment": [start, start + 4.0], "label": LOC_CLASSES[i % 3]}]}
        t = (int(10.0 * FPS) - CLIP_FRAMES) // STRIDE_FRAMES + 1
        feats = rng.normal(0, 0.1, (t, DIM)).astype(np.float32)
        centres = meta.clip_centre_s(t)
        feats[(centres >= start) & (centres <= start + 4.0), 0] += 2.0
        save_features(root / "features", f"v_{video}", feats)
    (root / "gt.json").write_text(json.dumps({"database": database}))
    # class scores for two of the three validation videos, keyed with v_ (the other is named)
    scores = {f"v_tiny{i:03d}abcd": [0.09, 0.64, 0.25] for i in (9, 10)}
    (root / "cls.json").write_text(json.dumps({"results": scores, "class": ["swim", "run", "jump"]}))


@pytest.fixture(scope="module")
def fused_run(tmp_path_factory, one_torch_thread):
    from tsplab.localizer import LocalizerConfig, train_localizer

    root = tmp_path_factory.mktemp("fusion_run")
    _tiny_dataset(root)
    cfg = LocalizerConfig(features_dir=str(root / "features"), annotations=str(root / "gt.json"),
                          out_dir=str(root / "run"), epochs=2, batch_size=4, embed_dim=16, num_levels=3,
                          regression_ranges=((0, 4), (4, 8), (8, 10000)), class_agnostic=True,
                          class_scores=str(root / "cls.json"), max_predictions=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_localizer(cfg, progress=False)
    messages = [str(w.message) for w in caught]
    # named twice: before training (the validation videos), after it (the predictions left out)
    assert any("no class scores for 1 of 3 validation video(s) (tiny011abcd)" in m for m in messages)
    assert any("1 of 3 video(s) have no class scores" in m and m.endswith(": tiny011abcd") for m in messages)
    return root, result


def test_localizer_fuses_class_agnostic_predictions(fused_run):
    from tsplab.localizer import load_localizer
    from tsplab.evaluation import evaluate_detection, read_predictions

    root, result = fused_run
    run = result.out_dir
    config = json.loads((run / "config.json").read_text())
    assert (config["class_agnostic"], config["class_scores"], config["fusion_top_k"]) == (
        True, str(root / "cls.json"), 2)
    assert load_localizer(run)[1] == [AGNOSTIC_LABEL]  # one class trained
    own = read_predictions(run / "predictions_unfused.json")
    assert set(own["label"]) == {AGNOSTIC_LABEL} and set(own["video"]) == {f"tiny{i:03d}abcd" for i in (9, 10, 11)}
    fused = read_predictions(run / "predictions.json")
    # recomputed from the model's own predictions: per video, run (0.64) then jump (0.25)
    for video, rows in own[own.video != "tiny011abcd"].groupby("video"):
        mine = fused[fused.video == video]
        best = rows.sort_values("score", ascending=False)
        assert mine["label"].tolist() == ["run"] * len(rows) + ["jump"] * len(rows)
        assert mine["score"].to_numpy() == pytest.approx(np.sqrt(np.r_[0.64 * best["score"], 0.25 * best["score"]]))
        assert mine["t_start_s"].to_numpy() == pytest.approx(np.r_[best["t_start_s"], best["t_start_s"]])
    assert "tiny011abcd" not in set(fused["video"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["class_agnostic"] is True
    assert metrics["fusion"]["videos_without_class_scores"] == ["tiny011abcd"]
    assert metrics["fusion"]["unfused_predictions"] == "predictions_unfused.json"
    assert sorted(metrics["ap_per_class"]) == LOC_CLASSES  # scored against the real labels
    gt = pd.DataFrame([(v, *a["segment"], a["label"]) for v, d in
                       json.loads((root / "gt.json").read_text())["database"].items()
                       if d["subset"] == "validation" for a in d["annotations"]],
                      columns=["video", "t_start_s", "t_end_s", "label"])
    again = evaluate_detection(gt, fused, "activitynet")
    assert metrics["average_mAP"] == pytest.approx(again.average_mAP)


def test_class_agnostic_run_without_fusion_is_scored_class_agnostic(fused_run, tmp_path):
    from dataclasses import replace

    from tsplab.localizer import LocalizerConfig, train_localizer

    root, _ = fused_run
    cfg = LocalizerConfig(features_dir=str(root / "features"), annotations=str(root / "gt.json"),
                          out_dir=str(tmp_path / "run"), epochs=1, batch_size=4, embed_dim=16, num_levels=3,
                          regression_ranges=((0, 4), (4, 8), (8, 10000)), class_agnostic=True)
    result = train_localizer(cfg, progress=False)
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    assert list(metrics["ap_per_class"]) == [AGNOSTIC_LABEL] and "fusion" not in metrics
    assert metrics["num_ground_truth"] == 3 and not (result.out_dir / "predictions_unfused.json").exists()
    with pytest.raises(FileNotFoundError, match="nope.json: class-score file not found"):
        train_localizer(replace(cfg, out_dir=str(tmp_path / "run2"), class_scores=str(tmp_path / "nope.json")))
    assert not (tmp_path / "run2").exists()  # refused before anything was written


def test_cli_localize_refuses_a_bad_class_score_file_before_writing(fused_run, tmp_path, capsys):
    from tsplab.cli import main

    root, _ = fused_run
    (tmp_path / "cls.json").write_text(json.dumps({"results": {"v_tiny009abcd": [1, 0, 0]},
                                                   "class": ["swim", "run", "hop"]}))
    rc = main(["localize", "--features", str(root / "features"), "--annotations", str(root / "gt.json"),
               "--out", str(tmp_path / "run"), "--epochs", "1", "--class-agnostic",
               "--class-scores", str(tmp_path / "cls.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("tsplab localize: error: ")
    assert str(tmp_path / "cls.json") in err[0] and "['hop']" in err[0]
    assert not (tmp_path / "run").exists()
