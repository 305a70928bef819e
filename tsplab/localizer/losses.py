"""Per-position losses of the localizer: sigmoid focal loss (classification) and 1D DIoU loss
(regression), the terms that ASL eqs. (9)-(10) reweight with action sensitivity."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017, eq. 5, with its α-balancing) per element, ``[..., K]`` ->
    ``[..., K]``; ``targets`` in [0, 1]. α = 0.25, γ = 2 as RetinaNet and ActionFormer."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


def segment_tiou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """tIoU ``[N]`` of segments given as distances ``[N, 2]`` (left, right) from the same point."""
    inter = torch.minimum(pred[:, 0], target[:, 0]) + torch.minimum(pred[:, 1], target[:, 1])
    union = pred.sum(dim=1) + target.sum(dim=1) - inter
    return inter.clamp(min=0) / union.clamp(min=1e-8)


def diou_loss_1d(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DIoU loss (Zheng et al. 2020, eq. 6) in 1D per segment, ``[N, 2]`` distances -> ``[N]``:
    ``1 - IoU + (distance of centres)^2 / (length of the smallest enclosing segment)^2``."""
    iou = segment_tiou(pred, target)
    # Centres relative to the shared anchor point: (right - left) / 2.
    centre_gap = 0.5 * ((pred[:, 1] - pred[:, 0]) - (target[:, 1] - target[:, 0]))
    enclosing = torch.maximum(pred[:, 0], target[:, 0]) + torch.maximum(pred[:, 1], target[:, 1])
    return 1.0 - iou + centre_gap ** 2 / enclosing.clamp(min=1e-8) ** 2
