"""The in-memory form of a dataset's annotations, shared by every reader.

:class:`Annotations` holds

- ``videos``: one row per video, columns ``video, subset, duration_s, fps, num_frames, filename``
  (``fps`` / ``num_frames`` NaN when unknown; ``num_frames`` is a nullable integer);
- ``instances``: one row per action, columns ``video, t_start_s, t_end_s, label, subset``;
- ``labels``: the sorted class names, which are the label mapping (class index = position).

Video ids: ActivityNet ids are YouTube ids, and the ActivityNet downloader names files ``v_{id}``; a
JSON key and a file stem therefore name the same video with and without the prefix.
:func:`normalize_video_id` maps both to the bare id, which is what ``video`` holds everywhere.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tsplab.errors import InputError
from tsplab.runs import read_json, write_json

VIDEO_COLUMNS = ["video", "subset", "duration_s", "fps", "num_frames", "filename"]
INSTANCE_COLUMNS = ["video", "t_start_s", "t_end_s", "label", "subset"]
REPORT_COLUMNS = ["video", "t_start_s", "t_end_s", "duration_s", "label", "problem", "action"]
SEGMENT_TABLE_COLUMNS = [
    "video-name", "t-start", "t-end", "action-label", "video-duration", "filename", "fps",
    "video-frames", "temporal-region-label",
]
METADATA_COLUMNS = ["filename", "video-duration", "fps", "video-frames"]
CUSTOM_COLUMNS = ["video", "t_start", "t_end", "label"]
FOREGROUND, BACKGROUND = "Action", "No action"  # TSP's temporal-region labels
SUBSETS = ("training", "validation", "testing")
DUPLICATE_PROBLEM = "duplicate of an earlier row"

_VIDEO_EXTENSIONS = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv", ".3gp"}
_YOUTUBE_ID_LENGTH = 11
# File-name tokens that name a subset, e.g. activitynet_v1-3_valid_tsp_groundtruth.csv.
_SUBSET_TOKENS = {
    "train": "training", "training": "training",
    "val": "validation", "valid": "validation", "validation": "validation",
    "test": "testing", "testing": "testing",
}


class AnnotationError(InputError):
    """Bad annotation input. ``report`` holds the offending rows (``REPORT_COLUMNS``) when there are
    rows to blame."""

    def __init__(self, message: str, report: pd.DataFrame | None = None):
        super().__init__(message)
        self.report = report


# ---------------------------------------------------------------------------------------------
# Video ids and label mappings


def normalize_video_id(name) -> str:
    """The bare video id of a JSON key, ``video-name`` or file name.

    Drops a video-file extension and ActivityNet's ``v_`` file prefix: ``"v_JDg--pjY5gg.mp4"``,
    ``"v_JDg--pjY5gg"`` and ``"JDg--pjY5gg"`` are the same video. The prefix is dropped only when an
    11-character YouTube id remains, because some ActivityNet ids themselves begin with ``v_``
    (``v_Vg4a8igc0``, whose file is ``v_v_Vg4a8igc0.mp4``). Other ids (THUMOS14's
    ``video_test_0000004``, synthetic ones) come back unchanged.
    """
    name = str(name).strip()
    stem, ext = os.path.splitext(name)
    if ext.lower() in _VIDEO_EXTENSIONS:
        name = stem
    if name.startswith("v_") and len(name) == 2 + _YOUTUBE_ID_LENGTH:
        name = name[2:]
    return name


def label_mapping(labels) -> list[str]:
    """The sorted list of distinct class names: class index = position (TSP's convention)."""
    return sorted({str(label) for label in labels if not is_missing(label)})


def write_label_mapping(labels, path) -> Path:
    """Write ``label_mapping(labels)`` as a JSON list, like TSP's ``*_action_label_mapping.json``."""
    return write_json(path, label_mapping(labels))


def read_label_mapping(path) -> list[str]:
    """A label-mapping JSON list, in file order (the order is the class index)."""
    labels = read_json(path)
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise AnnotationError(f"{path}: a label mapping must be a JSON list of class names")
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise AnnotationError(f"{path}: label mapping repeats {duplicates}")
    return labels


# ---------------------------------------------------------------------------------------------
# The in-memory form


@dataclass
class Annotations:
    """Videos, action instances and the label mapping of a dataset (columns: module docstring)."""

    videos: pd.DataFrame
    instances: pd.DataFrame
    labels: list[str]

    def subset(self, name: str) -> "Annotations":
        """The videos and instances of subset ``name``; the label mapping is kept whole so that class
        indices stay the same across subsets."""
        available = sorted(self.videos["subset"].dropna().unique())
        if name not in available:
            raise KeyError(f"no subset {name!r}; the annotations have {available}")
        videos = self.videos[self.videos["subset"] == name].reset_index(drop=True)
        instances = self.instances[self.instances["subset"] == name].reset_index(drop=True)
        return Annotations(videos, instances, list(self.labels))

    @property
    def subsets(self) -> list[str]:
        return sorted(self.videos["subset"].dropna().unique())


def make_annotations(videos: pd.DataFrame, instances: pd.DataFrame, labels=None) -> Annotations:
    """Build :class:`Annotations` from tables with at least ``video, duration_s`` (videos) and
    ``video, t_start_s, t_end_s, label`` (instances); the other columns are filled in (``subset``
    from the video, ``filename`` as ``{video}.mp4``, ``num_frames`` from duration x fps)."""
    videos = videos.copy()
    instances = instances.copy()
    for column in ("video", "duration_s"):
        if column not in videos:
            raise AnnotationError(f"video table lacks column {column!r}")
    for column in ("video", "t_start_s", "t_end_s", "label"):
        if column not in instances:
            raise AnnotationError(f"instance table lacks column {column!r}")
    names = videos["video"].to_numpy()
    videos["video"] = normalize_ids(videos["video"])
    instances["video"] = normalize_ids(instances["video"])
    if "subset" not in videos:
        videos["subset"] = None
    for column in ("fps", "num_frames"):
        if column not in videos:
            videos[column] = np.nan
    if "filename" not in videos:
        videos["filename"] = None
    videos["filename"] = [
        f"{video}.mp4" if is_missing(name) else str(name)
        for video, name in zip(videos["video"], videos["filename"])
    ]
    videos["duration_s"] = videos["duration_s"].astype(float)
    videos["fps"] = videos["fps"].astype(float)
    # Frames of a constant-rate video: TSP's metadata has video-frames = round(duration x 30 fps).
    frames = pd.to_numeric(videos["num_frames"], errors="coerce").astype(float)
    derived = (videos["duration_s"] * videos["fps"]).round()
    videos["num_frames"] = frames.fillna(derived).astype("Int64")
    # A video given twice (also as x and v_x) must be the same video both times; identical rows
    # are one video.
    check_one_value_per_video(videos.assign(name=names).reset_index(drop=True), "video table",
                               ["subset", "duration_s", "fps", "num_frames", "filename"], "rows")
    videos = videos[VIDEO_COLUMNS].drop_duplicates("video").reset_index(drop=True)

    if "subset" not in instances:
        instances["subset"] = instances["video"].map(videos.set_index("video")["subset"])
    instances["t_start_s"] = pd.to_numeric(instances["t_start_s"], errors="coerce").astype(float)
    instances["t_end_s"] = pd.to_numeric(instances["t_end_s"], errors="coerce").astype(float)
    instances = instances[INSTANCE_COLUMNS].reset_index(drop=True)
    labels = label_mapping(instances["label"]) if labels is None else list(labels)
    return Annotations(videos, instances, labels)

def normalize_ids(values: pd.Series) -> pd.Series:
    """:func:`normalize_video_id` of each value, computed once per distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    ids = np.array([normalize_video_id(u) for u in uniques], dtype=object)
    return pd.Series(ids[codes], index=values.index, name=values.name)


def check_one_value_per_video(df: pd.DataFrame, path, columns, rows_are: str = "lines") -> None:
    """Raise when rows of one video disagree on a per-video column, naming both values and the
    rows (``df.index``: file lines, or table rows when ``rows_are="rows"``); ``df["name"]`` holds
    each row's id as written."""
    for column in columns:
        values = df[column].astype(object).where(df[column].notna(), "(empty)")
        counts = values.groupby(df["video"].to_numpy()).nunique()
        conflicting = counts.index[counts > 1]
        if len(conflicting):
            video = conflicting[0]
            rows = df[df["video"] == video]
            first = rows.index[0]
            other = rows.index[(values[rows.index] != values[first]).to_numpy()][0]
            raise AnnotationError(
                f"{path}: {rows_are} {first} and {other}: video {video!r} has two values of {column} "
                f"({values[first]!r} as {df.loc[first, 'name']!r}, {values[other]!r} as "
                f"{df.loc[other, 'name']!r}); give one value per video"
                + (f" ({len(conflicting)} videos conflict)" if len(conflicting) > 1 else "")
            )


def subset_from_filename(path) -> str | None:
    """The ActivityNet subset a file name names (``..._valid_...`` -> ``validation``), or None."""
    tokens = re.split(r"[^a-z0-9]+", Path(path).stem.lower())
    found = {_SUBSET_TOKENS[t] for t in tokens if t in _SUBSET_TOKENS}
    return found.pop() if len(found) == 1 else None



# ---------------------------------------------------------------------------------------------
# Summary


def summarize(ann: Annotations) -> pd.DataFrame:
    """One row per subset (and ``all`` when there are several): ``subset, videos, instances,
    classes, foreground_share, instances_per_video, mean_length_s``.

    ``foreground_share`` = total action time / total duration, where action time is the union of a
    video's instances clipped to ``[0, duration]`` (overlaps count once), over videos of known
    duration. ``instances_per_video`` is the mean over all videos of the subset.
    """
    df = ann.instances.merge(ann.videos[["video", "duration_s"]], on="video", how="left")
    df = df.sort_values(["video", "t_start_s"], kind="stable")
    start = df["t_start_s"].clip(lower=0.0)
    end = np.minimum(df["t_end_s"], df["duration_s"])
    # Union length: in start order, action i adds what lies past the latest end before it.
    latest_before = end.groupby(df["video"]).cummax().groupby(df["video"]).shift(1).fillna(0.0)
    df["covered_s"] = (end - np.maximum(start, latest_before)).clip(lower=0.0).fillna(0.0)

    def row(name, videos, instances):
        timed = videos["duration_s"].notna()
        known = instances["video"].isin(videos.loc[timed, "video"])
        total = videos.loc[timed, "duration_s"].sum()
        return {
            "subset": name, "videos": len(videos), "instances": len(instances),
            "classes": instances["label"].nunique(),
            "foreground_share": instances.loc[known, "covered_s"].sum() / total if total > 0 else math.nan,
            "instances_per_video": len(instances) / len(videos) if len(videos) else math.nan,
            "mean_length_s": (instances["t_end_s"] - instances["t_start_s"]).mean(),
        }

    rows = [
        row(name, ann.videos[ann.videos["subset"] == name], df[df["subset"] == name])
        for name in ann.subsets
    ]
    if len(rows) != 1:
        rows.append(row("all", ann.videos, df))
    return pd.DataFrame(rows)


def is_missing(value) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return bool(isinstance(value, float) and math.isnan(value))
    except TypeError:
        return False


def json_number(value):
    return None if is_missing(value) else float(value)
