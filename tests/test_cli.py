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


def _fake_checkout(tmp_path) -> Path:
    """A folder that looks like a checkout (``tsplab/`` and ``notebooks/``) with ``runs/expA``,
    ``runs/expB`` and a small annotation file at its root."""
    root = tmp_path / "checkout"
    for folder in ("tsplab", "notebooks", "runs/expA", "runs/expB"):
        (root / folder).mkdir(parents=True)
    (root / "a.csv").write_text("video,t_start,t_end,label\nv1,1.0,3.0,jump\nv1,5.0,8.0,run\n")
    (root / "d.csv").write_text("video,duration\nv1,20.0\n")
    return root


def test_relative_paths_are_the_working_directorys_inside_a_checkout(tmp_path, monkeypatch, capsys, unchanged):
    """Inside a checkout, ``cd runs/expA && tsplab segments ../../a.csv --out segs.csv`` wrote
    ``<checkout>/segs.csv`` (and expB overwrote it); it writes ``runs/expA/segs.csv`` now."""
    root = _fake_checkout(tmp_path)
    for exp in ("expA", "expB"):
        monkeypatch.chdir(root / "runs" / exp)
        with unchanged(root / "a.csv", root / "d.csv"):
            assert main(["segments", "../../a.csv", "--durations", "../../d.csv", "--out", "segs.csv",
                         "--subset", "validation"]) == 0
        assert (root / "runs" / exp / "segs.csv").is_file()
    assert not (root / "segs.csv").exists()
    assert (root / "runs/expA/segs.csv").read_bytes() == (root / "runs/expB/segs.csv").read_bytes()
    capsys.readouterr()
    gt = root / "runs/expA/gt.json"
    gt.write_text('{"database": {"v1": {"subset": "validation", "duration": 20, "annotations": '
                  '[{"segment": [1, 3], "label": "jump"}]}}, "results": {"v1": [{"segment": [1, 3], '
                  '"label": "jump", "score": 1.0}]}}')
    monkeypatch.chdir(root / "runs/expA")
    assert main(["evaluate", "gt.json", "gt.json", "--preset", "activitynet"]) == 0
    assert "average" in capsys.readouterr().out


def test_the_library_still_anchors_relative_paths_at_the_checkout(tmp_path, monkeypatch):
    """Notebooks run from ``notebooks/`` and mean ``runs/tiny`` as ``<checkout>/runs/tiny``; the
    command line's anchor ends with the command."""
    from tsplab.runs import paths_relative_to, resolve

    root = _fake_checkout(tmp_path)
    monkeypatch.chdir(root / "notebooks")
    assert resolve("runs/tiny") == root.resolve() / "runs/tiny"
    with paths_relative_to(Path.cwd()):
        assert resolve("runs/tiny") == root.resolve() / "notebooks/runs/tiny"
    assert resolve("runs/tiny") == root.resolve() / "runs/tiny"


def test_size_flag_and_its_deprecated_spelling(capsys):
    """``synth`` and ``demo`` take the benchmark size as ``--size``; ``--preset`` still works for one
    release, with one line on stderr."""
    from tsplab.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["synth", "--out", "x"]).size == "default"
    assert parser.parse_args(["demo", "--size", "tiny"]).size == "tiny"
    assert capsys.readouterr().err == ""
    for command in (["synth", "--out", "x"], ["demo"]):
        assert parser.parse_args(command + ["--preset", "tiny"]).size == "tiny"
        assert capsys.readouterr().err == "tsplab: --preset is deprecated here, use --size\n"
