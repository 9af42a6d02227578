"""The loop every multi-trial search shares: ask -> evaluate -> tell (a `Search` whose steps are trials).

A strategy *asks* for an architecture to try, someone *evaluates* it, and the strategy is *told*
the result (Optuna's ask/tell interface). `step()` does the three in a row; `run(n)` is a thin loop
around `step()`. Subclasses implement two methods and nothing else of the loop:

    propose(self) -> (arch, info)       # which architecture next, and why (info goes into the Trial)
    observe(self, trial) -> None        # learn from a complete trial (update population / policy)

plus `settings()` (their hyperparameters, checked when a checkpoint is resumed) and `_extra_state`
/ `_load_extra_state` when they hold state beyond the rngs and the history.

How a trial ends (`Trial.state`): "complete" when the evaluator returned a finite number for the
metric; "failed" when it raised, or returned NaN, an infinity or nothing for the metric (the error
is kept in `Trial.error`); "pruned" when told so. The search goes on after a failure, and `observe`
only ever sees complete trials: a NaN never reaches a population or a controller's update.

A proposal whose `info` has a ``"budget"`` (a number of epochs: successive halving, Hyperband) is
evaluated as ``evaluator(arch, budget=info["budget"])``, by `step()` and on executors alike; an
evaluator that takes no `budget` argument is refused with a clear error at the first such proposal.

Proposals asked and not yet told are *pending*. They are part of the search's state (a checkpoint
keeps them, and `step()` / `run()` evaluate them before asking for new ones), and `drop()` throws
them away, so a proposal nobody will evaluate never skews what the strategy proposes next.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import time
import traceback
from concurrent.futures import Executor
from typing import Callable, Mapping

from nasnb.checks import check_float, check_positive_int, short
from nasnb.errors import EvaluationError, InvalidTypeError, InvalidValueError
from nasnb.history import Trial, finite_number, record_from_dict
from nasnb.spaces.base import Arch, SearchSpace
from nasnb.storage import dumps
from nasnb.strategies.search import Search, jsonable

Evaluator = Callable[[Arch], dict]
__all__ = ["Proposal", "Search", "Strategy", "jsonable"]


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: two asks of one arch are two proposals
class Proposal:
    """What `ask()` returns: the architecture to evaluate and the strategy's reasons (`info`)."""

    arch: Arch
    info: dict


class Strategy(Search):
    """Base class of the multi-trial search strategies (RandomSearch, RegularizedEvolution, Reinforce).

    Args:
        space: the search space (NB201Space, DartsSpace, ToySpace, ...).
        evaluator: any callable ``arch -> dict of metrics`` (e.g. a `TrainEvaluator`). One that
            lists what it reports (``evaluator.metrics``) is checked to report `metric`; one with
            ``evaluator.settings()`` has them checked when a checkpoint is resumed.
        metric: the metric to maximise (minimise something by reporting its negative).
        seed: seeds the numpy rng and the torch generator the strategy draws from.
    """

    panels = ("cell", "progress")
    # True when propose() is a function of the search's state alone (its rngs, what it has observed,
    # what is pending): asked again after that state is restored, it makes the same proposals. A
    # checkpoint then writes the state file about once a second instead of after every trial, and a
    # resume replays the journal's newer trials (nasnb/storage.py). False is always safe.
    replayable = False

    def __init__(self, space: SearchSpace, evaluator: Evaluator, *, metric: str = "val_accuracy", seed: int = 0):
        super().__init__(space, metric=metric, seed=seed)
        if not callable(evaluator):
            raise InvalidTypeError(f"evaluator must be a function arch -> dict of metrics (e.g. TrainEvaluator(data)), "
                                   f"got {short(evaluator)}")
        reported = getattr(evaluator, "metrics", None)
        if isinstance(reported, (list, tuple)) and self.metric not in reported:
            raise InvalidValueError(f"metric={self.metric!r}, but the evaluator reports {list(reported)}; "
                                    f"search one of those, e.g. metric={reported[0]!r}, or change the evaluator")
        self.evaluator = evaluator
        self._pending: list[Proposal] = []  # asked, not yet told, oldest first
        self._finished: dict[int, tuple] = {}  # id(proposal) -> (metrics, seconds, error) evaluated, not yet told

    # ---------------------------------------------------------------- what subclasses write

    def propose(self) -> tuple[Arch, dict]:
        raise NotImplementedError(f"{type(self).__name__} must implement propose() -> (arch, info)")

    def observe(self, trial: Trial) -> None:
        """Learn from a complete trial; the default learns nothing (random search)."""

    def settings(self) -> dict:
        evaluator_settings = getattr(self.evaluator, "settings", None)
        return {**super().settings(), "evaluator": evaluator_settings() if callable(evaluator_settings) else None}

    # ---------------------------------------------------------------- ask / tell / drop

    def ask(self) -> Proposal:
        """The next architecture to evaluate (evaluate it, then pass the result to `tell`)."""
        arch, info = self.propose()
        proposal = Proposal(arch, jsonable(info))
        self._pending.append(proposal)
        return proposal

    def tell(self, proposal: Proposal | Arch, metrics: Mapping | None = None, seconds: float = 0.0, *,
             error: BaseException | str | None = None, pruned: bool = False) -> Trial:
        """Record the result of an asked architecture; returns the new Trial.

        error: the evaluation failed (an exception or its text): the trial is recorded as failed.
        pruned: the evaluation was stopped early on purpose; `metrics` are its partial results.
        A result without a finite number for the metric is recorded as a failed trial too.
        """
        if type(seconds) is not float or not 0.0 <= seconds < math.inf:  # else it is fine as it is (from step())
            seconds = check_float("seconds", seconds, minimum=0.0, example=1.5)
        proposal = self._find_pending(proposal)
        arch = self.space.format(proposal.arch)  # before anything changes: a bad arch leaves it pending
        state, metrics, error = _outcome(metrics, error, pruned, self.metric)
        self._pending.remove(proposal)
        self._finished.pop(id(proposal), None)
        return self._record(Trial(len(self.history), arch, metrics, seconds, proposal.info, state=state, error=error))

    def _learn(self, trial: Trial) -> None:
        if trial.ok:  # failed and pruned trials are kept in the history, never learnt from
            self.observe(trial)

    def drop(self, proposal: Proposal | None = None) -> list[Proposal]:
        """Forget one pending proposal (or, without an argument, all of them) that will never be
        told; returns what was dropped."""
        dropped = list(self._pending) if proposal is None else [self._find_pending(proposal)]
        for p in dropped:
            self._pending.remove(p)
            self._finished.pop(id(p), None)
        return dropped

    @property
    def pending(self) -> list[Proposal]:
        """Proposals asked and not yet told, oldest first."""
        return list(self._pending)

    def _find_pending(self, proposal) -> Proposal:
        """The pending Proposal `proposal` is, or the oldest pending one of an arch."""
        if isinstance(proposal, Proposal):
            if any(p is proposal for p in self._pending):
                return proposal
            raise InvalidValueError("got a proposal this search did not ask for (or one already told or dropped)")
        try:
            arch = self.space.validate(proposal) if hasattr(self.space, "validate") else proposal
        except (ValueError, TypeError, KeyError):
            arch = proposal
        for pending in self._pending:
            if pending.arch == arch:
                return pending
        raise InvalidValueError(f"got an architecture nobody asked for: {short(proposal)}; call ask() first")

    # ---------------------------------------------------------------- replaying a journal

    def _can_replay(self) -> bool:
        return self.replayable and not self._pending  # a proposal in flight: the state must say so at once

    def _replay(self, records: list) -> int:
        """Ask again and tell each journal record's result, as long as the proposal is the one the
        record holds (the same arch and info); returns how many were replayed. Replayed trials are
        not shown to subscribers: like the records a resume reads, they happened before."""
        if not self.replayable:
            return 0
        for replayed, d in enumerate(records):
            trial = record_from_dict(d)
            proposal = self._pending[0] if self._pending else self.ask()
            if (not isinstance(trial, Trial) or self.space.format(proposal.arch) != trial.arch
                    or dumps(proposal.info) != dumps(trial.info)):
                return replayed  # not this search's proposal (another version of it?): the caller reloads
            self._pending.remove(proposal)
            self.history.append(trial)
            self._learn(trial)
        return len(records)

    # ---------------------------------------------------------------- the loop

    def step(self) -> Trial:
        """One ask -> evaluate -> tell. The oldest pending proposal, if any, is evaluated first."""
        proposal = self._pending[0] if self._pending else self.ask()
        if id(proposal) not in self._finished:
            self._finished[id(proposal)] = _evaluate(self.evaluator, proposal.arch, self._budget(proposal))
        metrics, seconds, error = self._finished[id(proposal)]
        return self.tell(proposal, metrics, seconds, error=error)

    def run(self, n: int, *, checkpoint=None, time_budget: float | None = None, executor: Executor | None = None,
            batch: int | None = None, progress: bool = True, max_failures: int | None = 10):
        """Run until the history holds `n` trials (or `time_budget` seconds have passed).

        checkpoint: a folder (nasnb/storage.py). If it holds a run, the search first continues it,
            after checking that it is a run of this search with these settings (strategy, space,
            seed, metric, evaluator settings); every trial is written there before its tell
            returns (the search's state with it, or, for a `replayable` strategy, about once a
            second), so a run killed at any moment loses no told trial and, resumed, gives the
            same history as an uninterrupted run.
        executor: a `concurrent.futures.Executor` (a ProcessPoolExecutor, or a Dask
            `client.get_executor()`): `batch` proposals are asked at once, evaluated concurrently and
            told in the order they were asked, so the history does not depend on which worker
            finishes first. `batch` defaults to the executor's worker count. An evaluation that
            fails becomes a failed trial; the others of its batch are told as usual.
        max_failures: stop with an EvaluationError after this many failed trials in a row (they stay
            in the history); None never stops.
        """
        if batch is not None:
            batch = check_positive_int("batch", batch, example=2)
        if max_failures is not None:
            max_failures = check_positive_int("max_failures", max_failures, example=10)
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise InvalidTypeError(f"executor must be a concurrent.futures.Executor, got {short(executor)}")
        size = batch or getattr(executor, "_max_workers", None) or 2
        self._run_batch = size if executor is not None else 1  # part of the run: a checkpoint records it

        def advance(remaining: int) -> list:
            trials = [self.step()] if executor is None else self._step_parallel(executor, min(size, remaining))
            self._check_failures(max_failures)
            return trials

        return self._loop(n, checkpoint, time_budget, progress, advance)

    def _check_failures(self, max_failures: int | None) -> None:
        if max_failures is None or len(self.history) < max_failures or self.history[-1].state != "failed":
            return
        recent = self.history[-max_failures:]
        if all(getattr(t, "state", None) == "failed" for t in recent):
            first, _, trace = (recent[-1].error or "").partition("\n\n")
            raise EvaluationError(f"the last {max_failures} trials failed; the last error was: {first}. "
                                  "They are kept in search.history; fix the evaluator and run again to continue "
                                  "(or pass max_failures=None to keep going)"
                                  + (f"\n\nThe last one, where it was raised:\n{trace}" if trace else ""))

    def _step_parallel(self, executor: Executor, k: int) -> list[Trial]:
        # A batch interrupted half-told (a resumed checkpoint) is finished on its own first: asking
        # more now would ask them before its results are in, unlike the run that was interrupted.
        proposals = self._pending[:k] or [self.ask() for _ in range(k)]
        futures = {id(p): executor.submit(_evaluate, self.evaluator, p.arch, self._budget(p))
                   for p in proposals if id(p) not in self._finished}
        trials = []
        try:
            for p in proposals:  # told in ask order, whoever finishes first
                if id(p) not in self._finished:
                    self._finished[id(p)] = _result(futures[id(p)])
                trials.append(self.tell(p, *self._finished[id(p)][:2], error=self._finished[id(p)][2]))
        except BaseException:  # interrupted: keep what finished for the next step, cancel the rest
            for p in proposals:
                future = futures.get(id(p))
                if future is not None and id(p) not in self._finished and p in self._pending:
                    if future.done():
                        self._finished[id(p)] = _result(future)
                    else:
                        future.cancel()
            raise
        return trials

    def _budget(self, proposal: Proposal):
        """The budget `proposal` is to be evaluated at (None: the evaluator's own); an evaluator
        that cannot take one is an error here, before anything is evaluated."""
        budget = proposal.info.get("budget")
        if budget is None:
            return None
        if getattr(self, "_budget_for", None) is not self.evaluator:  # read its signature once per evaluator
            self._budget_for, self._takes_budget = self.evaluator, takes_budget(self.evaluator)
        if not self._takes_budget:
            raise InvalidTypeError(
                f"{type(self).__name__} evaluates at budgets (this proposal: budget={short(budget)} epochs), but "
                f"the evaluator {short(self.evaluator)} takes no budget argument; use one that does "
                "(TrainEvaluator, TableEvaluator) or write it as def evaluate(arch, budget=None): ...")
        return budget

    # ---------------------------------------------------------------- state

    def _pending_state(self) -> list:
        return [[self.space.format(p.arch), p.info] for p in self._pending]

    def _load_pending(self, pending: list) -> None:
        self._pending = [Proposal(self.space.parse(arch), info) for arch, info in pending]
        self._finished = {}


def takes_budget(evaluator) -> bool:
    """True when ``evaluator(arch, budget=...)`` can be called (a `budget` parameter or **kwargs)."""
    try:
        parameters = inspect.signature(evaluator).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): the call itself will say
        return True
    return any(p.kind is p.VAR_KEYWORD or p.name == "budget" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               for p in parameters)


def _evaluate(evaluator: Evaluator, arch: Arch, budget=None) -> tuple:
    """(metrics, seconds, error text): the evaluator's result, or why it failed. Runs in workers too."""
    start = time.perf_counter()
    try:
        metrics = evaluator(arch) if budget is None else evaluator(arch, budget=budget)
    except Exception as err:  # the trial fails, the search goes on (KeyboardInterrupt still stops it)
        return None, time.perf_counter() - start, _error_text(err)
    return metrics, time.perf_counter() - start, None


def _result(future) -> tuple:
    try:
        return future.result()
    except Exception as err:  # the worker died, or the executor could not run the evaluation
        return None, 0.0, _error_text(err)


def _error_text(err: BaseException, limit: int = 2000, trace_limit: int = 4000) -> str:
    """What a failed trial keeps of its error: a first line 'Type: message (at file:line)', capped
    at `limit` characters, then a blank line and the traceback from the evaluation down to the
    raise (its last `trace_limit` characters), formatted where the error happened: on a Dask or
    process-pool worker, the worker's own frames, which the machine that reads the history
    never saw."""
    where = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    at = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
    text = f"{type(err).__name__}: {err}{at}"
    text = text if len(text) <= limit else text[:limit] + "..."
    if not err.__traceback__:
        return text
    trace = "".join(traceback.format_exception(type(err), err, err.__traceback__)).rstrip()
    trace = trace if len(trace) <= trace_limit else "...\n" + trace[-trace_limit:]
    return f"{text}\n\n{trace}"


def _outcome(metrics, error, pruned: bool, metric: str) -> tuple[str, dict, str | None]:
    """(state, JSON metrics, error text) of a told result."""
    if error is not None:
        text = error if isinstance(error, str) else _error_text(error)
        try:
            return "failed", jsonable(dict(metrics or {})), text
        except (TypeError, ValueError):
            return "failed", {}, text
    if not isinstance(metrics, Mapping):
        return "failed", {}, f"the evaluator returned {short(metrics)}, not a dict of metrics"
    try:
        metrics = jsonable(dict(metrics))
    except (TypeError, ValueError) as err:
        return "failed", {}, f"the evaluator returned metrics that are not plain numbers: {err}"
    value = metrics.get(metric)
    if pruned:
        return "pruned", metrics, None
    if not finite_number(value):
        found = "no value" if metric not in metrics else f"{short(value)}"
        return "failed", metrics, (f"the evaluator returned {found} for the metric {metric!r} (it reported "
                                   f"{sorted(metrics)}): a finite number is needed")
    return "complete", metrics, None
