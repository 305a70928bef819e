"""tIoU, the official score order, greedy detection matching and interpolated AP, as the ActivityNet
evaluation computes them (activitynet/ActivityNet ``Evaluation/eval_detection.py``,
``eval_proposal.py``, ``utils.py``), re-implemented in vectorised numpy.

Ties, exactly as the official code: each class's predictions (detection) and each video's
proposals (proposals), taken in file order, are ordered by ``np.argsort(scores)[::-1]``: numpy's
default sort, which is *not* stable, reversed (``official_order``). The candidates of a prediction
are tried in the order ``np.argsort(tiou)[::-1]`` of its tIoU with the ground truth of its class and
video (file order), so which of two equally overlapping instances it takes is the official one too.
Both orders depend on the arrays sorted (and on numpy's sort kernel for the CPU), so we sort exactly
the arrays the official code sorts: the numbers are the official ones, ties included, for the
numpy in use.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


# --------------------------------------------------------------------------------------------
# tIoU, score order and matching
# --------------------------------------------------------------------------------------------

def segment_iou(segments_a: np.ndarray, segments_b: np.ndarray) -> np.ndarray:
    """Temporal IoU [N, M] between segments_a [N, 2] and segments_b [M, 2] (seconds).

    As the official ``segment_iou``: intersection clipped at 0, union = sum of lengths minus the
    intersection, so two zero-length segments give 0/0 = NaN (never a match here, see
    ``match_predictions``).
    """
    a = np.asarray(segments_a, dtype=float).reshape(-1, 2)
    b = np.asarray(segments_b, dtype=float).reshape(-1, 2)
    return iou_elementwise(a[:, None, 0], a[:, None, 1], b[None, :, 0], b[None, :, 1])


def iou_elementwise(s1, e1, s2, e2):
    """tIoU of segments (s1, e1) and (s2, e2) given as broadcastable arrays of seconds (NaN for
    0/0, as the official code). The operations are the official ones in the official order
    (``utils.segment_iou`` with (s1, e1) the target), so the values are bit for bit the same."""
    inter = np.clip(np.minimum(e1, e2) - np.maximum(s1, s2), 0, None)
    union = (e2 - s2) + (e1 - s1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def official_order(groups: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Row order of the official evaluation: rows grouped by ``groups`` (integer codes, ascending),
    each group in ``np.argsort(scores[group rows in input order])[::-1]`` order.

    That is ``compute_average_precision_detection``'s ``prediction['score'].values.argsort()[::-1]``
    per class and ``average_recall_vs_avg_nr_proposals``'s ``score.argsort()[::-1]`` per video:
    numpy's default sort is not stable and its order of equal scores depends on the array, so the
    very array the official code sorts is sorted here (one call per group). groups, scores: [N].
    Returns a permutation [N].
    """
    groups = np.asarray(groups)
    scores = np.asarray(scores, dtype=float)
    by_group = np.argsort(groups, kind="stable")  # each group's rows in input (file) order
    sorted_groups = groups[by_group]
    bounds = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1, len(groups)]
    order = by_group.copy()
    for a, b in zip(bounds[:-1], bounds[1:]):
        rows = by_group[a:b]
        order[a:b] = rows[np.argsort(scores[rows])[::-1]]
    return order


def _codes(*columns: pd.Series) -> list[np.ndarray]:
    """Shared integer codes for several columns of the same kind of key."""
    values = np.concatenate([c.to_numpy(dtype=object) for c in columns])
    codes, _ = pd.factorize(values)
    return np.split(codes, np.cumsum([len(c) for c in columns])[:-1])


@dataclass
class _PaddedGroups:
    """Ground truth grouped by (class, video): ``keys`` [G] sorted, ``size`` [G], and per group
    the rows of ``ground_truth`` in file order, padded to [G, Gmax] (``index`` -1, times NaN)."""

    keys: np.ndarray
    size: np.ndarray
    index: np.ndarray
    start: np.ndarray
    end: np.ndarray


def _pad_groups(keys: np.ndarray, start: np.ndarray, end: np.ndarray) -> _PaddedGroups:
    order = np.argsort(keys, kind="stable")  # stable: file order within a group, as the official
    group_keys, first, size = np.unique(keys[order], return_index=True, return_counts=True)
    slot = np.arange(len(order)) - np.repeat(first, size)
    group = np.repeat(np.arange(len(group_keys)), size)
    shape = (len(group_keys), int(size.max()))
    index = np.full(shape, -1, dtype=np.int64)
    index[group, slot] = order
    pad_start, pad_end = np.full(shape, np.nan), np.full(shape, np.nan)
    pad_start[group, slot], pad_end[group, slot] = start[order], end[order]
    return _PaddedGroups(group_keys, size, index, pad_start, pad_end)


def match_predictions(ground_truth: pd.DataFrame, predictions: pd.DataFrame,
                      tiou_thresholds) -> np.ndarray:
    """Greedy detection matching of the ActivityNet evaluation.

    ground_truth: DataFrame(video, t_start_s, t_end_s, label); predictions: the same plus score
    (ids already normalised, rows in file order). Returns matched [N_pred, K] int64: for each
    prediction (input row order) and threshold, the row position in ``ground_truth`` of the
    instance it is a true positive for, or -1 (false positive).

    Order as the official code: each class's predictions in ``official_order``; a prediction takes,
    among the unmatched instances of its class and video with tIoU >= threshold, the one with the
    highest tIoU, equal tIoUs tried in ``np.argsort(tiou)[::-1]`` order (``_official_choice``).
    A segment of zero or negative length (either side) never matches: its tIoU is 0 or 0/0, which
    the official code would let match (NaN is never ``< threshold``).

    Vectorised over videos: ground truth of another video or class is never in competition, so the
    greedy pass runs, for all (class, video) groups at once, over the rank of a prediction within
    its group; only the number of predictions of the busiest group is looped over.
    """
    thresholds = np.asarray(tiou_thresholds, dtype=float).reshape(-1)
    matched = np.full((len(predictions), len(thresholds)), -1, dtype=np.int64)
    if len(predictions) == 0 or len(ground_truth) == 0:
        return matched
    groups, candidates, group, rank = _match_candidates(ground_truth, predictions)
    if len(candidates) == 0:
        return matched
    pr_start = predictions["t_start_s"].to_numpy(float)[candidates]
    pr_end = predictions["t_end_s"].to_numpy(float)[candidates]
    pr_ok = pr_end > pr_start
    gt_ok = groups.end > groups.start  # False on padding (NaN) and zero-length instances
    locked = np.zeros((len(groups.keys), len(thresholds), groups.index.shape[1]), dtype=bool)
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(rank))]
    for r in range(len(bounds) - 1):
        sel = by_rank[bounds[r]:bounds[r + 1]]  # at most one prediction per group
        g = group[sel]
        raw = iou_elementwise(pr_start[sel, None], pr_end[sel, None], groups.start[g], groups.end[g])
        iou = np.where(pr_ok[sel, None] & gt_ok[g], raw, -np.inf)  # [n, Gmax]
        free = (iou[:, None, :] >= thresholds[None, :, None]) & ~locked[g]  # [n, K, Gmax]
        best = _best_free(iou, free, raw, groups.size[g])
        rows, ks = np.nonzero(np.take_along_axis(free, best[..., None], axis=2)[..., 0])
        locked[g[rows], ks, best[rows, ks]] = True
        matched[candidates[sel[rows]], ks] = groups.index[g[rows], best[rows, ks]]
    return matched


def _match_candidates(ground_truth: pd.DataFrame, predictions: pd.DataFrame
                      ) -> tuple[_PaddedGroups, np.ndarray, np.ndarray, np.ndarray]:
    """The ground truth grouped by (class, video), and the predictions that have ground truth of
    their class in their video: ``(groups, candidates [C], group [C], rank [C])``, candidates being
    prediction rows sorted by group then by their rank in their class's ``official_order``, and
    ``rank`` their position within their group (0 = tried first)."""
    gt_video, pr_video = _codes(ground_truth["video"], predictions["video"])
    gt_label, pr_label = _codes(ground_truth["label"], predictions["label"])
    n_videos = int(max(gt_video.max(), pr_video.max())) + 1
    groups = _pad_groups(gt_label.astype(np.int64) * n_videos + gt_video,
                         ground_truth["t_start_s"].to_numpy(float), ground_truth["t_end_s"].to_numpy(float))
    pr_key = pr_label.astype(np.int64) * n_videos + pr_video
    class_rank = np.empty(len(predictions), dtype=np.int64)
    class_rank[official_order(pr_label, predictions["score"].to_numpy(float))] = np.arange(len(predictions))
    pos = np.searchsorted(groups.keys, pr_key).clip(max=len(groups.keys) - 1)
    candidates = np.flatnonzero(groups.keys[pos] == pr_key)
    group = pos[candidates]
    order = np.lexsort((class_rank[candidates], group))
    candidates, group = candidates[order], group[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    rank = np.arange(len(group)) - np.repeat(starts, np.diff(np.r_[starts, len(group)]))
    return groups, candidates, group, rank


def _best_free(iou: np.ndarray, free: np.ndarray, raw_iou: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """For n predictions (one per group) and K thresholds, the padded column [n, K] of the free
    instance with the highest tIoU, equal tIoUs resolved as the official code resolves them
    (``_official_choice``). iou [n, Gmax] (-inf where no match is possible), free [n, K, Gmax]."""
    candidate_iou = np.where(free, iou[:, None, :], -np.inf)
    best = candidate_iou.argmax(axis=2)  # [n, K]: the first best in file order ...
    last_best = candidate_iou.shape[2] - 1 - candidate_iou[..., ::-1].argmax(axis=2)
    tied = (last_best != best) & np.take_along_axis(free, best[..., None], axis=2)[..., 0]
    if tied.any():  # ... which the official order may not try first
        _official_choice(best, tied, free, raw_iou, sizes)
    return best


def _official_choice(best: np.ndarray, tied: np.ndarray, free: np.ndarray, raw_iou: np.ndarray,
                     sizes: np.ndarray) -> None:
    """Where several free instances share the best tIoU (``tied`` [n, K]), set ``best`` [n, K] to
    the one the official code takes: the first free one in ``np.argsort(tiou)[::-1]``, where tiou
    is the prediction's tIoU with its group's instances in file order (``raw_iou`` [n, Gmax], the
    first ``sizes[i]`` columns: the very array the official code sorts)."""
    for i in np.flatnonzero(tied.any(axis=1)):
        tried = np.argsort(raw_iou[i, :sizes[i]])[::-1]
        for kk in np.flatnonzero(tied[i]):
            best[i, kk] = tried[np.argmax(free[i, kk, tried])]


# --------------------------------------------------------------------------------------------
# Average precision
# --------------------------------------------------------------------------------------------

def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """All-point interpolated AP (VOC 2011, the official ``interpolated_prec_rec``) along axis 0.

    precision, recall: [N, K] cumulative curves in score order. Returns [K]. The area is the sum,
    over the points where recall increases, of the recall step times the precision envelope (the
    largest precision at that point or later); the appended end point (recall 1, precision 0) adds
    nothing.
    """
    precision = np.asarray(precision, dtype=float)
    recall = np.asarray(recall, dtype=float)
    if precision.ndim == 1:
        return interpolated_ap(precision[:, None], recall[:, None])[0]
    if len(precision) == 0:
        return np.zeros(precision.shape[1])
    envelope = np.maximum.accumulate(precision[::-1], axis=0)[::-1]
    step = np.diff(recall, axis=0, prepend=0.0)
    return np.where(step != 0, step * envelope, 0.0).sum(axis=0)


def average_precision_from_matches(labels: np.ndarray, scores: np.ndarray, is_tp: np.ndarray,
                                   num_positives: pd.Series, tiou_thresholds, *,
                                   normalized_num_positives: float | None = None) -> pd.DataFrame:
    """AP per class and threshold from matched predictions.

    labels [N], scores [N], is_tp [N, K] (bool, K = len(tiou_thresholds)), rows in file order;
    num_positives: ground-truth count per class (its index is the class list evaluated, of the
    labels' type). Predictions of a class are ranked in ``official_order``. With
    ``normalized_num_positives`` = N̄, precision is DETAD's normalised precision
    ``R·N̄ / (R·N̄ + FP)`` (mAP_N) instead of ``TP / (TP + FP)``. Returns DataFrame [class x K];
    a class without predictions has AP 0, one without positives NaN.
    """
    classes = num_positives.index
    # integer class codes: sorting strings is much slower; labels outside the classes are ignored
    codes = pd.Categorical(np.asarray(labels, dtype=object), categories=classes).codes
    scores = np.asarray(scores, dtype=float)
    thresholds = [float(t) for t in np.asarray(tiou_thresholds, dtype=float).reshape(-1)]
    is_tp = np.asarray(is_tp, dtype=bool).reshape(len(codes), len(thresholds))
    ap = np.zeros((len(classes), len(thresholds)))
    order = official_order(codes, scores)  # by class, then the official score order
    codes, is_tp = codes[order], is_tp[order]
    first = np.searchsorted(codes, np.arange(len(classes)), side="left")
    last = np.searchsorted(codes, np.arange(len(classes)), side="right")
    for c, (npos, a, b) in enumerate(zip(num_positives.to_numpy(float), first, last)):
        if not npos > 0:
            ap[c] = np.nan
            continue
        if a == b:
            continue
        tp_cum = np.cumsum(is_tp[a:b], axis=0, dtype=float)
        fp_cum = np.cumsum(~is_tp[a:b], axis=0, dtype=float)
        recall = tp_cum / npos
        if normalized_num_positives is None:
            precision = tp_cum / (tp_cum + fp_cum)
        else:  # DETAD: precision as if every class had N̄ instances
            rn = recall * normalized_num_positives
            precision = rn / (rn + fp_cum)
        ap[c] = interpolated_ap(precision, recall)
    return pd.DataFrame(ap, index=pd.Index(classes, name="label"),
                        columns=pd.Index(thresholds, name="tIoU"))
