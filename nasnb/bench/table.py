"""A tabular NAS benchmark: every cell of a space trained once (per seed), looked up instead of trained.

NAS-Bench-101/201/301 replaced days of training by a lookup, and so made strategies comparable:
every paper that searches NB201 asks the same table, so a difference between two strategies is the
strategies', not their training runs'. A `Table` holds, for every *unique* cell of the NB201 space
(one per class of `NB201Space.canonical`, the benchmark's 6,466 classes; the other 9,159 cells
look up their class's representative), for each seed of the protocol:

* the validation accuracy after every epoch (the learning curve, for early stopping),
* the test accuracy after the last epoch,
* the training seconds (wall time of the whole training, measured when the table was built),

and, for each of the 15,625 cells, the parameters and FLOPs of its own network (members of a class
can differ: a conv on an edge whose output is never used still has weights), and optionally
``latency_ms``, its network's measured forward time for one image (benchmarks/tables/
measure_latency.py; how and on which machine: ``meta["latency"]``). A table without it still loads.

Accuracies are stored as *counts of correct images* (uint16) with the split sizes in the metadata,
so every figure is an exact fraction, and the file is small. Learning curves come from one training
of `max_epochs` epochs with a cosine schedule over all of them: the accuracy after epoch e is not
that of a network trained for e epochs with its own schedule (NAS-Bench-201's "hp=12" and "hp=200"
are two trainings for the same reason).

A *partial* table holds only some classes: those of a sub-space (``meta["cells"]["ops"]``, e.g.
nb201-shapes' 496 classes of the cells built from skip, 1x1 and 3x3 convs). Its ``space`` is that
sub-space (nasnb/bench/subspace.py), so a search on it proposes only cells it holds; ``class_of`` is
MISSING for the other cells, and a lookup of one raises a `CellNotInTableError` (a KeyError) that
names the table and how many classes it has. ``table.covers(arch)`` asks first.

The file is a compressed numpy archive read with allow_pickle=False, plus its protocol as JSON.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from nasnb.checks import check_int, short
from nasnb.errors import DamagedFileError, InvalidTypeError, InvalidValueError, UnknownNameError
from nasnb.spaces.nb201 import EDGES, OPS, NB201Space

ARRAYS = ("meta_json", "cells", "class_of", "val_correct", "test_correct", "train_seconds", "params", "flops")
FORMAT = "nasnb-table-1"
OPTIONAL_ARRAYS = ("latency_ms",)  # a table file may lack them
METRICS = ("val_accuracy", "test_accuracy")
MISSING = np.iinfo(np.uint16).max  # class_of of a cell whose class a partial table does not hold
_NB201 = NB201Space()


class CellNotInTableError(UnknownNameError):
    """A valid NB201 cell whose class a partial table did not train."""


def arch_index(arch: tuple) -> int:
    """The position of a (valid) NB201 arch in `NB201Space().enumerate()`: its ops in base 5."""
    index = 0
    for op in arch:
        index = index * len(OPS) + OPS.index(op)
    return index


def arch_at(index: int) -> tuple:
    """The inverse of `arch_index`."""
    ops = []
    for _ in EDGES:
        index, k = divmod(index, len(OPS))
        ops.append(OPS[k])
    return tuple(reversed(ops))


class Table:
    """A tabular benchmark of NB201 cells (module docstring); `nasnb.bench.load(name)` reads one.

    ``table.query(arch, epochs=None, seed=None)`` is the lookup; ``table.optimum()`` the best cell.
    The arrays are public and read-only, for vectorised statistics over all cells:
    ``val_accuracy(epochs=None, seed=None)`` and ``test_accuracy(seed=None)`` give one value per
    unique cell, in the order of ``table.cells``.
    """

    def __init__(self, name: str, meta: dict, cells: np.ndarray, class_of: np.ndarray, val_correct: np.ndarray,
                 test_correct: np.ndarray, train_seconds: np.ndarray, params: np.ndarray, flops: np.ndarray,
                 latency_ms: np.ndarray | None = None):
        self.name = name
        self.meta = meta
        from nasnb.bench.subspace import space_for

        self.space = space_for(meta)  # NB201Space(), or the sub-space a partial table covers
        n_cells, n_seeds, n_epochs = val_correct.shape
        size = len(_NB201)
        shapes = {"cells": (cells.shape, (n_cells,)), "class_of": (class_of.shape, (size,)),
                  "test_correct": (test_correct.shape, (n_cells, n_seeds)),
                  "train_seconds": (train_seconds.shape, (n_cells, n_seeds)),
                  "params": (params.shape, (size,)), "flops": (flops.shape, (size,)),
                  "seeds": ((len(meta.get("seeds", ())),), (n_seeds,))}
        if latency_ms is not None:
            shapes["latency_ms"] = (latency_ms.shape, (size,))
        for what, (got, expected) in shapes.items():
            if tuple(got) != expected:
                raise DamagedFileError(f"table {name!r}: {what} has shape {tuple(got)}, expected {expected}")
        self.cells = [arch_at(int(i)) for i in cells]  # the representatives, in enumerate order
        self.class_of = class_of
        self.val_correct, self.test_correct = val_correct, test_correct
        self.train_seconds, self.params, self.flops = train_seconds, params, flops
        self.latency_ms = latency_ms  # (15,625,) ms of one forward pass, or None: not measured
        for array in (class_of, val_correct, test_correct, train_seconds, params, flops, latency_ms):
            if array is not None:
                array.setflags(write=False)
        self.val_size, self.test_size = int(meta["val_size"]), int(meta["test_size"])
        self.max_epochs = n_epochs
        self.seeds = list(meta["seeds"])
        rows = class_of.tolist()
        self._row = {arch_at(i): r for i, r in enumerate(rows) if r != MISSING}  # arch tuple -> its class's row
        self.complete = len(self._row) == size  # False: a partial table
        self._strings = {}  # row -> the representative's string, made when first asked
        self._cache = {}  # (epochs, seed position) -> _figures' lists
        self._params, self._flops = params.tolist(), flops.tolist()  # plain ints: a lookup returns them
        self._latency = None if latency_ms is None else latency_ms.tolist()

    # ------------------------------------------------------------------ reading the file

    @classmethod
    def from_file(cls, path, name: str | None = None) -> "Table":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [k for k in ARRAYS if k not in archive.files]
                if missing:
                    raise DamagedFileError(f"{path} is not a nasnb table: it lacks {missing}")
                arrays = {k: archive[k] for k in ARRAYS + OPTIONAL_ARRAYS if k in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            if isinstance(err, DamagedFileError):
                raise
            raise DamagedFileError(f"could not read the table {path}: {err}") from err
        meta = json.loads(arrays.pop("meta_json").tobytes().decode("utf-8"))
        if meta.get("format") != FORMAT:
            raise DamagedFileError(f"{path} has format {meta.get('format')!r}; this nasnb reads {FORMAT!r}")
        return cls(name or meta.get("name", path.stem), meta, **arrays)

    def save(self, path) -> None:
        """Write the table as one compressed archive (what `from_file` reads)."""
        meta = json.dumps({**self.meta, "format": FORMAT}, sort_keys=True).encode("utf-8")
        optional = {} if self.latency_ms is None else {"latency_ms": self.latency_ms}
        np.savez_compressed(path, meta_json=np.frombuffer(meta, dtype=np.uint8),
                            cells=np.array([arch_index(a) for a in self.cells], dtype=np.int32),
                            class_of=self.class_of, val_correct=self.val_correct, test_correct=self.test_correct,
                            train_seconds=self.train_seconds, params=self.params, flops=self.flops, **optional)

    # ------------------------------------------------------------------ lookups

    def __len__(self) -> int:
        """The number of unique cells (classes) the table holds."""
        return len(self.cells)

    def __repr__(self) -> str:
        part = "" if self.complete else f" (partial: the classes of {self.space!r})"
        return (f"Table({self.name!r}: {len(self)} unique cells of {len(self.space)}{part}, {len(self.seeds)} "
                f"seeds, {self.max_epochs} epochs)")

    def resolve(self, arch) -> tuple:
        """`arch` (an NB201 arch tuple, a sequence of op names, or its string) as a valid arch tuple
        whose class the table holds (else CellNotInTableError)."""
        if isinstance(arch, tuple) and arch in self._row:
            return arch
        arch = _NB201.parse(arch) if isinstance(arch, str) else _NB201.validate(arch)  # a bad arch: its error
        if arch not in self._row:
            raise CellNotInTableError(
                f"table {self.name!r} is partial: it holds {len(self)} of NB201's 6,466 classes (those of "
                f"{self.space!r}), not the class of {_NB201.format(arch)}; search table.space, or ask "
                f"table.covers(arch) first, e.g. {self.representative(0)}")
        return arch

    def covers(self, arch) -> bool:
        """Whether the table holds the training of `arch`'s class (always, for a complete table)."""
        try:
            self.resolve(arch)
        except CellNotInTableError:
            return False
        return True

    def row(self, arch) -> int:
        """The row of `arch`'s class in the arrays."""
        return self._row[self.resolve(arch)]

    def check_epochs(self, epochs) -> int:
        if epochs is None:
            return self.max_epochs
        return check_int("epochs", epochs, minimum=1, maximum=self.max_epochs, example=self.max_epochs)

    def check_seed(self, seed) -> int | None:
        """The seed's position in `self.seeds` (None: the mean over seeds)."""
        if seed is None:
            return None
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) not in self.seeds:
            raise InvalidValueError(f"seed={short(seed)} is not one of this table's seeds {self.seeds}; "
                                    f"e.g. seed={self.seeds[0]}, or seed=None for the mean over seeds")
        return self.seeds.index(int(seed))

    def query(self, arch, epochs: int | None = None, seed: int | None = None) -> dict:
        """The recorded figures of `arch` after `epochs` epochs (None: all), for one `seed` of
        ``table.seeds`` or their mean (None).

        Returns ``arch`` (the class's representative, whose training the figures are),
        ``val_accuracy`` and ``val_curve`` (after epochs 1..epochs), ``test_accuracy`` (after the
        full training: the table records it at the end only), ``train_seconds`` (the recorded
        seconds scaled by epochs / max_epochs: every epoch costs the same), ``params`` and ``flops``
        of `arch`'s own network (and its ``latency_ms`` when the table has it), ``epochs`` and ``seed``.
        """
        arch = self.resolve(arch)
        row, epochs, k = self._row[arch], self.check_epochs(epochs), self.check_seed(seed)
        curves, tests, seconds = self._figures(epochs, k)
        index = arch_index(arch)
        record = {
            "arch": self.representative(row), "val_accuracy": curves[row][-1], "val_curve": list(curves[row]),
            "test_accuracy": tests[row] / self.test_size, "train_seconds": seconds[row] * epochs / self.max_epochs,
            "params": self._params[index], "flops": self._flops[index], "epochs": epochs,
            "seed": None if k is None else self.seeds[k],
        }
        if self._latency is not None:
            record["latency_ms"] = self._latency[index]
        return record

    def latency(self) -> np.ndarray:
        """``latency_ms`` of all 15,625 cells in enumerate order; refused when the table has none."""
        if self.latency_ms is None:
            raise DamagedFileError(f"table {self.name!r} has no latency_ms (it was built without "
                                   "benchmarks/tables/measure_latency.py); use params or flops, or measure it")
        return self.latency_ms

    def _figures(self, epochs: int, k: int | None) -> tuple[list, list, list]:
        """Every row's validation curve, mean test count and mean seconds for (epochs, seed
        position k), as Python floats: computed for all rows at once the first time they are asked
        for, so that a search's lookups cost a few list indexings (numpy's per-call overhead on
        arrays of three numbers was most of a lookup). The same reductions as one row at a time."""
        key = (epochs, k)
        if key not in self._cache:
            seeds = slice(None) if k is None else slice(k, k + 1)
            curves = (self.val_correct[:, seeds, :epochs].mean(axis=1) / self.val_size).tolist()
            tests = self.test_correct[:, seeds].mean(axis=1).tolist()
            seconds = self.train_seconds[:, seeds].mean(axis=1).tolist()
            self._cache[key] = (curves, tests, seconds)
        return self._cache[key]

    def representative(self, row: int) -> str:
        """The string of the cell whose training row `row` records."""
        text = self._strings.get(row)
        if text is None:
            text = self._strings[row] = _NB201.format(self.cells[row])
        return text

    # ------------------------------------------------------------------ all cells at once

    def val_accuracy(self, epochs: int | None = None, seed: int | None = None) -> np.ndarray:
        """Validation accuracy after `epochs` of every unique cell (seed None: the mean over seeds)."""
        epochs, k = self.check_epochs(epochs), self.check_seed(seed)
        counts = self.val_correct[:, :, epochs - 1]
        return (counts.mean(axis=1) if k is None else counts[:, k]) / self.val_size

    def test_accuracy(self, seed: int | None = None) -> np.ndarray:
        """Final test accuracy of every unique cell (seed None: the mean over seeds)."""
        k = self.check_seed(seed)
        counts = self.test_correct
        return (counts.mean(axis=1) if k is None else counts[:, k]) / self.test_size

    def optimum(self, metric: str = "val_accuracy", epochs: int | None = None) -> tuple[str, float]:
        """(arch string, value): the cell with the best mean `metric` ("val_accuracy" after
        `epochs`, or "test_accuracy"); ties go to the first in enumerate order."""
        if metric not in METRICS:
            raise InvalidValueError(f"metric={short(metric)} is not one the table ranks by; choose from "
                                    f"{list(METRICS)}, e.g. metric='val_accuracy'")
        values = self.val_accuracy(epochs) if metric == "val_accuracy" else self.test_accuracy()
        row = int(np.argmax(values))
        return self.representative(row), float(values[row])

    def data(self, device="cpu"):
        """The images the table's cells were trained and scored on: the protocol's splits of its
        dataset (meta["data"]), e.g. to train a supernet on the same data the table ranks by.
        Refused when the dataset this installation loads is not the one the table was built on."""
        from nasnb.bench.build import _data

        spec = self.meta.get("data")
        if not isinstance(spec, dict):
            raise DamagedFileError(f"table {self.name!r} does not say which data it was built on (meta['data'])")
        data = _data(spec["name"], spec["seed"], spec["train_size"], spec["val_size"], device)
        expected = self.meta.get("data_fingerprint")
        if expected is not None and data.fingerprint() != expected:
            raise DamagedFileError(f"table {self.name!r} was built on {spec['name']} with fingerprint {expected}, "
                                   f"but this installation loads {data.fingerprint()}")
        return data

    def regret(self, value: float, metric: str = "test_accuracy") -> float:
        """How far `value` is below the table's best mean `metric` (0 at the optimum)."""
        if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool):
            raise InvalidTypeError(f"value must be an accuracy (a number in [0, 1]), got {short(value)}")
        return self.optimum(metric)[1] - float(value)
