"""Names of a benchmark folder's parts, shared by the generator, the source stage of pretraining and
the methods that read the source set::

    OUT/videos/{video}.mp4           H.264, constant fps, a keyframe every second
    OUT/annotations.json             ActivityNet v1.3 format, subsets "training" / "validation"
    OUT/action_label_mapping.json    sorted class names (the label mapping)
    OUT/benchmark.json               config, seed, summary; "complete": true once every file is written
    OUT/source/videos/{video}.mp4    the trimmed source set (ids src_train_0000, src_val_0000)
    OUT/source/annotations.json      its ActivityNet-format labels (one instance spanning each video)
    OUT/source/action_label_mapping.json, OUT/source/source.json (benchmark identity, sizes, "complete")
    OUT/source_encoder/pretrain/tac/ the initial encoder's run (best.pt), written on first use;
                                     source_encoder.json once it has trained every epoch
"""
from __future__ import annotations

SUBSETS = ("training", "validation")
BENCHMARK_MANIFEST = "benchmark.json"  # BENCHMARK/benchmark.json: config, seed, summary, "complete"
SOURCE_DIR = "source"                  # BENCHMARK/source/: the trimmed source set
SOURCE_MANIFEST = "source.json"        # its manifest (no benchmark.json: it is no target benchmark)
SOURCE_ENCODER_DIR = "source_encoder"  # BENCHMARK/source_encoder/: the run of TAC on the source set
VIDEO_PREFIX = {"training": "train", "validation": "val"}  # video ids: train_0000, val_0000
