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

The successors of DARTS are switches of the same class (class docstring for their defaults); what
each one changes, and its machinery, is in darts_variants.py:

* `warmup_steps=N`: α stays as it is for the first N steps while w trains (PC-DARTS, P-DARTS).
* `partial_channels=K`: PC-DARTS (Xu et al., ICLR 2020), partial channels and edge normalisation β.
* `gumbel=True`: GDAS (Dong & Yang, CVPR 2019), one op per edge sampled by hard Gumbel-softmax.
* `pdarts=True`: P-DARTS (Chen et al., ICCV 2019), stages of growing depth with fewer ops per edge,
  skip-connect dropout and a cap on skip connections (also usable alone as `max_skip=M`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call

import numpy as np

from nasnb.checks import check_int, check_positive_float, check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.history import Step
from nasnb.strategies.darts_variants import (GDASConfig, PDARTSConfig, check_gumbel, check_max_skip, check_pdarts,
                                             depth_argument, derive_with_skip_cap, gumbel_hard_weights, keep_top_ops,
                                             linear_tau, pdarts_skip_dropout, resolve_pdarts_ops)
# Not used here, re-exported so that nasnb.strategies.darts.<name> (e.g. in notebooks) still works:
from nasnb.strategies.darts_variants import (DROPOUT_DECAY, PDARTS_DEFAULTS, cap_skip_connections,  # noqa: F401
                                             darts_cell, strongest_ops)
# SMALL_SUPERNETS is re-exported too: nasnb.strategies.darts.SMALL_SUPERNETS still works.
from nasnb.strategies.oneshot import SMALL_SUPERNETS, OneShotSearch, cosine_learning_rate  # noqa: F401

FINITE_DIFFERENCE_SCALE = 0.01  # eq. 8's ε = 0.01 / ‖v‖, "sufficient in all of our experiments"


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
    """∇_α L_val(w, α): DARTS' first-order approximation (ξ = 0). One tensor per arch parameter.
    The weights enter detached, so that no op computes a weight gradient nobody asked for (a custom
    autograd Function sees only which of its inputs require a gradient)."""
    alphas = net.arch_parameters()
    arch_ids = {id(a) for a in alphas}
    detached = {name: p.detach() for name, p in net.named_parameters() if id(p) not in arch_ids}
    loss, _ = loss_at(net, detached, val_batch)
    return gradients(loss, alphas)


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

    # eq. 6: w' = one SGD step on the training batch (from the current w and α; α detached: only
    # the weight gradient is needed)
    train_loss, _ = loss_at(net, {name: p.detach() for name, p in net.named_parameters() if id(p) in arch_ids},
                            train_batch)
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


# ------------------------------------------------------------------------- the search

class DARTS(OneShotSearch):
    """DARTS (Liu, Simonyan & Yang, ICLR 2019, Algorithm 1): alternate an α step and a w step.

    Each `step()` draws a training and a validation batch, updates α on the validation batch
    (first- or second-order gradient, module docstring), then w on the training batch, in the
    order of the authors' code (`architect.step` before the weight step), and records one `Step`.

    The data, the supernet's arguments, the batch streams, w's cosine schedule and the divergence
    checks are every one-shot search's (OneShotSearch, strategies/oneshot.py).

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
        self._check_data(data, trains="a supernet")
        self.order = check_int("order", order, minimum=1, maximum=2, example=2)
        self.batch_size = self._check_batch_size(batch_size, data)
        self.steps_per_epoch = len(data.train[1]) // self.batch_size  # the batch stream drops the last partial one
        self._set_optimisers(w_lr=w_lr, w_lr_min=w_lr_min, schedule_steps=schedule_steps, w_momentum=w_momentum,
                             w_weight_decay=w_weight_decay, grad_clip=grad_clip, alpha_lr=alpha_lr,
                             alpha_betas=alpha_betas, alpha_weight_decay=alpha_weight_decay, warmup_steps=warmup_steps,
                             paper=dict(w_lr_min=0.001, w_weight_decay=3e-4, alpha_lr=3e-4, alpha_betas=(0.5, 0.999),
                                        alpha_weight_decay=1e-3))
        self.alpha_grad_clip = (None if alpha_grad_clip is None
                                else check_positive_float("alpha_grad_clip", alpha_grad_clip, example=5.0))
        self._use_data(data, device)
        self.pdarts: PDARTSConfig | None = check_pdarts(pdarts, space)
        self.supernet_kwargs = self._supernet_kwargs(supernet_kwargs, partial_channels)
        self.partial_channels = self.supernet_kwargs.get("partial_channels", 1)
        self.gumbel: GDASConfig | None = check_gumbel(gumbel, order=self.order, schedule_steps=self.schedule_steps,
                                                      pdarts=self.pdarts, partial_channels=self.partial_channels)
        self.stage, self.net = 0, None
        self._build(0, None)
        self.history.meta["op_names"] = list(self.net.op_names)  # α's columns, for the alphas view
        if self.pdarts is not None:
            self.pdarts = resolve_pdarts_ops(self.pdarts, len(self.net.op_names), "none" in self.net.op_names
                                             and tuple(self.net.cell_names) != ("cell",))
            if self.warmup_steps:
                raise InvalidValueError(f"warmup_steps={self.warmup_steps}, but P-DARTS warms up at the start of "
                                        f"each stage: leave warmup_steps at 0 and set "
                                        f"PDARTSConfig(warmup_epochs={self.pdarts.warmup_epochs})")
        self.max_skip = check_max_skip(max_skip, self.pdarts, self.net.op_names)

    def _supernet_kwargs(self, supernet_kwargs, partial_channels) -> dict:
        """Every one-shot search's (OneShotSearch._resolve_supernet_kwargs), with PC-DARTS' K; P-DARTS
        sets each stage's depth and op mask itself, so supernet_kwargs may not."""
        default = supernet_kwargs is None
        kwargs = self._resolve_supernet_kwargs(supernet_kwargs)
        if partial_channels is not None:
            K = check_positive_int("partial_channels", partial_channels, example=4)
            if kwargs.setdefault("partial_channels", K) != K:
                raise InvalidValueError(f"partial_channels={K}, but supernet_kwargs sets partial_channels="
                                        f"{short(kwargs['partial_channels'])}; give it once")
        if self.pdarts is not None:
            depth = depth_argument(self.space)
            for name in (depth, "keep"):
                if name in kwargs and not (default and name == depth):
                    raise InvalidValueError(f"supernet_kwargs sets {name}=..., but P-DARTS sets each stage's "
                                            f"{'depth (PDARTSConfig(depths=...))' if name == depth else 'op mask'}; "
                                            f"leave {name} out of supernet_kwargs")
            kwargs.pop(depth, None)
        return kwargs

    def _build(self, stage: int, keep: dict | None) -> None:
        """The supernet of `stage` (P-DARTS: its depth, and `keep`, the ops each edge kept), with
        fresh weights, α and optimisers, seeded by (seed, stage) without touching the global RNG."""
        kwargs = dict(self.supernet_kwargs)
        if self.pdarts is not None:
            kwargs[depth_argument(self.space)] = self.pdarts.depths[stage]
            if keep is not None:
                kwargs["keep"] = keep
        seed = self.seed if stage == 0 else int(np.random.SeedSequence([self.seed, stage]).generate_state(1)[0])
        self.stage, self.net = stage, self._seeded_supernet(kwargs, seed)
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
        """w's learning rate at this step (OneShotSearch.current_w_lr: a cosine over schedule_steps).
        P-DARTS: the cosine restarts at each stage and runs over the stage's steps."""
        if self.pdarts is None:
            return super().current_w_lr()
        period = self.pdarts.stage_epochs * self.steps_per_epoch
        return cosine_learning_rate(self._step_in_stage(len(self.history)), period, self.w_lr, self.w_lr_min)

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
        step = len(self.history)
        with self._undone_if_diverged(), self._dropout_rng():
            if self.stage_at(step) != self.stage:
                self._enter_stage(self.stage_at(step))
            metrics = self._update()
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
        # a bare "cuda" means the current CUDA device, which need not be cuda:0
        index = self.device.index if self.device.index is not None else (
            torch.cuda.current_device() if self.device.type == "cuda" else None)
        devices = [index] if self.device.type == "cuda" else []
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

    def _lower_learning_rates(self) -> str:
        return (f"the learning rates are probably too high for this supernet; try e.g. w_lr={self.w_lr / 10:g} "
                f"or alpha_lr={self.alpha_lr / 10:g} (a tenth), or a smaller grad_clip")

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
                "streams": self._streams_state()}

    def _load_extra_state(self, state: dict) -> None:
        stage, keep = int(state.get("stage", 0)), state.get("keep")
        same_keep = keep is None or all(torch.equal(keep[cell].cpu(), mask) for cell, mask in self.net.keep.items())
        if stage != self.stage or not same_keep:  # P-DARTS: that stage's supernet, then its weights
            self._build(stage, None if stage == 0 else keep)
        self.net.load_state_dict(state["net"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self._load_streams(state["streams"])
