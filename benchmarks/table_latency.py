"""The shipped table's latency_ms: how it relates to FLOPs, whether it repeats, and the front it gives.

    python benchmarks/table_latency.py                 # 30 cells re-measured, NSGA-II with 400 lookups
    python benchmarks/table_latency.py --cells 0       # no re-measuring (no timing, seconds)

1. Spearman's rho between latency_ms and FLOPs over all 15,625 cells, and the latency range.
2. `--cells` random cells re-measured now with the table's method (the relative one,
   nasnb.bench.build.RELATIVE_LATENCY_METHOD, ratios in the table's reference ms; or the absolute
   LATENCY_METHOD, its passes, each cell's fastest): the ratio fresh / shipped. Not a unit test: both figures are
   timings on a shared machine, and the load when the table was measured is in table.meta["latency"].
3. The true Pareto fronts of (val_accuracy max, latency_ms min) and (val_accuracy max, flops min),
   enumerated over all cells (each cell: its class's mean validation accuracy, its own cost), and
   NSGA-II on the table for accuracy against latency: lookups per second and the hypervolume of its
   front over the true front's (reference: chance accuracy 0.1 and the 99th percentile of latency,
   above which lie the timings a slow spell inflated).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import nasnb  # noqa: E402
from nasnb.bench.build import LATENCY_METHOD, RELATIVE_LATENCY_METHOD, cell_latency, cell_relative_latency  # noqa: E402
from nasnb.bench.evaluator import TableEvaluator  # noqa: E402
from nasnb.objectives import hypervolume, non_dominated  # noqa: E402
from nasnb.spaces.nb201 import NB201Space  # noqa: E402
from nasnb.strategies.nsga2 import NSGA2  # noqa: E402


def front_summary(points: np.ndarray, objectives: dict) -> tuple[np.ndarray, int]:
    front = non_dominated(points, objectives)
    return front, len({tuple(p) for p in points[front].tolist()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=30, help="random cells to re-measure")
    parser.add_argument("--trials", type=int, default=400, help="NSGA-II's lookups")
    parser.add_argument("--population", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--file", type=pathlib.Path, default=None, help="a table file instead of the shipped one")
    args = parser.parse_args()
    from scipy.stats import spearmanr

    table = nasnb.bench.Table.from_file(args.file) if args.file else nasnb.bench.load("nb201-digits")
    latency, flops = table.latency().astype(float), np.asarray(table.flops, dtype=float)
    note = table.meta["latency"]
    print(f"latency_ms of {len(latency):,} cells, measured on {note['machine'].get('processor')} "
          f"(torch {note['machine'].get('torch')}, {note['method']['threads']} thread), load min/median/max "
          f"{note['load_1min']}")
    print(f"range {latency.min():.3f} .. {latency.max():.3f} ms, median {np.median(latency):.3f} ms; "
          f"Spearman(latency, FLOPs) over all cells {spearmanr(latency, flops)[0]:.3f}")

    if args.cells:
        rng = np.random.default_rng(args.seed)
        picked = rng.choice(len(latency), size=args.cells, replace=False)
        load = os.getloadavg()
        if note["method"] == RELATIVE_LATENCY_METHOD:  # each cell against the reference, in the table's ms
            fresh = np.array(cell_relative_latency(RELATIVE_LATENCY_METHOD, picked.tolist())[0]) * note["reference_ms"]
        else:
            fresh = np.min([cell_latency(LATENCY_METHOD, picked.tolist()) for _ in range(LATENCY_METHOD["passes"])],
                           axis=0)
        ratio = fresh / latency[picked]
        print(f"{args.cells} cells re-measured now (load {load[0]:.2f} -> {os.getloadavg()[0]:.2f}): fresh / shipped "
              f"median {np.median(ratio):.3f}, range {ratio.min():.3f} .. {ratio.max():.3f}; within ±10 % "
              f"{np.mean(np.abs(ratio - 1) <= 0.10):.0%}, within ±25 % {np.mean(np.abs(ratio - 1) <= 0.25):.0%}; "
              f"Spearman(fresh, shipped) {spearmanr(fresh, latency[picked])[0]:.3f}")

    accuracy = table.val_accuracy()[table.class_of]  # per cell, in enumerate order
    for cost_name, cost in (("latency_ms", latency), ("flops", flops)):
        objectives = {"val_accuracy": "max", cost_name: "min"}
        front, distinct = front_summary(np.column_stack([accuracy, cost]), objectives)
        order = front[np.argsort(cost[front])]
        print(f"true front of accuracy vs {cost_name}: {len(front)} cells, {distinct} distinct points, from "
              f"{accuracy[order[0]]:.3f} at {cost[order[0]]:.4g} to {accuracy[order[-1]]:.3f} at {cost[order[-1]]:.4g}")

    objectives = {"val_accuracy": "max", "latency_ms": "min"}
    points = np.column_stack([accuracy, latency])
    true_front = non_dominated(points, objectives)
    reference = [0.1, float(np.quantile(latency, 0.99))]  # the slowest 1 % hold the slow spells' outliers
    true_hv = hypervolume(points[true_front], reference, objectives)
    search = NSGA2(NB201Space(), TableEvaluator(table), objectives=objectives, population_size=args.population,
                   seed=args.seed)
    start = time.perf_counter()
    search.run(args.trials, progress=False)
    seconds = time.perf_counter() - start
    found = search.history.front(objectives)
    pts = np.array([[t.metrics["val_accuracy"], t.metrics["latency_ms"]] for t in found])
    print(f"NSGA-II, population {args.population}, {args.trials} lookups in {seconds:.2f} s "
          f"({args.trials / seconds:,.0f} trials/s): front of {len(found)} cells, hypervolume "
          f"{hypervolume(pts, reference, objectives) / true_hv:.1%} of the true front's")


if __name__ == "__main__":
    main()
