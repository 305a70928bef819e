"""One cell of a study: a condition at a seed, its notebooks' parameters, its run, its record.

A cell's record (``cell.json``, written atomically last) holds its metrics and its provenance: the
code fingerprint (``tsplab.fingerprint.code_fingerprint``) read when the cell started, the library
versions, the notebooks' parameters (paths relative to the study folder), and after the run the
fully resolved pretraining, extraction and localizer configurations its notebooks saved. The
parameters and the code decide the resolved configurations, so a finished cell is reused only when
its identity, fingerprint, versions and parameters equal the study's (``tsplab.study.provenance``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from tsplab.conditions import SOURCE, Condition
from tsplab.errors import InputError, one_line
from tsplab.pipeline import Budget, Encoder, NotebookStep, run_metrics, run_notebook, run_steps
from tsplab.runs import read_json, resolve, write_json

CELL_FILE = "cell.json"
STUDY_DIR_MARK = "OUT"  # the study folder in recorded parameters (a moved study stays reusable)
SOURCE_ENCODER_MARK = "<the benchmark's source encoder>"  # trained once per benchmark, before the cells


# The budget of every cell of a study (``tsplab study --budget``). ``default``: the demo's budget
# (``tsplab.pipeline.DEMO_BUDGETS``, the localizer's default 15 epochs). ``tiny``: a smoke test of the
# machinery (CI), the smallest budget the notebooks accept; its numbers mean nothing.
BUDGETS = {
    "tiny": Budget("tiny", dict(epochs=1, max_steps_per_epoch=2, batch_size=8), localizer_epochs=2,
                   stride_frames=2),
    "default": Budget("default", dict(epochs=4, batch_size=32, clips_per_segment=3, workers=1),
                      localizer_epochs=15, stride_frames=2),
}

# --------------------------------------------------------------------------------------------
# One cell
# --------------------------------------------------------------------------------------------

@dataclass
class CellSpec:
    """Everything one cell needs, picklable (a process pool or a submitit job runs it). Paths are
    absolute; ``identity()`` is what the cell is (a finished cell of another identity in the same
    folder is refused); ``provenance()`` is what made it (one of another provenance is rerun)."""

    condition: Condition
    seed: int
    study_dir: str
    budget: str  # a name in BUDGETS
    benchmark_dir: str
    benchmark_seed: int
    source_checkpoint: str | None = None
    threads: int = 1
    frame_cache_dir: str = ""
    inputs: dict = field(default_factory=dict)  # {condition: feature folder} for features_from
    teachers: dict = field(default_factory=dict)  # {condition: encoder (run folder or checkpoint)} for teachers_from
    fingerprint: str = ""  # the code's, read when the study started (tsplab.fingerprint.code_fingerprint)
    versions: dict = field(default_factory=dict)  # tsplab.fingerprint.library_versions at the study's start
    benchmark_options: dict = field(default_factory=dict)  # a dial sweep's level: the benchmark's dials

    @property
    def cell_dir(self) -> Path:
        return cell_dir(self.study_dir, self.condition.name, self.seed)

    @property
    def settings(self) -> Budget:
        return BUDGETS[self.budget]

    def weights(self) -> str | None:
        w = self.condition.weights
        return self.source_checkpoint if w == SOURCE else w

    def identity(self) -> dict:
        rel = os.path.relpath(self.benchmark_dir, self.study_dir)
        dials = dict(benchmark_options=dict(self.benchmark_options)) if self.benchmark_options else {}
        return dict(condition=_jsonable(self.condition.record()), seed=self.seed,
                    budget=self.budget, benchmark=rel, benchmark_seed=self.benchmark_seed, **dials)

    def provenance(self) -> dict:
        """The code fingerprint and library versions of the study, and the notebooks' parameters
        as planned (``planned_parameters``): what a finished cell must match to be reused."""
        return dict(fingerprint=self.fingerprint, versions=self.versions, parameters=planned_parameters(self))


def _jsonable(obj):
    import json

    return json.loads(json.dumps(obj, default=str))


def cell_dir(study_dir, condition: str, seed: int) -> Path:
    return resolve(study_dir) / condition / f"seed{seed}"


def feature_folder(spec: CellSpec) -> Path:
    """Where notebook 04 writes the cell's features (``tsplab.pretrain.encoders.choose_encoders``' naming:
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


def cell_encoder(spec: CellSpec) -> Encoder:
    """The cell's condition as the one encoder of its run (``tsplab.pipeline.run_steps``): notebook 03
    when the condition trains (a condition with ``pretrain_data="source"`` pretrains on
    ``<benchmark>/source``, PAL §4.1.1; the frame cache and the teachers as ``config_overrides``), 04
    from its weights unless its features come from other conditions, then 05 on its features."""
    c = spec.condition
    pretrain = pretrain_data = None
    if c.trains:
        pretrain = c.pretrain.parameters()
        overrides = dict(pretrain.pop("config_overrides", {}))
        if spec.frame_cache_dir and c.pretrain_data != SOURCE:  # the cache holds the target's videos
            overrides.setdefault("frame_cache_dir", spec.frame_cache_dir)
        if c.teachers_from:  # BSP §3.4 distillation: the same seed's TAC-on-source and BSP encoders
            overrides["teachers"] = [spec.teachers[name] for name in c.teachers_from]
        pretrain["config_overrides"] = overrides
        if c.pretrain_data == SOURCE:
            pretrain_data = {**_cell_data(spec), "dataset_dir": str(Path(spec.benchmark_dir) / SOURCE)}
    checkpoint = "" if c.trains or spec.weights() is None else str(spec.weights())
    return Encoder(c.name, c.method, pretrain=pretrain, pretrain_data=pretrain_data, weights=spec.weights(),
                   checkpoint=checkpoint, features=cell_features(spec), extract=not c.features_from)


def _cell_data(spec: CellSpec) -> dict:
    """The benchmark parameters of notebooks 03 and 04 (extraction and localization use the target);
    a dial sweep's cell adds its level's dials (``benchmark_options``), which the notebooks check
    against the benchmark's."""
    dials = dict(benchmark_options=dict(spec.benchmark_options)) if spec.benchmark_options else {}
    return dict(dataset_dir=spec.benchmark_dir, benchmark_size=spec.settings.benchmark_size,
                benchmark_seed=spec.benchmark_seed, **dials)


def cell_steps(spec: CellSpec) -> list[NotebookStep]:
    """The notebooks of one cell, with their parameters: 03 (when the condition trains), 04 (unless
    its features come from other conditions), 05; the run of ``cell_encoder`` in the cell's folder."""
    return run_steps(spec.cell_dir, _cell_data(spec), spec.settings, [cell_encoder(spec)], spec.seed,
                     localizer=spec.condition.localizer.parameters(), pretrain_options=dict(pretrain_recipe="synthetic"),
                     threads=spec.threads)


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
    is recorded (``status: failed``, ``error``, ``failed_notebook``), never raised: the study goes on.
    The code fingerprint is read first: when it differs from the study's (the code changed while the
    study ran), the cell fails with that reason and runs nothing, so no table mixes two versions."""
    from tsplab.fingerprint import code_fingerprint

    cell = spec.cell_dir
    cell.mkdir(parents=True, exist_ok=True)
    record = dict(condition=spec.condition.name, seed=spec.seed, identity=spec.identity(),
                  provenance=spec.provenance(), host=socket.gethostname(), threads=spec.threads,
                  started=time.strftime("%Y-%m-%dT%H:%M:%S"), notebooks=[], seconds={})
    now = code_fingerprint()
    if spec.fingerprint and now != spec.fingerprint:
        record.update(status="failed", fingerprint_at_start=now, error=code_changed(spec.fingerprint, now))
        return _write_record(spec, record)
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
    record["configs"] = resolved_configs(spec)
    features = cell_features(spec) if not spec.condition.features_from or spec.inputs else []
    record["features"] = ([os.path.relpath(f, spec.study_dir) for f in features] if isinstance(features, list)
                          else os.path.relpath(features, spec.study_dir))
    return _write_record(spec, record)


def code_changed(before: str, now: str) -> str:
    return (f"the code changed during the study (fingerprint {before[:12]} when it started, {now[:12]} "
            "when this cell started); run the study again to rerun the cells made by the old code")


def _write_record(spec: CellSpec, record: dict) -> dict:
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(spec.cell_dir / CELL_FILE, record)
    return record


def planned_parameters(spec: CellSpec) -> list[dict]:
    """``[{notebook, parameters}]`` of the cell as planned, before any data exists: the source
    encoder, the inputs and the teachers as marks (they are made by the study at this cell's seed),
    the study folder as ``OUT``, without the frame cache and torch threads (a cache and a thread
    count, not settings of the experiment)."""
    c = spec.condition
    plan = dataclasses.replace(
        spec, source_checkpoint=SOURCE_ENCODER_MARK, frame_cache_dir="",
        inputs={n: f"<features of {n}/seed{spec.seed}>" for n in c.features_from},
        teachers={n: f"<encoder of {n}/seed{spec.seed}>" for n in c.teachers_from})
    steps = []
    for step in cell_steps(plan):
        parameters = {k: v for k, v in step.parameters.items() if k != "threads"}
        steps.append(dict(notebook=step.notebook, parameters=_relative(parameters, spec.study_dir)))
    return steps


def _relative(value, study_dir: str):
    """``value`` with every string under ``study_dir`` written relative to it, as ``OUT/...``."""
    if isinstance(value, dict):
        return {k: _relative(v, study_dir) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_relative(v, study_dir) for v in value]
    if isinstance(value, str) and os.path.isabs(value) and Path(value).is_relative_to(study_dir):
        return os.path.join(STUDY_DIR_MARK, os.path.relpath(value, study_dir))
    return value


def resolved_configs(spec: CellSpec) -> dict:
    """The configurations the cell's notebooks saved, fully resolved: ``pretrain`` (the run's
    ``config.json``), ``extraction`` (each feature folder's ``metadata.json``), ``localizer`` (the
    localizer run's ``config.json``); a file not written (a failed cell) is left out."""
    from tsplab.features.folders import METADATA_FILE

    cell, c = spec.cell_dir, spec.condition
    configs = {}
    if c.trains:
        configs["pretrain"] = _read_if_file(cell / "pretrain" / c.method / "config.json")
    if not c.features_from or spec.inputs:
        features = cell_features(spec)
        folders = features if isinstance(features, list) else [features]
        configs["extraction"] = [_read_if_file(Path(f) / METADATA_FILE) for f in folders]
    configs["localizer"] = _read_if_file(cell / "localization" / c.name / "config.json")
    return {k: v for k, v in configs.items() if v not in (None, [], [None])}


def _read_if_file(path: Path):
    try:
        return read_json(path) if path.is_file() else None
    except ValueError:  # a file cut short by a crash: the cell failed, its record says why
        return None


def cell_metrics(spec: CellSpec) -> dict:
    """The cell's numbers (``tsplab.pipeline.run_metrics`` of its run, every metric), by name."""
    name = spec.condition.name
    metrics = run_metrics(spec.cell_dir, Path(spec.benchmark_dir) / "annotations.json",
                          {name: cell_features(spec)})
    return {k: float(v) for k, v in metrics.loc[name].items()}


def read_cell(study_dir, condition: str, seed: int) -> dict | None:
    """A cell's record, or None when it has not run."""
    path = cell_dir(study_dir, condition, seed) / CELL_FILE
    return _checked_cell(path, read_json(path)) if path.is_file() else None


def _checked_cell(path: Path, record) -> dict:
    """A cell record as the tables read it: an object with a ``status``, ``seconds`` and (finished)
    ``metrics`` of numbers (null for a metric without a value). ``InputError`` naming the file and
    the field otherwise (an edited or damaged ``cell.json`` would stop the aggregation with a
    traceback, or put text into the tables)."""
    fix = "rerun the cell (delete its folder)"
    if not isinstance(record, dict) or not isinstance(record.get("status"), str):
        raise InputError(f"{path}: not a cell record (no \"status\"); {fix}")
    for field in ("seconds", "metrics") if record["status"] == "finished" else ("seconds",):
        values = record.get(field, {})
        if not isinstance(values, dict):
            raise InputError(f"{path}: \"{field}\" is {type(values).__name__}, not an object of numbers; {fix}")
        for name, value in values.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise InputError(f"{path}: {field}.{name} is {json.dumps(value)}, not a number; {fix}")
    return record


