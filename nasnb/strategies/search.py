"""`Search`: what every search shares, whatever its steps are.

A search owns the space, the seed and the random generators drawn from it, the History its steps
are recorded in, subscribers, `step()` / `run()` with a progress bar and a time budget, checkpoints
(nasnb/storage.py) and `reset()`. A one-shot search (DARTS, ENAS) subclasses it through
`OneShotSearch` (strategies/oneshot.py: data, batches, the supernet): its `step()` trains a
supernet and records a `Step`. The multi-trial strategies subclass the ask/tell
`Strategy` (strategies/base.py), which is a Search whose steps are trials.

All randomness flows from `self.rng` (numpy) and `self.torch_generator` (torch), both seeded from
`seed`: the same seed gives the same history. `state_dict()` holds everything needed to continue
exactly where a run stopped; `run(n, checkpoint=path)` resumes from `path` (after checking that it
holds a run of this search, with these settings) and records every step there as it is made.
"""
from __future__ import annotations

import copy
import json
import time
from typing import Any, Callable

import numpy as np
import torch

from nasnb.checks import check_int, check_positive_float, check_seed, check_str, short
from nasnb.errors import DamagedFileError, InvalidTypeError, InvalidValueError, NasnbError, ResumeMismatchError
from nasnb.history import History, Record, Step, Trial, record_from_dict
from nasnb.spaces.base import SearchSpace
from nasnb.storage import Checkpoint, dumps

STATE_FORMAT = "nasnb-search"


_PLAIN = frozenset((bool, int, float, str, type(None)))  # exactly these types (np.float64 is a float subclass)


def jsonable(value: Any) -> Any:
    """`value` with numpy scalars, tuples, tensors and arrays turned into plain JSON types (a copy:
    the containers are new). Plain values are passed on without a call, since a table lookup's
    metrics are checked at every trial."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, dict):
        return {k if type(k) is str else str(k): v if type(v) in _PLAIN else jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if type(v) in _PLAIN else jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return jsonable(value.tolist())
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise InvalidTypeError(f"{type(value).__name__} is not JSON-friendly; evaluators and strategies must "
                           "return numbers, strings, lists and dicts")


class _SnapshotAfterInit(type):
    """Takes the state right after construction, for `reset()`, once the whole __init__ chain has
    run: no subclass has to remember to do it."""

    def __call__(cls, *args, **kwargs):
        search = super().__call__(*args, **kwargs)
        search._meta = dict(search.history.meta)  # what views read; the same for every run of these settings
        search._initial_state = search.state_dict()
        return search


class Search(metaclass=_SnapshotAfterInit):
    """Base of every search: space, seed and rngs, History, subscribers, run/step, checkpoints, reset.

    Args:
        space: the search space (NB201Space, DartsSpace, ToySpace, ...).
        metric: the metric to maximise (minimise something by reporting its negative).
        seed: seeds the numpy rng and the torch generator the search draws from.
    """

    panels = ("progress",)  # the views a dashboard shows for this search (nasnb.registry "view")

    def __init__(self, space: SearchSpace, *, metric: str = "val_accuracy", seed: int = 0):
        for needed in ("sample", "format", "parse"):
            if not callable(getattr(space, needed, None)):
                raise InvalidTypeError(f"space must be a search space, e.g. NB201Space(), DartsSpace() or ToySpace(); "
                                       f"got {short(space)}, which has no {needed}()")
        self.space = space
        self.metric = check_str("metric", metric)
        self.seed = check_seed("seed", seed)
        self.rng = np.random.default_rng(self.seed)
        self.torch_generator = torch.Generator().manual_seed(self.seed)
        self.history = History(metric=self.metric, meta={"strategy": type(self).__name__,
                                                         "space": getattr(space, "name", type(space).__name__),
                                                         "seed": self.seed})
        self._subscribers: list[Callable[[Record], None]] = []
        self._checkpoint: Checkpoint | None = None  # where records go while run(checkpoint=...) runs

    # ---------------------------------------------------------------- what subclasses write

    def step(self) -> Record:
        """One step of the search, recorded in the history (a subclass calls `self._record(record)`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement step()")

    def settings(self) -> dict:
        """What makes two runs the same run: checked when a checkpoint is resumed. Subclasses add
        their hyperparameters: ``{**super().settings(), "population_size": ...}``."""
        return {"search": type(self).__name__, "space": repr(self.space), "metric": self.metric, "seed": self.seed}

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, state: dict) -> None:
        pass

    def state(self) -> dict:
        """A JSON-friendly snapshot for views; subclasses add their population / policy."""
        best = self.best()
        return {"strategy": type(self).__name__, "records": len(self.history), "trials": len(self.history.trials),
                "failed": self.history.count("failed"), "metric": self.metric,
                "best": None if best is None else best.to_dict()}

    # ---------------------------------------------------------------- records

    def _record(self, record: Record) -> Record:
        """Append `record` to the history, write it to the checkpoint, tell the subscribers."""
        self.history.append(record)
        self._learn(record)
        if self._checkpoint is not None:
            self._write_checkpoint()
        if self._subscribers:
            for callback in list(self._subscribers):
                callback(record)
        return record

    def _learn(self, record: Record) -> None:
        """What the search does with its own new record before it is saved (Strategy: observe it)."""

    def best(self) -> Trial | None:
        """The best complete trial so far (highest finite `metric`, lowest where the history's
        `direction` is "min"); None when there is none."""
        return self.history.best(self.metric)

    def subscribe(self, callback: Callable[[Record], None]) -> Callable[[], None]:
        """Call `callback(record)` after every step; returns a function that unsubscribes it."""
        if not callable(callback):
            raise InvalidTypeError(f"subscribe() takes a function of one record, got {short(callback)}")
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    # ---------------------------------------------------------------- the loop

    def run(self, n: int, *, checkpoint=None, time_budget: float | None = None, progress: bool = True) -> History:
        """Step until the history holds `n` records (or `time_budget` seconds have passed).

        checkpoint: a folder (storage.py). If it holds a run, the search first continues it, after
            checking it is a run of this search with these settings; every step is recorded there
            as it is made, so an interrupted run loses nothing it recorded and, resumed, gives the
            same history as an uninterrupted one.
        """
        return self._loop(n, checkpoint, time_budget, progress, lambda remaining: [self.step()])

    def _loop(self, n, checkpoint, time_budget, progress, advance: Callable[[int], list]) -> History:
        from tqdm.auto import tqdm

        n = check_int("n", n, minimum=0, example=100)
        if time_budget is not None:
            time_budget = check_positive_float("time_budget", time_budget, example=60.0)
        if checkpoint is not None:
            self.resume(checkpoint, attach=True)
        start = time.perf_counter()
        bar = tqdm(total=n, initial=min(len(self.history), n), desc=type(self).__name__, disable=not progress)
        noted = start  # when the bar's note (best so far) was last made: at most every 0.1 s, like its redraws
        try:
            while len(self.history) < n:
                if time_budget is not None and time.perf_counter() - start > time_budget:
                    break
                records = advance(n - len(self.history))
                bar.update(len(records))
                if progress and time.perf_counter() - noted >= bar.mininterval:
                    bar.set_postfix(self._progress_note(), refresh=False)
                    noted = time.perf_counter()
            if progress and self.history:
                bar.set_postfix(self._progress_note(), refresh=False)
            if self._checkpoint is not None and self._checkpoint.lagging:  # a run that ends leaves its state up to date
                self._checkpoint.flush(self._state_without_history())
        finally:
            bar.close()
            self._checkpoint = None
        return self.history

    def _progress_note(self) -> dict:
        best, failed, last = self.best(), self.history.count("failed"), self.history[-1]
        if best is None and isinstance(last, Step) and self.metric in last.metrics:  # a search of steps
            return {self.metric: f"{last.value(self.metric):.4g}"}
        note = {f"best {self.metric}": "-" if best is None else f"{best.value(self.metric):.4g}"}
        if failed:
            note["failed"] = failed
        return note

    # ---------------------------------------------------------------- state, checkpoint, resume, reset

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: settings, rng states, history, the subclass's
        state. Plain types and tensors only, so `torch.load(path, weights_only=True)` reads it."""
        state = self._state_without_history()
        # A copy: a subclass's extra state may hold its live tensors, which change at its next step.
        return {**state, "extra": copy.deepcopy(state["extra"]), "history": self.history.to_json(),
                "settings": json.dumps(self.settings(), sort_keys=True)}

    def _state_without_history(self) -> dict:
        """What a checkpoint's state.pt holds after every record (its journal header holds the
        settings, checked once on resume, so they are not recomputed here at every record)."""
        return {"format": STATE_FORMAT, "version": 2, "strategy": type(self).__name__,
                "rng": json.dumps(self.rng.bit_generator.state),
                "torch_generator": self.torch_generator.get_state(),
                "pending": json.dumps(self._pending_state()), "extra": self._extra_state()}

    def _pending_state(self) -> list:
        return []

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()`'s output (or a nasnb 0.1 checkpoint's). All or nothing: on
        any error the search is exactly as it was, and the error says what did not fit."""
        self._load_or_roll_back(state, None, NasnbError, lambda why: InvalidValueError(
            f"this state is damaged or not of a {type(self).__name__} search ({why})"))

    def _load_or_roll_back(self, state: dict, history, keep: type, damaged: Callable[[str], NasnbError],
                           replay: list = ()) -> None:
        """`_load`, then `_replay(replay)`; or, on any error, the search put back as it was: errors of
        type `keep` are raised as they are, any other as `damaged(why)`."""
        backup = self.state_dict()
        try:
            self._load(state, history)
            if replay:
                self._replay(replay)
        except BaseException as err:
            self._load(backup)
            if isinstance(err, keep) or not isinstance(err, Exception):
                raise
            raise damaged(f"{type(err).__name__}: {short(str(err))}") from None

    def _load(self, state: dict, history: History | None = None) -> None:
        if not isinstance(state, dict) or "rng" not in state or "extra" not in state:
            raise InvalidValueError(f"not a nasnb search state: expected state_dict()'s output, got {short(state)}")
        if state.get("strategy") != type(self).__name__:
            raise ResumeMismatchError(f"this state is of a {state.get('strategy')} search, not {type(self).__name__}")
        if "settings" in state:
            self._check_settings(json.loads(state["settings"]), "this state")
        elif state.get("format") != STATE_FORMAT and state.get("seed") != self.seed:  # nasnb 0.1 names its seed
            raise ResumeMismatchError(f"this state is of a search with seed={state.get('seed')}, this one has "
                                      f"seed={self.seed}; build the search with seed={state.get('seed')}")
        history = history if history is not None else History.from_json(state["history"])
        history.meta = dict(self._meta)
        self.history = history
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.torch_generator.set_state(state["torch_generator"])
        self._load_pending(json.loads(state.get("pending", "[]")))
        self._load_extra_state(state["extra"])

    def _load_pending(self, pending: list) -> None:
        pass

    _run_batch = None  # how many proposals the current run asks at once (Strategy.run sets it); None: not asked

    def _checkpoint_settings(self) -> dict:
        """What a checkpoint's journal records as the run's settings: settings(), and the batch of
        the run writing it (the history depends on it: a run asking 3 proposals at a time is another
        run than one asking 4). A journal without a batch (older files, save()) is not compared."""
        settings = self.settings()
        return settings if self._run_batch is None else {**settings, "batch": self._run_batch}

    def _check_settings(self, saved: dict, where: str) -> None:
        """A ResumeMismatchError naming every setting that differs, and how to go on."""
        mine = json.loads(json.dumps(self._checkpoint_settings(), sort_keys=True))
        found = list(_differences(saved, mine))
        differences = [f"{key}={short(saved_value, 60)} there, {short(my_value, 60)} here"
                       for key, saved_value, my_value in found]
        if differences:
            batch = next((saved_value for key, saved_value, _ in found if key == "batch"), None)
            how = ("build the search with its settings" if batch is None else
                   f"build the search with its settings and run it with batch={batch} (1: without an executor)")
            raise ResumeMismatchError(
                f"{where} holds another run than this search: {'; '.join(differences)}. To continue that run, "
                f"{how}; to start a new run, use another checkpoint path")

    def save(self, path) -> None:
        """Write this search to the checkpoint folder `path` (see run()); `run(n, checkpoint=path)`
        or `resume(path)` continues from it."""
        self.resume(path, attach=True)  # creates it, or brings it up to date with this search
        self._checkpoint = None

    def resume(self, path, *, attach: bool = False) -> None:
        """Continue the run saved in the checkpoint folder `path`.

        Refused (ResumeMismatchError, nothing changed) when the folder holds a run with other
        settings, or records that differ from those this search already holds: a search's
        records are never replaced by another run's, or by an older file. When the search holds
        more records than the folder (the folder is older), the folder is brought up to date.
        """
        checkpoint = Checkpoint(path)
        if not checkpoint.exists():
            checkpoint.create(self._checkpoint_settings(), self._record_dicts(), self._state_without_history())
        else:
            saved = checkpoint.read()
            self._check_settings(saved.settings, str(path))
            mine = self._record_dicts()
            theirs = saved.records
            shared = min(len(mine), len(theirs))
            differ = next((k for k in range(shared) if dumps(mine[k]) != dumps(theirs[k])), None)
            if differ is not None:
                raise ResumeMismatchError(
                    f"{path} holds {len(theirs)} records and this search {len(mine)}, and they differ from record "
                    f"{differ} on: these are two runs. Continue the saved one with a fresh search (or after "
                    f"search.reset()); keep this one with another checkpoint path")
            if len(theirs) > len(mine):
                self._restore(saved, path)
                checkpoint.drop_records(len(self.history))  # any it could not replay (with a warning)
            elif len(mine) > len(theirs):
                checkpoint.append(mine[len(theirs):], self._state_without_history())
        if attach:
            self._checkpoint = checkpoint

    def _restore(self, saved, path) -> None:
        """Load the saved state, then replay the journal's records it does not cover (storage.py)."""
        covered = len(saved.records) if saved.covered is None else saved.covered
        try:
            records = [record_from_dict(r) for r in saved.records[:covered]]
        except (ValueError, TypeError) as err:
            raise DamagedFileError(f"{path}: a record of its journal is damaged ({short(str(err))})") from None
        newer, meta = saved.records[covered:], self.history.meta

        def load(replay: list) -> None:
            self._load_or_roll_back(saved.state, History(records, metric=self.metric, meta=meta), ResumeMismatchError,
                                    lambda why: DamagedFileError(f"{path}: its state does not load into this "
                                                                 f"{type(self).__name__} ({why})"), replay=replay)

        load(newer)
        replayed = len(self.history) - covered
        if replayed < len(newer):  # stopped at a proposal unlike the journal's: back to just before it
            load(newer[:replayed])

    def _record_dicts(self, start: int = 0) -> list:
        """Records from `start` on as the journal holds them (JSON values: lists, not tuples)."""
        return [json.loads(dumps(r.to_dict())) for r in self.history[start:]]

    def _write_checkpoint(self) -> None:
        checkpoint = self._checkpoint
        records = [r.to_dict() for r in self.history[checkpoint.count:]]
        if self._can_replay() and not checkpoint.sync_due():
            checkpoint.append(records)  # the journal line only: a resume replays it (storage.py)
        else:
            checkpoint.append(records, self._state_without_history())

    def _can_replay(self) -> bool:
        """True when a resume could replay the records after an older state (Strategy.replayable)."""
        return False

    def _replay(self, records: list) -> int:
        """Re-make `records` (journal dicts newer than the state just loaded) as this search made
        them; returns how many it could. A Search of steps cannot (it would have to train again)."""
        return 0

    def reset(self) -> None:
        """Back to the state right after construction: same seed, empty history."""
        self._load(self._initial_state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(space={self.space!r}, records={len(self.history)}, seed={self.seed})"


def _differences(saved, mine, prefix: str = ""):
    """(key, saved value, my value) for every leaf where two settings dicts differ. A setting
    that one side does not know (None: e.g. an evaluator without settings()) is not compared."""
    if isinstance(saved, dict) and isinstance(mine, dict):
        for key in sorted(set(saved) | set(mine)):
            yield from _differences(saved.get(key), mine.get(key), f"{prefix}{key}.")
    elif saved is not None and mine is not None and saved != mine:
        yield prefix.rstrip("."), saved, mine
