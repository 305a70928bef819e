"""Tables as the notebooks show them: within JupyterLab's output area, long text wrapped, a missing
value written "n/a", and an empty table replaced by a sentence that says what "empty" means.

A notebook's last expression is shown as a table; these helpers return what to show instead:
``styled`` a pandas Styler (HTML in the notebook), ``or_note`` a Markdown sentence when the table
has no rows, ``headline_first`` the table with its headline columns first (and as rows when it has
more columns than the output area holds: one row per metric reads as well, and never gets cut off).
"""
from __future__ import annotations

import pandas as pd

#: How a missing value reads in a table.
NA = "n/a"

#: Columns of numbers that fit JupyterLab's output area side by side (an index column beside them);
#: a table with more is shown transposed by ``headline_first``.
MAX_COLUMNS = 8

# Long text (a claim, a path) wraps inside its cell instead of widening the table.
_WRAP_STYLE = {"white-space": "normal", "overflow-wrap": "anywhere", "text-align": "left",
               "min-width": "12em", "max-width": "32em"}


def styled(table: pd.DataFrame, *, wrap=(), digits: int = 3, blank_is_missing: bool = False):
    """``table`` as a Styler: numbers with ``digits`` decimals, missing values (NaN, and empty strings
    when ``blank_is_missing``) written ``n/a``, the ``wrap`` columns left-aligned and wrapped."""
    if blank_is_missing:
        table = table.mask(table.astype(str).apply(lambda column: column.str.strip() == ""))
    style = table.style.format(precision=digits, na_rep=NA)
    wrap = [c for c in wrap if c in table.columns]
    if wrap:
        style = style.set_properties(subset=wrap, **_WRAP_STYLE)
    return style


def or_note(table, empty: str):
    """``table`` when it has rows; else ``empty`` (a sentence saying what no rows means) as Markdown."""
    from IPython.display import Markdown

    frame = table.data if hasattr(table, "data") else table  # a Styler's DataFrame
    return table if len(frame) else Markdown(f"*{empty}*")


def headline_first(table: pd.DataFrame, *headline: str, max_columns: int = MAX_COLUMNS) -> pd.DataFrame:
    """``table`` with the ``headline`` columns first; transposed (one row per column) when it has more
    than ``max_columns`` columns, so the headline is the first row and no column is cut off."""
    first = [c for c in headline if c in table.columns]
    table = table[first + [c for c in table.columns if c not in first]]
    return table.T if len(table.columns) > max_columns else table
