"""The run folder of a pretraining run, and the driver that trains into it.

Folder ``<run_dir>/pretrain/<output_name or method>/``: ``config.json``, ``metrics.csv`` (one row
per epoch), ``checkpoint.pt`` (the latest epoch: model, optimizer, scheduler, scaler, epoch, RNG
states, config, method state), ``best.pt`` (``{"model", "config", "epoch", "metrics"}``; the backbone
under ``features.``, the layout ``tsplab.backbones.load_backbone_weights`` and feature extraction
read), ``data_report.csv`` (every segment or video left out, with the reason), ``pretrain_split.csv``
(the videos trained and validated on), and the method's own files (``run_files``: TSP's frozen GVFs
``gvf_initial_max.h5``). Only process 0 writes.

Nothing is lost on bad input: settings, files, initial weights and data are checked before the run
folder is touched (``check_run``; ``InputError`` names the field or file). A fresh run in a folder
holding an earlier run's results moves them to ``previous/`` and deletes them once it has written
its first checkpoint (moved back if it fails before; ``_PreviousRun``, on ``tsplab.runs.PreviousRun``).
A resumed run must have its checkpoint's settings (``_check_config_unchanged``). Checkpoints are read
with torch's safe loader only (``tsplab.checkpoints.load_checkpoint_file``).
"""
from __future__ import annotations

import numbers
import warnings
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn

from tsplab.checkpoints import load_checkpoint_file
from tsplab.distributed import DistContext, barrier, cleanup, init_distributed
from tsplab.errors import InputError
from tsplab.config import plain_value
from tsplab.pretrain.config import (SOURCE_WEIGHTS, PretrainConfig, check_config, check_inputs, config_from_dict,
                                    config_values)
from tsplab.pretrain.data import pretrain_split
from tsplab.pretrain.loop import (BEST, CHECKPOINT, METRICS, PretrainResult, build_loop, load_initial_weights,
                                  restore_checkpoint, run_epoch, save_checkpoint)
from tsplab.pretrain.methods import METHODS, get_method
from tsplab.runs import PreviousRun, read_json, resolve, save_config, write_csv

DATA_REPORT = "data_report.csv"
SPLIT = "pretrain_split.csv"


def check_run(config: PretrainConfig, stop_after_epochs: int | None = None) -> None:
    """Everything checkable before a run starts: the settings (``check_config``), ``stop_after_epochs``
    (None or a whole number >= 1) and the files and folders (``check_inputs``); ``InputError``."""
    check_config(config)
    whole = isinstance(stop_after_epochs, numbers.Integral) and not isinstance(stop_after_epochs, bool)
    if stop_after_epochs is not None and (not whole or stop_after_epochs < 1):
        raise InputError(f"stop_after_epochs={stop_after_epochs!r}: must be a whole number >= 1 "
                         "(None: train to the last epoch)")
    check_inputs(config)


def run_pretraining(config: PretrainConfig, *, resume: bool = False,
                    stop_after_epochs: int | None = None) -> PretrainResult:
    """Train a config that passed ``check_run`` and whose ``weights`` are resolved (never
    ``"source"``: ``tsplab.pretrain.pretrain`` resolves them first). Under ``torchrun`` every process
    calls this; the process group is created here (NCCL on CUDA, gloo on CPU) and destroyed at the
    end if created here."""
    if config.weights == SOURCE_WEIGHTS:
        raise InputError("weights='source': resolve it first (tsplab.pretrain.pretrain does)")
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
    loop, data_report = build_loop(config, dist, load_initial_weights(config))
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
