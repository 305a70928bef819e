"""Standardizing videos as TSP does: every video re-encoded to a constant-frame-rate H.264 MP4 (30 fps),
optionally resized, so that clips are sampled the same way from every file."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tsplab.errors import InputError
from tsplab.video.decode import _check_rate, _resampled_arrays
from tsplab.video.jobs import run_jobs
from tsplab.video.probe import VideoError, list_videos, probe_video
from tsplab.video.write import _encode_h264

if TYPE_CHECKING:  # pandas is imported where tables are made: worker processes start faster
    import pandas as pd


def standardize_video(src, dst, fps: float = 30, short_side: int | None = None, *,
                      crf: int = 18) -> Path:
    """Re-encode ``src`` as a constant-frame-rate H.264 MP4 at ``fps`` (TSP re-encodes every video to
    30 fps), optionally resized so the short side is ``short_side`` (even: H.264 yuv420p needs it).

    Frames are resampled by timestamps (repeated or dropped; see ``tsplab.video.decode``), streamed
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
    results = run_jobs(_standardize_one, jobs, workers, "standardize",
                        on_crash=lambda error: ("failed", error))
    rows += [{"video": video, "status": status, "error": error} for video, (status, error) in results]
    return pd.DataFrame(rows, columns=["video", "status", "error"]).sort_values(
        "video", kind="stable").reset_index(drop=True)


@dataclass
class StandardizeReport:
    """What ``tsplab standardize`` reports: ``table`` (:func:`standardize_videos`' rows), the one-line
    ``summary`` of it, the ``failed`` rows and, when some failed, the ``failure`` sentence."""

    table: pd.DataFrame
    summary: str
    failed: pd.DataFrame
    failure: str

    @property
    def exit_status(self) -> int:
        """1 when any video failed (the table says which and why), else 0."""
        return 1 if len(self.failed) else 0


def standardize_folder(in_dir: Path, out_dir: Path, fps: float = 30, short_side: int | None = None,
                       workers: int = 2, *, names: tuple[str, str] | None = None) -> StandardizeReport:
    """:func:`standardize_videos` with its settings checked first and its outcome summarised.

    A bad setting stops with one ``InputError`` line naming the command-line option before any
    work (:func:`standardize_videos` itself raises plain ``ValueError`` for these). ``names``: how
    the two folders are shown in messages (as the user gave them; default: the paths).
    """
    in_name, out_name = names or (str(in_dir), str(out_dir))
    _check_folder_settings(in_dir, out_dir, fps, short_side, workers, out_name)
    table = standardize_videos(in_dir, out_dir, fps=fps, short_side=short_side, workers=workers)
    counts = table.status.value_counts()
    summary = (f"{in_name} -> {out_name} at {fps:g} fps: " +
               ", ".join(f"{counts.get(s, 0)} {s}" for s in ("done", "skipped", "failed")))
    failed = table[table.status == "failed"]
    failure = (f"{len(failed)} of {len(table)} videos failed (listed above with the reason); the other "
               f"{len(table) - len(failed)} are done in {out_name}") if len(failed) else ""
    return StandardizeReport(table=table, summary=summary, failed=failed, failure=failure)


def _check_folder_settings(in_dir: Path, out_dir: Path, fps, short_side, workers, out_name: str) -> None:
    if not 0 < fps < float("inf"):
        raise InputError(f"--fps {fps}: give a frame rate > 0 (TSP: 30)")
    if short_side is not None and (short_side <= 0 or short_side % 2):
        raise InputError(f"--short-side {short_side}: give an even number of pixels > 0 (H.264 "
                         "yuv420p needs even sizes)")
    if workers < 1:
        raise InputError(f"--workers {workers}: give at least 1 encoding process")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_name}: the output folder is an existing file; give a folder")
    if in_dir.is_dir() and in_dir.resolve() == out_dir.resolve():
        raise InputError(f"{out_name}: the output folder must differ from the input folder "
                         "(outputs would replace their sources)")
