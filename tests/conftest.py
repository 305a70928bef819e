"""Shared fixtures. The real annotation files (TSP's ActivityNet v1.3 and THUMOS14 tables) ship inside the
package, in ``tsplab/data`` (sources in its README), so the tests never read outside the checkout."""
from __future__ import annotations

from pathlib import Path

import pytest

from tsplab.datasets.presets import DATA_DIR


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
    from tsplab.benchmark import generate_benchmark

    return generate_benchmark(tmp_path_factory.mktemp("synthetic") / "tiny", "tiny", seed=0,
                              workers=1, progress=False)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny convolutions on one torch thread: on a shared 2-core machine two OpenMP
    threads are far slower than one as soon as another process wants a core (see
    ``tsplab.pretrain.recipes.RECIPES``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def snapshot(folder) -> dict:
    """Every file under ``folder`` (or the one file ``folder``) as ``{relative path: (bytes,
    mtime_ns)}``: two equal snapshots mean nothing was written, replaced, added or removed there."""
    folder = Path(folder)
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)) if p != folder else p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in files}


@pytest.fixture
def unchanged():
    """``with unchanged(folder, ...):`` asserts the block left every file there as it was (bytes and
    modification time), added none and removed none."""
    import contextlib

    @contextlib.contextmanager
    def check(*folders):
        before = [snapshot(f) for f in folders]
        yield
        for folder, old in zip(folders, before):
            new = snapshot(folder)
            assert new.keys() == old.keys(), f"{folder}: files added/removed: {set(new) ^ set(old)}"
            changed = [name for name in old if old[name] != new[name]]
            assert not changed, f"{folder}: files changed: {changed}"

    return check
