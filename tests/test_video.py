"""Video I/O on tiny MP4s written here. Every frame is a flat colour that encodes its index
(red = 16 * (i % 16), green = 16 * (i // 16)), so a test can tell which source frame was picked after
seeking, resampling or resizing (H.264 and scaling change a flat colour by ~4 levels at most)."""
from __future__ import annotations

import contextlib
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tsplab.video import decode as video_decode
from tsplab.video import frame_cache as video_frame_cache
from tsplab.video import probe as video_probe
from tsplab.video import windows as video_windows
from tsplab.video import (FrameCache, VideoError, decode_frames, iter_clip_windows, num_clip_windows,
                          probe_video, read_clip, standardize_video, standardize_videos, write_video)


def indexed_frames(n: int, height: int = 32, width: int = 32) -> np.ndarray:
    assert n <= 256, "the colour code holds 256 frame indices"
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        frames[i] = (16 * (i % 16), 16 * (i // 16), 128)
    return frames


def frame_ids(frames: np.ndarray) -> list[int]:
    """Source frame index of each decoded frame [T, H, W, 3]."""
    means = frames.reshape(len(frames), -1, 3).mean(axis=1)
    return [int(round(r / 16)) + 16 * int(round(g / 16)) for r, g, _ in means]


def write_timestamped(path: Path, pts_ms: list[int], size: int = 32) -> Path:
    """An H.264 file whose frame i (index-coloured) has presentation time ``pts_ms[i]`` ms: variable
    frame rate, or a stream that does not start at 0."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=None)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"bf": "0", "g": "10"}
        for frame_array, pts in zip(indexed_frames(len(pts_ms), size, size), pts_ms):
            frame = av.VideoFrame.from_ndarray(frame_array, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def shown_at(pts_s: list[float], t_s: float) -> int:
    """Reference rule: the index of the frame shown at ``t_s`` (last with pts <= t)."""
    return max(0, int(np.searchsorted(np.asarray(pts_s), t_s + 1e-9, side="right")) - 1)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    vfr_ms = [0, 40, 50, 120, 200, 210, 300, 420, 430, 500, 560, 700]
    return {
        # 60 frames at 30 fps = 2.0 s, keyframe every second
        "cfr": write_video(folder / "cfr30.mp4", indexed_frames(60), fps=30),
        "wide": write_video(folder / "wide.mp4", indexed_frames(30, 32, 48), fps=15),
        "vfr": write_timestamped(folder / "vfr.mp4", vfr_ms),
        "vfr_ms": vfr_ms,
        # MKV keeps a first timestamp of 1.0 s: start_time != 0, and no frame count in the header
        "offset": write_timestamped(folder / "offset.mkv", [1000 + 100 * i for i in range(30)]),
    }


# ----------------------------------------------------------------------------------------- probe

def test_probe_constant_rate(videos):
    info = probe_video(videos["cfr"])
    assert (info.num_frames, info.width, info.height, info.codec) == (60, 32, 32, "h264")
    assert info.fps == pytest.approx(30)
    assert info.duration_s == pytest.approx(2.0)
    assert info.num_frames_at(15) == 30 and info.num_frames_at(60) == 120
    wide = probe_video(videos["wide"])
    assert (wide.width, wide.height, wide.num_frames) == (48, 32, 30)


def test_probe_without_header_counts(videos):
    info = probe_video(videos["offset"])  # MKV: frame count and duration come from the packets
    assert info.num_frames == 30
    assert info.fps == pytest.approx(10, rel=0.03)
    assert 2.9 < info.duration_s <= 3.0


def test_unreadable_files_name_the_file(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoError, match="nope.mp4.*not found"):
        probe_video(missing)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    for call in (lambda: probe_video(garbage), lambda: read_clip(garbage, 0, 4, 15),
                 lambda: decode_frames(garbage), lambda: next(iter_clip_windows(garbage, 4, 15, 4))):
        with pytest.raises(VideoError, match="garbage.mp4"):
            call()
    audio_only = tmp_path / "tone.wav"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(VideoError, match="tone.wav: no video stream"):
        probe_video(audio_only)


# ------------------------------------------------------------------------------------ read_clip

def test_read_clip_picks_frames_by_time(videos):
    # 30 fps sampled at 15 fps: every other source frame from the one shown at 0.5 s (frame 15)
    clip = read_clip(videos["cfr"], 0.5, 8, 15)
    assert clip.shape == (8, 32, 32, 3) and clip.dtype == np.uint8
    assert frame_ids(clip) == [15, 17, 19, 21, 23, 25, 27, 29]
    # 60 fps: every source frame twice; a start between frames takes the one being shown
    assert frame_ids(read_clip(videos["cfr"], 1.0 + 0.01, 6, 60)) == [30, 30, 31, 31, 32, 32]
    assert frame_ids(read_clip(videos["cfr"], 0, 4, 10)) == [0, 3, 6, 9]


def test_read_clip_always_returns_l_frames_at_the_end(videos):
    # 1.8 s: frames 54, 56, 58 exist; from 2.0 s on the video has ended and frame 59 is repeated
    assert frame_ids(read_clip(videos["cfr"], 1.8, 8, 15)) == [54, 56, 58] + [59] * 5
    assert frame_ids(read_clip(videos["cfr"], 7.5, 16, 15)) == [59] * 16
    with pytest.raises(ValueError, match="t_start_s"):
        read_clip(videos["cfr"], -1.0, 4, 15)


def test_read_clip_resizes_short_side(videos):
    assert read_clip(videos["cfr"], 0.2, 3, 15, short_side=16).shape == (3, 16, 16, 3)
    clip = read_clip(videos["wide"], 1.0, 3, 15, short_side=16)
    assert clip.shape == (3, 16, 24, 3)
    assert frame_ids(clip) == [15, 16, 17]  # flat colours survive the resize


def test_read_clip_recovers_from_a_late_seek(videos, monkeypatch):
    """A broken index can make the seek land after the wanted time; the clip must still be right."""

    class LateSeek:
        def __init__(self, container):
            self._container = container

        def seek(self, offset, *, stream, **kwargs):
            late = offset + int(1.0 / stream.time_base)  # one second too far
            return self._container.seek(late, stream=stream, **kwargs)

        def __getattr__(self, name):
            return getattr(self._container, name)

    opened = []
    real_open = video_probe._open_input

    @contextlib.contextmanager
    def open_late(path):
        with real_open(path) as container:
            opened.append(path)
            yield LateSeek(container)

    monkeypatch.setattr(video_decode, "_open_input", open_late)
    assert frame_ids(read_clip(videos["cfr"], 0.4, 4, 15)) == [12, 14, 16, 18]
    assert len(opened) == 2  # the late seek was noticed and the file decoded from its start


def test_read_clip_on_a_stream_that_starts_late(videos):
    # The MKV's clock starts at 1.0 s; tsplab's time 0 is the first frame, 10 fps
    assert frame_ids(read_clip(videos["offset"], 1.55, 5, 10)) == [15, 16, 17, 18, 19]
    assert frame_ids(decode_frames(videos["offset"], 10)) == list(range(30))


# -------------------------------------------------------------------------------- decode_frames

def test_decode_frames_native_and_resampled(videos):
    assert frame_ids(decode_frames(videos["cfr"])) == list(range(60))
    at_10 = decode_frames(videos["cfr"], 10)
    assert frame_ids(at_10) == list(range(0, 60, 3))
    assert len(at_10) == probe_video(videos["cfr"]).num_frames_at(10)
    at_45 = decode_frames(videos["cfr"], 45, short_side=8)
    assert at_45.shape == (90, 8, 8, 3)
    assert frame_ids(at_45) == [math.floor(k * 30 / 45 + 1e-9) for k in range(90)]


def test_variable_frame_rate_is_resampled_by_timestamps(videos):
    pts_s = [ms / 1000 for ms in videos["vfr_ms"]]
    frames = decode_frames(videos["vfr"], 20)
    info = probe_video(videos["vfr"])
    assert info.num_frames == len(pts_s)
    assert len(frames) == info.num_frames_at(20) == math.ceil(info.duration_s * 20)
    assert frame_ids(frames) == [shown_at(pts_s, k / 20) for k in range(len(frames))]
    clip = read_clip(videos["vfr"], 0.33, 6, 25)
    assert frame_ids(clip) == [shown_at(pts_s, 0.33 + k / 25) for k in range(6)]


# ---------------------------------------------------------------------------- iter_clip_windows

@pytest.mark.parametrize("length, stride", [(8, 6), (4, 8), (16, 16)])
def test_clip_windows_match_read_clip(videos, length, stride):
    frame_rate = 15  # 30 frames at this rate
    windows = list(iter_clip_windows(videos["cfr"], length, frame_rate, stride))
    assert len(windows) == num_clip_windows(30, length, stride)
    for i, window in enumerate(windows):
        assert window.index == i
        assert window.t_start_s == pytest.approx(i * stride / frame_rate)
        assert window.frames.shape == (length, 32, 32, 3)
        assert frame_ids(window.frames) == frame_ids(read_clip(videos["cfr"], window.t_start_s,
                                                               length, frame_rate))
    # the last window is completed with the last frame, never shorter
    assert frame_ids(windows[-1].frames)[-1] == 59


@pytest.mark.parametrize("length, stride", [(8, 2), (5, 1), (6, 6)])
@pytest.mark.parametrize("windows_per_block", [1, 3, 64])
def test_overlapping_windows_cut_in_blocks_are_the_clips_of_read_clip(videos, monkeypatch, length,
                                                                      stride, windows_per_block):
    """Overlapping windows are views of blocks of frames: cut mid-video (3 per block: 30 frames make
    12 windows of 8 every 2, so blocks end inside the video), only at its end (64 per block) or one
    by one; always the frames read_clip decodes for that window, including the padded tail."""
    monkeypatch.setattr(video_windows, "_WINDOW_BLOCK_MAX_WINDOWS", windows_per_block)
    frame_rate = 15  # 30 frames at this rate
    windows = list(iter_clip_windows(videos["cfr"], length, frame_rate, stride))
    assert [w.index for w in windows] == list(range(num_clip_windows(30, length, stride)))
    for window in windows:
        assert window.t_start_s == pytest.approx(window.index * stride / frame_rate)
        expected = read_clip(videos["cfr"], window.t_start_s, length, frame_rate)
        assert frame_ids(window.frames) == frame_ids(expected)
        assert not window.frames.flags.writeable  # shared with its neighbours: not to be changed
    # frame k of the video resampled to 15 fps is source frame 2k; past the end, the last one (59)
    starts = [w.index * stride for w in windows]
    assert [frame_ids(w.frames) for w in windows] == [[min(2 * k, 58) if k < 30 else 58
                                                       for k in range(s, s + length)] for s in starts]


def test_clip_windows_check_the_length_with_the_same_opening(videos, monkeypatch):
    opened = []
    original = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: opened.append(a[0]) or original(*a, **k))
    windows = list(iter_clip_windows(videos["cfr"], 8, 15, 8, min_frames=30))  # 30 frames: enough
    assert len(windows) == 4 and len(opened) == 1
    with pytest.raises(VideoError, match=r"cfr30.mp4: too short: 2.000 s is 30 frame\(s\) at 15 fps, "
                                         r"fewer than 31"):
        next(iter_clip_windows(videos["cfr"], 8, 15, 8, min_frames=31))
    # MKV without a frame count: probing reads the packets, so decoding opens the file again
    windows = list(iter_clip_windows(videos["offset"], 4, 10, 4, min_frames=1))
    assert [frame_ids(w.frames) for w in windows] == [list(range(i, i + 4)) for i in range(0, 28, 4)] + [
        [28, 29, 29, 29]]


def test_small_frames_decode_on_one_thread_large_ones_threaded(videos, tmp_path):
    """Frame threads cost ~30 us of CPU a frame: +45% at 64x64, lost in the noise at 480x270."""
    large = write_video(tmp_path / "large.mp4", np.zeros((2, 240, 322, 3), np.uint8), fps=15)
    for path, threaded in ((videos["cfr"], False), (large, True)):
        with av.open(str(path)) as container:
            stream = video_probe._video_stream(container, path, threaded=None)
            assert (stream.codec_context.thread_count == 1) is not threaded, path


def test_num_clip_windows():
    assert num_clip_windows(30, 8, 6) == 5  # starts 0, 6, 12, 18, 24 (the last padded)
    assert num_clip_windows(32, 16, 16) == 2
    assert num_clip_windows(33, 16, 16) == 3
    assert num_clip_windows(5, 16, 16) == 1
    with pytest.raises(ValueError, match="stride_frames"):
        num_clip_windows(30, 8, 0)


# ---------------------------------------------------------------------------------- standardize

def test_standardize_video_changes_rate_and_size(videos, tmp_path):
    out = standardize_video(videos["wide"], tmp_path / "std.mp4", fps=30, short_side=16)
    info = probe_video(out)
    assert (info.width, info.height, info.num_frames) == (24, 16, 60)
    assert info.fps == pytest.approx(30)
    # 15 -> 30 fps repeats every frame; the VFR file becomes constant-rate by timestamps
    assert frame_ids(decode_frames(out)) == [k // 2 for k in range(60)]
    vfr = standardize_video(videos["vfr"], tmp_path / "vfr_cfr.mp4", fps=20)
    assert frame_ids(decode_frames(vfr)) == frame_ids(decode_frames(videos["vfr"], 20))
    with pytest.raises(ValueError, match="even"):
        standardize_video(videos["wide"], tmp_path / "odd.mp4", short_side=15)


def test_standardize_videos_skips_done_and_records_failures(videos, tmp_path):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    for name in ("cfr", "wide"):
        (in_dir / videos[name].name).write_bytes(videos[name].read_bytes())
    (in_dir / "broken.mp4").write_bytes(b"\x00" * 500)
    (in_dir / "README.txt").write_text("not a video")  # ignored: not a video extension

    first = standardize_videos(in_dir, out_dir, fps=15, workers=2)  # process pool
    assert dict(zip(first.video, first.status)) == {"broken": "failed", "cfr30": "done", "wide": "done"}
    assert "broken.mp4" in first.set_index("video").error["broken"]
    assert probe_video(out_dir / "cfr30.mp4").num_frames == 30
    assert not (out_dir / "broken.mp4").exists()
    assert sorted(p.name for p in out_dir.iterdir()) == ["cfr30.mp4", "wide.mp4"]  # no temp files

    again = standardize_videos(in_dir, out_dir, fps=15, workers=1)
    assert dict(zip(again.video, again.status)) == {"broken": "failed", "cfr30": "skipped",
                                                    "wide": "skipped"}
    with pytest.raises(ValueError, match="must differ"):
        standardize_videos(in_dir, in_dir)


def test_standardize_command(videos, tmp_path, capsys):
    from tsplab.cli import main

    in_dir = tmp_path / "in"
    in_dir.mkdir()
    (in_dir / "wide.mp4").write_bytes(videos["wide"].read_bytes())
    assert main(["standardize", str(in_dir), str(tmp_path / "out"), "--fps", "10",
                 "--short-side", "16", "--workers", "1"]) == 0
    assert "1 done, 0 skipped, 0 failed" in capsys.readouterr().out
    assert probe_video(tmp_path / "out" / "wide.mp4").height == 16
    (in_dir / "bad.mkv").write_bytes(b"junk")
    assert main(["standardize", str(in_dir), str(tmp_path / "out"), "--fps", "10",
                 "--short-side", "16", "--workers", "1"]) == 1
    printed = capsys.readouterr().out
    assert "0 done, 1 skipped, 1 failed" in printed and "bad.mkv" in printed


# ---------------------------------------------------------------------------------- frame cache

def test_frame_cache_is_built_once_and_reused(videos, tmp_path, monkeypatch):
    cache = FrameCache(tmp_path / "cache", frame_rate=15, short_side=16)
    table = cache.build([videos["cfr"], videos["wide"], tmp_path / "missing.mp4"], workers=1)
    assert dict(zip(table.video, table.status)) == {"cfr30": "built", "missing": "failed", "wide": "built"}
    assert dict(zip(table.video, table.frames))["cfr30"] == 30
    assert "missing.mp4" in table.set_index("video").error["missing"]

    npy = cache.path(videos["cfr"])
    built_at = npy.stat().st_mtime_ns

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache decoded a video it already holds")

    monkeypatch.setattr(video_frame_cache, "decode_frames", no_decoding)
    fresh = FrameCache(tmp_path / "cache", frame_rate=15, short_side=16)  # e.g. the next epoch
    frames = fresh.get(videos["cfr"])
    assert isinstance(frames, np.memmap) and not frames.flags.writeable
    assert frames.shape == (30, 16, 16, 3)
    assert frame_ids(frames) == list(range(0, 60, 2))
    assert fresh.build([videos["cfr"], videos["wide"]], workers=1).status.tolist() == ["cached", "cached"]
    assert npy.stat().st_mtime_ns == built_at
    monkeypatch.undo()

    # other settings never mix with these: another folder, built on first get
    other = FrameCache(tmp_path / "cache", frame_rate=30, short_side=None)
    assert other.folder != cache.folder
    assert other.get(videos["wide"]).shape == (60, 32, 48, 3)  # 2 s at 30 fps


def test_frame_cache_rebuilds_a_changed_source(tmp_path):
    source = write_video(tmp_path / "clip.mp4", indexed_frames(20), fps=10)
    cache = FrameCache(tmp_path / "cache", frame_rate=10)
    assert frame_ids(cache.get(source)) == list(range(20))
    write_video(source, indexed_frames(40)[20:], fps=10)  # same name, new content
    assert frame_ids(FrameCache(tmp_path / "cache", frame_rate=10).get(source)) == list(range(20, 40))


# --- notebook 02: probing, the frame cache, the prepared dataset's videos --------------------------

def _write_videos(folder, lengths):
    from tsplab.video import write_video

    paths = []
    for i, n in enumerate(lengths):
        frames = np.full((n, 16, 24, 3), 40 * i, dtype=np.uint8)
        paths.append(write_video(folder / f"v{i}.mp4", frames, fps=10.0))
    return paths


def test_probe_videos_keeps_a_row_for_every_file(tmp_path):
    from tsplab.video import probe_videos

    paths = _write_videos(tmp_path, [20, 35])
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    table = probe_videos([*paths, tmp_path / "broken.mp4", tmp_path / "missing.mp4"])
    assert table["video"].tolist() == ["v0", "v1", "broken", "missing"]
    assert table["num_frames"].iloc[:2].tolist() == [20, 35]
    np.testing.assert_allclose(table["duration_s"].iloc[:2], [2.0, 3.5])
    assert table[["width", "height"]].iloc[0].tolist() == [24, 16] and table["fps"].iloc[0] == 10.0
    assert (table["error"].iloc[:2] == "").all()
    assert "broken.mp4" in table["error"].iloc[2] and "missing.mp4" in table["error"].iloc[3]
    assert table["num_frames"].iloc[2:].isna().all()


def test_frame_cache_disk_usage_is_n_h_w_3_bytes(tmp_path):
    from tsplab.video import FrameCache

    paths = _write_videos(tmp_path / "videos", [20, 35])
    cache = FrameCache(tmp_path / "cache", frame_rate=5.0, short_side=8)
    cache.build(paths[:1], workers=1)
    usage = cache.disk_usage(paths)
    # 2 s at 5 fps = 10 frames of 8 x 12 (24 x 16 resized to a short side of 8).
    assert usage.iloc[0][["video", "frames", "height", "width"]].tolist() == ["v0", 10, 8, 12]
    assert usage["cache_kB"].iloc[0] * 1e3 == pytest.approx(10 * 8 * 12 * 3 + 128)  # + the .npy header
    assert usage["ratio"].iloc[0] == pytest.approx(usage["cache_kB"].iloc[0] / usage["video_kB"].iloc[0])
    assert usage["video"].iloc[1] == "v1" and np.isnan(usage["cache_kB"].iloc[1])  # not cached yet: kept
