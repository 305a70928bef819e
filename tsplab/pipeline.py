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


def demo_steps(run_dir: str, preset: str = "default", seed: int = 0) -> list[NotebookStep]:
    """The main job on the built-in synthetic benchmark, in the order the notebooks tell it."""
    return [
        NotebookStep("01_dataset_prep.ipynb",
                     dict(dataset="synthetic", preset=preset, seed=seed, run_dir=run_dir)),
    ]


def run_pipeline(steps: list[NotebookStep], run_dir) -> pd.DataFrame:
    """Run ``steps`` in order; returns a table of (notebook, output, seconds). Stops at the first
    failing notebook (later steps need its outputs)."""
    rows = []
    for step in steps:
        seconds = run_notebook(step, run_dir)
        rows.append(dict(notebook=step.notebook, output=str(step.output_path(resolve(run_dir))),
                         seconds=round(seconds, 1)))
    return pd.DataFrame(rows)
