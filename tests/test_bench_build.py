"""The table build: shards of one protocol only, assembly of every cell and seed, a real training record."""
import copy
import json

import numpy as np
import pytest

from nasnb.bench import arch_at, arch_index
from nasnb.bench.build import (PROTOCOL, assemble, cell_costs, protocol_hash, read_shard, shard_ranges, train_record,
                               unique_cells, write_json_atomic)
from nasnb.errors import DamagedFileError, ResumeMismatchError
from nasnb.spaces import NB201Space

TINY = {**copy.deepcopy(PROTOCOL), "epochs": 2, "seeds": [0, 1], "data": {**PROTOCOL["data"], "train_size": 100}}


def fake_shards(folder, protocol, skip=0):
    """Shards whose records encode their cell and seed, for every cell and seed (but the last `skip`)."""
    cells = unique_cells()
    for k, chunk in enumerate(shard_ranges(cells, 1000)):
        records = [{"index": c, "seed": s, "seconds": 1.0 + s, "test_correct": (c + s) % 401,
                    "val_correct": [(c + s + e) % 398 for e in range(protocol["epochs"])]}
                   for c in chunk for s in protocol["seeds"]]
        if k == 6 and skip:
            records = records[:-skip]
        write_json_atomic(folder / f"shard-{k:04d}.json", {"protocol_hash": protocol_hash(protocol), "records": records})
    write_json_atomic(folder / "costs.json", {"params": list(range(15625)), "flops": [2 * i for i in range(15625)]})
    return cells


def test_assembly_puts_every_record_where_query_finds_it(tmp_path):
    cells = fake_shards(tmp_path, TINY)
    table = assemble(tmp_path, TINY)
    assert len(table) == 6466 and table.seeds == [0, 1] and table.max_epochs == 2
    space = NB201Space()
    for k in (0, 77, 4000, 15624):
        arch = arch_at(k)
        c = arch_index(space.canonical(arch))  # the representative's index: the record the figures are
        q = table.query(arch, seed=1)
        assert q["val_curve"] == [((c + 1 + e) % 398) / table.val_size for e in range(2)]
        assert q["test_accuracy"] == ((c + 1) % 401) / table.test_size
        assert q["params"] == k and q["flops"] == 2 * k and q["train_seconds"] == 2.0
    assert table.meta["protocol_hash"] == protocol_hash(TINY) and table.meta["val_size"] == 397
    assert c in cells
    path = tmp_path / "t.npz"
    table.save(path)
    assert path.stat().st_size < 2_000_000


def test_a_missing_training_or_another_protocol_is_refused(tmp_path):
    fake_shards(tmp_path, TINY, skip=1)
    with pytest.raises(DamagedFileError, match="1 of"):
        assemble(tmp_path, TINY)
    other = {**TINY, "epochs": 3}
    with pytest.raises(ResumeMismatchError, match="protocol"):
        read_shard(tmp_path / "shard-0000.json", other)


def test_a_training_record_is_the_evaluator_s_curve_as_exact_counts():
    index = arch_index(("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3", "none"))
    a, b = train_record(TINY, index, 0), train_record(TINY, index, 0)
    assert a["val_correct"] == b["val_correct"] and a["test_correct"] == b["test_correct"]  # seeded
    assert len(a["val_correct"]) == 2 and all(0 <= v <= 397 for v in a["val_correct"])
    c = train_record(TINY, index, 1)
    assert (c["val_correct"], c["test_correct"]) != (a["val_correct"], a["test_correct"])  # another seed
    json.dumps(a)  # plain JSON types


def test_costs_are_the_network_s_own():
    got = cell_costs(PROTOCOL, [0, arch_index(("nor_conv_3x3",) * 6)])
    assert got["params"][0] < got["params"][1]
    assert got["flops"][0] < got["flops"][1]
    # the all-none cell and the all-skip cell build the same skeleton with no cell weights
    same = cell_costs(PROTOCOL, [0, arch_index(("skip_connect",) * 6)])
    assert same["params"][0] == same["params"][1]
    assert np.all(np.array(got["params"]) > 0)
