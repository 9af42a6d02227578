"""A toy space with a known optimum, for testing strategies and for seeing them work in seconds.

An architecture is a tuple of `length` choices, each one of `options` op names. `score(arch)` is
the fraction of positions that match a hidden `target` (a OneMax-style landscape): the optimum is
exactly `target`, with score 1.0, and every mutation changes the score by at most 1/length. Every
strategy must find the optimum of a small ToySpace (the shared contract test), and a notebook can
show a search converge without training a single network.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import networkx as nx
import numpy as np

from nasnb.checks import check_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.base import Choice, SpaceValue, as_rng, checked_len, enumerate_choices

MAX_SETTING = 10_000  # length and options: a toy is for seconds-long demos, not 10**9 op names in memory


def default_target(length: int, options: int) -> tuple:
    """The optimum when none is given: options-1, options-2, ..., 0, options-1, ... (far from op0 * length)."""
    return tuple(options - 1 - (k % options) for k in range(length))


def _is_index(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class ToySpace(SpaceValue):
    """`options ** length` architectures; the best one is `target` (score 1.0)."""

    name = "toy"
    cell_names = ("cell",)

    def __init__(self, length: int = 6, options: int = 4, target: Sequence[int] | None = None):
        self.length = check_int("length", length, minimum=1, maximum=MAX_SETTING, example=6)
        # one option would leave a single architecture: nothing to search
        self.options = check_int("options", options, minimum=2, maximum=MAX_SETTING, example=4)
        self.OPS = tuple(f"op{k}" for k in range(self.options))
        self._op_set = frozenset(self.OPS)  # validate() looks every position up: O(1) each
        default = default_target(self.length, self.options)
        self._target_indices = default if target is None else self._check_target(target)
        self.target = tuple(self.OPS[t] for t in self._target_indices)

    def _check_target(self, target) -> tuple:
        """`target` as a tuple of `length` option indices (ints in 0..options-1; not floats, not bools)."""
        wanted = f"target must be {self.length} option indices in 0..{self.options - 1}"
        example = f"e.g. target=[0] * {self.length}"
        if isinstance(target, (str, bytes)) or not isinstance(target, (Sequence, np.ndarray)):
            raise InvalidTypeError(f"{wanted}, got {short(target)} ({type(target).__name__}); {example}")
        if not all(_is_index(t) for t in target):  # 1.0 or True is not an option index
            raise InvalidTypeError(f"{wanted}, got {short(target)} (not all ints); {example}")
        if len(target) != self.length:
            raise InvalidValueError(f"{wanted}, got {len(target)} of them: {short(target)}; {example}")
        if not all(0 <= t < self.options for t in target):
            raise InvalidValueError(f"{wanted}, got {short(target)} (out of range); {example}")
        return tuple(int(t) for t in target)

    def __len__(self) -> int:
        return checked_len(self.options ** self.length, self, "space.options ** space.length")

    def __repr__(self) -> str:  # every setting: a resumed search compares it with its checkpoint's
        settings = f"length={self.length}, options={self.options}"
        if self._target_indices != default_target(self.length, self.options):
            settings += f", target={self._target_indices}"
        return f"ToySpace({settings})"

    def score(self, arch) -> float:
        """Fraction of positions equal to the target: 1.0 only at the optimum."""
        arch = self.validate(arch)
        return sum(a == t for a, t in zip(arch, self.target)) / self.length

    def evaluate(self, arch) -> dict:
        """An evaluator: {"val_accuracy": score}."""
        return {"val_accuracy": self.score(arch)}

    @property
    def choices(self) -> list[Choice]:
        return [Choice(f"position {k}", self.OPS) for k in range(self.length)]

    def validate(self, arch) -> tuple:
        """`arch` as a tuple of `length` op names, or an error that says what is wrong."""
        wanted = f"a ToySpace arch is a tuple of {self.length} names from {short(list(self.OPS))}"
        if isinstance(arch, str):
            raise InvalidValueError(f"{wanted}, got the string {short(arch)}; read strings with space.parse(text)")
        if not isinstance(arch, (Sequence, np.ndarray)):
            raise InvalidTypeError(f"{wanted}, got {short(arch)} ({type(arch).__name__})")
        # isinstance first: `op in self.OPS` would compare a numpy array elementwise
        if len(arch) != self.length or not all(isinstance(op, str) and op in self._op_set for op in arch):
            raise InvalidValueError(f"{wanted}, got {short(arch)}")
        return tuple(str(op) for op in arch)  # plain str, even from numpy arrays of names

    def format(self, arch) -> str:
        """'op3-op2-op1-op0-op3-op2': the names joined by '-'."""
        return "-".join(self.validate(arch))

    def parse(self, text: str) -> tuple:
        """The inverse of format()."""
        if not isinstance(text, str):
            raise InvalidTypeError(f"parse expects a string like {'-'.join(self.target[:3])!r}, got "
                                   f"{short(text)} ({type(text).__name__}); format an arch with space.format(arch)")
        # at most length + 1 parts, so a megabyte of '-' is refused without being split up
        return self.validate(tuple(text.strip().split("-", self.length)))

    def canonical(self, arch) -> tuple:
        return self.validate(arch)

    def enumerate(self):
        return enumerate_choices(self.choices)

    def sample(self, rng=None) -> tuple:
        return tuple(self.OPS[k] for k in as_rng(rng).integers(self.options, size=self.length))

    def mutate(self, arch, rng=None) -> tuple:
        arch, rng = self.validate(arch), as_rng(rng)
        k = int(rng.integers(self.length))
        others = [op for op in self.OPS if op != arch[k]]
        return arch[:k] + (others[int(rng.integers(len(others)))],) + arch[k + 1:]

    def crossover(self, a, b, rng=None) -> tuple:
        a, b, rng = self.validate(a), self.validate(b), as_rng(rng)
        return tuple(x if take_a else y for x, y, take_a in zip(a, b, rng.random(self.length) < 0.5))

    def neighbors(self, arch) -> list:
        arch = self.validate(arch)
        return [arch[:k] + (op,) + arch[k + 1:] for k in range(self.length) for op in self.OPS if op != arch[k]]

    def from_choices(self, values) -> tuple:
        return self.validate(values)

    def to_choices(self, arch) -> list:
        return list(self.validate(arch))

    def to_graph(self, arch, cell=None) -> nx.DiGraph:
        """A chain in -> 1 -> ... -> out, each edge labelled with the choice at that position."""
        arch = self.validate(arch)
        if cell is not None and not (isinstance(cell, str) and cell == "cell"):
            raise InvalidValueError(f"ToySpace has one cell type; cell must be None or 'cell', not {short(cell)}")
        g = nx.DiGraph(space=self.name, cell="cell")
        for k in range(self.length + 1):
            role = "input" if k == 0 else "output" if k == self.length else "intermediate"
            g.add_node(k, label="in" if k == 0 else "out" if k == self.length else str(k), role=role)
        g.add_edges_from((k, k + 1, {"op": op}) for k, op in enumerate(arch))
        return g
