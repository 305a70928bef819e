"""The study's tables: its cells, each condition's mean ± std (max) over seeds, TSP's layout, the
claims, and the figures; every table from cells of one code fingerprint, stamped with it and with
the pre-registration's hash.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tsplab.conditions import STUDIES, Condition
from tsplab.errors import InputError
from tsplab.runs import atomic_write_bytes, resolve, write_csv
from tsplab.study.cells import cell_dir, read_cell
from tsplab.study.preregistration import PREREGISTRATION_FILE, read_preregistration
from tsplab.study.provenance import STALE, one_fingerprint
from tsplab.study.statistics import claims_table


@dataclass
class StudyResult:
    """What ``run_study`` made: ``cells`` (one row per condition x seed: status, seconds, error and
    every metric), ``summary`` (mean, std, max, n per condition and metric), ``table`` (TSP's
    layout), ``claims``; ``ran`` / ``skipped`` / ``stale``: cells executed by this call / reused
    finished / kept though made by other code; ``fingerprint`` and ``preregistration``: the code
    fingerprint of the tables' cells and the pre-registration's sha256."""

    out_dir: Path
    cells: pd.DataFrame
    summary: pd.DataFrame
    table: pd.DataFrame
    claims: pd.DataFrame
    ran: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    stale: list = field(default_factory=list)
    fingerprint: str = ""
    preregistration: str = ""

    @property
    def failed(self) -> pd.DataFrame:
        return self.cells[~self.cells["status"].isin(["finished", STALE])]


def seed_list(seeds) -> list[int]:
    """``seeds``: a count N (seeds 0..N-1, so that growing N resumes the seeds already run) or a list."""
    values = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not values or min(values) < 0 or len(set(values)) != len(values):
        raise InputError(f"seeds: {seeds!r}; give a count of at least 1 (seeds 0..N-1) or distinct "
                         "non-negative seeds")
    return values


def tables_dir(out, study: str = "tsp") -> Path:
    """Where a study's tables go: the study folder for TSP's Study 1, ``OUT/<study>/`` for another
    study run into the same folder (the peers, reusing Study 1's finished cells)."""
    out = resolve(out)
    return out if study == "tsp" else out / study


SELECT_BY = "average mAP"  # the run whose values fill "(max)", as in TSP's tables (see summary_table)


def cells_table(out, conditions: list[Condition], seeds, fingerprint: str | None = None) -> pd.DataFrame:
    """One row per condition x seed of the study: condition, seed, status (finished | failed | not
    run | stale), seconds (the notebooks'), error, cell (its folder), fingerprint (the code's, as the
    cell recorded it), then every metric (NaN unless finished). With ``fingerprint``, a finished
    cell of another fingerprint is ``stale`` (kept by ``keep_stale``; out of every table)."""
    out = resolve(out)
    rows = []
    for c in conditions:
        for seed in seed_list(seeds):
            record = read_cell(out, c.name, seed) or {"status": "not run"}
            recorded = (record.get("provenance") or {}).get("fingerprint") or ""
            status = record["status"]
            if status == "finished" and fingerprint is not None and recorded != fingerprint:
                status = STALE
            rows.append(dict(condition=c.name, seed=seed, status=status,
                             seconds=round(sum(record.get("seconds", {}).values()), 1),
                             error=record.get("error", ""),
                             cell=os.path.relpath(cell_dir(out, c.name, seed), out), fingerprint=recorded,
                             **(record["metrics"] if status == "finished" else {})))
    return pd.DataFrame(rows)


def metric_columns(cells: pd.DataFrame) -> list[str]:
    fixed = {"condition", "seed", "status", "seconds", "error", "cell", "fingerprint", "preregistration"}
    return [c for c in cells.columns if c not in fixed]


def summary_table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per condition and metric over its finished seeds with a value (NaN: none, e.g. an
    empty length bucket): mean, std (sample, ddof=1; NaN for one seed), max and n. "max" follows
    TSP's tables: the value of the run with the highest average mAP (so it can lie below the mean:
    Table 9a, TAC on Kinetics at tIoU 0.95, 08.028 ± 0.290 (07.847)), not each metric's own maximum.
    Finished cells of several code fingerprints are refused (``one_fingerprint``)."""
    one_fingerprint(cells)
    rows = []
    metrics = metric_columns(cells)
    finished = cells[cells["status"] == "finished"]
    for condition in pd.unique(cells["condition"]):
        runs = finished[finished["condition"] == condition]
        best = runs.loc[runs[SELECT_BY].idxmax()] if len(runs) and SELECT_BY in runs else None
        for metric in metrics:
            values = runs[metric].to_numpy(float)
            values = values[~np.isnan(values)]  # e.g. a length bucket without instances
            rows.append(dict(condition=condition, metric=metric, n=len(values),
                             mean=float(values.mean()) if len(values) else np.nan,
                             std=float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                             max=float(best[metric]) if best is not None else np.nan))
    return pd.DataFrame(rows, columns=["condition", "metric", "n", "mean", "std", "max"])


def tsp_table(summary: pd.DataFrame, conditions: list[Condition], digits: int = 3) -> pd.DataFrame:
    """TSP's layout (supplementary Tables 9-12): rows = metrics, columns = conditions (their labels),
    entries ``mean ± std (max)``; one seed shows ``value (1 seed)``, none an empty entry."""
    def entry(row) -> str:
        if row.n == 0:
            return ""
        if row.n == 1:
            return f"{row.mean:.{digits}f} (1 seed)"
        return f"{row.mean:.{digits}f} ± {row.std:.{digits}f} ({row.max:.{digits}f})"

    labels = {c.name: c.label for c in conditions}
    text = summary.assign(entry=[entry(r) for r in summary.itertuples()])
    table = text.pivot(index="metric", columns="condition", values="entry")
    table = table.reindex(index=pd.unique(summary["metric"]), columns=[c.name for c in conditions])
    return table.rename(columns=labels).rename_axis(index="metric", columns=None)



def aggregate(out, conditions: list[Condition], seeds, claims=None, study: str = "tsp",
              fingerprint: str | None = None) -> StudyResult:
    """Read every cell of the study and write its tables into ``tables_dir(out, study)``:
    ``cells.csv``, ``summary.csv``, ``table.csv`` (TSP's layout), ``claims.csv``, ``study.png``
    (each metric with its seeds and mean ± std) and ``claims.png`` (the claims' forest plot). Every
    table names the code fingerprint of its cells (one: ``one_fingerprint``) and the sha256 of the
    study's ``preregistration.json``, whose claims and alpha it uses; ``claims`` (default the
    study's) must equal the pre-registered ones. ``fingerprint``: the study's, whose cells count
    (others are listed as stale); None: the cells' own, which must be one."""
    cells = cells_table(resolve(out), conditions, seeds, fingerprint)
    out = tables_dir(out, study)
    registered, digest = read_preregistration(out)
    claims = STUDIES[study][1] if claims is None else claims
    if [json.loads(json.dumps(dataclasses.asdict(c))) for c in claims] != registered["claims"]:
        raise InputError(f"{out / PREREGISTRATION_FILE}: its claims differ from the study's; a changed "
                         "claim needs a new study folder")
    code = one_fingerprint(cells) or fingerprint or ""  # no finished cell: the study's own
    stamp = {"code fingerprint": code, "preregistration sha256": digest}
    summary = summary_table(cells)
    table = tsp_table(summary, conditions)
    table = pd.concat([table, pd.DataFrame({c: list(stamp.values()) for c in table.columns},
                                           index=list(stamp))]).rename_axis(index="metric")
    claims = claims_table(cells, claims, registered["alpha"])
    for frame in (cells, summary, claims):
        frame["preregistration"] = digest
    summary["fingerprint"] = claims["fingerprint"] = code
    write_csv(out / "cells.csv", cells)
    write_csv(out / "summary.csv", summary)
    write_csv(out / "table.csv", table, index=True)
    write_csv(out / "claims.csv", claims)
    _write_figures(out, cells, claims, conditions, summary)
    return StudyResult(out_dir=out, cells=cells, summary=summary, table=table, claims=claims,
                       fingerprint=code, preregistration=digest)


def _write_figures(out: Path, cells, claims, conditions, summary) -> None:
    import matplotlib.pyplot as plt

    from tsplab import plots

    if len(summary) and summary["n"].gt(0).any():
        fig = plots.plot_study_metrics(cells, metric_columns(cells),
                                       labels={c.name: c.label for c in conditions})
        atomic_write_bytes(out / "study.png", plots.figure_to_png(fig))
        plt.close(fig)
    if claims["n"].gt(0).any():
        fig = plots.plot_claims_forest(claims)
        atomic_write_bytes(out / "claims.png", plots.figure_to_png(fig))
        plt.close(fig)
