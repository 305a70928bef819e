"""SoftNMS for 1D segments in numpy (Bodla et al. 2017, Gaussian decay), per class, as ASL sec. 3.4
and ActionFormer apply it; pure numpy, so no compiled extension is needed."""
from __future__ import annotations

import numpy as np


def _tiou_one_to_many(seg: np.ndarray, segs: np.ndarray) -> np.ndarray:
    inter = np.clip(np.minimum(seg[1], segs[:, 1]) - np.maximum(seg[0], segs[:, 0]), 0, None)
    union = (seg[1] - seg[0]) + (segs[:, 1] - segs[:, 0]) - inter
    return inter / np.maximum(union, 1e-8)


def soft_nms(segments: np.ndarray, scores: np.ndarray, sigma: float = 0.5, min_score: float = 1e-3,
             max_keep: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian SoftNMS of one class: repeatedly keep the best segment and decay every remaining
    score by ``exp(-tIoU^2 / sigma)`` (SoftNMS eq. for the Gaussian penalty); segments whose score
    falls below ``min_score`` are dropped.

    ``segments`` ``[N, 2]`` (start, end), ``scores`` ``[N]`` -> (kept indices ``[M]`` in keep
    order, their decayed scores ``[M]``).
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    remaining = np.arange(len(segments))
    current = np.asarray(scores, dtype=np.float64).copy()
    kept, kept_scores = [], []
    limit = len(segments) if max_keep is None else max_keep
    while len(remaining) and len(kept) < limit:
        best = int(np.argmax(current[remaining]))
        i = remaining[best]
        if current[i] < min_score:
            break
        kept.append(i)
        kept_scores.append(current[i])
        remaining = np.delete(remaining, best)
        if len(remaining):
            iou = _tiou_one_to_many(segments[i], segments[remaining])
            current[remaining] *= np.exp(-(iou ** 2) / sigma)
            remaining = remaining[current[remaining] >= min_score]
    return np.asarray(kept, dtype=int), np.asarray(kept_scores, dtype=np.float64)


def batched_soft_nms(segments: np.ndarray, scores: np.ndarray, labels: np.ndarray, sigma: float = 0.5,
                     min_score: float = 1e-3, max_keep: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SoftNMS class by class (a segment only suppresses segments of its own class, ActionFormer's
    multi-class mode), then the ``max_keep`` best overall. Returns (segments ``[M, 2]``, scores
    ``[M]``, labels ``[M]``) sorted by decreasing score."""
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels)
    out_seg, out_score, out_label = [], [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        keep, kept_scores = soft_nms(segments[idx], np.asarray(scores)[idx], sigma, min_score)
        out_seg.append(segments[idx[keep]])
        out_score.append(kept_scores)
        out_label.append(labels[idx[keep]])
    if not out_seg:
        return np.zeros((0, 2)), np.zeros(0), labels[:0]
    seg, score, lab = np.concatenate(out_seg), np.concatenate(out_score), np.concatenate(out_label)
    order = np.argsort(-score, kind="stable")[: (len(score) if max_keep is None else max_keep)]
    return seg[order], score[order], lab[order]
