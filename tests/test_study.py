"""tsplab.study: the claims' statistics against hand-computed values, TSP's table layout, the
conditions' checks and the notebook parameters of each cell; then a tiny study run end to end through
the CLI (processes, resume, a failing cell, exit 1) and through submitit's local executor."""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import contextlib
import io
import json
import os
import re

import nbformat
import numpy as np
import pandas as pd
import pytest

from tsplab import cli, study
from tsplab import conditions as conditions_module
from tsplab.conditions import CLAIMS, PEER_CLAIMS, PEERS, STUDIES, STUDY1, Claim, Condition, get_conditions
from tsplab.errors import InputError
from tsplab.runs import notebooks_dir
from tsplab.fingerprint import code_fingerprint
from tsplab.study import (CellSpec, SlurmOptions, cell_steps, claims_table, paired_interval, summary_table,
                          tsp_table)


def parameters_of(notebook: str) -> dict:
    cell = next(c for c in nbformat.read(notebooks_dir() / notebook, 4).cells if c.cell_type == "code")
    return {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body}


def cells_frame(values: dict) -> pd.DataFrame:
    """A cells table from ``{condition: [average mAP per seed]}`` (seeds 0..n-1), all finished."""
    return pd.DataFrame([dict(condition=c, seed=s, status="finished", **{"average mAP": v})
                         for c, vs in values.items() for s, v in enumerate(vs)])


# --------------------------------------------------------------------------------------------
# Statistics

def test_paired_interval_matches_the_t_table():
    # d = 1, 2, 3: mean 2, s = 1, t(0.975, 2) = 4.3027 -> 2 ± 4.3027 / sqrt(3) = 2 ± 2.4841
    mean, low, high = paired_interval([1.0, 2.0, 3.0])
    assert (mean, round(low, 4), round(high, 4)) == (2.0, -0.4841, 4.4841)
    # d = 2..6: mean 4, s = 1.5811, t(0.975, 4) = 2.7764 -> 4 ± 1.9632
    mean, low, high = paired_interval([2.0, 3.0, 4.0, 5.0, 6.0])
    assert (mean, round(low, 4), round(high, 4)) == (4.0, 2.0368, 5.9632)
    assert paired_interval([1.5, 1.5, 1.5]) == (1.5, 1.5, 1.5)


def test_claims_are_paired_by_seed_and_judged_by_their_interval():
    claims = [Claim("a > b", "a", "b", "average mAP"), Claim("b > a", "b", "a", "average mAP"),
              Claim("a > c", "a", "c", "average mAP"), Claim("a > x", "a", "x", "average mAP")]
    # Unpaired, a - b would be 1 ± a spread of 10 between seeds; paired it is 1, 1.1, 0.9 per seed.
    cells = cells_frame({"a": [10.0, 20.1, 30.9], "b": [9.0, 19.0, 30.0], "c": [9.0, 22.0, 29.0]})
    table = claims_table(cells, claims).set_index("claim")
    assert table.loc["a > b", "verdict"] == "holds" and table.loc["a > b", "n"] == 3
    assert table.loc["a > b", "difference"] == pytest.approx(1.0)
    assert table.loc["b > a", "verdict"] == "does not hold"
    assert table.loc["a > c", "verdict"].startswith("inconclusive")  # 1, -1.9, 1.9: contains 0
    assert table.loc["a > x", "verdict"] == "not measured (x not in this study)"


def test_one_seed_is_a_tour_without_interval():
    table = claims_table(cells_frame({"a": [3.0], "b": [1.0]}), [Claim("a > b", "a", "b", "average mAP")])
    row = table.iloc[0]
    assert row["verdict"] == "a tour (1 seed): no interval" and row["difference"] == 2.0
    assert np.isnan(row["ci_low"]) and np.isnan(row["ci_high"])


def test_holm_against_hand_calculation():
    # m = 4, alpha = 0.05. Sorted: 0.01 (x4 = 0.04), 0.03 (x3 = 0.09), 0.04 (x2 = 0.08 -> max 0.09),
    # 0.2 (x1 = 0.2). Step-down: 0.01 <= 0.05/4 rejected; 0.03 > 0.05/3 stops: one rejection.
    adjusted, levels = study.holm([0.01, 0.04, 0.03, 0.2], alpha=0.05)
    assert adjusted.tolist() == pytest.approx([0.04, 0.09, 0.09, 0.2])
    # intervals: the rejected claim at its step's level 0.05/4, the others at 0.05/(4 - 1)
    assert levels.tolist() == pytest.approx([0.0125, 0.05 / 3, 0.05 / 3, 0.05 / 3])
    # all rejected: 0.001 <= 0.05/3, 0.01 <= 0.05/2, 0.02 <= 0.05/1; adjusted 0.003, 0.02, max(0.02, 0.02)
    adjusted, levels = study.holm([0.02, 0.001, 0.01], alpha=0.05)
    assert adjusted.tolist() == pytest.approx([0.02, 0.003, 0.02])
    assert levels.tolist() == pytest.approx([0.05, 0.05 / 3, 0.025])
    # a pre-registered claim not measured counts as p = 1 and keeps m = 3: 0.01 x 3 = 0.03
    adjusted, _ = study.holm([0.01, np.nan, 0.3], alpha=0.05)
    assert adjusted.tolist() == pytest.approx([0.03, 1.0, 0.6])


def test_non_inferiority_against_hand_calculation():
    # d = 0.1, -0.2, 0.3, 0.0: mean 0.05, squares of deviations 0.0025 + 0.0625 + 0.0625 + 0.0025 = 0.13,
    # sd = sqrt(0.13 / 3) = 0.208167, sem = 0.104083. Margin 0.5: t = (0.05 + 0.5) / 0.104083 = 5.2842,
    # df 3: t(0.99) = 4.541 < t < t(0.995) = 5.841, so 0.005 < p < 0.01 (p = 0.006609).
    d = [0.1, -0.2, 0.3, 0.0]
    p = study.one_sided_p(d, null=-0.5)
    assert 0.005 < p < 0.01 and p == pytest.approx(0.006609, abs=1e-6)
    # superiority on the same data: t = 0.05 / 0.104083 = 0.4804, df 3: t(0.6) = 0.277 < t < t(0.7) = 0.584,
    # so 0.3 < p < 0.4 (p = 0.3319)
    p = study.one_sided_p(d)
    assert 0.3 < p < 0.4 and p == pytest.approx(0.3319, abs=1e-4)
    cells = cells_frame({"a": [10.1, 9.8, 10.3, 10.0], "b": [10.0] * 4})
    ni = Claim("a >= b", "a", "b", "average mAP", ">=", margin=0.5, margin_reason="fixed", family="F")
    sup = Claim("a > b", "a", "b", "average mAP", family="G")  # its own family: m = 1 each
    table = claims_table(cells, [ni, sup]).set_index("claim")
    # 95 % interval (alpha 0.025 one-sided, m = 1): 0.05 ± 3.1824 x 0.104083 = [-0.2812, 0.3812]
    assert table.loc["a >= b", ["adj_low", "adj_high"]].tolist() == pytest.approx([-0.2812, 0.3812], abs=1e-4)
    assert table.loc["a >= b", "verdict"] == "holds"  # above -0.5: non-inferior
    assert table.loc["a > b", "verdict"] == "inconclusive (adjusted interval contains 0)"
    assert table.loc["a >= b", "p"] == pytest.approx(0.006609, abs=1e-6)


def test_adjusted_intervals_widen_with_the_family_and_name_the_paper_value():
    cells = cells_frame({"a": [11.0, 12.2, 13.1, 13.9], "b": [10.0, 11.0, 12.0, 13.0], "c": [12.0] * 4})
    claims = [Claim("a > b", "a", "b", "average mAP", paper=0.5, family="F"),
              Claim("c > b", "c", "b", "average mAP", paper=9.0, family="F"),
              Claim("a > x", "a", "x", "average mAP", family="F")]
    table = claims_table(cells, claims).set_index("claim")
    # a - b = 1.0, 1.2, 1.1, 0.9: mean 1.05, sd 0.1291, sem 0.06455, t = 16.27, p = 0.000254 (df 3)
    assert table.loc["a > b", "p"] == pytest.approx(0.000254, rel=0.01)
    assert table.loc["a > b", "p_holm"] == pytest.approx(3 * table.loc["a > b", "p"])  # smallest of m = 3
    level = table.loc["a > b", "level"]
    assert level == pytest.approx(0.025 / 3)
    _, low, high = paired_interval([1.0, 1.2, 1.1, 0.9], 1 - 2 * level)
    assert table.loc["a > b", ["adj_low", "adj_high"]].tolist() == pytest.approx([low, high])
    assert low < table.loc["a > b", "ci_low"]  # wider than the raw 95 % interval
    assert table.loc["a > b", "verdict"] == "holds" and table.loc["a > b", "paper_in_interval"] == "no"
    assert table.loc["c > b", "verdict"].startswith("inconclusive")  # 2, 1, 0, -1
    assert table.loc["c > b", "paper_in_interval"] == "no" and table.loc["c > b", "seeds_needed"] > 4
    assert table.loc["a > x", "paper_in_interval"] == "n/a" and np.isnan(table.loc["a > b", "seeds_needed"])


def test_seeds_needed_matches_power_tables():
    # One-sample t-test, 80 % power (G*Power): d = 1 at one-sided 0.025 -> 10; d = 0.5 at one-sided
    # 0.05 -> 27, at 0.025 -> 34.
    assert study.seeds_needed(1.0, 1.0, 0.025) == 10
    assert study.seeds_needed(0.5, 1.0, 0.05) == 27 and study.seeds_needed(1.0, 2.0, 0.025) == 34
    assert study.seeds_needed(0.0, 0.5, 0.025, null=-0.5) == 10  # non-inferiority: from -margin
    assert np.isnan(study.seeds_needed(-0.1, 1.0, 0.025))  # the wrong direction: no n would do
    cells = cells_frame({"a": [1.0, 3.0, 0.0], "b": [0.0, 0.0, 0.0]})
    row = claims_table(cells, [Claim("a > b", "a", "b", "average mAP", family="F")]).iloc[0]
    assert row["verdict"].startswith("inconclusive")
    assert row["seeds_needed"] == study.seeds_needed(row["difference"], row["sd"], 0.025)


def test_claims_that_contradict_themselves_are_refused():
    check = conditions_module.check_claims
    with pytest.raises(InputError, match="non-inferiority claim; give a margin"):
        check([Claim("a >= b", "a", "b", "AUC", ">=", family="F")])
    with pytest.raises(InputError, match="a margin on a '>' claim"):
        check([Claim("a > b", "a", "b", "AUC", margin=0.1, margin_reason="r", family="F")])
    with pytest.raises(InputError, match="no family"):
        check([Claim("a > b", "a", "b", "AUC")])


def with_fingerprints(cells: pd.DataFrame, fingerprints) -> pd.DataFrame:
    return cells.assign(fingerprint=fingerprints)


def test_a_mixed_table_is_refused_naming_the_cells():
    cells = cells_frame({"a": [3.0, 4.0], "b": [1.0, 1.5]})
    claim = [Claim("a > b", "a", "b", "average mAP", family="F")]
    mixed = with_fingerprints(cells, ["1" * 64, "1" * 64, "2" * 64, "1" * 64])
    for make in (summary_table, lambda c: claims_table(c, claim)):
        with pytest.raises(InputError, match=r"2 code versions in one table \(111111111111: a/seed0, a/seed1, "
                                             r"b/seed1; 222222222222: b/seed0\)"):
            make(mixed)
    unrecorded = with_fingerprints(cells, ["1" * 64, "", "1" * 64, "1" * 64])
    with pytest.raises(InputError, match="without a recorded code fingerprint .*: a/seed1"):
        summary_table(unrecorded)
    one = with_fingerprints(cells, ["1" * 64] * 4)
    assert study.one_fingerprint(one) == "1" * 64 and claims_table(one, claim).iloc[0]["n"] == 2
    # a stale cell (kept, made by other code) is out of the table, so it does not mix
    stale = with_fingerprints(cells, ["1" * 64] * 3 + ["2" * 64]).assign(
        status=["finished"] * 3 + ["stale"])
    assert study.one_fingerprint(stale) == "1" * 64


def test_table7_claim_is_the_mean_gain_on_short_minus_the_mean_gain_on_long_actions():
    claim = Claim("short > long", "tsp", "tac", "mAP_N XS", pooled=("mAP_N S",), versus=("mAP_N L", "mAP_N XL"),
                  family="TSP")
    rows = []
    for seed, gains in enumerate([(5, 1, 2, 0), (4, 3, 0, 1), (6, 2, 5, 3)]):  # XS, S, L, XL of tsp over tac
        base = dict(zip(["mAP_N XS", "mAP_N S", "mAP_N L", "mAP_N XL"], [10.0] * 4))
        rows.append(dict(condition="tac", seed=seed, status="finished", **base))
        rows.append(dict(condition="tsp", seed=seed, status="finished",
                         **{k: v + g for (k, v), g in zip(base.items(), gains)}))
    d = study.claim_differences(pd.DataFrame(rows), claim)
    assert d.tolist() == [2.0, 3.0, 0.0]  # (5+1)/2 - (2+0)/2, (4+3)/2 - (0+1)/2, (6+2)/2 - (5+3)/2
    rows[-1]["mAP_N XL"] = np.nan  # an empty bucket at seed 2: the mean of the others
    assert study.claim_differences(pd.DataFrame(rows), claim).tolist() == [2.0, 3.0, -1.0]  # 4 - 5
    table7 = next(c for c in CLAIMS if c.source == "TSP Table 7")
    assert table7.metrics == ("mAP_N XS", "mAP_N S", "mAP_N L", "mAP_N XL")
    assert table7.paper == pytest.approx((1.8 + 2.2) / 2 - (0.3 - 1.2) / 2)  # +2.45


@pytest.mark.parametrize("name", list(STUDIES))
def test_every_claim_names_conditions_and_metrics_of_its_study(name):
    conditions, claims = STUDIES[name]
    names = {c.name for c in conditions}
    assert get_conditions(sorted(names), conditions)  # every condition passes its checks
    metrics = {"average mAP", "AUC", "sensitivity", *conditions_module._BUCKETS}
    conditions_module.check_claims(claims)
    for claim in claims:
        assert {claim.better, claim.worse} <= names and set(claim.metrics) <= metrics
        assert claim.family and (claim.relation == ">") == (claim.margin is None)


def test_summary_max_is_the_best_runs_value_as_in_tsp_tables():
    cells = pd.DataFrame([dict(condition="a", seed=s, status="finished", **{"average mAP": m, "AUC": auc})
                          for s, (m, auc) in enumerate([(10.0, 60.0), (14.0, 50.0), (12.0, 70.0)])]
                         + [dict(condition="b", seed=0, status="finished", **{"average mAP": 5.0, "AUC": 40.0}),
                            dict(condition="b", seed=1, status="failed", error="boom")])
    summary = summary_table(cells).set_index(["condition", "metric"])
    auc = summary.loc[("a", "AUC")]
    assert (auc["n"], auc["mean"], auc["max"]) == (3, 60.0, 50.0)  # seed 1 has the best average mAP
    assert auc["std"] == pytest.approx(10.0)
    assert summary.loc[("b", "AUC"), "n"] == 1 and np.isnan(summary.loc[("b", "AUC"), "std"])
    table = tsp_table(summary.reset_index(), [Condition("a", "A", "tac", True), Condition("b", "B", "tac", True)])
    assert table.loc["AUC", "A"] == "60.000 ± 10.000 (50.000)"
    assert table.loc["average mAP", "B"] == "5.000 (1 seed)"
    assert list(table.index) == ["average mAP", "AUC"] and list(table.columns) == ["A", "B"]
    cells.loc[0, "AUC"] = np.nan  # a metric without value in one seed (an empty bucket) is left out
    auc = summary_table(cells).set_index(["condition", "metric"]).loc[("a", "AUC")]
    assert (auc["n"], auc["mean"]) == (2, 60.0)


# --------------------------------------------------------------------------------------------
# Conditions and cells

def test_unknown_condition_fails_listing_the_valid_ones(tmp_path, capsys):
    out = tmp_path / "study"
    assert cli.main(["study", "--budget", "tiny", "--conditions", "tsp", "tps", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("tsplab study: error: conditions: 'tps'")
    assert all(c.name in err for c in STUDY1)
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--preset", "--study-preset"])
def test_the_old_budget_flags_still_work_with_one_deprecation_line(tmp_path, capsys, flag):
    out = tmp_path / "study"
    assert cli.main(["study", flag, "tiny", "--conditions", "tsp", "tps", "--out", str(out)]) == 2
    first, second = capsys.readouterr().err.strip().split("\n")
    assert first == f"tsplab: {flag} is deprecated here, use --budget"
    assert second.startswith("tsplab study: error: conditions: 'tps'")


@pytest.mark.parametrize("condition, message", [
    (Condition("x", "x", "random", True), "does not train"),
    (Condition("x", "x", "tac", False, weights=None), "no training and no weights"),
    (Condition("x", "x", "tac", False, features_from=("y",)), "needs y"),
    (Condition("x", "x", "bsp", True, teachers_from=("y",)), "needs y"),
    (Condition("x", "x", "tps", True), "'tps' is not a valid choice"),
])
def test_conditions_that_contradict_themselves_are_refused(condition, message):
    with pytest.raises(InputError, match=message):
        get_conditions(["x"], [condition])


def spec_of(condition, seed=3, **kw):
    return CellSpec(condition=condition, seed=seed, study_dir="/s", budget="default",
                    benchmark_dir="/s/benchmark", benchmark_seed=0, source_checkpoint="/s/src/best.pt",
                    threads=2, frame_cache_dir="/s/frame_cache/benchmark", **kw)


@pytest.mark.parametrize("condition", STUDY1 + PEERS[3:], ids=lambda c: c.name)
def test_cells_pass_only_parameters_the_notebooks_declare(condition):
    spec = spec_of(condition, teachers={n: f"/t/{n}" for n in condition.teachers_from},
                   inputs={n: f"/i/{n}" for n in condition.features_from})
    for step in cell_steps(spec):
        declared = parameters_of(step.notebook)
        assert set(step.parameters) <= set(declared), (step.notebook, set(step.parameters) - set(declared))


def test_cell_parameters_of_study1():
    by_name = {c.name: c for c in STUDY1}
    steps = {s.notebook[:2]: s.parameters for s in cell_steps(spec_of(by_name["tsp_no_gvf"]))}
    assert list(steps) == ["03", "04", "05"]
    assert steps["03"]["method_options"] == {"gvf_pooling": "none"} and steps["03"]["weights"] == "/s/src/best.pt"
    assert (steps["03"]["seed"], steps["03"]["benchmark_seed"], steps["03"]["threads"]) == (3, 0, 2)
    assert steps["03"]["epochs"] == 4 and steps["03"]["run_dir"] == "/s/tsp_no_gvf/seed3"
    assert steps["03"]["config_overrides"] == {"frame_cache_dir": "/s/frame_cache/benchmark"}
    assert steps["04"]["checkpoint"] == "" and steps["04"]["method"] == "tsp"
    assert steps["05"]["feature_dirs"] == {"tsp_no_gvf": "/s/tsp_no_gvf/seed3/features/tsp"}
    assert steps["05"]["run_dir"] == "/s/tsp_no_gvf/seed3/localization" and steps["05"]["epochs"] == 15
    # TAC on source: no target training, the source encoder's features
    source = {s.notebook[:2]: s.parameters for s in cell_steps(spec_of(by_name["tac_source"]))}
    assert list(source) == ["04", "05"] and source["04"]["checkpoint"] == "/s/src/best.pt"
    assert source["05"]["feature_dirs"] == {"tac_source": "/s/tac_source/seed3/features/best"}
    floor = {s.notebook[:2]: s.parameters for s in cell_steps(spec_of(by_name["random"]))}
    assert floor["04"]["method"] == "random" and floor["04"]["checkpoint"] == ""


def write_code(root, module="x = 1\n", cell="print(1)", outputs=()):
    (root / "pkg" / "sub").mkdir(parents=True, exist_ok=True)
    (root / "nbs").mkdir(exist_ok=True)
    (root / "pkg" / "sub" / "m.py").write_text(module)
    (root / "pkg" / "README.md").write_text("prose")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell, outputs=list(outputs))])
    nbformat.write(notebook, root / "nbs" / "a.ipynb")
    return code_fingerprint(root / "pkg", root / "nbs")


def test_the_code_fingerprint_follows_the_code_not_outputs_or_prose(tmp_path):
    base = write_code(tmp_path)
    assert len(base) == 64 and write_code(tmp_path) == base
    (tmp_path / "pkg" / "README.md").write_text("other prose")  # not code
    assert code_fingerprint(tmp_path / "pkg", tmp_path / "nbs") == base
    executed = write_code(tmp_path, outputs=[nbformat.v4.new_output("stream", text="1\n")])
    assert executed == base  # an executed notebook's outputs are not code
    assert write_code(tmp_path, module="x = 2\n") != base
    assert write_code(tmp_path, cell="print(2)") != base
    assert len(code_fingerprint()) == 64


def finished_record(spec, **provenance):
    return dict(status="finished", condition=spec.condition.name, seed=spec.seed, identity=spec.identity(),
                provenance={**json.loads(json.dumps(spec.provenance())), **provenance}, metrics={})


def test_a_finished_cell_is_reused_only_with_the_same_code_versions_and_parameters(tmp_path):
    versions = dict(python="3.11.0", torch="2.0", numpy="2.0")
    spec = CellSpec(condition=STUDY1[2], seed=0, study_dir=str(tmp_path), budget="tiny",
                    benchmark_dir=str(tmp_path / "benchmark"), benchmark_seed=0, fingerprint="a" * 64,
                    versions=versions)
    decide = study.reuse_decision
    assert decide(spec, None) == "run" and decide(spec, {"status": "failed"}) == "run"
    assert decide(spec, finished_record(spec)) == "reuse"
    # parameters are recorded relative to the study folder: a moved study stays reusable
    planned = spec.provenance()["parameters"]
    assert planned[0]["parameters"]["run_dir"] == "OUT/tac_target/seed0"
    assert planned[0]["parameters"]["weights"] == "<the benchmark's source encoder>"
    assert "threads" not in planned[0]["parameters"]
    assert decide(spec, finished_record(spec, fingerprint="b" * 64)) == \
        "made with other fingerprint (fingerprint bbbbbbbbbbbb)"
    assert "versions" in decide(spec, finished_record(spec, versions={**versions, "torch": "2.1"}))
    other = finished_record(spec)
    other["provenance"]["parameters"][0]["parameters"]["epochs"] = 99  # a notebook default changed
    assert "parameters" in decide(spec, other)
    old = finished_record(spec)
    del old["provenance"]
    assert decide(spec, old) == "made before cells recorded their provenance"


def test_stale_cells_are_moved_aside_and_rerun_or_kept_and_listed(tmp_path):
    specs = [CellSpec(condition=c, seed=0, study_dir=str(tmp_path), budget="tiny",
                      benchmark_dir=str(tmp_path / "benchmark"), benchmark_seed=0, fingerprint="a" * 64)
             for c in STUDY1[:3]]
    current, stale, _ = specs
    write_json_cell(tmp_path, "random", 0, finished_record(current))
    write_json_cell(tmp_path, "tac_source", 0, finished_record(stale, fingerprint="b" * 64))
    reused, todo, kept = study.provenance.sort_finished_cells(specs, keep_stale=True)
    assert (reused, todo, kept) == ([current], [specs[2]], [stale])
    cells = study.cells_table(tmp_path, [s.condition for s in specs], [0], fingerprint="a" * 64)
    assert cells["status"].tolist() == ["finished", "stale", "not run"]
    before = (tmp_path / "tac_source" / "seed0" / "cell.json").read_bytes()
    reused, todo, kept = study.provenance.sort_finished_cells(specs, keep_stale=False)
    assert (reused, todo, kept) == ([current], [stale, specs[2]], [])
    moved = tmp_path / "tac_source" / f"seed0.stale-{'b' * 12}" / "cell.json"
    assert moved.read_bytes() == before and not (tmp_path / "tac_source" / "seed0").exists()


def test_a_code_change_during_the_study_fails_the_later_cells(tmp_path):
    spec = CellSpec(condition=STUDY1[0], seed=0, study_dir=str(tmp_path), budget="tiny",
                    benchmark_dir=str(tmp_path / "benchmark"), benchmark_seed=0, fingerprint="0" * 64)
    record = study.run_cell(spec)
    assert record["status"] == "failed" and record["notebooks"] == []
    assert record["error"].startswith("the code changed during the study (fingerprint 000000000000 when it "
                                      f"started, {code_fingerprint()[:12]} when this cell started)")
    assert json.loads((tmp_path / "random" / "seed0" / "cell.json").read_text())["status"] == "failed"


def test_the_preregistration_is_written_once_and_a_change_after_results_is_refused(tmp_path):
    registration = study.preregistration("tsp", CLAIMS, STUDY1, [0, 1, 2], budget="tiny",
                                         vary_data=True, benchmark_seed=0)
    assert registration["families"] == {"TSP": len(CLAIMS)} and registration["alpha"] == 0.025
    margins = {c["text"]: c["margin"] for c in registration["claims"] if c["relation"] == ">="}
    assert margins["TSP ≥ TSP w/o GVF (average mAP)"] == pytest.approx(1.875 / 2)
    digest = study.register(tmp_path, registration, results_exist=False)
    path = tmp_path / "preregistration.json"
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert study.register(tmp_path, registration, results_exist=True) == digest  # the same: fine
    changed = study.preregistration("tsp", CLAIMS[:-1], STUDY1, [0, 1, 2], budget="tiny",
                                    vary_data=True, benchmark_seed=0)
    with pytest.raises(InputError, match="pre-registered other claims, families and has results"):
        study.register(tmp_path, changed, results_exist=True)
    assert study.preregistration_hash(path) == digest  # untouched
    assert study.register(tmp_path, changed, results_exist=False) != digest  # no results yet: replaced


def test_aggregate_refuses_a_folder_of_two_code_versions(tmp_path):
    claims = [Claim("a > b", "a", "b", "average mAP", family="F")]
    conditions = [Condition(n, n.upper(), "random", False, weights=None) for n in ("a", "b")]
    study.register(tmp_path, study.preregistration("tsp", claims, conditions, [0], budget="tiny",
                                                   vary_data=True, benchmark_seed=0), results_exist=False)
    for name, fingerprint in (("a", "1" * 64), ("b", "2" * 64)):
        write_json_cell(tmp_path, name, 0, dict(status="finished", provenance=dict(fingerprint=fingerprint),
                                                metrics={"average mAP": 1.0}))
    with pytest.raises(InputError, match="2 code versions in one table .*a/seed0.*b/seed0"):
        study.aggregate(tmp_path, conditions, [0], claims=claims)
    assert not (tmp_path / "claims.csv").exists()
    with pytest.raises(InputError, match="its claims differ"):
        study.aggregate(tmp_path, conditions, [0], claims=[dataclasses.replace(claims[0], paper=1.0)])


def test_finished_cell_of_another_setting_is_refused_before_writing(tmp_path):
    cell = tmp_path / "random" / "seed0"
    cell.mkdir(parents=True)
    record = cell / "cell.json"
    record.write_text(json.dumps({"status": "finished", "identity": {"seed": 0, "budget": "default"}}))
    before = record.read_bytes()
    with pytest.raises(InputError, match="a finished cell of another setting"):
        study.run_study(tmp_path, "tiny", 1, ["random"])
    assert record.read_bytes() == before and not (tmp_path / "study.json").exists()


# --------------------------------------------------------------------------------------------
# A tiny study end to end

TEST_CONDITIONS = [
    Condition("random", "random init", "random", trains=False, weights=None),
    Condition("tac", "TAC from scratch", "tac", trains=True, weights=None),
    # fails in notebook 03's parameter check: the field does not exist (a bad parameter)
    Condition("bad", "bad parameter", "tac", trains=True, weights=None,
              pretrain=dict(config_overrides={"no_such_field": 1})),
]


def mtimes(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """Two conditions x two seeds on one fixed benchmark, two cells at a time; then again with a
    failing condition (the finished cells are skipped); then, one cell folder removed, the missing
    cell through submitit's local executor (Slurm's code path)."""
    import shutil

    mp = pytest.MonkeyPatch()
    mp.setitem(study.STUDIES, "tsp", (TEST_CONDITIONS, CLAIMS))
    out = tmp_path_factory.mktemp("study") / "tiny"
    argv = ["study", "--budget", "tiny", "--out", str(out), "--jobs", "2", "--seeds", "2", "--fixed-data"]
    first = cli.main([*argv, "--conditions", "random", "tac"])
    files = mtimes(out)
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        second = cli.main([*argv, "--conditions", "random", "tac", "bad"])
    after_second = mtimes(out)
    shutil.rmtree(out / "random" / "seed1")
    third = study.run_study(out, "tiny", 2, ["random"], launcher="slurm", vary_data=False,
                            slurm=SlurmOptions(cluster="local", time_min=10), available=TEST_CONDITIONS)
    mp.undo()
    return dict(out=out, first=first, second=second, third=third, files=files, after_second=after_second,
                printed=printed.getvalue(), errors=errors.getvalue())


@pytest.mark.slow
def test_tiny_study_runs_every_cell_with_its_notebooks(tiny_study):
    out = tiny_study["out"]
    assert tiny_study["first"] == 0
    for condition, notebooks in (("random", ["04_extract_features.ipynb", "05_localization.ipynb"]),
                                 ("tac", ["03_pretrain.ipynb", "04_extract_features.ipynb",
                                          "05_localization.ipynb"])):
        for seed in (0, 1):
            record = json.loads((out / condition / f"seed{seed}" / "cell.json").read_text())
            assert record["status"] == "finished" and record["notebooks"] == notebooks
            assert all((out / condition / f"seed{seed}" / nb).is_file() for nb in notebooks)
            metrics = record["metrics"]
            assert 0 <= metrics["average mAP"] <= 100 and 0 <= metrics["AUC"] <= 100
            assert {"mAP@0.50", "mAP@0.95", "AR@1", "AR@10", "AR@100", "mAP_N XS", "mAP_N XL",
                    "sensitivity", "probe sensitivity"} <= set(metrics)
            # provenance: the code, the libraries, the parameters as planned, the resolved configs
            assert record["provenance"]["fingerprint"] == code_fingerprint()
            assert set(record["provenance"]["versions"]) == {"python", "torch", "numpy"}
            assert [s["notebook"] for s in record["provenance"]["parameters"]] == notebooks
            assert set(record["configs"]) == ({"pretrain"} if condition == "tac" else set()) | {
                "extraction", "localizer"}
            assert record["configs"]["localizer"]["epochs"] == 2
    # seeds vary the training: the localizer (and the random encoder) differ between seeds
    a, b = (json.loads((out / "random" / f"seed{s}" / "cell.json").read_text())["metrics"] for s in (0, 1))
    assert a != b


@pytest.mark.slow
def test_a_failed_cell_is_recorded_the_others_go_on_and_the_exit_status_is_1(tiny_study):
    out = tiny_study["out"]
    assert tiny_study["second"] == 1
    record = json.loads((out / "bad" / "seed0" / "cell.json").read_text())
    assert record["status"] == "failed" and record["failed_notebook"] == "03_pretrain.ipynb"
    assert record["error"].startswith("03_pretrain.ipynb cell ") and "no_such_field" in record["error"]
    assert "\n" not in record["error"]
    assert (out / "bad" / "seed0" / "03_pretrain.ipynb").is_file()  # kept for inspection
    assert "2 of 6 cells did not finish" in tiny_study["errors"] and "bad/seed0" in tiny_study["errors"]
    assert "cells.csv" in tiny_study["errors"]


@pytest.mark.slow
def test_rerun_skips_finished_cells(tiny_study):
    assert "cells: 2 run now, 4 finished before" in tiny_study["printed"]
    before, after = tiny_study["files"], tiny_study["after_second"]
    cells = [p for p in before if p.parts[-3] in ("random", "tac")]
    assert cells and all(after[p] == before[p] for p in cells)  # not one file of a finished cell rewritten


@pytest.mark.slow
def test_submitit_local_executor_runs_only_the_missing_cell(tiny_study):
    result = tiny_study["third"]
    assert result.ran == ["random/seed1"] and result.skipped == ["random/seed0"]
    out = tiny_study["out"]
    assert json.loads((out / "random" / "seed1" / "cell.json").read_text())["status"] == "finished"
    assert any((out / "submitit").iterdir())  # the job's pickles and logs
    assert result.failed.empty and len(result.cells) == 2


@pytest.mark.slow
def test_aggregate_tables_in_tsp_layout_stamped_with_code_and_preregistration(tiny_study):
    out = tiny_study["out"]
    digest = hashlib.sha256((out / "preregistration.json").read_bytes()).hexdigest()
    registered = json.loads((out / "preregistration.json").read_text())
    assert registered["seeds"] == [0, 1] and len(registered["claims"]) == len(CLAIMS)
    table = pd.read_csv(out / "table.csv", index_col=0)
    assert list(table.columns) == ["random init"]  # the third call's conditions
    assert table.loc["average mAP", "random init"].count("±") == 1
    assert table.loc["preregistration sha256", "random init"] == digest
    assert table.loc["code fingerprint", "random init"] == code_fingerprint()
    cells = pd.read_csv(out / "cells.csv")
    assert cells["status"].tolist() == ["finished"] * 2 and (cells["preregistration"] == digest).all()
    claims = pd.read_csv(out / "claims.csv", keep_default_na=False)  # "n/a" as written, not NaN
    assert len(claims) == len(CLAIMS) and claims["verdict"].str.startswith("not measured").all()
    assert (claims["preregistration"] == digest).all() and (claims["fingerprint"] == code_fingerprint()).all()
    assert (claims["paper_in_interval"] == "n/a").all() and claims["test"].str.contains("Holm").all()
    assert (out / "study.png").stat().st_size > 0 and (out / "study.json").is_file()
    assert not (out / "claims.png").exists()  # no claim measured: no forest to draw
    assert os.path.isdir(out / "benchmark") and (out / "benchmark" / "benchmark.json").is_file()


def test_cells_run_seed_by_seed(tmp_path):
    """A study stopped part-way leaves whole seeds (every condition paired), not whole conditions."""
    specs = study.plan_cells(tmp_path / "s", "tiny", 2, get_conditions(["random", "tac_source"]))
    assert [(s.seed, s.condition.name) for s in specs] == [
        (0, "random"), (0, "tac_source"), (1, "random"), (1, "tac_source")]


def test_the_peers_are_compared_as_their_papers_compare_them():
    by_name = {c.name: c for c in PEERS}
    study1 = {c.name: c for c in STUDY1}
    for name in ("random", "tac_source", "tsp"):  # the same cells when run into one folder
        assert by_name[name] == study1[name]
    # BSP §3.4, §4.2: combined with the vanilla encoder pretrained on the source set, not on the target
    assert by_name["tac_source_bsp"].needs == ("tac_source", "bsp")
    assert by_name["tac_source_random"].needs == ("tac_source", "random")  # its control
    assert by_name["bsp_distill"].teachers_from == ("tac_source", "bsp")
    assert "tac_target" not in by_name
    # PAL §4.1.1: from random weights on the trimmed source set; the control differs only by pasting
    pal, control = by_name["pal"], by_name["pal_no_pasting"]
    assert (pal.weights, pal.pretrain_data, pal.trains) == (None, "source", True)
    assert dataclasses.replace(control, name="pal", label=pal.label, pretrain=pal.pretrain) == pal
    assert control.pretrain.parameters() == {**pal.pretrain.parameters(), "config_overrides": {"pasting": False}}
    assert by_name["pal_random"].pretrain_data == "target" and by_name["pal_source"].weights == "source"
    asl = {n: c.localizer.parameters() for n, c in by_name.items() if n.startswith("asl_")}
    assert asl == {"asl_full": {}, "asl_baseline": dict(ase_class=False, ase_instance=False, ascl=False),
                   "asl_no_ase_class": dict(ase_class=False), "asl_no_ase_instance": dict(ase_instance=False),
                   "asl_no_ascl": dict(ascl=False), "asl_stabilised": dict(ase_weighting="stabilised")}
    assert all(by_name[n].features_from == ("tsp",) for n in asl)
    claims = {(c.better, c.worse, c.metric): c for c in PEER_CLAIMS}
    assert claims[("tac_source_bsp", "tac_source", "average mAP")].paper == pytest.approx(33.96 - 33.59)  # BSP T5
    assert claims[("bsp_distill", "tac_source", "average mAP")].paper == pytest.approx(33.74 - 33.59)
    assert claims[("pal", "tac_source", "average mAP")].paper == pytest.approx(33.4 - 32.5)  # PAL Table 1
    assert claims[("pal", "tac_source", "AUC")].paper == pytest.approx(66.8 - 65.6)
    assert claims[("pal", "pal_no_pasting", "average mAP")].paper == pytest.approx(33.4 - 30.3)  # MoCo-v2
    assert claims[("asl_full", "asl_baseline", "average mAP")].paper == pytest.approx(67.9 - 66.8)  # THUMOS14
    assert claims[("asl_full", "asl_no_ascl", "average mAP")].paper is None  # MultiThumos only
    own = [c for c in PEER_CLAIMS if c.family == conditions_module.OWN]
    assert {(c.better, c.worse) for c in own} >= {("tac_source_bsp", "tac_source_random"), ("pal_random", "random"),
                                                  ("pal_source", "tac_source")}
    assert all(c.paper is None for c in own)


def test_a_distillation_cell_gets_its_teachers_and_waits_for_them(tmp_path, monkeypatch):
    by_name = {c.name: c for c in PEERS}
    out = tmp_path / "s"
    for name in ("tac_source", "bsp"):  # finished teachers at seed 3
        spec = spec_of(by_name[name])
        write_json_cell(out, name, 3, dict(status="finished", identity=spec.identity(),
                                            features=f"{name}/seed3/features/{by_name[name].method}"))
    distill = spec_of(by_name["bsp_distill"])
    assert study.runner._attach_inputs(distill, out) == ""
    # BSP §3.4: the teacher is TAC on Kinetics, here the source encoder itself; and the BSP run
    assert distill.teachers == {"tac_source": "/s/src/best.pt", "bsp": str(out / "bsp/seed3/pretrain/bsp")}
    overrides = cell_steps(distill)[0].parameters["config_overrides"]
    assert overrides["teachers"] == ["/s/src/best.pt", distill.teachers["bsp"]]
    assert overrides["integration"] == "distill"
    # Two-stream: notebook 05 reads TAC-on-source's and BSP's folders as one (no copy), TAC first.
    two_stream = spec_of(by_name["tac_source_bsp"])
    assert study.runner._attach_inputs(two_stream, out) == ""
    assert [s.notebook for s in cell_steps(two_stream)] == ["05_localization.ipynb"]
    assert cell_steps(two_stream)[0].parameters["feature_dirs"] == {"tac_source_bsp": [
        str(out / "tac_source/seed3/features/tac"), str(out / "bsp/seed3/features/bsp")]}
    # An input made by other code is not used.
    other = spec_of(by_name["tac_source_bsp"], fingerprint="f" * 64)
    assert "was made by other code" in study.runner._attach_inputs(other, out)
    # Waves: the teachers' cells first, the distillation after them, whatever the order given.
    waves = []
    monkeypatch.setattr(study.runner, "_attach_inputs", lambda spec, out: "")
    monkeypatch.setattr(study.runner, "_launch_local",
                        lambda specs, jobs: waves.append([s.condition.name for s in specs]))
    todo = [spec_of(by_name[n]) for n in ("bsp_distill", "tac_source_bsp", "bsp", "tac_source")]
    study.runner.run_waves(todo, out, 1, "local", SlurmOptions())
    assert waves == [["bsp", "tac_source"], ["bsp_distill", "tac_source_bsp"]]


def test_pal_pretrains_on_the_source_set_and_is_localized_on_the_target():
    by_name = {c.name: c for c in PEERS}
    steps = {s.notebook[:2]: s.parameters for s in cell_steps(spec_of(by_name["pal_no_pasting"]))}
    assert steps["03"]["dataset_dir"] == "/s/benchmark/source" and steps["03"]["weights"] is None
    assert steps["03"]["config_overrides"] == {"pasting": False}  # no target frame cache for source videos
    assert steps["04"]["dataset_dir"] == "/s/benchmark"
    assert steps["05"]["ground_truth"] == "/s/benchmark/annotations.json"
    target = {s.notebook[:2]: s.parameters for s in cell_steps(spec_of(by_name["pal_random"]))}
    assert target["03"]["dataset_dir"] == "/s/benchmark"
    with pytest.raises(InputError, match="pretrain_data 'source' but it does not train"):
        get_conditions(["x"], [Condition("x", "x", "tac", False, pretrain_data="source")])
    with pytest.raises(InputError, match="pretrain_data: 'kinetics'"):
        get_conditions(["x"], [Condition("x", "x", "tac", True, pretrain_data="kinetics")])


def test_a_cell_finished_before_a_condition_field_existed_is_still_reused(tmp_path):
    spec = spec_of(STUDY1[0])
    old = spec.identity()
    del old["condition"]["teachers_from"], old["condition"]["pretrain_data"]  # written before they existed
    assert study.with_defaults(old) == spec.identity()
    changed = {**old, "condition": {**old["condition"], "weights": "other"}}
    assert study.with_defaults(changed) != spec.identity()


def write_json_cell(out, condition, seed, record):
    folder = out / condition / f"seed{seed}"
    folder.mkdir(parents=True)
    (folder / "cell.json").write_text(json.dumps(record))


def test_a_second_study_in_the_same_folder_keeps_its_own_tables(tmp_path):
    """The peers reuse Study 1's cells in one folder; their tables must not overwrite Study 1's."""
    assert study.tables_dir(tmp_path, "tsp") == tmp_path
    assert study.tables_dir(tmp_path, "peers") == tmp_path / "peers"
    with pytest.raises(InputError, match="study: 'peer'"):
        study.run_study(tmp_path / "s", "tiny", 1, study="peer")
    assert not (tmp_path / "s").exists()


def test_the_forest_plot_draws_each_familys_claims_coloured_by_verdict():
    from tsplab.plots import plot_claims_forest

    cells = cells_frame({"a": [11.0, 12.2, 13.1, 13.9], "b": [10.0, 11.0, 12.0, 13.0], "c": [12.0] * 4})
    cells["sensitivity"] = [0.2, 0.3, 0.2, 0.3, 0.1, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0, 0.0]
    claims = claims_table(cells, [
        Claim("a > b", "a", "b", "average mAP", paper=0.5, family="F"),
        Claim("c >= b", "c", "b", "average mAP", ">=", margin=1.0, margin_reason="r", family="F"),
        Claim("b > a", "b", "a", "average mAP", family="G"),
        Claim("a more sensitive", "a", "b", "sensitivity", family="G")])
    fig = plot_claims_forest(claims)
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == [
        "F, percent points", "G, percent points", "G, sensitivity"]
    assert len(fig.axes) == 3 and [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a > b", "c >= b"]
    colours = {tuple(line.get_color()) if not isinstance(line.get_color(), str) else line.get_color()
               for line in fig.axes[0].lines}
    assert "tab:green" in colours and "tab:grey" in colours  # holds; inconclusive (2, 1, 0, -1 vs -1)
    assert "tab:red" in {line.get_color() for line in fig.axes[1].lines}  # b > a does not hold
    claims = claims_table(cells, [Claim("a > d", "a", "d", "average mAP", family="F")])  # d is no condition here
    assert [t.get_text() for t in plot_claims_forest(claims).axes[0].texts] == ["n/a: not measured (d not in this study)"]


def test_confirmatory_studies_vary_the_data_by_default():
    parser = cli.build_parser()
    assert parser.parse_args(["study", "--out", "x"]).vary_data is True
    assert parser.parse_args(["study", "--out", "x", "--fixed-data"]).vary_data is False
    assert parser.parse_args(["study", "--out", "x", "--keep-stale"]).keep_stale is True
    specs = study.plan_cells("/s", "tiny", 2, get_conditions(["random"]), vary_data=True)
    assert [(s.benchmark_dir, s.benchmark_seed) for s in specs] == [("/s/benchmark_seed0", 0),
                                                                     ("/s/benchmark_seed1", 1)]


def test_the_preregistration_is_written_before_any_cell_runs(tmp_path, monkeypatch):
    out, seen = tmp_path / "s", []
    monkeypatch.setattr(study.runner, "prepare_data",
                        lambda benchmarks, size, conditions, out: {f: (None, "") for f, _ in benchmarks.values()})
    monkeypatch.setattr(study.runner, "run_waves",
                        lambda todo, out, *rest: seen.append((out / "preregistration.json").is_file()))
    result = study.run_study(out, "tiny", 2, ["random"])
    assert seen == [True]
    assert result.preregistration == hashlib.sha256((out / "preregistration.json").read_bytes()).hexdigest()
    assert result.fingerprint == code_fingerprint() and result.cells["status"].tolist() == ["not run"] * 2
    write_json_cell(out, "tac_source", 0, dict(status="finished"))  # results exist now (another condition)
    with pytest.raises(InputError, match="pre-registered other seeds and has results"):
        study.run_study(out, "tiny", 3, ["random"])


# --- issue 22 -------------------------------------------------------------------------------------

def test_a_negative_benchmark_seed_names_the_flag_and_writes_nothing(tmp_path, capsys):
    """``--benchmark-seed -1`` said ``seed=-1`` and had written study.json first."""
    out = tmp_path / "study"
    assert cli.main(["study", "--budget", "tiny", "--conditions", "tac_source", "--seeds", "1", "--benchmark-seed",
                     "-1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("tsplab study: error: benchmark_seed (--benchmark-seed): -1; give the fixed benchmark's seed, "
                   "a whole number >= 0")
    assert not out.exists()


def test_a_second_study_into_a_folder_in_use_stops_with_one_line(tmp_path, capsys, unchanged):
    """Two studies into one folder both ran the same cell; the lock file names the owner."""
    out = tmp_path / "study"
    out.mkdir()
    with study.study_lock(out) as lock:
        assert lock.read_text() == f"{os.getpid()}\n"
        with unchanged(out):
            assert cli.main(["study", "--budget", "tiny", "--conditions", "tac_source", "--seeds", "1",
                             "--out", str(out)]) == 2
        assert capsys.readouterr().err.strip() == (
            f"tsplab study: error: out: {out} is in use by another study (process {os.getpid()}, {lock}); wait "
            "for it to finish, or give another --out")
    assert not lock.exists()
    lock.write_text("999999999\n")  # a killed study's lock: taken over
    with study.study_lock(out):
        assert lock.read_text() == f"{os.getpid()}\n"
    assert not lock.exists()


@pytest.mark.parametrize("record, named", [
    ({"status": "finished", "seconds": {}, "metrics": {"avg_mAP": "99.9"}}, 'metrics.avg_mAP is "99.9", not a number'),
    ({"status": "finished", "seconds": {}, "metrics": [1, 2]}, '"metrics" is list, not an object of numbers'),
    ({"metrics": {}}, 'not a cell record (no "status")'),
])
def test_a_tampered_cell_record_is_one_line_naming_the_field(tmp_path, record, named):
    write_json_cell(tmp_path, "tac_source", 0, record)
    path = tmp_path / "tac_source" / "seed0" / "cell.json"
    with pytest.raises(InputError, match=f"^{path}: {re.escape(named)}; rerun the cell"):
        study.cells_table(tmp_path, get_conditions(["tac_source"], STUDY1), 1)


def test_cli_study_with_stale_cells_kept_exits_1_naming_them(tmp_path, monkeypatch, capsys):
    """Kept with --keep-stale, cells of other code are out of every table: the study did not measure
    them, so the exit status says the work is incomplete and stderr names them."""
    from tsplab.study.statistics import CLAIM_COLUMNS

    cells = pd.DataFrame({"cell": ["tac_source/seed0", "tac_target/seed0"], "condition": ["tac_source", "tac_target"],
                          "seed": [0, 0], "status": ["finished", "stale"]})
    claims = pd.DataFrame(columns=CLAIM_COLUMNS).assign(test=[])
    result = study.StudyResult(tmp_path, cells, pd.DataFrame(), pd.DataFrame({"metric": []}), claims,
                               skipped=["tac_source/seed0"], stale=["tac_target/seed0"])
    monkeypatch.setattr(study, "run_study", lambda *args, **kwargs: result)
    assert cli.main(["study", "--out", str(tmp_path), "--keep-stale"]) == 1
    err = capsys.readouterr().err
    assert "1 of 2 cells are stale (made by other code, kept with --keep-stale) and left out of the tables: " \
           "tac_target/seed0;" in err
    result.stale = []
    assert cli.main(["study", "--out", str(tmp_path)]) == 0


def test_a_conditions_unknown_field_fails_where_it_is_defined():
    with pytest.raises(InputError, match=r"condition 'x': pretrain sets 'gvf_poolng', not a parameter"):
        Condition("x", "x", "tsp", True, pretrain=dict(gvf_poolng="max"))
    with pytest.raises(InputError, match=r"condition 'y': localizer sets 'asc', not a parameter"):
        Condition("y", "y", "tsp", False, weights=None, features_from=("tsp",), localizer=dict(asc=False))


def test_a_condition_may_not_set_what_the_study_sets():
    with pytest.raises(InputError, match=r"condition 'x': sets seed, which the study sets for every cell"):
        Condition("x", "x", "tac", True, pretrain=dict(seed=3))


def test_the_fields_a_condition_may_set_are_its_notebooks_parameters():
    from tsplab.conditions import LocalizerDelta, PretrainDelta

    def declared(notebook):
        cell = next(c for c in nbformat.read(notebooks_dir() / notebook, 4).cells if c.cell_type == "code")
        return {node.targets[0].id for node in ast.parse(cell.source).body}

    assert {f.name for f in dataclasses.fields(PretrainDelta)} <= declared("03_pretrain.ipynb")
    assert {f.name for f in dataclasses.fields(LocalizerDelta)} <= declared("05_localization.ipynb")


def test_every_condition_derives_the_notebook_parameters_it_was_defined_with():
    """The typed deltas give back exactly the dicts the conditions are written with."""
    from tsplab.conditions import ALL_CONDITIONS

    by_name = {c.name: c for c in ALL_CONDITIONS}
    pal = dict(batch_size=16, epochs=6)
    expected_pretrain = dict(tsp_no_gvf=dict(method_options=dict(gvf_pooling="none")),
                             tsp=dict(method_options=dict(gvf_pooling="max")),
                             tsp_avg_gvf=dict(method_options=dict(gvf_pooling="avg")),
                             bsp_two_head=dict(config_overrides=dict(integration="two-head")),
                             bsp_distill=dict(config_overrides=dict(integration="distill")),
                             pal=pal, pal_no_pasting={**pal, "config_overrides": dict(pasting=False)},
                             pal_random=pal, pal_source=pal)
    for name, condition in by_name.items():
        assert list(condition.pretrain.parameters().items()) == list(expected_pretrain.get(name, {}).items())
    assert list(by_name["asl_baseline"].localizer.parameters()) == ["ase_class", "ase_instance", "ascl"]


def _notebook03_configs(parameters: dict) -> dict:
    """Notebook 03's configs as its parameters and check cells build them, papermill-style: the
    parameters cell, the injected ``# Parameters`` cell, then the check cell (``In`` as the kernel
    keeps it, so the notebook's unknown-parameter check runs too)."""
    cells = [c.source for c in nbformat.read(notebooks_dir() / "03_pretrain.ipynb", as_version=4).cells
             if c.cell_type == "code"][:2]
    injected = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
    namespace: dict = {}
    for source in (cells[0], injected):
        exec(source, namespace)
    namespace["In"] = [cells[0], injected, cells[1]]
    exec(cells[1], namespace)
    return namespace["configs"], namespace["settings"]


def test_every_condition_pretrains_with_the_options_it_had_before_method_options():
    """Notebook 03's one ``method_options`` parameter gives every study condition the PretrainConfig
    that the former TSP-only parameters (alpha_c, alpha_r, gvf_pooling, gvf_mode) gave it."""
    from tsplab.conditions import ALL_CONDITIONS
    from tsplab.pretrain.methods.tsp import TSPOptions
    from tsplab.pretrain.config import option_fields
    from tsplab.pretrain.recipes import pretrain_config

    pooling = dict(tsp_no_gvf="none", tsp="max", tsp_avg_gvf="avg")
    trained = 0
    for condition in ALL_CONDITIONS:
        spec = spec_of(condition, teachers={n: f"/t/{n}" for n in condition.teachers_from},
                       inputs={n: f"/i/{n}" for n in condition.features_from})
        for step in cell_steps(spec):
            if not step.notebook.startswith("03"):
                continue
            trained += 1
            configs, settings = _notebook03_configs(step.parameters)
            before = dict(alpha_c=1.0, alpha_r=1.0, gvf_pooling=pooling.get(condition.name, "max"), gvf_mode="frozen")
            recipe = step.parameters.get("pretrain_recipe", "synthetic")
            own = {f.name for f in option_fields(condition.method)}  # the former path: TSP's options to TSP only
            expected = pretrain_config(recipe, method=condition.method, **settings,
                                       **{k: v for k, v in before.items() if k in own})
            assert configs == {condition.method: expected}, condition.name
            if condition.method == "tsp":
                assert configs["tsp"].options == TSPOptions(gvf_pooling=pooling[condition.name]), condition.name
    assert trained >= len(pooling) + 4
    with pytest.raises(InputError, match=r"method_options: 'gvf_pool' is no option of tsp; valid: tsp: alpha_c, "):
        _notebook03_configs(dict(method="tsp", dataset_dir="/x", method_options={"gvf_pool": "avg"}))
    with pytest.raises(InputError, match=r"gvf_pooling: 'sum' is not a valid choice; valid: max, avg, none"):
        _notebook03_configs(dict(method=["tac", "tsp"], dataset_dir="/x", method_options={"gvf_pooling": "sum"}))
