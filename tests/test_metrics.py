"""Detection mAP and proposal AR@AN against hand-computed values, a step-by-step transcription of the
official ActivityNet algorithm (tie order included) on the real validation ground truth, the real
ActivityNet sample submission, and the ``tsplab evaluate`` command on the issue's bad inputs."""
from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from tsplab.errors import InputError
from tsplab.evaluation import (check_ground_truth, detection_table, evaluate_detection, evaluate_files,
                               evaluate_proposals, interpolated_ap, load_ground_truth, match_predictions,
                               official_order, read_predictions, segment_iou, select_subset,
                               write_predictions)
from tsplab.datasets.presets import ACTIVITYNET_TIOU, get_preset

VALID_GT = "activitynet/activitynet_v1-3_valid_tsp_groundtruth.csv"


def gt_df(rows):
    return pd.DataFrame(rows, columns=["video", "t_start_s", "t_end_s", "label"])


def pred_df(rows):
    return pd.DataFrame(rows, columns=["video", "t_start_s", "t_end_s", "label", "score"])


def quiet(function, *args, **kwargs):
    """Call without showing warnings (the real files' kept instances warn on every evaluation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------

def test_segment_iou_values():
    iou = segment_iou([[0, 10], [5, 15], [3, 3]], [[0, 10], [10, 20], [2, 4], [3, 3]])
    np.testing.assert_allclose(iou, [[1.0, 0.0, 0.2, 0.0], [5 / 15, 5 / 15, 0.0, 0.0],
                                     [0.0, 0.0, 0.0, np.nan]])


def test_zero_length_and_reversed_segments_never_match():
    # The official code lets a 0/0 = NaN tIoU match (NaN is never < threshold): the issue's
    # reproductions (GT [10,20] vs prediction [90,80]; GT [30,10] vs [60,80]) scored 100 %.
    gt = gt_df([("a", 5, 5, "x"), ("a", 10, 20, "x"), ("b", 30, 10, "x")])
    pred = pred_df([("a", 5, 5, "x", 0.9), ("a", 90, 80, "x", 0.8), ("b", 60, 80, "x", 0.7),
                    ("a", 10, 20, "x", 0.6)])
    np.testing.assert_array_equal(match_predictions(gt, pred, [0.5, 0.95]),
                                  [[-1, -1], [-1, -1], [-1, -1], [1, 1]])


def test_zero_length_ground_truth_is_an_unmatchable_positive():
    gt = gt_df([("a", 5, 5, "x"), ("a", 10, 20, "x")])
    pred = pred_df([("a", 5, 5, "x", 0.9), ("a", 10, 20, "x", 0.8)])
    with pytest.warns(UserWarning) as record:
        res = evaluate_detection(gt, pred, tiou_thresholds=[0.5])
    text = " | ".join(str(w.message) for w in record)
    assert "kept 1 ground-truth instance(s) with zero length" in text
    assert "dropped 1 of 2 prediction(s) (1 zero length)" in text
    # the zero-length prediction is dropped, the zero-length instance stays a positive: recall 1/2
    assert res.average_mAP == pytest.approx(0.5) and res.num_ground_truth == 2
    assert res.dropped.to_dict("records") == [{"video": "a", "index": 0,
                                               "reason": "zero length (t_start == t_end)"}]
    assert res.ground_truth_issues[["index", "problem", "action"]].values.tolist() == [
        [0, "zero length", "kept"]]
    assert quiet(evaluate_proposals, gt, pred).ar_at[100] == pytest.approx(0.5)


def test_interpolated_ap_uses_precision_envelope():
    # TP, FP, TP with 2 positives: precision 1, 1/2, 2/3; envelope 1, 2/3, 2/3
    prec = np.array([1.0, 0.5, 2 / 3])
    rec = np.array([0.5, 0.5, 1.0])
    assert interpolated_ap(prec, rec) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert interpolated_ap(np.zeros(0), np.zeros(0)) == 0.0


def test_official_order_is_numpy_default_argsort_reversed_per_group():
    scores = np.round(np.random.default_rng(0).random(300), 1)  # many ties
    groups = np.random.default_rng(1).integers(0, 3, 300)
    order = official_order(groups, scores)
    for g in range(3):
        rows = np.flatnonzero(groups == g)
        np.testing.assert_array_equal(order[groups[order] == g], rows[np.argsort(scores[rows])[::-1]])
    assert (np.diff(groups[order]) >= 0).all()


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

def test_invalid_ground_truth_raises_naming_rows_or_is_dropped_when_lenient():
    gt = gt_df([("vidA", 10, 20, "Jump"), ("vidA", 30, 10, "Jump"), ("vidC", 3, np.nan, "Run"),
                ("vidD", -1, 4, "Run"), ("vidD", 1, 4, None)])
    pred = pred_df([("vidA", 10, 20, "Jump", 0.9)])
    with pytest.raises(InputError) as info:
        evaluate_detection(gt, pred, sources=("gt.csv", "pred.json"))
    message = str(info.value)
    assert "\n" not in message and message.startswith("gt.csv: 4 invalid ground-truth instance(s): ")
    for part in ("video 'vidA' instance 1 [30, 10] 'Jump': reversed", "video 'vidC' instance 0 [3, nan]",
                 "t_end is missing", "video 'vidD' instance 0 [-1, 4] 'Run': negative time",
                 "instance 1 [1, 4]: label is missing", "--lenient"):
        assert part in message
    with pytest.warns(UserWarning, match="dropped 4 invalid ground-truth instance"):
        res = evaluate_detection(gt, pred, lenient=True)
    assert res.average_mAP == 1.0 and res.num_ground_truth == 1
    assert (res.ground_truth_issues["action"] == "dropped").sum() == 4
    report = json.loads(json.dumps(res.to_dict()))["ground_truth_issues"]
    assert report["dropped"] == 4 and report["entries"][1]["t_end_s"] is None  # NaN as null


def test_past_duration_ground_truth_is_kept_with_a_warning():
    gt = gt_df([("a", 10, 25, "x")]).assign(duration_s=20.0)
    with pytest.warns(UserWarning, match="kept 1 ground-truth instance.*end after the video's duration"):
        res = evaluate_detection(gt, pred_df([("a", 10, 25, "x", 1.0)]))
    assert res.average_mAP == 1.0 and res.ground_truth_issues["action"].tolist() == ["kept"]
    _, issues = check_ground_truth(gt.assign(duration_s=30.0))
    assert len(issues) == 0


def test_invalid_predictions_are_dropped_counted_and_named():
    gt = gt_df([("a", 0, 10, "x")])
    pred = pred_df([("a", 0, 10, "x", 0.5), ("a", np.nan, 10, "x", 0.9), ("a", 0, np.inf, "x", 0.9),
                    ("a", 0, 10, "x", np.nan), ("a", -2, 10, "x", 0.9), ("a", 20, 15, "x", 0.9),
                    ("a", 7, 7, "x", 0.9), ("a", 0, 10, "y", 0.9), ("a", "abc", 10, "x", 0.9)])
    with pytest.warns(UserWarning, match=r"dropped 8 of 9 prediction\(s\)") as record:
        res = evaluate_detection(gt, pred)
    assert "row 5 [20, 15] 'x': reversed" in str(record[0].message)
    assert res.average_mAP == 1.0 and res.num_predictions == 1  # without them: 1 TP
    assert res.dropped["index"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert res.dropped["reason"].tolist() == [
        "start or end not a finite number", "start or end not a finite number",
        "score not a finite number", "negative time", "reversed (t_start > t_end)",
        "zero length (t_start == t_end)", "label not in the ground truth",
        "start or end not a finite number"]
    summary = json.loads(json.dumps(res.to_dict()))["dropped_predictions"]
    assert summary["count"] == 8 and summary["by_reason"]["start or end not a finite number"] == 3


def test_thresholds_must_be_in_zero_one():
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        evaluate_detection(gt_df([("a", 0, 1, "x")]), pred_df([]), tiou_thresholds=[0.0, 0.5])


# ---------------------------------------------------------------------------------------------
# Hand-built detection cases with known AP
# ---------------------------------------------------------------------------------------------

def test_duplicate_detection_is_a_false_positive():
    gt = gt_df([("a", 0, 10, "x"), ("a", 20, 30, "x")])
    pred = pred_df([("a", 0, 10, "x", 0.9), ("a", 0, 10, "x", 0.8), ("a", 20, 30, "x", 0.7)])
    res = evaluate_detection(gt, pred, tiou_thresholds=[0.5, 0.9])
    # TP, FP (duplicate), TP: AP = 0.5 * 1 + 0.5 * 2/3
    np.testing.assert_allclose(res.mAP.to_numpy(), [5 / 6, 5 / 6])
    assert res.average_mAP == pytest.approx(5 / 6)


def test_equal_scores_follow_the_official_argsort():
    # The official code ranks a class's predictions by scores.argsort()[::-1]: of two equal scores
    # in file order (FP, TP), the one numpy's default argsort puts last comes first.
    gt = gt_df([("a", 0, 10, "x")])
    pred = pred_df([("a", 50, 60, "x", 0.5), ("a", 0, 10, "x", 0.5)])
    tp_first = np.argsort(np.array([0.5, 0.5]))[::-1][0] == 1
    expected = 1.0 if tp_first else 0.5
    assert evaluate_detection(gt, pred, tiou_thresholds=[0.5]).average_mAP == pytest.approx(expected)
    assert official_detection_ap(gt, pred, [0.5])[0, 0] == pytest.approx(expected)


def test_equal_tiou_ground_truths_are_tried_in_the_official_order():
    # p1 [1, 11] overlaps both instances by 9/11; the official code tries them in
    # argsort(tiou)[::-1] order. If it takes [2, 12], p2 [0, 10] then matches [0, 10] (tIoU 1);
    # if it takes [0, 10], p2 is left [2, 12] at 8/12 < 0.7: a false positive.
    gt = gt_df([("a", 0, 10, "x"), ("a", 2, 12, "x")])
    pred = pred_df([("a", 1, 11, "x", 0.9), ("a", 0, 10, "x", 0.8)])
    second_first = np.argsort(segment_iou([[1, 11]], [[0, 10], [2, 12]])[0])[::-1][0] == 1
    expected = 1.0 if second_first else 0.5
    assert evaluate_detection(gt, pred, tiou_thresholds=[0.7]).average_mAP == pytest.approx(expected)
    assert official_detection_ap(gt, pred, [0.7])[0, 0] == pytest.approx(expected)


def test_lower_iou_ground_truth_is_matched_after_the_best_is_taken():
    gt = gt_df([("a", 0, 10, "x"), ("a", 8, 20, "x")])
    # p2 overlaps gt0 by 9/11 but gt0 is taken by p1; gt1 overlaps p2 by 3/19 = 0.158
    pred = pred_df([("a", 0, 10, "x", 0.9), ("a", 1, 11, "x", 0.8)])
    matched = match_predictions(gt, pred, [0.1, 0.5])
    np.testing.assert_array_equal(matched, [[0, 0], [1, -1]])
    res = evaluate_detection(gt, pred, tiou_thresholds=[0.1, 0.5])
    np.testing.assert_allclose(res.mAP.to_numpy(), [1.0, 0.5])


def test_prediction_on_video_without_ground_truth_is_a_false_positive():
    gt = gt_df([("a", 0, 10, "x")])
    pred = pred_df([("nogt", 0, 10, "x", 0.9), ("a", 0, 10, "x", 0.8)])
    assert evaluate_detection(gt, pred, tiou_thresholds=[0.5]).average_mAP == pytest.approx(0.5)


def test_class_without_predictions_scores_zero_and_unknown_labels_are_dropped():
    gt = gt_df([("a", 0, 10, "x"), ("b", 0, 10, "y")])
    pred = pred_df([("a", 0, 10, "x", 0.9), ("a", 0, 10, "not-a-class", 0.95)])
    with pytest.warns(UserWarning, match="not-a-class"):
        res = evaluate_detection(gt, pred, tiou_thresholds=[0.5])
    assert res.ap.loc["x"].tolist() == [1.0] and res.ap.loc["y"].tolist() == [0.0]
    assert res.average_mAP == pytest.approx(0.5)
    assert res.num_predictions == 1 and res.dropped["reason"].tolist() == ["label not in the ground truth"]


def test_video_prefix_and_excluded_videos():
    # ActivityNet ids with and without the v_ prefix are the same video
    gt = gt_df([("v_JDg--pjY5gg", 0, 10, "x"), ("PLek2e8NlKc", 0, 10, "x")])
    pred = pred_df([("JDg--pjY5gg", 0, 10, "x", 0.9), ("v_PLek2e8NlKc", 30, 40, "x", 0.95)])
    assert evaluate_detection(gt, pred, tiou_thresholds=[0.5]).average_mAP == pytest.approx(0.25)
    res = evaluate_detection(gt, pred, tiou_thresholds=[0.5], exclude_videos=["PLek2e8NlKc"])
    assert res.average_mAP == pytest.approx(1.0) and res.num_ground_truth == 1


def test_summary_and_table_shapes():
    gt = gt_df([("a", 0, 10, "x")])
    res = evaluate_detection(gt, pred_df([("a", 0, 10, "x", 1.0)]), "thumos14")
    assert list(res.summary().columns) == ["mAP@0.30", "mAP@0.40", "mAP@0.50", "mAP@0.60",
                                           "mAP@0.70", "average"]
    table = detection_table({"m1": res, "m2": res})
    assert table.index.tolist() == ["m1", "m2"] and (table.to_numpy() == 1.0).all()
    data = json.loads(json.dumps(res.to_dict()))
    assert data["average_mAP"] == 1.0 and data["preset"] == "thumos14"
    assert data["dropped_predictions"] == {"count": 0, "by_reason": {}, "entries": []}


# ---------------------------------------------------------------------------------------------
# The official algorithm, step by step (eval_detection.compute_average_precision_detection,
# eval_proposal.average_recall_vs_avg_nr_proposals, utils.segment_iou / interpolated_prec_rec),
# written from reading it. ``stable=True`` is tsplab's former order (stable sort on -score, equal
# tIoUs in file order), to show that the tie test can fail.
# ---------------------------------------------------------------------------------------------

def _order(values: np.ndarray, stable: bool) -> np.ndarray:
    return np.argsort(-values, kind="stable") if stable else values.argsort()[::-1]


def _voc_ap(prec: np.ndarray, rec: np.ndarray) -> float:
    mprec, mrec = np.hstack([[0], prec, [0]]), np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def _class_ap(g: pd.DataFrame, p: pd.DataFrame, thresholds, stable: bool) -> np.ndarray:
    """AP [K] of one class: ground truth g and predictions p of the class, in file order."""
    k = len(thresholds)
    if len(p) == 0:
        return np.zeros(k)
    g_start, g_end = g["t_start_s"].to_numpy(float), g["t_end_s"].to_numpy(float)
    by_video: dict = {}
    for j, video in enumerate(g["video"]):
        by_video.setdefault(video, []).append(j)
    order = _order(p["score"].to_numpy(float), stable)
    p_video = p["video"].to_numpy()[order]
    p_start, p_end = p["t_start_s"].to_numpy(float)[order], p["t_end_s"].to_numpy(float)[order]
    lock = np.full((k, len(g)), -1)
    tp, fp = np.zeros((k, len(p))), np.zeros((k, len(p)))
    for i in range(len(p)):
        if p_video[i] not in by_video:
            fp[:, i] = 1
            continue
        rows = np.array(by_video[p_video[i]])
        inter = (np.minimum(p_end[i], g_end[rows]) - np.maximum(p_start[i], g_start[rows])).clip(0)
        union = (g_end[rows] - g_start[rows]) + (p_end[i] - p_start[i]) - inter
        tiou = inter.astype(float) / union
        for t, thr in enumerate(thresholds):
            for j in _order(tiou, stable):
                if tiou[j] < thr:
                    fp[t, i] = 1
                    break
                if lock[t, rows[j]] >= 0:
                    continue
                tp[t, i], lock[t, rows[j]] = 1, i
                break
            if fp[t, i] == 0 and tp[t, i] == 0:
                fp[t, i] = 1
    tp_cum, fp_cum = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
    return np.array([_voc_ap(tp_cum[t] / (tp_cum[t] + fp_cum[t]), tp_cum[t] / len(g)) for t in range(k)])


def official_detection_ap(gt, pred, thresholds, *, stable=False) -> np.ndarray:
    """AP [class (sorted), threshold]."""
    classes = sorted(gt["label"].unique())
    by_class = {c: p for c, p in pred.groupby("label", sort=False)}
    return np.stack([_class_ap(gt[gt["label"] == c], by_class.get(c, pred.iloc[:0]), thresholds, stable)
                     for c in classes])


def official_average_recall(gt, prop, thresholds, max_avg=100.0, *, stable=False):
    """(recall [K, 100], average recall [100], AN [100], AUC)."""
    videos = pd.unique(gt["video"])
    ratio = max_avg * len(videos) / len(prop)
    gt_rows, prop_rows = gt.groupby("video", sort=False).indices, prop.groupby("video", sort=False).indices
    g_seg = gt[["t_start_s", "t_end_s"]].to_numpy(float)
    p_seg = prop[["t_start_s", "t_end_s"]].to_numpy(float)
    scores = prop["score"].to_numpy(float)
    score_lst, total = [], 0
    for video in videos:
        g = g_seg[gt_rows[video]]
        if video not in prop_rows:
            score_lst.append(np.zeros((len(g), 1)))
            continue
        rows = prop_rows[video]
        p = p_seg[rows][_order(scores[rows], stable)]
        nr = min(int(len(p) * ratio), len(p))
        total += nr
        tiou = np.empty((len(g), nr))
        for i in range(nr):
            inter = (np.minimum(p[i, 1], g[:, 1]) - np.maximum(p[i, 0], g[:, 0])).clip(0)
            tiou[:, i] = inter / ((g[:, 1] - g[:, 0]) + (p[i, 1] - p[i, 0]) - inter)
        score_lst.append(tiou)
    pcn = np.arange(1, 101) / 100.0 * (max_avg * len(videos) / total)
    positives = sum(s.shape[0] for s in score_lst)
    recall = np.empty((len(thresholds), 100))
    for r, thr in enumerate(thresholds):
        matches = np.zeros(100)
        for s in score_lst:
            nr = np.minimum((s.shape[1] * pcn).astype(int), s.shape[1])
            # matches at nr proposals = count_nonzero((s >= thr)[:, :nr].sum(axis=1))
            covered = np.logical_or.accumulate(s >= thr, axis=1).sum(axis=0) if s.shape[1] else np.zeros(1)
            matches += np.where(nr > 0, covered[np.maximum(nr - 1, 0)], 0)
        recall[r] = matches / positives
    average = recall.mean(axis=0)
    an = pcn * (float(total) / len(videos))
    return recall, average, an, float(np.trapezoid(average, an) / an[-1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_detection_equals_official_loops(seed):
    rng = np.random.default_rng(seed)
    videos, classes = [f"v{i}" for i in range(6)], ["x", "y", "z"]
    gt_rows = []
    for v in videos:
        for _ in range(rng.integers(0, 5)):
            s = rng.uniform(1, 80)  # times >= 0 after the jitter below: no prediction is dropped
            gt_rows.append((v, s, s + rng.uniform(1, 20), rng.choice(classes)))
    gt = gt_df(gt_rows)
    pred_rows = []
    for v in videos + ["extra"]:
        for _ in range(rng.integers(2, 10)):
            s = rng.uniform(1, 80)
            # coarse scores make many ties; near-duplicates of gt make real matches
            pred_rows.append((v, s, s + rng.uniform(1, 20), rng.choice(classes),
                              rng.integers(0, 5) / 4))
        for row in gt_rows:
            if row[0] == v and rng.random() < 0.7:
                d = rng.normal(0, 0.5, (2, 2)).clip(-0.9, None)  # a good and a duplicate detection
                pred_rows.append((v, row[1] + d[0, 0], row[2] + d[0, 1], row[3],
                                  rng.integers(2, 5) / 4))
                pred_rows.append((v, row[1] + d[1, 0], row[2] + d[1, 1], row[3],
                                  rng.integers(0, 5) / 4))
    pred = pred_df(pred_rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    res = evaluate_detection(gt, pred)
    expected = official_detection_ap(gt, pred, ACTIVITYNET_TIOU)
    np.testing.assert_allclose(res.ap.to_numpy(), expected, rtol=0, atol=1e-12)
    assert 0.2 < res.average_mAP < 0.9  # a non-trivial case


# ---------------------------------------------------------------------------------------------
# Real data: tied scores on ActivityNet v1.3 validation, the official sample submission
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tied_predictions(real_data):
    """The validation ground truth and 10 predictions per video (scores with two decimals, so many
    ties): 5 jittered copies of the video's instances with their label, 5 random segments with
    random labels, plus 20 videos without ground truth; positive length, inside [0, duration]."""
    gt = quiet(load_ground_truth, real_data / VALID_GT)
    rng = np.random.default_rng(10)
    by_video = gt.groupby("video", sort=False)
    videos = np.array(list(by_video.groups) + [f"nogt{i:07d}abc"[:11] for i in range(20)])
    duration = np.r_[by_video["duration_s"].first().to_numpy(), np.full(20, 100.0)]
    n = len(videos) * 10
    video = np.repeat(videos, 10)
    dur = np.repeat(duration, 10)
    start, end = np.sort(rng.random((2, n)) * dur, axis=0)
    label = rng.choice(np.sort(gt["label"].unique()), n)
    near = np.tile(np.arange(10) < 5, len(videos)) & pd.Series(video).isin(set(gt["video"])).to_numpy()
    rows = by_video.indices
    pick = np.array([rows[v][rng.integers(len(rows[v]))] for v in video[near]])
    length = (gt["t_end_s"] - gt["t_start_s"]).to_numpy()[pick] + 1.0
    start[near] = gt["t_start_s"].to_numpy()[pick] + rng.normal(0, 0.1, len(pick)) * length
    end[near] = gt["t_end_s"].to_numpy()[pick] + rng.normal(0, 0.1, len(pick)) * length
    label[near] = gt["label"].to_numpy()[pick]
    start, end = np.clip(np.minimum(start, end), 0, dur), np.clip(np.maximum(start, end), 0, dur)
    pred = pd.DataFrame({"video": video, "t_start_s": start, "t_end_s": np.maximum(end, start + 0.05),
                         "label": label, "score": np.round(rng.random(n), 2)})
    return gt, pred


def test_detection_equals_official_with_ties_on_real_validation(tied_predictions):
    gt, pred = tied_predictions
    res = quiet(evaluate_detection, gt, pred)
    assert len(res.dropped) == 0 and res.num_predictions == len(pred) == 49460
    official = official_detection_ap(gt, pred, ACTIVITYNET_TIOU)
    np.testing.assert_allclose(res.ap.to_numpy(), official, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.mAP.to_numpy(), official.mean(axis=0), rtol=0, atol=1e-9)
    assert 0.1 < res.average_mAP < 0.6
    # The former stable order gives other numbers: the test can fail.
    stable = official_detection_ap(gt, pred, ACTIVITYNET_TIOU, stable=True)
    assert np.abs(stable.mean(axis=0) - official.mean(axis=0)).max() > 1e-5


def test_proposals_equal_official_with_ties_on_real_validation(tied_predictions):
    gt, pred = tied_predictions
    res = quiet(evaluate_proposals, gt, pred)
    recall, average, an, auc = official_average_recall(gt, pred, ACTIVITYNET_TIOU)
    np.testing.assert_allclose(res.recall.to_numpy(), recall, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.average_recall.to_numpy(), average, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.average_recall.index.to_numpy(), an, rtol=0, atol=1e-9)
    assert abs(res.auc - auc) <= 1e-9
    assert res.ar_at[1] == pytest.approx(average[0], abs=1e-12)
    stable = official_average_recall(gt, pred, ACTIVITYNET_TIOU, stable=True)
    assert np.abs(stable[1] - average).max() > 1e-5


def test_sample_submission_scores_one_except_for_zero_length_instances(real_data, tmp_path):
    anet = real_data / "activitynet"
    with pytest.warns(UserWarning) as record:
        res = evaluate_files(anet / "activitynet_v1-3_valid_tsp_groundtruth.csv",
                             anet / "sample_detection_prediction.json")
    assert res.preset == "activitynet"  # inferred from the ids
    assert res.num_ground_truth == 7654 and res.ap.shape == (200, 10)
    # The submission predicts the three zero-length instances with zero-length segments: dropped
    # (named in a warning), and each instance stays a positive nothing matches: AP = (n - 1) / n.
    assert sorted(res.dropped["video"]) == ["6kgJx6ahgq0", "QhiKgeJV3k0", "e6J_ygZ779A"]
    assert any("dropped 3 of 7654 prediction(s) (3 zero length)" in str(w.message) for w in record)
    assert res.num_predictions == 7651
    counts = pd.read_csv(anet / "activitynet_v1-3_valid_tsp_groundtruth.csv").query(
        "`temporal-region-label` == 'Action'")["action-label"].value_counts()
    expected = pd.Series(1.0, index=res.ap.index)
    for label in ("Playing kickball", "High jump", "Playing guitarra"):
        expected[label] = (counts[label] - 1) / counts[label]
    for t in res.ap.columns:
        np.testing.assert_allclose(res.ap[t].to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12)
    assert res.average_mAP == pytest.approx(expected.mean(), abs=1e-12)


def test_predictions_round_trip_and_malformed_entries(tmp_path):
    pred = pred_df([("v_a", 1.0, 2.5, "x", 0.7), ("b", 0.0, 3.0, "y", 0.1)])
    path = write_predictions(pred, tmp_path / "p.json")
    pd.testing.assert_frame_equal(read_predictions(path), pred)
    data = json.loads(path.read_text())
    data["results"]["b"] += [{"segment": [1.0], "label": "y", "score": 0.5}, [1, 2, "y", 0.5],
                             {"segment": [1, 2], "label": "y", "score": "high"}]
    data["results"]["c"] = {"segment": [1, 2]}
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match=r"skipped 4 malformed prediction\(s\): b\[1\]") as record:
        assert len(read_predictions(path)) == 2
    message = str(record[0].message)
    assert "b[2]: not an object" in message and "b[3]: 'score' is 'high'" in message
    assert "c[-1]: not a list" in message
    (tmp_path / "bad.json").write_text(json.dumps({"database": {}}))
    with pytest.raises(InputError, match="bad.json"):
        read_predictions(tmp_path / "bad.json")


def test_select_subset():
    inst = gt_df([("a", 0, 1, "x"), ("b", 0, 1, "x")]).assign(subset=["training", "validation"])
    assert select_subset(inst, None, default="validation")["video"].tolist() == ["b"]
    assert len(select_subset(inst.assign(subset=None), None)) == 2
    with pytest.raises(InputError, match="testing"):
        select_subset(inst, "testing")


# ---------------------------------------------------------------------------------------------
# Proposals: AR@AN on hand-built cases
# ---------------------------------------------------------------------------------------------

def test_average_recall_at_average_number_of_proposals():
    gt = gt_df([("a", 10, 20, ""), ("b", 30, 40, "")])
    props = pred_df([("a", 50, 60, "", 0.9), ("a", 10, 20, "", 0.8),   # hit ranked second
                     ("b", 30, 40, "", 0.9), ("b", 0, 5, "", 0.1)])    # hit ranked first
    res = evaluate_proposals(gt, props)
    # 2 proposals per video: AN=1 sees one (only b's hit), AN>=2 sees both.
    assert res.ar_at == {1: 0.5, 10: 1.0, 100: 1.0}
    assert res.average_recall.index[0] == pytest.approx(1.0)
    assert res.average_recall.index[-1] == pytest.approx(100.0)
    assert res.auc == pytest.approx((0.75 + 98.0) / 100.0)


def test_recall_is_averaged_over_tiou_thresholds():
    gt = gt_df([("a", 0, 100, "")])
    props = pred_df([("a", 0, 72, "", 1.0)])  # tIoU 0.72 passes 0.5..0.7 (5 of 10 thresholds)
    res = evaluate_proposals(gt, props)
    assert res.ar_at[100] == pytest.approx(0.5)
    assert res.recall.loc[0.5].iloc[-1] == 1.0 and res.recall.loc[0.75].iloc[-1] == 0.0


def test_proposals_are_truncated_in_proportion():
    gt = gt_df([("a", 0, 10, ""), ("b", 0, 10, "")])
    # a: 4 proposals, the hit last; b: none. max 1 per video on average -> ratio 0.5: a keeps 2.
    props = pred_df([("a", 20, 30, "", 0.9), ("a", 40, 50, "", 0.8), ("a", 60, 70, "", 0.7),
                     ("a", 0, 10, "", 0.6)])
    one = dataclasses.replace(get_preset("activitynet"), name="one", max_avg_proposals=1, ar_at=(1,))
    assert evaluate_proposals(gt, props, one).ar_at[1] == 0.0
    props.loc[3, "score"] = 0.85  # now ranked second: within the kept two
    assert evaluate_proposals(gt, props, one).ar_at[1] == 0.5


def test_proposal_recall_curve_auc_and_options_by_hand():
    gt = gt_df([("a", 0, 10, "")])
    props = pred_df([("a", 0, 10, "", 0.9), ("a", 50, 60, "", 0.8)])  # the hit ranked first
    res = evaluate_proposals(gt, props, max_avg_proposals=2)
    # ratio = 2 x 1 video / 2 proposals = 1: the video keeps both. Point j (AN = (j + 1) / 100 x 2)
    # looks at int(2 (j + 1) / 100) proposals: the hit counts from j = 49 (AN = 1) on
    ar = res.average_recall
    assert ar.index.name == "AN" and ar.index.to_numpy() == pytest.approx(np.arange(1, 101) / 50)
    assert (ar.iloc[:49] == 0).all() and (ar.iloc[49:] == 1).all()
    assert res.auc == pytest.approx((0.5 * 0.02 + 1.0 * 1.0) / 2)  # area under AR(AN) / AN_max
    assert res.ar_at == {1: 1.0}  # AR@10 and AR@100 need more than 2 proposals per video
    assert (res.preset, res.recall.index.name, res.average_recall.name) == ("activitynet", "tIoU", "AR")
    assert res.recall.columns.equals(ar.index) and res.recall.shape == (10, 100)
    # max 99 per video: AR@1 looks at int(2 x 0.495) = 0 proposals, AR@10 at 2, AR@100 is beyond
    assert evaluate_proposals(gt, props, max_avg_proposals=99).ar_at == {1: 0.0, 10: 1.0}
    # tIoU 0.625: found at 3 of ActivityNet's 10 thresholds (0.5, 0.55, 0.6), or at the one given
    wide = pred_df([("a", 0, 16, "", 0.9)])
    assert evaluate_proposals(gt, wide).average_recall.iloc[-1] == pytest.approx(0.3)
    assert evaluate_proposals(gt, wide, tiou_thresholds=[0.5]).average_recall.iloc[-1] == 1.0
    # an excluded video's instances do not count; a bad ground-truth row is refused unless lenient
    two = gt_df([("a", 0, 10, ""), ("b", 0, 10, "")])
    assert evaluate_proposals(two, wide, tiou_thresholds=[0.5]).average_recall.iloc[-1] == 0.5
    assert evaluate_proposals(two, wide, tiou_thresholds=[0.5], exclude_videos=["b"]).average_recall.iloc[-1] == 1.0
    reversed_row = gt_df([("a", 0, 10, ""), ("b", 10, 5, "")])
    with pytest.raises(InputError, match="ground truth"):
        evaluate_proposals(reversed_row, wide)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lenient = evaluate_proposals(reversed_row, wide, tiou_thresholds=[0.5], lenient=True)
        assert lenient.average_recall.iloc[-1] == 1.0 and len(lenient.ground_truth_issues) == 1
        some_bad = evaluate_proposals(gt, pd.concat([wide, pred_df([("a", 10, 5, "", 0.9)])]))
        assert len(some_bad.dropped) == 1
        with pytest.raises(InputError, match="^proposals: no valid proposals to evaluate$"):
            evaluate_proposals(gt, pred_df([("a", 10, 5, "", 0.9)]))
    assert any(str(w.message).startswith("proposals") for w in caught)


def test_equal_tious_are_resolved_in_every_group_as_the_official_code():
    """Official ``compute_average_precision_detection``: a prediction tries its video's instances in
    ``np.argsort(tiou)[::-1]`` order, so of two identical instances it takes the later one, in every
    (class, video) group matched in the same round, not only the first."""
    gt = gt_df([("v1", 0, 10, "x"), ("v2", 0, 10, "x"), ("v2", 0, 10, "x"), ("v3", 20, 30, "y"), ("v3", 20, 30, "y")])
    pred = pred_df([("v1", 0, 10, "x", 0.9), ("v2", 0, 10, "x", 0.8), ("v3", 20, 30, "y", 0.7)])
    assert match_predictions(gt, pred, [0.5]).tolist() == [[0], [2], [4]]
    # a lower instance first, then two tied ones: the last tied one, whatever their positions
    gt = gt_df([("v", 0, 8, "x"), ("v", 0, 10, "x"), ("v", 0, 10, "x")])
    assert match_predictions(gt, pred_df([("v", 0, 10, "x", 0.9)]), [0.5]).tolist() == [[2]]
    # tIoU >= threshold is a match (official: only tiou < threshold is a false positive): 5 / 10
    assert match_predictions(gt_df([("v", 0, 10, "x")]), pred_df([("v", 0, 5, "x", 0.9)]), [0.5, 0.55]).tolist() \
        == [[0, -1]]


def test_proposal_truncation_and_the_inclusive_threshold():
    # a: 5 proposals, the hit first; b: 1 (a miss); max 1 per video on average over 2 videos:
    # ratio = 2 / 6, so a keeps int(5/3) = 1 and b none (the official truncation). At point p
    # (AN = p) a looks at min(int(1 x 2p), 1) proposals: its instance counts from p = 0.5 (j = 49).
    gt = gt_df([("a", 0, 10, ""), ("b", 0, 10, "")])
    props = pred_df([("a", 0, 10, "", 0.9)] + [("a", 50 + 10 * i, 55 + 10 * i, "", 0.5) for i in range(4)]
                    + [("b", 50, 60, "", 0.9)])
    ar = evaluate_proposals(gt, props, tiou_thresholds=[0.5], max_avg_proposals=1).average_recall
    assert (ar.iloc[:49] == 0).all() and (ar.iloc[49:] == 0.5).all()
    # tIoU >= threshold counts (0.5 exactly here)
    half = evaluate_proposals(gt_df([("a", 0, 10, "")]), pred_df([("a", 0, 5, "", 0.9)]), tiou_thresholds=[0.5])
    assert half.average_recall.iloc[-1] == 1.0
    with pytest.raises(InputError, match="^proposals: none of its 1 predicted video.s. is in ground truth "
                                         ".predicted: 'z'"):
        evaluate_proposals(gt, pred_df([("z", 0, 10, "", 0.9)]))  # only a video without ground truth


def test_ap_classes_are_those_given_and_other_labels_are_ignored():
    from tsplab.evaluation import average_precision_from_matches

    # class "b" only: its one prediction is a TP; the "a" prediction ranked above it is not its FP
    ap = average_precision_from_matches(np.array(["a", "b"]), np.array([0.9, 0.8]), np.array([[False], [True]]),
                                        pd.Series([1], index=["b"]), [0.5])
    assert ap.index.tolist() == ["b"] and ap.iloc[0, 0] == 1.0
    assert (ap.index.name, ap.columns.name, ap.columns.tolist()) == ("label", "tIoU", [0.5])
    # a class without positives (NaN) or without predictions (0) does not stop the classes after it
    ap = average_precision_from_matches(np.array(["c", "c"]), np.array([0.9, 0.8]), np.array([[True], [False]]),
                                        pd.Series([0, 1, 1], index=["a", "b", "c"]), 0.5)  # one threshold
    assert np.isnan(ap.loc["a", 0.5]) and ap.loc["b", 0.5] == 0.0 and ap.loc["c", 0.5] == 1.0
    assert match_predictions(gt_df([("v", 0, 10, "c")]), pred_df([("v", 0, 10, "c", 0.9)]), 0.5).tolist() == [[0]]


# ---------------------------------------------------------------------------------------------
# Command line: the issue's evaluation cases
# ---------------------------------------------------------------------------------------------

def snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


def write_results(path, results):
    path.write_text(json.dumps({"results": results}))
    return str(path)


def one_error_line(capsys, *parts):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tsplab evaluate: error: "), err
    for part in parts:
        assert part in err, (part, err)
    return err


def test_cli_evaluate_prints_and_writes_json(tmp_path, capsys):
    from tsplab.cli import main

    gt = {"version": "1.3", "taxonomy": [], "database": {
        "v_JDg--pjY5gg": {"subset": "validation", "duration": 50.0,
                          "annotations": [{"segment": [0, 10], "label": "x"}]},
        "v_PLek2e8NlKc": {"subset": "training", "duration": 50.0,
                          "annotations": [{"segment": [0, 10], "label": "x"}]}}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    write_predictions(pred_df([("JDg--pjY5gg", 0, 10, "x", 0.9), ("JDg--pjY5gg", 20, 30, "x", 0.95)]),
                      tmp_path / "pred.json")
    files = [str(tmp_path / "gt.json"), str(tmp_path / "pred.json")]
    assert main(["evaluate", *files, "--subset", "validation", "--json",
                 str(tmp_path / "res.json")]) == 0
    out = capsys.readouterr().out
    assert "average" in out and "50.00" in out  # FP ranked first, then the TP: AP 0.5
    assert "Metric preset: activitynet (inferred" in out
    assert json.loads((tmp_path / "res.json").read_text())["average_mAP"] == pytest.approx(0.5)
    assert main(["evaluate", *files, "--proposals"]) == 0  # default subset: validation
    out = capsys.readouterr().out
    assert "AR@100" in out and "AUC" in out and "100.00" in out
    before = snapshot(tmp_path)
    assert main(["evaluate", *files, "--subset", "testing"]) == 2
    one_error_line(capsys, "gt.json", "testing")
    assert snapshot(tmp_path) == before


def test_cli_reversed_prediction_is_dropped_not_a_full_score(tmp_path, capsys):
    """Issue case 1a: GT vidA Jump [10, 20], prediction [90, 80] scored 100.00."""
    from tsplab.cli import main

    (tmp_path / "gt.csv").write_text("video,t_start,t_end,label\nvidA,10,20,Jump\n")
    pred = write_results(tmp_path / "pred.json", {"vidA": [{"segment": [90, 80], "label": "Jump",
                                                            "score": 0.9}]})
    before = snapshot(tmp_path)
    code = main(["evaluate", str(tmp_path / "gt.csv"), pred, "--subset", "validation", "--preset",
                 "activitynet", "--json", str(tmp_path / "res.json")])
    captured = capsys.readouterr()
    assert code == 0
    assert "average    0.00" in captured.out and "Left out: 1 prediction(s)" in captured.out
    assert captured.err.count("\n") == 1 and captured.err.startswith("tsplab evaluate: warning: ")
    assert f"{pred}: dropped 1 of 1 prediction(s) (1 reversed)" in captured.err
    assert "video 'vidA' entry 0 [90, 80] 'Jump': reversed" in captured.err
    result = json.loads((tmp_path / "res.json").read_text())
    assert result["dropped_predictions"]["entries"] == [
        {"video": "vidA", "index": 0, "reason": "reversed (t_start > t_end)"}]
    after = snapshot(tmp_path)
    assert {k: after[k] for k in before} == before


def test_cli_missing_end_in_ground_truth_is_an_error(tmp_path, capsys):
    """Issue case 1b: GT row ``vidC,3,,Run`` scored 100.00 with any prediction of its class."""
    from tsplab.cli import main

    gt = tmp_path / "gt.csv"
    gt.write_text("video,t_start,t_end,label\nvidA,10,20,Jump\nvidC,3,,Run\n")
    pred = write_results(tmp_path / "pred.json", {
        "vidC": [{"segment": [3, 9], "label": "Run", "score": 1}],
        "vidA": [{"segment": [10, 20], "label": "Jump", "score": 1}]})
    args = ["evaluate", str(gt), pred, "--subset", "validation", "--preset", "activitynet"]
    before = snapshot(tmp_path)
    assert main([*args, "--json", str(tmp_path / "res.json")]) == 2
    one_error_line(capsys, str(gt), "video 'vidC'", "t_end is missing", "--lenient")
    assert snapshot(tmp_path) == before  # no --json written
    # --lenient drops the instance and lists it: Run has no ground truth left, Jump is perfect
    assert main([*args, "--lenient", "--json", str(tmp_path / "res.json")]) == 0
    captured = capsys.readouterr()
    assert "dropped 1 invalid ground-truth instance(s) (lenient): video 'vidC'" in captured.err
    assert "Left out: 1 prediction(s), 1 ground-truth instance(s)" in captured.out
    result = json.loads((tmp_path / "res.json").read_text())
    assert result["ground_truth_issues"]["dropped"] == 1 and result["average_mAP"] == 1.0
    assert result["dropped_predictions"]["entries"][0]["reason"] == "label not in the ground truth"


def test_cli_reversed_ground_truth_is_an_error(tmp_path, capsys):
    """Issue case 1c: GT [30, 10] with prediction [60, 80] scored 100.00."""
    from tsplab.cli import main

    gt = tmp_path / "gt.json"
    entry = {"subset": "validation", "duration": 100.0,
             "annotations": [{"segment": [30, 10], "label": "Jump"}]}
    gt.write_text(json.dumps({"database": {"vidA": entry}}))
    pred = write_results(tmp_path / "pred.json",
                         {"vidA": [{"segment": [60, 80], "label": "Jump", "score": 1}]})
    before = snapshot(tmp_path)
    assert main(["evaluate", str(gt), pred, "--preset", "activitynet"]) == 2
    one_error_line(capsys, str(gt), "1 invalid ground-truth instance(s)",
                   "video 'vidA' instance 0 [30, 10] 'Jump': reversed")
    assert snapshot(tmp_path) == before


def test_cli_one_video_under_two_ids(tmp_path, capsys):
    """Issue case 5: ``x`` and ``v_x`` merged silently, so a perfect prediction scored 50 %."""
    from tsplab.cli import main

    entry = {"subset": "validation", "duration": 50.0, "annotations": [{"segment": [0, 10], "label": "x"}]}
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"database": {"JDg--pjY5gg": entry, "v_JDg--pjY5gg": entry}}))
    # predictions: the later key's entries are dropped (here a high-scored false positive)
    pred = write_results(tmp_path / "pred.json", {
        "JDg--pjY5gg": [{"segment": [0, 10], "label": "x", "score": 0.5}],
        "v_JDg--pjY5gg": [{"segment": [30, 40], "label": "x", "score": 0.9}]})
    before = snapshot(tmp_path)
    assert main(["evaluate", str(gt), pred, "--json", str(tmp_path / "res.json")]) == 0
    captured = capsys.readouterr()
    assert "average  100.00" in captured.out  # one instance, matched; not 50.00
    assert "'JDg--pjY5gg'" in captured.err and "v_JDg--pjY5gg" in captured.err
    assert "v_JDg--pjY5gg[0]: video also listed as 'JDg--pjY5gg'" in captured.err
    result = json.loads((tmp_path / "res.json").read_text())
    assert result["num_ground_truth"] == 1 and result["dropped_predictions"]["count"] == 1
    after = snapshot(tmp_path)
    assert {k: after[k] for k in before} == before


def test_cli_prediction_entry_that_is_a_list_is_dropped(tmp_path, capsys):
    """Issue case 8: an entry that is a list gave a traceback."""
    from tsplab.cli import main

    (tmp_path / "gt.csv").write_text("video,t_start,t_end,label\nvidA,10,20,Jump\n")
    pred = write_results(tmp_path / "pred.json", {
        "vidA": [[10, 20, "Jump", 0.9], {"segment": [10, 20], "label": "Jump", "score": 0.5}]})
    assert main(["evaluate", str(tmp_path / "gt.csv"), pred, "--subset", "validation",
                 "--preset", "thumos14"]) == 0
    captured = capsys.readouterr()
    assert "average  100.00" in captured.out
    assert f"{pred}: skipped 1 malformed prediction entries: vidA[0]: not an object" in captured.err


def test_cli_json_output_paths_are_checked_first(tmp_path, capsys):
    """Issue case 8: unwritable or existing-file output paths gave tracebacks."""
    from tsplab.cli import main

    (tmp_path / "gt.csv").write_text("video,t_start,t_end,label\nvidA,10,20,Jump\n")
    pred = write_results(tmp_path / "pred.json",
                         {"vidA": [{"segment": [10, 20], "label": "Jump", "score": 1}]})
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    args = ["evaluate", str(tmp_path / "gt.csv"), pred, "--subset", "validation", "--preset", "activitynet"]
    before = snapshot(tmp_path)
    assert main([*args, "--json", pred]) == 2
    one_error_line(capsys, pred, "--json")
    assert main([*args, "--json", str(tmp_path / "notes.txt" / "res.json")]) == 2
    one_error_line(capsys, str(tmp_path / "notes.txt" / "res.json"), "not a folder")
    assert snapshot(tmp_path) == before


def test_cli_preset_follows_the_dataset(real_data, tmp_path, capsys):
    """Issue case 9: THUMOS14 ground truth was evaluated at ActivityNet's 0.5:0.95 thresholds."""
    from tsplab.cli import main

    gt = real_data / "thumos14" / "thumos14_test_tsp_groundtruth.csv"
    pred = write_results(tmp_path / "pred.json", {"video_test_0000004": [
        {"segment": [0.2, 1.1], "label": "CricketBowling", "score": 0.5}]})
    assert main(["evaluate", str(gt), pred, "--json", str(tmp_path / "res.json")]) == 0
    out = capsys.readouterr().out
    assert "Metric preset: thumos14 (inferred from the ground truth's video ids" in out
    result = json.loads((tmp_path / "res.json").read_text())
    assert result["preset"] == "thumos14"
    np.testing.assert_allclose(result["tiou_thresholds"], [0.3, 0.4, 0.5, 0.6, 0.7])
    # ids of no known dataset: the preset must be named
    (tmp_path / "gt.csv").write_text("video,t_start,t_end,label\nvidA,10,20,Jump\n")
    assert main(["evaluate", str(tmp_path / "gt.csv"), pred, "--subset", "validation"]) == 2
    one_error_line(capsys, str(tmp_path / "gt.csv"), "cannot tell the dataset", "--preset")


# ------------------------------------------------------------------ properties (hypothesis)
def _segments(max_size=6):
    from hypothesis import strategies as st

    bound = st.floats(0, 100, allow_nan=False, width=32).map(lambda x: round(x, 2))
    return st.lists(st.tuples(bound, bound).map(sorted), min_size=1, max_size=max_size)


def _hand_ap(ranked_tp, num_positives):
    """All-point interpolated AP written out: each true positive at rank k adds 1/npos times the best
    precision at rank k or later (VOC 2011 / the official ``interpolated_prec_rec``)."""
    precision, tp = [], 0
    for k, hit in enumerate(ranked_tp, start=1):
        tp += hit
        precision.append(tp / k)
    return sum(max(precision[k:]) / num_positives for k, hit in enumerate(ranked_tp) if hit)


def _ap_of_ranking(ranked_tp, num_positives):
    tp = np.cumsum(ranked_tp, dtype=float)
    fp = np.cumsum(np.logical_not(ranked_tp), dtype=float)
    return interpolated_ap(tp / (tp + fp), tp / num_positives)


def test_tiou_properties():
    from hypothesis import given, settings

    @settings(max_examples=60, deadline=None)
    @given(_segments(), _segments())
    def check(a, b):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # 0/0 is expected (NaN), not a RuntimeWarning
            iou = segment_iou(np.array(a), np.array(b))
        assert iou.shape == (len(a), len(b))
        np.testing.assert_array_equal(iou, segment_iou(np.array(b), np.array(a)).T)  # symmetric
        finite = ~np.isnan(iou)
        assert ((iou[finite] >= 0) & (iou[finite] <= 1)).all()
        for i, (s1, e1) in enumerate(a):
            for j, (s2, e2) in enumerate(b):
                if e1 - s1 == 0 and e2 - s2 == 0:
                    assert np.isnan(iou[i, j])  # 0/0, never a match (official behaviour)
                    continue
                overlap = max(0.0, min(e1, e2) - max(s1, s2))
                assert iou[i, j] == pytest.approx(overlap / ((e1 - s1) + (e2 - s2) - overlap))
                assert (iou[i, j] == 1) == ((s1, e1) == (s2, e2))  # 1 iff the same non-empty segment
    check()


def test_ap_properties():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tsplab.evaluation import average_precision_from_matches

    @settings(max_examples=80, deadline=None)
    @given(st.lists(st.booleans(), min_size=1, max_size=25), st.integers(0, 5), st.integers(0, 4))
    def check(ranked_tp, missed, extra_fp):
        npos = sum(ranked_tp) + missed  # ground truth never found adds to the positives only
        if npos == 0:
            return
        ap = _ap_of_ranking(ranked_tp, npos)
        assert 0 <= ap <= 1
        assert ap == pytest.approx(_hand_ap(ranked_tp, npos), abs=1e-12)
        # false positives ranked after every true positive change nothing
        assert _ap_of_ranking(ranked_tp + [False] * extra_fp, npos) == pytest.approx(ap, abs=1e-12)
        # a perfect ranking scores recall: 1 when every positive is found
        perfect = sorted(ranked_tp, reverse=True)
        assert _ap_of_ranking(perfect, npos) == pytest.approx(sum(ranked_tp) / npos, abs=1e-12)
        assert _ap_of_ranking(perfect, npos) >= ap - 1e-12
        # DETAD's normalised precision with N̄ = the class's own count is the ordinary precision
        k = len(ranked_tp)
        scores = np.linspace(1.0, 0.1, k)
        ordinary = average_precision_from_matches(np.array(["a"] * k), scores, np.array(ranked_tp)[:, None],
                                                  pd.Series([npos], index=["a"]), [0.5])
        normalised = average_precision_from_matches(np.array(["a"] * k), scores, np.array(ranked_tp)[:, None],
                                                    pd.Series([npos], index=["a"]), [0.5],
                                                    normalized_num_positives=float(npos))
        assert ordinary.iloc[0, 0] == pytest.approx(ap, abs=1e-12)
        assert normalised.iloc[0, 0] == pytest.approx(ap, abs=1e-12)
    check()


def test_predicting_the_ground_truth_scores_map_one():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=30, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["v1", "v2"]), st.integers(0, 90), st.integers(1, 10),
                              st.sampled_from(["a", "b"])), min_size=1, max_size=8),
           st.randoms(use_true_random=False))
    def check(rows, rng):
        gt = gt_df([(v, float(s), float(s + n), lab) for v, s, n, lab in rows])
        pred = gt.assign(score=[rng.random() for _ in rows]).sample(frac=1.0, random_state=rng.randrange(100))
        result = evaluate_detection(gt, pred, "activitynet", tiou_thresholds=[0.5, 0.95])
        assert (result.ap.to_numpy() == 1.0).all()
    check()


# ------------------------------------------------------------------ issue 22: nothing lost, nothing silent
def _gt_and_perfect_predictions(tmp_path, n=4):
    gt = tmp_path / "gt.csv"
    gt.write_text("video,t_start,t_end,label\n" + "".join(f"vid{i},{i + 1},{i + 5},Jump\n" for i in range(n)))
    return gt, {f"vid{i}": [{"segment": [i + 1, i + 5], "label": "Jump", "score": 0.9}] for i in range(n)}


def test_cli_a_video_key_written_twice_keeps_its_first_list_and_says_so(tmp_path, capsys, unchanged):
    """The same key twice in ``results`` kept the last list silently (100 -> 75 %)."""
    from tsplab.cli import main

    gt, results = _gt_and_perfect_predictions(tmp_path)
    body = json.dumps({"results": results})
    # vid0 again, a confident false positive: json would keep it and drop the true positive
    pred = tmp_path / "pred.json"
    pred.write_text(body[:-2] + ', "vid0": [{"segment": [50, 60], "label": "Jump", "score": 1.0}]}}')
    with unchanged(gt, pred):
        assert main(["evaluate", str(gt), str(pred), "--subset", "validation", "--preset", "thumos14"]) == 0
    captured = capsys.readouterr()
    assert "average  100.00" in captured.out
    assert captured.err.count("\n") == 1 and f"{pred}: skipped 1 malformed prediction entries: vid0[0]: video " \
        "listed again under the same key (its first list is kept)" in captured.err


def test_cli_predictions_that_match_no_ground_truth_video_stop(tmp_path, capsys, unchanged):
    """Upper-cased ids scored mAP 0.00 with exit 0 and no warning."""
    from tsplab.cli import main

    gt, results = _gt_and_perfect_predictions(tmp_path)
    pred = write_results(tmp_path / "pred.json", {v.upper(): e for v, e in results.items()})
    args = ["evaluate", str(gt), pred, "--subset", "validation", "--preset", "thumos14", "--json",
            str(tmp_path / "res.json")]
    with unchanged(tmp_path):
        assert main(args) == 2
    one_error_line(capsys, f"{pred}: none of its 4 predicted video(s) is in {gt} (predicted: 'VID0', 'VID1'",
                   "the ground truth has e.g. 'vid0', 'vid1', 'vid2'")
    half = {(v.upper() if i % 2 else v): e for i, (v, e) in enumerate(results.items())}
    pred = write_results(tmp_path / "pred.json", half)
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.err == (f"tsplab evaluate: warning: {pred}: 2 of 4 predicted video(s) are not in {gt}, so their "
                            "predictions match nothing: 'VID1', 'VID3'\n")


def test_cli_json_never_replaces_an_existing_file_without_overwrite(tmp_path, capsys, unchanged):
    from tsplab.cli import main

    gt, results = _gt_and_perfect_predictions(tmp_path)
    pred = write_results(tmp_path / "pred.json", results)
    notes = tmp_path / "notes.json"
    notes.write_text("someone's notes")
    args = ["evaluate", str(gt), pred, "--subset", "validation", "--preset", "thumos14", "--json", str(notes)]
    with unchanged(tmp_path):
        assert main(args) == 2
    one_error_line(capsys, f"--json: {notes} already exists; give a new file, or --overwrite to replace it")
    assert main([*args, "--overwrite"]) == 0
    assert json.loads(notes.read_text())["average_mAP"] == 1.0


@pytest.mark.parametrize("kind", ["binary", "folder"])
def test_cli_exclude_that_is_not_a_text_file_is_one_line(tmp_path, capsys, unchanged, kind):
    from tsplab.cli import main

    gt, results = _gt_and_perfect_predictions(tmp_path)
    pred = write_results(tmp_path / "pred.json", results)
    exclude = tmp_path / "exclude.txt"
    if kind == "binary":
        exclude.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    else:
        exclude.mkdir()
    with unchanged(tmp_path):
        assert main(["evaluate", str(gt), pred, "--subset", "validation", "--exclude", str(exclude)]) == 2
    one_error_line(capsys, f"{exclude}: --exclude ", "give a text file with one video id per line")
