"""Feature folders: one float32 ``[T, C]`` array per video (``{file stem}.npy``) and a
``metadata.json`` (``FeatureMetadata``) per folder; numpy only, no torch.

The clip grid follows TSP's: feature ``i`` covers the clip that starts at
``i * stride_frames / frame_rate`` seconds and spans ``clip_length_frames / frame_rate`` seconds, where
``frame_rate`` is the rate clips are sampled at (TSP: 16 frames at 15 fps, stride 16).

Video ids meet file names in one place, ``feature_files`` (and ``by_video_id`` for h5 keys): feature
files keep the video file's stem (``v_<id>.npy`` for ActivityNet, the naming ActionFormer and OpenTAD
read), and every module that looks a video up (localizer, similarity, GVF files, pretraining) goes
through ``tsplab.annotations.normalize_video_id``, so ``v_<id>`` and ``<id>`` are one video.

Also here: the per-video table of a folder (``feature_table``), the failures of its extraction runs
(``read_failures``), and BSP's two-stream join of several folders (``concat_feature_folders``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tsplab.annotations import normalize_video_id
from tsplab.errors import InputError
from tsplab.runs import atomic_path, read_json, resolve, write_json

METADATA_FILE = "metadata.json"
FAILURES_FILE = "failures.csv"
VIDEOS_TABLE = "videos.csv"
GRID_KEYS = ("stride_frames", "clip_length_frames", "frame_rate")  # what makes two folders one grid


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


def save_features(folder, video: str, features: np.ndarray) -> Path:
    """Write ``[T, C]`` features atomically (temporary name, then rename: a killed run never leaves a
    half file that looks finished)."""
    path = feature_path(folder, video)
    with atomic_path(path) as tmp:
        np.save(tmp, np.ascontiguousarray(features, dtype=np.float32))
    return path


def list_feature_videos(folder) -> list[str]:
    """The file stems of the feature files in ``folder``, sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.npy"))


def num_features(folder, video: str) -> int:
    """``T`` of a video's feature file, read from its header only."""
    return int(np.load(feature_path(folder, video), mmap_mode="r").shape[0])


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


# --- Tables of a folder ------------------------------------------------------------------------------

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


def check_feature_folders(folders: dict, parameter: str = "feature_dirs") -> dict[str, Path]:
    """``{name: resolved folder}`` of ``folders`` (``{name: path}``, notebooks 05 and 07), once every
    one is a feature folder (holds ``metadata.json``). Otherwise ``InputError`` on one line naming
    the ``parameter``, the missing ones and the feature folders found beside them: a feature set the
    user asked for is never silently left out of a comparison."""
    if not isinstance(folders, dict) or not folders:
        raise InputError(f"{parameter}: give a non-empty {{name: feature folder}} dict, got {folders!r}")
    resolved = {str(name): resolve(path) for name, path in folders.items()}
    missing = {name: path for name, path in resolved.items() if not (path / METADATA_FILE).is_file()}
    if missing:
        parents = sorted({p.parent for p in missing.values() if p.parent.is_dir()})
        found = sorted(str(d) for parent in parents for d in parent.iterdir()
                       if (d / METADATA_FILE).is_file())
        listed = ", ".join(f"{name}: {path}" for name, path in missing.items())
        raise InputError(f"{parameter}: no feature folder ({METADATA_FILE}) at {listed}; feature folders "
                         f"found beside them: {', '.join(found) or 'none'}; extract features first "
                         "(notebook 04, tsplab extract)")
    return resolved


def read_failures(folder) -> pd.DataFrame:
    """The failures of the latest run in a feature folder (all shards): ``video, path, error``."""
    files = sorted(Path(folder).glob("failures*.csv"))
    frames = [pd.read_csv(f, keep_default_na=False) for f in files]
    if not frames:
        return pd.DataFrame(columns=["video", "path", "error"])
    return pd.concat(frames, ignore_index=True).sort_values("video", ignore_index=True)


# --- Combining folders (BSP's two-stream features) ---------------------------------------------------

def concat_feature_folders(folders, out) -> pd.DataFrame:
    """BSP §3.4 two-stream: concatenate, per video, the ``[T, C_k]`` features of ``folders`` (e.g. a TAC
    run's and a BSP run's, extracted with the same clip grid) into ``out`` ``[T, ΣC_k]``.

    The folders' metadata must agree on ``stride_frames``, ``clip_length_frames`` and ``frame_rate``.
    A video missing from a folder, or with a different number of clips, is skipped and listed. Returns
    one row per video: ``video, status (written | skipped), clips, reason``. Videos are matched by
    id (``feature_files``: ``v_x.npy`` in one folder and ``x.npy`` in another are one video); the
    output file takes the first folder's name for it."""
    folders = [resolve(f) for f in folders]
    out = resolve(out)
    if len(folders) < 2:
        raise ValueError(f"two-stream concatenation needs at least two feature folders, got {len(folders)}")
    metas = [FeatureMetadata.load(f) for f in folders]
    _check_same_grid(folders, metas)
    files = [feature_files(f) for f in folders]
    rows = []
    for video in sorted(set().union(*files)):
        lacking = [str(f) for f, have in zip(folders, files) if video not in have]
        if lacking:
            rows.append(dict(video=video, status="skipped", clips=0, reason=f"no features in {', '.join(lacking)}"))
            continue
        parts = [np.load(have[video]) for have in files]
        lengths = [len(p) for p in parts]
        if len(set(lengths)) > 1:
            rows.append(dict(video=video, status="skipped", clips=0,
                             reason=f"different numbers of clips {lengths} in {[str(f) for f in folders]}"))
            continue
        save_features(out, files[0][video].stem, np.concatenate(parts, axis=1))
        rows.append(dict(video=video, status="written", clips=lengths[0], reason=""))
    first = metas[0]
    FeatureMetadata(stride_frames=first.stride_frames, clip_length_frames=first.clip_length_frames,
                    frame_rate=first.frame_rate, feature_dim=sum(m.feature_dim for m in metas),
                    backbone="+".join(m.backbone for m in metas),
                    checkpoint="+".join(m.checkpoint for m in metas),
                    extra={"two_stream": [str(f) for f in folders],
                           "feature_dims": [m.feature_dim for m in metas]}).save(out)
    return pd.DataFrame(rows, columns=["video", "status", "clips", "reason"])


def _check_same_grid(folders: list[Path], metas: list[FeatureMetadata]) -> None:
    """Features of different clip grids cannot be joined position by position."""
    for folder, meta in zip(folders[1:], metas[1:]):
        for key in GRID_KEYS:
            if getattr(meta, key) != getattr(metas[0], key):
                raise ValueError(f"{folder}: {key}={getattr(meta, key)} but {folders[0]} has "
                                 f"{getattr(metas[0], key)}; features of different clip grids cannot be joined")
