"""nasnb.bench.Table and TableEvaluator on a synthetic table whose every figure the test chose."""
import itertools

import numpy as np
import torch
import pytest

from nasnb.bench import Table, arch_at, arch_index
from nasnb.bench.build import unique_cells
from nasnb.errors import DamagedFileError, InvalidValueError, NasnbError, ResumeMismatchError
from nasnb.evaluators import TableEvaluator
from nasnb.spaces import NB201Space
from nasnb.strategies import RandomSearch, RegularizedEvolution

SPACE = NB201Space()
VAL, TEST, SEEDS, EPOCHS = 397, 400, [0, 1, 2], 4


@pytest.fixture(scope="module")
def synthetic():
    """Counts drawn at random, seconds and costs that encode the row / the arch, so every lookup can
    be checked against the arrays by hand."""
    cells = unique_cells()
    rng = np.random.default_rng(0)
    n = len(cells)
    val = rng.integers(0, VAL + 1, size=(n, len(SEEDS), EPOCHS)).astype(np.uint16)
    test = rng.integers(0, TEST + 1, size=(n, len(SEEDS))).astype(np.uint16)
    seconds = rng.uniform(1, 2, size=(n, len(SEEDS))).astype(np.float32)
    row_of = {c: r for r, c in enumerate(cells)}
    class_of = np.array([row_of[arch_index(SPACE.canonical(a))] for a in SPACE.enumerate()], dtype=np.uint16)
    params = np.arange(len(SPACE), dtype=np.int64) * 3 + 7
    flops = np.arange(len(SPACE), dtype=np.int64) * 5 + 1
    meta = {"name": "synthetic", "seeds": SEEDS, "val_size": VAL, "test_size": TEST, "epochs": EPOCHS}
    table = Table("synthetic", meta, np.array(cells, dtype=np.int32), class_of, val, test, seconds, params, flops)
    return table, cells, val, test, seconds


def test_arch_index_is_the_position_in_enumerate_order():
    archs = list(SPACE.enumerate())
    assert archs == list(itertools.product(SPACE.OPS, repeat=6))  # first edge slowest
    for k in (0, 1, 4, 5, 777, 15624):
        assert arch_index(archs[k]) == k and arch_at(k) == archs[k]


def test_the_table_holds_one_row_per_class_of_the_benchmark(synthetic):
    table, cells, *_ = synthetic
    assert len(table) == len(cells) == 6466  # NAS-Bench-201's unique topologies
    for k in (0, 100, 5000, 15624):
        arch = arch_at(k)
        rep = SPACE.canonical(arch)
        assert table.query(arch)["arch"] == SPACE.format(rep)
        assert table.row(arch) == table.row(rep) == cells.index(arch_index(rep))


def test_query_is_the_recorded_counts_over_the_split_sizes(synthetic):
    table, cells, val, test, seconds = synthetic
    rng = np.random.default_rng(1)
    for k in rng.integers(len(SPACE), size=20):
        arch = arch_at(int(k))
        r = cells.index(arch_index(SPACE.canonical(arch)))
        for epochs in (1, 3, None):
            e = EPOCHS if epochs is None else epochs
            q = table.query(SPACE.format(arch), epochs=epochs)  # a string works as well as a tuple
            assert q["val_curve"] == pytest.approx([val[r, :, j].astype(float).mean() / VAL for j in range(e)])
            assert q["val_accuracy"] == q["val_curve"][-1] and q["epochs"] == e and q["seed"] is None
            assert q["test_accuracy"] == pytest.approx(test[r].astype(float).mean() / TEST)
            assert q["train_seconds"] == pytest.approx(seconds[r].astype(float).mean() * e / EPOCHS, rel=1e-6)
            for k_seed, seed in enumerate(SEEDS):
                one = table.query(arch, epochs=epochs, seed=seed)
                assert one["val_accuracy"] == val[r, k_seed, e - 1] / VAL
                assert one["test_accuracy"] == test[r, k_seed] / TEST and one["seed"] == seed
        # costs are the arch's own, not its representative's
        assert q["params"] == 3 * int(k) + 7 and q["flops"] == 5 * int(k) + 1


def test_optimum_and_vectorised_views_agree_with_a_loop_over_every_cell(synthetic):
    table, *_ = synthetic
    best = max(SPACE.enumerate(), key=lambda a: (table.query(a, epochs=2)["val_accuracy"], -arch_index(a)))
    arch, value = table.optimum(epochs=2)
    assert value == table.query(best, epochs=2)["val_accuracy"]
    assert table.query(arch, epochs=2)["val_accuracy"] == value
    assert table.val_accuracy(epochs=2)[table.row(arch)] == value
    best_test = max(table.query(a)["test_accuracy"] for a in table.cells)
    assert table.optimum("test_accuracy")[1] == pytest.approx(best_test)
    assert table.regret(best_test) == pytest.approx(0.0)


def test_bad_input_is_refused_with_a_clear_error(synthetic):
    table, *_ = synthetic
    arch = arch_at(0)
    for kwargs, word in (({"epochs": 0}, "epochs"), ({"epochs": EPOCHS + 1}, "epochs"), ({"seed": 7}, "seed"),
                         ({"seed": True}, "seed")):
        with pytest.raises(NasnbError, match=word):
            table.query(arch, **kwargs)
    with pytest.raises(ValueError, match="node"):
        table.query("|nor_conv_3x3~0|")
    with pytest.raises(NasnbError, match="op"):
        table.query(("conv",) * 6)
    with pytest.raises(InvalidValueError, match="metric"):
        table.optimum("accuracy")


def test_save_and_load_round_trip_and_damage(synthetic, tmp_path):
    table, *_ = synthetic
    path = tmp_path / "t.npz"
    table.save(path)
    again = Table.from_file(path)
    assert again.name == "synthetic" and again.seeds == SEEDS and again.max_epochs == EPOCHS
    for a in (arch_at(3), arch_at(9999)):
        for seed in (None, 1):
            assert again.query(a, seed=seed) == table.query(a, seed=seed)
    (tmp_path / "bad.npz").write_bytes(path.read_bytes()[:200])
    with pytest.raises(DamagedFileError):
        Table.from_file(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DamagedFileError, match="lacks"):
        Table.from_file(tmp_path / "other.npz")


def test_table_evaluator_in_a_search(synthetic, tmp_path):
    table, *_ = synthetic
    ev = TableEvaluator(table, epochs=2)
    search = RegularizedEvolution(SPACE, ev, population_size=10, sample_size=3, seed=0)
    search.run(40, progress=False)
    for trial in search.history.trials:
        q = table.query(trial.arch, epochs=2)
        assert trial.metrics["val_accuracy"] == q["val_accuracy"]
        assert trial.metrics["seconds"] == q["train_seconds"]  # simulated seconds, not the lookup's
        assert trial.metrics["trained_arch"] == q["arch"]
    assert ev.lookups == 40
    # a resume with another budget is refused: the same arch would have other figures
    path = tmp_path / "run.ckpt"
    RandomSearch(SPACE, TableEvaluator(table, epochs=2), seed=0).run(5, checkpoint=path, progress=False)
    with pytest.raises(ResumeMismatchError, match="epochs"):
        RandomSearch(SPACE, TableEvaluator(table, epochs=3), seed=0).run(5, checkpoint=path, progress=False)
    with pytest.raises(NasnbError, match="seed"):
        TableEvaluator(table, seed=5)
    with pytest.raises(NasnbError, match="epochs"):
        TableEvaluator(table, epochs=EPOCHS + 1)
    with pytest.raises(TypeError, match="table"):
        TableEvaluator(object())


def test_data_is_the_protocols_split_and_refuses_another(synthetic):
    table, *_ = synthetic
    import nasnb.data

    with pytest.raises(DamagedFileError, match="which data"):
        table.data()  # the synthetic table names no data
    spec = {"name": "digits", "seed": 0, "train_size": 120, "val_size": 80}
    # the split the table names, loaded independently of Table.data
    expected = nasnb.data.load("digits", seed=0, train_size=120, val_size=80)
    named = Table("named", {**table.meta, "data": spec, "data_fingerprint": expected.fingerprint()},
                  np.array(unique_cells(), dtype=np.int32), table.class_of, table.val_correct, table.test_correct,
                  table.train_seconds, table.params, table.flops)
    data = named.data()
    assert len(data.train[1]) == 120 and len(data.val[1]) == 80
    assert torch.equal(data.train[0], expected.train[0]) and torch.equal(data.val[1], expected.val[1])
    moved = Table("moved", {**named.meta, "data_fingerprint": "0" * 16}, np.array(unique_cells(), dtype=np.int32),
                  table.class_of, table.val_correct, table.test_correct, table.train_seconds, table.params, table.flops)
    with pytest.raises(DamagedFileError, match="fingerprint"):
        moved.data()
