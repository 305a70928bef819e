"""Feature folders: one float32 ``[T, C]`` array per video (``{file stem}.npy``) and a
``metadata.json`` (``FeatureMetadata``) per folder; numpy only, no torch.

The clip grid follows TSP's: feature ``i`` covers the clip that starts at
``i * stride_frames / frame_rate`` seconds and spans ``clip_length_frames / frame_rate`` seconds, where
``frame_rate`` is the rate clips are sampled at (TSP: 16 frames at 15 fps, stride 16).

Video ids meet file names in one place, ``feature_files`` (and ``by_video_id`` for h5 keys): feature
files keep the video file's stem (``v_<id>.npy`` for ActivityNet, the naming ActionFormer and OpenTAD
read), and every module that looks a video up (localizer, similarity, GVF files, pretraining) goes
through ``tsplab.datasets.normalize_video_id``, so ``v_<id>`` and ``<id>`` are one video.

Also here: the per-video table of a folder (``feature_table``), the failures of its extraction runs
(``read_failures``), and the one reader of feature folders, ``open_feature_folders``: one folder, or
several from the same videos on the same clip grid read as one, each video's arrays concatenated along
channels (BSP §3.4 two-stream, e.g. TAC ⊕ BSP). The localizer (``features_dir``), ``tsplab.similarity``
and ``check_feature_folders`` take a folder or a list of folders through it; ``concat_feature_folders``
writes its output as a folder, for toolboxes that read one.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tsplab.datasets import normalize_video_id
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
        _check_grid_values(path, values)
        return cls(**values)


def _check_grid_values(path: Path, values: dict) -> None:
    """The clip grid of a ``metadata.json``: whole numbers > 0 for the frame counts and the width, a
    finite number > 0 for the frame rate (a 0 or a quoted number would turn every time into inf or NaN
    downstream, silently). ``InputError`` naming the file and the field otherwise."""
    for name in ("stride_frames", "clip_length_frames", "feature_dim"):
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{path}: {name} is {value!r}; expected a whole number >= 1")
    rate = values["frame_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < float("inf"):
        raise InputError(f"{path}: frame_rate is {rate!r}; expected a number of frames per second > 0 "
                         "(e.g. 15, not \"15\")")


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
    ``tsplab.datasets.normalize_video_id(key)`` (ActivityNet's ``v_<id>`` and ``<id>`` are one
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


def check_feature_folders(folders: dict, parameter: str = "feature_dirs") -> dict:
    """``{name: resolved folder}`` of ``folders`` (``{name: path}``, notebooks 05 and 07), once every
    one is a feature folder (holds ``metadata.json``); a value may also be a list of folders, one
    feature set joined per clip (``open_feature_folders``, e.g. ``{"tac+bsp": [tac_dir, bsp_dir]}``),
    returned as a list of resolved folders. Otherwise ``InputError`` on one line naming the
    ``parameter``, the missing ones and the feature folders found beside them: a feature set the
    user asked for is never silently left out of a comparison."""
    if not isinstance(folders, dict) or not folders:
        raise InputError(f"{parameter}: give a non-empty {{name: feature folder}} dict, got {folders!r}")
    resolved = {str(name): (resolve(path) if isinstance(path, (str, Path))
                            else feature_folder_list(path, f"{parameter}[{name!r}]"))
                for name, path in folders.items()}
    missing = [(name, path) for name, paths in resolved.items()
               for path in (paths if isinstance(paths, list) else [paths])
               if not (path / METADATA_FILE).is_file()]
    if missing:
        parents = sorted({p.parent for _, p in missing if p.parent.is_dir()})
        found = sorted(str(d) for parent in parents for d in parent.iterdir()
                       if (d / METADATA_FILE).is_file())
        listed = ", ".join(f"{name}: {path}" for name, path in missing)
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


# --- Reading one folder or several joined per clip (BSP's two-stream features) ----------------------

def feature_folder_list(folders, parameter: str = "features_dir") -> list[Path]:
    """``folders`` (one folder, or a list / tuple of folders) as a list of resolved paths, in order.
    Anything else (an empty list, a number) raises ``InputError`` naming ``parameter``."""
    items = [folders] if isinstance(folders, (str, Path)) else folders
    if (not isinstance(items, (list, tuple)) or not items
            or not all(isinstance(f, (str, Path)) and str(f) for f in items)):
        raise InputError(f"{parameter}: give a feature folder or a list of feature folders (joined per "
                         f"clip, BSP two-stream), got {folders!r}")
    return [resolve(f) for f in items]


@dataclass
class JoinedFeatures:
    """One feature folder, or several read as one: per video the ``[T, C_1 + ... + C_k]`` concatenation
    along channels of the folders' ``[T, C_i]`` arrays, in folder order (BSP §3.4 two-stream:
    "feature concatenation is adopted at the penultimate layer"). Made by :func:`open_feature_folders`.

    ``videos``: the ids with a file in every folder (sorted); ``missing``: one row per video with
    features in some folders only (``video, missing_from``), never read, never silently dropped;
    ``metadata``: the joined grid (the folders' common stride, clip length and rate, ``feature_dim``
    the sum; a single folder's own metadata as it is)."""

    folders: list[Path]
    metadata: FeatureMetadata
    part_metadata: list[FeatureMetadata]
    files: dict[str, list[Path]]  # video id -> its file in each folder (videos in every folder)
    missing: pd.DataFrame

    @property
    def videos(self) -> list[str]:
        return sorted(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __contains__(self, video) -> bool:
        return normalize_video_id(str(video)) in self.files

    def __iter__(self):
        """``(video id, features [T, ΣC])`` for every video of ``videos``."""
        for video in self.videos:
            yield video, self.read(video)

    def file_stem(self, video: str) -> str:
        """The first folder's file stem of ``video`` (``v_<id>`` or ``<id>``)."""
        return self.files[normalize_video_id(video)][0].stem

    def read(self, video: str) -> np.ndarray:
        """Features ``[T, ΣC]`` float32 of ``video`` (an id or a file stem). ``FileNotFoundError`` for a
        video not in every folder (naming the folders that lack it); ``FeatureFileError`` (an
        ``InputError``) when a file is unreadable or not a ``[T, C_i]`` array of its folder's width;
        ``InputError`` when the folders' clip counts differ."""
        video = normalize_video_id(str(video))
        if video not in self.files:
            lacking = self.missing.loc[self.missing["video"] == video, "missing_from"]
            where = lacking.iat[0] if len(lacking) else "; ".join(map(str, self.folders))
            raise FileNotFoundError(f"{where}: no features for video {video!r}")
        parts = [_read_part(path, meta) for path, meta in zip(self.files[video], self.part_metadata)]
        self._check_clips(video, [len(p) for p in parts])
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def check_clip_counts(self) -> None:
        """Every video's clip count agrees across the folders (read from the file headers only), else
        ``InputError`` naming the first folder and video that differ: check before writing anything."""
        for video, paths in sorted(self.files.items()):
            self._check_clips(video, [int(np.load(p, mmap_mode="r").shape[0]) for p in paths])

    def _check_clips(self, video: str, counts: list[int]) -> None:
        for folder, count in zip(self.folders[1:], counts[1:]):
            if count != counts[0]:
                raise InputError(f"{folder}: video {video!r} has {count} clips but {self.folders[0]} has "
                                 f"{counts[0]}; joined feature folders need the same clip grid (extract "
                                 "them with the same stride and clip length from the same videos)")


class FeatureFileError(InputError):
    """One video's feature file is unreadable or of the wrong shape (a reader may skip that video and
    report it, as the localizer does); any other ``InputError`` of the reader concerns the folders."""


# Larger feature values are refused with the non-finite ones: no encoder's features come near it, and
# a value like 1e38 overflows float32 in the first sum of squares, training to a NaN loss.
MAX_ABS_FEATURE = 1e6


def _read_part(path: Path, meta: FeatureMetadata) -> np.ndarray:
    """One folder's ``[T, C]`` array of a video, checked against that folder's ``feature_dim``."""
    return read_feature_file(path, meta.feature_dim, "the folder's metadata.json feature_dim")


def read_feature_file(path, width: int | None = None, whose: str = "") -> np.ndarray:
    """The ``[T, C]`` float32 array of one feature file, checked: readable as a plain numeric
    ``.npy`` (not truncated, empty, a folder or pickled objects), two dimensions with ``T >= 1``,
    ``C == width`` when given (``whose`` says where that width comes from), and every value finite
    and at most ``MAX_ABS_FEATURE`` in size. ``FeatureFileError`` naming the file (and the first bad
    row) otherwise."""
    path = Path(path)
    try:
        array = np.load(path)
    except (OSError, ValueError, EOFError) as exc:
        reason = "a folder" if path.is_dir() else ("pickled (object) data" if "allow_pickle" in str(exc)
                                                   else str(exc) or type(exc).__name__)
        raise FeatureFileError(f"{path}: unreadable features ({reason}); extract this video again") from None
    if not isinstance(array, np.ndarray) or array.ndim != 2 or not len(array) or array.dtype.kind not in "fiu" or (
            width is not None and array.shape[1] != width):
        expected = f"[T >= 1, {width}] numbers ({whose})" if width is not None else "[T >= 1, C] numbers"
        raise FeatureFileError(f"{path}: features of shape {getattr(array, 'shape', '?')} "
                               f"({getattr(array, 'dtype', type(array).__name__)}), expected {expected}")
    array = array.astype(np.float32, copy=False)
    bad = ~(np.abs(array) <= MAX_ABS_FEATURE)  # NaN compares False
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise FeatureFileError(f"{path}: row {row} (clip {row}), column {col} holds {float(array[row, col]):.6g}; "
                               f"features must be finite numbers of size <= {MAX_ABS_FEATURE:g} "
                               f"({int(bad.any(axis=1).sum())} bad row(s)); extract this video again")
    return array


def open_feature_folders(folders, parameter: str = "features_dir", *, warn: bool = True) -> JoinedFeatures:
    """The one reader of feature folders (:class:`JoinedFeatures`): ``folders`` is one folder or a list
    of folders extracted from the same videos on the same clip grid (``stride_frames``,
    ``clip_length_frames``, ``frame_rate``; a difference raises a one-line ``InputError`` naming the
    folder and the field), e.g. ``[tac_dir, bsp_dir]`` for BSP's two-stream features. Videos are
    matched by id (``feature_files``). Videos with features in some folders only are listed in
    ``.missing`` and, with ``warn``, named in a warning (count and the first few)."""
    paths = feature_folder_list(folders, parameter)
    metas = [FeatureMetadata.load(f) for f in paths]
    _check_same_grid(paths, metas, parameter)
    ids = [feature_files(f) for f in paths]
    files, missing = {}, []
    for video in sorted(set().union(*ids)):
        lacking = [str(f) for f, have in zip(paths, ids) if video not in have]
        if lacking:
            missing.append((video, "; ".join(lacking)))
        else:
            files[video] = [have[video] for have in ids]
    missing = pd.DataFrame(missing, columns=["video", "missing_from"])
    if warn and len(missing):
        named = ", ".join(f"{r.video} (not in {r.missing_from})" for r in missing.head(3).itertuples())
        warnings.warn(f"{parameter}: {len(missing)} video(s) have features in some of the joined folders only "
                      f"and are left out: {named}{', ...' if len(missing) > 3 else ''}", stacklevel=2)
    return JoinedFeatures(paths, _joined_metadata(paths, metas), metas, files, missing)


def _joined_metadata(folders: list[Path], metas: list[FeatureMetadata]) -> FeatureMetadata:
    """A single folder's metadata as it is; several: the common grid, the summed width, and in
    ``extra`` the folders and their widths (so a result says which encoders it joined)."""
    if len(metas) == 1:
        return metas[0]
    first = metas[0]
    return FeatureMetadata(stride_frames=first.stride_frames, clip_length_frames=first.clip_length_frames,
                           frame_rate=first.frame_rate, feature_dim=sum(m.feature_dim for m in metas),
                           backbone="+".join(m.backbone for m in metas),
                           checkpoint="+".join(m.checkpoint for m in metas),
                           extra={"joined_folders": [str(f) for f in folders],
                                  "feature_dims": [m.feature_dim for m in metas]})


def _check_same_grid(folders: list[Path], metas: list[FeatureMetadata], parameter: str) -> None:
    """Features of different clip grids cannot be joined position by position."""
    for folder, meta in zip(folders[1:], metas[1:]):
        for key in GRID_KEYS:
            if getattr(meta, key) != getattr(metas[0], key):
                raise InputError(f"{parameter}: {folder}: {key}={getattr(meta, key)} but {folders[0]} has "
                                 f"{getattr(metas[0], key)}; feature folders of different clip grids cannot be "
                                 "joined (extract them with the same stride, clip length and frame rate)")


def concat_feature_folders(folders, out) -> pd.DataFrame:
    """A written copy of :func:`open_feature_folders` ``(folders)`` in ``out`` (``[T, ΣC]`` per video,
    the joined metadata), for readers that take one folder (ActionFormer, OpenTAD: ``tsplab.features.
    toolboxes``); tsplab's own readers take the list of folders directly.

    The grid and every video's clip count are checked before anything is written (``InputError``).
    Returns one row per video: ``video, status (written | skipped), clips, reason``; a video missing
    from some folder is skipped and its row names them. The output file takes the first folder's name
    for the video (``v_x.npy`` in one folder and ``x.npy`` in another are one video)."""
    if isinstance(folders, (str, Path)) or len(folders) < 2:
        raise InputError(f"two-stream concatenation needs at least two feature folders, got {folders!r}")
    joined = open_feature_folders(folders, "folders", warn=False)
    joined.check_clip_counts()
    out = resolve(out)
    rows = [dict(video=r.video, status="skipped", clips=0, reason=f"no features in {r.missing_from}")
            for r in joined.missing.itertuples(index=False)]
    for video, features in joined:
        save_features(out, joined.file_stem(video), features)
        rows.append(dict(video=video, status="written", clips=len(features), reason=""))
    joined.metadata.save(out)  # last: a folder without metadata.json is no finished feature folder
    table = pd.DataFrame(rows, columns=["video", "status", "clips", "reason"])
    return table.sort_values("video", ignore_index=True)
