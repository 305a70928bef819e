"""Global video features (GVF, TSP sec. 3) and h5 files in the layout of TSP's released files (one
dataset per video key: a ``[C]`` GVF or a ``[T, C]`` feature array); numpy/h5py only, no torch.
``tsplab gvf`` runs ``compute_gvf_file``. Keys are the feature file stems (``v_<id>`` for
ActivityNet); ``read_gvf_h5(by_id=True)`` looks them up by annotation id (``by_video_id``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tsplab.errors import InputError
from tsplab.features.folders import (METADATA_FILE, FeatureMetadata, by_video_id, feature_files,
                                    read_feature_file)
from tsplab.runs import atomic_path, check_output_file, resolve

POOLINGS = ("max", "avg")


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
    released GVF files, by the video file's stem; two files of one video raise ``InputError``).
    Every file is read checked (``read_feature_file``: readable, finite) and must have one width, the
    folder's ``metadata.json`` ``feature_dim`` when it has one, else the first file's: a file that
    differs raises ``InputError`` naming it, so a GVF file never mixes widths."""
    feature_dir = Path(feature_dir)
    files = feature_files(feature_dir)
    if not files:
        raise FileNotFoundError(f"{feature_dir}: no feature files (*.npy)")
    width, whose = None, ""
    if (feature_dir / METADATA_FILE).is_file():
        width, whose = FeatureMetadata.load(feature_dir).feature_dim, f"{METADATA_FILE} feature_dim"
    gvfs = {}
    for path in files.values():
        features = read_feature_file(path, width, whose)
        if width is None:
            width, whose = features.shape[1], f"the width of {path.name}"
        gvfs[path.stem] = pool_gvf(features, pooling)
    return gvfs


def compute_gvf_file(feature_dir, out_h5, pooling: str = "max", overwrite: bool = False) -> Path:
    """Pool every video of ``feature_dir`` into one GVF h5 file (``tsplab gvf``), the file TSP's
    pretraining reads its global video features from. Inputs and the output path are checked before
    anything is written: the output is never one of the folder's files, and an existing file is
    replaced only with ``overwrite`` (then once the new one is complete)."""
    feature_dir, out_h5 = resolve(feature_dir), resolve(out_h5)
    if pooling not in POOLINGS:
        raise InputError(f"pooling: {pooling!r} is not a pooling; valid: {', '.join(POOLINGS)}")
    if not feature_dir.is_dir():
        raise FileNotFoundError(f"{feature_dir}: feature folder not found")
    inputs = {f"{p.name}, a file of the feature folder": p for p in feature_dir.iterdir() if p.is_file()}
    check_output_file(out_h5, "--out", inputs, overwrite=overwrite)
    return write_gvf_h5(out_h5, compute_gvfs(feature_dir, pooling))
