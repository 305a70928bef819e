"""Localizer heads: what turns each pyramid level's features into class logits and boundary offsets,
chosen by ``LocalizerConfig.head`` from ``HEADS``.

Adding a head is one class plus one registration::

    @register_head("my_head")
    class MyHead(nn.Module):
        def __init__(self, dim, num_classes, num_levels, num_layers, prior_prob): ...
        def forward(self, features, mask, level):  # [B, D, T_l], [B, T_l] bool, pyramid level
            return cls_logits, offsets  # [B, K, T_l], [B, 2, T_l] (offsets >= 0, in level strides)

``LocalizerNet`` builds the head after its pyramid and before ASL's instance evaluators, and calls it
once per level. Padded positions (``mask`` False) may hold anything: the losses and the decoding skip
them. The head is saved in the checkpoint's state dict under ``net.head.``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Head name -> head class; ``register_head`` fills it, ``LocalizerConfig.head`` picks from it.
HEADS: dict[str, type[nn.Module]] = {}


def register_head(name: str):
    """Class decorator: register a head class under ``name`` in ``HEADS`` (a name taken twice is a
    bug: ``ValueError``)."""
    def register(cls):
        if name in HEADS and HEADS[name] is not cls:
            raise ValueError(f"localizer head {name!r} is already registered ({HEADS[name].__name__})")
        HEADS[name] = cls
        return cls
    return register


class MaskedLayerNorm(nn.Module):
    """LayerNorm over channels of a ``[B, D, T]`` sequence."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class Scale(nn.Module):
    """A learnable scalar per pyramid level for the shared regression head (FCOS, ActionFormer)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        return x * self.scale


class Head(nn.Module):
    """``num_layers`` 3-wide convs (LayerNorm + ReLU between them), shared by all pyramid levels
    (ActionFormer's heads). Padding is re-zeroed after every layer so that a video's outputs do not
    depend on how much padding its batch gave it."""

    def __init__(self, dim: int, out: int, num_layers: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, 3, padding=1) for _ in range(num_layers - 1))
        self.norms = nn.ModuleList(MaskedLayerNorm(dim) for _ in range(num_layers - 1))
        self.out = nn.Conv1d(dim, out, 3, padding=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x))) * mask[:, None, :]
        return self.out(x)


@register_head("actionformer")
class ActionFormerHead(nn.Module):
    """ActionFormer's heads: a classification ``Head`` and a regression ``Head`` shared by all levels,
    the regression scaled per level (``Scale``) and made >= 0 by a ReLU. The classification bias
    starts at the focal-loss prior (RetinaNet sec. 4.1, kept by ActionFormer): every class at
    ``p = prior_prob`` so the many background positions do not swamp the first steps."""

    def __init__(self, dim: int, num_classes: int, num_levels: int, num_layers: int = 3,
                 prior_prob: float = 0.01):
        super().__init__()
        self.cls_head = Head(dim, num_classes, num_layers)
        self.reg_head = Head(dim, 2, num_layers)
        self.scales = nn.ModuleList(Scale() for _ in range(num_levels))
        nn.init.constant_(self.cls_head.out.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, features: torch.Tensor, mask: torch.Tensor, level: int):
        """``[B, D, T_l]`` -> (logits ``[B, K, T_l]``, offsets ``[B, 2, T_l]``)."""
        return self.cls_head(features, mask), F.relu(self.scales[level](self.reg_head(features, mask)))
