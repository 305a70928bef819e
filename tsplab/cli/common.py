"""What every ``tsplab`` subcommand shares: printing a table, the ``--overwrite`` and ``--size``
flags, and the one-line note of a spelling kept for one release."""
from __future__ import annotations

import argparse
import sys


def print_table(df, title: str | None = None) -> None:
    import pandas as pd

    if title:
        print(title)
    with pd.option_context("display.max_rows", 200, "display.width", 160):
        print(df.to_string(index=False) if len(df) else "(none)")


class DeprecatedSpelling(argparse.Action):
    """An old flag kept for one release: it sets the same destination as ``new`` and prints one line
    on stderr pointing at ``new`` (e.g. ``--preset`` where a benchmark size is meant: ``--size``)."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"tsplab: {option_string} is deprecated here, use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_size(p, help_text: str) -> None:
    """``--size tiny|default`` (the synthetic benchmark size), and its old spelling ``--preset``."""
    from tsplab.benchmark import SIZES

    p.add_argument("--size", default="default", choices=list(SIZES), help=help_text)
    p.add_argument("--preset", dest="size", choices=list(SIZES), action=DeprecatedSpelling, new="--size",
                   default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_overwrite(p, what: str) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} when it exists (without it an existing file is never written over)")


def deprecated(old: str, new: str) -> None:
    """The one-line note of a spelling kept for one release."""
    print(f"tsplab: {old} is deprecated, use {new}", file=sys.stderr)
