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
    search = RegularizedEvolution(shapes.space, TableEvaluator(shapes), initial=start,
                                  population_size=10, sample_size=3, seed=0)
    search.run(100)                        # trials 0-9 are `start`; then evolution as usual

RegularizedEvolution's `initial=` (nasnb/strategies/evolution.py) is the one home of the warm
start itself: its random start takes the listed archs in order. This module chooses them.
"""
from __future__ import annotations

from nasnb.checks import check_positive_int, short
from nasnb.errors import InvalidValueError


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
