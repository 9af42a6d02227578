"""Meta-learning a good start: begin a search on a new task from what was learned on an old one.

A search on a new task usually starts from nothing: regularized evolution's first population is
drawn uniformly at random, and the search spends its first P trials learning where the good cells
are. If the tasks are related, the cells that did well on the old task are a better guess. The
simplest transfer (and the easiest to check) is the *population*: the first members are the top
cells of the old task's table, then evolution runs as usual on the new task. Nothing of the old
task's *scores* is carried over: every member is trained (looked up) on the new task.

How much it saves depends on one number, the rank correlation of cells between the tasks: if the
old task ranks cells as the new one does, its top cells are near the new optimum and the search
starts close to it; if the correlation is low, the warm start is a random start with extra steps
(and a high but wrong correlation, a concentrated population of similar cells, can even slow the
search down). benchmarks/warm_start.py measures both on nb201-digits -> nb201-shapes.

    start = top_cells(nasnb.bench.load("nb201-digits"), k=10, space=shapes.space)
    search = WarmStartEvolution(shapes.space, TableEvaluator(shapes), initial=start,
                                population_size=10, sample_size=3, seed=0)
    search.run(100)                        # trials 0-9 are `start`, kind "warm"; then evolution
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasnb.checks import check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.strategies.evolution import RegularizedEvolution


def top_cells(table, k: int, space=None, metric: str = "val_accuracy", seed: int | None = None) -> list[tuple]:
    """The `k` cells of `space` (default: the table's) that `table` ranks best by its `metric`
    ("val_accuracy" after the full training, or "test_accuracy") of one `seed` of ``table.seeds``
    or its mean over them (None), best first.

    One cell per class, and each is a member of `space` (the first of its class in `space`'s
    enumerate order), so a search on `space` can evaluate it; ties go to the first class in
    `space`'s order. The table must hold every class of `space`.
    """
    space = table.space if space is None else space
    values = table.val_accuracy(seed=seed) if metric == "val_accuracy" else (
        table.test_accuracy(seed=seed) if metric == "test_accuracy" else None)
    if values is None:
        raise InvalidValueError(f"metric={short(metric)} is not one a table ranks by; choose 'val_accuracy' "
                                "or 'test_accuracy', e.g. metric='val_accuracy'")
    member = {}  # the table's row -> the first cell of `space` in that class
    for arch in space.enumerate():
        member.setdefault(table.row(arch), arch)  # table.row refuses a class a partial table lacks
    k = check_positive_int("k", k, example=min(10, len(member)))
    if k > len(member):
        raise InvalidValueError(f"k={k}, but {space!r} has {len(member)} classes; e.g. k={min(10, len(member))}")
    order = sorted(member, key=lambda row: -values[row])  # stable: space order among equal values
    return [member[row] for row in order[:k]]


class WarmStartEvolution(RegularizedEvolution):
    """Regularized evolution whose first proposals are given cells (`initial`) instead of random ones.

    The first ``len(initial)`` trials evaluate `initial` in order (Trial.info kind "warm"); they join
    the population like the random members of RegularizedEvolution's start, and if fewer than
    `population_size` are given, random members fill the rest. From then on it is Algorithm 1
    unchanged: tournament, mutation, death by age; with ``initial=[]`` it is RegularizedEvolution
    with the same seed, trial for trial (a test checks it). The warm cells are evaluated on *this*
    search's evaluator: only their choice comes from elsewhere.

    Which warm cell comes next is the number of warm trials already asked (in the history or
    pending), so a search resumed from its history continues where it stopped.

    Args:
        initial: the archs of `space` to start from, e.g. ``top_cells(old_table, k=P, space=space)``;
            at most `population_size` (more would die of age before evolution could use them);
            none (the default) is a cold start: RegularizedEvolution itself.
        other arguments: those of RegularizedEvolution.
    """

    def __init__(self, space, evaluator, *, initial: Sequence = (), population_size: int = 20, **kwargs):
        if isinstance(initial, (str, bytes)) or not isinstance(initial, (Sequence, np.ndarray)):
            raise InvalidTypeError(f"initial must be a list of architectures, got {short(initial)}; "
                                   "e.g. initial=top_cells(nasnb.bench.load('nb201-digits'), k=10)")
        super().__init__(space, evaluator, population_size=population_size, **kwargs)
        cells = []
        for k, arch in enumerate(initial):
            try:
                cells.append(space.parse(arch) if isinstance(arch, str) else space.validate(arch))
            except (ValueError, TypeError) as err:
                raise InvalidValueError(f"initial[{k}]={short(arch)} is not an architecture of {space!r}: "
                                        f"{err}") from err
        if len(cells) > self.population_size:
            raise InvalidValueError(f"initial holds {len(cells)} architectures, more than population_size="
                                    f"{self.population_size}; give at most that many, e.g. initial[:"
                                    f"{self.population_size}]")
        self.initial = cells
        self.history.meta.update(initial=[space.format(a) for a in cells])

    def settings(self) -> dict:
        return {**super().settings(), "initial": [self.space.format(a) for a in self.initial]}

    def propose(self):
        asked = sum(t.info.get("kind") == "warm" for t in self.history.trials) + \
            sum(p.info.get("kind") == "warm" for p in self._pending)
        if asked < len(self.initial):
            return self.initial[asked], {"kind": "warm", "sampled": [], "parent": None, "rank": asked}
        random_or_warm = sum(p.info.get("kind") in ("random", "warm") for p in self._pending)
        if len(self.population) + random_or_warm < self.population_size or not self.population:
            return self.space.sample(self.rng), {"kind": "random", "sampled": [], "parent": None}
        return super().propose()  # the population is full (or on its way): Algorithm 1's cycle
