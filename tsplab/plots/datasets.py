"""Datasets and videos (notebooks 01, 02): action lengths, bucket shares, frames with their
annotation, the clips a pretraining method sees.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tsplab.plots.style import ACTION_COLOR, _draw_actions, _figure, _new_figure, _panel_width


def plot_length_histogram(instances: pd.DataFrame, edges_s=None, *, labels=None, bins: int = 50
                          ) -> Figure:
    """Histogram of action lengths (t_end_s - t_start_s, positive ones) with bucket edges drawn.

    edges_s: bucket edges in seconds (default: DETAD's ActivityNet length buckets, 0/30/60/120/180/
    inf s); labels: one name per bucket (default: DETAD's XS..XL when the count fits).
    """
    from tsplab.datasets.presets import get_preset

    default_edges, default_labels = get_preset("activitynet").detad_buckets["length"]
    edges = list(default_edges if edges_s is None else edges_s)
    if labels is None:
        labels = list(default_labels) if len(edges) - 1 == len(default_labels) else []
    length = (instances["t_end_s"] - instances["t_start_s"]).to_numpy(float)
    length = length[length > 0]
    fig, axes = _figure(figsize=(7, 3.2))
    ax = axes[0, 0]
    ax.hist(length, bins=bins, color="tab:blue", alpha=0.8)
    ax.set_xlim(left=0)
    right = ax.get_xlim()[1]
    for edge in edges:
        if 0 < edge < right:
            ax.axvline(edge, color="k", linestyle="--", linewidth=1)
    for label, a, b in zip(labels, edges[:-1], edges[1:]):
        a, b = max(a, 0.0), min(b, right)
        if a < b:  # name each bucket in the visible part of its range
            ax.text((a + b) / 2, 0.97, label, transform=ax.get_xaxis_transform(), ha="center",
                    va="top", fontsize=9)
    ax.set_xlabel("action length (s)")
    ax.set_ylabel("instances")
    ax.set_title(f"{len(length)} actions")
    return fig


def plot_bucket_shares(shares: pd.DataFrame) -> Figure:
    """Bars of ``tsplab.evaluation.detad.bucket_shares`` output (share_pct per bucket), one panel per
    characteristic when several are stacked in ``shares``."""
    groups = list(shares.groupby("characteristic", sort=False))
    fig, axes = _figure(1, len(groups), figsize=(_panel_width(len(groups), 4.2), 3.2))
    for ax, (characteristic, part) in zip(axes[0], groups):
        x = np.arange(len(part))
        bars = ax.bar(x, part["share_pct"], color="tab:blue")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(x, [f"{b}\n{_short_interval(i)}" for b, i in zip(part["bucket"], part["interval"])],
                      fontsize=7)
        ax.set_ylabel("% of instances")
        ax.set_title(str(characteristic))
        ax.set_ylim(0, max(100.0, float(part["share_pct"].max()) * 1.1) if len(part) else 100)
    return fig


def _short_interval(interval: str) -> str:
    """``(0.2, 0.4]`` as ``0.2-0.4`` and ``(3, inf]`` as ``> 3``: narrow enough that five buckets'
    labels fit under a third of the output width without overlapping."""
    parts = [p.strip() for p in str(interval).strip("([])").split(",")]
    if len(parts) != 2:
        return str(interval)
    low, high = parts
    return f"> {low}" if high in ("inf", "Inf") else f"{low}\u2013{high}"


def plot_frames_with_annotation(frames: np.ndarray, frame_rate: float, instances_of_video: pd.DataFrame,
                                num_shown: int = 8) -> Figure:
    """A strip of ``num_shown`` evenly spaced frames of a video (frames [N, H, W, 3] uint8 at
    ``frame_rate``) above its timeline: ground-truth actions (t_start_s, t_end_s, label) as bars,
    the shown frames as numbered ticks."""
    frames = np.asarray(frames)
    n = len(frames)
    if n == 0:
        raise ValueError("plot_frames_with_annotation: no frames")
    shown = np.unique(np.linspace(0, n - 1, min(num_shown, n)).round().astype(int))
    duration = n / float(frame_rate)
    fig = _new_figure(1.15 * len(shown) + 0.5, 2.8)
    grid = fig.add_gridspec(2, len(shown), height_ratios=[2.0, 1.0])
    for j, idx in enumerate(shown):
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(frames[idx])
        ax.set_title(f"{j + 1}: {idx / frame_rate:.1f} s", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    labels = sorted(instances_of_video["label"].astype(str).unique()) if len(instances_of_video) else []
    colors = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    for row in instances_of_video.itertuples(index=False):
        ax.broken_barh([(row.t_start_s, row.t_end_s - row.t_start_s)], (0.2, 0.6),
                       color=colors[str(row.label)], alpha=0.8)
    for label in labels:  # one legend entry per class
        ax.plot([], [], color=colors[label], linewidth=6, label=label)
    for j, idx in enumerate(shown):
        t = idx / frame_rate
        ax.axvline(t, color="k", linewidth=0.8)
        ax.text(t, 1.0, str(j + 1), ha="center", va="bottom", fontsize=8)
    ax.set_xlim(0, duration)
    ax.set_ylim(0, 1.25)
    ax.set_yticks([])
    ax.set_xlabel("time (s)")
    if labels:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return fig


def plot_clips(items: list, frame_rate: float, *, instances_of_video: pd.DataFrame | None = None,
               duration_s: float | None = None, max_frames: int = 8) -> Figure:
    """Clips as a pretraining dataset returns them (``tsplab.pretrain.sampling.SegmentClipDataset`` items:
    ``clip`` ``[L, H, W, 3]`` uint8, ``t_start_s``, ``region_label`` 1/0 = action/background): one
    row of frames per clip at ``frame_rate``, each frame titled with its time, the row with its
    region; above them the video's timeline with the ground-truth actions (``instances_of_video``:
    t_start_s, t_end_s, label) and each clip's extent, numbered. Frames of action clips are
    outlined in green, background ones in grey. Clips longer than ``max_frames`` show that many
    evenly spaced frames (the figure stays within the output width)."""
    if not items:
        raise ValueError("plot_clips: no clips given")
    clips = [np.asarray(item["clip"]) for item in items]
    length = min(max(len(c) for c in clips), max_frames)
    fig = _new_figure(0.85 * length + 1.0, 1.0 + 1.05 * len(clips))
    grid = fig.add_gridspec(1 + len(clips), length, height_ratios=[0.9] + [1.0] * len(clips))
    timeline = fig.add_subplot(grid[0, :])
    ends = [_draw_actions(timeline, instances_of_video)]
    for row, (item, clip) in enumerate(zip(items, clips)):
        t0 = float(item["t_start_s"])
        t1 = t0 + len(clip) / float(frame_rate)
        action = int(item["region_label"]) == 1
        color = ACTION_COLOR if action else "tab:gray"
        timeline.add_patch(plt.Rectangle((t0, 0.05), t1 - t0, 0.3, fill=False, edgecolor=color, linewidth=1.5))
        timeline.text((t0 + t1) / 2, 0.2, str(row + 1), ha="center", va="center", fontsize=8)
        ends.append(t1)
        region = "action" if action else "background"  # the class is written on the timeline
        shown = np.unique(np.linspace(0, len(clip) - 1, min(len(clip), max_frames)).round().astype(int))
        for k, index in enumerate(shown):
            ax = fig.add_subplot(grid[1 + row, k])
            ax.imshow(clip[index], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(2)
            ax.set_title(f"{t0 + index / float(frame_rate):.2f} s", fontsize=7)
            if k == 0:
                ax.set_ylabel(f"clip {row + 1}\n{region}", fontsize=8)
    timeline.set_xlim(0, max([duration_s or 0.0, *ends]))
    timeline.set_ylim(0, 1.0)
    timeline.set_yticks([])
    timeline.set_xlabel("time (s)", fontsize=8)
    timeline.set_title("ground-truth actions (filled) and the clips below (outlined)", fontsize=9)
    return fig
