"""Sliding clip windows over a video, streamed: the video is walked once and each window is cut
from blocks of consecutive frames at the clip rate (what feature extraction encodes)."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from tsplab.video.decode import _check_rate, _resample, _timed_frames, _ToArray
from tsplab.video.probe import (VideoError, VideoInfo, _nominal_fps, _open_input, _probe_open,
                                _stream_origin_s, _video_stream)


@dataclass
class ClipWindow:
    """One sliding-window clip: ``frames`` [L, H, W, 3] starting ``t_start_s`` into the video."""

    index: int
    t_start_s: float
    frames: np.ndarray


CLIP_RULES = ("pad", "tsp")  # how many clips a video gets: num_clip_windows


def num_clip_windows(num_frames_at_rate: int, clip_length_frames: int, stride_frames: int,
                     clip_rule: str = "pad") -> int:
    """Windows of ``clip_length_frames`` every ``stride_frames`` over a video of ``num_frames_at_rate``
    frames (at the clip rate). ``"pad"``: enough to cover every frame, at least one,
    ``max(1, ceil((N - L) / stride) + 1)`` (the last ones repeat the last frame). ``"tsp"``: whole
    clips only, ``floor((N - L) / stride) + 1`` (0 when ``N < L``), the count of TSP's extractor
    (``np.arange(0, N - L + 1, stride)`` in its ``eval_video_dataset.py``)."""
    if clip_length_frames < 1 or stride_frames < 1:
        raise ValueError(f"clip_length_frames and stride_frames must be >= 1, got "
                         f"{clip_length_frames} and {stride_frames}")
    if clip_rule not in CLIP_RULES:
        raise ValueError(f"clip_rule must be one of {CLIP_RULES}, got {clip_rule!r}")
    n, length = num_frames_at_rate, clip_length_frames
    if clip_rule == "tsp":
        return (n - length) // stride_frames + 1 if n >= length else 0
    return max(1, math.ceil((n - length) / stride_frames) + 1)


def iter_clip_windows(path, clip_length_frames: int, frame_rate: float, stride_frames: int, *,
                      short_side: int | None = None, min_frames: int | None = None,
                      clip_rule: str = "pad") -> Iterator[ClipWindow]:
    """Walk the video once and yield its sliding clip windows in order, without reopening the file.

    Window i holds frames ``i * stride_frames ... + clip_length_frames - 1`` of the video resampled to
    ``frame_rate`` (the same frames ``read_clip(path, i * stride_frames / frame_rate, L, frame_rate)``
    returns) and starts at ``t_start_s = i * stride_frames / frame_rate``. There are
    :func:`num_clip_windows` ``(N, L, stride, clip_rule)`` windows: with ``"pad"`` the last ones are
    completed by repeating the video's last frame, with ``"tsp"`` only whole clips are cut (a video
    shorter than one clip raises :class:`VideoError`). Memory holds a block of a few windows (``_WINDOW_BLOCK_BYTES``), not the video.

    Overlapping windows are read-only views of one array of consecutive frames (each frame is
    copied once, not once per window it is in); copy a window's frames to change them.
    ``min_frames``: the file is probed first, with the same opening (:func:`probe_video`'s
    figures), and a video with fewer than ``min_frames`` frames at ``frame_rate`` raises
    :class:`VideoError` ("too short") before any decoding.
    """
    path = Path(path)
    _check_rate(frame_rate)
    num_clip_windows(1, clip_length_frames, stride_frames, clip_rule)  # validates before any decoding
    with contextlib.ExitStack() as stack:
        container = stack.enter_context(_open_input(path))
        stream = _video_stream(container, path, threaded=None)
        if min_frames is not None:
            info, demuxed = _probe_open(container, stream, path)
            _check_long_enough(info, frame_rate, min_frames, path)
            if demuxed:  # probing read every packet: decode from a fresh opening
                container = stack.enter_context(_open_input(path))
                stream = _video_stream(container, path, threaded=None)
        cutter = _WindowCutter(clip_length_frames, stride_frames, frame_rate, clip_rule)
        yield from _cut_windows(container, stream, path, cutter, _ToArray(short_side))


def _check_long_enough(info: VideoInfo, frame_rate: float, min_frames: int, path) -> None:
    num_frames = info.num_frames_at(frame_rate)
    if num_frames < min_frames:
        raise VideoError(path, f"too short: {info.duration_s:.3f} s is {num_frames} frame(s) at "
                               f"{frame_rate:g} fps, fewer than {min_frames}")


def _cut_windows(container, stream, path, cutter: "_WindowCutter", to_array):
    """The windows of :func:`iter_clip_windows` from an open ``stream``."""
    frame_rate = cutter.frame_rate
    timed = _timed_frames(container, stream, path, _stream_origin_s(container, stream))
    num_seen = 0
    last = None
    for frame, past_end in _resample(timed, 0.0, frame_rate, 1.0 / _nominal_fps(stream)):
        last = frame
        if past_end:
            break
        k, num_seen = num_seen, num_seen + 1
        if cutter.wants(k):  # not in a gap between windows (stride > length): never converted
            yield from cutter.add(to_array(frame))
    if last is None:
        raise VideoError(path, "no frames could be decoded")
    if num_clip_windows(num_seen, cutter.length, cutter.stride, cutter.clip_rule) == 0:
        raise VideoError(path, f"too short for TSP's clip rule: {num_seen} frame(s) at {frame_rate:g} fps, "
                               f"fewer than one clip ({cutter.length}); --clip-rule pad pads it")
    yield from cutter.finish(to_array(last), num_seen)


# Windows that overlap (stride <= length) are cut from blocks of consecutive frames of about this
# many bytes (at least one window, at most _WINDOW_BLOCK_MAX_WINDOWS windows): one np.stack per
# block instead of one per window (each call costs a noticeable share of the decode-only CPU per
# clip of small clips), and each frame is copied once instead of length / stride times.
_WINDOW_BLOCK_BYTES = 1 << 20
_WINDOW_BLOCK_MAX_WINDOWS = 64


class _WindowCutter:
    """Consecutive frames (at the clip rate) in, clip windows out: the bookkeeping of
    :func:`iter_clip_windows`. ``buffer`` holds the converted frames from the first frame of window
    ``index`` (the next one to cut) on."""

    def __init__(self, length: int, stride: int, frame_rate: float, clip_rule: str = "pad"):
        self.length, self.stride, self.frame_rate = length, stride, frame_rate
        self.clip_rule = clip_rule
        self.buffer: list[np.ndarray] = []
        self.index = 0
        self.per_block = None  # windows per block, fixed by the first frame's size

    def wants(self, k: int) -> bool:
        """Whether frame ``k`` is in a window not cut yet (else it lies in a gap between windows)."""
        return k >= self.index * self.stride

    def add(self, frame: np.ndarray) -> list[ClipWindow]:
        """Take the next frame; the windows completed by a full block (often none)."""
        self.buffer.append(frame)
        if self.per_block is None:
            self.per_block = self._windows_per_block(frame.nbytes)
        if len(self.buffer) < (self.per_block - 1) * self.stride + self.length:
            return []
        return self._cut(self.per_block)

    def finish(self, last: np.ndarray, num_seen: int) -> list[ClipWindow]:
        """The windows left once the video's ``num_seen`` frames are in: those complete in the
        buffer, then those completed by repeating ``last`` (the last frame)."""
        whole = (len(self.buffer) - self.length) // self.stride + 1 if len(self.buffer) >= self.length else 0
        windows = self._cut(whole) if whole else []
        for index in range(self.index, num_clip_windows(num_seen, self.length, self.stride, self.clip_rule)):
            start = index * self.stride
            frames = [self.buffer[k - start] if k < num_seen else last
                      for k in range(start, start + self.length)]
            windows.append(ClipWindow(index, start / self.frame_rate, _read_only(np.stack(frames))))
            del self.buffer[:self.stride]
        return windows

    def _windows_per_block(self, frame_bytes: int) -> int:
        if self.stride > self.length:  # gaps: blocks would not be consecutive frames
            return 1
        frames = max(self.length, _WINDOW_BLOCK_BYTES // max(1, frame_bytes))
        return max(1, min(_WINDOW_BLOCK_MAX_WINDOWS, (frames - self.length) // self.stride + 1))

    def _cut(self, count: int) -> list[ClipWindow]:
        """The next ``count`` windows, all complete in the buffer, as views of one block."""
        stride, length = self.stride, self.length
        block = _read_only(np.stack(self.buffer[:(count - 1) * stride + length]))
        windows = [ClipWindow(i, i * stride / self.frame_rate, block[(i - self.index) * stride:][:length])
                   for i in range(self.index, self.index + count)]
        self.index += count
        del self.buffer[:count * stride]
        return windows


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
