"""Searches on a Dask cluster: many machines' workers evaluate one search's trials.

A multi-trial search only needs a `concurrent.futures.Executor` to run in parallel
(``search.run(n, executor=..., batch=...)``, nasnb/strategies/base.py): it asks `batch` proposals,
submits their evaluations, and tells the results in the order it asked for them. Dask's
``client.get_executor()`` is such an executor, backed by a scheduler that hands each evaluation to
a worker process, on this machine or on any machine that can reach the scheduler. This module
adds only what a user would otherwise have to know:

* a local cluster of worker *processes* with one thread each (a small network does not use two
  threads well; two 1-thread processes train more networks per second than one 2-thread one);
* torch held to one thread in every worker, including a worker the nanny restarts after a crash;
* ``pure=False``: Dask would otherwise hash every evaluator (its data included) to name the task,
  and treat two evaluations of one architecture as one;
* an evaluator sent to the workers once, not with every trial (`SharingExecutor`): it carries
  its data, 150 MB for CIFAR-10 in memory;
* a clear error for an address no scheduler answers at, and everything closed on the way out.

What Dask gives for free: a worker process that dies (killed, out of memory) while it evaluates a
trial makes the scheduler run that evaluation again on another worker (up to
``distributed.scheduler.allowed-failures`` times, 3 by default), so the search loses no trial and,
because results are told in ask order, its history is the one an undisturbed run makes. An
evaluator that *raises* does not kill its worker: the search records a failed trial with the
error and where it was raised, and goes on.

    from nasnb.distributed import dask_executor
    with dask_executor(workers=2) as executor:                  # a local cluster of 2 processes
        search.run(100, executor=executor, checkpoint="run.ckpt")
    with dask_executor("tcp://scheduler:8786") as executor:     # workers started elsewhere
        search.run(100, executor=executor, batch=8)

The evaluator is pickled to the workers with cloudpickle, so (unlike `process_pool`) a function
defined in a notebook works too, as long as what it uses can be pickled.
"""
from __future__ import annotations

import contextlib
import json
from concurrent.futures import Executor
from typing import Iterator

from nasnb.checks import check_float, check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError

INSTALL_HINT = ('searches on a Dask cluster need dask.distributed, an optional extra of nasnb: '
                'pip install "nasnb[dask]" (or pip install "dask[distributed]")')
EXAMPLE_ADDRESS = "tcp://127.0.0.1:8786"  # `dask scheduler` listens on port 8786 by default


def import_distributed():
    """The `distributed` module, or a ModuleNotFoundError that says how to install it."""
    try:
        import distributed
    except ModuleNotFoundError as err:
        if err.name not in (None, "distributed", "dask"):  # it is there, but one of its own imports failed
            raise
        raise ModuleNotFoundError(INSTALL_HINT, name="distributed") from None
    return distributed


@contextlib.contextmanager
def dask_executor(address: str | None = None, *, workers: int = 2, threads_per_worker: int = 1,
                  torch_threads: int | None = 1, timeout: float = 10.0) -> Iterator[Executor]:
    """A `concurrent.futures.Executor` that runs evaluations on a Dask cluster (a context manager).

    address: a running scheduler's address, e.g. ``"tcp://10.0.0.5:8786"`` (`dask scheduler`
        prints it): its workers are used as they are. None: start a `LocalCluster` on 127.0.0.1 of
        `workers` worker processes with `threads_per_worker` threads each, closed on exit.
    torch_threads: torch's intra-op threads in every worker process, set by a worker plugin, so
        workers that join or restart later get it too (None: leave the workers as they are).
    timeout: seconds to wait for the scheduler to answer.

    The executor's ``client`` is the `distributed.Client`, and the worker threads it found when
    it connected are its default `batch` (``search.run`` reads ``_max_workers``, as for a process
    pool; with no worker yet, 2). The history depends on `batch` (more proposals asked before
    any is told), so pass ``batch=`` to repeat a run on a cluster of another size.
    """
    if address is not None and not isinstance(address, str):
        raise InvalidTypeError(f"address must be a scheduler address (a str) or None for a local cluster, "
                               f"got {short(address)}; e.g. address={EXAMPLE_ADDRESS!r}")
    workers = check_positive_int("workers", workers, example=2)
    threads_per_worker = check_positive_int("threads_per_worker", threads_per_worker, example=1)
    if torch_threads is not None:
        torch_threads = check_positive_int("torch_threads", torch_threads, example=1)
    timeout = check_float("timeout", timeout, minimum=0.0, exclusive_minimum=True, example=10.0)
    distributed = import_distributed()
    if address is not None:
        check_address(address)

    with contextlib.ExitStack() as stack:
        if address is None:
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=workers, threads_per_worker=threads_per_worker, processes=True, host="127.0.0.1",
                dashboard_address=None))  # no web dashboard: it needs bokeh, and a port
            client = stack.enter_context(distributed.Client(cluster, timeout=timeout))
        else:
            client = stack.enter_context(connect(distributed, address, timeout))
        if torch_threads is not None:
            register = getattr(client, "register_plugin", None) or client.register_worker_plugin  # < 2023.9.2
            register(torch_threads_plugin(distributed, torch_threads), name="nasnb-torch-threads")
        executor = SharingExecutor(client)
        executor._max_workers = sum(client.nthreads().values()) or None  # None: run()'s own default
        yield executor


class SharingExecutor(Executor):
    """``client.get_executor(pure=False)``, except that an evaluator is sent to the workers once.

    A search submits ``_evaluate(evaluator, arch)`` for every trial, and the evaluator carries its
    data: a TrainEvaluator on CIFAR-10 in memory is about 150 MB, sent again with every trial.
    Here an argument with a ``settings()`` method (an evaluator's contract: everything that changes
    its results) is scattered to every worker once (``client.scatter(broadcast=True)``) and the
    trials get a reference to that copy. It is sent again only when its settings change or it is
    another object. Workers that join later fetch it from another worker when a trial needs it.
    """

    def __init__(self, client):
        self.client = client
        self._inner = client.get_executor(pure=False)  # pure=False: two trials of one arch are two tasks
        self._shared = {}  # id(argument) -> (the argument, its settings as JSON, the scattered future)
        self.scatters = 0  # how many times an evaluator was sent to the workers

    def submit(self, fn, /, *args, **kwargs):
        return self._inner.submit(fn, *[self._share(a) for a in args], **kwargs)

    def _share(self, obj):
        settings = getattr(obj, "settings", None)
        if isinstance(obj, type) or not callable(settings):
            return obj
        try:
            key = json.dumps(settings(), sort_keys=True, default=str)
        except (TypeError, ValueError):  # settings it cannot write down: sent with every trial, as before
            return obj
        kept = self._shared.get(id(obj))
        if kept is None or kept[0] is not obj or kept[1] != key:
            kept = self._shared[id(obj)] = (obj, key, self.client.scatter(obj, broadcast=True, hash=False))
            self.scatters += 1
        return kept[2]

    def shutdown(self, wait=True, *, cancel_futures=False):
        self._inner.shutdown(wait=wait and not cancel_futures)
        self._shared.clear()


def check_address(address: str) -> None:
    """Refuse, at once, an address no scheduler could listen at: a scheme Dask has no transport
    for (http://...), a missing or malformed port."""
    from distributed.comm import parse_address, parse_host_port
    from distributed.comm.registry import backends

    try:
        scheme, location = parse_address(address)
        if scheme not in backends:
            raise ValueError(f"Dask has no {scheme}:// transport (it has {sorted(backends)})")
        if scheme in ("tcp", "tls"):
            parse_host_port(location)  # a ValueError for a missing or non-numeric port
    except ValueError as err:
        raise InvalidValueError(f"address={address!r} is not a Dask scheduler address ({err}); "
                                f"e.g. address={EXAMPLE_ADDRESS!r}, as `dask scheduler` prints it") from None


def connect(distributed, address: str, timeout: float):
    """A Client of the scheduler at `address`, or an error that says nobody answered there."""
    try:
        return distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError) as err:  # OSError: "Timed out trying to connect to ..."
        why = "" if str(err).startswith("Timed out") else f" ({err})"
        raise InvalidValueError(
            f"no Dask scheduler answered at address={address!r} within {timeout:g} s{why}; start one with "
            f"`dask scheduler` and its workers with `dask worker {address} --nthreads 1`, "
            f"or check the host and port (e.g. {EXAMPLE_ADDRESS!r})") from None


def torch_threads_plugin(distributed, threads: int):
    """A worker plugin that sets torch's thread count when a worker starts (or restarts)."""

    class TorchThreads(distributed.WorkerPlugin):  # defined here: `distributed` is imported only on use
        def __init__(self, threads: int):
            self.threads = threads

        def setup(self, worker=None):
            import torch

            torch.set_num_threads(self.threads)

    return TorchThreads(threads)
