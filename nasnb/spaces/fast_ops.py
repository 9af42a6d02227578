"""Search-time speed and memory tricks for the supernets; the maths is unchanged.

A supernet step is dominated by the *backward* pass of the depthwise (groups = C) convolutions of
the DARTS ops: on a CPU, PyTorch's depthwise convolution backward is 10-40x slower than its forward.
Both of its gradients are themselves convolutions that run at forward speed:

    y = x ⋆ w (stride s, padding p, dilation d, one filter per channel)
    ∂L/∂x = (∂L/∂y, zeros put back at the window positions a stride s > 1 skipped) ⋆ flip(w),
            dilation d, padding d (k - 1) - p
    ∂L/∂w[c] = Σ_b  x_pad[b, c] ⋆ ∂L/∂y[b, c] with stride d and dilation s (the output gradient
               is the kernel; the batch is folded into the channels, then summed)

For the weight gradient, oneDNN (PyTorch's CPU convolutions) has one fast depthwise kernel: a
kernel three columns wide, undilated (a 5x3 is 3-18x faster than a 5x5 at the paper's sizes,
channels_last). So a 5x5 or a dilated 3x3 kernel's gradient is assembled from (d (k - 1) + 1) x 3
kernels' gradients on the input shifted by a few columns (`_weight_grad_by_columns`: two shifted
copies of the input, two calls); 3x3 undilated kernels use PyTorch's own. For the dilated 5x5 (9x3
kernels, three calls) the route by columns is 1-2.4x faster at stride 1 on maps at least as tall
as the kernel (2x slower on smaller ones and at stride 2, where the convolution above is used;
benchmarks/depthwise_grads.py).

`depthwise_conv2d` computes them so (CPU only; CUDA's cuDNN kernels are fast already). The other
tricks, each a switch of `FAST_TRICKS` (benchmarks/darts_step.py measures what each buys):

* ``depthwise_backward``: the convolution above.
* ``shared_relu``: the four conv ops of an edge start with ReLU(x); compute it once per edge.
* ``fused_sum``: the edge's sum Σ_o w_o·o(x) as one autograd node: ∂L/∂w_o = <∂L/∂h, o(x)> is
  a dot product (no product map per op is built), ∂L/∂o(x) = w_o ∂L/∂h.
* ``checkpoint``: activation checkpointing per mixed op (Chen et al., 2016, "Training deep nets
  with sublinear memory cost"): the forward keeps only each edge's input and output, and the
  backward recomputes one edge at a time. Not in DEFAULT_TRICKS (below). DartsSupernet checkpoints only the edges whose input
  is as large as its first cell's and at least `checkpoint_min_elements`, and only stride-1 edges
  unless `checkpoint_strided` (darts_supernet.py): the full-resolution stage holds half the
  activations, a stride-2 edge's output is a quarter of its input, and at small sizes recomputing
  costs more time than the memory is worth. The recomputation neither updates BatchNorm's
  running statistics a second time nor draws new dropout masks, and it uses the tensors the
  forward used (w', w± of DARTS' second-order step, passed with torch.func.functional_call).
* ``channels_last``: NHWC memory layout for the input, which oneDNN's CPU convolutions prefer.
* ``lean_saves``: keep fewer maps for the backward without recomputing whole ops (in the spirit of
  in-place activated BatchNorm, Rota Bulò et al., CVPR 2018). (a) A BatchNorm without affine
  parameters in train mode keeps its output y = (x - μ) / σ, which the edge's weighted sum keeps
  anyway, instead of its input: ∂L/∂x = (∂L/∂y - mean(∂L/∂y) - y · mean(∂L/∂y · y)) / σ needs only
  y and σ. (b) A stride-1 max pool keeps no int64 indices (two float maps' worth): the backward
  finds the maxima again in its input, which the skip connection's term keeps anyway. (c) A conv
  op's depthwise output is recomputed from its input in the backward instead of kept for the
  pointwise conv's weight gradient (the depthwise forward is the cheapest op of the pair), and
  not at all when no weight gradient is needed (the α-only passes of eq. 8); so is the ReLU in
  front of it (ReLU(x) from x, its backward a mask of x > 0), so a conv op keeps its input x
  (for the first half, the edge input, kept anyway) and not ReLU(x). A stride-1 DARTS edge then
  keeps 9 maps instead of 25 (the max pool's int64 indices counted as two): x, each sep conv's
  middle BatchNorm output and the six ops' outputs.
* ``fast_pools``: the 3x3 pools from cheaper kernels (PyTorch's CPU pooling kernels are 3-7x
  slower than a depthwise conv of the same map): the average pool is a depthwise convolution
  with a kernel of ones times 1 / (the number of in-image pixels of each window), its backward
  the same convolution transposed; the stride-1 max pool is separable, a max over three rows of
  the (-inf)-padded map, then over three columns (its backward finds the maxima with PyTorch's
  kernel, as the lean saves' max pool does).
"""
from __future__ import annotations

import contextlib
import functools
import itertools

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

from nasnb.checks import check_bool, short
from nasnb.errors import InvalidValueError
from nasnb.spaces.ops import DilConv, ReLUConvBN

FAST_TRICKS = ("depthwise_backward", "shared_relu", "fused_sum", "checkpoint", "channels_last", "lean_saves",
               "fast_pools")


# fast=True: every trick but checkpointing, which the lean saves made unneeded at the paper's sizes
# (benchmarks/README.md: the second-order step's peak is under half the authors' network's without
# it, and its recomputation cost a sixth of the step); fast=FAST_TRICKS adds it, for less memory.
DEFAULT_TRICKS = tuple(t for t in FAST_TRICKS if t != "checkpoint")


def check_fast(fast) -> frozenset:
    """`fast`: True (DEFAULT_TRICKS), False (none), or a collection of names from FAST_TRICKS."""
    if isinstance(fast, bool) or type(fast).__module__ == "numpy":
        return frozenset(DEFAULT_TRICKS) if check_bool("fast", fast) else frozenset()
    if isinstance(fast, str) or not hasattr(fast, "__iter__"):
        raise InvalidValueError(f"fast must be True, False or a collection of tricks from {list(FAST_TRICKS)}, "
                                f"got {short(fast)}; e.g. fast=True or fast={{'checkpoint'}}")
    fast = frozenset(fast)
    unknown = sorted(map(str, fast - set(FAST_TRICKS)))
    if unknown:
        raise InvalidValueError(f"fast names unknown tricks {unknown}; choose from {list(FAST_TRICKS)}, "
                                f"e.g. fast={{'checkpoint', 'channels_last'}}")
    return fast


# ----------------------------------------------------------------------------- depthwise convolution


class _DepthwiseConv2d(torch.autograd.Function):
    """A depthwise convolution whose backward runs forward convolutions (module docstring).

    The backward is made of differentiable ops, so double backpropagation works through it too.
    """

    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation):
        ctx.save_for_backward(x, weight)
        ctx.conf = stride, padding, dilation
        return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])

    @staticmethod
    def backward(ctx, grad):  # grad: (B, C, H_out, W_out)
        x, weight = ctx.saved_tensors
        grad_x, grad_w = _depthwise_grads(grad, x, weight, ctx.conf, *ctx.needs_input_grad[:2])
        return grad_x, grad_w, None, None, None


def _depthwise_grads(grad, x, weight, conf, need_x: bool, need_w: bool, fast: bool = True):
    """(∂L/∂x, ∂L/∂w) of a depthwise conv of x (stride, padding, dilation `conf`) from ∂L/∂y = grad,
    None where not needed; the module docstring's forward convolutions when `fast`, PyTorch's
    own backward otherwise."""
    (s, _), (p, _), (d, _) = conf
    B, C, H, W = x.shape
    k = weight.shape[-1]
    if not fast:
        gx, gw, _ = torch.ops.aten.convolution_backward(grad, x, weight, None, *conf, False, (0, 0), C,
                                                        (need_x, need_w, False))
        return gx, gw
    grad_x = grad_w = None
    if need_x:
        g = grad
        if s > 1:  # a strided conv skipped window positions: put zeros back where it did
            g = torch.empty(B, C, H + 2 * p - d * (k - 1), W + 2 * p - d * (k - 1), dtype=grad.dtype,
                            device=grad.device, memory_format=_format_of(grad)).zero_()  # stride-1 output; NHWC
            # when grad is: an NCHW map here slowed every op of the backward after it
            g[:, :, ::s, ::s] = grad
        grad_x = F.conv2d(g, weight.flip(-1, -2), None, 1, d * (k - 1) - p, d, C)  # (B, C, H, W)
    if not need_w:
        return grad_x, None
    tall = d * (k - 1) + 1  # the kernels by columns' height: fast up to 5, and at stride 1 up to the map's
    shifts = _column_shifts(k, d, p) if 2 * p == d * (k - 1) and (tall <= 5 or s == 1 and tall <= H) else None
    if d == 1 and (k == 3 or shifts is None):  # PyTorch's own weight gradient: the fast kernel
        grad_w = torch.ops.aten.convolution_backward(grad, x, weight, None, *conf, False, (0, 0), C,
                                                     (False, True, False))[1]
    elif shifts is not None and W > max(abs(c) for c in shifts):
        grad_w = _weight_grad_by_columns(grad, x, weight, conf, shifts)
    else:
        x_pad = F.pad(x, (p, p, p, p)).reshape(1, B * C, H + 2 * p, W + 2 * p)
        kernel = grad.reshape(B * C, 1, grad.shape[2], grad.shape[3])
        g = F.conv2d(x_pad, kernel, None, d, 0, s, B * C)  # (1, B*C, >=k, >=k)
        grad_w = g[0, :, :k, :k].reshape(B, C, k, k).sum(0).unsqueeze(1)  # (C, 1, k, k)
    return grad_x, grad_w


@functools.lru_cache(maxsize=None)
def _column_shifts(k: int, d: int, p: int) -> tuple:
    """The fewest column shifts c whose windows {c - 1, c, c + 1} cover a depthwise kernel's column
    offsets {d j - p : j < k}; among those, the fewest non-zero shifts (each costs a copy of the input),
    then the smallest. (5x5: (-1, 1); dilated 3x3: (-1, 1); dilated 5x5: (-3, 0, 3).)"""
    need = {d * j - p for j in range(k)}
    candidates = range(min(need) - 1, max(need) + 2)
    for n in range(1, k + 1):
        covers = [sub for sub in itertools.combinations(candidates, n)
                  if need <= {o for c in sub for o in (c - 1, c, c + 1)}]
        if covers:
            return min(covers, key=lambda sub: (sum(c != 0 for c in sub), max(abs(c) for c in sub)))
    raise AssertionError("unreachable: k shifts always cover k offsets")


def _weight_grad_by_columns(grad, x, weight, conf, shifts):
    """∂L/∂w of a depthwise conv from weight gradients of kernels (d (k - 1) + 1) x 3, undilated: the
    one shape whose oneDNN CPU weight-gradient kernel is fast (inside a step, 5x5 and dilated kernels
    are 3-6x slower than a 5x3; benchmarks/README.md). A (d (k-1) + 1) x 3 kernel's gradient on the
    input shifted by c columns holds the original kernel's rows (every d-th) at column offsets
    c - 1, c, c + 1; the shifts cover every column offset."""
    (s, _), (p, _), (d, _) = conf
    C, k = x.shape[1], weight.shape[-1]
    tall = weight.new_empty(C, 1, d * (k - 1) + 1, 3)  # only its shape is read
    columns = {}
    for c in shifts:
        if c == 0:
            x_c, padding = x, (p, 1)
        else:  # x_c[..., u] = x[..., u - 1 + c] (zeros outside): the conv's column padding, shifted by c
            x_c, padding = F.pad(x, (1 - c, 1 + c)), (p, 0)
        g = torch.ops.aten.convolution_backward(grad, x_c, tall, None, (s, s), padding, (1, 1), False, (0, 0), C,
                                                (False, True, False))[1]
        del x_c  # one shifted copy alive at a time
        for j in range(3):
            columns.setdefault(c - 1 + j, g[:, :, ::d, j])
    return torch.stack([columns[d * j - p] for j in range(k)], -1)  # (C, 1, k, k)


def _format_of(t: torch.Tensor) -> torch.memory_format:
    """channels_last for an NHWC 4-d tensor, contiguous_format otherwise."""
    nhwc = t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if nhwc else torch.contiguous_format


def depthwise_conv2d(x: torch.Tensor, conv: nn.Conv2d, fast_backward: bool = True) -> torch.Tensor:
    """conv(x) for a depthwise (groups = channels, square kernel, no bias) nn.Conv2d, with the fast
    backward on a CPU when gradients are needed; the plain convolution otherwise."""
    w = conv.weight
    usable = (fast_backward and x.device.type == "cpu" and torch.is_grad_enabled()
              and (x.requires_grad or w.requires_grad) and conv.dilation[0] * (conv.kernel_size[0] - 1)
              >= conv.padding[0])
    if not usable:
        return conv(x)
    return _DepthwiseConv2d.apply(x, w, conv.stride, conv.padding, conv.dilation)


# ----------------------------------------------------------------------------- the edge's weighted sum


def _flat(t: torch.Tensor) -> torch.Tensor:
    """t as a 1-d view in memory order (NCHW or NHWC), without a copy when possible."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).reshape(-1)
    return t.reshape(-1)


class _WeightedSum(torch.autograd.Function):
    """Σ_k weights[k] · outputs[k] (eq. 2 of DARTS); the backward's ops are differentiable."""

    @staticmethod
    def forward(ctx, weights, *outputs):
        ctx.save_for_backward(weights, *outputs)
        h = outputs[0] * weights[0]
        for k in range(1, len(outputs)):  # autograd does not record inside forward: in place is safe
            h.addcmul_(outputs[k], weights[k])  # h += w_k o_k in one pass, no product map
        return h

    @staticmethod
    def backward(ctx, grad):
        weights, *outputs = ctx.saved_tensors
        if grad.stride() != outputs[0].stride():
            # a slice of the cell's concatenated output's gradient (or an NCHW one from the classifier):
            # one copy in the outputs' layout, so each op's backward gets a dense gradient in its layout
            grad = grad.contiguous(memory_format=_format_of(outputs[0]))
        same = all(o.stride() == grad.stride() for o in outputs)
        flat = _flat(grad) if same else None
        grad_w = torch.stack([torch.dot(flat, _flat(o)) if same else (grad * o).sum() for o in outputs]) \
            if ctx.needs_input_grad[0] else None
        return (grad_w, *(grad * weights[k] if ctx.needs_input_grad[k + 1] else None for k in range(len(outputs))))


def weighted_sum(weights: torch.Tensor, outputs: list) -> torch.Tensor:
    """Σ_k weights[k] · outputs[k] for a (len(outputs),) weight vector, as one autograd node."""
    return _WeightedSum.apply(weights, *outputs)


# ----------------------------------------------------------------------------- lean saves


def lean_at(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether a lean-saves module keeps its lean form for input x: on, and x has at least the
    module's `lean_min_elements` (DartsSupernet sets it; below it the recomputations' per-op work
    costs more time than the memory is worth)."""
    return getattr(module, "lean", False) and x.numel() >= getattr(module, "lean_min_elements", 0)


_CONSTANTS: dict = {}


def _constant(key: tuple, make):
    """make(), computed once per key and never written to. Made outside inference mode and without a
    graph: a constant first made under torch.inference_mode would be an inference tensor, which a
    later (double) backward cannot save."""
    if key not in _CONSTANTS:
        with torch.inference_mode(False), torch.no_grad():
            _CONSTANTS[key] = make()
    return _CONSTANTS[key]


def _zeros_and_ones(like: torch.Tensor) -> tuple:
    """Zeros and ones shaped like a per-channel vector."""
    return _constant(("zeros_and_ones", like.shape, like.dtype, like.device),
                     lambda: (torch.zeros(like.shape, dtype=like.dtype, device=like.device),
                              torch.ones(like.shape, dtype=like.dtype, device=like.device)))


class _BatchNormFromOutput(torch.autograd.Function):
    """Train-mode BatchNorm without affine parameters that keeps y and 1/σ, not x (module docstring).
    Returns (y, 1/σ); 1/σ is an output too so that the backward, written in y and 1/σ, can be
    differentiated again (double backpropagation), as the other Functions here can.

    The backward is native_batch_norm_backward read with y as the input, mean 0, inverse std 1 and
    1/σ as the scale: its (∂L/∂y - mean(∂L/∂y) - x̂ · mean(∂L/∂y · x̂)) · scale with x̂ = y is ∂L/∂x;
    a gradient reaching 1/σ adds ∂(1/σ)/∂x = -(1/σ)² · y / n per channel (n: elements per channel).
    """

    @staticmethod
    def forward(ctx, x, running_mean, running_var, momentum, eps):
        y, _, invstd = torch.ops.aten.native_batch_norm(x, None, None, running_mean, running_var, True, momentum,
                                                        eps)  # updates the running statistics, as F.batch_norm
        ctx.save_for_backward(y, invstd)
        ctx.eps = eps
        ctx.set_materialize_grads(False)  # 1/σ's gradient is None, not a zero vector, when nothing used it
        return y, invstd

    @staticmethod
    def backward(ctx, grad, grad_invstd):
        y, invstd = ctx.saved_tensors
        if grad is None:  # only 1/σ was used
            grad = torch.zeros_like(y)
        zeros, ones = _zeros_and_ones(invstd)
        grad_x = torch.ops.aten.native_batch_norm_backward(grad, y, invstd, None, None, zeros, ones, True, ctx.eps,
                                                           (True, False, False))[0]
        if grad_invstd is not None:
            scale = (grad_invstd * invstd ** 2 / (y.numel() // y.shape[1])).view(1, -1, 1, 1)
            grad_x = grad_x - scale * y
        return grad_x, None, None, None, None


class LeanBatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d (same buffers and names) keeping its output for the backward when it can:
    train mode, no affine parameters, a gradient to compute. Otherwise exactly nn.BatchNorm2d."""

    lean, lean_min_elements = True, 0

    def forward(self, x):
        if not (self.training and self.weight is None and torch.is_grad_enabled() and x.requires_grad
                and lean_at(self, x)):
            return super().forward(x)
        self._check_input_dim(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:  # as nn.BatchNorm2d.forward
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        running = (self.running_mean, self.running_var) if self.track_running_stats else (None, None)
        return _BatchNormFromOutput.apply(x, *running, momentum, self.eps)[0]


def separable_max_pool3x3(x: torch.Tensor) -> torch.Tensor:
    """F.max_pool2d(x, 3, 1, 1) as a max over three shifted rows, then three shifted columns."""
    p = F.pad(x, (1, 1, 1, 1), value=float("-inf"))
    rows = torch.maximum(torch.maximum(p[:, :, :-2], p[:, :, 1:-1]), p[:, :, 2:])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


class _MaxPool2dFromInput(torch.autograd.Function):
    """max_pool2d that keeps its input instead of int64 indices; the backward finds them again.
    `separable`: a 3x3, stride-1, padding-1 pool computed by separable_max_pool3x3."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, separable=False):
        ctx.save_for_backward(x)
        ctx.conf = kernel_size, stride, padding
        return separable_max_pool3x3(x) if separable else F.max_pool2d(x, kernel_size, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        k, s, p = ctx.conf
        _, indices = torch.ops.aten.max_pool2d_with_indices(x, k, s, p, 1, False)
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(grad, x, k, s, p, 1, False, indices)
        return grad_x, None, None, None, None


class LeanMaxPool2d(nn.MaxPool2d):
    """nn.MaxPool2d (no dilation, floor mode) keeping its input, not indices, for the backward when
    a gradient is computed; meant for stride 1, where the input is as large as the indices' half.
    `separable`: a 3x3, stride-1, padding-1 pool's forward by separable_max_pool3x3 (fast_pools)."""

    def __init__(self, *args, separable: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        pair = nn.modules.utils._pair
        self.separable = separable and (pair(self.kernel_size), pair(self.stride), pair(self.padding)) == \
            ((3, 3), (1, 1), (1, 1)) and self.dilation in (1, (1, 1)) and not self.ceil_mode

    lean, lean_min_elements = True, 0

    def forward(self, x):
        if not (torch.is_grad_enabled() and x.requires_grad):
            return separable_max_pool3x3(x) if self.separable else super().forward(x)
        if self.return_indices or not lean_at(self, x):
            return super().forward(x)  # the indices, kept for the backward
        pair = nn.modules.utils._pair
        return _MaxPool2dFromInput.apply(x, pair(self.kernel_size), pair(self.stride), pair(self.padding),
                                         self.separable)


def _inverse_counts(H: int, W: int, stride: int, like: torch.Tensor) -> torch.Tensor:
    """(1, 1, H_out, W_out): 1 / the number of in-image pixels of each 3x3 window (padding 1)."""
    def make():
        ones = torch.ones(1, 1, H, W, dtype=like.dtype, device=like.device)
        return 1.0 / F.conv2d(ones, torch.ones(1, 1, 3, 3, dtype=like.dtype, device=like.device), None, stride, 1)
    return _constant(("inverse_counts", H, W, stride, like.dtype, like.device), make)


def _ones_kernel(C: int, like: torch.Tensor) -> torch.Tensor:
    """(C, 1, 3, 3) ones: the average pool's depthwise kernel."""
    return _constant(("ones_kernel", C, like.dtype, like.device),
                     lambda: torch.ones(C, 1, 3, 3, dtype=like.dtype, device=like.device))


class _AvgPool3x3(torch.autograd.Function):
    """avg_pool2d(x, 3, stride, 1, count_include_pad=False) as a depthwise conv with a kernel of ones
    times the inverse window counts; keeps nothing but the input's shape for the backward."""

    @staticmethod
    def forward(ctx, x, stride):
        C = x.shape[1]
        ones = _ones_kernel(C, x)
        inverse = _inverse_counts(x.shape[2], x.shape[3], stride, x)
        ctx.conf, ctx.shape, ctx.inverse = stride, x.shape, inverse
        return F.conv2d(x, ones, None, stride, 1, 1, C) * inverse

    @staticmethod
    def backward(ctx, grad):
        s, shape, inverse = ctx.conf, ctx.shape, ctx.inverse
        ones = _ones_kernel(shape[1], grad)
        like_x = torch.empty(shape, device="meta")  # only its shape is read
        grad_x, _ = _depthwise_grads(grad * inverse, like_x, ones, ((s, s), (1, 1), (1, 1)), True, False)
        return grad_x, None


class FastAvgPool2d(nn.AvgPool2d):
    """nn.AvgPool2d(3, stride, padding=1, count_include_pad=False) by _AvgPool3x3 (fast_pools)."""

    def __init__(self, stride: int = 1):
        super().__init__(3, stride=stride, padding=1, count_include_pad=False)

    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            return _AvgPool3x3.apply(x, self.stride)
        inverse = _inverse_counts(x.shape[2], x.shape[3], self.stride, x)
        return F.conv2d(x, _ones_kernel(x.shape[1], x), None, self.stride, 1, 1, x.shape[1]) * inverse


class _ReLUDepthwisePointwise(torch.autograd.Function):
    """pointwise(depthwise(ReLU(x))) keeping x only: ReLU(x) and the depthwise output are recomputed
    in the backward when a weight gradient needs them. `relu_x`: ReLU(x), computed once for the
    edge without a gradient, or None."""

    @staticmethod
    def forward(ctx, x, w_dw, w_pw, conf, fast, relu_x):
        ctx.save_for_backward(x, w_dw, w_pw)
        ctx.conf, ctx.fast = conf, fast
        r = F.relu(x) if relu_x is None else relu_x
        return F.conv2d(F.conv2d(r, w_dw, None, *conf, x.shape[1]), w_pw)

    @staticmethod
    def backward(ctx, grad):  # grad: (B, C_out, H_out, W_out)
        x, w_dw, w_pw = ctx.saved_tensors
        need_x, need_dw, need_pw = ctx.needs_input_grad[:3]
        grad_pw = grad_x = grad_dw = None
        r = F.relu(x) if need_dw or need_pw else x  # x: only its shape is read then
        grad_d = None
        if need_pw:
            d = F.conv2d(r, w_dw, None, *ctx.conf, x.shape[1])  # the depthwise output, again
            grad_d, grad_pw, _ = torch.ops.aten.convolution_backward(
                grad, d, w_pw, None, (1, 1), (0, 0), (1, 1), False, (0, 0), 1, (need_x or need_dw, True, False))
            del d  # the recomputed maps live no longer than they are needed (the step's peak is in a backward)
        if need_x or need_dw:
            if grad_d is None:  # a 1x1 conv's input gradient: the 1x1 conv of the transposed weights
                grad_d = F.conv2d(grad, w_pw.transpose(0, 1).contiguous())
            grad_r, grad_dw = _depthwise_grads(grad_d, r, w_dw, ctx.conf, need_x, need_dw, ctx.fast)
            del grad_d, r
            if need_x:
                grad_x = torch.ops.aten.threshold_backward(grad_r, x, 0)  # ReLU's: zero where x <= 0
        return grad_x, grad_dw, grad_pw, None, None, None


def relu_depthwise_pointwise(x: torch.Tensor, relu_x, dw: nn.Conv2d, pw: nn.Conv2d,
                             fast_backward: bool = True) -> torch.Tensor:
    """pw(dw(ReLU(x))) for DilConv's depthwise conv and 1x1 conv (no biases), with lean saves when a
    gradient is computed (and the fast depthwise backward on a CPU when `fast_backward`);
    `relu_x`: ReLU(x) if already computed (its graph is not used), or None."""
    if not (torch.is_grad_enabled() and (x.requires_grad or dw.weight.requires_grad or pw.weight.requires_grad)):
        return pw(dw(F.relu(x) if relu_x is None else relu_x))
    fast = fast_backward and x.device.type == "cpu" and dw.dilation[0] * (dw.kernel_size[0] - 1) >= dw.padding[0]
    return _ReLUDepthwisePointwise.apply(x, dw.weight, pw.weight, (dw.stride, dw.padding, dw.dilation), fast,
                                         None if relu_x is None else relu_x.detach())


# ----------------------------------------------------------------------------- search ops


class SearchReLUConvBN(ReLUConvBN):
    """ReLUConvBN (same weights and names) that can take ReLU(x) computed once for its edge."""

    def forward(self, x, relu_x=None):
        return self[2](self[1](F.relu(x) if relu_x is None else relu_x))


class SearchDilConv(DilConv):
    """DilConv (same weights and names) with the fast depthwise backward; can take ReLU(x).
    `lean`: the lean saves of the module docstring (its BatchNorm a LeanBatchNorm2d)."""

    def __init__(self, *args, fast_backward: bool = True, lean: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fast_backward, self.lean, self.lean_min_elements = fast_backward, lean, 0
        if lean and not self[3].affine:
            self[3] = LeanBatchNorm2d(self[3].num_features, affine=False)

    def forward(self, x, relu_x=None):
        if lean_at(self, x):
            return self[3](relu_depthwise_pointwise(x, relu_x, self[1], self[2], self.fast_backward))
        h = F.relu(x) if relu_x is None else relu_x
        h = depthwise_conv2d(h, self[1], self.fast_backward)
        return self[3](self[2](h))


class SearchSepConv(nn.Sequential):
    """SepConv (two DilConvs, stride in the first; same weights and names) of SearchDilConvs."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True, fast_backward=True, lean=False):
        super().__init__(
            SearchDilConv(C_in, C_in, kernel_size, stride, padding, 1, affine, fast_backward=fast_backward, lean=lean),
            SearchDilConv(C_in, C_out, kernel_size, 1, padding, 1, affine, fast_backward=fast_backward, lean=lean),
        )

    @property
    def lean(self) -> bool:
        return self[0].lean

    @property
    def lean_min_elements(self) -> int:
        return self[0].lean_min_elements  # the first half sees the edge input

    def forward(self, x, relu_x=None):
        return self[1](self[0](x, relu_x))


SEARCH_CONVS = {  # DARTS' conv ops as (class, kernel_size, padding, dilation)
    "sep_conv_3x3": (SearchSepConv, 3, 1, 1), "sep_conv_5x5": (SearchSepConv, 5, 2, 1),
    "dil_conv_3x3": (SearchDilConv, 3, 2, 2), "dil_conv_5x5": (SearchDilConv, 5, 4, 2),
}


def search_conv(name: str, C: int, stride: int, fast_backward: bool, lean: bool = False) -> nn.Module:
    """DARTS' sep/dil conv op `name` at C channels, without affine BatchNorm, as a search op."""
    cls, k, padding, dilation = SEARCH_CONVS[name]
    if cls is SearchSepConv:
        return SearchSepConv(C, C, k, stride, padding, affine=False, fast_backward=fast_backward, lean=lean)
    return SearchDilConv(C, C, k, stride, padding, dilation, affine=False, fast_backward=fast_backward, lean=lean)


# ----------------------------------------------------------------------------- checkpointing


@contextlib.contextmanager
def _running_stats_frozen(module: nn.Module):
    """BatchNorms in `module` use batch statistics but leave their running statistics alone."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
             and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


def checkpointed(module: nn.Module, *args):
    """module(*args), keeping only its inputs and output for the backward pass, which recomputes it.

    The tensors of module's parameters are taken now (under torch.func.functional_call they are the
    caller's, e.g. w'), so the recomputation, which runs after functional_call has returned, uses
    the same ones.
    """
    params = dict(module.named_parameters())

    def run(*inputs):
        return functional_call(module, params, inputs)

    def contexts():
        return contextlib.nullcontext(), _running_stats_frozen(module)

    return checkpoint(run, *args, use_reentrant=False, context_fn=contexts)
