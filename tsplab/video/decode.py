"""Decoding with PyAV: clips, whole videos and streamed frames, resampled to a target frame rate.

All frames are ``uint8`` arrays shaped ``[T, H, W, 3]`` (RGB). Times are seconds, frame counts are
frames; names carry the unit (``t_start_s``, ``stride_frames``).

Time model. A video's clock starts at its video stream's ``start_time`` (0 s here even when the file's
first timestamp is not 0). Source frame ``j`` is *shown* from its presentation time ``t_j`` until the
next frame's. Sampling at a target ``frame_rate`` picks, for each target time
``T_k = t_start_s + k / frame_rate``, the frame shown at ``T_k`` (the last one with ``t_j <= T_k``):
frames are repeated when the target rate is higher than the source's and skipped when it is lower.
Because only timestamps are used, variable-frame-rate files and any codec PyAV decodes work the same.
A video sampled at ``frame_rate`` has ``ceil(duration_s * frame_rate)`` frames
(``tsplab.video.probe.VideoInfo.num_frames_at``), ``duration_s`` running to the end of the last frame.

Past the end. A clip that runs past the end of the video is completed by repeating the video's last
frame, so a clip always has exactly the number of frames asked for. (TSP's loader crashed there with
``got clip of length N != 16``, TSP issues #11 and #22.)
"""
from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from tsplab.video.probe import (_TIME_TOLERANCE_S, VideoError, _nominal_fps, _open_input, _stream_origin_s,
                                _video_stream)


def _timed_frames(container, stream, path, origin_s: float) -> Iterator[tuple[float, av.VideoFrame]]:
    """Yield ``(t_s, frame)`` for every frame decoded from the current position, ``t_s`` measured from
    the stream's start. Times are forced non-decreasing (broken files) and a frame without a
    timestamp is placed one nominal frame interval after the previous one."""
    step_s = 1.0 / _nominal_fps(stream)
    prev_t = None
    try:
        for frame in container.decode(stream):
            if frame.pts is None:
                t = 0.0 if prev_t is None else prev_t + step_s
            else:
                t = frame.time - origin_s
            if prev_t is not None and t < prev_t:
                t = prev_t
            prev_t = t
            yield t, frame
    except av.FFmpegError as exc:
        raise VideoError(path, f"decoding failed: {exc}") from exc


def _resample(timed, t_first_s: float, frame_rate: float, nominal_interval_s: float):
    """Yield ``(frame, past_end)`` for target times ``T_k = t_first_s + k / frame_rate``, k = 0, 1, ...
    without end: the frame shown at ``T_k`` (the last with ``t_j <= T_k``; the first frame for targets
    before it). Once ``T_k`` is at or past the end of the last frame, the last frame is yielded with
    ``past_end=True`` forever; callers stop consuming. Frames not shown at any target are skipped
    without being converted (the caller converts what it receives).

    The last frame lasts its recorded duration; without one, as long as the interval before it (the
    nominal frame interval for a one-frame video), as :func:`probe_video` assumes too."""
    k = 0
    prev = t_prev = None
    interval_s = nominal_interval_s
    for t, frame in timed:
        if prev is not None:
            interval_s = t - t_prev if t > t_prev else interval_s
            while t_first_s + k / frame_rate + _TIME_TOLERANCE_S < t:
                yield prev, False
                k += 1
        prev, t_prev = frame, t
    if prev is None:
        return
    recorded_s = float(prev.duration * prev.time_base) if prev.duration and prev.time_base else 0.0
    # A video lasts at least an instant, so it always has a frame at time 0 (as num_frames_at says).
    end_s = max(t_prev + (recorded_s if recorded_s > 0 else interval_s), 2 * _TIME_TOLERANCE_S)
    while t_first_s + k / frame_rate < end_s - _TIME_TOLERANCE_S:
        yield prev, False
        k += 1
    while True:
        yield prev, True


# swscale's bilinear flag as a plain int: PyAV looks a name up in its enum on every call; the same
# flag, so the same pixels.
_BILINEAR = int(Interpolation.BILINEAR)


class _ToArray:
    """Convert decoded frames to RGB arrays at one output size (fixed by the first frame) with
    PyAV's C scaler. One reformatter is kept for the whole video: a fresh one per frame (what
    ``frame.to_ndarray(width=...)`` does) rebuilds the scaler every time, several times slower. A frame
    repeated by resampling is converted once."""

    def __init__(self, short_side: int | None, even: bool = False):
        self.short_side, self.even = short_side, even
        self.size = None
        self._reformatter = VideoReformatter()
        self._frame = self._array = None

    def __call__(self, frame) -> np.ndarray:
        if frame is self._frame:
            return self._array
        if self.size is None:
            self.size = output_size(frame.width, frame.height, self.short_side, even=self.even)
        width, height = self.size
        # One scaler thread: frames are small, and parallelism comes from decoding threads and from
        # worker processes over videos.
        rgb = self._reformatter.reformat(frame, width=width, height=height, format="rgb24",
                                         interpolation=_BILINEAR, threads=1)
        self._frame, self._array = frame, rgb.to_ndarray()
        return self._array


def output_size(width: int, height: int, short_side: int | None, *, even: bool = False) -> tuple[int, int]:
    """(width, height) after resizing so the short side is ``short_side`` (aspect kept, long side
    rounded); ``None`` keeps the size. ``even=True`` rounds both to even numbers (H.264 yuv420p)."""
    if short_side is not None:
        if short_side < 1:
            raise ValueError(f"short_side must be a positive number of pixels, got {short_side}")
        scale = short_side / min(width, height)
        width, height = ((short_side, round(height * scale)) if width <= height
                         else (round(width * scale), short_side))
    if even:
        width, height = max(2, 2 * round(width / 2)), max(2, 2 * round(height / 2))
    return int(width), int(height)


def _check_rate(frame_rate, name="frame_rate"):
    if frame_rate is None or not frame_rate > 0:
        raise ValueError(f"{name} must be a positive number of frames per second, got {frame_rate}")


def read_clip(path, t_start_s: float, num_frames: int, frame_rate: float, *,
              short_side: int | None = None) -> np.ndarray:
    """``num_frames`` frames [L, H, W, 3] sampled at ``frame_rate`` from ``t_start_s`` on.

    Frame k is the source frame shown at ``t_start_s + k / frame_rate`` (see the module docstring).
    The file is opened, seeked to the keyframe at or before ``t_start_s`` and decoded forward until
    the clip is complete. Always returns exactly L frames: frames past the end of the video (or a
    ``t_start_s`` beyond it) repeat the video's last frame. If the seek lands after ``t_start_s``
    (a broken index), the clip is decoded from the start of the file instead, so the frames are right.
    ``short_side`` resizes each frame so its short side has that many pixels.
    """
    path = Path(path)
    _check_rate(frame_rate)
    if num_frames < 1:
        raise ValueError(f"{path}: num_frames must be >= 1, got {num_frames}")
    if not t_start_s >= 0:
        raise ValueError(f"{path}: t_start_s must be >= 0, got {t_start_s}")
    to_array = _ToArray(short_side)
    with _open_input(path) as container:
        stream = _video_stream(container, path, threaded=False)
        origin_s = _stream_origin_s(container, stream)
        if t_start_s == 0:
            timed = _timed_frames(container, stream, path, origin_s)
        else:
            timed = _timed_frames_after_seek(container, stream, path, origin_s, t_start_s)
        if timed is not None:
            return _take_clip(timed, stream, path, t_start_s, num_frames, frame_rate, to_array)
    # The seek landed late or decoded nothing: decode from the start of a freshly opened file.
    with _open_input(path) as container:
        stream = _video_stream(container, path, threaded=False)
        timed = _timed_frames(container, stream, path, _stream_origin_s(container, stream))
        return _take_clip(timed, stream, path, t_start_s, num_frames, frame_rate, to_array)


def _timed_frames_after_seek(container, stream, path, origin_s, t_start_s):
    """Seek to the keyframe at or before ``t_start_s``; the timed frame iterator from there, or None
    when the first decoded frame is already after ``t_start_s`` (or nothing decodes)."""
    target = origin_s + max(0.0, t_start_s - _TIME_TOLERANCE_S)
    offset = math.floor(Fraction(target) / stream.time_base)
    try:
        container.seek(offset, stream=stream, backward=True, any_frame=False)
    except av.FFmpegError:
        return None  # not seekable (some raw streams): the caller decodes from the start
    timed = _timed_frames(container, stream, path, origin_s)
    first = next(timed, None)
    if first is None or first[0] > t_start_s + _TIME_TOLERANCE_S:
        return None
    return itertools.chain([first], timed)


def _take_clip(timed, stream, path, t_start_s, num_frames, frame_rate, to_array) -> np.ndarray:
    resampled = _resample(timed, t_start_s, frame_rate, 1.0 / _nominal_fps(stream))
    frames = [to_array(frame) for frame, _ in itertools.islice(resampled, num_frames)]
    if not frames:
        raise VideoError(path, "no frames could be decoded")
    return np.stack(frames)


def decode_frames(path, frame_rate: float | None = None, *, short_side: int | None = None) -> np.ndarray:
    """The whole video [N, H, W, 3], decoded once.

    ``frame_rate=None`` returns every decoded frame as is (N = the file's frame count). A number
    resamples by timestamps (see the module docstring): N = ``probe_video(path).num_frames_at(frame_rate)``,
    and frame k is the one shown at ``k / frame_rate`` seconds. ``short_side`` resizes each frame so
    its short side has that many pixels.
    """
    path = Path(path)
    if frame_rate is not None:
        _check_rate(frame_rate)
    to_array = _ToArray(short_side)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        timed = _timed_frames(container, stream, path, _stream_origin_s(container, stream))
        if frame_rate is None:
            frames = [to_array(frame) for _, frame in timed]
        else:
            resampled = _resample(timed, 0.0, frame_rate, 1.0 / _nominal_fps(stream))
            frames = [to_array(frame) for frame, past_end in itertools.takewhile(
                lambda item: not item[1], resampled)]
    if not frames:
        raise VideoError(path, "no frames could be decoded")
    return np.stack(frames)


def _resampled_arrays(path, frame_rate, short_side, *, even=False):
    """Generator of [H, W, 3] frames of the whole video at ``frame_rate`` (streamed, decoded once)."""
    to_array = _ToArray(short_side, even=even)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        timed = _timed_frames(container, stream, path, _stream_origin_s(container, stream))
        resampled = _resample(timed, 0.0, frame_rate, 1.0 / _nominal_fps(stream))
        empty = True
        for frame, past_end in resampled:
            if past_end:
                break
            empty = False
            yield to_array(frame)
        if empty:
            raise VideoError(path, "no frames could be decoded")
