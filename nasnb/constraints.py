"""A hardware budget on any search: reject the architectures over it, or penalise them.

Before multi-objective search (NSGA2, nasnb/strategies/nsga2.py) returns a whole front, the plain
way to ask for "the best network under 10 ms" is to keep a single-objective search and add the
budget to what it is told. Two ways, both baselines in hardware-aware NAS:

* **reject**: an architecture whose cost (latency, params, FLOPs: anything cheap to compute
  before training) is over the limit is not trained at all. Its trial ends "failed", with the
  reason as its error and no training time, so the strategy never learns from it: random search
  becomes rejection sampling, evolution discards the child. The search still pays the proposal,
  and `run` stops after `max_failures` (10) rejections in a row: under a tight limit, pass
  ``run(n, max_failures=None)``.
* **penalty**: every architecture is trained, and the search maximises a *reward* that trades
  accuracy against cost, MnasNet's (Tan et al., CVPR 2019, eq. 2)

      reward = accuracy * (cost / limit) ** w,   w = alpha if cost <= limit else beta

  MnasNet's soft constraint is alpha = beta = -0.07 (about 5 % accuracy for twice the latency,
  for a reward that does not care which side of the limit it is on); its hard constraint is
  alpha = 0, beta = -1 (no reward for being faster, a steep fall after the limit).

    evaluator = Constrained(TableEvaluator(table), cost=latency_of, limit=2.0, mode="penalty")
    RegularizedEvolution(space, evaluator, metric="reward", seed=0).run(300)

`cost` is any function arch -> number (a `LatencyTable.predict`, a lookup of the table's params,
`nasnb.cost.count_params` on a built network); `cost_name` names it in the trial's metrics.
"""
from __future__ import annotations

import math

from nasnb.checks import check_float, short
from nasnb.errors import InvalidTypeError, InvalidValueError, NasnbError
from nasnb.history import finite_number

MODES = ("reject", "penalty")


class ConstraintViolation(NasnbError):
    """Raised by a `Constrained` evaluator in mode "reject": the architecture is over the budget."""


def mnasnet_reward(accuracy: float, cost: float, limit: float, alpha: float = -0.07, beta: float = -0.07) -> float:
    """MnasNet's reward: accuracy * (cost / limit) ** (alpha if cost <= limit else beta)."""
    return accuracy * (cost / limit) ** (alpha if cost <= limit else beta)


class Constrained:
    """An evaluator that applies a budget on `cost(arch)` around another evaluator.

    Args:
        evaluator: the evaluator that trains (or looks up) an architecture.
        cost: a function arch -> finite number >= 0, cheap (it runs before the training).
        limit: the budget, in the cost's units (> 0).
        mode: "reject" (over the limit: not evaluated; the trial fails with the reason) or
            "penalty" (evaluated; the metrics gain "reward", MnasNet's, to search on).
        metric: the accuracy the reward discounts (default "val_accuracy").
        cost_name: the name of the cost in the reported metrics (default "latency_ms").
        alpha, beta: the reward's exponents at and under the limit, and over it.
    """

    def __init__(self, evaluator, cost, limit: float, *, mode: str = "reject", metric: str = "val_accuracy",
                 cost_name: str = "latency_ms", alpha: float = -0.07, beta: float = -0.07):
        if not callable(evaluator):
            raise InvalidTypeError(f"evaluator must be a function arch -> dict of metrics, got {short(evaluator)}")
        if not callable(cost):
            raise InvalidTypeError(f"cost must be a function arch -> number (e.g. latency_table.predict), "
                                   f"got {short(cost)}")
        if mode not in MODES:
            raise InvalidValueError(f"mode={mode!r} is not known; choose from {list(MODES)}, e.g. mode='reject'")
        self.limit = check_float("limit", limit, minimum=0.0, example=10.0)
        if self.limit == 0:
            raise InvalidValueError("limit=0 leaves no architecture; give a positive budget, e.g. limit=10.0")
        self.alpha = check_float("alpha", alpha, example=-0.07)
        self.beta = check_float("beta", beta, example=-0.07)
        self.evaluator, self.cost, self.mode = evaluator, cost, mode
        self.metric, self.cost_name = metric, cost_name
        reported = getattr(evaluator, "metrics", None)
        if isinstance(reported, (list, tuple)):
            self.metrics = tuple(dict.fromkeys([*reported, cost_name] + (["reward"] if mode == "penalty" else [])))
        self.space = getattr(evaluator, "space", None)

    def __repr__(self) -> str:
        return (f"Constrained({self.evaluator!r}, {self.cost_name} <= {self.limit:g}, mode={self.mode!r}"
                + (f", alpha={self.alpha:g}, beta={self.beta:g})" if self.mode == "penalty" else ")"))

    def settings(self) -> dict:
        inner = self.evaluator.settings() if callable(getattr(self.evaluator, "settings", None)) else {}
        return {"constraint": {"limit": self.limit, "mode": self.mode, "metric": self.metric,
                               "cost_name": self.cost_name, "alpha": self.alpha, "beta": self.beta}, **inner}

    def cost_of(self, arch) -> float:
        value = self.cost(arch)
        if not finite_number(value) or value < 0:
            raise InvalidValueError(f"cost({short(arch)}) returned {short(value)}; a cost is a finite number >= 0")
        return float(value)

    def __call__(self, arch, **kwargs) -> dict:
        cost = self.cost_of(arch)
        if self.mode == "reject" and cost > self.limit:
            raise ConstraintViolation(f"rejected without training: {self.cost_name} {cost:g} > limit {self.limit:g}")
        metrics = dict(self.evaluator(arch, **kwargs))
        metrics[self.cost_name] = cost
        if self.mode == "penalty":
            accuracy = metrics.get(self.metric)
            metrics["reward"] = (mnasnet_reward(float(accuracy), cost, self.limit, self.alpha, self.beta)
                                 if finite_number(accuracy) else math.nan)
        return metrics
