"""The library functions that hold what used to be notebook-only logic (issue 11): the parameter
check every notebook runs first, the benchmark-generation rule of 03/04, the encoder choice of 04,
the per-method configs and their short table of 03, the pretend detectors of 06, the feature-folder
check of 05/07, and the video tables of 02. Each one here can fail: values are hand-computed or
follow from the rule the docstring states."""
from __future__ import annotations

import pytest

from tsplab.errors import InputError


# --- tsplab.benchmark.ensure_benchmark ------------------------------------------------------------

@pytest.fixture
def generate_calls(monkeypatch):
    """Records the calls ensure_benchmark makes to generate_benchmark (nothing is generated)."""
    from tsplab.benchmark import generate

    calls = []
    monkeypatch.setattr(generate, "generate_benchmark", lambda *args, **kwargs: calls.append((args, kwargs)))
    return calls


def test_ensure_benchmark_generates_into_an_empty_folder(generate_calls, tmp_path):
    from tsplab.benchmark import ensure_benchmark

    assert ensure_benchmark(tmp_path / "bench", "default", seed=3, workers=1) == tmp_path / "bench"
    assert generate_calls == [((tmp_path / "bench", "default", 3), {"workers": 1})]


def test_ensure_benchmark_resumes_a_synthetic_benchmark_but_never_writes_into_another_dataset(
        generate_calls, tmp_path):
    from tsplab.benchmark import ensure_benchmark

    other = tmp_path / "activitynet"
    other.mkdir()
    (other / "annotations.json").write_text("{}")
    ensure_benchmark(other, "tiny")
    assert generate_calls == []  # annotations.json without benchmark.json: left alone

    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "annotations.json").write_text("{}")
    (bench / "benchmark.json").write_text("{}")
    ensure_benchmark(bench, "tiny")
    assert generate_calls == [((bench, "tiny", 0), {})]  # generate_benchmark decides: done, resume, refuse


def test_ensure_benchmark_refuses_a_benchmark_of_another_size(tiny_benchmark):
    from tsplab.benchmark import ensure_benchmark

    before = (tiny_benchmark / "benchmark.json").read_bytes()
    with pytest.raises(InputError, match="another config or seed"):
        ensure_benchmark(tiny_benchmark, "default")
    assert (tiny_benchmark / "benchmark.json").read_bytes() == before
    assert ensure_benchmark(tiny_benchmark, "tiny", workers=1, progress=False) == tiny_benchmark  # complete: as is
    assert (tiny_benchmark / "benchmark.json").read_bytes() == before
