"""The one error type for bad user input.

Anything a user can get wrong (a file, a row of it, a parameter) raises :class:`InputError` with a
message that names the culprit and says what would be valid: ``"runs/x/gt.csv: line 7: t_end is
empty; give the end time in seconds"``. The ``tsplab`` command prints such an error as one line,
``tsplab <command>: error: <message>``, and exits with status 2; every other exception is a bug and
keeps its traceback. It subclasses ``ValueError`` so callers that catch ``ValueError`` still do.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a file, row, field or parameter, named in the message with what is valid."""


def one_line(message: str, limit: int = 600) -> str:
    """``message`` on one line (newlines become ``; ``), cut at ``limit`` characters."""
    text = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def check_choice(parameter: str, value, valid, *, several: bool = False) -> None:
    """``InputError`` unless ``value`` is one of ``valid`` (a sequence, or a dict: its keys).

    ``several``: ``value`` may also be a list/tuple of choices (at least one; each must be valid),
    as notebook parameters like ``method = ["tac", "tsp"]`` are. The message is one line naming the
    parameter, the bad value and every valid choice: ``method: 'tps' is not a valid choice; valid:
    tac, tsp, bsp, pal``. Notebooks call it right after their parameters cell, so a typo stops the
    run before anything is computed or written."""
    choices = [str(c) for c in valid]
    values = list(value) if several and isinstance(value, (list, tuple)) else [value]
    if several and not values:
        raise InputError(f"{parameter}: no value given; give one or more of: "
                         f"{', '.join(choices) or '(none available)'}")
    for item in values:
        if not isinstance(item, str) or item not in choices:
            raise InputError(f"{parameter}: {item!r} is not a valid choice; valid: "
                             f"{', '.join(choices) or '(none available)'}")


# The comment papermill writes as the first line of the cell it injects after a notebook's
# ``parameters`` cell (one assignment per ``-p NAME VALUE``).
PAPERMILL_HEADER = "# Parameters"


def check_parameter_names(namespace: dict) -> None:
    """``InputError`` when papermill was given a parameter the notebook's parameters cell does not
    declare (``papermill ... -p epoch 7`` for ``epochs``): papermill would inject ``epoch = 7`` and
    the notebook would run on its defaults. Notebooks call it with ``globals()`` at the end of their
    parameter-check cell. The names come from the kernel's input history (``In``): those assigned
    in the injected cell (first line exactly ``# Parameters``) against those assigned in the cells
    run before it; without an injected cell (JupyterLab, nbval) there is nothing to check."""
    import ast

    history = [str(cell) for cell in namespace.get("In", [])[:-1]]  # the last is this cell
    declared, injected = set(), set()
    for source in history:
        names = _assigned_names(ast, source)
        is_injected = source.lstrip().splitlines()[:1] == [PAPERMILL_HEADER]
        (injected if is_injected else declared).update(names)
    unknown = sorted(injected - declared)
    if unknown:
        raise InputError(f"unknown parameter(s) {', '.join(unknown)}: the notebook's parameters cell does not "
                         f"declare them; valid: {', '.join(sorted(declared)) or '(none)'}")


def _assigned_names(ast, source: str) -> set[str]:
    """The names a cell assigns at top level (``x = ...``, ``x: int = ...``); none when the source is
    not Python (an IPython magic)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names
