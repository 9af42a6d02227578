"""Searches at table speed: trials/s of each strategy when a table lookup is the evaluator.

    .venv/bin/python benchmarks/table_speed.py                      # about 1-2 minutes on 2 cores
    .venv/bin/python benchmarks/table_speed.py --repeats 5 --trials 20000 --reinforce-trials 2000
    PYTHONPATH=/tmp/speed-before .venv/bin/python benchmarks/table_speed.py   # another checkout

The evaluator is `TableEvaluator(table)` on NB201Space: the shipped table when
nasnb/bench/data/nb201-digits.npz exists, else a synthetic one of the same shape (6,466 unique
cells, 3 seeds, 8 epochs, 397 validation and 400 test images; random counts, built the way
tests/test_bench_table.py builds its own), so the lookup costs what the real one costs.

1. The lookup alone: `table.query(arch)` and `TableEvaluator(table)(arch)` on random cells, per second.
2. Each strategy (its default settings, seed 0) runs `search.run(n, progress=False)` from a fresh
   search, in three modes:
       plain   no checkpoint
       bar     no checkpoint, with the progress bar (drawn into a string, not the terminal)
       ckpt    run(n, checkpoint=<fresh folder>): a journal line per trial (nasnb/storage.py)
   and reports trials/s, and which share of the wall time the evaluator took: the sum of the trials'
   `seconds` (the wall time `_evaluate` measures around each lookup) over the run's wall time.
   The rest is the strategy's own work (propose, tell, the history, the checkpoint).

3. Reinforce's own work per trial, from its numpy controller (nasnb/strategies/fast_controller.py):
   sampling an NB201 cell, the hand gradient of one trial, one Adam step on all the weights.

Every figure is the median of `--repeats` rounds; within a round the strategies and modes run one
after the other, so a slow spell of a shared machine shows in one round rather than in one column.
The load average is printed before and after.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import nasnb.strategies as strategies
from nasnb.bench import DATA, Table, arch_index, load
from nasnb.bench.build import unique_cells
from nasnb.evaluators import TableEvaluator
from nasnb.spaces import NB201Space

NAMES = ("RandomSearch", "RegularizedEvolution", "Reinforce")
MODES = ("plain", "bar", "ckpt")


def synthetic_table(seed: int = 0) -> Table:
    """A table of the shipped one's shape with random counts (as tests/test_bench_table.py builds it)."""
    space = NB201Space()
    cells = unique_cells()
    rng = np.random.default_rng(seed)
    val_size, test_size, seeds, epochs = 397, 400, [0, 1, 2], 8
    val = rng.integers(0, val_size + 1, size=(len(cells), len(seeds), epochs)).astype(np.uint16)
    test = rng.integers(0, test_size + 1, size=(len(cells), len(seeds))).astype(np.uint16)
    seconds = rng.uniform(0.4, 0.8, size=(len(cells), len(seeds))).astype(np.float32)
    row_of = {c: r for r, c in enumerate(cells)}
    class_of = np.array([row_of[arch_index(space.canonical(a))] for a in space.enumerate()], dtype=np.uint16)
    params = rng.integers(1_000, 100_000, size=len(space)).astype(np.int64)
    flops = params * 1024
    meta = {"name": "synthetic", "seeds": seeds, "val_size": val_size, "test_size": test_size, "epochs": epochs}
    return Table("synthetic", meta, np.array(cells, dtype=np.int32), class_of, val, test, seconds, params, flops)


def the_table() -> tuple[Table, str]:
    if (DATA / "nb201-digits.npz").exists():
        return load("nb201-digits"), "the shipped nb201-digits"
    return synthetic_table(), "a synthetic table of the shipped shape (nb201-digits.npz not built yet)"


def per_second(call, items) -> tuple[float, float]:
    """(calls per wall second, per CPU second)."""
    start, cpu = time.perf_counter(), time.process_time()
    for item in items:
        call(item)
    return len(items) / (time.perf_counter() - start), len(items) / (time.process_time() - cpu)


def lookup_rates(table: Table, repeats: int, n: int = 20_000) -> dict:
    space = table.space
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(n)]
    evaluator = TableEvaluator(table)
    rates = {"table.query": [], "TableEvaluator": []}
    for _ in range(repeats):
        rates["table.query"].append(per_second(table.query, archs))
        rates["TableEvaluator"].append(per_second(evaluator, archs))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in rates.items()}


def one_run(name: str, table: Table, n: int, mode: str, folder: Path) -> tuple[float, float, float]:
    """(trials per wall second, per CPU second, share of the wall time in the evaluator) of one
    run(n) from a fresh search."""
    search = getattr(strategies, name)(NB201Space(), TableEvaluator(table), seed=0)
    checkpoint = folder / f"{name}-{time.perf_counter_ns()}" if mode == "ckpt" else None
    sink = io.StringIO()
    with contextlib.redirect_stderr(sink):  # the bar draws into the string (tqdm writes to stderr)
        start, cpu = time.perf_counter(), time.process_time()
        search.run(n, checkpoint=checkpoint, progress=(mode == "bar"))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if checkpoint is not None:
        shutil.rmtree(checkpoint, ignore_errors=True)
    assert len(search.history) == n and search.history.count("complete") == n
    return n / wall, n / cpu, sum(t.seconds for t in search.history) / wall


def strategy_rates(table: Table, names, trials: dict, repeats: int) -> dict:
    """(strategy, mode) -> the medians of one_run's three figures over `repeats` rounds."""
    results = {(name, mode): [] for name in names for mode in MODES}
    folder = Path(tempfile.mkdtemp(prefix="nasnb-table-speed-"))
    try:
        for name in names:  # warm-up: first-call costs (imports, torch kernels) are nobody's
            one_run(name, table, 50, "ckpt", folder)
        for _ in range(repeats):
            for name in names:
                for mode in MODES:
                    results[name, mode].append(one_run(name, table, trials[name], mode, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {key: tuple(statistics.median(run[i] for run in runs) for i in range(3)) for key, runs in results.items()}


def controller_costs(repeats: int, n: int = 500) -> dict:
    """us per call of the Reinforce controller's three parts (NB201, default settings), median of rounds."""
    search = strategies.Reinforce(NB201Space(), lambda arch: {"val_accuracy": 0.5}, seed=0)
    fast, generator = search._fast, torch.Generator().manual_seed(0)
    run = fast.sample(generator)
    parts = {"sample": lambda: fast.sample(generator),
             "gradient": lambda: fast.backward([run], [0.01], search.entropy_weight),
             "adam": lambda: search.optimizer.step(fast.flat_grad)}
    costs = {name: [] for name in parts}
    for _ in range(repeats):
        for name, call in parts.items():
            start = time.perf_counter()
            for _ in range(n):
                call()
            costs[name].append(1e6 * (time.perf_counter() - start) / n)
    return {name: statistics.median(v) for name, v in costs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds; every figure is their median")
    parser.add_argument("--trials", type=int, default=10_000, help="trials per run of random search and evolution")
    parser.add_argument("--reinforce-trials", type=int, default=1_000, help="trials per run of Reinforce")
    parser.add_argument("--strategies", nargs="+", default=list(NAMES), choices=NAMES)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import nasnb

    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} (1 thread), python {platform.python_version()}, nasnb from "
          f"{Path(nasnb.__file__).parent.parent}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    start = time.perf_counter()
    table, what = the_table()
    print(f"# table: {what}; {table}")

    print(f"\n1. lookups per second (median of {args.repeats} x 20,000 random cells)")
    for label, (wall, cpu) in lookup_rates(table, args.repeats).items():
        print(f"{label:<16}{wall:>10,.0f} /s {1e6 / wall:>7.1f} us   per CPU second {cpu:>10,.0f}")

    trials = {name: args.reinforce_trials if name == "Reinforce" else args.trials for name in args.strategies}
    print(f"\n2. trials per second, run(n) from a fresh search (median of {args.repeats} rounds); per CPU second "
          "(this process's CPU time: what a shared machine's load changes least); eval: share of the wall time "
          "in the evaluator")
    print(f"{'strategy':<22}{'mode':<7}{'n':>7}{'trials/s':>11}{'per CPU s':>11}{'us/trial':>10}{'eval':>6}")
    rates = strategy_rates(table, args.strategies, trials, args.repeats)
    for name in args.strategies:
        for mode in MODES:
            wall, cpu, share = rates[name, mode]
            print(f"{name:<22}{mode:<7}{trials[name]:>7}{wall:>11,.0f}{cpu:>11,.0f}{1e6 / wall:>10,.0f}"
                  f"{100 * share:>5.0f}%")
    if "Reinforce" in args.strategies:
        costs = controller_costs(args.repeats)
        print(f"\n3. Reinforce's controller, us per call (median of {args.repeats} x 500): "
              + ", ".join(f"{name} {us:.0f}" for name, us in costs.items())
              + f"; {sum(costs.values()):.0f} us a trial at batch_size=1")
    print(f"\n# {time.perf_counter() - start:.0f} s; load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
