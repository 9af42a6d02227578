"""The instructions of AutoML-Zero programs: the paper's basic maths ops, as a table.

Real, Liang, So & Le, "AutoML-Zero: Evolving Machine Learning Algorithms From Scratch", ICML 2020,
Supplementary Table S1 (OP1-OP64; the authors' code numbers them alike). Every row says what an
instruction reads (`inputs`: the types of in1 and in2, "s" scalar, "v" vector, "m" matrix), what it
writes (`output`), which constants it carries (`constants`), how it prints (`template`) and what it
computes (`apply`). The interpreter (interpreter.py) only looks rows up: nothing is ever compiled
from text, and a program can hold only what this table defines.

Everything is computed on a *batch of memories*, one per task: a scalar is an array of shape (B,),
a vector (B, F), a matrix (B, F, F), so one instruction runs on all tasks at once. Tasks never mix:
every op is per row (the reductions are over features, never over the batch), so this is exactly
the paper's one-task-at-a-time execution, B times faster in Python.

`apply(x, y, constants, rng, old)` gets the values at in1 and in2 (the output's old value where
an op has no input), the instruction's constants, the evaluation's numpy Generator and the old
value at `out` (the element setters OP57 and OP58 change one entry of it), and returns the new value.

Which ops: all of Table S1 but NO_OP (OP0: a removed instruction is simply gone). The table is
cheap (one line an op), and the "from scratch" point of the paper is that the search, not a human,
picks from the whole menu. A space chooses the menu it searches (`ProgramSpace(ops=...)`):
`SGD_OPS` is the six-op menu of the authors' 5-minute demo (a constant, dot, scalar difference and
product, scalar-vector product, vector sum), exactly what linear regression by gradient descent is
made of; `LINEAR_OPS` adds the other plain scalar and vector arithmetic; `ALL_OPS` is everything.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

__all__ = ["OpSpec", "OPS", "SGD_OPS", "LINEAR_OPS", "ALL_OPS", "op_spec"]


class OpSpec(NamedTuple):
    """One row of Table S1."""

    name: str
    paper: int  # the OP number in the paper's Table S1
    inputs: str  # types of in1 and in2: "" (none), "s", "v", "m", "ss", "sv", "vv", "sm", "mv", "mm"
    output: str  # "s", "v" or "m"
    constants: str  # one letter per constant: c value, i index, g std >= 0 ("" none)
    template: str  # how it prints: {out} {in1} {in2} {c0} {c1} {c2}
    apply: Callable


def _dot(x, y, c, rng, old):  # OP27, per task: sum_i x[b, i] y[b, i]
    return _vecdot(x, y) if _vecdot is not None else np.einsum("bi,bi->b", x, y)


_vecdot = getattr(np, "vecdot", None)  # numpy >= 2.0: half the cost of einsum on tiny arrays


def _reduce_rows(f):
    """A per-task reduction over a matrix's features (axes 1, 2 of the (B, F, F) batch)."""
    return lambda x, y, c, rng, old: f(x, axis=(1, 2))


def _set(x, y, c, rng, old):  # OP56: s = C (the interpreter's assignment spreads it over the tasks)
    return c[0]


def _set_vector_element(x, y, c, rng, old):  # OP57: v[i] = C
    new = old.copy()
    new[:, int(c[0])] = c[1]
    return new


def _set_matrix_element(x, y, c, rng, old):  # OP58: m[i, j] = C
    new = old.copy()
    new[:, int(c[0]), int(c[1])] = c[2]
    return new


def _uniform(x, y, c, rng, old):  # OP59-61: every entry (of every task) drawn on its own
    low, high = min(c[0], c[1]), max(c[0], c[1])  # the constants come in either order (numpy refuses high < low)
    return rng.uniform(low, high, size=old.shape)


def _gaussian(x, y, c, rng, old):  # OP62-64
    return rng.normal(c[0], c[1], size=old.shape)


def _std(axis):
    return lambda x, y, c, rng, old: np.std(x, axis=axis)


_ROWS = [
    # name, paper, inputs, output, constants, template, apply
    ("scalar_sum", 1, "ss", "s", "", "{out} = {in1} + {in2}", lambda x, y, c, r, o: x + y),
    ("scalar_diff", 2, "ss", "s", "", "{out} = {in1} - {in2}", lambda x, y, c, r, o: x - y),
    ("scalar_product", 3, "ss", "s", "", "{out} = {in1} * {in2}", lambda x, y, c, r, o: x * y),
    ("scalar_division", 4, "ss", "s", "", "{out} = {in1} / {in2}", lambda x, y, c, r, o: x / y),
    ("scalar_abs", 5, "s", "s", "", "{out} = abs({in1})", lambda x, y, c, r, o: np.abs(x)),
    ("scalar_reciprocal", 6, "s", "s", "", "{out} = 1 / {in1}", lambda x, y, c, r, o: 1.0 / x),
    ("scalar_sin", 7, "s", "s", "", "{out} = sin({in1})", lambda x, y, c, r, o: np.sin(x)),
    ("scalar_cos", 8, "s", "s", "", "{out} = cos({in1})", lambda x, y, c, r, o: np.cos(x)),
    ("scalar_tan", 9, "s", "s", "", "{out} = tan({in1})", lambda x, y, c, r, o: np.tan(x)),
    ("scalar_arcsin", 10, "s", "s", "", "{out} = arcsin({in1})", lambda x, y, c, r, o: np.arcsin(x)),
    ("scalar_arccos", 11, "s", "s", "", "{out} = arccos({in1})", lambda x, y, c, r, o: np.arccos(x)),
    ("scalar_arctan", 12, "s", "s", "", "{out} = arctan({in1})", lambda x, y, c, r, o: np.arctan(x)),
    ("scalar_exp", 13, "s", "s", "", "{out} = exp({in1})", lambda x, y, c, r, o: np.exp(x)),
    ("scalar_log", 14, "s", "s", "", "{out} = log({in1})", lambda x, y, c, r, o: np.log(x)),
    ("scalar_heaviside", 15, "s", "s", "", "{out} = heaviside({in1})", lambda x, y, c, r, o: np.heaviside(x, 1.0)),
    ("vector_heaviside", 16, "v", "v", "", "{out} = heaviside({in1})", lambda x, y, c, r, o: np.heaviside(x, 1.0)),
    ("matrix_heaviside", 17, "m", "m", "", "{out} = heaviside({in1})", lambda x, y, c, r, o: np.heaviside(x, 1.0)),
    ("scalar_vector_product", 18, "sv", "v", "", "{out} = {in1} * {in2}", lambda x, y, c, r, o: x[:, None] * y),
    ("scalar_broadcast", 19, "s", "v", "", "{out} = bcast({in1})",
     lambda x, y, c, r, o: np.broadcast_to(x[:, None], o.shape).copy()),
    ("vector_reciprocal", 20, "v", "v", "", "{out} = 1 / {in1}", lambda x, y, c, r, o: 1.0 / x),
    ("vector_norm", 21, "v", "s", "", "{out} = norm({in1})", lambda x, y, c, r, o: np.linalg.norm(x, axis=1)),
    ("vector_abs", 22, "v", "v", "", "{out} = abs({in1})", lambda x, y, c, r, o: np.abs(x)),
    ("vector_sum", 23, "vv", "v", "", "{out} = {in1} + {in2}", lambda x, y, c, r, o: x + y),
    ("vector_diff", 24, "vv", "v", "", "{out} = {in1} - {in2}", lambda x, y, c, r, o: x - y),
    ("vector_product", 25, "vv", "v", "", "{out} = {in1} * {in2}", lambda x, y, c, r, o: x * y),
    ("vector_division", 26, "vv", "v", "", "{out} = {in1} / {in2}", lambda x, y, c, r, o: x / y),
    ("vector_inner_product", 27, "vv", "s", "", "{out} = dot({in1}, {in2})",
     _dot),
    ("vector_outer_product", 28, "vv", "m", "", "{out} = outer({in1}, {in2})",
     lambda x, y, c, r, o: x[:, :, None] * y[:, None, :]),
    ("scalar_matrix_product", 29, "sm", "m", "", "{out} = {in1} * {in2}", lambda x, y, c, r, o: x[:, None, None] * y),
    ("matrix_reciprocal", 30, "m", "m", "", "{out} = 1 / {in1}", lambda x, y, c, r, o: 1.0 / x),
    ("matrix_vector_product", 31, "mv", "v", "", "{out} = dot({in1}, {in2})",
     lambda x, y, c, r, o: np.einsum("bij,bj->bi", x, y)),
    # OP32/33: a matrix whose every column (every row) is the vector
    ("vector_column_broadcast", 32, "v", "m", "", "{out} = bcast_columns({in1})",
     lambda x, y, c, r, o: np.broadcast_to(x[:, :, None], o.shape).copy()),
    ("vector_row_broadcast", 33, "v", "m", "", "{out} = bcast_rows({in1})",
     lambda x, y, c, r, o: np.broadcast_to(x[:, None, :], o.shape).copy()),
    ("matrix_norm", 34, "m", "s", "", "{out} = norm({in1})", _reduce_rows(np.linalg.norm)),
    ("matrix_column_norm", 35, "m", "v", "", "{out} = norm({in1}, axis=0)",
     lambda x, y, c, r, o: np.linalg.norm(x, axis=1)),  # one norm per column
    ("matrix_row_norm", 36, "m", "v", "", "{out} = norm({in1}, axis=1)",
     lambda x, y, c, r, o: np.linalg.norm(x, axis=2)),  # one norm per row
    ("matrix_transpose", 37, "m", "m", "", "{out} = transpose({in1})",
     lambda x, y, c, r, o: x.transpose(0, 2, 1).copy()),
    ("matrix_abs", 38, "m", "m", "", "{out} = abs({in1})", lambda x, y, c, r, o: np.abs(x)),
    ("matrix_sum", 39, "mm", "m", "", "{out} = {in1} + {in2}", lambda x, y, c, r, o: x + y),
    ("matrix_diff", 40, "mm", "m", "", "{out} = {in1} - {in2}", lambda x, y, c, r, o: x - y),
    ("matrix_product", 41, "mm", "m", "", "{out} = {in1} * {in2}", lambda x, y, c, r, o: x * y),
    ("matrix_division", 42, "mm", "m", "", "{out} = {in1} / {in2}", lambda x, y, c, r, o: x / y),
    ("matrix_matrix_product", 43, "mm", "m", "", "{out} = matmul({in1}, {in2})", lambda x, y, c, r, o: x @ y),
    ("scalar_min", 44, "ss", "s", "", "{out} = minimum({in1}, {in2})", lambda x, y, c, r, o: np.minimum(x, y)),
    ("vector_min", 45, "vv", "v", "", "{out} = minimum({in1}, {in2})", lambda x, y, c, r, o: np.minimum(x, y)),
    ("matrix_min", 46, "mm", "m", "", "{out} = minimum({in1}, {in2})", lambda x, y, c, r, o: np.minimum(x, y)),
    ("scalar_max", 47, "ss", "s", "", "{out} = maximum({in1}, {in2})", lambda x, y, c, r, o: np.maximum(x, y)),
    ("vector_max", 48, "vv", "v", "", "{out} = maximum({in1}, {in2})", lambda x, y, c, r, o: np.maximum(x, y)),
    ("matrix_max", 49, "mm", "m", "", "{out} = maximum({in1}, {in2})", lambda x, y, c, r, o: np.maximum(x, y)),
    ("vector_mean", 50, "v", "s", "", "{out} = mean({in1})", lambda x, y, c, r, o: x.mean(axis=1)),
    ("matrix_mean", 51, "m", "s", "", "{out} = mean({in1})", _reduce_rows(np.mean)),
    ("matrix_row_mean", 52, "m", "v", "", "{out} = mean({in1}, axis=1)", lambda x, y, c, r, o: x.mean(axis=2)),
    ("matrix_row_st_dev", 53, "m", "v", "", "{out} = std({in1}, axis=1)", _std(2)),
    ("vector_st_dev", 54, "v", "s", "", "{out} = std({in1})", _std(1)),
    ("matrix_st_dev", 55, "m", "s", "", "{out} = std({in1})", _reduce_rows(np.std)),
    ("scalar_const_set", 56, "", "s", "c", "{out} = {c0}", _set),
    ("vector_const_set", 57, "", "v", "ic", "{out}[{c0}] = {c1}", _set_vector_element),
    ("matrix_const_set", 58, "", "m", "iic", "{out}[{c0}, {c1}] = {c2}", _set_matrix_element),
    ("scalar_uniform_set", 59, "", "s", "cc", "{out} = uniform({c0}, {c1})", _uniform),
    ("vector_uniform_set", 60, "", "v", "cc", "{out} = uniform({c0}, {c1})", _uniform),
    ("matrix_uniform_set", 61, "", "m", "cc", "{out} = uniform({c0}, {c1})", _uniform),
    ("scalar_gaussian_set", 62, "", "s", "cg", "{out} = gaussian({c0}, {c1})", _gaussian),
    ("vector_gaussian_set", 63, "", "v", "cg", "{out} = gaussian({c0}, {c1})", _gaussian),
    ("matrix_gaussian_set", 64, "", "m", "cg", "{out} = gaussian({c0}, {c1})", _gaussian),
]

OPS: dict[str, OpSpec] = {row[0]: OpSpec(*row) for row in _ROWS}
ALL_OPS = tuple(OPS)

# The authors' 5-minute demo menu (run_demo.sh): exactly what SGD linear regression is made of.
SGD_OPS = ("scalar_const_set", "vector_inner_product", "scalar_diff", "scalar_product", "scalar_vector_product",
           "vector_sum")
# A larger menu for linear tasks: every scalar and vector op that is not a transcendental or random.
LINEAR_OPS = SGD_OPS + ("scalar_sum", "scalar_division", "scalar_abs", "scalar_reciprocal", "scalar_broadcast",
                        "vector_diff", "vector_product", "vector_norm", "vector_mean", "scalar_min", "scalar_max")


def op_spec(name: str) -> OpSpec:
    """The row of op `name`, or an UnknownNameError listing the ops."""
    from nasnb.errors import UnknownNameError

    spec = OPS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise UnknownNameError(f"unknown AutoML-Zero op {name!r}; choose from {list(OPS)}, e.g. 'scalar_sum'")
    return spec
