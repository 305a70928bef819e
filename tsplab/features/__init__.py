"""Clip features on disk and how they are made.

Without torch (importing ``tsplab.features`` does not load it; the names below are re-exported):

- ``folders``: a feature folder, one float32 ``[T, C]`` array per video plus ``metadata.json``
  (``FeatureMetadata``: the clip grid that turns feature indices into seconds); the one rule where
  video ids meet file names (``feature_files``, ``by_video_id``); the per-video table and the
  failures of a folder; the one reader of one folder or several joined per clip (BSP's
  two-stream features, ``open_feature_folders``) and its written copy (``concat_feature_folders``).
- ``gvf``: global video features (TSP sec. 3: max- or avg-pooled clip features) and h5 files in the
  layout of TSP's released ones; ``tsplab gvf``.
- ``resample``: a sequence to a fixed length on the time axis (G-TAD, BMN).
- ``toolboxes``: how ActionFormer and OpenTAD read a folder (``toolboxes.json``, the block lists
  ``missing_files.txt``/``.json``, ``annotations_filtered.json``).

With torch (import them from their modules):

- ``tsplab.features.config``: ``ExtractionConfig``, its validation, the clip settings a run
  resolves to (config, else the checkpoint's saved config, else TSP's).
- ``tsplab.features.encoding``: the clip grid of a frame array, batched encoding on a device, and
  ``ClipBatchStream`` (each video decoded once, batches across videos).
- ``tsplab.features.concurrency``: decoding beside the model (two model threads that decode in
  turn, or a decode-ahead thread, on a CPU; DataLoader worker processes beside a GPU).
- ``tsplab.features.extraction``: ``extract_features`` (``tsplab extract``): sharded, resumable,
  broken videos recorded in ``failures.csv`` and skipped.

Checkpoints (files or pretraining run folders) are read by ``tsplab.backbones`` only.
"""
from tsplab.features.folders import (FAILURES_FILE, METADATA_FILE, VIDEOS_TABLE, FeatureFileError,
                                     FeatureMetadata, JoinedFeatures, by_video_id, check_feature_folders,
                                     concat_feature_folders, feature_files, feature_folder_list,
                                     feature_path, feature_table, ids_to_keys, list_feature_videos,
                                     load_features, num_features, open_feature_folders, read_failures,
                                     save_features)
from tsplab.features.gvf import (compute_gvf_file, compute_gvfs, pool_gvf, read_features_h5,
                                 read_gvf_h5, write_features_h5, write_gvf_h5)
from tsplab.features.resample import resample_features
from tsplab.features.toolboxes import (FILTERED_ANNOTATIONS, HDF5_FILE, MISSING_FILE, MISSING_JSON,
                                       TOOLBOXES_FILE, filter_annotations, missing_videos, toolbox_config,
                                       toolbox_snippet, write_toolbox_files)

__all__ = [
    "FAILURES_FILE", "FILTERED_ANNOTATIONS", "HDF5_FILE", "METADATA_FILE", "MISSING_FILE", "MISSING_JSON",
    "TOOLBOXES_FILE", "VIDEOS_TABLE", "FeatureFileError",
    "FeatureMetadata", "JoinedFeatures", "by_video_id", "check_feature_folders", "compute_gvf_file",
    "compute_gvfs", "concat_feature_folders", "feature_files", "feature_folder_list", "feature_path",
    "feature_table", "filter_annotations", "ids_to_keys", "list_feature_videos", "load_features",
    "missing_videos", "num_features", "open_feature_folders", "pool_gvf", "read_failures", "read_features_h5", "read_gvf_h5",
    "resample_features", "save_features", "toolbox_config", "toolbox_snippet", "write_features_h5",
    "write_gvf_h5", "write_toolbox_files",
]
