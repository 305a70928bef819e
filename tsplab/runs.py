"""Run folders and safe writes.

Every output lives under ``runs/<name>/`` (git-ignored). Writes go to a temporary name in the same
folder and are renamed into place, so a killed run never leaves a half-written file that looks done.
Configurations are plain dataclasses saved as JSON beside the outputs, so a run can be repeated from
its folder alone.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from glob import escape as glob_escape
from pathlib import Path

from tsplab.errors import InputError


def repo_root(start: Path | None = None) -> Path:
    """The checkout's root (the folder holding ``tsplab/`` and ``notebooks/``), found by walking up
    from ``start`` (default: the working directory, which is ``notebooks/`` under Jupyter and nbval).
    Falls back to the working directory for an installed package used elsewhere."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "tsplab").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return Path.cwd().resolve()


def notebooks_dir() -> Path:
    """The checkout's ``notebooks/``: the one above the working directory when there is one, else the
    one beside the installed package (an editable install, as ``make`` makes, knows its checkout), so
    ``tsplab demo`` works from any folder."""
    for root in (repo_root(), Path(__file__).resolve().parent.parent):
        if (root / "notebooks").is_dir():
            return root / "notebooks"
    raise FileNotFoundError(f"no notebooks/ folder above {Path.cwd()} nor beside the tsplab package "
                            f"({Path(__file__).resolve().parent}); run tsplab from its checkout")


# Where relative paths are anchored: ``None`` (the library's default, what the notebooks rely on) is
# the repository root; the command line sets the working directory (``paths_relative_to``).
_ANCHOR: Path | None = None


def resolve(path) -> Path:
    """``path`` as given if absolute, else relative to the anchor: the working directory under the
    command line (``tsplab ...`` sets it with :func:`paths_relative_to`, as every command-line tool
    does), else the repository root, so that notebooks, which run from ``notebooks/``, and Python
    code run from the root agree on ``runs/...`` (the notebooks' explicit anchor)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else path_anchor() / path


def path_anchor() -> Path:
    """The folder :func:`resolve` anchors relative paths at (see there)."""
    return _ANCHOR if _ANCHOR is not None else repo_root()


@contextlib.contextmanager
def paths_relative_to(folder):
    """Within the block, :func:`resolve` anchors relative paths at ``folder`` (made absolute now);
    the previous anchor comes back afterwards. The command line wraps each command in
    ``paths_relative_to(Path.cwd())``."""
    global _ANCHOR
    previous, _ANCHOR = _ANCHOR, Path(folder).resolve()
    try:
        yield _ANCHOR
    finally:
        _ANCHOR = previous


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it.

    Keeps the suffix so that libraries which infer the format from it (PyAV, numpy, h5py) still do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temporaries(path) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left beside ``path`` in runs that were killed
    (``.{stem}.tmp-{pid}{suffix}`` whose process is gone); returns them. A running writer's are kept."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.glob(f".{glob_escape(path.stem)}.tmp-*{glob_escape(path.suffix)}"):
        pid = tmp.name[len(f".{path.stem}.tmp-"):len(tmp.name) - len(path.suffix)]
        if pid.isdigit() and not process_alive(int(pid)) and tmp.is_file():
            tmp.unlink()
            removed.append(tmp)
    return removed


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def atomic_write_text(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


def atomic_write_bytes(path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)


def write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_csv(path, df, **to_csv_kwargs) -> Path:
    """Write the DataFrame ``df`` to ``path`` atomically (see :func:`atomic_path`); ``to_csv_kwargs``
    go to ``DataFrame.to_csv``, with ``index=False`` unless given. Returns ``path``."""
    to_csv_kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **to_csv_kwargs)
    return Path(path)


def read_json(path, object_pairs_hook=None):
    """The JSON document in ``path``; ``InputError`` naming the file when it is not text or not JSON
    (``object_pairs_hook``: as ``json.loads``'s)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(), object_pairs_hook=object_pairs_hook)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        what = "empty file" if not exc.doc.strip() else f"not valid JSON ({exc})"
        raise InputError(f"{path}: {what}; expected a JSON document") from exc


def save_config(config, folder, name: str = "config.json") -> Path:
    """Save a dataclass config (nested dataclasses and paths included) as JSON in ``folder``."""
    return write_json(Path(folder) / name, dataclasses.asdict(config))


def _json_default(obj):
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


# --------------------------------------------------------------------------------------------
# Output paths, checked before anything is written (the one place every command uses)


def check_output_file(path, param: str, inputs: dict | None = None, overwrite: bool = False) -> Path:
    """``path`` resolved, after checking that a file can be written there without harm: it is not
    one of ``inputs`` (``{what: path}``, compared as resolved paths, so ``./a.csv`` and ``a.csv``
    are one file), not a folder, not an existing file unless ``overwrite`` (the command's
    ``--overwrite``: no command replaces a file it did not make), and its folder exists or can be made
    writable. Raises ``InputError`` naming ``param`` otherwise; writes nothing."""
    path = resolve(path)
    _check_not_an_input(path, param, inputs)
    if path.is_dir():
        raise InputError(f"{param}: {path} is a folder; give the path of the file to write")
    remove_stale_temporaries(path)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise InputError(f"{param}: {path} already exists; give a new file, or --overwrite to replace it")
    _check_writable(_nearest_existing(path.parent), path, param)
    return path


def check_output_folder(path, param: str, inputs: dict | None = None) -> Path:
    """``path`` resolved, after checking it can be an output folder: not one of ``inputs``, not an
    existing file, and somewhere a folder can be made. Raises ``InputError`` naming ``param``."""
    path = resolve(path)
    _check_not_an_input(path, param, inputs)
    if path.exists() and not path.is_dir():
        raise InputError(f"{param}: {path} is a file; give a folder (new or existing) for the output")
    _check_writable(path if path.is_dir() else _nearest_existing(path), path, param)
    return path


def _check_not_an_input(path: Path, param: str, inputs: dict | None) -> None:
    for what, input_path in (inputs or {}).items():
        if input_path is not None and path.resolve() == resolve(input_path).resolve():
            raise InputError(f"{param}: {path} is also {what}; an output must not overwrite an input, "
                             "give another path")


def _nearest_existing(path: Path) -> Path:
    for folder in (path, *path.parents):
        if folder.exists():
            return folder
    return Path(path.anchor)


def _check_writable(folder: Path, path: Path, param: str) -> None:
    import tempfile

    if not folder.is_dir():
        raise InputError(f"{param}: cannot create {path}: {folder} is a file, not a folder")
    try:  # os.access says yes to root everywhere; creating something is the real test
        tempfile.TemporaryDirectory(dir=folder, prefix=".tsplab-write-check-").cleanup()
    except OSError as exc:
        raise InputError(f"{param}: cannot write {path}: {folder} is not writable ({exc.strerror}); "
                         f"give an output path in a writable folder") from exc


# --------------------------------------------------------------------------------------------
# Replacing a run folder: the earlier run's files are kept until the new run has a result


class PreviousRun:
    """An earlier run's files in a run folder, kept until a fresh run there has replaced them.

    Design: once every input is checked, a fresh run moves the earlier run's files (those matching
    ``results``, the run's results, and ``others``, its other files) into ``<run folder>/previous/``,
    one atomic ``os.replace`` each, before writing anything of its own. While it runs the folder holds
    no results at all, so nothing that reads it can take the earlier run's results for this run's.
    When this run has written its first result, ``previous/`` is deleted (``drop``). If it fails
    before that (an exception, a full disk or Ctrl-C), its own files are removed and the earlier ones
    moved back (``restore``): the folder is never left mixed. A run killed before its first result
    leaves them in ``previous/``: the next fresh run keeps them there (the files beside them then
    belong to the killed attempt, not to a finished run) and deletes them only after its own first
    result. ``first_result`` and ``instead`` word the printed information (``tsplab.pretrain`` and
    ``tsplab.localizer`` use it; only one process calls these methods)."""

    FOLDER = "previous"

    def __init__(self, out_dir, results, others, first_result: str = "first result", instead: str = ""):
        self.out_dir = Path(out_dir)
        self.folder = self.out_dir / self.FOLDER
        self.results, self.others = tuple(results), tuple(others)
        self.first_result, self.instead = first_result, instead
        self.active = False  # True while previous/ holds files that restore() would bring back
        self.kept: set[str] = set()  # run files left in place (reused by this run)

    def files(self, patterns) -> list[Path]:
        return sorted({p for pattern in patterns for p in self.out_dir.glob(pattern) if p.is_file()})

    def set_aside(self, reusable=None) -> None:
        """Move the earlier run's files to ``previous/``; ``reusable(path)`` True keeps one of the
        ``others`` in place (a file this run would make alike)."""
        results = self.files(self.results)
        moved = results + [p for p in self.files(self.others) if not (reusable and reusable(p))]
        if results and self.folder.is_dir():
            # previous/ holds an older generation whose replacement reached its first result (and was
            # killed before deleting it): the folder's own results are the ones to keep.
            shutil.rmtree(self.folder)
        if self.folder.is_dir():
            for path in moved:  # a killed attempt's files, not a finished run's
                path.unlink()
            moved = []
            # Information, not a warning: nothing to act on (printed, so a notebook shows no red box).
            print(f"tsplab: {self.out_dir}: the earlier run's files stay in {self.folder} until this run "
                  f"writes its {self.first_result}", flush=True)
        elif moved:
            self.folder.mkdir()
            for path in moved:
                os.replace(path, self.folder / path.name)
            print(f"tsplab: {self.out_dir}: a fresh run replaces the earlier run's "
                  f"{', '.join(p.name for p in moved)}: moved to {self.folder}, deleted once this run "
                  f"writes its {self.first_result}, moved back if it fails before{self.instead}", flush=True)
        self.active = self.folder.is_dir()
        self.kept = {p.name for p in self.files(self.results + self.others)}

    def drop(self) -> None:
        """This run has written its first result: the earlier run's files go."""
        if self.active:
            shutil.rmtree(self.folder)
            self.active = False

    def restore(self) -> None:
        """This run failed before its first result: remove its files, bring the earlier ones back."""
        if not self.active:
            return
        for path in self.files(self.results + self.others):
            if path.name not in self.kept:
                path.unlink()
        for path in self.folder.iterdir():
            os.replace(path, self.out_dir / path.name)
        self.folder.rmdir()
        self.active = False
