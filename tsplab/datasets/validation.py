"""Validation of action instances against their videos and the label mapping, and its report: one
``REPORT_COLUMNS`` row per instance dropped or clipped, with why."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tsplab.datasets.model import DUPLICATE_PROBLEM, AnnotationError, Annotations
from tsplab.runs import write_csv


def validate_instances(
    ann: Annotations, *, labels=None, strict: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check every instance against its video and the label mapping.

    Problems: video missing from the video list, unknown duration, missing times, start >= end
    (zero-length or reversed), negative times, times past the duration, label not in ``labels``
    (default ``ann.labels``), an exact repeat of an earlier row (same video, times, label and
    subset: ``DUPLICATE_PROBLEM``). What can be clipped to ``[0, duration]`` is clipped; what is
    empty afterwards, repeated, or cannot be checked, is dropped.

    Returns ``(instances, report)``: the kept instances (clipped) and one ``REPORT_COLUMNS`` row per
    changed or dropped instance, with its original times, its video's duration, the problems found
    (``; ``-joined) and ``action`` = ``clipped`` | ``dropped``.
    ``strict=True`` raises :class:`AnnotationError` listing the offending rows instead.
    """
    instances = ann.instances.reset_index(drop=True)
    labels = set(ann.labels if labels is None else labels)
    durations = instances["video"].map(ann.videos.drop_duplicates("video").set_index("video")["duration_s"])
    start = instances["t_start_s"].to_numpy(dtype=float)
    end = instances["t_end_s"].to_numpy(dtype=float)
    duration = durations.to_numpy(dtype=float)
    problems, drop = _instance_problems(instances, ann.videos["video"], labels, start, end, duration)

    changed = np.array([bool(p) for p in problems], dtype=bool)
    report = pd.DataFrame({
        "video": instances["video"], "t_start_s": start, "t_end_s": end, "duration_s": duration,
        "label": instances["label"], "problem": ["; ".join(p) for p in problems],
        "action": np.where(drop, "dropped", "clipped"),
    })[changed].reset_index(drop=True)
    if strict and len(report):
        raise AnnotationError(_strict_message(report), report)

    kept = instances[~drop].copy()
    kept["t_start_s"] = np.clip(start[~drop], 0.0, None)
    kept["t_end_s"] = np.minimum(end[~drop], duration[~drop])
    return kept.reset_index(drop=True), report


def _instance_problems(instances: pd.DataFrame, listed_videos: pd.Series, labels: set, start: np.ndarray,
                       end: np.ndarray, duration: np.ndarray) -> tuple[list[list[str]], np.ndarray]:
    """What :func:`validate_instances` finds in each of the N ``instances``: ``(problems, drop)``,
    the problem texts of each row (in check order) and whether the row is dropped [N] (else what is
    wrong can be clipped). ``start``, ``end``, ``duration``: [N] seconds (NaN where unknown)."""
    problems: list[list[str]] = [[] for _ in range(len(instances))]
    drop = np.zeros(len(instances), dtype=bool)

    def flag(mask, text, dropped):
        nonlocal drop
        for i in np.flatnonzero(mask):
            problems[i].append(text)
        if dropped:
            drop |= mask

    in_list = instances["video"].isin(listed_videos).to_numpy()
    with np.errstate(invalid="ignore"):
        no_times = np.isnan(start) | np.isnan(end)
        flag(~in_list, "video missing from the video list", True)
        flag(in_list & np.isnan(duration), "video duration unknown (missing from durations)", True)
        flag(no_times, "missing start or end time", True)
        flag(~no_times & (start == end), "zero length", True)
        flag(~no_times & (start > end), "start after end", True)
        no_label = instances["label"].isna().to_numpy()
        flag(no_label, "missing label", True)
        unknown = ~no_label & ~instances["label"].isin(labels).to_numpy()
        flag(unknown, "unknown label", True)
        # The same action twice would be sampled twice as often in pretraining (and counted as two
        # ground-truth instances, one of them unmatched, in an evaluation); the first copy is kept.
        repeated = instances.duplicated(["video", "t_start_s", "t_end_s", "label", "subset"], keep="first")
        flag(repeated.to_numpy(), DUPLICATE_PROBLEM, True)
        ok = ~drop
        flag(ok & (end <= 0), "ends at or before 0", True)
        flag(ok & (start < 0) & (end > 0), "negative start", False)
        flag(ok & (start >= duration), "starts at or past the video duration", True)
        past_end = ok & (end > duration) & (start < duration)
        flag(past_end, "ends past the video duration", False)
    return problems, drop


def _strict_message(report: pd.DataFrame, limit: int = 3) -> str:
    """One line: how many rows are invalid, the first ``limit`` of them, how many more."""
    shown = "; ".join(
        f"{r.video} [{r.t_start_s:g}, {r.t_end_s:g}] (duration {r.duration_s:g}) {r.label!r}: {r.problem}"
        for r in report.head(limit).itertuples(index=False)
    )
    more = f"; ... and {len(report) - limit} more" if len(report) > limit else ""
    return f"{len(report)} invalid annotation rows (strict mode): {shown}{more}; see the report"


def write_validation_report(report: pd.DataFrame, path) -> Path:
    """Write a :func:`validate_instances` report as CSV (atomically)."""
    return write_csv(path, report)
