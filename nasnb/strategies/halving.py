"""Successive halving and Hyperband: many architectures on a small budget, only the best on a large one.

Successive halving (Jamieson & Talwalkar, "Non-stochastic Best Arm Identification and
Hyperparameter Optimization", AISTATS 2016): train n architectures for r epochs, keep the best 1/η,
train those for η·r epochs, and so on until the budget reaches R. Hyperband (Li, Jamieson, DeSalvo,
Rostamizadeh & Talwalkar, "Hyperband: A Novel Bandit-Based Approach to Hyperparameter
Optimization", JMLR 18, 2018, Algorithm 1) hedges over how aggressive to be: it runs successive
halving in *brackets* s = s_max..0, from many architectures at a tiny budget (s = s_max) to a few
trained in full (s = 0, plain random search), each bracket costing about the same. Algorithm 1,
with budgets in epochs and r_min the smallest one::

    s_max = floor(log_eta(R / r_min))
    for s in s_max, s_max - 1, ..., 0:                        # one bracket
        n = ceil((s_max + 1) / (s + 1) * eta**s);  r = R * eta**(-s)
        T = n new architectures                               # the proposer draws them
        for i in 0..s:                                        # rung i: successive halving
            n_i = floor(n * eta**(-i));  r_i = r * eta**i
            L = {evaluate(t, budget=r_i) : t in T}
            T = the floor(n_i / eta) best of T by L           # promoted to rung i + 1

For R = 81, eta = 3 the brackets are (paper, Table 1) s = 4: 81, 27, 9, 3, 1 architectures at 1, 3,
9, 27, 81 epochs; s = 3: 34, 11, 3, 1 at 3, 9, 27, 81; s = 2: 15, 5, 1 at 9, 27, 81; s = 1: 8, 2 at
27, 81; s = 0: 5 at 81. Budgets are whole epochs: r_i = R * eta**(i - s) is rounded to the nearest
epoch when R is not a power of eta times r_min (R = 10, eta = 3: 1, 3, 10). When all brackets ran,
the schedule starts again with new architectures (`info["round"]` counts the repetitions).

How this reads in nasnb:

* Every evaluation is one Trial, with ``info`` = bracket (s), rung (i), budget (r_i, epochs),
  round, config (the architecture's place in its bracket), promoted_from (the trial number of the
  same architecture at the rung below; None at rung 0), and how a new architecture was made
  (kind "random" or "mutation", parent).
* A promoted architecture is evaluated again at the higher budget *from scratch*, as the paper
  does (a TrainEvaluator trains it anew for r_i epochs; the table looks r_i epochs up): its cost is
  r_i epochs, not r_i - r_(i-1).
* A trial below the last rung is a training stopped early on purpose, so it is recorded as
  "pruned" (history.py), the architectures cut at that rung *and* those promoted from it (their
  promotion is a new trial); only trials at the full budget R are "complete". Hence `best()` is the
  best trial at budget R (the paper returns the best loss seen at any budget, which compares
  numbers trained for different lengths), and the progress view draws partial evaluations hollow.
  `rungs(history)` lists, for every rung, its trials, the promoted and the cut.
* Promotion ranks by the metric; on a tie the architecture drawn first (lower config) goes on. A
  failed evaluation is never promoted; a rung with fewer good results than places promotes fewer.
* Rung i + 1 starts when every evaluation of rung i is told. Asked for more in the meantime (a
  batch on an executor), the search opens the next bracket, so brackets run side by side.

The proposer makes rung 0's architectures: "random" (uniform, the paper's) or "evolution": with
probability 1 - `random_fraction` a mutation of the best trial at the highest budget reached so far
(BOHB, Falkner et al. 2018, replaces random draws by a model in the same way and keeps a fraction
`random_fraction` = 1/3 random), else uniform. An architecture already in its bracket is drawn
again (up to 10 times), so a bracket does not spend its places on duplicates.
"""
from __future__ import annotations

import copy
import math
from fractions import Fraction
from typing import Mapping

from nasnb.checks import check_choice, check_int, check_probability, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.history import Trial, finite_number
from nasnb.strategies.base import Strategy, takes_budget

PROPOSERS = ("random", "evolution")
REDRAWS = 10  # tries for an architecture not yet in its bracket
MAX_CONFIGS = 100_000  # architectures one bracket may start: its places are kept in the search's state


def max_bracket(max_budget: int, eta: int, min_budget: int = 1) -> int:
    """s_max = floor(log_eta(R / r_min)): the largest s with r_min * eta**s <= R (exact, no float log)."""
    s = 0
    while min_budget * eta ** (s + 1) <= max_budget:
        s += 1
    return s


def bracket_rungs(s: int, n: int, max_budget: int, eta: int) -> list[list[int]]:
    """Rungs i = 0..s of a bracket that starts n architectures: [n_i, r_i] with n_i = floor(n eta^-i)
    and r_i = R eta^(i - s) (= r eta^i, r = R eta^-s), rounded to the nearest whole epoch."""
    return [[n // eta ** i, max(1, math.floor(Fraction(max_budget, eta ** (s - i)) + Fraction(1, 2)))]
            for i in range(s + 1)]


def hyperband_schedule(max_budget: int, eta: int = 3, min_budget: int = 1) -> list[dict]:
    """Hyperband's brackets (Li et al. 2018, Algorithm 1): [{"bracket": s, "rungs": [[n_i, r_i], ...]}]
    for s = s_max..0, with n = ceil((s_max + 1) / (s + 1) * eta**s)."""
    s_max = max_bracket(max_budget, eta, min_budget)
    return [{"bracket": s, "rungs": bracket_rungs(s, -(-(s_max + 1) * eta ** s // (s + 1)), max_budget, eta)}
            for s in range(s_max, -1, -1)]


def promote(scored: list[tuple[float, int]], k: int) -> list[int]:
    """The k best of (value, config) pairs, best first; on a tie the lower config (drawn first) wins.
    The one home of the promotion rule: the strategy and `rungs` both follow it."""
    return [config for _, config in sorted(scored, key=lambda vc: (-vc[0], vc[1]))[:k]]


def rungs(history) -> list[dict]:
    """Per rung of every bracket a search ran, in the order the rungs started: round, bracket, rung,
    budget, trials (numbers), values (the metric, None for a failed trial), promoted (trial numbers
    whose architecture was evaluated at the next rung) and cut (the others, once a next rung began;
    at the last rung nothing is either)."""
    table: dict[tuple, dict] = {}
    for t in history.trials:
        info = t.info
        if "bracket" not in info:
            continue
        key = (info["round"], info["bracket"], info["rung"])
        entry = table.setdefault(key, {"round": key[0], "bracket": key[1], "rung": key[2], "budget": info["budget"],
                                       "trials": [], "values": [], "promoted": [], "cut": []})
        entry["trials"].append(t.number)
        value = t.metrics.get(history.metric)
        entry["values"].append(float(value) if t.state != "failed" and finite_number(value) else None)
        if info.get("promoted_from") is not None:
            table[(key[0], key[1], key[2] - 1)]["promoted"].append(info["promoted_from"])
    for (r, s, i), entry in table.items():
        if (r, s, i + 1) in table:
            entry["cut"] = [n for n in entry["trials"] if n not in entry["promoted"]]
    return list(table.values())


class SuccessiveHalving(Strategy):
    """Successive halving (Jamieson & Talwalkar 2016; the inner loop of Li et al. 2018, Algorithm 1).

    One bracket, s = floor(log_eta(R / r_min)): `num_configs` architectures (default eta**s) at
    R eta^-s epochs, the best 1/eta of them at eta times that, ..., until R; then again with new
    architectures. See the module docstring for the schedule, what is pruned and `best()`.

    Args:
        evaluator: takes ``evaluator(arch, budget=epochs)`` (TrainEvaluator, TableEvaluator).
        max_budget: R, the full training in epochs (default: the evaluator's ``epochs``).
        min_budget: r_min, the fewest epochs an architecture is trained for.
        eta: keep 1/eta of each rung and multiply the budget by eta (the paper's default, 3).
        num_configs: n, architectures at rung 0 (at least eta**s, so that one reaches R).
        proposer: "random" or "evolution" (module docstring); random_fraction for "evolution".
    """

    panels = ("cell", "progress", "rungs")
    replayable = True  # propose() reads only self.rng, the brackets' state and the history

    def __init__(self, space, evaluator, *, max_budget: int | None = None, min_budget: int = 1, eta: int = 3,
                 num_configs: int | None = None, proposer: str = "random", random_fraction: float = 1 / 3,
                 metric: str = "val_accuracy", seed: int = 0):
        if not callable(evaluator):
            raise InvalidTypeError(f"evaluator must be a function (arch, budget) -> dict of metrics, e.g. "
                                   f"TableEvaluator(table) or TrainEvaluator(data); got {short(evaluator)}")
        if not takes_budget(evaluator):
            raise InvalidTypeError(f"{type(self).__name__} evaluates at budgets: the evaluator must take one, as "
                                   f"evaluator(arch, budget=epochs); {short(evaluator)} does not. Use a "
                                   "TrainEvaluator or TableEvaluator, or write def evaluate(arch, budget=None): ...")
        if max_budget is None:
            max_budget = getattr(evaluator, "epochs", None)
            if max_budget is None:
                raise InvalidValueError(f"max_budget=None takes the evaluator's epochs, but {short(evaluator)} has "
                                        "none; give the full training in epochs, e.g. max_budget=9")
        self.max_budget = check_int("max_budget", max_budget, minimum=1, example=9)
        most = getattr(evaluator, "max_budget", None)  # a table: its learning curves' length
        if isinstance(most, int) and self.max_budget > most:
            raise InvalidValueError(f"max_budget={self.max_budget}, but the evaluator evaluates at most {most} "
                                    f"epochs; e.g. max_budget={most}")
        self.min_budget = check_int("min_budget", min_budget, minimum=1, maximum=self.max_budget,
                                    example=1)
        self.eta = check_int("eta", eta, minimum=2, example=3)
        self.num_configs = num_configs
        self.proposer = check_choice("proposer", proposer, PROPOSERS)
        self.random_fraction = check_probability("random_fraction", random_fraction)
        self.schedule = self._schedule()
        widest = max(b["rungs"][0][0] for b in self.schedule)
        if widest > MAX_CONFIGS:
            raise InvalidValueError(f"max_budget={self.max_budget}, min_budget={self.min_budget}, eta={self.eta} "
                                    f"start a bracket with {widest} architectures (more than {MAX_CONFIGS}); "
                                    "e.g. max_budget=81, min_budget=1, eta=3")
        super().__init__(space, evaluator, metric=metric, seed=seed)
        self._next = 0  # how many brackets were opened (the next one is schedule[_next % len(schedule)])
        self._open: list[dict] = []  # brackets under way, oldest first (see _open_bracket)
        self._incumbent: list | None = None  # [budget, value, number]: the best trial at the highest budget
        self.history.meta.update(max_budget=self.max_budget, min_budget=self.min_budget, eta=self.eta,
                                 schedule=self.schedule)

    def _schedule(self) -> list[dict]:
        s = max_bracket(self.max_budget, self.eta, self.min_budget)
        least = self.eta ** s
        n = least if self.num_configs is None else check_int("num_configs", self.num_configs, minimum=least,
                                                             example=least)
        self.num_configs = n
        return [{"bracket": s, "rungs": bracket_rungs(s, n, self.max_budget, self.eta)}]

    def settings(self) -> dict:
        return {**super().settings(), "max_budget": self.max_budget, "min_budget": self.min_budget, "eta": self.eta,
                "num_configs": self.num_configs, "proposer": self.proposer, "random_fraction": self.random_fraction}

    # ---------------------------------------------------------------- ask: the next evaluation

    def propose(self):
        slot, bracket = None, None
        for bracket in self._open:  # the oldest bracket with an evaluation not yet asked for
            slot = next((x for x in bracket["slots"] if not x["asked"]), None)
            if slot is not None:
                break
        if slot is None:
            bracket = self._open_bracket()
            slot = bracket["slots"][0]
        if slot["arch"] is None:  # rung 0: the proposer makes it now, from what is known now
            slot.update(self._draw(bracket))
        slot["asked"] = True
        rung = bracket["rung"]
        info = {"round": bracket["round"], "bracket": bracket["bracket"], "rung": rung,
                "budget": self._rungs(bracket)[rung][1], "config": slot["config"],
                "promoted_from": slot["promoted_from"], "kind": slot["kind"], "parent": slot["parent"]}
        return self.space.parse(slot["arch"]), info

    def _rungs(self, bracket: dict) -> list:
        return self.schedule[bracket["index"]]["rungs"]

    def _open_bracket(self) -> dict:
        """The next bracket of the schedule: rung 0's places, architectures drawn when asked."""
        index = self._next % len(self.schedule)
        n = self.schedule[index]["rungs"][0][0]
        bracket = {"round": self._next // len(self.schedule), "bracket": self.schedule[index]["bracket"],
                   "index": index, "rung": 0,
                   "slots": [{"config": j, "arch": None, "promoted_from": None, "kind": None, "parent": None,
                              "asked": False, "trial": None} for j in range(n)]}
        self._next += 1
        self._open.append(bracket)
        return bracket

    def _draw(self, bracket: dict) -> dict:
        taken = {x["arch"] for x in bracket["slots"]}
        for _ in range(REDRAWS):
            kind, parent = "random", None
            evolve = self.proposer == "evolution" and self._incumbent is not None
            if evolve and self.rng.random() >= self.random_fraction:
                kind, parent = "mutation", self._incumbent[2]
                arch = self.space.mutate(self.space.parse(self.history[parent].arch), self.rng)
            else:
                arch = self.space.sample(self.rng)
            text = self.space.format(arch)
            if text not in taken:
                break
        return {"arch": text, "kind": kind, "parent": parent}

    # ---------------------------------------------------------------- tell: fill the rung, promote

    def tell(self, proposal, metrics: Mapping | None = None, seconds: float = 0.0, *, error=None,
             pruned: bool = False) -> Trial:
        """As Strategy.tell; a good result below the bracket's last rung is recorded as pruned."""
        proposal = self._find_pending(proposal)
        partial = proposal.info["rung"] < proposal.info["bracket"]
        if partial and error is None and isinstance(metrics, Mapping) and finite_number(metrics.get(self.metric)):
            pruned = True
        return super().tell(proposal, metrics, seconds, error=error, pruned=pruned)

    def _learn(self, trial: Trial) -> None:
        """Every told trial, whatever its state, fills its place; a full rung promotes its best."""
        info = trial.info
        value = trial.metrics.get(self.metric)
        if trial.state != "failed" and finite_number(value):
            top = self._incumbent
            if top is None or info["budget"] > top[0] or info["budget"] == top[0] and value > top[1]:
                self._incumbent = [info["budget"], float(value), trial.number]
        bracket = self._bracket_of(info)
        slot = next(x for x in bracket["slots"] if x["config"] == info["config"])
        slot["trial"] = trial.number
        if all(x["trial"] is not None for x in bracket["slots"]):
            self._promote(bracket)
        super()._learn(trial)

    def _promote(self, bracket: dict) -> None:
        """Rung i is complete: the floor(n_i / eta) best go on to rung i + 1, or the bracket ends."""
        rungs, i = self._rungs(bracket), bracket["rung"]
        scored = []
        for x in bracket["slots"]:
            t = self.history[x["trial"]]
            value = t.metrics.get(self.metric)
            if t.state != "failed" and finite_number(value):
                scored.append((float(value), x["config"]))
        winners = promote(scored, rungs[i + 1][0]) if i + 1 < len(rungs) else []
        if not winners:
            self._open.remove(bracket)
            return
        by_config = {x["config"]: x for x in bracket["slots"]}
        bracket["rung"] = i + 1
        bracket["slots"] = [{**by_config[c], "promoted_from": by_config[c]["trial"], "asked": False, "trial": None}
                            for c in winners]

    def _bracket_of(self, info: dict) -> dict:
        for bracket in self._open:
            if bracket["round"] == info["round"] and bracket["bracket"] == info["bracket"]:
                return bracket
        raise InvalidValueError(f"a trial of bracket {info['bracket']} (round {info['round']}) that is not under way")

    def drop(self, proposal=None) -> list:
        """As Strategy.drop; a dropped evaluation is asked for again (its rung waits for it)."""
        dropped = super().drop(proposal)
        for p in dropped:
            bracket = self._bracket_of(p.info)
            next(x for x in bracket["slots"] if x["config"] == p.info["config"])["asked"] = False
        return dropped

    # ---------------------------------------------------------------- views and checkpoints

    def state(self) -> dict:
        """The base snapshot plus the schedule and the brackets under way (rung, places told)."""
        under_way = [{"round": b["round"], "bracket": b["bracket"], "rung": b["rung"],
                      "budget": self._rungs(b)[b["rung"]][1], "places": len(b["slots"]),
                      "told": sum(x["trial"] is not None for x in b["slots"])} for b in self._open]
        return {**super().state(), "schedule": self.schedule, "under_way": under_way}

    def _extra_state(self) -> dict:
        return {"next": self._next, "open": copy.deepcopy(self._open), "incumbent": copy.copy(self._incumbent)}

    def _load_extra_state(self, state: dict) -> None:
        self._next = int(state["next"])
        self._open = copy.deepcopy(state["open"])
        self._incumbent = copy.copy(state["incumbent"])


class Hyperband(SuccessiveHalving):
    """Hyperband (Li et al. 2018, Algorithm 1): successive halving in brackets s = s_max..0.

    Bracket s starts n = ceil((s_max + 1) / (s + 1) eta^s) architectures at R eta^-s epochs; every
    bracket ends at R (module docstring: the schedule, promotions, what is pruned, `best()`).
    Arguments as SuccessiveHalving's, without num_configs (the schedule sets n per bracket).
    """

    def __init__(self, space, evaluator, *, max_budget: int | None = None, min_budget: int = 1, eta: int = 3,
                 proposer: str = "random", random_fraction: float = 1 / 3, metric: str = "val_accuracy",
                 seed: int = 0):
        super().__init__(space, evaluator, max_budget=max_budget, min_budget=min_budget, eta=eta, proposer=proposer,
                         random_fraction=random_fraction, metric=metric, seed=seed)

    def _schedule(self) -> list[dict]:
        return hyperband_schedule(self.max_budget, self.eta, self.min_budget)

    def settings(self) -> dict:
        settings = super().settings()
        del settings["num_configs"]
        return settings
