"""Tables as the notebooks show them: missing values read n/a, long text wraps, an empty table says what
empty means, a wide table keeps its headline first and fits the output area."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tsplab.tables import MAX_COLUMNS, NA, headline_first, or_note, styled


def test_styled_writes_missing_values_as_na_and_wraps_long_text():
    claims = pd.DataFrame({"claim": ["TSP's features are more temporally sensitive than TAC on target " * 2],
                           "paper": [np.nan], "difference": [0.12345]})
    html = styled(claims, wrap=["claim"]).to_html()
    assert f">{NA}<" in html and "0.123" in html and "nan" not in html.lower()
    assert "white-space: normal" in html
    assert "on target TSP" in html  # the whole claim, not cut at 60 characters
    blanks = pd.DataFrame({"tac": ["12.0 ± 1.0", ""]}, index=["mAP_N XS", "mAP_N XL"])
    assert f">{NA}<" in styled(blanks, blank_is_missing=True).to_html()


def test_an_empty_table_says_what_empty_means():
    empty = pd.DataFrame(columns=["video", "error"])
    note = or_note(empty, "Every probed video could be read.")
    assert note.data == "*Every probed video could be read.*"
    full = pd.DataFrame({"video": ["a"], "error": ["truncated"]})
    assert or_note(full, "unused") is full
    assert or_note(styled(full), "unused").data is full


def test_a_wide_table_puts_its_headline_first_and_turns_into_rows():
    table = pd.DataFrame([{**{f"mAP@{t:.2f}": 0.5 for t in np.arange(0.5, 1.0, 0.05)}, "average": 0.4}],
                         index=pd.Index(["tsp"], name="method"))
    shown = headline_first(table, "average")
    assert list(shown.index[:2]) == ["average", "mAP@0.50"] and list(shown.columns) == ["tsp"]
    narrow = headline_first(table.iloc[:, -3:], "average")
    assert list(narrow.columns) == ["average", "mAP@0.90", "mAP@0.95"]
    assert len(narrow.columns) <= MAX_COLUMNS
