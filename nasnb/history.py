"""What a search did, in order: records in an append-only History.

Two kinds of record:

* a **Trial** is one architecture evaluated (multi-trial search): its number (its position in the
  history), the architecture as its space writes it, the metrics the evaluator returned, how long
  the evaluation took, `info` (what the strategy wants remembered about *why* it tried this
  architecture: the parent it mutated, the policy it sampled from), and how it ended, its
  `state`:

      "complete"  the evaluator returned a finite number for the searched metric
      "failed"    the evaluator raised, or returned NaN, an infinity or no number for the metric;
                  `error` says which. The search goes on; the strategy never learns from it.
      "pruned"    stopped early on purpose (successive halving, early stopping); its metrics are
                  those of the partial evaluation, and it is never the best trial.

* a **Step** is a step of a search that is not a trial (a one-shot search's weight and α update):
  its losses and accuracies in `metrics`, and in `info` whatever its views replay (softmax(α) per
  edge, the derived architecture).

Views and plots are computed from the history alone, so any past step can be replayed. A History
round-trips through JSON exactly (`History.from_json(h.to_json()) == h`), and history files written
before records had kinds and states still load (every record in them is a complete Trial).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import uuid
from pathlib import Path
from typing import ClassVar, Iterator, Union

from nasnb.errors import DamagedFileError, InvalidValueError, UnknownNameError

STATES = ("complete", "failed", "pruned")


def finite_number(value) -> bool:
    """True for an int or float (not a bool) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def atomic_write(path, data: bytes, sync: bool = True) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename: a reader
    sees the old file or the new one, never half of one. The file gets the user's umask (a
    temporary file from `tempfile.mkstemp` would be private, mode 0600). A process killed between
    the two steps leaves `.<name>.<random>.tmp`, which `remove_stray_temporaries` clears.

    sync: also wait until the disk has it (fsync of the file and its folder, ~7 ms each here), so
    that it survives a power cut, not only the death of this process."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies to 0o666
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync:
        _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stray_temporaries(path) -> list[Path]:
    """Delete the temporary files (or folders) that a process killed while writing `path` left
    next to it; returns what was deleted."""
    import shutil

    path = Path(path)
    stray = sorted(path.parent.glob(f".{path.name}.*.tmp"))
    for tmp in stray:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return stray


@dataclasses.dataclass(frozen=True)
class Trial:
    number: int  # 0, 1, 2, ...: position in the history
    arch: str  # space.format(arch); space.parse(trial.arch) gives the architecture back
    metrics: dict  # what the evaluator returned, e.g. {"val_accuracy": 0.93, "params": 55218, ...}
    seconds: float = 0.0  # wall time of the evaluation
    info: dict = dataclasses.field(default_factory=dict)  # strategy-specific, JSON-friendly
    state: str = "complete"  # "complete", "failed" or "pruned" (module docstring)
    error: str | None = None  # why a failed trial failed, e.g. "RuntimeError: out of memory"

    kind: ClassVar[str] = "trial"

    def __post_init__(self):
        if self.state not in STATES:
            raise InvalidValueError(f"trial state {self.state!r} is not one of {list(STATES)}")

    @property
    def ok(self) -> bool:
        """True for a complete trial: one a strategy learns from and `best()` may pick."""
        return self.state == "complete"

    def value(self, metric: str) -> float:
        """metrics[metric] as a float; a clear error when the trial has no such number."""
        if metric not in self.metrics:
            why = f" (it {self.state}: {(self.error or '').partition(chr(10))[0]})" if self.state == "failed" else ""
            raise UnknownNameError(f"trial {self.number} has no metric {metric!r}{why}; "
                                   f"it reported {sorted(self.metrics)}")
        return float(self.metrics[metric])

    def score(self, metric: str) -> float | None:
        """The metric of a complete trial with a finite value for it, else None (what every
        ranking uses: a failed, pruned or NaN trial is never the best)."""
        if not self.ok:
            return None
        value = self.metrics.get(metric)
        return float(value) if finite_number(value) else None

    def to_dict(self) -> dict:
        """The record as JSON-friendly values (a copy: changing it leaves the trial alone)."""
        return {"kind": self.kind, "number": self.number, "arch": self.arch, "metrics": tree_copy(self.metrics),
                "seconds": self.seconds, "info": tree_copy(self.info), "state": self.state, "error": self.error}


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a search that is not a trial, e.g. a one-shot search's w- and α-update."""

    number: int  # position in the history, as for a Trial
    metrics: dict  # losses and accuracies of this step, e.g. {"train_loss": 2.1, "val_accuracy": 0.4}
    seconds: float = 0.0  # wall time of the step
    info: dict = dataclasses.field(default_factory=dict)  # e.g. {"alphas": ..., "derived": arch string}
    arch: str | None = None  # the architecture this step derives, if the search has one

    kind: ClassVar[str] = "step"

    def value(self, metric: str) -> float:
        if metric not in self.metrics:
            raise UnknownNameError(f"step {self.number} has no metric {metric!r}; it reported {sorted(self.metrics)}")
        return float(self.metrics[metric])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "number": self.number, "metrics": tree_copy(self.metrics), "seconds": self.seconds,
                "info": tree_copy(self.info), "arch": self.arch}


def tree_copy(value):
    """A copy of nested dicts and lists, what `dataclasses.asdict` makes of a record's fields (their
    leaves are numbers and strings, which need no copy), at a fraction of its cost: a checkpoint
    writes one record per trial."""
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) in _LEAVES else tree_copy(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _LEAVES else tree_copy(v) for v in value]
    if kind in _LEAVES:
        return value
    return copy.deepcopy(value)


_LEAVES = frozenset((str, int, float, bool, type(None)))


Record = Union[Trial, Step]
RECORD_KINDS = {"trial": Trial, "step": Step}


def record_from_dict(d: dict) -> Record:
    """A Trial or Step from its `to_dict()` (a dict without "kind" is a Trial of an older file)."""
    if not isinstance(d, dict):
        raise InvalidValueError(f"a history record is a JSON object, got {type(d).__name__}")
    d = dict(d)
    kind = d.pop("kind", "trial")
    if kind not in RECORD_KINDS:
        raise InvalidValueError(f"unknown record kind {kind!r}; a history holds {sorted(RECORD_KINDS)}")
    cls = RECORD_KINDS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown, missing = set(d) - names, {"number", "metrics"} - set(d)
    if unknown or missing:
        raise InvalidValueError(f"a {kind} record has fields {sorted(names)}; got unknown {sorted(unknown)}, "
                                f"missing {sorted(missing)}")
    return cls(**d)


class History:
    """Append-only list of records (Trials and Steps), plus the metric that is optimised (maximised,
    unless the search's objectives in ``meta["objectives"]`` say "min" for it: `direction`)."""

    def __init__(self, records=(), metric: str = "val_accuracy", meta: dict | None = None):
        self._metric = metric
        self.meta = dict(meta or {})  # e.g. {"strategy": "RegularizedEvolution", "space": "nb201", "seed": 0}
        self._records: list[Record] = []
        # Kept up to date by append, so that a loop asking after every step stays linear in time.
        self._states = dict.fromkeys(STATES, 0)
        self._best: Trial | None = None  # the best trial for self.metric
        for record in records:
            self.append(record)

    @property
    def metric(self) -> str:
        """The metric the search optimised (fixed: the running best is kept for it)."""
        return self._metric

    # ---------------------------------------------------------------- a sequence of records

    def append(self, record: Record) -> None:
        if not isinstance(record, (Trial, Step)):
            raise InvalidValueError(f"a history holds Trial and Step records, not {type(record).__name__}")
        if record.number != len(self._records):
            raise InvalidValueError(f"record number {record.number} appended at position {len(self._records)}: "
                                    "a history is append-only and numbered from 0")
        self._records.append(record)
        if isinstance(record, Trial):
            self._states[record.state] += 1
            score = record.score(self.metric)
            if score is not None and (self._best is None or self._better(score, self._best.score(self.metric))):
                self._best = record

    def direction(self, metric: str | None = None) -> str:
        """"max" or "min": how `metric` is optimised. "max" unless the search's objectives
        (``meta["objectives"]``, which a multi-objective search such as NSGA2 writes) say "min"."""
        objectives = self.meta.get("objectives")
        direction = objectives.get(metric or self._metric, "max") if isinstance(objectives, dict) else "max"
        return "min" if direction == "min" else "max"

    def _better(self, a: float, b: float, metric: str | None = None) -> bool:
        return a < b if self.direction(metric) == "min" else a > b

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records)

    def __getitem__(self, index):
        return self._records[index]

    @property
    def records(self) -> list[Record]:
        return list(self._records)

    @property
    def trials(self) -> list[Trial]:
        """The Trial records, in order (a one-shot search's history has none)."""
        return [r for r in self._records if isinstance(r, Trial)]

    def count(self, state: str) -> int:
        """How many trials ended in `state` ("complete", "failed" or "pruned")."""
        if state not in STATES:
            raise UnknownNameError(f"state={state!r} is not known; choose from {list(STATES)}")
        return self._states[state]

    def __eq__(self, other) -> bool:
        return (isinstance(other, History) and self.metric == other.metric and self.meta == other.meta
                and self._records == other._records)

    def __repr__(self) -> str:
        best = self.best()
        failed = self.count("failed")
        tail = f", best {self.metric}={best.value(self.metric):.4g} (trial {best.number})" if best else ""
        return f"History({len(self)} records{f', {failed} failed' if failed else ''}{tail})"

    # ---------------------------------------------------------------- reading it

    def values(self, metric: str | None = None) -> list[float | None]:
        """Per record, in order: the metric of a complete trial or a step, None where there is no
        finite value (a failed or pruned trial, a NaN)."""
        metric = metric or self.metric
        return [r.score(metric) if isinstance(r, Trial)
                else (float(r.metrics[metric]) if finite_number(r.metrics.get(metric)) else None)
                for r in self._records]

    def best(self, metric: str | None = None, upto: int | None = None) -> Trial | None:
        """The complete trial with the best finite metric among the first `upto` records (all by
        default): the highest, or the lowest where `direction(metric)` is "min"; the earliest one
        wins a tie. None when there is none."""
        metric = metric or self.metric
        if metric == self.metric and (upto is None or upto >= len(self._records)):
            return self._best
        sign = -1.0 if self.direction(metric) == "min" else 1.0
        scored = [(t.score(metric), t) for t in self._records[:upto] if isinstance(t, Trial)]
        scored = [(sign * s, t) for s, t in scored if s is not None]
        return max(scored, key=lambda st: (st[0], -st[1].number))[1] if scored else None

    def front(self, objectives=None, upto: int | None = None) -> list[Trial]:
        """The Pareto front of the first `upto` records (all by default): the complete trials that
        no other beats on every objective, in trial order (`nasnb.objectives.pareto_front`).

        objectives: {metric: "max" | "min"}; by default the search's own (``meta["objectives"]``,
        which a multi-objective search such as NSGA2 writes), else {metric: "max"}. A search with
        several objectives keeps `metric` = the first one, so `best()` ranks by it alone."""
        from nasnb.objectives import pareto_front

        if objectives is None:
            objectives = self.meta.get("objectives") or {self.metric: "max"}
        return pareto_front(self, objectives, upto)

    def best_so_far(self, metric: str | None = None) -> list[float | None]:
        """The anytime curve: after record i, the best score (by `direction`) of the complete trials
        among 0..i (None until the first one)."""
        metric = metric or self.metric
        curve, best = [], None
        for record in self._records:
            score = record.score(metric) if isinstance(record, Trial) else None
            if score is not None and (best is None or self._better(score, best, metric)):
                best = score
            curve.append(best)
        return curve

    def to_dataframe(self):
        """One row per record (number, kind, state, arch, seconds, one column per metric); needs pandas."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("History.to_dataframe needs pandas: pip install pandas") from None
        rows = [{"number": r.number, "kind": r.kind, "state": getattr(r, "state", None), "arch": r.arch,
                 "seconds": r.seconds, **{k: v for k, v in r.metrics.items() if not isinstance(v, (list, dict))}}
                for r in self._records]
        return pd.DataFrame(rows).set_index("number") if rows else pd.DataFrame(rows)

    # ---------------------------------------------------------------- JSON

    def to_dict(self) -> dict:
        return {"format": "nasnb-history", "metric": self.metric, "meta": self.meta,
                "records": [r.to_dict() for r in self._records]}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        """Read `to_dict()`'s output; also the older layout with "trials" instead of "records"."""
        if not isinstance(d, dict):
            raise InvalidValueError(f"not a nasnb history: a JSON object was expected, got {type(d).__name__}")
        records = d.get("records", d.get("trials"))
        for key, value in (("metric", d.get("metric")), ("records", records)):
            if value is None:
                raise InvalidValueError(f"not a nasnb history: the key {key!r} is missing")
        if not isinstance(records, list):
            raise InvalidValueError(f"not a nasnb history: 'records' is a {type(records).__name__}, not a list")
        return cls([record_from_dict(r) for r in records], metric=d["metric"], meta=d.get("meta"))

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> "History":
        return cls.from_dict(json.loads(text))

    def save(self, path) -> None:
        """Write the history as JSON, atomically (a crash mid-write leaves the old file intact)."""
        atomic_write(path, self.to_json(indent=1).encode())

    @classmethod
    def load(cls, path) -> "History":
        """Read a history file; a damaged or foreign file is one `DamagedFileError` naming it."""
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"no history file at {path}") from None
        except (UnicodeDecodeError, IsADirectoryError) as err:
            raise DamagedFileError(f"{path} is not a nasnb history file (it is not UTF-8 text: {err})") from None
        if not text.strip():
            raise DamagedFileError(f"{path} is empty: not a nasnb history file (was it cut off while written?)")
        try:
            return cls.from_json(text)
        except json.JSONDecodeError as err:
            raise DamagedFileError(f"{path} is damaged or of another kind: not valid JSON ({err.msg} at line "
                                   f"{err.lineno}, column {err.colno})") from None
        except (ValueError, TypeError, KeyError) as err:
            raise DamagedFileError(f"{path} is not a nasnb history file: {err}") from None
