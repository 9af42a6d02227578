"""What every search space offers, and the small helpers they share.

A search space is a set of architectures plus the moves a search strategy needs on it: sample one,
write it down as a string and read it back, change it a little (mutate), mix two (crossover), list
its neighbours, and turn it into a sequence of decisions (`choices`) that a controller can take one
by one. Architectures are plain immutable values (tuples, named tuples): hashable, comparable, and
safe to keep in a history.

`SearchSpace` is the core every space has; `BuildableSpace` (a network per architecture) and
`EnumerableSpace` (a list of every architecture) are capabilities only some spaces have: ToySpace
builds no network, and DartsSpace's 10^18 genotypes are not listed. Check for one with
``isinstance(space, BuildableSpace)`` before relying on it.
"""
from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from nasnb.checks import check_seed, short
from nasnb.errors import InvalidTypeError, InvalidValueError

Arch = Hashable  # an architecture: an immutable value owned by its space


@dataclass(frozen=True)
class Choice:
    """One decision a controller takes: pick one of `options` for `name`."""

    name: str
    options: tuple

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise InvalidTypeError(f"a Choice's name is a string, got {short(self.name)}; e.g. Choice('1<-0', OPS)")
        if not isinstance(self.options, Iterable):  # a string is fine: "xyz" offers "x", "y", "z"
            raise InvalidTypeError(f"options of choice {self.name!r} must be a sequence, got {short(self.options)}")
        object.__setattr__(self, "options", tuple(self.options))
        if not self.options:  # a decision with nothing to decide between
            raise InvalidValueError(f"choice {self.name!r} has no options; give it at least one")

    def index(self, value) -> int:
        try:
            return self.options.index(value)
        except ValueError:  # tuple.index: not there (an unhashable value simply compares unequal)
            raise InvalidValueError(
                f"{short(value)} is not an option of choice {self.name!r}; options are "
                f"{short(list(self.options), 200)}"
            ) from None


def as_rng(rng: np.random.Generator | int | None, name: str = "rng") -> np.random.Generator:
    """A numpy Generator from a Generator (returned as is), a seed (an int >= 0), or None (fresh entropy).

    `name` is the argument's name in the error message (``seed`` for a function whose argument is a seed).
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(check_seed(name, rng))  # a negative seed is refused by name
    raise InvalidTypeError(f"{name} must be a numpy Generator, an int seed >= 0 or None, got {short(rng)} "
                           f"({type(rng).__name__}); e.g. {name}=0 or {name}=np.random.default_rng(0)")


def pick(rng: np.random.Generator, options: Sequence):
    """One element of `options`, uniformly (keeps the element's own type, unlike rng.choice)."""
    return options[int(rng.integers(len(options)))]


def check_name(name: str, value: Any, options: Sequence[str], what: str) -> str:
    """`value` if it is one of the string `options`; else an InvalidValueError listing them.

    Only strings match: ``value in options`` alone would compare a numpy array elementwise.
    """
    if isinstance(value, str) and value in options:
        return value
    raise InvalidValueError(f"unknown {what} {short(value)}; choose from {list(options)}, e.g. {name}={options[0]!r}")


def checked_len(size: int, space, how_to_count: str) -> int:
    """`size` for `len(space)`, or an InvalidValueError where len() would raise a bare OverflowError."""
    if size <= sys.maxsize:
        return size
    digits = int(size.bit_length() * math.log10(2))  # str(size) fails beyond 4,300 digits
    raise InvalidValueError(f"{space!r} has about 10^{digits} architectures, more than len() can return "
                            f"(2^63 - 1); count them as {how_to_count}")


class SpaceValue:
    """A space as a value: equal to another of its class with the same settings, i.e. the same repr
    (each space's repr names every setting, and a resumed search compares it with the checkpoint's),
    hashable alike, and always true: no space is empty, and bool() must not fall back on a __len__
    that can be too large to return (`space or default` would raise).
    """

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and repr(other) == repr(self)

    def __hash__(self) -> int:
        return hash(repr(self))

    def __bool__(self) -> bool:
        return True


@runtime_checkable
class SearchSpace(Protocol):
    """The core every space offers (NB201Space, DartsSpace, ToySpace); strategies use only this.

    Every method validates its arguments and raises a `nasnb.errors.NasnbError` naming the problem.
    ``repr(space)`` names every setting, so two spaces with the same repr are the same space.
    """

    name: str
    cell_names: tuple  # the cells `to_graph(arch, cell=...)` draws, e.g. ("normal", "reduce")

    @property
    def choices(self) -> list[Choice]: ...

    def __len__(self) -> int: ...  # the number of architectures

    def __repr__(self) -> str: ...  # e.g. "ToySpace(length=6, options=4)": every setting

    def sample(self, rng: np.random.Generator | int | None = None) -> Arch: ...

    def validate(self, arch: Any) -> Arch: ...  # `arch` in its canonical type, or an error saying what is wrong

    def format(self, arch: Arch) -> str: ...  # validates as parse does

    def parse(self, text: str) -> Arch: ...

    def canonical(self, arch: Arch) -> Arch: ...

    def mutate(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch: ...

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator | int | None = None) -> Arch: ...

    def neighbors(self, arch: Arch) -> list[Arch]: ...

    def from_choices(self, values: Sequence[Any]) -> Arch: ...

    def to_choices(self, arch: Arch) -> list: ...

    def to_graph(self, arch: Arch, cell: str | None = None): ...  # cell: one of cell_names; None, the first


@runtime_checkable
class BuildableSpace(SearchSpace, Protocol):
    """A space whose architectures become networks: NB201Space, DartsSpace (not ToySpace)."""

    def build(self, arch: Arch, **kwargs): ...  # a torch.nn.Module; the keywords are the space's own


@runtime_checkable
class EnumerableSpace(SearchSpace, Protocol):
    """A space small enough to list: NB201Space, ToySpace (not DartsSpace)."""

    def enumerate(self) -> Iterator[Arch]: ...


def enumerate_choices(choices: Sequence[Choice]) -> Iterator[tuple]:
    """Every combination of options, first choice varying slowest (like itertools.product)."""
    import itertools

    return itertools.product(*(c.options for c in choices))
