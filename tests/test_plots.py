"""The figures draw what they are given and fit JupyterLab's output width (the similarity matrices'
content is tested in test_similarity.py; here the browser widget's layout and messages)."""
from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from tsplab.evaluation import bucket_shares, bucket_table, evaluate_detection
from tsplab.plots import (figure_to_png, plot_bucket_map, plot_bucket_shares,
                          plot_frames_with_annotation, plot_length_histogram, plot_map_vs_tiou)

INSTANCES = pd.DataFrame({"video": ["a", "a", "b", "b"], "t_start_s": [0.0, 40.0, 5.0, 10.0],
                          "t_end_s": [20.0, 100.0, 205.0, 10.0], "label": ["x", "y", "x", "y"]})



@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")

def dashed_lines(ax):
    return [line for line in ax.get_lines() if line.get_linestyle() == "--"]


def test_length_histogram_draws_bucket_edges():
    fig = plot_length_histogram(INSTANCES)
    ax = fig.axes[0]
    assert isinstance(fig, Figure)
    # edges inside the data range (0..200 s): 30, 60, 120, 180
    assert [line.get_xdata()[0] for line in dashed_lines(ax)] == [30, 60, 120, 180]
    assert [t.get_text() for t in ax.texts] == ["XS", "S", "M", "L", "XL"]
    assert ax.get_title() == "3 actions"  # the zero-length one is left out
    fig = plot_length_histogram(INSTANCES, edges_s=[0, 50, np.inf], labels=["short", "long"])
    assert [line.get_xdata()[0] for line in dashed_lines(fig.axes[0])] == [50]


def test_bucket_shares_bars():
    shares = pd.concat([bucket_shares(INSTANCES, "length"), bucket_shares(INSTANCES, "num_instances")])
    fig = plot_bucket_shares(shares)
    assert [ax.get_title() for ax in fig.axes] == ["length", "num_instances"]
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, [100 / 3, 100 / 3, 0, 0, 100 / 3])  # 20, 60, 200 s


def test_frames_with_annotation():
    frames = np.random.default_rng(0).integers(0, 255, (30, 8, 10, 3), dtype=np.uint8)
    fig = plot_frames_with_annotation(frames, 10.0, INSTANCES[INSTANCES.video == "a"], num_shown=4)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 4
    assert [ax.get_title() for ax in image_axes] == ["1: 0.0 s", "2: 1.0 s", "3: 1.9 s", "4: 2.9 s"]
    timeline = [ax for ax in fig.axes if not ax.images][0]
    assert timeline.get_xlim() == (0.0, 3.0)
    assert len(timeline.collections) == 2  # one bar per action
    assert [t.get_text() for t in timeline.texts] == ["1", "2", "3", "4"]
    assert figure_to_png(fig)[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no frames"):
        plot_frames_with_annotation(frames[:0], 10.0, INSTANCES)


def test_detection_figures():
    # A zero-length instance can never be matched (tsplab.evaluation), so a perfect prediction of
    # INSTANCES would not score 100: these figures use the three instances with a length.
    instances = INSTANCES[INSTANCES.t_end_s > INSTANCES.t_start_s]
    pred = instances.assign(score=1.0)
    results = {"perfect": evaluate_detection(instances, pred),
               "half": evaluate_detection(instances, pred[pred.label == "x"])}
    fig = plot_map_vs_tiou(results)
    lines = fig.axes[0].get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), 100.0)
    np.testing.assert_allclose(lines[1].get_ydata(), 50.0)
    table = bucket_table(instances, {"perfect": pred}, "length")
    fig = plot_bucket_map(table)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "XS\n(33.3%)"
    assert [p.get_height() for p in ax.patches][0] == pytest.approx(100.0)
    assert len(dashed_lines(ax)) == 1


# --- figures at their natural size, in JupyterLab's ~1,000 px output area ----------------------

def width_px(fig, dpi=100):
    """Width of ``fig`` as the inline backend shows it (100 dpi)."""
    return fig.get_size_inches()[0] * dpi


def test_many_panel_figures_fit_the_output_width():
    from tsplab.plots import MAX_WIDTH_IN, plot_localizer_losses

    shares = pd.concat([bucket_shares(INSTANCES, c, durations=pd.Series({"a": 200.0, "b": 300.0}))
                        for c in ("length", "coverage", "num_instances")])
    fig = plot_bucket_shares(shares)
    assert len(fig.axes) == 3 and width_px(fig) <= 100 * MAX_WIDTH_IN  # was 1,260 px
    history = pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0], "cls": [1.0, 0.5], "reg": [0.5, 0.3],
                            "sens": [0.3, 0.1], "ascl": [0.2, 0.1]})
    fig = plot_localizer_losses(history)
    # 5 terms: 2 rows of at most 3 panels (was one row, 1,650 px); no empty panel left over.
    assert [ax.get_title() for ax in fig.axes] == ["total", "cls", "reg", "sens", "ascl"]
    assert [ax.get_subplotspec().rowspan.start for ax in fig.axes] == [0, 0, 0, 1, 1]
    assert width_px(fig) <= 100 * MAX_WIDTH_IN
    frames = np.zeros((30, 8, 10, 3), dtype=np.uint8)
    assert width_px(plot_frames_with_annotation(frames, 10.0, INSTANCES[:0])) <= 100 * MAX_WIDTH_IN


# --- notebook 02: clips as a pretraining dataset returns them ------------------------------------

def test_plot_clips_rows_regions_and_timeline():
    from tsplab.plots import ACTION_COLOR, plot_clips

    rng = np.random.default_rng(0)
    items = [{"clip": rng.integers(0, 255, (4, 6, 6, 3), dtype=np.uint8), "t_start_s": 0.5,
              "region_label": 1, "action_label": 0},
             {"clip": rng.integers(0, 255, (4, 6, 6, 3), dtype=np.uint8), "t_start_s": 2.0,
              "region_label": 0, "action_label": -1}]
    action = pd.DataFrame({"t_start_s": [0.25], "t_end_s": [4.0], "label": ["jump"]})
    fig = plot_clips(items, 4.0, instances_of_video=action, duration_s=3.0)
    frames = [ax for ax in fig.axes if ax.images]
    assert len(frames) == 8  # 2 clips x 4 frames
    assert [ax.get_title() for ax in frames[:4]] == ["0.50 s", "0.75 s", "1.00 s", "1.25 s"]
    assert frames[0].get_ylabel() == "clip 1\naction" and frames[4].get_ylabel() == "clip 2\nbackground"
    green = plt.matplotlib.colors.to_rgb(ACTION_COLOR)
    assert frames[0].spines["left"].get_edgecolor()[:3] == pytest.approx(green)
    assert frames[4].spines["left"].get_edgecolor()[:3] != pytest.approx(green)
    timeline = [ax for ax in fig.axes if not ax.images][0]
    outlines = [p for p in timeline.patches if not p.get_fill()]
    assert [(p.get_x(), p.get_width()) for p in outlines] == [(0.5, 1.0), (2.0, 1.0)]  # 4 frames at 4 fps
    assert timeline.get_xlim() == (0.0, 4.0)  # the action reaches past duration_s
    assert [t.get_text() for t in timeline.texts] == [" jump", "1", "2"]
    long_clip = [{**items[0], "clip": np.zeros((16, 6, 6, 3), dtype=np.uint8)}]
    shown = [ax.get_title() for ax in plot_clips(long_clip, 16.0, max_frames=4).axes if ax.images]
    assert shown == ["0.50 s", "0.81 s", "1.12 s", "1.44 s"]  # frames 0, 5, 10, 15
    with pytest.raises(ValueError, match="no clips"):
        plot_clips([], 4.0)


# --- notebook 03: the columns that matter first ---------------------------------------------------

def test_pretrain_metrics_overview_keeps_the_key_columns_in_order():
    from tsplab.plots import pretrain_metrics_overview

    tac = pd.DataFrame({"epoch": [0, 1], "lr_backbone": [1e-3, 1e-3], "train_loss": [1.0, 0.8],
                        "train_loss_action": [1.0, 0.8], "valid_loss": [1.1, 0.9], "valid_acc_action": [0.3, 0.5],
                        "valid_acc_avg": [0.3, 0.5], "data_wait_share": [0.1, 0.05], "clips_per_s": [90.0, 95.0],
                        "train_seconds": [1.0, 1.0]})
    tsp = tac.assign(train_loss_region=[0.7, 0.6], valid_acc_region=[0.5, 0.6])
    one = pretrain_metrics_overview(tac)
    assert list(one.columns) == ["epoch", "train_loss", "valid_loss", "valid_acc_action", "valid_acc_avg",
                                 "data_wait_share", "clips_per_s"]
    both = pretrain_metrics_overview({"tac": tac, "tsp": tsp})
    assert list(both.columns) == ["run", "epoch", "train_loss", "valid_loss", "valid_acc_action",
                                  "valid_acc_region", "valid_acc_avg", "data_wait_share", "clips_per_s"]
    assert both["run"].tolist() == ["tac", "tac", "tsp", "tsp"]
    assert both["valid_acc_region"].isna().tolist() == [True, True, False, False]


# --- notebook 07: the similarity browser -----------------------------------------------------------

@pytest.fixture
def two_feature_sets(tmp_path):
    from tsplab.features import FeatureMetadata, save_features

    rng = np.random.default_rng(1)
    folders = {name: tmp_path / name for name in ("tac", "tsp")}
    for folder in folders.values():
        FeatureMetadata(stride_frames=1, clip_length_frames=1, frame_rate=1.0, feature_dim=4).save(folder)
        for video in ("a", "b"):
            save_features(folder, video, rng.normal(size=(12, 4)))
    instances = pd.DataFrame({"video": ["a", "b"], "t_start_s": [2.0, 3.0], "t_end_s": [6.0, 9.0],
                              "label": ["x", "x"]})
    return folders, instances


def test_similarity_browser_shows_its_picture_at_natural_size_side_by_side(two_feature_sets):
    from PIL import Image

    from tsplab.plots import SimilarityBrowser

    folders, instances = two_feature_sets
    browser = SimilarityBrowser(folders, instances)
    with Image.open(io.BytesIO(browser.image.value)) as png:
        width, height = png.size
    assert (browser.image.layout.width, browser.image.layout.height) == (f"{width}px", f"{height}px")
    assert browser.image.layout.align_self == "flex-start"  # not stretched by the VBox
    assert width > height  # the two feature sets side by side, not stacked
    images = [ax for ax in browser.figure.axes if ax.images]
    assert [ax.get_title() for ax in images] == ["tac: a", "tsp: a"]
    assert images[0].get_subplotspec().rowspan == images[1].get_subplotspec().rowspan
    assert browser.message.value == ""


def test_similarity_browser_says_what_to_do_when_nothing_is_selected(two_feature_sets):
    from tsplab.plots import SimilarityBrowser

    browser = SimilarityBrowser(*two_feature_sets)
    browser.feature_sets.value = ()
    assert browser.figure is None and browser.image.value == b""
    assert browser.image.layout.display == "none"  # no broken-image icon
    assert "Select at least one feature set" in browser.message.value
    browser.feature_sets.value = ("tsp",)
    assert browser.image.layout.display is None and browser.message.value == ""
    assert [ax.get_title() for ax in browser.figure.axes if ax.images] == ["tsp: a"]


# --- notebook 08: a study's metrics over seeds ----------------------------------------------------

def test_study_metrics_bars_are_means_error_bars_stds_and_dots_the_seeds():
    from tsplab.plots import MAX_WIDTH_IN, plot_study_metrics

    cells = pd.DataFrame({"condition": ["a", "a", "a", "b", "b"], "seed": [0, 1, 2, 0, 1],
                          "status": ["finished"] * 4 + ["failed"],
                          "average mAP": [10.0, 20.0, 30.0, 5.0, np.nan], "AUC": [1.0, 2.0, 3.0, 4.0, np.nan]})
    fig = plot_study_metrics(cells, ["average mAP", "AUC"], labels={"a": "A", "b": "B"}, ncols=4)
    assert [ax.get_title() for ax in fig.axes] == ["average mAP", "AUC"]  # no empty panels left
    ax = fig.axes[0]
    assert [bar.get_height() for bar in ax.patches] == [20.0, 5.0]  # b: its one finished seed
    caps = ax.collections[0].get_segments()  # error bars: mean ± sample std (10), none for one seed
    assert [tuple(np.round(seg[:, 1], 6)) for seg in caps] == [(10.0, 30.0), (5.0, 5.0)]
    dots = [line.get_ydata().tolist() for line in ax.get_lines() if line.get_marker() == "."]
    assert dots == [[10.0, 20.0, 30.0], [5.0]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B"]
    assert width_px(fig) <= 100 * MAX_WIDTH_IN


# --- every figure at its saved size fits the output area (960 px at the inline backend's 100 dpi) ---

def _history():
    return pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0], "cls": [1.0, 0.5], "reg": [0.5, 0.3],
                         "sens": [0.3, 0.1], "ascl": [0.2, 0.1]})


def _pretrain_metrics():
    return pd.DataFrame({"epoch": [0, 1], "train_loss_action": [1.0, 0.5], "valid_loss_action": [1.1, 0.7],
                         "train_acc_action": [0.4, 0.8], "valid_acc_action": [0.3, 0.6],
                         "train_loss_region": [0.7, 0.3], "valid_loss_region": [0.69, 0.4],
                         "train_acc_region": [0.5, 0.9], "valid_acc_region": [0.5, 0.85]})


def _crowded_predictions():
    """Many short, overlapping predictions of one video: the labels' worst case."""
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 3, 12)
    return pd.DataFrame({"video": "a", "t_start_s": starts, "t_end_s": starts + rng.uniform(0.05, 0.4, 12),
                         "label": "00_horizontal", "score": rng.uniform(0, 1, 12)})


def _study_cells():
    return pd.DataFrame({"condition": ["tac_source", "tac_target"] * 2, "seed": [0, 0, 1, 1],
                         "status": "finished", **{f"metric {i}": [1.0, 2.0, 3.0, 4.0] for i in range(10)},
                         "mAP_N XL": np.nan})


def _figures(tmp_path):
    """One figure of every plotting function, at the widest its notebook draws it."""
    from tsplab import plots
    from tsplab.features import FeatureMetadata, save_features
    from tsplab.similarity import boundary_differences, similarity_views

    rng = np.random.default_rng(1)
    folders = {name: tmp_path / name for name in ("tac", "tsp", "bsp")}
    for folder in folders.values():
        FeatureMetadata(stride_frames=1, clip_length_frames=1, frame_rate=1.0, feature_dim=4).save(folder)
        for video in ("a", "b", "c"):
            save_features(folder, video, rng.normal(size=(12, 4)))
    gt = pd.DataFrame({"video": ["a", "b", "c"], "t_start_s": [2.0, 3.0, 1.0], "t_end_s": [6.0, 9.0, 4.0],
                       "label": ["x", "x", "y"]})
    views = [v for video in "abc" for v in similarity_views(folders, video, gt)]
    shares = pd.concat([bucket_shares(INSTANCES, c, durations=pd.Series({"a": 200.0, "b": 300.0}))
                        for c in ("length", "coverage", "num_instances")])
    instances = INSTANCES[INSTANCES.t_end_s > INSTANCES.t_start_s]
    results = {"perfect": evaluate_detection(instances, instances.assign(score=1.0))}
    clip = {"clip": np.zeros((16, 6, 6, 3), dtype=np.uint8), "t_start_s": 0.0, "region_label": 1}
    meta = FeatureMetadata(stride_frames=2, clip_length_frames=4, frame_rate=2.0, feature_dim=16)
    crowded = _crowded_predictions()
    return {
        "plot_length_histogram": lambda: plots.plot_length_histogram(INSTANCES),
        "plot_bucket_shares": lambda: plots.plot_bucket_shares(shares),
        "plot_frames_with_annotation": lambda: plots.plot_frames_with_annotation(
            np.zeros((30, 8, 10, 3), dtype=np.uint8), 10.0, INSTANCES, num_shown=12),
        "plot_clips": lambda: plots.plot_clips([clip] * 4, 4.0, instances_of_video=INSTANCES[:1]),
        "plot_map_vs_tiou": lambda: plots.plot_map_vs_tiou(results),
        "plot_bucket_map": lambda: plots.plot_bucket_map(
            bucket_table(INSTANCES, {"method with a long name": instances.assign(score=1.0),
                                     "other": instances.assign(score=0.5)}, "length")),
        "plot_similarity_matrices": lambda: plots.plot_similarity_matrices(views),
        "plot_boundary_histogram": lambda: plots.plot_boundary_histogram(boundary_differences(folders, gt)),
        "plot_feature_timeline": lambda: plots.plot_feature_timeline(
            rng.normal(size=(40, 16)), meta, INSTANCES[INSTANCES.video == "a"].assign(t_end_s=[5.0, 9.0])),
        "plot_pretrain_curves": lambda: plots.plot_pretrain_curves(
            {f"run {i}": _pretrain_metrics() for i in range(3)}),
        "plot_localizer_losses": lambda: plots.plot_localizer_losses({"tac": _history(), "tsp": _history()}),
        "plot_detection_timeline": lambda: plots.plot_detection_timeline(
            crowded.drop(columns="score"), {"tac": crowded, "tsp": crowded}, ["a"], top_k=12),
        "plot_study_metrics": lambda: plots.plot_study_metrics(_study_cells(), [f"metric {i}" for i in range(10)]),
        "plot_claims_forest": lambda: plots.plot_claims_forest(_claims()),
        "plot_check_curves": lambda: plots.plot_check_curves(pd.DataFrame(
            [{"dial": f"dial {d}", "level": lv, "value": lv / 2, "check": "a check's long measure name"}
             for d in range(7) for lv in (0.0, 0.5, 1.0)])),
        "plot_dial_frames": lambda: plots.plot_dial_frames({f"row {i}": _video() for i in range(4)}),
        "plot_dose_response": lambda: plots.plot_dose_response(*_dose_response(), dial="context_distractors"),
    }


def _dose_response():
    """A dial sweep's dose-response and predictions tables: four predictions with long texts, three levels."""
    from tsplab.dial_predictions import DialPrediction
    from tsplab.study.dial_statistics import dose_response_table, predictions_table

    rows = [dict(level=lv, condition=c, seed=s, status="finished", **{"average mAP": 10 + lv * (c == "tsp") + s / 3})
            for lv in (0.0, 0.5, 1.0) for c in ("tsp", "tsp_no_gvf") for s in range(3)]
    predictions = [DialPrediction(f"prediction {i}: TSP minus TSP without its global video feature grows",
                                  "context_distractors", "tsp", "tsp_no_gvf", "grows") for i in range(4)]
    cells = pd.DataFrame(rows)
    return dose_response_table(cells, predictions), predictions_table(cells, predictions)


def _video():
    """A rendered-video stand-in as plot_dial_frames reads it: frames, foreground flags, plan.cuts."""
    from types import SimpleNamespace

    return SimpleNamespace(frames=np.zeros((20, 16, 16, 3), dtype=np.uint8), foreground=np.arange(20) % 2 == 0,
                           plan=SimpleNamespace(cuts=[5]))


def _claims():
    """A claims table with a long claim text and two families, one with a sensitivity panel."""
    from tsplab.conditions import Claim
    from tsplab.study import claims_table

    cells = _study_cells().assign(sensitivity=[0.1, 0.3, 0.2, 0.5], **{"average mAP": [1.0, 3.0, 2.0, 5.0]})
    return claims_table(cells, [
        Claim("tac_target > tac_source on average mAP, a claim whose text is far longer than its label",
              "tac_target", "tac_source", "average mAP", paper=0.76, family="TSP"),
        Claim("more sensitive", "tac_target", "tac_source", "sensitivity", family="own")])


def test_every_figure_fits_the_output_area_at_its_saved_size(tmp_path):
    from tsplab import plots

    figures = _figures(tmp_path)
    functions = sorted(name for name in dir(plots) if name.startswith("plot_"))
    assert sorted(figures) == functions, "give every plot_* function a case here (its widest use)"
    for name, make in figures.items():
        width, _ = plots.inline_png_size(make())
        assert width <= plots.OUTPUT_WIDTH_PX, f"{name}: {width} px wide as the notebook shows it"
        plt.close("all")


def test_detection_timeline_labels_never_overlap():
    from tsplab.plots import plot_detection_timeline

    crowded = _crowded_predictions()
    fig = plot_detection_timeline(crowded.drop(columns="score"), {"tac": crowded}, ["a"], top_k=12)
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    for y in (0.5, 1.5):  # the prediction row, the ground-truth row
        boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_position()[1] == y]
        assert 0 < len(boxes) < 12  # crowded: some labels dropped, the rest kept
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    best = crowded.nlargest(1, "score").iloc[0]
    assert any(t.get_position() == (best.t_start_s, 0.5) for t in ax.texts)  # the best keeps its label


def test_bucket_map_says_na_for_an_empty_bucket_and_keeps_its_legend_off_the_bars():
    from tsplab.plots import plot_bucket_map

    instances = INSTANCES[INSTANCES.t_end_s > INSTANCES.t_start_s]
    fig = plot_bucket_map(bucket_table(instances, {"perfect": instances.assign(score=1.0)}, "length"))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts if t.get_text() == "n/a"]  # S, M, L hold no instance
    fig.draw_without_rendering()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # outside the axes, right of the data


def test_pretrain_curves_use_one_line_style_per_split_in_every_panel():
    from tsplab.plots import plot_pretrain_curves

    fig = plot_pretrain_curves(_pretrain_metrics())
    styles = {(line.get_label(), line.get_linestyle()) for ax in fig.axes for line in ax.get_lines()}
    assert styles == {("train", "-"), ("valid", "--")}


def test_feature_timeline_colour_bar_sits_beside_the_image_only():
    from tsplab.features import FeatureMetadata
    from tsplab.plots import plot_feature_timeline

    meta = FeatureMetadata(stride_frames=2, clip_length_frames=4, frame_rate=2.0, feature_dim=8)
    fig = plot_feature_timeline(np.random.default_rng(0).normal(size=(20, 8)), meta, INSTANCES[:1])
    image_ax, gt_ax = fig.axes
    colour_ax, = image_ax.child_axes
    fig.draw_without_rendering()
    image, gt, bar = (a.get_window_extent() for a in (image_ax, gt_ax, colour_ax))
    assert (image.x0, image.x1) == pytest.approx((gt.x0, gt.x1))  # time aligned
    assert bar.y0 >= gt.y1 and bar.x0 >= image.x1  # beside the image, not down the ground-truth strip


def test_study_metrics_panel_of_a_metric_without_values_says_na():
    from tsplab.plots import plot_study_metrics

    fig = plot_study_metrics(_study_cells(), ["metric 0", "mAP_N XL"])
    assert [t.get_text() for t in fig.axes[1].texts] == ["n/a: no value in any\nfinished cell"]
    assert not fig.axes[0].texts


def test_bucket_share_labels_never_overlap():
    from tsplab.plots import plot_bucket_shares

    durations = pd.Series({"a": 200.0, "b": 300.0})
    shares = pd.concat([bucket_shares(INSTANCES, c, durations=durations)
                        for c in ("length", "coverage", "num_instances")])
    fig = plot_bucket_shares(shares)
    fig.draw_without_rendering()
    for ax in fig.axes:
        boxes = [t.get_window_extent() for t in ax.get_xticklabels()]
        assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:])), ax.get_title()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][-1] == "XL\n> 180"


def test_legends_sit_outside_the_data():
    from tsplab.plots import plot_boundary_histogram, plot_map_vs_tiou, plot_pretrain_curves

    instances = INSTANCES[INSTANCES.t_end_s > INSTANCES.t_start_s]
    fig = plot_map_vs_tiou({"perfect": evaluate_detection(instances, instances.assign(score=1.0))})
    fig.draw_without_rendering()
    assert fig.axes[0].get_legend().get_window_extent().x0 >= fig.axes[0].get_window_extent().x1
    fig = plot_pretrain_curves({"tac": _pretrain_metrics(), "tsp": _pretrain_metrics()})
    fig.draw_without_rendering()
    legend = fig.legends[0].get_window_extent()
    assert all(legend.x0 >= ax.get_window_extent().x1 for ax in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["tac train", "tac valid", "tsp train", "tsp valid"]
    differences = pd.DataFrame({"feature_set": "tac", "kind": ["boundary", "inside", "inside"],
                                "mean_abs_diff": [0.5, 0.1, 0.2]})
    fig = plot_boundary_histogram(differences)
    fig.draw_without_rendering()
    assert fig.axes[0].get_legend().get_window_extent().y1 <= fig.axes[0].get_window_extent().y0
