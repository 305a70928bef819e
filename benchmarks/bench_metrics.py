"""Time detection mAP and proposal AR@AN on the real ActivityNet v1.3 validation ground truth.

4,926 videos / 7,654 instances (TSP's CSV) and 100 scored predictions per video: half of them near a
ground-truth instance of the video (with its label: what a localizer produces), half random segments
with random labels. Prints the seconds each evaluation takes (best of ``--repeat`` runs: the
machine may be shared).

    .venv/bin/python benchmarks/bench_metrics.py [--gt PATH] [--per-video 100] [--repeat 3]
"""
from __future__ import annotations

import argparse
import warnings
import time

import numpy as np
import pandas as pd

from tsplab.evaluation import evaluate_detection, evaluate_proposals, load_ground_truth
from tsplab.datasets.presets import DATA_DIR
from tsplab.runs import resolve

DEFAULT_GT = str(DATA_DIR / "activitynet" / "activitynet_v1-3_valid_tsp_groundtruth.csv")


def random_predictions(gt: pd.DataFrame, durations: pd.Series, per_video: int, seed: int
                       ) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    videos = durations.index.to_numpy()
    n = len(videos) * per_video
    video = np.repeat(videos, per_video)
    duration = np.repeat(durations.to_numpy(float), per_video)
    start, end = np.sort(rng.random((2, n)) * duration, axis=0)
    label = rng.choice(np.sort(gt["label"].unique()), n)
    # half of each video's predictions jitter one of its instances
    near = np.tile(np.arange(per_video) < per_video // 2, len(videos))
    by_video = gt.groupby("video").indices
    pick = np.array([idx[rng.integers(len(idx))] for v in video[near] for idx in [by_video[v]]])
    length = (gt["t_end_s"].to_numpy() - gt["t_start_s"].to_numpy())[pick]
    start[near] = gt["t_start_s"].to_numpy()[pick] + rng.normal(0, 0.2, len(pick)) * length
    end[near] = gt["t_end_s"].to_numpy()[pick] + rng.normal(0, 0.2, len(pick)) * length
    label[near] = gt["label"].to_numpy()[pick]
    # Valid segments, as a localizer writes them: inside the video (clipped, as tsplab.localizer
    # does) and of positive length (a clipped or zero-length instance's copy is given 0.1 s).
    start, end = (np.clip(t, 0.0, duration) for t in (np.minimum(start, end), np.maximum(start, end)))
    return pd.DataFrame({"video": video, "t_start_s": start, "t_end_s": np.maximum(end, start + 0.1),
                         "label": label, "score": rng.random(n)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", default=DEFAULT_GT)
    parser.add_argument("--per-video", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from tsplab.datasets import read_annotations

    ann = read_annotations(resolve(args.gt))
    gt = load_ground_truth(resolve(args.gt))
    durations = ann.videos.set_index("video")["duration_s"]
    pred = random_predictions(gt, durations, args.per_video, args.seed)
    print(f"ground truth: {gt['video'].nunique()} videos, {len(gt)} instances; "
          f"predictions: {len(pred)}")

    def best_time(run):
        seconds = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = run()
            seconds.append(time.perf_counter() - start)
        return min(seconds), result

    with warnings.catch_warnings(record=True) as caught:  # the ground truth's notes, once each
        warnings.simplefilter("always")
        t_det, det = best_time(lambda: evaluate_detection(gt, pred, "activitynet"))
        t_prop, prop = best_time(lambda: evaluate_proposals(gt, pred, "activitynet"))
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"warning: {message[:150]} ...")
    assert len(det.dropped) == 0 and len(prop.dropped) == 0, "the benchmark's predictions must be valid"
    print(f"detection mAP (10 tIoU thresholds): {t_det:.2f} s "
          f"(average mAP {100 * det.average_mAP:.2f} %)")
    print(f"proposals AR@AN + AUC:              {t_prop:.2f} s "
          f"(AR@100 {100 * prop.ar_at[100]:.2f} %, AUC {100 * prop.auc:.2f} %)")

if __name__ == "__main__":
    main()
