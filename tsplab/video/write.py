"""Writing videos: frames to a constant-frame-rate H.264 MP4 with a fixed keyframe interval."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tsplab.runs import atomic_path
from tsplab.video.probe import VideoError


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
