"""Early stopping on the table: simulated seconds to reach a regret, Hyperband / SH against full training.

    .venv/bin/python benchmarks/early_stopping.py                    # shipped table, 100 seeds, ~1-2 min
    .venv/bin/python benchmarks/early_stopping.py --seeds 200 --cap 300
    .venv/bin/python benchmarks/early_stopping.py --synthetic        # a synthetic table (below)
    .venv/bin/python benchmarks/early_stopping.py --shards benchmarks/tables/nb201-digits   # a build in progress

Every search runs on `TableEvaluator(table, seed=k)` over NB201Space, with table seed k = run
seed % (the table's seeds): each run sees one training per cell, as a search that trains would.
The clock is the *simulated* training time, the sum of the trials' ``metrics["seconds"]`` (the
recorded seconds of a full training times budget / max_epochs: a Hyperband trial at 1 epoch of 10
costs a tenth), not the wall time of the lookups. Each run stops when it has spent `--cap` times
the mean cost of one full training.

Methods: RandomSearch (every trial trained in full, the baseline), Hyperband (R = the table's
epochs, eta = 3, random proposer), Hyperband with the evolution proposer, and SuccessiveHalving
(its most aggressive bracket only). After each trial the incumbent is the search's best() (for
Hyperband and SH: the best trial at the full budget R); its regret is the table's best mean test
accuracy minus the incumbent's mean test accuracy (the search selects on one seed's validation
accuracy, the regret is measured on the mean test accuracy over the seeds).

The regret thresholds are those of reaching the top `--top` fractions of the space (0.1, 0.05,
0.02, 0.01: an architecture at least as good as 90%, ..., 99% of the 15,625 cells by mean test
accuracy), so that they mean the same on any table; the regret each stands for is printed (on
digits the top 1.4% tie within 1/1200 of the best, so "top 1%" is that plateau). Printed per method and
threshold: the median over seeds of the simulated seconds (and of the full-training equivalents:
seconds / mean full-training cost) until the regret is at most the threshold ("-" when fewer
than half the seeds get there within the cap), how many seeds get there, and the median final
regret; then each method's speed-up over random search at each threshold.

--synthetic (or no shipped table): every unique cell gets a final accuracy from its ops (convs help,
none hurts, noise) and a learning curve a(e) = final * (1 - exp(-e / tau)) whose speed tau differs
per cell, so early and final rankings disagree; seconds grow with the convolutions. Only the
shipped table's figures say anything about digits.

--shards FOLDER: the finished classes of a table build in progress (scripts/build_table.py), every
seed of them, as a stand-in: the searches draw and mutate only cells of finished classes
(`FinishedCells`), and the thresholds are over those cells.
"""
from __future__ import annotations

import argparse
import math
import pathlib
import statistics
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def synthetic_table(seed: int = 0, epochs: int = 10, seeds: int = 3, val: int = 397, test: int = 400):
    """A Table of the shipped one's shape whose learning curves cross (module docstring)."""
    from nasnb.bench import Table, arch_at
    from nasnb.bench.build import unique_cells
    from nasnb.spaces import NB201Space

    space, rng = NB201Space(), np.random.default_rng(seed)
    cells = unique_cells()
    ops = [arch_at(c) for c in cells]
    conv3 = np.array([a.count("nor_conv_3x3") for a in ops])
    conv1 = np.array([a.count("nor_conv_1x1") for a in ops])
    none = np.array([a.count("none") for a in ops])
    quality = 0.55 + 0.05 * conv3 + 0.03 * conv1 - 0.04 * none + rng.normal(0, 0.04, len(cells))
    final = np.clip(quality, 0.1, 0.97)
    tau = rng.uniform(0.5, 4.0, len(cells))  # fast and slow learners: early rankings mislead
    e = np.arange(1, epochs + 1)
    curve = final[:, None] * (1 - np.exp(-e[None, :] / tau[:, None])) / (1 - np.exp(-epochs / tau[:, None]))
    noisy = curve[:, None, :] + rng.normal(0, 0.015, (len(cells), seeds, epochs))
    val_correct = np.clip(np.round(noisy * val), 0, val).astype(np.uint16)
    test_correct = np.clip(np.round((final[:, None] + rng.normal(0, 0.015, (len(cells), seeds))) * test), 0,
                           test).astype(np.uint16)
    seconds = (10 + 6 * conv3 + 2 * conv1)[:, None] * rng.uniform(0.9, 1.1, (len(cells), seeds))
    row_of = {c: r for r, c in enumerate(cells)}
    from nasnb.bench import arch_index

    class_of = np.array([row_of[arch_index(space.canonical(a))] for a in space.enumerate()], dtype=np.uint16)
    zeros = np.zeros(len(space), dtype=np.int64)
    meta = {"name": "synthetic-curves", "seeds": list(range(seeds)), "val_size": val, "test_size": test}
    return Table("synthetic-curves", meta, np.array(cells, dtype=np.int32), class_of, val_correct, test_correct,
                 seconds.astype(np.float32), zeros, zeros)


def shards_table(folder: pathlib.Path):
    """(Table, set of arch tuples) of the classes whose every seed a build in progress has finished;
    the archs of other classes point at row 0 and are never drawn (FinishedCells)."""
    from nasnb.bench import Table, arch_at, arch_index
    from nasnb.bench.build import PROTOCOL, read_shard
    from nasnb.spaces import NB201Space

    records: dict = {}
    for path in sorted(folder.glob("shard-*.json")):
        for r in read_shard(path, PROTOCOL)["records"]:
            records.setdefault(r["index"], {})[r["seed"]] = r
    seeds = PROTOCOL["seeds"]
    cells = sorted(i for i, by_seed in records.items() if len(by_seed) == len(seeds))
    val = np.array([[records[c][k]["val_correct"] for k in seeds] for c in cells], dtype=np.uint16)
    test = np.array([[records[c][k]["test_correct"] for k in seeds] for c in cells], dtype=np.uint16)
    seconds = np.array([[records[c][k]["seconds"] for k in seeds] for c in cells], dtype=np.float32)
    space, row_of = NB201Space(), {c: r for r, c in enumerate(cells)}
    classes = [arch_index(space.canonical(a)) for a in space.enumerate()]
    class_of = np.array([row_of.get(c, 0) for c in classes], dtype=np.uint16)
    finished = {arch_at(i) for i, c in enumerate(classes) if c in row_of}
    zeros = np.zeros(len(space), dtype=np.int64)
    meta = {"name": f"shards ({len(cells)} classes)", "seeds": seeds, "val_size": PROTOCOL["data"]["val_size"],
            "test_size": 400, "DEV": True}
    table = Table(meta["name"], meta, np.array(cells, dtype=np.int32), class_of, val, test, seconds, zeros, zeros)
    return table, finished


def finished_cells(finished: set):
    """NB201Space restricted to `finished` cells: sample and mutate draw again until they land there."""
    from nasnb.spaces import NB201Space

    class FinishedCells(NB201Space):
        def sample(self, rng=None):
            while True:
                arch = super().sample(rng)
                if arch in finished:
                    return arch

        def mutate(self, arch, rng=None):
            for _ in range(1000):
                child = super().mutate(arch, rng)
                if child in finished:
                    return child
            return self.sample(rng)  # no finished neighbour drawn: anywhere finished

        def __repr__(self) -> str:
            return f"FinishedCells({len(finished)} cells)"

    return FinishedCells()


def methods(table):
    from nasnb.strategies.halving import Hyperband, SuccessiveHalving
    from nasnb.strategies.random import RandomSearch

    R = table.max_epochs
    return {
        "random search (full)": lambda space, ev, seed: RandomSearch(space, ev, seed=seed),
        "Hyperband": lambda space, ev, seed: Hyperband(space, ev, max_budget=R, eta=3, seed=seed),
        "Hyperband + evolution": lambda space, ev, seed: Hyperband(space, ev, max_budget=R, eta=3,
                                                                    proposer="evolution", seed=seed),
        "successive halving": lambda space, ev, seed: SuccessiveHalving(space, ev, max_budget=R, eta=3, seed=seed),
    }


def one_run(make, table, space, seed: int, cap: float, mean_test: dict, best_test: float) -> list:
    """[(simulated seconds spent, regret of the incumbent)] after every trial."""
    from nasnb.evaluators import TableEvaluator

    evaluator = TableEvaluator(table, seed=table.seeds[seed % len(table.seeds)])
    search = make(space, evaluator, seed)
    spent, trace = 0.0, []
    while spent < cap:
        trial = search.step()
        spent += trial.metrics.get("seconds", 0.0)
        best = search.best()
        if best is not None:
            if best.arch not in mean_test:
                mean_test[best.arch] = table.query(best.arch)["test_accuracy"]
            trace.append((spent, best_test - mean_test[best.arch]))
        else:
            trace.append((spent, math.inf))
    return trace


def first_below(trace: list, threshold: float) -> float:
    return next((spent for spent, regret in trace if regret <= threshold + 1e-12), math.inf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--cap", type=float, default=200, help="budget per run, in mean full trainings")
    parser.add_argument("--top", type=float, nargs="+", default=[0.1, 0.05, 0.02, 0.01],
                        help="reach the top fraction of the space (by mean test accuracy)")
    parser.add_argument("--synthetic", action="store_true", help="a synthetic table even if the shipped one exists")
    parser.add_argument("--shards", type=pathlib.Path, help="the finished classes of a build in progress")
    args = parser.parse_args()

    import nasnb.bench
    from nasnb.bench import arch_index
    from nasnb.spaces import NB201Space

    space = NB201Space()
    shipped = (nasnb.bench.DATA / nasnb.bench.TABLES["nb201-digits"][0]).exists()
    if args.shards is not None:
        table, finished = shards_table(args.shards)
        space = finished_cells(finished)
        rows = [table.class_of[arch_index(a)] for a in sorted(finished)]
    else:
        table = synthetic_table() if args.synthetic or not shipped else nasnb.bench.load("nb201-digits")
        rows = np.asarray(table.class_of)
    full = float(table.train_seconds.mean())  # the mean cost of one full training, seconds
    _, best_test = table.optimum("test_accuracy")
    every_arch = table.test_accuracy()[np.asarray(rows)]  # one value per arch the searches may draw
    regrets = [best_test - float(np.quantile(every_arch, 1 - top)) for top in args.top]
    print(f"table {table.name}: {len(table)} cells, {table.max_epochs} epochs, seeds {table.seeds}; mean full "
          f"training {full:.2f} simulated s; best mean test accuracy {best_test:.4f}")
    print(f"{args.seeds} seeds per method, each run capped at {args.cap:g} full trainings "
          f"({args.cap * full:.0f} simulated s)")
    labels = [f"top {100 * top:g}%" for top in args.top]
    print("thresholds: " + ", ".join(f"{label} = regret <= {r:.4f}" for label, r in zip(labels, regrets)) + "\n")

    mean_test: dict = {}
    results = {}
    for name, make in methods(table).items():
        start = time.perf_counter()
        traces = [one_run(make, table, space, seed, args.cap * full, mean_test, best_test)
                  for seed in range(args.seeds)]
        results[name] = traces
        trials = statistics.median(len(t) for t in traces)
        print(f"{name}: {time.perf_counter() - start:.1f} s wall, median {trials:.0f} trials per run")

    print("\nmedian simulated seconds (full trainings) to reach, seeds that got there; median final regret")
    print(f"{'method':<24}" + "".join(f" | {label:^26}" for label in labels) + " | final regret")
    medians = {}
    for name, traces in results.items():
        cells = []
        for label, r in zip(labels, regrets):
            times = [first_below(t, r) for t in traces]
            reached = sum(math.isfinite(x) for x in times)
            median = statistics.median(times) if reached * 2 > len(times) else math.inf  # "-": not by half
            medians[name, label] = median
            shown = "-" if math.isinf(median) else f"{median:7.0f} s ({median / full:5.1f})"
            cells.append(f" | {shown:>17} {reached:>3}/{len(traces):<4}")
        final = statistics.median(t[-1][1] for t in traces)
        print(f"{name:<24}" + "".join(cells) + f" | {final:.4f}")

    print("\nspeed-up over random search (its median simulated seconds / the method's):")
    base = "random search (full)"
    for name in results:
        if name == base:
            continue
        ratios = []
        for label in labels:
            a, b = medians[base, label], medians[name, label]
            ratios.append("-" if math.isinf(a) or math.isinf(b) else f"{a / b:.2f}x")
        print(f"  {name:<24}" + "  ".join(f"{label}: {x:>6}" for label, x in zip(labels, ratios)))

if __name__ == "__main__":
    main()
