"""Does a block cost the same inside a network as alone? (issue 12: why a latency table's sum misses)

    python benchmarks/latency_in_context.py [--samples 8] [--rounds 5] [--threads 1] [--seed 0]

For `samples` random archs of the default MobileNetSpace (8x8 digits), takes the searched blocks
of the built network and times (a) the blocks chained, as the network runs them, and (b) each
block alone on the very input it gets in the chain, summed. Both use the method of the latency
table (eval mode, no grad, 10 warm-up passes, median of 50), `rounds` times in turn, the fastest
round kept. The ratio chain / sum is what an additive lookup table cannot see: a block timed
alone runs its own kernels over and over with hot caches; in a chain each block follows another.
"""
import argparse

import numpy as np
import torch

from nasnb.cost import measure_latency
from nasnb.spaces import MobileNetSpace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("samples", "rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    space, rng = MobileNetSpace(), np.random.default_rng(args.seed)

    def seconds(module, x) -> float:
        return measure_latency(module, tuple(x.shape[1:]), device="cpu", warmup=10, repeats=50)["median"]

    ratios = []
    print(f"{args.threads} thread(s), fastest of {args.rounds} rounds; chain = the searched blocks run in order")
    for _ in range(args.samples):
        arch = space.sample(rng)
        net = space.build(arch).eval()
        with torch.no_grad():
            h = net.first(net.stem(torch.zeros(1, 1, 8, 8)))  # (1, first_width, 8, 8)
            inputs = []
            for block in net.blocks:
                inputs.append(h)
                h = block(h)
        chain = sum_alone = np.inf
        for _ in range(args.rounds):
            chain = min(chain, seconds(net.blocks, inputs[0]))
            sum_alone = min(sum_alone, sum(seconds(b, x) for b, x in zip(net.blocks, inputs)))
        ratios.append(chain / sum_alone)
        print(f"{space.format(arch):60s} chain {chain * 1e3:6.3f} ms  sum alone {sum_alone * 1e3:6.3f} ms  "
              f"ratio {ratios[-1]:.2f}")
    print(f"chain / sum alone: median {np.median(ratios):.2f}, min {min(ratios):.2f}, max {max(ratios):.2f}")


if __name__ == "__main__":
    main()
