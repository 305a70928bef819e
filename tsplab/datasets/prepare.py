"""Dataset preparation: from "which dataset" to a run folder holding its annotations, label mapping
and TSP segment tables (what notebook 01 does, and what pretraining reads).

A dataset is one of the presets of :mod:`tsplab.datasets.presets` (``activitynet``, ``thumos14``,
``synthetic``: which subsets train and evaluate, how long a background gap must be, which DETAD
buckets and tIoU thresholds apply), or ``custom``: a dataset of your own, with its own annotation
and durations files, that follows the rules of the preset named by ``DatasetConfig.follows``
(default ``activitynet``: subsets ``training`` / ``validation``, background gaps from 5 clips of
16 frames at 15 fps, ActivityNet's tIoU grid and DETAD buckets). ``prepare_dataset`` writes::

    RUN/dataset/annotations.json            every subset, ActivityNet format, ids without ``v_``
    RUN/dataset/action_label_mapping.json   sorted class names (class index = position)
    RUN/dataset/segments_{subset}.csv       TSP's segment table of each subset
    RUN/dataset/validation_report.csv       every annotation row dropped or clipped, with why
    RUN/dataset/dataset.json                the config and the preset it was made with

and, for the synthetic benchmark, generates it first into ``RUN/benchmark/`` (videos included); its
clip (``benchmark.json``) replaces the preset's clip settings.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tsplab.benchmark import generate_benchmark, read_benchmark_config
from tsplab.datasets.model import (REPORT_COLUMNS, AnnotationError, Annotations, make_annotations,
                                   write_label_mapping)
from tsplab.datasets.presets import PRESETS, DatasetPreset, get_preset
from tsplab.datasets.readers.activitynet import write_activitynet_json
from tsplab.datasets.reading import read_annotations
from tsplab.datasets.segments import build_segment_table, read_segment_table, write_segment_table
from tsplab.errors import InputError
from tsplab.runs import read_json, resolve, write_csv, write_json

CUSTOM = "custom"
DATASETS = (*PRESETS, CUSTOM)


@dataclass
class DatasetConfig:
    """Where a dataset's files are. Relative paths are relative to the repository root."""

    dataset: str = "synthetic"      # synthetic | activitynet | thumos14 | custom
    annotations: list = field(default_factory=list)  # annotation files (any format tsplab reads)
    durations: str = ""             # durations / metadata CSV (custom datasets need one)
    videos_dir: str = ""            # where the video files are (optional for the tables)
    benchmark_size: str = "tiny"    # synthetic benchmark size: tiny | default
    seed: int = 0                   # synthetic benchmark seed
    strict: bool = False            # raise on bad annotation rows instead of clipping/dropping
    follows: str = "activitynet"    # custom datasets: the dataset preset whose rules they follow
    benchmark_options: dict = field(default_factory=dict)  # synthetic: the benchmark's dials {dial: level}


def dataset_preset(config: DatasetConfig) -> DatasetPreset:
    """The preset ``config``'s dataset follows: its own, or for ``custom`` the one it ``follows``.
    ``InputError`` names the valid choices."""
    if config.dataset == CUSTOM:
        if config.follows not in PRESETS:
            raise InputError(f"follows: {config.follows!r} is not a dataset preset; a custom dataset "
                             f"follows one of: {', '.join(PRESETS)}")
        return get_preset(config.follows)
    if config.dataset not in PRESETS:
        raise InputError(f"dataset: unknown dataset {config.dataset!r}; valid datasets: {', '.join(DATASETS)}")
    return get_preset(config.dataset)


@dataclass
class PreparedDataset:
    """A prepared dataset in a run folder (see the module docstring for the files)."""

    folder: Path
    dataset: str                    # DatasetConfig.dataset (custom, or the preset's name)
    preset: DatasetPreset           # with the synthetic benchmark's own clip settings
    annotations: Annotations
    segment_tables: dict            # subset -> TSP segment table
    report: pd.DataFrame            # dropped / clipped annotation rows, with subset
    videos_dir: Path | None

    @property
    def annotations_path(self) -> Path:
        return self.folder / "annotations.json"

    def segment_table_path(self, subset: str) -> Path:
        return self.folder / f"segments_{subset}.csv"

    def video_paths(self) -> dict[str, Path]:
        """``{video: file}`` of every annotated video (its ``filename``, else ``{video}.mp4``, under
        ``videos_dir``), whether the file exists or not (probing names the missing ones).
        ``InputError`` when the dataset was prepared without a video folder."""
        if self.videos_dir is None:
            raise InputError(f"{self.folder}: prepared without videos (no videos_dir); prepare it again with "
                             "videos_dir= (notebook 01, DatasetConfig.videos_dir) to look at its videos")
        videos = self.annotations.videos
        return {v: self.videos_dir / (f if isinstance(f, str) and f else f"{v}.mp4")
                for v, f in zip(videos["video"], videos["filename"])}


def prepare_dataset(config: DatasetConfig, run_dir) -> PreparedDataset:
    """Read, validate and tabulate the dataset of ``config`` into ``RUN/dataset/``; see the module
    docstring. Bad annotation rows are clipped or dropped and listed in ``report`` (``strict``
    raises instead, naming them). Every table is built before the first file is written."""
    preset = dataset_preset(config)
    run_dir = resolve(run_dir)
    files = [resolve(p) for p in _as_list(config.annotations)]
    videos_dir = resolve(config.videos_dir) if config.videos_dir else None
    if config.dataset == CUSTOM and not (files and config.durations):
        raise InputError("dataset 'custom': give its annotation file(s) (DatasetConfig.annotations) and "
                         "DatasetConfig.durations (a CSV video,duration)")
    if config.dataset in GENERATED:
        preset, benchmark = GENERATED[config.dataset](config, run_dir, preset)
        files = files or [benchmark / "annotations.json"]
        videos_dir = videos_dir or benchmark / "videos"
    files = files or [resolve(p) for p in preset.default_annotations]

    annotations = _read_all(files, config.durations or None)
    tables, report = _segment_tables(annotations, preset, config.strict)
    folder = run_dir / "dataset"
    for subset, table in tables.items():
        write_segment_table(table, folder / f"segments_{subset}.csv")
    write_activitynet_json(annotations, folder / "annotations.json")
    write_label_mapping(annotations.labels, folder / "action_label_mapping.json")
    write_csv(folder / "validation_report.csv", report)
    saved = dataclasses.asdict(config)
    if not saved["benchmark_options"]:  # no dials: the file as before they existed
        del saved["benchmark_options"]
    write_json(folder / "dataset.json", {"config": saved, "preset": preset.to_dict(),
                                         "videos_dir": str(videos_dir) if videos_dir else None})
    return PreparedDataset(folder, config.dataset, preset, annotations, tables, report, videos_dir)


def _generate_synthetic(config: DatasetConfig, run_dir: Path, preset: DatasetPreset
                        ) -> tuple[DatasetPreset, Path]:
    """Generate the benchmark into ``RUN/benchmark/``: (the preset with its clip, its folder)."""
    benchmark = generate_benchmark(run_dir / "benchmark", config.benchmark_size, config.seed,
                                   dials=config.benchmark_options or None)
    synthetic, _ = read_benchmark_config(benchmark)
    return dataclasses.replace(preset, clip_length_frames=synthetic.clip_length_frames,
                               frame_rate=synthetic.fps), benchmark


def _segment_tables(annotations: Annotations, preset: DatasetPreset, strict: bool
                    ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The segment table of every subset with actions (``subset -> table``), and the validation
    reports of all of them in one table with a ``subset`` column."""
    tables, reports = {}, []
    for subset in annotations.subsets:
        part = annotations.subset(subset)
        if part.instances.empty:  # e.g. ActivityNet's unlabeled testing subset
            continue
        table, report = build_segment_table(part, preset, labels=annotations.labels, strict=strict)
        tables[subset] = table
        reports.append(report.assign(subset=subset))
    report = (pd.concat(reports, ignore_index=True) if reports
              else pd.DataFrame(columns=[*REPORT_COLUMNS, "subset"]))
    return tables, report


def load_prepared_dataset(run_dir) -> PreparedDataset:
    """A dataset prepared earlier by :func:`prepare_dataset` into ``run_dir``."""
    folder = resolve(run_dir) / "dataset"
    meta = read_json(folder / "dataset.json")
    saved = dict(meta["config"])
    if "preset" in saved:  # written before the benchmark size had its own name
        saved["benchmark_size"] = saved.pop("preset")
    config = DatasetConfig(**saved)
    if "preset" not in meta:
        raise InputError(f"{folder / 'dataset.json'}: written by an older tsplab (no dataset preset "
                         "saved); prepare the dataset again (prepare_dataset, notebook 01)")
    preset = DatasetPreset.from_dict(meta["preset"])
    # Videos whose duration was unknown at preparation are in the validation report; their
    # "duration": null is expected here.
    annotations = read_annotations(folder / "annotations.json", allow_unknown_durations=True)
    tables = {p.stem.removeprefix("segments_"): read_segment_table(p)
              for p in sorted(folder.glob("segments_*.csv"))}
    report = pd.read_csv(folder / "validation_report.csv")
    videos_dir = Path(meta["videos_dir"]) if meta.get("videos_dir") else None
    return PreparedDataset(folder, config.dataset, preset, annotations, tables, report, videos_dir)


# Datasets generated on preparation (name -> generator returning the preset with the generated clip
# settings and the folder holding ``annotations.json`` and ``videos/``); every other dataset is read
# from its files or its preset's ``default_annotations``.
GENERATED = {"synthetic": _generate_synthetic}


def _as_list(value) -> list:
    if not value:
        return []
    return [value] if isinstance(value, (str, Path)) else list(value)


def _read_all(files: list[Path], durations) -> Annotations:
    """Several annotation files (e.g. TSP's train and valid CSVs) as one :class:`Annotations`."""
    parts = [read_annotations(p, durations=durations) for p in files]
    if len(parts) == 1:
        return parts[0]
    videos = pd.concat([p.videos for p in parts], ignore_index=True)
    duplicated = videos["video"].duplicated(keep=False)
    if duplicated.any():
        raise AnnotationError(f"annotation files {[str(f) for f in files]} share videos "
                              f"{sorted(videos.loc[duplicated, 'video'].unique())[:5]} (ids compared without "
                              "ActivityNet's v_ prefix); give each video once")
    instances = pd.concat([p.instances for p in parts], ignore_index=True)
    labels = sorted(set().union(*(p.labels for p in parts)))
    return make_annotations(videos, instances, labels)
