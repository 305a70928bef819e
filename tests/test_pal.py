"""PAL (tsplab.pretrain.methods.pal): synthesis, augmentation, region features, InfoNCE, the MoCo queue and
momentum encoder, and training on the tiny synthetic benchmark."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tsplab.pretrain.methods.pal import PAL, PALOptions, info_nce, region_features
from tsplab.pretrain.methods.pal_data import PALDataset, augment_videos, draw_view, paste_region, region_frame_indices
from tsplab.pretrain import pretrain
from tsplab.pretrain.data import prepare_data
from tsplab.pretrain.recipes import pretrain_config

# The paper's queue of negatives (the synthetic recipe's in-batch negatives have tests of their own)
SMALL = dict(clips_per_video=4, max_region_clips=3, queue_size=16, embed_dim=16, negatives="queue")


def small_config(**kw):
    # PAL's own defaults where the synthetic recipe would size them for whole runs (PAL_SYNTHETIC_OVERRIDES)
    values = dict(method="pal", dataset_dir="unused", samples_per_video=1, key_momentum=0.999, **SMALL)
    values.update(kw)
    return pretrain_config("synthetic", **values)


def test_draw_view_ranges_and_table3_switches():
    rng = np.random.default_rng(0)
    views = [draw_view(rng, num_clips=8, max_region_clips=6, max_stride=4) for _ in range(400)]
    ks = {v["region_clips"] for v in views}
    assert ks == set(range(1, 7))
    assert {v["stride"] for v in views} == {1, 2, 3, 4}  # scale-aware: strides 1-4
    for v in views:
        assert 0 <= v["start_clip"] and v["end_clip"] == v["start_clip"] + v["region_clips"] <= 8
    betas = np.array([v["beta"] for v in views])
    assert betas.min() >= 0.6 and betas.max() <= 1.0 and betas.min() < 0.65 and betas.max() > 0.95
    single = draw_view(rng, num_clips=8, max_region_clips=6, max_stride=4, dense=False, scale_aware=False)
    assert single["region_clips"] == 1 and single["stride"] == 1
    alone = draw_view(rng, num_clips=8, max_region_clips=6, max_stride=4, paste=False)
    assert (alone["start_clip"], alone["end_clip"], alone["beta"]) == (0, 8, 1.0)


def test_region_frame_indices_scale_aware_strides():
    rng = np.random.default_rng(1)
    idx = region_frame_indices(100, 2, 4, 3, rng)
    assert len(idx) == 8 and np.all(np.diff(idx) == 3) and idx[-1] < 100
    # too short for stride 4 (8 frames need 29): the largest stride that fits, here 2
    idx = region_frame_indices(20, 2, 4, 4, rng)
    assert np.all(np.diff(idx) == 2) and idx[-1] < 20
    # shorter than the region at stride 1: the last frame repeats
    assert region_frame_indices(5, 2, 4, 1, rng).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]


def test_paste_region_blends_with_beta_at_its_position():
    bg = np.full((8, 2, 2, 3), 100, np.uint8)
    region = np.full((4, 2, 2, 3), 200, np.uint8)
    out = paste_region(bg, region, 2, 0.75)
    assert (out[2:6] == 175).all()  # 0.75 * 200 + 0.25 * 100
    assert (out[:2] == 100).all() and (out[6:] == 100).all()
    with pytest.raises(ValueError, match="does not fit at frame 6"):
        paste_region(bg, region, 6, 1.0)
    # the blend stays inside [0, 255] without shifting the extremes; frames must have one size
    black, white = np.zeros((4, 2, 2, 3), np.uint8), np.full((2, 2, 2, 3), 255, np.uint8)
    assert (paste_region(black, black[:2], 1, 0.6) == 0).all()
    assert (paste_region(black, white, 1, 1.0)[1:3] == 255).all()
    with pytest.raises(ValueError, match=r"region frames \(3, 3, 3\) and background frames \(2, 2, 3\) differ"):
        paste_region(black, np.zeros((2, 3, 3, 3), np.uint8), 0, 0.5)


class DictFrames:
    """A frame source of hand-made videos: channel 0 = frame index, channel 1 = 40 * (video + 1)."""

    def __init__(self, lengths, side=6):
        self.videos = {}
        for v, n in enumerate(lengths):
            f = np.zeros((n, side, side + 2, 3), np.uint8)  # not square: the dataset crops a square
            f[..., 0] = np.arange(n)[:, None, None]
            f[..., 1] = 40 * (v + 1)
            self.videos[f"v{v}.mp4"] = f

    def get(self, path):
        return self.videos[Path(path).name]


def _table(n):
    import pandas as pd

    # An action label column that must not matter: PAL reads only the videos.
    return pd.DataFrame({"video-name": [f"v{i}" for i in range(n)], "filename": [f"v{i}.mp4" for i in range(n)],
                         "action-label": ["x"] * n})


def test_dataset_pastes_regions_of_one_video_onto_two_backgrounds():
    frames = DictFrames([60, 70, 80, 90])
    config = small_config(clip_length_frames=2)
    ds = PALDataset(_table(4), "/videos", frames, clip_length_frames=2, frame_side=6, options=config.options, seed=0)
    assert len(ds) == 4
    seen_strides = set()
    for index in range(4):
        for epoch in range(6):
            item = ds[(index, epoch)]
            assert item["clip"].shape == (2, 8, 6, 6, 3) and item["clip"].dtype == torch.uint8
            src = int(item["video_index"])
            bgs = item["background"].tolist()
            assert src == index and src not in bgs and bgs[0] != bgs[1]
            for view in range(2):
                s, e = item["region"][view].tolist()
                beta, stride = float(item["beta"][view]), int(item["stride"][view])
                seen_strides.add(stride)
                assert 0 <= s < e <= 4 and e - s <= 3 and 0.6 <= beta <= 1.0
                video = item["clip"][view].numpy().astype(float)
                inside = np.zeros(8, bool)
                inside[2 * s:2 * e] = True
                bg_val, src_val = 40 * (bgs[view] + 1), 40 * (src + 1)
                assert (video[~inside, :, :, 1] == bg_val).all()
                assert np.abs(video[inside, :, :, 1] - (beta * src_val + (1 - beta) * bg_val)).max() <= 0.5 + 1e-6
    assert seen_strides == {1, 2, 3, 4}
    # the same key gives the same item; validation items do not change with the epoch
    first = ds[(1, 3)]["clip"]
    ds[(2, 0)]  # drawing other items in between changes nothing (no hidden random state)
    assert torch.equal(first, ds[(1, 3)]["clip"])
    again = PALDataset(_table(4), "/videos", frames, clip_length_frames=2, frame_side=6, options=config.options,
                       seed=0)
    assert torch.equal(again[(1, 3)]["clip"], first)  # a new dataset with the same seed
    assert not torch.equal(ds[(1, 4)]["clip"], first)  # training pairs change with the epoch
    fixed = PALDataset(_table(4), "/videos", frames, clip_length_frames=2, frame_side=6, options=config.options, fixed=True)
    assert torch.equal(fixed[(2, 0)]["clip"], fixed[(2, 5)]["clip"])
    same = PALDataset(_table(4), "/videos", frames, clip_length_frames=2, frame_side=6,
                      options=small_config(clip_length_frames=2, background="same").options)
    assert all(len(set(same[i]["background"].tolist())) == 1 for i in range(4))
    alone = PALDataset(_table(2), "/videos", frames, clip_length_frames=2, frame_side=6,
                       options=small_config(clip_length_frames=2, paste=False, dense=False).options)
    item = alone[0]
    assert item["clip"].shape == (2, 2, 6, 6, 3) and item["region"].tolist() == [[0, 1], [0, 1]]
    assert (item["clip"][..., 1] == 40).all()  # only the source video
    with pytest.raises(ValueError, match="at least 3 videos"):
        PALDataset(_table(2), "/videos", frames, clip_length_frames=2, frame_side=6, options=config.options)


def test_augmentation_is_the_same_for_every_frame_of_a_video():
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (1, 1, 12, 12, 3), dtype=torch.uint8)
    videos = frame.expand(6, 5, 12, 12, 3).contiguous()  # 6 videos of 5 identical frames
    g = torch.Generator().manual_seed(3)
    out = augment_videos(videos, 8, train=True, generator=g)
    assert out.shape == (6, 5, 3, 8, 8)
    assert torch.equal(out, out[:, :1].expand_as(out))  # frames of a video stay identical
    # ... while the six videos, identical at input, got different augmentations
    assert len({tuple(v[0].flatten()[:20].tolist()) for v in out}) > 1
    ev = augment_videos(videos, 8, train=False)
    mean = torch.tensor([0.43216, 0.394666, 0.37645]).view(3, 1, 1)
    std = torch.tensor([0.22803, 0.22145, 0.216989]).view(3, 1, 1)
    expected = (frame[0, 0, 2:10, 2:10].permute(2, 0, 1).float() / 255 - mean) / std
    assert torch.allclose(ev[0, 0], expected, atol=1e-6)


def test_region_features_average_the_pasted_clips():
    feats = torch.zeros(2, 4, 2)
    feats[0, :, 0] = torch.tensor([1.0, 3.0, 5.0, 7.0])
    feats[0, :, 1] = 1.0
    feats[1, :, 1] = torch.tensor([2.0, 2.0, 2.0, 4.0])
    r = region_features(feats, torch.tensor([1, 3]), torch.tensor([3, 4]))
    # row 0: mean of clips 1-2 = (4, 1); row 1: clip 3 = (0, 4); then unit length
    assert torch.allclose(r[0], torch.tensor([4.0, 1.0]) / math.sqrt(17))
    assert torch.allclose(r[1], torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="^an empty region: every region needs start < end$"):
        region_features(feats, torch.tensor([2, 0]), torch.tensor([2, 1]))


def test_info_nce_matches_a_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    k = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0], [0.6, -0.8]])
    loss, logits = info_nce(q, k, queue, 0.5)
    expected = []
    for qi, ki in zip(q.tolist(), k.tolist()):
        pos = math.exp(np.dot(qi, ki) / 0.5)
        negs = sum(math.exp(np.dot(qi, n) / 0.5) for n in queue.tolist())
        expected.append(-math.log(pos / (pos + negs)))
    assert loss.item() == pytest.approx(np.mean(expected), rel=1e-6)
    assert logits.shape == (2, 4) and logits[0, 0].item() == pytest.approx(0.8 / 0.5)


class TinyEncoder(torch.nn.Module):
    """A stand-in backbone: mean over time and space, then a linear map ([B, 3, L, S, S] -> [B, 4])."""

    feature_dim = 4

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3, 4)))


def test_queue_ring_buffer_and_momentum_update():
    method = PAL(small_config(queue_size=5, embed_dim=2, key_momentum=0.9))
    torch.manual_seed(0)
    model = PAL.build_model(method, TinyEncoder(), None)
    with pytest.raises(RuntimeError, match="key encoder does not exist"):
        method.state_dict()
    method.attach(model)
    assert method.queue.shape == (5, 2) and torch.allclose(method.queue.norm(dim=1), torch.ones(5))
    a = torch.arange(6.0).view(3, 2)
    method.enqueue(a)
    assert method.queue_ptr == 3 and torch.equal(method.queue[:3], a)
    b = 10 + torch.arange(8.0).view(4, 2)
    method.enqueue(b)  # rows 3, 4, then 0, 1
    assert method.queue_ptr == 2
    assert torch.equal(method.queue, torch.stack([b[2], b[3], a[2], b[0], b[1]]))
    # momentum: key <- 0.9 key + 0.1 query
    before = [p.clone() for p in method.key_model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    method.momentum_update(model)
    for pk, pk0 in zip(method.key_model.parameters(), before):
        assert torch.allclose(pk, pk0 + 0.1, atol=1e-6)
    # the state round-trips (exact resume)
    state = method.state_dict()
    other = PAL(method.config)
    other.attach(PAL.build_model(other, TinyEncoder(), None))
    other.load_state_dict(state)
    assert torch.equal(other.queue, method.queue) and other.queue_ptr == 2
    assert all(torch.equal(x, y) for x, y in zip(other.key_model.parameters(), method.key_model.parameters()))


# --------------------------------------------------------------------- the tiny synthetic benchmark
@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pal_frame_cache")


def tiny_config(bench, cache_dir, run_dir, **kw):
    # validated on the validation videos (valid_holdout=0): these tests count them
    values = dict(dataset_dir=str(bench), run_dir=str(run_dir), frame_cache_dir=str(cache_dir), method="pal",
                  batch_size=4, epochs=1, max_steps_per_epoch=2, workers=0, progress=False, valid_holdout=0.0,
                  **SMALL)
    values.update(kw)
    return pretrain_config("synthetic", **values)


@pytest.mark.filterwarnings("ignore:.*segments dropped")
def test_loss_goes_down_on_the_tiny_benchmark(tiny_benchmark, cache_dir, tmp_path):
    from tsplab.backbones import build_backbone
    from tsplab.pretrain.optim import build_optimizer

    # Adam at 2e-3, not PAL's 1e-4: six steps on one batch test the loss's mechanics, not the schedule.
    config = tiny_config(tiny_benchmark, cache_dir, tmp_path, queue_size=8, samples_per_video=1,
                         backbone_lr=2e-3, fc_lr=2e-3, stem_lr=2e-3)
    data = prepare_data(config)
    method = PAL(config)
    train_set, valid_set = method.build_datasets(data)
    assert len(train_set) == 12 and len(valid_set) == 6  # one synthesized pair per video
    torch.manual_seed(0)
    model = method.build_model(build_backbone(config.backbone, weights=None), data)
    method.attach(model)
    optimizer = build_optimizer(model, config)
    batches = [torch.utils.data.default_collate([train_set[(i, 0)] for i in range(j, j + 4)]) for j in (0, 4, 8)]
    assert batches[0]["clip"].shape == (4, 2, 32, 16, 16, 3)
    # Negatives: the keys of the other 8 videos (a random queue would be trivially easy to beat).
    for batch in batches[1:]:
        method.step(model, batch, train=True, generator=torch.Generator().manual_seed(0))
        method.enqueue(method._pending_keys)
    assert method.queue_ptr == 0  # 8 real keys filled the queue of 8
    losses = []
    for step in range(6):
        out = method.step(model, batches[0], train=True, generator=torch.Generator().manual_seed(step % 2))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.momentum_update(model)
        losses.append(out.loss.item())
    assert np.isfinite(losses).all()
    assert losses[0] > 1.0  # about log(1 + 8) for an untrained encoder
    assert np.mean(losses[-2:]) < 0.6 * np.mean(losses[:2]), losses


@pytest.mark.filterwarnings("ignore:.*segments dropped")
def test_pretrain_writes_a_loadable_checkpoint_and_resumes_exactly(tiny_benchmark, cache_dir, tmp_path):
    import pandas as pd

    from tsplab.backbones import build_backbone, load_backbone_weights
    from tsplab.pretrain import read_metrics

    kw = dict(epochs=2, max_steps_per_epoch=1)
    whole = pretrain(tiny_config(tiny_benchmark, cache_dir, tmp_path / "whole", **kw))
    out = tmp_path / "whole" / "pretrain" / "pal"
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "best.pt", "data_report.csv"):
        assert (out / name).is_file(), name
    metrics = read_metrics(out)
    assert list(metrics["epoch"]) == [0, 1]
    acc = metrics["valid_acc_region"]
    assert acc.between(0, 1).all() and (metrics["valid_acc_avg"] == acc).all()
    assert np.isfinite(metrics["train_loss"]).all()
    assert whole.best_epoch == int(acc.idxmax())
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["method"]["queue"].shape == (16, 16) and ckpt["method"]["queue_ptr"] == 8  # 2 steps x 4 keys
    # extraction reads the backbone of best.pt
    backbone = load_backbone_weights(build_backbone("r2plus1d_tiny"), out / "best.pt")
    best = torch.load(out / "best.pt", weights_only=True)
    for name, value in backbone.state_dict().items():
        assert torch.equal(value, best["model"]["features." + name]), name
    # killed after epoch 0 and resumed: the queue and key encoder come back, the weights match exactly
    parts = tiny_config(tiny_benchmark, cache_dir, tmp_path / "parts", **kw)
    pretrain(parts, stop_after_epochs=1)
    resumed = pretrain(parts, resume=True)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    state_b = torch.load(tmp_path / "parts" / "pretrain" / "pal" / "checkpoint.pt", weights_only=True)["method"]
    assert torch.equal(ckpt["method"]["queue"], state_b["queue"])
    assert all(torch.equal(v, state_b["key_model"][k]) for k, v in ckpt["method"]["key_model"].items())
    timing = ["data_wait_share", "clips_per_s", "train_seconds", "valid_seconds", "gvf_seconds"]
    pd.testing.assert_frame_equal(whole.metrics.drop(columns=timing), resumed.metrics.drop(columns=timing))


def test_step_on_every_table3_setting():
    frames = DictFrames([40, 50, 60, 70], side=10)
    settings = [dict(), dict(dense=False), dict(scale_aware=False), dict(paste=False),
                dict(paste=False, dense=False), dict(background="same"), dict(pasting=False)]
    for setting in settings:
        config = small_config(clip_length_frames=2, crop_size=8, resize_short_side=10, **setting)
        method = PAL(config)
        ds = PALDataset(_table(4), "/videos", frames, clip_length_frames=2, frame_side=10, options=config.options)
        batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
        torch.manual_seed(0)
        model = method.build_model(TinyEncoder(), None)
        method.attach(model)
        out = method.step(model, batch, train=True, generator=torch.Generator().manual_seed(0))
        out.loss.backward()
        assert torch.isfinite(out.loss) and out.head_count["region"].item() == 4, setting
        assert model.temporal[0].weight.grad is not None and method._pending_keys.shape == (4, 16)
    with pytest.raises(ValueError, match="background: 'other' is not a valid choice"):
        PAL(small_config(background="other"))
    with pytest.raises(ValueError, match=r"beta_range: \(0.6, 1.2\) is out of range; valid: a list of numbers in \["):
        PAL(small_config(beta_range=(0.6, 1.2)))
    with pytest.raises(ValueError, match=r"beta_range: \[0.9, 0.6\] must be \[low, high\]"):
        PAL(small_config(beta_range=(0.9, 0.6)))
    for name, bad in (("queue_size", 0), ("key_momentum", 1.0), ("temperature", 0.0)):
        with pytest.raises(ValueError, match=f"{name}: {bad} is out of range"):
            PAL(small_config(**{name: bad}))


class ClipPositionEncoder(torch.nn.Module):
    """A stand-in PAL encoder whatever the pixels: clip ``j`` of every video gets the unit vector
    ``e_j`` (of 16 dimensions), so a region feature shows exactly which clips were pooled."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, clips):  # [B, J, 3, L, S, S] -> [B, J, 16]
        b, j = clips.shape[:2]
        return torch.eye(j, 16).expand(b, j, 16) + 0 * self.unused


def test_step_pools_each_view_over_its_own_region():
    """PAL eqs. (6)-(7) through ``PAL.step``: the query is the mean of the first view's clips inside
    the first region, the key that of the second view inside the second region; InfoNCE with τ = 0.07
    (PAL §4.1) against the queue; the accuracy counts queries whose own key is the most similar."""
    config = small_config(clip_length_frames=2, crop_size=8, resize_short_side=10)
    method = PAL(config)
    model = ClipPositionEncoder()
    method.attach(model)
    e = torch.eye(16)
    method.queue = torch.stack([e[0], e[1], -e[3]])
    batch = {"clip": torch.zeros(3, 2, 8, 10, 10, 3, dtype=torch.uint8),  # 4 clips of 2 frames per view
             "region": torch.tensor([[[0, 2], [2, 4]], [[1, 4], [0, 1]], [[3, 4], [3, 4]]])}
    out = method.step(model, batch, train=True, generator=torch.Generator().manual_seed(0))
    s2, s3 = math.sqrt(2), math.sqrt(3)
    # queries (e0+e1)/√2, (e1+e2+e3)/√3, e3; keys (e2+e3)/√2, e0, e3
    positive = [0.0, 0.0, 1.0]
    negatives = [[1 / s2, 1 / s2, 0.0], [0.0, 1 / s3, -1 / s3], [0.0, 0.0, -1.0]]  # q · (e0, e1, -e3)
    tau = 0.07
    expected = np.mean([-math.log(math.exp(p / tau) / (math.exp(p / tau) + sum(math.exp(n / tau) for n in ns)))
                        for p, ns in zip(positive, negatives)])
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    # q · k of every pair: rows (0, 1/√2, 0), (2/√6, 0, 1/√3), (1/√2, 0, 1): only query 2 finds its key
    assert out.head_correct["region"].item() == 1 and out.head_count["region"].item() == 4 - 1
    # the keys wait for the queue until after the optimizer step
    keys = torch.stack([(e[2] + e[3]) / s2, e[0], e[3]])
    assert torch.allclose(method._pending_keys, keys, atol=1e-6)
    assert torch.equal(method.queue, torch.stack([e[0], e[1], -e[3]]))


@pytest.mark.parametrize("with_videos", [True, False])
def test_batch_negatives_are_the_other_pairs_keys_of_other_videos(with_videos):
    """``negatives="batch"``: eq. (7)'s negatives are the step's other keys, not the queue. The regions
    of ``test_step_pools_each_view_over_its_own_region`` (queries (e0+e1)/√2, (e1+e2+e3)/√3, e3;
    keys (e2+e3)/√2, e0, e3); with source videos 0, 1, 0 the third pair's key is no negative of the
    first query nor the first's of the third. The queue neither serves nor changes."""
    config = small_config(clip_length_frames=2, crop_size=8, resize_short_side=10, negatives="batch")
    method = PAL(config)
    model = ClipPositionEncoder()
    method.attach(model)
    queue_before = method.queue.clone()
    batch = {"clip": torch.zeros(3, 2, 8, 10, 10, 3, dtype=torch.uint8),
             "region": torch.tensor([[[0, 2], [2, 4]], [[1, 4], [0, 1]], [[3, 4], [3, 4]]])}
    if with_videos:
        batch["video_index"] = torch.tensor([0, 1, 0])
    out = method.step(model, batch, train=True, generator=torch.Generator().manual_seed(0))
    s2, s3, tau = math.sqrt(2), math.sqrt(3), 0.07
    # q_i · k_j by hand: rows (0, 1/√2, 0), (2/√6, 0, 1/√3), (1/√2, 0, 1)
    sim = [[0.0, 1 / s2, 0.0], [2 / (s2 * s3), 0.0, 1 / s3], [1 / s2, 0.0, 1.0]]
    same = [[0, 2], [2, 0]] if with_videos else []
    expected = []
    for i in range(3):
        negatives = [sim[i][j] for j in range(3) if j != i and [i, j] not in same]
        pos = math.exp(sim[i][i] / tau)
        expected.append(-math.log(pos / (pos + sum(math.exp(n / tau) for n in negatives))))
    assert out.loss.item() == pytest.approx(np.mean(expected), rel=1e-5)
    method.after_optimizer_step(type("Ctx", (), {"model": model})())
    assert torch.equal(method.queue, queue_before)


def test_negatives_option_is_checked():
    with pytest.raises(ValueError, match="negatives: 'memory' is not a valid choice; valid: queue, batch"):
        PAL(small_config(negatives="memory"))


class CornerColour(torch.nn.Module):
    """A stand-in PAL encoder that sees the crop, flip and colours: clip feature = the colour of the
    clip's first top-left pixel (3 of 16 dimensions) plus a constant in dimension 3."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, clips):  # [B, J, 3, L, S, S] -> [B, J, 16]
        out = torch.zeros(*clips.shape[:2], 16)
        out[..., :3] = clips[:, :, :, 0, 0, 0]
        out[..., 3] = 1.0
        return out + 0 * self.unused


@pytest.mark.parametrize("train", [True, False])
def test_step_augments_the_query_view_then_the_key_view(train):
    """Each synthesized video gets its own augmentation, drawn from the step's generator, query (the
    first view) first (PAL §3.2.1); in evaluation the centre crop."""
    config = small_config(clip_length_frames=2, crop_size=6, resize_short_side=10)
    method = PAL(config)
    model = CornerColour()
    method.attach(model)
    method.queue = torch.nn.functional.normalize(torch.randn(5, 16, generator=torch.Generator().manual_seed(2)), dim=1)
    videos = torch.randint(0, 256, (3, 2, 8, 10, 10, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    region = torch.tensor([[[0, 2], [1, 3]], [[1, 4], [0, 4]], [[2, 3], [3, 4]]])
    out = method.step(model, {"clip": videos, "region": region}, train=train,
                      generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    views = []
    for v in (0, 1):
        x = augment_videos(videos[:, v], 6, train=train, generator=g)  # [B, 8, 3, 6, 6]
        views.append(model(x.view(3, 4, 2, 3, 6, 6).transpose(2, 3)))  # 4 clips of 2 frames
    q = region_features(views[0], region[:, 0, 0], region[:, 0, 1])
    k = region_features(views[1], region[:, 1, 0], region[:, 1, 1])
    expected, _ = info_nce(q, k, method.queue, 0.07)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert not torch.allclose(views[0], views[1])  # the two views differ, so swapping them would show
    if train:
        assert torch.allclose(method._pending_keys, k, atol=1e-6)
    else:
        assert method._pending_keys is None  # validation keys never enter the queue


def test_frames_of_different_sizes_are_named():
    frames = DictFrames([40, 50, 60], side=6)
    frames.videos["v2.mp4"] = np.zeros((60, 4, 4, 3), np.uint8)  # smaller than frame_side: cannot blend
    config = small_config(clip_length_frames=2)
    ds = PALDataset(_table(3), "/videos", frames, clip_length_frames=2, frame_side=6, options=config.options)
    with pytest.raises(ValueError, match=r"PAL pair 0: pasting v0.mp4 onto v\d.mp4"):
        ds[0]


def test_presets_bring_pal_its_own_settings_and_user_overrides_win():
    from tsplab.pretrain.methods.pal import PAL_SYNTHETIC_OVERRIDES
    from tsplab.pretrain.recipes import pretrain_config

    synthetic = pretrain_config("synthetic", method="pal", dataset_dir="x")
    assert synthetic.options.queue_size == PAL_SYNTHETIC_OVERRIDES["queue_size"]
    paper = pretrain_config("tsp", method="pal", dataset_dir="x")
    assert (paper.optimizer, paper.backbone_lr, paper.weight_decay) == ("adam", 1e-4, 1e-5)  # PAL §4.1
    assert pretrain_config("synthetic", method="pal", dataset_dir="x", batch_size=8).batch_size == 8
    assert pretrain_config("synthetic", method="tsp", dataset_dir="x").optimizer == "adam"  # unchanged


# ------------------------------------------------------------- the paper's optimisation and clip
def test_pal_trains_as_its_paper_under_every_preset(tmp_path):
    """PAL §4.1 under both recipes: Adam, lr 1e-4 for every group (1e-3 on the synthetic benchmark:
    the measured deviation of PAL_SYNTHETIC_OVERRIDES), weight decay 1e-5, ÷10 on a validation-loss
    plateau (no milestones, no warm-up), 8-frame clips, even where a benchmark's own clip is 16
    frames; a user's override still wins."""
    import json

    from tsplab.pretrain.config import check_config
    from tsplab.pretrain.optim import build_lr_scheduler, WarmupPlateau

    (tmp_path / "benchmark.json").write_text(json.dumps(
        {"config": {"clip_length_frames": 16, "fps": 15.0, "clip_short_side": 32}, "seed": 0}))
    for recipe in ("tsp", "synthetic"):
        config = pretrain_config(recipe, method="pal", dataset_dir=str(tmp_path))
        check_config(config)
        lr = 1e-4 if recipe == "tsp" else 1e-3
        assert (config.optimizer, config.backbone_lr, config.fc_lr, config.stem_lr, config.weight_decay) == \
            ("adam", lr, lr, lr, 1e-5), recipe
        assert (config.lr_schedule, config.lr_gamma, config.lr_milestones) == ("plateau", 0.1, ()), recipe
        assert config.warmup_epochs == 0.0, recipe
        assert config.clip_length_frames == 8, recipe
        model = torch.nn.Linear(2, 2)
        scheduler = build_lr_scheduler(torch.optim.Adam(model.parameters(), lr=1e-4), config, steps_per_epoch=5)
        assert isinstance(scheduler.lr_lambdas[0], WarmupPlateau)
    assert pretrain_config("synthetic", method="pal", dataset_dir=str(tmp_path)).resize_short_side == 32
    assert pretrain_config("tsp", method="pal", dataset_dir="x", clip_length_frames=4).clip_length_frames == 4


# ------------------------------------------------------------------------------- shuffled BN
class BatchNormMean(torch.nn.Module):
    """A stand-in backbone: batch norm (no affine), then the mean over time and space ([N, 3, L, S, S]
    -> [N, 3]), so its output shows which statistics normalised each clip."""

    feature_dim = 3

    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm3d(3, affine=False)

    def forward(self, x):
        return self.bn(x).mean(dim=(2, 3, 4))


def _normalised_mean(x):
    """Hand-made batch norm of ``x`` [N, 3, L, S, S] with its own statistics, then the mean -> [N, 3]."""
    mean = x.mean(dim=(0, 2, 3, 4), keepdim=True)
    var = x.var(dim=(0, 2, 3, 4), unbiased=False, keepdim=True)
    return ((x - mean) / torch.sqrt(var + 1e-5)).mean(dim=(2, 3, 4))


def test_model_normalises_each_sub_batch_of_videos_with_its_own_statistics():
    from tsplab.pretrain.methods.pal import PALModel

    g = torch.Generator().manual_seed(0)
    # 5 videos of 2 clips, each video with its own mean, so every sub-batch has other statistics
    clips = torch.randn(5, 2, 3, 2, 4, 4, generator=g) + torch.arange(5.0).view(5, 1, 1, 1, 1, 1) * 3
    seen = []
    for splits, groups in ((2, [[0, 1, 2], [3, 4]]), (1, [[0, 1, 2, 3, 4]])):
        model = PALModel(BatchNormMean(), embed_dim=4, bn_splits=splits).train()
        hook = model.features.register_forward_hook(lambda m, i, o: seen.append(o))
        model(clips)
        hook.remove()
        got = torch.cat(seen[-len(groups):])
        expected = torch.cat([_normalised_mean(clips[v].flatten(0, 1)) for v in groups])
        assert torch.allclose(got, expected, atol=1e-5), splits  # each video's clips stay in one group
    assert not torch.allclose(seen[0], seen[-1][:6], atol=1e-3)  # the split changes the statistics
    # evaluation: running statistics, one pass
    model.eval()
    seen.clear()
    model.features.register_forward_hook(lambda m, i, o: seen.append(o))
    model(clips)
    assert len(seen) == 1 and seen[0].shape == (10, 3)


class VideoIds(torch.nn.Module):
    """A stand-in backbone that records which videos each of its calls saw (pixel value // 10 is the
    video's number) and returns the clips' mean pixel."""

    feature_dim = 3

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(1, 3)
        self.calls = []

    def forward(self, x):  # [N, 3, L, S, S]
        self.calls.append(sorted(set((x[:, 0, 0, 0, 0] // 10).long().tolist())))
        return self.fc(x.mean(dim=(1, 2, 3, 4))[:, None])


@pytest.mark.parametrize("train", [True, False])
def test_key_encoder_normalises_a_shuffled_batch(monkeypatch, train):
    """MoCo §3.3 on one device: the query encoder normalises consecutive sub-batches of videos, the
    key encoder the sub-batches of an order drawn from the step's generator (after the views'
    augmentations), so a query's and its positive key's statistics come from different videos; the
    keys come back in the batch's order. Without the shuffle both would see {0, 1} and {2, 3}."""
    import tsplab.pretrain.methods.pal as pal_module
    from tsplab.pretrain.methods.pal import PALModel

    # No augmentation: pixel values keep each video's number (and no random draw is used up).
    monkeypatch.setattr(pal_module, "augment_videos",
                        lambda videos, crop, *, train, generator=None: videos.permute(0, 1, 4, 2, 3).float())
    config = small_config(clip_length_frames=2, crop_size=4, resize_short_side=4, bn_splits=2)
    method = PAL(config)
    model = PALModel(VideoIds(), embed_dim=16, bn_splits=2)
    method.attach(model)
    model.train(train)
    videos = torch.zeros(4, 2, 4, 4, 4, 3, dtype=torch.uint8)  # 4 pairs of 2 clips of 2 frames
    for b in range(4):
        videos[b, 0], videos[b, 1] = 10 * b, 10 * b + 1
    region = torch.tensor([[[0, 1], [1, 2]]] * 4)
    method.step(model, {"clip": videos, "region": region}, train=train, generator=torch.Generator().manual_seed(1))
    if not train:
        assert model.features.calls == [[0, 1, 2, 3]] and method.key_model.features.calls == [[0, 1, 2, 3]]
        return
    order = torch.randperm(4, generator=torch.Generator().manual_seed(1)).tolist()
    key_groups = [sorted(order[:2]), sorted(order[2:])]
    assert model.features.calls == [[0, 1], [2, 3]]
    assert method.key_model.features.calls == key_groups
    # with this seed's order every key is normalised with other videos than its query
    for v in range(4):
        assert next(g for g in key_groups if v in g) != next(g for g in [[0, 1], [2, 3]] if v in g), v
    # the keys are back in the batch's order (this backbone has no batch norm: order-free features)
    method.key_model.eval()
    xk = videos[:, 1].permute(0, 1, 4, 2, 3).float().view(4, 2, 2, 3, 4, 4).transpose(2, 3)
    expected = region_features(method.key_model(xk), region[:, 1, 0], region[:, 1, 1])
    assert torch.allclose(method._pending_keys, expected, atol=1e-6)


# ------------------------------------------------------------- pairing, metric and false negatives
class SourceIdentity(torch.nn.Module):
    """A stand-in PAL encoder, the same function for queries and keys: clip feature = one-hot of the
    clip's channel-1 value // 40 (``DictFrames``: video ``v`` is 40 * (v + 1), so with beta = 1 a
    region's clips show its source video and the background's clips another)."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, clips):  # [B, J, 3, L, S, S] -> [B, J, 16]
        ids = (clips[:, :, 1, 0, 0, 0] // 40).long()
        return torch.nn.functional.one_hot(ids, 16).float() + 0 * self.unused


@pytest.mark.parametrize("train", [True, False])
def test_an_encoder_of_the_source_video_retrieves_every_key_and_its_positive_wins(monkeypatch, train):
    """Query and key embeddings from the same function of the input, regions pasted at beta = 1: each
    region is its source video, so every query retrieves its own key (accuracy 1.0), also when the
    batch holds two pairs of one video (samples_per_video = 2), and the positive is the largest
    logit although the queue holds another key of the query's video: that key is no negative in
    training (PAL's queue of 16,384 of 240k Kinetics videos never holds one). Without the exclusion
    the tie gives a loss >= ln 2; without the metric's exclusion the accuracy is 0.5."""
    import tsplab.pretrain.methods.pal as pal_module

    monkeypatch.setattr(pal_module, "augment_videos",  # no augmentation: pixel values stay video numbers
                        lambda videos, crop, *, train, generator=None: videos.permute(0, 1, 4, 2, 3).float())
    config = small_config(clip_length_frames=2, crop_size=6, resize_short_side=6, beta_range=(1.0, 1.0),
                          samples_per_video=2, queue_size=4, temperature=1.0)  # tau 1: losses far from 0
    method = PAL(config)
    ds = PALDataset(_table(6), "/videos", DictFrames([40, 50, 60, 70, 80, 90]), clip_length_frames=2,
                    frame_side=6, options=config.options, seed=0)
    batch = torch.utils.data.default_collate([ds[(i, 0)] for i in range(12)])  # videos 0,0,1,1,...,5,5
    assert batch["video_index"].tolist() == [v for v in range(6) for _ in range(2)]
    model = SourceIdentity()
    method.attach(model)
    # queue rows: a key of video 0 (e_1), of video 1 (e_2), and two of no known video
    method.enqueue(torch.nn.functional.one_hot(torch.tensor([1, 2, 10, 11]), 16).float(), torch.tensor([0, 1, -1, -1]))
    out = method.step(model, batch, train=train, generator=torch.Generator().manual_seed(0))
    assert out.head_correct["region"].item() == 12 and out.head_count["region"].item() == 12
    # q = k = e_(v+1): the positive logit is 1; queue rows give 0, or 1 for the own video's row,
    # which training leaves out (validation keys never enter the queue, so nothing is left out there)
    e = math.exp(-1)
    own_row = [math.log(2 + 3 * e)] * 4 if not train else [math.log1p(3 * e)] * 4
    expected = np.mean(own_row + [math.log1p(4 * e)] * 8)
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    if train:  # the keys enter the queue with their source videos
        method.after_optimizer_step(type("Ctx", (), {"model": model})())
        assert method.queue_video.tolist() == batch["video_index"][-4:].tolist()


def test_info_nce_leaves_out_excluded_queue_rows():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    queue = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    exclude = torch.tensor([[True, False], [False, False]])
    loss, logits = info_nce(q, k, queue, 0.5, exclude)
    # query 0: positive 1/0.5 against row 1 only (row 0 excluded); query 1: 0.8/0.5 against 0 and -2
    expected = (math.log1p(math.exp(0 - 2)) + -math.log(math.exp(1.6) / (math.exp(1.6) + 1 + math.exp(-2)))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert logits[0, 1] == float("-inf") and logits.shape == (2, 3)


def test_validation_draws_one_pair_per_video(tmp_path):
    """Validation batches are not shuffled: with two pairs per video each batch would hold every video
    twice (a retrieval ceiling of ~0.5 at a chance of 1/16). Training keeps its samples_per_video."""
    from tsplab.pretrain.methods.base import PretrainData

    frames = DictFrames([40, 50, 60, 70])
    config = small_config(clip_length_frames=2, resize_short_side=6, samples_per_video=2)
    data = PretrainData(train_table=_table(4), valid_table=_table(4), labels=["x"], video_dir=tmp_path,
                        frames=frames, clip_length_frames=2, frame_rate=15.0)
    train, valid = PAL(config).build_datasets(data)
    assert len(train) == 8 and len(valid) == 4
    assert [int(valid[(i, 0)]["video_index"]) for i in range(4)] == [0, 1, 2, 3]


def test_without_pasting_both_views_are_one_clip_of_the_source_video():
    """``pasting=False``, the MoCo-v2-style control: no background in either view, both views the same
    frames of one source region (their augmentation, in ``step``, is what differs), the whole
    synthesized video as the region; the same input size as PAL's."""
    frames = DictFrames([60, 70, 80, 90])
    options = small_config(clip_length_frames=2, pasting=False).options
    ds = PALDataset(_table(4), "/videos", frames, clip_length_frames=2, frame_side=6, options=options, seed=0)
    pal = PALDataset(_table(4), "/videos", frames, clip_length_frames=2, frame_side=6,
                     options=small_config(clip_length_frames=2).options, seed=0)
    strides = set()
    for index in range(4):
        for epoch in range(4):
            item = ds[(index, epoch)]
            assert item["clip"].shape == pal[(index, epoch)]["clip"].shape == (2, 8, 6, 6, 3)
            assert torch.equal(item["clip"][0], item["clip"][1])  # one clip, two views
            assert (item["clip"][..., 1] == 40 * (index + 1)).all()  # nothing but the source video
            assert item["background"].tolist() == [-1, -1] and item["region"].tolist() == [[0, 4], [0, 4]]
            assert item["beta"].tolist() == [1.0, 1.0]
            strides.add(int(item["stride"][0]))
    assert strides == {1, 2, 3, 4}  # scale-aware sampling still draws the region's stride
    # one video is enough to make a pair without backgrounds
    PALDataset(_table(1), "/videos", frames, clip_length_frames=2, frame_side=6, options=options)
    assert PALOptions().pasting is True


@pytest.mark.filterwarnings("ignore:.*segments dropped")
def test_pal_pretrains_from_scratch_on_the_benchmarks_trimmed_source_set(tiny_benchmark, tmp_path, capsys):
    """PAL §4.1.1: unlabelled trimmed videos (Kinetics' role: the benchmark's source set), from random
    weights, through the CLI; the source set's clip is its benchmark's."""
    import json
    import shutil

    from tsplab.cli import main
    from tsplab.benchmark import generate_source

    bench = tmp_path / "bench"
    shutil.copytree(tiny_benchmark, bench)
    source = generate_source(bench, workers=1, progress=False)
    code = main(["pretrain", "--recipe", "synthetic", "--method", "pal", "--weights", "none", "--dataset",
                 str(source), "--run-dir", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "4",
                 "--workers", "0", "--set", "max_steps_per_epoch=2", "--set", "progress=false"])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "run" / "pretrain" / "pal"
    config = json.loads((out / "config.json").read_text())
    assert config["weights"] is None and config["resize_short_side"] == 16  # the tiny benchmark's clip
    split = pd.read_csv(out / "pretrain_split.csv")
    assert split["video"].str.startswith("src_train_").all()  # source training videos only
    assert (out / "best.pt").is_file()
