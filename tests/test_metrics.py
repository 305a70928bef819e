"""Detection mAP and proposal AR@AN against hand-computed values, a plain-loop transcription of the
ActivityNet algorithm, and the real ActivityNet sample submission."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tsplab.metrics import (ACTIVITYNET_TIOU, MetricPreset, detection_table, evaluate_detection,
                            evaluate_files, evaluate_proposals, interpolated_ap, match_predictions,
                            read_predictions, segment_iou, select_subset, write_predictions)


def gt_df(rows):
    return pd.DataFrame(rows, columns=["video", "t_start_s", "t_end_s", "label"])


def pred_df(rows):
    return pd.DataFrame(rows, columns=["video", "t_start_s", "t_end_s", "label", "score"])


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------

def test_segment_iou_values():
    iou = segment_iou([[0, 10], [5, 15], [3, 3]], [[0, 10], [10, 20], [2, 4], [3, 3]])
    np.testing.assert_allclose(iou, [[1.0, 0.0, 0.2, 0.0], [5 / 15, 5 / 15, 0.0, 0.0],
                                     [0.0, 0.0, 0.0, np.nan]])


def test_zero_length_prediction_matches_zero_length_ground_truth_as_official():
    # The official code rejects only when tiou < threshold; 0/0 = NaN is never less, so it matches.
    gt = gt_df([("a", 5, 5, "x"), ("a", 10, 20, "x")])
    pred = pred_df([("a", 5, 5, "x", 0.9), ("a", 10, 20, "x", 0.8)])
    np.testing.assert_array_equal(match_predictions(gt, pred, [0.5, 0.95]), [[0, 0], [1, 1]])
    # ... but a proposal needs tiou >= threshold: recall 1/2
    assert evaluate_proposals(gt, pred).ar_at[100] == pytest.approx(0.5)


def test_interpolated_ap_uses_precision_envelope():
    # TP, FP, TP with 2 positives: precision 1, 1/2, 2/3; envelope 1, 2/3, 2/3
    prec = np.array([1.0, 0.5, 2 / 3])
    rec = np.array([0.5, 0.5, 1.0])
    assert interpolated_ap(prec, rec) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert interpolated_ap(np.zeros(0), np.zeros(0)) == 0.0


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


def test_equal_scores_keep_input_order():
    gt = gt_df([("a", 0, 10, "x")])
    fp_first = pred_df([("a", 50, 60, "x", 0.5), ("a", 0, 10, "x", 0.5)])
    tp_first = fp_first.iloc[::-1].reset_index(drop=True)
    assert evaluate_detection(gt, fp_first, tiou_thresholds=[0.5]).average_mAP == pytest.approx(0.5)
    assert evaluate_detection(gt, tp_first, tiou_thresholds=[0.5]).average_mAP == pytest.approx(1.0)


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
    assert res.num_predictions == 1


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
    assert json.loads(json.dumps(res.to_dict()))["average_mAP"] == 1.0


# ---------------------------------------------------------------------------------------------
# Random cases against a plain-loop transcription of the official algorithm
# ---------------------------------------------------------------------------------------------

def reference_average_precision(gt, pred, thresholds):
    """Per class AP [C, K] with the official loops: score order (stable), best free gt by tIoU."""
    classes = sorted(gt["label"].unique())
    out = np.zeros((len(classes), len(thresholds)))
    for ci, cls in enumerate(classes):
        g = gt[gt["label"] == cls].reset_index(drop=True)
        p = pred[pred["label"] == cls]
        p = p.iloc[np.argsort(-p["score"].to_numpy(), kind="stable")].reset_index(drop=True)
        for k, thr in enumerate(thresholds):
            locked, tp = set(), []
            for _, row in p.iterrows():
                same = g.index[g["video"] == row["video"]]
                ious = [(segment_iou([[row.t_start_s, row.t_end_s]],
                                     [[g.t_start_s[j], g.t_end_s[j]]])[0, 0], j) for j in same]
                hit = False
                for iou, j in sorted(ious, key=lambda x: -x[0]):
                    if iou < thr:
                        break
                    if j in locked:
                        continue
                    locked.add(j)
                    hit = True
                    break
                tp.append(hit)
            tp = np.array(tp, dtype=float)
            if len(tp) == 0:
                continue
            tpc, fpc = np.cumsum(tp), np.cumsum(1 - tp)
            prec = np.r_[0, tpc / (tpc + fpc), 0]
            rec = np.r_[0, tpc / len(g), 1]
            for i in range(len(prec) - 2, -1, -1):
                prec[i] = max(prec[i], prec[i + 1])
            idx = np.where(rec[1:] != rec[:-1])[0] + 1
            out[ci, k] = np.sum((rec[idx] - rec[idx - 1]) * prec[idx])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_detection_equals_reference_loops(seed):
    rng = np.random.default_rng(seed)
    videos, classes = [f"v{i}" for i in range(6)], ["x", "y", "z"]
    gt_rows = []
    for v in videos:
        for _ in range(rng.integers(0, 5)):
            s = rng.uniform(0, 80)
            gt_rows.append((v, s, s + rng.uniform(1, 20), rng.choice(classes)))
    gt = gt_df(gt_rows)
    pred_rows = []
    for v in videos + ["extra"]:
        for _ in range(rng.integers(2, 10)):
            s = rng.uniform(0, 80)
            # coarse scores make many ties; near-duplicates of gt make real matches
            pred_rows.append((v, s, s + rng.uniform(1, 20), rng.choice(classes),
                              rng.integers(0, 5) / 4))
        for row in gt_rows:
            if row[0] == v and rng.random() < 0.7:
                d = rng.normal(0, 0.5, (2, 2))  # a good and a duplicate detection
                pred_rows.append((v, row[1] + d[0, 0], row[2] + d[0, 1], row[3],
                                  rng.integers(2, 5) / 4))
                pred_rows.append((v, row[1] + d[1, 0], row[2] + d[1, 1], row[3],
                                  rng.integers(0, 5) / 4))
    pred = pred_df(pred_rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    res = evaluate_detection(gt, pred)
    expected = reference_average_precision(gt, pred, ACTIVITYNET_TIOU)
    np.testing.assert_allclose(res.ap.to_numpy(), expected, rtol=0, atol=1e-12)
    assert 0.2 < res.average_mAP < 0.9  # a non-trivial case


# ---------------------------------------------------------------------------------------------
# Real data: the official sample submission scores 1.0 everywhere
# ---------------------------------------------------------------------------------------------

def test_sample_submission_scores_one_at_every_threshold(shared_data, tmp_path):
    anet = shared_data / "activitynet"
    res = evaluate_files(anet / "activitynet_v1-3_valid_tsp_groundtruth.csv",
                         anet / "sample_detection_prediction.json", "activitynet")
    assert res.num_ground_truth == 7654 and res.ap.shape == (200, 10)
    np.testing.assert_allclose(res.mAP.to_numpy(), np.ones(10), atol=1e-12)
    assert res.average_mAP == pytest.approx(1.0)


def test_predictions_round_trip_and_malformed_entries(tmp_path):
    pred = pred_df([("v_a", 1.0, 2.5, "x", 0.7), ("b", 0.0, 3.0, "y", 0.1)])
    path = write_predictions(pred, tmp_path / "p.json")
    pd.testing.assert_frame_equal(read_predictions(path), pred)
    data = json.loads(path.read_text())
    data["results"]["b"].append({"segment": [1.0], "label": "y", "score": 0.5})
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match=r"b\[1\]"):
        assert len(read_predictions(path)) == 2
    (tmp_path / "bad.json").write_text(json.dumps({"database": {}}))
    with pytest.raises(ValueError, match="bad.json"):
        read_predictions(tmp_path / "bad.json")


def test_select_subset():
    inst = gt_df([("a", 0, 1, "x"), ("b", 0, 1, "x")]).assign(subset=["training", "validation"])
    assert select_subset(inst, None, default="validation")["video"].tolist() == ["b"]
    assert len(select_subset(inst.assign(subset=None), None)) == 2
    with pytest.raises(ValueError, match="testing"):
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
    one = MetricPreset("one", ACTIVITYNET_TIOU, "validation", max_avg_proposals=1, ar_at=(1,))
    assert evaluate_proposals(gt, props, one).ar_at[1] == 0.0
    props.loc[3, "score"] = 0.85  # now ranked second: within the kept two
    assert evaluate_proposals(gt, props, one).ar_at[1] == 0.5


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

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
    assert json.loads((tmp_path / "res.json").read_text())["average_mAP"] == pytest.approx(0.5)
    assert main(["evaluate", *files, "--proposals"]) == 0  # default subset: validation
    out = capsys.readouterr().out
    assert "AR@100" in out and "AUC" in out and "100.00" in out
    assert main(["evaluate", *files, "--subset", "testing"]) == 1
    assert "testing" in capsys.readouterr().err
