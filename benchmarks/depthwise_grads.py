"""Which depthwise weight gradient is fastest on this CPU, at the DARTS search network's sizes.

    python benchmarks/depthwise_grads.py                  # 2 threads, batch 16 and 64, ~1 minute
    python benchmarks/depthwise_grads.py --threads 1 --batches 16

nasnb/spaces/fast_ops.py picks, per kernel, one of three ways to compute a depthwise convolution's
weight gradient: PyTorch's own (`aten`), the batch-folded convolution of the module docstring
(`folded`), and `by_columns` (gradients of (d (k - 1) + 1) x 3 undilated kernels on column-shifted
inputs). The choice rests on one fact about oneDNN's CPU kernels, which the first table shows:
the weight gradient of a kernel three columns wide is fast, that of a 5x5 or a dilated kernel slow.
The second table times the three ways for DARTS' four conv kernels at stride 1 and 2. Inputs are
channels_last (nasnb's layout); each figure is the best of 5 blocks of repeated calls, in
microseconds, on warm caches (inside a search step every figure is larger, the ranking the same).
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from nasnb.spaces.fast_ops import _column_shifts, _depthwise_grads, _weight_grad_by_columns  # noqa: E402

STAGES = [(16, 32), (32, 16), (64, 8)]  # DARTS' search network: (channels, map size) of its three stages
KERNELS = {"sep_conv_3x3": (3, 1), "sep_conv_5x5": (5, 1), "dil_conv_3x3": (3, 2), "dil_conv_5x5": (5, 2)}


def best_us(f, calls: int = 20, blocks: int = 5) -> float:
    for _ in range(3):
        f()
    best = float("inf")
    for _ in range(blocks):
        t = time.perf_counter()
        for _ in range(calls):
            f()
        best = min(best, (time.perf_counter() - t) / calls)
    return best * 1e6


def aten_weight_grad(grad, x, kh, kw, padding, dilation, stride=1):
    weight = x.new_empty(x.shape[1], 1, kh, kw)
    return torch.ops.aten.convolution_backward(grad, x, weight, None, (stride, stride), padding, dilation, False,
                                               (0, 0), x.shape[1], (False, True, False))[1]


def maps(B, C, H, stride=1, k=3, d=1):
    x = torch.randn(B, C, H, H).contiguous(memory_format=torch.channels_last)
    H_out = (H - 1) // stride + 1  # "same" padding, p = d (k - 1) / 2
    grad = torch.randn(B, C, H_out, H_out).contiguous(memory_format=torch.channels_last)
    return x, grad


def kernel_shapes(batches):
    print("Weight gradient of one depthwise kernel shape (PyTorch's own, stride 1), us:")
    shapes = [("3x3", 3, 3, (1, 1), (1, 1)), ("5x3", 5, 3, (2, 1), (1, 1)), ("9x3", 9, 3, (4, 1), (1, 1)),
              ("3x5", 3, 5, (1, 2), (1, 1)), ("5x5", 5, 5, (2, 2), (1, 1)), ("3x3 dil 2", 3, 3, (2, 2), (2, 2)),
              ("5x5 dil 2", 5, 5, (4, 4), (2, 2))]
    print(f"{'B x C x H':>12s} " + " ".join(f"{name:>10s}" for name, *_ in shapes))
    for B in batches:
        for C, H in STAGES:
            x, grad = maps(B, C, H)
            row = [best_us(lambda: aten_weight_grad(grad, x, kh, kw, pad, dil)) for _, kh, kw, pad, dil in shapes]
            print(f"{f'{B}x{C}x{H}':>12s} " + " ".join(f"{v:10.0f}" for v in row))


def folded(grad, x, k, p, d, s):
    """The module docstring's batch-folded convolution (the `else` branch of _depthwise_grads)."""
    B, C, H, W = x.shape
    x_pad = F.pad(x, (p, p, p, p)).reshape(1, B * C, H + 2 * p, W + 2 * p)
    g = F.conv2d(x_pad, grad.reshape(B * C, 1, grad.shape[2], grad.shape[3]), None, d, 0, s, B * C)
    return g[0, :, :k, :k].reshape(B, C, k, k).sum(0).unsqueeze(1)


def three_ways(batches):
    print("\nDARTS' kernels: PyTorch's own / batch-folded / by columns / nasnb's choice, us:")
    print(f"{'B x C x H':>12s} {'op':>13s} {'stride':>6s} {'aten':>7s} {'folded':>7s} {'columns':>7s} "
          f"{'nasnb':>7s}")
    for B in batches:
        for C, H in STAGES:
            for name, (k, d) in KERNELS.items():
                for s in (1, 2):
                    p = d * (k - 1) // 2
                    x, grad = maps(B, C, H, s, k, d)
                    w = torch.randn(C, 1, k, k)
                    conf = ((s, s), (p, p), (d, d))
                    ref = aten_weight_grad(grad, x, k, k, (p, p), (d, d), s)
                    row = [best_us(lambda: aten_weight_grad(grad, x, k, k, (p, p), (d, d), s)),
                           best_us(lambda: folded(grad, x, k, p, d, s))]
                    shifts = _column_shifts(k, d, p)
                    got = _weight_grad_by_columns(grad, x, w, conf, shifts)
                    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-3)
                    row.append(best_us(lambda: _weight_grad_by_columns(grad, x, w, conf, shifts)))
                    row.append(best_us(lambda: _depthwise_grads(grad, x, w, conf, False, True)))
                    print(f"{f'{B}x{C}x{H}':>12s} {name:>13s} {s:6d} " + " ".join(f"{v:7.0f}" for v in row))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, channels_last")
    kernel_shapes(args.batches)
    three_ways(args.batches)


if __name__ == "__main__":
    main()
