"""A budget on a search (nasnb/constraints.py): rejection and MnasNet's reward, against the formula
and against the constrained optimum found by enumerating a small space."""
import math

import pytest

from nasnb.constraints import Constrained, ConstraintViolation, mnasnet_reward
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import RandomSearch, RegularizedEvolution

SPACE = ToySpace(length=4, options=3)  # 81 architectures; the target ('op2', 'op1', 'op0', 'op2') costs 5


def cost(arch):  # a stand-in for latency: the sum of the op indices ("op2" costs 2)
    arch = SPACE.parse(arch) if isinstance(arch, str) else arch  # a history keeps the formatted string
    return float(sum(int(op[2:]) for op in arch))


def test_mnasnet_reward_matches_the_paper_s_formula_on_both_sides_of_the_limit():
    assert mnasnet_reward(0.9, 20.0, 10.0) == pytest.approx(0.9 * 2 ** -0.07)
    assert mnasnet_reward(0.9, 5.0, 10.0) == pytest.approx(0.9 * 0.5 ** -0.07)  # soft: faster earns a little
    assert mnasnet_reward(0.9, 5.0, 10.0, alpha=0, beta=-1) == pytest.approx(0.9)  # hard: no reward for speed
    assert mnasnet_reward(0.9, 20.0, 10.0, alpha=0, beta=-1) == pytest.approx(0.45)
    # MnasNet's choice of -0.07: twice the latency costs about 5 % of the accuracy
    assert 1 - 2 ** -0.07 == pytest.approx(0.0474, abs=1e-4)


def test_reject_trains_nothing_over_the_limit_and_the_trial_says_why():
    calls = []

    def evaluator(arch):
        calls.append(arch)
        return SPACE.evaluate(arch)

    search = RandomSearch(SPACE, Constrained(evaluator, cost, limit=3.0), seed=0)
    search.run(60, progress=False)
    trials = search.history.trials
    assert all((t.state == "failed") == (cost(t.arch) > 3.0) for t in trials)
    assert calls == [SPACE.parse(t.arch) for t in trials if cost(t.arch) <= 3.0]  # the evaluator never saw the others
    rejected = [t for t in trials if t.state == "failed"]
    assert rejected and all("rejected without training" in t.error and "> limit 3" in t.error for t in rejected)
    assert all(t.metrics["latency_ms"] == cost(t.arch) for t in trials if t.ok)


def test_evolution_under_a_budget_finds_the_constrained_optimum_of_the_enumerated_space():
    limit = 3.0
    feasible = [a for a in SPACE.enumerate() if cost(a) <= limit]
    best = max(SPACE.score(a) for a in feasible)
    assert best < 1.0  # the unconstrained optimum is over the budget
    for mode, metric in (("reject", "val_accuracy"), ("penalty", "reward")):
        evaluator = Constrained(SPACE.evaluate, cost, limit=limit, mode=mode, alpha=0, beta=-1)
        search = RegularizedEvolution(SPACE, evaluator, population_size=10, sample_size=3, metric=metric, seed=1)
        search.run(150, progress=False)
        found = search.best()
        assert cost(found.arch) <= limit and SPACE.score(SPACE.parse(found.arch)) == best, (mode, found)


def test_penalty_reports_reward_and_cost_and_leaves_the_accuracy_alone():
    evaluator = Constrained(SPACE.evaluate, cost, limit=2.0, mode="penalty")
    arch = SPACE.target
    metrics = evaluator(arch)
    assert metrics["val_accuracy"] == SPACE.score(arch) == 1.0
    assert metrics["latency_ms"] == 5.0 and metrics["reward"] == pytest.approx(2.5 ** -0.07)
    nan = Constrained(lambda a: {"val_accuracy": math.nan}, cost, limit=2.0, mode="penalty")(('op0',) * 4)
    assert math.isnan(nan["reward"])  # a NaN accuracy stays a failure, never a reward


def test_bad_arguments_are_refused_when_the_constraint_is_made():
    with pytest.raises(InvalidValueError, match="mode='fast'.*reject"):
        Constrained(SPACE.evaluate, cost, limit=1.0, mode="fast")
    with pytest.raises(InvalidValueError, match="limit"):
        Constrained(SPACE.evaluate, cost, limit=-1.0)
    with pytest.raises(InvalidValueError, match="limit=0"):
        Constrained(SPACE.evaluate, cost, limit=0)
    with pytest.raises(InvalidTypeError, match="cost must be"):
        Constrained(SPACE.evaluate, "latency", limit=1.0)
    with pytest.raises(InvalidValueError, match="a cost is a finite number"):
        Constrained(SPACE.evaluate, lambda a: math.nan, limit=1.0)(('op0',) * 4)
    with pytest.raises(ConstraintViolation):
        Constrained(SPACE.evaluate, cost, limit=1.0)(('op2',) * 4)
