"""Pre-registered predictions of the dial sweeps: how each paper's claimed difference should move
when the benchmark's premise for it is switched on (``tsplab study --study dials``).

Why: a claim tested on one benchmark says whether a method wins there; a dose-response says whether
it wins *because of* the premise the paper names. Each prediction is a paired difference (``better``
minus ``worse`` on ``metric``, per seed, as a ``tsplab.conditions.Claim``) and the shape it should take
over the levels of one dial (``SHAPES``):

* ``grows`` / ``shrinks``: the per-seed least-squares slope of the difference over the levels is
  above / below 0 (one-sided t-test over seeds);
* ``about 0``: the difference at level ``at_level`` lies within ``± margin`` (equivalence, TOST);
* ``flat`` (a negative control): the slope lies within ``± margin`` per unit of level (TOST);
* ``at most 0``: the difference at level ``at_level`` is below ``margin`` (one-sided, non-superiority).

Each dial's predictions form one family (Holm within it, ``tsplab.study.dial_statistics``). Margins
and levels are fixed here, with their reasons, before any sweep runs; a level is never chosen by
results, and a prediction that fails is reported as failed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tsplab.benchmark.dials import DIAL_RANGES, BenchmarkDials
from tsplab.conditions import ALL_CONDITIONS, Claim
from tsplab.errors import InputError

SHAPES = ("grows", "shrinks", "about 0", "flat", "at most 0")
_AT_LEVEL = ("about 0", "at most 0")  # shapes judged at one level
_MARGINED = ("about 0", "flat", "at most 0")

# Margins: half of the paper's own main effect in the same metric (the rule of the claims'
# non-inferiority margins in tsplab.conditions), fixed from the papers before any sweep.
_TSP_MARGIN = (1.875 / 2, "half of TSP's gain over TAC on target in Table 9a (+1.875 average mAP)")
_BSP_MARGIN = (0.37 / 2, "half of BSP's best gain over the vanilla encoder in Table 5 (+0.37, two-stream)")
_FLAT_REASON = (" per unit of level: over the dial's whole range the difference moves less than half "
                "the paper's effect")


@dataclass(frozen=True)
class DialPrediction:
    """One pre-registered prediction: the paired difference ``better`` minus ``worse`` on ``metric``
    (percent points) follows ``shape`` (``SHAPES``) over the levels of ``dial``. ``at_level``: the
    level an ``about 0`` or ``at most 0`` prediction is judged at; ``margin`` (> 0) and
    ``margin_reason``: the equivalence or non-superiority margin of ``about 0``, ``flat`` (per unit
    of level) and ``at most 0``."""

    text: str
    dial: str
    better: str
    worse: str
    shape: str
    metric: str = "average mAP"
    at_level: float | None = None
    margin: float | None = None
    margin_reason: str = ""
    source: str = ""

    @property
    def family(self) -> str:
        return self.dial

    def claim(self) -> Claim:
        """The paired difference as a claim (``tsplab.study.statistics.claim_differences`` reads it)."""
        return Claim(self.text, self.better, self.worse, self.metric, family=self.dial)


@dataclass(frozen=True)
class DialSweep:
    """What a sweep of ``dial`` runs by default: its ``levels`` (at least 3, fixed before it runs),
    the ``fixed`` companion dials every level carries, and its conditions (the predictions' pairs
    and the conditions those read); ``why``: the reason for the companions."""

    dial: str
    levels: tuple
    conditions: tuple
    fixed: dict = field(default_factory=dict)
    why: str = ""


def _p(text, dial, better, worse, shape, **kw) -> DialPrediction:
    return DialPrediction(text, dial, better, worse, shape, **kw)


DIAL_PREDICTIONS = [
    _p("TSP - TSP w/o GVF grows with context distractors", "context_distractors", "tsp", "tsp_no_gvf", "grows",
       source="TSP §3.2: the GVF is the video's context, needed where a clip alone cannot tell foreground"),
    _p("max - avg GVF grows as the foreground share shrinks", "foreground_share", "tsp", "tsp_avg_gvf", "shrinks",
       source="TSP Table 6: max pooling keeps the actions' evidence where they are a small part of a video"),
    _p("TAC on target - TAC on source grows with the source shift", "source_shift", "tac_target", "tac_source",
       "grows", source="TSP Table 9: pretraining on the target pays where the source looks different"),
    _p("TAC on target - TAC on source is about 0 without a shift", "source_shift", "tac_target", "tac_source",
       "about 0", at_level=0.0, margin=_TSP_MARGIN[0], margin_reason=_TSP_MARGIN[1],
       source="the same visual world: the source encoder lacks nothing the target teaches by class labels"),
    _p("TSP - TSP w/o GVF does not move with the source shift (negative control)", "source_shift", "tsp",
       "tsp_no_gvf", "flat", margin=_TSP_MARGIN[0], margin_reason=_TSP_MARGIN[1] + _FLAT_REASON,
       source="the GVF's premise (context) is not the shift's"),
    _p("TAC on source ⊕ BSP - ⊕ random grows with cuts at boundaries", "cuts_at_boundaries", "tac_source_bsp",
       "tac_source_random", "grows", source="BSP §3.2: its synthetic boundaries are scene cuts"),
    _p("TAC on source ⊕ BSP - ⊕ random is about 0 without cuts", "cuts_at_boundaries", "tac_source_bsp",
       "tac_source_random", "about 0", at_level=0.0, margin=_BSP_MARGIN[0], margin_reason=_BSP_MARGIN[1],
       source="without cuts at boundaries BSP's boundary cue is absent from the target"),
    _p("TAC on source ⊕ BSP - ⊕ random is at most 0 with cuts elsewhere", "cuts_elsewhere", "tac_source_bsp",
       "tac_source_random", "at most 0", at_level=2.0, margin=_BSP_MARGIN[0], margin_reason=_BSP_MARGIN[1],
       source="cuts away from boundaries make BSP's cue mislead: level 2 (two cuts per video) fixed in advance"),
    _p("ASL - ActionFormer-style baseline grows with density", "dense", "asl_full", "asl_baseline", "grows",
       source="ASL §1: action sensitivity matters where actions overlap (MultiThumos)"),
    _p("TSP - TAC on target shrinks as the onset cue rises", "onset_cue", "tsp", "tac_target", "shrinks",
       source="TSP's temporal region head learns boundaries an appearance cue at onset gives away for free"),
]

_CUTS_WHY = "multi_action 0.5: cuts follow action boundaries of several classes, as BSP's syntheses"
DIAL_SWEEPS = {
    "context_distractors": DialSweep("context_distractors", (0.0, 0.5, 1.0), ("tsp_no_gvf", "tsp")),
    "foreground_share": DialSweep("foreground_share", (0.2, 0.4, 0.6), ("tsp", "tsp_avg_gvf")),
    "source_shift": DialSweep("source_shift", (0.0, 0.5, 1.0), ("tac_source", "tac_target", "tsp_no_gvf", "tsp"),
                              fixed=dict(source_shared_motions=0.5),
                              why="source_shared_motions 0.5: the issue's setting, so TAC on source knows half "
                                  "the target's motions"),
    "cuts_at_boundaries": DialSweep("cuts_at_boundaries", (0.0, 0.5, 1.0),
                                    ("random", "tac_source", "bsp", "tac_source_bsp", "tac_source_random"),
                                    fixed=dict(multi_action=0.5), why=_CUTS_WHY),
    "cuts_elsewhere": DialSweep("cuts_elsewhere", (0.0, 1.0, 2.0),
                                ("random", "tac_source", "bsp", "tac_source_bsp", "tac_source_random"),
                                fixed=dict(multi_action=0.5), why=_CUTS_WHY),
    "dense": DialSweep("dense", (0.0, 0.5, 1.0), ("tsp", "asl_full", "asl_baseline")),
    "onset_cue": DialSweep("onset_cue", (0.0, 0.5, 1.0), ("tac_target", "tsp")),
}


def dial_predictions(dial: str) -> list[DialPrediction]:
    """The pre-registered predictions of a sweep of ``dial`` (its family); [] for a dial without any."""
    return [p for p in DIAL_PREDICTIONS if p.dial == dial]


def check_predictions(predictions) -> None:
    """``InputError`` for a prediction that cannot be judged: an unknown dial, shape or condition, a
    margin missing or given where the shape takes none, a level missing or out of the dial's range."""
    names = {c.name for c in ALL_CONDITIONS}
    for p in predictions:
        where = f"prediction {p.text!r}"
        if p.dial not in DIAL_RANGES:
            raise InputError(f"{where}: unknown dial {p.dial!r}; valid: {', '.join(DIAL_RANGES)}")
        if p.shape not in SHAPES:
            raise InputError(f"{where}: shape {p.shape!r}; valid: {', '.join(SHAPES)}")
        unknown = [c for c in (p.better, p.worse) if c not in names]
        if unknown:
            raise InputError(f"{where}: unknown condition {unknown[0]!r}")
        if (p.shape in _MARGINED) != (p.margin is not None and p.margin > 0 and bool(p.margin_reason)):
            raise InputError(f"{where}: shape {p.shape!r} " + ("needs a margin > 0 with its reason"
                             if p.shape in _MARGINED else "takes no margin"))
        if (p.shape in _AT_LEVEL) != (p.at_level is not None):
            raise InputError(f"{where}: shape {p.shape!r} " + ("needs at_level" if p.shape in _AT_LEVEL
                                                               else "takes no at_level"))
        if p.at_level is not None:
            BenchmarkDials(**{p.dial: p.at_level})  # InputError naming the dial's range


def sweep_levels(dial: str, levels, fixed: dict | None = None) -> list[dict]:
    """The benchmark options of each level of a sweep: ``[{dial: level, **fixed}]``, every one checked
    against ``BenchmarkDials`` (``InputError`` naming the dial and its range), levels distinct and
    at least 2 (a slope needs two), the swept dial not among ``fixed``."""
    if dial not in DIAL_RANGES:
        raise InputError(f"--benchmark-option {dial}: unknown dial; valid: {', '.join(DIAL_RANGES)}")
    fixed = dict(fixed or {})
    if dial in fixed:
        raise InputError(f"--benchmark-fixed {dial}: the swept dial cannot be fixed too")
    levels = [float(v) for v in levels]
    if len(levels) < 2 or len(set(levels)) != len(levels):
        raise InputError(f"--benchmark-option {dial}={','.join(f'{v:g}' for v in levels)}: give at least two "
                         "distinct levels")
    options = [{dial: level, **fixed} for level in levels]
    for o in options:
        BenchmarkDials(**o)
    return options


def level_folder(dial: str, level: float) -> str:
    """The folder of one level's cells under the study folder: ``<dial>=<level>``."""
    return f"{dial}={level:g}"


def prediction_record(prediction: DialPrediction) -> dict:
    return {**dataclasses.asdict(prediction), "family": prediction.family}
