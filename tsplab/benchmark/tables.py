"""What a benchmark's plan and folder say in tables: the ActivityNet v1.3 annotation dict, the
instance table with DETAD length buckets, the summaries written into the manifests and read back
from a generated folder.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tsplab.benchmark.config import LENGTH_BUCKETS, LENGTH_EDGES_S, SyntheticConfig, get_config
from tsplab.benchmark.dials import foreground_mask
from tsplab.benchmark.layout import BENCHMARK_MANIFEST, SOURCE_DIR, SOURCE_MANIFEST, SUBSETS
from tsplab.benchmark.plan import VideoPlan, class_names, source_class_names, source_scene_of
from tsplab.errors import InputError
from tsplab.runs import read_json, resolve

if TYPE_CHECKING:  # pandas is imported lazily: encoding workers never need it
    import pandas as pd


def label_names(config, plans: list[VideoPlan]) -> list[str]:
    """The label mapping of ``plans``: the source set's names for source plans, else the target's."""
    return source_class_names(config) if any(p.source for p in plans) else class_names(config)


def activitynet_json(config, plans: list[VideoPlan]) -> dict:
    """The ActivityNet v1.3-format annotation dict of a plan (the target's or the source set's)."""
    names = label_names(config, plans)
    database = {}
    for p in plans:
        database[p.video] = {
            "subset": p.subset,
            # Exact frame / fps values, not rounded: a gap of exactly one clip must still measure
            # at least one clip length when a segment table thresholds it.
            "duration": p.num_frames / config.fps,
            "fps": config.fps,
            "num_frames": p.num_frames,
            "resolution": f"{config.frame_size}x{config.frame_size}",
            "url": "",
            "annotations": [{"segment": [s / config.fps, e / config.fps],
                             "label": names[p.label_of(i)], "label_id": p.label_of(i)}
                            for i, (s, e, _) in enumerate(p.instances)],
        }
    version = "tsplab synthetic benchmark" + (": trimmed source set" if any(p.source for p in plans) else "")
    return {"version": version,
            "taxonomy": [{"nodeName": n, "nodeId": i} for i, n in enumerate(names)],
            "database": database}


def length_buckets(lengths_s) -> pd.Categorical:
    """DETAD-style length bucket (XS..XL: the synthetic dataset preset's length buckets,
    ``LENGTH_EDGES_S``) of each instance length."""
    import pandas as pd

    return pd.cut(np.asarray(lengths_s, dtype=float), list(LENGTH_EDGES_S), labels=list(LENGTH_BUCKETS), right=True)


def instance_table(config, plans: list[VideoPlan]) -> pd.DataFrame:
    """One row per instance: video, subset, label, t_start_s, t_end_s, motion_level, length_s,
    bucket."""
    import pandas as pd

    names = label_names(config, plans)
    rows = [{"video": p.video, "subset": p.subset, "label": names[p.label_of(i)],
             "t_start_s": s / config.fps, "t_end_s": e / config.fps, "motion_level": p.motion_level}
            for p in plans for i, (s, e, _) in enumerate(p.instances)]
    table = pd.DataFrame(rows, columns=["video", "subset", "label", "t_start_s", "t_end_s",
                                        "motion_level"])
    table["length_s"] = table["t_end_s"] - table["t_start_s"]
    table["bucket"] = length_buckets(table["length_s"])
    return table


def summarize(config, plans: list[VideoPlan]) -> dict:
    """Counts per subset, foreground share, scene-class agreement and instances per length bucket."""
    config = get_config(config)
    inst = instance_table(config, plans)
    bucket_names = list(inst["bucket"].cat.categories)  # XS..XL, in order
    out = {}
    for subset in SUBSETS:
        ps = [p for p in plans if p.subset == subset]
        frames = sum(p.num_frames for p in ps)
        fg = sum(int(foreground_mask(p.num_frames, p.instances).sum()) for p in ps)  # overlaps once
        sub = inst[inst["subset"] == subset]
        out[subset] = {
            "videos": len(ps),
            "instances": len(sub),
            "hours": round(frames / config.fps / 3600, 4),
            "foreground_share": round(fg / frames, 4) if frames else 0.0,
            "scene_matches_class": round(float(np.mean([p.scene_class == p.label for p in ps])), 4)
            if ps else 0.0,
            "instances_per_bucket": {b: int(n) for b, n in
                                     sub["bucket"].value_counts().reindex(bucket_names).items()},
        }
    return out


def summarize_source(config, plans: list[VideoPlan]) -> dict:
    """Per subset of the source set: videos, classes, hours, shortest and longest video (frames) and
    the share of videos whose scene is their class's own (shared with one other class)."""
    out = {}
    for subset in SUBSETS:
        ps = [p for p in plans if p.subset == subset]
        out[subset] = {
            "videos": len(ps),
            "classes": len({p.label for p in ps}),
            "hours": round(sum(p.num_frames for p in ps) / config.fps / 3600, 4),
            "min_frames": min((p.num_frames for p in ps), default=0),
            "max_frames": max((p.num_frames for p in ps), default=0),
            "scene_matches_class": round(float(np.mean([p.scene_class == source_scene_of(p.label)
                                                        for p in ps])), 4)
            if ps else 0.0,
        }
    return out


def read_benchmark_config(folder) -> tuple[SyntheticConfig, int]:
    """(config, seed) of a generated benchmark folder, e.g. to call ``frames_for_video`` on it."""
    meta = read_json(resolve(folder) / BENCHMARK_MANIFEST)
    return SyntheticConfig.from_dict(meta["config"]), int(meta["seed"])



def benchmark_summary(folder) -> pd.DataFrame:
    """One row per subset of a generated benchmark: videos, instances, hours, foreground share, share
    of videos whose scene matches their class, and instances per length bucket (XS..XL)."""
    import pandas as pd

    meta = read_json(resolve(folder) / BENCHMARK_MANIFEST)
    if not meta.get("complete"):
        raise InputError(f"{resolve(folder)}: benchmark not complete (generation was interrupted); "
                         "run generate_benchmark again to finish it")
    rows = []
    for subset in SUBSETS:
        s = dict(meta["summary"][subset])
        buckets = s.pop("instances_per_bucket")
        rows.append({"subset": subset, **s, **buckets})
    return pd.DataFrame(rows)


def source_summary(folder) -> pd.DataFrame:
    """One row per subset of a benchmark's source set (``folder``: the benchmark): videos, classes,
    hours, shortest and longest video in frames, share of videos whose scene matches their class."""
    import pandas as pd

    path = resolve(folder) / SOURCE_DIR / SOURCE_MANIFEST
    meta = read_json(path) if path.is_file() else {}
    if not meta.get("complete"):
        raise InputError(f"{path}: source set missing or not complete; run generate_benchmark (or "
                         "generate_source) on the benchmark to write it")
    return pd.DataFrame([{"subset": subset, **meta["summary"][subset]} for subset in SUBSETS])
