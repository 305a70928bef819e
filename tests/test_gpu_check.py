"""benchmarks/gpu_check.sh on a machine without a CUDA device: it stops at once with one line."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_without_cuda_fails_fast_with_one_line(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    t0 = time.perf_counter()
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--out", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: error: no CUDA device visible"), done.stderr
    assert "NVIDIA GPU" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing generated before the check
    assert time.perf_counter() - t0 < 60  # at once: before any data is made


def test_gpu_check_cpu_smoke_prints_every_row(tmp_path):
    """The script's own toy sizes on the CPU: every stage runs and the table has a number in each
    measured row (a change to bench_extract's pieces that gpu_check uses shows up here, not on the
    first GPU it meets)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--cpu-smoke",
                           "--out", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("tsplab GPU check:"))
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in lines[header + 1:])
    assert float(rows["end-to-end / model-only"]) > 0
    assert rows["DDP, 2 x NCCL"] == "skipped (--cpu-smoke)"
    for label in ("steps/s (all, last epoch)", "data-wait share", "end-to-end", "model only",
                  "decode only, PyAV, 1 process"):
        assert any(ch.isdigit() for ch in rows[label]), (label, rows[label])
