"""Tabular NAS benchmarks: look an architecture's training up instead of running it.

    import nasnb
    table = nasnb.bench.load("nb201-digits")     # shipped inside the package, no download
    table.query("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    table.optimum()
    from nasnb.evaluators import TableEvaluator
    search = RegularizedEvolution(NB201Space(), TableEvaluator(table), seed=0)

`load` reads a table that ships with nasnb (TABLES); `Table.from_file(path)` any table file that
scripts/build_table.py wrote.
"""
from __future__ import annotations

import functools
from pathlib import Path

from nasnb.bench.official import OfficialTable, load_nb201
from nasnb.bench.table import CellNotInTableError, Table, arch_at, arch_index
from nasnb.checks import short
from nasnb.errors import UnknownNameError

DATA = Path(__file__).resolve().parent / "data"
TABLES = {  # name -> (file inside nasnb/bench/data, what it is)
    "nb201-digits": ("nb201-digits.npz", "every unique NB201 cell trained on the bundled digits, 3 seeds "
                                         "(protocol: table.meta; built by scripts/build_table.py)"),
    "nb201-shapes": ("nb201-shapes.npz", "a partial table: the 496 classes of the NB201 cells made of skip, 1x1 "
                                         "and 3x3 convs (table.space), trained on the generated shapes, 1 seed, "
                                         "digits' protocol "
                                         "(built by benchmarks/tables/nb201-shapes/build.py)"),
}


@functools.lru_cache(maxsize=None)
def _load(name: str) -> Table:
    path = DATA / TABLES[name][0]
    if not path.exists():
        raise FileNotFoundError(f"the table {name!r} is not in this installation ({path} is missing); "
                                "build it with: python scripts/build_table.py")
    return Table.from_file(path, name)


def load(name: str = "nb201-digits") -> Table:
    """The shipped table `name` (read once per process, then shared: a Table is read-only)."""
    if not isinstance(name, str) or name not in TABLES:
        raise UnknownNameError(f"unknown table name={short(name)}; nasnb ships {list(TABLES)}, "
                               "e.g. name='nb201-digits' (official NAS-Bench-201 files: nasnb.bench.load_nb201(path))")
    return _load(name)


__all__ = ["Table", "CellNotInTableError", "TABLES", "load", "load_nb201", "OfficialTable", "arch_at", "arch_index"]
