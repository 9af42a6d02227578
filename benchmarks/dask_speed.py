"""Searches on a local Dask cluster: trials per second with 1 and 2 workers against one process,
and what Dask adds to every trial.

    python benchmarks/dask_speed.py [--trials 8] [--epochs 1] [--train-size 256] [--overhead-trials 200]

Training: random search on NB201 cells (QUICK_BUILD size) trained on a digits subset, run in this
process (torch at 1 thread, and at its default), then on `dask_executor(workers=1)` and
`dask_executor(workers=2)` (worker processes of one thread, torch at one thread). Every trial
trains: the evaluator's isomorphism cache is emptied before each call, as it is in a Dask task
(each task unpickles its own copy of the evaluator). The workers are warmed up (one training each)
before timing, cluster start-up is timed apart, and the metrics of every run are checked to be the
same. Overhead: a near-zero-cost evaluator (the toy space's formula, about a microsecond), run in
this process and on the 2-worker cluster with batch 2 and batch 16; the difference per trial is
Dask's round trip (submit, schedule, pickle, run, result).
"""
import argparse
import time

import torch

import nasnb
from nasnb.distributed import dask_executor
from nasnb.evaluators import TrainEvaluator
from nasnb.spaces import NB201Space
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import RandomSearch


class EveryTrialTrains:
    """A TrainEvaluator whose cache is emptied before each call: every trial trains, here as on a worker."""

    def __init__(self, evaluator):
        self.evaluator = evaluator

    def __call__(self, arch):
        self.evaluator.cache.clear()
        return self.evaluator(arch)


def timed_search(space, evaluator, trials: int, **run_kwargs):
    start = time.perf_counter()
    history = RandomSearch(space, evaluator, seed=1).run(trials, progress=False, **run_kwargs)
    return history, time.perf_counter() - start


def comparable(history) -> list:
    return [{k: v for k, v in t.metrics.items() if k != "seconds"} for t in history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-size", type=int, default=256)
    parser.add_argument("--overhead-trials", type=int, default=200)
    args = parser.parse_args()
    space = NB201Space()
    data = nasnb.data.load("digits").subset(train_size=args.train_size, seed=0)
    evaluator = EveryTrialTrains(TrainEvaluator(data, epochs=args.epochs, space=space, device="cpu",
                                                test=False, count_flops=False))
    default_threads = torch.get_num_threads()
    rows, reference = [], None
    for threads in (1, default_threads):
        torch.set_num_threads(threads)
        evaluator(space.sample(100))  # warm-up: the first training in a process pays for setting up
        history, seconds = timed_search(space, evaluator, args.trials)
        reference = reference or comparable(history)
        rows.append((f"in-process, torch {threads} thread(s)", seconds, None, comparable(history) == reference))
    torch.set_num_threads(default_threads)
    toy = ToySpace()
    _, toy_local = timed_search(toy, toy.evaluate, args.overhead_trials)
    overhead = []
    for workers in (1, 2):
        start = time.perf_counter()
        with dask_executor(workers=workers) as executor:
            started = time.perf_counter() - start
            warm = [executor.submit(evaluator, space.sample(100 + k)) for k in range(workers)]
            [future.result() for future in warm]
            history, seconds = timed_search(space, evaluator, args.trials, executor=executor, batch=workers)
            rows.append((f"Dask, {workers} worker(s) x 1 thread", seconds, started, comparable(history) == reference))
            if workers == 2:
                for batch in (2, 16):
                    _, toy_dask = timed_search(toy, toy.evaluate, args.overhead_trials, executor=executor, batch=batch)
                    overhead.append((batch, toy_dask))

    print(f"{args.trials} trainings of NB201 cells ({args.epochs} epoch(s) on {args.train_size} digits), "
          f"{default_threads} CPU thread(s) available:")
    base = rows[0][1]
    for name, seconds, started, same in rows:
        start_note = "" if started is None else f", cluster start {started:.1f} s (not counted)"
        print(f"  {name:34s} {seconds:6.2f} s  {args.trials / seconds:6.2f} trials/s  "
              f"speed-up {base / seconds:4.2f}x  same metrics: {same}{start_note}")
    print(f"Per-trial overhead ({args.overhead_trials} toy trials, formula only): in-process "
          f"{toy_local / args.overhead_trials * 1e6:.0f} us a trial")
    for batch, seconds in overhead:
        print(f"  Dask, 2 workers, batch {batch:2d}: {seconds / args.overhead_trials * 1e3:.2f} ms a trial "
              f"(+{(seconds - toy_local) / args.overhead_trials * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
