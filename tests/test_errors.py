"""tsplab.errors: the one error type for bad input and the parameter check every notebook runs
first."""
from __future__ import annotations

import pytest

from tsplab.errors import InputError, check_choice


# --- tsplab.errors.check_choice -------------------------------------------------------------------

def test_check_choice_accepts_valid_values_and_lists():
    check_choice("method", "tsp", ["tac", "tsp"])
    check_choice("method", ["tac", "tsp"], {"tac": 1, "tsp": 2}, several=True)  # a dict: its keys
    check_choice("method", ("tsp",), ["tac", "tsp"], several=True)


@pytest.mark.parametrize("value, several, expected", [
    ("tps", False, "method: 'tps' is not a valid choice; valid: tac, tsp"),
    (["tac", "tps"], True, "method: 'tps' is not a valid choice; valid: tac, tsp"),
    ([], True, "method: no value given; give one or more of: tac, tsp"),
    (["tac"], False, "method: ['tac'] is not a valid choice; valid: tac, tsp"),  # a list where one name is due
    (None, False, "method: None is not a valid choice; valid: tac, tsp"),
])
def test_check_choice_names_the_parameter_the_value_and_every_choice(value, several, expected):
    with pytest.raises(InputError) as error:
        check_choice("method", value, ["tac", "tsp"], several=several)
    assert str(error.value) == expected
    assert "\n" not in str(error.value)


def _history(*cells):
    return {"In": ["", *cells, "check_parameter_names(globals())"]}


def test_check_parameter_names_refuses_a_name_papermill_injected_that_is_not_declared():
    from tsplab.errors import check_parameter_names

    params = "# Parameters (papermill overrides them)\nepochs = 8  # a comment\nseed: int = 0\nrun_dir = 'runs/tiny'\n"
    check_parameter_names(_history(params))  # Jupyter, nbval: no injected cell
    check_parameter_names(_history(params, "# Parameters\nepochs = 2\nseed = 3\n"))  # known names
    with pytest.raises(InputError, match=r"^unknown parameter\(s\) epoch, sed: the notebook's parameters cell "
                                         r"does not declare them; valid: epochs, run_dir, seed$"):
        check_parameter_names(_history(params, "# Parameters\nepoch = 7\nsed = 1\nseed = 3\n"))
    check_parameter_names(_history("%matplotlib inline", params))  # a magic is no Python: skipped
