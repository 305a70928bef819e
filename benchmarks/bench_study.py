"""What a study costs: the default study (TSP Study 1 x 5 seeds on the default benchmark) timed with
``--jobs 1`` and ``--jobs 2``, each into its own folder (so the second does not resume the first)::

    python benchmarks/bench_study.py                       # both: ~75 and ~50 min on 2 quiet cores
    python benchmarks/bench_study.py --seeds 1             # one seed each: 16.6 and 11.2 min (README)

Each run is ``tsplab study --budget BUDGET --seeds N --jobs J --out OUT/jobsJ``, from an empty folder:
the benchmark, its source stage (TAC on the source dataset) and the frame cache are part of a study's
cost. Prints one row per setting: minutes in all, the sum of the cells' notebook minutes (the rest is
the preparation and papermill's kernel starts), cells finished / failed, and the machine (host, cores).
Not a test: it takes hours; run it on a quiet machine and write the figures into the README.
"""
from __future__ import annotations

import argparse
import os
import socket
import time

import pandas as pd

from tsplab.study import BUDGETS, available_cores, run_study


def time_study(out: str, budget: str, seeds: int, jobs: int, conditions) -> dict:
    start = time.perf_counter()
    result = run_study(out, budget, seeds, conditions, jobs=jobs)
    total_s = time.perf_counter() - start
    cells_s = float(result.cells["seconds"].sum())
    return dict(jobs=jobs, seeds=seeds, cells=len(result.cells),
                finished=int((result.cells["status"] == "finished").sum()), failed=len(result.failed),
                total_min=round(total_s / 60, 1), cells_notebook_min=round(cells_s / 60, 1),
                host=socket.gethostname(), cores=available_cores(), out=out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="default", choices=list(BUDGETS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--conditions", nargs="+", default=None, help="default: all of Study 1")
    parser.add_argument("--out", default="runs/bench_study", help="OUT/jobs<J> per setting")
    args = parser.parse_args()
    rows = [time_study(os.path.join(args.out, f"jobs{j}"), args.budget, args.seeds, j, args.conditions)
            for j in args.jobs]
    with pd.option_context("display.width", 160):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
