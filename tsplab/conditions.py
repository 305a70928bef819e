"""What a study compares, as plain data: its conditions (TSP Study 1, the peers as their papers use
them) and the papers' claims, each a paired difference between two conditions (``tsplab.study`` runs
and tests them). Adding a condition or a claim is one entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tsplab.errors import InputError, check_choice
from tsplab.presets import get_preset

DATASET = get_preset("synthetic")  # whose metrics, DETAD buckets and evaluated subset apply
RANDOM = "random"  # notebook 04's randomly initialised encoder (tsplab.backbones.RANDOM_ENCODER)
SOURCE = "source"  # weights: the benchmark's source encoder (TAC on the source dataset)

# Notebook parameters the study sets for every cell; a condition may not set them.
_STUDY_OWNED = {"method", "dataset_dir", "benchmark_size", "benchmark_seed", "run_dir", "seed",
                "weights", "output_name", "resume", "feature_dirs", "ground_truth", "dataset_preset",
                "checkpoint"}


@dataclass(frozen=True)
class Condition:
    """One column of the study.

    ``method``: a pretraining method (tac | tsp | bsp | pal) or ``"random"`` (no training, random
    weights). ``trains``: notebook 03 pretrains ``method`` on the target from ``weights``; otherwise
    the features are those of ``weights`` itself (``"source"``: the source encoder; ``None``: random).
    ``pretrain``: more notebook-03 parameters (``gvf_pooling``, ``alpha_r``, ``config_overrides``...);
    ``localizer``: notebook-05 parameters (``ase_class``, ``ascl``...). ``features_from``: names of
    other conditions whose features (same seed) this one localizes on, concatenated when several
    (BSP §3.4 two-stream); such a cell neither trains nor extracts and runs after them.
    ``teachers_from``: names of trained conditions whose runs (same seed) are this one's teachers
    (BSP §3.4 distillation, option ``teachers``); such a cell runs after them."""

    name: str  # folder name and table key
    label: str  # as in TSP's tables
    method: str
    trains: bool
    weights: str | None = SOURCE
    pretrain: dict = field(default_factory=dict)
    localizer: dict = field(default_factory=dict)
    features_from: tuple[str, ...] = ()
    teachers_from: tuple[str, ...] = ()

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
    Condition("tsp_no_gvf", "TSP w/o GVF", "tsp", trains=True, pretrain=dict(gvf_pooling="none")),
    Condition("tsp", "TSP (max GVF)", "tsp", trains=True, pretrain=dict(gvf_pooling="max")),
    Condition("tsp_avg_gvf", "TSP (avg GVF)", "tsp", trains=True, pretrain=dict(gvf_pooling="avg")),
]


_BY_NAME = {c.name: c for c in STUDY1}
_ASL_OFF = dict(ase_class=False, ase_instance=False, ascl=False)

#: The peers as their papers use them, beside the Study-1 conditions they are compared with (the
#: same definitions, so a peers study run into a Study-1 folder reuses those cells).
#: BSP (§3.4, Table 5): trained from the source encoder with its syntheses drawn from the source set
#: (Kinetics' role), then combined with TAC: two-stream (TAC ⊕ BSP features, its best), two-head, and
#: distillation from the TAC and BSP encoders; TAC ⊕ the random encoder's features is the control
#: for the two-stream gain (a wider input alone). PAL (§4): unsupervised, so compared from random
#: initialisation with the random encoder, and from the source encoder with TAC on source. ASL
#: (Tables 5-6): the localizer's components switched off one at a time on the same TSP features.
PEERS = [
    _BY_NAME["random"], _BY_NAME["tac_source"], _BY_NAME["tac_target"], _BY_NAME["tsp"],
    Condition("bsp", "BSP", "bsp", trains=True),
    Condition("tac_bsp", "TAC ⊕ BSP (two-stream)", "bsp", trains=False, weights=None,
              features_from=("tac_target", "bsp")),
    Condition("tac_random", "TAC ⊕ random (control)", "tac", trains=False, weights=None,
              features_from=("tac_target", "random")),
    Condition("bsp_two_head", "BSP two-head", "bsp", trains=True, pretrain=dict(
        config_overrides=dict(integration="two-head"))),
    Condition("bsp_distill", "BSP distillation", "bsp", trains=True, pretrain=dict(
        config_overrides=dict(integration="distill")), teachers_from=("tac_target", "bsp")),
    # PAL's own budget (PAL_SYNTHETIC_OVERRIDES), not the study's: batch_size counts synthesized pairs
    # (16, not clips), and 6 epochs of its 30 steps, where its retrieval was still rising at 4.
    Condition("pal_random", "PAL from random init", "pal", trains=True, weights=None,
              pretrain=dict(batch_size=16, epochs=6)),
    Condition("pal_source", "PAL from source", "pal", trains=True, pretrain=dict(batch_size=16, epochs=6)),
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
    """A claim of a paper as a paired difference per seed, ``better`` minus ``worse``.

    Without ``versus`` the difference is of ``metric``; with ``versus`` (other metrics) it is the gain
    on ``metric`` minus the largest gain on ``versus`` ("the largest gain is on ``metric``").
    ``paper``: the same difference in the paper's tables (None: shown only qualitatively)."""

    text: str
    better: str
    worse: str
    metric: str
    relation: str = ">"  # ">" or ">=" (both judged by the same interval rule)
    versus: tuple[str, ...] = ()
    paper: float | None = None
    source: str = ""


_BUCKETS = [f"mAP_N {b}" for b in DATASET.detad_buckets["length"][1]]

#: TSP's claims (the paper's numbers: Table 9a/b means, Table 8, Table 7).
CLAIMS = [
    Claim("TSP > TAC on target (average mAP)", "tsp", "tac_target", "average mAP", paper=1.875,
          source="TSP Table 9a"),
    Claim("TAC on target > TAC on source (average mAP)", "tac_target", "tac_source", "average mAP",
          paper=0.760, source="TSP Table 9a"),
    Claim("TSP > TAC on target (AUC)", "tsp", "tac_target", "AUC", paper=0.947, source="TSP Table 9b"),
    Claim("TAC on target > TAC on source (AUC)", "tac_target", "tac_source", "AUC", paper=0.322,
          source="TSP Table 9b"),
    Claim("TSP ≥ TSP w/o GVF (average mAP)", "tsp", "tsp_no_gvf", "average mAP", ">=", paper=0.041,
          source="TSP Table 9a"),
    Claim("TSP ≥ TSP w/o GVF (AUC)", "tsp", "tsp_no_gvf", "AUC", ">=", paper=0.334, source="TSP Table 9b"),
    Claim("max GVF ≥ avg GVF (average mAP)", "tsp", "tsp_avg_gvf", "average mAP", ">=", paper=0.07,
          source="TSP Table 8"),
    Claim("max GVF ≥ avg GVF (AUC)", "tsp", "tsp_avg_gvf", "AUC", ">=", paper=0.19, source="TSP Table 8"),
    # Table 7: gains TSP - TAC on ActivityNet XS +1.8, S +2.2, M +0.8, L +0.3, XL -1.2: in the paper
    # itself S, not XS, gains most; its text claims "significantly better on XS and S", and that TSP
    # trades long actions for short ones (the second row).
    Claim("largest gain TSP - TAC on target on the shortest actions (XS minus the best other bucket)",
          "tsp", "tac_target", _BUCKETS[0], versus=tuple(_BUCKETS[1:]), paper=-0.4, source="TSP Table 7"),
    Claim("gain TSP - TAC on target larger on XS than on XL", "tsp", "tac_target", _BUCKETS[0],
          versus=(_BUCKETS[-1],), paper=3.0, source="TSP Table 7"),
    Claim("TSP's features more temporally sensitive than TAC on target's", "tsp", "tac_target",
          "sensitivity", source="TSP supp. D, Fig. 3"),
    Claim("TSP's features more temporally sensitive than TAC on source's", "tsp", "tac_source",
          "sensitivity", source="TSP §5, Fig. 3"),
]


#: The peers' claims. BSP Table 5 (G-TAD on ActivityNet, average mAP): vanilla 33.59, two-stream
#: 33.96, two-head 33.54, distillation 33.74. ASL Table 5 (MultiThumos, average mAP): baseline 23.4,
#: class + instance (no ASCL) 25.0, class + ASCL (no instance) 25.1, all 25.5; the row without the
#: class level but with the other two is not in the paper. PAL reports no random-init row.
PEER_CLAIMS = [
    Claim("TAC ⊕ BSP > TAC on target (average mAP)", "tac_bsp", "tac_target", "average mAP",
          paper=0.37, source="BSP Table 5"),
    Claim("TAC ⊕ BSP > TAC ⊕ random (average mAP): the gain is BSP's, not the width's", "tac_bsp",
          "tac_random", "average mAP", source="tsplab control"),
    Claim("BSP two-head ≥ TAC on target (average mAP)", "bsp_two_head", "tac_target", "average mAP",
          ">=", paper=-0.05, source="BSP Table 5"),
    Claim("BSP distillation > TAC on target (average mAP)", "bsp_distill", "tac_target", "average mAP",
          paper=0.15, source="BSP Table 5"),
    Claim("PAL from random init > random init (average mAP)", "pal_random", "random", "average mAP",
          source="PAL §4"),
    Claim("PAL from random init more temporally sensitive than random init", "pal_random", "random",
          "sensitivity", source="PAL §1, §4"),
    Claim("PAL from source > TAC on source (average mAP)", "pal_source", "tac_source", "average mAP",
          source="PAL Table 1"),
    Claim("PAL from source more temporally sensitive than TAC on source", "pal_source", "tac_source",
          "sensitivity", source="PAL §1, §4"),
    Claim("full ASL > ActionFormer-style baseline (average mAP)", "asl_full", "asl_baseline",
          "average mAP", paper=2.1, source="ASL Table 5"),
    Claim("ASE class level adds (average mAP)", "asl_full", "asl_no_ase_class", "average mAP",
          source="ASL Table 5"),
    Claim("ASE instance level adds (average mAP)", "asl_full", "asl_no_ase_instance", "average mAP",
          paper=0.4, source="ASL Table 5"),
    Claim("ASCL adds (average mAP)", "asl_full", "asl_no_ascl", "average mAP", paper=0.5,
          source="ASL Table 5"),
    Claim("eq. (8) as written ≥ the stabilised weighting (average mAP)", "asl_full", "asl_stabilised",
          "average mAP", ">=", source="tsplab (ASE weighting)"),
]

#: The studies ``tsplab study --study`` runs: their conditions and claims.
STUDIES = {"tsp": (STUDY1, CLAIMS), "peers": (PEERS, PEER_CLAIMS)}
ALL_CONDITIONS = list({c.name: c for conditions, _ in STUDIES.values() for c in conditions}.values())


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
    from tsplab.methods import METHODS

    where = f"condition {condition.name!r}"
    check_choice(f"{where}: method", condition.method, [*METHODS, RANDOM])
    owned = sorted(_STUDY_OWNED & (set(condition.pretrain) | set(condition.localizer)))
    if owned:
        raise InputError(f"{where}: sets {', '.join(owned)}, which the study sets for every cell; "
                         "remove them from the condition")
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
