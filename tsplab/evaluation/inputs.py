"""Reading and judging the inputs of an evaluation: ActivityNet result files, ground truth, and the
report of what was dropped.

Nothing is scored silently (see ``check_ground_truth`` and ``check_predictions``):

- Ground truth: a missing or non-numeric time, a negative time, a reversed segment (start > end) or
  a missing label (detection) is an error (``InputError`` naming the file and rows); with
  ``lenient=True`` (``--lenient``) such instances are dropped and listed. Zero-length instances are
  kept, with a warning, as positives that nothing can match: the official code counts them (the
  ActivityNet validation file has some) and a zero-length segment overlaps nothing. Instances
  ending after their video's duration (when durations are known) are kept with a warning: the
  released files have them and the official evaluation knows no durations (README, "Evaluation
  you can trust"). One video under two spellings (``x`` and ``v_x``) is the reader's to refuse or
  merge (``tsplab.datasets.read_annotations``).
- Predictions: malformed entries, non-finite or negative times, reversed or zero-length segments,
  non-finite scores, labels absent from the ground truth (detection) and a video listed under two
  keys (``x`` and ``v_x``: the later key's entries) are dropped, named in a warning and listed in
  the result's ``dropped`` table (and its ``to_dict()``). A zero-length or reversed segment is
  never a match (the official code lets a 0/0 = NaN tIoU match, since NaN is never ``< t``).
  Predictions on videos without ground truth stay false positives (official convention).

The official code also asks a (long dead) server for blocked videos; here ``exclude_videos`` drops
videos from both sides instead.
"""
from __future__ import annotations

import warnings
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
# Drop reports (the validation part of a result's to_dict)
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
