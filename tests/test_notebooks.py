"""Notebooks run with non-default parameters (nbval runs them with their tiny defaults)."""
import pandas as pd
import pytest

from tsplab.pipeline import NotebookStep, run_notebook


@pytest.mark.slow
def test_dataset_prep_on_real_activitynet_tables(shared_data, tmp_path):
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

    steps = demo_steps("runs/x", preset="default", seed=3)
    assert [s.notebook[:2] for s in steps] == ["01", "03", "03", "04", "05", "06", "07"]
    assert [s.parameters["method"] for s in steps[1:3]] == ["tac", "tsp"]
    assert [s.output_name for s in steps[1:3]] == ["03_pretrain_tac.ipynb", "03_pretrain_tsp.ipynb"]
    pretrain = steps[1].parameters
    assert pretrain["dataset"] == "runs/x/benchmark" and pretrain["seed"] == 3
    assert pretrain["epochs"] == 4  # the default preset's tuned budget, not the notebook's tiny one
    features = {"tac": "runs/x/features/tac", "tsp": "runs/x/features/tsp"}
    assert steps[4].parameters["feature_dirs"] == features
    assert steps[5].parameters["predictions"]["tsp"] == "runs/x/localization/tsp/predictions.json"
    assert steps[6].parameters["feature_folders"] == features
    with pytest.raises(ValueError, match="tiny, default"):
        demo_steps("runs/x", preset="huge")


@pytest.mark.slow
def test_tiny_demo_end_to_end(tmp_path, capsys):
    from tsplab.cli import main

    assert main(["demo", "--preset", "tiny", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("01_dataset_prep", "03_pretrain_tac", "03_pretrain_tsp", "04_extract_features",
                 "05_localization", "06_detad_length_analysis", "07_feature_similarity"):
        assert (tmp_path / f"{name}.ipynb").is_file()
        assert name in out
    assert "avg_mAP" in out and "sensitivity" in out
    assert sorted(p.name for p in (tmp_path / "features").iterdir() if p.is_dir()) == ["tac", "tsp"]
    assert list((tmp_path / "features" / "tsp").glob("*.npy"))
