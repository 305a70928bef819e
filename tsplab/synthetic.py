"""The built-in synthetic benchmark: small untrimmed videos (H.264 MP4) with ActivityNet-format labels.

Why it exists: TSP (Alwassel et al. 2021, Sec. 1 and 3.3) argues that encoders pretrained for trimmed
action classification (TAC) learn features that are *temporally insensitive*: a foreground clip and a
background clip of the same untrimmed video look alike to them, because the cheapest way to classify
a trimmed clip is to recognise its scene. This benchmark is built so that exactly this shortcut exists,
and so that only a temporally-sensitive encoder can tell where the actions are.

Design (numbers for the ``default`` preset; a prototype measured what made the effect appear, see
``shared/notes/synthetic-benchmark.md``):

* **Video.** 64-128 frames at 15 fps, 64x64 px RGB, one action class per video (as in most of
  ActivityNet). The training pipeline resizes frames to a short side of 32 px and uses clips of 8
  frames at the video's fps; all geometry below is given relative to the frame size so that it survives
  that downscale (the prototype worked at 32x32 with an object radius of 4 px).
* **Scene.** Background colour + stripe texture (orientation, period) + object colour, taken from the
  palette of the video's class with probability ``p_scene`` = 0.9, else from the palette of another
  class drawn uniformly. Each video jitters hue, brightness, stripe angle/period/phase and adds its own
  static grain, and every frame gets a little pixel noise. So a classifier trained on foreground clips
  alone can reach about ``p_scene`` accuracy by recognising the scene, which is what makes TAC's
  shortcut available. The scene is constant over the whole video, so a scene-only feature looks the same
  inside and outside the actions.
* **Object.** A soft-edged disk of radius 1/8 of the frame (8 px stored, 4 px after the downscale).
* **Action.** A class-specific periodic motion of the object (horizontal, vertical, circle, radius
  pulse, diagonal, bounce; anti-diagonal and figure-eight for more classes) with period 7-9 frames and
  an amplitude of 1-2 object radii (the prototype needed about one radius, 4 px at 32x32: at 1.5 px
  no method could learn anything). Paths are normalised to the same travel per period (4 amplitudes)
  so that classes carry similar motion energy; the motion fades in and out over 2 frames so that there
  is no jump at the boundaries.
* **Background.** The same object in the same scene, idle (slow drift <= 0.025 radii/frame and jitter
  of 0.0375 radii, i.e. the prototype's 0.1 px and 0.15 px at 32x32) or wandering in a non-class way
  (a random-heading walk reflected inside the frame).
* **The GVF knob** (``per_video_motion_level``, on by default). In the prototype the global video
  feature (GVF, TSP Sec. 3.3) made no difference, because motion energy alone told foreground from
  background clip by clip. Here each video draws its own motion level ``u`` ~ U(0, 1): its background
  wanders at ``u * background_speed_radii`` radii/frame (up to 0.8) and its actions have amplitude
  ``1 + u`` radii, on top of the wander. An action is therefore always clearly above its own video's
  baseline (median 1.6x the background's mean absolute frame difference, noise floor included), but the
  background of a lively video moves more than the actions of a calm one, so foreground can only be
  told from background *relative to the rest of the same video* -- the information TSP's max-pooled
  GVF gives the region head. Measured on 48 uncompressed default videos, 8-frame clips at stride 2:
  mean absolute frame difference separates foreground from background clips with AUC 0.89 on its
  own and 0.98 once divided by the video's largest clip value (1.00 and 0.96 with the knob off);
  the same on 96 generated MP4s decoded and downscaled to 32 px (0.89 and 0.98, median ratio 1.8).
  A larger ``background_speed_radii`` widens that gap but brings actions closer to their own
  background (1.0: AUC 0.82 vs 0.96, median ratio 1.5; 0.6: 0.96 vs 1.00, median ratio 1.85).
  Turning the knob off gives the prototype's setting (idle background everywhere, amplitude 1 radius).
* **Instances.** 1-3 per video, lengths log-uniform from 8 frames (one clip) to 80 % of the video,
  with at least ``min_gap_frames`` (8) of background between consecutive instances and at least one
  background stretch of that length per video, so that every video has pure background clips.
  ``tsplab.datasets.presets.SYNTHETIC_LENGTH_EDGES_S`` splits instance lengths into five buckets (XS..XL,
  analogous to ActivityNet's 0/30/60/120/180 s edges) chosen so that each holds a reasonable share in
  the default preset (the synthetic dataset preset's DETAD length buckets).
* **Size.** 240 training + 96 validation videos, as in the prototype, where the TAC-TSP gap was clear
  (it narrowed at 720 training videos) and the whole pipeline fits in about 15 minutes on 2 cores.
* **The source set (Kinetics' role).** In TSP every encoder starts from TAC on Kinetics, a large
  *trimmed* dataset with classes of its own, and the frozen GVF is computed with that initial encoder
  (TSP §3.3, §4.1, Table 1's "TAC on Kinetics"). Beside the target videos the generator writes a
  trimmed, class-labelled source set (``source_config``: two more classes than the target, twice its
  training videos, as many validation videos, each 3-6 clips long; ``default``: 8 classes, 480 + 96
  videos of 24-48 frames). Each source video is one action from its first frame to its last. Its
  classes are other motions (``SOURCE_MOTIONS``: square, triangle, swing, shake, ellipse, wobble,
  zigzag, heartbeat; none is a target motion) with other scene palettes, drawn from random streams of
  their own, in the same world: the same renderer, object, striped scenes, per-video motion level
  and noise. Source classes share scenes two by two (``SOURCE_CLASSES_PER_SCENE``), as Kinetics'
  classes share places, and a video takes its classes' scene with probability ``p_scene``: the
  scene narrows a clip down to two classes and only the motion tells which. TAC on it
  (:func:`ensure_source_encoder`, the synthetic pretraining preset's settings, once per benchmark)
  is the benchmark's initial encoder, ``weights="source"``, the default of every method on it.
* **Why the premise holds** (the paper's: a Kinetics encoder is a good start but temporally
  insensitive). The source encoder has learned the world and the motions: on the default source
  validation clips it reaches 0.72 accuracy over 8 classes (best of 4 epochs; the scene alone gives
  about 0.45), 0.78 on clips in their classes' own scene, where the scene only narrows it to two
  classes. It is temporally insensitive on the target: it has only seen action clips (a trimmed
  video has no background), so nothing asked it to tell an action from the rest of its own video.
  On the default target's 96 validation videos its features' temporal sensitivity
  (``tsplab.similarity.temporal_sensitivity``: fg-fg minus fg-bg cosine similarity) is 0.06, against
  0.25 ± 0.02 for TSP trained on the target from it (TAC on the target from it: 0.07 ± 0.01; TSP
  Study 1 over 5 seeds, ``tsplab study --preset default --seeds 5``). A first design without shared scenes (one palette per class) gave a pure scene classifier
  (0.92 accuracy = the share of videos in their class's scene, 0 of 24 clips right when the scene
  was another class's): it had learned no motion, so it was no good start, whence the shared scenes.

* **Dials.** ``tsplab.benchmark_dials`` switches other papers' premises on (context distractors,
  source shift, several classes and scene cuts, dense overlaps, an onset cue), each off by default
  with a documented level scale and a manipulation check (``tsplab.manipulation_checks``); with
  every dial off this module draws the same random numbers and writes the same files as without them.

Output folder::

    OUT/videos/{video}.mp4           H.264, constant fps, a keyframe every second
    OUT/annotations.json             ActivityNet v1.3 format, subsets "training" / "validation"
    OUT/action_label_mapping.json    sorted class names (the label mapping)
    OUT/benchmark.json               config, seed, summary; "complete": true once every file is written
    OUT/source/videos/{video}.mp4    the trimmed source set (ids src_train_0000, src_val_0000)
    OUT/source/annotations.json      its ActivityNet-format labels (one instance spanning each video)
    OUT/source/action_label_mapping.json, OUT/source/source.json (benchmark identity, sizes, "complete")
    OUT/source_encoder/pretrain/tac/ the initial encoder's run (best.pt), written on first use;
                                     source_encoder.json once it has trained every epoch

Determinism: the same config and seed give identical plans and annotations, and identical frame
arrays (before encoding) with the same numpy on the same kind of CPU (numpy's vectorised sin/exp may
differ in the last bit across instruction sets, which can move a pixel by one grey level);
``frames_for_video`` recomputes one video's frames without decoding. The MP4 bytes are identical on
one machine with one library build in fresh processes (tested); x264's output can depend on its
thread count, which follows the CPU count, and was once seen to differ in a process that had done
much other work before (a resumed video is then the same video, not the same bytes).
"""
from __future__ import annotations

import colorsys
import contextlib
import dataclasses
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from tsplab.benchmark_dials import (BenchmarkDials, apply_plan_dials, foreground_mask, render_with_dials,
                                    source_motions)
from tsplab.errors import InputError
from tsplab.datasets.presets import get_preset
from tsplab.runs import read_json, resolve, write_json

SUBSETS = ("training", "validation")
SOURCE_DIR = "source"                  # BENCHMARK/source/: the trimmed source set
SOURCE_MANIFEST = "source.json"        # its manifest (no benchmark.json: it is no target benchmark)
SOURCE_ENCODER_DIR = "source_encoder"  # BENCHMARK/source_encoder/: the run of TAC on the source set
_VIDEO_PREFIX = {"training": "train", "validation": "val"}

# Class motions: target class i performs MOTIONS[i]; source class i performs SOURCE_MOTIONS[i] (see
# _unit_path). The two lists share no motion, as Kinetics' classes are not ActivityNet's.
MOTIONS = ("horizontal", "vertical", "circle", "pulse", "diagonal", "bounce", "anti_diagonal",
           "figure_eight")
SOURCE_MOTIONS = ("square", "triangle", "swing", "shake", "ellipse", "wobble", "zigzag", "heartbeat")
# Source classes share scenes two by two, as Kinetics' classes share places (one gym, one kitchen):
# the scene narrows a source clip down to two classes, its motion must tell which.
SOURCE_CLASSES_PER_SCENE = 2


# --------------------------------------------------------------------------------------------------
# Class motions


def _polygon(theta: np.ndarray, corners_deg) -> tuple[np.ndarray, np.ndarray]:
    """Constant-speed walk around the polygon with corners on the unit circle at ``corners_deg``
    (one lap per period)."""
    corners = np.deg2rad(np.asarray(corners_deg, dtype=float))
    xs, ys = np.cos(corners), np.sin(corners)
    n = len(corners)
    s = np.mod(theta, 2 * np.pi) / (2 * np.pi) * n
    side = np.minimum(s.astype(int), n - 1)
    frac = s - side
    nxt = (side + 1) % n
    return xs[side] + frac * (xs[nxt] - xs[side]), ys[side] + frac * (ys[nxt] - ys[side])


def _triangle_wave(theta: np.ndarray) -> np.ndarray:
    """Triangle wave of period 2 pi in [-1, 1], in phase with sin (0 at 0, 1 at pi / 2)."""
    return 2.0 / np.pi * np.arcsin(np.sin(theta))


def _unit_path(motion: str, theta: np.ndarray):
    """(dx, dy, dr), each [T], of a class motion at phases ``theta`` [T] (one period = 2 pi): dx, dy
    in amplitudes before ``_SCALES``, dr the log radius change before ``_PULSE_LOG_GAIN``."""
    s, z = np.sin(theta), np.zeros_like(theta)
    if motion in _SOURCE_PATHS:
        return _SOURCE_PATHS[motion](theta, s, z)
    if motion == "horizontal":
        return s, z, z
    if motion == "vertical":
        return z, s, z
    if motion == "diagonal":
        return s / math.sqrt(2), s / math.sqrt(2), z
    if motion == "anti_diagonal":
        return s / math.sqrt(2), -s / math.sqrt(2), z
    if motion == "circle":
        return np.cos(theta), s, z
    if motion == "bounce":
        # A ball bouncing on a floor: fast at the bottom (y = +1), slow at the top (y = -1).
        return z, 1.0 - 2.0 * np.abs(np.sin(theta / 2)), z
    if motion == "figure_eight":
        return s, 0.5 * np.sin(2 * theta), z
    if motion == "pulse":
        return z, z, s
    raise ValueError(f"unknown motion {motion!r}; valid: {', '.join(MOTIONS + SOURCE_MOTIONS)}")


def _swing(theta, s, z):
    # A pendulum hanging from above the object: the bob rises (y < 0 is up) at both ends of the arc.
    phi = 0.9 * s
    return np.sin(phi), 1.0 - np.cos(phi) - 0.5 * (1.0 - math.cos(0.9)), z


def _ellipse(theta, s, z):
    # A flat ellipse (axes 1 and 0.4) tilted by 30 degrees: neither the circle nor a diagonal line.
    x, y = np.cos(theta), 0.4 * s
    c, t = math.cos(math.pi / 6), math.sin(math.pi / 6)
    return c * x - t * y, t * x + c * y, z


# The source set's motions (SOURCE_MOTIONS), none of them a target motion: the same kind of
# movement of the same object, so an encoder that learned them has learned to see motion.
_SOURCE_PATHS = {
    "square": lambda theta, s, z: (*_polygon(theta, (45, 135, 225, 315)), z),
    "triangle": lambda theta, s, z: (*_polygon(theta, (-90, 30, 150)), z),
    "swing": _swing,
    "shake": lambda theta, s, z: (np.sin(2 * theta), z, z),  # a fast horizontal shake
    "ellipse": _ellipse,
    "wobble": lambda theta, s, z: (s, z, 0.5 * np.cos(theta)),  # a sideways swing that breathes
    "zigzag": lambda theta, s, z: (_triangle_wave(theta), 0.3 * np.sin(4 * theta), z),
    "heartbeat": lambda theta, s, z: (z, z, np.sin(2 * theta)),  # two radius pulses per period
}


def _path_scale(motion: str) -> float:
    """Scale giving every translating path the travel of the horizontal swing (4 amplitudes per
    period), so that classes carry similar motion energy; 1 for a path that only changes the radius
    (see _PULSE_LOG_GAIN)."""
    dx, dy, _ = _unit_path(motion, np.linspace(0, 2 * np.pi, 721))
    travel = np.hypot(np.diff(dx), np.diff(dy)).sum()
    return 4.0 / travel if travel > 0 else 1.0


_ALL_MOTIONS = MOTIONS + SOURCE_MOTIONS
_SCALES = {m: _path_scale(m) for m in _ALL_MOTIONS}
# Largest |offset| (in amplitudes) of each path, for keeping the object inside the frame.
_EXTENTS = {m: float(np.max(np.abs(np.stack(_unit_path(m, np.linspace(0, 2 * np.pi, 361))[:2]))))
            * _SCALES[m] for m in _ALL_MOTIONS}
# Largest log radius change (in units of _PULSE_LOG_GAIN * amplitude) of each path.
_GROWTH = {m: float(np.max(_unit_path(m, np.linspace(0, 2 * np.pi, 361))[2])) for m in _ALL_MOTIONS}


# A radius pulse changes the radius by a factor exp(gain * amplitude * sin(theta)): a log scale, so
# that it grows as much as it shrinks and the disk never vanishes (0.41 to 2.46 radii at amplitude 2).
_PULSE_LOG_GAIN = 0.45


def _base_half_range(config, amplitude_radii: float, motions=None) -> float:
    """How far (px) the object's resting position may wander from the frame centre so that every
    class motion of ``motions`` (default: the target's, ``MOTIONS[:num_classes]``) at
    ``amplitude_radii`` stays inside the frame."""
    motions = MOTIONS[:config.num_classes] if motions is None else motions
    size = config.frame_size
    r = config.object_radius_frac * size
    reach = max(_EXTENTS[m] for m in motions) * amplitude_radii * r
    grow = r * math.exp(_PULSE_LOG_GAIN * amplitude_radii * max(_GROWTH[m] for m in motions))
    return size / 2 - max(r + reach, grow) - 1.0


@dataclass
class SyntheticConfig:
    """Everything that defines a benchmark (with the seed). Geometry is relative to the frame size
    (``*_frac``) or to the object radius (``*_radii``) so that it survives resizing."""

    num_classes: int = 6
    num_train_videos: int = 240
    num_val_videos: int = 96
    num_frames_range: tuple = (64, 128)        # per video, inclusive
    fps: float = 15.0
    frame_size: int = 64                       # square frames, px (even, for yuv420p)
    p_scene: float = 0.9                       # P(scene drawn from the video's own class palette)
    object_radius_frac: float = 0.125          # object radius / frame size (4 px at 32x32)
    instances_range: tuple = (1, 3)            # per video, inclusive
    min_instance_frames: int = 8               # one clip of 8 frames
    max_instance_frac: float = 0.8             # longest instance / video length
    min_gap_frames: int = 8                    # background between instances (one clip)
    period_frames_range: tuple = (7.0, 9.0)
    # GVF knob: per-video motion level u ~ U(0, 1); background wanders at u * background_speed_radii
    # and actions have amplitude lerp(action_amplitude_radii, u). Off: u = 0 for every video.
    per_video_motion_level: bool = True
    action_amplitude_radii: tuple = (1.0, 2.0)
    background_speed_radii: float = 0.8        # radii/frame at u = 1
    idle_drift_radii: float = 0.025            # max idle drift, radii/frame (0.1 px at r = 4 px)
    idle_jitter_radii: float = 0.0375          # idle position jitter std, radii (0.15 px at r = 4 px)
    hue_jitter: float = 0.03                   # per-video scene hue jitter (class hues are 1/K apart)
    grain_std: float = 3.0                     # static per-video texture grain, grey levels
    pixel_noise_std: float = 1.5               # per-frame pixel noise, grey levels
    # The clip settings this benchmark is designed for (pretraining/extraction read them from here).
    clip_length_frames: int = 8
    clip_short_side: int = 32
    # The premise dials (tsplab.benchmark_dials), None when all are off: the plain benchmark, whose
    # benchmark.json then has no "dials" key, as before the dials existed.
    dials: BenchmarkDials | None = None

    def __post_init__(self):
        self.dials = BenchmarkDials.from_value(self.dials)
        # JSON round trips give lists; keep tuples so configs compare and hash the same.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                setattr(self, f.name, tuple(value))
        self.validate()

    def validate(self) -> None:
        lo, hi = self.num_frames_range
        if not 2 <= self.num_classes <= len(MOTIONS):
            raise InputError(f"num_classes={self.num_classes}: must be in 2..{len(MOTIONS)} "
                             f"(one motion per class: {', '.join(MOTIONS)})")
        if self.frame_size % 2 or self.frame_size < 16:
            raise InputError(f"frame_size={self.frame_size}: must be even and >= 16")
        if not 0.0 <= self.p_scene <= 1.0:
            raise InputError(f"p_scene={self.p_scene}: must be a probability")
        if self.num_train_videos < 1 or self.num_val_videos < 0:
            raise InputError("num_train_videos must be >= 1 and num_val_videos >= 0")
        need = self.min_instance_frames + self.min_gap_frames
        if lo > hi or lo < need or int(self.max_instance_frac * lo) < self.min_instance_frames:
            raise InputError(f"num_frames_range={self.num_frames_range}: videos must be at least "
                             f"{need} frames and max_instance_frac * shortest >= min_instance_frames")
        if not 1 <= self.instances_range[0] <= self.instances_range[1]:
            raise InputError(f"instances_range={self.instances_range}: need 1 <= min <= max")
        if _base_half_range(self, self.action_amplitude_radii[1]) < 0:
            raise InputError(f"action_amplitude_radii={self.action_amplitude_radii} with "
                             f"object_radius_frac={self.object_radius_frac}: the motion does not fit "
                             "in the frame")

    @classmethod
    def from_dict(cls, d: dict) -> "SyntheticConfig":
        return cls(**d)


PRESETS = {
    # For tests and CI: 18 short videos at 32x32 (clips resized to 16 px), seconds to generate.
    "tiny": SyntheticConfig(num_classes=3, num_train_videos=12, num_val_videos=6,
                            num_frames_range=(40, 56), frame_size=32, clip_short_side=16),
    # For the demo: the prototype's working size, at 64x64 stored (32x32 for training).
    "default": SyntheticConfig(),
}


@dataclass(frozen=True)
class SourceConfig:
    """The sizes of a benchmark's trimmed source set (Kinetics' role; :func:`source_config` derives
    them from the benchmark's config). Everything else, the world its videos live in (frame size, fps,
    object, scene palettes' rule, ``p_scene``, motion level, noise, clip), is the benchmark's own."""

    num_classes: int
    num_train_videos: int
    num_val_videos: int
    num_frames_range: tuple  # per video, inclusive: each video is one action instance, whole


def source_config(config) -> SourceConfig:
    """The source set of benchmark ``config`` (a preset name or a ``SyntheticConfig``), by one rule:
    two more classes than the target (at most ``len(SOURCE_MOTIONS)``; Kinetics has 400 to
    ActivityNet's 200), twice its training videos and as many validation videos, each 3 to 6 clips
    long (a trimmed clip around one action, as Kinetics' 10 s clips are short next to ActivityNet's
    minutes). ``default``: 8 classes, 480 + 96 videos of 24-48 frames; ``tiny``: 5 classes, 24 + 6."""
    config = _get_config(config)
    clip = config.clip_length_frames
    source = SourceConfig(num_classes=min(len(SOURCE_MOTIONS), config.num_classes + 2),
                          num_train_videos=2 * config.num_train_videos,
                          num_val_videos=config.num_val_videos,
                          num_frames_range=(3 * clip, 6 * clip))
    motions = source_motions(config, SOURCE_MOTIONS[:source.num_classes], MOTIONS[:config.num_classes])
    if _base_half_range(config, config.action_amplitude_radii[1], motions) < 0:
        raise InputError(f"action_amplitude_radii={config.action_amplitude_radii} with object_radius_frac="
                         f"{config.object_radius_frac}: the source set's motions do not fit in the frame")
    return source


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
    # Dials (tsplab.benchmark_dials), empty when off: each instance's class (None: all ``label``),
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


@dataclass
class SyntheticVideo:
    """One rendered video: ``frames`` uint8 [T, H, W, 3] RGB, ``frame_labels`` int [T] (class index
    inside actions, -1 in background)."""

    plan: VideoPlan
    frames: np.ndarray
    frame_labels: np.ndarray

    @property
    def foreground(self) -> np.ndarray:
        """bool [T]: frame inside an action instance."""
        return self.frame_labels >= 0


# --------------------------------------------------------------------------------------------------
# Planning: classes, scenes, instances (cheap, no pixels)


def class_names(config: SyntheticConfig) -> list[str]:
    """Class names, sorted (the label mapping); class index i performs ``MOTIONS[i]``."""
    return [f"{i:02d}_{MOTIONS[i]}" for i in range(config.num_classes)]


def source_class_names(config) -> list[str]:
    """The source set's class names, sorted (its label mapping); class i performs
    ``SOURCE_MOTIONS[i]``, or a target motion under the ``source_shared_motions`` dial. The ``src``
    prefix keeps them apart from the target's names."""
    return [f"src{i:02d}_{m}" for i, m in enumerate(_class_motions(_get_config(config), True))]


def _class_motions(config, source: bool) -> tuple:
    """The motions of the target's classes, or of the source set's."""
    if source:
        return source_motions(config, SOURCE_MOTIONS[:source_config(config).num_classes],
                              MOTIONS[:config.num_classes])
    return MOTIONS[:config.num_classes]


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *stream]))


def _get_config(config) -> SyntheticConfig:
    if isinstance(config, SyntheticConfig):
        return config
    if config in PRESETS:
        return PRESETS[config]
    raise InputError(f"unknown synthetic preset {config!r}; valid presets: {', '.join(PRESETS)}")


def plan_benchmark(config="tiny", seed: int = 0) -> list[VideoPlan]:
    """The plan of every video (training first, then validation), deterministic in (config, seed)."""
    config = _get_config(config)
    if int(seed) < 0:
        raise InputError(f"seed={seed}: must be >= 0")
    plans = []
    index = 0
    for subset_code, (subset, count) in enumerate(
            zip(SUBSETS, (config.num_train_videos, config.num_val_videos))):
        # Balanced classes, in a seeded order (so ids carry no class information).
        labels = _rng(seed, 1, subset_code).permutation(np.arange(count) % config.num_classes)
        for i in range(count):
            rng = _rng(seed, 2, index)
            plans.append(_plan_video(config, rng, f"{_VIDEO_PREFIX[subset]}_{i:04d}", subset, index,
                                     int(labels[i]), seed))
            index += 1
    return plans


def _scene_class(config, rng, label: int, num_classes: int) -> int:
    """The class whose palette the scene takes: the video's own with probability ``p_scene``."""
    if rng.random() >= config.p_scene:
        return int(rng.choice([c for c in range(num_classes) if c != label]))
    return label


def _plan_video(config, rng, video, subset, index, label, seed: int) -> VideoPlan:
    scene_class = _scene_class(config, rng, label, config.num_classes)
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
    config = _get_config(config)
    source = source_config(config)
    if int(seed) < 0:
        raise InputError(f"seed={seed}: must be >= 0")
    plans, index = [], 0
    shared = config.dials is not None and config.dials.source_shared_motions > 0
    motions = _class_motions(config, True) if shared else None
    for subset_code, (subset, count) in enumerate(
            zip(SUBSETS, (source.num_train_videos, source.num_val_videos))):
        labels = _rng(seed, 5, subset_code).permutation(np.arange(count) % source.num_classes)
        for i in range(count):
            rng = _rng(seed, 6, index)
            label = int(labels[i])
            # The scene is a palette shared by two classes (SOURCE_CLASSES_PER_SCENE): the class's own
            # with probability p_scene, as in the target.
            scene_class = _scene_class(config, rng, source_scene_of(label), source_num_scenes(config))
            num_frames = int(rng.integers(source.num_frames_range[0], source.num_frames_range[1] + 1))
            motion_level = float(rng.random()) if config.per_video_motion_level else 0.0
            period = round(float(rng.uniform(*config.period_frames_range)), 3)
            plans.append(VideoPlan(f"src_{_VIDEO_PREFIX[subset]}_{i:04d}", subset, index, label, scene_class,
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


def class_palette(config="tiny", seed: int = 0) -> list[dict]:
    """Per class: background HSV, object HSV, stripe angle (degrees) and period (fraction of frame)."""
    config = _get_config(config)
    return _palette(config.num_classes, _rng(seed, 3))


def source_palette(config="tiny", seed: int = 0) -> list[dict]:
    """Per source scene (one for every ``SOURCE_CLASSES_PER_SCENE`` classes), drawn like the target's
    palettes (:func:`class_palette`) from a stream of its own: the same kind of scenes, other hues,
    angles and periods."""
    return _palette(source_num_scenes(config), _rng(seed, 7))


def source_scene_of(label: int) -> int:
    """The palette of source class ``label``: classes 0 and 1 share scene 0, 2 and 3 scene 1, ..."""
    return label // SOURCE_CLASSES_PER_SCENE


def source_num_scenes(config) -> int:
    return -(-source_config(config).num_classes // SOURCE_CLASSES_PER_SCENE)


def _palette(k: int, rng) -> list[dict]:
    hues = (np.arange(k) + rng.random()) / k
    rng.shuffle(hues)
    angles = (np.arange(k) * 180.0 / k + rng.uniform(0, 180.0 / k)) % 180.0
    rng.shuffle(angles)
    periods = np.array([0.16, 0.22, 0.28])[np.arange(k) % 3]
    rng.shuffle(periods)
    return [{"background_hsv": (float(hues[c]), 0.45, 0.5),
             # Complementary hue keeps the object visible against its own scene.
             "object_hsv": (float((hues[c] + 0.5) % 1.0), 0.75, 0.95),
             "stripe_angle_deg": float(angles[c]),
             "stripe_period_frac": float(periods[c])} for c in range(k)]


# --------------------------------------------------------------------------------------------------
# Rendering


def _fold(x: np.ndarray, half: float) -> np.ndarray:
    """Reflect positions ``x`` (relative to the centre) into [-half, half] (a walk bouncing off walls)."""
    if half <= 0:
        return np.zeros_like(x)
    y = np.mod(x + half, 4 * half)
    return np.where(y > 2 * half, 4 * half - y, y) - half


def _trajectory(config, plan: VideoPlan, rng):
    """Object centre (x, y) in px and radius in px, each [T], and frame labels [T]."""
    size, t_frames = config.frame_size, plan.num_frames
    r = config.object_radius_frac * size
    a0, a1 = config.action_amplitude_radii
    amplitude = a0 + plan.motion_level * (a1 - a0)
    half = _base_half_range(config, amplitude, _class_motions(config, plan.source))

    # Background: idle drift + jitter (prototype), plus a wander whose speed is the video's own level.
    drift = rng.uniform(0, config.idle_drift_radii) * r * _unit_vector(rng)
    # The heading turns by ~0.6 rad a frame: a smooth walk, neither periodic nor a straight line, so
    # it resembles no class motion. Reflecting off the walls keeps the class motion inside the frame.
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.6, size=t_frames))
    speed = plan.motion_level * config.background_speed_radii * r
    steps = speed * np.stack([np.cos(heading), np.sin(heading)], 1) + drift
    start = rng.uniform(-half, half, size=2)
    base = start + np.cumsum(steps, axis=0) - steps[0]
    base = np.stack([_fold(base[:, 0], half), _fold(base[:, 1], half)], 1)
    base += rng.normal(0, config.idle_jitter_radii * r, size=base.shape)

    offset = np.zeros((t_frames, 2))
    radius = np.full(t_frames, r)
    labels = np.full(t_frames, -1, dtype=np.int64)
    # Overlapping instances (the dense dial) share the object: each at 1/k of its amplitude.
    concurrent = np.zeros(t_frames)
    for start_f, end_f, _ in plan.instances:
        concurrent[start_f:end_f] += 1
    overlapping = concurrent.max(initial=0) > 1
    for start_f, end_f, period, label, action in _motion_segments(plan):
        motion = plan.motion_of(label)
        k = np.arange(end_f - start_f)
        theta = 2 * np.pi * k / period
        # Fade in/out over 2 frames: no jump at the boundaries, full amplitude in between.
        envelope = np.minimum(1.0, np.minimum(k + 1, end_f - start_f - k) / 2.0)
        if action and overlapping:
            envelope = envelope / concurrent[start_f:end_f]
        dx, dy, dr = _unit_path(motion, theta)
        # Added to the wander, which goes on: an action is motion on top of the video's baseline.
        gain = amplitude * r * _SCALES[motion] * envelope
        offset[start_f:end_f, 0] += dx * gain
        offset[start_f:end_f, 1] += dy * gain
        radius[start_f:end_f] *= np.exp(_PULSE_LOG_GAIN * amplitude * envelope * dr)
        if action:
            labels[start_f:end_f] = label
    centre = size / 2 + base + offset
    return centre[:, 0], centre[:, 1], radius, labels


def _motion_segments(plan: VideoPlan):
    """(start, end, period, class, is_action) of every instance, then of every distractor (the
    context_distractors dial: another class's motion in the background)."""
    for i, (start, end, period) in enumerate(plan.instances):
        yield start, end, period, plan.label_of(i), True
    for start, end, period, label in plan.distractors:
        yield start, end, period, label, False


def _unit_vector(rng) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    return np.array([math.cos(angle), math.sin(angle)])


def _scene(config, plan: VideoPlan, palette: list[dict], rng, texture=None):
    """Static background image float [H, W, 3] (0..255) and object colour [3]; ``texture``
    (xx, yy, angle, period, phase) -> pattern in [-1, 1] replaces the stripes (the source_shift dial)."""
    size = config.frame_size
    p = palette[plan.scene_class]
    h, s, v = p["background_hsv"]
    h = (h + rng.uniform(-config.hue_jitter, config.hue_jitter)) % 1.0
    v = float(np.clip(v * rng.uniform(0.85, 1.15), 0, 1))
    background = np.array(colorsys.hsv_to_rgb(h, s, v)) * 255.0
    oh, os_, ov = p["object_hsv"]
    oh = (oh + rng.uniform(-config.hue_jitter, config.hue_jitter)) % 1.0
    obj = np.array(colorsys.hsv_to_rgb(oh, os_, ov)) * 255.0

    angle = np.deg2rad(p["stripe_angle_deg"] + rng.uniform(-8, 8))
    period = p["stripe_period_frac"] * size * rng.uniform(0.9, 1.1)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    phase = rng.uniform(0, 2 * np.pi)
    if texture is None:
        stripes = np.sin(2 * np.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period + phase)
    else:
        stripes = texture(xx, yy, angle, period, phase)
    image = background[None, None, :] * (1.0 + 0.15 * stripes[..., None])
    image = image + rng.normal(0, config.grain_std, size=(size, size, 1))
    return image, obj


def render_video(config, plan: VideoPlan, seed: int) -> SyntheticVideo:
    """The frames of ``plan`` (uint8 [T, H, W, 3]) and its frame labels [T], deterministic in
    (config, seed, plan.index, plan.source). A source plan (:func:`plan_source`) takes the source
    palette and pixel stream: the same renderer, so both sets share one visual world."""
    config = _get_config(config)
    if config.dials is not None:
        return render_with_dials(config, plan, seed)
    rng = _rng(seed, 8 if plan.source else 4, plan.index)
    palette = source_palette(config, seed) if plan.source else class_palette(config, seed)
    image, obj = _scene(config, plan, palette, rng)
    cx, cy, radius, labels = _trajectory(config, plan, rng)
    size = config.frame_size
    f32 = np.float32
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5).astype(f32)
    # Soft edge about a quarter radius wide: sub-pixel motion still changes pixels after resizing.
    edge = f32(max(1.0, 0.25 * config.object_radius_frac * size))
    dist = np.hypot(xx[None] - cx.astype(f32)[:, None, None], yy[None] - cy.astype(f32)[:, None, None])
    alpha = np.clip((radius.astype(f32)[:, None, None] - dist) / edge + f32(0.5), 0, 1)[..., None]
    frames = image.astype(f32)[None] * (1 - alpha) + obj.astype(f32)[None, None, None] * alpha
    frames += f32(config.pixel_noise_std) * rng.standard_normal(size=frames.shape, dtype=f32)
    frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    return SyntheticVideo(plan, frames, labels)


def frames_for_video(config, seed: int, video: str) -> SyntheticVideo:
    """Uncompressed frames and frame labels of one video of the benchmark (config, seed), or of its
    source set (ids ``src_*``), without decoding its MP4. ``config`` is a preset name or a
    ``SyntheticConfig``."""
    config = _get_config(config)
    plans = plan_source(config, seed) if video.startswith("src_") else plan_benchmark(config, seed)
    for plan in plans:
        if plan.video == video:
            return render_video(config, plan, seed)
    raise KeyError(f"no video {video!r} in this synthetic benchmark (ids look like 'train_0000', "
                   f"'val_0000', and 'src_train_0000' in its source set)")


# --------------------------------------------------------------------------------------------------
# Output folder


def _label_names(config, plans: list[VideoPlan]) -> list[str]:
    """The label mapping of ``plans``: the source set's names for source plans, else the target's."""
    return source_class_names(config) if any(p.source for p in plans) else class_names(config)


def activitynet_json(config, plans: list[VideoPlan]) -> dict:
    """The ActivityNet v1.3-format annotation dict of a plan (the target's or the source set's)."""
    names = _label_names(config, plans)
    database = {}
    for p in plans:
        database[p.video] = {
            "subset": p.subset,
            # Exact frame / fps values, not rounded: a gap of exactly one clip must still measure
            # at least one clip length when a segment table thresholds it.
            "duration": p.num_frames / config.fps,
            "fps": config.fps,
            "num_frames": p.num_frames,
            "resolution": f"{config.frame_size}x{config.frame_size}",
            "url": "",
            "annotations": [{"segment": [s / config.fps, e / config.fps],
                             "label": names[p.label_of(i)], "label_id": p.label_of(i)}
                            for i, (s, e, _) in enumerate(p.instances)],
        }
    version = "tsplab synthetic benchmark" + (": trimmed source set" if any(p.source for p in plans) else "")
    return {"version": version,
            "taxonomy": [{"nodeName": n, "nodeId": i} for i, n in enumerate(names)],
            "database": database}


def length_buckets(lengths_s) -> pd.Categorical:
    """DETAD-style length bucket (XS..XL: the synthetic dataset preset's length buckets,
    ``tsplab.datasets.presets.SYNTHETIC_LENGTH_EDGES_S``) of each instance length."""
    import pandas as pd  # lazily: encoding workers never need it

    edges, names = get_preset("synthetic").detad_buckets["length"]
    return pd.cut(np.asarray(lengths_s, dtype=float), list(edges), labels=list(names), right=True)


def instance_table(config, plans: list[VideoPlan]) -> pd.DataFrame:
    """One row per instance: video, subset, label, t_start_s, t_end_s, motion_level, length_s,
    bucket."""
    import pandas as pd

    names = _label_names(config, plans)
    rows = [{"video": p.video, "subset": p.subset, "label": names[p.label_of(i)],
             "t_start_s": s / config.fps, "t_end_s": e / config.fps, "motion_level": p.motion_level}
            for p in plans for i, (s, e, _) in enumerate(p.instances)]
    table = pd.DataFrame(rows, columns=["video", "subset", "label", "t_start_s", "t_end_s",
                                        "motion_level"])
    table["length_s"] = table["t_end_s"] - table["t_start_s"]
    table["bucket"] = length_buckets(table["length_s"])
    return table


def summarize(config, plans: list[VideoPlan]) -> dict:
    """Counts per subset, foreground share, scene-class agreement and instances per length bucket."""
    config = _get_config(config)
    inst = instance_table(config, plans)
    bucket_names = list(inst["bucket"].cat.categories)  # XS..XL, in order
    out = {}
    for subset in SUBSETS:
        ps = [p for p in plans if p.subset == subset]
        frames = sum(p.num_frames for p in ps)
        fg = sum(int(foreground_mask(p.num_frames, p.instances).sum()) for p in ps)  # overlaps once
        sub = inst[inst["subset"] == subset]
        out[subset] = {
            "videos": len(ps),
            "instances": len(sub),
            "hours": round(frames / config.fps / 3600, 4),
            "foreground_share": round(fg / frames, 4) if frames else 0.0,
            "scene_matches_class": round(float(np.mean([p.scene_class == p.label for p in ps])), 4)
            if ps else 0.0,
            "instances_per_bucket": {b: int(n) for b, n in
                                     sub["bucket"].value_counts().reindex(bucket_names).items()},
        }
    return out


def _summarize_source(config, plans: list[VideoPlan]) -> dict:
    """Per subset of the source set: videos, classes, hours, shortest and longest video (frames) and
    the share of videos whose scene is their class's own (shared with one other class)."""
    out = {}
    for subset in SUBSETS:
        ps = [p for p in plans if p.subset == subset]
        out[subset] = {
            "videos": len(ps),
            "classes": len({p.label for p in ps}),
            "hours": round(sum(p.num_frames for p in ps) / config.fps / 3600, 4),
            "min_frames": min((p.num_frames for p in ps), default=0),
            "max_frames": max((p.num_frames for p in ps), default=0),
            "scene_matches_class": round(float(np.mean([p.scene_class == source_scene_of(p.label)
                                                        for p in ps])), 4)
            if ps else 0.0,
        }
    return out


def read_benchmark_config(folder) -> tuple[SyntheticConfig, int]:
    """(config, seed) of a generated benchmark folder, e.g. to call ``frames_for_video`` on it."""
    meta = read_json(resolve(folder) / "benchmark.json")
    return SyntheticConfig.from_dict(meta["config"]), int(meta["seed"])


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
    """A folder holding another config's or seed's files is refused rather than mixed with ours."""
    if manifest_path.is_file():
        old = read_json(manifest_path)
        if {k: old.get(k) for k in identity} != identity:
            raise InputError(f"{manifest_path.parent}: holds a {what} of another config or seed "
                             f"(seed {old.get('seed', old.get('benchmark', {}).get('seed'))}); choose "
                             "another folder or delete this one")


def generate_benchmark(out_dir, preset="tiny", seed: int = 0, *, workers: int = 2,
                       progress: bool = True, dials=None) -> Path:
    """Write the benchmark ``preset`` (a name in ``PRESETS`` or a ``SyntheticConfig``) into
    ``out_dir``, then its trimmed source set into ``out_dir/source/`` (:func:`generate_source`), and
    return that folder.

    ``dials`` (a ``tsplab.benchmark_dials.BenchmarkDials`` or a dict of levels) switch premises
    on; they are recorded in ``benchmark.json``'s config.

    A complete folder with the same config and seed is left as it is (a source set it lacks, as in
    folders made before the source set existed, is added); a folder left by a killed run is resumed
    (videos already written are kept: every write is atomic); a folder holding a benchmark of another
    config or seed raises ``InputError`` rather than mixing the two.
    """
    config = _get_config(preset)
    if dials is not None:
        config = dataclasses.replace(config, dials=BenchmarkDials.from_value(dials))
    out = resolve(out_dir)
    identity = _identity(config, seed)
    _check_identity(out / "benchmark.json", identity, "synthetic benchmark")
    plans = plan_benchmark(config, seed)
    _write_video_set(out, "benchmark.json", identity, config, seed, plans, workers=workers,
                     progress=progress, desc="synthetic videos",
                     summary=lambda: summarize(config, plans))
    generate_source(out, workers=workers, progress=progress)
    return out


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
                            summary=lambda: _summarize_source(config, plans))


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
    write_json(out / "action_label_mapping.json", _label_names(config, plans))
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


def ensure_benchmark(dataset_dir, size="tiny", seed: int = 0, **generate_kwargs) -> Path:
    """The dataset folder ``dataset_dir`` (resolved) of a pretraining or extraction run, with the
    synthetic benchmark ``size`` generated into it when it needs one (notebooks 03 and 04).

    A folder without ``annotations.json`` gets the benchmark; a folder holding a synthetic benchmark
    (``benchmark.json``) is passed to :func:`generate_benchmark`, which leaves a complete one as it
    is, finishes an interrupted one and refuses one of another size or seed (``InputError``). A
    folder of another dataset (``annotations.json`` without ``benchmark.json``) is never written to.
    ``generate_kwargs`` go to :func:`generate_benchmark` (``workers``, ``progress``)."""
    folder = resolve(dataset_dir)
    if not (folder / "annotations.json").is_file() or (folder / "benchmark.json").is_file():
        generate_benchmark(folder, size, seed, **generate_kwargs)
    return folder


def benchmark_summary(folder) -> pd.DataFrame:
    """One row per subset of a generated benchmark: videos, instances, hours, foreground share, share
    of videos whose scene matches their class, and instances per length bucket (XS..XL)."""
    import pandas as pd

    meta = read_json(resolve(folder) / "benchmark.json")
    if not meta.get("complete"):
        raise InputError(f"{resolve(folder)}: benchmark not complete (generation was interrupted); "
                         "run generate_benchmark again to finish it")
    rows = []
    for subset in SUBSETS:
        s = dict(meta["summary"][subset])
        buckets = s.pop("instances_per_bucket")
        rows.append({"subset": subset, **s, **buckets})
    return pd.DataFrame(rows)


def source_summary(folder) -> pd.DataFrame:
    """One row per subset of a benchmark's source set (``folder``: the benchmark): videos, classes,
    hours, shortest and longest video in frames, share of videos whose scene matches their class."""
    import pandas as pd

    path = resolve(folder) / SOURCE_DIR / SOURCE_MANIFEST
    meta = read_json(path) if path.is_file() else {}
    if not meta.get("complete"):
        raise InputError(f"{path}: source set missing or not complete; run generate_benchmark (or "
                         "generate_source) on the benchmark to write it")
    return pd.DataFrame([{"subset": subset, **meta["summary"][subset]} for subset in SUBSETS])


# --------------------------------------------------------------------------------------------------
# The source stage: TAC on the source set gives every method's initial encoder (TSP §3.3, §4.1)

_SOURCE_ENCODER_DONE = "source_encoder.json"  # written once the run has trained every epoch
# torchrun's variables: hidden from the source run, which is one process (see _one_process).
_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                       "GROUP_WORLD_SIZE", "ROLE_RANK", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def source_encoder_path(benchmark_dir) -> Path:
    """Where the benchmark's initial encoder lives: ``BENCHMARK/source_encoder/pretrain/tac/best.pt``
    (the ``best.pt`` of TAC on its source set; ``BENCHMARK/source_encoder`` is that run's run_dir, so
    ``tsplab.backbones`` and extraction read it like any pretraining run)."""
    return resolve(benchmark_dir) / SOURCE_ENCODER_DIR / "pretrain" / "tac" / "best.pt"


def synthetic_benchmark_folder(benchmark_dir, field_name: str = "dataset_dir") -> Path:
    """``benchmark_dir`` resolved, or ``InputError`` (one line, naming ``field_name``) when it holds
    no synthetic benchmark (``benchmark.json``): only the built-in benchmark has a source set."""
    folder = resolve(benchmark_dir) if str(benchmark_dir) else None
    if folder is None or not (folder / "benchmark.json").is_file():
        raise InputError(f"{field_name}: {folder or '(empty)'} is not a synthetic benchmark (no "
                         "benchmark.json): weights='source' (TAC on the benchmark's source set) exists only "
                         "for the built-in benchmark (tsplab synth); give weights=kinetics400, a checkpoint "
                         "path or none")
    return folder


def source_pretrain_config(benchmark_dir, *, seed: int | None = None, progress: bool = True):
    """The ``PretrainConfig`` of TAC on the source set of ``benchmark_dir``: the synthetic pretraining
    preset (``tsplab.pretrain_config.PRESETS["synthetic"]``) with the benchmark's own clip (read from
    its ``benchmark.json``, so source and target runs see identical clips), from random weights,
    into ``BENCHMARK/source_encoder/``; ``seed`` None: the benchmark's own seed."""
    from tsplab.pretrain_config import pretrain_config

    folder = synthetic_benchmark_folder(benchmark_dir, "benchmark_dir")
    seed = read_benchmark_config(folder)[1] if seed is None else int(seed)
    config = pretrain_config("synthetic", method="tac", dataset_dir=str(folder), weights=None,
                             dataset="synthetic", run_dir=str(folder / SOURCE_ENCODER_DIR), seed=seed,
                             progress=progress, valid_holdout=0.0)
    # The background rule is named (dataset="synthetic"); trimmed videos have no background anyway.
    # The source set's own validation videos choose its best epoch: none of them is a target video.
    return dataclasses.replace(config, dataset_dir=str(folder / SOURCE_DIR))


def ensure_source_encoder(benchmark_dir, *, seed: int | None = None, progress: bool = True) -> Path:
    """The initial encoder of the synthetic benchmark in ``benchmark_dir``: TAC on its source set,
    trained on first use through the one loop (``tsplab.train.pretrain``, settings
    :func:`source_pretrain_config`), reused afterwards; returns its ``best.pt``
    (:func:`source_encoder_path`).

    ``seed`` seeds that training run; None (the default): the benchmark's own seed (0 for the
    benchmarks ``tsplab synth`` and the demo make), so that one benchmark always gets one initial
    encoder, as one Kinetics model serves every run of the paper; a finished run of another seed
    raises ``InputError`` rather than being passed off as this one. Writes the source set first if
    the folder lacks it. A run killed midway resumes from its ``checkpoint.pt``;
    ``source_encoder.json`` marks a finished run. Processes that call this at once (a study's cells, torchrun's ranks)
    wait for the first one's run (a file lock) instead of training twice. ``InputError`` when the
    folder holds no synthetic benchmark."""
    folder = synthetic_benchmark_folder(benchmark_dir, "benchmark_dir")
    seed = read_benchmark_config(folder)[1] if seed is None else int(seed)
    path = source_encoder_path(folder)
    if _finished_source_encoder(folder, seed):
        return path
    with _source_lock(folder):
        if _finished_source_encoder(folder, seed):  # another process trained it while we waited
            return path
        _train_source_encoder(folder, seed, progress)
    return path


def source_encoder_summary(benchmark_dir) -> pd.DataFrame:
    """One row per epoch of the benchmark's source run (TAC on its source set): training loss,
    validation clip accuracy on the source set's validation videos (``valid_acc_action``), seconds;
    ``best`` marks the epoch kept as the initial encoder. ``FileNotFoundError`` before its first epoch."""
    from tsplab.train import read_metrics

    metrics = read_metrics(source_encoder_path(benchmark_dir).parent)
    table = metrics[["epoch", "train_loss", "train_acc_action", "valid_acc_action", "train_seconds"]].copy()
    table["best"] = table["valid_acc_action"] == table["valid_acc_action"].max()
    table.loc[table["best"].cumsum() > 1, "best"] = False  # the first best epoch, as the loop keeps it
    return table


def _finished_source_encoder(folder: Path, seed: int) -> bool:
    marker = folder / SOURCE_ENCODER_DIR / _SOURCE_ENCODER_DONE
    if not (marker.is_file() and source_encoder_path(folder).is_file()):
        return False
    done = read_json(marker)
    if int(done.get("seed", -1)) != int(seed):
        raise InputError(f"{marker}: this benchmark's source encoder was trained with seed {done.get('seed')}, "
                         f"not {seed}; one initial encoder serves every run of a benchmark (delete "
                         f"{marker.parent} to train it again)")
    return True


def _train_source_encoder(folder: Path, seed: int, progress: bool) -> None:
    import time

    import torch

    from tsplab.train import pretrain

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        raise InputError(f"weights='source': {folder} has no source encoder yet and this process is part of "
                         "a process group; train it first in one process: python -c \"from tsplab.synthetic "
                         f"import ensure_source_encoder; ensure_source_encoder('{folder}')\"")
    generate_source(folder, progress=progress)
    config = source_pretrain_config(folder, seed=seed, progress=progress)
    source = source_config(read_benchmark_config(folder)[0])
    print(f"tsplab: training the initial encoder of {folder} (weights='source'): TAC on its source set "
          f"({source.num_train_videos} training videos, {source.num_classes} classes) into {config.output_dir}; "
          "once per benchmark (the default benchmark: a few minutes on 2 CPU cores)", flush=True)
    start = time.perf_counter()
    with _one_process():
        result = pretrain(config, resume=_resumable(config, seed))
    best = result.metrics.set_index("epoch").loc[result.best_epoch]
    write_json(folder / SOURCE_ENCODER_DIR / _SOURCE_ENCODER_DONE, {
        "complete": True, "seed": int(seed), "best_epoch": int(result.best_epoch),
        "valid_acc_action": float(best["valid_acc_action"]), "epochs": int(config.epochs),
        "seconds": round(time.perf_counter() - start, 1)})


def _resumable(config, seed: int) -> bool:
    """A killed source run (checkpoint, same seed) continues; anything else starts afresh (the loop
    sets an earlier run's files aside)."""
    saved = config.output_dir / "config.json"
    return (config.output_dir / "checkpoint.pt").is_file() and saved.is_file() \
        and read_json(saved).get("seed") == seed


@contextlib.contextmanager
def _source_lock(folder: Path):
    """An exclusive lock on ``BENCHMARK/source_encoder/lock`` (POSIX ``flock``; none elsewhere)."""
    lock_dir = folder / SOURCE_ENCODER_DIR
    lock_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (concurrent first uses would train twice)
        yield
        return
    with open(lock_dir / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _one_process():
    """Hide torchrun's variables while the source run trains, so that it runs as one process even
    when a rank of a torchrun job triggers it (the other ranks wait on the lock meanwhile)."""
    saved = {k: os.environ.pop(k) for k in _TORCHRUN_VARIABLES if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
