"""The synthetic benchmark's source stage: TAC on its trimmed source set gives every method's initial
encoder (TSP §3.3, §4.1), and ``weights="source"`` resolves to that checkpoint.

As every encoder of the paper starts from TAC on Kinetics, every method on the benchmark starts from
TAC on the benchmark's source set: ``ensure_source_encoder`` trains it once per benchmark through
the one loop (settings ``source_pretrain_config``: the synthetic recipe with the benchmark's clip,
from random weights) into ``BENCHMARK/source_encoder/``; ``resolve_weights`` replaces
``weights="source"`` by its ``best.pt`` when a run starts. The benchmark's folder layout
(``SOURCE_DIR``, ``SOURCE_ENCODER_DIR``) and its source set come from ``tsplab.benchmark``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path

import pandas as pd
import torch

from tsplab.errors import InputError
from tsplab.pretrain.config import SOURCE_WEIGHTS, PretrainConfig
from tsplab.pretrain.recipes import RECIPES, pretrain_config
from tsplab.pretrain.run_folder import check_run, read_metrics, run_pretraining
from tsplab.runs import path_anchor, read_json, resolve, write_json
from tsplab.benchmark import (SOURCE_DIR, SOURCE_ENCODER_DIR, generate_source, read_benchmark_config,
                              source_config)

_SOURCE_ENCODER_DONE = "source_encoder.json"  # written once the run has trained every epoch
# torchrun's variables: hidden from the source run, which is one process (see _one_process).
_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                       "GROUP_WORLD_SIZE", "ROLE_RANK", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def source_encoder_path(benchmark_dir) -> Path:
    """Where the benchmark's initial encoder lives: ``BENCHMARK/source_encoder/pretrain/tac/best.pt``
    (the ``best.pt`` of TAC on its source set; ``BENCHMARK/source_encoder`` is that run's run_dir, so
    ``tsplab.backbones`` and extraction read it like any pretraining run)."""
    return resolve(benchmark_dir) / SOURCE_ENCODER_DIR / "pretrain" / "tac" / "best.pt"


def synthetic_benchmark_folder(benchmark_dir, field_name: str = "dataset_dir") -> Path:
    """``benchmark_dir`` resolved, or ``InputError`` (one line, naming ``field_name``) when it holds
    no synthetic benchmark (``benchmark.json``): only the built-in benchmark has a source set."""
    folder = resolve(benchmark_dir) if str(benchmark_dir) else None
    if folder is None or not (folder / "benchmark.json").is_file():
        raise InputError(f"{field_name}: {folder or '(empty)'} is not a synthetic benchmark (no "
                         "benchmark.json): weights='source' (TAC on the benchmark's source set) exists only "
                         "for the built-in benchmark (tsplab synth); give weights=kinetics400, a checkpoint "
                         "path or none")
    return folder


def source_pretrain_config(benchmark_dir, *, seed: int | None = None, progress: bool = True):
    """The ``PretrainConfig`` of TAC on the source set of ``benchmark_dir``: the synthetic pretraining
    recipe (``tsplab.pretrain.recipes.RECIPES["synthetic"]``) with the benchmark's own clip (read from
    its ``benchmark.json``, so source and target runs see identical clips), from random weights,
    into ``BENCHMARK/source_encoder/``; ``seed`` None: the benchmark's own seed."""
    folder = synthetic_benchmark_folder(benchmark_dir, "benchmark_dir")
    seed = read_benchmark_config(folder)[1] if seed is None else int(seed)
    config = pretrain_config("synthetic", method="tac", dataset_dir=str(folder), weights=None,
                             dataset="synthetic", run_dir=str(folder / SOURCE_ENCODER_DIR), seed=seed,
                             progress=progress, valid_holdout=0.0)
    # The background rule is named (dataset="synthetic"); trimmed videos have no background anyway.
    # The source set's own validation videos choose its best epoch: none of them is a target video.
    return dataclasses.replace(config, dataset_dir=str(folder / SOURCE_DIR))


def ensure_source_encoder(benchmark_dir, *, seed: int | None = None, progress: bool = True) -> Path:
    """The initial encoder of the synthetic benchmark in ``benchmark_dir``: TAC on its source set,
    trained on first use through the one loop (``tsplab.pretrain.run_folder.run_pretraining``, settings
    :func:`source_pretrain_config`), reused afterwards; returns its ``best.pt``
    (:func:`source_encoder_path`).

    ``seed`` seeds that training run; None (the default): the benchmark's own seed (0 for the
    benchmarks ``tsplab synth`` and the demo make), so that one benchmark always gets one initial
    encoder, as one Kinetics model serves every run of the paper; a finished run of another seed
    raises ``InputError`` rather than being passed off as this one. Writes the source set first if
    the folder lacks it. A run killed midway resumes from its ``checkpoint.pt``;
    ``source_encoder.json`` marks a finished run. Processes that call this at once (a study's cells, torchrun's ranks)
    wait for the first one's run (a file lock) instead of training twice. ``InputError`` when the
    folder holds no synthetic benchmark."""
    folder = synthetic_benchmark_folder(benchmark_dir, "benchmark_dir")
    seed = read_benchmark_config(folder)[1] if seed is None else int(seed)
    path = source_encoder_path(folder)
    if _finished_source_encoder(folder, seed):
        return path
    with _source_lock(folder):
        if _finished_source_encoder(folder, seed):  # another process trained it while we waited
            return path
        _train_source_encoder(folder, seed, progress)
    return path



def resolve_weights(config: PretrainConfig) -> PretrainConfig:
    """``config`` with ``weights="source"`` replaced by the path of its benchmark's initial encoder
    (TAC on the source set of the synthetic benchmark in ``dataset_dir``: the checkpoint
    :func:`ensure_source_encoder` returns, trained first, with a message, when absent); any other
    ``weights`` unchanged. ``tsplab.pretrain.pretrain`` calls it after the checks, before the run
    folder is touched, so ``config.json`` names the checkpoint the run started from. A
    ``dataset_dir`` that is no synthetic benchmark, or a backbone other than the source encoder's,
    raises ``InputError``."""
    if config.weights != SOURCE_WEIGHTS:
        return config
    folder = synthetic_benchmark_folder(config.dataset_dir, "dataset_dir")
    source_backbone = RECIPES["synthetic"]["backbone"]
    if config.backbone != source_backbone:
        raise InputError(f"backbone={config.backbone!r}: weights='source' is a {source_backbone} (TAC on the "
                         f"benchmark's source set); use backbone={source_backbone}, or weights=none for a "
                         "randomly initialised encoder")
    path = ensure_source_encoder(folder, progress=config.progress)
    root = path_anchor()
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    return dataclasses.replace(config, weights=str(shown))


def source_encoder_summary(benchmark_dir) -> pd.DataFrame:
    """One row per epoch of the benchmark's source run (TAC on its source set): training loss,
    validation clip accuracy on the source set's validation videos (``valid_acc_action``), seconds;
    ``best`` marks the epoch kept as the initial encoder. ``FileNotFoundError`` before its first epoch."""
    metrics = read_metrics(source_encoder_path(benchmark_dir).parent)
    table = metrics[["epoch", "train_loss", "train_acc_action", "valid_acc_action", "train_seconds"]].copy()
    table["best"] = table["valid_acc_action"] == table["valid_acc_action"].max()
    table.loc[table["best"].cumsum() > 1, "best"] = False  # the first best epoch, as the loop keeps it
    return table


def _finished_source_encoder(folder: Path, seed: int) -> bool:
    marker = folder / SOURCE_ENCODER_DIR / _SOURCE_ENCODER_DONE
    if not (marker.is_file() and source_encoder_path(folder).is_file()):
        return False
    done = read_json(marker)
    if int(done.get("seed", -1)) != int(seed):
        raise InputError(f"{marker}: this benchmark's source encoder was trained with seed {done.get('seed')}, "
                         f"not {seed}; one initial encoder serves every run of a benchmark (delete "
                         f"{marker.parent} to train it again)")
    return True


def _train_source_encoder(folder: Path, seed: int, progress: bool) -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        raise InputError(f"weights='source': {folder} has no source encoder yet and this process is part of "
                         "a process group; train it first in one process: python -c \"from tsplab.pretrain.source "
                         f"import ensure_source_encoder; ensure_source_encoder('{folder}')\"")
    generate_source(folder, progress=progress)
    config = source_pretrain_config(folder, seed=seed, progress=progress)
    source = source_config(read_benchmark_config(folder)[0])
    print(f"tsplab: training the initial encoder of {folder} (weights='source'): TAC on its source set "
          f"({source.num_train_videos} training videos, {source.num_classes} classes) into {config.output_dir}; "
          "once per benchmark (the default benchmark: a few minutes on 2 CPU cores)", flush=True)
    start = time.perf_counter()
    with _one_process():
        check_run(config)
        result = run_pretraining(config, resume=_resumable(config, seed))
    best = result.metrics.set_index("epoch").loc[result.best_epoch]
    write_json(folder / SOURCE_ENCODER_DIR / _SOURCE_ENCODER_DONE, {
        "complete": True, "seed": int(seed), "best_epoch": int(result.best_epoch),
        "valid_acc_action": float(best["valid_acc_action"]), "epochs": int(config.epochs),
        "seconds": round(time.perf_counter() - start, 1)})


def _resumable(config, seed: int) -> bool:
    """A killed source run (checkpoint, same seed) continues; anything else starts afresh (the loop
    sets an earlier run's files aside)."""
    saved = config.output_dir / "config.json"
    return (config.output_dir / "checkpoint.pt").is_file() and saved.is_file() \
        and read_json(saved).get("seed") == seed


@contextlib.contextmanager
def _source_lock(folder: Path):
    """An exclusive lock on ``BENCHMARK/source_encoder/lock`` (POSIX ``flock``; none elsewhere)."""
    lock_dir = folder / SOURCE_ENCODER_DIR
    lock_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (concurrent first uses would train twice)
        yield
        return
    with open(lock_dir / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _one_process():
    """Hide torchrun's variables while the source run trains, so that it runs as one process even
    when a rank of a torchrun job triggers it (the other ranks wait on the lock meanwhile)."""
    saved = {k: os.environ.pop(k) for k in _TORCHRUN_VARIABLES if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
