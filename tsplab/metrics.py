"""Temporal action detection mAP and proposal AR@AN, computed as the ActivityNet evaluation does.

The algorithms follow the official code (activitynet/ActivityNet ``Evaluation/eval_detection.py``,
``eval_proposal.py``, ``utils.py``), re-implemented in vectorised numpy:

- Detection (per class, per tIoU threshold): predictions sorted by decreasing score; each one is
  matched to the *unmatched* ground truth of its video and class with the highest tIoU at or above
  the threshold, else it is a false positive. AP is the all-point interpolated area under the
  precision envelope (VOC 2011), mAP the mean over the classes of the ground truth (a class without
  predictions scores 0), average mAP the mean over thresholds.
- Proposals: at most ``max_avg_proposals`` per video on average, each video's list truncated in
  proportion (the official "ratio"), recall at 100 points of the AR-vs-AN curve averaged over tIoU
  0.5:0.05:0.95, AUC = area under AR vs AN divided by the largest AN.

Ties: the official code sorts with ``argsort()[::-1]`` (numpy's default, unstable, sort), so equal
scores come out in an unspecified order. We sort with a stable sort on the negated score: equal
scores keep their input order, so results are reproducible; equal-tIoU ground truths are tried in
their input order. The official code also asks a (long dead) server for blocked videos; here
``exclude_videos`` drops videos from both sides instead.

Tables are pandas DataFrames; values are fractions in [0, 1] (papers print them x100).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tsplab.errors import InputError
from tsplab.runs import read_json, write_json

PREDICTION_COLUMNS = ["video", "t_start_s", "t_end_s", "label", "score"]

# ActivityNet tIoU grid: np.linspace(0.5, 0.95, 10) as in the official evaluation.
ACTIVITYNET_TIOU = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
THUMOS14_TIOU = tuple(float(t) for t in np.linspace(0.3, 0.7, 5))


@dataclass(frozen=True)
class MetricPreset:
    """Evaluation settings of a benchmark.

    ``subset`` is the ground-truth subset evaluated when a file holds several and none is named
    (ActivityNet reports on validation; THUMOS14 on its test videos, ``testing`` in DETAD's JSON).
    """

    name: str
    tiou_thresholds: tuple[float, ...]
    subset: str
    proposal_tiou_thresholds: tuple[float, ...] = ACTIVITYNET_TIOU
    max_avg_proposals: int = 100
    ar_at: tuple[int, ...] = (1, 10, 100)


PRESETS = {
    "activitynet": MetricPreset("activitynet", ACTIVITYNET_TIOU, "validation"),
    "thumos14": MetricPreset("thumos14", THUMOS14_TIOU, "testing"),
    # the built-in benchmark: ActivityNet-like (few actions per video), evaluated on validation
    "synthetic": MetricPreset("synthetic", ACTIVITYNET_TIOU, "validation"),
}


def get_preset(preset: str | MetricPreset) -> MetricPreset:
    if isinstance(preset, MetricPreset):
        return preset
    if preset not in PRESETS:
        raise InputError(f"unknown metric preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[preset]


# How each dataset spells its video ids (after ``normalize_video_id``): THUMOS14's
# ``video_test_0000004``, ActivityNet's 11-character YouTube ids, the synthetic benchmark's
# ``train_0000`` / ``val_0000``.
_ID_PATTERNS = {
    "thumos14": re.compile(r"video_(validation|test)_\d{7}"),
    "activitynet": re.compile(r"[A-Za-z0-9_-]{11}"),
    "synthetic": re.compile(r"(train|val)_\d{4}"),
}


def infer_preset(videos, source="ground truth") -> str:
    """The metric preset of a dataset, told from its video ids: every id must match one dataset's
    pattern (``_ID_PATTERNS``). A wrong preset changes every average mAP without any error
    (ActivityNet averages tIoU 0.5:0.95, THUMOS14 0.3:0.7), so ids that match none, or several
    datasets at once, raise ``InputError`` asking for the preset by name."""
    ids = pd.unique(pd.Series(list(videos), dtype=object).astype(str))
    found = [name for name, pattern in _ID_PATTERNS.items()
             if len(ids) and all(pattern.fullmatch(v) for v in ids)]
    if len(found) != 1:
        example = ", ".join(map(str, ids[:3]))
        raise InputError(f"{source}: cannot tell the dataset from its video ids ({example}, ...); "
                         f"give the metric preset: {' | '.join(PRESETS)}")
    return found[0]


# --------------------------------------------------------------------------------------------
# Inputs and outputs (ActivityNet formats)
# --------------------------------------------------------------------------------------------

def normalize_ids(videos: pd.Series) -> pd.Series:
    """Video ids as ``tsplab.annotations.normalize_video_id`` spells them (ActivityNet ids with and
    without the ``v_`` prefix are the same video). Maps each distinct id once."""
    from tsplab.annotations import normalize_video_id

    codes, uniques = pd.factorize(videos)  # missing ids get code -1, i.e. "" below
    mapped = np.array([normalize_video_id(v) for v in np.asarray(uniques, dtype=object)] + [""],
                      dtype=object)
    return pd.Series(mapped[codes], index=videos.index, name=videos.name)


def read_predictions(path) -> pd.DataFrame:
    """Read an ActivityNet-format result file ``{"results": {video: [{segment, label, score}]}}``.

    Returns DataFrame(video, t_start_s, t_end_s, label, score), one row per prediction, in file
    order. Proposal files may omit ``label`` (it is then empty). Malformed entries are skipped and
    reported in one warning naming the file, the video and the entry; a file without ``results``
    raises ValueError.
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise ValueError(f"{path}: not an ActivityNet result file (no 'results' object mapping videos "
                         "to lists of {segment, label, score})")
    rows, bad = [], []
    for video, entries in data["results"].items():
        if not isinstance(entries, list):
            bad.append(f"{video}: not a list")
            continue
        for i, entry in enumerate(entries):
            try:
                start, end = (float(x) for x in entry["segment"])
                score = float(entry["score"])
                if not (np.isfinite(start) and np.isfinite(end) and np.isfinite(score)):
                    raise ValueError("non-finite number")
            except (KeyError, TypeError, ValueError) as exc:
                bad.append(f"{video}[{i}]: {type(exc).__name__} {exc}")
                continue
            rows.append((video, start, end, str(entry.get("label", "")), score))
    if bad:
        warnings.warn(f"{path}: skipped {len(bad)} malformed prediction(s): {'; '.join(bad[:5])}"
                      + (" ..." if len(bad) > 5 else ""), stacklevel=2)
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS).astype(
        {"t_start_s": float, "t_end_s": float, "score": float})


def write_predictions(predictions: pd.DataFrame, path, *, version: str = "VERSION 1.3") -> Path:
    """Write DataFrame(video, t_start_s, t_end_s, label, score) as an ActivityNet result file
    (atomically). Videos keep the ids given; rows keep their order within a video."""
    check_columns(predictions, PREDICTION_COLUMNS, "predictions")
    results: dict[str, list] = {}
    for row in predictions[PREDICTION_COLUMNS].itertuples(index=False):
        results.setdefault(str(row.video), []).append(
            {"label": str(row.label), "score": float(row.score),
             "segment": [float(row.t_start_s), float(row.t_end_s)]})
    return write_json(path, {"version": version, "results": results, "external_data": {}})


def load_ground_truth(path, subset: str | None = None, *, preset: str | MetricPreset = "activitynet"
                      ) -> pd.DataFrame:
    """Ground-truth instances DataFrame(video, t_start_s, t_end_s, label, subset) of one subset of
    any file ``tsplab.annotations.read_annotations`` reads. ``subset=None``: every instance when the
    file holds one subset (or none), else the preset's subset."""
    from tsplab.annotations import read_annotations

    instances = read_annotations(path, subset=subset).instances
    return select_subset(instances, subset, default=get_preset(preset).subset, source=path)


def select_subset(instances: pd.DataFrame, subset: str | None, *, default: str | None = None,
                  source="ground truth") -> pd.DataFrame:
    """Rows of ``instances`` in ``subset`` (see ``load_ground_truth`` for ``None``)."""
    present = (sorted(instances["subset"].dropna().astype(str).unique())
               if "subset" in instances else [])
    if subset is None:
        if len(present) <= 1:
            return instances.reset_index(drop=True)
        if default not in present:
            raise ValueError(f"{source}: holds subsets {present}; name the one to evaluate")
        subset = default
    if subset not in present:
        raise ValueError(f"{source}: no instances in subset {subset!r} (subsets present: {present})")
    return instances[instances["subset"] == subset].reset_index(drop=True)


def _as_str(values: pd.Series) -> pd.Series:
    return values if pd.api.types.is_string_dtype(values) else values.astype(str)


def check_columns(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; has {list(df.columns)}")


def _prepare(ground_truth: pd.DataFrame, predictions: pd.DataFrame, exclude_videos, need_label=True):
    """Both tables with normalised ids, excluded videos dropped, indices reset."""
    gt_cols = ["video", "t_start_s", "t_end_s"] + (["label"] if need_label else [])
    check_columns(ground_truth, gt_cols, "ground truth")
    check_columns(predictions, gt_cols + ["score"], "predictions")
    gt = ground_truth.assign(video=normalize_ids(ground_truth["video"]))
    pred = predictions.assign(video=normalize_ids(predictions["video"]))
    if exclude_videos is not None and len(exclude_videos):
        excluded = set(normalize_ids(pd.Series(list(exclude_videos))))
        gt = gt[~gt["video"].isin(excluded)]
        pred = pred[~pred["video"].isin(excluded)]
    return gt.reset_index(drop=True), pred.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# tIoU and matching
# --------------------------------------------------------------------------------------------

def segment_iou(segments_a: np.ndarray, segments_b: np.ndarray) -> np.ndarray:
    """Temporal IoU [N, M] between segments_a [N, 2] and segments_b [M, 2] (seconds).

    As the official ``segment_iou``: intersection clipped at 0, union = sum of lengths minus the
    intersection, so two zero-length segments give 0/0 = NaN (see ``match_predictions``).
    """
    a = np.asarray(segments_a, dtype=float).reshape(-1, 2)
    b = np.asarray(segments_b, dtype=float).reshape(-1, 2)
    return iou_elementwise(a[:, None, 0], a[:, None, 1], b[None, :, 0], b[None, :, 1])


def iou_elementwise(s1, e1, s2, e2):
    """tIoU of segments (s1, e1) and (s2, e2) given as broadcastable arrays of seconds (NaN for
    0/0, as the official code)."""
    inter = np.clip(np.minimum(e1, e2) - np.maximum(s1, s2), 0, None)
    union = (e2 - s2) + (e1 - s1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def _codes(*columns: pd.Series) -> list[np.ndarray]:
    """Shared integer codes for several columns of the same kind of key."""
    values = np.concatenate([c.to_numpy(dtype=object) for c in columns])
    codes, _ = pd.factorize(values)
    return np.split(codes, np.cumsum([len(c) for c in columns])[:-1])


def match_predictions(ground_truth: pd.DataFrame, predictions: pd.DataFrame,
                      tiou_thresholds) -> np.ndarray:
    """Greedy detection matching of the ActivityNet evaluation.

    ground_truth: DataFrame(video, t_start_s, t_end_s, label); predictions: the same plus score
    (ids already normalised). Returns matched [N_pred, K] int64: for each prediction (input row
    order) and threshold, the row position in ``ground_truth`` of the instance it is a true positive
    for, or -1 (false positive).

    Vectorised over videos: ground truth of another video or class is never in competition, so the
    greedy pass runs, for all (class, video) groups at once, over the rank of a prediction within
    its group (score order); only the number of predictions of the busiest group is looped over.

    A 0/0 tIoU (a zero-length prediction against a zero-length instance; ActivityNet validation
    has three such instances, and its sample submission predicts them) is a match at every
    threshold and preferred to any other: the official code rejects a candidate only when
    ``tiou < threshold``, which NaN never is, and its descending argsort puts NaN first.
    """
    thresholds = np.asarray(tiou_thresholds, dtype=float).reshape(-1)
    n_pred, k = len(predictions), len(thresholds)
    matched = np.full((n_pred, k), -1, dtype=np.int64)
    if n_pred == 0 or len(ground_truth) == 0:
        return matched
    gt_video, pr_video = _codes(ground_truth["video"], predictions["video"])
    gt_label, pr_label = _codes(ground_truth["label"], predictions["label"])
    n_videos = int(max(gt_video.max(), pr_video.max())) + 1
    gt_key = gt_label.astype(np.int64) * n_videos + gt_video
    pr_key = pr_label.astype(np.int64) * n_videos + pr_video

    # Ground truth grouped by (class, video), padded to [groups, Gmax].
    gt_order = np.argsort(gt_key, kind="stable")
    group_keys, group_start, group_size = np.unique(gt_key[gt_order], return_index=True,
                                                    return_counts=True)
    g_max = int(group_size.max())
    slot = np.arange(len(gt_order)) - np.repeat(group_start, group_size)
    group_of_gt = np.repeat(np.arange(len(group_keys)), group_size)
    pad_index = np.full((len(group_keys), g_max), -1, dtype=np.int64)
    pad_index[group_of_gt, slot] = gt_order
    pad_start = np.full(pad_index.shape, np.nan)
    pad_end = np.full(pad_index.shape, np.nan)
    pad_start[group_of_gt, slot] = ground_truth["t_start_s"].to_numpy(float)[gt_order]
    pad_end[group_of_gt, slot] = ground_truth["t_end_s"].to_numpy(float)[gt_order]

    # Predictions that have ground truth of their class in their video, by (group, -score).
    pos = np.searchsorted(group_keys, pr_key).clip(max=len(group_keys) - 1)
    has_gt = group_keys[pos] == pr_key
    candidates = np.flatnonzero(has_gt)
    if len(candidates) == 0:
        return matched
    group = pos[candidates]
    score = predictions["score"].to_numpy(float)[candidates]
    order = np.lexsort((-score, group))  # lexsort is stable: equal scores keep input order
    candidates, group = candidates[order], group[order]
    first = np.r_[True, group[1:] != group[:-1]]
    starts = np.flatnonzero(first)
    rank = np.arange(len(group)) - np.repeat(starts, np.diff(np.r_[starts, len(group)]))

    pr_start = predictions["t_start_s"].to_numpy(float)[candidates]
    pr_end = predictions["t_end_s"].to_numpy(float)[candidates]
    locked = np.zeros((len(group_keys), k, g_max), dtype=bool)
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(rank))]
    for r in range(len(bounds) - 1):
        sel = by_rank[bounds[r]:bounds[r + 1]]  # at most one prediction per group
        g = group[sel]
        iou = iou_elementwise(pr_start[sel, None], pr_end[sel, None], pad_start[g], pad_end[g])
        iou = np.where(np.isnan(iou) & (pad_index[g] >= 0), np.inf, iou)  # [n, Gmax]; see above
        free = (iou[:, None, :] >= thresholds[None, :, None]) & ~locked[g]  # [n, K, Gmax]
        best = np.where(free, iou[:, None, :], -1.0).argmax(axis=2)  # [n, K]
        rows, ks = np.nonzero(np.take_along_axis(free, best[..., None], axis=2)[..., 0])
        locked[g[rows], ks, best[rows, ks]] = True
        matched[candidates[sel[rows]], ks] = pad_index[g[rows], best[rows, ks]]
    return matched


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

    labels [N], scores [N], is_tp [N, K] (bool, K = len(tiou_thresholds)); num_positives:
    ground-truth count per class (its index is the class list evaluated, of the labels' type).
    Predictions of a class are ranked by decreasing score (stable). With
    ``normalized_num_positives`` = N̄, precision is DETAD's normalised precision
    ``R·N̄ / (R·N̄ + FP)`` (mAP_N) instead of ``TP / (TP + FP)``. Returns DataFrame [class x K];
    a class without predictions has AP 0, one without positives NaN.
    """
    classes = num_positives.index
    # integer class codes: sorting strings is ~10x slower; labels outside the classes are ignored
    codes = pd.Categorical(np.asarray(labels, dtype=object), categories=classes).codes
    scores = np.asarray(scores, dtype=float)
    thresholds = [float(t) for t in np.asarray(tiou_thresholds, dtype=float).reshape(-1)]
    is_tp = np.asarray(is_tp, dtype=bool).reshape(len(codes), len(thresholds))
    ap = np.zeros((len(classes), len(thresholds)))
    order = np.lexsort((-scores, codes))  # by class, then decreasing score; stable
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


# --------------------------------------------------------------------------------------------
# Detection mAP
# --------------------------------------------------------------------------------------------

@dataclass
class DetectionResult:
    """AP per class and threshold (fractions); ``summary()`` is the one-row mAP table."""

    ap: pd.DataFrame  # [class x tIoU]
    num_ground_truth: int
    num_predictions: int
    tiou_thresholds: tuple[float, ...] = field(default=())

    @property
    def mAP(self) -> pd.Series:
        """mAP per tIoU threshold: mean AP over the ground truth's classes."""
        return self.ap.mean(axis=0).rename("mAP")

    @property
    def average_mAP(self) -> float:
        return float(self.mAP.mean())

    def summary(self) -> pd.DataFrame:
        """One row: ``mAP@t`` per threshold and ``average``."""
        row = {f"mAP@{t:.2f}": v for t, v in self.mAP.items()}
        row["average"] = self.average_mAP
        return pd.DataFrame([row])

    def to_dict(self) -> dict:
        return {"tiou_thresholds": list(self.tiou_thresholds),
                "mAP": [float(v) for v in self.mAP], "average_mAP": self.average_mAP,
                "num_ground_truth": self.num_ground_truth, "num_predictions": self.num_predictions,
                "ap_per_class": {str(c): [float(v) for v in row]
                                 for c, row in zip(self.ap.index, self.ap.to_numpy())}}


def evaluate_detection(ground_truth: pd.DataFrame, predictions: pd.DataFrame,
                       preset: str | MetricPreset = "activitynet", *, tiou_thresholds=None,
                       exclude_videos=None) -> DetectionResult:
    """Detection AP/mAP of ``predictions`` DataFrame(video, t_start_s, t_end_s, label, score)
    against ``ground_truth`` DataFrame(video, t_start_s, t_end_s, label) (one subset already
    selected). Classes are those of the ground truth; predictions of other labels cannot change any
    AP and are dropped (the official code would crash on them) with a warning; predictions on videos
    without ground truth are false positives."""
    thresholds = tuple(float(t) for t in (tiou_thresholds if tiou_thresholds is not None
                                          else get_preset(preset).tiou_thresholds))
    gt, pred = _prepare(ground_truth, predictions, exclude_videos)
    gt, pred = gt.assign(label=_as_str(gt["label"])), pred.assign(label=_as_str(pred["label"]))
    if len(gt) == 0:
        raise ValueError("ground truth: no instances to evaluate against")
    num_positives = gt["label"].value_counts().sort_index()
    unknown = ~pred["label"].isin(num_positives.index)
    if unknown.any():
        names = sorted(pred.loc[unknown, "label"].unique())
        warnings.warn(f"predictions: dropped {int(unknown.sum())} prediction(s) with labels absent from "
                      f"the ground truth: {names[:5]}{' ...' if len(names) > 5 else ''}", stacklevel=2)
        pred = pred[~unknown].reset_index(drop=True)
    matched = match_predictions(gt, pred, thresholds)
    ap = average_precision_from_matches(pred["label"].to_numpy(), pred["score"].to_numpy(),
                                        matched >= 0, num_positives, thresholds)
    return DetectionResult(ap=ap, num_ground_truth=len(gt), num_predictions=len(pred),
                           tiou_thresholds=thresholds)


def detection_table(results: dict[str, DetectionResult]) -> pd.DataFrame:
    """Rows: methods; columns: mAP per threshold and the average (fractions)."""
    table = pd.concat([r.summary() for r in results.values()], ignore_index=True)
    table.index = pd.Index(list(results), name="method")
    return table


# --------------------------------------------------------------------------------------------
# Proposals: AR@AN and AUC
# --------------------------------------------------------------------------------------------

@dataclass
class ProposalResult:
    """Average recall against the average number of proposals per video (AN)."""

    recall: pd.DataFrame  # [tIoU x AN point]: recall at each threshold
    average_recall: pd.Series  # [AN point], index = average number of proposals per video
    auc: float  # area under AR vs AN divided by the largest AN (fraction)
    ar_at: dict[int, float]  # AR@AN for the requested ANs

    def summary(self) -> pd.DataFrame:
        row = {f"AR@{an}": v for an, v in self.ar_at.items()}
        row["AUC"] = self.auc
        return pd.DataFrame([row])

    def to_dict(self) -> dict:
        return {"ar_at": {str(k): float(v) for k, v in self.ar_at.items()}, "auc": self.auc,
                "average_number_of_proposals": [float(x) for x in self.average_recall.index],
                "average_recall": [float(x) for x in self.average_recall]}


def evaluate_proposals(ground_truth: pd.DataFrame, proposals: pd.DataFrame,
                       preset: str | MetricPreset = "activitynet", *, tiou_thresholds=None,
                       max_avg_proposals: int | None = None, exclude_videos=None) -> ProposalResult:
    """AR@AN and AUC of class-agnostic ``proposals`` DataFrame(video, t_start_s, t_end_s, score)
    against ``ground_truth`` DataFrame(video, t_start_s, t_end_s), as ``eval_proposal.py``.

    Every video of the ground truth counts; each keeps its ``int(n * ratio)`` best-scored proposals
    with ratio = max_avg_proposals x #videos / #proposals (all proposals, those of videos without
    ground truth included, as the official code counts them). Recall is taken at 100 points,
    AN_j = (j+1)/100 x max_avg_proposals.
    """
    p = get_preset(preset)
    thresholds = np.asarray(tiou_thresholds if tiou_thresholds is not None
                            else p.proposal_tiou_thresholds, dtype=float)
    max_avg = float(max_avg_proposals or p.max_avg_proposals)
    gt, prop = _prepare(ground_truth, proposals, exclude_videos, need_label=False)
    if len(gt) == 0:
        raise ValueError("ground truth: no instances to evaluate against")
    if len(prop) == 0:
        raise ValueError("proposals: none to evaluate")
    videos = pd.unique(gt["video"])
    n_videos = len(videos)
    ratio = max_avg * float(n_videos) / len(prop)

    gt_video = pd.Index(videos).get_indexer(gt["video"])
    prop_video = pd.Index(videos).get_indexer(prop["video"])
    keep = prop_video >= 0
    prop_video = prop_video[keep]
    p_start = prop["t_start_s"].to_numpy(float)[keep]
    p_end = prop["t_end_s"].to_numpy(float)[keep]
    order = np.lexsort((-prop["score"].to_numpy(float)[keep], prop_video))
    prop_video, p_start, p_end = prop_video[order], p_start[order], p_end[order]
    per_video = np.bincount(prop_video, minlength=n_videos)
    video_first = np.r_[0, np.cumsum(per_video)[:-1]]
    # Official: nr_proposals = min(int(n * ratio), n) per video.
    kept = np.minimum((per_video * ratio).astype(np.int64), per_video)
    total_kept = int(kept.sum())
    if total_kept == 0:
        raise ValueError("proposals: none left after truncation to max_avg_proposals")

    # Rank of the first proposal (within its video's kept list) reaching each threshold, per gt.
    g_order = np.argsort(gt_video, kind="stable")
    g_video = gt_video[g_order]
    g_start = gt["t_start_s"].to_numpy(float)[g_order]
    g_end = gt["t_end_s"].to_numpy(float)[g_order]
    pairs = kept[g_video]
    pair_gt = np.repeat(np.arange(len(g_order)), pairs)
    pair_rank = np.arange(int(pairs.sum())) - np.repeat(np.cumsum(pairs) - pairs, pairs)
    pair_prop = video_first[g_video][pair_gt] + pair_rank
    # Here the official test is ``tiou >= threshold``: a 0/0 (NaN) tIoU is never a hit.
    iou = iou_elementwise(p_start[pair_prop], p_end[pair_prop], g_start[pair_gt], g_end[pair_gt])
    never = np.iinfo(np.int64).max
    first_hit = np.full((len(g_order), len(thresholds)), never, dtype=np.int64)
    for j, thr in enumerate(thresholds):
        hit_gt, hit_rank = pair_gt[iou >= thr], pair_rank[iou >= thr]
        if len(hit_gt):
            firsts = np.r_[True, hit_gt[1:] != hit_gt[:-1]]  # ranks ascend within a gt
            first_hit[hit_gt[firsts], j] = hit_rank[firsts]

    # Official: pcn = arange(1,101)/100 * (max_avg * n_videos / total_kept); a video looks at its
    # first min(int(kept_v * pcn), kept_v) proposals.
    pcn = np.arange(1, 101) / 100.0 * (max_avg * float(n_videos) / total_kept)
    looked = np.minimum((kept[:, None] * pcn[None, :]).astype(np.int64), kept[:, None])
    looked_gt = looked[g_video]  # [G, 100]
    recall = np.stack([(first_hit[:, j, None] < looked_gt).sum(axis=0) / float(len(g_order))
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
        average_recall=pd.Series(average_recall, index=an_index, name="AR"), auc=auc, ar_at=ar_at)


def evaluate_files(ground_truth_path, predictions_path, preset: str | MetricPreset = "activitynet",
                   *, subset: str | None = None, proposals: bool = False, exclude_videos=None):
    """Evaluate a result file against a ground-truth file (any format ``read_annotations`` reads);
    a DetectionResult, or a ProposalResult with ``proposals=True``."""
    gt = load_ground_truth(ground_truth_path, subset, preset=preset)
    pred = read_predictions(predictions_path)
    if proposals:
        return evaluate_proposals(gt, pred, preset, exclude_videos=exclude_videos)
    return evaluate_detection(gt, pred, preset, exclude_videos=exclude_videos)
