"""The numbered notebooks as one batch pipeline (papermill), used by ``make demo`` / ``tsplab demo``.

Each step executes a notebook from ``notebooks/`` with parameters into the run folder, so every
executed notebook of a run sits beside its outputs (``runs/<name>/NN_*.ipynb``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tsplab.runs import repo_root, resolve


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
    notebook with the traceback is still written for inspection.
    """
    import papermill

    run_dir = resolve(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    source = repo_root() / "notebooks" / step.notebook
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such notebook")
    start = time.perf_counter()
    papermill.execute_notebook(
        str(source), str(step.output_path(run_dir)), parameters=step.parameters,
        cwd=str(source.parent), kernel_name=kernel_name, progress_bar=False,
    )
    return time.perf_counter() - start


# The notebooks' committed defaults are the tiny preset's (CI runs them as they are); the default
# preset needs the training budget the pretraining preset was tuned with (a few minutes per method on
# 2 CPU cores, TSP's region loss well below 0.4 at the end).
_PRETRAIN_SIZES = {"tiny": {}, "default": dict(epochs=4, batch_size=32, clips_per_segment=3)}

DEMO_METHODS = ("tac", "tsp")


def demo_steps(run_dir: str, preset: str = "default", seed: int = 0,
               methods=DEMO_METHODS) -> list[NotebookStep]:
    """The main job on the built-in synthetic benchmark, in the order the notebooks tell it:
    prepare the data, pretrain each method, extract its features, compare the features."""
    if preset not in _PRETRAIN_SIZES:
        raise ValueError(f"unknown synthetic preset {preset!r}; valid: {', '.join(_PRETRAIN_SIZES)}")
    run_dir = str(run_dir)
    benchmark = f"{run_dir}/benchmark"
    methods = list(methods)
    return [
        NotebookStep("01_dataset_prep.ipynb",
                     dict(dataset="synthetic", preset=preset, seed=seed, run_dir=run_dir)),
        NotebookStep("03_pretrain.ipynb",
                     dict(method=methods, dataset=benchmark, synthetic_preset=preset, run_dir=run_dir,
                          seed=seed, **_PRETRAIN_SIZES[preset])),
        NotebookStep("04_extract_features.ipynb",
                     dict(method=methods, dataset=benchmark, synthetic_preset=preset, run_dir=run_dir,
                          seed=seed)),
        NotebookStep("07_feature_similarity.ipynb",
                     dict(feature_folders={m: f"{run_dir}/features/{m}" for m in methods},
                          ground_truth=f"{benchmark}/annotations.json")),
    ]


def demo_comparison(run_dir, methods=DEMO_METHODS) -> pd.DataFrame:
    """One row per method of a demo run: the validation clip accuracies of its best pretraining
    epoch and the temporal sensitivity of its features on the validation videos (fg-fg minus fg-bg
    cosine similarity; TSP's claim is that it is higher for TSP than for TAC)."""
    from tsplab.annotations import read_annotations
    from tsplab.similarity import temporal_sensitivity
    from tsplab.train import read_run_metrics

    run_dir = resolve(run_dir)
    runs = read_run_metrics(run_dir, names=list(methods))
    rows = []
    for method in methods:
        if method not in runs:
            raise FileNotFoundError(f"{run_dir}/pretrain/{method}: no finished pretraining run")
        best = runs[method].sort_values("valid_acc_avg").iloc[-1]
        rows.append({"method": method, "best_epoch": int(best["epoch"]),
                     **{c: best[c] for c in best.index if c.startswith("valid_acc")}})
    instances = read_annotations(run_dir / "benchmark" / "annotations.json").instances
    instances = instances[instances["subset"] == "validation"]
    folders = {m: run_dir / "features" / m for m in methods}
    sensitivity = temporal_sensitivity(folders, instances).rename(columns={"feature_set": "method"})
    return pd.DataFrame(rows).merge(sensitivity, on="method", how="left")


def run_pipeline(steps: list[NotebookStep], run_dir) -> pd.DataFrame:
    """Run ``steps`` in order; returns a table of (notebook, output, seconds). Stops at the first
    failing notebook (later steps need its outputs)."""
    rows = []
    for step in steps:
        seconds = run_notebook(step, run_dir)
        rows.append(dict(notebook=step.notebook, output=str(step.output_path(resolve(run_dir))),
                         seconds=round(seconds, 1)))
    return pd.DataFrame(rows)
