"""The errors nasnb raises for a caller's mistake: one family, each also a built-in kind.

Every error a user can cause (a bad argument, a malformed arch string, a damaged or foreign file,
a resume that does not match its run, a training run that diverged) is a `NasnbError`, so a
program, a test or the `nasnb` command can tell "you asked for something wrong" (one line, no
traceback) from a bug in nasnb (a traceback). Each class also derives from the built-in exception
a Python programmer expects (`ValueError`, `TypeError`, `KeyError`), so ``except ValueError:``
keeps working. Messages name the argument, the value given and a valid one.
"""
from __future__ import annotations


class NasnbError(Exception):
    """Base of every error nasnb raises because of what it was asked to do."""


class InvalidValueError(NasnbError, ValueError):
    """An argument of the right type with a wrong value (out of range, inconsistent, empty)."""


class InvalidTypeError(NasnbError, TypeError):
    """An argument of the wrong type (a float where an int is meant, a bool where a number is)."""


class UnknownNameError(NasnbError, KeyError):
    """A name that is not in a registry (an op, a space, a strategy, a view, a metric)."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class DamagedFileError(NasnbError, ValueError):
    """A checkpoint or history file that is corrupt, truncated, empty, or of another kind."""


class ResumeMismatchError(NasnbError, ValueError):
    """A checkpoint whose run differs from the search asked to continue it."""


class TrainingDivergedError(NasnbError, FloatingPointError):
    """A training loss that became NaN or infinite."""


class EvaluationError(NasnbError, RuntimeError):
    """An evaluator that failed on trial after trial: the search stops instead of spinning."""
