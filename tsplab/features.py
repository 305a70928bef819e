"""Clip features on disk: one float32 ``[T, C]`` array per video and a ``metadata.json`` per folder.

The clip grid follows TSP's: feature ``i`` covers the clip that starts at
``i * stride_frames / frame_rate`` seconds and spans ``clip_length_frames / frame_rate`` seconds, where
``frame_rate`` is the rate clips are sampled at (TSP: 16 frames at 15 fps, stride 16).

This module also makes and transforms features:

- ``encode_frames``: the clip windows of an in-memory frame array through a backbone (pretraining's
  GVFs use it); ``extract_features``: videos on disk -> a feature folder, each video decoded once by
  DataLoader workers while the model runs, sharded (torchrun ranks), resumable, and tolerant of
  broken videos (recorded in ``failures.csv``, skipped); ``tsplab extract`` runs it.
- ``pool_gvf`` / ``compute_gvf_file`` / ``read_gvf_h5`` / ``write_gvf_h5``: global video features
  (TSP sec. 3) in the h5 layout of TSP's released GVF files; ``tsplab gvf`` runs it.
- ``resample_features``: a feature sequence to a fixed length on the time axis (G-TAD, BMN).

Video ids meet file names in one place, ``feature_files`` (and ``by_video_id`` for h5 keys): feature
files keep the video file's stem (``v_<id>.npy`` for ActivityNet, the naming ActionFormer and OpenTAD
read), and every module that looks a video up (localizer, similarity, GVF files, pretraining) goes
through ``tsplab.annotations.normalize_video_id``, so ``v_<id>`` and ``<id>`` are one video.

Each feature folder also says how ActivityNet's localization toolboxes read it: ``toolboxes.json``
(ActionFormer's and OpenTAD's config values for this folder) and ``missing_files.txt`` (OpenTAD's
block list: the videos whose extraction failed, as annotation ids); see ``toolbox_config``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, IterableDataset

from tsplab.annotations import normalize_video_id
from tsplab.errors import InputError
from tsplab.runs import (atomic_path, atomic_write_text, check_output_file, check_output_folder, read_json,
                         resolve, write_json)
from tsplab.video import VideoError, iter_clip_windows, list_videos, num_clip_windows, probe_video

METADATA_FILE = "metadata.json"
log = logging.getLogger(__name__)


@dataclass
class FeatureMetadata:
    """What a localizer config needs to turn feature indices into seconds."""

    stride_frames: int
    clip_length_frames: int
    frame_rate: float
    feature_dim: int
    backbone: str = ""
    checkpoint: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def stride_s(self) -> float:
        return self.stride_frames / self.frame_rate

    @property
    def clip_length_s(self) -> float:
        return self.clip_length_frames / self.frame_rate

    def clip_start_s(self, num_clips: int) -> np.ndarray:
        """Start time [T] in seconds of each feature's clip."""
        return np.arange(num_clips) * self.stride_s

    def clip_centre_s(self, num_clips: int) -> np.ndarray:
        """Centre time [T] in seconds of each feature's clip (where a localizer anchors feature i)."""
        return self.clip_start_s(num_clips) + 0.5 * self.clip_length_s

    def save(self, folder) -> Path:
        return write_json(Path(folder) / METADATA_FILE, asdict(self))

    @classmethod
    def load(cls, folder) -> "FeatureMetadata":
        path = Path(folder) / METADATA_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no feature metadata; is {folder} a tsplab feature folder?")
        values = read_json(path)
        required = ("stride_frames", "clip_length_frames", "frame_rate", "feature_dim")
        known = required + ("backbone", "checkpoint", "extra")
        if not isinstance(values, dict) or not set(required) <= set(values) or not set(values) <= set(known):
            raise InputError(f"{path}: not tsplab feature metadata; expected a JSON object with "
                             f"{', '.join(required)} (and optionally backbone, checkpoint, extra)")
        return cls(**values)


def feature_path(folder, video: str) -> Path:
    """The feature file of the video whose file stem is ``video`` (``v_<id>`` for ActivityNet)."""
    return Path(folder) / f"{video}.npy"


def load_features(folder, video: str) -> np.ndarray:
    """The ``[T, C]`` float32 features of the video with file stem ``video`` in ``folder`` (to find a
    video by its annotation id, use ``feature_files``)."""
    path = feature_path(folder, video)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no features for video {video!r}")
    return np.load(path)


def list_feature_videos(folder) -> list[str]:
    """The file stems of the feature files in ``folder``, sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.npy"))


# --- Video ids: the one rule where ids meet files and h5 keys ----------------------------------------

def ids_to_keys(keys, source, suffix: str = "") -> dict[str, str]:
    """``{video id: key}`` for file stems or h5 keys ``keys``, the id being
    ``tsplab.annotations.normalize_video_id(key)`` (ActivityNet's ``v_<id>`` and ``<id>`` are one
    video). Two keys of one video raise ``InputError`` naming both (``source``: the folder or file
    they come from; ``suffix``: appended to each key in the message, e.g. ``.npy``)."""
    out: dict[str, str] = {}
    for key in keys:
        key = str(key)
        video = normalize_video_id(key)
        if video in out and out[video] != key:
            raise InputError(f"{source}: {out[video]}{suffix} and {key}{suffix} are the same video "
                             f"{video!r} (ids are compared with and without the v_ prefix); keep one")
        out[video] = key
    return out


def feature_files(folder) -> dict[str, Path]:
    """``{video id: feature file}`` of every ``*.npy`` in ``folder``, keyed by the normalised id of
    the file stem (``v_abcdefghijk.npy`` -> ``abcdefghijk``), the way annotations spell videos.
    Raises ``InputError`` when two files are one video (``v_x.npy`` beside ``x.npy``)."""
    folder = Path(folder)
    stems = ids_to_keys(list_feature_videos(folder), folder, ".npy")
    return {video: feature_path(folder, stem) for video, stem in stems.items()}


def by_video_id(arrays: dict, source) -> dict:
    """``arrays`` (e.g. a GVF file read by ``read_gvf_h5``) re-keyed by normalised video id; two keys
    of one video raise ``InputError``."""
    return {video: arrays[key] for video, key in ids_to_keys(arrays, source).items()}


def save_features(folder, video: str, features: np.ndarray) -> Path:
    """Write ``[T, C]`` features atomically (temporary name, then rename: a killed run never leaves a
    half file that looks finished)."""
    path = feature_path(folder, video)
    with atomic_path(path) as tmp:
        np.save(tmp, np.ascontiguousarray(features, dtype=np.float32))
    return path


# --- Output paths ----------------------------------------------------------------------------------

def check_parameter(name: str, value, ok: bool, valid: str) -> None:
    """``InputError`` ``"<name>: <value> is out of range; valid: <valid>"`` unless ``ok``."""
    if not ok:
        raise InputError(f"{name}: {value!r} is out of range; valid: {valid}")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_positive_number(value) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and bool(np.isfinite(value)) and value > 0)


# --- Encoding an in-memory frame array (shared with pretraining's GVF computation) -----------------

def clip_frame_indices(num_frames: int, clip_length_frames: int, stride_frames: int) -> np.ndarray:
    """Frame indices ``[T, L]`` of the clip windows over a video of ``num_frames`` frames (already at
    the clip frame rate).

    The grid of ``tsplab.video.iter_clip_windows``: window ``i`` starts at frame ``i * stride``,
    ``T = max(1, ceil((N - L) / stride) + 1)``, and frames past the end repeat the last frame. TSP's
    extractor drops the tail that does not fill a whole clip (and fails on videos shorter than one
    clip); padding keeps the end of every video covered, which localizers need for actions that run
    to the last frame.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    num_clips = num_clip_windows(num_frames, clip_length_frames, stride_frames)
    starts = np.arange(num_clips) * stride_frames
    return np.minimum(starts[:, None] + np.arange(clip_length_frames)[None, :], num_frames - 1)


def _autocast(device):
    """fp16 autocast on CUDA only (features are still returned as float32); a no-op elsewhere, since
    reduced precision on the CPU is far slower than float32, and a no-op when the caller already
    runs under an autocast of its own choosing (e.g. bf16 during pretraining)."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.is_autocast_enabled("cuda"):
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def encode_clips(backbone, clips, transform, device="cpu") -> np.ndarray:
    """Features ``[B, C]`` float32 of one batch of clips ``[B, L, H, W, 3]`` uint8 (numpy or tensor).

    The uint8 frames travel to ``device`` and are transformed there (``transform``: uint8
    ``[B, L, H, W, 3]`` -> float ``[B, 3, L, h, w]``, e.g. ``ClipTransform(train=False)``), so a GPU
    does the resizing and normalising too. The caller puts ``backbone`` on ``device`` in eval mode.
    """
    return _to_numpy(_forward_clips(backbone, clips, transform, device))


def _forward_clips(backbone, clips, transform, device) -> torch.Tensor:
    """``encode_clips`` without waiting for the result: features ``[B, C]`` still on ``device`` (on a
    GPU the kernels are queued and run while the caller goes on)."""
    clips = torch.as_tensor(clips)
    with torch.inference_mode(), _autocast(device):
        return backbone(transform(clips.to(device, non_blocking=True)))


def _to_numpy(features: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return features.float().cpu().numpy()


def encode_frames(backbone, frames: np.ndarray, clip_length_frames: int, stride_frames: int,
                  transform, batch_size: int = 64, device="cpu") -> np.ndarray:
    """Features ``[T, C]`` float32 of the clip windows over ``frames`` ``[N, H, W, 3]`` uint8.

    ``frames`` are already at the clip frame rate (e.g. a ``FrameCache`` array, memory-mapped is fine:
    only one batch of clips is gathered at a time). The windows are ``clip_frame_indices(N, L,
    stride)``, the same grid as ``tsplab.video.iter_clip_windows``. The backbone is moved to
    ``device`` and runs in eval mode (its train/eval mode is restored afterwards); gradients are off
    and AMP is used on CUDA only.
    """
    frames = np.asarray(frames) if not isinstance(frames, np.ndarray) else frames
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
    index = clip_frame_indices(len(frames), clip_length_frames, stride_frames)
    was_training = backbone.training
    backbone.eval().to(device)
    try:
        out = [encode_clips(backbone, frames[index[i:i + batch_size]], transform, device)
               for i in range(0, len(index), batch_size)]
    finally:
        backbone.train(was_training)
    return np.concatenate(out, axis=0)


# --- Global video features (GVF) ---------------------------------------------------------------------

def pool_gvf(features: np.ndarray, pooling: str = "max") -> np.ndarray:
    """The global video feature ``[C]`` of a video's clip features ``[T, C]``: max pooling over time,
    ``f_g = max_i E(X_i)`` (TSP sec. 3, "Local and global feature encoding"), or average pooling (the
    ablation of TSP supplementary A, Table 8, where max is better on every task)."""
    features = np.asarray(features)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"features must be [T, C] with T >= 1, got shape {features.shape}")
    if pooling == "max":
        return features.max(axis=0).astype(np.float32)
    if pooling == "avg":
        return features.mean(axis=0, dtype=np.float64).astype(np.float32)
    raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")


def write_gvf_h5(path, gvfs: dict) -> Path:
    """Write ``{video: [C] float32}`` to an h5 file with one dataset per video key, the layout of TSP's
    released GVF files (``f[video][:]`` is the vector). Atomic."""
    return _write_h5(path, gvfs, expect_ndim=1)


def read_gvf_h5(path, by_id: bool = False) -> dict:
    """``{video: [C] float32}`` from a GVF h5 file (ours or TSP's released ones), keyed as stored
    (the feature file stems, ``v_<id>`` for ActivityNet), or with ``by_id`` by normalised video id
    (``by_video_id``), the way annotations spell videos."""
    gvfs = _read_h5(path, expect_ndim=1)
    return by_video_id(gvfs, path) if by_id else gvfs


def _write_h5(path, arrays: dict, expect_ndim: int) -> Path:
    import h5py

    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for video, arr in arrays.items():
            arr = np.asarray(arr, dtype=np.float32)
            if arr.ndim != expect_ndim:
                raise ValueError(f"{path}: {video!r} must have {expect_ndim} dimension(s), "
                                 f"got shape {arr.shape}")
            f.create_dataset(str(video), data=arr)
    return path


def _read_h5(path, expect_ndim: int) -> dict:
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    out = {}
    with h5py.File(path, "r") as f:
        for video in f.keys():
            arr = np.asarray(f[video][()], dtype=np.float32)
            if arr.ndim != expect_ndim:
                raise ValueError(f"{path}: dataset {video!r} has shape {arr.shape}, expected "
                                 f"{expect_ndim} dimension(s)")
            out[video] = arr
    return out


def write_features_h5(path, features: dict) -> Path:
    """Write ``{video: [T, C] float32}`` to one h5 file keyed by video, the layout of TSP's released
    feature files (``f[video][:]`` is the ``[T, C]`` array). Atomic."""
    return _write_h5(path, features, expect_ndim=2)


def read_features_h5(path) -> dict:
    """``{video: [T, C] float32}`` from a feature h5 file (ours or TSP's released ones)."""
    return _read_h5(path, expect_ndim=2)


def compute_gvfs(feature_dir, pooling: str = "max") -> dict:
    """``{file stem: [C]}``: the pooled GVF of every video in a feature folder (keyed like TSP's
    released GVF files, by the video file's stem; two files of one video raise ``InputError``)."""
    feature_dir = Path(feature_dir)
    files = feature_files(feature_dir)
    if not files:
        raise FileNotFoundError(f"{feature_dir}: no feature files (*.npy)")
    return {path.stem: pool_gvf(np.load(path), pooling) for path in files.values()}


def compute_gvf_file(feature_dir, out_h5, pooling: str = "max") -> Path:
    """Pool every video of ``feature_dir`` into one GVF h5 file (``tsplab gvf``), the file TSP's
    pretraining reads its global video features from. Inputs and the output path are checked before
    anything is written; an existing file is replaced only once the new one is complete."""
    feature_dir, out_h5 = resolve(feature_dir), resolve(out_h5)
    if pooling not in ("max", "avg"):
        raise InputError(f"pooling: {pooling!r} is not a pooling; valid: max, avg")
    if not feature_dir.is_dir():
        raise FileNotFoundError(f"{feature_dir}: feature folder not found")
    check_output_file(out_h5, "--out")
    return write_gvf_h5(out_h5, compute_gvfs(feature_dir, pooling))


# --- Resampling on the time axis ---------------------------------------------------------------------

def resample_features(features: np.ndarray, length: int) -> np.ndarray:
    """``[T, C]`` -> ``[length, C]`` by linear interpolation along time only.

    G-TAD and BMN take a fixed number of temporal positions (100 on ActivityNet). Sample ``j`` lies at
    ``j * (T - 1) / (length - 1)`` on the original index axis, so the first and last features are kept
    exactly. Channels are never mixed (interpolating a ``[T, C]`` array as if it were ``[C, T]`` is
    the mistake of TSP issue #9).
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"features must be [T, C] with T >= 1, got shape {features.shape}")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    num = len(features)
    if num == 1 or length == 1:
        pos = np.zeros(length) if num == 1 else np.array([0.5 * (num - 1)])
    else:
        pos = np.linspace(0.0, num - 1, length)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, num - 1)
    w = (pos - lo)[:, None].astype(np.float32)
    return (1.0 - w) * features[lo] + w * features[hi]


# --- Extraction: videos -> feature folder ------------------------------------------------------------

FAILURES_FILE = "failures.csv"
VIDEOS_TABLE = "videos.csv"
TOOLBOXES_FILE = "toolboxes.json"  # ActionFormer's and OpenTAD's config values for the folder
MISSING_FILE = "missing_files.txt"  # OpenTAD's block list: videos without features, one id a line

# TSP's clip settings: 16 frames at 15 fps (16 frames with stride 2 at 30 fps, TSP sec. 4), short
# side 128, centre crop 112.
TSP_CLIP_SETTINGS = dict(clip_length_frames=16, frame_rate=15.0, short_side=128, crop_size=112)


@dataclass
class ExtractionConfig:
    """One extraction run. Clip settings left at ``None`` come from the checkpoint's saved config (our
    run folders carry it), else TSP's (``TSP_CLIP_SETTINGS``); ``stride_frames`` defaults to the
    clip length (one feature per clip, no overlap)."""

    videos: str  # a folder of videos, or a text file listing one video path per line
    out_dir: str
    checkpoint: str | None = None  # a checkpoint file, a run folder (.../pretrain/<method>), "kinetics400"
    backbone: str | None = None  # needed when the checkpoint does not say (TSP's released files do by name)
    clip_length_frames: int | None = None
    frame_rate: float | None = None  # clip frame rate: every video is resampled to it by timestamps
    stride_frames: int | None = None  # frames at ``frame_rate`` between consecutive clip starts
    short_side: int | None = None  # frames are resized so their short side is this (aspect kept)
    crop_size: int | None = None  # then centre-cropped to crop_size x crop_size
    batch_size: int = 32
    workers: int | None = None  # DataLoader processes decoding while the model runs; None: auto (below)
    format: str = "npy"  # "npy" (one file per video), or "h5" (also one h5 keyed by video, TSP-like)
    shard_id: int | None = None  # None: torchrun's rank (0 without torchrun)
    num_shards: int | None = None  # None: torchrun's world size (1 without torchrun)
    seed: int = 0  # the weights of a backbone without a checkpoint come from it
    device: str = "auto"  # "auto": cuda:LOCAL_RANK when there is a GPU, else cpu
    min_frames: int | None = None  # fewer frames at frame_rate is "too short"; None: half a clip
    # Unpickle a checkpoint in full when torch's safe loader refuses it: runs any code stored in the
    # file (tsplab.backbones.load_checkpoint_file); only for files you trust.
    trust_pickle: bool = False


# The CLI flag of each ExtractionConfig field, so an error names what the user typed.
_EXTRACT_FLAGS = dict(clip_length_frames="--clip-length", frame_rate="--frame-rate",
                      stride_frames="--stride", short_side="--short-side", crop_size="--crop",
                      batch_size="--batch-size", workers="--workers", format="--format",
                      min_frames="min_frames", shard_id="--shard-id", num_shards="--num-shards")


def _name(field_name: str) -> str:
    flag = _EXTRACT_FLAGS.get(field_name, field_name)
    return field_name if flag == field_name else f"{field_name} ({flag})"


def validate_extraction_config(config: "ExtractionConfig") -> None:
    """Check every parameter given in ``config`` (``None`` = from the checkpoint or TSP's default,
    checked once resolved by ``check_clip_settings``); ``InputError`` naming the parameter and its
    valid range. Run before anything is read or written."""
    if config.format not in ("npy", "h5"):
        raise InputError(f"{_name('format')}: {config.format!r} is not a format; valid: npy, h5")
    for name in ("clip_length_frames", "stride_frames", "short_side", "crop_size", "batch_size",
                 "min_frames"):
        value = getattr(config, name)
        if value is not None or name == "batch_size":
            check_parameter(_name(name), value, _is_int(value) and value >= 1, "an integer >= 1")
    if config.frame_rate is not None:
        check_parameter(_name("frame_rate"), config.frame_rate, _is_positive_number(config.frame_rate),
                        "a number of frames per second > 0")
    if config.workers is not None:
        check_parameter(_name("workers"), config.workers, _is_int(config.workers) and config.workers >= 0,
                        "an integer >= 0 (0: decode in the main process)")
    if config.crop_size is not None and config.short_side is not None:
        check_clip_settings(dict(short_side=config.short_side, crop_size=config.crop_size))
    for name in ("shard_id", "num_shards"):
        value = getattr(config, name)
        if value is not None:
            check_parameter(_name(name), value, _is_int(value) and value >= (name == "num_shards"),
                            "an integer >= 1" if name == "num_shards" else "an integer >= 0")


def check_clip_settings(settings: dict) -> None:
    """The resolved clip settings (explicit, from the checkpoint or TSP's) form a valid grid: every
    count >= 1, a frame rate > 0, and a centre crop that fits in the resized frame."""
    for name in ("clip_length_frames", "stride_frames", "short_side", "crop_size"):
        if name in settings:
            check_parameter(_name(name), settings[name], settings[name] >= 1, "an integer >= 1")
    if "frame_rate" in settings:
        check_parameter(_name("frame_rate"), settings["frame_rate"],
                        _is_positive_number(settings["frame_rate"]), "a number of frames per second > 0")
    crop, side = settings["crop_size"], settings["short_side"]
    check_parameter(_name("crop_size"), crop, crop <= side,
                    f"at most the short side the frames are resized to ({side}; --short-side)")


def find_videos(source) -> list[tuple[str, Path]]:
    """``[(video, path)]`` sorted by video id (the file name without extension).

    ``source`` is a folder (``tsplab.video.list_videos``: its files with a video extension) or a
    text file with one path per
    line (relative paths are relative to the list file's folder; blank lines and ``#`` comments are
    skipped). Listed paths need not exist: missing ones fail at extraction time and are recorded.
    """
    source = resolve(source)
    if source.is_dir():
        paths = list_videos(source)
    elif source.is_file():
        paths = []
        for line in source.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                p = Path(line).expanduser()
                paths.append(p if p.is_absolute() else source.parent / p)
    else:
        raise FileNotFoundError(f"{source}: neither a folder of videos nor a list file")
    seen: dict[str, Path] = {}
    by_id: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen:
            raise InputError(f"{source}: two videos share the id {p.stem!r}: {seen[p.stem]} and {p}; "
                             f"keep one of them")
        video = normalize_video_id(p.stem)
        if video in by_id:  # v_x.mp4 beside x.mp4: their feature files would be one video
            raise InputError(f"{source}: {by_id[video]} and {p} are the same video {video!r} (ids are "
                             f"compared with and without the v_ prefix); keep one of them")
        seen[p.stem], by_id[video] = p, p
    return sorted(seen.items())


def shard_videos(videos: list, shard_id: int, num_shards: int) -> list:
    """The ``shard_id``-th of ``num_shards`` contiguous, nearly equal blocks of ``videos`` (pass them
    sorted: every process then agrees on the split, and the shards together are the whole list)."""
    check_parameter("num_shards (--num-shards)", num_shards, _is_int(num_shards) and num_shards >= 1,
                    "an integer >= 1")
    check_parameter("shard_id (--shard-id)", shard_id, _is_int(shard_id) and 0 <= shard_id < num_shards,
                    f"an integer from 0 to num_shards - 1 = {num_shards - 1}")
    n = len(videos)
    return videos[shard_id * n // num_shards:(shard_id + 1) * n // num_shards]


def resolve_checkpoint(path) -> Path:
    """A checkpoint file from a file path or a pretraining run folder (``runs/<name>/pretrain/<method>``:
    its ``best.pt``, TSP's model selection; else the latest ``checkpoint.pt``; else its only
    ``*.pt``/``*.pth``)."""
    path = resolve(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in ("best.pt", "checkpoint.pt"):
            if (path / name).is_file():
                return path / name
        found = sorted([*path.glob("*.pt"), *path.glob("*.pth")])
        if len(found) == 1:
            return found[0]
        raise FileNotFoundError(f"{path}: no best.pt or checkpoint.pt, and {len(found)} other checkpoint "
                                "files; pass the checkpoint file itself")
    raise FileNotFoundError(f"{path}: checkpoint file or run folder not found")


def _find_key(tree, key):
    """The first value stored under ``key`` anywhere in a nested dict (configs nest sub-configs)."""
    if isinstance(tree, dict):
        if key in tree and not isinstance(tree[key], dict):
            return tree[key]
        for value in tree.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def checkpoint_settings(checkpoint: dict, path) -> dict:
    """What a loaded checkpoint says about how it was trained: ``backbone`` and the clip settings
    found in its ``config`` (missing ones absent). TSP's released files carry no config but start
    their name with the backbone (``r2plus1d_34-tsp_on_activitynet-...pth``), which is used then."""
    from tsplab.backbones import BACKBONES

    config = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    config = config if isinstance(config, dict) else {}
    out = {}
    aliases = dict(backbone=("backbone", "backbone_name"), clip_length_frames=("clip_length_frames",),
                   frame_rate=("frame_rate", "clip_frame_rate"),
                   short_side=("short_side", "resize_short_side"), crop_size=("crop_size",))
    for name, keys in aliases.items():
        for key in keys:
            value = _find_key(config, key)
            if value is not None:
                out[name] = value
                break
    prefix = Path(path).name.split("-")[0]
    if "backbone" not in out and prefix in BACKBONES:
        out["backbone"] = prefix
    return out


def resolve_extraction_settings(config: ExtractionConfig) -> tuple[dict, object]:
    """``(settings, weights)`` of a run. ``settings``: backbone name, checkpoint (file path,
    ``"kinetics400"`` or ``""``) and clip settings, taken from the config where given, else from the
    checkpoint's saved config, else TSP's. ``weights``: the loaded checkpoint, ``"kinetics400"``, or
    ``None`` (random weights)."""
    from tsplab.backbones import BACKBONES, load_checkpoint_file

    from_ckpt, weights, checkpoint = {}, None, ""
    if config.checkpoint == "kinetics400":
        weights = checkpoint = "kinetics400"
    elif config.checkpoint:
        path = resolve_checkpoint(config.checkpoint)
        weights, checkpoint = load_checkpoint_file(path, trust_pickle=config.trust_pickle), str(path)
        from_ckpt = checkpoint_settings(weights, path)
    backbone = config.backbone or from_ckpt.get("backbone")
    if backbone is None:
        raise InputError(f"checkpoint {checkpoint or config.checkpoint!r} does not name its backbone; "
                         f"pass backbone (one of {', '.join(BACKBONES)})")
    if backbone not in BACKBONES:
        raise InputError(f"backbone (--backbone): {backbone!r} is not a backbone; valid: "
                         f"{', '.join(BACKBONES)}")
    if from_ckpt.get("backbone") and config.backbone and config.backbone != from_ckpt["backbone"]:
        raise InputError(f"backbone {config.backbone!r} given, but checkpoint {checkpoint} was trained "
                         f"with {from_ckpt['backbone']!r}")
    settings = dict(backbone=backbone, checkpoint=checkpoint)
    for name in ("clip_length_frames", "frame_rate", "short_side", "crop_size"):
        value = getattr(config, name)
        value = from_ckpt.get(name, TSP_CLIP_SETTINGS[name]) if value is None else value
        settings[name] = float(value) if name == "frame_rate" else int(value)
    # A pretraining run has no feature stride; by default one feature per clip, without overlap
    # (the stride of TSP's released features).
    stride = config.stride_frames
    settings["stride_frames"] = int(stride) if stride is not None else settings["clip_length_frames"]
    return settings, weights


def load_extraction_backbone(name: str, weights=None, seed: int = 0) -> torch.nn.Module:
    """Backbone ``name`` in eval mode with ``weights`` (a loaded checkpoint, a path or
    ``"kinetics400"``; heads are dropped), or, with ``weights=None``, random weights drawn from
    ``seed`` after a warning (two runs with the same seed give the same features)."""
    from tsplab.backbones import build_backbone, load_backbone_weights

    torch.manual_seed(seed)
    backbone = build_backbone(name)
    if weights is not None:
        load_backbone_weights(backbone, weights)
    else:
        warnings.warn(f"no checkpoint given: {name} runs with RANDOM weights (seed {seed}); these "
                      "features are for smoke tests and timing only", stacklevel=2)
    return backbone.eval()


def pick_device(device: str) -> torch.device:
    """``"auto"``: this process's GPU (``cuda:LOCAL_RANK``, so torchrun ranks each take their own)
    when there is one, else the CPU; anything else as ``torch.device`` reads it."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        picked = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"device (--device): {device!r} is not a device; valid: auto, cpu, cuda, "
                         f"cuda:N") from exc
    if picked.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device (--device): {device!r} asked for, but this machine has no CUDA GPU; "
                         f"valid here: auto, cpu")
    return picked


class ClipBatchStream(IterableDataset):
    """Clip batches over a list of videos, for a ``DataLoader`` with ``batch_size=None``: each worker
    process streams its share of the videos (video ``k`` goes to worker ``k % num_workers``), decoding
    every video once, and packs clips of consecutive videos into batches of ``batch_size``, so the
    model sees full batches even for short videos.

    Each item is a dict: ``frames`` uint8 tensor ``[B, L, H, W, 3]`` (B may be 0), ``videos`` (the
    video of each clip), ``index`` ``[B]`` (the clip index in its video) and ``events``: ``("done",
    video, num_clips)`` once a video's last clip has been sent, or ``("failed", video, error)`` (clips
    of that video sent before are to be dropped). Events come after the clips they refer to.
    """

    def __init__(self, videos: list[tuple[str, Path]], clip_length_frames: int, frame_rate: float,
                 stride_frames: int, short_side: int | None, batch_size: int, min_frames: int = 1):
        self.videos = list(videos)
        self.clip_length_frames = clip_length_frames
        self.frame_rate = frame_rate
        self.stride_frames = stride_frames
        self.short_side = short_side
        self.batch_size = batch_size
        self.min_frames = min_frames

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        mine = self.videos if info is None else self.videos[info.id::info.num_workers]
        batch = _Batch()
        for video, path in mine:
            count = 0
            try:
                for window in self.windows(path):
                    if batch.frames and window.frames.shape != batch.frames[0].shape:
                        yield batch.flush()  # videos of another size: a batch holds one shape
                    batch.add(video, window)
                    count += 1
                    if len(batch.frames) == self.batch_size:
                        yield batch.flush()
                batch.events.append(("done", video, count))
            except Exception as exc:  # noqa: BLE001 - batch work: record any failure, go on
                batch.events.append(("failed", video, f"{type(exc).__name__}: {exc}"))
        if batch.frames or batch.events:
            yield batch.flush()

    def windows(self, path):
        """The ``ClipWindow``s of one video; raises ``VideoError`` for a missing, unreadable or too
        short one."""
        info = probe_video(path)  # a missing or unreadable file fails here with a clear message
        if info.num_frames_at(self.frame_rate) < self.min_frames:
            raise VideoError(path, f"too short: {info.duration_s:.3f} s is "
                                   f"{info.num_frames_at(self.frame_rate)} frame(s) at "
                                   f"{self.frame_rate:g} fps, fewer than {self.min_frames}")
        yield from iter_clip_windows(path, self.clip_length_frames, self.frame_rate,
                                     self.stride_frames, short_side=self.short_side)


class _Batch:
    """The clips and events a ``ClipBatchStream`` worker has gathered since its last item."""

    def __init__(self):
        self.frames, self.videos, self.index, self.events = [], [], [], []

    def add(self, video, window):
        self.frames.append(window.frames)
        self.videos.append(video)
        self.index.append(window.index)

    def flush(self) -> dict:
        """The gathered clips and events as one item; the batch is empty afterwards."""
        frames = (torch.from_numpy(np.stack(self.frames)) if self.frames
                  else torch.zeros((0,), dtype=torch.uint8))
        item = dict(frames=frames, videos=self.videos, index=torch.tensor(self.index, dtype=torch.long),
                    events=self.events)
        self.frames, self.videos, self.index, self.events = [], [], [], []
        return item


def _worker_init(_worker_id):
    # Decoding is single-threaded per worker; torch threads in workers would only fight the model.
    torch.set_num_threads(1)


def _check_metadata(out_dir: Path, meta: FeatureMetadata) -> None:
    """Refuse to mix features of different settings in one folder (a localizer would read them as
    one grid)."""
    if not (out_dir / METADATA_FILE).is_file() or not list_feature_videos(out_dir):
        return
    old = FeatureMetadata.load(out_dir)
    keys = ("stride_frames", "clip_length_frames", "frame_rate", "feature_dim", "backbone", "checkpoint")
    diff = [f"{k}: {getattr(old, k)!r} there, {getattr(meta, k)!r} now" for k in keys
            if getattr(old, k) != getattr(meta, k)]
    keys = ("short_side", "crop_size") + (("seed",) if meta.extra.get("random_weights") else ())
    diff += [f"{k}: {old.extra.get(k)!r} there, {meta.extra.get(k)!r} now"
             for k in keys if old.extra.get(k) != meta.extra.get(k)]
    if diff:
        raise InputError(f"{out_dir} already holds features made with other settings ("
                         + "; ".join(diff) + "); use another output folder")


def _shard_suffix(shard_id: int, num_shards: int) -> str:
    return "" if num_shards == 1 else f".shard{shard_id}of{num_shards}"


def _decoding_workers(workers: int | None, device: torch.device) -> int:
    """``workers`` if given; else decode in the main process on a CPU, and in up to 8 worker
    processes beside a GPU. On a CPU the model already uses every core, so a decoding process only
    competes with it: measured on 2 cores (benchmarks/bench_extract.py, tiny backbone, 60 synthetic
    videos), inline decoding reached 0.91 x model-only throughput against 0.77 with one worker."""
    if workers is not None:
        return max(0, int(workers))
    if device.type != "cuda":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def _check_extraction_inputs(config: ExtractionConfig) -> tuple[Path, list, tuple[int, int]]:
    """(output folder, this shard's ``[(video, path)]``, (shard id, number of shards)) once the
    parameters, the shard (from torchrun's environment when not given), the video source and the
    output folder have been checked; reads only."""
    validate_extraction_config(config)
    shard_id, num_shards = config.shard_id, config.num_shards
    if shard_id is None or num_shards is None:
        from tsplab.distributed import rank_and_world_size

        rank, world = rank_and_world_size()
        shard_id = rank if shard_id is None else shard_id
        num_shards = world if num_shards is None else num_shards
    out_dir = check_output_folder(config.out_dir, "out_dir (--out)")
    if out_dir == resolve(config.videos):
        raise InputError(f"out_dir (--out): {out_dir} is the folder of the input videos; give another "
                         f"folder for the features")
    all_videos = find_videos(config.videos)
    if not all_videos:
        raise FileNotFoundError(f"{resolve(config.videos)}: no videos to extract")
    return out_dir, shard_videos(all_videos, shard_id, num_shards), (shard_id, num_shards)


def extract_features(config: ExtractionConfig) -> pd.DataFrame:
    """Extract features for every video of ``config.videos`` (this shard's share) into
    ``config.out_dir``; returns one row per video: ``video, status, num_features, error, path`` with
    status ``done``, ``skipped`` (features already there) or ``failed``.

    Writes ``{video}.npy`` ``[T, C]`` float32 per video (atomically, as each video finishes),
    ``metadata.json`` (``FeatureMetadata``: the clip grid, backbone, checkpoint; ``extra`` holds the
    resize/crop, seed and the run's config), ``videos.csv`` (per-video T and first/last clip times),
    ``failures.csv`` (video, path, error), ``toolboxes.json`` and ``missing_files.txt``
    (``write_toolbox_files``: how ActionFormer and OpenTAD read the folder, and the failed videos as
    their block list) and, for ``format="h5"``, ``features.h5`` keyed by video (TSP's layout; the
    ``.npy`` files are kept as the resumable state). Sharded runs suffix the failures and h5 files
    with ``.shard{i}of{n}``. Every parameter and the output folder are checked before anything is
    written (``InputError`` naming the parameter); videos that fail are recorded and skipped.
    """
    from tqdm.auto import tqdm

    from tsplab.backbones import ClipTransform

    # Every input is checked before the output folder is touched (no metadata.json for a bad run).
    out_dir, videos, (shard_id, num_shards) = _check_extraction_inputs(config)
    settings, weights = resolve_extraction_settings(config)
    check_clip_settings(settings)
    device = pick_device(config.device)
    backbone = load_extraction_backbone(settings["backbone"], weights, config.seed).to(device)
    del weights  # a checkpoint with optimizer state can be large
    transform = ClipTransform(resize_short_side=settings["short_side"], crop_size=settings["crop_size"],
                              train=False)
    length, rate, stride = settings["clip_length_frames"], settings["frame_rate"], settings["stride_frames"]
    meta = FeatureMetadata(
        stride_frames=stride, clip_length_frames=length, frame_rate=rate,
        feature_dim=int(backbone.feature_dim), backbone=settings["backbone"],
        checkpoint=settings["checkpoint"],
        extra=dict(short_side=settings["short_side"], crop_size=settings["crop_size"], seed=config.seed,
                   random_weights=not settings["checkpoint"], videos_table=VIDEOS_TABLE,
                   clip_times="feature i: clip from i*stride_frames/frame_rate s, lasting "
                              "clip_length_frames/frame_rate s; the last clip repeats the last frame",
                   toolboxes=TOOLBOXES_FILE, config=asdict(config)))
    _check_metadata(out_dir, meta)
    meta.save(out_dir)

    rows, todo = [], []
    for video, path in videos:
        if feature_path(out_dir, video).is_file():
            rows.append(dict(video=video, status="skipped", num_features=_num_features(out_dir, video),
                             error="", path=str(path)))
        else:
            todo.append((video, path))
    min_frames = config.min_frames if config.min_frames is not None else -(-length // 2)
    stream = ClipBatchStream(todo, length, rate, stride, settings["short_side"], config.batch_size,
                             min_frames)
    workers = min(_decoding_workers(config.workers, device), len(todo))
    loader = DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=device.type == "cuda",
                        worker_init_fn=_worker_init if workers else None,
                        prefetch_factor=4 if workers else None, persistent_workers=False)
    paths = dict(todo)
    partial: dict[str, list] = {}

    def collect(item, feats):
        """File the features of one finished batch under their videos, then act on its events."""
        if feats is not None:
            for video, index, feat in zip(item["videos"], item["index"].tolist(), _to_numpy(feats)):
                partial.setdefault(video, []).append((index, feat))
            bar.update(len(item["videos"]))
        for kind, video, detail in item["events"]:
            clips = sorted(partial.pop(video, []), key=lambda x: x[0])
            error = detail if kind == "failed" else _stream_error(clips, detail)
            if not error:
                arr = np.stack([f for _, f in clips])
                save_features(out_dir, video, arr)
                rows.append(dict(video=video, status="done", num_features=len(arr), error="",
                                 path=str(paths[video])))
            else:
                log.warning("feature extraction skipped %s: %s", paths[video], error)
                rows.append(dict(video=video, status="failed", num_features=0, error=error,
                                 path=str(paths[video])))
        bar.set_postfix(videos=len(rows), refresh=False)

    with tqdm(total=None, unit="clip", desc=f"extract {out_dir.name}", leave=False) as bar:
        # One batch in flight: batch k is queued on the device before batch k-1's features are
        # copied back, so a GPU never idles while this process fetches and files batches.
        pending = None
        for item in loader:
            feats = (_forward_clips(backbone, item["frames"], transform, device)
                     if len(item["videos"]) else None)
            if pending is not None:
                collect(*pending)
            pending = (item, feats)
        if pending is not None:
            collect(*pending)

    summary = pd.DataFrame(rows, columns=["video", "status", "num_features", "error", "path"])
    summary = summary.sort_values("video", ignore_index=True)
    suffix = _shard_suffix(shard_id, num_shards)
    failures = summary.loc[summary.status == "failed", ["video", "path", "error"]]
    failures_file = _write_csv(out_dir / f"failures{suffix}.csv", failures)
    _write_csv(out_dir / VIDEOS_TABLE, feature_table(out_dir))
    if config.format == "h5":
        have = [v for v in summary.video if feature_path(out_dir, v).is_file()]
        write_features_h5(out_dir / f"features{suffix}.h5", {v: load_features(out_dir, v) for v in have})
    write_toolbox_files(out_dir)
    # Where the lists are, for the CLI to say so.
    summary.attrs.update(failures_file=str(failures_file), missing_file=str(out_dir / MISSING_FILE),
                         toolboxes_file=str(out_dir / TOOLBOXES_FILE))
    return summary


def _stream_error(clips: list, num_clips: int) -> str:
    if num_clips == 0:
        return "no frames could be decoded"
    if [i for i, _ in clips] != list(range(num_clips)):
        return f"clip stream incomplete: got {len(clips)} of {num_clips} clips"
    return ""


def summarize_extraction(summary: pd.DataFrame) -> pd.DataFrame:
    """Counts per status (``done``, ``skipped``, ``failed``) of an ``extract_features`` summary."""
    counts = summary["status"].value_counts()
    return pd.DataFrame(dict(status=["done", "skipped", "failed"],
                             videos=[int(counts.get(s, 0)) for s in ("done", "skipped", "failed")]))


def _num_features(folder, video) -> int:
    return int(np.load(feature_path(folder, video), mmap_mode="r").shape[0])


def _write_csv(path, df: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def feature_table(folder) -> pd.DataFrame:
    """One row per video of a feature folder: ``video, num_features, feature_dim`` and, with the
    folder's metadata, ``first_clip_centre_s, last_clip_start_s, last_clip_centre_s,
    last_clip_end_s`` (the clip times a localizer maps feature indices to)."""
    folder = Path(folder)
    rows = []
    for video in list_feature_videos(folder):
        shape = np.load(feature_path(folder, video), mmap_mode="r").shape
        rows.append(dict(video=video, num_features=int(shape[0]),
                         feature_dim=int(shape[1]) if len(shape) > 1 else 0))
    table = pd.DataFrame(rows, columns=["video", "num_features", "feature_dim"])
    if (folder / METADATA_FILE).is_file():
        meta = FeatureMetadata.load(folder)
        last = (table.num_features - 1).clip(lower=0) * meta.stride_s
        table["first_clip_centre_s"] = 0.5 * meta.clip_length_s
        table["last_clip_start_s"] = last
        table["last_clip_centre_s"] = last + 0.5 * meta.clip_length_s
        table["last_clip_end_s"] = last + meta.clip_length_s
    return table


def read_failures(folder) -> pd.DataFrame:
    """The failures of the latest run in a feature folder (all shards): ``video, path, error``."""
    files = sorted(Path(folder).glob("failures*.csv"))
    frames = [pd.read_csv(f, keep_default_na=False) for f in files]
    if not frames:
        return pd.DataFrame(columns=["video", "path", "error"])
    return pd.concat(frames, ignore_index=True).sort_values("video", ignore_index=True)


# --- Drop-in for the localization toolboxes (ActionFormer, OpenTAD) ---------------------------------

def file_prefix(stems) -> str | None:
    """What every file stem puts before its video id: ``"v_"`` for ActivityNet's ``v_<id>`` files,
    ``""`` for files named by id (THUMOS14's ``video_test_0000004``); ``None`` when the stems differ
    (no single prefix lets a toolbox build every file name from the annotation ids)."""
    prefixes = {stem[:len(stem) - len(normalize_video_id(stem))] for stem in map(str, stems)}
    if not prefixes:
        return ""
    return prefixes.pop() if len(prefixes) == 1 else None


def _number(x: float):
    """15.0 -> 15 (configs read better with the integer when there is one)."""
    return int(x) if float(x).is_integer() else float(x)


def toolbox_config(folder) -> dict:
    """How ActionFormer and OpenTAD read this feature folder, from its metadata and file names.

    Both toolboxes place feature ``i`` at the centre of its clip in frames at a fixed frame rate:
    ActionFormer (``libs/datasets/anet.py``) maps a time ``t`` to the grid position
    ``(t * default_fps - num_frames / 2) / feat_stride``, OpenTAD (``AnetPaddingDataset``) to
    ``(t * fps - offset_frames) / (feature_stride * sample_stride)``. tsplab's grid puts clip ``i``'s
    centre at ``(i * stride_frames + clip_length_frames / 2) / frame_rate`` seconds (every video
    resampled to ``frame_rate``), so ``feat_stride = feature_stride = stride_frames``,
    ``num_frames = clip_length_frames``, ``offset_frames = clip_length_frames / 2``,
    ``default_fps = fps = frame_rate``. Both build a file name as ``prefix + annotation id + .npy``.
    """
    folder = resolve(folder)
    meta = FeatureMetadata.load(folder)
    failed = read_failures(folder)
    prefix = file_prefix(list_feature_videos(folder) + list(failed["video"].astype(str)))
    offset = meta.clip_length_frames / 2
    notes = []
    if prefix is None:
        notes.append("file names mix prefixes (some v_<id>, some <id>): rename them to one pattern, "
                     "the toolboxes take one prefix")
    if not float(offset).is_integer():
        notes.append(f"OpenTAD reads offset_frames as an integer; the clip centre is {offset} frames")
    return {
        "actionformer": dict(feat_folder=str(folder), file_prefix=prefix, file_ext=".npy",
                             input_dim=meta.feature_dim, feat_stride=meta.stride_frames,
                             num_frames=meta.clip_length_frames, default_fps=_number(meta.frame_rate)),
        "opentad": dict(data_path=str(folder), block_list=str(folder / MISSING_FILE),
                        feature_stride=meta.stride_frames, sample_stride=1,
                        offset_frames=_number(offset), fps=_number(meta.frame_rate),
                        load_feats=dict(type="LoadFeats", feat_format="npy", prefix=prefix)),
        "missing_videos": missing_videos(folder),
        "notes": notes,
    }


def missing_videos(folder) -> list[str]:
    """The annotation ids (``normalize_video_id``) of the videos whose extraction failed in
    ``folder`` (all shards), sorted: the block list OpenTAD skips."""
    return sorted({normalize_video_id(v) for v in read_failures(folder)["video"].astype(str)})


def write_toolbox_files(folder) -> dict:
    """Write ``toolboxes.json`` (``toolbox_config``) and ``missing_files.txt`` (one id a line,
    OpenTAD's ``block_list``; empty when nothing failed, so the configured path always exists)."""
    folder = resolve(folder)
    config = toolbox_config(folder)
    atomic_write_text(folder / MISSING_FILE, "".join(f"{v}\n" for v in config["missing_videos"]))
    write_json(folder / TOOLBOXES_FILE, config)
    return config


def toolbox_snippet(folder) -> str:
    """Markdown with the config lines of ActionFormer (YAML, its ``dataset`` block) and OpenTAD
    (Python, its dataset settings and ``LoadFeats`` step) for this feature folder."""
    config = toolbox_config(folder)
    af, ot = config["actionformer"], config["opentad"]
    prefix = "" if af["file_prefix"] is None else af["file_prefix"]
    actionformer = "\n".join([
        "dataset: {",
        f"  feat_folder: {af['feat_folder']},",
        f"  file_prefix: {prefix},",
        f"  file_ext: {af['file_ext']},",
        f"  input_dim: {af['input_dim']},",
        f"  feat_stride: {af['feat_stride']},",
        f"  num_frames: {af['num_frames']},",
        f"  default_fps: {af['default_fps']},",
        "  # json_file, num_classes, max_seq_len, ...: as for your dataset",
        "}"])
    opentad = "\n".join([
        f"data_path = {json.dumps(ot['data_path'])}",
        f"block_list = {json.dumps(ot['block_list'])}  # videos whose extraction failed",
        "# in each of train/val/test of `dataset`:",
        f"    feature_stride={ot['feature_stride']},",
        f"    sample_stride={ot['sample_stride']},",
        f"    offset_frames={ot['offset_frames']},",
        f"    fps={ot['fps']},",
        f"    # pipeline: dict(type=\"LoadFeats\", feat_format=\"npy\", prefix={json.dumps(prefix)}),"])
    lines = ["ActionFormer (`configs/*.yaml`):", "", "```yaml", actionformer, "```", "",
             "OpenTAD (`configs/_base_/datasets/...`):", "", "```python", opentad, "```"]
    if config["notes"]:
        lines += [""] + [f"Note: {n}." for n in config["notes"]]
    return "\n".join(lines) + "\n"


def pretrained_runs(run_dir, methods=("tac", "tsp")) -> dict[str, Path]:
    """``{method: run folder}`` for each of ``methods`` whose pretraining run folder
    ``{run_dir}/pretrain/<method>`` holds a checkpoint (``resolve_checkpoint`` finds one); the
    others are left out."""
    found = {}
    for method in methods:
        folder = resolve(run_dir) / "pretrain" / method
        try:
            resolve_checkpoint(folder)
        except FileNotFoundError:
            continue
        found[method] = folder
    return found
