"""Predictor-guided search: train a surrogate on the trials so far, evaluate only what it likes best.

White, Neiswanger & Savani, "BANANAS: Bayesian Optimization with Neural Architectures for Neural
Architecture Search", AAAI 2021 (arXiv:1910.11858), Algorithm 1. Bayesian optimisation with a
neural predictor: an ensemble regressor (nasnb/predictors.py) stands in for the Gaussian process,
and the acquisition function is maximised over mutations of the best architectures seen, instead
of over the whole space::

    evaluate `initial` random architectures
    repeat until the budget is spent:
        fit the ensemble on every (architecture, accuracy) seen           # every `refit_every` trials
        candidates <- mutations (1..max_edits changes) of the `parents` best seen, plus a few random
        drop the candidates already evaluated (or on their way)
        for each candidate: mean, std <- the ensemble's prediction
        evaluate the candidate with the highest acquisition value

Acquisitions: "its", independent Thompson sampling (the paper's choice): each candidate's score is
one draw from N(mean, std^2), drawn independently per candidate, so an uncertain candidate
sometimes wins (exploration) and a confidently good one usually does; "ucb": mean + kappa * std;
"mean": the prediction alone (greedy, no exploration).

The paper's released code evaluates 10 random cells first, fits an ensemble of 5 and picks 10
cells per fit out of 100 candidates mutated from the best cells seen; the defaults here are those
numbers (`initial=10`, `members=5`, `refit_every=10`, `candidates=100`, `parents=10`). Its
ensemble is 5 MLPs, as here (smaller ones: scikit-learn's MLPRegressor with two layers of 32), on
the path encoding; the default here is one-hot, which ranked digits cells better at every
training-set size (benchmarks/predictor.py; ``encoding="path"`` is the paper's setting).

Every trial's ``info`` says why it was tried: ``kind`` ("random" or "mutation"), ``parent`` (the
trial number mutated, None for random ones), ``predicted_mean`` and ``predicted_std`` (the
ensemble's guess before the evaluation, None for the random start: a view can plot predicted
against true), ``fit_size`` (how many trials the ensemble was fitted on) and ``repeat`` (True only
when no untried architecture could be found: a small space searched longer than its size).

Architectures are compared by ``space.canonical``: an NB201 cell isomorphic to one already tried
is not tried again. Checkpoints hold no model: the ensemble is refitted from the history on load
(the same trials, the same seeds: the same model), so a resumed search equals an uninterrupted one.
"""
from __future__ import annotations

from nasnb.checks import check_choice, check_float, check_int, check_positive_int
from nasnb.predictors import ENCODINGS, MODELS, Predictor
from nasnb.strategies.base import Strategy

ACQUISITIONS = ("its", "ucb", "mean")
SEARCHES = 100  # random draws tried for an untried architecture when every candidate was tried


class PredictorGuided(Strategy):
    """BANANAS-style predictor-guided search (White et al., AAAI 2021, Algorithm 1; module docstring).

    Args:
        initial: random architectures evaluated before the first fit (at least 2 complete ones
            are needed to fit; the start stays random until then).
        candidates: mutations proposed per step; `parents`: how many of the best trials they
            mutate (round robin); `max_edits`: each candidate is 1..max_edits mutations away.
        random_candidates: uniform samples added to the candidates (exploration outside the
            neighbourhood of the best).
        acquisition: "its" (Thompson sampling, the paper's), "ucb" (mean + kappa * std) or "mean".
        refit_every: fit the ensemble again after this many new trials.
        encoding, model, members: the `nasnb.predictors.Predictor` (model a name from MODELS).
    """

    panels = ("cell", "progress")
    replayable = True  # propose() reads only self.rng, the history and a model refitted from it

    def __init__(self, space, evaluator, *, initial: int = 10, candidates: int = 100, parents: int = 10,
                 max_edits: int = 2, random_candidates: int = 10, acquisition: str = "its", kappa: float = 1.0,
                 refit_every: int = 10, encoding: str = "onehot", model: str = "mlp", members: int = 5,
                 metric: str = "val_accuracy", seed: int = 0):
        self.initial = check_positive_int("initial", initial, example=10)
        self.candidates = check_positive_int("candidates", candidates, example=100)
        self.parents = check_positive_int("parents", parents, example=10)
        self.max_edits = check_positive_int("max_edits", max_edits, example=2)
        self.random_candidates = check_int("random_candidates", random_candidates, minimum=0, example=10)
        self.acquisition = check_choice("acquisition", acquisition, ACQUISITIONS)
        self.kappa = check_float("kappa", kappa, minimum=0.0, example=1.0)
        self.refit_every = check_positive_int("refit_every", refit_every, example=10)
        self.encoding = check_choice("encoding", encoding, ENCODINGS)
        self.model = check_choice("model", model, MODELS)  # a name: the settings must say what it is
        self.members = check_positive_int("members", members, example=5)
        super().__init__(space, evaluator, metric=metric, seed=seed)
        self.predictor = Predictor(space, encoding=self.encoding, model=self.model, members=self.members, seed=seed)
        self._fit_size = 0  # the ensemble was fitted on the complete trials among history[:_fit_size]
        self._fits = 0  # how many fits so far (each seeds its members differently)
        self._model_ready = False  # False after a load: refit lazily from the history
        self._keys: list = []  # canonical key of every trial, in order (extended as the history grows)

    def settings(self) -> dict:
        return {**super().settings(), "initial": self.initial, "candidates": self.candidates, "parents": self.parents,
                "max_edits": self.max_edits, "random_candidates": self.random_candidates,
                "acquisition": self.acquisition, "kappa": self.kappa, "refit_every": self.refit_every,
                "encoding": self.encoding, "model": self.model, "members": self.members}

    # ---------------------------------------------------------------- ask

    def propose(self):
        seen = self._seen()
        complete = [t for t in self.history.trials if t.ok]
        if len(self.history.trials) + len(self._pending) < self.initial or len(complete) < 2:
            arch, repeat = self._untried_sample(seen)
            return arch, {"kind": "random", "parent": None, "predicted_mean": None, "predicted_std": None,
                          "fit_size": 0, "repeat": repeat}
        self._refit_if_due()

        pool, parent_of = self._candidates()
        fresh = [a for a in pool if self._key(a) not in seen]
        repeat = False
        if not fresh:  # every candidate was tried: look further afield
            arch, repeat = self._untried_sample(seen)
            if repeat:  # the space seems exhausted: the best-scoring candidate once more
                fresh = pool
            else:
                fresh, parent_of = [arch], {}
        mean, std = self.predictor.predict(fresh)
        if self.acquisition == "its":  # one independent draw per candidate (BANANAS)
            score = mean + std * self.rng.standard_normal(len(fresh))
        elif self.acquisition == "ucb":
            score = mean + self.kappa * std
        else:
            score = mean
        k = int(score.argmax())  # ties: the first candidate
        arch = fresh[k]
        parent = parent_of.get(self._key(arch))
        return arch, {"kind": "random" if parent is None else "mutation", "parent": parent,
                      "predicted_mean": float(mean[k]), "predicted_std": float(std[k]),
                      "fit_size": self._fit_size, "repeat": repeat}

    def _candidates(self):
        """(candidates, {key: parent trial number}): mutations of the best trials, then random ones."""
        best = sorted((t for t in self.history.trials if t.ok), key=lambda t: (-t.value(self.metric), t.number))
        best = [(t.number, self.space.parse(t.arch)) for t in best[:self.parents]]
        pool, parent_of = [], {}
        for i in range(self.candidates):
            number, arch = best[i % len(best)]
            for _ in range(int(self.rng.integers(1, self.max_edits + 1))):
                arch = self.space.mutate(arch, self.rng)
            pool.append(arch)
            parent_of.setdefault(self._key(arch), number)
        for _ in range(self.random_candidates):
            arch = self.space.sample(self.rng)
            pool.append(arch)
            parent_of.setdefault(self._key(arch), None)
        unique = {}
        for arch in pool:  # duplicates out, first occurrence kept: the order stays the rng's
            unique.setdefault(self._key(arch), arch)
        return list(unique.values()), parent_of

    def _untried_sample(self, seen) -> tuple:
        """(arch, repeat): a uniform sample not tried yet, or, after SEARCHES draws, a tried one."""
        for _ in range(SEARCHES):
            arch = self.space.sample(self.rng)
            if self._key(arch) not in seen:
                return arch, False
        return arch, True

    # ---------------------------------------------------------------- the model

    def _refit_if_due(self) -> None:
        if self._fit_size == 0 or len(self.history) - self._fit_size >= self.refit_every:
            self._fit_size, self._fits = len(self.history), self._fits + 1  # a new fit on everything seen
            self._fit(self._fit_size, self._fits)
        elif not self._model_ready:  # after a load: the fit the search had, again, from the history
            self._fit(self._fit_size, self._fits)

    def _fit(self, size: int, fits: int) -> None:
        trials = [t for t in self.history.trials[:size] if t.ok]
        self.predictor.seed = (self.seed * 1_000_003 + fits) % 2**32  # each fit its own members' seeds
        self.predictor.fit([self.space.parse(t.arch) for t in trials], [t.value(self.metric) for t in trials])
        self._model_ready = True

    # ---------------------------------------------------------------- what was tried

    def _key(self, arch):
        canonical = getattr(self.space, "canonical", None)
        return canonical(arch) if callable(canonical) else arch

    def _seen(self) -> set:
        trials = self.history.trials
        for t in trials[len(self._keys):]:
            self._keys.append(self._key(self.space.parse(t.arch)))
        return set(self._keys) | {self._key(p.arch) for p in self._pending}

    # ---------------------------------------------------------------- checkpoints

    def state(self) -> dict:
        return {**super().state(), "fit_size": self._fit_size, "fits": self._fits}

    def _extra_state(self) -> dict:
        return {"fit_size": self._fit_size, "fits": self._fits}

    def _load_extra_state(self, state: dict) -> None:
        self._fit_size, self._fits = int(state["fit_size"]), int(state["fits"])
        self._model_ready = False  # refitted from the (new) history at the next proposal
        self._keys = []
