"""Gradient initialisation, evolutionary refinement: start regularized evolution where DARTS points.

A DARTS search (nasnb/strategies/darts.py) ends with a distribution over ops on every edge,
softmax(α). Its usual use is to keep the argmax, one cell; but the whole distribution says more:
which ops the supernet found useful on each edge, and how sure it is. Here it becomes the *start*
of an evolutionary search: the first population of `RegularizedEvolution` is drawn edge by edge
from softmax(α) instead of uniformly (``RegularizedEvolution(..., initial=alpha_sampler(darts))``),
and evolution refines from there with real (or tabulated) evaluations, which do not share DARTS'
biases (e.g. its taste for parameter-free ops). benchmarks/hybrid.py measures whether it helps on
the table, charging the DARTS search's seconds to the hybrid.

For an NB201 cell the probability of drawing a cell is a product over its 6 edges,

    P(cell) = prod_e softmax(α_e / T)[op_e]

with a temperature T (1: softmax(α) as DARTS trained it; larger: flatter, closer to uniform;
smaller: closer to the argmax cell). An op that a P-DARTS stage dropped has probability 0.
"""
from __future__ import annotations

import numpy as np

from nasnb.checks import check_positive_float, short
from nasnb.errors import InvalidTypeError, InvalidValueError

__all__ = ["AlphaSampler", "alpha_sampler"]


class AlphaSampler:
    """``sampler(rng) -> arch``: each edge's op drawn from its row of `probabilities` (edges x ops)."""

    def __init__(self, probabilities: np.ndarray, space):
        self.probabilities = probabilities
        self.space = space
        self._cumulative = np.cumsum(probabilities, axis=1)

    def __call__(self, rng: np.random.Generator):
        u = rng.random(len(self.probabilities))  # one uniform number per edge
        picks = [min(int(np.searchsorted(row, x, side="right")), len(row) - 1)
                 for row, x in zip(self._cumulative, u)]
        return self.space.from_choices([self.space.OPS[k] for k in picks])

    def settings(self) -> dict:
        """What a checkpoint records (a resume with other probabilities is refused)."""
        return {"sampler": "alpha", "probabilities": np.round(self.probabilities, 6).tolist()}

    def __repr__(self) -> str:
        return f"AlphaSampler({np.round(self.probabilities, 3).tolist()})"


def alpha_sampler(alphas_or_search, space=None, *, temperature: float = 1.0) -> AlphaSampler:
    """A sampler of NB201 cells that draws each edge's op from softmax(α / temperature).

    alphas_or_search: a DARTS search on NB201Space (its supernet's softmax(α) is taken), or α
        itself: the raw architecture weights (logits), shape (6 edges, 5 ops) in NB201's edge and
        op order, as an array, a nested list or a tensor.
    space: the NB201Space (default: a new one; DARTS' own space when a search is given).
    """
    from nasnb.spaces.nb201 import EDGES, OPS, NB201Space

    temperature = check_positive_float("temperature", temperature, example=1.0)
    if hasattr(alphas_or_search, "net") and callable(getattr(alphas_or_search, "state", None)):
        space = alphas_or_search.space if space is None else space
        weights = alphas_or_search.state()["alphas"]
        if not isinstance(weights, dict) or len(weights) != 1:
            raise InvalidValueError(f"alpha_sampler needs a search on NB201 cells (one cell type), got one with "
                                    f"cell types {list(weights) if isinstance(weights, dict) else short(weights)}")
        p = np.asarray(next(iter(weights.values())), dtype=float)  # softmax(α) per edge
        with np.errstate(divide="ignore"):
            logits = np.log(p)  # α up to a constant per edge; a dropped op (p = 0) stays at -inf
    else:
        try:
            if hasattr(alphas_or_search, "detach"):
                alphas_or_search = alphas_or_search.detach().cpu().numpy()
            logits = np.asarray(alphas_or_search, dtype=float)
        except (TypeError, ValueError):
            raise InvalidTypeError(f"alphas_or_search must be a DARTS search or α of shape (6, 5), got "
                                   f"{short(alphas_or_search)}; e.g. alpha_sampler(darts) or "
                                   "alpha_sampler(np.zeros((6, 5)))") from None
    space = NB201Space() if space is None else space
    if getattr(space, "name", None) != "nb201":
        raise InvalidValueError(f"alpha_sampler draws NB201 cells; space must be an NB201Space, got {short(space)}")
    if logits.shape != (len(EDGES), len(OPS)):
        raise InvalidValueError(f"α must have shape ({len(EDGES)}, {len(OPS)}) (edges x ops of NB201), got "
                                f"{logits.shape}; e.g. alpha_sampler(np.zeros((6, 5))) for a uniform start")
    if np.isnan(logits).any() or np.isposinf(logits).any() or np.isneginf(logits).all(axis=1).any():
        raise InvalidValueError("α must be finite numbers (an op may be -inf, not every op of an edge)")
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)  # softmax without overflow
    p = np.exp(scaled)
    return AlphaSampler(p / p.sum(axis=1, keepdims=True), space)
