"""The ``tsplab`` command line: ``tsplab SUBCOMMAND ...`` (also ``python -m tsplab`` and
``torchrun -m tsplab``). Relative paths on its command line are relative to the working directory.
Each subcommand is a thin shell over library functions that the notebooks
call too; the library returns tables and figures, this module prints them.

Exit status: 0 when everything succeeded; 1 when the command ran but some of its work failed (e.g.
videos that could not be decoded, listed in the output); 2 for bad input, printed as one line
``tsplab <command>: error: <file/row/field>: <what is wrong and what is valid>`` (an
``InputError`` or a missing file; any other exception is a bug and keeps its traceback).

One module per group of subcommands (data, pretrain, features, localize, batch), each with
``add_NAME(subparsers)``, which builds the parser and sets ``func=run_NAME``. To add a subcommand:
write both in the module of its stage and list ``add_NAME`` in ``_SUBCOMMANDS``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tsplab.cli import batch, data, features, localize, pretrain
from tsplab.errors import InputError, one_line

DESCRIPTION = ("tsplab: pretrain video encoders for temporal action localization (TSP, TAC, BSP, PAL), "
               "extract clip features, localize and evaluate. Exit status: 0 success, 1 some work "
               "failed (listed), 2 bad input.")

# In the order of the pipeline (this is the order `tsplab --help` lists them in).
_SUBCOMMANDS = [data.add_synth, data.add_segments, data.add_standardize, pretrain.add_pretrain,
                features.add_extract, features.add_gvf, localize.add_localize, localize.add_fuse,
                localize.add_evaluate, batch.add_demo, batch.add_study]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tsplab", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from tsplab.runs import paths_relative_to

    try:
        with paths_relative_to(Path.cwd()):  # relative paths are the working directory's, as in any tool
            return int(args.func(args) or 0)
    except (InputError, FileNotFoundError) as exc:
        print(f"tsplab {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
