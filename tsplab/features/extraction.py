"""Extraction: videos on disk -> a feature folder (``tsplab extract``).

Each video is decoded once while the model runs (on a CPU by the threads that run the model, in
turn between their batches, or by a decode-ahead thread; by DataLoader worker processes beside a
GPU: ``tsplab.features.concurrency``), and its clips are batched with those of the next videos
(``tsplab.features.encoding``); the work is sharded over torchrun ranks
(contiguous blocks of the sorted video list), resumable (videos whose ``.npy`` exists are skipped),
and tolerant of broken videos (recorded in ``failures.csv`` and skipped). The folder gets
``metadata.json``, ``videos.csv``, and the toolbox files of ``tsplab.features.toolboxes``.
"""
from __future__ import annotations

import errno

import logging
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tsplab.datasets import normalize_video_id, read_annotations
from tsplab.backbones import ClipTransform, build_backbone, load_backbone_weights
from tsplab.config import check_parameter, is_int
from tsplab.errors import InputError
from tsplab.features.config import (TSP_FRAME_SIZE, ExtractionConfig, check_clip_settings,
                                    resolve_extraction_settings, validate_extraction_config)
from tsplab.features.concurrency import clip_batch_loader, decoding_plan, encode_batches, intra_op_threads
from tsplab.features.encoding import pick_device
from tsplab.features.folders import (METADATA_FILE, VIDEOS_TABLE, FeatureMetadata, feature_path,
                                     feature_table, list_feature_videos, load_features, num_features,
                                     save_features)
from tsplab.features.gvf import write_features_h5
from tsplab.features.toolboxes import HDF5_FILE, MISSING_FILE, TOOLBOXES_FILE, write_toolbox_files
from tsplab.runs import check_output_folder, resolve, write_csv
from tsplab.video import list_videos

log = logging.getLogger(__name__)
SUMMARY_COLUMNS = ["video", "status", "num_features", "error", "path"]


# --- Inputs: the videos, this shard's share, the backbone -------------------------------------------

def find_videos(source) -> list[tuple[str, Path]]:
    """``[(video, path)]`` sorted by video id (the file name without extension).

    ``source`` is a folder (``tsplab.video.list_videos``: its files with a video extension) or a
    text file with one path per
    line (relative paths are relative to the list file's folder; blank lines and ``#`` comments are
    skipped). Listed paths need not exist: missing ones fail at extraction time and are recorded.
    """
    source = resolve(source)
    if source.is_dir():
        paths = list_videos(source)
    elif source.is_file():
        paths = []
        for line in source.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                p = Path(line).expanduser()
                paths.append(p if p.is_absolute() else source.parent / p)
    else:
        raise FileNotFoundError(f"{source}: neither a folder of videos nor a list file")
    seen: dict[str, Path] = {}
    by_id: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen:
            raise InputError(f"{source}: two videos share the id {p.stem!r}: {seen[p.stem]} and {p}; "
                             f"keep one of them")
        video = normalize_video_id(p.stem)
        if video in by_id:  # v_x.mp4 beside x.mp4: their feature files would be one video
            raise InputError(f"{source}: {by_id[video]} and {p} are the same video {video!r} (ids are "
                             f"compared with and without the v_ prefix); keep one of them")
        seen[p.stem], by_id[video] = p, p
    return sorted(seen.items())


def shard_videos(videos: list, shard_id: int, num_shards: int) -> list:
    """The ``shard_id``-th of ``num_shards`` contiguous, nearly equal blocks of ``videos`` (pass them
    sorted: every process then agrees on the split, and the shards together are the whole list)."""
    check_parameter("num_shards", num_shards, is_int(num_shards) and num_shards >= 1,
                    "an integer >= 1")
    check_parameter("shard_id", shard_id, is_int(shard_id) and 0 <= shard_id < num_shards,
                    f"an integer from 0 to num_shards - 1 = {num_shards - 1}")
    n = len(videos)
    return videos[shard_id * n // num_shards:(shard_id + 1) * n // num_shards]


def load_extraction_backbone(name: str, weights=None, seed: int = 0) -> torch.nn.Module:
    """Backbone ``name`` in eval mode with ``weights`` (a loaded checkpoint, a path or
    ``"kinetics400"``; heads are dropped), or, with ``weights=None``, random weights drawn from
    ``seed`` after a warning (two runs with the same seed give the same features)."""
    torch.manual_seed(seed)
    backbone = build_backbone(name)
    if weights is not None:
        load_backbone_weights(backbone, weights)
    else:
        warnings.warn(f"no checkpoint given: {name} runs with RANDOM weights (seed {seed}); these "
                      "features are for smoke tests and timing only", stacklevel=2)
    return backbone.eval()


def _check_extraction_inputs(config: ExtractionConfig) -> tuple[Path, list, tuple[int, int]]:
    """(output folder, this shard's ``[(video, path)]``, (shard id, number of shards)) once the
    parameters, the shard (from torchrun's environment when not given), the video source and the
    output folder have been checked; reads only."""
    validate_extraction_config(config)
    shard_id, num_shards = config.shard_id, config.num_shards
    if shard_id is None or num_shards is None:
        from tsplab.distributed import rank_and_world_size

        rank, world = rank_and_world_size()
        shard_id = rank if shard_id is None else shard_id
        num_shards = world if num_shards is None else num_shards
    out_dir = check_output_folder(config.out_dir, "out_dir")
    if out_dir == resolve(config.videos):
        raise InputError(f"out_dir: {out_dir} is the folder of the input videos; give another "
                         f"folder for the features")
    all_videos = find_videos(config.videos)
    if not all_videos:
        raise FileNotFoundError(f"{resolve(config.videos)}: no videos to extract")
    if config.annotations:  # read once now: a bad file stops the run before anything is written
        read_annotations(resolve(config.annotations))
    return out_dir, shard_videos(all_videos, shard_id, num_shards), (shard_id, num_shards)


def _check_metadata(out_dir: Path, meta: FeatureMetadata) -> None:
    """Refuse to mix features of different settings in one folder (a localizer would read them as
    one grid)."""
    if not (out_dir / METADATA_FILE).is_file() or not list_feature_videos(out_dir):
        return
    old = FeatureMetadata.load(out_dir)
    keys = ("stride_frames", "clip_length_frames", "frame_rate", "feature_dim", "backbone", "checkpoint")
    diff = [f"{k}: {getattr(old, k)!r} there, {getattr(meta, k)!r} now" for k in keys
            if getattr(old, k) != getattr(meta, k)]
    # The checkpoint's content too: a pretraining run rerun into the same folder rewrites best.pt
    # under the same path, and features of the old weights must not pass for the new ones'.
    keys = (("short_side", "crop_size", "checkpoint_sha256", "clip_rule", "resize")
            + (("seed",) if meta.extra.get("random_weights") else ()))
    diff += [f"{k}: {old.extra.get(k)!r} there, {meta.extra.get(k)!r} now"
             for k in keys if old.extra.get(k, meta.extra.get(k)) != meta.extra.get(k)]  # absent: older folder
    if diff:
        raise InputError(f"{out_dir} already holds features made with other settings ("
                         + "; ".join(diff) + "); use another output folder")


def _file_sha256(path) -> str:
    """The SHA-256 of a checkpoint file ("" for none, or ``kinetics400``, which is no file here)."""
    import hashlib

    if not path or not Path(path).is_file():
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _shard_suffix(shard_id: int, num_shards: int) -> str:
    return "" if num_shards == 1 else f".shard{shard_id}of{num_shards}"


# --- The run -------------------------------------------------------------------------------------------

def extract_features(config: ExtractionConfig, *, decode_ahead: bool | None = None) -> pd.DataFrame:
    """Extract features for every video of ``config.videos`` (this shard's share) into
    ``config.out_dir``; returns one row per video: ``video, status, num_features, error, path`` with
    status ``done``, ``skipped`` (features already there) or ``failed``.

    Writes ``{video}.npy`` ``[T, C]`` float32 per video (atomically, as each video finishes),
    ``metadata.json`` (``FeatureMetadata``: the clip grid, backbone, checkpoint; ``extra`` holds the
    resize/crop, seed and the run's config), ``videos.csv`` (per-video T and first/last clip times),
    ``failures.csv`` (video, path, error), ``toolboxes.json`` and ``missing_files.txt``
    (``write_toolbox_files``: how ActionFormer and OpenTAD read the folder, and the failed videos as
    their block list; with ``config.annotations``, ``annotations_filtered.json``) and, for
    ``format="h5"``, ``features.hdf5`` keyed by video (TSP's layout; ActionFormer reads an HDF5 file
    only when its name contains ``.hdf5``; the ``.npy`` files are kept as the resumable state and
    for OpenTAD, which reads no HDF5). Sharded runs suffix the failures and h5 files
    with ``.shard{i}of{n}``. Every parameter and the output folder are checked before anything is
    written (``InputError`` naming the parameter); videos that fail are recorded and skipped.
    On a CPU without worker processes the model runs in ``config.model_threads`` threads
    (``tsplab.features.concurrency.EncoderThreads``, which decode the videos in turn between their
    batches; None: 2 for small frames on 2 or more cores, else 1). One model thread decodes in a
    ``DecodeAhead`` thread beside it (``decode_ahead=True``) or inline between batches (False);
    None: by the frame size (``tsplab.features.concurrency.decoding_plan``).
    """
    # Every input is checked before the output folder is touched (no metadata.json for a bad run).
    out_dir, videos, shard = _check_extraction_inputs(config)
    settings, weights = resolve_extraction_settings(config)
    check_clip_settings(settings)
    device = pick_device(config.device)
    threads, decode_ahead = decoding_plan(videos, device, config.workers, config.model_threads, decode_ahead)
    backbone = load_extraction_backbone(settings["backbone"], weights, config.seed).to(device)
    del weights  # a checkpoint with optimizer state can be large
    meta = _run_metadata(config, settings, int(backbone.feature_dim),
                         intra_op_threads(threads) if device.type == "cpu" else None)
    _check_metadata(out_dir, meta)
    try:
        meta.save(out_dir)
        rows = [dict(video=video, status="skipped", num_features=num_features(out_dir, video), error="",
                     path=str(path)) for video, path in videos if feature_path(out_dir, video).is_file()]
        todo = [(video, path) for video, path in videos if not feature_path(out_dir, video).is_file()]
        rows += _extract_videos(config, settings, backbone, device, out_dir, todo, threads, decode_ahead)
        return _write_run_files(config, out_dir, rows, *shard)
    except OSError as exc:  # the output folder, not a video: a full disk, a quota, a read-only mount
        if exc.errno not in _WRITE_ERRNOS:
            raise
        raise InputError(f"{exc.filename or out_dir}: cannot write ({exc.strerror}); the videos finished "
                         f"before are kept in {out_dir}: free space and rerun the same command to go on "
                         "(finished videos are skipped)") from exc


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def _run_metadata(config: ExtractionConfig, settings: dict, feature_dim: int,
                  torch_threads_per_batch: int | None) -> FeatureMetadata:
    """The folder's ``metadata.json``: the clip grid, and in ``extra`` how frames were resized and
    cropped, the seed, the run's config, and on a CPU the torch threads each batch ran with (CPU
    convolutions round differently with another number: features differ around the 6th digit;
    not checked on resume)."""
    return FeatureMetadata(
        stride_frames=settings["stride_frames"], clip_length_frames=settings["clip_length_frames"],
        frame_rate=settings["frame_rate"], feature_dim=feature_dim, backbone=settings["backbone"],
        checkpoint=settings["checkpoint"],
        extra=dict(short_side=settings["short_side"], crop_size=settings["crop_size"], seed=config.seed,
                   clip_rule=settings["clip_rule"], resize=settings["resize"],
                   frame_size=list(TSP_FRAME_SIZE) if settings["resize"] == "tsp" else None,
                   random_weights=not settings["checkpoint"], checkpoint_sha256=_file_sha256(settings["checkpoint"]),
                   videos_table=VIDEOS_TABLE,
                   clip_times="feature i: clip from i*stride_frames/frame_rate s, lasting "
                              "clip_length_frames/frame_rate s; " + (
                                  "the last clip repeats the last frame" if settings["clip_rule"] == "pad"
                                  else "whole clips only (TSP's rule)"),
                   toolboxes=TOOLBOXES_FILE, config=asdict(config),
                   torch_threads_per_batch=torch_threads_per_batch))


def _extract_videos(config: ExtractionConfig, settings: dict, backbone, device, out_dir: Path,
                    todo: list[tuple[str, Path]], threads: int, decode_ahead: bool) -> list[dict]:
    """Stream the clips of ``todo`` through ``backbone`` and save each video's ``[T, C]`` features as
    soon as its last clip is encoded; one summary row per video (``done`` or ``failed``)."""
    from contextlib import closing

    from tqdm.auto import tqdm

    transform = ClipTransform(resize_short_side=settings["short_side"], crop_size=settings["crop_size"],
                              train=False, fixed_size=TSP_FRAME_SIZE if settings["resize"] == "tsp" else None)
    length = settings["clip_length_frames"]
    min_frames = (config.min_frames if config.min_frames is not None  # TSP's rule: one whole clip
                  else length if settings["clip_rule"] == "tsp" else -(-length // 2))  # else half a clip
    loader = clip_batch_loader(todo, settings, config.batch_size, min_frames, config.workers, device,
                               model_threads=threads, decode_ahead=decode_ahead)
    paths = dict(todo)
    partial: dict[str, list] = {}  # video -> [(clip index, [C] features)] of its clips so far
    rows = []
    # closing: an error or Ctrl-C here stops the decoding (threads or workers) before it propagates.
    # The bar redraws at most once a second: at tqdm's default rate its redraws take CPU time the
    # model waits for (README, "Extraction throughput").
    with tqdm(total=None, unit="clip", desc=f"extract {out_dir.name}", leave=False, mininterval=1.0) as bar, \
            closing(encode_batches(backbone, loader, transform, device, threads)) as encoded:
        for item, feats in encoded:
            if feats is not None:
                for video, index, feat in zip(item["videos"], item["index"].tolist(), feats):
                    partial.setdefault(video, []).append((index, feat))
                bar.update(len(item["videos"]))
            for kind, video, detail in item["events"]:  # events come after the clips they refer to
                rows.append(_finish_video(out_dir, video, paths[video], kind, detail,
                                          partial.pop(video, [])))
            bar.set_postfix(videos=len(rows), refresh=False)
    return rows


def _finish_video(out_dir: Path, video: str, path, kind: str, detail, clips: list) -> dict:
    """Save a finished video's features (``kind`` ``done``, ``detail`` its number of clips), or
    record why it failed (``kind`` ``failed``, ``detail`` the error); its summary row."""
    clips = sorted(clips, key=lambda x: x[0])
    error = detail if kind == "failed" else _stream_error(clips, detail)
    if error:
        log.warning("feature extraction skipped %s: %s", path, error)
        return dict(video=video, status="failed", num_features=0, error=error, path=str(path))
    features = np.stack([f for _, f in clips])
    save_features(out_dir, video, features)
    return dict(video=video, status="done", num_features=len(features), error="", path=str(path))


def _stream_error(clips: list, num_clips: int) -> str:
    if num_clips == 0:
        return "no frames could be decoded"
    if [i for i, _ in clips] != list(range(num_clips)):
        return f"clip stream incomplete: got {len(clips)} of {num_clips} clips"
    return ""


def _write_run_files(config: ExtractionConfig, out_dir: Path, rows: list[dict], shard_id: int,
                     num_shards: int) -> pd.DataFrame:
    """The run's summary, after writing its failures, the folder's ``videos.csv``, the h5 file
    (``format="h5"``) and the toolbox files; ``summary.attrs`` says where the lists are."""
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS).sort_values("video", ignore_index=True)
    suffix = _shard_suffix(shard_id, num_shards)
    failures = summary.loc[summary.status == "failed", ["video", "path", "error"]]
    failures_file = write_csv(out_dir / f"failures{suffix}.csv", failures)
    write_csv(out_dir / VIDEOS_TABLE, feature_table(out_dir))
    if config.format == "h5":
        have = [v for v in summary.video if feature_path(out_dir, v).is_file()]
        h5_file = out_dir / HDF5_FILE.replace(".hdf5", f"{suffix}.hdf5")
        write_features_h5(h5_file, {v: load_features(out_dir, v) for v in have})
    write_toolbox_files(out_dir, config.annotations)
    # Where the lists are, for the CLI to say so.
    summary.attrs.update(failures_file=str(failures_file), missing_file=str(out_dir / MISSING_FILE),
                         toolboxes_file=str(out_dir / TOOLBOXES_FILE))
    return summary


def summarize_extraction(summary: pd.DataFrame) -> pd.DataFrame:
    """Counts per status (``done``, ``skipped``, ``failed``) of an ``extract_features`` summary."""
    counts = summary["status"].value_counts()
    return pd.DataFrame(dict(status=["done", "skipped", "failed"],
                             videos=[int(counts.get(s, 0)) for s in ("done", "skipped", "failed")]))
