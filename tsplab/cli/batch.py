"""``tsplab demo`` and ``tsplab study``: the notebooks run as a batch (papermill), once or over
conditions x seeds."""
from __future__ import annotations

import argparse
import sys

from tsplab.cli.common import DeprecatedSpelling, add_size, print_table
from tsplab.errors import InputError

DIALS_STUDY = "dials"  # tsplab.study.sweep.DIALS_STUDY (not imported at parse time: the study stack is heavy)

def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the built-in synthetic benchmark (notebooks via papermill)")
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    add_size(p, "synthetic benchmark size")
    p.add_argument("--methods", nargs="+", default=["tac", "tsp"],
                   help="pretraining methods to compare (default: tac tsp; also bsp, pal)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_demo)


def run_demo(args) -> int:
    from tsplab.pipeline import demo_comparison, demo_steps, run_pipeline
    from tsplab.pretrain.methods import get_method

    for method in args.methods:
        get_method(method)  # an unknown name stops here, before any work, listing the valid ones
    from tsplab.runs import resolve

    out = str(resolve(args.out))  # absolute: the notebooks run from notebooks/ and anchor at the root
    timings = run_pipeline(demo_steps(out, benchmark_size=args.size, seed=args.seed, methods=args.methods),
                           out)
    print_table(timings, f"Executed notebooks (in {args.out}):")
    print(f"total: {timings['seconds'].sum() / 60:.1f} min")
    print_table(demo_comparison(out, args.methods).round(3),
                 "\nPretraining methods compared on the synthetic benchmark's validation videos: localization "
                 "average mAP and mAP@0.5 (%), DETAD average mAP_N per length bucket (%), and feature "
                 "sensitivity (fg-fg minus fg-bg cosine similarity):")
    return 0


def add_study(sub) -> None:
    from tsplab.conditions import STUDIES
    from tsplab.study import BUDGETS, SlurmOptions

    slurm = SlurmOptions()
    p = sub.add_parser("study", help="conditions x seeds on the synthetic benchmark (TSP Study 1 by default), "
                                     "each cell the notebooks via papermill; TSP's table and the claims table "
                                     "(exit 1 when some cells failed: listed in cells.csv)")
    p.add_argument("--study", default="tsp", choices=[*STUDIES, DIALS_STUDY],
                   help="tsp: TSP Study 1 (tables in OUT); peers: BSP, PAL and ASL as their papers use them, "
                        "beside the Study-1 conditions they are compared with (tables in OUT/peers; a Study-1 "
                        "folder's finished cells are reused); dials: a sweep of one benchmark dial "
                        "(--benchmark-option), its pre-registered predictions' conditions by default")
    p.add_argument("--benchmark-option", metavar="DIAL[=L1,L2,...]", default=None,
                   help="--study dials: the one dial swept and its levels (default: the sweep's own, "
                        "tsplab.dial_predictions.DIAL_SWEEPS); cells in OUT/<dial>=<level>/<condition>/seed<k>/, "
                        "one benchmark per level and seed (per level with --fixed-data)")
    p.add_argument("--benchmark-fixed", metavar="DIAL=LEVEL", action="append", default=None,
                   help="--study dials: a companion dial at one level in every level's benchmark (repeatable; "
                        "given, it replaces the sweep's own companions, e.g. source_shared_motions=0.5)")
    p.add_argument("--budget", dest="budget", default="default", choices=list(BUDGETS),
                   help="tiny: a smoke test of the machinery (minutes, meaningless numbers); default: the "
                        "default benchmark at the demo's budget (its measured cost: README, \"Reproduction study\")")
    p.add_argument("--preset", "--study-preset", dest="budget", choices=list(BUDGETS),
                   action=DeprecatedSpelling, new="--budget", help=argparse.SUPPRESS)
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per condition (default 5, as TSP)")
    p.add_argument("--conditions", nargs="+", default=None,
                   help="condition names (default: all of the study's; tsp: "
                        f"{', '.join(c.name for c in STUDIES['tsp'][0])})")
    p.add_argument("--out", required=True, help="study folder: OUT/<condition>/seed<k>/ per cell, tables in OUT; "
                                                "an existing study resumes (finished cells are skipped)")
    p.add_argument("--jobs", type=int, default=1, help="cells at once on this machine (each gets cores/jobs threads)")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--vary-data", dest="vary_data", action="store_true", default=True,
                      help="the default (confirmatory): one benchmark per seed (benchmark seed = cell seed), "
                           "so each seed has its own source encoder and GVF")
    data.add_argument("--fixed-data", dest="vary_data", action="store_false",
                      help="one fixed benchmark (--benchmark-seed) for every seed: verdicts conditional on one draw")
    p.add_argument("--benchmark-seed", type=int, default=0, help="the fixed benchmark's seed (--fixed-data; default 0)")
    p.add_argument("--keep-stale", action="store_true",
                   help="keep finished cells made by other code (another fingerprint, library versions or "
                        "parameters), listed as stale and left out of the tables; default: rerun them "
                        "(their folders moved aside to seed<k>.stale-<fingerprint>)")
    p.add_argument("--launcher", choices=["local", "slurm"], default="local",
                   help="local: processes on this machine; slurm: one submitit job per cell")
    p.add_argument("--partition", default=slurm.partition, help="Slurm partition (--launcher slurm)")
    p.add_argument("--gpus", type=int, default=slurm.gpus, help="GPUs per job (--launcher slurm)")
    p.add_argument("--cpus", type=int, default=slurm.cpus, help="CPUs per job (--launcher slurm)")
    p.add_argument("--time-min", type=int, default=slurm.time_min, help="time limit per job in minutes")
    p.add_argument("--mem-gb", type=int, default=slurm.mem_gb, help="memory per job in GB")
    p.set_defaults(func=run_study)


def run_study(args) -> int:
    from tsplab.study import SlurmOptions, run_study

    slurm = SlurmOptions(partition=args.partition, gpus=args.gpus, time_min=args.time_min, mem_gb=args.mem_gb,
                         cpus=args.cpus)
    if args.study == DIALS_STUDY or args.benchmark_option or args.benchmark_fixed:
        return _run_sweep(args, slurm)
    result = run_study(args.out, args.budget, args.seeds, args.conditions, jobs=args.jobs,
                       launcher=args.launcher, slurm=slurm, vary_data=args.vary_data,
                       benchmark_seed=args.benchmark_seed, study=args.study, keep_stale=args.keep_stale)
    print_table(result.table.reset_index(),
                 f"\nmean ± std (max) over seeds, percent (sensitivity: cosine difference); {result.out_dir}/table.csv:")
    columns = ["family", "claim", "paper", "n", "difference", "p", "p_holm", "adj_low", "adj_high", "verdict",
               "paper_in_interval", "seeds_needed"]
    print_table(result.claims[columns].round(3), f"\nClaims, paired over seeds; {result.out_dir}/claims.csv:")
    for test in dict.fromkeys(result.claims["test"]):  # the exact test of each family, in order
        print(f"test: {test}")
    print(f"seeds_needed: an estimate, 80 % power at the observed mean and sd\ncode fingerprint "
          f"{result.fingerprint}; preregistration sha256 {result.preregistration}")
    figures = [str(result.out_dir / f) for f in ("study.png", "claims.png") if (result.out_dir / f).is_file()]
    print(f"\ncells: {len(result.ran)} run now, {len(result.skipped)} finished before, {len(result.stale)} stale "
          f"kept; figures: {', '.join(figures) or 'none (nothing measured)'}")
    failed = result.failed
    if len(failed):
        print(f"{len(failed)} of {len(result.cells)} cells did not finish: listed in {result.out_dir}/cells.csv "
              f"(each cell's cell.json holds the error, its executed notebook beside it): "
              f"{', '.join(failed['cell'])}", file=sys.stderr)
    if result.stale:  # kept on request, but made by other code: the tables leave them out
        print(f"{len(result.stale)} of {len(result.cells)} cells are stale (made by other code, kept with "
              f"--keep-stale) and left out of the tables: {', '.join(result.stale)}; rerun without --keep-stale "
              "to measure them with this code", file=sys.stderr)
    return 1 if len(failed) or result.stale else 0


def parse_sweep_option(text: str | None) -> tuple[str, list[float] | None]:
    """``DIAL`` or ``DIAL=L1,L2,...`` -> (dial, levels or None: the sweep's own)."""
    if not text:
        raise InputError("--study dials: give the dial to sweep, --benchmark-option DIAL=L1,L2,L3 "
                         "(e.g. context_distractors=0,0.5,1)")
    dial, sep, levels = text.partition("=")
    if not sep:
        return dial.strip(), None
    try:
        return dial.strip(), [float(v) for v in levels.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--benchmark-option {text}: levels must be numbers separated by commas") from None


def parse_fixed_options(options) -> dict | None:
    """``--benchmark-fixed DIAL=LEVEL`` (repeated) -> {dial: level}; None when not given."""
    if options is None:
        return None
    fixed = {}
    for option in options:
        dial, sep, level = (part.strip() for part in option.partition("="))
        if dial == "onset_cue_kind" and level:
            fixed[dial] = level
            continue
        try:
            fixed[dial] = float(level) if sep else None
        except ValueError:
            fixed[dial] = None
        if fixed[dial] is None:
            raise InputError(f"--benchmark-fixed {option}: give DIAL=LEVEL with a number")
    return fixed


def _run_sweep(args, slurm) -> int:
    from tsplab.study.sweep import run_dial_study

    if args.study != DIALS_STUDY:
        raise InputError("--benchmark-option/--benchmark-fixed: a dial sweep is --study dials")
    dial, levels = parse_sweep_option(args.benchmark_option)
    result = run_dial_study(args.out, dial, levels, parse_fixed_options(args.benchmark_fixed), args.budget,
                            args.seeds, args.conditions, jobs=args.jobs, launcher=args.launcher, slurm=slurm,
                            vary_data=args.vary_data, benchmark_seed=args.benchmark_seed, keep_stale=args.keep_stale)
    print_table(result.dose.drop(columns=["preregistration", "fingerprint"]).round(3),
                f"\ndose-response, paired difference per level; {result.out_dir}/dose_response.csv:")
    columns = ["prediction", "shape", "statistic", "n", "estimate", "ci_low", "ci_high", "p", "p_holm", "verdict"]
    print_table(result.predictions[columns].round(4), f"\npredictions; {result.out_dir}/predictions.csv:")
    for test in dict.fromkeys(result.predictions["test"]):
        print(f"test: {test}")
    print(f"code fingerprint {result.fingerprint}; preregistration sha256 {result.preregistration}\ncells: "
          f"{len(result.ran)} run now, {len(result.skipped)} finished before, {len(result.stale)} stale kept")
    failed = result.cells[~result.cells["status"].isin(["finished", "stale"])]
    if len(failed):
        print(f"{len(failed)} of {len(result.cells)} cells did not finish: listed in {result.out_dir}/cells.csv: "
              f"{', '.join(failed['cell'])}", file=sys.stderr)
    return 1 if len(failed) or result.stale else 0
