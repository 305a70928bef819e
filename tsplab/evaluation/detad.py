"""DETAD-style analysis of a detector (Alwassel et al., "Diagnosing Error in Temporal Action
Detectors", ECCV 2018), as TSP Table 7 uses it: ground-truth instances bucketed by a characteristic,
and the average mAP of each bucket.

Characteristics of an instance: ``length`` (seconds), ``coverage`` (length / video duration) and
``num_instances`` (instances in its video, all classes). Bucket edges are right-closed intervals
``(a, b]`` (the first one includes its lower edge), as DETAD bins them with ``pandas.cut``; each
dataset's edges and tIoU thresholds are in its ``tsplab.datasets.presets.DatasetPreset`` (``detad_buckets``,
``detad_tiou_thresholds``), read here as :class:`BucketSpec` by :func:`get_bucket_spec`.

Per-bucket average mAP follows DETAD's sensitivity analysis (``src/sensitivity_analysis.py``):
predictions are matched once against all the ground truth; for a bucket, a class's predictions are
kept when at every tIoU threshold they matched an instance of that bucket or nothing; recall is over
the bucket's instances of the class; classes without instances in the bucket are left out of the
mean. DETAD reports the normalised mAP_N: precision ``R·N̄ / (R·N̄ + FP)`` with N̄ = number of
instances / number of classes (over all the ground truth), which makes buckets with few instances
comparable; ``normalized=False`` gives the plain precision instead.

Like DETAD, instances with ``t_end_s <= t_start_s`` are left out of the analysis.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsplab.errors import InputError
from tsplab.evaluation.inputs import PREDICTION_COLUMNS, check_columns, normalize_ids
from tsplab.evaluation.matching import average_precision_from_matches, iou_elementwise, match_predictions
from tsplab.datasets.presets import DatasetPreset, get_preset

CHARACTERISTICS = ("length", "coverage", "num_instances")


@dataclass(frozen=True)
class BucketSpec:
    """Buckets of one characteristic: ``len(labels) == len(edges) - 1``; bucket i is
    ``(edges[i], edges[i+1]]``."""

    characteristic: str
    edges: tuple[float, ...]
    labels: tuple[str, ...]

    def __post_init__(self):
        if self.characteristic not in CHARACTERISTICS:
            raise ValueError(f"unknown characteristic {self.characteristic!r}; valid: {CHARACTERISTICS}")
        if len(self.labels) != len(self.edges) - 1:
            raise ValueError(f"{self.characteristic} buckets: {len(self.labels)} labels for "
                             f"{len(self.edges)} edges (need one label fewer than edges)")
        if np.any(np.diff(self.edges) <= 0):
            raise ValueError(f"{self.characteristic} bucket edges must increase: {self.edges}")

    def intervals(self) -> list[str]:
        """Human-readable interval of each bucket, e.g. ``(30, 60]``."""
        def fmt(x):
            return "inf" if np.isinf(x) else f"{x:g}"
        return [f"({fmt(a)}, {fmt(b)}]" for a, b in zip(self.edges[:-1], self.edges[1:])]


def get_bucket_spec(spec: str | BucketSpec = "length", preset: str | DatasetPreset = "activitynet"
                    ) -> BucketSpec:
    """``spec`` itself, or the buckets of the characteristic named ``spec`` in the dataset preset's
    ``detad_buckets`` (``tsplab.datasets.presets``: DETAD's edges for ActivityNet and THUMOS14, the synthetic
    benchmark's own length edges)."""
    if isinstance(spec, BucketSpec):
        return spec
    p = get_preset(preset)
    if spec not in p.detad_buckets:
        raise InputError(f"no {spec!r} buckets in preset {p.name!r}; valid: {', '.join(p.detad_buckets)}")
    edges, labels = p.detad_buckets[spec]
    return BucketSpec(spec, tuple(edges), tuple(labels))


# --------------------------------------------------------------------------------------------
# Characteristics and buckets
# --------------------------------------------------------------------------------------------

def instance_characteristics(instances: pd.DataFrame, durations=None) -> pd.DataFrame:
    """``instances`` plus ``length_s``, ``coverage`` and ``num_instances`` columns.

    durations: video -> duration in seconds (dict or Series; ``v_`` prefixes ignored), needed for
    coverage (NaN without it). Coverage is clipped at 1: real annotations sometimes end after the
    video does (568 of ActivityNet validation's 7,654 in TSP's CSV), and an action cannot cover more
    than its video. (DETAD's own files carried precomputed coverage and it dropped values above 1.)
    """
    check_columns(instances, ["video", "t_start_s", "t_end_s"], "instances")
    out = instances.copy()
    video = normalize_ids(out["video"])
    out["length_s"] = out["t_end_s"].astype(float) - out["t_start_s"].astype(float)
    out["num_instances"] = video.map(video.value_counts()).astype(float)
    if durations is not None:
        durations = pd.Series(durations, dtype=float)
        durations.index = normalize_ids(pd.Series(durations.index.astype(str))).to_numpy()
        duration = video.map(durations)
        missing = duration.isna()
        if missing.any():
            videos = sorted(video[missing].unique())
            raise ValueError(f"durations: no duration for video(s) {videos[:5]}"
                             + (" ..." if len(videos) > 5 else ""))
        out["coverage"] = (out["length_s"] / duration.to_numpy()).clip(upper=1.0)
    else:
        out["coverage"] = np.nan
    return out


def _cut(table: pd.DataFrame, spec: BucketSpec) -> pd.Series:
    """Bucket labels of the rows of an ``instance_characteristics`` table."""
    values = table[{"length": "length_s"}.get(spec.characteristic, spec.characteristic)]
    if spec.characteristic == "coverage" and values.isna().all() and len(values):
        raise ValueError("coverage buckets need video durations: pass durations={video: seconds} "
                         "(e.g. Annotations.videos.set_index('video')['duration_s'])")
    return pd.cut(values, bins=list(spec.edges), labels=list(spec.labels), include_lowest=True,
                  right=True).rename(spec.characteristic)


def available_characteristics(durations) -> list[str]:
    """The DETAD characteristics a ground truth supports: ``coverage`` (length / video duration)
    needs every video's duration (``durations``: one per video, NaN where unknown)."""
    known = durations is not None and len(durations) > 0 and bool(pd.Series(durations).notna().all())
    return [c for c in CHARACTERISTICS if c != "coverage" or known]


def assign_buckets(instances: pd.DataFrame, spec: str | BucketSpec = "length", *,
                   preset: str | DatasetPreset = "activitynet", durations=None) -> pd.Series:
    """Bucket label of every instance (categorical, in bucket order; NaN outside the edges)."""
    return _cut(instance_characteristics(instances, durations), get_bucket_spec(spec, preset))


def _valid(instances: pd.DataFrame) -> np.ndarray:
    """DETAD leaves out instances of length <= 0."""
    return (instances["t_end_s"].to_numpy(float) > instances["t_start_s"].to_numpy(float))


def bucket_shares(instances: pd.DataFrame, spec: str | BucketSpec = "length", *,
                  preset: str | DatasetPreset = "activitynet", durations=None) -> pd.DataFrame:
    """Share of instances per bucket: DataFrame(characteristic, bucket, interval, count, share_pct).

    Instances of length <= 0 are left out (as DETAD does). On ActivityNet v1.3 validation
    (TSP's CSV) the length shares are 53.6 / 16.2 / 16.8 / 9.4 / 4.1 %.
    """
    spec = get_bucket_spec(spec, preset)
    buckets = assign_buckets(instances, spec, durations=durations)[_valid(instances)]
    counts = buckets.value_counts(sort=False).reindex(list(spec.labels), fill_value=0)
    total = int(counts.sum())
    return pd.DataFrame({
        "characteristic": spec.characteristic, "bucket": list(spec.labels),
        "interval": spec.intervals(), "count": counts.to_numpy(),
        "share_pct": 100.0 * counts.to_numpy() / total if total else np.nan,
    })


# --------------------------------------------------------------------------------------------
# Per-bucket average mAP (DETAD sensitivity analysis)
# --------------------------------------------------------------------------------------------

def _prepare(ground_truth, predictions, durations, exclude_videos):
    check_columns(ground_truth, ["video", "t_start_s", "t_end_s", "label"], "ground truth")
    check_columns(predictions, PREDICTION_COLUMNS, "predictions")
    gt = ground_truth.assign(video=normalize_ids(ground_truth["video"]),
                             label=ground_truth["label"].astype(str))
    pred = predictions.assign(video=normalize_ids(predictions["video"]),
                              label=predictions["label"].astype(str))
    if exclude_videos is not None and len(exclude_videos):
        excluded = set(normalize_ids(pd.Series(list(exclude_videos))))
        gt, pred = gt[~gt["video"].isin(excluded)], pred[~pred["video"].isin(excluded)]
    # Characteristics first: num_instances counts every instance of the video (as DETAD's files).
    gt = instance_characteristics(gt.reset_index(drop=True), durations)
    gt = gt[_valid(gt)].reset_index(drop=True)
    if len(gt) == 0:
        raise ValueError("ground truth: no instance of positive length to analyse")
    pred = pred[pred["label"].isin(set(gt["label"]))].reset_index(drop=True)
    return gt, pred


def bucket_average_map(ground_truth: pd.DataFrame, predictions: pd.DataFrame,
                       spec: str | BucketSpec = "length", *, preset: str | DatasetPreset = "activitynet",
                       durations=None, tiou_thresholds=None, normalized: bool = True,
                       exclude_videos=None) -> pd.DataFrame:
    """Average mAP (over DETAD's thresholds) of each bucket of ``spec``.

    ground_truth: DataFrame(video, t_start_s, t_end_s, label); predictions: DataFrame(video,
    t_start_s, t_end_s, label, score). Returns DataFrame(bucket, interval, num_instances,
    average_mAP) with a first row ``bucket="all"`` holding the average mAP(_N) over all instances
    (DETAD's dashed "base" line). Fractions in [0, 1].
    """
    p = get_preset(preset)
    spec = get_bucket_spec(spec, p)
    thresholds = tuple(tiou_thresholds if tiou_thresholds is not None else p.detad_tiou_thresholds)
    gt, pred = _prepare(ground_truth, predictions, durations, exclude_videos)
    buckets = _cut(gt, spec).to_numpy()
    classes = pd.Index(sorted(gt["label"].unique()), name="label")
    n_bar = len(gt) / len(classes) if normalized else None  # DETAD: N̄ = #instances / #classes
    matched = match_predictions(gt, pred, thresholds)
    labels, scores = pred["label"].to_numpy(), pred["score"].to_numpy(float)

    def average_map(keep: np.ndarray, in_bucket: np.ndarray) -> float:
        npos = gt.loc[in_bucket, "label"].value_counts().reindex(classes, fill_value=0)
        ap = average_precision_from_matches(labels[keep], scores[keep], matched[keep] >= 0, npos,
                                            thresholds, normalized_num_positives=n_bar)
        per_class = ap.mean(axis=1)  # DETAD: mean over thresholds per class, then over classes
        return float(np.nanmean(per_class)) if per_class.notna().any() else np.nan

    everything = np.ones(len(gt), dtype=bool)
    rows = [dict(bucket="all", interval="", num_instances=len(gt),
                 average_mAP=average_map(np.ones(len(pred), dtype=bool), everything))]
    for label, interval in zip(spec.labels, spec.intervals()):
        in_bucket = buckets == label
        # keep predictions that, at every threshold, matched this bucket's instances or nothing
        ok = (matched < 0) | in_bucket[np.clip(matched, 0, None)]
        keep = ok.all(axis=1)
        rows.append(dict(bucket=label, interval=interval, num_instances=int(in_bucket.sum()),
                         average_mAP=average_map(keep, in_bucket) if in_bucket.any() else np.nan))
    return pd.DataFrame(rows)


def bucket_table(ground_truth: pd.DataFrame, predictions: dict[str, pd.DataFrame],
                 spec: str | BucketSpec = "length", *, preset: str | DatasetPreset = "activitynet",
                 durations=None, tiou_thresholds=None, normalized: bool = True,
                 include_shares: bool = True, exclude_videos=None) -> pd.DataFrame:
    """The TSP Table 7 layout: rows = methods (first "% of instances" with ``include_shares``),
    columns = buckets then ``all``; values in percent (average mAP_N unless ``normalized=False``)."""
    spec = get_bucket_spec(spec, preset)
    rows, index = [], []
    if include_shares:
        gt = ground_truth
        if exclude_videos is not None and len(exclude_videos):
            excluded = set(normalize_ids(pd.Series(list(exclude_videos))))
            gt = gt[~normalize_ids(gt["video"]).isin(excluded)]
        shares = bucket_shares(gt, spec, durations=durations)
        rows.append(list(shares["share_pct"]) + [100.0])
        index.append("% of instances")
    for method, pred in predictions.items():
        res = bucket_average_map(ground_truth, pred, spec, preset=preset, durations=durations,
                                 tiou_thresholds=tiou_thresholds, normalized=normalized,
                                 exclude_videos=exclude_videos).set_index("bucket")["average_mAP"]
        rows.append([100.0 * res[b] for b in spec.labels] + [100.0 * res["all"]])
        index.append(method)
    return pd.DataFrame(rows, index=pd.Index(index, name=spec.characteristic),
                        columns=list(spec.labels) + ["all"])


# --------------------------------------------------------------------------------------------
# Perturbed ground truth: predictions of a pretend detector
# --------------------------------------------------------------------------------------------

def perturb_ground_truth(instances: pd.DataFrame, *, seed: int = 0, boundary_jitter: float = 0.1,
                         drop_rate: float = 0.1, label_error_rate: float = 0.05,
                         false_positives_per_video: float = 2.0, score_noise: float = 0.1,
                         short_length_s: float | None = None,
                         short_boundary_jitter: float | None = None,
                         short_drop_rate: float | None = None, durations=None) -> pd.DataFrame:
    """Predictions DataFrame(video, t_start_s, t_end_s, label, score) of a pretend detector, made
    from ground-truth ``instances`` (video, t_start_s, t_end_s, label), so the analysis runs before
    any model exists.

    Each instance is missed with probability ``drop_rate``; otherwise both boundaries move by
    Gaussian noise of std ``boundary_jitter`` x its length, its label is swapped for another class
    with probability ``label_error_rate``, and its score is its tIoU with the instance plus Gaussian
    ``score_noise`` (better-localised detections rank higher, as for a real detector). Each video
    also gets Poisson(``false_positives_per_video``) random segments with the video's labels and
    low scores. Instances no longer than ``short_length_s`` use ``short_boundary_jitter`` and
    ``short_drop_rate`` instead: two pretend methods that differ on short actions (TSP's claim)
    differ in these. Segments stay within the video: [0, the later of its duration (``durations``)
    and its last instance's end].
    """
    check_columns(instances, ["video", "t_start_s", "t_end_s", "label"], "instances")
    rng = np.random.default_rng(seed)
    gt = instances.reset_index(drop=True)
    video_end = _video_spans(gt, durations)
    length = np.maximum(gt["t_end_s"].to_numpy(float) - gt["t_start_s"].to_numpy(float), 1e-3)
    short = np.zeros(len(gt), bool) if short_length_s is None else length <= short_length_s
    jitter, p_drop = np.full(len(gt), boundary_jitter), np.full(len(gt), drop_rate)
    if short_boundary_jitter is not None:
        jitter[short] = short_boundary_jitter
    if short_drop_rate is not None:
        p_drop[short] = short_drop_rate
    # The random draws keep this order (kept, boundaries, scores, labels, false positives), so a
    # seed gives the same predictions as it always did.
    kept = rng.random(len(gt)) >= p_drop
    detections = _jittered_detections(gt, rng, jitter, video_end, label_error_rate, score_noise)[kept]
    fp_rows = _false_positives(gt, rng, video_end, false_positives_per_video, score_noise)
    predictions = pd.concat([detections] + fp_rows, ignore_index=True)
    return predictions[PREDICTION_COLUMNS]


def pretend_predictions(instances: pd.DataFrame, perturbations: dict, *,
                        preset: str | DatasetPreset = "activitynet", seed: int = 0,
                        durations=None) -> dict[str, pd.DataFrame]:
    """``{method: predictions}`` of several pretend detectors (notebook 06 before any localizer
    exists): method ``i`` of ``perturbations`` (``{method: perturb_ground_truth arguments}``) is
    :func:`perturb_ground_truth` of ``instances`` with seed ``seed + i``, so the methods differ in
    their noise as well as in their arguments. "Short" defaults to the preset's first length bucket
    (``short_length_s`` = the upper edge of XS) unless a method sets it. An argument
    ``perturb_ground_truth`` does not take raises ``InputError`` naming the valid ones."""
    import inspect

    valid = [name for name, p in inspect.signature(perturb_ground_truth).parameters.items()
             if p.kind is p.KEYWORD_ONLY and name not in ("seed", "durations")]
    xs_end_s = get_bucket_spec("length", preset).edges[1]
    predictions = {}
    for i, (method, arguments) in enumerate(perturbations.items()):
        unknown = sorted(set(arguments) - set(valid))
        if unknown:
            raise InputError(f"perturbations[{method!r}]: unknown arguments {unknown}; valid: "
                             f"{', '.join(valid)}")
        arguments = {"short_length_s": xs_end_s, **arguments}
        predictions[method] = perturb_ground_truth(instances, seed=seed + i, durations=durations,
                                                   **arguments)
    return predictions


def _video_spans(gt: pd.DataFrame, durations) -> np.ndarray:
    """Per instance [N], the end of its video's span: the video's duration (``durations``, when
    known) stretched to its last instance (real annotations can end after the video does)."""
    videos = gt["video"].astype(str).to_numpy()
    video_end = gt["t_end_s"].astype(float).groupby(videos).transform("max").to_numpy(float)
    if durations is not None:
        dur = pd.Series(durations, dtype=float)
        dur.index = normalize_ids(pd.Series(dur.index.astype(str))).to_numpy()
        known = normalize_ids(pd.Series(videos)).map(dur).to_numpy(float)
        video_end = np.fmax(video_end, known)
    return video_end


def _jittered_detections(gt: pd.DataFrame, rng: np.random.Generator, jitter: np.ndarray,
                         video_end: np.ndarray, label_error_rate: float, score_noise: float) -> pd.DataFrame:
    """One detection per instance of ``gt`` [N]: boundaries moved by Gaussian noise of std
    ``jitter`` [N] x its length within [0, ``video_end``], scored by its tIoU with the instance plus
    noise, the label swapped for another class with probability ``label_error_rate``."""
    start, end = gt["t_start_s"].to_numpy(float), gt["t_end_s"].to_numpy(float)
    labels = gt["label"].astype(str).to_numpy()
    length = np.maximum(end - start, 1e-3)
    new_start = np.clip(start + rng.normal(0.0, 1.0, len(gt)) * jitter * length, 0.0, video_end)
    new_end = np.clip(end + rng.normal(0.0, 1.0, len(gt)) * jitter * length, 0.0, video_end)
    lo, hi = np.minimum(new_start, new_end), np.maximum(new_start, new_end)
    hi = np.minimum(np.maximum(hi, lo + 0.05 * length), video_end)  # some extent, inside the video
    lo = np.minimum(lo, hi - 0.05 * length).clip(min=0.0)
    iou = iou_elementwise(lo, hi, start, end)
    score = np.clip(iou + rng.normal(0.0, score_noise, len(gt)), 0.01, 1.0)
    classes = np.array(sorted(set(labels)))
    pred_labels = labels.copy()
    if len(classes) > 1:
        swap = rng.random(len(gt)) < label_error_rate
        shift = rng.integers(1, len(classes), len(gt))
        wrong = classes[(np.searchsorted(classes, labels) + shift) % len(classes)]
        pred_labels = np.where(swap, wrong, labels)
    return pd.DataFrame({"video": gt["video"].astype(str).to_numpy(), "t_start_s": lo, "t_end_s": hi,
                         "label": pred_labels, "score": score})


def _false_positives(gt: pd.DataFrame, rng: np.random.Generator, video_end: np.ndarray,
                     per_video: float, score_noise: float) -> list[pd.DataFrame]:
    """Poisson(``per_video``) random segments in each video's span, with the video's own labels and
    low scores (one DataFrame per video that gets any)."""
    fp_rows = []
    for video, rows in gt.assign(_end=video_end).groupby("video", sort=True):
        n = rng.poisson(per_video)
        if n == 0:
            continue
        span = float(rows["_end"].iloc[0])
        a, b = rng.random(n) * span, rng.random(n) * span
        fp_rows.append(pd.DataFrame({
            "video": video, "t_start_s": np.minimum(a, b), "t_end_s": np.maximum(a, b),
            "label": rng.choice(rows["label"].astype(str).to_numpy(), n),
            "score": np.clip(rng.random(n) * 0.5 + rng.normal(0.0, score_noise, n), 0.01, 1.0)}))
    return fp_rows
