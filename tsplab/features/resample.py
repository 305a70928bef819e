"""Resampling a feature sequence on the time axis to the fixed length G-TAD and BMN take."""
from __future__ import annotations

import numpy as np


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
