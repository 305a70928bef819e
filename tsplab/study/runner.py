"""Running a study: plan its cells, check what may be reused, pre-register, prepare the data once
per benchmark, run the cells in waves (processes or submitit jobs), aggregate.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from tsplab.conditions import SOURCE, STUDIES, Condition, check_claims, get_conditions
from tsplab.errors import InputError, check_choice, one_line
from tsplab.runs import check_output_folder, read_json, resolve, write_json
from tsplab.pipeline import Budget
from tsplab.study.cells import BUDGETS, CELL_FILE, CellSpec, cell_dir, read_cell, run_cell
from tsplab.study.lock import study_lock
from tsplab.study.preregistration import preregistration, register
from tsplab.study.provenance import reuse_decision, sort_finished_cells
from tsplab.study.tables import StudyResult, aggregate, seed_list, tables_dir

STUDY_FILE = "study.json"
# The study: prepare once, run the cells (processes or submitit jobs), aggregate
# --------------------------------------------------------------------------------------------

LAUNCHERS = ("local", "slurm")


@dataclass(frozen=True)
class SlurmOptions:
    """One submitit job per cell (``--launcher slurm``). ``cluster``: submitit's executor, ``slurm``
    on a cluster, ``local`` for its local executor (tests: the same code path without Slurm)."""

    partition: str = ""
    gpus: int = 0
    time_min: int = 120
    mem_gb: int = 16
    cpus: int = 2
    cluster: str = "slurm"


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _benchmark_dirs(out: Path, seeds: list[int], vary_data: bool, benchmark_seed: int) -> dict:
    """``{cell seed: (benchmark folder, benchmark seed)}``: one fixed benchmark, or one per seed."""
    if vary_data:
        return {s: (out / f"benchmark_seed{s}", s) for s in seeds}
    return {s: (out / "benchmark", benchmark_seed) for s in seeds}


def prepare_data(benchmarks: dict, budget: Budget, conditions: list[Condition], out: Path,
                  dials: dict | None = None) -> dict:
    """Generate each benchmark once (with ``dials``: a dial sweep's level), train its source encoder
    once when a condition starts from it, and fill the frame cache every training cell reads (so
    parallel cells neither race nor repeat the decoding). Returns ``{benchmark folder: (source checkpoint or None, frame cache folder)}``."""
    from tsplab.benchmark import generate_benchmark
    from tsplab.pretrain.source import ensure_source_encoder

    workers = available_cores()
    needs_source = any(c.weights == SOURCE and not c.features_from for c in conditions)
    trains = any(c.trains for c in conditions)
    prepared = {}
    for folder, seed in sorted(set(benchmarks.values())):
        print(f"benchmark {folder} ({budget.benchmark_size}, seed {seed}"
              f"{''.join(f', {k}={v}' for k, v in (dials or {}).items())})", flush=True)
        generate_benchmark(folder, budget.benchmark_size, seed, workers=workers, progress=False,
                           dials=dials or None)
        source = None
        if needs_source:
            # TAC on the benchmark's source set, trained once (seeded by the benchmark's seed) and
            # shared by every cell, as one Kinetics model serves every run of the paper.
            source = str(ensure_source_encoder(folder, progress=False))
        cache = out / "frame_cache" / folder.name if trains else None
        if cache is not None:
            _fill_frame_cache(folder, cache, workers)
        prepared[folder] = (source, str(cache) if cache else "")
    return prepared


def _fill_frame_cache(benchmark: Path, cache: Path, workers: int) -> None:
    from tsplab.pretrain.recipes import pretrain_config
    from tsplab.video import FrameCache

    clips = pretrain_config("synthetic", dataset_dir=str(benchmark))
    built = FrameCache(cache, clips.frame_rate, clips.resize_short_side).build(
        sorted((benchmark / "videos").glob("*.mp4")), workers=workers)
    failed = built[built["status"] == "failed"]
    if len(failed):  # pretraining leaves them out too, naming them in its data report
        print(f"frame cache: {len(failed)} videos could not be decoded, e.g. {failed['video'].iat[0]}: "
              f"{failed['error'].iat[0]}", flush=True)


def plan_cells(out, budget: str, seeds, conditions: list[Condition], *, vary_data: bool = False,
               benchmark_seed: int = 0, threads: int = 1,
               benchmark_options: dict | None = None) -> list[CellSpec]:
    """Every cell of the study (conditions x seeds), before any data exists (no source checkpoint
    yet), seed by seed: a study stopped part-way leaves whole seeds, each of which pairs every
    condition. ``benchmark_options``: the dials of every benchmark (one level of a dial sweep,
    ``tsplab.study.sweep``). Checks only; writes nothing."""
    out = resolve(out)
    benchmarks = _benchmark_dirs(out, seed_list(seeds), vary_data, benchmark_seed)
    return [CellSpec(condition=c, seed=s, study_dir=str(out), budget=budget,
                     benchmark_dir=str(benchmarks[s][0]), benchmark_seed=benchmarks[s][1], threads=threads,
                     benchmark_options=dict(benchmark_options or {}))
            for s in benchmarks for c in conditions]


def check_study(budget, launcher, jobs, out, slurm: SlurmOptions | None) -> Path:
    import shutil

    check_choice("budget", budget, BUDGETS)
    check_choice("launcher", launcher, LAUNCHERS)
    if not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"jobs: {jobs!r}; give the number of cells to run at once (1 or more)")
    if launcher == "slurm" and (slurm or SlurmOptions()).cluster == "slurm" and not shutil.which("sbatch"):
        raise InputError("launcher: 'slurm' but sbatch is not on PATH; run on a Slurm login node, or "
                         "use --launcher local")
    return check_output_folder(out, "out")


def run_study(out, budget: str = "tiny", seeds=2, conditions=None, *, jobs: int = 1,
              launcher: str = "local", slurm: SlurmOptions | None = None, vary_data: bool = True,
              benchmark_seed: int = 0, available=None, study: str = "tsp",
              keep_stale: bool = False) -> StudyResult:
    """Run (or resume) the study into ``out`` and aggregate it (``tsplab.study``'s docstring).

    ``study``: a name in ``tsplab.conditions.STUDIES`` (its conditions and claims);
    ``conditions``: names (default: every condition of ``available``, default the study's);
    ``seeds``: a count or a list; ``jobs``: cells at once on this machine (``launcher="local"``),
    each with cores / jobs torch threads; ``launcher="slurm"``: one submitit job per cell.
    ``vary_data`` (default, confirmatory): each seed its own benchmark, source encoder and GVF;
    False: one benchmark (``benchmark_seed``) for every seed. ``keep_stale``: keep finished cells made
    by other code (listed as stale, out of the tables) instead of rerunning them.
    Everything is checked before anything is written; the pre-registration is written before any
    cell runs; a failed cell does not stop the others."""
    from tsplab.fingerprint import code_fingerprint, library_versions

    check_choice("study", study, STUDIES)
    if isinstance(benchmark_seed, bool) or not isinstance(benchmark_seed, int) or benchmark_seed < 0:
        raise InputError(f"benchmark_seed (--benchmark-seed): {benchmark_seed!r}; give the fixed benchmark's seed, "
                         "a whole number >= 0")
    out = check_study(budget, launcher, jobs, out, slurm)
    chosen = get_conditions(conditions, STUDIES[study][0] if available is None else available)
    check_claims(STUDIES[study][1])
    threads = (slurm or SlurmOptions()).cpus if launcher == "slurm" else max(1, available_cores() // jobs)
    specs = plan_cells(out, budget, seeds, chosen, vary_data=vary_data,
                       benchmark_seed=benchmark_seed, threads=threads)
    fingerprint, versions = code_fingerprint(), library_versions()
    for spec in specs:
        spec.fingerprint, spec.versions = fingerprint, versions
    for spec in specs:  # every finished cell checked before anything is written
        reuse_decision(spec, read_cell(out, spec.condition.name, spec.seed))
    with study_lock(out):
        return _run_locked(out, study, budget, seeds, chosen, specs, available=available, jobs=jobs,
                           launcher=launcher, slurm=slurm, vary_data=vary_data, benchmark_seed=benchmark_seed,
                           keep_stale=keep_stale, fingerprint=fingerprint, versions=versions)


def _run_locked(out: Path, study: str, budget: str, seeds, chosen: list[Condition], specs: list[CellSpec],
                *, available, jobs: int, launcher: str, slurm: SlurmOptions | None, vary_data: bool,
                benchmark_seed: int, keep_stale: bool, fingerprint: str, versions: dict) -> StudyResult:
    """:func:`run_study` once everything is checked and the folder is locked: the pre-registration,
    the cells in waves, the tables."""
    tables = tables_dir(out, study)
    registration = preregistration(study, STUDIES[study][1], STUDIES[study][0] if available is None else available,
                                   seed_list(seeds), budget=budget, vary_data=vary_data,
                                   benchmark_seed=benchmark_seed)
    register(tables, registration, results_exist=any_finished(out))
    write_json(tables / STUDY_FILE, dict(study=study, budget=budget, seeds=seed_list(seeds),
                                         conditions=[c.name for c in chosen], vary_data=vary_data,
                                         benchmark_seed=benchmark_seed, fingerprint=fingerprint,
                                         versions=versions))
    skipped, todo, stale = sort_finished_cells(specs, keep_stale)
    if todo:
        prepared = prepare_data({s.seed: (Path(s.benchmark_dir), s.benchmark_seed) for s in todo},
                                 BUDGETS[budget], [s.condition for s in todo], out)
        for s in todo:
            s.source_checkpoint, s.frame_cache_dir = prepared[Path(s.benchmark_dir)]
    print(f"study {out}: {len(specs)} cells, {len(skipped)} finished before, {len(stale)} stale kept, "
          f"{len(todo)} to run; code fingerprint {fingerprint[:12]}", flush=True)
    run_waves(todo, out, jobs, launcher, slurm or SlurmOptions())
    result = aggregate(out, chosen, seed_list(seeds), study=study, fingerprint=fingerprint)
    result.ran, result.skipped = [cell_name(s) for s in todo], [cell_name(s) for s in skipped]
    result.stale = [cell_name(s) for s in stale]
    return result


def any_finished(out: Path, cells: str = f"*/seed*/{CELL_FILE}") -> bool:
    """Whether the study folder holds any finished cell (results exist); ``cells``: the glob of its
    cell records (a dial sweep's are one level deeper, ``*=*/*/seed*/cell.json``)."""
    for path in out.glob(cells):
        try:
            if read_json(path).get("status") == "finished":
                return True
        except ValueError:
            continue
    return False


def cell_name(spec: CellSpec) -> str:
    return f"{spec.condition.name}/seed{spec.seed}"


def run_waves(todo: list[CellSpec], out: Path, jobs: int, launcher: str, slurm: SlurmOptions) -> None:
    """Cells in waves: first those that need no other cell, then those whose inputs (``needs``:
    features or teachers of other conditions at the same seed) ran in an earlier wave, and so on. A
    cell whose input did not finish fails, recorded, without running."""
    pending = list(todo)
    while pending:
        names = {s.condition.name for s in pending}
        wave = [s for s in pending if not names & set(s.condition.needs)]
        if not wave:  # a cycle: get_conditions' checks make this a bug
            raise RuntimeError(f"conditions that need each other: {sorted(names)}")
        pending = [s for s in pending if s not in wave]
        ready = []
        for spec in wave:
            missing = _attach_inputs(spec, out)
            if missing:
                write_json(spec.cell_dir / CELL_FILE, _crash_record(spec, missing))
                print(f"{cell_name(spec)}: failed: {missing}", flush=True)
            else:
                ready.append(spec)
        if launcher == "local":
            _launch_local(ready, jobs)
        else:
            _launch_submitit(ready, out, slurm)


def _attach_inputs(spec: CellSpec, out: Path) -> str:
    """Fill ``spec.inputs`` (feature folders) and ``spec.teachers`` (pretraining runs) from the
    finished cells named in ``features_from`` and ``teachers_from``; the reason when one is not
    finished ('' when all are)."""
    for name in spec.condition.needs:
        record = read_cell(out, name, spec.seed)
        if not record or record.get("status") != "finished":
            return f"its input {name}/seed{spec.seed} did not finish"
        made_by = (record.get("provenance") or {}).get("fingerprint")
        if spec.fingerprint and made_by != spec.fingerprint:
            return f"its input {name}/seed{spec.seed} was made by other code (fingerprint {str(made_by)[:12]})"
        if name in spec.condition.features_from:
            features = record["features"]
            spec.inputs[name] = ([str(out / f) for f in features] if isinstance(features, list)
                                 else str(out / features))
        if name in spec.condition.teachers_from:  # a trained teacher's run, else its weights
            teacher = record["identity"]["condition"]
            spec.teachers[name] = (str(cell_dir(out, name, spec.seed) / "pretrain" / teacher["method"])
                                   if teacher["trains"] else _teacher_weights(spec, teacher["weights"]))
    return ""


def _teacher_weights(spec: CellSpec, weights: str | None) -> str:
    """The encoder of a teacher that does not train: the source encoder (BSP §3.4: TAC on
    Kinetics) or a checkpoint path."""
    if weights == SOURCE:
        return spec.source_checkpoint
    if not weights:
        raise RuntimeError(f"{spec.condition.name}: a teacher without weights")  # check_condition's job
    return str(weights)


def _crash_record(spec: CellSpec, error: str) -> dict:
    return dict(condition=spec.condition.name, seed=spec.seed, identity=spec.identity(),
                provenance=spec.provenance(), status="failed", error=one_line(error), notebooks=[], seconds={},
                finished=time.strftime("%Y-%m-%dT%H:%M:%S"))


def _report(record: dict, done: int, total: int) -> None:
    name = f"{record['condition']}/seed{record['seed']}"
    if record["status"] == "finished":
        seconds = sum(record.get("seconds", {}).values())
        print(f"[{done}/{total}] {name}: finished in {seconds:.0f} s, average mAP "
              f"{record['metrics']['average mAP']:.1f}", flush=True)
    else:
        print(f"[{done}/{total}] {name}: FAILED: {record.get('error', '')}", flush=True)


def _launch_local(specs: list[CellSpec], jobs: int) -> None:
    """``jobs`` worker processes (spawn: the caller may hold torch threads, which do not survive a
    fork); each cell's notebooks run in kernels that inherit the cell's thread count. A worker that
    dies (killed, out of memory) fails its cell, recorded; the others go on."""
    if not specs:
        return
    with ProcessPoolExecutor(min(jobs, len(specs)), mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_cell, spec): spec for spec in specs}
        for done, future in enumerate(as_completed(futures), 1):
            spec = futures[future]
            try:
                record = future.result()
            except Exception as exc:  # noqa: BLE001 - the worker process died; record the cell
                record = _crash_record(spec, f"the cell's process died: {type(exc).__name__}: {exc}")
                write_json(spec.cell_dir / CELL_FILE, record)
            _report(record, done, len(specs))


def _launch_submitit(specs: list[CellSpec], out: Path, slurm: SlurmOptions) -> None:
    """One submitit job per cell; waits for all. A job that ends without a record (timeout,
    preemption, node failure) fails its cell with submitit's error; its logs are in
    ``OUT/submitit/``."""
    if not specs:
        return
    import submitit

    executor = submitit.AutoExecutor(folder=out / "submitit", cluster=slurm.cluster)
    params = dict(name="tsplab-study", timeout_min=slurm.time_min, mem_gb=slurm.mem_gb,
                  cpus_per_task=slurm.cpus, gpus_per_node=slurm.gpus)
    if slurm.partition:
        params["slurm_partition"] = slurm.partition
    executor.update_parameters(**params)
    jobs = [(executor.submit(run_cell, spec), spec) for spec in specs]
    print(f"submitted {len(jobs)} jobs ({slurm.cluster}): {', '.join(str(j.job_id) for j, _ in jobs)}",
          flush=True)
    for done, (job, spec) in enumerate(jobs, 1):
        try:
            record = job.result()
        except Exception as exc:  # noqa: BLE001 - the job died before writing its record
            record = _crash_record(spec, f"submitit job {job.job_id} ended without a record: "
                                         f"{type(exc).__name__}: {exc} (logs: {out / 'submitit'})")
            write_json(spec.cell_dir / CELL_FILE, record)
        _report(record, done, len(jobs))


# --------------------------------------------------------------------------------------------