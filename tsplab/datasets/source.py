"""An annotation file as a reader receives it, and the checks every CSV reader shares.

What a reader refuses (:class:`AnnotationError`, one line naming the file, the line or video key, and
the field, with what would be valid) starts here: an empty or non-UTF-8 file; invalid JSON or a key
given twice in one JSON object; a CSV row with fewer or more fields than the header (pandas would pad a
row cut short with NaN and the row would be lost later); a non-numeric time, duration, fps or frame
count; an empty video id. Empty times and labels are not refused: validation reports them row by row.
"""
from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from tsplab.datasets.model import AnnotationError, normalize_video_id, subset_from_filename


@dataclass
class AnnotationSource:
    """One annotation file handed to a reader: its ``path`` and ``text`` (UTF-8), the ``subset``
    asked for (None: all, or the one the file name names), and whether durations come from elsewhere
    (a durations file, or a file tsplab wrote itself), so a JSON ``"duration": null`` is allowed.
    ``json`` and ``table`` parse the text once, for detection and reader alike."""

    path: Path
    text: str
    subset: str | None = None
    durations_given: bool = False

    @property
    def is_json(self) -> bool:
        return self.text.lstrip()[:1] in ("{", "[")

    @cached_property
    def json(self):
        """The parsed JSON (:func:`load_json`)."""
        return load_json(self.path, self.text)

    @cached_property
    def table(self) -> pd.DataFrame:
        """The CSV as strings, indexed by line (:func:`read_csv`)."""
        return read_csv(self.path, self.text)


def read_text(path: Path, expected: str) -> str:
    """The file as text (UTF-8, a byte-order mark allowed); empty or non-UTF-8 files raise."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise AnnotationError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from exc
    if not text.strip():
        raise AnnotationError(f"{path}: empty file; expected {expected}")
    return text



def load_json(path: Path, text: str):
    """Parse JSON text; a key given twice in one object (which ``json`` would silently collapse to
    the last value) raises instead."""
    def pairs(items):
        seen = {}
        for key, value in items:
            if key in seen:
                raise AnnotationError(f"{path}: key {key!r} appears twice in one JSON object; give each "
                                      "key (video id) once")
            seen[key] = value
        return seen

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})") from exc


def read_csv(path: Path, text: str | None = None) -> pd.DataFrame:
    """A CSV as strings, indexed by file line number (1-based, the header is line 1 or later).

    Only empty fields are missing (NaN): a video id or class name must never turn into NaN ("NA").
    Leading spaces of a field are dropped; blank lines are skipped. Every row must have one field per
    header column: pandas would silently pad a row cut short with NaN (or shift a row with one field
    too many into the index), so such rows raise, naming their lines.
    """
    if text is None:
        text = read_text(path, "a CSV file with a header line")
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    header, records, lines = None, [], []
    try:
        for record in reader:
            if not record or record == [""]:
                continue
            if header is None:
                header = [name.strip() for name in record]
            else:
                records.append(record)
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise AnnotationError(f"{path}: line {reader.line_num}: not a readable CSV row ({exc})") from exc
    _check_header(path, header)
    _check_field_counts(path, header, records, lines)
    df = pd.DataFrame(records, columns=header, index=pd.Index(lines, name="line"), dtype=object)
    return df.mask(df == "")


def _check_header(path: Path, header: list[str]) -> None:
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated or "" in header:
        what = f"repeats column(s) {repeated}" if repeated else "has an empty column name"
        raise AnnotationError(f"{path}: line 1: the header {what}; give each column one distinct name")


def _check_field_counts(path: Path, header: list[str], records: list, lines: list[int]) -> None:
    bad = [(line, len(r)) for line, r in zip(lines, records) if len(r) != len(header)]
    if not bad:
        return
    line, count = bad[0]
    why = ("too few: was the file cut short?" if count < len(header)
           else "too many: is there an unquoted comma in a name?")
    more = f" (and {len(bad) - 1} more rows: lines {[b[0] for b in bad[1:6]]}{' ...' if len(bad) > 6 else ''})" \
        if len(bad) > 1 else ""
    raise AnnotationError(
        f"{path}: line {line}: {count} fields but the header has {len(header)} ({why}){more}; every row "
        f"needs one value per column ({','.join(header)}), empty ones included"
    )


def numeric(df: pd.DataFrame, column: str, path: Path, valid: str = "a number") -> pd.Series:
    """Column ``column`` as floats (empty fields NaN); a non-empty field that is not a number raises,
    naming its line (``df`` is indexed by line, see :func:`read_csv`)."""
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() & df[column].notna()
    if bad.any():
        lines = df.index[bad.to_numpy()].tolist()
        more = f" (also lines {lines[1:6]}{' ...' if len(lines) > 6 else ''})" if len(lines) > 1 else ""
        raise AnnotationError(
            f"{path}: line {lines[0]}: {column} is {df[column][bad].iloc[0]!r}, not a number; give {valid}{more}"
        )
    return values.astype(float)


def check_positive(df: pd.DataFrame, columns, path, shown: dict | None = None) -> None:
    """Per-video numbers (durations, frame rates, frame counts) are finite and > 0 where given (empty
    means unknown): a 0 fps or an infinite duration (``1e400``) would reach TSP's table and the clip
    sampling. Raises naming the line (the row, for tables given in Python), the video and the column."""
    for column in columns:
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isnan(values) & ~(np.isfinite(values) & (values > 0))
        if bad.any():
            where = "line" if isinstance(path, Path) else "row"
            row = df.index[bad][0]
            raise AnnotationError(f"{path}: {where} {row}: {(shown or {}).get(column, column)} of video "
                                  f"{df['video'][row]!r} is "
                                  f"{values[bad][0]:g}; give a finite number > 0 (or leave it empty when unknown)")


def required(df: pd.DataFrame, column: str, path: Path, valid: str) -> None:
    """Raise when ``column`` is empty on some row, naming the line."""
    empty = df[column].isna()
    if empty.any():
        lines = df.index[empty.to_numpy()].tolist()
        raise AnnotationError(f"{path}: line {lines[0]}: {column} is empty; give {valid}"
                              + (f" (also empty on lines {lines[1:6]})" if len(lines) > 1 else ""))



def resolve_file_subset(path: Path, subset: str | None) -> str:
    if subset is not None:
        return subset
    inferred = subset_from_filename(path)
    if inferred is None:
        raise AnnotationError(
            f"{path}: cannot tell the subset from the file name (no train/valid/test in it); "
            "pass subset='training' | 'validation' | 'testing'"
        )
    return inferred



def video_ids(df: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """Normalised ids of ``column``; one warning names videos spelled two ways (``x`` / ``v_x``),
    which are read as one video."""
    required(df, column, path, "the video id")
    blank = (df[column].astype(str).str.strip() == "").to_numpy()
    if blank.any():
        raise AnnotationError(f"{path}: line {df.index[blank][0]}: {column} is empty; give the video id")
    names, spellings = pd.factorize(df[column].astype(str).str.strip())
    ids = np.array([normalize_video_id(name) for name in spellings], dtype=object)
    distinct = pd.DataFrame({"video": ids, "name": np.asarray(spellings, dtype=object)})
    several = distinct[distinct["video"].duplicated(keep=False)].groupby("video", sort=False)["name"].agg("/".join)
    if len(several):
        warnings.warn(f"{path}: {len(several)} videos are spelled two ways in {column} "
                      f"({', '.join(several.head(5))}); each is read as one video (ActivityNet's v_ file "
                      "prefix)", stacklevel=4)
    return pd.Series(ids[names], index=df.index, name=column)

