"""DETAD buckets, per-bucket average mAP_N (hand-computed) and the perturbed-ground-truth helper."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsplab.evaluation import (BucketSpec, assign_buckets, bucket_average_map, bucket_shares, bucket_table,
                               evaluate_detection, get_bucket_spec, instance_characteristics,
                               load_ground_truth, perturb_ground_truth)
from tsplab.errors import InputError


def gt_df(rows):
    return pd.DataFrame(rows, columns=["video", "t_start_s", "t_end_s", "label"])


def pred_df(rows):
    return pd.DataFrame(rows, columns=["video", "t_start_s", "t_end_s", "label", "score"])


def test_length_buckets_are_right_closed():
    inst = gt_df([("a", 0, 30, "x"), ("a", 0, 30.5, "x"), ("b", 10, 10.1, "x"), ("b", 0, 500, "x")])
    assert assign_buckets(inst, "length").tolist() == ["XS", "S", "XS", "XL"]
    assert assign_buckets(inst, "length", preset="thumos14").tolist() == ["XL", "XL", "XS", "XL"]
    assert assign_buckets(inst, "length").name == "length"
    # the lowest edge is included: a zero-length instance is in the first bucket, not outside
    assert assign_buckets(gt_df([("c", 5, 5, "x")]), "length").tolist() == ["XS"]
    custom = BucketSpec("length", (0, 1, np.inf), ("short", "long"))
    assert assign_buckets(inst, custom).tolist() == ["long", "long", "short", "long"]
    with pytest.raises(ValueError, match="labels"):
        BucketSpec("length", (0, 1, 2), ("a",))


def test_characteristics_coverage_and_instances_per_video():
    inst = gt_df([("v_JDg--pjY5gg", 0, 30, "x"), ("JDg--pjY5gg", 40, 200, "y"), ("b", 0, 5, "x")])
    table = instance_characteristics(inst, durations={"JDg--pjY5gg": 100.0, "b": 50.0})
    assert table["num_instances"].tolist() == [2, 2, 1]
    np.testing.assert_allclose(table["coverage"], [0.3, 1.0, 0.1])  # 160 s of 100 s: clipped
    assert assign_buckets(inst, "coverage", durations={"JDg--pjY5gg": 100.0, "b": 50.0}).tolist() \
        == ["S", "XL", "XS"]
    assert assign_buckets(inst, "num_instances").tolist() == ["S", "S", "XS"]
    with pytest.raises(ValueError, match=r"^coverage buckets need video durations: pass durations="
                                         r"\{video: seconds\} \(e\.g\. Annotations\.videos\.set_index"):
        assign_buckets(inst, "coverage")


def test_activitynet_validation_length_shares(real_data):
    """TSP Table 7's first row: the real ActivityNet validation length shares."""
    gt = load_ground_truth(real_data / "activitynet" / "activitynet_v1-3_valid_tsp_groundtruth.csv")
    shares = bucket_shares(gt, "length")
    assert shares["bucket"].tolist() == ["XS", "S", "M", "L", "XL"]
    assert shares["share_pct"].round(1).tolist() == [53.6, 16.2, 16.8, 9.4, 4.1]
    assert shares["count"].sum() == 7654 - 3  # the three zero-length instances are left out
    assert shares["interval"].tolist()[0] == "(0, 30]"


def test_bucket_average_map_by_hand():
    # N̄ = 3 instances / 2 classes = 1.5
    gt = gt_df([("v1", 0, 10, "x"), ("v2", 0, 200, "x"), ("v3", 0, 20, "y")])
    pred = pred_df([("v1", 50, 60, "x", 0.9), ("v2", 0, 200, "x", 0.8), ("v3", 0, 20, "y", 0.7)])
    res = bucket_average_map(gt, pred, "length", tiou_thresholds=[0.5]).set_index("bucket")
    # XS: x keeps only its false positive (AP 0), y is perfect (AP 1)
    assert res.loc["XS", "average_mAP"] == pytest.approx(0.5)
    # XL: x = FP then TP: precision at the TP = 1.5 / (1.5 + 1) = 0.6; y has no XL instance
    assert res.loc["XL", "average_mAP"] == pytest.approx(0.6)
    assert np.isnan(res.loc["M", "average_mAP"]) and res.loc["M", "num_instances"] == 0
    # all: x = FP, TP with 2 positives: 0.5 * 0.75 / 1.75; y = 1
    assert res.loc["all", "average_mAP"] == pytest.approx((0.5 * 0.75 / 1.75 + 1) / 2)
    plain = bucket_average_map(gt, pred, "length", tiou_thresholds=[0.5], normalized=False)
    assert plain.set_index("bucket").loc["XL", "average_mAP"] == pytest.approx(0.5)


def test_bucket_average_map_thresholds_defaults_and_matches_of_other_buckets():
    """DETAD: a prediction that found an instance of another bucket is left out of this bucket's AP
    (not a false positive); the default thresholds are the preset's (ActivityNet 0.5:0.05:0.95)."""
    gt = gt_df([("v1", 0, 10, "x"), ("v2", 0, 200, "x")])  # XS and XL; N̄ = 2 instances / 1 class
    pred = pred_df([("v1", 0, 10, "x", 0.9), ("v2", 0, 125, "x", 0.8)])  # tIoU 1 and 0.625
    res = bucket_average_map(gt, pred).set_index("bucket")  # spec "length" by default
    assert res.equals(bucket_average_map(gt, pred, "length").set_index("bucket"))
    # all: the 0.625 prediction is a TP at 3 of the 10 thresholds (AP_N 1) and an FP after the
    # first TP at the other 7 (AP_N = recall 0.5 x precision 1)
    assert res.loc["all", "average_mAP"] == pytest.approx((3 * 1.0 + 7 * 0.5) / 10)
    assert (res.loc["all", "interval"], res.loc["all", "num_instances"]) == ("", 2)
    assert res["interval"].tolist()[1:] == list(get_bucket_spec("length").intervals())
    # XL: the first prediction matched the XS instance at every threshold: left out, so AP_N 1 at
    # the 3 thresholds the second one reaches and 0 at the others
    assert res.loc["XL", "average_mAP"] == pytest.approx(0.3)
    assert res.loc["XS", "average_mAP"] == pytest.approx(1.0)  # the second never matched XS: left out
    one = bucket_average_map(gt, pred, tiou_thresholds=[0.5]).set_index("bucket")
    assert one.loc["XL", "average_mAP"] == pytest.approx(1.0)
    # THUMOS14: its own edges (10 s is M there) and its own DETAD threshold 0.5
    thumos = bucket_average_map(gt, pred, preset="thumos14").set_index("bucket")
    assert thumos.loc["M", "num_instances"] == 1 and thumos.loc["XL", "average_mAP"] == pytest.approx(1.0)
    synthetic = bucket_average_map(gt, pred, preset="synthetic").set_index("bucket")["num_instances"]
    expected = assign_buckets(gt, "length", preset="synthetic").value_counts()
    assert synthetic.drop("all").to_dict() == {b: int(expected.get(b, 0)) for b in synthetic.drop("all").index}
    # coverage needs the durations; excluded videos leave the analysis
    cover = bucket_average_map(gt, pred, "coverage", durations={"v1": 100.0, "v2": 400.0}).set_index("bucket")
    expected = assign_buckets(gt, "coverage", durations={"v1": 100.0, "v2": 400.0}).value_counts()
    assert cover["num_instances"].drop("all").to_dict() == {b: int(expected.get(b, 0))
                                                            for b in cover.drop("all").index}
    assert bucket_average_map(gt, pred, exclude_videos=["v2"]).set_index("bucket").loc["all", "num_instances"] == 1


@pytest.fixture(scope="module")
def thumos_test(real_data):
    from tsplab.datasets import read_annotations

    ann = read_annotations(real_data / "thumos14" / "thumos14_test_tsp_groundtruth.csv")
    return ann.instances, ann.videos.set_index("video")["duration_s"]


def test_perturbed_predictions_are_valid_and_reproducible(thumos_test):
    gt, durations = thumos_test
    a = perturb_ground_truth(gt, seed=3, durations=durations)
    pd.testing.assert_frame_equal(a, perturb_ground_truth(gt, seed=3, durations=durations))
    assert list(a.columns) == ["video", "t_start_s", "t_end_s", "label", "score"]
    assert (a["t_end_s"] > a["t_start_s"]).all() and (a["t_start_s"] >= 0).all()
    span = np.fmax(a["video"].map(durations), a["video"].map(gt.groupby("video")["t_end_s"].max()))
    assert (a["t_end_s"] <= span + 1e-9).all()
    assert a["score"].between(0, 1).all() and set(a["label"]) <= set(gt["label"])
    perfect = perturb_ground_truth(gt, seed=0, boundary_jitter=0, drop_rate=0, label_error_rate=0,
                                   false_positives_per_video=0)
    assert evaluate_detection(gt, perfect, "thumos14").average_mAP == pytest.approx(1.0)


def test_method_worse_on_short_actions_shows_in_the_length_table(thumos_test):
    gt, durations = thumos_test
    common = dict(boundary_jitter=0.05, short_length_s=3.0, durations=durations)
    worse_short = perturb_ground_truth(gt, seed=1, short_boundary_jitter=0.4, short_drop_rate=0.5,
                                       **common)
    better_short = perturb_ground_truth(gt, seed=2, short_boundary_jitter=0.05, **common)
    table = bucket_table(gt, {"worse_short": worse_short, "better_short": better_short}, "length",
                         preset="thumos14")
    assert table.index.tolist() == ["% of instances", "worse_short", "better_short"]
    assert table.columns.tolist() == ["XS", "S", "M", "L", "XL", "all"]
    assert table.loc["% of instances", ["XS", "S", "M", "L", "XL"]].sum() == pytest.approx(100)
    assert table.loc["better_short", "XS"] > table.loc["worse_short", "XS"] + 20
    # longer actions are perturbed alike: the two methods stay close there
    assert abs(table.loc["better_short", "M"] - table.loc["worse_short", "M"]) < 8
    # the unnormalised 'all' column is the plain average mAP at DETAD's THUMOS threshold (0.5)
    plain = bucket_average_map(gt, better_short, "length", preset="thumos14", normalized=False)
    expected = evaluate_detection(gt, better_short, tiou_thresholds=[0.5]).average_mAP
    assert plain.set_index("bucket").loc["all", "average_mAP"] == pytest.approx(expected)


def test_synthetic_preset_uses_the_benchmark_edges():
    from tsplab.datasets.presets import SYNTHETIC_LENGTH_EDGES_S

    spec = get_bucket_spec("length", "synthetic")
    assert spec.edges == SYNTHETIC_LENGTH_EDGES_S and spec.labels == ("XS", "S", "M", "L", "XL")
    inst = gt_df([("a", 0, 0.5, "x"), ("a", 1, 2.0, "x"), ("b", 0, 4.0, "y")])
    assert assign_buckets(inst, "length", preset="synthetic").tolist() == ["XS", "S", "XL"]
    assert assign_buckets(inst, "num_instances", preset="synthetic").tolist() == ["S", "S", "XS"]


def test_unknown_names_are_named_in_errors():
    with pytest.raises(ValueError, match="context"):
        get_bucket_spec("context")
    with pytest.raises(ValueError, match="kinetics"):
        get_bucket_spec("length", preset="kinetics")


@pytest.mark.slow
def test_notebook_06_runs_on_real_thumos_ground_truth(real_data, tmp_path):
    """Notebook 06 with its committed defaults (real THUMOS14 test ground truth, perturbed
    predictions), writing the predictions to a temporary folder instead of runs/tiny."""
    import nbformat
    import papermill

    from tsplab.evaluation import read_predictions
    from tsplab.runs import repo_root

    notebooks = repo_root() / "notebooks"
    out = tmp_path / "06.ipynb"
    papermill.execute_notebook(str(notebooks / "06_detad_length_analysis.ipynb"), str(out),
                               parameters={"predictions_dir": str(tmp_path / "predictions")},
                               cwd=str(notebooks), kernel_name="python3", progress_bar=False)
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == [
        "better_on_short.json", "worse_on_short.json"]
    assert len(read_predictions(tmp_path / "predictions" / "worse_on_short.json")) > 1000
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") + o.get("data", {}).get("text/html", "")
                     for c in nbformat.read(out, 4).cells for o in c.get("outputs", []))  # tables are styled HTML
    assert "% of instances" in text and "mAP@0.50" in text
    images = sum("image/png" in o.get("data", {}) for c in nbformat.read(out, 4).cells
                 for o in c.get("outputs", []))
    assert images >= 4


# --- tsplab.evaluation.pretend_predictions and available_characteristics (notebook 06) ------------

GT = pd.DataFrame({"video": ["a", "a", "b", "b", "c"], "t_start_s": [0.0, 10.0, 2.0, 20.0, 5.0],
                   "t_end_s": [2.0, 30.0, 4.5, 55.0, 6.0], "label": ["x", "y", "x", "y", "x"]})


def test_pretend_predictions_short_means_the_presets_first_length_bucket():
    from tsplab.evaluation import pretend_predictions

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
    from tsplab.evaluation import pretend_predictions

    same = dict(boundary_jitter=0.2)
    preds = pretend_predictions(GT, {"one": same, "two": same}, seed=5)
    assert not preds["one"]["t_start_s"].equals(preds["two"]["t_start_s"])  # seeds 5 and 6
    again = pretend_predictions(GT, {"zero": {}, "two": same}, seed=5)
    pd.testing.assert_frame_equal(again["two"], preds["two"])  # method i uses seed + i
    with pytest.raises(InputError, match=r"perturbations\['one'\]: unknown arguments \['jitter'\]; valid: "
                                         r"boundary_jitter, drop_rate"):
        pretend_predictions(GT, {"one": {"jitter": 0.1}})


def test_available_characteristics_coverage_needs_every_duration():
    from tsplab.evaluation import available_characteristics

    assert available_characteristics(pd.Series([10.0, 20.0])) == ["length", "coverage", "num_instances"]
    assert available_characteristics(pd.Series([10.0, np.nan])) == ["length", "num_instances"]
    assert available_characteristics(None) == ["length", "num_instances"]
