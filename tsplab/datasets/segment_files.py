"""A segment table and its validation report written from one annotation file (``tsplab segments``).

Every input is checked before anything is written; the table and the report go to temporary files
first and are renamed at the end, so a killed run replaces neither. When no action survives
validation only the report is written, naming every dropped row.
"""
from __future__ import annotations

import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tsplab.datasets.model import FOREGROUND, AnnotationError, Annotations
from tsplab.datasets.model import read_label_mapping
from tsplab.datasets.reading import read_annotations
from tsplab.datasets.segments import (build_segment_table, segment_min_background_s, segment_report_path,
                                      write_segment_table)
from tsplab.datasets.validation import write_validation_report
from tsplab.errors import InputError, one_line
from tsplab.runs import atomic_path, check_output_file, resolve

# How the inputs are named in messages by default (the CLI passes its flags' names instead).
FIELD_NAMES = {"annotations": "the annotation file", "durations": "the durations file",
               "labels": "the labels file", "out": "out", "min_background_s": "min_background_s",
               "strict": "strict=True"}


@dataclass
class SegmentFiles:
    """What :func:`write_segment_files` did: the ``table`` written to ``out`` (unless no action was
    kept), the validation ``report`` written to ``report_path``, the annotations read, the background
    rule used and the readers' ``warnings`` (one line each)."""

    table: pd.DataFrame
    report: pd.DataFrame
    annotations: Annotations
    out: Path
    report_path: Path
    min_background_s: float
    warnings: list[str] = field(default_factory=list)

    @property
    def num_actions(self) -> int:
        return len(self.annotations.instances)

    @property
    def kept(self) -> int:
        """Actions in the written table."""
        return int((self.table["temporal-region-label"] == FOREGROUND).sum())

    @property
    def problem_counts(self) -> pd.DataFrame:
        """Rows of the report by problem and action taken."""
        return self.report.groupby(["problem", "action"]).size().reset_index(name="rows")

    def summary(self) -> str:
        """One sentence: what was written, and how many actions were dropped or clipped."""
        actions = self.report["action"].value_counts()
        regions = self.table["temporal-region-label"].value_counts()
        return (f"Wrote {len(self.table)} segments ({self.kept} actions, {regions.get('No action', 0)} background, "
                f"gaps >= {self.min_background_s:.4g} s) of {self.table['video-name'].nunique()} videos to "
                f"{self.out}; {self.kept} of {self.num_actions} actions kept: {actions.get('dropped', 0)} dropped, "
                f"{actions.get('clipped', 0)} clipped (every one listed in {self.report_path})")


def write_segment_files(annotations, out, preset="activitynet", *, durations=None, subset=None, labels=None,
                        min_background_s: float | None = None, strict: bool = False, overwrite: bool = False,
                        names: dict | None = None) -> SegmentFiles:
    """TSP's segment table of ``annotations`` (the one builder, ``preset``'s background rule or
    ``min_background_s``) to ``out`` and its validation report beside it (``<out>_report.csv``).

    Bad input raises ``InputError`` before anything is written (an output that is an input, an
    existing file without ``overwrite``, a negative gap); ``strict`` raises on any invalid row.
    ``names``: how the inputs are called in messages (keys of ``FIELD_NAMES``)."""
    names = {**FIELD_NAMES, **(names or {})}
    inputs = {names[k]: resolve(v) for k, v in (("annotations", annotations), ("durations", durations),
                                                 ("labels", labels)) if v}
    out = resolve(out)
    report_path = segment_report_path(out)
    check_output_file(out, names["out"], inputs, overwrite=overwrite)
    check_output_file(report_path, f"{names['out']}'s report {report_path.name}", inputs, overwrite=overwrite)
    if min_background_s is not None and not 0 <= min_background_s < float("inf"):
        raise InputError(f"{names['min_background_s']} {min_background_s}: give the shortest background gap "
                         "in seconds, a number >= 0")
    rule_s = segment_min_background_s(preset, min_background_s=min_background_s)
    mapping = read_label_mapping(inputs[names["labels"]]) if labels else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ann = read_annotations(inputs[names["annotations"]], durations=inputs.get(names["durations"]),
                               subset=subset)
        table, report = _build(ann, annotations, preset, min_background_s, mapping, strict,
                               f"rerun without {names['strict']} to write it to {report_path}")
    files = SegmentFiles(table, report, ann, out, report_path, rule_s, [one_line(w.message) for w in caught])
    _write(files)
    return files


def _build(ann, shown, preset, min_background_s, labels, strict, hint: str):
    """The table and report; in strict mode the error names the annotation file and where the full
    list would have gone."""
    try:
        return build_segment_table(ann, preset, min_background_s=min_background_s, labels=labels, strict=strict)
    except AnnotationError as exc:
        if exc.report is None:
            raise
        raise AnnotationError(f"{shown}: {exc} ({hint})", exc.report) from exc


def _write(files: SegmentFiles) -> None:
    """Both files to temporary paths first, renamed at the end: a killed run replaces neither."""
    kept = files.kept
    try:
        with atomic_path(files.report_path) as report_tmp, \
                (atomic_path(files.out) if kept else nullcontext()) as out_tmp:
            write_validation_report(files.report, report_tmp)
            if kept:
                write_segment_table(files.table, out_tmp)
    except OSError as exc:
        raise InputError(f"{exc.filename or files.out}: cannot write ({exc.strerror})") from exc
