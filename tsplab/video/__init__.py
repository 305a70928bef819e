"""Video I/O with PyAV: probe, decode clips, stream clip windows, standardize, write, cache frames.

All frames are ``uint8`` arrays shaped ``[T, H, W, 3]`` (RGB). Times are seconds, frame counts are
frames; names carry the unit (``t_start_s``, ``stride_frames``).

- ``probe``: finding videos, what a file holds (:class:`VideoInfo`), opening it; :class:`VideoError`.
- ``decode``: clips and whole videos resampled by timestamps (the time model is in its docstring).
- ``windows``: sliding clip windows over a video, streamed (feature extraction).
- ``write``: frames to a constant-frame-rate H.264 MP4.
- ``standardize``: TSP's re-encoding of every video to constant-frame-rate H.264
  (``tsplab standardize``).
- ``frame_cache``: each video decoded once at the training rate and size, kept as ``.npy``.
- ``jobs``: batch work over videos in a process pool.
"""
from tsplab.video.decode import decode_frames, output_size, read_clip
from tsplab.video.frame_cache import FrameCache
from tsplab.video.probe import (SMALL_FRAME_MAX_PIXELS, VIDEO_EXTENSIONS, VideoError, VideoInfo,
                                list_videos, probe_video, probe_videos)
from tsplab.video.standardize import (StandardizeReport, standardize_folder, standardize_video,
                                      standardize_videos)
from tsplab.video.windows import CLIP_RULES, ClipWindow, iter_clip_windows, num_clip_windows
from tsplab.video.write import write_video

__all__ = [
    "CLIP_RULES", "ClipWindow", "FrameCache", "SMALL_FRAME_MAX_PIXELS", "StandardizeReport",
    "VIDEO_EXTENSIONS",
    "VideoError", "VideoInfo", "decode_frames", "iter_clip_windows", "list_videos", "num_clip_windows",
    "output_size", "probe_video", "probe_videos", "read_clip", "standardize_folder", "standardize_video",
    "standardize_videos", "write_video",
]
