"""``tsplab synth``, ``tsplab segments`` and ``tsplab standardize``: the data a run starts from."""
from __future__ import annotations

import sys

from tsplab.cli.common import add_overwrite, add_size, print_table


def add_synth(sub) -> None:
    p = sub.add_parser("synth", help="write the built-in synthetic benchmark (MP4 videos + ActivityNet JSON)")
    add_size(p, "benchmark size (default: default, the demo's)")
    p.add_argument("--out", required=True, help="output folder (videos/, annotations.json, ...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="encoding processes")
    p.add_argument("--option", action="append", default=[], metavar="DIAL=LEVEL",
                   help="switch a benchmark dial on, e.g. context_distractors=0.5 (repeatable; the dials and "
                        "their scales: tsplab.benchmark.dials); recorded in benchmark.json")
    p.set_defaults(func=run_synth)


def run_synth(args) -> int:
    from tsplab.benchmark import benchmark_summary, generate_benchmark, parse_dial_options

    dials = parse_dial_options(args.option)
    out = generate_benchmark(args.out, args.size, seed=args.seed, workers=args.workers, dials=dials)
    print_table(benchmark_summary(out), f"Synthetic benchmark '{args.size}' (seed {args.seed}) in {out}:")
    return 0


def add_segments(sub) -> None:
    from tsplab.datasets.presets import PRESETS

    rules = ", ".join(f"{d.name} {d.min_background_clips:g} x {d.clip_length_frames}/{d.frame_rate:g} s"
                      for d in PRESETS.values())
    p = sub.add_parser("segments", help="build TSP's segment table (actions + background gaps) from annotations")
    p.add_argument("annotations", help="ActivityNet/DETAD JSON, TSP ground-truth CSV or custom CSV "
                                       "(video,t_start,t_end,label)")
    p.add_argument("--out", required=True, help="segment table CSV to write (TSP's columns); the "
                                                "dropped/changed rows go to <out>_report.csv")
    p.add_argument("--preset", default="activitynet", choices=list(PRESETS),
                   help=f"dataset preset, for its minimum background gap (clips x clip seconds): {rules}")
    p.add_argument("--min-background-s", type=float, help="override the preset's minimum gap (seconds)")
    p.add_argument("--durations", help="durations file: TSP metadata CSV or video,duration CSV")
    p.add_argument("--subset", help="keep this subset (training, validation, testing), or name the "
                                    "subset of a file that has none")
    p.add_argument("--labels", help="label-mapping JSON; actions of other classes are dropped")
    p.add_argument("--strict", action="store_true", help="fail on any invalid row instead of fixing it")
    add_overwrite(p, "--out and its report")
    p.set_defaults(func=run_segments)


def run_segments(args) -> int:
    """Exit 2 for bad input (nothing written); 1 when no action survives validation (only the report
    is written, naming every dropped row); else 0."""
    from tsplab.datasets.segment_files import write_segment_files

    names = {"durations": "the --durations file", "labels": "the --labels file", "out": "--out",
             "min_background_s": "--min-background-s", "strict": "--strict"}
    files = write_segment_files(args.annotations, args.out, args.preset, durations=args.durations,
                                subset=args.subset, labels=args.labels, min_background_s=args.min_background_s,
                                strict=args.strict, overwrite=args.overwrite, names=names)
    for warning in files.warnings:  # one line each, like the errors
        print(f"tsplab segments: warning: {warning}", file=sys.stderr)
    if not files.kept:
        print_table(files.problem_counts, f"Dropped annotation rows ({len(files.report)}):")
        print(f"tsplab segments: error: 0 actions left of {files.num_actions} in {args.annotations}"
              f"{'' if files.num_actions else ' (it holds none)'}; {files.out} was not written; see the report "
              f"{files.report_path}", file=sys.stderr)
        return 1
    print(files.summary())
    print_table(files.problem_counts, f"Dropped or changed annotation rows ({len(files.report)}, all in "
                                      f"{files.report_path}):")
    if len(files.report):
        shown = 40
        print_table(files.report.head(shown), "Rows:" if len(files.report) <= shown else f"First {shown} rows:")
    return 0


def add_standardize(sub) -> None:
    p = sub.add_parser("standardize", help="re-encode videos to constant-frame-rate H.264 MP4 (TSP: 30 fps)")
    p.add_argument("in_dir", help="folder of videos (any format PyAV reads)")
    p.add_argument("out_dir", help="output folder ({stem}.mp4); finished files are skipped on a rerun")
    p.add_argument("--fps", type=float, default=30, help="output frame rate (default: 30)")
    p.add_argument("--short-side", type=int, help="resize so the short side has this many pixels (even)")
    p.add_argument("--workers", type=int, default=2, help="encoding processes (default: 2)")
    p.set_defaults(func=run_standardize)


def run_standardize(args) -> int:
    """Exit status 1 when any video failed (the table says which and why)."""
    from tsplab.runs import resolve
    from tsplab.video import standardize_folder

    report = standardize_folder(resolve(args.in_dir), resolve(args.out_dir), fps=args.fps,
                                short_side=args.short_side, workers=args.workers,
                                names=(args.in_dir, args.out_dir))
    print(report.summary)
    if len(report.failed):
        print_table(report.failed[["video", "error"]], "Failed videos:")
        print(f"tsplab standardize: {report.failure}", file=sys.stderr)
    return report.exit_status
