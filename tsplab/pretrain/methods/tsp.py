"""TSP: temporally-sensitive pretraining (Alwassel et al. 2021, §3.3).

Two heads on the clip feature ``f = E(X)``:

- action label head ``fc1`` (Linear F -> C) on ``f``, trained on foreground clips only;
- temporal region head ``fc2`` (Linear 2F -> 2) on ``f ⊕ f_g``, where ``f_g`` is the video's global
  video feature (GVF, max-pooled clip features of the whole video), or on ``f`` alone without GVF.

Loss, TSP eq. (1): ``alpha_r * CE(region) + alpha_c * CE(action)`` for foreground clips, and
``alpha_r * CE(region)`` for background clips (their action target is -1 and ignored).

The options (:class:`TSPOptions`: the heads' weights and the GVF) are ``config.options``.

GVF modes (``gvf_mode``):

- ``frozen`` (the paper): computed once from the *initial* encoder over each video's clip grid,
  pooled, stored in ``gvf_initial_<pooling>.h5`` in the run folder (keyed by video, the layout of
  TSP's released GVF files) and reused if present; the option ``gvf_file`` points at an existing file
  instead (e.g. TSP's released ``r2plus1d_34-max_gvf.h5``). A fresh run in the same folder keeps the
  file when the earlier run computed it with the same settings (``TSP.reuses_file``).
- ``epoch`` (TSP §3.3, suggested future work): recomputed with the current encoder after every
  epoch, before validation.
- ``momentum`` (TSP §3.3: "a slowly progressing global encoder driven by a momentum update with the
  local feature encoder", as in MoCo): an exponential moving average of the encoder,
  ``E_m <- m E_m + (1 - m) E`` after every optimizer step, supplies the GVFs; the table is refreshed
  from ``E_m`` after every epoch (and every ``gvf_refresh_steps`` steps if > 0).

  How it stays cheap: the max over a video's clip features needs every clip of the video. Updating
  the table online from the clips a batch happens to contain would need a per-video, per-clip
  feature memory (ActivityNet: ~10k videos x ~110 clips x 512 floats, GBs) or would turn the max
  into a running max that never forgets the features of old encoders. Refreshing from the EMA
  encoder costs one forward pass over non-overlapping clips per refresh (no backward, a fraction
  of an epoch's work) and, thanks to the EMA, the conditioning vector drifts slowly between
  refreshes, which is MoCo's point (consistency of what the head is conditioned on).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
import warnings

import numpy as np
import torch
import torch.nn as nn

from tsplab.config import setting
from tsplab.distributed import rank_and_world_size
from tsplab.pretrain.methods.base import (PretrainData, PretrainMethod, StepOutput, TrainContext,
                                          head_accuracy_counts, masked_cross_entropy)
from tsplab.pretrain.methods.tac import clip_transform, segment_datasets

GVF_POOLINGS = ("max", "avg", "none")
GVF_MODES = ("frozen", "epoch", "momentum")
#: What the frozen GVF file depends on: loop settings (encoder, data, clips) and TSP options.
GVF_LOOP_INPUTS = ("backbone", "weights", "seed", "dataset_dir", "annotations", "video_dir",
                   "clip_length_frames", "frame_rate", "resize_short_side", "crop_size")
GVF_OPTION_INPUTS = ("gvf_stride_frames", "gvf_pooling")


@dataclasses.dataclass
class TSPOptions:
    """TSP's options (``method="tsp"``): the heads' loss weights and the global video feature."""

    alpha_c: float = setting(1.0, rule=">=0")  # eq. (1) weight of the action label head (0: TSP w/o action label)
    alpha_r: float = setting(1.0, rule=">=0")  # eq. (1) weight of the temporal region head (0: w/o temporal region)
    gvf_pooling: str = setting("max", choices=GVF_POOLINGS)  # none: TSP w/o GVF
    gvf_mode: str = setting("frozen", choices=GVF_MODES)  # see the module docstring
    gvf_momentum: float = setting(0.99, rule="[0,1)")  # EMA factor per optimizer step of the momentum encoder
    # momentum mode: also refresh the GVFs every this many steps (0: per epoch)
    gvf_refresh_steps: int = setting(0, rule=">=0")
    gvf_stride_frames: int = setting(0, rule=">=0")  # stride of the clip grid a GVF pools over (0: the clip length)
    gvf_file: str = ""  # an existing GVF h5 file to use instead of computing the frozen GVFs

    def check(self, config=None) -> None:
        """The rule between options (``config``: the loop's, unused): at least one head weighs."""
        if self.alpha_c == self.alpha_r == 0:
            raise ValueError(f"alpha_c: {self.alpha_c} with alpha_r={self.alpha_r}: at least one must be > 0")


class TSPModel(nn.Module):
    """``features`` (backbone, ``[B, 3, T, H, W] -> [B, F]``), ``fc1`` action head ``[B, F] -> [B, C]``,
    ``fc2`` region head ``[B, F + G] -> [B, 2]`` with ``G = gvf_dim`` (F with a GVF, 0 without):
    the layout of TSP's released two-head checkpoints."""

    def __init__(self, features: nn.Module, num_classes: int, gvf_dim: int):
        super().__init__()
        self.features = features
        self.gvf_dim = int(gvf_dim)
        self.fc1 = nn.Linear(features.feature_dim, num_classes)
        self.fc2 = nn.Linear(features.feature_dim + self.gvf_dim, 2)

    def forward(self, clip: torch.Tensor, gvf: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``clip`` float [B, 3, T, H, W], ``gvf`` [B, G] (None when G = 0) ->
        ``{"action": [B, C], "region": [B, 2]}`` logits."""
        f = self.features(clip)
        if self.gvf_dim:
            if gvf is None:
                raise ValueError("this TSP model's region head takes a GVF; pass gvf=[B, G]")
            region_input = torch.cat([f, gvf.to(f.dtype)], dim=1)  # TSP §3.3: f ⊕ f_g
        else:
            region_input = f
        return {"action": self.fc1(f), "region": self.fc2(region_input)}


def tsp_loss(logits: dict[str, torch.Tensor], action_label: torch.Tensor, region_label: torch.Tensor,
             alpha_c: float = 1.0, alpha_r: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """TSP eq. (1) over a batch: ``(loss, {"action": L_c, "region": L_r})``.

    ``L_c`` is the cross-entropy averaged over the foreground clips only (background targets are -1),
    ``L_r`` over all clips, as TSP's code does (one ``CrossEntropyLoss(ignore_index=-1)`` per head,
    summed with the alphas). Averaged over the batch, eq. (1) itself would weigh ``L_c`` by the
    foreground share of the batch (about 1/2 with balanced sampling); we follow the released code,
    which is what produced the paper's numbers.
    """
    loss_c = masked_cross_entropy(logits["action"], action_label)
    loss_r = masked_cross_entropy(logits["region"], region_label)
    return alpha_r * loss_r + alpha_c * loss_c, {"action": loss_c, "region": loss_r}


def compute_video_gvfs(encoder: nn.Module, frames, video_paths: list, *, clip_length_frames: int,
                       stride_frames: int, transform, pooling: str, batch_size: int, device,
                       autocast_dtype: torch.dtype | None = None, progress: bool = True,
                       desc: str = "GVF") -> np.ndarray:
    """GVFs ``[V, F]`` float32 of ``video_paths``: each video's clip grid (``stride_frames`` apart) is
    encoded by ``encoder`` in eval mode (``tsplab.features.encoding.encode_frames``) and pooled over time
    (``tsplab.features.pool_gvf``).

    Under torchrun the videos are split between the processes and the results gathered, so every
    process returns the whole table. The encoder's train/eval mode is restored afterwards.
    """
    from tqdm.auto import tqdm

    from tsplab.features import pool_gvf
    from tsplab.features.encoding import encode_frames

    rank, world_size = rank_and_world_size()
    was_training = encoder.training
    mine = list(range(rank, len(video_paths), world_size))
    local: dict[int, np.ndarray] = {}
    cast = (torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype)
            if autocast_dtype is not None else contextlib.nullcontext())
    try:
        with cast:
            for i in tqdm(mine, desc=desc, unit="video", disable=not progress or rank != 0, leave=False):
                feats = encode_frames(encoder, frames.get(video_paths[i]), clip_length_frames,
                                      stride_frames, transform, batch_size=batch_size, device=device)
                local[i] = pool_gvf(feats, pooling)
    finally:
        encoder.train(was_training)
    if world_size > 1:
        import torch.distributed as dist

        gathered: list = [None] * world_size
        dist.all_gather_object(gathered, local)
        for part in gathered:
            local.update(part)
    return np.stack([local[i] for i in range(len(video_paths))]).astype(np.float32)


class TSP(PretrainMethod):
    name = "tsp"
    head_names = ("action", "region")
    Options = TSPOptions
    run_files = ("gvf_initial_*.h5",)

    def __init__(self, config):
        super().__init__(config)  # checks the options (TSPOptions.check)
        self.use_gvf = self.options.gvf_pooling != "none"
        self._transforms = {True: clip_transform(config, True), False: clip_transform(config, False)}
        self.gvf: dict[str, torch.Tensor] = {}  # "train"/"valid" -> [V, F] on the training device
        self.ema: nn.Module | None = None
        self._ctx: TrainContext | None = None
        #: Seconds spent computing GVFs (setup and refreshes): the loop's ``side_seconds``.
        self.side_seconds = 0.0

    @property
    def selection_heads(self) -> tuple[str, ...]:
        # A head with weight 0 is not trained (TSP w/o action label / w/o temporal region): its
        # accuracy says nothing about the encoder, so model selection averages the trained heads.
        alphas = {"action": self.options.alpha_c, "region": self.options.alpha_r}
        return tuple(h for h in self.head_names if alphas[h] > 0)

    def build_datasets(self, data: PretrainData):
        return segment_datasets(self.config, data, foreground_only=False)

    def build_model(self, backbone: nn.Module, data: PretrainData) -> nn.Module:
        return TSPModel(backbone, len(data.labels), backbone.feature_dim if self.use_gvf else 0)

    # -------------------------------------------------------------------------------- files
    def check_files(self) -> None:
        from tsplab.errors import InputError
        from tsplab.runs import resolve

        if self.options.gvf_file and not resolve(self.options.gvf_file).is_file():
            raise InputError(f"gvf_file: {resolve(self.options.gvf_file)}: file not found; give a GVF h5 "
                             "file (tsplab gvf) or leave it empty to compute the GVFs")

    @classmethod
    def reuses_file(cls, name: str, old_config, new_config) -> bool:
        """A frozen-GVF file stays when the earlier run computed it with this run's settings."""
        if not name.startswith("gvf_initial_") or not isinstance(old_config.options, TSPOptions):
            return False
        pairs = [(getattr(old_config, k), getattr(new_config, k)) for k in GVF_LOOP_INPUTS]
        pairs += [(getattr(old_config.options, k), getattr(new_config.options, k)) for k in GVF_OPTION_INPUTS]
        return all(old == new for old, new in pairs)

    # -------------------------------------------------------------------------------- GVF tables
    def _videos(self, ctx: TrainContext) -> dict[str, list]:
        return {"train": ctx.train_dataset.video_paths(), "valid": ctx.valid_dataset.video_paths()}

    def _names(self, ctx: TrainContext) -> dict[str, list[str]]:
        return {"train": list(ctx.train_dataset.videos["video"]),
                "valid": list(ctx.valid_dataset.videos["video"])}

    def _compute(self, ctx: TrainContext, encoder: nn.Module, which=("train", "valid")) -> dict:
        start = time.perf_counter()
        cfg, opt = self.config, self.options
        paths = self._videos(ctx)
        out = {}
        for split in which:
            out[split] = compute_video_gvfs(
                encoder, ctx.data.frames, paths[split], clip_length_frames=ctx.data.clip_length_frames,
                stride_frames=opt.gvf_stride_frames or ctx.data.clip_length_frames,
                transform=self._transforms[False], pooling=opt.gvf_pooling,
                batch_size=cfg.batch_size, device=ctx.dist.device, autocast_dtype=ctx.autocast_dtype,
                progress=cfg.progress, desc=f"GVF ({split})")
        self.side_seconds += time.perf_counter() - start
        return out

    def _set_tables(self, tables: dict, device) -> None:
        for split, table in tables.items():
            self.gvf[split] = torch.as_tensor(table, dtype=torch.float32).to(device)

    def _frozen_tables(self, ctx: TrainContext) -> dict:
        """The frozen GVFs: read from ``gvf_file`` or the run folder's file, computing (from the
        initial encoder) and writing whatever the file lacks."""
        from tsplab.datasets import normalize_video_id
        from tsplab.distributed import barrier, broadcast_object
        from tsplab.features import read_gvf_h5, write_gvf_h5
        from tsplab.runs import resolve

        opt = self.options
        names = self._names(ctx)
        user_file = bool(opt.gvf_file)
        path = resolve(opt.gvf_file) if user_file else ctx.output_dir / f"gvf_initial_{opt.gvf_pooling}.h5"
        # Keyed by normalised id (TSP's released files key by v_<id>, annotations by <id>).
        stored = read_gvf_h5(path, by_id=True) if path.is_file() else {}
        names = {s: [normalize_video_id(n) for n in names[s]] for s in names}
        missing = {s: [n for n in names[s] if n not in stored] for s in names}
        if user_file and any(missing.values()):
            lacking = missing["train"] + missing["valid"]
            raise ValueError(f"{path}: GVF file lacks {len(lacking)} videos of the segment tables, "
                             f"e.g. {lacking[:5]}")
        if any(missing.values()):
            computed = self._compute(ctx, ctx.model.features)
            for split in names:
                stored.update(zip(names[split], computed[split]))
            if ctx.dist.is_main:
                write_gvf_h5(path, stored)
            barrier()
        # Every process uses rank 0's numbers (read from the same file, identical anyway).
        tables = {s: np.stack([stored[n] for n in names[s]]) for s in names}
        return broadcast_object(tables)

    def setup(self, ctx: TrainContext) -> None:
        self._ctx = ctx
        if not self.use_gvf:
            return
        self._set_tables(self._frozen_tables(ctx), ctx.dist.device)
        dim = self.gvf["train"].shape[1]
        if dim != ctx.model.gvf_dim:
            raise ValueError(f"GVFs have {dim} dimensions but the region head expects "
                             f"{ctx.model.gvf_dim} (the backbone's feature size)")
        if self.options.gvf_mode == "momentum":
            self.ema = copy.deepcopy(ctx.model.features).eval()
            for p in self.ema.parameters():
                p.requires_grad_(False)

    @torch.no_grad()
    def _momentum_update(self, encoder: nn.Module) -> None:
        m = self.options.gvf_momentum
        for ema_p, p in zip(self.ema.parameters(), encoder.parameters()):
            ema_p.mul_(m).add_(p.detach(), alpha=1.0 - m)
        for ema_b, b in zip(self.ema.buffers(), encoder.buffers()):
            if ema_b.dtype.is_floating_point:  # BN running statistics: averaged like the weights
                ema_b.mul_(m).add_(b, alpha=1.0 - m)
            else:  # BN's num_batches_tracked
                ema_b.copy_(b)

    def after_optimizer_step(self, ctx: TrainContext) -> None:
        if self.ema is None:
            return
        self._momentum_update(ctx.model.features)
        every = self.options.gvf_refresh_steps
        if every and ctx.global_step % every == 0:
            self._set_tables(self._compute(ctx, self.ema), ctx.dist.device)

    def on_train_epoch_end(self, ctx: TrainContext) -> None:
        if not self.use_gvf or self.options.gvf_mode == "frozen":
            return
        encoder = self.ema if self.options.gvf_mode == "momentum" else ctx.model.features
        self._set_tables(self._compute(ctx, encoder), ctx.dist.device)

    def state_dict(self) -> dict:
        if not self.use_gvf or self.options.gvf_mode == "frozen":
            return {}  # the frozen GVFs are the h5 file in the run folder
        state = {f"gvf_{s}": t.detach().cpu() for s, t in self.gvf.items()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        device = next(iter(self.gvf.values())).device if self.gvf else "cpu"
        for split in ("train", "valid"):
            if f"gvf_{split}" in state:
                self.gvf[split] = state[f"gvf_{split}"].to(device)
        if "ema" in state:
            if self.ema is None:
                warnings.warn("checkpoint holds a momentum encoder but gvf_mode is not 'momentum'; ignored")
            else:
                self.ema.load_state_dict(state["ema"])

    # -------------------------------------------------------------------------------- one batch
    def step(self, model, batch, *, train, generator=None) -> StepOutput:
        x = self._transforms[train](batch["clip"], generator)
        gvf = self.gvf["train" if train else "valid"][batch["video_index"]] if self.use_gvf else None
        logits = model(x, gvf)
        loss, head_losses = tsp_loss(logits, batch["action_label"], batch["region_label"],
                                     self.options.alpha_c, self.options.alpha_r)
        correct, count = {}, {}
        for head, target in (("action", batch["action_label"]), ("region", batch["region_label"])):
            correct[head], count[head] = head_accuracy_counts(logits[head], target)
        return StepOutput(loss=loss, head_losses={h: v.detach() for h, v in head_losses.items()},
                          head_correct=correct, head_count=count)
