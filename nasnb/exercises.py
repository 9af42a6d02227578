"""Checked exercises: a notebook's exercise cell calls `check(answer, expected, hint=...)`.

The expected value is computed in the notebook from the library (never typed in), so the check
stays right when the code changes. A student's answer left as `...` is "not answered yet"; a
wrong answer gets the hint, a right one a short confirmation. Nothing here needs IPython: the
verdict is printed and returned.
"""
from __future__ import annotations

import math
from numbers import Real

from nasnb.checks import check_float, check_str


def _close(answer, expected, tolerance) -> bool:
    if isinstance(expected, Real) and not isinstance(expected, bool):
        if not isinstance(answer, Real) or isinstance(answer, bool) or not math.isfinite(float(answer)):
            return False
        return abs(float(answer) - float(expected)) <= tolerance
    if isinstance(expected, (list, tuple)):
        return (isinstance(answer, (list, tuple)) and len(answer) == len(expected)
                and all(_close(a, e, tolerance) for a, e in zip(answer, expected)))
    if isinstance(expected, (set, frozenset)):
        return isinstance(answer, (set, frozenset, list, tuple)) and set(answer) == set(expected)
    if isinstance(expected, str) and isinstance(answer, str):
        return answer.strip().lower() == expected.strip().lower()
    return answer == expected


def check(answer, expected, *, hint: str, tolerance: float = 0.0, name: str = "answer") -> bool:
    """Compare a student's `answer` with `expected`; print the verdict and return it (True if right).

    Numbers are compared within `tolerance` (absolute), lists and tuples entry by entry, sets as
    sets, strings without case and surrounding spaces; anything else with ==. An answer of `...`
    (Ellipsis, the placeholder in the exercise cells) prints that the exercise is still open.
    """
    hint = check_str("hint", hint, example="count the edges of one node")
    name = check_str("name", name, example="exercise 1")
    tolerance = check_float("tolerance", tolerance, minimum=0.0, example=0.01)
    if answer is Ellipsis:
        print(f"{name}: not answered yet (replace the ... with your answer and run the cell again)")
        return False
    if _close(answer, expected, tolerance):
        print(f"{name}: correct.")
        return True
    print(f"{name}: not quite ({answer!r}). Hint: {hint}")
    return False
