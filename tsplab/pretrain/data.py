"""The data of a pretraining run: segment tables, the background rule, the frame cache, loaders.

``prepare_data`` reads the annotations into TSP's segment tables (``segment_tables``: the training and
validation subsets, or a held-out share of the training videos with ``valid_holdout`` > 0), decodes
every video once into the frame cache, and leaves out (named in the run's data report) what cannot be
used: undecodable videos, annotated durations the video cannot hold, files outside the video folder.
``make_loader`` wraps a method's dataset in a DataLoader over ``tsplab.pretrain.sampling.EpochSampler``.

The background rule follows the dataset: ``min_background_clips=None`` takes the dataset preset's
(``tsplab.datasets.presets``), the preset being ``dataset`` or told from the annotations' video ids.
"""
from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tsplab.distributed import DistContext, barrier, broadcast_object
from tsplab.errors import InputError
from tsplab.pretrain.config import PretrainConfig, data_paths
from tsplab.pretrain.methods import PretrainData
from tsplab.pretrain.sampling import EpochSampler, holdout_videos
from tsplab.runs import resolve


def background_rule(config: PretrainConfig, video_ids, source="annotations") -> dict:
    """The background arguments of ``tsplab.datasets.build_segment_table`` for this run.

    ``min_background_clips=None`` (the default): the dataset preset's number of clips, the preset
    being ``config.dataset`` or told from ``video_ids`` (``tsplab.datasets.presets.infer_preset``: ActivityNet
    5, THUMOS14 1, synthetic 1), with the run's clip length and frame rate. A number of clips given
    without a dataset: that many clips, whatever the ids (a custom dataset's ids match no preset)."""
    from tsplab.datasets import normalize_video_id
    from tsplab.datasets.presets import infer_preset

    clip = dict(clip_length_frames=config.clip_length_frames, frame_rate=config.frame_rate)
    if config.min_background_clips is not None and not config.dataset:
        return {"min_background_s": config.min_background_clips * config.clip_length_frames / config.frame_rate}
    preset = config.dataset
    if not preset:
        ids = list(dict.fromkeys(normalize_video_id(v) for v in video_ids))
        try:
            preset = infer_preset(ids)
        except InputError:
            raise InputError(f"{source}: cannot tell the dataset from its video ids ({', '.join(ids[:3])}, ...) "
                             "for the background rule; set dataset (activitynet, thumos14, synthetic) or "
                             "min_background_clips (e.g. --set min_background_clips=5)") from None
    return {"preset": preset, **clip, "min_background_clips": config.min_background_clips}


def segment_tables(config: PretrainConfig, report: list | None = None) -> tuple[dict, list[str]]:
    """``({"train": table, "valid": table}, labels)``: the TSP segment tables of the training and
    validation subsets (``tsplab.datasets.build_segment_table``, background rule
    :func:`background_rule`) and the sorted action classes. Rows the tables drop go to ``report``.
    With ``valid_holdout`` > 0 the validation table is that share of the training subset's videos
    (``tsplab.pretrain.sampling.holdout_videos``), left out of the training table; the validation subset is
    not read."""
    from tsplab.datasets import build_segment_table, read_annotations

    paths = data_paths(config)
    ann_path, valid_path = paths["annotations"], paths["valid_annotations"]
    holdout = config.valid_holdout > 0
    ann = read_annotations(ann_path)
    valid_ann = ann if valid_path == ann_path or holdout else read_annotations(valid_path)
    ids = pd.concat([ann.videos["video"], valid_ann.videos["video"]])
    rule = background_rule(config, ids, source=ann_path)
    report = report if report is not None else []
    tables = {}
    splits = (("train", ann, config.train_subset),) + (() if holdout else (("valid", valid_ann, config.valid_subset),))
    for split, source, subset in splits:
        part = source.subset(subset) if subset in source.subsets else None
        if part is None or not len(part.videos):
            field = "train_subset" if split == "train" else "valid_subset"
            raise InputError(f"{ann_path if split == 'train' else valid_path}: no videos in subset {subset!r} "
                             f"({field}); subsets in the file: {', '.join(source.subsets) or 'none'}")
        tables[split], dropped = build_segment_table(part, **rule)
        for row in dropped.to_dict("records"):
            report.append({"split": split, "stage": "segment table", **report_record(row)})
    if holdout:
        try:
            tables["train"], tables["valid"] = holdout_videos(tables["train"], config.valid_holdout, config.seed)
        except ValueError as exc:
            raise InputError(f"valid_holdout={config.valid_holdout}: {exc}") from None
    return tables, list(ann.labels)


def pretrain_split(data: PretrainData) -> pd.DataFrame:
    """``video, split`` ("train" / "valid") of every video of a run's segment tables: the run folder's
    ``pretrain_split.csv``, which says on which videos ``best.pt`` was chosen."""
    rows = [pd.DataFrame({"video": sorted(table["video-name"].astype(str).unique()), "split": split})
            for split, table in (("train", data.train_table), ("valid", data.valid_table))]
    return pd.concat(rows, ignore_index=True)


def prepare_data(config: PretrainConfig, dist: DistContext | None = None,
                 report: list | None = None) -> PretrainData:
    """Segment tables of the training and validation subsets (:func:`segment_tables`), the label
    list, and the frame cache (built by the first process of each node for every video of both
    tables, reused by later runs and methods).

    Videos whose frames cannot be decoded are left out (named in ``report`` with the error)."""
    report = report if report is not None else []
    tables, labels = segment_tables(config, report)
    cache = _frame_cache(config, dist, tables, report)
    return PretrainData(train_table=tables["train"], valid_table=tables["valid"], labels=labels,
                        video_dir=data_paths(config)["video_dir"], frames=cache,
                        clip_length_frames=config.clip_length_frames, frame_rate=config.frame_rate)


def _frame_cache(config: PretrainConfig, dist: DistContext | None, tables: dict, report: list):
    """The frame cache of every video of ``tables``; videos that cannot be decoded are removed
    from ``tables`` (in place) and named in ``report``."""
    from tsplab.video import FrameCache

    video_dir = data_paths(config)["video_dir"]
    filenames = sorted(set(tables["train"]["filename"]) | set(tables["valid"]["filename"]))
    check_inside_folder(video_dir, filenames, data_paths(config)["annotations"])
    cache_root = resolve(config.frame_cache_dir) if config.frame_cache_dir else resolve(config.run_dir) / "frame_cache"
    cache = FrameCache(cache_root, config.frame_rate, config.resize_short_side)
    # One process per node decodes (the other processes would only repeat its work); every process
    # then takes the failures that process 0 found.
    builds = dist is None or dist.local_rank == 0
    built = cache.build([video_dir / f for f in filenames], workers=max(1, config.workers)) if builds else None
    barrier()
    built = broadcast_object(built)
    failed = built[built["status"] == "failed"]
    if len(failed):
        warnings.warn(f"{len(failed)} videos could not be decoded and are left out of pretraining, "
                      f"e.g. {failed['video'].iat[0]}: {failed['error'].iat[0]}")
        bad = set(failed["video"])
        for row in failed.to_dict("records"):
            report.append({"split": "", "stage": "frame cache", "video": row["video"], "reason": row["error"]})
        _leave_out(tables, bad)
    _leave_out_impossible_durations(tables, built, config.frame_rate, report)
    return cache


def _leave_out(tables: dict, stems) -> None:
    """Remove the videos whose file stems are in ``stems`` from every table (in place)."""
    for split in tables:
        names = tables[split]["filename"].map(lambda f: Path(f).stem)
        tables[split] = tables[split][~names.isin(set(stems))].reset_index(drop=True)


def check_inside_folder(folder: Path, filenames, source) -> None:
    """Every video file named by the annotations lies inside ``folder`` (``--video-dir``): an id or
    file name like ``../../outside/secret`` or an absolute path would open, decode and cache a file
    elsewhere. ``InputError`` naming ``source`` and the first such name. Compared lexically, so
    that a video that is a symbolic link inside the folder stays allowed."""
    root = os.path.normpath(folder)
    for name in filenames:
        path = os.path.normpath(os.path.join(root, str(name)))
        if os.path.isabs(str(name)) or not path.startswith(root + os.sep):
            raise InputError(f"{source}: video {str(name)!r} is not a file inside the video folder {folder}; "
                             "video ids and file names must not hold '..' or absolute paths")


# An annotated duration this much longer than the decoded video (seconds, and share of the video)
# cannot be the video's: its clips past the end would all repeat the last frame.
_DURATION_SLACK_S, _DURATION_SLACK_SHARE = 2.0, 0.1


def _leave_out_impossible_durations(tables: dict, built: pd.DataFrame, frame_rate: float, report: list) -> None:
    """Leave out (named in ``report`` and a warning) every video whose annotated duration is longer
    than its decoded frames allow, beyond the slack above."""
    frames = built.set_index("video")["frames"]
    bad = {}
    for split in tables:
        table = tables[split]
        for name, duration in zip(table["filename"], table["video-duration"]):
            stem = Path(name).stem
            if stem in frames.index and frames[stem] > 0:
                lasts = frames[stem] / frame_rate
                if duration > lasts + max(_DURATION_SLACK_S, _DURATION_SLACK_SHARE * lasts):
                    bad[stem] = (f"annotated duration {duration:g} s, but the video lasts {lasts:.3g} s "
                                 f"({frames[stem]} frames at {frame_rate:g} fps); fix the duration")
    if bad:
        first = next(iter(bad))
        warnings.warn(f"{len(bad)} video(s) have an annotated duration longer than the video and are left out "
                      f"of pretraining (listed in the data report), e.g. {first}: {bad[first]}")
        report += [{"split": "", "stage": "durations", "video": v, "reason": r} for v, r in bad.items()]
        _leave_out(tables, bad)


def report_record(row: dict) -> dict:
    """One ``data_report`` row from a segment-table row (sampling) or a validation-report row
    (``tsplab.datasets.validate_instances``: ``video, t_start_s, t_end_s, label, problem, action``)."""
    reason = row.get("reason") or ": ".join(str(row[k]) for k in ("action", "problem") if row.get(k))
    return {"video": row.get("video-name", row.get("video", "")), "reason": reason,
            "t-start": row.get("t-start", row.get("t_start_s")), "t-end": row.get("t-end", row.get("t_end_s")),
            "action-label": row.get("action-label", row.get("label")),
            "temporal-region-label": row.get("temporal-region-label")}


def _worker_init(worker_id: int) -> None:
    # Items draw nothing at random (their randomness is keyed by (seed, epoch, index)); seeding is a
    # guard for any library that does. One thread per worker: the training process owns the cores.
    info = torch.utils.data.get_worker_info()
    random.seed(info.seed)
    np.random.seed(info.seed % 2**32)
    torch.set_num_threads(1)


def make_loader(dataset, config: PretrainConfig, dist: DistContext, *, train: bool):
    sampler = EpochSampler(len(dataset), seed=config.seed, shuffle=train,
                           balance_groups=getattr(dataset, "balance_groups", None),
                           num_replicas=dist.world_size, rank=dist.rank, pad=train)
    workers = int(config.workers)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=config.batch_size, sampler=sampler, num_workers=workers,
        pin_memory=dist.device.type == "cuda", drop_last=train and len(sampler) >= config.batch_size,
        persistent_workers=workers > 0, worker_init_fn=_worker_init if workers > 0 else None,
        generator=torch.Generator().manual_seed(config.seed))
    return loader, sampler
