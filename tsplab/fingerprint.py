"""Which code and which libraries made a result: a fingerprint of the code, the library versions.

Why: a table that mixes results of two code versions compares two different programs, and a git
commit does not say it (an editable install runs whatever is on disk, committed or not). The
fingerprint hashes what actually runs, the ``tsplab`` package's Python sources and the notebooks'
code, so a README edit or a re-executed notebook's outputs leave it unchanged while any change to a
line that runs changes it. Study cells record it (``tsplab.study``); any run folder may record it too.

What is hashed, and why not more: ``tsplab/**/*.py`` byte for byte, and each ``notebooks/*.ipynb`` as
its cells' type, source and tags (the ``parameters`` tag decides what papermill overrides), without
outputs, execution counts or other metadata, which change each time a notebook runs. The annotation
tables shipped in ``tsplab/data`` are data read by the real-dataset commands, not code; the synthetic
benchmark does not read them, and a study's benchmark is identified by its own folder and seed.
"""
from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

from tsplab.runs import notebooks_dir


def package_dir() -> Path:
    """The folder of the ``tsplab`` package that is running (not necessarily the working directory's)."""
    return Path(__file__).resolve().parent


def fingerprint_files(package: Path | None = None, notebooks: Path | None = None) -> list[tuple[str, Path]]:
    """``(name, path)`` of every file the fingerprint hashes, sorted by name: ``tsplab/<relative
    path>`` for the package's ``*.py``, ``notebooks/<file>`` for the notebooks (default: those
    ``tsplab.runs.notebooks_dir`` finds)."""
    package = Path(package or package_dir())
    notebooks = Path(notebooks or notebooks_dir())
    files = [(f"tsplab/{p.relative_to(package).as_posix()}", p) for p in package.rglob("*.py")
             if "__pycache__" not in p.parts]
    files += [(f"notebooks/{p.name}", p) for p in notebooks.glob("*.ipynb")]
    return sorted(files)


def notebook_code(path: Path) -> bytes:
    """A notebook's code as bytes: each cell's type, source and tags, in order (outputs, execution
    counts and metadata left out, so that executing the notebook does not change it)."""
    notebook = json.loads(Path(path).read_text())
    cells = [dict(type=c.get("cell_type"), source="".join(c.get("source", "")),
                  tags=list(c.get("metadata", {}).get("tags", []))) for c in notebook.get("cells", [])]
    return json.dumps(cells, sort_keys=True).encode()


def code_fingerprint(package: Path | None = None, notebooks: Path | None = None) -> str:
    """sha256 (hex) over the sorted names and contents of ``fingerprint_files``: each file as its
    name, a NUL byte, its length and its bytes (a notebook's: ``notebook_code``), so that moving
    code between files or renaming one changes the fingerprint too."""
    digest = hashlib.sha256()
    for name, path in fingerprint_files(package, notebooks):
        data = notebook_code(path) if name.endswith(".ipynb") else path.read_bytes()
        digest.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return digest.hexdigest()


def library_versions() -> dict:
    """The versions that decide a run's numbers besides tsplab's code: Python, torch, numpy."""
    import numpy
    import torch

    return dict(python=platform.python_version(), torch=torch.__version__, numpy=numpy.__version__)
