"""Studies (notebook 08): every metric over seeds, and the claims at a glance (a forest plot).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tsplab.plots.style import MAX_WIDTH_IN, _figure


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


VERDICT_COLOURS = {"holds": "tab:green", "does not hold": "tab:red", "inconclusive": "tab:grey",
                   "fails": "tab:red"}  # "fails": a dial sweep's prediction not shown


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


def plot_dose_response(dose: pd.DataFrame, predictions: pd.DataFrame | None = None, *, dial: str = "",
                       ncols: int = 3) -> Figure:
    """A dial sweep's dose-response (``tsplab.study.dial_statistics.dose_response_table``), one panel
    per prediction: its mean paired difference at each level with the 95 % t interval (a dot alone
    for one seed), joined by a line, a dotted line at 0; the title carries the prediction's shape and
    verdict when ``predictions`` (``predictions_table``) is given, coloured as in the forest plot."""
    names = list(pd.unique(dose["prediction"]))
    ncols = max(1, min(ncols, len(names)))
    nrows = max(1, -(-len(names) // ncols))
    fig, axes = _figure(nrows, ncols, figsize=(MAX_WIDTH_IN, 2.6 * nrows + 0.5))
    judged = {} if predictions is None else predictions.set_index("prediction").to_dict("index")
    for ax, name in zip(axes.flat, names):
        rows = dose[dose["prediction"] == name].sort_values("level")
        x, y = rows["level"].to_numpy(float), rows["difference"].to_numpy(float)
        low, high = rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float)
        row = judged.get(name, {})
        colour = _verdict_colour(row.get("verdict", ""))
        ax.plot(x, y, "o-", color=colour, markersize=4)
        has = np.isfinite(low)
        ax.errorbar(x[has], y[has], yerr=[y[has] - low[has], high[has] - y[has]], fmt="none", ecolor=colour,
                    capsize=3)
        ax.axhline(0, color="black", linestyle=":", linewidth=0.8)
        ax.set_xlabel(dial or "level", fontsize=8)
        ax.set_ylabel("paired difference", fontsize=8)
        shape = f"{row['shape']}: {row['verdict']}" if row else ""
        ax.set_title(f"{_short(name, 48)}\n{_short(shape, 48)}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.remove()
    return fig
