"""What checkpointing costs per trial: bytes written and time, against nasnb 0.1's whole-file rewrite.

    .venv/bin/python benchmarks/checkpoint_io.py                 # 1,000 and 10,000 toy trials
    .venv/bin/python benchmarks/checkpoint_io.py --trials 500 --strategies random

Fast trials (ToySpace scores, microseconds each) make the checkpoint's own cost visible. For each
strategy three runs go side by side in one process:

  none      run(n) without a checkpoint: the search's own cost
  journal   run(n, checkpoint=folder): a journal line plus a small state file per trial (storage.py)
  rewrite   the nasnb 0.1 way, as a baseline: torch.save(state_dict()) of the whole search, history
            included, into one file after every trial (only up to --rewrite-trials: it is quadratic)

Bytes are those handed to write() (`wchar` in /proc/self/io, Linux), so they count what the
process writes, whatever the disk cache does later. Time is wall time per trial.
"""
from __future__ import annotations

import argparse
import io
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from nasnb.history import atomic_write
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import RandomSearch, RegularizedEvolution, Reinforce

MAKERS = {
    "random": lambda space: RandomSearch(space, space.evaluate, seed=0),
    "evolution": lambda space: RegularizedEvolution(space, space.evaluate, population_size=20, sample_size=5, seed=0),
    "reinforce": lambda space: Reinforce(space, space.evaluate, seed=0),
}


def written_bytes() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("wchar:")).split()[1])


def measure(run) -> tuple[float, int]:
    start_bytes, start = written_bytes(), time.perf_counter()
    run()
    return time.perf_counter() - start, written_bytes() - start_bytes


def rewrite_run(search, n: int, path: Path) -> None:
    """nasnb 0.1's checkpoint: the whole state, history included, rewritten after every trial."""
    for _ in range(n):
        search.step()
        buffer = io.BytesIO()
        torch.save(search.state_dict(), buffer)
        atomic_write(path, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--rewrite-trials", type=int, default=1000, help="largest n for the quadratic baseline")
    parser.add_argument("--strategies", nargs="+", default=sorted(MAKERS), choices=sorted(MAKERS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = ToySpace(length=6, options=4)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, 1 thread; ToySpace(length=6, options=4) trials")
    print(f"{'strategy':10} {'trials':>7} {'mode':8} {'ms/trial':>9} {'bytes/trial':>12} {'vs none':>8}")
    for name in args.strategies:
        for n in args.trials:
            folder = Path(tempfile.mkdtemp(prefix="nasnb-ckpt-"))
            try:
                base_s, _ = measure(lambda: MAKERS[name](space).run(n, progress=False))
                rows = [("none", base_s, 0)]
                seconds, written = measure(lambda: MAKERS[name](space).run(n, checkpoint=folder / "j", progress=False))
                rows.append(("journal", seconds, written))
                if n <= args.rewrite_trials:
                    seconds, written = measure(lambda: rewrite_run(MAKERS[name](space), n, folder / "r.ckpt"))
                    rows.append(("rewrite", seconds, written))
                for mode, seconds, written in rows:
                    print(f"{name:10} {n:>7} {mode:8} {1000 * seconds / n:>9.3f} {written / n:>12,.0f} "
                          f"{seconds / base_s:>7.1f}x")
            finally:
                shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
