"""The annotation readers, by format name: ``@register_reader("name")`` files a reader in
:data:`READERS`, :func:`get_reader` looks one up. A reader takes an
:class:`~tsplab.datasets.source.AnnotationSource` (path, text, subset asked for) and returns
:class:`~tsplab.datasets.model.Annotations`; ``read_annotations(path, format="name")`` runs it.

A reader registered with ``suffixes`` is also chosen for files ending so (``.tsv``) when no format is
given; files of the built-in formats are told apart by their content."""
from __future__ import annotations

from collections.abc import Callable

from tsplab.errors import InputError

READERS: dict[str, Callable] = {}
SUFFIXES: dict[str, str] = {}  # file suffix (lower case, with the dot) -> format name


def register_reader(name: str, *, suffixes: tuple[str, ...] = ()):
    """Decorator filing ``reader`` as format ``name`` (and for files ending in ``suffixes``)."""
    def register(reader: Callable) -> Callable:
        READERS[name] = reader
        for suffix in suffixes:
            SUFFIXES[suffix.lower()] = name
        return reader
    return register


def get_reader(name: str) -> Callable:
    """The reader of format ``name``; ``InputError`` names the format and the valid ones."""
    if name not in READERS:
        raise InputError(f"format: unknown annotation format {name!r}; valid formats: {', '.join(READERS)}")
    return READERS[name]
