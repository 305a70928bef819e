"""The localizer run's configuration (``LocalizerConfig``), its checks (every parameter, the input
paths, the run folder) before anything is read or written, and the metric preset and prediction cap
that follow the dataset (``tsplab.datasets.presets``) unless given.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tsplab.errors import InputError
from tsplab.features.config import check_parameter, is_int
from tsplab.features.encoding import pick_device
from tsplab.localizer.asl import ASE_WEIGHTINGS
from tsplab.datasets.presets import PRESETS, get_preset, infer_preset
from tsplab.runs import check_output_folder, resolve


@dataclass
class LocalizerConfig:
    """One localizer run. Defaults suit the synthetic benchmark's short sequences (T ~ 30-60
    positions, actions 4-46 positions); for real datasets follow ActionFormer/ASL: ActivityNet
    ``embed_dim=256, num_levels=6, num_stem_blocks=2, epochs=15, batch_size=16, lr=1e-3,
    max_predictions=100``; THUMOS14 ``embed_dim=512, num_levels=6, epochs=30, batch_size=2,
    lr=1e-4, max_seq_len=2304, max_predictions=200``, with ranges ``(0,4),(4,8),...,(64,10000)``.
    ``ase_class``, ``ase_instance``, ``ascl`` all off = the plain ActionFormer-style baseline
    (ASL Table 5's first row).

    ``metric_preset`` ``None`` follows the dataset (``tsplab.datasets.presets.infer_preset`` on the
    annotation ids; ids of no known dataset stop the run asking for it), and ``max_predictions``
    ``None`` follows the preset (``DatasetPreset.max_predictions``); the saved ``config.json`` holds the
    values used."""

    # a feature folder, or a list of folders read as one, each video's arrays concatenated along
    # channels (BSP §3.4 two-stream, e.g. [tac_dir, bsp_dir]; CLI: --features repeated)
    features_dir: str | list = ""
    annotations: str = ""
    out_dir: str = ""
    train_subset: str = "training"
    valid_subset: str = "validation"
    metric_preset: str | None = None  # activitynet | thumos14 | synthetic; None: from the ids
    # ASL switches (Table 5)
    ase_class: bool = True
    ase_instance: bool = True
    ascl: bool = True
    # eq. (8)'s weights as written ("paper"), or q detached and h rescaled to mean 1 ("stabilised")
    ase_weighting: str = "paper"
    ascl_weight: float = 0.3  # λ, ASL sec. 4.2
    ascl_delta: float = 0.2  # δ, the sensitive/background range ratio (eqs. 12-13)
    theta: float = 0.2  # θ, temporal/channel attention mix (ASL sec. 3.1, 4.2)
    # network
    embed_dim: int = 64
    num_levels: int = 4
    num_stem_blocks: int = 1
    num_heads: int = 4
    head_layers: int = 3  # ActionFormer's; 2 learned far worse on the synthetic benchmark
    dropout: float = 0.0
    regression_ranges: tuple = ((0, 4), (4, 8), (8, 16), (16, 10000))
    center_sample_radius: float = 1.5  # ActionFormer's value
    max_seq_len: int = 256  # longer training sequences are cropped at random (positions)
    # optimisation (AdamW + linear warm-up + cosine, ActionFormer's schedule)
    epochs: int = 15
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 2
    seed: int = 0
    device: str = "cpu"
    # CPU threads while training/predicting (restored afterwards). The sequences are short, so
    # intra-op parallelism costs more than it gains: measured 0.5 ms vs 6.8 ms per conv on 2 busy
    # cores with 1 vs 2 threads. None = leave torch's setting.
    num_threads: int | None = 1
    # inference (ActionFormer's post-processing)
    pre_nms_threshold: float = 1e-3
    pre_nms_topk: int = 2000
    nms_sigma: float = 0.5
    min_duration_s: float = 0.05
    max_predictions: int | None = None  # per video; None: the preset's (tsplab.datasets.presets)
    # ActivityNet's reporting protocol (ActionFormer's configs, ASL sec. 4.3; tsplab.localizer.fusion):
    # train one class "action", then label and rescore the validation segments with the top-k classes
    # of an external video-level class-score file (CUHK's) before evaluating.
    class_agnostic: bool = False  # every label -> "action" (ActionFormer's ActivityNet num_classes: 1)
    class_scores: str = ""  # class-score file to fuse with; "" = no fusion
    fusion_top_k: int = 2  # classes per video (ActionFormer's topk)

    def __post_init__(self):
        self.regression_ranges = tuple(tuple(float(x) for x in r) for r in self.regression_ranges)
        if len(self.regression_ranges) != self.num_levels:
            raise InputError(f"regression_ranges has {len(self.regression_ranges)} entries for "
                             f"num_levels={self.num_levels}; give one (low, high) per level")


def validate_localizer_config(config: LocalizerConfig) -> None:
    """``InputError`` naming the first parameter out of its valid range (CLI flag in brackets); runs
    before anything is read or written."""
    if not config.features_dir or not config.annotations or not config.out_dir:
        raise InputError("LocalizerConfig needs features_dir (--features), annotations (--annotations) "
                         "and out_dir (--out)")
    for name, flag in (("epochs", "--epochs"), ("batch_size", "--batch-size"), ("max_seq_len", None),
                       ("embed_dim", None), ("num_levels", None), ("pre_nms_topk", None)):
        value = getattr(config, name)
        check_parameter(f"{name} ({flag})" if flag else name, value, is_int(value) and value >= 1,
                        "an integer >= 1")
    if config.max_predictions is not None:
        check_parameter("max_predictions (--max-predictions)", config.max_predictions,
                        is_int(config.max_predictions) and config.max_predictions >= 1,
                        "an integer >= 1, or none for the preset's (ActivityNet 100, THUMOS14 200)")
    check_parameter("lr (--lr)", config.lr, _finite(config.lr) and config.lr > 0, "a number > 0")
    for name in ("weight_decay", "warmup_epochs", "dropout", "min_duration_s"):
        value = getattr(config, name)
        check_parameter(name, value, _finite(value) and value >= 0, "a number >= 0")
    if config.ase_weighting not in ASE_WEIGHTINGS:
        raise InputError(f"ase_weighting (--ase-weighting): {config.ase_weighting!r}; valid: "
                         f"{', '.join(ASE_WEIGHTINGS)}")
    pick_device(config.device)  # an unknown device or a missing GPU stops here, not after loading
    if config.metric_preset is not None and config.metric_preset not in PRESETS:
        raise InputError(f"metric_preset (--preset): {config.metric_preset!r} is not a preset; valid: "
                         f"{', '.join(PRESETS)}, or none to infer it from the annotation ids")


def _finite(value) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and bool(np.isfinite(value)))


def check_localizer_paths(config: LocalizerConfig) -> Path:
    """The run folder, after checking the inputs exist and the output can be written without
    touching them: ``--out`` may be neither the feature folder nor the annotation file."""
    from tsplab.features import feature_folder_list

    folders = feature_folder_list(config.features_dir, "features_dir (--features)")
    annotations = resolve(config.annotations)
    for features in folders:
        if not features.is_dir():
            raise FileNotFoundError(f"{features}: feature folder not found (--features)")
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations}: annotation file not found (--annotations)")
    out_dir = resolve(config.out_dir)
    for name, path in (*(("the feature folder (--features)", f) for f in folders),
                       ("the annotation file (--annotations)", annotations)):
        if out_dir == path:
            raise InputError(f"out_dir (--out): {out_dir} is {name}; give a separate run folder")
    return check_output_folder(out_dir, "out_dir (--out)")


def resolve_preset(config: LocalizerConfig, ann) -> LocalizerConfig:
    """``config`` with ``metric_preset`` (inferred from the annotation ids when ``None``; a wrong
    preset changes every average mAP silently) and ``max_predictions`` (the preset's when ``None``)
    filled in."""
    preset = config.metric_preset or infer_preset(ann.videos["video"], source=str(config.annotations))
    cap = config.max_predictions if config.max_predictions is not None else get_preset(preset).max_predictions
    return replace(config, metric_preset=preset, max_predictions=cap)
