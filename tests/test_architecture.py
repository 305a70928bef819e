"""The package's shape, as README's "Layout" describes it: stages from the bottom up, each importing
only stages below it (imports inside functions count too), no import cycle between modules, modules
a reader can hold and functions that fit on a screen."""
import ast
import re
from pathlib import Path

import tsplab

PACKAGE = Path(tsplab.__file__).resolve().parent
README = PACKAGE.parent / "README.md"

#: The stages from the bottom up: a module may import its own stage and the ones before it (``data`` is
#: the shipped annotation tables, no code).
LAYERS = ["errors", "config", "runs", "threads", "data", "video", "benchmark", "datasets", "checkpoints",
          "backbones", "distributed", "features", "evaluation", "localizer", "pretrain", "similarity", "plots",
          "tables", "notebook", "pipeline", "fingerprint", "conditions", "dial_predictions", "study", "cli"]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    """``tsplab.a.b`` -> its file, for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        name = ".".join(("tsplab", *path.relative_to(PACKAGE).with_suffix("").parts))
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path, modules: dict) -> set[str]:
    """The package modules ``path`` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tsplab":
            names |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                      for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "tsplab"}
    return {n for n in names if n in modules}


def _stage(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_every_stage_is_placed_and_imports_only_the_stages_below_it():
    modules = _modules()
    stages = {_stage(m) for m in modules} - {"", "__main__"}
    assert stages == set(LAYERS) - {"data"}, "place the new stage in LAYERS and in README's Layout"
    upward = [(m, t) for m, path in modules.items() if _stage(m) in LAYERS for t in _imports(path, modules)
              if _stage(t) in LAYERS and LAYERS.index(_stage(t)) > LAYERS.index(_stage(m))]
    assert upward == []


def test_no_import_cycle_between_modules():
    modules = _modules()
    graph = {m: _imports(path, modules) - {m} for m, path in modules.items()}
    # a package's __init__ re-exporting its own modules is not a cycle of the code's flow
    graph = {m: {t for t in ts if not m == t.rsplit(".", 1)[0]} for m, ts in graph.items()}
    state, cycles = {}, []

    def visit(m, trail):
        state[m] = "open"
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(trail[trail.index(t):] + [t])
            elif t not in state:
                visit(t, trail + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_modules_and_functions_stay_readable():
    too_long = [(str(p.relative_to(PACKAGE)), n) for p in _modules().values()
                if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert too_long == []
    functions = [(str(p.relative_to(PACKAGE)), node.name, node.end_lineno - node.lineno + 1)
                 for p in _modules().values() for node in ast.walk(ast.parse(p.read_text()))
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert functions == []


def test_readme_lists_the_stages_in_this_order():
    text = README.read_text()
    block = text[text.index("tsplab/            the library"):text.index("notebooks/         numbered")]
    assert re.findall(r"^  ([a-z_]+)(?:/|\.py)", block, re.M) == LAYERS
