"""The dataset presets pinned to their sources: TSP's released segment tables (background rule, clip,
subsets), the official ActivityNet evaluation (tIoU grid), DETAD's ``sensitivity_analysis.py``
(bucket edges, THUMOS14 at tIoU 0.5), and the video ids of the real files shipped in ``tsplab/data``."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tsplab.datasets import BACKGROUND, read_annotations, read_segment_table
from tsplab.errors import InputError
from tsplab.datasets.presets import PRESETS, DatasetPreset, get_preset, infer_preset

AN = "activitynet/activitynet_v1-3_{}_tsp_groundtruth.csv"
TH = "thumos14/thumos14_{}_tsp_groundtruth.csv"


def test_the_three_presets_and_their_names():
    assert list(PRESETS) == ["activitynet", "thumos14", "synthetic"]
    assert all(get_preset(name).name == name for name in PRESETS)
    assert get_preset(PRESETS["thumos14"]) is PRESETS["thumos14"]  # a preset passes through
    with pytest.raises(InputError, match="'kinetics'; valid presets: activitynet, thumos14, synthetic"):
        get_preset("kinetics")


@pytest.mark.parametrize("name,files,clips", [("activitynet", (AN.format("train"), AN.format("valid")), 5),
                                              ("thumos14", (TH.format("valid"), TH.format("test")), 1)])
def test_background_rule_is_the_shortest_gap_of_tsps_released_tables(real_data, name, files, clips):
    """TSP's clip is 16 frames at 15 fps (TSP Sec. 4.1); its released tables keep gaps from 5 clips
    (ActivityNet, shortest row 5.334 s) and from 1 clip (THUMOS14, shortest row 1.0667 s)."""
    preset = get_preset(name)
    assert (preset.clip_length_frames, preset.frame_rate, preset.min_background_clips) == (16, 15.0, clips)
    shortest = min(_background_lengths(real_data / f).min() for f in files)
    # At least the rule, and less than one 30 fps frame above it: the rule is the table's floor.
    assert preset.min_background_s - 1e-9 <= shortest < preset.min_background_s + 1 / 30
    assert preset.min_background_s == pytest.approx(clips * 16 / 15)


def _background_lengths(path) -> np.ndarray:
    table = read_segment_table(path)
    background = table[table["temporal-region-label"] == BACKGROUND]
    return (background["t-end"] - background["t-start"]).to_numpy(float)


def test_synthetic_preset_uses_one_clip_of_its_own_8_frames():
    synthetic = get_preset("synthetic")
    assert (synthetic.clip_length_frames, synthetic.frame_rate, synthetic.min_background_clips) == (8, 15.0, 1)
    assert synthetic.min_background_s == pytest.approx(8 / 15)


def test_subsets_follow_tsp_and_the_released_files(real_data):
    """TSP pretrains on ActivityNet's training videos and reports on validation; on THUMOS14 it
    pretrains on the validation videos and reports on the test videos, which DETAD's JSON calls
    ``testing``."""
    an, th = get_preset("activitynet"), get_preset("thumos14")
    assert (an.train_subset, an.eval_subset) == ("training", "validation")
    assert (th.train_subset, th.eval_subset) == ("validation", "testing")
    assert read_annotations(real_data / AN.format("train")).subsets == [an.train_subset]
    assert read_annotations(real_data / AN.format("valid")).subsets == [an.eval_subset]
    assert read_annotations(real_data / TH.format("valid")).subsets == [th.train_subset]
    detad_test = read_annotations(real_data / "thumos14" / "thumos14_test_extra_characteristics.json",
                                  allow_unknown_durations=True)
    assert detad_test.subsets == [th.eval_subset]


def test_tiou_thresholds_are_the_official_grids():
    official = np.linspace(0.5, 0.95, 10)  # ActivityNet Evaluation/eval_detection.py
    for name in ("activitynet", "synthetic"):
        preset = get_preset(name)
        assert np.array_equal(preset.tiou_thresholds, official)  # bit for bit: ties depend on it
        assert np.array_equal(preset.proposal_tiou_thresholds, official)
        assert (preset.max_avg_proposals, preset.ar_at) == (100, (1, 10, 100))
    assert np.allclose(get_preset("thumos14").tiou_thresholds, [0.3, 0.4, 0.5, 0.6, 0.7])


def test_predictions_kept_per_video():
    # ASL Sec. 4.2 / ActionFormer's configs: 100 on ActivityNet, 200 on THUMOS14.
    assert {n: p.max_predictions for n, p in PRESETS.items()} == {
        "activitynet": 100, "thumos14": 200, "synthetic": 100}


def test_detad_buckets_are_detads_edges():
    """DETAD's src/sensitivity_analysis.py main(): ActivityNet and THUMOS14 bins, THUMOS14 at tIoU
    0.5 only; the synthetic benchmark's own length edges (seconds)."""
    sizes = ("XS", "S", "M", "L", "XL")
    inf = math.inf
    an, th, syn = (get_preset(n) for n in ("activitynet", "thumos14", "synthetic"))
    assert an.detad_buckets["length"] == ((0, 30, 60, 120, 180, inf), sizes)
    assert np.array_equal(an.detad_buckets["coverage"][0], np.linspace(0, 1.0, 6))
    assert an.detad_buckets["num_instances"] == ((-1, 1, 4, 8, inf), sizes[:4])
    assert np.array_equal(an.detad_tiou_thresholds, np.linspace(0.5, 0.95, 10))
    assert th.detad_buckets["length"] == ((0, 3, 6, 12, 18, inf), sizes)
    assert th.detad_buckets["coverage"] == ((0, 0.02, 0.04, 0.06, 0.08, 1), sizes)
    assert th.detad_buckets["num_instances"] == ((-1, 1, 40, 80, inf), sizes[:4])
    assert th.detad_tiou_thresholds == (0.5,)
    assert syn.detad_buckets["length"] == ((0.0, 0.8, 1.2, 2.0, 3.0, inf), sizes)
    assert syn.detad_buckets["num_instances"] == ((-1, 1, 2, inf), sizes[:3])  # 1-3 actions per video


@pytest.mark.parametrize("path,expected", [
    (AN.format("train"), "activitynet"), (AN.format("valid"), "activitynet"),
    (TH.format("valid"), "thumos14"), (TH.format("test"), "thumos14"),
    ("thumos14/thumos14_test_extra_characteristics.json", "thumos14"),
])
def test_infer_preset_on_the_real_files(real_data, path, expected):
    ann = read_annotations(real_data / path, allow_unknown_durations=True)
    assert infer_preset(ann.videos["video"]) == expected


def test_infer_preset_refuses_mixed_or_unknown_ids(real_data):
    an = read_annotations(real_data / AN.format("valid")).videos["video"].head(3).tolist()
    th = read_annotations(real_data / TH.format("test")).videos["video"].head(3).tolist()
    with pytest.raises(InputError, match=r"gt.csv: cannot tell the dataset .*activitynet \| thumos14 \| synthetic"):
        infer_preset(an + th, source="gt.csv")
    with pytest.raises(InputError, match="cannot tell the dataset"):
        infer_preset(["clip1", "clip2"])
    with pytest.raises(InputError, match="cannot tell the dataset"):
        infer_preset([])
    assert infer_preset(["train_0000", "val_0012"]) == "synthetic"


def test_a_preset_survives_a_json_round_trip():
    """Run folders save the preset they used (tsplab.datasets' dataset.json)."""
    for preset in PRESETS.values():
        assert DatasetPreset.from_dict(json.loads(json.dumps(preset.to_dict()))) == preset
