"""Optimisation of a pretraining run: parameter groups, optimizer, warm-up and learning-rate schedules.

TSP §4.1 (and its ``train/train.py``): SGD, momentum 0.9, weight decay 0.005, one learning rate per
module (stem frozen, backbone 1e-4, heads ``fc_lr``), linear warm-up over the first 2 epochs (per
iteration, from 1e-5 of the rate), decay x0.01 at epochs 4 and 6, learning rates scaled linearly with
the number of processes. ``lr_schedule="plateau"`` replaces the step decay by a decay x``lr_gamma``
when the validation loss stops improving (PAL §4.1; ``WarmupPlateau``, stepped once per epoch, its
state in the checkpoint's scheduler state); the warm-up applies to both.
"""
from __future__ import annotations

import bisect
import math

import torch
import torch.nn as nn

from tsplab.pretrain.config import PretrainConfig


def freeze_stem(model: nn.Module, frozen: bool = True) -> None:
    """Stop (or restart) gradients of the backbone's stem (TSP trains it with learning rate 0; with
    ``requires_grad`` off its backward pass is skipped too). BN statistics still update in train
    mode, as in TSP."""
    stem = getattr(model.features, "stem", None)
    if stem is None:
        raise ValueError(f"backbone {type(model.features).__name__} has no 'stem' module to freeze")
    for p in stem.parameters():
        p.requires_grad_(not frozen)


def learning_rate_groups(model: nn.Module, config: PretrainConfig, world_size: int = 1) -> list[dict]:
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
    """SGD (TSP) or Adam over ``learning_rate_groups``; freezes the stem when ``stem_lr`` is 0."""
    freeze_stem(model, frozen=config.stem_lr <= 0)
    groups = learning_rate_groups(model, config, world_size)
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
