"""Reading checkpoint files, for every caller (initial weights, resume, feature extraction, BSP
teachers, the localizer).

``resolve_checkpoint`` finds the file of a pretraining run folder, ``load_checkpoint_file`` reads it
with torch's safe loader (no code stored in a data file runs unless the caller says it trusts the
file, ``trust_pickle=True``), and ``pretrained_runs`` lists the run folders that hold one. What a
checkpoint says about its backbone is ``tsplab.backbones.checkpoint_settings``; loading its weights
into a backbone is ``tsplab.backbones.load_backbone_weights``. This module needs torch but not
torchvision.
"""
from __future__ import annotations

import argparse
import pickle
import re
import warnings
from pathlib import Path

import torch

from tsplab.errors import InputError
from tsplab.runs import resolve


#: The only non-tensor types the safe loader is told to accept: TSP's released checkpoints pickle
#: their training arguments, ``{"model", "optimizer", "lr_scheduler", "epoch", "args": argparse.Namespace}``
#: (TSP ``train/train.py``); everything else in them (state dicts, numbers, strings, lists) is already
#: allowed by ``torch.load(weights_only=True)``. Ours and torchvision's files hold plain types only.
SAFE_CHECKPOINT_GLOBALS = (argparse.Namespace,)


def load_checkpoint_file(path, *, trust_pickle: bool = False):
    """``torch.load`` of a checkpoint onto the CPU with torch's safe loader (``weights_only=True``:
    tensors, containers, numbers, strings, plus ``SAFE_CHECKPOINT_GLOBALS``), so that no code stored
    in a data file runs. Every checkpoint tsplab reads goes through here (initial weights, resume,
    feature extraction, BSP teachers, the localizer).

    A file that pickles any other Python object is refused with an ``InputError`` naming the file
    and the refused global. ``trust_pickle=True`` (CLI: ``--trust-checkpoint-code``) then unpickles
    it in full, which runs whatever code the file holds: only for files from a source you trust.
    Missing file: ``FileNotFoundError``; unreadable: ``InputError``; both name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file not found (a weights source is 'kinetics400', "
                                "a checkpoint path or a state dict)")
    try:
        with torch.serialization.safe_globals(list(SAFE_CHECKPOINT_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _refused_global(exc)
        if refused is None:
            raise _unreadable(path, exc) from exc
        if not trust_pickle:
            raise InputError(
                f"{path}: the safe checkpoint loader refused it: it pickles the Python object "
                f"'{refused}', and unpickling it could run code stored in the file. If you trust the "
                "file's source, load it with trust_pickle=True (command line: --trust-checkpoint-code)"
            ) from None
        warnings.warn(f"{path}: unpickling in full (trust_pickle=True), which runs any code the file "
                      f"holds; it pickles '{refused}'", stacklevel=2)
    except Exception as exc:
        raise _unreadable(path, exc) from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise _unreadable(path, exc) from exc


def _refused_global(exc: Exception) -> str | None:
    """The ``module.name`` of the global torch's safe unpickler refused (its message says
    ``... GLOBAL posix.mkdir ...``), or None when it stopped for another reason (not a pickle)."""
    match = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return match.group(1) if match else None


def _unreadable(path: Path, exc: Exception) -> InputError:
    # torch's messages run over many lines: keep the line that says what failed.
    lines = [s.strip() for s in str(exc).splitlines() if s.strip()]
    detail = next((s for s in lines if "error" in s.lower() and "weights only" not in s.lower()),
                  lines[-1] if lines else "")
    detail = detail.split("WeightsUnpickler error:")[-1].strip() or type(exc).__name__
    return InputError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {detail[:200]}); "
                      "give a file written by torch.save")


def resolve_checkpoint(path) -> Path:
    """A checkpoint file from a file path or a pretraining run folder (``runs/<name>/pretrain/<method>``:
    its ``best.pt``, TSP's model selection; else the latest ``checkpoint.pt``; else its only
    ``*.pt``/``*.pth``)."""
    path = resolve(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in ("best.pt", "checkpoint.pt"):
            if (path / name).is_file():
                return path / name
        found = sorted([*path.glob("*.pt"), *path.glob("*.pth")])
        if len(found) == 1:
            return found[0]
        raise FileNotFoundError(f"{path}: no best.pt or checkpoint.pt, and {len(found)} other checkpoint "
                                "files; pass the checkpoint file itself")
    raise FileNotFoundError(f"{path}: checkpoint file or run folder not found")


def pretrained_runs(run_dir, methods=("tac", "tsp")) -> dict[str, Path]:
    """``{method: run folder}`` for each of ``methods`` whose pretraining run folder
    ``{run_dir}/pretrain/<method>`` holds a checkpoint (``resolve_checkpoint`` finds one); the
    others are left out."""
    found = {}
    for method in methods:
        folder = resolve(run_dir) / "pretrain" / method
        try:
            resolve_checkpoint(folder)
        except FileNotFoundError:
            continue
        found[method] = folder
    return found
