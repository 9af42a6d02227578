"""NSGA-II: multi-objective evolution by non-dominated sorting and crowding distance.

Deb, Pratap, Agarwal & Meyarivan, "A Fast and Elitist Multiobjective Genetic Algorithm: NSGA-II",
IEEE Transactions on Evolutionary Computation 6(2), 2002. The algorithm behind most
multi-objective NAS (NSGA-Net, Lu et al. 2019, searched accuracy against FLOPs with it), and the
baseline a hardware-aware search is compared with.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from nasnb.checks import check_bool, check_positive_int, check_probability, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.history import Trial
from nasnb.objectives import as_dict, crowding_distance, minimised, non_dominated_sort, parse_objectives
from nasnb.strategies.base import Strategy

DUPLICATE_TRIES = 20  # eliminate_duplicates: children drawn again at most this often before a repeat is accepted


def environmental_selection(numbers: list[int], points, size: int) -> tuple[list[int], dict, dict]:
    """NSGA-II's survival (Deb et al. 2002, section III-C, the main loop): keep `size` of `numbers`.

    Sort the candidates (parents and children together: elitism) into fronts F1, F2, ...; take
    whole fronts while they fit; from the first front that does not fit, take the points with the
    largest crowding distance (ties: the earlier candidate). Returns (survivors in the order of
    `numbers`, rank per survivor (0 = first front), crowding distance per survivor, computed on its
    whole front). `points` holds one row per candidate, every objective minimised. The one home of
    this rule: the strategy and `generations(history)` both call it.
    """
    survivors, rank, crowding = [], {}, {}
    for r, front in enumerate(non_dominated_sort(points) if len(numbers) else []):
        if len(survivors) >= size:
            break
        distance = crowding_distance(np.asarray(points)[front])
        order = sorted(range(len(front)), key=lambda k: (-distance[k], front[k]))  # most isolated first
        for k in order[: size - len(survivors)]:
            number = numbers[front[k]]
            survivors.append(number)
            rank[number], crowding[number] = r, float(distance[k])
    position = {n: k for k, n in enumerate(numbers)}
    return sorted(survivors, key=position.get), rank, crowding


def crowded_better(a: int, b: int, rank: dict, crowding: dict) -> int:
    """The winner of a binary tournament by the crowded-comparison operator (Deb et al. 2002,
    section III-C): the lower rank, then the larger crowding distance; `a` on a full tie."""
    if rank[a] != rank[b]:
        return a if rank[a] < rank[b] else b
    return b if crowding[b] > crowding[a] else a


def _jsonable_distance(value: float) -> float | None:
    return None if math.isinf(value) else value  # None: an end of its front (an infinite distance)


def generations(history) -> list[dict]:
    """Each generation's surviving population, replayed from a history that NSGA2 wrote (its meta
    holds the objectives and population size, each trial's info its generation): a list of
    {"generation": g, "population": [trial numbers], "rank": {number: r}, "crowding": {...}}."""
    objectives = parse_objectives(history.meta["objectives"])
    size = int(history.meta["population_size"])
    population, result, children, current = [], [], [], 0

    def select(g):
        nonlocal population
        numbers = population + children
        rows = [[history[n].value(o.name) for o in objectives] for n in numbers]
        population, rank, crowding = environmental_selection(numbers, minimised(rows, objectives)
                                                             if rows else rows, size)
        result.append({"generation": g, "population": list(population), "rank": rank,
                       "crowding": {n: _jsonable_distance(d) for n, d in crowding.items()}})

    for trial in history.trials:
        g = trial.info["generation"]
        while g > current:  # every earlier generation is complete once a later one has a child
            select(current)
            children, current = [], current + 1
        if trial.ok:
            children.append(trial.number)
    told = sum(t.info["generation"] == current for t in history.trials)
    if told >= size:  # the last generation is complete too (a dropped proposal is not in the history)
        select(current)
    return result


class NSGA2(Strategy):
    """NSGA-II (Deb et al. 2002) as an ask/tell strategy over any space with sample, mutate and crossover.

    The algorithm, with N = `population_size`::

        P <- N random architectures, evaluated                 # generation 0
        rank and crowding of P                                # by environmental selection of P alone
        repeat:                                               # generation g = 1, 2, ...
            Q <- N children, each made by
                 a, b <- two binary tournaments on P           # crowded comparison: rank, then crowding
                 child <- crossover(a, b) with probability crossover_prob, else a
                 child <- mutate(child) with probability mutation_prob
            evaluate Q
            P <- environmental_selection(P + Q, N)             # fronts, then crowding; elitist

    In ask/tell terms: each `ask()` proposes one child of the current generation; when N children
    have been asked and all of them told, the selection runs and the next generation begins. More
    asks while a generation is still being evaluated (a parallel run's batch crossing the boundary)
    become extra children of the same generation, bred from the same parents; selection then
    chooses N from all of them. Asked one at a time, this is the paper's algorithm exactly.

    Several objectives: ``objectives={"val_accuracy": "max", "latency_ms": "min"}``. A trial
    without a finite value for every objective is a failed trial (it never joins). `best()` is the
    best trial by the *first* objective; `history.front()` is the Pareto front.

    Each trial's `info`: ``generation``, ``kind`` ("random" or "offspring"), ``parents`` (the two
    tournament winners' trial numbers), ``tournaments`` (the two pairs drawn), the winners' ``ranks``
    and ``crowding`` at that time (None: infinite), ``crossover`` and ``mutated`` (what was done).
    A child's own rank is decided by the selection after its generation: `generations(history)`
    replays every selection from the history alone.

    Args:
        objectives: {metric: "max" | "min"}, most important first; default {metric: "max"}.
        population_size: N, parents and children per generation.
        crossover_prob: probability that a child is `space.crossover(a, b)` (one child per
            crossover), 0.9 as in the paper.
        mutation_prob: probability of `space.mutate` on the child (one change: about the paper's
            1/n per variable).
        eliminate_duplicates: draw a child again (at most 20 times) when its architecture was
            already tried or is pending: a repeat costs an evaluation and teaches nothing (pymoo's
            default too).
    """

    panels = ("cell", "pareto")
    replayable = True  # propose() reads only self.rng, the population, the generation's count and the history

    def __init__(self, space, evaluator, *, objectives: Mapping | None = None, population_size: int = 20,
                 crossover_prob: float = 0.9, mutation_prob: float = 1.0, eliminate_duplicates: bool = True,
                 metric: str = "val_accuracy", seed: int = 0):
        self.objectives = parse_objectives({metric: "max"} if objectives is None else objectives)
        if objectives is not None and metric not in ("val_accuracy", self.objectives[0].name):
            raise InvalidValueError(f"metric={metric!r} and objectives={short(as_dict(self.objectives))}: the metric "
                                    f"is the first objective; leave metric out, e.g. objectives={{{metric!r}: 'max', "
                                    f"...}}")
        self.population_size = check_positive_int("population_size", population_size, example=20)
        self.crossover_prob = check_probability("crossover_prob", crossover_prob)
        self.mutation_prob = check_probability("mutation_prob", mutation_prob)
        self.eliminate_duplicates = check_bool("eliminate_duplicates", eliminate_duplicates)
        for needed, used in (("mutate", self.mutation_prob > 0), ("crossover", self.crossover_prob > 0)):
            if used and not callable(getattr(space, needed, None)):
                raise InvalidTypeError(f"NSGA2 needs space.{needed}(), which {short(space)} lacks; use a space "
                                       f"that has it or pass {needed.replace('ate', 'ation')}_prob=0")
        super().__init__(space, evaluator, metric=self.objectives[0].name, seed=seed)
        reported = getattr(evaluator, "metrics", None)
        missing = [o.name for o in self.objectives if isinstance(reported, (list, tuple)) and o.name not in reported]
        if missing:
            raise InvalidValueError(f"objectives {missing} are not among what the evaluator reports "
                                    f"({list(reported)}); choose from those")
        self.generation = 0
        self.population: list[int] = []  # trial numbers of the parents, after the last selection
        self.rank: dict[int, int] = {}  # their non-dominated rank (0: the first front) and crowding
        self.crowding: dict[int, float] = {}
        self._asked = 0  # children asked in this generation (told, failed, dropped or pending)
        self._children: list[int] = []  # complete children of this generation, in trial order
        self._seen: set[str] = set()  # formatted archs tried or pending (eliminate_duplicates)
        self.history.meta.update(objectives=as_dict(self.objectives), population_size=self.population_size,
                                 crossover_prob=self.crossover_prob, mutation_prob=self.mutation_prob)

    def settings(self) -> dict:
        return {**super().settings(), "objectives": as_dict(self.objectives), "population_size": self.population_size,
                "crossover_prob": self.crossover_prob, "mutation_prob": self.mutation_prob,
                "eliminate_duplicates": self.eliminate_duplicates}

    # ---------------------------------------------------------------- ask: one child of this generation

    def propose(self):
        self._select_if_complete()  # a generation whose last pending child was dropped
        self._asked += 1
        for _ in range(DUPLICATE_TRIES if self.eliminate_duplicates else 1):
            arch, info = self._child()
            if self.space.format(arch) not in self._seen:
                break
        self._seen.add(self.space.format(arch))
        return arch, {"generation": self.generation, **info}

    def _child(self):
        if not self.population:  # generation 0 (or one whose children all failed)
            return self.space.sample(self.rng), {"kind": "random", "parents": []}
        tournaments, parents, size = [], [], len(self.population)
        for _ in range(2):
            first = int(self.rng.integers(size))  # two distinct members, uniformly (the same one if P has one)
            second = first if size == 1 else int(self.rng.integers(size - 1))
            second += size > 1 and second >= first
            pair = [self.population[first], self.population[second]]
            tournaments.append(pair)
            parents.append(crowded_better(pair[0], pair[-1], self.rank, self.crowding))
        a, b = (self.space.parse(self.history[n].arch) for n in parents)
        crossover = bool(self.rng.random() < self.crossover_prob)
        child = self.space.crossover(a, b, self.rng) if crossover else a
        mutated = bool(self.rng.random() < self.mutation_prob)
        if mutated:
            child = self.space.mutate(child, self.rng)
        return child, {"kind": "offspring", "parents": parents, "tournaments": tournaments,
                       "ranks": [self.rank[n] for n in parents],
                       "crowding": [_jsonable_distance(self.crowding[n]) for n in parents],
                       "crossover": crossover, "mutated": mutated}

    # ---------------------------------------------------------------- tell: collect, select when complete

    def tell(self, proposal, metrics=None, seconds: float = 0.0, *, error=None, pruned: bool = False) -> Trial:
        """As `Strategy.tell`; a result without a finite number for every objective is a failed trial."""
        if error is None and not pruned and isinstance(metrics, Mapping):
            bad = [o.name for o in self.objectives[1:] if not _finite(metrics.get(o.name))]
            if bad:
                error = (f"the evaluator returned no finite number for the objectives {bad} (it reported "
                         f"{sorted(metrics)}): NSGA2 needs every objective")
        return super().tell(proposal, metrics, seconds, error=error, pruned=pruned)

    def observe(self, trial: Trial) -> None:
        self._children.append(trial.number)

    def _learn(self, trial: Trial) -> None:
        super()._learn(trial)  # observe() if complete
        self._select_if_complete()

    def _select_if_complete(self) -> None:
        if self._asked < self.population_size or self._pending:
            return
        numbers = self.population + self._children
        rows = [[self.history[n].value(o.name) for o in self.objectives] for n in numbers]
        points = minimised(rows, self.objectives) if rows else rows
        self.population, self.rank, self.crowding = environmental_selection(numbers, points, self.population_size)
        self.generation, self._asked, self._children = self.generation + 1, 0, []

    def best(self) -> Trial | None:
        """The best complete trial by the first objective, in its direction."""
        from nasnb.objectives import best_trial

        return best_trial(self.history, self.objectives)

    # ---------------------------------------------------------------- views and checkpoints

    def state(self) -> dict:
        """The base snapshot plus the generation and its parents: number, arch, objective values,
        rank and crowding (None: infinite)."""
        members = [{"number": n, "arch": self.history[n].arch, "rank": self.rank[n],
                    "crowding": _jsonable_distance(self.crowding[n]),
                    "values": {o.name: self.history[n].value(o.name) for o in self.objectives}}
                   for n in self.population]
        return {**super().state(), "generation": self.generation, "population": members,
                "objectives": as_dict(self.objectives), "population_size": self.population_size,
                "front": [t.number for t in self.history.front(self.objectives)]}

    def _extra_state(self) -> dict:
        return {"generation": self.generation, "asked": self._asked, "children": list(self._children),
                "population": list(self.population), "rank": [self.rank[n] for n in self.population],
                "crowding": [self.crowding[n] for n in self.population]}

    def _load_extra_state(self, state: dict) -> None:
        self.generation, self._asked = int(state["generation"]), int(state["asked"])
        self._children = [int(n) for n in state["children"]]
        self.population = [int(n) for n in state["population"]]
        self.rank = {n: int(r) for n, r in zip(self.population, state["rank"])}
        self.crowding = {n: float(d) for n, d in zip(self.population, state["crowding"])}
        self._seen = {t.arch for t in self.history.trials} | {self.space.format(p.arch) for p in self._pending}


def _finite(value) -> bool:
    try:
        return not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
