"""The dataset and detection-analysis figures draw what they are given (the similarity figures are
tested in test_similarity.py)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from tsplab.detad import bucket_shares, bucket_table
from tsplab.metrics import evaluate_detection
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
    # A zero-length instance can never be matched (tsplab.metrics), so a perfect prediction of
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
