"""The dial sweeps' statistics: each pre-registered prediction (``tsplab.dial_predictions``) judged on
the cells of every level, with Holm's correction within each dial's family.

For a prediction, ``d_{s,l}`` is its paired difference (``better`` minus ``worse``) at seed ``s`` and
level ``x_l``. Per shape, over the ``n`` seeds (t-tests with n - 1 degrees of freedom, ``alpha``
the family-wise level of ``tsplab.study.statistics.ALPHA``):

* ``grows`` / ``shrinks``: each seed's least-squares slope ``b_s = sum_l (x_l - x̄)(d_{s,l} - d̄_s) /
  sum_l (x_l - x̄)^2`` over the levels it has (at least two); one-sided t-test of H0: mean(b) <= 0
  (``grows``) or H0: mean(b) >= 0 (``shrinks``).
* ``flat``: TOST (two one-sided tests, Schuirmann 1987) of the slopes within ``± margin``: H0:
  |mean(b)| >= margin; p = max(P(T >= (mean + margin) / se), P(T <= (mean - margin) / se)).
* ``about 0``: the same TOST on ``d_{s, at_level}``.
* ``at most 0``: one-sided t-test of H0: mean(d_{s, at_level}) >= margin (non-superiority).

Holm's step-down (``tsplab.study.statistics.holm``) adjusts the p-values within each dial's family;
a prediction *holds* when its adjusted p is at most ``alpha`` and *fails* otherwise (a failed
prediction is reported as failed, whatever the reason). The interval reported with each estimate is
its two-sided (1 - 2 alpha) t interval, the one that TOST's verdict lies inside the margins of.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tsplab.study.statistics import ALPHA, claim_differences, holm, one_sided_p, paired_interval

LEVEL = "level"  # the column of a sweep's cells table that holds each cell's level


def ls_slope(levels, values) -> float:
    """The least-squares slope of ``values`` over ``levels`` (NaN below two distinct levels)."""
    x, y = np.asarray(levels, dtype=float), np.asarray(values, dtype=float)
    sxx = float(((x - x.mean()) ** 2).sum())
    return float(((x - x.mean()) * (y - y.mean())).sum() / sxx) if len(x) >= 2 and sxx > 0 else np.nan


def seed_slopes(differences: pd.DataFrame) -> pd.Series:
    """Each seed's least-squares slope of ``difference`` over ``level`` (``differences``: columns
    seed, level, difference); seeds with fewer than two levels are left out."""
    slopes = {seed: ls_slope(rows[LEVEL], rows["difference"]) for seed, rows in differences.groupby("seed")}
    return pd.Series(slopes, dtype=float, name="slope").dropna()


def p_below(values, bound: float = 0.0) -> float:
    """One-sided t-test p of H0: mean >= ``bound`` (identical values: 0 below ``bound``, else 1)."""
    return one_sided_p(-np.asarray(values, dtype=float), -bound)


def tost_p(values, margin: float) -> float:
    """TOST p of H0: |mean| >= ``margin`` (equivalence within ``± margin`` when small)."""
    return max(one_sided_p(values, -margin), p_below(values, margin))


def prediction_differences(cells: pd.DataFrame, prediction) -> pd.DataFrame:
    """The prediction's paired difference per seed and level (columns seed, level, difference) from
    a sweep's cells (``cells_table`` rows with a ``level`` column)."""
    claim = prediction.claim()
    frames = [claim_differences(rows, claim).rename_axis("seed").reset_index().assign(level=level)
              for level, rows in cells.groupby(LEVEL, sort=True)]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=["seed", LEVEL, "difference"])
    return pd.concat(frames, ignore_index=True)[["seed", LEVEL, "difference"]]


DOSE_COLUMNS = ["prediction", "dial", "level", "n", "difference", "ci_low", "ci_high"]


def dose_response_table(cells: pd.DataFrame, predictions) -> pd.DataFrame:
    """One row per prediction and level: n paired seeds, the mean paired difference and its 95 % t
    interval (NaN below two seeds)."""
    rows = []
    for p in predictions:
        d = prediction_differences(cells, p)
        for level in sorted(pd.unique(cells[LEVEL])):
            values = d.loc[d[LEVEL] == level, "difference"].to_numpy(float)
            mean = low = high = np.nan
            if len(values) >= 2:
                mean, low, high = paired_interval(values)
            elif len(values) == 1:
                mean = float(values[0])
            rows.append(dict(prediction=p.text, dial=p.dial, level=float(level), n=len(values),
                             difference=mean, ci_low=low, ci_high=high))
    return pd.DataFrame(rows, columns=DOSE_COLUMNS)


PREDICTION_COLUMNS = ["prediction", "family", "shape", "better", "worse", "metric", "at_level", "margin",
                      "statistic", "n", "estimate", "ci_low", "ci_high", "p", "p_holm", "verdict", "test"]


def _statistic(d: pd.DataFrame, prediction) -> tuple[str, np.ndarray]:
    """(what is tested, its per-seed values): the slopes, or the differences at ``at_level``."""
    if prediction.at_level is None:
        return "slope per unit of level", seed_slopes(d).to_numpy(float)
    at = d.loc[np.isclose(d[LEVEL].astype(float), prediction.at_level), "difference"]
    return f"difference at level {prediction.at_level:g}", at.to_numpy(float)


def _p_value(values: np.ndarray, prediction) -> float:
    shape = prediction.shape
    if shape == "grows":
        return one_sided_p(values)
    if shape == "shrinks":
        return p_below(values)
    if shape in ("about 0", "flat"):
        return tost_p(values, prediction.margin)
    return p_below(values, prediction.margin)  # "at most 0": non-superiority


def describe_prediction_test(prediction, m: int, alpha: float = ALPHA) -> str:
    """The exact test of a prediction, in words (a column of ``predictions.csv``)."""
    shape, margin, level = prediction.shape, prediction.margin, prediction.at_level
    if shape in ("grows", "shrinks"):
        test = f"one-sided t-test of the per-seed slopes, H0: mean slope {'<=' if shape == 'grows' else '>='} 0"
    elif shape == "flat":
        test = f"TOST of the per-seed slopes within ±{margin:.3g} per unit of level"
    elif shape == "about 0":
        test = f"TOST of the differences at level {level:g} within ±{margin:.3g}"
    else:
        test = f"one-sided t-test of the differences at level {level:g}, H0: mean >= {margin:.3g}"
    return f"{test}; Holm over the {m} predictions of dial {prediction.dial!r} at alpha = {alpha}"


def predictions_table(cells: pd.DataFrame, predictions, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per prediction (``PREDICTION_COLUMNS``): what is tested (``statistic``), n seeds, its
    estimate with the (1 - 2 alpha) t interval, the raw p, Holm's p within the dial's family and the
    verdict (holds / fails; a tour or not measured below two seeds)."""
    rows = []
    for p in predictions:
        statistic, values = _statistic(prediction_differences(cells, p), p)
        row = dict(prediction=p.text, family=p.family, shape=p.shape, better=p.better, worse=p.worse,
                   metric=p.metric, at_level=p.at_level, margin=p.margin, statistic=statistic, n=len(values),
                   estimate=float(values.mean()) if len(values) else np.nan, ci_low=np.nan, ci_high=np.nan,
                   p=np.nan, p_holm=np.nan, verdict="", test="")
        if len(values) >= 2:
            _, row["ci_low"], row["ci_high"] = paired_interval(values, 1 - 2 * alpha)
            row["p"] = _p_value(values, p)
        rows.append(row)
    table = pd.DataFrame(rows, columns=PREDICTION_COLUMNS)
    for family in pd.unique(table["family"]):
        members = table.index[table["family"] == family]
        table.loc[members, "p_holm"] = holm(table.loc[members, "p"], alpha)[0]
        for index in members:
            p = predictions[index]
            table.loc[index, "test"] = describe_prediction_test(p, len(members), alpha)
            n = int(table.loc[index, "n"])
            table.loc[index, "verdict"] = ("not measured" if n == 0 else "a tour (1 seed): no test" if n == 1
                                           else "holds" if table.loc[index, "p_holm"] <= alpha else "fails")
    return table
