"""ASL's action sensitivity: class-level Gaussians (ASE, sec. 3.2, eqs. 3-4), the weights ASE puts
on each positive position's losses (eq. 8), and the action sensitive contrastive loss (ASCL, sec.
3.3, eqs. 11-14). The instance-level evaluators are modules of ``tsplab.localizer.model``
(``InstanceEvaluator``), trained by ``Localizer.losses`` there (eq. 7).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

SIGMA_MAX = 5.0  # σ is clamped at 5 (issue 6 / ASL's released setting)
SIGMA_MIN = 1e-2  # keeps the Gaussians finite; the paper names no lower bound


class ClassSensitivity(nn.Module):
    """Learnable per-class Gaussians over the normalised distance ``d`` in [-0.5, 0.5] of a frame to
    its action's centre (ASL eqs. 3-4).

    Classification: one Gaussian per class, μ initialised at 0 (centre frames matter most).
    Localization: two per class, start (μ = -0.5) and end (μ = +0.5). Every σ starts at 1 and is
    clamped to at most 5. Eq. (4) writes ``2σ`` where eq. (3) writes ``2σ^2``; we use ``2σ^2`` in both,
    reading the missing square as a typo (with σ = 1 at initialisation they agree).
    """

    def __init__(self, num_classes: int):
        super().__init__()
        self.mu_cls = nn.Parameter(torch.zeros(num_classes))
        self.sigma_cls = nn.Parameter(torch.ones(num_classes))
        self.mu_loc = nn.Parameter(torch.tensor([-0.5, 0.5]).repeat(num_classes, 1))  # [K, 2]
        self.sigma_loc = nn.Parameter(torch.ones(num_classes, 2))

    @staticmethod
    def _gauss(d, mu, sigma):
        sigma = sigma.clamp(SIGMA_MIN, SIGMA_MAX)
        return torch.exp(-(d - mu) ** 2 / (2 * sigma ** 2))

    def p_cls(self, d: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``p^cls 1[c]`` (eq. 3): ``d`` ``[N]``, ``labels`` ``[N]`` (long) -> ``[N]``."""
        return self._gauss(d, self.mu_cls[labels], self.sigma_cls[labels])

    def p_start_end(self, d: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(p^sot, p^eot)`` of eq. (4) as ``[N, 2]``."""
        return self._gauss(d[:, None], self.mu_loc[labels], self.sigma_loc[labels])

    def p_loc(self, d: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``p^loc 1[c] = p^sot + p^eot`` (eq. 4), ``[N]``."""
        return self.p_start_end(d, labels).sum(dim=1)


#: How eq. (8)'s weights enter eqs. (9)-(10). ``paper``: as written, ``h = p·1[c] + q`` multiplies
#: each positive's loss, gradients flowing into both terms (the Gaussians and the evaluators learn
#: from the detection losses as well as, for q, from eq. 7). ``stabilised``: tsplab's earlier variant,
#: q detached and h rescaled to mean 1 over the batch's positives (the loss keeps its magnitude
#: whatever the Gaussians do); a named switch, not the paper's text. The peers study compares the two
#: (README, "The localizer"): with the class level off, "paper" collapses (the detection losses drive
#: q, the only weight left, towards 0), while the paper's own instance-only row works, so its authors
#: most likely kept q out of that gradient.
ASE_WEIGHTINGS = ("paper", "stabilised")


def ase_weights(d: torch.Tensor, labels: torch.Tensor, sensitivity: ClassSensitivity | None = None,
                q_cls: torch.Tensor | None = None, q_loc: torch.Tensor | None = None,
                weighting: str = "paper") -> tuple[torch.Tensor, torch.Tensor]:
    """ASE's weights ``(h_cls, h_loc)`` ``[N]`` of the positive positions' classification and
    regression losses (eq. 8): the class-level ``p^cls``/``p^loc`` at the normalised distance ``d``
    ``[N]`` to the action's centre (``sensitivity``; ``None``: class level off) plus the
    instance-level evaluators' ``q_cls``/``q_loc`` ``[N]`` (``None``: instance level off). With
    both off every weight is 1. ``weighting``: one of ``ASE_WEIGHTINGS``."""
    if weighting not in ASE_WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r}; valid: {', '.join(ASE_WEIGHTINGS)}")
    if sensitivity is None and q_cls is None:
        return torch.ones_like(d), torch.ones_like(d)
    stabilised = weighting == "stabilised"
    h_cls = torch.zeros_like(d)
    h_loc = torch.zeros_like(d)
    if sensitivity is not None:
        h_cls = h_cls + sensitivity.p_cls(d, labels)
        h_loc = h_loc + sensitivity.p_loc(d, labels)
    if q_cls is not None:
        h_cls = h_cls + (q_cls.detach() if stabilised else q_cls)
        h_loc = h_loc + (q_loc.detach() if stabilised else q_loc)
    if not stabilised:
        return h_cls, h_loc
    return h_cls / h_cls.mean().clamp(min=1e-6), h_loc / h_loc.mean().clamp(min=1e-6)


def sensitive_features(features: torch.Tensor, start: float, end: float, label: int,
                       sensitivity: ClassSensitivity, delta: float = 0.2):
    """The three features ASCL contrasts for one action instance (ASL eqs. 11-13): ``features``
    ``[D, T]`` of one video, ``start``/``end`` in position units. Returns ``(f_cls [D], f_loc [D],
    f_bg [D] or None)``, or three ``None`` when no position lies inside the action. See
    ``batched_sensitive_features``."""
    f_cls, f_loc, f_bg, has_frames, has_bg = batched_sensitive_features(
        features[None], torch.tensor([features.shape[1]]), torch.tensor([0]),
        torch.tensor([[float(start), float(end)]]), torch.tensor([int(label)]), sensitivity, delta)
    if not has_frames[0]:
        return None, None, None
    return f_cls[0], f_loc[0], (f_bg[0] if has_bg[0] else None)


def batched_sensitive_features(features: torch.Tensor, lengths: torch.Tensor, video_index: torch.Tensor,
                               segments: torch.Tensor, labels: torch.Tensor,
                               sensitivity: ClassSensitivity, delta: float = 0.2):
    """ASCL's features of ``N`` action instances at once (ASL eqs. 11-13).

    ``features`` ``[B, D, T]``, ``lengths`` ``[B]`` (valid positions per video), ``video_index``
    ``[N]`` (the instance's video), ``segments`` ``[N, 2]`` in positions, ``labels`` ``[N]``.
    Returns ``f_cls, f_loc, f_bg`` ``[N, D]`` and the bool masks ``has_frames`` ``[N]`` (some
    position lies inside the action) and ``has_bg`` ``[N]`` (some background position around it).

    The frames of an action are the positions ``i`` with ``start <= i <= end``, ``N_f`` their count;
    ``a`` = argmax of the class-level sensitivity (eq. 11; the first on ties) and the sensitive range
    is ``a ± δ N_f`` limited to the action (for localization the union of the ranges around the
    start- and end-sensitive frames). Eq. (12)'s ``1/T`` is read as the mean over that range. The
    background ranges of eq. (13) are the ``δ N_f`` positions before the start and after the end.
    """
    dtype = features.dtype
    t = features.shape[-1]
    idx = torch.arange(t, device=features.device, dtype=dtype)[None, :]  # [1, T]
    start, end = segments[:, :1].to(dtype), segments[:, 1:].to(dtype)  # [N, 1]
    valid = idx < lengths[video_index][:, None].to(dtype)
    inside = (idx >= torch.ceil(start - 1e-6)) & (idx <= torch.floor(end + 1e-6)) & valid  # [N, T]
    n_f = inside.sum(dim=1, keepdim=True).to(dtype)
    d = ((idx - 0.5 * (start + end)) / (end - start).clamp(min=1e-6)).clamp(-0.5, 0.5)
    lab = labels[:, None].expand(-1, t)
    p_cls = sensitivity.p_cls(d.flatten(), lab.flatten()).view_as(d)
    p_se = sensitivity.p_start_end(d.flatten(), lab.flatten()).view(*d.shape, 2)
    radius = delta * n_f

    def window(p):
        a = p.detach().masked_fill(~inside, -1.0).argmax(dim=1, keepdim=True).to(dtype)
        return ((idx - a).abs() <= radius) & inside

    f = features[video_index]  # [N, D, T]

    def weighted_mean(weights, sel):
        w = weights * sel
        return torch.einsum("ndt,nt->nd", f, w) / sel.sum(dim=1, keepdim=True).clamp(min=1)

    f_cls = weighted_mean(p_cls, window(p_cls))
    f_loc = weighted_mean(p_se.sum(dim=-1), window(p_se[..., 0]) | window(p_se[..., 1]))
    bg = (((idx >= start - radius) & (idx < start)) | ((idx > end) & (idx <= end + radius))) & valid
    f_bg = weighted_mean(torch.ones_like(d), bg)
    return f_cls, f_loc, f_bg, inside.any(dim=1), bg.any(dim=1)


def ascl_loss(action_features: torch.Tensor, action_labels: torch.Tensor,
              background_features: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """ASL eq. (14) over one batch.

    ``action_features`` ``[M, D]`` (every instance's ``f_cls`` and ``f_loc``), ``action_labels``
    ``[M]``, ``background_features`` ``[G, D]`` (every ``f_bg``; may be empty). Each action feature
    is an anchor; its positives are the other action features of the same class (its own
    ``f_cls``/``f_loc`` partner included), its negatives the action features of other classes and
    all backgrounds. ``sim(a, b) = exp(cos(a, b) / τ)``; the paper does not give ``sim`` or τ, so we
    take the usual InfoNCE form with τ = 0.1 (SupCon's value). Anchors without positives are skipped;
    the loss is the mean over the remaining anchors (0 when none).
    """
    if len(action_features) < 2:
        return action_features.sum() * 0.0
    a = F.normalize(action_features, dim=1)
    bg = F.normalize(background_features, dim=1) if len(background_features) else a[:0]
    sim_aa = torch.exp(a @ a.T / temperature)
    sim_ab = torch.exp(a @ bg.T / temperature)
    same = action_labels[:, None] == action_labels[None, :]
    eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
    pos_mask = same & ~eye
    pos = (sim_aa * pos_mask).sum(dim=1)
    neg = (sim_aa * (~same)).sum(dim=1) + sim_ab.sum(dim=1)
    has_pos = pos_mask.any(dim=1)
    if not has_pos.any():
        return action_features.sum() * 0.0
    return -torch.log(pos[has_pos] / (pos[has_pos] + neg[has_pos])).mean()
