"""Feature-extraction throughput at two sizes, side by side in one table.

- demo: the demo's setting: the first 60 videos of the synthetic benchmark of size ``default`` (64x64 H.264 at
  15 fps), r2plus1d_tiny on 8-frame clips of 32 px (crop 28), stride 2;
- realistic: TSP's setting: r2plus1d_18, 16 frames at 15 fps, short side 128, centre crop 112,
  stride 16, on 1280x720 H.264 at 30 fps (generated once with PyAV into --cache-dir, or --videos).

Per size, on the same videos and clips:

- end-to-end: ``tsplab.features.extraction.extract_features``, files written, on each of its CPU
  paths: two model threads of one torch thread each that decode in turn between their batches
  (``EncoderThreads``), and one model thread with all of torch's threads decoding in a
  decode-ahead thread or inline between batches; beside a GPU, with DataLoader decoding workers.
  The row "default path" names the path ``extract_features`` takes for the size's videos;
- model only: the same clip batches, already decoded and in memory, through transform + backbone,
  in two model threads and in one; how many cores each keeps busy (CPU seconds / wall seconds;
  OpenMP's threads spin while they wait, which counts as busy);
- decode only, PyAV: ``ClipBatchStream`` in this process, no model (clips/s of wall time, and source
  frames and clips per CPU-second: "per core");
- decode only, torchcodec (when installed): each video decoded straight to tensors at the clip rate
  and size, cut into the same clip windows;
- reopen per clip: ``tsplab.video.read_clip`` per clip (open, seek, decode, close), the way TSP's
  extractor reads clips (``torchvision.io.read_video`` per clip);
- ``end-to-end / model-only = X``: the default path against the model run the same way (the
  goal: >= 0.9, decoding hidden behind the model), and every path against its own model-only and
  against the fastest model-only. All runs go in rounds, in a rotated order; X is the median of
  the rounds' paired ratios, printed with their range (the machine's speed drifts between rounds;
  a ratio of runs seconds apart cancels most of it);
- its ceiling: the highest X the machine's cores allow when decoding costs the CPU it costs
  alone, ``cores x model-only wall / (model-only CPU + decode-only CPU)`` (capped at 1): once the
  model keeps every core busy, decoding cannot hide behind it, only share the cores with it;

Whether the machine was quiet is printed with the table: the load average before and after, and
the share of the CPU that other processes took while it ran (above 5%: the numbers are lower bounds).

    python benchmarks/bench_extract.py            # both sizes (videos generated once, then reused)
    python benchmarks/bench_extract.py --quick    # tiny sizes, seconds: checks that it runs
    python benchmarks/bench_extract.py --size demo --repeats 25   # one size, more rounds
    pip install --no-deps torchcodec==0.14.0      # optional, adds the torchcodec row (for torch 2.14)
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from tsplab.backbones import ClipTransform
from tsplab.features.config import ExtractionConfig
from tsplab.features.concurrency import EncoderThreads, decoding_plan, intra_op_threads
from tsplab.features.encoding import ClipBatchStream, clip_frame_indices, encode_clips, pick_device
from tsplab.features.extraction import (
    extract_features,
    find_videos,
    load_extraction_backbone,
)
from tsplab.runs import atomic_path
from tsplab.video import output_size, probe_video, read_clip

GOAL = 0.9
TORCHCODEC_HINT = "pip install --no-deps torchcodec==0.14.0 (the release for torch 2.14)"


# --- The machine: was it quiet? --------------------------------------------------------------------

def _busy_cpu_s() -> float | None:
    """CPU seconds the whole machine spent busy since boot (``/proc/stat``), None off Linux."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()  # this process (every thread) and its finished children (generators, torchcodec)
    return t.user + t.system + t.children_user + t.children_system


def machine_snapshot() -> dict:
    return {"wall_s": time.perf_counter(), "busy_s": _busy_cpu_s(), "own_s": _own_cpu_s(),
            "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")}


def quietness(before: dict, after: dict) -> dict:
    """The share of all cores that other processes used between two snapshots, and the loads."""
    wall_s = after["wall_s"] - before["wall_s"]
    share = float("nan")
    if before["busy_s"] is not None and after["busy_s"] is not None and wall_s > 0:
        others_s = (after["busy_s"] - before["busy_s"]) - (after["own_s"] - before["own_s"])
        share = max(0.0, others_s) / (wall_s * (os.cpu_count() or 1))
    return {"others_share": share, "load_before": before["load"], "load_after": after["load"]}


# --- The videos ------------------------------------------------------------------------------------

def demo_videos(folder: Path, count: int) -> list[tuple[str, Path]]:
    """The first ``count`` videos (by id) of the synthetic benchmark of size ``default``, seed 0: the very files
    the demo's benchmark has (rendered and encoded as ``tsplab.benchmark.generate_benchmark`` does),
    without its hundreds of other videos."""
    from tsplab.benchmark import SIZES, plan_benchmark, render_video
    from tsplab.video import write_video

    config = SIZES["default"]
    plans = sorted(plan_benchmark(config, 0), key=lambda p: p.video)[:count]
    videos = []
    for plan in plans:
        path = folder / f"{plan.video}.mp4"
        if not path.is_file():
            write_video(path, render_video(config, plan, 0).frames, config.fps, keyframe_interval_s=1.0)
        videos.append((plan.video, path))
    return videos  # these only: the folder may hold more, made by a run with a larger --demo-videos


def _generated_frames(seconds: float, width: int, height: int, fps: float, seed: int):
    """[H, W, 3] uint8 frames of a camera panning over a textured scene with moving boxes and light
    sensor noise: enough detail and motion that H.264 spends a realistic bitrate on it. Streamed."""
    rng = np.random.default_rng(seed)
    pad = 256
    yy, xx = np.mgrid[0:height + pad, 0:width + pad].astype(np.float32)
    coarse = rng.integers(0, 80, size=((height + pad) // 6 + 1, (width + pad) // 6 + 1, 3))
    texture = np.kron(coarse, np.ones((6, 6, 1)))[:height + pad, :width + pad]  # fine detail
    scene = (70 + 50 * np.sin(xx / 53)[..., None] + 40 * np.cos(yy / 31)[..., None] + texture)
    scene = np.clip(scene, 0, 255).astype(np.uint8)
    noise = rng.integers(-8, 9, size=(4, height, width, 3), dtype=np.int16)  # reused: cheap to draw
    boxes = rng.uniform(0, 1, size=(3, 5))  # x, y, vx, vy, colour
    for k in range(int(seconds * fps)):
        t = k / fps
        dx, dy = int((pad / 2) * (1 + np.sin(0.3 * t))), int((pad / 2) * (1 + np.cos(0.2 * t)))
        frame = scene[dy:dy + height, dx:dx + width].astype(np.int16) + noise[k % len(noise)]
        for x0, y0, vx, vy, colour in boxes:
            cx = int((x0 * width + (vx - 0.5) * width * 0.2 * t) % width)
            cy = int((y0 * height + (vy - 0.5) * height * 0.2 * t) % height)
            s = height // 10
            frame[max(0, cy - s):cy + s, max(0, cx - s):cx + s] = (255 * colour, 200 * (1 - colour), 90)
        yield np.clip(frame, 0, 255).astype(np.uint8)


def _write_generated(job) -> str:
    """Encode one generated video as H.264 the way uploads usually are: x264 defaults (CRF 23,
    B-frames), a keyframe every 2 s."""
    import av

    path, seconds, width, height, fps, seed = job
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast", "g": str(int(2 * fps))}
        for frame in _generated_frames(seconds, width, height, fps, seed):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def realistic_videos(folder: Path, count: int, seconds: float, width: int, height: int, fps: float
                     ) -> list[tuple[str, Path]]:
    """``count`` generated ``width`` x ``height`` H.264 videos in ``folder`` (made once, reused)."""
    import multiprocessing

    jobs = [(str(folder / f"gen_{i:03d}.mp4"), seconds, width, height, fps, i) for i in range(count)
            if not (folder / f"gen_{i:03d}.mp4").is_file()]
    if jobs:
        t0 = time.perf_counter()
        workers = max(1, min(len(jobs), (os.cpu_count() or 2)))
        if workers == 1 or width * height <= 640 * 360:  # small: starting processes costs more
            list(map(_write_generated, jobs))
        else:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                list(pool.imap_unordered(_write_generated, jobs))
        print(f"generated {len(jobs)} {width}x{height} videos in {time.perf_counter() - t0:.0f} s")
    return find_videos(folder)


def describe_videos(videos: list[tuple[str, Path]]) -> str:
    infos = [probe_video(p) for _, p in videos]
    minutes = sum(i.duration_s for i in infos) / 60
    mbps = sum(Path(p).stat().st_size for _, p in videos) * 8 / 1e6 / max(1e-9, minutes * 60)
    sizes = sorted({f"{i.width}x{i.height}" for i in infos})
    fps = sorted({round(i.fps, 2) for i in infos})
    return (f"{len(infos)} x {'/'.join(sizes)} {'/'.join(f'{f:g}' for f in fps)} fps {infos[0].codec}, "
            f"{minutes:.1f} min, {mbps:.2f} Mb/s")


# --- The sizes -------------------------------------------------------------------------------------

DEMO = dict(backbone="r2plus1d_tiny", clip_length_frames=8, frame_rate=15.0, stride_frames=2,
            short_side=32, crop_size=28)  # the synthetic benchmark's clip (28 = 32 * 112 / 128)
REALISTIC = dict(backbone="r2plus1d_18", clip_length_frames=16, frame_rate=15.0, stride_frames=16,
                 short_side=128, crop_size=112)  # TSP's extraction settings


def sizes(args, cache: Path) -> list[dict]:
    """The sizes asked for (``--size``): name, clip settings, videos (made on first use), clips timed
    for reopen-per-clip, rounds."""
    # The machine's speed drifts (model-only of the same 60 demo videos' batches: 3.5 to 5.1 s in 8
    # runs back to back, quiet, 2026-12-01), so the seconds-long demo size needs many paired rounds.
    demo_repeats, realistic_repeats = (args.repeats,) * 2 if args.repeats else (1, 1) if args.quick else (9, 2)
    chosen = []
    if args.size in ("both", "demo"):
        demo = demo_videos(cache / "demo", 6 if args.quick else args.demo_videos)
        chosen.append(dict(name="demo", settings=DEMO, videos=demo, seek_clips=args.seek_clips,
                           repeats=demo_repeats))
    if args.size in ("both", "realistic"):
        chosen.append(dict(name="realistic", settings=_realistic_settings(args), videos=_realistic_videos(args, cache),
                           seek_clips=args.seek_clips, repeats=realistic_repeats))
    return chosen


def _realistic_settings(args) -> dict:
    return {**REALISTIC, "backbone": "r2plus1d_tiny" if args.quick else args.realistic_backbone}


def _realistic_videos(args, cache: Path) -> list[tuple[str, Path]]:
    if args.quick:  # seconds: two tiny videos
        return realistic_videos(cache / "quick_320x180", 2, 3.0, 320, 180, 30.0)
    if args.videos:
        return find_videos(args.videos)
    return realistic_videos(cache / "realistic_1280x720", args.realistic_videos, args.realistic_seconds,
                            1280, 720, 30.0)


# --- The measurements ------------------------------------------------------------------------------

def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stream(size: dict, batch_size: int) -> ClipBatchStream:
    s = size["settings"]
    return ClipBatchStream(size["videos"], s["clip_length_frames"], s["frame_rate"], s["stride_frames"],
                           s["short_side"], batch_size)


def decode_only(size: dict, batch_size: int) -> tuple[list, dict]:
    """The clip batches of every video, decoded by ``ClipBatchStream`` in this process; timings."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    batches = [item["frames"] for item in _stream(size, batch_size) if len(item["videos"])]
    wall_s, cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
    frames = sum(probe_video(p).num_frames for _, p in size["videos"])  # every source frame decoded
    clips = sum(len(b) for b in batches)
    return batches, dict(clips=clips, wall_s=wall_s, cpu_s=cpu_s, source_frames=frames)


def model_only(backbone, batches: list, transform, device, threads: int = 1) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to encode ``batches``, already decoded, in one
    thread or, on a CPU, in ``threads`` ``EncoderThreads`` (as ``encode_batches`` splits torch's
    threads between them)."""
    _sync(device)
    t0, cpu0 = time.perf_counter(), time.process_time()
    if threads > 1:
        items = [dict(frames=batch, videos=range(len(batch))) for batch in batches]
        for _ in EncoderThreads(backbone, items, transform, threads, intra_op_threads(threads)):
            pass
    else:
        for batch in batches:
            encode_clips(backbone, batch, transform, device)
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - cpu0


def end_to_end(size: dict, args, device, work: Path, threads: int | None,
               decode_ahead: bool | None = None) -> tuple[float, int]:
    """(seconds, clips) of one ``extract_features`` run into a fresh folder (removed after)."""
    import shutil

    out = Path(tempfile.mkdtemp(prefix=f"e2e_{size['name']}_", dir=work))
    list_file = out.parent / f"{out.name}.txt"
    list_file.write_text("".join(f"{p}\n" for _, p in size["videos"]))
    try:
        t0 = time.perf_counter()
        summary = extract_features(ExtractionConfig(
            videos=str(list_file), out_dir=str(out), batch_size=args.batch_size, workers=args.workers,
            model_threads=threads, device=str(device), **size["settings"]), decode_ahead=decode_ahead)
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(out)  # our own temporary folder
        list_file.unlink()
    if (summary.status == "failed").any():
        raise RuntimeError(f"{size['name']}: {int((summary.status == 'failed').sum())} videos failed: "
                           f"{summary.loc[summary.status == 'failed', 'error'].tolist()}")
    return seconds, int(summary.num_features.sum())


def reopen_per_clip(size: dict, clips_per_video: list[int]) -> dict:
    """TSP's way: every clip read by opening, seeking and decoding the file anew (up to
    ``size['seek_clips']`` clips spread evenly over all the videos)."""
    s = size["settings"]
    jobs = [(path, i * s["stride_frames"] / s["frame_rate"])
            for (_, path), n in zip(size["videos"], clips_per_video) for i in range(n)]
    jobs = jobs[::max(1, len(jobs) // max(1, size["seek_clips"]))][:size["seek_clips"]]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for path, t_start_s in jobs:
        read_clip(path, t_start_s, s["clip_length_frames"], s["frame_rate"], short_side=s["short_side"])
    return dict(clips=len(jobs), wall_s=time.perf_counter() - wall0, cpu_s=time.process_time() - cpu0)


def e2e_run(size: dict, args, device, work: Path, threads: int | None, expected_clips: int,
            decode_ahead: bool | None = None):
    """A run for ``timed_rounds``: the seconds of one ``end_to_end`` (``threads``: the model's, None:
    the default), refused if it lost a clip."""
    def run() -> float:
        seconds, clips = end_to_end(size, args, device, work, threads, decode_ahead)
        assert clips == expected_clips, (size["name"], clips, expected_clips)
        return seconds
    return run


def timed_rounds(runs: dict, repeats: int) -> dict:
    """``repeats`` rounds of every run of ``runs`` (kind -> a callable returning seconds), each round
    in a rotated order: kind -> its seconds per round, so that each ratio pairs runs that were
    seconds apart (the machine's speed drifts between rounds)."""
    kinds = list(runs)
    rounds = {kind: [] for kind in kinds}
    for r in range(repeats):
        for kind in kinds[r % len(kinds):] + kinds[:r % len(kinds)]:
            rounds[kind].append(runs[kind]())
    return rounds


# The runs of every size: end-to-end on each CPU path, and model-only with two model threads and one.
# Each end-to-end path is paired with the model-only run of its model threads.
TWO, AHEAD, INLINE = "two model threads", "one model thread, decode-ahead", "one model thread, inline"
WORKERS = "decoding workers"  # beside a GPU (or with --workers): the one path
MODEL_OF = {TWO: "model, two threads", AHEAD: "model, one thread", INLINE: "model, one thread",
            WORKERS: "model only"}


def path_runs(size: dict, args, device, work: Path, clips: int, model) -> tuple[dict, str]:
    """The runs to time (kind -> callable) and the kind of the default end-to-end path.
    ``model(kind, model_threads)`` makes a model-only run."""
    if device.type != "cpu" or args.workers:  # decoding workers, one model thread: one path
        return {WORKERS: e2e_run(size, args, device, work, None, clips),
                MODEL_OF[WORKERS]: model(MODEL_OF[WORKERS], 1)}, WORKERS
    threads, ahead = decoding_plan(size["videos"], device, args.workers)  # extract_features' choice
    default = TWO if threads > 1 else AHEAD if ahead else INLINE
    return {TWO: e2e_run(size, args, device, work, 2, clips),
            AHEAD: e2e_run(size, args, device, work, 1, clips, decode_ahead=True),
            INLINE: e2e_run(size, args, device, work, 1, clips, decode_ahead=False),
            MODEL_OF[TWO]: model(MODEL_OF[TWO], 2), MODEL_OF[AHEAD]: model(MODEL_OF[AHEAD], 1)}, default


def measure(size: dict, args, device, work: Path) -> dict:
    """Every figure of one size (see the module docstring)."""
    s = size["settings"]
    backbone = load_extraction_backbone(s["backbone"], None, 0).to(device)
    transform = ClipTransform(s["short_side"], s["crop_size"], train=False)
    before = machine_snapshot()
    batches, decode = decode_only(size, args.batch_size)
    for _ in range(2):  # warm-up (allocator, cuDNN autotuning) outside every timed section
        encode_clips(backbone, batches[0], transform, device)
    model_cpu_s = {}

    def model(kind: str, model_threads: int):
        def run() -> float:
            wall_s, cpu_s = model_only(backbone, batches, transform, device, model_threads)
            model_cpu_s.setdefault(kind, []).append(cpu_s)
            return wall_s
        return run

    runs, default = path_runs(size, args, device, work, decode["clips"], model)
    rounds = timed_rounds(runs, size["repeats"])
    per_video = [len(clip_frame_indices(probe_video(p).num_frames_at(s["frame_rate"]),
                                        s["clip_length_frames"], s["stride_frames"])) for _, p in size["videos"]]
    reopen = reopen_per_clip(size, per_video)
    codec = torchcodec_decode(size, work) if not args.no_torchcodec else {"skipped": "--no-torchcodec"}
    quiet = quietness(before, machine_snapshot())
    assert decode["clips"] == sum(per_video), (decode["clips"], sum(per_video))
    return dict(clips=decode["clips"], rounds=rounds, default=default, model_cpu_s=model_cpu_s,
                torch_threads=torch.get_num_threads(), cores=usable_cores(), decode=decode, reopen=reopen,
                torchcodec=codec, quiet=quiet, videos=describe_videos(size["videos"]))


# --- torchcodec, in a child process ----------------------------------------------------------------

def _ffmpeg_for_torchcodec(work: Path) -> list[str]:
    """Library folders that let torchcodec load PyAV's own FFmpeg (this machine may have no system
    FFmpeg): links with the plain names torchcodec asks for (libavutil.so.60, ...) to PyAV's
    renamed copies, PyAV's library folder, and torch's CUDA runtime (torchcodec's wheel links it)."""
    import re

    import av

    site = Path(av.__file__).resolve().parent.parent
    links = work / "ffmpeg_for_torchcodec"
    links.mkdir(exist_ok=True)
    for lib in (site / "av.libs").glob("lib*.so*"):
        match = re.fullmatch(r"(lib(?:av|sw)\w+)-[0-9a-f]{8}\.so\.(\d+).*", lib.name)
        if match and not (links / f"{match[1]}.so.{match[2]}").exists():
            (links / f"{match[1]}.so.{match[2]}").symlink_to(lib)
    return [str(links), str(site / "av.libs"), *map(str, site.glob("nvidia/cu*/lib"))]


def torchcodec_decode(size: dict, work: Path, device: str = "cpu") -> dict:
    """torchcodec's decode-only figures for ``size`` (same clips as the PyAV rows), measured in a
    child process; ``{"skipped": why}`` when torchcodec is not installed or does not load."""
    if importlib.util.find_spec("torchcodec") is None:
        return {"skipped": f"torchcodec not installed ({TORCHCODEC_HINT})"}
    job = work / f"torchcodec_{size['name']}.json"
    job.write_text(json.dumps({"videos": [str(p) for _, p in size["videos"]], "settings": size["settings"],
                               "device": device}))
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(_ffmpeg_for_torchcodec(work) + [env.get("LD_LIBRARY_PATH", "")])
    done = subprocess.run([sys.executable, __file__, "--torchcodec-child", str(job)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"skipped": f"torchcodec failed: {last[:150]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def torchcodec_child(job_file: str) -> None:
    """In the child: decode every video with torchcodec at the clip rate and size (frames played at
    k / frame_rate, resized by FFmpeg in the decoder), cut the same clip windows, print the timings."""
    from torchcodec.decoders import VideoDecoder
    from torchcodec.transforms import Resize

    job = json.loads(Path(job_file).read_text())
    s, device = job["settings"], job["device"]
    infos = [probe_video(p) for p in job["videos"]]  # outside the timed part, like the PyAV rows'
    wall0, cpu0 = time.perf_counter(), time.process_time()
    clips = 0
    for path, info in zip(job["videos"], infos):
        n = info.num_frames_at(s["frame_rate"])
        width, height = output_size(info.width, info.height, s["short_side"])
        seconds = [k / s["frame_rate"] for k in range(n)]
        if device == "cpu":  # resized by FFmpeg inside the decoder
            decoder = VideoDecoder(path, dimension_order="NHWC", num_ffmpeg_threads=0,
                                   transforms=[Resize((height, width))])
            frames = decoder.get_frames_played_at(seconds=seconds).data
        else:  # decoded on the GPU (NVDEC) at full size, resized there
            frames = VideoDecoder(path, device=device).get_frames_played_at(seconds=seconds).data
            frames = torch.nn.functional.interpolate(frames.float(), size=(height, width), mode="bilinear",
                                                     antialias=False).round().to(torch.uint8)
            frames = frames.permute(0, 2, 3, 1)  # NHWC, as the PyAV path gives
        index = torch.from_numpy(clip_frame_indices(n, s["clip_length_frames"], s["stride_frames"]))
        clips += len(frames[index.to(frames.device)])
    if job["device"] != "cpu":
        torch.cuda.synchronize()
    print(json.dumps(dict(clips=clips, wall_s=time.perf_counter() - wall0, cpu_s=time.process_time() - cpu0,
                          source_frames=sum(i.num_frames for i in infos))))


# --- The table -------------------------------------------------------------------------------------

def paired_ratios(r: dict, e2e: str | None = None, model: str | None = None) -> list[float]:
    """Per round: model-only seconds / end-to-end seconds, i.e. end-to-end / model-only throughput
    of two runs seconds apart. ``e2e``: an end-to-end kind (default: the default path);
    ``model``: a model-only kind (default: the one of ``e2e``'s model threads)."""
    e2e = e2e or r["default"]
    return [m / e for m, e in zip(r["rounds"][model or MODEL_OF[e2e]], r["rounds"][e2e])]


def median_ratio(r: dict, e2e: str | None = None, model: str | None = None) -> float:
    """end-to-end / model-only: the median of the rounds' paired ratios."""
    return float(np.median(paired_ratios(r, e2e, model)))


def fastest_model(r: dict) -> str:
    """The model-only kind with the shortest median time."""
    return min((k for k in r["rounds"] if k in MODEL_OF.values()), key=lambda k: np.median(r["rounds"][k]))


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells it, else all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def ratio_ceiling(r: dict) -> float | None:
    """The highest end-to-end / model-only the default CPU path can reach on ``r["cores"]`` cores,
    decoding costing the CPU it costs alone: end-to-end must fit the model's CPU and decoding's on
    those cores, so it takes at least (model CPU + decode CPU) / cores against the model-only's wall
    time W: ``min(1, cores * W / (model CPU + decode CPU))``. It counts spinning OpenMP threads as
    busy (time a decoding thread may partly take), so with several torch threads per model it is a
    lower estimate; exact for one torch thread each (two model threads). None beside a GPU."""
    if r["default"] == WORKERS:
        return None
    model = MODEL_OF[r["default"]]
    wall_s, cpu_s = float(np.median(r["rounds"][model])), float(np.median(r["model_cpu_s"][model]))
    return min(1.0, r["cores"] * wall_s / (cpu_s + r["decode"]["cpu_s"]))


def _rate(n, seconds) -> str:
    return f"{n / seconds:.1f}" if seconds > 0 else "-"


def _path_rows(r: dict) -> dict:
    """Per end-to-end path: clips/s; per model-only kind: clips/s, ms/clip, cores kept busy."""
    rows = {}
    for kind, seconds in r["rounds"].items():
        median_s = float(np.median(seconds))
        label = f"end-to-end, {kind}" if kind in MODEL_OF else kind
        rows[f"{label} (clips/s)"] = _rate(r["clips"], median_s)
        if kind not in MODEL_OF:
            rows[f"{label} (ms/clip, wall)"] = f"{1e3 * median_s / r['clips']:.2f}"
            rows[f"{label} (cores kept busy)"] = f"{float(np.median(r['model_cpu_s'][kind])) / median_s:.2f}"
    return rows


def _ratio_rows(r: dict) -> dict:
    ratios, fastest = paired_ratios(r), fastest_model(r)
    ceiling = ratio_ceiling(r)
    rows = {"end-to-end / model-only, default path, rounds (min-max)": f"{min(ratios):.2f}-{max(ratios):.2f}",
            "end-to-end / model-only, default path (median)": f"{median_ratio(r):.2f}",
            f"its ceiling on {r['cores']} cores: cores x model wall / (model + decode CPU)":
                "-" if ceiling is None else f"{ceiling:.2f}"}
    for kind in (k for k in r["rounds"] if k in MODEL_OF):
        rows[f"{kind} / its model-only (median)"] = f"{median_ratio(r, kind):.2f}"
        rows[f"{kind} / fastest model-only (median)"] = f"{median_ratio(r, kind, fastest):.2f}"
    return rows


def table_rows(r: dict) -> dict:
    """One column of the table: label -> cell (times: the median over the rounds)."""
    d, reopen, codec, q = r["decode"], r["reopen"], r["torchcodec"], r["quiet"]
    rows = {
        "videos": r["videos"],
        "clips": str(r["clips"]),
        "rounds (each: every run below once)": str(len(paired_ratios(r))),
        "default path": r["default"],
        **_path_rows(r),
        "fastest model-only": fastest_model(r),
        "decode only, PyAV stream (clips/s, wall)": _rate(d["clips"], d["wall_s"]),
        "decode only, PyAV (source frames/s per core)": _rate(d["source_frames"], d["cpu_s"]),
        "decode only, PyAV (clips/s per core)": _rate(d["clips"], d["cpu_s"]),
        "decode only, PyAV (CPU ms/clip)": f"{1e3 * d['cpu_s'] / d['clips']:.2f}",
    }
    if "skipped" in codec:
        rows["decode only, torchcodec"] = codec["skipped"]
    else:
        rows["decode only, torchcodec (clips/s, wall)"] = _rate(codec["clips"], codec["wall_s"])
        rows["decode only, torchcodec (source frames/s per core)"] = _rate(codec["source_frames"], codec["cpu_s"])
        rows["decode only, torchcodec (clips/s per core)"] = _rate(codec["clips"], codec["cpu_s"])
    rows["reopen per clip, TSP's way (clips/s, wall)"] = _rate(reopen["clips"], reopen["wall_s"])
    rows["reopen per clip, TSP's way (clips/s per core)"] = _rate(reopen["clips"], reopen["cpu_s"])
    rows["others' CPU share during the run"] = f"{100 * q['others_share']:.0f}%"
    rows["load average before -> after"] = f"{q['load_before']:.2f} -> {q['load_after']:.2f}"
    return {**rows, **_ratio_rows(r)}


def print_table(columns: dict[str, dict]) -> None:
    labels = list(next(iter(columns.values())))
    header = [""] + list(columns)
    body = [[label] + [col.get(label, "") for col in columns.values()] for label in labels]
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
    for row in [header] + body:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))


def print_verdict(results: dict, sizes_run: list[dict], threads: int, device) -> None:
    for size in sizes_run:
        r = results[size["name"]]
        ratios = paired_ratios(r)
        fastest, ceiling = fastest_model(r), ratio_ceiling(r)
        bound = "" if ceiling is None else f"; its ceiling with this decoding cost: {ceiling:.2f}"
        print(f"{size['name']}: end-to-end / model-only = {median_ratio(r):.2f} (median of {len(ratios)} rounds, "
              f"{min(ratios):.2f}-{max(ratios):.2f}; goal >= {GOAL}{bound}; default path: {r['default']}; "
              f"against the fastest model-only ({fastest}): {median_ratio(r, model=fastest):.2f}; "
              f"{size['settings']})")
    worst = max(r["quiet"]["others_share"] for r in results.values())
    verdict = ("quiet" if worst <= 0.05 else
               "NOT quiet: other processes took CPU, so these numbers are lower bounds")
    print(f"machine: {os.cpu_count()} cores, torch threads {threads}, device {device}; other processes "
          f"used up to {100 * worst:.0f}% of the CPU during a size: {verdict}")


# --- Main ------------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs, seconds")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "tsplab_bench_extract"),
                        help="where generated videos are kept between runs (default: %(default)s)")
    parser.add_argument("--videos", help="realistic size: a folder (or list file) of your own videos")
    parser.add_argument("--size", choices=["both", "demo", "realistic"], default="both",
                        help="the sizes to measure (default: both, side by side)")
    parser.add_argument("--demo-videos", type=int, default=60, help="demo size: number of videos")
    parser.add_argument("--realistic-videos", type=int, default=4, help="generated 720p videos")
    parser.add_argument("--realistic-seconds", type=float, default=30.0, help="length of each")
    parser.add_argument("--realistic-backbone", default="r2plus1d_18", choices=["r2plus1d_18", "r2plus1d_34"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None,
                        help="decoding processes (default: extract_features' choice: none on a CPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="rounds of model-only and end-to-end per size; the ratio is the median of the "
                        "rounds' paired ratios (default: 9 at the demo size, whose runs last seconds, "
                        "2 at the realistic one, 1 with --quick)")
    parser.add_argument("--seek-clips", type=int, default=100, help="clips timed for reopen-per-clip")
    parser.add_argument("--no-torchcodec", action="store_true", help="skip the torchcodec row")
    parser.add_argument("--torchcodec-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seek_clips = min(args.seek_clips, 10)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.torchcodec_child:
        return torchcodec_child(args.torchcodec_child)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    warnings.simplefilter("ignore")  # the random-weights warning: timing needs no trained weights
    device = pick_device(args.device)
    cache = Path(args.cache_dir).expanduser() / ("quick" if args.quick else "full")
    cache.mkdir(parents=True, exist_ok=True)
    sizes_run = sizes(args, cache)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_extract_", dir=cache) as work:
        for size in sizes_run:
            print(f"measuring {size['name']}: {size['settings']} ...", flush=True)
            results[size["name"]] = measure(size, args, device, Path(work))
    print_table({name: table_rows(r) for name, r in results.items()})
    print_verdict(results, sizes_run, torch.get_num_threads(), device)


if __name__ == "__main__":
    main()
