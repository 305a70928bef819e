"""The ``tsplab`` command as a whole: one-line errors with exit status 2, help texts, and what works
from outside the checkout. Each subcommand's own cases live beside its module's tests."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tsplab.cli import build_parser, main
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
    import tsplab.cli.features

    def boom(args):
        raise KeyError("a bug")

    monkeypatch.setattr(tsplab.cli.features, "run_gvf", boom)  # the parser is built inside main, after this
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
    code = ("import os; os.chdir({!r}); from tsplab.runs import notebooks_dir; "
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


# Every flag `tsplab extract` and `tsplab localize` had before their flags were generated from the
# configs' fields, with the values the hand-written parsers gave them.
_EXTRACT_FLAGS = ["--videos", "--out", "--checkpoint", "--backbone", "--stride", "--clip-length", "--frame-rate",
                  "--short-side", "--crop", "--format", "--clip-rule", "--resize", "--annotations", "--shard-id",
                  "--num-shards", "--seed", "--batch-size", "--workers", "--model-threads", "--device",
                  "--trust-checkpoint-code"]
_LOCALIZE_FLAGS = ["--features", "--annotations", "--out", "--preset", "--train-subset", "--valid-subset",
                   "--no-ase-class", "--no-ase-instance", "--no-ascl", "--baseline", "--ase-weighting", "--epochs",
                   "--batch-size", "--lr", "--max-predictions", "--seed", "--device", "--class-agnostic",
                   "--class-scores", "--fusion-top-k"]


def _config(argv):
    from tsplab.config import config_from_args
    from tsplab.features.config import ExtractionConfig
    from tsplab.localizer import LocalizerConfig

    args = build_parser().parse_args(argv)
    if argv[0] == "extract":
        return config_from_args(ExtractionConfig, args)
    off = dict(ase_class=False, ase_instance=False, ascl=False) if args.baseline else {}
    return config_from_args(LocalizerConfig, args, **off)


def test_extract_flags_keep_their_spellings_and_defaults(capsys):
    from tsplab.features.config import ExtractionConfig

    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    shown = capsys.readouterr().out
    assert all(flag in shown for flag in _EXTRACT_FLAGS) and "--set NAME=VALUE" in shown
    assert _config(["extract", "--videos", "v", "--out", "o"]) == ExtractionConfig(videos="v", out_dir="o")
    given = _config(["extract", "--videos", "v", "--out", "o", "--checkpoint", "c.pt", "--backbone", "r2plus1d_tiny",
                     "--stride", "4", "--clip-length", "8", "--frame-rate", "10", "--short-side", "32", "--crop",
                     "28", "--format", "h5", "--clip-rule", "tsp", "--resize", "short-side", "--annotations",
                     "a.json", "--shard-id", "1", "--num-shards", "2", "--seed", "3", "--batch-size", "5",
                     "--workers", "0", "--model-threads", "2", "--device", "cpu", "--trust-checkpoint-code",
                     "--set", "min_frames=3"])
    assert given == ExtractionConfig(
        videos="v", out_dir="o", checkpoint="c.pt", backbone="r2plus1d_tiny", stride_frames=4, clip_length_frames=8,
        frame_rate=10.0, short_side=32, crop_size=28, format="h5", clip_rule="tsp", resize="short-side",
        annotations="a.json", shard_id=1, num_shards=2, seed=3, batch_size=5, workers=0, model_threads=2,
        device="cpu", trust_pickle=True, min_frames=3)
    assert isinstance(given.frame_rate, float) and isinstance(given.stride_frames, int)


def test_localize_flags_keep_their_spellings_and_defaults(capsys):
    from tsplab.localizer import LocalizerConfig

    with pytest.raises(SystemExit):
        main(["localize", "--help"])
    shown = capsys.readouterr().out
    assert all(flag in shown for flag in _LOCALIZE_FLAGS) and "--set NAME=VALUE" in shown
    base = ["localize", "--features", "f", "--annotations", "a.json", "--out", "o"]
    assert _config(base) == LocalizerConfig(features_dir="f", annotations="a.json", out_dir="o")
    given = _config(["localize", "--features", "f", "--features", "g", "--annotations", "a.json", "--out", "o",
                     "--preset", "thumos14", "--train-subset", "t", "--valid-subset", "v", "--no-ase-class",
                     "--no-ase-instance", "--no-ascl", "--ase-weighting", "stabilised", "--epochs", "2",
                     "--batch-size", "3", "--lr", "0.01", "--max-predictions", "7", "--seed", "4", "--device", "cpu",
                     "--class-agnostic", "--class-scores", "s.json", "--fusion-top-k", "3"])
    assert given == LocalizerConfig(
        features_dir=["f", "g"], annotations="a.json", out_dir="o", metric_preset="thumos14", train_subset="t",
        valid_subset="v", ase_class=False, ase_instance=False, ascl=False, ase_weighting="stabilised", epochs=2,
        batch_size=3, lr=0.01, max_predictions=7, seed=4, device="cpu", class_agnostic=True,
        class_scores="s.json", fusion_top_k=3)
    baseline = _config([*base, "--baseline"])
    assert (baseline.ase_class, baseline.ase_instance, baseline.ascl) == (False, False, False)
    assert _config([*base, "--no-ascl"]).ase_class is True
    # --set reaches every field, typed by it
    typed = _config([*base, "--set", "embed_dim=32", "--set", "regression_ranges=[[0,8],[8,10000]]",
                     "--set", "num_levels=2", "--set", "ascl=false", "--set", "theta=0.5", "--set", "head=actionformer"])
    assert (typed.embed_dim, typed.num_levels, typed.regression_ranges, typed.ascl, typed.theta) == (
        32, 2, ((0.0, 8.0), (8.0, 10000.0)), False, 0.5)


def test_localize_and_extract_refuse_bad_set_items_in_one_line(capsys):
    for argv, named in ((["localize", "--features", "f", "--annotations", "a", "--out", "o", "--set", "epoch=3"],
                         "tsplab localize: error: --set 'epoch=3': unknown field 'epoch'; valid fields: "),
                        (["localize", "--features", "f", "--annotations", "a", "--out", "o", "--set", "head=x"],
                         "tsplab localize: error: head: 'x' is not a valid choice; valid: actionformer"),
                        (["localize", "--features", "f", "--annotations", "a", "--out", "o", "--epochs", "2",
                          "--set", "epochs=3"], "tsplab localize: error: --set epochs: also given by its flag"),
                        (["extract", "--videos", "v", "--out", "o", "--set", "stride_frames=0"],
                         "tsplab extract: error: stride_frames: 0 is out of range; valid: an integer >= 1")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(named), err
