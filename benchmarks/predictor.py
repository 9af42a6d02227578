"""A learned predictor on the table: its Kendall tau against training-set size, and the search it guides.

    .venv/bin/python benchmarks/predictor.py                   # shipped table, ~5-8 min on one core
    .venv/bin/python benchmarks/predictor.py --quick           # fewer sizes, repeats and seeds (~1 min)
    .venv/bin/python benchmarks/predictor.py --part search --seeds 20

(1) Predictor quality (nasnb/predictors.py). For each training-set size n in 10 .. 1,000, `--repeats`
times: n unique cells (table rows) drawn at random, a Predictor fitted on their mean validation
accuracy (3 seeds, full training), and Kendall tau between its mean prediction and the truth on
1,000 other cells. Printed: median and interquartile range of tau, and the median fit seconds, for
each encoding (one-hot, path) and ensemble (5 MLPs, the default; 5 gradient-boosted tree models).

(2) Search. PredictorGuided (its defaults: 10 random cells, then an MLP ensemble refitted every 10
trials, 100 mutations of the 10 best + 10 random candidates, Thompson sampling), against
RegularizedEvolution (population 10, tournament 3: NAS-Bench-201's reference setting) and
RandomSearch, each `--seeds` runs of `--trials` trials on NB201Space with TableEvaluator(table,
seed=run % 3): a search sees one training per cell, as a search that trains would. After each
trial the incumbent is the trial the search would return (best().arch, by the seed it saw); its
regret is the table's best mean validation accuracy (3-seed mean, full training) minus the
incumbent's 3-seed mean. Printed: median (and quartiles) of the regret over runs after 10, 20, 50,
100 and `--trials` trials, and wall seconds per run (the predictor's cost: fits and predictions;
table lookups are free).

Results: benchmarks/results/predictor-nb201-digits.txt (this output) and .npz (tau per size,
encoding, model and repeat; regret per method, run and trial).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: one core, as promised
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

SIZES = (10, 20, 50, 100, 200, 500, 1000)
ENCODINGS = ("onehot", "path")
MODELS = ("mlp", "boosting")
CHECKPOINTS = (10, 20, 50, 100)


def quartiles(values) -> tuple[float, float, float]:
    q1, q2, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(q2), float(q1), float(q3)


def predictor_quality(table, sizes, repeats: int, out: list) -> dict:
    from nasnb.predictors import Predictor, kendall_tau

    cells = [tuple(c) for c in table.cells]
    truth = table.val_accuracy()  # (rows,): mean over the table's seeds, full training
    taus = np.full((len(ENCODINGS), len(MODELS), len(sizes), repeats), np.nan)
    seconds = np.full_like(taus, np.nan)
    for r in range(repeats):
        order = np.random.default_rng(1000 + r).permutation(len(cells))
        held_out = order[-1000:]
        for i, n in enumerate(sizes):
            train = order[:n]
            for e, encoding in enumerate(ENCODINGS):
                for m, model in enumerate(MODELS):
                    predictor = Predictor(table.space, encoding=encoding, model=model, seed=r)
                    start = time.perf_counter()
                    predictor.fit([cells[k] for k in train], truth[train])
                    seconds[e, m, i, r] = time.perf_counter() - start
                    mean, _ = predictor.predict([cells[k] for k in held_out])
                    taus[e, m, i, r] = kendall_tau(mean, truth[held_out])
        print(f"  repeat {r + 1}/{repeats} done", file=sys.stderr, flush=True)
    say(out, f"(1) Kendall tau on 1,000 held-out cells, truth = mean val accuracy; median [IQR] of {repeats} repeats, "
             "median fit seconds")
    header = "n".rjust(6) + "".join(f"{enc + ' / ' + mod:>28}" for enc in ENCODINGS for mod in MODELS)
    say(out, header)
    for i, n in enumerate(sizes):
        row = f"{n:6d}"
        for e in range(len(ENCODINGS)):
            for m in range(len(MODELS)):
                med, q1, q3 = quartiles(taus[e, m, i])
                row += f"   {med:.3f} [{q1:.3f},{q3:.3f}] {np.median(seconds[e, m, i]):5.2f}s"
        say(out, row)
    return {"sizes": np.array(sizes), "taus": taus, "fit_seconds": seconds}


def methods():
    from nasnb.strategies.evolution import RegularizedEvolution
    from nasnb.strategies.predictor import PredictorGuided
    from nasnb.strategies.random import RandomSearch

    return {
        "PredictorGuided": lambda space, ev, seed: PredictorGuided(space, ev, seed=seed),
        "RegularizedEvolution": lambda space, ev, seed: RegularizedEvolution(space, ev, population_size=10,
                                                                             sample_size=3, seed=seed),
        "RandomSearch": lambda space, ev, seed: RandomSearch(space, ev, seed=seed),
    }


def regret_trace(search, table, best: float) -> np.ndarray:
    """Regret of the incumbent (the best trial by what the search saw) after each trial."""
    mean = table.val_accuracy()
    trace, incumbent, value = [], None, -np.inf
    for t in search.history.trials:
        if t.ok and t.value(search.metric) > value:
            value, incumbent = t.value(search.metric), table.row(table.space.parse(t.arch))
        trace.append(best - mean[incumbent] if incumbent is not None else np.nan)
    return np.array(trace)


def search_regret(table, seeds: int, trials: int, out: list) -> dict:
    from nasnb.evaluators import TableEvaluator

    best = float(table.val_accuracy().max())
    regrets, wall = {}, {}
    for name, make in methods().items():
        regrets[name], wall[name] = [], []
        for run in range(seeds):
            evaluator = TableEvaluator(table, seed=table.seeds[run % len(table.seeds)])
            search = make(table.space, evaluator, run)
            start = time.perf_counter()
            search.run(trials, progress=False)
            wall[name].append(time.perf_counter() - start)
            regrets[name].append(regret_trace(search, table, best))
        print(f"  {name} done", file=sys.stderr, flush=True)
    points = [c for c in CHECKPOINTS if c < trials] + [trials]
    say(out, f"\n(2) regret = best mean val accuracy ({best:.4f}) - the incumbent's; median [quartiles] of {seeds} runs")
    say(out, "method".ljust(22) + "".join(f"{'N=' + str(p):>22}" for p in points) + "   s/run")
    for name in regrets:
        trace = np.stack(regrets[name])  # (runs, trials)
        row = name.ljust(22)
        for p in points:
            med, q1, q3 = quartiles(trace[:, p - 1])
            row += f"  {med:.4f} [{q1:.4f},{q3:.4f}]"
        say(out, row + f"  {np.median(wall[name]):6.1f}")
    reached = {name: [int(np.argmax(t <= 1e-12)) + 1 if (t <= 1e-12).any() else None for t in regrets[name]]
               for name in regrets}
    say(out, "runs that found the optimum (median trials to it): " + "; ".join(
        f"{name} {sum(r is not None for r in hits)}/{seeds} ({np.median([r for r in hits if r]) if any(hits) else '-'})"
        for name, hits in reached.items()))
    return {f"regret_{name}": np.stack(trace) for name, trace in regrets.items()} | {
        f"seconds_{name}": np.array(w) for name, w in wall.items()}


def say(out: list, line: str) -> None:
    print(line, flush=True)
    out.append(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("both", "quality", "search"), default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--quick", action="store_true", help="sizes 10, 100, 1000; 2 repeats; 3 seeds of 60 trials")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    import nasnb.bench

    table = nasnb.bench.load("nb201-digits")
    sizes = (10, 100, 1000) if args.quick else SIZES
    repeats, seeds, trials = (2, 3, 60) if args.quick else (args.repeats, args.seeds, args.trials)
    out = [f"table {table.name}: {len(table)} unique cells, seeds {table.seeds}, {table.max_epochs} epochs"]
    print(out[0])
    start = time.perf_counter()
    arrays = {}
    if args.part in ("both", "quality"):
        arrays |= predictor_quality(table, sizes, repeats, out)
    if args.part in ("both", "search"):
        arrays |= search_regret(table, seeds, trials, out)
    say(out, f"\n{time.perf_counter() - start:.0f} s in all")
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        name = "predictor-nb201-digits" if args.part == "both" else f"predictor-nb201-digits-{args.part}"
        (RESULTS / f"{name}.txt").write_text("\n".join(out) + "\n")
        np.savez_compressed(RESULTS / f"{name}.npz", encodings=np.array(ENCODINGS), models=np.array(MODELS), **arrays)
        print(f"saved in {RESULTS / name}.txt and .npz")


if __name__ == "__main__":
    main()
