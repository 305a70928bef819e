"""Action annotations: readers for the common formats, validation, label mappings, and TSP's segment
table.

One in-memory form for every format, :class:`Annotations`:

- ``videos``: one row per video, columns ``video, subset, duration_s, fps, num_frames, filename``
  (``fps`` / ``num_frames`` NaN when unknown; ``num_frames`` is a nullable integer);
- ``instances``: one row per action, columns ``video, t_start_s, t_end_s, label, subset``;
- ``labels``: the sorted class names, which are the label mapping (class index = position).

Readers (:func:`read_annotations` detects the format from the content):

- ActivityNet v1.3 JSON: ``{"database": {id: {subset, duration, [fps], annotations: [{segment,
  label}]}}}``;
- DETAD JSON (THUMOS14 ``*_extra_characteristics.json``): the same layout without ``duration`` and
  with per-instance ``length`` and ``coverage``;
- TSP ground-truth CSV (``video-name,t-start,t-end,action-label,video-duration,filename,fps,
  video-frames,temporal-region-label``): its ``Action`` rows are the instances;
- a custom CSV ``video,t_start,t_end,label`` (optional ``subset``) with a durations file.

Durations files (:func:`read_durations`): TSP's metadata CSVs (``filename,video-duration,fps,
video-frames``) or a CSV ``video,duration`` (optional ``fps``, ``num_frames``, ``filename``).

Video ids: ActivityNet ids are YouTube ids, and the ActivityNet downloader names files ``v_{id}``; a
JSON key and a file stem therefore name the same video with and without the prefix.
:func:`normalize_video_id` maps both to the bare id, which is what ``video`` holds everywhere.

What a reader refuses (:class:`AnnotationError`, one line naming the file, the line or video key,
and the field, with what would be valid): an empty or non-UTF-8 file; invalid JSON or a key given
twice in one JSON object; a database entry that is not an object, ``annotations`` that is not a
list, a ``segment`` that is not two numbers, a ``duration`` that is missing, null (allowed only when
a durations file replaces it), not a number or not > 0; a CSV row with fewer or more fields than the
header (pandas would pad a row cut short with NaN and the row would be lost later); a non-numeric
time, duration, fps or frame count; an empty video id; a ``temporal-region-label`` other than
``Action`` / ``No action`` (read without regard to case, so ``action`` and ``NO ACTION`` are fine).
Empty times and labels are not refused here: validation reports them row by row.

Duplicates, decided so that nothing disappears uncounted:

- one video under two spellings (``x`` and ``v_x``): with identical content (subset, duration, fps,
  frames, annotations; in a CSV, the per-video columns) it is read once and a warning names both
  spellings; with conflicting content it raises, naming both spellings and lines/keys and the field;
- the same video with conflicting per-video values in one CSV (durations, fps, frames, file name,
  subset) or a durations file: raises, naming both lines;
- an instance row repeated exactly (same video, times, label, subset): the readers keep it (the
  official ActivityNet evaluation counts every ground-truth row, and ActivityNet v1.3 has 19 such
  rows in validation and 30 in training); :func:`validate_instances` drops the repeats after the
  first and lists each in its report as ``"duplicate of an earlier row"`` (strict mode raises).

The segment table (:func:`build_segment_table`) is TSP's training/validation input: foreground rows
are the actions, background rows the gaps between them (see :func:`background_segments` for the exact
rule, checked against TSP's released files), in TSP's CSV format so existing files work as they are.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import warnings
from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tsplab.errors import InputError
from tsplab.presets import get_preset
from tsplab.runs import read_json, write_csv, write_json

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
    return sorted({str(label) for label in labels if not _is_missing(label)})


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
    videos["video"] = _normalize_ids(videos["video"])
    instances["video"] = _normalize_ids(instances["video"])
    if "subset" not in videos:
        videos["subset"] = None
    for column in ("fps", "num_frames"):
        if column not in videos:
            videos[column] = np.nan
    if "filename" not in videos:
        videos["filename"] = None
    videos["filename"] = [
        f"{video}.mp4" if _is_missing(name) else str(name)
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
    _check_one_value_per_video(videos.assign(name=names).reset_index(drop=True), "video table",
                               ["subset", "duration_s", "fps", "num_frames", "filename"], "rows")
    videos = videos[VIDEO_COLUMNS].drop_duplicates("video").reset_index(drop=True)

    if "subset" not in instances:
        instances["subset"] = instances["video"].map(videos.set_index("video")["subset"])
    instances["t_start_s"] = pd.to_numeric(instances["t_start_s"], errors="coerce").astype(float)
    instances["t_end_s"] = pd.to_numeric(instances["t_end_s"], errors="coerce").astype(float)
    instances = instances[INSTANCE_COLUMNS].reset_index(drop=True)
    labels = label_mapping(instances["label"]) if labels is None else list(labels)
    return Annotations(videos, instances, labels)


# ---------------------------------------------------------------------------------------------
# Readers


def read_annotations(path, *, durations=None, subset: str | None = None,
                     allow_unknown_durations: bool = False) -> Annotations:
    """Read an annotation file in any supported format (detected from its content).

    ``durations``: a durations file (see :func:`read_durations`), a DataFrame with ``video,
    duration_s`` or a ``{video: seconds}`` mapping. When given it describes the video files you have
    and takes precedence: it sets ``duration_s`` (and ``fps``, ``num_frames``, ``filename`` where it
    has them), and a video it lacks gets ``duration_s`` NaN (a warning says how many), which
    validation later reports as missing. Required in practice for the custom CSV. (With it, a JSON
    ``"duration": null`` is allowed, since the file's durations are not used.)
    ``allow_unknown_durations``: accept ``"duration": null`` without a durations file (NaN), for files
    tsplab wrote itself, where a video whose duration was unknown was already reported.

    ``subset``: keep only this subset (files that carry subsets), or name the subset of a file that
    does not (TSP CSVs, where it is otherwise inferred from the file name: ``valid`` -> ``validation``).

    Raises :class:`AnnotationError` naming the file, line or video and field for anything malformed
    (see the module docstring, "What a reader refuses").
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    text = _read_text(path, "an annotation file (ActivityNet/DETAD JSON, TSP ground-truth CSV or "
                            "custom CSV video,t_start,t_end,label)")
    if text.lstrip()[:1] in ("{", "["):
        ann = _read_json_annotations(path, text, subset, durations_given=durations is not None or allow_unknown_durations)
    else:
        ann = _read_csv_annotations(path, text, subset)
    if durations is not None:
        ann = _apply_durations(ann, durations)
    return ann


def _read_text(path: Path, expected: str) -> str:
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


# --- JSON ---


def _load_json(path: Path, text: str):
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


def _read_json_annotations(path: Path, text: str, subset: str | None, *, durations_given: bool) -> Annotations:
    data = _load_json(path, text)
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
    kind = _json_kind(path, database)
    parsed = {key: _json_entry(path, key, entry, kind, durations_given) for key, entry in database.items()}
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


def _json_kind(path: Path, database: dict) -> str:
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


def _json_entry(path: Path, key: str, entry: dict, kind: str, durations_given: bool) -> tuple[dict, list]:
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
    if kind == "activitynet":
        duration_s = _json_float(where, "duration", entry.get("duration"), "the video's duration in seconds",
                                 allow_null=durations_given)
        if duration_s is not None and not duration_s > 0:
            raise AnnotationError(f"{where}: 'duration' is {entry.get('duration')!r}; give the video's "
                                  "duration in seconds (a number > 0)")
        duration_s = math.nan if duration_s is None else duration_s
    else:
        duration_s = _detad_duration(where, annotations)
    if "filename" in entry:
        filename = entry["filename"]
    elif kind == "activitynet" and "youtube" in str(entry.get("url", "")):
        filename = f"v_{video}.mp4"  # how ActivityNet's YouTube downloader (and TSP) name files
    else:
        filename = f"{video}.mp4"
    fps = _json_float(where, "fps", entry.get("fps"), "frames per second", allow_null=True)
    num_frames = _json_float(where, "num_frames", entry.get("num_frames"), "a frame count", allow_null=True)
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
    times = [_json_float(f"{where}: annotations[{i}]", "segment", t, "[start, end] in seconds", shown=segment)
             for t in segment]
    label = annotation["label"]
    if isinstance(label, (list, dict, bool)):
        raise AnnotationError(f"{where}: annotations[{i}]: 'label' must be a class name, got {label!r}")
    return {"video": video, "t_start_s": times[0], "t_end_s": times[1], "label": label}


def _json_float(where: str, field: str, value, valid: str, *, allow_null: bool = False,
                shown=None) -> float | None:
    """``value`` as a float (None for a null when ``allow_null``); anything but a JSON number raises,
    naming ``where``, ``field`` and the value (``shown`` when given, e.g. the whole segment)."""
    if value is None and allow_null:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        shown = value if shown is None else shown
        raise AnnotationError(f"{where}: '{field}' is {json.dumps(shown)}; give {valid} as finite JSON numbers")
    return float(value)


def _detad_duration(where: str, annotations: list) -> float:
    # DETAD stores no duration; coverage = length / duration (DETAD's definition), so each instance
    # gives the duration back. The median guards against one rounded value; it agrees with TSP's
    # THUMOS14 metadata within 0.13 s.
    estimates = []
    for i, a in enumerate(annotations):
        length = _json_float(f"{where}: annotations[{i}]", "length", a.get("length"), "the length in seconds")
        coverage = _json_float(f"{where}: annotations[{i}]", "coverage", a.get("coverage"),
                               "the share of the video covered")
        if coverage:
            estimates.append(length / coverage)
    return float(np.median(estimates)) if estimates else math.nan


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
                      f"({', '.join(merged[:5])}); each is read once", stacklevel=4)
    return parsed


def _first_difference(a: tuple[dict, list], b: tuple[dict, list]) -> str | None:
    """The first field in which two parsed entries differ (None when they are the same video)."""
    for field in ("subset", "duration_s", "fps", "num_frames"):
        x, y = a[0][field], b[0][field]
        if not (x == y or (_is_missing(x) and _is_missing(y))):
            return f"{field.removesuffix('_s')} ({x!r} vs {y!r})"
    if a[1] != b[1]:
        return f"annotations ({len(a[1])} vs {len(b[1])} instances, or different segments/labels)"
    return None


# --- CSV ---


def _read_csv(path: Path, text: str | None = None) -> pd.DataFrame:
    """A CSV as strings, indexed by file line number (1-based, the header is line 1 or later).

    Only empty fields are missing (NaN): a video id or class name must never turn into NaN ("NA").
    Leading spaces of a field are dropped; blank lines are skipped. Every row must have one field per
    header column: pandas would silently pad a row cut short with NaN (or shift a row with one field
    too many into the index), so such rows raise, naming their lines.
    """
    if text is None:
        text = _read_text(path, "a CSV file with a header line")
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


def _numeric(df: pd.DataFrame, column: str, path: Path, valid: str = "a number") -> pd.Series:
    """Column ``column`` as floats (empty fields NaN); a non-empty field that is not a number raises,
    naming its line (``df`` is indexed by line, see :func:`_read_csv`)."""
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() & df[column].notna()
    if bad.any():
        lines = df.index[bad.to_numpy()].tolist()
        more = f" (also lines {lines[1:6]}{' ...' if len(lines) > 6 else ''})" if len(lines) > 1 else ""
        raise AnnotationError(
            f"{path}: line {lines[0]}: {column} is {df[column][bad].iloc[0]!r}, not a number; give {valid}{more}"
        )
    return values.astype(float)


def _check_positive(df: pd.DataFrame, columns, path, shown: dict | None = None) -> None:
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


def _required(df: pd.DataFrame, column: str, path: Path, valid: str) -> None:
    """Raise when ``column`` is empty on some row, naming the line."""
    empty = df[column].isna()
    if empty.any():
        lines = df.index[empty.to_numpy()].tolist()
        raise AnnotationError(f"{path}: line {lines[0]}: {column} is empty; give {valid}"
                              + (f" (also empty on lines {lines[1:6]})" if len(lines) > 1 else ""))


def _read_csv_annotations(path: Path, text: str, subset: str | None) -> Annotations:
    df = _read_csv(path, text)
    columns = set(df.columns)
    if set(SEGMENT_TABLE_COLUMNS) <= columns:
        return _from_tsp_table(df, path, subset)
    if set(CUSTOM_COLUMNS) <= columns:
        return _from_custom_csv(df, path, subset)
    if set(METADATA_COLUMNS) <= columns:
        raise AnnotationError(
            f"{path}: this is a TSP metadata CSV (durations, no actions); pass it as durations=..."
        )
    raise AnnotationError(
        f"{path}: unrecognised annotation file (columns {list(df.columns)}); expected ActivityNet or "
        f"DETAD JSON, a TSP ground-truth CSV ({','.join(SEGMENT_TABLE_COLUMNS)}) or a custom CSV "
        f"({','.join(CUSTOM_COLUMNS)}[,subset])"
    )


def subset_from_filename(path) -> str | None:
    """The ActivityNet subset a file name names (``..._valid_...`` -> ``validation``), or None."""
    tokens = re.split(r"[^a-z0-9]+", Path(path).stem.lower())
    found = {_SUBSET_TOKENS[t] for t in tokens if t in _SUBSET_TOKENS}
    return found.pop() if len(found) == 1 else None


def _resolve_file_subset(path: Path, subset: str | None) -> str:
    if subset is not None:
        return subset
    inferred = subset_from_filename(path)
    if inferred is None:
        raise AnnotationError(
            f"{path}: cannot tell the subset from the file name (no train/valid/test in it); "
            "pass subset='training' | 'validation' | 'testing'"
        )
    return inferred


def _region_labels(df: pd.DataFrame, path: Path) -> pd.Series:
    """``temporal-region-label`` as TSP spells it (``Action`` / ``No action``), read without regard
    to case or surrounding spaces; any other value raises, naming the line."""
    canonical = {FOREGROUND.lower(): FOREGROUND, BACKGROUND.lower(): BACKGROUND}
    raw = df["temporal-region-label"]
    regions = raw.astype(object).str.strip().str.lower().map(canonical)
    bad = regions.isna()
    if bad.any():
        lines = df.index[bad.to_numpy()].tolist()
        value = raw[bad].iloc[0]
        shown = "empty" if _is_missing(value) else repr(value)
        raise AnnotationError(
            f"{path}: line {lines[0]}: temporal-region-label is {shown}; give {FOREGROUND!r} or "
            f"{BACKGROUND!r} (any case)" + (f" (also lines {lines[1:6]})" if len(lines) > 1 else "")
        )
    return regions


def _video_ids(df: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """Normalised ids of ``column``; one warning names videos spelled two ways (``x`` / ``v_x``),
    which are read as one video."""
    _required(df, column, path, "the video id")
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
                      "prefix)", stacklevel=5)
    return pd.Series(ids[names], index=df.index, name=column)


def _normalize_ids(values: pd.Series) -> pd.Series:
    """:func:`normalize_video_id` of each value, computed once per distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    ids = np.array([normalize_video_id(u) for u in uniques], dtype=object)
    return pd.Series(ids[codes], index=values.index, name=values.name)


def _check_one_value_per_video(df: pd.DataFrame, path, columns, rows_are: str = "lines") -> None:
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


def _from_tsp_table(df: pd.DataFrame, path: Path, subset: str | None) -> Annotations:
    subset = _resolve_file_subset(path, subset)
    regions = _region_labels(df, path)
    df = df.assign(**{c: _numeric(df, c, path) for c in ("t-start", "t-end", "video-duration", "fps", "video-frames")})
    df["name"] = df["video-name"]
    df["video"] = _video_ids(df, "video-name", path)
    _check_positive(df, ["video-duration", "fps", "video-frames"], path)
    _check_one_value_per_video(df, path, ["video-duration", "fps", "video-frames", "filename"])
    videos = pd.DataFrame({
        "video": df["video"], "subset": subset, "duration_s": df["video-duration"], "fps": df["fps"],
        "num_frames": df["video-frames"], "filename": df["filename"],
    }).drop_duplicates("video")
    foreground = df[regions == FOREGROUND]
    instances = pd.DataFrame({
        "video": foreground["video"], "t_start_s": foreground["t-start"],
        "t_end_s": foreground["t-end"], "label": foreground["action-label"], "subset": subset,
    })
    return make_annotations(videos, instances)


def _from_custom_csv(df: pd.DataFrame, path: Path, subset: str | None) -> Annotations:
    df = df.assign(t_start=_numeric(df, "t_start", path, "the start in seconds"),
                   t_end=_numeric(df, "t_end", path, "the end in seconds"))
    df["name"] = df["video"]
    df["video"] = _video_ids(df, "video", path)
    if "subset" in df:
        _check_one_value_per_video(df, path, ["subset"])
    if "subset" in df and subset is not None:
        df = df[df["subset"] == subset]
        if df.empty:
            raise AnnotationError(f"{path}: no rows of subset {subset!r}")
    elif "subset" not in df:
        df = df.assign(subset=_resolve_file_subset(path, subset))
    instances = pd.DataFrame({
        "video": df["video"], "t_start_s": df["t_start"], "t_end_s": df["t_end"],
        "label": df["label"], "subset": df["subset"],
    })
    videos = pd.DataFrame({"video": df["video"], "subset": df["subset"], "duration_s": math.nan})
    return make_annotations(videos.drop_duplicates("video"), instances)


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
    _check_positive(df, ["duration_s", "fps", "num_frames"], path, {"duration_s": "duration"})
    _check_one_value_per_video(df, path, ["duration_s", "fps", "num_frames"],
                               "lines" if isinstance(path, Path) else "rows")
    return df[["video", "duration_s", "fps", "num_frames", "filename"]].drop_duplicates("video").reset_index(drop=True)


def _durations_from_csv(path: Path) -> pd.DataFrame:
    raw = _read_csv(path)
    if set(METADATA_COLUMNS) <= set(raw.columns):
        _required(raw, "filename", path, "the video file name")
        return pd.DataFrame({
            "video": raw["filename"], "duration_s": _numeric(raw, "video-duration", path, "seconds"),
            "fps": _numeric(raw, "fps", path, "frames per second"),
            "num_frames": _numeric(raw, "video-frames", path, "a frame count"), "filename": raw["filename"],
        })
    if {"video", "duration"} <= set(raw.columns):
        _required(raw, "video", path, "the video id")
        df = raw.rename(columns={"duration": "duration_s"})
        df["duration_s"] = _numeric(raw, "duration", path, "seconds")
        for column in ("fps", "num_frames"):
            if column in df:
                df[column] = _numeric(raw, column, path)
        return df
    raise AnnotationError(
        f"{path}: unrecognised durations file (columns {list(raw.columns)}); expected "
        f"{','.join(METADATA_COLUMNS)} (TSP metadata) or video,duration[,fps,num_frames,filename]"
    )


def _apply_durations(ann: Annotations, durations) -> Annotations:
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


def write_activitynet_json(ann: Annotations, path) -> Path:
    """Write ``ann`` as ActivityNet v1.3 JSON (``fps``, ``num_frames`` and ``filename`` included per
    video where known, so that :func:`read_annotations` gets the same annotations back). Each action
    also carries ``label_id``, its label's index in ``ann.labels`` (the label mapping): ActionFormer
    reads class indices from it and stops without it; tsplab's readers ignore it."""
    by_video = {video: group for video, group in ann.instances.groupby("video", sort=False)}
    index = {label: i for i, label in enumerate(ann.labels)}
    database = {}
    for row in ann.videos.itertuples(index=False):
        entry = {"subset": row.subset, "duration": _json_number(row.duration_s)}
        if not _is_missing(row.fps):
            entry["fps"] = float(row.fps)
        if not _is_missing(row.num_frames):
            entry["num_frames"] = int(row.num_frames)
        entry["filename"] = row.filename
        group = by_video.get(row.video)
        entry["annotations"] = [] if group is None else [
            {"segment": [float(s), float(e)], "label": label, "label_id": index[label]}
            for s, e, label in zip(group["t_start_s"], group["t_end_s"], group["label"])
        ]
        database[row.video] = entry
    return write_json(path, {"version": "VERSION 1.3", "taxonomy": [], "database": database})


# ---------------------------------------------------------------------------------------------
# Validation


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


# ---------------------------------------------------------------------------------------------
# The TSP segment table


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
    earlier action outlasts a later one, TSP's background row overlaps it (68 rows in its ActivityNet
    validation table). ``overlap_free=True`` starts each gap at the latest end so far instead, so
    background never overlaps an action.

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
    each defaulting to ``preset``'s (a :class:`tsplab.presets.DatasetPreset` or its name). Raises
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
    :class:`tsplab.presets.DatasetPreset` or its name: ActivityNet keeps gaps from 5 clips of 16
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


def write_validation_report(report: pd.DataFrame, path) -> Path:
    """Write a :func:`validate_instances` report as CSV (atomically)."""
    return write_csv(path, report)


def read_segment_table(path) -> pd.DataFrame:
    """A segment table CSV (TSP's or ours) with typed columns; ``action-label`` is NaN on background
    rows and ``temporal-region-label`` is spelled as TSP does (read without regard to case)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: segment table not found")
    df = _read_csv(path)
    if list(df.columns) != SEGMENT_TABLE_COLUMNS:
        raise AnnotationError(
            f"{path}: not a segment table; expected columns {SEGMENT_TABLE_COLUMNS}, got {list(df.columns)}"
        )
    _required(df, "video-name", path, "the video id")
    df["temporal-region-label"] = _region_labels(df, path)
    for column in ("t-start", "t-end", "video-duration", "fps"):
        df[column] = _numeric(df, column, path)
    df["video-frames"] = _numeric(df, "video-frames", path, "a frame count").round().astype("Int64")
    return df.reset_index(drop=True)


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


def _is_missing(value) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return bool(isinstance(value, float) and math.isnan(value))
    except TypeError:
        return False


def _json_number(value):
    return None if _is_missing(value) else float(value)
