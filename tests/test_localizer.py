"""The localizer: network shapes, θ mixing, target assignment, losses on hand values, ASE and ASCL,
SoftNMS, the ASL switches, a short training run on easy features, the prediction file and the CLI."""
from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from tsplab.features import FeatureMetadata, save_features
from tsplab.localizer import LocalizerConfig, load_localizer, predict, train_localizer
from tsplab.localizer.asl import ClassSensitivity, ascl_loss, sensitive_features
from tsplab.localizer.losses import diou_loss_1d, segment_tiou, sigmoid_focal_loss
from tsplab.localizer.model import LocalizerNet, MixedAttention
from tsplab.localizer.nms import batched_soft_nms, soft_nms
from tsplab.localizer.data import (VideoItem, assign_targets, level_points, load_video_items,
                                   positions_to_seconds, seconds_to_positions)
from tsplab.localizer.model import Localizer

STRIDE_FRAMES, CLIP_FRAMES, FPS, DIM = 2, 8, 15.0, 16


def test_model_shapes_per_level():
    torch.manual_seed(0)
    net = LocalizerNet(input_dim=12, num_classes=3, embed_dim=16, num_levels=3, num_stem_blocks=1)
    feats = torch.randn(2, 12, 20)
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[0], mask[1, :13] = True, True
    out = net(feats, mask)
    assert [x.shape for x in out["cls_logits"]] == [(2, 20, 3), (2, 10, 3), (2, 5, 3)]
    assert [x.shape for x in out["offsets"]] == [(2, 20, 2), (2, 10, 2), (2, 5, 2)]
    assert [x.shape for x in out["q_cls"]] == [(2, 20), (2, 10), (2, 5)]
    assert [m[1].sum().item() for m in out["masks"]] == [13, 7, 4]  # ceil(13 / 2**l)
    assert all((o >= 0).all() for o in out["offsets"])
    assert all(((q > 0) & (q < 1)).all() for q in out["q_loc"])
    # the focal prior: every class starts at probability 0.01
    assert torch.sigmoid(out["cls_logits"][0]).mean().item() == pytest.approx(0.01, abs=0.01)
    # padding does not change the real positions' outputs
    short = net(feats[1:, :, :13], mask[1:, :13])
    assert torch.allclose(short["cls_logits"][0][0], out["cls_logits"][0][1, :13], atol=1e-5)


def test_theta_mixes_temporal_and_channel_attention():
    torch.manual_seed(0)
    att = MixedAttention(dim=8, num_heads=2, theta=0.2)
    x, mask = torch.randn(1, 8, 6), torch.ones(1, 6, dtype=torch.bool)
    expected = att.proj(0.8 * att.temporal(x, mask) + 0.2 * att.channel(x, mask))
    assert torch.allclose(att(x, mask), expected, atol=1e-6)
    att.theta = 0.0
    assert torch.allclose(att(x, mask), att.proj(att.temporal(x, mask)), atol=1e-6)
    # θ = 1: channel attention alone, a different output
    att.theta = 1.0
    assert torch.allclose(att(x, mask), att.proj(att.channel(x, mask)), atol=1e-6)
    assert not torch.allclose(att(x, mask), att.proj(att.temporal(x, mask)), atol=1e-3)
    # channel attention: each output channel is a softmax-weighted mix of the value channels, so a
    # value projection that is constant over channels comes back unchanged
    with torch.no_grad():
        att.qkv_c.weight[16:].zero_()
        att.qkv_c.bias[16:] = 3.0
    assert torch.allclose(att.channel(x, mask), torch.full((1, 8, 6), 3.0), atol=1e-5)


def test_assignment_takes_shortest_action_and_respects_ranges():
    ranges = ((0, 4), (4, 8), (8, 10000))
    points, strides, rngs, levels = level_points(32, 3, ranges)
    assert len(points) == 32 + 16 + 8
    assert points[32].item() == 0.5 and strides[32].item() == 2  # level 1 window centres
    # a long action [0, 30] and a short one [10, 14] inside it, different classes
    segs = torch.tensor([[0.0, 30.0], [10.0, 14.0]])
    labels = torch.tensor([0, 1])
    cls, reg, gt = assign_targets(segs, labels, points, strides, rngs, num_classes=2, radius=1.5)
    lvl0 = gt[:32]
    # positions 11..13 are in the short action's centre region (12 ± 1.5): the short one wins
    assert lvl0[11:14].tolist() == [1, 1, 1]
    assert cls[12].tolist() == [0.0, 1.0]
    assert reg[12].tolist() == [2.0, 2.0]  # distances to 10 and 14 at stride 1
    # the long action (max distance ~15) only on the last level (range 8..inf), near its centre 15
    long_pts = points[gt == 0]
    assert set(levels[gt == 0].tolist()) == {2}
    assert all(abs(p - 15) <= 1.5 * 4 for p in long_pts.tolist())
    i = int(torch.nonzero((gt == 0) & (points == 13.5))[0])
    assert reg[i].tolist() == pytest.approx([13.5 / 4, 16.5 / 4])  # in units of stride 4
    # background elsewhere
    assert (gt[:8] == -1).all() and cls[:8].sum() == 0


def test_focal_loss_hand_values():
    logits = torch.tensor([0.0, 2.0, -1.0])
    targets = torch.tensor([1.0, 0.0, 0.0])
    p = torch.sigmoid(logits)
    expected = torch.stack([
        0.25 * (1 - p[0]) ** 2 * -torch.log(p[0]),
        0.75 * p[1] ** 2 * -torch.log(1 - p[1]),
        0.75 * p[2] ** 2 * -torch.log(1 - p[2])])
    assert torch.allclose(sigmoid_focal_loss(logits, targets), expected, atol=1e-6)
    assert sigmoid_focal_loss(torch.tensor([0.0]), torch.tensor([1.0])).item() == pytest.approx(
        0.25 * 0.25 * math.log(2), rel=1e-5)


def test_diou_loss_hand_values():
    # identical segments: 0
    assert diou_loss_1d(torch.tensor([[2.0, 3.0]]), torch.tensor([[2.0, 3.0]])).item() == pytest.approx(0)
    # pred [-1, 1], target [-1, 3]: IoU 2/4, centres 0 and 1, enclosing 4 -> 1 - 0.5 + 1/16
    pred, target = torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 3.0]])
    assert segment_tiou(pred, target).item() == pytest.approx(0.5)
    assert diou_loss_1d(pred, target).item() == pytest.approx(0.5625)
    # pred [0, 1] vs target [-2, 0] are disjoint only at a point: IoU 0, centre gap 1.5, enclosing 3
    pred, target = torch.tensor([[0.0, 1.0]]), torch.tensor([[2.0, 0.0]])
    assert diou_loss_1d(pred, target).item() == pytest.approx(1 + 1.5 ** 2 / 9)


def test_ase_gaussian_initialisation_and_clamp():
    sens = ClassSensitivity(num_classes=3)
    assert sens.mu_cls.tolist() == [0, 0, 0]
    assert sens.mu_loc.tolist() == [[-0.5, 0.5]] * 3
    assert sens.sigma_cls.tolist() == [1, 1, 1] and sens.sigma_loc.tolist() == [[1, 1]] * 3
    d = torch.tensor([-0.5, 0.0, 0.5])
    lab = torch.tensor([1, 1, 1])
    assert sens.p_cls(d, lab).tolist() == pytest.approx([math.exp(-0.125), 1.0, math.exp(-0.125)])
    p_se = sens.p_start_end(d, lab)
    assert p_se[0].tolist() == pytest.approx([1.0, math.exp(-0.5)])  # start frame: p_sot peaks
    assert sens.p_loc(d, lab).tolist() == pytest.approx([1 + math.exp(-0.5), 2 * math.exp(-0.125),
                                                          1 + math.exp(-0.5)])
    with torch.no_grad():
        sens.sigma_cls[1] = 50.0
    # σ clamped at 5: exp(-0.25 / 50) at d = 0.5
    assert sens.p_cls(torch.tensor([0.5]), torch.tensor([1])).item() == pytest.approx(math.exp(-0.25 / 50))


def _toy_items(num_videos=4, seed=0):
    """Videos of 24 positions whose features carry the class in channel 1 + class inside actions."""
    rng = np.random.default_rng(seed)
    items = []
    for v in range(num_videos):
        feats = rng.normal(0, 0.1, (24, DIM)).astype(np.float32)
        start = 3 + 2 * v
        c = v % 2
        feats[start:start + 6, 1 + c] += 3.0
        items.append(VideoItem(f"v{v}", feats, np.array([[start, start + 5.0]]), np.array([c]), 10.0))
    return items


def test_instance_evaluator_targets_and_sensitivity_loss():
    torch.manual_seed(0)
    cfg = LocalizerConfig(embed_dim=16, num_levels=2, regression_ranges=((0, 4), (4, 100)),
                          ase_class=False, ase_instance=True, ascl=False)
    model = Localizer(cfg, DIM, 2)
    items = _toy_items()
    terms = model.losses(items)
    # eq. (7): MSE of q to the sigmoid probability of the true class and to the predicted tIoU
    from tsplab.localizer.data import collate
    feats, mask = collate(items, model.multiple)
    out = model(feats, mask)
    points, strides, ranges, _ = level_points(feats.shape[-1], 2, cfg.regression_ranges)
    logits, offsets = torch.cat(out["cls_logits"], 1), torch.cat(out["offsets"], 1)
    q_cls, q_loc = torch.cat(out["q_cls"], 1), torch.cat(out["q_loc"], 1)
    mse = []
    for b, item in enumerate(items):
        cls, reg, gt = assign_targets(torch.tensor(item.segments, dtype=torch.float32),
                                      torch.tensor(item.labels), points, strides, ranges, 2)
        pos = gt >= 0
        quality = torch.sigmoid(logits[b, pos, int(item.labels[0])])
        mse.append((q_cls[b, pos], quality, q_loc[b, pos], segment_tiou(offsets[b, pos], reg[pos])))
    qc = torch.cat([m[0] for m in mse]); tc = torch.cat([m[1] for m in mse])
    ql = torch.cat([m[2] for m in mse]); tl = torch.cat([m[3] for m in mse])
    expected = ((qc - tc) ** 2).mean() + ((ql - tl) ** 2).mean()
    assert terms["sens"].item() == pytest.approx(expected.item(), rel=1e-4)


def test_sensitive_features_and_ascl_tiny_case():
    sens = ClassSensitivity(2)
    feats = torch.zeros(2, 20)
    feats[0, 5:16] = 1.0  # the action at positions 5..15
    feats[1, :5] = 2.0
    feats[1, 16:] = 2.0
    f_cls, f_loc, f_bg = sensitive_features(feats, 5.0, 15.0, 0, sens, delta=0.2)
    # N_f = 11, range ±2.2: classification around the centre (10): positions 8..12, weights p_cls
    d = (torch.arange(8, 13, dtype=torch.float32) - 10) / 10
    assert f_cls[0].item() == pytest.approx(torch.exp(-d ** 2 / 2).mean().item(), rel=1e-5)
    assert f_cls[1].item() == 0
    # background: 2.2 positions either side outside the action (3, 4 and 16, 17): channel 1 only
    assert f_bg.tolist() == pytest.approx([0.0, 2.0])
    assert f_loc[0] > 0 and f_loc[1] == 0
    # ASCL: identical same-class features with a background equal to them -> log 2; orthogonal -> ~0
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([0, 0])
    assert ascl_loss(a, labels, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(math.log(2), rel=1e-5)
    assert ascl_loss(a, labels, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(
        math.log(1 + math.exp(-10)), rel=1e-3)
    # a different-class action as a negative raises the loss
    three = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.9, 0.1]])
    assert ascl_loss(three, torch.tensor([0, 0, 1]), torch.zeros(0, 2)) > 0.5


@pytest.mark.parametrize("weighting", ["paper", "stabilised"])
@pytest.mark.parametrize("ase_class, ase_instance", [(True, False), (True, True), (False, True)])
def test_ase_weights_in_the_losses_by_hand(ase_class, ase_instance, weighting):
    """ASL eqs. (8)-(10): each positive position's focal loss is weighted by p^cls(d) (+ q_cls), its
    DIoU loss by p^loc(d) = p^sot + p^eot (+ q_loc) (``stabilised``: each normalised to mean 1 over
    the batch's positives); computed here from the model's raw outputs and the Gaussians' formulas at
    their initial values (μ_cls = 0, μ_sot/eot = ∓0.5, σ = 1)."""
    torch.manual_seed(0)
    cfg = LocalizerConfig(embed_dim=16, num_levels=2, regression_ranges=((0, 100), (100, 1000)),
                          center_sample_radius=100.0, ase_class=ase_class, ase_instance=ase_instance,
                          ascl=False, dropout=0.0, ase_weighting=weighting)
    model = Localizer(cfg, DIM, 2).eval()
    with torch.no_grad():  # logits that differ a lot between positions, so the weights' shape matters
        model.net.head.cls_head.out.weight.normal_(0.0, 1.0)
    rng = np.random.default_rng(1)
    items = [VideoItem(f"v{v}", rng.normal(0, 1, (24, DIM)).astype(np.float32),
                       np.array([[2.0 + v, 14.0 + v]]), np.array([v % 2]), 10.0) for v in range(3)]
    terms = model.losses(items)
    feats = torch.stack([torch.from_numpy(item.features).T for item in items])  # [B, C, 24]: no padding
    out = model(feats, torch.ones(3, 24, dtype=torch.bool))
    logits, offsets = torch.cat(out["cls_logits"], 1), torch.cat(out["offsets"], 1)
    q_cls, q_loc = torch.cat(out["q_cls"], 1), torch.cat(out["q_loc"], 1)
    points, strides, ranges, _ = level_points(24, 2, cfg.regression_ranges)
    focal_pos, diou, d, qc, ql, focal_bg = [], [], [], [], [], 0.0
    for b, item in enumerate(items):
        cls_t, reg_t, gt = assign_targets(torch.tensor(item.segments, dtype=torch.float32),
                                          torch.tensor(item.labels), points, strides, ranges, 2, 100.0)
        pos = gt >= 0
        assert pos[:24].sum() == 13 and not pos[24:].any()  # every level-0 position of the action
        p = torch.sigmoid(logits[b])
        focal = -(0.25 * cls_t * (1 - p) ** 2 * torch.log(p)
                  + 0.75 * (1 - cls_t) * p ** 2 * torch.log(1 - p)).sum(-1)  # Lin et al. eq. 5
        focal_pos.append(focal[pos])
        focal_bg = focal_bg + focal[~pos].sum()
        o, r = offsets[b, pos], reg_t[pos]
        inter = torch.minimum(o[:, 0], r[:, 0]) + torch.minimum(o[:, 1], r[:, 1])
        iou = inter / (o.sum(1) + r.sum(1) - inter)
        gap = 0.5 * ((o[:, 1] - o[:, 0]) - (r[:, 1] - r[:, 0]))
        enclosing = torch.maximum(o[:, 0], r[:, 0]) + torch.maximum(o[:, 1], r[:, 1])
        diou.append(1 - iou + gap ** 2 / enclosing ** 2)
        start, end = item.segments[0]
        d.append((points[pos] - 0.5 * (start + end)) / (end - start))
        qc.append(q_cls[b, pos])
        ql.append(q_loc[b, pos])
    d = torch.cat(d)
    assert d.min() == -0.5 and d.max() == 0.5
    h_cls, h_loc = torch.zeros_like(d), torch.zeros_like(d)
    if ase_class:
        h_cls = h_cls + torch.exp(-d ** 2 / 2)  # eq. (3)
        h_loc = h_loc + torch.exp(-(d + 0.5) ** 2 / 2) + torch.exp(-(d - 0.5) ** 2 / 2)  # eq. (4)
    if ase_instance:
        h_cls, h_loc = h_cls + torch.cat(qc), h_loc + torch.cat(ql)
    w_cls, w_loc = (h_cls / h_cls.mean(), h_loc / h_loc.mean()) if weighting == "stabilised" else (h_cls, h_loc)
    n = len(d)
    expected_cls = ((torch.cat(focal_pos) * w_cls).sum() + focal_bg) / n
    expected_reg = (torch.cat(diou) * w_loc).sum() / n
    assert terms["num_pos"] == n
    assert terms["cls"].item() == pytest.approx(expected_cls.item(), rel=1e-5)
    assert terms["reg"].item() == pytest.approx(expected_reg.item(), rel=1e-5)


def test_soft_nms_hand_boxes():
    segs = np.array([[0.0, 10.0], [1.0, 10.0], [20.0, 30.0]])
    scores = np.array([0.9, 0.8, 0.7])
    keep, kept = soft_nms(segs, scores, sigma=0.5)
    assert keep.tolist() == [0, 2, 1]
    assert kept.tolist() == pytest.approx([0.9, 0.7, 0.8 * math.exp(-0.81 / 0.5)])
    # classes do not suppress each other; the cap keeps the best
    seg, score, lab = batched_soft_nms(segs, scores, np.array([0, 1, 0]), sigma=0.5, max_keep=2)
    assert score.tolist() == pytest.approx([0.9, 0.8]) and lab.tolist() == [0, 1]


def test_each_switch_changes_the_loss():
    base = LocalizerConfig(embed_dim=16, num_levels=2, regression_ranges=((0, 4), (4, 100)),
                           ase_class=False, ase_instance=False, ascl=False)
    items = _toy_items()
    values = {}
    for name in ("baseline", "ase_class", "ase_instance", "ascl"):
        cfg = base if name == "baseline" else replace(base, **{name: True})
        torch.manual_seed(0)
        terms = Localizer(cfg, DIM, 2).losses(items)
        values[name] = (terms["loss"].item(), terms["cls"].item(), terms["reg"].item())
    assert values["ascl"][1:] == pytest.approx(values["baseline"][1:])  # ASCL only adds its term
    for name in ("ase_class", "ase_instance", "ascl"):
        assert values[name][0] != pytest.approx(values["baseline"][0], rel=1e-4), name


def _write_easy_features(benchmark, folder):
    """Features of every benchmark video that make detection easy: class-specific channels on inside
    the actions, noise elsewhere."""
    ann = json.loads((benchmark / "annotations.json").read_text())["database"]
    labels = sorted({a["label"] for v in ann.values() for a in v["annotations"]})
    meta = FeatureMetadata(STRIDE_FRAMES, CLIP_FRAMES, FPS, DIM, backbone="hand-made")
    meta.save(folder)
    rng = np.random.default_rng(0)
    for video, info in ann.items():
        t = max(1, math.ceil((info["duration"] * FPS - CLIP_FRAMES) / STRIDE_FRAMES) + 1)
        feats = rng.normal(0, 0.1, (t, DIM)).astype(np.float32)
        centres = meta.clip_centre_s(t)
        for a in info["annotations"]:
            inside = (centres >= a["segment"][0]) & (centres <= a["segment"][1])
            feats[inside, 1 + labels.index(a["label"])] += 2.0
            feats[inside, 0] += 2.0
        save_features(folder, video, feats)
    return labels


@pytest.fixture(scope="module")
def easy_run(tiny_benchmark, tmp_path_factory):
    root = tmp_path_factory.mktemp("loc")
    _write_easy_features(tiny_benchmark, root / "features")
    cfg = LocalizerConfig(features_dir=str(root / "features"),
                          annotations=str(tiny_benchmark / "annotations.json"), out_dir=str(root / "run"),
                          epochs=12, batch_size=4, embed_dim=32, max_predictions=5)
    return cfg, train_localizer(cfg, progress=False)


def test_short_training_learns_easy_features(easy_run):
    from tsplab.evaluation import read_predictions

    cfg, result = easy_run
    h = result.history
    assert len(h) == 12 and h["loss"].iloc[-1] < 0.7 * h["loss"].iloc[0]
    assert result.detection.mAP.iloc[0] > 0.3  # mAP@0.5 on features that show the actions
    assert result.detection.average_mAP > 0.1
    files = {p.name for p in result.out_dir.iterdir()}
    assert {"config.json", "checkpoint.pt", "history.csv", "predictions.json", "metrics.json"} <= files
    assert json.loads((result.out_dir / "config.json").read_text())["ase_class"] is True
    back = read_predictions(result.predictions_path)
    assert len(back) == len(result.predictions) > 0
    assert back["score"].to_numpy() == pytest.approx(result.predictions["score"].to_numpy())
    # the cap per video
    assert back.groupby("video").size().max() <= 5
    assert (back["t_start_s"] >= 0).all() and (back["t_end_s"] > back["t_start_s"]).all()


def test_checkpoint_reload_predicts_the_same(easy_run):
    from tsplab.datasets import read_annotations

    cfg, result = easy_run
    model, labels, meta = load_localizer(result.out_dir)
    items, _ = load_video_items(cfg.features_dir, read_annotations(cfg.annotations), "validation", labels)
    model.config.max_predictions = 2
    again = predict(model, items[:3], meta, labels)
    assert again.groupby("video").size().max() <= 2
    first = result.predictions[result.predictions.video == items[0].video].head(2)
    assert again[again.video == items[0].video]["score"].to_numpy() == pytest.approx(
        first["score"].to_numpy(), rel=1e-4)


def test_time_conversion_round_trip():
    meta = FeatureMetadata(STRIDE_FRAMES, CLIP_FRAMES, FPS, DIM)
    # position 0 is the first clip's centre (8 / 15 / 2 s); one position is 2 / 15 s
    assert positions_to_seconds(0, meta) == pytest.approx(4 / 15)
    assert seconds_to_positions(4 / 15 + 2 / 15, meta) == pytest.approx(1.0)


def test_missing_features_are_skipped_and_recorded(tiny_benchmark, tmp_path):
    from tsplab.datasets import read_annotations

    labels = _write_easy_features(tiny_benchmark, tmp_path)
    gone = sorted(tmp_path.glob("*.npy"))[0]
    gone.unlink()
    items, skipped = load_video_items(tmp_path, read_annotations(tiny_benchmark / "annotations.json"),
                                      "training", labels)
    assert skipped["video"].tolist() == [gone.stem] and "no feature file" in skipped["reason"][0]
    assert gone.stem not in {i.video for i in items}


def test_cli_localize(tiny_benchmark, tmp_path, capsys):
    from tsplab.cli import main

    _write_easy_features(tiny_benchmark, tmp_path / "f")
    rc = main(["localize", "--features", str(tmp_path / "f"), "--annotations",
               str(tiny_benchmark / "annotations.json"), "--out", str(tmp_path / "run"),
               "--epochs", "2", "--baseline", "--max-predictions", "3"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "average" in out and "predictions.json" in out
    # No --preset: the synthetic benchmark's ids (train_0000, val_0000) tell the preset.
    assert "metric preset: synthetic (told from the video ids)" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["ase_class"], config["ase_instance"], config["ascl"]) == (False, False, False)
    assert (config["max_predictions"], config["metric_preset"]) == (3, "synthetic")
    rc = main(["localize", "--features", str(tmp_path / "nope"), "--annotations",
               str(tiny_benchmark / "annotations.json"), "--out", str(tmp_path / "run2")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tsplab localize: error: ") and "nope" in err[0]
    assert not (tmp_path / "run2").exists()


def test_preset_and_prediction_cap_follow_the_dataset():
    from types import SimpleNamespace

    from tsplab.errors import InputError
    from tsplab.localizer import resolve_preset

    def ann(*videos):
        return SimpleNamespace(videos=pd.DataFrame({"video": list(videos)}))

    cfg = LocalizerConfig(annotations="gt.json")
    thumos = resolve_preset(cfg, ann("video_validation_0000051", "video_test_0000004"))
    assert (thumos.metric_preset, thumos.max_predictions) == ("thumos14", 200)  # ASL sec. 4.2
    anet = resolve_preset(cfg, ann("JDg--pjY5gg", "v_Vg4a8igc0"))
    assert (anet.metric_preset, anet.max_predictions) == ("activitynet", 100)
    given = resolve_preset(replace(cfg, metric_preset="thumos14", max_predictions=7), ann("JDg--pjY5gg"))
    assert (given.metric_preset, given.max_predictions) == ("thumos14", 7)  # given values win
    with pytest.raises(InputError, match="gt.json: cannot tell the dataset"):
        resolve_preset(cfg, ann("clip1", "clip2"))


def _run_folder_snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("extra,named", [
    (["--epochs", "0"], "epochs: 0 is out of range; valid: an integer >= 1"),
    (["--batch-size", "0"], "batch_size: 0"),
    (["--lr", "0"], "lr: 0.0"),
    (["--lr", "nan"], "lr: nan"),
    (["--max-predictions", "0"], "max_predictions: 0"),
    (["--device", "gpu"], "device: 'gpu' is not a device"),
    (["--features", "ANNOTATIONS"], "ANNOTATIONS: feature folder not found (features_dir)"),
    (["--out", "FEATURES"], "out_dir: FEATURES is the feature folder (features_dir)"),
    (["--out", "ANNOTATIONS"], "out_dir: ANNOTATIONS is the annotation file (annotations)"),
    (["--features", "EMPTY"], "has usable features (e.g. no feature file for train_0000"),
])
def test_localize_refuses_bad_input_and_keeps_the_earlier_run(tiny_benchmark, tmp_path, capsys, extra, named):
    from tsplab.cli import main

    paths = dict(FEATURES=tmp_path / "f", ANNOTATIONS=tiny_benchmark / "annotations.json",
                 EMPTY=tmp_path / "empty")
    _write_easy_features(tiny_benchmark, paths["FEATURES"])
    FeatureMetadata(STRIDE_FRAMES, CLIP_FRAMES, FPS, DIM).save(paths["EMPTY"])  # no .npy at all
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "checkpoint.pt", "predictions.json", "metrics.json"):
        (run / name).write_text(f"earlier {name}")
    before = _run_folder_snapshot(run), _run_folder_snapshot(paths["FEATURES"])
    extra = [str(paths.get(a, a)) for a in extra]
    args = ["localize", "--features", str(paths["FEATURES"]), "--annotations", str(paths["ANNOTATIONS"]),
            "--out", str(run), "--epochs", "1", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    for key, path in paths.items():
        named = named.replace(key, str(path))
    assert len(err) == 1 and err[0].startswith("tsplab localize: error: ") and named in err[0]
    assert (_run_folder_snapshot(run), _run_folder_snapshot(paths["FEATURES"])) == before


def test_v_prefixed_feature_files_serve_activitynet_ids(tmp_path):
    from tsplab.datasets import read_annotations
    from tsplab.errors import InputError

    database = {v: {"subset": "training", "duration": 10.0,
                    "annotations": [{"segment": [2.0, 5.0], "label": "jump"}]}
                for v in ("JDg--pjY5gg", "v_Vg4a8igc0", "abcdefghijk")}
    (tmp_path / "gt.json").write_text(json.dumps({"database": database}))
    feats = tmp_path / "feats"
    FeatureMetadata(STRIDE_FRAMES, CLIP_FRAMES, FPS, DIM).save(feats)
    save_features(feats, "v_JDg--pjY5gg", np.ones((70, DIM)))  # ActivityNet's file name
    save_features(feats, "v_v_Vg4a8igc0", np.ones((70, DIM)))  # an id that itself begins with v_
    ann = read_annotations(tmp_path / "gt.json")
    items, skipped = load_video_items(feats, ann, "training", ["jump"])
    assert sorted(i.video for i in items) == ["JDg--pjY5gg", "v_Vg4a8igc0"]
    assert skipped["video"].tolist() == ["abcdefghijk"]
    assert "abcdefghijk.npy or v_abcdefghijk.npy" in skipped["reason"][0]
    save_features(feats, "JDg--pjY5gg", np.ones((70, DIM)))  # now the same video twice
    with pytest.raises(InputError, match="JDg--pjY5gg.npy and v_JDg--pjY5gg.npy are the same video"):
        load_video_items(feats, ann, "training", ["jump"])


def test_plots_of_a_run(easy_run):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tsplab import plots

    cfg, result = easy_run
    fig = plots.plot_localizer_losses({"a": result.history, "b": result.history})
    assert [ax.get_title() for ax in fig.axes] == ["total", "cls", "reg", "sens", "ascl"]
    assert len(fig.axes[0].lines) == 2
    plt.close(fig)
    baseline = result.history.assign(sens=0.0, ascl=0.0)
    fig = plots.plot_localizer_losses(baseline)  # switched-off terms are not drawn
    assert [ax.get_title() for ax in fig.axes] == ["total", "cls", "reg"]
    plt.close(fig)
    gt = pd.DataFrame(dict(video=["x", "x", "y"], t_start_s=[1.0, 4.0, 0.5], t_end_s=[2.0, 6.0, 1.5],
                           label=["a", "b", "a"]))
    pred = pd.DataFrame(dict(video=["x", "x", "x", "y"], t_start_s=[1.1, 4.2, 0.0, 0.4],
                             t_end_s=[2.0, 5.5, 0.5, 1.6], label=["a", "b", "a", "a"],
                             score=[0.9, 0.8, 0.1, 0.7]))
    fig = plots.plot_detection_timeline(gt, {"tsp": pred}, ["x", "y"], top_k=2, durations={"x": 8.0})
    assert len(fig.axes) == 2
    assert len(fig.axes[0].collections) == 2 + 2  # 2 ground-truth bars + the 2 best predictions
    assert fig.axes[0].get_xlim() == (0, 8.0)
    plt.close(fig)
    with pytest.raises(ValueError, match="no videos"):
        plots.plot_detection_timeline(gt, pred, [])


def _disk_full_at(monkeypatch, module_attr: str, name: str):
    """Make ``tsplab.localizer.train.<module_attr>`` fail like a full disk when it writes ``name``."""
    import errno
    from pathlib import Path

    import tsplab.localizer.train as loc_train

    real = getattr(loc_train, module_attr)

    def full(path, *args, **kwargs):
        if Path(path).name == name:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(loc_train, module_attr, full)


@pytest.mark.parametrize("attr, name", [("write_csv", "history.csv"), ("write_json", "metrics.json")])
def test_a_failed_rerun_leaves_the_earlier_run_whole(tiny_benchmark, tmp_path, capsys, monkeypatch, unchanged,
                                                     attr, name):
    """A rerun into a run folder that failed on a full disk left the new config.json and
    history.csv beside the earlier run's checkpoint, metrics and predictions."""
    from tsplab.cli import main

    _write_easy_features(tiny_benchmark, tmp_path / "f")
    run = tmp_path / "run"
    run.mkdir()
    for file in ("config.json", "history.csv", "checkpoint.pt", "predictions.json", "metrics.json"):
        (run / file).write_text(f"earlier {file}")
    args = ["localize", "--features", str(tmp_path / "f"), "--annotations", str(tiny_benchmark / "annotations.json"),
            "--out", str(run), "--epochs", "1", "--baseline"]
    _disk_full_at(monkeypatch, attr, name)
    with unchanged(run):
        assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"tsplab localize: error: {run / name}: cannot write the localizer run (No space left on "
                       f"device); the earlier run is back in place in {run}")
    # a fresh run on a full disk: one line, no half run left
    fresh = tmp_path / "fresh"
    assert main([*args[:-5], "--out", str(fresh), "--epochs", "1", "--baseline"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"none of this run's files is left in {fresh}")
    assert sorted(p.name for p in fresh.iterdir()) == []
    monkeypatch.undo()
    assert main(args) == 0  # the rerun that finishes replaces the earlier run, previous/ goes
    # information, printed (not a warning: nothing to act on)
    assert re.search("moved to .*previous, deleted once this run writes its metrics.json", capsys.readouterr().out)
    assert "previous" not in {p.name for p in run.iterdir()}
    assert json.loads((run / "metrics.json").read_text())["average_mAP"] >= 0


def _localize_args(tiny_benchmark, features, out, annotations=None):
    return ["localize", "--features", str(features), "--annotations",
            str(annotations or tiny_benchmark / "annotations.json"), "--out", str(out), "--epochs", "1", "--baseline"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e38])
def test_non_finite_features_are_named_not_trained_on(tiny_benchmark, tmp_path, capsys, bad):
    """NaN, inf or 1e38 in a feature row trained to loss NaN, 0 predictions, exit 0, no warning."""
    from tsplab.cli import main

    feats = tmp_path / "f"
    _write_easy_features(tiny_benchmark, feats)
    array = np.load(feats / "train_0001.npy")
    array[2, 3] = bad
    np.save(feats / "train_0001.npy", array)
    with pytest.warns(UserWarning, match=r"skipped 1 video\(s\) .* the first: train_0001: .*train_0001.npy: row 2 "
                                         r"\(clip 2\), column 3 holds"):
        assert main(_localize_args(tiny_benchmark, feats, tmp_path / "run")) == 1
    assert "1 video(s) without usable features were left out" in capsys.readouterr().err
    skipped = pd.read_csv(tmp_path / "run" / "skipped.csv")
    assert skipped["video"].tolist() == ["train_0001"] and "row 2 (clip 2)" in skipped["reason"].iloc[0]
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert np.isfinite(history["loss"]).all()


def test_a_non_finite_loss_stops_the_run_naming_epoch_and_step(tiny_benchmark, tmp_path, capsys, monkeypatch,
                                                                 unchanged):
    from tsplab.cli import main
    from tsplab.localizer.model import Localizer

    _write_easy_features(tiny_benchmark, tmp_path / "f")
    real = Localizer.losses
    calls = []

    def nan_on_second_step(self, batch):
        terms = real(self, batch)
        calls.append(1)
        return {**terms, "loss": terms["loss"] * float("nan")} if len(calls) == 2 else terms

    monkeypatch.setattr(Localizer, "losses", nan_on_second_step)
    args = _localize_args(tiny_benchmark, tmp_path / "f", tmp_path / "run")
    args[args.index("--epochs") + 1] = "2"
    with unchanged(tmp_path):
        assert main([*args, "--batch-size", "4"]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("tsplab")]
    assert len(err) == 1 and err[0].startswith("tsplab localize: error: epoch 1, step 2 of ")
    assert "the training loss is nan (videos train_" in err[0]


def test_a_validation_video_whose_duration_disagrees_with_its_features_is_named(tiny_benchmark, tmp_path, capsys):
    """A validation video annotated 0.01 s long lost all its predictions (clipped away), exit 0."""
    from tsplab.cli import main

    _write_easy_features(tiny_benchmark, tmp_path / "f")
    gt = json.loads((tiny_benchmark / "annotations.json").read_text())
    gt["database"]["val_0000"]["duration"] = 0.01
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    with pytest.warns(UserWarning, match="val_0000: annotated duration 0.01 s disagrees with its"):
        assert main(_localize_args(tiny_benchmark, tmp_path / "f", tmp_path / "run", tmp_path / "gt.json")) == 1
    assert "1 video(s) without usable features were left out" in capsys.readouterr().err
    skipped = pd.read_csv(tmp_path / "run" / "skipped.csv")
    assert skipped[["video", "subset"]].values.tolist() == [["val_0000", "validation"]]
    assert "its predictions would all be clipped away" in skipped["reason"].iloc[0]


# A new head is one class plus one registration; the test module's own, trained through the public
# entry point by name.
from torch import nn  # noqa: E402

from tsplab.localizer.heads import HEADS, register_head  # noqa: E402


@register_head("tiny_linear")
class TinyLinearHead(nn.Module):
    """One 1x1 conv for the logits and one for the offsets, shared by all levels."""

    def __init__(self, dim, num_classes, num_levels, num_layers, prior_prob):
        super().__init__()
        self.cls = nn.Conv1d(dim, num_classes, 1)
        self.reg = nn.Conv1d(dim, 2, 1)

    def forward(self, features, mask, level):
        return self.cls(features), torch.relu(self.reg(features))


def test_a_registered_head_trains_and_predicts_by_name(tiny_benchmark, tmp_path):
    _write_easy_features(tiny_benchmark, tmp_path / "f")
    cfg = LocalizerConfig(features_dir=str(tmp_path / "f"), annotations=str(tiny_benchmark / "annotations.json"),
                          out_dir=str(tmp_path / "run"), epochs=1, batch_size=64, embed_dim=16,
                          max_predictions=3, head="tiny_linear")
    result = train_localizer(cfg, progress=False)
    assert isinstance(result.model.net.head, TinyLinearHead) and len(result.history) == 1
    assert json.loads((result.out_dir / "config.json").read_text())["head"] == "tiny_linear"
    model, labels, meta = load_localizer(result.out_dir)  # the checkpoint names its head
    assert isinstance(model.net.head, TinyLinearHead)
    assert len(result.predictions) > 0


def test_an_unknown_head_is_refused_naming_the_field_and_the_heads():
    from tsplab.errors import InputError
    from tsplab.localizer import validate_localizer_config

    cfg = LocalizerConfig(features_dir="f", annotations="a.json", out_dir="o", head="nope")
    with pytest.raises(InputError, match=r"^head: 'nope' is not a valid choice; valid: actionformer, .*tiny_linear"):
        validate_localizer_config(cfg)
    assert LocalizerConfig().head == "actionformer" and "actionformer" in HEADS


def test_checkpoints_from_before_the_head_registry_still_load():
    """State dicts that hold ActionFormer's head at the network's top level load into ``net.head``."""
    cfg = LocalizerConfig(embed_dim=16, num_levels=2, regression_ranges=((0, 4), (4, 100)))
    model = Localizer(cfg, DIM, 3)
    old = {k.replace("net.head.", "net."): v.clone() for k, v in model.state_dict().items()}
    assert "net.cls_head.out.bias" in old and "net.scales.1.scale" in old
    again = Localizer(cfg, DIM, 3)
    again.load_state_dict(old)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
