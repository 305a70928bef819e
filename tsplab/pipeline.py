"""The numbered notebooks as one batch pipeline (papermill), used by ``make demo`` / ``tsplab demo``.

Each step executes a notebook from ``notebooks/`` with parameters into the run folder, so every
executed notebook of a run sits beside its outputs (``runs/<name>/NN_*.ipynb``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tsplab.errors import check_choice
from tsplab.datasets.presets import get_preset
from tsplab.runs import notebooks_dir, read_json, resolve


DATASET = get_preset("synthetic")  # whose metrics, DETAD buckets and evaluated subset apply to a run


@dataclass
class NotebookStep:
    notebook: str  # file name in notebooks/
    parameters: dict = field(default_factory=dict)
    output_name: str = ""  # defaults to the notebook's name

    def output_path(self, run_dir: Path) -> Path:
        return run_dir / (self.output_name or self.notebook)


def run_notebook(step: NotebookStep, run_dir, kernel_name: str | None = None) -> float:
    """Execute one notebook with papermill into ``run_dir``; returns the seconds it took.

    The kernel runs with ``notebooks/`` as working directory, exactly as in JupyterLab and nbval.
    A failing cell raises papermill's error, which names the notebook and the cell; the executed
    notebook with the traceback is still written for inspection. The kernel process's own output
    (its start-up log, which is no output of any cell) goes to ``<notebook>.kernel.log`` beside the
    executed notebook, so it never lands in a notebook that runs this one (notebook 08). The executed
    notebook is signed as trusted, as ``jupyter trust`` does: JupyterLab draws the widgets it saved
    (progress bars at their final value, notebook 07's browser) only in a trusted notebook.
    """
    import papermill

    run_dir = resolve(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    source = notebooks_dir() / step.notebook
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such notebook")
    output = step.output_path(run_dir)
    start = time.perf_counter()
    with open(output.with_suffix(".kernel.log"), "wb") as log:
        try:
            papermill.execute_notebook(
                str(source), str(output), parameters=step.parameters, cwd=str(source.parent),
                kernel_name=kernel_name, progress_bar=False, kernel_manager_class=_logged_kernel_manager(log),
            )
        finally:
            if output.is_file():
                sign_notebook(output)
    return time.perf_counter() - start


def _logged_kernel_manager(log):
    """A kernel manager class whose kernels write their process output (not cells') to ``log``."""
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            return await super().start_kernel(**kw)

    return LoggedKernelManager


def sign_notebook(path) -> bool:
    """Mark the notebook at ``path`` as trusted for this user (nbformat's notary, the database that
    ``jupyter trust`` and JupyterLab use), so its saved widgets and rich outputs are shown. A notary
    that cannot write (a read-only home, a locked database on a cluster's shared disk) costs the run
    nothing: a one-line warning says how to trust it later, and False is returned."""
    import warnings

    import nbformat
    from nbformat.sign import NotebookNotary

    try:
        NotebookNotary().sign(nbformat.read(str(path), as_version=4))
        return True
    except Exception as exc:  # noqa: BLE001 - signing is a convenience; the executed notebook stands
        warnings.warn(f"{path}: not signed as trusted ({type(exc).__name__}: {exc}); "
                      f"`jupyter trust {path}` does it", stacklevel=2)
        return False


@dataclass(frozen=True)
class Budget:
    """How long a run trains: the synthetic benchmark's size it is meant for, notebook 03's training
    parameters, notebook 05's epochs and notebook 04's stride (None: the notebook's own default, not
    passed). The demo's budgets are ``DEMO_BUDGETS``, a study's ``tsplab.study.BUDGETS``."""

    benchmark_size: str
    pretrain: dict
    localizer_epochs: int
    stride_frames: int | None = None


# The notebooks' committed defaults are the tiny benchmark's (CI runs them as they are); the default
# benchmark needs the training budget the pretraining recipe was tuned with (TSP's region loss well
# below 0.4 at the end), one DataLoader worker process beside training (the notebook's default is 0:
# no worker processes in an interactive kernel) and the localizer's default epochs.
DEMO_BUDGETS = {
    "tiny": Budget("tiny", {}, localizer_epochs=8),
    "default": Budget("default", dict(epochs=4, batch_size=32, clips_per_segment=3, workers=1), localizer_epochs=15),
}

@dataclass(frozen=True)
class Encoder:
    """One encoder a run localizes on, and how the run gets its features.

    ``name``: its key in notebook 05's ``feature_dirs`` (its localization folder). ``method``: its
    pretraining method. ``pretrain``: notebook 03's parameters of its own (the budget's come first,
    these override them); None: notebook 03 does not run for it. ``pretrain_notebook``: the executed
    03's file name ("" : the notebook's). ``pretrain_data``: the data 03 reads instead of the run's
    (PAL: the trimmed source set). ``weights``: 03's initial weights. ``checkpoint``: None: extracted
    by the run's one notebook 04 of every such encoder (``method`` a list); a string: its own 04,
    from this checkpoint ("" : the encoder 03 trained). ``features``: its feature folder(s) (default
    ``<run>/features/<method>``); with ``extract=False`` they are another run's, nothing extracts."""

    name: str
    method: str
    pretrain: dict | None = None
    pretrain_notebook: str = ""
    pretrain_data: dict | None = None
    weights: str | None = "source"
    checkpoint: str | None = None
    features: str | list | None = None
    extract: bool = True


def run_steps(run_dir, data: dict, budget: Budget, encoders: list[Encoder], seed: int, *,
              localizer: dict | None = None, pretrain_options: dict | None = None,
              threads: int | None = None) -> list[NotebookStep]:
    """The notebooks of one run on the benchmark ``data["dataset_dir"]`` for ``encoders``, with their
    parameters: 03 (pretraining) for each encoder that pretrains, 04 (features) for those that
    extract, then one 05 (localizer, ``localizer``: its own parameters) over all of their features.
    ``data``: the benchmark parameters 03 and 04 read (``dataset_dir``, ``benchmark_size``, ...);
    ``budget``: how long 03 and 05 train; ``pretrain_options``: more parameters of every 03 (before
    the run folder); ``threads``: 03's torch threads (not passed when None). The demo and a study's
    cell are both this function's runs."""
    run_dir = str(run_dir)
    steps = []
    for e in encoders:
        if e.pretrain is None:
            continue
        threads_opt = {} if threads is None else dict(threads=threads)
        steps.append(NotebookStep("03_pretrain.ipynb", dict(
            method=e.method, **(pretrain_options or {}), run_dir=run_dir, weights=e.weights, seed=seed,
            **threads_opt, **(e.pretrain_data or data), **{**budget.pretrain, **e.pretrain}),
            output_name=e.pretrain_notebook))
    stride = {} if budget.stride_frames is None else dict(stride_frames=budget.stride_frames)
    together = [e.method for e in encoders if e.extract and e.checkpoint is None]
    if together:
        steps.append(NotebookStep("04_extract_features.ipynb", dict(
            run_dir=run_dir, method=together, **stride, seed=seed, **data)))
    for e in encoders:
        if e.extract and e.checkpoint is not None:
            steps.append(NotebookStep("04_extract_features.ipynb", dict(
                run_dir=run_dir, method=e.method, checkpoint=e.checkpoint, **stride, seed=seed, **data)))
    steps.append(NotebookStep("05_localization.ipynb", dict(
        feature_dirs={e.name: run_features(run_dir, e) for e in encoders},
        ground_truth=f"{data['dataset_dir']}/annotations.json", run_dir=f"{run_dir}/localization",
        dataset_preset=DATASET.name, epochs=budget.localizer_epochs, seed=seed, **(localizer or {}))))
    return steps


def run_features(run_dir, encoder: Encoder) -> str | list:
    """The feature folder(s) notebook 05 reads for ``encoder`` in the run ``run_dir``."""
    return encoder.features if encoder.features is not None else f"{run_dir}/features/{encoder.method}"


def run_metrics(run_dir, annotations, features: dict, *, proposals: bool = True,
                probe: bool = True) -> pd.DataFrame:
    """One row per localized name of the run ``run_dir`` (index: the names of ``features``, ``{name:
    feature folder(s)}``), percent (sensitivity as a cosine difference): ``mAP@t`` per tIoU and
    ``average mAP`` (the localizer's metrics.json), with ``proposals`` ``AR@n`` and ``AUC`` (its
    predictions as class-agnostic proposals), ``mAP_N <bucket>`` (DETAD average mAP_N per length
    bucket), ``sensitivity`` (``tsplab.similarity.temporal_sensitivity`` of the features) and with
    ``probe`` ``probe sensitivity`` (the held-out ROC AUC, in percent, of
    ``tsplab.similarity.probe_sensitivity``: comparable across feature widths, where the cosine
    difference is not). ``annotations``: the benchmark's annotations.json."""
    from tsplab.datasets import read_annotations
    from tsplab.evaluation import bucket_average_map
    from tsplab.evaluation import evaluate_proposals, read_predictions
    from tsplab.similarity import probe_sensitivity, temporal_sensitivity

    ann = read_annotations(annotations)
    ground_truth = ann.instances[ann.instances["subset"] == DATASET.eval_subset]
    durations = ann.videos.set_index("video")["duration_s"]
    rows = {}
    for name in features:
        localization = resolve(run_dir) / "localization" / name
        metrics_path = localization / "metrics.json"
        if not metrics_path.is_file():
            raise FileNotFoundError(f"{metrics_path}: no localization results for {name!r}")
        detection = read_json(metrics_path)
        metrics = {f"mAP@{t:.2f}": 100 * v for t, v in zip(detection["tiou_thresholds"], detection["mAP"])}
        metrics["average mAP"] = 100 * detection["average_mAP"]
        predictions = read_predictions(localization / "predictions.json")
        if proposals:
            evaluated = evaluate_proposals(ground_truth, predictions, DATASET)
            metrics.update({f"AR@{n}": 100 * v for n, v in evaluated.ar_at.items()})
            metrics["AUC"] = 100 * evaluated.auc
        buckets = bucket_average_map(ground_truth, predictions, "length", preset=DATASET, durations=durations)
        metrics.update({f"mAP_N {row.bucket}": 100 * row.average_mAP
                        for row in buckets.itertuples() if row.bucket != "all"})
        rows[name] = metrics
    sensitivity = temporal_sensitivity(features, ground_truth).set_index("feature_set")["sensitivity"]
    for name in features:
        rows[name]["sensitivity"] = sensitivity[name]
    if probe:
        auc = probe_sensitivity(features, ground_truth).set_index("feature_set")["probe_auc"]
        for name in features:
            rows[name]["probe sensitivity"] = 100 * auc[name]
    return pd.DataFrame.from_dict({n: {k: float(v) for k, v in m.items()} for n, m in rows.items()}, orient="index")


DEMO_METHODS = ("tac", "tsp")


def demo_steps(run_dir: str, benchmark_size: str = "default", seed: int = 0,
               methods=DEMO_METHODS) -> list[NotebookStep]:
    """The main job on the built-in synthetic benchmark of size ``benchmark_size`` (tiny | default),
    in the order the notebooks tell it: prepare the data and run the source stage (01: the benchmark,
    its trimmed source set and the initial encoder, TAC on the source set, trained once per benchmark),
    then the run of ``run_steps``: pretrain each method from that initial encoder (``weights="source"``,
    as every encoder of the paper starts from TAC on Kinetics; one executed notebook per method, so
    that each keeps its own recipe settings), extract its features, localize on them; then analyse by
    length (06) and compare the features (07). Notebook 02 (a look at the videos) is not a step: the
    demo's numbers do not depend on it.

    Parameter names mean one thing in every notebook: ``dataset`` a dataset name (01),
    ``dataset_dir`` a dataset folder (03, 04), ``benchmark_size`` the synthetic benchmark's size,
    ``pretrain_recipe`` the pretraining recipe (03), ``dataset_preset`` the dataset preset whose
    metrics apply (05, 06)."""
    check_choice("benchmark_size", benchmark_size, DEMO_BUDGETS)
    run_dir = str(run_dir)
    benchmark = f"{run_dir}/benchmark"
    ground_truth = f"{benchmark}/annotations.json"
    encoders = [Encoder(m, m, pretrain={}, pretrain_notebook=f"03_pretrain_{m}.ipynb") for m in methods]
    data = dict(dataset_dir=benchmark, benchmark_size=benchmark_size)
    return [
        NotebookStep("01_dataset_prep.ipynb",
                     dict(dataset="synthetic", benchmark_size=benchmark_size, seed=seed, run_dir=run_dir,
                          source_encoder=True)),
        *run_steps(run_dir, data, DEMO_BUDGETS[benchmark_size], encoders, seed),
        NotebookStep("06_detad_length_analysis.ipynb",
                     dict(ground_truth=ground_truth, subset=DATASET.eval_subset, dataset_preset=DATASET.name,
                          predictions={m: f"{run_dir}/localization/{m}/predictions.json" for m in methods})),
        NotebookStep("07_feature_similarity.ipynb",
                     dict(feature_folders={e.name: run_features(run_dir, e) for e in encoders},
                          ground_truth=ground_truth)),
    ]


def demo_comparison(run_dir, methods=DEMO_METHODS) -> pd.DataFrame:
    """One row per method of a demo run: localization average mAP (and mAP at the first tIoU, 0.5)
    on the validation videos, the average mAP_N of each DETAD length bucket (the synthetic
    benchmark's XS..XL), and the temporal sensitivity of the features (fg-fg minus fg-bg cosine
    similarity), as ``run_metrics`` reads them. TSP's claim: higher than TAC's on all of them, most
    on short actions."""
    run_dir = resolve(run_dir)
    features = {m: run_dir / "features" / m for m in methods}
    metrics = run_metrics(run_dir, run_dir / "benchmark" / "annotations.json", features,
                          proposals=False, probe=False)
    first = next(c for c in metrics.columns if c.startswith("mAP@"))
    buckets = [c for c in metrics.columns if c.startswith("mAP_N ")]
    table = metrics[["average mAP", first, *buckets, "sensitivity"]]
    table = table.rename(columns={"average mAP": "avg_mAP", first: "mAP@0.5"})
    return table.rename_axis("method").reset_index()


def run_pipeline(steps: list[NotebookStep], run_dir) -> pd.DataFrame:
    """Run ``steps`` in order; returns a table of (executed notebook in ``run_dir``, seconds).
    Stops at the first failing notebook (later steps need its outputs)."""
    rows = []
    for step in steps:
        seconds = run_notebook(step, run_dir)
        rows.append(dict(notebook=step.output_path(resolve(run_dir)).name, seconds=round(seconds, 1)))
    return pd.DataFrame(rows)
