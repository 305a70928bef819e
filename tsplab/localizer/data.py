"""The localizer's data: videos of a feature folder (or of several joined per clip, BSP's
two-stream features) with their actions in feature positions, training crops, padded batches, the
points of every pyramid level, and target assignment.

Time axis: position ``x`` of a video's feature sequence is the centre of clip ``x``, i.e.
``t_s = x * stride_s + clip_length_s / 2`` (``FeatureMetadata.clip_centre_s``); ground truth in
seconds is mapped to positions with the inverse, and predictions back to seconds, clipped to the
video.

Multi-scale assignment (ActionFormer / FCOS): pyramid level ``l`` has stride ``2**l``; a position of
level ``l`` is a candidate for an action when it lies in the action's centre region (``radius x
stride`` around its centre, inside the action) and its largest distance to the action's boundaries
falls in the level's regression range; a position inside several candidates takes the shortest
action. Regression targets are the distances to start and end in units of the level's stride.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from tsplab.datasets import normalize_video_id
from tsplab.errors import InputError
from tsplab.features import FeatureFileError, FeatureMetadata, JoinedFeatures, open_feature_folders


@dataclass
class VideoItem:
    """One video: features ``[T, C]``, actions ``segments`` ``[N, 2]`` in positions, ``labels`` [N]."""

    video: str
    features: np.ndarray
    segments: np.ndarray
    labels: np.ndarray
    duration_s: float


def seconds_to_positions(t_s, meta: FeatureMetadata) -> np.ndarray:
    """Seconds -> feature positions (position i = centre of clip i)."""
    return (np.asarray(t_s, dtype=np.float64) - 0.5 * meta.clip_length_s) / meta.stride_s


def positions_to_seconds(x, meta: FeatureMetadata) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) * meta.stride_s + 0.5 * meta.clip_length_s


# ------------------------------------------------------------------------------------------------
# Videos of a feature folder
# ------------------------------------------------------------------------------------------------

def load_video_items(features_dir, annotations, subset: str, labels: list[str]
                     ) -> tuple[list[VideoItem], pd.DataFrame]:
    """The videos of ``subset`` that have features, and a table ``video, reason`` of those skipped
    (no feature file in some folder, unreadable file, wrong shape). ``annotations``: a
    ``tsplab.datasets.Annotations``. Instances whose label is not in ``labels`` are dropped with
    a warning.

    ``features_dir``: a feature folder, or a list of folders from the same videos on the same clip
    grid, read as one (each video's arrays concatenated along channels: BSP §3.4 two-stream, e.g.
    ``[tac_dir, bsp_dir]``) through ``tsplab.features.open_feature_folders``, the one reader.
    Annotation ids are matched to feature files by ``tsplab.features.feature_files`` (the one id
    rule): ``v_<id>.npy`` (ActivityNet's file names, what ``tsplab extract`` writes) and ``<id>.npy``
    both serve video ``<id>``."""
    # The skipped table names every video without usable features, those missing from one of
    # several folders included: no second warning from the reader.
    features = open_feature_folders(features_dir, warn=False)
    meta = features.metadata
    videos = annotations.videos[annotations.videos["subset"] == subset]
    if videos.empty:
        raise InputError(f"annotations: no videos in subset {subset!r} (subsets: {annotations.subsets})")
    by_video = dict(tuple(annotations.instances.groupby("video")))
    index = {name: i for i, name in enumerate(labels)}
    items, skipped = [], []
    for row in videos.itertuples(index=False):
        feats, reason = _read_features(features, row.video)
        if reason:
            skipped.append((row.video, reason))
            continue
        segs, labs = _actions(by_video.get(row.video), row.video, index, meta)
        duration = float(row.duration_s) if np.isfinite(row.duration_s) else float(
            positions_to_seconds(len(feats) - 1, meta) + 0.5 * meta.clip_length_s)
        reason = _duration_disagrees(duration, len(feats), meta)
        if reason:  # its predictions would all be clipped away: said, not lost
            skipped.append((row.video, reason))
            continue
        items.append(VideoItem(row.video, feats.astype(np.float32), segs.reshape(-1, 2), labs, duration))
    return items, pd.DataFrame(skipped, columns=["video", "reason"])


def _duration_disagrees(duration_s: float, num_clips: int, meta: FeatureMetadata) -> str:
    """Why a video's annotated duration cannot be its features' (predictions are clipped to it), or
    "": it must be > 0 and reach past the start of the next-to-last clip (one stride of slack for
    rounding), since every clip starts inside the video."""
    last_start = (num_clips - 1) * meta.stride_s
    if duration_s > 0 and duration_s >= last_start - meta.stride_s:
        return ""
    return (f"annotated duration {duration_s:g} s disagrees with its {num_clips} feature clips (the last starts "
            f"at {last_start:g} s): its predictions would all be clipped away; fix the duration")


def feature_metadata(features_dir) -> FeatureMetadata:
    """The clip grid and width of ``features_dir`` (one folder, or several joined: their common grid,
    ``feature_dim`` the sum), as :func:`load_video_items` reads it."""
    return open_feature_folders(features_dir, warn=False).metadata


def _read_features(features: JoinedFeatures, video: str) -> tuple[np.ndarray | None, str]:
    """``(features [T, C], "")`` of a video, or ``(None, why it is skipped)``. A file that is
    unreadable or of the wrong width skips its video; clip counts that differ between joined folders
    raise (``InputError``: the folders are not one grid)."""
    if video not in features:
        where = features.missing.loc[features.missing["video"] == normalize_video_id(video), "missing_from"]
        folders = where.iat[0] if len(where) else "; ".join(map(str, features.folders))
        return None, f"no feature file for {video} in {folders} ({_file_names(video)})"
    try:
        feats = features.read(video)
    except FeatureFileError as exc:
        return None, str(exc)
    if len(feats) == 0:
        return None, f"features of shape {feats.shape}, expected [T>0, {features.metadata.feature_dim}]"
    return feats, ""


def _actions(inst, video: str, index: dict, meta: FeatureMetadata) -> tuple[np.ndarray, np.ndarray]:
    """A video's actions ``[N, 2]`` in positions and their label indices ``[N]``; instances with a
    label outside ``index`` are dropped with a warning, empty or reversed ones silently."""
    if inst is None or inst.empty:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    known = inst["label"].astype(str).isin(index)
    if not known.all():
        warnings.warn(f"{video}: dropped {int((~known).sum())} instance(s) with labels outside "
                      f"the label mapping", stacklevel=3)
    inst = inst[known & (inst["t_end_s"] > inst["t_start_s"])]
    segs = np.stack([seconds_to_positions(inst["t_start_s"].to_numpy(), meta),
                     seconds_to_positions(inst["t_end_s"].to_numpy(), meta)], axis=1)
    return segs, inst["label"].astype(str).map(index).to_numpy(dtype=np.int64)


def _file_names(video: str) -> str:
    """The feature file names that serve ``video`` under the id rule."""
    if normalize_video_id(f"v_{video}") == video:
        return f"{video}.npy or v_{video}.npy"
    return f"{video}.npy"


# ------------------------------------------------------------------------------------------------
# Batches
# ------------------------------------------------------------------------------------------------

def crop_item(item: VideoItem, max_len: int, rng: np.random.Generator) -> VideoItem:
    """A random window of ``max_len`` positions (training only, ActionFormer's truncation); actions
    are clipped to the window and dropped when less than one position of them is left."""
    t = len(item.features)
    if t <= max_len:
        return item
    start = int(rng.integers(0, t - max_len + 1))
    segs = np.clip(item.segments - start, 0, max_len - 1)
    keep = segs[:, 1] - segs[:, 0] >= 1
    return VideoItem(item.video, item.features[start:start + max_len], segs[keep], item.labels[keep],
                     item.duration_s)


def collate(items: list[VideoItem], multiple: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the batch's longest sequence rounded up to ``multiple`` (so every pyramid level
    divides evenly): features ``[B, C, T]`` and mask ``[B, T]``."""
    t = max(len(i.features) for i in items)
    t = int(math.ceil(t / multiple) * multiple)
    c = items[0].features.shape[1]
    feats = torch.zeros(len(items), c, t)
    mask = torch.zeros(len(items), t, dtype=torch.bool)
    for b, item in enumerate(items):
        feats[b, :, :len(item.features)] = torch.from_numpy(item.features).T
        mask[b, :len(item.features)] = True
    return feats, mask


# ------------------------------------------------------------------------------------------------
# Points and targets
# ------------------------------------------------------------------------------------------------

def level_points(length: int, num_levels: int, regression_ranges) -> tuple[torch.Tensor, ...]:
    """Positions of every pyramid level for a padded length, concatenated over levels.

    Returns ``points [P]`` (in level-0 positions), ``strides [P]``, ``ranges [P, 2]``,
    ``levels [P]``. Level ``l`` max-pools windows of ``2**l`` positions, so its position ``i`` sits at
    the window's centre ``i * 2**l + (2**l - 1) / 2``."""
    pts, strides, ranges, levels = [], [], [], []
    for level in range(num_levels):
        s = 2 ** level
        n = int(math.ceil(length / s))
        pts.append(torch.arange(n, dtype=torch.float32) * s + 0.5 * (s - 1))
        strides.append(torch.full((n,), float(s)))
        ranges.append(torch.tensor(regression_ranges[level], dtype=torch.float32).expand(n, 2))
        levels.append(torch.full((n,), level, dtype=torch.long))
    return torch.cat(pts), torch.cat(strides), torch.cat(ranges), torch.cat(levels)


def assign_targets(segments: torch.Tensor, labels: torch.Tensor, points: torch.Tensor,
                   strides: torch.Tensor, ranges: torch.Tensor, num_classes: int,
                   radius: float = 1.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets of one video: ``cls [P, K]`` (one-hot, zeros = background), ``reg [P, 2]``
    (distances to start and end / stride) and ``gt_index [P]`` (the assigned action, -1 = none).
    ``segments`` ``[N, 2]`` in positions, ``labels`` ``[N]``."""
    p = len(points)
    cls = torch.zeros(p, num_classes)
    reg = torch.zeros(p, 2)
    gt_index = torch.full((p,), -1, dtype=torch.long)
    if len(segments) == 0:
        return cls, reg, gt_index
    start, end = segments[None, :, 0], segments[None, :, 1]  # [1, N]
    pt = points[:, None]
    left, right = pt - start, end - pt  # [P, N]
    centre = 0.5 * (start + end)
    r = radius * strides[:, None]
    c_left = torch.maximum(centre - r, start)
    c_right = torch.minimum(centre + r, end)
    in_centre = (pt - c_left >= 0) & (c_right - pt >= 0)
    max_dist = torch.maximum(left, right)
    in_range = (max_dist >= ranges[:, :1]) & (max_dist <= ranges[:, 1:])
    length = (end - start).expand(p, -1).clone()
    length[~(in_centre & in_range)] = float("inf")
    best_len, best = length.min(dim=1)  # a position inside several actions takes the shortest
    pos = torch.isfinite(best_len)
    gt_index[pos] = best[pos]
    cls[pos, labels[best[pos]]] = 1.0
    reg[pos] = torch.stack([left[pos, best[pos]], right[pos, best[pos]]], dim=1) / strides[pos, None]
    return cls, reg, gt_index


def batch_targets(items: list[VideoItem], points: torch.Tensor, strides: torch.Tensor, ranges: torch.Tensor,
                  num_classes: int, radius: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``assign_targets`` of every video of a batch, stacked: ``cls [B, P, K]``, ``reg [B, P, 2]``,
    ``gt_index [B, P]`` (on the device of ``points``)."""
    device = points.device
    targets = [assign_targets(torch.as_tensor(i.segments, dtype=torch.float32, device=device),
                              torch.tensor(np.asarray(i.labels), dtype=torch.long, device=device),
                              points, strides, ranges, num_classes, radius)
               for i in items]
    cls, reg, gt_index = (torch.stack([t[k] for t in targets]) for k in range(3))
    return cls, reg, gt_index


def positive_actions(items: list[VideoItem], gt_index: torch.Tensor, pos: torch.Tensor,
                     points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each positive position (``pos`` ``[B, P]``, in ``pos.nonzero()`` order) the normalised
    distance ``d`` in [-0.5, 0.5] of its point to the centre of its assigned action (ASL eqs. 3-4)
    ``[N_pos]``, and that action's label ``[N_pos]``."""
    device = points.device
    b_idx, p_idx = pos.nonzero(as_tuple=True)
    pairs = list(zip(b_idx.tolist(), gt_index[pos].tolist()))
    seg = torch.zeros(0, 2, device=device)
    if pairs:
        seg = torch.stack([torch.as_tensor(items[b].segments[g], dtype=torch.float32)
                           for b, g in pairs]).to(device)
    labels = torch.tensor([int(items[b].labels[g]) for b, g in pairs], dtype=torch.long, device=device)
    d = ((points[p_idx] - seg.mean(dim=1)) / (seg[:, 1] - seg[:, 0]).clamp(min=1e-6)).clamp(-0.5, 0.5)
    return d, labels
