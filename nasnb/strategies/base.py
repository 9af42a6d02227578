"""The one loop every multi-trial search shares: ask -> evaluate -> tell.

A strategy *asks* for an architecture to try, someone *evaluates* it, and the strategy is *told*
the result (Optuna's ask/tell interface). `step()` does the three in a row; `run(n)` is a thin loop
around `step()`. Subclasses implement two methods and nothing else of the loop:

    propose(self) -> (arch, info)       # which architecture next, and why (info goes into the Trial)
    observe(self, trial) -> None        # learn from a finished trial (update population / policy)

plus `_extra_state` / `_load_extra_state` when they hold state beyond the rng and the history.

All randomness flows from `self.rng` (numpy) and `self.torch_generator` (torch), both seeded from
`seed`; the same seed gives the same history. `state_dict()` holds everything needed to continue
exactly where a run stopped, and `run(n, checkpoint=path)` writes it after every trial.
"""
from __future__ import annotations

import dataclasses
import io
import json
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from nasnb.history import History, Trial, atomic_write
from nasnb.spaces.base import Arch, SearchSpace

Evaluator = Callable[[Arch], dict]


@dataclasses.dataclass(frozen=True)
class Proposal:
    """What `ask()` returns: the architecture to evaluate and the strategy's reasons (`info`)."""

    arch: Arch
    info: dict


def jsonable(value: Any) -> Any:
    """`value` with numpy scalars, tuples, tensors and arrays turned into plain JSON types."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return jsonable(value.tolist())
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{type(value).__name__} is not JSON-friendly; evaluators and strategies must "
                    "return numbers, strings, lists and dicts")


class Strategy:
    """Base class of the multi-trial search strategies (RandomSearch, RegularizedEvolution, Reinforce).

    Args:
        space: the search space (NB201Space, DartsSpace, ToySpace, ...).
        evaluator: any callable ``arch -> dict of metrics`` (e.g. a `TrainEvaluator`).
        metric: the metric to maximise (minimise something by reporting its negative).
        seed: seeds the numpy rng and the torch generator the strategy draws from.
    """

    panels = ("cell", "progress")  # the views a dashboard shows for this strategy (nasnb.widgets)

    def __init__(self, space: SearchSpace, evaluator: Evaluator, *, metric: str = "val_accuracy", seed: int = 0):
        self.space = space
        self.evaluator = evaluator
        self.metric = metric
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.torch_generator = torch.Generator().manual_seed(seed)
        self.history = History(metric=metric, meta={"strategy": type(self).__name__,
                                                    "space": getattr(space, "name", type(space).__name__),
                                                    "seed": seed})
        self._pending: list[Proposal] = []  # asked, not yet told
        self._subscribers: list[Callable[[Trial], None]] = []

    # ---------------------------------------------------------------- what subclasses write

    def propose(self) -> tuple[Arch, dict]:
        raise NotImplementedError(f"{type(self).__name__} must implement propose() -> (arch, info)")

    def observe(self, trial: Trial) -> None:
        """Learn from a finished trial; the default learns nothing (random search)."""

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, state: dict) -> None:
        pass

    def state(self) -> dict:
        """A JSON-friendly snapshot for views; subclasses add their population / policy."""
        best = self.best()
        return {"strategy": type(self).__name__, "trials": len(self.history), "metric": self.metric,
                "best": None if best is None else best.to_dict()}

    # ---------------------------------------------------------------- ask / tell

    def ask(self) -> Proposal:
        """The next architecture to evaluate (evaluate it, then pass the result to `tell`)."""
        arch, info = self.propose()
        proposal = Proposal(arch, jsonable(info))
        self._pending.append(proposal)
        return proposal

    def tell(self, proposal: Proposal | Arch, metrics: dict, seconds: float = 0.0) -> Trial:
        """Record the metrics of an asked architecture; returns the new Trial."""
        metrics = jsonable(metrics)
        if self.metric not in metrics:  # checked first: a refused tell leaves the proposal pending
            raise KeyError(f"the evaluator returned {sorted(metrics)}, without the metric {self.metric!r} "
                           f"this search maximises; pass metric=... to the strategy or report it")
        proposal = self._take_pending(proposal)
        trial = Trial(len(self.history), self.space.format(proposal.arch), metrics, float(seconds), proposal.info)
        self.history.append(trial)
        self.observe(trial)
        for callback in list(self._subscribers):
            callback(trial)
        return trial

    def _take_pending(self, proposal) -> Proposal:
        for i, pending in enumerate(self._pending):
            if pending is proposal or (not isinstance(proposal, Proposal) and pending.arch == proposal):
                return self._pending.pop(i)
        if isinstance(proposal, Proposal):
            raise ValueError("tell() got a proposal this search did not ask for (or was already told)")
        raise ValueError(f"tell() got an architecture nobody asked for: {proposal!r}; call ask() first")

    # ---------------------------------------------------------------- the loop

    def step(self) -> Trial:
        """One ask -> evaluate -> tell."""
        proposal = self.ask()
        start = time.perf_counter()
        metrics = self.evaluator(proposal.arch)
        return self.tell(proposal, metrics, time.perf_counter() - start)

    def run(self, n: int, *, checkpoint=None, time_budget: float | None = None, executor: Executor | None = None,
            batch: int | None = None, progress: bool = True) -> History:
        """Run until the history holds `n` trials (or `time_budget` seconds have passed).

        checkpoint: a file path. If it exists, the search first resumes from it; after every trial
            the full state is written there (atomically), so an interrupted run loses no finished
            evaluation and, resumed, gives the same history as an uninterrupted run.
        executor: a `concurrent.futures.Executor` (a ProcessPoolExecutor, or a Dask
            `client.get_executor()`): `batch` proposals are asked at once, evaluated concurrently and
            told in the order they were asked, so the history does not depend on which worker
            finishes first. `batch` defaults to the executor's worker count.
        """
        from tqdm.auto import tqdm

        if checkpoint is not None and Path(checkpoint).exists():
            self.load_state_dict(torch.load(checkpoint, weights_only=True))
        if executor is not None:
            batch = batch or getattr(executor, "_max_workers", None) or 2
        start = time.perf_counter()
        bar = tqdm(total=n, initial=min(len(self.history), n), desc=type(self).__name__, disable=not progress)
        try:
            while len(self.history) < n:
                if time_budget is not None and time.perf_counter() - start > time_budget:
                    break
                if executor is None:
                    trials = [self.step()]
                else:
                    trials = self._step_parallel(executor, min(batch, n - len(self.history)))
                if checkpoint is not None:
                    self.save(checkpoint)
                bar.update(len(trials))
                bar.set_postfix({f"best {self.metric}": f"{self.best().value(self.metric):.4g}"})
        finally:
            bar.close()
        return self.history

    def _step_parallel(self, executor: Executor, k: int) -> list[Trial]:
        proposals = [self.ask() for _ in range(k)]
        futures = [executor.submit(_timed_call, self.evaluator, p.arch) for p in proposals]
        results = [f.result() for f in futures]  # in ask order, whoever finishes first
        return [self.tell(p, metrics, seconds) for p, (metrics, seconds) in zip(proposals, results)]

    def best(self) -> Trial | None:
        """The best trial so far (highest `metric`)."""
        return self.history.best(self.metric)

    def subscribe(self, callback: Callable[[Trial], None]) -> Callable[[], None]:
        """Call `callback(trial)` after every trial; returns a function that unsubscribes it."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    # ---------------------------------------------------------------- checkpoint / resume / reset

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: rng states, history, the subclass's own state.
        Plain types and tensors only, so `torch.load(path, weights_only=True)` reads it back."""
        if self._pending:
            raise RuntimeError(f"{len(self._pending)} asked architectures were never told; tell() them "
                               "before saving, or their evaluations would be lost on resume")
        return {
            "strategy": type(self).__name__,
            "seed": self.seed,
            "rng": json.dumps(self.rng.bit_generator.state),
            "torch_generator": self.torch_generator.get_state(),
            "history": self.history.to_json(),
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("strategy") != type(self).__name__:
            raise ValueError(f"this checkpoint is of a {state.get('strategy')} search, not {type(self).__name__}")
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.torch_generator.set_state(state["torch_generator"])
        self.history = History.from_json(state["history"])
        self._pending = []
        self._load_extra_state(state["extra"])

    def save(self, path) -> None:
        """Write `state_dict()` to `path` atomically (torch.save format, loadable with weights_only=True)."""
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        atomic_write(path, buffer.getvalue())

    def reset(self) -> None:
        """Back to the state right after construction: same seed, empty history."""
        self.load_state_dict(self._initial_state)

    def _remember_initial_state(self) -> None:
        """Subclasses call this at the end of __init__ so that `reset()` can go back."""
        self._initial_state = self.state_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(space={self.space!r}, trials={len(self.history)}, seed={self.seed})"


def _timed_call(evaluator: Evaluator, arch: Arch) -> tuple[dict, float]:
    start = time.perf_counter()
    metrics = evaluator(arch)
    return metrics, time.perf_counter() - start
