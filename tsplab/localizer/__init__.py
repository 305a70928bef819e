"""Temporal action localizer: an ActionFormer-style one-stage detector with ASL's action sensitivity
(ASE at class and instance level, ASCL), every ASL component switchable (``LocalizerConfig``).

Modules: ``model`` (network), ``asl`` (class-level Gaussians, ASCL), ``losses`` (focal, DIoU),
``nms`` (SoftNMS), ``train`` (data, targets, training loop, prediction, evaluation)."""
from tsplab.localizer.train import (LocalizerConfig, LocalizerResult, load_localizer, predict,
                                    read_history, train_localizer)

__all__ = ["LocalizerConfig", "LocalizerResult", "load_localizer", "predict", "read_history",
           "train_localizer"]
