"""How an executed notebook that tsplab writes (``tsplab demo``, ``tsplab study``) reads when reopened:
trusted, so JupyterLab draws its saved widgets; its progress bars saved at their final value; the
kernel's own start-up log kept out of the notebook."""
from __future__ import annotations

import nbformat
import pytest
from nbformat.sign import NotebookNotary

from tsplab import pipeline
from tsplab.pipeline import NotebookStep, run_notebook


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.cells[0].metadata["tags"] = ["parameters"]
    return nb


@pytest.mark.slow
def test_executed_notebook_is_trusted_with_its_final_widget_state(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))  # the notary's database
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nbformat.write(_notebook("steps = 3",
                             "from tqdm.auto import tqdm\nfor _ in tqdm(range(steps), desc='work'):\n    pass"),
                   notebooks / "bar.ipynb")
    monkeypatch.setattr(pipeline, "notebooks_dir", lambda: notebooks)

    run_notebook(NotebookStep("bar.ipynb", dict(steps=7)), tmp_path / "run")

    saved = nbformat.read(tmp_path / "run" / "bar.ipynb", as_version=4)
    assert NotebookNotary().check_signature(saved)  # JupyterLab draws its widgets when reopened
    state = saved.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    bars = [m["state"] for m in state.values() if m["model_name"] in ("FloatProgressModel", "IntProgressModel")]
    assert [(b["value"], b["max"]) for b in bars] == [(7, 7)]  # the finished bar, not 0/7
    texts = "".join(str(o.get("text", "")) for c in saved.cells for o in c.get("outputs", []))
    assert "IPKernelApp" not in texts
    assert (tmp_path / "run" / "bar.kernel.log").is_file()  # the kernel's own log, beside the notebook


@pytest.mark.slow
def test_failed_notebook_is_still_written_and_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nbformat.write(_notebook("x = 1", "raise RuntimeError('stop here')"), notebooks / "fails.ipynb")
    monkeypatch.setattr(pipeline, "notebooks_dir", lambda: notebooks)

    with pytest.raises(Exception, match="stop here"):
        run_notebook(NotebookStep("fails.ipynb"), tmp_path / "run")
    assert NotebookNotary().check_signature(nbformat.read(tmp_path / "run" / "fails.ipynb", as_version=4))


def test_a_notary_that_cannot_write_costs_the_run_nothing(tmp_path, monkeypatch):
    from nbformat.sign import NotebookNotary

    from tsplab.pipeline import sign_notebook

    path = tmp_path / "x.ipynb"
    nbformat.write(_notebook("x = 1"), path)

    def locked(self, nb):
        raise OSError("database is locked")

    monkeypatch.setattr(NotebookNotary, "sign", locked)
    with pytest.warns(UserWarning, match=r"not signed as trusted \(OSError: database is locked\); `jupyter trust"):
        assert sign_notebook(path) is False
