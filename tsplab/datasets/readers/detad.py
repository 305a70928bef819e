"""DETAD's JSON (THUMOS14 ``*_extra_characteristics.json``): ActivityNet's layout without
``duration`` and with per-instance ``length`` and ``coverage``, from which the duration comes back."""
from __future__ import annotations

import math

import numpy as np

from tsplab.datasets.model import Annotations
from tsplab.datasets.readers.json_database import JsonLayout, json_float, read_database
from tsplab.datasets.registry import register_reader
from tsplab.datasets.source import AnnotationSource


def _duration(where: str, entry: dict, durations_given: bool) -> float:
    """The video's duration from its instances' ``length / coverage``."""
    return _detad_duration(where, entry.get("annotations") or [])


def _detad_duration(where: str, annotations: list) -> float:
    # DETAD stores no duration; coverage = length / duration (DETAD's definition), so each instance
    # gives the duration back. The median guards against one rounded value.
    estimates = []
    for i, a in enumerate(annotations):
        length = json_float(f"{where}: annotations[{i}]", "length", a.get("length"), "the length in seconds")
        coverage = json_float(f"{where}: annotations[{i}]", "coverage", a.get("coverage"),
                               "the share of the video covered")
        if coverage:
            estimates.append(length / coverage)
    return float(np.median(estimates)) if estimates else math.nan


DETAD = JsonLayout(_duration)


@register_reader("detad")
def read_detad(source: AnnotationSource) -> Annotations:
    """A DETAD JSON file."""
    return read_database(source, DETAD)
