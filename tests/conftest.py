"""Shared fixtures. The real annotation files (TSP's ActivityNet v1.3 and THUMOS14 tables) ship inside the
package, in ``tsplab/data`` (sources in its README), so the tests never read outside the checkout."""
from __future__ import annotations

from pathlib import Path

import pytest

from tsplab.presets import DATA_DIR


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of the shipped real annotation files (``activitynet/``, ``thumos14/``)."""
    assert DATA_DIR.is_dir(), f"{DATA_DIR}: the shipped annotation files are missing from the checkout"
    return DATA_DIR


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
