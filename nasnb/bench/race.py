"""A strategy race on a table: anytime regret in simulated seconds, over many seeds.

How NAS-Bench-201 (Dong & Yang, 2020, Sec. 5) compares search strategies: each strategy runs with
many seeds against the same table; after every trial the *incumbent* is the trial with the best
validation accuracy so far (what the search itself would return), and its **regret** is how far
the incumbent's test accuracy is below the best test accuracy in the table. The x-axis is the
**simulated** wall-clock: the sum of the table's training seconds of every trial so far (a
sequential search; a lookup costs nothing). Curves are read on a common time grid, and the band
is the mean ± a 95 % confidence interval of the mean over seeds (normal approximation, 1.96
standard errors).

    curves = {name: [regret_curve(history, table, grid) for history in runs] for name, runs in races.items()}
    summary = summarize(curves["evolution"])         # mean, low, high on the grid

Everything here is a function of histories and a table: the notebook's plot only draws these.
"""
from __future__ import annotations

import warnings

import numpy as np

from nasnb.checks import short
from nasnb.errors import InvalidValueError


def incumbent_trace(history, metric: str = "val_accuracy") -> tuple[np.ndarray, list[int]]:
    """(simulated seconds after each trial, the incumbent trial's number after each trial).

    A trial without a finite `metric` (failed, pruned, NaN) costs its seconds and changes nothing.
    Ties keep the earlier incumbent, as `History.best` does.
    """
    seconds, incumbents = [], []
    clock, best, best_number = 0.0, -np.inf, -1
    for trial in history.trials:
        clock += float(trial.metrics.get("seconds", 0.0) or 0.0)
        score = trial.score(metric)
        if score is not None and score > best:
            best, best_number = score, trial.number
        seconds.append(clock)
        incumbents.append(best_number)
    return np.array(seconds), incumbents


def regret_curve(history, table, grid, *, metric: str = "val_accuracy", target: str = "test_accuracy") -> np.ndarray:
    """The incumbent's regret (table's best mean `target` minus the incumbent's mean `target`,
    looked up in `table` at its full protocol) at each time of `grid` (simulated seconds);
    NaN before the first complete trial."""
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 1 or not np.all(np.diff(grid) >= 0):
        raise InvalidValueError(f"grid must be increasing simulated seconds, got {short(grid)}; "
                                "e.g. grid=np.linspace(0, 3600, 100)")
    best = table.optimum(target)[1]
    seconds, incumbents = incumbent_trace(history, metric)
    regret_after = np.full(len(incumbents), np.nan)
    cache = {}
    for k, number in enumerate(incumbents):
        if number >= 0:
            if number not in cache:
                cache[number] = best - table.query(history.trials[number].arch)[target]
            regret_after[k] = cache[number]
    # at time t: the state after the last trial finished by t (np.searchsorted: trials with seconds <= t)
    done = np.searchsorted(seconds, grid, side="right")
    out = np.full(len(grid), np.nan)
    has = done > 0
    out[has] = regret_after[done[has] - 1]
    return out


def summarize(curves) -> dict:
    """Mean and 95 % band over seeds at each grid point (the seeds that have a value there)."""
    values = np.asarray(curves, dtype=float)  # (seeds, grid)
    if values.ndim != 2 or values.shape[0] < 2:
        raise InvalidValueError(f"curves must be at least two seeds' curves on one grid, got shape "
                                f"{values.shape}; e.g. [regret_curve(h, table, grid) for h in histories]")
    count = np.sum(~np.isnan(values), axis=0)
    with warnings.catch_warnings():  # a grid point before any seed's first trial: NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0, ddof=1)
    half = np.where(count > 1, 1.96 * np.nan_to_num(std) / np.sqrt(np.maximum(count, 1)), np.nan)
    return {"mean": mean, "low": mean - half, "high": mean + half, "seeds": count}


def final_regrets(curves) -> np.ndarray:
    """Each seed's regret at the grid's last point."""
    return np.asarray(curves, dtype=float)[:, -1]
