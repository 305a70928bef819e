"""How CPU and GPU extraction keep the machine busy while videos are decoded: the clip batches of a
``ClipBatchStream`` decoded in DataLoader worker processes beside a GPU, and on a CPU either by
two threads that each run the model on one torch thread and decode in turn between their batches
(``EncoderThreads``: small frames, a small model) or by a ``DecodeAhead`` thread beside one model
thread (large frames); ``decoding_plan`` chooses, ``clip_batch_loader`` makes the batches and
``encode_batches`` runs the model over them.

Why two CPU designs: measured on 2 quiet cores by ``benchmarks/bench_extract.py`` (the README's
"Extraction throughput"), each wins at one of its two sizes, and neither at both.
"""
from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from tsplab.errors import InputError
from tsplab.features.encoding import ClipBatchStream, encode_clips, features_to_numpy, forward_clips
from tsplab.video import SMALL_FRAME_MAX_PIXELS, probe_video

log = logging.getLogger(__name__)


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

    On Linux the thread runs at the lowest CPU priority (``lower_priority``): the model's threads
    take a core whenever they want one, and decoding fills the time they leave idle instead of
    preempting one of them in the middle of a parallel region (which makes the others wait).

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
    lower_priority()
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


# The nice value of a decode-ahead thread: the lowest priority, so that decoding fills the time the
# model's threads leave idle instead of preempting one of them (README, "Extraction throughput").
DECODE_NICE = 19


def lower_priority(nice: int = DECODE_NICE) -> bool:
    """Give the calling thread (and the threads it starts, e.g. FFmpeg's) the CPU priority ``nice``;
    whether it did. Linux only: there ``setpriority`` takes a thread id; elsewhere it would renice
    the whole process, so nothing is done. Raising one's own nice value needs no privilege; a
    sandbox that refuses it leaves the priority as it was."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError:
        return False
    return True


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
    """``workers`` if given; else decode in the main process on a CPU (see ``clip_batch_loader``), and
    in up to 8 worker processes beside a GPU. On a CPU the model already uses every core, so a
    decoding process only competes with it (README, "Extraction throughput")."""
    if workers is not None:
        return max(0, int(workers))
    if device.type != "cuda":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def decode_ahead_pays(videos: list[tuple[str, Path]]) -> bool:
    """Whether CPU extraction of ``videos`` runs one model thread with a ``DecodeAhead`` thread
    beside it (True) rather than ``EncoderThreads``: yes for frames larger than
    ``tsplab.video.SMALL_FRAME_MAX_PIXELS`` (judged by the first video; True when it cannot be
    probed, whose failure is then recorded as usual), no for smaller ones.

    Why: the frame size stands for the two sizes ``benchmarks/bench_extract.py`` measures (README,
    "Extraction throughput"). With small frames and the tiny model, whose two OpenMP threads wait
    for each other at every small operation, two model threads of one torch thread each run the
    model faster than one of two and decode in turn, while a decode-ahead thread would preempt an
    OpenMP thread and make the whole parallel region wait. With 720p frames and r2plus1d_18, two
    model threads are no faster than one and leave no idle core, while one model thread leaves idle
    time that hides a decode-ahead thread's work."""
    if not videos:
        return True
    try:
        info = probe_video(videos[0][1])
    except Exception:  # noqa: BLE001 - the stream records this video's failure with its reason
        return True
    return info.width * info.height > SMALL_FRAME_MAX_PIXELS


def clip_batch_loader(videos: list[tuple[str, Path]], settings: dict, batch_size: int, min_frames: int,
                      workers: int | None, device: torch.device, *, model_threads: int = 1,
                      decode_ahead: bool = False):
    """The clip batches of ``ClipBatchStream(videos, ...)`` with the clip grid of ``settings``
    (``clip_length_frames, frame_rate, stride_frames, short_side``, optionally ``clip_rule`` and
    ``resize``: with ``"tsp"`` frames are decoded at their own size), decoded in
    ``_decoding_workers(workers, device)`` DataLoader processes (never more than there are videos),
    or, with none, in this process: by the ``EncoderThreads`` in turn (``model_threads > 1``: the
    stream itself), else by a ``DecodeAhead`` thread while the model runs (``decode_ahead``), else
    inline between batches. ``decoding_plan`` chooses ``model_threads`` and ``decode_ahead``."""
    # TSP's fixed resize happens in the transform, from the decoded size, as TSP's extractor does it.
    short_side = None if settings.get("resize") == "tsp" else settings["short_side"]
    stream = ClipBatchStream(videos, settings["clip_length_frames"], settings["frame_rate"],
                             settings["stride_frames"], short_side, batch_size, min_frames,
                             settings.get("clip_rule", "pad"))
    workers = min(_decoding_workers(workers, device), len(videos))
    if workers == 0:
        return DecodeAhead(stream) if model_threads == 1 and decode_ahead else stream
    return DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=device.type == "cuda",
                      worker_init_fn=_worker_init if workers else None,
                      prefetch_factor=4 if workers else None, persistent_workers=False)


def decoding_plan(videos: list[tuple[str, Path]], device: torch.device, workers: int | None,
                  model_threads: int | None = None, decode_ahead: bool | None = None) -> tuple[int, bool]:
    """``(model threads, decode-ahead thread?)`` for a run, the frames probed at most once.

    On a CPU without worker processes, for what is not given: 2 model threads (``EncoderThreads``)
    with at least 2 torch threads and small frames (not ``decode_ahead_pays(videos)``), else 1; and
    with one model thread, a ``DecodeAhead`` thread for large frames. Elsewhere one model thread and
    no decode-ahead thread (DataLoader workers decode); more model threads beside workers on a CPU
    are allowed, on a GPU refused (``InputError``). Measured on 2 cores only
    (``benchmarks/bench_extract.py``); a machine with many cores may gain from more model threads
    (``ExtractionConfig.model_threads``, ``--model-threads``)."""
    if device.type != "cpu":
        if model_threads is not None and model_threads > 1:
            raise InputError(f"model_threads: {model_threads} is for a CPU; valid on "
                             f"{device}: 1 or none (worker processes decode beside a GPU)")
        return 1, False
    if _decoding_workers(workers, device):
        return model_threads or 1, False
    undecided = model_threads is None or (model_threads == 1 and decode_ahead is None)
    large = decode_ahead_pays(videos) if undecided else None
    if model_threads is None:
        model_threads = 2 if torch.get_num_threads() >= 2 and not large else 1
    if decode_ahead is None:
        decode_ahead = large
    return model_threads, bool(decode_ahead) and model_threads == 1


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
            feats = forward_clips(backbone, item["frames"], transform, device) if len(item["videos"]) else None
            if pending is not None:
                yield pending[0], None if pending[1] is None else features_to_numpy(pending[1])
            pending = (item, feats)
        if pending is not None:
            yield pending[0], None if pending[1] is None else features_to_numpy(pending[1])
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
    for each other at every operation: on 2 cores two of these threads with one intra-op thread each
    run the tiny backbone faster than two intra-op threads do (README, "Extraction throughput"). And
    decoding happens in
    these same threads, between one thread's batches, so it never preempts a forward pass in the
    middle of a parallel region (what a decode-ahead thread beside two OpenMP threads does).
    A run of few batches loses some of it: the last thread still encoding has one torch thread.

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

    def _stop(self, shared: _SharedItems) -> None:
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
