"""Typed dataclass configuration: a field's type and metadata declare its check and its CLI flag.

A configuration is a dataclass whose fields are declared with :func:`setting` (or plain defaults):
the annotation gives the type (``int``, ``float``, ``bool``, ``str``, ``tuple``, ``list``, ``| None``
for "may be none"), and the metadata the rest: ``choices`` (a sequence, a dict whose keys are the
choices, or a callable returning either, read when checked so a registry can grow), ``rule``
(``">0"`` or ``">=0"``), ``help`` (the CLI's help and the "give ..." of a missing value),
``none`` (what ``None`` means), ``required`` (must not be empty), ``flag`` (the field has a
CLI flag: ``True`` for ``--field-name``, or its spelling), and ``options_of`` (the field holds an
options dataclass that another field picks, e.g. a pretraining method's: ``(field name,
resolver)``, the resolver giving the options class of that field's value). A ``tuple``/``list``
field's ``choices`` and ``rule`` apply to each of its items.

- :func:`check_config` checks every field (and the fields of a nested dataclass value, e.g. a
  pretraining method's options), raising a one-line :class:`InputError` naming the field, what is
  wrong and what is valid: ``stride_frames: 0 is out of range; valid: an integer >= 1, or none``.
- :func:`parse_overrides` types ``--set NAME=VALUE`` items by their fields (also the fields of
  the options class that an ``options_of`` field resolves to); :func:`config_from_values` builds a
  dataclass from ``{name: value}`` refusing unknown names (JSON, a notebook's parameter).
- :func:`add_config_flags` adds a flag per field declared with ``flag`` (and ``--set``) to an
  argparse parser; :func:`config_from_args` merges defaults, the flags given and ``--set`` items.

Cross-field rules (a crop within the resized frame) stay with the configuration they belong to.
This module imports only :mod:`tsplab.errors` and the standard library, so any package can use it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import numbers
import os
from typing import Any

from tsplab.errors import InputError

RULES = (">0", ">=0", "[0,1]", "[0,1)")  # > 0, >= 0, 0 <= x <= 1, 0 <= x < 1

# What each field type accepts, as error messages say it.
EXPECTED = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "text",
            "tuple": "a list such as [4, 6] or 4,6", "list": "a list such as [a, b]"}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def setting(default: Any = dataclasses.MISSING, *, choices=None, rule: str | None = None, help: str = "",
            none: str = "", required: bool = False, flag: bool | str = False, valid: str = "",
            repeat: bool = False, options_of: tuple | None = None,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with its check and CLI flag declared (see the module docstring). ``valid``
    replaces the derived "what is valid" text of messages; ``repeat``: the flag may be given several
    times (one given: that value, several: their list)."""
    if rule is not None and rule not in RULES:
        raise ValueError(f"rule {rule!r}: valid: {', '.join(RULES)}")
    metadata = dict(choices=choices, rule=rule, help=help, none=none, required=required, flag=flag,
                    valid=valid, repeat=repeat, options_of=options_of)
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


# ------------------------------------------------------------------------------------------ types
def field_kind(field: dataclasses.Field) -> tuple[str, bool]:
    """``(base type name, None allowed)`` from a field's annotation (a string under ``from
    __future__ import annotations``: ``"int"``, ``"str | None"``, ``"tuple[float, ...]"``; or the
    type itself). A union of several types gives the first (``"str | list"``: ``"str"``)."""
    kinds, optional = _field_kinds(field)
    return (kinds[0] if kinds else "any"), optional


def _field_kinds(field: dataclasses.Field) -> tuple[list[str], bool]:
    text = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    parts = [p.strip().split("[")[0].removeprefix("typing.") for p in text.split("|")]
    return [p for p in parts if p != "None"], "None" in parts


def has_type(value, kind: str) -> bool:
    """``value`` is of the field type ``kind`` (an int is a number; a bool is neither; a float must
    be finite; a path is text). Unknown kinds (``Any``, a class) accept anything."""
    if kind not in EXPECTED:
        return True
    if kind == "bool":
        return type(value).__name__ in ("bool", "bool_")
    if type(value).__name__ in ("bool", "bool_"):
        return False  # True is an int to Python, not a count or a rate
    if kind == "int":
        return isinstance(value, numbers.Integral)
    if kind == "float":
        return isinstance(value, numbers.Real) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, (str, os.PathLike))
    return isinstance(value, (tuple, list))


def _choices(meta) -> list | None:
    choices = meta.get("choices")
    if choices is None:
        return None
    choices = choices() if callable(choices) else choices
    return [str(c) for c in choices]


def valid_text(field: dataclasses.Field) -> str:
    """What ``field`` accepts, as messages and help say it: ``an integer >= 1, or none``."""
    meta, (kinds, optional) = field.metadata, _field_kinds(field)
    kind = kinds[0] if kinds else "any"
    choices = _choices(meta)
    if meta.get("valid"):
        text = meta["valid"]
    elif choices is not None:
        text = ", ".join(choices) or "(none available)"
    elif meta.get("rule"):
        text = _rule_text(kind, meta["rule"])
    else:
        text = " or ".join(EXPECTED.get(k, k) for k in kinds) or "anything"
    if kind in ("tuple", "list") and (choices is not None or meta.get("rule")) and not meta.get("valid"):
        text = _rule_text("float", meta["rule"]).replace("a number", "a list of numbers") if choices is None \
            else f"a list of: {text}"
    if optional and not meta.get("valid"):
        text += f", or none ({meta['none']})" if meta.get("none") else ", or none"
    return text


def _rule_text(kind: str, rule: str) -> str:
    if rule.startswith("["):
        return f"a number in {rule.replace(',', ', ')}"
    return {("int", ">0"): "an integer >= 1", ("int", ">=0"): "an integer >= 0",
            ("float", ">0"): "a number > 0"}.get((kind, rule), "a number >= 0")


def _in_rule(value, rule: str) -> bool:
    return {">0": value > 0, ">=0": value >= 0, "[0,1]": 0 <= value <= 1, "[0,1)": 0 <= value < 1}[rule]


# ------------------------------------------------------------------------------------------ checks
def check_field(field: dataclasses.Field, value) -> None:
    """``InputError`` unless ``value`` is valid for ``field`` (type, required, choices, rule)."""
    meta, (kinds, optional) = field.metadata, _field_kinds(field)
    name = field.name
    if meta.get("required") and (value is None or (not isinstance(value, (int, float)) and not value)):
        raise InputError(f"{name}: not given; give {meta.get('help') or valid_text(field)}")
    if value is None and optional:
        return
    choices, rule = _choices(meta), meta.get("rule")
    if kinds and kinds[0] in ("tuple", "list") and isinstance(value, (tuple, list)):
        items, item_kind = value, "float"  # a list's choices and rule apply to each item
    else:
        items, item_kind = [value], None
    if choices is not None and not all(isinstance(v, str) and v in choices for v in items):
        raise InputError(f"{name}: {value!r} is not a valid choice; valid: {valid_text(field)}")
    if kinds and not any(has_type(value, k) for k in kinds) or \
            (rule and item_kind and not all(has_type(v, item_kind) for v in items)):
        raise InputError(f"{name}: {value!r} is not valid ({type(value).__name__}); valid: {valid_text(field)}")
    if rule and not all(_in_rule(v, rule) for v in items):
        raise InputError(f"{name}: {value!r} is out of range; valid: {valid_text(field)}")


def check_config(obj) -> None:
    """Check every field of the dataclass ``obj`` by its declaration (:func:`check_field`), in
    order, and the fields of any dataclass value (a method's options: names are not prefixed).
    The first bad field raises a one-line :class:`InputError`."""
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if field.metadata.get("options_of"):
            check_options_class(obj, field)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_config(value)
        else:
            check_field(field, value)


def options_class(field: dataclasses.Field, key_value):
    """The options class that ``field`` (declared with ``options_of=(key, resolver)``) holds when
    its key field has ``key_value`` (e.g. method ``"tsp"``: ``TSPOptions``)."""
    return field.metadata["options_of"][1](key_value)


def check_options_class(obj, field: dataclasses.Field) -> None:
    """``InputError`` unless ``obj``'s ``field`` holds the options class its key field picks."""
    key = field.metadata["options_of"][0]
    cls, value = options_class(field, getattr(obj, key)), getattr(obj, field.name)
    if not isinstance(value, cls):
        names = ", ".join(f.name for f in dataclasses.fields(cls)) or "none"
        raise InputError(f"{field.name}: {key} {getattr(obj, key)!r} takes {cls.__name__} (fields: {names}), "
                         f"got {type(value).__name__}")


def check_parameter(name: str, value, ok: bool, valid: str) -> None:
    """``InputError`` ``"<name>: <value> is out of range; valid: <valid>"`` unless ``ok`` (for a
    rule that no field declaration says, e.g. between two fields)."""
    if not ok:
        raise InputError(f"{name}: {value!r} is out of range; valid: {valid}")


def is_int(value) -> bool:
    """An integer, numpy's included, but not a bool."""
    return has_type(value, "int")


def is_positive_number(value) -> bool:
    """A finite number > 0 (not a bool)."""
    return has_type(value, "float") and value > 0


# ------------------------------------------------------------------------------------ overrides
def config_fields(*classes) -> dict[str, dataclasses.Field]:
    """The fields of ``classes`` by name (a config class and, e.g., a method's options class),
    leaving out fields that hold a nested dataclass (their own fields are listed instead)."""
    out = {}
    for cls in classes:
        for field in dataclasses.fields(cls):
            if field.name not in out and not dataclasses.is_dataclass(_default(field)) \
                    and not field.metadata.get("options_of"):
                out[field.name] = field
    return out


def parse_overrides(items: list[str], *classes) -> dict:
    """``["epochs=3", "regression_ranges=[[0,4],[4,99]]", "ascl=false", "metric_preset=none"]`` ->
    values of the fields of ``classes`` (a config dataclass, then e.g. a method's options class),
    typed by each field's annotation (:func:`parse_value`). A malformed item or an unknown name
    raises ``InputError`` naming the item and the valid field names. A class's ``options_of``
    field adds the fields of the options class its key picks (the key as an item gives it, e.g.
    ``method=pal``, else the key's default)."""
    options = _options_classes(items, classes)
    fields = config_fields(*classes, *options)
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            what = f"unknown field {key!r}" if sep else "expected NAME=VALUE"
            # the options' fields first: a long message is cut where it is shown
            listed = "".join(f"{cls.__name__} fields: {', '.join(sorted(config_fields(cls))) or 'none'}; "
                             for cls in options)
            rest = sorted(set(fields) - {name for cls in options for name in config_fields(cls)})
            raise InputError(f"--set {item!r}: {what}; {listed}valid fields: {', '.join(rest)}")
        out[key] = parse_value(fields[key], text.strip())
    return out


def _options_classes(items: list[str], classes) -> list:
    """The options classes that the ``options_of`` fields of ``classes`` resolve to."""
    given = {k.strip().replace("-", "_"): v.strip() for k, sep, v in (i.partition("=") for i in items) if sep}
    out = []
    for cls in classes:
        by_name = {f.name: f for f in dataclasses.fields(cls)}
        for field in by_name.values():
            if field.metadata.get("options_of"):
                key = field.metadata["options_of"][0]
                value = parse_value(by_name[key], given[key]) if key in given else _default(by_name[key])
                out.append(options_class(field, value))
    return out


def config_from_values(cls, values: dict, what: str = ""):
    """``cls(**values)`` with lists as tuples where a field is a tuple (JSON and papermill give
    lists); an unknown name raises ``InputError`` naming it and the valid fields. Not checked
    (:func:`check_config` does that)."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise InputError(f"{what or cls.__name__}: unknown field {unknown[0]!r}; valid fields: "
                         f"{', '.join(names) or 'none'}")
    obj = cls(**values)
    lists_to_tuples(obj)
    return obj


def lists_to_tuples(obj) -> None:
    """Turn the list values of ``obj``'s tuple fields into tuples (in place)."""
    for field in dataclasses.fields(obj):
        if field_kind(field)[0] == "tuple" and isinstance(getattr(obj, field.name), list):
            setattr(obj, field.name, tuple(getattr(obj, field.name)))


def parse_value(field: dataclasses.Field, text: str):
    """``text`` as a value of ``field``: whole numbers for ``int``, finite numbers for ``float``,
    ``true/false/1/0/yes/no/on/off`` for ``bool``, text for ``str``, ``none``/``null`` where the
    field may be None, and for ``tuple``/``list`` a JSON list (``[3, 5]``, nested lists become
    tuples for tuple fields) or comma-separated items (``3,5``; empty: ``[]``), numbers when the
    default's items are numbers. ``InputError`` naming the field and what is valid otherwise."""
    kind, optional = field_kind(field)
    if optional and text.lower() in ("none", "null"):
        return None
    try:
        if kind in ("tuple", "list"):
            value = _parse_sequence(text, _default(field))
            return value if kind == "tuple" else list(value)
        return _parse_scalar(text, kind)
    except ValueError:
        raise InputError(f"--set {field.name}={text!r}: expected {EXPECTED.get(kind, kind)}"
                         f"{' or none' if optional else ''} for field {field.name} "
                         f"(default: {json.dumps(plain_value(_default(field)))})") from None


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _parse_scalar(text: str, kind: str):
    """``text`` as a value of ``kind`` (int, float, bool, str); ``ValueError`` when it is not one."""
    if kind == "int":
        return int(text)  # "8" yes; "8.5", "abc", "" no
    if kind == "float":
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    if kind == "bool":
        if text.lower() not in _TRUE + _FALSE:
            raise ValueError(text)
        return text.lower() in _TRUE
    return text


def _parse_sequence(text: str, default) -> tuple:
    """A JSON list or comma-separated items. Items are numbers when the default's are (ints stay
    ints: ``[3, 5]`` -> ``(3, 5)``; nested lists -> nested tuples of numbers), else text."""
    try:
        items = json.loads(text)
        items = items if isinstance(items, list) else [items]
    except json.JSONDecodeError:
        inner = text.strip().removeprefix("[").removesuffix("]")
        items = [s.strip().strip("'\"") for s in inner.split(",")] if inner.strip() else []
    default = list(default or [])
    if default and all(isinstance(d, (tuple, list)) for d in default):
        return tuple(tuple(_number(x) for x in (i if isinstance(i, list) else [i])) for i in items)
    if not (default and all(isinstance(d, numbers.Real) for d in default)):
        return tuple(str(i) for i in items)
    return tuple(_number(i) for i in items)


def _number(item):
    """A JSON number, or a string holding one (int when whole, else float); ``ValueError`` else."""
    if isinstance(item, str):
        try:
            return int(item)
        except ValueError:
            return _parse_scalar(item, "float")
    if isinstance(item, bool) or not isinstance(item, numbers.Real) or not math.isfinite(item):
        raise ValueError(item)
    return item


def plain_value(value):
    """A tuple as the list JSON gives back (to compare a saved config with a new one)."""
    return [plain_value(v) for v in value] if isinstance(value, tuple) else value


# ------------------------------------------------------------------------------------------ CLI
def add_config_flags(parser: argparse.ArgumentParser, cls, *, exclude=(), overrides: bool = True,
                     parser_choices: bool = True) -> None:
    """A flag for every field of ``cls`` declared with ``flag`` (but those in ``exclude``), typed,
    with the field's help, choices and default; ``--set NAME=VALUE`` (``overrides``) for any field.
    A bool field gets ``--name`` when its default is False and ``--no-name`` (or its declared
    spelling) when True. ``parser_choices=False``: a field's choices are listed in its help and
    checked by :func:`check_config` (a one-line error) rather than by argparse. Flags leave their
    field out of ``args`` unless given
    (``argparse.SUPPRESS``), so :func:`config_from_args` tells given values from defaults. A field
    without a default, or declared ``required``, makes its flag required."""
    for field in dataclasses.fields(cls):
        spelling = field.metadata.get("flag")
        if not spelling or field.name in exclude:
            continue
        _add_flag(parser, field, spelling if isinstance(spelling, str) else
                  "--" + field.name.replace("_", "-"), parser_choices)
    if overrides:
        parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                            help=f"set any {cls.__name__} field by name, typed by its declaration "
                                 "(repeatable): numbers, true/false, text, lists as [3,5], none where "
                                 "allowed")


def _add_flag(parser, field: dataclasses.Field, flag: str, parser_choices: bool = True) -> None:
    meta, (kind, optional) = field.metadata, field_kind(field)
    default = _default(field)
    required = meta.get("required") or (field.default is dataclasses.MISSING
                                        and field.default_factory is dataclasses.MISSING)
    text = meta.get("help") or ""
    kwargs: dict = dict(dest=field.name, default=argparse.SUPPRESS)
    if kind == "bool":
        kwargs["action"] = "store_false" if default else "store_true"
        if default and not flag.startswith("--no-"):
            flag = "--no-" + flag.removeprefix("--")
        text = f"switch off: {text}" if default and text else text
    else:
        kwargs.update(required=bool(required), metavar=field.name.upper(),
                      action="append" if meta.get("repeat") else "store")
        choices = _choices(meta)
        if choices is not None and parser_choices:
            kwargs.update(choices=choices, metavar=None)
        elif choices is not None:
            text = f"{text}: one of {', '.join(c for c in choices if c)}"
        if kind in ("int", "float"):
            kwargs["type"] = _flag_type(field, kind, optional)
        shown = meta.get("none") if default is None and meta.get("none") else default
        if not required and "default" not in text and shown not in (None, ""):
            text = f"{text} (default: {shown})".strip()
    parser.add_argument(flag, help=text or None, **kwargs)


def _flag_type(field: dataclasses.Field, kind: str, optional: bool):
    """An argparse ``type`` that reads a number as ``parse_value`` does but leaves range checks to
    ``check_config`` (``--stride 0`` gets the field's message, not argparse's)."""
    def convert(text: str):
        if optional and text.lower() in ("none", "null"):
            return None
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {EXPECTED[kind]}") from None
    convert.__name__ = kind
    return convert


def config_from_args(cls, args: argparse.Namespace, overrides: list[str] | None = None, **values):
    """``cls`` from its defaults, ``values`` (fields the command sets itself), the flags given in
    ``args`` and the ``--set`` items (``overrides``, default ``args.set``), checked by
    :func:`check_config`. A field given both by a flag and by ``--set`` raises ``InputError``."""
    fields = config_fields(cls)
    given = {name: getattr(args, name) for name in fields if hasattr(args, name)}
    for name, value in list(given.items()):
        if fields[name].metadata.get("repeat") and isinstance(value, list) and len(value) == 1:
            given[name] = value[0]  # one value given: that value, not a list of one
    items = getattr(args, "set", []) if overrides is None else overrides
    parsed = parse_overrides(items or [], cls)
    twice = sorted(set(parsed) & set(given))
    if twice:
        raise InputError(f"--set {twice[0]}: also given by its flag; give it once")
    config = cls(**{**values, **given, **parsed})
    check_config(config)
    return config
