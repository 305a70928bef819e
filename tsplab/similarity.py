"""How temporally sensitive clip features are, measured within each video.

- Cosine-similarity matrices of a video's clip features with the ground-truth extents beside them
  (TSP Fig. 2, PAL Fig. 3): temporally sensitive features are similar inside an action and
  dissimilar between the action and its surrounding background.
- A number per feature set: mean cosine similarity of clip pairs inside the same action (fg-fg)
  minus that of (action clip, background clip) pairs of the same video (fg-bg), averaged over
  videos. TSP's paper shows this only as pictures; this difference is what the pictures contrast
  (its "consensus" and "sharpness").
- A width-independent number beside it: a linear probe telling foreground from background clips,
  cross-validated over videos (no video in both a probe's training and test folds), scored by its
  held-out ROC AUC and balanced accuracy (:func:`probe_sensitivity`). A cosine difference depends on
  the feature width (a two-stream set is twice as wide); a held-out share of clips does not.
- BSP Fig. 4: absolute differences between consecutive clip features, at ground-truth boundaries
  vs inside segments. BSP normalises the feature vectors first and histograms the element-wise
  differences of one clip pair; we summarise each consecutive pair by its mean absolute
  element-wise difference of L2-normalised features, so a dataset gives one distribution.

A clip belongs to an action when its centre (``FeatureMetadata.clip_centre_s``, where a localizer
anchors it) lies inside the action's [t_start_s, t_end_s]; background clips belong to none.
Feature folders follow ``tsplab.features`` (``{video}.npy`` [T, C] + ``metadata.json``) and are read
through its one reader, ``open_feature_folders``: a feature set ``{name: folder}`` may also be
``{name: [folder, folder]}``, the folders joined per clip (BSP §3.4 two-stream, e.g. TAC ⊕ BSP).
Videos are matched to their files by ``tsplab.features.feature_files`` (the one id rule,
``v_<id>.npy`` and ``<id>.npy`` serve video ``<id>``) and ground-truth ids through the same
``tsplab.datasets.normalize_video_id``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsplab.datasets import normalize_video_id
from tsplab.features import open_feature_folders
from tsplab.evaluation import normalize_ids


def cosine_similarity_matrix(features: np.ndarray) -> np.ndarray:
    """Cosine similarity [T, T] of the rows of ``features`` [T, C] (a zero row has similarity 0)."""
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    return x @ x.T


def clip_membership(segments_s: np.ndarray, clip_centre_s: np.ndarray) -> np.ndarray:
    """membership [K, T]: clip t is inside instance k (its centre within [start, end])."""
    seg = np.asarray(segments_s, dtype=float).reshape(-1, 2)
    c = np.asarray(clip_centre_s, dtype=float)[None, :]
    return (c >= seg[:, :1]) & (c <= seg[:, 1:])


def segments_by_video(instances: pd.DataFrame) -> dict[str, np.ndarray]:
    """Normalised video id -> its ground-truth segments [K, 2] (start, end seconds), by start."""
    table = instances.assign(video=normalize_ids(instances["video"])).sort_values(
        "t_start_s", kind="stable")
    return {video: rows[["t_start_s", "t_end_s"]].to_numpy(float)
            for video, rows in table.groupby("video", sort=False)}


# --------------------------------------------------------------------------------------------
# Feature folders
# --------------------------------------------------------------------------------------------

def _open_sets(feature_folders: dict) -> dict:
    """``{feature set: JoinedFeatures}``: each value of ``feature_folders`` is one folder or a list of
    folders joined per clip (BSP two-stream), read through ``tsplab.features.open_feature_folders``."""
    return {name: open_feature_folders(folders, f"feature_folders[{name!r}]")
            for name, folders in feature_folders.items()}


def common_videos(feature_folders: dict, instances: pd.DataFrame) -> list[str]:
    """Normalised ids of videos with ground truth and features in every feature set, sorted (a set of
    several folders has a video when every one of its folders does; the others are named in a
    warning)."""
    return _common(_open_sets(feature_folders), instances)


def _common(sets: dict, instances: pd.DataFrame) -> list[str]:
    ids = set(normalize_ids(instances["video"]))
    for features in sets.values():
        ids &= set(features.videos)
    return sorted(ids)


def iter_video_features(feature_folders: dict, instances: pd.DataFrame, videos=None):
    """Yield (feature_set, video, features [T, C], metadata, segments_s [K, 2]) for every feature
    set and video (default: ``common_videos``); ids are normalised. A feature set is one folder or a
    list of folders joined per clip (``[T, ΣC]``, the joined metadata). Each set is opened once; a
    progress bar shows on datasets of 100 videos or more."""
    from tqdm.auto import tqdm

    sets = _open_sets(feature_folders)
    videos = _common(sets, instances) if videos is None else [normalize_video_id(v) for v in videos]
    segments = segments_by_video(instances)
    for name, features in sets.items():
        for video in tqdm(videos, desc=f"features {name}", disable=len(videos) < 100, leave=False):
            yield name, video, features.read(video), features.metadata, segments.get(video, np.zeros((0, 2)))


@dataclass
class SimilarityView:
    """One feature set's similarity matrix of one video, with what is needed to draw it."""

    feature_set: str
    video: str
    matrix: np.ndarray  # [T, T] cosine similarity
    clip_centre_s: np.ndarray  # [T]
    stride_s: float
    segments_s: np.ndarray  # [K, 2] ground-truth actions of the video


def similarity_views(feature_folders: dict, video: str, instances: pd.DataFrame) -> list[SimilarityView]:
    """The similarity matrix of ``video`` for each feature set ``{name: folder}``."""
    return [SimilarityView(name, vid, cosine_similarity_matrix(features),
                           meta.clip_centre_s(len(features)), meta.stride_s, segments)
            for name, vid, features, meta, segments
            in iter_video_features(feature_folders, instances, [video])]


# --------------------------------------------------------------------------------------------
# Temporal-sensitivity score
# --------------------------------------------------------------------------------------------

def video_sensitivity(features: np.ndarray, segments_s: np.ndarray, clip_centre_s: np.ndarray) -> dict:
    """fg-fg, fg-bg and their difference for one video.

    features [T, C]; segments_s [K, 2]; clip_centre_s [T]. fg-fg: mean cosine similarity over pairs
    of distinct clips inside the same action; fg-bg: over (action clip, background clip) pairs.
    NaN where the video has no such pair (e.g. an action covering the whole video).
    """
    sim = cosine_similarity_matrix(features)
    member = clip_membership(segments_s, clip_centre_s)
    fg = member.any(axis=0)
    same_action = (member.T.astype(np.int32) @ member.astype(np.int32)) > 0
    np.fill_diagonal(same_action, False)
    fg_bg = fg[:, None] & ~fg[None, :]
    fg_fg_value = float(sim[same_action].mean()) if same_action.any() else np.nan
    fg_bg_value = float(sim[fg_bg].mean()) if fg_bg.any() else np.nan
    return dict(fg_fg=fg_fg_value, fg_bg=fg_bg_value, sensitivity=fg_fg_value - fg_bg_value,
                num_clips=len(fg), num_foreground_clips=int(fg.sum()))


def sensitivity_per_video(feature_folders: dict, instances: pd.DataFrame, videos=None) -> pd.DataFrame:
    """DataFrame(feature_set, video, fg_fg, fg_bg, sensitivity, num_clips, num_foreground_clips):
    one row per feature set and video (default: every video with ground truth and features in all
    the folders)."""
    rows = [dict(feature_set=name, video=video,
                 **video_sensitivity(features, segments, meta.clip_centre_s(len(features))))
            for name, video, features, meta, segments
            in iter_video_features(feature_folders, instances, videos)]
    return pd.DataFrame(rows, columns=["feature_set", "video", "fg_fg", "fg_bg", "sensitivity",
                                       "num_clips", "num_foreground_clips"])


def temporal_sensitivity(feature_folders: dict, instances: pd.DataFrame, videos=None) -> pd.DataFrame:
    """One row per feature set: fg_fg, fg_bg and sensitivity (= fg_fg - fg_bg) averaged over the
    videos that have both kinds of pairs, and num_videos. Higher sensitivity: features that tell an
    action from its own video's background."""
    per_video = sensitivity_per_video(feature_folders, instances, videos).dropna(
        subset=["sensitivity"])
    table = per_video.groupby("feature_set", sort=False)[["fg_fg", "fg_bg", "sensitivity"]].mean()
    table["num_videos"] = per_video.groupby("feature_set", sort=False).size()
    return table.reindex(list(feature_folders)).reset_index()


# --------------------------------------------------------------------------------------------
# BSP Fig. 4: consecutive-clip differences at boundaries vs inside segments
# --------------------------------------------------------------------------------------------

def consecutive_differences(features: np.ndarray, segments_s: np.ndarray,
                            clip_centre_s: np.ndarray) -> pd.DataFrame:
    """DataFrame(pair, t_s, kind, mean_abs_diff), one row per consecutive clip pair (t, t+1).

    mean_abs_diff: mean over channels of |f_{t+1} - f_t| of L2-normalised features. kind:
    ``boundary`` when the pair's clips belong to different actions / background, or an action
    start or end lies between their centres; else ``action`` (both inside the same action) or
    ``background``. t_s: the midpoint of the two centres.
    """
    x = np.asarray(features, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    diff = np.abs(np.diff(x, axis=0)).mean(axis=1)
    centres = np.asarray(clip_centre_s, dtype=float)
    seg = np.asarray(segments_s, dtype=float).reshape(-1, 2)
    member = clip_membership(seg, centres)
    changed = (member[:, 1:] != member[:, :-1]).any(axis=0)
    edges = seg.reshape(-1)
    between = ((edges[None, :] > centres[:-1, None]) & (edges[None, :] < centres[1:, None])).any(axis=1)
    inside_action = member[:, :-1].any(axis=0)
    kind = np.where(changed | between, "boundary", np.where(inside_action, "action", "background"))
    return pd.DataFrame({"pair": np.arange(len(diff)), "t_s": (centres[:-1] + centres[1:]) / 2,
                         "kind": kind, "mean_abs_diff": diff})


def boundary_differences(feature_folders: dict, instances: pd.DataFrame, videos=None) -> pd.DataFrame:
    """``consecutive_differences`` of every video and feature set, with feature_set and video
    columns (long format, ready for a histogram per feature set and kind)."""
    parts = [consecutive_differences(features, segments, meta.clip_centre_s(len(features))).assign(
                 feature_set=name, video=video)
             for name, video, features, meta, segments
             in iter_video_features(feature_folders, instances, videos)]
    columns = ["feature_set", "video", "pair", "t_s", "kind", "mean_abs_diff"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def boundary_difference_summary(differences: pd.DataFrame) -> pd.DataFrame:
    """Per feature set: mean difference at boundaries, inside actions, inside background, and
    ``boundary_ratio`` = boundary / inside (action and background together). Above 1: features
    change more across a boundary than within a segment (BSP's claim for its encoder)."""
    mean = differences.pivot_table(index="feature_set", columns="kind", values="mean_abs_diff",
                                   aggfunc="mean", sort=False)
    mean = mean.reindex(columns=["boundary", "action", "background"])
    inside = differences[differences["kind"] != "boundary"].groupby(
        "feature_set", sort=False)["mean_abs_diff"].mean()
    mean["boundary_ratio"] = mean["boundary"] / inside.reindex(mean.index)
    mean.columns.name = None
    return mean.reindex(pd.unique(differences["feature_set"])).reset_index()



# --------------------------------------------------------------------------------------------
# Width-independent sensitivity: a cross-validated linear probe, foreground vs background
# --------------------------------------------------------------------------------------------

def video_folds(videos, folds: int, seed: int = 0) -> dict[str, int]:
    """``{video: fold}``: the videos dealt into ``folds`` folds (sizes differing by at most one) in
    an order drawn by ``seed``, so that every clip of a video is in one fold only."""
    videos = sorted(set(videos))
    order = np.random.default_rng((int(seed), 6151)).permutation(len(videos))
    return {videos[i]: rank % folds for rank, i in enumerate(order)}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iterations: int = 25) -> np.ndarray:
    """Weights ``[C + 1]`` (bias last) of an L2-regularised logistic regression of ``y`` (0/1) on ``x``
    ``[N, C]``, the two classes weighted equally (each carries half the loss, however many clips
    it has), fitted by Newton's method. The bias is not penalised."""
    a = np.hstack([np.asarray(x, dtype=np.float64), np.ones((len(x), 1))])
    y = np.asarray(y, dtype=np.float64)
    weight = np.where(y > 0, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1))
    penalty = np.full(a.shape[1], l2)
    penalty[-1] = 0.0
    w = np.zeros(a.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -30, 30)))
        grad = a.T @ (weight * (p - y)) + penalty * w
        hess = (a * (weight * p * (1 - p))[:, None]).T @ a + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for the 0/1 labels ``y`` (Mann-Whitney, ties half); NaN
    without both classes."""
    y = np.asarray(y, dtype=bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if not pos or not neg:
        return float("nan")
    ranks = pd.Series(np.asarray(score, dtype=np.float64)).rank(method="average").to_numpy()
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def probe_scores(features: np.ndarray, foreground: np.ndarray, videos: np.ndarray, *, folds: int = 5,
                 seed: int = 0, l2: float = 1e-2) -> dict:
    """Held-out foreground/background probe of clip ``features`` ``[N, C]`` (``foreground`` bool
    ``[N]``, ``videos`` ``[N]`` each clip's video): for each fold of videos (:func:`video_folds`), a
    logistic regression (:func:`fit_logistic`) on the standardised features of the other folds' clips
    scores this fold's clips. Returns ``probe_auc`` (ROC AUC of the held-out scores, chance 0.5),
    ``probe_accuracy`` (balanced accuracy at the classes-weighted-equally threshold, chance 0.5),
    ``num_clips`` and ``num_videos``.

    Why: the cosine difference (:func:`temporal_sensitivity`) is not comparable across feature widths
    (a two-stream set joins two encoders' features); a probe's held-out accuracy is a share of clips,
    whatever the width. Folds by video: a clip's neighbours in its own video are near copies of it,
    and a probe tested on clips of its training videos would score their memory."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(foreground, dtype=bool)
    fold_of = video_folds(videos, folds, seed)
    fold = np.array([fold_of[v] for v in videos])
    score = np.full(len(y), np.nan)
    for k in range(min(folds, len(fold_of))):
        test, train = fold == k, fold != k
        if not test.any() or len(np.unique(y[train])) < 2:
            continue
        mean, std = x[train].mean(0), x[train].std(0)
        std = np.where(std > 0, std, 1.0)
        w = fit_logistic((x[train] - mean) / std, y[train], l2)
        score[test] = ((x[test] - mean) / std) @ w[:-1] + w[-1]
    done = ~np.isnan(score)
    yd, sd = y[done], score[done]
    recalls = [np.mean(sd[yd] > 0) if yd.any() else np.nan, np.mean(sd[~yd] <= 0) if (~yd).any() else np.nan]
    return dict(probe_auc=roc_auc(yd, sd), probe_accuracy=float(np.mean(recalls)),
                num_clips=int(done.sum()), num_videos=len(set(np.asarray(videos)[done])))


def probe_sensitivity(feature_folders: dict, instances: pd.DataFrame, videos=None, *, folds: int = 5,
                      seed: int = 0) -> pd.DataFrame:
    """One row per feature set: :func:`probe_scores` of its clips (foreground: the clip's centre inside
    an action, as in :func:`video_sensitivity`) over the videos (default: ``common_videos``), with
    ``feature_set``, ``probe_auc``, ``probe_accuracy``, ``num_clips`` and ``num_videos``."""
    parts: dict[str, list] = {}
    for name, video, features, meta, segments in iter_video_features(feature_folders, instances, videos):
        fg = clip_membership(segments, meta.clip_centre_s(len(features))).any(axis=0)
        parts.setdefault(name, []).append((np.asarray(features), fg, np.full(len(fg), video, dtype=object)))
    rows = []
    for name in feature_folders:
        x, fg, vid = (np.concatenate(c) for c in zip(*parts[name])) if parts.get(name) else ([], [], [])
        scores = probe_scores(x, fg, vid, folds=folds, seed=seed) if len(x) else {}
        rows.append({"feature_set": name, **scores})
    return pd.DataFrame(rows, columns=["feature_set", "probe_auc", "probe_accuracy", "num_clips", "num_videos"])
