"""Clips through a backbone: the clip grid over a frame array, batched encoding on a device (fp16
autocast on CUDA), the device choice, and ``ClipBatchStream``, which streams the clip windows of many
videos (each decoded once) in batches that run across video boundaries (``clip_batch_loader``: in
this process on a CPU, in DataLoader worker processes beside a GPU), encoded with one batch in
flight on a GPU and by ``EncoderThreads`` on a CPU, which decode the stream in turn between their
batches (``encode_batches``). Pretraining's GVFs use ``encode_frames``; ``tsplab.features.extraction``
streams videos through the other two.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

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


def _decoding_workers(workers: int | None, device: torch.device) -> int:
    """``workers`` if given; else decode in the main process on a CPU (by the ``EncoderThreads`` in
    turn, see ``clip_batch_loader``), and in up to 8 worker processes beside a GPU. On a CPU the model
    already uses every core, so a decoding process only competes with it: measured on 2 cores
    (benchmarks/bench_extract.py, tiny backbone, 60 synthetic videos), inline decoding reached 0.91 x
    model-only throughput against 0.77 with one worker (before the encoder threads existed)."""
    if workers is not None:
        return max(0, int(workers))
    if device.type != "cuda":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def clip_batch_loader(videos: list[tuple[str, Path]], settings: dict, batch_size: int, min_frames: int,
                      workers: int | None, device: torch.device):
    """The clip batches of ``ClipBatchStream(videos, ...)`` with the clip grid of ``settings``
    (``clip_length_frames, frame_rate, stride_frames, short_side``), decoded in
    ``_decoding_workers(workers, device)`` DataLoader processes (never more than there are videos),
    or, with none, the stream itself: decoded in this process as it is iterated (between batches by
    one thread, in turn by ``EncoderThreads``)."""
    stream = ClipBatchStream(videos, settings["clip_length_frames"], settings["frame_rate"],
                             settings["stride_frames"], settings["short_side"], batch_size, min_frames)
    workers = min(_decoding_workers(workers, device), len(videos))
    if workers == 0:
        return stream
    return DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=device.type == "cuda",
                      worker_init_fn=_worker_init if workers else None,
                      prefetch_factor=4 if workers else None, persistent_workers=False)


def encoder_threads(threads: int | None, device: torch.device, workers: int | None) -> int:
    """How many threads run the model (``EncoderThreads``): ``threads`` if given; else 2 on a CPU
    with at least 2 torch threads when no worker process decodes (they then split torch's threads),
    else 1. Measured on 2 cores only (``benchmarks/bench_extract.py``); a machine with many cores
    may gain from more, which ``threads`` allows."""
    if threads is not None:
        if not (isinstance(threads, int) and threads >= 1):
            raise InputError(f"encoder_threads: {threads!r} is not a number of threads; valid: an "
                             f"integer >= 1, or None (auto)")
        return threads
    if device.type != "cpu" or _decoding_workers(workers, device) or torch.get_num_threads() < 2:
        return 1
    return 2


def intra_op_threads(threads: int) -> int:
    """torch threads each of ``threads`` ``EncoderThreads`` runs the model with: an equal share."""
    return max(1, torch.get_num_threads() // threads)


def encode_batches(backbone, loader, transform, device, threads: int = 1):
    """Yield ``(item, features)`` for every item of a ``clip_batch_loader``: ``features`` ``[B, C]``
    float32 numpy, or ``None`` for an item without clips (events only).

    One batch in flight: batch k is queued on the device before batch k-1's features are copied
    back, so a GPU never idles while the caller files batches. The loader's iterator is closed when
    this generator ends or is closed (an open video is closed with it). ``threads > 1`` (a CPU
    only): ``EncoderThreads``, each with an equal share of torch's threads."""
    if threads > 1:
        if device.type != "cpu":
            raise ValueError(f"encoder threads run on a CPU only, got device {device}")
        yield from EncoderThreads(backbone, loader, transform, threads, intra_op_threads(threads))
        return
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


class EncoderThreads:
    """Encode the items of ``items`` (e.g. a ``ClipBatchStream`` iterated in this process) in
    ``threads`` Python threads that share ``backbone`` on the CPU: each thread takes the next item
    (the stream decodes it then, under a lock, so videos are decoded in order, one at a time), runs
    the model on it with ``threads_each`` torch threads of its own, and hands ``(item,
    features)`` back. Iterating yields them in ``items``' order: ``features`` ``[B, C]`` float32
    numpy, or ``None`` for an item without clips (events only). The batches are the stream's, so
    the features are bit for bit those of one thread running the model with ``threads_each`` torch
    threads (the tests check it). Against one thread with all of torch's threads they differ in
    float rounding only: CPU convolutions sum in another order with another number of threads
    (around the 6th digit; ``metadata.json`` records the threads per batch).

    Why threads of the model rather than more threads inside it: a small model's OpenMP threads wait
    for each other at every operation. On 2 cores two intra-op threads ran the tiny backbone only
    1.6x faster than one, while two of these threads with one intra-op thread each ran it 1.1-1.2x
    faster than the two intra-op threads (``benchmarks/bench_extract.py``). And decoding happens in
    these same threads, between one thread's batches, so it never preempts a forward pass in the
    middle of a parallel region (what a decode-ahead thread beside two OpenMP threads does).

    At most ``max_ahead`` items (default ``2 * threads``) are taken and not yet consumed: memory stays
    at a few batches. An exception raised by ``items`` or by the model is raised again in the
    consumer after the items before it. When the consumer stops (the end, an error, ``close()``,
    ``KeyboardInterrupt``), the threads are told to stop and joined, ``items``' iterator is closed
    (and so the video file it had open), and torch's thread count is restored.
    """

    def __init__(self, backbone, items, transform, threads: int = 2, threads_each: int = 1,
                 max_ahead: int | None = None, join_timeout_s: float = 60.0):
        if threads < 1 or threads_each < 1:
            raise ValueError(f"threads and threads_each must be >= 1, got {threads}, {threads_each}")
        self.backbone, self.items, self.transform = backbone, items, transform
        self.threads, self.threads_each = threads, threads_each
        self.max_ahead = max_ahead or 2 * threads
        self.join_timeout_s = join_timeout_s
        self.started: list[threading.Thread] = []  # the last iteration's (tests check they end)

    def __iter__(self):
        shared = _SharedItems(iter(self.items), self.max_ahead)
        torch_threads = torch.get_num_threads()
        self.started = [threading.Thread(target=_encode_taken, name=f"tsplab-encoder-{k}", daemon=True,
                                         args=(shared, self.backbone, self.transform, self.threads_each))
                        for k in range(self.threads)]
        for thread in self.started:
            thread.start()
        try:
            while True:
                kind, item, feats = shared.next_result()
                if kind == "item":
                    yield item, feats
                elif kind == "error":
                    raise item
                else:  # "end"
                    return
        finally:
            self._stop(shared)
            torch.set_num_threads(torch_threads)  # the threads changed torch's process-wide count

    def _stop(self, shared: "_SharedItems") -> None:
        shared.stop()
        for thread in self.started:
            thread.join(self.join_timeout_s)
        if any(thread.is_alive() for thread in self.started):  # stuck in FFmpeg or the model; daemon
            log.warning("encoder threads still running %.0f s after being told to stop; the video "
                        "being decoded stays open until they end", self.join_timeout_s)
            return
        close = getattr(shared.iterator, "close", None)
        if close is not None:  # a generator: its ``with`` blocks (open videos) exit here
            close()


class _SharedItems:
    """What ``EncoderThreads``' threads share: the items' iterator (taken under ``take_lock``, one
    sequence number per item) and the results by sequence number, handed out in order."""

    def __init__(self, iterator, max_ahead: int):
        self.iterator, self.max_ahead = iterator, max_ahead
        self.take_lock = threading.Lock()
        self.changed = threading.Condition()
        self.results: dict[int, tuple] = {}  # sequence number -> (kind, item or error, features)
        self.taken = self.handed_out = 0
        self.finished = self.stopped = False

    def take(self):
        """``(seq, kind, value)`` of the next item (``"item"``, or ``"end"`` / ``"error"`` once the
        iterator ends or raises); None once it has, or when stopped. Waits while ``max_ahead`` items
        are out and not handed to the consumer yet."""
        with self.take_lock:  # the room is checked and taken at once: never more than max_ahead out
            with self.changed:
                self.changed.wait_for(lambda: self.stopped or self.taken - self.handed_out < self.max_ahead)
            if self.finished or self.stopped:
                return None
            seq, self.taken = self.taken, self.taken + 1
            try:
                return seq, "item", next(self.iterator)
            except StopIteration:
                self.finished = True
                return seq, "end", None
            except BaseException as exc:  # noqa: BLE001 - raised again in the consumer
                self.finished = True
                return seq, "error", exc

    def put(self, seq: int, kind: str, value, feats=None) -> None:
        with self.changed:
            self.results[seq] = (kind, value, feats)
            self.changed.notify_all()

    def next_result(self, poll_s: float = 0.1) -> tuple:
        """The result of the next item in order (waits for it; wakes up now and then, so that
        Ctrl-C reaches the consumer)."""
        with self.changed:
            while self.handed_out not in self.results:
                self.changed.wait(poll_s)
            self.handed_out += 1
            self.changed.notify_all()
            return self.results.pop(self.handed_out - 1)

    def stop(self) -> None:
        with self.changed:
            self.stopped = True
            self.changed.notify_all()


def _encode_taken(shared: _SharedItems, backbone, transform, threads_each: int) -> None:
    """One of ``EncoderThreads``' threads: take items and encode them until the items end, one
    raises, or the consumer stops."""
    torch.set_num_threads(threads_each)  # this thread's OpenMP team (and torch's default)
    while (taken := shared.take()) is not None:
        seq, kind, item = taken
        if kind != "item":
            shared.put(seq, kind, item)
            return
        try:
            feats = encode_clips(backbone, item["frames"], transform) if len(item["videos"]) else None
        except BaseException as exc:  # noqa: BLE001 - raised again in the consumer
            shared.put(seq, "error", exc)
            shared.stop()
            return
        shared.put(seq, "item", item, feats)
