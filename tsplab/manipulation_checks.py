"""Manipulation checks of the benchmark dials (``tsplab.benchmark_dials``): for each dial, a number
measured on the generated benchmark, with no pretraining method in the loop, that says whether the
level did what it claims. A sweep over a dial is only worth running where its check moves.

* ``context_distractors`` -- :func:`clip_local_foreground_auc`: a logistic regression on one clip's
  motion spectrum (the generator's own object trajectory, no video context) separating foreground
  from background clips; it must fall towards 0.5 as the level rises.
* ``source_shift`` -- :func:`pixel_domain_auc` (a domain classifier on per-frame pixel statistics)
  and :func:`domain_auc` (the same on any features, e.g. a source encoder's): source vs target
  must become separable as the level rises.
* ``multi_action`` / ``cuts_at_boundaries`` / ``cuts_elsewhere`` -- :func:`cut_statistics`: cuts
  detected in the frames (a jump of the median pixel change), the share of action boundaries with a
  cut and the cuts per video elsewhere; :func:`overlap_statistics` gives classes per video.
* ``dense`` -- :func:`overlap_statistics`: from the annotations, the share of foreground time
  covered by two or more instances and the share of instances overlapping another.
* ``onset_cue`` -- :func:`onset_appearance_auc`: how well the object's appearance in one frame
  (its colour and its size, measured in the frame) singles out onset frames.

Numpy only (no scikit-learn): :func:`fit_logistic` is a small ridge-regularised Newton solver and
:func:`auc` the rank statistic.
"""
from __future__ import annotations

import numpy as np

from tsplab.benchmark_dials import ONSET_FRAMES, object_path

# A scene cut changes most pixels; object motion changes few, pixel noise a couple of grey levels.
CUT_THRESHOLD = 6.0   # grey levels of the median absolute pixel change between consecutive frames


def auc(scores, labels) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties count half); nan when a
    class is missing."""
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0  # 1-based average rank of each tie group
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_logistic(x, y, l2: float = 1e-2, iterations: int = 30):
    """A ridge-regularised logistic regression fitted by Newton's method on standardised
    features; returns ``predict(x) -> P(y = 1)``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    mean, std = x.mean(0), x.std(0) + 1e-9
    design = np.hstack([np.ones((len(x), 1)), (x - mean) / std])
    w = np.zeros(design.shape[1])
    ridge = l2 * np.eye(len(w))
    ridge[0, 0] = 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(design @ w, -30, 30)))
        gradient = design.T @ (p - y) + ridge @ w
        hessian = (design * (p * (1 - p))[:, None]).T @ design + ridge + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break

    def predict(z):
        z = np.hstack([np.ones((len(z), 1)), (np.asarray(z, float) - mean) / std])
        return 1 / (1 + np.exp(-np.clip(z @ w, -30, 30)))
    return predict


def heldout_auc(x_train, y_train, x_test, y_test) -> dict:
    """AUC and accuracy (threshold 0.5) on the test rows of a logistic regression fitted on the
    training rows."""
    p = fit_logistic(x_train, y_train)(x_test)
    return {"auc": auc(p, y_test), "accuracy": float(((p >= 0.5) == np.asarray(y_test, bool)).mean()),
            "train_rows": int(len(y_train)), "test_rows": int(len(y_test))}


# --------------------------------------------------------------------------------------------------
# context_distractors: is foreground decidable from one clip's motion?


def clip_motion_spectrum(x, y, radius, object_radius: float) -> np.ndarray:
    """Features of one clip of the object's path (each [L]): log(1 + |rfft|) of the frame-to-frame
    velocity of x and y (in object radii) and of the log radius: what one clip's motion says,
    with nothing from the rest of the video."""
    parts = [np.diff(x) / object_radius, np.diff(y) / object_radius, np.diff(np.log(radius))]
    return np.log1p(np.concatenate([np.abs(np.fft.rfft(p)) for p in parts]))


def clip_motion_dataset(config, plans, seed: int, stride: int = 2):
    """(features [N, F], foreground [N], video index [N]) of every clip of ``clip_length_frames``
    at ``stride`` that is purely foreground or purely background (the clips pretraining uses)."""
    from tsplab.synthetic import _get_config

    config = _get_config(config)
    length, r = config.clip_length_frames, config.object_radius_frac * config.frame_size
    rows, labels, groups = [], [], []
    for plan in plans:
        cx, cy, radius, frame_labels = object_path(config, plan, seed)
        fg = frame_labels >= 0
        for t in range(0, plan.num_frames - length + 1, stride):
            inside = fg[t:t + length]
            if inside.all() or not inside.any():
                rows.append(clip_motion_spectrum(cx[t:t + length], cy[t:t + length], radius[t:t + length], r))
                labels.append(bool(inside.all()))
                groups.append(plan.index)
    return np.array(rows), np.array(labels), np.array(groups)


def clip_local_foreground_auc(config, seed: int = 0, stride: int = 2) -> dict:
    """The check of ``context_distractors``: a logistic regression on one clip's motion spectrum
    (:func:`clip_motion_spectrum`), fitted on the training videos' pure clips and scored on the
    validation videos' (AUC, accuracy). Near 1: foreground is decidable from one clip; 0.5: it is
    not, and only the video's context can tell."""
    from tsplab.synthetic import plan_benchmark

    plans = plan_benchmark(config, seed)
    x, y, _ = clip_motion_dataset(config, plans, seed, stride)
    train = np.repeat([p.subset == "training" for p in plans], _clips_per_plan(config, plans, stride))
    return heldout_auc(x[train], y[train], x[~train], y[~train])


def _clips_per_plan(config, plans, stride: int) -> list[int]:
    """How many rows :func:`clip_motion_dataset` yields per plan (pure clips only)."""
    from tsplab.benchmark_dials import foreground_mask
    from tsplab.synthetic import _get_config

    length = _get_config(config).clip_length_frames
    counts = []
    for plan in plans:
        fg = foreground_mask(plan.num_frames, plan.instances)
        starts = range(0, plan.num_frames - length + 1, stride)
        counts.append(sum(fg[t:t + length].all() or not fg[t:t + length].any() for t in starts))
    return counts
