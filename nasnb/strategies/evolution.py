"""Regularized (aging) evolution: tournament selection, mutation, and death by age.

Real, Aggarwal, Huang & Le, "Regularized Evolution for Image Classifier Architecture Search",
AAAI 2019 (arXiv:1802.01548), Algorithm 1. The search that found AmoebaNet-A, and since then the
evolutionary baseline of the NAS benchmarks (NAS-Bench-101, NAS-Bench-201), where it is among the
strongest methods for its simplicity.
"""
from __future__ import annotations

from typing import Callable

from nasnb.checks import check_bool, check_positive_int, check_probability, short
from nasnb.errors import InvalidTypeError
from nasnb.history import Trial
from nasnb.strategies.base import Strategy

KINDS = ("random", "mutation", "crossover")  # how a trial's architecture was made (Trial.info["kind"])


def member_to_remove(members: list[int], fitness: Callable[[int], float], aging: bool) -> int:
    """Who dies when the population is one too many: the oldest (smallest trial number) with aging,
    else the worst (lowest fitness; the oldest of the worst on a tie). The child itself may be the
    worst. The one home of this rule: the strategy and its population view both call it."""
    if aging:
        return min(members)
    return min(members, key=lambda n: (fitness(n), n))


class RegularizedEvolution(Strategy):
    """Aging evolution (Real et al., 2019, Algorithm 1).

    Each step samples `sample_size` members, mutates the fittest, and removes the *oldest*
    member, not the worst: age regularizes the search against lucky evaluations.

    Algorithm 1, with P = `population_size`, S = `sample_size`::

        population <- empty queue                      # the living, oldest on the left
        repeat P times:                                # 1. a random start
            model <- random architecture, trained and evaluated
            add model to the right of population
        repeat until the budget is spent:              # 2. evolution, one child per cycle
            sample <- S members drawn uniformly *with replacement* from population
            parent <- the highest-accuracy model in sample
            child  <- mutate(parent), trained and evaluated
            add child to the right of population
            remove the oldest model (the left end) of population
        return the highest-accuracy model ever evaluated

    Why age and not fitness decides who dies: every model lives exactly P cycles, so a model stays
    in the population only by having children that score well again. A mediocre architecture that
    got one lucky evaluation cannot sit at the top for ever, as it would if the worst were removed.
    The paper calls this a regularization and finds it helps most when evaluations are noisy; the
    "non-aging" variant it compares against removes the worst instead (`aging=False` here).

    In ask/tell form: the first P proposals are random; each later proposal runs the tournament on
    the population as it is when asked; `observe` adds the child and removes one member. Several
    proposals may be asked before their results come back (`run(..., executor=...)`): this is the
    asynchronous evolution of the paper, whose workers each evaluated a child while the population
    kept changing.

    Crossover is *our* option, not the paper's (Algorithm 1 only mutates): with probability
    `crossover_prob` the child is the recombination of the two fittest distinct members of the
    sample (`space.crossover`), then mutated, so that recombination can be compared with mutation.

    Every trial's `info` says why it was tried: ``kind`` ("random", "mutation" or "crossover"),
    ``sampled`` (trial numbers drawn, repeats possible), ``parent`` (the tournament winner's number,
    None for random trials), and for crossover ``parents`` (two numbers) and ``recombined`` (the
    arch before mutation). Who was removed is not stored: the rule is deterministic, so
    `nasnb.viz.population_data(history)` replays it.

    The first population is uniform, as in Algorithm 1, unless `initial` says otherwise (our option,
    for warm and hybrid starts, nasnb/hybrid.py): a function ``rng -> arch`` drawing from the
    search's own rng (e.g. each NB201 edge from a DARTS search's softmax(α)), or a list of archs
    (or their strings) used in order, then uniform once it is used up. Only the random start draws
    from it; children are mutations as always, and the trials' ``kind`` stays "random".

    Args:
        population_size: P, the number of living models (NAS-Bench-201's reference runs use 10).
        sample_size: S, tournament size; larger S means stronger selection (NAS-Bench-201: 3).
        aging: remove the oldest member (True: regularized evolution) or the worst (False).
        crossover_prob: probability that a child is recombined from two sampled members before
            mutation; 0 (the paper's algorithm) by default.
        initial: None (uniform: the paper's), a function rng -> arch, or a list of archs for the
            first population (above). A function with ``settings()`` has them checked on resume.
    """

    panels = ("cell", "population")
    replayable = True  # propose() reads only self.rng, the population and the history (storage.py)

    def __init__(self, space, evaluator, *, population_size: int = 20, sample_size: int = 5, aging: bool = True,
                 crossover_prob: float = 0.0, initial=None, metric: str = "val_accuracy", seed: int = 0):
        self.population_size = check_positive_int("population_size", population_size, example=20)
        self.initial = _check_initial(space, initial)
        self.sample_size = check_positive_int("sample_size", sample_size, example=5)  # a tournament needs a member
        self.aging = check_bool("aging", aging)
        self.crossover_prob = check_probability("crossover_prob", crossover_prob)
        super().__init__(space, evaluator, metric=metric, seed=seed)
        self.population: list[int] = []  # trial numbers of the living, in order of birth (oldest first)
        self._parsed: dict = {}  # trial number -> its arch, for living members (what _arch parsed)
        # Written into the history so that views can replay the population from the history alone.
        self.history.meta.update(population_size=self.population_size, sample_size=self.sample_size,
                                 aging=self.aging, crossover_prob=self.crossover_prob)

    def settings(self) -> dict:
        settings = {**super().settings(), "population_size": self.population_size, "sample_size": self.sample_size,
                    "aging": self.aging, "crossover_prob": self.crossover_prob}
        if self.initial is not None:  # absent by default: checkpoints of uniform starts stay valid
            settings["initial"] = _initial_settings(self.space, self.initial)
        return settings

    # ---------------------------------------------------------------- ask: which architecture next

    def propose(self):
        random_in_flight = sum(p.info.get("kind") == "random" for p in self._pending)
        if len(self.population) + random_in_flight < self.population_size or not self.population:
            # 1. The random start, until P random members are alive or on their way: a failed trial
            #    never joins, so another random one takes its place. (An empty population after that
            #    only happens when more than P proposals are in flight at once.)
            return self._first(random_in_flight), {"kind": "random", "sampled": [], "parent": None}

        # 2. Tournament: S draws with replacement, as in Algorithm 1; the fittest wins (ties: the
        #    first drawn, like Python's max).
        draws = self.rng.integers(len(self.population), size=self.sample_size)
        sampled = [self.population[k] for k in draws]
        parent = max(sampled, key=self.fitness)

        if self.crossover_prob > 0:
            distinct = sorted(dict.fromkeys(sampled), key=self.fitness, reverse=True)  # stable: draw order on ties
            if len(distinct) >= 2 and self.rng.random() < self.crossover_prob:
                first, second = distinct[:2]  # first is `parent`
                recombined = self.space.crossover(self._arch(first), self._arch(second), self.rng)
                child = self.space.mutate(recombined, self.rng)
                return child, {"kind": "crossover", "sampled": sampled, "parent": first, "parents": [first, second],
                               "recombined": self.space.format(recombined)}

        child = self.space.mutate(self._arch(parent), self.rng)
        return child, {"kind": "mutation", "sampled": sampled, "parent": parent}

    def _first(self, random_in_flight: int):
        """A member of the random start: uniform, or drawn as `initial` says."""
        if self.initial is None:
            return self.space.sample(self.rng)
        if callable(self.initial):
            return self.initial(self.rng)
        drawn = sum(t.info.get("kind") == "random" for t in self.history.trials) + random_in_flight
        return self.initial[drawn] if drawn < len(self.initial) else self.space.sample(self.rng)

    # ---------------------------------------------------------------- tell: the child joins, one member dies

    def observe(self, trial: Trial) -> None:
        self.population.append(trial.number)
        if len(self.population) > self.population_size:
            dead = self.to_remove(self.population)
            self.population.remove(dead)
            self._parsed.pop(dead, None)

    def to_remove(self, members: list[int]) -> int:
        """The member that dies (`member_to_remove` with this search's rule and fitness)."""
        return member_to_remove(members, self.fitness, self.aging)

    def fitness(self, number: int) -> float:
        """The metric trial `number` scored (what selection compares)."""
        return self.history[number].value(self.metric)

    def _arch(self, number: int):
        """Member `number`'s architecture, parsed from its trial once: a fit member is a parent many times."""
        arch = self._parsed.get(number)
        if arch is None:
            arch = self._parsed[number] = self.space.parse(self.history[number].arch)
        return arch

    # ---------------------------------------------------------------- views and checkpoints

    def state(self) -> dict:
        """The base snapshot plus the living population, oldest first: number, arch, fitness and
        age (how many trials were born after it)."""
        newest = len(self.history) - 1
        members = [{"number": n, "arch": self.history[n].arch, "fitness": self.fitness(n), "age": newest - n}
                   for n in self.population]
        return {**super().state(), "population": members, "population_size": self.population_size,
                "sample_size": self.sample_size, "aging": self.aging, "crossover_prob": self.crossover_prob}

    def _extra_state(self) -> dict:
        return {"population": list(self.population)}

    def _load_extra_state(self, state: dict) -> None:
        self.population = [int(n) for n in state["population"]]
        self._parsed = {}


def _check_initial(space, initial):
    """None, a callable, or a tuple of the space's archs (strings parsed): what `initial` may be."""
    if initial is None or callable(initial):
        return initial
    if isinstance(initial, (str, bytes)) or not isinstance(initial, (list, tuple)):
        raise InvalidTypeError(f"initial must be None, a function rng -> arch or a list of archs, got "
                               f"{short(initial)}; e.g. initial=[space.sample(0), space.sample(1)]")
    return tuple(space.parse(a) if isinstance(a, str) else space.validate(a) if hasattr(space, "validate") else a
                 for a in initial)


def _initial_settings(space, initial):
    """What a checkpoint records of `initial`: the archs, or the function's settings() / name."""
    if not callable(initial):
        return [space.format(a) for a in initial]
    settings = getattr(initial, "settings", None)
    return settings() if callable(settings) else getattr(initial, "__qualname__", type(initial).__name__)
