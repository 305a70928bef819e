"""tsplab.config: a field's declaration is its check, its --set parser and its CLI flag."""
from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from tsplab.config import (add_config_flags, check_config, config_from_args, config_from_values, parse_overrides,
                           plain_value, setting)
from tsplab.errors import InputError


@dataclasses.dataclass
class Opts:
    alpha: float = 0.5


@dataclasses.dataclass
class Toy:
    name: str = setting(flag=True, help="a name")
    epochs: int = setting(3, rule=">0", flag=True, help="passes")
    rate: float = setting(0.1, rule=">=0", flag="--lr")
    cap: int | None = setting(None, rule=">0", none="no cap", flag=True)
    mode: str = setting("a", choices=("a", "b"), flag=True)
    fast: bool = setting(False, flag=True, help="go fast")
    careful: bool = setting(True, flag="--no-care", help="care")
    sizes: tuple = (3, 5)
    ranges: tuple = ((0, 4), (4, 8))
    tags: tuple = ()
    folders: str | list = setting("", required=True, flag="--folder", repeat=True, help="a folder, repeatable")
    options: Opts = dataclasses.field(default_factory=Opts)


@pytest.mark.parametrize("change,message", [
    (dict(epochs=0), "epochs: 0 is out of range; valid: an integer >= 1"),
    (dict(epochs=2.5), "epochs: 2.5 is not valid (float); valid: an integer >= 1"),
    (dict(epochs=True), "epochs: True is not valid (bool); valid: an integer >= 1"),
    (dict(rate=-1.0), "rate: -1.0 is out of range; valid: a number >= 0"),
    (dict(rate=float("nan")), "rate: nan is not valid (float); valid: a number >= 0"),
    (dict(cap=0), "cap: 0 is out of range; valid: an integer >= 1, or none (no cap)"),
    (dict(mode="c"), "mode: 'c' is not a valid choice; valid: a, b"),
    (dict(fast="yes"), "fast: 'yes' is not valid (str); valid: true or false"),
    (dict(folders=""), "folders: not given; give a folder, repeatable"),
    (dict(options=Opts(alpha="x")), "alpha: 'x' is not valid (str); valid: a number"),
])
def test_check_config_names_the_field_and_what_is_valid(change, message):
    good = Toy(name="x", folders="f")
    check_config(good)
    with pytest.raises(InputError) as info:
        check_config(dataclasses.replace(good, **change))
    assert str(info.value) == message


def test_parse_overrides_types_values_by_their_field():
    values = parse_overrides(["epochs=4", "rate=1e-3", "cap=none", "fast=true", "careful=off", "sizes=[2, 7]",
                              "ranges=[[0,2],[2,9.5]]", "tags=a,b", "name=x y", "alpha=0.25"], Toy, Opts)
    assert values == dict(epochs=4, rate=1e-3, cap=None, fast=True, careful=False, sizes=(2, 7),
                          ranges=((0, 2), (2, 9.5)), tags=("a", "b"), name="x y", alpha=0.25)
    assert parse_overrides(["sizes=", "sizes=4,6"], Toy)["sizes"] == (4, 6)
    for item, message in (("epochs=2.5", "expected a whole number for field epochs (default: 3)"),
                          ("fast=maybe", "expected true or false"), ("rate=inf", "expected a number"),
                          ("epoch=3", "unknown field 'epoch'; valid fields: cap, careful, epochs, fast, folders, mode, name, ranges, rate, sizes, tags"),
                          ("epochs", "expected NAME=VALUE")):
        with pytest.raises(InputError, match=re.escape(message)):
            parse_overrides([item], Toy)
    assert plain_value(((0, 4), (4, 8))) == [[0, 4], [4, 8]]


def _parse(argv):
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_config_flags(parser, Toy)
    return config_from_args(Toy, parser.parse_args(argv))


def test_flags_are_generated_from_the_fields_and_merged_with_set():
    config = _parse(["--name", "n", "--folder", "f"])
    assert config == Toy(name="n", folders="f")  # the defaults where no flag is given
    config = _parse(["--name", "n", "--folder", "f", "--folder", "g", "--epochs", "7", "--lr", "0",
                     "--cap", "none", "--mode", "b", "--fast", "--no-care", "--set", "sizes=[1]"])
    assert config == Toy(name="n", folders=["f", "g"], epochs=7, rate=0.0, cap=None, mode="b", fast=True,
                         careful=False, sizes=(1,))
    with pytest.raises(InputError, match="--set epochs: also given by its flag"):
        _parse(["--name", "n", "--folder", "f", "--epochs", "2", "--set", "epochs=3"])
    with pytest.raises(InputError, match="^epochs: 0 is out of range"):  # the field's check, not argparse's
        _parse(["--name", "n", "--folder", "f", "--epochs", "0"])
    with pytest.raises(SystemExit):
        _parse(["--folder", "f"])  # a field without a default: its flag is required


@dataclasses.dataclass
class Fast:
    speed: float = setting(0.5, rule="[0,1)")


@dataclasses.dataclass
class Slow:
    kinds: tuple = setting(("a",), choices=("a", "b"), required=True)
    weights: tuple = setting((0.5,), rule="[0,1]")


@dataclasses.dataclass
class Runner:
    """A config whose ``options`` field holds the class its ``style`` picks (a method's options)."""

    style: str = setting("fast", choices=("fast", "slow"))
    options: object = setting(None, options_of=("style", {"fast": Fast, "slow": Slow}.get))


def test_list_items_ranges_and_options_picked_by_another_field():
    check_config(Runner(options=Fast()))
    check_config(Runner("slow", Slow(kinds=("b", "a"), weights=(0, 1))))
    for config, message in (
            (Runner(options=Fast(speed=1.0)), "speed: 1.0 is out of range; valid: a number in [0, 1)"),
            (Runner(options=Slow()), "options: style 'fast' takes Fast (fields: speed), got Slow"),
            (Runner("slow", Slow(kinds=("a", "c"))), "kinds: ('a', 'c') is not a valid choice; valid: a list of: a, b"),
            (Runner("slow", Slow(kinds=())), "kinds: not given"),
            (Runner("slow", Slow(weights=(0.5, "x"))), "weights: (0.5, 'x') is not valid (tuple)"),
            (Runner("slow", Slow(weights=(2,))), "weights: (2,) is out of range; valid: a list of numbers in [0, 1]")):
        with pytest.raises(InputError) as info:
            check_config(config)
        assert str(info.value).startswith(message), str(info.value)
    # --set reaches the fields of the options class that the given (or default) key picks
    assert parse_overrides(["speed=0.5"], Runner) == {"speed": 0.5}
    assert parse_overrides(["style=slow", "weights=0.1,0.2"], Runner) == {"style": "slow", "weights": (0.1, 0.2)}
    with pytest.raises(InputError, match=re.escape("unknown field 'speed'; Slow fields: kinds, weights; "
                                                   "valid fields: style")):
        parse_overrides(["style=slow", "speed=0.5"], Runner)
    assert config_from_values(Slow, {"kinds": ["b"]}) == Slow(kinds=("b",))
    with pytest.raises(InputError, match=re.escape("slow options: unknown field 'kind'; valid fields: kinds, weights")):
        config_from_values(Slow, {"kind": ["b"]}, "slow options")
