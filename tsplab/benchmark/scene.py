"""The world a video lives in: its scene (background colour, stripe texture, object colour from a
class palette, jittered per video) and the object's path (idle drift or wander in the background, the
class motion on top of it inside actions). ``tsplab.benchmark.render`` turns both into frames.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from tsplab.benchmark.config import class_motions, get_config
from tsplab.benchmark.motions import PULSE_LOG_GAIN, SCALES, base_half_range, unit_path
from tsplab.benchmark.plan import VideoPlan, source_num_scenes, stream_rng


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



def class_palette(config="tiny", seed: int = 0) -> list[dict]:
    """Per class: background HSV, object HSV, stripe angle (degrees) and period (fraction of frame)."""
    config = get_config(config)
    return _palette(config.num_classes, stream_rng(seed, 3))


def source_palette(config="tiny", seed: int = 0) -> list[dict]:
    """Per source scene (one for every ``SOURCE_CLASSES_PER_SCENE`` classes), drawn like the target's
    palettes (:func:`class_palette`) from a stream of its own: the same kind of scenes, other hues,
    angles and periods."""
    return _palette(source_num_scenes(config), stream_rng(seed, 7))


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


def _fold(x: np.ndarray, half: float) -> np.ndarray:
    """Reflect positions ``x`` (relative to the centre) into [-half, half] (a walk bouncing off walls)."""
    if half <= 0:
        return np.zeros_like(x)
    y = np.mod(x + half, 4 * half)
    return np.where(y > 2 * half, 4 * half - y, y) - half


def trajectory(config, plan: VideoPlan, rng):
    """Object centre (x, y) in px and radius in px, each [T], and frame labels [T]."""
    size, t_frames = config.frame_size, plan.num_frames
    r = config.object_radius_frac * size
    a0, a1 = config.action_amplitude_radii
    amplitude = a0 + plan.motion_level * (a1 - a0)
    half = base_half_range(config, amplitude, class_motions(config, plan.source))

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
        dx, dy, dr = unit_path(motion, theta)
        # Added to the wander, which goes on: an action is motion on top of the video's baseline.
        gain = amplitude * r * SCALES[motion] * envelope
        offset[start_f:end_f, 0] += dx * gain
        offset[start_f:end_f, 1] += dy * gain
        radius[start_f:end_f] *= np.exp(PULSE_LOG_GAIN * amplitude * envelope * dr)
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


def draw_scene(config, plan: VideoPlan, palette: list[dict], rng, texture=None):
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
