"""What every search space offers, and the small helpers they share.

A search space is a set of architectures plus the moves a search strategy needs on it: sample one,
write it down as a string and read it back, change it a little (mutate), mix two (crossover), list
its neighbours, and turn it into a sequence of decisions (`choices`) that a controller can take one
by one. Architectures are plain immutable values (tuples, named tuples): hashable, comparable, and
safe to keep in a history.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

Arch = Hashable  # an architecture: an immutable value owned by its space


@dataclass(frozen=True)
class Choice:
    """One decision a controller takes: pick one of `options` for `name`."""

    name: str
    options: tuple

    def __post_init__(self):
        object.__setattr__(self, "options", tuple(self.options))

    def index(self, value) -> int:
        try:
            return self.options.index(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an option of choice {self.name!r}; options are {list(self.options)}"
            ) from None


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A numpy Generator from a Generator (returned as is), an int seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, not {type(rng).__name__}")


def pick(rng: np.random.Generator, options: Sequence):
    """One element of `options`, uniformly (keeps the element's own type, unlike rng.choice)."""
    return options[int(rng.integers(len(options)))]


@runtime_checkable
class SearchSpace(Protocol):
    """The protocol every space follows (NB201Space, DartsSpace, and the toy spaces in tests)."""

    name: str

    @property
    def choices(self) -> list[Choice]: ...

    def sample(self, rng: np.random.Generator | int | None = None) -> Arch: ...

    def format(self, arch: Arch) -> str: ...

    def parse(self, text: str) -> Arch: ...

    def canonical(self, arch: Arch) -> Arch: ...

    def mutate(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch: ...

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator | int | None = None) -> Arch: ...

    def neighbors(self, arch: Arch) -> list[Arch]: ...

    def from_choices(self, values: Sequence[Any]) -> Arch: ...

    def to_choices(self, arch: Arch) -> list: ...

    def to_graph(self, arch: Arch): ...

    def build(self, arch: Arch, **kwargs): ...


def enumerate_choices(choices: Sequence[Choice]) -> Iterator[tuple]:
    """Every combination of options, first choice varying slowest (like itertools.product)."""
    import itertools

    return itertools.product(*(c.options for c in choices))
