"""Successive halving and Hyperband (nasnb/strategies/halving.py) and evaluator budgets.

The schedule is checked against Li et al. (2018), Table 1, and against the formulas worked by hand;
runs against a fake evaluator that records every call (arch, budget), so counts, budgets,
promotions and states can be recounted from the calls alone.
"""
import json
import math
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import nasnb
from nasnb.bench import Table, arch_index
from nasnb.errors import InvalidTypeError, InvalidValueError, ResumeMismatchError, UnknownNameError
from nasnb.evaluators import TableEvaluator, TrainEvaluator
from nasnb.spaces import NB201Space
from nasnb.spaces.toy import ToySpace
from nasnb.strategies.base import Strategy
from nasnb.strategies.halving import Hyperband, SuccessiveHalving, hyperband_schedule, max_bracket, rungs

SPACE = ToySpace(length=8, options=4)  # 65,536 archs: a bracket of 81 rarely draws one twice


class Recorder:
    """A fake evaluator: a value in {0, 1/3, 2/3, 1} from a checksum of (arch, budget), so rungs
    have ties and rank differently at each budget; it records every call."""

    def __init__(self, fail=()):
        self.calls, self.fail = [], set(fail)

    def value(self, arch, budget):
        return (zlib.crc32(f"{SPACE.format(arch)}|{budget}".encode()) % 4) / 3

    def __call__(self, arch, budget=None):
        self.calls.append((SPACE.format(arch), budget))
        if SPACE.format(arch) in self.fail:
            raise RuntimeError("this one fails")
        return {"val_accuracy": self.value(arch, budget), "seconds": float(budget)}


def record(history):
    return [(t.number, t.arch, t.metrics, t.info, t.state) for t in history]


# Li et al. 2018, Table 1 (R = 81, eta = 3): per bracket s, the n_i and the r_i of its rungs
PAPER = {4: ([81, 27, 9, 3, 1], [1, 3, 9, 27, 81]), 3: ([34, 11, 3, 1], [3, 9, 27, 81]),
         2: ([15, 5, 1], [9, 27, 81]), 1: ([8, 2], [27, 81]), 0: ([5], [81])}


def test_schedule_is_the_papers_table_1_and_the_formulas_by_hand():
    schedule = hyperband_schedule(81, eta=3)
    assert [b["bracket"] for b in schedule] == [4, 3, 2, 1, 0]
    for b in schedule:
        assert [n for n, _ in b["rungs"]] == PAPER[b["bracket"]][0]
        assert [r for _, r in b["rungs"]] == PAPER[b["bracket"]][1]
    # s=3 by hand: n = ceil(5/4 * 27) = ceil(33.75) = 34; n_1 = floor(34/3) = 11, n_2 = floor(34/9) = 3
    assert math.ceil(5 / 4 * 27) == 34 and (34 // 3, 34 // 9, 34 // 27) == (11, 3, 1)
    # R = 10, eta = 3: s_max = 2 (3^2 = 9 <= 10 < 27); budgets 10/9 -> 1, 10/3 -> 3, 10; s=1: ceil(3/2*3) = 5
    assert hyperband_schedule(10) == [{"bracket": 2, "rungs": [[9, 1], [3, 3], [1, 10]]},
                                      {"bracket": 1, "rungs": [[5, 3], [1, 10]]}, {"bracket": 0, "rungs": [[3, 10]]}]
    assert max_bracket(81, 3, min_budget=3) == 3 and max_bracket(80, 3) == 3 and max_bracket(2, 3) == 0
    # eta = 2, R = 8: s_max = 3, n = ceil(4/(s+1) * 2^s) = 8, 6, 4, 4
    assert [b["rungs"][0] for b in hyperband_schedule(8, eta=2)] == [[8, 1], [6, 2], [4, 4], [4, 8]]


def test_hyperband_makes_exactly_the_papers_evaluations_then_starts_again():
    evaluator = Recorder()
    search = Hyperband(SPACE, evaluator, max_budget=81, eta=3, seed=0)
    per_round = sum(sum(PAPER[s][0]) for s in PAPER)  # 121 + 49 + 21 + 10 + 5
    assert per_round == 206
    search.run(per_round + 3, progress=False)
    assert [budget for _, budget in evaluator.calls] == [t.info["budget"] for t in search.history]
    counts = {}
    for t in search.history[:per_round]:
        assert t.info["round"] == 0
        key = (t.info["bracket"], t.info["rung"])
        counts[key] = counts.get(key, 0) + 1
        assert t.info["budget"] == PAPER[t.info["bracket"]][1][t.info["rung"]]
    assert counts == {(s, i): n for s, (ns, _) in PAPER.items() for i, n in enumerate(ns)}
    # and in the paper's order: bracket 4's rungs, then bracket 3's, ...
    order = [(t.info["bracket"], t.info["rung"]) for t in search.history[:per_round]]
    assert order == sorted(order, key=lambda sr: (-sr[0], sr[1]))
    assert [(t.info["round"], t.info["bracket"], t.info["rung"]) for t in search.history[per_round:]] == [(1, 4, 0)] * 3
    simulated = sum(t.metrics["seconds"] for t in search.history[:per_round])
    assert simulated == sum(n * r for ns, rs in PAPER.values() for n, r in zip(ns, rs))  # each from scratch


def test_promoted_are_the_top_floor_n_over_eta_by_metric_ties_to_the_first_drawn():
    evaluator = Recorder()
    search = Hyperband(SPACE, evaluator, max_budget=27, seed=1)  # brackets 3, 2, 1, 0
    search.run(300, progress=False)
    by_rung = {}
    for t in search.history:
        by_rung.setdefault((t.info["round"], t.info["bracket"], t.info["rung"]), []).append(t)
    ties_at_the_cut = 0
    checked = 0
    for (r, s, i), trials in by_rung.items():
        after = by_rung.get((r, s, i + 1))
        if after is None:
            continue
        k = len(trials) // 3
        ranked = sorted(trials, key=lambda t: (-t.metrics["val_accuracy"], t.info["config"]))  # by hand
        assert [t.info["promoted_from"] for t in after] == [t.number for t in ranked[:k]]
        assert [t.arch for t in after] == [t.arch for t in ranked[:k]]
        ties_at_the_cut += ranked[k - 1].metrics["val_accuracy"] == ranked[k].metrics["val_accuracy"]
        entry = next(e for e in rungs(search.history) if (e["round"], e["bracket"], e["rung"]) == (r, s, i))
        assert entry["promoted"] == [t.number for t in ranked[:k]]
        assert sorted(entry["cut"]) == sorted(t.number for t in ranked[k:])
        checked += 1
    assert checked > 10 and ties_at_the_cut > 3  # the tie rule was needed, not only the ranking


def test_partial_evaluations_are_pruned_and_best_is_the_best_at_the_full_budget():
    class HighEarly(Recorder):  # the lower the budget, the higher the score: a trap for the wrong best()
        def value(self, arch, budget):
            return super().value(arch, budget) / budget + (1.0 if budget < 9 else 0.0)

    search = Hyperband(SPACE, HighEarly(), max_budget=9, seed=2)
    search.run(22 + 9, progress=False)  # a round (9+3+1, 5+1, 3) and rung 0 of the next
    for t in search.history:
        assert t.state == ("complete" if t.info["rung"] == t.info["bracket"] else "pruned"), t
        assert (t.state == "complete") == (t.info["budget"] == 9)
    assert search.history.count("pruned") == 31 - 5 and search.history.count("complete") == 5
    full = [t for t in search.history if t.info["budget"] == 9]
    by_hand = max(full, key=lambda t: (t.metrics["val_accuracy"], -t.number))
    assert search.best() is by_hand and max(t.metrics["val_accuracy"] for t in search.history) > 1.0
    assert SuccessiveHalving(SPACE, Recorder(), max_budget=9, seed=0).best() is None


def test_a_failed_evaluation_is_never_promoted_and_a_short_rung_promotes_fewer():
    probe = SuccessiveHalving(SPACE, Recorder(), max_budget=9, num_configs=9, seed=4)
    first = [SPACE.format(probe.ask().arch) for _ in range(9)]
    evaluator = Recorder(fail=first[1:])  # 8 of the 9 fail at rung 0: one place of 3 is filled
    search = SuccessiveHalving(SPACE, evaluator, max_budget=9, num_configs=9, seed=4)
    search.run(11, progress=False)
    states = [t.state for t in search.history]
    assert states[:9] == ["pruned"] + ["failed"] * 8 and states[9:] == ["pruned", "complete"]
    assert [t.info["promoted_from"] for t in search.history[9:]] == [0, 9]


@pytest.mark.parametrize("proposer", ["random", "evolution"])
def test_same_seed_same_history_and_a_resume_equals_the_uninterrupted_run(proposer, tmp_path):
    make = lambda seed: Hyperband(SPACE, Recorder(), max_budget=9, proposer=proposer, seed=seed)  # noqa: E731
    uninterrupted = make(5).run(50, progress=False)
    assert record(make(5).run(50, progress=False)) == record(uninterrupted)
    assert record(make(6).run(50, progress=False)) != record(uninterrupted)
    path = tmp_path / "hb"
    make(5).run(17, checkpoint=path, progress=False)  # stops inside bracket 1's rung 0
    torch.load(path / "state.pt", weights_only=True)
    resumed = make(5)
    resumed.run(50, checkpoint=path, progress=False)
    assert record(resumed.history) == record(uninterrupted)
    with pytest.raises(ResumeMismatchError, match="eta"):
        Hyperband(SPACE, Recorder(), max_budget=9, eta=2, proposer=proposer, seed=5).run(60, checkpoint=path,
                                                                                         progress=False)
    state = make(5)
    state.run(7, progress=False)
    again = make(5)
    again.load_state_dict(state.state_dict())
    again.run(30, progress=False)
    assert record(again.history) == record(uninterrupted)[:30]


def test_executor_batches_equal_asking_and_telling_by_hand_and_pass_the_budgets():
    with ThreadPoolExecutor(max_workers=4) as pool:
        evaluator = Recorder()
        threaded = Hyperband(SPACE, evaluator, max_budget=9, seed=3).run(40, executor=pool, batch=4, progress=False)
    assert sorted(evaluator.calls) == sorted((t.arch, t.info["budget"]) for t in threaded)
    by_hand, fake = Hyperband(SPACE, Recorder(), max_budget=9, seed=3), Recorder()
    while len(by_hand.history) < 40:
        for p in [by_hand.ask() for _ in range(4)]:
            by_hand.tell(p, fake(p.arch, budget=p.info["budget"]))
    assert record(threaded) == record(by_hand.history)
    # 4 at a time: rung 0 of bracket 2 has 9 places, so its third batch opens bracket 1 beside it
    assert [t.info["bracket"] for t in threaded[:12]] == [2] * 9 + [1] * 3


def test_evolution_mutates_the_best_trial_at_the_highest_budget_reached():
    search = SuccessiveHalving(SPACE, Recorder(), max_budget=9, proposer="evolution", random_fraction=0.0, seed=7)
    search.run(13 * 3, progress=False)  # three brackets of 9 + 3 + 1
    history = search.history
    for t in history:
        if t.info["rung"] > 0:
            assert t.info["kind"] == history[t.info["promoted_from"]].info["kind"]
            continue
        told = [u for u in history[:t.number]]
        if not told:
            assert t.info["kind"] == "random" and t.info["parent"] is None
            continue
        top = max(told, key=lambda u: (u.info["budget"], u.metrics["val_accuracy"], -u.number))  # by hand
        assert t.info["kind"] == "mutation" and t.info["parent"] == top.number
        differ = sum(a != b for a, b in zip(SPACE.parse(t.arch), SPACE.parse(top.arch)))
        assert differ == 1
    everything_random = SuccessiveHalving(SPACE, Recorder(), max_budget=9, proposer="evolution", random_fraction=1.0)
    everything_random.run(26, progress=False)
    assert {t.info["kind"] for t in everything_random.history} == {"random"}


def test_a_dropped_evaluation_is_asked_for_again():
    search = SuccessiveHalving(SPACE, Recorder(), max_budget=3, seed=0)  # 3 at 1 epoch, then 1 at 3
    a, b = search.ask(), search.ask()
    search.drop(b)
    c = search.ask()
    assert c.arch == b.arch and c.info == b.info and c.info["config"] == 1
    for p in (a, c, search.ask()):
        search.tell(p, {"val_accuracy": 0.5})
    assert search.ask().info["rung"] == 1


def test_bad_arguments_are_refused_at_the_call():
    with pytest.raises(InvalidTypeError, match="budget"):
        Hyperband(SPACE, SPACE.evaluate)  # takes no budget
    with pytest.raises(InvalidValueError, match="max_budget"):
        Hyperband(SPACE, Recorder())  # no epochs to take R from
    for kwargs, error, name in [(dict(eta=1), InvalidValueError, "eta"),
                                (dict(min_budget=10), InvalidValueError, "min_budget"),
                                (dict(max_budget=0), InvalidValueError, "max_budget"),
                                (dict(proposer="bohb"), UnknownNameError, "proposer"),
                                (dict(random_fraction=1.5), InvalidValueError, "random_fraction")]:
        with pytest.raises(error, match=name):
            Hyperband(SPACE, Recorder(), **{"max_budget": 9, **kwargs})
    with pytest.raises(InvalidValueError, match="eta=2 start a bracket with 1073741824"):
        Hyperband(SPACE, Recorder(), max_budget=2 ** 30, eta=2)  # 2^30 places at 1 epoch: refused, not allocated
    with pytest.raises(InvalidValueError, match="num_configs.*>= 9"):
        SuccessiveHalving(SPACE, Recorder(), max_budget=9, num_configs=8)  # n_2 = floor(8/9) = 0 would reach R

    class Budgeted(Strategy):  # any strategy may ask for budgets; the base refuses a budget-less evaluator
        def propose(self):
            return SPACE.sample(self.rng), {"budget": 2}

    search = Budgeted(SPACE, SPACE.evaluate)
    with pytest.raises(InvalidTypeError, match="budget=2"):
        search.step()
    assert len(search.history) == 0 and len(search.pending) == 1
    seen = []
    Budgeted(SPACE, lambda arch, **kw: seen.append(kw) or {"val_accuracy": 1.0}).run(2, progress=False)
    assert seen == [{"budget": 2}] * 2


# ---------------------------------------------------------------- evaluators at a budget

@pytest.fixture(scope="module")
def two_row_table():
    """Two classes: every cell in row 0 but one, which is row 1; 2 seeds, 4 epochs, counts by hand."""
    nb201 = NB201Space()
    odd = nb201.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    class_of = np.zeros(len(nb201), dtype=np.uint16)
    class_of[arch_index(odd)] = 1
    val = np.array([[[10, 20, 30, 40], [20, 30, 40, 50]], [[50, 60, 70, 80], [60, 70, 80, 90]]], dtype=np.uint16)
    test = np.array([[45, 55], [85, 95]], dtype=np.uint16)
    seconds = np.array([[8.0, 12.0], [20.0, 40.0]], dtype=np.float32)
    meta = {"name": "two-rows", "seeds": [0, 1], "val_size": 100, "test_size": 100}
    table = Table("two-rows", meta, np.array([0, arch_index(odd)], dtype=np.int32), class_of, val, test, seconds,
                  np.zeros(len(nb201), dtype=np.int64), np.zeros(len(nb201), dtype=np.int64))
    return table, odd


def test_table_evaluator_budget_is_the_curve_after_b_epochs_and_b_epochs_of_seconds(two_row_table):
    table, odd = two_row_table
    evaluator = TableEvaluator(table)
    assert evaluator.max_budget == 4 and evaluator.epochs == 4
    q = evaluator(odd, budget=2)  # mean of the seeds: (60 + 70) / 2 correct of 100 after epoch 2
    assert q["val_accuracy"] == 0.65 and q["val_curve"] == [0.55, 0.65] and q["epochs"] == 2
    assert q["seconds"] == pytest.approx((20 + 40) / 2 * 2 / 4) and q["test_accuracy"] == 0.9
    other = NB201Space().sample(0)
    assert evaluator(other, budget=1)["val_accuracy"] == 0.15 and evaluator(other, budget=1)["seconds"] == 2.5
    assert evaluator(other)["val_accuracy"] == 0.45 == evaluator(other, budget=4)["val_accuracy"]
    assert TableEvaluator(table, seed=1)(odd, budget=3)["val_accuracy"] == 0.8
    for bad, error in [(5, InvalidValueError), (0, InvalidValueError), (2.0, InvalidTypeError), (True, InvalidTypeError)]:
        with pytest.raises(error, match="budget"):
            evaluator(odd, budget=bad)
    with pytest.raises(InvalidValueError, match="max_budget=5.*at most 4"):
        Hyperband(NB201Space(), evaluator, max_budget=5)
    search = Hyperband(NB201Space(), evaluator, seed=0)  # R = the evaluator's 4 epochs: brackets 1, 0
    assert search.schedule == [{"bracket": 1, "rungs": [[3, 1], [1, 4]]}, {"bracket": 0, "rungs": [[2, 4]]}]
    search.run(6, progress=False)
    per_epoch = {0: (8 + 12) / 2 / 4, 1: (20 + 40) / 2 / 4}
    for t in search.history:
        assert t.metrics["seconds"] == pytest.approx(t.info["budget"] * per_epoch[table.row(t.arch)])


def test_train_evaluator_budget_trains_b_epochs_from_scratch():
    data = nasnb.data.load("digits", seed=0).subset(train_size=40, val_size=40, seed=0)
    kwargs = dict(device="cpu", test=False, count_flops=False, batch_size=20)
    evaluator = TrainEvaluator(data, epochs=2, **kwargs)
    arch = NB201Space().sample(3)
    short = evaluator(arch, budget=1)
    reference = TrainEvaluator(data, epochs=1, **kwargs)(arch)  # one epoch, its own schedule, same seed
    assert short["epochs"] == 1 and len(short["val_curve"]) == 1
    for key in ("val_accuracy", "val_curve", "train_loss", "train_accuracy"):
        assert short[key] == reference[key]
    full = evaluator(arch)
    assert full["epochs"] == 2 and len(full["val_curve"]) == 2 and evaluator(arch, budget=2) == full
    evaluator(arch, budget=1)
    assert evaluator.trainings == 2  # one per budget, each once
    with pytest.raises(InvalidValueError, match="budget"):
        evaluator(arch, budget=0)
    assert json.dumps(evaluator.settings())  # settings unchanged by budgets: still plain JSON
