"""The training loop on the tiny synthetic benchmark: outputs, exact resume, 2-process DDP, the CLI."""
from __future__ import annotations

import dataclasses
import json
import re
import math
import os
import socket
import contextlib
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from tsplab.errors import InputError
from tsplab.pretrain import pretrain, read_metrics
from tsplab.pretrain.config import parse_overrides
from tsplab.pretrain.methods.tsp import TSPOptions
from tsplab.pretrain.recipes import pretrain_config
from tsplab.runs import save_config


@contextlib.contextmanager
def prints(capsys, pattern: str = ""):
    """The block prints a line matching ``pattern`` (information for the user, not a warning)."""
    capsys.readouterr()
    yield
    out = capsys.readouterr().out
    assert re.search(pattern, out), out


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
def test_tsp_run_writes_its_folder(bench, cache_dir, tmp_path, capsys):
    config = tiny_config(bench, cache_dir, tmp_path, method="tsp")
    assert (config.clip_length_frames, config.resize_short_side, config.crop_size) == (8, 16, 14)
    result = pretrain(config)
    out = tmp_path / "pretrain" / "tsp"
    assert result.output_dir == out
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "best.pt", "data_report.csv",
                 "pretrain_split.csv", "gvf_initial_max.h5"):
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
    # GVFs of every training and validation video, from the initial encoder (the synthetic recipe
    # validates on held-out training videos: the 12 training videos are both)
    from tsplab.features import read_gvf_h5

    gvfs = read_gvf_h5(out / "gvf_initial_max.h5")
    assert len(gvfs) == 12 and next(iter(gvfs.values())).shape == (128,)
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
    with prints(capsys, "replaces the earlier run's best.pt, checkpoint.pt, metrics.csv, config.json"):
        pretrain(tiny_config(bench, cache_dir, tmp_path, method="tsp", epochs=1, max_steps_per_epoch=1))
    assert (out / "gvf_initial_max.h5").stat().st_mtime_ns == stamp
    assert read_metrics(out)["epoch"].tolist() == [0]
    assert not (out / "previous").exists()  # the earlier run's files went after the first checkpoint


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
    from tsplab.pretrain.config import PretrainConfig
    from tsplab.pretrain.methods.tsp import TSPOptions
    from tsplab.pretrain.recipes import RECIPES

    tsp = PretrainConfig(dataset_dir="x")
    # TSP Sec. 4: 16 frames at 15 fps, crop 112, 5 clips per segment, 8 epochs; the background rule
    # is the dataset's (test_background_rule_follows_the_dataset), not a number of the loop's.
    assert (tsp.clip_length_frames, tsp.frame_rate, tsp.crop_size) == (16, 15.0, 112)
    assert (tsp.clips_per_segment, tsp.epochs, tsp.min_background_clips, tsp.dataset) == (5, 8, None, "")
    assert "min_background_clips" not in RECIPES["synthetic"]
    assert tsp.options == TSPOptions()  # the method's options, its paper's defaults


# ------------------------------------------------------------------------ settings and bad input
def test_set_values_are_typed_by_their_field():
    assert parse_overrides(["alpha_c=0", "lr_milestones=[3, 5]", "weights=none", "output_name=123"]) == {
        "alpha_c": 0.0, "lr_milestones": (3, 5), "weights": None, "output_name": "123"}
    typed = parse_overrides(["epochs=3", "lr_gamma=0.5", "amp=false", "progress=1", "keep_epoch_checkpoints=yes",
                             "lr_milestones=3,5", "lr_milestones=[]", "boundaries=dc,ss",
                             "weights=runs/x/best.pt", "device=none"], method="bsp")
    assert typed == {"epochs": 3, "lr_gamma": 0.5, "amp": False, "progress": True, "keep_epoch_checkpoints": True,
                     "lr_milestones": (), "boundaries": ("dc", "ss"),
                     "weights": "runs/x/best.pt", "device": "none"}  # device is text, not optional
    # a method's options are typed by its options dataclass; a method=... item picks the method
    assert parse_overrides(["method=pal", "beta_range=[0.5, 0.9]", "queue_size=64"]) == {
        "method": "pal", "beta_range": (0.5, 0.9), "queue_size": 64}
    assert type(typed["epochs"]) is int and type(typed["amp"]) is bool
    for item, expected in [("epochs=abc", "whole number"), ("epochs=2.5", "whole number"),
                           ("lr_gamma=abc", "a number"), ("lr_gamma=nan", "a number"),
                           ("amp=maybe", "true or false"), ("lr_milestones=[a, 5]", "a list"),
                           ("seed=", "whole number")]:
        field, value = item.split("=")
        with pytest.raises(InputError) as err:
            parse_overrides([item])
        assert f"{field}={value!r}" in str(err.value) and expected in str(err.value), item
    with pytest.raises(InputError, match=r"unknown field 'alpha'; TSPOptions fields: alpha_c, alpha_r, "
                                         r"gvf_file, gvf_mode, .*; valid fields: amp, annotations, backbone, "):
        parse_overrides(["alpha=1"])
    with pytest.raises(InputError, match=r"unknown field 'alpha_c'; .*match_tsp_steps"):
        parse_overrides(["alpha_c=0"], method="tac")  # TSP's option is not TAC's
    with pytest.raises(InputError, match="expected NAME=VALUE"):
        parse_overrides(["epochs"])


@pytest.mark.parametrize("changes, named", [
    (dict(epochs=0), "epochs: 0 is out of range; valid: an integer >= 1"),
    (dict(batch_size=-4), "batch_size: -4 is out of range; valid: an integer >= 1"),
    (dict(lr_gamma=0.0), "lr_gamma: 0.0 is out of range; valid: a number > 0"),
    (dict(backbone_lr=-1e-4), "backbone_lr: -0.0001 is out of range; valid: a number >= 0"),
    (dict(workers=-1), "workers: -1 is out of range; valid: an integer >= 0"),
    (dict(momentum=1.5), "momentum: 1.5 is out of range; valid: a number in [0, 1]"),
    (dict(crop_size=40), "crop_size: 40 is larger than resize_short_side=32"),
    (dict(backbone="r9d"), "backbone: 'r9d' is not a valid choice; valid: r2plus1d_18"),
    (dict(method="nope"), "method: 'nope' is not a valid choice; valid: tac, tsp, bsp, pal"),
    (dict(optimizer="rmsprop"), "optimizer: 'rmsprop' is not a valid choice; valid: sgd, adam"),
    (dict(options=TSPOptions(gvf_pooling="sum")), "gvf_pooling: 'sum' is not a valid choice; valid: max, avg, none"),
    (dict(options=TSPOptions(gvf_stride_frames="8")), "gvf_stride_frames: '8' is not valid (str); valid: an integer"),
    (dict(options=TSPOptions(alpha_c=-1.0)), "alpha_c: -1.0 is out of range; valid: a number >= 0"),
    (dict(options=TSPOptions(alpha_c=0.0, alpha_r=0.0)), "alpha_c: 0.0 with alpha_r=0.0: at least one must be > 0"),
    (dict(method="bsp"), "options: method 'bsp' takes BSPOptions"),
    (dict(dataset="kinetics"), "dataset: 'kinetics' is not a valid choice; valid: activitynet, thumos14"),
    (dict(min_background_clips=-1.0), "min_background_clips: -1.0 is out of range; valid: a number >= 0"),
    (dict(epochs="3"), "epochs: '3' is not valid (str); valid: an integer >= 1"),
    (dict(lr_gamma=float("nan")), "lr_gamma: nan is not valid (float); valid: a number > 0"),
    (dict(amp=1), "amp: 1 is not valid (int); valid: true or false"),
    (dict(lr_milestones=(2, -1)), "lr_milestones: (2, -1) is out of range; valid: a list of numbers >= 0"),
    (dict(lr_milestones=(2, "a")), "lr_milestones: (2, 'a') is not valid (tuple); valid: a list of numbers >= 0"),
    (dict(valid_holdout=1.0), "valid_holdout: 1.0 is out of range; valid: a number in [0, 1)"),
    (dict(device="gpu"), "device: 'gpu' is not a torch device"),
    (dict(output_name="../x"), "output_name: '../x' is not a plain folder name"),
    (dict(dataset_dir=""), "dataset_dir: give dataset_dir"),
])
def test_check_config_names_the_bad_field(changes, named):
    from tsplab.pretrain.config import check_config

    config = dataclasses.replace(pretrain_config("synthetic", dataset_dir="x"), **changes)
    with pytest.raises(InputError) as err:
        check_config(config)
    assert named in str(err.value)


def test_help_lists_methods_backbones_and_presets(capsys):
    from tsplab.backbones import BACKBONES
    from tsplab.cli import main
    from tsplab.pretrain.methods import METHODS
    from tsplab.pretrain.recipes import RECIPES

    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for names in (METHODS, BACKBONES, RECIPES):
        assert "one of " + ", ".join(names) in out
    assert "bsp" in out and "pal" in out and "--trust-checkpoint-code" in out


def _earlier_run(run_dir: Path) -> Path:
    """A run folder as an earlier finished run left it (distinct bytes per file)."""
    out = run_dir / "pretrain" / "tsp"
    out.mkdir(parents=True)
    for name in ("checkpoint.pt", "best.pt", "metrics.csv", "config.json", "data_report.csv",
                 "epoch_000.pt", "gvf_initial_max.h5"):
        (out / name).write_bytes(f"earlier run's {name}".encode())
    return out


def _snapshot(root: Path) -> dict:
    """Every file and folder under ``root``: a file's bytes and modification time, a folder's name
    (the write check probes a folder by making and removing an empty one, which touches the folder's
    own mtime and nothing in it)."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
            for p in sorted(root.rglob("*"))}


class _Harmful:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)  # would run on unpickling


def _bad_pretrain_args(case: str, bench: Path, inputs: Path) -> tuple[list, list]:
    """(extra CLI arguments, strings the one-line error must contain) of each bad-input case."""
    from tsplab.backbones import build_backbone

    if case == "weights_typo":
        return ["--weights", str(inputs / "tpyo.pt")], ["weights", "tpyo.pt", "not found"]
    if case == "weights_junk":
        (inputs / "junk.pt").write_bytes(b"no checkpoint")
        return ["--weights", str(inputs / "junk.pt")], ["weights", "junk.pt", "not a readable torch checkpoint"]
    if case == "weights_other_backbone":
        state = build_backbone("r2plus1d_tiny").state_dict()
        del state["layer4.0.conv2.1.weight"]
        torch.save(state, inputs / "cut.pt")
        return ["--weights", str(inputs / "cut.pt")], ["weights", "cut.pt", "layer4.0.conv2.1.weight"]
    if case == "weights_with_code":
        torch.save({"model": build_backbone("r2plus1d_tiny").state_dict(),
                    "args": _Harmful(inputs / "code_ran")}, inputs / "harmful.pt")
        return ["--weights", str(inputs / "harmful.pt")], ["harmful.pt", "mkdir", "--trust-checkpoint-code"]
    if case == "epochs_abc":
        return ["--set", "epochs=abc"], ["epochs='abc'", "whole number"]
    if case == "lr_gamma_abc":
        return ["--set", "lr_gamma=abc"], ["lr_gamma='abc'", "a number"]
    if case == "stop_after_0":
        return ["--stop-after-epochs", "0"], ["stop_after_epochs=0", ">= 1"]
    if case == "crop_too_large":
        return ["--set", "crop_size=40"], ["crop_size: 40", "resize_short_side=16"]
    if case == "no_annotations":
        return ["--annotations", str(inputs / "gt.json")], ["annotations", "gt.json", "not found"]
    if case == "no_such_subset":
        return ["--set", "train_subset=train"], ["train_subset", "'train'", "training, validation"]
    if case == "unknown_method":
        return ["--method", "tsp2"], ["method 'tsp2'", "tac, tsp, bsp, pal"]
    if case == "option_of_another_method":  # TSP's GVF pooling is no option of TAC's
        return ["--method", "tac", "--set", "gvf_pooling=avg"], ["gvf_pooling", "TACOptions fields: match_tsp_steps"]
    if case == "unknown_option":
        return ["--set", "boundaries=dc,ss"], ["'boundaries'", "TSPOptions fields: alpha_c, alpha_r, gvf_file"]
    if case == "bad_option_value":
        return ["--method", "bsp", "--set", "loss=l2"], ["loss: 'l2'", "classification, regression"]
    if case == "ids_of_no_dataset":  # the background rule needs the dataset: ids tell none, none given
        gt = inputs / "gt.json"
        gt.write_text(json.dumps({"database": {v: {"subset": s, "duration": 9.0, "annotations": [
            {"segment": [1.0, 5.0], "label": "a"}]} for v, s in (("clip1", "training"), ("clip2", "validation"))}}))
        return ["--annotations", str(gt), "--video-dir", str(bench / "videos")], [
            "gt.json", "cannot tell the dataset", "set dataset (activitynet, thumos14, synthetic)"]
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["weights_typo", "weights_junk", "weights_other_backbone", "weights_with_code",
                                  "epochs_abc", "lr_gamma_abc", "stop_after_0", "crop_too_large",
                                  "no_annotations", "no_such_subset", "unknown_method", "option_of_another_method",
                                  "unknown_option", "bad_option_value", "ids_of_no_dataset"])
def test_bad_input_leaves_the_earlier_run_untouched(case, bench, tmp_path, capsys):
    """Issue 10: a typo in --weights on an existing run folder left only config.json. Every input is
    now checked before the run folder (and the frame cache) is touched."""
    from tsplab.cli import main

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    run_dir = tmp_path / "run"
    _earlier_run(run_dir)
    extra, named = _bad_pretrain_args(case, bench, inputs)
    before = _snapshot(tmp_path)
    code = main(["pretrain", "--recipe", "synthetic", "--dataset", str(bench), "--run-dir", str(run_dir),
                 "--workers", "0", "--set", "progress=false", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("tsplab pretrain: error: ") and err.count("\n") == 1, err
    for text in named:
        assert text in err, (text, err)
    assert _snapshot(tmp_path) == before  # nothing removed, changed or added (no frame cache, no previous/)


def test_previous_run_is_set_aside_restored_and_dropped(tmp_path, capsys):
    from tsplab.pretrain.run_folder import _PreviousRun

    config = pretrain_config("synthetic", dataset_dir="x", run_dir=str(tmp_path))
    out = _earlier_run(tmp_path)
    (out / "notes.txt").write_text("the user's own file")  # not a run file: never moved
    earlier = _snapshot(out)
    # earlier config.json is not JSON, so its GVFs count as computed with other settings
    previous = _PreviousRun(out)
    with prints(capsys, "moved to .*previous"):
        previous.set_aside(config)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "previous"]
    from tsplab.checkpoints import resolve_checkpoint

    with pytest.raises(FileNotFoundError):  # a reader finds no checkpoint, never the earlier run's
        resolve_checkpoint(out)
    (out / "config.json").write_text("{}")  # the new run's files, then it fails before its checkpoint
    (out / "gvf_initial_max.h5").write_bytes(b"new gvf")
    previous.restore()
    assert _snapshot(out) == earlier  # bytes and mtimes: renamed back, not rewritten

    # A run killed before its first checkpoint leaves previous/; the next fresh run keeps it there.
    with prints(capsys, "moved to"):
        previous.set_aside(config)
    (out / "config.json").write_text("{}")  # the killed attempt's
    second = _PreviousRun(out)
    with prints(capsys, "stay in .*previous"):
        second.set_aside(config)
    assert not (out / "config.json").exists()
    assert (out / "previous" / "best.pt").read_bytes() == b"earlier run's best.pt"
    (out / "checkpoint.pt").write_bytes(b"new checkpoint")
    second.drop()  # the new run's first checkpoint exists
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "notes.txt"]


def test_reused_gvf_file_stays_in_place(tmp_path, capsys):
    from tsplab.pretrain.run_folder import _PreviousRun

    config = pretrain_config("synthetic", dataset_dir="x", run_dir=str(tmp_path))
    out = _earlier_run(tmp_path)
    save_config(config, out)  # the earlier run had this run's GVF settings
    previous = _PreviousRun(out)
    with prints(capsys, "moved to"):
        previous.set_aside(config)
    assert sorted(p.name for p in out.iterdir()) == ["gvf_initial_max.h5", "previous"]
    previous.restore()
    assert (out / "gvf_initial_max.h5").read_bytes() == b"earlier run's gvf_initial_max.h5"


@pytest.mark.filterwarnings("ignore:.*segments dropped")
def test_run_failing_before_its_first_checkpoint_restores_the_earlier_run(bench, cache_dir, tmp_path, monkeypatch, capsys):
    import tsplab.pretrain.loop as train
    from tsplab.checkpoints import resolve_checkpoint

    out = _earlier_run(tmp_path)
    before = _snapshot(out)
    seen = {}

    def failing_save(path, state):
        seen["files"] = sorted(p.name for p in out.iterdir())
        try:
            seen["checkpoint"] = resolve_checkpoint(out)
        except FileNotFoundError:
            seen["checkpoint"] = None
        raise OSError("disk full")

    monkeypatch.setattr(train, "_save_checkpoint", failing_save)
    with prints(capsys, "moved to"), pytest.raises(OSError, match="disk full"):
        pretrain(tiny_config(bench, cache_dir, tmp_path, method="tsp", epochs=1, max_steps_per_epoch=1))
    # while the new run trained, the folder held its own config, report and GVFs, and no checkpoint
    assert seen == {"checkpoint": None,
                    "files": ["config.json", "data_report.csv", "gvf_initial_max.h5", "pretrain_split.csv",
                              "previous"]}
    assert _snapshot(out) == before


# ------------------------------------------------------------------ method options, old run folders
#: A config.json as runs wrote it before the methods owned their options (every method's options
#: flat beside the loop's fields), copied from a real run folder of the tiny benchmark.
OLD_LAYOUT = {
    "method": "tsp", "backbone": "r2plus1d_tiny", "weights": None, "trust_pickle": False,
    "dataset_dir": "runs/tiny/benchmark", "annotations": "", "valid_annotations": "", "video_dir": "",
    "train_subset": "training", "valid_subset": "validation", "min_background_clips": 1.0,
    "run_dir": "runs/tiny", "output_name": "", "frame_cache_dir": "", "clip_length_frames": 8,
    "frame_rate": 15.0, "clips_per_segment": 1, "resize_short_side": 16, "crop_size": 14,
    "alpha_c": 0.5, "alpha_r": 1.0, "gvf_pooling": "max", "gvf_mode": "momentum", "gvf_momentum": 0.99,
    "gvf_refresh_steps": 0, "gvf_stride_frames": 0, "gvf_file": "",
    "bsp_boundaries": ["dc", "sc", "ds", "ss"], "bsp_loss": "classification", "bsp_blend_frames": 2,
    "bsp_speed_factors": [0.5, 2.0, 3.0], "bsp_middle_change_point": False, "bsp_integration": "none",
    "bsp_teachers": [], "pal_clips_per_video": 8, "pal_max_region_clips": 6, "pal_max_stride": 4,
    "pal_beta_range": [0.6, 1.0], "pal_queue_size": 16384, "pal_temperature": 0.07,
    "pal_key_momentum": 0.999, "pal_embed_dim": 128, "pal_samples_per_video": 1, "pal_dense": True,
    "pal_scale_aware": True, "pal_paste": True, "pal_background": "different", "epochs": 2,
    "batch_size": 16, "optimizer": "adam", "backbone_lr": 0.002, "fc_lr": 0.002, "stem_lr": 0.002,
    "momentum": 0.9, "weight_decay": 0.0001, "warmup_epochs": 0.5, "warmup_factor": 1e-05,
    "lr_milestones": [3], "lr_gamma": 0.1, "scale_lr_with_world_size": True, "amp": True, "seed": 0,
    "workers": 1, "threads": 1, "device": "", "max_steps_per_epoch": 0, "keep_epoch_checkpoints": False,
    "progress": True,
}


@pytest.mark.filterwarnings("error")  # nothing of an old run folder is ignored
def test_old_run_folders_still_load():
    from tsplab.pretrain.config import config_from_dict, config_values
    from tsplab.pretrain.methods import get_method
    from tsplab.pretrain.methods.bsp import BSPOptions
    from tsplab.pretrain.methods.pal import PALOptions

    tsp = config_from_dict(OLD_LAYOUT)
    assert tsp.options == TSPOptions(alpha_c=0.5, gvf_mode="momentum")
    assert (tsp.epochs, tsp.lr_milestones, tsp.min_background_clips, tsp.dataset) == (2, (3,), 1.0, "")
    bsp = config_from_dict({**OLD_LAYOUT, "method": "bsp", "bsp_boundaries": ["ds", "ss"], "bsp_loss": "regression"})
    assert bsp.options == BSPOptions(boundaries=("ds", "ss"), loss="regression", source_dir="target")  # as it ran
    pal = config_from_dict({**OLD_LAYOUT, "method": "pal", "pal_queue_size": 512, "pal_background": "same"})
    assert pal.options == PALOptions(queue_size=512, background="same")
    assert config_from_dict({**OLD_LAYOUT, "method": "tac"}).options == get_method("tac").Options()
    # today's layout reads back to the same config (saved config.json / checkpoint "config")
    for config in (tsp, bsp, pal):
        assert config_from_dict(json.loads(json.dumps(dataclasses.asdict(config)))) == config
    # flat names: loop fields and options side by side, as --set and the notebook name them
    values = config_values(tsp)
    assert values["alpha_c"] == 0.5 and values["epochs"] == 2 and "options" not in values
    with pytest.warns(UserWarning, match=r"\['colour'\] are neither PretrainConfig fields nor tsp options"):
        config_from_dict({**OLD_LAYOUT, "colour": "red"})


def test_an_old_run_folder_keeps_its_gvf_file_and_resumes_without_false_warnings(tmp_path, capsys):
    import warnings

    from tsplab.pretrain.config import config_from_dict
    from tsplab.pretrain.run_folder import _check_config_unchanged, _PreviousRun

    old = {**OLD_LAYOUT, "run_dir": str(tmp_path)}
    out = _earlier_run(tmp_path)
    (out / "config.json").write_text(json.dumps(old))
    config = config_from_dict(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check_config_unchanged(old, config, out / "checkpoint.pt")  # same settings, other layout: silent
    with pytest.raises(InputError, match=r"settings differ from the checkpoint's: alpha_c \(0.5 -> 1.0\); "):
        _check_config_unchanged(old, dataclasses.replace(config, options=TSPOptions(gvf_mode="momentum")), out)
    previous = _PreviousRun(out)
    with prints(capsys, "moved to"):
        previous.set_aside(config)  # the old-layout config.json vouches for the GVF file
    assert sorted(p.name for p in out.iterdir()) == ["gvf_initial_max.h5", "previous"]
    previous.restore()
    other = _PreviousRun(out)
    with prints(capsys, "moved to"):
        other.set_aside(dataclasses.replace(config, options=TSPOptions(gvf_stride_frames=4)))
    assert sorted(p.name for p in out.iterdir()) == ["previous"]  # other GVF settings: not reused


def test_method_options_by_name_in_presets_and_overrides():
    from tsplab.pretrain.methods.bsp import BSPOptions

    config = pretrain_config("synthetic", method="bsp", dataset_dir="x", boundaries=["dc", "ss"], epochs=3)
    assert config.options == BSPOptions(boundaries=("dc", "ss")) and config.epochs == 3
    # a base options object, updated by name
    config = pretrain_config("synthetic", method="bsp", dataset_dir="x", options=BSPOptions(loss="regression"),
                             boundaries=("ds",))
    assert config.options == BSPOptions(loss="regression", boundaries=("ds",))
    with pytest.raises(InputError, match=r"unknown PretrainConfig fields \['gvf_mode'\]; bsp options: "
                                         r"blend_frames, boundaries, integration, .*; valid fields: amp, "):
        pretrain_config("synthetic", method="bsp", dataset_dir="x", gvf_mode="epoch")
    # an options object given wins over the recipe's options (PAL's queue on the synthetic recipe)
    from tsplab.pretrain.methods.pal import PAL_SYNTHETIC_OVERRIDES, PALOptions

    pal = pretrain_config("synthetic", method="pal", dataset_dir="x")
    assert pal.options.queue_size == PAL_SYNTHETIC_OVERRIDES["queue_size"] != PALOptions().queue_size
    pal = pretrain_config("synthetic", method="pal", dataset_dir="x", options=PALOptions(queue_size=64))
    assert pal.options.queue_size == 64 and pal.options.samples_per_video == 1
    # JSON (config.json, papermill) gives a dict of options and lists
    assert dataclasses.replace(config, options={"loss": "regression", "boundaries": ["ds"]}).options == config.options
    with pytest.raises(InputError, match=r"bsp options: unknown field 'queue'; valid fields: boundaries, loss"):
        dataclasses.replace(config, options={"queue": 3})


def test_cli_flags_and_set_reach_the_method_options(monkeypatch, capsys):
    import tsplab.pretrain as pretrain_package
    from tsplab.cli import main

    seen = {}

    def fake_pretrain(config, **kw):
        seen["config"] = config
        raise InputError("stop here")

    monkeypatch.setattr(pretrain_package, "pretrain", fake_pretrain)
    main(["pretrain", "--recipe", "synthetic", "--dataset", "x", "--set", "gvf_pooling=avg", "--set", "gvf_mode=epoch",
          "--set", "alpha_c=0", "--set", "gvf_stride_frames=4", "--set", "dataset=thumos14"])
    assert seen["config"].options == TSPOptions(alpha_c=0.0, gvf_pooling="avg", gvf_mode="epoch", gvf_stride_frames=4)
    assert seen["config"].dataset == "thumos14"
    assert "deprecated" not in capsys.readouterr().err
    # The old spellings still work for one release, each with a one-line note.
    main(["pretrain", "--preset", "synthetic", "--dataset", "x", "--gvf-pooling", "avg", "--gvf-mode", "epoch",
          "--set", "alpha_c=0", "--set", "gvf_stride_frames=4", "--set", "dataset=thumos14"])
    assert seen["config"].options == TSPOptions(alpha_c=0.0, gvf_pooling="avg", gvf_mode="epoch", gvf_stride_frames=4)
    assert seen["config"].optimizer == "adam"  # the synthetic recipe
    notes = [line for line in capsys.readouterr().err.splitlines() if "deprecated" in line]
    assert notes == ["tsplab: --gvf-pooling is deprecated, use --set gvf_pooling=",
                     "tsplab: --gvf-mode is deprecated, use --set gvf_mode=",
                     "tsplab: --preset is deprecated, use --recipe"]
    main(["pretrain", "--recipe", "synthetic", "--dataset", "x", "--set", "method=pal", "--set", "beta_range=0.5,0.8"])
    assert seen["config"].method == "pal" and seen["config"].options.beta_range == (0.5, 0.8)


# --------------------------------------------------------------------------- the background rule
def _two_video_annotations(path: Path, ids) -> Path:
    """ActivityNet-format annotations: one training and one validation video of 20 s, actions at
    [0, 5] and [6, 20] s, so the one gap between them lasts 1 s."""
    database = {v: {"subset": subset, "duration": 20.0, "annotations": [
        {"segment": [0.0, 5.0], "label": "a"}, {"segment": [6.0, 20.0], "label": "b"}]}
        for v, subset in zip(ids, ("training", "validation"))}
    path.write_text(json.dumps({"database": database}))
    return path


def test_background_rule_follows_the_dataset(tmp_path):
    from tsplab.datasets import segment_min_background_s
    from tsplab.pretrain.data import background_rule, segment_tables

    config = pretrain_config("synthetic", dataset_dir="x")  # clips of 8 frames at 15 fps
    clip_s = 8 / 15.0
    thumos = ["video_validation_0000001", "video_test_0000004"]
    anet = ["v_JDg--pjY5gg", "abcdefghijk"]  # ActivityNet ids, with and without the file prefix
    # TSP's released tables: THUMOS14 keeps gaps from 1 clip, ActivityNet from 5
    assert segment_min_background_s(**background_rule(config, thumos)) == pytest.approx(1 * clip_s)
    assert segment_min_background_s(**background_rule(config, anet)) == pytest.approx(5 * clip_s)
    assert segment_min_background_s(**background_rule(config, ["train_0000", "val_0003"])) == pytest.approx(clip_s)
    named = dataclasses.replace(config, dataset="thumos14")  # the dataset named: its rule, whatever the ids
    assert segment_min_background_s(**background_rule(named, anet)) == pytest.approx(clip_s)
    fixed = dataclasses.replace(config, min_background_clips=2.0)  # a number of clips: for any ids
    assert segment_min_background_s(**background_rule(fixed, ["my_video"])) == pytest.approx(2 * clip_s)
    with pytest.raises(InputError, match="cannot tell the dataset from its video ids .*set dataset"):
        background_rule(config, ["my_video"])
    # the segment tables: a 1 s gap (under 5 clips, over 1) is background on THUMOS14 only
    for ids, kept in ((thumos, True), (anet, False)):
        gt = _two_video_annotations(tmp_path / f"{ids[0]}.json", ids)
        tables, labels = segment_tables(dataclasses.replace(config, dataset_dir="", annotations=str(gt),
                                                            video_dir=str(tmp_path), valid_holdout=0.0))
        regions = tables["train"]["temporal-region-label"].tolist()
        assert labels == ["a", "b"] and regions == ["Action", "Action"] + ["No action"] * kept, ids


# ------------------------------------------------------------------------ a new method in one file
from tsplab.pretrain.methods import PretrainMethod, StepOutput  # noqa: E402
from tsplab.pretrain.methods.base import head_accuracy_counts, masked_cross_entropy  # noqa: E402


@dataclasses.dataclass
class HalfOptions:
    """The one option of a method written in this test."""

    scale: float = 1.0  # the loss is multiplied by this

    def check(self, config) -> None:
        if self.scale <= 0:
            raise ValueError(f"scale={self.scale}: must be > 0")


class Half(PretrainMethod):
    """A method defined outside tsplab: TAC's clips, one linear head on the clip feature, its loss
    scaled by the option ``scale``. Nothing in train.py or the CLI knows about it."""

    name = "half"
    head_names = ("action",)
    Options = HalfOptions

    def __init__(self, config):
        super().__init__(config)
        from tsplab.pretrain.methods.tac import clip_transform

        self.transform = clip_transform(config, False)
        self.scales_seen: set = set()

    def build_datasets(self, data):
        from tsplab.pretrain.methods.tac import segment_datasets

        return segment_datasets(self.config, data, foreground_only=True)

    def build_model(self, backbone, data):
        from tsplab.pretrain.methods.tac import TACModel

        return TACModel(backbone, len(data.labels))

    def step(self, model, batch, *, train, generator=None):
        logits = model(self.transform(batch["clip"]))["action"]
        loss = masked_cross_entropy(logits, batch["action_label"])
        self.scales_seen.add(self.options.scale)
        correct, count = head_accuracy_counts(logits, batch["action_label"])
        return StepOutput(loss=self.options.scale * loss, head_losses={"action": loss.detach()},
                          head_correct={"action": correct}, head_count={"action": count})

    def state_dict(self) -> dict:
        return {"scales_seen": sorted(self.scales_seen)}

    def load_state_dict(self, state: dict) -> None:
        self.scales_seen = set(state.get("scales_seen", []))


@pytest.mark.filterwarnings("ignore:.*segments dropped")
def test_a_new_method_is_one_class_and_one_line_in_methods(bench, cache_dir, tmp_path, monkeypatch, capsys):
    import tsplab.pretrain.methods
    from tsplab.cli import main
    from tsplab.pretrain.config import config_from_dict

    monkeypatch.setitem(tsplab.pretrain.methods.METHODS, "half", Half)
    common = ["pretrain", "--recipe", "synthetic", "--method", "half", "--dataset", str(bench),
              "--run-dir", str(tmp_path), "--workers", "0", "--batch-size", "8", "--epochs", "1",
              "--set", "progress=false", "--set", "max_steps_per_epoch=2", "--set", "clips_per_segment=1",
              "--set", f"frame_cache_dir={cache_dir}"]
    assert main([*common, "--set", "scale=0.5"]) == 0
    out = tmp_path / "pretrain" / "half"
    saved = json.loads((out / "config.json").read_text())
    assert saved["method"] == "half" and saved["options"] == {"scale": 0.5}
    assert config_from_dict(saved).options == HalfOptions(scale=0.5)
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["config"]["options"] == {"scale": 0.5} and checkpoint["method"] == {"scales_seen": [0.5]}
    assert read_metrics(out)["valid_acc_action"].between(0, 1).all()
    capsys.readouterr()
    # its options are checked like the built-in methods' (names, types, ranges)
    for extra, named in ((["--set", "scal=1"], "unknown field 'scal'; HalfOptions fields: scale; valid fields: amp, "),
                         (["--set", "scale=abc"], "scale='abc': expected a number"),
                         (["--set", "scale=-1"], "scale=-1.0: must be > 0")):
        assert main([*common, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tsplab pretrain: error: ") and named in err, err


# --- tsplab.pretrain.recipes.method_configs and config_changes (notebook 03) ----------------------

@pytest.fixture
def fake_benchmark(tmp_path):
    """A folder whose benchmark.json gives the synthetic recipe its clip (12 frames at 10 fps, 20 px)."""
    (tmp_path / "benchmark.json").write_text(json.dumps(
        {"config": {"clip_length_frames": 12, "fps": 10.0, "clip_short_side": 20}, "seed": 0}))
    return tmp_path


def test_method_configs_gives_each_method_its_own_options(fake_benchmark):
    from tsplab.pretrain.recipes import method_configs

    configs = method_configs("synthetic", ["tac", "tsp"], method_options=dict(alpha_c=0.5, gvf_mode="epoch"),
                             dataset_dir=str(fake_benchmark), epochs=2)
    assert list(configs) == ["tac", "tsp"]
    assert configs["tsp"].options.alpha_c == 0.5 and configs["tsp"].options.gvf_mode == "epoch"
    assert not hasattr(configs["tac"].options, "alpha_c")
    assert all(c.epochs == 2 and c.clip_length_frames == 12 for c in configs.values())
    assert method_configs("synthetic", "tsp", output_name="nogvf", dataset_dir=str(fake_benchmark))["tsp"] \
        .output_name == "nogvf"


def test_method_configs_checks_before_any_run(fake_benchmark):
    from tsplab.pretrain.recipes import method_configs

    with pytest.raises(InputError, match="output_name: one run folder name .* several methods"):
        method_configs("synthetic", ["tac", "tsp"], output_name="x", dataset_dir=str(fake_benchmark))
    with pytest.raises(InputError, match="method: 'tps' is not a valid choice; valid: tac, tsp, bsp, pal"):
        method_configs("synthetic", ["tps"], dataset_dir=str(fake_benchmark))
    with pytest.raises(InputError, match="epochs"):  # check_config ran
        method_configs("synthetic", "tac", dataset_dir=str(fake_benchmark), epochs=0)


def test_config_changes_lists_what_differs_from_the_preset_then_the_options(fake_benchmark):
    from tsplab.pretrain.recipes import config_changes, pretrain_config

    config = pretrain_config("synthetic", method="tsp", dataset_dir=str(fake_benchmark), epochs=2,
                             batch_size=32, alpha_c=0.5)
    changes = config_changes(config, "synthetic")
    # batch_size 32 is the recipe's and the benchmark's clip settings are the recipe's reading of it.
    assert list(changes)[:2] == ["epochs", "alpha_c"] and changes["epochs"] == 2
    assert changes["alpha_c"] == 0.5 and changes["gvf_pooling"] == "max"
    assert set(changes) == {"epochs", "alpha_c", "alpha_r", "gvf_pooling", "gvf_mode", "gvf_momentum",
                            "gvf_refresh_steps", "gvf_stride_frames", "gvf_file"}
    # the options are always listed (TAC's one, on in the synthetic recipe)
    assert config_changes(pretrain_config("synthetic", method="tac", dataset_dir=str(fake_benchmark)),
                          "synthetic") == {"match_tsp_steps": True}


# ------------------------------------------------------------------ the plateau schedule (PAL §4.1)
def _plateau_config(**kw):
    values = dict(dataset_dir="x", lr_schedule="plateau", lr_milestones=(), lr_gamma=0.1,
                  lr_patience_epochs=2, warmup_epochs=0.0)
    values.update(kw)
    return pretrain_config("synthetic", method="tac", **values)


def test_plateau_schedule_divides_the_rate_after_patience_epochs_without_improvement():
    from tsplab.pretrain.optim import build_lr_scheduler, step_plateau

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = build_lr_scheduler(optimizer, _plateau_config(), steps_per_epoch=3)
    # Validation losses by epoch. Best so far: 1.0, 0.9; then 0.95 and 0.9 (not below 0.9 * (1 - 1e-4))
    # are two epochs without improvement -> x0.1; 0.8 improves; 0.89995 (a relative gain < 1e-4 on
    # 0.9 would not count, nor does a loss above the best) and NaN -> x0.1 again.
    losses = [1.0, 0.9, 0.95, 0.9, 0.8, 0.89995, float("nan"), 0.7]
    dropped, rates = [], []
    for loss in losses:
        for _ in range(3):  # an epoch's steps: the rate they use
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        dropped.append(step_plateau(scheduler, loss))
    assert dropped == [False, False, False, True, False, False, True, False]
    per_epoch = [1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01]
    assert rates == pytest.approx([r for r in per_epoch for _ in range(3)])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)  # the best (0.7) improved: no drop
    # the warm-up still applies: linear from warmup_factor over the first epoch's 3 steps
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = build_lr_scheduler(optimizer, _plateau_config(warmup_epochs=1.0, warmup_factor=0.1),
                                   steps_per_epoch=3)
    warm = []
    for _ in range(4):
        warm.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert warm == pytest.approx([0.1, 0.4, 0.7, 1.0])
    # the step schedule (every other method) is unchanged: no plateau, step_plateau does nothing
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    step = build_lr_scheduler(optimizer, pretrain_config("synthetic", method="tac", dataset_dir="x"), 3)
    assert not step_plateau(step, float("inf")) and optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)


def test_plateau_schedule_is_checked():
    from tsplab.pretrain.config import check_config

    with pytest.raises(InputError, match="lr_schedule: 'cosine' is not a valid choice; valid: step, plateau"):
        check_config(_plateau_config(lr_schedule="cosine"))
    with pytest.raises(InputError, match=r"lr_milestones: \[3\] apply to lr_schedule='step'"):
        check_config(_plateau_config(lr_milestones=(3,)))
    with pytest.raises(InputError, match="lr_patience_epochs: -1 is out of range; valid: an integer >= 0"):
        check_config(_plateau_config(lr_patience_epochs=-1))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*segments dropped")
def test_plateau_schedule_resumes_exactly(bench, cache_dir, tmp_path, monkeypatch):
    """A run stopped after epoch 0 and resumed equals one never interrupted, with the plateau's state
    (the lowered rate, the best loss, the count) restored from checkpoint.pt."""
    from tsplab.pretrain.optim import WarmupPlateau

    # No loss ever counts as an improvement: with patience 1 the rate drops after every epoch.
    monkeypatch.setattr(WarmupPlateau, "THRESHOLD", 10.0)
    kw = dict(method="tac", epochs=3, max_steps_per_epoch=2, lr_schedule="plateau", lr_milestones=(),
              lr_patience_epochs=1, warmup_epochs=0.0)
    whole = pretrain(tiny_config(bench, cache_dir, tmp_path / "whole", **kw))
    assert whole.metrics["lr_heads"].tolist() == pytest.approx([2e-3, 2e-4, 2e-5])
    parts = tiny_config(bench, cache_dir, tmp_path / "parts", **kw)
    pretrain(parts, stop_after_epochs=1)
    state = torch.load(tmp_path / "parts" / "pretrain" / "tac" / "checkpoint.pt", weights_only=True)
    assert state["lr_scheduler"]["lr_lambdas"][0]["scale"] == pytest.approx(0.1)
    resumed = pretrain(parts, resume=True)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    timing = ["data_wait_share", "clips_per_s", "train_seconds", "valid_seconds", "gvf_seconds"]
    pd.testing.assert_frame_equal(whole.metrics.drop(columns=timing), resumed.metrics.drop(columns=timing))


@pytest.mark.parametrize("recipe", ["tsp", "synthetic"])
def test_other_methods_keep_their_step_schedule_and_clip(recipe):
    """PAL's paper settings (tests/test_pal.py) reach PAL only: every other method keeps the
    recipe's optimiser, step schedule and clip."""
    from tsplab.pretrain.config import config_values, PretrainConfig
    from tsplab.pretrain.methods import METHODS
    from tsplab.pretrain.recipes import RECIPES

    expected = {"tsp": dict(optimizer="sgd", backbone_lr=1e-4, fc_lr=0.002, stem_lr=0.0, weight_decay=0.005,
                            lr_milestones=(4, 6), lr_gamma=0.01, warmup_epochs=2.0, clip_length_frames=16),
                "synthetic": dict(optimizer="adam", backbone_lr=2e-5, fc_lr=2e-3, stem_lr=2e-5, weight_decay=1e-4,
                                  lr_milestones=(3,), lr_gamma=0.1, warmup_epochs=0.5, clip_length_frames=8)}
    for name in METHODS:
        if name == "pal":
            continue
        config = pretrain_config(recipe, method=name, dataset_dir="x")
        values = config_values(config)
        assert {k: values[k] for k in expected[recipe]} == expected[recipe], name
        assert config.lr_schedule == "step", name
        loop = {**config_values(PretrainConfig(method=name, dataset_dir="x")), **RECIPES[recipe],
                **METHODS[name].recipe_overrides.get(recipe, {})}
        assert {k: values[k] for k in loop} == loop, name


# --- issue 22: resume with other settings, ids leaving the video folder, impossible durations ---------

def test_resume_with_changed_settings_is_refused_naming_them(bench, cache_dir, tmp_path, capsys, unchanged):
    """``--resume --set alpha_c=0 --backbone-lr 0.5`` applied alpha_c, kept the old schedule and
    config.json showed the old values; ``--resume --backbone r3d_18`` gave a traceback."""
    from tsplab.cli import main

    pretrain(tiny_config(bench, cache_dir, tmp_path / "run", method="tsp", epochs=2, max_steps_per_epoch=1,
                         weights=None), stop_after_epochs=1)
    args = ["pretrain", "--recipe", "synthetic", "--method", "tsp", "--dataset", str(bench), "--run-dir",
            str(tmp_path / "run"), "--set", f"frame_cache_dir={cache_dir}", "--set", "clips_per_segment=1",
            "--batch-size", "8", "--epochs", "2", "--set", "max_steps_per_epoch=1", "--workers", "0", "--resume",
            "--weights", "none"]
    for extra, named in ((["--set", "alpha_c=0", "--backbone-lr", "0.5"],
                          "alpha_c (1.0 -> 0.0), backbone_lr (0.002 -> 0.5)"),
                         (["--backbone", "r3d_18"], "backbone ('r2plus1d_tiny' -> 'r3d_18')")):
        with unchanged(tmp_path / "run"):
            assert main([*args, *extra]) == 2
        err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("tsplab")]
        assert len(err) == 1 and err[0].startswith(
            f"tsplab pretrain: error: resume: {tmp_path / 'run' / 'pretrain' / 'tsp' / 'checkpoint.pt'}: settings "
            f"differ from the checkpoint's: {named}; resume with the run's own settings")


@pytest.mark.parametrize("name", ["../../outside/secret.mp4", "/etc/outside/secret.mp4", "sub/../../secret.mp4"])
def test_a_video_name_never_leaves_the_video_folder(tmp_path, name):
    from tsplab.pretrain.data import check_inside_folder

    (tmp_path / "videos").mkdir()
    with pytest.raises(InputError, match=f"ann.json: video '{re.escape(name)}' is not a file inside the video "
                                         "folder .*; video ids and file names must not hold '..' or absolute"):
        check_inside_folder(tmp_path / "videos", ["a.mp4", name], "ann.json")
    check_inside_folder(tmp_path / "videos", ["a.mp4", "sub/b.mp4", "sub/../c.mp4"], "ann.json")


def test_pretrain_refuses_an_id_that_leaves_the_video_dir(bench, tmp_path, capsys, unchanged):
    """An annotation id ``../../outside/secret`` made pretraining open and cache a file outside --video-dir."""
    from tsplab.cli import main

    ann = json.loads((bench / "annotations.json").read_text())
    ann["database"]["../../outside/secret"] = ann["database"].pop("train_0001")
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    with unchanged(tmp_path):
        assert main(["pretrain", "--recipe", "synthetic", "--method", "tac", "--annotations",
                     str(tmp_path / "ann.json"),
                     "--video-dir", str(bench / "videos"), "--run-dir", str(tmp_path / "run"), "--set",
                     "dataset=synthetic", "--weights", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tsplab pretrain: error: {tmp_path / 'ann.json'}: video '../../outside/secret.mp4' is not a file "
                   f"inside the video folder {bench / 'videos'}; video ids and file names must not hold '..' or "
                   "absolute paths"]


def test_an_annotated_duration_longer_than_the_video_is_left_out_and_reported():
    """A duration of 1e9 s for a 44-frame video trained on repeated last frames, data_report empty."""
    from tsplab.pretrain.data import _leave_out_impossible_durations

    def table(*rows):
        return pd.DataFrame(rows, columns=["filename", "video-duration"])

    tables = {"train": table(("a.mp4", 1e9), ("b.mp4", 3.0), ("b.mp4", 3.0)), "valid": table(("c.mp4", 4.9))}
    built = pd.DataFrame({"video": ["a", "b", "c"], "frames": [44, 45, 45]})  # 3 s each at 15 fps
    report = []
    with pytest.warns(UserWarning, match="1 video.s. have an annotated duration longer than the video .* e.g. a: "
                                         "annotated duration 1e[+]09 s, but the video lasts 2.93 s "
                                         ".44 frames at 15 fps."):
        _leave_out_impossible_durations(tables, built, 15.0, report)
    assert tables["train"]["filename"].tolist() == ["b.mp4", "b.mp4"]
    assert tables["valid"]["filename"].tolist() == ["c.mp4"]  # within the slack (2 s)
    assert [(r["stage"], r["video"]) for r in report] == [("durations", "a")]
