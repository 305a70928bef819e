"""benchmarks/bench_extract.py: the ratio it reports, pinned to hand-computed values; the rounds'
rotated order; the demo size's videos."""
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


def test_ratio_is_the_median_of_paired_rounds_on_the_default_path(bench):
    rounds = {"model": [4.0, 5.0, 6.0], "e2e": [5.0, 5.0, 12.0], "inline": [8.0, 4.0, 7.5]}
    inline = {"rounds": rounds, "default": "inline"}
    # model / inline per round: 0.5, 1.25, 0.8 -> median 0.8 (min(model) / min(inline) would say 1.0)
    assert bench.paired_ratios(inline) == pytest.approx([0.5, 1.25, 0.8])
    assert bench.median_ratio(inline) == pytest.approx(0.8)
    ahead = {"rounds": rounds, "default": "decode-ahead"}  # model / e2e: 0.8, 1.0, 0.5
    assert bench.paired_ratios(ahead) == pytest.approx([0.8, 1.0, 0.5])
    assert bench.median_ratio(ahead) == pytest.approx(0.8)


def test_rounds_rotate_the_order_and_pair_each_kind_once_per_round(bench, monkeypatch):
    order = []

    def fake_end_to_end(size, args, device, work, decode_ahead):
        order.append("e2e" if decode_ahead else "inline")
        return float(len(order)), 7

    def model():
        order.append("model")
        return float(len(order))

    monkeypatch.setattr(bench, "end_to_end", fake_end_to_end)
    args = bench.parse_args([])
    rounds = bench.timed_rounds({"name": "x"}, args, bench.torch.device("cpu"), Path("."), model, 4, 7)
    assert order == ["e2e", "model", "inline", "model", "inline", "e2e", "inline", "e2e", "model",
                     "e2e", "model", "inline"]
    # each kind's seconds are the positions at which it ran (the fakes return the call count)
    assert rounds == {"e2e": [1.0, 6.0, 8.0, 10.0], "model": [2.0, 4.0, 9.0, 11.0], "inline": [3.0, 5.0, 7.0, 12.0]}
    args.workers = 2  # worker processes: no inline path
    order.clear()
    rounds = bench.timed_rounds({"name": "x"}, args, bench.torch.device("cpu"), Path("."), model, 2, 7)
    assert order == ["e2e", "model", "model", "e2e"] and set(rounds) == {"e2e", "model"}


def test_rounds_refuse_an_end_to_end_run_that_lost_clips(bench, monkeypatch):
    monkeypatch.setattr(bench, "end_to_end", lambda *a, **k: (1.0, 6))
    with pytest.raises(AssertionError, match="'x', 6, 7"):
        bench.timed_rounds({"name": "x"}, bench.parse_args([]), bench.torch.device("cpu"), Path("."),
                           lambda: 1.0, 1, 7)


def test_demo_videos_are_the_first_ones_of_the_preset_and_only_those(bench, tmp_path):
    (tmp_path / "zzz_extra.mp4").write_bytes(b"a larger run's video")  # the folder may hold more
    videos = bench.demo_videos(tmp_path, 2)
    from tsplab.synthetic import PRESETS, plan_benchmark
    first = sorted(p.video for p in plan_benchmark(PRESETS["default"], 0))[:2]
    assert [v for v, _ in videos] == first
    assert all(path.is_file() and path.parent == tmp_path for _, path in videos)
    stamps = [path.stat().st_mtime_ns for _, path in videos]
    assert bench.demo_videos(tmp_path, 2) == videos  # made once, then reused
    assert [path.stat().st_mtime_ns for _, path in videos] == stamps
