"""Temporal action localizer: an ActionFormer-style one-stage detector with ASL's action sensitivity
(ASE at class and instance level, ASCL), every ASL component switchable (``LocalizerConfig``).

Modules, in the order data flows: ``config`` (``LocalizerConfig``, its checks, the metric preset and
prediction cap, which follow the dataset, ``tsplab.datasets.presets``, unless given: ``resolve_preset``),
``data`` (videos of a feature folder, crops, batches, pyramid points, target assignment), ``model``
(the network, and ``Localizer``: the network with its losses), ``asl`` (ASL's class-level Gaussians,
ASE weights, ASCL), ``losses`` (focal, DIoU), ``inference`` (decoding, the prediction cap) with
``nms`` (SoftNMS), ``fusion`` (ActivityNet's protocol: external video-level class scores fused with
the segments, as ActionFormer and ASL report), ``train`` (the training loop, the run folder, loading a
trained model). ``data`` reads one feature folder or several as one (BSP's two-stream)."""
from tsplab.localizer.config import LocalizerConfig, resolve_preset, validate_localizer_config
from tsplab.localizer.inference import predict
from tsplab.localizer.train import LocalizerResult, load_localizer, read_history, train_localizer

__all__ = ["LocalizerConfig", "LocalizerResult", "load_localizer", "predict", "read_history",
           "resolve_preset", "train_localizer", "validate_localizer_config"]
