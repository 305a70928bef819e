"""Methods: TSP eq. (1) loss, heads and GVFs, TAC, the optimizer groups and schedule, name errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tsplab.backbones import ClipTransform, build_backbone
from tsplab.pretrain.config import check_config, PretrainConfig
from tsplab.pretrain.methods import METHODS, get_method
from tsplab.pretrain.methods.base import head_accuracy_counts, masked_cross_entropy
from tsplab.pretrain.methods.tac import TAC, TACModel
from tsplab.pretrain.methods.tsp import TSP, TSPModel, TSPOptions, compute_video_gvfs, tsp_loss
from tsplab.pretrain.optim import build_lr_scheduler, build_optimizer, WarmupMultiStep
from tsplab.pretrain.recipes import pretrain_config


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_backbone("r2plus1d_tiny")


def synthetic_config(**kw):
    return pretrain_config("synthetic", dataset_dir="unused", resize_short_side=16, crop_size=16, **kw)


def test_method_registry_and_unknown_names():
    assert set(METHODS) >= {"tac", "tsp"} and get_method("tsp") is TSP
    with pytest.raises(ValueError, match="unknown pretraining method 'bsp2'.*tac, tsp"):
        get_method("bsp2")
    with pytest.raises(ValueError, match="method: 'nope' is not a valid choice; valid: tac, tsp"):
        check_config(PretrainConfig(method="nope", dataset_dir="x"))
    with pytest.raises(ValueError, match="backbone: 'r9d' is not a valid choice; valid: .*r2plus1d_18"):
        check_config(PretrainConfig(backbone="r9d", dataset_dir="x"))
    with pytest.raises(ValueError, match="gvf_pooling: 'sum' is not a valid choice; valid: max, avg, none"):
        check_config(PretrainConfig(options=TSPOptions(gvf_pooling="sum"), dataset_dir="x"))
    with pytest.raises(ValueError, match="unknown pretraining recipe"):
        pretrain_config("imagenet")
    with pytest.raises(ValueError, match=r"unknown PretrainConfig fields \['lr'\]"):
        pretrain_config("tsp", lr=0.1)


def test_background_rows_do_not_train_the_action_head():
    logits = {"action": torch.tensor([[2.0, 0.0], [0.0, 5.0], [9.0, -9.0]], requires_grad=True),
              "region": torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], requires_grad=True)}
    action = torch.tensor([0, -1, 1])  # row 1 is background
    region = torch.tensor([1, 0, 1])
    loss, heads = tsp_loss(logits, action, region, alpha_c=1.0, alpha_r=1.0)
    expected_c = F.cross_entropy(logits["action"][[0, 2]], action[[0, 2]])  # mean over foreground only
    expected_r = F.cross_entropy(logits["region"], region)
    assert heads["action"].item() == pytest.approx(expected_c.item())
    assert loss.item() == pytest.approx((expected_c + expected_r).item())
    loss.backward()
    assert torch.all(logits["action"].grad[1] == 0)  # the background row gets no action gradient
    assert torch.all(logits["action"].grad[0] != 0)
    correct, count = head_accuracy_counts(logits["action"].detach(), action)
    assert (int(correct), int(count)) == (1, 2)


def test_tsp_loss_weighs_both_heads_one_by_default():
    logits = {"action": torch.tensor([[2.0, 0.0]]), "region": torch.tensor([[0.0, 1.0]])}
    loss, heads = tsp_loss(logits, torch.tensor([1]), torch.tensor([0]))  # TSP eq. (1), α_c = α_r = 1
    assert heads["action"].item() == pytest.approx(math.log(1 + math.exp(2)), rel=1e-6)
    assert heads["region"].item() == pytest.approx(math.log(1 + math.e), rel=1e-6)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(2)) + math.log(1 + math.e), rel=1e-6)


def test_alpha_ablations_scale_the_heads():
    logits = {"action": torch.randn(6, 4), "region": torch.randn(6, 2)}
    action = torch.tensor([0, 3, -1, -1, 2, 1])
    region = torch.tensor([1, 1, 0, 0, 1, 1])
    full, heads = tsp_loss(logits, action, region, 1.0, 1.0)
    no_action, _ = tsp_loss(logits, action, region, alpha_c=0.0, alpha_r=1.0)
    no_region, _ = tsp_loss(logits, action, region, alpha_c=1.0, alpha_r=0.0)
    weighted, _ = tsp_loss(logits, action, region, alpha_c=0.5, alpha_r=2.0)
    assert no_action.item() == pytest.approx(heads["region"].item())
    assert no_region.item() == pytest.approx(heads["action"].item())
    assert full.item() == pytest.approx(no_action.item() + no_region.item())
    assert weighted.item() == pytest.approx(0.5 * heads["action"].item() + 2.0 * heads["region"].item())
    # A batch of background clips only: the action head contributes 0 (not NaN) and keeps its graph.
    bg_only = masked_cross_entropy(torch.randn(3, 4, requires_grad=True), torch.tensor([-1, -1, -1]))
    assert bg_only.item() == 0.0 and bg_only.requires_grad
    # Model selection ignores an untrained head.
    assert TSP(synthetic_config(alpha_c=0.0)).selection_heads == ("region",)
    assert TSP(synthetic_config()).selection_heads == ("action", "region")


class Frames:
    def __init__(self, arrays):
        self.arrays = arrays

    def get(self, path):
        return self.arrays[str(path)]


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_gvf_pooling_shapes_and_values(tiny, pooling):
    rng = np.random.default_rng(0)
    frames = Frames({"v0": rng.integers(0, 255, (20, 16, 16, 3), dtype=np.uint8),
                     "v1": rng.integers(0, 255, (9, 16, 16, 3), dtype=np.uint8)})
    transform = ClipTransform(16, 16, train=False)
    tiny.train()
    gvf = compute_video_gvfs(tiny, frames, ["v0", "v1"], clip_length_frames=8, stride_frames=8,
                             transform=transform, pooling=pooling, batch_size=4, device="cpu", progress=False)
    assert gvf.shape == (2, tiny.feature_dim) and gvf.dtype == np.float32
    assert tiny.training  # the encoder's mode is restored
    # v1 (9 frames) has 2 clips on the grid; the GVF pools their features
    tiny.eval()
    with torch.no_grad():
        clips = torch.from_numpy(frames.arrays["v1"][[list(range(8)), [8] * 8]])
        feats = tiny(transform(clips)).numpy()
    tiny.train()
    expected = feats.max(0) if pooling == "max" else feats.mean(0)
    np.testing.assert_allclose(gvf[1], expected, rtol=1e-4, atol=1e-5)


def test_tsp_model_heads_with_and_without_gvf(tiny):
    x = torch.randn(3, 3, 8, 16, 16)
    with_gvf = TSPModel(tiny, num_classes=5, gvf_dim=tiny.feature_dim)
    assert with_gvf.fc2.in_features == 2 * tiny.feature_dim  # TSP: Linear 2F -> 2 on f ⊕ f_g
    out = with_gvf(x, torch.randn(3, tiny.feature_dim))
    assert out["action"].shape == (3, 5) and out["region"].shape == (3, 2)
    with pytest.raises(ValueError, match="takes a GVF"):
        with_gvf(x)
    no_gvf = TSPModel(tiny, num_classes=5, gvf_dim=0)
    assert no_gvf.fc2.in_features == tiny.feature_dim
    assert no_gvf(x)["region"].shape == (3, 2)
    # checkpoint layout: backbone under features., heads fc1/fc2 (TSP), fc (TAC)
    keys = {k.split(".")[0] for k in with_gvf.state_dict()}
    assert keys == {"features", "fc1", "fc2"}
    assert {k.split(".")[0] for k in TACModel(tiny, 5).state_dict()} == {"features", "fc"}


def _batch(n_fg=4, n_bg=4, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = n_fg + n_bg
    return {"clip": torch.randint(0, 256, (n, 4, 16, 16, 3), dtype=torch.uint8, generator=g),
            "action_label": torch.cat([torch.randint(0, classes, (n_fg,), generator=g), torch.full((n_bg,), -1)]),
            "region_label": torch.cat([torch.ones(n_fg, dtype=torch.long), torch.zeros(n_bg, dtype=torch.long)]),
            "video_index": torch.arange(n) % 2}


@pytest.mark.parametrize("method_name", ["tac", "tsp"])
def test_a_few_steps_reduce_the_loss(method_name):
    torch.manual_seed(0)
    config = synthetic_config(method=method_name)
    method = get_method(method_name)(config)
    backbone = build_backbone("r2plus1d_tiny")
    model = method.build_model(backbone, type("D", (), {"labels": ["a", "b", "c"]})())
    if method_name == "tsp":
        method.gvf = {"train": torch.randn(2, backbone.feature_dim), "valid": torch.randn(2, backbone.feature_dim)}
    batch = _batch(n_bg=0 if method_name == "tac" else 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(8):
        out = method.step(model, batch, train=False)  # fixed centre crop: the same inputs each step
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert set(out.head_losses) == set(method.head_names)
    assert losses[-1] < 0.6 * losses[0], losses


class ConstantEncoder(torch.nn.Module):
    """A stand-in backbone: the feature of every clip is (0, 0), so the heads see only their biases
    and the GVF."""

    feature_dim = 2

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.zeros(len(x), 2) + 0 * self.unused


def test_tsp_step_conditions_each_split_on_its_own_gvf_table():
    """TSP §3.3 through ``TSP.step``: the region head reads f ⊕ GVF of the clip's video, from the
    training videos' table in training and from the validation videos' table in validation (the
    tables are indexed by each split's own video rows); eq. (1) adds both heads' cross-entropies."""
    method = get_method("tsp")(synthetic_config(method="tsp"))
    model = method.build_model(ConstantEncoder(), type("D", (), {"labels": ["a", "b", "c"]})())
    with torch.no_grad():
        model.fc1.weight.zero_()
        model.fc1.bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
        model.fc2.weight.copy_(torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]))  # (0, gvf[0])
        model.fc2.bias.zero_()
    method.gvf = {"train": torch.tensor([[-3.0, 0.0], [3.0, 0.0]]), "valid": torch.tensor([[3.0, 0.0], [-3.0, 0.0]])}
    batch = {"clip": torch.zeros(4, 4, 16, 16, 3, dtype=torch.uint8), "video_index": torch.tensor([0, 1, 0, 1]),
             "region_label": torch.tensor([1, 0, 1, 0]), "action_label": torch.tensor([0, -1, 2, -1])}
    action_ce = math.log(math.e + 1 + 1 / math.e)  # mean of -log softmax(1, 0, -1) at classes 0 and 2
    valid = method.step(model, batch, train=False)
    assert valid.head_correct["region"].item() == 4  # region logits (0, 3), (0, -3), ...: all right
    assert valid.head_losses["region"].item() == pytest.approx(math.log(1 + math.exp(-3)), rel=1e-6)
    assert valid.loss.item() == pytest.approx(math.log(1 + math.exp(-3)) + action_ce, rel=1e-6)
    assert (valid.head_correct["action"].item(), valid.head_count["action"].item()) == (1, 2)
    train = method.step(model, batch, train=True)
    assert train.head_correct["region"].item() == 0  # the training table flips every logit
    assert train.head_losses["region"].item() == pytest.approx(math.log(1 + math.exp(3)), rel=1e-6)
    # the step passes each head's own weight (eq. 1's α_c, α_r)
    weighted = get_method("tsp")(synthetic_config(method="tsp", alpha_c=0.5, alpha_r=2.0))
    weighted.gvf = method.gvf
    assert weighted.step(model, batch, train=False).loss.item() == pytest.approx(
        0.5 * action_ce + 2.0 * math.log(1 + math.exp(-3)), rel=1e-6)
    # without a GVF (TSP's "w/o GVF" row) the region head reads f alone and no table is needed
    plain = get_method("tsp")(synthetic_config(method="tsp", gvf_pooling="none"))
    model = plain.build_model(ConstantEncoder(), type("D", (), {"labels": ["a", "b", "c"]})())
    assert model.fc2.in_features == 2 and plain.step(model, batch, train=False).head_count["region"] == 4


class CornerPixel(torch.nn.Module):
    """A stand-in backbone that sees where the crop and flip fell: the top-left pixel of each clip."""

    feature_dim = 3

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):  # [B, 3, T, H, W] -> [B, 3]
        return x[:, :, 0, 0, 0] + 0 * self.unused


@pytest.mark.parametrize("method_name", ["tac", "tsp"])
def test_training_augmentation_follows_the_step_generator(method_name):
    """Exact resume needs every random draw of a step to come from the generator the loop passes."""
    config = pretrain_config("synthetic", method=method_name, dataset_dir="unused", resize_short_side=24,
                             crop_size=16)
    method = get_method(method_name)(config)
    torch.manual_seed(0)
    model = method.build_model(CornerPixel(), type("D", (), {"labels": ["a", "b", "c"]})())
    if method_name == "tsp":
        method.gvf = {"train": torch.zeros(2, 3), "valid": torch.zeros(2, 3)}
    batch = _batch()
    pixels = torch.Generator().manual_seed(1)
    batch["clip"] = torch.randint(0, 256, (8, 4, 24, 32, 3), dtype=torch.uint8, generator=pixels)
    losses = [method.step(model, batch, train=True, generator=torch.Generator().manual_seed(5)).loss.item()
              for _ in range(2)]
    assert losses[0] == losses[1]
    other = method.step(model, batch, train=True, generator=torch.Generator().manual_seed(6)).loss.item()
    assert other != losses[0]


def test_optimizer_groups_stem_frozen_and_scaled_lrs(tiny):
    config = PretrainConfig(dataset_dir="x", backbone_lr=1e-4, fc_lr=0.004)
    model = TSPModel(build_backbone("r2plus1d_tiny"), 4, 0)
    opt = build_optimizer(model, config, world_size=2)
    assert isinstance(opt, torch.optim.SGD)
    names = [g["name"] for g in opt.param_groups]
    assert names == ["backbone", "heads"]
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"backbone": pytest.approx(2e-4), "heads": pytest.approx(0.008)}  # x world size
    assert all(g["momentum"] == 0.9 and g["weight_decay"] == 0.005 for g in opt.param_groups)
    assert not any(p.requires_grad for p in model.features.stem.parameters())
    in_groups = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not in_groups & {id(p) for p in model.features.stem.parameters()}
    assert {id(p) for p in model.fc1.parameters()} <= {id(p) for p in opt.param_groups[1]["params"]}
    # The synthetic recipe trains the stem with Adam.
    model2 = TSPModel(build_backbone("r2plus1d_tiny"), 4, 0)
    opt2 = build_optimizer(model2, synthetic_config(), world_size=1)
    assert isinstance(opt2, torch.optim.Adam) and opt2.param_groups[0]["name"] == "stem"
    assert all(p.requires_grad for p in model2.features.stem.parameters())


def test_warmup_and_decay_schedule_values():
    config = PretrainConfig(method="tac", dataset_dir="x", backbone_lr=1e-4, fc_lr=0.002)  # TSP: warm-up 2, decay at 4, 6
    model = TAC(config).build_model(build_backbone("r2plus1d_tiny"), type("D", (), {"labels": ["a"]})())
    opt = build_optimizer(model, config)
    steps = 10
    sched = build_lr_scheduler(opt, config, steps_per_epoch=steps)
    lr_at = {}
    for it in range(8 * steps):
        lr_at[it] = opt.param_groups[1]["lr"]  # heads
        opt.step()
        sched.step()
    assert lr_at[0] == pytest.approx(0.002 * 1e-5)  # warm-up starts at 1e-5 of the rate
    assert lr_at[steps] == pytest.approx(0.002 * (1e-5 + 0.5 * (1 - 1e-5)))  # half-way at epoch 1
    assert lr_at[2 * steps] == pytest.approx(0.002)  # full rate from epoch 2
    assert lr_at[4 * steps - 1] == pytest.approx(0.002)
    assert lr_at[4 * steps] == pytest.approx(0.002 * 0.01)  # x0.01 at epoch 4
    assert lr_at[6 * steps] == pytest.approx(0.002 * 1e-4)  # and again at epoch 6
    f = WarmupMultiStep(0, [5], 0.1, 1e-5)
    assert f(0) == 1.0 and f(5) == pytest.approx(0.1)
