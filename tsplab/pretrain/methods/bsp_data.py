"""BSP's data: the four boundary syntheses of BSP §3.2 (eqs. 1-3 and the no-boundary class) and the
dataset that draws them from the foreground segments of a segment table.

Frame indices are 0-based; the *change frame* ``c`` is the number of frames before the boundary
(the paper's 1-based ``τ`` in eqs. 1-2 and ``t`` in eq. 3). The method that trains on these clips,
and the reasons for its defaults, are in ``tsplab.pretrain.methods.bsp``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from tsplab.pretrain.sampling import NO_LABEL, SegmentClipDataset, item_key, item_rng, read_frames

BOUNDARY_TYPES = ("dc", "sc", "ds", "ss")
#: ``change_frame`` of an item without a boundary (``ss``).
NO_CHANGE = -1


# ------------------------------------------------------------------------------------- synthesis
def blend_weights(length: int, change_frame: int, blend_frames: int) -> np.ndarray:
    """ω1 ``[length]`` of BSP eq. (1): the weight of the first clip at each output frame.

    In 1-based frames ``i`` with ``τ`` = ``change_frame`` and ``ε`` = ``blend_frames``: 1 for
    ``i ≤ τ - ε``, ``(τ + ε - i) / 2ε`` on ``(τ - ε, τ + ε]``, 0 after; ω2 = 1 - ω1."""
    if not 1 <= blend_frames <= change_frame <= length - blend_frames:
        raise ValueError(f"blend over 2ε = {2 * blend_frames} frames around change frame {change_frame} "
                         f"does not fit in {length} frames (need 1 <= ε <= change_frame <= length - ε)")
    i = np.arange(1, length + 1, dtype=np.float64)  # the paper's 1-based frame numbers
    return np.clip((change_frame + blend_frames - i) / (2.0 * blend_frames), 0.0, 1.0)


def _mix(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    w = w.reshape((-1,) + (1,) * (a.ndim - 1))
    out = w * a.astype(np.float64) + (1.0 - w) * b.astype(np.float64)
    if np.issubdtype(a.dtype, np.integer):
        out = np.clip(np.rint(out), np.iinfo(a.dtype).min, np.iinfo(a.dtype).max)
    return out.astype(a.dtype)


def diff_class_boundary(first: np.ndarray, second: np.ndarray, change_frame: int,
                        blend_frames: int) -> tuple[np.ndarray, int]:
    """BSP eq. (1): ``first`` ``[c + ε, ...]`` and ``second`` ``[L - c + ε, ...]`` (frames of two
    classes) -> ``(clip [L, ...], c)``: ``first`` up to frame ``c - ε``, the blend ω1·first +
    ω2·second on the next ``2ε`` frames (``second`` starts at output frame ``c - ε``), ``second`` after.
    Integer frames are blended in float and rounded back."""
    c, eps = int(change_frame), int(blend_frames)
    length = len(first) + len(second) - 2 * eps
    if len(first) != c + eps:
        raise ValueError(f"diff-class boundary at frame {c} with ε={eps} needs {c + eps} frames of the "
                         f"first clip, got {len(first)}")
    w = blend_weights(length, c, eps)
    a = np.concatenate([first, np.repeat(first[-1:], length - len(first), axis=0)])
    b = np.concatenate([np.repeat(second[:1], c - eps, axis=0), second])  # f_{2, i-τ+ε} (eq. 1)
    return _mix(a, b, w), c


def same_class_boundary(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, int]:
    """BSP eq. (2): ``first`` ``[c, ...]`` then ``second`` ``[L - c, ...]`` -> ``(clip [L, ...], c)``;
    no blending (the two clips show the same class)."""
    if len(first) < 1 or len(second) < 1:
        raise ValueError(f"same-class boundary needs frames on both sides, got {len(first)} + {len(second)}")
    return np.concatenate([first, second]), len(first)


def speed_change_indices(length: int, change_frame: int, speed_factor: float) -> np.ndarray:
    """Source frame ``[length]`` (int64) of each output frame of BSP eq. (3): ``f_i`` for ``i ≤ t``,
    ``f_{t + γ(i - t)}`` after (1-based ``i``, ``t`` = ``change_frame``), the nearest frame when the
    index is fractional (halves round up, so ``γ = 1/2`` shows each new frame twice)."""
    if not 1 <= change_frame < length:
        raise ValueError(f"change frame {change_frame} must be in [1, {length - 1}] for a clip of {length}")
    if speed_factor <= 0 or speed_factor == 1:
        raise ValueError(f"speed factor γ={speed_factor} must be > 0 and != 1 (BSP eq. 3)")
    i = np.arange(1, length + 1, dtype=np.float64)
    src = np.where(i <= change_frame, i, change_frame + speed_factor * (i - change_frame))
    return np.floor(src + 0.5).astype(np.int64) - 1  # nearest frame, back to 0-based


def diff_speed_boundary(frames: np.ndarray, length: int, change_frame: int,
                        speed_factor: float) -> tuple[np.ndarray, int]:
    """BSP eq. (3): ``frames`` ``[N, ...]`` of one clip -> ``(clip [length, ...], change_frame)``,
    the rate changing by ``speed_factor`` at ``change_frame``; ``N`` must cover the last source frame
    (``speed_change_indices(...)[-1] + 1``)."""
    idx = speed_change_indices(length, change_frame, speed_factor)
    if idx[-1] >= len(frames):
        raise ValueError(f"speed factor {speed_factor} from frame {change_frame} needs {idx[-1] + 1} "
                         f"source frames, got {len(frames)}")
    return frames[idx], int(change_frame)


def same_speed(frames: np.ndarray) -> tuple[np.ndarray, int]:
    """The no-boundary class ``S_ss`` (§3.2 (4)): the clip as it is, ``change_frame = NO_CHANGE``."""
    return frames, NO_CHANGE


# --------------------------------------------------------------------------------------- dataset
class BSPClipDataset(SegmentClipDataset):
    """Synthesized boundary clips from the foreground segments of a TSP segment table.

    Item ``i`` (key ``(index, epoch)``) starts from segment ``i // clips_per_segment`` and has type
    ``boundaries[(i + epoch) % K]`` in training (every epoch balances the types and rotates them over
    the segments) and ``boundaries[i % K]`` in validation. Every random draw (positions, partner
    segment, change frame, γ) comes from ``default_rng((seed, epoch, index))`` (validation: epoch 0),
    so an epoch's data depends only on ``(seed, epoch)``. An item is a dict:

    - ``clip``: uint8 ``[L, H, W, 3]``;
    - ``boundary_label``: int64, the index of the type in ``boundaries``;
    - ``change_frame``: int64, frames before the boundary (``NO_CHANGE`` = -1 for ``ss``);
    - ``action_label``: int64, the class of a one-class clip (``sc``, ``ds``, ``ss``), ``NO_LABEL`` for
      ``dc`` (two classes);
    - ``video_index``: int64, the primary segment's video.
    """

    def __init__(self, table: pd.DataFrame, video_dir, frames, labels, *, clip_length_frames: int,
                 frame_rate: float, clips_per_segment: int, jitter: bool, seed: int = 0,
                 boundaries=BOUNDARY_TYPES, blend_frames: int = 2, speed_factors=(0.5, 2.0, 3.0),
                 middle_change_point: bool = False):
        super().__init__(table, video_dir, frames, labels, clip_length_frames=clip_length_frames,
                         frame_rate=frame_rate, clips_per_segment=clips_per_segment, jitter=jitter,
                         foreground_only=True, seed=seed)
        self.boundaries = tuple(boundaries)
        self.blend_frames = int(blend_frames)
        self.speed_factors = tuple(float(g) for g in speed_factors)
        self.middle_change_point = bool(middle_change_point)
        actions = self._seg["action_label"]
        self._same = {int(a): np.flatnonzero(actions == a) for a in np.unique(actions)}
        if "dc" in self.boundaries and len(self._same) < 2:
            raise ValueError(f"diff-class boundaries need two action classes; the table's foreground "
                             f"segments have {len(self._same)}")

    def change_frame_range(self) -> tuple[int, int]:
        """``[lo, hi]`` of the change frame: both sides keep ``max(ε, 1)`` frames (eq. 1's blend
        must fit, and every type places its boundary in the same range)."""
        margin = max(self.blend_frames, 1)
        return margin, self.clip_length_frames - margin

    def _read(self, seg: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` consecutive frames of segment ``seg`` from a random start. A segment shorter than ``n``
        is read on past its end (only fast diff-speed clips need more than ``L`` frames), repeating the
        video's last frame at its end."""
        a, b = int(self._seg["first_frame"][seg]), int(self._seg["end_frame"][seg])
        start = int(rng.integers(a, b - n + 1)) if b - a >= n else a
        return read_frames(self._video_frames(int(self._seg["video_index"][seg])), start, n)

    def _synthesize(self, kind: str, seg: int, c: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
        """A clip of type ``kind`` from segment ``seg`` with its boundary after frame ``c``:
        ``(clip [L, H, W, 3], change frame, action label)``."""
        L, eps = self.clip_length_frames, self.blend_frames
        action = int(self._seg["action_label"][seg])
        if kind == "dc":
            partner = int(rng.choice(np.flatnonzero(self._seg["action_label"] != action)))
            clip, c = diff_class_boundary(self._read(seg, c + eps, rng), self._read(partner, L - c + eps, rng),
                                          c, eps)
            return clip, c, NO_LABEL
        if kind == "sc":
            # Two segments of the same class ("two videos V1 and V2 from the same class"); a class
            # with a single segment pairs it with another position of itself.
            same = self._same[action]
            others = same[same != seg]
            partner = int(rng.choice(others)) if len(others) else seg
            return (*same_class_boundary(self._read(seg, c, rng), self._read(partner, L - c, rng)), action)
        if kind == "ds":
            # γ among the factors whose span fits in the segment (γ < 1 always does); a segment too
            # short for every factor takes the smallest and reads on past its end.
            length = int(self._seg["end_frame"][seg] - self._seg["first_frame"][seg])
            spans = {g: int(speed_change_indices(L, c, g)[-1]) + 1 for g in self.speed_factors}
            fitting = [g for g in self.speed_factors if spans[g] <= length]
            gamma = float(rng.choice(fitting)) if fitting else min(self.speed_factors)
            return (*diff_speed_boundary(self._read(seg, spans[gamma], rng), L, c, gamma), action)
        return (*same_speed(self._read(seg, L, rng)), action)

    def __getitem__(self, key) -> dict:
        index, epoch = item_key(key, len(self), fixed=not self.jitter)  # validation: the same clips every epoch
        rng = item_rng(self.seed, epoch, index)
        kind = self.boundaries[(index + epoch) % len(self.boundaries)]
        seg = index // self.clips_per_segment
        lo, hi = self.change_frame_range()
        c = self.clip_length_frames // 2 if self.middle_change_point else int(rng.integers(lo, hi + 1))
        clip, c, action = self._synthesize(kind, seg, c, rng)
        return {
            "clip": torch.from_numpy(np.ascontiguousarray(clip)),
            "boundary_label": torch.tensor(self.boundaries.index(kind), dtype=torch.int64),
            "change_frame": torch.tensor(c, dtype=torch.int64),
            "action_label": torch.tensor(action, dtype=torch.int64),
            "video_index": torch.tensor(self._seg["video_index"][seg], dtype=torch.int64),
        }
