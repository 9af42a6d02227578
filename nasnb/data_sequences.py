"""Generated sequence tasks for TransformerSpace: small, seeded, and only solvable with attention.

Each task is a classification: a sequence of `seq_len` tokens, the question asked by the last
token, one answer per sequence. The network reads its answer at the last position, so a network
without attention, which there sees only the last token and its position, is at chance level.

    count    `length` symbols 0..3, then a query symbol; the answer is how often it occurs, e.g.
                 2 0 3 2 2 1 0 3 | 2   ->  3   (classes 0..8)
             The query must find its matches and the network count them: with 2000 sequences and
             4 epochs of Adam, no attention stays at the majority class (count 2: C(8,2) 3^6 / 4^8
             = 31 %), so did a single layer h2-f64 and two attention layers without FFN, while two
             layers with attention and an FFN reached 70-80 % (notebooks/10_transformer_space.ipynb).
    lookup   `length` digits 0..9, then a pointer token 10 + p; the answer is digit p, e.g.
                 4 1 7 7 0 2 9 3 | 12   ->  x[2] = 7
             One attention layer that matches the pointer with a position solves it (100 % after 3
             epochs, ~1 s); without attention: 10 %, chance.

    load_sequences("count", seed=0)   ->  a nasnb.data.TensorData, x: (N, 1, 1, seq_len) float
    token ids, y: (N,) int64 classes, as every nasnb data set (so TrainEvaluator trains on it);
    build_kwargs("count")             ->  the vocab and seq_len TransformerSpace.build needs.

The same seed gives the same splits; train, val and test are drawn independently, one after the
other from one generator (a sequence may occur in two splits: 4^9 = 262,144 count sequences).
Tried and left out: associative recall (key-value pairs, then a query key) stayed at 42 % for
every architecture after 4 epochs of 8000 sequences; it needs far longer than seconds.
"""
from __future__ import annotations

import numpy as np
import torch

from nasnb.checks import check_int, short
from nasnb.errors import UnknownNameError
from nasnb.spaces.base import as_rng

# name -> (vocab, seq_len, num_classes) of the default task sizes
TASKS = {"lookup": (18, 9, 10), "count": (4, 9, 9)}
SIZES = {"train": 2000, "val": 500, "test": 500}


def count(n: int, rng, length: int = 8, symbols: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """`n` counting sequences (n, length + 1): symbols, then a query symbol; answers its count in [0, length]."""
    x = rng.integers(0, symbols, size=(n, length + 1))
    return x, (x[:, :-1] == x[:, -1:]).sum(axis=1)


def lookup(n: int, rng, length: int = 8, digits: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """`n` pointer sequences (n, length + 1): digits, then pointer token digits + p; answers x[p]."""
    x = rng.integers(0, digits, size=(n, length + 1))
    p = rng.integers(0, length, size=n)
    x[:, -1] = digits + p
    return x, x[np.arange(n), p]


GENERATORS = {"lookup": lookup, "count": count}


def build_kwargs(name: str) -> dict:
    """What TransformerSpace.build needs for task `name`: {"vocab", "seq_len"} (num_classes is the data's)."""
    vocab, seq_len, _ = TASKS[_check_task(name)]
    return {"vocab": vocab, "seq_len": seq_len}


def _check_task(name) -> str:
    if not isinstance(name, str) or name not in TASKS:
        raise UnknownNameError(f"unknown sequence task name={short(name)}; choose from {list(TASKS)}, "
                               "e.g. name='count'")
    return name


def load_sequences(name: str = "count", seed=0, train_size: int | None = None, val_size: int | None = None,
                   test_size: int | None = None, device="cpu"):
    """The task `name` as a TensorData named 'seq-<name>' (2000 / 500 / 500 sequences by default)."""
    from nasnb.data import TensorData  # data.py imports this module lazily; no cycle at import time

    name = _check_task(name)
    rng = as_rng(seed, "seed")
    sizes = {split: SIZES[split] if size is None else check_int(f"{split}_size", size, minimum=1, maximum=10**7,
                                                               example=SIZES[split])
             for split, size in (("train", train_size), ("val", val_size), ("test", test_size))}
    splits = {}
    for split, n in sizes.items():
        x, y = GENERATORS[name](n, rng)
        splits[split] = (torch.tensor(x, dtype=torch.float32).view(n, 1, 1, -1), torch.tensor(y, dtype=torch.int64))
    data = TensorData(f"seq-{name}", splits["train"], splits["val"], splits["test"], num_classes=TASKS[name][2],
                      mean=(0.0,), std=(1.0,))  # token ids, not pixels: nothing to normalise
    return data.to(device)
