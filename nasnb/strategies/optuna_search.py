"""Optuna as a strategy: any Optuna sampler (TPE, GP, random, ...) searching any nasnb space.

Optuna (Akiba et al., "Optuna: A Next-generation Hyperparameter Optimization Framework", KDD 2019)
is the ask/tell library nasnb's own loop is modelled on, so a sampler fits in directly: an
architecture is one categorical parameter per decision of `space.choices`, the sampler suggests an
option index for each, and `space.from_choices` turns the indices back into an architecture.

Its default sampler, TPE (Bergstra, Bardenet, Bengio & Kégl, "Algorithms for Hyper-Parameter
Optimization", NeurIPS 2011; Watanabe, "Tree-Structured Parzen Estimator: Understanding Its
Algorithm Components", arXiv:2304.11127), works like this::

    after n_startup_trials random trials, for every new trial:
        good <- the best γ(n) of the n complete trials, bad <- the others
        l(x) <- a density fitted to the good trials' x, g(x) <- one fitted to the bad trials' x
        draw n_ei_candidates candidates from l, propose the one with the largest l(x) / g(x)

Maximising l/g maximises the expected improvement (Bergstra et al., section 4). For a categorical
parameter, l and g are smoothed histograms: each option's weight is how often good (or bad) trials
took it, plus a uniform prior. Options have no distance between them, which is right for op names:
"skip_connect" is not "between" "none" and "nor_conv_1x1". An integer parameter (`distribution=
"int"`) would get Gaussian kernels on the indices instead, so a good op 2 would also raise op 1
and op 3, an order the options do not have. Categorical is therefore the default; "int" is for
samplers that model only numbers (CMA-ES, QMC), which sample categorical parameters at random.

The default sampler is TPE with `multivariate=True` (Falkner, Klein & Hutter, BOHB, ICML 2018):
one joint Parzen estimator over all decisions instead of one per decision, so TPE proposes whole
good architectures, not a mix of per-decision favourites. Measured on ToySpace(length=6,
options=4), 40 trials, seeds 0-19, 10 random startup trials: the best trial matched the optimum at
5.45 of 6 positions on average; 4.95 with "int" indices; 4.8 with one estimator per decision
(Optuna 3 and 4's default); random search 3.95.

The History stays the source of truth. The Optuna study is rebuilt from it whenever the search is
loaded, resumed, reset, or drops a proposal: every trial of the History is added as a finished
Optuna trial (complete with its value; a failed or NaN trial as FAIL and a pruned one as PRUNED,
never with a number), then every pending proposal as a RUNNING trial. What the sampler remembers
beyond the trials is its numpy random generators: the search's state carries their states, so a
resumed run draws what the uninterrupted one would, and a TPESampler(seed=s) here proposes exactly
what it proposes in Optuna's own ask/tell loop. Exact resume therefore holds for samplers whose
only memory is the trials plus numpy generators: RandomSampler, TPESampler, BruteForceSampler. A
sampler that keeps more continues correctly after a resume, but not necessarily identically:
NSGAIISampler and QMCSampler write generations and sequence positions into Optuna's system
attributes, which the History does not hold (resumed after 8 of 16 trials, both differed from
trial 8 on); GPSampler starts each kernel fit from its last one, a cache the copy lacks (it
resumed identically in the same check, which nothing guarantees).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import json
import threading
import warnings

import numpy as np

from nasnb.checks import check_choice, short
from nasnb.errors import InvalidTypeError, InvalidValueError, ResumeMismatchError
from nasnb.strategies.base import Strategy

INSTALL_HINT = 'OptunaSearch needs Optuna, an optional extra of nasnb: pip install "nasnb[optuna]" (or pip install optuna)'


def import_optuna():
    """The optuna module, or a ModuleNotFoundError that says how to install it."""
    try:
        import optuna
    except ModuleNotFoundError as err:
        if err.name not in (None, "optuna"):  # optuna is there but one of its own imports failed
            raise
        raise ModuleNotFoundError(INSTALL_HINT, name="optuna") from None
    return optuna


def default_sampler(optuna, seed: int):
    """TPESampler(seed=seed), multivariate, with the constant liar: the same sampler on every Optuna
    version (Optuna 5 defaults to both; Optuna 3 and 4 to neither, and call them experimental)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


@contextlib.contextmanager
def quiet(optuna):
    """Optuna's logger at WARNING while the search talks to it (it logs every trial at INFO), and
    back to the user's level afterwards: nothing changes globally."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)



_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def copy_sampler(sampler):
    """copy.deepcopy of an Optuna sampler, each thread lock in it replaced by a fresh one (Optuna 5.1's
    genetic samplers hold a `threading.Lock`, which deepcopy cannot copy)."""
    memo, seen, todo = {}, set(), [sampler]
    while todo:  # find the locks: walk the sampler's attributes and containers
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, _LOCK_TYPES):
            memo[id(obj)] = threading.RLock() if isinstance(obj, _LOCK_TYPES[1]) else threading.Lock()
        elif isinstance(obj, dict):
            todo.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            todo.extend(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type) and not callable(obj):
            todo.extend(vars(obj).values())
    return copy.deepcopy(sampler, memo)

class OptunaSearch(Strategy):
    """An Optuna sampler proposes the option index of every decision in `space.choices`.

    Args:
        sampler: any `optuna.samplers.BaseSampler`; None: `default_sampler`, a multivariate
            `TPESampler(seed=seed)`. The search works on its own copy, so one sampler object can
            start several searches. Seed it: its class, settings and seeded random state are part
            of `settings()`, so a resume with another sampler class or seed is refused.
        distribution: "categorical" (default: options are unordered, see the module docstring) or
            "int" (`IntDistribution(0, n - 1)`, for samplers that only model numbers).

    `trial.info["indices"]` holds the option index the sampler chose for each decision; the Optuna
    study is `search.study` (rebuilt from the History, see the module docstring).
    """

    def __init__(self, space, evaluator, sampler=None, *, distribution: str = "categorical",
                 metric: str = "val_accuracy", seed: int = 0):
        optuna = self._optuna = import_optuna()
        super().__init__(space, evaluator, metric=metric, seed=seed)
        for needed in ("choices", "from_choices"):
            if not hasattr(space, needed):
                raise InvalidTypeError(f"OptunaSearch suggests one option per space.choices entry and maps them "
                                       f"back with space.from_choices; {short(space)} has no {needed}")
        if sampler is None:
            sampler = default_sampler(optuna, self.seed)
        elif not isinstance(sampler, optuna.samplers.BaseSampler):
            raise InvalidTypeError(f"sampler must be an Optuna sampler, e.g. sampler=optuna.samplers.TPESampler(seed=0), "
                                   f"got {short(sampler)}")
        self.distribution = check_choice("distribution", distribution, ("categorical", "int"))
        self.choices = list(space.choices)
        names = [c.name for c in self.choices]
        if len(set(names)) != len(names):
            raise InvalidValueError(f"space.choices has repeated names {short(names)}; each decision becomes an Optuna "
                                    "parameter of its name, so the names must differ")
        dist = optuna.distributions
        self.distributions = {c.name: dist.CategoricalDistribution(list(range(len(c.options))))
                              if self.distribution == "categorical" else dist.IntDistribution(0, len(c.options) - 1)
                              for c in self.choices}  # every parameter takes option indices 0..n-1
        self._template = copy_sampler(sampler)  # never used: each (re)built study gets a copy of it
        self._sampler_settings = describe_sampler(self._template)
        self._numbers: dict[int, int] = {}  # id(pending proposal) -> its trial number in the study
        self._telling = None  # the proposal `tell` is recording (its study trial is told in `_learn`)
        self._asked: int | None = None  # the study's number for the trial `propose` just asked
        self._rebuild(random_states(self._template))
        self.history.meta.update(sampler=type(sampler).__name__, distribution=self.distribution)

    def settings(self) -> dict:
        return {**super().settings(), "sampler": self._sampler_settings, "distribution": self.distribution}

    # ---------------------------------------------------------------- ask / tell

    def ask(self):
        proposal = super().ask()  # propose() asked the study for trial number self._asked
        self._numbers[id(proposal)] = self._asked
        return proposal

    def propose(self):
        with quiet(self._optuna):
            trial = self.study.ask(self.distributions)  # the sampler suggests every parameter now
        self._asked = trial.number
        indices = [int(trial.params[c.name]) for c in self.choices]
        try:
            arch = self.space.from_choices([c.options[k] for c, k in zip(self.choices, indices)])
        except BaseException:  # no proposal is made: the study must not keep a RUNNING trial for it
            self._rebuild(random_states(self.sampler))
            raise
        return arch, {"indices": indices}

    def tell(self, proposal, metrics=None, seconds: float = 0.0, *, error=None, pruned: bool = False):
        self._telling = self._find_pending(proposal)
        return super().tell(self._telling, metrics, seconds, error=error, pruned=pruned)

    def _learn(self, trial) -> None:
        """Every trial reaches the study, before the checkpoint is written: complete ones with their
        value, failed (NaN, an exception) and pruned ones by their state alone."""
        number = self._numbers.pop(id(self._telling))
        state, value = self._outcome(trial)
        with quiet(self._optuna):
            try:
                self.study.tell(number, value, state=state)  # the trial is told even when this raises
            except RuntimeError as err:  # a sampler calling study.stop() (BruteForceSampler, when it has
                if "Study.stop" not in str(err):  # tried every arch) works only inside study.optimize;
                    raise  # here the budget is run(n)'s
        super()._learn(trial)

    def drop(self, proposal=None):
        dropped = super().drop(proposal)
        if dropped:  # their RUNNING trials leave the study (constant-liar TPE would still count them)
            self._rebuild(random_states(self.sampler))
        return dropped

    def _outcome(self, trial) -> tuple:
        """What Optuna is told of a nasnb trial: (COMPLETE, its value), or (FAIL or PRUNED, None)."""
        states = self._optuna.trial.TrialState
        if trial.state == "complete":
            return states.COMPLETE, trial.value(self.metric)
        return states.PRUNED if trial.state == "pruned" else states.FAIL, None

    # ---------------------------------------------------------------- the study, from the History

    def _rebuild(self, states: dict) -> None:
        """A new study: the History's trials, finished, then the pending proposals, RUNNING; and a
        fresh copy of the sampler with the random `states`. All or nothing."""
        optuna = self._optuna
        sampler = copy_sampler(self._template)
        set_random_states(sampler, states)
        with quiet(optuna):
            study = optuna.create_study(direction="maximize", sampler=sampler)
            for trial in self.history.trials:
                state, value = self._outcome(trial)
                study.add_trial(optuna.trial.create_trial(state=state, value=value, params=self._params(trial.info),
                                                          distributions=self.distributions))
            numbers = {}
            for proposal in self._pending:
                numbers[id(proposal)] = len(study.trials)
                study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, params=self._params(
                    proposal.info), distributions=self.distributions))
        self.study, self.sampler, self._numbers = study, sampler, numbers

    def _params(self, info: dict) -> dict:
        indices = info.get("indices") if isinstance(info, dict) else None
        if not isinstance(indices, list) or len(indices) != len(self.choices):
            raise InvalidValueError(f"a trial's info['indices'] must list one option index per decision "
                                    f"({len(self.choices)}), got {short(indices)}")
        return {c.name: int(k) for c, k in zip(self.choices, indices)}

    def state(self) -> dict:
        return {**super().state(), "sampler": self._sampler_settings, "distribution": self.distribution,
                "study_trials": len(self.study.trials)}

    def _extra_state(self) -> dict:
        return {"random_states": json.dumps(random_states(self.sampler))}

    def _load_extra_state(self, state: dict) -> None:
        self._rebuild(json.loads(state["random_states"]))  # history and pending are loaded by now

    def _check_settings(self, saved: dict, where: str) -> None:
        try:
            super()._check_settings(saved, where)
        except ResumeMismatchError as err:
            theirs, mine = saved.get("sampler"), json.loads(json.dumps(self._sampler_settings))
            if theirs is None or theirs == mine:
                raise
            if theirs.get("class") != mine["class"]:
                why = f"that run's sampler was a {theirs.get('class')}, this one is a {mine['class']}"
            elif theirs.get("random_state") != mine["random_state"]:
                why = f"this {mine['class']} is seeded differently (its random state starts elsewhere)"
            else:
                why = f"this {mine['class']} has other settings"
            raise ResumeMismatchError(f"{err}. The sampler differs: {why}; pass the sampler that run used, e.g. "
                                      f"OptunaSearch(space, evaluator, optuna.samplers.{theirs.get('class')}(seed=...))"
                                      ) from None


# -------------------------------------------------------------------- a sampler's random generators


def random_states(sampler) -> dict:
    """{attribute path: JSON state} of every numpy random generator inside `sampler`, e.g.
    TPESampler's "_rng._rng" and "_random_sampler._rng._rng". A generator Optuna has not created
    yet (an unseeded sampler's, until first use) is not listed."""
    return {path: _state_of(rng) for path, rng in _generators(sampler).items()}


def set_random_states(sampler, states: dict) -> None:
    """Put `random_states()`'s output back into a fresh copy of the sampler it came from."""
    found = _generators(sampler)
    if not isinstance(states, dict) or not set(found) <= set(states):
        raise InvalidValueError(f"the saved random states {short(sorted(states) if isinstance(states, dict) else states)} "
                                f"do not fit a {type(sampler).__name__}, which holds {sorted(found)}")
    for path, state in states.items():
        holder = sampler
        *parents, name = path.split(".")
        for parent in parents:
            holder = getattr(holder, parent)
        rng = found.get(path)
        if rng is None:  # created after the copy was taken: only a not-yet-created one may be made here
            if getattr(holder, name, "missing") is not None:
                raise InvalidValueError(f"{type(sampler).__name__} has no random generator at {path!r}")
            rng = np.random.RandomState() if state["type"] == "RandomState" else np.random.default_rng()
            setattr(holder, name, rng)
        if state["type"] == "RandomState":
            kind, key, pos, has_gauss, gauss = state["state"]
            rng.set_state((kind, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
        else:
            rng.bit_generator.state = state["state"]


def _generators(sampler) -> dict:
    """{path: generator} found by walking the attributes of the sampler and of the Optuna objects
    it holds (its random sampler, its lazy random states)."""
    from optuna.samplers import BaseSampler

    found, seen = {}, set()

    def walk(obj, prefix):
        seen.add(id(obj))
        for name, value in sorted(vars(obj).items()):
            if isinstance(value, (np.random.RandomState, np.random.Generator)):
                found.setdefault(prefix + name, value)
            elif id(value) not in seen and hasattr(value, "__dict__") and not isinstance(value, type) and (
                    isinstance(value, BaseSampler) or type(value).__module__.split(".")[0] == "optuna"):
                walk(value, f"{prefix}{name}.")

    walk(sampler, "")
    return found


def _state_of(rng) -> dict:
    if isinstance(rng, np.random.RandomState):
        kind, key, pos, has_gauss, gauss = rng.get_state(legacy=True)
        return {"type": "RandomState", "state": [kind, key.tolist(), int(pos), int(has_gauss), float(gauss)]}
    return {"type": "Generator", "state": rng.bit_generator.state}


def describe_sampler(sampler) -> dict:
    """The class, the constructor settings it keeps (as `_name` or `name` attributes with plain
    values) and a fingerprint of its random state: what makes two samplers start the same run.
    Optuna keeps no seed, but the same seed gives the same starting state, hence the same print."""
    settings, missing = {}, object()
    for name in inspect.signature(type(sampler).__init__).parameters:
        value = getattr(sampler, f"_{name}", getattr(sampler, name, missing))
        if callable(value) and hasattr(value, "__qualname__"):
            value = f"{getattr(value, '__module__', '')}.{value.__qualname__}"
        if name not in ("self", "seed") and (value is None or isinstance(value, (bool, int, float, str))):
            settings[name] = value
    states = random_states(sampler)
    fingerprint = hashlib.sha256(json.dumps(states, sort_keys=True).encode()).hexdigest()[:16] if states else None
    return {"class": type(sampler).__name__, "random_state": fingerprint, "settings": settings}
