"""tsplab.study: the claims' statistics against hand-computed values, TSP's table layout, the
conditions' checks and the notebook parameters of each cell; then a tiny study run end to end through
the CLI (processes, resume, a failing cell, exit 1) and through submitit's local executor."""
from __future__ import annotations

import ast
import contextlib
import io
import json
import os

import nbformat
import numpy as np
import pandas as pd
import pytest

from tsplab import cli, study
from tsplab import conditions as conditions_module
from tsplab.conditions import CLAIMS, PEER_CLAIMS, PEERS, STUDIES, STUDY1, Claim, Condition, get_conditions
from tsplab.errors import InputError
from tsplab.pipeline import notebooks_dir
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


def test_largest_gain_claim_compares_the_bucket_with_the_best_other():
    claim = Claim("XS gains most", "tsp", "tac", "mAP_N XS", versus=("mAP_N S", "mAP_N L"))
    rows = []
    for seed, (xs, s, l) in enumerate([(5, 1, 2), (4, 3, 0), (6, 2, 5)]):  # gains of tsp over tac
        rows.append(dict(condition="tac", seed=seed, status="finished", **{"mAP_N XS": 10.0, "mAP_N S": 10.0,
                                                                          "mAP_N L": 10.0}))
        rows.append(dict(condition="tsp", seed=seed, status="finished",
                         **{"mAP_N XS": 10.0 + xs, "mAP_N S": 10.0 + s, "mAP_N L": 10.0 + l}))
    d = study.claim_differences(pd.DataFrame(rows), claim)
    assert d.tolist() == [3.0, 1.0, 1.0]  # 5 - 2, 4 - 3, 6 - 5
    rows[-1]["mAP_N L"] = np.nan  # an empty bucket at seed 2 leaves the max of the others
    rows[-1]["mAP_N XS"] = 13.0
    assert study.claim_differences(pd.DataFrame(rows), claim).tolist() == [3.0, 1.0, 1.0]  # 3 - 2


@pytest.mark.parametrize("name", list(STUDIES))
def test_every_claim_names_conditions_and_metrics_of_its_study(name):
    conditions, claims = STUDIES[name]
    names = {c.name for c in conditions}
    assert get_conditions(sorted(names), conditions)  # every condition passes its checks
    metrics = {"average mAP", "AUC", "sensitivity", *conditions_module._BUCKETS}
    for claim in claims:
        assert {claim.better, claim.worse} <= names and {claim.metric, *claim.versus} <= metrics


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
    assert cli.main(["study", "--preset", "tiny", "--conditions", "tsp", "tps", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("tsplab study: error: conditions: 'tps'")
    assert all(c.name in err for c in STUDY1)
    assert not out.exists()


@pytest.mark.parametrize("condition, message", [
    (Condition("x", "x", "tac", True, pretrain=dict(seed=3)), "sets seed"),
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
    return CellSpec(condition=condition, seed=seed, study_dir="/s", study_preset="default",
                    benchmark_dir="/s/benchmark", benchmark_seed=0, source_checkpoint="/s/src/best.pt",
                    threads=2, frame_cache_dir="/s/frame_cache/benchmark", **kw)


@pytest.mark.parametrize("condition", STUDY1 + PEERS[4:], ids=lambda c: c.name)
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
    assert steps["03"]["gvf_pooling"] == "none" and steps["03"]["weights"] == "/s/src/best.pt"
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


def test_finished_cell_of_another_setting_is_refused_before_writing(tmp_path):
    cell = tmp_path / "random" / "seed0"
    cell.mkdir(parents=True)
    record = cell / "cell.json"
    record.write_text(json.dumps({"status": "finished", "identity": {"seed": 0, "study_preset": "default"}}))
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
    """Two conditions x two seeds, two cells at a time; then again with a failing condition at seed 0
    (the finished cells are skipped); then one more seed of one condition through submitit's local
    executor (Slurm's code path)."""
    mp = pytest.MonkeyPatch()
    mp.setitem(study.STUDIES, "tsp", (TEST_CONDITIONS, CLAIMS))
    out = tmp_path_factory.mktemp("study") / "tiny"
    argv = ["study", "--preset", "tiny", "--out", str(out), "--jobs", "2"]
    first = cli.main([*argv, "--seeds", "2", "--conditions", "random", "tac"])
    files = mtimes(out)
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        second = cli.main([*argv, "--seeds", "1", "--conditions", "random", "tac", "bad"])
    after_second = mtimes(out)
    third = study.run_study(out, "tiny", [0, 1, 2], ["random"], launcher="slurm",
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
    assert "1 of 3 cells did not finish" in tiny_study["errors"] and "bad/seed0" in tiny_study["errors"]
    assert "cells.csv" in tiny_study["errors"]


@pytest.mark.slow
def test_rerun_skips_finished_cells(tiny_study):
    assert "cells: 1 run now, 2 finished before" in tiny_study["printed"]
    before, after = tiny_study["files"], tiny_study["after_second"]
    cells = [p for p in before if p.parts[-3] in ("random", "tac")]
    assert cells and all(after[p] == before[p] for p in cells)  # not one file of a finished cell rewritten


@pytest.mark.slow
def test_submitit_local_executor_runs_only_the_missing_cell(tiny_study):
    result = tiny_study["third"]
    assert result.ran == ["random/seed2"] and result.skipped == ["random/seed0", "random/seed1"]
    out = tiny_study["out"]
    assert json.loads((out / "random" / "seed2" / "cell.json").read_text())["status"] == "finished"
    assert any((out / "submitit").iterdir())  # the job's pickles and logs
    assert result.failed.empty and len(result.cells) == 3


@pytest.mark.slow
def test_aggregate_tables_in_tsp_layout(tiny_study):
    out = tiny_study["out"]
    table = pd.read_csv(out / "table.csv", index_col=0)
    assert list(table.columns) == ["random init"]  # the third call's conditions
    assert table.loc["average mAP", "random init"].count("±") == 1
    cells = pd.read_csv(out / "cells.csv")
    assert cells["status"].tolist() == ["finished"] * 3
    claims = pd.read_csv(out / "claims.csv")
    assert len(claims) == len(CLAIMS) and claims["verdict"].str.startswith("not measured").all()
    assert (out / "study.png").stat().st_size > 0 and (out / "study.json").is_file()
    assert os.path.isdir(out / "benchmark") and (out / "benchmark" / "benchmark.json").is_file()


def test_cells_run_seed_by_seed(tmp_path):
    """A study stopped part-way leaves whole seeds (every condition paired), not whole conditions."""
    specs = study.plan_cells(tmp_path / "s", "tiny", 2, get_conditions(["random", "tac_source"]))
    assert [(s.seed, s.condition.name) for s in specs] == [
        (0, "random"), (0, "tac_source"), (1, "random"), (1, "tac_source")]


def test_the_peers_reuse_study1s_conditions_and_name_what_they_need():
    by_name = {c.name: c for c in PEERS}
    study1 = {c.name: c for c in STUDY1}
    for name in ("random", "tac_source", "tac_target", "tsp"):  # the same cells when run into one folder
        assert by_name[name] == study1[name]
    assert by_name["tac_bsp"].needs == ("tac_target", "bsp")  # BSP §3.4 two-stream: TAC first
    assert by_name["tac_random"].needs == ("tac_target", "random")  # its control
    assert by_name["bsp_distill"].teachers_from == ("tac_target", "bsp")
    assert by_name["pal_random"].weights is None and by_name["pal_source"].weights == "source"
    asl = {n: c.localizer for n, c in by_name.items() if n.startswith("asl_")}
    assert asl == {"asl_full": {}, "asl_baseline": dict(ase_class=False, ase_instance=False, ascl=False),
                   "asl_no_ase_class": dict(ase_class=False), "asl_no_ase_instance": dict(ase_instance=False),
                   "asl_no_ascl": dict(ascl=False), "asl_stabilised": dict(ase_weighting="stabilised")}
    assert all(by_name[n].features_from == ("tsp",) for n in asl)
    claims = {(c.better, c.worse, c.metric): c.paper for c in PEER_CLAIMS}
    assert claims[("tac_bsp", "tac_target", "average mAP")] == pytest.approx(33.96 - 33.59)  # BSP Table 5
    assert claims[("asl_full", "asl_baseline", "average mAP")] == pytest.approx(25.5 - 23.4)  # ASL Table 5
    assert claims[("asl_full", "asl_no_ascl", "average mAP")] == pytest.approx(25.5 - 25.0)


def test_a_distillation_cell_gets_its_teachers_runs_and_waits_for_them(tmp_path, monkeypatch):
    by_name = {c.name: c for c in PEERS}
    out = tmp_path / "s"
    for name in ("tac_target", "bsp"):  # finished teachers at seed 3
        spec = spec_of(by_name[name])
        write_json_cell(out, name, 3, dict(status="finished", identity=spec.identity(),
                                            features=f"{name}/seed3/features/{by_name[name].method}"))
    distill = spec_of(by_name["bsp_distill"])
    assert study._attach_inputs(distill, out) == ""
    assert distill.teachers == {"tac_target": str(out / "tac_target/seed3/pretrain/tac"),
                                "bsp": str(out / "bsp/seed3/pretrain/bsp")}
    overrides = cell_steps(distill)[0].parameters["config_overrides"]
    assert overrides["teachers"] == [distill.teachers["tac_target"], distill.teachers["bsp"]]
    assert overrides["integration"] == "distill"
    # Two-stream: notebook 05 reads TAC's and BSP's folders as one (no copy), TAC first.
    two_stream = spec_of(by_name["tac_bsp"])
    assert study._attach_inputs(two_stream, out) == ""
    assert [s.notebook for s in cell_steps(two_stream)] == ["05_localization.ipynb"]
    assert cell_steps(two_stream)[0].parameters["feature_dirs"] == {"tac_bsp": [
        str(out / "tac_target/seed3/features/tac"), str(out / "bsp/seed3/features/bsp")]}
    # Waves: the teachers' cells first, the distillation after them, whatever the order given.
    waves = []
    monkeypatch.setattr(study, "_attach_inputs", lambda spec, out: "")
    monkeypatch.setattr(study, "_launch_local", lambda specs, jobs: waves.append([s.condition.name for s in specs]))
    todo = [spec_of(by_name[n]) for n in ("bsp_distill", "tac_bsp", "bsp", "tac_target")]
    study._run_waves(todo, out, 1, "local", SlurmOptions())
    assert waves == [["bsp", "tac_target"], ["bsp_distill", "tac_bsp"]]


def test_a_cell_finished_before_a_condition_field_existed_is_still_reused(tmp_path):
    spec = spec_of(STUDY1[0])
    old = spec.identity()
    del old["condition"]["teachers_from"]  # written before teachers_from existed
    assert study._with_defaults(old) == spec.identity()
    changed = {**old, "condition": {**old["condition"], "weights": "other"}}
    assert study._with_defaults(changed) != spec.identity()


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
