"""Features (notebooks 04, 07): one video's clip features over time, similarity matrices, boundary
differences, and a browser widget over the videos.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tsplab.plots.style import ACTION_COLOR, _figure, _new_figure, _panel_width, figure_to_png


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
