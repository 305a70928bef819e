"""ActivityNet v1.3 JSON: ``{"database": {id: {subset, duration, [fps], annotations: [{segment,
label}]}}}``, read and written."""
from __future__ import annotations

import math
from pathlib import Path

from tsplab.datasets.model import AnnotationError, Annotations, is_missing, json_number
from tsplab.datasets.readers.json_database import JsonLayout, json_float, read_database
from tsplab.datasets.registry import register_reader
from tsplab.datasets.source import AnnotationSource
from tsplab.runs import write_json


def _duration(where: str, entry: dict, durations_given: bool) -> float:
    """The entry's ``duration`` (NaN for a null, allowed only when durations come from elsewhere)."""
    duration_s = json_float(where, "duration", entry.get("duration"), "the video's duration in seconds",
                            allow_null=durations_given)
    if duration_s is not None and not duration_s > 0:
        raise AnnotationError(f"{where}: 'duration' is {entry.get('duration')!r}; give the video's "
                              "duration in seconds (a number > 0)")
    return math.nan if duration_s is None else duration_s


ACTIVITYNET = JsonLayout(_duration, youtube_filenames=True)


@register_reader("activitynet")
def read_activitynet(source: AnnotationSource) -> Annotations:
    """An ActivityNet v1.3 JSON file (also what tsplab writes: ``write_activitynet_json``)."""
    return read_database(source, ACTIVITYNET)


def write_activitynet_json(ann: Annotations, path) -> Path:
    """Write ``ann`` as ActivityNet v1.3 JSON (``fps``, ``num_frames`` and ``filename`` included per
    video where known, so that :func:`read_annotations` gets the same annotations back). Each action
    also carries ``label_id``, its label's index in ``ann.labels`` (the label mapping): ActionFormer
    reads class indices from it and stops without it; tsplab's readers ignore it."""
    by_video = {video: group for video, group in ann.instances.groupby("video", sort=False)}
    index = {label: i for i, label in enumerate(ann.labels)}
    database = {}
    for row in ann.videos.itertuples(index=False):
        entry = {"subset": row.subset, "duration": json_number(row.duration_s)}
        if not is_missing(row.fps):
            entry["fps"] = float(row.fps)
        if not is_missing(row.num_frames):
            entry["num_frames"] = int(row.num_frames)
        entry["filename"] = row.filename
        group = by_video.get(row.video)
        entry["annotations"] = [] if group is None else [
            {"segment": [float(s), float(e)], "label": label, "label_id": index[label]}
            for s, e, label in zip(group["t_start_s"], group["t_end_s"], group["label"])
        ]
        database[row.video] = entry
    return write_json(path, {"version": "VERSION 1.3", "taxonomy": [], "database": database})

