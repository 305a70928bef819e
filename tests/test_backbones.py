"""Backbones: shapes, the R(2+1)D-34 layout, weight loading from TSP-layout / bare / Kinetics files
(made here, no network), and the clip transform."""
from __future__ import annotations

import argparse
import functools
import os
import urllib.error
import warnings

import pytest
import torch
from torchvision.models.video import R2Plus1D_18_Weights, VideoResNet

from tsplab import backbones, checkpoints
from tsplab.errors import InputError
from tsplab.backbones import (BACKBONES, KINETICS_MEAN, KINETICS_STD, ClipTransform, build_backbone,
                              load_backbone_weights, r2plus1d_midplanes)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@functools.lru_cache(maxsize=None)
def _built(name: str) -> torch.nn.Module:
    """One randomly initialised full-size backbone per name for the whole file (building them is
    the slow part); tests must not change its weights."""
    torch.manual_seed(0)
    return build_backbone(name).eval()


@pytest.fixture(scope="module")
def trained_tiny():
    """A tiny backbone whose weights differ from a freshly built one's (other seed, BN stats set)."""
    torch.manual_seed(1)
    model = build_backbone("r2plus1d_tiny")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-1, 1)
                m.bias.uniform_(-1, 1)
    return model


def _fresh_tiny() -> torch.nn.Module:
    torch.manual_seed(2)
    return build_backbone("r2plus1d_tiny")


# ------------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("side", [32, 64, 112])
def test_tiny_backbone_output_shape(side):
    model = build_backbone("r2plus1d_tiny").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 8, side, side))
    assert isinstance(model, VideoResNet)
    assert model.feature_dim == 128 and model.name == "r2plus1d_tiny"
    assert out.shape == (2, 128) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["r2plus1d_18", "r3d_18", "r2plus1d_34"])
def test_full_backbones_output_512(name):
    model = _built(name)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 4, 32, 32))
    assert isinstance(model, VideoResNet) and isinstance(model.fc, torch.nn.Identity)
    assert model.feature_dim == 512 and out.shape == (1, 512)


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_backbone("resnet50")
    assert "resnet50" in str(err.value)
    assert all(name in str(err.value) for name in BACKBONES)


def test_midplanes_formula():
    # The hidden widths of torchvision's r2plus1d_18 (64->64: 144, 64->128: 230) and 128->128.
    assert r2plus1d_midplanes(64, 64) == 144
    assert r2plus1d_midplanes(64, 128) == 230
    assert r2plus1d_midplanes(128, 128) == 288
    assert r2plus1d_midplanes(256, 512) == 921


def _expected_r2plus1d_34_params() -> int:
    """Parameter count of the IG65M-layout R(2+1)D-34 without fc, from the layout description."""
    def conv2plus1d(i, o):  # spatial conv, BN(mid), temporal conv
        m = (27 * i * o) // (9 * i + 3 * o)
        return 9 * i * m + 2 * m + 3 * m * o

    total = 3 * 45 * 49 + 2 * 45 + 45 * 64 * 3 + 2 * 64  # R(2+1)D stem
    inplanes = 64
    for planes, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3)):
        for b in range(blocks):
            i = inplanes if b == 0 else planes
            total += conv2plus1d(i, planes) + 2 * planes + conv2plus1d(planes, planes) + 2 * planes
            if b == 0 and i != planes:
                total += i * planes + 2 * planes  # 1x1x1 downsample + BN
        inplanes = planes
    return total


def test_r2plus1d_34_layout():
    model = _built("r2plus1d_34")
    assert sum(p.numel() for p in model.parameters()) == _expected_r2plus1d_34_params() == 63_491_975
    # Per-conv hidden width: the second conv of layer2's first block (128->128) is 288 wide, where
    # torchvision's BasicBlock would give it the 64->128 width 230.
    assert model.layer2[0].conv2[0][0].out_channels == 288
    assert model.layer2[0].conv1[0][0].out_channels == 230
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert bns and all(m.eps == 1e-3 for m in bns)


def test_r2plus1d_18_matches_torchvision_parameter_count():
    model = _built("r2plus1d_18")
    fc_params = 512 * 400 + 400
    expected = R2Plus1D_18_Weights.KINETICS400_V1.meta["num_params"] - fc_params
    assert sum(p.numel() for p in model.parameters()) == expected


# ------------------------------------------------------------------------------------------ weights
def test_load_tsp_layout_checkpoint(trained_tiny, tmp_path):
    trained, fresh = trained_tiny, _fresh_tiny()
    assert not _same_weights(trained, fresh)
    # TSP's layout: backbone under features., two heads, and a pickled argparse Namespace.
    model = {f"features.{k}": v for k, v in trained.state_dict().items()}
    model.update({"fc1.weight": torch.randn(5, 256), "fc1.bias": torch.zeros(5),
                  "fc2.weight": torch.randn(2, 256), "fc2.bias": torch.zeros(2)})
    path = tmp_path / "epoch_3.pth"
    args = argparse.Namespace(lr=0.1, label_columns=["action-label", "temporal-region-label"], resume="")
    torch.save({"model": model, "optimizer": {}, "epoch": 3, "args": args}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the safe loader takes it: no fallback, no warning
        load_backbone_weights(fresh, path)
        assert checkpoints.load_checkpoint_file(path)["args"] == args
    assert _same_weights(trained, fresh)
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(trained.eval()(x), fresh.eval()(x))


def test_build_with_our_checkpoint_and_bare_state_dict(trained_tiny, tmp_path):
    trained = trained_tiny
    ours = tmp_path / "ours.pt"
    torch.save({"model": {**{f"features.{k}": v for k, v in trained.state_dict().items()},
                          "action_head.weight": torch.zeros(3, 128)},
                "config": {"method": "tsp"}, "epoch": 0}, ours)
    assert _same_weights(trained, build_backbone("r2plus1d_tiny", weights=ours))
    # A bare state dict saved from a DDP-wrapped classifier: "module." prefix and fc.* are dropped.
    bare = tmp_path / "bare.pt"
    torch.save({**{f"module.{k}": v for k, v in trained.state_dict().items()},
                "module.fc.weight": torch.zeros(400, 128), "module.fc.bias": torch.zeros(400)}, bare)
    assert _same_weights(trained, build_backbone("r2plus1d_tiny", weights=bare))


def test_mismatched_keys_are_named(trained_tiny, tmp_path):
    trained = trained_tiny
    state = {f"features.{k}": v for k, v in trained.state_dict().items()}
    del state["features.layer4.0.conv2.1.weight"]
    state["features.layer5.0.weight"] = torch.zeros(3)
    state["features.layer1.0.conv1.1.bias"] = torch.zeros(7)
    path = tmp_path / "broken.pt"
    torch.save({"model": state}, path)
    with pytest.raises(ValueError) as err:
        load_backbone_weights(_fresh_tiny(), path)
    msg = str(err.value)
    assert str(path) in msg and "r2plus1d_tiny" in msg
    assert "1 missing keys: layer4.0.conv2.1.weight" in msg
    assert "1 unexpected keys: layer5.0.weight" in msg
    assert "layer1.0.conv1.1.bias (7,) vs (16,)" in msg


def test_wrong_architecture_message_is_short(tmp_path):
    other = _built("r2plus1d_18")
    path = tmp_path / "r18.pt"
    torch.save({"model": {f"features.{k}": v for k, v in other.state_dict().items()}}, path)
    with pytest.raises(ValueError) as err:
        load_backbone_weights(build_backbone("r2plus1d_tiny"), path)
    msg = str(err.value)
    assert "unexpected keys" in msg and "more)" in msg and "another backbone" in msg
    assert len(msg) < 1500


def test_missing_and_unreadable_checkpoint(tmp_path):
    model = build_backbone("r2plus1d_tiny")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_backbone_weights(model, tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt: not a readable torch checkpoint") as err:
        load_backbone_weights(model, junk)
    assert "trust" not in str(err.value)  # not a refused object: the flag would not help


class _Harmful:
    """Unpickling this calls ``os.mkdir(marker)``: the observable stand-in for code run from a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_checkpoint_with_code_is_refused_unless_trusted(trained_tiny, tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "harmful.pt"
    torch.save({"model": {f"features.{k}": v for k, v in trained_tiny.state_dict().items()},
                "args": _Harmful(marker)}, path)
    before = path.read_bytes()
    with pytest.raises(InputError) as err:
        load_backbone_weights(_fresh_tiny(), path)
    msg = str(err.value)
    assert str(path) in msg and f"'{os.mkdir.__module__}.mkdir'" in msg  # the file and the refused global
    assert "trust_pickle=True" in msg and "--trust-checkpoint-code" in msg and "\n" not in msg
    assert not marker.exists()  # the harmful code did not run
    assert path.read_bytes() == before
    # Every reader of checkpoints goes through the same loader: BSP teachers and the localizer too.
    from tsplab.localizer import load_localizer
    from tsplab.pretrain.methods.bsp import load_teacher

    for load in (load_teacher, load_localizer):
        with pytest.raises(InputError, match="refused"):
            load(path)
        assert not marker.exists()
    # With the explicit flag the file is unpickled in full, and its code runs (the reason for the flag).
    fresh = _fresh_tiny()
    with pytest.warns(UserWarning, match="unpickling in full"):
        load_backbone_weights(fresh, path, trust_pickle=True)
    assert marker.is_dir() and _same_weights(trained_tiny, fresh)


def test_kinetics400_offline_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst, timeout_s):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(backbones, "_download", offline)
    with pytest.raises(RuntimeError) as err:
        load_backbone_weights(_built("r3d_18"), "kinetics400")
    msg = str(err.value)
    assert "https://download.pytorch.org/models/r3d_18-b3b3357e.pth" in msg
    assert str(tmp_path / "hub" / "checkpoints" / "r3d_18-b3b3357e.pth") in msg


def test_kinetics400_only_for_torchvision_backbones():
    with pytest.raises(ValueError, match="r2plus1d_34 has no torchvision Kinetics-400 weights.*ig65m"):
        backbones.kinetics400_weights_path("r2plus1d_34")
    with pytest.raises(ValueError, match="no Kinetics-400 weights for backbone 'r2plus1d_tiny'"):
        load_backbone_weights(build_backbone("r2plus1d_tiny"), "kinetics400")


def test_kinetics400_from_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def no_network(*args):
        raise AssertionError("must not download when the file is cached")

    monkeypatch.setattr(backbones, "_download", no_network)
    # The layout of torchvision's file: the backbone's keys plus a 400-way classifier fc.
    expected = _built("r3d_18").state_dict()
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in expected.items()}
    state.update({"fc.weight": torch.randn(400, 512), "fc.bias": torch.randn(400)})
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / "r3d_18-b3b3357e.pth")
    model = build_backbone("r3d_18", weights="kinetics400")
    loaded = model.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in loaded)


# ---------------------------------------------------------------------------------------- transform
def _column_ramp(b, t, h, w):
    """uint8 clips whose pixel value is the column index (all channels, all frames)."""
    cols = torch.arange(w, dtype=torch.uint8).expand(b, t, h, w)
    return cols[..., None].expand(b, t, h, w, 3).contiguous()


def test_clip_transform_shapes_and_resize():
    clips = torch.randint(0, 256, (2, 4, 40, 60, 3), dtype=torch.uint8)
    out = ClipTransform(resize_short_side=32, crop_size=28, train=False)(clips)
    assert out.shape == (2, 3, 4, 28, 28) and out.dtype == torch.float32
    tall = torch.randint(0, 256, (1, 2, 70, 35, 3), dtype=torch.uint8)
    assert ClipTransform(32, 32, train=True)(tall).shape == (1, 3, 2, 32, 32)


def test_clip_transform_normalization_values():
    colour = torch.tensor([255, 0, 51], dtype=torch.uint8)
    clips = colour.expand(1, 2, 10, 12, 3).contiguous()
    out = ClipTransform(resize_short_side=8, crop_size=8, train=False)(clips)
    for c, value in enumerate((1.0, 0.0, 0.2)):
        expected = (value - KINETICS_MEAN[c]) / KINETICS_STD[c]
        assert torch.allclose(out[:, c], torch.full_like(out[:, c], expected), atol=1e-5)


def test_clip_transform_centre_crop_is_deterministic():
    clips = _column_ramp(3, 2, 16, 24)
    tf = ClipTransform(resize_short_side=None, crop_size=12, train=False)
    out = tf(clips)
    assert torch.equal(out, tf(clips))
    # Column 0 of the crop is source column (24 - 12) // 2 = 6, in every clip and frame.
    first_col = out[:, 0, :, :, 0] * KINETICS_STD[0] + KINETICS_MEAN[0]
    assert torch.allclose(first_col, torch.full_like(first_col, 6 / 255), atol=1e-6)


def test_clip_transform_random_crop_and_flip():
    b, w, c = 64, 24, 12
    clips = _column_ramp(b, 2, 16, w)
    tf = ClipTransform(resize_short_side=None, crop_size=c, train=True)
    out = tf(clips, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, tf(clips, generator=torch.Generator().manual_seed(0)))
    cols = torch.round((out[:, 0, :, 0, :] * KINETICS_STD[0] + KINETICS_MEAN[0]) * 255)  # [B, T, c]
    assert torch.equal(cols[:, 0], cols[:, 1])  # one crop and flip per clip, shared by its frames
    steps = cols[:, 0, 1:] - cols[:, 0, :-1]
    flipped = (steps == -1).all(dim=1)
    assert torch.logical_or(flipped, (steps == 1).all(dim=1)).all()  # contiguous crop, maybe mirrored
    assert 10 < flipped.sum() < b - 10  # about half the clips flipped
    lefts = torch.where(flipped, cols[:, 0, -1], cols[:, 0, 0])
    assert lefts.min() >= 0 and lefts.max() <= w - c and len(lefts.unique()) > 5


def test_clip_transform_rejects_bad_input():
    with pytest.raises(ValueError, match="crop_size 40"):
        ClipTransform(resize_short_side=32, crop_size=40, train=False)(_column_ramp(1, 2, 32, 32))
    with pytest.raises(ValueError, match=r"\[B, T, H, W, 3\]"):
        ClipTransform(32, 28, train=False)(torch.zeros(2, 3, 4, 32, 32, dtype=torch.uint8))


# --- tsplab.pretrain.encoders.choose_encoders (notebook 04) ----------------------------------------------

def _run_with_checkpoint(run_dir, name):
    folder = run_dir / "pretrain" / name
    folder.mkdir(parents=True)
    (folder / "best.pt").write_bytes(b"")  # resolve_checkpoint only looks for the file
    return folder


def test_choose_encoders_takes_each_methods_run(tmp_path):
    from tsplab.pretrain.encoders import choose_encoders

    tac, tsp = _run_with_checkpoint(tmp_path, "tac"), _run_with_checkpoint(tmp_path, "tsp")
    assert choose_encoders(tmp_path, ["tac", "tsp"]) == {"tac": tac, "tsp": tsp}
    assert choose_encoders(tmp_path, "tsp") == {"tsp": tsp}
    assert choose_encoders(tmp_path, ["tsp", "random"]) == {"tsp": tsp, "random": None}
    assert choose_encoders(tmp_path, "random") == {"random": None}


def test_choose_encoders_a_given_checkpoint_is_the_only_one(tmp_path):
    from tsplab.pretrain.encoders import choose_encoders

    folder = _run_with_checkpoint(tmp_path, "tsp_nogvf")
    assert choose_encoders(tmp_path, ["tac"], checkpoint=str(folder)) == {"tsp_nogvf": folder}
    assert choose_encoders(tmp_path, "tac", checkpoint=str(folder / "best.pt")) == {"best": folder / "best.pt"}
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        choose_encoders(tmp_path, "tac", checkpoint=str(tmp_path / "nothing_here"))


def test_choose_encoders_never_falls_back_to_random_weights(tmp_path):
    from tsplab.pretrain.encoders import choose_encoders

    with pytest.raises(InputError, match=r"method: 'tps' is not a valid choice; valid: tac, tsp, bsp, pal, random"):
        choose_encoders(tmp_path, ["tac", "tps"])
    _run_with_checkpoint(tmp_path, "tac")
    (tmp_path / "pretrain" / "bsp").mkdir()  # a run folder without a checkpoint is not a run found
    with pytest.raises(InputError) as error:
        choose_encoders(tmp_path, ["tac", "tsp"])
    message = str(error.value)
    assert message.startswith("method: no pretraining run with a checkpoint for tsp under ")
    assert "(runs found: tac)" in message and "method='random'" in message and "\n" not in message
