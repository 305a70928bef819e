"""Writing a benchmark folder: the target videos (H.264 MP4, encoded in worker processes), their
ActivityNet-format annotations and label mapping, then the trimmed source set, each with a manifest
that says ``"complete": true`` once every file is written. Generation resumes where a killed run
stopped and refuses to mix two configs or seeds in one folder.
"""
from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from tsplab.benchmark.config import SyntheticConfig, get_config, source_config
from tsplab.benchmark.dials import BenchmarkDials
from tsplab.benchmark.layout import BENCHMARK_MANIFEST, SOURCE_DIR, SOURCE_MANIFEST
from tsplab.benchmark.plan import VideoPlan, plan_benchmark, plan_source
from tsplab.benchmark.render import render_video
from tsplab.benchmark.tables import (activitynet_json, label_names, read_benchmark_config, summarize,
                                     summarize_source)
from tsplab.errors import InputError
from tsplab.runs import read_json, resolve, write_json


def _encode_one(config: SyntheticConfig, plan: VideoPlan, seed: int, path: str) -> str:
    from tsplab.video import write_video  # PyAV is needed only where videos are encoded

    video = render_video(config, plan, seed)
    write_video(path, video.frames, config.fps, keyframe_interval_s=1.0)
    return plan.video


def _identity(config: SyntheticConfig, seed: int) -> dict:
    config_dict = json.loads(json.dumps(dataclasses.asdict(config)))
    if config_dict.get("dials") is None:  # all dials off: the file as before the dials existed
        config_dict.pop("dials", None)
    return {"config": config_dict, "seed": int(seed)}


def _check_identity(manifest_path: Path, identity: dict, what: str) -> None:
    """A folder holding another config's or seed's files is refused rather than mixed with ours,
    naming what differs (a benchmark generated with other dials is another benchmark)."""
    if manifest_path.is_file():
        old = read_json(manifest_path)
        if {k: old.get(k) for k in identity} != identity:
            raise InputError(f"{manifest_path.parent}: holds a {what} of another config or seed "
                             f"({identity_difference(old, identity)}); choose another folder or delete "
                             "this one")


def identity_difference(recorded: dict, asked: dict) -> str:
    """What differs between a folder's recorded identity and the one asked for, in words:
    ``dials: context_distractors 0.5 there, 0 asked; seed 1 there, 0 asked``."""
    def flat(identity: dict) -> dict:
        identity = identity.get("benchmark", identity)  # a source manifest nests the benchmark's
        config = dict(identity.get("config") or {})
        dials = config.pop("dials", None) or {}
        values = {f"dials: {k}": v for k, v in dials.items()
                  if v != getattr(BenchmarkDials(), k)}
        return {**values, **config, "seed": identity.get("seed")}

    there, here = flat(recorded), flat(asked)
    for key in [k for k in there if k.startswith("dials: ")] + [k for k in here if k.startswith("dials: ")]:
        default = getattr(BenchmarkDials(), key.removeprefix("dials: "))
        there.setdefault(key, default)
        here.setdefault(key, default)
    parts = [f"{k} {there.get(k)} there, {here.get(k)} asked" for k in sorted(set(there) | set(here))
             if there.get(k) != here.get(k)]
    return "; ".join(parts) or "its source set's sizes differ"


def generate_benchmark(out_dir, size="tiny", seed: int = 0, *, workers: int = 2,
                       progress: bool = True, dials=None) -> Path:
    """Write the benchmark of size ``size`` (a name in ``SIZES`` or a ``SyntheticConfig``) into
    ``out_dir``, then its trimmed source set into ``out_dir/source/`` (:func:`generate_source`), and
    return that folder.

    ``dials`` (a ``tsplab.benchmark.dials.BenchmarkDials`` or a dict of levels) switch premises
    on; they are recorded in ``benchmark.json``'s config.

    A complete folder with the same config and seed is left as it is (a source set it lacks, as in
    folders made before the source set existed, is added); a folder left by a killed run is resumed
    (videos already written are kept: every write is atomic); a folder holding a benchmark of another
    config or seed raises ``InputError`` rather than mixing the two.
    """
    config = get_config(size)
    if dials is not None:
        config = dataclasses.replace(config, dials=BenchmarkDials.from_value(dials))
    out = resolve(out_dir)
    _check_settings(out, seed, workers)
    identity = _identity(config, seed)
    _check_identity(out / BENCHMARK_MANIFEST, identity, "synthetic benchmark")
    plans = plan_benchmark(config, seed)
    _write_video_set(out, BENCHMARK_MANIFEST, identity, config, seed, plans, workers=workers,
                     progress=progress, desc="synthetic videos",
                     summary=lambda: summarize(config, plans))
    generate_source(out, workers=workers, progress=progress)
    return out


def _check_settings(out: Path, seed: int, workers: int) -> None:
    """``InputError`` naming the field: a negative seed, no encoding process, an output that is a file."""
    if not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed {seed}: give a seed >= 0")
    if not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers {workers}: give at least 1 encoding process")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: out_dir is an existing file; give a folder for the benchmark")


def generate_source(benchmark_dir, *, workers: int = 2, progress: bool = True) -> Path:
    """Write the trimmed, class-labelled source set of the benchmark in ``benchmark_dir`` (read from
    its ``benchmark.json``) into ``benchmark_dir/source/`` and return that folder: ``videos/``,
    ``annotations.json`` (ActivityNet format, each video one instance spanning it), the label mapping
    and ``source.json`` (the benchmark's config and seed, the source sizes, ``"complete"``). Resumes
    and refuses like :func:`generate_benchmark`."""
    folder = resolve(benchmark_dir)
    config, seed = read_benchmark_config(folder)
    out = folder / SOURCE_DIR
    identity = {"benchmark": _identity(config, seed),
                "source": json.loads(json.dumps(dataclasses.asdict(source_config(config))))}
    _check_identity(out / SOURCE_MANIFEST, identity, "source set")
    plans = plan_source(config, seed)
    return _write_video_set(out, SOURCE_MANIFEST, identity, config, seed, plans, workers=workers,
                            progress=progress, desc="source videos",
                            summary=lambda: summarize_source(config, plans))


def _write_video_set(out: Path, manifest_name: str, identity: dict, config, seed: int, plans, *,
                     workers: int, progress: bool, desc: str, summary) -> Path:
    """Write the videos of ``plans`` that ``out/videos/`` lacks, the annotations and the label
    mapping; the manifest says ``"complete": true`` (with ``summary()``) once every file exists. A
    complete folder with every video is left untouched."""
    manifest_path = out / manifest_name
    video_dir = out / "videos"
    todo = [p for p in plans if not (video_dir / f"{p.video}.mp4").is_file()]
    if manifest_path.is_file() and read_json(manifest_path).get("complete") and not todo:
        return out
    write_json(manifest_path, {**identity, "complete": False})
    write_json(out / "annotations.json", activitynet_json(config, plans))
    write_json(out / "action_label_mapping.json", label_names(config, plans))
    video_dir.mkdir(parents=True, exist_ok=True)
    _encode_videos(config, seed, todo, video_dir, workers=workers, progress=progress, desc=desc)
    size_bytes = sum(f.stat().st_size for f in video_dir.glob("*.mp4"))
    write_json(manifest_path, {**identity, "complete": True,
                               "summary": {**summary(), "video_bytes": size_bytes}})
    return out


def _encode_videos(config, seed: int, todo: list[VideoPlan], video_dir: Path, *, workers: int,
                   progress: bool, desc: str) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=desc, unit="video", disable=not progress)
    if workers <= 1 or len(todo) <= 1:
        for p in todo:
            _encode_one(config, p, seed, str(video_dir / f"{p.video}.mp4"))
            bar.update()
    else:
        # spawn, not fork: the caller may hold torch/OpenMP threads, which do not survive a fork.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_encode_one, config, p, seed, str(video_dir / f"{p.video}.mp4")):
                       p.video for p in todo}
            for future in as_completed(futures):
                try:
                    future.result()
                except Exception as exc:
                    raise RuntimeError(f"{video_dir / futures[future]}.mp4: generation failed: "
                                       f"{exc}") from exc
                bar.update()
    bar.close()


def ensure_benchmark(dataset_dir, size="tiny", seed: int = 0, *, dials=None, **generate_kwargs) -> Path:
    """The dataset folder ``dataset_dir`` (resolved) of a pretraining or extraction run, with the
    synthetic benchmark ``size`` generated into it when it needs one (notebooks 03 and 04).

    A folder without ``annotations.json`` gets the benchmark; a folder holding a synthetic benchmark
    (``benchmark.json``) is passed to :func:`generate_benchmark`, which leaves a complete one as it
    is, finishes an interrupted one and refuses one of another size, seed or dials (``InputError``,
    naming the difference). ``dials`` (a dict ``{dial: level}``, the notebooks' ``benchmark_options``,
    or a ``BenchmarkDials``; empty or None: the plain benchmark) are the benchmark's premises. A
    folder of another dataset (``annotations.json`` without ``benchmark.json``) is never written to.
    ``generate_kwargs`` go to :func:`generate_benchmark` (``workers``, ``progress``)."""
    folder = resolve(dataset_dir)
    dials = BenchmarkDials.from_value(dials or None)
    if dials is not None:
        generate_kwargs["dials"] = dials
    if not (folder / "annotations.json").is_file() or (folder / BENCHMARK_MANIFEST).is_file():
        generate_benchmark(folder, size, seed, **generate_kwargs)
    return folder
