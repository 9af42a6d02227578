"""A learned performance predictor: guess an architecture's accuracy from the ones already trained.

Training a network costs minutes; a regressor that maps an architecture's *encoding* (a fixed-length
vector of numbers) to its accuracy costs milliseconds. Trained on the trials a search has seen, it
can rank thousands of untried candidates, and the search trains only the most promising
(BANANAS: White, Neiswanger & Savani, "BANANAS: Bayesian Optimization with Neural Architectures
for Neural Architecture Search", AAAI 2021; nasnb/strategies/predictor.py).

Encodings (a row of numbers per architecture):

* **one-hot** (any space with `choices`): for every decision, a 1 in the column of the option taken
  and 0 elsewhere. An NB201 cell is 6 edges x 5 ops = 30 numbers, six of them 1.
* **path** (NB201, BANANAS Sec. 4): one column per possible op sequence along an input -> output
  path, 1 when the cell has that path. The NB201 DAG has 4 such paths (0->3, 0->1->3, 0->2->3,
  0->1->2->3): lengths 1, 2, 2 and 3, so there are 5 + 5**2 + 5**3 = 155 possible sequences. A cell
  sets 4 columns, or 3 when its two length-2 paths carry the same ops. Paths through ``none`` are
  kept, as in the paper's code: the regressor learns that they carry nothing.

The predictor is an *ensemble*: `members` regressors, each with its own seed, fitted to the same
data. Their mean is the prediction; their spread (standard deviation) says how unsure it is, larger
where the members disagree: far from the trained architectures. That spread is what lets a search
trade exploitation (a high mean) against exploration (a large spread).

Which regressor: measured on the shipped nb201-digits table (benchmarks/predictor.py, Kendall tau
of the mean validation accuracy on 1,000 held-out cells, median of 3 repeats), an ensemble of 5
small MLPs (the paper's kind of model) on one-hot ranks best at every training-set size: tau 0.34
from 10 cells, 0.62 from 50, 0.67 from 200, 0.72 from 1,000. Five gradient-boosted tree models
(scikit-learn's GradientBoostingRegressor, each tree fitted to a random 80 % of the data) are
0.03-0.07 behind below 200 cells and equal from 200 on, at a fraction of the fit time. The path
encoding is 0.02-0.12 behind one-hot (for the MLPs at every size; for the trees from 20 cells on).
Trees also cannot tell that a cell is far from everything they were fitted on: a cell built from ops never seen falls into the same leaves
as seen ones, and the boosted members agree there as much as on the data (tests/test_predictors.py
shows it). The MLPs' random first layers disagree on unseen inputs, so their spread grows away from
the data, which is what an acquisition needs. Hence ``model="mlp"`` (as in BANANAS) and
``encoding="onehot"`` by default; "boosting" and "forest" are there to compare.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import numpy as np

from nasnb.checks import check_positive_int, check_seed, short
from nasnb.errors import InvalidTypeError, InvalidValueError, UnknownNameError

ENCODINGS = ("onehot", "path")
MODELS = ("mlp", "boosting", "forest")
__all__ = ["ENCODINGS", "MODELS", "Predictor", "decode_onehot", "encode", "kendall_tau", "nb201_paths",
           "onehot_encoding", "path_encoding"]


def _nb201():
    from nasnb.spaces.nb201 import NB201Space

    return NB201Space()


def _arch(space, arch):
    """`arch` as the space's value (a string is parsed)."""
    if isinstance(arch, str):
        return space.parse(arch)
    return space.validate(arch) if hasattr(space, "validate") else arch


# ---------------------------------------------------------------- encodings

def onehot_encoding(arch, space=None) -> np.ndarray:
    """One-hot of each of `space.choices` (NB201 by default): (sum of the options' counts,) floats."""
    space = _nb201() if space is None else space
    if not hasattr(space, "choices") or not callable(getattr(space, "to_choices", None)):
        raise InvalidTypeError(f"one-hot encoding needs a space with choices and to_choices(), got {short(space)}")
    choices = space.choices
    values = space.to_choices(_arch(space, arch))
    x = np.zeros(sum(len(c.options) for c in choices))
    start = 0
    for choice, value in zip(choices, values):
        x[start + choice.index(value)] = 1.0
        start += len(choice.options)
    return x


def decode_onehot(x, space=None):
    """The architecture a one-hot row stands for (the inverse of `onehot_encoding`)."""
    space = _nb201() if space is None else space
    x = np.asarray(x, dtype=float)
    choices = space.choices
    width = sum(len(c.options) for c in choices)
    if x.shape != (width,):
        raise InvalidValueError(f"a one-hot row of this space has {width} numbers, got shape {x.shape}")
    values, start = [], 0
    for choice in choices:
        block = x[start:start + len(choice.options)]
        if not (np.count_nonzero(block) == 1 and block.max() == 1.0):
            raise InvalidValueError(f"choice {choice.name!r} must have exactly one 1 in its columns, got {block}")
        values.append(choice.options[int(np.argmax(block))])
        start += len(choice.options)
    return space.from_choices(values)


def nb201_paths() -> list[tuple[int, ...]]:
    """Every input -> output path of the NB201 cell, as the edge positions (in EDGES order) it goes
    through: [(3,), (0, 4), (1, 5), (0, 2, 5)], i.e. 0->3, 0->1->3, 0->2->3, 0->1->2->3."""
    from nasnb.spaces.nb201 import EDGES

    def walk(node, edges):
        if node == 3:
            yield tuple(edges)
            return
        for e, (i, j) in enumerate(EDGES):
            if i == node:
                yield from walk(j, edges + [e])

    return sorted(walk(0, []), key=lambda p: (len(p), p))


def path_encoding(arch) -> np.ndarray:
    """BANANAS' path encoding of an NB201 cell: (155,) zeros and ones (module docstring).

    Column of a path with ops o_1..o_L (op indices in NB201's OPS): offset(L) + sum_j o_j 5**(j-1),
    with offset(1) = 0, offset(2) = 5, offset(3) = 30, the layout of the paper's released code."""
    from nasnb.spaces.nb201 import OPS

    arch = _arch(_nb201(), arch)
    k = len(OPS)
    x = np.zeros(k + k ** 2 + k ** 3)
    for path in nb201_paths():
        offset = sum(k ** length for length in range(1, len(path)))
        x[offset + sum(OPS.index(arch[e]) * k ** j for j, e in enumerate(path))] = 1.0
    return x


def encode(archs: Sequence, space=None, encoding: str = "onehot") -> np.ndarray:
    """(n, features) rows of `archs` (values or strings of `space`, NB201 by default)."""
    space = _nb201() if space is None else space
    if encoding not in ENCODINGS:
        raise UnknownNameError(f"encoding={short(encoding)} is not known; choose from {list(ENCODINGS)}, "
                               "e.g. encoding='onehot'")
    if encoding == "path" and getattr(space, "name", None) != "nb201":
        raise InvalidValueError(f"encoding='path' is defined for NB201 cells, not {short(space)}; "
                                "use encoding='onehot', which works on every space")
    one = path_encoding if encoding == "path" else (lambda a: onehot_encoding(a, space))
    rows = [one(a) for a in archs]
    if not rows:
        return np.zeros((0, len(one(space.sample(0)))))
    return np.stack(rows)


def kendall_tau(x, y) -> float:
    """Kendall's tau-b between two sequences (ties counted as in scipy.stats.kendalltau): +1 when
    every pair of items is ordered alike by both, -1 when every pair is reversed. NaN when one of
    them is constant. O(n^2) pairs, in blocks of rows: a few thousand items take well under a second."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise InvalidValueError(f"kendall_tau needs two sequences of the same length, got {len(x)} and {len(y)}")
    n = len(x)
    concordance, ties_x, ties_y = 0.0, 0.0, 0.0
    for start in range(0, n, 512):
        dx = np.sign(x[start:start + 512, None] - x[None, :])  # (block, n): +1, 0, -1 per pair
        dy = np.sign(y[start:start + 512, None] - y[None, :])
        concordance += float((dx * dy).sum())
        ties_x += float((dx == 0).sum())
        ties_y += float((dy == 0).sum())
    pairs = n * (n - 1) / 2  # every pair was counted twice above, and i == j once
    ties_x, ties_y = (ties_x - n) / 2, (ties_y - n) / 2
    denominator = math.sqrt((pairs - ties_x) * (pairs - ties_y))
    return concordance / 2 / denominator if denominator > 0 else math.nan


# ---------------------------------------------------------------- the ensemble

def _make_model(name: str, seed: int):
    """One member of the ensemble (imports scikit-learn only when a predictor is built)."""
    if name == "mlp":  # BANANAS' members are MLPs; differing initial weights make them differ
        from sklearn.neural_network import MLPRegressor

        return MLPRegressor(hidden_layer_sizes=(32, 32), max_iter=1000, random_state=seed)
    if name == "boosting":  # subsample < 1: each tree sees a random 80 %, so members differ (Friedman 2002)
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=100, max_depth=3, learning_rate=0.1, subsample=0.8,
                                         random_state=seed)
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=20, random_state=seed)


class Predictor:
    """An ensemble regressor from architectures to a metric: `fit(archs, values)`, then
    `predict(archs) -> (mean, std)`.

    Args:
        space: the archs' space (NB201 by default); any space with `choices` for one-hot.
        encoding: "onehot" (every space) or "path" (NB201, BANANAS' path encoding).
        model: "mlp" (default: see the module docstring), "boosting", "forest", or a function
            seed -> an unfitted scikit-learn-style regressor (with fit(X, y) and predict(X)).
        members: how many regressors, each with its own seed (BANANAS uses an ensemble of 5).
        seed: seeds the members; the same seed and data give the same predictions.

    Targets are standardised before fitting (an MLP learns poorly on numbers like 0.93 +- 0.01) and
    predictions turned back into the metric's units.
    """

    def __init__(self, space=None, *, encoding: str = "onehot", model: str | Callable = "mlp",
                 members: int = 5, seed: int = 0):
        self.space = _nb201() if space is None else space
        if encoding not in ENCODINGS:
            raise UnknownNameError(f"encoding={short(encoding)} is not known; choose from {list(ENCODINGS)}, "
                                   "e.g. encoding='onehot'")
        encode([], self.space, encoding)  # a path encoding of a non-NB201 space is refused now
        self.encoding = encoding
        if not callable(model) and model not in MODELS:
            raise UnknownNameError(f"model={short(model)} is not known; choose from {list(MODELS)} or give a "
                                   "function seed -> regressor, e.g. model='boosting'")
        self.model = model
        self.members = check_positive_int("members", members, example=5)
        self.seed = check_seed("seed", seed)
        self._fitted: list = []
        self._scale = (0.0, 1.0)  # (mean, std) of the targets

    def fit(self, archs: Sequence, values: Sequence[float]) -> "Predictor":
        """Fit every member to (encoding of archs, values); returns self."""
        archs = list(archs)
        y = self._targets(values, len(archs))
        X = encode(archs, self.space, self.encoding)
        mean, std = float(y.mean()), float(y.std())
        self._scale = (mean, std if std > 0 else 1.0)
        seeds = np.random.SeedSequence(self.seed).generate_state(self.members).tolist()
        fitted = []
        with warnings.catch_warnings():  # an MLP that stops at max_iter still predicts; say nothing
            warnings.simplefilter("ignore", category=UserWarning)
            from sklearn.exceptions import ConvergenceWarning

            warnings.simplefilter("ignore", category=ConvergenceWarning)
            for member_seed in seeds:
                regressor = self.model(int(member_seed)) if callable(self.model) else _make_model(self.model, int(member_seed))
                regressor.fit(X, (y - self._scale[0]) / self._scale[1])
                fitted.append(regressor)
        self._fitted = fitted
        return self

    def predict(self, archs: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) over the members, each of shape (len(archs),), in the metric's units."""
        if not self._fitted:
            raise InvalidValueError("this Predictor is not fitted yet; call fit(archs, values) first, "
                                    "e.g. predictor.fit(archs[:50], accuracies[:50])")
        archs = list(archs)
        if not archs:
            return np.zeros(0), np.zeros(0)
        X = encode(archs, self.space, self.encoding)
        predictions = np.stack([m.predict(X) for m in self._fitted]) * self._scale[1] + self._scale[0]
        return predictions.mean(axis=0), predictions.std(axis=0)

    @property
    def fitted(self) -> bool:
        return bool(self._fitted)

    def _targets(self, values, n: int) -> np.ndarray:
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise InvalidTypeError(f"values must be a sequence of numbers, got {short(values)}; "
                                   "e.g. values=[0.91, 0.87]")
        try:
            y = np.asarray(values, dtype=float).ravel()
        except (TypeError, ValueError):
            raise InvalidTypeError(f"values must be numbers, got {short(values)}; e.g. values=[0.91, 0.87]") from None
        if n == 0:
            raise InvalidValueError("fit() got no architectures; give at least 2 trained ones, "
                                    "e.g. fit([arch1, arch2], [0.91, 0.87])")
        if len(y) != n:
            raise InvalidValueError(f"fit() got {n} architectures but {len(y)} values; give one value per "
                                    "architecture")
        if n < 2:
            raise InvalidValueError("fit() needs at least 2 architectures to learn from, got 1")
        bad = np.flatnonzero(~np.isfinite(y))
        if len(bad):
            raise InvalidValueError(f"values must be finite numbers; values[{bad[0]}] = {y[bad[0]]} "
                                    "(drop failed trials before fitting)")
        return y

    def __repr__(self) -> str:
        model = self.model if isinstance(self.model, str) else getattr(self.model, "__name__", "custom")
        return (f"Predictor(space={self.space!r}, encoding={self.encoding!r}, model={model!r}, "
                f"members={self.members}, seed={self.seed})")
