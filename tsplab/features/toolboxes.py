"""How ActivityNet's localization toolboxes read a feature folder, written beside the features:

- ``toolboxes.json``: ActionFormer's (``happyharrycn/actionformer_release``) and OpenTAD's
  (``sming256/OpenTAD``) config values for this folder, in the modes that put every feature at its
  clip's centre (``toolbox_config``, which says why);
- ``missing_files.txt`` (OpenTAD's dataset ``block_list``, one id a line) and ``missing_files.json``
  (the same ids as a JSON list, the ``blocked_videos`` of OpenTAD's evaluator): the videos whose
  extraction failed;
- with an annotation file, ``annotations_filtered.json``: its videos that have features, each action
  with its ``label_id`` (ActionFormer has no block list: a listed video without a file stops it).

numpy/pandas only.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tsplab.datasets import Annotations, normalize_video_id, read_annotations, write_activitynet_json
from tsplab.features.folders import FeatureMetadata, feature_files, list_feature_videos, read_failures
from tsplab.runs import atomic_write_text, read_json, resolve, write_json

TOOLBOXES_FILE = "toolboxes.json"  # ActionFormer's and OpenTAD's config values for the folder
MISSING_FILE = "missing_files.txt"  # OpenTAD's block list: videos without features, one id a line
MISSING_JSON = "missing_files.json"  # the same ids as a JSON list (OpenTAD's evaluator: blocked_videos)
FILTERED_ANNOTATIONS = "annotations_filtered.json"  # the annotations of the videos with features
# ActionFormer reads one HDF5 file only when its path contains ".hdf5" (libs/datasets/*.py).
HDF5_FILE = "features.hdf5"

RESIZE_REASON = (
    "stride == clip length: the clips tile the video, so ActionFormer's resize mode "
    "(force_upsampling, anet_tsp.yaml), which spreads the T features evenly over (T-1)*stride + "
    "clip length frames, puts each one at its clip's centre, as its variable-length mode does")
VARIABLE_REASON = (
    "stride != clip length: overlapping (or gapped) clips do not tile (T-1)*stride + clip length "
    "frames evenly, so ActionFormer's resize mode (force_upsampling: True, anet_tsp.yaml) would "
    "put features up to {error:.3f} s off their clip centres; its variable-length mode "
    "(force_upsampling: False) puts feature i at (i*stride + clip length/2) / fps s, the centre")
OPENTAD_REASON = (
    "AnetPaddingDataset (features_tsp_pad.py) puts feature i at (i*feature_stride + offset_frames) / "
    "fps s, the clip's centre, for any stride; OpenTAD's resize datasets stretch the features over "
    "the annotation's duration instead, which the clip centres do not span evenly")


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


def resize_mode_is_exact(meta: FeatureMetadata) -> bool:
    """Whether ActionFormer's resize mode (``force_upsampling: True``) keeps every feature at its
    clip's centre: only when the clips tile the video (``stride_frames == clip_length_frames``)."""
    return meta.stride_frames == meta.clip_length_frames


def resize_mode_error_s(meta: FeatureMetadata) -> float:
    """The largest distance (s) between a resized feature's place in ActionFormer's resize mode and
    its clip centre, for long videos: ``|clip length - stride| / (2 * fps)``. The resized grid's
    ``j``-th cell lies at ``(j + 1/2) * ((T-1)*stride + L) / M`` frames, the centres it interpolates at
    ``((j + 1/2) * T/M - 1/2) * stride + L/2``; their difference, ``(L - stride) * ((j + 1/2)/M - 1/2)``,
    is largest at the two ends."""
    return abs(meta.clip_length_frames - meta.stride_frames) / (2 * meta.frame_rate)


def toolbox_config(folder, annotations: dict | None = None) -> dict:
    """How ActionFormer and OpenTAD read this feature folder, from its metadata and file names.

    ActionFormer (``libs/datasets/anet.py``, variable-length mode) maps a time ``t`` to the grid
    position ``(t * default_fps - num_frames / 2) / feat_stride``, OpenTAD (``AnetPaddingDataset``) to
    ``(t * fps - offset_frames) / (feature_stride * sample_stride)``. tsplab's grid puts clip ``i``'s
    centre at ``(i * stride_frames + clip_length_frames / 2) / frame_rate`` seconds (every video
    resampled to ``frame_rate``), so ``feat_stride = feature_stride = stride_frames``,
    ``num_frames = clip_length_frames``, ``offset_frames = clip_length_frames / 2``,
    ``default_fps = fps = frame_rate``. ActionFormer's resize mode is given only where it is exact
    (``resize_mode_is_exact``); ``alignment`` says why. Both build a file name as ``prefix +
    annotation id + .npy``; ActionFormer also reads ``features.hdf5`` (``actionformer_hdf5``).
    ``annotations``: the summary of ``annotations_filtered.json`` (``write_toolbox_files``); by
    default the one ``toolboxes.json`` holds.
    """
    folder = resolve(folder)
    meta = FeatureMetadata.load(folder)
    failed = read_failures(folder)
    prefix = file_prefix(list_feature_videos(folder) + list(failed["video"].astype(str)))
    offset = meta.clip_length_frames / 2
    annotations = _filtered_annotations(folder, annotations)
    af = dict(feat_folder=str(folder), file_prefix=prefix, file_ext=".npy", input_dim=meta.feature_dim,
              feat_stride=meta.stride_frames, num_frames=meta.clip_length_frames,
              default_fps=_number(meta.frame_rate), force_upsampling=resize_mode_is_exact(meta),
              **annotations.get("actionformer", {}))
    ot = dict(dataset_type="AnetPaddingDataset", data_path=str(folder), block_list=str(folder / MISSING_FILE),
              feature_stride=meta.stride_frames, sample_stride=1, offset_frames=_number(offset),
              fps=_number(meta.frame_rate), load_feats=dict(type="LoadFeats", feat_format="npy", prefix=prefix),
              blocked_videos=str(folder / MISSING_JSON), **annotations.get("opentad", {}))
    config = {"actionformer": af, "opentad": ot}
    if (folder / HDF5_FILE).is_file():
        config["actionformer_hdf5"] = dict(feat_folder=str(folder / HDF5_FILE), file_prefix=prefix)
    config["alignment"] = dict(
        actionformer=RESIZE_REASON if af["force_upsampling"] else
        VARIABLE_REASON.format(error=resize_mode_error_s(meta)), opentad=OPENTAD_REASON)
    config["longest_video_features"] = _longest(folder)
    config["missing_videos"] = missing_videos(folder)
    config["annotations"] = annotations.get("summary")
    config["notes"] = _notes(prefix, offset)
    return config


def _notes(prefix, offset: float) -> list[str]:
    notes = []
    if prefix is None:
        notes.append("file names mix prefixes (some v_<id>, some <id>): rename them to one pattern, "
                     "the toolboxes take one prefix")
    if not float(offset).is_integer():
        notes.append(f"OpenTAD reads offset_frames as an integer; the clip centre is {offset} frames")
    return notes


def _longest(folder: Path) -> int:
    """The most features of any video (ActionFormer's ``max_seq_len`` bounds the training window)."""
    counts = [int(np.load(p, mmap_mode="r").shape[0]) for p in feature_files(folder).values()]
    return max(counts, default=0)


def _filtered_annotations(folder: Path, summary: dict | None) -> dict:
    """The annotation settings of both toolboxes once ``annotations_filtered.json`` exists."""
    path = folder / FILTERED_ANNOTATIONS
    if not path.is_file():
        return {}
    if summary is None and (folder / TOOLBOXES_FILE).is_file():
        summary = read_json(folder / TOOLBOXES_FILE).get("annotations")
    labels = _labels_of(path)
    return {"actionformer": dict(json_file=str(path), num_classes=len(labels)),
            "opentad": dict(ann_file=str(path)), "summary": summary}


def _labels_of(path: Path) -> list[str]:
    """The class names of an annotation JSON that tsplab wrote, in ``label_id`` order."""
    by_id = {}
    for video in read_json(path)["database"].values():
        for act in video.get("annotations", []):
            by_id[act["label_id"]] = act["label"]
    return [by_id[i] for i in sorted(by_id)]


def missing_videos(folder) -> list[str]:
    """The annotation ids (``normalize_video_id``) of the videos whose extraction failed in
    ``folder`` (all shards), sorted: the block list OpenTAD skips."""
    return sorted({normalize_video_id(v) for v in read_failures(folder)["video"].astype(str)})


def filter_annotations(ann: Annotations, folder) -> tuple[Annotations, dict]:
    """``ann`` without the videos that have no features in ``folder`` (the failed ones and those not
    extracted), the label mapping kept whole (so ``label_id`` stays the index in
    ``action_label_mapping.json``); and a summary: how many videos were kept, which were dropped."""
    have = set(feature_files(folder))
    failed = set(missing_videos(folder))
    ids = ann.videos["video"].astype(str).map(normalize_video_id)
    keep = ids.isin(have)
    videos = ann.videos[keep.to_numpy()].reset_index(drop=True)
    instances = ann.instances[ann.instances["video"].astype(str).map(normalize_video_id).isin(have)]
    dropped = sorted(ids[~keep])
    summary = dict(videos=int(keep.sum()), dropped_failed=[v for v in dropped if v in failed],
                   dropped_without_features=[v for v in dropped if v not in failed])
    return Annotations(videos, instances.reset_index(drop=True), list(ann.labels)), summary


def write_toolbox_files(folder, annotations=None) -> dict:
    """Write ``toolboxes.json`` (``toolbox_config``), ``missing_files.txt`` (one id a line, OpenTAD's
    ``block_list``; empty when nothing failed, so the configured path always exists) and
    ``missing_files.json``; with ``annotations`` (an annotation file, any format
    ``tsplab.datasets.read_annotations`` reads), also ``annotations_filtered.json``
    (``filter_annotations``), which ``toolbox_config`` then names as both toolboxes' annotation file.
    Without it, a filtered file made before is refreshed from the file it came from."""
    folder = resolve(folder)
    summary = None
    source = annotations or _previous_source(folder)
    if source:
        filtered, summary = filter_annotations(read_annotations(resolve(source)), folder)
        summary = dict(source=str(resolve(source)), file=str(folder / FILTERED_ANNOTATIONS), **summary)
        write_activitynet_json(filtered, folder / FILTERED_ANNOTATIONS)
    missing = missing_videos(folder)
    atomic_write_text(folder / MISSING_FILE, "".join(f"{v}\n" for v in missing))
    write_json(folder / MISSING_JSON, missing)
    config = toolbox_config(folder, summary)
    write_json(folder / TOOLBOXES_FILE, config)
    return config


def _previous_source(folder: Path) -> str | None:
    """The annotation file an earlier run filtered into this folder, if it still exists."""
    path = folder / TOOLBOXES_FILE
    if not (path.is_file() and (folder / FILTERED_ANNOTATIONS).is_file()):
        return None
    source = (read_json(path).get("annotations") or {}).get("source")
    return source if source and Path(source).is_file() else None


def _yaml(value) -> str:
    """A YAML scalar: strings double-quoted (a JSON string is a valid YAML one, so a ``,``, ``#``
    or ``: `` in a path cannot end it), booleans as ``true``/``false``, numbers as they are."""
    return json.dumps(value)


def toolbox_snippet(folder) -> str:
    """Markdown with the config lines of ActionFormer (YAML, its ``dataset`` block) and OpenTAD
    (Python, its dataset settings, ``LoadFeats`` step and evaluator) for this feature folder."""
    config = toolbox_config(folder)
    af, ot = config["actionformer"], config["opentad"]
    prefix = "" if af["file_prefix"] is None else af["file_prefix"]
    keys = ["json_file", "feat_folder", "file_prefix", "file_ext", "num_classes", "input_dim",
            "feat_stride", "num_frames", "default_fps"]
    actionformer = ["dataset: {"] + [f"  {k}: {_yaml(prefix if k == 'file_prefix' else af[k])},"
                                     for k in keys if k in af]
    meta = FeatureMetadata.load(folder)
    why = (f"stride {meta.stride_frames} == clip length: the resize mode is exact here; false works too"
           if af["force_upsampling"] else
           f"stride {meta.stride_frames} != clip length {meta.clip_length_frames}: the resize mode would put "
           f"features up to {resize_mode_error_s(meta):.3f} s off (toolboxes.json: alignment)")
    actionformer += [f"  # {why}", f"  force_upsampling: {_yaml(af['force_upsampling'])},",
                     f"  # max_seq_len: the training window; the longest video here has "
                     f"{config['longest_video_features']} features",
                     "}"]
    opentad = [f"dataset_type = {_yaml(ot['dataset_type'])}"]
    if "ann_file" in ot:
        opentad.append(f"annotation_path = {_yaml(ot['ann_file'])}")
    opentad += [f"data_path = {_yaml(ot['data_path'])}",
                f"block_list = {_yaml(ot['block_list'])}  # videos whose extraction failed",
                "# in each of train/val/test of `dataset`:",
                f"    feature_stride={ot['feature_stride']}, sample_stride={ot['sample_stride']}, "
                f"offset_frames={ot['offset_frames']}, fps={ot['fps']},",
                f"    # pipeline: dict(type=\"LoadFeats\", feat_format=\"npy\", prefix={_yaml(prefix)}),",
                f"# evaluation = dict(..., blocked_videos={_yaml(ot['blocked_videos'])})"]
    lines = ["ActionFormer (`configs/*.yaml`):", "", "```yaml", *actionformer, "```", "",
             "OpenTAD (`configs/_base_/datasets/...`):", "", "```python", *opentad, "```"]
    if "actionformer_hdf5" in config:
        lines += ["", f"ActionFormer also reads the one HDF5 file: `feat_folder: "
                      f"{_yaml(config['actionformer_hdf5']['feat_folder'])}`."]
    if config["notes"]:
        lines += [""] + [f"Note: {n}." for n in config["notes"]]
    return "\n".join(lines) + "\n"
