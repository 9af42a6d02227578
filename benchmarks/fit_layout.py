"""What `fit(..., channels_last=True)` (the default) buys on a TrainEvaluator-sized run.

    python benchmarks/fit_layout.py [--rounds 6] [--epochs 5] [--threads 1]

Trains the same NB201 cell (five 3x3 convs, C=8, N=1) on 300 digits for a few epochs, alternating
NCHW and NHWC runs in one process (NCHW first in even rounds), and prints the median times and the
NCHW / NHWC ratio.
"""
import argparse
import statistics
import time

import torch

import nasnb
from nasnb.spaces import NB201Space

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = nasnb.data.load("digits").subset(train_size=300)
    space = NB201Space()
    arch = space.parse(CELL)
    times = {"NCHW": [], "NHWC": []}
    for r in range(args.rounds):
        for layout in (("NCHW", "NHWC") if r % 2 == 0 else ("NHWC", "NCHW")):
            torch.manual_seed(0)
            net = space.build(arch, C=8, N=1, num_classes=10, in_channels=1)
            start = time.perf_counter()
            nasnb.train.fit(net, data, args.epochs, progress=False, device="cpu", channels_last=layout == "NHWC")
            times[layout].append(time.perf_counter() - start)
    nchw, nhwc = statistics.median(times["NCHW"]), statistics.median(times["NHWC"])
    print(f"fit {args.epochs} epochs on 300 digits, {args.threads} thread(s), median of {args.rounds}: "
          f"NCHW {nchw:.3f} s, NHWC {nhwc:.3f} s, ratio NCHW/NHWC {nchw / nhwc:.2f}")


if __name__ == "__main__":
    main()
