"""What a pretraining method is to the one training loop (``tsplab.pretrain.loop``).

A method is one file: a small object with

- its options: ``Options``, a dataclass of the settings only this method reads (defaults: its
  paper's), beside its code. The loop's ``PretrainConfig`` holds one instance in ``config.options``
  (saved with the loop's settings in ``config.json`` and the checkpoint); ``pretrain_config``,
  ``tsplab pretrain --set NAME=VALUE`` and notebook 03 reach each option by its field name, typed by
  its declaration. Each option declares its check with ``tsplab.config.setting`` (type, choices,
  range); ``Options.check(config)``, if defined, holds the rules between options (or with the
  loop's settings) and raises ``ValueError``; the constructor runs both;
- its data: ``build_datasets(data) -> (train, valid)``, map-style datasets indexed by the
  ``(index, epoch)`` keys of ``tsplab.pretrain.sampling.EpochSampler``, whose items are dicts of tensors; a
  dataset may expose ``balance_groups`` (one integer per item; the sampler balances them);
- its model: ``build_model(backbone, data) -> nn.Module`` with the backbone as ``.features`` (the
  checkpoint layout ``features.*`` + heads under other prefixes that TSP's checkpoints use);
- its loss: ``step(model, batch, train=..., generator=...) -> StepOutput`` (augmentation, forward,
  loss, per-head accuracy counts; ``model`` may be wrapped in DistributedDataParallel, so every
  trainable parameter must be reached through ``model(...)``);
- optional hooks: ``setup`` (before training, e.g. precomputing GVFs), ``after_optimizer_step``
  (e.g. a momentum update), ``on_train_epoch_end`` (e.g. an end-of-epoch GVF refresh), and
  ``state_dict``/``load_state_dict`` for whatever of its state a resumed run needs;
- its data source: ``data_config(config)`` (default: the run's dataset; BSP: its source set);
- its side work: ``side_seconds``, the seconds it spends outside the training steps (TSP: computing
  GVFs), which the loop reports apart from training time in the column ``side_seconds_column``;
- its files: ``check_files`` (inputs it reads, checked before the run folder is touched),
  ``run_files`` (what it writes into the run folder) and ``reuses_file`` (which of them a fresh run
  with other settings may keep).

The loop never looks at a method's name or options: everything method-specific lives behind these
calls, so a new method is one file plus one line in ``tsplab.pretrain.methods.METHODS``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from tsplab.config import check_config
from tsplab.pretrain.sampling import NO_LABEL, FrameSource

if TYPE_CHECKING:  # pragma: no cover - typing only
    from tsplab.distributed import DistContext


@dataclasses.dataclass
class NoOptions:
    """The options of a method that has none."""


@dataclasses.dataclass
class PretrainData:
    """The pretraining data, as the loop prepares it for every method.

    ``train_table``/``valid_table``: TSP segment tables (``tsplab.datasets.build_segment_table``);
    ``labels``: the sorted action classes (the label mapping); ``video_dir``: where the table's
    ``filename`` column points; ``frames``: decoded frames at ``frame_rate`` and the training
    resolution (``tsplab.video.FrameCache``)."""

    train_table: pd.DataFrame
    valid_table: pd.DataFrame
    labels: list[str]
    video_dir: Path
    frames: FrameSource
    clip_length_frames: int
    frame_rate: float


@dataclasses.dataclass
class StepOutput:
    """One batch through a method: ``loss`` (the scalar to backpropagate), and per head its loss
    (detached scalar), the number of correctly classified clips and the number of labelled clips."""

    loss: torch.Tensor
    head_losses: dict[str, torch.Tensor]
    head_correct: dict[str, torch.Tensor]
    head_count: dict[str, torch.Tensor]


@dataclasses.dataclass
class TrainContext:
    """What the loop shares with a method's hooks."""

    config: Any  # tsplab.pretrain.config.PretrainConfig
    model: nn.Module  # unwrapped (not the DDP wrapper)
    dist: "DistContext"
    output_dir: Path
    data: PretrainData
    train_dataset: Any
    valid_dataset: Any
    epoch: int = 0
    global_step: int = 0
    autocast_dtype: torch.dtype | None = None


class PretrainMethod:
    """Base class: hooks default to doing nothing. Subclasses set ``name``, ``head_names`` and, if
    they have options, ``Options``."""

    name: str = ""
    #: The classification heads, in the order the metrics table lists them.
    head_names: tuple[str, ...] = ()
    #: The dataclass of the method's own options (``config.options`` holds one).
    Options: type = NoOptions
    #: Settings a method needs on top of a ``tsplab.pretrain.recipes.RECIPES`` entry, by recipe name
    #: (applied by ``pretrain_config`` before the user's overrides): loop fields (e.g. a paper's own
    #: optimiser) and the method's options, by name.
    recipe_overrides: dict = {}
    #: Glob patterns of the files the method writes into the run folder (beside the loop's).
    run_files: tuple[str, ...] = ()
    #: Seconds of the method's own work outside the training steps (TSP: computing GVFs), which the
    #: loop reports apart from training time, in the metrics column ``side_seconds_column``.
    side_seconds: float = 0.0
    #: That column's name: one for every method, so that the metrics tables of all methods share
    #: their columns (named after TSP's GVFs, the work it first measured).
    side_seconds_column: str = "gvf_seconds"

    def __init__(self, config):
        """``config``: the loop's ``tsplab.pretrain.config.PretrainConfig``, whose ``options`` must be an
        ``Options`` (``ValueError`` naming the option otherwise, or when one is out of range: its
        declaration, ``tsplab.config.check_config``, then the rules between options, ``check``)."""
        options = getattr(config, "options", None)
        if not isinstance(options, self.Options):
            raise ValueError(f"options: method {self.name!r} takes {self.Options.__name__}, "
                             f"got {type(options).__name__}")
        check_config(options)
        if hasattr(options, "check"):
            options.check(config)
        self.config = config
        self.options = options

    # -- what every method defines
    def build_datasets(self, data: PretrainData):
        raise NotImplementedError

    def build_model(self, backbone: nn.Module, data: PretrainData) -> nn.Module:
        raise NotImplementedError

    def step(self, model: nn.Module, batch: dict, *, train: bool,
             generator: torch.Generator | None = None) -> StepOutput:
        raise NotImplementedError

    # -- model selection
    @property
    def selection_heads(self) -> tuple[str, ...]:
        """Heads whose validation accuracies are averaged to pick the best epoch (TSP §4.1)."""
        return self.head_names

    # -- data
    def data_config(self, config):
        """The ``PretrainConfig`` whose videos the loop prepares: the run's own (default), or another
        annotated set the method trains on (BSP: the trimmed source set its syntheses draw from)."""
        return config

    # -- files
    def check_files(self) -> None:
        """Raise ``InputError`` naming the option when a file the method reads is missing (called
        before the run folder is touched)."""

    @classmethod
    def reuses_file(cls, name: str, old_config, new_config) -> bool:
        """Whether the file ``name`` (one of ``run_files``) that a run with ``old_config`` wrote
        holds what a fresh run with ``new_config`` would write again (it then stays in place)."""
        return False

    # -- optional hooks
    def setup(self, ctx: TrainContext) -> None:
        """Before the first epoch (also when resuming, before the checkpoint is loaded)."""

    def after_optimizer_step(self, ctx: TrainContext) -> None:
        """After every optimizer step."""

    def on_train_epoch_end(self, ctx: TrainContext) -> None:
        """After an epoch's training steps, before its validation."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"method {self.name!r} keeps no state, but the checkpoint has {sorted(state)}")


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the rows whose target is not ``NO_LABEL`` (-1).

    A batch without any labelled row gives 0 that still depends on ``logits`` (so every parameter gets
    a gradient, as DistributedDataParallel requires), where ``F.cross_entropy`` would give NaN."""
    if bool((target != NO_LABEL).any()):
        return F.cross_entropy(logits.float(), target, ignore_index=NO_LABEL)
    return logits.float().sum() * 0.0


def head_accuracy_counts(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(correct, count)`` of top-1 predictions over the rows whose target is not -1."""
    mask = target != NO_LABEL
    correct = ((logits.argmax(dim=1) == target) & mask).sum()
    return correct, mask.sum()
