"""Dataset presets and preparation: from "which dataset" to a run folder holding its annotations,
label mapping and TSP segment tables (what notebook 01 does, and what pretraining reads).

A dataset is described by a :class:`DatasetSpec` (which subsets train and validate, how long a
background gap must be, which DETAD buckets and tIoU thresholds apply) and prepared from a
:class:`DatasetConfig` (where its files are). ``prepare_dataset`` writes::

    RUN/dataset/annotations.json            every subset, ActivityNet format, ids without ``v_``
    RUN/dataset/action_label_mapping.json   sorted class names (class index = position)
    RUN/dataset/segments_{subset}.csv       TSP's segment table of each subset
    RUN/dataset/validation_report.csv       every annotation row dropped or clipped, with why
    RUN/dataset/dataset.json                the config and spec it was made with

and, for the synthetic benchmark, generates it first into ``RUN/benchmark/`` (videos included).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tsplab.annotations import (REPORT_COLUMNS, SEGMENT_PRESETS, AnnotationError, Annotations, SegmentTablePreset,
                                build_segment_table, make_annotations, read_annotations,
                                write_activitynet_json, write_label_mapping, write_segment_table)
from tsplab.runs import atomic_path, read_json, resolve, write_json

SHARED_DATA = "../shared/data"  # the real annotation files, beside the checkout


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset's name implies for every stage of the pipeline."""

    name: str
    segment_preset: SegmentTablePreset
    detad_preset: str                # a key of tsplab.detad.DETAD_PRESETS
    train_subset: str
    valid_subset: str
    default_annotations: tuple = ()  # repo-relative files used when the config names none


DATASETS = {
    "activitynet": DatasetSpec(
        "activitynet", SEGMENT_PRESETS["activitynet"], "activitynet", "training", "validation",
        (f"{SHARED_DATA}/activitynet/activitynet_v1-3_train_tsp_groundtruth.csv",
         f"{SHARED_DATA}/activitynet/activitynet_v1-3_valid_tsp_groundtruth.csv")),
    # TSP pretrains on THUMOS14's validation videos and evaluates on its test videos.
    "thumos14": DatasetSpec(
        "thumos14", SEGMENT_PRESETS["thumos14"], "thumos14", "validation", "testing",
        (f"{SHARED_DATA}/thumos14/thumos14_valid_tsp_groundtruth.csv",
         f"{SHARED_DATA}/thumos14/thumos14_test_tsp_groundtruth.csv")),
    # One clip of the benchmark's own clip length is enough background (its videos are seconds long).
    "synthetic": DatasetSpec(
        "synthetic", SegmentTablePreset(min_background_clips=1, clip_length_frames=8, frame_rate=15.0),
        "synthetic", "training", "validation"),
    "custom": DatasetSpec("custom", SEGMENT_PRESETS["thumos14"], "activitynet", "training", "validation"),
}


def get_dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


@dataclass
class DatasetConfig:
    """Where a dataset's files are. Relative paths are relative to the repository root."""

    dataset: str = "synthetic"      # synthetic | activitynet | thumos14 | custom
    annotations: list = field(default_factory=list)  # annotation files (any format tsplab reads)
    durations: str = ""             # durations / metadata CSV (custom datasets need one)
    videos_dir: str = ""            # where the video files are (optional for the tables)
    preset: str = "tiny"            # synthetic benchmark size: tiny | default
    seed: int = 0                   # synthetic benchmark seed
    strict: bool = False            # raise on bad annotation rows instead of clipping/dropping


@dataclass
class PreparedDataset:
    """A prepared dataset in a run folder (see the module docstring for the files)."""

    folder: Path
    spec: DatasetSpec
    annotations: Annotations
    segment_tables: dict            # subset -> TSP segment table
    report: pd.DataFrame            # dropped / clipped annotation rows, with subset
    videos_dir: Path | None

    @property
    def annotations_path(self) -> Path:
        return self.folder / "annotations.json"

    def segment_table_path(self, subset: str) -> Path:
        return self.folder / f"segments_{subset}.csv"


def prepare_dataset(config: DatasetConfig, run_dir) -> PreparedDataset:
    """Read, validate and tabulate the dataset of ``config`` into ``RUN/dataset/``; see the module
    docstring. Bad annotation rows are clipped or dropped and listed in ``report`` (``strict``
    raises instead, naming them)."""
    spec = get_dataset_spec(config.dataset)
    run_dir = resolve(run_dir)
    files = [resolve(p) for p in _as_list(config.annotations)]
    videos_dir = resolve(config.videos_dir) if config.videos_dir else None
    if spec.name == "synthetic":
        from tsplab.synthetic import generate_benchmark, read_benchmark_config

        benchmark = generate_benchmark(run_dir / "benchmark", config.preset, config.seed)
        synthetic, _ = read_benchmark_config(benchmark)
        spec = dataclasses.replace(spec, segment_preset=SegmentTablePreset(
            1, synthetic.clip_length_frames, synthetic.fps))
        files = files or [benchmark / "annotations.json"]
        videos_dir = videos_dir or benchmark / "videos"
    files = files or [resolve(p) for p in spec.default_annotations]
    if not files:
        raise ValueError(f"dataset {spec.name!r}: name its annotation file(s) in DatasetConfig.annotations")
    if spec.name == "custom" and not config.durations:
        raise ValueError("dataset 'custom': give DatasetConfig.durations (a CSV video,duration)")

    annotations = _read_all(files, config.durations or None)
    folder = run_dir / "dataset"
    tables, reports = {}, []
    for subset in annotations.subsets:
        part = annotations.subset(subset)
        if part.instances.empty:  # e.g. ActivityNet's unlabeled testing subset
            continue
        table, report = build_segment_table(part, min_background_s=spec.segment_preset.min_background_s,
                                            labels=annotations.labels, strict=config.strict)
        tables[subset] = table
        reports.append(report.assign(subset=subset))
        write_segment_table(table, folder / f"segments_{subset}.csv")
    report = (pd.concat(reports, ignore_index=True) if reports
              else pd.DataFrame(columns=[*REPORT_COLUMNS, "subset"]))
    write_activitynet_json(annotations, folder / "annotations.json")
    write_label_mapping(annotations.labels, folder / "action_label_mapping.json")
    _write_csv(report, folder / "validation_report.csv")
    write_json(folder / "dataset.json", {"config": dataclasses.asdict(config),
                                         "spec": dataclasses.asdict(spec),
                                         "videos_dir": str(videos_dir) if videos_dir else None})
    return PreparedDataset(folder, spec, annotations, tables, report, videos_dir)


def load_prepared_dataset(run_dir) -> PreparedDataset:
    """A dataset prepared earlier by :func:`prepare_dataset` into ``run_dir``."""
    from tsplab.annotations import read_segment_table

    folder = resolve(run_dir) / "dataset"
    meta = read_json(folder / "dataset.json")
    spec_dict = dict(meta["spec"])
    spec_dict["segment_preset"] = SegmentTablePreset(**spec_dict["segment_preset"])
    spec_dict["default_annotations"] = tuple(spec_dict["default_annotations"])
    # Videos whose duration was unknown at preparation are in the validation report; their
    # "duration": null is expected here.
    annotations = read_annotations(folder / "annotations.json", allow_unknown_durations=True)
    tables = {p.stem.removeprefix("segments_"): read_segment_table(p)
              for p in sorted(folder.glob("segments_*.csv"))}
    report = pd.read_csv(folder / "validation_report.csv")
    videos_dir = Path(meta["videos_dir"]) if meta.get("videos_dir") else None
    return PreparedDataset(folder, DatasetSpec(**spec_dict), annotations, tables, report, videos_dir)


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


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
