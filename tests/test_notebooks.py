"""Notebooks run with non-default parameters (nbval runs them with their tiny defaults)."""
import json

import pandas as pd
import pytest

from tsplab.errors import InputError
from tsplab.pipeline import NotebookStep, run_notebook
from tsplab.runs import resolve


@pytest.mark.slow
def test_dataset_prep_on_real_activitynet_tables(real_data, tmp_path):
    # DETAD length shares of ActivityNet v1.3 validation from TSP's released CSV. TSP Table 9 prints
    # 53.7/16.2/16.8/9.7/4.0; we did not find which video list gives the paper's L/XL figures.
    run_notebook(NotebookStep("01_dataset_prep.ipynb", dict(dataset="activitynet", run_dir=str(tmp_path))),
                 tmp_path)
    shares = pd.read_csv(tmp_path / "dataset" / "length_bucket_shares.csv")
    assert shares["bucket"].tolist() == ["XS", "S", "M", "L", "XL"]
    assert shares["share_pct"].round(1).tolist() == [53.6, 16.2, 16.8, 9.4, 4.1]
    assert (tmp_path / "01_dataset_prep.ipynb").is_file()
    assert (tmp_path / "dataset" / "segments_validation.csv").is_file()


def test_demo_steps_chain_the_notebooks_in_order():
    from tsplab.pipeline import demo_steps

    steps = demo_steps("runs/x", benchmark_size="default", seed=3)
    # 02 (a look at the videos) is no step: the demo's numbers do not depend on it.
    assert [s.notebook[:2] for s in steps] == ["01", "03", "03", "04", "05", "06", "07"]
    # 01 runs the source stage (the benchmark's initial encoder, TAC on its source set) before any
    # method trains, and every method starts from it (TSP §4.1: every encoder from TAC on Kinetics).
    assert steps[0].parameters == dict(dataset="synthetic", benchmark_size="default", seed=3, run_dir="runs/x",
                                       source_encoder=True)
    assert [s.parameters["method"] for s in steps[1:3]] == ["tac", "tsp"]
    assert [s.parameters["weights"] for s in steps[1:3]] == ["source", "source"]
    assert [s.output_name for s in steps[1:3]] == ["03_pretrain_tac.ipynb", "03_pretrain_tsp.ipynb"]
    pretrain = steps[1].parameters
    assert pretrain["dataset_dir"] == "runs/x/benchmark" and pretrain["seed"] == 3
    assert pretrain["benchmark_size"] == "default"
    assert pretrain["epochs"] == 4  # the default budget, not the notebook's tiny one
    assert pretrain["workers"] == 1  # the notebook's default is 0 (no worker processes in a kernel)
    assert steps[3].parameters["dataset_dir"] == "runs/x/benchmark"
    assert steps[4].parameters["dataset_preset"] == steps[5].parameters["dataset_preset"] == "synthetic"
    features = {"tac": "runs/x/features/tac", "tsp": "runs/x/features/tsp"}
    assert steps[4].parameters["feature_dirs"] == features
    assert steps[5].parameters["predictions"]["tsp"] == "runs/x/localization/tsp/predictions.json"
    assert steps[6].parameters["feature_folders"] == features
    with pytest.raises(InputError, match="benchmark_size: 'huge' is not a valid choice; valid: tiny, default"):
        demo_steps("runs/x", benchmark_size="huge")
    assert "workers" not in demo_steps("runs/x", benchmark_size="tiny")[1].parameters  # the notebook's 0


@pytest.mark.slow
def test_tiny_demo_end_to_end(tmp_path, capsys):
    from tsplab.cli import main

    assert main(["demo", "--size", "tiny", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("01_dataset_prep", "03_pretrain_tac", "03_pretrain_tsp", "04_extract_features",
                 "05_localization", "06_detad_length_analysis", "07_feature_similarity"):
        assert (tmp_path / f"{name}.ipynb").is_file()
        assert name in out
    assert "avg_mAP" in out and "sensitivity" in out
    assert sorted(p.name for p in (tmp_path / "features").iterdir() if p.is_dir()) == ["tac", "tsp"]
    assert list((tmp_path / "features" / "tsp").glob("*.npy"))
    # The source stage ran once (notebook 01), and both methods started from its encoder.
    from tsplab.pretrain.source import source_encoder_path

    encoder = source_encoder_path(tmp_path / "benchmark")
    assert encoder.is_file() and "initial encoder" in (tmp_path / "01_dataset_prep.ipynb").read_text()
    for method in ("tac", "tsp"):
        saved = json.loads((tmp_path / "pretrain" / method / "config.json").read_text())
        assert resolve(saved["weights"]) == encoder, method


@pytest.mark.slow
def test_a_typo_in_04s_method_stops_before_any_work(tmp_path):
    """Issue 11: method="tps" used to give random-weight features without a word. Now the cell after
    the parameters stops, naming the valid methods, and no feature folder is made."""
    import papermill

    with pytest.raises(papermill.PapermillExecutionError) as error:
        run_notebook(NotebookStep("04_extract_features.ipynb", dict(method="tps", run_dir=str(tmp_path),
                                                                     dataset_dir=str(tmp_path / "none"))),
                     tmp_path)
    assert error.value.ename == "InputError"
    assert error.value.evalue == "method: 'tps' is not a valid choice; valid: tac, tsp, bsp, pal, random"
    # the executed notebook and its kernel's log (tsplab.pipeline.run_notebook), nothing else
    assert sorted(p.name for p in tmp_path.iterdir()) == ["04_extract_features.ipynb", "04_extract_features.kernel.log"]


@pytest.mark.slow
def test_an_unknown_papermill_parameter_stops_the_notebook(tmp_path):
    """``papermill ... -p epoch 7`` (for ``epochs``) ran the whole notebook on its defaults."""
    import papermill

    with pytest.raises(papermill.PapermillExecutionError) as error:
        run_notebook(NotebookStep("06_detad_length_analysis.ipynb", dict(epoch=7, seed=1)), tmp_path)
    assert error.value.ename == "InputError"
    assert error.value.evalue.startswith("unknown parameter(s) epoch: the notebook's parameters cell does not "
                                         "declare them; valid: dataset_preset, ground_truth, perturbations, ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["06_detad_length_analysis.ipynb",
                                                         "06_detad_length_analysis.kernel.log"]
