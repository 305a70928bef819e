"""Recipes: named pretraining settings (``RECIPES``) and the configs made from them.

``pretrain_config(recipe, **overrides)`` is a recipe with loop fields and the method's options
overridden by name; ``method_configs`` makes one checked config per method as notebook 03 trains
them; ``config_changes`` is a config's short form (what it sets beyond its recipe).

The synthetic benchmark trains a tiny encoder, which TSP's schedule (tuned for fine-tuning Kinetics
weights) does not suit: ``RECIPES["synthetic"]`` holds its settings. Its initial weights are
``weights="source"``: as every encoder of the paper starts from TAC on Kinetics (TSP §4.1), every
method on the benchmark starts from TAC on the benchmark's trimmed source set, resolved to that
checkpoint when a run starts (``tsplab.pretrain.source.resolve_weights``; trained first if absent).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from tsplab import config as configs
from tsplab.config import config_from_values, plain_value
from tsplab.errors import InputError
from tsplab.pretrain.config import (SOURCE_WEIGHTS, PretrainConfig, build_config, check_config, config_values,
                                    option_fields, valid_names)
from tsplab.pretrain.methods import METHODS, get_method
from tsplab.runs import read_json, resolve

#: Named settings. ``tsp``: the paper's. ``synthetic``: the built-in benchmark: a tiny R(2+1)D
#: fine-tuned from the benchmark's initial encoder (``weights="source"``: TAC on its source set),
#: 8-frame clips at the videos' 15 fps on 32 px frames, crop 28 = TSP's 112/128. Adam, the heads at
#: ``SYNTHETIC_HEAD_LR`` and the encoder (stem and backbone) at ``ENCODER_LR_RATIO`` of it: TSP §4.1
#: fine-tunes the encoder below its heads (1e-4 against 0.002-0.01); the ratio was chosen by a sweep
#: on pretraining validation accuracy only (``benchmarks/sweep_encoder_lr.py``; the rule and the
#: table in the README). A run from random weights (``weights=None``: the source encoder's own run,
#: PAL from scratch) trains every part at the heads' rate (``pretrain_config``). The schedule keeps
#: TSP's shape (linear warm-up, step decay), shortened to 4 epochs of 3 clips per segment. The best
#: epoch is chosen on 15 % of the training videos held out (``valid_holdout``), never on the
#: localizer's test videos; TAC takes TSP's steps per epoch (``TACOptions.match_tsp_steps``, a
#: method recipe override). One torch thread beside one loader process: on a shared 2-core machine
#: two OpenMP threads are slower as soon as another process wants a core (``threads=2`` on a quiet
#: machine). The background rule is the dataset's (the synthetic benchmark: gaps from 1 clip).

SYNTHETIC_HEAD_LR = 2e-3
ENCODER_LR_RATIO = 0.01  # encoder rate / head rate of the synthetic recipe (see above)

RECIPES: dict[str, dict] = {
    "tsp": {},
    "synthetic": dict(
        backbone="r2plus1d_tiny", weights=SOURCE_WEIGHTS,
        clip_length_frames=8, frame_rate=15.0, resize_short_side=32, crop_size=28, clips_per_segment=3,
        epochs=4, batch_size=32, optimizer="adam", backbone_lr=ENCODER_LR_RATIO * SYNTHETIC_HEAD_LR,
        fc_lr=SYNTHETIC_HEAD_LR, stem_lr=ENCODER_LR_RATIO * SYNTHETIC_HEAD_LR,
        weight_decay=1e-4, warmup_epochs=0.5, lr_milestones=(3,), lr_gamma=0.1, workers=1, threads=1,
        valid_holdout=0.15,
    ),
}


def pretrain_config(recipe: str = "tsp", **overrides) -> PretrainConfig:
    """A ``PretrainConfig`` from a named recipe (``RECIPES``) with ``overrides``: loop fields and
    the method's options, by name (``pretrain_config("synthetic", method="tsp", gvf_mode="epoch")``).

    With ``recipe="synthetic"`` and a ``dataset_dir`` holding a synthetic benchmark, the clip length,
    frame rate and short side come from the benchmark's ``benchmark.json`` (the tiny benchmark uses
    16 px frames) unless overridden; the crop keeps TSP's ratio 112/128. A method's own
    ``recipe_overrides`` for the recipe come next (e.g. PAL's optimiser, schedule and 8-frame clips),
    then ``overrides``.
    An unknown recipe, field or option raises ``InputError`` listing the valid ones."""
    if recipe not in RECIPES:
        raise InputError(f"unknown pretraining recipe {recipe!r}; valid recipes: {', '.join(RECIPES)}")
    method = get_method(overrides.get("method", PretrainConfig.method))
    values = dict(RECIPES[recipe])
    if recipe == "synthetic" and "weights" in overrides and overrides["weights"] is None:
        # The encoder's lower rates are for fine-tuning a trained encoder (TSP §4.1); a random one
        # trains every part at the heads' rate (as the source encoder itself is trained).
        values.update(backbone_lr=values["fc_lr"], stem_lr=values["fc_lr"])
    if recipe == "synthetic" and overrides.get("dataset_dir"):
        cfg = _benchmark_clip_config(resolve(overrides["dataset_dir"]))
        if cfg is not None:
            values.update(clip_length_frames=int(cfg["clip_length_frames"]), frame_rate=float(cfg["fps"]),
                          resize_short_side=int(cfg["clip_short_side"]),
                          crop_size=int(round(cfg["clip_short_side"] * 112 / 128)))
    # After the benchmark's clip: a method's paper may fix its own (PAL: 8-frame clips everywhere).
    values.update(method.recipe_overrides.get(recipe, {}))
    option_names = {f.name for f in option_fields(method)}
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(PretrainConfig)} - option_names)
    if unknown:
        raise InputError(f"unknown PretrainConfig fields {unknown}; {valid_names(method)}")
    # Options: the recipe's, then an ``options`` object given, then options given by name.
    options = {k: values.pop(k) for k in list(values) if k in option_names}
    given = overrides.get("options") or {}
    options.update(dataclasses.asdict(given) if dataclasses.is_dataclass(given) else given)
    values.update(overrides)
    values["options"] = options
    return build_config(values, method, "PretrainConfig fields")


def _benchmark_clip_config(folder: Path) -> dict | None:
    """The synthetic benchmark config whose clip a run on ``folder`` takes: the benchmark's own
    (``benchmark.json``) or, for its trimmed source set (``source.json``, e.g. PAL pretraining on
    ``<benchmark>/source``, PAL §4.1.1), the benchmark's it belongs to; None for other folders."""
    if (folder / "benchmark.json").is_file():
        return read_json(folder / "benchmark.json")["config"]
    if (folder / "source.json").is_file():
        return read_json(folder / "source.json")["benchmark"]["config"]
    return None


def method_configs(recipe: str, methods, *, method_options: dict | None = None, output_name: str = "",
                   **overrides) -> dict[str, PretrainConfig]:
    """``{method: checked PretrainConfig}`` for each of ``methods`` (a name or a list), as notebook
    03 trains them one after the other: ``overrides`` (loop fields and options) go to every method;
    ``method_options`` (e.g. TSP's ``{"gvf_pooling": "none"}``; checked by ``split_method_options``)
    gives each method the entries that are its options. ``output_name`` names one run folder, so it
    needs exactly one method. Every config passes ``check_config`` before any run starts: an unknown
    method, field or option raises ``InputError`` listing the valid ones."""
    names = split_method_options(methods, method_options)
    if output_name and len(names) > 1:
        raise InputError(f"output_name: one run folder name ({output_name!r}) cannot hold several methods "
                         f"({', '.join(names)}); give one method or leave output_name empty")
    out = {}
    for name, options in names.items():
        out[name] = pretrain_config(recipe, method=name, output_name=output_name, **options, **overrides)
        check_config(out[name])
    return out


def split_method_options(methods, method_options: dict | None) -> dict[str, dict]:
    """``{method: its entries of method_options}`` for ``methods`` (a name or a list; each checked
    against ``METHODS``). Every entry must be an option of at least one of them; each method's
    entries are checked through its options class (``tsplab.config.check_config``: type, choices,
    range). ``InputError`` naming the option and the valid ones otherwise (notebook 03's check cell
    calls this, so a misspelt option stops the run before anything is read or written)."""
    from tsplab.errors import check_choice

    check_choice("method", methods, METHODS, several=True)
    names = [methods] if isinstance(methods, str) else list(methods)
    given = dict(method_options or {})
    own = {name: {f.name for f in option_fields(name)} for name in names}
    unknown = sorted(set(given) - set().union(*own.values()))
    if unknown:
        valid = "; ".join(f"{name}: {', '.join(sorted(fields)) or 'none'}" for name, fields in own.items())
        raise InputError(f"method_options: {unknown[0]!r} is no option of {', '.join(names)}; valid: {valid}")
    split = {name: {k: v for k, v in given.items() if k in own[name]} for name in names}
    for name, options in split.items():
        configs.check_config(config_from_values(get_method(name).Options, options, f"method_options ({name})"))
    return split


def config_changes(config: PretrainConfig, recipe: str) -> dict:
    """What ``config`` sets beyond the named ``recipe`` (``RECIPES``, with the synthetic benchmark's
    clip read from ``config.dataset_dir`` as ``pretrain_config`` does), then every option of its
    method: ``{name: value}``, the short form of a run's settings that notebook 03 shows."""
    default = config_values(pretrain_config(recipe, method=config.method, dataset_dir=config.dataset_dir))
    values = config_values(config)
    options = {f.name for f in option_fields(config.method)}
    changed = {k: v for k, v in values.items()
               if k not in options and plain_value(v) != plain_value(default.get(k))}
    return {**changed, **{k: values[k] for k in values if k in options}}

