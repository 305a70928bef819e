"""Tests of tsplab.features: clip grid, encoding, GVF, extraction runs, formats, CLI, the video-id
rule where ids meet files, and the toolbox (ActionFormer, OpenTAD) config of a feature folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from pathlib import Path

from tsplab import checkpoints
from tsplab import features as F
from tsplab.features import encoding as E
from tsplab.features import extraction as X
from tsplab.errors import InputError
from tsplab.features.config import ExtractionConfig


class _MeanColour(nn.Module):
    """A stand-in backbone: [B, 3, L, H, W] -> [B, 3 * L] (each frame's mean colour), so a feature
    tells exactly which frames its clip held."""

    feature_dim = None

    def forward(self, x):
        return x.mean(dim=(3, 4)).flatten(1)


def _to_float(clips):
    """uint8 [B, L, H, W, 3] -> float [B, 3, L, H, W] in 0..255 (no normalisation)."""
    return clips.permute(0, 4, 1, 2, 3).float()


def _numbered_frames(n, h=4, w=6):
    """[n, h, w, 3] uint8 where every pixel of frame k has value k (so features read back k)."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, h, w, 3)).copy()


@pytest.mark.parametrize("n,length,stride,expected_t", [
    (1, 8, 4, 1), (7, 8, 4, 1), (8, 8, 4, 1), (9, 8, 4, 2), (12, 8, 4, 2), (13, 8, 4, 3),
    (64, 8, 8, 8), (65, 8, 8, 9), (30, 16, 16, 2),
])
def test_clip_grid_count_and_padding(n, length, stride, expected_t):
    idx = E.clip_frame_indices(n, length, stride)
    assert idx.shape == (expected_t, length)
    assert list(idx[:, 0]) == [min(i * stride, n - 1) for i in range(expected_t)]
    # Windows run consecutively and the tail repeats the last frame.
    assert idx[-1, -1] == n - 1 and idx.max() == n - 1
    full = np.minimum(idx[:, :1] + np.arange(length), n - 1)
    np.testing.assert_array_equal(idx, full)


def test_clip_grid_covers_every_frame_with_no_spare_window():
    """Property: for any video length, clip length and stride, the windows (i * stride, L frames,
    the last frame repeated past the end) reach the last frame, cover every frame when the stride is
    at most L, the last window is needed (without it the end is missed), and the count is
    ``tsplab.video.num_clip_windows``'s."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tsplab.video import num_clip_windows

    @settings(max_examples=100, deadline=None)
    @given(st.integers(1, 300), st.integers(1, 32), st.integers(1, 32))
    def check(n, length, stride):
        idx = E.clip_frame_indices(n, length, stride)
        t = len(idx)
        assert t == num_clip_windows(n, length, stride) >= 1
        assert idx.min() == 0 and idx[-1, -1] == n - 1  # from the first frame to the last
        if stride <= length:  # windows that touch or overlap: every frame is in one
            assert set(idx.ravel().tolist()) == set(range(n))
            assert (t - 1) * stride < n  # and every window starts inside the video
        assert t == 1 or (t - 2) * stride + length < n  # without the last window the end is missed
        np.testing.assert_array_equal(idx[:, 0], np.minimum(np.arange(t) * stride, n - 1))
    check()


def test_encode_frames_matches_hand_made_clips():
    frames = _numbered_frames(21)
    feats = E.encode_frames(_MeanColour(), frames, clip_length_frames=4, stride_frames=3,
                            transform=_to_float, batch_size=2)
    # T = ceil((21 - 4) / 3) + 1 = 7; clip i holds frames 3i..3i+3, clipped at frame 20.
    assert feats.shape == (7, 12) and feats.dtype == np.float32
    for i in range(7):
        expected = np.minimum(np.arange(3 * i, 3 * i + 4), 20)
        np.testing.assert_allclose(feats[i].reshape(3, 4), np.tile(expected, (3, 1)))
    # The backbone's train/eval mode is left as it was (pretraining calls this mid-training).
    model = _MeanColour().train()
    E.encode_frames(model, frames, 4, 3, _to_float)
    assert model.training
    # Batch size does not change the result.
    np.testing.assert_array_equal(
        feats, E.encode_frames(_MeanColour(), frames, 4, 3, _to_float, batch_size=64))


def test_encode_frames_rejects_wrong_dtype():
    with pytest.raises(ValueError, match="uint8"):
        E.encode_frames(_MeanColour(), np.zeros((4, 2, 2, 3), np.float32), 2, 1, _to_float)


def test_pool_gvf_max_and_avg():
    feats = np.array([[1.0, -2.0, 0.5], [3.0, -1.0, 0.0], [-1.0, -4.0, 1.0]], np.float32)
    np.testing.assert_array_equal(F.pool_gvf(feats), [3.0, -1.0, 1.0])
    np.testing.assert_allclose(F.pool_gvf(feats, "avg"), [1.0, -7 / 3, 0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="pooling"):
        F.pool_gvf(feats, "median")
    with pytest.raises(ValueError, match=r"\[T, C\]"):
        F.pool_gvf(np.zeros((0, 3)))


def test_gvf_h5_round_trip_tsp_layout(tmp_path):
    import h5py

    gvfs = {"v_abc": np.arange(4, dtype=np.float32), "video_test_0000004": -np.ones(4, np.float32)}
    path = F.write_gvf_h5(tmp_path / "gvf.h5", gvfs)
    with h5py.File(path, "r") as f:  # TSP's layout: one [C] dataset per video key
        assert sorted(f.keys()) == ["v_abc", "video_test_0000004"]
        assert f["v_abc"].shape == (4,)
    back = F.read_gvf_h5(path)
    assert back.keys() == gvfs.keys()
    for k in gvfs:
        np.testing.assert_array_equal(back[k], gvfs[k])
    assert [p.name for p in tmp_path.iterdir()] == ["gvf.h5"]  # no temporary left behind
    with pytest.raises(ValueError, match="v_bad"):
        F.write_gvf_h5(tmp_path / "bad.h5", {"v_bad": np.zeros((2, 2))})
    assert not (tmp_path / "bad.h5").exists()


def test_feature_files_follow_the_one_id_rule(tmp_path):
    from tsplab.errors import InputError

    for stem in ("v_JDg--pjY5gg", "v_v_Vg4a8igc0", "video_test_0000004", "v_short"):
        F.save_features(tmp_path, stem, np.zeros((2, 3)))
    files = F.feature_files(tmp_path)
    # v_ is dropped only where an 11-character YouTube id remains (v_Vg4a8igc0 is itself an id).
    assert files == {"JDg--pjY5gg": tmp_path / "v_JDg--pjY5gg.npy",
                     "v_Vg4a8igc0": tmp_path / "v_v_Vg4a8igc0.npy",
                     "video_test_0000004": tmp_path / "video_test_0000004.npy",
                     "v_short": tmp_path / "v_short.npy"}
    F.save_features(tmp_path, "JDg--pjY5gg", np.zeros((2, 3)))  # the same video under its bare id
    with pytest.raises(InputError, match=r"JDg--pjY5gg\.npy and v_JDg--pjY5gg\.npy are the same video"):
        F.feature_files(tmp_path)
    with pytest.raises(InputError, match="gvf.h5"):
        F.by_video_id({"v_JDg--pjY5gg": 1, "JDg--pjY5gg": 2}, "gvf.h5")
    assert F.by_video_id({"v_JDg--pjY5gg": 1, "x": 2}, "gvf.h5") == {"JDg--pjY5gg": 1, "x": 2}


def test_metadata_that_is_not_ours_is_named(tmp_path):
    from tsplab.errors import InputError

    (tmp_path / F.METADATA_FILE).write_text('{"stride": 16, "fps": 15}')
    with pytest.raises(InputError, match=r"metadata.json: not tsplab feature metadata; expected .*stride_frames"):
        F.FeatureMetadata.load(tmp_path)


def test_gvf_files_keep_file_stems_and_are_looked_up_by_id(tmp_path):
    feats = tmp_path / "feats"
    F.save_features(feats, "v_JDg--pjY5gg", np.array([[1.0, -2.0], [3.0, 0.0]]))
    F.save_features(feats, "video_test_0000004", np.array([[5.0, 5.0]]))
    path = F.compute_gvf_file(feats, tmp_path / "gvf.h5")
    stored = F.read_gvf_h5(path)
    assert sorted(stored) == ["v_JDg--pjY5gg", "video_test_0000004"]  # TSP's keys: the file stems
    by_id = F.read_gvf_h5(path, by_id=True)
    np.testing.assert_array_equal(by_id["JDg--pjY5gg"], [3.0, 0.0])  # max over time
    np.testing.assert_array_equal(by_id["video_test_0000004"], [5.0, 5.0])


def test_gvf_refuses_bad_outputs_before_writing(tmp_path, capsys):
    from tsplab.cli import main

    feats = tmp_path / "feats"
    F.save_features(feats, "v_JDg--pjY5gg", np.ones((2, 3)))
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for out, named in ((feats, "is a folder"), (blocker / "gvf.h5", "is a file, not a folder"),
                       (Path("/proc/tsplab_gvf.h5"), "not writable")):
        assert main(["gvf", str(feats), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("tsplab gvf: error: --out:") and named in err[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before and blocker.read_text() == "keep me"
    F.save_features(feats, "JDg--pjY5gg", np.ones((2, 3)))  # v_x.npy and x.npy: one video twice
    assert main(["gvf", str(feats), "--out", str(tmp_path / "gvf.h5")]) == 2
    assert "same video 'JDg--pjY5gg'" in capsys.readouterr().err
    assert not (tmp_path / "gvf.h5").exists()


def _gvf_error(main, capsys, feats, out, *extra):
    assert main(["gvf", str(feats), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tsplab gvf: error: "), err
    return err[0]


def test_gvf_never_writes_over_an_input_or_an_existing_file(tmp_path, capsys, unchanged):
    """``tsplab gvf feats --out feats/val_0000.npy`` replaced a feature file with HDF5 (exit 0)."""
    from tsplab.cli import main

    feats = tmp_path / "feats"
    F.save_features(feats, "val_0000", np.ones((2, 3)))
    F.FeatureMetadata(stride_frames=2, clip_length_frames=4, frame_rate=15.0, feature_dim=3).save(feats)
    old = tmp_path / "old.h5"
    old.write_text("not ours")
    with unchanged(tmp_path):
        for extra in ((), ("--overwrite",)):
            err = _gvf_error(main, capsys, feats, feats / "val_0000.npy", *extra)
            assert "val_0000.npy is also val_0000.npy, a file of the feature folder" in err
        assert "metadata.json is also" in _gvf_error(main, capsys, feats, feats / "metadata.json")
        assert f"--out: {old} already exists; give a new file, or --overwrite" in _gvf_error(main, capsys, feats, old)
    assert main(["gvf", str(feats), "--out", str(old), "--overwrite"]) == 0
    assert F.read_gvf_h5(old)["val_0000"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("bad, named", [
    (np.nan, "row 1 (clip 1), column 2 holds nan"), (np.inf, "row 1 (clip 1), column 2 holds inf"),
    (1e38, "row 1 (clip 1), column 2 holds 1e+38")])
def test_gvf_refuses_non_finite_features(tmp_path, capsys, unchanged, bad, named):
    from tsplab.cli import main

    feats = tmp_path / "feats"
    F.save_features(feats, "a", np.ones((2, 3)))
    F.save_features(feats, "b", np.array([[0.0, 1, 2], [3, 4, bad]]))
    with unchanged(tmp_path):
        err = _gvf_error(main, capsys, feats, tmp_path / "gvf.h5")
    assert f"{feats / 'b.npy'}: {named}; features must be finite" in err


def _broken_npy(path, kind):
    good = path.parent / "good.npy"
    np.save(good, np.ones((4, 3), np.float32))
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[:100])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "object":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "directory":
        path.mkdir()
    elif kind == "short":  # a whole header, too few values
        path.write_bytes(good.read_bytes()[:-8])


@pytest.mark.parametrize("kind, named", [
    ("truncated", "unreadable features (EOF"), ("empty", "unreadable features"),
    ("object", "unreadable features (pickled (object) data)"), ("directory", "unreadable features (a folder)"),
    ("short", "unreadable features")])
def test_gvf_names_an_unreadable_feature_file_in_one_line(tmp_path, capsys, unchanged, kind, named):
    from tsplab.cli import main

    feats = tmp_path / "feats"
    feats.mkdir()
    _broken_npy(feats / "b.npy", kind)
    with unchanged(tmp_path):
        err = _gvf_error(main, capsys, feats, tmp_path / "gvf.h5")
    assert err.startswith(f"tsplab gvf: error: {feats / 'b.npy'}: {named}")


def test_gvf_refuses_a_folder_of_mixed_widths(tmp_path, capsys, unchanged):
    """A folder whose files differ in width wrote a mixed-width h5 and said "128-d"."""
    from tsplab.cli import main

    feats = tmp_path / "feats"
    F.save_features(feats, "a", np.ones((2, 3)))
    F.save_features(feats, "b", np.ones((2, 5)))
    with unchanged(tmp_path):
        err = _gvf_error(main, capsys, feats, tmp_path / "gvf.h5")
    assert (f"{feats / 'b.npy'}: features of shape (2, 5) (float32), expected [T >= 1, 3] numbers (the width of "
            "a.npy)") in err
    F.FeatureMetadata(stride_frames=2, clip_length_frames=4, frame_rate=15.0, feature_dim=5).save(feats)
    err = _gvf_error(main, capsys, feats, tmp_path / "gvf.h5")
    assert f"{feats / 'a.npy'}: features of shape (2, 3) (float32), expected [T >= 1, 5] numbers (metadata.json" in err


@pytest.mark.parametrize("field, value, named", [
    ("stride_frames", 0, "stride_frames is 0; expected a whole number >= 1"),
    ("frame_rate", 0, "frame_rate is 0; expected a number of frames per second > 0"),
    ("frame_rate", "15", "frame_rate is '15'; expected a number"),
    ("clip_length_frames", 2.5, "clip_length_frames is 2.5; expected a whole number")])
def test_metadata_with_an_impossible_clip_grid_is_refused(tmp_path, field, value, named):
    values = dict(stride_frames=2, clip_length_frames=4, frame_rate=15.0, feature_dim=3)
    (tmp_path / F.METADATA_FILE).write_text(json.dumps({**values, field: value}))
    with pytest.raises(InputError, match=f"metadata.json: {named}"):
        F.FeatureMetadata.load(tmp_path)


def test_resample_features_interpolates_time_only():
    # T=3, C=7: each channel c is a different line over time, t * (c + 1) + 10 c.
    t, c = np.meshgrid(np.arange(3), np.arange(7), indexing="ij")
    feats = (t * (c + 1) + 10 * c).astype(np.float32)
    out = F.resample_features(feats, 5)
    assert out.shape == (5, 7)  # channels untouched (TSP issue #9: interpolating over C is wrong)
    tt = np.linspace(0, 2, 5)[:, None]
    np.testing.assert_allclose(out, tt * (np.arange(7) + 1) + 10 * np.arange(7), rtol=1e-6)
    np.testing.assert_array_equal(out[[0, -1]], feats[[0, -1]])
    np.testing.assert_array_equal(F.resample_features(feats, 3), feats)
    np.testing.assert_array_equal(F.resample_features(feats[:1], 4), np.repeat(feats[:1], 4, 0))
    with pytest.raises(ValueError, match=r"\[T, C\]"):
        F.resample_features(np.zeros(5), 3)


def test_shard_videos_split_is_a_partition():
    items = list(range(11))
    parts = [X.shard_videos(items, i, 3) for i in range(3)]
    assert sum(parts, []) == items and [len(p) for p in parts] == [3, 4, 4]
    assert X.shard_videos(items[:1], 0, 4) == [] and X.shard_videos(items[:1], 3, 4) == [0]
    with pytest.raises(ValueError, match="shard_id"):
        X.shard_videos(items, 3, 3)


# --- extraction on real (tiny) video files -----------------------------------------------------------

FPS = 10.0
SETTINGS = dict(backbone="r2plus1d_tiny", clip_length_frames=4, frame_rate=FPS, stride_frames=4,
                short_side=16, crop_size=16, batch_size=5, workers=0)


def _moving_frames(n, h, w, seed):
    """A bright square moving over a noisy background (something for a video encoder to see)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 80, size=(n, h, w, 3), dtype=np.uint8)
    for k in range(n):
        y, x = (2 * k) % (h - 6), (3 * k) % (w - 6)
        frames[k, y:y + 6, x:x + 6] = 230
    return frames


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from tsplab.video import write_video

    root = tmp_path_factory.mktemp("videos")
    good = root / "good"
    sizes = {"a_video": (23, 24, 32), "b_video": (40, 24, 32), "c_video": (17, 32, 24)}
    for i, (name, (n, h, w)) in enumerate(sizes.items()):
        write_video(good / f"{name}.mp4", _moving_frames(n, h, w, i), fps=FPS)
    broken = root / "broken"
    broken.mkdir()
    (broken / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (broken / "empty.mp4").write_bytes(b"")
    data = (good / "b_video.mp4").read_bytes()
    (broken / "truncated.mp4").write_bytes(data[: len(data) // 2])
    write_video(broken / "one_frame.mp4", _moving_frames(1, 24, 32, 9), fps=FPS)
    return good, broken


@pytest.fixture(scope="module")
def one_video(videos):
    """A list file naming b_video only (keeps the runs that need just one video short)."""
    listing = videos[0].parent / "one_video.txt"
    listing.write_text("good/b_video.mp4\n")
    return listing


def _config(videos, out, **kw):
    return ExtractionConfig(videos=str(videos), out_dir=str(out), **{**SETTINGS, **kw})


@pytest.fixture(scope="module")
def extracted(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("features")
    with pytest.warns(UserWarning, match="RANDOM weights"):
        summary = X.extract_features(_config(videos[0], out, workers=2, format="h5"))
    return out, summary


def test_extraction_equals_encoding_decoded_clips_by_hand(videos, extracted):
    from tsplab.backbones import ClipTransform, build_backbone
    from tsplab.video import decode_frames, iter_clip_windows, probe_video

    out, summary = extracted
    assert list(summary.video) == ["a_video", "b_video", "c_video"]
    assert set(summary.status) == {"done"}
    torch.manual_seed(0)
    backbone = build_backbone("r2plus1d_tiny")
    transform = ClipTransform(16, 16, train=False)
    for video in summary.video:
        path = videos[0] / f"{video}.mp4"
        frames = decode_frames(path, FPS, short_side=16)
        num_frames = probe_video(path).num_frames_at(FPS)
        feats = F.load_features(out, video)
        # The grid: T = max(1, ceil((N - L) / stride) + 1) clips of the video resampled to 10 fps.
        assert feats.shape == (max(1, -(-(num_frames - 4) // 4) + 1), 128)
        index = E.clip_frame_indices(len(frames), 4, 4)
        windows = list(iter_clip_windows(path, 4, FPS, 4, short_side=16))
        assert len(windows) == len(index) == len(feats)
        for window, idx in zip(windows, index):
            np.testing.assert_array_equal(window.frames, frames[idx])  # the streamed clip grid
        by_hand = E.encode_frames(backbone, frames, 4, 4, transform, batch_size=3)
        np.testing.assert_allclose(feats, by_hand, rtol=1e-4, atol=1e-5)
    # c_video is portrait (32x24 -> 21x16 after resize): batches never mix frame sizes.
    assert F.load_features(out, "c_video").shape[0] == 5


def test_metadata_and_side_tables(extracted):
    out, summary = extracted
    meta = F.FeatureMetadata.load(out)
    assert (meta.stride_frames, meta.clip_length_frames, meta.frame_rate) == (4, 4, 10.0)
    assert meta.feature_dim == 128
    assert meta.backbone == "r2plus1d_tiny" and meta.checkpoint == ""
    assert meta.extra["random_weights"] and meta.extra["short_side"] == 16 and meta.extra["seed"] == 0
    table = F.feature_table(out)
    assert list(table.video) == list(summary.video)
    assert list(table.num_features) == list(summary.num_features)
    b = table.set_index("video").loc["b_video"]  # 40 frames at 10 fps: 10 clips, the last at 3.6 s
    assert b.num_features == 10 and b.last_clip_start_s == pytest.approx(3.6)
    assert b.last_clip_centre_s == pytest.approx(3.8) and b.first_clip_centre_s == pytest.approx(0.2)
    import pandas as pd

    pd.testing.assert_frame_equal(pd.read_csv(out / F.VIDEOS_TABLE), table, check_dtype=False)
    assert F.read_failures(out).empty
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_h5_format_holds_the_same_features(extracted):
    out, summary = extracted
    packed = F.read_features_h5(out / "features.hdf5")  # ".hdf5": the name ActionFormer reads as one file
    assert sorted(packed) == list(summary.video)
    for video, arr in packed.items():
        np.testing.assert_array_equal(arr, F.load_features(out, video))


def test_random_weights_are_reproducible_from_the_seed(one_video, extracted, tmp_path):
    out, _ = extracted
    with pytest.warns(UserWarning, match="RANDOM weights"):
        X.extract_features(_config(one_video, tmp_path / "again"))
    with pytest.warns(UserWarning, match="seed 1"):
        X.extract_features(_config(one_video, tmp_path / "seed1", seed=1))
    first = F.load_features(out, "b_video")
    np.testing.assert_allclose(F.load_features(tmp_path / "again", "b_video"), first, rtol=1e-5, atol=1e-6)
    assert not np.allclose(F.load_features(tmp_path / "seed1", "b_video"), first)


def test_rerun_skips_finished_videos(videos, tmp_path):
    out = tmp_path / "feats"
    with pytest.warns(UserWarning):
        X.extract_features(_config(videos[0], out))
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    (out / "b_video.npy").unlink()
    with pytest.warns(UserWarning):
        summary = X.extract_features(_config(videos[0], out))
    assert dict(zip(summary.video, summary.status)) == {
        "a_video": "skipped", "b_video": "done", "c_video": "skipped"}
    assert summary.set_index("video").num_features.to_dict() == {"a_video": 6, "b_video": 10, "c_video": 5}
    for name in ("a_video.npy", "c_video.npy"):
        assert (out / name).stat().st_mtime_ns == stamps[name]
    # Other settings into the same folder would mix two clip grids: refused, naming the difference.
    with pytest.raises(ValueError, match="stride_frames: 4 there, 2 now"), pytest.warns(UserWarning):
        X.extract_features(_config(videos[0], out, stride_frames=2))


def test_broken_videos_are_recorded_and_the_run_goes_on(videos, tmp_path):
    good, broken = videos
    listing = tmp_path / "videos.txt"
    names = [good / "a_video.mp4", "broken/garbage.mp4", broken / "empty.mp4", broken / "truncated.mp4",
             broken / "one_frame.mp4", broken / "missing.mp4", good / "c_video.mp4"]
    listing.write_text("# a list file\n" + "\n".join(str(n) for n in names) + "\n\n")
    (tmp_path / "broken").symlink_to(broken)  # relative entries are relative to the list's folder
    out = tmp_path / "feats"
    with pytest.warns(UserWarning):
        summary = X.extract_features(_config(listing, out, workers=2))
    status = dict(zip(summary.video, summary.status))
    assert status == {"a_video": "done", "c_video": "done", "garbage": "failed", "empty": "failed",
                      "truncated": "failed", "one_frame": "failed", "missing": "failed"}
    failures = F.read_failures(out).set_index("video")
    assert sorted(failures.index) == ["empty", "garbage", "missing", "one_frame", "truncated"]
    assert "file not found" in failures.loc["missing", "error"]
    assert "too short" in failures.loc["one_frame", "error"]
    for video in failures.index:
        assert failures.loc[video, "path"].endswith(f"{video}.mp4") and failures.loc[video, "error"]
    assert F.list_feature_videos(out) == ["a_video", "c_video"]
    counts = X.summarize_extraction(summary).set_index("status").videos.to_dict()
    assert counts == {"done": 2, "skipped": 0, "failed": 5}
    # Allowing one-frame videos extracts it (one clip of a repeated frame).
    with pytest.warns(UserWarning):
        again = X.extract_features(_config(listing, out, min_frames=1))
    assert dict(zip(again.video, again.status))["one_frame"] == "done"
    assert F.load_features(out, "one_frame").shape == (1, 128)
    assert sorted(F.read_failures(out).video) == ["empty", "garbage", "missing", "truncated"]


def test_two_shards_together_equal_the_unsharded_run(videos, extracted, tmp_path, monkeypatch):
    out, summary = extracted
    sharded = tmp_path / "sharded"
    with pytest.warns(UserWarning):
        first = X.extract_features(_config(videos[0], sharded, shard_id=0, num_shards=2, format="h5"))
    # The second shard comes from torchrun's environment (rank 1 of 2).
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.warns(UserWarning):
        second = X.extract_features(_config(videos[0], sharded, format="h5"))
    assert list(first.video) == ["a_video"] and list(second.video) == ["b_video", "c_video"]
    assert F.list_feature_videos(sharded) == list(summary.video)
    for video in summary.video:
        np.testing.assert_allclose(F.load_features(sharded, video), F.load_features(out, video),
                                   rtol=1e-5, atol=1e-6)
    assert sorted(F.read_features_h5(sharded / "features.shard1of2.hdf5")) == ["b_video", "c_video"]
    assert (sharded / "failures.shard0of2.csv").is_file()


def test_checkpoint_run_folder_gives_backbone_and_clip_settings(one_video, extracted, tmp_path):
    from tsplab.backbones import build_backbone

    torch.manual_seed(7)
    trained = build_backbone("r2plus1d_tiny")
    model = {f"features.{k}": v for k, v in trained.state_dict().items()}
    model.update({"fc1.weight": torch.zeros(3, 128), "fc1.bias": torch.zeros(3)})  # a head, dropped
    run = tmp_path / "pretrain" / "tsp"
    run.mkdir(parents=True)
    config = {"model": {"backbone": "r2plus1d_tiny"},
              "data": {"clip_length_frames": 4, "frame_rate": FPS, "short_side": 16, "crop_size": 16}}
    torch.save({"model": model, "config": config, "epoch": 3}, run / "best.pt")
    out = tmp_path / "feats"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checkpoint run gives no random-weights warning
        summary = X.extract_features(ExtractionConfig(videos=str(one_video), out_dir=str(out),
                                                        checkpoint=str(run), batch_size=8, workers=0))
    assert list(summary.status) == ["done"]
    meta = F.FeatureMetadata.load(out)
    assert meta.checkpoint == str(run / "best.pt") and meta.backbone == "r2plus1d_tiny"
    assert (meta.clip_length_frames, meta.stride_frames, meta.frame_rate) == (4, 4, FPS)  # stride = L
    assert meta.extra["random_weights"] is False
    extracted_out, _ = extracted
    feats = F.load_features(out, "b_video")
    assert feats.shape == F.load_features(extracted_out, "b_video").shape
    assert not np.allclose(feats, F.load_features(extracted_out, "b_video"))  # not the seed-0 weights
    with pytest.raises(ValueError, match="trained with 'r2plus1d_tiny'"):
        X.extract_features(ExtractionConfig(videos=str(one_video), out_dir=str(tmp_path / "x"),
                                              checkpoint=str(run), backbone="r3d_18"))


class _Harmful:
    """Unpickling this calls ``os.mkdir(marker)``: the observable stand-in for code run from a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.mkdir, (self.marker,)


def test_cli_extract_refuses_a_checkpoint_carrying_code_unless_trusted(one_video, tmp_path, capsys):
    from tsplab.backbones import build_backbone
    from tsplab.cli import main

    model = {f"features.{k}": v for k, v in build_backbone("r2plus1d_tiny").state_dict().items()}
    marker, path = tmp_path / "code_ran", tmp_path / "r2plus1d_tiny-harmful.pt"
    torch.save({"model": model, "args": _Harmful(marker)}, path)
    args = ["extract", "--videos", str(one_video), "--out", str(tmp_path / "feats"), "--checkpoint", str(path),
            "--clip-length", "4", "--frame-rate", "10", "--short-side", "16", "--crop", "16", "--workers", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "--trust-checkpoint-code" in err
    assert not marker.exists() and not (tmp_path / "feats").exists()  # no code ran, nothing written
    with pytest.warns(UserWarning, match="unpickling in full"):
        assert main(args + ["--trust-checkpoint-code"]) == 0
    assert marker.is_dir() and F.load_features(tmp_path / "feats", "b_video").shape[1] == 128


def test_cli_extract_and_gvf(one_video, tmp_path, capsys):
    from tsplab.cli import main

    out = tmp_path / "feats"
    args = ["extract", "--videos", str(one_video), "--out", str(out), "--backbone", "r2plus1d_tiny",
            "--clip-length", "4", "--frame-rate", "10", "--stride", "8", "--short-side", "16",
            "--crop", "16", "--workers", "0", "--seed", "3"]
    with pytest.warns(UserWarning, match="RANDOM"):
        assert main(args) == 0
    printed = capsys.readouterr().out
    # the counts table: one video done, none skipped or failed (the words alone are always printed)
    rows = [line.split() for line in printed.splitlines()]
    assert ["done", "1"] in rows and ["skipped", "0"] in rows and ["failed", "0"] in rows
    assert F.FeatureMetadata.load(out).stride_frames == 8
    assert F.load_features(out, "b_video").shape == (6, 128)  # ceil((40 - 4) / 8) + 1
    assert main(["gvf", str(out), "--out", str(tmp_path / "gvf.h5"), "--pooling", "avg"]) == 0
    assert "GVFs of 1 videos (128-d)" in capsys.readouterr().out
    gvfs = F.read_gvf_h5(tmp_path / "gvf.h5")
    np.testing.assert_allclose(gvfs["b_video"], F.load_features(out, "b_video").mean(0), rtol=1e-6)
    assert main(["extract", "--videos", str(one_video), "--out", str(out)]) == 2  # no weights source
    # The folder says how ActionFormer and OpenTAD read it (stride 8 != clip length 4 here).
    toolboxes = json.loads((out / F.TOOLBOXES_FILE).read_text())
    assert toolboxes["actionformer"] == dict(feat_folder=str(out), file_prefix="", file_ext=".npy",
                                             input_dim=128, feat_stride=8, num_frames=4, default_fps=10,
                                             force_upsampling=False)
    assert (out / F.MISSING_FILE).read_text() == ""


def test_toolbox_config_puts_features_where_actionformer_and_opentad_read_them(tmp_path):
    import pandas as pd

    F.FeatureMetadata(stride_frames=8, clip_length_frames=16, frame_rate=15.0, feature_dim=512).save(tmp_path)
    F.save_features(tmp_path, "v_JDg--pjY5gg", np.zeros((6, 512)))
    pd.DataFrame(dict(video=["v_abcdefghijk", "v_v_Vg4a8igc0"], path=["a.mp4", "b.mp4"],
                      error=["broken", "broken"])).to_csv(tmp_path / "failures.shard1of2.csv", index=False)
    config = F.write_toolbox_files(tmp_path)
    af, ot = config["actionformer"], config["opentad"]
    assert (af["feat_stride"], af["num_frames"], af["default_fps"], af["input_dim"]) == (8, 16, 15, 512)
    assert (ot["feature_stride"], ot["sample_stride"], ot["offset_frames"], ot["fps"]) == (8, 1, 8, 15)
    assert af["file_prefix"] == ot["load_feats"]["prefix"] == "v_" and config["notes"] == []
    # OpenTAD's block list: the failed videos as the annotation spells them, one a line.
    assert (tmp_path / F.MISSING_FILE).read_text() == "abcdefghijk\nv_Vg4a8igc0\n"
    assert json.loads((tmp_path / F.TOOLBOXES_FILE).read_text()) == config
    # Feature i lies at its clip's centre; the toolboxes' own time -> grid maps must give i back.
    centres_s = F.FeatureMetadata.load(tmp_path).clip_centre_s(6)
    actionformer = (centres_s * af["default_fps"] - 0.5 * af["num_frames"]) / af["feat_stride"]  # anet.py
    opentad = (centres_s * ot["fps"] - ot["offset_frames"]) / (ot["feature_stride"] * ot["sample_stride"])
    np.testing.assert_allclose(actionformer, np.arange(6), atol=1e-9)
    np.testing.assert_allclose(opentad, np.arange(6), atol=1e-9)
    snippet = F.toolbox_snippet(tmp_path)
    for line in ('file_prefix: "v_",', "feat_stride: 8,", "num_frames: 16,", "default_fps: 15,",
                 "input_dim: 512,", "offset_frames=8,", "feature_stride=8,", 'prefix="v_"',
                 "force_upsampling: false,", f'block_list = "{tmp_path / F.MISSING_FILE}"'):
        assert line in snippet
    F.save_features(tmp_path, "video_test_0000004", np.zeros((6, 512)))  # no single prefix any more
    assert F.toolbox_config(tmp_path)["actionformer"]["file_prefix"] is None
    assert "mix prefixes" in F.toolbox_config(tmp_path)["notes"][0]


_BASE_EXTRACT = ["--backbone", "r2plus1d_tiny", "--clip-length", "4", "--frame-rate", "10", "--stride", "4",
                 "--short-side", "16", "--crop", "16", "--workers", "0"]


@pytest.mark.parametrize("extra,named", [
    (["--stride", "0"], "stride_frames: 0 is out of range; valid: an integer >= 1"),
    (["--clip-length", "0"], "clip_length_frames: 0"),
    (["--frame-rate", "0"], "frame_rate: 0.0"),
    (["--frame-rate", "nan"], "frame_rate: nan"),
    (["--batch-size", "0"], "batch_size: 0"),
    (["--crop", "32"], "crop_size: 32 is out of range; valid: at most the short side"),
    (["--short-side", "8"], "crop_size: 16"),
    (["--shard-id", "2", "--num-shards", "2"], "shard_id: 2"),
    (["--num-shards", "0"], "num_shards: 0"),
    (["--workers", "-1"], "workers: -1"),
    (["--model-threads", "0"], "model_threads: 0 is out of range; valid: an integer >= 1"),
    (["--backbone", "resnet"], "backbone: 'resnet'"),
    (["--device", "gpu"], "device: 'gpu' is not a device"),
])
def test_extract_refuses_bad_parameters_before_writing(one_video, tmp_path, capsys, extra, named):
    from tsplab.cli import main

    out = tmp_path / "feats"
    out.mkdir()
    (out / "notes.txt").write_text("an earlier file")
    stamp = (out / "notes.txt").stat().st_mtime_ns
    assert main(["extract", "--videos", str(one_video), "--out", str(out), *_BASE_EXTRACT, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tsplab extract: error: ") and named in err[0]
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # no metadata.json, nothing else
    assert (out / "notes.txt").read_text() == "an earlier file"
    assert (out / "notes.txt").stat().st_mtime_ns == stamp


def test_extract_refuses_output_paths_it_cannot_use(one_video, tmp_path, capsys):
    from tsplab.cli import main

    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    for out, named in ((blocker, "is a file; give a folder"), (blocker / "feats", "is a file, not a folder"),
                       (Path("/proc/tsplab_feats"), "not writable"),
                       (one_video.parent / "good", "is the folder of the input videos")):
        args = ["extract", "--videos", str(one_video.parent / "good"), "--out", str(out), *_BASE_EXTRACT]
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("tsplab extract: error: out_dir: ") and named in err[0]
    assert blocker.read_text() == "keep me" and [p.name for p in tmp_path.iterdir()] == ["a_file"]
    assert not (one_video.parent / "good" / F.METADATA_FILE).exists()


def test_pretrained_runs_lists_folders_with_a_checkpoint(tmp_path):
    (tmp_path / "pretrain" / "tsp").mkdir(parents=True)
    (tmp_path / "pretrain" / "tsp" / "best.pt").write_bytes(b"x")
    (tmp_path / "pretrain" / "tac").mkdir()  # a run that never saved a checkpoint
    (tmp_path / "pretrain" / "bsp").mkdir()
    (tmp_path / "pretrain" / "bsp" / "checkpoint.pt").write_bytes(b"x")
    assert checkpoints.pretrained_runs(tmp_path, ["tac", "tsp", "bsp", "pal"]) == {
        "tsp": tmp_path / "pretrain" / "tsp", "bsp": tmp_path / "pretrain" / "bsp"}
    assert checkpoints.resolve_checkpoint(tmp_path / "pretrain" / "bsp").name == "checkpoint.pt"
    with pytest.raises(FileNotFoundError, match="tac"):
        checkpoints.resolve_checkpoint(tmp_path / "pretrain" / "tac")


def test_plot_feature_timeline_places_features_and_ground_truth(extracted):
    import pandas as pd

    from tsplab.plots import plot_feature_timeline

    out, _ = extracted
    meta = F.FeatureMetadata.load(out)
    feats = F.load_features(out, "b_video")  # 10 features, stride 0.4 s, clips of 0.4 s
    gt = pd.DataFrame(dict(t_start_s=[0.5, 2.0, 3.1], t_end_s=[1.5, 2.5, 4.0], label=["jump", "run", "jump"]))
    fig = plot_feature_timeline(feats, meta, gt, duration_s=4.0, max_channels=32)
    image_ax, gt_ax = fig.axes[:2]
    image = image_ax.images[0]
    assert image.get_array().shape == (32, 10)  # channels x time
    np.testing.assert_allclose(image.get_extent(), [0.0, 4.0, 32, 0])  # centres 0.2..3.8 +- 0.2
    np.testing.assert_allclose(image.get_array().mean(axis=1), 0, atol=1e-5)  # z-scored over time
    bars = [c for c in gt_ax.collections]
    assert len(bars) == 2  # one row per label
    assert [t.get_text() for t in gt_ax.get_yticklabels()] == ["jump", "run"]
    assert gt_ax.get_xlim() == (0.0, 4.0)


def test_a_video_failing_mid_stream_drops_its_clips_only(videos, extracted, tmp_path, monkeypatch):
    from tsplab.video import VideoError

    original = E.ClipBatchStream.windows

    def breaks_after_seven(self, path):  # b_video's 8th clip fails to decode, after a batch was sent
        for window in original(self, path):
            if "b_video" in str(path) and window.index == 7:
                raise VideoError(path, "decoding failed: corrupt packet")
            yield window

    monkeypatch.setattr(E.ClipBatchStream, "windows", breaks_after_seven)
    with pytest.warns(UserWarning):
        summary = X.extract_features(_config(videos[0], tmp_path / "feats", batch_size=4))
    assert dict(zip(summary.video, summary.status)) == {"a_video": "done", "b_video": "failed",
                                                        "c_video": "done"}
    assert "corrupt packet" in summary.set_index("video").error["b_video"]
    assert F.list_feature_videos(tmp_path / "feats") == ["a_video", "c_video"]
    out, _ = extracted
    for video in ("a_video", "c_video"):  # clips of neighbouring videos in the same batches are intact
        np.testing.assert_allclose(F.load_features(tmp_path / "feats", video), F.load_features(out, video),
                                   rtol=1e-5, atol=1e-6)


def test_decoding_workers_default_to_inline_on_cpu_and_processes_beside_a_gpu():
    import torch

    from tsplab.features.concurrency import _decoding_workers

    assert _decoding_workers(None, torch.device("cpu")) == 0  # a worker would compete with the model
    assert 1 <= _decoding_workers(None, torch.device("cuda")) <= 8
    assert _decoding_workers(3, torch.device("cpu")) == 3  # an explicit choice is kept


def test_features_of_a_rewritten_checkpoint_are_not_mixed_with_the_old_ones(one_video, tmp_path):
    """A pretraining run rerun into its folder rewrites best.pt under the same path: extracting into
    the old feature folder must not keep the old weights' features as if they were the new ones'."""
    from tsplab.backbones import build_backbone

    run = tmp_path / "pretrain" / "tsp"
    run.mkdir(parents=True)

    def save_run(seed):
        torch.manual_seed(seed)
        state = {f"features.{k}": v for k, v in build_backbone("r2plus1d_tiny").state_dict().items()}
        torch.save({"model": state, "config": {"backbone": "r2plus1d_tiny"}}, run / "best.pt")

    config = ExtractionConfig(videos=str(one_video), out_dir=str(tmp_path / "feats"), checkpoint=str(run),
                                clip_length_frames=4, frame_rate=10, short_side=16, crop_size=16, workers=0)
    save_run(1)
    X.extract_features(config)
    before = F.load_features(tmp_path / "feats", "b_video").copy()
    assert list(X.extract_features(config).status) == ["skipped"]  # same weights: resumes
    save_run(2)
    from tsplab.errors import InputError

    with pytest.raises(InputError, match="checkpoint_sha256"):
        X.extract_features(config)
    np.testing.assert_array_equal(F.load_features(tmp_path / "feats", "b_video"), before)  # nothing lost


# --- tsplab.features.config.encoder_extraction_config --------------------------------------------

def test_encoder_extraction_config_checkpoint_brings_its_own_settings(tmp_path):
    from tsplab.features.config import encoder_extraction_config

    clip = dict(clip_length_frames=8, frame_rate=15.0, short_side=16, crop_size=14)
    config = encoder_extraction_config(tmp_path / "run", videos=tmp_path / "v", out_dir=tmp_path / "f",
                                       backbone="r2plus1d_tiny", random_clip=clip, stride_frames=2)
    assert config.checkpoint == str(tmp_path / "run") and config.backbone is None
    assert (config.clip_length_frames, config.frame_rate, config.short_side, config.crop_size) == (None,) * 4
    assert config.stride_frames == 2 and config.videos == str(tmp_path / "v")

    config = encoder_extraction_config(None, videos=tmp_path / "v", out_dir=tmp_path / "f",
                                       backbone="r2plus1d_tiny", random_clip=clip, stride_frames=2, seed=4)
    assert config.checkpoint is None and config.backbone == "r2plus1d_tiny" and config.seed == 4
    assert (config.clip_length_frames, config.frame_rate, config.short_side, config.crop_size) == (8, 15.0, 16, 14)


# --- tsplab.features.check_feature_folders (notebooks 05 and 07) ---------------------------------

def test_check_feature_folders_names_the_missing_and_the_found(tmp_path):
    from tsplab.features import FeatureMetadata, check_feature_folders

    for name in ("tac", "tsp"):
        FeatureMetadata(stride_frames=2, clip_length_frames=8, frame_rate=15.0, feature_dim=4).save(tmp_path / name)
    (tmp_path / "empty").mkdir()
    folders = {"tac": str(tmp_path / "tac"), "tsp": tmp_path / "tsp"}
    assert check_feature_folders(folders) == {"tac": tmp_path / "tac", "tsp": tmp_path / "tsp"}
    with pytest.raises(InputError) as error:
        check_feature_folders({"tac": tmp_path / "tac", "tps": tmp_path / "tps"}, "feature_folders")
    message = str(error.value)
    assert message.startswith(f"feature_folders: no feature folder (metadata.json) at tps: {tmp_path / 'tps'};")
    assert f"found beside them: {tmp_path / 'tac'}, {tmp_path / 'tsp'};" in message  # not 'empty'
    with pytest.raises(InputError, match="feature_dirs: give a non-empty"):
        check_feature_folders({})


def test_cli_extract_on_a_full_disk_is_one_line(one_video, tmp_path, capsys, monkeypatch):
    """A full disk during extraction gave a traceback; now one line, and a rerun goes on."""
    import errno

    from tsplab.cli import main

    out = tmp_path / "feats"
    args = ["extract", "--videos", str(one_video), "--out", str(out), "--backbone", "r2plus1d_tiny",
            "--clip-length", "4", "--frame-rate", "10", "--stride", "8", "--short-side", "16",
            "--crop", "16", "--workers", "0"]

    def full(folder, video, features):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(X, "save_features", full)
    with pytest.warns(UserWarning, match="RANDOM"):
        assert main(args) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("tsplab")]
    assert err == [f"tsplab extract: error: {out}: cannot write (No space left on device); the videos finished "
                   f"before are kept in {out}: free space and rerun the same command to go on (finished videos "
                   "are skipped)"]
    assert not list(out.glob("*.npy"))
    monkeypatch.undo()
    with pytest.warns(UserWarning, match="RANDOM"):
        assert main(args) == 0
    assert F.load_features(out, "b_video").shape == (6, 128)
