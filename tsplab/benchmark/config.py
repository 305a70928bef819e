"""What defines a synthetic benchmark: ``SyntheticConfig`` (with the seed), the named sizes ``SIZES``
(``tiny`` for tests, ``default`` for the demo) and the sizes of its trimmed source set
(``SourceConfig``, derived from the benchmark's config by one rule)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from tsplab.benchmark.dials import BenchmarkDials, source_motions
from tsplab.benchmark.motions import MOTIONS, SOURCE_MOTIONS, base_half_range
from tsplab.errors import InputError


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
    # The premise dials (tsplab.benchmark.dials), None when all are off: the plain benchmark, whose
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
        if base_half_range(self, self.action_amplitude_radii[1]) < 0:
            raise InputError(f"action_amplitude_radii={self.action_amplitude_radii} with "
                             f"object_radius_frac={self.object_radius_frac}: the motion does not fit "
                             "in the frame")

    @classmethod
    def from_dict(cls, d: dict) -> "SyntheticConfig":
        return cls(**d)


# Instance-length bucket edges in seconds (the DETAD length buckets LENGTH_BUCKETS), playing the role
# of ActivityNet's DETAD edges (0, 30, 60, 120, 180, inf) s; XS is at most 1.5 clips of 8 frames at
# 15 fps. Chosen from the default benchmark's length distribution so that each bucket holds a fair
# share of the instances (the shares are in the README, "Data conventions").
LENGTH_EDGES_S = (0.0, 0.8, 1.2, 2.0, 3.0, math.inf)
LENGTH_BUCKETS = ("XS", "S", "M", "L", "XL")

SIZES = {
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
    """The source set of benchmark ``config`` (a size name or a ``SyntheticConfig``), by one rule:
    two more classes than the target (at most ``len(SOURCE_MOTIONS)``; Kinetics has 400 to
    ActivityNet's 200), twice its training videos and as many validation videos, each 3 to 6 clips
    long (a trimmed clip around one action, as Kinetics' 10 s clips are short next to ActivityNet's
    minutes). ``default``: 8 classes, 480 + 96 videos of 24-48 frames; ``tiny``: 5 classes, 24 + 6."""
    config = get_config(config)
    clip = config.clip_length_frames
    source = SourceConfig(num_classes=min(len(SOURCE_MOTIONS), config.num_classes + 2),
                          num_train_videos=2 * config.num_train_videos,
                          num_val_videos=config.num_val_videos,
                          num_frames_range=(3 * clip, 6 * clip))
    motions = source_motions(config, SOURCE_MOTIONS[:source.num_classes], MOTIONS[:config.num_classes])
    if base_half_range(config, config.action_amplitude_radii[1], motions) < 0:
        raise InputError(f"action_amplitude_radii={config.action_amplitude_radii} with object_radius_frac="
                         f"{config.object_radius_frac}: the source set's motions do not fit in the frame")
    return source


def get_config(config) -> SyntheticConfig:
    """``config`` itself, or the config of the benchmark size named ``config`` (a key of ``SIZES``)."""
    if isinstance(config, SyntheticConfig):
        return config
    if config in SIZES:
        return SIZES[config]
    raise InputError(f"unknown synthetic benchmark size {config!r}; valid sizes: {', '.join(SIZES)}")


def class_motions(config, source: bool) -> tuple:
    """The motions of the target's classes, or of the source set's."""
    if source:
        return source_motions(config, SOURCE_MOTIONS[:source_config(config).num_classes],
                              MOTIONS[:config.num_classes])
    return MOTIONS[:config.num_classes]
