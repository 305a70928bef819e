"""What a dataset's name means, in one place: one :class:`DatasetPreset` per dataset (ActivityNet
v1.3, THUMOS14, the built-in synthetic benchmark), read by annotations (segment tables),
pretraining (the background rule), metrics (tIoU thresholds, the subset evaluated), DETAD (bucket
edges), the localizer (predictions kept) and the pipeline.

Values and their sources:

- Clips: TSP's, 16 frames at 15 fps (TSP §4.1); the synthetic benchmark's own clip comes from its
  ``benchmark.json`` (``tsplab.benchmark``) and replaces these where a benchmark is at hand.
- Background gaps: TSP's released ActivityNet tables keep gaps from 5 clips, its THUMOS14 tables from
  1 clip (README, "Data conventions"); the synthetic benchmark's videos last seconds, so 1 clip.
- Subsets: TSP pretrains on ActivityNet's training videos and reports on validation; on THUMOS14 it
  pretrains on the validation videos and reports on the test videos (``testing`` in DETAD's JSON).
- tIoU thresholds: ActivityNet's ``np.linspace(0.5, 0.95, 10)`` (the official evaluation), THUMOS14's
  0.3:0.1:0.7; proposals are evaluated on ActivityNet's grid with at most 100 per video on average.
- Predictions kept per video: ActivityNet 100, THUMOS14 200 (ASL §4.2, ActionFormer's configs).
- DETAD buckets: the edges of DETAD's ``sensitivity_analysis.py`` (coverage ``np.linspace(0, 1,
  6)``); DETAD evaluates THUMOS14 at tIoU 0.5 only. The synthetic benchmark has its own length edges
  (``SYNTHETIC_LENGTH_EDGES_S``, so each bucket holds a fair share) and 1-3 actions per video.
- Video ids (after ``tsplab.datasets.normalize_video_id``): THUMOS14's ``video_test_0000004``,
  ActivityNet's 11-character YouTube ids, the synthetic benchmark's ``train_0000`` / ``val_0000``;
  :func:`infer_preset` tells a dataset from them.

Readers: ``tsplab.datasets.build_segment_table(ann, preset)`` (the background rule),
``tsplab.evaluation.detad.get_bucket_spec`` (the buckets), ``tsplab.evaluation`` (thresholds, subset, proposals),
the localizer (predictions kept), ``tsplab.datasets`` and ``tsplab.pipeline``. A dataset of your own
("custom" in ``tsplab.datasets``) names the preset whose rules it follows (``DatasetConfig.follows``).
Where a run uses other clip settings than its preset's (a synthetic benchmark's ``benchmark.json``,
a pretraining config), ``dataclasses.replace(preset, clip_length_frames=..., frame_rate=...)`` gives
the preset of that run; ``DatasetPreset.to_dict`` / ``from_dict`` save and restore it (run folders).
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tsplab.benchmark.config import LENGTH_EDGES_S
from tsplab.errors import InputError

ACTIVITYNET_TIOU = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
THUMOS14_TIOU = tuple(float(t) for t in np.linspace(0.3, 0.7, 5))
SIZES = ("XS", "S", "M", "L", "XL")
INF = math.inf
# The real annotation tables the package ships (TSP's ActivityNet v1.3 and THUMOS14 files; sources and
# licences in tsplab/data/README.md).
DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class DatasetPreset:
    """Everything that differs between datasets (sources in the module docstring).

    ``detad_buckets``: characteristic (``length``, ``coverage``, ``num_instances``) -> ``(edges,
    labels)``, bucket i being ``(edges[i], edges[i+1]]``."""

    name: str
    id_pattern: str  # regular expression every (normalised) video id of the dataset matches
    min_background_clips: float
    train_subset: str
    eval_subset: str
    tiou_thresholds: tuple[float, ...]
    max_predictions: int  # per video, kept by the localizer
    detad_buckets: dict = field(default_factory=dict)
    detad_tiou_thresholds: tuple[float, ...] = ACTIVITYNET_TIOU
    clip_length_frames: int = 16
    frame_rate: float = 15.0
    proposal_tiou_thresholds: tuple[float, ...] = ACTIVITYNET_TIOU
    max_avg_proposals: int = 100
    ar_at: tuple[int, ...] = (1, 10, 100)
    default_annotations: tuple[str, ...] = ()  # shipped files (absolute) used when a config names none

    @property
    def min_background_s(self) -> float:
        """Shortest background gap kept in a segment table, in seconds."""
        return self.min_background_clips * self.clip_length_frames / self.frame_rate

    def to_dict(self) -> dict:
        """The preset as JSON-ready values (``inf`` edges stay floats: ``json`` writes Infinity)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DatasetPreset":
        """The preset ``to_dict`` gave, read back from JSON (lists become the tuples they were)."""
        values = dict(values)
        for name, value in values.items():
            if isinstance(value, list):
                values[name] = tuple(value)
        values["detad_buckets"] = {c: (tuple(edges), tuple(labels))
                                   for c, (edges, labels) in values.get("detad_buckets", {}).items()}
        return cls(**values)


# The synthetic benchmark's own instance-length bucket edges (tsplab.benchmark.config.LENGTH_EDGES_S),
# playing the role of ActivityNet's DETAD edges (0, 30, 60, 120, 180, inf) s.
SYNTHETIC_LENGTH_EDGES_S = LENGTH_EDGES_S
_COVERAGE = (tuple(float(x) for x in np.linspace(0, 1, 6)), SIZES)

PRESETS: dict[str, DatasetPreset] = {
    "activitynet": DatasetPreset(
        "activitynet", r"[A-Za-z0-9_-]{11}", min_background_clips=5, train_subset="training",
        eval_subset="validation", tiou_thresholds=ACTIVITYNET_TIOU, max_predictions=100,
        detad_buckets={"length": ((0, 30, 60, 120, 180, INF), SIZES), "coverage": _COVERAGE,
                       "num_instances": ((-1, 1, 4, 8, INF), SIZES[:4])},
        default_annotations=(str(DATA_DIR / "activitynet/activitynet_v1-3_train_tsp_groundtruth.csv"),
                             str(DATA_DIR / "activitynet/activitynet_v1-3_valid_tsp_groundtruth.csv"))),
    "thumos14": DatasetPreset(
        "thumos14", r"video_(validation|test)_\d{7}", min_background_clips=1, train_subset="validation",
        eval_subset="testing", tiou_thresholds=THUMOS14_TIOU, max_predictions=200,
        detad_buckets={"length": ((0, 3, 6, 12, 18, INF), SIZES),
                       "coverage": ((0, 0.02, 0.04, 0.06, 0.08, 1), SIZES),
                       "num_instances": ((-1, 1, 40, 80, INF), SIZES[:4])},
        detad_tiou_thresholds=(0.5,),
        default_annotations=(str(DATA_DIR / "thumos14/thumos14_valid_tsp_groundtruth.csv"),
                             str(DATA_DIR / "thumos14/thumos14_test_tsp_groundtruth.csv"))),
    "synthetic": DatasetPreset(
        "synthetic", r"(src_)?(train|val)_\d{4}", min_background_clips=1, train_subset="training",
        eval_subset="validation", tiou_thresholds=ACTIVITYNET_TIOU, max_predictions=100,
        detad_buckets={"length": (SYNTHETIC_LENGTH_EDGES_S, SIZES), "coverage": _COVERAGE,
                       "num_instances": ((-1, 1, 2, INF), SIZES[:3])},
        clip_length_frames=8, frame_rate=15.0),
}


def get_preset(name: str | DatasetPreset) -> DatasetPreset:
    """The preset called ``name`` (a preset passes through); ``InputError`` lists the valid ones."""
    if isinstance(name, DatasetPreset):
        return name
    if name not in PRESETS:
        raise InputError(f"preset: unknown dataset preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def infer_preset(videos, source="ground truth") -> str:
    """The preset of a dataset, told from its video ids: every id must match one preset's
    ``id_pattern``. A wrong preset changes every average mAP without any error (ActivityNet averages
    tIoU 0.5:0.95, THUMOS14 0.3:0.7), so ids that match none, or several presets at once, raise
    ``InputError`` asking for the preset by name."""
    ids = list(dict.fromkeys(str(v) for v in videos))  # distinct, in first-seen order
    found = [p.name for p in PRESETS.values()
             if ids and all(re.fullmatch(p.id_pattern, v) for v in ids)]
    if len(found) != 1:
        example = ", ".join(ids[:3])
        raise InputError(f"{source}: cannot tell the dataset from its video ids ({example}, ...); "
                         f"give the preset by name (--preset, or preset=): {' | '.join(PRESETS)}")
    return found[0]
