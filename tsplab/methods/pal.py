"""PAL: unsupervised pretraining by Pseudo Action Localization (Zhang et al., UP-TAL, CVPR 2022).

From one video ``v_i`` two pseudo-action regions (up to 6 clips each, frame stride drawn from 1-4:
scale-aware sampling) are pasted, blended with ``beta ~ U[0.6, 1]``, at random clip positions into two
other videos ``v_n`` and ``v_m`` used as background (PAL eq. 4, §3.2.1); each synthesized video gets
its own temporally consistent spatial augmentation. The encoder (backbone -> non-linear projection ->
temporal embedding head of two temporal convolutions, §3.2.2) gives one L2-normalised feature per clip;
the region feature is the average of the clip features inside the pasted region (the equi-
transformation G, eq. 6); InfoNCE (eq. 7, tau 0.07) pulls the two regions of ``v_i`` together against
negatives from a MoCo queue filled by a momentum key encoder (§4.1, following MoCo v2).

No labels are used: the datasets read only the videos of the segment tables. The method's one "head"
is ``region``: the top-1 accuracy of retrieving each query region's positive key among the batch's
keys, a label-free number the loop's best-epoch selection uses.

PAL released no code. The choices the paper leaves open are marked ``# Choice:`` below.
The paper's optimisation (Adam, lr 1e-4, weight decay 1e-5) is ``PAL_OPTIMIZER_OVERRIDES``, which
``tsplab.train.pretrain_config`` applies on the paper-default preset ``tsp`` (the synthetic preset's
Adam settings train the tiny random-init encoder); ``PAL_SYNTHETIC_OVERRIDES`` sizes the queue and
momentum for the synthetic benchmark's short runs and is applied on the ``synthetic`` preset. ``batch_size`` counts synthesized *pairs* (2 x J clips each), so
the loop's ``clips_per_s`` column counts pairs too.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from tsplab.methods.base import PretrainData, PretrainMethod, StepOutput

#: PAL §4.1: Adam, initial learning rate 1e-4, weight decay 1e-5 (``pretrain_config(**PAL_OPTIMIZER_OVERRIDES)``).
#: The paper decays the rate x0.1 "when the validation loss saturates"; the loop's step decay stands in.
PAL_OPTIMIZER_OVERRIDES = dict(optimizer="adam", backbone_lr=1e-4, fc_lr=1e-4, stem_lr=1e-4, weight_decay=1e-5)

#: Settings for the synthetic benchmark (with ``PRESETS["synthetic"]``), not from the paper: its runs
#: take ~100 optimizer steps, where MoCo's m = 0.999 would leave the key encoder ~90 % at its random
#: initialisation, and a 16,384-key queue would hold mostly its random initial rows (a trivially easy
#: contrast: on the tiny benchmark a random 16-row queue gave a loss < 0.01 at the first step). A queue
#: about one epoch of keys long, m = 0.99
#: (MoCo's ablation shows it works too), two pairs per video and 16 pairs (256 clips) per step.
PAL_SYNTHETIC_OVERRIDES = dict(pal_queue_size=512, pal_key_momentum=0.99, pal_samples_per_video=2, batch_size=16)

BACKGROUNDS = ("different", "same")


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
    return np.minimum(start + stride * np.arange(n), num_frames - 1)


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
    ``video-name``/``filename`` columns are read: no labels).

    Item ``idx`` takes video ``idx // samples_per_video`` as ``v_i``; index it with ``(idx, epoch)``
    (``tsplab.sampling.EpochSampler``). Every draw is seeded by ``(seed, epoch, idx)`` (``fixed=True``,
    for validation: by ``(seed, idx)``, the same pairs every epoch). An item is a dict:

    - ``clip``: uint8 ``[2, J * L, S, S, 3]``, the two synthesized videos (S = ``frame_side``),
    - ``region``: int64 ``[2, 2]``, the pasted region's clip indices ``[start, end)`` in each video,
    - ``beta``: float32 ``[2]``, ``stride``: int64 ``[2]``, ``background``: int64 ``[2]`` (video rows,
      -1 without paste), ``video_index``: int64 (the source video's row in ``self.videos``).
    """

    def __init__(self, table, video_dir, frames, *, clip_length_frames: int, frame_side: int, config,
                 seed: int = 0, fixed: bool = False):
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
        c = config
        # J clips per synthesized video; without paste the region is the video (1 clip when not dense).
        self.num_clips = int(c.pal_clips_per_video) if c.pal_paste or c.pal_dense else 1
        self.view_args = dict(num_clips=int(c.pal_clips_per_video), max_region_clips=int(c.pal_max_region_clips),
                              max_stride=int(c.pal_max_stride), beta_range=tuple(c.pal_beta_range),
                              dense=bool(c.pal_dense), scale_aware=bool(c.pal_scale_aware), paste=bool(c.pal_paste))
        self.paste, self.same_background = bool(c.pal_paste), c.pal_background == "same"
        self.samples_per_video = int(c.pal_samples_per_video)
        needed = 1 + (0 if not self.paste else 1 if self.same_background else 2)
        if len(self.videos) < needed:
            raise ValueError(f"PAL needs at least {needed} videos (a source and its backgrounds), "
                             f"the table has {len(self.videos)}")

    def __len__(self) -> int:
        return len(self.videos) * self.samples_per_video

    def _frames(self, row: int) -> np.ndarray:
        return self.frames.get(self.video_dir / self.videos["filename"].iat[row])

    def __getitem__(self, key) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} pairs")
        rng = np.random.default_rng((self.seed, 0 if self.fixed else int(epoch), int(index), 71))
        source_row = index // self.samples_per_video
        source = centre_square(self._frames(source_row), self.frame_side)
        others = np.delete(np.arange(len(self.videos)), source_row)
        if not self.paste:
            backgrounds = [-1, -1]
        elif self.same_background:
            backgrounds = [int(rng.choice(others))] * 2  # Table 3 #3: both regions on one background
        else:
            backgrounds = [int(b) for b in rng.choice(others, size=2, replace=False)]
        L, J = self.clip_length_frames, self.num_clips
        videos, regions, betas, strides = [], [], [], []
        for bg_row in backgrounds:
            view = draw_view(rng, **self.view_args)
            idx = region_frame_indices(len(source), view["region_clips"], L, view["stride"], rng)
            region = np.asarray(source[idx])
            if bg_row < 0:
                video = region
            else:
                bg = centre_square(self._frames(bg_row), self.frame_side)
                # Choice: the background is J*L consecutive frames (stride 1) from a random start.
                bidx = np.minimum(int(rng.integers(0, max(len(bg) - J * L, 0) + 1)) + np.arange(J * L), len(bg) - 1)
                try:
                    video = paste_region(np.asarray(bg[bidx]), region, view["start_clip"] * L, view["beta"])
                except ValueError as err:
                    raise ValueError(f"PAL pair {index}: pasting {self.videos['filename'].iat[source_row]} onto "
                                     f"{self.videos['filename'].iat[bg_row]}: {err}") from None
            videos.append(video)
            regions.append((view["start_clip"], view["end_clip"]))
            betas.append(view["beta"])
            # the stride used (smaller than the drawn one when the source is too short for it)
            strides.append(max(1, int(idx[1] - idx[0])) if len(idx) > 1 else view["stride"])
        return {
            "clip": torch.from_numpy(np.stack(videos)),
            "region": torch.tensor(regions, dtype=torch.int64),
            "beta": torch.tensor(betas, dtype=torch.float32),
            "stride": torch.tensor(strides, dtype=torch.int64),
            "background": torch.tensor(backgrounds, dtype=torch.int64),
            "video_index": torch.tensor(source_row, dtype=torch.int64),
        }


# ------------------------------------------------------------- temporally consistent augmentation
def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[T, 3, H, W]`` (every frame with the same ``sigma``)."""
    radius = max(1, int(math.ceil(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-t ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def augment_videos(videos: torch.Tensor, crop_size: int, *, train: bool,
                   generator: torch.Generator | None = None, jitter_strength: float = 0.4,
                   jitter_p: float = 0.8, blur_p: float = 0.5) -> torch.Tensor:
    """uint8 videos ``[N, T, H, W, 3]`` -> normalized float ``[N, T, 3, crop, crop]``.

    Training: per video one random crop, horizontal flip, colour jitter (brightness, contrast,
    saturation factors in ``1 +- jitter_strength``, with probability ``jitter_p``) and Gaussian blur
    (probability ``blur_p``), the same for all its frames (PAL §3.2.1: "all are temporally
    consistent"). Evaluation: centre crop only. Then Kinetics normalization.

    Choice: MoCo v2's strengths (jitter 0.4 with p 0.8, blur p 0.5, sigma 0.1-2 at 224 px, here scaled
    to ``crop``); no hue jitter and a fixed order brightness -> contrast -> saturation."""
    if not torch.is_tensor(videos) or videos.ndim != 5 or videos.shape[-1] != 3:
        raise ValueError(f"augment_videos expects uint8 [N, T, H, W, 3], got {tuple(getattr(videos, 'shape', ()))}")
    n, t, h, w, _ = videos.shape
    c = int(crop_size)
    if c > h or c > w:
        raise ValueError(f"crop_size {c} is larger than the frames {h}x{w}")
    x = videos.permute(0, 1, 4, 2, 3).float().div_(255)  # [N, T, 3, H, W]
    if not train:
        y0, x0 = (h - c) // 2, (w - c) // 2
        x = x[..., y0:y0 + c, x0:x0 + c]
    else:
        g = generator
        tops = torch.randint(0, h - c + 1, (n,), generator=g).tolist()
        lefts = torch.randint(0, w - c + 1, (n,), generator=g).tolist()
        flips = (torch.rand(n, generator=g) < 0.5).tolist()
        jitter = (torch.rand(n, generator=g) < jitter_p).tolist()
        factors = 1 + jitter_strength * (2 * torch.rand(n, 3, generator=g) - 1)
        blur = (torch.rand(n, generator=g) < blur_p).tolist()
        sigmas = (0.1 + 1.9 * torch.rand(n, generator=g)) * c / 224
        gray_w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
        out = []
        for i in range(n):
            v = x[i, :, :, tops[i]:tops[i] + c, lefts[i]:lefts[i] + c]  # [T, 3, c, c]
            if flips[i]:
                v = v.flip(-1)
            if jitter[i]:
                b, con, s = factors[i].tolist()
                v = (v * b).clamp(0, 1)
                v = ((v - (v * gray_w).sum(1, keepdim=True).mean()) * con
                     + (v * gray_w).sum(1, keepdim=True).mean()).clamp(0, 1)
                gray = (v * gray_w).sum(1, keepdim=True)
                v = (gray + (v - gray) * s).clamp(0, 1)
            if blur[i] and float(sigmas[i]) > 0.05:
                v = _gaussian_blur(v, float(sigmas[i]))
            out.append(v)
        x = torch.stack(out)
    from tsplab.backbones import KINETICS_MEAN, KINETICS_STD  # lazily: torchvision loads slowly

    mean = torch.tensor(KINETICS_MEAN, dtype=x.dtype, device=x.device).view(1, 1, 3, 1, 1)
    std = torch.tensor(KINETICS_STD, dtype=x.dtype, device=x.device).view(1, 1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


# -------------------------------------------------------------------------------------- encoder
class PALModel(nn.Module):
    """``features`` (backbone F^b, ``[B, 3, L, S, S] -> [B, F]``) -> ``projection`` (F^n: Linear,
    ReLU, Linear to ``embed_dim``, MoCo v2's MLP head) -> ``temporal`` (F^t: Conv1d k3, ReLU, Conv1d
    k3 over the clip sequence, PAL §4.1) -> L2 norm."""

    def __init__(self, features: nn.Module, embed_dim: int = 128):
        super().__init__()
        self.features = features
        f = features.feature_dim
        self.projection = nn.Sequential(nn.Linear(f, f), nn.ReLU(inplace=True), nn.Linear(f, embed_dim))
        # Choice: "two-layer temporal convolutions with a kernel size of 3 followed by ReLU" read as
        # conv-ReLU-conv (a ReLU last would leave only non-negative features to L2-normalise);
        # padding 1 keeps one output per clip.
        self.temporal = nn.Sequential(nn.Conv1d(embed_dim, embed_dim, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv1d(embed_dim, embed_dim, 3, padding=1))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips`` float ``[B, J, 3, L, S, S]`` (J clips per video) -> unit clip features ``[B, J, D]``."""
        b, j = clips.shape[:2]
        z = self.projection(self.features(clips.flatten(0, 1))).view(b, j, -1)  # PAL eq. (5), F^n o F^b
        z = self.temporal(z.transpose(1, 2)).transpose(1, 2)  # F^t over the chronological clips
        return F.normalize(z, dim=-1)


def region_features(clip_features: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """PAL eq. (6): the mean of ``clip_features`` ``[B, J, D]`` over clips ``[start, end)`` per row
    (``start``/``end`` int ``[B]``), L2-normalised -> ``[B, D]``.

    Choice: re-normalised, as eq. (7)'s dot products are cosine similarities in MoCo."""
    j = torch.arange(clip_features.shape[1], device=clip_features.device)
    mask = ((j[None] >= start[:, None]) & (j[None] < end[:, None])).to(clip_features.dtype)
    if bool((mask.sum(1) == 0).any()):
        raise ValueError("an empty region: every region needs start < end")
    mean = (clip_features * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return F.normalize(mean, dim=-1)


def info_nce(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float):
    """PAL eq. (7): ``-log exp(q.k+/tau) / (exp(q.k+/tau) + sum_i exp(q.k_i/tau))`` averaged over the
    batch; ``query``/``key`` ``[B, D]`` (key detached), ``queue`` ``[K, D]`` negatives. Returns
    ``(loss, logits [B, 1 + K])`` with the positive in column 0."""
    positive = (query * key).sum(1, keepdim=True)
    negatives = query @ queue.t()
    logits = torch.cat([positive, negatives], dim=1).float() / temperature
    target = torch.zeros(len(query), dtype=torch.int64, device=query.device)
    return F.cross_entropy(logits, target), logits


# --------------------------------------------------------------------------------------- method
class PAL(PretrainMethod):
    name = "pal"
    head_names = ("region",)
    # The paper's optimiser on top of the paper-default preset; queue and momentum sized for the
    # short synthetic runs (see PAL_SYNTHETIC_OVERRIDES).
    preset_overrides = {"tsp": PAL_OPTIMIZER_OVERRIDES, "synthetic": PAL_SYNTHETIC_OVERRIDES}

    def __init__(self, config):
        super().__init__(config)
        c = config
        if c.pal_background not in BACKGROUNDS:
            raise ValueError(f"pal_background={c.pal_background!r}; valid: {', '.join(BACKGROUNDS)}")
        lo, hi = (float(v) for v in c.pal_beta_range)
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f"pal_beta_range={tuple(c.pal_beta_range)} must satisfy 0 <= low <= high <= 1")
        for name in ("pal_clips_per_video", "pal_max_region_clips", "pal_max_stride", "pal_queue_size",
                     "pal_embed_dim", "pal_samples_per_video"):
            if int(getattr(c, name)) < 1:
                raise ValueError(f"{name}={getattr(c, name)} must be >= 1")
        if not 0 <= c.pal_key_momentum < 1 or c.pal_temperature <= 0:
            raise ValueError(f"pal_key_momentum={c.pal_key_momentum} must be in [0, 1) and "
                             f"pal_temperature={c.pal_temperature} > 0")
        self.key_model: nn.Module | None = None
        self.queue: torch.Tensor | None = None
        self.queue_ptr = 0
        self._pending_keys: torch.Tensor | None = None

    def build_datasets(self, data: PretrainData):
        c = self.config
        common = dict(clip_length_frames=data.clip_length_frames, frame_side=c.resize_short_side, config=c,
                      seed=c.seed)
        train = PALDataset(data.train_table, data.video_dir, data.frames, fixed=False, **common)
        valid = PALDataset(data.valid_table, data.video_dir, data.frames, fixed=True, **common)
        return train, valid

    def build_model(self, backbone: nn.Module, data: PretrainData) -> nn.Module:
        return PALModel(backbone, int(self.config.pal_embed_dim))

    # -- the momentum key encoder and its queue (MoCo)
    def attach(self, model: nn.Module) -> None:
        """Make the key encoder (a frozen copy of ``model``) and the queue of unit random negatives
        ``[pal_queue_size, pal_embed_dim]`` (seeded by ``config.seed``, as MoCo starts)."""
        self.key_model = copy.deepcopy(model)
        for p in self.key_model.parameters():
            p.requires_grad_(False)
        device = next(model.parameters()).device
        g = torch.Generator().manual_seed(int(self.config.seed) + 17)
        queue = torch.randn(int(self.config.pal_queue_size), int(self.config.pal_embed_dim), generator=g)
        self.queue = F.normalize(queue, dim=1).to(device)
        self.queue_ptr = 0
        self._pending_keys = None

    def setup(self, ctx) -> None:
        self.attach(ctx.model)

    def _require_key_model(self):
        if self.key_model is None:
            raise RuntimeError("PAL's key encoder does not exist yet: call method.setup(ctx) or method.attach(model)")

    @torch.no_grad()
    def momentum_update(self, model: nn.Module) -> None:
        """``key = m * key + (1 - m) * query`` for every parameter (MoCo eq. 2, m = pal_key_momentum).
        Choice (as MoCo): BN running statistics of the key encoder come from its own forward passes."""
        self._require_key_model()
        m = float(self.config.pal_key_momentum)
        for pk, pq in zip(self.key_model.parameters(), model.parameters()):
            pk.mul_(m).add_(pq.detach(), alpha=1 - m)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest queue rows by ``keys`` ``[B, D]`` (a ring buffer, MoCo's FIFO)."""
        keys = keys.detach().to(self.queue.device, self.queue.dtype)
        size = len(self.queue)
        keys = keys[-size:]
        rows = (self.queue_ptr + torch.arange(len(keys))) % size
        self.queue[rows.to(self.queue.device)] = keys
        self.queue_ptr = int((self.queue_ptr + len(keys)) % size)

    def after_optimizer_step(self, ctx) -> None:
        self.momentum_update(ctx.model)
        if self._pending_keys is not None:
            keys = self._pending_keys
            if torch.distributed.is_available() and torch.distributed.is_initialized() \
                    and torch.distributed.get_world_size() > 1:
                # Every process enqueues the keys of all processes (MoCo's concat_all_gather), so the
                # queues stay identical.
                parts = [torch.empty_like(keys) for _ in range(torch.distributed.get_world_size())]
                torch.distributed.all_gather(parts, keys.contiguous())
                keys = torch.cat(parts)
            self.enqueue(keys)
            self._pending_keys = None

    def state_dict(self) -> dict:
        self._require_key_model()
        return {"key_model": self.key_model.state_dict(), "queue": self.queue.detach().cpu(),
                "queue_ptr": self.queue_ptr}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        self._require_key_model()
        self.key_model.load_state_dict(state["key_model"])
        self.queue = state["queue"].to(self.queue.device)
        self.queue_ptr = int(state["queue_ptr"])

    # -- one batch
    def _clips(self, videos: torch.Tensor, train: bool, generator) -> torch.Tensor:
        """uint8 ``[B, T, S, S, 3]`` -> augmented ``[B, J, 3, L, c, c]``."""
        L = self.config.clip_length_frames
        x = augment_videos(videos, self.config.crop_size, train=train, generator=generator)  # [B, T, 3, c, c]
        b, t = x.shape[:2]
        if t % L:
            raise ValueError(f"synthesized videos of {t} frames are not whole clips of {L}")
        return x.view(b, t // L, L, *x.shape[2:]).transpose(2, 3)

    def step(self, model, batch, *, train, generator=None) -> StepOutput:
        self._require_key_model()
        videos, region = batch["clip"], batch["region"]  # [B, 2, T, S, S, 3], [B, 2, 2]
        # Each synthesized video has its own augmentation (drawn query first, then key).
        xq = self._clips(videos[:, 0], train, generator)
        xk = self._clips(videos[:, 1], train, generator)
        q = region_features(model(xq), region[:, 0, 0], region[:, 0, 1])  # r_q = r_{i->n}
        with torch.no_grad():
            # Choice: the key encoder runs in the mode of the step (BN batch statistics in training,
            # as MoCo's; no shuffle BN in one process).
            self.key_model.train(train)
            k = region_features(self.key_model(xk), region[:, 1, 0], region[:, 1, 1])  # r_k+ = r_{i->m}
        # The queue changes only in after_optimizer_step, after backward (autograd would catch an
        # earlier in-place change).
        loss, _ = info_nce(q, k, self.queue, float(self.config.pal_temperature))
        if train:
            self._pending_keys = k.detach()
        # Label-free accuracy: is each query's own key the most similar of the batch's keys?
        sim = q.detach() @ k.t()
        correct = (sim.argmax(1) == torch.arange(len(q), device=q.device)).sum()
        count = torch.tensor(len(q), device=q.device)
        return StepOutput(loss=loss, head_losses={"region": loss.detach()}, head_correct={"region": correct},
                          head_count={"region": count})
