"""The localizer network: projection, Transformer encoder with ASL's mixed attention, feature pyramid,
heads (ASL sec. 3.1, on ActionFormer's one-stage design).

Shapes: ``B`` videos, ``T`` feature positions (padded), ``C`` input channels, ``D`` embedding
channels, ``K`` classes. Sequences are ``[B, D, T]`` (channels first, as ``nn.Conv1d`` wants) with a
bool mask ``[B, T]`` (True = a real position).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MaskedLayerNorm(nn.Module):
    """LayerNorm over channels of a ``[B, D, T]`` sequence."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class MixedAttention(nn.Module):
    """Temporal and channel self-attention in parallel, mixed as ``(1 - θ) f_ta + θ f_ca``
    (ASL eqs. 1-2 and the line after them).

    Temporal attention: ``softmax(Q_t K_t^T / sqrt(D)) V_t`` over the ``T`` positions (multi-head, as
    ActionFormer). Channel attention: ``softmax(Q_d K_d^T / sqrt(T)) V_d`` over the ``D`` channels,
    with padded positions zeroed so they do not enter the channel affinities; ``sqrt(T)`` uses each
    video's real length (ASL divides by the number of frames; padding is not frames).
    """

    def __init__(self, dim: int, num_heads: int = 4, theta: float = 0.2, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.theta = dim, num_heads, float(theta)
        self.qkv_t = nn.Conv1d(dim, 3 * dim, 1)
        self.qkv_c = nn.Conv1d(dim, 3 * dim, 1)
        self.proj = nn.Conv1d(dim, dim, 1)
        self.drop = nn.Dropout(dropout)

    def temporal(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, D, T]`` -> ``[B, D, T]``: ASL eq. (1)."""
        b, d, t = x.shape
        h = self.num_heads
        q, k, v = self.qkv_t(x).view(b, 3, h, d // h, t).unbind(1)  # each [B, h, D/h, T]
        att = torch.einsum("bhdi,bhdj->bhij", q, k) / math.sqrt(d // h)
        att = att.masked_fill(~mask[:, None, None, :], float("-inf"))
        att = self.drop(att.softmax(dim=-1))
        return torch.einsum("bhij,bhdj->bhdi", att, v).reshape(b, d, t)

    def channel(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, D, T]`` -> ``[B, D, T]``: ASL eq. (2), attention among channels."""
        q, k, v = (z * mask[:, None, :] for z in self.qkv_c(x).chunk(3, dim=1))  # [B, D, T]
        length = mask.sum(dim=1).clamp(min=1).to(x.dtype)[:, None, None]
        att = torch.einsum("bit,bjt->bij", q, k) / length.sqrt()
        att = self.drop(att.softmax(dim=-1))
        return torch.einsum("bij,bjt->bit", att, v)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mixed = (1.0 - self.theta) * self.temporal(x, mask) + self.theta * self.channel(x, mask)
        return self.proj(mixed) * mask[:, None, :]


class EncoderBlock(nn.Module):
    """Pre-LN Transformer block (ActionFormer's layout) with ``MixedAttention``; ``stride`` 2 first
    halves the length by max pooling (ActionFormer builds its pyramid with strided blocks)."""

    def __init__(self, dim: int, num_heads: int = 4, theta: float = 0.2, stride: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.stride = stride
        self.norm_att = MaskedLayerNorm(dim)
        self.att = MixedAttention(dim, num_heads, theta, dropout)
        self.norm_mlp = MaskedLayerNorm(dim)
        self.mlp = nn.Sequential(nn.Conv1d(dim, 4 * dim, 1), nn.GELU(), nn.Dropout(dropout),
                                 nn.Conv1d(4 * dim, dim, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor):
        if self.stride > 1:
            # Padding must not win a max: it is -inf while pooling, zero again afterwards.
            x = F.max_pool1d(x.masked_fill(~mask[:, None, :], float("-inf")), self.stride, self.stride,
                             ceil_mode=True)
            mask = F.max_pool1d(mask[:, None].float(), self.stride, self.stride, ceil_mode=True)[:, 0] > 0
            x = x.masked_fill(~mask[:, None, :], 0.0)
        x = x + self.att(self.norm_att(x), mask)
        x = x + self.mlp(self.norm_mlp(x)) * mask[:, None, :]
        return x, mask


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


class InstanceEvaluator(nn.Module):
    """ASL's instance-level evaluator Φ (eq. 5): a 1D temporal conv, a fully connected layer and a
    sigmoid, ``[B, D, T]`` -> ``[B, T]`` in (0, 1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, padding=1)
        self.fc = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(F.relu(self.conv(x)).transpose(1, 2)))[..., 0]


class LocalizerNet(nn.Module):
    """Projection -> encoder (``num_stem_blocks`` full-resolution blocks) -> pyramid of
    ``num_levels`` levels (level ``l`` has stride ``2**l``) -> shared classification and regression
    heads and the two instance-level evaluators (classification, localization).

    ``forward(features [B, C, T], mask [B, T])`` returns a dict of per-level lists:
    ``cls_logits`` ``[B, T_l, K]``, ``offsets`` ``[B, T_l, 2]`` (distances to start and end in units
    of the level's stride, >= 0), ``q_cls``/``q_loc`` ``[B, T_l]``, ``masks`` ``[B, T_l]``,
    ``features`` ``[B, D, T_l]``.
    """

    def __init__(self, input_dim: int, num_classes: int, embed_dim: int = 128, num_levels: int = 4,
                 num_stem_blocks: int = 2, num_heads: int = 4, theta: float = 0.2,
                 head_layers: int = 3, dropout: float = 0.0, prior_prob: float = 0.01):
        super().__init__()
        self.num_levels, self.num_classes = num_levels, num_classes
        self.project = nn.ModuleList([nn.Conv1d(input_dim, embed_dim, 3, padding=1),
                                      nn.Conv1d(embed_dim, embed_dim, 3, padding=1)])
        self.stem = nn.ModuleList(EncoderBlock(embed_dim, num_heads, theta, 1, dropout)
                                  for _ in range(num_stem_blocks))
        self.branch = nn.ModuleList(EncoderBlock(embed_dim, num_heads, theta, 2 if i else 1, dropout)
                                    for i in range(num_levels))
        self.norms = nn.ModuleList(MaskedLayerNorm(embed_dim) for _ in range(num_levels))
        self.cls_head = Head(embed_dim, num_classes, head_layers)
        self.reg_head = Head(embed_dim, 2, head_layers)
        self.scales = nn.ModuleList(Scale() for _ in range(num_levels))
        self.eval_cls = InstanceEvaluator(embed_dim)
        self.eval_loc = InstanceEvaluator(embed_dim)
        # Focal-loss prior (RetinaNet sec. 4.1, kept by ActionFormer): start every class at p = 0.01
        # so the many background positions do not swamp the first steps.
        nn.init.constant_(self.cls_head.out.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> dict:
        x = features * mask[:, None, :]
        for conv in self.project:
            x = F.relu(conv(x)) * mask[:, None, :]
        for block in self.stem:
            x, mask = block(x, mask)
        out = {k: [] for k in ("cls_logits", "offsets", "q_cls", "q_loc", "masks", "features")}
        for level, (block, norm) in enumerate(zip(self.branch, self.norms)):
            x, mask = block(x, mask)
            f = norm(x) * mask[:, None, :]
            out["features"].append(f)
            out["masks"].append(mask)
            out["cls_logits"].append(self.cls_head(f, mask).transpose(1, 2))
            out["offsets"].append(F.relu(self.scales[level](self.reg_head(f, mask))).transpose(1, 2))
            out["q_cls"].append(self.eval_cls(f))
            out["q_loc"].append(self.eval_loc(f))
        return out
