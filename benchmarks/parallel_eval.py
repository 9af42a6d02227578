"""Evaluating architectures in parallel: `run(n, executor=process_pool(2))` against one process.

    python benchmarks/parallel_eval.py [--trials 24] [--epochs 3] [--workers 2]

Random search on NB201 cells trained on 300 digits. Both sides use one torch thread per process
(the parent sets it too), the workers are warmed up with one evaluation each before timing, and
the script checks that both runs produced the same metrics. Prints the times and the speed-up.
"""
import argparse
import time

import torch

import nasnb
from nasnb.evaluators import process_pool
from nasnb.spaces import NB201Space
from nasnb.strategies import RandomSearch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = nasnb.data.load("digits").subset(train_size=300)
    space = NB201Space()
    evaluator = nasnb.TrainEvaluator(data, epochs=args.epochs, device="cpu")
    with process_pool(args.workers) as pool:
        warm = [pool.submit(evaluator, space.sample(100 + k)) for k in range(args.workers)]
        [f.result() for f in warm]
        start = time.perf_counter()
        parallel = RandomSearch(space, evaluator, seed=1).run(args.trials, executor=pool, progress=False)
        t_parallel = time.perf_counter() - start
    evaluator.cache.clear()
    start = time.perf_counter()
    sequential = RandomSearch(space, evaluator, seed=1).run(args.trials, progress=False)
    t_sequential = time.perf_counter() - start
    same = parallel.values() == sequential.values()
    print(f"{args.trials} trials, {args.epochs} epochs on 300 digits: {args.workers} spawn workers x 1 thread "
          f"{t_parallel:.1f} s, one process x 1 thread {t_sequential:.1f} s, speed-up {t_sequential / t_parallel:.2f}x, "
          f"same metrics: {same}")


if __name__ == "__main__":
    main()
