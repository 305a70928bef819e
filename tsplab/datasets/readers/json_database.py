"""The JSON layout ActivityNet v1.3 and DETAD share: ``{"database": {id: {subset, [duration], [fps],
annotations: [{segment, label}]}}}``. The layouts differ in where a video's duration comes from
(:class:`JsonLayout`); everything else (type checks, ``x`` / ``v_x`` spellings, subsets) is here.

Duplicates, decided so that nothing disappears uncounted: one video under two keys (``x`` and ``v_x``)
with identical content (subset, duration, fps, frames, annotations) is read once and a warning names
both keys; with conflicting content it raises, naming both keys and the field that differs.
"""
from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tsplab.datasets.model import (INSTANCE_COLUMNS, SUBSETS, VIDEO_COLUMNS, AnnotationError, Annotations,
                                   is_missing, make_annotations, normalize_video_id)
from tsplab.datasets.source import AnnotationSource


@dataclass(frozen=True)
class JsonLayout:
    """What differs between the JSON layouts: ``duration(where, entry, durations_given)`` gives a
    video's duration in seconds (NaN when unknown); ``youtube_filenames`` names the files of entries
    with a YouTube ``url`` as ActivityNet's downloader does (``v_{id}.mp4``)."""

    duration: Callable[[str, dict, bool], float]
    youtube_filenames: bool = False


def read_database(source: AnnotationSource, layout: JsonLayout) -> Annotations:
    """The videos and instances of ``source``'s database, read with ``layout``."""
    path, subset = source.path, source.subset
    database = json_database(source)
    parsed = {key: _json_entry(path, key, entry, layout, source.durations_given)
              for key, entry in database.items()}
    parsed = _merge_json_spellings(path, parsed)
    video_rows, instance_rows = [], []
    for video_row, rows in parsed.values():
        entry_subset = video_row["subset"]
        if subset is not None and entry_subset is not None and entry_subset != subset:
            continue
        entry_subset = entry_subset if entry_subset is not None else subset
        video_rows.append({**video_row, "subset": entry_subset})
        instance_rows += [{**row, "subset": entry_subset} for row in rows]
    if subset is not None and not video_rows:
        subsets = sorted({str(e.get("subset")) for e in database.values()})
        raise AnnotationError(f"{path}: no videos in subset {subset!r}; the file has {subsets}")
    videos = pd.DataFrame(video_rows, columns=VIDEO_COLUMNS)
    instances = pd.DataFrame(instance_rows, columns=INSTANCE_COLUMNS)
    return make_annotations(videos, instances)


def json_database(source: AnnotationSource) -> dict:
    """``source``'s ``database`` object, each entry checked to be an object."""
    path, data = source.path, source.json
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise AnnotationError(
            f"{path}: not a recognised annotation JSON; expected ActivityNet v1.3 or DETAD layout "
            '{"database": {video_id: {"subset", "duration", "annotations": [{"segment", "label"}]}}}'
        )
    for key, entry in database.items():
        if not isinstance(entry, dict):
            raise AnnotationError(
                f"{path}: database[{key!r}]: a video entry must be an object "
                f'{{"subset", "duration", "annotations": [...]}}, got a {type(entry).__name__}'
            )
    return database


def json_format(path: Path, database: dict) -> str:
    """``activitynet`` (every entry has ``duration``) or ``detad`` (durations from length/coverage)."""
    entries = list(database.values())
    if not entries or all("duration" in e for e in entries):
        return "activitynet"
    annotations = [e.get("annotations") for e in entries]
    if all(isinstance(a, list) for a in annotations) and all(
        isinstance(x, dict) and "coverage" in x and "length" in x for a in annotations for x in a
    ):
        return "detad"
    missing = [k for k, e in database.items() if "duration" not in e][:5]
    raise AnnotationError(
        f"{path}: videos {missing} have no 'duration' (and the annotations lack DETAD's "
        "'length'/'coverage' to derive it); give each video its duration in seconds"
    )


def _json_entry(path: Path, key: str, entry: dict, layout: JsonLayout, durations_given: bool) -> tuple[dict, list]:
    """One database entry as (video row, instance rows); every field is type-checked."""
    where = f"{path}: database[{key!r}]"
    video = normalize_video_id(key)
    if not video:
        raise AnnotationError(f"{where}: the video id is empty; give each video its id (the file name "
                              "without extension)")
    entry_subset = entry.get("subset")
    if entry_subset is not None and not isinstance(entry_subset, str):
        raise AnnotationError(f"{where}: 'subset' must be a string ({' | '.join(SUBSETS)}), got {entry_subset!r}")
    annotations = entry.get("annotations", [])
    if annotations is None:
        annotations = []
    if not isinstance(annotations, list):
        raise AnnotationError(f"{where}: 'annotations' must be a list of {{\"segment\": [start, end], "
                              f"\"label\"}}, got a {type(annotations).__name__}")
    rows = [_json_instance(where, i, a, video) for i, a in enumerate(annotations)]
    duration_s = layout.duration(where, entry, durations_given)
    if "filename" in entry:
        filename = entry["filename"]
    elif layout.youtube_filenames and "youtube" in str(entry.get("url", "")):
        filename = f"v_{video}.mp4"  # how ActivityNet's YouTube downloader (and TSP) name files
    else:
        filename = f"{video}.mp4"
    fps = json_float(where, "fps", entry.get("fps"), "frames per second", allow_null=True)
    num_frames = json_float(where, "num_frames", entry.get("num_frames"), "a frame count", allow_null=True)
    for field, value in (("fps", fps), ("num_frames", num_frames)):
        if value is not None and not value > 0:
            raise AnnotationError(f"{where}: '{field}' is {entry.get(field)!r}; give a number > 0 (or leave "
                                  "it out when unknown)")
    video_row = {
        "video": video, "subset": entry_subset, "duration_s": duration_s,
        "fps": math.nan if fps is None else fps, "num_frames": math.nan if num_frames is None else num_frames,
        "filename": filename,
    }
    return video_row, rows


def _json_instance(where: str, i: int, annotation, video: str) -> dict:
    segment = annotation.get("segment") if isinstance(annotation, dict) else None
    if not isinstance(segment, (list, tuple)) or len(segment) != 2 or "label" not in annotation:
        raise AnnotationError(
            f"{where}: annotations[{i}] needs 'segment': [start, end] and 'label', got {annotation!r}"
        )
    times = [json_float(f"{where}: annotations[{i}]", "segment", t, "[start, end] in seconds", shown=segment)
             for t in segment]
    label = annotation["label"]
    if isinstance(label, (list, dict, bool)):
        raise AnnotationError(f"{where}: annotations[{i}]: 'label' must be a class name, got {label!r}")
    return {"video": video, "t_start_s": times[0], "t_end_s": times[1], "label": label}


def json_float(where: str, field: str, value, valid: str, *, allow_null: bool = False,
               shown=None) -> float | None:
    """``value`` as a float (None for a null when ``allow_null``); anything but a JSON number raises,
    naming ``where``, ``field`` and the value (``shown`` when given, e.g. the whole segment)."""
    if value is None and allow_null:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        shown = value if shown is None else shown
        raise AnnotationError(f"{where}: '{field}' is {json.dumps(shown)}; give {valid} as finite JSON numbers")
    return float(value)


def _merge_json_spellings(path: Path, parsed: dict) -> dict:
    """Entries whose keys name the same video (``x`` and ``v_x``): identical ones are merged (one
    warning names them), differing ones raise, naming both keys and the field that differs."""
    by_video: dict[str, list[str]] = {}
    for key, (video_row, _) in parsed.items():
        by_video.setdefault(video_row["video"], []).append(key)
    merged = []
    for video, keys in by_video.items():
        if len(keys) < 2:
            continue
        first = keys[0]
        for other in keys[1:]:
            field = _first_difference(parsed[first], parsed[other])
            if field is not None:
                raise AnnotationError(
                    f"{path}: database keys {first!r} and {other!r} name the same video {video!r} "
                    f"(ActivityNet's v_ file prefix) but differ in {field}; keep one entry"
                )
            del parsed[other]
        merged.append(f"{'/'.join(keys)}")
    if merged:
        warnings.warn(f"{path}: {len(merged)} videos appear under two keys with identical entries "
                      f"({', '.join(merged[:5])}); each is read once", stacklevel=5)
    return parsed


def _first_difference(a: tuple[dict, list], b: tuple[dict, list]) -> str | None:
    """The first field in which two parsed entries differ (None when they are the same video)."""
    for field in ("subset", "duration_s", "fps", "num_frames"):
        x, y = a[0][field], b[0][field]
        if not (x == y or (is_missing(x) and is_missing(y))):
            return f"{field.removesuffix('_s')} ({x!r} vs {y!r})"
    if a[1] != b[1]:
        return f"annotations ({len(a[1])} vs {len(b[1])} instances, or different segments/labels)"
    return None

