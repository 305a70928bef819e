"""Which pretrained encoders a later step uses (notebook 04): each method's run, or random weights."""
from __future__ import annotations

from pathlib import Path

from tsplab.checkpoints import pretrained_runs, resolve_checkpoint
from tsplab.errors import InputError, check_choice
from tsplab.pretrain.methods import METHODS
from tsplab.runs import resolve

#: The ``method`` of notebook 04 that asks for a randomly initialised encoder (a pipeline check;
#: its features mean nothing).
RANDOM_ENCODER = "random"


def choose_encoders(run_dir, methods, checkpoint="") -> dict[str, Path | None]:
    """Which encoders notebook 04 extracts with: ``{feature folder name: checkpoint or run folder,
    or None for random weights}``.

    ``checkpoint`` (a file or run folder), when given, is the only one, named after the folder or
    the file's stem. Otherwise each of ``methods`` (a name or a list: methods of
    ``tsplab.pretrain.methods.METHODS``, or ``"random"``) takes its run ``{run_dir}/pretrain/<method>``.
    Random weights are never a silent fallback: an unknown method, or a method without a run
    holding a checkpoint, raises ``InputError`` naming the valid methods or the runs found."""
    if checkpoint:
        path = resolve(checkpoint)
        resolve_checkpoint(path)  # FileNotFoundError naming it when there is none
        return {path.name if path.is_dir() else path.stem: path}
    check_choice("method", methods, [*METHODS, RANDOM_ENCODER], several=True)
    names = [methods] if isinstance(methods, str) else list(methods)
    wanted = [m for m in names if m != RANDOM_ENCODER]
    found = pretrained_runs(run_dir, wanted)
    missing = [m for m in wanted if m not in found]
    if missing:
        root = resolve(run_dir) / "pretrain"
        runs = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        runs = list(pretrained_runs(run_dir, runs))
        raise InputError(f"method: no pretraining run with a checkpoint for {', '.join(missing)} under "
                         f"{root} (runs found: {', '.join(runs) or 'none'}); pretrain it first (notebook "
                         f"03, tsplab pretrain), give checkpoint=, or method='{RANDOM_ENCODER}' for "
                         "a randomly initialised encoder")
    return {m: (found[m] if m != RANDOM_ENCODER else None) for m in names}
