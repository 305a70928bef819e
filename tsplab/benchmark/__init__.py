"""The built-in synthetic benchmark: small untrimmed videos (H.264 MP4) with ActivityNet-format labels,
and beside them a trimmed, class-labelled source set (Kinetics' role).

What it models: TSP (Alwassel et al. 2021, Sec. 1 and 3.3) argues that encoders pretrained for
trimmed action classification (TAC) learn *temporally insensitive* features: a foreground clip and a
background clip of one untrimmed video look alike to them, because the cheapest way to classify a
trimmed clip is to recognise its scene. Here exactly that shortcut exists (each video's scene follows
its class's palette with probability ``p_scene``, constant over the video), and only a temporally
sensitive encoder can tell where the actions are (a class-specific periodic motion of one object over
an idle or wandering background, each video with its own motion level so that foreground is only
decidable relative to the rest of the video: the information of TSP's global video feature). The
source set gives every method its initial encoder (TAC on it, ``weights="source"``), as Kinetics does
in the paper: it teaches the world and motions, never the foreground/background distinction.

Pointers: README.md, "The synthetic benchmark" (design, sizes, measurements); :mod:`.layout` (the
output folder); :mod:`.dials` (other papers' premises, off by default) and :mod:`.checks` (their
manipulation checks); :mod:`.plots` (notebook 09's figures). The generator imports neither torch nor
any pretraining code; TAC on the source set lives with pretraining.

Import :mod:`.checks` and :mod:`.plots` as submodules: this package's top level stays light, because
every video-encoding worker process imports it.
"""
from tsplab.benchmark.config import SIZES, SourceConfig, SyntheticConfig, get_config, source_config
from tsplab.benchmark.dials import (DIAL_NAMES, DIAL_RANGES, BenchmarkDials, check_benchmark_options,
                                    parse_dial_options)
from tsplab.benchmark.generate import ensure_benchmark, generate_benchmark, generate_source
from tsplab.benchmark.layout import (BENCHMARK_MANIFEST, SOURCE_DIR, SOURCE_ENCODER_DIR, SOURCE_MANIFEST,
                                     SUBSETS)
from tsplab.benchmark.motions import MOTIONS, SOURCE_CLASSES_PER_SCENE, SOURCE_MOTIONS
from tsplab.benchmark.plan import (VideoPlan, class_names, plan_benchmark, plan_source, source_class_names,
                                   source_num_scenes, source_scene_of)
from tsplab.benchmark.render import frames_for_video, render_video
from tsplab.benchmark.scene import SyntheticVideo, class_palette, source_palette
from tsplab.benchmark.tables import (activitynet_json, benchmark_summary, instance_table, length_buckets,
                                     read_benchmark_config, source_summary, summarize)

__all__ = [
    "BENCHMARK_MANIFEST", "DIAL_NAMES", "DIAL_RANGES", "MOTIONS", "SIZES", "SOURCE_CLASSES_PER_SCENE",
    "SOURCE_DIR", "SOURCE_ENCODER_DIR", "SOURCE_MANIFEST", "SOURCE_MOTIONS", "SUBSETS", "BenchmarkDials",
    "SourceConfig", "SyntheticConfig", "SyntheticVideo", "VideoPlan", "activitynet_json", "benchmark_summary",
    "check_benchmark_options", "class_names", "class_palette", "ensure_benchmark", "frames_for_video",
    "generate_benchmark", "generate_source", "get_config", "instance_table", "length_buckets",
    "parse_dial_options", "plan_benchmark", "plan_source", "read_benchmark_config", "render_video",
    "source_class_names", "source_config", "source_num_scenes", "source_palette", "source_scene_of",
    "source_summary", "summarize",
]
