"""Batch work over videos: one job per video in a process pool, with a progress bar; a worker that
dies fails its job, not the batch."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed

from tqdm.auto import tqdm


def run_jobs(func, jobs, workers: int, desc: str, on_crash):
    """Yield ``(key, func(*args))`` for ``jobs = [(key, *args)]``, in a process pool of ``workers``
    (in this process when ``workers <= 1``), with a progress bar. When a worker process dies, the
    job's result is ``on_crash(message)``."""
    progress = tqdm(total=len(jobs), desc=desc, unit="video")
    try:
        if workers <= 1 or len(jobs) <= 1:
            for key, *args in jobs:
                yield key, func(*args)
                progress.update()
            return
        # spawn, not fork: the parent may hold torch/OpenMP threads that a forked child would inherit
        # in a locked state.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(func, *args): key for key, *args in jobs}
            for future in as_completed(futures):
                try:
                    result = future.result()
                except Exception as exc:  # the worker process itself died (memory, signal)
                    result = on_crash(f"worker process failed: {type(exc).__name__}: {exc}")
                yield futures[future], result
                progress.update()
    finally:
        progress.close()
