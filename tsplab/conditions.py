"""What a study compares, as plain data: its conditions (TSP Study 1, the peers as their papers use
them) and the papers' claims, each a paired difference between two conditions (``tsplab.study`` runs
and tests them). Adding a condition or a claim is one entry.

Every claim belongs to a family: one per paper (its own comparisons), and ``"tsplab's own"`` for the
comparisons no paper makes (controls, the project's questions). The study controls the family-wise
error rate within each family (Holm), so a paper's claims are not diluted by the project's own
questions, nor the other way round. A ``">="`` claim is a non-inferiority claim with a margin fixed
here, with its reason, before any result it judges exists.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

from tsplab.errors import InputError, check_choice
from tsplab.datasets.presets import get_preset

DATASET = get_preset("synthetic")  # whose metrics, DETAD buckets and evaluated subset apply
RANDOM = "random"  # notebook 04's randomly initialised encoder (tsplab.pretrain.encoders.RANDOM_ENCODER)
SOURCE = "source"  # weights: the benchmark's source encoder (TAC on the source dataset)
TARGET = "target"  # pretrain_data: the benchmark's own (untrimmed) videos
PRETRAIN_DATA = (TARGET, SOURCE)  # SOURCE: <benchmark>/source, the trimmed source set
OWN = "tsplab's own"  # the family of the claims no paper makes

# Notebook parameters the study sets for every cell; a condition may not set them.
_STUDY_OWNED = {"method", "dataset_dir", "benchmark_size", "benchmark_seed", "run_dir", "seed",
                "weights", "output_name", "resume", "feature_dirs", "ground_truth", "dataset_preset",
                "checkpoint"}


class _Delta:
    """Notebook parameters a condition changes at one stage: the fields it sets (None: the study's
    or the notebook's value). ``parameters()`` is the one place its notebook parameters come from."""

    def parameters(self) -> dict:
        """``{parameter: value}`` of the fields set, in field order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class PretrainDelta(_Delta):
    """Notebook 03's training settings a condition changes; ``method_options`` holds options of the
    method (TSP's ``gvf_pooling``, ``alpha_c``...), ``config_overrides`` fields of the method's
    PretrainConfig (e.g. BSP's ``integration``, PAL's ``pasting``)."""

    pretrain_recipe: str | None = None
    backbone: str | None = None
    batch_size: int | None = None
    epochs: int | None = None
    clips_per_segment: int | None = None
    backbone_lr: float | None = None
    fc_lr: float | None = None
    method_options: dict | None = None
    max_steps_per_epoch: int | None = None
    workers: int | None = None
    threads: int | None = None
    config_overrides: dict | None = None


@dataclass(frozen=True)
class LocalizerDelta(_Delta):
    """Notebook 05's localizer settings a condition changes (ASL's components, its weighting...)."""

    ase_class: bool | None = None
    ase_instance: bool | None = None
    ascl: bool | None = None
    ase_weighting: str | None = None
    epochs: int | None = None
    max_predictions: int | None = None
    timeline_videos: int | None = None


def _delta(condition: str, stage: str, cls, given):
    """``given`` (a dict of notebook parameters, or already a ``cls``) as a ``cls``; ``InputError``
    naming the condition and the field when a name is the study's or no field of the stage."""
    if isinstance(given, cls):
        return given
    names = [f.name for f in dataclasses.fields(cls)]
    for key in given:
        if key in _STUDY_OWNED:
            raise InputError(f"condition {condition!r}: sets {key}, which the study sets for every cell; "
                             "remove it from the condition")
        if key not in names:
            raise InputError(f"condition {condition!r}: {stage} sets {key!r}, not a parameter of its notebook; "
                             f"valid: {', '.join(names)}")
    return cls(**given)


@dataclass(frozen=True)
class Condition:
    """One column of the study.

    ``method``: a pretraining method (tac | tsp | bsp | pal) or ``"random"`` (no training, random
    weights). ``trains``: notebook 03 pretrains ``method`` on the target from ``weights``; otherwise
    the features are those of ``weights`` itself (``"source"``: the source encoder; ``None``: random).
    ``pretrain``: more notebook-03 parameters (``method_options``, ``config_overrides``...);
    ``localizer``: notebook-05 parameters (``ase_class``, ``ascl``...). ``features_from``: names of
    other conditions whose features (same seed) this one localizes on, concatenated when several
    (BSP §3.4 two-stream); such a cell neither trains nor extracts and runs after them.
    ``teachers_from``: names of conditions whose encoders (same seed) are this one's teachers (BSP
    §3.4 distillation, option ``teachers``): a trained condition's run, or the weights of one that
    does not train (the source encoder); such a cell runs after them. ``pretrain_data``: which data a
    trained condition pretrains on: ``"target"`` (the benchmark's untrimmed videos) or ``"source"``
    (``<benchmark>/source``, the trimmed source set, Kinetics' role: PAL §4.1.1 pretrains there)."""

    name: str  # folder name and table key
    label: str  # as in TSP's tables
    method: str
    trains: bool
    weights: str | None = SOURCE
    pretrain: PretrainDelta = field(default_factory=PretrainDelta)  # a dict of its fields is accepted
    localizer: LocalizerDelta = field(default_factory=LocalizerDelta)  # likewise
    features_from: tuple[str, ...] = ()
    teachers_from: tuple[str, ...] = ()
    pretrain_data: str = TARGET

    def __post_init__(self):
        """The deltas typed where the condition is defined: a name that is no field of its stage (a
        typo) or one the study sets fails here, at import, not when its cell's notebook starts."""
        object.__setattr__(self, "pretrain", _delta(self.name, "pretrain", PretrainDelta, self.pretrain))
        object.__setattr__(self, "localizer", _delta(self.name, "localizer", LocalizerDelta, self.localizer))

    def record(self) -> dict:
        """The condition as plain data (a cell's identity, the pre-registration): its fields, each
        delta as its notebook parameters."""
        record = {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {**record, "pretrain": self.pretrain.parameters(), "localizer": self.localizer.parameters()}

    @property
    def needs(self) -> tuple[str, ...]:
        """The conditions whose cells (same seed) must finish before this one starts."""
        return self.features_from + self.teachers_from


#: TSP Study 1 (Table 9, and Table 8's max vs average GVF), plus the randomly initialised encoder as
#: the floor. Every trained condition starts from the source encoder, as every encoder of the paper
#: starts from Kinetics weights.
STUDY1 = [
    Condition("random", "random init", RANDOM, trains=False, weights=None),
    Condition("tac_source", "TAC on source", "tac", trains=False),
    Condition("tac_target", "TAC on target", "tac", trains=True),
    Condition("tsp_no_gvf", "TSP w/o GVF", "tsp", trains=True,
              pretrain=dict(method_options=dict(gvf_pooling="none"))),
    Condition("tsp", "TSP (max GVF)", "tsp", trains=True,
              pretrain=dict(method_options=dict(gvf_pooling="max"))),
    Condition("tsp_avg_gvf", "TSP (avg GVF)", "tsp", trains=True,
              pretrain=dict(method_options=dict(gvf_pooling="avg"))),
]


_BY_NAME = {c.name: c for c in STUDY1}
_ASL_OFF = dict(ase_class=False, ase_instance=False, ascl=False)
# PAL's own budget (PAL_SYNTHETIC_OVERRIDES), not the study's: batch_size counts synthesized pairs
# (16, not clips), and 6 epochs of its 30 steps, where its retrieval was still rising at 4.
_PAL_BUDGET = dict(batch_size=16, epochs=6)

#: The peers as their papers compare them, beside the Study-1 conditions they are compared with (the
#: same definitions, so a peers study run into a Study-1 folder reuses those cells).
#: BSP (§3.4, §4.2, Table 5): BSP is trained from the source encoder with its syntheses drawn from the
#: source set and combined with the *vanilla encoder pretrained on the source set* (Kinetics' role;
#: BSP never fine-tunes on the target): two-stream (TAC on source ⊕ BSP features, its best), two-head,
#: and distillation from the TAC-on-source and BSP encoders. TAC on source ⊕ the random encoder's
#: features is the control for the two-stream gain (a wider input alone).
#: PAL (§4.1.1, Table 1): pretrained from random weights on the unlabelled trimmed source set, compared
#: with TAC on the source set (+0.9 average mAP, +1.2 AUC) and with MoCo-v2 (+3.1, +2.8), here the
#: instance-discrimination control: the same encoder, data, budget and negatives without pasting
#: (PAL's option ``pasting=False``). PAL on the target's untrimmed videos, from random or source
#: weights, stays as tsplab's own question.
#: ASL (Tables 4-6): the localizer's components switched off one at a time on the same TSP features.
PEERS = [
    _BY_NAME["random"], _BY_NAME["tac_source"], _BY_NAME["tsp"],
    Condition("bsp", "BSP", "bsp", trains=True),
    Condition("tac_source_bsp", "TAC on source ⊕ BSP (two-stream)", "bsp", trains=False, weights=None,
              features_from=("tac_source", "bsp")),
    Condition("tac_source_random", "TAC on source ⊕ random (control)", "tac", trains=False, weights=None,
              features_from=("tac_source", "random")),
    Condition("bsp_two_head", "BSP two-head", "bsp", trains=True, pretrain=dict(
        config_overrides=dict(integration="two-head"))),
    Condition("bsp_distill", "BSP distillation", "bsp", trains=True, pretrain=dict(
        config_overrides=dict(integration="distill")), teachers_from=("tac_source", "bsp")),
    Condition("pal", "PAL on source (from random init)", "pal", trains=True, weights=None,
              pretrain=_PAL_BUDGET, pretrain_data=SOURCE),
    Condition("pal_no_pasting", "instance discrimination (PAL w/o pasting)", "pal", trains=True,
              weights=None, pretrain={**_PAL_BUDGET, "config_overrides": dict(pasting=False)},
              pretrain_data=SOURCE),
    Condition("pal_random", "PAL on target from random init", "pal", trains=True, weights=None,
              pretrain=_PAL_BUDGET),
    Condition("pal_source", "PAL on target from source", "pal", trains=True, pretrain=_PAL_BUDGET),
    Condition("asl_full", "ASL (eq. 8)", "tsp", trains=False, weights=None, features_from=("tsp",)),
    Condition("asl_baseline", "ActionFormer-style baseline", "tsp", trains=False, weights=None,
              features_from=("tsp",), localizer=_ASL_OFF),
    Condition("asl_no_ase_class", "ASL w/o ASE class level", "tsp", trains=False, weights=None,
              features_from=("tsp",), localizer=dict(ase_class=False)),
    Condition("asl_no_ase_instance", "ASL w/o ASE instance level", "tsp", trains=False, weights=None,
              features_from=("tsp",), localizer=dict(ase_instance=False)),
    Condition("asl_no_ascl", "ASL w/o ASCL", "tsp", trains=False, weights=None,
              features_from=("tsp",), localizer=dict(ascl=False)),
    Condition("asl_stabilised", "ASL, stabilised weights", "tsp", trains=False, weights=None,
              features_from=("tsp",), localizer=dict(ase_weighting="stabilised")),
]


@dataclass(frozen=True)
class Claim:
    """A claim as a paired difference per seed, ``better`` minus ``worse``, tested one-sided.

    The difference is the gain on ``metric``; with ``pooled`` (more metrics) it is the mean gain over
    ``metric`` and ``pooled``; with ``versus`` that gain minus the mean gain over ``versus`` (TSP
    Table 7: mean gain on XS, S minus mean gain on L, XL). Empty length buckets (NaN) are left out of
    a mean.

    ``relation``: ``">"`` (superiority: the mean difference is above 0) or ``">="`` (non-inferiority:
    the mean difference is above ``-margin``). ``margin`` (> 0, ``">="`` only) and ``margin_reason``
    are fixed in the claim's definition, never from the results it judges. ``paper``: the same
    difference in the paper (None: the paper gives none for this setting). ``family``: the paper
    whose claims it is, or ``OWN``; the study controls the family-wise error within each family."""

    text: str
    better: str
    worse: str
    metric: str
    relation: str = ">"
    pooled: tuple[str, ...] = ()
    versus: tuple[str, ...] = ()
    paper: float | None = None
    source: str = ""
    family: str = ""
    margin: float | None = None
    margin_reason: str = ""

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric the difference reads."""
        return (self.metric, *self.pooled, *self.versus)

    @property
    def null(self) -> float:
        """The boundary of the null hypothesis: 0 for ``">"``, ``-margin`` for ``">="``."""
        return -self.margin if self.relation == ">=" else 0.0


_BUCKETS = [f"mAP_N {b}" for b in DATASET.detad_buckets["length"][1]]

# Non-inferiority margins: half of the paper's own main effect in the same metric (the usual rule of
# keeping at least half of the comparator's effect), fixed from the papers before any rerun.
_TSP_MAP_MARGIN = ("half of TSP's gain over TAC on target in Table 9a (+1.875 average mAP)", 1.875 / 2)
_TSP_AUC_MARGIN = ("half of TSP's gain over TAC on target in Table 9b (+0.947 AUC)", 0.947 / 2)
_BSP_MARGIN = ("half of BSP's best gain over the vanilla encoder in Table 5 (+0.37, two-stream)", 0.37 / 2)
_ASL_MARGIN = ("half of ASL's single-label gain on THUMOS14 in Table 4 (+1.1 average mAP)", 1.1 / 2)


def _at_least(text, better, worse, metric, margin, **kw) -> Claim:
    reason, value = margin
    return Claim(text, better, worse, metric, ">=", margin=value, margin_reason=reason, **kw)


_TSP = dict(family="TSP")

#: TSP's claims (the paper's numbers: Table 9a/b means, Table 8, Table 7).
CLAIMS = [
    Claim("TSP > TAC on target (average mAP)", "tsp", "tac_target", "average mAP", paper=1.875,
          source="TSP Table 9a", **_TSP),
    Claim("TAC on target > TAC on source (average mAP)", "tac_target", "tac_source", "average mAP",
          paper=0.760, source="TSP Table 9a", **_TSP),
    Claim("TSP > TAC on target (AUC)", "tsp", "tac_target", "AUC", paper=0.947, source="TSP Table 9b", **_TSP),
    Claim("TAC on target > TAC on source (AUC)", "tac_target", "tac_source", "AUC", paper=0.322,
          source="TSP Table 9b", **_TSP),
    _at_least("TSP ≥ TSP w/o GVF (average mAP)", "tsp", "tsp_no_gvf", "average mAP", _TSP_MAP_MARGIN,
              paper=0.041, source="TSP Table 9a", **_TSP),
    _at_least("TSP ≥ TSP w/o GVF (AUC)", "tsp", "tsp_no_gvf", "AUC", _TSP_AUC_MARGIN, paper=0.334,
              source="TSP Table 9b", **_TSP),
    _at_least("max GVF ≥ avg GVF (average mAP)", "tsp", "tsp_avg_gvf", "average mAP", _TSP_MAP_MARGIN,
              paper=0.07, source="TSP Table 8", **_TSP),
    _at_least("max GVF ≥ avg GVF (AUC)", "tsp", "tsp_avg_gvf", "AUC", _TSP_AUC_MARGIN, paper=0.19,
              source="TSP Table 8", **_TSP),
    # Table 7, gains TSP - TAC on ActivityNet: XS +1.8, S +2.2, M +0.8, L +0.3, XL -1.2. The text says
    # TSP is "significantly better on XS and S" and trades long actions: the mean gain on XS and S
    # minus the mean gain on L and XL, (1.8 + 2.2) / 2 - (0.3 - 1.2) / 2 = +2.45.
    Claim("gain TSP - TAC on target larger on short actions (XS, S) than on long ones (L, XL)", "tsp",
          "tac_target", _BUCKETS[0], pooled=(_BUCKETS[1],), versus=tuple(_BUCKETS[-2:]), paper=2.45,
          source="TSP Table 7", **_TSP),
    Claim("TSP's features more temporally sensitive than TAC on target's", "tsp", "tac_target",
          "sensitivity", source="TSP supp. D, Fig. 3", **_TSP),
    Claim("TSP's features more temporally sensitive than TAC on source's", "tsp", "tac_source",
          "sensitivity", source="TSP §5, Fig. 3", **_TSP),
]


_BSP, _PAL, _ASL, _OWN = (dict(family=f) for f in ("BSP", "PAL", "ASL", OWN))

#: The peers' claims. BSP Table 5 (G-TAD on ActivityNet, average mAP): vanilla 33.59, two-stream
#: 33.96, two-head 33.54, distillation 33.74. PAL Table 1 (ActivityNet, G-TAD average mAP / BMN AUC):
#: PAL 33.4 / 66.8, TAC 32.5 / 65.6, MoCo-v2 30.3 / 64.0. ASL: on the single-label THUMOS14 +1.1
#: average mAP over ActionFormer (Table 4; ActivityNet +0.2, "non-significant", §4.3); its ablations
#: (Table 5) are on the densely labelled MultiThumos only, so no paper value applies to them here
#: (the benchmark has one action class per video).
PEER_CLAIMS = [
    Claim("TAC on source ⊕ BSP > TAC on source (average mAP)", "tac_source_bsp", "tac_source",
          "average mAP", paper=0.37, source="BSP Table 5", **_BSP),
    _at_least("BSP two-head ≥ TAC on source (average mAP)", "bsp_two_head", "tac_source", "average mAP",
              _BSP_MARGIN, paper=-0.05, source="BSP Table 5", **_BSP),
    Claim("BSP distillation > TAC on source (average mAP)", "bsp_distill", "tac_source", "average mAP",
          paper=0.15, source="BSP Table 5", **_BSP),
    Claim("PAL > TAC on source (average mAP)", "pal", "tac_source", "average mAP", paper=0.9,
          source="PAL Table 1", **_PAL),
    Claim("PAL > TAC on source (AUC)", "pal", "tac_source", "AUC", paper=1.2, source="PAL Table 1", **_PAL),
    Claim("PAL > instance discrimination (average mAP)", "pal", "pal_no_pasting", "average mAP", paper=3.1,
          source="PAL Table 1 (MoCo-v2)", **_PAL),
    Claim("PAL > instance discrimination (AUC)", "pal", "pal_no_pasting", "AUC", paper=2.8,
          source="PAL Table 1 (MoCo-v2)", **_PAL),
    Claim("PAL's features more temporally sensitive than instance discrimination's", "pal",
          "pal_no_pasting", "sensitivity", source="PAL §4.4, Fig. 3", **_PAL),
    Claim("full ASL > ActionFormer-style baseline (average mAP)", "asl_full", "asl_baseline",
          "average mAP", paper=1.1, source="ASL Table 4 (THUMOS14)", **_ASL),
    Claim("ASE class level adds (average mAP)", "asl_full", "asl_no_ase_class", "average mAP",
          source="ASL Table 5 (MultiThumos only)", **_ASL),
    Claim("ASE instance level adds (average mAP)", "asl_full", "asl_no_ase_instance", "average mAP",
          source="ASL Table 5 (MultiThumos only: +0.4)", **_ASL),
    Claim("ASCL adds (average mAP)", "asl_full", "asl_no_ascl", "average mAP",
          source="ASL Table 5 (MultiThumos only: +0.5)", **_ASL),
    Claim("TAC on source ⊕ BSP > TAC on source ⊕ random (average mAP): the gain is BSP's, not the "
          "width's", "tac_source_bsp", "tac_source_random", "average mAP", source="control", **_OWN),
    Claim("PAL on target from random init > random init (average mAP)", "pal_random", "random",
          "average mAP", source="PAL on the target's videos", **_OWN),
    Claim("PAL on target from random init more temporally sensitive than random init", "pal_random",
          "random", "sensitivity", source="PAL on the target's videos", **_OWN),
    Claim("PAL on target from source > TAC on source (average mAP)", "pal_source", "tac_source",
          "average mAP", source="PAL on the target's videos", **_OWN),
    Claim("PAL on target from source more temporally sensitive than TAC on source", "pal_source",
          "tac_source", "sensitivity", source="PAL on the target's videos", **_OWN),
    _at_least("eq. (8) as written ≥ the stabilised weighting (average mAP)", "asl_full", "asl_stabilised",
              "average mAP", _ASL_MARGIN, source="ASE weighting", **_OWN),
]

#: The studies ``tsplab study --study`` runs: their conditions and claims.
STUDIES = {"tsp": (STUDY1, CLAIMS), "peers": (PEERS, PEER_CLAIMS)}
ALL_CONDITIONS = list({c.name: c for conditions, _ in STUDIES.values() for c in conditions}.values())


def check_claims(claims) -> None:
    """``InputError`` when a claim contradicts itself: an unknown relation, a ``">="`` claim without a
    positive margin and its reason, a margin on a ``">"`` claim, no family, or a text used twice."""
    texts = [c.text for c in claims]
    for claim in claims:
        where = f"claim {claim.text!r}"
        check_choice(f"{where}: relation", claim.relation, [">", ">="])
        if not claim.family:
            raise InputError(f"{where}: no family; give the paper's name or {OWN!r}")
        if claim.relation == ">=" and not (claim.margin and claim.margin > 0 and claim.margin_reason):
            raise InputError(f"{where}: a '>=' claim is a non-inferiority claim; give a margin > 0 and "
                             "its reason, fixed before any result")
        if claim.relation == ">" and claim.margin is not None:
            raise InputError(f"{where}: a margin on a '>' claim; use relation '>=' or drop the margin")
        if texts.count(claim.text) > 1:
            raise InputError(f"{where}: the same text twice; each claim's text names it")


def get_conditions(names=None, available=None) -> list[Condition]:
    """The conditions named ``names`` (default: every one of ``available``, default ``STUDY1``), in
    the order given, among ``available`` and every study's conditions; an unknown name raises
    ``InputError`` listing the valid ones."""
    available = list(STUDY1 if available is None else available)
    if names is None:
        return available
    by_name = {**{c.name: c for c in ALL_CONDITIONS}, **{c.name: c for c in available}}
    names = [names] if isinstance(names, str) else list(names)
    check_choice("conditions", names, by_name, several=True)
    if len(set(names)) != len(names):
        raise InputError(f"conditions: {', '.join(names)} names a condition twice; name each once")
    chosen = [by_name[n] for n in names]
    for condition in chosen:
        check_condition(condition, names)
    return chosen


def check_condition(condition: Condition, names) -> None:
    """``InputError`` when ``condition`` contradicts itself or the study's own parameters."""
    from tsplab.pretrain.methods import METHODS

    where = f"condition {condition.name!r}"
    check_choice(f"{where}: method", condition.method, [*METHODS, RANDOM])
    check_choice(f"{where}: pretrain_data", condition.pretrain_data, PRETRAIN_DATA)
    if condition.pretrain_data != TARGET and not condition.trains:
        raise InputError(f"{where}: pretrain_data {condition.pretrain_data!r} but it does not train; "
                         f"leave pretrain_data {TARGET!r}")
    if condition.trains and condition.method == RANDOM:
        raise InputError(f"{where}: method 'random' does not train; set trains=False")
    if not condition.trains and condition.weights is None and condition.method != RANDOM \
            and not condition.features_from:
        raise InputError(f"{where}: no training and no weights; use method 'random' for a randomly "
                         "initialised encoder, or give weights")
    missing = [n for n in condition.needs if n not in names]
    if missing:
        raise InputError(f"{where}: needs {', '.join(missing)} (features_from/teachers_from), not in "
                         f"this study's conditions ({', '.join(names)}); add them")
