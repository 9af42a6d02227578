"""Seconds per DARTS search step and peak memory: nasnb's supernet beside the authors' network.

    python benchmarks/darts_step.py --quick                       # notebooks' sizes, a few minutes
    python benchmarks/darts_step.py --configs paper16 paper64     # the paper's search network
    python benchmarks/darts_step.py --configs paper16 --steps weight --fast depthwise_backward shared_relu
    python benchmarks/darts_step.py --configs paper16 --steps weight --no-baseline --checkpoint-strided \
        --fast depthwise_backward shared_relu fused_sum checkpoint channels_last lean_saves fast_pools

Steps: `weight` (forward + backward + SGD step on w, gradient norm clipped to 5, as train_search.py),
`alpha1` (first-order α step: validation loss gradient, Adam) and `alpha2` (second-order α step,
DARTS eq. 7-8: nasnb.strategies.darts.unrolled_alpha_gradient for nasnb, the authors' Architect of
benchmarks/darts_baseline.py for the baseline). Each measurement runs in a fresh subprocess: one
warm-up step, then `--repeats` timed steps (their median); its peak memory is the growth of the
process's peak resident set (resource.getrusage ru_maxrss) over the steps, above the resident
set just before them (model, optimiser and batches already built), measured the same way for
both networks. nasnb and the baseline alternate, `--rounds` times each; the table shows medians
and the ratio nasnb / baseline. `--fast` picks nasnb's tricks (nasnb/spaces/fast_ops.py) for an
ablation; the default is nasnb's default (fast=True: DEFAULT_TRICKS, every trick but `checkpoint`;
`--fast` with every name of FAST_TRICKS adds checkpointing). `--checkpoint-strided` checkpoints the
reduction cell's stride-2 edges too (the rule before 2026-12-02). The header line gives the load
average: on a shared machine, figures of runs under different loads do not compare.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
CONFIGS = {  # name: (space, supernet sizes, batch, image size, channels)
    "paper64": ("darts", {"C": 16, "layers": 8}, 64, 32, 3),
    "paper16": ("darts", {"C": 16, "layers": 8}, 16, 32, 3),
    "notebook": ("darts", {"C": 8, "layers": 5}, 64, 8, 1),  # SMALL_SUPERNETS["darts"] on digits
    "nb201": ("nb201", {"C": 8, "N": 1}, 64, 8, 1),  # SMALL_SUPERNETS["nb201"] on digits
    "paper64_pc4": ("darts", {"C": 16, "layers": 8, "partial_channels": 4}, 64, 32, 3),
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(impl: str, config: str, step: str, repeats: int, threads: int, fast, checkpoint_strided=False) -> dict:
    """One measurement, in this (fresh) process."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    space, sizes, B, size, channels = CONFIGS[config]
    xs = [torch.randn(B, channels, size, size) for _ in range(2)]
    ys = [torch.randint(10, (B,)) for _ in range(2)]
    train, val = (xs[0], ys[0]), (xs[1], ys[1])
    if impl == "baseline":
        sys.path.insert(0, str(HERE))
        import darts_baseline as bl

        if space != "darts" or "partial_channels" in sizes:
            raise SystemExit(f"the baseline is the DARTS network without partial channels, not {config}")
        net = bl.Network(sizes["C"], 10, sizes["layers"], in_channels=channels)
        weights = list(net.parameters())
        architect = bl.Architect(net)
    else:
        from nasnb.spaces.darts_supernet import DartsSupernet
        from nasnb.spaces.supernet import NB201Supernet
        from nasnb.strategies.darts import first_order_alpha_gradient, unrolled_alpha_gradient

        if space == "darts":
            net = DartsSupernet(**sizes, in_channels=channels, fast=True if fast is None else set(fast),
                                checkpoint_strided=checkpoint_strided)
        else:
            net = NB201Supernet(**sizes, in_channels=channels)
        weights = net.weight_parameters()
        alpha_opt = torch.optim.Adam(net.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        names = {id(p): n for n, p in net.named_parameters()}
    net.train()
    w_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    for p in weights:  # as after the first weight step: the virtual step uses the momentum buffers
        w_opt.state[p]["momentum_buffer"] = torch.zeros_like(p)

    def weight_step():
        w_opt.zero_grad()
        F.cross_entropy(net(train[0]), train[1]).backward()
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        w_opt.step()

    def alpha_step(order):
        if impl == "baseline":
            architect.step(*train, *val, 0.025, w_opt, unrolled=order == 2)
            return
        if order == 1:
            grads = first_order_alpha_gradient(net, val)
        else:
            buffers = {names[id(p)]: w_opt.state[p]["momentum_buffer"] for p in weights}
            grads = unrolled_alpha_gradient(net, train, val, 0.025, momentum=0.9, momentum_buffers=buffers,
                                            weight_decay=3e-4)
        for a, g in zip(net.arch_parameters(), grads):
            a.grad = g
        alpha_opt.step()

    run = {"weight": weight_step, "alpha1": lambda: alpha_step(1), "alpha2": lambda: alpha_step(2)}[step]
    before = rss_bytes()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": statistics.median(times[1:]), "peak_bytes": max(peak, peak_before) - before,
            "peak_grew": peak > peak_before}


def in_subprocess(impl, config, step, repeats, threads, fast, checkpoint_strided=False) -> dict:
    args = [sys.executable, __file__, "--one", impl, config, step, "--repeats", str(repeats),
            "--threads", str(threads)] + (["--checkpoint-strided"] if checkpoint_strided else [])
    if fast is not None:
        args += ["--fast", *fast] if fast else ["--fast"]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["paper16", "paper64"], choices=sorted(CONFIGS))
    parser.add_argument("--steps", nargs="+", default=["weight", "alpha1", "alpha2"],
                        choices=["weight", "alpha1", "alpha2"])
    parser.add_argument("--rounds", type=int, default=3, help="subprocesses per network, alternating")
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per subprocess (after a warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fast", nargs="*", default=None, help="nasnb's tricks (none given: fast=False)")
    parser.add_argument("--quick", action="store_true", help="notebooks' configurations, 2 rounds")
    parser.add_argument("--no-baseline", action="store_true", help="nasnb only (an ablation of --fast)")
    parser.add_argument("--checkpoint-strided", action="store_true",
                        help="nasnb: checkpoint the stride-2 edges too (DartsSupernet(checkpoint_strided=True))")
    parser.add_argument("--one", nargs=3, metavar=("IMPL", "CONFIG", "STEP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.repeats, args.threads, args.fast, args.checkpoint_strided)))
        return
    if args.quick:
        args.configs, args.rounds = ["notebook", "nb201"], 2
    print(f"{args.threads} threads, {args.rounds} rounds x {args.repeats} timed steps, nasnb fast={args.fast}"
          f"{', checkpoint_strided' if args.checkpoint_strided else ''}; load average {os.getloadavg()}")
    print(f"{'config':12s} {'step':7s} {'nasnb s':>9s} {'base s':>9s} {'ratio':>6s} "
          f"{'nasnb MB':>9s} {'base MB':>9s} {'ratio':>6s}")
    for config in args.configs:
        with_baseline = (CONFIGS[config][0] == "darts" and "partial_channels" not in CONFIGS[config][1]
                         and not args.no_baseline)
        for step in args.steps:
            results = {"nasnb": [], "baseline": []}
            for _ in range(args.rounds):
                for impl in ("nasnb", "baseline") if with_baseline else ("nasnb",):
                    results[impl].append(in_subprocess(impl, config, step, args.repeats, args.threads, args.fast,
                                                       args.checkpoint_strided))
            row = {impl: (statistics.median(r["seconds"] for r in rs),
                          statistics.median(r["peak_bytes"] for r in rs) / 2 ** 20)
                   for impl, rs in results.items() if rs}
            ours = row["nasnb"]
            theirs = row.get("baseline", (float("nan"), float("nan")))
            print(f"{config:12s} {step:7s} {ours[0]:9.3f} {theirs[0]:9.3f} {ours[0] / theirs[0]:6.2f} "
                  f"{ours[1]:9.0f} {theirs[1]:9.0f} {ours[1] / theirs[1]:6.2f}", flush=True)


if __name__ == "__main__":
    main()
