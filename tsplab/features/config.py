"""An extraction run's configuration (``ExtractionConfig``), its validation, and the clip settings it
resolves to: given in the config, else from the checkpoint's saved config (our run folders carry
it; read through ``tsplab.backbones``, the one place that reads checkpoints), else TSP's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsplab.backbones import BACKBONES, checkpoint_settings, load_checkpoint_file, resolve_checkpoint
from tsplab.errors import InputError

# TSP's clip settings: 16 frames at 15 fps (16 frames with stride 2 at 30 fps, TSP sec. 4), short
# side 128, centre crop 112.
TSP_CLIP_SETTINGS = dict(clip_length_frames=16, frame_rate=15.0, short_side=128, crop_size=112)
FORMATS = ("npy", "h5")
CLIP_RULES = ("pad", "tsp")  # tsplab.video.num_clip_windows: pad the last clip, or TSP's whole clips only
RESIZES = ("short-side", "tsp")  # short side to short_side (aspect kept), or TSP's fixed frame size
TSP_FRAME_SIZE = (128, 171)  # (height, width): TSP's extractor, T.Resize((128, 171)), aspect not kept


@dataclass
class ExtractionConfig:
    """One extraction run. Clip settings left at ``None`` come from the checkpoint's saved config (our
    run folders carry it), else TSP's (``TSP_CLIP_SETTINGS``); ``stride_frames`` defaults to the
    clip length (one feature per clip, no overlap)."""

    videos: str  # a folder of videos, or a text file listing one video path per line
    out_dir: str
    checkpoint: str | None = None  # a checkpoint file, a run folder (.../pretrain/<method>), "kinetics400"
    backbone: str | None = None  # needed when the checkpoint does not say (TSP's released files do by name)
    clip_length_frames: int | None = None
    frame_rate: float | None = None  # clip frame rate: every video is resampled to it by timestamps
    stride_frames: int | None = None  # frames at ``frame_rate`` between consecutive clip starts
    short_side: int | None = None  # frames are resized so their short side is this (aspect kept)
    crop_size: int | None = None  # then centre-cropped to crop_size x crop_size
    batch_size: int = 32
    workers: int | None = None  # DataLoader processes decoding while the model runs; None: auto (below)
    # CPU: threads running the model, each with an equal share of torch's threads, decoding in turn
    # between their batches; None: 2 for small frames with 2 or more torch threads and no workers,
    # else 1 (tsplab.features.concurrency.decoding_plan)
    model_threads: int | None = None
    format: str = "npy"  # "npy" (one file per video), or "h5" (also one h5 keyed by video, TSP-like)
    shard_id: int | None = None  # None: torchrun's rank (0 without torchrun)
    num_shards: int | None = None  # None: torchrun's world size (1 without torchrun)
    seed: int = 0  # the weights of a backbone without a checkpoint come from it
    device: str = "auto"  # "auto": cuda:LOCAL_RANK when there is a GPU, else cpu
    min_frames: int | None = None  # fewer frames at frame_rate is "too short"; None: half a clip
    # "pad": clips cover every frame, the last padded with the last frame; "tsp": whole clips only,
    # floor((N - L) / stride) + 1 of them (TSP's extractor; videos shorter than a clip fail).
    clip_rule: str = "pad"
    # "short-side": short side to short_side, aspect kept (TSP's paper); "tsp": every frame to 128x171
    # (TSP's extractor, so features of TSP's released checkpoints match its released files).
    resize: str = "short-side"
    # An annotation file: the folder also gets annotations_filtered.json, its videos with features.
    annotations: str | None = None
    # Unpickle a checkpoint in full when torch's safe loader refuses it: runs any code stored in the
    # file (tsplab.backbones.load_checkpoint_file); only for files you trust.
    trust_pickle: bool = False


# The CLI flag of each ExtractionConfig field, so an error names what the user typed.
_EXTRACT_FLAGS = dict(clip_length_frames="--clip-length", frame_rate="--frame-rate",
                      stride_frames="--stride", short_side="--short-side", crop_size="--crop",
                      batch_size="--batch-size", workers="--workers", model_threads="--model-threads",
                      format="--format", clip_rule="--clip-rule", resize="--resize",
                      min_frames="min_frames", shard_id="--shard-id", num_shards="--num-shards")


def _name(field_name: str) -> str:
    flag = _EXTRACT_FLAGS.get(field_name, field_name)
    return field_name if flag == field_name else f"{field_name} ({flag})"


def validate_extraction_config(config: "ExtractionConfig") -> None:
    """Check every parameter given in ``config`` (``None`` = from the checkpoint or TSP's default,
    checked once resolved by ``check_clip_settings``); ``InputError`` naming the parameter and its
    valid range. Run before anything is read or written."""
    for name, valid in (("format", FORMATS), ("clip_rule", CLIP_RULES), ("resize", RESIZES)):
        if getattr(config, name) not in valid:
            raise InputError(f"{_name(name)}: {getattr(config, name)!r} is not one of {', '.join(valid)}")
    if config.resize == "tsp" and config.short_side is not None:
        raise InputError(f"{_name('short_side')}: {config.short_side!r} given with --resize tsp, which resizes "
                         f"every frame to {TSP_FRAME_SIZE[0]}x{TSP_FRAME_SIZE[1]}; give one of them")
    for name in ("clip_length_frames", "stride_frames", "short_side", "crop_size", "batch_size",
                 "min_frames", "model_threads"):
        value = getattr(config, name)
        if value is not None or name == "batch_size":
            check_parameter(_name(name), value, is_int(value) and value >= 1, "an integer >= 1")
    if config.frame_rate is not None:
        check_parameter(_name("frame_rate"), config.frame_rate, is_positive_number(config.frame_rate),
                        "a number of frames per second > 0")
    if config.workers is not None:
        check_parameter(_name("workers"), config.workers, is_int(config.workers) and config.workers >= 0,
                        "an integer >= 0 (0: decode in the main process)")
    if config.crop_size is not None and config.short_side is not None:
        check_clip_settings(dict(short_side=config.short_side, crop_size=config.crop_size))
    for name in ("shard_id", "num_shards"):
        value = getattr(config, name)
        if value is not None:
            check_parameter(_name(name), value, is_int(value) and value >= (name == "num_shards"),
                            "an integer >= 1" if name == "num_shards" else "an integer >= 0")


def check_clip_settings(settings: dict) -> None:
    """The resolved clip settings (explicit, from the checkpoint or TSP's) form a valid grid: every
    count >= 1, a frame rate > 0, and a centre crop that fits in the resized frame."""
    for name in ("clip_length_frames", "stride_frames", "short_side", "crop_size"):
        if name in settings:
            check_parameter(_name(name), settings[name], settings[name] >= 1, "an integer >= 1")
    if "frame_rate" in settings:
        check_parameter(_name("frame_rate"), settings["frame_rate"],
                        is_positive_number(settings["frame_rate"]), "a number of frames per second > 0")
    crop, side = settings["crop_size"], settings["short_side"]
    check_parameter(_name("crop_size"), crop, crop <= side,
                    f"at most the short side the frames are resized to ({side}; --short-side)")


def resolve_extraction_settings(config: ExtractionConfig) -> tuple[dict, object]:
    """``(settings, weights)`` of a run. ``settings``: backbone name, checkpoint (file path,
    ``"kinetics400"`` or ``""``), ``clip_rule``, ``resize`` and clip settings, taken from the config
    where given, else from the checkpoint's saved config, else TSP's (``resize="tsp"``: short side 128,
    the height of TSP's fixed frame size). ``weights``: the loaded checkpoint, ``"kinetics400"``, or
    ``None`` (random weights)."""
    from_ckpt, weights, checkpoint = {}, None, ""
    if config.checkpoint == "kinetics400":
        weights = checkpoint = "kinetics400"
    elif config.checkpoint:
        path = resolve_checkpoint(config.checkpoint)
        weights, checkpoint = load_checkpoint_file(path, trust_pickle=config.trust_pickle), str(path)
        from_ckpt = checkpoint_settings(weights, path)
    backbone = config.backbone or from_ckpt.get("backbone")
    if backbone is None:
        raise InputError(f"checkpoint {checkpoint or config.checkpoint!r} does not name its backbone; "
                         f"pass backbone (one of {', '.join(BACKBONES)})")
    if backbone not in BACKBONES:
        raise InputError(f"backbone (--backbone): {backbone!r} is not a backbone; valid: "
                         f"{', '.join(BACKBONES)}")
    if from_ckpt.get("backbone") and config.backbone and config.backbone != from_ckpt["backbone"]:
        raise InputError(f"backbone {config.backbone!r} given, but checkpoint {checkpoint} was trained "
                         f"with {from_ckpt['backbone']!r}")
    settings = dict(backbone=backbone, checkpoint=checkpoint, clip_rule=config.clip_rule, resize=config.resize)
    for name in ("clip_length_frames", "frame_rate", "short_side", "crop_size"):
        value = TSP_FRAME_SIZE[0] if name == "short_side" and config.resize == "tsp" else getattr(config, name)
        value = from_ckpt.get(name, TSP_CLIP_SETTINGS[name]) if value is None else value
        settings[name] = float(value) if name == "frame_rate" else int(value)
    # A pretraining run has no feature stride; by default one feature per clip, without overlap
    # (the stride of TSP's released features).
    stride = config.stride_frames
    settings["stride_frames"] = int(stride) if stride is not None else settings["clip_length_frames"]
    return settings, weights


def encoder_extraction_config(checkpoint, *, videos, out_dir, backbone: str, random_clip: dict,
                              **fields) -> ExtractionConfig:
    """The ``ExtractionConfig`` of one encoder chosen by ``tsplab.backbones.choose_encoders``
    (notebook 04). A checkpoint (file or run folder) brings its own backbone and clip settings, so
    only ``fields`` (stride, batch size, ...) are set; ``None`` (random weights) uses ``backbone``
    and ``random_clip`` (``clip_length_frames``, ``frame_rate``, ``short_side``, ``crop_size``:
    those the dataset is pretrained with, so the random baseline sees the same clips)."""
    if checkpoint:
        return ExtractionConfig(videos=str(videos), out_dir=str(out_dir), checkpoint=str(checkpoint),
                                **fields)
    clip = {k: random_clip[k] for k in ("clip_length_frames", "frame_rate", "short_side", "crop_size")}
    return ExtractionConfig(videos=str(videos), out_dir=str(out_dir), backbone=backbone, **clip, **fields)


def check_parameter(name: str, value, ok: bool, valid: str) -> None:
    """``InputError`` ``"<name>: <value> is out of range; valid: <valid>"`` unless ``ok``."""
    if not ok:
        raise InputError(f"{name}: {value!r} is out of range; valid: {valid}")


def is_int(value) -> bool:
    """An integer, numpy's included, but not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_positive_number(value) -> bool:
    """A finite number > 0 (not a bool)."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and bool(np.isfinite(value)) and value > 0)
