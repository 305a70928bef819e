"""Which finished cells a study may reuse, and the rule that a table holds cells of one code version.

* A finished cell of another identity (condition, seed, budget, benchmark) in the study's folder is a
  different experiment: refused, nothing written (``InputError``).
* A finished cell of the same identity but another provenance (code fingerprint, library versions,
  notebook parameters; ``CellSpec.provenance``) was made by other code: it is rerun, its folder first
  moved aside to ``seed<k>.stale-<its fingerprint>`` (nothing a run made is overwritten), or, with
  ``keep_stale``, kept where it is and listed as ``stale``, out of every table.
* A table or claim is computed only from finished cells of one fingerprint (``one_fingerprint``),
  and names it; cells of several fingerprints, or without one, are refused, naming the cells.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd

from tsplab.conditions import Condition
from tsplab.errors import InputError
from tsplab.study.cells import CELL_FILE, CellSpec, read_cell

STALE = "stale"  # the status of a kept cell made by other code


def reuse_decision(spec: CellSpec, record: dict | None) -> str:
    """``"run"`` (no finished cell), ``"reuse"`` (same identity and provenance) or the reason the
    finished cell is stale (same identity, other provenance); ``InputError`` for another identity."""
    if not record or record.get("status") != "finished":
        return "run"
    if with_defaults(record.get("identity")) != spec.identity():
        raise InputError(
            f"{spec.cell_dir / CELL_FILE}: a finished cell of another setting (recorded "
            f"{record.get('identity')}, now {spec.identity()}); give another --out, or move that "
            "cell folder away to run it again")
    recorded, now = record.get("provenance") or {}, json.loads(json.dumps(spec.provenance()))
    differs = [k for k in ("fingerprint", "versions", "parameters") if recorded.get(k) != now.get(k)]
    if not differs:
        return "reuse"
    if "fingerprint" not in recorded:
        return "made before cells recorded their provenance"
    return f"made with other {', '.join(differs)} (fingerprint {str(recorded.get('fingerprint'))[:12]})"


def with_defaults(identity: dict | None) -> dict | None:
    """A recorded identity with the condition fields added since it was written at their defaults
    (a cell finished before a field existed ran with its default)."""
    if not identity or not isinstance(identity.get("condition"), dict):
        return identity
    defaults = json.loads(json.dumps(
        {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
         for f in dataclasses.fields(Condition)
         if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}, default=str))
    return {**identity, "condition": {**defaults, **identity["condition"]}}


def sort_finished_cells(specs: list[CellSpec], keep_stale: bool) -> tuple[list, list, list]:
    """(reused, to run, kept stale) among ``specs``, checking every finished cell first (an
    ``InputError`` before anything moves). Stale cells not kept are moved aside (``move_aside``)."""
    decisions = [(spec, reuse_decision(spec, read_cell(spec.study_dir, spec.condition.name, spec.seed)))
                 for spec in specs]
    reused = [s for s, d in decisions if d == "reuse"]
    stale = [(s, d) for s, d in decisions if d not in ("reuse", "run")]
    kept = [s for s, _ in stale] if keep_stale else []
    for spec, reason in ([] if keep_stale else stale):
        moved = move_aside(spec)
        print(f"{spec.condition.name}/seed{spec.seed}: {reason}; moved to {moved.name}, rerun", flush=True)
    todo = [s for s in specs if s not in reused and s not in kept]
    return reused, todo, kept


def move_aside(spec: CellSpec) -> Path:
    """Rename a stale cell's folder to ``seed<k>.stale-<fingerprint>`` (``-2``, ``-3``... when taken)."""
    record = read_cell(spec.study_dir, spec.condition.name, spec.seed) or {}
    fingerprint = str((record.get("provenance") or {}).get("fingerprint") or "unrecorded")[:12]
    target = spec.cell_dir.with_name(f"{spec.cell_dir.name}.stale-{fingerprint}")
    for k in range(2, 1000):
        if not target.exists():
            break
        target = spec.cell_dir.with_name(f"{spec.cell_dir.name}.stale-{fingerprint}-{k}")
    shutil.move(str(spec.cell_dir), str(target))
    return target


def one_fingerprint(cells: pd.DataFrame) -> str:
    """The one code fingerprint of the finished cells of a table ('' for a table without the column,
    made by hand); ``InputError`` naming the cells when they hold several, or none recorded."""
    if "fingerprint" not in cells.columns:
        return ""
    finished = cells[cells["status"] == "finished"]
    groups = {fp if isinstance(fp, str) and fp else "": rows for fp, rows in
              finished.groupby(finished["fingerprint"].fillna(""))}
    if "" in groups:
        names = _names(groups[""])
        raise InputError(f"cells without a recorded code fingerprint (made before provenance was recorded): "
                         f"{names}; rerun them (tsplab study reruns such cells)")
    if len(groups) > 1:
        listed = "; ".join(f"{fp[:12]}: {_names(rows)}" for fp, rows in groups.items())
        raise InputError(f"cells of {len(groups)} code versions in one table ({listed}); a table holds "
                         "cells of one fingerprint: rerun the study to remake the stale ones")
    return next(iter(groups), "")


def _names(rows: pd.DataFrame) -> str:
    return ", ".join(f"{r.condition}/seed{r.seed}" for r in rows.itertuples())
