"""Temporal action detection mAP, proposal AR@AN and DETAD length analysis, computed as the ActivityNet
evaluation does.

- ``inputs``: reading ActivityNet result files and ground truth, judging both (what is dropped or
  kept with a warning, and the report of it).
- ``matching``: tIoU, the official score order (ties included), greedy matching and interpolated AP.
- ``detection``: detection AP/mAP over tIoU thresholds (``evaluate_detection``).
- ``proposals``: proposal AR@AN and AUC (``evaluate_proposals``).
- ``files``: a result file against a ground-truth file (``evaluate_files``, ``tsplab evaluate``).
- ``detad``: DETAD's per-bucket average mAP (instances bucketed by length, coverage, count).

The settings of a benchmark (tIoU thresholds, the subset evaluated, proposals kept, AR@AN points,
DETAD buckets) are its ``tsplab.datasets.presets.DatasetPreset``; ``preset=None`` tells it from the ground
truth's video ids (``tsplab.datasets.presets.infer_preset``). Tables are pandas DataFrames; values are
fractions in [0, 1] (papers print them x100).
"""
from tsplab.evaluation.detad import (CHARACTERISTICS, BucketSpec, assign_buckets, available_characteristics,
                                     bucket_average_map, bucket_shares, bucket_table, get_bucket_spec,
                                     instance_characteristics, perturb_ground_truth, pretend_predictions)
from tsplab.evaluation.detection import DetectionResult, detection_table, evaluate_detection
from tsplab.evaluation.files import evaluate_files
from tsplab.evaluation.inputs import (DROPPED_COLUMNS, GT_ISSUE_COLUMNS, PREDICTION_COLUMNS, check_columns,
                                      check_ground_truth, check_predictions, load_ground_truth, normalize_ids,
                                      read_predictions, read_results, select_subset, write_predictions)
from tsplab.evaluation.matching import (average_precision_from_matches, interpolated_ap, iou_elementwise,
                                        match_predictions, official_order, segment_iou)
from tsplab.evaluation.proposals import ProposalResult, evaluate_proposals

__all__ = [
    "BucketSpec", "CHARACTERISTICS", "DROPPED_COLUMNS", "DetectionResult", "GT_ISSUE_COLUMNS",
    "PREDICTION_COLUMNS", "ProposalResult", "assign_buckets", "available_characteristics",
    "average_precision_from_matches", "bucket_average_map", "bucket_shares", "bucket_table",
    "check_columns", "check_ground_truth", "check_predictions", "detection_table", "evaluate_detection",
    "evaluate_files", "evaluate_proposals", "get_bucket_spec", "instance_characteristics", "interpolated_ap",
    "iou_elementwise", "load_ground_truth", "match_predictions", "normalize_ids", "official_order",
    "perturb_ground_truth", "pretend_predictions", "read_predictions", "read_results", "segment_iou",
    "select_subset", "write_predictions",
]
