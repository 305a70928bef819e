"""Finding and probing videos with PyAV: what a file holds (duration, frame rate, frame count, size,
codec), and opening it for decoding with the error every reader raises (:class:`VideoError`).

A video's clock starts at its video stream's ``start_time`` (``_stream_origin_s``); see
``tsplab.video.decode`` for how frames are sampled on it.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av

if TYPE_CHECKING:  # pandas is imported where tables are made: worker processes start faster
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


# Frame threading costs FFmpeg a roughly fixed amount of CPU per decoded frame (thread hand-offs),
# whatever the frame size: a large share for small frames, lost in the noise for large ones (README,
# "Extraction throughput"). Frames up to this many pixels decode on one thread when the caller leaves
# the choice to the size.
SMALL_FRAME_MAX_PIXELS = 320 * 240


def _video_stream(container, path, *, threaded: bool | None = True):
    """The first video stream, set up for decoding. ``threaded``: FFmpeg's frame + slice threads,
    for walks over a whole video (less wall time). Random clips (``read_clip``, called from many
    loader processes that already use every core) decode on one thread: same wall time there and
    less CPU per clip. ``None``: threads for frames larger than ``SMALL_FRAME_MAX_PIXELS`` only
    (``iter_clip_windows``, which decodes beside a model or in many loader processes: there CPU per
    frame is what counts, and small frames pay much more of it for threads)."""
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


def list_videos(folder) -> list[Path]:
    """Video files (by extension, :data:`VIDEO_EXTENSIONS`) directly in ``folder``, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: video folder not found")
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_EXTENSIONS)
