"""Rendering: the frames of a planned video (uint8 [T, H, W, 3]) and its frame labels [T].

The plain path is here; a config with dials on goes through ``tsplab.benchmark.dial_render``, which
draws the same random numbers first and adds what its dials ask for. Frames are deterministic in
(config, seed, video) with the same numpy on the same kind of CPU (vectorised sin/exp may differ in the
last bit across instruction sets, moving a pixel by one grey level).
"""
from __future__ import annotations

import numpy as np

from tsplab.benchmark.config import get_config
from tsplab.benchmark.dial_render import render_with_dials
from tsplab.benchmark.plan import VideoPlan, plan_benchmark, plan_source, stream_rng
from tsplab.benchmark.scene import SyntheticVideo, class_palette, draw_scene, source_palette, trajectory


def render_video(config, plan: VideoPlan, seed: int) -> SyntheticVideo:
    """The frames of ``plan`` (uint8 [T, H, W, 3]) and its frame labels [T], deterministic in
    (config, seed, plan.index, plan.source). A source plan (:func:`plan_source`) takes the source
    palette and pixel stream: the same renderer, so both sets share one visual world."""
    config = get_config(config)
    if config.dials is not None:
        return render_with_dials(config, plan, seed)
    rng = stream_rng(seed, 8 if plan.source else 4, plan.index)
    palette = source_palette(config, seed) if plan.source else class_palette(config, seed)
    image, obj = draw_scene(config, plan, palette, rng)
    cx, cy, radius, labels = trajectory(config, plan, rng)
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
    source set (ids ``src_*``), without decoding its MP4. ``config`` is a size name or a
    ``SyntheticConfig``."""
    config = get_config(config)
    plans = plan_source(config, seed) if video.startswith("src_") else plan_benchmark(config, seed)
    for plan in plans:
        if plan.video == video:
            return render_video(config, plan, seed)
    raise KeyError(f"no video {video!r} in this synthetic benchmark (ids look like 'train_0000', "
                   f"'val_0000', and 'src_train_0000' in its source set)")
