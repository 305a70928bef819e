"""Datasets: their annotations (read from the common formats, validated), TSP's segment tables, and
the dataset presets that say what a dataset's name means.

Modules, from the bottom up:

- ``presets``: one :class:`DatasetPreset` per dataset (``activitynet``, ``thumos14``, ``synthetic``)
  and ``DATA_DIR``, the annotation tables the package ships (``tsplab/data/``);
- ``model``: :class:`Annotations` (videos, instances, label mapping), video ids and label mappings;
- ``source``: an annotation file as a reader receives it, and the checks CSV readers share;
- ``registry``: the readers by format name (``@register_reader``, :func:`get_reader`);
- ``readers``: one module per format: ``activitynet`` (ActivityNet v1.3 JSON, also written),
  ``detad`` (DETAD's THUMOS14 JSON), ``tsp`` (TSP's ground-truth CSV), ``custom`` (a CSV
  ``video,t_start,t_end,label``, with a durations file);
- ``durations``, ``validation``, ``segments``: durations files, the validation report of dropped and
  clipped rows, TSP's segment table;
- ``reading``: :func:`read_annotations`, the entry point (format detected from the content);
- ``prepare``: a dataset prepared into a run folder (notebook 01, pretraining).

Adding an annotation format is one module with one registered function (``@register_reader("name")``
taking an ``AnnotationSource``, returning ``make_annotations(videos, instances)``), imported by
``readers/__init__.py``; adding a dataset is one entry in ``presets.PRESETS``.

Duplicates, decided so that nothing disappears uncounted: one video under two spellings (``x`` and
``v_x``) with identical content is read once and a warning names both spellings, with conflicting
content it raises; the same video with conflicting per-video values in one CSV or durations file
raises, naming both lines; an instance row repeated exactly is kept by the readers (the official
ActivityNet evaluation counts every ground-truth row) and dropped by :func:`validate_instances`,
which lists each repeat as ``"duplicate of an earlier row"`` (strict mode raises).
"""
from tsplab.datasets.durations import read_durations
from tsplab.datasets.model import (BACKGROUND, CUSTOM_COLUMNS, DUPLICATE_PROBLEM, FOREGROUND, INSTANCE_COLUMNS,
                                   METADATA_COLUMNS, REPORT_COLUMNS, SEGMENT_TABLE_COLUMNS, SUBSETS,
                                   VIDEO_COLUMNS, AnnotationError, Annotations, label_mapping, make_annotations,
                                   normalize_video_id, read_label_mapping, subset_from_filename, summarize,
                                   write_label_mapping)
from tsplab.datasets.prepare import (CUSTOM, DATASETS, DatasetConfig, PreparedDataset, dataset_preset,
                                     load_prepared_dataset, prepare_dataset)
from tsplab.datasets.presets import (ACTIVITYNET_TIOU, DATA_DIR, PRESETS, SIZES, SYNTHETIC_LENGTH_EDGES_S,
                                     THUMOS14_TIOU, DatasetPreset, get_preset, infer_preset)
from tsplab.datasets.reading import detect_format, read_annotations
from tsplab.datasets.readers.activitynet import write_activitynet_json
from tsplab.datasets.registry import READERS, get_reader, register_reader
from tsplab.datasets.segments import (background_segments, build_segment_table, read_segment_table,
                                      segment_min_background_s, segment_report_path, write_segment_table)
from tsplab.datasets.source import AnnotationSource
from tsplab.datasets.validation import validate_instances, write_validation_report

__all__ = [
    "ACTIVITYNET_TIOU", "BACKGROUND", "CUSTOM", "CUSTOM_COLUMNS", "DATASETS", "DATA_DIR", "DUPLICATE_PROBLEM",
    "FOREGROUND", "INSTANCE_COLUMNS", "METADATA_COLUMNS", "PRESETS", "READERS", "REPORT_COLUMNS",
    "SEGMENT_TABLE_COLUMNS", "SIZES", "SUBSETS", "SYNTHETIC_LENGTH_EDGES_S", "THUMOS14_TIOU", "VIDEO_COLUMNS",
    "AnnotationError", "AnnotationSource", "Annotations", "DatasetConfig", "DatasetPreset", "PreparedDataset",
    "background_segments", "build_segment_table", "dataset_preset", "detect_format", "get_preset",
    "get_reader", "infer_preset", "label_mapping", "load_prepared_dataset", "make_annotations",
    "normalize_video_id", "prepare_dataset", "read_annotations", "read_durations", "read_label_mapping",
    "read_segment_table", "register_reader", "segment_min_background_s", "segment_report_path",
    "subset_from_filename",
    "summarize", "validate_instances", "write_activitynet_json", "write_label_mapping", "write_segment_table",
    "write_validation_report",
]
