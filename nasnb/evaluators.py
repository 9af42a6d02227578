"""Evaluators: turn an architecture into numbers a search strategy can compare.

An evaluator is any callable ``arch -> dict of metrics``. A strategy only ever calls it and reads
the metric it maximises (``"val_accuracy"`` by default), so a lambda over a lookup table, a
surrogate model or a full training run are interchangeable.

`TrainEvaluator` is the honest, expensive one: it builds the network, trains it from scratch and
measures it. It is what "evaluation" meant in the first NAS papers (Zoph & Le 2017 trained every
child network for 50 epochs); everything cheaper is an approximation of it.
"""
from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from nasnb import train
from nasnb.spaces.base import Arch, SearchSpace

# Network sizes that train in seconds on a laptop CPU. The papers' sizes are one argument away:
# TrainEvaluator(cifar, build_kwargs=dict(C=16, N=5)) is NAS-Bench-201's training network.
QUICK_BUILD = {
    "nb201": dict(C=8, N=1),
    "darts": dict(C=8, layers=5, auxiliary=False, drop_path_prob=0.0),
}


def process_pool(workers: int = 2, threads_per_worker: int = 1) -> ProcessPoolExecutor:
    """A process pool for ``search.run(n, executor=process_pool())``: several trainings at once.

    Workers are started with "spawn": a process *forked* from one that has already used torch's
    thread pool can hang in its first parallel op. Each worker uses `threads_per_worker` torch
    threads: small networks do not use two threads well, and two 1-thread workers train 1.4-1.7x
    more networks per second than one 2-thread process on a 2-core machine (PERFORMANCE-NOTES).
    Results are reproducible run to run, but not bit-identical to a run with another thread count.
    The evaluator is pickled to the workers, so it must be importable (TrainEvaluator is; a
    function defined in a notebook is not, under spawn).
    """
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=torch.set_num_threads, initargs=(threads_per_worker,))


def space_for(arch: Arch) -> SearchSpace:
    """The space an architecture belongs to, from its type: a Genotype is a DARTS cell pair,
    anything else is read as an NB201 cell (and validated as one)."""
    from nasnb.spaces import DartsSpace, Genotype, NB201Space

    return DartsSpace() if isinstance(arch, Genotype) else NB201Space()


class TrainEvaluator:
    """Build, train from scratch and measure an architecture.

    ``evaluator(arch)`` returns ``{"val_accuracy", "test_accuracy", "train_accuracy", "train_loss",
    "params", "flops", "seconds", "epochs", "val_curve"}``; accuracies are fractions in [0, 1],
    ``seconds`` is the training time, ``val_curve`` the validation accuracy after each epoch.

    Every architecture is trained with the same seed, so results do not depend on the order a
    search happens to evaluate them in, and isomorphic cells (equal ``space.canonical``) are
    trained once: the result is cached.

    Args:
        data: a `nasnb.data.TensorData` (e.g. ``nasnb.data.load("digits")``).
        epochs: training epochs per architecture.
        space: the search space; by default inferred from the first architecture's type.
        build_kwargs: network size passed to ``space.build`` (default: `QUICK_BUILD` for the space).
        test: also report test accuracy (the search must never select on it; it is for plots).
        **fit_kwargs: passed to `nasnb.train.fit` (batch_size, lr, device, amp, ...).
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
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        self.data = data
        self.epochs = epochs
        self.space = space
        self.build_kwargs = build_kwargs
        self.seed = seed
        self.test = test
        self.count_flops = count_flops
        self.fit_kwargs = {"progress": False, **fit_kwargs}
        self.cache: dict[Arch, dict] = {}  # canonical arch -> metrics
        self.trainings = 0  # how many networks were actually trained (cache misses)

    def network_kwargs(self, space: SearchSpace) -> dict:
        size = QUICK_BUILD.get(space.name, {}) if self.build_kwargs is None else self.build_kwargs
        return {"num_classes": self.data.num_classes, "in_channels": self.data.in_channels, **size}

    def build(self, arch: Arch) -> torch.nn.Module:
        """The network this evaluator trains for `arch` (with its seeded initial weights)."""
        space = self.space or space_for(arch)
        with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
            torch.manual_seed(self.seed)
            return space.build(arch, **self.network_kwargs(space))

    def __call__(self, arch: Arch) -> dict:
        space = self.space or space_for(arch)
        key = space.canonical(arch)
        if key not in self.cache:
            self.cache[key] = self._train(arch)
        return dict(self.cache[key])

    def _train(self, arch: Arch) -> dict:
        model = self.build(arch)
        metrics = {"params": train.count_params(model)}
        if self.count_flops:
            metrics["flops"] = train.count_flops(model, self.data.input_shape)
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            records = train.fit(model, self.data, self.epochs, seed=self.seed, **self.fit_kwargs)
        metrics["seconds"] = time.perf_counter() - start
        self.trainings += 1
        last = records[-1]
        metrics.update(
            val_accuracy=last["val_accuracy"],
            train_accuracy=last["train_accuracy"],
            train_loss=last["loss"],
            epochs=self.epochs,
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
