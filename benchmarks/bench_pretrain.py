"""Pretraining on the synthetic benchmark, through the real loop (frame cache, DataLoader workers,
batch transform, optimizer).

Throughput: clips/s and the share of step time spent waiting for data, for TAC and TSP, for a few
hundred steps::

    python benchmarks/bench_pretrain.py --steps 200

Each method runs one epoch capped at ``--steps`` training steps, then a full validation pass; the first
method also builds the frame cache and TSP computes its frozen GVFs (``setup_s``).

Whole runs (``--full``): each method trains with the ``synthetic`` recipe as it is (what the demo
runs), then a linear probe tells foreground from background clips on the frozen features of each
encoder (logistic regression on uniformly sampled, balanced training clips; accuracy on validation
clips). TSP's region head should end with a training loss well below 0.4 and an accuracy clearly
above the TAC encoder's probe::

    python benchmarks/bench_pretrain.py --full

Generates the default synthetic benchmark into ``--dataset`` if it is absent (a few minutes once).
Run folders go to ``--run-dir`` (frame cache shared). Prints one row per method.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
import torch

from tsplab.benchmark import generate_benchmark
from tsplab.pretrain import pretrain
from tsplab.pretrain.recipes import pretrain_config


def clip_features(model, dataset, config, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Features ``[N, F]`` of the dataset's balanced, evenly spaced clips (eval transform) and their
    region labels ``[N]``."""
    from tsplab.backbones import ClipTransform
    from tsplab.pretrain.sampling import EpochSampler

    transform = ClipTransform(config.resize_short_side, config.crop_size, train=False)
    keys = list(EpochSampler(len(dataset), shuffle=False, balance_groups=dataset.region_labels, pad=False))
    encoder = model.features.eval()
    feats, labels = [], []
    with torch.inference_mode():
        for i in range(0, len(keys), batch_size):
            items = [dataset[k] for k in keys[i:i + batch_size]]
            feats.append(encoder(transform(torch.stack([it["clip"] for it in items]))).numpy())
            labels += [int(it["region_label"]) for it in items]
    return np.concatenate(feats), np.asarray(labels)


def linear_probe_accuracy(train_x, train_y, valid_x, valid_y, steps: int = 300) -> float:
    """Validation accuracy of a logistic regression (standardized features, Adam, small L2)."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = torch.from_numpy((train_x - mean) / std).float()
    y = torch.from_numpy(train_y).float()
    head = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(x).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = head(torch.from_numpy((valid_x - mean) / std).float()).squeeze(1) > 0
    return float((pred.numpy() == valid_y.astype(bool)).mean())


def probe(result, config) -> float:
    """fg/bg linear-probe accuracy of a finished run's encoder (the model after its last epoch)."""
    from tsplab.pretrain.data import prepare_data
    from tsplab.pretrain.sampling import SegmentClipDataset

    data = prepare_data(config)
    kw = dict(frames=data.frames, labels=data.labels, clip_length_frames=data.clip_length_frames,
              frame_rate=data.frame_rate, clips_per_segment=config.clips_per_segment, jitter=False)
    train = SegmentClipDataset(data.train_table, data.video_dir, **kw)
    valid = SegmentClipDataset(data.valid_table, data.video_dir, **kw)
    return linear_probe_accuracy(*clip_features(result.model, train, config),
                                 *clip_features(result.model, valid, config))


def threads(args) -> dict:
    return {} if args.threads is None else {"threads": args.threads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="runs/bench/benchmark")
    parser.add_argument("--size", "--preset", dest="size", default="default",
                        help="synthetic benchmark size (--preset: its deprecated spelling)")
    parser.add_argument("--run-dir", default="runs/bench")
    parser.add_argument("--methods", nargs="+", default=["tac", "tsp"])
    parser.add_argument("--steps", type=int, default=200, help="training steps per method (at most)")
    parser.add_argument("--clips-per-segment", type=int, default=10,
                        help="throughput runs: enough clips for --steps in one epoch (TAC, on the "
                             "foreground segments only, has half as many as TSP)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch threads (default: the recipe's, 1)")
    parser.add_argument("--full", action="store_true", help="whole runs with the synthetic recipe + probes")
    args = parser.parse_args()
    if "--preset" in sys.argv[1:]:
        print("bench_pretrain: --preset is deprecated here, use --size", file=sys.stderr)

    generate_benchmark(args.dataset, args.size)
    if args.full:
        full_runs(args)
        return
    rows = []
    for method in args.methods:
        config = pretrain_config("synthetic", method=method, dataset_dir=args.dataset, run_dir=args.run_dir,
                                 output_name=f"bench_{method}", epochs=1, max_steps_per_epoch=args.steps,
                                 clips_per_segment=args.clips_per_segment, batch_size=args.batch_size,
                                 workers=args.workers, progress=False, **threads(args))
        for old in config.output_dir.glob("gvf_initial_*.h5"):
            old.unlink()  # time the GVF computation too
        start = time.perf_counter()
        result = pretrain(config)
        total = time.perf_counter() - start
        m = result.metrics.iloc[-1]
        rows.append(dict(method=method, steps=int(m["train_steps"]), batch=args.batch_size, workers=args.workers,
                         threads=config.threads or "torch default", clips_per_s=round(m["clips_per_s"], 1),
                         data_wait_share=round(m["data_wait_share"], 4),
                         train_s=round(m["train_seconds"], 1), valid_s=round(m["valid_seconds"], 1),
                         setup_s=round(total - m["train_seconds"] - m["valid_seconds"], 1),
                         total_s=round(total, 1)))
    with pd.option_context("display.width", 200):
        print(pd.DataFrame(rows).to_string(index=False))


def full_runs(args) -> None:
    rows = []
    for method in args.methods:
        config = pretrain_config("synthetic", method=method, dataset_dir=args.dataset, run_dir=args.run_dir,
                                 output_name=f"full_{method}", workers=args.workers, progress=False,
                                 **threads(args))
        start = time.perf_counter()
        result = pretrain(config)
        total = time.perf_counter() - start
        last = result.metrics.iloc[-1]
        rows.append(dict(
            method=method, epochs=config.epochs, seconds=round(total, 1),
            clips_per_s=round(result.metrics["clips_per_s"].mean(), 1),
            data_wait_share=round(result.metrics["data_wait_share"].mean(), 4),
            train_loss_region=round(last.get("train_loss_region", np.nan), 3),
            valid_acc_region=round(last.get("valid_acc_region", np.nan), 3),
            valid_acc_action=round(last["valid_acc_action"], 3),
            probe_acc_fg_bg=round(probe(result, config), 3)))
    with pd.option_context("display.width", 200):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
