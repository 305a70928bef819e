"""Clips through a backbone: the clip grid over a frame array, batched encoding on a device (fp16
autocast on CUDA), the device choice, and ``ClipBatchStream``, which streams the clip windows of many
videos (each decoded once) in batches that run across video boundaries. Pretraining's GVFs use
``encode_frames``; ``tsplab.features.extraction`` streams videos through ``ClipBatchStream`` and
``tsplab.features.concurrency`` (which decodes beside the model).
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset

from tsplab.errors import InputError
from tsplab.video import iter_clip_windows, num_clip_windows

log = logging.getLogger(__name__)


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
    return features_to_numpy(forward_clips(backbone, clips, transform, device))


def forward_clips(backbone, clips, transform, device) -> torch.Tensor:
    """``encode_clips`` without waiting for the result: features ``[B, C]`` still on ``device`` (on a
    GPU the kernels are queued and run while the caller goes on)."""
    clips = torch.as_tensor(clips)
    with torch.inference_mode(), _autocast(device):
        return backbone(transform(clips.to(device, non_blocking=True)))


def features_to_numpy(features: torch.Tensor) -> np.ndarray:
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
        raise InputError(f"device: {device!r} is not a device; valid: auto, cpu, cuda, "
                         f"cuda:N") from exc
    if picked.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device: {device!r} asked for, but this machine has no CUDA GPU; "
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
                 stride_frames: int, short_side: int | None, batch_size: int, min_frames: int = 1,
                 clip_rule: str = "pad"):
        self.videos = list(videos)
        self.clip_length_frames = clip_length_frames
        self.frame_rate = frame_rate
        self.stride_frames = stride_frames
        self.short_side = short_side
        self.batch_size = batch_size
        self.min_frames = min_frames
        self.clip_rule = clip_rule  # "pad" or "tsp" (tsplab.video.num_clip_windows)

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
        short one (probed with the same opening of the file that decodes it)."""
        yield from iter_clip_windows(path, self.clip_length_frames, self.frame_rate, self.stride_frames,
                                     short_side=self.short_side, min_frames=self.min_frames,
                                     clip_rule=self.clip_rule)


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
