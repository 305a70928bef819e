"""The synthetic recipe's pretraining protocol: model selection on held-out training videos, equal
optimiser steps for TAC and TSP, per-part learning rates (and equal ones from random weights)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tsplab.errors import InputError
from tsplab.pretrain.config import check_config
from tsplab.pretrain.recipes import ENCODER_LR_RATIO, pretrain_config, RECIPES
from tsplab.pretrain.sampling import EpochOfLength, holdout_videos


def _table(videos: int, segments: int = 3) -> pd.DataFrame:
    rows = [{"video-name": f"v{v:02d}", "t-start": s, "t-end": s + 1.0} for v in range(videos) for s in range(segments)]
    return pd.DataFrame(rows)


def test_holdout_splits_by_video_and_is_fixed_by_seed():
    table = _table(20)
    train, held = holdout_videos(table, 0.15, seed=0)
    held_videos = set(held["video-name"])
    assert len(held_videos) == 3  # round(0.15 * 20)
    assert held_videos.isdisjoint(train["video-name"])  # no video on both sides
    assert len(train) + len(held) == len(table)
    assert (held.groupby("video-name").size() == 3).all()  # every segment of a held-out video
    assert set(holdout_videos(table, 0.15, seed=0)[1]["video-name"]) == held_videos
    assert any(set(holdout_videos(table, 0.15, seed=s)[1]["video-name"]) != held_videos for s in (1, 2, 3))
    # at least 3 videos held out (a PAL pair needs 3), and at least one left to train on
    assert holdout_videos(_table(12), 0.15, 0)[1]["video-name"].nunique() == 3
    assert holdout_videos(_table(3), 0.01, 0)[1]["video-name"].nunique() == 2
    assert holdout_videos(_table(3), 0.99, 0)[0]["video-name"].nunique() == 1
    with pytest.raises(ValueError, match="at least 2"):
        holdout_videos(_table(1), 0.5, 0)


class _Keys:
    """A dataset that returns the key it is read with."""

    dropped = pd.DataFrame()

    def __len__(self):
        return 4

    def __getitem__(self, key):
        return key


def test_epoch_of_length_repeats_items_with_fresh_draws():
    ds = EpochOfLength(_Keys(), 10, seed=0)  # 4 items, 10 per epoch: 3 rounds
    keys = [ds[(i, 2)] for i in range(10)]
    items = [k[0] for k in keys]
    assert sorted(items[:4]) == [0, 1, 2, 3] and sorted(items[4:8]) == [0, 1, 2, 3]  # whole rounds
    assert len(set(keys)) == 10  # a repeated item is read with another key (another jitter draw)
    assert {k[1] for k in keys} == {6, 7, 8}  # epoch 2, rounds 0-2, never another epoch's keys
    assert [ds[(i, 2)] for i in range(10)] == keys  # a pure function of (seed, epoch, index)
    assert [ds[(i, 3)] for i in range(10)] != keys
    assert len(EpochOfLength(_Keys(), 3)) == 3
    with pytest.raises(IndexError):
        ds[(10, 0)]


def test_synthetic_recipe_fine_tunes_below_the_heads_holds_out_training_videos_and_random_starts_alike():
    config = pretrain_config("synthetic", method="tsp", dataset_dir="x")
    assert 0 < config.valid_holdout < 1
    # fine-tuning the source encoder: the encoder below its heads (TSP §4.1), by the swept ratio
    assert config.backbone_lr == config.stem_lr == ENCODER_LR_RATIO * config.fc_lr < config.fc_lr
    scratch = pretrain_config("synthetic", method="tsp", dataset_dir="x", weights=None)
    assert scratch.stem_lr == scratch.backbone_lr == scratch.fc_lr == RECIPES["synthetic"]["fc_lr"]
    given = pretrain_config("synthetic", method="tsp", dataset_dir="x", weights=None, backbone_lr=1e-5)
    assert given.backbone_lr == 1e-5  # a rate given by name wins
    assert pretrain_config("synthetic", method="tac", dataset_dir="x").options.match_tsp_steps
    assert not pretrain_config("tsp", method="tac", dataset_dir="x").options.match_tsp_steps
    for bad in (1.0, -0.1):
        with pytest.raises(InputError, match="valid_holdout"):
            check_config(dataclasses.replace(config, valid_holdout=bad))


def test_source_encoder_keeps_its_own_validation_videos_and_equal_rates(tiny_benchmark):
    from tsplab.pretrain.source import source_pretrain_config

    config = source_pretrain_config(tiny_benchmark, progress=False)
    assert config.valid_holdout == 0.0 and config.weights is None
    assert config.stem_lr == config.backbone_lr == config.fc_lr


@pytest.mark.filterwarnings("ignore:.*segments dropped")
def test_tac_and_tsp_take_equal_steps_and_select_on_held_out_training_videos(tiny_benchmark, tmp_path,
                                                                          one_torch_thread):
    from tsplab.datasets import read_annotations
    from tsplab.pretrain import pretrain

    common = dict(dataset_dir=str(tiny_benchmark), run_dir=str(tmp_path), clips_per_segment=1, batch_size=4,
                  epochs=1, workers=0, progress=False)
    steps = {}
    for method in ("tac", "tsp", "tac_own"):
        name = "tac" if method == "tac_own" else method
        extra = {"match_tsp_steps": False, "output_name": "tac_own"} if method == "tac_own" else {}
        result = pretrain(pretrain_config("synthetic", method=name, **common, **extra))
        steps[method] = int(result.metrics["train_steps"].iloc[0])
        split = pd.read_csv(result.output_dir / "pretrain_split.csv")
        ann = read_annotations(tiny_benchmark / "annotations.json")
        training = set(ann.subset("training").videos["video"])
        valid = set(split.loc[split["split"] == "valid", "video"])
        assert valid and valid <= training  # held out of the training subset ...
        assert valid.isdisjoint(split.loc[split["split"] == "train", "video"])  # ... and not trained on
        assert valid.isdisjoint(ann.subset("validation").videos["video"])  # never a localizer test video
    assert steps["tac"] == steps["tsp"] > steps["tac_own"]
