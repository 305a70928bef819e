"""The notebooks as files (committed without outputs, parameters first, numbered without gaps, each
parameter name with one meaning) and the pipeline that passes them parameters (every name it passes
is one the notebook declares). Reads the notebooks' JSON only; nothing is executed."""
from __future__ import annotations

import ast
import re

import nbformat
import pytest

from tsplab.pipeline import demo_steps
from tsplab.runs import notebooks_dir

NOTEBOOKS = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def parameters_of(path) -> dict:
    """``{name: default}`` of a notebook's first code cell (the one tagged ``parameters``)."""
    cell = next(c for c in nbformat.read(path, 4).cells if c.cell_type == "code")
    values = {}
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign), f"{path.name}: the parameters cell holds only assignments"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def test_numbered_without_gaps():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]
    assert (notebooks_dir() / "03_pretrain.ipynb").is_file()  # the name the design card's example uses


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_parameters_first(path):
    nb = nbformat.read(path, 4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].metadata.get("tags") == ["parameters"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    parameters_of(path)  # literal defaults only: papermill can override each one


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_checked_right_after_the_parameters_cell(path):
    code = [c for c in nbformat.read(path, 4).cells if c.cell_type == "code"]
    assert re.search(r"\bcheck_(choice|feature_folders)\(", code[1].source), \
        f"{path.name}: the cell after the parameters checks them (tsplab.errors.check_choice)"


def test_one_meaning_per_parameter_name():
    names = {p.stem[:2]: parameters_of(p) for p in NOTEBOOKS}
    assert not any("preset" in params for params in names.values())  # benchmark, pretraining or dataset?
    assert [nb for nb, params in names.items() if "dataset" in params] == ["01"]  # a dataset name
    for nb in ("03", "04"):
        assert names[nb]["dataset_dir"] == "runs/tiny/benchmark"  # a folder, as PretrainConfig.dataset_dir
    assert {nb: params["benchmark_size"] for nb, params in names.items() if "benchmark_size" in params} == \
        {"01": "tiny", "03": "tiny", "04": "tiny", "09": "tiny"}
    assert names["03"]["pretrain_recipe"] == "synthetic" and names["02"]["pretrain_recipe"] == "synthetic"
    assert names["05"]["dataset_preset"] == "synthetic" and names["06"]["dataset_preset"] == "thumos14"


def test_tiny_defaults_start_no_worker_processes():
    # A DataLoader worker left from an earlier Run All printed "Exception ignored in
    # _MultiProcessingDataLoaderIter.__del__" into a cell (issue 11); the notebook trains in-process.
    assert parameters_of(notebooks_dir() / "03_pretrain.ipynb")["workers"] == 0


@pytest.mark.parametrize("size", ["tiny", "default"])
def test_pipeline_passes_only_parameters_the_notebooks_declare(size):
    for step in demo_steps("runs/x", benchmark_size=size):
        declared = parameters_of(notebooks_dir() / step.notebook)
        assert set(step.parameters) <= set(declared), (step.notebook, set(step.parameters) - set(declared))


def test_readme_papermill_examples_use_declared_parameters():
    readme = (notebooks_dir().parent / "README.md").read_text()
    examples = re.findall(r"papermill notebooks/(\S+\.ipynb) \S+((?: -p \S+ \S+)+)", readme)
    assert examples
    for notebook, flags in examples:
        names = re.findall(r"-p (\S+) ", flags + " ")
        assert set(names) <= set(parameters_of(notebooks_dir() / notebook)), (notebook, names)
