"""Gradient initialisation, evolutionary refinement: regularized evolution started from DARTS' softmax(α).

    .venv/bin/python benchmarks/hybrid.py                      # 240 DARTS steps, 100 seeds, ~3 min on one core
    .venv/bin/python benchmarks/hybrid.py --steps 60 --seeds 30 --quick

1. One first-order DARTS search on NB201 (nasnb.strategies.DARTS, notebook 04's setting: order 1,
   alpha_lr 0.01, `--steps` steps, seed 0, one thread) on the images the table was built on
   (table.data()). Its seconds are measured (CPU seconds of this process, one thread: what it costs
   on an idle core, however busy the machine); its softmax(α) becomes `alpha_sampler(darts)`.
2. RegularizedEvolution (population 10, tournament 3: NAS-Bench-201's reference setting) on the
   table, `--seeds` runs of `--trials` trials each, with TableEvaluator(table, seed=run % 3), with a
   uniform first population ("uniform") and with one drawn from softmax(α / T) for each
   temperature T of `--temperatures` ("alpha T=1", ...). Same seeds, same budget.

Regret after N trials: the table's best mean validation accuracy (3 seeds, full training) minus
that of the incumbent (the trial the search would return, by the seed it saw). Printed: median,
mean and its standard error at N = 10, 20, 50, `--trials`, and the regret of the DARTS argmax
cell alone.

Charging DARTS fairly: its seconds are converted to trainings (divided by the table's mean
seconds per full training of a cell, recorded when the table was built on this kind of CPU), and
the last line compares uniform RE at N trials with the hybrid at N - that many trials: the same
total cost.

Results: benchmarks/results/hybrid-nb201-digits.txt (this output) and .npz (regret per method, run, trial).
"""
from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
CHECKPOINTS = (10, 20, 50)


def regret_trace(history, table, best: float) -> np.ndarray:
    """Regret of the incumbent (the best trial by what the search saw) after each trial."""
    mean = table.val_accuracy()
    trace, incumbent, value = [], None, -np.inf
    for t in history.trials:
        if t.ok and t.value("val_accuracy") > value:
            value, incumbent = t.value("val_accuracy"), table.row(table.space.parse(t.arch))
        trace.append(best - mean[incumbent] if incumbent is not None else np.nan)
    return np.array(trace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=240, help="DARTS steps (notebook 04: 240)")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--quick", action="store_true", help="do not save the results")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    import nasnb.bench
    from nasnb.evaluators import TableEvaluator
    from nasnb.hybrid import alpha_sampler
    from nasnb.strategies.darts import DARTS
    from nasnb.strategies.evolution import RegularizedEvolution

    table = nasnb.bench.load("nb201-digits")
    best = float(table.val_accuracy().max())
    out = []

    def say(line):
        print(line, flush=True)
        out.append(line)

    data = table.data()
    darts = DARTS(table.space, data, order=1, alpha_lr=0.01, schedule_steps=args.steps, seed=0, device="cpu")
    start, cpu = time.perf_counter(), time.process_time()
    darts.run(args.steps, progress=False)
    darts_wall, darts_seconds = time.perf_counter() - start, time.process_time() - cpu
    derived = darts.derived()
    probabilities = np.array(darts.state()["alphas"]["cell"])
    train_seconds = float(table.train_seconds.mean())  # one full training of a cell, mean over cells and seeds
    charge = math.ceil(darts_seconds / train_seconds)
    say(f"DARTS: {args.steps} first-order steps in {darts_seconds:.1f} CPU s ({darts_wall:.1f} s wall) = {charge} "
        "trainings' worth "
        f"(a full training of a cell: {train_seconds:.1f} s, table mean); derived {table.space.format(derived)}, "
        f"regret {best - table.val_accuracy()[table.row(derived)]:.4f}")
    say("softmax(α) per edge (none, skip, conv1x1, conv3x3, avg_pool): "
        + "; ".join(" ".join(f"{p:.2f}" for p in row) for row in probabilities))

    starts = {"uniform": None} | {f"alpha T={t:g}": alpha_sampler(darts, temperature=t) for t in args.temperatures}
    regrets = {}
    for name, initial in starts.items():
        traces = []
        for run in range(args.seeds):
            evaluator = TableEvaluator(table, seed=table.seeds[run % len(table.seeds)])
            search = RegularizedEvolution(table.space, evaluator, population_size=10, sample_size=3,
                                          initial=initial, seed=run)
            traces.append(regret_trace(search.run(args.trials, progress=False), table, best))
        regrets[name] = np.stack(traces)  # (runs, trials)
    points = [c for c in CHECKPOINTS if c < args.trials] + [args.trials]
    say(f"\nregret = best mean val accuracy ({best:.4f}) - the incumbent's; median / mean (sem) over {args.seeds} runs")
    say("start".ljust(14) + "".join(f"{'N=' + str(p):>26}" for p in points))
    for name, trace in regrets.items():
        say(name.ljust(14) + "".join(f"   {np.median(trace[:, p - 1]):.4f} / {trace[:, p - 1].mean():.4f} "
                                     f"({trace[:, p - 1].std(ddof=1) / math.sqrt(len(trace)):.4f})" for p in points))
    say(f"\nDARTS charged ({charge} trainings): uniform at N vs each alpha start at N - {charge} (mean regret)")
    for p in points:
        if p - charge >= 1:
            say(f"  N={p}: uniform {regrets['uniform'][:, p - 1].mean():.4f}; " + "; ".join(
                f"{name} {trace[:, p - charge - 1].mean():.4f}" for name, trace in regrets.items() if name != "uniform"))
        else:
            say(f"  N={p}: DARTS alone cost more than {p} trainings")
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "hybrid-nb201-digits.txt").write_text("\n".join(out) + "\n")
        np.savez_compressed(RESULTS / "hybrid-nb201-digits.npz", probabilities=probabilities, darts_seconds=darts_seconds,
                            train_seconds=train_seconds, **{f"regret_{k}": v for k, v in regrets.items()})
        print(f"saved in {RESULTS}/hybrid-nb201-digits.txt and .npz")


if __name__ == "__main__":
    main()
