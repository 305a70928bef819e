"""Feature-extraction throughput (clips/s), in one run on the same videos:

- end-to-end: ``tsplab.features.extraction.extract_features`` (videos stream-decoded inline on a CPU, in
  DataLoader workers beside a GPU; the model runs in the main process), files written;
- model-only: the same clip batches, already decoded and in memory, through transform + backbone;
- stream decode: the same batches decoded in one process (``ClipBatchStream``, no model);
- seek per clip: every clip decoded by ``tsplab.video.read_clip`` (open, seek, decode, close), the way
  TSP's extractor reads clips (``torchvision.io.read_video`` per clip).

The goal is end-to-end >= 0.9 x model-only (decoding hidden behind the model).

    # the synthetic benchmark's videos (tiny encoder, 8-frame clips on 32 px frames)
    python benchmarks/bench_extract.py --preset default --device cpu
    # generated 320x240 30 fps videos at TSP's settings (GPU machine)
    python benchmarks/bench_extract.py --generate 32 --seconds 60 --backbone r2plus1d_34 --workers 14
"""
from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tsplab.backbones import ClipTransform
from tsplab.features.config import ExtractionConfig
from tsplab.features.encoding import ClipBatchStream, encode_clips, pick_device
from tsplab.features.extraction import extract_features, find_videos, load_extraction_backbone
from tsplab.video import read_clip, write_video


def _generated_video(args) -> str:
    """A video with something to encode: a drifting colour gradient, moving rectangles, mild noise."""
    path, seconds, width, height, fps, seed = args
    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((n, height, width, 3), np.uint8)
    boxes = rng.uniform(0, 1, size=(4, 6))  # x, y, vx, vy, size, colour
    for k in range(n):
        phase = k / fps
        base = 90 + 60 * np.sin(xx / 37 + phase) + 40 * np.cos(yy / 23 - 0.7 * phase)
        img = np.repeat(base[..., None], 3, axis=2)
        img[..., 1] *= 0.8
        for x0, y0, vx, vy, size, colour in boxes:
            cx = (x0 * width + (vx - 0.5) * 120 * phase) % width
            cy = (y0 * height + (vy - 0.5) * 90 * phase) % height
            s = 10 + 40 * size
            mask = (abs(xx - cx) < s) & (abs(yy - cy) < s)
            img[mask] = (255 * colour, 255 * (1 - colour), 128)
        img += rng.normal(0, 4, size=img.shape)
        frames[k] = np.clip(img, 0, 255).astype(np.uint8)
    write_video(path, frames, fps=fps)
    return path


def generate_videos(folder: Path, count: int, seconds: float, width: int, height: int, fps: float,
                    workers: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder / f"gen_{i:04d}.mp4"), seconds, width, height, fps, i) for i in range(count)
            if not (folder / f"gen_{i:04d}.mp4").is_file()]
    with multiprocessing.get_context("spawn").Pool(max(1, workers)) as pool:
        for _ in pool.imap_unordered(_generated_video, jobs):
            pass
    return folder


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--videos", help="a folder of videos (or a list file)")
    src.add_argument("--preset", default=None, help="synthetic benchmark preset (tiny, default)")
    src.add_argument("--generate", type=int, help="generate this many 320x240 (see --size) videos")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of generated videos")
    parser.add_argument("--size", default="320x240", help="WxH of generated videos")
    parser.add_argument("--source-fps", type=float, default=30.0, help="frame rate of generated videos")
    parser.add_argument("--work-dir", default=None, help="where videos/features go (default: a temp dir)")
    parser.add_argument("--backbone", default=None,
                        help="default: r2plus1d_tiny for presets, else r2plus1d_34")
    parser.add_argument("--clip-length", type=int, default=None)
    parser.add_argument("--frame-rate", type=float, default=None)
    parser.add_argument("--stride", type=int, default=None)
    parser.add_argument("--short-side", type=int, default=None)
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None,
                        help="decoding processes (default: extract_features' choice: none on a CPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-videos", type=int, default=None, help="use only the first N videos")
    parser.add_argument("--seek-clips", type=int, default=200, help="clips timed for seek-per-clip")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the main process")
    parser.add_argument("--repeats", type=int, default=1,
                        help="time end-to-end and model-only N times, keep the best")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_extract_"))
    if args.preset or not (args.videos or args.generate):
        from tsplab.synthetic import PRESETS, generate_benchmark

        preset = args.preset or "default"
        bench = generate_benchmark(work / f"synthetic_{preset}", preset, progress=False)
        videos = bench / "videos"
        cfg = PRESETS[preset]
        # The synthetic clip conventions: 8-frame clips at the videos' rate on 32 px frames.
        defaults = dict(backbone="r2plus1d_tiny", clip_length_frames=cfg.clip_length_frames,
                        frame_rate=float(cfg.fps), stride_frames=2, short_side=cfg.clip_short_side,
                        crop_size=round(cfg.clip_short_side * 112 / 128))
    else:
        if args.generate:
            w, h = (int(v) for v in args.size.split("x"))
            t0 = time.perf_counter()
            videos = generate_videos(work / "generated", args.generate, args.seconds, w, h,
                                     args.source_fps, workers=max(1, (multiprocessing.cpu_count() or 2) - 1))
            print(f"generated {args.generate} videos in {time.perf_counter() - t0:.0f} s")
        else:
            videos = Path(args.videos)
        defaults = dict(backbone="r2plus1d_34", clip_length_frames=16, frame_rate=15.0, stride_frames=16,
                        short_side=128, crop_size=112)  # TSP's extraction settings
    given = dict(backbone=args.backbone, clip_length_frames=args.clip_length, frame_rate=args.frame_rate,
                 stride_frames=args.stride, short_side=args.short_side, crop_size=args.crop)
    settings = {k: given[k] if given[k] is not None else v for k, v in defaults.items()}
    listing = find_videos(videos)[: args.max_videos]
    list_file = work / "videos.txt"
    list_file.write_text("".join(f"{p}\n" for _, p in listing))
    device = pick_device(args.device)
    print(f"{len(listing)} videos, {settings}, batch {args.batch_size}, workers {args.workers}, "
          f"device {device}, best of {args.repeats}")

    # Warm up the model (cuDNN autotuning, allocator) outside every timed section.
    torch.backends.cudnn.benchmark = True
    import warnings

    warnings.simplefilter("ignore")  # the random-weights warning: timing needs no trained weights
    backbone = load_extraction_backbone(settings["backbone"], None, 0).to(device)
    transform = ClipTransform(settings["short_side"], settings["crop_size"], train=False)
    stream = ClipBatchStream(listing, settings["clip_length_frames"], settings["frame_rate"],
                             settings["stride_frames"], settings["short_side"], args.batch_size)
    first = next(iter(stream))["frames"]
    for _ in range(3):
        encode_clips(backbone, first, transform, device)
    _sync(device)

    # End-to-end and model-only alternate, ``--repeats`` times each; the best of each is kept (on a
    # shared machine, other processes only ever make a measurement slower).
    e2e_s, model_s, clips = [], [], 0
    for repeat in range(args.repeats):
        out = work / f"features_{int(time.time())}_{repeat}"
        t0 = time.perf_counter()
        summary = extract_features(ExtractionConfig(
            videos=str(list_file), out_dir=str(out), batch_size=args.batch_size, workers=args.workers,
            device=str(device), **settings))
        e2e_s.append(time.perf_counter() - t0)
        clips = int(summary.num_features.sum())
        if repeat == 0:
            # Stream decode in one process, keeping the batches for the model-only passes.
            t0 = time.perf_counter()
            batches = [item["frames"] for item in stream if len(item["videos"])]
            decode_s = time.perf_counter() - t0
        # Model only on those batches (uint8 in host memory -> device -> transform -> backbone -> host).
        _sync(device)
        t0 = time.perf_counter()
        for b in batches:
            encode_clips(backbone, b, transform, device)
        _sync(device)
        model_s.append(time.perf_counter() - t0)
    rows = [dict(what="end-to-end (extract_features)", clips=clips, seconds=min(e2e_s)),
            dict(what="model only (same batches in memory)", clips=sum(len(b) for b in batches),
                 seconds=min(model_s)),
            dict(what="stream decode, 1 process", clips=sum(len(b) for b in batches), seconds=decode_s)]

    # Seek per clip, one process (TSP's way), on up to --seek-clips clips spread over all the videos.
    length, rate, stride = settings["clip_length_frames"], settings["frame_rate"], settings["stride_frames"]
    per_video = dict(zip(summary.video, summary.num_features))
    jobs = []
    for video, path in listing:
        jobs += [(path, i * stride / rate) for i in range(int(per_video.get(video, 0)))]
    step = max(1, len(jobs) // max(1, args.seek_clips))
    jobs = jobs[::step][: args.seek_clips]
    t0 = time.perf_counter()
    for path, t_start in jobs:
        read_clip(path, t_start, length, rate, short_side=settings["short_side"])
    rows.append(dict(what="seek per clip (read_clip), 1 process", clips=len(jobs),
                     seconds=time.perf_counter() - t0))

    table = pd.DataFrame(rows)
    table["clips_per_s"] = (table.clips / table.seconds).round(1)
    table["seconds"] = table.seconds.round(2)
    with pd.option_context("display.width", 160):
        print(table.to_string(index=False))
    ratio = table.clips_per_s[0] / table.clips_per_s[1]
    print(f"end-to-end / model-only = {ratio:.2f} (goal >= 0.9)")
    print(f"failed videos: {(summary.status == 'failed').sum()}")


if __name__ == "__main__":
    main()
