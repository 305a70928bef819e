"""Training, prediction and evaluation of the localizer on a feature folder and ActivityNet-format
ground truth (ASL sec. 3.4 on ActionFormer's one-stage design).

Time axis: position ``x`` of a video's feature sequence is the centre of clip ``x``, i.e.
``t_s = x * stride_s + clip_length_s / 2`` (``FeatureMetadata.clip_centre_s``); ground truth in
seconds is mapped to positions with the inverse, and predictions back to seconds, clipped to the
video.

Multi-scale assignment (ActionFormer / FCOS): pyramid level ``l`` has stride ``2**l``; a position of
level ``l`` is a candidate for an action when it lies in the action's centre region (``radius x
stride`` around its centre, inside the action) and its largest distance to the action's boundaries
falls in the level's regression range; a position inside several candidates takes the shortest
action. Regression targets are the distances to start and end in units of the level's stride.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tsplab.annotations import normalize_video_id
from tsplab.errors import InputError
from tsplab.features import FeatureMetadata, check_parameter, feature_files, pick_device
from tsplab.localizer.asl import ClassSensitivity, ascl_loss, batched_sensitive_features
from tsplab.localizer.losses import diou_loss_1d, segment_tiou, sigmoid_focal_loss
from tsplab.localizer.model import LocalizerNet
from tsplab.localizer.nms import batched_soft_nms
from tsplab.runs import atomic_path, check_output_folder, resolve, save_config, write_json


CHECKPOINT_FILE = "checkpoint.pt"
PREDICTIONS_FILE = "predictions.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
SKIPPED_FILE = "skipped.csv"

# Detections kept per video when max_predictions is not given: ActionFormer's and ASL's test
# settings (ASL sec. 4.2): 100 on ActivityNet, 200 on THUMOS14; the synthetic benchmark is
# ActivityNet-like.
PRESET_MAX_PREDICTIONS = {"activitynet": 100, "thumos14": 200, "synthetic": 100}


@dataclass
class LocalizerConfig:
    """One localizer run. Defaults suit the synthetic benchmark's short sequences (T ~ 30-60
    positions, actions 4-46 positions); for real datasets follow ActionFormer/ASL: ActivityNet
    ``embed_dim=256, num_levels=6, num_stem_blocks=2, epochs=15, batch_size=16, lr=1e-3,
    max_predictions=100``; THUMOS14 ``embed_dim=512, num_levels=6, epochs=30, batch_size=2,
    lr=1e-4, max_seq_len=2304, max_predictions=200``, with ranges ``(0,4),(4,8),...,(64,10000)``.
    ``ase_class``, ``ase_instance``, ``ascl`` all off = the plain ActionFormer-style baseline
    (ASL Table 5's first row).

    ``metric_preset`` ``None`` follows the dataset (``tsplab.metrics.infer_preset`` on the
    annotation ids; ids of no known dataset stop the run asking for it), and ``max_predictions``
    ``None`` follows the preset (``PRESET_MAX_PREDICTIONS``); the saved ``config.json`` holds the
    values used."""

    features_dir: str = ""
    annotations: str = ""
    out_dir: str = ""
    train_subset: str = "training"
    valid_subset: str = "validation"
    metric_preset: str | None = None  # activitynet | thumos14 | synthetic; None: from the ids
    # ASL switches (Table 5)
    ase_class: bool = True
    ase_instance: bool = True
    ascl: bool = True
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
    max_predictions: int | None = None  # per video; None: the preset's (PRESET_MAX_PREDICTIONS)

    def __post_init__(self):
        self.regression_ranges = tuple(tuple(float(x) for x in r) for r in self.regression_ranges)
        if len(self.regression_ranges) != self.num_levels:
            raise InputError(f"regression_ranges has {len(self.regression_ranges)} entries for "
                             f"num_levels={self.num_levels}; give one (low, high) per level")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def validate_localizer_config(config: LocalizerConfig) -> None:
    """``InputError`` naming the first parameter out of its valid range (CLI flag in brackets); runs
    before anything is read or written."""
    from tsplab.metrics import PRESETS

    if not config.features_dir or not config.annotations or not config.out_dir:
        raise InputError("LocalizerConfig needs features_dir (--features), annotations (--annotations) "
                         "and out_dir (--out)")
    for name, flag in (("epochs", "--epochs"), ("batch_size", "--batch-size"), ("max_seq_len", None),
                       ("embed_dim", None), ("num_levels", None), ("pre_nms_topk", None)):
        value = getattr(config, name)
        check_parameter(f"{name} ({flag})" if flag else name, value, _is_int(value) and value >= 1,
                        "an integer >= 1")
    if config.max_predictions is not None:
        check_parameter("max_predictions (--max-predictions)", config.max_predictions,
                        _is_int(config.max_predictions) and config.max_predictions >= 1,
                        "an integer >= 1, or none for the preset's (ActivityNet 100, THUMOS14 200)")
    check_parameter("lr (--lr)", config.lr, _finite(config.lr) and config.lr > 0, "a number > 0")
    for name in ("weight_decay", "warmup_epochs", "dropout", "min_duration_s"):
        value = getattr(config, name)
        check_parameter(name, value, _finite(value) and value >= 0, "a number >= 0")
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
    features, annotations = resolve(config.features_dir), resolve(config.annotations)
    if not features.is_dir():
        raise FileNotFoundError(f"{features}: feature folder not found (--features)")
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations}: annotation file not found (--annotations)")
    out_dir = resolve(config.out_dir)
    for name, path in (("the feature folder (--features)", features),
                       ("the annotation file (--annotations)", annotations)):
        if out_dir == path:
            raise InputError(f"out_dir (--out): {out_dir} is {name}; give a separate run folder")
    return check_output_folder(out_dir, "out_dir (--out)")


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------

@dataclass
class VideoItem:
    """One video: features ``[T, C]``, actions ``segments`` ``[N, 2]`` in positions, ``labels`` [N]."""

    video: str
    features: np.ndarray
    segments: np.ndarray
    labels: np.ndarray
    duration_s: float


def seconds_to_positions(t_s, meta: FeatureMetadata) -> np.ndarray:
    """Seconds -> feature positions (position i = centre of clip i)."""
    return (np.asarray(t_s, dtype=np.float64) - 0.5 * meta.clip_length_s) / meta.stride_s


def positions_to_seconds(x, meta: FeatureMetadata) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) * meta.stride_s + 0.5 * meta.clip_length_s


def load_video_items(features_dir, annotations, subset: str, labels: list[str]
                     ) -> tuple[list[VideoItem], pd.DataFrame]:
    """The videos of ``subset`` that have features, and a table ``video, reason`` of those skipped
    (no feature file, unreadable file, wrong shape). ``annotations``: a ``tsplab.annotations.
    Annotations``. Instances whose label is not in ``labels`` are dropped with a warning.

    Annotation ids are matched to feature files by ``tsplab.features.feature_files`` (the one id
    rule): ``v_<id>.npy`` (ActivityNet's file names, what ``tsplab extract`` writes) and ``<id>.npy``
    both serve video ``<id>``."""
    folder = resolve(features_dir)
    meta = FeatureMetadata.load(folder)
    files = feature_files(folder)
    videos = annotations.videos[annotations.videos["subset"] == subset]
    if videos.empty:
        raise InputError(f"annotations: no videos in subset {subset!r} (subsets: {annotations.subsets})")
    by_video = dict(tuple(annotations.instances.groupby("video")))
    index = {name: i for i, name in enumerate(labels)}
    items, skipped = [], []
    for row in videos.itertuples(index=False):
        path = files.get(normalize_video_id(row.video))
        if path is None:
            skipped.append((row.video, f"no feature file for {row.video} in {folder} "
                                       f"({_file_names(row.video)})"))
            continue
        try:
            feats = np.load(path)
        except (OSError, ValueError) as exc:
            skipped.append((row.video, f"unreadable features: {exc}"))
            continue
        if feats.ndim != 2 or len(feats) == 0 or feats.shape[1] != meta.feature_dim:
            skipped.append((row.video, f"features of shape {feats.shape}, "
                                       f"expected [T>0, {meta.feature_dim}]"))
            continue
        inst = by_video.get(row.video)
        if inst is None or inst.empty:
            segs, labs = np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
        else:
            known = inst["label"].astype(str).isin(index)
            if not known.all():
                warnings.warn(f"{row.video}: dropped {int((~known).sum())} instance(s) with labels outside "
                              f"the label mapping", stacklevel=2)
            inst = inst[known & (inst["t_end_s"] > inst["t_start_s"])]
            segs = np.stack([seconds_to_positions(inst["t_start_s"].to_numpy(), meta),
                             seconds_to_positions(inst["t_end_s"].to_numpy(), meta)], axis=1)
            labs = inst["label"].astype(str).map(index).to_numpy(dtype=np.int64)
        duration = float(row.duration_s) if np.isfinite(row.duration_s) else float(
            positions_to_seconds(len(feats) - 1, meta) + 0.5 * meta.clip_length_s)
        items.append(VideoItem(row.video, feats.astype(np.float32), segs.reshape(-1, 2), labs, duration))
    return items, pd.DataFrame(skipped, columns=["video", "reason"])


def _file_names(video: str) -> str:
    """The feature file names that serve ``video`` under the id rule."""
    if normalize_video_id(f"v_{video}") == video:
        return f"{video}.npy or v_{video}.npy"
    return f"{video}.npy"


def crop_item(item: VideoItem, max_len: int, rng: np.random.Generator) -> VideoItem:
    """A random window of ``max_len`` positions (training only, ActionFormer's truncation); actions
    are clipped to the window and dropped when less than one position of them is left."""
    t = len(item.features)
    if t <= max_len:
        return item
    start = int(rng.integers(0, t - max_len + 1))
    segs = np.clip(item.segments - start, 0, max_len - 1)
    keep = segs[:, 1] - segs[:, 0] >= 1
    return VideoItem(item.video, item.features[start:start + max_len], segs[keep], item.labels[keep],
                     item.duration_s)


def collate(items: list[VideoItem], multiple: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the batch's longest sequence rounded up to ``multiple`` (so every pyramid level
    divides evenly): features ``[B, C, T]`` and mask ``[B, T]``."""
    t = max(len(i.features) for i in items)
    t = int(math.ceil(t / multiple) * multiple)
    c = items[0].features.shape[1]
    feats = torch.zeros(len(items), c, t)
    mask = torch.zeros(len(items), t, dtype=torch.bool)
    for b, item in enumerate(items):
        feats[b, :, :len(item.features)] = torch.from_numpy(item.features).T
        mask[b, :len(item.features)] = True
    return feats, mask


# ------------------------------------------------------------------------------------------------
# Points and targets
# ------------------------------------------------------------------------------------------------

def level_points(length: int, num_levels: int, regression_ranges) -> tuple[torch.Tensor, ...]:
    """Positions of every pyramid level for a padded length, concatenated over levels.

    Returns ``points [P]`` (in level-0 positions), ``strides [P]``, ``ranges [P, 2]``,
    ``levels [P]``. Level ``l`` max-pools windows of ``2**l`` positions, so its position ``i`` sits at
    the window's centre ``i * 2**l + (2**l - 1) / 2``."""
    pts, strides, ranges, levels = [], [], [], []
    for level in range(num_levels):
        s = 2 ** level
        n = int(math.ceil(length / s))
        pts.append(torch.arange(n, dtype=torch.float32) * s + 0.5 * (s - 1))
        strides.append(torch.full((n,), float(s)))
        ranges.append(torch.tensor(regression_ranges[level], dtype=torch.float32).expand(n, 2))
        levels.append(torch.full((n,), level, dtype=torch.long))
    return torch.cat(pts), torch.cat(strides), torch.cat(ranges), torch.cat(levels)


def assign_targets(segments: torch.Tensor, labels: torch.Tensor, points: torch.Tensor,
                   strides: torch.Tensor, ranges: torch.Tensor, num_classes: int,
                   radius: float = 1.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets of one video: ``cls [P, K]`` (one-hot, zeros = background), ``reg [P, 2]``
    (distances to start and end / stride) and ``gt_index [P]`` (the assigned action, -1 = none).
    ``segments`` ``[N, 2]`` in positions, ``labels`` ``[N]``."""
    p = len(points)
    cls = torch.zeros(p, num_classes)
    reg = torch.zeros(p, 2)
    gt_index = torch.full((p,), -1, dtype=torch.long)
    if len(segments) == 0:
        return cls, reg, gt_index
    start, end = segments[None, :, 0], segments[None, :, 1]  # [1, N]
    pt = points[:, None]
    left, right = pt - start, end - pt  # [P, N]
    centre = 0.5 * (start + end)
    r = radius * strides[:, None]
    c_left = torch.maximum(centre - r, start)
    c_right = torch.minimum(centre + r, end)
    in_centre = (pt - c_left >= 0) & (c_right - pt >= 0)
    max_dist = torch.maximum(left, right)
    in_range = (max_dist >= ranges[:, :1]) & (max_dist <= ranges[:, 1:])
    length = (end - start).expand(p, -1).clone()
    length[~(in_centre & in_range)] = float("inf")
    best_len, best = length.min(dim=1)  # a position inside several actions takes the shortest
    pos = torch.isfinite(best_len)
    gt_index[pos] = best[pos]
    cls[pos, labels[best[pos]]] = 1.0
    reg[pos] = torch.stack([left[pos, best[pos]], right[pos, best[pos]]], dim=1) / strides[pos, None]
    return cls, reg, gt_index


# ------------------------------------------------------------------------------------------------
# The model with its losses
# ------------------------------------------------------------------------------------------------

class Localizer(torch.nn.Module):
    """``LocalizerNet`` plus the ASL class-level sensitivity; ``losses(items)`` computes eq. (15)."""

    def __init__(self, config: LocalizerConfig, input_dim: int, num_classes: int):
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        self.net = LocalizerNet(input_dim, num_classes, config.embed_dim, config.num_levels,
                                config.num_stem_blocks, config.num_heads, config.theta,
                                config.head_layers, config.dropout)
        self.sensitivity = ClassSensitivity(num_classes)
        # With ASE's class level off, ASCL still needs sensitive frames: it then uses the Gaussians
        # at their initial values, frozen (our choice; the paper always runs ASCL with ASE).
        self.fixed_sensitivity = ClassSensitivity(num_classes).requires_grad_(False)

    @property
    def multiple(self) -> int:
        return 2 ** (self.config.num_levels - 1)

    def forward(self, features, mask):
        return self.net(features, mask)

    def losses(self, items: list[VideoItem]) -> dict:
        """The loss terms of one batch: ``cls`` (eq. 9), ``reg`` (eq. 10), ``sens`` (eq. 7, both
        evaluators), ``ascl`` (eq. 14, already x λ) and ``loss`` (their sum, eq. 15)."""
        cfg = self.config
        device = next(self.parameters()).device
        feats, mask = collate(items, self.multiple)
        out = self.net(feats.to(device), mask.to(device))
        points, strides, ranges, _ = (x.to(device) for x in level_points(
            feats.shape[-1], cfg.num_levels, cfg.regression_ranges))
        logits = torch.cat(out["cls_logits"], dim=1)  # [B, P, K]
        offsets = torch.cat(out["offsets"], dim=1)  # [B, P, 2]
        valid = torch.cat(out["masks"], dim=1)  # [B, P]
        q_cls, q_loc = torch.cat(out["q_cls"], dim=1), torch.cat(out["q_loc"], dim=1)
        targets = [assign_targets(torch.as_tensor(i.segments, dtype=torch.float32, device=device),
                                  torch.tensor(np.asarray(i.labels), dtype=torch.long, device=device),
                                  points, strides, ranges, self.num_classes, cfg.center_sample_radius)
                   for i in items]
        cls_t = torch.stack([t[0] for t in targets])
        reg_t = torch.stack([t[1] for t in targets])
        gt_idx = torch.stack([t[2] for t in targets])
        pos = (gt_idx >= 0) & valid
        num_pos = max(int(pos.sum()), 1)

        focal = sigmoid_focal_loss(logits, cls_t).sum(dim=-1)  # [B, P]
        diou = diou_loss_1d(offsets[pos], reg_t[pos])  # [N_pos]
        # ASE weights of the positive positions (eq. 8): class-level p and instance-level q.
        b_idx, p_idx = pos.nonzero(as_tuple=True)
        gi = gt_idx[pos]
        seg = torch.stack([torch.as_tensor(items[b].segments[g], dtype=torch.float32)
                           for b, g in zip(b_idx.tolist(), gi.tolist())]).to(device) if len(gi) else \
            torch.zeros(0, 2, device=device)
        lab = torch.tensor([int(items[b].labels[g]) for b, g in zip(b_idx.tolist(), gi.tolist())],
                           dtype=torch.long, device=device)
        d = ((points[p_idx] - seg.mean(dim=1)) / (seg[:, 1] - seg[:, 0]).clamp(min=1e-6)).clamp(-0.5, 0.5)
        h_cls = torch.zeros_like(d)
        h_loc = torch.zeros_like(d)
        if cfg.ase_class:
            h_cls = h_cls + self.sensitivity.p_cls(d, lab)
            h_loc = h_loc + self.sensitivity.p_loc(d, lab)
        if cfg.ase_instance:
            # q is trained by its own MSE (eq. 7) only: detached here, else the detector could lower
            # its losses by predicting small q.
            h_cls = h_cls + q_cls[pos].detach()
            h_loc = h_loc + q_loc[pos].detach()
        if cfg.ase_class or cfg.ase_instance:
            # Normalised to mean 1 over the batch's positives (our choice; the paper gives no scale):
            # the weights redistribute attention among frames without changing the loss's
            # magnitude, so λ and the learning rate keep their meaning across the ablation rows.
            w_cls = h_cls / h_cls.mean().clamp(min=1e-6)
            w_loc = h_loc / h_loc.mean().clamp(min=1e-6)
        else:
            w_cls = w_loc = torch.ones_like(d)
        bg = valid & ~pos
        loss_cls = ((focal[pos] * w_cls).sum() + focal[bg].sum()) / num_pos  # eq. (9)
        loss_reg = (diou * w_loc).sum() / num_pos  # eq. (10)
        zero = logits.sum() * 0.0
        loss_sens = zero
        if cfg.ase_instance and len(gi):
            quality_cls = torch.sigmoid(logits[pos].gather(1, lab[:, None]))[:, 0].detach()  # eq. (6)
            quality_loc = segment_tiou(offsets[pos], reg_t[pos]).detach()
            loss_sens = F.mse_loss(q_cls[pos], quality_cls) + F.mse_loss(q_loc[pos], quality_loc)  # eq. (7)
        loss_ascl = zero
        if cfg.ascl:
            loss_ascl = cfg.ascl_weight * self._ascl(items, out["features"][0], out["masks"][0])
        total = loss_cls + loss_reg + loss_sens + loss_ascl  # eq. (15)
        return dict(loss=total, cls=loss_cls, reg=loss_reg, sens=loss_sens, ascl=loss_ascl,
                    num_pos=num_pos)

    def _ascl(self, items, features, mask) -> torch.Tensor:
        """Eq. (14) on the finest pyramid level's features ``[B, D, T]``, all instances at once."""
        sens = self.sensitivity if self.config.ase_class else self.fixed_sensitivity
        video_index = torch.tensor([b for b, item in enumerate(items) for _ in item.labels], dtype=torch.long)
        if len(video_index) == 0:
            return features.sum() * 0.0
        device = features.device
        segments = torch.tensor(np.concatenate([item.segments for item in items]), dtype=features.dtype,
                                device=device)
        labels = torch.tensor(np.concatenate([item.labels for item in items]), dtype=torch.long,
                              device=device)
        f_cls, f_loc, f_bg, has_frames, has_bg = batched_sensitive_features(
            features, mask.sum(dim=1), video_index.to(device), segments, labels, sens,
            self.config.ascl_delta)
        actions = torch.cat([f_cls[has_frames], f_loc[has_frames]])
        action_labels = torch.cat([labels[has_frames], labels[has_frames]])
        return ascl_loss(actions, action_labels, f_bg[has_bg])


# ------------------------------------------------------------------------------------------------
# Inference
# ------------------------------------------------------------------------------------------------

def predict(model: Localizer, items: list[VideoItem], meta: FeatureMetadata, labels: list[str],
            progress: bool = False) -> pd.DataFrame:
    """Detections of every video: all pyramid levels, score threshold and top-k, per-class
    SoftNMS, then at most ``config.max_predictions`` per video. DataFrame(video, t_start_s, t_end_s,
    label, score), sorted by video then decreasing score."""
    with _threads(model.config.num_threads):
        return _predict(model, items, meta, labels, progress)


@torch.no_grad()
def _predict(model, items, meta, labels, progress) -> pd.DataFrame:
    cfg = model.config
    device = next(model.parameters()).device
    model.eval()
    frames = []
    for item in tqdm(items, desc="predict", leave=False, disable=not progress):
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
        seg, score, lab = batched_soft_nms(np.stack([t0[ok], t1[ok]], axis=1), flat[keep].numpy()[ok],
                                           ci.numpy()[ok], sigma=cfg.nms_sigma,
                                           min_score=cfg.pre_nms_threshold,
                                           max_keep=_max_predictions(cfg))
        frames.append(pd.DataFrame(dict(video=item.video, t_start_s=seg[:, 0], t_end_s=seg[:, 1],
                                        label=[labels[int(c)] for c in lab], score=score)))
    columns = ["video", "t_start_s", "t_end_s", "label", "score"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------

def _max_predictions(config: LocalizerConfig) -> int:
    """The per-video cap: the config's, else its preset's (training stores the value it used)."""
    if config.max_predictions is not None:
        return int(config.max_predictions)
    return PRESET_MAX_PREDICTIONS.get(config.metric_preset or "activitynet", 100)


@dataclass
class LocalizerResult:
    """What ``train_localizer`` made; every file is in ``out_dir``."""

    model: Localizer
    history: pd.DataFrame  # per epoch: epoch, lr, loss, cls, reg, sens, ascl
    predictions: pd.DataFrame  # video, t_start_s, t_end_s, label, score
    detection: object  # tsplab.metrics.DetectionResult
    out_dir: Path
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["video", "subset", "reason"]))

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_FILE

    @property
    def predictions_path(self) -> Path:
        return self.out_dir / PREDICTIONS_FILE


def _lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up then cosine decay to 0 (ActionFormer's schedule)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@contextlib.contextmanager
def _threads(num_threads: int | None):
    before = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_localizer(config: LocalizerConfig, progress: bool = True) -> LocalizerResult:
    """Train on ``config.train_subset``, predict ``config.valid_subset``, evaluate with tsplab's
    metrics. Writes into ``config.out_dir``: ``config.json``, ``checkpoint.pt`` (model state, config,
    labels, feature metadata), ``history.csv``, ``predictions.json`` (ActivityNet format),
    ``metrics.json`` and ``skipped.csv`` (videos without usable features)."""
    with _threads(config.num_threads):
        return _train_localizer(config, progress)


def resolve_preset(config: LocalizerConfig, ann) -> LocalizerConfig:
    """``config`` with ``metric_preset`` (inferred from the annotation ids when ``None``; a wrong
    preset changes every average mAP silently) and ``max_predictions`` (the preset's when ``None``)
    filled in."""
    from dataclasses import replace

    from tsplab.metrics import infer_preset

    preset = config.metric_preset or infer_preset(ann.videos["video"], source=str(config.annotations))
    cap = config.max_predictions if config.max_predictions is not None else PRESET_MAX_PREDICTIONS[preset]
    return replace(config, metric_preset=preset, max_predictions=cap)


def _load_data(config: LocalizerConfig, out_dir: Path):
    """(config with the preset resolved, feature metadata, annotations, labels, training items,
    validation items, skipped table). Reads only; raises ``InputError`` when no training video has
    features, naming where the files were looked for."""
    from tsplab.annotations import read_annotations

    meta = FeatureMetadata.load(resolve(config.features_dir))
    ann = read_annotations(resolve(config.annotations))
    config = resolve_preset(config, ann)
    labels = list(ann.labels)
    train_items, skipped_train = load_video_items(config.features_dir, ann, config.train_subset, labels)
    valid_items, skipped_valid = load_video_items(config.features_dir, ann, config.valid_subset, labels)
    skipped = pd.concat([skipped_train.assign(subset=config.train_subset),
                         skipped_valid.assign(subset=config.valid_subset)], ignore_index=True
                        )[["video", "subset", "reason"]]
    if not train_items:
        example = skipped_train["reason"].iloc[0] if len(skipped_train) else "no videos"
        raise InputError(f"{config.features_dir}: none of the {len(skipped_train)} {config.train_subset} "
                         f"videos of {config.annotations} has usable features (e.g. {example})")
    if len(skipped):
        warnings.warn(f"{config.features_dir}: skipped {len(skipped)} video(s) without usable features "
                      f"(listed in {out_dir / SKIPPED_FILE})", stacklevel=3)
    return config, meta, ann, labels, train_items, valid_items, skipped


def _train_localizer(config: LocalizerConfig, progress: bool) -> LocalizerResult:
    from tsplab.metrics import evaluate_detection, write_predictions

    # Every input is read and checked before the run folder is touched, and the run's files are
    # written only once training has finished: a failed run leaves an earlier run's files as they were.
    validate_localizer_config(config)
    out_dir = check_localizer_paths(config)
    config, meta, ann, labels, train_items, valid_items, skipped = _load_data(config, out_dir)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    device = pick_device(config.device)
    model = Localizer(config, meta.feature_dim, len(labels)).to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_items) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = max(1, steps_per_epoch * config.warmup_epochs)
    step, rows = 0, []
    for epoch in tqdm(range(config.epochs), desc="localizer", leave=False, disable=not progress):
        model.train()
        order = rng.permutation(len(train_items))
        sums = dict(loss=0.0, cls=0.0, reg=0.0, sens=0.0, ascl=0.0)
        for i in range(0, len(order), config.batch_size):
            batch = [crop_item(train_items[j], config.max_seq_len, rng)
                     for j in order[i:i + config.batch_size]]
            lr = config.lr * _lr_factor(step, warmup_steps, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            terms = model.losses(batch)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # ActionFormer clips at 1.0
            optimizer.step()
            step += 1
            for k in sums:
                sums[k] += float(terms[k].detach()) / steps_per_epoch
        rows.append(dict(epoch=epoch + 1, lr=lr, **sums))
    history = pd.DataFrame(rows, columns=["epoch", "lr", "loss", "cls", "reg", "sens", "ascl"])
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir)
    with atomic_path(out_dir / SKIPPED_FILE) as tmp:
        skipped.to_csv(tmp, index=False)
    with atomic_path(out_dir / HISTORY_FILE) as tmp:
        history.to_csv(tmp, index=False)
    with atomic_path(out_dir / CHECKPOINT_FILE) as tmp:
        torch.save(dict(model=model.state_dict(), config=asdict(config), labels=labels,
                        metadata=asdict(meta), input_dim=meta.feature_dim), tmp)

    predictions = _predict(model, valid_items, meta, labels, progress)
    write_predictions(predictions, out_dir / PREDICTIONS_FILE)
    ground_truth = ann.instances[ann.instances["subset"] == config.valid_subset]
    detection = evaluate_detection(ground_truth, predictions, config.metric_preset)
    write_json(out_dir / METRICS_FILE, detection.to_dict())
    return LocalizerResult(model=model, history=history, predictions=predictions, detection=detection,
                           out_dir=out_dir, skipped=skipped)


def load_localizer(checkpoint, device="cpu", *,
                   trust_pickle: bool = False) -> tuple[Localizer, list[str], FeatureMetadata]:
    """A trained localizer from ``checkpoint.pt`` (or its run folder): (model in eval mode, labels,
    the feature metadata it was trained on).

    Read with torch's safe loader (``tsplab.backbones.load_checkpoint_file``): the file holds plain
    types only (state dict, config and metadata dicts, label list); ``trust_pickle=True`` unpickles
    a file that holds other objects in full, running any code it carries."""
    from tsplab.backbones import load_checkpoint_file

    path = resolve(checkpoint)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no localizer checkpoint")
    state = load_checkpoint_file(path, trust_pickle=trust_pickle)
    config = LocalizerConfig(**state["config"])
    model = Localizer(config, state["input_dim"], len(state["labels"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), list(state["labels"]), FeatureMetadata(**state["metadata"])


def read_history(run_dir) -> pd.DataFrame:
    """``history.csv`` of a localizer run folder."""
    path = resolve(run_dir) / HISTORY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no localizer history")
    return pd.read_csv(path)
