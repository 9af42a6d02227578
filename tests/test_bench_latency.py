"""The latency_ms of every NB201 cell: the optional array, its shards, the evaluator, the shipped table."""
import json

import numpy as np
import pytest

from nasnb.bench import Table, arch_at, arch_index, load
from nasnb.bench.build import (LATENCY_METHOD, RELATIVE_FOLDER, RELATIVE_LATENCY_METHOD, cell_latency,
                               cell_relative_latency, protocol_hash, read_latency, write_json_atomic)
from nasnb.bench.evaluator import TableEvaluator
from nasnb.errors import DamagedFileError, InvalidValueError, ResumeMismatchError
from nasnb.spaces.nb201 import NB201Space
from nasnb.strategies.nsga2 import NSGA2

SIZE = 15625
CONVS = ("nor_conv_1x1", "nor_conv_3x3")


def tiny_table(latency=None) -> Table:
    """Every cell its own row (no canonical classes: cheap to build), 1 seed, 2 epochs."""
    rng = np.random.default_rng(0)
    val = rng.integers(0, 11, size=(SIZE, 1, 2)).astype(np.uint16)
    test = rng.integers(0, 11, size=(SIZE, 1)).astype(np.uint16)
    meta = {"name": "tiny", "seeds": [0], "val_size": 10, "test_size": 10, "epochs": 2}
    return Table("tiny", meta, np.arange(SIZE, dtype=np.int32), np.arange(SIZE, dtype=np.uint16), val, test,
                 np.ones((SIZE, 1), np.float32), np.arange(SIZE, dtype=np.int64), np.arange(SIZE, dtype=np.int64),
                 latency_ms=latency)


def test_a_table_with_latency_looks_each_cell_s_own_up_and_keeps_it_through_a_file(tmp_path):
    latency = (np.arange(SIZE) * 0.5 + 1).astype(np.float32)  # cell k: 1 + k/2 ms
    table = tiny_table(latency)
    for k in (0, 1, 777, SIZE - 1):
        assert table.query(arch_at(k))["latency_ms"] == 1 + k / 2
    table.save(tmp_path / "t.npz")
    again = Table.from_file(tmp_path / "t.npz")
    assert again.latency().shape == (SIZE,) and again.latency().dtype == np.float32
    assert np.array_equal(again.latency(), latency)
    ev = TableEvaluator(again)
    assert "latency_ms" in ev.metrics and ev(arch_at(10))["latency_ms"] == 6.0


def test_nsga2_searches_accuracy_against_latency_at_table_speed():
    latency = (np.arange(SIZE) * 0.5 + 1).astype(np.float32)
    table = tiny_table(latency)
    objectives = {"val_accuracy": "max", "latency_ms": "min"}
    search = NSGA2(NB201Space(), TableEvaluator(table), objectives=objectives, population_size=4, seed=0)
    history = search.run(12, progress=False)
    trials = [t for t in history.trials if t.ok]
    assert len(trials) == 12
    for t in trials:  # every trial's latency is its own cell's entry
        assert t.metrics["latency_ms"] == 1 + arch_index(NB201Space().parse(t.arch)) / 2
    front = history.front(objectives)
    for f in front:  # nothing tried dominates a front member
        assert not any(t.metrics["val_accuracy"] >= f.metrics["val_accuracy"] and t.metrics["latency_ms"]
                       <= f.metrics["latency_ms"] and (t.metrics["val_accuracy"], t.metrics["latency_ms"])
                       != (f.metrics["val_accuracy"], f.metrics["latency_ms"]) for t in trials)


def test_a_table_without_latency_loads_and_says_so_when_asked(tmp_path):
    table = tiny_table()
    table.save(tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz") as archive:
        assert "latency_ms" not in archive.files
    again = Table.from_file(tmp_path / "t.npz")
    assert again.latency_ms is None and "latency_ms" not in again.query(arch_at(3))
    with pytest.raises(DamagedFileError, match="no latency_ms"):
        again.latency()
    ev = TableEvaluator(again)
    assert "latency_ms" not in ev.metrics and "latency_ms" not in ev(arch_at(3))
    with pytest.raises(InvalidValueError, match="latency_ms"):  # refused when the search starts
        NSGA2(NB201Space(), ev, objectives={"val_accuracy": "max", "latency_ms": "min"}, population_size=4)


def test_a_latency_array_of_the_wrong_shape_is_refused():
    with pytest.raises(DamagedFileError, match="latency_ms has shape"):
        tiny_table(np.ones(100, np.float32))


def shard(folder, k, start, stop, passes, method=LATENCY_METHOD):
    machine = {"processor": "test"}
    write_json_atomic(folder / f"latency-{k:04d}.json", {
        "method_hash": protocol_hash(method), "method": method, "indices": [start, stop],
        "passes": [{"median_ms": p, "machine": machine, "load_start": [1.0, 1, 1], "load_end": [3.0, 1, 1]}
                   for p in passes]})


def test_read_latency_keeps_each_cell_s_fastest_pass_and_refuses_gaps_and_other_methods(tmp_path):
    assert read_latency(tmp_path) is None  # no shards: no latency
    half = SIZE // 2
    first, second = np.full(half, 2.0), np.full(half, 3.0)
    second[:10] = 1.0  # the second pass was faster for these 10 cells
    shard(tmp_path, 0, 0, half, [first.tolist(), second.tolist()])
    with pytest.raises(DamagedFileError, match=f"{SIZE - half} of {SIZE}"):
        read_latency(tmp_path)
    shard(tmp_path, 1, half, SIZE, [[5.0] * (SIZE - half)])
    latency, note = read_latency(tmp_path)
    assert latency[:10].tolist() == [1.0] * 10 and latency[10:half].tolist() == [2.0] * (half - 10)
    assert latency[half:].tolist() == [5.0] * (SIZE - half)
    assert note["passes_per_cell"] == [1, 2] and note["load_1min"] == [1.0, 2.0, 3.0]
    shard(tmp_path, 1, half, SIZE, [[5.0] * (SIZE - half)], method={**LATENCY_METHOD, "repeats": 3})
    with pytest.raises(ResumeMismatchError, match="another folder"):
        read_latency(tmp_path)


def test_cell_latency_is_milliseconds_of_one_forward_pass():
    import time

    import torch

    method = {**LATENCY_METHOD, "warmup": 1, "repeats": 3}
    all_convs = arch_index(("nor_conv_3x3",) * 6)
    ms = cell_latency(method, [0, all_convs])
    model = NB201Space().build(arch_at(all_convs), C=8, N=1, num_classes=10, in_channels=1).eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, 8, 8))
        start = time.perf_counter()
        for _ in range(5):
            model(torch.zeros(1, 1, 8, 8))
        mine = (time.perf_counter() - start) / 5 * 1e3
    assert all(isinstance(t, float) and 0 < t < 1000 for t in ms)
    assert mine / 20 < ms[1] < mine * 20  # the same order of magnitude, in ms (a busy machine is noisy)


def relative_shard(folder, k, start, stop, passes, method=RELATIVE_LATENCY_METHOD):
    """passes: (ratios, reference_ms) per pass."""
    folder.mkdir(exist_ok=True)
    write_json_atomic(folder / f"latency-{k:04d}.json", {
        "method_hash": protocol_hash(method), "method": method, "indices": [start, stop],
        "passes": [{"ratio": list(r), "reference_ms": list(ms), "machine": {"processor": "test"},
                    "load_start": [4.0, 1, 1], "load_end": [2.0, 1, 1]} for r, ms in passes]})


def test_relative_shards_are_ratios_times_the_reference_s_quiet_speed_and_win_over_absolute_ones(tmp_path):
    half = SIZE // 2
    shard(tmp_path, 0, 0, SIZE, [[9.0] * SIZE])  # an absolute set: used only while there is no relative one
    assert read_latency(tmp_path)[0].tolist() == [9.0] * SIZE
    folder = tmp_path / RELATIVE_FOLDER
    ratios = np.linspace(0.5, 1.5, half)
    # the reference's readings: 100 of 23,437 at 2 ms (lucky), the rest 3 ms (a quiet core) and more
    # (slow spells), so the 5th percentile, 3.0, is the quiet core and not the lucky few
    slow = np.full(half, 3.0)
    slow[:100] = 2.0
    relative_shard(folder, 0, 0, half, [(ratios, slow), (ratios * 1.1, np.full(half, 6.0))])
    with pytest.raises(DamagedFileError, match=f"{SIZE - half} of {SIZE}"):
        read_latency(tmp_path)  # a partial relative set is refused, not mixed with the absolute one
    relative_shard(folder, 1, half, SIZE, [(np.full(SIZE - half, 2.0), np.full(SIZE - half, 4.0))])
    latency, note = read_latency(tmp_path)
    readings = np.concatenate([slow, np.full(half, 6.0), np.full(SIZE - half, 4.0)])
    scale = np.percentile(readings, 5)
    assert scale == 3.0 and note["reference_ms"] == 3.0
    # two passes: the median of a cell's two ratios is their mean
    assert np.allclose(latency[:half], (ratios + ratios * 1.1) / 2 * 3.0, rtol=1e-6)
    assert np.allclose(latency[half:], 2.0 * 3.0)
    assert note["method"] == RELATIVE_LATENCY_METHOD and note["passes_per_cell"] == [1, 2]
    relative_shard(folder, 1, half, SIZE, [(np.full(SIZE - half, 2.0), np.full(SIZE - half, 4.0))],
                   method={**RELATIVE_LATENCY_METHOD, "repeats": 3})
    with pytest.raises(ResumeMismatchError, match="another folder"):
        read_latency(tmp_path)


def test_a_cell_timed_against_itself_is_one_reference():
    reference = arch_index(NB201Space().parse(RELATIVE_LATENCY_METHOD["reference"]))
    all_convs = arch_index(("nor_conv_3x3",) * 6)
    ratios, reference_ms = cell_relative_latency({**RELATIVE_LATENCY_METHOD, "repeats": 15}, [reference, 0, all_convs])
    assert 0.8 < ratios[0] < 1.25  # the reference's own network, timed against itself
    assert ratios[1] < ratios[0] < ratios[2]  # no op at all (cell 0 is all 'none'), the reference, six 3x3 convs
    assert all(0.01 < ms < 1000 for ms in reference_ms)


@pytest.fixture(scope="module")
def shipped():
    return load("nb201-digits")


def test_the_shipped_table_has_the_latency_of_every_cell_and_how_it_was_measured(shipped):
    latency = shipped.latency()
    assert latency.shape == (SIZE,) and latency.dtype == np.float32 and np.isfinite(latency).all()
    assert 0.01 < latency.min() and latency.max() < 1000  # ms of a tiny network, not seconds or us
    assert shipped.meta["latency"]["method"] == RELATIVE_LATENCY_METHOD
    fewest, most = shipped.meta["latency"]["passes_per_cell"]  # a run may stop before its last pass
    assert 1 <= fewest <= most <= RELATIVE_LATENCY_METHOD["passes"]
    low, middle, high = shipped.meta["latency"]["reference_ms_spread"]  # the reference's 5/50/95th percentiles
    assert shipped.meta["latency"]["reference_ms"] == low <= middle <= high


def test_shipped_latency_grows_with_the_number_of_convs_on_average(shipped):
    from scipy.stats import spearmanr

    convs = np.array([sum(op in CONVS for op in arch_at(k)) for k in range(SIZE)])
    latency = shipped.latency()
    medians = [np.median(latency[convs == n]) for n in range(7)]  # medians: a slow spell's outliers aside
    assert medians[6] > medians[3] > medians[0]
    assert spearmanr(convs, latency)[0] > 0


def test_the_shipped_counts_are_the_shards_records(shipped):
    """Adding latency_ms rebuilt the file: its accuracies must still be the trainings' records."""
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "benchmarks" / "tables" / "nb201-digits"
    paths = sorted(folder.glob("shard-*.json"))
    if not paths:
        pytest.skip("the shards are not in this checkout")
    for path in paths[::40]:
        for r in json.loads(path.read_text())["records"]:
            row, k = shipped.row(arch_at(r["index"])), shipped.seeds.index(r["seed"])
            assert shipped.val_correct[row, k].tolist() == r["val_correct"]
            assert shipped.test_correct[row, k] == r["test_correct"]
