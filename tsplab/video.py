"""Video I/O with PyAV: write, probe, decode clips, stream clip windows, standardize, cache frames.

All frames are ``uint8`` arrays shaped ``[T, H, W, 3]`` (RGB). Times are seconds, frame counts are
frames; names carry the unit (``t_start_s``, ``stride_frames``).

Time model. A video's clock starts at its video stream's ``start_time`` (0 s here even when the file's
first timestamp is not 0). Source frame ``j`` is *shown* from its presentation time ``t_j`` until the
next frame's. Sampling at a target ``frame_rate`` picks, for each target time
``T_k = t_start_s + k / frame_rate``, the frame shown at ``T_k`` (the last one with ``t_j <= T_k``):
frames are repeated when the target rate is higher than the source's and skipped when it is lower.
Because only timestamps are used, variable-frame-rate files and any codec PyAV decodes work the same.
A video sampled at ``frame_rate`` has ``ceil(duration_s * frame_rate)`` frames
(:meth:`VideoInfo.num_frames_at`), ``duration_s`` running to the end of the last frame.

Past the end. A clip that runs past the end of the video is completed by repeating the video's last
frame, so a clip always has exactly the number of frames asked for. (TSP's loader crashed there with
``got clip of length N != 16``, TSP issues #11 and #22.)
"""
from __future__ import annotations

import contextlib
import itertools
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter
from tqdm.auto import tqdm

from tsplab.runs import atomic_path, read_json, resolve, write_json

if TYPE_CHECKING:  # pandas is imported where tables are made: worker processes start ~1 s faster
    import pandas as pd

# Two timestamps closer than this are the same instant: a target time that lands on a frame's
# timestamp up to float rounding (30 fps sampled at 15 fps hits every other frame exactly) must pick
# that frame, not the one before. Far below any real frame interval (1 ms at 1000 fps).
_TIME_TOLERANCE_S = 1e-4

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".wmv",
                    ".flv", ".3gp", ".ogv", ".ts")


class VideoError(RuntimeError):
    """A video could not be read or written; the message names the file."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


# --------------------------------------------------------------------------------------- writing

def write_video(path, frames: np.ndarray, fps: float, keyframe_interval_s: float = 1.0,
                crf: int = 18, preset: str = "veryfast") -> Path:
    """Encode ``frames`` [T, H, W, 3] uint8 RGB as an H.264 MP4 at constant ``fps``, atomically.

    A keyframe every ``keyframe_interval_s`` seconds keeps random seeks cheap (the decoder never walks
    back further than that). H and W must be even (yuv420p).
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    _, h, w, _ = frames.shape
    return _encode_h264(path, iter(frames), fps, w, h, keyframe_interval_s, crf, preset)


def _encode_h264(path: Path, frames, fps: float, width: int, height: int,
                 keyframe_interval_s: float = 1.0, crf: int = 18, preset: str = "veryfast") -> Path:
    """Encode an iterable of [H, W, 3] uint8 RGB frames (streamed: never all in memory) as H.264 MP4
    at constant ``fps``, atomically. Errors raised by ``frames`` itself pass through unchanged."""
    if height % 2 or width % 2:
        raise ValueError(f"{path}: H.264 with yuv420p needs even frame sizes, got {width}x{height}")
    gop = max(1, int(round(keyframe_interval_s * fps)))
    try:
        with atomic_path(path) as tmp, av.open(str(tmp), mode="w") as container:
            stream = container.add_stream("libx264", rate=_as_fraction(fps))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.gop_size = gop
            # No B-frames and a fixed GOP: every keyframe is a clean seek point one interval apart.
            stream.options = {"crf": str(crf), "preset": preset, "g": str(gop),
                              "keyint_min": str(gop), "sc_threshold": "0", "bf": "0"}
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(path, f"cannot write video: {exc}") from exc
    return path


def _as_fraction(fps: float):
    return Fraction(fps).limit_denominator(1001)


# --------------------------------------------------------------------------------------- probing

@dataclass
class VideoInfo:
    """What :func:`probe_video` finds out about a file's (first) video stream."""

    path: str
    duration_s: float
    fps: float
    num_frames: int
    width: int
    height: int
    codec: str

    def num_frames_at(self, frame_rate: float) -> int:
        """How many frames the video has when sampled at ``frame_rate`` (what :func:`decode_frames`
        returns at that rate): one per target time ``k / frame_rate`` before the end, at least 1."""
        return max(1, math.ceil((self.duration_s - _TIME_TOLERANCE_S) * frame_rate))


def probe_video(path) -> VideoInfo:
    """Duration, frame rate, frame count, size and codec of ``path``'s video stream.

    Taken from the container's metadata when it has them (MP4 does); otherwise (MKV, WebM, some AVI)
    the packets are read once, without decoding, to count frames and find the last timestamp.
    Raises :class:`VideoError` naming the file when it is missing, unreadable or has no video stream.
    """
    path = Path(path)
    with _open_input(path) as container:
        info, _ = _probe_open(container, _video_stream(container, path), path)
        return info


def _probe_open(container, stream, path) -> tuple[VideoInfo, bool]:
    """:func:`probe_video` of an open ``container`` and its video ``stream``, and whether the
    packets had to be read for it (the container is then at its end: reopen it to decode)."""
    tb = stream.time_base
    ctx = stream.codec_context
    num_frames = int(stream.frames or 0)
    duration_s = float(stream.duration * tb) if stream.duration and tb else 0.0
    demuxed = not (num_frames > 0 and duration_s > 0)
    if not demuxed:
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else num_frames / duration_s
    else:
        num_frames, duration_s = _count_packets(container, stream, path)
        fps = num_frames / duration_s if duration_s > 0 else float(stream.guessed_rate or 0)
    return VideoInfo(path=str(path), duration_s=duration_s, fps=fps, num_frames=num_frames,
                     width=int(ctx.width), height=int(ctx.height), codec=ctx.name), demuxed


def probe_videos(paths) -> pd.DataFrame:
    """:func:`probe_video` of each of ``paths`` as one table (notebook 02): ``video`` (file stem),
    ``duration_s``, ``fps``, ``num_frames``, ``width``, ``height``, ``codec``, ``file_kB``, ``error``.
    A file that cannot be probed keeps its row, with the reason in ``error`` and the rest empty:
    no video drops out of the table unnamed."""
    import pandas as pd

    rows = []
    for path in map(Path, paths):
        row = {"video": path.stem}
        try:
            info = probe_video(path)
        except VideoError as exc:
            rows.append({**row, "error": str(exc)})
            continue
        rows.append({**row, "duration_s": info.duration_s, "fps": info.fps, "num_frames": info.num_frames,
                     "width": info.width, "height": info.height, "codec": info.codec,
                     "file_kB": path.stat().st_size / 1e3, "error": ""})
    columns = ["video", "duration_s", "fps", "num_frames", "width", "height", "codec", "file_kB", "error"]
    return pd.DataFrame(rows, columns=columns)


def _count_packets(container, stream, path) -> tuple[int, float]:
    """Frame count and duration (first timestamp to the end of the last frame) from demuxing alone.
    A last packet without a duration lasts as long as the interval before it (as in decoding)."""
    count, pts_s, last_duration_s = 0, [], 0.0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet at the end of the stream
                continue
            count += 1
            if packet.pts is not None:
                t = float(packet.pts * stream.time_base)
                if not pts_s or t >= max_t:
                    max_t, last_duration_s = t, float((packet.duration or 0) * stream.time_base)
                pts_s.append(t)
    except av.FFmpegError as exc:
        raise VideoError(path, f"cannot read video packets: {exc}") from exc
    if count == 0:
        raise VideoError(path, "video stream has no frames")
    if not pts_s:
        return count, 0.0
    pts_s.sort()
    if last_duration_s <= 0:
        last_duration_s = pts_s[-1] - pts_s[-2] if len(pts_s) > 1 else 1.0 / _nominal_fps(stream)
    return count, pts_s[-1] + last_duration_s - pts_s[0]


@contextlib.contextmanager
def _open_input(path):
    """Open ``path`` for reading; missing or unreadable files raise :class:`VideoError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(path, "file not found")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(path, f"not a readable video ({exc})") from exc
    try:
        yield container
    finally:
        container.close()


# Frame threading costs FFmpeg a roughly fixed ~30 us of CPU per decoded frame (thread hand-offs),
# whatever the frame size. Measured with PyAV 18 on 2 cores, CPU per frame threaded vs one thread:
# 64x64 H.264 89 vs 61 us (+45%), 320x180 +40%, 480x270 and 1280x720 within noise (0-8%). Frames
# up to this many pixels decode on one thread when the caller leaves the choice to the size.
SMALL_FRAME_MAX_PIXELS = 320 * 240


def _video_stream(container, path, *, threaded: bool | None = True):
    """The first video stream, set up for decoding. ``threaded``: FFmpeg's frame + slice threads,
    for walks over a whole video (measured on 2 busy cores: decode_frames of a 30 s 320x240 video
    2.3-3.1 s wall with threads vs 3.8-4.1 s without). Random clips (``read_clip``, called from many
    loader processes that already use every core) decode on one thread: same wall time there and
    10-40% less CPU per clip. ``None``: threads for frames larger than ``SMALL_FRAME_MAX_PIXELS``
    only (``iter_clip_windows``, which decodes beside a model or in many loader processes: there
    CPU per frame is what counts, and small frames pay up to 45% more of it for threads)."""
    if not container.streams.video:
        raise VideoError(path, "no video stream")
    stream = container.streams.video[0]
    if threaded is None:
        ctx = stream.codec_context
        threaded = ctx.width * ctx.height > SMALL_FRAME_MAX_PIXELS
    if threaded:
        stream.thread_type = "AUTO"
    else:
        stream.codec_context.thread_count = 1
    return stream


# --------------------------------------------------------------------------------------- decoding

def _stream_origin_s(container, stream) -> float:
    """Time (s, in the stream's own clock) that this module calls 0: the stream's start_time."""
    if stream.start_time is not None:
        return float(stream.start_time * stream.time_base)
    if container.start_time is not None:
        return container.start_time / av.time_base
    return 0.0


def _nominal_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 25.0  # ffmpeg's own fallback rate when a stream gives none


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


# swscale's bilinear flag as a plain int: PyAV looks a name up in its enum on every call (~2% of
# the demo size's decode-only CPU); the same flag, so the same pixels.
_BILINEAR = int(Interpolation.BILINEAR)


class _ToArray:
    """Convert decoded frames to RGB arrays at one output size (fixed by the first frame) with
    PyAV's C scaler. One reformatter is kept for the whole video: a fresh one per frame (what
    ``frame.to_ndarray(width=...)`` does) rebuilds the scaler every time, measured 2-5x slower. A frame
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


# -------------------------------------------------------------------------------- clip windows

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
# block instead of one per window (measured ~15-30 us per call on 2 cores, about a tenth of the
# decode-only CPU per clip at the demo size, 8 frames of 32 px every 2 frames), and each frame is
# copied once instead of length / stride times.
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


# ------------------------------------------------------------------------------- standardizing

def standardize_video(src, dst, fps: float = 30, short_side: int | None = None, *,
                      crf: int = 18) -> Path:
    """Re-encode ``src`` as a constant-frame-rate H.264 MP4 at ``fps`` (TSP re-encodes every video to
    30 fps), optionally resized so the short side is ``short_side`` (even: H.264 yuv420p needs it).

    Frames are resampled by timestamps (repeated or dropped; see the module docstring), streamed
    (the video is never all in memory), with a keyframe every second so seeks stay cheap. Odd source
    sizes are rounded to the nearest even size. Audio is dropped (tsplab reads only the pictures).
    The output appears atomically. Raises :class:`VideoError` naming the bad file.
    """
    src, dst = Path(src), Path(dst)
    _check_rate(fps, "fps")
    if short_side is not None and short_side % 2:
        raise ValueError(f"short_side must be even for H.264 (yuv420p), got {short_side}")
    frames = _resampled_arrays(src, fps, short_side, even=True)
    first = next(frames)
    height, width = first.shape[:2]
    return _encode_h264(dst, itertools.chain([first], frames), fps, width, height, crf=crf)


def _is_standardized(dst: Path, fps: float, short_side: int | None) -> bool:
    """Whether ``dst`` is a finished output of these settings (exists, probes, right rate/size)."""
    if not dst.is_file():
        return False
    try:
        info = probe_video(dst)
    except VideoError:
        return False
    size_ok = short_side is None or min(info.width, info.height) == short_side
    return abs(info.fps - fps) < 1e-3 and size_ok and info.num_frames > 0


def _standardize_one(src: str, dst: str, fps: float, short_side: int | None) -> tuple[str, str]:
    """Worker: (status, error) for one file; never raises (batch work records failures)."""
    if _is_standardized(Path(dst), fps, short_side):
        return "skipped", ""
    try:
        standardize_video(src, dst, fps, short_side)
    except Exception as exc:  # a batch must go on: any failure is recorded against its file
        return "failed", f"{type(exc).__name__}: {exc}"
    return "done", ""


def list_videos(folder) -> list[Path]:
    """Video files (by extension, :data:`VIDEO_EXTENSIONS`) directly in ``folder``, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: video folder not found")
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_EXTENSIONS)


def standardize_videos(in_dir, out_dir, fps: float = 30, short_side: int | None = None,
                       workers: int = 2) -> pd.DataFrame:
    """Standardize every video in ``in_dir`` (see :func:`standardize_video`) into
    ``out_dir/{stem}.mp4``, ``workers`` processes in parallel, with a progress bar.

    Outputs already done with these settings are skipped, so an interrupted run resumes. A file
    that fails is recorded and the others go on. Returns one row per input:
    ``video`` (file stem), ``status`` (``done`` / ``skipped`` / ``failed``), ``error``.
    """
    import pandas as pd

    in_dir, out_dir = Path(in_dir), Path(out_dir)
    _check_rate(fps, "fps")
    if in_dir.resolve() == out_dir.resolve():
        raise ValueError(f"{out_dir}: the output folder must differ from the input folder "
                         "(outputs would replace their sources)")
    sources = list_videos(in_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, jobs, seen = [], [], {}
    for src in sources:
        if src.stem in seen:
            rows.append({"video": src.stem, "status": "failed",
                         "error": f"{src.name}: same name as {seen[src.stem]}; both would write "
                                  f"{src.stem}.mp4"})
            continue
        seen[src.stem] = src.name
        jobs.append((src.stem, str(src), str(out_dir / f"{src.stem}.mp4"), fps, short_side))
    results = _run_jobs(_standardize_one, jobs, workers, "standardize",
                        on_crash=lambda error: ("failed", error))
    rows += [{"video": video, "status": status, "error": error} for video, (status, error) in results]
    return pd.DataFrame(rows, columns=["video", "status", "error"]).sort_values(
        "video", kind="stable").reset_index(drop=True)


def _run_jobs(func, jobs, workers: int, desc: str, on_crash):
    """Yield ``(key, func(*args))`` for ``jobs = [(key, *args)]``, in a process pool of ``workers``
    (in this process when ``workers <= 1``), with a progress bar. When a worker process dies, the
    job's result is ``on_crash(message)``."""
    progress = tqdm(total=len(jobs), desc=desc, unit="video")
    try:
        if workers <= 1 or len(jobs) <= 1:
            for key, *args in jobs:
                yield key, func(*args)
                progress.update()
            return
        # spawn, not fork: the parent may hold torch/OpenMP threads that a forked child would inherit
        # in a locked state.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(func, *args): key for key, *args in jobs}
            for future in as_completed(futures):
                try:
                    result = future.result()
                except Exception as exc:  # the worker process itself died (memory, signal)
                    result = on_crash(f"worker process failed: {type(exc).__name__}: {exc}")
                yield futures[future], result
                progress.update()
    finally:
        progress.close()


# --------------------------------------------------------------------------------- frame cache

class FrameCache:
    """Decoded frames at the training rate and resolution, one ``.npy`` [N, H, W, 3] per video,
    decoded once per dataset and reused by every method and epoch (clip sampling then costs a slice of
    a memory map instead of a seek and a decode).

    Files live in ``root/{frame_rate}fps_short{short_side}/`` (``..._native`` without resizing) with
    a ``cache.json`` naming the settings, so caches at different settings never mix. Beside each
    ``{stem}.npy`` a ``{stem}.json`` records the source file's name, size and modification time: a
    changed source is decoded again. Frame k is the one shown at ``k / frame_rate`` s (see the module
    docstring). Disk cost: N * H * W * 3 bytes per video. ``root`` is resolved with
    :func:`tsplab.runs.resolve` (relative paths are relative to the repository root).
    """

    MANIFEST = "cache.json"

    def __init__(self, root, frame_rate: float, short_side: int | None = None):
        _check_rate(frame_rate)
        self.frame_rate = float(frame_rate)
        self.short_side = None if short_side is None else int(short_side)
        size = "native" if self.short_side is None else str(self.short_side)
        self.folder = resolve(root) / f"{self.frame_rate:g}fps_short{size}"
        self._checked: set[str] = set()

    def settings(self) -> dict:
        return {"frame_rate": self.frame_rate, "short_side": self.short_side}

    def path(self, video_path) -> Path:
        """The ``.npy`` file that holds (or will hold) ``video_path``'s frames."""
        return self.folder / f"{Path(video_path).stem}.npy"

    def get(self, video_path) -> np.ndarray:
        """Frames [N, H, W, 3] uint8 of ``video_path``, memory-mapped read-only; decoded and written
        (atomically) on first use or when the source changed."""
        video_path = Path(video_path)
        npy = self.path(video_path)
        key = str(npy)
        if key not in self._checked:
            if not self._is_current(video_path):
                self._build_one(video_path)
            self._checked.add(key)
        return np.load(npy, mmap_mode="r")

    def build(self, video_paths, workers: int = 2) -> pd.DataFrame:
        """Make sure every video is cached, ``workers`` processes in parallel, with a progress bar.
        Returns one row per video: ``video`` (stem), ``frames`` (N), ``status`` (``built`` /
        ``cached`` / ``failed``), ``error``. A failed video is recorded; the others go on."""
        import pandas as pd

        self._write_manifest()
        rows, jobs, seen = [], [], {}
        for video_path in map(Path, video_paths):
            if video_path.stem in seen:
                if seen[video_path.stem] != video_path:  # the same file listed twice is one job
                    rows.append({"video": video_path.stem, "frames": 0, "status": "failed",
                                 "error": f"{video_path}: same name as {seen[video_path.stem]}; "
                                          f"both would be cached as {video_path.stem}.npy"})
                continue
            seen[video_path.stem] = video_path
            jobs.append((video_path.stem, str(video_path), str(self.folder.parent), self.frame_rate,
                         self.short_side))
        results = _run_jobs(_cache_one, jobs, workers, "frame cache",
                            on_crash=lambda error: (0, "failed", error))
        rows += [{"video": video, "frames": frames, "status": status, "error": error}
                 for video, (frames, status, error) in results]
        return pd.DataFrame(rows, columns=["video", "frames", "status", "error"]).sort_values(
            "video", kind="stable").reset_index(drop=True)

    def disk_usage(self, video_paths) -> pd.DataFrame:
        """What the cache costs per video (notebook 02): ``video``, ``frames``, ``height``, ``width``
        (of the cached ``[N, H, W, 3]`` uint8 array, N * H * W * 3 bytes), ``cache_kB`` (its
        ``.npy``), ``video_kB`` (the compressed source) and ``ratio`` (cache / source). Videos not
        cached (yet) keep their row with empty sizes."""
        import pandas as pd

        rows = []
        for video_path in map(Path, video_paths):
            row = {"video": video_path.stem,
                   "video_kB": video_path.stat().st_size / 1e3 if video_path.is_file() else float("nan")}
            npy = self.path(video_path)
            if npy.is_file():
                shape = np.load(npy, mmap_mode="r").shape
                row.update(frames=shape[0], height=shape[1], width=shape[2], cache_kB=npy.stat().st_size / 1e3)
            rows.append(row)
        table = pd.DataFrame(rows, columns=["video", "frames", "height", "width", "cache_kB", "video_kB"])
        table["ratio"] = table["cache_kB"] / table["video_kB"]
        return table

    # internals
    def _sidecar(self, video_path) -> Path:
        return self.folder / f"{Path(video_path).stem}.json"

    @staticmethod
    def _source_stamp(video_path: Path) -> dict:
        stat = video_path.stat()
        return {"source": video_path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def _is_current(self, video_path: Path) -> bool:
        sidecar, npy = self._sidecar(video_path), self.path(video_path)
        if not (sidecar.is_file() and npy.is_file()):
            return False
        if not video_path.is_file():
            raise VideoError(video_path, "file not found")
        try:
            recorded = read_json(sidecar)
        except ValueError:
            return False
        stamp = self._source_stamp(video_path)
        return all(recorded.get(k) == v for k, v in {**stamp, **self.settings()}.items())

    def _build_one(self, video_path: Path) -> int:
        self._write_manifest()
        frames = decode_frames(video_path, self.frame_rate, short_side=self.short_side)
        with atomic_path(self.path(video_path)) as tmp:
            np.save(tmp, frames)
        # The sidecar is written last: it is what marks the .npy as complete and current.
        write_json(self._sidecar(video_path), {**self._source_stamp(video_path), **self.settings(),
                                                "shape": list(frames.shape)})
        return len(frames)

    def _write_manifest(self) -> None:
        manifest = self.folder / self.MANIFEST
        if manifest.is_file():
            recorded = read_json(manifest)
            if recorded != self.settings():
                raise ValueError(f"{manifest}: cache holds frames at {recorded}, not {self.settings()}")
            return
        write_json(manifest, self.settings())


def _cache_one(video_path: str, root: str, frame_rate: float, short_side: int | None):
    """Worker: (frames, status, error) for one video; never raises (batch work records failures)."""
    cache = FrameCache(root, frame_rate, short_side)
    video_path = Path(video_path)
    try:
        if cache._is_current(video_path):
            return int(read_json(cache._sidecar(video_path))["shape"][0]), "cached", ""
        return cache._build_one(video_path), "built", ""
    except Exception as exc:  # a batch must go on: any failure is recorded against its file
        return 0, "failed", f"{type(exc).__name__}: {exc}"
