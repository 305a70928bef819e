"""``tsplab localize``, ``tsplab fuse`` and ``tsplab evaluate``: temporal localization and its evaluation."""
from __future__ import annotations

import sys

from tsplab.cli.common import add_overwrite, print_table
from tsplab.errors import InputError, one_line

def add_localize(sub) -> None:
    from tsplab.config import add_config_flags
    from tsplab.localizer import LocalizerConfig

    p = sub.add_parser("localize", help="train the ActionFormer-style localizer with ASL on a feature folder, "
                                        "predict the validation videos and evaluate (mAP)")
    add_config_flags(p, LocalizerConfig)  # a flag per field declared with one, and --set NAME=VALUE
    p.add_argument("--baseline", action="store_true", help="all ASL components off (ActionFormer-style)")
    p.set_defaults(func=run_localize)


def run_localize(args) -> int:
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
    print_table(pd.DataFrame({"tIoU": names, "mAP (%)": [f"{100 * v:.2f}" for v in values]}),
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


def add_fuse(sub) -> None:
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
    add_overwrite(p, "the --out file")
    p.set_defaults(func=run_fuse)


def run_fuse(args) -> int:
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


def add_evaluate(sub) -> None:
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
    add_overwrite(p, "the --json file")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
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
        print_table(table, f"Proposals ({result.preset}): AR@AN and AUC")
    else:
        names = [f"{t:.2f}" for t in result.tiou_thresholds] + ["average"]
        values = list(result.mAP) + [result.average_mAP]
        table = pd.DataFrame({"tIoU": names, "mAP (%)": [f"{100 * v:.2f}" for v in values]})
        print_table(table, f"Detection ({result.preset}): {result.num_predictions} predictions, "
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
