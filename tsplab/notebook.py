"""What the notebooks set up once (how warnings read) and the sentences they format from a run's tables.

In a notebook a warning from library code is a red box with the file name, the line number and the
source line that raised it, none of which tells a researcher what to do; and a warning raised in a
loop repeats. ``one_line_warnings`` shows each warning once, as ``UserWarning: message`` on one line.

A sentence in a notebook that quotes a number takes it from the table it describes: the
``*_sentence`` functions read a table of the run and return Markdown text, so the prose never
contradicts the numbers above it.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from tsplab.errors import one_line


def _format(message, category, filename, lineno, line=None) -> str:
    return f"{category.__name__}: {one_line(str(message))}\n"


def one_line_warnings() -> None:
    """Warnings shown as one line each (category and message, no source line), each text once."""
    warnings.formatwarning = _format
    warnings.simplefilter("once", UserWarning)


# ---------------------------------------------------------------------------------------------
# Sentences that read a table of this run (formatted into the notebook, never typed in by hand)
# ---------------------------------------------------------------------------------------------

def _listing(values, digits: int, scale: float = 1.0, *, bold_first: bool = True) -> str:
    """``a 1.0, b 2.0``, in the order of ``values`` (a Series indexed by name); the first in bold when
    ``values`` are ranked (``bold_first``)."""
    items = [f"{name} {scale * float(v):.{digits}f}" if np.isfinite(v) else f"{name} n/a"
             for name, v in values.items()]
    if bold_first and items:
        items[0] = f"**{items[0]}**"
    return ", ".join(items) if items else "none"


def detection_sentence(table: pd.DataFrame) -> str:
    """The headline of ``tsplab.evaluation.detection_table`` (rows: methods, fractions): the average mAP
    of each method, best first, and the mAP at the strictest threshold, in percent."""
    ranked = table.sort_values("average", ascending=False)
    strictest = [c for c in table.columns if c.startswith("mAP@")][-1]
    return (f"On this run, average mAP (%): {_listing(ranked['average'], 1, 100)}; at the strictest "
            f"threshold ({strictest}): {_listing(ranked[strictest], 1, 100)}.")


def bucket_sentence(table: pd.DataFrame) -> str:
    """The first bucket and ``all`` of a ``tsplab.evaluation.bucket_table`` (percent), each method's, and
    the difference between the first two methods on both: how much of a gain on short actions
    reaches the overall number."""
    methods = [m for m in table.index if m != "% of instances"]
    first = table.columns[0]
    share = (f" ({table.loc['% of instances', first]:.1f} % of the instances)"
             if "% of instances" in table.index else "")
    text = (f"Bucket {first}{share}: {_listing(table.loc[methods, first], 1, bold_first=False)}; "
            f"`all`: {_listing(table.loc[methods, 'all'], 1, bold_first=False)}")
    if len(methods) > 1:
        a, b = methods[:2]
        text += (f". {a} minus {b}: {table.loc[a, first] - table.loc[b, first]:+.1f} points on {first}, "
                 f"{table.loc[a, 'all'] - table.loc[b, 'all']:+.1f} on `all`")
    return text + "."


def sensitivity_sentence(table: pd.DataFrame) -> str:
    """``tsplab.similarity.temporal_sensitivity`` (one row per feature set) read out, most sensitive
    first, with the number of videos it averages."""
    ranked = table.sort_values("sensitivity", ascending=False).set_index("feature_set")
    videos = sorted({int(n) for n in ranked["num_videos"].dropna()})
    counted = f" (over {' / '.join(map(str, videos))} videos)" if videos else ""
    return f"Temporal sensitivity on this run{counted}: {_listing(ranked['sensitivity'], 3)}."
