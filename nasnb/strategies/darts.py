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
"""
from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call

from nasnb.checks import check_float, check_int, check_positive_float, check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError, TrainingDivergedError
from nasnb.history import Step
from nasnb.strategies.search import Search
from nasnb.train import check_data, pick_device

FINITE_DIFFERENCE_SCALE = 0.01  # eq. 8's ε = 0.01 / ‖v‖, "sufficient in all of our experiments"

# A small supernet per space, so that a step takes well under a second on a CPU with digits-sized
# data (the paper's search network is DartsSpace().supernet(C=16, layers=8) on CIFAR-10).
SMALL_SUPERNETS = {"nb201": {"C": 8, "N": 1}, "darts": {"C": 8, "layers": 5}}


# ------------------------------------------------------------------------- the α gradients

def loss_at(net, params: dict, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy, logits) of the supernet's relaxation on `batch`, with the tensors in
    `params` (name -> tensor, e.g. w' for every weight) in place of the net's own parameters."""
    x, y = batch
    logits = functional_call(net, params, (x,))  # (B, num_classes)
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
        device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", ...

    `state()["alphas"]` holds softmax(α) per cell type, per edge; `derived()` the discretised
    architecture. The supernet is initialised from `seed` without touching the global RNG; every
    batch is drawn from `self.torch_generator`.
    """

    panels = ("cell", "progress")

    def __init__(self, space, data, *, order: int = 2, supernet_kwargs: dict | None = None, batch_size: int = 64,
                 w_lr: float = 0.025, w_lr_min: float = 0.001, schedule_steps: int | None = None,
                 w_momentum: float = 0.9, w_weight_decay: float = 3e-4, grad_clip: float | None = 5.0,
                 alpha_lr: float = 3e-4, alpha_betas: tuple = (0.5, 0.999), alpha_weight_decay: float = 1e-3,
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
        self.device = pick_device(device)
        self.data = data.to(self.device)
        self.data_settings = {"name": data.name, "fingerprint": data.fingerprint(),
                              "train_size": len(data.train[1]), "val_size": len(data.val[1])}
        self.supernet_kwargs = self._supernet_kwargs(supernet_kwargs)
        with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's RNG alone
            torch.manual_seed(self.seed)
            try:
                net = space.supernet(**self.supernet_kwargs)
            except TypeError as err:
                raise InvalidValueError(f"supernet_kwargs={short(self.supernet_kwargs)} do not fit "
                                        f"{type(space).__name__}.supernet ({err})") from None
        self.net = net.to(self.device).train()  # train mode throughout: BatchNorm uses batch statistics
        self.w_optimizer = torch.optim.SGD(self.net.weight_parameters(), lr=self.w_lr, momentum=self.w_momentum,
                                           weight_decay=self.w_weight_decay)
        self.alpha_optimizer = torch.optim.Adam(self.net.arch_parameters(), lr=self.alpha_lr,
                                                betas=self.alpha_betas, weight_decay=self.alpha_weight_decay)
        # Where each split's endless shuffled stream is: this epoch's order and the next position.
        self.streams = {split: {"order": torch.zeros(0, dtype=torch.long), "position": 0}
                        for split in ("train", "val")}

    def _supernet_kwargs(self, supernet_kwargs) -> dict:
        if supernet_kwargs is None:
            supernet_kwargs = SMALL_SUPERNETS.get(getattr(self.space, "name", None), {})
        if not isinstance(supernet_kwargs, dict):
            raise InvalidTypeError(f"supernet_kwargs must be a dict (or None), got {short(supernet_kwargs)}; "
                                   "e.g. supernet_kwargs={'C': 8, 'N': 1}")
        kwargs = dict(supernet_kwargs)
        for name, value in (("num_classes", self.data.num_classes), ("in_channels", self.data.in_channels)):
            if kwargs.setdefault(name, value) != value:
                raise InvalidValueError(f"supernet_kwargs sets {name}={short(kwargs[name])}, but the data has "
                                        f"{value}; leave it out (it comes from the data)")
        return kwargs

    # ---------------------------------------------------------------- one step

    def current_w_lr(self) -> float:
        """w's learning rate at this step: cosine from w_lr to w_lr_min over schedule_steps
        (Loshchilov & Hutter, 2017, eq. 5), then w_lr_min; w_lr throughout when schedule_steps is None."""
        if self.schedule_steps is None:
            return self.w_lr
        t = min(len(self.history), self.schedule_steps)
        return self.w_lr_min + (self.w_lr - self.w_lr_min) / 2 * (1 + math.cos(math.pi * t / self.schedule_steps))

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
        pass (α already updated). A NaN or infinite loss or gradient raises TrainingDivergedError
        and leaves the search as it was before the step; nothing is recorded.
        """
        start = time.perf_counter()
        before = copy.deepcopy(self._extra_state()), self.torch_generator.get_state()
        try:
            metrics = self._update()
        except TrainingDivergedError:
            self._load_extra_state(before[0])
            self.torch_generator.set_state(before[1])
            raise
        alphas = self.net.alphas()
        derived = self.space.format(self.net.derived())
        return self._record(Step(len(self.history), metrics, seconds=time.perf_counter() - start,
                                 info={"alphas": alphas, "derived": derived}, arch=derived))

    def _update(self) -> dict:
        train_batch, val_batch = self._next_batch("train"), self._next_batch("val")
        xi = self.current_w_lr()
        for group in self.w_optimizer.param_groups:
            group["lr"] = xi

        # α step (Algorithm 1, line 1)
        with torch.no_grad():
            val_loss, val_logits = loss_at(self.net, {}, val_batch)
        self._check_finite("validation loss", val_loss)
        if self.order == 1:
            grads = first_order_alpha_gradient(self.net, val_batch)
        else:
            names = {id(p): name for name, p in self.net.named_parameters()}
            buffers = {names[id(p)]: s["momentum_buffer"] for p, s in self.w_optimizer.state.items()
                       if s.get("momentum_buffer") is not None}
            grads = unrolled_alpha_gradient(self.net, train_batch, val_batch, xi, momentum=self.w_momentum,
                                            momentum_buffers=buffers, weight_decay=self.w_weight_decay)
        self._check_finite("α gradient", torch.stack([g.norm() for g in grads]).sum())
        for alpha, g in zip(self.net.arch_parameters(), grads):
            alpha.grad = g
        self.alpha_optimizer.step()
        self.alpha_optimizer.zero_grad(set_to_none=True)

        # w step (Algorithm 1, line 2)
        weights = self.net.weight_parameters()
        train_loss, train_logits = loss_at(self.net, {}, train_batch)
        self._check_finite("training loss", train_loss)
        self.w_optimizer.zero_grad(set_to_none=True)
        train_loss.backward(inputs=weights)
        norm = torch.nn.utils.clip_grad_norm_(weights, self.grad_clip if self.grad_clip is not None else math.inf)
        self._check_finite("weight gradient", norm)
        self.w_optimizer.step()

        accuracy = lambda logits, batch: float((logits.argmax(1) == batch[1]).float().mean())  # noqa: E731
        return {"train_loss": float(train_loss.detach()), "train_accuracy": accuracy(train_logits, train_batch),
                "val_loss": float(val_loss), "val_accuracy": accuracy(val_logits, val_batch)}

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
        DARTS: a Genotype with the top-2 input edges per node)."""
        return self.net.derived()

    def state(self) -> dict:
        return {**super().state(), "alphas": self.net.alphas(), "derived": self.space.format(self.net.derived())}

    def settings(self) -> dict:
        # The device is left out: a run continued on another device is the same run.
        return {**super().settings(), "order": self.order, "supernet_kwargs": self.supernet_kwargs,
                "batch_size": self.batch_size, "w_lr": self.w_lr, "w_lr_min": self.w_lr_min,
                "schedule_steps": self.schedule_steps, "w_momentum": self.w_momentum,
                "w_weight_decay": self.w_weight_decay, "grad_clip": self.grad_clip, "alpha_lr": self.alpha_lr,
                "alpha_betas": list(self.alpha_betas), "alpha_weight_decay": self.alpha_weight_decay,
                "data": self.data_settings}

    def _extra_state(self) -> dict:
        return {"net": self.net.state_dict(), "w_optimizer": self.w_optimizer.state_dict(),
                "alpha_optimizer": self.alpha_optimizer.state_dict(),
                "streams": {split: {"order": s["order"].clone(), "position": s["position"]}
                            for split, s in self.streams.items()}}

    def _load_extra_state(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.streams = {split: {"order": s["order"].clone().cpu(), "position": int(s["position"])}
                        for split, s in state["streams"].items()}
