"""Search-time speed and memory tricks for the supernets; the maths is unchanged.

A supernet step is dominated by the *backward* pass of the depthwise (groups = C) convolutions of
the DARTS ops: on a CPU, PyTorch's depthwise convolution backward is 10-40x slower than its forward.
Both of its gradients are themselves convolutions that run at forward speed:

    y = x ⋆ w (stride s, padding p, dilation d, one filter per channel)
    ∂L/∂x = (∂L/∂y, zeros put back at the window positions a stride s > 1 skipped) ⋆ flip(w),
            dilation d, padding d (k - 1) - p
    ∂L/∂w[c] = Σ_b  x_pad[b, c] ⋆ ∂L/∂y[b, c] with stride d and dilation s (the output gradient
               is the kernel; the batch is folded into the channels, then summed)

The weight gradient so computed is the faster one for the dilated kernels only (2-7x, at the paper's
sizes, channels_last); for undilated ones (the separable convs) PyTorch's own is 2-15x faster, and
is used.

`depthwise_conv2d` computes them so (CPU only; CUDA's cuDNN kernels are fast already). The other
tricks, each a switch of `FAST_TRICKS` (benchmarks/darts_step.py measures what each buys):

* ``depthwise_backward``: the convolution above.
* ``shared_relu``: the four conv ops of an edge start with ReLU(x); compute it once per edge.
* ``fused_sum``: the edge's sum Σ_o w_o·o(x) as one autograd node: ∂L/∂w_o = <∂L/∂h, o(x)> is
  a dot product (no product map per op is built), ∂L/∂o(x) = w_o ∂L/∂h.
* ``checkpoint``: activation checkpointing per mixed op (Chen et al., 2016, "Training deep nets
  with sublinear memory cost"): the forward keeps only each edge's input and output, and the
  backward recomputes one edge at a time. DartsSupernet checkpoints only the edges whose input
  is as large as its first cell's and at least `checkpoint_min_elements`, and only stride-1 edges
  unless `checkpoint_strided` (darts_supernet.py): the full-resolution stage holds half the
  activations, a stride-2 edge's output is a quarter of its input, and at small sizes recomputing
  costs more time than the memory is worth. The recomputation neither updates BatchNorm's
  running statistics a second time nor draws new dropout masks, and it uses the tensors the
  forward used (w', w± of DARTS' second-order step, passed with torch.func.functional_call).
* ``channels_last``: NHWC memory layout for the input, which oneDNN's CPU convolutions prefer.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

from nasnb.checks import check_bool, short
from nasnb.errors import InvalidValueError
from nasnb.spaces.ops import DilConv, ReLUConvBN

FAST_TRICKS = ("depthwise_backward", "shared_relu", "fused_sum", "checkpoint", "channels_last")


def check_fast(fast) -> frozenset:
    """`fast`: True (every trick), False (none), or a collection of names from FAST_TRICKS."""
    if isinstance(fast, bool) or type(fast).__module__ == "numpy":
        return frozenset(FAST_TRICKS) if check_bool("fast", fast) else frozenset()
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
        (s, _), (p, _), (d, _) = ctx.conf
        B, C, H, W = x.shape
        k = weight.shape[-1]
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            g = grad
            if s > 1:  # a strided conv skipped window positions: put zeros back where it did
                g = torch.empty(B, C, H + 2 * p - d * (k - 1), W + 2 * p - d * (k - 1), dtype=grad.dtype,
                                device=grad.device, memory_format=_format_of(grad)).zero_()  # stride-1 output; NHWC
                # when grad is: an NCHW map here slowed every op of the backward after it
                g[:, :, ::s, ::s] = grad
            grad_x = F.conv2d(g, weight.flip(-1, -2), None, 1, d * (k - 1) - p, d, C)  # (B, C, H, W)
        if ctx.needs_input_grad[1] and d == 1:  # undilated: PyTorch's own weight gradient is the fast one
            grad_w = torch.ops.aten.convolution_backward(grad, x, weight, None, *ctx.conf, False, (0, 0), C,
                                                         (False, True, False))[1]
        elif ctx.needs_input_grad[1]:
            x_pad = F.pad(x, (p, p, p, p)).reshape(1, B * C, H + 2 * p, W + 2 * p)
            kernel = grad.reshape(B * C, 1, grad.shape[2], grad.shape[3])
            g = F.conv2d(x_pad, kernel, None, d, 0, s, B * C)  # (1, B*C, >=k, >=k)
            grad_w = g[0, :, :k, :k].reshape(B, C, k, k).sum(0).unsqueeze(1)  # (C, 1, k, k)
        return grad_x, grad_w, None, None, None


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
        same = all(o.stride() == grad.stride() for o in outputs)
        flat = _flat(grad) if same else None
        grad_w = torch.stack([torch.dot(flat, _flat(o)) if same else (grad * o).sum() for o in outputs]) \
            if ctx.needs_input_grad[0] else None
        return (grad_w, *(grad * weights[k] if ctx.needs_input_grad[k + 1] else None for k in range(len(outputs))))


def weighted_sum(weights: torch.Tensor, outputs: list) -> torch.Tensor:
    """Σ_k weights[k] · outputs[k] for a (len(outputs),) weight vector, as one autograd node."""
    return _WeightedSum.apply(weights, *outputs)


# ----------------------------------------------------------------------------- search ops


class SearchReLUConvBN(ReLUConvBN):
    """ReLUConvBN (same weights and names) that can take ReLU(x) computed once for its edge."""

    def forward(self, x, relu_x=None):
        return self[2](self[1](F.relu(x) if relu_x is None else relu_x))


class SearchDilConv(DilConv):
    """DilConv (same weights and names) with the fast depthwise backward; can take ReLU(x)."""

    def __init__(self, *args, fast_backward: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fast_backward = fast_backward

    def forward(self, x, relu_x=None):
        h = F.relu(x) if relu_x is None else relu_x
        h = depthwise_conv2d(h, self[1], self.fast_backward)
        return self[3](self[2](h))


class SearchSepConv(nn.Sequential):
    """SepConv (two DilConvs, stride in the first; same weights and names) of SearchDilConvs."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True, fast_backward=True):
        super().__init__(
            SearchDilConv(C_in, C_in, kernel_size, stride, padding, 1, affine, fast_backward=fast_backward),
            SearchDilConv(C_in, C_out, kernel_size, 1, padding, 1, affine, fast_backward=fast_backward),
        )

    def forward(self, x, relu_x=None):
        return self[1](self[0](x, relu_x))


SEARCH_CONVS = {  # DARTS' conv ops as (class, kernel_size, padding, dilation)
    "sep_conv_3x3": (SearchSepConv, 3, 1, 1), "sep_conv_5x5": (SearchSepConv, 5, 2, 1),
    "dil_conv_3x3": (SearchDilConv, 3, 2, 2), "dil_conv_5x5": (SearchDilConv, 5, 4, 2),
}


def search_conv(name: str, C: int, stride: int, fast_backward: bool) -> nn.Module:
    """DARTS' sep/dil conv op `name` at C channels, without affine BatchNorm, as a search op."""
    cls, k, padding, dilation = SEARCH_CONVS[name]
    if cls is SearchSepConv:
        return SearchSepConv(C, C, k, stride, padding, affine=False, fast_backward=fast_backward)
    return SearchDilConv(C, C, k, stride, padding, dilation, affine=False, fast_backward=fast_backward)


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
