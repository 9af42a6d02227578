"""Measure here the machine facts nasnb's design relies on (benchmarks/README.md, "Facts the code relies on").

    python benchmarks/machine_facts.py                     # every section: 214 s on 2 busy cores (2026-12-01)
    python benchmarks/machine_facts.py --only conv,flops   # some sections

Sections (each prints its own figures; every timing alternates the versions it compares within one
run, and reports medians and the median of per-round ratios, because these machines are shared):

  noise    the same training step (NB201 tiny, 1x8x8, batch 64, 1 thread) timed in --rounds rounds:
           spread of the rounds (max/min), and the ratio of two identical copies timed alternately
  conv     small convolutions, N=64, 16 channels, 32x32: forward GFLOP/s in NCHW and channels_last,
           and the forward+backward time ratio, with 1 thread and with 2 (a)
  procs    many small trainings: one process with 2 threads against two spawned processes with
           1 thread each, running the same training step; and whether 1- and 2-thread training
           give bit-identical weights
  flops    FlopCounterMode's forward and backward counts for the four convolutions of conv
           against the hand formula (no timing)
  imports  fresh interpreters: `import torch`, then `import nasnb`, then `import torchvision`
  data     one epoch of batches of digits' training split: TensorData.batches against a
           torch DataLoader over the same tensors with 0 and 2 worker processes

(a) The convolution sizes are those of the notes this project was first measured with: 16->16 3x3,
16->16 1x1, depthwise 3x3 and 5x5 (groups=16), batch 64, 32x32, stride 1, "same" padding, no bias.
"""
import argparse
import copy
import multiprocessing
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

import torch
import torch.nn as nn
import torch.nn.functional as F

SECTIONS = ("noise", "conv", "procs", "flops", "imports", "data")
NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
CONVS = {  # name -> (in channels, out channels, kernel, groups)
    "3x3 16->16": (16, 16, 3, 1),
    "1x1 16->16": (16, 16, 1, 1),
    "dw 3x3 (g=16)": (16, 16, 3, 16),
    "dw 5x5 (g=16)": (16, 16, 5, 16),
}


def cpu_name() -> str:
    try:
        return re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1).strip()
    except (OSError, AttributeError):
        return platform.processor() or platform.machine()


def simd() -> str:
    try:
        flags = set(re.search(r"flags\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1).split())
    except (OSError, AttributeError):
        return "?"
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"


def clock(fn, n: int) -> float:
    """Seconds per call of fn, over n calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


CAP = {"seconds": 20.0, "rounds": 7}  # set from --cap and --rounds in main()


def alternate(fns: dict, rounds: int, n: int) -> dict:
    """Time each fn n calls per round, rotating which goes first each round: {name: [s per call]}.

    Stops early, after at least 3 rounds, once the comparison has taken CAP["seconds"]: on a busy
    machine the run stays within minutes (the ratio then says "n=" how many rounds it had).
    """
    names = list(fns)
    times = {k: [] for k in names}
    start = time.perf_counter()
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            times[k].append(clock(fns[k], n))
        if r >= 2 and time.perf_counter() - start > CAP["seconds"]:
            break
    return times


def ratio_text(a, b) -> str:
    """Median of per-round ratios a/b with their range (and the number of rounds, if cut short)."""
    ratios = [x / y for x, y in zip(a, b)]
    short = f" n={len(ratios)}" if len(ratios) < CAP["rounds"] else ""
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}){short}"


def training_step(seed: int = 0, layout=torch.contiguous_format):
    """The step fit() takes on TrainEvaluator's NB201 network (C=8, N=1) on a digits-sized batch of 64."""
    from nasnb.spaces import NB201Space

    torch.manual_seed(seed)
    space = NB201Space()
    model = space.build(space.parse(NB201_ARCH), C=8, N=1, num_classes=10, in_channels=1)
    model = model.to(memory_format=layout)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 1, 8, 8, generator=gen).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (64,), generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    return model, step


# ---------------------------------------------------------------------------------------------- noise
def noise(args) -> None:
    torch.set_num_threads(1)
    _, a = training_step()
    _, b = training_step()
    for _ in range(3):
        a(), b()
    t = alternate({"A": a, "B": b}, args.rounds * 2, args.steps)
    ms = [1e3 * s for s in t["A"]]
    print(f"\n[noise] NB201 tiny training step, 1x8x8, batch 64, 1 thread; {len(ms)} rounds x {args.steps} steps "
          "of copy A, alternating with an identical copy B")
    print(f"A ms/step: median {statistics.median(ms):.1f}, min {min(ms):.1f}, max {max(ms):.1f}, "
          f"max/min {max(ms) / min(ms):.2f}; rounds sorted: {' '.join(f'{v:.1f}' for v in sorted(ms))}")
    print(f"A/B per round (identical work): {ratio_text(t['A'], t['B'])}")


# ----------------------------------------------------------------------------------------------- conv
def conv(args) -> None:
    print(f"\n[conv] N=64, 32x32, forward GFLOP/s (2 FLOPs per multiply-add) per layout, median of up to {args.rounds} "
          f"alternating rounds; CL = NCHW time / channels_last time, median of rounds (range)")
    print(f"{'threads':>7} {'conv':<14} {'NCHW':>7} {'NHWC':>7} {'fwd CL':>19} {'fwd+bwd CL':>19}")
    gen = torch.Generator().manual_seed(0)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, (cin, cout, k, groups) in CONVS.items():
            m = nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False)
            m_cl = copy.deepcopy(m).to(memory_format=torch.channels_last)
            x = torch.randn(64, cin, 32, 32, generator=gen)
            x_cl = x.contiguous(memory_format=torch.channels_last)
            flops = 2 * 64 * cout * 32 * 32 * (cin // groups) * k * k
            xg, xg_cl = x.clone().requires_grad_(), x_cl.clone().requires_grad_()

            def fwd(m=m, x=x):
                with torch.no_grad():
                    m(x)

            def fwd_cl(m=m_cl, x=x_cl):
                with torch.no_grad():
                    m(x)

            def train(m=m, x=xg):
                m(x).sum().backward()

            def train_cl(m=m_cl, x=xg_cl):
                m(x).sum().backward()

            for f in (fwd, fwd_cl, train, train_cl):
                for _ in range(3):
                    f()
            n = args.conv_calls
            tf = alternate({"nchw": fwd, "nhwc": fwd_cl}, args.rounds, n)
            tt = alternate({"nchw": train, "nhwc": train_cl}, args.rounds, n)
            g = {k: flops / statistics.median(v) / 1e9 for k, v in tf.items()}
            print(f"{threads:>7} {name:<14} {g['nchw']:>7.1f} {g['nhwc']:>7.1f} "
                  f"{ratio_text(tf['nchw'], tf['nhwc']):>19} {ratio_text(tt['nchw'], tt['nhwc']):>19}", flush=True)


# ---------------------------------------------------------------------------------------------- procs
def _worker(go, done) -> None:
    torch.set_num_threads(1)
    _, step = training_step()
    for _ in range(3):
        step()
    done.put("ready")
    while True:
        n = go.get()
        if n is None:
            return
        start = time.perf_counter()
        for _ in range(n):
            step()
        done.put(time.perf_counter() - start)


def _weights_after(threads: int, steps: int = 20) -> list:
    torch.set_num_threads(threads)
    model, step = training_step()
    for _ in range(steps):
        step()
    return [p.detach().clone() for p in model.parameters()]


def procs(args) -> None:
    ctx = multiprocessing.get_context("spawn")
    gos, done = [ctx.Queue() for _ in range(2)], ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(go, done), daemon=True) for go in gos]
    for w in workers:
        w.start()
    torch.set_num_threads(2)
    _, step = training_step()
    for _ in range(3):
        step()
    for _ in workers:
        done.get(timeout=300)
    n = args.proc_steps

    def one_process():  # n steps in this process, 2 threads
        for _ in range(n):
            step()

    def two_processes():  # n steps in each worker at once, 1 thread each
        for go in gos:
            go.put(n)
        for _ in gos:
            done.get(timeout=300)

    t = alternate({"one": one_process, "two": two_processes}, args.rounds, 1)
    for go in gos:
        go.put(None)
    for w in workers:
        w.join(timeout=30)
    # throughput: one process does n steps per round, two processes 2n; ratio = (2n / t_two) / (n / t_one)
    speedups = [2 * one / two for one, two in zip(t["one"], t["two"])]
    print(f"\n[procs] NB201 tiny training step (1x8x8, batch 64): one process x 2 threads against two spawned "
          f"processes x 1 thread, {n} steps per process per round, {len(speedups)} alternating rounds")
    print(f"one process x 2 threads: median {1e3 * statistics.median(t['one']) / n:.1f} ms/step; two processes x 1 "
          f"thread: median {1e3 * statistics.median(t['two']) / n:.1f} ms per step each, side by side")
    print(f"throughput two x 1 thread / one x 2 threads: {statistics.median(speedups):.2f}x "
          f"({min(speedups):.2f}-{max(speedups):.2f})")
    one, two = _weights_after(1), _weights_after(2)
    again = _weights_after(1)
    same = all(torch.equal(a, b) for a, b in zip(one, two))
    repeat = all(torch.equal(a, b) for a, b in zip(one, again))
    diff = max((a - b).abs().max().item() for a, b in zip(one, two))
    print(f"20 steps, same seed: 1-thread weights == 2-thread weights bit for bit: {same} (max |diff| {diff:.2e}); "
          f"1-thread run repeated: {repeat}")
    torch.set_num_threads(args.threads[-1])


# ---------------------------------------------------------------------------------------------- flops
def flops(args) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    print("\n[flops] FlopCounterMode (torch.utils.flop_counter) on one Conv2d, N=64, 16 channels, 32x32, "
          "input requiring grad; hand formula: forward F = 2*N*Cout*H*W*(Cin/groups)*k*k, backward = 2F "
          "(input gradient F + weight gradient F)")
    print(f"{'conv':<14} {'fwd counted':>12} {'fwd hand':>12} {'bwd counted':>12} {'bwd hand':>12} "
          f"{'bwd counted/hand':>16} {'weight-grad counted/hand':>24}")
    for name, (cin, cout, k, groups) in CONVS.items():
        m = nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False)
        x = torch.randn(64, cin, 32, 32, requires_grad=True)
        hand = 2 * 64 * cout * 32 * 32 * (cin // groups) * k * k
        with FlopCounterMode(display=False) as c:
            y = m(x)
        fwd = c.get_total_flops()
        with FlopCounterMode(display=False) as c:
            y.sum().backward()
        bwd = c.get_total_flops()
        y = m(x.detach())  # weight gradient alone: an input that needs no gradient, forward not counted
        with FlopCounterMode(display=False) as c:
            y.sum().backward()
        wgrad = c.get_total_flops()
        print(f"{name:<14} {fwd:>12,} {hand:>12,} {bwd:>12,} {2 * hand:>12,} {bwd / (2 * hand):>15.2f}x "
              f"{wgrad / hand:>23.2f}x")


# -------------------------------------------------------------------------------------------- imports
IMPORT_PROBE = r"""
import time
t0 = time.perf_counter(); import torch
t1 = time.perf_counter(); import nasnb
t2 = time.perf_counter(); import torchvision
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def imports(args) -> None:
    rows = []
    for _ in range(args.import_runs):
        out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True)
        rows.append([float(v) for v in out.stdout.split()])
    print(f"\n[imports] fresh interpreters, {args.import_runs} runs, seconds: median (min-max)")
    for i, what in enumerate(("import torch", "then import nasnb", "then import torchvision")):
        col = [r[i] for r in rows]
        print(f"{what:<24} {statistics.median(col):.3f} ({min(col):.3f}-{max(col):.3f})")


# ----------------------------------------------------------------------------------------------- data
def data(args) -> None:
    import nasnb
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(1)
    d = nasnb.data.load("digits")
    x, y = d.train
    dataset = TensorDataset(x, y)
    gen = torch.Generator().manual_seed(0)

    def tensors():
        for xb, yb in d.batches("train", 64, shuffle=True, generator=gen):
            pass

    def loader(workers):
        def epoch():
            for xb, yb in DataLoader(dataset, batch_size=64, shuffle=True, num_workers=workers, generator=gen):
                pass
        return epoch

    fns = {"TensorData.batches": tensors, "DataLoader 0 workers": loader(0), "DataLoader 2 workers": loader(2)}
    for f in fns.values():
        f()
    t = alternate(fns, args.rounds, 1)
    base = t["TensorData.batches"]
    print(f"\n[data] one shuffled epoch of digits' train split ({len(y)} images 1x8x8, batch 64), nothing trained, "
          f"1 thread, median of {len(base)} alternating rounds; ratio = that time / TensorData.batches time")
    for name, v in t.items():
        print(f"{name:<22} {1e3 * statistics.median(v):8.2f} ms/epoch   ratio {ratio_text(v, base)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 4)[4],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of sections (default: all of {','.join(SECTIONS)})")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per comparison (default 7)")
    parser.add_argument("--cap", type=float, default=20.0,
                        help="seconds after which a comparison stops (after at least 3 rounds; default 20)")
    parser.add_argument("--steps", type=int, default=10, help="[noise] training steps per round (default 10)")
    parser.add_argument("--conv-calls", type=int, default=5, help="[conv] calls per round (default 5)")
    parser.add_argument("--threads", default="1,2", help="[conv] comma list of torch thread counts (default 1,2)")
    parser.add_argument("--proc-steps", type=int, default=10, help="[procs] steps per process per round (default 10)")
    parser.add_argument("--import-runs", type=int, default=3, help="[imports] fresh interpreters (default 3)")
    args = parser.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    CAP.update(seconds=args.cap, rounds=args.rounds)
    only = args.only.split(",")
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_name()} ({simd()}), {os.cpu_count()} cores, "
          f"torch {torch.__version__}, python {platform.python_version()}, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    start = time.perf_counter()
    for name in SECTIONS:
        if name in only:
            t0 = time.perf_counter()
            globals()[name](args)
            print(f"# {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"\n# {time.perf_counter() - start:.0f} s in all; load average now "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
