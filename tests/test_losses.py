"""The localizer's per-position losses (tsplab.localizer.losses) on hand-computed values: the focal
loss (Lin et al. 2017, eq. 5 with α-balancing; torchvision's form for soft targets), the 1D tIoU of
distance pairs and the DIoU loss (Zheng et al. 2020, eq. 6). Each case is chosen so that swapping a
left/right distance, an index or a clamp changes the number."""
from __future__ import annotations

import math

import pytest
import torch


def _focal_by_hand(logit: float, target: float, alpha: float, gamma: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    ce = -(target * math.log(p) + (1 - target) * math.log(1 - p))
    p_t = p * target + (1 - p) * (1 - target)
    weight = alpha * target + (1 - alpha) * (1 - target) if alpha >= 0 else 1.0
    return weight * ce * (1 - p_t) ** gamma


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.25, 1.0), (0.25, 3.0), (0.0, 2.0), (-1.0, 2.0),
                                          (0.5, 0.0)])
def test_focal_loss_matches_the_formula_for_hard_and_soft_targets(alpha, gamma):
    from tsplab.localizer.losses import sigmoid_focal_loss

    logits = torch.tensor([[0.3, -1.2, 2.0], [-0.7, 1.5, 0.0]], dtype=torch.float64)
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.5, 1.0, 0.2]], dtype=torch.float64)  # soft: 0.5, 0.2
    got = sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma)
    assert got.shape == (2, 3)
    expected = [[_focal_by_hand(x, t, alpha, gamma) for x, t in zip(row_x, row_t)]
                for row_x, row_t in zip(logits.tolist(), targets.tolist())]
    assert got.tolist() == [pytest.approx(row, rel=1e-9) for row in expected]


def test_focal_loss_alpha_zero_silences_positives_and_gamma_zero_is_weighted_bce():
    from tsplab.localizer.losses import sigmoid_focal_loss

    logits = torch.tensor([0.4, -0.4])
    targets = torch.tensor([1.0, 0.0])
    # α = 0: a positive's weight α·1 is 0, a negative's (1 - α) is 1 (α < 0 would switch weights off)
    zero = sigmoid_focal_loss(logits, targets, alpha=0.0)
    assert zero[0].item() == 0.0 and zero[1].item() > 0
    off = sigmoid_focal_loss(logits, targets, alpha=-1.0)
    assert off[0].item() == pytest.approx(zero[1].item(), rel=1e-6)  # symmetric logits and targets
    # γ = 0, α = 0.5: half the binary cross-entropy, -0.5 log σ(0.4) for the positive
    half = sigmoid_focal_loss(logits, targets, alpha=0.5, gamma=0.0)
    assert half[0].item() == pytest.approx(-0.5 * math.log(1 / (1 + math.exp(-0.4))), rel=1e-6)


def test_segment_tiou_of_distance_pairs_by_hand():
    from tsplab.localizer.losses import segment_tiou

    # distances (left, right) from one point: pred [-2, 3] vs target [-1, 1]: overlap 2, union 5
    pred = torch.tensor([[2.0, 3.0], [0.1, 0.3], [1.0, 4.0]])
    target = torch.tensor([[1.0, 1.0], [0.2, 0.1], [3.0, 0.5]])
    # [-0.1, 0.3] vs [-0.2, 0.1]: overlap 0.2, union 0.5 (below 1: a clamp at 1 would show)
    # [-1, 4] vs [-3, 0.5]: overlap 1.5, union 7
    assert segment_tiou(pred, target).tolist() == pytest.approx([2 / 5, 0.2 / 0.5, 1.5 / 7], rel=1e-6)
    assert segment_tiou(target, pred).tolist() == pytest.approx([2 / 5, 0.2 / 0.5, 1.5 / 7], rel=1e-6)


def test_diou_loss_by_hand_with_asymmetric_segments():
    from tsplab.localizer.losses import diou_loss_1d

    pred = torch.tensor([[2.0, 3.0], [0.1, 0.3], [1.0, 4.0]])
    target = torch.tensor([[1.0, 1.0], [0.2, 0.1], [3.0, 0.5]])
    # 1 - IoU + (centre gap / enclosing length)^2, centres at (right - left) / 2 from the point:
    # [-2, 3] vs [-1, 1]: centres 0.5, 0; enclosing [-2, 3] = 5
    # [-0.1, 0.3] vs [-0.2, 0.1]: centres 0.1, -0.05; enclosing [-0.2, 0.3] = 0.5
    # [-1, 4] vs [-3, 0.5]: centres 1.5, -1.25; enclosing [-3, 4] = 7
    expected = [1 - 2 / 5 + (0.5 / 5) ** 2, 1 - 0.4 + (0.15 / 0.5) ** 2, 1 - 1.5 / 7 + (2.75 / 7) ** 2]
    assert diou_loss_1d(pred, target).tolist() == pytest.approx(expected, rel=1e-6)
    # [0, 1] vs [-2, 0] touch at the point: IoU 0, centres 0.5 and -1 (gap 1.5), enclosing 3
    assert diou_loss_1d(torch.tensor([[0.0, 1.0]]), torch.tensor([[2.0, 0.0]])).item() == pytest.approx(1.25)
