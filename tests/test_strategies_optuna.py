"""OptunaSearch: Optuna's samplers on nasnb spaces, the History as the source of truth, resume."""
import logging
import math
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

optuna = pytest.importorskip("optuna")

from nasnb.errors import NasnbError, ResumeMismatchError  # noqa: E402
from nasnb.spaces import DartsSpace, NB201Space  # noqa: E402
from nasnb.spaces.toy import ToySpace  # noqa: E402
from nasnb.strategies import OptunaSearch, RandomSearch  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # QMC, BruteForce
TrialState = optuna.trial.TrialState
SPACE = ToySpace(length=6, options=4)  # 4,096 archs; the optimum scores 1.0


def record(history):
    return [(t.number, t.arch, t.metrics, t.info, t.state) for t in history]


def tpe(seed=0, **kwargs):
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=3, **kwargs)


def nan_or_raise(arch):
    """The toy score, but NaN when position 0 is op0 and an exception when position 1 is op1."""
    if arch[1] == "op1":
        raise RuntimeError("diverged (pretend)")
    return {"val_accuracy": math.nan if arch[0] == "op0" else SPACE.score(arch)}


def optuna_loop(sampler, space, evaluate, n, distribution="categorical"):
    """Optuna's own ask/tell loop, written from Optuna's documentation, without nasnb's search:
    the archs it proposes (one suggest per decision) and how each trial ended."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    archs = []
    for _ in range(n):
        trial = study.ask()
        if distribution == "categorical":
            indices = [trial.suggest_categorical(c.name, list(range(len(c.options)))) for c in space.choices]
        else:
            indices = [trial.suggest_int(c.name, 0, len(c.options) - 1) for c in space.choices]
        arch = tuple(c.options[k] for c, k in zip(space.choices, indices))
        archs.append(space.format(arch))
        try:
            value = evaluate(arch)["val_accuracy"]
        except RuntimeError:
            value = math.nan
        if math.isfinite(value):
            study.tell(trial, value)
        else:
            study.tell(trial, state=TrialState.FAIL)
    return archs, [t.state for t in study.trials]


SAMPLERS = [
    pytest.param(lambda: tpe(seed=4), "categorical", id="TPE"),
    pytest.param(lambda: optuna.samplers.TPESampler(seed=4, n_startup_trials=3, multivariate=False), "categorical",
                 id="TPE-independent"),
    pytest.param(lambda: optuna.samplers.RandomSampler(seed=4), "categorical", id="Random"),
    pytest.param(lambda: optuna.samplers.QMCSampler(seed=4, qmc_type="halton"), "int", id="QMC-int"),
    pytest.param(lambda: optuna.samplers.NSGAIISampler(seed=4, population_size=6), "categorical", id="NSGAII"),
]


@pytest.mark.parametrize("make_sampler, distribution", SAMPLERS)
def test_the_search_proposes_what_optunas_own_loop_proposes(make_sampler, distribution):
    """Any sampler, failed trials included: the same proposals as Optuna's documented loop."""
    search = OptunaSearch(SPACE, nan_or_raise, make_sampler(), distribution=distribution)
    search.run(20, progress=False, max_failures=None)
    archs, states = optuna_loop(make_sampler(), SPACE, nan_or_raise, 20, distribution)
    assert [t.arch for t in search.history] == archs
    assert [t.state for t in search.study.trials] == states
    assert TrialState.FAIL in states and TrialState.COMPLETE in states


@pytest.mark.skipif(not hasattr(optuna.samplers, "BruteForceSampler"), reason="Optuna >= 3.1 has it")
def test_brute_force_sampler_tries_every_arch_exactly_once():
    space = ToySpace(length=2, options=4)  # 16 archs: random draws would repeat one (P = 1 - 16!/16^16)
    search = OptunaSearch(space, space.evaluate, optuna.samplers.BruteForceSampler(seed=0))
    search.run(16, progress=False)
    assert sorted(t.arch for t in search.history) == sorted(space.format(a) for a in space.enumerate())


def test_default_tpe_finds_the_optimum_where_random_search_with_the_same_budget_does_not():
    """40 trials of 4,096 archs: random search hits the optimum with probability 1 - (1 - 1/4096)^40
    (1%); the default TPE (10 random trials, then its model) finds it in some of 5 seeds, and its
    best is better on average by at least half a matching position."""
    seeds, budget = range(5), 40
    tpe_best = [OptunaSearch(SPACE, SPACE.evaluate, seed=seed).run(budget, progress=False).best().value("val_accuracy")
                for seed in seeds]
    random_best = [RandomSearch(SPACE, SPACE.evaluate, seed=seed).run(budget, progress=False)
                   .best().value("val_accuracy") for seed in seeds]
    assert tpe_best.count(1.0) >= 2 and random_best.count(1.0) == 0, (tpe_best, random_best)
    assert sum(tpe_best) / 5 >= sum(random_best) / 5 + 0.5 / SPACE.length, (tpe_best, random_best)


@pytest.mark.parametrize("space", [NB201Space(), DartsSpace()], ids=["nb201", "darts"])
def test_suggested_indices_are_valid_archs_of_nb201_and_darts(space):
    def evaluate(arch):  # any deterministic score in [0, 1]: the share of choices taking option 0
        values = space.to_choices(arch)
        return {"val_accuracy": sum(v == c.options[0] for v, c in zip(values, space.choices)) / len(values)}

    search = OptunaSearch(space, evaluate, tpe(seed=1))
    search.run(8, progress=False)
    for trial, study_trial in zip(search.history, search.study.trials):
        arch = space.validate(space.parse(trial.arch))
        indices = trial.info["indices"]
        assert len(indices) == len(space.choices)
        assert all(0 <= k < len(c.options) for k, c in zip(indices, space.choices))
        assert space.to_choices(arch) == [c.options[k] for c, k in zip(space.choices, indices)]
        assert study_trial.params == {c.name: k for c, k in zip(space.choices, indices)}
        assert study_trial.value == trial.value("val_accuracy")


# ---------------------------------------------------------------- the History is the source of truth


def test_a_failed_nan_or_pruned_trial_is_never_told_as_a_number():
    search = OptunaSearch(SPACE, nan_or_raise, tpe(seed=2))
    search.run(24, progress=False, max_failures=None)
    proposal = search.ask()
    search.tell(proposal, {"val_accuracy": 0.5}, pruned=True)
    for rebuilt in (False, True):
        if rebuilt:  # the study rebuilt from the History says the same
            again = OptunaSearch(SPACE, nan_or_raise, tpe(seed=2))
            again.load_state_dict(search.state_dict())
            search = again
        for trial, study_trial in zip(search.history, search.study.trials, strict=True):
            expected = {"complete": TrialState.COMPLETE, "failed": TrialState.FAIL, "pruned": TrialState.PRUNED}
            assert study_trial.state == expected[trial.state]
            assert study_trial.value == (trial.value("val_accuracy") if trial.ok else None)
        assert search.history.count("failed") >= 5 and search.history.count("pruned") == 1


def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path):
    """TPE draws its candidates from a numpy generator: the checkpoint carries its state, so the
    six trials after the resume (all TPE-modelled: 3 startup trials) are the uninterrupted ones."""
    uninterrupted = OptunaSearch(SPACE, SPACE.evaluate, tpe(seed=5)).run(12, progress=False)
    path = tmp_path / "tpe.ckpt"
    OptunaSearch(SPACE, SPACE.evaluate, tpe(seed=5)).run(6, checkpoint=path, progress=False)
    resumed = OptunaSearch(SPACE, SPACE.evaluate, tpe(seed=5))  # a fresh object, as after a restart
    resumed.run(12, checkpoint=path, progress=False)
    assert record(resumed.history) == record(uninterrupted)
    assert len(set(t.arch for t in uninterrupted)) > 6  # not a degenerate run


def test_pending_proposals_resume_as_running_trials_that_constant_liar_tpe_sees():
    """Two proposals asked, not told, saved; a fresh search tells them and goes on exactly as the
    search that was never saved (TPE's constant liar counts the RUNNING ones when it proposes)."""
    def go_on(search, first):
        for p in first:
            search.tell(p, SPACE.evaluate(p.arch))
        return search.run(14, progress=False)

    original = OptunaSearch(SPACE, SPACE.evaluate, tpe(seed=6, constant_liar=True))
    original.run(8, progress=False)
    asked = [original.ask(), original.ask()]
    state = original.state_dict()
    assert [t.state for t in original.study.trials[-2:]] == [TrialState.RUNNING] * 2
    fresh = OptunaSearch(SPACE, SPACE.evaluate, tpe(seed=6, constant_liar=True))
    fresh.load_state_dict(state)
    assert [t.state for t in fresh.study.trials] == [t.state for t in original.study.trials]
    assert record(go_on(fresh, fresh.pending)) == record(go_on(original, asked))


def test_a_batched_run_resumes_exactly(tmp_path):
    """Stopped after two batches of three (run(5) would make its second batch two: batches shape
    what an adaptive strategy proposes), resumed, it equals the run that never stopped."""
    path = tmp_path / "batched.ckpt"
    with ThreadPoolExecutor(3) as pool:
        whole = OptunaSearch(SPACE, SPACE.evaluate, tpe(seed=7)).run(12, executor=pool, batch=3, progress=False)
        OptunaSearch(SPACE, SPACE.evaluate, tpe(seed=7)).run(6, executor=pool, batch=3, checkpoint=path, progress=False)
        resumed = OptunaSearch(SPACE, SPACE.evaluate, tpe(seed=7))
        resumed.run(12, executor=pool, batch=3, checkpoint=path, progress=False)
    assert record(resumed.history) == record(whole)


def test_drop_removes_the_running_trials_from_the_study():
    search = OptunaSearch(SPACE, SPACE.evaluate, tpe(seed=8))
    search.run(4, progress=False)
    search.ask(), search.ask()
    search.drop()
    assert [t.state for t in search.study.trials] == [TrialState.COMPLETE] * 4
    search.step()
    assert len(search.study.trials) == 5 and search.study.trials[-1].state == TrialState.COMPLETE


@pytest.mark.parametrize("other, named", [
    (lambda: optuna.samplers.RandomSampler(seed=5), "RandomSampler"),
    (lambda: tpe(seed=6), "random state"),
    (lambda: optuna.samplers.TPESampler(seed=5, n_startup_trials=4), "n_startup_trials=3 there, 4 here"),
])
def test_a_resume_with_another_sampler_is_refused(other, named, tmp_path):
    path = tmp_path / "tpe.ckpt"
    OptunaSearch(SPACE, SPACE.evaluate, tpe(seed=5)).run(4, checkpoint=path, progress=False)
    search = OptunaSearch(SPACE, SPACE.evaluate, other())
    with pytest.raises(ResumeMismatchError, match="TPESampler") as info:
        search.run(8, checkpoint=path, progress=False)
    assert named in str(info.value) and len(search.history) == 0
    same = OptunaSearch(SPACE, SPACE.evaluate, tpe(seed=5))
    assert len(same.run(6, checkpoint=path, progress=False)) == 6


def test_the_default_sampler_is_multivariate_tpe_seeded_by_the_search():
    by_default = OptunaSearch(SPACE, SPACE.evaluate, seed=3).run(15, progress=False)
    sampler = optuna.samplers.TPESampler(seed=3, multivariate=True, constant_liar=True)
    archs, _ = optuna_loop(sampler, SPACE, SPACE.evaluate, 15)
    assert [t.arch for t in by_default] == archs


# ---------------------------------------------------------------- optional, quiet, checked


def test_the_search_silences_optuna_only_while_it_runs():
    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    messages, handler, before = [], Collect(), optuna.logging.get_verbosity()
    logging.getLogger("optuna").addHandler(handler)  # every Optuna logger's records pass through it
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        OptunaSearch(SPACE, SPACE.evaluate, tpe()).run(4, progress=False)
        assert messages == [] and optuna.logging.get_verbosity() == optuna.logging.INFO
        optuna.create_study()  # Optuna's own INFO line still shows: nothing changed globally
        assert any("study created" in m for m in messages), messages
    finally:
        optuna.logging.set_verbosity(before)
        logging.getLogger("optuna").removeHandler(handler)


def test_without_optuna_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` now fails as if not installed
    with pytest.raises(ModuleNotFoundError, match=r'pip install "nasnb\[optuna\]"'):
        OptunaSearch(SPACE, SPACE.evaluate)


def test_the_module_and_its_registry_entry_load_without_optuna(monkeypatch):
    """Optuna is imported when a search is built, not when nasnb.strategies (which imports this
    module) is: a fresh copy of the module runs with `import optuna` failing."""
    import importlib.util

    import nasnb.strategies.optuna_search as module
    from nasnb import registry

    assert registry.get("strategy", "optuna") is OptunaSearch
    monkeypatch.setitem(sys.modules, "optuna", None)
    spec = importlib.util.spec_from_file_location("optuna_search_without_optuna", module.__file__)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # raises if it imports optuna at load


@pytest.mark.parametrize("call, named", [
    (lambda: OptunaSearch(SPACE, SPACE.evaluate, "tpe"), "sampler"),
    (lambda: OptunaSearch(SPACE, SPACE.evaluate, distribution="ordinal"), "distribution"),
    (lambda: OptunaSearch(SPACE, SPACE.evaluate, seed=-1), "seed"),
])
def test_bad_arguments_fail_at_the_call_naming_the_argument(call, named):
    with pytest.raises(NasnbError, match=named):
        call()
