"""Temporal action localizer: an ActionFormer-style one-stage detector with ASL's action sensitivity
(ASE at class and instance level, ASCL), every ASL component switchable (``LocalizerConfig``).

Modules: ``model`` (network), ``asl`` (class-level Gaussians, ASCL), ``losses`` (focal, DIoU),
``nms`` (SoftNMS), ``train`` (data, targets, training loop, prediction, evaluation). The metric
preset and the per-video prediction cap follow the dataset unless given (``resolve_preset``)."""
from tsplab.localizer.train import (PRESET_MAX_PREDICTIONS, LocalizerConfig, LocalizerResult,
                                    load_localizer, predict, read_history, resolve_preset,
                                    train_localizer, validate_localizer_config)

__all__ = ["PRESET_MAX_PREDICTIONS", "LocalizerConfig", "LocalizerResult", "load_localizer", "predict",
           "read_history", "resolve_preset", "train_localizer", "validate_localizer_config"]
