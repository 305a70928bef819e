"""Proposal average recall against the average number of proposals per video (AR@AN) and its AUC,
as the ActivityNet evaluation (``eval_proposal.py``) computes them.

At most ``max_avg_proposals`` per video on average, each video's list truncated in proportion (the
official "ratio"), recall at 100 points of the AR-vs-AN curve averaged over the dataset's proposal
tIoU thresholds (ActivityNet 0.5:0.05:0.95), AUC = area under AR vs AN divided by the largest AN.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tsplab.errors import InputError
from tsplab.evaluation.inputs import (_check_thresholds, _empty_dropped, _empty_issues, _prepare,
                                      _validation_dict)
from tsplab.evaluation.matching import iou_elementwise, official_order
from tsplab.datasets.presets import DatasetPreset, get_preset


@dataclass
class ProposalResult:
    """Average recall against the average number of proposals per video (AN); ``dropped`` and
    ``ground_truth_issues`` as in ``DetectionResult``."""

    recall: pd.DataFrame  # [tIoU x AN point]: recall at each threshold
    average_recall: pd.Series  # [AN point], index = average number of proposals per video
    auc: float  # area under AR vs AN divided by the largest AN (fraction)
    ar_at: dict[int, float]  # AR@AN for the requested ANs
    preset: str = ""
    dropped: pd.DataFrame = field(default_factory=_empty_dropped)
    ground_truth_issues: pd.DataFrame = field(default_factory=_empty_issues)

    def summary(self) -> pd.DataFrame:
        row = {f"AR@{an}": v for an, v in self.ar_at.items()}
        row["AUC"] = self.auc
        return pd.DataFrame([row])

    def to_dict(self) -> dict:
        return {"preset": self.preset, "ar_at": {str(k): float(v) for k, v in self.ar_at.items()},
                "auc": self.auc,
                "average_number_of_proposals": [float(x) for x in self.average_recall.index],
                "average_recall": [float(x) for x in self.average_recall],
                **_validation_dict(self.dropped, self.ground_truth_issues)}


def evaluate_proposals(ground_truth: pd.DataFrame, proposals: pd.DataFrame,
                       preset: str | DatasetPreset = "activitynet", *, tiou_thresholds=None,
                       max_avg_proposals: int | None = None, exclude_videos=None,
                       lenient: bool = False, sources=("ground truth", "proposals")) -> ProposalResult:
    """AR@AN and AUC of class-agnostic ``proposals`` DataFrame(video, t_start_s, t_end_s, score)
    against ``ground_truth`` DataFrame(video, t_start_s, t_end_s[, duration_s]), as
    ``eval_proposal.py``; both tables judged as in ``evaluate_detection`` (labels aside).

    Every video of the ground truth counts; each keeps its ``int(n * ratio)`` first proposals in
    ``official_order`` with ratio = max_avg_proposals x #videos / #proposals (all valid proposals,
    those of videos without ground truth included, as the official code counts them). Recall is
    taken at 100 points, AN_j = (j+1)/100 x max_avg_proposals.
    """
    p = get_preset(preset)
    thresholds = _check_thresholds(tiou_thresholds if tiou_thresholds is not None
                                   else p.proposal_tiou_thresholds)
    max_avg = float(max_avg_proposals or p.max_avg_proposals)
    gt, prop, dropped, issues = _prepare(ground_truth, proposals, exclude_videos, need_label=False,
                                         lenient=lenient, sources=sources)
    if len(prop) == 0:
        raise InputError(f"{sources[1]}: no valid proposals to evaluate")
    videos = pd.unique(gt["video"])
    kept, first_hit, g_video = _first_hits(gt, prop, videos, max_avg, thresholds)
    n_videos, total_kept = len(videos), int(kept.sum())

    # Official: pcn = arange(1,101)/100 * (max_avg * n_videos / total_kept); a video looks at its
    # first min(int(kept_v * pcn), kept_v) proposals.
    pcn = np.arange(1, 101) / 100.0 * (max_avg * float(n_videos) / total_kept)
    looked = np.minimum((kept[:, None] * pcn[None, :]).astype(np.int64), kept[:, None])
    looked_gt = looked[g_video]  # [G, 100]
    recall = np.stack([(first_hit[:, j, None] < looked_gt).sum(axis=0) / float(len(g_video))
                       for j in range(len(thresholds))])
    average_recall = recall.mean(axis=0)
    an = pcn * (float(total_kept) / n_videos)
    auc = float(np.trapezoid(average_recall, an) / an[-1])
    ar_at = {}
    for target in p.ar_at:
        idx = int(round(target / max_avg * 100)) - 1
        if 0 <= idx < 100:
            ar_at[target] = float(average_recall[idx])
    an_index = pd.Index(an, name="AN")
    return ProposalResult(
        recall=pd.DataFrame(recall, index=pd.Index(thresholds, name="tIoU"), columns=an_index),
        average_recall=pd.Series(average_recall, index=an_index, name="AR"), auc=auc, ar_at=ar_at,
        preset=p.name, dropped=dropped, ground_truth_issues=issues)


def _first_hits(gt: pd.DataFrame, prop: pd.DataFrame, videos: np.ndarray, max_avg: float,
                thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per video the number of proposals kept [V]; per instance (grouped by video) the rank of the
    first kept proposal reaching each threshold [G, K] (int64 max: none); the video of each
    instance [G]."""
    n_videos = len(videos)
    ratio = max_avg * float(n_videos) / len(prop)
    gt_video = pd.Index(videos).get_indexer(gt["video"])
    prop_video = pd.Index(videos).get_indexer(prop["video"])
    keep = prop_video >= 0
    prop_video = prop_video[keep]
    order = official_order(prop_video, prop["score"].to_numpy(float)[keep])
    p_start = prop["t_start_s"].to_numpy(float)[keep][order]
    p_end = prop["t_end_s"].to_numpy(float)[keep][order]
    per_video = np.bincount(prop_video, minlength=n_videos)
    video_first = np.r_[0, np.cumsum(per_video)[:-1]]
    # Official: nr_proposals = min(int(n * ratio), n) per video.
    kept = np.minimum((per_video * ratio).astype(np.int64), per_video)
    if int(kept.sum()) == 0:
        raise InputError("proposals: none left after truncation to max_avg_proposals per video")

    g_order = np.argsort(gt_video, kind="stable")
    g_video = gt_video[g_order]
    g_start = gt["t_start_s"].to_numpy(float)[g_order]
    g_end = gt["t_end_s"].to_numpy(float)[g_order]
    pairs = kept[g_video]
    pair_gt = np.repeat(np.arange(len(g_order)), pairs)
    pair_rank = np.arange(int(pairs.sum())) - np.repeat(np.cumsum(pairs) - pairs, pairs)
    pair_prop = video_first[g_video][pair_gt] + pair_rank
    # Official test: tiou >= threshold; a 0/0 (NaN) tIoU and a zero-length instance never reach it.
    iou = iou_elementwise(p_start[pair_prop], p_end[pair_prop], g_start[pair_gt], g_end[pair_gt])
    never = np.iinfo(np.int64).max
    first_hit = np.full((len(g_order), len(thresholds)), never, dtype=np.int64)
    for j, thr in enumerate(thresholds):
        hit = iou >= thr
        hit_gt, hit_rank = pair_gt[hit], pair_rank[hit]
        if len(hit_gt):
            firsts = np.r_[True, hit_gt[1:] != hit_gt[:-1]]  # ranks ascend within a gt
            first_hit[hit_gt[firsts], j] = hit_rank[firsts]
    return kept, first_hit, g_video
