"""Training the localizer on a feature folder and ActivityNet-format ground truth (ASL sec. 3.4 on
ActionFormer's one-stage design): the run (inputs checked by ``tsplab.localizer.config``, training,
prediction, evaluation), the loop (AdamW, linear warm-up then cosine, gradients clipped at 1), the
run folder's files, and loading a trained model back.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from tsplab.checkpoints import load_checkpoint_file, resolve_checkpoint
from tsplab.errors import InputError
from tsplab.features import FeatureMetadata
from tsplab.features.encoding import pick_device
from tsplab.localizer.config import (LocalizerConfig, check_localizer_paths, resolve_preset,
                                     validate_localizer_config)
from tsplab.localizer.data import VideoItem, crop_item, feature_metadata, load_video_items
from tsplab.localizer.fusion import (agnostic_annotations, check_fusion_config, evaluation_ground_truth,
                                     read_run_class_scores, write_run_predictions)
from tsplab.localizer.inference import predict
from tsplab.localizer.asl import ClassSensitivity
from tsplab.localizer.heads import Scale
from tsplab.localizer.model import Localizer
from tsplab.runs import PreviousRun, atomic_path, resolve, save_config, write_csv, write_json
from tsplab.threads import torch_threads

CHECKPOINT_FILE = "checkpoint.pt"
PREDICTIONS_FILE = "predictions.json"
UNFUSED_PREDICTIONS_FILE = "predictions_unfused.json"  # the model's own, when predictions.json is fused
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
SKIPPED_FILE = "skipped.csv"
LOSS_TERMS = ("loss", "cls", "reg", "sens", "ascl")


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------

@dataclass
class LocalizerResult:
    """What ``train_localizer`` made; every file is in ``out_dir``."""

    model: Localizer
    history: pd.DataFrame  # per epoch: epoch, lr, loss, cls, reg, sens, ascl
    predictions: pd.DataFrame  # video, t_start_s, t_end_s, label, score
    detection: object  # tsplab.evaluation.DetectionResult
    out_dir: Path
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["video", "subset", "reason"]))

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_FILE

    @property
    def predictions_path(self) -> Path:
        return self.out_dir / PREDICTIONS_FILE


def train_localizer(config: LocalizerConfig, progress: bool = True) -> LocalizerResult:
    """Train on ``config.train_subset``, predict ``config.valid_subset``, evaluate with tsplab's
    metrics. Writes into ``config.out_dir``: ``config.json``, ``checkpoint.pt`` (model state, config,
    labels, feature metadata), ``history.csv``, ``predictions.json`` (ActivityNet format),
    ``metrics.json`` and ``skipped.csv`` (videos without usable features). With
    ``config.class_scores`` (ActivityNet's protocol, ``tsplab.localizer.fusion``) ``predictions.json``
    holds the fused predictions that ``metrics.json`` scores, the model's own are in
    ``predictions_unfused.json``, and ``metrics.json``'s ``fusion`` says what was fused and left out."""
    from tsplab.evaluation import evaluate_detection

    # Every input is read and checked before the run folder is touched, and the run's files are
    # written only once training has finished: a failed run leaves an earlier run's files as they were.
    validate_localizer_config(config)
    out_dir = check_localizer_paths(config)
    check_fusion_config(config)  # before the features are loaded (minutes on ActivityNet)
    config, meta, ann, labels, train_items, valid_items, skipped = _load_data(config, out_dir)
    class_scores = read_run_class_scores(config, ann)  # None without fusion; checked before any write
    with torch_threads(config.num_threads):
        model, history = _fit(config, meta.feature_dim, len(labels), train_items, progress)
        # An earlier run's files are set aside, and come back if this run cannot finish writing its
        # own (a full disk): the folder never holds a mix of two runs.
        with _replacing_run_folder(out_dir):
            _save_run(out_dir, config, model, history, skipped, labels, meta)
            predictions = predict(model, valid_items, meta, labels, progress)
            predictions, protocol = write_run_predictions(config, predictions, class_scores, out_dir,
                                                          PREDICTIONS_FILE, UNFUSED_PREDICTIONS_FILE)
            detection = evaluate_detection(evaluation_ground_truth(config, ann), predictions,
                                           config.metric_preset)
            write_json(out_dir / METRICS_FILE, {**detection.to_dict(), **protocol})
    return LocalizerResult(model=model, history=history, predictions=predictions, detection=detection,
                           out_dir=out_dir, skipped=skipped)


RUN_RESULTS = (CHECKPOINT_FILE, PREDICTIONS_FILE, UNFUSED_PREDICTIONS_FILE, METRICS_FILE)
RUN_OTHERS = ("config.json", HISTORY_FILE, SKIPPED_FILE)


@contextlib.contextmanager
def _replacing_run_folder(out_dir: Path):
    """Write a run into ``out_dir`` within the block: an earlier run's files are moved to
    ``previous/`` first and deleted once the block has written ``metrics.json``, this run's last
    file (``tsplab.runs.PreviousRun``). When the block fails, this run's files are removed and the
    earlier ones moved back; a failure to write (a full disk) becomes one ``InputError`` line."""
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = PreviousRun(out_dir, RUN_RESULTS, RUN_OTHERS, first_result=METRICS_FILE)
    previous.set_aside()
    try:
        yield
    except BaseException as exc:
        earlier = previous.active
        if earlier:
            previous.restore()
        else:  # nothing to bring back: leave no half run that looks like one
            for path in previous.files(RUN_RESULTS + RUN_OTHERS):
                path.unlink()
        if isinstance(exc, OSError) and exc.errno is not None:
            kept = "the earlier run is back in place" if earlier else "none of this run's files is left"
            raise InputError(f"{exc.filename or out_dir}: cannot write the localizer run ({exc.strerror}); "
                             f"{kept} in {out_dir}") from exc
        raise
    previous.drop()


def _load_data(config: LocalizerConfig, out_dir: Path):
    """(config with the preset resolved, feature metadata, annotations, labels, training items,
    validation items, skipped table). Reads only; raises ``InputError`` when no training video has
    features, naming where the files were looked for."""
    from tsplab.datasets import read_annotations

    meta = feature_metadata(config.features_dir)  # one folder, or several joined per clip
    ann = read_annotations(resolve(config.annotations))
    config = resolve_preset(config, ann)
    # ActionFormer trains ActivityNet class-agnostic (one class) when its classes come from fusion
    items_ann = agnostic_annotations(ann) if config.class_agnostic else ann
    labels = list(items_ann.labels)
    train_items, skipped_train = load_video_items(config.features_dir, items_ann, config.train_subset, labels)
    valid_items, skipped_valid = load_video_items(config.features_dir, items_ann, config.valid_subset, labels)
    skipped = pd.concat([skipped_train.assign(subset=config.train_subset),
                         skipped_valid.assign(subset=config.valid_subset)], ignore_index=True
                        )[["video", "subset", "reason"]]
    if not train_items:
        example = skipped_train["reason"].iloc[0] if len(skipped_train) else "no videos"
        raise InputError(f"{config.features_dir}: none of the {len(skipped_train)} {config.train_subset} "
                         f"videos of {config.annotations} has usable features (e.g. {example})")
    if len(skipped):
        warnings.warn(f"{config.features_dir}: skipped {len(skipped)} video(s) without usable features "
                      f"(listed in {out_dir / SKIPPED_FILE}; the first: {skipped['video'].iloc[0]}: "
                      f"{skipped['reason'].iloc[0]})", stacklevel=3)
    return config, meta, ann, labels, train_items, valid_items, skipped


# ------------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------------

def _fit(config: LocalizerConfig, input_dim: int, num_classes: int, train_items: list[VideoItem],
         progress: bool) -> tuple[Localizer, pd.DataFrame]:
    """A ``Localizer`` trained on ``train_items`` for ``config.epochs``, and its history (one row per
    epoch: ``epoch, lr`` and the mean of each loss term)."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = Localizer(config, input_dim, num_classes).to(pick_device(config.device))
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
    steps_per_epoch = math.ceil(len(train_items) / config.batch_size)
    schedule = _Schedule(config.lr, steps_per_epoch, config.epochs, config.warmup_epochs)
    rows = []
    for epoch in tqdm(range(config.epochs), desc="localizer", leave=False, disable=not progress):
        means, lr = _train_one_epoch(model, optimizer, schedule, train_items, rng, epoch)
        rows.append(dict(epoch=epoch + 1, lr=lr, **means))
    return model, pd.DataFrame(rows, columns=["epoch", "lr", *LOSS_TERMS])


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's two groups, as ActionFormer's optimiser builds them: weight decay on the weights of
    convolutions and linear layers only; none on biases, LayerNorms, the per-level ``Scale`` and
    ASL's Gaussian μ and σ (decay would pull σ towards 0 and μ towards the centre for no reason the
    paper gives). A trainable parameter of any other kind is a bug here (a new layer must be placed)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if name == "weight" and isinstance(module, (nn.Conv1d, nn.Linear)):
                decay.append(param)
            elif name == "bias" or isinstance(module, (nn.LayerNorm, Scale, ClassSensitivity)):
                no_decay.append(param)
            else:
                raise TypeError(f"{type(module).__name__}.{name}: no weight-decay rule for this parameter")
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


def _train_one_epoch(model: Localizer, optimizer, schedule: "_Schedule", train_items: list[VideoItem],
                     rng: np.random.Generator, epoch: int = 0) -> tuple[dict, float]:
    """One pass over ``train_items`` in a random order, in batches of random crops; returns the
    mean of each loss term over the epoch's steps and the last learning rate. A loss that is not
    finite stops the run (``InputError`` naming the epoch, the step and the batch's videos) before
    it is stepped on: the model would only train to NaN and predict nothing."""
    config = model.config
    model.train()
    order = rng.permutation(len(train_items))
    steps = math.ceil(len(order) / config.batch_size)
    sums = dict.fromkeys(LOSS_TERMS, 0.0)
    lr = config.lr
    for i in range(0, len(order), config.batch_size):
        batch = [crop_item(train_items[j], config.max_seq_len, rng) for j in order[i:i + config.batch_size]]
        lr = schedule.next_lr()
        for group in optimizer.param_groups:
            group["lr"] = lr
        terms = model.losses(batch)
        if not torch.isfinite(terms["loss"]).item():
            videos = ", ".join(item.video for item in batch[:5]) + (", ..." if len(batch) > 5 else "")
            raise InputError(f"epoch {epoch + 1}, step {i // config.batch_size + 1} of {steps}: the training "
                             f"loss is {float(terms['loss'])} (videos {videos}); check their features and "
                             "annotations, or lower --lr")
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # ActionFormer clips at 1.0
        optimizer.step()
        for k in sums:
            sums[k] += float(terms[k].detach()) / steps
    return sums, lr


class _Schedule:
    """The learning rate of each step: linear warm-up over ``warmup_epochs`` (at least one step),
    then cosine decay to 0 at the last step (ActionFormer's schedule)."""

    def __init__(self, lr: float, steps_per_epoch: int, epochs: int, warmup_epochs: int):
        self.lr, self.step = lr, 0
        self.total_steps = steps_per_epoch * epochs
        self.warmup_steps = max(1, steps_per_epoch * warmup_epochs)

    def next_lr(self) -> float:
        lr = self.lr * _lr_factor(self.step, self.warmup_steps, self.total_steps)
        self.step += 1
        return lr


def _lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up then cosine decay to 0 (ActionFormer's schedule)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _save_run(out_dir: Path, config: LocalizerConfig, model: Localizer, history: pd.DataFrame,
              skipped: pd.DataFrame, labels: list[str], meta: FeatureMetadata) -> None:
    """The run's ``config.json`` (with the preset and cap used), ``skipped.csv``, ``history.csv``
    and ``checkpoint.pt`` (plain types only, so the safe loader reads it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir)
    write_csv(out_dir / SKIPPED_FILE, skipped)
    write_csv(out_dir / HISTORY_FILE, history)
    with atomic_path(out_dir / CHECKPOINT_FILE) as tmp:
        torch.save(dict(model=model.state_dict(), config=asdict(config), labels=labels,
                        metadata=asdict(meta), input_dim=meta.feature_dim), tmp)


# ------------------------------------------------------------------------------------------------
# Reading a run back
# ------------------------------------------------------------------------------------------------

def load_localizer(checkpoint, device="cpu", *,
                   trust_pickle: bool = False) -> tuple[Localizer, list[str], FeatureMetadata]:
    """A trained localizer from ``checkpoint.pt`` (or its run folder): (model in eval mode, labels,
    the feature metadata it was trained on).

    Found and read like every checkpoint (``tsplab.checkpoints.resolve_checkpoint`` and
    ``load_checkpoint_file``, torch's safe loader): the file holds plain types only (state dict,
    config and metadata dicts, label list); ``trust_pickle=True`` unpickles a file that holds other
    objects in full, running any code it carries."""
    state = load_checkpoint_file(resolve_checkpoint(checkpoint), trust_pickle=trust_pickle)
    config = LocalizerConfig(**state["config"])
    model = Localizer(config, state["input_dim"], len(state["labels"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), list(state["labels"]), FeatureMetadata(**state["metadata"])


def read_history(run_dir) -> pd.DataFrame:
    """``history.csv`` of a localizer run folder."""
    path = resolve(run_dir) / HISTORY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no localizer history")
    return pd.read_csv(path)
