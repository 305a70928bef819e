"""Reproduction studies: conditions x seeds on the synthetic benchmark, each cell the notebooks run by
papermill, aggregated in TSP's layout with a claims table (``tsplab study``, notebook 08).

Why: one run of one seed is a tour, not a finding (the README's demo moved by 4 points of average
mAP between two machines at the same seed). TSP repeats every study five times and reports mean ±
std (max) (supplementary Tables 9-12); this module does the same on the benchmark, and tests each of
the paper's claims on paired seeds.

The protocol (TSP Study 1, §4.2 and supplementary A/B):

* The benchmark (and its source stage: TAC on the trimmed source dataset, Kinetics' role, which gives
  every method's initial encoder and TSP's frozen GVF, §3.3) is made once, before any cell.
* A CELL is one condition at one seed, in ``OUT/<condition>/seed<k>/``: notebook 03 (pretraining on
  the target, when the condition trains), 04 (features), 05 (localizer), executed by papermill into
  the cell, so every number has its executed notebook beside it. ``cell.json``, written atomically
  last, holds the cell's metrics; a rerun skips finished cells (a killed study resumes) and runs
  failed ones again. A failed cell is recorded (``cell.json`` with the error; the executed notebook
  kept) and the others go on.
* Seeds vary the training (encoder initialisation of the heads, sampling, localizer); the benchmark
  stays fixed (TSP: the same ActivityNet in every run). ``vary_data=True`` also draws one benchmark
  per seed (benchmark seed = cell seed).
* Conditions and claims are plain data in ``tsplab.conditions``: TSP Study 1 (``STUDY1``,
  ``CLAIMS``) and the peers as their papers use them (``PEERS``, ``PEER_CLAIMS``), named by
  ``STUDIES`` (``tsplab study --study tsp|peers``). Claims are tested on seeds paired across
  conditions with a 95 % t interval: *holds* when the interval lies above 0, *does not hold* when below, *inconclusive*
  when it contains 0; a single seed is a tour (no interval). No number is ever tuned towards a claim.

Tables (percent, as TSP's): mAP at each tIoU and their average (the localizer's detections),
AR@1/10/100 and AUC (the same predictions evaluated as class-agnostic proposals), DETAD average
mAP_N per length bucket, and the features' temporal sensitivity (fg-fg minus fg-bg cosine
similarity, ``tsplab.similarity``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from tsplab.conditions import CLAIMS, DATASET, SOURCE, STUDIES, Claim, Condition, get_conditions
from tsplab.errors import InputError, check_choice, one_line
from tsplab.pipeline import NotebookStep, run_notebook
from tsplab.runs import atomic_path, check_output_folder, read_json, resolve, write_csv, write_json

CELL_FILE = "cell.json"
STUDY_FILE = "study.json"


# --------------------------------------------------------------------------------------------
# Sizes, conditions, claims: plain data
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudySize:
    """The budget of every cell at one study preset: the synthetic benchmark's size, notebook 03's
    training parameters, notebook 05's epochs and notebook 04's stride."""

    benchmark_size: str
    pretrain: dict
    localizer_epochs: int
    stride_frames: int = 2


# ``default``: the demo's budget (tsplab.pipeline: a few minutes per method on 2 cores, the localizer's
# default 15 epochs). ``tiny``: a smoke test of the machinery (CI), the smallest budget the notebooks
# accept; its numbers mean nothing.
STUDY_PRESETS = {
    "tiny": StudySize("tiny", dict(epochs=1, max_steps_per_epoch=2, batch_size=8), localizer_epochs=2),
    "default": StudySize("default", dict(epochs=4, batch_size=32, clips_per_segment=3, workers=1),
                         localizer_epochs=15),
}

# --------------------------------------------------------------------------------------------
# One cell
# --------------------------------------------------------------------------------------------

@dataclass
class CellSpec:
    """Everything one cell needs, picklable (a process pool or a submitit job runs it). Paths are
    absolute; ``identity()`` is what a finished cell must match to be reused."""

    condition: Condition
    seed: int
    study_dir: str
    study_preset: str
    benchmark_dir: str
    benchmark_seed: int
    source_checkpoint: str | None = None
    threads: int = 1
    frame_cache_dir: str = ""
    inputs: dict = field(default_factory=dict)  # {condition: feature folder} for features_from
    teachers: dict = field(default_factory=dict)  # {condition: pretraining run folder} for teachers_from

    @property
    def cell_dir(self) -> Path:
        return cell_dir(self.study_dir, self.condition.name, self.seed)

    @property
    def size(self) -> StudySize:
        return STUDY_PRESETS[self.study_preset]

    def weights(self) -> str | None:
        w = self.condition.weights
        return self.source_checkpoint if w == SOURCE else w

    def identity(self) -> dict:
        rel = os.path.relpath(self.benchmark_dir, self.study_dir)
        return dict(condition=_jsonable(dataclasses.asdict(self.condition)), seed=self.seed,
                    study_preset=self.study_preset, benchmark=rel, benchmark_seed=self.benchmark_seed)


def _jsonable(obj):
    import json

    return json.loads(json.dumps(obj, default=str))


def cell_dir(study_dir, condition: str, seed: int) -> Path:
    return resolve(study_dir) / condition / f"seed{seed}"


def feature_folder(spec: CellSpec) -> Path:
    """Where notebook 04 writes the cell's features (``tsplab.backbones.choose_encoders``' naming:
    a method's run under its name, a checkpoint file under its stem, a run folder under its name)."""
    c = spec.condition
    if c.trains or spec.weights() is None:
        return spec.cell_dir / "features" / c.method
    path = resolve(spec.weights())
    return spec.cell_dir / "features" / (path.name if path.is_dir() else path.stem)


def cell_features(spec: CellSpec) -> str | list[str]:
    """The features a cell localizes: its own folder, or those of the conditions it reads
    (``features_from``), several read as one with each video's arrays side by side along channels
    (BSP §3.4 two-stream; ``tsplab.features.open_feature_folders``, no copy)."""
    if not spec.condition.features_from:
        return str(feature_folder(spec))
    folders = []
    for name in spec.condition.features_from:
        value = spec.inputs[name]
        folders += value if isinstance(value, list) else [value]
    return folders[0] if len(folders) == 1 else folders


def cell_steps(spec: CellSpec) -> list[NotebookStep]:
    """The notebooks of one cell, with their parameters: 03 (when the condition trains), 04 (unless
    its features come from other conditions), 05."""
    c, size, cell = spec.condition, spec.size, str(spec.cell_dir)
    data = dict(dataset_dir=spec.benchmark_dir, benchmark_size=size.benchmark_size,
                benchmark_seed=spec.benchmark_seed)
    steps = []
    if c.trains:
        pretrain = {**size.pretrain, **c.pretrain}
        overrides = dict(pretrain.pop("config_overrides", {}))
        if spec.frame_cache_dir:
            overrides.setdefault("frame_cache_dir", spec.frame_cache_dir)
        if c.teachers_from:  # BSP §3.4 distillation: the same seed's TAC and BSP runs
            overrides["teachers"] = [spec.teachers[name] for name in c.teachers_from]
        steps.append(NotebookStep("03_pretrain.ipynb", dict(
            method=c.method, pretrain_preset="synthetic", run_dir=cell, weights=spec.weights(),
            seed=spec.seed, threads=spec.threads, **data, **pretrain, config_overrides=overrides)))
    if not c.features_from:
        checkpoint = "" if c.trains or spec.weights() is None else str(spec.weights())
        steps.append(NotebookStep("04_extract_features.ipynb", dict(
            run_dir=cell, method=c.method, checkpoint=checkpoint, stride_frames=size.stride_frames,
            seed=spec.seed, **data)))
    steps.append(NotebookStep("05_localization.ipynb", dict(
        feature_dirs={c.name: cell_features(spec)},
        ground_truth=str(Path(spec.benchmark_dir) / "annotations.json"),
        run_dir=str(spec.cell_dir / "localization"), dataset_preset=DATASET.name,
        epochs=size.localizer_epochs, seed=spec.seed, **c.localizer)))
    return steps


@contextlib.contextmanager
def _thread_env(threads: int):
    """The kernels papermill starts inherit this environment: torch (and OpenMP, MKL) use
    ``threads`` threads in each cell, so that ``jobs`` cells share the cores without oversubscribing."""
    keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    before = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: str(threads) for k in keys})
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _error_text(exc: BaseException, notebook: str = "") -> str:
    """One line: papermill's error names the notebook's failing cell and the exception raised in it."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return one_line(f"{notebook} cell {getattr(exc, 'exec_count', '?')}: {ename}: {evalue}")
    return one_line(f"{notebook + ': ' if notebook else ''}{type(exc).__name__}: {exc}")


def run_cell(spec: CellSpec) -> dict:
    """Run one cell and write its ``cell.json`` (last, atomically); returns that record. A failure
    is recorded (``status: failed``, ``error``, ``failed_notebook``), never raised: the study goes on."""
    cell = spec.cell_dir
    cell.mkdir(parents=True, exist_ok=True)
    record = dict(condition=spec.condition.name, seed=spec.seed, identity=spec.identity(),
                  host=socket.gethostname(), threads=spec.threads,
                  started=time.strftime("%Y-%m-%dT%H:%M:%S"), notebooks=[], seconds={})
    step = None
    try:
        with _thread_env(spec.threads):
            for step in cell_steps(spec):
                record["seconds"][step.notebook] = round(run_notebook(step, cell), 1)
                record["notebooks"].append(step.output_path(cell).name)
        step = None
        record["metrics"] = cell_metrics(spec)
        record["status"] = "finished"
    except Exception as exc:  # noqa: BLE001 - any failure of a cell is recorded and the study goes on
        failed_notebook = step.output_path(cell).name if step else ""
        record.update(status="failed", error=_error_text(exc, failed_notebook), failed_notebook=failed_notebook)
    features = cell_features(spec) if not spec.condition.features_from or spec.inputs else []
    record["features"] = ([os.path.relpath(f, spec.study_dir) for f in features] if isinstance(features, list)
                          else os.path.relpath(features, spec.study_dir))
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(cell / CELL_FILE, record)
    return record


def cell_metrics(spec: CellSpec) -> dict:
    """The cell's numbers (percent, sensitivity as a cosine difference): ``mAP@t`` per tIoU and
    ``average mAP`` (the localizer's metrics.json), ``AR@n`` and ``AUC`` (its predictions as
    class-agnostic proposals), ``mAP_N <bucket>`` (DETAD average mAP_N per length bucket),
    ``sensitivity`` (``tsplab.similarity.temporal_sensitivity`` of the cell's features) and
    ``probe sensitivity`` (the held-out ROC AUC, in percent, of ``tsplab.similarity.probe_sensitivity``:
    comparable across feature widths, where the cosine difference is not)."""
    from tsplab.annotations import read_annotations
    from tsplab.detad import bucket_average_map
    from tsplab.metrics import evaluate_proposals, read_predictions
    from tsplab.similarity import probe_sensitivity, temporal_sensitivity

    name = spec.condition.name
    run = spec.cell_dir / "localization" / name
    detection = read_json(run / "metrics.json")
    metrics = {f"mAP@{t:.2f}": 100 * v for t, v in zip(detection["tiou_thresholds"], detection["mAP"])}
    metrics["average mAP"] = 100 * detection["average_mAP"]
    ann = read_annotations(Path(spec.benchmark_dir) / "annotations.json")
    ground_truth = ann.instances[ann.instances["subset"] == DATASET.eval_subset]
    predictions = read_predictions(run / "predictions.json")
    proposals = evaluate_proposals(ground_truth, predictions, DATASET)
    metrics.update({f"AR@{n}": 100 * v for n, v in proposals.ar_at.items()})
    metrics["AUC"] = 100 * proposals.auc
    durations = ann.videos.set_index("video")["duration_s"]
    buckets = bucket_average_map(ground_truth, predictions, "length", preset=DATASET, durations=durations)
    metrics.update({f"mAP_N {row.bucket}": 100 * row.average_mAP
                    for row in buckets.itertuples() if row.bucket != "all"})
    sensitivity = temporal_sensitivity({name: cell_features(spec)}, ground_truth)
    metrics["sensitivity"] = float(sensitivity["sensitivity"].iloc[0])
    metrics["probe sensitivity"] = 100 * float(probe_sensitivity({name: cell_features(spec)}, ground_truth)
                                               ["probe_auc"].iloc[0])
    return {k: float(v) for k, v in metrics.items()}


def read_cell(study_dir, condition: str, seed: int) -> dict | None:
    """A cell's record, or None when it has not run."""
    path = cell_dir(study_dir, condition, seed) / CELL_FILE
    return read_json(path) if path.is_file() else None


# --------------------------------------------------------------------------------------------
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


@dataclass
class StudyResult:
    """What ``run_study`` made: ``cells`` (one row per condition x seed: status, seconds, error and
    every metric), ``summary`` (mean, std, max, n per condition and metric), ``table`` (TSP's
    layout), ``claims``; ``ran`` / ``skipped``: cells executed by this call / reused finished."""

    out_dir: Path
    cells: pd.DataFrame
    summary: pd.DataFrame
    table: pd.DataFrame
    claims: pd.DataFrame
    ran: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    @property
    def failed(self) -> pd.DataFrame:
        return self.cells[self.cells["status"] != "finished"]


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def seed_list(seeds) -> list[int]:
    """``seeds``: a count N (seeds 0..N-1, so that growing N resumes the seeds already run) or a list."""
    values = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not values or min(values) < 0 or len(set(values)) != len(values):
        raise InputError(f"seeds: {seeds!r}; give a count of at least 1 (seeds 0..N-1) or distinct "
                         "non-negative seeds")
    return values


def _benchmark_dirs(out: Path, seeds: list[int], vary_data: bool, benchmark_seed: int) -> dict:
    """``{cell seed: (benchmark folder, benchmark seed)}``: one fixed benchmark, or one per seed."""
    if vary_data:
        return {s: (out / f"benchmark_seed{s}", s) for s in seeds}
    return {s: (out / "benchmark", benchmark_seed) for s in seeds}


def _check_finished_cells(out: Path, specs: list[CellSpec]) -> None:
    """A finished cell of an earlier run is reused only when it ran the same condition, seed, preset
    and benchmark; any other is an ``InputError`` before anything is written (nothing is mixed,
    nothing is overwritten)."""
    for spec in specs:
        record = read_cell(out, spec.condition.name, spec.seed)
        if record and record.get("status") == "finished" and _with_defaults(record.get("identity")) != spec.identity():
            raise InputError(
                f"{spec.cell_dir / CELL_FILE}: a finished cell of another setting (recorded "
                f"{record.get('identity')}, now {spec.identity()}); give another --out, or move that "
                "cell folder away to run it again")


def _with_defaults(identity: dict | None) -> dict | None:
    """A recorded identity with the condition fields added since it was written at their defaults
    (a cell finished before a field existed ran with its default)."""
    if not identity or not isinstance(identity.get("condition"), dict):
        return identity
    defaults = _jsonable({f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                          for f in dataclasses.fields(Condition)
                          if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING})
    return {**identity, "condition": {**defaults, **identity["condition"]}}


def _prepare_data(benchmarks: dict, size: StudySize, conditions: list[Condition], out: Path) -> dict:
    """Generate each benchmark once, train its source encoder once when a condition starts from it,
    and fill the frame cache every training cell reads (so parallel cells neither race nor repeat
    the decoding). Returns ``{benchmark folder: (source checkpoint or None, frame cache folder)}``."""
    from tsplab import synthetic

    workers = available_cores()
    needs_source = any(c.weights == SOURCE and not c.features_from for c in conditions)
    trains = any(c.trains for c in conditions)
    prepared = {}
    for folder, seed in sorted(set(benchmarks.values())):
        print(f"benchmark {folder} ({size.benchmark_size}, seed {seed})", flush=True)
        synthetic.generate_benchmark(folder, size.benchmark_size, seed, workers=workers, progress=False)
        source = None
        if needs_source:
            # TAC on the benchmark's source set, trained once (seeded by the benchmark's seed) and
            # shared by every cell, as one Kinetics model serves every run of the paper.
            source = str(synthetic.ensure_source_encoder(folder, progress=False))
        cache = out / "frame_cache" / folder.name if trains else None
        if cache is not None:
            _fill_frame_cache(folder, cache, workers)
        prepared[folder] = (source, str(cache) if cache else "")
    return prepared


def _fill_frame_cache(benchmark: Path, cache: Path, workers: int) -> None:
    from tsplab.pretrain_config import pretrain_config
    from tsplab.video import FrameCache

    clips = pretrain_config("synthetic", dataset_dir=str(benchmark))
    built = FrameCache(cache, clips.frame_rate, clips.resize_short_side).build(
        sorted((benchmark / "videos").glob("*.mp4")), workers=workers)
    failed = built[built["status"] == "failed"]
    if len(failed):  # pretraining leaves them out too, naming them in its data report
        print(f"frame cache: {len(failed)} videos could not be decoded, e.g. {failed['video'].iat[0]}: "
              f"{failed['error'].iat[0]}", flush=True)


def plan_cells(out, study_preset: str, seeds, conditions: list[Condition], *, vary_data: bool = False,
               benchmark_seed: int = 0, threads: int = 1) -> list[CellSpec]:
    """Every cell of the study (conditions x seeds), before any data exists (no source checkpoint
    yet), seed by seed: a study stopped part-way leaves whole seeds, each of which pairs every
    condition. Checks only; writes nothing."""
    out = resolve(out)
    benchmarks = _benchmark_dirs(out, seed_list(seeds), vary_data, benchmark_seed)
    return [CellSpec(condition=c, seed=s, study_dir=str(out), study_preset=study_preset,
                     benchmark_dir=str(benchmarks[s][0]), benchmark_seed=benchmarks[s][1], threads=threads)
            for s in benchmarks for c in conditions]


def _check_study(study_preset, launcher, jobs, out, slurm: SlurmOptions | None) -> Path:
    import shutil

    check_choice("study_preset", study_preset, STUDY_PRESETS)
    check_choice("launcher", launcher, LAUNCHERS)
    if not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"jobs: {jobs!r}; give the number of cells to run at once (1 or more)")
    if launcher == "slurm" and (slurm or SlurmOptions()).cluster == "slurm" and not shutil.which("sbatch"):
        raise InputError("launcher: 'slurm' but sbatch is not on PATH; run on a Slurm login node, or "
                         "use --launcher local")
    return check_output_folder(out, "out")


def tables_dir(out, study: str = "tsp") -> Path:
    """Where a study's tables go: the study folder for TSP's Study 1, ``OUT/<study>/`` for another
    study run into the same folder (the peers, reusing Study 1's finished cells)."""
    out = resolve(out)
    return out if study == "tsp" else out / study


def run_study(out, study_preset: str = "tiny", seeds=2, conditions=None, *, jobs: int = 1,
              launcher: str = "local", slurm: SlurmOptions | None = None, vary_data: bool = False,
              benchmark_seed: int = 0, available=None, study: str = "tsp") -> StudyResult:
    """Run (or resume) the study into ``out`` and aggregate it (module docstring).

    ``study``: a name in ``tsplab.conditions.STUDIES`` (its conditions and claims);
    ``conditions``: names (default: every condition of ``available``, default the study's);
    ``seeds``: a count or a list; ``jobs``: cells at once on this machine (``launcher="local"``),
    each with cores / jobs torch threads; ``launcher="slurm"``: one submitit job per cell.
    Everything is checked before anything is written; a failed cell does not stop the others."""
    check_choice("study", study, STUDIES)
    out = _check_study(study_preset, launcher, jobs, out, slurm)
    chosen = get_conditions(conditions, STUDIES[study][0] if available is None else available)
    threads = (slurm or SlurmOptions()).cpus if launcher == "slurm" else max(1, available_cores() // jobs)
    specs = plan_cells(out, study_preset, seeds, chosen, vary_data=vary_data,
                       benchmark_seed=benchmark_seed, threads=threads)
    _check_finished_cells(out, specs)
    tables = tables_dir(out, study)
    tables.mkdir(parents=True, exist_ok=True)
    write_json(tables / STUDY_FILE, dict(study=study, study_preset=study_preset, seeds=seed_list(seeds),
                                         conditions=[c.name for c in chosen], vary_data=vary_data,
                                         benchmark_seed=benchmark_seed))
    skipped = [s for s in specs if (read_cell(out, s.condition.name, s.seed) or {}).get("status") == "finished"]
    todo = [s for s in specs if s not in skipped]
    if todo:
        prepared = _prepare_data({s.seed: (Path(s.benchmark_dir), s.benchmark_seed) for s in todo},
                                 STUDY_PRESETS[study_preset], [s.condition for s in todo], out)
        for s in todo:
            s.source_checkpoint, s.frame_cache_dir = prepared[Path(s.benchmark_dir)]
    print(f"study {out}: {len(specs)} cells, {len(skipped)} finished before, {len(todo)} to run", flush=True)
    _run_waves(todo, out, jobs, launcher, slurm or SlurmOptions())
    result = aggregate(out, chosen, seed_list(seeds), study=study)
    result.ran, result.skipped = [_cell_name(s) for s in todo], [_cell_name(s) for s in skipped]
    return result


def _cell_name(spec: CellSpec) -> str:
    return f"{spec.condition.name}/seed{spec.seed}"


def _run_waves(todo: list[CellSpec], out: Path, jobs: int, launcher: str, slurm: SlurmOptions) -> None:
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
                print(f"{_cell_name(spec)}: failed: {missing}", flush=True)
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
        if name in spec.condition.features_from:
            features = record["features"]
            spec.inputs[name] = ([str(out / f) for f in features] if isinstance(features, list)
                                 else str(out / features))
        if name in spec.condition.teachers_from:
            method = record["identity"]["condition"]["method"]
            spec.teachers[name] = str(cell_dir(out, name, spec.seed) / "pretrain" / method)
    return ""


def _crash_record(spec: CellSpec, error: str) -> dict:
    return dict(condition=spec.condition.name, seed=spec.seed, identity=spec.identity(),
                status="failed", error=one_line(error), notebooks=[], seconds={},
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
# Aggregation: TSP's layout and the claims table
# --------------------------------------------------------------------------------------------

SELECT_BY = "average mAP"  # the run whose values fill "(max)", as in TSP's tables (see summary_table)


def atomic_write_bytes(path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)


def cells_table(out, conditions: list[Condition], seeds) -> pd.DataFrame:
    """One row per condition x seed of the study: condition, seed, status (finished | failed | not
    run), seconds (the notebooks'), error, cell (its folder), then every metric (NaN unless finished)."""
    out = resolve(out)
    rows = []
    for c in conditions:
        for seed in seed_list(seeds):
            record = read_cell(out, c.name, seed) or {"status": "not run"}
            finished = record["status"] == "finished"
            rows.append(dict(condition=c.name, seed=seed, status=record["status"],
                             seconds=round(sum(record.get("seconds", {}).values()), 1),
                             error=record.get("error", ""),
                             cell=os.path.relpath(cell_dir(out, c.name, seed), out),
                             **(record["metrics"] if finished else {})))
    return pd.DataFrame(rows)


def metric_columns(cells: pd.DataFrame) -> list[str]:
    fixed = {"condition", "seed", "status", "seconds", "error", "cell"}
    return [c for c in cells.columns if c not in fixed]


def summary_table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per condition and metric over its finished seeds with a value (NaN: none, e.g. an
    empty length bucket): mean, std (sample, ddof=1; NaN for one seed), max and n. "max" follows TSP's tables: the value of the run with the highest
    average mAP (so it can lie below the mean: Table 9a, TAC on Kinetics at tIoU 0.95, 08.028 ±
    0.290 (07.847)), not each metric's own maximum."""
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


def claim_differences(cells: pd.DataFrame, claim: Claim) -> pd.Series:
    """The claim's paired difference per seed at which both conditions finished (index: seed)."""
    finished = cells[cells["status"] == "finished"].set_index(["condition", "seed"])
    better = finished.xs(claim.better, level="condition") if claim.better in finished.index.get_level_values(0) else None
    worse = finished.xs(claim.worse, level="condition") if claim.worse in finished.index.get_level_values(0) else None
    if better is None or worse is None:
        return pd.Series(dtype=float, name="difference")
    seeds = better.index.intersection(worse.index)
    gain = better.loc[seeds, [claim.metric, *claim.versus]] - worse.loc[seeds, [claim.metric, *claim.versus]]
    difference = gain[claim.metric]
    if claim.versus:
        difference = difference - gain[list(claim.versus)].max(axis=1)  # NaN buckets left out of the max
    return difference.astype(float).dropna().rename("difference")


def verdict(n: int, low: float, high: float) -> str:
    if n < 2:
        return "a tour (1 seed): no interval" if n == 1 else "not measured"
    if low > 0:
        return "holds"
    if high < 0:
        return "does not hold"
    return "inconclusive (interval contains 0)"


def claims_table(cells: pd.DataFrame, claims=None, confidence: float = 0.95) -> pd.DataFrame:
    """One row per claim: what it says, the paper's difference, n paired seeds, the measured mean
    difference and its ``confidence`` t interval, and the verdict (``verdict``). A claim whose
    conditions are not in the study is listed as not measured, naming them."""
    claims = CLAIMS if claims is None else claims
    present = set(cells["condition"])
    rows = []
    for claim in claims:
        row = dict(claim=claim.text, source=claim.source, metric=claim.metric, better=claim.better,
                   worse=claim.worse, relation=claim.relation, paper=claim.paper, n=0,
                   difference=np.nan, ci_low=np.nan, ci_high=np.nan)
        absent = [c for c in (claim.better, claim.worse) if c not in present]
        if absent:
            rows.append({**row, "verdict": f"not measured ({', '.join(absent)} not in this study)"})
            continue
        d = claim_differences(cells, claim)
        row["n"] = len(d)
        if len(d) >= 2:
            row["difference"], row["ci_low"], row["ci_high"] = paired_interval(d, confidence)
        elif len(d) == 1:
            row["difference"] = float(d.iloc[0])
        rows.append({**row, "verdict": verdict(len(d), row["ci_low"], row["ci_high"])})
    return pd.DataFrame(rows)


def aggregate(out, conditions: list[Condition], seeds, claims=None, study: str = "tsp") -> StudyResult:
    """Read every cell of the study and write its tables into ``tables_dir(out, study)``:
    ``cells.csv``, ``summary.csv``, ``table.csv`` (TSP's layout), ``claims.csv`` and ``study.png``
    (each metric with its seeds and mean ± std). ``claims``: default the study's."""
    import matplotlib.pyplot as plt

    from tsplab import plots

    cells = cells_table(resolve(out), conditions, seeds)
    out = tables_dir(out, study)
    out.mkdir(parents=True, exist_ok=True)
    summary = summary_table(cells)
    table = tsp_table(summary, conditions)
    claims = claims_table(cells, STUDIES[study][1] if claims is None else claims)
    write_csv(out / "cells.csv", cells)
    write_csv(out / "summary.csv", summary)
    write_csv(out / "table.csv", table, index=True)
    write_csv(out / "claims.csv", claims)
    if len(summary) and summary["n"].gt(0).any():
        fig = plots.plot_study_metrics(cells, metric_columns(cells),
                                       labels={c.name: c.label for c in conditions})
        atomic_write_bytes(out / "study.png", plots.figure_to_png(fig))
        plt.close(fig)
    return StudyResult(out_dir=out, cells=cells, summary=summary, table=table, claims=claims)
