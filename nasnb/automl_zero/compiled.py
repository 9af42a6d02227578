"""A faster interpreter for AutoML-Zero programs: the same results, bit for bit, as interpreter.py.

interpreter.py is the reference a student reads: each instruction looks its op up, calls the
row's numpy function on the values it reads, and stores the new array it returns. That costs a
few Python calls and a fresh array per instruction, per example: most of a search's time.

Here each instruction is turned, once per run, into a call of a numpy ufunc with its operands
and its output *fixed in advance*: views of the memory banks (s2 is `memory.s[2]`, a view that
stays valid for the whole run) and the `out` argument, so that the result is written in place,
with no lookup and no new array. `s3 = s0 - s1` becomes `functools.partial(np.subtract, s0, s1, s3)`,
and running a function is calling its partials in order. A ufunc computes the same numbers
whether it writes into `out` or into a new array, so the predictions are identical to the
reference's (tests/test_automl_zero.py checks it on random programs of every op, NaNs and
infinities included). Ops without such a form here (norms, broadcasts, matrix products, the
element setters, the random draws) run exactly as in the reference, from their table row.

Nothing is compiled from text: the "compiled" code is a list of Python objects (no eval, no exec).
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from nasnb.automl_zero.interpreter import Memory, MemorySizes
from nasnb.automl_zero.ops import OPS
from nasnb.automl_zero.program import FEATURES, LABEL, PREDICTION, Instruction, Program
from nasnb.automl_zero.tasks import Tasks
from nasnb.errors import InvalidValueError

# ops whose row computes ufunc(in1, in2) (binary) or ufunc(in1) (unary) on equal shapes
_BINARY = {f"{t}_{name}": ufunc for t in ("scalar", "vector", "matrix")
           for name, ufunc in (("sum", np.add), ("diff", np.subtract), ("product", np.multiply),
                               ("division", np.divide), ("min", np.minimum), ("max", np.maximum))}
_UNARY = {f"scalar_{name}": getattr(np, name) for name in ("sin", "cos", "tan", "arcsin", "arccos", "arctan",
                                                          "exp", "log")}
_UNARY.update({f"{t}_abs": np.abs for t in ("scalar", "vector", "matrix")})
_RECIPROCAL = {f"{t}_reciprocal" for t in ("scalar", "vector", "matrix")}
_HEAVISIDE = {f"{t}_heaviside" for t in ("scalar", "vector", "matrix")}
_vecdot = getattr(np, "vecdot", None)  # as ops._dot: numpy >= 2.0


def _generic(spec, x_bank, in1, y_bank, in2, out_bank, out, constants, rng):
    """The reference's step for one instruction (interpreter.run), as a function of nothing."""
    apply = spec.apply

    def step():
        out_bank[out] = apply(x_bank[in1], y_bank[in2], constants, rng, out_bank[out])
    return step


def compile_instruction(ins: Instruction, memory: Memory, rng: np.random.Generator):
    """A function of no arguments that executes `ins` on `memory`, writing in place."""
    spec = OPS[ins.op]
    out_bank = memory.bank(spec.output)
    o = out_bank[ins.out]
    x_bank, in1 = (memory.bank(spec.inputs[0]), ins.in1) if spec.inputs else (out_bank, ins.out)
    y_bank, in2 = (memory.bank(spec.inputs[1]), ins.in2) if len(spec.inputs) == 2 else (x_bank, in1)
    x, y = x_bank[in1], y_bank[in2]
    name = ins.op
    if name in _BINARY:
        ufunc = _BINARY[name]
        if ufunc is np.minimum or ufunc is np.maximum:  # numpy wants their output by keyword
            return functools.partial(ufunc, x, y, out=o)
        return functools.partial(ufunc, x, y, o)
    if name in _UNARY:
        return functools.partial(_UNARY[name], x, o)
    if name in _RECIPROCAL:
        return functools.partial(np.divide, 1.0, x, o)
    if name in _HEAVISIDE:
        return functools.partial(np.heaviside, x, 1.0, o)
    if name == "scalar_vector_product":  # s (B,) times v (B, F): the scalar as a (B, 1) column
        return functools.partial(np.multiply, x[:, None], y, o)
    if name == "scalar_matrix_product":
        return functools.partial(np.multiply, x[:, None, None], y, o)
    if name == "vector_inner_product" and _vecdot is not None:
        return functools.partial(_vecdot, x, y, o)
    if name == "scalar_const_set":
        return functools.partial(o.fill, ins.constants[0])
    return _generic(spec, x_bank, in1, y_bank, in2, out_bank, ins.out, ins.constants, rng)


def compile_function(instructions: Sequence[Instruction], memory: Memory, rng) -> tuple:
    return tuple(compile_instruction(ins, memory, rng) for ins in instructions)


def execute(program: Program, tasks: Tasks, sizes: MemorySizes, *, seed: int = 0,
            train: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """interpreter.execute, faster: (training predictions (B, num_train), or None without `train`;
    validation predictions (B, num_valid)), equal to the reference's bit for bit."""
    if tasks.features != sizes.features:
        raise InvalidValueError(f"the tasks have {tasks.features} features but the memory's vectors "
                                f"{sizes.features}; make them with make_tasks(features={sizes.features})")
    B, num_train = tasks.y_train.shape
    memory = Memory(sizes, B)
    rng = np.random.default_rng(seed)
    setup, predict, learn = (compile_function(f, memory, rng) for f in program)
    features, label, prediction = memory.v[FEATURES], memory.s[LABEL], memory.s[PREDICTION]
    x_train, y_train = tasks.x_train.transpose(1, 0, 2), tasks.y_train.T  # example first
    train_predictions = np.empty((num_train, B)) if train else None
    valid_predictions = np.empty((tasks.y_valid.shape[1], B))
    copyto = np.copyto
    with np.errstate(all="ignore"):
        for step in setup:
            step()
        for t in range(num_train):
            copyto(features, x_train[t])
            label.fill(0.0)
            for step in predict:
                step()
            if train:
                train_predictions[t] = prediction
            copyto(label, y_train[t])
            for step in learn:
                step()
        for t, x in enumerate(tasks.x_valid.transpose(1, 0, 2)):
            copyto(features, x)
            label.fill(0.0)
            for step in predict:
                step()
            valid_predictions[t] = prediction
    return (None if train_predictions is None else train_predictions.T), valid_predictions.T
