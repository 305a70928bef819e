"""The claims' statistics: paired differences over seeds, one-sided t-tests (superiority or
non-inferiority), Holm–Bonferroni within each family, adjusted intervals, verdicts, and how many
seeds an inconclusive claim's observed effect would need.

The procedure, for each claim (a paired difference ``d_s`` per seed ``s``, ``n`` seeds):

* **Test.** One-sided paired t-test of H0: mean(d) <= b against H1: mean(d) > b, with b = 0 for a
  ``">"`` claim (superiority) and b = -margin for a ``">="`` claim (non-inferiority, the margin
  fixed in the claim's definition): t = (mean - b) / (sd / sqrt(n)), p = P(T_{n-1} >= t).
* **Multiplicity.** Holm's step-down procedure (Holm 1979) within each family of ``m`` pre-registered
  claims at family-wise level ``alpha``: the raw p-values sorted, p_(1) <= ... <= p_(m); adjusted
  p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)). A claim not measured counts as p = 1 (the family
  keeps its pre-registered size).
* **Adjusted intervals.** Two-sided t intervals at confidence 1 - 2 a_i, so their lower bound is the
  one-sided (1 - a_i) bound: a_i = alpha / (m - i + 1) for the i-th smallest p-value when it is
  rejected, and alpha / (m - r) for every claim not rejected (r rejections), the levels of the
  intervals compatible with Holm's procedure for the claims it does not reject (Strassburger and
  Bretz 2008). The lower bound lies above b exactly when Holm rejects.
* **Verdict** from the adjusted interval: *holds* when it lies above b, *does not hold* when it lies
  below b, *inconclusive* when it contains b.
* **Seeds needed** (inconclusive claims only, an estimate): the smallest n whose one-sided t-test at
  the claim's adjusted level has 80 % power when the true mean and sd are the observed ones
  (noncentral t: power = 1 - F_{nct}(t_{1-a, n-1}; n-1, sqrt(n) (mean - b) / sd)).

``alpha = 0.025`` one-sided is the level of the two-sided 95 % interval the study used before Holm,
so a family of one claim is judged exactly as before.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from tsplab.conditions import Claim

ALPHA = 0.025  # family-wise, one-sided: the two-sided 95 % interval's level for a single claim
POWER = 0.8  # of the seeds-needed estimate
MAX_SEEDS = 10_000  # beyond this the estimate says "more than"


def paired_interval(differences, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean of paired differences (n >= 2; the
    seeds are the pairs). Identical differences give a zero-width interval."""
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    mean = float(d.mean())
    sem = float(d.std(ddof=1) / np.sqrt(len(d)))
    if sem == 0:
        return mean, mean, mean
    low, high = stats.t.interval(confidence, len(d) - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def one_sided_p(differences, null: float = 0.0) -> float:
    """p of the one-sided paired t-test of H0: mean <= ``null`` (n >= 2). Identical differences:
    0 when they lie above ``null``, 1 otherwise."""
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    sem = float(d.std(ddof=1) / np.sqrt(len(d)))
    if sem == 0:
        return 0.0 if d.mean() > null else 1.0
    return float(stats.t.sf((d.mean() - null) / sem, len(d) - 1))


def holm(p_values, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """(adjusted p, interval level a_i) for each p-value of one family, in the order given; NaN
    counts as 1 (a pre-registered claim not measured). See the module docstring."""
    p = np.nan_to_num(np.asarray(p_values, dtype=float), nan=1.0)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted, levels = np.empty(m), np.empty(m)
    running, rejected = 0.0, 0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
        if rejected == rank and p[index] <= alpha / (m - rank):
            rejected += 1
    for rank, index in enumerate(order):
        levels[index] = alpha / (m - rank) if rank < rejected else alpha / max(m - rejected, 1)
    return adjusted, levels


def seeds_needed(mean: float, sd: float, level: float, null: float = 0.0, power: float = POWER) -> float:
    """The smallest n >= 2 whose one-sided t-test at ``level`` has ``power`` when the true mean
    difference is ``mean`` and its sd ``sd`` (noncentral t); NaN when ``mean`` is not above
    ``null`` (no n would do), inf when more than ``MAX_SEEDS``."""
    from scipy import stats

    if not mean > null or not sd > 0:
        return np.nan if not mean > null else 2.0
    effect = (mean - null) / sd
    for n in range(2, MAX_SEEDS + 1):
        critical = stats.t.ppf(1 - level, n - 1)
        if stats.nct.sf(critical, n - 1, effect * np.sqrt(n)) >= power:
            return float(n)
    return np.inf


def claim_differences(cells: pd.DataFrame, claim: Claim) -> pd.Series:
    """The claim's paired difference per seed at which both conditions finished (index: seed):
    the gain on ``metric`` (mean with ``pooled``), minus the mean gain on ``versus``."""
    finished = cells[cells["status"] == "finished"].set_index(["condition", "seed"])
    present = finished.index.get_level_values(0)
    if claim.better not in present or claim.worse not in present:
        return pd.Series(dtype=float, name="difference")
    better, worse = finished.xs(claim.better, level="condition"), finished.xs(claim.worse, level="condition")
    seeds = better.index.intersection(worse.index)
    columns = list(claim.metrics)
    gain = better.loc[seeds, columns].astype(float) - worse.loc[seeds, columns].astype(float)
    difference = gain[[claim.metric, *claim.pooled]].mean(axis=1)  # NaN buckets left out
    if claim.versus:
        difference = difference - gain[list(claim.versus)].mean(axis=1)
    return difference.astype(float).dropna().rename("difference")


def verdict(n: int, low: float, high: float, null: float = 0.0) -> str:
    """From the adjusted interval: holds above ``null``, does not hold below, else inconclusive."""
    if n < 2:
        return "a tour (1 seed): no interval" if n == 1 else "not measured"
    if low > null:
        return "holds"
    if high < null:
        return "does not hold"
    return f"inconclusive (adjusted interval contains {null:g})"


def describe_test(claim: Claim, m: int, alpha: float = ALPHA) -> str:
    """The exact test of a claim, in words (written under the claims table)."""
    hypothesis = ("H0: mean difference <= 0" if claim.relation == ">"
                  else f"non-inferiority, H0: mean difference <= -{claim.margin:.3g} (margin: {claim.margin_reason})")
    return (f"one-sided paired t-test over seeds ({hypothesis}); Holm-Bonferroni over the {m} claims of "
            f"family {claim.family!r} at family-wise alpha = {alpha}")


CLAIM_COLUMNS = ["claim", "family", "source", "metric", "better", "worse", "relation", "margin", "paper",
                 "n", "difference", "sd", "ci_low", "ci_high", "p", "p_holm", "level", "adj_low", "adj_high",
                 "verdict", "paper_in_interval", "seeds_needed", "test"]


def claims_table(cells: pd.DataFrame, claims, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per claim (``CLAIM_COLUMNS``): what it says, the paper's difference, n paired seeds,
    the mean difference and its sd, the raw 95 % t interval and one-sided p, Holm's adjusted p within
    the claim's family, the adjusted interval (``level``: its one-sided level), the verdict from it,
    whether the paper's value lies inside it (``yes``/``no``; ``n/a`` without a paper value or an
    interval), the seeds an inconclusive claim's observed effect would need (an estimate), and the
    test. A claim whose conditions are not in the study is listed as not measured, naming them."""
    from tsplab.study.provenance import one_fingerprint

    one_fingerprint(cells)
    rows = [_measure(cells, claim) for claim in claims]
    table = pd.DataFrame(rows)
    for family in pd.unique(table["family"]) if len(table) else []:
        members = table.index[table["family"] == family]
        adjusted, levels = holm(table.loc[members, "p"], alpha)
        table.loc[members, "p_holm"], table.loc[members, "level"] = adjusted, levels
    for index, claim in enumerate(claims):
        table.loc[index, "test"] = describe_test(claim, int((table["family"] == claim.family).sum()), alpha)
        _judge(table, index, claim, cells)
    return table.reindex(columns=CLAIM_COLUMNS)


def _measure(cells: pd.DataFrame, claim: Claim) -> dict:
    """A claim's row before the family's correction: its paired differences' mean, sd, raw 95 %
    interval and one-sided p (NaN below two seeds)."""
    row = dict(claim=claim.text, family=claim.family, source=claim.source, metric=claim.metric,
               better=claim.better, worse=claim.worse, relation=claim.relation, margin=claim.margin,
               paper=claim.paper, n=0, difference=np.nan, sd=np.nan, ci_low=np.nan, ci_high=np.nan,
               p=np.nan)
    absent = [c for c in (claim.better, claim.worse) if c not in set(cells["condition"])]
    if absent:
        return {**row, "verdict": f"not measured ({', '.join(absent)} not in this study)"}
    d = claim_differences(cells, claim)
    row["n"] = len(d)
    if len(d) == 1:
        row["difference"] = float(d.iloc[0])
    if len(d) >= 2:
        row["difference"], row["ci_low"], row["ci_high"] = paired_interval(d)
        row["sd"], row["p"] = float(d.std(ddof=1)), one_sided_p(d, claim.null)
    return row


def _judge(table: pd.DataFrame, index: int, claim: Claim, cells: pd.DataFrame) -> None:
    """Fill the adjusted interval, verdict, paper-in-interval and seeds-needed of row ``index``."""
    row = table.loc[index]
    if isinstance(row.get("verdict"), str) and row["verdict"].startswith("not measured"):
        table.loc[index, "paper_in_interval"] = "n/a"
        return
    low = high = np.nan
    if row["n"] >= 2:
        d = claim_differences(cells, claim)
        _, low, high = paired_interval(d, 1 - 2 * row["level"])
    table.loc[index, ["adj_low", "adj_high"]] = low, high
    table.loc[index, "verdict"] = verdict(int(row["n"]), low, high, claim.null)
    inside = "n/a" if claim.paper is None or np.isnan(low) else ("yes" if low <= claim.paper <= high else "no")
    table.loc[index, "paper_in_interval"] = inside
    if table.loc[index, "verdict"].startswith("inconclusive"):
        table.loc[index, "seeds_needed"] = seeds_needed(row["difference"], row["sd"], row["level"], claim.null)
