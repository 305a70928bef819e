#!/usr/bin/env bash
# tsplab's GPU check, one table, under 5 minutes on one GPU (see benchmarks/gpu_check.py):
# AMP pretraining steps of TSP with R(2+1)D-34, extraction end-to-end vs model-only with 8 decoding
# workers (torchcodec's CUDA decoding too when it is installed), a 2-process NCCL DDP smoke run when
# two GPUs are visible. Without a CUDA device it stops at once with one line (exit code 2).
#
#   bash benchmarks/gpu_check.sh [--out DIR]      # PYTHON=... picks the interpreter
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python="$(command -v python3)"; fi
fi
cd "$root"
# tsplab from this checkout, also where it is not installed (the torchrun children inherit this).
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" benchmarks/gpu_check.py "$@"
