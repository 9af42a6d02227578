"""Is this machine's timing noise preemption or a slower core? One network timed in batches.

    python benchmarks/clock_probe.py [--batches 30] [--passes 50]

Times one MobileNetSpace network (seed 0, 8x8 digits, batch 1, one torch thread) in `--batches`
batches of `--passes` forward passes, and prints per batch the wall clock (time.perf_counter), this
thread's CPU time (time.thread_time) and the steal ticks the kernel counted meanwhile (/proc/stat,
the 8th field of the cpu line: time a hypervisor ran something else on our virtual CPU).

If the thread time lags the wall time, the OS or the hypervisor gave our time away, and a CPU-time
clock would leave it out. If both grow together while the batches slow down, the core itself ran
slower (a neighbour on the host sharing its caches or its physical core): only a measurement
relative to a reference timed alongside cancels that (nasnb.cost.measure_relative_latency).
"""
import argparse
import time

import torch

from nasnb.spaces import MobileNetSpace


def steal_ticks() -> int:
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[8])
    except (OSError, IndexError, ValueError):
        return -1  # not Linux, or no steal field


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--passes", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = MobileNetSpace()
    net = space.build(space.sample(0)).eval()
    x = torch.zeros(1, 1, 8, 8)
    rows = []
    with torch.no_grad():
        for _ in range(20):
            net(x)
        for _ in range(args.batches):
            steal, wall, cpu = steal_ticks(), time.perf_counter(), time.thread_time()
            for _ in range(args.passes):
                net(x)
            wall, cpu = (time.perf_counter() - wall) / args.passes * 1e3, (time.thread_time() - cpu) / args.passes * 1e3
            rows.append((wall, cpu, steal_ticks() - steal))
            print(f"wall {wall:.3f} ms   thread {cpu:.3f} ms   steal ticks {rows[-1][2]}", flush=True)
    walls, cpus = sorted(r[0] for r in rows), sorted(r[1] for r in rows)
    lag = max(abs(w - c) / w for w, c, _ in rows)
    print(f"wall: fastest batch {walls[0]:.3f} ms, slowest {walls[-1]:.3f} ms ({walls[-1] / walls[0]:.2f}x); "
          f"thread time: {cpus[0]:.3f} to {cpus[-1]:.3f} ms ({cpus[-1] / cpus[0]:.2f}x); thread time at most "
          f"{lag:.0%} below the wall time; steal ticks {sum(r[2] for r in rows)}")


if __name__ == "__main__":
    main()
