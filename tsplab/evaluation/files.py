"""Evaluate an ActivityNet result file against a ground-truth file: what ``tsplab evaluate`` runs."""
from __future__ import annotations

import pandas as pd

from tsplab.evaluation.detection import evaluate_detection
from tsplab.evaluation.inputs import _load_ground_truth, _warn_dropped, read_results
from tsplab.evaluation.proposals import evaluate_proposals
from tsplab.datasets.presets import DatasetPreset


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
