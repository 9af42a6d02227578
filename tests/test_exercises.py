"""nasnb.exercises.check: the verdicts of the notebooks' checked exercises."""
import math

import pytest

from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.exercises import check


def test_right_answers_pass_and_say_so(capsys):
    assert check(14, 14, hint="h", name="edges") is True
    assert "edges: correct" in capsys.readouterr().out
    assert check(0.333, 1 / 3, hint="h", tolerance=0.001)
    assert check([1, 2.0005], (1, 2), hint="h", tolerance=0.001)
    assert check(["b", "a"], {"a", "b"}, hint="h")
    assert check("  Skip_Connect ", "skip_connect", hint="h")


def test_wrong_answers_fail_with_the_hint(capsys):
    assert check(13, 14, hint="two inputs per node, plus one", name="edges") is False
    out = capsys.readouterr().out
    assert "not quite (13)" in out and "two inputs per node, plus one" in out
    assert not check(0.34, 1 / 3, hint="h", tolerance=0.001)
    assert not check([1, 2], [1, 2, 3], hint="h")
    assert not check(math.nan, 1.0, hint="h", tolerance=10)
    assert not check(True, 1, hint="h")          # a bool is not a number here
    assert not check("14", 14, hint="h")
    assert not check({"a"}, {"a", "b"}, hint="h")


def test_the_placeholder_is_an_open_exercise(capsys):
    assert check(..., 14, hint="h", name="exercise 2") is False
    assert "exercise 2: not answered yet" in capsys.readouterr().out


def test_bad_arguments_are_named():
    with pytest.raises(InvalidTypeError, match="hint"):
        check(1, 1, hint="")
    with pytest.raises(InvalidValueError, match="tolerance"):
        check(1, 1, hint="h", tolerance=-1)
