"""The search core: failed trials, pending proposals, resume checks, all-or-nothing loads, argument
errors, time budgets, process pools, and a run killed mid-way (SIGKILL, for real)."""
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest
import torch

from nasnb.errors import (EvaluationError, InvalidTypeError, InvalidValueError, NasnbError, ResumeMismatchError,
                          UnknownNameError)
from nasnb.history import Step, Trial
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import RandomSearch, RegularizedEvolution, Reinforce, Search
from nasnb.strategies.base import jsonable


def record(history):
    return [(t.number, t.arch, t.metrics, t.info) for t in history]


def test_tell_needs_an_ask_and_the_metric():
    space = ToySpace()
    search = RandomSearch(space, space.evaluate)
    with pytest.raises(ValueError, match="call ask"):
        search.tell(space.target, {"val_accuracy": 1.0})


def test_a_checkpoint_of_another_strategy_is_refused(tmp_path):
    space = ToySpace()
    search = RandomSearch(space, space.evaluate)
    state = search.state_dict()
    state["strategy"] = "RegularizedEvolution"
    with pytest.raises(ValueError, match="of a RegularizedEvolution search"):
        search.load_state_dict(state)


def test_time_budget_stops_the_run():
    space = ToySpace()
    slow = lambda arch: (time.sleep(0.05), space.evaluate(arch))[1]
    history = RandomSearch(space, slow).run(1000, time_budget=0.3, progress=False)
    assert 2 <= len(history) < 20


def test_process_pool_gives_the_sequential_history():
    space = ToySpace(length=5, options=3)
    sequential = RandomSearch(space, space.evaluate, seed=4).run(8, progress=False)
    with ProcessPoolExecutor(max_workers=2) as pool:
        parallel = RandomSearch(space, space.evaluate, seed=4).run(8, executor=pool, progress=False)
    assert record(parallel) == record(sequential)


def test_jsonable_converts_numpy_and_tensors():
    import numpy as np

    assert jsonable({"a": np.float32(0.5), "b": (1, 2), "c": torch.tensor([1.0])}) == {"a": 0.5, "b": [1, 2], "c": [1.0]}
    with pytest.raises(TypeError, match="JSON-friendly"):
        jsonable({"model": object()})


KILLED_RUN = textwrap.dedent("""
    import sys, time
    from nasnb.spaces.toy import ToySpace
    from nasnb.strategies import {strategy}
    space = ToySpace(length=6, options=4)
    slow = lambda arch: (time.sleep(0.15), space.evaluate(arch))[1]
    search = {strategy}(space, slow, seed=11{kwargs})
    search.run(30, checkpoint=sys.argv[1], progress=False)
""")

KILL_CASES = [("RandomSearch", ""), ("RegularizedEvolution", ", population_size=5, sample_size=2"), ("Reinforce", "")]


@pytest.mark.parametrize("strategy,kwargs", KILL_CASES)
def test_killed_process_loses_no_finished_trial_and_resumes_exactly(strategy, kwargs, tmp_path):
    import nasnb.strategies as strategies

    path = tmp_path / "run.ckpt"
    script = KILLED_RUN.format(strategy=strategy, kwargs=kwargs)
    process = subprocess.Popen([sys.executable, "-c", script, str(path)])
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if path.exists() and _trials_in(path) >= 6:
                break
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)  # no clean shutdown: as a crashed kernel
    finally:
        process.wait()
    saved = _trials_in(path)
    assert 6 <= saved < 30, f"the killed run saved {saved} trials"

    space = ToySpace(length=6, options=4)
    extra = parse_kwargs(kwargs)
    resumed = getattr(strategies, strategy)(space, space.evaluate, seed=11, **extra)
    resumed.run(30, checkpoint=path, progress=False)
    uninterrupted = getattr(strategies, strategy)(space, space.evaluate, seed=11, **extra).run(30, progress=False)
    assert record(resumed.history) == record(uninterrupted)


def _trials_in(path) -> int:
    journal = path / "journal.jsonl"
    return max(0, journal.read_text().count("\n") - 1) if journal.exists() else 0  # lines after the header


def parse_kwargs(kwargs: str) -> dict:
    """', population_size=5' -> {'population_size': 5}: the same keyword ints the script passes."""
    pairs = [p.strip() for p in kwargs.split(",") if p.strip()]
    return {k.strip(): int(v) for k, v in (p.split("=") for p in pairs)}


# ---------------------------------------------------------------- failed trials

SPACE = ToySpace(length=5, options=3)


def nan_for_op0_first(arch):
    """The toy score, but NaN when the first position is op0: a third of the space 'diverges'."""
    return {"val_accuracy": math.nan if arch[0] == "op0" else SPACE.score(arch)}


@pytest.mark.parametrize("make", [
    lambda ev: RandomSearch(SPACE, ev, seed=1),
    lambda ev: RegularizedEvolution(SPACE, ev, population_size=4, sample_size=2, seed=1),
    lambda ev: Reinforce(SPACE, ev, seed=1),
], ids=["random", "evolution", "reinforce"])
def test_a_nan_metric_is_a_failed_trial_never_the_best_and_never_learnt_from(make):
    search = make(nan_for_op0_first)
    search.run(40, progress=False)
    failed = [t for t in search.history if t.state == "failed"]
    assert failed and all(t.arch.startswith("op0") and "nan" in t.error for t in failed)
    complete = [t for t in search.history if t.ok]
    assert len(failed) + len(complete) == 40
    best = search.best()
    assert best.ok and best.value("val_accuracy") == max(t.value("val_accuracy") for t in complete)
    assert search.history.best_so_far()[-1] == best.value("val_accuracy")
    if isinstance(search, RegularizedEvolution):
        assert not {t.number for t in failed} & set(search.population)
        assert len(search.population) == 4
    if isinstance(search, Reinforce):  # the baseline is the moving average of the complete rewards only
        b = None
        for t in complete:
            b = t.value("val_accuracy") if b is None else b
            b = 0.95 * b + 0.05 * t.value("val_accuracy")
        assert search.baseline == pytest.approx(b, abs=1e-12)


def test_a_controller_told_only_failures_never_moves():
    search = Reinforce(SPACE, lambda arch: {"val_accuracy": math.inf}, seed=0)
    before = {k: v.clone() for k, v in search.controller.state_dict().items()}
    search.run(6, progress=False, max_failures=None)
    assert search.history.count("failed") == 6 and search.baseline is None and not search.optimizer.state
    assert all(torch.equal(before[k], v) for k, v in search.controller.state_dict().items())
    assert search.best() is None and search.history.best_so_far() == [None] * 6


def test_an_evaluator_that_raises_gives_a_failed_trial_with_its_error_and_the_search_goes_on():
    def evaluator(arch):
        if arch[1] == "op2":
            raise RuntimeError("CUDA out of memory (pretend)")
        return SPACE.evaluate(arch)

    history = RandomSearch(SPACE, evaluator, seed=3).run(30, progress=False)
    failed = [t for t in history if not t.ok]
    assert failed and len(failed) < 30 and all(t.arch.split("-")[1] == "op2" for t in failed)
    assert all(t.error.startswith("RuntimeError: CUDA out of memory (pretend)") and t.metrics == {} for t in failed)
    assert [t.arch.split("-")[1] == "op2" for t in history] == [t.state == "failed" for t in history]


@pytest.mark.parametrize("result", [None, "0.9", 0.9, {"accuracy": 0.9}, {"val_accuracy": True},
                                    {"val_accuracy": "0.9"}, {"val_accuracy": -math.inf}, {"val_accuracy": object()}])
def test_a_result_without_a_finite_metric_is_a_failed_trial(result):
    search = RandomSearch(SPACE, lambda arch: result, seed=0)
    trial = search.step()
    assert trial.state == "failed" and trial.error and search.best() is None


def test_run_stops_after_max_failures_in_a_row_and_keeps_them():
    def broken(arch):
        raise KeyError("val_acc")

    search = RandomSearch(SPACE, broken)
    with pytest.raises(EvaluationError, match="last 10 trials failed.*KeyError") as stopped:
        search.run(100, progress=False)
    first, _, trace = str(stopped.value).partition("\n\n")  # the reason on one line, then where it was raised
    assert "max_failures=None" in first and trace.startswith("The last one, where it was raised:\nTraceback")
    assert 'raise KeyError("val_acc")' in trace and trace.rstrip().endswith("KeyError: 'val_acc'")
    assert search.history[-1].error.partition("\n")[0].startswith("KeyError: 'val_acc' (at ")
    with pytest.raises(UnknownNameError, match=r"it failed: KeyError: 'val_acc' \(at [^\n]*\); it reported \[\]"):
        search.history[-1].value("val_accuracy")
    assert len(search.history) == 10 and search.history.count("failed") == 10
    assert len(RandomSearch(SPACE, broken).run(15, progress=False, max_failures=None)) == 15


def test_a_pruned_trial_is_recorded_but_never_the_best():
    search = RandomSearch(SPACE, SPACE.evaluate)
    first = search.ask()
    pruned = search.tell(first, {"val_accuracy": 0.99}, pruned=True)
    assert pruned.state == "pruned" and search.best() is None
    second = search.ask()
    complete = search.tell(second, {"val_accuracy": 0.1})
    assert search.best() is complete and search.history.count("pruned") == 1


def test_a_batch_tells_every_finished_evaluation_when_one_of_them_fails():
    bad = SPACE.parse("op2-op2-op2-op2-op2")

    def evaluator(arch):
        if arch == bad:
            raise ValueError("diverged")
        time.sleep(0.01)
        return SPACE.evaluate(arch)

    search = RandomSearch(SPACE, evaluator, seed=0)
    proposals = [search.ask() for _ in range(3)]
    search.drop()
    search._pending = [type(proposals[0])(bad, {})] + proposals[1:]  # a batch whose first member fails
    with ThreadPoolExecutor(3) as pool:
        search.run(3, executor=pool, batch=3, progress=False)
    assert [t.state for t in search.history] == ["failed", "complete", "complete"] and not search.pending
    assert [t.arch for t in search.history][1:] == [SPACE.format(p.arch) for p in proposals[1:]]


def test_thread_pool_results_are_told_in_ask_order_whoever_finishes_first():
    """Evaluations that finish in reverse order are still told in the order they were asked: the
    threaded run equals asking three, then telling three, by hand with no threads."""
    def slow_first(arch):
        time.sleep(0.02 * (3 - int(arch[0][2])))  # op0 sleeps longest: finishes last
        return SPACE.evaluate(arch)

    with ThreadPoolExecutor(3) as pool:
        threaded = RegularizedEvolution(SPACE, slow_first, population_size=3, sample_size=2, seed=4)
        threaded.run(12, executor=pool, batch=3, progress=False)
    by_hand = RegularizedEvolution(SPACE, SPACE.evaluate, population_size=3, sample_size=2, seed=4)
    while len(by_hand.history) < 12:
        for proposal in [by_hand.ask() for _ in range(3)]:
            by_hand.tell(proposal, SPACE.evaluate(proposal.arch))
    assert record(threaded.history) == record(by_hand.history)


# ---------------------------------------------------------------- pending proposals


def test_drop_forgets_pending_proposals_without_distorting_the_random_start():
    """Proposals asked and dropped do not count towards evolution's P random members."""
    search = RegularizedEvolution(SPACE, SPACE.evaluate, population_size=3, sample_size=2, seed=0)
    asked = [search.ask(), search.ask()]
    assert search.drop() == asked and search.pending == []
    search.run(4, progress=False)
    assert [t.info["kind"] for t in search.history] == ["random", "random", "random", "mutation"]
    with pytest.raises(InvalidValueError, match="did not ask for"):
        search.drop(asked[0])


def test_pending_proposals_are_part_of_the_state_and_evaluated_first():
    search = RandomSearch(SPACE, SPACE.evaluate, seed=5)
    asked = [search.ask(), search.ask()]
    state = search.state_dict()
    again = RandomSearch(SPACE, SPACE.evaluate, seed=5)
    again.load_state_dict(state)
    assert [p.arch for p in again.pending] == [p.arch for p in asked]
    assert [again.step().arch, again.step().arch] == [SPACE.format(p.arch) for p in asked]
    assert again.pending == []


# ---------------------------------------------------------------- resume checks


def evolution(seed=0, space=SPACE, evaluator=SPACE.evaluate, **kwargs):
    settings = {"population_size": 4, "sample_size": 2, **kwargs}
    return RegularizedEvolution(space, evaluator, seed=seed, **settings)


class Settled:
    """An evaluator with settings, as TrainEvaluator has (its epochs are part of the run)."""

    def __init__(self, epochs):
        self.epochs = epochs

    def settings(self):
        return {"evaluator": "Settled", "epochs": self.epochs}

    def __call__(self, arch):
        return SPACE.evaluate(arch)


@pytest.mark.parametrize("other,named", [
    (lambda: evolution(seed=1), "seed=0 there, 1 here"),
    (lambda: evolution(population_size=5), "population_size=4 there, 5 here"),
    (lambda: evolution(metric="test_accuracy"), "metric='val_accuracy' there, 'test_accuracy' here"),
    (lambda: evolution(space=ToySpace(length=5, options=3, target=[0, 0, 0, 0, 0])), "space="),
    (lambda: evolution(evaluator=Settled(5)), "evaluator.epochs=3 there, 5 here"),
    (lambda: RandomSearch(SPACE, Settled(3)), "search='RegularizedEvolution' there, 'RandomSearch' here"),
])
def test_resume_refuses_another_run_names_both_values_and_changes_nothing(other, named, tmp_path):
    path = tmp_path / "evo.ckpt"
    evolution(evaluator=Settled(3)).run(5, checkpoint=path, progress=False)
    files = {p.name: p.read_bytes() for p in path.iterdir()}
    search = other()
    with pytest.raises(ResumeMismatchError) as info:
        search.run(10, checkpoint=path, progress=False)
    assert named in str(info.value) and "another checkpoint path" in str(info.value)
    assert len(search.history) == 0, "nothing may run on after a refused resume"
    assert {p.name: p.read_bytes() for p in path.iterdir()} == files


def test_a_search_holding_trials_is_never_replaced_by_an_older_file(tmp_path):
    path = tmp_path / "evo.ckpt"
    search = evolution()
    search.run(5, checkpoint=path, progress=False)
    search.run(8, progress=False)  # three more, not saved
    search.run(10, checkpoint=path, progress=False)  # the file is older: it catches up, nothing reverts
    assert record(search.history) == record(evolution().run(10, progress=False))
    assert len((path / "journal.jsonl").read_text().splitlines()) == 1 + 10


def test_a_search_holding_other_trials_is_refused(tmp_path):
    path = tmp_path / "evo.ckpt"
    evolution().run(5, checkpoint=path, progress=False)
    search = evolution()
    proposal = search.ask()
    search.tell(proposal, {"val_accuracy": 0.123})  # not what the saved run's evaluator said
    with pytest.raises(ResumeMismatchError, match="differ from record 0"):
        search.run(8, checkpoint=path, progress=False)
    assert len(search.history) == 1


def test_a_fresh_search_continues_a_newer_file(tmp_path):
    path = tmp_path / "evo.ckpt"
    evolution().run(9, checkpoint=path, progress=False)
    search = evolution()
    search.resume(path)
    assert len(search.history) == 9
    assert record(search.run(12, progress=False)) == record(evolution().run(12, progress=False))


# ---------------------------------------------------------------- all-or-nothing loads


def _snapshot(search):
    state = search.state_dict()
    return (state["rng"], state["history"], state["pending"], json.dumps(state["extra"], default=str),
            list(search.population))


@pytest.mark.parametrize("corrupt", [
    lambda s: s.update(rng="{not json"),
    lambda s: s.update(rng=json.dumps({"bit_generator": "MT19937", "state": 1})),
    lambda s: s.update(history='{"metric": "val_accuracy", "records": [{"number": 3}]}'),
    lambda s: s.update(pending=json.dumps([["op9-op9", {}]])),
    lambda s: s.update(extra={}),
    lambda s: s.update(extra={"population": ["x"]}),
    lambda s: s.update(torch_generator=torch.zeros(3)),
    lambda s: s.pop("rng"),
    lambda s: s.update(strategy="Reinforce"),
])
def test_load_state_dict_is_all_or_nothing(corrupt):
    good = evolution(seed=1)
    good.run(6, progress=False)
    state = good.state_dict()
    corrupt(state)
    search = evolution(seed=1)
    search.run(3, progress=False)
    before = _snapshot(search)
    with pytest.raises(NasnbError):
        search.load_state_dict(state)
    assert _snapshot(search) == before
    search.run(8, progress=False)  # and it still works
    assert record(search.history) == record(evolution(seed=1).run(8, progress=False))


# ---------------------------------------------------------------- arguments, at the call


@pytest.mark.parametrize("call,named", [
    (lambda: RandomSearch(SPACE, SPACE.evaluate, seed=-1), "seed"),
    (lambda: RandomSearch(SPACE, SPACE.evaluate, seed=1.5), "seed"),
    (lambda: RandomSearch(SPACE, SPACE.evaluate, seed=True), "seed"),
    (lambda: RandomSearch(SPACE, SPACE.evaluate, metric=""), "metric"),
    (lambda: RandomSearch(SPACE, 42), "evaluator"),
    (lambda: RandomSearch("nb201", SPACE.evaluate), "space"),
    (lambda: RandomSearch(SPACE, SPACE.evaluate).run(-1), "n must be"),
    (lambda: RandomSearch(SPACE, SPACE.evaluate).run(2.5), "n must be"),
    (lambda: RandomSearch(SPACE, SPACE.evaluate).run(3, time_budget=0), "time_budget"),
    (lambda: RandomSearch(SPACE, SPACE.evaluate).run(3, batch=0), "batch"),
    (lambda: RandomSearch(SPACE, SPACE.evaluate).run(3, max_failures=0), "max_failures"),
    (lambda: RandomSearch(SPACE, SPACE.evaluate).run(3, executor="threads"), "executor"),
    (lambda: RandomSearch(SPACE, SPACE.evaluate).subscribe(None), "subscribe"),
    (lambda: RegularizedEvolution(SPACE, SPACE.evaluate, population_size=2.0), "population_size"),
    (lambda: RegularizedEvolution(SPACE, SPACE.evaluate, sample_size=0), "sample_size"),
    (lambda: RegularizedEvolution(SPACE, SPACE.evaluate, aging=1), "aging"),
    (lambda: RegularizedEvolution(SPACE, SPACE.evaluate, crossover_prob=1.5), "crossover_prob"),
    (lambda: Reinforce(SPACE, SPACE.evaluate, lr=0), "lr"),
    (lambda: Reinforce(SPACE, SPACE.evaluate, lr=math.nan), "lr"),
    (lambda: Reinforce(SPACE, SPACE.evaluate, baseline_decay=1.0), "baseline_decay"),
    (lambda: Reinforce(SPACE, SPACE.evaluate, batch_size=True), "batch_size"),
    (lambda: Reinforce(SPACE, SPACE.evaluate, temperature=-1), "temperature"),
])
def test_bad_arguments_fail_at_the_call_naming_the_argument(call, named):
    with pytest.raises(NasnbError) as info:
        call()
    message = str(info.value)
    assert named in message and "got" in message, message  # the argument, and the value given


class Reporting:
    metrics = ("val_accuracy", "params")

    def __call__(self, arch):
        return {"val_accuracy": 1.0, "params": 3}


def test_a_metric_the_evaluator_does_not_report_is_refused_at_construction():
    with pytest.raises(InvalidValueError, match="metric='test_accuracy', but the evaluator reports"):
        RandomSearch(SPACE, Reporting(), metric="test_accuracy")
    assert RandomSearch(SPACE, Reporting(), metric="params").metric == "params"


def test_tell_checks_its_arguments_before_changing_anything():
    search = RandomSearch(SPACE, SPACE.evaluate)
    proposal = search.ask()
    with pytest.raises(InvalidValueError, match="seconds"):
        search.tell(proposal, {"val_accuracy": 1.0}, seconds=-1)
    with pytest.raises(InvalidTypeError, match="seconds"):
        search.tell(proposal, {"val_accuracy": 1.0}, seconds="fast")
    assert search.pending == [proposal] and len(search.history) == 0


# ---------------------------------------------------------------- a Search whose steps are not trials


class CountingSearch(Search):
    """A stand-in for a one-shot search: each step draws a 'loss' and records a Step."""

    def __init__(self, space, *, scale: float = 1.0, seed: int = 0):
        super().__init__(space, metric="val_accuracy", seed=seed)
        self.scale, self.steps_taken = scale, 0

    def settings(self):
        return {**super().settings(), "scale": self.scale}

    def step(self):
        self.steps_taken += 1
        loss = float(self.rng.random()) * self.scale
        return self._record(Step(len(self.history), {"train_loss": loss, "val_accuracy": 1 - loss},
                                 info={"alphas": [[0.5, 0.5]]}, arch=self.space.format(self.space.sample(self.rng))))

    def _extra_state(self):
        return {"steps_taken": self.steps_taken}

    def _load_extra_state(self, state):
        self.steps_taken = int(state["steps_taken"])


def test_a_search_of_steps_records_checkpoints_resumes_and_resets(tmp_path):
    uninterrupted = CountingSearch(SPACE, seed=3).run(9, progress=False)
    path = tmp_path / "oneshot.ckpt"
    CountingSearch(SPACE, seed=3).run(4, checkpoint=path, progress=False)
    resumed = CountingSearch(SPACE, seed=3)
    resumed.run(9, checkpoint=path, progress=False)
    assert [r.to_dict() for r in resumed.history] == [r.to_dict() for r in uninterrupted]
    assert all(isinstance(r, Step) for r in resumed.history) and resumed.steps_taken == 9
    assert resumed.best() is None and resumed.history.trials == []
    with pytest.raises(ResumeMismatchError, match="scale=1.0 there, 2.0 here"):
        CountingSearch(SPACE, scale=2.0, seed=3).run(9, checkpoint=path, progress=False)
    resumed.reset()  # the base took the initial snapshot: no subclass call needed
    assert len(resumed.history) == 0 and resumed.steps_taken == 0


def test_the_base_takes_the_initial_snapshot_for_every_subclass():
    class Mine(RandomSearch):
        def __init__(self, space, evaluator, seed=0):
            super().__init__(space, evaluator, seed=seed)
            self.extra_setting = 7  # set after the base's __init__: still before the snapshot

    search = Mine(SPACE, SPACE.evaluate, seed=2)
    first = record(search.run(5, progress=False))
    search.reset()
    assert record(search.run(5, progress=False)) == first


def test_a_resume_with_another_batch_is_refused_and_with_the_same_one_equals_the_uninterrupted_run(tmp_path):
    """The batch decides the history (evolution's tournaments see only members told before the
    ask), so it is part of the run: a checkpoint records it and a resume with another is refused."""
    space = ToySpace(length=8, options=3)

    def make():
        return RegularizedEvolution(space, space.evaluate, population_size=4, sample_size=2, seed=1)

    with ThreadPoolExecutor(3) as pool:
        uninterrupted = make().run(15, executor=pool, batch=3, progress=False)
        make().run(9, executor=pool, batch=3, checkpoint=tmp_path / "run", progress=False)
        for batch in (2, 4):
            with pytest.raises(ResumeMismatchError, match="batch=3 there, .* run it with batch=3"):
                make().run(15, executor=pool, batch=batch, checkpoint=tmp_path / "run", progress=False)
        with pytest.raises(ResumeMismatchError, match="batch=3 there, 1 here"):  # no executor: one at a time
            make().run(15, checkpoint=tmp_path / "run", progress=False)
        resumed = make().run(15, executor=pool, batch=3, checkpoint=tmp_path / "run", progress=False)
    assert [(t.arch, t.info) for t in resumed] == [(t.arch, t.info) for t in uninterrupted]
    other = make().run(15, executor=ThreadPoolExecutor(4), batch=4, progress=False)
    assert [t.arch for t in other] != [t.arch for t in uninterrupted]  # the batch does change the run

    # a checkpoint that records no batch (written by save(), or by nasnb before this rule) is not compared
    saved = make()
    saved.step()
    saved.save(tmp_path / "saved")
    with ThreadPoolExecutor(2) as pool:
        assert len(make().run(6, executor=pool, batch=2, checkpoint=tmp_path / "saved", progress=False)) == 6
