"""The successors of DARTS: what each one changes, and the parts of them that darts.py switches on.

DARTS (Liu, Simonyan & Yang, ICLR 2019; darts.py) puts every op on every edge of a supernet, mixes
them with the weights softmax(α), trains α and the weights w by alternating gradient steps, and at
the end keeps each edge's strongest op. Its successors keep that loop and change one part of it
each, to fix what went wrong in practice: the supernet is memory-hungry, the mixture is not the
network that is finally derived, and the search comes to prefer parameter-free skip connections.
In nasnb each successor is a switch of the one `DARTS` class; this module holds their machinery.

PC-DARTS (Xu et al., "PC-DARTS: Partial Channel Connections for Memory-Efficient Architecture
Search", ICLR 2020). Running all ops on all C channels costs memory: only small batches fit. So
each mixed op sees only C/K of the channels and the rest bypass it (a channel shuffle mixes the
two); that saves K times the memory. Because the edge choice gets noisier with fewer channels,
node inputs are also weighted by an *edge normalisation* β, node i adds softmax(β_i)_j · edge_ij,
β is trained with α, and the derived cell ranks edges by softmax(α) · softmax(β). α waits for a
warm-up in which only w trains. Switches: `DARTS(partial_channels=K, warmup_steps=N)`; the
channels and β are the supernet's (spaces/supernet.py, spaces/darts_supernet.py), so nothing of
PC-DARTS is needed here beyond the skip cap's use of β (`derive_with_skip_cap`).

GDAS (Dong & Yang, "Searching for a Robust Neural Architecture in Four GPU Hours", CVPR 2019).
Instead of running the softmax(α) mixture, each step *samples* one op per edge with the Gumbel-max
trick and runs only that sub-network, so training sees the kind of network that is derived and a
step costs one op per edge. The sample is made differentiable with a straight-through hard
Gumbel-softmax whose temperature τ falls linearly over the search (`gumbel_hard_weights`,
`linear_tau`, `GDASConfig`). Switch: `DARTS(gumbel=True, order=1)`.

P-DARTS (Chen et al., "Progressive Differentiable Architecture Search: Bridging the Depth Gap
between Search and Evaluation", ICCV 2019). DARTS searches in a shallow network (8 cells) and
evaluates a deep one (20): the *depth gap*. P-DARTS searches in stages of growing depth (5, 11, 17
cells) and, to pay for the depth, drops each edge's weakest ops between stages (8, 5, 3 ops kept;
`keep_top_ops`). Against the drift to skip connections it adds dropout after them, decayed within
each stage (`pdarts_skip_dropout`), and caps the derived normal cell at M = 2 skip connections
(`cap_skip_connections`, `derive_with_skip_cap`; usable alone as `DARTS(max_skip=M)`). Switch:
`DARTS(pdarts=True)` or a `PDARTSConfig`.

The option checks at the end turn DARTS' `gumbel=`, `pdarts=` and `max_skip=` arguments into
checked settings, with messages that say what to pass instead. This module imports nothing from
darts.py (darts.py imports it).
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Callable

import torch
import torch.nn.functional as F

from nasnb.checks import check_float, check_int, check_positive_float, check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.genotypes import Genotype


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


# ------------------------------------------------------------------------- option checks

def as_config(name: str, value, cls, example: str):
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


def depth_argument(space) -> str:
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


def check_pdarts(pdarts, space) -> PDARTSConfig | None:
    """The P-DARTS settings with the space's depths filled in and every field checked (ops: later,
    once the supernet says how many ops an edge has)."""
    config = as_config("pdarts", pdarts, PDARTSConfig, "pdarts=PDARTSConfig(depths=(5, 11, 17), ops=(8, 5, 3))")
    if config is None:
        return None
    defaults = PDARTS_DEFAULTS.get(getattr(space, "name", None), {})
    depths = config.depths if config.depths is not None else defaults.get("depths")
    if depths is None:
        raise InvalidValueError(f"pdarts needs depths for {type(space).__name__}: e.g. "
                                "pdarts=PDARTSConfig(depths=(5, 11, 17), ops=(8, 5, 3))")
    depth_argument(space)
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


def resolve_pdarts_ops(config: PDARTSConfig, num_ops: int, cell_with_edge_choice: bool) -> PDARTSConfig:
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


def check_gumbel(gumbel, *, order: int, schedule_steps: int | None, pdarts, partial_channels: int) -> GDASConfig | None:
    """DARTS' `gumbel=` as a checked GDASConfig (None: off), its steps defaulting to `schedule_steps`;
    `order`, `pdarts` and `partial_channels` are the search's other settings, which GDAS constrains."""
    config = as_config("gumbel", gumbel, GDASConfig, "gumbel=GDASConfig(tau_max=10.0, tau_min=0.1)")
    if config is None:
        return None
    tau_max = check_positive_float("gumbel.tau_max", config.tau_max, example=10.0)
    tau_min = check_float("gumbel.tau_min", config.tau_min, minimum=0.0, exclusive_minimum=True,
                          maximum=tau_max, example=min(0.1, tau_max))
    steps = config.steps if config.steps is not None else schedule_steps
    if steps is None:
        raise InvalidValueError("gumbel anneals τ over the search: give schedule_steps=... (the length of the "
                                "search, e.g. epochs · len(train) // batch_size) or gumbel=GDASConfig(steps=...)")
    steps = check_int("gumbel.steps", steps, minimum=2, example=1000)
    if order != 1:
        raise InvalidValueError(f"gumbel with order={order}: GDAS updates α with the first-order gradient "
                                "of the sampled network; use order=1")
    if pdarts is not None:
        raise InvalidValueError("gumbel and pdarts are two different searches; choose one")
    if partial_channels != 1:
        raise InvalidValueError(f"gumbel with partial_channels={partial_channels}: GDAS "
                                "runs one op per edge, so partial channels save nothing (and β takes no part "
                                "in a sampled sub-network); leave partial_channels out")
    return GDASConfig(tau_max=tau_max, tau_min=tau_min, steps=steps)


def check_max_skip(max_skip, pdarts: PDARTSConfig | None, op_names) -> int | None:
    """DARTS' `max_skip=` checked (None: no cap); with pdarts, PDARTSConfig.max_skip unless given.
    `op_names`: the supernet's ops, which must include skip_connect for a cap."""
    if max_skip is not None:
        max_skip = check_int("max_skip", max_skip, minimum=0, example=2)
        if pdarts is not None and pdarts.max_skip not in (None, max_skip):
            raise InvalidValueError(f"max_skip={max_skip}, but pdarts sets max_skip={pdarts.max_skip}; "
                                    "give it once (e.g. PDARTSConfig(max_skip=...))")
    elif pdarts is not None:
        max_skip = pdarts.max_skip
    if max_skip is not None and "skip_connect" not in op_names:
        raise InvalidValueError(f"max_skip={max_skip}, but this supernet's ops {list(op_names)} have no "
                                "skip_connect; leave max_skip out")
    return max_skip
