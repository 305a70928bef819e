"""Video-encoder pretraining: TAC, TSP, BSP and PAL through one loop, one process or many (torchrun + DDP).

Modules, in the order a run flows through them: ``config`` (``PretrainConfig``: the loop's fields and
the method's options; typed ``--set`` overrides, ``parse_overrides``; the checks), ``recipes`` (named
settings, ``RECIPES``: ``tsp``, the paper's, and ``synthetic``, the built-in benchmark's;
``pretrain_config``), ``methods`` (one file per method behind ``PretrainMethod``, the registry
``METHODS``), ``sampling`` (clip datasets and the epoch sampler) and ``data`` (segment tables, the
background rule, the frame cache, loaders), ``optim`` (parameter groups, warm-up and schedules),
``loop`` (``train_one_epoch``, ``evaluate``, checkpoints), ``run_folder`` (the run folder: earlier
runs, resume, the driver), ``source`` (the synthetic benchmark's initial encoder, ``weights="source"``)
and ``encoders`` (which pretrained encoders a later step uses).
"""
from __future__ import annotations

from tsplab.pretrain.config import PretrainConfig, check_config, config_from_dict, config_values, parse_overrides
from tsplab.pretrain.loop import PretrainResult
from tsplab.pretrain.methods import METHODS, get_method
from tsplab.pretrain.recipes import RECIPES, config_changes, method_configs, pretrain_config
from tsplab.pretrain.run_folder import check_run, read_metrics, read_run_metrics, run_pretraining
from tsplab.pretrain.source import ensure_source_encoder, resolve_weights, source_encoder_summary


def pretrain(config: PretrainConfig, *, resume: bool = False, stop_after_epochs: int | None = None) -> PretrainResult:
    """Pretrain ``config.method`` and return the run's metrics and checkpoints.

    ``resume``: continue from the run folder's ``checkpoint.pt`` (a fresh start, with a warning, if
    there is none). ``stop_after_epochs``: return after this many epochs of this call (for jobs with a
    time limit; ``resume=True`` continues; at least 1). Under ``torchrun`` every process calls this.

    Settings, files and folders are checked first (``check_run``; ``InputError`` naming the field or
    file); then ``weights="source"`` (the synthetic recipe's) becomes the path of the benchmark's
    initial encoder (``resolve_weights``; trained first if absent), so that the run's ``config.json``
    names that checkpoint; then the loop runs (``run_pretraining``), touching the run folder only once
    the initial weights and the data are ready."""
    check_run(config, stop_after_epochs)
    config = resolve_weights(config)
    return run_pretraining(config, resume=resume, stop_after_epochs=stop_after_epochs)


__all__ = ["METHODS", "PretrainConfig", "PretrainResult", "RECIPES", "check_config", "config_changes",
           "config_from_dict", "config_values", "ensure_source_encoder", "get_method", "method_configs",
           "parse_overrides", "pretrain", "pretrain_config", "read_metrics", "read_run_metrics",
           "source_encoder_summary"]
