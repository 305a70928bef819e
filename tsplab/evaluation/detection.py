"""Temporal action detection AP and mAP over tIoU thresholds, as the ActivityNet evaluation computes them.

Per class and tIoU threshold: predictions in the official score order (``matching``); each one is
matched to the *unmatched* ground truth of its video and class with the highest tIoU at or above
the threshold, else it is a false positive. AP is the all-point interpolated area under the
precision envelope (VOC 2011), mAP the mean over the classes of the ground truth (a class without
predictions scores 0), average mAP the mean over thresholds. The thresholds are the dataset's
(``tsplab.datasets.presets.DatasetPreset.tiou_thresholds``). Values are fractions in [0, 1] (papers print
them x100).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from tsplab.evaluation.inputs import (_check_thresholds, _empty_dropped, _empty_issues, _prepare,
                                      _validation_dict)
from tsplab.evaluation.matching import average_precision_from_matches, match_predictions
from tsplab.datasets.presets import DatasetPreset, get_preset


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

    Both tables are judged first (``tsplab.evaluation.inputs``, ``check_ground_truth``,
    ``check_predictions``): invalid ground truth raises ``InputError`` unless ``lenient``; invalid
    predictions, and those with labels absent from the ground truth (the official code would crash
    on them), are dropped with a warning and listed in ``result.dropped``. Classes are those of the
    ground truth; predictions on videos without ground truth are false positives. ``sources`` names
    the two tables in messages (file paths when they come from files).
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
