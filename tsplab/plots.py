"""Every figure the notebooks show, so tests can build them too.

Functions take the library's DataFrames / arrays, draw a new pyplot figure and return it: in a
notebook (inline backend) it shows at the end of the cell (end the call with ``;`` so it is not shown
twice); scripts save it (``fig.savefig``) and tests close it (``plt.close``). Organised by section,
one per analysis; add new plots to the section of their notebook (or a new section).
"""
from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

ACTION_COLOR = "tab:green"  # ground-truth extents, as in TSP Fig. 2 / PAL Fig. 3


def _new_figure(width_in: float, height_in: float) -> Figure:
    """A constrained-layout Figure at most ``MAX_WIDTH_IN`` wide: every figure starts here."""
    return plt.figure(figsize=(min(width_in, MAX_WIDTH_IN), height_in), layout="constrained")


def _figure(nrows: int = 1, ncols: int = 1, *, figsize=None, **subplot_kw):
    """A constrained-layout Figure (at most ``MAX_WIDTH_IN`` wide) and its [nrows, ncols] array of axes."""
    fig = _new_figure(*(figsize or (4.0 * ncols, 3.2 * nrows)))
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def figure_to_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of ``fig`` (for widgets and files)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


#: Widest figure, in inches. The inline backend shows a figure at 100 dpi, saved with
#: ``bbox_inches="tight"``: cropped to what is drawn plus 0.1 in on each side. At 9.4 in that is at
#: most 960 px, inside JupyterLab's output area (968 px in a 1400 px wide window), so no figure is
#: scaled down. ``inline_png_size`` measures it.
MAX_WIDTH_IN = 9.4

#: The output area's width in pixels that every figure and table must fit.
OUTPUT_WIDTH_PX = 960


def inline_png_size(fig: Figure) -> tuple[int, int]:
    """(width, height) in pixels of ``fig`` as the inline backend shows it (100 dpi, tight box)."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    with Image.open(io.BytesIO(buffer.getvalue())) as png:
        return png.size


def _panel_width(num_panels: int, panel_in: float) -> float:
    """Figure width for ``num_panels`` side by side: ``panel_in`` each, at most ``MAX_WIDTH_IN``."""
    return min(panel_in * num_panels, MAX_WIDTH_IN)


# ---------------------------------------------------------------------------------------------
# Datasets (notebook 01): action lengths, bucket shares, frames with their annotation
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Videos (notebook 02): the clips a pretraining method sees
# ---------------------------------------------------------------------------------------------

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


def _draw_actions(ax, instances: pd.DataFrame | None) -> float:
    """Ground-truth actions as filled bars in the top half of ``ax``, labelled; the last end (s)."""
    end = 0.0
    if instances is None:
        return end
    for row in instances.itertuples(index=False):
        ax.broken_barh([(row.t_start_s, row.t_end_s - row.t_start_s)], (0.5, 0.4), color=ACTION_COLOR,
                       alpha=0.8)
        ax.text(row.t_start_s, 0.7, f" {row.label}", va="center", fontsize=7)
        end = max(end, float(row.t_end_s))
    return end


# ---------------------------------------------------------------------------------------------
# Detection analysis (notebook 06): mAP against tIoU, average mAP per DETAD bucket
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Feature similarity (notebook 07): matrices, boundary differences, a browser widget
# ---------------------------------------------------------------------------------------------

def plot_similarity_matrices(views: list, *, feature_sets_as: str = "rows") -> Figure:
    """Cosine-similarity matrices (``tsplab.similarity.SimilarityView``s) in a grid: by default rows =
    feature sets, columns = videos (as TSP Fig. 2); ``feature_sets_as="columns"`` puts the feature
    sets side by side (one video compared across feature sets, as the browser shows it). Seconds on
    both axes, the ground-truth actions as green bars along the top and left edges."""
    if feature_sets_as not in ("rows", "columns"):
        raise ValueError(f"feature_sets_as: {feature_sets_as!r}; valid: rows, columns")
    sets = list(dict.fromkeys(v.feature_set for v in views))
    videos = list(dict.fromkeys(v.video for v in views))
    rows, cols = (sets, videos) if feature_sets_as == "rows" else (videos, sets)
    fig, axes = _figure(len(rows), len(cols), figsize=(3.0 * len(cols) + 0.6, 2.8 * len(rows)))
    for ax in axes.flat:
        ax.set_visible(False)
    for view in views:
        cell = (view.feature_set, view.video) if feature_sets_as == "rows" else (view.video, view.feature_set)
        ax = axes[rows.index(cell[0]), cols.index(cell[1])]
        ax.set_visible(True)
        _draw_similarity(fig, ax, view)
    return fig


def _draw_similarity(fig: Figure, ax, view) -> None:
    """One similarity matrix on ``ax``, its actions in the top and left margins, a colour bar."""
    lo = view.clip_centre_s[0] - view.stride_s / 2
    hi = view.clip_centre_s[-1] + view.stride_s / 2
    margin = 0.06 * (hi - lo)
    image = ax.imshow(view.matrix, extent=(lo, hi, hi, lo), cmap="viridis", interpolation="nearest")
    for start, end in view.segments_s:
        s, e = max(start, lo), min(end, hi)
        if e > s:  # bars in the margin: top (horizontal extent) and left (vertical extent)
            ax.fill_between([s, e], lo - margin, lo - 0.25 * margin, color=ACTION_COLOR)
            ax.fill_betweenx([s, e], lo - margin, lo - 0.25 * margin, color=ACTION_COLOR)
    ax.set_xlim(lo - margin, hi)
    ax.set_ylim(hi, lo - margin)
    ax.set_title(f"{view.feature_set}: {view.video}", fontsize=9)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.colorbar(image, ax=ax, shrink=0.8)


def plot_boundary_histogram(differences: pd.DataFrame, bins: int = 40) -> Figure:
    """BSP Fig. 4 (bottom): per feature set, the distribution of consecutive-clip differences
    (``tsplab.similarity.boundary_differences``) at ground-truth boundaries vs inside segments; each
    panel's legend under it, off the bars."""
    sets = list(pd.unique(differences["feature_set"]))
    fig, axes = _figure(1, max(len(sets), 1), figsize=(_panel_width(max(len(sets), 1), 4.0), 3.0),
                        sharex=True)
    values = differences["mean_abs_diff"].to_numpy(float)
    edges = np.histogram_bin_edges(values, bins=bins) if len(values) else bins
    for ax, name in zip(axes[0], sets):
        part = differences[differences["feature_set"] == name]
        for kind, mask, color in (("boundary", part["kind"] == "boundary", "tab:red"),
                                  ("inside", part["kind"] != "boundary", "tab:blue")):
            v = part.loc[mask, "mean_abs_diff"].to_numpy(float)
            if len(v):
                ax.hist(v, bins=edges, density=True, alpha=0.5, color=color,
                        label=f"{kind} ({len(v)})")
                ax.axvline(v.mean(), color=color, linestyle="--", linewidth=1)
        ax.set_title(str(name))
        ax.set_xlabel("mean |f(t+1) - f(t)|")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, frameon=False)
    axes[0, 0].set_ylabel("density")
    return fig


class SimilarityBrowser:
    """An ipywidgets browser: pick a video and feature sets, see their similarity matrices side by
    side.

    ``feature_folders``: {name: feature folder}; ``instances``: ground truth (video, t_start_s,
    t_end_s, label); ``videos``: the choices (default: videos with ground truth and features in
    every folder). Show ``browser.widget``; ``update()`` redraws (called on every change) and
    returns the figure. The figure is rendered to PNG at ``dpi`` into an Image widget shown at the
    PNG's own size in pixels (a flex box would otherwise stretch it to the cell's width), and closed
    in pyplot so the notebook does not show it a second time. With no feature set selected the
    image is hidden and ``message`` says what to do. A saved notebook keeps the widget's last view
    in its widget state (shown when the notebook is trusted), so no picture is shown beside it: it
    would go stale at the first change."""

    NOTHING_SELECTED = "Select at least one feature set (ctrl- or shift-click in the list)."

    def __init__(self, feature_folders: dict, instances: pd.DataFrame, videos=None, *, dpi: int = 100):
        import ipywidgets as widgets

        from tsplab.similarity import common_videos

        self.feature_folders = dict(feature_folders)
        self.instances = instances
        self.dpi = int(dpi)
        videos = list(videos) if videos is not None else common_videos(self.feature_folders, instances)
        if not videos:
            raise ValueError("SimilarityBrowser: no video has ground truth and features in every "
                             f"folder of {list(self.feature_folders)}")
        self.video = widgets.Dropdown(options=videos, value=videos[0], description="video")
        names = list(self.feature_folders)
        self.feature_sets = widgets.SelectMultiple(options=names, value=tuple(names),
                                                   description="features", rows=min(len(names), 6))
        self.image = widgets.Image(format="png")
        self.message = widgets.HTML()
        self.widget = widgets.VBox([widgets.HBox([self.video, self.feature_sets]), self.message,
                                    self.image])
        self.figure: Figure | None = None
        self.video.observe(self.update, names="value")
        self.feature_sets.observe(self.update, names="value")
        self.update()

    def update(self, change=None) -> Figure | None:
        from tsplab.similarity import similarity_views

        chosen = {name: self.feature_folders[name] for name in self.feature_sets.value}
        if not chosen:
            self.image.value = b""
            self.image.layout.display = "none"
            self.message.value = f"<b>{self.NOTHING_SELECTED}</b>"
            self.figure = None
            return None
        self.figure = plot_similarity_matrices(similarity_views(chosen, self.video.value, self.instances),
                                               feature_sets_as="columns")
        plt.close(self.figure)
        width_px, height_px = (self.figure.get_size_inches() * self.dpi).round().astype(int)
        self.image.value = figure_to_png(self.figure, dpi=self.dpi)
        # Natural size: the PNG's own pixels, not stretched by the VBox (align-items: stretch).
        self.image.layout.width, self.image.layout.height = f"{width_px}px", f"{height_px}px"
        self.image.layout.align_self = "flex-start"
        self.image.layout.display = None
        self.message.value = ""
        return self.figure


# ---------------------------------------------------------------------------------------------
# Features (notebook 04): one video's clip features over time, ground truth underneath
# ---------------------------------------------------------------------------------------------

def plot_feature_timeline(features: np.ndarray, metadata, instances_of_video: pd.DataFrame | None = None,
                          *, duration_s: float | None = None, title: str = "",
                          max_channels: int | None = 128) -> Figure:
    """A video's clip features ``[T, C]`` as an image over time, its ground-truth actions below.

    Each channel is standardised over time (z-score), so the image shows *when* a channel changes,
    not its scale. Rows are channels (the first ``max_channels``); column ``i`` is centred on feature
    ``i``'s clip centre (``metadata``: a ``tsplab.features.FeatureMetadata``) and is one stride wide.
    ``instances_of_video`` (t_start_s, t_end_s, label) are drawn as bars, one row per label;
    ``duration_s`` marks the end of the video.
    """
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim != 2 or len(feats) == 0:
        raise ValueError(f"plot_feature_timeline: features must be [T, C] with T >= 1, got {feats.shape}")
    shown = feats[:, :max_channels] if max_channels is not None else feats
    z = (shown - shown.mean(0)) / (shown.std(0) + 1e-6)
    centres = metadata.clip_centre_s(len(feats))
    half = 0.5 * metadata.stride_s
    instances = instances_of_video if instances_of_video is not None else pd.DataFrame(
        columns=["t_start_s", "t_end_s", "label"])
    labels = sorted(instances["label"].astype(str).unique()) if len(instances) else []

    fig = _new_figure(9.0, 3.6 + 0.3 * len(labels))
    ax, gt = fig.subplots(2, 1, sharex=True,
                          gridspec_kw=dict(height_ratios=[4.0, 0.8 + 0.3 * len(labels)]))
    image = ax.imshow(z.T, aspect="auto", cmap="RdBu_r", vmin=-3, vmax=3, interpolation="nearest",
                      extent=(centres[0] - half, centres[-1] + half, z.shape[1], 0))
    # The colour bar beside the image only, in an inset: both axes keep the same width (time aligned).
    fig.colorbar(image, cax=ax.inset_axes([1.01, 0.0, 0.015, 1.0]), label="z-score over time")
    ax.set_ylabel(f"channel ({z.shape[1]} of {feats.shape[1]})")
    ax.set_title(title or f"{len(feats)} features, stride {metadata.stride_s:g} s, "
                          f"clips of {metadata.clip_length_s:g} s")
    for i, label in enumerate(labels):
        rows = instances[instances["label"].astype(str) == label]
        gt.broken_barh([(s, e - s) for s, e in zip(rows["t_start_s"], rows["t_end_s"])],
                       (i + 0.15, 0.7), color=f"C{i % 10}", alpha=0.8)
    gt.set_yticks([i + 0.5 for i in range(len(labels))], labels, fontsize=8)
    gt.set_ylim(0, max(1, len(labels)))
    if duration_s:
        gt.axvline(duration_s, color="k", linewidth=0.8, linestyle="--")
    gt.set_xlim(0, max(centres[-1] + half, duration_s or 0.0))
    gt.set_xlabel("time (s)")
    gt.set_title("ground truth" if labels else "ground truth: no actions", fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------
# Pretraining (notebook 03): loss and accuracy curves per head
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Localization (notebook 05): loss curves, predictions vs ground truth
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Studies (notebook 08): every metric over seeds
# ---------------------------------------------------------------------------------------------

def plot_study_metrics(cells: pd.DataFrame, metrics, *, labels: dict | None = None,
                       ncols: int = 4) -> Figure:
    """One panel per metric of a study (``tsplab.study.cells_table``: rows condition x seed, a
    column per metric, ``status``): each finished seed as a dot, the mean as a bar with the sample
    std as its error bar (none for one seed), conditions in their order along x. A metric without
    any value (a DETAD bucket no action falls in) says "n/a" in its panel."""
    finished = cells[cells["status"] == "finished"]
    conditions = list(pd.unique(cells["condition"]))
    metrics = list(metrics)
    nrows = max(1, -(-len(metrics) // ncols))
    fig, axes = _figure(nrows, ncols, figsize=(MAX_WIDTH_IN, 2.2 * nrows + 0.4))
    names = [(labels or {}).get(c, c) for c in conditions]
    x = np.arange(len(conditions))
    for ax, metric in zip(axes.flat, metrics):
        groups = [finished.loc[finished["condition"] == c, metric].to_numpy(float) for c in conditions]
        means = np.array([g.mean() if len(g) else np.nan for g in groups])
        stds = np.array([g.std(ddof=1) if len(g) > 1 else 0.0 for g in groups])
        ax.bar(x, means, color=[f"C{i}" for i in range(len(conditions))], alpha=0.5)
        ax.errorbar(x, means, yerr=stds, fmt="none", ecolor="black", capsize=3)
        for i, g in enumerate(groups):
            ax.plot(np.full(len(g), x[i]), g, "k.", markersize=3)
        ax.set_title(metric, fontsize=9)
        if not np.isfinite(means).any():  # e.g. a DETAD bucket no validation action falls in
            ax.text(0.5, 0.5, "n/a: no value in any\nfinished cell", transform=ax.transAxes, ha="center",
                    va="center", fontsize=8, color="0.4")
            ax.set_yticks([])
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.remove()  # no empty panel left over
    return fig


# --- the study's claims at a glance -------------------------------------------------------------

VERDICT_COLOURS = {"holds": "tab:green", "does not hold": "tab:red", "inconclusive": "tab:grey"}


def _verdict_colour(verdict: str) -> str:
    return next((c for v, c in VERDICT_COLOURS.items() if str(verdict).startswith(v)), "lightgrey")


def plot_claims_forest(claims: pd.DataFrame) -> Figure:
    """A forest plot of a study's claims (``tsplab.study.claims_table``), one panel per family: each
    claim's mean paired difference with its Holm-adjusted interval, coloured by its verdict (green
    holds, red does not hold, grey inconclusive, light grey not measured or one seed); a dotted line
    at 0, a short bar at -margin for a non-inferiority claim, and the paper's value as a diamond.
    Differences are in each claim's own metric, so a family's claims on a sensitivity metric (not in
    percent) get a panel per such metric beside its percent-point claims."""
    unit = [m if "sensitivity" in str(m) else "percent points" for m in claims["metric"]]
    panels = claims["family"].astype(str) + ", " + pd.Series(unit, index=claims.index)  # one x scale each
    families = list(pd.unique(panels))
    heights = [max(1, int((panels == f).sum())) for f in families]
    fig, axes = _figure(len(families), 1, figsize=(MAX_WIDTH_IN, 0.45 * sum(heights) + 0.9 * len(families)),
                        gridspec_kw=dict(height_ratios=heights))
    for ax, family in zip(np.atleast_1d(axes).flat, families):
        rows = claims[panels == family].reset_index(drop=True)
        y = np.arange(len(rows))[::-1]
        for yi, row in zip(y, rows.itertuples()):
            colour = _verdict_colour(row.verdict)
            if not np.isfinite(row.difference):  # not measured here: say so rather than leave a blank row
                ax.annotate(f"n/a: {_short(str(row.verdict), 70)}", xy=(0.01, yi), xycoords=("axes fraction", "data"),
                            fontsize=7, color="grey", va="center")
            if np.isfinite(row.adj_low):
                ax.plot([row.adj_low, row.adj_high], [yi, yi], color=colour, linewidth=2)
            ax.plot(row.difference, yi, "o", color=colour, markersize=5)
            if row.relation == ">=" and pd.notna(row.margin):
                ax.plot([-row.margin] * 2, [yi - 0.3, yi + 0.3], color="black", linewidth=1.5)
            if pd.notna(row.paper):
                ax.plot(row.paper, yi, "D", markerfacecolor="none", markeredgecolor="black", markersize=5)
        ax.axvline(0, color="black", linestyle=":", linewidth=0.8)
        ax.set_yticks(y, [_short(t) for t in rows["claim"]], fontsize=7)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_title(f"{family}: paired difference, Holm-adjusted interval (|: -margin, ◇: paper)", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    return fig


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
