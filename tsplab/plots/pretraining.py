"""Pretraining (notebook 03): loss and accuracy curves per head, and the table beside them.
"""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from tsplab.plots.style import _figure, _panel_width


def pretrain_heads(metrics: pd.DataFrame) -> list[str]:
    """The heads of a pretraining metrics table (``tsplab.pretrain``): ``train_loss_<head>`` columns."""
    return [c[len("train_loss_"):] for c in metrics.columns if c.startswith("train_loss_")]


#: The columns of a pretraining metrics table worth a first look (``valid_acc_<head>`` go between
#: ``valid_loss`` and ``valid_acc_avg``); the full table has losses, accuracies and learning rates
#: per head, and timings.
OVERVIEW_COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_acc_avg", "data_wait_share", "clips_per_s")


def pretrain_metrics_overview(metrics) -> pd.DataFrame:
    """A narrow table of one run's metrics (``metrics.csv`` of ``tsplab.pretrain``), or of several runs
    given as ``{name: metrics}`` (one block of rows per run, a ``run`` column first): epoch, the
    training and validation losses, each head's validation accuracy, their average (what selects
    ``best.pt``), the share of time spent waiting for data and clips per second. Columns a table
    lacks are left out; the full table stays in the run's ``metrics.csv``."""
    runs = metrics if isinstance(metrics, dict) else {"": metrics}
    parts = []
    for name, m in runs.items():
        heads = [f"valid_acc_{h}" for h in pretrain_heads(m)]
        columns = [*OVERVIEW_COLUMNS[:3], *heads, *OVERVIEW_COLUMNS[3:]]
        part = m[[c for c in columns if c in m.columns]]
        parts.append(part.assign(run=name)[["run", *part.columns]] if isinstance(metrics, dict) else part)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(OVERVIEW_COLUMNS))
    order = [c for c in ["run", *OVERVIEW_COLUMNS[:3]] if c in table.columns]
    heads = [c for c in table.columns if c.startswith("valid_acc_") and c != "valid_acc_avg"]
    return table[order + heads + [c for c in OVERVIEW_COLUMNS[3:] if c in table.columns]]


def plot_pretrain_curves(metrics) -> Figure:
    """Per-epoch loss (top row) and clip accuracy (bottom row) of each head of one run's metrics
    table, or of several runs given as ``{name: metrics}`` (one colour per run; a head a run lacks is
    left out). One convention in every panel: training solid with circles, validation dashed with
    squares; one legend, outside the panels."""
    from matplotlib.ticker import MaxNLocator

    runs = metrics if isinstance(metrics, dict) else {"": metrics}
    if not runs:
        raise ValueError("plot_pretrain_curves: no metrics given")
    heads = list(dict.fromkeys(h for m in runs.values() for h in pretrain_heads(m)))
    if not heads:
        raise ValueError("plot_pretrain_curves: no train_loss_<head> columns; is this a pretraining "
                         "metrics table (metrics.csv of tsplab.pretrain)?")
    fig, axes = _figure(2, len(heads), figsize=(_panel_width(len(heads), 4.2), 6.0))
    for i, (name, m) in enumerate(runs.items()):
        color = f"C{i % 10}"
        label = f"{name} " if name else ""
        for j, head in enumerate(heads):
            if f"train_loss_{head}" not in m:
                continue
            loss_ax, acc_ax = axes[0, j], axes[1, j]
            loss_ax.plot(m["epoch"], m[f"train_loss_{head}"], "o-", color=color, label=f"{label}train")
            if f"valid_loss_{head}" in m:
                loss_ax.plot(m["epoch"], m[f"valid_loss_{head}"], "s--", color=color, label=f"{label}valid")
            if f"valid_acc_{head}" in m:
                acc_ax.plot(m["epoch"], m[f"valid_acc_{head}"], "s--", color=color, label=f"{label}valid")
            if f"train_acc_{head}" in m:
                acc_ax.plot(m["epoch"], m[f"train_acc_{head}"], "o-", color=color, label=f"{label}train")
    for j, head in enumerate(heads):
        axes[0, j].set_title(f"{head} head: loss")
        axes[1, j].set_title(f"{head} head: clip accuracy")
        axes[1, j].set_ylim(0, 1.02)
        axes[1, j].set_xlabel("epoch")
        for ax in axes[:, j]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
    handles = {line.get_label(): line for ax in axes.flat for line in ax.get_lines()}
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=7, frameon=False)
    return fig
