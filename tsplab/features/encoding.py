"""Clips through a backbone: the clip grid over a frame array, batched encoding on a device (fp16
autocast on CUDA), the device choice, and ``ClipBatchStream``, which streams the clip windows of many
videos (each decoded once) in batches that run across video boundaries (``clip_batch_loader``: on a
CPU inline between batches for small frames and in a decode-ahead thread for larger ones, in
DataLoader worker processes beside a GPU), encoded with one batch in
flight (``encode_batches``). Pretraining's GVFs use ``encode_frames``; ``tsplab.features.extraction``
streams videos through the other two.
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from tsplab.errors import InputError
from tsplab.video import SMALL_FRAME_MAX_PIXELS, iter_clip_windows, num_clip_windows, probe_video

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
        short one (probed with the same opening of the file that decodes it)."""
        yield from iter_clip_windows(path, self.clip_length_frames, self.frame_rate, self.stride_frames,
                                     short_side=self.short_side, min_frames=self.min_frames)


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


class DecodeAhead:
    """Iterate ``items`` (e.g. a ``ClipBatchStream``) in a background thread, at most ``max_ahead``
    items ahead of the consumer, so the next batch is decoded while the model runs on this one.

    Why a thread and not a process on a CPU: PyAV decodes and rescales with the GIL released (as
    the forward pass does), so the two overlap within one process, with no copy of every frame
    through a pipe and no second process competing for memory. The items are the ones ``items``
    yields, in order (features stay bit-identical to decoding inline).

    The queue is bounded (``max_ahead`` items, plus the one being built): memory stays at a few
    batches. An exception raised while producing (``items``' own; a ``ClipBatchStream`` records a
    broken video as an event and goes on) is raised again in the consumer. When the consumer stops
    early (an error, ``KeyboardInterrupt``, ``close()``), the thread is told to stop, closes
    ``items``' iterator (and so the video file it had open) and is joined.
    """

    def __init__(self, items, max_ahead: int = 2, join_timeout_s: float = 60.0):
        if max_ahead < 1:
            raise ValueError(f"max_ahead must be >= 1, got {max_ahead}")
        self.items, self.max_ahead, self.join_timeout_s = items, max_ahead, join_timeout_s
        self.thread: threading.Thread | None = None  # the last iteration's (tests check it ends)

    def __iter__(self):
        slots: queue.Queue = queue.Queue(maxsize=self.max_ahead)
        stop = threading.Event()
        self.thread = threading.Thread(target=_produce, args=(self.items, slots, stop),
                                       name="tsplab-decode-ahead", daemon=True)
        self.thread.start()
        try:
            while True:
                kind, value = slots.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:  # "end"
                    return
        finally:
            stop.set()
            self.thread.join(self.join_timeout_s)
            if self.thread.is_alive():  # a decode stuck in FFmpeg; daemon: it cannot block exit
                log.warning("decode-ahead thread still running %.0f s after being told to stop",
                            self.join_timeout_s)


def _produce(items, slots: queue.Queue, stop: threading.Event) -> None:
    """The decode-ahead thread: put ``("item", x)`` for each item, then ``("end", None)``, or
    ``("error", exc)``; return as soon as ``stop`` is set (checked while waiting for room)."""
    iterator = iter(items)
    try:
        for item in iterator:
            if not _put(slots, ("item", item), stop):
                return
        _put(slots, ("end", None), stop)
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
        _put(slots, ("error", exc), stop)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:  # a generator: its ``with`` blocks (open videos) exit in this thread
            close()


def _put(slots: queue.Queue, entry, stop: threading.Event, poll_s: float = 0.05) -> bool:
    """Put ``entry`` once there is room; False (not put) if ``stop`` is set first."""
    while not stop.is_set():
        try:
            slots.put(entry, timeout=poll_s)
            return True
        except queue.Full:
            continue
    return False


def _decoding_workers(workers: int | None, device: torch.device) -> int:
    """``workers`` if given; else decode in the main process on a CPU (inline or in a decode-ahead thread,
    see ``clip_batch_loader``), and in up to 8 worker processes beside a GPU. On a CPU the model already
    uses every core, so a decoding process only competes with it: measured on 2 cores
    (benchmarks/bench_extract.py, tiny backbone, 60 synthetic videos), inline decoding reached 0.91 x
    model-only throughput against 0.77 with one worker (before the decode-ahead thread existed)."""
    if workers is not None:
        return max(0, int(workers))
    if device.type != "cuda":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def decode_ahead_pays(videos: list[tuple[str, Path]]) -> bool:
    """Whether a ``DecodeAhead`` thread speeds up CPU extraction of ``videos``: yes for frames larger
    than ``tsplab.video.SMALL_FRAME_MAX_PIXELS`` (judged by the first video; True when it cannot be
    probed, whose failure is then recorded as usual), no for smaller ones.

    Why: a third thread beside the model's two OpenMP threads on 2 cores preempts one of them, and
    the whole parallel region waits for it. Small frames decode in about 15 % of the model's time, so
    inline decoding between batches costs less than that. Measured on 2 quiet cores
    (``benchmarks/bench_extract.py`` at c86ed34, medians of paired rounds): 64x64 videos, the tiny
    model, end-to-end 509 clips/s inline against 483 with the thread (model only 594); 1280x720,
    r2plus1d_18: the thread 0.97 x model-only."""
    if not videos:
        return True
    try:
        info = probe_video(videos[0][1])
    except Exception:  # noqa: BLE001 - the stream records this video's failure with its reason
        return True
    return info.width * info.height > SMALL_FRAME_MAX_PIXELS


def clip_batch_loader(videos: list[tuple[str, Path]], settings: dict, batch_size: int, min_frames: int,
                      workers: int | None, device: torch.device, *, decode_ahead: bool | None = None):
    """The clip batches of ``ClipBatchStream(videos, ...)`` with the clip grid of ``settings``
    (``clip_length_frames, frame_rate, stride_frames, short_side``), decoded in
    ``_decoding_workers(workers, device)`` DataLoader processes (never more than there are videos),
    or, with none, in this process: by a ``DecodeAhead`` thread while the model runs
    (``decode_ahead=True``), else inline between batches (``False``); ``None`` (the default):
    ``decode_ahead_pays(videos)``."""
    stream = ClipBatchStream(videos, settings["clip_length_frames"], settings["frame_rate"],
                             settings["stride_frames"], settings["short_side"], batch_size, min_frames)
    workers = min(_decoding_workers(workers, device), len(videos))
    if workers == 0 and (decode_ahead_pays(videos) if decode_ahead is None else decode_ahead):
        return DecodeAhead(stream)
    return DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=device.type == "cuda",
                      worker_init_fn=_worker_init if workers else None,
                      prefetch_factor=4 if workers else None, persistent_workers=False)


def encode_batches(backbone, loader, transform, device):
    """Yield ``(item, features)`` for every item of a ``clip_batch_loader``: ``features`` ``[B, C]``
    float32 numpy, or ``None`` for an item without clips (events only).

    One batch in flight: batch k is queued on the device before batch k-1's features are copied
    back, so a GPU never idles while the caller files batches. The loader's iterator is closed when
    this generator ends or is closed (a decode-ahead thread stops with it)."""
    items = iter(loader)
    try:
        pending = None
        for item in items:
            feats = _forward_clips(backbone, item["frames"], transform, device) if len(item["videos"]) else None
            if pending is not None:
                yield pending[0], None if pending[1] is None else _to_numpy(pending[1])
            pending = (item, feats)
        if pending is not None:
            yield pending[0], None if pending[1] is None else _to_numpy(pending[1])
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
