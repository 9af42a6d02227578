"""Running an AutoML-Zero program on tasks, and what it scores: the paper's evaluation (Sec. 3).

Memory is a few scalars s0.., vectors v0.. (F entries) and matrices m0.. (F x F), all zero at the
start of every task. Three addresses are fixed, as in the paper: v0 holds the current example's
features, s0 its label and s1 the program's prediction. For each task:

    Setup()                                  once
    for each training example (x, y):
        v0 = x;  s0 = 0;  Predict()          the label is *not* visible: s0 is zero here
        record s1 as the training prediction
        s0 = y;  Learn()                     now it is; Learn sees everything Predict left
    for each validation example (x, y):
        v0 = x;  s0 = 0;  Predict()          no Learn: validation only measures
        record s1

No instruction can write s0 or v0 (their outputs start at s1 and v1, as in the authors' code), so
the label reaches Predict only through what Learn stored on an earlier example: learning.

Fitness (regression): per task the validation root-mean-square error, squashed into [0, 1] as
the authors' code does (`FlipAndSquash`): 1 - (2/pi) arctan(rms). A perfect learner scores 1,
always predicting 0 on unit-variance labels scores 0.5, and a task whose predictions became NaN
or infinite scores 0, the worst; fitness is the mean over tasks, never NaN. (The authors' code
also stops a task early, with the worst fitness, once a training error exceeds a bound; here
every task runs to its end, so a large but finite error still scores a little above 0.)

The interpreter is a loop over instruction records: each looks its op up in ops.OPS and calls
that row's numpy function on the memory. Nothing is compiled from text (no eval, no exec). All
tasks run at once (the memory holds one row per task: ops.py), which is exact, since tasks
never read each other's rows.
"""
from __future__ import annotations

import hashlib
import math
from typing import NamedTuple, Sequence

import numpy as np

from nasnb.automl_zero.ops import OPS
from nasnb.automl_zero.program import FEATURES, LABEL, PREDICTION, Instruction, Program
from nasnb.automl_zero.tasks import Tasks
from nasnb.errors import InvalidValueError


class MemorySizes(NamedTuple):
    """How many scalars, vectors and matrices a program may use, and the feature size F."""

    scalars: int = 4
    vectors: int = 3
    matrices: int = 1
    features: int = 4


class Memory:
    """The memory of `batch` tasks at once: s (scalars, B), v (vectors, B, F), m (matrices, B, F, F)."""

    def __init__(self, sizes: MemorySizes, batch: int):
        F = sizes.features
        self.s = np.zeros((sizes.scalars, batch))
        self.v = np.zeros((sizes.vectors, batch, F))
        self.m = np.zeros((sizes.matrices, batch, F, F))

    def bank(self, kind: str) -> np.ndarray:
        return {"s": self.s, "v": self.v, "m": self.m}[kind]


def compile_function(instructions: Sequence[Instruction], memory: Memory) -> list:
    """The function as a list of (apply, in1 bank, in1, in2 bank, in2, out bank, out, constants):
    each instruction's table row looked up once, with the memory banks it reads and writes. An op
    without an input reads its output address instead (a placeholder the op ignores)."""
    code = []
    for ins in instructions:
        spec = OPS[ins.op]
        out_bank = memory.bank(spec.output)
        bank1, in1 = (memory.bank(spec.inputs[0]), ins.in1) if spec.inputs else (out_bank, ins.out)
        bank2, in2 = (memory.bank(spec.inputs[1]), ins.in2) if len(spec.inputs) == 2 else (bank1, in1)
        code.append((spec.apply, bank1, in1, bank2, in2, out_bank, ins.out, ins.constants))
    return code


def run(code: list, rng: np.random.Generator) -> None:
    """Execute compiled instructions in order, each writing its result into memory."""
    for apply, bank1, in1, bank2, in2, out_bank, out, constants in code:
        out_bank[out] = apply(bank1[in1], bank2[in2], constants, rng, out_bank[out])


def execute(program: Program, tasks: Tasks, sizes: MemorySizes, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Run `program` on every task as the paper does (module docstring). Returns the predictions
    (s1 after Predict) on the training examples, (B, num_train), and on the validation examples,
    (B, num_valid). `seed` seeds the random-initialisation ops, so a program always scores alike."""
    if tasks.features != sizes.features:
        raise InvalidValueError(f"the tasks have {tasks.features} features but the memory's vectors "
                                f"{sizes.features}; make them with make_tasks(features={sizes.features})")
    B, num_train = tasks.y_train.shape
    memory = Memory(sizes, B)
    setup, predict, learn = (compile_function(f, memory) for f in program)
    rng = np.random.default_rng(seed)
    train_predictions = np.empty((B, num_train))
    valid_predictions = np.empty(tasks.y_valid.shape)
    s, v = memory.s, memory.v
    x_train, y_train = tasks.x_train.transpose(1, 0, 2), tasks.y_train.T  # example first: x_train[t] is (B, F)
    with np.errstate(all="ignore"):  # overflow and 0/0 are the program's business: they end as fitness 0
        run(setup, rng)
        for t in range(num_train):
            v[FEATURES] = x_train[t]
            s[LABEL] = 0.0
            run(predict, rng)
            train_predictions[:, t] = s[PREDICTION]
            s[LABEL] = y_train[t]
            run(learn, rng)
        for t, x in enumerate(tasks.x_valid.transpose(1, 0, 2)):
            v[FEATURES] = x
            s[LABEL] = 0.0
            run(predict, rng)
            valid_predictions[:, t] = s[PREDICTION]
    return train_predictions, valid_predictions


def squash(loss):
    """1 - (2/pi) arctan(loss): [0, inf] onto [1, 0], nearly linear for small losses (the authors'
    FlipAndSquash)."""
    return 1.0 - 2.0 / math.pi * np.arctan(loss)


def task_fitness(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per task: squash(rms error) over its examples, 0 where any prediction is NaN or infinite."""
    finite = np.isfinite(predictions).all(axis=1)
    with np.errstate(all="ignore"):
        rms = np.sqrt(np.mean((np.where(np.isfinite(predictions), predictions, 0.0) - labels) ** 2, axis=1))
    fitness = np.where(finite & np.isfinite(rms), squash(np.where(np.isfinite(rms), rms, 0.0)), 0.0)
    return fitness


def evaluate(program: Program, tasks: Tasks, sizes: MemorySizes, *, seed: int = 0, fast: bool = False) -> dict:
    """{"fitness": mean task fitness, "rms_error": mean finite rms (inf if none), "failed_tasks": n}.
    `fast`: run it with compiled.py's interpreter (the same predictions, bit for bit, sooner)."""
    if fast:
        from nasnb.automl_zero import compiled

        _, predictions = compiled.execute(program, tasks, sizes, seed=seed, train=False)
    else:
        _, predictions = execute(program, tasks, sizes, seed=seed)
    per_task = task_fitness(predictions, tasks.y_valid)
    finite = np.isfinite(predictions).all(axis=1)
    with np.errstate(all="ignore"):
        rms = np.sqrt(np.mean((predictions - tasks.y_valid) ** 2, axis=1))
    ok = finite & np.isfinite(rms)
    return {"fitness": float(per_task.mean()), "rms_error": float(rms[ok].mean()) if ok.any() else math.inf,
            "failed_tasks": int((~ok).sum())}


def fec_hash(program: Program, probe: Tasks, sizes: MemorySizes, *, seed: int = 0, decimals: int = 6,
             fast: bool = False) -> str:
    """Functional equivalence checking (the paper's Sec. 4.2): a fingerprint of what `program`
    predicts on a few examples (`probe`: the paper uses 10 training and 10 validation examples).

    The program is run on the probe as in a full evaluation, and its training and validation
    predictions, rounded to `decimals` places, are hashed. Programs that differ in text but
    compute the same thing (s3 = s1 * s2 and s3 = s2 * s1; an instruction whose result nobody
    reads) get the same fingerprint, so their fitness is looked up instead of evaluated again.
    NaN and infinities hash as themselves; -0.0 as 0.0. `fast`: as for `evaluate`.
    """
    if fast:
        from nasnb.automl_zero import compiled

        train, valid = compiled.execute(program, probe, sizes, seed=seed)
    else:
        train, valid = execute(program, probe, sizes, seed=seed)
    with np.errstate(all="ignore"):  # rounding multiplies by 10**decimals: a huge prediction overflows to inf
        values = np.round(np.concatenate([train.ravel(), valid.ravel()]), decimals) + 0.0  # + 0.0: -0.0 -> 0.0
    values = np.nan_to_num(values, nan=1.5e308, posinf=1.7e308, neginf=-1.7e308)
    return hashlib.blake2b(values.astype("<f8").tobytes(), digest_size=8).hexdigest()
