"""PAL's data: the pseudo-action pasting of PAL §3.2.1 (the input-level transformation T, eq. 4) and
the temporally consistent augmentation of the synthesized videos.

``PALDataset`` turns the videos of a segment table into synthesized pairs ``(v_{i->n}, v_{i->m})``;
``augment_videos`` augments each synthesized video the same way in all its frames. The method that
trains on them is ``tsplab.pretrain.methods.pal.PAL``; its options (``PALOptions``) configure the
dataset. The choices the paper leaves open are marked ``# Choice:``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from tsplab.pretrain.sampling import frame_indices, item_key, item_rng, read_frames


# ------------------------------------------------------------------- input-level transformation T
def draw_view(rng: np.random.Generator, *, num_clips: int, max_region_clips: int, max_stride: int,
              beta_range=(0.6, 1.0), dense: bool = True, scale_aware: bool = True, paste: bool = True) -> dict:
    """The random parameters of one synthesized video (PAL eq. 4): ``region_clips`` (k), ``stride``
    (frames between sampled source frames), ``start_clip`` / ``end_clip`` (the region's clips
    ``[s, e)`` in the synthesized video, end exclusive) and ``beta`` (blending ratio).

    Table 3 switches: ``dense=False`` -> a single clip; ``scale_aware=False`` -> stride 1;
    ``paste=False`` -> no background, beta 1 and the region is the whole synthesized video."""
    if not paste:
        # Choice: without paste (PAL Table 3 #0-#2) the paper contrasts the sampled regions themselves;
        # to keep one input shape per run the region fills the synthesized video (J clips, or 1 clip
        # when not dense), so nothing but the region is seen.
        k = num_clips if dense else 1
    elif dense:
        k = int(rng.integers(1, min(max_region_clips, num_clips) + 1))  # Choice: k ~ U{1..6}
    else:
        k = 1
    stride = int(rng.integers(1, max_stride + 1)) if scale_aware else 1
    start = int(rng.integers(0, num_clips - k + 1)) if paste else 0
    beta = float(rng.uniform(*beta_range)) if paste else 1.0
    return {"region_clips": k, "stride": stride, "start_clip": start, "end_clip": start + k, "beta": beta}


def region_frame_indices(num_frames: int, region_clips: int, clip_length_frames: int, stride: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Source frame indices ``[region_clips * clip_length_frames]`` of a pseudo-action region: every
    ``stride``-th frame from a random start (scale-aware sampling, PAL §3.2.1: consecutive clips
    continue the same stride, so the region plays the source ``stride`` times faster).

    Choice: a source too short for the drawn stride uses the largest stride that fits; one shorter
    than the region even at stride 1 repeats its last frame (as ``tsplab.video.read_clip`` does)."""
    n = region_clips * clip_length_frames
    if num_frames < 1:
        raise ValueError("a pseudo-action source video has no frames")
    stride = max(1, min(stride, (num_frames - 1) // max(n - 1, 1))) if n > 1 else 1
    span = (n - 1) * stride + 1
    start = int(rng.integers(0, max(num_frames - span, 0) + 1))
    return frame_indices(start, n, num_frames, stride)


def paste_region(background: np.ndarray, region: np.ndarray, start_frame: int, beta: float) -> np.ndarray:
    """Blend ``region`` uint8 ``[R, H, W, 3]`` into ``background`` uint8 ``[T, H, W, 3]`` at
    ``start_frame``: ``beta * region + (1 - beta) * background`` there (PAL §3.2.1's soft paste),
    the background elsewhere. Returns a new uint8 ``[T, H, W, 3]``."""
    if region.shape[1:] != background.shape[1:]:
        raise ValueError(f"region frames {region.shape[1:]} and background frames {background.shape[1:]} differ")
    if not 0 <= start_frame <= len(background) - len(region):
        raise ValueError(f"a region of {len(region)} frames does not fit at frame {start_frame} "
                         f"of a {len(background)}-frame background")
    out = background.copy()
    end = start_frame + len(region)
    mixed = beta * region.astype(np.float32) + (1.0 - beta) * background[start_frame:end].astype(np.float32)
    out[start_frame:end] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out


def centre_square(frames: np.ndarray, side: int) -> np.ndarray:
    """Centre ``side x side`` crop of ``[T, H, W, 3]`` frames (videos of different aspect ratios must
    share one frame size to be blended). Choice: the random crop of the augmentation then moves
    inside this square."""
    h, w = frames.shape[1:3]
    side = min(side, h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return frames[:, y0:y0 + side, x0:x0 + side]


class PALDataset(Dataset):
    """Synthesized pairs ``(v_{i->n}, v_{i->m})`` of the videos of a segment table (only the
    ``video-name``/``filename`` columns are read: no labels), with :class:`PALOptions` ``options``.

    Item ``idx`` takes video ``idx // samples_per_video`` as ``v_i``; index it with ``(idx, epoch)``
    (``tsplab.pretrain.sampling.EpochSampler``). Every draw is seeded by ``(seed, epoch, idx)`` (``fixed=True``,
    for validation: by ``(seed, idx)``, the same pairs every epoch). An item is a dict:

    - ``clip``: uint8 ``[2, J * L, S, S, 3]``, the two synthesized videos (S = ``frame_side``),
    - ``region``: int64 ``[2, 2]``, the pasted region's clip indices ``[start, end)`` in each video,
    - ``beta``: float32 ``[2]``, ``stride``: int64 ``[2]``, ``background``: int64 ``[2]`` (video rows,
      -1 without paste), ``video_index``: int64 (the source video's row in ``self.videos``).
    """

    def __init__(self, table, video_dir, frames, *, clip_length_frames: int, frame_side: int,
                 options, seed: int = 0, fixed: bool = False):
        from pathlib import Path

        missing = [c for c in ("video-name", "filename") if c not in table.columns]
        if missing:
            raise ValueError(f"segment table lacks columns {missing}")
        self.videos = (table[["video-name", "filename"]].drop_duplicates("video-name")
                       .rename(columns={"video-name": "video"}).reset_index(drop=True))
        self.video_dir = Path(video_dir)
        self.frames = frames
        self.clip_length_frames = int(clip_length_frames)
        self.frame_side = int(frame_side)
        self.seed, self.fixed = int(seed), bool(fixed)
        o = options
        self.pasting = bool(o.pasting)  # False: one region, read once, in both views (MoCo-v2 control)
        paste = bool(o.paste) and self.pasting
        # J clips per synthesized video; without paste the region is the video (1 clip when not dense).
        self.num_clips = int(o.clips_per_video) if paste or o.dense else 1
        self.view_args = dict(num_clips=int(o.clips_per_video), max_region_clips=int(o.max_region_clips),
                              max_stride=int(o.max_stride), beta_range=tuple(o.beta_range),
                              dense=bool(o.dense), scale_aware=bool(o.scale_aware), paste=paste)
        self.paste, self.same_background = paste, o.background == "same"
        self.samples_per_video = int(o.samples_per_video)
        needed = 1 + (0 if not self.paste else 1 if self.same_background else 2)
        if len(self.videos) < needed:
            raise ValueError(f"PAL needs at least {needed} videos (a source and its backgrounds), "
                             f"the table has {len(self.videos)}")

    def __len__(self) -> int:
        return len(self.videos) * self.samples_per_video

    def _frames(self, row: int) -> np.ndarray:
        return self.frames.get(self.video_dir / self.videos["filename"].iat[row])

    def _backgrounds(self, source_row: int, rng: np.random.Generator) -> list[int]:
        """The background video rows of the pair (``v_n``, ``v_m``), -1 without paste."""
        others = np.delete(np.arange(len(self.videos)), source_row)
        if not self.paste:
            return [-1, -1]
        if self.same_background:
            return [int(rng.choice(others))] * 2  # Table 3 #3: both regions on one background
        return [int(b) for b in rng.choice(others, size=2, replace=False)]

    def _synthesize(self, source: np.ndarray, source_row: int, bg_row: int, rng, index: int):
        """One synthesized video: ``(frames [J*L, S, S, 3], view, stride used)``."""
        L, J = self.clip_length_frames, self.num_clips
        view = draw_view(rng, **self.view_args)
        idx = region_frame_indices(len(source), view["region_clips"], L, view["stride"], rng)
        region = np.asarray(source[idx])
        # the stride used (smaller than the drawn one when the source is too short for it)
        stride = max(1, int(idx[1] - idx[0])) if len(idx) > 1 else view["stride"]
        if bg_row < 0:
            return region, view, stride
        bg = centre_square(self._frames(bg_row), self.frame_side)
        # Choice: the background is J*L consecutive frames (stride 1) from a random start.
        background = read_frames(bg, int(rng.integers(0, max(len(bg) - J * L, 0) + 1)), J * L)
        try:
            return paste_region(background, region, view["start_clip"] * L, view["beta"]), view, stride
        except ValueError as err:
            raise ValueError(f"PAL pair {index}: pasting {self.videos['filename'].iat[source_row]} onto "
                             f"{self.videos['filename'].iat[bg_row]}: {err}") from None

    def __getitem__(self, key) -> dict:
        index, epoch = item_key(key, len(self), fixed=self.fixed)
        rng = item_rng(self.seed, epoch, index, 71)
        source_row = index // self.samples_per_video
        source = centre_square(self._frames(source_row), self.frame_side)
        backgrounds = self._backgrounds(source_row, rng)
        if self.pasting:
            views = [self._synthesize(source, source_row, bg_row, rng, index) for bg_row in backgrounds]
        else:
            views = [self._synthesize(source, source_row, -1, rng, index)] * 2  # one clip, two views
        return {
            "clip": torch.from_numpy(np.stack([video for video, _, _ in views])),
            "region": torch.tensor([(v["start_clip"], v["end_clip"]) for _, v, _ in views], dtype=torch.int64),
            "beta": torch.tensor([v["beta"] for _, v, _ in views], dtype=torch.float32),
            "stride": torch.tensor([stride for _, _, stride in views], dtype=torch.int64),
            "background": torch.tensor(backgrounds, dtype=torch.int64),
            "video_index": torch.tensor(source_row, dtype=torch.int64),
        }


# ------------------------------------------------------------- temporally consistent augmentation
def augment_videos(videos: torch.Tensor, crop_size: int, *, train: bool,
                   generator: torch.Generator | None = None, jitter_strength: float = 0.4,
                   jitter_p: float = 0.8, blur_p: float = 0.5) -> torch.Tensor:
    """uint8 videos ``[N, T, H, W, 3]`` -> normalized float ``[N, T, 3, crop, crop]``.

    Training: per video one random crop, horizontal flip, colour jitter (brightness, contrast,
    saturation factors in ``1 +- jitter_strength``, with probability ``jitter_p``) and Gaussian blur
    (probability ``blur_p``), the same for all its frames (PAL §3.2.1: "all are temporally
    consistent"). Evaluation: centre crop only. Then Kinetics normalization. The one clip
    augmentation of every method (``tsplab.backbones.ClipTransform``, without resizing: the frames
    are already squares of the training side).

    Choice: MoCo v2's strengths (jitter 0.4 with p 0.8, blur p 0.5, sigma 0.1-2 at 224 px, here scaled
    to ``crop``); no hue jitter and a fixed order brightness -> contrast -> saturation."""
    from tsplab.backbones import ClipTransform  # lazily: torchvision loads slowly

    transform = ClipTransform(None, int(crop_size), train, jitter_strength=jitter_strength,
                              jitter_p=jitter_p, blur_p=blur_p)
    return transform(videos, generator).transpose(1, 2).contiguous()
