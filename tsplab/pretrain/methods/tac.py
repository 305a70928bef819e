"""TAC: trimmed action classification on the foreground segments of the pretraining set.

TSP's "TAC on ActivityNet" baseline (TSP Table 1): the same encoder, data pipeline and optimisation as
TSP, but only action clips, and one head (``fc``: Linear F -> C on the clip feature) trained with
cross-entropy.

Steps per epoch: trained on foreground clips only, an epoch of TAC is one pass over the foreground
clips, while TSP's is as many foreground as background clips (TSP §3.3), about twice as many steps
when a dataset's background segments are as many as its action segments. The option
``match_tsp_steps`` (:class:`TACOptions`; on under the synthetic recipe) gives TAC TSP's number of
clips per epoch from the same segment table, foreground clips repeated with fresh temporal jitter,
so that a comparison of the two is one of objectives at an equal optimisation budget.
"""
from __future__ import annotations

import dataclasses
import warnings

import torch
import torch.nn as nn

from tsplab.config import setting
from tsplab.pretrain.methods.base import (PretrainData, PretrainMethod, StepOutput, head_accuracy_counts,
                                          masked_cross_entropy)
from tsplab.pretrain.sampling import EpochOfLength, EpochSampler, SegmentClipDataset


@dataclasses.dataclass
class TACOptions:
    """TAC's options (``method="tac"``).

    ``match_tsp_steps``: an epoch holds as many training clips as TSP's epoch on the same segment
    table (``tsp_epoch_clips``), so TAC and TSP take equal optimiser steps per epoch; False (the
    default, TSP's baseline as published): one pass over the foreground clips."""

    match_tsp_steps: bool = setting(False, help="an epoch of as many clips as TSP's on the same table")


def tsp_epoch_clips(config, data: PretrainData) -> int:
    """The training clips of one TSP epoch on ``data``'s training table: every segment that holds a
    clip, ``clips_per_segment`` clips each, foreground and background subsampled to the smaller of
    the two (``EpochSampler``'s balancing, TSP §3.3); all clips when the table has one region only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # segments too short for a clip are reported by the run's own datasets
        clips = SegmentClipDataset(data.train_table, data.video_dir, data.frames, data.labels,
                                   clip_length_frames=data.clip_length_frames, frame_rate=data.frame_rate,
                                   clips_per_segment=config.clips_per_segment, jitter=True)
    return len(EpochSampler(len(clips), balance_groups=clips.balance_groups, pad=False))


class TACModel(nn.Module):
    """``features`` (the backbone, ``[B, 3, T, H, W] -> [B, F]``) + ``fc`` (``[B, F] -> [B, C]``);
    the layout of TSP's single-head checkpoints."""

    def __init__(self, features: nn.Module, num_classes: int):
        super().__init__()
        self.features = features
        self.fc = nn.Linear(features.feature_dim, num_classes)

    def forward(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """``clip`` float [B, 3, T, H, W] -> ``{"action": [B, C] logits}``."""
        return {"action": self.fc(self.features(clip))}


def segment_datasets(config, data: PretrainData, *, foreground_only: bool):
    """Training (jittered) and validation (uniform) clip datasets of the segment tables."""
    common = dict(frames=data.frames, labels=data.labels, clip_length_frames=data.clip_length_frames,
                  frame_rate=data.frame_rate, clips_per_segment=config.clips_per_segment,
                  foreground_only=foreground_only, seed=config.seed)
    train = SegmentClipDataset(data.train_table, data.video_dir, jitter=True, **common)
    valid = SegmentClipDataset(data.valid_table, data.video_dir, jitter=False, **common)
    return train, valid


def clip_transform(config, train: bool):
    from tsplab.backbones import ClipTransform

    return ClipTransform(resize_short_side=config.resize_short_side, crop_size=config.crop_size, train=train)


class TAC(PretrainMethod):
    name = "tac"
    head_names = ("action",)
    Options = TACOptions
    #: The synthetic recipe compares TAC with TSP: equal optimiser steps per epoch.
    recipe_overrides = {"synthetic": {"match_tsp_steps": True}}

    def __init__(self, config):
        super().__init__(config)
        self._transforms = {True: clip_transform(config, True), False: clip_transform(config, False)}

    def build_datasets(self, data: PretrainData):
        train, valid = segment_datasets(self.config, data, foreground_only=True)
        if self.options.match_tsp_steps:
            length = tsp_epoch_clips(self.config, data)
            if length != len(train):  # a trimmed set (no background): TSP's epoch is TAC's already
                train = EpochOfLength(train, length, seed=self.config.seed)
        return train, valid

    def build_model(self, backbone: nn.Module, data: PretrainData) -> nn.Module:
        return TACModel(backbone, len(data.labels))

    def step(self, model, batch, *, train, generator=None) -> StepOutput:
        x = self._transforms[train](batch["clip"], generator)
        logits = model(x)["action"]
        target = batch["action_label"]
        loss = masked_cross_entropy(logits, target)
        correct, count = head_accuracy_counts(logits, target)
        return StepOutput(loss=loss, head_losses={"action": loss.detach()},
                          head_correct={"action": correct}, head_count={"action": count})
