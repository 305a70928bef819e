"""``tsplab pretrain``: a video encoder pretrained by one of ``tsplab.pretrain.methods``."""
from __future__ import annotations

import argparse

from tsplab.cli.common import deprecated, print_table

def add_pretrain(sub) -> None:
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
    p.set_defaults(func=run_pretrain)


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


def run_pretrain(args) -> int:
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
            deprecated(flag, f"--set {option}=")
            overrides[option] = getattr(args, option)
    if args.weights is not None:
        overrides["weights"] = None if args.weights.lower() == "none" else args.weights
    if args.trust_checkpoint_code:
        overrides["trust_pickle"] = True
    overrides.update(parse_overrides(args.set, method=args.method))
    recipe = args.recipe
    if args.preset is not None:
        deprecated("--preset", "--recipe")
        recipe = recipe or args.preset
    config = pretrain_config(recipe or "tsp", **overrides)
    result = pretrain(config, resume=args.resume, stop_after_epochs=args.stop_after_epochs)
    if rank_and_world_size()[0] == 0:
        columns = [c for c in result.metrics.columns if c == "epoch" or c.startswith(("train_loss", "valid_acc"))
                   or c in ("data_wait_share", "clips_per_s")]
        print_table(result.metrics[columns].round(4), f"Pretraining {config.method} ({result.output_dir}):")
        print(f"best epoch {result.best_epoch}: {result.best_checkpoint}")
    return 0
