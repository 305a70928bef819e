"""benchmarks/gpu_check.sh on a machine without a CUDA device: it stops at once with one line."""
from __future__ import annotations

import os
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
