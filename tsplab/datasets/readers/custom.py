"""A custom CSV ``video,t_start,t_end,label`` (optional ``subset``; without it the file name names
the subset), read with a durations file (``video,duration``) since it carries no durations."""
from __future__ import annotations

import math

import pandas as pd

from tsplab.datasets.model import AnnotationError, Annotations, check_one_value_per_video, make_annotations
from tsplab.datasets.registry import register_reader
from tsplab.datasets.source import AnnotationSource, numeric, resolve_file_subset, video_ids


@register_reader("custom")
def read_custom_csv(source: AnnotationSource) -> Annotations:
    """A TSP ground-truth CSV."""
    df, path, subset = source.table, source.path, source.subset
    df = df.assign(t_start=numeric(df, "t_start", path, "the start in seconds"),
                   t_end=numeric(df, "t_end", path, "the end in seconds"))
    df["name"] = df["video"]
    df["video"] = video_ids(df, "video", path)
    if "subset" in df:
        check_one_value_per_video(df, path, ["subset"])
    if "subset" in df and subset is not None:
        df = df[df["subset"] == subset]
        if df.empty:
            raise AnnotationError(f"{path}: no rows of subset {subset!r}")
    elif "subset" not in df:
        df = df.assign(subset=resolve_file_subset(path, subset))
    instances = pd.DataFrame({
        "video": df["video"], "t_start_s": df["t_start"], "t_end_s": df["t_end"],
        "label": df["label"], "subset": df["subset"],
    })
    videos = pd.DataFrame({"video": df["video"], "subset": df["subset"], "duration_s": math.nan})
    return make_annotations(videos.drop_duplicates("video"), instances)
