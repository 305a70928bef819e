import json

import pandas as pd
import pytest

from tsplab.datasets import SEGMENT_TABLE_COLUMNS, AnnotationError, read_label_mapping
from tsplab.datasets import DatasetConfig, dataset_preset, load_prepared_dataset, prepare_dataset
from tsplab.errors import InputError


def test_activitynet_from_the_shipped_tsp_tables(real_data, tmp_path):
    prepared = prepare_dataset(DatasetConfig(dataset="activitynet"), tmp_path)
    ann = prepared.annotations
    assert set(ann.subsets) == {"training", "validation"}
    assert len(ann.labels) == 200
    # The released mapping is the sorted class list, and ours is the same list.
    assert read_label_mapping(prepared.folder / "action_label_mapping.json") == read_label_mapping(
        real_data / "activitynet" / "activitynet_v1-3_action_label_mapping.json")
    valid = prepared.segment_tables["validation"]
    assert list(valid.columns) == SEGMENT_TABLE_COLUMNS
    # 7,654 actions less the 3 of zero length and the 19 exact repeats of an earlier row; background
    # kept from 5 clips of 16 frames at 15 fps.
    assert (valid["temporal-region-label"] == "Action").sum() == 7654 - 3 - 19
    background = valid[valid["temporal-region-label"] == "No action"]
    assert (background["t-end"] - background["t-start"]).min() >= 5 * 16 / 15 - 1e-9
    problems = prepared.report.groupby(["subset", "problem"]).size()
    assert problems[("validation", "zero length")] == 3
    assert problems[("training", "zero length")] == 9
    assert problems[("validation", "duplicate of an earlier row")] == 19
    assert problems[("training", "duplicate of an earlier row")] == 30

    again = load_prepared_dataset(tmp_path)
    assert again.preset == prepared.preset
    assert len(again.report) == len(prepared.report)
    reread = again.segment_tables["validation"].reset_index(drop=True)
    # Background rows have no label: None in memory, NaN once read back from the CSV.
    assert reread["action-label"].fillna("").tolist() == valid["action-label"].fillna("").tolist()
    pd.testing.assert_frame_equal(reread.drop(columns="action-label"),
                                  valid.reset_index(drop=True).drop(columns="action-label"),
                                  check_dtype=False)


def test_synthetic_prepares_the_benchmark_with_its_own_clip(tiny_benchmark, tmp_path):
    # The fixture's benchmark is the tiny size at seed 0; preparing in another run folder
    # generates the same one there.
    prepared = prepare_dataset(DatasetConfig(dataset="synthetic", benchmark_size="tiny", seed=0), tmp_path)
    assert prepared.videos_dir == tmp_path / "benchmark" / "videos"
    assert sorted(p.name for p in prepared.videos_dir.glob("*.mp4")) == sorted(
        p.name for p in (tiny_benchmark / "videos").glob("*.mp4"))
    assert prepared.preset.clip_length_frames == 8
    for table in prepared.segment_tables.values():
        rows = table[table["temporal-region-label"] == "No action"]
        assert ((rows["t-end"] - rows["t-start"]) >= 8 / 15 - 1e-9).all()
    assert prepared.report.empty  # the generator writes clean annotations
    # a dataset.json written before the benchmark size had its own field name still loads
    meta_path = tmp_path / "dataset" / "dataset.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["preset"] = meta["config"].pop("benchmark_size")
    meta_path.write_text(json.dumps(meta))
    assert load_prepared_dataset(tmp_path).preset.name == "synthetic"


def test_custom_needs_durations_and_strict_names_bad_rows(tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text("video,t_start,t_end,label,subset\n"
                  "clip1,1.0,3.0,jump,training\nclip1,5.0,4.0,jump,training\n")
    durations = tmp_path / "durations.csv"
    durations.write_text("video,duration\nclip1,10.0\n")
    with pytest.raises(ValueError, match="durations"):
        prepare_dataset(DatasetConfig(dataset="custom", annotations=[str(gt)]), tmp_path / "a")
    with pytest.raises(AnnotationError, match="clip1"):
        prepare_dataset(DatasetConfig(dataset="custom", annotations=[str(gt)], durations=str(durations),
                                      strict=True), tmp_path / "b")


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="activitynet, thumos14, synthetic, custom"):
        dataset_preset(DatasetConfig(dataset="kinetics"))


def test_a_video_in_two_annotation_files_is_refused(tmp_path):
    # The same ActivityNet video, spelled with and without the file prefix in two files.
    train = tmp_path / "a_train.csv"
    train.write_text("video,t_start,t_end,label\nabcdefghijk,1.0,3.0,jump\n")
    valid = tmp_path / "b_val.csv"
    valid.write_text("video,t_start,t_end,label\nv_abcdefghijk,1.0,3.0,jump\n")
    durations = tmp_path / "durations.csv"
    durations.write_text("video,duration\nabcdefghijk,10.0\n")
    with pytest.raises(AnnotationError, match=r"share videos \['abcdefghijk'\]"):
        prepare_dataset(DatasetConfig(dataset="custom", annotations=[str(train), str(valid)],
                                      durations=str(durations)), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_video_of_unknown_duration_is_reported_and_the_dataset_loads_again(tmp_path):
    """A durations file that lacks a video: its actions are dropped and reported at preparation, and
    the prepared folder (which stores that duration as null) still loads."""
    from tsplab.datasets import load_prepared_dataset

    gt = tmp_path / "gt.csv"
    gt.write_text("video,t_start,t_end,label,subset\n"
                  "clip1,1.0,3.0,jump,training\nclip2,2.0,4.0,jump,training\n")
    durations = tmp_path / "durations.csv"
    durations.write_text("video,duration\nclip1,10.0\n")
    with pytest.warns(UserWarning, match="missing from the durations"):
        prepared = prepare_dataset(DatasetConfig(dataset="custom", annotations=[str(gt)],
                                                 durations=str(durations)), tmp_path / "run")
    assert prepared.report["video"].tolist() == ["clip2"]
    loaded = load_prepared_dataset(tmp_path / "run")
    assert sorted(loaded.annotations.videos["video"]) == ["clip1", "clip2"]
    assert loaded.annotations.videos.set_index("video")["duration_s"].isna().tolist() == [False, True]
    assert loaded.report["video"].tolist() == ["clip2"]


def test_custom_follows_a_named_preset_and_never_borrows_its_files(tmp_path):
    """A custom dataset takes the rules of the preset it follows (here its background rule: a 2 s
    gap is kept with THUMOS14's 1 clip, not with ActivityNet's 5), never that preset's files."""
    gt = tmp_path / "gt.csv"
    gt.write_text("video,t_start,t_end,label,subset\nclip1,2.0,8.0,jump,training\n")
    durations = tmp_path / "durations.csv"
    durations.write_text("video,duration\nclip1,10.0\n")

    def background_rows(follows):
        config = DatasetConfig(dataset="custom", annotations=[str(gt)], durations=str(durations),
                               follows=follows)
        prepared = prepare_dataset(config, tmp_path / follows)
        table = prepared.segment_tables["training"]
        assert prepared.dataset == "custom" and prepared.preset.name == follows
        assert load_prepared_dataset(tmp_path / follows).preset == prepared.preset
        return int((table["temporal-region-label"] == "No action").sum())

    assert background_rows("thumos14") == 2  # [0, 2] and [8, 10]
    assert background_rows("activitynet") == 0
    with pytest.raises(ValueError, match="follows: 'kinetics' is not a dataset preset; a custom dataset "
                                         "follows one of: activitynet, thumos14, synthetic"):
        dataset_preset(DatasetConfig(dataset="custom", follows="kinetics"))
    with pytest.raises(ValueError, match="give its annotation file"):
        prepare_dataset(DatasetConfig(dataset="custom", durations=str(durations)), tmp_path / "none")
    assert not (tmp_path / "none").exists()


# --- PreparedDataset.video_paths (notebook 02) ---

def test_prepared_dataset_video_paths(tmp_path):
    from tsplab.datasets import make_annotations
    from tsplab.datasets import PreparedDataset
    from tsplab.datasets.presets import get_preset

    videos = pd.DataFrame({"video": ["a", "b"], "subset": ["training", "validation"], "duration_s": [1.0, 2.0],
                           "fps": [10.0, 10.0], "num_frames": [10, 20], "filename": ["a.mkv", None]})
    instances = pd.DataFrame({"video": ["a"], "t_start_s": [0.0], "t_end_s": [0.5], "label": ["x"],
                              "subset": ["training"]})
    ann = make_annotations(videos, instances, ["x"])
    prepared = PreparedDataset(tmp_path, "custom", get_preset("activitynet"), ann, {}, pd.DataFrame(),
                               tmp_path / "videos")
    assert prepared.video_paths() == {"a": tmp_path / "videos" / "a.mkv", "b": tmp_path / "videos" / "b.mp4"}
    prepared.videos_dir = None
    with pytest.raises(InputError, match="prepared without videos"):
        prepared.video_paths()
