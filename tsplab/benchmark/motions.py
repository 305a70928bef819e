"""The class motions of the synthetic benchmark: each class is one periodic path of the object.

Target class i performs ``MOTIONS[i]``, source class i ``SOURCE_MOTIONS[i]``; the two lists share no
motion, as Kinetics' classes are not ActivityNet's. Every translating path is normalised to the same
travel per period (4 amplitudes), so that classes carry similar motion energy.
"""
from __future__ import annotations

import math

import numpy as np

MOTIONS = ("horizontal", "vertical", "circle", "pulse", "diagonal", "bounce", "anti_diagonal",
           "figure_eight")
SOURCE_MOTIONS = ("square", "triangle", "swing", "shake", "ellipse", "wobble", "zigzag", "heartbeat")
# Source classes share scenes two by two, as Kinetics' classes share places (one gym, one kitchen):
# the scene narrows a source clip down to two classes, its motion must tell which.
SOURCE_CLASSES_PER_SCENE = 2


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


def unit_path(motion: str, theta: np.ndarray):
    """(dx, dy, dr), each [T], of a class motion at phases ``theta`` [T] (one period = 2 pi): dx, dy
    in amplitudes before ``SCALES``, dr the log radius change before ``PULSE_LOG_GAIN``."""
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
    (see PULSE_LOG_GAIN)."""
    dx, dy, _ = unit_path(motion, np.linspace(0, 2 * np.pi, 721))
    travel = np.hypot(np.diff(dx), np.diff(dy)).sum()
    return 4.0 / travel if travel > 0 else 1.0


_ALL_MOTIONS = MOTIONS + SOURCE_MOTIONS
SCALES = {m: _path_scale(m) for m in _ALL_MOTIONS}
# Largest |offset| (in amplitudes) of each path, for keeping the object inside the frame.
_EXTENTS = {m: float(np.max(np.abs(np.stack(unit_path(m, np.linspace(0, 2 * np.pi, 361))[:2]))))
            * SCALES[m] for m in _ALL_MOTIONS}
# Largest log radius change (in units of PULSE_LOG_GAIN * amplitude) of each path.
_GROWTH = {m: float(np.max(unit_path(m, np.linspace(0, 2 * np.pi, 361))[2])) for m in _ALL_MOTIONS}


# A radius pulse changes the radius by a factor exp(gain * amplitude * sin(theta)): a log scale, so
# that it grows as much as it shrinks and the disk never vanishes (0.41 to 2.46 radii at amplitude 2).
PULSE_LOG_GAIN = 0.45


def base_half_range(config, amplitude_radii: float, motions=None) -> float:
    """How far (px) the object's resting position may wander from the frame centre so that every
    class motion of ``motions`` (default: the target's, ``MOTIONS[:num_classes]``) at
    ``amplitude_radii`` stays inside the frame."""
    motions = MOTIONS[:config.num_classes] if motions is None else motions
    size = config.frame_size
    r = config.object_radius_frac * size
    reach = max(_EXTENTS[m] for m in motions) * amplitude_radii * r
    grow = r * math.exp(PULSE_LOG_GAIN * amplitude_radii * max(_GROWTH[m] for m in motions))
    return size / 2 - max(r + reach, grow) - 1.0
