"""Does a block cost the same inside a network as alone? (issue 12: why a latency table's sum misses)

    python benchmarks/latency_in_context.py [--samples 8] [--rounds 5] [--threads 1] [--seed 0]
                                            [--timing absolute|relative] [--clock wall|thread]

For `samples` random archs of the default MobileNetSpace (8x8 digits), takes the searched blocks
of the built network and times (a) the blocks chained, as the network runs them, and (b) each
block alone on the very input it gets in the chain, summed. Both use the method of the latency
table (eval mode, no grad, 10 warm-up passes, median of 50), `rounds` times in turn, the fastest
round kept. The ratio chain / sum is what an additive lookup table cannot see: a block timed
alone runs its own kernels over and over with hot caches; in a chain each block follows another.

`--timing relative` times the chain and every block alone interleaved with the latency table's
reference block (nasnb.latency.reference_key, nasnb.cost.measure_relative_latency), the median
over rounds: the ratio chain / sum alone then compares what a relative table sums with what
`LatencyTable.measure_network` measures. Each pass of a block is followed by one of the
reference, so its caches are no longer only its own.
"""
import argparse
import os

import numpy as np
import torch

from nasnb.cost import measure_latency, measure_relative_latency
from nasnb.latency import reference_block, reference_key
from nasnb.spaces import MobileNetSpace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing", choices=("absolute", "relative"), default="absolute")
    parser.add_argument("--clock", choices=("wall", "thread"), default="wall", help="relative timing's clock")
    args = parser.parse_args()
    for name in ("samples", "rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    space, rng = MobileNetSpace(), np.random.default_rng(args.seed)

    reference, reference_shape = reference_block(reference_key(space, (1, 8, 8)))

    def seconds(module, x) -> float:  # absolute seconds, or reference units
        if args.timing == "absolute":
            return measure_latency(module, tuple(x.shape[1:]), device="cpu", warmup=10, repeats=50)["median"]
        return measure_relative_latency(module, tuple(x.shape[1:]), reference, reference_shape, device="cpu",
                                        warmup=10, repeats=50, clock=args.clock)["ratio"]

    best = min if args.timing == "absolute" else np.median
    unit, scale = ("ms", 1e3) if args.timing == "absolute" else ("ref", 1.0)
    how = "fastest" if args.timing == "absolute" else f"median ({args.clock} clock, relative to the table's reference)"
    ratios = []
    print(f"{args.threads} thread(s), {how} of {args.rounds} rounds; chain = the searched blocks run in order; "
          f"load average {os.getloadavg()[0]:.2f}")
    for _ in range(args.samples):
        arch = space.sample(rng)
        net = space.build(arch).eval()
        with torch.no_grad():
            h = net.first(net.stem(torch.zeros(1, 1, 8, 8)))  # (1, first_width, 8, 8)
            inputs = []
            for block in net.blocks:
                inputs.append(h)
                h = block(h)
        chains, sums = [], []
        for _ in range(args.rounds):
            chains.append(seconds(net.blocks, inputs[0]))
            sums.append(sum(seconds(b, x) for b, x in zip(net.blocks, inputs)))
        chain, sum_alone = best(chains), best(sums)
        ratios.append(chain / sum_alone)
        print(f"{space.format(arch):60s} chain {chain * scale:6.3f} {unit}  sum alone {sum_alone * scale:6.3f} {unit}  "
              f"ratio {ratios[-1]:.2f}")
    print(f"chain / sum alone: median {np.median(ratios):.2f}, min {min(ratios):.2f}, max {max(ratios):.2f}")


if __name__ == "__main__":
    main()
