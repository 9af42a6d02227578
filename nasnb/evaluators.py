"""Evaluators: turn an architecture into numbers a search strategy can compare.

An evaluator is any callable ``arch -> dict of metrics``. A strategy only ever calls it and reads
the metric it maximises (``"val_accuracy"`` by default), so a lambda over a lookup table, a
surrogate model or a full training run are interchangeable.

`TrainEvaluator` is the honest, expensive one: it builds the network, trains it from scratch and
measures it. It is what "evaluation" meant in the first NAS papers (Zoph & Le 2017 trained every
child network for 50 epochs); everything cheaper is an approximation of it.
"""
from __future__ import annotations

import inspect
import time
from typing import Any

import torch

from nasnb import registry, train
from nasnb.checks import check_bool, check_float, check_int, check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError, UnknownNameError
from nasnb.pool import process_pool  # noqa: F401  (the contract's nasnb.evaluators.process_pool)
from nasnb.spaces.base import Arch, BuildableSpace, SearchSpace

# Network sizes that train in seconds on a laptop CPU, keyed by the space's registry name. The
# papers' sizes are one argument away: TrainEvaluator(cifar, build_kwargs=dict(C=16, N=5)) is
# NAS-Bench-201's training network.
QUICK_BUILD = {
    "nb201": dict(C=8, N=1),
    "darts": dict(C=8, layers=5, auxiliary=False, drop_path_prob=0.0),
}


def buildable_spaces() -> list[str]:
    """Registered spaces that build networks: those with a QUICK_BUILD size first (nb201, darts)."""
    names = registry.names("space")
    ordered = [name for name in QUICK_BUILD if name in names] + [n for n in names if n not in QUICK_BUILD]
    return [name for name in ordered
            if all(callable(getattr(registry.get("space", name), m, None)) for m in ("build", "validate"))]


def build_parameters(space) -> list[str] | None:
    """The keyword arguments ``space.build(arch, ...)`` takes (a space or its class; None: any)."""
    cls = space if isinstance(space, type) else type(space)
    parameters = list(inspect.signature(cls.build).parameters.values())[2:]  # after self and arch
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters]


def space_for(arch: Arch) -> SearchSpace:
    """The first registered space that builds networks and whose `validate` accepts `arch`
    (NB201 first, then DARTS): a tuple of 6 NB201 op names, a DARTS Genotype."""
    reasons = []
    for name in buildable_spaces():
        space = registry.get("space", name)()
        try:
            space.validate(arch)
        except (ValueError, TypeError, KeyError, IndexError) as err:
            reasons.append(f"{name}: {err}")
            continue
        return space
    raise InvalidValueError(f"arch={short(arch)} is in no registered space that builds networks "
                            f"({'; '.join(reasons)}); e.g. arch=NB201Space().sample(0), or name the space: "
                            "TrainEvaluator(data, space=...)")


def check_build_kwargs(build_kwargs, space, data) -> dict | None:
    """`build_kwargs`: None, or a dict of network sizes that `space.build` takes (without a space:
    that the build of one of the registered spaces takes)."""
    if build_kwargs is None:
        return None
    if not isinstance(build_kwargs, dict) or not all(isinstance(k, str) for k in build_kwargs):
        raise InvalidTypeError(f"build_kwargs must be a dict of keyword arguments to space.build, got "
                               f"{short(build_kwargs)}; e.g. build_kwargs=dict(C=16, N=5)")
    spaces = {space.name: space} if space is not None else {n: registry.get("space", n) for n in buildable_spaces()}
    takes = {name: build_parameters(s) for name, s in spaces.items()}
    for key in build_kwargs:
        if not any(names is None or key in names for names in takes.values()):
            raise UnknownNameError(f"build_kwargs has {key!r}, which space.build does not take; "
                                   f"the build of each space takes {takes}")
    checked = dict(build_kwargs)
    for key, value in build_kwargs.items():
        if key in ("C", "N", "layers", "stem_multiplier", "num_classes", "in_channels"):
            checked[key] = check_positive_int(key, value, example=8)
        elif key == "auxiliary":
            checked[key] = check_bool(key, value)
        elif key == "drop_path_prob":
            checked[key] = check_float(key, value, minimum=0.0, maximum=1.0, example=0.2)
    for key in ("num_classes", "in_channels"):  # the data decides these; a mismatch fails only later
        if key in checked and checked[key] != getattr(data, key):
            raise InvalidValueError(f"build_kwargs {key}={checked[key]}, but the data has {key}="
                                    f"{getattr(data, key)}; leave it out, it is taken from the data")
    return checked


class TrainEvaluator:
    """Build, train from scratch and measure an architecture.

    ``evaluator(arch)`` returns the metrics listed in `evaluator.metrics`: ``val_accuracy``,
    ``train_accuracy``, ``train_loss``, ``val_curve`` (validation accuracy after each epoch),
    ``epochs``, ``seconds`` (training time), ``trained_arch``, ``params``, and ``flops`` and
    ``test_accuracy`` when asked for; accuracies are fractions in [0, 1].

    An evaluation does not depend on the order of evaluations: isomorphic cells (equal
    ``space.canonical``) compute the same function, so the evaluator trains the class's canonical
    member, once, with the same seed for every class, and reports it as ``trained_arch``. The
    accuracies and losses are that training's; ``params`` and ``flops`` are those of `arch`'s own
    network (members of a class can differ in parameters, e.g. a conv on an edge that feeds nothing).

    Args:
        data: a `nasnb.data.TensorData` (e.g. ``nasnb.data.load("digits")``).
        epochs: training epochs per architecture.
        space: the search space; by default found per architecture (`space_for`).
        build_kwargs: network size passed to ``space.build`` (default: `QUICK_BUILD` for the space).
        test: also report test accuracy (the search must never select on it; it is for plots).
        **fit_kwargs: passed to `nasnb.train.fit` (batch_size, lr, device, amp, ...).

    ``evaluator(arch, budget=b)`` trains for `b` epochs instead of `epochs`, from scratch, with the
    learning-rate schedule over those `b` epochs (successive halving and Hyperband evaluate at budgets).

    Every argument, fit_kwargs included, is checked here, not at the first training.
    """

    def __init__(
        self,
        data,
        epochs: int = 3,
        *,
        space: SearchSpace | None = None,
        build_kwargs: dict | None = None,
        seed: int = 0,
        test: bool = True,
        count_flops: bool = True,
        **fit_kwargs: Any,
    ):
        train.check_data(data)
        if space is not None and not isinstance(space, BuildableSpace):
            raise InvalidTypeError(f"space must be a search space that builds networks, got {short(space)}; "
                                   "e.g. space=NB201Space()")
        self.data = data
        self.epochs = check_positive_int("epochs", epochs, example=3)
        self.space = space
        self.build_kwargs = check_build_kwargs(build_kwargs, space, data)
        self.seed = check_int("seed", seed, minimum=0, maximum=train.MAX_SEED, example=0)
        self.test = check_bool("test", test)
        self.count_flops = check_bool("count_flops", count_flops)
        self.fit_kwargs = {"progress": False, **fit_kwargs}
        self.fit_settings = train.check_fit_settings(self.fit_kwargs)  # fit's every setting, resolved
        if self.fit_settings["eval_split"] != "val":
            raise InvalidValueError(f"eval_split={self.fit_settings['eval_split']!r}: a TrainEvaluator reports "
                                    "val_accuracy and a search must never select on test data; leave eval_split out")
        self.cache: dict[Arch, dict] = {}  # canonical arch -> metrics of its training
        self.budget_cache: dict[tuple, dict] = {}  # (canonical arch, epochs) -> metrics, other budgets than epochs
        self.costs: dict[Arch, dict] = {}  # arch -> its own params (and FLOPs)
        self.trainings = 0  # how many networks were actually trained (cache misses)

    @property
    def metrics(self) -> tuple:
        """The names of the metrics `evaluator(arch)` returns."""
        names = ("val_accuracy", "train_accuracy", "train_loss", "val_curve", "epochs", "seconds",
                 "trained_arch", "params")
        return names + ("flops",) * self.count_flops + ("test_accuracy",) * self.test

    def settings(self) -> dict:
        """Everything that changes this evaluator's results, as JSON types (no tuples): a search
        stores it with its checkpoint and refuses to resume with an evaluator whose settings differ."""
        data = self.data
        spaces = [self.space.name] if self.space is not None else buildable_spaces()
        # fit's seed is this evaluator's own (above); progress bars and callbacks change no result
        fit = {k: v for k, v in self.fit_settings.items() if k not in ("progress", "callback", "seed")}
        fit["device"] = str(fit["device"])  # a torch.device is not JSON
        return {
            "evaluator": type(self).__name__,
            "data": {"name": data.name, "train_size": len(data.train[1]), "val_size": len(data.val[1]),
                     "test_size": len(data.test[1]), "num_classes": data.num_classes,
                     "input_shape": list(data.input_shape), "fingerprint": data.fingerprint()},
            "epochs": self.epochs,
            "seed": self.seed,
            "build_kwargs": {name: self._network_kwargs(name) for name in spaces},
            "fit": fit,
            "test": self.test,
            "count_flops": self.count_flops,
            "space": None if self.space is None else repr(self.space),
        }

    def network_kwargs(self, space: SearchSpace) -> dict:
        """The keyword arguments of ``space.build`` for this data and size."""
        return self._network_kwargs(space.name)

    def _network_kwargs(self, space_name: str) -> dict:
        size = QUICK_BUILD.get(space_name, {}) if self.build_kwargs is None else self.build_kwargs
        return {"num_classes": self.data.num_classes, "in_channels": self.data.in_channels, **size}

    def build(self, arch: Arch) -> torch.nn.Module:
        """The network this evaluator trains for `arch` (with its seeded initial weights)."""
        space = self.space or space_for(arch)
        kwargs = self.network_kwargs(space)
        takes = build_parameters(space)
        unknown = [k for k in kwargs if takes is not None and k not in takes]
        if unknown:  # build_kwargs meant for another space (the space was only found now)
            raise UnknownNameError(f"build_kwargs has {unknown}, which {space.name}'s build does not take; "
                                   f"it takes {takes}")
        with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
            torch.manual_seed(self.seed)
            return space.build(arch, **kwargs)

    def __call__(self, arch: Arch, budget: int | None = None) -> dict:
        epochs = self.epochs if budget is None else check_positive_int("budget", budget, example=self.epochs)
        space = self.space or space_for(arch)
        arch = space.validate(arch)  # a plain, hashable value (a list or an array becomes a tuple)
        representative = space.canonical(arch)
        if epochs == self.epochs:
            cache, key = self.cache, representative
        else:
            cache, key = self.budget_cache, (representative, epochs)
        if key not in cache:
            cache[key] = self._train(representative, epochs)
        if arch not in self.costs:
            self.costs[arch] = self._costs(arch)
        metrics = {**cache[key], "trained_arch": space.format(representative), **self.costs[arch]}
        metrics["val_curve"] = list(metrics["val_curve"])  # the caller's copy, not the cache's list
        return {name: metrics[name] for name in self.metrics}

    def evaluate(self, arch: Arch, budget: int | None = None) -> dict:
        """The same as ``evaluator(arch, budget)``."""
        return self(arch, budget)

    def _costs(self, arch: Arch) -> dict:
        """Parameters and FLOPs of `arch`'s own network: cheap, no training."""
        model = self.build(arch)
        costs = {"params": train.count_params(model)}
        if self.count_flops:
            costs["flops"] = train.count_flops(model, self.data.input_shape)
        return costs

    def _train(self, arch: Arch, epochs: int) -> dict:
        model = self.build(arch)
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            records = train.fit(model, self.data, epochs, seed=self.seed, **self.fit_kwargs)
        metrics = {"seconds": time.perf_counter() - start}
        self.trainings += 1
        last = records[-1]
        metrics.update(
            val_accuracy=last["val_accuracy"],
            train_accuracy=last["train_accuracy"],
            train_loss=last["loss"],
            epochs=epochs,
            val_curve=[r["val_accuracy"] for r in records],
        )
        if self.test:
            device = self.fit_kwargs.get("device", "auto")
            metrics["test_accuracy"] = train.evaluate(model, self.data, split="test", device=device)["accuracy"]
        return metrics

    def __repr__(self) -> str:
        return (
            f"TrainEvaluator(data={getattr(self.data, 'name', '?')!r}, epochs={self.epochs}, "
            f"cached={len(self.cache)}, trainings={self.trainings})"
        )



from nasnb.bench.evaluator import TableEvaluator  # noqa: E402,F401  (the contract's nasnb.evaluators.TableEvaluator)
