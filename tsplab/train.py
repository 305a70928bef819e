"""The one pretraining loop: any method of ``tsplab.methods``, one process or many (torchrun + DDP).

Optimisation follows TSP §4.1 (and its ``train/train.py``): SGD, momentum 0.9, weight decay 0.005,
one learning rate per module (stem frozen, backbone 1e-4, heads ``fc_lr``), linear warm-up over the
first 2 epochs (per iteration, from 1e-5 of the rate), decay x0.01 at epochs 4 and 6, 8 epochs, batch
32 clips per process, learning rates scaled linearly with the number of processes; AMP on CUDA only
(bf16 where supported, else fp16 with a gradient scaler; never on the CPU, where reduced precision is
far slower). Validation after every epoch: clip accuracy per head; the epoch with the best average
accuracy is kept as ``best.pt`` (TSP's model selection), on the validation subset or, with
``valid_holdout`` > 0, on that share of the training videos held out of training. ``lr_schedule="plateau"`` replaces the step
decay by a decay x``lr_gamma`` when the validation loss stops improving (PAL §4.1; ``WarmupPlateau``,
stepped once per epoch, its state in the checkpoint's scheduler state); the warm-up applies to both.

The loop (the layout of torchvision's video-classification reference): ``pretrain`` checks
everything, ``_pretrain`` drives the epochs over ``train_one_epoch`` (the optimizer steps),
``evaluate`` (the validation pass) and ``save_checkpoint`` / ``restore_checkpoint``.

Settings: ``tsplab.pretrain_config.PretrainConfig`` (the loop's fields plus the chosen method's
options), made, read back and checked there.

Run folder ``<run_dir>/pretrain/<output_name or method>/``: ``config.json``, ``metrics.csv`` (one row
per epoch), ``checkpoint.pt`` (the latest epoch: model, optimizer, scheduler, scaler, epoch, RNG
states, config, method state), ``best.pt`` (``{"model", "config", "epoch", "metrics"}``; the backbone
under ``features.``, the layout ``tsplab.backbones.load_backbone_weights`` and feature extraction
read), ``data_report.csv`` (every segment or video left out, with the reason), ``pretrain_split.csv`` (the
videos trained and validated on), and the method's own
files (``run_files``: TSP's frozen GVFs ``gvf_initial_max.h5``). Only process 0 writes.

Nothing is lost on bad input: settings, files, initial weights and data are checked before the run
folder is touched (``check_config``, ``check_inputs``; ``InputError`` names the field or file). A
fresh run in a folder holding an earlier run's results moves them to ``previous/`` and deletes them
once it has written its first checkpoint (moved back if it fails before; see ``_PreviousRun``).
Checkpoints are read with torch's safe loader only (``tsplab.backbones.load_checkpoint_file``).

Exact resume: every random draw of an epoch is seeded from ``(seed, epoch, rank)`` (clip positions,
balanced subsets and order, crops and flips), DataLoader workers do no random work, and checkpoints
hold everything else, so on the CPU a run killed after epoch k and resumed ends with bit-identical
weights to one that was never interrupted.

The background rule follows the dataset: ``min_background_clips=None`` takes the dataset preset's
(``tsplab.datasets.presets``: ActivityNet 5 clips, THUMOS14 1, the synthetic benchmark 1), the preset being
``dataset`` or told from the annotations' video ids.
"""
from __future__ import annotations

import bisect
import contextlib
import dataclasses
import math
import numbers
import os
import random
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from tsplab.distributed import DistContext, all_reduce_sum, barrier, broadcast_object, cleanup, init_distributed
from tsplab.errors import InputError
from tsplab.methods import METHODS, PretrainData, TrainContext, get_method
from tsplab.pretrain_config import (PretrainConfig, check_config, check_inputs, config_from_dict, config_values,
                                    data_paths, plain_value, resolve_weights)
from tsplab.runs import PreviousRun, atomic_path, read_json, resolve, save_config, write_csv

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
METRICS = "metrics.csv"
DATA_REPORT = "data_report.csv"
SPLIT = "pretrain_split.csv"
















































def _load_initial_weights(config: PretrainConfig):
    """``config.weights`` read and checked against the backbone before any data is prepared (a
    typo in a path must not wait for the frame cache): ``None`` (random), or the backbone's state
    dict. The real backbone is built later from this state, after the same seeding as always, so
    its initial weights (and the heads') do not depend on this check."""
    from tsplab.backbones import build_backbone, load_backbone_weights

    if config.weights is None:
        return None
    source = config.weights if config.weights == "kinetics400" else resolve(config.weights)
    probe = build_backbone(config.backbone)
    try:
        load_backbone_weights(probe, source, trust_pickle=config.trust_pickle)
    except FileNotFoundError as exc:
        raise InputError(f"weights: {exc}") from None
    except InputError as exc:
        raise InputError(f"weights: {exc}") from exc
    return probe.state_dict()


# ------------------------------------------------------------------------------------ optimisation
def freeze_stem(model: nn.Module, frozen: bool = True) -> None:
    """Stop (or restart) gradients of the backbone's stem (TSP trains it with learning rate 0; with
    ``requires_grad`` off its backward pass is skipped too). BN statistics still update in train
    mode, as in TSP."""
    stem = getattr(model.features, "stem", None)
    if stem is None:
        raise ValueError(f"backbone {type(model.features).__name__} has no 'stem' module to freeze")
    for p in stem.parameters():
        p.requires_grad_(not frozen)


def parameter_groups(model: nn.Module, config: PretrainConfig, world_size: int = 1) -> list[dict]:
    """Optimizer parameter groups ``stem`` (only if ``stem_lr`` > 0), ``backbone`` (the rest of
    ``model.features``) and ``heads`` (every parameter outside ``features``), with learning rates
    scaled by ``world_size`` (TSP: "scale the learning rate linearly with the number of GPUs")."""
    scale = world_size if config.scale_lr_with_world_size else 1
    stem = getattr(model.features, "stem", None)
    stem_ids = {id(p) for p in stem.parameters()} if stem is not None else set()
    feature_ids = {id(p) for p in model.features.parameters()}
    groups = []
    if config.stem_lr > 0:
        groups.append({"name": "stem", "lr": config.stem_lr * scale,
                       "params": [p for p in model.features.parameters() if id(p) in stem_ids]})
    groups.append({"name": "backbone", "lr": config.backbone_lr * scale,
                   "params": [p for p in model.features.parameters() if id(p) not in stem_ids]})
    groups.append({"name": "heads", "lr": config.fc_lr * scale,
                   "params": [p for p in model.parameters() if id(p) not in feature_ids]})
    return groups


def build_optimizer(model: nn.Module, config: PretrainConfig, world_size: int = 1) -> torch.optim.Optimizer:
    """SGD (TSP) or Adam over ``parameter_groups``; freezes the stem when ``stem_lr`` is 0."""
    freeze_stem(model, frozen=config.stem_lr <= 0)
    groups = parameter_groups(model, config, world_size)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=config.momentum,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=groups[0]["lr"], weight_decay=config.weight_decay)
    raise ValueError(f"optimizer={config.optimizer!r}; valid: sgd, adam")


class WarmupMultiStep:
    """Learning-rate factor at iteration ``it``: linear warm-up from ``warmup_factor`` to 1 over
    ``warmup_iters``, times ``gamma`` per milestone passed (TSP's per-iteration ``WarmupMultiStepLR``,
    so that warm-up spans epochs smoothly). A class, not a lambda, so the scheduler state pickles."""

    def __init__(self, warmup_iters: int, milestones_iters, gamma: float, warmup_factor: float):
        self.warmup_iters = int(warmup_iters)
        self.milestones_iters = sorted(int(m) for m in milestones_iters)
        self.gamma = float(gamma)
        self.warmup_factor = float(warmup_factor)

    def __call__(self, it: int) -> float:
        warm = 1.0
        if it < self.warmup_iters:
            alpha = it / self.warmup_iters
            warm = self.warmup_factor * (1 - alpha) + alpha
        return warm * self.gamma ** bisect.bisect_right(self.milestones_iters, it)


class WarmupPlateau(WarmupMultiStep):
    """Learning-rate factor at iteration ``it``: the linear warm-up of ``WarmupMultiStep`` (no
    milestones) times ``scale``, which ``epoch_end`` multiplies by ``gamma`` once the validation loss
    has not improved for ``patience_epochs`` epochs in a row (then the count restarts). PAL §4.1: the
    rate "decreases by a factor of 10 when the validation loss saturates".

    "Improved" is torch's ``ReduceLROnPlateau`` rule (mode min, relative threshold 1e-4): a loss below
    ``best_loss * (1 - 1e-4)``. Unlike torch's (which lowers the rate on the ``patience + 1``-th bad
    epoch), the rate drops after ``patience_epochs`` bad epochs, as the setting's name says. The state
    (``scale``, ``best_loss``, ``bad_epochs``: plain numbers in ``__dict__``) is what
    ``LambdaLR.state_dict`` saves and restores, so the checkpoint's ``lr_scheduler`` entry resumes it
    exactly (and torch's safe loader reads it)."""

    THRESHOLD = 1e-4

    def __init__(self, warmup_iters: int, gamma: float, warmup_factor: float, patience_epochs: int):
        super().__init__(warmup_iters, [], gamma, warmup_factor)  # no milestones: gamma ** 0 = 1
        self.patience_epochs = int(patience_epochs)
        self.scale = 1.0
        self.best_loss = math.inf
        self.bad_epochs = 0

    def __call__(self, it: int) -> float:
        return super().__call__(it) * self.scale

    def epoch_end(self, valid_loss: float) -> bool:
        """Count one epoch's validation loss; True when the rate was just lowered. A NaN loss (no
        validation batch) counts as no improvement."""
        if valid_loss < self.best_loss * (1 - self.THRESHOLD):
            self.best_loss, self.bad_epochs = float(valid_loss), 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs < self.patience_epochs:
            return False
        self.scale *= self.gamma
        self.bad_epochs = 0
        return True


def build_lr_scheduler(optimizer, config: PretrainConfig, steps_per_epoch: int):
    """Per-iteration warm-up, then ``lr_schedule``: multi-step decay (``"step"``, epochs in the
    config converted to iterations) or decay on a validation-loss plateau (``"plateau"``, stepped
    once per epoch by :func:`step_plateau`)."""
    warmup_iters = round(config.warmup_epochs * steps_per_epoch)
    if config.lr_schedule == "plateau":
        factor = WarmupPlateau(warmup_iters, config.lr_gamma, config.warmup_factor, config.lr_patience_epochs)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    factor = WarmupMultiStep(warmup_iters, [round(m * steps_per_epoch) for m in config.lr_milestones],
                             config.lr_gamma, config.warmup_factor)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def step_plateau(scheduler, valid_loss: float) -> bool:
    """After an epoch's validation: feed its loss to a plateau schedule (no-op for ``"step"``) and,
    when the rate drops, set the optimizer's rates at once (the next step already uses them).
    Returns whether the rate dropped."""
    factor = scheduler.lr_lambdas[0]
    if not isinstance(factor, WarmupPlateau) or not factor.epoch_end(float(valid_loss)):
        return False
    for group, base_lr in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base_lr * factor(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
    return True


# --------------------------------------------------------------------------------------------- data
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
    (``tsplab.sampling.holdout_videos``), left out of the training table; the validation subset is
    not read."""
    from tsplab.datasets import build_segment_table, read_annotations
    from tsplab.sampling import holdout_videos

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
            report.append({"split": split, "stage": "segment table", **_short_record(row)})
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


def _short_record(row: dict) -> dict:
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
    from tsplab.sampling import EpochSampler

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


# ----------------------------------------------------------------------------------------- the loop
@dataclasses.dataclass
class PretrainResult:
    """What a run left in ``output_dir``: the per-epoch ``metrics`` table, the best epoch (by average
    validation accuracy) and the checkpoint paths."""

    output_dir: Path
    metrics: pd.DataFrame
    best_epoch: int
    best_checkpoint: Path
    checkpoint: Path
    data_report: pd.DataFrame
    model: nn.Module  # the model after the last epoch (unwrapped), e.g. to extract features in-process


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank, 12345]).generate_state(1)[0])


def _seed_epoch(seed: int, epoch: int, rank: int) -> torch.Generator:
    """Seed every RNG for this epoch and return the generator of the batch augmentations."""
    s = _epoch_seed(seed, epoch, rank)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


def _rng_states() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"python": random.getstate(), "numpy": (kind, keys.tolist(), pos, has_gauss, cached),
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    random.setstate(tuple(x if not isinstance(x, list) else tuple(x) for x in states["python"]))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _autocast_dtype(config: PretrainConfig, device: torch.device) -> torch.dtype | None:
    if not config.amp or device.type != "cuda":
        return None  # never on the CPU: reduced precision there is ~100x slower
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class _Meter:
    """Per-epoch sums on the device (no host sync per step), reduced over processes at the end."""

    def __init__(self, heads, device):
        self.heads = tuple(heads)
        # [loss, steps, then per head: loss sum, correct, count]
        self.sums = torch.zeros(2 + 3 * len(self.heads), dtype=torch.float64, device=device)

    def add(self, out) -> None:
        vals = [out.loss.detach().double(), torch.ones((), dtype=torch.float64, device=self.sums.device)]
        for h in self.heads:
            # A head's loss is a mean over the batch's labelled clips: weigh it by their number, so
            # that the epoch value is the mean over clips (a batch of background clips only must not
            # pull the action head's loss towards 0).
            count = out.head_count[h].double()
            vals += [out.head_losses[h].double() * count, out.head_correct[h].double(), count]
        self.sums += torch.stack([v.to(self.sums.device) for v in vals])

    def result(self, prefix: str) -> dict:
        """Mean total loss per step, and per head the mean loss and accuracy over labelled clips."""
        s = all_reduce_sum(self.sums.clone()).cpu().numpy()
        steps = float(max(s[1], 1.0))
        row = {f"{prefix}_loss": float(s[0] / steps)}
        for i, h in enumerate(self.heads):
            loss_sum, correct, count = (float(v) for v in s[2 + 3 * i: 5 + 3 * i])
            row[f"{prefix}_loss_{h}"] = loss_sum / count if count else float("nan")
            row[f"{prefix}_acc_{h}"] = correct / count if count else float("nan")
        return row


@dataclasses.dataclass
class _Loop:
    """What the epochs of one run share (built by ``_build_loop``): the method, its model (``model``
    unwrapped; ``net`` as trained, DDP-wrapped under torchrun), the optimisation state, the loaders,
    and the metrics rows and best epoch so far."""

    config: PretrainConfig
    dist: DistContext
    method: Any
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    ctx: TrainContext
    loaders: dict  # "train"/"valid" -> (DataLoader, EpochSampler)
    steps_per_epoch: int
    amp_dtype: torch.dtype | None
    net: nn.Module | None = None
    rows: list = dataclasses.field(default_factory=list)
    best: dict = dataclasses.field(default_factory=lambda: {"epoch": -1, "score": -math.inf})

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.dist.device.type, dtype=self.amp_dtype)

    def sync(self) -> None:
        """Wait for the device, so that timings measure the work and not its queueing."""
        if self.dist.device.type == "cuda":
            torch.cuda.synchronize(self.dist.device)

    def bar(self, **kw):
        from tqdm.auto import tqdm

        return tqdm(unit="step", leave=False, disable=not (self.config.progress and self.dist.is_main), **kw)


def _build_loop(config: PretrainConfig, dist: DistContext, initial_weights) -> tuple[_Loop, pd.DataFrame]:
    """The data, method, model, optimizer, schedule and loaders of a run, and its data report.
    Writes nothing but the frame cache; a batch size larger than the training set raises here."""
    from tsplab.backbones import build_backbone

    report: list = []
    method = get_method(config.method)(config)
    # A method may train on another annotated video set than the run's dataset (``data_config``: BSP
    # synthesizes from a trimmed source set, BSP §3.2); its frames come through the same frame cache.
    data_config = method.data_config(config)
    data = prepare_data(data_config, dist, report)
    train_set, valid_set = method.build_datasets(data)
    for split, ds in (("train", train_set), ("valid", valid_set)):
        for row in getattr(ds, "dropped", pd.DataFrame()).to_dict("records"):
            report.append({"split": split, "stage": "clip sampling", **_short_record(row)})
    data_report = pd.DataFrame(report, columns=["split", "stage", "video", "reason", "t-start", "t-end",
                                                "action-label", "temporal-region-label"])
    torch.manual_seed(config.seed)  # the same seed builds the same initial weights on every process
    backbone = build_backbone(config.backbone, weights=initial_weights)
    model = method.build_model(backbone, data).to(dist.device)
    optimizer = build_optimizer(model, config, dist.world_size)
    loaders = {"train": make_loader(train_set, config, dist, train=True),
               "valid": make_loader(valid_set, config, dist, train=False)}
    steps_per_epoch = len(loaders["train"][0])
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise InputError(f"batch_size={config.batch_size}: the training set has {len(train_set)} clips, "
                         f"fewer than one batch per process; lower batch_size")
    amp_dtype = _autocast_dtype(config, dist.device)
    ctx = TrainContext(config=config, model=model, dist=dist, output_dir=config.output_dir, data=data,
                       train_dataset=train_set, valid_dataset=valid_set, autocast_dtype=amp_dtype)
    loop = _Loop(config=config, dist=dist, method=method, model=model, optimizer=optimizer,
                 scheduler=build_lr_scheduler(optimizer, config, steps_per_epoch),
                 scaler=torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16), ctx=ctx,
                 loaders=loaders, steps_per_epoch=steps_per_epoch, amp_dtype=amp_dtype)
    return loop, data_report


def _train_step(loop: _Loop, batch: dict, generator: torch.Generator):
    """One optimizer step on ``batch`` (already on the device); returns the method's ``StepOutput``."""
    with loop.autocast():
        out = loop.method.step(loop.net, batch, train=True, generator=generator)
    loop.optimizer.zero_grad(set_to_none=True)
    loop.scaler.scale(out.loss).backward()
    loop.scaler.step(loop.optimizer)
    loop.scaler.update()
    loop.scheduler.step()
    loop.ctx.global_step += 1
    loop.method.after_optimizer_step(loop.ctx)
    return out


def train_one_epoch(loop: _Loop, epoch: int, generator: torch.Generator) -> tuple[dict, dict]:
    """The training steps of ``epoch``: ``(row, timing)``, ``row`` holding the epoch, the learning
    rates and the training losses and accuracies per head (``_Meter``), ``timing`` the seconds spent
    waiting for data and training (the method's GVF work excluded) and the clips seen."""
    dist, method = loop.dist, loop.method
    loop.model.train()
    meter = _Meter(method.head_names, dist.device)
    wait_s, clips, gvf_before = 0.0, 0, method.gvf_seconds
    t_epoch = time.perf_counter()
    bar = loop.bar(total=loop.steps_per_epoch, desc=f"epoch {epoch} train")
    batches = iter(loop.loaders["train"][0])
    t_ready = time.perf_counter()
    for step in range(loop.steps_per_epoch):
        batch = _to_device(next(batches), dist.device)
        loop.sync()
        wait_s += time.perf_counter() - t_ready
        out = _train_step(loop, batch, generator)
        meter.add(out)
        clips += int(batch["clip"].shape[0])
        if step % 10 == 0 and bar.total:
            bar.set_postfix(loss=f"{out.loss.item():.3f}")
        bar.update()
        loop.sync()
        t_ready = time.perf_counter()
    bar.close()
    del batches
    if dist.distributed:
        # DDP broadcasts buffers at the start of each forward, so after the last step every process
        # holds BN statistics updated by its own last batch: take process 0's, so that validation,
        # GVFs and the checkpoint see one model.
        for buffer in loop.model.buffers():
            torch.distributed.broadcast(buffer, src=0)
    # GVF refreshes during the epoch (momentum mode) are reported apart from training time.
    train_s = time.perf_counter() - t_epoch - (method.gvf_seconds - gvf_before)
    lrs = {f"lr_{g['name']}": g["lr"] for g in loop.optimizer.param_groups}
    row = {"epoch": epoch, **lrs, **meter.result("train")}
    return row, {"wait_s": wait_s, "train_s": train_s, "clips": clips}


@torch.no_grad()
def evaluate(loop: _Loop, epoch: int) -> dict:
    """The validation pass: mean loss, and per head the loss and accuracy over labelled clips
    (``valid_*`` columns), summed over every process."""
    loop.model.eval()
    meter = _Meter(loop.method.head_names, loop.dist.device)
    for batch in loop.bar(iterable=loop.loaders["valid"][0], desc=f"epoch {epoch} valid"):
        # The unwrapped model: no gradients to synchronise, and processes may hold different
        # numbers of validation batches.
        with loop.autocast():
            meter.add(loop.method.step(loop.model, _to_device(batch, loop.dist.device), train=False))
    return meter.result("valid")


def run_epoch(loop: _Loop, epoch: int) -> tuple[dict, bool]:
    """Train, let the method end its epoch (e.g. refresh GVFs), validate: ``(metrics row, whether
    this epoch is the best so far)``; the row joins ``loop.rows``."""
    loop.ctx.epoch = epoch
    generator = _seed_epoch(loop.config.seed, epoch, loop.dist.rank)
    for _, sampler in loop.loaders.values():
        sampler.set_epoch(epoch)
    gvf_before = loop.method.gvf_seconds
    row, timing = train_one_epoch(loop, epoch, generator)
    loop.method.on_train_epoch_end(loop.ctx)
    t_valid = time.perf_counter()
    row.update(evaluate(loop, epoch))
    # A plateau schedule (PAL §4.1) reads the epoch's validation loss (the same on every process:
    # summed over all of them); the row's lr_* columns keep the rates this epoch trained with.
    step_plateau(loop.scheduler, row["valid_loss"])
    score = float(np.mean([row[f"valid_acc_{h}"] for h in loop.method.selection_heads]))
    waits = all_reduce_sum(torch.tensor([timing["wait_s"], timing["train_s"]], dtype=torch.float64,
                                        device=loop.dist.device)).cpu()
    row.update({
        "valid_acc_avg": score,
        "train_steps": loop.steps_per_epoch,
        "data_wait_share": float(waits[0] / waits[1]) if waits[1] > 0 else float("nan"),
        "clips_per_s": timing["clips"] * loop.dist.world_size / timing["train_s"],
        "train_seconds": timing["train_s"],
        "valid_seconds": time.perf_counter() - t_valid,
        "gvf_seconds": loop.method.gvf_seconds - gvf_before,
    })
    loop.rows.append(row)
    improved = score > loop.best["score"]
    if improved:
        loop.best = {"epoch": epoch, "score": score}
    return row, improved


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def save_checkpoint(loop: _Loop, epoch: int, improved: bool) -> None:
    """Process 0, after ``epoch``: ``checkpoint.pt`` (everything a resumed run needs), ``best.pt``
    when the epoch improved, ``epoch_NNN.pt`` if kept, and ``metrics.csv``."""
    out_dir = loop.config.output_dir
    state = {
        "model": loop.model.state_dict(), "optimizer": loop.optimizer.state_dict(),
        "lr_scheduler": loop.scheduler.state_dict(), "scaler": loop.scaler.state_dict(),
        "epoch": epoch, "global_step": loop.ctx.global_step, "rng": _rng_states(),
        "config": dataclasses.asdict(loop.config), "method": loop.method.state_dict(),
        "metrics": loop.rows, "best": loop.best,
    }
    if improved:
        _save_checkpoint(out_dir / BEST, {"model": state["model"], "config": state["config"],
                                          "epoch": epoch, "metrics": loop.rows[-1]})
    _save_checkpoint(out_dir / CHECKPOINT, state)
    if loop.config.keep_epoch_checkpoints:
        _save_checkpoint(out_dir / f"epoch_{epoch:03d}.pt", state)
    write_csv(out_dir / METRICS, pd.DataFrame(loop.rows))


def restore_checkpoint(loop: _Loop, checkpoint: dict) -> int:
    """Load a run's ``checkpoint.pt`` (model, optimizer, schedule, scaler, method state, RNG states,
    step, metrics and best epoch so far) into ``loop``; returns the epoch to continue with."""
    loop.model.load_state_dict(checkpoint["model"])
    loop.optimizer.load_state_dict(checkpoint["optimizer"])
    loop.scheduler.load_state_dict(checkpoint["lr_scheduler"])
    loop.scaler.load_state_dict(checkpoint["scaler"])
    loop.method.load_state_dict(checkpoint.get("method", {}))
    _set_rng_states(checkpoint["rng"])
    loop.ctx.global_step = checkpoint["global_step"]
    loop.rows = list(checkpoint.get("metrics", []))
    loop.best = dict(checkpoint.get("best", loop.best))
    return checkpoint["epoch"] + 1


def pretrain(config: PretrainConfig, *, resume: bool = False, stop_after_epochs: int | None = None) -> PretrainResult:
    """Pretrain ``config.method`` and return the run's metrics and checkpoints.

    ``resume``: continue from the run folder's ``checkpoint.pt`` (a fresh start, with a warning, if
    there is none). ``weights="source"`` (the synthetic preset's) becomes the path of the benchmark's
    initial encoder (``tsplab.pretrain_config.resolve_weights``; trained first if absent) once the
    inputs are checked; the run's ``config.json`` names that checkpoint. ``stop_after_epochs``: return
    after this many epochs of this call (for jobs with a time limit; ``resume=True`` continues; at
    least 1). Under ``torchrun`` every process calls this;
    the process group is created here (NCCL on CUDA, gloo on CPU) and destroyed at the end if created
    here.

    Nothing is lost on bad input: the settings (``check_config``), the files and folders
    (``check_inputs``), the initial weights and the data are all checked before the run folder is
    touched (``InputError`` naming the field or file). A fresh run in a folder that holds an earlier
    run's results sets them aside in ``previous/`` and deletes them only once it has written its
    first checkpoint (see ``_PreviousRun``).
    """
    check_config(config)
    whole = isinstance(stop_after_epochs, numbers.Integral) and not isinstance(stop_after_epochs, bool)
    if stop_after_epochs is not None and (not whole or stop_after_epochs < 1):
        raise InputError(f"stop_after_epochs={stop_after_epochs!r}: must be a whole number >= 1 "
                         "(None: train to the last epoch)")
    check_inputs(config)
    config = resolve_weights(config)  # weights="source": the benchmark's initial encoder (trained if absent)
    owns_group = not torch.distributed.is_initialized()
    dist = init_distributed(device=config.device or None)
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _pretrain(config, dist, resume=resume, stop_after_epochs=stop_after_epochs)
    finally:
        torch.set_num_threads(threads)  # a notebook's process keeps its own setting
        if owns_group:
            cleanup()


def _pretrain(config: PretrainConfig, dist: DistContext, *, resume: bool,
              stop_after_epochs: int | None) -> PretrainResult:
    """The driver: build the run, open its folder, then per epoch ``run_epoch`` (``train_one_epoch``,
    the method's epoch end, ``evaluate``) and ``save_checkpoint``; ``restore_checkpoint`` on resume."""
    if dist.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed clip shapes: let cuDNN pick its fastest kernels
    checkpoint = _resume_checkpoint(config.output_dir, config) if resume else None
    # The initial weights are read before the data: a bad path must not wait for the frame cache.
    loop, data_report = _build_loop(config, dist, _load_initial_weights(config))
    # Every input is checked and the data is ready: only now is the run folder written.
    previous = _open_run_folder(config, dist, data_report, pretrain_split(loop.ctx.data), fresh=checkpoint is None)
    try:
        loop.method.setup(loop.ctx)  # before loading a checkpoint: frozen GVFs come from the initial encoder
        start_epoch = restore_checkpoint(loop, checkpoint) if checkpoint is not None else 0
        loop.net = loop.model
        if dist.distributed:
            loop.net = nn.parallel.DistributedDataParallel(
                loop.model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
        end_epoch = config.epochs if stop_after_epochs is None else start_epoch + stop_after_epochs
        for epoch in range(start_epoch, min(end_epoch, config.epochs)):
            _, improved = run_epoch(loop, epoch)
            if dist.is_main:
                save_checkpoint(loop, epoch, improved)
                previous.drop()  # this run's first checkpoint exists: the earlier run's files go
            barrier()
    except BaseException:
        if dist.is_main:
            previous.restore()  # failed before its first checkpoint: the earlier run's files come back
        raise
    return PretrainResult(output_dir=config.output_dir, metrics=pd.DataFrame(loop.rows),
                          best_epoch=int(loop.best["epoch"]), best_checkpoint=config.output_dir / BEST,
                          checkpoint=config.output_dir / CHECKPOINT, data_report=data_report, model=loop.model)


def _open_run_folder(config: PretrainConfig, dist: DistContext, data_report: pd.DataFrame,
                     split: pd.DataFrame, *, fresh: bool) -> "_PreviousRun":
    """Process 0 makes the run folder; a fresh run sets an earlier run's files aside and writes its
    ``config.json``; every run writes its ``data_report.csv`` and ``pretrain_split.csv``."""
    out_dir = config.output_dir
    previous = _PreviousRun(out_dir)
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if fresh:
            previous.set_aside(config)
            save_config(config, out_dir)
        write_csv(out_dir / DATA_REPORT, data_report)
        write_csv(out_dir / SPLIT, split)
    barrier()
    return previous


def _resume_checkpoint(out_dir: Path, config: PretrainConfig) -> dict | None:
    """The run folder's ``checkpoint.pt`` (safe loader), or None (with a warning) when there is none."""
    from tsplab.backbones import load_checkpoint_file

    path = out_dir / CHECKPOINT
    if not path.is_file():
        warnings.warn(f"resume: no {CHECKPOINT} in {out_dir}; starting from scratch")
        return None
    checkpoint = load_checkpoint_file(path)
    _check_config_unchanged(checkpoint.get("config", {}), config, path)
    return checkpoint


class _PreviousRun(PreviousRun):
    """Pretraining's earlier run in a run folder (``tsplab.runs.PreviousRun``): its results are the
    checkpoints and ``metrics.csv``, its other files the loop's and every method's own
    (``run_files``); a method's file made with this run's settings stays (``reuses_file``: TSP's
    frozen GVFs). Set aside once the data is ready, dropped after the first checkpoint."""

    RESULTS = (CHECKPOINT, BEST, METRICS, "epoch_*.pt")

    def __init__(self, out_dir: Path):
        others = (DATA_REPORT, SPLIT, "config.json",
                  *dict.fromkeys(p for m in METHODS.values() for p in m.run_files))
        super().__init__(out_dir, self.RESULTS, others, first_result="first checkpoint",
                         instead=" (resume=True continues the earlier run instead)")

    def set_aside(self, config: PretrainConfig) -> None:
        super().set_aside(lambda path: self._reusable(path, config))

    def _reusable(self, path: Path, config: PretrainConfig) -> bool:
        """A method's file stays when the method says the earlier run made it with this run's
        settings (``reuses_file``: TSP's frozen GVFs)."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                old = config_from_dict(read_json(self.out_dir / "config.json"), source="config.json")
        except (OSError, InputError, TypeError, ValueError, AttributeError):
            return False  # no readable earlier config: nothing to vouch for the file
        return get_method(config.method).reuses_file(path.name, old, config)


_PATH_FIELDS = {"run_dir", "dataset_dir", "annotations", "valid_annotations", "video_dir", "frame_cache_dir",
                "weights", "gvf_file", "source_dir"}


def _check_config_unchanged(old: dict, new: PretrainConfig, path: Path) -> None:
    """A resumed run must have its checkpoint's settings (loop fields and options): some would apply
    and others not (the learning-rate schedule is the checkpoint's), and ``config.json`` would still
    show the old ones. ``InputError`` naming every changed field, old and new value. ``epochs`` may
    grow (train longer), and the settings that do not change the result (workers, device, ...) may
    differ."""
    ignore = {"epochs", "workers", "progress", "device", "keep_epoch_checkpoints", "trust_pickle", "threads"}
    try:
        before = config_values(config_from_dict(old, source=str(path)))
    except (InputError, TypeError) as exc:
        warnings.warn(f"{path}: the checkpoint's settings cannot be compared with this run's ({exc})")
        return
    after = config_values(new)

    def value(config: dict, key: str):  # a path spelled otherwise (relative, absolute) is the same path
        plain = plain_value(config.get(key))
        return str(resolve(plain)) if key in _PATH_FIELDS and isinstance(plain, str) and plain else plain

    changed = sorted(k for k in set(before) | set(after) if k not in ignore and value(before, k) != value(after, k))
    if changed:
        listed = ", ".join(f"{k} ({plain_value(before.get(k))!r} -> {plain_value(after.get(k))!r})" for k in changed)
        raise InputError(f"resume: {path}: settings differ from the checkpoint's: {listed}; resume with the run's "
                         "own settings (its config.json), or start a fresh run without --resume")


def read_metrics(output_dir) -> pd.DataFrame:
    """The per-epoch metrics table of a pretraining run folder."""
    path = resolve(output_dir) / METRICS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics; has this run finished an epoch?")
    return pd.read_csv(path)














def read_run_metrics(run_dir, names=None) -> dict[str, pd.DataFrame]:
    """``{name: metrics}`` of the pretraining runs under ``RUN/pretrain/`` that finished an epoch
    (``names``: only these run folders), e.g. to plot TAC and TSP together."""
    root = resolve(run_dir) / "pretrain"
    folders = sorted(p for p in root.glob("*") if (p / METRICS).is_file()) if root.is_dir() else []
    return {p.name: read_metrics(p) for p in folders if names is None or p.name in names}
