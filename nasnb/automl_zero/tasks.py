"""The generated regression tasks of AutoML-Zero's first experiments (Sec. 4.1 of the paper).

Each task is a small data set of its own: a random function, Gaussian inputs and its labels.
A program is judged by how well it *learns* each task from scratch (Setup, then Predict and Learn
on every training example), so a search rewards learning algorithms, not one fitted model: a
program that memorised one task's weights would fail on the others.

    linear:     y = u . x,             u ~ N(0, I_F), x ~ N(0, I_F)
    nonlinear:  y = u . relu(W x),     W ~ N(0, 1)^(F x F), u ~ N(0, I_F): the paper's "teacher"
                                       network with random weights

All tasks of one call are drawn from one seeded generator, arranged as arrays with the task as
the first axis, which is how the interpreter runs them: all tasks at once.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nasnb.checks import check_int, check_seed
from nasnb.spaces.base import check_name

TASK_KINDS = ("linear", "nonlinear")


class Tasks(NamedTuple):
    """`B` tasks of F features: training and validation examples, task first."""

    x_train: np.ndarray  # (B, num_train, F)
    y_train: np.ndarray  # (B, num_train)
    x_valid: np.ndarray  # (B, num_valid, F)
    y_valid: np.ndarray  # (B, num_valid)

    @property
    def num_tasks(self) -> int:
        return self.x_train.shape[0]

    @property
    def features(self) -> int:
        return self.x_train.shape[2]

    def head(self, num_train: int, num_valid: int) -> "Tasks":
        """The first `num_train` training and `num_valid` validation examples of every task (FEC's probe)."""
        return Tasks(self.x_train[:, :num_train], self.y_train[:, :num_train],
                     self.x_valid[:, :num_valid], self.y_valid[:, :num_valid])


def make_tasks(kind: str = "linear", *, num_tasks: int = 10, features: int = 4, num_train: int = 100,
               num_valid: int = 100, seed: int = 0) -> Tasks:
    """`num_tasks` generated regression tasks of `kind` ("linear" or "nonlinear")."""
    kind = check_name("kind", kind, TASK_KINDS, "task kind")
    num_tasks = check_int("num_tasks", num_tasks, minimum=1, maximum=10_000, example=10)
    features = check_int("features", features, minimum=1, maximum=256, example=4)
    num_train = check_int("num_train", num_train, minimum=1, maximum=1_000_000, example=100)
    num_valid = check_int("num_valid", num_valid, minimum=1, maximum=1_000_000, example=100)
    rng = np.random.default_rng([check_seed("seed", seed), TASK_KINDS.index(kind)])
    u = rng.normal(size=(num_tasks, features))
    w = rng.normal(size=(num_tasks, features, features)) if kind == "nonlinear" else None
    x = rng.normal(size=(num_tasks, num_train + num_valid, features))
    hidden = x if w is None else np.maximum(np.einsum("bij,bnj->bni", w, x), 0.0)
    y = np.einsum("bi,bni->bn", u, hidden)
    return Tasks(x[:, :num_train], y[:, :num_train], x[:, num_train:], y[:, num_train:])
