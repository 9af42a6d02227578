"""A toy space with a known optimum, for testing strategies and for seeing them work in seconds.

An architecture is a tuple of `length` choices, each one of `options` op names. `score(arch)` is
the fraction of positions that match a hidden `target` (a OneMax-style landscape): the optimum is
exactly `target`, with score 1.0, and every mutation changes the score by at most 1/length. Every
strategy must find the optimum of a small ToySpace (the shared contract test), and a notebook can
show a search converge without training a single network.
"""
from __future__ import annotations

from typing import Sequence

import networkx as nx

from nasnb.spaces.base import Choice, as_rng, enumerate_choices


class ToySpace:
    """`options ** length` architectures; the best one is `target` (score 1.0)."""

    name = "toy"
    cell_names = ("cell",)

    def __init__(self, length: int = 6, options: int = 4, target: Sequence[int] | None = None):
        if length < 1 or options < 2:
            raise ValueError(f"a ToySpace needs length >= 1 and options >= 2, got {length}, {options}")
        self.length, self.options = length, options
        self.OPS = tuple(f"op{k}" for k in range(options))
        target = [options - 1 - (k % options) for k in range(length)] if target is None else list(target)
        if len(target) != length or not all(0 <= t < options for t in target):
            raise ValueError(f"target must be {length} option indices in 0..{options - 1}, got {target}")
        self.target = tuple(self.OPS[t] for t in target)

    def __len__(self) -> int:
        return self.options ** self.length

    def __repr__(self) -> str:
        return f"ToySpace(length={self.length}, options={self.options})"

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
        if isinstance(arch, str) or len(arch) != self.length or any(op not in self.OPS for op in arch):
            raise ValueError(f"a {self!r} arch is a tuple of {self.length} names from {list(self.OPS)}, got {arch!r}")
        return tuple(arch)

    def format(self, arch) -> str:
        return "-".join(self.validate(arch))

    def parse(self, text: str) -> tuple:
        return self.validate(tuple(text.strip().split("-")))

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
        return self.validate(tuple(values))

    def to_choices(self, arch) -> list:
        return list(self.validate(arch))

    def to_graph(self, arch, cell=None) -> nx.DiGraph:
        """A chain in -> 1 -> ... -> out, each edge labelled with the choice at that position."""
        arch = self.validate(arch)
        g = nx.DiGraph(space=self.name, cell="cell")
        for k in range(self.length + 1):
            role = "input" if k == 0 else "output" if k == self.length else "intermediate"
            g.add_node(k, label="in" if k == 0 else "out" if k == self.length else str(k), role=role)
        g.add_edges_from((k, k + 1, {"op": op}) for k, op in enumerate(arch))
        return g
