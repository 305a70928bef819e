"""Localization and its analysis (notebooks 05, 06): the localizer's loss curves, predictions against
the ground truth, mAP against tIoU, average mAP per DETAD bucket.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tsplab.plots.style import ACTION_COLOR, _figure


def plot_map_vs_tiou(results: dict) -> Figure:
    """mAP against the tIoU threshold, one line per method (``{method: DetectionResult}``), the legend
    to the right of the axes."""
    fig, axes = _figure(figsize=(6.5, 3.2))
    ax = axes[0, 0]
    for method, result in results.items():
        ax.plot(result.mAP.index, 100 * result.mAP.to_numpy(), marker="o",
                label=f"{method} (avg {100 * result.average_mAP:.1f})")
    ax.set_xlabel("tIoU threshold")
    ax.set_ylabel("mAP (%)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # off the lines
    return fig


def plot_bucket_map(table: pd.DataFrame) -> Figure:
    """Grouped bars of ``tsplab.evaluation.detad.bucket_table`` (rows: methods, columns: buckets and ``all``;
    percent). The ``% of instances`` row, when present, goes under the bucket names; each method's
    ``all`` value is a dashed line in its colour. A bucket without a value (no instance in it) says
    "n/a"; the legend sits outside the bars, to the right."""
    shares = table.loc["% of instances"] if "% of instances" in table.index else None
    methods = [m for m in table.index if m != "% of instances"]
    buckets = [c for c in table.columns if c != "all"]
    fig, axes = _figure(figsize=(1.2 * len(buckets) + 3.0, 3.4))
    ax = axes[0, 0]
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(buckets))
    for i, method in enumerate(methods):
        values = table.loc[method, buckets].to_numpy(float)
        bars = ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(values), width, color=f"C{i}", label=method)
        ax.bar_label(bars, labels=[f"{v:.1f}" if np.isfinite(v) else "n/a" for v in values], fontsize=7)
        if "all" in table.columns:
            ax.axhline(float(table.loc[method, "all"]), color=f"C{i}", linestyle="--", linewidth=1,
                       label=f"{method}: all")
    names = [f"{b}\n({shares[b]:.1f}%)" if shares is not None else str(b) for b in buckets]
    ax.set_xticks(x, names, fontsize=8)
    ax.set_xlabel(str(table.index.name or "bucket"))
    ax.set_ylabel("average mAP (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


LOCALIZER_LOSS_TERMS = ("loss", "cls", "reg", "sens", "ascl")


def plot_localizer_losses(histories) -> Figure:
    """Per-epoch training loss terms of a localizer (``history.csv`` of ``tsplab.localizer``:
    ``loss`` = eq. 15, ``cls`` eq. 9, ``reg`` eq. 10, ``sens`` eq. 7, ``ascl`` λ x eq. 14), one panel
    per term, one colour per run when given as ``{name: history}``. Terms that stay 0 in every run
    (components switched off) are left out."""
    runs = histories if isinstance(histories, dict) else {"": histories}
    if not runs:
        raise ValueError("plot_localizer_losses: no histories given")
    terms = [t for t in LOCALIZER_LOSS_TERMS
             if any(t in h and (h[t].abs() > 0).any() for h in runs.values())]
    if not terms:
        raise ValueError("plot_localizer_losses: no loss columns (loss, cls, reg, sens, ascl) found")
    ncols = min(len(terms), 3)  # at most 3 panels a row: the figure fits the output width
    nrows = -(-len(terms) // ncols)
    fig, axes = _figure(nrows, ncols, figsize=(3.1 * ncols, 2.6 * nrows))
    panels = list(axes.flat)
    for ax in panels[len(terms):]:
        fig.delaxes(ax)  # an empty grid cell: gone, not just hidden
    for i, (name, h) in enumerate(runs.items()):
        for ax, term in zip(panels, terms):
            if term in h:
                ax.plot(h["epoch"], h[term], "o-", markersize=3, color=f"C{i % 10}", label=name or None)
    for ax, term in zip(panels, terms):
        ax.set_title("total" if term == "loss" else term)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if any(runs):
        axes[0, 0].legend(fontsize=7)
    return fig


def plot_detection_timeline(ground_truth: pd.DataFrame, predictions, videos, *, top_k: int = 5,
                            durations: dict | None = None) -> Figure:
    """Ground-truth actions (green) above the ``top_k`` best predictions of each set (one row each,
    bar opacity = score, label written on the bar) for each of ``videos``, one panel per video.
    ``predictions``: DataFrame(video, t_start_s, t_end_s, label, score) or ``{name: DataFrame}``.
    Labels never overlap: where short predictions crowd a row, the best-scoring one keeps its label."""
    sets = predictions if isinstance(predictions, dict) else {"prediction": predictions}
    videos = list(videos)
    if not videos:
        raise ValueError("plot_detection_timeline: no videos given")
    fig, axes = _figure(len(videos), 1, figsize=(8.0, 0.6 + 0.45 * (1 + len(sets)) * len(videos)))
    label_rows = []
    for ax, video in zip(axes[:, 0], videos):
        rows = [("ground truth", ground_truth[ground_truth["video"] == video], ACTION_COLOR, None)]
        for i, (name, pred) in enumerate(sets.items()):
            top = pred[pred["video"] == video].nlargest(top_k, "score")
            rows.append((name, top, f"C{i % 10}", top["score"].to_numpy()))
        end = 0.0
        for y, (name, df, color, scores) in enumerate(reversed(rows)):
            row_labels = []  # best score first (nlargest), ground truth in time order
            for j, r in enumerate(df.itertuples(index=False)):
                alpha = 0.9 if scores is None else float(np.clip(0.2 + 0.8 * scores[j], 0, 1))
                ax.broken_barh([(r.t_start_s, r.t_end_s - r.t_start_s)], (y + 0.15, 0.7), color=color,
                               alpha=alpha)
                row_labels.append(ax.text(r.t_start_s, y + 0.5, f" {r.label}", fontsize=6, va="center",
                                          clip_on=True))
                end = max(end, r.t_end_s)
            label_rows.append(row_labels)
        ax.set_yticks([y + 0.5 for y in range(len(rows))], [r[0] for r in reversed(rows)], fontsize=8)
        ax.set_ylim(0, len(rows))
        duration = (durations or {}).get(video)
        ax.set_xlim(0, max(end, duration or 0.0) or 1.0)
        ax.set_title(str(video), fontsize=9)
    axes[-1, 0].set_xlabel("time (s)")
    _drop_overlapping_labels(fig, label_rows)
    return fig


def _drop_overlapping_labels(fig: Figure, groups) -> None:
    """Remove each text of a group (a timeline row) that would overlap one kept before it, measured
    at the figure's final layout: the first texts of a group win."""
    fig.draw_without_rendering()  # constrained layout settles the axes' sizes
    renderer = fig.canvas.get_renderer()
    for texts in groups:
        kept = []
        for text in texts:
            box = text.get_window_extent(renderer).padded(2)
            if any(box.overlaps(other) for other in kept):
                text.remove()
            else:
                kept.append(box)
