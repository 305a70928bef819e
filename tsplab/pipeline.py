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
from tsplab.presets import get_preset
from tsplab.runs import read_json, repo_root, resolve


@dataclass
class NotebookStep:
    notebook: str  # file name in notebooks/
    parameters: dict = field(default_factory=dict)
    output_name: str = ""  # defaults to the notebook's name

    def output_path(self, run_dir: Path) -> Path:
        return run_dir / (self.output_name or self.notebook)


def notebooks_dir() -> Path:
    """The checkout's ``notebooks/``: the one above the working directory when there is one, else the
    one beside the installed package (an editable install, as ``make`` makes, knows its checkout), so
    ``tsplab demo`` works from any folder."""
    for root in (repo_root(), Path(__file__).resolve().parent.parent):
        if (root / "notebooks").is_dir():
            return root / "notebooks"
    raise FileNotFoundError(f"no notebooks/ folder above {Path.cwd()} nor beside the tsplab package "
                            f"({Path(__file__).resolve().parent}); run tsplab from its checkout")


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

DEMO_METHODS = ("tac", "tsp")
DEMO_DATASET = get_preset("synthetic")  # the demo's dataset: its metrics, DETAD buckets, evaluated subset


def demo_steps(run_dir: str, benchmark_size: str = "default", seed: int = 0,
               methods=DEMO_METHODS) -> list[NotebookStep]:
    """The main job on the built-in synthetic benchmark of size ``benchmark_size`` (tiny | default),
    in the order the notebooks tell it: prepare the data and run the source stage (01: the benchmark,
    its trimmed source set and the initial encoder, TAC on the source set, trained once per benchmark),
    pretrain each method from that initial encoder (``weights="source"``, as every encoder of the
    paper starts from TAC on Kinetics; one executed notebook per method, so that each keeps its own
    preset settings), extract its features, localize on them, analyse by length, compare the
    features. Notebook 02 (a look at the videos) is not a step: the demo's numbers do not depend on it.

    Parameter names mean one thing in every notebook: ``dataset`` a dataset name (01),
    ``dataset_dir`` a dataset folder (03, 04), ``benchmark_size`` the synthetic benchmark's size,
    ``pretrain_preset`` the pretraining settings (03), ``dataset_preset`` the dataset preset whose
    metrics apply (05, 06)."""
    check_choice("benchmark_size", benchmark_size, DEMO_BUDGETS)
    budget = DEMO_BUDGETS[benchmark_size]
    run_dir = str(run_dir)
    benchmark = f"{run_dir}/benchmark"
    ground_truth = f"{benchmark}/annotations.json"
    methods = list(methods)
    features = {m: f"{run_dir}/features/{m}" for m in methods}
    return [
        NotebookStep("01_dataset_prep.ipynb",
                     dict(dataset="synthetic", benchmark_size=benchmark_size, seed=seed, run_dir=run_dir,
                          source_encoder=True)),
        *[NotebookStep("03_pretrain.ipynb",
                       dict(method=m, weights="source", dataset_dir=benchmark, benchmark_size=benchmark_size,
                            run_dir=run_dir, seed=seed, **budget.pretrain),
                       output_name=f"03_pretrain_{m}.ipynb") for m in methods],
        NotebookStep("04_extract_features.ipynb",
                     dict(method=methods, dataset_dir=benchmark, benchmark_size=benchmark_size,
                          run_dir=run_dir, seed=seed)),
        NotebookStep("05_localization.ipynb",
                     dict(feature_dirs=features, ground_truth=ground_truth,
                          run_dir=f"{run_dir}/localization", dataset_preset=DEMO_DATASET.name,
                          epochs=budget.localizer_epochs, seed=seed)),
        NotebookStep("06_detad_length_analysis.ipynb",
                     dict(ground_truth=ground_truth, subset=DEMO_DATASET.eval_subset,
                          dataset_preset=DEMO_DATASET.name,
                          predictions={m: f"{run_dir}/localization/{m}/predictions.json" for m in methods})),
        NotebookStep("07_feature_similarity.ipynb",
                     dict(feature_folders=features, ground_truth=ground_truth)),
    ]


def demo_comparison(run_dir, methods=DEMO_METHODS) -> pd.DataFrame:
    """One row per method of a demo run: localization average mAP (and mAP@0.5) on the validation
    videos, the average mAP_N of each DETAD length bucket (the synthetic benchmark's XS..XL), and the
    temporal sensitivity of the features (fg-fg minus fg-bg cosine similarity). TSP's claim: higher
    than TAC's on all of them, most on short actions."""
    from tsplab.annotations import read_annotations
    from tsplab.detad import bucket_table
    from tsplab.metrics import read_predictions
    from tsplab.similarity import temporal_sensitivity

    run_dir = resolve(run_dir)
    ann = read_annotations(run_dir / "benchmark" / "annotations.json")
    instances = ann.instances[ann.instances["subset"] == DEMO_DATASET.eval_subset]
    rows = {}
    for method in methods:
        metrics_path = run_dir / "localization" / method / "metrics.json"
        if not metrics_path.is_file():
            raise FileNotFoundError(f"{metrics_path}: no localization results for {method!r}")
        metrics = read_json(metrics_path)
        rows[method] = {"avg_mAP": 100 * metrics["average_mAP"], "mAP@0.5": 100 * metrics["mAP"][0]}
    predictions = {m: read_predictions(run_dir / "localization" / m / "predictions.json") for m in methods}
    durations = ann.videos.set_index("video")["duration_s"]
    per_length = bucket_table(instances, predictions, "length", preset=DEMO_DATASET, durations=durations,
                              include_shares=False)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table = table.join(per_length.drop(columns="all").add_prefix("mAP_N "))
    folders = {m: run_dir / "features" / m for m in methods}
    sensitivity = temporal_sensitivity(folders, instances).set_index("feature_set")["sensitivity"]
    table["sensitivity"] = sensitivity
    return table.rename_axis("method").reset_index()


def run_pipeline(steps: list[NotebookStep], run_dir) -> pd.DataFrame:
    """Run ``steps`` in order; returns a table of (executed notebook in ``run_dir``, seconds).
    Stops at the first failing notebook (later steps need its outputs)."""
    rows = []
    for step in steps:
        seconds = run_notebook(step, run_dir)
        rows.append(dict(notebook=step.output_path(resolve(run_dir)).name, seconds=round(seconds, 1)))
    return pd.DataFrame(rows)
