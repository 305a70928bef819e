"""Rendering with dials (``tsplab.benchmark.dials``): the plain video's scene, path and noise, drawn
from the same random streams as ``tsplab.benchmark.render.render_video`` draws them, plus scene cuts,
the onset cue and the source set's ``source_shift`` style, drawn from the video's own dial stream.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from tsplab.benchmark.config import get_config
from tsplab.benchmark.dials import ONSET_FRAMES, RENDER_STREAM, SOURCE_RENDER_STREAM, dial_rng
from tsplab.benchmark.plan import scene_class_of, stream_rng
from tsplab.benchmark.scene import SyntheticVideo, class_palette, draw_scene, source_palette, trajectory


def styled_config(config, shift: float):
    """The benchmark's world as the source set sees it at ``source_shift`` = ``shift``: a smaller
    object (radius x (1 - 0.25 s)) and more pixel noise (x (1 + 2 s))."""
    if not shift:
        return config
    return dataclasses.replace(config, object_radius_frac=config.object_radius_frac * (1 - 0.25 * shift),
                               pixel_noise_std=config.pixel_noise_std * (1 + 2 * shift))


def texture_of(shift: float):
    """The scene texture at ``source_shift`` = ``shift`` (None: the plain stripes): stripes blended
    with a checkerboard of weight ``shift``, both at ``1 + shift`` times the stripe period."""
    if not shift:
        return None

    def texture(xx, yy, angle, period, phase):
        period = period * (1 + shift)
        u = (xx * math.cos(angle) + yy * math.sin(angle)) / period
        v = (-xx * math.sin(angle) + yy * math.cos(angle)) / period
        stripes = np.sin(2 * np.pi * u + phase)
        checker = np.sign(np.sin(2 * np.pi * u + phase) * np.sin(2 * np.pi * v))
        return (1 - shift) * stripes + shift * checker
    return texture


def render_with_dials(config, plan, seed: int):
    """``tsplab.benchmark.render.render_video`` for a config with dials: the plain video's scene, path and
    noise (same random streams), plus scene cuts, the onset cue and, for source plans, the
    ``source_shift`` style; the extra randomness comes from the video's own dial stream."""
    dials = config.dials
    shift = dials.source_shift if plan.source else 0.0
    world = styled_config(config, shift)
    texture = texture_of(shift)
    rng = stream_rng(seed, 8 if plan.source else 4, plan.index)
    palette = source_palette(config, seed) if plan.source else class_palette(config, seed)
    image, obj = draw_scene(world, plan, palette, rng, texture=texture)
    cx, cy, radius, labels = trajectory(world, plan, rng)
    extra = dial_rng(seed, SOURCE_RENDER_STREAM if plan.source else RENDER_STREAM, plan.index)
    images, scene_of_frame, objs = _scenes_with_cuts(world, plan, palette, image, obj, extra, texture)
    if dials.onset_cue and not plan.source:
        objs, radius = _onset_cue(plan, objs, radius, dials.onset_cue, dials.onset_cue_kind)
    frames = _composite(world, images[scene_of_frame], objs, cx, cy, radius, exponent=2 + 6 * shift)
    if shift:
        frames = _blur(frames, 1.5 * shift * config.frame_size / 64)
    frames += np.float32(world.pixel_noise_std) * rng.standard_normal(size=frames.shape, dtype=np.float32)
    frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    return SyntheticVideo(plan, frames, labels)


def _scenes_with_cuts(config, plan, palette, image, obj, rng, texture):
    """Scene images [S, H, W, 3], the scene of each frame [T] and the object colour of each frame
    [T, 3]: scene 0 is the plain one, each cut starts a new one, drawn like a video's scene for the
    class of the action starting there (else the video's class)."""
    images, colours = [image], [obj]
    scene_of_frame = np.zeros(plan.num_frames, dtype=np.int64)
    starts = {s: plan.label_of(i) for i, (s, _, _) in enumerate(plan.instances)}
    num_classes = len(palette)
    for cut in plan.cuts:
        cls = starts.get(cut, plan.label) if not plan.source else plan.scene_class
        scene_class = scene_class_of(config, rng, cls, num_classes)
        new_image, new_obj = draw_scene(config, dataclasses.replace(plan, scene_class=scene_class),
                                      palette, rng, texture=texture)
        images.append(new_image)
        colours.append(new_obj)
        scene_of_frame[cut:] = len(images) - 1
    objs = np.stack(colours)[scene_of_frame]
    return np.stack(images), scene_of_frame, objs


def _onset_cue(plan, objs, radius, level: float, kind: str):
    """The first ONSET_FRAMES frames of each instance: the object ``0.5 * level`` of the way to
    white (colour), or ``1 + 0.35 * level`` times larger (size)."""
    objs, radius = objs.copy(), radius.copy()
    for start, end, _ in plan.instances:
        onset = slice(start, min(end, start + ONSET_FRAMES))
        if kind == "colour":
            objs[onset] += (255.0 - objs[onset]) * 0.5 * level
        else:
            radius[onset] *= 1 + 0.35 * level
    return objs, radius


def _composite(config, backgrounds, objs, cx, cy, radius, exponent: float) -> np.ndarray:
    """float32 frames [T, H, W, 3]: the object (a superellipse of ``exponent``; 2 is the plain
    disk, with its soft edge) over each frame's background."""
    f32 = np.float32
    size = config.frame_size
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5).astype(f32)
    edge = f32(max(1.0, 0.25 * config.object_radius_frac * size))
    dx = np.abs(xx[None] - cx.astype(f32)[:, None, None])
    dy = np.abs(yy[None] - cy.astype(f32)[:, None, None])
    p = f32(exponent)
    dist = np.hypot(dx, dy) if exponent == 2 else (dx ** p + dy ** p) ** (1 / p)
    alpha = np.clip((radius.astype(f32)[:, None, None] - dist) / edge + f32(0.5), 0, 1)[..., None]
    return backgrounds.astype(f32) * (1 - alpha) + objs.astype(f32)[:, None, None, :] * alpha


def _blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of frames [T, H, W, C] (edges reflected)."""
    if sigma <= 0.05:
        return frames
    half = int(math.ceil(3 * sigma))
    weights = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2).astype(np.float32)
    weights /= weights.sum()
    for axis in (1, 2):
        pad = [(0, 0)] * frames.ndim
        pad[axis] = (half, half)
        padded = np.pad(frames, pad, mode="reflect")
        out = np.zeros_like(frames)
        n = frames.shape[axis]
        for k, w in enumerate(weights):
            out += w * np.take(padded, np.arange(k, k + n), axis=axis)
        frames = out
    return frames


def object_path(config, plan, seed: int):
    """The object's centre x, y (px), radius (px) and the frame labels, each [T], of ``plan`` as
    its video is rendered (the generator's own trajectory: what the manipulation checks read
    instead of tracking the object in pixels)."""
    config = get_config(config)
    shift = config.dials.source_shift if config.dials is not None and plan.source else 0.0
    world = styled_config(config, shift)
    rng = stream_rng(seed, 8 if plan.source else 4, plan.index)
    palette = source_palette(config, seed) if plan.source else class_palette(config, seed)
    draw_scene(world, plan, palette, rng, texture=texture_of(shift))
    return trajectory(world, plan, rng)
