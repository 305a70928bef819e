"""What a pretraining run is: ``PretrainConfig``, its typed overrides and its checks.

``PretrainConfig`` holds what the loop (``tsplab.pretrain.loop``) reads plus, in ``options``, the
chosen method's own options (its ``Options`` dataclass, e.g. ``tsplab.pretrain.methods.tsp.TSPOptions``);
both are saved together in ``config.json`` and the checkpoint. Every field declares its check with
``tsplab.config.setting`` (the options field: the class its ``method`` picks), so the one
configuration mechanism (``tsplab.config``) checks them and types ``--set NAME=VALUE`` items, an
option reached by its name like a loop field. Recipes (``tsplab.pretrain.recipes``) and notebook 03
do the same. ``config_from_dict`` reads a saved config back, also the flat layout of runs made
before options moved into the methods (``bsp_*``, ``pal_*``, ``gvf_*``, ``alpha_*`` beside the
loop's fields).

Checks, before any run folder is touched: ``check_config`` (the fields' declarations, then the
rules between fields and the method's own) and ``check_inputs`` (the files and folders a run reads
and writes); ``InputError`` names the field or file and what is valid. ``weights="source"`` (the
synthetic recipe's initial encoder) is resolved to a checkpoint by
``tsplab.pretrain.source.resolve_weights``.
"""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import torch

from tsplab import config as configs
from tsplab.backbones import BACKBONES
from tsplab.config import config_from_values, lists_to_tuples, setting
from tsplab.datasets.presets import PRESETS as DATASETS
from tsplab.errors import InputError
from tsplab.pretrain.methods import METHODS, get_method
from tsplab.runs import check_output_folder, resolve

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("step", "plateau")
SOURCE_WEIGHTS = "source"  # the synthetic benchmark's initial encoder (tsplab.pretrain.source.resolve_weights)


def _options_class(method: str):
    return get_method(method).Options


@dataclasses.dataclass
class PretrainConfig:
    """Everything a pretraining run depends on (saved as ``config.json`` in its folder): the loop's
    settings and, in ``options``, the chosen method's.

    Defaults are TSP's (R(2+1)D-34 from Kinetics weights, 16 frames at 15 fps, short side 128, crop
    112, SGD schedule of §4.1). See ``tsplab.pretrain.recipes.RECIPES`` for the synthetic benchmark's settings."""

    # Each field with ``flag`` is a ``tsplab pretrain`` flag (tsplab.config.add_config_flags); its
    # default there is the recipe's (tsplab.pretrain.recipes), not always the field's.
    method: str = setting("tsp", choices=METHODS, flag=True, help="pretraining method (default: tsp)")
    backbone: str = setting("r2plus1d_34", choices=BACKBONES, flag=True,
                            help="video encoder (default: the recipe's)")
    # initial weights: "kinetics400", a checkpoint path, "source" (the synthetic benchmark's initial
    # encoder: TAC on its source set, see tsplab.pretrain.source) or None (random)
    weights: str | None = setting("kinetics400", flag=True, help=(
        "initial weights: kinetics400, source (the synthetic benchmark's source encoder, its recipe's "
        "default), a checkpoint path, or none (random)"))
    # Checkpoints (weights, BSP teachers) are read with torch's safe loader; True unpickles a file it
    # refuses in full, which runs any code stored in the file: only for files from a trusted source.
    trust_pickle: bool = setting(False, flag="--trust-checkpoint-code", help=(
        "unpickle a checkpoint (--weights, BSP teachers) in full when torch's safe loader refuses it: "
        "RUNS ANY CODE STORED IN THE FILE; only for files you trust"))

    # data: the synthetic layout DATASET/{annotations.json, videos/}, or explicit paths
    dataset_dir: str = setting("", flag="--dataset",
                               help="folder with annotations.json and videos/ (the synthetic layout)")
    annotations: str = setting("", flag=True,  # default DATASET/annotations.json
                               help="annotation file (ActivityNet/DETAD JSON, TSP CSV, custom CSV)")
    valid_annotations: str = setting("", flag=True, help="validation annotation file (default: --annotations)")
    video_dir: str = setting("", flag=True, help="folder of the videos (default: DATASET/videos)")
    train_subset: str = "training"
    valid_subset: str = "validation"
    # Pretraining validation (best epoch, plateau schedule): 0 validates on ``valid_subset`` (TSP
    # §4.1); a share in (0, 1) holds out that share of the training subset's videos instead, drawn by
    # ``seed`` (tsplab.pretrain.sampling.holdout_videos; listed in the run folder's pretrain_split.csv), so that
    # best.pt is never chosen on the videos a localizer is then scored on.
    valid_holdout: float = setting(0.0, rule="[0,1)", valid="a number in [0, 1) (a share of the training "
                                   "videos; 0: validate on valid_subset)")
    # The dataset preset (tsplab.datasets.presets: activitynet | thumos14 | synthetic) whose background rule
    # applies; "" tells it from the annotations' video ids (tsplab.datasets.presets.infer_preset).
    dataset: str = setting("", choices=("", *DATASETS),
                           valid=f"{', '.join(DATASETS)}, or empty to tell it from the video ids")
    # Background gaps shorter than this many clips are dropped; None: the dataset preset's (TSP's
    # released tables keep gaps from 5 clips on ActivityNet and 1 on THUMOS14; synthetic: 1).
    min_background_clips: float | None = setting(None, rule=">=0")

    # where outputs go
    run_dir: str = setting("runs/default", flag=True,
                           help="run folder; outputs go to RUN/pretrain/<method>/ (default: runs/default)")
    output_name: str = ""  # run folder name under RUN/pretrain/ (default: the method's name)
    frame_cache_dir: str = ""  # default RUN/frame_cache (shared by every method of the run)

    # clips (TSP §4.1)
    clip_length_frames: int = setting(16, rule=">0")
    frame_rate: float = setting(15.0, rule=">0")
    clips_per_segment: int = setting(5, rule=">0")
    resize_short_side: int = setting(128, rule=">0")
    crop_size: int = setting(112, rule=">0")

    # optimisation (TSP §4.1)
    epochs: int = setting(8, rule=">0", flag=True, help="(default: the recipe's)")
    batch_size: int = setting(32, rule=">0", flag=True, help="clips per process (default: the recipe's)")
    optimizer: str = setting("sgd", choices=OPTIMIZERS)
    backbone_lr: float = setting(1e-4, rule=">=0", flag=True, help="(default: the recipe's)")
    # TSP grid-searched 0.002-0.01; its released ActivityNet model used 0.002
    fc_lr: float = setting(0.002, rule=">=0", flag=True, help="(default: the recipe's)")
    stem_lr: float = setting(0.0, rule=">=0")  # 0: stem frozen (TSP)
    momentum: float = setting(0.9, rule="[0,1]")
    weight_decay: float = setting(0.005, rule=">=0")
    warmup_epochs: float = setting(2.0, rule=">=0")
    warmup_factor: float = setting(1e-5, rule=">=0")  # the first step's fraction of the rate (TSP's WarmupMultiStepLR)
    lr_milestones: tuple = setting((4, 6), rule=">=0")  # epochs (lr_schedule "step" only)
    lr_gamma: float = setting(0.01, rule=">0")  # the factor of each decay (a milestone passed, or a plateau)
    # "step": decay x lr_gamma at each of lr_milestones (TSP). "plateau": decay x lr_gamma once the
    # validation loss has not improved for lr_patience_epochs epochs in a row (PAL §4.1: "decreases
    # by a factor of 10 when the validation loss saturates"); see tsplab.pretrain.optim.WarmupPlateau.
    lr_schedule: str = setting("step", choices=LR_SCHEDULES)
    lr_patience_epochs: int = setting(2, rule=">=0")
    scale_lr_with_world_size: bool = True
    amp: bool = True  # CUDA only

    # running
    seed: int = setting(0, rule=">=0", flag=True, help="(default: the recipe's)")
    workers: int = setting(2, rule=">=0", flag=True, help="DataLoader workers per process (default: the recipe's)")
    threads: int = setting(0, rule=">=0")  # torch threads of each training process (0: torch's default)
    device: str = setting("", flag=True, help="cpu, cuda (default: CUDA when available)")
    max_steps_per_epoch: int = setting(0, rule=">=0")  # 0 = the whole epoch (a cap is for benchmarks and smoke runs)
    keep_epoch_checkpoints: bool = False  # also keep epoch_NNN.pt for every epoch
    progress: bool = True

    # The method's options: an instance of its ``Options`` dataclass (tsplab.pretrain.methods; e.g.
    # TSPOptions). None: the method's defaults; a dict (JSON, papermill) is read by option name.
    options: Any = setting(None, options_of=("method", _options_class))

    def __post_init__(self):
        lists_to_tuples(self)  # JSON (config.json, papermill) gives lists
        method = METHODS.get(self.method) if isinstance(self.method, str) else None
        if method is not None and (self.options is None or isinstance(self.options, dict)):
            self.options = make_options(method, self.options or {})

    @property
    def output_dir(self) -> Path:
        return resolve(self.run_dir) / "pretrain" / (self.output_name or self.method)


def loop_fields() -> tuple[dataclasses.Field, ...]:
    """The fields of ``PretrainConfig`` that the loop reads (all but ``options``)."""
    return tuple(f for f in dataclasses.fields(PretrainConfig) if f.name != "options")


def option_fields(method) -> tuple[dataclasses.Field, ...]:
    """The fields of a method's ``Options`` (``method``: a name or a ``PretrainMethod`` class). Option
    names never repeat a loop field's, so ``--set NAME=VALUE`` means one thing."""
    method = get_method(method) if isinstance(method, str) else method
    fields = dataclasses.fields(method.Options)
    clash = {f.name for f in fields} & {f.name for f in loop_fields()} | {"options"} & {f.name for f in fields}
    if clash:
        raise ValueError(f"{method.__name__}.Options: options {sorted(clash)} repeat PretrainConfig fields; "
                         "rename them")
    return fields


def make_options(method, values: dict):
    """The method's ``Options`` with ``values`` (by option name; lists become tuples); an unknown
    name raises ``InputError`` naming it and the valid options."""
    option_fields(method)  # no option repeats a loop field's name
    return config_from_values(method.Options, values, f"{method.name} options")


def valid_names(method) -> str:
    """``<method> options: ...; valid fields: ...`` for error messages (the method's options first:
    the CLI cuts long messages, and the loop's fields are many)."""
    options = sorted(f.name for f in option_fields(method))
    return (f"{method.name} options: {', '.join(options) or 'none'}; "
            f"valid fields: {', '.join(sorted(f.name for f in loop_fields()))}")


def config_values(config: PretrainConfig) -> dict:
    """The loop's settings and the method's options in one flat ``{name: value}`` (their names are
    distinct), e.g. to show a run's settings as one table or compare two runs."""
    values = {f.name: getattr(config, f.name) for f in loop_fields()}
    if dataclasses.is_dataclass(config.options):
        values.update(dataclasses.asdict(config.options))
    return values


def build_config(values: dict, method, what: str) -> PretrainConfig:
    """A ``PretrainConfig`` of ``method`` from loop fields and option names mixed in ``values``
    (``options``, an instance or a dict, gives a base the named options update)."""
    loop_names = {f.name for f in loop_fields()}
    option_names = {f.name for f in option_fields(method)}
    unknown = sorted(set(values) - loop_names - option_names - {"options"})
    if unknown:
        raise InputError(f"unknown {what} {unknown}; {valid_names(method)}")
    base = values.get("options") or {}
    options = dataclasses.asdict(base) if dataclasses.is_dataclass(base) else dict(base)
    options.update({k: v for k, v in values.items() if k in option_names})
    return PretrainConfig(**{k: v for k, v in values.items() if k in loop_names}, options=options)


def config_from_dict(values: dict, source: str = "config") -> PretrainConfig:
    """A ``PretrainConfig`` from its saved form (``config.json``, a checkpoint's ``"config"``).

    Today's layout keeps the method's options under ``"options"``. Runs made before options moved
    into the methods saved every method's options flat beside the loop's fields (``alpha_c``,
    ``gvf_pooling``, ``bsp_boundaries``, ``pal_queue_size``, ...): a field named ``<option>`` or
    ``<method>_<option>`` becomes the run's method's option; other methods' options (unused by that
    run) are dropped; anything else is ignored with a warning naming it."""
    values = dict(values)
    name = values.get("method", PretrainConfig.method)
    method = get_method(name)
    loop_names = {f.name for f in loop_fields()}
    options = dict(values.pop("options", None) or {})
    ignored = []
    for key in sorted(set(values) - loop_names):
        value = values.pop(key)
        option = _old_option_name(key, name, method)
        if option is not None:
            options.setdefault(option, value)
        elif not any(_old_option_name(key, other, m) for other, m in METHODS.items()):
            ignored.append(key)
    if ignored:
        warnings.warn(f"{source}: {ignored} are neither PretrainConfig fields nor {name} options; ignored")
    # An option added after a run was saved: that run ran with what the code did before the option
    # existed (e.g. BSP's source_dir: syntheses from the target's clips), not with today's default.
    for option, value in getattr(method.Options, "BEFORE_OPTION_EXISTED", {}).items():
        options.setdefault(option, value)
    return PretrainConfig(**values, options=options)


def _old_option_name(key: str, method_name: str, method) -> str | None:
    """The option of ``method`` that a flat (pre-options) field ``key`` was, or None."""
    names = {f.name for f in option_fields(method)}
    if key in names:
        return key
    prefix = f"{method_name}_"
    if key.startswith(prefix) and key[len(prefix):] in names:
        return key[len(prefix):]
    return None


def check_config(config: PretrainConfig) -> None:
    """Fail at once on a bad setting, naming the field, the value and what is valid (``InputError``),
    before any file is read: every field and option by its declaration (``tsplab.config.check_config``:
    types, names, ranges, the options class the method takes), then the rules between fields (crop
    within the resized frame, milestones only with a step schedule, a data source given), the device,
    the run folder name, and the method's own rules between its options (its constructor). Files and
    folders are checked by ``check_inputs``."""
    configs.check_config(config)
    if config.crop_size > config.resize_short_side:
        raise InputError(f"crop_size: {config.crop_size} is larger than resize_short_side="
                         f"{config.resize_short_side}; the crop must fit in the resized frame")
    if config.lr_schedule == "plateau" and config.lr_milestones:
        # A plateau schedule has no milestones: a list given anyway would be silently ignored.
        raise InputError(f"lr_milestones: {list(config.lr_milestones)!r} apply to lr_schedule='step'; "
                         "give lr_milestones=[] with lr_schedule='plateau'")
    if config.device:
        try:
            torch.device(config.device)
        except RuntimeError:
            raise InputError(f"device: {config.device!r} is not a torch device; give cpu, cuda, cuda:1, ... "
                             "or leave it empty (CUDA when available)") from None
    name = config.output_name
    if name and (Path(name).name != name or name in (".", "..")):
        raise InputError(f"output_name: {name!r} is not a plain folder name (no '/'), e.g. tsp_no_gvf")
    if not (config.dataset_dir or (config.annotations and config.video_dir)):
        raise InputError("dataset_dir: give dataset_dir (a folder with annotations.json and videos/) or "
                         "both annotations and video_dir")
    if config.weights == SOURCE_WEIGHTS and not config.dataset_dir:
        raise InputError("weights='source': the initial encoder of a synthetic benchmark needs its folder as "
                         "dataset_dir; give dataset_dir, or weights=kinetics400, a checkpoint path or none")
    _make_method(config)


def _make_method(config: PretrainConfig):
    """The run's method object; its constructor checks the options (``ValueError`` -> ``InputError``)."""
    try:
        return get_method(config.method)(config)
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(str(exc)) from exc


def data_paths(config: PretrainConfig) -> dict[str, Path]:
    """The annotation files and the video folder a run reads: ``annotations``, ``valid_annotations``
    and ``video_dir`` (defaults under ``dataset_dir``: ``annotations.json``, ``videos/``)."""
    dataset = resolve(config.dataset_dir) if config.dataset_dir else None
    ann_path = resolve(config.annotations) if config.annotations else dataset / "annotations.json"
    return {"annotations": ann_path,
            "valid_annotations": resolve(config.valid_annotations) if config.valid_annotations else ann_path,
            "video_dir": resolve(config.video_dir) if config.video_dir else dataset / "videos"}


def check_inputs(config: PretrainConfig) -> None:
    """Every file and folder a run reads or writes, checked before any is touched (``InputError``
    naming the field and the path): the dataset folder, annotation files, video folder and the
    method's own inputs (``check_files``: TSP's GVF file, BSP's teachers) exist; the run folder and
    the frame cache can be created and written."""
    if config.dataset_dir and not resolve(config.dataset_dir).is_dir():
        raise InputError(f"dataset_dir: {resolve(config.dataset_dir)}: folder not found; give a folder "
                         "with annotations.json and videos/")
    paths = data_paths(config)
    for name in ("annotations", "valid_annotations"):
        if not paths[name].is_file():
            raise InputError(f"{name}: {paths[name]}: file not found; give an annotation file "
                             "(ActivityNet/DETAD JSON, TSP CSV or custom CSV)")
    if not paths["video_dir"].is_dir():
        raise InputError(f"video_dir: {paths['video_dir']}: folder not found; give the folder of the videos")
    _make_method(config).check_files()
    check_output_folder(config.output_dir, "run_dir")
    if config.frame_cache_dir:
        check_output_folder(config.frame_cache_dir, "frame_cache_dir")
    else:
        check_output_folder(resolve(config.run_dir) / "frame_cache", "run_dir")




def parse_overrides(items: list[str], method: str | None = None) -> dict:
    """``["alpha_c=0", "lr_milestones=[3, 5]", "weights=none", "amp=false"]`` -> values of
    ``PretrainConfig`` fields and of the options of ``method`` (default: a ``method=`` item, else
    ``PretrainConfig.method``), typed by their declarations (``tsplab.config.parse_overrides``).
    A malformed item, an unknown name or a value of the wrong type raises ``InputError`` naming the
    field and what is valid."""
    named = any(item.partition("=")[0].strip().replace("-", "_") == "method" for item in items)
    given = [] if named or method is None else [f"method={method}"]
    values = configs.parse_overrides([*given, *items], PretrainConfig)
    if given:
        values.pop("method")
    return values
