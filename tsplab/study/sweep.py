"""A dial sweep: one study per level of one benchmark dial, and the dose-response of each
pre-registered prediction over the levels (``tsplab study --study dials --benchmark-option DIAL=L1,L2,L3``).

Layout: the cells of level ``L`` are ``OUT/<dial>=<L>/<condition>/seed<k>/``, with their benchmarks
beside them (``OUT/<dial>=<L>/benchmark_seed<k>``, or ``OUT/<dial>=<L>/benchmark`` with fixed data),
each generated with the level's dials (the swept one and the ``fixed`` companions). A level's
folder is a study folder as ``tsplab.study.runner`` makes them, with the same provenance, resume
and stale rules; the level's dials are part of each cell's identity and of its notebooks'
parameters. ``OUT/preregistration.json`` (the dial, levels, companions, predictions, conditions,
seeds) is written before any cell of any level runs; ``OUT/cells.csv`` (with a ``level`` column),
``dose_response.csv``, ``predictions.csv`` and ``dose_response.png`` are the sweep's tables.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tsplab.conditions import ALL_CONDITIONS, Condition, get_conditions
from tsplab.dial_predictions import (DIAL_RANGES, DIAL_SWEEPS, check_predictions, dial_predictions, level_folder,
                                     prediction_record, sweep_levels)
from tsplab.errors import InputError
from tsplab.runs import atomic_write_bytes, resolve, write_csv, write_json
from tsplab.study.cells import BUDGETS, CELL_FILE, CellSpec, read_cell
from tsplab.study.dial_statistics import LEVEL, dose_response_table, predictions_table
from tsplab.study.lock import study_lock
from tsplab.study.preregistration import read_preregistration, register, sweep_preregistration
from tsplab.study.provenance import one_fingerprint, reuse_decision, sort_finished_cells
from tsplab.study.runner import (STUDY_FILE, SlurmOptions, any_finished, available_cores, cell_name, check_study,
                                 plan_cells, prepare_data, run_waves)
from tsplab.study.tables import cells_table, seed_list

DIALS_STUDY = "dials"  # tsplab study --study dials


@dataclass
class SweepResult:
    """What ``run_dial_study`` made: ``cells`` (one row per level x condition x seed), ``dose``
    (``dose_response.csv``), ``predictions`` (``predictions.csv``); ``ran`` / ``skipped`` / ``stale``
    as in ``StudyResult``, cells named ``<dial>=<level>/<condition>/seed<k>``."""

    out_dir: Path
    cells: pd.DataFrame
    dose: pd.DataFrame
    predictions: pd.DataFrame
    ran: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    stale: list = field(default_factory=list)
    fingerprint: str = ""
    preregistration: str = ""


def sweep_conditions(dial: str, names=None) -> list[Condition]:
    """The conditions of a sweep of ``dial``: ``names``, or by default the sweep's own
    (``DIAL_SWEEPS``: its predictions' pairs and what they read)."""
    if dial not in DIAL_RANGES:
        raise InputError(f"--benchmark-option {dial}: unknown dial; valid: {', '.join(DIAL_RANGES)}")
    if names is None:
        if dial not in DIAL_SWEEPS:
            raise InputError(f"--benchmark-option {dial}: no default conditions for this dial (it has no "
                             f"pre-registered prediction); name them with --conditions")
        names = DIAL_SWEEPS[dial].conditions
    return get_conditions(names, ALL_CONDITIONS)


def plan_sweep(out, budget: str, seeds, conditions: list[Condition], dial: str, levels, fixed: dict | None = None,
               *, vary_data: bool = True, benchmark_seed: int = 0, threads: int = 1) -> dict[float, list[CellSpec]]:
    """``{level: its cells}``: each level a study folder ``OUT/<dial>=<level>`` planned by
    ``plan_cells`` with the level's dials. Checks only; writes nothing."""
    out = resolve(out)
    return {o[dial]: plan_cells(out / level_folder(dial, o[dial]), budget, seeds, conditions, vary_data=vary_data,
                                benchmark_seed=benchmark_seed, threads=threads, benchmark_options=o)
            for o in sweep_levels(dial, levels, fixed)}


def run_dial_study(out, dial: str, levels=None, fixed: dict | None = None, budget: str = "tiny", seeds=2,
                   conditions=None, *, jobs: int = 1, launcher: str = "local", slurm: SlurmOptions | None = None,
                   vary_data: bool = True, benchmark_seed: int = 0, keep_stale: bool = False) -> SweepResult:
    """Run (or resume) the sweep of ``dial`` over ``levels`` (default: ``DIAL_SWEEPS``' levels) with
    the ``fixed`` companion dials (default: the sweep's) into ``out`` and write its tables (module
    docstring). The other arguments are ``run_study``'s. Everything is checked before anything is
    written; the pre-registration is written before any cell runs."""
    from tsplab.fingerprint import code_fingerprint, library_versions

    if isinstance(benchmark_seed, bool) or not isinstance(benchmark_seed, int) or benchmark_seed < 0:
        raise InputError(f"benchmark_seed (--benchmark-seed): {benchmark_seed!r}; give a whole number >= 0")
    out = check_study(budget, launcher, jobs, out, slurm)
    sweep = DIAL_SWEEPS.get(dial)
    levels = list(sweep.levels if levels is None and sweep else levels or [])
    fixed = dict(sweep.fixed if fixed is None and sweep else fixed or {})
    predictions = dial_predictions(dial)
    check_predictions(predictions)
    chosen = sweep_conditions(dial, conditions)
    threads = (slurm or SlurmOptions()).cpus if launcher == "slurm" else max(1, available_cores() // jobs)
    plans = plan_sweep(out, budget, seeds, chosen, dial, levels, fixed, vary_data=vary_data,
                       benchmark_seed=benchmark_seed, threads=threads)
    fingerprint, versions = code_fingerprint(), library_versions()
    specs = [s for level_specs in plans.values() for s in level_specs]
    for spec in specs:
        spec.fingerprint, spec.versions = fingerprint, versions
    for spec in specs:  # every finished cell checked before anything is written
        reuse_decision(spec, read_cell(spec.study_dir, spec.condition.name, spec.seed))
    registration = sweep_preregistration(dial, list(plans), fixed, [prediction_record(p) for p in predictions],
                                         chosen, seed_list(seeds), budget=budget, vary_data=vary_data,
                                         benchmark_seed=benchmark_seed)
    with study_lock(out):
        register(out, registration, results_exist=any_finished(resolve(out), f"*=*/*/seed*/{CELL_FILE}"))
        write_json(out / STUDY_FILE, dict(study=DIALS_STUDY, dial=dial, levels=list(plans), fixed=fixed,
                                          budget=budget, seeds=seed_list(seeds), conditions=[c.name for c in chosen],
                                          vary_data=vary_data, benchmark_seed=benchmark_seed,
                                          fingerprint=fingerprint, versions=versions))
        ran, skipped, stale = [], [], []
        for level, level_specs in plans.items():
            done = _run_level(level_specs, budget, jobs, launcher, slurm or SlurmOptions(), keep_stale)
            for names, cells in zip((ran, skipped, stale), done):
                names += [f"{level_folder(dial, level)}/{cell_name(s)}" for s in cells]
        result = aggregate_sweep(out, chosen, seeds, fingerprint=fingerprint)
    result.ran, result.skipped, result.stale = ran, skipped, stale
    return result


def _run_level(specs: list[CellSpec], budget: str, jobs: int, launcher: str, slurm: SlurmOptions,
               keep_stale: bool) -> tuple[list, list, list]:
    """Run one level's cells as ``run_study`` runs a study's: (ran, reused, kept stale)."""
    level_dir = Path(specs[0].study_dir)
    skipped, todo, stale = sort_finished_cells(specs, keep_stale)
    if todo:
        prepared = prepare_data({s.seed: (Path(s.benchmark_dir), s.benchmark_seed) for s in todo},
                                 BUDGETS[budget], [s.condition for s in todo], level_dir,
                                 dials=specs[0].benchmark_options)
        for s in todo:
            s.source_checkpoint, s.frame_cache_dir = prepared[Path(s.benchmark_dir)]
    print(f"level {level_dir.name}: {len(specs)} cells, {len(skipped)} finished before, {len(stale)} stale "
          f"kept, {len(todo)} to run", flush=True)
    run_waves(todo, level_dir, jobs, launcher, slurm)
    return todo, skipped, stale


def sweep_cells(out, dial: str, levels, conditions: list[Condition], seeds, fingerprint: str | None = None
                ) -> pd.DataFrame:
    """``cells_table`` of every level, one below the other, with a ``level`` column and each
    cell's folder relative to the sweep's."""
    out = resolve(out)
    frames = []
    for level in levels:
        folder = level_folder(dial, level)
        table = cells_table(out / folder, conditions, seeds, fingerprint)
        table.insert(0, LEVEL, float(level))
        table["cell"] = [os.path.join(folder, c) for c in table["cell"]]
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def aggregate_sweep(out, conditions: list[Condition], seeds, fingerprint: str | None = None) -> SweepResult:
    """Read every cell of the sweep in ``out`` and write ``cells.csv``, ``dose_response.csv``,
    ``predictions.csv`` and ``dose_response.png`` there, each stamped with the cells' one code
    fingerprint and the pre-registration's sha256; the predictions must be the pre-registered ones."""
    out = resolve(out)
    registered, digest = read_preregistration(out)
    dial = registered["dial"]
    predictions = dial_predictions(dial)
    if [prediction_record(p) for p in predictions] != registered["predictions"]:
        raise InputError(f"{out}: its pre-registered predictions differ from tsplab.dial_predictions' "
                         "now; a changed prediction needs a new study folder")
    cells = sweep_cells(out, dial, registered["levels"], conditions, seeds, fingerprint)
    code = one_fingerprint(cells) or fingerprint or ""
    dose = dose_response_table(cells, predictions)
    table = predictions_table(cells, predictions, registered["alpha"])
    for frame in (cells, dose, table):
        frame["preregistration"] = digest
    dose["fingerprint"] = table["fingerprint"] = code
    write_csv(out / "cells.csv", cells)
    write_csv(out / "dose_response.csv", dose)
    write_csv(out / "predictions.csv", table)
    if len(dose) and dose["n"].gt(0).any():
        import matplotlib.pyplot as plt

        from tsplab import plots

        fig = plots.plot_dose_response(dose, table, dial=dial)
        atomic_write_bytes(out / "dose_response.png", plots.figure_to_png(fig))
        plt.close(fig)
    return SweepResult(out_dir=out, cells=cells, dose=dose, predictions=table, fingerprint=code,
                       preregistration=digest)
