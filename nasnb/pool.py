"""Worker processes for trainings side by side: ``search.run(n, executor=process_pool())``.

`process_pool` is a `concurrent.futures.ProcessPoolExecutor` whose workers each set their torch
thread count and, with `devices=`, pin themselves to one device for their lifetime: each worker
claims a free place in a shared list of (device) slots when it starts and gives it back when it
exits, so a worker that a pool replaces (max_tasks_per_child) takes over the place of the one
that ended. `nasnb.evaluators.process_pool` is this function (the public name of the contract).
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import torch

from nasnb import train
from nasnb.checks import check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError


def process_pool(workers: int | None = None, threads_per_worker: int = 1, devices=None,
                 max_tasks_per_child: int | None = None) -> ProcessPoolExecutor:
    """A process pool for ``search.run(n, executor=process_pool())``: several trainings at once.

    Workers are started with "spawn": a process *forked* from one that has already used torch's
    thread pool can hang in its first parallel op. Each worker uses `threads_per_worker` torch
    threads: small networks do not use two threads well, and two 1-thread workers train 1.4-1.7x
    more networks per second than one 2-thread process on a 2-core machine (benchmarks/README.md,
    "Facts the code relies on"). Results are reproducible run to run, but not bit-identical to a
    run with another thread count. The evaluator is pickled to the workers, so it must be
    importable (TrainEvaluator is; a function defined in a notebook is not, under spawn).

    devices: None (every worker uses what "auto" finds), "all" (every visible CUDA GPU) or a list
        such as ["cuda:0", "cuda:1"]: one device per worker, so several architectures train at
        once on several GPUs. Worker k is pinned to ``devices[k % len(devices)]`` when it starts
        (``torch.cuda.set_device``, and ``device="auto"`` means that device inside it); a worker
        that replaces one that ended takes the device it left free. workers defaults to
        len(devices) (one worker per GPU), else to 2. Keep the evaluator's data on the CPU: it is
        pickled to each worker, and each training moves it to the worker's device.
    max_tasks_per_child: replace each worker after this many tasks (None: never), e.g. to give a
        GPU's memory back between trainings.
    """
    devices = check_devices(devices)
    if workers is None:
        workers = 2 if devices is None else len(devices)
    workers = check_positive_int("workers", workers, example=2)
    threads_per_worker = check_positive_int("threads_per_worker", threads_per_worker, example=1)
    if max_tasks_per_child is not None:
        max_tasks_per_child = check_positive_int("max_tasks_per_child", max_tasks_per_child, example=1)
    context = multiprocessing.get_context("spawn")
    slots = None if devices is None else worker_slots(devices, workers)
    holders = None if devices is None else context.Array("q", len(slots))  # the pid holding each slot; 0: free
    return ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker,
                               initargs=(threads_per_worker, slots, holders), max_tasks_per_child=max_tasks_per_child)


def check_devices(devices) -> list[str] | None:
    """`devices` of process_pool: None, "all" (every visible CUDA GPU) or a non-empty list of
    devices this machine has, as strings ("cuda" becomes "cuda:0")."""
    example = "e.g. devices=['cuda:0', 'cuda:1'], devices='all' or devices=None"
    if devices is None:
        return None
    if isinstance(devices, str):
        if devices != "all":
            raise InvalidValueError(f"devices must be 'all', a list of devices or None, got {short(devices)}; "
                                    f"for one device give a list: devices=[{devices!r}]")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InvalidValueError("devices='all' pins one worker to each CUDA GPU, but torch sees none here "
                                    "(torch.cuda.device_count() is 0); use devices=None for CPU workers "
                                    "(or devices=['cpu', 'cpu'])")
        return [f"cuda:{k}" for k in range(count)]
    if not isinstance(devices, (list, tuple)) or not devices:
        raise InvalidTypeError(f"devices must be 'all', a non-empty list of devices or None, got {short(devices)}; "
                               f"{example}")
    checked = []
    for k, device in enumerate(devices):
        if isinstance(device, torch.device):
            device = str(device)
        if not isinstance(device, str):
            raise InvalidTypeError(f"devices[{k}] must name one device such as 'cuda:0' or 'cpu', got "
                                   f"{short(device)} ({type(device).__name__}); {example}")
        if device == "auto":
            raise InvalidValueError(f"devices[{k}]='auto' names no device: each entry pins a worker to one "
                                    f"device; {example}")
        try:
            dev = train.pick_device(device)
        except (InvalidTypeError, InvalidValueError) as err:
            raise type(err)(f"devices[{k}]={device!r} is not a device of this machine ({err}); {example}") from None
        checked.append(f"cuda:{dev.index or 0}" if dev.type == "cuda" else str(dev))
    return checked


def worker_slots(devices: list[str], workers: int) -> list[str]:
    """The device of each of the pool's `workers` worker places: place k gets devices[k % len(devices)]."""
    return [devices[k % len(devices)] for k in range(workers)]


def claim_slot(holders, pid: int) -> int:
    """The first free place in `holders` (a shared array of pids, 0: free, or held by a process that
    no longer runs), marked as `pid`'s. Takes the array's lock: workers start at the same time."""
    with holders.get_lock():
        for k, holder in enumerate(holders):
            if holder == 0 or holder != pid and not _alive(holder):
                holders[k] = pid
                return k
    raise RuntimeError(f"process_pool: no free device place for worker {pid}; places held by {list(holders)}")


def release_slot(holders, k: int, pid: int) -> None:
    """Give place k back when the worker `pid` that holds it ends."""
    with holders.get_lock():
        if holders[k] == pid:
            holders[k] = 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: asks only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


WORKER_PLACE: tuple[int, str] | None = None  # (place, device) of this process in a pinned pool


def start_worker(threads: int, slots: list[str] | None, holders) -> None:
    """process_pool's initializer, run in each new worker: its torch threads, and (with devices) its
    place, whose device it is pinned to for its lifetime."""
    global WORKER_PLACE
    torch.set_num_threads(threads)
    if slots is None:
        return
    pid = os.getpid()
    k = claim_slot(holders, pid)
    atexit.register(release_slot, holders, k, pid)  # a spawned worker ends through sys.exit: this runs
    device = torch.device(slots[k])
    if device.type == "cuda":
        torch.cuda.set_device(device)  # "cuda" without an index means this GPU too
    train.PINNED_DEVICE = device
    WORKER_PLACE = (k, slots[k])
