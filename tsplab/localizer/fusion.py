"""ActivityNet's external class-score fusion: the protocol ActionFormer and ASL report their
ActivityNet numbers with (ASL sec. 4.3: "we follow the common practice to fuse external video-level
classification scores [69]", the CUHK 2016 challenge classifier's).

The protocol, as ActionFormer's released post-processing applies it (happyharrycn/actionformer_release,
``libs/utils/postprocessing.py``, ``postprocess_results``; its ActivityNet configs train the localizer
with ``num_classes: 1``, i.e. class-agnostic, and name ``cuhk_val_simp_share.json`` as the score file):

- The score file maps each video to one score per class: ``{"results": {video: [C scores]},
  "class": [C names]}`` (the CUHK file's layout); a bare ``{video: [C scores]}`` mapping is read too
  (ActionFormer reads ``results`` when present, else the whole object). The CUHK file's keys are the
  bare YouTube ids (BMN and G-TAD strip ``v_`` before the lookup); here ids go through the project's
  one rule, ``tsplab.datasets.normalize_video_id``, so ``v_<id>`` and ``<id>`` are one video.
- Class order: ActionFormer uses the position in the score list as its class id. Here the file's
  ``"class"`` list names the positions; a file without one is read in the sorted order of the
  annotation's labels (TSP's label mapping, ``tsplab.datasets.label_mapping``), and its length
  must match.
- Per video: the predictions sorted by decreasing score, at most ``max_segments`` of them
  (ActionFormer's ``num_pred``, 200; the localizer's cap, 100 on ActivityNet, binds first); the
  video's ``top_k`` classes by external score (k = 2); every segment is repeated once per top class,
  labelled with that class, scored ``sqrt(class score x segment score)`` (the geometric mean). The
  segment's own label is dropped: the protocol expects class-agnostic segments. A video thus gets
  ``top_k x N`` predictions, the first class's block first, as ActionFormer lists them (the order
  matters only for the official evaluation's tie-breaking). Sorting uses ``np.argsort(x)[::-1]``,
  as ActionFormer does, so ties fall the same way.

Nothing is scored silently: prediction videos without class scores are left out of the fused table
and named (warning, ``FusionResult.missing_videos``, the ``fusion`` record of the written file and of
a localizer run's ``metrics.json``); segments beyond ``max_segments`` are counted.
"""
from __future__ import annotations

import json

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tsplab.datasets import Annotations, label_mapping, normalize_video_id
from tsplab.config import check_parameter, is_int
from tsplab.errors import InputError
from tsplab.runs import read_json, resolve

AGNOSTIC_LABEL = "action"  # the one class of class-agnostic training (ActionFormer: num_classes 1)
DEFAULT_TOP_K = 2  # ActionFormer's postprocess_results(topk=2)
MAX_SEGMENTS = 200  # ActionFormer's postprocess_results(num_pred=200): segments per video fused
PREDICTION_COLUMNS = ["video", "t_start_s", "t_end_s", "label", "score"]
_SHOWN = 5  # ids named in a one-line message
_LAYOUT = ('{"results": {video: [one score per class]}, "class": [class names]} (the CUHK '
           'cuhk_val_simp_share.json layout ActionFormer reads)')


# ------------------------------------------------------------------------------------------------
# The class-score file
# ------------------------------------------------------------------------------------------------

@dataclass
class ClassScores:
    """External video-level class scores: ``scores`` ``[V, C]`` (rows: ``videos``, normalised ids;
    columns: ``classes``), read from ``path``. ``class_order``: where the column names came from
    (``"file"``: its ``class`` list; ``"sorted labels"``: the annotation's labels, sorted)."""

    path: Path
    videos: list[str]
    classes: list[str]
    scores: np.ndarray
    class_order: str = "file"
    _rows: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._rows = {video: i for i, video in enumerate(self.videos)}

    def row(self, video) -> np.ndarray | None:
        """The ``[C]`` scores of ``video`` (any spelling of its id), or ``None``."""
        i = self._rows.get(normalize_video_id(video))
        return None if i is None else self.scores[i]


def read_class_scores(path, labels=None) -> ClassScores:
    """Read and check a class-score file (layout: module docstring). ``labels``: the annotation's
    class names; when given, the file's classes must be exactly these (a name the ground truth
    lacks could never be scored, a label the file lacks never predicted), and a file without a
    ``class`` list takes them in sorted order. Raises ``InputError`` naming the file and the video
    or key that is wrong."""
    path = resolve(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: a {type(data).__name__}, not a class-score file; expected {_LAYOUT}")
    results = data.get("results", data)  # ActionFormer: "results" when present, else the object
    names = data.get("class") if "results" in data else None
    if not isinstance(results, dict) or not results:
        raise InputError(f"{path}: \"results\" is {'empty' if isinstance(results, dict) else 'not an object'}"
                         f"; expected {_LAYOUT}")
    first = next(iter(results.values()))
    num_classes = len(names) if isinstance(names, list) else len(first) if isinstance(first, list) else 0
    videos, scores = _score_rows(path, results, num_classes)
    if names is None:
        return ClassScores(path, videos, _sorted_label_order(path, labels, num_classes), scores,
                           class_order="sorted labels")
    classes = _class_names(path, names)
    if labels is not None:
        _check_same_classes(path, classes, labels)
    return ClassScores(path, videos, classes, scores)


def _score_rows(path: Path, results: dict, num_classes: int) -> tuple[list[str], np.ndarray]:
    """(normalised ids ``[V]``, scores ``[V, C]``); ``InputError`` naming the first bad video."""
    videos, rows, first_key = [], [], {}
    for key, values in results.items():
        video = normalize_video_id(key)
        other = first_key.setdefault(video, key)
        if other != key:
            raise InputError(f"{path}: videos {other!r} and {key!r} are the same video (ids with and "
                             "without 'v_' are one video); keep one of them")
        if (not isinstance(values, list) or len(values) != num_classes or num_classes == 0
                or not all(type(v) in (int, float) for v in values)):
            what = f"a list of {len(values)} values" if isinstance(values, list) else type(values).__name__
            odd = [v for v in values if type(v) not in (int, float)] if isinstance(values, list) else []
            if odd and len(values) == num_classes:  # the right count, not all numbers (e.g. "0.5")
                what = f"a list holding {json.dumps(odd[0])} ({type(odd[0]).__name__}, not a number)"
            raise InputError(f"{path}: video {key!r}: class scores are {what}; give a list of "
                             f"{num_classes or 'C > 0'} numbers (one per class, the same count for "
                             "every video)")
        row = np.asarray(values, dtype=np.float64)
        if not (np.isfinite(row).all() and (row >= 0).all()):
            bad = float(row[~(np.isfinite(row) & (row >= 0))][0])
            raise InputError(f"{path}: video {key!r}: class score {bad:g} is not a number >= 0; give "
                             "probabilities (the fusion takes the square root of their product with the "
                             "segment's score)")
        videos.append(video)
        rows.append(row)
    return videos, np.stack(rows)


def _class_names(path: Path, names) -> list[str]:
    if not all(isinstance(n, str) and n for n in names):
        raise InputError(f"{path}: \"class\" must be a list of class names (non-empty strings), one per "
                         "score position")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"{path}: \"class\" repeats {repeated[:_SHOWN]}; give each class once")
    return list(names)


def _sorted_label_order(path: Path, labels, num_classes: int) -> list[str]:
    """A file without a ``class`` list: its positions are the annotation's labels in sorted order."""
    if labels is None:
        raise InputError(f"{path}: no \"class\" list names the {num_classes} score positions; add one "
                         "(as the CUHK file has) or give the annotations (--annotations), whose labels "
                         "are then taken in sorted order")
    classes = label_mapping(labels)
    if len(classes) != num_classes:
        raise InputError(f"{path}: {num_classes} scores per video but the annotations have "
                         f"{len(classes)} labels; without a \"class\" list the positions must be the "
                         "sorted labels, one each")
    return classes


def _check_same_classes(path: Path, classes: list[str], labels) -> None:
    wanted = {str(label) for label in labels}
    extra, missing = sorted(set(classes) - wanted), sorted(wanted - set(classes))
    if extra or missing:
        parts = ([f"{len(extra)} class(es) not among the annotation's labels: {extra[:_SHOWN]}"] if extra
                 else []) + ([f"{len(missing)} label(s) of the annotations missing: {missing[:_SHOWN]}"]
                             if missing else [])
        raise InputError(f"{path}: \"class\" does not match the annotation's {len(wanted)} labels ("
                         f"{'; '.join(parts)}); the names must be the ground truth's, spelled alike")


# ------------------------------------------------------------------------------------------------
# The fusion
# ------------------------------------------------------------------------------------------------

@dataclass
class FusionResult:
    """The fused predictions DataFrame(video, t_start_s, t_end_s, label, score) and what was left
    out: ``missing_videos`` (prediction videos without class scores, ids as written; their
    ``missing_predictions`` predictions are not in the table) and ``segments_left_out`` (beyond
    ``max_segments`` of their video)."""

    predictions: pd.DataFrame
    class_scores: Path
    top_k: int
    max_segments: int
    num_videos: int
    missing_videos: list[str]
    missing_predictions: int
    segments_left_out: int
    input_labels: list[str]

    def report(self) -> dict:
        """The fusion's record (JSON types) for result files and ``metrics.json``."""
        return {"class_scores": str(self.class_scores), "top_k": self.top_k,
                "score": "sqrt(class score x segment score)", "max_segments": self.max_segments,
                "protocol": "ActionFormer's postprocess_results (ASL sec. 4.3)",
                "videos": self.num_videos, "videos_fused": self.num_videos - len(self.missing_videos),
                "videos_without_class_scores": list(self.missing_videos),
                "predictions_left_out": self.missing_predictions,
                "segments_beyond_max_segments": self.segments_left_out,
                "input_labels": list(self.input_labels)}


def fuse_predictions(predictions: pd.DataFrame, class_scores: ClassScores, top_k: int = DEFAULT_TOP_K,
                     max_segments: int = MAX_SEGMENTS, source: str = "predictions") -> FusionResult:
    """Fuse each video's segments with its ``top_k`` external classes (module docstring). Videos
    are taken in sorted order of their ids; ``source`` names the predictions in warnings."""
    _check_fusion_parameters(top_k, max_segments, class_scores)
    _check_prediction_scores(predictions, source)
    labels = sorted(predictions["label"].astype(str).unique())
    if len(labels) > 1:
        warnings.warn(f"{source}: the predictions hold {len(labels)} labels ({', '.join(labels[:_SHOWN])}"
                      f"{', ...' if len(labels) > _SHOWN else ''}); the fusion replaces every segment's "
                      "label with its video's top classes, as for the class-agnostic segments the "
                      "protocol expects (train with class_agnostic / --class-agnostic)", stacklevel=2)
    frames, missing, missing_rows, beyond = [], [], 0, 0
    for video, rows in predictions.groupby("video", sort=True):
        class_row = class_scores.row(video)
        if class_row is None:
            missing.append(str(video))
            missing_rows += len(rows)
            continue
        beyond += max(0, len(rows) - max_segments)
        frames.append(_fuse_video(rows, class_row, class_scores.classes, top_k, max_segments))
    fused = (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PREDICTION_COLUMNS))
    result = FusionResult(fused[PREDICTION_COLUMNS], class_scores.path, top_k, max_segments,
                          predictions["video"].nunique(), missing, missing_rows, beyond, labels)
    _warn_missing(result, source)
    return result


def _fuse_video(rows: pd.DataFrame, class_row: np.ndarray, classes: list[str], top_k: int,
                max_segments: int) -> pd.DataFrame:
    """One video: ``top_k x N`` rows, class-major (all segments with the best class, then the
    second's), score ``sqrt(p_class * p_segment)``."""
    order = np.argsort(rows["score"].to_numpy(dtype=np.float64))[::-1][:max_segments]
    segment_score = rows["score"].to_numpy(dtype=np.float64)[order]  # [N]
    top = np.argsort(class_row)[::-1][:top_k]  # [k] class positions, best first
    score = np.sqrt(class_row[top][:, None] * segment_score[None, :])  # [k, N]
    n = len(order)
    return pd.DataFrame({"video": np.repeat(rows["video"].to_numpy()[:1], top_k * n),
                         "t_start_s": np.tile(rows["t_start_s"].to_numpy(dtype=np.float64)[order], top_k),
                         "t_end_s": np.tile(rows["t_end_s"].to_numpy(dtype=np.float64)[order], top_k),
                         "label": np.repeat(np.asarray(classes, dtype=object)[top], n),
                         "score": score.reshape(-1)})


def _check_fusion_parameters(top_k, max_segments, class_scores: ClassScores,
                             name: str = "top_k (--top-k)") -> None:
    num_classes = len(class_scores.classes)
    check_parameter(name, top_k, is_int(top_k) and 1 <= top_k <= num_classes,
                    f"an integer from 1 to the {num_classes} classes of {class_scores.path} "
                    f"(ActionFormer: {DEFAULT_TOP_K})")
    check_parameter("max_segments (--max-segments)", max_segments, is_int(max_segments) and max_segments >= 1,
                    f"an integer >= 1 (ActionFormer: {MAX_SEGMENTS})")


def _check_prediction_scores(predictions: pd.DataFrame, source: str) -> None:
    from tsplab.evaluation import check_columns

    check_columns(predictions, PREDICTION_COLUMNS, source)
    score = pd.to_numeric(predictions["score"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(score) & (score >= 0))
    if bad.any():
        row = predictions[bad].iloc[0]
        raise InputError(f"{source}: video {row['video']!r}: score {row['score']!r} is not a number >= 0 "
                         f"({int(bad.sum())} such prediction(s)); the fusion takes the square root of "
                         "score products, give scores in [0, 1]")


def _warn_missing(result: FusionResult, source: str) -> None:
    if result.missing_videos:
        shown = ", ".join(result.missing_videos[:_SHOWN])
        warnings.warn(f"{source}: {len(result.missing_videos)} of {result.num_videos} video(s) have no "
                      f"class scores in {result.class_scores}; their {result.missing_predictions} "
                      f"prediction(s) are left out of the fused predictions: {shown}"
                      f"{', ...' if len(result.missing_videos) > _SHOWN else ''}", stacklevel=3)


# ------------------------------------------------------------------------------------------------
# Files and the localizer run
# ------------------------------------------------------------------------------------------------

def write_fused_predictions(result: FusionResult, path, *, version: str = "VERSION 1.3") -> Path:
    """An ActivityNet result file of the fused predictions (atomically): ``external_data`` says
    that external classification scores were used (the challenge's field for it) and ``fusion``
    holds ``result.report()`` (what was left out, by name)."""
    from tsplab.evaluation import write_predictions

    details = (f"segment scores fused with the top-{result.top_k} video-level class scores of "
               f"{Path(result.class_scores).name}")
    return write_predictions(result.predictions, path, version=version,
                             external_data={"used": True, "details": details},
                             extra={"fusion": result.report()})


def agnostic_annotations(ann: Annotations) -> Annotations:
    """``ann`` with every instance labelled ``AGNOSTIC_LABEL``: ActionFormer's class-agnostic
    training on ActivityNet (its configs' ``num_classes: 1``), whose classes come from the fusion."""
    return Annotations(ann.videos, ann.instances.assign(label=AGNOSTIC_LABEL), [AGNOSTIC_LABEL])


def check_fusion_config(config) -> Path | None:
    """The class-score file of a localizer run (``None`` without fusion), after the cheap checks
    (``fusion_top_k``, the file exists and is not the run folder), before the features are loaded."""
    check_parameter("fusion_top_k", config.fusion_top_k,
                    is_int(config.fusion_top_k) and config.fusion_top_k >= 1,
                    f"an integer >= 1 (ActionFormer: {DEFAULT_TOP_K})")
    if not config.class_scores:
        return None
    path = resolve(config.class_scores)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: class-score file not found (class_scores)")
    if path.resolve() == resolve(config.out_dir).resolve():
        raise InputError(f"out_dir: {path} is the class-score file (class_scores); give a "
                         "separate run folder")
    return path


def read_run_class_scores(config, ann: Annotations) -> ClassScores | None:
    """A localizer run's class scores (``config.class_scores``; ``None`` when empty), read and
    checked against the annotation's labels before the run folder is touched. Warns now, before
    training, when videos of ``config.valid_subset`` have no scores."""
    path = check_fusion_config(config)
    if path is None:
        return None
    scores = read_class_scores(path, ann.labels)
    _check_fusion_parameters(config.fusion_top_k, MAX_SEGMENTS, scores, "fusion_top_k")
    valid = ann.videos.loc[ann.videos["subset"] == config.valid_subset, "video"].astype(str)
    missing = [v for v in valid if scores.row(v) is None]
    if missing:
        warnings.warn(f"{path}: no class scores for {len(missing)} of {len(valid)} {config.valid_subset} "
                      f"video(s) ({', '.join(missing[:_SHOWN])}{', ...' if len(missing) > _SHOWN else ''}); "
                      "their predictions will be left out of the fused evaluation", stacklevel=3)
    return scores


def write_run_predictions(config, predictions: pd.DataFrame, class_scores: ClassScores | None,
                          out_dir: Path, predictions_file: str, unfused_file: str
                          ) -> tuple[pd.DataFrame, dict]:
    """Write what a localizer run evaluates to ``out_dir / predictions_file``: its predictions, or
    (with class scores) the fused ones, the model's own then kept in ``out_dir / unfused_file``.
    Returns (the predictions written, the record for ``metrics.json``: ``class_agnostic`` and
    ``fusion``, empty when neither applies)."""
    from tsplab.evaluation import write_predictions

    record = {"class_agnostic": True} if config.class_agnostic else {}
    if class_scores is None:
        write_predictions(predictions, out_dir / predictions_file)
        return predictions, record
    write_predictions(predictions, out_dir / unfused_file)
    fused = fuse_predictions(predictions, class_scores, config.fusion_top_k, source=str(out_dir / unfused_file))
    write_fused_predictions(fused, out_dir / predictions_file)
    return fused.predictions, {**record, "fusion": {**fused.report(), "unfused_predictions": unfused_file}}


def evaluation_ground_truth(config, ann: Annotations) -> pd.DataFrame:
    """The validation instances a run is scored against: with their labels, except for a
    class-agnostic run without fusion, whose single class is compared with every action."""
    ground_truth = ann.instances[ann.instances["subset"] == config.valid_subset]
    if config.class_agnostic and not config.class_scores:
        return ground_truth.assign(label=AGNOSTIC_LABEL)
    return ground_truth


__all__ = ["AGNOSTIC_LABEL", "DEFAULT_TOP_K", "MAX_SEGMENTS", "ClassScores", "FusionResult",
           "agnostic_annotations", "check_fusion_config", "evaluation_ground_truth", "fuse_predictions",
           "read_class_scores", "read_run_class_scores", "write_fused_predictions", "write_run_predictions"]
