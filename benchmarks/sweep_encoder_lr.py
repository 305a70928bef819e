"""The synthetic recipe's encoder/head learning-rate ratio, chosen on pretraining validation only.

TSP §4.1 fine-tunes the encoder with a rate 20-100x below the heads' (backbone 1e-4, heads
0.002-0.01, stem frozen). The synthetic recipe fine-tunes the benchmark's source encoder with Adam;
this sweep trains TAC and TSP from that encoder on the default benchmark with the heads at the
recipe's ``fc_lr`` and the encoder (stem and backbone) at ``ratio * fc_lr`` for each ``--ratios``,
one seed, the recipe's epochs, and reports each run's best pretraining-validation score: TAC's clip
accuracy, TSP's mean of region and action accuracy (``valid_acc_avg``, what picks ``best.pt``), on
the videos held out of the training subset (``valid_holdout``), never the localizer's test videos.
The rule that turns the table into a ratio is in the README (written before the sweep ran)::

    python benchmarks/sweep_encoder_lr.py --dataset /tmp/bench_default --run-dir /tmp/lr_sweep

Prints one row per run and the table of scores by ratio; ``--max-steps`` caps the steps per epoch
(0: the whole epoch).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from tsplab.pretrain import pretrain
from tsplab.pretrain.recipes import pretrain_config, RECIPES


def run(dataset: str, run_dir: str, method: str, ratio: float, args, gvf_file: str = "") -> dict:
    head = RECIPES["synthetic"]["fc_lr"]
    name = f"{method}_r{ratio:g}"
    # TSP's frozen GVFs come from the initial encoder, the same in every run: computed once.
    extra = {"gvf_file": gvf_file} if method == "tsp" and gvf_file else {}
    config = pretrain_config("synthetic", method=method, dataset_dir=dataset, run_dir=run_dir, output_name=name,
                             fc_lr=head, backbone_lr=ratio * head, stem_lr=ratio * head, seed=args.seed,
                             max_steps_per_epoch=args.max_steps, progress=False, **extra)
    start = time.perf_counter()
    result = pretrain(config)
    metrics = result.metrics.set_index("epoch")
    best = metrics.loc[result.best_epoch]
    row = {"method": method, "ratio": ratio, "encoder_lr": ratio * head, "head_lr": head,
           "best_epoch": result.best_epoch, "score": float(best["valid_acc_avg"]),
           "scores_by_epoch": " ".join(f"{v:.3f}" for v in metrics["valid_acc_avg"]),
           "steps_per_epoch": int(metrics["train_steps"].iloc[0]),
           "minutes": round((time.perf_counter() - start) / 60, 1)}
    print(row, flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="the default synthetic benchmark (tsplab synth --size default)")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--ratios", default="1,0.1,0.03,0.01", help="encoder rate / head rate")
    p.add_argument("--methods", default="tac,tsp")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=0, help="cap on steps per epoch (0: whole epochs)")
    args = p.parse_args()
    rows, gvf_file = [], ""
    for ratio in args.ratios.split(","):
        for method in args.methods.split(","):
            rows.append(run(args.dataset, args.run_dir, method, float(ratio), args, gvf_file))
            computed = Path(args.run_dir) / "pretrain" / f"{method}_r{float(ratio):g}" / "gvf_initial_max.h5"
            gvf_file = gvf_file or (str(computed) if method == "tsp" and computed.is_file() else "")
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    wide = table.pivot(index="ratio", columns="method", values="score").sort_index(ascending=False)
    wide["mean"] = wide.mean(axis=1)
    print(wide.round(4).to_string())


if __name__ == "__main__":
    main()
