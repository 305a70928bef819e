"""The one pretraining loop: any method of ``tsplab.methods``, one process or many (torchrun + DDP).

Optimisation follows TSP §4.1 (and its ``train/train.py``): SGD, momentum 0.9, weight decay 0.005,
one learning rate per module (stem frozen, backbone 1e-4, heads ``fc_lr``), linear warm-up over the
first 2 epochs (per iteration, from 1e-5 of the rate), decay x0.01 at epochs 4 and 6, 8 epochs, batch
32 clips per process, learning rates scaled linearly with the number of processes; AMP on CUDA only
(bf16 where supported, else fp16 with a gradient scaler; never on the CPU, where reduced precision is
far slower). Validation after every epoch: clip accuracy per head; the epoch with the best average
accuracy is kept as ``best.pt`` (TSP's model selection).

Run folder ``<run_dir>/pretrain/<output_name or method>/``: ``config.json``, ``metrics.csv`` (one row
per epoch), ``checkpoint.pt`` (the latest epoch: model, optimizer, scheduler, scaler, epoch, RNG
states, config, method state), ``best.pt`` (``{"model", "config", "epoch", "metrics"}``; the backbone
under ``features.``, the layout ``tsplab.backbones.load_backbone_weights`` and feature extraction
read), ``data_report.csv`` (every segment or video left out, with the reason), and method files (the
frozen GVFs ``gvf_initial_max.h5``). Only process 0 writes.

Nothing is lost on bad input: settings, files, initial weights and data are checked before the run
folder is touched (``check_config``, ``check_inputs``; ``InputError`` names the field or file). A
fresh run in a folder holding an earlier run's results moves them to ``previous/`` and deletes them
once it has written its first checkpoint (moved back if it fails before; see ``_PreviousRun``).
Checkpoints are read with torch's safe loader only (``tsplab.backbones.load_checkpoint_file``).

Exact resume: every random draw of an epoch is seeded from ``(seed, epoch, rank)`` (clip positions,
balanced subsets and order, crops and flips), DataLoader workers do no random work, and checkpoints
hold everything else, so on the CPU a run killed after epoch k and resumed ends with bit-identical
weights to one that was never interrupted.

The synthetic benchmark trains a tiny encoder from random weights, which TSP's schedule (tuned for
fine-tuning Kinetics weights) does not suit: ``PRESETS["synthetic"]`` holds its settings.
"""
from __future__ import annotations

import bisect
import contextlib
import dataclasses
import json
import math
import numbers
import os
import random
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from tsplab.distributed import DistContext, all_reduce_sum, barrier, broadcast_object, cleanup, init_distributed
from tsplab.errors import InputError
from tsplab.methods import PretrainData, TrainContext, get_method
from tsplab.runs import atomic_path, check_output_folder, read_json, resolve, save_config

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
METRICS = "metrics.csv"
DATA_REPORT = "data_report.csv"


@dataclasses.dataclass
class PretrainConfig:
    """Everything a pretraining run depends on (saved as ``config.json`` in its folder).

    Defaults are TSP's (R(2+1)D-34 from Kinetics weights, 16 frames at 15 fps, short side 128, crop
    112, SGD schedule of §4.1). See ``PRESETS`` for the synthetic benchmark's settings."""

    method: str = "tsp"  # a name in tsplab.methods.METHODS
    backbone: str = "r2plus1d_34"  # a name in tsplab.backbones.BACKBONES
    weights: str | None = "kinetics400"  # initial weights: "kinetics400", a checkpoint path, or None (random)
    # Checkpoints (weights, BSP teachers) are read with torch's safe loader; True unpickles a file it
    # refuses in full, which runs any code stored in the file: only for files from a trusted source.
    trust_pickle: bool = False

    # data: the synthetic layout DATASET/{annotations.json, videos/}, or explicit paths
    dataset_dir: str = ""
    annotations: str = ""  # default DATASET/annotations.json (any format tsplab.annotations reads)
    valid_annotations: str = ""  # default: the same file as ``annotations``
    video_dir: str = ""  # default DATASET/videos
    train_subset: str = "training"
    valid_subset: str = "validation"
    # Background gaps shorter than this many clips are dropped: TSP's ActivityNet tables keep gaps
    # from 5 clips (tsplab.annotations.SEGMENT_PRESETS; THUMOS14 and the synthetic benchmark: 1).
    min_background_clips: float = 5.0

    # where outputs go
    run_dir: str = "runs/default"
    output_name: str = ""  # run folder name under RUN/pretrain/ (default: the method's name)
    frame_cache_dir: str = ""  # default RUN/frame_cache (shared by every method of the run)

    # clips (TSP §4.1)
    clip_length_frames: int = 16
    frame_rate: float = 15.0
    clips_per_segment: int = 5
    resize_short_side: int = 128
    crop_size: int = 112

    # TSP options
    alpha_c: float = 1.0  # eq. (1) weight of the action label head (0: TSP w/o action label)
    alpha_r: float = 1.0  # eq. (1) weight of the temporal region head (0: w/o temporal region)
    gvf_pooling: str = "max"  # max | avg | none (TSP w/o GVF)
    gvf_mode: str = "frozen"  # frozen | epoch | momentum (see tsplab.methods.tsp)
    gvf_momentum: float = 0.99  # EMA factor per optimizer step of the momentum encoder
    gvf_refresh_steps: int = 0  # momentum mode: also refresh the GVFs every this many steps (0: per epoch)
    gvf_stride_frames: int = 0  # stride of the clip grid a GVF pools over (0: the clip length)
    gvf_file: str = ""  # an existing GVF h5 file to use instead of computing the frozen GVFs

    # BSP (tsplab.methods.bsp)
    bsp_boundaries: tuple = ("dc", "sc", "ds", "ss")  # synthesized types (BSP §3.2); the class is the index
    bsp_loss: str = "classification"  # classification (BSP §3.3 default) | regression (change-point heat map)
    bsp_blend_frames: int = 2  # ε of BSP eq. (1): diff-class clips blend over 2ε frames
    bsp_speed_factors: tuple = (0.5, 2.0, 3.0)  # γ of BSP eq. (3), one drawn per diff-speed clip
    bsp_middle_change_point: bool = False  # True: change point at L/2 (eqs. 1-2 as written); False: random
    bsp_integration: str = "none"  # none | two-head | distill (BSP §3.4; see tsplab.methods.bsp)
    bsp_teachers: tuple = ()  # distill: (TAC teacher, BSP teacher) checkpoint paths (best.pt or run folders)
    # BSP (end)

    # PAL (tsplab.methods.pal)
    pal_clips_per_video: int = 8  # J clips of clip_length_frames in each synthesized video (PAL §4.1: 8 of 8)
    pal_max_region_clips: int = 6  # longest pseudo-action region, in clips (PAL §4.1)
    pal_max_stride: int = 4  # scale-aware sampling: frame stride drawn from 1..this (PAL §4.1)
    pal_beta_range: tuple = (0.6, 1.0)  # blending ratio beta ~ U[low, high] (PAL §3.2.1, Table 5)
    pal_queue_size: int = 16384  # MoCo negatives queue (PAL §4.1)
    pal_temperature: float = 0.07  # tau of PAL eq. (7)
    pal_key_momentum: float = 0.999  # momentum key encoder (MoCo v2, which PAL follows)
    pal_embed_dim: int = 128  # projection / temporal-embedding width (MoCo v2's 128)
    pal_samples_per_video: int = 1  # synthesized pairs per source video per epoch
    pal_dense: bool = True  # Table 3: region of several clips (False: one clip)
    pal_scale_aware: bool = True  # Table 3: stride drawn from 1..pal_max_stride (False: stride 1)
    pal_paste: bool = True  # Table 3: paste onto background videos (False: the region alone)
    pal_background: str = "different"  # Table 3: "different" (v_n != v_m) | "same" background video
    # PAL (end)

    # optimisation (TSP §4.1)
    epochs: int = 8
    batch_size: int = 32  # clips per process
    optimizer: str = "sgd"  # sgd | adam
    backbone_lr: float = 1e-4
    fc_lr: float = 0.002  # TSP grid-searched 0.002-0.01; its released ActivityNet model used 0.002
    stem_lr: float = 0.0  # 0: stem frozen (TSP)
    momentum: float = 0.9
    weight_decay: float = 0.005
    warmup_epochs: float = 2.0
    warmup_factor: float = 1e-5  # the first step's fraction of the rate (TSP's WarmupMultiStepLR)
    lr_milestones: tuple = (4, 6)  # epochs
    lr_gamma: float = 0.01
    scale_lr_with_world_size: bool = True
    amp: bool = True  # CUDA only

    # running
    seed: int = 0
    workers: int = 2  # DataLoader worker processes per training process
    threads: int = 0  # torch threads of each training process (0: torch's default)
    device: str = ""  # "" = CUDA when available, else CPU
    max_steps_per_epoch: int = 0  # 0 = the whole epoch (a cap is for benchmarks and smoke runs)
    keep_epoch_checkpoints: bool = False  # also keep epoch_NNN.pt for every epoch
    progress: bool = True

    def __post_init__(self):
        for field in dataclasses.fields(self):  # JSON (config.json, papermill) gives lists
            if _field_kind(field)[0] == "tuple" and isinstance(getattr(self, field.name), list):
                setattr(self, field.name, tuple(getattr(self, field.name)))

    @property
    def output_dir(self) -> Path:
        return resolve(self.run_dir) / "pretrain" / (self.output_name or self.method)


#: Named settings. ``tsp``: the paper's. ``synthetic``: the built-in benchmark (tiny R(2+1)D from
#: random weights, 8-frame clips at the videos' 15 fps on 32 px frames, crop 28 = TSP's 112/128).
#: A randomly initialised encoder needs the stem trained and far larger learning rates than
#: fine-tuning; Adam at 2e-3, what the benchmark's prototype used, trains it in a few hundred steps
#: (shared/notes). The schedule keeps TSP's shape (linear warm-up, step decay), shortened to 4 epochs
#: of 3 clips per segment (~93 steps per epoch for TSP on the default benchmark). One torch thread
#: beside one loader process: on this 2-core machine 2 OpenMP threads train 1.5x faster when nothing
#: else runs (117 vs 79 clips/s) but 2-3x *slower* as soon as another process wants a core (19 vs 36
#: clips/s), so 1 is the safe default (``threads=2`` on a quiet machine). Measured on the default
#: benchmark (benchmarks/bench_pretrain.py --full, 2 shared cores): TSP 191 s (region loss 0.19,
#: validation region accuracy 0.93), TAC 91 s, data wait 2 %.
PRESETS: dict[str, dict] = {
    "tsp": {},
    "synthetic": dict(
        backbone="r2plus1d_tiny", weights=None,
        clip_length_frames=8, frame_rate=15.0, resize_short_side=32, crop_size=28, clips_per_segment=3,
        min_background_clips=1.0, epochs=4, batch_size=32, optimizer="adam", backbone_lr=2e-3,
        fc_lr=2e-3, stem_lr=2e-3,
        weight_decay=1e-4, warmup_epochs=0.5, lr_milestones=(3,), lr_gamma=0.1, workers=1, threads=1,
    ),
}


def pretrain_config(preset: str = "tsp", **overrides) -> PretrainConfig:
    """A ``PretrainConfig`` from a named preset (``PRESETS``) with ``overrides``.

    With ``preset="synthetic"`` and a ``dataset_dir`` holding a synthetic benchmark, the clip length,
    frame rate and short side come from the benchmark's ``benchmark.json`` (the tiny benchmark uses
    16 px frames) unless overridden; the crop keeps TSP's ratio 112/128. A method's own
    ``preset_overrides`` for the preset come next (e.g. PAL's optimiser), then ``overrides``.
    An unknown preset or field raises ``InputError`` listing the valid ones."""
    if preset not in PRESETS:
        raise InputError(f"unknown pretraining preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    names = {f.name for f in dataclasses.fields(PretrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise InputError(f"unknown PretrainConfig fields {unknown}; valid fields: {', '.join(sorted(names))}")
    values = dict(PRESETS[preset])
    values.update(get_method(overrides.get("method", PretrainConfig.method)).preset_overrides.get(preset, {}))
    if preset == "synthetic" and overrides.get("dataset_dir"):
        bench = resolve(overrides["dataset_dir"]) / "benchmark.json"
        if bench.is_file():
            cfg = read_json(bench)["config"]
            values.update(clip_length_frames=int(cfg["clip_length_frames"]), frame_rate=float(cfg["fps"]),
                          resize_short_side=int(cfg["clip_short_side"]),
                          crop_size=int(round(cfg["clip_short_side"] * 112 / 128)))
    values.update(overrides)
    return PretrainConfig(**values)


# ------------------------------------------------------------------------------------ checks
OPTIMIZERS = ("sgd", "adam")
# Fields that must be > 0, and fields that must be >= 0 (learning rates, counts where 0 means "off").
_POSITIVE = ("clip_length_frames", "frame_rate", "clips_per_segment", "resize_short_side", "crop_size",
             "epochs", "batch_size", "lr_gamma")
_NON_NEGATIVE = ("min_background_clips", "alpha_c", "alpha_r", "gvf_refresh_steps", "gvf_stride_frames",
                 "bsp_blend_frames", "backbone_lr", "fc_lr", "stem_lr", "weight_decay",
                 "warmup_epochs", "warmup_factor", "seed", "workers", "threads", "max_steps_per_epoch")
# What each field type accepts, as said in error messages.
_EXPECTED = {"int": "a whole number", "float": "a number", "bool": "true or false",
             "str": "text", "tuple": "a list such as [4, 6] or 4,6"}


def _field_kind(field: dataclasses.Field) -> tuple[str, bool]:
    """``(base type name, None allowed)`` of a ``PretrainConfig`` field from its annotation (a
    string under ``from __future__ import annotations``: ``"int"``, ``"str | None"``, ...)."""
    parts = [p.strip() for p in str(field.type).split("|")]
    return parts[0], "None" in parts[1:]


def _has_type(value, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, (bool, np.bool_))
    if isinstance(value, (bool, np.bool_)):
        return False  # True is an int to Python, not a count or a rate
    if kind == "int":
        return isinstance(value, numbers.Integral)
    if kind == "float":
        return isinstance(value, numbers.Real) and math.isfinite(value)
    return isinstance(value, {"str": str, "tuple": (tuple, list)}[kind])


def _check_types(config: PretrainConfig) -> None:
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        kind, optional = _field_kind(field)
        if value is None and optional:
            continue
        if not _has_type(value, kind):
            raise InputError(f"{field.name}={value!r}: expected {_EXPECTED[kind]}"
                             f"{' or none' if optional else ''} ({type(value).__name__} given)")


def _check_values(config: PretrainConfig) -> None:
    for name in _POSITIVE:
        if getattr(config, name) <= 0:
            raise InputError(f"{name}={getattr(config, name)!r}: must be > 0")
    for name in _NON_NEGATIVE:
        if getattr(config, name) < 0:
            raise InputError(f"{name}={getattr(config, name)!r}: must be >= 0")
    for name in ("momentum", "gvf_momentum"):
        if not 0 <= getattr(config, name) <= 1:
            raise InputError(f"{name}={getattr(config, name)!r}: must be between 0 and 1")
    if not all(_has_type(m, "float") and m >= 0 for m in config.lr_milestones):
        raise InputError(f"lr_milestones={list(config.lr_milestones)!r}: expected epochs >= 0, e.g. [4, 6]")
    if config.crop_size > config.resize_short_side:
        raise InputError(f"crop_size={config.crop_size} is larger than resize_short_side="
                         f"{config.resize_short_side}; the crop must fit in the resized frame")
    name = config.output_name
    if name and (Path(name).name != name or name in (".", "..")):
        raise InputError(f"output_name={name!r}: must be a plain folder name (no '/'), e.g. tsp_no_gvf")


def _check_names(config: PretrainConfig) -> None:
    from tsplab.backbones import BACKBONES

    get_method(config.method)
    if config.backbone not in BACKBONES:
        raise InputError(f"backbone: unknown backbone {config.backbone!r}; valid backbones: "
                         f"{', '.join(BACKBONES)}")
    if config.optimizer not in OPTIMIZERS:
        raise InputError(f"optimizer={config.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    if config.device:
        try:
            torch.device(config.device)
        except RuntimeError:
            raise InputError(f"device={config.device!r}: not a torch device; give cpu, cuda, cuda:1, ... "
                             "or leave it empty (CUDA when available)") from None


def check_config(config: PretrainConfig) -> None:
    """Fail at once on a bad setting, naming the field, the value and what is valid (``InputError``),
    before any file is read: field types, names (method, backbone, optimizer, device), ranges, crop
    within the resized frame, a data source given, and the method's own options (checked by its
    constructor). Files and folders are checked by ``check_inputs``."""
    _check_types(config)
    _check_names(config)
    _check_values(config)
    if not (config.dataset_dir or (config.annotations and config.video_dir)):
        raise InputError("dataset_dir: give dataset_dir (a folder with annotations.json and videos/) or "
                         "both annotations and video_dir")
    try:
        get_method(config.method)(config)  # method options are checked by the method's constructor
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(str(exc)) from exc


def data_paths(config: PretrainConfig) -> dict[str, Path]:
    """The annotation files and the video folder a run reads: ``annotations``, ``valid_annotations``
    and ``video_dir`` (defaults under ``dataset_dir``: ``annotations.json``, ``videos/``)."""
    dataset = resolve(config.dataset_dir) if config.dataset_dir else None
    ann_path = resolve(config.annotations) if config.annotations else dataset / "annotations.json"
    return {"annotations": ann_path,
            "valid_annotations": resolve(config.valid_annotations) if config.valid_annotations else ann_path,
            "video_dir": resolve(config.video_dir) if config.video_dir else dataset / "videos"}


def check_inputs(config: PretrainConfig) -> None:
    """Every file and folder a run reads or writes, checked before any is touched (``InputError``
    naming the field and the path): the dataset folder, annotation files, video folder, GVF file
    and BSP teachers exist; the run folder and the frame cache can be created and written."""
    from tsplab.features import resolve_checkpoint

    if config.dataset_dir and not resolve(config.dataset_dir).is_dir():
        raise InputError(f"dataset_dir: {resolve(config.dataset_dir)}: folder not found; give a folder "
                         "with annotations.json and videos/")
    paths = data_paths(config)
    for name in ("annotations", "valid_annotations"):
        if not paths[name].is_file():
            raise InputError(f"{name}: {paths[name]}: file not found; give an annotation file "
                             "(ActivityNet/DETAD JSON, TSP CSV or custom CSV)")
    if not paths["video_dir"].is_dir():
        raise InputError(f"video_dir: {paths['video_dir']}: folder not found; give the folder of the videos")
    if config.gvf_file and not resolve(config.gvf_file).is_file():
        raise InputError(f"gvf_file: {resolve(config.gvf_file)}: file not found; give a GVF h5 file "
                         "(tsplab gvf) or leave it empty to compute the GVFs")
    if config.method == "bsp" and config.bsp_integration == "distill":
        for i, teacher in enumerate(config.bsp_teachers):
            try:
                resolve_checkpoint(teacher)
            except FileNotFoundError as exc:
                raise InputError(f"bsp_teachers[{i}]: {exc}") from None
    check_output_folder(config.output_dir, "run_dir")
    if config.frame_cache_dir:
        check_output_folder(config.frame_cache_dir, "frame_cache_dir")
    else:
        check_output_folder(resolve(config.run_dir) / "frame_cache", "run_dir")


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


def build_lr_scheduler(optimizer, config: PretrainConfig, steps_per_epoch: int):
    """Per-iteration warm-up + multi-step decay (epochs in the config, converted to iterations)."""
    factor = WarmupMultiStep(round(config.warmup_epochs * steps_per_epoch),
                             [round(m * steps_per_epoch) for m in config.lr_milestones],
                             config.lr_gamma, config.warmup_factor)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# --------------------------------------------------------------------------------------------- data
def prepare_data(config: PretrainConfig, dist: DistContext | None = None,
                 report: list | None = None) -> PretrainData:
    """Segment tables of the training and validation subsets, the label list, and the frame cache
    (built by the first process of each node for every video of both tables, reused by later runs
    and methods).

    Videos whose frames cannot be decoded are left out (named in ``report`` with the error)."""
    from tsplab.annotations import build_segment_table, read_annotations
    from tsplab.video import FrameCache

    paths = data_paths(config)
    ann_path, valid_path, video_dir = paths["annotations"], paths["valid_annotations"], paths["video_dir"]
    ann = read_annotations(ann_path)
    valid_ann = ann if valid_path == ann_path else read_annotations(valid_path)
    min_background_s = config.min_background_clips * config.clip_length_frames / config.frame_rate
    report = report if report is not None else []
    tables = {}
    for split, source, subset in (("train", ann, config.train_subset), ("valid", valid_ann, config.valid_subset)):
        part = source.subset(subset) if subset in source.subsets else None
        if part is None or not len(part.videos):
            field = "train_subset" if split == "train" else "valid_subset"
            raise InputError(f"{ann_path if split == 'train' else valid_path}: no videos in subset {subset!r} "
                             f"({field}); subsets in the file: {', '.join(source.subsets) or 'none'}")
        table, dropped = build_segment_table(part, min_background_s=min_background_s)
        tables[split] = table
        for row in dropped.to_dict("records"):
            report.append({"split": split, "stage": "segment table", **_short_record(row)})

    cache_root = resolve(config.frame_cache_dir) if config.frame_cache_dir else resolve(config.run_dir) / "frame_cache"
    cache = FrameCache(cache_root, config.frame_rate, config.resize_short_side)
    filenames = sorted(set(tables["train"]["filename"]) | set(tables["valid"]["filename"]))
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
        for split in tables:
            stems = tables[split]["filename"].map(lambda f: Path(f).stem)
            tables[split] = tables[split][~stems.isin(bad)].reset_index(drop=True)
    return PretrainData(train_table=tables["train"], valid_table=tables["valid"], labels=list(ann.labels),
                        video_dir=video_dir, frames=cache, clip_length_frames=config.clip_length_frames,
                        frame_rate=config.frame_rate)


def _short_record(row: dict) -> dict:
    """One ``data_report`` row from a segment-table row (sampling) or a validation-report row
    (``tsplab.annotations.validate_instances``: ``video, t_start_s, t_end_s, label, problem, action``)."""
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


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def pretrain(config: PretrainConfig, *, resume: bool = False, stop_after_epochs: int | None = None) -> PretrainResult:
    """Pretrain ``config.method`` and return the run's metrics and checkpoints.

    ``resume``: continue from the run folder's ``checkpoint.pt`` (a fresh start, with a warning, if
    there is none). ``stop_after_epochs``: return after this many epochs of this call (for jobs with
    a time limit; ``resume=True`` continues; at least 1). Under ``torchrun`` every process calls this;
    the process group is created here (NCCL on CUDA, gloo on CPU) and destroyed at the end if created
    here.

    Nothing is lost on bad input: the settings (``check_config``), the files and folders
    (``check_inputs``), the initial weights and the data are all checked before the run folder is
    touched (``InputError`` naming the field or file). A fresh run in a folder that holds an earlier
    run's results sets them aside in ``previous/`` and deletes them only once it has written its
    first checkpoint (see ``_PreviousRun``).
    """
    check_config(config)
    if stop_after_epochs is not None and (not _has_type(stop_after_epochs, "int") or stop_after_epochs < 1):
        raise InputError(f"stop_after_epochs={stop_after_epochs!r}: must be a whole number >= 1 "
                         "(None: train to the last epoch)")
    check_inputs(config)
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
    from tqdm.auto import tqdm

    from tsplab.backbones import build_backbone

    out_dir = config.output_dir
    if dist.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed clip shapes: let cuDNN pick its fastest kernels
    ckpt_path = out_dir / CHECKPOINT
    checkpoint = _resume_checkpoint(out_dir, config) if resume else None
    # The initial weights are read before the data: a bad path must not wait for the frame cache.
    initial_weights = _load_initial_weights(config)

    report: list = []
    data = prepare_data(config, dist, report)
    method = get_method(config.method)(config)
    train_set, valid_set = method.build_datasets(data)
    for split, ds in (("train", train_set), ("valid", valid_set)):
        for row in getattr(ds, "dropped", pd.DataFrame()).to_dict("records"):
            report.append({"split": split, "stage": "clip sampling", **_short_record(row)})
    data_report = pd.DataFrame(report, columns=["split", "stage", "video", "reason", "t-start", "t-end",
                                                "action-label", "temporal-region-label"])

    # The same seed builds the same initial weights on every process.
    torch.manual_seed(config.seed)
    backbone = build_backbone(config.backbone, weights=initial_weights)
    model = method.build_model(backbone, data).to(dist.device)
    optimizer = build_optimizer(model, config, dist.world_size)
    train_loader, train_sampler = make_loader(train_set, config, dist, train=True)
    valid_loader, valid_sampler = make_loader(valid_set, config, dist, train=False)
    steps_per_epoch = len(train_loader)
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise InputError(f"batch_size={config.batch_size}: the training set has {len(train_set)} clips, "
                         f"fewer than one batch per process; lower batch_size")
    scheduler = build_lr_scheduler(optimizer, config, steps_per_epoch)
    amp_dtype = _autocast_dtype(config, dist.device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    # Every input is checked and the data is ready: only now is the run folder written.
    previous = _PreviousRun(out_dir)
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if checkpoint is None:
            previous.set_aside(config)
            save_config(config, out_dir)
        with atomic_path(out_dir / DATA_REPORT) as tmp:
            data_report.to_csv(tmp, index=False)
    barrier()

    try:
        ctx = TrainContext(config=config, model=model, dist=dist, output_dir=out_dir, data=data,
                           train_dataset=train_set, valid_dataset=valid_set, autocast_dtype=amp_dtype)
        # Before loading a checkpoint: frozen GVFs come from the *initial* encoder.
        method.setup(ctx)

        start_epoch, rows, best = 0, [], {"epoch": -1, "score": -math.inf}
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["lr_scheduler"])
            scaler.load_state_dict(checkpoint["scaler"])
            method.load_state_dict(checkpoint.get("method", {}))
            _set_rng_states(checkpoint["rng"])
            start_epoch = checkpoint["epoch"] + 1
            ctx.global_step = checkpoint["global_step"]
            rows = list(checkpoint.get("metrics", []))
            best = dict(checkpoint.get("best", best))

        net = model
        if dist.distributed:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)

        def autocast():
            if amp_dtype is None:
                return contextlib.nullcontext()
            return torch.autocast(device_type=dist.device.type, dtype=amp_dtype)

        def sync():
            if dist.device.type == "cuda":
                torch.cuda.synchronize(dist.device)

        epochs_done = 0
        for epoch in range(start_epoch, config.epochs):
            ctx.epoch = epoch
            generator = _seed_epoch(config.seed, epoch, dist.rank)
            train_sampler.set_epoch(epoch)
            valid_sampler.set_epoch(epoch)
            gvf_before = getattr(method, "gvf_seconds", 0.0)

            # ---- train
            model.train()
            meter = _Meter(method.head_names, dist.device)
            wait_s, clips = 0.0, 0
            t_epoch = time.perf_counter()
            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch} train", unit="step",
                       disable=not (config.progress and dist.is_main), leave=False)
            batches = iter(train_loader)
            t_ready = time.perf_counter()
            for step in range(steps_per_epoch):
                batch = _to_device(next(batches), dist.device)
                sync()
                wait_s += time.perf_counter() - t_ready
                with autocast():
                    out = method.step(net, batch, train=True, generator=generator)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(out.loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                ctx.global_step += 1
                method.after_optimizer_step(ctx)
                meter.add(out)
                clips += int(batch["clip"].shape[0])
                if step % 10 == 0 and bar.total:
                    bar.set_postfix(loss=f"{out.loss.item():.3f}")
                bar.update()
                sync()
                t_ready = time.perf_counter()
            bar.close()
            del batches
            if dist.distributed:
                # DDP broadcasts buffers at the start of each forward, so after the last step every process
                # holds BN statistics updated by its own last batch: take process 0's, so that validation,
                # GVFs and the checkpoint see one model.
                for buffer in model.buffers():
                    torch.distributed.broadcast(buffer, src=0)
            # GVF refreshes during the epoch (momentum mode) are reported apart from training time.
            train_s = time.perf_counter() - t_epoch - (getattr(method, "gvf_seconds", 0.0) - gvf_before)
            lrs = {f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups}
            row = {"epoch": epoch, **lrs, **meter.result("train")}

            method.on_train_epoch_end(ctx)

            # ---- validate
            t_valid = time.perf_counter()
            model.eval()
            meter = _Meter(method.head_names, dist.device)
            with torch.no_grad():
                for batch in tqdm(valid_loader, desc=f"epoch {epoch} valid", unit="step", leave=False,
                                  disable=not (config.progress and dist.is_main)):
                    # The unwrapped model: no gradients to synchronise, and processes may hold different
                    # numbers of validation batches.
                    with autocast():
                        meter.add(method.step(model, _to_device(batch, dist.device), train=False))
            row.update(meter.result("valid"))
            score = float(np.mean([row[f"valid_acc_{h}"] for h in method.selection_heads]))
            waits = all_reduce_sum(torch.tensor([wait_s, train_s], dtype=torch.float64, device=dist.device)).cpu()
            row.update({
                "valid_acc_avg": score,
                "train_steps": steps_per_epoch,
                "data_wait_share": float(waits[0] / waits[1]) if waits[1] > 0 else float("nan"),
                "clips_per_s": clips * dist.world_size / train_s,
                "train_seconds": train_s,
                "valid_seconds": time.perf_counter() - t_valid,
                "gvf_seconds": getattr(method, "gvf_seconds", 0.0) - gvf_before,
            })
            rows.append(row)
            improved = score > best["score"]
            if improved:
                best = {"epoch": epoch, "score": score}

            # ---- write (process 0 only)
            if dist.is_main:
                state = {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "lr_scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                    "epoch": epoch, "global_step": ctx.global_step, "rng": _rng_states(),
                    "config": dataclasses.asdict(config), "method": method.state_dict(),
                    "metrics": rows, "best": best,
                }
                if improved:
                    _save_checkpoint(out_dir / BEST, {"model": state["model"], "config": state["config"],
                                                      "epoch": epoch, "metrics": row})
                _save_checkpoint(ckpt_path, state)
                if config.keep_epoch_checkpoints:
                    _save_checkpoint(out_dir / f"epoch_{epoch:03d}.pt", state)
                with atomic_path(out_dir / METRICS) as tmp:
                    pd.DataFrame(rows).to_csv(tmp, index=False)
                previous.drop()  # this run's first checkpoint exists: the earlier run's files go
            barrier()
            epochs_done += 1
            if stop_after_epochs is not None and epochs_done >= stop_after_epochs:
                break
    except BaseException:
        if dist.is_main:
            previous.restore()  # failed before its first checkpoint: the earlier run's files come back
        raise

    return PretrainResult(output_dir=out_dir, metrics=pd.DataFrame(rows), best_epoch=int(best["epoch"]),
                          best_checkpoint=out_dir / BEST, checkpoint=ckpt_path, data_report=data_report,
                          model=model)


_GVF_INPUTS = ("backbone", "weights", "seed", "dataset_dir", "annotations", "video_dir", "clip_length_frames",
               "frame_rate", "resize_short_side", "crop_size", "gvf_stride_frames", "gvf_pooling")


def _resume_checkpoint(out_dir: Path, config: PretrainConfig) -> dict | None:
    """The run folder's ``checkpoint.pt`` (safe loader), or None (with a warning) when there is none."""
    from tsplab.backbones import load_checkpoint_file

    path = out_dir / CHECKPOINT
    if not path.is_file():
        warnings.warn(f"resume: no {CHECKPOINT} in {out_dir}; starting from scratch")
        return None
    checkpoint = load_checkpoint_file(path)
    _warn_config_changes(checkpoint.get("config", {}), dataclasses.asdict(config), path)
    return checkpoint


class _PreviousRun:
    """An earlier run's files in a run folder, kept until a fresh run there has replaced them.

    Design: once every input is checked and the data is ready, a fresh (not resumed) run moves the
    earlier run's files (``checkpoint.pt``, ``best.pt``, ``metrics.csv``, ``epoch_*.pt``,
    ``data_report.csv``, ``config.json``, and GVF files computed with other settings) into
    ``<run folder>/previous/``, one atomic ``os.replace`` each, before writing its own
    ``config.json``. While it trains its first epoch the folder holds no checkpoint and no metrics at
    all, so nothing that reads it (``tsplab.features.resolve_checkpoint``, extraction, ``read_metrics``)
    can take the earlier run's results for this run's. When this run has written its first
    checkpoint and metrics, ``previous/`` is deleted (``drop``). If it fails before that (an
    exception or Ctrl-C), its own files are removed and the earlier ones moved back (``restore``).
    A run killed before its first checkpoint leaves them in ``previous/``: the next fresh run keeps
    them there (the files beside them then belong to the killed attempt, not to a finished run) and
    deletes them only after its own first checkpoint. Only process 0 calls these methods.
    """

    FOLDER = "previous"
    RESULTS = (CHECKPOINT, BEST, METRICS, "epoch_*.pt")
    OTHERS = (DATA_REPORT, "config.json", "gvf_initial_*.h5")

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.folder = out_dir / self.FOLDER
        self.active = False  # True while previous/ holds files that restore() would bring back
        self.kept: set[str] = set()  # run files left in place (GVFs reused by this run)

    def _files(self, patterns) -> list[Path]:
        return sorted({p for pattern in patterns for p in self.out_dir.glob(pattern) if p.is_file()})

    def set_aside(self, config: PretrainConfig) -> None:
        results = self._files(self.RESULTS)
        moved = results + [p for p in self._files(self.OTHERS) if not self._reusable(p, config)]
        if results and self.folder.is_dir():
            # previous/ holds an older generation whose replacement finished an epoch (and was
            # killed before deleting it): the folder's own results are the ones to keep.
            shutil.rmtree(self.folder)
        if self.folder.is_dir():
            for path in moved:  # a killed attempt's config, report and GVFs, not a finished run's
                path.unlink()
            moved = []
            warnings.warn(f"{self.out_dir}: the earlier run's files stay in {self.folder} until this run "
                          "writes its first checkpoint")
        elif moved:
            self.folder.mkdir()
            for path in moved:
                os.replace(path, self.folder / path.name)
            warnings.warn(f"{self.out_dir}: a fresh run replaces the earlier run's "
                          f"{', '.join(p.name for p in moved)}: moved to {self.folder}, deleted once this run "
                          "writes its first checkpoint, moved back if it fails before (resume=True continues "
                          "the earlier run instead)")
        self.active = self.folder.is_dir()
        self.kept = {p.name for p in self._files(self.RESULTS + self.OTHERS)}

    def _reusable(self, path: Path, config: PretrainConfig) -> bool:
        """A frozen-GVF file stays when the earlier run computed it with this run's settings."""
        if not path.name.startswith("gvf_initial_"):
            return False
        try:
            old = read_json(self.out_dir / "config.json")
        except (OSError, InputError):
            return False
        new = dataclasses.asdict(config)
        return all(_plain(old.get(k)) == _plain(new.get(k)) for k in _GVF_INPUTS)

    def drop(self) -> None:
        """This run has written its first checkpoint: the earlier run's files go."""
        if self.active:
            shutil.rmtree(self.folder)
            self.active = False

    def restore(self) -> None:
        """This run failed before its first checkpoint: remove its files, bring the earlier ones back."""
        if not self.active:
            return
        for path in self._files(self.RESULTS + self.OTHERS):
            if path.name not in self.kept:
                path.unlink()
        for path in self.folder.iterdir():
            os.replace(path, self.out_dir / path.name)
        self.folder.rmdir()
        self.active = False


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _warn_config_changes(old: dict, new: dict, path: Path) -> None:
    ignore = {"epochs", "workers", "progress", "device", "keep_epoch_checkpoints", "trust_pickle"}
    changed = sorted(k for k in new if k not in ignore and _plain(old.get(k)) != _plain(new[k]))
    if changed:
        warnings.warn(f"{path}: resuming with settings that differ from the checkpoint's: {changed}")


def read_metrics(output_dir) -> pd.DataFrame:
    """The per-epoch metrics table of a pretraining run folder."""
    path = resolve(output_dir) / METRICS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics; has this run finished an epoch?")
    return pd.read_csv(path)


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_overrides(items: list[str]) -> dict:
    """``["alpha_c=0", "lr_milestones=[3, 5]", "weights=none", "amp=false"]`` -> ``PretrainConfig``
    values typed by each field's annotation: whole numbers for ``int`` fields, finite numbers for
    ``float``, ``true/false/1/0/yes/no`` for ``bool``, text as given for ``str``, ``none``/``null``
    for a field that may be None (``weights``), and for ``tuple`` fields a JSON list (``[3, 5]``) or
    comma-separated values (``3,5``; empty: ``[]``) whose items have the type of the default's.
    A malformed item, an unknown field or a value of the wrong type raises ``InputError`` naming
    the field, the value and what is valid."""
    fields = {f.name: f for f in dataclasses.fields(PretrainConfig)}
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            what = f"unknown field {key!r}" if sep else "expected FIELD=VALUE"
            raise InputError(f"--set {item!r}: {what}; valid fields: {', '.join(sorted(fields))}")
        out[key] = _parse_value(fields[key], text.strip())
    return out


def _parse_value(field: dataclasses.Field, text: str):
    kind, optional = _field_kind(field)
    if optional and text.lower() in ("none", "null"):
        return None
    try:
        if kind == "tuple":
            return _parse_tuple(text, field.default)
        return _parse_scalar(text, kind)
    except ValueError:
        example = _plain(field.default)
        raise InputError(f"--set {field.name}={text!r}: expected {_EXPECTED[kind]}"
                         f"{' or none' if optional else ''} for field {field.name} "
                         f"(default: {json.dumps(example)})") from None


def _parse_scalar(text: str, kind: str):
    """``text`` as a value of ``kind`` (int, float, bool, str); ``ValueError`` when it is not one."""
    if kind == "int":
        return int(text)  # "8" yes; "8.5", "abc", "" no
    if kind == "float":
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    if kind == "bool":
        if text.lower() not in _TRUE + _FALSE:
            raise ValueError(text)
        return text.lower() in _TRUE
    return text


def _parse_tuple(text: str, default: tuple) -> tuple:
    """A JSON list or comma-separated items. Items are numbers when the default's are (ints stay
    ints: ``[3, 5]`` -> ``(3, 5)``), else text (a field with an empty default takes text)."""
    try:
        items = json.loads(text)
        items = items if isinstance(items, list) else [items]
    except json.JSONDecodeError:
        inner = text.strip().removeprefix("[").removesuffix("]")
        items = [s.strip().strip("'\"") for s in inner.split(",")] if inner.strip() else []
    if not (default and all(isinstance(d, numbers.Real) for d in default)):
        return tuple(str(i) for i in items)
    return tuple(_number(i) for i in items)


def _number(item):
    """A JSON number, or a string holding one (int when whole, else float); ``ValueError`` else."""
    if isinstance(item, str):
        try:
            return int(item)
        except ValueError:
            return _parse_scalar(item, "float")
    if isinstance(item, bool) or not isinstance(item, numbers.Real) or not math.isfinite(item):
        raise ValueError(item)
    return item


def read_run_metrics(run_dir, names=None) -> dict[str, pd.DataFrame]:
    """``{name: metrics}`` of the pretraining runs under ``RUN/pretrain/`` that finished an epoch
    (``names``: only these run folders), e.g. to plot TAC and TSP together."""
    root = resolve(run_dir) / "pretrain"
    folders = sorted(p for p in root.glob("*") if (p / METRICS).is_file()) if root.is_dir() else []
    return {p.name: read_metrics(p) for p in folders if names is None or p.name in names}
