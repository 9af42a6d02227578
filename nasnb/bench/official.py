"""The official NAS-Bench-201 / NATS-Bench topology benchmark, behind nasnb's table interface.

NATS-Bench's topology search space ("tss", Dong et al., TPAMI 2021) is NAS-Bench-201's: the same
15,625 cells and arch strings, trained on CIFAR-10, CIFAR-100 and ImageNet16-120 with two
protocols, ``hp="12"`` and ``hp="200"`` epochs. ``load_nb201`` answers ``query``/``optimum`` as
nasnb's shipped table does, so ``TableEvaluator`` and every search run on either:

    table = nasnb.bench.load_nb201("~/.torch/NATS-tss-v1_0-3ffb9-simple", dataset="cifar10-valid", hp="200")
    table.query("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")

It reads the ``NATS-tss-v1_0-3ffb9-simple`` directory (``meta.pickle.pbz2``, the arch strings,
and one ``000123.pickle.pbz2`` per cell, read when the cell is first asked for, as ``nats_bench``'s
fast mode does), the single file ``NATS-tss-v1_0-3ffb9.pickle.pbz2`` (all at once: GBs of memory),
or an API object from ``nats_bench.create``. NAS-Bench-201's older ``.pth`` files are not read.

How the records become nasnb's figures (the tests check each against ``nats_bench``):

* Accuracies: the files hold percentages; nasnb's are fractions (divided by 100).
* Epochs: the files index epochs from 0 (``iepoch``; ``"x-valid@11"`` is after the 12th epoch);
  nasnb counts them, so ``epochs=e`` reads ``iepoch = e - 1``.
* Validation: the ``x-valid`` split. "cifar10" (trained on train+valid) has none, so its search
  figures come from the "cifar10-valid" training, as ``nats_bench``'s ``simulate_train_eval`` does.
  Where a CIFAR-100 or ImageNet16-120 run evaluated ``x-valid`` only after its last epoch (the
  200-epoch runs did), the curve before it is the accuracy on the whole original test split
  (``x-valid`` and ``x-test`` together), again as ``simulate_train_eval`` does; ``meta`` says so.
* Test: the test split (``ori-test`` for CIFAR-10, ``x-test`` otherwise) after the full training.
* Seconds: the files record the training time of every epoch (NATS-Bench's estimate per epoch);
  ``train_seconds`` sums the first ``epochs`` (training only: ``simulate_train_eval`` adds one
  validation pass).
* Params and FLOPs: recorded in millions; FLOPs count multiply-adds (nasnb's ``count_flops``
  counts 2 per multiply-add). Means over seeds are over the seeds a cell has: not every cell
  was trained with every seed.

Safety: the files are Python pickles, and a pickle can run any code while it loads. nasnb reads
them with an unpickler that builds only the plain data these files hold (dicts, lists, numbers,
strings, OrderedDict, numpy numbers) and refuses every other name before importing it; still,
only load files from the official source. Nothing but these files is ever unpickled.
"""
from __future__ import annotations

import bz2
import importlib
import os
import pickle
from pathlib import Path

import numpy as np

from nasnb.bench.table import METRICS, arch_index
from nasnb.checks import check_choice, check_int, short
from nasnb.errors import DamagedFileError, InvalidTypeError, InvalidValueError, NasnbError
from nasnb.spaces.nb201 import NB201Space

INSTALL_HINT = ('load_nb201 needs nats_bench, an optional extra of nasnb: pip install "nasnb[nb201]" '
                '(or pip install nats_bench)')
EXT = ".pickle.pbz2"  # how NATS-Bench names its files: a pickle, bz2-compressed
HPS = ("12", "200")
DATASETS = {  # dataset -> (validation split, test split, the dataset whose training the validation figures are)
    "cifar10-valid": ("x-valid", "ori-test", "cifar10-valid"),
    "cifar10": ("x-valid", "ori-test", "cifar10-valid"),
    "cifar100": ("x-valid", "x-test", "cifar100"),
    "ImageNet16-120": ("x-valid", "x-test", "ImageNet16-120"),
}
WHOLE_TEST = {"cifar100", "ImageNet16-120"}  # "ori-test" = x-valid + x-test: the curve where x-valid is missing
DOWNLOAD = ("download NATS-tss-v1_0-3ffb9-simple.tar (github.com/D-X-Y/NATS-Bench), extract it and pass the "
            "directory, e.g. load_nb201('~/.torch/NATS-tss-v1_0-3ffb9-simple')")


def import_nats_bench():
    """The nats_bench module, or a ModuleNotFoundError that says how to install it."""
    try:
        import nats_bench
    except ModuleNotFoundError as err:
        if err.name not in (None, "nats_bench"):  # nats_bench is there but one of its imports failed
            raise
        raise ModuleNotFoundError(INSTALL_HINT, name="nats_bench") from None
    return nats_bench


# ---------------------------------------------------------------------- reading the pickles safely

SAFE_NAMES = {  # the only names a benchmark file may use: constructors of plain data
    ("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"), ("numpy", "dtype"),
    ("numpy", "ndarray"), *((module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
                            for name in ("scalar", "_reconstruct")),  # numpy numbers and arrays
}


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that builds plain data only (the Python docs' "restricting globals").

    Unpickling a dict, a list or a number needs no name; a pickle runs code only by naming a
    callable (``os.system``) that it then calls. `find_class` is where every name is looked up,
    so refusing all names but a few harmless constructors refuses all code.
    """

    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_NAMES:
            raise DamagedFileError(f"{self.path} names {short(module + '.' + name)}, which no NATS-Bench "
                                   "topology file holds: nasnb does not unpickle it (a pickle can run code). "
                                   "The -full directory holds torch weights; use the -simple one")
        # numpy 2 moved numpy.core to numpy._core; the official files were written by numpy 1
        module = module.replace("numpy.core.", "numpy._core.") if hasattr(np, "_core") else \
            module.replace("numpy._core.", "numpy.core.")
        return getattr(importlib.import_module(module), name)


def read_pickle(path: Path):
    """The data in one NATS-Bench file (bz2-compressed pickle), or a DamagedFileError naming it."""
    try:
        with bz2.open(path, "rb") as stream:
            unpickler = _DataUnpickler(stream)
            unpickler.path = path
            return unpickler.load()
    except DamagedFileError:
        raise
    except Exception as err:  # a truncated or foreign file can fail in any of pickle's ways
        raise DamagedFileError(f"{path} is not a NATS-Bench file ({type(err).__name__}: {err})") from err


# ---------------------------------------------------------------------- the three kinds of source

def _open(source, hp: str):
    """(arch strings, fetch, file name): fetch(index) gives the cell's nats_bench ArchResults for `hp`."""
    ArchResults = import_nats_bench().ArchResults
    if hasattr(source, "meta_archs") and hasattr(source, "query_meta_info_by_index"):  # nats_bench's API
        def fetch(index):
            try:
                results = source.query_meta_info_by_index(index, hp)  # a copy of the cell's record
            except ValueError as err:  # nats_bench's way of saying the hp is not there
                raise InvalidValueError(f"hp={hp!r}: {err}; e.g. hp='200'") from None
            if source.fast_mode:
                source.arch2infos_dict.pop(index, None)  # nasnb keeps its own figures: memory stays flat
            return results
        return list(source.meta_archs), fetch, str(source.filename)
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidTypeError(f"path must be a directory or file name, got {short(source)} "
                               f"({type(source).__name__}); {DOWNLOAD}")
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no NATS-Bench benchmark at {path}: {DOWNLOAD}")

    def results_of(hp2state, where):  # a cell's file holds {"12": record, "200": record}
        if not isinstance(hp2state, dict):
            raise DamagedFileError(f"{where} holds no record of the cell")
        if hp not in hp2state:
            raise InvalidValueError(f"hp={hp!r} is not in {where}, which holds {sorted(hp2state)}; e.g. hp='200'")
        try:
            return ArchResults.create_from_state_dict(hp2state[hp])
        except Exception as err:
            raise DamagedFileError(f"{where} is not a NATS-Bench record ({type(err).__name__}: {err})") from err

    if path.is_dir():
        def fetch(index):
            name = path / f"{index:06d}{EXT}"
            name = name if name.exists() else path / f"{index}{EXT}"  # nats_bench accepts both names
            if not name.is_file():
                raise DamagedFileError(f"{path} lacks {index:06d}{EXT}: the download is incomplete")
            return results_of(read_pickle(name), name)
        if not (path / f"meta{EXT}").is_file():
            raise DamagedFileError(f"{path} is not a NATS-Bench directory: it has no meta{EXT}")
        return _arch_strings(read_pickle(path / f"meta{EXT}"), path), fetch, path.name
    if path.suffix == ".pth":
        raise InvalidValueError(f"{path} is an older NAS-Bench-201 file, which nasnb does not read; NATS-Bench's "
                                f"topology files hold the same runs: {DOWNLOAD}")
    if not path.name.endswith(EXT):
        raise InvalidValueError(f"{path} is not a NATS-Bench file (those end in {EXT}); {DOWNLOAD}")
    whole = read_pickle(path)
    archs, infos = _arch_strings(whole, path), whole.get("arch2infos")
    if not isinstance(infos, dict):
        raise DamagedFileError(f"{path} holds no arch2infos: pass the -simple directory instead")
    return archs, lambda index: results_of(infos.pop(index, None), f"{path} (cell {index})"), path.name  # read once


def _arch_strings(meta, path) -> list:
    archs = meta.get("meta_archs") if isinstance(meta, dict) else None
    if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
        raise DamagedFileError(f"{path} is not a NATS-Bench benchmark: it holds no list of arch strings (meta_archs)")
    return archs


# ---------------------------------------------------------------------- the table

class OfficialTable:
    """NATS-Bench's topology benchmark for one dataset and protocol (module docstring).

    The same interface as `nasnb.bench.Table`: ``query``, ``optimum``, ``regret``, ``space``,
    ``name``, ``meta``, ``max_epochs``, ``seeds``. The official benchmark holds every cell, so
    ``query(arch)["arch"]`` is `arch`'s own string. A cell's file is read when the cell is first
    asked for and its figures kept (about 10 KB a cell); ``optimum`` and ``seeds`` read every cell
    the first time, which takes minutes for the official directory.
    """

    def __init__(self, source, dataset: str = "cifar10-valid", hp: str = "200"):
        self.dataset = check_choice("dataset", dataset, DATASETS)
        self.hp = check_choice("hp", str(hp) if isinstance(hp, int) and not isinstance(hp, bool) else hp, HPS)
        self.space = NB201Space()
        strings, self._fetch, file_name = _open(source, self.hp)
        self._index = {text: index for index, text in enumerate(strings)}  # arch string -> its file's number
        try:  # the official strings are space.format's (tests check all 15,625), so queries look them up as they are
            if self.space.format(self.space.parse(strings[0])) != strings[0] or len(self._index) != len(strings):
                raise InvalidValueError("not in nasnb's form, or repeated")
        except ValueError as err:
            raise DamagedFileError(f"{file_name} is not NATS-Bench's topology benchmark: its arch strings "
                                   f"({short(strings[0])}, ...) are not NB201 cells ({err}); the size benchmark, "
                                   "NATS-sss, is not read") from None
        self._strings, self._records, self._optima = strings, {}, {}  # _records: index -> _extract's figures
        first = self._fetch(0)  # fails now, not in a search, when dataset or hp are not there
        for needed in {self.dataset, DATASETS[self.dataset][2]}:
            if needed not in first.get_dataset_names():
                raise InvalidValueError(f"dataset={needed!r} is not in {file_name}, which holds "
                                        f"{first.get_dataset_names()}; e.g. dataset='cifar10-valid'")
        self.max_epochs = int(first.get_total_epoch(self.dataset))
        self._record(0, first)
        val_split, test_split, val_dataset = DATASETS[self.dataset]
        self.name = f"nb201-official:{self.dataset}:{self.hp}"
        self.meta = {  # JSON types only; no path (a moved benchmark is the same benchmark)
            "benchmark": "NATS-Bench topology search space (the NAS-Bench-201 cells)", "file": file_name,
            "dataset": self.dataset, "hp": self.hp, "max_epochs": self.max_epochs, "cells": len(strings),
            "reader": f"nasnb.bench.official, nats_bench {import_nats_bench().version()}",
            "validation": f"{val_split} of the {val_dataset} training",
            "validation_fallback": ("ori-test (x-valid and x-test together) where x-valid was not recorded, as "
                                    "nats_bench's simulate_train_eval") if val_dataset in WHOLE_TEST else None,
            "test": f"{test_split} of the {self.dataset} training, after its last epoch",
            "accuracy": "fraction (the files hold percent)", "seeds": "a cell's own; None: their mean",
            "train_seconds": "the recorded seconds of epochs 1..epochs (training only)",
            "flops": "multiply-adds, as NATS-Bench counts them",
        }

    def __len__(self) -> int:
        return len(self._strings)

    def __repr__(self) -> str:
        return f"OfficialTable({self.name!r}: {len(self)} cells, {self.max_epochs} epochs, file {self.meta['file']!r})"

    # ------------------------------------------------------------------ one cell's record

    def _extract(self, results) -> dict:
        """The cell's figures for this dataset: validation curves, seconds, test accuracy, costs."""
        val_split, test_split, val_dataset = DATASETS[self.dataset]
        epochs = self.max_epochs
        val_runs, test_runs = results.query(val_dataset), results.query(self.dataset)  # {seed: ResultsCount}
        for run in (*val_runs.values(), *test_runs.values()):
            if run.epochs != epochs:
                raise DamagedFileError(f"cell {results.arch_str} has a run of {run.epochs} epochs in a "
                                       f"benchmark of {epochs} (dataset={self.dataset!r}, hp={self.hp!r})")
        val = np.full((len(val_runs), epochs), np.nan)  # (seeds, epochs), percent for now
        seconds = np.full((len(val_runs), epochs), np.nan)
        for row, run in enumerate(val_runs.values()):
            for i in range(epochs):  # run.eval_acc1es["x-valid@i"]: accuracy after epoch i + 1
                value = run.eval_acc1es.get(f"{val_split}@{i}")
                if value is None and val_dataset in WHOLE_TEST:
                    value = run.eval_acc1es.get(f"ori-test@{i}")
                val[row, i] = np.nan if value is None else value
            if run.train_times is not None:
                seconds[row] = np.cumsum([run.train_times[i] for i in range(epochs)])
        test = np.array([run.eval_acc1es.get(f"{test_split}@{epochs - 1}", np.nan) for run in test_runs.values()],
                        dtype=float)
        costs = results.get_compute_costs(self.dataset)  # means over seeds, in millions
        return {"val_seeds": list(val_runs), "val": val / 100, "seconds": seconds,
                "test_seeds": list(test_runs), "test": test / 100,
                "params": int(round(costs["params"] * 1e6)), "flops": int(round(costs["flops"] * 1e6))}

    def _record(self, index: int, results=None) -> dict:
        record = self._records.get(index)
        if record is None:
            results = self._fetch(index) if results is None else results
            try:
                record = self._records[index] = self._extract(results)
            except (KeyError, ValueError, TypeError, AttributeError) as err:  # a record without what we read
                if isinstance(err, NasnbError):
                    raise
                raise DamagedFileError(f"the record of cell {index} ({self._strings[index]}) lacks what "
                                       f"dataset={self.dataset!r} needs ({type(err).__name__}: {err})") from err
        return record

    def _read_all(self) -> None:
        todo = [i for i in range(len(self)) if i not in self._records]
        if todo:
            from tqdm.auto import tqdm

            for index in tqdm(todo, desc="reading NATS-Bench", disable=len(todo) < 1000):
                self._record(index)

    # ------------------------------------------------------------------ lookups

    def resolve(self, arch) -> tuple:
        """`arch` (an NB201 arch tuple, a sequence of op names, or its string) as a valid arch tuple."""
        return self.space.parse(arch) if isinstance(arch, str) else self.space.validate(arch)

    def check_epochs(self, epochs) -> int:
        if epochs is None:
            return self.max_epochs
        return check_int("epochs", epochs, minimum=1, maximum=self.max_epochs, example=self.max_epochs)

    def _rows(self, seeds: list, seed, text: str, what: str):
        """The rows of `seeds` to average: all (seed None) or the one of `seed`."""
        if seed is None:
            return slice(None)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) not in seeds:
            raise InvalidValueError(f"seed={short(seed)} is not a seed of {text} on {what} (hp={self.hp!r}): it "
                                    f"has {seeds}; e.g. seed={seeds[0]}, or seed=None for their mean")
        return [seeds.index(int(seed))]

    def query(self, arch, epochs: int | None = None, seed: int | None = None) -> dict:
        """The recorded figures of `arch` after `epochs` epochs (None: all), for one `seed` or
        the mean over the cell's seeds (None); the keys of `nasnb.bench.Table.query`."""
        arch = self.resolve(arch)
        text = self.space.format(arch)
        index = self._index.get(text)
        if index is None:
            raise InvalidValueError(f"{text} is not in this benchmark ({len(self)} cells); e.g. {self._strings[0]}")
        epochs, record = self.check_epochs(epochs), self._record(index)
        val_dataset = DATASETS[self.dataset][2]
        rows = self._rows(record["val_seeds"], seed, text, val_dataset)
        test_rows = self._rows(record["test_seeds"], seed, text, self.dataset)
        curve = record["val"][rows, :epochs].mean(axis=0)
        test = float(record["test"][test_rows].mean())
        if np.isnan(curve).any() or np.isnan(test):
            raise DamagedFileError(f"the benchmark did not record every accuracy of {text} on {self.dataset} "
                                   f"up to epoch {epochs} (hp={self.hp!r})")
        seconds = float(record["seconds"][rows, epochs - 1].mean())
        return {"arch": text, "val_accuracy": float(curve[-1]), "val_curve": curve.tolist(), "test_accuracy": test,
                "train_seconds": None if np.isnan(seconds) else seconds,
                "params": record["params"], "flops": record["flops"], "epochs": epochs,
                "seed": None if seed is None else int(seed)}

    # ------------------------------------------------------------------ all cells at once

    @property
    def seeds(self) -> list:
        """Every seed some cell was trained with (reads every cell the first time)."""
        self._read_all()
        return sorted({s for r in self._records.values() for s in (*r["val_seeds"], *r["test_seeds"])})

    def optimum(self, metric: str = "val_accuracy", epochs: int | None = None) -> tuple[str, float]:
        """(arch string, value): the cell with the best mean `metric` ("val_accuracy" after
        `epochs`, or the final "test_accuracy"); ties go to the first in enumerate order."""
        if metric not in METRICS:
            raise InvalidValueError(f"metric={short(metric)} is not one the table ranks by; choose from "
                                    f"{list(METRICS)}, e.g. metric='val_accuracy'")
        key = (metric, self.check_epochs(epochs) if metric == "val_accuracy" else None)
        if key not in self._optima:  # regret() asks once per trial: remember the answer
            self._read_all()
            best = None
            for text in sorted(self._index, key=lambda t: arch_index(self.space.parse(t))):  # for the tie rule
                record = self._records[self._index[text]]
                value = record["val"][:, key[1] - 1].mean() if key[1] else record["test"].mean()
                if not np.isnan(value) and (best is None or value > best[1]):
                    best = (text, float(value))
            self._optima[key] = best
        return self._optima[key]

    def regret(self, value: float, metric: str = "test_accuracy") -> float:
        """How far `value` is below the benchmark's best mean `metric` (0 at the optimum)."""
        if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool):
            raise InvalidTypeError(f"value must be an accuracy (a number in [0, 1]), got {short(value)}")
        return self.optimum(metric)[1] - float(value)


def load_nb201(path, dataset: str = "cifar10-valid", hp: str = "200") -> OfficialTable:
    """The official NATS-Bench topology benchmark (NAS-Bench-201's cells) at `path`, as a nasnb table.

    Args:
        path: the extracted ``NATS-tss-v1_0-3ffb9-simple`` directory, the ``NATS-tss-v1_0-3ffb9.pickle.pbz2``
            file, or an API object from ``nats_bench.create(path, "tss", ...)``.
        dataset: "cifar10-valid", "cifar10", "cifar100" or "ImageNet16-120".
        hp: the training protocol, "12" or "200" epochs.

    Only load files you trust: they are pickles (read with a restricted unpickler; module docstring).
    """
    return OfficialTable(path, dataset=dataset, hp=hp)
