"""The frame cache: each video decoded once at the training rate and resolution and kept as a ``.npy``
array, so that sampling a clip costs a slice of a memory map instead of a seek and a decode."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tsplab.runs import atomic_path, read_json, resolve, write_json
from tsplab.video.decode import _check_rate, decode_frames
from tsplab.video.jobs import run_jobs
from tsplab.video.probe import VideoError

if TYPE_CHECKING:  # pandas is imported where tables are made: worker processes start faster
    import pandas as pd


class FrameCache:
    """Decoded frames at the training rate and resolution, one ``.npy`` [N, H, W, 3] per video,
    decoded once per dataset and reused by every method and epoch (clip sampling then costs a slice of
    a memory map instead of a seek and a decode).

    Files live in ``root/{frame_rate}fps_short{short_side}/`` (``..._native`` without resizing) with
    a ``cache.json`` naming the settings, so caches at different settings never mix. Beside each
    ``{stem}.npy`` a ``{stem}.json`` records the source file's name, size and modification time: a
    changed source is decoded again. Frame k is the one shown at ``k / frame_rate`` s (see
    ``tsplab.video.decode``). Disk cost: N * H * W * 3 bytes per video. ``root`` is resolved with
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
        results = run_jobs(_cache_one, jobs, workers, "frame cache",
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
