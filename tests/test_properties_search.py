"""Property-based tests of the search core: a checkpointed run killed at a random moment.

A kill is simulated inside the process, at every kind of moment a real kill -9 can hit a write:
before it, halfway through it (a temporary file or a journal line cut off at a random byte), or
just after it. The killed search object is abandoned, as a dead process would be; a fresh one
resumes from the folder. Properties: no trial whose `tell` returned is lost, no temporary file is
left after the resume, and the resumed run equals the uninterrupted one, trial for trial.
(tests/test_strategies_base.py also kills real processes with SIGKILL.)
"""
import functools
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import nasnb.storage as storage
from nasnb.history import atomic_write
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import RandomSearch, RegularizedEvolution, Reinforce

TRIALS = 24
# Kill points tried per test run (recorded in benchmarks/README.md); NASNB_KILL_POINTS=2000 tries more.
KILL_EXAMPLES = int(os.environ.get("NASNB_KILL_POINTS", "120"))
SPACE = ToySpace(length=5, options=3)
MAKERS = {
    "random": lambda: RandomSearch(SPACE, flaky, seed=2),
    "evolution": lambda: RegularizedEvolution(SPACE, flaky, population_size=5, sample_size=2, seed=2),
    "reinforce": lambda: Reinforce(SPACE, flaky, hidden_size=16, batch_size=2, seed=2),
}


def flaky(arch):
    """The toy score, but some architectures 'fail' (NaN), so failed trials are persisted too."""
    score = SPACE.score(arch)
    return {"val_accuracy": float("nan") if arch[0] == "op1" and arch[1] == "op1" else score}


def record(history):
    """What two runs must share, as JSON text (NaN == NaN there, unlike in Python)."""
    return [storage.dumps({k: v for k, v in t.to_dict().items() if k != "seconds"}) for t in history]


@functools.lru_cache(maxsize=None)
def uninterrupted(kind: str, batched: bool):
    search = MAKERS[kind]()
    if batched:
        with ThreadPoolExecutor(3) as pool:
            search.run(TRIALS, executor=pool, batch=3, progress=False)
    else:
        search.run(TRIALS, progress=False)
    return record(search.history)


class Killed(BaseException):
    """What a kill -9 is to the code it interrupts: nothing after it runs."""


class Killer:
    """Counts the checkpoint's writes and 'kills' the process at write number `at`, in `mode`:
    "before" the write, "during" it (a random prefix of its bytes reaches the file), or "after" it."""

    def __init__(self, at: int, mode: str, cut: float):
        self.at, self.mode, self.cut, self.writes = at, mode, cut, 0

    def _due(self) -> bool:
        self.writes += 1
        return self.writes - 1 == self.at

    def atomic_write(self, path, data, sync=True):
        if not self._due():
            return atomic_write(path, data, sync)
        if self.mode == "before":
            raise Killed
        if self.mode == "during":  # the temporary file half written, never renamed
            with open(path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp", "wb") as f:
                f.write(data[:int(self.cut * len(data))])
            raise Killed
        atomic_write(path, data, sync)
        raise Killed

    def append_lines(self, real, checkpoint, records, sync=True):
        if not self._due():
            return real(checkpoint, records, sync)
        if self.mode == "before":
            raise Killed
        if self.mode == "during":
            data = "".join(storage.dumps(r) + "\n" for r in records).encode()
            with open(checkpoint.journal, "ab") as f:
                f.write(data[:int(self.cut * len(data))])
            raise Killed
        real(checkpoint, records, sync)
        raise Killed


def run_until_killed(search, path, killer: Killer, batched: bool, monkeypatch) -> int:
    """Run `search` with the killer armed; returns how many tells returned before the kill."""
    told = []
    search.subscribe(told.append)  # called after the record is in the checkpoint: "told"
    real = storage.Checkpoint._append_lines
    with monkeypatch.context() as patch:
        patch.setattr(storage, "atomic_write", killer.atomic_write)
        patch.setattr(storage.Checkpoint, "_append_lines",
                      lambda self, records, sync=True: killer.append_lines(real, self, records, sync))
        try:
            if batched:
                with ThreadPoolExecutor(3) as pool:
                    search.run(TRIALS, checkpoint=path, executor=pool, batch=3, progress=False)
            else:
                search.run(TRIALS, checkpoint=path, progress=False)
        except Killed:
            pass
    return len(told)


@settings(max_examples=KILL_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
@given(kind=st.sampled_from(sorted(MAKERS)), batched=st.booleans(), at=st.integers(0, 2 * TRIALS + 2),
       mode=st.sampled_from(["before", "during", "after"]), cut=st.floats(0.0, 1.0))
def test_a_kill_at_any_write_loses_no_told_trial_and_resumes_exactly(kind, batched, at, mode, cut, tmp_path_factory,
                                                                    monkeypatch):
    path = tmp_path_factory.mktemp("kill") / "run.ckpt"
    told = run_until_killed(MAKERS[kind](), path, Killer(at, mode, cut), batched, monkeypatch)

    resumed = MAKERS[kind]()
    if storage.Checkpoint(path).exists():
        resumed.resume(path)
    assert len(resumed.history) >= told, f"{told - len(resumed.history)} told trials lost"
    folder = path.parent
    strays = [p.name for p in folder.rglob("*.tmp")]
    assert not strays, strays
    if batched:
        with ThreadPoolExecutor(3) as pool:
            resumed.run(TRIALS, checkpoint=path, executor=pool, batch=3, progress=False)
    else:
        resumed.run(TRIALS, checkpoint=path, progress=False)
    assert record(resumed.history) == uninterrupted(kind, batched)
    assert sorted(os.listdir(path)) == ["journal.jsonl", "state.pt"]
