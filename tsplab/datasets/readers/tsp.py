"""TSP's ground-truth CSV (``video-name,t-start,t-end,action-label,video-duration,filename,fps,
video-frames,temporal-region-label``), which is a segment table: its ``Action`` rows are the instances.
A ``temporal-region-label`` other than ``Action`` / ``No action`` (any case) is refused. The file holds
one subset, named by its file name (``valid`` -> ``validation``) unless given."""
from __future__ import annotations

import pandas as pd

from tsplab.datasets.model import FOREGROUND, Annotations, check_one_value_per_video, make_annotations
from tsplab.datasets.registry import register_reader
from tsplab.datasets.segments import region_labels
from tsplab.datasets.source import (AnnotationSource, check_positive, numeric, resolve_file_subset,
                                    video_ids)


@register_reader("tsp")
def read_tsp_csv(source: AnnotationSource) -> Annotations:
    """A TSP ground-truth CSV."""
    df, path, subset = source.table, source.path, source.subset
    subset = resolve_file_subset(path, subset)
    regions = region_labels(df, path)
    df = df.assign(**{c: numeric(df, c, path) for c in ("t-start", "t-end", "video-duration", "fps", "video-frames")})
    df["name"] = df["video-name"]
    df["video"] = video_ids(df, "video-name", path)
    check_positive(df, ["video-duration", "fps", "video-frames"], path)
    check_one_value_per_video(df, path, ["video-duration", "fps", "video-frames", "filename"])
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
