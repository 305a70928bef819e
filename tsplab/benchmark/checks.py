"""Manipulation checks of the benchmark dials (``tsplab.benchmark.dials``): for each dial, a number
measured on the generated benchmark, with no pretraining method in the loop, that says whether the
level did what it claims. A sweep over a dial is only worth running where its check moves.

* ``context_distractors`` -- :func:`clip_local_foreground_auc`: a logistic regression on one clip's
  motion spectrum (the generator's own object trajectory, no video context) separating foreground
  from background clips; it must fall towards 0.5 as the level rises.
* ``source_shift`` -- :func:`pixel_domain_auc` (a domain classifier on per-frame pixel statistics)
  and :func:`domain_auc` / :func:`feature_folder_domain_auc` (the same on any features, e.g. a
  source encoder's): source vs target must become separable as the level rises.
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

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tsplab.benchmark.config import class_motions, get_config
from tsplab.benchmark.dial_render import object_path
from tsplab.benchmark.dials import ONSET_FRAMES, BenchmarkDials, foreground_mask
from tsplab.benchmark.motions import MOTIONS
from tsplab.benchmark.plan import plan_benchmark, plan_source
from tsplab.benchmark.render import render_video
from tsplab.benchmark.tables import instance_table
from tsplab.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

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
    config = get_config(config)
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
    plans = plan_benchmark(config, seed)
    x, y, _ = clip_motion_dataset(config, plans, seed, stride)
    train = np.repeat([p.subset == "training" for p in plans], _clips_per_plan(config, plans, stride))
    return heldout_auc(x[train], y[train], x[~train], y[~train])


def _clips_per_plan(config, plans, stride: int) -> list[int]:
    """How many rows :func:`clip_motion_dataset` yields per plan (pure clips only)."""
    length = get_config(config).clip_length_frames
    counts = []
    for plan in plans:
        fg = foreground_mask(plan.num_frames, plan.instances)
        starts = range(0, plan.num_frames - length + 1, stride)
        counts.append(sum(fg[t:t + length].all() or not fg[t:t + length].any() for t in starts))
    return counts


# --------------------------------------------------------------------------------------------------
# source_shift: can a classifier tell source from target?


def frame_pixel_features(frames) -> np.ndarray:
    """Per frame of uint8 [T, H, W, 3]: channel means and standard deviations, mean absolute
    horizontal and vertical gradients, the residual after a 3x3 box blur (noise, blur) and the log
    power of the grey image in four spatial-frequency bands (texture family and scale)."""
    x = np.asarray(frames, np.float32) / 255.0
    grey = x.mean(-1)
    grad_x = np.abs(np.diff(grey, axis=2)).mean((1, 2))
    grad_y = np.abs(np.diff(grey, axis=1)).mean((1, 2))
    padded = np.pad(grey, ((0, 0), (1, 1), (1, 1)), mode="edge")
    box = sum(padded[:, i:i + grey.shape[1], j:j + grey.shape[2]] for i in range(3) for j in range(3)) / 9
    residual = np.abs(grey - box).mean((1, 2))
    power = np.abs(np.fft.fft2(grey - grey.mean((1, 2), keepdims=True))) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(grey.shape[1]), np.fft.fftfreq(grey.shape[2]), indexing="ij")
    radius = np.hypot(fx, fy)
    bands = [np.log(power[:, (radius > lo) & (radius <= hi)].mean(1) + 1e-6)
             for lo, hi in ((0, 0.08), (0.08, 0.16), (0.16, 0.3), (0.3, 0.71))]
    return np.column_stack([x.mean((1, 2)), x.std((1, 2)), grad_x, grad_y, residual, *bands])


def domain_auc(source_features, target_features, source_groups=None, target_groups=None,
               seed: int = 0) -> dict:
    """How separable two domains are: a logistic regression on ``source_features`` [N, F] vs
    ``target_features`` [M, F] (e.g. a source encoder's features of both sets), fitted on half the
    groups (videos; rows when no groups are given) of each domain and scored on the other half. 0.5:
    one world; 1: a classifier tells them apart from any row."""
    rng = np.random.default_rng(seed)
    halves = []
    for features, groups in ((source_features, source_groups), (target_features, target_groups)):
        features = np.asarray(features, float)
        groups = np.arange(len(features)) if groups is None else np.asarray(groups)
        names = rng.permutation(np.unique(groups))
        train = np.isin(groups, names[:len(names) // 2])
        halves.append((features[train], features[~train]))
    (s_train, s_test), (t_train, t_test) = halves
    x_train, x_test = np.vstack([s_train, t_train]), np.vstack([s_test, t_test])
    y_train = np.r_[np.ones(len(s_train)), np.zeros(len(t_train))]
    y_test = np.r_[np.ones(len(s_test)), np.zeros(len(t_test))]
    return heldout_auc(x_train, y_train, x_test, y_test)


def feature_folder_domain_auc(source_folder, target_folder, seed: int = 0) -> dict:
    """:func:`domain_auc` on two feature folders (``{video}.npy`` of [clips, D] each, as ``tsplab
    extract`` writes them), e.g. the source encoder's features of the source set's videos and of
    the target's: does the encoder see two domains? Videos are the groups of the split."""
    parts = []
    for name, folder in (("source_folder", source_folder), ("target_folder", target_folder)):
        files = sorted(Path(folder).glob("*.npy"))
        if not files:
            raise InputError(f"{name}: {folder} holds no .npy feature files; extract features into it first")
        arrays = [np.load(f) for f in files]
        parts.append((np.vstack(arrays), np.concatenate([[f.stem] * len(a) for f, a in zip(files, arrays)])))
    (source, source_groups), (target, target_groups) = parts
    return domain_auc(source, target, source_groups, target_groups, seed=seed)


def pixel_domain_auc(config, seed: int = 0, videos_per_domain: int = 48, frames_per_video: int = 4) -> dict:
    """The check of ``source_shift``: :func:`domain_auc` on :func:`frame_pixel_features` of
    ``frames_per_video`` evenly spaced rendered frames of ``videos_per_domain`` source videos and as
    many target videos (seeded choice, training and validation alike)."""
    rng = np.random.default_rng(seed)
    features, groups = [], []
    for plans in (plan_source(config, seed), plan_benchmark(config, seed)):
        chosen = rng.choice(len(plans), size=min(videos_per_domain, len(plans)), replace=False)
        rows, names = [], []
        for i in sorted(chosen):
            frames = render_video(config, plans[i], seed).frames
            picks = np.linspace(0, len(frames) - 1, frames_per_video).round().astype(int)
            rows.append(frame_pixel_features(frames[picks]))
            names += [plans[i].video] * len(picks)
        features.append(np.vstack(rows))
        groups.append(np.array(names))
    return domain_auc(features[0], features[1], groups[0], groups[1], seed=seed)


# --------------------------------------------------------------------------------------------------
# multi_action and the cuts: what the frames show at the boundaries


def detect_cuts(frames, threshold: float = CUT_THRESHOLD) -> np.ndarray:
    """Frames (index t >= 1) where a new shot starts: the median over pixels of the largest channel
    change from frame t - 1 exceeds ``threshold`` grey levels. The object covers a few percent of
    the frame, so its motion never moves the median; a new scene moves most pixels."""
    x = np.asarray(frames, np.int16)
    change = np.median(np.abs(np.diff(x, axis=0)).max(-1).reshape(len(x) - 1, -1), axis=1)
    return np.flatnonzero(change > threshold) + 1


def cut_statistics(frames_by_video: dict, plans, tolerance: int = 1) -> dict:
    """The check of the cut dials: from each video's frames (``{video: uint8 [T, H, W, 3]}``,
    rendered or decoded) the share of action boundaries (starts and ends inside the video) with a
    detected cut within ``tolerance`` frames, and the detected cuts per video away from every
    boundary."""
    at_boundary = boundaries = elsewhere = videos = 0
    for plan in plans:
        if plan.video not in frames_by_video:
            continue
        cuts = detect_cuts(frames_by_video[plan.video])
        bounds = sorted({b for s, e, _ in plan.instances for b in (s, e) if 0 < b < plan.num_frames})
        near = [bool(len(cuts)) and np.abs(cuts - b).min() <= tolerance for b in bounds]
        at_boundary += sum(near)
        boundaries += len(bounds)
        elsewhere += sum(not bounds or np.abs(np.array(bounds) - c).min() > tolerance for c in cuts)
        videos += 1
    return {"boundary_cut_share": float(at_boundary / boundaries) if boundaries else float("nan"),
            "cuts_elsewhere_per_video": float(elsewhere / videos) if videos else float("nan"),
            "boundaries": boundaries, "videos": videos}


def rendered_cut_statistics(config, seed: int = 0, subset: str = "validation") -> dict:
    """:func:`cut_statistics` on the rendered frames of every video of ``subset``."""
    plans = [p for p in plan_benchmark(config, seed) if p.subset == subset]
    return cut_statistics({p.video: render_video(config, p, seed).frames for p in plans}, plans)


# --------------------------------------------------------------------------------------------------
# dense and multi_action: what the annotations hold


def overlap_statistics(instances) -> dict:
    """From an instance table (``video, t_start_s, t_end_s, label``: ``Annotations.instances`` or
    ``tsplab.benchmark.instance_table``): the share of foreground time covered by two or more
    instances, the share of instances overlapping another of their video, and the mean number of
    classes per video (videos with instances)."""
    overlapped = foreground = 0.0
    overlapping = 0
    for _, group in instances.groupby("video"):
        starts, ends = group["t_start_s"].to_numpy(float), group["t_end_s"].to_numpy(float)
        edges = np.unique(np.r_[starts, ends])
        mids = (edges[:-1] + edges[1:]) / 2
        depth = ((starts[None] <= mids[:, None]) & (mids[:, None] < ends[None])).sum(1)
        widths = np.diff(edges)
        foreground += widths[depth >= 1].sum()
        overlapped += widths[depth >= 2].sum()
        pair = (starts[:, None] < ends[None]) & (starts[None] < ends[:, None])
        overlapping += int((pair.sum(1) > 1).sum())
    per_video = instances.groupby("video")["label"].nunique()
    return {"overlap_time_share": float(overlapped / foreground) if foreground else 0.0,
            "overlapping_instance_share": overlapping / len(instances) if len(instances) else 0.0,
            "classes_per_video": float(per_video.mean()) if len(per_video) else 0.0}


# --------------------------------------------------------------------------------------------------
# onset_cue: how much does one frame's appearance say about an onset?


def object_appearance(frames, cx, cy, radius) -> np.ndarray:
    """Per frame [T, 4]: the object's mean colour (RGB, pixels within half its radius of its
    centre) and its measured size (pixels within twice its radius whose colour is within 40 grey
    levels of that mean), read from ``frames`` at the generator's positions."""
    x = np.asarray(frames, np.float32)
    size = x.shape[1]
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    out = np.zeros((len(x), 4))
    for t in range(len(x)):
        dist = np.hypot(xx - cx[t], yy - cy[t])
        inner = dist <= max(1.0, 0.5 * radius[t])
        colour = x[t][inner].mean(0)
        window = dist <= 2 * radius[t]
        close = np.abs(x[t][window] - colour).max(-1) <= 40
        out[t] = [*colour, close.sum()]
    return out


def onset_appearance_auc(config, seed: int = 0, subset: str = "validation") -> dict:
    """The check of ``onset_cue``: each frame's object appearance (:func:`object_appearance`)
    standardised within its video (median and spread over the video's frames); the score is its
    distance from the video's typical appearance; AUC of onset frames (the first ``ONSET_FRAMES`` of
    each instance) against every other frame. 0.5: appearance says nothing about onsets."""
    scores, labels = [], []
    for plan in (p for p in plan_benchmark(config, seed) if p.subset == subset):
        cx, cy, radius, _ = object_path(config, plan, seed)
        look = object_appearance(render_video(config, plan, seed).frames, cx, cy, radius)
        median = np.median(look, 0)
        spread = np.median(np.abs(look - median), 0) + np.array([2.0, 2.0, 2.0, 1.0])
        scores.append(np.linalg.norm((look - median) / spread, axis=1))
        onset = np.zeros(plan.num_frames, bool)
        for start, end, _ in plan.instances:
            onset[start:min(end, start + ONSET_FRAMES)] = True
        labels.append(onset)
    return {"auc": auc(np.concatenate(scores), np.concatenate(labels)),
            "onset_frames": int(np.concatenate(labels).sum())}


# --------------------------------------------------------------------------------------------------
# Every dial's check at a few levels (notebook 09; a later study can sweep the same way)

# The levels each dial is checked at by default: its range, with the low levels where a check that
# saturates early (source_shift, onset_cue) still moves.
CHECK_LEVELS = {
    "context_distractors": (0.0, 0.5, 1.0),
    "foreground_share": (0.2, 0.5, 0.8),
    "source_shift": (0.0, 0.05, 0.25, 1.0),
    "source_shared_motions": (0.0, 0.5, 1.0),
    "multi_action": (0.0, 0.5, 1.0),
    "cuts_at_boundaries": (0.0, 0.5, 1.0),
    "cuts_elsewhere": (0.0, 1.0, 2.0),
    "dense": (0.0, 0.5, 1.0),
    "onset_cue": (0.0, 0.02, 0.1, 1.0),
}


def _foreground_share(config, seed):
    plans = plan_benchmark(config, seed)
    return float(np.mean([foreground_mask(p.num_frames, p.instances).mean() for p in plans]))


def _shared_motion_share(config, seed):
    motions = class_motions(config, True)
    return float(np.mean([m in MOTIONS for m in motions]))


def _annotation_statistic(name):
    def check(config, seed):
        return overlap_statistics(instance_table(config, plan_benchmark(config, seed)))[name]
    return check


# dial: (what is measured, check(config, seed) -> value)
DIAL_CHECKS = {
    "context_distractors": ("clip-local fg/bg AUC", lambda c, s: clip_local_foreground_auc(c, s)["auc"]),
    "foreground_share": ("share of frames in actions", _foreground_share),
    "source_shift": ("pixel domain AUC", lambda c, s: pixel_domain_auc(c, s)["auc"]),
    "source_shared_motions": ("share of source classes with a target motion", _shared_motion_share),
    "multi_action": ("classes per video", _annotation_statistic("classes_per_video")),
    "cuts_at_boundaries": ("share of boundaries with a cut",
                           lambda c, s: rendered_cut_statistics(c, s)["boundary_cut_share"]),
    "cuts_elsewhere": ("cuts per video away from boundaries",
                       lambda c, s: rendered_cut_statistics(c, s)["cuts_elsewhere_per_video"]),
    "dense": ("share of foreground time overlapped", _annotation_statistic("overlap_time_share")),
    "onset_cue": ("onset appearance AUC", lambda c, s: onset_appearance_auc(c, s)["auc"]),
}


def check_table(size="tiny", seed: int = 0, levels: dict | None = None) -> pd.DataFrame:
    """One row per (dial, level): the dial's manipulation check measured on the benchmark of size ``size``
    with only that dial at that level (``levels``: {dial: levels}, default :data:`CHECK_LEVELS`;
    dials left out are not checked). Columns: dial, level, check, value, seconds."""
    import pandas as pd

    base = get_config(size)
    levels = CHECK_LEVELS if levels is None else levels
    rows = []
    for dial, dial_levels in levels.items():
        if dial not in DIAL_CHECKS:
            raise InputError(f"levels: no check for dial {dial!r}; valid: {', '.join(DIAL_CHECKS)}")
        name, check = DIAL_CHECKS[dial]
        for level in dial_levels:
            config = dataclasses.replace(base, dials=BenchmarkDials(**{dial: level}))
            start = time.perf_counter()
            value = check(config, seed)
            rows.append({"dial": dial, "level": float(level), "check": name, "value": float(value),
                         "seconds": round(time.perf_counter() - start, 2)})
    return pd.DataFrame(rows, columns=["dial", "level", "check", "value", "seconds"])
