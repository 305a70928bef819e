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
