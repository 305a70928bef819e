"""An extraction run's configuration (``ExtractionConfig``), its validation, and the clip settings it
resolves to: given in the config, else from the checkpoint's saved config (our run folders carry
it; read through ``tsplab.backbones``, the one place that reads checkpoints), else TSP's.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tsplab.backbones import BACKBONES, checkpoint_settings
from tsplab.checkpoints import load_checkpoint_file, resolve_checkpoint
from tsplab.config import check_config, check_field, check_parameter, setting
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
    clip length (one feature per clip, no overlap). Each field declares its check and its
    ``tsplab extract`` flag (``tsplab.config``)."""

    videos: str = setting(flag=True, help="folder of videos, or a text file with one path per line")
    out_dir: str = setting(flag="--out", help="feature folder: {video file stem}.npy, metadata.json, "
                           "failures.csv, toolboxes.json (ActionFormer/OpenTAD config values), "
                           "missing_files.txt (OpenTAD's block list)")
    checkpoint: str | None = setting(None, flag=True, help="checkpoint file, run folder "
                                     "(runs/<name>/pretrain/<method>) or 'kinetics400'")
    backbone: str | None = setting(None, flag=True, help="backbone name (needed when the checkpoint does "
                                   "not say); without --checkpoint its weights are random")
    clip_length_frames: int | None = setting(None, rule=">0", flag="--clip-length",
                                             help="frames per clip (default: checkpoint's, else 16)")
    # every video is resampled to it by timestamps
    frame_rate: float | None = setting(None, rule=">0", flag=True,
                                       valid="a number of frames per second > 0, or none",
                                       help="clip frame rate (default: checkpoint's, else 15)")
    stride_frames: int | None = setting(None, rule=">0", flag="--stride",
                                        help="frames between clip starts (default: the clip length)")
    short_side: int | None = setting(None, rule=">0", flag=True,
                                     help="resize frames to this short side, aspect kept (default: 128)")
    crop_size: int | None = setting(None, rule=">0", flag="--crop", help="centre crop size (default: 112)")
    batch_size: int = setting(32, rule=">0", flag=True, help="clips per forward pass")
    # DataLoader processes decoding while the model runs; None: auto (tsplab.features.concurrency)
    workers: int | None = setting(None, rule=">=0", flag=True,
                                  valid="an integer >= 0 (0: decode in the main process), or none (auto)",
                                  help="decoding processes beside the model (default: none on a CPU, up "
                                       "to 8 with a GPU)")
    # CPU: threads running the model, each with an equal share of torch's threads, decoding in turn
    # between their batches; None: 2 for small frames with 2 or more torch threads and no workers,
    # else 1 (tsplab.features.concurrency.decoding_plan)
    model_threads: int | None = setting(None, rule=">0", flag=True,
                                        help="CPU: threads running the model, sharing torch's threads and "
                                             "decoding in turn (default: 2 for frames up to 320x240 with 2 "
                                             "or more cores and no --workers, else 1 with a decode-ahead "
                                             "thread for larger frames)")
    format: str = setting("npy", choices=FORMATS, flag=True,
                          help="npy: one file per video; h5: also one features.hdf5 keyed by video "
                               "(TSP's layout)")
    shard_id: int | None = setting(None, rule=">=0", flag=True, help="this shard (default: torchrun's rank)")
    num_shards: int | None = setting(None, rule=">0", flag=True,
                                     help="number of shards (default: torchrun's world size)")
    seed: int = setting(0, flag=True, help="seed of random weights (no checkpoint)")
    device: str = setting("auto", flag=True, help="auto (GPU when present), cpu, cuda, cuda:1, ...")
    min_frames: int | None = setting(None, rule=">0", none="half a clip",
                                     help="fewer frames at frame_rate is too short")
    # "pad": clips cover every frame, the last padded with the last frame; "tsp": whole clips only,
    # floor((N - L) / stride) + 1 of them (TSP's extractor; videos shorter than a clip fail).
    clip_rule: str = setting("pad", choices=CLIP_RULES, flag=True,
                             help="pad: clips cover every frame, the last padded (default); tsp: whole "
                                  "clips only, floor((N - L) / stride) + 1, as TSP's extractor")
    # "short-side": short side to short_side, aspect kept (TSP's paper); "tsp": every frame to 128x171
    # (TSP's extractor, so features of TSP's released checkpoints match its released files).
    resize: str = setting("short-side", choices=RESIZES, flag=True,
                          help="short-side: short side to --short-side, aspect kept (default); tsp: every "
                               "frame to 128x171, as TSP's extractor (to reproduce TSP's released features)")
    annotations: str | None = setting(None, flag=True,
                                      help="annotation file: also write annotations_filtered.json, its "
                                           "videos with features (ActionFormer has no block list)")
    # Unpickle a checkpoint in full when torch's safe loader refuses it: runs any code stored in the
    # file (tsplab.checkpoints.load_checkpoint_file); only for files you trust.
    trust_pickle: bool = setting(False, flag="--trust-checkpoint-code",
                                 help="unpickle --checkpoint in full when torch's safe loader refuses it: "
                                      "RUNS ANY CODE STORED IN THE FILE; only for files you trust")


def validate_extraction_config(config: "ExtractionConfig") -> None:
    """Check every parameter given in ``config`` by its declaration (``None`` = from the checkpoint
    or TSP's default, checked once resolved by ``check_clip_settings``), then the rules between
    fields; ``InputError`` naming the field and what is valid. Run before anything is read or
    written."""
    check_config(config)
    if config.resize == "tsp" and config.short_side is not None:
        raise InputError(f"short_side: {config.short_side!r} given with resize='tsp', which resizes "
                         f"every frame to {TSP_FRAME_SIZE[0]}x{TSP_FRAME_SIZE[1]}; give one of them")
    if config.crop_size is not None and config.short_side is not None:
        check_clip_settings(dict(short_side=config.short_side, crop_size=config.crop_size))


def check_clip_settings(settings: dict) -> None:
    """The resolved clip settings (explicit, from the checkpoint or TSP's) form a valid grid: every
    count >= 1, a frame rate > 0, and a centre crop that fits in the resized frame."""
    fields = {f.name: f for f in dataclasses.fields(ExtractionConfig)}
    for name in ("clip_length_frames", "stride_frames", "short_side", "crop_size", "frame_rate"):
        if name in settings:
            check_field(fields[name], settings[name])
    crop, side = settings["crop_size"], settings["short_side"]
    check_parameter("crop_size", crop, crop <= side, f"at most the short side the frames are resized to "
                    f"({side}; short_side)")


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
        raise InputError(f"backbone: {backbone!r} is not a backbone; valid: "
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
    """The ``ExtractionConfig`` of one encoder chosen by ``tsplab.pretrain.encoders.choose_encoders``
    (notebook 04). A checkpoint (file or run folder) brings its own backbone and clip settings, so
    only ``fields`` (stride, batch size, ...) are set; ``None`` (random weights) uses ``backbone``
    and ``random_clip`` (``clip_length_frames``, ``frame_rate``, ``short_side``, ``crop_size``:
    those the dataset is pretrained with, so the random baseline sees the same clips)."""
    if checkpoint:
        return ExtractionConfig(videos=str(videos), out_dir=str(out_dir), checkpoint=str(checkpoint),
                                **fields)
    clip = {k: random_clip[k] for k in ("clip_length_frames", "frame_rate", "short_side", "crop_size")}
    return ExtractionConfig(videos=str(videos), out_dir=str(out_dir), backbone=backbone, **clip, **fields)
