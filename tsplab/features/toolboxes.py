"""How ActivityNet's localization toolboxes read a feature folder: ``toolboxes.json`` (ActionFormer's
and OpenTAD's config values for this folder) and ``missing_files.txt`` (OpenTAD's block list: the
videos whose extraction failed, as annotation ids); see ``toolbox_config``. numpy/pandas only.
"""
from __future__ import annotations

import json

from tsplab.annotations import normalize_video_id
from tsplab.features.folders import FeatureMetadata, list_feature_videos, read_failures
from tsplab.runs import atomic_write_text, resolve, write_json

TOOLBOXES_FILE = "toolboxes.json"  # ActionFormer's and OpenTAD's config values for the folder
MISSING_FILE = "missing_files.txt"  # OpenTAD's block list: videos without features, one id a line

def file_prefix(stems) -> str | None:
    """What every file stem puts before its video id: ``"v_"`` for ActivityNet's ``v_<id>`` files,
    ``""`` for files named by id (THUMOS14's ``video_test_0000004``); ``None`` when the stems differ
    (no single prefix lets a toolbox build every file name from the annotation ids)."""
    prefixes = {stem[:len(stem) - len(normalize_video_id(stem))] for stem in map(str, stems)}
    if not prefixes:
        return ""
    return prefixes.pop() if len(prefixes) == 1 else None


def _number(x: float):
    """15.0 -> 15 (configs read better with the integer when there is one)."""
    return int(x) if float(x).is_integer() else float(x)


def toolbox_config(folder) -> dict:
    """How ActionFormer and OpenTAD read this feature folder, from its metadata and file names.

    Both toolboxes place feature ``i`` at the centre of its clip in frames at a fixed frame rate:
    ActionFormer (``libs/datasets/anet.py``) maps a time ``t`` to the grid position
    ``(t * default_fps - num_frames / 2) / feat_stride``, OpenTAD (``AnetPaddingDataset``) to
    ``(t * fps - offset_frames) / (feature_stride * sample_stride)``. tsplab's grid puts clip ``i``'s
    centre at ``(i * stride_frames + clip_length_frames / 2) / frame_rate`` seconds (every video
    resampled to ``frame_rate``), so ``feat_stride = feature_stride = stride_frames``,
    ``num_frames = clip_length_frames``, ``offset_frames = clip_length_frames / 2``,
    ``default_fps = fps = frame_rate``. Both build a file name as ``prefix + annotation id + .npy``.
    """
    folder = resolve(folder)
    meta = FeatureMetadata.load(folder)
    failed = read_failures(folder)
    prefix = file_prefix(list_feature_videos(folder) + list(failed["video"].astype(str)))
    offset = meta.clip_length_frames / 2
    notes = []
    if prefix is None:
        notes.append("file names mix prefixes (some v_<id>, some <id>): rename them to one pattern, "
                     "the toolboxes take one prefix")
    if not float(offset).is_integer():
        notes.append(f"OpenTAD reads offset_frames as an integer; the clip centre is {offset} frames")
    return {
        "actionformer": dict(feat_folder=str(folder), file_prefix=prefix, file_ext=".npy",
                             input_dim=meta.feature_dim, feat_stride=meta.stride_frames,
                             num_frames=meta.clip_length_frames, default_fps=_number(meta.frame_rate)),
        "opentad": dict(data_path=str(folder), block_list=str(folder / MISSING_FILE),
                        feature_stride=meta.stride_frames, sample_stride=1,
                        offset_frames=_number(offset), fps=_number(meta.frame_rate),
                        load_feats=dict(type="LoadFeats", feat_format="npy", prefix=prefix)),
        "missing_videos": missing_videos(folder),
        "notes": notes,
    }


def missing_videos(folder) -> list[str]:
    """The annotation ids (``normalize_video_id``) of the videos whose extraction failed in
    ``folder`` (all shards), sorted: the block list OpenTAD skips."""
    return sorted({normalize_video_id(v) for v in read_failures(folder)["video"].astype(str)})


def write_toolbox_files(folder) -> dict:
    """Write ``toolboxes.json`` (``toolbox_config``) and ``missing_files.txt`` (one id a line,
    OpenTAD's ``block_list``; empty when nothing failed, so the configured path always exists)."""
    folder = resolve(folder)
    config = toolbox_config(folder)
    atomic_write_text(folder / MISSING_FILE, "".join(f"{v}\n" for v in config["missing_videos"]))
    write_json(folder / TOOLBOXES_FILE, config)
    return config


def toolbox_snippet(folder) -> str:
    """Markdown with the config lines of ActionFormer (YAML, its ``dataset`` block) and OpenTAD
    (Python, its dataset settings and ``LoadFeats`` step) for this feature folder."""
    config = toolbox_config(folder)
    af, ot = config["actionformer"], config["opentad"]
    prefix = "" if af["file_prefix"] is None else af["file_prefix"]
    actionformer = "\n".join([
        "dataset: {",
        f"  feat_folder: {af['feat_folder']},",
        f"  file_prefix: {prefix},",
        f"  file_ext: {af['file_ext']},",
        f"  input_dim: {af['input_dim']},",
        f"  feat_stride: {af['feat_stride']},",
        f"  num_frames: {af['num_frames']},",
        f"  default_fps: {af['default_fps']},",
        "  # json_file, num_classes, max_seq_len, ...: as for your dataset",
        "}"])
    opentad = "\n".join([
        f"data_path = {json.dumps(ot['data_path'])}",
        f"block_list = {json.dumps(ot['block_list'])}  # videos whose extraction failed",
        "# in each of train/val/test of `dataset`:",
        f"    feature_stride={ot['feature_stride']},",
        f"    sample_stride={ot['sample_stride']},",
        f"    offset_frames={ot['offset_frames']},",
        f"    fps={ot['fps']},",
        f"    # pipeline: dict(type=\"LoadFeats\", feat_format=\"npy\", prefix={json.dumps(prefix)}),"])
    lines = ["ActionFormer (`configs/*.yaml`):", "", "```yaml", actionformer, "```", "",
             "OpenTAD (`configs/_base_/datasets/...`):", "", "```python", opentad, "```"]
    if config["notes"]:
        lines += [""] + [f"Note: {n}." for n in config["notes"]]
    return "\n".join(lines) + "\n"
