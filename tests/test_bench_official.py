"""load_nb201, on small benchmarks in NATS-Bench's own format that these tests write.

The benchmark is built the way NATS-Bench's tss-collect.py built the official one: nats_bench's
ResultsCount and ArchResults, "new" runs (every split evaluated every epoch, measured epoch times)
for hp="12" and "old" NAS-Bench-201 runs (some splits evaluated only after the last epoch, pseudo
epoch times) for hp="200", saved with nats_bench.pickle_save. nats_bench itself reads it back (the
independent reader); nasnb's figures must be the written ones, in fractions, and agree with it.
"""
import collections
import os
import pickle
import sys

import numpy as np
import pytest

nb = pytest.importorskip("nats_bench")
from nats_bench.genotype_utils import TopologyStructure  # noqa: E402

from nasnb.bench import official  # noqa: E402
from nasnb.bench.official import load_nb201  # noqa: E402
from nasnb.errors import DamagedFileError, InvalidValueError, NasnbError  # noqa: E402
from nasnb.spaces import NB201Space  # noqa: E402

DATASETS = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
SPLITS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test",),
          "cifar100": ("x-valid", "x-test", "ori-test"), "ImageNet16-120": ("x-valid", "x-test", "ori-test")}
FINAL_ONLY = {"cifar10-valid": ("ori-test",), "cifar10": (), "cifar100": ("x-valid", "x-test"),
              "ImageNet16-120": ("x-valid", "x-test")}  # what the old 200-epoch runs evaluated only at the end
CELLS = [  # (ops in the order of the string's tokens, seeds of the 200-epoch runs); index = position
    (("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect"), (777, 888, 999)),
    (("avg_pool_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_1x1", "skip_connect", "skip_connect"), (777,)),
    (("nor_conv_1x1", "none", "nor_conv_3x3", "skip_connect", "none", "nor_conv_3x3"), (777, 888)),
    (("none",) * 6, (777, 888, 999)),
    (("skip_connect", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3"), (888, 999)),
]


def official_string(ops):
    """The arch string as NATS-Bench's own structure class writes it: node i lists (op, input j)."""
    nodes = [((ops[0], 0),), ((ops[1], 0), (ops[2], 1)), ((ops[3], 0), (ops[4], 1), (ops[5], 2))]
    return TopologyStructure(nodes).tostr()


def write_benchmark(root, cells=CELLS, hps=("12", "200"), datasets=DATASETS):
    """Write the -simple directory and the single file; return what was written, in percent."""
    rng = np.random.default_rng(0)
    written = {}  # (index, hp, dataset, seed) -> {"times": [...], split: {iepoch: accuracy}}
    archs = [official_string(ops) for ops, _ in cells]
    arch2infos = {}
    for index, (arch, (_, seeds_200)) in enumerate(zip(archs, cells)):
        hp2info = collections.OrderedDict()
        for hp in hps:
            epochs, new = int(hp), hp == "12"
            info = nb.ArchResults(index, arch)
            for dataset in datasets:
                for seed in ((777,) if new else seeds_200):
                    times = list(rng.uniform(5, 9, epochs)) if new else [7.5] * epochs
                    record = {"times": times}
                    config = {"channel": 16, "num_cells": 5, "arch_str": arch, "class_num": 10}
                    train = collections.OrderedDict((i, float(rng.uniform(10, 99))) for i in range(epochs))
                    params = np.float64(300_000 + 1000 * index) / 1e6  # AutoDL counts in numpy, in millions
                    run = nb.ResultsCount(dataset, None, train, train, params, 40.5 + index, config, seed, epochs,
                                          None)
                    accs, losses, eval_times = {}, {}, {}
                    for split in SPLITS[dataset]:
                        last_only = not new and split in FINAL_ONLY[dataset]
                        record[split] = {i: round(float(rng.uniform(10, 95)), 2) for i in range(epochs)
                                         if not last_only or i == epochs - 1}
                        if new:
                            for i in range(epochs):
                                key = f"{split}@{i}"
                                accs[key], losses[key], eval_times[key] = record[split][i], 1.0, 0.5
                        else:
                            run.update_OLD_eval(split, record[split], {i: 1.0 for i in record[split]})
                    if new:
                        run.update_train_info(train, train, train, collections.OrderedDict(enumerate(times)))
                        run.update_eval(accs, losses, eval_times)
                    info.update(dataset, seed, run)
                    written[index, hp, dataset, seed] = record
                if not new:  # as tss-collect.py's correct_time_related_info
                    info.reset_pseudo_train_times(dataset, None, 7.5)
                    for split in SPLITS[dataset]:
                        info.reset_pseudo_eval_times(dataset, None, split, 0.25)
                info.reset_latency(dataset, None, 0.01)
            hp2info[hp] = info.state_dict()
        nb.pickle_save(hp2info, str(root / f"simple/{index:06d}.pickle"))
        arch2infos[index] = hp2info
    nb.pickle_save({"meta_archs": archs, "total_archs": len(archs), "arch2infos": None,
                    "evaluated_indexes": set()}, str(root / "simple/meta.pickle"))
    nb.pickle_save({"meta_archs": archs, "total_archs": len(archs), "arch2infos": arch2infos,
                    "evaluated_indexes": set(arch2infos)}, str(root / "NATS-tss-test.pickle"))
    return archs, written


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("nats")
    (root / "simple").mkdir()
    archs, written = write_benchmark(root)
    api = nb.create(str(root / "simple"), "tss", fast_mode=True, verbose=False)  # nats_bench reads it
    return root, archs, written, api


def written_mean(written, index, hp, dataset, split, iepoch, seeds):
    return np.mean([written[index, hp, dataset, s][split][iepoch] for s in seeds])


# ---------------------------------------------------------------------- arch strings


def test_arch_strings_are_nats_benchs():
    space = NB201Space()
    classes = {}
    for arch in space.enumerate():
        structure = TopologyStructure.str2structure(space.format(arch))  # nats_bench's parser
        assert structure.nodes == [((arch[0], 0),), ((arch[1], 0), (arch[2], 1)),
                                   ((arch[3], 0), (arch[4], 1), (arch[5], 2))]  # node i: (op, input j)
        classes.setdefault(structure.to_unique_str(consider_zero=True), set()).add(space.canonical(arch))
    assert len(classes) == 6466  # NAS-Bench-201's count of unique cells
    assert all(len(reps) == 1 for reps in classes.values())  # its classes are nasnb's canonical ones
    example = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert official_string(space.parse(example)) == example == space.format(space.parse(example))


# ---------------------------------------------------------------------- figures


def test_nats_bench_reads_the_written_benchmark(bench):
    root, archs, written, api = bench
    assert len(api) == len(archs) and api.query_index_by_arch(archs[2]) == 2
    info = api.get_more_info(2, "cifar10-valid", iepoch=4, hp="12", is_random=777)
    record = written[2, "12", "cifar10-valid", 777]
    assert info["valid-accuracy"] == record["x-valid"][4]
    assert info["train-all-time"] == pytest.approx(sum(record["times"][:5]))  # iepoch 4: after 5 epochs


@pytest.mark.parametrize("epochs", [1, 5, 12])
def test_epochs_count_from_one_and_percent_becomes_fraction(bench, epochs):
    root, archs, written, api = bench
    table = load_nb201(root / "simple", dataset="cifar10-valid", hp="12")
    q = table.query(archs[2], epochs=epochs, seed=777)
    record = written[2, "12", "cifar10-valid", 777]
    assert q["val_curve"] == pytest.approx([record["x-valid"][i] / 100 for i in range(epochs)])
    assert q["val_accuracy"] == pytest.approx(record["x-valid"][epochs - 1] / 100)
    assert q["train_seconds"] == pytest.approx(sum(record["times"][:epochs]))
    assert q["test_accuracy"] == pytest.approx(record["ori-test"][11] / 100)  # after the full training
    info = api.get_more_info(2, "cifar10-valid", iepoch=epochs - 1, hp="12", is_random=777)
    assert q["val_accuracy"] == pytest.approx(info["valid-accuracy"] / 100)
    assert q["train_seconds"] == pytest.approx(info["train-all-time"])
    assert (q["arch"], q["epochs"], q["seed"]) == (archs[2], epochs, 777)


def test_mean_over_seeds_and_one_seed(bench):
    root, archs, written, api = bench
    table = load_nb201(root / "simple")  # cifar10-valid, hp 200
    seeds = (777, 888, 999)
    mean = table.query(archs[0], epochs=50)
    assert mean["seed"] is None and table.max_epochs == 200
    val = written_mean(written, 0, "200", "cifar10-valid", "x-valid", 49, seeds)
    assert mean["val_accuracy"] == pytest.approx(val / 100)
    assert mean["val_accuracy"] * 100 == pytest.approx(
        api.get_more_info(0, "cifar10-valid", iepoch=49, hp="200", is_random=False)["valid-accuracy"])
    test = written_mean(written, 0, "200", "cifar10-valid", "ori-test", 199, seeds)  # written after epoch 200 only
    assert mean["test_accuracy"] == pytest.approx(test / 100)
    assert mean["train_seconds"] == pytest.approx(50 * 7.5)
    one = table.query(archs[0], epochs=50, seed=888)
    assert one["val_accuracy"] == pytest.approx(written[0, "200", "cifar10-valid", 888]["x-valid"][49] / 100)
    assert one["seed"] == 888 and one["val_accuracy"] != mean["val_accuracy"]


def test_params_and_flops_in_units(bench):
    root, archs, written, api = bench
    table = load_nb201(root / "simple", dataset="cifar100", hp=200)
    q = table.query(NB201Space().parse(archs[4]))  # an arch tuple works as well as its string
    assert (q["params"], q["flops"]) == (304_000, 44_500_000)  # 0.304 M params, 44.5 MFLOPs written
    costs = api.get_cost_info(4, "cifar100", hp="200")
    assert q["params"] == round(costs["params"] * 1e6) and q["flops"] == round(costs["flops"] * 1e6)


def test_200_epoch_cifar100_curve_is_the_whole_test_split_until_the_last_epoch(bench):
    root, archs, written, api = bench
    table = load_nb201(root / "simple", dataset="cifar100", hp="200")
    record = written[1, "200", "cifar100", 777]  # cell 1 has one seed: simulate_train_eval is deterministic
    q = table.query(archs[1], epochs=30)
    assert q["val_accuracy"] == pytest.approx(record["ori-test"][29] / 100)
    simulated = api.simulate_train_eval(archs[1], "cifar100", iepoch=29, hp="200")[0]
    assert q["val_accuracy"] * 100 == pytest.approx(simulated)
    final = table.query(archs[1])
    assert final["val_accuracy"] == pytest.approx(record["x-valid"][199] / 100)
    assert final["val_curve"][:-1] == pytest.approx([record["ori-test"][i] / 100 for i in range(199)])
    assert final["test_accuracy"] == pytest.approx(record["x-test"][199] / 100)
    assert "ori-test" in table.meta["validation_fallback"]


def test_cifar10_searches_on_the_cifar10_valid_training(bench):
    root, archs, written, api = bench
    table = load_nb201(root / "simple", dataset="cifar10", hp="12")
    q = table.query(archs[3], epochs=7)
    assert q["val_accuracy"] == pytest.approx(written[3, "12", "cifar10-valid", 777]["x-valid"][6] / 100)
    assert q["test_accuracy"] == pytest.approx(written[3, "12", "cifar10", 777]["ori-test"][11] / 100)
    valid_acc, _, time_cost, _ = api.simulate_train_eval(archs[3], "cifar10", iepoch=6, hp="12")
    assert q["val_accuracy"] * 100 == pytest.approx(valid_acc)
    assert q["train_seconds"] == pytest.approx(time_cost - 0.5)  # simulate adds one validation pass (0.5 s)


def test_single_file_and_api_object_give_the_same_figures(bench):
    root, archs, written, api = bench
    from_dir = load_nb201(root / "simple", dataset="ImageNet16-120")
    from_file = load_nb201(root / "NATS-tss-test.pickle.pbz2", dataset="ImageNet16-120")
    whole = nb.create(str(root / "NATS-tss-test.pickle.pbz2"), "tss", fast_mode=False, verbose=False)
    from_api = load_nb201(whole, dataset="ImageNet16-120")
    for arch in archs:
        expected = from_dir.query(arch, epochs=33)
        assert from_file.query(arch, epochs=33) == expected and from_api.query(arch, epochs=33) == expected
    assert from_api.query(archs[0]) == from_dir.query(archs[0])  # and the API object still answers


def test_optimum_and_seeds_agree_with_nats_bench(bench):
    root, archs, written, api = bench
    table = load_nb201(root / "simple")
    best_index, best = api.find_best("cifar10-valid", "x-valid", hp="200")
    assert table.optimum() == (archs[best_index], pytest.approx(best / 100))
    best_index, best = api.find_best("cifar10-valid", "ori-test", hp="200")
    assert table.optimum("test_accuracy") == (archs[best_index], pytest.approx(best / 100))
    values = [written_mean(written, i, "200", "cifar10-valid", "x-valid", 9, seeds)
              for i, (_, seeds) in enumerate(CELLS)]
    assert table.optimum(epochs=10) == (archs[int(np.argmax(values))], pytest.approx(max(values) / 100))
    assert table.seeds == [777, 888, 999] and load_nb201(root / "simple", hp="12").seeds == [777]
    assert table.regret(table.optimum("test_accuracy")[1]) == 0


def test_table_evaluator_runs_on_it(bench):
    from nasnb.evaluators import TableEvaluator

    root, archs, written, api = bench
    table = load_nb201(root / "simple", hp="12")
    evaluator = TableEvaluator(table, epochs=6)
    metrics = evaluator(archs[0])
    assert metrics["val_accuracy"] == pytest.approx(written[0, "12", "cifar10-valid", 777]["x-valid"][5] / 100)
    assert metrics["seconds"] == pytest.approx(sum(written[0, "12", "cifar10-valid", 777]["times"][:6]))
    assert evaluator.settings()["table"] == "nb201-official:cifar10-valid:12"


# ---------------------------------------------------------------------- errors


def test_bad_queries_say_what_is_wrong(bench):
    root, archs, written, api = bench
    table = load_nb201(root / "simple", hp="12")
    with pytest.raises(InvalidValueError, match="not in this benchmark"):
        table.query(("nor_conv_3x3",) * 6)
    with pytest.raises(ValueError, match="NB201 cells have 3"):
        table.query("|nor_conv_3x3~0|+|nor_conv_3x3~0|")
    with pytest.raises(InvalidValueError, match=r"has \[777\]"):
        table.query(archs[0], seed=888)
    with pytest.raises(InvalidValueError, match="epochs"):
        table.query(archs[0], epochs=13)
    with pytest.raises(InvalidValueError, match="metric"):
        table.optimum("accuracy")


def test_bad_paths_and_settings_fail_at_load(bench, tmp_path):
    root, archs, written, api = bench
    with pytest.raises(FileNotFoundError, match="NATS-tss-v1_0-3ffb9-simple"):
        load_nb201(tmp_path / "nowhere")
    with pytest.raises(DamagedFileError, match="meta.pickle.pbz2"):
        load_nb201(tmp_path)
    (tmp_path / "junk.pickle.pbz2").write_bytes(b"not bz2 at all")
    with pytest.raises(DamagedFileError, match="junk.pickle.pbz2"):
        load_nb201(tmp_path / "junk.pickle.pbz2")
    (tmp_path / "NAS-Bench-201-v1_1-096897.pth").write_bytes(b"")
    with pytest.raises(InvalidValueError, match="older NAS-Bench-201"):
        load_nb201(tmp_path / "NAS-Bench-201-v1_1-096897.pth")
    for kwargs, name in (({"dataset": "cifar10-test"}, "dataset"), ({"hp": "90"}, "hp")):
        with pytest.raises(NasnbError, match=name):
            load_nb201(root / "simple", **kwargs)
    sizes = tmp_path / "sss"
    sizes.mkdir()
    nb.pickle_save({"meta_archs": ["64:64:64:64:64"], "total_archs": 1}, str(sizes / "meta.pickle"))
    with pytest.raises(DamagedFileError, match="NATS-sss"):
        load_nb201(sizes)


def test_a_dataset_or_hp_missing_from_the_files(tmp_path):
    (tmp_path / "simple").mkdir()
    write_benchmark(tmp_path, cells=CELLS[:2], hps=("12",), datasets=("cifar10-valid",))
    assert load_nb201(tmp_path / "simple", hp="12").query(CELLS[1][0], epochs=2)["epochs"] == 2
    with pytest.raises(InvalidValueError, match=r"hp='200'.*holds \['12'\]"):
        load_nb201(tmp_path / "simple", hp="200")
    with pytest.raises(InvalidValueError, match="dataset='cifar100'.*cifar10-valid"):
        load_nb201(tmp_path / "simple", dataset="cifar100", hp="12")
    os.remove(tmp_path / "simple" / "000001.pickle.pbz2")
    table = load_nb201(tmp_path / "simple", hp="12")
    with pytest.raises(DamagedFileError, match="000001.pickle.pbz2"):
        table.query(CELLS[1][0])


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):  # what a crafted file would do: call a function while it loads
        return (os.mkdir, (self.path,))


def test_a_pickle_that_would_run_code_is_refused_before_it_runs(tmp_path):
    bench_dir, target = tmp_path / "bench", tmp_path / "created-by-the-pickle"
    bench_dir.mkdir()
    nb.pickle_save({"meta_archs": [_Payload(str(target))]}, str(bench_dir / "meta.pickle"))
    with pytest.raises(DamagedFileError, match="mkdir"):
        load_nb201(bench_dir)
    assert not target.exists()
    pickle.loads(pickle.dumps(_Payload(str(target))))  # the same pickle, read unrestricted, runs it
    assert target.exists()


def test_missing_nats_bench_says_how_to_install(bench, monkeypatch):
    monkeypatch.setitem(sys.modules, "nats_bench", None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "nasnb\[nb201\]"'):
        load_nb201(bench[0] / "simple")


def test_nats_bench_is_imported_only_when_a_benchmark_is_loaded():
    import ast

    tree = ast.parse(open(official.__file__).read())
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    named = [node for node in imports if "nats_bench" in ast.dump(node)]
    assert len(named) == 1 and named[0] not in tree.body  # the one import, inside import_nats_bench()
