"""The source stage on the default synthetic benchmark: time TAC on the source set, then compare the
temporal sensitivity (fg-fg minus fg-bg cosine similarity) of the source encoder's features on the
target's validation videos with TAC's and TSP's after target training from it. One seed: a tour; the
`tac_source` and `tsp` conditions of `tsplab study` measure the same over seeds.

    .venv/bin/python benchmarks/bench_source.py [source]   # "source": stop after the source encoder

Writes into runs/bench_source/ (generated if absent; reused on a rerun)."""
import sys
import time
from pathlib import Path

from tsplab.benchmark import generate_benchmark
from tsplab.datasets import read_annotations
from tsplab.features.config import ExtractionConfig
from tsplab.features.extraction import extract_features
from tsplab.pretrain import pretrain
from tsplab.pretrain import source as source_stage
from tsplab.pretrain.recipes import method_configs
from tsplab.similarity import temporal_sensitivity


def main():
    run = Path("runs/bench_source")
    bench = run / "benchmark"
    t = time.perf_counter()
    generate_benchmark(bench, "default", seed=0, workers=2, progress=False)
    print(f"benchmark (target and source set) ready in {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    encoder = source_stage.ensure_source_encoder(bench, progress=False)
    print(f"source encoder in {time.perf_counter() - t:.0f} s: {encoder}", flush=True)
    print(source_stage.source_encoder_summary(bench).round(3).to_string(index=False), flush=True)

    stage = sys.argv[1] if len(sys.argv) > 1 else "all"
    if stage == "source":
        return
    for name, config in method_configs("synthetic", ["tac", "tsp"], dataset_dir=str(bench), run_dir=str(run),
                                       progress=False).items():
        if not (config.output_dir / "best.pt").is_file():
            t = time.perf_counter()
            pretrain(config)
            print(f"{name} on target from the source encoder: {time.perf_counter() - t:.0f} s", flush=True)

    ann = read_annotations(bench / "annotations.json")
    val = ann.videos[ann.videos["subset"] == "validation"]["video"].tolist()
    listing = run / "validation_videos.txt"
    listing.write_text("".join(f"{(bench / 'videos' / f'{v}.mp4').resolve()}\n" for v in val))
    checkpoints = {"source (TAC on source)": encoder, "tac (on target, from source)": run / "pretrain/tac",
                   "tsp (on target, from source)": run / "pretrain/tsp"}
    folders = {}
    for name, ckpt in checkpoints.items():
        folders[name] = run / "features_val" / name.split(" ")[0]
        extract_features(ExtractionConfig(videos=str(listing), out_dir=str(folders[name]), checkpoint=str(ckpt),
                                          stride_frames=2, batch_size=64))
    instances = ann.instances[ann.instances["subset"] == "validation"]
    table = temporal_sensitivity(folders, instances, videos=val)
    print(table.round(4).to_string(index=False))
    table.to_csv(run / "sensitivity.csv", index=False)


if __name__ == "__main__":
    main()
