"""Clip sampling for pretraining on untrimmed videos, as TSP does it.

The input is TSP's segment table (``tsplab.datasets.build_segment_table``: one row per
foreground or background segment, columns ``video-name, t-start, t-end, action-label,
video-duration, filename, fps, video-frames, temporal-region-label``). Each row yields
``clips_per_segment`` clips of ``clip_length_frames`` frames at ``frame_rate``: at random starts
inside the segment in training (temporal jittering), evenly spaced in validation (TSP §4.1, "5 clips
per segment, sampled randomly (temporal jittering) during training and uniformly in testing").

Clips are read from decoded frames at the training resolution (``tsplab.video.FrameCache``: one
memory-mapped ``[N, H, W, 3]`` uint8 array per video at ``frame_rate``), so a DataLoader worker only
slices an array; spatial augmentation runs later on the whole batch (``ClipTransform``, on the GPU
when there is one).

Determinism: the sampler yields ``(index, epoch)`` keys and every random draw of an item comes from
``numpy.random.default_rng((seed, epoch, index))``. The data an epoch sees depends only on
``(seed, epoch)``, never on the number of workers or on which worker loads which item, which is what
makes a killed and resumed run bit-identical to an uninterrupted one. Every clip dataset (here, and
BSP's and PAL's in ``tsplab.pretrain.methods``) reads its keys with :func:`item_key`, draws with
:func:`item_rng` and reads frames with :func:`read_frames` (the last frame repeated past a video's end).
"""
from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from tsplab.errors import InputError

#: Region labels (TSP's ``temporal-region-label`` mapping is ``["Action", "No action"]``; eq. (1)
#: writes y_r = 1 for foreground, so the integer labels here follow the equation).
FOREGROUND, BACKGROUND = 1, 0
#: Target of a head that has no label for a clip (the action head on background clips); the losses
#: use it as ``ignore_index`` (TSP eq. (1): background clips only train the region head).
NO_LABEL = -1

SEGMENT_COLUMNS = ("video-name", "t-start", "t-end", "action-label", "video-duration", "filename",
                   "temporal-region-label")


class FrameSource(Protocol):
    """Anything that returns a video's frames at the sampling frame rate as ``[N, H, W, 3]`` uint8
    (``tsplab.video.FrameCache`` in practice; a dict-backed stand-in in tests)."""

    def get(self, video_path) -> np.ndarray: ...


def item_key(key, num_items: int, *, fixed: bool = False) -> tuple[int, int]:
    """``(index, epoch)`` of a dataset key: an ``(index, epoch)`` pair (what :class:`EpochSampler`
    yields) or a plain index (epoch 0). ``fixed`` (validation): epoch 0 whatever the key says, so
    every epoch sees the same items. An index outside ``[0, num_items)`` raises ``IndexError``."""
    index, epoch = key if isinstance(key, tuple) else (key, 0)
    if not 0 <= index < num_items:
        raise IndexError(f"item {index} out of range for {num_items} items")
    return int(index), 0 if fixed else int(epoch)


def item_rng(seed: int, epoch: int, index: int, *salt: int) -> np.random.Generator:
    """The random generator of item ``index`` in ``epoch``: a pure function of ``(seed, epoch,
    index, *salt)``, so an epoch's data never depends on workers or on the order items load in."""
    return np.random.default_rng((int(seed), int(epoch), int(index), *salt))


def frame_indices(start: int, count: int, num_frames: int, stride: int = 1) -> np.ndarray:
    """``count`` frame indices from ``start``, ``stride`` apart; those past the video's last frame
    are the last frame (as ``tsplab.video.read_clip`` does near the end of a video: a frame cache can
    hold a frame or two fewer than the annotated duration implies)."""
    if num_frames < 1:
        raise ValueError("the video has no frames")
    return np.minimum(int(start) + int(stride) * np.arange(int(count)), num_frames - 1)


def read_frames(frames: np.ndarray, start: int, count: int, stride: int = 1) -> np.ndarray:
    """A copy of ``frames[frame_indices(start, count, len(frames), stride)]``: ``[count, ...]``
    (memory-mapped frame caches are read-only; the copy is the item's own)."""
    return np.asarray(frames[frame_indices(start, count, len(frames), stride)])


def segment_frame_bounds(t_start_s: float, t_end_s: float, frame_rate: float,
                         num_frames: int | None = None) -> tuple[int, int]:
    """First frame and one-past-last frame ``[a, b)`` of the frames at ``frame_rate`` that lie inside
    ``[t_start_s, t_end_s]`` (frame j is shown from ``j / frame_rate``), clipped to ``num_frames``."""
    eps = 1e-3  # in frames: annotation times are rounded decimals; do not lose a frame to round-off
    a = max(0, math.ceil(t_start_s * frame_rate - eps))
    b = math.floor(t_end_s * frame_rate + eps)
    if num_frames is not None:
        b = min(b, int(num_frames))
    return a, b


def clip_starts(first_frame: int, end_frame: int, clip_length_frames: int, clips_per_segment: int,
                *, jitter: bool, rng: np.random.Generator | None = None) -> np.ndarray:
    """Start frames ``[clips_per_segment]`` of clips that fit in frames ``[first_frame, end_frame)``.

    ``jitter``: independent uniform draws (TSP's temporal jittering); else evenly spaced from the
    first to the last possible start (TSP's uniform test-time sampling, ``linspace`` in its code).
    """
    last = end_frame - clip_length_frames
    if last < first_frame:
        raise ValueError(f"segment frames [{first_frame}, {end_frame}) are shorter than a clip of "
                         f"{clip_length_frames} frames")
    if jitter:
        rng = rng if rng is not None else np.random.default_rng()
        return rng.integers(first_frame, last + 1, size=clips_per_segment)
    return np.round(np.linspace(first_frame, last, clips_per_segment)).astype(np.int64)


class SegmentClipDataset(Dataset):
    """Clips from the segments of a TSP segment table.

    Item ``i`` is clip ``i % clips_per_segment`` of segment ``i // clips_per_segment``; index it with
    an ``(index, epoch)`` key (what :class:`EpochSampler` yields) or a plain index (epoch 0). An item
    is a dict:

    - ``clip``: uint8 ``[L, H, W, 3]`` (L = ``clip_length_frames``),
    - ``action_label``: int64, the class index in ``labels``, or ``NO_LABEL`` (-1) for background,
    - ``region_label``: int64, ``FOREGROUND`` (1) or ``BACKGROUND`` (0),
    - ``video_index``: int64, the row of the video in ``self.videos`` (GVF lookup),
    - ``t_start_s``: float64, the clip's start time.

    Segments too short for one clip are dropped (as TSP's dataset does) and listed, with the reason,
    in ``self.dropped``. ``foreground_only`` keeps the action segments only (TAC).
    """

    def __init__(self, table: pd.DataFrame, video_dir, frames: FrameSource, labels: list[str], *,
                 clip_length_frames: int, frame_rate: float, clips_per_segment: int = 5,
                 jitter: bool, foreground_only: bool = False, seed: int = 0,
                 open_videos_per_worker: int = 32):
        missing = [c for c in SEGMENT_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"segment table lacks columns {missing}; expected TSP's columns "
                             f"{list(SEGMENT_COLUMNS)}")
        if clip_length_frames < 1 or clips_per_segment < 1 or frame_rate <= 0:
            raise ValueError("clip_length_frames and clips_per_segment must be >= 1 and frame_rate > 0, "
                             f"got {clip_length_frames}, {clips_per_segment}, {frame_rate}")
        self.video_dir = Path(video_dir)
        self.frames = frames
        self.labels = list(labels)
        self.clip_length_frames = int(clip_length_frames)
        self.frame_rate = float(frame_rate)
        self.clips_per_segment = int(clips_per_segment)
        self.jitter = bool(jitter)
        self.seed = int(seed)
        self._open: OrderedDict[str, np.ndarray] = OrderedDict()
        self._open_max = int(open_videos_per_worker)

        rows, dropped = self._segment_rows(table.reset_index(drop=True), foreground_only)
        self.dropped = pd.DataFrame(dropped, columns=[*table.columns, "reason"])
        if len(self.dropped):
            warnings.warn(f"{len(self.dropped)} of {len(table)} segments dropped (shorter than one clip "
                          "or unknown label); see the dataset's .dropped table", stacklevel=2)
        self.segments = pd.DataFrame(rows, columns=["video", "filename", "first_frame", "end_frame",
                                                    "action_label", "region_label"])
        if not len(self.segments):
            longest = float((table["t-end"] - table["t-start"]).max()) if len(table) else 0.0
            raise InputError(f"clip_length_frames: no segment of the table is long enough for one clip of "
                             f"{self.clip_length_frames} frames at {self.frame_rate:g} fps "
                             f"({self.clip_length_frames / self.frame_rate:g} s; the longest of its {len(table)} "
                             f"segments lasts {longest:g} s); give a shorter clip_length_frames")
        #: One row per video (its order is the ``video_index`` of items): ``video, filename``.
        self.videos = (self.segments[["video", "filename"]].drop_duplicates("video")
                       .reset_index(drop=True))
        video_index = {v: i for i, v in enumerate(self.videos["video"])}
        self.segments["video_index"] = self.segments["video"].map(video_index).astype(np.int64)
        self._seg = {c: self.segments[c].to_numpy(np.int64) for c in
                     ("first_frame", "end_frame", "action_label", "region_label", "video_index")}

    def _segment_rows(self, table: pd.DataFrame, foreground_only: bool) -> tuple[list[dict], list[dict]]:
        """``(rows, dropped)``: the segments that hold a clip (frame bounds, labels) and the others,
        each with the reason it was dropped."""
        label_index = {name: i for i, name in enumerate(self.labels)}
        is_fg = table["temporal-region-label"].astype(str).str.strip().str.lower() == "action"
        rows, dropped = [], []
        for row, fg in zip(table.itertuples(index=False), is_fg):
            record = dict(zip(table.columns, row))
            if foreground_only and not fg:
                continue
            if fg and record["action-label"] not in label_index:
                reason = f"action label {record['action-label']!r} is not in the label list"
                dropped.append({**record, "reason": reason})
                continue
            num_frames = math.floor(float(record["video-duration"]) * self.frame_rate + 1e-6)
            a, b = segment_frame_bounds(float(record["t-start"]), float(record["t-end"]),
                                        self.frame_rate, num_frames)
            if b - a < self.clip_length_frames:
                dropped.append({**record, "reason": f"{max(0, b - a)} frames at {self.frame_rate:g} fps, "
                                                    f"shorter than a clip of {self.clip_length_frames}"})
                continue
            rows.append(dict(video=str(record["video-name"]), filename=str(record["filename"]),
                             first_frame=a, end_frame=b,
                             action_label=label_index[record["action-label"]] if fg else NO_LABEL,
                             region_label=FOREGROUND if fg else BACKGROUND))
        return rows, dropped

    def __len__(self) -> int:
        return len(self.segments) * self.clips_per_segment

    @property
    def region_labels(self) -> np.ndarray:
        """Region label ``[len(self)]`` of every item."""
        return np.repeat(self._seg["region_label"], self.clips_per_segment)

    @property
    def balance_groups(self) -> np.ndarray | None:
        """Groups :class:`EpochSampler` balances (foreground vs background; None with one region)."""
        groups = self.region_labels
        return groups if len(np.unique(groups)) > 1 else None

    def video_paths(self) -> list[Path]:
        return [self.video_dir / f for f in self.videos["filename"]]

    def clip_start_frame(self, index: int, epoch: int = 0) -> int:
        """Start frame (at ``frame_rate``) of item ``index`` in ``epoch``."""
        seg, k = divmod(int(index), self.clips_per_segment)
        a, b = int(self._seg["first_frame"][seg]), int(self._seg["end_frame"][seg])
        if self.jitter:
            rng = item_rng(self.seed, epoch, index)
            return int(clip_starts(a, b, self.clip_length_frames, 1, jitter=True, rng=rng)[0])
        return int(clip_starts(a, b, self.clip_length_frames, self.clips_per_segment, jitter=False)[k])

    def _video_frames(self, video_index: int) -> np.ndarray:
        filename = self.videos["filename"].iat[video_index]
        frames = self._open.get(filename)
        if frames is None:
            frames = self.frames.get(self.video_dir / filename)
            self._open[filename] = frames
            # Memory maps hold a file handle each: keep only the most recently used ones open.
            while len(self._open) > self._open_max:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(filename)
        return frames

    def __getitem__(self, key) -> dict:
        index, epoch = item_key(key, len(self))
        seg = index // self.clips_per_segment
        start = self.clip_start_frame(index, epoch)
        clip = read_frames(self._video_frames(int(self._seg["video_index"][seg])), start, self.clip_length_frames)
        return {
            "clip": torch.from_numpy(np.ascontiguousarray(clip)),
            "action_label": torch.tensor(self._seg["action_label"][seg], dtype=torch.int64),
            "region_label": torch.tensor(self._seg["region_label"][seg], dtype=torch.int64),
            "video_index": torch.tensor(self._seg["video_index"][seg], dtype=torch.int64),
            "t_start_s": torch.tensor(start / self.frame_rate, dtype=torch.float64),
        }

    def __getstate__(self):
        # Workers open their own memory maps.
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        return state


class EpochSampler(Sampler):
    """The items of one epoch, as ``(index, epoch)`` keys, for one process of ``num_replicas``.

    - ``balance_groups`` (one integer per item, e.g. the region label): every group is subsampled to
      the size of the smallest, freshly drawn each epoch in training (TSP §3.3: "we subsample clips
      from videos in such a way that we train on the same number of foreground and background clip
      samples"); with ``shuffle=False`` (validation) the draw is fixed, so every epoch validates on the
      same clips.
    - ``shuffle``: a permutation that depends only on ``(seed, epoch)``.
    - Distribution (the role of torch's ``DistributedSampler``): every process computes the same epoch
      list and takes every ``num_replicas``-th item from ``rank``. With ``pad=True`` (training) the
      list is first padded by wrapping around so that every process gets the same count (DDP needs
      the same number of steps on every process); with ``pad=False`` (validation) nothing is repeated.

    Call :meth:`set_epoch` before each epoch.
    """

    def __init__(self, num_items: int, *, seed: int = 0, shuffle: bool = True,
                 balance_groups: np.ndarray | None = None, num_replicas: int = 1, rank: int = 0,
                 pad: bool = True):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        if balance_groups is not None and len(balance_groups) != num_items:
            raise ValueError(f"balance_groups has {len(balance_groups)} entries for {num_items} items")
        self.num_items = int(num_items)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.balance_groups = None if balance_groups is None else np.asarray(balance_groups)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.pad = pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_indices(self, epoch: int | None = None) -> np.ndarray:
        """The item indices of ``epoch`` for all processes together, in order."""
        epoch = self.epoch if epoch is None else int(epoch)
        # Validation draws the same balanced subset every epoch; training redraws it.
        draw_epoch = epoch if self.shuffle else 0
        rng = np.random.default_rng((self.seed, draw_epoch, 7919))
        if self.balance_groups is None:
            indices = np.arange(self.num_items)
        else:
            groups = [np.flatnonzero(self.balance_groups == g) for g in np.unique(self.balance_groups)]
            size = min(len(g) for g in groups)
            indices = np.sort(np.concatenate([rng.choice(g, size, replace=False) for g in groups]))
        if self.shuffle:
            indices = indices[np.random.default_rng((self.seed, epoch)).permutation(len(indices))]
        return indices

    def _local(self) -> np.ndarray:
        indices = self.epoch_indices()
        if self.pad and len(indices) % self.num_replicas:
            extra = self.num_replicas - len(indices) % self.num_replicas
            indices = np.concatenate([indices, np.resize(indices, extra)])
        return indices[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(int(i), self.epoch) for i in self._local()])

    def __len__(self) -> int:
        n = self.num_items
        if self.balance_groups is not None:
            _, counts = np.unique(self.balance_groups, return_counts=True)
            n = int(counts.min()) * len(counts)
        if self.pad:
            return math.ceil(n / self.num_replicas)
        return len(range(self.rank, n, self.num_replicas))


def holdout_videos(table: pd.DataFrame, share: float, seed: int,
                   min_videos: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, held_out)``: the rows of a segment table split by video, ``share`` of its videos
    (rounded; at least ``min_videos`` and at most all but 1) held out, drawn by ``seed`` from the
    sorted video ids. ``min_videos`` 3: a PAL pair needs its source and two background videos, and
    fewer validation videos say little about an epoch.

    Why: model selection (``best.pt``) needs validation videos that are neither trained on nor the
    ones a localizer is later scored on; TSP §4.1 selects on the validation subset, which on the
    synthetic benchmark is also the localizer's test set. Splitting by video (not by segment) keeps
    every clip of a held-out video out of training."""
    videos = np.array(sorted(table["video-name"].astype(str).unique()))
    if len(videos) < 2:
        raise ValueError(f"holding out videos for validation needs at least 2 training videos, "
                         f"the table has {len(videos)}")
    count = min(max(int(round(share * len(videos))), min_videos), len(videos) - 1)
    held = set(np.random.default_rng((int(seed), 4049)).choice(videos, count, replace=False))
    mask = table["video-name"].astype(str).isin(held)
    return table[~mask].reset_index(drop=True), table[mask].reset_index(drop=True)


class EpochOfLength(Dataset):
    """``length`` items per epoch drawn from ``dataset`` (a clip dataset indexed by ``(index, epoch)``
    keys): item ``i`` of epoch ``e`` is entry ``i`` of ``rounds`` concatenated permutations of the
    dataset's items drawn by ``(seed, e)``, read with the key ``(item, e * rounds + i // len)``, so
    an item repeated within an epoch gets a fresh random draw (another jittered clip start).

    Why: to give two methods the same number of optimiser steps per epoch when their datasets differ
    in size (TAC trains on foreground clips only, TSP on as many background clips beside them)."""

    def __init__(self, dataset, length: int, seed: int = 0):
        if length < 1 or len(dataset) < 1:
            raise ValueError(f"an epoch of {length} items from a dataset of {len(dataset)}: both must be >= 1")
        self.dataset, self.length, self.seed = dataset, int(length), int(seed)
        self.rounds = math.ceil(self.length / len(dataset))
        self.dropped = getattr(dataset, "dropped", pd.DataFrame())
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.length

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng((self.seed, epoch, 104729))
            n = len(self.dataset)
            self._order = (epoch, np.concatenate([rng.permutation(n) for _ in range(self.rounds)]))
        return self._order[1]

    def __getitem__(self, key) -> dict:
        index, epoch = item_key(key, self.length)
        item = int(self._epoch_order(epoch)[index])
        return self.dataset[(item, epoch * self.rounds + index // len(self.dataset))]
