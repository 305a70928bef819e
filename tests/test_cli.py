"""The ``tsplab`` command as a whole: one-line errors with exit status 2, help texts, and what works
from outside the checkout. Each subcommand's own cases live beside its module's tests."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tsplab.cli import main
from tsplab.errors import InputError, one_line

REPO = Path(__file__).resolve().parents[1]


def test_input_errors_print_one_line_and_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    predictions = tmp_path / "pred.json"
    predictions.write_text('{"results": {}}')
    code = main(["evaluate", str(empty), str(predictions), "--preset", "activitynet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("tsplab evaluate: error: ")
    assert str(empty) in err and "empty file" in err


def test_missing_file_is_a_one_line_error(tmp_path, capsys):
    code = main(["evaluate", str(tmp_path / "nope.json"), str(tmp_path / "pred.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nope.json" in err


def test_bugs_keep_their_traceback(monkeypatch):
    """Only bad input becomes a one-line message: any other exception propagates."""
    import tsplab.cli as cli

    def boom(args):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "_run_gvf", boom)  # the parser is built inside main, after this
    with pytest.raises(KeyError):
        cli.main(["gvf", "x", "--out", "y"])


def test_one_line_joins_lines_and_cuts_long_messages():
    assert one_line("a\n  b\n\nc") == "a; b; c"
    assert len(one_line("x" * 5000)) == 600
    assert issubclass(InputError, ValueError)


def test_top_level_help_is_plain_text(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "``" not in out and "tsplab" in out
    for command in ("synth", "segments", "pretrain", "extract", "localize", "evaluate", "demo"):
        assert command in out


def test_demo_finds_its_notebooks_from_any_folder(tmp_path):
    """``tsplab demo`` run outside the checkout used to stop with "no such notebook"."""
    code = ("import os; os.chdir({!r}); from tsplab.pipeline import notebooks_dir; "
            "print(notebooks_dir())").format(str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip()
    assert Path(out) == REPO / "notebooks"
    assert (Path(out) / "03_pretrain.ipynb").is_file()


def test_numpy_floor_is_one_the_code_works_with():
    """metrics use np.trapezoid (numpy >= 2.0); pyproject and environment.yml must say so."""
    import numpy as np

    assert hasattr(np, "trapezoid")
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    numpy_dep = next(d for d in deps if d.startswith("numpy"))
    assert numpy_dep == "numpy>=2.0"
    assert '"numpy>=2.0"' in (REPO / "environment.yml").read_text()
