"""Zero-cost proxies: rank architectures from one mini-batch at initialisation, without training.

Training is what makes NAS expensive. A *zero-cost proxy* scores an untrained network from a
single forward/backward pass and hopes the score ranks networks as their trained accuracy does
(Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021). Each proxy here is a
function ``proxy(net, batch_x, batch_y) -> float`` (higher = predicted better); ``PROXIES`` maps
names to them and ``score(space, arch, data, proxy=...)`` builds a seeded network and scores it.

Pruning-at-init saliencies, summed over the weights of every Conv2d and Linear layer (biases and
BatchNorm parameters are left out, as the reference code `abdelfattah/zero-cost-nas` does):

* ``synflow`` (Tanaka et al., 2020): every weight replaced by |θ|, BatchNorm layers removed (the
  reference builds its copy with ``bn=False``; Tanaka's own code uses eval mode, which at
  initialisation is the identity up to 1/sqrt(1 + eps)), input all ones, in float64 (products of
  many |θ| overflow float32).  R = sum of the output;  score = Σ |θ ⊙ ∂R/∂θ|.  No data is used.
* ``snip`` (Lee et al., 2019): score = Σ |θ ⊙ ∂L/∂θ| with L the cross-entropy of the batch.
* ``grad_norm``: score = Σ_layers ‖∂L/∂θ_layer‖₂, the *sum of per-layer* Frobenius norms (the
  reference's ``get_layer_metric_array`` + sum), not the norm of all gradients at once.

Activation-pattern scores (the network in train mode, BatchNorm on batch statistics, as both
reference codes run it):

* ``naswot`` (Mellor et al., "Neural Architecture Search without Training", ICML 2021): each input
  i gets a binary code c_i, one bit per ReLU unit (is its input > 0?). With N_A bits in all,
  K_H[i, j] = N_A - d_H(c_i, c_j) (d_H: Hamming distance) and score = log|det K_H|. Inputs that
  the network tells apart get distant codes, K_H near diagonal, a large determinant.
* ``jacov`` (Mellor et al.'s first, 2020, version; the reference's ``jacob_cov``): the Jacobians
  J_i = ∂(Σ output_i)/∂x_i, their correlation matrix Σ_J with eigenvalues λ, and
  score = -Σ (log(λ + k) + 1 / (λ + k)), k = 1e-5.

Baselines they must beat: ``params`` and ``flops`` (nasnb.cost's counters).

A proxy never changes the network it is given: it works on a copy (the weights, the BatchNorm
statistics and the .grad fields of `net` are left as they were).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasnb.checks import check_positive_int, check_seed, short
from nasnb.errors import InvalidTypeError, InvalidValueError, UnknownNameError

JACOV_K = 1e-5  # the reference's constant in -Σ(log(λ + k) + 1/(λ + k))
DEFAULT_BATCH_SIZE = 64  # the reference's batch for NAS-Bench-201


def _check_batch(batch_x, batch_y=None, *, need_y: bool = False, minimum: int = 1) -> None:
    if not isinstance(batch_x, torch.Tensor) or batch_x.dim() < 2 or not batch_x.is_floating_point():
        raise InvalidTypeError(f"batch_x must be a float tensor (B, ...) of inputs, got {short(batch_x)}; "
                               "e.g. batch_x=data.train[0][:64]")
    if len(batch_x) < minimum:
        raise InvalidValueError(f"batch_x holds {len(batch_x)} inputs; this proxy needs at least {minimum}, "
                                "e.g. batch_x=data.train[0][:64]")
    if need_y and (not isinstance(batch_y, torch.Tensor) or batch_y.shape != batch_x.shape[:1]
                   or batch_y.is_floating_point()):
        raise InvalidValueError(f"batch_y must be an int tensor of {len(batch_x)} class labels (one per input), "
                                f"got {short(batch_y)}; e.g. batch_y=data.train[1][:64]")


def _copy(net) -> nn.Module:
    if not isinstance(net, nn.Module):
        raise InvalidTypeError(f"net must be a torch.nn.Module, got {short(net)} ({type(net).__name__}); "
                               "e.g. net=space.build(arch)")
    return copy.deepcopy(net)


def _weights(net: nn.Module) -> list:
    """The weights the saliencies sum over: those of every Conv2d and Linear layer (the reference's
    get_layer_metric_array; convs include nn.Conv1d/3d here, which NB201 and DARTS do not use)."""
    return [m.weight for m in net.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]


def _loss_gradients(net: nn.Module, batch_x, batch_y) -> tuple[list, list]:
    """(weights, ∂L/∂weights) of the cross-entropy on the batch; a weight off the graph gets zeros."""
    net.train()
    weights = _weights(net)
    loss = F.cross_entropy(net(batch_x), batch_y)
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return weights, [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads)]


def _without_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm layer replaced by the identity (in place; on a copy)."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            _without_batchnorm(child)
    return module


# ----------------------------------------------------------------------------- the proxies


def synflow(net: nn.Module, batch_x: torch.Tensor, batch_y=None) -> float:
    """SynFlow (Tanaka et al., 2020): Σ |θ ⊙ ∂R/∂θ| with R = Σ f_|θ|(1), no BatchNorm, float64.

    Only the shape of one input is used: the score is the same for any batch of that shape."""
    _check_batch(batch_x)
    net = _without_batchnorm(_copy(net)).double().train()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()  # a copy: the caller's signs stay
    ones = torch.ones((1, *batch_x.shape[1:]), dtype=torch.float64, device=batch_x.device)
    weights = _weights(net)
    R = net(ones).sum()  # the "synaptic flow" through every path of the linearised network
    grads = torch.autograd.grad(R, weights, allow_unused=True)
    return float(sum((w.detach() * g).abs().sum() for w, g in zip(weights, grads) if g is not None))


def snip(net: nn.Module, batch_x: torch.Tensor, batch_y: torch.Tensor) -> float:
    """SNIP (Lee et al., 2019): Σ |θ ⊙ ∂L/∂θ|, the loss's sensitivity to removing each weight."""
    _check_batch(batch_x, batch_y, need_y=True)
    weights, grads = _loss_gradients(_copy(net), batch_x, batch_y)
    return float(sum((w.detach() * g).abs().sum() for w, g in zip(weights, grads)))


def grad_norm(net: nn.Module, batch_x: torch.Tensor, batch_y: torch.Tensor) -> float:
    """Σ over Conv/Linear layers of ‖∂L/∂W‖₂ (per-layer Frobenius norms, summed, as the reference)."""
    _check_batch(batch_x, batch_y, need_y=True)
    _, grads = _loss_gradients(_copy(net), batch_x, batch_y)
    return float(sum(g.norm() for g in grads))


def naswot_kernel(net: nn.Module, batch_x: torch.Tensor) -> np.ndarray:
    """NASWOT's K_H (B, B): N_A minus the Hamming distance of the inputs' ReLU codes.

    A code bit is 1 when a ReLU unit's input is > 0. K_H = C Cᵀ + (1 - C)(1 - C)ᵀ for the (B, N_A)
    code matrix C: the number of units on which two inputs agree."""
    _check_batch(batch_x)
    net = _copy(net).train()
    K = torch.zeros(len(batch_x), len(batch_x), dtype=torch.float64)

    def count(module, inputs):
        codes = (inputs[0].detach().flatten(1) > 0).double().cpu()  # (B, units of this ReLU)
        K.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    hooks = [m.register_forward_pre_hook(count) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(batch_x)
    finally:
        for h in hooks:
            h.remove()
    return K.numpy()


def naswot(net: nn.Module, batch_x: torch.Tensor, batch_y=None) -> float:
    """NASWOT (Mellor et al., ICML 2021): log|det K_H| (-inf when two inputs share a code)."""
    sign, logdet = np.linalg.slogdet(naswot_kernel(net, batch_x))
    return float(logdet) if sign != 0 else -math.inf


def jacov(net: nn.Module, batch_x: torch.Tensor, batch_y=None) -> float:
    """Jacobian covariance (Mellor et al., 2020): -Σ(log(λ + k) + 1/(λ + k)) over the eigenvalues λ
    of the inputs' Jacobian correlation matrix. -inf when a Jacobian is constant (its correlation
    is undefined: the reference gets NaN there), e.g. for a network whose output ignores its input."""
    _check_batch(batch_x, minimum=2)
    net = _copy(net).train()
    x = batch_x.detach().clone().requires_grad_(True)
    (jacobians,) = torch.autograd.grad(net(x).sum(), x, allow_unused=True)
    if jacobians is None:
        return -math.inf
    J = jacobians.flatten(1).double().cpu().numpy()  # (B, input size): row i is ∂(Σ output_i)/∂x_i
    if np.any(J.std(axis=1) == 0):
        return -math.inf
    eigenvalues = np.linalg.eigvalsh(np.corrcoef(J))
    return float(-np.sum(np.log(eigenvalues + JACOV_K) + 1.0 / (eigenvalues + JACOV_K)))


def params(net: nn.Module, batch_x=None, batch_y=None) -> float:
    """The number of parameters (nasnb.cost.count_params): the baseline every proxy must beat."""
    from nasnb.cost import count_params

    return float(count_params(net))


def flops(net: nn.Module, batch_x: torch.Tensor, batch_y=None) -> float:
    """Forward FLOPs of one input of batch_x's shape (nasnb.cost.count_flops)."""
    from nasnb.cost import count_flops

    _check_batch(batch_x)
    return float(count_flops(net, tuple(batch_x.shape[1:])))


PROXIES = {
    "synflow": synflow,
    "snip": snip,
    "grad_norm": grad_norm,
    "naswot": naswot,
    "jacov": jacov,
    "params": params,
    "flops": flops,
}


def get_proxy(proxy):
    """The proxy function `proxy` names (a key of PROXIES), or `proxy` itself if it is callable."""
    if callable(proxy):
        return proxy
    if not isinstance(proxy, str) or proxy not in PROXIES:
        raise UnknownNameError(f"proxy={short(proxy)} is not known; choose from {list(PROXIES)} "
                               "(or pass a function proxy(net, batch_x, batch_y) -> float), e.g. proxy='synflow'")
    return PROXIES[proxy]


# ----------------------------------------------------------------------------- scoring an architecture


def build_seeded(space, arch, data, seed: int = 0, **build_kwargs) -> nn.Module:
    """`space.build(arch)` with torch seeded by `seed` inside a fork of the RNG: the caller's global
    RNG is left as it was. With the default size (nasnb.evaluators.QUICK_BUILD: C=8, N=1 for NB201)
    and seed s this is the initial network TrainEvaluator(seed=s), and so the shipped table, trains."""
    from nasnb.evaluators import QUICK_BUILD, build_parameters

    seed = check_seed("seed", seed)
    if isinstance(arch, str):
        arch = space.parse(arch)
    arch = space.validate(arch)
    kwargs = {"num_classes": data.num_classes, "in_channels": data.in_channels,
              **QUICK_BUILD.get(getattr(space, "name", None), {}), **build_kwargs}
    takes = build_parameters(space)
    if takes is not None:
        unknown = [k for k in build_kwargs if k not in takes]
        if unknown:
            raise UnknownNameError(f"{type(space).__name__}.build does not take {unknown}; it takes {takes}")
        kwargs = {k: v for k, v in kwargs.items() if k in takes}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return space.build(arch, **kwargs).to(data.device)


def batch(data, batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0) -> tuple:
    """`batch_size` training images and labels of `data`, drawn without replacement by `seed`."""
    if not all(hasattr(data, a) for a in ("train", "num_classes", "in_channels")):
        raise InvalidTypeError(f"data must be a nasnb TensorData, got {short(data)}; e.g. data=nasnb.data.load('digits')")
    batch_size = check_positive_int("batch_size", batch_size, example=DEFAULT_BATCH_SIZE)
    x, y = data.train
    if batch_size > len(y):
        raise InvalidValueError(f"batch_size={batch_size} is more than the {len(y)} training images; "
                                f"e.g. batch_size={min(DEFAULT_BATCH_SIZE, len(y))}")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(check_seed("seed", seed)))
    index = order[:batch_size].to(x.device)
    return x[index], y[index]


def scores(space, arch, data, proxies=tuple(PROXIES), seed: int = 0, batch_size: int = DEFAULT_BATCH_SIZE,
           **build_kwargs) -> dict:
    """{name: score} of `arch` for every proxy in `proxies`, on one network built with `seed` and one
    batch drawn with `seed` (see `score`)."""
    if isinstance(proxies, str) or not hasattr(proxies, "__iter__"):
        raise InvalidTypeError(f"proxies must be a list of names, got {short(proxies)}; e.g. proxies=['synflow', 'naswot']")
    functions = {name if isinstance(name, str) else getattr(name, "__name__", repr(name)): get_proxy(name)
                 for name in proxies}
    batch_x, batch_y = batch(data, batch_size, seed)
    net = build_seeded(space, arch, data, seed, **build_kwargs)
    return {name: fn(net, batch_x, batch_y) for name, fn in functions.items()}


def score(space, arch, data, proxy="synflow", seed: int = 0, batch_size: int = DEFAULT_BATCH_SIZE,
          **build_kwargs) -> float:
    """The proxy's score of `arch` (a tuple or an arch string) of `space` at initialisation.

    The network is ``space.build(arch, **build_kwargs)`` (default size: QUICK_BUILD, the shipped
    table's C=8, N=1 for NB201) with torch seeded by `seed` (the caller's RNG untouched), the batch
    `batch_size` training images of `data` drawn by `seed`. The same seed gives the same score.

        score(NB201Space(), arch, nasnb.data.load("digits"), proxy="naswot", seed=0, C=8, N=1)
    """
    fn = get_proxy(proxy)
    batch_x, batch_y = batch(data, batch_size, seed)
    return float(fn(build_seeded(space, arch, data, seed, **build_kwargs), batch_x, batch_y))
