"""Planning a benchmark: what each video contains (class, scene, length, motion level, action
instances), before any pixel exists. Cheap and deterministic in (config, seed): every video draws
from random streams of its own, so one video's plan never depends on another's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tsplab.benchmark.config import SyntheticConfig, class_motions, get_config, source_config
from tsplab.benchmark.dials import apply_plan_dials
from tsplab.benchmark.layout import SUBSETS, VIDEO_PREFIX
from tsplab.benchmark.motions import MOTIONS, SOURCE_CLASSES_PER_SCENE, SOURCE_MOTIONS
from tsplab.errors import InputError


@dataclass
class VideoPlan:
    """What one video contains, before any pixel exists. Instances are ``(start_frame, end_frame,
    period_frames)`` with end exclusive; times in seconds are frame / fps."""

    video: str
    subset: str
    index: int                 # position in the whole benchmark (training first), seeds its pixels
    label: int                 # action class of every instance
    scene_class: int           # class whose palette the scene was drawn from (source: the scene index)
    num_frames: int
    motion_level: float        # u in [0, 1] (0 everywhere when the GVF knob is off)
    instances: list = field(default_factory=list)
    source: bool = False       # a video of the trimmed source set (its own classes, SOURCE_MOTIONS)
    # Dials (tsplab.benchmark.dials), empty when off: each instance's class (None: all ``label``),
    # background segments (start, end, period, class) showing another class's motion, frames where
    # a scene cut starts a new scene, and the motion of each class where it is not the default's.
    instance_labels: list | None = None
    distractors: list = field(default_factory=list)
    cuts: list = field(default_factory=list)
    label_motions: tuple | None = None

    @property
    def motion(self) -> str:
        """The motion of the video's class (that of every instance without the multi-class dials)."""
        return self.motion_of(self.label)

    def motion_of(self, label: int) -> str:
        """The motion class ``label`` performs in this video."""
        if self.label_motions is not None:
            return self.label_motions[label]
        return (SOURCE_MOTIONS if self.source else MOTIONS)[label]

    def label_of(self, i: int) -> int:
        """The class of instance ``i``."""
        return self.label if self.instance_labels is None else self.instance_labels[i]



def class_names(config: SyntheticConfig) -> list[str]:
    """Class names, sorted (the label mapping); class index i performs ``MOTIONS[i]``."""
    return [f"{i:02d}_{MOTIONS[i]}" for i in range(config.num_classes)]


def source_class_names(config) -> list[str]:
    """The source set's class names, sorted (its label mapping); class i performs
    ``SOURCE_MOTIONS[i]``, or a target motion under the ``source_shared_motions`` dial. The ``src``
    prefix keeps them apart from the target's names."""
    return [f"src{i:02d}_{m}" for i, m in enumerate(class_motions(get_config(config), True))]


def stream_rng(seed: int, *stream: int) -> np.random.Generator:
    """The generator of one random stream: (seed, stream number, video index, ...)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *stream]))


def plan_benchmark(config="tiny", seed: int = 0) -> list[VideoPlan]:
    """The plan of every video (training first, then validation), deterministic in (config, seed)."""
    config = get_config(config)
    if int(seed) < 0:
        raise InputError(f"seed={seed}: must be >= 0")
    plans = []
    index = 0
    for subset_code, (subset, count) in enumerate(
            zip(SUBSETS, (config.num_train_videos, config.num_val_videos))):
        # Balanced classes, in a seeded order (so ids carry no class information).
        labels = stream_rng(seed, 1, subset_code).permutation(np.arange(count) % config.num_classes)
        for i in range(count):
            rng = stream_rng(seed, 2, index)
            plans.append(_plan_video(config, rng, f"{VIDEO_PREFIX[subset]}_{i:04d}", subset, index,
                                     int(labels[i]), seed))
            index += 1
    return plans


def scene_class_of(config, rng, label: int, num_classes: int) -> int:
    """The class whose palette the scene takes: the video's own with probability ``p_scene``."""
    if rng.random() >= config.p_scene:
        return int(rng.choice([c for c in range(num_classes) if c != label]))
    return label


def _plan_video(config, rng, video, subset, index, label, seed: int) -> VideoPlan:
    scene_class = scene_class_of(config, rng, label, config.num_classes)
    num_frames = int(rng.integers(config.num_frames_range[0], config.num_frames_range[1] + 1))
    motion_level = float(rng.random()) if config.per_video_motion_level else 0.0
    instances = _plan_instances(config, rng, num_frames)
    plan = VideoPlan(video, subset, index, label, scene_class, num_frames, motion_level, instances)
    # The dials draw from streams of their own, after the plain plan: all off, nothing changes.
    return apply_plan_dials(config, plan, seed) if config.dials else plan


def plan_source(config="tiny", seed: int = 0) -> list[VideoPlan]:
    """The plan of every video of the benchmark's trimmed source set (training first, then
    validation; ids ``src_train_0000``, ``src_val_0000``), deterministic in (config, seed) and drawn
    from random streams of its own, so the target's plan does not depend on it. Each video is one
    instance of its class covering all its frames; the scene follows the class's source palette with
    probability ``p_scene`` and the object wanders at the video's own motion level, as in the target."""
    config = get_config(config)
    source = source_config(config)
    if int(seed) < 0:
        raise InputError(f"seed={seed}: must be >= 0")
    plans, index = [], 0
    shared = config.dials is not None and config.dials.source_shared_motions > 0
    motions = class_motions(config, True) if shared else None
    for subset_code, (subset, count) in enumerate(
            zip(SUBSETS, (source.num_train_videos, source.num_val_videos))):
        labels = stream_rng(seed, 5, subset_code).permutation(np.arange(count) % source.num_classes)
        for i in range(count):
            rng = stream_rng(seed, 6, index)
            label = int(labels[i])
            # The scene is a palette shared by two classes (SOURCE_CLASSES_PER_SCENE): the class's own
            # with probability p_scene, as in the target.
            scene_class = scene_class_of(config, rng, source_scene_of(label), source_num_scenes(config))
            num_frames = int(rng.integers(source.num_frames_range[0], source.num_frames_range[1] + 1))
            motion_level = float(rng.random()) if config.per_video_motion_level else 0.0
            period = round(float(rng.uniform(*config.period_frames_range)), 3)
            plans.append(VideoPlan(f"src_{VIDEO_PREFIX[subset]}_{i:04d}", subset, index, label, scene_class,
                                   num_frames, motion_level, [(0, num_frames, period)], source=True,
                                   label_motions=motions))
            index += 1
    return plans


def _plan_instances(config, rng, num_frames: int) -> list[tuple]:
    """1-3 instances with log-uniform lengths, >= min_gap_frames of background between them and at
    least one background stretch of min_gap_frames per video."""
    gap = config.min_gap_frames
    wanted = int(rng.integers(config.instances_range[0], config.instances_range[1] + 1))
    # Fewer instances when the drawn lengths keep failing to fit (long ones rarely come in threes).
    for n in range(wanted, 0, -1):
        reserved = max(n - 1, 1) * gap  # n - 1 interior gaps; a single instance gets one edge gap
        lengths = _draw_lengths(config, rng, n, num_frames, num_frames - reserved)
        if lengths is not None:
            break
    else:  # unreachable with a validated config: one instance of min length always fits
        raise RuntimeError(f"cannot place instances in a {num_frames}-frame video")
    free = num_frames - reserved - int(lengths.sum())
    cuts = np.sort(rng.integers(0, free + 1, size=n))
    gaps = np.diff(np.concatenate([[0], cuts, [free]]))  # n + 1 gaps summing to free
    gaps[1:-1] += gap
    if n == 1:
        gaps[[0, -1][int(rng.integers(0, 2))]] += gap  # before or after the instance
    instances, t = [], 0
    for i in range(n):
        t += int(gaps[i])
        period = float(rng.uniform(*config.period_frames_range))
        instances.append((t, t + int(lengths[i]), round(period, 3)))
        t += int(lengths[i])
    return instances


def _draw_lengths(config, rng, n: int, num_frames: int, budget: int, tries: int = 50):
    """n instance lengths (frames), log-uniform from min_instance_frames to max_instance_frac of the
    video, summing to at most ``budget``; None when ``tries`` draws all overflow."""
    lo = config.min_instance_frames
    hi = max(lo, int(config.max_instance_frac * num_frames))
    for _ in range(tries):
        lengths = np.round(np.exp(rng.uniform(math.log(lo), math.log(hi + 1), size=n)))
        lengths = np.minimum(lengths.astype(int), hi)
        if lengths.sum() <= budget:
            return lengths
    return None


def source_scene_of(label: int) -> int:
    """The palette of source class ``label``: classes 0 and 1 share scene 0, 2 and 3 scene 1, ..."""
    return label // SOURCE_CLASSES_PER_SCENE


def source_num_scenes(config) -> int:
    return -(-source_config(config).num_classes // SOURCE_CLASSES_PER_SCENE)
