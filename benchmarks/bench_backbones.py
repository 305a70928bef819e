"""Training and inference throughput (clips/s) of the backbones on this machine's CPU.

    python benchmarks/bench_backbones.py --threads 2

Training = forward + cross-entropy on a linear head + backward + SGD step, in train mode; inference =
forward under ``torch.inference_mode`` in eval mode. Random normalized input, so only compute is
measured (no decoding, no transform). A warm-up iteration is not timed; each figure is batch /
(median time of one iteration).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import pandas as pd
import torch
import torch.nn as nn

from tsplab.backbones import build_backbone

# (backbone, frames, side, batch size, timed iterations); r2plus1d_18 at TSP's clip size is slow on a
# CPU, so it gets few iterations.
CASES = [
    ("r2plus1d_tiny", 8, 32, 32, 10),
    ("r2plus1d_tiny", 8, 64, 16, 10),
    ("r2plus1d_18", 16, 112, 2, 2),
]


def measure(name: str, frames: int, side: int, batch: int, iters: int, warmup: int = 1) -> dict:
    torch.manual_seed(0)
    model = build_backbone(name)
    head = nn.Linear(model.feature_dim, 10)
    opt = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=1e-3, momentum=0.9)
    clips = torch.randn(batch, 3, frames, side, side)
    labels = torch.randint(0, 10, (batch,))

    def train_step():
        loss = nn.functional.cross_entropy(head(model(clips)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    train_s = _median_seconds(train_step, iters, warmup)
    model.eval()
    with torch.inference_mode():
        infer_s = _median_seconds(lambda: model(clips), iters, warmup)
    return {"backbone": name, "clip": f"{frames}x{side}x{side}", "batch": batch,
            "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "train_clips_per_s": round(batch / train_s, 1),
            "infer_clips_per_s": round(batch / infer_s, 1)}


def _median_seconds(fn, iters: int, warmup: int) -> float:
    """Median wall time of one call: the median, not the mean, because the CPU may be shared and a
    few iterations then stall."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--only", default=None, help="run only this backbone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    rows = [measure(*case) for case in CASES if args.only in (None, case[0])]
    print(f"torch {torch.__version__}, {args.threads} threads, "
          f"load average before: {load:.2f} on {os.cpu_count()} CPUs")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
