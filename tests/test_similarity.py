"""Similarity matrices, the temporal-sensitivity score and boundary differences on features built to
be temporally sensitive or not; notebook 07 run through papermill on them."""
from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from tsplab.features import FeatureMetadata, save_features
from tsplab.similarity import (boundary_difference_summary, boundary_differences, clip_membership,
                               common_videos, consecutive_differences, cosine_similarity_matrix,
                               probe_scores, probe_sensitivity, roc_auc, sensitivity_per_video,
                               similarity_views, temporal_sensitivity, video_folds, video_sensitivity)

# 8-frame clips at 8 fps with stride 8: clip i spans [i, i+1) s, centre i + 0.5
META = dict(stride_frames=8, clip_length_frames=8, frame_rate=8.0, feature_dim=16)
CENTRES = np.arange(4) + 0.5



@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")

def test_cosine_similarity_matrix():
    sim = cosine_similarity_matrix(np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [0, 0]]))
    assert sim.shape == (5, 5)
    np.testing.assert_allclose(sim[0], [1, 1, 0, np.sqrt(0.5), 0], atol=1e-12)
    np.testing.assert_allclose(np.diag(sim)[:4], 1.0)


def test_membership_uses_clip_centres():
    member = clip_membership([[1.0, 3.0], [0.6, 0.9]], CENTRES)
    np.testing.assert_array_equal(member, [[False, True, True, False], [False] * 4])


def test_sensitivity_of_hand_built_video():
    # clips 1 and 2 inside the action [1, 3]; action clips are (1, 0), background clips (0, 1)
    feats = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    scores = video_sensitivity(feats, np.array([[1.0, 3.0]]), CENTRES)
    assert scores["fg_fg"] == pytest.approx(1.0) and scores["fg_bg"] == pytest.approx(0.0)
    assert scores["sensitivity"] == pytest.approx(1.0) and scores["num_foreground_clips"] == 2
    # an action covering the whole video has no background: no score
    assert np.isnan(video_sensitivity(feats, np.array([[0.0, 4.0]]), CENTRES)["sensitivity"])


def test_consecutive_difference_kinds():
    feats = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    centres = np.arange(5) + 0.5
    d = consecutive_differences(feats, np.array([[1.0, 3.0], [3.6, 3.8]]), centres)
    # (0,1) enters the action, (1,2) inside, (2,3) leaves it, (3,4) has a short action between
    assert d["kind"].tolist() == ["boundary", "action", "boundary", "boundary"]
    np.testing.assert_allclose(d["mean_abs_diff"], [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(d["t_s"], [1.0, 2.0, 3.0, 4.0])
    d = consecutive_differences(feats, np.zeros((0, 2)), centres)
    assert set(d["kind"]) == {"background"}


def make_feature_sets(root, seed=0):
    """Ground truth of 3 videos and two feature folders: 'tsp' separates each action from its
    background, 'tac' sees the same scene in every clip (plus noise)."""
    rng = np.random.default_rng(seed)
    videos = {"v_JDg--pjY5gg": [(5.0, 14.0), (22.0, 30.0)], "vid_b": [(10.0, 25.0)],
              "vid_c": [(3.0, 8.0), (12.0, 16.0), (30.0, 38.0)]}
    rows = [(v, s, e, "jump" if i % 2 == 0 else "run") for v, segs in videos.items()
            for i, (s, e) in enumerate(segs)]
    instances = pd.DataFrame(rows, columns=["video", "t_start_s", "t_end_s", "label"])
    folders = {"tac": root / "tac", "tsp": root / "tsp"}
    for folder in folders.values():
        FeatureMetadata(**META).save(folder)
    for video, segs in videos.items():
        t = 40
        member = clip_membership(np.array(segs), np.arange(t) + 0.5)
        scene = rng.normal(size=16) * 3
        tac = scene + rng.normal(size=(t, 16)) * 0.3
        tsp = np.tile(rng.normal(size=16), (t, 1))  # background
        for k in range(len(segs)):
            tsp[member[k]] = rng.normal(size=16)  # each action its own direction
        tsp += rng.normal(size=(t, 16)) * 0.3
        stem = "JDg--pjY5gg" if video.startswith("v_") else video  # features named without v_
        save_features(folders["tac"], stem, tac)
        save_features(folders["tsp"], stem, tsp)
    return instances, folders


@pytest.fixture
def feature_sets(tmp_path):
    return make_feature_sets(tmp_path)


def test_sensitivity_ranks_constructed_features(feature_sets):
    instances, folders = feature_sets
    assert common_videos(folders, instances) == ["JDg--pjY5gg", "vid_b", "vid_c"]
    table = temporal_sensitivity(folders, instances).set_index("feature_set")
    assert table.index.tolist() == ["tac", "tsp"] and (table["num_videos"] == 3).all()
    assert table.loc["tsp", "sensitivity"] > 0.5
    assert abs(table.loc["tac", "sensitivity"]) < 0.05
    assert table.loc["tac", "fg_bg"] > 0.9  # TAC-like: action and background look alike
    per_video = sensitivity_per_video(folders, instances)
    assert len(per_video) == 6 and per_video["sensitivity"].notna().all()


def test_boundary_differences_larger_at_boundaries_for_sensitive_features(feature_sets):
    instances, folders = feature_sets
    diffs = boundary_differences(folders, instances)
    assert len(diffs) == 2 * 3 * 39 and set(diffs["kind"]) == {"boundary", "action", "background"}
    summary = boundary_difference_summary(diffs).set_index("feature_set")
    assert summary.loc["tsp", "boundary_ratio"] > 3
    assert 0.5 < summary.loc["tac", "boundary_ratio"] < 1.5


def test_similarity_views_and_plots(feature_sets):
    from tsplab.plots import SimilarityBrowser, plot_boundary_histogram, plot_similarity_matrices

    instances, folders = feature_sets
    views = similarity_views(folders, "vid_c", instances)
    assert [v.feature_set for v in views] == ["tac", "tsp"]
    assert views[0].matrix.shape == (40, 40) and views[0].segments_s.shape == (3, 2)
    np.testing.assert_allclose(views[0].clip_centre_s[:2], [0.5, 1.5])
    views += similarity_views(folders, "v_JDg--pjY5gg", instances)
    fig = plot_similarity_matrices(views)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 4  # 2 feature sets x 2 videos (colorbars are extra axes)
    assert images[0].get_title() == "tac: vid_c"
    fig = plot_boundary_histogram(boundary_differences(folders, instances))
    assert [ax.get_title() for ax in fig.axes] == ["tac", "tsp"]

    browser = SimilarityBrowser(folders, instances)
    assert browser.video.options == ("JDg--pjY5gg", "vid_b", "vid_c")
    first = browser.image.value
    assert first[:4] == b"\x89PNG"
    browser.video.value = "vid_b"  # the observer redraws
    assert browser.image.value != first
    browser.feature_sets.value = ("tsp",)
    assert len([ax for ax in browser.figure.axes if ax.images]) == 1
    browser.feature_sets.value = ()
    assert browser.update() is None and browser.image.value == b""


def test_missing_features_are_named(feature_sets):
    instances, folders = feature_sets
    with pytest.raises(FileNotFoundError, match="nope"):
        similarity_views(folders, "nope", instances)


def test_v_prefixed_files_and_bare_ids_are_one_video(feature_sets):
    """The other spelling on each side: files v_<id>.npy (what tsplab extract writes for
    ActivityNet), ground truth with bare ids; two files of one video are refused."""
    from tsplab.errors import InputError

    instances, folders = feature_sets
    for folder in folders.values():
        (folder / "JDg--pjY5gg.npy").rename(folder / "v_JDg--pjY5gg.npy")
    bare = instances.assign(video=instances["video"].str.replace("v_", "", regex=False))
    assert common_videos(folders, bare) == ["JDg--pjY5gg", "vid_b", "vid_c"]
    (view,) = similarity_views({"tsp": folders["tsp"]}, "JDg--pjY5gg", bare)
    np.testing.assert_allclose(view.matrix, cosine_similarity_matrix(np.load(folders["tsp"] / "v_JDg--pjY5gg.npy")))
    assert view.segments_s.shape == (2, 2)
    (folders["tac"] / "vid_b.npy").rename(folders["tac"] / "v_vid_b.npy")  # not an ActivityNet id: kept
    assert common_videos(folders, bare) == ["JDg--pjY5gg", "vid_c"]
    save_features(folders["tsp"], "JDg--pjY5gg", np.zeros((40, 16)))
    with pytest.raises(InputError, match="JDg--pjY5gg.npy and v_JDg--pjY5gg.npy are the same video"):
        common_videos(folders, bare)


@pytest.mark.slow
def test_notebook_07_runs_on_constructed_features(tmp_path):
    import nbformat
    import papermill

    from tsplab.runs import repo_root

    instances, folders = make_feature_sets(tmp_path)
    database = {video: {"subset": "validation", "duration": 40.0, "annotations": [
        {"segment": [r.t_start_s, r.t_end_s], "label": r.label}
        for r in instances[instances.video == video].itertuples()]}
        for video in instances.video.unique()}
    (tmp_path / "gt.json").write_text(json.dumps({"version": "1.3", "taxonomy": [],
                                                  "database": database}))
    notebooks = repo_root() / "notebooks"
    out = tmp_path / "07.ipynb"
    papermill.execute_notebook(
        str(notebooks / "07_feature_similarity.ipynb"), str(out),
        parameters={"feature_folders": {k: str(v) for k, v in folders.items()},
                    "ground_truth": str(tmp_path / "gt.json"), "num_videos_shown": 2},
        cwd=str(notebooks), kernel_name="python3", progress_bar=False)
    outputs = [o for c in nbformat.read(out, 4).cells for o in c.get("outputs", [])]
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "3 videos with ground truth and features in every folder" in text
    assert "sensitivity" in text and "probe_auc" in text and "boundary_ratio" in text
    # matrices + histogram; the browser is a widget alone (a static copy of its first view went stale)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


# ------------------------------------------------------------------- the cross-validated probe
def _clips(videos=12, clips=20, seed=0):
    """Clip labels of ``videos`` videos: clips 5-12 of each are foreground."""
    fg = np.tile(np.isin(np.arange(clips), np.arange(5, 13)), videos)
    vid = np.repeat([f"v{i}" for i in range(videos)], clips).astype(object)
    return fg, vid, np.random.default_rng(seed)


def test_roc_auc_by_hand():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5  # ties count half
    assert roc_auc([0, 1, 1], [0.1, 0.3, 0.05]) == 0.5
    assert np.isnan(roc_auc([1, 1], [0.1, 0.2]))


def test_video_folds_keep_each_video_in_one_fold():
    folds = video_folds([f"v{i}" for i in range(11)] * 3, 5, seed=1)
    assert len(folds) == 11 and set(folds.values()) == set(range(5))
    assert sorted(np.bincount(list(folds.values()))) == [2, 2, 2, 2, 3]
    assert video_folds([f"v{i}" for i in range(11)], 5, seed=1) == folds


def test_probe_tells_separable_from_inseparable_features():
    fg, vid, rng = _clips()
    separable = rng.normal(size=(len(fg), 16))
    separable[:, 0] = np.where(fg, 1.0, -1.0) + rng.normal(size=len(fg)) * 0.1
    scores = probe_scores(separable, fg, vid)
    assert scores["probe_auc"] > 0.99 and scores["probe_accuracy"] > 0.97
    assert (scores["num_clips"], scores["num_videos"]) == (240, 12)
    inseparable = rng.normal(size=(len(fg), 16))
    scores = probe_scores(inseparable, fg, vid)
    assert abs(scores["probe_auc"] - 0.5) < 0.12 and abs(scores["probe_accuracy"] - 0.5) < 0.12
    # the same information at twice the width scores the same (a cosine difference would not)
    wide = np.hstack([separable, separable])
    assert probe_scores(wide, fg, vid)["probe_auc"] == pytest.approx(probe_scores(separable, fg, vid)["probe_auc"],
                                                                     abs=0.01)


def test_probe_folds_by_video_so_a_video_code_is_not_foreground():
    # Every clip of a video carries the video's own random code; whole videos are foreground or
    # background. A probe tested on clips of its training videos would recall the codes (AUC 1); held
    # out by video it cannot tell (chance).
    rng = np.random.default_rng(3)
    videos = 40
    codes = rng.normal(size=(videos, 16))
    vid = np.repeat(np.arange(videos), 10)
    fg = vid % 2 == 0
    x = codes[vid] + rng.normal(size=(len(vid), 16)) * 0.01
    assert abs(probe_scores(x, fg, vid.astype(str).astype(object))["probe_auc"] - 0.5) < 0.15


def test_probe_sensitivity_reads_feature_folders(tmp_path):
    rows, rng = [], np.random.default_rng(0)
    folders = {"sensitive": tmp_path / "s", "scene": tmp_path / "c"}
    for folder in folders.values():
        FeatureMetadata(**META).save(folder)
    direction = rng.normal(size=16)
    for i in range(10):
        start = float(rng.integers(5, 20))
        rows.append((f"vid_{i}", start, start + 10.0, "jump"))
        fg = clip_membership(np.array([[start, start + 10.0]]), np.arange(40) + 0.5)[0]
        scene = rng.normal(size=16) * 3
        save_features(folders["sensitive"], f"vid_{i}", scene + np.outer(fg, direction) * 3 + rng.normal(size=(40, 16)))
        save_features(folders["scene"], f"vid_{i}", scene + rng.normal(size=(40, 16)))
    instances = pd.DataFrame(rows, columns=["video", "t_start_s", "t_end_s", "label"])
    table = probe_sensitivity(folders, instances).set_index("feature_set")
    assert table.index.tolist() == ["sensitive", "scene"]
    assert (table["num_videos"] == 10).all() and (table["num_clips"] == 400).all()
    assert table.loc["sensitive", "probe_auc"] > 0.9
    assert abs(table.loc["scene", "probe_auc"] - 0.5) < 0.15
