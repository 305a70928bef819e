"""Decoding beside the model in CPU feature extraction (``tsplab.features.concurrency``): the two
model threads that decode in turn (``EncoderThreads``) and the decode-ahead thread beside one model
thread (``DecodeAhead``), and which is chosen. Each gives the features of one thread decoding
inline with as many torch threads per batch, bit for bit; failures and resume behave as inline;
results come in order, the items out are bounded, torch's thread count is restored, and no thread
is left behind after an error or Ctrl-C."""
from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest
import torch

from tsplab import features as F
from tsplab.errors import InputError
from tsplab.features import concurrency as E
from tsplab.features import extraction as X
from tsplab.features.config import ExtractionConfig
from tsplab.features.encoding import ClipBatchStream
from tsplab.threads import torch_threads

# The two paths under test: the extraction options that take each, the class doing the work, and
# the torch threads per batch of the inline run it must equal bit for bit (CPU convolutions round
# differently with another number of threads: features differ around the 6th digit).
PATHS = {
    "two model threads": dict(options=dict(model_threads=2), decode_ahead=None, cls=E.EncoderThreads,
                              torch_threads=1),
    "decode-ahead": dict(options=dict(model_threads=1), decode_ahead=True, cls=E.DecodeAhead,
                         torch_threads=None),
}


def _our_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("tsplab-encoder-", "tsplab-decode-ahead"))]


def _config(tiny_benchmark, out, **kw):
    # The tiny benchmark's clip (8 frames at 15 fps on 16 px) with stride 8 keeps the run short; a
    # batch of 5 runs across video boundaries, so batches mix videos as in real runs.
    settings = dict(backbone="r2plus1d_tiny", clip_length_frames=8, frame_rate=15.0, stride_frames=8,
                    short_side=16, crop_size=16, batch_size=5, workers=None, device="cpu")
    return ExtractionConfig(videos=str(tiny_benchmark / "videos"), out_dir=str(out), **{**settings, **kw})


def _extract(tiny_benchmark, out, path: str | None):
    """Extract the tiny benchmark on ``path`` (None: one model thread decoding inline) and return
    the summary and how many times the path's class was iterated."""
    if path is None:
        return X.extract_features(_config(tiny_benchmark, out, model_threads=1), decode_ahead=False), 0
    p, started = PATHS[path], []
    original = p["cls"].__iter__

    def counting(self):
        started.append(self)
        return original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(p["cls"], "__iter__", counting)
        summary = X.extract_features(_config(tiny_benchmark, out, **p["options"]), decode_ahead=p["decode_ahead"])
    return summary, len(started)


def _inline(tiny_benchmark, out, path: str):
    """One model thread decoding inline, with the torch threads per batch of ``path``."""
    with torch_threads(PATHS[path]["torch_threads"]):
        return _extract(tiny_benchmark, out, None)[0]


@pytest.fixture(scope="module")
def inline_features(tiny_benchmark, tmp_path_factory):
    """path -> the tiny benchmark extracted inline with that path's torch threads per batch."""
    folders = {}
    for path in PATHS:
        folders[path] = tmp_path_factory.mktemp("inline")
        with pytest.warns(UserWarning, match="RANDOM weights"):
            summary = _inline(tiny_benchmark, folders[path], path)
        assert set(summary.status) == {"done"} and len(summary) == 18
    return folders


# --- Which path ----------------------------------------------------------------------------------

def test_the_cpu_default_for_small_frames_is_two_model_threads_and_gpus_keep_worker_processes(
        tiny_benchmark, tmp_path, monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    videos = X.find_videos(tiny_benchmark / "videos")  # 32x32 frames (large ones: the next tests)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert E.decoding_plan(videos, cpu, None) == (2, False)
    assert E.decoding_plan(videos, cpu, 2) == (1, False)  # worker processes decode: one model thread
    assert E.decoding_plan(videos, cuda, None) == (1, False)
    assert E.decoding_plan(videos, cpu, None, model_threads=3) == (3, False)  # an explicit choice is kept
    assert E.decoding_plan(videos, cpu, None, model_threads=1) == (1, False)  # small frames: inline
    assert E.decoding_plan(videos, cpu, None, model_threads=1, decode_ahead=True) == (1, True)
    assert E.decoding_plan(videos, cpu, None, model_threads=2, decode_ahead=True) == (2, False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert E.decoding_plan(videos, cpu, None) == (1, False)  # one core: nothing to split
    with pytest.raises(InputError, match=r"model_threads: 2 is for a CPU"):
        E.decoding_plan(videos, cuda, None, model_threads=2)
    with pytest.raises(InputError, match=r"model_threads: 0 .* integer >= 1"):
        X.extract_features(_config(tiny_benchmark, tmp_path / "never", model_threads=0))
    assert not (tmp_path / "never").exists()  # refused before the folder is made
    settings = dict(clip_length_frames=8, frame_rate=15.0, stride_frames=8, short_side=16)
    # without worker processes the stream itself: decoded by whichever thread iterates it
    assert isinstance(E.clip_batch_loader(videos, settings, 4, 1, None, cpu, model_threads=2), ClipBatchStream)
    beside_gpu = E.clip_batch_loader(videos, settings, 4, 1, None, cuda)
    assert isinstance(beside_gpu, torch.utils.data.DataLoader) and beside_gpu.num_workers >= 1
    assert E.clip_batch_loader(videos, settings, 4, 1, 2, cpu).num_workers == 2


def test_one_model_thread_decodes_inline_unless_told(tiny_benchmark):
    videos = X.find_videos(tiny_benchmark / "videos")
    settings = dict(clip_length_frames=8, frame_rate=15.0, stride_frames=8, short_side=16)
    inline = E.clip_batch_loader(videos, settings, 4, 1, None, torch.device("cpu"))
    assert isinstance(inline, ClipBatchStream)
    ahead = E.clip_batch_loader(videos, settings, 4, 1, None, torch.device("cpu"), decode_ahead=True)
    assert isinstance(ahead, E.DecodeAhead)
    # two model threads decode in turn: never a decode-ahead thread beside them
    two = E.clip_batch_loader(videos, settings, 4, 1, None, torch.device("cpu"), model_threads=2,
                              decode_ahead=True)
    assert isinstance(two, ClipBatchStream)


def test_decode_ahead_pays_for_frames_above_the_small_size_only(tmp_path, monkeypatch):
    from tsplab.video import SMALL_FRAME_MAX_PIXELS, write_video

    frames = np.zeros((4, 242, 322, 3), dtype=np.uint8)  # 322 x 242 > 320 x 240
    large = write_video(tmp_path / "large.mp4", frames, 15.0)
    small = write_video(tmp_path / "small.mp4", frames[:, :240, :320], 15.0)
    assert 322 * 242 > SMALL_FRAME_MAX_PIXELS >= 320 * 240
    assert E.decode_ahead_pays([("large", large), ("small", small)])  # judged by the first video
    assert not E.decode_ahead_pays([("small", small), ("large", large)])
    # a first video that cannot be probed: the thread (its failure is recorded by the stream)
    assert E.decode_ahead_pays([("missing", tmp_path / "missing.mp4")])
    # by default large frames get one model thread with the decode-ahead thread, small ones two
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    probed = []
    original = E.decode_ahead_pays
    monkeypatch.setattr(E, "decode_ahead_pays", lambda videos: probed.append(videos) or original(videos))
    assert E.decoding_plan([("large", large)], cpu, None) == (1, True)
    assert E.decoding_plan([("small", small)], cpu, None) == (2, False)
    assert len(probed) == 2  # once per plan
    assert E.decoding_plan([("large", large)], cpu, None, model_threads=2) == (2, False)
    assert len(probed) == 2  # nothing left to decide: not probed


# --- The two paths inside extraction --------------------------------------------------------------

@pytest.mark.parametrize("path", list(PATHS))
def test_features_are_bit_identical_to_inline_decoding(tiny_benchmark, inline_features, tmp_path, path):
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="RANDOM weights"):
        summary, started = _extract(tiny_benchmark, out, path)
    assert started == 1  # the path ran
    assert set(summary.status) == {"done"}
    reference = inline_features[path]
    assert F.list_feature_videos(out) == F.list_feature_videos(reference)
    for video in F.list_feature_videos(out):
        assert np.array_equal(F.load_features(out, video), F.load_features(reference, video)), video
    if path == "two model threads":
        assert F.FeatureMetadata.load(out).extra["torch_threads_per_batch"] == 1
        # against one model thread with all of torch's threads (the other path's reference): rounding
        for video in F.list_feature_videos(out):
            np.testing.assert_allclose(F.load_features(out, video),
                                       F.load_features(inline_features["decode-ahead"], video),
                                       rtol=1e-4, atol=1e-6)
    assert not _our_threads()


@pytest.mark.parametrize("path", list(PATHS))
def test_a_video_failing_mid_stream_is_recorded_and_the_rest_finish(tiny_benchmark, inline_features, tmp_path,
                                                                    monkeypatch, path):
    from tsplab.video import VideoError

    videos = [v for v, _ in X.find_videos(tiny_benchmark / "videos")]
    broken = videos[3]  # 40-56 frames at 15 fps, stride 8: clips 0-4 exist, clip 3 fails
    original = ClipBatchStream.windows

    def breaks_at_clip_three(self, path):
        for window in original(self, path):
            if broken in str(path) and window.index == 3:  # after three of its clips were batched
                raise VideoError(path, "decoding failed: corrupt packet")
            yield window

    monkeypatch.setattr(ClipBatchStream, "windows", breaks_at_clip_three)
    out, inline_out = tmp_path / "feats", tmp_path / "inline"
    with pytest.warns(UserWarning):
        summary, started = _extract(tiny_benchmark, out, path)
    with pytest.warns(UserWarning):
        inline = _inline(tiny_benchmark, inline_out, path)
    assert started == 1
    status = dict(zip(summary.video, summary.status))
    assert status == {v: "failed" if v == broken else "done" for v in videos}
    assert summary.equals(inline)  # the same summary as decoding inline
    failures = F.read_failures(out)
    assert list(failures.video) == [broken] and "corrupt packet" in failures.error.iloc[0]
    assert F.list_feature_videos(out) == [v for v in videos if v != broken]
    for video in F.list_feature_videos(out):
        # Bit-identical to the same failure decoded inline; and the neighbours' features are those of
        # a run without the failure (up to batch composition: the broken video's clips are missing).
        assert np.array_equal(F.load_features(out, video), F.load_features(inline_out, video))
        np.testing.assert_allclose(F.load_features(out, video), F.load_features(inline_features[path], video),
                                   rtol=1e-5, atol=1e-6)
    # A rerun resumes: only the failed video is tried again, and now succeeds.
    monkeypatch.setattr(ClipBatchStream, "windows", original)
    with pytest.warns(UserWarning):
        again, _ = _extract(tiny_benchmark, out, path)
    assert dict(zip(again.video, again.status)) == {v: "done" if v == broken else "skipped" for v in videos}
    np.testing.assert_allclose(F.load_features(out, broken), F.load_features(inline_features[path], broken),
                               rtol=1e-5, atol=1e-6)
    assert not _our_threads()


@pytest.mark.parametrize("path", list(PATHS))
def test_ctrl_c_during_extraction_leaves_no_thread_behind(tiny_benchmark, tmp_path, monkeypatch, path):
    def interrupted(*args, **kwargs):  # Ctrl-C as the first finished video is being saved
        raise KeyboardInterrupt

    before = torch.get_num_threads()
    monkeypatch.setattr(X, "_finish_video", interrupted)
    with pytest.raises(KeyboardInterrupt) as caught, pytest.warns(UserWarning):
        _extract(tiny_benchmark, tmp_path / "feats", path)
    # Stopped before the exception left extract_features: not left to the garbage collector, which
    # would wait while a caller (here ``caught``) still holds the traceback and its frames.
    assert caught.traceback is not None and not _our_threads()
    assert torch.get_num_threads() == before
    assert F.list_feature_videos(tmp_path / "feats") == []  # nothing half-written


# --- EncoderThreads and DecodeAhead on their own ------------------------------------------------------

class _Model(torch.nn.Module):
    """A stand-in backbone: the mean of each clip (``[B, 3, L, H, W]`` -> ``[B, 3]``), after
    ``sleep_s_per_clip`` per clip (large batches finish last), or an error."""

    def __init__(self, fail_on_batch_of: int | None = None, sleep_s_per_clip: float = 0.0):
        super().__init__()
        self.fail_on_batch_of, self.sleep_s_per_clip = fail_on_batch_of, sleep_s_per_clip

    def forward(self, clips):
        if len(clips) == self.fail_on_batch_of:
            raise RuntimeError("out of memory (a stand-in)")
        time.sleep(self.sleep_s_per_clip * len(clips))
        return clips.float().mean(dim=(2, 3, 4))


def _items(sizes):
    """Items as a ``ClipBatchStream`` makes them: batch k's frames all equal to k."""
    for k, size in enumerate(sizes):
        yield dict(frames=torch.full((size, 2, 2, 2, 3), k, dtype=torch.uint8), videos=[f"v{k}"] * size,
                   index=torch.arange(size), events=[])


def _transform(clips):  # uint8 [B, L, H, W, 3] -> float [B, 3, L, H, W]
    return clips.permute(0, 4, 1, 2, 3).float()


def test_encoder_threads_hand_results_in_order_and_restore_torch_threads():
    before = torch.get_num_threads()
    sizes = [3, 1, 4, 0, 2, 5, 1]  # uneven batches finish out of order; 0: an events-only item
    # a 5-clip batch takes 0.1 s, so later small batches finish before it and wait for their turn
    encoder = E.EncoderThreads(_Model(sleep_s_per_clip=0.02), _items(sizes), _transform, threads=3)
    got = list(encoder)
    assert [len(item["videos"]) for item, _ in got] == sizes
    for k, (item, feats) in enumerate(got):
        if sizes[k] == 0:
            assert feats is None
        else:  # each clip's mean is its batch number: features belong to their own item
            np.testing.assert_array_equal(feats, np.full((sizes[k], 3), k, dtype=np.float32))
    assert torch.get_num_threads() == before
    assert not any(t.is_alive() for t in encoder.started)


@pytest.mark.parametrize("error", [ValueError("a bug while decoding"), KeyboardInterrupt()])
def test_encoder_threads_raise_an_error_of_the_items_after_the_items_before_it(error):
    closed = []

    def items():
        try:
            yield from _items([2, 2, 2])
            raise error
        finally:
            closed.append(True)

    encoder = E.EncoderThreads(_Model(), items(), _transform, threads=2)
    got = []
    with pytest.raises(type(error)):
        got.extend(encoder)
    assert [int(feats[0, 0]) for _, feats in got] == [0, 1, 2]
    assert closed == [True] and not any(t.is_alive() for t in encoder.started)


def test_encoder_threads_raise_a_model_error_and_every_thread_ends():
    before = torch.get_num_threads()
    encoder = E.EncoderThreads(_Model(fail_on_batch_of=7), _items([2, 2, 7, 2, 2, 2]), _transform, threads=2)
    got = []
    with pytest.raises(RuntimeError, match="out of memory"):
        got.extend(encoder)
    assert [int(feats[0, 0]) for _, feats in got] == [0, 1]  # the items before the failing one
    assert not any(t.is_alive() for t in encoder.started) and torch.get_num_threads() == before


def _endless(produced: list, closed: list, item):
    """``item(k)`` for k = 0, 1, ... without end, noting each in ``produced`` and the close in ``closed``."""
    try:
        k = 0
        while True:
            produced.append(k)
            yield item(k)
            k += 1
    finally:
        closed.append(True)


def _settled(produced: list, expected: int) -> int:
    """How many items were produced once production stops (waits for ``expected``, then a little
    longer: room for more, were it unbounded)."""
    deadline = time.monotonic() + 5
    while len(produced) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    return len(produced)


def test_encoder_threads_bound_the_items_out_and_closing_early_stops_them():
    produced, closed = [], []
    clip = dict(frames=torch.zeros((1, 2, 2, 2, 3), dtype=torch.uint8), videos=["v"])
    encoder = E.EncoderThreads(_Model(), _endless(produced, closed, lambda k: clip), _transform, threads=2,
                               max_ahead=3)
    iterator = iter(encoder)
    next(iterator)
    assert _settled(produced, 4) == 4  # one handed out, three out (taken, not handed out yet): no more
    iterator.close()
    assert closed == [True] and not any(t.is_alive() for t in encoder.started)


@pytest.mark.parametrize("error", [ValueError("a bug while decoding"), KeyboardInterrupt()])
def test_decode_ahead_raises_an_error_of_the_items_and_its_thread_ends(error):
    closed = []

    def items():
        try:
            yield from range(3)
            raise error
        finally:
            closed.append(True)

    ahead = E.DecodeAhead(items())
    got = []
    with pytest.raises(type(error)):
        got.extend(ahead)
    assert got == [0, 1, 2]  # everything produced before the error arrives first
    assert closed == [True] and not ahead.thread.is_alive()


def test_decode_ahead_bounds_its_queue_and_closing_early_stops_the_thread():
    produced, closed = [], []
    ahead = E.DecodeAhead(_endless(produced, closed, lambda k: k), max_ahead=2)
    iterator = iter(ahead)
    assert next(iterator) == 0
    # One taken, two waiting in the queue, one made and waiting for room: no more.
    assert _settled(produced, 4) == 4
    iterator.close()
    assert closed == [True] and not ahead.thread.is_alive()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority: Linux only")
def test_decode_ahead_decodes_at_the_lowest_priority_and_leaves_the_model_thread_alone():
    seen = []

    def items():
        for k in range(2):
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            yield k

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert list(E.DecodeAhead(items())) == [0, 1]
    assert seen == [E.DECODE_NICE] * 2 and E.DECODE_NICE == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the consumer's stays


def test_lower_priority_is_a_no_op_where_threads_have_no_priority_of_their_own(monkeypatch):
    monkeypatch.setattr(E.sys, "platform", "darwin")  # setpriority there would renice the process
    calls = []
    monkeypatch.setattr(E.os, "setpriority", lambda *a: calls.append(a))
    assert E.lower_priority() is False and calls == []
