"""The one pretraining loop: any method of ``tsplab.pretrain.methods``, one process or many (torchrun + DDP).

Read top to bottom, as torchvision's video-classification reference: ``build_loop`` makes the run
(data, method, model, optimizer, schedule, loaders), then per epoch ``run_epoch`` calls
``train_one_epoch`` (the optimizer steps), the method's epoch end and ``evaluate`` (the validation
pass); ``save_checkpoint`` / ``restore_checkpoint`` write and read ``checkpoint.pt`` and ``best.pt``.
The run folder around it (earlier runs, resume, the driver) is ``tsplab.pretrain.run_folder``.

AMP on CUDA only (bf16 where supported, else fp16 with a gradient scaler; never on the CPU, where
reduced precision is far slower). Validation after every epoch: clip accuracy per head; the epoch
with the best average accuracy is kept as ``best.pt`` (TSP's model selection), on the validation
subset or, with ``valid_holdout`` > 0, on that share of the training videos held out of training.

The loop never knows a method: what is method-specific (datasets, model, loss, hooks, work outside
the training steps reported in its own metrics column) lives behind ``PretrainMethod``.

Exact resume: every random draw of an epoch is seeded from ``(seed, epoch, rank)`` (clip positions,
balanced subsets and order, crops and flips), DataLoader workers do no random work, and checkpoints
hold everything else, so on the CPU a run killed after epoch k and resumed ends with bit-identical
weights to one that was never interrupted.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from tsplab.backbones import build_backbone, load_backbone_weights
from tsplab.distributed import DistContext, all_reduce_sum
from tsplab.errors import InputError
from tsplab.pretrain.config import PretrainConfig
from tsplab.pretrain.data import make_loader, prepare_data, report_record
from tsplab.pretrain.methods import TrainContext, get_method
from tsplab.pretrain.optim import build_lr_scheduler, build_optimizer, step_plateau
from tsplab.runs import atomic_path, resolve, write_csv

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
METRICS = "metrics.csv"


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


@dataclasses.dataclass
class _Loop:
    """What the epochs of one run share (built by ``build_loop``): the method, its model (``model``
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


def build_loop(config: PretrainConfig, dist: DistContext, initial_weights) -> tuple[_Loop, pd.DataFrame]:
    """The data, method, model, optimizer, schedule and loaders of a run, and its data report.
    Writes nothing but the frame cache; a batch size larger than the training set raises here."""
    report: list = []
    method = get_method(config.method)(config)
    # A method may train on another annotated video set than the run's dataset (``data_config``: BSP
    # synthesizes from a trimmed source set, BSP §3.2); its frames come through the same frame cache.
    data_config = method.data_config(config)
    data = prepare_data(data_config, dist, report)
    train_set, valid_set = method.build_datasets(data)
    for split, ds in (("train", train_set), ("valid", valid_set)):
        for row in getattr(ds, "dropped", pd.DataFrame()).to_dict("records"):
            report.append({"split": split, "stage": "clip sampling", **report_record(row)})
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


def load_initial_weights(config: PretrainConfig):
    """``config.weights`` read and checked against the backbone before any data is prepared (a
    typo in a path must not wait for the frame cache): ``None`` (random), or the backbone's state
    dict. The real backbone is built later from this state, after the same seeding as always, so
    its initial weights (and the heads') do not depend on this check."""
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


def run_epoch(loop: _Loop, epoch: int) -> tuple[dict, bool]:
    """Train, let the method end its epoch (e.g. refresh GVFs), validate: ``(metrics row, whether
    this epoch is the best so far)``; the row joins ``loop.rows``."""
    loop.ctx.epoch = epoch
    generator = _seed_epoch(loop.config.seed, epoch, loop.dist.rank)
    for _, sampler in loop.loaders.values():
        sampler.set_epoch(epoch)
    side_before = loop.method.side_seconds
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
        loop.method.side_seconds_column: loop.method.side_seconds - side_before,
    })
    loop.rows.append(row)
    improved = score > loop.best["score"]
    if improved:
        loop.best = {"epoch": epoch, "score": score}
    return row, improved


def train_one_epoch(loop: _Loop, epoch: int, generator: torch.Generator) -> tuple[dict, dict]:
    """The training steps of ``epoch``: ``(row, timing)``, ``row`` holding the epoch, the learning
    rates and the training losses and accuracies per head (``_Meter``), ``timing`` the seconds spent
    waiting for data and training (the method's own work outside the steps excluded) and the clips seen."""
    dist, method = loop.dist, loop.method
    loop.model.train()
    meter = _Meter(method.head_names, dist.device)
    wait_s, clips, side_before = 0.0, 0, method.side_seconds
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
    # The method's own work during the epoch (TSP's GVF refreshes) is reported apart from training time.
    train_s = time.perf_counter() - t_epoch - (method.side_seconds - side_before)
    lrs = {f"lr_{g['name']}": g["lr"] for g in loop.optimizer.param_groups}
    row = {"epoch": epoch, **lrs, **meter.result("train")}
    return row, {"wait_s": wait_s, "train_s": train_s, "clips": clips}


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


# ------------------------------------------------------------------------------------ helpers
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
        return None  # never on the CPU: reduced precision there is far slower than float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
