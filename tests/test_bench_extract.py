"""benchmarks/bench_extract.py: the ratio it reports, pinned to hand-computed values; the rounds'
rotated order; a run that lost clips refused; the demo size's videos."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_extract", REPO / "benchmarks" / "bench_extract.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_extract"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_extract", None)


def test_ratio_is_the_median_of_paired_rounds_against_the_model_run_the_same_way(bench):
    two, ahead = bench.TWO, bench.AHEAD
    rounds = {two: [5.0, 4.0, 7.5], ahead: [6.0, 8.0, 4.0],
              bench.MODEL_OF[two]: [4.0, 5.0, 6.0], bench.MODEL_OF[ahead]: [5.0, 6.0, 3.0]}
    r = {"rounds": rounds, "default": two}
    # model (two threads) / e2e per round: 0.8, 1.25, 0.8 -> median 0.8 (min/min would say 1.0)
    assert bench.paired_ratios(r) == pytest.approx([0.8, 1.25, 0.8])
    assert bench.median_ratio(r) == pytest.approx(0.8)
    # the decode-ahead path against its own model (one thread): 5/6, 6/8, 3/4 -> 0.75
    assert bench.median_ratio(r, ahead) == pytest.approx(0.75)
    # the fastest model-only by median time: two threads (5.0 s against 5.0 s: the first listed)
    assert bench.fastest_model(r) == bench.MODEL_OF[two]
    assert bench.median_ratio(r, ahead, bench.MODEL_OF[two]) == pytest.approx(4.0 / 6.0)
    gpu = {"rounds": {"e2e": [2.0, 4.0], "model": [1.0, 3.0]}}  # gpu_check's names
    assert bench.median_ratio(gpu, "e2e", "model") == pytest.approx((0.5 + 0.75) / 2)


def test_rounds_rotate_the_order_and_pair_each_kind_once_per_round(bench):
    order = []

    def run(kind):
        def timed():
            order.append(kind)
            return float(len(order))  # the position at which it ran
        return timed

    rounds = bench.timed_rounds({"e2e": run("e2e"), "model": run("model"), "inline": run("inline")}, 4)
    assert order == ["e2e", "model", "inline", "model", "inline", "e2e", "inline", "e2e", "model",
                     "e2e", "model", "inline"]
    assert rounds == {"e2e": [1.0, 6.0, 8.0, 10.0], "model": [2.0, 4.0, 9.0, 11.0], "inline": [3.0, 5.0, 7.0, 12.0]}


def test_an_end_to_end_run_that_lost_clips_is_refused(bench, monkeypatch):
    calls = []

    def fake_end_to_end(size, args, device, work, threads, decode_ahead):
        calls.append((threads, decode_ahead))
        return 1.0, 6

    monkeypatch.setattr(bench, "end_to_end", fake_end_to_end)
    run = bench.e2e_run({"name": "x"}, bench.parse_args([]), bench.torch.device("cpu"), Path("."), 1, 7,
                        decode_ahead=True)
    with pytest.raises(AssertionError, match="'x', 6, 7"):
        run()
    assert calls == [(1, True)]  # the path asked for reaches extract_features


def test_demo_videos_are_the_first_ones_of_the_default_size_and_only_those(bench, tmp_path):
    (tmp_path / "zzz_extra.mp4").write_bytes(b"a larger run's video")  # the folder may hold more
    videos = bench.demo_videos(tmp_path, 2)
    from tsplab.benchmark import SIZES, plan_benchmark
    first = sorted(p.video for p in plan_benchmark(SIZES["default"], 0))[:2]
    assert [v for v, _ in videos] == first
    assert all(path.is_file() and path.parent == tmp_path for _, path in videos)
    stamps = [path.stat().st_mtime_ns for _, path in videos]
    assert bench.demo_videos(tmp_path, 2) == videos  # made once, then reused
    assert [path.stat().st_mtime_ns for _, path in videos] == stamps


def test_path_rows_label_each_run_beside_a_gpu_and_on_a_cpu(bench):
    gpu = {"clips": 10, "rounds": {bench.WORKERS: [2.0, 4.0, 3.0], "model only": [1.0, 1.0, 1.0]},
           "model_cpu_s": {"model only": [1.5, 1.5, 1.5]}}
    assert bench._path_rows(gpu) == {"end-to-end, decoding workers (clips/s)": "3.3",  # 10 clips / 3 s
                                     "model only (clips/s)": "10.0", "model only (ms/clip, wall)": "100.00",
                                     "model only (cores kept busy)": "1.50"}
    cpu = {"clips": 4, "rounds": {bench.TWO: [2.0], bench.MODEL_OF[bench.TWO]: [1.0]},
           "model_cpu_s": {bench.MODEL_OF[bench.TWO]: [2.0]}}
    assert list(bench._path_rows(cpu)) == ["end-to-end, two model threads (clips/s)", "model, two threads (clips/s)",
                                           "model, two threads (ms/clip, wall)", "model, two threads (cores kept busy)"]


def test_ratio_ceiling_is_what_the_cores_leave_beside_decoding(bench):
    two, ahead = bench.TWO, bench.AHEAD
    # two model threads keep both cores busy: 2 cores x 1.0 s / (2.0 s model + 0.25 s decode) = 0.889
    r = {"default": two, "cores": 2, "decode": {"cpu_s": 0.25},
         "rounds": {bench.MODEL_OF[two]: [0.9, 1.0, 1.2]}, "model_cpu_s": {bench.MODEL_OF[two]: [2.0, 1.8, 2.4]}}
    assert bench.ratio_ceiling(r) == pytest.approx(2 * 1.0 / 2.25)
    # one model thread with idle time: 2 x 10 s / (15 s + 1 s) > 1, capped at 1
    r = {"default": ahead, "cores": 2, "decode": {"cpu_s": 1.0},
         "rounds": {bench.MODEL_OF[ahead]: [10.0]}, "model_cpu_s": {bench.MODEL_OF[ahead]: [15.0]}}
    assert bench.ratio_ceiling(r) == 1.0
    assert bench.ratio_ceiling({"default": bench.WORKERS}) is None  # beside a GPU: no such bound


def test_one_size_can_be_measured_alone_without_making_the_others_videos(bench, monkeypatch, tmp_path):
    made = []
    monkeypatch.setattr(bench, "demo_videos", lambda folder, count: made.append(("demo", count)) or [])
    monkeypatch.setattr(bench, "realistic_videos", lambda *a: made.append(("realistic",)) or [])
    only_demo = bench.sizes(bench.parse_args(["--size", "demo", "--repeats", "25"]), tmp_path)
    assert [(s["name"], s["repeats"]) for s in only_demo] == [("demo", 25)] and made == [("demo", 60)]
    both = bench.sizes(bench.parse_args([]), tmp_path)
    assert [(s["name"], s["repeats"]) for s in both] == [("demo", 9), ("realistic", 2)]
    assert both[1]["settings"]["backbone"] == "r2plus1d_18"
