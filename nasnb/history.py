"""What a search did, in order: Trials in an append-only History.

A Trial is one architecture evaluated: its number (its position in the history), the architecture
as its space writes it (an arch string, or a DARTS Genotype(...) string), the metrics the evaluator
returned, how long the evaluation took, and `info`: what the strategy wants remembered about *why*
it tried this architecture (the parent it mutated, the members it sampled, the policy it sampled
from). Views and plots are computed from the history alone, so any past step can be replayed.

A History round-trips through JSON exactly (`History.from_json(h.to_json()) == h`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterator


def atomic_write(path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@dataclasses.dataclass(frozen=True)
class Trial:
    number: int  # 0, 1, 2, ...: position in the history
    arch: str  # space.format(arch); space.parse(trial.arch) gives the architecture back
    metrics: dict  # what the evaluator returned, e.g. {"val_accuracy": 0.93, "params": 55218, ...}
    seconds: float = 0.0  # wall time of the evaluation
    info: dict = dataclasses.field(default_factory=dict)  # strategy-specific, JSON-friendly

    def value(self, metric: str) -> float:
        """metrics[metric] as a float; a clear error when the evaluator did not report it."""
        if metric not in self.metrics:
            raise KeyError(f"trial {self.number} has no metric {metric!r}; it reported {sorted(self.metrics)}")
        return float(self.metrics[metric])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class History:
    """Append-only list of Trials, plus what is needed to read it (which metric is maximised)."""

    def __init__(self, trials=(), metric: str = "val_accuracy", meta: dict | None = None):
        self.metric = metric
        self.meta = dict(meta or {})  # e.g. {"strategy": "RegularizedEvolution", "space": "nb201", "seed": 0}
        self._trials: list[Trial] = []
        for trial in trials:
            self.append(trial)

    # ---------------------------------------------------------------- a sequence of trials

    def append(self, trial: Trial) -> None:
        if trial.number != len(self._trials):
            raise ValueError(f"trial number {trial.number} appended at position {len(self._trials)}: "
                             "a history is append-only and numbered from 0")
        self._trials.append(trial)

    def __len__(self) -> int:
        return len(self._trials)

    def __iter__(self) -> Iterator[Trial]:
        return iter(self._trials)

    def __getitem__(self, index):
        return self._trials[index]

    @property
    def trials(self) -> list[Trial]:
        return list(self._trials)

    def __eq__(self, other) -> bool:
        return (isinstance(other, History) and self.metric == other.metric and self.meta == other.meta
                and self._trials == other._trials)

    def __repr__(self) -> str:
        best = self.best()
        tail = f", best {self.metric}={best.value(self.metric):.4g} (trial {best.number})" if best else ""
        return f"History({len(self)} trials{tail})"

    # ---------------------------------------------------------------- reading it

    def values(self, metric: str | None = None) -> list[float]:
        """The metric of every trial, in order."""
        return [t.value(metric or self.metric) for t in self._trials]

    def best(self, metric: str | None = None, upto: int | None = None) -> Trial | None:
        """The trial with the highest metric among the first `upto` trials (all by default); the
        earliest one wins a tie. None for an empty history."""
        metric = metric or self.metric
        trials = self._trials[:upto]
        return max(trials, key=lambda t: (t.value(metric), -t.number)) if trials else None

    def best_so_far(self, metric: str | None = None) -> list[float]:
        """The anytime curve: after trial i, the best metric of trials 0..i."""
        curve, best = [], -math.inf
        for value in self.values(metric):
            best = max(best, value)
            curve.append(best)
        return curve

    def to_dataframe(self):
        """One row per trial (number, arch, seconds, one column per metric); needs pandas."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("History.to_dataframe needs pandas: pip install pandas") from None
        rows = [{"number": t.number, "arch": t.arch, "seconds": t.seconds,
                 **{k: v for k, v in t.metrics.items() if not isinstance(v, (list, dict))}} for t in self._trials]
        return pd.DataFrame(rows).set_index("number")

    # ---------------------------------------------------------------- JSON

    def to_dict(self) -> dict:
        return {"metric": self.metric, "meta": self.meta, "trials": [t.to_dict() for t in self._trials]}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        for key in ("metric", "trials"):
            if key not in d:
                raise ValueError(f"not a nasnb history: the key {key!r} is missing")
        return cls([Trial(**t) for t in d["trials"]], metric=d["metric"], meta=d.get("meta"))

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
        with open(path) as f:
            return cls.from_json(f.read())
