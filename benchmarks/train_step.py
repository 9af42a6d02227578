"""Training throughput of NB201 and DARTS networks: images/s, peak memory, channels_last vs NCHW.

    python benchmarks/train_step.py                      # CPU: tiny at 8x8 and 32x32, small at 8x8 (~1-2 min)
    python benchmarks/train_step.py --device cuda --sizes tiny,small,paper --batch-size 96

One training step is what `nasnb.train.fit` does per batch: forward, cross-entropy (+0.4 x the
auxiliary head's when there is one), backward, gradient clipping, SGD with momentum. Each network
is timed in both memory layouts, contiguous (NCHW) and channels_last (NHWC), alternating the two
within one process (ABAB, then BABA) because these machines drift by tens of percent between runs
(benchmarks/README.md, "Facts the code relies on", fact (a)): only the ratio measured side by side
is trustworthy.

Peak memory: on CUDA, `torch.cuda.max_memory_allocated` over two steps. On the CPU, the growth of
the process's peak resident set (VmHWM in /proc/self/status) over two steps, after freed memory is
handed back to the OS (malloc_trim) and the peak is reset (writing 5 to /proc/self/clear_refs, Linux).
"""
import argparse
import copy
import ctypes
import platform
import re
import statistics
import time
from datetime import datetime, timezone

import torch
import torch.nn as nn
import torch.nn.functional as F

from nasnb.spaces import GENOTYPES, DartsSpace, NB201Space
from nasnb.train import count_flops, count_params, pick_device, split_outputs

# The best NB201 cell on CIFAR-10 (Dong & Yang, 2020): five 3x3 convolutions, the costliest kind.
NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SIZES = {
    # what TrainEvaluator trains during a search (nasnb.evaluators.QUICK_BUILD)
    "tiny": {"nb201": dict(C=8, N=1), "darts": dict(C=8, layers=5, auxiliary=False, drop_path_prob=0.0)},
    "small": {"nb201": dict(C=16, N=2), "darts": dict(C=16, layers=8, auxiliary=True, drop_path_prob=0.2)},
    # NB201's training network; DARTS' CIFAR-10 evaluation network (3.3M parameters)
    "paper": {"nb201": dict(C=16, N=5), "darts": dict(C=36, layers=20, auxiliary=True, drop_path_prob=0.2)},
}
INPUTS = {"8": (1, 8, 8), "32": (3, 32, 32)}  # digits-sized and CIFAR-sized images (C, H, W)
# Without --sizes / --inputs the CPU run stays near two minutes on 2 cores: small networks at
# 32x32 take seconds per step there.
CPU_DEFAULT = [("tiny", "8"), ("tiny", "32"), ("small", "8")]


def build(net: str, size: str, input_shape) -> nn.Module:
    torch.manual_seed(0)
    kwargs = dict(SIZES[size][net], num_classes=10, in_channels=input_shape[0])
    if net == "nb201":
        space = NB201Space()
        return space.build(space.parse(NB201_ARCH), **kwargs)
    return DartsSpace().build(GENOTYPES["DARTS_V2"], **kwargs)


def make_step(model, x, y):
    """One training step of `model` on the batch (x, y), as fit() takes it."""
    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    model.train()

    def step():
        logits, aux_logits = split_outputs(model(x))
        loss = F.cross_entropy(logits, y)
        if aux_logits is not None:
            loss = loss + 0.4 * F.cross_entropy(aux_logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    return step


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_step(step, device, steps):
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - start) / steps


def _status_kib(key):
    return int(re.search(rf"{key}:\s+(\d+)", open("/proc/self/status").read()).group(1))


def peak_memory_mib(step, device):
    """Extra memory two training steps need at their peak (see the module docstring)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step(), step()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM (the peak) to the current resident set
        before = _status_kib("VmRSS")
        step(), step()
        return (_status_kib("VmHWM") - before) / 1024
    except OSError:
        return float("nan")  # not Linux: no way to reset the peak


def measure(net, size, input_name, args, device):
    input_shape = INPUTS[input_name]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, *input_shape, generator=gen).to(device)  # (B, C, H, W)
    y = torch.randint(0, 10, (args.batch_size,), generator=gen).to(device)
    model = build(net, size, input_shape)
    flops = count_flops(model, input_shape)
    params = count_params(model)
    nchw = model.to(device)
    nhwc = copy.deepcopy(model).to(memory_format=torch.channels_last)
    steps = {
        "nchw": make_step(nchw, x, y),
        "nhwc": make_step(nhwc, x.contiguous(memory_format=torch.channels_last), y),
    }
    memory = peak_memory_mib(steps["nchw"], device)  # also the first warm-up of nchw
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    times = {"nchw": [], "nhwc": []}
    for r in range(args.repeats):
        for layout in (("nchw", "nhwc") if r % 2 == 0 else ("nhwc", "nchw")):
            times[layout].append(seconds_per_step(steps[layout], device, args.steps))
    nchw_s, nhwc_s = statistics.median(times["nchw"]), statistics.median(times["nhwc"])
    # the ratio of each ABAB pair, then the median: robust to drift during the run
    ratios = [a / b for a, b in zip(times["nchw"], times["nhwc"])]
    kwargs = ",".join(f"{k}={v}" for k, v in SIZES[size][net].items() if k in ("C", "N", "layers"))
    return {
        "net": f"{net} {size} ({kwargs})", "input": "x".join(map(str, input_shape)), "params": params,
        "mflop": flops / 1e6, "ms": nchw_s * 1e3, "img_s": args.batch_size / nchw_s,
        "img_s_cl": args.batch_size / nhwc_s, "ratio": statistics.median(ratios),
        "ratio_range": f"{min(ratios):.2f}-{max(ratios):.2f}",
        "gflop_s": 3 * flops * args.batch_size / nchw_s / 1e9, "mib": memory,
    }


def cpu_name() -> str:
    try:
        return re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read()).group(1).strip()
    except (OSError, AttributeError):
        return platform.processor() or platform.machine()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (default: cpu)")
    parser.add_argument("--sizes", default=None, help=f"comma list of {list(SIZES)} (default: all on a GPU; "
                                                      f"on the CPU {CPU_DEFAULT} as (size, input) pairs)")
    parser.add_argument("--inputs", default=None, help="comma list of input sizes: 8 (1x8x8), 32 (3x32x32); default both")
    parser.add_argument("--nets", default="nb201,darts", help="comma list of nb201, darts")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per layout (alternating)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per layout first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if device.type == "cpu" and args.sizes is None and args.inputs is None:
        configs = CPU_DEFAULT
    else:
        configs = [(size, input_name) for size in (args.sizes or ",".join(SIZES)).split(",")
                   for input_name in (args.inputs or ",".join(INPUTS)).split(",")]

    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
             f" ({cpu_name()}, {torch.get_num_threads()} threads)")
          + f", batch {args.batch_size}, median of {args.repeats} x {args.steps} steps")
    print(f"# peak memory: {'torch.cuda.max_memory_allocated' if device.type == 'cuda' else 'peak RSS growth (VmHWM)'}"
          "; ms/step, img/s, GFLOP/s and peak are contiguous (NCHW); img/s CL is channels_last;\n"
          "# CL speedup = median over alternating pairs of NCHW time / channels_last time;"
          " GFLOP/s counts a training step as 3 x forward FLOPs (approximate)")
    header = (f"{'network':<32} {'input':>7} {'params':>8} {'MFLOP/img':>9} {'ms/step':>8} "
              f"{'img/s':>7} {'img/s CL':>8} {'CL speedup':>10} {'(min-max)':>10} {'GFLOP/s':>7} {'peak MiB':>8}")
    print(header)
    print("-" * len(header))
    for size, input_name in configs:
        for net in args.nets.split(","):
            r = measure(net, size, input_name, args, device)
            print(f"{r['net']:<32} {r['input']:>7} {r['params']:>8,} {r['mflop']:>9.2f} {r['ms']:>8.1f} "
                  f"{r['img_s']:>7.0f} {r['img_s_cl']:>8.0f} {r['ratio']:>9.2f}x {r['ratio_range']:>10} {r['gflop_s']:>7.1f} "
                  f"{r['mib']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
