"""The training loop on the tiny synthetic benchmark: outputs, exact resume, 2-process DDP, the CLI."""
from __future__ import annotations

import math
import os
import socket

import pandas as pd
import pytest
import torch

from tsplab.train import parse_overrides, pretrain, pretrain_config, read_metrics


@pytest.fixture(scope="module")
def bench(tiny_benchmark):
    return tiny_benchmark


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("frame_cache")


def tiny_config(bench, cache_dir, run_dir, **kw):
    values = dict(dataset_dir=str(bench), run_dir=str(run_dir), frame_cache_dir=str(cache_dir),
                  clips_per_segment=1, batch_size=8, epochs=2, max_steps_per_epoch=3, workers=0,
                  progress=False)
    values.update(kw)
    return pretrain_config("synthetic", **values)


@pytest.mark.filterwarnings("ignore:.*segments dropped")
def test_tsp_run_writes_its_folder(bench, cache_dir, tmp_path):
    config = tiny_config(bench, cache_dir, tmp_path, method="tsp")
    assert (config.clip_length_frames, config.resize_short_side, config.crop_size) == (8, 16, 14)
    result = pretrain(config)
    out = tmp_path / "pretrain" / "tsp"
    assert result.output_dir == out
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "best.pt", "data_report.csv",
                 "gvf_initial_max.h5"):
        assert (out / name).is_file(), name
    metrics = read_metrics(out)
    assert list(metrics["epoch"]) == [0, 1]
    for column in ("train_loss_action", "train_loss_region", "valid_acc_action", "valid_acc_region",
                   "valid_acc_avg", "lr_backbone", "lr_heads", "lr_stem", "data_wait_share", "clips_per_s"):
        assert metrics[column].notna().all(), column
    assert ((metrics["data_wait_share"] >= 0) & (metrics["data_wait_share"] < 1)).all()
    assert metrics["valid_acc_avg"].tolist() == pytest.approx(
        ((metrics["valid_acc_action"] + metrics["valid_acc_region"]) / 2).tolist())
    assert result.best_epoch == int(metrics["valid_acc_avg"].idxmax())
    # GVFs of every training and validation video, from the initial encoder
    from tsplab.features import read_gvf_h5

    gvfs = read_gvf_h5(out / "gvf_initial_max.h5")
    assert len(gvfs) == 18 and next(iter(gvfs.values())).shape == (128,)
    # checkpoints: full state for resume, best.pt loadable as a backbone
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert {"model", "optimizer", "lr_scheduler", "scaler", "epoch", "rng", "config", "method"} <= set(ckpt)
    assert ckpt["epoch"] == 1 and ckpt["config"]["method"] == "tsp"
    from tsplab.backbones import build_backbone, load_backbone_weights

    backbone = load_backbone_weights(build_backbone("r2plus1d_tiny"), out / "best.pt")
    best = torch.load(out / "best.pt", weights_only=True)
    assert torch.equal(backbone.layer4[0].conv1[0][0].weight, best["model"]["features.layer4.0.conv1.0.0.weight"])
    # a second fresh run in the same folder replaces the first one's results but reuses its GVF file
    stamp = (out / "gvf_initial_max.h5").stat().st_mtime_ns
    with pytest.warns(UserWarning, match="replaces the earlier run's checkpoint.pt, best.pt, metrics.csv"):
        pretrain(tiny_config(bench, cache_dir, tmp_path, method="tsp", epochs=1, max_steps_per_epoch=1))
    assert (out / "gvf_initial_max.h5").stat().st_mtime_ns == stamp
    assert read_metrics(out)["epoch"].tolist() == [0]


def test_pretrain_curves_figure():
    import matplotlib.pyplot as plt

    from tsplab.plots import plot_pretrain_curves, pretrain_heads

    tsp = pd.DataFrame({"epoch": [0, 1], "train_loss_action": [1.0, 0.5], "valid_loss_action": [1.1, 0.7],
                        "train_acc_action": [0.4, 0.8], "valid_acc_action": [0.3, 0.6],
                        "train_loss_region": [0.7, 0.3], "valid_loss_region": [0.69, 0.4],
                        "train_acc_region": [0.5, 0.9], "valid_acc_region": [0.5, 0.85]})
    tac = tsp[[c for c in tsp.columns if "region" not in c]]
    assert pretrain_heads(tsp) == ["action", "region"] and pretrain_heads(tac) == ["action"]
    fig = plot_pretrain_curves({"tac": tac, "tsp": tsp})
    axes = fig.get_axes()
    assert len(axes) == 4  # loss and accuracy rows x action and region heads
    assert len(axes[0].get_lines()) == 4 and len(axes[1].get_lines()) == 2  # region: tsp only
    assert list(axes[3].get_lines()[0].get_ydata()) == [0.5, 0.85]  # tsp's validation region accuracy
    plt.close(fig)
    with pytest.raises(ValueError, match="no train_loss_<head> columns"):
        plot_pretrain_curves(pd.DataFrame({"epoch": [0]}))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*segments dropped")
def test_killed_and_resumed_run_is_bit_identical(bench, cache_dir, tmp_path):
    # momentum GVFs: the method's state (EMA encoder, GVF tables) must survive the restart too
    kw = dict(method="tsp", gvf_mode="momentum", epochs=2, max_steps_per_epoch=2)
    whole = pretrain(tiny_config(bench, cache_dir, tmp_path / "whole", **kw))
    # the interrupted run uses a DataLoader worker: the data must not depend on the worker count
    part_config = tiny_config(bench, cache_dir, tmp_path / "parts", workers=1, **kw)
    first = pretrain(part_config, stop_after_epochs=1)
    assert list(first.metrics["epoch"]) == [0]
    resumed = pretrain(part_config, resume=True)
    assert list(resumed.metrics["epoch"]) == [0, 1]
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    pd.testing.assert_frame_equal(
        whole.metrics.drop(columns=["data_wait_share", "clips_per_s", "train_seconds", "valid_seconds", "gvf_seconds"]),
        resumed.metrics.drop(columns=["data_wait_share", "clips_per_s", "train_seconds", "valid_seconds", "gvf_seconds"]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, config, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = pretrain(config)
    torch.save({"state": result.model.state_dict(), "metrics": result.metrics.to_dict("list")},
               os.path.join(out_dir, f"rank{rank}.pt"))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*segments dropped")
def test_two_gloo_processes_agree(bench, cache_dir, tmp_path):
    import torch.multiprocessing as mp

    config = tiny_config(bench, cache_dir, tmp_path, method="tsp", device="cpu", epochs=1)
    mp.spawn(_ddp_worker, args=(2, _free_port(), config, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    different = [k for k in r0["state"] if not torch.equal(r0["state"][k], r1["state"][k])]
    assert not different, different[:5]
    metrics = r0["metrics"]
    assert metrics == r1["metrics"] or metrics["valid_acc_avg"] == r1["metrics"]["valid_acc_avg"]
    assert all(math.isfinite(v) for v in metrics["train_loss"])
    # learning rates are scaled by the number of processes (TSP: linear scaling with GPUs)
    assert metrics["lr_heads"][0] == pytest.approx(2 * config.fc_lr)
    # the weights moved away from the shared initialisation, and only rank 0 wrote the run folder
    torch.manual_seed(config.seed)
    from tsplab.backbones import build_backbone

    init = build_backbone("r2plus1d_tiny").state_dict()
    assert not torch.equal(init["layer1.0.conv1.0.0.weight"], r0["state"]["features.layer1.0.conv1.0.0.weight"])
    assert read_metrics(tmp_path / "pretrain" / "tsp")["epoch"].tolist() == [0]


def test_defaults_follow_tsp_and_the_synthetic_preset_its_own_clip():
    from tsplab.train import PRESETS, PretrainConfig

    tsp = PretrainConfig(dataset_dir="x")
    # TSP Sec. 4: 16 frames at 15 fps, crop 112, 5 clips per segment, 8 epochs; background gaps from
    # 5 clips as in its released ActivityNet tables.
    assert (tsp.clip_length_frames, tsp.frame_rate, tsp.crop_size) == (16, 15.0, 112)
    assert (tsp.clips_per_segment, tsp.epochs, tsp.min_background_clips) == (5, 8, 5.0)
    assert PRESETS["synthetic"]["min_background_clips"] == 1.0  # one 8-frame clip of a short video


def test_cli_overrides_and_errors(capsys):
    assert parse_overrides(["alpha_c=0", "lr_milestones=[3, 5]", "weights=none", "output_name=123"]) == {
        "alpha_c": 0, "lr_milestones": (3, 5), "weights": None, "output_name": "123"}
    with pytest.raises(ValueError, match="bad override 'alpha=1'"):
        parse_overrides(["alpha=1"])
    from tsplab.cli import main

    assert main(["pretrain", "--method", "nope", "--dataset", "x"]) == 2
    err = capsys.readouterr().err
    assert "unknown pretraining method 'nope'" in err and "tac, tsp" in err
    assert main(["pretrain", "--backbone", "r9d", "--dataset", "x"]) == 2
    assert "valid backbones" in capsys.readouterr().err
