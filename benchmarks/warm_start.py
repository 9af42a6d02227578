"""Warm start on a second task: digits -> shapes, rank correlation of cells and trials saved.

    .venv/bin/python benchmarks/warm_start.py                  # shipped tables, 200 seeds, ~30 s
    .venv/bin/python benchmarks/warm_start.py --seeds 50 --trials 150 --shapes other-shapes.npz

The source task is nb201-digits (every NB201 class, 3 seeds), the target nb201-shapes (a partial
table: the classes of an NB201 sub-space, `shapes.space`, trained on the generated shapes with the
same protocol, nasnb.bench.build.SHAPES_PROTOCOL, 1 seed: the 496 classes of the cells made of
skip, 1x1 and 3x3 convs). Both are looked up, nothing trains.

(a) Rank correlation of the shapes table's classes between the tasks: Spearman and Kendall tau
(scipy.stats) of the digits table's mean validation accuracy (3 seeds) against the shapes table's,
and of the test accuracies; for scale, digits seed 0 against digits seed 1 on the same classes (how
well a task agrees with itself); where the digits top-10 land on shapes.

(b) Searches on shapes (its sub-space, looked up with TableEvaluator(shapes)): regularized
evolution with NAS-Bench-201's settings (population 10, tournament 3), cold (a random first
population) against warm (`RegularizedEvolution(..., initial=top_cells(digits, 10, shapes.space))`:
the first population is the 10 classes digits ranks best), the same run seeds for all.
The warm start is the same 10 cells in every run, so its first trials are too; how much the result
owes to the source's noise shows in three more warm arms, each ranked by one digits seed only
(`top_cells(..., seed=k)`): what a source table of one training per cell would give.

After each trial the incumbent is the best validation accuracy so far, and its regret the shapes
table's best mean test accuracy minus the incumbent's. The thresholds are the regrets of the top
5 %, 2 %, 1 % of the sub-space's cells and of its optimum. Printed per arm and threshold: the
median over seeds of the trials until the regret is at most it (runs that never get there within
--trials count as --trials + 1; the median is "-" when over half of them do), how many runs got
there, and "trials saved" = cold's median - the arm's; then the median regret after 1 ... 100
trials. The summary is written to benchmarks/results/warm-start.json.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POPULATION, SAMPLE = 10, 3  # NAS-Bench-201's regularized evolution settings


def correlations(digits, shapes) -> dict:
    """(a): the rank agreement of the two tables on the shapes table's classes."""
    from scipy.stats import kendalltau, spearmanr

    rows = [digits.row(arch) for arch in shapes.cells]  # each shapes class's row in digits
    pairs = {
        "val digits(3 seeds) vs shapes": (digits.val_accuracy()[rows], shapes.val_accuracy()),
        "test digits(3 seeds) vs shapes": (digits.test_accuracy()[rows], shapes.test_accuracy()),
        "val digits seed 0 vs digits seed 1": (digits.val_accuracy(seed=0)[rows], digits.val_accuracy(seed=1)[rows]),
        "val shapes vs test shapes (same training)": (shapes.val_accuracy(), shapes.test_accuracy()),
    }
    out = {}
    for name, (a, b) in pairs.items():
        out[name] = {"spearman": float(spearmanr(a, b).statistic), "kendall": float(kendalltau(a, b).statistic)}
    d_val, s_val = digits.val_accuracy()[rows], shapes.val_accuracy()
    shapes_rank = (-s_val).argsort().argsort() + 1  # 1 = best on shapes
    top = np.argsort(-d_val, kind="stable")[:10]
    out["digits top-10: their ranks on shapes (of %d)" % len(rows)] = sorted(int(shapes_rank[r]) for r in top)
    out["shapes optimum: its rank on digits"] = int(((-d_val).argsort().argsort() + 1)[int(np.argmax(s_val))])
    out["accuracy ranges"] = {"digits val": [float(d_val.min()), float(d_val.max())],
                              "shapes val": [float(s_val.min()), float(s_val.max())]}
    return out


def thresholds(shapes) -> dict:
    """Regret of the top fractions of the sub-space's cells (by mean test accuracy), and 0."""
    test = shapes.test_accuracy()
    per_cell = np.sort([test[shapes.row(a)] for a in shapes.space.enumerate()])[::-1]
    best = float(per_cell[0])
    out = {f"top {f:.0%}": best - float(per_cell[int(np.ceil(f * len(per_cell))) - 1]) for f in (0.05, 0.02, 0.01)}
    out["optimum"] = 0.0
    return out


def regret_curve(search, shapes, best: float) -> list[float]:
    """The incumbent's regret after each trial (incumbent: the best validation accuracy so far)."""
    test = shapes.test_accuracy()
    curve, incumbent, top = [], None, -1.0
    for trial in search.history.trials:
        value = trial.value("val_accuracy")
        if value > top:  # ties keep the first, as History.best does
            top, incumbent = value, trial
        curve.append(best - float(test[shapes.row(incumbent.arch)]))
    return curve


def searches(digits, shapes, seeds: int, trials: int) -> dict:
    from nasnb.evaluators import TableEvaluator
    from nasnb.strategies.evolution import RegularizedEvolution
    from nasnb.warm_start import top_cells

    space, evaluator = shapes.space, TableEvaluator(shapes)
    starts = {"warm": top_cells(digits, POPULATION, space)}
    starts.update({f"warm, digits seed {k}": top_cells(digits, POPULATION, space, seed=k) for k in digits.seeds})
    best = float(shapes.test_accuracy().max())
    curves = {name: [] for name in ["cold", *starts]}
    for seed in range(seeds):
        runs = {"cold": RegularizedEvolution(space, evaluator, population_size=POPULATION, sample_size=SAMPLE,
                                             seed=seed)}
        runs.update({name: RegularizedEvolution(space, evaluator, initial=start, population_size=POPULATION,
                                                sample_size=SAMPLE, seed=seed) for name, start in starts.items()})
        for name, search in runs.items():
            search.run(trials, progress=False)
            curves[name].append(regret_curve(search, shapes, best))
    test = shapes.test_accuracy()
    first = {name: [round(best - float(test[shapes.row(a)]), 4) for a in start] for name, start in starts.items()}
    return {"start": [space.format(a) for a in starts["warm"]], "curves": curves, "start_regrets": first}


def trials_to(curve: list[float], threshold: float) -> int:
    for t, r in enumerate(curve, 1):
        if r <= threshold + 1e-12:
            return t
    return len(curve) + 1  # never within the budget


def median_or_dash(values: list[int], cap: int):
    m = statistics.median(values)
    return "-" if m > cap else m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--shapes", type=pathlib.Path, default=None, help="a shapes table file (default: shipped)")
    args = parser.parse_args()
    import nasnb.bench

    digits = nasnb.bench.load("nb201-digits")
    shapes = nasnb.bench.Table.from_file(args.shapes) if args.shapes else nasnb.bench.load("nb201-shapes")
    print(f"{digits!r}\n{shapes!r}")
    corr = correlations(digits, shapes)
    print("\n(a) rank correlation of the shapes table's classes")
    for name, value in corr.items():
        print(f"  {name}: {value}")
    start = time.perf_counter()
    runs = searches(digits, shapes, args.seeds, args.trials)
    elapsed = time.perf_counter() - start
    levels = thresholds(shapes)
    print(f"\n(b) regularized evolution on shapes (P={POPULATION}, S={SAMPLE}), {args.seeds} seeds x "
          f"{args.trials} trials, cold vs warm ({elapsed:.0f} s)\n  warm start: {runs['start'][:2]} ...")
    for name, regrets in runs["start_regrets"].items():
        print(f"  {name}: the start's regrets on shapes {regrets}")
    arms = list(runs["curves"])
    table = {}
    print(f"  {'arm':<20} " + " ".join(f"{n + ' (' + format(v, '.4f') + ')':>16}" for n, v in levels.items()))
    for arm in arms:
        cells = []
        for name, level in levels.items():
            t = [trials_to(c, level) for c in runs["curves"][arm]]
            med = median_or_dash(t, args.trials)
            cold = table.get("cold", {}).get(name, {}).get("median_trials")
            saved = "-" if arm == "cold" or "-" in (med, cold) else cold - med
            table.setdefault(arm, {})[name] = {"regret": level, "median_trials": med, "saved": saved,
                                               "reached": sum(x <= args.trials for x in t)}
            cells.append(f"{med!s} ({table[arm][name]['reached']}, {saved!s})")
        print(f"  {arm:<20} " + " ".join(f"{c:>16}" for c in cells))
    print("  each: median trials to the threshold (runs that got there, trials saved against cold)")
    after = {}
    for n in (1, 10, 20, 50, 100):
        if n <= args.trials:
            after[n] = {k: float(np.median([c[n - 1] for c in runs["curves"][k]])) for k in arms}
            print(f"  median regret after {n:>3} trials: " + "  ".join(f"{k} {v:.4f}" for k, v in after[n].items()))
    out = ROOT / "benchmarks" / "results" / "warm-start.json"
    out.write_text(json.dumps({"seeds": args.seeds, "trials": args.trials, "population": POPULATION,
                               "sample": SAMPLE, "correlations": corr, "thresholds": table,
                               "median_regret_after": after, "warm_start": runs["start"],
                               "start_regrets": runs["start_regrets"],
                               "shapes_meta_hash": shapes.meta.get("protocol_hash")}, indent=1))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
