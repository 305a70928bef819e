"""ASL (Shao et al., ICCV 2023) in tsplab.localizer.asl on hand-computed values: the class-level
Gaussians of eqs. (3)-(4) with per-class μ and σ, ASE's loss weights (eq. 8, normalised to mean 1),
the sensitive and background features of eqs. (11)-(13) and the contrastive loss of eq. (14)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch


def _gauss(d, mu, sigma):
    return math.exp(-(d - mu) ** 2 / (2 * sigma ** 2))


def _sensitivity_with(mu_cls, sigma_cls, mu_loc, sigma_loc):
    from tsplab.localizer.asl import ClassSensitivity

    sens = ClassSensitivity(len(mu_cls))
    with torch.no_grad():
        sens.mu_cls.copy_(torch.tensor(mu_cls))
        sens.sigma_cls.copy_(torch.tensor(sigma_cls))
        sens.mu_loc.copy_(torch.tensor(mu_loc))
        sens.sigma_loc.copy_(torch.tensor(sigma_loc))
    return sens


def test_class_gaussians_use_each_class_own_mu_and_sigma():
    """Eq. (3): p^cls = exp(-(d - μ_c)² / 2σ_c²); eq. (4): p^loc = p^sot + p^eot, each a Gaussian
    with its own μ and σ per class (σ clamped to [0.01, 5])."""
    sens = _sensitivity_with([0.1, -0.2], [0.5, 0.25], [[-0.4, 0.3], [-0.5, 0.45]], [[0.2, 0.6], [1.0, 0.3]])
    d = torch.tensor([0.0, 0.3, -0.35, 0.5])
    labels = torch.tensor([0, 1, 1, 0])
    p_cls = [_gauss(0.0, 0.1, 0.5), _gauss(0.3, -0.2, 0.25), _gauss(-0.35, -0.2, 0.25), _gauss(0.5, 0.1, 0.5)]
    assert sens.p_cls(d, labels).tolist() == pytest.approx(p_cls, rel=1e-6)
    p_se = [[_gauss(0.0, -0.4, 0.2), _gauss(0.0, 0.3, 0.6)], [_gauss(0.3, -0.5, 1.0), _gauss(0.3, 0.45, 0.3)],
            [_gauss(-0.35, -0.5, 1.0), _gauss(-0.35, 0.45, 0.3)], [_gauss(0.5, -0.4, 0.2), _gauss(0.5, 0.3, 0.6)]]
    assert sens.p_start_end(d, labels).tolist() == [pytest.approx(row, rel=1e-5) for row in p_se]
    assert sens.p_loc(d, labels).tolist() == pytest.approx([a + b for a, b in p_se], rel=1e-5)
    with torch.no_grad():
        sens.sigma_cls[0] = 1e-5  # clamped up to 0.01: finite, and 1 only at μ
        sens.sigma_loc[1, 0] = 9.0  # clamped down to 5
    assert sens.p_cls(torch.tensor([0.1, 0.11]), torch.tensor([0, 0])).tolist() == pytest.approx(
        [1.0, _gauss(0.11, 0.1, 0.01)], rel=1e-5)
    assert sens.p_start_end(torch.tensor([0.5]), torch.tensor([1]))[0, 0].item() == pytest.approx(
        _gauss(0.5, -0.5, 5.0), rel=1e-6)


def test_ase_weights_follow_eq_8_as_written():
    """Eq. (8) as written (the default): h_cls = p^cls(d) + q_cls and h_loc = p^sot(d) + p^eot(d) +
    q_loc multiply each positive's losses unscaled, and the detection losses' gradients reach both
    the Gaussians and the evaluators' q."""
    from tsplab.localizer.asl import ClassSensitivity, ase_weights

    sens = ClassSensitivity(2)  # initial values: μ_cls = 0, μ_sot/eot = ∓0.5, σ = 1
    d = torch.tensor([-0.5, -0.1, 0.0, 0.4])
    labels = torch.tensor([0, 1, 0, 1])
    h_cls = [_gauss(x, 0.0, 1.0) for x in d.tolist()]
    h_loc = [_gauss(x, -0.5, 1.0) + _gauss(x, 0.5, 1.0) for x in d.tolist()]
    w_cls, w_loc = ase_weights(d, labels, sens)
    assert w_cls.tolist() == pytest.approx(h_cls, rel=1e-6)
    assert w_loc.tolist() == pytest.approx(h_loc, rel=1e-6)
    q_cls = torch.tensor([0.2, 0.9, 0.4, 0.1], requires_grad=True)
    q_loc = torch.tensor([0.5, 0.3, 0.7, 0.6], requires_grad=True)
    w_cls, w_loc = ase_weights(d, labels, sens, q_cls, q_loc)
    assert w_cls.tolist() == pytest.approx([h + q for h, q in zip(h_cls, q_cls.tolist())], rel=1e-6)
    assert w_loc.tolist() == pytest.approx([h + q for h, q in zip(h_loc, q_loc.tolist())], rel=1e-6)
    (w_cls.sum() + 2 * w_loc.sum()).backward()
    assert q_cls.grad.tolist() == [1.0] * 4 and q_loc.grad.tolist() == [2.0] * 4
    assert sens.sigma_cls.grad is not None and float(sens.sigma_cls.grad.abs().sum()) > 0
    # instance level alone: q itself; neither: every weight 1
    w_cls, w_loc = ase_weights(d, labels, None, q_cls, q_loc)
    assert w_cls.tolist() == pytest.approx(q_cls.tolist()) and w_loc.tolist() == pytest.approx(q_loc.tolist())
    assert [w.tolist() for w in ase_weights(d, labels)] == [[1.0] * 4, [1.0] * 4]
    with pytest.raises(ValueError, match="weighting='mean'; valid: paper, stabilised"):
        ase_weights(d, labels, sens, weighting="mean")


def test_stabilised_ase_weights_detach_q_and_rescale_to_mean_one():
    """The named switch ``stabilised``: q detached (it trains by eq. 7 only) and each weight divided
    by its mean over the batch's positives."""
    from tsplab.localizer.asl import ClassSensitivity, ase_weights

    sens = ClassSensitivity(2)
    d = torch.tensor([-0.5, -0.1, 0.0, 0.4])
    labels = torch.tensor([0, 1, 0, 1])
    h_cls = [_gauss(x, 0.0, 1.0) for x in d.tolist()]
    h_loc = [_gauss(x, -0.5, 1.0) + _gauss(x, 0.5, 1.0) for x in d.tolist()]
    w_cls, w_loc = ase_weights(d, labels, sens, weighting="stabilised")
    assert w_cls.tolist() == pytest.approx([h / np.mean(h_cls) for h in h_cls], rel=1e-6)
    assert w_loc.tolist() == pytest.approx([h / np.mean(h_loc) for h in h_loc], rel=1e-6)
    q_cls = torch.tensor([0.2, 0.9, 0.4, 0.1], requires_grad=True)
    q_loc = torch.tensor([0.5, 0.3, 0.7, 0.6], requires_grad=True)
    w_cls, w_loc = ase_weights(d, labels, sens, q_cls, q_loc, weighting="stabilised")
    both_cls = [h + q for h, q in zip(h_cls, q_cls.tolist())]
    both_loc = [h + q for h, q in zip(h_loc, q_loc.tolist())]
    assert w_cls.tolist() == pytest.approx([h / np.mean(both_cls) for h in both_cls], rel=1e-6)
    assert w_loc.tolist() == pytest.approx([h / np.mean(both_loc) for h in both_loc], rel=1e-6)
    w_cls.sum().backward()
    assert q_cls.grad is None


def test_weight_decay_skips_biases_norms_scales_and_the_gaussians():
    """ActionFormer's rule: AdamW decays only conv/linear weights. With zero gradients an AdamW step
    moves a decayed weight by exactly -lr·wd·w and leaves every other parameter where it was."""
    from tsplab.localizer import LocalizerConfig
    from tsplab.localizer.model import Localizer
    from tsplab.localizer.train import parameter_groups

    model = Localizer(LocalizerConfig(embed_dim=16, num_levels=2, regression_ranges=((0, 4), (4, 100))), 8, 3)
    with torch.no_grad():
        model.sensitivity.sigma_cls.fill_(2.0)
        model.sensitivity.mu_cls.fill_(0.3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.5), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    decayed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert "net.project.0.weight" in decayed and "net.eval_cls.fc.weight" in decayed
    assert torch.allclose(model.net.project[0].weight, before["net.project.0.weight"] * (1 - 0.1 * 0.5))
    for name in ("sensitivity.sigma_cls", "sensitivity.mu_cls", "sensitivity.sigma_loc",
                 "net.project.0.bias", "net.norms.0.norm.weight", "net.head.scales.0.scale"):
        assert name not in decayed, name
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert decayed == {n for n in before if n.endswith("weight") and "norm" not in n} - frozen


def test_batched_sensitive_features_by_hand():
    """Eqs. (11)-(13) on two videos of 10 and 6 valid positions. Channel 0 holds the position, channel
    1 a constant 1, padding holds 100 (it must never be read)."""
    from tsplab.localizer.asl import ClassSensitivity, batched_sensitive_features

    sens = ClassSensitivity(2)  # μ_cls = 0, μ_sot/eot = ∓0.5, σ = 1
    feats = torch.zeros(2, 2, 10)
    feats[:, 0] = torch.arange(10.0)
    feats[:, 1] = 1.0
    feats[1, :, 6:] = 100.0
    lengths = torch.tensor([10, 6])
    video_index = torch.tensor([0, 1, 1])
    segments = torch.tensor([[2.0, 6.0], [3.0, 5.5], [7.0, 9.0]])
    labels = torch.tensor([0, 1, 1])
    f_cls, f_loc, f_bg, has_frames, has_bg = batched_sensitive_features(
        feats, lengths, video_index, segments, labels, sens, delta=0.2)
    assert has_frames.tolist() == [True, True, False]  # the third lies in the padding
    assert has_bg.tolist() == [True, False, False]

    def p_cls(i, s, e):
        return _gauss((i - (s + e) / 2) / (e - s), 0.0, 1.0)

    def p_loc(i, s, e):
        d = (i - (s + e) / 2) / (e - s)
        return _gauss(d, -0.5, 1.0) + _gauss(d, 0.5, 1.0)

    def mean_of(weights):  # eq. (12): mean over the selected positions of p_i · f_i
        return [sum(w * i for i, w in weights.items()) / len(weights), sum(weights.values()) / len(weights)]

    # action 0: positions 2..6 (N_f = 5), range δ·N_f = 1. Centre-sensitive frame 4 -> 3, 4, 5;
    # start-sensitive frame 2 -> 2, 3 and end-sensitive frame 6 -> 5, 6 for localization
    assert f_cls[0].tolist() == pytest.approx(mean_of({i: p_cls(i, 2, 6) for i in (3, 4, 5)}), rel=1e-6)
    assert f_loc[0].tolist() == pytest.approx(mean_of({i: p_loc(i, 2, 6) for i in (2, 3, 5, 6)}), rel=1e-6)
    # background (eq. 13): the δ·N_f = 1 positions before and after: 1 and 7, weight 1
    assert f_bg[0].tolist() == pytest.approx([4.0, 1.0])
    # action 1: positions 3..5 (N_f = 3, range 0.6), d = -0.5, -0.1, 0.3: the centre-sensitive frame
    # is 4 alone; start frame 3 and end frame 5; its background would be 6 (padding): none
    assert f_cls[1].tolist() == pytest.approx(mean_of({4: p_cls(4, 3, 5.5)}), rel=1e-6)
    assert f_loc[1].tolist() == pytest.approx(mean_of({3: p_loc(3, 3, 5.5), 5: p_loc(5, 3, 5.5)}), rel=1e-6)
    # the one-instance wrapper returns the same numbers, and None for what is missing
    from tsplab.localizer.asl import sensitive_features

    one = sensitive_features(feats[1, :, :6], 3.0, 5.5, 1, sens, delta=0.2)
    assert one[0].tolist() == pytest.approx(f_cls[1].tolist()) and one[2] is None
    assert sensitive_features(feats[1, :, :6], 7.0, 9.0, 1, sens) == (None, None, None)


def _ascl_by_hand(features, labels, background, tau):
    a = [np.asarray(f, float) / np.linalg.norm(f) for f in features]
    bg = [np.asarray(f, float) / np.linalg.norm(f) for f in background]
    losses = []
    for i, (ai, li) in enumerate(zip(a, labels)):
        pos = sum(math.exp(ai @ aj / tau) for j, (aj, lj) in enumerate(zip(a, labels)) if j != i and lj == li)
        if pos == 0:
            continue  # an anchor without positives is skipped
        neg = sum(math.exp(ai @ aj / tau) for aj, lj in zip(a, labels) if lj != li)
        neg += sum(math.exp(ai @ b / tau) for b in bg)
        losses.append(-math.log(pos / (pos + neg)))
    return float(np.mean(losses))


def test_ascl_loss_matches_eq14_by_hand():
    from tsplab.localizer.asl import ascl_loss

    # three actions (two of class 0) and one background; anchor 2 has no positive and is skipped:
    # anchor 0: -log(e^{0.6/τ} / (e^{0.6/τ} + e^{0/τ} + e^{-1/τ})), anchor 1 likewise with its cosines
    feats = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]
    tau = 0.5
    pos0, neg0 = math.exp(0.6 / tau), math.exp(0.0) + math.exp(-1.0 / tau)
    pos1, neg1 = math.exp(0.6 / tau), math.exp(0.8 / tau) + math.exp(-0.6 / tau)
    hand = 0.5 * (-math.log(pos0 / (pos0 + neg0)) - math.log(pos1 / (pos1 + neg1)))
    got = ascl_loss(torch.tensor(feats), torch.tensor([0, 0, 1]), torch.tensor([[-1.0, 0.0]]), temperature=tau)
    assert got.item() == pytest.approx(hand, rel=1e-6)
    # cosine similarity: scaling a feature changes nothing
    scaled = torch.tensor([[3.0, 0.0], [0.3, 0.4], [0.0, 7.0]])
    assert ascl_loss(scaled, torch.tensor([0, 0, 1]), torch.tensor([[-2.0, 0.0]]), temperature=tau).item() == \
        pytest.approx(hand, rel=1e-6)
    # several positives are summed, backgrounds of every instance are negatives, τ defaults to 0.1
    rng = np.random.default_rng(0)
    many = rng.normal(size=(6, 3))
    labels = [0, 0, 0, 1, 1, 2]
    background = rng.normal(size=(2, 3))
    got = ascl_loss(torch.tensor(many), torch.tensor(labels), torch.tensor(background))
    assert got.item() == pytest.approx(_ascl_by_hand(many, labels, background, 0.1), rel=1e-6)
    # no background at all, and no anchor with a positive: 0
    got = ascl_loss(torch.tensor(many), torch.tensor(labels), torch.zeros(0, 3), temperature=0.3)
    assert got.item() == pytest.approx(_ascl_by_hand(many, labels, [], 0.3), rel=1e-6)
    assert ascl_loss(torch.tensor(many[:3]), torch.tensor([0, 1, 2]), torch.tensor(background)).item() == 0.0


def test_sensitive_range_defaults_and_short_actions():
    """δ = 0.2 by default (ASL §4.2) in both the batched and the one-instance form; an action shorter
    than one position still has its one frame at d = (i - centre) / length (no clamp at length 1)."""
    from tsplab.localizer.asl import (
        ClassSensitivity,
        batched_sensitive_features,
        sensitive_features,
    )

    sens = ClassSensitivity(1)
    feats = torch.zeros(1, 2, 30)
    feats[0, 0] = torch.arange(30.0)
    feats[0, 1] = 1.0
    args = (feats, torch.tensor([30]), torch.tensor([0, 0]), torch.tensor([[4.0, 4.5], [5.0, 25.0]]),
            torch.tensor([0, 0]), sens)
    default = batched_sensitive_features(*args)
    for got, want in zip(default, batched_sensitive_features(*args, delta=0.2)):
        assert torch.equal(got, want)
    # the short action: position 4 alone, d = (4 - 4.25) / 0.5 = -0.5
    assert default[0][0].tolist() == pytest.approx([4 * _gauss(-0.5, 0, 1), _gauss(-0.5, 0, 1)], rel=1e-6)
    # the long one: 21 positions, δ·N_f = 4.2 -> centre 15 ± 4 (9 positions), background 1..4 and 26..29
    assert default[2][1].tolist() == pytest.approx([(10 + 110) / 8, 1.0])
    one = sensitive_features(feats[0], 5.0, 25.0, 0, sens)
    assert all(torch.equal(a, b[1]) for a, b in zip(one, default[:3]))
    wide = batched_sensitive_features(*args, delta=0.5)
    one = sensitive_features(feats[0], 5.0, 25.0, 0, sens, delta=0.5)
    assert all(torch.equal(a, b[1]) for a, b in zip(one, wide[:3]))
    assert not torch.equal(wide[2][1], default[2][1])


def test_ascl_loss_of_fewer_than_two_features_is_zero_and_keeps_the_graph():
    from tsplab.localizer.asl import ascl_loss

    one = torch.tensor([[2.0, 1.0]], requires_grad=True)
    loss = ascl_loss(one, torch.tensor([0]), torch.tensor([[1.0, 0.0]]))
    assert loss.item() == 0.0 and loss.requires_grad


def test_an_unknown_ase_weighting_is_refused_naming_the_valid_ones():
    from tsplab.errors import InputError
    from tsplab.localizer import LocalizerConfig
    from tsplab.localizer.config import validate_localizer_config

    config = LocalizerConfig(features_dir="f", annotations="a.json", out_dir="o", ase_weighting="mean")
    with pytest.raises(InputError, match=r"ase_weighting: 'mean' is not a valid choice; valid: paper, stabilised"):
        validate_localizer_config(config)
