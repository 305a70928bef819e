"""PAL: unsupervised pretraining by Pseudo Action Localization (Zhang et al., UP-TAL, CVPR 2022).

From one video ``v_i`` two pseudo-action regions (up to 6 clips each, frame stride drawn from 1-4:
scale-aware sampling) are pasted, blended with ``beta ~ U[0.6, 1]``, at random clip positions into two
other videos ``v_n`` and ``v_m`` used as background (PAL eq. 4, §3.2.1); each synthesized video gets
its own temporally consistent spatial augmentation. The encoder (backbone -> non-linear projection ->
temporal embedding head of two temporal convolutions, §3.2.2) gives one L2-normalised feature per clip;
the region feature is the average of the clip features inside the pasted region (the equi-
transformation G, eq. 6); InfoNCE (eq. 7, tau 0.07) pulls the two regions of ``v_i`` together against
negatives from a MoCo queue filled by a momentum key encoder (§4.1, following MoCo v2). The synthetic
benchmark's short runs take the step's own keys as negatives instead (``negatives="batch"``, see
``PAL_SYNTHETIC_OVERRIDES``). Keys of the
query's own source video are left out of its negatives (the paper's queue never holds one; see
:meth:`PAL.step`).

No labels are used: the datasets read only the videos of the segment tables. The method's one "head"
is ``region``: the top-1 accuracy of retrieving each query region's positive key among the batch's
keys, a label-free number the loop's best-epoch selection uses.

``pasting=False`` (:class:`PALOptions`) is the MoCo-v2-style baseline of PAL Table 1 on the same
encoder, data, budget and negatives: the two views are one region of a source video, nothing pasted,
differing only in their augmentation (instance discrimination).

PAL released no code. The choices the paper leaves open are marked ``# Choice:`` below and in
``tsplab.pretrain.methods.pal_data`` (the pasting and the augmentation, with ``PALDataset``).
The method's options are :class:`PALOptions` (``--set queue_size=4096``; the paper's values).
The paper's optimisation and clip (Adam, lr 1e-4, weight decay 1e-5, ÷10 on a validation-loss
plateau, 8-frame clips) is ``PAL_PAPER_OVERRIDES``, which ``tsplab.pretrain.recipes.pretrain_config``
applies under every recipe; ``PAL_SYNTHETIC_OVERRIDES`` sizes the queue and momentum for the
synthetic benchmark's short runs and is applied on the ``synthetic`` recipe. The key encoder's batch
norm is shuffled (MoCo §3.3; :meth:`PAL.encode_keys`).
``batch_size`` counts synthesized *pairs* (2 x J clips each), so the loop's ``clips_per_s`` column
counts pairs too.
"""
from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from tsplab.config import setting
from tsplab.pretrain.methods.base import PretrainData, PretrainMethod, StepOutput
from tsplab.pretrain.methods.pal_data import PALDataset, augment_videos

BACKGROUNDS = ("different", "same")
NEGATIVES = ("queue", "batch")


@dataclasses.dataclass
class PALOptions:
    """PAL's options (``method="pal"``): synthesis (paste) and contrast (queue). Defaults: PAL §4.1."""

    # J clips of clip_length_frames in each synthesized video (PAL §4.1: 8 of 8)
    clips_per_video: int = setting(8, rule=">0")
    max_region_clips: int = setting(6, rule=">0")  # longest pseudo-action region, in clips (PAL §4.1)
    max_stride: int = setting(4, rule=">0")  # scale-aware sampling: frame stride drawn from 1..this (PAL §4.1)
    beta_range: tuple = setting((0.6, 1.0), rule="[0,1]")  # blending ratio beta ~ U[low, high] (PAL §3.2.1, Table 5)
    queue_size: int = setting(16384, rule=">0")  # MoCo negatives queue (PAL §4.1)
    temperature: float = setting(0.07, rule=">0")  # tau of PAL eq. (7)
    key_momentum: float = setting(0.999, rule="[0,1)")  # momentum key encoder (MoCo v2, which PAL follows)
    embed_dim: int = setting(128, rule=">0")  # projection / temporal-embedding width (MoCo v2's 128)
    samples_per_video: int = setting(1, rule=">0")  # synthesized pairs per source video per epoch
    dense: bool = True  # Table 3: region of several clips (False: one clip)
    scale_aware: bool = True  # Table 3: stride drawn from 1..max_stride (False: stride 1)
    paste: bool = True  # Table 3: paste onto background videos (False: the region alone)
    # False: the MoCo-v2-style control (PAL's baseline, Table 1: instance discrimination), nothing
    # pasted: one region of a source video (J clips, or 1 when not dense; its stride as drawn) is read
    # once and its two views differ only in their augmentation. Same encoder, data, steps and
    # negatives as PAL. ``paste``, ``background`` and ``beta_range`` do not apply then. (``paste=False``
    # is Table 3's ablation instead: two regions drawn apart, each alone.)
    pasting: bool = True
    background: str = setting("different", choices=BACKGROUNDS)  # Table 3: v_n != v_m, or the same video
    # Shuffled BN on one device (MoCo §3.3; see PAL.step): both encoders normalise each of this many
    # sub-batches of videos with its own statistics, the key encoder on a shuffled batch. 1: plain BN.
    bn_splits: int = setting(4, rule=">0")
    # Where eq. (7)'s negatives come from: "queue" (MoCo's memory queue, PAL §4.1) or "batch" (the
    # other keys of the same step, all from one key-encoder state, as MoCo v3 does without a queue).
    negatives: str = setting("queue", choices=NEGATIVES)

    def check(self, config=None) -> None:
        """The rule between the two ends of ``beta_range`` (``config``: the loop's, unused)."""
        if len(self.beta_range) != 2 or self.beta_range[0] > self.beta_range[1]:
            raise ValueError(f"beta_range: {list(self.beta_range)} must be [low, high] with "
                             "0 <= low <= high <= 1")

#: PAL §4.1 under every recipe: Adam, initial learning rate 1e-4 for the whole encoder (stem
#: included: PAL trains from scratch), weight decay 1e-5, the rate divided by 10 "when the validation
#: loss saturates" (``lr_schedule="plateau"``, ``tsplab.pretrain.optim.WarmupPlateau``), and "8 frames per
#: clip". Choices the paper leaves open: no warm-up (it names none) and a patience of 2 epochs (it
#: gives none; its runs last 100-200 epochs, the benchmark's 4, so this lowers the rate only after a
#: real stall).
PAL_PAPER_OVERRIDES = dict(optimizer="adam", backbone_lr=1e-4, fc_lr=1e-4, stem_lr=1e-4, weight_decay=1e-5,
                           lr_schedule="plateau", lr_gamma=0.1, lr_milestones=(), lr_patience_epochs=2,
                           warmup_epochs=0.0, clip_length_frames=8)

#: Settings for the synthetic benchmark (with ``PRESETS["synthetic"]``), not from the paper: its runs
#: take ~100 optimizer steps, where MoCo's m = 0.999 would leave the key encoder ~90 % at its random
#: initialisation (0.999 ** 100), and a 16,384-key queue would hold mostly its random initial rows (a
#: trivially easy contrast; README, "PAL learns on the benchmark"). So:
#: m = 0.99 (MoCo's ablation shows it works too), two pairs per video, 16 pairs (256 clips) per step,
#: the step's own keys as negatives (below; ``negatives="queue"`` uses a queue about one epoch of
#: keys long) and 6 epochs. The deviation from PAL's optimiser: Adam at 1e-3, not 1e-4, the smallest
#: rate at which a randomly initialised encoder learned the pretext in the benchmark's few steps.
#: With MoCo's queue the loss fell by telling the fast-drifting key encoder's fresh keys from the
#: queue's stale ones, not by telling videos apart; the step's own keys as negatives (MoCo v3's choice
#: without a queue) come from the same key-encoder state as the positive, so that shortcut is gone and
#: the loss is the in-batch retrieval the accuracy measures. The measurements behind these choices are
#: in the README ("PAL learns on the benchmark").
PAL_SYNTHETIC_OVERRIDES = dict(queue_size=512, key_momentum=0.99, samples_per_video=2, batch_size=16,
                               backbone_lr=1e-3, fc_lr=1e-3, stem_lr=1e-3, negatives="batch", epochs=6)


# -------------------------------------------------------------------------------------- encoder
class PALModel(nn.Module):
    """``features`` (backbone F^b, ``[B, 3, L, S, S] -> [B, F]``) -> ``projection`` (F^n: Linear,
    ReLU, Linear to ``embed_dim``, MoCo v2's MLP head) -> ``temporal`` (F^t: Conv1d k3, ReLU, Conv1d
    k3 over the clip sequence, PAL §4.1) -> L2 norm.

    ``bn_splits`` > 1: in training the backbone runs on that many consecutive sub-batches of videos
    (each video's clips stay together), so its batch norm takes each sub-batch's statistics, as on
    ``bn_splits`` devices (MoCo's one-GPU emulation of its per-GPU BN; see ``PAL.step``). One forward
    call of this module, so DistributedDataParallel sees one forward per step."""

    def __init__(self, features: nn.Module, embed_dim: int = 128, bn_splits: int = 1):
        super().__init__()
        self.features = features
        self.bn_splits = int(bn_splits)
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
        if self.training and self.bn_splits > 1 and b > 1:
            groups = clips.tensor_split(min(self.bn_splits, b))  # consecutive videos, sizes differing by <= 1
            h = torch.cat([self.features(group.flatten(0, 1)) for group in groups])
        else:
            h = self.features(clips.flatten(0, 1))
        z = self.projection(h).view(b, j, -1)  # PAL eq. (5), F^n o F^b
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


def info_nce(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float,
             exclude: torch.Tensor | None = None):
    """PAL eq. (7): ``-log exp(q.k+/tau) / (exp(q.k+/tau) + sum_i exp(q.k_i/tau))`` averaged over the
    batch; ``query``/``key`` ``[B, D]`` (key detached), ``queue`` ``[K, D]`` negatives; ``exclude``
    bool ``[B, K]``: queue rows left out of a query's sum (keys of its own source video, see
    ``PAL.step``). Returns ``(loss, logits [B, 1 + K])`` with the positive in column 0 (excluded
    rows at -inf)."""
    positive = (query * key).sum(1, keepdim=True)
    negatives = (query @ queue.t()).float()
    if exclude is not None:
        negatives = negatives.masked_fill(exclude, float("-inf"))
    logits = torch.cat([positive.float(), negatives], dim=1) / temperature
    target = torch.zeros(len(query), dtype=torch.int64, device=query.device)
    return F.cross_entropy(logits, target), logits


def retrieval_correct(query: torch.Tensor, key: torch.Tensor, videos: torch.Tensor | None = None) -> torch.Tensor:
    """The label-free accuracy's count: queries ``[B, D]`` whose own key is the most similar of the
    batch's keys ``[B, D]``. Other keys of the query's source video (``videos`` int ``[B]``; two
    pairs of one video in a batch) are left out: they are not wrong answers. Returns an int scalar."""
    sim = query @ key.t()
    if videos is not None:
        same = videos[:, None] == videos[None]
        sim = sim.masked_fill(same & ~torch.eye(len(videos), dtype=torch.bool, device=sim.device), float("-inf"))
    return (sim.argmax(1) == torch.arange(len(query), device=query.device)).sum()


def _all_gather(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``[B, ...]`` of every process, concatenated in rank order (MoCo's concat_all_gather)."""
    parts = [torch.empty_like(x) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)


# --------------------------------------------------------------------------------------- method
class PAL(PretrainMethod):
    name = "pal"
    head_names = ("region",)
    # The paper's optimiser, schedule and clip under every recipe; queue and momentum sized for the
    # short synthetic runs (see PAL_SYNTHETIC_OVERRIDES).
    recipe_overrides = {"tsp": PAL_PAPER_OVERRIDES, "synthetic": {**PAL_PAPER_OVERRIDES, **PAL_SYNTHETIC_OVERRIDES}}

    Options = PALOptions

    def __init__(self, config):
        super().__init__(config)  # checks the options (PALOptions.check)
        self.key_model: nn.Module | None = None
        self.queue: torch.Tensor | None = None
        self.queue_video: torch.Tensor | None = None  # [K] source video row of each queue key, -1: none
        self.queue_ptr = 0
        self._pending_keys: torch.Tensor | None = None
        self._pending_videos: torch.Tensor | None = None

    def build_datasets(self, data: PretrainData):
        c = self.config
        common = dict(clip_length_frames=data.clip_length_frames, frame_side=c.resize_short_side,
                      options=self.options, seed=c.seed)
        train = PALDataset(data.train_table, data.video_dir, data.frames, fixed=False, **common)
        # One pair per video in validation: its batches are not shuffled, so with samples_per_video
        # = 2 every batch held each source video twice, and a query's "wrong" answer was as often
        # the other pair of its own video (retrieval could not pass ~0.5 while chance stayed 1/16).
        common["options"] = dataclasses.replace(self.options, samples_per_video=1)
        valid = PALDataset(data.valid_table, data.video_dir, data.frames, fixed=True, **common)
        return train, valid

    def build_model(self, backbone: nn.Module, data: PretrainData) -> nn.Module:
        return PALModel(backbone, int(self.options.embed_dim), bn_splits=int(self.options.bn_splits))

    # -- the momentum key encoder and its queue (MoCo)
    def attach(self, model: nn.Module) -> None:
        """Make the key encoder (a frozen copy of ``model``) and the queue of unit random negatives
        ``[queue_size, embed_dim]`` (seeded by ``config.seed``, as MoCo starts)."""
        self.key_model = copy.deepcopy(model)
        for p in self.key_model.parameters():
            p.requires_grad_(False)
        device = next(model.parameters()).device
        g = torch.Generator().manual_seed(int(self.config.seed) + 17)
        queue = torch.randn(int(self.options.queue_size), int(self.options.embed_dim), generator=g)
        self.queue = F.normalize(queue, dim=1).to(device)
        self.queue_video = torch.full((len(queue),), -1, dtype=torch.int64, device=device)
        self.queue_ptr = 0
        self._pending_keys = self._pending_videos = None

    def setup(self, ctx) -> None:
        self.attach(ctx.model)

    def _require_key_model(self):
        if self.key_model is None:
            raise RuntimeError("PAL's key encoder does not exist yet: call method.setup(ctx) or method.attach(model)")

    @torch.no_grad()
    def momentum_update(self, model: nn.Module) -> None:
        """``key = m * key + (1 - m) * query`` for every parameter (MoCo eq. 2, m = key_momentum).
        Choice (as MoCo): BN running statistics of the key encoder come from its own forward passes."""
        self._require_key_model()
        m = float(self.options.key_momentum)
        for pk, pq in zip(self.key_model.parameters(), model.parameters()):
            pk.mul_(m).add_(pq.detach(), alpha=1 - m)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, videos: torch.Tensor | None = None) -> None:
        """Replace the oldest queue rows by ``keys`` ``[B, D]`` (a ring buffer, MoCo's FIFO) and
        their source video rows ``videos`` int ``[B]`` (-1: unknown)."""
        keys = keys.detach().to(self.queue.device, self.queue.dtype)
        if videos is None:
            videos = torch.full((len(keys),), -1, dtype=torch.int64)
        size = len(self.queue)
        keys, videos = keys[-size:], videos[-size:].to(self.queue.device, torch.int64)
        rows = ((self.queue_ptr + torch.arange(len(keys))) % size).to(self.queue.device)
        self.queue[rows] = keys
        self.queue_video[rows] = videos
        self.queue_ptr = int((self.queue_ptr + len(keys)) % size)

    def after_optimizer_step(self, ctx) -> None:
        self.momentum_update(ctx.model)
        if self._pending_keys is not None:
            keys, videos = self._pending_keys, self._pending_videos
            if torch.distributed.is_available() and torch.distributed.is_initialized() \
                    and torch.distributed.get_world_size() > 1:
                # Every process enqueues the keys of all processes (MoCo's concat_all_gather), so the
                # queues stay identical.
                keys, videos = _all_gather(keys), _all_gather(videos)
            self.enqueue(keys, videos)
            self._pending_keys = self._pending_videos = None

    def state_dict(self) -> dict:
        self._require_key_model()
        return {"key_model": self.key_model.state_dict(), "queue": self.queue.detach().cpu(),
                "queue_video": self.queue_video.cpu(), "queue_ptr": self.queue_ptr}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        self._require_key_model()
        self.key_model.load_state_dict(state["key_model"])
        self.queue = state["queue"].to(self.queue.device)
        # A checkpoint from before the queue kept its keys' videos: unknown (-1), excluded from nothing.
        videos = state.get("queue_video", torch.full((len(self.queue),), -1, dtype=torch.int64))
        self.queue_video = videos.to(self.queue.device)
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

    @torch.no_grad()
    def encode_keys(self, clips: torch.Tensor, train: bool, generator=None) -> torch.Tensor:
        """The key encoder's clip features ``[B, J, D]`` of ``clips`` ``[B, J, 3, L, c, c]``, in
        training computed on the batch in an order drawn from ``generator`` (after the two views'
        augmentations) and put back in order.

        Why (MoCo §3.3, "shuffling BN"): with batch statistics, a query and its positive key
        computed on the same batch share a signature of that batch that the queue's negatives lack,
        and the encoder can "cheat" the pretext task through it instead of learning. MoCo computes
        each GPU's queries on its own sub-batch and the keys on a shuffled batch, so a query's and
        its key's statistics come from two different subsets. Here, on one device, ``PALModel``
        splits both batches into ``bn_splits`` sub-batches (MoCo's one-GPU emulation) and the keys
        are shuffled first. PAL §4.1 used synchronized BN over 512 videos instead, where one
        batch's signature is faint; the benchmark's batches of 16 are not.
        Under DDP each process does the same within its own batch (MoCo's shuffle across processes
        is not implemented): statistics still come from different subsets, of one process's videos."""
        if not train:
            return self.key_model(clips)
        order = torch.randperm(len(clips), generator=generator).to(clips.device)
        shuffled = self.key_model(clips[order])
        return shuffled[torch.argsort(order)]

    def _contrast(self, q: torch.Tensor, k: torch.Tensor, videos: torch.Tensor | None, train: bool):
        """Eq. (7) for queries ``q`` and keys ``k`` ``[B, D]`` of source videos ``videos`` ``[B]``,
        against the queue or, with ``negatives="batch"``, the step's other keys (this process's
        only, under DDP)."""
        tau = float(self.options.temperature)
        if self.options.negatives == "batch":
            # A query's own key and its video's other keys (two pairs of one video) are not negatives.
            same = (videos[:, None] == videos[None]) if videos is not None else torch.eye(len(k), dtype=torch.bool)
            return info_nce(q, k, k, tau, same.to(k.device))[0]
        exclude = None
        if train and videos is not None:
            # Choice (deviation, to keep the paper's condition): no key of the query's own source
            # video is a negative. PAL §4.1 draws one pair per Kinetics video per epoch with a queue of
            # 16,384 of its 240k videos, so the queue never holds another key of a query's video. The
            # benchmark's 240 videos, two pairs each, fill a 512-key queue with ~2 keys of every video:
            # false negatives that push each region away from its own video, so the loss could only
            # fall by telling fresh keys from stale ones. Validation keys never enter the queue (and
            # index another table), so nothing is excluded there.
            exclude = videos[:, None].to(self.queue_video.device) == self.queue_video[None]
        return info_nce(q, k, self.queue, tau, exclude)[0]

    def step(self, model, batch, *, train, generator=None) -> StepOutput:
        self._require_key_model()
        videos, region = batch["clip"], batch["region"]  # [B, 2, T, S, S, 3], [B, 2, 2]
        # Each synthesized video has its own augmentation (drawn query first, then key).
        xq = self._clips(videos[:, 0], train, generator)
        xk = self._clips(videos[:, 1], train, generator)
        q = region_features(model(xq), region[:, 0, 0], region[:, 0, 1])  # r_q = r_{i->n}
        with torch.no_grad():
            # The key encoder runs in the mode of the step (BN batch statistics in training, as MoCo's).
            self.key_model.train(train)
            k = region_features(self.encode_keys(xk, train, generator), region[:, 1, 0], region[:, 1, 1])
        videos = batch.get("video_index")  # [B] source video rows (absent: hand-made batches)
        loss = self._contrast(q, k, videos, train)
        if train and self.options.negatives == "queue":
            # The queue changes only in after_optimizer_step, after backward (autograd would catch an
            # earlier in-place change).
            self._pending_keys = k.detach()
            self._pending_videos = None if videos is None else videos.detach()
        correct = retrieval_correct(q.detach(), k, videos)
        count = torch.tensor(len(q), device=q.device)
        return StepOutput(loss=loss, head_losses={"region": loss.detach()}, head_correct={"region": correct},
                          head_count={"region": count})
