"""Torch's process-wide CPU thread count, set for a block and restored after it (the localizer's
training and inference run with their configured ``num_threads`` without changing the caller's)."""
from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def torch_threads(num_threads: int | None):
    """Run with ``num_threads`` torch CPU threads (``None``: as set), restored afterwards."""
    before = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
