"""Temporal action detection mAP and proposal AR@AN, computed as the ActivityNet evaluation does.

The algorithms follow the official code (activitynet/ActivityNet ``Evaluation/eval_detection.py``,
``eval_proposal.py``, ``utils.py``), re-implemented in vectorised numpy:

- Detection (per class, per tIoU threshold): predictions in score order (see "Ties"); each one is
  matched to the *unmatched* ground truth of its video and class with the highest tIoU at or above
  the threshold, else it is a false positive. AP is the all-point interpolated area under the
  precision envelope (VOC 2011), mAP the mean over the classes of the ground truth (a class without
  predictions scores 0), average mAP the mean over thresholds.
- Proposals: at most ``max_avg_proposals`` per video on average, each video's list truncated in
  proportion (the official "ratio"), recall at 100 points of the AR-vs-AN curve averaged over tIoU
  0.5:0.05:0.95, AUC = area under AR vs AN divided by the largest AN.

Ties, exactly as the official code: each class's predictions (detection) and each video's
proposals (proposals), taken in file order, are ordered by ``np.argsort(scores)[::-1]``: numpy's
default sort, which is *not* stable, reversed (``official_order``). The candidates of a prediction
are tried in the order ``np.argsort(tiou)[::-1]`` of its tIoU with the ground truth of its class and
video (file order), so which of two equally overlapping instances it takes is the official one too.
Both orders depend on the arrays sorted (and on numpy's sort kernel for the CPU), so we sort exactly
the arrays the official code sorts: the numbers are the official ones, ties included, for the
numpy in use. The official code also asks a (long dead) server for blocked videos; here
``exclude_videos`` drops videos from both sides instead.

Validation (nothing is scored silently, see ``check_ground_truth`` and ``check_predictions``):

- Ground truth: a missing or non-numeric time, a negative time, a reversed segment (start > end) or
  a missing label (detection) is an error (``InputError`` naming the file and rows); with
  ``lenient=True`` (``--lenient``) such instances are dropped and listed. Zero-length instances are
  kept, with a warning, as positives that nothing can match: the official code counts them (the
  ActivityNet v1.3 validation file has three) and a zero-length segment overlaps nothing. Instances
  ending after their video's duration (when durations are known) are kept with a warning: the
  released files have them (568 of ActivityNet validation's 7,654; 26 THUMOS14 test instances
  start after the duration TSP's metadata gives) and the official evaluation knows no durations.
  One video under two spellings (``x`` and ``v_x``) is the reader's to refuse or merge
  (``tsplab.datasets.read_annotations``).
- Predictions: malformed entries, non-finite or negative times, reversed or zero-length segments,
  non-finite scores, labels absent from the ground truth (detection) and a video listed under two
  keys (``x`` and ``v_x``: the later key's entries) are dropped, named in a warning and listed in
  the result's ``dropped`` table (and its ``to_dict()``). A zero-length or reversed segment is
  never a match (the official code lets a 0/0 = NaN tIoU match, since NaN is never ``< t``).
  Predictions on videos without ground truth stay false positives (official convention).

The settings of a benchmark (tIoU thresholds, the subset evaluated, proposals kept, AR@AN points)
are its ``tsplab.datasets.presets.DatasetPreset``; ``preset=None`` tells it from the ground truth's video ids
(``tsplab.datasets.presets.infer_preset``).

Tables are pandas DataFrames; values are fractions in [0, 1] (papers print them x100).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tsplab.errors import InputError
from tsplab.datasets.presets import DatasetPreset, get_preset, infer_preset
from tsplab.runs import read_json, write_json

PREDICTION_COLUMNS = ["video", "t_start_s", "t_end_s", "label", "score"]
DROPPED_COLUMNS = ["video", "index", "reason"]
GT_ISSUE_COLUMNS = ["video", "index", "t_start_s", "t_end_s", "label", "problem", "action"]
_SHOWN = 5  # rows named in a one-line message

# --------------------------------------------------------------------------------------------
# Inputs and outputs (ActivityNet formats)
# --------------------------------------------------------------------------------------------

def normalize_ids(videos: pd.Series) -> pd.Series:
    """Video ids as ``tsplab.datasets.normalize_video_id`` spells them (ActivityNet ids with and
    without the ``v_`` prefix are the same video). Maps each distinct id once."""
    from tsplab.datasets import normalize_video_id

    codes, uniques = pd.factorize(videos)  # missing ids get code -1, i.e. "" below
    mapped = np.array([normalize_video_id(v) for v in np.asarray(uniques, dtype=object)] + [""],
                      dtype=object)
    return pd.Series(mapped[codes], index=videos.index, name=videos.name)


def read_predictions(path) -> pd.DataFrame:
    """Read an ActivityNet-format result file ``{"results": {video: [{segment, label, score}]}}``.

    Returns DataFrame(video, t_start_s, t_end_s, label, score), one row per prediction, in file
    order, ids as written. Proposal files may omit ``label`` (it is then empty). Entries that cannot
    be read (see ``read_results``) are skipped and named in one warning; a file without ``results``
    raises InputError.
    """
    predictions, dropped = read_results(path)
    _warn_dropped(dropped, f"{path}: skipped", "malformed prediction(s)")
    return predictions[PREDICTION_COLUMNS]


def read_results(path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An ActivityNet result file as (predictions, dropped), both in file order.

    predictions: DataFrame(video, t_start_s, t_end_s, label, score, entry), ``entry`` = the position
    of the prediction in its video's list. dropped: DataFrame(video, index, reason) of what could not
    be read: a video whose value is not a list (index -1), an entry that is not an object with
    ``segment`` = two JSON numbers and a numeric ``score``, and every entry of a video listed under a
    second key (``x`` after ``v_x``, or the reverse: the first key's entries are kept), and every
    entry of a key written a second time (the first list is kept). Values are
    only read here; ``check_predictions`` judges them (NaN, reversed, ...).
    """
    from tsplab.datasets import normalize_video_id

    path = Path(path)
    data = read_json(path, object_pairs_hook=_KeepFirst)
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise InputError(f"{path}: not an ActivityNet result file; expected a \"results\" object mapping "
                         "each video id to a list of {\"segment\": [start, end], \"label\", \"score\"}")
    rows, dropped, first_key = [], [], {}
    for video, entries in results.repeated:
        reason = "video listed again under the same key (its first list is kept)"
        dropped += [(video, i, reason) for i in range(len(entries) if isinstance(entries, list) else 1)]
    for video, entries in results.items():
        other = first_key.setdefault(normalize_video_id(video), video)
        if other != video:
            reason = f"video also listed as {other!r} (ids with and without 'v_' are one video)"
            dropped += [(video, i, reason) for i in range(len(entries) if isinstance(entries, list) else 1)]
        elif not isinstance(entries, list):
            dropped.append((video, -1, f"not a list of predictions ({type(entries).__name__})"))
        else:
            for i, entry in enumerate(entries):
                values = _parse_entry(entry)
                if isinstance(values, str):
                    dropped.append((video, i, values))
                else:
                    rows.append((video, *values, i))
    predictions = pd.DataFrame(rows, columns=[*PREDICTION_COLUMNS, "entry"]).astype(
        {"t_start_s": float, "t_end_s": float, "score": float, "entry": np.int64})
    return predictions, pd.DataFrame(dropped, columns=DROPPED_COLUMNS)


class _KeepFirst(dict):
    """A JSON object that keeps the first value of a key written twice and lists the later ones in
    ``repeated`` (``json`` would keep the last silently)."""

    def __init__(self, pairs):
        super().__init__()
        self.repeated = []
        for key, value in pairs:
            if key in self:
                self.repeated.append((key, value))
            else:
                self[key] = value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_entry(entry):
    """(t_start_s, t_end_s, label, score) of one result entry, or why it cannot be read."""
    if not isinstance(entry, dict):
        return f"not an object {{segment, label, score}} ({type(entry).__name__})"
    segment = entry.get("segment")
    if not isinstance(segment, (list, tuple)) or len(segment) != 2 or not all(map(_is_number, segment)):
        return f"'segment' is {segment!r}, not [start, end] in seconds"
    score = entry.get("score")
    if not _is_number(score):
        return f"'score' is {score!r}, not a number"
    label = entry.get("label")
    return float(segment[0]), float(segment[1]), "" if label is None else str(label), float(score)


def write_predictions(predictions: pd.DataFrame, path, *, version: str = "VERSION 1.3",
                      external_data: dict | None = None, extra: dict | None = None) -> Path:
    """Write DataFrame(video, t_start_s, t_end_s, label, score) as an ActivityNet result file
    (atomically). Videos keep the ids given; rows keep their order within a video.
    ``external_data``: the challenge's field (e.g. fused external class scores); ``extra``: more
    top-level keys (e.g. a fusion report)."""
    check_columns(predictions, PREDICTION_COLUMNS, "predictions")
    results: dict[str, list] = {}
    for row in predictions[PREDICTION_COLUMNS].itertuples(index=False):
        results.setdefault(str(row.video), []).append(
            {"label": str(row.label), "score": float(row.score),
             "segment": [float(row.t_start_s), float(row.t_end_s)]})
    return write_json(path, {"version": version, "results": results, "external_data": external_data or {},
                             **(extra or {})})


def load_ground_truth(path, subset: str | None = None, *, preset: str | DatasetPreset | None = None
                      ) -> pd.DataFrame:
    """Ground-truth instances DataFrame(video, t_start_s, t_end_s, label, subset, duration_s) of one
    subset of any file ``tsplab.datasets.read_annotations`` reads (``duration_s``: the video's,
    NaN when the file has none). ``subset=None``: every instance when the file holds one subset (or
    none), else the preset's subset; ``preset=None`` tells it from the video ids (``infer_preset``)
    when it is needed. Instances are not judged here: see ``check_ground_truth``."""
    return _load_ground_truth(path, subset, preset, infer=False)[0]


def _load_ground_truth(path, subset, preset, *, infer: bool) -> tuple[pd.DataFrame, DatasetPreset | None]:
    """(instances, preset); the preset is inferred when None and ``infer`` or needed."""
    from tsplab.datasets import read_annotations

    ann = read_annotations(path, subset=subset)
    instances = ann.instances.assign(
        duration_s=ann.instances["video"].map(ann.videos.set_index("video")["duration_s"]).astype(float))
    several = instances["subset"].dropna().nunique() > 1 if "subset" in instances else False
    if preset is None and (infer or (subset is None and several)):
        preset = infer_preset(instances["video"], source=str(path))
    preset = None if preset is None else get_preset(preset)
    default = None if preset is None else preset.eval_subset
    return select_subset(instances, subset, default=default, source=path), preset


def select_subset(instances: pd.DataFrame, subset: str | None, *, default: str | None = None,
                  source="ground truth") -> pd.DataFrame:
    """Rows of ``instances`` in ``subset`` (see ``load_ground_truth`` for ``None``)."""
    present = (sorted(instances["subset"].dropna().astype(str).unique())
               if "subset" in instances else [])
    if subset is None:
        if len(present) <= 1:
            return instances.reset_index(drop=True)
        if default not in present:
            raise InputError(f"{source}: holds subsets {present}; name the one to evaluate (--subset)")
        subset = default
    if subset not in present:
        raise InputError(f"{source}: no instances in subset {subset!r}; subsets present: {present}")
    return instances[instances["subset"] == subset].reset_index(drop=True)


def _as_str(values: pd.Series) -> pd.Series:
    return values if pd.api.types.is_string_dtype(values) else values.astype(str)


def check_columns(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{what}: missing column(s) {missing}; has {list(df.columns)}")


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def _times(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Start and end seconds as floats (NaN where missing or not a number)."""
    return tuple(pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
                 for c in ("t_start_s", "t_end_s"))


def _first_reason(checks: list[tuple[np.ndarray, str]], n: int) -> np.ndarray:
    """Per row, the text of the first check (mask, text) it fails, else ""."""
    reason = np.full(n, "", dtype=object)
    for mask, text in reversed(checks):
        reason[mask] = text
    return reason


def _describe(row, what: str) -> str:
    """``video 'x' entry 3 [90, 80] 'Jump'`` (with ``line N`` first when the table has lines)."""
    line = f"line {int(row['line'])}: " if "line" in row and pd.notna(row["line"]) else ""
    times = ", ".join(f"{float(t):g}" if pd.notna(t) else "nan"
                      for t in pd.to_numeric(pd.Series([row["t_start_s"], row["t_end_s"]]), errors="coerce"))
    has_label = "label" in row and pd.notna(row["label"]) and row["label"] != ""
    label = f" {str(row['label'])!r}" if has_label else ""
    return f"{line}video {row['video']!r} {what} {row['index']} [{times}]{label}"


def _listing(table: pd.DataFrame, what: str, reason_column: str | None = None) -> str:
    """The first ``_SHOWN`` rows described (with their reason), then how many more."""
    shown = "; ".join(_describe(row, what) + (f": {row[reason_column]}" if reason_column else "")
                      for _, row in table.head(_SHOWN).iterrows())
    return shown + (f"; ... ({len(table) - _SHOWN} more)" if len(table) > _SHOWN else "")


_ZERO_LENGTH = "zero length"
_PAST_DURATION = "an end after the video's duration"
_KEPT_BECAUSE = {
    _ZERO_LENGTH: "as positives that nothing can match (the official evaluation counts them)",
    _PAST_DURATION: "as the official evaluation does (it knows no durations)",
}


def check_ground_truth(ground_truth: pd.DataFrame, *, need_label: bool = True, lenient: bool = False,
                       source="ground truth") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Judge ground-truth instances DataFrame(video, t_start_s, t_end_s[, label][, duration_s]).

    Errors: missing/non-numeric or negative times, start > end, a missing label (``need_label``).
    They raise ``InputError`` (one line naming ``source`` and the first rows, with the count), or
    with ``lenient`` are dropped. Kept with a warning: zero-length instances (unmatchable
    positives, as the official code counts them) and instances ending after ``duration_s``.
    Returns (kept instances with float times, issues DataFrame(GT_ISSUE_COLUMNS)); ``index`` is the
    instance's position among its video's instances (file order), ``action`` dropped | kept.
    """
    gt = ground_truth.reset_index(drop=True)
    start, end = _times(gt)
    n = len(gt)
    label = gt["label"] if "label" in gt else pd.Series([""] * n)
    no_label = (label.isna() | (label.astype(str).str.strip() == "")).to_numpy() if need_label \
        else np.zeros(n, dtype=bool)
    duration = (pd.to_numeric(gt["duration_s"], errors="coerce").to_numpy(float) if "duration_s" in gt
                else np.full(n, np.nan))
    with np.errstate(invalid="ignore"):
        errors = _first_reason([
            (np.isnan(start), "t_start is missing or not a number; give the start in seconds"),
            (np.isnan(end), "t_end is missing or not a number; give the end in seconds"),
            ((start < 0) | (end < 0), "negative time; times are seconds from the video's start (>= 0)"),
            (start > end, "reversed (t_start > t_end); give start <= end"),
            (no_label, "label is missing; give the class name"),
        ], n)
        kept_notes = _first_reason([(start == end, _ZERO_LENGTH), (end > duration, _PAST_DURATION)], n)
    is_error = errors != ""
    issues = gt.assign(index=gt.groupby("video", sort=False).cumcount().to_numpy(),
                       t_start_s=start, t_end_s=end, label=label.to_numpy(),
                       problem=np.where(is_error, errors, kept_notes),
                       action=np.where(is_error, "dropped", "kept"))
    issues = issues[issues["problem"] != ""]
    if is_error.any() and not lenient:
        bad = issues[issues["action"] == "dropped"]
        raise InputError(f"{source}: {len(bad)} invalid ground-truth instance(s): "
                         f"{_listing(bad, 'instance', 'problem')}; fix them, or pass --lenient "
                         "(lenient=True) to drop and list them")
    bad = issues[issues["action"] == "dropped"]
    if len(bad):
        warnings.warn(f"{source}: dropped {len(bad)} invalid ground-truth instance(s) (lenient): "
                      f"{_listing(bad, 'instance', 'problem')}", stacklevel=4)
    for note, part in issues[issues["action"] == "kept"].groupby("problem", sort=False):
        warnings.warn(f"{source}: kept {len(part)} ground-truth instance(s) with {note}, "
                      f"{_KEPT_BECAUSE[note]}: {_listing(part, 'instance')}", stacklevel=4)
    kept = gt[~is_error].assign(t_start_s=start[~is_error], t_end_s=end[~is_error])
    columns = [c for c in GT_ISSUE_COLUMNS if c in issues] + (["line"] if "line" in issues else [])
    return kept.reset_index(drop=True), issues[columns].reset_index(drop=True)


def check_predictions(predictions: pd.DataFrame, classes=None, *, source="predictions"
                      ) -> tuple[np.ndarray, pd.DataFrame]:
    """Which predictions DataFrame(video, t_start_s, t_end_s[, label], score) can be scored.

    Dropped (first reason that applies): a time that is missing, not a number or infinite; a score
    likewise; a negative time; a reversed segment; a zero-length segment; a label not in
    ``classes`` (when given: detection). Returns (keep [N] bool, dropped DataFrame(video, index,
    reason)); ``index`` is the ``entry`` column when there is one (position in the video's list in
    the file), else the row's index. Warns once, naming ``source``, the count and the first rows.
    """
    start, end = _times(predictions)
    score = pd.to_numeric(predictions["score"], errors="coerce").to_numpy(float)
    checks = [(~(np.isfinite(start) & np.isfinite(end)), "start or end not a finite number"),
              (~np.isfinite(score), "score not a finite number"),
              ((start < 0) | (end < 0), "negative time"),
              (start > end, "reversed (t_start > t_end)"),
              (start == end, "zero length (t_start == t_end)")]
    if classes is not None:
        checks.append((~_as_str(predictions["label"]).isin(classes).to_numpy(),
                       "label not in the ground truth"))
    with np.errstate(invalid="ignore"):
        reason = _first_reason(checks, len(predictions))
    bad = reason != ""
    index = predictions["entry"].to_numpy() if "entry" in predictions else predictions.index.to_numpy()
    dropped = pd.DataFrame({"video": predictions["video"].to_numpy()[bad], "index": index[bad],
                            "reason": reason[bad]}, columns=DROPPED_COLUMNS)
    if bad.any():
        shown = predictions[bad].assign(index=index[bad], reason=reason[bad])
        warnings.warn(f"{source}: dropped {int(bad.sum())} of {len(predictions)} prediction(s) "
                      f"({_count_text(dropped['reason'])}): "
                      f"{_listing(shown, 'entry' if 'entry' in predictions else 'row', 'reason')}",
                      stacklevel=4)
    return ~bad, dropped


def _count_text(reasons: pd.Series) -> str:
    return ", ".join(f"{n} {r.split(' (')[0]}" for r, n in reasons.value_counts(sort=False).items())


def _warn_dropped(dropped: pd.DataFrame, prefix: str, what: str) -> None:
    """One warning for entries dropped while reading a file."""
    if len(dropped):
        shown = "; ".join(f"{r.video}[{r.index}]: {r.reason}" for r in dropped.head(_SHOWN).itertuples())
        more = f"; ... ({len(dropped) - _SHOWN} more)" if len(dropped) > _SHOWN else ""
        warnings.warn(f"{prefix} {len(dropped)} {what}: {shown}{more}", stacklevel=4)


def _check_thresholds(thresholds) -> np.ndarray:
    values = np.asarray(thresholds, dtype=float).reshape(-1)
    if len(values) == 0 or not ((values > 0) & (values <= 1)).all():
        raise InputError(f"tIoU thresholds {values.tolist()}: give one or more values in (0, 1]")
    return values


def _prepare(ground_truth, predictions, exclude_videos, *, need_label=True, lenient=False,
             sources=("ground truth", "predictions")):
    """Judged tables with normalised ids, excluded videos dropped, indices reset:
    (gt, pred, dropped predictions, ground-truth issues)."""
    gt_cols = ["video", "t_start_s", "t_end_s"] + (["label"] if need_label else [])
    check_columns(ground_truth, gt_cols, sources[0])
    check_columns(predictions, gt_cols + ["score"], sources[1])
    gt = ground_truth.assign(video=normalize_ids(ground_truth["video"]))
    pred = predictions.assign(video=normalize_ids(predictions["video"]))
    if exclude_videos is not None and len(exclude_videos):
        excluded = set(normalize_ids(pd.Series(list(exclude_videos))))
        gt = gt[~gt["video"].isin(excluded)]
        pred = pred[~pred["video"].isin(excluded)]
    gt, issues = check_ground_truth(gt, need_label=need_label, lenient=lenient, source=sources[0])
    if len(gt) == 0:
        raise InputError(f"{sources[0]}: no instances to evaluate against")
    if need_label:
        gt = gt.assign(label=_as_str(gt["label"]))
    classes = sorted(gt["label"].unique()) if need_label else None
    keep, dropped = check_predictions(pred, classes, source=sources[1])
    pred = pred[keep].assign(t_start_s=lambda d: d["t_start_s"].astype(float),
                             t_end_s=lambda d: d["t_end_s"].astype(float),
                             score=lambda d: d["score"].astype(float))
    if need_label:
        pred = pred.assign(label=_as_str(pred["label"]))
    _check_videos_match(gt, pred, sources)
    return gt, pred.reset_index(drop=True), dropped, issues


def _check_videos_match(gt: pd.DataFrame, pred: pd.DataFrame, sources) -> None:
    """Say how many predicted videos have no ground truth (their predictions match nothing), naming
    the first; ``InputError`` when none of them has any (e.g. ids upper-cased, or another
    subset's): an mAP of 0 from predictions that never met the ground truth would be no result."""
    predicted = pd.unique(pred["video"])
    unmatched = [v for v in predicted if v not in set(gt["video"])]
    if not unmatched:
        return
    named = ", ".join(map(repr, unmatched[:_SHOWN])) + (", ..." if len(unmatched) > _SHOWN else "")
    if len(unmatched) == len(predicted):
        examples = ", ".join(map(repr, pd.unique(gt["video"])[:3]))
        raise InputError(f"{sources[1]}: none of its {len(predicted)} predicted video(s) is in {sources[0]} "
                         f"(predicted: {named}; the ground truth has e.g. {examples}); ids must match "
                         "exactly, apart from ActivityNet's v_ prefix")
    warnings.warn(f"{sources[1]}: {len(unmatched)} of {len(predicted)} predicted video(s) are not in "
                  f"{sources[0]}, so their predictions match nothing: {named}", stacklevel=4)


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
    # integer class codes: sorting strings is ~10x slower; labels outside the classes are ignored
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


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

def _empty_dropped() -> pd.DataFrame:
    return pd.DataFrame(columns=DROPPED_COLUMNS)


def _empty_issues() -> pd.DataFrame:
    return pd.DataFrame(columns=GT_ISSUE_COLUMNS)


def _records(table: pd.DataFrame) -> list[dict]:
    """JSON-ready rows (numpy scalars as Python numbers, NaN as None)."""
    return [{k: (None if pd.api.types.is_scalar(v) and pd.isna(v) else v.item() if hasattr(v, "item") else v)
             for k, v in row.items()} for row in table.to_dict("records")]


def _validation_dict(dropped: pd.DataFrame, issues: pd.DataFrame) -> dict:
    """What ``to_dict`` reports about the inputs: every dropped prediction, every questionable
    ground-truth instance, with counts."""
    return {
        "dropped_predictions": {"count": len(dropped),
                                "by_reason": {str(k): int(v)
                                              for k, v in dropped["reason"].value_counts().items()},
                                "entries": _records(dropped)},
        "ground_truth_issues": {"dropped": int((issues["action"] == "dropped").sum()),
                                "kept": int((issues["action"] == "kept").sum()),
                                "entries": _records(issues)},
    }


@dataclass
class DetectionResult:
    """AP per class and threshold (fractions); ``summary()`` is the one-row mAP table.

    ``dropped``: DataFrame(video, index, reason) of the predictions left out (see
    ``check_predictions``); ``ground_truth_issues``: DataFrame(GT_ISSUE_COLUMNS) of the instances
    dropped (lenient) or kept with a warning (see ``check_ground_truth``).
    """

    ap: pd.DataFrame  # [class x tIoU]
    num_ground_truth: int
    num_predictions: int
    tiou_thresholds: tuple[float, ...] = field(default=())
    preset: str = ""
    dropped: pd.DataFrame = field(default_factory=_empty_dropped)
    ground_truth_issues: pd.DataFrame = field(default_factory=_empty_issues)

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
        return {"preset": self.preset, "tiou_thresholds": list(self.tiou_thresholds),
                "mAP": [float(v) for v in self.mAP], "average_mAP": self.average_mAP,
                "num_ground_truth": self.num_ground_truth, "num_predictions": self.num_predictions,
                "ap_per_class": {str(c): [float(v) for v in row]
                                 for c, row in zip(self.ap.index, self.ap.to_numpy())},
                **_validation_dict(self.dropped, self.ground_truth_issues)}


# --------------------------------------------------------------------------------------------
# Detection mAP
# --------------------------------------------------------------------------------------------

def evaluate_detection(ground_truth: pd.DataFrame, predictions: pd.DataFrame,
                       preset: str | DatasetPreset = "activitynet", *, tiou_thresholds=None,
                       exclude_videos=None, lenient: bool = False,
                       sources=("ground truth", "predictions")) -> DetectionResult:
    """Detection AP/mAP of ``predictions`` DataFrame(video, t_start_s, t_end_s, label, score)
    against ``ground_truth`` DataFrame(video, t_start_s, t_end_s, label[, duration_s]) (one subset
    already selected), both in file order (ties are broken as the official code breaks them).

    Both tables are judged first (module docstring, ``check_ground_truth``, ``check_predictions``):
    invalid ground truth raises ``InputError`` unless ``lenient``; invalid predictions, and those
    with labels absent from the ground truth (the official code would crash on them), are dropped
    with a warning and listed in ``result.dropped``. Classes are those of the ground truth;
    predictions on videos without ground truth are false positives. ``sources`` names the two
    tables in messages (file paths when they come from files).
    """
    p = get_preset(preset)
    thresholds = _check_thresholds(tiou_thresholds if tiou_thresholds is not None else p.tiou_thresholds)
    gt, pred, dropped, issues = _prepare(ground_truth, predictions, exclude_videos, lenient=lenient,
                                         sources=sources)
    num_positives = gt["label"].value_counts().sort_index()
    matched = match_predictions(gt, pred, thresholds)
    ap = average_precision_from_matches(pred["label"].to_numpy(), pred["score"].to_numpy(),
                                        matched >= 0, num_positives, thresholds)
    return DetectionResult(ap=ap, num_ground_truth=len(gt), num_predictions=len(pred),
                           tiou_thresholds=tuple(float(t) for t in thresholds), preset=p.name,
                           dropped=dropped, ground_truth_issues=issues)


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


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

def evaluate_files(ground_truth_path, predictions_path, preset: str | DatasetPreset | None = None,
                   *, subset: str | None = None, proposals: bool = False, exclude_videos=None,
                   lenient: bool = False):
    """Evaluate a result file against a ground-truth file (any format ``read_annotations`` reads);
    a DetectionResult, or a ProposalResult with ``proposals=True``.

    ``preset=None``: told from the ground truth's video ids (``infer_preset``; InputError asking
    for it when they match no dataset); ``result.preset`` says which was used. Entries of the
    result file that cannot be read join ``result.dropped`` (after the ones judged invalid).
    """
    gt, preset = _load_ground_truth(ground_truth_path, subset, preset, infer=True)
    pred, unread = read_results(predictions_path)
    _warn_dropped(unread, f"{predictions_path}: skipped", "malformed prediction entries")
    sources = (str(ground_truth_path), str(predictions_path))
    if proposals:
        result = evaluate_proposals(gt, pred, preset, exclude_videos=exclude_videos, lenient=lenient,
                                    sources=sources)
    else:
        result = evaluate_detection(gt, pred, preset, exclude_videos=exclude_videos, lenient=lenient,
                                    sources=sources)
    if len(unread):
        result.dropped = pd.concat([result.dropped, unread], ignore_index=True)
    return result
