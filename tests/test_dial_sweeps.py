"""Dial sweeps: the benchmark's dials through the whole path, the sweep's planning and
pre-registration, the dose-response statistics against hand calculations, and its tables from
fabricated cells (a real sweep is too slow for the unit suite)."""
from __future__ import annotations

import ast
import json

import nbformat
import numpy as np
import pandas as pd
import pytest

from tsplab import study
from tsplab.benchmark import check_benchmark_options, ensure_benchmark, generate_benchmark, read_benchmark_config
from tsplab.dial_predictions import (DIAL_PREDICTIONS, DIAL_SWEEPS, DialPrediction, check_predictions,
                                     dial_predictions, sweep_levels)
from tsplab.errors import InputError
from tsplab.pipeline import notebooks_dir
from tsplab.study import dial_statistics as ds
from tsplab.study import sweep
from tsplab.study.cells import cell_steps


def _parameters_of(notebook: str) -> dict:
    cell = next(c for c in nbformat.read(notebooks_dir() / notebook, 4).cells if c.cell_type == "code")
    return {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body}


# --- the benchmark's dials through the path -------------------------------------------------------

def test_a_dial_benchmark_resumes_with_its_dials_and_is_refused_with_others_naming_them(tmp_path):
    folder = tmp_path / "bench"
    ensure_benchmark(folder, "tiny", 0, dials={"onset_cue": 0.5}, workers=1, progress=False)
    assert read_benchmark_config(folder)[0].dials.onset_cue == 0.5
    ensure_benchmark(folder, "tiny", 0, dials={"onset_cue": 0.5}, workers=1, progress=False)  # same: left as is
    with pytest.raises(InputError, match=r"dials: onset_cue 0.5 there, 0.0 asked"):
        ensure_benchmark(folder, "tiny", 0, workers=1, progress=False)  # the plain benchmark is another one
    with pytest.raises(InputError, match=r"dials: dense 0.0 there, 0.5 asked"):
        generate_benchmark(folder, "tiny", 0, workers=1, progress=False, dials={"onset_cue": 0.5, "dense": 0.5})
    with pytest.raises(InputError, match=r"seed 0 there, 1 asked"):
        ensure_benchmark(folder, "tiny", 1, dials={"onset_cue": 0.5}, workers=1, progress=False)


def test_benchmark_options_are_checked_at_once_naming_the_parameter():
    assert check_benchmark_options({}) is None
    assert check_benchmark_options({"dense": 0.5}).dense == 0.5
    with pytest.raises(InputError, match="benchmark_options: dials: unknown dial 'denser'"):
        check_benchmark_options({"denser": 0.5})
    with pytest.raises(InputError, match=r"benchmark_options: dense=2: must be in \[0, 1\]"):
        check_benchmark_options({"dense": 2})
    with pytest.raises(InputError, match="give a dict"):
        check_benchmark_options("dense=0.5")


@pytest.mark.parametrize("notebook", ["01_dataset_prep.ipynb", "03_pretrain.ipynb", "04_extract_features.ipynb"])
def test_notebooks_declare_benchmark_options_off_by_default(notebook):
    assert _parameters_of(notebook)["benchmark_options"] == {}


# --- the predictions as data ----------------------------------------------------------------------

def test_every_prediction_is_judgeable_and_its_sweep_runs_its_conditions():
    check_predictions(DIAL_PREDICTIONS)
    for p in DIAL_PREDICTIONS:
        assert p.dial in DIAL_SWEEPS and {p.better, p.worse} <= set(DIAL_SWEEPS[p.dial].conditions), p.text
        assert p.at_level is None or p.at_level in DIAL_SWEEPS[p.dial].levels, p.text
    for name, s in DIAL_SWEEPS.items():
        assert s.dial == name and len(s.levels) >= 3 and dial_predictions(name)
        sweep_levels(name, s.levels, s.fixed)  # every level a valid benchmark
        sweep.sweep_conditions(name)  # their needs included
    assert DIAL_SWEEPS["source_shift"].fixed == {"source_shared_motions": 0.5}
    assert DIAL_SWEEPS["cuts_at_boundaries"].fixed["multi_action"] > 0
    assert DIAL_SWEEPS["cuts_elsewhere"].fixed["multi_action"] > 0


@pytest.mark.parametrize("prediction, message", [
    (DialPrediction("x", "dense", "tsp", "tac_target", "rises"), "shape 'rises'"),
    (DialPrediction("x", "dense", "tsp", "tac_target", "about 0", at_level=0.0), "needs a margin"),
    (DialPrediction("x", "dense", "tsp", "tac_target", "grows", margin=1.0, margin_reason="r"), "takes no margin"),
    (DialPrediction("x", "dense", "tsp", "tac_target", "about 0", margin=1.0, margin_reason="r"), "needs at_level"),
    (DialPrediction("x", "dense", "tsp", "tac_target", "at most 0", at_level=2.0, margin=1.0, margin_reason="r"),
     r"dense=2: must be in \[0, 1\]"),
    (DialPrediction("x", "dens", "tsp", "tac_target", "grows"), "unknown dial 'dens'"),
])
def test_predictions_that_cannot_be_judged_are_refused(prediction, message):
    with pytest.raises(InputError, match=message):
        check_predictions([prediction])


def test_sweep_levels_are_checked():
    assert sweep_levels("source_shift", [0, 1], {"source_shared_motions": 0.5}) == [
        {"source_shift": 0.0, "source_shared_motions": 0.5}, {"source_shift": 1.0, "source_shared_motions": 0.5}]
    for levels, fixed, message in [([0.5], {}, "at least two distinct"), ([0, 0], {}, "at least two distinct"),
                                   ([0, 2], {}, r"must be in \[0, 1\]"),
                                   ([0, 1], {"dense": 0.5}, "cannot be fixed too")]:
        with pytest.raises(InputError, match=message):
            sweep_levels("dense", levels, fixed)


# --- statistics against hand calculations ---------------------------------------------------------

def _t2_sf(t: float) -> float:
    """P(T_2 >= t): Student's t with 2 degrees of freedom has the closed form 1/2 (1 - t / sqrt(t^2 + 2))."""
    return 0.5 * (1 - t / np.sqrt(t * t + 2))


HAND = pd.DataFrame(dict(seed=[0, 0, 0, 1, 1, 1, 2, 2, 2], level=[0.0, 0.5, 1.0] * 3,
                         difference=[0, 1, 2, 1, 1, 2, 0, 2, 3]))


def test_slope_test_against_hand_calculation():
    # seed 0: 0,1,2 -> slope 2; seed 1: 1,1,2 -> (-.5 * -1/3 + .5 * 2/3) / .5 = 1; seed 2: 0,2,3 -> 3
    slopes = ds.seed_slopes(HAND)
    assert slopes.tolist() == pytest.approx([2.0, 1.0, 3.0])
    t = 2.0 / (1.0 / np.sqrt(3))  # mean 2, sd 1, n 3
    assert ds.one_sided_p(slopes) == pytest.approx(_t2_sf(t), rel=1e-9)
    assert ds.p_below(slopes) == pytest.approx(1 - _t2_sf(t), rel=1e-9)
    assert np.isnan(ds.ls_slope([0.5], [1.0]))


def test_tost_and_non_superiority_against_hand_calculation():
    values = [0.1, -0.1, 0.3]  # mean 0.1, sd 0.2, se 0.2 / sqrt(3)
    se = 0.2 / np.sqrt(3)
    lower, upper = _t2_sf((0.1 + 1) / se), _t2_sf((1 - 0.1) / se)  # H0: mean <= -1; H0: mean >= 1
    assert ds.tost_p(values, 1.0) == pytest.approx(max(lower, upper), rel=1e-9)
    assert ds.tost_p(values, 0.05) > 0.5  # the mean lies outside a margin of 0.05
    assert ds.p_below(values, 0.2) == pytest.approx(_t2_sf((0.2 - 0.1) / se), rel=1e-9)
    assert ds.tost_p([0.0, 0.0], 0.1) == 0.0 and ds.tost_p([0.2, 0.2], 0.1) == 1.0


def _cells(differences: dict, better="tsp", worse="tsp_no_gvf") -> pd.DataFrame:
    """Fabricated finished cells: ``{level: [difference per seed]}`` as better - worse on average mAP."""
    rows = []
    for level, values in differences.items():
        for seed, d in enumerate(values):
            rows += [dict(level=level, condition=better, seed=seed, status="finished", **{"average mAP": 10 + d}),
                     dict(level=level, condition=worse, seed=seed, status="finished", **{"average mAP": 10.0})]
    return pd.DataFrame(rows)


def test_dose_response_and_verdicts_from_fabricated_cells():
    cells = _cells({0.0: [0, 1, 0], 0.5: [1, 1, 2], 1.0: [2, 2, 3]})  # the hand table, by level
    grows = DialPrediction("grows", "context_distractors", "tsp", "tsp_no_gvf", "grows")
    flat = DialPrediction("flat", "context_distractors", "tsp", "tsp_no_gvf", "flat", margin=0.5,
                          margin_reason="r")
    about = DialPrediction("about 0", "context_distractors", "tsp", "tsp_no_gvf", "about 0", at_level=0.0,
                           margin=2.0, margin_reason="r")
    absent = DialPrediction("absent", "context_distractors", "bsp", "tsp", "grows")
    dose = ds.dose_response_table(cells, [grows])
    assert dose["level"].tolist() == [0.0, 0.5, 1.0] and dose["n"].tolist() == [3, 3, 3]
    assert dose["difference"].tolist() == pytest.approx([1 / 3, 4 / 3, 7 / 3])
    table = ds.predictions_table(cells, [grows, flat, about, absent]).set_index("prediction")
    assert table.loc["grows", "estimate"] == pytest.approx(2.0)
    assert table.loc["grows", "p"] == pytest.approx(_t2_sf(2 * np.sqrt(3)))
    # Holm over the family of four (the absent one counts as p = 1): "about 0" has the smallest p
    # (TOST at level 0: mean 1/3, se 1/3, margin 2 -> P(T_2 >= 5)), "grows" the second
    assert table.loc["about 0", "p"] == pytest.approx(_t2_sf(5.0), rel=1e-9)
    assert table.loc["about 0", "p_holm"] == pytest.approx(4 * _t2_sf(5.0))
    assert table.loc["grows", "p_holm"] == pytest.approx(3 * _t2_sf(2 * np.sqrt(3)))
    assert table.loc["flat", "verdict"] == "fails"  # slope 2 is far outside ±0.5
    assert table.loc["about 0", "statistic"] == "difference at level 0"
    assert table.loc["absent", "verdict"] == "not measured"
    assert set(table["verdict"]) <= {"holds", "fails", "not measured"}


# --- planning, pre-registration and tables ---------------------------------------------------------

def test_a_sweep_plans_a_study_folder_per_level_with_its_dials_in_each_identity(tmp_path):
    conditions = sweep.sweep_conditions("source_shift")
    plans = sweep.plan_sweep(tmp_path, "tiny", 2, conditions, "source_shift", [0, 0.5, 1],
                             {"source_shared_motions": 0.5})
    assert list(plans) == [0.0, 0.5, 1.0]
    spec = plans[0.5][0]
    assert spec.cell_dir == tmp_path / "source_shift=0.5" / spec.condition.name / "seed0"
    assert spec.benchmark_dir == str(tmp_path / "source_shift=0.5" / "benchmark_seed0") and spec.benchmark_seed == 0
    assert spec.identity()["benchmark_options"] == {"source_shift": 0.5, "source_shared_motions": 0.5}
    assert len({json.dumps(plans[level][0].identity()) for level in plans}) == 3  # the level is in the identity
    fixed = sweep.plan_sweep(tmp_path, "tiny", 2, conditions, "source_shift", [0, 1], vary_data=False)
    assert {s.benchmark_dir for s in fixed[1.0]} == {str(tmp_path / "source_shift=1" / "benchmark")}
    # without dials, nothing changes: no benchmark_options in the identity or the parameters
    plain = study.plan_cells(tmp_path, "tiny", 1, conditions)[0]
    assert "benchmark_options" not in plain.identity()
    assert all("benchmark_options" not in s.parameters for s in cell_steps(plain))


@pytest.mark.parametrize("name", sorted(DIAL_SWEEPS))
def test_sweep_cells_pass_the_level_to_the_notebooks_that_read_the_benchmark(tmp_path, name):
    s = DIAL_SWEEPS[name]
    for spec in sweep.plan_sweep(tmp_path, "tiny", 1, sweep.sweep_conditions(name), name, s.levels, s.fixed)[
            s.levels[1]]:
        spec.source_checkpoint = "/src/best.pt"
        spec.inputs = {n: f"/i/{n}" for n in spec.condition.features_from}
        spec.teachers = {n: f"/t/{n}" for n in spec.condition.teachers_from}
        for step in cell_steps(spec):
            assert set(step.parameters) <= set(_parameters_of(step.notebook)), step.notebook
            if step.notebook.startswith(("03", "04")):
                assert step.parameters["benchmark_options"] == {name: s.levels[1], **s.fixed}


def _no_cells(monkeypatch, seen):
    monkeypatch.setattr(sweep, "prepare_data", lambda benchmarks, *a, **k: {f: (None, "") for f, _ in
                                                                              benchmarks.values()})
    monkeypatch.setattr(sweep, "run_waves",
                        lambda todo, out, *rest: seen.append((out.parent / "preregistration.json").is_file()))


def test_the_sweep_preregisters_its_predictions_before_any_cell(tmp_path, monkeypatch):
    out, seen = tmp_path / "s", []
    _no_cells(monkeypatch, seen)
    result = sweep.run_dial_study(out, "context_distractors", seeds=2)
    assert seen == [True, True, True]  # one wave call per level, each after the pre-registration
    registered = json.loads((out / "preregistration.json").read_text())
    assert registered["study"] == "dials" and registered["levels"] == [0.0, 0.5, 1.0]
    assert registered["families"] == {"context_distractors": 1} and registered["fixed"] == {}
    assert registered["predictions"][0]["shape"] == "grows"
    assert [c["name"] for c in registered["conditions"]] == ["tsp_no_gvf", "tsp"]
    assert set(result.cells["cell"]) >= {"context_distractors=0.5/tsp/seed1"}
    assert (out / "dose_response.csv").is_file() and (out / "predictions.csv").is_file()
    assert result.predictions["verdict"].tolist() == ["not measured"]
    # results exist now (a finished cell of a level): another level set is refused
    folder = out / "context_distractors=0" / "tsp" / "seed0"
    folder.mkdir(parents=True)
    (folder / "cell.json").write_text(json.dumps(dict(status="finished")))
    with pytest.raises(InputError, match="pre-registered other levels and has results"):
        sweep.run_dial_study(out, "context_distractors", [0.25, 1], seeds=2)


def test_a_plain_study_keeps_its_preregistration_bytes(tmp_path, monkeypatch):
    """Without a dial nothing changes: the plain pre-registration has no dial key."""
    registration = study.preregistration("tsp", study.CLAIMS, study.STUDIES["tsp"][0], [0, 1], budget="tiny",
                                         vary_data=True, benchmark_seed=0)
    assert not {"dial", "levels", "predictions"} & set(registration)


def test_sweep_tables_from_fabricated_cells(tmp_path, monkeypatch):
    out, seen = tmp_path / "s", []
    _no_cells(monkeypatch, seen)
    first = sweep.run_dial_study(out, "onset_cue", [0, 1], seeds=2)
    for level, (tsp, tac) in {0.0: ((12, 13), (10, 10)), 1.0: ((11, 11.5), (10, 10))}.items():
        for spec in first.cells[first.cells["level"] == level].itertuples():
            record = dict(status="finished", condition=spec.condition, seed=spec.seed, seconds={},
                          provenance=dict(fingerprint=first.fingerprint),
                          metrics={"average mAP": float((tsp if spec.condition == "tsp" else tac)[spec.seed])})
            (out / spec.cell / "cell.json").parent.mkdir(parents=True, exist_ok=True)
            (out / spec.cell / "cell.json").write_text(json.dumps(record))
    result = sweep.aggregate_sweep(out, sweep.sweep_conditions("onset_cue"), 2, fingerprint=first.fingerprint)
    assert result.dose["difference"].tolist() == pytest.approx([2.5, 1.25])
    row = result.predictions.iloc[0]
    assert row["statistic"] == "slope per unit of level" and row["estimate"] == pytest.approx(-1.25)
    assert row["n"] == 2 and row["verdict"] in ("holds", "fails")
    assert (out / "dose_response.png").is_file()
    saved = pd.read_csv(out / "predictions.csv")
    assert saved["preregistration"].iat[0] == result.preregistration


# --- the command line --------------------------------------------------------------------------------

def test_cli_sweep_flags_are_checked_before_anything_is_written(tmp_path, capsys):
    from tsplab.cli import main
    from tsplab.cli.batch import DIALS_STUDY

    assert DIALS_STUDY == sweep.DIALS_STUDY
    out = tmp_path / "s"
    for argv, message in [(["--benchmark-option", "dense=0,2"], "dense=2: must be in [0, 1]"),
                          (["--benchmark-option", "dense=0,x"], "levels must be numbers"),
                          (["--benchmark-option", "dense", "--benchmark-fixed", "multi_action"], "give DIAL=LEVEL"),
                          ([], "give the dial to sweep"),
                          (["--benchmark-option", "loudness=0,1"], "--benchmark-option loudness: unknown dial; valid: "
                                                                    "context_distractors,"),
                          (["--benchmark-option", "source_shared_motions=0,1"], "no default conditions")]:
        assert main(["study", "--study", "dials", "--out", str(out), "--budget", "tiny", *argv]) == 2
        assert message in capsys.readouterr().err
    assert main(["study", "--out", str(out), "--benchmark-option", "dense=0,1"]) == 2
    assert "a dial sweep is --study dials" in capsys.readouterr().err
    assert not out.exists()


def test_cli_sweep_runs_the_dials_default_conditions_and_prints_its_tables(tmp_path, monkeypatch, capsys):
    from tsplab.cli import main

    _no_cells(monkeypatch, [])
    out = tmp_path / "s"
    assert main(["study", "--study", "dials", "--out", str(out), "--budget", "tiny", "--seeds", "1",
                 "--benchmark-option", "source_shift=0,1", "--fixed-data"]) == 1  # nothing ran: not finished
    printed = capsys.readouterr()
    assert "predictions; " in printed.out and "source_shift=1/tsp/seed0" in printed.err
    registered = json.loads((out / "preregistration.json").read_text())
    assert registered["fixed"] == {"source_shared_motions": 0.5} and registered["benchmark_seed"] == 0
    assert len(registered["predictions"]) == 3 and registered["families"] == {"source_shift": 3}
