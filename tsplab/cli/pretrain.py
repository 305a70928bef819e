"""``tsplab pretrain``: a video encoder pretrained by one of ``tsplab.pretrain.methods``.

Its flags are ``PretrainConfig``'s fields declared with ``flag`` (``tsplab.config.add_config_flags``),
``--set NAME=VALUE`` for any other field or an option of the method, and the command's own:
``--recipe`` (the settings to start from), ``--resume``, ``--stop-after-epochs``."""
from __future__ import annotations

import argparse

from tsplab.cli.common import deprecated, print_table


def add_pretrain(sub) -> None:
    from tsplab.config import add_config_flags
    from tsplab.pretrain.config import PretrainConfig, option_fields
    from tsplab.pretrain.methods import METHODS
    from tsplab.pretrain.recipes import RECIPES

    p = sub.add_parser("pretrain", help="pretrain a video encoder (the methods of tsplab.pretrain.methods; "
                                        "`tsplab pretrain --help` lists them); under torchrun with DDP")
    # Bad names (method, backbone) are refused by check_config with a one-line error, not by argparse.
    add_config_flags(p, PretrainConfig, overrides=False, parser_choices=False)
    p.add_argument("--recipe", help=f"settings to start from (default: tsp, the paper's): one of {', '.join(RECIPES)}")
    # Deprecated spellings, kept for one release (a one-line note on stderr when used).
    p.add_argument("--preset", help=argparse.SUPPRESS)
    p.add_argument("--gvf-pooling", help=argparse.SUPPRESS)
    p.add_argument("--gvf-mode", help=argparse.SUPPRESS)
    options = "; ".join(f"{name}: {', '.join(f.name for f in option_fields(m)) or 'none'}"
                        for name, m in METHODS.items())
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any other PretrainConfig field or an option of the method, e.g. --set lr_milestones=[3,5] "
                        "--set amp=false --set alpha_c=0 --set output_name=tsp_no_ac --set dataset=thumos14. "
                        f"Options by method: {options}")
    p.add_argument("--resume", action="store_true", help="continue the run folder's checkpoint")
    p.add_argument("--stop-after-epochs", type=int, help="return after this many epochs, >= 1 (resume later)")
    p.set_defaults(func=run_pretrain)


def pretrain_overrides(args) -> tuple[str, dict]:
    """``(recipe, overrides)`` for ``pretrain_config`` from the parsed flags: the fields given by
    their flags (``--weights none``: random weights), the deprecated spellings, then ``--set``."""
    from tsplab.config import config_fields
    from tsplab.pretrain import parse_overrides
    from tsplab.pretrain.config import PretrainConfig

    overrides = {name: getattr(args, name) for name in config_fields(PretrainConfig) if hasattr(args, name)}
    if isinstance(overrides.get("weights"), str) and overrides["weights"].lower() == "none":
        overrides["weights"] = None
    for flag, option in (("--gvf-pooling", "gvf_pooling"), ("--gvf-mode", "gvf_mode")):
        if getattr(args, option) is not None:
            deprecated(flag, f"--set {option}=")
            overrides[option] = getattr(args, option)
    overrides.update(parse_overrides(args.set, method=overrides.get("method")))
    recipe = args.recipe
    if args.preset is not None:
        deprecated("--preset", "--recipe")
        recipe = recipe or args.preset
    return recipe or "tsp", overrides


def run_pretrain(args) -> int:
    """Bad settings, files or weights raise ``InputError`` before the run folder is touched (the
    caller prints it as one line, exit 2)."""
    from tsplab.distributed import rank_and_world_size
    from tsplab.pretrain import pretrain, pretrain_config

    recipe, overrides = pretrain_overrides(args)
    config = pretrain_config(recipe, **overrides)
    result = pretrain(config, resume=args.resume, stop_after_epochs=args.stop_after_epochs)
    if rank_and_world_size()[0] == 0:
        columns = [c for c in result.metrics.columns if c == "epoch" or c.startswith(("train_loss", "valid_acc"))
                   or c in ("data_wait_share", "clips_per_s")]
        print_table(result.metrics[columns].round(4), f"Pretraining {config.method} ({result.output_dir}):")
        print(f"best epoch {result.best_epoch}: {result.best_checkpoint}")
    return 0
