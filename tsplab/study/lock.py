"""One study at a time per folder: ``OUT/study.lock`` holds the running study's pid, so a second study
into the same folder stops with one line instead of running the same cells twice."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tsplab.errors import InputError
from tsplab.runs import process_alive

LOCK_FILE = "study.lock"


@contextlib.contextmanager
def study_lock(out: Path):
    """Hold ``OUT/study.lock`` (the owner's pid) while a study runs into ``out``: a second study into
    the same folder stops with one line instead of running the same cells. A lock whose process is
    gone (killed) is taken over."""
    lock = out / LOCK_FILE
    out.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is not None and process_alive(owner):
                raise InputError(f"out: {out} is in use by another study (process {owner}, {lock}); wait for "
                                 "it to finish, or give another --out") from None
            lock.unlink(missing_ok=True)  # its owner is gone: a killed study
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        break
    else:
        raise InputError(f"out: cannot take {lock}; another study is starting into {out}")
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def _lock_owner(lock: Path) -> int | None:
    try:
        return int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
