"""Reproduction studies: conditions x seeds on the synthetic benchmark, each cell the notebooks run by
papermill, aggregated in TSP's layout with a claims table (``tsplab study``, notebook 08).

Why: one run of one seed is a tour, not a finding (the README's demo results move between machines
at the same seed). TSP repeats every study five times and reports mean ±
std (max) (supplementary Tables 9-12); this module does the same on the benchmark, and tests each of
the paper's claims on paired seeds.

The protocol (TSP Study 1, §4.2 and supplementary A/B):

* Each benchmark (and its source stage: TAC on the trimmed source dataset, Kinetics' role, which
  gives every method's initial encoder and TSP's frozen GVF, §3.3) is made once, before any cell.
* A CELL is one condition at one seed, in ``OUT/<condition>/seed<k>/``: notebook 03 (pretraining,
  when the condition trains: on the target, or on the trimmed source set for PAL), 04 (features), 05 (localizer), executed by papermill into
  the cell, so every number has its executed notebook beside it. ``cell.json``, written atomically
  last, holds the cell's metrics; a rerun skips finished cells (a killed study resumes) and runs
  failed ones again. A failed cell is recorded (``cell.json`` with the error; the executed notebook
  kept) and the others go on.
* Seeds vary the training (encoder initialisation of the heads, sampling, localizer) and, by default
  (``vary_data=True``, confirmatory), the data: each seed its own benchmark (benchmark seed = cell
  seed), hence its own source encoder and GVF, so that a verdict is not conditional on one draw of
  the source stage. ``vary_data=False`` (``--fixed-data``) keeps one benchmark for every seed, as TSP
  keeps one ActivityNet.
* Conditions and claims are plain data in ``tsplab.conditions``: TSP Study 1 (``STUDY1``,
  ``CLAIMS``) and the peers as their papers use them (``PEERS``, ``PEER_CLAIMS``), named by
  ``STUDIES`` (``tsplab study --study tsp|peers``). Claims are tested on seeds paired across
  conditions, one-sided, with Holm's correction within each family and non-inferiority margins for
  "≥" claims (``tsplab.study.statistics``); a single seed is a tour (no interval). No number is
  ever tuned towards a claim.
* Provenance (``tsplab.study.provenance``): each cell records the code fingerprint it ran with, the
  library versions, its notebooks' parameters and their resolved configurations; a finished cell is
  reused only when they match the study's, and a table holds cells of one fingerprint, named in it.
* Pre-registration (``tsplab.study.preregistration``): ``preregistration.json`` (every claim, its
  margin and family, the seeds, alpha, the test) is written before any cell runs; its hash is in
  every table, and a changed claim after results exist needs a new study folder.

Tables (percent, as TSP's): mAP at each tIoU and their average (the localizer's detections),
AR@1/10/100 and AUC (the same predictions evaluated as class-agnostic proposals), DETAD average
mAP_N per length bucket, and the features' temporal sensitivity (fg-fg minus fg-bg cosine
similarity, ``tsplab.similarity``).
"""
from tsplab.study.cells import (BUDGETS, CELL_FILE, CellSpec, cell_dir, cell_features,
                                cell_metrics, cell_steps, feature_folder, planned_parameters, read_cell,
                                resolved_configs, run_cell)
from tsplab.study.lock import LOCK_FILE, study_lock
from tsplab.study.preregistration import (PREREGISTRATION_FILE, preregistration, preregistration_hash,
                                         read_preregistration, register)
from tsplab.study.provenance import STALE, one_fingerprint, reuse_decision, with_defaults
from tsplab.study.runner import (LAUNCHERS, STUDY_FILE, SlurmOptions, available_cores, plan_cells,
                                 run_study)
from tsplab.study.statistics import (ALPHA, claim_differences, claims_table, holm, one_sided_p,
                                     paired_interval, seeds_needed, verdict)
from tsplab.study.tables import (SELECT_BY, StudyResult, aggregate, cells_table, metric_columns, seed_list,
                                 summary_table, tables_dir, tsp_table)
from tsplab.conditions import CLAIMS, STUDIES  # noqa: E402  (the names callers have used from here)
