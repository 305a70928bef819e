"""TSP's segment table, the training/validation input of pretraining: foreground rows are the actions,
background rows the gaps between them (:func:`background_segments` has the exact rule, checked against
TSP's released files), in TSP's CSV format so existing files work as they are."""
from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import pandas as pd

from tsplab.datasets.model import (BACKGROUND, FOREGROUND, SEGMENT_TABLE_COLUMNS, AnnotationError, Annotations,
                                   is_missing)
from tsplab.datasets.presets import get_preset
from tsplab.datasets.source import numeric, read_csv, required
from tsplab.datasets.validation import validate_instances
from tsplab.errors import InputError
from tsplab.runs import write_csv


def background_segments(
    instances: pd.DataFrame, videos: pd.DataFrame, *, min_background_s: float,
    overlap_free: bool = False,
) -> pd.DataFrame:
    """The background gaps of every video with at least one instance: ``DataFrame(video, t_start_s,
    t_end_s)``, ordered by video then time. No validation: instances are used as they are.

    TSP's rule, reproduced from its released tables (see tests): sort a video's actions by start time
    (ties keep the input order); the gaps are ``[0, first start]``, ``[end of action i, start of action
    i+1]`` and ``[end of the last action, duration]``, kept when at least ``min_background_s`` long.
    Note that "end of action i" is the previous action's end, not the latest end so far: when an
    earlier action outlasts a later one, TSP's background row overlaps it (its ActivityNet
    validation table has such rows). ``overlap_free=True`` starts each gap at the latest end so far
    instead, so background never overlaps an action.

    Videos without instances get no rows: an unannotated video (e.g. ActivityNet's testing subset) is
    unlabeled, not background.
    """
    columns = ["video", "t_start_s", "t_end_s"]
    if instances.empty:
        return pd.DataFrame(columns=columns)
    order = pd.Categorical(instances["video"], categories=pd.unique(instances["video"]))
    df = pd.DataFrame({
        "order": order.codes, "video": instances["video"].to_numpy(),
        "start": instances["t_start_s"].to_numpy(dtype=float),
        "end": instances["t_end_s"].to_numpy(dtype=float),
    })
    df = df.sort_values(["order", "start"], kind="stable").reset_index(drop=True)
    group = df.groupby("order", sort=False)["end"]
    previous_end = (group.cummax() if overlap_free else df["end"]).groupby(df["order"]).shift(1)
    between = pd.DataFrame({
        "video": df["video"], "t_start_s": previous_end.fillna(0.0), "t_end_s": df["start"], "order": df["order"],
    })
    last = df.groupby("order", sort=False).agg(
        video=("video", "first"), t_start_s=("end", "max" if overlap_free else "last"),
    ).reset_index()
    duration = videos.drop_duplicates("video").set_index("video")["duration_s"]
    last["t_end_s"] = last["video"].map(duration).to_numpy(dtype=float)
    gaps = pd.concat([between, last[["video", "t_start_s", "t_end_s", "order"]]], ignore_index=True)
    # >= as TSP (its THUMOS14 tables keep gaps of exactly 16/15 s), with a tolerance far below any
    # annotation's precision: a gap of exactly one clip computed from frame/fps times can come out
    # 1e-16 s short of min_background_s and must still count.
    keep = (gaps["t_end_s"] - gaps["t_start_s"]) >= min_background_s - 1e-9
    gaps = gaps[keep].sort_values(["order", "t_start_s"], kind="stable")
    return gaps[columns].reset_index(drop=True)


def segment_min_background_s(preset=None, *, clip_length_frames: int | None = None,
                             frame_rate: float | None = None, min_background_clips: float | None = None,
                             min_background_s: float | None = None) -> float:
    """The shortest background gap a segment table keeps, in seconds: ``min_background_s`` when
    given, else ``min_background_clips`` clips of ``clip_length_frames`` frames at ``frame_rate`` fps,
    each defaulting to ``preset``'s (a :class:`tsplab.datasets.presets.DatasetPreset` or its name). Raises
    ``InputError`` for a negative or infinite gap, or when neither a preset nor seconds are given."""
    clip_settings = (clip_length_frames, frame_rate, min_background_clips)
    if min_background_s is None:
        if preset is None:
            raise InputError("segment table: give the dataset preset (activitynet, thumos14, synthetic) "
                             "or min_background_s")
        given = {k: v for k, v in zip(("clip_length_frames", "frame_rate", "min_background_clips"),
                                      clip_settings) if v is not None}
        min_background_s = dataclasses.replace(get_preset(preset), **given).min_background_s
    elif any(v is not None for v in clip_settings):
        raise InputError("segment table: give min_background_s or the clip settings "
                         "(clip_length_frames, frame_rate, min_background_clips), not both")
    if not 0 <= min_background_s < math.inf:
        raise InputError(f"min_background_s {min_background_s}: give the shortest background gap in "
                         "seconds, a number >= 0")
    return float(min_background_s)


def build_segment_table(
    ann: Annotations, preset=None, *, clip_length_frames: int | None = None,
    frame_rate: float | None = None, min_background_clips: float | None = None,
    min_background_s: float | None = None, labels=None, strict: bool = False,
    overlap_free_background: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """TSP's segment table from annotations: ``(table, report)``. The one builder (dataset
    preparation, pretraining and ``tsplab segments`` call it).

    ``table`` has exactly ``SEGMENT_TABLE_COLUMNS``: the validated actions (``Action`` rows, in input
    order) then the background gaps (``No action`` rows, empty label; see
    :func:`background_segments`), by video and time, as TSP's released files. ``report`` lists every
    dropped or clipped action (:func:`validate_instances`; ``strict`` raises instead).

    The background rule (:func:`segment_min_background_s`): ``preset`` (a
    :class:`tsplab.datasets.presets.DatasetPreset` or its name: ActivityNet keeps gaps from 5 clips of 16
    frames at 15 fps, THUMOS14 and the synthetic benchmark from 1 clip), with a run's own clip
    settings (``clip_length_frames``, ``frame_rate``, e.g. a synthetic benchmark's) and
    ``min_background_clips`` in place of the preset's where given; or ``min_background_s`` seconds.
    """
    gap_s = segment_min_background_s(preset, clip_length_frames=clip_length_frames, frame_rate=frame_rate,
                                     min_background_clips=min_background_clips,
                                     min_background_s=min_background_s)
    instances, report = validate_instances(ann, labels=labels, strict=strict)
    unannotated = ~ann.videos["video"].isin(instances["video"])
    if unannotated.any():
        warnings.warn(
            f"{int(unannotated.sum())} videos have no valid actions (e.g. "
            f"{ann.videos.loc[unannotated, 'video'].head(3).tolist()}); they get no rows "
            "(unlabeled is not background)",
            stacklevel=2,
        )
    background = background_segments(instances, ann.videos, min_background_s=gap_s,
                                     overlap_free=overlap_free_background)
    video_info = ann.videos.drop_duplicates("video").set_index("video")
    table = pd.concat([
        _segment_rows(instances, video_info, instances["label"].to_numpy(), FOREGROUND),
        _segment_rows(background, video_info, None, BACKGROUND),
    ], ignore_index=True)
    table["video-frames"] = table["video-frames"].astype("Int64")
    return table[SEGMENT_TABLE_COLUMNS], report


def _segment_rows(segments: pd.DataFrame, video_info: pd.DataFrame, label, region: str) -> pd.DataFrame:
    """Segment-table rows (TSP's columns) of ``segments`` DataFrame(video, t_start_s, t_end_s), with
    the per-video columns from ``video_info`` (the video table indexed by video)."""
    info = video_info.reindex(segments["video"])
    return pd.DataFrame({
        "video-name": segments["video"].to_numpy(),
        "t-start": segments["t_start_s"].to_numpy(dtype=float),
        "t-end": segments["t_end_s"].to_numpy(dtype=float),
        "action-label": label,
        "video-duration": info["duration_s"].to_numpy(dtype=float),
        "filename": info["filename"].to_numpy(),
        "fps": info["fps"].to_numpy(dtype=float),
        "video-frames": pd.array(info["num_frames"].to_numpy(), dtype="Int64"),
        "temporal-region-label": region,
    })


def write_segment_table(table: pd.DataFrame, path) -> Path:
    """Write a segment table as TSP's CSV (atomically); its columns must be ``SEGMENT_TABLE_COLUMNS``."""
    if list(table.columns) != SEGMENT_TABLE_COLUMNS:
        raise AnnotationError(
            f"{path}: segment table columns must be {SEGMENT_TABLE_COLUMNS}, got {list(table.columns)}"
        )
    return write_csv(path, table)


def segment_report_path(out) -> Path:
    """Where ``tsplab segments`` writes the validation report of segment table ``out``:
    ``<out stem>_report.csv`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}_report.csv")



def read_segment_table(path) -> pd.DataFrame:
    """A segment table CSV (TSP's or ours) with typed columns; ``action-label`` is NaN on background
    rows and ``temporal-region-label`` is spelled as TSP does (read without regard to case)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: segment table not found")
    df = read_csv(path)
    if list(df.columns) != SEGMENT_TABLE_COLUMNS:
        raise AnnotationError(
            f"{path}: not a segment table; expected columns {SEGMENT_TABLE_COLUMNS}, got {list(df.columns)}"
        )
    required(df, "video-name", path, "the video id")
    df["temporal-region-label"] = region_labels(df, path)
    for column in ("t-start", "t-end", "video-duration", "fps"):
        df[column] = numeric(df, column, path)
    df["video-frames"] = numeric(df, "video-frames", path, "a frame count").round().astype("Int64")
    return df.reset_index(drop=True)


def region_labels(df: pd.DataFrame, path: Path) -> pd.Series:
    """``temporal-region-label`` as TSP spells it (``Action`` / ``No action``), read without regard
    to case or surrounding spaces; any other value raises, naming the line."""
    canonical = {FOREGROUND.lower(): FOREGROUND, BACKGROUND.lower(): BACKGROUND}
    raw = df["temporal-region-label"]
    regions = raw.astype(object).str.strip().str.lower().map(canonical)
    bad = regions.isna()
    if bad.any():
        lines = df.index[bad.to_numpy()].tolist()
        value = raw[bad].iloc[0]
        shown = "empty" if is_missing(value) else repr(value)
        raise AnnotationError(
            f"{path}: line {lines[0]}: temporal-region-label is {shown}; give {FOREGROUND!r} or "
            f"{BACKGROUND!r} (any case)" + (f" (also lines {lines[1:6]})" if len(lines) > 1 else "")
        )
    return regions

