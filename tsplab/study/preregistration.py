"""Pre-registration: what a study will test, written before any of its cells runs.

Why: a claim's direction, metric, margin, family, seeds and level chosen after seeing results is a
different (and weaker) test than the same claim fixed before. ``preregistration.json`` holds every
claim of the study (its direction, metric, margin with its reason, family, paper value), the seeds,
the family-wise alpha, the test, the study's condition definitions and its data setting. Its sha256
(of the file's bytes, so ``sha256sum preregistration.json`` checks it) goes into every table. A
folder whose pre-registration differs from the study now asked for is refused once any of its cells
has finished: changing a claim after results exist needs a new study folder.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from tsplab.errors import InputError
from tsplab.runs import write_json
from tsplab.study.statistics import ALPHA

PREREGISTRATION_FILE = "preregistration.json"
TEST = ("one-sided paired t-test per claim over seeds (superiority: H0 mean <= 0; '>=' claims: "
        "non-inferiority, H0 mean <= -margin), Holm-Bonferroni within each family at family-wise alpha, "
        "verdicts from Holm-compatible t intervals")


def preregistration(study: str, claims, conditions, seeds: list[int], *, budget: str,
                    vary_data: bool, benchmark_seed: int, alpha: float = ALPHA) -> dict:
    """The pre-registration of a study as a plain dict (see the module docstring)."""
    families = {}
    for claim in claims:
        families[claim.family] = families.get(claim.family, 0) + 1
    return json.loads(json.dumps(dict(
        study=study, alpha=alpha, test=TEST, seeds=list(seeds), budget=budget,
        vary_data=vary_data, benchmark_seed=None if vary_data else benchmark_seed,
        families=families, claims=[dataclasses.asdict(c) for c in claims],
        conditions=[c.record() for c in conditions])))


SWEEP_TEST = ("per prediction over seeds (tsplab.study.dial_statistics): grows/shrinks: one-sided t-test of the "
              "per-seed least-squares slope over the levels; flat: TOST of that slope within the margin; about 0: "
              "TOST of the difference at the level within the margin; at most 0: one-sided t-test of H0 mean >= "
              "margin at the level; Holm-Bonferroni within the dial's family at family-wise alpha")


def sweep_preregistration(dial: str, levels, fixed: dict, predictions: list[dict], conditions, seeds: list[int],
                          *, budget: str, vary_data: bool, benchmark_seed: int, alpha: float = ALPHA) -> dict:
    """The pre-registration of a dial sweep (``tsplab.study.sweep``): the dial, its levels and fixed
    companions, the predictions (``tsplab.dial_predictions.prediction_record``, one family: the
    dial), the conditions, seeds, data setting, alpha and the test."""
    return json.loads(json.dumps(dict(
        study="dials", dial=dial, levels=list(levels), fixed=dict(fixed), alpha=alpha, test=SWEEP_TEST,
        seeds=list(seeds), budget=budget, vary_data=vary_data, benchmark_seed=None if vary_data else benchmark_seed,
        families={dial: len(predictions)} if predictions else {}, predictions=list(predictions),
        conditions=[c.record() for c in conditions])))


def register(folder, registration: dict, results_exist: bool) -> str:
    """Write ``registration`` to ``folder/preregistration.json`` and return its sha256. An existing
    pre-registration that differs is replaced only while ``results_exist`` is false; otherwise an
    ``InputError`` names what differs."""
    path = Path(folder) / PREREGISTRATION_FILE
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded == registration:
            return preregistration_hash(path)
        if results_exist:
            changed = sorted(k for k in {*recorded, *registration} if recorded.get(k) != registration.get(k))
            raise InputError(f"{path}: this study folder pre-registered other {', '.join(changed)} and has "
                             "results; changing them after results exist needs a new study folder "
                             "(give another --out)")
    write_json(path, registration)
    return preregistration_hash(path)


def preregistration_hash(path) -> str:
    """sha256 (hex) of the pre-registration file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_preregistration(folder) -> tuple[dict, str]:
    """(the pre-registration, its sha256) of a study's tables folder; ``InputError`` without one."""
    path = Path(folder) / PREREGISTRATION_FILE
    if not path.is_file():
        raise InputError(f"{path}: no pre-registration; a study's tables are made only by tsplab study "
                         "(or run_study), which writes it before any cell runs")
    return json.loads(path.read_text()), preregistration_hash(path)
