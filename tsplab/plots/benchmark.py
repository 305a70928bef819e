"""Figures of the benchmark dials (notebook 09): what a dial does to a video's frames, and how each
manipulation check moves with its dial's level. Same conventions as ``tsplab.plots`` (a new
constrained-layout figure returned; notebooks end the call with ``;``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tsplab.plots.style import ACTION_COLOR, MAX_WIDTH_IN, _figure


def plot_dial_frames(videos: dict, frames_shown: int = 10):
    """One row per entry of ``videos`` ({row title: ``tsplab.benchmark.SyntheticVideo``}, e.g. one
    video plain and under each dial), ``frames_shown`` evenly spaced frames per row; frame numbers
    of action frames in green; "cut" marks a frame with a scene cut (``plan.cuts``) since the
    previous frame shown."""
    fig, axes = _figure(len(videos), frames_shown,
                        figsize=(MAX_WIDTH_IN, 1.05 * len(videos) * MAX_WIDTH_IN / frames_shown))
    for row, (title, video) in zip(axes, videos.items()):
        picks = np.linspace(0, len(video.frames) - 1, frames_shown).round().astype(int)
        cuts = set(getattr(video.plan, "cuts", []) or [])
        previous = -1
        for ax, t in zip(row, picks):
            ax.imshow(video.frames[t])
            ax.set_xticks([])
            ax.set_yticks([])
            mark = " cut" if any(previous < c <= t for c in cuts) else ""  # since the last frame shown
            previous = t
            ax.set_title(f"{t}{mark}", fontsize=7, color=ACTION_COLOR if video.foreground[t] else "black")
        row[0].set_ylabel(title, fontsize=7, rotation=0, ha="right", va="center")
    return fig


def plot_check_curves(table: pd.DataFrame, ncols: int = 3):
    """One panel per dial of a ``tsplab.benchmark.checks.check_table``: the check's value against
    the dial's level."""
    dials = list(dict.fromkeys(table["dial"]))
    nrows = -(-len(dials) // ncols)
    fig, axes = _figure(nrows, ncols, figsize=(MAX_WIDTH_IN, 2.3 * nrows))
    for ax, dial in zip(axes.flat, dials):
        rows = table[table["dial"] == dial].sort_values("level")
        ax.plot(rows["level"], rows["value"], "o-")
        ax.set_title(dial, fontsize=9)
        ax.set_xlabel("level", fontsize=8)
        ax.set_ylabel(rows["check"].iloc[0], fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(dials):]:
        ax.set_visible(False)
    return fig
