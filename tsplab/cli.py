"""The ``tsplab`` command line: ``tsplab SUBCOMMAND ...`` (also ``python -m tsplab`` and
``torchrun -m tsplab``). Each subcommand is a thin shell over library functions that the notebooks
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


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the built-in synthetic benchmark (notebooks via papermill)")
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--preset", default="default", choices=["tiny", "default"], help="synthetic benchmark size")
    p.add_argument("--methods", nargs="+", default=["tac", "tsp"],
                   help="pretraining methods to compare (default: tac tsp; also bsp, pal)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    from tsplab.methods import get_method
    from tsplab.pipeline import demo_comparison, demo_steps, run_pipeline

    for method in args.methods:
        get_method(method)  # an unknown name stops here, before any work, listing the valid ones
    timings = run_pipeline(demo_steps(args.out, preset=args.preset, seed=args.seed, methods=args.methods),
                           args.out)
    _print_table(timings, f"Executed notebooks (in {args.out}):")
    print(f"total: {timings['seconds'].sum() / 60:.1f} min")
    _print_table(demo_comparison(args.out, args.methods).round(3),
                 "\nPretraining methods compared on the synthetic benchmark's validation videos: localization "
                 "average mAP and mAP@0.5 (%), DETAD average mAP_N per length bucket (%), and feature "
                 "sensitivity (fg-fg minus fg-bg cosine similarity):")
    return 0


def _add_extract(sub) -> None:
    p = sub.add_parser("extract", help="extract clip features of videos with a (pre)trained backbone")
    p.add_argument("--videos", required=True, help="folder of videos, or a text file with one path per line")
    p.add_argument("--out", required=True, help="feature folder ({video}.npy, metadata.json, failures.csv)")
    p.add_argument("--checkpoint", help="checkpoint file, run folder (runs/<name>/pretrain/<method>) "
                                        "or 'kinetics400'")
    p.add_argument("--backbone", help="backbone name (needed when the checkpoint does not say); "
                                      "without --checkpoint its weights are random")
    p.add_argument("--stride", type=int, help="frames between clip starts (default: the clip length)")
    p.add_argument("--clip-length", type=int, help="frames per clip (default: checkpoint's, else 16)")
    p.add_argument("--frame-rate", type=float, help="clip frame rate (default: checkpoint's, else 15)")
    p.add_argument("--short-side", type=int, help="resize frames to this short side (default: 128)")
    p.add_argument("--crop", type=int, help="centre crop size (default: 112)")
    p.add_argument("--format", choices=["npy", "h5"], default="npy",
                   help="npy: one file per video; h5: also one features.h5 keyed by video (TSP's layout)")
    p.add_argument("--shard-id", type=int, help="this shard (default: torchrun's rank)")
    p.add_argument("--num-shards", type=int, help="number of shards (default: torchrun's world size)")
    p.add_argument("--seed", type=int, default=0, help="seed of random weights (no checkpoint)")
    p.add_argument("--batch-size", type=int, default=32, help="clips per forward pass")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding processes beside the model (default: none on a CPU, up to 8 with a GPU)")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1, ...")
    p.set_defaults(func=_run_extract)


def _run_extract(args) -> int:
    from tsplab.features import ExtractionConfig, extract_features, summarize_extraction

    if not (args.checkpoint or args.backbone):
        print("tsplab extract: error: give --checkpoint or --backbone", file=sys.stderr)
        return 2
    config = ExtractionConfig(
        videos=args.videos, out_dir=args.out, checkpoint=args.checkpoint, backbone=args.backbone,
        clip_length_frames=args.clip_length, frame_rate=args.frame_rate, stride_frames=args.stride,
        short_side=args.short_side, crop_size=args.crop, batch_size=args.batch_size,
        workers=args.workers, format=args.format, shard_id=args.shard_id, num_shards=args.num_shards,
        seed=args.seed, device=args.device)
    summary = extract_features(config)
    _print_table(summarize_extraction(summary), f"Feature extraction into {args.out}:")
    failed = summary[summary.status == "failed"]
    if len(failed):
        _print_table(failed[["video", "error"]], "Failed videos (also in failures.csv):")
    return 0


def _add_gvf(sub) -> None:
    p = sub.add_parser("gvf", help="pool a feature folder into a global-video-feature (GVF) h5 file")
    p.add_argument("feature_dir", help="feature folder ({video}.npy files)")
    p.add_argument("--out", required=True, help="GVF h5 file to write (one [C] dataset per video)")
    p.add_argument("--pooling", choices=["max", "avg"], default="max", help="TSP uses max (default)")
    p.set_defaults(func=_run_gvf)


def _run_gvf(args) -> int:
    from tsplab.features import compute_gvf_file, read_gvf_h5

    path = compute_gvf_file(args.feature_dir, args.out, args.pooling)
    gvfs = read_gvf_h5(path)
    dim = next(iter(gvfs.values())).shape[0]
    print(f"{args.pooling}-pooled GVFs of {len(gvfs)} videos ({dim}-d) written to {path}")
    return 0


def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="write the built-in synthetic benchmark (MP4 videos + ActivityNet JSON)")
    p.add_argument("--preset", default="default", choices=["tiny", "default"],
                   help="benchmark size (default: default, the demo's)")
    p.add_argument("--out", required=True, help="output folder (videos/, annotations.json, ...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="encoding processes")
    p.set_defaults(func=_run_synth)


def _run_synth(args) -> int:
    from tsplab.synthetic import benchmark_summary, generate_benchmark

    try:
        out = generate_benchmark(args.out, args.preset, seed=args.seed, workers=args.workers)
    except ValueError as exc:  # e.g. the folder holds a benchmark of another seed
        print(f"tsplab synth: error: {exc}", file=sys.stderr)
        return 2
    _print_table(benchmark_summary(out), f"Synthetic benchmark '{args.preset}' (seed {args.seed}) in {out}:")
    return 0


def _add_segments(sub) -> None:
    p = sub.add_parser("segments", help="build TSP's segment table (actions + background gaps) from annotations")
    p.add_argument("annotations", help="ActivityNet/DETAD JSON, TSP ground-truth CSV or custom CSV "
                                       "(video,t_start,t_end,label)")
    p.add_argument("--out", required=True, help="segment table CSV to write (TSP's columns); the "
                                                "dropped/changed rows go to <out>_report.csv")
    p.add_argument("--preset", default="activitynet", choices=["activitynet", "thumos14"],
                   help="minimum background gap: activitynet 5 clips, thumos14 1 clip of 16/15 s")
    p.add_argument("--min-background-s", type=float, help="override the preset's minimum gap (seconds)")
    p.add_argument("--durations", help="durations file: TSP metadata CSV or video,duration CSV")
    p.add_argument("--subset", help="keep this subset (training, validation, testing), or name the "
                                    "subset of a file that has none")
    p.add_argument("--labels", help="label-mapping JSON; actions of other classes are dropped")
    p.add_argument("--strict", action="store_true", help="fail on any invalid row instead of fixing it")
    p.set_defaults(func=_run_segments)


def _run_segments(args) -> int:
    from pathlib import Path

    from tsplab.annotations import (SEGMENT_PRESETS, AnnotationError, build_segment_table,
                                    read_annotations, read_label_mapping, write_segment_table)
    from tsplab.runs import atomic_path, resolve

    try:
        ann = read_annotations(resolve(args.annotations), durations=args.durations and resolve(args.durations),
                               subset=args.subset)
        labels = read_label_mapping(resolve(args.labels)) if args.labels else None
        min_background_s = args.min_background_s
        if min_background_s is None:
            min_background_s = SEGMENT_PRESETS[args.preset].min_background_s
        table, report = build_segment_table(ann, min_background_s=min_background_s, labels=labels,
                                            strict=args.strict)
    except (AnnotationError, FileNotFoundError, KeyError) as exc:
        print(f"tsplab segments: error: {exc}", file=sys.stderr)
        return 1
    out = write_segment_table(table, resolve(args.out))
    report_path = out.with_name(f"{out.stem}_report.csv")
    with atomic_path(report_path) as tmp:
        report.to_csv(tmp, index=False)
    regions = table["temporal-region-label"].value_counts()
    print(f"Wrote {len(table)} segments ({regions.get('Action', 0)} actions, "
          f"{regions.get('No action', 0)} background, gaps >= {min_background_s:.4g} s) of "
          f"{table['video-name'].nunique()} videos to {out}")
    counts = report.groupby(["problem", "action"]).size().reset_index(name="rows")
    _print_table(counts, f"Dropped or changed annotation rows ({len(report)}, all in {report_path}):")
    if len(report):
        shown = 40
        _print_table(report.head(shown), "Rows:" if len(report) <= shown else f"First {shown} rows:")
    return 0


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
    from tsplab.video import standardize_videos

    try:
        table = standardize_videos(resolve(args.in_dir), resolve(args.out_dir), fps=args.fps,
                                   short_side=args.short_side, workers=args.workers)
    except (FileNotFoundError, ValueError) as exc:
        print(f"tsplab standardize: error: {exc}", file=sys.stderr)
        return 1
    counts = table.status.value_counts()
    print(f"{args.in_dir} -> {args.out_dir} at {args.fps:g} fps: " +
          ", ".join(f"{counts.get(s, 0)} {s}" for s in ("done", "skipped", "failed")))
    failed = table[table.status == "failed"]
    if len(failed):
        _print_table(failed[["video", "error"]], "Failed videos:")
    return 1 if len(failed) else 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="detection mAP or proposal AR@AN of an ActivityNet-format result "
                                        "file (the ActivityNet evaluation's algorithms)")
    p.add_argument("ground_truth", help="ActivityNet/DETAD JSON, TSP ground-truth CSV or custom CSV")
    p.add_argument("predictions", help='result JSON {"results": {video: [{segment, label, score}]}}')
    p.add_argument("--preset", default="activitynet", choices=["activitynet", "thumos14", "synthetic"],
                   help="tIoU thresholds: activitynet (and synthetic) 0.5:0.05:0.95, thumos14 0.3:0.1:0.7")
    p.add_argument("--subset", help="ground-truth subset (default: the only one in the file, else the "
                                    "preset's: validation / testing)")
    p.add_argument("--proposals", action="store_true", help="evaluate as proposals: AR@1/10/100 and AUC")
    p.add_argument("--exclude", help="text file of video ids (one per line) to leave out on both sides")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    import pandas as pd

    from tsplab.metrics import evaluate_files
    from tsplab.runs import resolve, write_json

    exclude = None
    if args.exclude:
        exclude = [v.strip() for v in resolve(args.exclude).read_text().splitlines() if v.strip()]
    try:
        result = evaluate_files(resolve(args.ground_truth), resolve(args.predictions), args.preset,
                                subset=args.subset, proposals=args.proposals, exclude_videos=exclude)
    except (FileNotFoundError, ValueError) as exc:
        print(f"tsplab evaluate: error: {exc}", file=sys.stderr)
        return 1
    if args.proposals:
        table = pd.DataFrame({"metric": list(result.summary().columns),
                              "value (%)": [f"{100 * v:.2f}" for v in result.summary().iloc[0]]})
        _print_table(table, f"Proposals ({args.preset}): AR@AN and AUC")
    else:
        names = [f"{t:.2f}" for t in result.tiou_thresholds] + ["average"]
        values = list(result.mAP) + [result.average_mAP]
        table = pd.DataFrame({"tIoU": names, "mAP (%)": [f"{100 * v:.2f}" for v in values]})
        _print_table(table, f"Detection ({args.preset}): {result.num_predictions} predictions, "
                            f"{result.num_ground_truth} instances, {len(result.ap)} classes")
    if args.json:
        print(f"Results written to {write_json(resolve(args.json), result.to_dict())}")
    return 0


def _add_pretrain(sub) -> None:
    p = sub.add_parser("pretrain", help="pretrain an encoder (tac, tsp, ...); under torchrun with DDP")
    p.add_argument("--method", default="tsp", help="tac | tsp | ... (tsplab.methods.METHODS)")
    p.add_argument("--preset", default="tsp", help="settings to start from: tsp (the paper's) or synthetic")
    p.add_argument("--dataset", help="folder with annotations.json and videos/ (the synthetic layout)")
    p.add_argument("--annotations", help="annotation file (ActivityNet/DETAD JSON, TSP CSV, custom CSV)")
    p.add_argument("--valid-annotations", help="validation annotation file (default: --annotations)")
    p.add_argument("--video-dir", help="folder of the videos (default: DATASET/videos)")
    p.add_argument("--run-dir", help="run folder; outputs go to RUN/pretrain/<method>/")
    p.add_argument("--backbone", help="r2plus1d_34 | r2plus1d_18 | r3d_18 | r2plus1d_tiny")
    p.add_argument("--weights", help="initial weights: kinetics400, a checkpoint path, or none")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="clips per process")
    p.add_argument("--backbone-lr", type=float)
    p.add_argument("--fc-lr", type=float)
    p.add_argument("--gvf-pooling", help="max | avg | none")
    p.add_argument("--gvf-mode", help="frozen | epoch | momentum")
    p.add_argument("--workers", type=int, help="DataLoader workers per process")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda (default: CUDA when available)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any other PretrainConfig field, e.g. --set alpha_c=0 --set output_name=tsp_no_ac")
    p.add_argument("--resume", action="store_true", help="continue the run folder's checkpoint")
    p.add_argument("--stop-after-epochs", type=int, help="return after this many epochs (resume later)")
    p.set_defaults(func=_run_pretrain)


def _run_pretrain(args) -> int:
    from tsplab.distributed import rank_and_world_size
    from tsplab.train import parse_overrides, pretrain, pretrain_config

    flags = {"method": args.method, "dataset_dir": args.dataset, "annotations": args.annotations,
             "valid_annotations": args.valid_annotations, "video_dir": args.video_dir,
             "run_dir": args.run_dir, "backbone": args.backbone, "epochs": args.epochs,
             "batch_size": args.batch_size, "backbone_lr": args.backbone_lr, "fc_lr": args.fc_lr,
             "gvf_pooling": args.gvf_pooling, "gvf_mode": args.gvf_mode, "workers": args.workers,
             "seed": args.seed, "device": args.device}
    overrides = {k: v for k, v in flags.items() if v is not None}
    if args.weights is not None:
        overrides["weights"] = None if args.weights.lower() == "none" else args.weights
    try:
        overrides.update(parse_overrides(args.set))
        config = pretrain_config(args.preset, **overrides)
        result = pretrain(config, resume=args.resume, stop_after_epochs=args.stop_after_epochs)
    except (ValueError, FileNotFoundError) as exc:
        print(f"tsplab pretrain: error: {exc}", file=sys.stderr)
        return 2
    if rank_and_world_size()[0] == 0:
        columns = [c for c in result.metrics.columns if c == "epoch" or c.startswith(("train_loss", "valid_acc"))
                   or c in ("data_wait_share", "clips_per_s")]
        _print_table(result.metrics[columns].round(4), f"Pretraining {config.method} ({result.output_dir}):")
        print(f"best epoch {result.best_epoch}: {result.best_checkpoint}")
    return 0


# In the order of the pipeline (this is the order `tsplab --help` lists them in).
def _add_localize(sub) -> None:
    p = sub.add_parser("localize", help="train the ActionFormer-style localizer with ASL on a feature folder, "
                                        "predict the validation videos and evaluate (mAP)")
    p.add_argument("--features", required=True, help="feature folder (one [T, C] .npy per video + metadata.json)")
    p.add_argument("--annotations", required=True, help="ground truth (ActivityNet JSON or any format "
                                                         "tsplab reads) with training and validation subsets")
    p.add_argument("--out", required=True, help="run folder: config, checkpoint, history, predictions.json")
    p.add_argument("--preset", default="synthetic", choices=["activitynet", "thumos14", "synthetic"],
                   help="metric preset (tIoU thresholds)")
    p.add_argument("--train-subset", default="training")
    p.add_argument("--valid-subset", default="validation")
    for name, text in (("ase-class", "ASE class-level Gaussians"),
                       ("ase-instance", "ASE instance-level evaluators"), ("ascl", "ASCL loss")):
        p.add_argument(f"--no-{name}", action="store_true", help=f"switch off {text} (ASL Table 5)")
    p.add_argument("--baseline", action="store_true", help="all ASL components off (ActionFormer-style)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max-predictions", type=int, default=100,
                   help="cap per video (ActivityNet 100, THUMOS14 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_run_localize)


def _run_localize(args) -> int:
    import pandas as pd

    from tsplab.localizer import LocalizerConfig, train_localizer

    config = LocalizerConfig(
        features_dir=args.features, annotations=args.annotations, out_dir=args.out,
        train_subset=args.train_subset, valid_subset=args.valid_subset, metric_preset=args.preset,
        ase_class=not (args.no_ase_class or args.baseline),
        ase_instance=not (args.no_ase_instance or args.baseline),
        ascl=not (args.no_ascl or args.baseline), epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, max_predictions=args.max_predictions, seed=args.seed, device=args.device)
    try:
        result = train_localizer(config)
    except (FileNotFoundError, ValueError) as exc:
        print(f"tsplab localize: error: {exc}", file=sys.stderr)
        return 1
    det = result.detection
    names = [f"{t:.2f}" for t in det.tiou_thresholds] + ["average"]
    values = list(det.mAP) + [det.average_mAP]
    _print_table(pd.DataFrame({"tIoU": names, "mAP (%)": [f"{100 * v:.2f}" for v in values]}),
                 f"Localization ({args.preset}): {det.num_predictions} predictions, "
                 f"{det.num_ground_truth} instances")
    print(f"final training loss {result.history['loss'].iloc[-1]:.4f}; predictions: "
          f"{result.predictions_path}; checkpoint: {result.checkpoint_path}")
    return 0


_SUBCOMMANDS = [_add_synth, _add_segments, _add_standardize, _add_pretrain, _add_extract, _add_gvf,
                _add_localize, _add_evaluate, _add_demo]


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
    try:
        return int(args.func(args) or 0)
    except (InputError, FileNotFoundError) as exc:
        print(f"tsplab {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
