"""Argument checks shared by every public function: fail when the call is made, say what to do.

Each check returns the value in its plain Python type (an int, a float) or raises a `NasnbError`
whose message names the argument, repeats the value (shortened), and shows a valid one:

    check_int("epochs", 2.5, minimum=1)
    InvalidTypeError: epochs must be an int >= 1, got 2.5 (float); e.g. epochs=1

bools are refused where numbers are meant (``True`` is an int to Python, not an epoch count), and
numpy integers and floats are accepted where ints and floats are.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence

from nasnb.errors import InvalidTypeError, InvalidValueError, UnknownNameError

ECHO_LIMIT = 80  # characters of a bad value repeated back in an error message


def short(value: Any, limit: int = ECHO_LIMIT) -> str:
    """repr(value), cut to `limit` characters: an error message never echoes a megabyte back."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for Python to print (over 4,300 digits)
        return f"<an int of {int(value.bit_length() * 0.30103) + 1} digits>"
    return text if len(text) <= limit else f"{text[:limit - 15]}...<{len(text)} chars>"


def _bound(minimum, maximum, exclusive_minimum=False) -> str:
    low = "" if minimum is None else f" {'>' if exclusive_minimum else '>='} {minimum}"
    high = "" if maximum is None else f" <= {maximum}"
    return f"{low}{' and' if low and high else ''}{high}"


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
              example: int | None = None) -> int:
    """`value` as an int in [minimum, maximum]; a float, a bool or a string is an error."""
    if type(value) is int and (minimum is None or value >= minimum) and (maximum is None or value <= maximum):
        return value  # the common case, without building the message below
    example = example if example is not None else (minimum if minimum is not None else 0)
    wanted = f"{name} must be an int{_bound(minimum, maximum)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidTypeError(f"{wanted}, got {short(value)} ({type(value).__name__}); e.g. {name}={example}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise InvalidValueError(f"{wanted}, got {short(value)}; e.g. {name}={example}")
    return value


def check_float(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
                exclusive_minimum: bool = False, example: float | None = None) -> float:
    """`value` as a finite float in the range (ints are fine; bools, NaN and infinities are not)."""
    if (type(value) is float and math.isfinite(value) and (maximum is None or value <= maximum)
            and (minimum is None or (value > minimum if exclusive_minimum else value >= minimum))):
        return value  # the common case, without building the message below
    if example is None:
        example = 0.1 if minimum is None or exclusive_minimum and minimum == 0 else minimum
    wanted = f"{name} must be a finite number{_bound(minimum, maximum, exclusive_minimum)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(f"{wanted}, got {short(value)} ({type(value).__name__}); e.g. {name}={example}")
    value = float(value)
    too_low = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    if not math.isfinite(value) or too_low or (maximum is not None and value > maximum):
        raise InvalidValueError(f"{wanted}, got {value}; e.g. {name}={example}")
    return value


def check_positive_int(name: str, value: Any, example: int = 1) -> int:
    return check_int(name, value, minimum=1, example=example)


def check_positive_float(name: str, value: Any, example: float = 0.1) -> float:
    return check_float(name, value, minimum=0.0, exclusive_minimum=True, example=example)


def check_probability(name: str, value: Any) -> float:
    return check_float(name, value, minimum=0.0, maximum=1.0, example=0.5)


def check_seed(name: str, value: Any) -> int:
    """A seed: a non-negative int (numpy's SeedSequence refuses negative ones)."""
    return check_int(name, value, minimum=0, example=0)


def check_bool(name: str, value: Any) -> bool:
    """True or False (or a numpy bool); 0, 1 and strings such as "false" are refused."""
    numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool_", "bool")  # numpy 1, 2
    if not isinstance(value, bool) and not numpy_bool:
        raise InvalidTypeError(f"{name} must be True or False, got {short(value)} ({type(value).__name__})")
    return bool(value)


def check_str(name: str, value: Any, example: str = "val_accuracy") -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise InvalidTypeError(f"{name} must be a non-empty string, got {short(value)}; e.g. {name}={example!r}")
    return value


def check_choice(name: str, value: Any, options: Iterable) -> Any:
    """`value` if it is one of `options`, else an error listing them."""
    options = list(options)
    try:
        if value in options:
            return value
    except TypeError:  # unhashable or incomparable values are simply not an option
        pass
    raise UnknownNameError(f"{name}={short(value)} is not known; choose from {options}")


def check_distinct_ints(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
                        example: tuple = (1, 2)) -> tuple:
    """A non-empty sequence of distinct ints in [minimum, maximum], as a tuple (a space's options)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise InvalidTypeError(f"{name} must be a non-empty sequence of ints, got {short(value)}; e.g. {name}={example}")
    out = tuple(check_int(f"{name}[{i}]", v, minimum=minimum, maximum=maximum, example=example[0])
                for i, v in enumerate(value))
    if len(set(out)) != len(out):
        raise InvalidValueError(f"{name}={out} repeats a value; list each once, e.g. {name}={example}")
    return out
