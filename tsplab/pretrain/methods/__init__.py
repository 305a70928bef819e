"""Pretraining methods: each is sampling + heads + loss (+ optional hooks) behind the interface in
``tsplab.pretrain.methods.base``; ``tsplab.pretrain.loop`` runs any of them with the same loop.

``METHODS`` maps a method's name to its constructor (``constructor(config) -> PretrainMethod``);
``get_method(name)`` looks one up with an error listing the valid names. A new method is one file
(its ``Options`` dataclass, datasets, model and loss; see ``tsplab.pretrain.methods.base``) and one line here:
nothing in ``tsplab.pretrain.loop`` or the CLI names a method or its options.
"""
from __future__ import annotations

from tsplab.errors import InputError
from tsplab.pretrain.methods.base import NoOptions, PretrainData, PretrainMethod, StepOutput, TrainContext
from tsplab.pretrain.methods.bsp import BSP
from tsplab.pretrain.methods.pal import PAL
from tsplab.pretrain.methods.tac import TAC
from tsplab.pretrain.methods.tsp import TSP

METHODS: dict = {
    "tac": TAC,
    "tsp": TSP,
    "bsp": BSP,
    "pal": PAL,
}


def get_method(name: str):
    """The constructor of method ``name``; an unknown name raises ``InputError`` listing the valid ones."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown pretraining method {name!r}; valid methods: {', '.join(METHODS)}") from None


__all__ = ["METHODS", "get_method", "NoOptions", "PretrainMethod", "PretrainData", "StepOutput", "TrainContext",
           "TAC", "TSP", "BSP", "PAL"]
