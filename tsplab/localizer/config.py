"""The localizer run's configuration (``LocalizerConfig``), its checks (every parameter, the input
paths, the run folder) before anything is read or written, and the metric preset and prediction cap
that follow the dataset (``tsplab.datasets.presets``) unless given.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from tsplab.config import check_config, setting
from tsplab.errors import InputError
from tsplab.features.encoding import pick_device
from tsplab.localizer.asl import ASE_WEIGHTINGS
from tsplab.localizer.heads import HEADS
from tsplab.datasets.presets import PRESETS, get_preset, infer_preset
from tsplab.runs import check_output_folder, resolve

# --preset's help: each preset's tIoU thresholds and predictions kept per video.
_PRESET_HELP = ("dataset preset, for the tIoU thresholds and the predictions kept per video ("
                + "; ".join(f"{d.name} {d.tiou_thresholds[0]:g}:{d.tiou_thresholds[-1]:g}, {d.max_predictions}"
                            for d in PRESETS.values())
                + "); default: told from the annotation's video ids")


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
    features_dir: str | list = setting("", required=True, flag="--features", repeat=True,
                                       help="feature folder (one [T, C] .npy per video + metadata.json); "
                                            "repeat it to join several folders of the same videos and clip "
                                            "grid per clip, e.g. --features TAC --features BSP (BSP's "
                                            "two-stream features, concatenated along channels)")
    annotations: str = setting("", required=True, flag=True,
                               help="ground truth (ActivityNet JSON or any format tsplab reads) with "
                                    "training and validation subsets")
    out_dir: str = setting("", required=True, flag="--out",
                           help="run folder: config, checkpoint, history, predictions.json")
    train_subset: str = setting("training", flag=True)
    valid_subset: str = setting("validation", flag=True)
    # activitynet | thumos14 | synthetic; None: from the ids
    metric_preset: str | None = setting(None, choices=PRESETS, flag="--preset", help=_PRESET_HELP,
                                        none="inferred from the annotation ids")
    # ASL switches (Table 5)
    ase_class: bool = setting(True, flag="--no-ase-class", help="ASE class-level Gaussians (ASL Table 5)")
    ase_instance: bool = setting(True, flag="--no-ase-instance",
                                 help="ASE instance-level evaluators (ASL Table 5)")
    ascl: bool = setting(True, flag="--no-ascl", help="ASCL loss (ASL Table 5)")
    # eq. (8)'s weights as written ("paper"), or q detached and h rescaled to mean 1 ("stabilised")
    ase_weighting: str = setting("paper", choices=ASE_WEIGHTINGS, flag=True,
                                 help="paper: eq. (8)'s weights as written; stabilised: q detached, "
                                      "weights rescaled to mean 1")
    ascl_weight: float = 0.3  # λ, ASL sec. 4.2
    ascl_delta: float = 0.2  # δ, the sensitive/background range ratio (eqs. 12-13)
    theta: float = 0.2  # θ, temporal/channel attention mix (ASL sec. 3.1, 4.2)
    # network
    embed_dim: int = setting(64, rule=">0")
    num_levels: int = setting(4, rule=">0")
    num_stem_blocks: int = 1
    num_heads: int = 4
    # the classification and regression head (tsplab.localizer.heads.HEADS)
    head: str = setting("actionformer", choices=lambda: HEADS, flag=True,
                        help="classification and regression head, a name in tsplab.localizer.heads")
    head_layers: int = 3  # ActionFormer's; 2 learned far worse on the synthetic benchmark
    dropout: float = setting(0.0, rule=">=0")
    regression_ranges: tuple = ((0, 4), (4, 8), (8, 16), (16, 10000))
    center_sample_radius: float = 1.5  # ActionFormer's value
    max_seq_len: int = setting(256, rule=">0")  # longer training sequences are cropped at random (positions)
    # optimisation (AdamW + linear warm-up + cosine, ActionFormer's schedule)
    epochs: int = setting(15, rule=">0", flag=True)
    batch_size: int = setting(16, rule=">0", flag=True)
    lr: float = setting(1e-3, rule=">0", flag=True)
    weight_decay: float = setting(0.05, rule=">=0")
    warmup_epochs: float = setting(2, rule=">=0")
    seed: int = setting(0, flag=True)
    device: str = setting("cpu", flag=True)
    # CPU threads while training/predicting (restored afterwards). The sequences are short, so
    # intra-op parallelism costs more than it gains (README, "The localizer"). None = leave torch's
    # setting.
    num_threads: int | None = 1
    # inference (ActionFormer's post-processing)
    pre_nms_threshold: float = 1e-3
    pre_nms_topk: int = setting(2000, rule=">0")
    nms_sigma: float = 0.5
    min_duration_s: float = setting(0.05, rule=">=0")
    # per video; None: the preset's (tsplab.datasets.presets)
    max_predictions: int | None = setting(None, rule=">0", flag=True,
                                          none="the preset's, ActivityNet 100, THUMOS14 200",
                                          help="cap per video (default: the preset's, ActivityNet 100, "
                                               "THUMOS14 200)")
    # ActivityNet's reporting protocol (ActionFormer's configs, ASL sec. 4.3; tsplab.localizer.fusion):
    # train one class "action", then label and rescore the validation segments with the top-k classes
    # of an external video-level class-score file (CUHK's) before evaluating.
    # every label -> "action" (ActionFormer's ActivityNet num_classes: 1)
    class_agnostic: bool = setting(False, flag=True,
                                   help="train one class, 'action' (ActionFormer on ActivityNet; the classes "
                                        "then come from --class-scores, else the evaluation is "
                                        "class-agnostic too)")
    class_scores: str = setting("", flag=True,
                                help="external video-level class-score file (CUHK's cuhk_val_simp_share.json "
                                     "layout) to fuse the validation predictions with before evaluating, as "
                                     "ActionFormer and ASL report ActivityNet (see tsplab fuse); default: "
                                     "no fusion")
    fusion_top_k: int = setting(2, rule=">0", flag=True,
                                help="classes per video in the fusion (ActionFormer's topk)")

    def __post_init__(self):
        self.regression_ranges = tuple(tuple(float(x) for x in r) for r in self.regression_ranges)
        if len(self.regression_ranges) != self.num_levels:
            raise InputError(f"regression_ranges has {len(self.regression_ranges)} entries for "
                             f"num_levels={self.num_levels}; give one (low, high) per level")


def validate_localizer_config(config: LocalizerConfig) -> None:
    """``InputError`` naming the first field out of its valid range (by its declaration,
    ``tsplab.config``), or a device this machine lacks; runs before anything is read or written."""
    check_config(config)
    pick_device(config.device)  # an unknown device or a missing GPU stops here, not after loading


def check_localizer_paths(config: LocalizerConfig) -> Path:
    """The run folder, after checking the inputs exist and the output can be written without
    touching them: ``out_dir`` may be neither the feature folder nor the annotation file."""
    from tsplab.features import feature_folder_list

    folders = feature_folder_list(config.features_dir, "features_dir")
    annotations = resolve(config.annotations)
    for features in folders:
        if not features.is_dir():
            raise FileNotFoundError(f"{features}: feature folder not found (features_dir)")
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations}: annotation file not found (annotations)")
    out_dir = resolve(config.out_dir)
    for name, path in (*(("the feature folder (features_dir)", f) for f in folders),
                       ("the annotation file (annotations)", annotations)):
        if out_dir == path:
            raise InputError(f"out_dir: {out_dir} is {name}; give a separate run folder")
    return check_output_folder(out_dir, "out_dir")


def resolve_preset(config: LocalizerConfig, ann) -> LocalizerConfig:
    """``config`` with ``metric_preset`` (inferred from the annotation ids when ``None``; a wrong
    preset changes every average mAP silently) and ``max_predictions`` (the preset's when ``None``)
    filled in."""
    preset = config.metric_preset or infer_preset(ann.videos["video"], source=str(config.annotations))
    cap = config.max_predictions if config.max_predictions is not None else get_preset(preset).max_predictions
    return replace(config, metric_preset=preset, max_predictions=cap)
