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
