"""process_pool(devices=...): one device per worker. The assignment is tested on the CPU (devices
"cpu" and "cpu:0", which torch tells apart, stand for two GPUs); the GPU run is
benchmarks/gpu_check.py's "pool" path."""
import multiprocessing
import os
import pathlib
import subprocess
import sys
import time

import pytest
import torch

from nasnb import train
from nasnb import pool as pool_module
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.pool import check_devices, claim_slot, process_pool, release_slot, worker_slots

ROOT = pathlib.Path(__file__).resolve().parent.parent


def fake_gpus(monkeypatch, count):
    """torch reports `count` CUDA GPUs in this process (nothing is put on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_worker_k_gets_device_k_modulo_the_number_of_devices():
    assert worker_slots(["cuda:0", "cuda:1"], 5) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    devices = ["cuda:0", "cuda:1", "cuda:2"]
    assert sorted(worker_slots(devices, 3)) == devices  # as many workers as devices: one worker each
    assert worker_slots(["cpu"], 2) == ["cpu", "cpu"]


def test_workers_default_to_one_per_device(monkeypatch):
    fake_gpus(monkeypatch, 3)
    assert check_devices("all") == ["cuda:0", "cuda:1", "cuda:2"]
    for devices, workers, expected in ((["cpu", "cpu", "cpu"], None, 3), (None, None, 2), ("all", None, 3),
                                       (["cpu"], 4, 4)):
        pool = process_pool(workers, devices=devices)  # no worker starts before the first task
        try:
            assert pool._max_workers == expected, devices
        finally:
            pool.shutdown()
    assert check_devices(["cuda", torch.device("cuda", 2), "cpu"]) == ["cuda:0", "cuda:2", "cpu"]
    assert check_devices(None) is None
    with pytest.raises(InvalidValueError, match=r"max_tasks_per_child must be an int >= 1, got 0"):
        process_pool(devices=["cpu"], max_tasks_per_child=0)


@pytest.mark.parametrize("devices, kind, words", [
    (["cuda:x"], InvalidValueError, ["devices[0]='cuda:x'", "devices=['cuda:0', 'cuda:1']"]),
    (["cuda:0", 3], InvalidTypeError, ["devices[1]", "3 (int)", "'cuda:0'"]),
    (["cuda:0", "cuda:2"], InvalidValueError, ["devices[1]='cuda:2'", "2 CUDA GPUs", "devices='all'"]),
    (["auto"], InvalidValueError, ["devices[0]='auto'", "devices=['cuda:0', 'cuda:1']"]),
    ("cuda:1", InvalidValueError, ["devices=['cuda:1']"]),
    ([], InvalidTypeError, ["non-empty", "devices=['cuda:0', 'cuda:1']"]),
    ({"cuda:0"}, InvalidTypeError, ["devices must be", "devices='all'"]),
])
def test_a_bad_device_entry_is_refused_at_the_call(monkeypatch, devices, kind, words):
    fake_gpus(monkeypatch, 2)
    with pytest.raises(kind) as err:
        process_pool(devices=devices)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_all_without_a_gpu_says_what_to_pass_instead(monkeypatch):
    fake_gpus(monkeypatch, 0)
    with pytest.raises(InvalidValueError, match=r"devices='all'.*sees none.*devices=None"):
        process_pool(devices="all")


def test_places_are_claimed_once_and_given_back():
    holders = multiprocessing.get_context("spawn").Array("q", 3)
    me = os.getpid()
    parent = os.getppid()
    assert [claim_slot(holders, pid) for pid in (me, parent)] == [0, 1]
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert claim_slot(holders, ended.pid) == 2
    assert claim_slot(holders, me + 10**6) == 2  # place 2's holder has ended: the place is free again
    holders[2] = parent  # every place held by a running process
    with pytest.raises(RuntimeError, match="no free device place"):
        claim_slot(holders, me + 10**6)
    release_slot(holders, 0, parent)  # not its holder: nothing changes
    assert list(holders) == [me, parent, parent]
    release_slot(holders, 0, me)
    assert claim_slot(holders, me + 10**6) == 0  # the lowest free place


def report(barrier_dir):
    """A pool task: this worker's pid, its place and what device="auto" means in it. With a
    barrier folder, it waits until another task has started, so that two workers take the two."""
    if barrier_dir is not None:
        pathlib.Path(barrier_dir, str(os.getpid())).touch()
        deadline = time.time() + 120
        while len(os.listdir(barrier_dir)) < 2 and time.time() < deadline:
            time.sleep(0.05)
    return os.getpid(), pool_module.WORKER_PLACE, str(train.pick_device("auto")), torch.get_num_threads()


@pytest.mark.slow  # about 30 s on a busy 2-core machine: four workers start (spawn)
def test_a_real_pool_pins_each_worker_and_a_respawned_one_takes_the_free_place(tmp_path):
    devices = ["cpu", "cpu:0"]  # two devices torch tells apart, standing for two GPUs
    with process_pool(devices=devices, max_tasks_per_child=1) as pool:
        first = [pool.submit(report, str(tmp_path)) for _ in range(2)]
        first = [f.result(timeout=180) for f in first]
        later = pool.submit(report, None).result(timeout=180)  # by a new worker: each ends after one task
    assert len({pid for pid, *_ in first}) == 2
    assert sorted(place for _, place, _, _ in first) == [(0, "cpu"), (1, "cpu:0")]
    for pid, (k, device), auto, threads in first + [later]:
        assert auto == devices[k] and device == devices[k]  # "auto" in a worker is its pinned device
        assert threads == 1
    assert later[0] not in {pid for pid, *_ in first}
    assert later[1] in [(0, "cpu"), (1, "cpu:0")]
    assert train.pick_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")  # here: not pinned


def test_gpu_check_smoke_runs_on_the_cpu(tmp_path):
    out = tmp_path / "check.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick",
                          "--only", "device", "latency", "--json", str(out)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert [line.split()[:2] for line in lines] == [["PASS", "device"], ["PASS", "latency"]]
    import json

    results = json.loads(out.read_text())["results"]
    assert [r["path"] for r in results] == ["device", "latency"] and all(r["ok"] for r in results)
    failing = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cuda:7"],
                             capture_output=True, text=True, timeout=120, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    if not torch.cuda.is_available():
        assert failing.returncode == 1 and failing.stdout.startswith("FAIL device")
