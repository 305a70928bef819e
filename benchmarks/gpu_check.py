"""GPU check of tsplab, one table, in under 5 minutes on one modern GPU (``bash benchmarks/gpu_check.sh``).

1. Pretraining: a few hundred AMP steps of TSP with R(2+1)D-34 (random initial weights, TSP's clip:
   16 frames at 15 fps, short side 128, crop 112, batch 32) on a generated synthetic benchmark,
   through ``tsplab.pretrain.pretrain``: steps/s, clips/s, the share of step time spent waiting for
   data, peak GPU memory.
2. Extraction: R(2+1)D-34 features of generated 720p H.264 videos through
   ``tsplab.features.extraction.extract_features`` with 8 decoding worker processes, against the
   model alone on the same clips already in memory (``end-to-end / model-only``: the median of 2
   paired rounds, as in ``bench_extract.py``), PyAV's decoding
   alone, and torchcodec's CPU and CUDA decoding on the same clips when torchcodec is installed.
3. DDP: a 2-process NCCL run of ``tsplab pretrain`` under torchrun when two GPUs are visible.

Without a CUDA device it stops at once with one line (exit code 2). ``--cpu-smoke`` runs the same
steps at toy sizes on the CPU (to check the script itself on a machine without a GPU)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent

SIZES = {
    "gpu": dict(
        dataset=dict(num_train_videos=200, num_val_videos=32, num_frames_range=(96, 160)),
        pretrain=dict(backbone="r2plus1d_34", clip_length_frames=16, frame_rate=15.0, resize_short_side=128,
                      crop_size=112, batch_size=32, epochs=3, max_steps_per_epoch=100, workers=8),
        extract=dict(videos=8, seconds=20.0, width=1280, height=720, backbone="r2plus1d_34",
                     batch_size=32, workers=8),
        ddp=dict(epochs=1, max_steps_per_epoch=20, batch_size=16, workers=4)),
    "cpu_smoke": dict(
        dataset=dict(num_train_videos=6, num_val_videos=2, num_frames_range=(40, 56), frame_size=32),
        pretrain=dict(backbone="r2plus1d_tiny", clip_length_frames=8, frame_rate=15.0, resize_short_side=32,
                      crop_size=28, batch_size=4, epochs=2, max_steps_per_epoch=2, workers=0, threads=1),
        extract=dict(videos=2, seconds=2.0, width=320, height=180, backbone="r2plus1d_tiny",
                     batch_size=8, workers=1),
        ddp=None),
}


def no_cuda_message() -> str | None:
    """The one-line reason this machine cannot run the check, or None when a CUDA device is there."""
    import torch

    if torch.cuda.is_available():
        return None
    build = f"torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}"
    return (f"gpu_check: error: no CUDA device visible ({build}, CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')!s}); run it on a machine with an NVIDIA "
            f"GPU and a CUDA build of torch")


# --- 1. Pretraining -----------------------------------------------------------------------------------

def make_dataset(folder: Path, size: dict, workers: int) -> Path:
    """A synthetic benchmark (annotations.json + videos/) big enough for the steps asked."""
    from tsplab.benchmark import SyntheticConfig, generate_benchmark

    return generate_benchmark(folder, SyntheticConfig(**size["dataset"]), 0, workers=workers, progress=False)


def pretraining(dataset: Path, out: Path, size: dict, device) -> dict:
    """``tsplab.pretrain.pretrain`` of TSP at ``size['pretrain']``; its speed and peak memory."""
    import torch

    from tsplab.pretrain import pretrain
    from tsplab.pretrain.recipes import pretrain_config

    config = pretrain_config("tsp", method="tsp", dataset_dir=str(dataset), run_dir=str(out / "run"),
                             frame_cache_dir=str(out / "frame_cache"), weights=None, amp=True,
                             progress=False, device=device.type, **size["pretrain"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    result = pretrain(config)
    wall_s = time.perf_counter() - t0
    m = result.metrics
    last = m.iloc[-1]
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"steps": int(m.train_steps.sum()), "epochs": len(m),
            "steps_per_s": m.train_steps.sum() / m.train_seconds.sum(),
            "steps_per_s_last": last.train_steps / last.train_seconds, "clips_per_s_last": last.clips_per_s,
            "wait_share": float((m.data_wait_share * m.train_seconds).sum() / m.train_seconds.sum()),
            "peak_gib": peak, "wall_s": wall_s, "config": config}


# --- 2. Extraction ------------------------------------------------------------------------------------

def extraction(out: Path, size: dict, device) -> dict:
    """End-to-end extraction with decoding workers against the model alone (bench_extract's pieces)."""
    import numpy as np
    import torch

    sys.path.insert(0, str(HERE))
    import bench_extract as B

    from tsplab.backbones import ClipTransform
    from tsplab.features.extraction import load_extraction_backbone

    e = size["extract"]
    videos = B.realistic_videos(out / "videos", e["videos"], e["seconds"], e["width"], e["height"], 30.0)
    clip = {**B.REALISTIC, "backbone": e["backbone"]}
    bench = dict(name="gpu", settings=clip, videos=videos, seek_clips=0)
    batches, decode = B.decode_only(bench, e["batch_size"])
    backbone = load_extraction_backbone(clip["backbone"], None, 0).to(device)
    transform = ClipTransform(clip["short_side"], clip["crop_size"], train=False)
    torch.backends.cudnn.benchmark = True
    for _ in range(3):  # warm-up: cuDNN autotuning, allocator
        B.encode_clips(backbone, batches[0], transform, device)
    args = SimpleNamespace(batch_size=e["batch_size"], workers=e["workers"])
    # bench_extract's paired rounds (worker processes decode, one model thread); every clip checked
    def model():
        return B.model_only(backbone, batches, transform, device)[0]  # wall seconds

    rounds = B.timed_rounds({"e2e": B.e2e_run(bench, args, device, out, None, decode["clips"]), "model": model}, 2)
    codec = {kind: B.torchcodec_decode(bench, out, device=kind) for kind in dict.fromkeys(("cpu", device.type))}
    return {"videos": B.describe_videos(videos), "clips": decode["clips"],
            "e2e_s": float(np.median(rounds["e2e"])), "model_s": float(np.median(rounds["model"])),
            "ratio": B.median_ratio({"rounds": rounds}, "e2e", "model"),
            "decode": decode, "torchcodec": codec, "workers": e["workers"]}


# --- 3. DDP -------------------------------------------------------------------------------------------

def ddp_smoke(dataset: Path, out: Path, size: dict, pretrained: dict) -> str:
    """``torchrun --nproc_per_node=2 -m tsplab pretrain`` (NCCL) on the same data; one line."""
    import torch

    if size["ddp"] is None:
        return "skipped (--cpu-smoke)"
    if torch.cuda.device_count() < 2:
        return f"skipped: {torch.cuda.device_count()} GPU visible, 2 needed"
    p, d = pretrained["config"], size["ddp"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "tsplab",
           "pretrain", "--method", "tsp", "--dataset", str(dataset), "--run-dir", str(out / "ddp"),
           "--weights", "none", "--backbone", p.backbone, "--epochs", str(d["epochs"]),
           "--batch-size", str(d["batch_size"]), "--workers", str(d["workers"]),
           "--set", f"max_steps_per_epoch={d['max_steps_per_epoch']}", "--set", f"frame_cache_dir={p.frame_cache_dir}",
           "--set", "progress=false"]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    except subprocess.TimeoutExpired:
        return "FAILED: no result within 180 s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"FAILED (exit {done.returncode}): {last[:160]}"
    from tsplab.pretrain import read_metrics

    m = read_metrics(out / "ddp" / "pretrain" / "tsp")
    return (f"ok: 2 processes, {int(m.train_steps.sum())} steps of {d['batch_size']} clips each, "
            f"{m.train_steps.sum() / m.train_seconds.sum():.2f} steps/s, {time.perf_counter() - t0:.0f} s in all")


# --- The table ----------------------------------------------------------------------------------------

def _codec_cell(result: dict) -> str:
    if "skipped" in result:
        return result["skipped"]
    return (f"{result['clips'] / result['wall_s']:.1f} clips/s, "
            f"{result['source_frames'] / result['cpu_s']:.0f} source frames per CPU-s")


def table(pre: dict, ext: dict, ddp: str, device) -> list[tuple[str, str]]:
    d = ext["decode"]
    return [
        ("pretraining", (f"TSP, {pre['config'].backbone}, AMP, batch {pre['config'].batch_size}, "
                         f"{pre['config'].workers} loader workers: {pre['steps']} steps in {pre['epochs']} epochs")),
        ("  steps/s (all, last epoch)", (f"{pre['steps_per_s']:.2f}, {pre['steps_per_s_last']:.2f} "
                                         f"({pre['clips_per_s_last']:.0f} clips/s)")),
        ("  data-wait share", f"{100 * pre['wait_share']:.1f}%"),
        ("  peak GPU memory", f"{pre['peak_gib']:.1f} GiB"),
        ("  run wall time", f"{pre['wall_s']:.0f} s (data, frame cache, GVFs, validation included)"),
        ("extraction", f"{ext['videos']}, {ext['clips']} clips of 16 x 112 px, {pre['config'].backbone}"),
        ("  end-to-end", f"{ext['clips'] / ext['e2e_s']:.1f} clips/s (decoding workers: {ext['workers']})"),
        ("  model only", f"{ext['clips'] / ext['model_s']:.1f} clips/s"),
        ("  end-to-end / model-only", f"{ext['ratio']:.2f}"),  # median of the paired rounds
        # How many cores of PyAV decoding the model could consume: the workers a GPU needs.
        ("  decoding cores to keep up", (f"~{(ext['clips'] / ext['model_s']) / (d['clips'] / d['cpu_s']):.1f} "
                                         "(model clips/s / decoded clips per CPU-s)")),
        ("  decode only, PyAV, 1 process", (f"{d['clips'] / d['wall_s']:.1f} clips/s, "
                                            f"{d['source_frames'] / d['cpu_s']:.0f} source frames per CPU-s")),
    ] + [(f"  decode only, torchcodec {kind.upper()}", _codec_cell(result))
         for kind, result in ext["torchcodec"].items()] + [("DDP, 2 x NCCL", ddp)]


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="working folder (default: a new temporary folder, removed after)")
    parser.add_argument("--cpu-smoke", action="store_true", help="toy sizes on the CPU: checks the script")
    args = parser.parse_args(argv)
    message = None if args.cpu_smoke else no_cuda_message()
    if message:
        print(message, file=sys.stderr)
        return 2
    import warnings

    import torch

    warnings.simplefilter("ignore")  # random weights, dropped segments: expected here
    size = SIZES["cpu_smoke" if args.cpu_smoke else "gpu"]
    device = torch.device("cpu") if args.cpu_smoke else torch.device("cuda", 0)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tsplab_gpu_check_") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        dataset = make_dataset(out / "dataset", size, workers=max(1, min(16, os.cpu_count() or 1)))
        pre = pretraining(dataset, out, size, device)
        ext = extraction(out, size, device)
        ddp = ddp_smoke(dataset, out, size, pre)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (--cpu-smoke)"
    print(f"tsplab GPU check: {name}, {torch.cuda.device_count()} GPU(s) visible, torch {torch.__version__} "
          f"(CUDA {torch.version.cuda}), {os.cpu_count()} CPU cores; {time.perf_counter() - t0:.0f} s")
    print_table(table(pre, ext, ddp, device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
