"""ProxylessNAS: direct architecture search on the target task and hardware (Cai, Zhu & Han, ICLR 2019).

"Proxyless" means no proxy task: no smaller data set, no shallower network, no FLOPs for latency.
DARTS runs every candidate op of every edge (all paths in memory), which is why it searches on a
small proxy; ProxylessNAS keeps the full supernet of a MobileNetSpace (spaces/mobilenet_supernet.py)
but *binarises the paths*: with p = softmax(α) per layer, a binary gate g (one-hot) picks ONE block
per layer (Sec. 3.1, eq. 3), so a step costs the memory of one sub-network. Each `step()`:

1. α step (val batch), after `warmup_steps`: per layer sample TWO ops from p (without replacement;
   the paper's memory-saving trick, Sec. 3.2.1), rescale their α to q = softmax(α_a, α_b), pick the
   active one a from q (g_a = 1, g_b = 0), run the gated network (the inactive block without
   autograd) and take the BinaryConnect gradient (Sec. 3.2.1, after Courbariaux et al., 2015):

       ∂L/∂α_i = Σ_j ∂L/∂g_j · q_j (δ_ij − q_i) = q_i (∂L/∂g_i − Σ_j q_j ∂L/∂g_j)    (i, j ∈ {a, b})

   then one Adam step on α_a, α_b (the other α are put back as they were), then shift α_a and α_b
   by the same offset so that exp(α_a) + exp(α_b) is what it was: every other op's probability
   is unchanged (the authors' `rescale_updated_arch_param`).
2. weight step (train batch): sample one op per layer from p, run and train only those blocks
   (the others get no gradient, not even weight decay: the authors set their grads to None).

The α step comes first, as in this library's DARTS: every check that can stop a step (a NaN loss
or gradient) then comes before the weight update, so undoing a diverged step needs no copy of the
weights. The authors train w first in each iteration; after the first step the alternation is the
same, and `warmup_steps` trains w alone first, as their 40 warm-up epochs do.

Latency (Sec. 3.3): with a `LatencyTable` (nasnb/latency.py) of the target device, a network's
latency is predicted as fixed + Σ_layers lat(op, shape), so its expectation under p is

       E[latency] = fixed + Σ_layers Σ_i p_i · lat_i       (Zero costs 0),  differentiable in α,

and the α step minimises the paper's additive loss (eq. 4, the code's 'add#linear')

       L = CE + latency_weight · E[latency] / latency_reference

(λ = latency_weight is unitless: the latency is relative to `latency_reference`, by default
E[latency] under uniform p). As in the authors' code, the α step's E[latency] is taken over the
two sampled paths with their rescaled probabilities q, so that it too moves only α_a, α_b; the
recorded `expected_latency_ms` is the full one, over p.

Where this departs from the authors' code: when Zero is the active path, their block returns x and
skips the α update of that layer; here the layer still outputs g_a·x + g_b·o_b(x) and its α are
updated by the same formula (∂L/∂g_b = <∂L/∂out, o_b(x)> is informative). One α update per weight
step (theirs: one every 5), plain cross-entropy (theirs: label smoothing 0.1). Their default
binary mode is 'full_v2' (every path in the α step's backward, without autograd); this is 'two'.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time

import torch
import torch.nn.functional as F

from nasnb.checks import check_float, check_positive_float, short
from nasnb.errors import InvalidTypeError, InvalidValueError, TrainingDivergedError
from nasnb.history import Step
from nasnb.spaces.mobilenet import MobileNetSpace
from nasnb.spaces.mobilenet_network import ZERO
from nasnb.spaces.mobilenet_supernet import CELL, MobileNetSupernet, binary_connect_gradient, rescale_pair
from nasnb.strategies.oneshot import OneShotSearch


# ------------------------------------------------------------------------- latency and snapshots

def latency_matrix(table, net: MobileNetSupernet) -> torch.Tensor:
    """(num_layers, num_ops) seconds: each layer's table entry for each of its ops (Zero and absent ops 0).
    Refuses a table of another layout, or one that lacks an op the supernet has."""
    from nasnb.latency import LatencyTable

    if not isinstance(table, LatencyTable):
        raise InvalidTypeError(f"latency_table must be a nasnb.latency.LatencyTable, got {short(table)}; "
                               f"e.g. latency_table=LatencyTable.measure(space)")
    space = net.space
    if len(table.layers) != len(space.layers):
        raise InvalidValueError(f"latency_table has {len(table.layers)} layers, the space {len(space.layers)}; "
                                f"measure one for this space: LatencyTable.measure(space)")
    seconds = torch.zeros(net.available.shape, dtype=torch.float64)
    for row, (layer, shape) in enumerate(zip(space.layers, table.layers)):
        if tuple(shape[:3]) != (layer.in_channels, layer.out_channels, layer.stride):
            raise InvalidValueError(f"latency_table's layer {row} maps {shape[0]}->{shape[1]} channels at stride "
                                    f"{shape[2]}, the space's {layer.name} {layer.in_channels}->{layer.out_channels} "
                                    f"at stride {layer.stride}; measure a table of this space")
        for op in layer.options:
            if op != ZERO:
                key = (op, *shape)
                if key not in table.entries:
                    raise InvalidValueError(f"latency_table has no entry for {op} in layer {row} {short(key)}; "
                                            f"measure a table of this space: LatencyTable.measure(space)")
                seconds[row, net.op_names.index(op)] = table.entries[key]
    return seconds


def expected_latency(probs: torch.Tensor, seconds: torch.Tensor, fixed: float = 0.0) -> torch.Tensor:
    """E[latency] = fixed + Σ_layers Σ_i p_i · lat_i (seconds), differentiable in p (and so in α)."""
    return fixed + (probs * seconds.to(probs)).sum()


def clone_tree(value):
    """A copy of nested dicts, lists and tuples whose tensors are cloned (other leaves are shared:
    they are numbers and strings). What copy.deepcopy makes of a state dict, at a fraction of its cost."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: clone_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(clone_tree(v) for v in value)
    return value


# ------------------------------------------------------------------------- the search

class ProxylessNAS(OneShotSearch):
    """ProxylessNAS with path binarisation and two-path BinaryConnect α updates (module docstring).

    Defaults are the authors' (search/imagenet_arch_search.py, ImageNet): weights by SGD with
    Nesterov momentum 0.9, lr 0.025 (cosine over schedule_steps, to w_lr_min), weight decay 4e-5;
    α initialised N(0, 1e-3), by Adam lr 1e-3, betas (0, 0.999), no weight decay. They warm the
    weights up for 40 epochs before α moves (here `warmup_steps`, 0 by default).

    Args:
        space: a MobileNetSpace.
        data: a nasnb.data.TensorData; w trains on `data.train`, α on `data.val`.
        latency_table: a LatencyTable of this space on the target device (None: no latency term).
        latency_weight: λ of the latency loss (needs a table); 0 searches for accuracy alone.
        latency_reference: seconds E[latency] is divided by (None: E[latency] under uniform p).
        grad_clip: the largest norm of w's gradient (None: no clipping, as the authors).

    Every `Step` records train_loss / train_accuracy (the weight step's sampled sub-network),
    val_loss / val_accuracy (the α step's active sub-network, before the update), entropy (mean
    per layer of p), w_lr and, with a table, expected_latency_ms (over p, after the step),
    derived_latency_ms and latency_loss; info: "alphas" ({"chain": p per layer}), "derived", the
    "sampled" sub-network of the weight step and the α step's "active" and "inactive" ops.
    """

    space_names = ("mobilenet",)  # the registry names of the spaces it searches (the CLI checks --space)
    panels = ("alphas", "progress")  # p per layer (the alphas view reads info["alphas"]); the metrics

    def __init__(self, space, data, latency_table=None, *, latency_weight: float = 0.0,
                 latency_reference: float | None = None, batch_size: int = 64, w_lr: float = 0.025,
                 w_lr_min: float = 0.0, schedule_steps: int | None = None, w_momentum: float = 0.9,
                 w_weight_decay: float = 4e-5, grad_clip: float | None = None, alpha_lr: float = 1e-3,
                 alpha_betas: tuple = (0.0, 0.999), alpha_weight_decay: float = 0.0, warmup_steps: int = 0,
                 device="auto", metric: str = "val_accuracy", seed: int = 0):
        super().__init__(space, metric=metric, seed=seed)
        if not isinstance(space, MobileNetSpace):
            raise InvalidTypeError(f"ProxylessNAS searches a chain of blocks: space must be a MobileNetSpace, got "
                                   f"{short(space)}; e.g. ProxylessNAS(MobileNetSpace(), data)")
        self._check_data(data, trains="a supernet")
        self.batch_size = self._check_batch_size(batch_size, data)
        self.latency_weight = check_float("latency_weight", latency_weight, minimum=0.0, example=0.1)
        if self.latency_weight > 0 and latency_table is None:
            raise InvalidValueError(f"latency_weight={self.latency_weight:g} needs a latency_table; e.g. "
                                    f"ProxylessNAS(space, data, LatencyTable.measure(space), latency_weight=0.1)")
        self._set_optimisers(w_lr=w_lr, w_lr_min=w_lr_min, schedule_steps=schedule_steps, w_momentum=w_momentum,
                             w_weight_decay=w_weight_decay, grad_clip=grad_clip, alpha_lr=alpha_lr,
                             alpha_betas=alpha_betas, alpha_weight_decay=alpha_weight_decay, warmup_steps=warmup_steps,
                             paper=dict(w_lr_min=0.0, w_weight_decay=4e-5, alpha_lr=1e-3, alpha_betas=(0.0, 0.999),
                                        alpha_weight_decay=0.0))
        self._use_data(data, device)
        with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's RNG alone
            torch.manual_seed(self.seed)
            net = MobileNetSupernet(space, num_classes=self.data.num_classes, in_channels=self.data.in_channels)
        self.net = net.to(self.device).train()  # train mode throughout: BatchNorm uses batch statistics
        self.latency_table = latency_table
        self.seconds = None if latency_table is None else latency_matrix(latency_table, self.net).to(self.device)
        if latency_reference is None:
            self.latency_reference = None if latency_table is None else float(self._uniform_latency())
        else:
            self.latency_reference = check_positive_float("latency_reference", latency_reference, example=0.001)
        self.w_optimizer = torch.optim.SGD(self.net.weight_parameters(), lr=self.w_lr, momentum=self.w_momentum,
                                           nesterov=self.w_momentum > 0, weight_decay=self.w_weight_decay)
        self.alpha_optimizer = torch.optim.Adam(self.net.arch_parameters(), lr=self.alpha_lr, betas=self.alpha_betas,
                                                weight_decay=self.alpha_weight_decay)
        self.history.meta.update(op_names=list(self.net.op_names),
                                 edge_names={CELL: [layer.name for layer in space.layers]})

    def _uniform_latency(self) -> torch.Tensor:
        available = self.net.available.to(self.device)
        uniform = available / available.sum(dim=-1, keepdim=True)
        return expected_latency(uniform.double(), self.seconds, self.latency_table.fixed)

    # ---------------------------------------------------------------- sampling paths

    def _probs(self) -> torch.Tensor:
        """p = softmax(α) per layer, on the CPU (the search's generator draws there)."""
        with torch.no_grad():
            return self.net.mixing_weights()[CELL].detach().cpu()

    def sample_paths(self) -> list[int]:
        """One op (α column) per layer, drawn from p: the weight step's sub-network."""
        return [int(torch.multinomial(row, 1, generator=self.torch_generator)) for row in self._probs()]

    def sample_pairs(self) -> tuple[list[int], list[int | None]]:
        """Per layer two ops drawn from p without replacement, then the active one of them from
        q = softmax(α_a, α_b); returns (active, inactive) columns (inactive None for a one-option layer)."""
        alpha = self.net.alpha[CELL].detach().cpu()
        active, inactive = [], []
        for row, p in zip(alpha, self._probs()):
            if int((p > 0).sum()) < 2:
                active.append(int(p.argmax()))
                inactive.append(None)
                continue
            pair = torch.multinomial(p, 2, replacement=False, generator=self.torch_generator)
            q = F.softmax(row[pair], dim=0)
            c = int(torch.multinomial(q, 1, generator=self.torch_generator))
            active.append(int(pair[c]))
            inactive.append(int(pair[1 - c]))
        return active, inactive

    # ---------------------------------------------------------------- one step

    def step(self) -> Step:
        """One α step (two paths per layer; not in warm-up) then one weight step (one sampled path
        per layer), recorded as a Step (class docstring). A NaN or infinite loss or gradient
        raises TrainingDivergedError and leaves the search as it was; nothing is recorded."""
        start = time.perf_counter()
        step = len(self.history)
        with self._undone_if_diverged():
            metrics, info = self._update(step)
        derived = self.net.derived()
        info = {"alphas": self.net.alphas(), "derived": self.space.format(derived), **info}
        if self.warmup_steps:
            info["warmup"] = step < self.warmup_steps
        with torch.no_grad():
            p = self.net.mixing_weights()[CELL]
            entropy = -(p * torch.log(p.clamp_min(1e-30))).sum(dim=-1).mean()
            metrics["entropy"] = float(entropy)
            if self.seconds is not None:
                metrics["expected_latency_ms"] = 1e3 * float(expected_latency(p.double(), self.seconds,
                                                                              self.latency_table.fixed))
                metrics["derived_latency_ms"] = 1e3 * self.latency_table.predict(derived)
        return self._record(Step(step, metrics, seconds=time.perf_counter() - start, info=info,
                                 arch=info["derived"]))

    def _update(self, step: int) -> tuple[dict, dict]:
        # 1. α step: two paths per layer, BinaryConnect gradient, rescale
        active, inactive = self.sample_pairs()
        x, y = self._next_batch("val")
        val_loss, val_logits, latency_loss = self._alpha_step(x, y, active, inactive, step >= self.warmup_steps)
        metrics = {"val_loss": float(val_loss), "val_accuracy": float((val_logits.argmax(1) == y).float().mean())}
        if latency_loss is not None:
            metrics["latency_loss"] = latency_loss

        # 2. weight step: one path per layer, only its blocks train
        lr = self.current_w_lr()
        for group in self.w_optimizer.param_groups:
            group["lr"] = lr
        sampled = self.sample_paths()
        x, y = self._next_batch("train")
        logits = self.net(x, ops=sampled)  # (B, num_classes)
        train_loss = F.cross_entropy(logits, y)
        self._check_finite("training loss", train_loss)
        weights = self.net.weight_parameters()
        self.w_optimizer.zero_grad(set_to_none=True)  # unsampled blocks keep grad None: SGD skips them
        train_loss.backward(inputs=weights)
        norm = torch.nn.utils.clip_grad_norm_(weights, self.grad_clip if self.grad_clip is not None else math.inf)
        self._check_finite("weight gradient", norm)
        self.w_optimizer.step()
        self.w_optimizer.zero_grad(set_to_none=True)  # spent: free them before the next step's α step
        metrics.update(train_loss=float(train_loss.detach()),
                       train_accuracy=float((logits.argmax(1) == y).float().mean()), w_lr=lr)
        info = {"active": self.space.format(self.net.ops_to_arch(active)),
                "inactive": [None if c is None else self.net.op_names[c] for c in inactive],
                "sampled": self.space.format(self.net.ops_to_arch(sampled))}
        return metrics, info

    def _alpha_step(self, x, y, active: list, inactive: list, update: bool):
        """The gated forward on the val batch and, when `update`, one α update (module docstring).
        Returns (CE, logits, the latency term or None)."""
        alpha = self.net.alpha[CELL]
        rows = torch.arange(len(active))
        paths = torch.zeros(alpha.shape, dtype=torch.bool)
        paths[rows, torch.tensor(active)] = True
        for row, column in enumerate(inactive):
            if column is not None:
                paths[row, column] = True
        paths = paths.to(alpha.device)
        gates = torch.zeros(alpha.shape, device=alpha.device)
        gates[rows, torch.tensor(active)] = 1.0  # g = one-hot at the active op: the value is o_a(x)
        gates.requires_grad_(update)
        with torch.set_grad_enabled(update):
            logits = self.net(x, ops=active, gates=gates, others=inactive)
            loss = F.cross_entropy(logits, y)
        self._check_finite("validation loss", loss.detach())
        latency_loss = None
        if self.seconds is not None:  # E over the two paths, with q = softmax(α_a, α_b)
            q = F.softmax(alpha.masked_fill(~paths, float("-inf")), dim=-1)
            pair_latency = expected_latency(q.double(), self.seconds, self.latency_table.fixed)
            latency_term = self.latency_weight * pair_latency / self.latency_reference
            latency_loss = float(latency_term.detach())
        if update:
            (gate_grads,) = torch.autograd.grad(loss, [gates])  # ∂L/∂g_j = <∂L/∂out, o_j(x)> per layer
            grad = binary_connect_gradient(gate_grads, alpha.detach(), paths)
            if self.seconds is not None and self.latency_weight > 0:
                (latency_grad,) = torch.autograd.grad(latency_term, [alpha])  # exact: E is smooth in α
                grad = grad + latency_grad.to(grad.dtype)
            self._check_finite("α gradient", grad.norm())
            before = alpha.detach().clone()
            alpha.grad = grad
            self.alpha_optimizer.step()
            self.alpha_optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():  # only the two sampled α move; then their total weight is put back
                alpha.copy_(rescale_pair(torch.where(paths, alpha, before), before, paths))
        return loss.detach(), logits.detach(), latency_loss

    @contextlib.contextmanager
    def _undone_if_diverged(self):
        """OneShotSearch's promise: on a TrainingDivergedError the search is put back as it was
        before the step, and nothing is recorded. Every check comes before the weight update, so
        the snapshot holds only what may have changed by then: α and its optimiser, BatchNorm's
        statistics and the streams (no copy of the weights: it costs no sub-network's memory)."""
        before = clone_tree({"alpha": self.net.alpha[CELL], "alpha_optimizer": self.alpha_optimizer.state_dict(),
                             "buffers": dict(self.net.named_buffers()), "streams": self._streams_state()})
        generator = self.torch_generator.get_state()
        try:
            yield
        except TrainingDivergedError:
            with torch.no_grad():
                self.net.alpha[CELL].copy_(before["alpha"])
                for name, buffer in self.net.named_buffers():
                    buffer.copy_(before["buffers"][name])
            self.alpha_optimizer.load_state_dict(before["alpha_optimizer"])
            self._load_streams(before["streams"])
            self.torch_generator.set_state(generator)
            raise

    def _lower_learning_rates(self) -> str:
        return (f"the learning rates are probably too high for this supernet; try e.g. w_lr={self.w_lr / 10:g} "
                f"or alpha_lr={self.alpha_lr / 10:g} (a tenth), or grad_clip=5")

    # ---------------------------------------------------------------- what views and checkpoints read

    def derived(self) -> tuple:
        """The discretised architecture: the most likely op of each layer (a MobileNetSpace arch)."""
        return self.net.derived()

    def expected_latency(self) -> float | None:
        """E[latency] in seconds under p = softmax(α), from the table (None without one)."""
        if self.seconds is None:
            return None
        with torch.no_grad():
            p = self.net.mixing_weights()[CELL].double()
            return float(expected_latency(p, self.seconds, self.latency_table.fixed))

    def state(self) -> dict:
        return {**super().state(), "alphas": self.net.alphas(), "derived": self.space.format(self.derived()),
                "expected_latency": self.expected_latency()}

    def settings(self) -> dict:
        # The device is left out: a run continued on another device is the same run.
        table = None
        if self.latency_table is not None:
            text = json.dumps(self.latency_table.to_dict(), sort_keys=True)
            table = hashlib.sha256(text.encode()).hexdigest()[:16]
        return {**super().settings(), "latency_table": table, "latency_weight": self.latency_weight,
                "latency_reference": self.latency_reference, "batch_size": self.batch_size, "w_lr": self.w_lr,
                "w_lr_min": self.w_lr_min, "schedule_steps": self.schedule_steps, "w_momentum": self.w_momentum,
                "w_weight_decay": self.w_weight_decay, "grad_clip": self.grad_clip, "alpha_lr": self.alpha_lr,
                "alpha_betas": list(self.alpha_betas), "alpha_weight_decay": self.alpha_weight_decay,
                "warmup_steps": self.warmup_steps, "data": self.data_settings}

    def _extra_state(self) -> dict:
        return {"net": self.net.state_dict(), "w_optimizer": self.w_optimizer.state_dict(),
                "alpha_optimizer": self.alpha_optimizer.state_dict(), "streams": self._streams_state()}

    def _load_extra_state(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self._load_streams(state["streams"])
