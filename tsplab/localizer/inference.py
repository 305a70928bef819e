"""Inference: a trained ``Localizer``'s detections of each video, ActionFormer's post-processing
(score threshold and top-k over all pyramid levels, per-class SoftNMS of ``tsplab.localizer.nms``,
then at most ``max_predictions`` per video), in seconds on the video's time axis.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from tsplab.features import FeatureMetadata
from tsplab.localizer.data import VideoItem, collate, level_points, positions_to_seconds
from tsplab.localizer.model import Localizer
from tsplab.localizer.nms import batched_soft_nms
from tsplab.datasets.presets import get_preset
from tsplab.threads import torch_threads

PREDICTION_COLUMNS = ["video", "t_start_s", "t_end_s", "label", "score"]


def predict(model: Localizer, items: list[VideoItem], meta: FeatureMetadata, labels: list[str],
            progress: bool = False) -> pd.DataFrame:
    """Detections of every video: all pyramid levels, score threshold and top-k, per-class
    SoftNMS, then at most ``config.max_predictions`` per video. DataFrame(video, t_start_s, t_end_s,
    label, score), sorted by video then decreasing score."""
    with torch_threads(model.config.num_threads), torch.no_grad():
        device = next(model.parameters()).device
        model.eval()
        frames = [_predict_video(model, item, meta, labels, device)
                  for item in tqdm(items, desc="predict", leave=False, disable=not progress)]
    if not frames:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    return pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS]


def max_predictions(config) -> int:
    """The per-video cap: the config's, else its metric preset's (``tsplab.datasets.presets``; training
    stores the value it used)."""
    if config.max_predictions is not None:
        return int(config.max_predictions)
    return get_preset(config.metric_preset or "activitynet").max_predictions


def _predict_video(model: Localizer, item: VideoItem, meta: FeatureMetadata, labels: list[str],
                   device) -> pd.DataFrame:
    """One video's detections after SoftNMS, best first."""
    cfg = model.config
    segments_s, scores, classes = _candidates(model, item, meta, device)
    seg, score, lab = batched_soft_nms(segments_s, scores, classes, sigma=cfg.nms_sigma,
                                       min_score=cfg.pre_nms_threshold, max_keep=max_predictions(cfg))
    return pd.DataFrame(dict(video=item.video, t_start_s=seg[:, 0], t_end_s=seg[:, 1],
                             label=[labels[int(c)] for c in lab], score=score))


def _candidates(model: Localizer, item: VideoItem, meta: FeatureMetadata, device
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detections of one video before NMS: (segments ``[M, 2]`` in seconds, clipped to the
    video; scores ``[M]``; class indices ``[M]``). Every (point, class) pair of every level above
    ``pre_nms_threshold`` is a candidate, the ``pre_nms_topk`` best kept; a point's segment is its
    position minus/plus the predicted offsets times its level's stride; segments shorter than
    ``min_duration_s`` are dropped."""
    cfg = model.config
    feats, mask = collate([item], model.multiple)
    out = model(feats.to(device), mask.to(device))
    points, strides, _, _ = level_points(feats.shape[-1], cfg.num_levels, cfg.regression_ranges)
    scores = torch.sigmoid(torch.cat(out["cls_logits"], dim=1)[0]).cpu()  # [P, K]
    offsets = torch.cat(out["offsets"], dim=1)[0].cpu()
    valid = torch.cat(out["masks"], dim=1)[0].cpu()
    scores[~valid] = 0.0
    flat = scores.flatten()
    keep = torch.nonzero(flat > cfg.pre_nms_threshold)[:, 0]
    keep = keep[flat[keep].argsort(descending=True)[:cfg.pre_nms_topk]]
    pi, ci = keep // scores.shape[1], keep % scores.shape[1]
    start = points[pi] - offsets[pi, 0] * strides[pi]
    end = points[pi] + offsets[pi, 1] * strides[pi]
    t0 = np.clip(positions_to_seconds(start.numpy(), meta), 0.0, item.duration_s)
    t1 = np.clip(positions_to_seconds(end.numpy(), meta), 0.0, item.duration_s)
    ok = t1 - t0 >= cfg.min_duration_s
    return np.stack([t0[ok], t1[ok]], axis=1), flat[keep].numpy()[ok], ci.numpy()[ok]
