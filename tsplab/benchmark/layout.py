"""Names of a benchmark folder's parts (the output layout, see the package docstring), shared by the
generator, the source stage of pretraining and the methods that read the source set."""
from __future__ import annotations

SUBSETS = ("training", "validation")
BENCHMARK_MANIFEST = "benchmark.json"  # BENCHMARK/benchmark.json: config, seed, summary, "complete"
SOURCE_DIR = "source"                  # BENCHMARK/source/: the trimmed source set
SOURCE_MANIFEST = "source.json"        # its manifest (no benchmark.json: it is no target benchmark)
SOURCE_ENCODER_DIR = "source_encoder"  # BENCHMARK/source_encoder/: the run of TAC on the source set
VIDEO_PREFIX = {"training": "train", "validation": "val"}  # video ids: train_0000, val_0000
