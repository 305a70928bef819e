"""The localizer network: projection, Transformer encoder with ASL's mixed attention, feature pyramid,
a head chosen by name (``tsplab.localizer.heads``) (ASL sec. 3.1, on ActionFormer's one-stage design);
and ``Localizer``, the network with ASL's class-level sensitivity and its training losses (eq. 15: focal and DIoU reweighted by ASE, the
evaluators' MSE, ASCL). Prediction is in ``tsplab.localizer.inference``.

Shapes: ``B`` videos, ``T`` feature positions (padded), ``C`` input channels, ``D`` embedding
channels, ``K`` classes. Sequences are ``[B, D, T]`` (channels first, as ``nn.Conv1d`` wants) with a
bool mask ``[B, T]`` (True = a real position).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tsplab.localizer.asl import ClassSensitivity, ascl_loss, ase_weights, batched_sensitive_features
from tsplab.localizer.config import LocalizerConfig
from tsplab.localizer.data import VideoItem, batch_targets, collate, level_points, positive_actions
from tsplab.localizer.heads import HEADS, MaskedLayerNorm
from tsplab.localizer.losses import diou_loss_1d, segment_tiou, sigmoid_focal_loss


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
                 head_layers: int = 3, dropout: float = 0.0, prior_prob: float = 0.01,
                 head: str = "actionformer"):
        super().__init__()
        self.num_levels, self.num_classes = num_levels, num_classes
        self.project = nn.ModuleList([nn.Conv1d(input_dim, embed_dim, 3, padding=1),
                                      nn.Conv1d(embed_dim, embed_dim, 3, padding=1)])
        self.stem = nn.ModuleList(EncoderBlock(embed_dim, num_heads, theta, 1, dropout)
                                  for _ in range(num_stem_blocks))
        self.branch = nn.ModuleList(EncoderBlock(embed_dim, num_heads, theta, 2 if i else 1, dropout)
                                    for i in range(num_levels))
        self.norms = nn.ModuleList(MaskedLayerNorm(embed_dim) for _ in range(num_levels))
        self.head = HEADS[head](embed_dim, num_classes, num_levels, head_layers, prior_prob)
        self.eval_cls = InstanceEvaluator(embed_dim)
        self.eval_loc = InstanceEvaluator(embed_dim)
        self._register_load_state_dict_pre_hook(_move_old_head_keys)

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
            logits, offsets = self.head(f, mask, level)
            out["cls_logits"].append(logits.transpose(1, 2))
            out["offsets"].append(offsets.transpose(1, 2))
            out["q_cls"].append(self.eval_cls(f))
            out["q_loc"].append(self.eval_loc(f))
        return out


def _move_old_head_keys(state_dict, prefix, *args) -> None:
    """Checkpoints saved before heads were chosen by name hold ActionFormer's head at the network's
    top level (``cls_head.``, ``reg_head.``, ``scales.``); they load as ``head.`` of today's."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        if rest.split(".")[0] in ("cls_head", "reg_head", "scales"):
            state_dict[f"{prefix}head.{rest}"] = state_dict.pop(key)


# ------------------------------------------------------------------------------------------------
# The model with its losses
# ------------------------------------------------------------------------------------------------

class Localizer(nn.Module):
    """``LocalizerNet`` plus the ASL class-level sensitivity; ``losses(items)`` computes eq. (15)."""

    def __init__(self, config: LocalizerConfig, input_dim: int, num_classes: int):
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        self.net = LocalizerNet(input_dim, num_classes, config.embed_dim, config.num_levels,
                                config.num_stem_blocks, config.num_heads, config.theta,
                                config.head_layers, config.dropout, head=config.head)
        self.sensitivity = ClassSensitivity(num_classes)
        # With ASE's class level off, ASCL still needs sensitive frames: it then uses the Gaussians
        # at their initial values, frozen (our choice; the paper always runs ASCL with ASE).
        self.fixed_sensitivity = ClassSensitivity(num_classes).requires_grad_(False)

    @property
    def multiple(self) -> int:
        return 2 ** (self.config.num_levels - 1)

    def forward(self, features, mask):
        return self.net(features, mask)

    def losses(self, items: list[VideoItem]) -> dict:
        """The loss terms of one batch: ``cls`` (eq. 9), ``reg`` (eq. 10), ``sens`` (eq. 7, both
        evaluators), ``ascl`` (eq. 14, already x λ) and ``loss`` (their sum, eq. 15)."""
        cfg = self.config
        device = next(self.parameters()).device
        feats, mask = collate(items, self.multiple)
        out = self.net(feats.to(device), mask.to(device))
        points, strides, ranges, _ = (x.to(device) for x in level_points(
            feats.shape[-1], cfg.num_levels, cfg.regression_ranges))
        logits, offsets, valid, q_cls, q_loc = (torch.cat(out[k], dim=1) for k in (
            "cls_logits", "offsets", "masks", "q_cls", "q_loc"))  # [B, P, K], [B, P, 2], [B, P] x 3
        cls_t, reg_t, gt_idx = batch_targets(items, points, strides, ranges, self.num_classes,
                                             cfg.center_sample_radius)
        pos = (gt_idx >= 0) & valid
        num_pos = max(int(pos.sum()), 1)

        focal = sigmoid_focal_loss(logits, cls_t).sum(dim=-1)  # [B, P]
        diou = diou_loss_1d(offsets[pos], reg_t[pos])  # [N_pos]
        d, lab = positive_actions(items, gt_idx, pos, points)
        instance = (q_cls[pos], q_loc[pos]) if cfg.ase_instance else (None, None)
        w_cls, w_loc = ase_weights(d, lab, self.sensitivity if cfg.ase_class else None, *instance,
                                   weighting=cfg.ase_weighting)
        bg = valid & ~pos
        loss_cls = ((focal[pos] * w_cls).sum() + focal[bg].sum()) / num_pos  # eq. (9)
        loss_reg = (diou * w_loc).sum() / num_pos  # eq. (10)
        zero = logits.sum() * 0.0
        loss_sens = zero
        if cfg.ase_instance and len(d):
            quality_cls = torch.sigmoid(logits[pos].gather(1, lab[:, None]))[:, 0].detach()  # eq. (6)
            quality_loc = segment_tiou(offsets[pos], reg_t[pos]).detach()
            loss_sens = F.mse_loss(q_cls[pos], quality_cls) + F.mse_loss(q_loc[pos], quality_loc)  # eq. (7)
        loss_ascl = zero
        if cfg.ascl:
            loss_ascl = cfg.ascl_weight * self._ascl(items, out["features"][0], out["masks"][0])
        total = loss_cls + loss_reg + loss_sens + loss_ascl  # eq. (15)
        return dict(loss=total, cls=loss_cls, reg=loss_reg, sens=loss_sens, ascl=loss_ascl,
                    num_pos=num_pos)

    def _ascl(self, items, features, mask) -> torch.Tensor:
        """Eq. (14) on the finest pyramid level's features ``[B, D, T]``, all instances at once."""
        sens = self.sensitivity if self.config.ase_class else self.fixed_sensitivity
        video_index = torch.tensor([b for b, item in enumerate(items) for _ in item.labels], dtype=torch.long)
        if len(video_index) == 0:
            return features.sum() * 0.0
        device = features.device
        segments = torch.tensor(np.concatenate([item.segments for item in items]), dtype=features.dtype,
                                device=device)
        labels = torch.tensor(np.concatenate([item.labels for item in items]), dtype=torch.long,
                              device=device)
        f_cls, f_loc, f_bg, has_frames, has_bg = batched_sensitive_features(
            features, mask.sum(dim=1), video_index.to(device), segments, labels, sens,
            self.config.ascl_delta)
        actions = torch.cat([f_cls[has_frames], f_loc[has_frames]])
        action_labels = torch.cat([labels[has_frames], labels[has_frames]])
        return ascl_loss(actions, action_labels, f_bg[has_bg])
