"""One registry per kind of thing a user names: spaces, strategies, views.

Plain dicts (as timm's model registry): a name maps to ``"module:attribute"``, imported on first
use, so that reading a registry loads neither torch models nor matplotlib. The CLI, the evaluators
and the dashboard all look names up here; there is no other table of names.

    registry.get("space", "nb201")()            # NB201Space()
    registry.names("strategy")                   # ['automl_zero', 'darts', 'enas', 'evolution', ...]
    registry.register("strategy", "mine", "mypackage.search:MySearch")
"""
from __future__ import annotations

import importlib
from typing import Any

from nasnb.errors import InvalidValueError, UnknownNameError

REGISTRIES: dict[str, dict[str, str]] = {
    "space": {
        "nb201": "nasnb.spaces.nb201:NB201Space",
        "darts": "nasnb.spaces.darts:DartsSpace",
        "toy": "nasnb.spaces.toy:ToySpace",
        "mobilenet": "nasnb.spaces.mobilenet:MobileNetSpace",  # ProxylessNAS / MobileNetV2 chains
        "layers": "nasnb.spaces.layers:LayerSpace",  # MetaQNN's conv / pool / FC chains
        "transformer": "nasnb.spaces.transformer:TransformerSpace",  # attention / FFN / norm / activation per layer
        "programs": "nasnb.spaces.programs:ProgramSpace",  # AutoML-Zero's programs, every op (Real et al., 2020)
        "programs-linear": "nasnb.spaces.programs:linear_regression_space",  # the authors' linear example
    },
    "strategy": {
        "random": "nasnb.strategies.random:RandomSearch",
        "evolution": "nasnb.strategies.evolution:RegularizedEvolution",
        "reinforce": "nasnb.strategies.reinforce:Reinforce",
        "darts": "nasnb.strategies.darts:DARTS",
        "enas": "nasnb.strategies.enas:ENAS",
        "optuna": "nasnb.strategies.optuna_search:OptunaSearch",  # needs the optuna extra
        "nsga2": "nasnb.strategies.nsga2:NSGA2",  # several objectives: nasnb/objectives.py
        "proxyless": "nasnb.strategies.proxyless:ProxylessNAS",  # path binarisation on MobileNetSpace (Cai et al., 2019)
        "hyperband": "nasnb.strategies.halving:Hyperband",  # budgets: evaluator(arch, budget=epochs)
        "halving": "nasnb.strategies.halving:SuccessiveHalving",
        "metaqnn": "nasnb.strategies.qlearning:MetaQNN",  # tabular Q-learning over layers (Baker et al., 2017)
        "predictor": "nasnb.strategies.predictor:PredictorGuided",  # BANANAS-style: a surrogate picks what to train
        "automl_zero": "nasnb.strategies.automl_zero:AutoMLZero",  # programs: ProgramSpace, ProgramEvaluator's fitness
    },
    # A view draws a search's history: view(history, upto=t, ax=None) -> matplotlib Figure.
    "view": {
        "progress": "nasnb.viz.search:plot_progress",
        "population": "nasnb.viz.search:plot_population",
        "policy": "nasnb.viz.policy:plot_policy",
        "alphas": "nasnb.viz.alphas:plot_alphas",
        "pareto": "nasnb.viz.pareto:plot_pareto",  # several objectives: the front and the hypervolume
        "qtable": "nasnb.viz.qtable:plot_qtable",  # a MetaQNN agent's Q-values, ε and rewards
        "program": "nasnb.viz.program:plot_program",  # AutoML-Zero's best program as code
        "rungs": "nasnb.viz.rungs:plot_rungs",  # successive halving / Hyperband: every trial at its budget, who went on
    },
}


def _registry(kind: str) -> dict[str, str]:
    if kind not in REGISTRIES:
        raise UnknownNameError(f"kind={kind!r} is not known; choose from {sorted(REGISTRIES)}")
    return REGISTRIES[kind]


def names(kind: str) -> list[str]:
    """The registered names of one kind, sorted."""
    return sorted(_registry(kind))


def target(kind: str, name: str) -> str:
    """The "module:attribute" a name stands for."""
    registry = _registry(kind)
    if not isinstance(name, str) or name not in registry:
        raise UnknownNameError(f"unknown {kind} {name!r}; choose from {sorted(registry)}")
    return registry[name]


def get(kind: str, name: str) -> Any:
    """The class or function registered as `name` (imported now)."""
    module, _, attribute = target(kind, name).partition(":")
    return getattr(importlib.import_module(module), attribute)


def name_of(kind: str, obj: Any) -> str | None:
    """The registered name of a class or function (or of an object's class), or None."""
    cls = obj if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__") else type(obj)
    path = f"{cls.__module__}:{cls.__qualname__}"
    return next((name for name, where in _registry(kind).items() if where == path), None)


def register(kind: str, name: str, where: str, *, replace: bool = False) -> None:
    """Add `name` -> "module:attribute" to a registry (e.g. your own strategy, for the CLI)."""
    registry = _registry(kind)
    if not isinstance(name, str) or not name:
        raise InvalidValueError(f"a registry name is a non-empty string, got {name!r}")
    module, sep, attribute = where.partition(":") if isinstance(where, str) else ("", "", "")
    if not (module and sep and attribute):
        raise InvalidValueError(f"where={where!r} must read 'module:attribute', e.g. 'mypackage.search:MySearch'")
    if name in registry and registry[name] != where and not replace:
        raise InvalidValueError(f"{kind} {name!r} is already registered as {registry[name]!r}; pass replace=True")
    registry[name] = where
