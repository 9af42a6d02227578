"""DARTS: differentiable architecture search (Liu, Simonyan & Yang, ICLR 2019).

The supernet (spaces/supernet.py) mixes every op on every edge with the weights softmax(α), so the
network is differentiable in its architecture α as well as in its weights w. DARTS solves the
bilevel problem (eq. 3-4)

    min_α  L_val(w*(α), α)     where   w*(α) = argmin_w L_train(w, α)

by alternating one gradient step on α (Adam) and one on w (SGD with momentum), Algorithm 1. The α
gradient replaces w*(α) by one virtual SGD step, w' = w − ξ ∇_w L_train(w, α) (eq. 6-7):

    ∇_α L_val(w', α) − ξ ∇²_{α,w} L_train(w, α) ∇_{w'} L_val(w', α)                        (7)

and the second-order term is a finite-difference Hessian-vector product (eq. 8):

    ∇²_{α,w} L_train(w, α) v  ≈  (∇_α L_train(w+, α) − ∇_α L_train(w−, α)) / (2ε),
    v = ∇_{w'} L_val(w', α),   w± = w ± ε v,   ε = 0.01 / ‖v‖.

`order=1` drops the second term and uses w itself (ξ = 0): ∇_α L_val(w, α), the paper's cheaper
"first-order approximation". The gradients are computed with `torch.func.functional_call`, which
runs the supernet on a dict of tensors (w', w+, w−) without copying weights in and out of it.

The paper splits CIFAR-10's training set into two halves, one for w and one for α; here the data's
`train` split trains w and its `val` split plays the second half (α). The test split is not used.

The successors of DARTS are switches of the same class (class docstring for their defaults):

* `warmup_steps=N`: α stays as it is for the first N steps while w trains (PC-DARTS, P-DARTS).
* `partial_channels=K`: PC-DARTS (Xu et al., ICLR 2020): each mixed op sees C/K channels, node
  inputs are weighted by edge normalisation β, and β is optimised with α.
* `gumbel=True`: GDAS (Dong & Yang, CVPR 2019): each edge samples one op by hard Gumbel-softmax,
  h = one_hot(argmax(α + g)), g ~ Gumbel(0, 1); only that op runs, and α gets the straight-through
  gradient of softmax((α + g)/τ), with τ annealed linearly from 10 to 0.1 (`gumbel_hard_weights`).
* `pdarts=True`: P-DARTS (Chen et al., ICCV 2019): stages of growing depth; between stages each
  edge keeps only its strongest ops (`keep_top_ops`); dropout after skip connections, decayed
  within each stage (`pdarts_skip_dropout`); at most M = 2 skip connections in the derived normal
  cell (`cap_skip_connections`, also usable alone as `max_skip=M`).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import math
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call

import numpy as np

from nasnb.checks import check_float, check_int, check_positive_float, check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError, TrainingDivergedError
from nasnb.history import Step
from nasnb.spaces.genotypes import Genotype
from nasnb.strategies.search import Search
from nasnb.train import check_data, pick_device

FINITE_DIFFERENCE_SCALE = 0.01  # eq. 8's ε = 0.01 / ‖v‖, "sufficient in all of our experiments"

# A small supernet per space, so that a step takes well under a second on a CPU with digits-sized
# data (the paper's search network is DartsSpace().supernet(C=16, layers=8) on CIFAR-10).
SMALL_SUPERNETS = {"nb201": {"C": 8, "N": 1}, "darts": {"C": 8, "layers": 5}}


# ------------------------------------------------------------------------- the α gradients

def loss_at(net, params: dict, batch, **forward) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy, logits) of the supernet's relaxation on `batch`, with the tensors in
    `params` (name -> tensor, e.g. w' for every weight) in place of the net's own parameters.
    `forward`: the supernet's other arguments (GDAS: weights=, ops=)."""
    x, y = batch
    logits = functional_call(net, params, (x,), forward)  # (B, num_classes)
    return F.cross_entropy(logits, y), logits


def gradients(loss: torch.Tensor, inputs: list) -> list[torch.Tensor]:
    """d loss / d input for each input, zero for an input the loss does not use (e.g. the normal
    cells' α of a DARTS supernet whose every cell reduces)."""
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads)]


def first_order_alpha_gradient(net, val_batch) -> list[torch.Tensor]:
    """∇_α L_val(w, α): DARTS' first-order approximation (ξ = 0). One tensor per arch parameter."""
    loss, _ = loss_at(net, {}, val_batch)
    return gradients(loss, net.arch_parameters())


def unrolled_alpha_gradient(net, train_batch, val_batch, xi: float, *, momentum: float = 0.0,
                            momentum_buffers: dict | None = None, weight_decay: float = 0.0,
                            epsilon_scale: float = FINITE_DIFFERENCE_SCALE) -> list[torch.Tensor]:
    """DARTS' second-order α gradient, eq. 7-8 (module docstring). One tensor per arch parameter.

    The virtual step is the one the weights' SGD optimizer would take (no gradient clipping), as in
    the authors' `_compute_unrolled_model`: w' = w − ξ (μ·buf + ∇_w L_train(w, α) + λ·w), with
    `momentum_buffers` (weight name -> SGD momentum buffer; none before the first step) and
    `weight_decay` λ. `epsilon_scale` is eq. 8's 0.01: the finite difference is exact to O(ε²).
    BatchNorm runs in train mode throughout (batch statistics), as in the authors' code; every
    forward pass, the virtual ones at w', w+ and w− included, updates its running statistics,
    which nothing in the search reads.
    """
    alphas = net.arch_parameters()
    arch_ids = {id(a) for a in alphas}
    weights = {name: p for name, p in net.named_parameters() if id(p) not in arch_ids}
    buffers = momentum_buffers or {}

    # eq. 6: w' = one SGD step on the training batch (from the current w and α)
    train_loss, _ = loss_at(net, {}, train_batch)
    grad_w = gradients(train_loss, list(weights.values()))
    unrolled = {}
    for (name, w), g in zip(weights.items(), grad_w):
        direction = g + weight_decay * w.detach()
        if name in buffers:
            direction = direction + momentum * buffers[name]
        unrolled[name] = (w.detach() - xi * direction).requires_grad_()

    # eq. 7, first term, and v = ∇_{w'} L_val(w', α)
    val_loss, _ = loss_at(net, unrolled, val_batch)
    grads = gradients(val_loss, alphas + list(unrolled.values()))
    grad_alpha, v = grads[:len(alphas)], grads[len(alphas):]

    # eq. 8: ∇²_{α,w} L_train(w, α) v by central differences around w, along v
    epsilon = epsilon_scale / torch.cat([t.flatten() for t in v]).norm()

    def alpha_gradient_of_train_loss(sign: float) -> list:
        shifted = {name: w.detach() + sign * epsilon * vi for (name, w), vi in zip(weights.items(), v)}
        return gradients(loss_at(net, shifted, train_batch)[0], alphas)

    plus, minus = alpha_gradient_of_train_loss(+1.0), alpha_gradient_of_train_loss(-1.0)
    return [ga - xi * (gp - gm) / (2 * epsilon) for ga, gp, gm in zip(grad_alpha, plus, minus)]


# ------------------------------------------------------------------------- GDAS: hard Gumbel-softmax

def gumbel_hard_weights(alpha: torch.Tensor, tau: float, generator: torch.Generator):
    """GDAS' differentiable sampler (Dong & Yang, CVPR 2019): per row of α (num_edges, num_ops),

        h = one_hot(argmax(α + g)),   g = −log(−log u),  u ~ U(0, 1) drawn from `generator`,

    whose value is exactly one-hot (the op that runs) and whose gradient is that of the soft sample
    softmax((α + g)/τ) (straight-through: h = one_hot + p − stop_gradient(p)). argmax(α + g) is an
    exact sample of softmax(α) whatever τ is (the Gumbel-max trick); τ only shapes the gradient.
    The authors' code adds g to log_softmax(α), which shifts each row by a constant: the same h, p.
    Returns (h, index): (num_edges, num_ops) weights and the (num_edges,) sampled op indices.
    """
    while True:  # u = 0 makes g infinite; the authors' code draws again too
        u = torch.rand(alpha.shape, generator=generator, dtype=alpha.dtype)
        g = -torch.log(-torch.log(u))
        if bool(torch.isfinite(g).all()):
            break
    g = g.to(alpha.device)
    soft = F.softmax((alpha + g) / tau, dim=-1)  # (num_edges, num_ops)
    index = (alpha.detach() + g).argmax(dim=-1)  # (num_edges,)
    hard = F.one_hot(index, alpha.shape[-1]).to(alpha.dtype) + (soft - soft.detach())  # value: exactly one-hot
    return hard, index


def linear_tau(step: int, tau_max: float, tau_min: float, steps: int) -> float:
    """GDAS' temperature: from tau_max at step 0 linearly to tau_min at step `steps` − 1, then
    tau_min (the authors set τ = τ_max − (τ_max − τ_min)·e/(E − 1) at each epoch e of E)."""
    if step >= steps - 1:
        return tau_min
    return tau_max - (tau_max - tau_min) * step / (steps - 1)


@dataclasses.dataclass(frozen=True)
class GDASConfig:
    """GDAS' temperature schedule (the authors' scripts: --tau_max 10 --tau_min 0.1)."""

    tau_max: float = 10.0  # τ at the first step
    tau_min: float = 0.1  # τ at the last step of the schedule and after it
    steps: int | None = None  # steps over which τ falls; None: the search's schedule_steps


# ------------------------------------------------------------------------- P-DARTS

@dataclasses.dataclass(frozen=True)
class PDARTSConfig:
    """P-DARTS' stages (Chen et al., ICCV 2019; the authors' train_search.py).

    None takes the space's default (PDARTS_DEFAULTS): DARTS space, the paper's 5, 11, 17 cells and
    8, 5, 3 ops per edge; NB201 (not in the paper), N = 1, 3, 5 cells per stage (3N + 2 = 5, 11, 17
    layers with its two residual blocks) and 5, 3, 2 ops (the 5 → 3 → 2 of the paper's Figure 2).
    """

    depths: tuple | None = None  # cells per stage: the supernet's `layers` (DARTS) or `N` (NB201)
    ops: tuple | None = None  # ops each edge keeps in each stage; the first is every op
    skip_dropout: tuple = (0.0, 0.4, 0.7)  # per stage, CIFAR-10 (paper; its README's command: 0.1, 0.4, 0.7;
    #                                        CIFAR-100: 0.1, 0.2, 0.3)
    stage_epochs: int = 25  # epochs of the training split per stage
    warmup_epochs: int = 10  # epochs at the start of each stage in which only w trains
    max_skip: int | None = 2  # M: skip connections allowed in the derived normal cell (None: no cap)


PDARTS_DEFAULTS = {"darts": {"depths": (5, 11, 17), "ops": (8, 5, 3)},
                   "nb201": {"depths": (1, 3, 5), "ops": (5, 3, 2)}}
DROPOUT_DECAY = 0.2  # train_search.py's scale_factor: after warm-up p = rate · exp(−0.2 · epochs since)


def pdarts_skip_dropout(rate: float, epoch: int, stage_epochs: int, warmup_epochs: int) -> float:
    """The skip-connect dropout of epoch `epoch` of a stage, as the authors' train_search.py sets it:
    rate·(E − e − 1)/E during the warm-up (e < W), then rate·exp(−0.2·(e − W)) (E = stage_epochs,
    W = warmup_epochs). It jumps back up to `rate` when α starts to learn, as there."""
    if epoch < warmup_epochs:
        return rate * (stage_epochs - epoch - 1) / stage_epochs
    return rate * math.exp(-DROPOUT_DECAY * (epoch - warmup_epochs))


def keep_top_ops(weights: torch.Tensor, keep: torch.Tensor, k: int) -> torch.Tensor:
    """P-DARTS' search space approximation: the (num_edges, num_ops) mask of the k strongest ops of
    each edge among those `keep` still has, by `weights` (softmax over the kept ops). As between
    stages in train_search.py, 'none' competes like any other op, and the weakest ops are dropped
    one at a time, of equal ones the first (np.argmin)."""
    new = torch.zeros_like(keep)
    for e, (row, kept) in enumerate(zip(weights.tolist(), keep.tolist())):
        ranked = sorted((o for o in range(len(row)) if kept[o]), key=lambda o: (row[o], o))  # weakest first
        for o in ranked[len(ranked) - k:]:
            new[e, o] = True
    return new


# ------------------------------------------------------------------------- discretisation with a skip cap

def cap_skip_connections(derive: Callable[[torch.Tensor], list], allowed: torch.Tensor, weights: list,
                         skip: int, max_skip: int) -> list:
    """P-DARTS' cap on skip connections ("search space regularization"; train_search.py's
    delete_min_sk_prob / keep_1_on / keep_2_branches loop after the last stage).

    `derive(allowed)` discretises a cell using only the ops `allowed` (num_edges, num_ops) permits
    and returns its chosen (edge, op, ...) items. While the cell holds more than `max_skip` skip
    connections, the chosen skip connection of smallest weight is taken out (on its edge, skip is no
    longer allowed) and the cell is derived again: that edge takes its next op, or, in a DARTS cell,
    may lose its place to another edge (which can bring a skip connection of its own). An edge
    whose only op left is skip keeps it.
    """
    allowed = allowed.clone()
    while True:
        chosen = derive(allowed)
        skips = sorted(item[0] for item in chosen if item[1] == skip and int(allowed[item[0]].sum()) > 1)
        if sum(item[1] == skip for item in chosen) <= max_skip or not skips:
            return chosen
        weakest = min(skips, key=lambda e: weights[e][skip])  # of equals the first edge, as np.argmin
        allowed[weakest, skip] = False


def darts_cell(weights: list, allowed: torch.Tensor, op_names, steps: int) -> list:
    """The DARTS code's genotype() rule on (num_edges, num_ops) weights: for node i, the two input
    edges whose strongest allowed non-'none' op is strongest, each with that op. Items: (edge, op,
    input state). The rule of DartsSupernet.derived(), with ties broken the same way."""
    allowed = allowed.tolist()
    real = [k for k, name in enumerate(op_names) if name != "none"]
    chosen, start = [], 0
    for i in range(steps):
        ops = [[k for k in real if allowed[start + j][k]] for j in range(i + 2)]
        usable = [j for j in range(i + 2) if ops[j]]
        if len(usable) < 2:
            raise InvalidValueError(f"node {i} has {len(usable)} input edges with an op other than 'none' left; "
                                    "a derived node needs two: allow more skip connections (a larger max_skip)")
        for j in sorted(usable, key=lambda j: -max(weights[start + j][k] for k in ops[j]))[:2]:
            chosen.append((start + j, max(ops[j], key=lambda k: (weights[start + j][k], -k)), j))
        start += i + 2
    return chosen


def strongest_ops(weights: list, allowed: torch.Tensor) -> list:
    """NB201's rule: on each edge the allowed op of largest weight ('none' included), the first of
    equals. Items: (edge, op)."""
    allowed = allowed.tolist()
    return [(e, max((k for k in range(len(row)) if allowed[e][k]), key=lambda k: (row[k], -k)))
            for e, row in enumerate(weights)]


def derive_with_skip_cap(net, max_skip: int):
    """The supernet's discretised architecture with at most `max_skip` skip connections in the
    normal cell (DARTS space; the reduction cell is derived as usual, as in P-DARTS) or in the
    cell (NB201, where each edge simply takes its next strongest op: this project's reading of
    the cap for a cell without edge selection)."""
    skip = net.op_names.index("skip_connect")
    with torch.no_grad():
        weights = net.mixing_weights()
        edge_weights = net.edge_weights() if callable(getattr(net, "edge_weights", None)) else None
        if edge_weights is not None:  # PC-DARTS ranks by softmax(α)·softmax(β), as DartsSupernet.derived
            weights = {cell: w * edge_weights[cell][:, None] for cell, w in weights.items()}
        weights = {cell: w.tolist() for cell, w in weights.items()}
    if tuple(net.cell_names) == ("cell",):
        chosen = cap_skip_connections(lambda allowed: strongest_ops(weights["cell"], allowed), net.keep["cell"],
                                      weights["cell"], skip, max_skip)
        return tuple(net.op_names[k] for _, k in chosen)
    cells = {}
    for cell in net.cell_names:
        derive = lambda allowed, w=weights[cell]: darts_cell(w, allowed, net.op_names, net.steps)  # noqa: E731
        chosen = (cap_skip_connections(derive, net.keep[cell], weights[cell], skip, max_skip) if cell == "normal"
                  else derive(net.keep[cell]))
        cells[cell], cells[f"{cell}_concat"] = [(net.op_names[k], j) for _, k, j in chosen], net.concat
    return Genotype(**cells)


# ------------------------------------------------------------------------- the search

class DARTS(Search):
    """DARTS (Liu, Simonyan & Yang, ICLR 2019, Algorithm 1): alternate an α step and a w step.

    Each `step()` draws a training and a validation batch, updates α on the validation batch
    (first- or second-order gradient, module docstring), then w on the training batch, in the
    order of the authors' code (`architect.step` before the weight step), and records one `Step`.

    Defaults are the paper's (Sec. 3.1.1 and A.1.1): w by SGD, lr 0.025 annealed by a cosine to
    0.001, momentum 0.9, weight decay 3e-4, gradient norm clipped to 5; α by Adam, lr 3e-4,
    betas (0.5, 0.999), weight decay 1e-3. Only the supernet is smaller (SMALL_SUPERNETS).

    Args:
        space: NB201Space() or DartsSpace() (anything with supernet(), format(), parse()).
        data: a nasnb.data.TensorData; w trains on `data.train`, α on `data.val` (the paper's two
            halves of the CIFAR-10 training set).
        order: 2 for the unrolled gradient (eq. 7-8), 1 for the first-order approximation.
        supernet_kwargs: passed to `space.supernet(...)`; num_classes and in_channels come from
            the data. None: SMALL_SUPERNETS' size for the space.
        schedule_steps: the number of steps over which w's learning rate falls from w_lr to
            w_lr_min by a cosine (the paper: its 50 epochs); None keeps w_lr constant.
        grad_clip: the largest norm of w's gradient (None: no clipping).
        alpha_grad_clip: the largest norm of the α gradient (None: none, as DARTS; P-DARTS: 5).
        warmup_steps: α is not updated in the first `warmup_steps` steps, only w.
        partial_channels: PC-DARTS' K (None: the supernet's default, 1).
        gumbel: True, a dict or a GDASConfig: GDAS' sampling instead of the relaxation.
        pdarts: True, a dict or a PDARTSConfig: P-DARTS' progressive stages.
        max_skip: at most this many skip connections in the derived (normal) cell (None: no cap).
        device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", ...

    The successors' defaults, from their papers and the authors' code, for the user to choose
    (none of them is switched on by the option alone, except where said):

    * PC-DARTS (Xu et al., ICLR 2020; yuhuixu1993/PC-DARTS train_search.py): partial_channels=4
      on CIFAR-10 (the option turns on the DARTS supernet's edge normalisation β, which the α
      optimiser then also trains; the NB201 supernet has no β), order=1, batch_size=256,
      w_lr=0.1 with w_lr_min=0 over 50 epochs, alpha_lr=6e-4 (weight decay 1e-3, betas
      (0.5, 0.999)), warm-up of 15 epochs: warmup_steps = 15 · len(train) // batch_size.
    * GDAS (Dong & Yang, CVPR 2019; D-X-Y/AutoDL-Projects GDAS.py and its configs): τ from 10 to
      0.1 linearly over the search (set by GDASConfig), order=1 (required here: α's gradient is the
      first-order one of the sampled network), alpha_lr=3e-4 (weight decay 1e-3, betas (0.5,
      0.999)), w by Nesterov SGD lr 0.025 cosine to 0.001, weight decay 5e-4, 250 epochs, batch 64
      on NB201 and 256 on the DARTS space. The authors update w before α; here α goes first.
      The derived cell is argmax α (NB201) or the DARTS rule (DARTS space), as for DARTS.
    * P-DARTS (Chen et al., ICCV 2019; chenxin061/pdarts train_search.py): the stages of
      PDARTSConfig (switched on by pdarts=True: 5/11/17 cells, 8/5/3 ops, skip dropout 0.0/0.4/0.7,
      25 epochs per stage of which 10 warm up, M = 2), order=1, batch_size=96 (64 on a 12 GB GPU),
      w_lr=0.025 with w_lr_min=0, alpha_lr=6e-4 (weight decay 1e-3), alpha_grad_clip=5. Each stage
      starts with fresh weights, α and optimisers, and w's cosine restarts over the stage.

    `state()["alphas"]` holds softmax(α) per cell type, per edge; `derived()` the discretised
    architecture. The supernet is initialised from `seed` without touching the global RNG; every
    batch, Gumbel sample and dropout mask is drawn from `self.torch_generator`.
    """

    panels = ("alphas", "progress")  # softmax(α) bars, their history and the derived cell; the metrics

    def __init__(self, space, data, *, order: int = 2, supernet_kwargs: dict | None = None, batch_size: int = 64,
                 w_lr: float = 0.025, w_lr_min: float = 0.001, schedule_steps: int | None = None,
                 w_momentum: float = 0.9, w_weight_decay: float = 3e-4, grad_clip: float | None = 5.0,
                 alpha_lr: float = 3e-4, alpha_betas: tuple = (0.5, 0.999), alpha_weight_decay: float = 1e-3,
                 alpha_grad_clip: float | None = None, warmup_steps: int = 0, partial_channels: int | None = None,
                 gumbel=None, pdarts=None, max_skip: int | None = None,
                 device="auto", metric: str = "val_accuracy", seed: int = 0):
        super().__init__(space, metric=metric, seed=seed)
        if not callable(getattr(space, "supernet", None)):
            raise InvalidTypeError(f"DARTS needs a space with a supernet(), e.g. NB201Space() or DartsSpace(); "
                                   f"got {short(space)}")
        if not hasattr(data, "train") or not hasattr(data, "fingerprint"):
            raise InvalidTypeError(f"data must be a nasnb.data.TensorData, got {short(data)}; DARTS trains a "
                                   "supernet on data (it takes no evaluator): "
                                   "e.g. DARTS(space, nasnb.data.load('digits'))")
        check_data(data)
        self.order = check_int("order", order, minimum=1, maximum=2, example=2)
        self.batch_size = check_positive_int("batch_size", batch_size, example=64)
        for split in ("train", "val"):
            n = len(data.split(split)[1])
            if self.batch_size > n:
                raise InvalidValueError(f"batch_size={self.batch_size}, but the {split} split has {n} images; "
                                        f"e.g. batch_size={n}")
        self.steps_per_epoch = len(data.train[1]) // self.batch_size  # the batch stream drops the last partial one
        self.w_lr = check_positive_float("w_lr", w_lr, example=0.025)
        self.w_lr_min = check_float("w_lr_min", w_lr_min, minimum=0.0, maximum=self.w_lr, example=0.001)
        self.schedule_steps = (None if schedule_steps is None
                               else check_positive_int("schedule_steps", schedule_steps, example=1000))
        self.w_momentum = check_float("w_momentum", w_momentum, minimum=0.0, maximum=0.999, example=0.9)
        self.w_weight_decay = check_float("w_weight_decay", w_weight_decay, minimum=0.0, maximum=1.0, example=3e-4)
        self.grad_clip = None if grad_clip is None else check_positive_float("grad_clip", grad_clip, example=5.0)
        self.alpha_lr = check_positive_float("alpha_lr", alpha_lr, example=3e-4)
        if not isinstance(alpha_betas, (tuple, list)) or len(alpha_betas) != 2:
            raise InvalidValueError(f"alpha_betas must be a pair (beta1, beta2), got {short(alpha_betas)}; "
                                    "e.g. alpha_betas=(0.5, 0.999)")
        self.alpha_betas = tuple(check_float(f"alpha_betas[{i}]", b, minimum=0.0, maximum=0.9999, example=0.5)
                                 for i, b in enumerate(alpha_betas))
        self.alpha_weight_decay = check_float("alpha_weight_decay", alpha_weight_decay, minimum=0.0, maximum=1.0,
                                              example=1e-3)
        self.alpha_grad_clip = (None if alpha_grad_clip is None
                                else check_positive_float("alpha_grad_clip", alpha_grad_clip, example=5.0))
        self.warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0, example=100)
        self.device = pick_device(device)
        self.data = data.to(self.device)
        self.data_settings = {"name": data.name, "fingerprint": data.fingerprint(),
                              "train_size": len(data.train[1]), "val_size": len(data.val[1])}
        self.pdarts = _check_pdarts(pdarts, space)
        self.supernet_kwargs = self._supernet_kwargs(supernet_kwargs, partial_channels)
        self.partial_channels = self.supernet_kwargs.get("partial_channels", 1)
        self.gumbel = self._check_gumbel(gumbel)
        self.stage, self.net = 0, None
        self._build(0, None)
        if self.pdarts is not None:
            self.pdarts = _resolve_pdarts_ops(self.pdarts, len(self.net.op_names), "none" in self.net.op_names
                                              and tuple(self.net.cell_names) != ("cell",))
            if self.warmup_steps:
                raise InvalidValueError(f"warmup_steps={self.warmup_steps}, but P-DARTS warms up at the start of "
                                        f"each stage: leave warmup_steps at 0 and set "
                                        f"PDARTSConfig(warmup_epochs={self.pdarts.warmup_epochs})")
        self.max_skip = self._check_max_skip(max_skip)
        # Where each split's endless shuffled stream is: this epoch's order and the next position.
        self.streams = {split: {"order": torch.zeros(0, dtype=torch.long), "position": 0}
                        for split in ("train", "val")}

    def _supernet_kwargs(self, supernet_kwargs, partial_channels) -> dict:
        default = supernet_kwargs is None
        if default:
            supernet_kwargs = SMALL_SUPERNETS.get(getattr(self.space, "name", None), {})
        if not isinstance(supernet_kwargs, dict):
            raise InvalidTypeError(f"supernet_kwargs must be a dict (or None), got {short(supernet_kwargs)}; "
                                   "e.g. supernet_kwargs={'C': 8, 'N': 1}")
        kwargs = dict(supernet_kwargs)
        for name, value in (("num_classes", self.data.num_classes), ("in_channels", self.data.in_channels)):
            if kwargs.setdefault(name, value) != value:
                raise InvalidValueError(f"supernet_kwargs sets {name}={short(kwargs[name])}, but the data has "
                                        f"{value}; leave it out (it comes from the data)")
        if partial_channels is not None:
            K = check_positive_int("partial_channels", partial_channels, example=4)
            if kwargs.setdefault("partial_channels", K) != K:
                raise InvalidValueError(f"partial_channels={K}, but supernet_kwargs sets partial_channels="
                                        f"{short(kwargs['partial_channels'])}; give it once")
        if self.pdarts is not None:
            depth = _depth_argument(self.space)
            for name in (depth, "keep"):
                if name in kwargs and not (default and name == depth):
                    raise InvalidValueError(f"supernet_kwargs sets {name}=..., but P-DARTS sets each stage's "
                                            f"{'depth (PDARTSConfig(depths=...))' if name == depth else 'op mask'}; "
                                            f"leave {name} out of supernet_kwargs")
            kwargs.pop(depth, None)
        return kwargs

    def _check_gumbel(self, gumbel) -> GDASConfig | None:
        config = _as_config("gumbel", gumbel, GDASConfig, "gumbel=GDASConfig(tau_max=10.0, tau_min=0.1)")
        if config is None:
            return None
        tau_max = check_positive_float("gumbel.tau_max", config.tau_max, example=10.0)
        tau_min = check_float("gumbel.tau_min", config.tau_min, minimum=0.0, exclusive_minimum=True,
                              maximum=tau_max, example=min(0.1, tau_max))
        steps = config.steps if config.steps is not None else self.schedule_steps
        if steps is None:
            raise InvalidValueError("gumbel anneals τ over the search: give schedule_steps=... (the length of the "
                                    "search, e.g. epochs · len(train) // batch_size) or gumbel=GDASConfig(steps=...)")
        steps = check_int("gumbel.steps", steps, minimum=2, example=1000)
        if self.order != 1:
            raise InvalidValueError(f"gumbel with order={self.order}: GDAS updates α with the first-order gradient "
                                    "of the sampled network; use order=1")
        if self.pdarts is not None:
            raise InvalidValueError("gumbel and pdarts are two different searches; choose one")
        if self.supernet_kwargs.get("partial_channels", 1) != 1:
            raise InvalidValueError(f"gumbel with partial_channels={self.supernet_kwargs['partial_channels']}: GDAS "
                                    "runs one op per edge, so partial channels save nothing (and β takes no part "
                                    "in a sampled sub-network); leave partial_channels out")
        return GDASConfig(tau_max=tau_max, tau_min=tau_min, steps=steps)

    def _check_max_skip(self, max_skip) -> int | None:
        if max_skip is not None:
            max_skip = check_int("max_skip", max_skip, minimum=0, example=2)
            if self.pdarts is not None and self.pdarts.max_skip not in (None, max_skip):
                raise InvalidValueError(f"max_skip={max_skip}, but pdarts sets max_skip={self.pdarts.max_skip}; "
                                        "give it once (e.g. PDARTSConfig(max_skip=...))")
        elif self.pdarts is not None:
            max_skip = self.pdarts.max_skip
        if max_skip is not None and "skip_connect" not in self.net.op_names:
            raise InvalidValueError(f"max_skip={max_skip}, but this supernet's ops {list(self.net.op_names)} have no "
                                    "skip_connect; leave max_skip out")
        return max_skip

    def _build(self, stage: int, keep: dict | None) -> None:
        """The supernet of `stage` (P-DARTS: its depth, and `keep`, the ops each edge kept), with
        fresh weights, α and optimisers, seeded by (seed, stage) without touching the global RNG."""
        kwargs = dict(self.supernet_kwargs)
        if self.pdarts is not None:
            kwargs[_depth_argument(self.space)] = self.pdarts.depths[stage]
            if keep is not None:
                kwargs["keep"] = keep
        seed = self.seed if stage == 0 else int(np.random.SeedSequence([self.seed, stage]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's RNG alone
            torch.manual_seed(seed)
            try:
                net = self.space.supernet(**kwargs)
            except TypeError as err:
                raise InvalidValueError(f"supernet_kwargs={short(self.supernet_kwargs)} do not fit "
                                        f"{type(self.space).__name__}.supernet ({err})") from None
        self.stage = stage
        self.net = net.to(self.device).train()  # train mode throughout: BatchNorm uses batch statistics
        self.w_optimizer = torch.optim.SGD(self.net.weight_parameters(), lr=self.w_lr, momentum=self.w_momentum,
                                           weight_decay=self.w_weight_decay)
        self.alpha_optimizer = torch.optim.Adam(self.net.arch_parameters(), lr=self.alpha_lr,
                                                betas=self.alpha_betas, weight_decay=self.alpha_weight_decay)

    # ---------------------------------------------------------------- schedules

    def stage_at(self, step: int) -> int:
        """P-DARTS: the stage step `step` belongs to (the last stage goes on after its length); 0 without."""
        if self.pdarts is None:
            return 0
        return min(step // (self.pdarts.stage_epochs * self.steps_per_epoch), len(self.pdarts.depths) - 1)

    def _step_in_stage(self, step: int) -> int:
        return step - self.stage_at(step) * self.pdarts.stage_epochs * self.steps_per_epoch if self.pdarts else step

    def in_warmup(self, step: int) -> bool:
        """Whether α stays as it is at step `step` (warmup_steps; P-DARTS: the first warmup_epochs of a stage)."""
        if self.pdarts is not None:
            return self._step_in_stage(step) // self.steps_per_epoch < self.pdarts.warmup_epochs
        return step < self.warmup_steps

    def current_w_lr(self) -> float:
        """w's learning rate at this step: cosine from w_lr to w_lr_min over schedule_steps
        (Loshchilov & Hutter, 2017, eq. 5), then w_lr_min; w_lr throughout when schedule_steps is None.
        P-DARTS: the cosine restarts at each stage and runs over the stage's steps."""
        if self.pdarts is not None:
            period = self.pdarts.stage_epochs * self.steps_per_epoch
            t = min(self._step_in_stage(len(self.history)), period)
        elif self.schedule_steps is None:
            return self.w_lr
        else:
            period, t = self.schedule_steps, min(len(self.history), self.schedule_steps)
        return self.w_lr_min + (self.w_lr - self.w_lr_min) / 2 * (1 + math.cos(math.pi * t / period))

    def current_tau(self) -> float | None:
        """GDAS' temperature at this step (None without gumbel)."""
        if self.gumbel is None:
            return None
        return linear_tau(len(self.history), self.gumbel.tau_max, self.gumbel.tau_min, self.gumbel.steps)

    def current_skip_dropout(self) -> float | None:
        """P-DARTS' skip-connect dropout at this step (None without pdarts)."""
        if self.pdarts is None:
            return None
        step = len(self.history)
        return pdarts_skip_dropout(self.pdarts.skip_dropout[self.stage_at(step)],
                                   self._step_in_stage(step) // self.steps_per_epoch,
                                   self.pdarts.stage_epochs, self.pdarts.warmup_epochs)

    # ---------------------------------------------------------------- one step

    def _next_batch(self, split: str) -> tuple:
        """The next batch of `split`'s endless stream: a new shuffled order each epoch, drawn from
        self.torch_generator; the last incomplete batch of an epoch is dropped."""
        x, y = self.data.split(split)
        stream = self.streams[split]
        if stream["position"] + self.batch_size > len(stream["order"]):
            stream["order"] = torch.randperm(len(y), generator=self.torch_generator)
            stream["position"] = 0
        idx = stream["order"][stream["position"]:stream["position"] + self.batch_size].to(x.device)
        stream["position"] += self.batch_size
        return x[idx], y[idx]

    def step(self) -> Step:
        """One α update (on a val batch) then one w update (on a train batch), recorded as a Step.

        metrics: val_loss / val_accuracy of the val batch at the step's start (w and α before
        their updates); train_loss / train_accuracy of the train batch in the w update's forward
        pass (α already updated); with gumbel, those of the sub-networks sampled for the α and the
        w update. A NaN or infinite loss or gradient raises TrainingDivergedError
        and leaves the search as it was before the step; nothing is recorded.

        info: "alphas" and "derived" after the step; "warmup" (α not updated) when a warm-up is
        set; "tau" with gumbel; "stage" and "skip_dropout" with pdarts. P-DARTS moves to the next
        stage at the first step of it: each edge keeps its strongest ops (keep_top_ops) and a
        deeper supernet starts with fresh weights, α and optimisers.
        """
        start = time.perf_counter()
        before = copy.deepcopy(self._extra_state()), self.torch_generator.get_state()
        step = len(self.history)
        try:
            with self._dropout_rng():
                if self.stage_at(step) != self.stage:
                    self._enter_stage(self.stage_at(step))
                metrics = self._update()
        except TrainingDivergedError:
            self._load_extra_state(before[0])
            self.torch_generator.set_state(before[1])
            raise
        derived = self.space.format(self.derived())
        info = {"alphas": self.net.alphas(), "derived": derived}
        if self.warmup_steps or self.pdarts is not None:
            info["warmup"] = self.in_warmup(step)
        if self.gumbel is not None:
            info["tau"] = linear_tau(step, self.gumbel.tau_max, self.gumbel.tau_min, self.gumbel.steps)
        if self.pdarts is not None:
            info["stage"], info["skip_dropout"] = self.stage, self.net.skip_dropout
        return self._record(Step(step, metrics, seconds=time.perf_counter() - start, info=info, arch=derived))

    def _dropout_rng(self):
        """P-DARTS' dropout draws from torch's global RNG: seed it for this step from the search's
        own generator (and put the caller's state back afterwards), so that runs and resumed runs
        draw the same masks. Without dropout nothing is drawn."""
        if self.pdarts is None or not any(self.pdarts.skip_dropout):
            return contextlib.nullcontext()
        seed = int(torch.randint(2 ** 62, (1,), generator=self.torch_generator))
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        context = torch.random.fork_rng(devices=devices)

        @contextlib.contextmanager
        def seeded():
            with context:
                torch.manual_seed(seed)
                yield
        return seeded()

    def _enter_stage(self, stage: int) -> None:
        """P-DARTS, between stages: keep each edge's `ops[stage]` strongest ops, then a fresh deeper supernet."""
        weights = self.net.mixing_weights()
        keep = {cell: keep_top_ops(weights[cell].detach().cpu(), self.net.keep[cell], self.pdarts.ops[stage])
                for cell in self.net.cell_names}
        self._build(stage, keep)

    def _update(self) -> dict:
        train_batch, val_batch = self._next_batch("train"), self._next_batch("val")
        xi = self.current_w_lr()
        for group in self.w_optimizer.param_groups:
            group["lr"] = xi
        if self.pdarts is not None:
            self.net.skip_dropout = self.current_skip_dropout()
        update_alpha = not self.in_warmup(len(self.history))

        # α step (Algorithm 1, line 1)
        if self.gumbel is not None:  # GDAS: the loss of one sampled sub-network, first order
            with torch.set_grad_enabled(update_alpha):
                val_loss, val_logits = loss_at(self.net, {}, val_batch, **self._gumbel_sample())
            self._check_finite("validation loss", val_loss)
            if update_alpha:
                self._alpha_update(gradients(val_loss, self.net.arch_parameters()))
        else:
            with torch.no_grad():
                val_loss, val_logits = loss_at(self.net, {}, val_batch)
            self._check_finite("validation loss", val_loss)
            if update_alpha and self.order == 1:
                self._alpha_update(first_order_alpha_gradient(self.net, val_batch))
            elif update_alpha:
                names = {id(p): name for name, p in self.net.named_parameters()}
                buffers = {names[id(p)]: s["momentum_buffer"] for p, s in self.w_optimizer.state.items()
                           if s.get("momentum_buffer") is not None}
                self._alpha_update(unrolled_alpha_gradient(
                    self.net, train_batch, val_batch, xi, momentum=self.w_momentum, momentum_buffers=buffers,
                    weight_decay=self.w_weight_decay))

        # w step (Algorithm 1, line 2); GDAS: on another sampled sub-network
        weights = self.net.weight_parameters()
        forward = self._gumbel_sample() if self.gumbel is not None else {}
        train_loss, train_logits = loss_at(self.net, {}, train_batch, **forward)
        self._check_finite("training loss", train_loss)
        self.w_optimizer.zero_grad(set_to_none=True)
        train_loss.backward(inputs=weights)
        norm = torch.nn.utils.clip_grad_norm_(weights, self.grad_clip if self.grad_clip is not None else math.inf)
        self._check_finite("weight gradient", norm)
        self.w_optimizer.step()

        accuracy = lambda logits, batch: float((logits.argmax(1) == batch[1]).float().mean())  # noqa: E731
        return {"train_loss": float(train_loss.detach()), "train_accuracy": accuracy(train_logits, train_batch),
                "val_loss": float(val_loss.detach()), "val_accuracy": accuracy(val_logits, val_batch)}

    def _gumbel_sample(self) -> dict:
        """GDAS: one hard sample per edge and cell type, as the supernet's weights= and ops= arguments."""
        tau = self.current_tau()
        samples = {cell: gumbel_hard_weights(alpha, tau, self.torch_generator)
                   for cell, alpha in self.net.alpha.items()}
        return {"weights": {cell: h for cell, (h, _) in samples.items()},
                "ops": {cell: index for cell, (_, index) in samples.items()}}

    def _alpha_update(self, grads: list) -> None:
        self._check_finite("α gradient", torch.stack([g.norm() for g in grads]).sum())
        arch = self.net.arch_parameters()
        for alpha, g in zip(arch, grads):
            alpha.grad = g
        if self.alpha_grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(arch, self.alpha_grad_clip)
        self.alpha_optimizer.step()
        self.alpha_optimizer.zero_grad(set_to_none=True)

    def _check_finite(self, what: str, value: torch.Tensor) -> None:
        if bool(torch.isfinite(value)):
            return
        finite_data = all(bool(torch.isfinite(self.data.split(s)[0]).all()) for s in ("train", "val"))
        if not finite_data:
            cause = (f"the images of {self.data.name!r} hold NaN or infinite values; load them with "
                     "nasnb.data.from_tensors(x, y), which refuses such images")
        else:
            cause = (f"the learning rates are probably too high for this supernet; try e.g. w_lr={self.w_lr / 10:g} "
                     f"or alpha_lr={self.alpha_lr / 10:g} (a tenth), or a smaller grad_clip")
        raise TrainingDivergedError(f"DARTS diverged at step {len(self.history)}: the {what} is "
                                    f"{float(value.detach())}. Likely cause: {cause}. "
                                    "Nothing was recorded for this step.")

    # ---------------------------------------------------------------- what views and checkpoints read

    def derived(self):
        """The discretised architecture: the supernet's strongest ops (NB201: a tuple of op names;
        DARTS: a Genotype with the top-2 input edges per node), with at most max_skip skip
        connections in the (normal) cell when max_skip is set (derive_with_skip_cap)."""
        if self.max_skip is None:
            return self.net.derived()
        return derive_with_skip_cap(self.net, self.max_skip)

    def state(self) -> dict:
        extra = {"stage": self.stage} if self.pdarts is not None else {}
        return {**super().state(), "alphas": self.net.alphas(), "derived": self.space.format(self.derived()), **extra}

    def settings(self) -> dict:
        # The device is left out: a run continued on another device is the same run.
        return {**super().settings(), "order": self.order, "supernet_kwargs": self.supernet_kwargs,
                "batch_size": self.batch_size, "w_lr": self.w_lr, "w_lr_min": self.w_lr_min,
                "schedule_steps": self.schedule_steps, "w_momentum": self.w_momentum,
                "w_weight_decay": self.w_weight_decay, "grad_clip": self.grad_clip, "alpha_lr": self.alpha_lr,
                "alpha_betas": list(self.alpha_betas), "alpha_weight_decay": self.alpha_weight_decay,
                "alpha_grad_clip": self.alpha_grad_clip, "warmup_steps": self.warmup_steps,
                "partial_channels": self.partial_channels, "max_skip": self.max_skip,
                "gumbel": None if self.gumbel is None else dataclasses.asdict(self.gumbel),
                "pdarts": None if self.pdarts is None else dataclasses.asdict(self.pdarts),
                "data": self.data_settings}

    def _extra_state(self) -> dict:
        return {"net": self.net.state_dict(), "w_optimizer": self.w_optimizer.state_dict(),
                "alpha_optimizer": self.alpha_optimizer.state_dict(), "stage": self.stage,
                "keep": {cell: mask.clone() for cell, mask in self.net.keep.items()},
                "streams": {split: {"order": s["order"].clone(), "position": s["position"]}
                            for split, s in self.streams.items()}}

    def _load_extra_state(self, state: dict) -> None:
        stage, keep = int(state.get("stage", 0)), state.get("keep")
        same_keep = keep is None or all(torch.equal(keep[cell].cpu(), mask) for cell, mask in self.net.keep.items())
        if stage != self.stage or not same_keep:  # P-DARTS: that stage's supernet, then its weights
            self._build(stage, None if stage == 0 else keep)
        self.net.load_state_dict(state["net"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.streams = {split: {"order": s["order"].clone().cpu(), "position": int(s["position"])}
                        for split, s in state["streams"].items()}


# ------------------------------------------------------------------------- option checks

def _as_config(name: str, value, cls, example: str):
    """None/False: off; True: the defaults; a dict of fields or a `cls`: those settings."""
    if value is None or value is False:
        return None
    if value is True:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - fields)
        if unknown:
            raise InvalidValueError(f"{name} has no setting {unknown[0]!r}; it has {sorted(fields)}, e.g. {example}")
        return cls(**value)
    raise InvalidTypeError(f"{name} must be True, a dict or a {cls.__name__}, got {short(value)}; e.g. {example}")


def _depth_argument(space) -> str:
    """The name of the depth argument of space.supernet: DARTS' `layers`, NB201's `N`."""
    parameters = inspect.signature(space.supernet).parameters
    for name in ("layers", "N"):
        if name in parameters:
            return name
    raise InvalidValueError(f"pdarts grows the supernet's depth, but {type(space).__name__}.supernet has no "
                            "`layers` or `N` argument; use DartsSpace() or NB201Space()")


def _int_tuple(name: str, value, length: int | None, minimum: int, example: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or not value:
        raise InvalidTypeError(f"{name} must be a tuple of ints, one per stage, got {short(value)}; e.g. {example}")
    if length is not None and len(value) != length:
        raise InvalidValueError(f"{name} has {len(value)} entries, but there are {length} stages (depths); "
                                f"give one per stage, e.g. {example}")
    return tuple(check_int(f"{name}[{i}]", v, minimum=minimum) for i, v in enumerate(value))


def _check_pdarts(pdarts, space) -> PDARTSConfig | None:
    """The P-DARTS settings with the space's depths filled in and every field checked (ops: later,
    once the supernet says how many ops an edge has)."""
    config = _as_config("pdarts", pdarts, PDARTSConfig, "pdarts=PDARTSConfig(depths=(5, 11, 17), ops=(8, 5, 3))")
    if config is None:
        return None
    defaults = PDARTS_DEFAULTS.get(getattr(space, "name", None), {})
    depths = config.depths if config.depths is not None else defaults.get("depths")
    if depths is None:
        raise InvalidValueError(f"pdarts needs depths for {type(space).__name__}: e.g. "
                                "pdarts=PDARTSConfig(depths=(5, 11, 17), ops=(8, 5, 3))")
    _depth_argument(space)
    depths = _int_tuple("pdarts.depths", depths, None, 1, "(5, 11, 17)")
    stages = len(depths)
    if isinstance(config.skip_dropout, (str, bytes)) or not isinstance(config.skip_dropout, (tuple, list)):
        raise InvalidTypeError(f"pdarts.skip_dropout must be a tuple of rates in [0, 1), one per stage, got "
                               f"{short(config.skip_dropout)}; e.g. (0.0, 0.4, 0.7)")
    if len(config.skip_dropout) != stages:
        raise InvalidValueError(f"pdarts.skip_dropout has {len(config.skip_dropout)} entries, but there are {stages} "
                                f"stages (depths={depths}); give one rate per stage, e.g. {(0.0,) * stages}")
    rates = tuple(check_float(f"pdarts.skip_dropout[{i}]", p, minimum=0.0, maximum=0.999, example=0.4)
                  for i, p in enumerate(config.skip_dropout))
    stage_epochs = check_positive_int("pdarts.stage_epochs", config.stage_epochs, example=25)
    warmup = check_int("pdarts.warmup_epochs", config.warmup_epochs, minimum=0, maximum=stage_epochs - 1,
                       example=min(10, stage_epochs - 1))
    max_skip = None if config.max_skip is None else check_int("pdarts.max_skip", config.max_skip, minimum=0, example=2)
    ops = config.ops if config.ops is not None else defaults.get("ops")
    if ops is not None:
        ops = _int_tuple("pdarts.ops", ops, stages, 1, "(8, 5, 3)")
    return PDARTSConfig(depths=depths, ops=ops, skip_dropout=rates, stage_epochs=stage_epochs,
                        warmup_epochs=warmup, max_skip=max_skip)


def _resolve_pdarts_ops(config: PDARTSConfig, num_ops: int, cell_with_edge_choice: bool) -> PDARTSConfig:
    """ops per stage: the first is every op of an edge; then no more than the stage before (and, in
    a DARTS cell, at least 2, so that each edge keeps an op other than 'none' to be derived with)."""
    ops = config.ops
    if ops is None or ops[0] != num_ops:
        example = (num_ops,) + tuple(max(1, num_ops - 3 * s) for s in range(1, len(config.depths)))
        raise InvalidValueError(f"pdarts.ops={ops}: the first stage keeps all {num_ops} ops of an edge and each "
                                f"later stage at most as many as the one before; e.g. ops={example}")
    if any(b > a for a, b in zip(ops, ops[1:])):
        raise InvalidValueError(f"pdarts.ops={ops} grows from one stage to the next; stages only drop ops, "
                                f"e.g. ops={tuple(sorted(ops, reverse=True))}")
    if cell_with_edge_choice and min(ops) < 2:
        raise InvalidValueError(f"pdarts.ops={ops}: a DARTS cell derives each edge's strongest op other than "
                                f"'none', so every stage keeps at least 2 ops per edge; "
                                f"e.g. ops={tuple(max(2, k) for k in ops)}")
    return dataclasses.replace(config, ops=ops)
