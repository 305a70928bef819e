"""The common style of every figure: its widest size (``MAX_WIDTH_IN``, the output area in pixels),
the ground truth's colour, the constrained-layout figure every plot starts from, PNG bytes.
"""
from __future__ import annotations

import io

import matplotlib.pyplot as plt
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
