"""The ``tsplab`` command line: ``tsplab SUBCOMMAND ...`` (also ``python -m tsplab`` and
``torchrun -m tsplab``). Relative paths on its command line are relative to the working directory.
Each subcommand is a thin shell over library functions that the notebooks
call too; the library returns tables and figures, this module prints them.

Exit status: 0 when everything succeeded; 1 when the command ran but some of its work failed (e.g.
videos that could not be decoded, listed in the output); 2 for bad input, printed as one line
``tsplab <command>: error: <file/row/field>: <what is wrong and what is valid>`` (an
``InputError`` or a missing file; any other exception is a bug and keeps its traceback).

To add a subcommand: write ``_add_NAME(subparsers)`` that builds its parser and sets
``func=_run_NAME``, and list it in ``_SUBCOMMANDS``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tsplab.errors import InputError, one_line

DESCRIPTION = ("tsplab: pretrain video encoders for temporal action localization (TSP, TAC, BSP, PAL), "
               "extract clip features, localize and evaluate. Exit status: 0 success, 1 some work "
               "failed (listed), 2 bad input.")


def _print_table(df, title: str | None = None) -> None:
    import pandas as pd

    if title:
        print(title)
    with pd.option_context("display.max_rows", 200, "display.width", 160):
        print(df.to_string(index=False) if len(df) else "(none)")


class _DeprecatedSize(argparse.Action):
    """``--preset`` where a benchmark size is meant (``synth``, ``demo``): still accepted, with one line
    on stderr pointing at ``--size``."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"tsplab: {option_string} is deprecated here, use --size", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _add_size(p, help_text: str) -> None:
    """``--size tiny|default`` (the synthetic benchmark size), and its old spelling ``--preset``."""
    from tsplab.benchmark import SIZES

    p.add_argument("--size", default="default", choices=list(SIZES), help=help_text)
    p.add_argument("--preset", dest="size", choices=list(SIZES), action=_DeprecatedSize,
                   default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the built-in synthetic benchmark (notebooks via papermill)")
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    _add_size(p, "synthetic benchmark size")
    p.add_argument("--methods", nargs="+", default=["tac", "tsp"],
                   help="pretraining methods to compare (default: tac tsp; also bsp, pal)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    from tsplab.pipeline import demo_comparison, demo_steps, run_pipeline
    from tsplab.pretrain.methods import get_method

    for method in args.methods:
        get_method(method)  # an unknown name stops here, before any work, listing the valid ones
    from tsplab.runs import resolve

    out = str(resolve(args.out))  # absolute: the notebooks run from notebooks/ and anchor at the root
    timings = run_pipeline(demo_steps(out, benchmark_size=args.size, seed=args.seed, methods=args.methods),
                           out)
    _print_table(timings, f"Executed notebooks (in {args.out}):")
    print(f"total: {timings['seconds'].sum() / 60:.1f} min")
    _print_table(demo_comparison(out, args.methods).round(3),
                 "\nPretraining methods compared on the synthetic benchmark's validation videos: localization "
                 "average mAP and mAP@0.5 (%), DETAD average mAP_N per length bucket (%), and feature "
                 "sensitivity (fg-fg minus fg-bg cosine similarity):")
    return 0


def _add_extract(sub) -> None:
    from tsplab.config import add_config_flags
    from tsplab.features.config import ExtractionConfig

    p = sub.add_parser("extract", help="extract clip features of videos with a (pre)trained backbone "
                                       "(exit 1 when some videos failed: listed in failures.csv)")
    add_config_flags(p, ExtractionConfig)  # a flag per field declared with one, and --set NAME=VALUE
    p.set_defaults(func=_run_extract)


def _run_extract(args) -> int:
    """Exit status 1 when any video failed: the good ones are finished first, and the failures are
    counted and listed (failures.csv, missing_files.txt)."""
    from tsplab.config import config_from_args
    from tsplab.features.config import ExtractionConfig
    from tsplab.features.extraction import extract_features, summarize_extraction

    config = config_from_args(ExtractionConfig, args)
    if not (config.checkpoint or config.backbone):
        raise InputError("give --checkpoint (a checkpoint file, run folder or 'kinetics400') or "
                         "--backbone (random weights)")
    summary = extract_features(config)
    _print_table(summarize_extraction(summary), f"Feature extraction into {config.out_dir}:")
    files = summary.attrs
    print(f"ActionFormer / OpenTAD config values for this folder: {files['toolboxes_file']}")
    failed = summary[summary.status == "failed"]
    if not len(failed):
        return 0
    _print_table(failed[["video", "error"]], f"Failed videos (also in {files['failures_file']}):")
    print(f"tsplab extract: {len(failed)} of {len(summary)} videos failed; listed in "
          f"{files['failures_file']} (and, as OpenTAD's block_list, in {files['missing_file']})",
          file=sys.stderr)
    return 1


def _add_gvf(sub) -> None:
    p = sub.add_parser("gvf", help="pool a feature folder into a global-video-feature (GVF) h5 file")
    p.add_argument("feature_dir", help="feature folder ({video}.npy files)")
    p.add_argument("--out", required=True, help="GVF h5 file to write (one [C] dataset per video)")
    p.add_argument("--pooling", choices=["max", "avg"], default="max", help="TSP uses max (default)")
    _add_overwrite(p, "--out")
    p.set_defaults(func=_run_gvf)


def _add_overwrite(p, what: str) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} when it exists (without it an existing file is never written over)")


def _run_gvf(args) -> int:
    from tsplab.features import compute_gvf_file, read_gvf_h5

    path = compute_gvf_file(args.feature_dir, args.out, args.pooling, overwrite=args.overwrite)  # checks first
    gvfs = read_gvf_h5(path)
    dim = next(iter(gvfs.values())).shape[0]
    print(f"{args.pooling}-pooled GVFs of {len(gvfs)} videos ({dim}-d) written to {path}")
    return 0


def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="write the built-in synthetic benchmark (MP4 videos + ActivityNet JSON)")
    _add_size(p, "benchmark size (default: default, the demo's)")
    p.add_argument("--out", required=True, help="output folder (videos/, annotations.json, ...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="encoding processes")
    p.add_argument("--option", action="append", default=[], metavar="DIAL=LEVEL",
                   help="switch a benchmark dial on, e.g. context_distractors=0.5 (repeatable; the dials and "
                        "their scales: tsplab.benchmark.dials); recorded in benchmark.json")
    p.set_defaults(func=_run_synth)


def _run_synth(args) -> int:
    from tsplab.benchmark import benchmark_summary, generate_benchmark, parse_dial_options
    from tsplab.runs import resolve

    dials = parse_dial_options(args.option)
    if args.seed < 0:
        raise InputError(f"--seed {args.seed}: give a seed >= 0")
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: give at least 1 encoding process")
    if resolve(args.out).exists() and not resolve(args.out).is_dir():
        raise InputError(f"{args.out}: --out is an existing file; give a folder for the benchmark")
    out = generate_benchmark(args.out, args.size, seed=args.seed, workers=args.workers, dials=dials)
    _print_table(benchmark_summary(out), f"Synthetic benchmark '{args.size}' (seed {args.seed}) in {out}:")
    return 0


def _add_segments(sub) -> None:
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
    _add_overwrite(p, "--out and its report")
    p.set_defaults(func=_run_segments)


def _run_segments(args) -> int:
    """Exit 2 for bad input (nothing written); 1 when no action survives validation (only the report
    is written, naming every dropped row); else 0."""
    import warnings

    from tsplab.datasets import (FOREGROUND, read_label_mapping, segment_min_background_s,
                                    segment_report_path, write_segment_table, write_validation_report)
    from contextlib import nullcontext

    from tsplab.runs import atomic_path, check_output_file, resolve

    inputs = {"the annotation file": resolve(args.annotations)}
    if args.durations:
        inputs["the --durations file"] = resolve(args.durations)
    if args.labels:
        inputs["the --labels file"] = resolve(args.labels)
    out = resolve(args.out)
    report_path = segment_report_path(out)
    check_output_file(out, "--out", inputs, overwrite=args.overwrite)
    check_output_file(report_path, f"--out's report {report_path.name}", inputs, overwrite=args.overwrite)
    if args.min_background_s is not None and not 0 <= args.min_background_s < float("inf"):
        raise InputError(f"--min-background-s {args.min_background_s}: give the shortest background gap in "
                         "seconds, a number >= 0")
    min_background_s = segment_min_background_s(args.preset, min_background_s=args.min_background_s)
    labels = read_label_mapping(inputs["the --labels file"]) if args.labels else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ann, table, report = _segments_table(args, inputs, labels, report_path)
    for warning in caught:  # one line each, like the errors
        print(f"tsplab segments: warning: {one_line(warning.message)}", file=sys.stderr)

    num_actions = len(ann.instances)
    kept = int((table["temporal-region-label"] == FOREGROUND).sum())
    try:  # both to temporary files first, renamed at the end: a killed run replaces neither
        with atomic_path(report_path) as report_tmp, (atomic_path(out) if kept else nullcontext()) as out_tmp:
            write_validation_report(report, report_tmp)
            if kept:
                write_segment_table(table, out_tmp)
    except OSError as exc:
        raise InputError(f"{exc.filename or out}: cannot write ({exc.strerror})") from exc
    actions = report["action"].value_counts()
    summary = (f"{kept} of {num_actions} actions kept: {actions.get('dropped', 0)} dropped, "
               f"{actions.get('clipped', 0)} clipped (every one listed in {report_path})")
    if not kept:
        _print_table(report.groupby(["problem", "action"]).size().reset_index(name="rows"),
                     f"Dropped annotation rows ({len(report)}):")
        print(f"tsplab segments: error: 0 actions left of {num_actions} in {args.annotations}"
              f"{'' if num_actions else ' (it holds none)'}; {out} was not written; see the report "
              f"{report_path}", file=sys.stderr)
        return 1
    regions = table["temporal-region-label"].value_counts()
    print(f"Wrote {len(table)} segments ({kept} actions, {regions.get('No action', 0)} background, gaps >= "
          f"{min_background_s:.4g} s) of {table['video-name'].nunique()} videos to {out}; {summary}")
    counts = report.groupby(["problem", "action"]).size().reset_index(name="rows")
    _print_table(counts, f"Dropped or changed annotation rows ({len(report)}, all in {report_path}):")
    if len(report):
        shown = 40
        _print_table(report.head(shown), "Rows:" if len(report) <= shown else f"First {shown} rows:")
    return 0


def _segments_table(args, inputs, labels, report_path):
    """``tsplab segments``' reading and validation: ``(annotations, table, report)``, the table by
    the one builder with ``--preset``'s background rule (or ``--min-background-s``). In strict mode
    the error names the annotation file and where the full list would go."""
    from tsplab.datasets import AnnotationError, build_segment_table, read_annotations

    ann = read_annotations(inputs["the annotation file"], durations=inputs.get("the --durations file"),
                           subset=args.subset)
    try:
        table, report = build_segment_table(ann, args.preset, min_background_s=args.min_background_s,
                                            labels=labels, strict=args.strict)
    except AnnotationError as exc:
        if exc.report is None:
            raise
        raise AnnotationError(f"{args.annotations}: {exc} (rerun without --strict to write it to "
                              f"{report_path})", exc.report) from exc
    return ann, table, report


def _add_standardize(sub) -> None:
    p = sub.add_parser("standardize", help="re-encode videos to constant-frame-rate H.264 MP4 (TSP: 30 fps)")
    p.add_argument("in_dir", help="folder of videos (any format PyAV reads)")
    p.add_argument("out_dir", help="output folder ({stem}.mp4); finished files are skipped on a rerun")
    p.add_argument("--fps", type=float, default=30, help="output frame rate (default: 30)")
    p.add_argument("--short-side", type=int, help="resize so the short side has this many pixels (even)")
    p.add_argument("--workers", type=int, default=2, help="encoding processes (default: 2)")
    p.set_defaults(func=_run_standardize)


def _run_standardize(args) -> int:
    """Exit status 1 when any video failed (the table says which and why)."""
    from tsplab.runs import resolve
    from tsplab.video import standardize_folder

    report = standardize_folder(resolve(args.in_dir), resolve(args.out_dir), fps=args.fps,
                                short_side=args.short_side, workers=args.workers,
                                names=(args.in_dir, args.out_dir))
    print(report.summary)
    if len(report.failed):
        _print_table(report.failed[["video", "error"]], "Failed videos:")
        print(f"tsplab standardize: {report.failure}", file=sys.stderr)
    return report.exit_status


def _add_evaluate(sub) -> None:
    from tsplab.datasets.presets import PRESETS

    p = sub.add_parser("evaluate", help="detection mAP or proposal AR@AN of an ActivityNet-format result "
                                        "file (the ActivityNet evaluation's algorithms, ties included)")
    p.add_argument("ground_truth", help="ActivityNet/DETAD JSON, TSP ground-truth CSV or custom CSV")
    p.add_argument("predictions", help='result JSON {"results": {video: [{segment, label, score}]}}')
    p.add_argument("--preset", default=None, choices=list(PRESETS),
                   help="dataset preset, for its tIoU thresholds: activitynet (and synthetic) 0.5:0.05:0.95, "
                        "thumos14 0.3:0.1:0.7 (default: told from the ground truth's video ids; required when "
                        "it cannot be)")
    p.add_argument("--subset", help="ground-truth subset (default: the only one in the file, else the "
                                    "preset's: validation / testing)")
    p.add_argument("--proposals", action="store_true", help="evaluate as proposals: AR@1/10/100 and AUC")
    p.add_argument("--exclude", help="text file of video ids (one per line) to leave out on both sides")
    p.add_argument("--lenient", action="store_true",
                   help="drop invalid ground-truth instances (missing, negative or reversed times, no label) "
                        "and list them, instead of stopping with an error")
    p.add_argument("--json", help="also write the results, with every prediction (and, with --lenient, "
                                  "ground-truth instance) left out, to this new JSON file")
    _add_overwrite(p, "the --json file")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    import warnings

    import pandas as pd

    from tsplab.evaluation import evaluate_files
    from tsplab.runs import check_output_file, resolve, write_json

    inputs = {"the ground truth": resolve(args.ground_truth), "the predictions": resolve(args.predictions)}
    if args.exclude:
        inputs["--exclude"] = resolve(args.exclude)
    json_path = resolve(args.json) if args.json else None
    if json_path is not None:  # before any work: an output must not replace an input
        check_output_file(json_path, "--json", inputs, overwrite=args.overwrite)
    exclude = _read_exclude(inputs["--exclude"]) if args.exclude else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = evaluate_files(inputs["the ground truth"], inputs["the predictions"], args.preset,
                                    subset=args.subset, proposals=args.proposals, exclude_videos=exclude,
                                    lenient=args.lenient)
        finally:  # what was dropped or kept is said even when a later check stops the evaluation
            for w in caught:
                print(f"tsplab evaluate: warning: {one_line(w.message)}", file=sys.stderr)
    how = "--preset" if args.preset else "inferred from the ground truth's video ids; --preset to change"
    print(f"Metric preset: {result.preset} ({how})")
    if args.proposals:
        table = pd.DataFrame({"metric": list(result.summary().columns),
                              "value (%)": [f"{100 * v:.2f}" for v in result.summary().iloc[0]]})
        _print_table(table, f"Proposals ({result.preset}): AR@AN and AUC")
    else:
        names = [f"{t:.2f}" for t in result.tiou_thresholds] + ["average"]
        values = list(result.mAP) + [result.average_mAP]
        table = pd.DataFrame({"tIoU": names, "mAP (%)": [f"{100 * v:.2f}" for v in values]})
        _print_table(table, f"Detection ({result.preset}): {result.num_predictions} predictions, "
                            f"{result.num_ground_truth} instances, {len(result.ap)} classes")
    gt_dropped = int((result.ground_truth_issues["action"] == "dropped").sum())
    if len(result.dropped) or gt_dropped:
        where = f"listed in {json_path}" if json_path else "--json lists them"
        print(f"Left out: {len(result.dropped)} prediction(s), {gt_dropped} ground-truth instance(s) "
              f"(the warnings above say why; {where})")
    if json_path is not None:
        try:
            print(f"Results written to {write_json(json_path, result.to_dict())}")
        except OSError as exc:
            raise InputError(f"{json_path}: cannot write --json ({exc.strerror or exc}); give a writable "
                             "file path") from exc
    return 0


def _read_exclude(path) -> list[str]:
    """The video ids of ``evaluate --exclude``: a text file, one id per line."""
    if not path.is_file():
        raise InputError(f"{path}: --exclude file not found{' (a folder)' if path.is_dir() else ''}; give a text "
                         "file with one video id per line")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: --exclude is not a text file ({exc.reason} at byte {exc.start}); give a "
                         "text file with one video id per line") from None
    return [v.strip() for v in text.splitlines() if v.strip()]


def _add_pretrain(sub) -> None:
    p = sub.add_parser("pretrain", help="pretrain a video encoder (the methods of tsplab.pretrain.methods; "
                                        "`tsplab pretrain --help` lists them); under torchrun with DDP")
    # The names in these help texts come from the registries (tsplab.pretrain.methods.METHODS, BACKBONES,
    # RECIPES), filled in when the help is shown: importing them loads torch, seconds that the other
    # subcommands should not pay. Bad names are refused by check_config with a one-line error.
    named = {
        "method": p.add_argument("--method", default="tsp", help="pretraining method (default: tsp)"),
        "recipe": p.add_argument("--recipe", help="settings to start from (default: tsp, the paper's)"),
        "backbone": p.add_argument("--backbone", help="video encoder (default: the recipe's)"),
    }
    # Deprecated spellings, kept for one release (a one-line note on stderr when used).
    p.add_argument("--preset", help=argparse.SUPPRESS)
    p.add_argument("--gvf-pooling", help=argparse.SUPPRESS)
    p.add_argument("--gvf-mode", help=argparse.SUPPRESS)
    p.add_argument("--dataset", help="folder with annotations.json and videos/ (the synthetic layout)")
    p.add_argument("--annotations", help="annotation file (ActivityNet/DETAD JSON, TSP CSV, custom CSV)")
    p.add_argument("--valid-annotations", help="validation annotation file (default: --annotations)")
    p.add_argument("--video-dir", help="folder of the videos (default: DATASET/videos)")
    p.add_argument("--run-dir", help="run folder; outputs go to RUN/pretrain/<method>/")
    p.add_argument("--weights", help="initial weights: kinetics400, source (the synthetic benchmark's source encoder, its recipe's default), a checkpoint path, or none (random)")
    p.add_argument("--trust-checkpoint-code", action="store_true",
                   help="unpickle a checkpoint (--weights, BSP teachers) in full when torch's safe loader "
                        "refuses it: RUNS ANY CODE STORED IN THE FILE; only for files you trust")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="clips per process")
    p.add_argument("--backbone-lr", type=float)
    p.add_argument("--fc-lr", type=float)
    p.add_argument("--workers", type=int, help="DataLoader workers per process")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda (default: CUDA when available)")
    named["set"] = p.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="any other PretrainConfig field or an option of the method, e.g. --set lr_milestones=[3,5] "
             "--set amp=false --set alpha_c=0 --set output_name=tsp_no_ac --set dataset=thumos14")
    p.add_argument("--resume", action="store_true", help="continue the run folder's checkpoint")
    p.add_argument("--stop-after-epochs", type=int, help="return after this many epochs, >= 1 (resume later)")
    format_help = p.format_help

    def format_help_with_names() -> str:
        _pretrain_help_names(named)
        return format_help()

    p.format_help = format_help_with_names
    p.set_defaults(func=_run_pretrain)


def _pretrain_help_names(named: dict) -> None:
    """Fill the valid names into the pretrain help texts (``named``: field -> argparse action)."""
    from tsplab.backbones import BACKBONES
    from tsplab.pretrain.config import option_fields
    from tsplab.pretrain.methods import METHODS
    from tsplab.pretrain.recipes import RECIPES

    for field, names in (("method", METHODS), ("recipe", RECIPES), ("backbone", BACKBONES)):
        action = named[field]
        action.help = action.help.split(": one of ")[0] + ": one of " + ", ".join(names)
    options = "; ".join(f"{name}: {', '.join(f.name for f in option_fields(m)) or 'none'}"
                        for name, m in METHODS.items())
    named["set"].help = named["set"].help.split(". Options by method")[0] + f". Options by method: {options}"


def _deprecated(old: str, new: str) -> None:
    """The one-line note of a spelling kept for one release."""
    print(f"tsplab: {old} is deprecated, use {new}", file=sys.stderr)


def _run_pretrain(args) -> int:
    """Bad settings, files or weights raise ``InputError`` before the run folder is touched (the
    caller prints it as one line, exit 2)."""
    from tsplab.distributed import rank_and_world_size
    from tsplab.pretrain import parse_overrides, pretrain, pretrain_config

    flags = {"method": args.method, "dataset_dir": args.dataset, "annotations": args.annotations,
             "valid_annotations": args.valid_annotations, "video_dir": args.video_dir,
             "run_dir": args.run_dir, "backbone": args.backbone, "epochs": args.epochs,
             "batch_size": args.batch_size, "backbone_lr": args.backbone_lr, "fc_lr": args.fc_lr,
             "workers": args.workers, "seed": args.seed, "device": args.device}
    overrides = {k: v for k, v in flags.items() if v is not None}
    for flag, option in (("--gvf-pooling", "gvf_pooling"), ("--gvf-mode", "gvf_mode")):
        if getattr(args, option) is not None:
            _deprecated(flag, f"--set {option}=")
            overrides[option] = getattr(args, option)
    if args.weights is not None:
        overrides["weights"] = None if args.weights.lower() == "none" else args.weights
    if args.trust_checkpoint_code:
        overrides["trust_pickle"] = True
    overrides.update(parse_overrides(args.set, method=args.method))
    recipe = args.recipe
    if args.preset is not None:
        _deprecated("--preset", "--recipe")
        recipe = recipe or args.preset
    config = pretrain_config(recipe or "tsp", **overrides)
    result = pretrain(config, resume=args.resume, stop_after_epochs=args.stop_after_epochs)
    if rank_and_world_size()[0] == 0:
        columns = [c for c in result.metrics.columns if c == "epoch" or c.startswith(("train_loss", "valid_acc"))
                   or c in ("data_wait_share", "clips_per_s")]
        _print_table(result.metrics[columns].round(4), f"Pretraining {config.method} ({result.output_dir}):")
        print(f"best epoch {result.best_epoch}: {result.best_checkpoint}")
    return 0


# In the order of the pipeline (this is the order `tsplab --help` lists them in).
def _add_localize(sub) -> None:
    from tsplab.config import add_config_flags
    from tsplab.localizer import LocalizerConfig
    from tsplab.datasets.presets import PRESETS

    p = sub.add_parser("localize", help="train the ActionFormer-style localizer with ASL on a feature folder, "
                                        "predict the validation videos and evaluate (mAP)")
    add_config_flags(p, LocalizerConfig)  # a flag per field declared with one, and --set NAME=VALUE
    p.add_argument("--baseline", action="store_true", help="all ASL components off (ActionFormer-style)")
    p.set_defaults(func=_run_localize)


def _run_localize(args) -> int:
    import pandas as pd

    from tsplab.config import config_from_args
    from tsplab.localizer import LocalizerConfig, train_localizer

    # one --features: that folder; repeated: the list, read as one (tsplab.features.open_feature_folders)
    baseline = dict(ase_class=False, ase_instance=False, ascl=False) if args.baseline else {}
    config = config_from_args(LocalizerConfig, args, **baseline)
    result = train_localizer(config)  # checks every input before it writes into --out
    used = result.model.config
    det = result.detection
    names = [f"{t:.2f}" for t in det.tiou_thresholds] + ["average"]
    values = list(det.mAP) + [det.average_mAP]
    how = "given" if config.metric_preset else "told from the video ids"
    print(f"metric preset: {used.metric_preset} ({how}); at most {used.max_predictions} predictions "
          f"per video")
    _print_table(pd.DataFrame({"tIoU": names, "mAP (%)": [f"{100 * v:.2f}" for v in values]}),
                 f"Localization ({used.metric_preset}): {det.num_predictions} predictions, "
                 f"{det.num_ground_truth} instances")
    print(f"final training loss {result.history['loss'].iloc[-1]:.4f}; predictions: "
          f"{result.predictions_path}; checkpoint: {result.checkpoint_path}")
    unfused = _print_run_fusion(result.out_dir) if config.class_scores else 0
    if len(result.skipped):  # not everything succeeded: the exit status says so (the ground truth
        # of a left-out validation video still counts, as misses)
        print(f"tsplab localize: {len(result.skipped)} video(s) without usable features were left out; "
              f"listed in {result.out_dir}/skipped.csv", file=sys.stderr)
    return 1 if len(result.skipped) or unfused else 0


def _print_run_fusion(out_dir) -> int:
    """Say what a localizer run's fusion did (its ``metrics.json`` record); returns how many
    validation videos had no class scores (their predictions left out, exit status 1)."""
    from tsplab.runs import read_json

    fusion = read_json(out_dir / "metrics.json")["fusion"]
    missing = fusion["videos_without_class_scores"]
    print(f"fused with the top-{fusion['top_k']} classes of {fusion['class_scores']} (score = "
          f"{fusion['score']}); the model's own predictions: {out_dir / fusion['unfused_predictions']}")
    if missing:
        print(f"tsplab localize: {len(missing)} of {fusion['videos']} validation video(s) have no class "
              f"scores, their predictions left out of the evaluation; listed in {out_dir}/metrics.json "
              "(fusion.videos_without_class_scores)", file=sys.stderr)
    return len(missing)


def _fuse_labels(annotations) -> list[str] | None:
    """The class names of ``tsplab fuse --annotations`` (``None`` without it)."""
    from tsplab.datasets import read_annotations

    return None if annotations is None else read_annotations(annotations).labels


def _add_fuse(sub) -> None:
    p = sub.add_parser("fuse", help="fuse localizer predictions with external video-level class scores, "
                                    "ActivityNet's protocol in ActionFormer and ASL (exit 1 when some "
                                    "videos have no class scores: listed in the output)")
    p.add_argument("--predictions", required=True, help="ActivityNet result JSON (tsplab localize's "
                                                         "predictions.json; class-agnostic segments)")
    p.add_argument("--class-scores", required=True,
                   help='class-score JSON {"results": {video: [score per class]}, "class": [names]} (CUHK\'s '
                        "cuhk_val_simp_share.json layout; ids with or without v_)")
    p.add_argument("--annotations", help="ground truth: its labels must be the file's classes, and give the "
                                         "class order (sorted) when the file has no \"class\" list")
    p.add_argument("--top-k", type=int, default=2, help="classes per video (default 2, ActionFormer's)")
    p.add_argument("--max-segments", type=int, default=200,
                   help="best segments per video fused (default 200, ActionFormer's)")
    p.add_argument("--out", required=True, help="fused ActivityNet result JSON to write (new file); "
                                                "evaluate it with tsplab evaluate")
    _add_overwrite(p, "the --out file")
    p.set_defaults(func=_run_fuse)


def _run_fuse(args) -> int:
    """Score = sqrt(class score x segment score) for each of a video's top-k classes
    (``tsplab.localizer.fusion``). Exit 1 when some videos have no class scores (their predictions
    are left out, named in a warning and in the output's ``fusion`` record)."""
    import warnings

    from tsplab.localizer.fusion import fuse_predictions, read_class_scores
    from tsplab.localizer.fusion import write_fused_predictions as write_fused
    from tsplab.evaluation import read_predictions
    from tsplab.runs import check_output_file, resolve

    inputs = {"the predictions (--predictions)": resolve(args.predictions),
              "the class scores (--class-scores)": resolve(args.class_scores)}
    if args.annotations:
        inputs["the annotations (--annotations)"] = resolve(args.annotations)
    # before any work: never replaces an input, nor an existing file without --overwrite
    out = check_output_file(args.out, "--out", inputs, overwrite=args.overwrite)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            labels = _fuse_labels(inputs.get("the annotations (--annotations)"))
            scores = read_class_scores(inputs["the class scores (--class-scores)"], labels)
            predictions = read_predictions(inputs["the predictions (--predictions)"])
            result = fuse_predictions(predictions, scores, args.top_k, args.max_segments,
                                      source=str(inputs["the predictions (--predictions)"]))
        finally:
            for w in caught:
                print(f"tsplab fuse: warning: {one_line(w.message)}", file=sys.stderr)
    write_fused(result, out)
    order = "its \"class\" list" if scores.class_order == "file" else "the annotation's sorted labels"
    print(f"Fused {len(predictions)} predictions of {result.num_videos} videos with the top-{result.top_k} "
          f"of {len(scores.classes)} classes ({order}) of {scores.path}: {len(result.predictions)} predictions "
          f"(score = sqrt(class score x segment score)) written to {out}")
    if result.missing_videos:
        print(f"tsplab fuse: {len(result.missing_videos)} of {result.num_videos} video(s) have no class "
              f"scores; their {result.missing_predictions} prediction(s) are left out, listed in {out} "
              "(fusion.videos_without_class_scores)", file=sys.stderr)
        return 1
    return 0


class _DeprecatedBudget(argparse.Action):
    """``--preset`` / ``--study-preset`` of ``tsplab study``, the old spelling of ``--budget`` (a
    preset names a dataset's settings): still accepted for one release, with one line on stderr."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"tsplab: {option_string} is deprecated here, use --budget", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _add_study(sub) -> None:
    from tsplab.conditions import STUDIES
    from tsplab.study import BUDGETS, SlurmOptions

    slurm = SlurmOptions()
    p = sub.add_parser("study", help="conditions x seeds on the synthetic benchmark (TSP Study 1 by default), "
                                     "each cell the notebooks via papermill; TSP's table and the claims table "
                                     "(exit 1 when some cells failed: listed in cells.csv)")
    p.add_argument("--study", default="tsp", choices=list(STUDIES),
                   help="tsp: TSP Study 1 (tables in OUT); peers: BSP, PAL and ASL as their papers use them, "
                        "beside the Study-1 conditions they are compared with (tables in OUT/peers; a Study-1 "
                        "folder's finished cells are reused)")
    p.add_argument("--budget", dest="budget", default="default", choices=list(BUDGETS),
                   help="tiny: a smoke test of the machinery (minutes, meaningless numbers); default: the "
                        "default benchmark at the demo's budget (Study 1 x 5 seeds: about 50 min with --jobs 2, "
                        "75 with --jobs 1 on 2 quiet cores)")
    p.add_argument("--preset", "--study-preset", dest="budget", choices=list(BUDGETS), action=_DeprecatedBudget,
                   help=argparse.SUPPRESS)
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
    p.set_defaults(func=_run_study)


def _run_study(args) -> int:
    from tsplab.study import SlurmOptions, run_study

    slurm = SlurmOptions(partition=args.partition, gpus=args.gpus, time_min=args.time_min, mem_gb=args.mem_gb,
                         cpus=args.cpus)
    result = run_study(args.out, args.budget, args.seeds, args.conditions, jobs=args.jobs,
                       launcher=args.launcher, slurm=slurm, vary_data=args.vary_data,
                       benchmark_seed=args.benchmark_seed, study=args.study, keep_stale=args.keep_stale)
    _print_table(result.table.reset_index(),
                 f"\nmean ± std (max) over seeds, percent (sensitivity: cosine difference); {result.out_dir}/table.csv:")
    columns = ["family", "claim", "paper", "n", "difference", "p", "p_holm", "adj_low", "adj_high", "verdict",
               "paper_in_interval", "seeds_needed"]
    _print_table(result.claims[columns].round(3), f"\nClaims, paired over seeds; {result.out_dir}/claims.csv:")
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


_SUBCOMMANDS = [_add_synth, _add_segments, _add_standardize, _add_pretrain, _add_extract, _add_gvf,
                _add_localize, _add_fuse, _add_evaluate, _add_demo, _add_study]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tsplab", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from tsplab.runs import paths_relative_to

    try:
        with paths_relative_to(Path.cwd()):  # relative paths are the working directory's, as in any tool
            return int(args.func(args) or 0)
    except (InputError, FileNotFoundError) as exc:
        print(f"tsplab {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
