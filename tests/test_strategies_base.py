"""The strategy loop itself: errors, time budgets, process pools, and a run killed mid-way."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

from nasnb.spaces.toy import ToySpace
from nasnb.strategies import RandomSearch
from nasnb.strategies.base import jsonable


def record(history):
    return [(t.number, t.arch, t.metrics, t.info) for t in history]


def test_tell_needs_an_ask_and_the_metric():
    space = ToySpace()
    search = RandomSearch(space, space.evaluate)
    with pytest.raises(ValueError, match="call ask"):
        search.tell(space.target, {"val_accuracy": 1.0})


def test_a_checkpoint_of_another_strategy_is_refused(tmp_path):
    space = ToySpace()
    search = RandomSearch(space, space.evaluate)
    state = search.state_dict()
    state["strategy"] = "RegularizedEvolution"
    with pytest.raises(ValueError, match="of a RegularizedEvolution search"):
        search.load_state_dict(state)


def test_time_budget_stops_the_run():
    space = ToySpace()
    slow = lambda arch: (time.sleep(0.05), space.evaluate(arch))[1]
    history = RandomSearch(space, slow).run(1000, time_budget=0.3, progress=False)
    assert 2 <= len(history) < 20


def test_process_pool_gives_the_sequential_history():
    space = ToySpace(length=5, options=3)
    sequential = RandomSearch(space, space.evaluate, seed=4).run(8, progress=False)
    with ProcessPoolExecutor(max_workers=2) as pool:
        parallel = RandomSearch(space, space.evaluate, seed=4).run(8, executor=pool, progress=False)
    assert record(parallel) == record(sequential)


def test_jsonable_converts_numpy_and_tensors():
    import numpy as np

    assert jsonable({"a": np.float32(0.5), "b": (1, 2), "c": torch.tensor([1.0])}) == {"a": 0.5, "b": [1, 2], "c": [1.0]}
    with pytest.raises(TypeError, match="JSON-friendly"):
        jsonable({"model": object()})


KILLED_RUN = textwrap.dedent("""
    import sys, time
    from nasnb.spaces.toy import ToySpace
    from nasnb.strategies import {strategy}
    space = ToySpace(length=6, options=4)
    slow = lambda arch: (time.sleep(0.15), space.evaluate(arch))[1]
    search = {strategy}(space, slow, seed=11{kwargs})
    search.run(30, checkpoint=sys.argv[1], progress=False)
""")

KILL_CASES = [("RandomSearch", ""), ("RegularizedEvolution", ", population_size=5, sample_size=2"), ("Reinforce", "")]


@pytest.mark.parametrize("strategy,kwargs", KILL_CASES)
def test_killed_process_loses_no_finished_trial_and_resumes_exactly(strategy, kwargs, tmp_path):
    import nasnb.strategies as strategies

    path = tmp_path / "run.ckpt"
    script = KILLED_RUN.format(strategy=strategy, kwargs=kwargs)
    process = subprocess.Popen([sys.executable, "-c", script, str(path)])
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if path.exists() and _trials_in(path) >= 6:
                break
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)  # no clean shutdown: as a crashed kernel
    finally:
        process.wait()
    saved = _trials_in(path)
    assert 6 <= saved < 30, f"the killed run saved {saved} trials"

    space = ToySpace(length=6, options=4)
    extra = parse_kwargs(kwargs)
    resumed = getattr(strategies, strategy)(space, space.evaluate, seed=11, **extra)
    resumed.run(30, checkpoint=path, progress=False)
    uninterrupted = getattr(strategies, strategy)(space, space.evaluate, seed=11, **extra).run(30, progress=False)
    assert record(resumed.history) == record(uninterrupted)


def _trials_in(path) -> int:
    journal = path / "journal.jsonl"
    return max(0, journal.read_text().count("\n") - 1) if journal.exists() else 0  # lines after the header


def parse_kwargs(kwargs: str) -> dict:
    """', population_size=5' -> {'population_size': 5}: the same keyword ints the script passes."""
    pairs = [p.strip() for p in kwargs.split(",") if p.strip()]
    return {k.strip(): int(v) for k, v in (p.split("=") for p in pairs)}
