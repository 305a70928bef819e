"""The encoder threads of CPU feature extraction (``tsplab.features.encoding.EncoderThreads``): the
same features as one thread decoding inline with as many torch threads per batch, failures and
resume as before, results in order, a bounded number of items out, torch's thread count restored,
and no thread left behind after an error or Ctrl-C."""
from __future__ import annotations

import contextlib
import dataclasses
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

THREAD_PREFIX = "tsplab-encoder-"


def _encoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


@pytest.fixture
def spy_encoder_threads(monkeypatch):
    """The ``EncoderThreads`` iterations started (so a test knows the threaded path ran)."""
    started = []
    original = E.EncoderThreads.__iter__

    def counting(self):
        started.append(self)
        return original(self)

    monkeypatch.setattr(E.EncoderThreads, "__iter__", counting)
    return started


def _config(tiny_benchmark, out, **kw):
    # The tiny benchmark's clip (8 frames at 15 fps on 16 px) with stride 8 keeps the run short; a
    # batch of 5 runs across video boundaries, so batches mix videos as in real runs.
    settings = dict(backbone="r2plus1d_tiny", clip_length_frames=8, frame_rate=15.0, stride_frames=8,
                    short_side=16, crop_size=16, batch_size=5, workers=None, device="cpu")
    return ExtractionConfig(videos=str(tiny_benchmark / "videos"), out_dir=str(out), **{**settings, **kw})


@contextlib.contextmanager
def one_torch_thread():
    """What each of two encoder threads runs a batch with on 2 cores. CPU convolutions round
    differently with another number of threads (features differ around the 6th digit), so the
    references for bit-identity are made with it too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _inline(config):
    """One model thread decoding inline between batches, one torch thread."""
    with one_torch_thread():
        return X.extract_features(dataclasses.replace(config, model_threads=1))


@pytest.fixture(scope="module")
def inline_features(tiny_benchmark, tmp_path_factory):
    """The tiny benchmark extracted by one model thread decoding inline between batches."""
    out = tmp_path_factory.mktemp("inline")
    with pytest.warns(UserWarning, match="RANDOM weights"):
        summary = _inline(_config(tiny_benchmark, out))
    assert set(summary.status) == {"done"} and len(summary) == 18
    return out


class _Model(torch.nn.Module):
    """A stand-in backbone: the mean of each clip (``[B, 3, L, H, W]`` -> ``[B, 3]``), or an error."""

    def __init__(self, fail_on_batch_of: int | None = None):
        super().__init__()
        self.fail_on_batch_of = fail_on_batch_of

    def forward(self, clips):
        if len(clips) == self.fail_on_batch_of:
            raise RuntimeError("out of memory (a stand-in)")
        return clips.float().mean(dim=(2, 3, 4))


def _items(sizes):
    """Items as a ``ClipBatchStream`` makes them: batch k's frames all equal to k."""
    for k, size in enumerate(sizes):
        yield dict(frames=torch.full((size, 2, 2, 2, 3), k, dtype=torch.uint8), videos=[f"v{k}"] * size,
                   index=torch.arange(size), events=[])


def _transform(clips):  # uint8 [B, L, H, W, 3] -> float [B, 3, L, H, W]
    return clips.permute(0, 4, 1, 2, 3).float()


def test_the_cpu_default_for_small_frames_is_two_model_threads_and_gpus_keep_worker_processes(
        tiny_benchmark, tmp_path, monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    videos = X.find_videos(tiny_benchmark / "videos")  # 32x32 frames (large ones: test_decode_ahead)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert E.encoder_threads(None, cpu, None, videos) == 2
    assert E.encoder_threads(None, cpu, 2, videos) == 1  # worker processes decode: one model thread
    assert E.encoder_threads(None, cuda, None, videos) == 1
    assert E.encoder_threads(3, cpu, None, videos) == 3  # an explicit choice is kept
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert E.encoder_threads(None, cpu, None, videos) == 1  # one core: nothing to split
    with pytest.raises(InputError, match=r"model_threads \(--model-threads\): 0 .* integer >= 1"):
        X.extract_features(_config(tiny_benchmark, tmp_path / "never", model_threads=0))
    assert not (tmp_path / "never").exists()  # refused before the folder is made
    settings = dict(clip_length_frames=8, frame_rate=15.0, stride_frames=8, short_side=16)
    # without worker processes the stream itself: decoded by whichever thread iterates it
    assert isinstance(E.clip_batch_loader(videos, settings, 4, 1, None, cpu, model_threads=2), ClipBatchStream)
    beside_gpu = E.clip_batch_loader(videos, settings, 4, 1, None, cuda)
    assert isinstance(beside_gpu, torch.utils.data.DataLoader) and beside_gpu.num_workers >= 1
    assert E.clip_batch_loader(videos, settings, 4, 1, 2, cpu).num_workers == 2


def test_results_come_in_order_and_torch_threads_are_restored():
    before = torch.get_num_threads()
    sizes = [3, 1, 4, 0, 2, 5, 1]  # uneven batches finish out of order; 0: an events-only item
    encoder = E.EncoderThreads(_Model(), _items(sizes), _transform, threads=3)
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
def test_an_error_raised_while_producing_reaches_the_consumer_after_the_items_before_it(error):
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


def test_a_model_error_reaches_the_consumer_and_every_thread_ends():
    before = torch.get_num_threads()
    encoder = E.EncoderThreads(_Model(fail_on_batch_of=7), _items([2, 2, 7, 2, 2, 2]), _transform, threads=2)
    got = []
    with pytest.raises(RuntimeError, match="out of memory"):
        got.extend(encoder)
    assert [int(feats[0, 0]) for _, feats in got] == [0, 1]  # the items before the failing one
    assert not any(t.is_alive() for t in encoder.started) and torch.get_num_threads() == before


def test_the_items_out_are_bounded_and_closing_early_stops_the_threads():
    produced, closed = [], []

    def endless():
        try:
            k = 0
            while True:
                produced.append(k)
                yield dict(frames=torch.zeros((1, 2, 2, 2, 3), dtype=torch.uint8), videos=["v"])
                k += 1
        finally:
            closed.append(True)

    encoder = E.EncoderThreads(_Model(), endless(), _transform, threads=2, max_ahead=3)
    iterator = iter(encoder)
    next(iterator)
    deadline = time.monotonic() + 5
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # room for more, were it unbounded
    assert len(produced) == 4  # one handed out, three out (taken, not handed out yet): no more
    iterator.close()
    assert closed == [True] and not any(t.is_alive() for t in encoder.started)


def test_features_with_encoder_threads_are_bit_identical(tiny_benchmark, inline_features, tmp_path,
                                                        spy_encoder_threads):
    out, two_torch_threads = tmp_path / "threads", tmp_path / "two"
    with pytest.warns(UserWarning, match="RANDOM weights"):
        summary = X.extract_features(_config(tiny_benchmark, out, model_threads=2))
    assert len(spy_encoder_threads) == 1  # the threaded path ran
    assert set(summary.status) == {"done"}
    assert F.list_feature_videos(out) == F.list_feature_videos(inline_features)
    for video in F.list_feature_videos(out):
        assert np.array_equal(F.load_features(out, video), F.load_features(inline_features, video)), video
    assert F.FeatureMetadata.load(out).extra["torch_threads_per_batch"] == 1
    assert not _encoder_threads()
    # Against one model thread with all of torch's threads (the way before): equal up to rounding.
    with pytest.warns(UserWarning, match="RANDOM weights"):
        X.extract_features(_config(tiny_benchmark, two_torch_threads, model_threads=1))
    for video in F.list_feature_videos(out):
        np.testing.assert_allclose(F.load_features(out, video), F.load_features(two_torch_threads, video),
                                   rtol=1e-4, atol=1e-6)


def test_a_video_failing_mid_stream_with_encoder_threads_is_recorded_and_the_rest_finish(
        tiny_benchmark, inline_features, tmp_path, monkeypatch, spy_encoder_threads):
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
        summary = X.extract_features(_config(tiny_benchmark, out, model_threads=2))
    with pytest.warns(UserWarning):
        inline = _inline(_config(tiny_benchmark, inline_out))
    assert len(spy_encoder_threads) == 1
    status = dict(zip(summary.video, summary.status))
    assert status == {v: "failed" if v == broken else "done" for v in videos}
    assert summary.equals(inline)  # the same summary as one thread decoding inline
    failures = F.read_failures(out)
    assert list(failures.video) == [broken] and "corrupt packet" in failures.error.iloc[0]
    assert F.list_feature_videos(out) == [v for v in videos if v != broken]
    for video in F.list_feature_videos(out):
        # Bit-identical to the same failure decoded inline; and the neighbours' features are those of
        # a run without the failure (up to batch composition: the broken video's clips are missing).
        assert np.array_equal(F.load_features(out, video), F.load_features(inline_out, video))
        np.testing.assert_allclose(F.load_features(out, video), F.load_features(inline_features, video),
                                   rtol=1e-5, atol=1e-6)
    # A rerun resumes: only the failed video is tried again, and now succeeds.
    monkeypatch.setattr(ClipBatchStream, "windows", original)
    with pytest.warns(UserWarning):
        again = X.extract_features(_config(tiny_benchmark, out, model_threads=2))
    assert dict(zip(again.video, again.status)) == {v: "done" if v == broken else "skipped" for v in videos}
    np.testing.assert_allclose(F.load_features(out, broken), F.load_features(inline_features, broken),
                               rtol=1e-5, atol=1e-6)
    assert not _encoder_threads()


def test_ctrl_c_during_extraction_leaves_no_thread_behind(tiny_benchmark, tmp_path, monkeypatch,
                                                          spy_encoder_threads):
    def interrupted(*args, **kwargs):  # Ctrl-C as the first finished video is being saved
        raise KeyboardInterrupt

    before = torch.get_num_threads()
    monkeypatch.setattr(X, "_finish_video", interrupted)
    with pytest.raises(KeyboardInterrupt) as caught, pytest.warns(UserWarning):
        X.extract_features(_config(tiny_benchmark, tmp_path / "feats", model_threads=2))
    assert len(spy_encoder_threads) == 1
    # Stopped before the exception left extract_features: not left to the garbage collector, which
    # would wait while a caller (here ``caught``) still holds the traceback and its frames.
    assert caught.traceback is not None and not _encoder_threads()
    assert torch.get_num_threads() == before
    assert F.list_feature_videos(tmp_path / "feats") == []  # nothing half-written
