"""Searches on a real Dask cluster (nasnb/distributed.py, `nasnb search --dask/--workers`).

One LocalCluster of two one-thread worker processes on 127.0.0.1 serves the module. Faults are
real: a worker process is ended with SIGKILL while it evaluates a trial, a driver process is ended
with SIGKILL mid-run, an evaluator raises on a worker. Each history is checked against the batch
protocol written out with ask/tell in this process (ask `batch` proposals, evaluate them, tell them
in ask order), and each metric against the toy space's formula computed here by hand.
"""
import importlib.util
import json
import linecache
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from concurrent.futures import Executor, Future
from pathlib import Path

import pytest
import torch

import nasnb
from nasnb import cli
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.history import History
from nasnb.spaces import toy
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import RandomSearch, RegularizedEvolution, Reinforce

HAS_DASK = importlib.util.find_spec("distributed") is not None
needs_dask = pytest.mark.skipif(not HAS_DASK, reason='dask.distributed is not installed: pip install "nasnb[dask]"')
FAULTS = Counter()  # what the cluster survived, printed when the module's cluster closes (pytest -s)


@pytest.fixture(scope="module")
def cluster():
    from nasnb.distributed import dask_executor

    with dask_executor(workers=2, threads_per_worker=1) as executor:
        yield executor
    print(f"\nDask faults survived: {dict(FAULTS)}")


@pytest.fixture
def executor(cluster):
    cluster.client.wait_for_workers(2, timeout=60)  # a worker killed by an earlier test is back
    return cluster


class InProcess(Executor):
    """Evaluates at submit, in this process: `run(executor=..., batch=...)` without any worker."""

    def submit(self, fn, *args, **kwargs):
        future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def ask_tell_batches(search, n: int, batch: int, evaluate):
    """The batch protocol by hand: ask `batch` proposals, evaluate each, tell them in ask order."""
    while len(search.history) < n:
        proposals = [search.ask() for _ in range(min(batch, n - len(search.history)))]
        for proposal in proposals:
            search.tell(proposal, evaluate(proposal.arch))
    return search.history


def record(history, drop=()):
    return [(t.number, t.arch, {k: v for k, v in t.metrics.items() if k not in drop}, t.info, t.state)
            for t in history]


def toy_score(arch, space) -> float:
    """The toy formula, by hand: the fraction of positions equal to the space's target."""
    return sum(a == t for a, t in zip(arch, space.target)) / space.length


def marking(marks, seconds: float, space):
    """An evaluator (pickled by value to the workers: a closure) that notes '<pid> <arch>' in
    `marks` when it starts, then takes `seconds`."""

    def evaluate(arch):
        with open(marks, "a") as f:
            f.write(f"{os.getpid()} {'-'.join(arch)}\n")
        time.sleep(seconds)
        return space.evaluate(arch)

    return evaluate


# ---------------------------------------------------------------- the cluster and its executor

@needs_dask
def test_the_local_cluster_is_two_one_thread_worker_processes_with_one_torch_thread(executor):
    client = executor.client
    assert sorted(client.nthreads().values()) == [1, 1]
    assert all(address.startswith("tcp://127.0.0.1:") for address in client.nthreads())
    pids = client.run(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    assert set(client.run(torch.get_num_threads).values()) == {1}
    assert executor._max_workers == 2  # run()'s default batch: the worker threads


@needs_dask
@pytest.mark.parametrize("make", [
    lambda space, ev: RandomSearch(space, ev, seed=3),
    lambda space, ev: RegularizedEvolution(space, ev, population_size=4, sample_size=2, seed=3),
    lambda space, ev: Reinforce(space, ev, seed=3),
], ids=["random", "evolution", "reinforce"])
def test_the_cluster_gives_the_in_process_history_for_the_same_seed_and_batch(executor, make):
    space = ToySpace(length=5, options=3)
    on_dask = make(space, space.evaluate).run(12, executor=executor, batch=3, progress=False)
    in_process = make(space, space.evaluate).run(12, executor=InProcess(), batch=3, progress=False)
    by_hand = ask_tell_batches(make(space, space.evaluate), 12, 3, space.evaluate)
    assert record(on_dask) == record(by_hand) == record(in_process)
    assert [t.value("val_accuracy") for t in on_dask] == [toy_score(t.arch.split("-"), space) for t in on_dask]


@needs_dask
def test_trainings_on_the_workers_equal_the_trainings_in_this_process(executor):
    from nasnb.evaluators import TrainEvaluator
    from nasnb.spaces import NB201Space

    space = NB201Space()
    data = nasnb.data.load("digits").subset(train_size=64, val_size=64, seed=0)
    make = lambda: TrainEvaluator(data, epochs=1, space=space, test=False, count_flops=False)
    on_dask = RandomSearch(space, make(), seed=0).run(4, executor=executor, batch=2, progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: a float sum's order depends on the thread count
    try:
        by_hand = ask_tell_batches(RandomSearch(space, make(), seed=0), 4, 2, make())
    finally:
        torch.set_num_threads(threads)
    assert all(t.state == "complete" for t in on_dask)
    assert record(on_dask, drop=("seconds",)) == record(by_hand, drop=("seconds",))  # bit for bit, but the time


# ---------------------------------------------------------------- faults

@needs_dask
def test_a_worker_killed_mid_evaluation_costs_no_trial_and_changes_no_result(executor, tmp_path):
    space, marks = ToySpace(length=4, options=3), tmp_path / "marks.txt"
    make = lambda ev: RegularizedEvolution(space, ev, population_size=4, sample_size=2, seed=5)
    killed = []

    def kill_the_first_worker_that_starts():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            text = marks.read_text() if marks.exists() else ""
            first = text.split("\n")[0].split() if "\n" in text else []  # a whole line: "<pid> <arch>"
            if len(first) == 2:
                os.kill(int(first[0]), signal.SIGKILL)  # the worker process, mid-evaluation (it sleeps 0.5 s)
                killed.append(first)
            time.sleep(0.005)

    killer = threading.Thread(target=kill_the_first_worker_that_starts)
    killer.start()
    try:
        history = make(marking(marks, 0.5, space)).run(8, executor=executor, batch=2, progress=False)
    finally:
        killer.join()
    assert killed, "no worker started an evaluation within 60 s"
    FAULTS["workers lost"] += 1
    pid, arch = killed[0]
    starts = [line.split() for line in marks.read_text().splitlines()]
    assert len(starts) >= 9  # 8 trials and at least the one rerun
    assert any(p != pid and a == arch for p, a in starts[1:]), f"{arch} was not rerun on another worker: {starts}"
    assert int(pid) not in executor.client.run(os.getpid).values()  # the nanny started a new process
    undisturbed = ask_tell_batches(make(space.evaluate), 8, 2, space.evaluate)
    assert len(history) == 8 and all(t.state == "complete" for t in history)
    assert record(history) == record(undisturbed)
    FAULTS["trials lost"] += 8 - len([t for t in history if t.state == "complete"])


DRIVER = textwrap.dedent("""
    import sys, time
    from nasnb.distributed import dask_executor
    from nasnb.spaces.toy import ToySpace
    from nasnb.strategies import RegularizedEvolution
    space = ToySpace(length=6, options=4)
    slow = lambda arch: (time.sleep(0.1), space.evaluate(arch))[1]
    search = RegularizedEvolution(space, slow, population_size=5, sample_size=2, seed=11)
    with dask_executor(sys.argv[2]) as executor:
        search.run(40, checkpoint=sys.argv[1], executor=executor, batch=2, progress=False)
""")


@needs_dask
def test_a_driver_killed_mid_run_resumes_from_its_checkpoint_with_no_finished_trial_lost(executor, tmp_path):
    path = tmp_path / "run.ckpt"
    journal = path / "journal.jsonl"
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(path), executor.client.scheduler.address])
    try:
        deadline = time.time() + 90
        while time.time() < deadline and driver.poll() is None:
            if journal.exists() and journal.read_text().count("\n") - 1 >= 6:  # lines after the header
                break
            time.sleep(0.02)
        os.kill(driver.pid, signal.SIGKILL)  # no clean shutdown: its client vanishes mid-batch
    finally:
        driver.wait()
    FAULTS["driver kills"] += 1
    saved = [json.loads(line) for line in journal.read_text().splitlines()[1:] if line.endswith("}")]
    assert 6 <= len(saved) < 40, f"the killed driver saved {len(saved)} trials"

    space = ToySpace(length=6, options=4)
    make = lambda: RegularizedEvolution(space, space.evaluate, population_size=5, sample_size=2, seed=11)
    resumed = make()
    resumed.run(40, checkpoint=path, executor=executor, batch=2, progress=False)
    uninterrupted = ask_tell_batches(make(), 40, 2, space.evaluate)
    assert record(resumed.history) == record(uninterrupted)
    kept = [(d["arch"], d["metrics"]) for d in saved]  # what the journal held when the driver died
    assert kept == [(t.arch, t.metrics) for t in resumed.history[:len(saved)]]
    FAULTS["trials lost"] += 40 - len(resumed.history)


@needs_dask
def test_an_evaluator_that_raises_on_a_worker_is_a_failed_trial_with_its_error_and_the_search_goes_on(executor):
    space, scorer = ToySpace(length=2, options=4), ToySpace(length=2, options=3)  # scorer refuses op3
    history = RandomSearch(space, scorer.evaluate, seed=2).run(12, executor=executor, batch=2, progress=False,
                                                                  max_failures=None)
    assert len(history) == 12
    failed = [t for t in history if "op3" in t.arch]
    assert failed and len(failed) < 12, "seed 2 should draw both kinds of arch"
    for trial in history:
        if "op3" in trial.arch:
            assert trial.state == "failed" and trial.error.startswith("InvalidValueError: ")
            assert "op3" in trial.error  # the worker's message names the op it refused
            where = trial.error.splitlines()[0].rsplit(f"(at {toy.__file__}:", 1)[1].rstrip(")")
            assert "raise" in linecache.getline(toy.__file__, int(where))  # the line that raised, on the worker
            # ... and the worker's traceback, from the evaluation down to that line
            trace = trial.error.split("\n\n", 1)[1]
            assert trace.startswith("Traceback (most recent call last):") and f'File "{toy.__file__}", line {where}' in trace
        else:
            assert trial.state == "complete" and trial.value("val_accuracy") == toy_score(trial.arch.split("-"), scorer)
    FAULTS["evaluator errors survived"] += len(failed)
    in_process = RandomSearch(space, scorer.evaluate, seed=2).run(12, progress=False, max_failures=None)
    assert [(t.arch, t.state, t.error) for t in history] == [(t.arch, t.state, t.error) for t in in_process]


# ---------------------------------------------------------------- the command line

@needs_dask
def test_nasnb_search_dask_runs_its_trials_on_the_cluster(executor, tmp_path):
    address = executor.client.scheduler.address
    args = ["search", "--space", "toy", "--trials", "6", "--seed", "1", "--out", str(tmp_path)]
    assert cli.main([*args, "--dask", address, "--batch", "3"]) == 0
    history = History.load(tmp_path / "history.json")
    space = ToySpace()
    by_hand = ask_tell_batches(RandomSearch(space, space.evaluate, seed=1), 6, 3, space.evaluate)
    assert record(history) == record(by_hand)


@pytest.mark.parametrize("options,names", [
    (["--workers", "0"], "--workers"),
    (["--workers", "two"], "--workers"),
    (["--dask", "tcp://127.0.0.1:8786", "--workers", "2"], "--workers"),
    (["--batch", "2"], "--batch"),
    (["--dask", "no-port-here"], "--dask no-port-here"),
    (["--dask", "http://127.0.0.1:8786"], "--dask http://127.0.0.1:8786"),
    (["--dask", "tcp://127.0.0.1:8786", "--strategy", "darts", "--space", "nb201", "--train-size", "64"], "--dask"),
])
def test_nasnb_search_refuses_bad_cluster_options_in_one_line_naming_the_flag(options, names, tmp_path, capsys):
    assert cli.main(["search", "--space", "toy", "--out", str(tmp_path), *options]) == cli.USAGE_ERROR
    error = capsys.readouterr().err
    assert error.startswith("nasnb: error: ") and error.count("\n") == 1 and names in error


# ---------------------------------------------------------------- bad input, missing dask, import cost

@needs_dask
def test_an_address_nobody_answers_at_is_a_clear_error_within_the_timeout():
    from nasnb.distributed import dask_executor

    start = time.perf_counter()
    with pytest.raises(InvalidValueError, match="no Dask scheduler answered at address='tcp://127.0.0.1:9'"):
        with dask_executor("tcp://127.0.0.1:9", timeout=0.5):  # port 9 (discard): nobody listens
            pass
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("kwargs,error", [
    (dict(address=8786), InvalidTypeError), (dict(workers=0), InvalidValueError),
    (dict(threads_per_worker=1.5), InvalidTypeError), (dict(torch_threads=0), InvalidValueError),
    (dict(timeout=0), InvalidValueError),
])
def test_bad_arguments_are_refused_before_anything_starts(kwargs, error, monkeypatch):
    from nasnb.distributed import dask_executor

    monkeypatch.setitem(sys.modules, "distributed", None)  # nothing may be started, or even imported
    with pytest.raises(error, match=next(iter(kwargs))):
        with dask_executor(**kwargs):
            pass


def test_without_distributed_the_error_says_how_to_install_it(monkeypatch):
    from nasnb.distributed import dask_executor

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    with pytest.raises(ModuleNotFoundError, match=r'pip install "nasnb\[dask\]"'):
        with dask_executor(workers=2):
            pass


@needs_dask
def test_the_worker_plugin_sets_torch_threads():
    import distributed

    from nasnb.distributed import torch_threads_plugin

    threads = torch.get_num_threads()
    plugin = torch_threads_plugin(distributed, 3)
    try:
        plugin.setup(worker=None)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
    assert isinstance(plugin, distributed.WorkerPlugin)


def test_no_module_of_nasnb_imports_dask_when_it_is_imported():
    """`import nasnb` stays fast: dask is imported inside the functions that use it, never at the
    top of a module (checked in the source: a subprocess importing torch costs seconds)."""
    import ast
    from pathlib import Path

    def run_at_import(nodes):  # statements run when the module is imported: not those inside functions
        for node in nodes:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield node
                yield from run_at_import(ast.iter_child_nodes(node))

    offenders = []
    for path in Path(nasnb.__file__).parent.rglob("*.py"):
        for node in run_at_import(ast.parse(path.read_text()).body):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in ("dask", "distributed")]
    assert not offenders, offenders


@needs_dask
def test_the_table_build_trains_its_shards_on_the_cluster(executor, tmp_path):
    """scripts/build_table.py's build() on the Dask executor: a shard of 2 cells x 3 seeds lands as
    JSON, and each record equals the same training run in this process (one thread: the same bits)."""
    from nasnb.bench.build import PROTOCOL, read_shard, train_record, unique_cells

    script = Path(__file__).resolve().parents[1] / "scripts" / "build_table.py"
    spec = importlib.util.spec_from_file_location("build_table", script)
    build_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_table)
    cells = unique_cells()[:2]
    build_table.build([(7, cells)], PROTOCOL, tmp_path, executor, "cpu", {"executor": "dask"})
    shard = read_shard(tmp_path / "shard-0007.json", PROTOCOL)
    assert [(r["index"], r["seed"]) for r in shard["records"]] == [(c, s) for c in cells for s in PROTOCOL["seeds"]]
    here = train_record(PROTOCOL, cells[1], PROTOCOL["seeds"][2])
    there = shard["records"][-1]
    assert (there["val_correct"], there["test_correct"]) == (here["val_correct"], here["test_correct"])


@needs_dask
def test_an_evaluator_is_sent_to_the_workers_once_not_with_every_trial(executor):
    """Each copy of the evaluator that a worker unpickles gets a fresh id: sent once (scattered to
    both workers), at most two copies score all trials; a changed setting sends it again."""
    import uuid

    class Counting:  # defined here: cloudpickle sends it by value
        def __init__(self, space, offset):
            self.space, self.offset, self.copy = space, offset, None

        def settings(self):
            return {"offset": self.offset}

        def __setstate__(self, state):
            self.__dict__.update(state)
            self.copy = uuid.uuid4().hex  # a new copy: unpickled on a worker

        def __call__(self, arch):
            return {"val_accuracy": toy_score(arch, self.space) + self.offset, "copy": self.copy}

    space = ToySpace(length=5, options=3)
    evaluator = Counting(space, 0.0)
    before = executor.scatters
    history = RandomSearch(space, evaluator, seed=4).run(12, executor=executor, batch=4, progress=False)
    copies = {t.metrics["copy"] for t in history}
    assert executor.scatters - before == 1 and 1 <= len(copies) <= 2, copies
    assert all(t.value("val_accuracy") == toy_score(space.parse(t.arch), space) for t in history)
    evaluator.offset = 0.5  # its settings changed: the workers must not score with the old copy
    more = RandomSearch(space, evaluator, seed=5).run(4, executor=executor, batch=4, progress=False)
    assert executor.scatters - before == 2
    assert all(t.value("val_accuracy") == toy_score(space.parse(t.arch), space) + 0.5 for t in more)
