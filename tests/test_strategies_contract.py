"""The contract every search strategy passes, on a toy space with a known optimum.

Add a strategy by appending a factory `(space, evaluator, seed) -> Strategy` to ALL_STRATEGIES.
"""
import importlib.util
import json
import pickle
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from nasnb.history import History
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import (NSGA2, AutoMLZero, Hyperband, MetaQNN, OptunaSearch, PredictorGuided, RandomSearch,
                              RegularizedEvolution, Reinforce, SuccessiveHalving)

def budget_ignored(evaluator):
    """The toy has no training length: every budget scores the same (Hyperband asks with one)."""
    return lambda arch, budget=None: evaluator(arch)


ALL_STRATEGIES = [
    pytest.param(lambda space, evaluator, seed: RandomSearch(space, evaluator, seed=seed), id="RandomSearch"),
    pytest.param(lambda space, evaluator, seed: RegularizedEvolution(space, evaluator, seed=seed), id="RegularizedEvolution"),
    pytest.param(lambda space, evaluator, seed: Reinforce(space, evaluator, seed=seed), id="Reinforce"),
    pytest.param(lambda space, evaluator, seed: OptunaSearch(space, evaluator, seed=seed), id="OptunaSearch-TPE",
                 marks=pytest.mark.skipif(importlib.util.find_spec("optuna") is None, reason="optuna not installed")),
    pytest.param(lambda space, evaluator, seed: NSGA2(space, evaluator, seed=seed), id="NSGA2"),
    pytest.param(lambda space, evaluator, seed: MetaQNN(space, evaluator, seed=seed), id="MetaQNN"),
    pytest.param(lambda space, evaluator, seed: AutoMLZero(space, evaluator, metric="val_accuracy", seed=seed),
                 id="AutoMLZero"),
    pytest.param(lambda space, evaluator, seed: Hyperband(space, budget_ignored(evaluator), max_budget=27, seed=seed),
                 id="Hyperband"),
    # 2 members refitted every 25 trials, 30 candidates a step: the contract's 3 x 300 trials at a fraction of the cost
    pytest.param(lambda space, evaluator, seed: PredictorGuided(space, evaluator, members=2, refit_every=25, candidates=30,
                                                                 seed=seed),
                 id="PredictorGuided"),
    pytest.param(lambda space, evaluator, seed: SuccessiveHalving(space, budget_ignored(evaluator), max_budget=27,
                                                                  seed=seed), id="SuccessiveHalving"),
]


def record(history):
    """What must be identical between two runs (wall-clock seconds are not)."""
    return [(t.number, t.arch, t.metrics, t.info) for t in history]


@pytest.mark.parametrize("make", ALL_STRATEGIES)
def test_finds_known_optimum_on_toy_space(make):
    space = ToySpace(length=4, options=3)  # 81 archs, one optimum with score 1.0
    for seed in (0, 1, 2):
        search = make(space, space.evaluate, seed)
        search.run(300, progress=False)
        best = search.best()
        assert best.metrics["val_accuracy"] == 1.0, f"seed {seed}: best {best.arch} scores {best.metrics}"
        assert space.parse(best.arch) == space.target


@pytest.mark.parametrize("make", ALL_STRATEGIES)
def test_same_seed_same_history_other_seed_other_history(make):
    space = ToySpace(length=6, options=4)
    a = make(space, space.evaluate, 3).run(30, progress=False)
    b = make(space, space.evaluate, 3).run(30, progress=False)
    c = make(space, space.evaluate, 4).run(30, progress=False)
    assert record(a) == record(b)
    assert record(a) != record(c)


@pytest.mark.parametrize("make", ALL_STRATEGIES)
def test_checkpoint_resume_equals_uninterrupted_run(make, tmp_path):
    space = ToySpace(length=6, options=4)
    uninterrupted = make(space, space.evaluate, 7).run(25, progress=False)
    path = tmp_path / "search.ckpt"
    make(space, space.evaluate, 7).run(11, checkpoint=path, progress=False)
    torch.load(path / "state.pt", weights_only=True)  # must load without unpickling arbitrary objects
    journal = (path / "journal.jsonl").read_text().splitlines()
    assert len(journal) == 1 + 11 and [json.loads(line)["number"] for line in journal[1:]] == list(range(11))
    resumed = make(space, space.evaluate, 7)  # a fresh object, as after a kernel restart
    resumed.run(25, checkpoint=path, progress=False)
    assert record(resumed.history) == record(uninterrupted)


@pytest.mark.parametrize("make", ALL_STRATEGIES)
def test_ask_tell_by_hand_equals_step(make):
    space = ToySpace(length=5, options=3)
    stepped = make(space, space.evaluate, 1)
    for _ in range(12):
        stepped.step()
    by_hand = make(space, space.evaluate, 1)
    for _ in range(12):
        proposal = by_hand.ask()
        by_hand.tell(proposal, space.evaluate(proposal.arch))
    assert record(by_hand.history) == record(stepped.history)


@pytest.mark.parametrize("make", ALL_STRATEGIES)
def test_reset_subscribe_state_and_json(make):
    space = ToySpace(length=5, options=3)
    search = make(space, space.evaluate, 2)
    seen = []
    unsubscribe = search.subscribe(seen.append)
    search.run(8, progress=False)
    assert [t.number for t in seen] == list(range(8))
    first_run = record(search.history)
    json.dumps(search.state())  # views get plain JSON
    assert History.from_json(search.history.to_json()) == search.history
    search.reset()
    assert len(search.history) == 0
    unsubscribe()
    search.run(8, progress=False)
    assert record(search.history) == first_run
    assert len(seen) == 8, "an unsubscribed callback must not be called"


@pytest.mark.parametrize("make", ALL_STRATEGIES)
def test_parallel_evaluation_tells_in_ask_order_whoever_finishes_first(make):
    """Evaluations of varying length on three threads finish out of order; the history must be the
    one of asking three and telling those three in ask order, by hand, with no threads."""
    space = ToySpace(length=6, options=4)

    def uneven(arch):
        time.sleep(0.003 * (hash(arch) % 4))  # finishing order differs from asking order
        return space.evaluate(arch)

    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = make(space, uneven, 5).run(18, executor=pool, batch=3, progress=False)
    by_hand = make(space, space.evaluate, 5)
    while len(by_hand.history) < 18:
        for proposal in [by_hand.ask() for _ in range(3)]:
            by_hand.tell(proposal, space.evaluate(proposal.arch))
    assert record(threaded) == record(by_hand.history) and len(threaded) == 18


def test_random_search_in_parallel_equals_sequential():
    # Random search never looks at results, so batching cannot change what it proposes.
    space = ToySpace(length=6, options=4)
    sequential = RandomSearch(space, space.evaluate, seed=9).run(12, progress=False)
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = RandomSearch(space, space.evaluate, seed=9).run(12, executor=pool, progress=False)
    assert record(parallel) == record(sequential)


def test_toy_evaluator_pickles_for_process_pools():
    space = ToySpace(length=4, options=3)
    clone = pickle.loads(pickle.dumps(space.evaluate))
    assert clone(space.target) == {"val_accuracy": 1.0}
