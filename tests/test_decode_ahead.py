"""The decode-ahead thread of CPU feature extraction with one model thread
(``tsplab.features.concurrency.DecodeAhead``): the same features as decoding inline, failures and
resume as before, a bounded queue, and no thread left behind after an error or Ctrl-C."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from tsplab import features as F
from tsplab.features import concurrency as E
from tsplab.features import extraction as X
from tsplab.features.config import ExtractionConfig
from tsplab.features.encoding import ClipBatchStream

THREAD_NAME = "tsplab-decode-ahead"


def _decode_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


@pytest.fixture
def spy_decode_ahead(monkeypatch):
    """Counts the ``DecodeAhead`` iterations started (so a test knows the thread path ran)."""
    started = []
    original = E.DecodeAhead.__iter__

    def counting(self):
        started.append(self)
        return original(self)

    monkeypatch.setattr(E.DecodeAhead, "__iter__", counting)
    return started


def _config(tiny_benchmark, out, **kw):
    # The tiny benchmark's clip (8 frames at 15 fps on 16 px) with stride 8 keeps the run short; a
    # batch of 5 runs across video boundaries, so batches mix videos as in real runs.
    # One model thread: the path this file tests (small frames would get two by default).
    settings = dict(backbone="r2plus1d_tiny", clip_length_frames=8, frame_rate=15.0, stride_frames=8,
                    short_side=16, crop_size=16, batch_size=5, workers=None, model_threads=1, device="cpu")
    return ExtractionConfig(videos=str(tiny_benchmark / "videos"), out_dir=str(out), **{**settings, **kw})


@pytest.fixture(scope="module")
def inline_features(tiny_benchmark, tmp_path_factory):
    """The tiny benchmark extracted with decoding inline between batches (today's CPU path)."""
    out = tmp_path_factory.mktemp("inline")
    with pytest.warns(UserWarning, match="RANDOM weights"):
        summary = X.extract_features(_config(tiny_benchmark, out), decode_ahead=False)
    assert set(summary.status) == {"done"} and len(summary) == 18
    return out


def test_one_model_thread_decodes_small_frames_inline_unless_told(tiny_benchmark):
    videos = X.find_videos(tiny_benchmark / "videos")  # 32x32 frames: inline (decode_ahead_pays)
    settings = dict(clip_length_frames=8, frame_rate=15.0, stride_frames=8, short_side=16)
    inline = E.clip_batch_loader(videos, settings, 4, 1, None, torch.device("cpu"))
    assert isinstance(inline, ClipBatchStream)
    ahead = E.clip_batch_loader(videos, settings, 4, 1, None, torch.device("cpu"), decode_ahead=True)
    assert isinstance(ahead, E.DecodeAhead)
    # two model threads decode in turn: never a decode-ahead thread beside them
    two = E.clip_batch_loader(videos, settings, 4, 1, None, torch.device("cpu"), model_threads=2,
                              decode_ahead=True)
    assert isinstance(two, ClipBatchStream)


def test_decode_ahead_pays_for_frames_above_the_small_size_only(tmp_path):
    from tsplab.video import SMALL_FRAME_MAX_PIXELS, write_video

    frames = np.zeros((4, 242, 322, 3), dtype=np.uint8)  # 322 x 242 > 320 x 240
    large = write_video(tmp_path / "large.mp4", frames, 15.0)
    small = write_video(tmp_path / "small.mp4", frames[:, :240, :320], 15.0)
    assert 322 * 242 > SMALL_FRAME_MAX_PIXELS >= 320 * 240
    assert E.decode_ahead_pays([("large", large), ("small", small)])  # judged by the first video
    assert not E.decode_ahead_pays([("small", small), ("large", large)])
    # a first video that cannot be probed: the thread (its failure is recorded by the stream)
    assert E.decode_ahead_pays([("missing", tmp_path / "missing.mp4")])
    settings = dict(clip_length_frames=4, frame_rate=15.0, stride_frames=4, short_side=16)
    loader = E.clip_batch_loader([("large", large)], settings, 4, 1, None, torch.device("cpu"))
    assert isinstance(loader, E.DecodeAhead)
    # and by default large frames get one model thread (with the decode-ahead thread), small two
    cpu = torch.device("cpu")
    if torch.get_num_threads() >= 2:
        assert E.encoder_threads(None, cpu, None, [("large", large)]) == 1
        assert E.encoder_threads(None, cpu, None, [("small", small)]) == 2


def test_features_with_decode_ahead_are_bit_identical(tiny_benchmark, inline_features, tmp_path,
                                                      spy_decode_ahead):
    out = tmp_path / "ahead"
    with pytest.warns(UserWarning, match="RANDOM weights"):
        summary = X.extract_features(_config(tiny_benchmark, out), decode_ahead=True)
    assert len(spy_decode_ahead) == 1  # the thread path ran
    assert set(summary.status) == {"done"}
    assert F.list_feature_videos(out) == F.list_feature_videos(inline_features)
    for video in F.list_feature_videos(out):
        assert np.array_equal(F.load_features(out, video), F.load_features(inline_features, video)), video
    assert not _decode_ahead_threads()


def test_a_video_failing_mid_stream_with_decode_ahead_is_recorded_and_the_rest_finish(
        tiny_benchmark, inline_features, tmp_path, monkeypatch, spy_decode_ahead):
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
        summary = X.extract_features(_config(tiny_benchmark, out), decode_ahead=True)
    with pytest.warns(UserWarning):
        inline = X.extract_features(_config(tiny_benchmark, inline_out), decode_ahead=False)
    assert len(spy_decode_ahead) == 1
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
        np.testing.assert_allclose(F.load_features(out, video), F.load_features(inline_features, video),
                                   rtol=1e-5, atol=1e-6)
    # A rerun resumes: only the failed video is tried again, and now succeeds.
    monkeypatch.setattr(ClipBatchStream, "windows", original)
    with pytest.warns(UserWarning):
        again = X.extract_features(_config(tiny_benchmark, out), decode_ahead=True)
    assert dict(zip(again.video, again.status)) == {v: "done" if v == broken else "skipped" for v in videos}
    np.testing.assert_allclose(F.load_features(out, broken), F.load_features(inline_features, broken),
                               rtol=1e-5, atol=1e-6)
    assert not _decode_ahead_threads()


@pytest.mark.parametrize("error", [ValueError("a bug while decoding"), KeyboardInterrupt()])
def test_an_error_raised_while_producing_reaches_the_consumer_and_the_thread_ends(error):
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


def test_the_queue_is_bounded_and_closing_early_stops_the_thread():
    produced, closed = [], []

    def endless():
        try:
            k = 0
            while True:
                produced.append(k)
                yield k
                k += 1
        finally:
            closed.append(True)

    ahead = E.DecodeAhead(endless(), max_ahead=2)
    iterator = iter(ahead)
    assert next(iterator) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # room for more, were the queue unbounded
    # One taken, two waiting in the queue, one made and waiting for room: no more.
    assert len(produced) == 4
    iterator.close()
    assert closed == [True] and not ahead.thread.is_alive()


def test_ctrl_c_during_extraction_leaves_no_thread_behind(tiny_benchmark, tmp_path, monkeypatch,
                                                          spy_decode_ahead):
    def interrupted(*args, **kwargs):  # Ctrl-C as the first finished video is being saved
        raise KeyboardInterrupt

    monkeypatch.setattr(X, "_finish_video", interrupted)
    with pytest.raises(KeyboardInterrupt) as caught, pytest.warns(UserWarning):
        X.extract_features(_config(tiny_benchmark, tmp_path / "feats"), decode_ahead=True)
    assert len(spy_decode_ahead) == 1
    # Stopped before the exception left extract_features: not left to the garbage collector, which
    # would wait while a caller (here ``caught``) still holds the traceback and its frames.
    assert caught.traceback is not None and not _decode_ahead_threads()
    assert F.list_feature_videos(tmp_path / "feats") == []  # nothing half-written
