"""Partial tables (a sub-space's classes only), the NB201 op sub-space, and the warm-started evolution."""
import itertools

import numpy as np
import pytest

from nasnb.bench.build import SHAPES_PROTOCOL, protocol_cells, unique_cells
from nasnb.bench.evaluator import TableEvaluator
from nasnb.bench.subspace import NB201OpsSpace
from nasnb.bench.table import MISSING, CellNotInTableError, Table, arch_at, arch_index
from nasnb.errors import InvalidValueError
from nasnb.spaces import NB201Space
from nasnb.strategies.evolution import RegularizedEvolution
from nasnb.warm_start import top_cells

NB201 = NB201Space()
OPS = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3")
VAL, TEST, EPOCHS = 100, 100, 3


def make_table(cells, space_ops=None, name="toy"):
    """A table of `cells` (enumerate positions of representatives) whose final val count is the row
    number mod 101 and whose test count is 100 - that: every figure known by construction."""
    row_of = {c: r for r, c in enumerate(cells)}
    class_of = np.array([row_of.get(arch_index(NB201.canonical(a)), MISSING) for a in NB201.enumerate()],
                        dtype=np.uint16)
    n = len(cells)
    val = np.zeros((n, 1, EPOCHS), dtype=np.uint16)
    val[:, 0, -1] = np.arange(n) % 101
    test = (100 - np.arange(n) % 101).astype(np.uint16)[:, None]
    meta = {"name": name, "seeds": [0], "val_size": VAL, "test_size": TEST, "epochs": EPOCHS}
    if space_ops is not None:
        meta["cells"] = {"ops": list(space_ops)}
    zeros = np.zeros(len(NB201), dtype=np.int64)
    return Table(name, meta, np.array(cells, dtype=np.int32), class_of, val, test,
                 np.ones((n, 1), dtype=np.float32), zeros, zeros)


@pytest.fixture(scope="module")
def partial():
    return make_table(protocol_cells(SHAPES_PROTOCOL), OPS, "shapes-toy")


def test_the_op_sub_space_has_3_to_the_6_cells_and_moves_inside_it():
    space = NB201OpsSpace(list(reversed(OPS)))  # any order: the same space
    assert space == NB201OpsSpace(OPS) and len(space) == 3 ** 6
    archs = list(space.enumerate())
    assert archs == list(itertools.product(OPS, repeat=6))
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = space.sample(rng)
        b = space.mutate(a, rng)
        assert set(a) <= set(OPS) and set(b) <= set(OPS) and sum(x != y for x, y in zip(a, b)) == 1
    assert len(space.neighbors(archs[100])) == 6 * 2
    with pytest.raises(InvalidValueError, match="avg_pool_3x3.*edge"):
        space.validate(("avg_pool_3x3",) * 6)
    with pytest.raises(InvalidValueError, match="ops="):
        NB201OpsSpace(["nor_conv_3x3", "conv_5x5"])


def test_the_shapes_protocol_trains_one_cell_per_class_of_the_sub_space():
    cells = protocol_cells(SHAPES_PROTOCOL)
    keys = {NB201.expression(a, "nb201") for a in itertools.product(OPS, repeat=6)}  # benchmark strings
    assert len(cells) == len(keys) == 496 and set(cells) <= set(unique_cells())


def test_a_partial_table_looks_up_its_classes_and_refuses_the_others(partial):
    cells = protocol_cells(SHAPES_PROTOCOL)
    assert len(partial) == 496 and not partial.complete and partial.space == NB201OpsSpace(OPS)
    for r in (0, 7, 300, 495):
        arch = arch_at(cells[r])
        q = partial.query(arch)
        assert q["val_accuracy"] == (r % 101) / VAL and q["test_accuracy"] == (100 - r % 101) / TEST
        assert partial.covers(arch) and partial.row(NB201.format(arch)) == r
    outside = ("avg_pool_3x3",) * 6
    assert not partial.covers(outside)
    with pytest.raises(CellNotInTableError, match=r"shapes-toy.*496 of NB201's 6,466") as err:
        partial.query(outside)
    assert isinstance(err.value, KeyError)
    with pytest.raises(ValueError):  # a malformed arch is still a malformed arch, not a missing one
        partial.query("|nonsense~0|")
    assert (partial.class_of == MISSING).sum() == 15625 - 3 ** 6  # no other cell shares these classes


def test_a_partial_table_survives_its_file_and_a_complete_one_stays_complete(partial, tmp_path):
    partial.save(tmp_path / "p.npz")
    again = Table.from_file(tmp_path / "p.npz")
    assert again.space == partial.space and len(again) == 496 and not again.complete
    assert np.array_equal(again.val_accuracy(), partial.val_accuracy())
    full = make_table(unique_cells())
    assert full.complete and full.space == NB201 and full.covers(("avg_pool_3x3",) * 6)


def test_top_cells_ranks_by_the_source_table_within_the_target_space(partial):
    # source: a complete table; its val count is row % 101. Among the sub-space's classes, the best are
    # those of the largest row % 101; computed here straight from the arrays.
    full = make_table(unique_cells())
    space = partial.space
    top = top_cells(full, 5, space)
    by_class = {}
    for a in space.enumerate():
        by_class.setdefault(full.row(a), a)
    expected = sorted(by_class, key=lambda r: (-(r % 101), list(by_class).index(r)))[:5]
    assert top == [by_class[r] for r in expected]
    assert all(set(a) <= set(OPS) for a in top)
    assert top_cells(full, 5, space, seed=0) == top  # the toy table's one seed is its mean
    with pytest.raises(InvalidValueError, match="seed=7"):
        top_cells(full, 5, space, seed=7)
    with pytest.raises(InvalidValueError, match="k=497"):
        top_cells(full, 497, space)


def test_a_warm_start_from_top_cells_searches_inside_the_partial_table(partial):
    space, ev = partial.space, TableEvaluator(partial)
    start = top_cells(partial, 4, space)
    search = RegularizedEvolution(space, ev, initial=start, population_size=6, sample_size=2, seed=3)
    search.run(30, progress=False)
    trials = search.history.trials
    assert [space.parse(t.arch) for t in trials[:4]] == start
    assert {t.info["kind"] for t in trials[6:]} <= {"mutation"}
    assert all(partial.covers(t.arch) for t in trials)  # the search never leaves the table's classes
    # the best of the table is the first warm cell, so the search has it from trial 0 on
    assert search.history.best().arch == NB201.format(start[0])
    assert partial.query(start[0])["val_accuracy"] == partial.val_accuracy().max()


def test_a_sub_space_may_give_each_edge_its_own_ops():
    from nasnb.bench.build import SHAPES_SHIPPED_OPS

    space = NB201OpsSpace(SHAPES_SHIPPED_OPS)
    assert len(space) == 3 ** 5 and all(a[0] == "skip_connect" for a in space.enumerate())
    rng = np.random.default_rng(1)
    for _ in range(30):
        a = space.sample(rng)
        b = space.mutate(a, rng)
        assert b[0] == "skip_connect" and sum(x != y for x, y in zip(a, b)) == 1
    assert len(space.neighbors(space.sample(rng))) == 5 * 2
    with pytest.raises(InvalidValueError, match="edge 1<-0"):
        space.validate(("nor_conv_1x1",) * 6)
    keys = {NB201.expression(a, "nb201") for a in space.enumerate()}
    assert len(protocol_cells(SHAPES_PROTOCOL, SHAPES_SHIPPED_OPS)) == len(keys) == 90


def test_assemble_takes_a_sub_space_s_classes_from_the_shards(tmp_path):
    import json

    from nasnb.bench.build import SHAPES_SHIPPED_OPS, assemble, protocol_hash
    from nasnb.errors import DamagedFileError

    protocol = SHAPES_PROTOCOL
    cells = protocol_cells(protocol)
    wanted = set(protocol_cells(protocol, SHAPES_SHIPPED_OPS))
    records = [{"index": c, "seed": 0, "seconds": 1.0 + k, "val_correct": [k % 397] * 10, "test_correct": k % 400}
               for k, c in enumerate(cells[:120])]  # every wanted class, and 30 others
    assert wanted <= {r["index"] for r in records}
    shard = {"protocol_hash": protocol_hash(protocol), "protocol": protocol, "records": records}
    (tmp_path / "shard-0000.json").write_text(json.dumps(shard))
    (tmp_path / "costs.json").write_text(json.dumps({"params": list(range(15625)), "flops": [0] * 15625}))
    table = assemble(tmp_path, protocol, ops=SHAPES_SHIPPED_OPS)
    assert len(table) == 90 and table.space == NB201OpsSpace(SHAPES_SHIPPED_OPS)
    for r in records:
        arch = arch_at(r["index"])
        if r["index"] in wanted:
            assert table.query(arch)["test_accuracy"] == r["test_correct"] / 400
        else:
            assert not table.covers(arch)
    shard["records"] = [r for r in records if r["index"] != min(wanted)]
    (tmp_path / "shard-0000.json").write_text(json.dumps(shard))
    with pytest.raises(DamagedFileError, match="1 of 90 trainings are missing"):
        assemble(tmp_path, protocol, ops=SHAPES_SHIPPED_OPS)


def test_the_shipped_shapes_table_is_the_protocol_s_training_of_its_sub_space():
    import nasnb.bench as bench
    import nasnb.data
    from nasnb.bench.build import PROTOCOL, protocol_hash

    path = bench.DATA / bench.TABLES["nb201-shapes"][0]
    if not path.exists():
        pytest.skip("nb201-shapes is not assembled: python benchmarks/tables/nb201-shapes/build.py --assemble")
    table = bench.load("nb201-shapes")
    keys = {NB201.expression(a, "nb201") for a in table.space.enumerate()}
    assert len(table) == len(keys) and all(table.covers(a) for a in table.space.enumerate())
    assert not table.complete and path.stat().st_size < 200_000
    assert table.meta["protocol_hash"] == protocol_hash(SHAPES_PROTOCOL) and table.seeds == [0]
    assert {k: table.meta[k] for k in ("network", "epochs", "fit")} == {k: PROTOCOL[k] for k in ("network", "epochs",
                                                                                              "fit")}
    data = nasnb.data.load("shapes", seed=0, train_size=500, val_size=397)
    assert table.meta["data_fingerprint"] == data.fingerprint() and table.meta["data"]["name"] == "shapes"
    val = table.val_accuracy()
    assert np.median(val) > 0.2 and val.max() - np.median(val) > 0.05  # beats chance (0.1); cells differ
    assert np.allclose(val * 397, np.round(val * 397))  # counts of the 397 validation images
