"""Shared fixtures. Real annotation files live in ``../shared/data`` beside the checkout; tests that
need them skip with the reason when that folder is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TSPLAB_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real annotation files not found at {SHARED_DATA} (set TSPLAB_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory) -> Path:
    """A generated ``tiny`` synthetic benchmark (seed 0): ``videos/*.mp4``, ``annotations.json``,
    ``action_label_mapping.json``, ``benchmark.json``. Made once per test session (seconds); treat it
    as read-only (copy it to change it)."""
    from tsplab.synthetic import generate_benchmark

    return generate_benchmark(tmp_path_factory.mktemp("synthetic") / "tiny", "tiny", seed=0,
                              workers=1, progress=False)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny convolutions on one torch thread: on a shared 2-core machine two OpenMP
    threads are far slower than one as soon as another process wants a core (see
    ``tsplab.train.PRESETS``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
