"""BSP: the four syntheses (eqs. 1-3) on tiny arrays, the dataset's types and labels, the pretext
variants, losses going down, a 1-epoch run whose checkpoint extracts, distillation, and where the
syntheses draw from (the trimmed source set by default, BSP §3.2). Two-stream features:
tests/test_feature_join.py."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tsplab.backbones import build_backbone, load_backbone_weights
from tsplab.pretrain.methods import get_method
from tsplab.pretrain.methods.bsp import SOURCE_RECORD, BSP, change_point_heatmap, change_point_hits
from tsplab.pretrain.methods.bsp_data import (NO_CHANGE, BSPClipDataset, blend_weights, diff_class_boundary,
                                              diff_speed_boundary, same_class_boundary, same_speed,
                                              speed_change_indices)
from tsplab.pretrain import pretrain, read_metrics
from tsplab.pretrain.data import prepare_data
from tsplab.pretrain.recipes import pretrain_config
from tsplab.pretrain.sampling import NO_LABEL


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------ synthesis
def test_diff_class_blend_follows_eq1():
    first = 100.0 + np.arange(6)[:, None]  # c + ε = 6 frames
    second = 200.0 + np.arange(6)[:, None]  # L - c + ε = 6 frames
    clip, c = diff_class_boundary(first, second, change_frame=4, blend_frames=2)
    assert c == 4 and clip.shape == (8, 1)
    # ω1(i) = (τ + ε - i) / 2ε on (τ - ε, τ + ε] (1-based i), with τ = 4, ε = 2
    np.testing.assert_allclose(blend_weights(8, 4, 2), [1, 1, 0.75, 0.5, 0.25, 0, 0, 0])
    expected = [100, 101, 0.75 * 102 + 0.25 * 200, 0.5 * 103 + 0.5 * 201, 0.25 * 104 + 0.75 * 202,
                203, 204, 205]  # second starts at output frame τ - ε = 2 (f_{2, i-τ+ε})
    np.testing.assert_allclose(clip[:, 0], expected)
    # uint8 frames are blended in float and rounded back
    a = np.full((6, 2, 2, 3), 10, np.uint8)
    b = np.full((6, 2, 2, 3), 13, np.uint8)
    mixed, _ = diff_class_boundary(a, b, 4, 2)
    assert mixed.dtype == np.uint8 and mixed[:, 0, 0, 0].tolist() == [10, 10, 11, 12, 12, 13, 13, 13]
    with pytest.raises(ValueError, match="needs 6 frames of the first clip"):
        diff_class_boundary(first[:5], second, 4, 2)
    with pytest.raises(ValueError, match=r"^blend over 2ε = 4 frames around change frame 1 does not fit"):
        blend_weights(8, 1, 2)
    with pytest.raises(ValueError, match="does not fit"):
        blend_weights(8, 7, 2)  # the blend would run past the last frame
    np.testing.assert_allclose(blend_weights(4, 2, 1), [1, 0.5, 0, 0])  # ε = 1: one mixed frame


def test_same_class_concatenates_at_the_change_frame():
    first, second = np.arange(3)[:, None], 50 + np.arange(5)[:, None]
    clip, c = same_class_boundary(first, second)
    assert c == 3 and clip[:, 0].tolist() == [0, 1, 2, 50, 51, 52, 53, 54]


def test_speed_change_index_pattern_eq3():
    assert speed_change_indices(8, 4, 2.0).tolist() == [0, 1, 2, 3, 5, 7, 9, 11]  # frames skipped
    assert speed_change_indices(8, 4, 0.5).tolist() == [0, 1, 2, 3, 4, 4, 5, 5]  # frames repeated
    assert speed_change_indices(6, 2, 3.0).tolist() == [0, 1, 4, 7, 10, 13]
    frames = np.arange(20)[:, None] * 2
    clip, c = diff_speed_boundary(frames, 8, 4, 2.0)
    assert c == 4 and clip[:, 0].tolist() == [0, 2, 4, 6, 10, 14, 18, 22]
    with pytest.raises(ValueError, match="needs 12 source frames, got 10"):
        diff_speed_boundary(frames[:10], 8, 4, 2.0)
    with pytest.raises(ValueError, match="!= 1"):
        speed_change_indices(8, 4, 1.0)


def test_speed_and_same_class_limits():
    # the change may come right after the first frame, never at the last
    assert speed_change_indices(4, 1, 2.0).tolist() == [0, 2, 4, 6]
    with pytest.raises(ValueError, match=r"^change frame 8 must be in \[1, 7\] for a clip of 8$"):
        speed_change_indices(8, 8, 2.0)
    with pytest.raises(ValueError, match="must be > 0"):
        speed_change_indices(8, 4, 0.0)
    # one source frame short of the last index (11): refused with the count, not an IndexError
    with pytest.raises(ValueError, match="needs 12 source frames, got 11"):
        diff_speed_boundary(np.arange(11)[:, None], 8, 4, 2.0)
    clip, c = same_class_boundary(np.array([[7]]), np.array([[9]]))  # one frame on each side
    assert c == 1 and clip[:, 0].tolist() == [7, 9]
    for first, second in ((np.zeros((0, 1)), np.ones((3, 1))), (np.ones((3, 1)), np.zeros((0, 1)))):
        with pytest.raises(ValueError, match=r"^same-class boundary needs frames on both sides, got \d \+ \d$"):
            same_class_boundary(first, second)


def test_same_speed_is_the_clip_itself():
    frames = np.arange(8)[:, None]
    clip, c = same_speed(frames)
    assert c == NO_CHANGE and np.array_equal(clip, frames)


def test_change_point_heatmap_and_hits():
    change = torch.tensor([4, 1, NO_CHANGE])
    y = change_point_heatmap(change, 8)
    t = torch.arange(8.0)
    # BSP §3.3: y_t = exp(-(t - μ)² / 2τ), τ = L/2 = 4, μ the last frame before the boundary
    torch.testing.assert_close(y[0], torch.exp(-((t - 3) ** 2) / 8))
    assert y[1].argmax().item() == 0 and y[1, 0].item() == 1.0
    assert torch.all(y[2] == 0)
    pred = torch.zeros(3, 8)
    pred[0, 4] = 1.0  # one frame off: a hit
    pred[1, 3] = 1.0  # three frames off: a miss
    pred[2, 5] = 0.3  # no boundary and no peak above 0.5: a hit
    assert change_point_hits(pred, change).tolist() == [True, False, True]


def test_change_point_hits_tolerate_exactly_one_frame():
    """BSP's regression accuracy (our reading, ``change_point_hits``): the predicted peak lies within
    one frame of the heat map's peak (frame ``c - 1``); a row without a boundary counts when its
    maximum stays below 0.5."""
    change = torch.tensor([4, 4, 4, 4, 4, 1, 8, NO_CHANGE, NO_CHANGE])
    pred = torch.zeros(9, 8)
    for row, peak in enumerate([3, 2, 4, 1, 5, 1, 5]):  # heat-map peaks at frames 3, ..., 0, 7
        pred[row, peak] = 1.0
    pred[7, 2] = 0.5  # no boundary but a maximum of exactly 0.5: a miss
    pred[8, 2] = 0.49
    assert change_point_hits(pred, change).tolist() == [True, True, True, False, False, True, False,
                                                         False, True]


def test_only_the_no_change_sentinel_means_no_boundary():
    """A change frame of 0 is still a boundary (before the first frame, μ = -1); only ``NO_CHANGE``
    (< 0) rows get the all-zero heat map and the flat-prediction rule."""
    change = torch.tensor([0, NO_CHANGE])
    y = change_point_heatmap(change, 4)
    torch.testing.assert_close(y[0], torch.exp(-((torch.arange(4.0) + 1) ** 2) / 4))
    assert torch.all(y[1] == 0)
    pred = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.2, 0.0, 0.0, 0.0]])
    assert change_point_hits(pred, change).tolist() == [True, True]  # peak 1 frame from μ = -1
    pred[0] = torch.tensor([0.1, 0.0, 0.0, 0.3])  # peak 4 frames off, although below 0.5
    assert change_point_hits(pred, change).tolist() == [False, True]


# ------------------------------------------------------------------------------------- dataset
class Frames:
    def __init__(self, arrays):
        self.arrays = arrays

    def get(self, path):
        return self.arrays[Path(path).name]


def _table_and_frames(side: int = 4):
    """4 videos of 40 frames at 1 fps; frame n of video v has the value 40·v + n (so a clip's values
    tell which video and frame each of its frames comes from). Classes: a (v0, v1), b (v2, v3)."""
    rows = [("v0", 0, 20, "a"), ("v1", 5, 30, "a"), ("v2", 0, 39, "b"), ("v3", 10, 35, "b")]
    table = pd.DataFrame([dict(**{"video-name": v, "t-start": s, "t-end": e, "action-label": lab,
                                  "video-duration": 40.0, "filename": f"{v}.mp4", "fps": 1.0,
                                  "video-frames": 40, "temporal-region-label": "Action"})
                          for v, s, e, lab in rows])
    background = table.iloc[[0]].assign(**{"t-start": 20, "t-end": 40, "action-label": "None",
                                           "temporal-region-label": "No action"})
    table = pd.concat([table, background], ignore_index=True)
    arrays = {f"v{v}.mp4": np.broadcast_to((40 * v + np.arange(40, dtype=np.uint8))[:, None, None, None],
                                           (40, side, side, 3)).copy() for v in range(4)}
    return table, Frames(arrays)


def _dataset(jitter=True, **kw):
    table, frames = _table_and_frames()
    values = dict(clip_length_frames=8, frame_rate=1.0, clips_per_segment=2, jitter=jitter, seed=3)
    values.update(kw)
    return BSPClipDataset(table, "videos", frames, ["a", "b"], **values)


def test_dataset_synthesizes_each_type_from_the_right_sources():
    ds = _dataset()
    assert len(ds) == 8  # 4 foreground segments x 2 clips (the background row is not used)
    label_of_video = {0: 0, 1: 0, 2: 1, 3: 1}
    seen = set()
    for epoch in range(2):
        for index in range(len(ds)):
            item = ds[(index, epoch)]
            clip = item["clip"][:, 0, 0, 0].numpy().astype(int)
            video, frame = clip // 40, clip % 40
            kind = ds.boundaries[(index + epoch) % 4]
            seen.add(kind)
            assert item["boundary_label"].item() == ds.boundaries.index(kind)
            c = item["change_frame"].item()
            primary = label_of_video[index // 2]
            if kind == "ss":
                assert c == NO_CHANGE and np.all(np.diff(frame) == 1) and len(set(video)) == 1
                assert item["action_label"].item() == primary
            elif kind == "sc":
                assert 2 <= c <= 6 and np.all(np.diff(frame[:c]) == 1) and np.all(np.diff(frame[c:]) == 1)
                assert video[0] != video[-1] and label_of_video[video[-1]] == primary
                assert item["action_label"].item() == primary
            elif kind == "ds":
                steps = np.diff(frame)
                assert 2 <= c <= 6 and np.all(steps[:c - 1] == 1) and len(set(video)) == 1
                assert set(steps[c - 1:].tolist()) in ({0, 1}, {2}, {3})  # γ = 1/2, 2 or 3
                assert item["action_label"].item() == primary
            else:  # dc: pure first class, 2ε blended frames, pure second class
                assert item["action_label"].item() == NO_LABEL
                first, last = label_of_video[clip[0] // 40], label_of_video[clip[-1] // 40]
                assert first == primary and last != primary
                w = blend_weights(8, c, 2)
                pure_1, pure_2 = w == 1, w == 0
                assert np.all(np.diff(clip[pure_1]) == 1) and np.all(np.diff(clip[pure_2]) == 1)
    assert seen == {"dc", "sc", "ds", "ss"}
    # deterministic per (seed, epoch, index); validation clips do not change with the epoch
    again = _dataset()  # a new dataset with the same seed makes the same item
    assert torch.equal(again[(5, 1)]["clip"], ds[(5, 1)]["clip"])
    assert again[(5, 1)]["change_frame"] == ds[(5, 1)]["change_frame"]
    assert not torch.equal(_dataset(seed=4)[(5, 1)]["clip"], ds[(5, 1)]["clip"])  # the seed matters
    valid = _dataset(jitter=False)
    assert all(torch.equal(valid[(i, 0)]["clip"], valid[(i, 3)]["clip"]) for i in range(len(valid)))
    assert [valid[(i, 2)]["boundary_label"].item() for i in range(4)] == [0, 1, 2, 3]


def test_middle_change_point_and_binary_variants():
    ds = _dataset(boundaries=("ds", "ss"), middle_change_point=True)
    labels = [ds[(i, 0)]["boundary_label"].item() for i in range(len(ds))]
    assert labels == [0, 1] * 4
    assert {ds[(i, 0)]["change_frame"].item() for i in range(0, 8, 2)} == {4}  # L/2
    for variant in (("dc", "ss"), ("sc", "ss"), ("ds", "ss")):
        method = BSP(_config(boundaries=variant))
        assert method.head_names == ("boundary",)
    with pytest.raises(ValueError, match="at least two types"):
        BSP(_config(boundaries=("ss",)))
    with pytest.raises(ValueError, match="boundaries: .* valid: a list of: dc, sc, ds, ss"):
        BSP(_config(boundaries=("dc", "xx")))
    with pytest.raises(ValueError, match="distinct names among dc, sc, ds, ss"):
        BSP(_config(boundaries=("dc", "dc")))
    with pytest.raises(ValueError, match="speed_factors: .* != 1"):
        BSP(_config(speed_factors=(0.5, 1.0)))
    with pytest.raises(ValueError, match="speed_factors: .* out of range"):
        BSP(_config(speed_factors=(0.5, -2.0)))
    with pytest.raises(ValueError, match="loss: 'l2'"):
        BSP(_config(loss="l2"))
    with pytest.raises(ValueError, match="needs teachers"):
        BSP(_config(integration="distill"))
    with pytest.raises(ValueError, match="blend_frames: 5"):
        BSP(_config(blend_frames=5))
    assert BSP(_config(loss="regression", boundaries=("ds",))).regression
    assert BSP(_config(integration="two-head")).head_names == ("boundary", "action")
    assert get_method("bsp") is BSP


def _config(**kw):
    return pretrain_config("synthetic", method="bsp", dataset_dir="unused", resize_short_side=16, crop_size=16, **kw)


@pytest.mark.parametrize("options", [dict(), dict(loss="regression", boundaries=("sc",)),
                                     dict(integration="two-head")])
def test_a_few_steps_reduce_the_loss(options):
    torch.manual_seed(0)
    method = BSP(_config(**options))
    table, frames = _table_and_frames(side=16)
    ds = BSPClipDataset(table, "videos", frames, ["a", "b"], clip_length_frames=8, frame_rate=1.0,
                        clips_per_segment=2, jitter=True, seed=0, boundaries=method.boundaries)
    batch = {k: torch.stack([ds[(i, 0)][k] for i in range(len(ds))]) for k in ds[0]}
    data = type("D", (), {"labels": ["a", "b"], "clip_length_frames": 8})()
    model = method.build_model(build_backbone("r2plus1d_tiny"), data)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(8):
        out = method.step(model, batch, train=False)  # centre crop: the same inputs every step
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert set(out.head_losses) == set(method.head_names)
    assert int(out.head_count["boundary"]) == len(ds)
    assert losses[-1] < 0.6 * losses[0], losses


# -------------------------------------------------------------------------------- training run
@pytest.mark.filterwarnings("ignore:.*segments dropped")
def test_one_epoch_run_checkpoint_extracts_and_distills(tiny_benchmark, tmp_path):
    config = pretrain_config("synthetic", method="bsp", dataset_dir=str(tiny_benchmark), run_dir=str(tmp_path),
                             frame_cache_dir=str(tmp_path / "cache"), clips_per_segment=1, batch_size=8,
                             epochs=1, max_steps_per_epoch=3, workers=0, progress=False)
    result = pretrain(config)
    out = tmp_path / "pretrain" / "bsp"
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "best.pt", "data_report.csv"):
        assert (out / name).is_file(), name
    metrics = read_metrics(out)
    assert metrics["epoch"].tolist() == [0] and result.best_epoch == 0
    assert 0 <= metrics["valid_acc_boundary"].iat[0] <= 1
    assert metrics["valid_acc_avg"].iat[0] == metrics["valid_acc_boundary"].iat[0]
    best = torch.load(out / "best.pt", weights_only=True)
    assert {k.split(".")[0] for k in best["model"]} == {"features", "fc_boundary"}
    backbone = load_backbone_weights(build_backbone("r2plus1d_tiny"), out / "best.pt")
    assert torch.equal(backbone.stem[0].weight, best["model"]["features.stem.0.weight"])
    # BSP §3.2: the run synthesized from the benchmark's trimmed source set (source_dir="auto"), its
    # frames through the run's frame cache, and never decoded a target video; the run says so.
    record = json.loads((out / SOURCE_RECORD).read_text())
    source_ids = _source_ids(tiny_benchmark)
    assert (record["source_dir"], record["synthesized_from"]) == ("auto", "source")
    assert record["folder"] == str(tiny_benchmark / "source")
    assert (record["train_videos"], record["valid_videos"]) == tuple(len(source_ids[s]) for s in ("training", "validation"))
    cached = {path.stem for path in (tmp_path / "cache").rglob("*.npy")}
    assert cached == source_ids["training"] | source_ids["validation"]

    # feature distillation from two teachers (here both this run's encoder), one step on real clips
    distill = BSP(_config(integration="distill", teachers=(str(out), str(out / "best.pt"))))
    data = type("D", (), {"labels": ["a", "b", "c"], "clip_length_frames": 8})()
    model = distill.build_model(build_backbone("r2plus1d_tiny"), data)
    assert model.proj_tac.out_features == backbone.feature_dim
    assert not any(p.requires_grad for t in distill.teachers for p in t.parameters())
    batch = {"clip": torch.randint(0, 256, (4, 8, 16, 16, 3), dtype=torch.uint8),
             "boundary_label": torch.tensor([0, 1, 2, 3]), "action_label": torch.tensor([-1, 0, 1, 2]),
             "change_frame": torch.tensor([3, 4, 5, -1])}
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(4):
        step = distill.step(model, batch, train=False)
        optimizer.zero_grad()
        step.loss.backward()
        optimizer.step()
        losses.append(step.loss.item())
    assert set(step.head_losses) == {"boundary", "action"} and losses[-1] < losses[0]


# ----------------------------------------------------------------------- source of the clips
def _source_ids(benchmark) -> dict[str, set]:
    """The ids of the benchmark's trimmed source set per subset, read from its annotation file."""
    database = json.loads((benchmark / "source" / "annotations.json").read_text())["database"]
    return {subset: {v for v, info in database.items() if info["subset"] == subset}
            for subset in ("training", "validation")}


def _bsp_config(dataset_dir, tmp_path, **kw):
    return pretrain_config("synthetic", method="bsp", dataset_dir=str(dataset_dir), run_dir=str(tmp_path / "run"),
                           frame_cache_dir=str(tmp_path / "cache"), clips_per_segment=1, workers=0,
                           progress=False, **kw)


def _window_of(clip: np.ndarray, frames: np.ndarray) -> bool:
    """Whether ``clip`` [L, ...] is ``L`` consecutive frames of ``frames`` [N, ...]."""
    return any(np.array_equal(clip, frames[i:i + len(clip)]) for i in range(len(frames) - len(clip) + 1))


def test_syntheses_draw_from_the_source_set_by_default(tiny_benchmark, tmp_path):
    config = _bsp_config(tiny_benchmark, tmp_path, integration="two-head")
    method = BSP(config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a benchmark with a source set: no fallback warning
        data = prepare_data(method.data_config(config))
    train, valid = method.build_datasets(data)
    source_ids = _source_ids(tiny_benchmark)
    assert set(train.videos["video"]) == source_ids["training"]  # every src_train_* video, no target one
    assert set(valid.videos["video"]) == source_ids["validation"]
    assert data.labels == json.loads((tiny_benchmark / "source" / "action_label_mapping.json").read_text())
    # an ss item (type index 3 at epoch 0) is a window of its source video's cached frames
    item = train[(3, 0)]
    assert method.boundaries[item["boundary_label"].item()] == "ss"
    video = train.videos.iloc[item["video_index"].item()]
    assert video["video"].startswith("src_train_")
    assert _window_of(item["clip"].numpy(), data.frames.get(data.video_dir / video["filename"]))
    # the action head of two-head classifies the source classes (Kinetics' role in the paper)
    model = method.build_model(build_backbone("r2plus1d_tiny"), data)
    assert model.fc_action.out_features == len(data.labels)
    # the same folder given explicitly is the same source
    explicit = BSP(_bsp_config(tiny_benchmark, tmp_path, source_dir=str(tiny_benchmark / "source")))
    assert (explicit.source.kind, explicit.source.folder) == ("source", tiny_benchmark / "source")


@pytest.mark.filterwarnings("ignore:.*segments dropped")
def test_without_a_source_set_auto_warns_and_uses_the_target_clips(tiny_benchmark, tmp_path):
    plain = tmp_path / "plain"  # the target only: annotations and videos, no source/
    plain.mkdir()
    (plain / "annotations.json").symlink_to(tiny_benchmark / "annotations.json")
    (plain / "videos").symlink_to(tiny_benchmark / "videos")
    config = _bsp_config(plain, tmp_path, weights=None, resize_short_side=16, crop_size=14)
    method = BSP(config)
    with pytest.warns(UserWarning) as caught:
        data_config = method.data_config(config)
    message = str(caught[0].message)
    assert len(caught) == 1 and "\n" not in message
    assert message.startswith(f"BSP source_dir='auto': {plain} has no trimmed source set")
    assert "synthesizing from the target's training clips" in message and "BSP §3.2" in message
    assert data_config is config
    train, _ = method.build_datasets(prepare_data(data_config))
    assert train.videos["video"].str.startswith("train_").all()
    record = method.source.record(len(train.videos), 0)
    assert record["synthesized_from"] == "target" and record["note"] == message
    named = _bsp_config(plain, tmp_path, weights=None, source_dir="target")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for by name: no warning
        assert BSP(named).data_config(named) is named


def test_a_bad_source_folder_is_refused_before_anything_is_written(tiny_benchmark, tmp_path):
    from tsplab.errors import InputError

    half = tmp_path / "half"
    half.mkdir()
    (half / "annotations.json").write_text("{}")
    for folder, missing in ((tmp_path / "nope", "annotations.json: file not found"),
                            (half, "videos: folder not found")):
        with pytest.raises(InputError) as error:
            pretrain(_bsp_config(tiny_benchmark, tmp_path, source_dir=str(folder)))
        message = str(error.value)
        assert "\n" not in message and message.startswith(f"source_dir: {folder}/{missing} (source_dir=")
        assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
    for blank in ("", "  "):
        with pytest.raises(ValueError, match="source_dir: not given"):
            BSP(_config(source_dir=blank))


@pytest.mark.filterwarnings("ignore:.*segments dropped", "ignore:.*replaces the earlier run")
def test_killed_and_resumed_two_head_run_is_bit_identical(tiny_benchmark, tmp_path):
    def config(run_dir):
        return pretrain_config("synthetic", method="bsp", integration="two-head",
                               dataset_dir=str(tiny_benchmark), run_dir=str(run_dir),
                               frame_cache_dir=str(tmp_path / "cache"), clips_per_segment=1, batch_size=8,
                               epochs=2, max_steps_per_epoch=2, workers=0, progress=False)

    straight = pretrain(config(tmp_path / "a"))
    pretrain(config(tmp_path / "b"), stop_after_epochs=1)
    resumed = pretrain(config(tmp_path / "b"), resume=True)
    assert {"valid_acc_boundary", "valid_acc_action"} <= set(resumed.metrics.columns)
    for (name, p), q in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_a_run_saved_before_source_dir_existed_resumes_from_the_target_clips():
    """A BSP config.json without ``source_dir`` ran with the target's clips (the only source then);
    reading it back must not switch it to today's default ``auto``."""
    from tsplab.pretrain.config import config_from_dict

    old = config_from_dict({"method": "bsp", "options": {"loss": "classification"}})
    assert old.options.source_dir == "target"
    new = config_from_dict({"method": "bsp", "options": {"source_dir": "auto"}})
    assert new.options.source_dir == "auto"
