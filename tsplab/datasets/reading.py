"""The public entry point of the annotation readers: :func:`read_annotations` picks a reader (the
format asked for, a registered file suffix, or the built-in format the content shows) and applies a
durations file."""
from __future__ import annotations

from pathlib import Path

import tsplab.datasets.readers  # noqa: F401  (registers the built-in readers)
from tsplab.datasets.durations import apply_durations
from tsplab.datasets.model import (CUSTOM_COLUMNS, METADATA_COLUMNS, SEGMENT_TABLE_COLUMNS, AnnotationError,
                                   Annotations)
from tsplab.datasets.readers.json_database import json_database, json_format
from tsplab.datasets.registry import SUFFIXES, get_reader
from tsplab.datasets.source import AnnotationSource, read_text


def read_annotations(path, *, durations=None, subset: str | None = None,
                     allow_unknown_durations: bool = False, format: str | None = None) -> Annotations:
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

    ``format``: a registered reader's name (``tsplab.datasets.registry``); None detects it.

    Raises :class:`AnnotationError` naming the file, line or video and field for anything malformed
    (see ``tsplab.datasets.source``, "What a reader refuses").
    """
    path = Path(path)
    if format is not None:
        reader = get_reader(format)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    text = read_text(path, "an annotation file (ActivityNet/DETAD JSON, TSP ground-truth CSV or "
                           "custom CSV video,t_start,t_end,label)")
    source = AnnotationSource(path, text, subset, durations_given=durations is not None or allow_unknown_durations)
    if format is None:
        reader = get_reader(detect_format(source))
    ann = reader(source)
    if durations is not None:
        ann = apply_durations(ann, durations)
    return ann


def detect_format(source: AnnotationSource) -> str:
    """The format of ``source``: the one registered for its file suffix, else from its content
    (ActivityNet or DETAD JSON, TSP ground-truth or custom CSV); anything else raises, saying what
    was expected."""
    suffix = source.path.suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if source.is_json:
        return json_format(source.path, json_database(source))
    path, columns = source.path, set(source.table.columns)
    if set(SEGMENT_TABLE_COLUMNS) <= columns:
        return "tsp"
    if set(CUSTOM_COLUMNS) <= columns:
        return "custom"
    if set(METADATA_COLUMNS) <= columns:
        raise AnnotationError(
            f"{path}: this is a TSP metadata CSV (durations, no actions); pass it as durations=..."
        )
    raise AnnotationError(
        f"{path}: unrecognised annotation file (columns {list(source.table.columns)}); expected ActivityNet or "
        f"DETAD JSON, a TSP ground-truth CSV ({','.join(SEGMENT_TABLE_COLUMNS)}) or a custom CSV "
        f"({','.join(CUSTOM_COLUMNS)}[,subset])"
    )
