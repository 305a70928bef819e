"""BSP: boundary-sensitive pretext (Xu et al., ICCV 2021, §3), as a pretraining method.

BSP released no code; this follows the paper's equations and names every choice it leaves open.

Source of the clips (§3.2: "Existing trimmed video datasets are selected as the video source ...
Kinetics"). ``source_dir="auto"`` (default) synthesizes from the dataset's trimmed source set when
the dataset folder has one (``DATASET/source/``: the synthetic benchmark's Kinetics analog, every
video one action instance), else from the foreground segments of the target's training table, with
a warning naming the deviation; ``"target"`` asks for the latter by name; a folder gives a source set
(ActivityNet-format ``annotations.json`` with training and validation subsets, ``videos/``). The
source set's frames come through the run's frame cache (``tsplab.pretrain.data.prepare_data`` on
``BSP.data_config``); its class labels are the action head's (two-head, distill) as Kinetics' are
in the paper; ``bsp_source.json`` in the run folder records which clips were used.

Synthesis (§3.2; ``tsplab.pretrain.methods.bsp_data``). Every synthesized clip has the encoder's
``L`` frames (the paper's ``2τ``) and one of four types:

- ``dc`` diff-class boundary, eq. (1): clips of two different classes, blended linearly over ``2ε``
  frames around the change point;
- ``sc`` same-class boundary, eq. (2): clips of two segments of the same class, concatenated;
- ``ds`` diff-speed boundary, eq. (3): one clip whose playback rate changes by ``γ ≠ 1`` at the
  change point (nearest frame);
- ``ss`` same-speed: one clip at its own rate (no boundary).

Frame indices here are 0-based; the *change frame* ``c`` is the number of frames before the boundary
(the paper's 1-based ``τ`` in eqs. 1-2 and ``t`` in eq. 3): frames ``0..c-1`` show the first content.
Eqs. (1)-(2) place the boundary in the middle (``c = τ = L/2``); eq. (3) leaves ``t`` free. By
default every type draws ``c`` uniformly (``middle_change_point=False``), because the regression
pretext needs a varying target and an extracted feature's clip meets boundaries anywhere inside it;
``middle_change_point=True`` gives eqs. (1)-(2) as written. (The options are :class:`BSPOptions`,
``config.options``: ``--set boundaries=ds,ss``.)

Pretext (§3.3, Table 4): ``loss="classification"`` (default): cross-entropy over the types listed
in ``boundaries`` (the class is the index in that tuple: all four, or a binary variant
``("dc", "ss")``, ``("sc", "ss")``, ``("ds", "ss")``); ``"regression"``: a head predicts a value per
frame, trained with smooth L1 against a Gaussian heat map of the change point (Table 4 trains it on
one boundary type at a time, e.g. ``("ds",)``).

Integration with action classification (§3.4, ``integration``):

- ``"two-head"``: one backbone, the BSP head and an action head, losses summed;
- ``"distill"``: the backbone is a student matching a TAC teacher and a BSP teacher (checkpoints
  ``teachers``) through two pointwise projections, plus cross-entropy on the action head;
- two-stream is not a training mode: the features of a TAC run and a BSP run extracted from the
  same videos are read as one, concatenated per clip (``tsplab.features.open_feature_folders``;
  the localizer's ``features_dir=[tac_dir, bsp_dir]``, ``tsplab localize --features TAC --features
  BSP``).

The benchmark's boundaries are motion onsets inside one scene, which none of the synthetic boundary
types imitates (what BSP alone learns there: the README, "The synthetic recipe's pretraining protocol").
"""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from tsplab.config import setting
from tsplab.pretrain.methods.base import (PretrainData, PretrainMethod, StepOutput, head_accuracy_counts,
                                          masked_cross_entropy)
from tsplab.pretrain.methods.tac import clip_transform
from tsplab.pretrain.methods.bsp_data import BOUNDARY_TYPES, BSPClipDataset
from tsplab.runs import write_json
from tsplab.benchmark.layout import SOURCE_DIR, SOURCE_MANIFEST

SOURCE_AUTO, SOURCE_TARGET = "auto", "target"  # BSPOptions.source_dir's named values
#: The run file that says which clips the syntheses drew from (``SynthesisSource.record``).
SOURCE_RECORD = "bsp_source.json"
BSP_LOSSES = ("classification", "regression")
INTEGRATIONS = ("none", "two-head", "distill")


@dataclasses.dataclass
class BSPOptions:
    """BSP's options (``method="bsp"``): the synthesized boundaries, the pretext loss and the
    integration with action classification."""

    #: Saved runs without an option ran with these values (``config_from_dict``): BSP synthesized
    #: from the target's training clips before ``source_dir`` existed, so such a run resumes as it began.
    BEFORE_OPTION_EXISTED: ClassVar[dict] = {"source_dir": "target"}

    # synthesized types (BSP §3.2), distinct; the class is the index
    boundaries: tuple = setting(BOUNDARY_TYPES, choices=BOUNDARY_TYPES, required=True)
    # classification (BSP §3.3 default) | regression (change-point heat map)
    loss: str = setting("classification", choices=BSP_LOSSES)
    blend_frames: int = setting(2, rule=">0")  # ε of BSP eq. (1): diff-class clips blend over 2ε frames
    # γ of BSP eq. (3), one drawn per diff-speed clip (each != 1)
    speed_factors: tuple = setting((0.5, 2.0, 3.0), rule=">0", required=True)
    middle_change_point: bool = False  # True: change point at L/2 (eqs. 1-2 as written); False: random
    integration: str = setting("none", choices=INTEGRATIONS)  # BSP §3.4
    teachers: tuple = ()  # distill: (TAC teacher, BSP teacher) checkpoint paths (best.pt or run folders)
    # Where the syntheses draw trimmed clips from (BSP §3.2: Kinetics): "auto" = the dataset's trimmed
    # source set (DATASET/source/, the synthetic benchmark's) when it has one, else the target's
    # training clips with a warning; "target" = the target's training clips; or a folder with an
    # ActivityNet-format annotations.json (training and validation subsets) and videos/.
    source_dir: str = setting(SOURCE_AUTO, required=True, help=f"'{SOURCE_AUTO}', '{SOURCE_TARGET}' or a folder "
                              "with an ActivityNet-format annotations.json and videos/")

    def check(self, config) -> None:
        """The rules between options and with the loop's clip (``config.clip_length_frames``: the
        clip the blend must fit in); ``ValueError`` naming the option."""
        boundaries = tuple(self.boundaries)
        if len(set(boundaries)) != len(boundaries):
            raise ValueError(f"boundaries: {self.boundaries!r} repeat a type; give distinct names among "
                             f"{', '.join(BOUNDARY_TYPES)}")
        if self.loss == "classification" and len(boundaries) < 2:
            raise ValueError(f"boundaries: {self.boundaries!r}: classification needs at least two types "
                             "(BSP Table 4's binary variants pair one with 'ss')")
        if self.integration == "distill" and len(self.teachers) != 2:
            raise ValueError(f"teachers: integration='distill' needs teachers=(TAC checkpoint, BSP checkpoint), "
                             f"got {self.teachers!r}")
        if 2 * self.blend_frames > config.clip_length_frames:
            raise ValueError(f"blend_frames: {self.blend_frames} is out of range; need 1 <= ε <= "
                             f"clip_length_frames/2 ({config.clip_length_frames})")
        if 1 in self.speed_factors:
            raise ValueError(f"speed_factors: {self.speed_factors!r}: need values != 1 (BSP eq. 3)")
        if not self.source_dir.strip():
            raise ValueError(f"source_dir: not given; give '{SOURCE_AUTO}', '{SOURCE_TARGET}' or a folder")


# ------------------------------------------------------------------------------- source of clips
@dataclasses.dataclass(frozen=True)
class SynthesisSource:
    """Where a run's syntheses draw their trimmed clips from: ``kind`` ``"source"`` (a trimmed,
    class-labelled source set, the paper's Kinetics: ``folder`` holds its ``annotations.json`` and
    ``videos/``) or ``"target"`` (the run's own training table); ``option`` is ``source_dir`` as
    given, ``note`` says how it was chosen (and names the deviation from the paper)."""

    kind: str
    folder: Path | None
    option: str
    note: str

    def data_config(self, config):
        """The ``PretrainConfig`` whose data the loop prepares (``tsplab.pretrain.data.prepare_data``, the frames
        through the run's frame cache): ``config`` itself for the target; for a source set, its folder
        with ActivityNet's ``training`` / ``validation`` subsets. A trimmed video is one action with no
        background, so the background rule is a plain one-clip gap (no dataset preset: a source set's
        ids match none). The source set's own validation videos, none of them a target video, choose
        the best epoch (``valid_holdout=0``)."""
        if self.kind == SOURCE_TARGET:
            return config
        return dataclasses.replace(config, dataset_dir=str(self.folder), annotations="", valid_annotations="",
                                   video_dir="", train_subset="training", valid_subset="validation",
                                   dataset="", min_background_clips=1.0, valid_holdout=0.0)

    def record(self, train_videos: int, valid_videos: int) -> dict:
        """What ``bsp_source.json`` in the run folder says (so a result can name its source)."""
        return {"source_dir": self.option, "synthesized_from": self.kind,
                "folder": str(self.folder) if self.folder else "", "note": self.note,
                "train_videos": int(train_videos), "valid_videos": int(valid_videos)}


def check_source_folder(folder: Path, option: str) -> None:
    """``InputError`` naming the option and the path unless ``folder`` holds ``annotations.json`` and
    ``videos/``."""
    from tsplab.errors import InputError

    for path, what in ((folder / "annotations.json", "file"), (folder / "videos", "folder")):
        if not (path.is_file() if what == "file" else path.is_dir()):
            raise InputError(f"source_dir: {path}: {what} not found (source_dir={option!r}); give a folder with an "
                             f"ActivityNet-format annotations.json and videos/, '{SOURCE_AUTO}' or '{SOURCE_TARGET}'")


def synthesis_source(options: BSPOptions, config) -> SynthesisSource:
    """The clips BSP synthesizes from, by ``options.source_dir``. BSP §3.2 synthesizes from Kinetics,
    a large trimmed set ("Existing trimmed video datasets are selected as the video source"), not
    from the target's videos: ``"auto"`` takes ``DATASET/source/`` (the synthetic benchmark's trimmed
    source set, Kinetics' analog) when ``config.dataset_dir`` has one, else the target's training
    clips with a warning naming the deviation."""
    from tsplab.errors import InputError
    from tsplab.runs import read_json, resolve

    option = options.source_dir
    if option == SOURCE_TARGET:
        return SynthesisSource(SOURCE_TARGET, None, option, "the target's training clips (source_dir='target')")
    if option != SOURCE_AUTO:
        folder = resolve(option)
        check_source_folder(folder, option)
        return SynthesisSource("source", folder, option, "the trimmed source set given as source_dir")
    folder = resolve(config.dataset_dir) / SOURCE_DIR if config.dataset_dir else None
    if folder is not None and (folder / "annotations.json").is_file() and (folder / "videos").is_dir():
        manifest = folder / SOURCE_MANIFEST
        if manifest.is_file() and not read_json(manifest).get("complete"):
            raise InputError(f"source_dir: {folder} is an unfinished source set ({manifest}: complete is false); "
                             "run tsplab synth on the benchmark again to finish it, or set source_dir=target")
        return SynthesisSource("source", folder, option, "the dataset's trimmed source set (DATASET/source/)")
    note = (f"BSP source_dir='auto': {config.dataset_dir or 'the dataset'} has no trimmed source set "
            f"({SOURCE_DIR}/annotations.json + videos/); synthesizing from the target's training clips, "
            "not from a large trimmed set as BSP §3.2 does (Kinetics); give source_dir=FOLDER for one")
    warnings.warn(note, stacklevel=2)
    return SynthesisSource(SOURCE_TARGET, None, option, note)


# -------------------------------------------------------------------------------- pretext targets
def change_point_heatmap(change_frame: torch.Tensor, length: int) -> torch.Tensor:
    """BSP §3.3 regression target ``[B, length]``: ``y_t = exp(-(t - μ)² / 2τ)`` with ``τ = length/2``
    (the paper's half clip) and ``μ`` the paper's 1-based change point ``τ``/``t`` (0-based: the last
    frame before the boundary, ``change_frame - 1``). Rows with ``change_frame < 0`` (``ss``, no
    boundary) are all zeros."""
    t = torch.arange(length, dtype=torch.float32, device=change_frame.device)
    mu = change_frame.to(torch.float32)[:, None] - 1.0
    y = torch.exp(-((t[None] - mu) ** 2) / length)  # 2τ = length
    return torch.where(change_frame[:, None] >= 0, y, torch.zeros_like(y))


def change_point_hits(prediction: torch.Tensor, change_frame: torch.Tensor) -> torch.Tensor:
    """Regression "accuracy" per row (bool ``[B]``): the peak of ``prediction`` ``[B, L]`` lies within
    one frame of the heat map's peak; for a row without a boundary, the prediction stays below 0.5."""
    peak = prediction.argmax(dim=1)
    hit = (peak - (change_frame - 1)).abs() <= 1
    flat = prediction.max(dim=1).values < 0.5
    return torch.where(change_frame >= 0, hit, flat)


# ----------------------------------------------------------------------------------------- model
class BSPModel(nn.Module):
    """``features`` (backbone ``[B, 3, T, H, W] -> [B, F]``) + ``fc_boundary`` (``[B, F] -> [B, K]``
    type logits, or ``[B, L]`` per-frame heat map in regression) + optionally ``fc_action``
    (``[B, F] -> [B, C]``, two-head and distill) and the distillation projections ``proj_tac``
    ``[B, F] -> [B, F_tac]`` and ``proj_bsp`` ``[B, F] -> [B, F_bsp]`` (BSP §3.4's h1, h2)."""

    def __init__(self, features: nn.Module, boundary_outputs: int, num_classes: int = 0,
                 teacher_dims: tuple[int, int] | None = None):
        super().__init__()
        self.features = features
        self.fc_boundary = nn.Linear(features.feature_dim, boundary_outputs)
        self.fc_action = nn.Linear(features.feature_dim, num_classes) if num_classes else None
        if teacher_dims is not None:
            # "pointwise projection layers": on a pooled clip feature a 1x1 projection is a Linear.
            self.proj_tac = nn.Linear(features.feature_dim, teacher_dims[0])
            self.proj_bsp = nn.Linear(features.feature_dim, teacher_dims[1])
        else:
            self.proj_tac = self.proj_bsp = None

    def forward(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(clip)
        out = {"boundary": self.fc_boundary(f)}
        if self.fc_action is not None:
            out["action"] = self.fc_action(f)
        if self.proj_tac is not None:
            out["proj_tac"] = self.proj_tac(f)
            out["proj_bsp"] = self.proj_bsp(f)
        return out


def load_teacher(path, device="cpu", *, trust_pickle: bool = False) -> nn.Module:
    """A frozen backbone (eval mode) from a pretraining checkpoint or run folder (its ``best.pt``),
    read with the safe loader (``tsplab.checkpoints.load_checkpoint_file``; ``trust_pickle``: see there)."""
    from tsplab.backbones import build_backbone, checkpoint_settings, load_backbone_weights
    from tsplab.checkpoints import load_checkpoint_file, resolve_checkpoint
    from tsplab.errors import InputError

    file = resolve_checkpoint(path)
    checkpoint = load_checkpoint_file(file, trust_pickle=trust_pickle)
    name = checkpoint_settings(checkpoint, file).get("backbone")
    if name is None:
        raise InputError(f"{file}: the teacher checkpoint does not name its backbone (no saved config, "
                         "and its file name does not start with one); give a tsplab pretraining checkpoint")
    teacher = load_backbone_weights(build_backbone(name), checkpoint).to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


# ---------------------------------------------------------------------------------------- method
class BSP(PretrainMethod):
    """``method="bsp"``: the boundary pretext on synthesized clips (heads ``boundary``, plus ``action``
    with ``integration`` two-head or distill); the best epoch averages their validation accuracies
    (regression: the share of clips whose predicted change point is within one frame)."""

    name = "bsp"
    Options = BSPOptions
    run_files = (SOURCE_RECORD,)

    def __init__(self, config):
        super().__init__(config)  # checks the options (BSPOptions.check)
        self.boundaries = tuple(self.options.boundaries)
        self.regression = self.options.loss == "regression"
        self.integration = self.options.integration
        self.head_names = ("boundary",) if self.integration == "none" else ("boundary", "action")
        self._transforms = {True: clip_transform(config, True), False: clip_transform(config, False)}
        self.teachers: tuple[nn.Module, nn.Module] | None = None
        self._source: SynthesisSource | None = None

    @property
    def source(self) -> SynthesisSource:
        """Where the syntheses draw from (:func:`synthesis_source`, chosen once per run: the fallback
        warns once)."""
        if self._source is None:
            self._source = synthesis_source(self.options, self.config)
        return self._source

    def data_config(self, config):
        """The settings of the videos the loop prepares for this run: the source set's (BSP §3.2), or
        ``config`` itself when the syntheses draw from the target's training clips."""
        return self.source.data_config(config)

    def check_files(self) -> None:
        from tsplab.checkpoints import resolve_checkpoint
        from tsplab.errors import InputError
        from tsplab.runs import resolve

        if self.options.source_dir not in (SOURCE_AUTO, SOURCE_TARGET):
            check_source_folder(resolve(self.options.source_dir), self.options.source_dir)
        if self.integration != "distill":
            return
        for i, teacher in enumerate(self.options.teachers):
            try:
                resolve_checkpoint(teacher)
            except FileNotFoundError as exc:
                raise InputError(f"teachers[{i}]: {exc}") from None

    def build_datasets(self, data: PretrainData):
        cfg, opt = self.config, self.options
        common = dict(frames=data.frames, labels=data.labels, clip_length_frames=data.clip_length_frames,
                      frame_rate=data.frame_rate, clips_per_segment=cfg.clips_per_segment, seed=cfg.seed,
                      boundaries=self.boundaries, blend_frames=opt.blend_frames,
                      speed_factors=opt.speed_factors, middle_change_point=opt.middle_change_point)
        train = BSPClipDataset(data.train_table, data.video_dir, jitter=True, **common)
        valid = BSPClipDataset(data.valid_table, data.video_dir, jitter=False, **common)
        return train, valid

    def build_model(self, backbone: nn.Module, data: PretrainData) -> nn.Module:
        outputs = data.clip_length_frames if self.regression else len(self.boundaries)
        classes = len(data.labels) if self.integration != "none" else 0
        dims = None
        if self.integration == "distill":
            # Teachers are kept outside the model: frozen, not checkpointed, reloaded from their files.
            trust = bool(getattr(self.config, "trust_pickle", False))
            self.teachers = tuple(load_teacher(p, trust_pickle=trust) for p in self.options.teachers)
            dims = tuple(t.feature_dim for t in self.teachers)
        return BSPModel(backbone, outputs, classes, dims)

    def setup(self, ctx) -> None:
        if ctx.dist.is_main:  # the run says which clips it synthesized from (source set or target)
            write_json(ctx.output_dir / SOURCE_RECORD, self.source.record(
                len(ctx.train_dataset.videos), len(ctx.valid_dataset.videos)))
        if self.teachers is not None:
            self.teachers = tuple(t.to(ctx.dist.device) for t in self.teachers)

    def step(self, model, batch, *, train, generator=None) -> StepOutput:
        x = self._transforms[train](batch["clip"], generator)
        out = model(x)
        losses, correct, count = {}, {}, {}
        if self.regression:
            change = batch["change_frame"]
            target = change_point_heatmap(change, out["boundary"].shape[1])
            losses["boundary"] = F.smooth_l1_loss(out["boundary"].float(), target)  # BSP §3.3
            correct["boundary"] = change_point_hits(out["boundary"].detach(), change).sum()
            count["boundary"] = torch.tensor(len(change), device=change.device)
        else:
            losses["boundary"] = masked_cross_entropy(out["boundary"], batch["boundary_label"])
            correct["boundary"], count["boundary"] = head_accuracy_counts(out["boundary"], batch["boundary_label"])
        loss = losses["boundary"]
        if self.integration != "none":
            losses["action"] = masked_cross_entropy(out["action"], batch["action_label"])
            correct["action"], count["action"] = head_accuracy_counts(out["action"], batch["action_label"])
            loss = loss + losses["action"]  # the paper gives no weights: equal, as TSP's alphas
        if self.integration == "distill":
            with torch.no_grad():
                f_tac, f_bsp = (t(x) for t in self.teachers)
            # BSP §3.4: ||f_v(x) - h1(f_s(x))||² + ||f_b(x) - h2(f_s(x))||², summed over feature
            # dimensions and averaged over the batch.
            match = ((out["proj_tac"].float() - f_tac.float()) ** 2).sum(1).mean() + \
                    ((out["proj_bsp"].float() - f_bsp.float()) ** 2).sum(1).mean()
            # In distillation the student is the network of §3.4 (Fig. 3c): the matching losses and
            # "a standard cross-entropy loss", which we read as the action classification's; the BSP
            # head still trains (its knowledge comes through the BSP teacher too).
            loss = loss + match
        return StepOutput(loss=loss, head_losses={h: v.detach() for h, v in losses.items()},
                          head_correct=correct, head_count=count)
