"""Durations files: what the videos you have last, replacing an annotation file's durations."""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from tsplab.datasets.model import (METADATA_COLUMNS, AnnotationError, Annotations, check_one_value_per_video,
                                   make_annotations, normalize_video_id)
from tsplab.datasets.source import check_positive, numeric, read_csv, required


def read_durations(source) -> pd.DataFrame:
    """Per-video durations as ``DataFrame(video, duration_s, fps, num_frames, filename)``.

    ``source``: a TSP metadata CSV (``filename,video-duration,fps,video-frames``), a CSV
    ``video,duration`` (optional ``fps``, ``num_frames``, ``filename``), a DataFrame with ``video,
    duration_s``, or a ``{video: seconds}`` mapping. Missing optional columns come back NaN/None.
    A video listed twice (also as ``x`` and ``v_x``) must have the same values both times.
    """
    if isinstance(source, Mapping):
        df = pd.DataFrame({"video": list(source), "duration_s": list(source.values())})
        path = "durations"
    elif isinstance(source, pd.DataFrame):
        df = source.reset_index(drop=True)
        path = "durations table"
        if not {"video", "duration_s"} <= set(df.columns):
            raise AnnotationError(f"durations table needs columns video, duration_s; got {list(df.columns)}")
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: durations file not found")
        df = _durations_from_csv(path)
    for column in ("fps", "num_frames"):
        if column not in df:
            df[column] = math.nan
    if "filename" not in df:
        df["filename"] = None
    df["name"] = df["video"]
    df["video"] = df["video"].map(normalize_video_id)
    df["duration_s"] = pd.to_numeric(df["duration_s"], errors="coerce")
    if (df["video"] == "").any():
        raise AnnotationError(f"{path}: {'line' if isinstance(path, Path) else 'row'} "
                              f"{df.index[(df['video'] == '').to_numpy()][0]}: the video id is empty; give each "
                              "video its id")
    check_positive(df, ["duration_s", "fps", "num_frames"], path, {"duration_s": "duration"})
    check_one_value_per_video(df, path, ["duration_s", "fps", "num_frames"],
                               "lines" if isinstance(path, Path) else "rows")
    return df[["video", "duration_s", "fps", "num_frames", "filename"]].drop_duplicates("video").reset_index(drop=True)


def _durations_from_csv(path: Path) -> pd.DataFrame:
    raw = read_csv(path)
    if set(METADATA_COLUMNS) <= set(raw.columns):
        required(raw, "filename", path, "the video file name")
        return pd.DataFrame({
            "video": raw["filename"], "duration_s": numeric(raw, "video-duration", path, "seconds"),
            "fps": numeric(raw, "fps", path, "frames per second"),
            "num_frames": numeric(raw, "video-frames", path, "a frame count"), "filename": raw["filename"],
        })
    if {"video", "duration"} <= set(raw.columns):
        required(raw, "video", path, "the video id")
        df = raw.rename(columns={"duration": "duration_s"})
        df["duration_s"] = numeric(raw, "duration", path, "seconds")
        for column in ("fps", "num_frames"):
            if column in df:
                df[column] = numeric(raw, column, path)
        return df
    raise AnnotationError(
        f"{path}: unrecognised durations file (columns {list(raw.columns)}); expected "
        f"{','.join(METADATA_COLUMNS)} (TSP metadata) or video,duration[,fps,num_frames,filename]"
    )


def apply_durations(ann: Annotations, durations) -> Annotations:
    table = read_durations(durations).set_index("video")
    videos = ann.videos.copy()
    known = videos["video"].isin(table.index)
    if not known.all():
        missing = videos.loc[~known, "video"].tolist()
        warnings.warn(
            f"{len(missing)} of {len(videos)} annotated videos are missing from the durations "
            f"(e.g. {missing[:5]}); their duration is unknown and validation will drop their actions",
            stacklevel=3,
        )
    matched = table.reindex(videos["video"])
    videos["duration_s"] = matched["duration_s"].to_numpy(dtype=float)
    # The frame count of the annotation file belongs to its duration; with a new duration it is
    # taken from the durations file or re-derived from duration x fps (make_annotations).
    videos["num_frames"] = pd.to_numeric(matched["num_frames"], errors="coerce").to_numpy(dtype=float)
    for column in ("fps", "filename"):
        values = matched[column].to_numpy()
        have = pd.notna(values)
        videos[column] = videos[column].astype(object)
        videos.loc[have, column] = values[have]
    return make_annotations(videos, ann.instances, ann.labels)
