"""Clip sampling: counts, jitter inside segments, uniform validation clips, fg/bg balance, sharding."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsplab.pretrain.sampling import (BACKGROUND, FOREGROUND, NO_LABEL, EpochSampler, SegmentClipDataset,
                                      clip_starts, segment_frame_bounds)

FPS = 10.0
L = 4


class ArrayFrames:
    """Frame source whose pixel value encodes the frame index (value = index), so a clip tells which
    frames it came from."""

    def __init__(self, num_frames: dict[str, int]):
        self.num_frames = num_frames
        self.calls = 0

    def get(self, video_path):
        self.calls += 1
        n = self.num_frames[video_path.stem]
        return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 2, 2, 3))


def table(rows):
    cols = ["video-name", "t-start", "t-end", "action-label", "video-duration", "filename", "fps",
            "video-frames", "temporal-region-label"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows], columns=cols)


# video a: 10 s; actions [1, 3] "jump" and [6, 9] "run", background [0, 1], [3, 6], [9, 10] (too short)
ROWS = [
    ("a", 1.0, 3.0, "jump", 10.0, "a.mp4", 30, 300, "Action"),
    ("a", 6.0, 9.0, "run", 10.0, "a.mp4", 30, 300, "Action"),
    ("a", 0.0, 1.0, None, 10.0, "a.mp4", 30, 300, "No action"),
    ("a", 3.0, 6.0, None, 10.0, "a.mp4", 30, 300, "No action"),
    ("a", 9.0, 9.3, None, 10.0, "a.mp4", 30, 300, "No action"),  # 3 frames < L: dropped
    ("b", 2.0, 5.0, "run", 8.0, "b.mp4", 30, 240, "Action"),
    ("b", 5.0, 8.0, None, 8.0, "b.mp4", 30, 240, "No action"),
]
FRAMES = ArrayFrames({"a": 100, "b": 80})


def make(jitter, **kw):
    return SegmentClipDataset(table(ROWS), "/videos", FRAMES, ["jump", "run"], clip_length_frames=L,
                              frame_rate=FPS, clips_per_segment=5, jitter=jitter, seed=3, **kw)


def test_frame_bounds_and_starts():
    assert segment_frame_bounds(1.0, 3.0, 10.0) == (10, 30)
    # Rounded annotation times (2.733333 s = 41 frames at 15 fps) must not lose a frame.
    assert segment_frame_bounds(2.2, 2.733333, 15.0) == (33, 41)
    assert segment_frame_bounds(0.0, 10.0, 10.0, num_frames=95) == (0, 95)
    np.testing.assert_array_equal(clip_starts(10, 30, 4, 5, jitter=False), [10, 14, 18, 22, 26])
    with pytest.raises(ValueError, match="shorter than a clip"):
        clip_starts(10, 12, 4, 1, jitter=False)


def test_counts_labels_and_dropped_rows():
    with pytest.warns(UserWarning, match="1 of 7 segments dropped"):
        ds = make(jitter=True)
    assert len(ds) == 6 * 5  # 6 usable segments x 5 clips
    assert list(ds.dropped["video-name"]) == ["a"] and "shorter than a clip" in ds.dropped["reason"].iat[0]
    assert list(ds.videos["video"]) == ["a", "b"]
    item = ds[(0, 0)]
    assert item["clip"].shape == (L, 2, 2, 3) and item["clip"].dtype.is_floating_point is False
    assert int(item["action_label"]) == 0 and int(item["region_label"]) == FOREGROUND
    bg = ds[(2 * 5, 0)]  # first clip of the first background segment
    assert int(bg["action_label"]) == NO_LABEL and int(bg["region_label"]) == BACKGROUND
    assert int(ds[(5 * 5, 0)]["video_index"]) == 1  # segment of video b
    fg_only = make(jitter=True, foreground_only=True)
    assert len(fg_only) == 3 * 5 and fg_only.balance_groups is None


@pytest.mark.filterwarnings("ignore:1 of 7 segments dropped")
def test_jittered_clips_stay_inside_their_segment_and_vary_with_epoch():
    ds = make(jitter=True)
    bounds = {0: (10, 30), 1: (60, 90), 2: (0, 10), 3: (30, 60), 4: (20, 50), 5: (50, 80)}
    starts_by_epoch = []
    for epoch in range(4):
        starts = []
        for i in range(len(ds)):
            item = ds[(i, epoch)]
            a, b = bounds[i // 5]
            frames = item["clip"][:, 0, 0, 0].numpy().astype(int)
            # consecutive frames of the video, all inside the segment
            np.testing.assert_array_equal(np.diff(frames), 1)
            assert a <= frames[0] and frames[-1] < b
            assert float(item["t_start_s"]) == pytest.approx(frames[0] / FPS)
            starts.append(frames[0])
        starts_by_epoch.append(starts)
    # jitter is random across epochs but a pure function of (seed, epoch, index)
    assert starts_by_epoch[0] != starts_by_epoch[1]
    assert [int(ds[(i, 1)]["clip"][0, 0, 0, 0]) for i in range(len(ds))] == starts_by_epoch[1]


@pytest.mark.filterwarnings("ignore:1 of 7 segments dropped")
def test_validation_clips_are_uniform_and_fixed():
    ds = make(jitter=False)
    starts = [int(ds[(i, e)]["clip"][0, 0, 0, 0]) for e in (0, 5) for i in range(5)]
    assert starts[:5] == [10, 14, 18, 22, 26] and starts[5:] == starts[:5]  # linspace over [10, 30-L]


def test_clip_near_the_end_of_a_short_cache_repeats_the_last_frame():
    rows = [("c", 0.0, 2.0, "run", 2.0, "c.mp4", 10, 20, "Action")]
    ds = SegmentClipDataset(table(rows), "/v", ArrayFrames({"c": 18}), ["run"], clip_length_frames=L,
                            frame_rate=FPS, clips_per_segment=2, jitter=False)
    clip = ds[1]["clip"][:, 0, 0, 0].tolist()  # starts at frame 16 of 18 cached
    assert clip == [16, 17, 17, 17]


def test_balanced_epochs_redraw_and_validation_fixed():
    groups = np.array([1] * 30 + [0] * 12)  # 30 fg, 12 bg items
    s = EpochSampler(len(groups), seed=0, shuffle=True, balance_groups=groups)
    assert len(s) == 24
    epochs = []
    for e in range(3):
        s.set_epoch(e)
        keys = list(s)
        idx = [k[0] for k in keys]
        assert all(k[1] == e for k in keys)
        assert len(idx) == len(set(idx)) == 24
        assert (groups[idx] == 1).sum() == (groups[idx] == 0).sum() == 12
        epochs.append(idx)
    assert epochs[0] != epochs[1]
    s.set_epoch(1)
    assert [k[0] for k in s] == epochs[1]  # a function of (seed, epoch) only
    v = EpochSampler(len(groups), seed=0, shuffle=False, balance_groups=groups, pad=False)
    v.set_epoch(0)
    first = [k[0] for k in v]
    v.set_epoch(4)
    assert [k[0] for k in v] == first == sorted(first)


def test_sharding_between_processes():
    kw = dict(seed=1, shuffle=True)
    whole = EpochSampler(11, **kw)
    whole.set_epoch(2)
    parts = []
    for rank in range(2):
        s = EpochSampler(11, num_replicas=2, rank=rank, **kw)
        s.set_epoch(2)
        parts.append([k[0] for k in s])
        assert len(s) == 6 == len(parts[-1])  # padded to equal counts for DDP
    assert sorted(set(parts[0]) | set(parts[1])) == list(range(11))
    assert not set(parts[0]) & set(parts[1]) - {whole.epoch_indices()[0]}  # only the wrap-around repeats
    # validation: no padding, nothing repeated
    val = [list(EpochSampler(11, num_replicas=2, rank=r, shuffle=False, pad=False)) for r in range(2)]
    assert len(val[0]) == 6 and len(val[1]) == 5
    assert sorted(k[0] for part in val for k in part) == list(range(11))


@pytest.mark.filterwarnings("ignore:.*segments dropped")
def test_a_clip_longer_than_every_segment_is_one_line_naming_the_field():
    """A clip longer than every video gave a traceback (a ValueError); now the one-line InputError."""
    from tsplab.errors import InputError

    with pytest.raises(InputError, match=r"^clip_length_frames: no segment of the table is long enough for one "
                                         r"clip of 200 frames at 10 fps \(20 s; the longest of its 7 segments lasts "
                                         r"3 s\); give a shorter clip_length_frames$"):
        SegmentClipDataset(table(ROWS), "/videos", FRAMES, ["jump", "run"], clip_length_frames=200, frame_rate=10,
                           jitter=False)
