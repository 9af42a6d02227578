"""ProgramEvaluator: a program's fitness on generated tasks, with functional equivalence checking.

An evaluator in nasnb is any callable arch -> dict of metrics; this one takes a Program of a
`ProgramSpace` and reports

    fitness       mean over tasks of 1 - (2/pi) arctan(validation rms error); 0 for a task whose
                  predictions became NaN or infinite (interpreter.py). The metric to maximise.
    rms_error     mean validation rms error over the tasks that stayed finite (inf if none did)
    failed_tasks  how many tasks ended in NaN or infinity
    fec_hash      the program's FEC fingerprint (interpreter.fec_hash), when `fec` is on

Functional equivalence checking (the paper's Sec. 4.2): before a full evaluation, the program
runs on a small probe (the first `fec_train` training and `fec_valid` validation examples of
each task; the paper uses 10 and 10) and its predictions are hashed. Seen that hash before? The
fitness of the first program that had it is returned without the full evaluation, and
`fec_hits` counts one more. Most mutations of an evolved program change nothing it computes (an
instruction whose result nobody reads, s3 = s1 * s2 turned into s3 = s2 * s1), so this saves most
of a search's time; the paper reports a fourfold speed-up. The cache is exact for equivalent
programs and, like the paper's, an approximation for two programs that agree on the probe only.

The cache is part of what a search has seen: `remember(metrics)` adds a told result to it and
`forget()` empties it. `AutoMLZero` calls both, so that a resumed or replayed search hits the
cache exactly where the uninterrupted one did.

Cheaper still, and exact (ours, not the paper's): the program is first pruned of the
instructions that do not matter (liveness.prune: dead code), and a pruned program seen before
has its fingerprint looked up without running anything (`exact_hits` counts those). Only a new
pruned program runs on the probe, and a full evaluation runs the pruned program: it predicts
bit for bit what the whole one does, with fewer instructions. Results are exactly those without
the shortcut; only the time differs.
"""
from __future__ import annotations

from nasnb.automl_zero.interpreter import evaluate, fec_hash
from nasnb.automl_zero.liveness import prune
from nasnb.automl_zero.tasks import TASK_KINDS, make_tasks
from nasnb.checks import check_bool, check_int, check_seed, short
from nasnb.errors import InvalidTypeError
from nasnb.spaces.base import check_name

_HASHES_LIMIT = 200_000  # pruned programs whose fingerprint is remembered


class ProgramEvaluator:
    """Fitness of programs of `space` on `num_tasks` generated tasks of `task` ("linear" or "nonlinear").

    Args:
        num_train, num_valid: examples per task (the paper's search tasks: 100 and 100).
        seed: draws the tasks, and seeds the random-initialisation ops of every evaluation.
        fec: functional equivalence checking on a probe of `fec_train` + `fec_valid` examples
            (default: 10 and 10, as the paper, or all there are).
        fast: run programs with compiled.py's interpreter (default), which predicts bit for bit
            what the reference interpreter.py does, about twice as fast; False runs the reference.
    """

    def __init__(self, space, *, task: str = "linear", num_tasks: int = 10, num_train: int = 100,
                 num_valid: int = 100, seed: int = 0, fec: bool = True, fec_train: int | None = None,
                 fec_valid: int | None = None, fast: bool = True):
        sizes = getattr(space, "sizes", None)
        if sizes is None or not callable(getattr(space, "validate", None)):
            raise InvalidTypeError(f"space must be a ProgramSpace (nasnb.spaces.programs), got {short(space)}")
        self.space, self.sizes = space, sizes
        self.task = check_name("task", task, TASK_KINDS, "task kind")
        self.seed = check_seed("seed", seed)
        self.fec = check_bool("fec", fec)
        self.fast = check_bool("fast", fast)  # not in settings(): it changes no result
        self.tasks = make_tasks(self.task, num_tasks=num_tasks, features=sizes.features, num_train=num_train,
                                num_valid=num_valid, seed=self.seed)
        fec_train = min(10, num_train) if fec_train is None else fec_train
        fec_valid = min(10, num_valid) if fec_valid is None else fec_valid
        self.fec_train = check_int("fec_train", fec_train, minimum=1, maximum=num_train, example=min(10, num_train))
        self.fec_valid = check_int("fec_valid", fec_valid, minimum=1, maximum=num_valid, example=min(10, num_valid))
        self.probe = self.tasks.head(self.fec_train, self.fec_valid)
        self.metrics = ("fitness", "rms_error", "failed_tasks") + (("fec_hash",) if self.fec else ())
        self.cache: dict[str, dict] = {}  # fec_hash -> the metrics of the first program with it
        self.fec_hits = 0  # evaluations answered from the cache
        self.hashes: dict = {}  # pruned program -> its fec_hash (a pure function: never stale)
        self.exact_hits = 0  # fingerprints looked up by the pruned program, without running it
        self.evaluations = 0  # full evaluations run

    def settings(self) -> dict:
        """What makes two evaluators score alike (checked when a search resumes)."""
        t = self.tasks
        return {"evaluator": "ProgramEvaluator", "task": self.task, "num_tasks": t.num_tasks,
                "num_train": t.y_train.shape[1], "num_valid": t.y_valid.shape[1], "seed": self.seed, "fec": self.fec,
                "fec_train": self.fec_train, "fec_valid": self.fec_valid, "sizes": list(self.sizes)}

    def __call__(self, arch) -> dict:
        program = prune(self.space.validate(arch))
        if self.fec:
            key = self.hashes.get(program)
            if key is None:
                key = fec_hash(program, self.probe, self.sizes, seed=self.seed, fast=self.fast)
                if len(self.hashes) >= _HASHES_LIMIT:
                    self.hashes.clear()
                self.hashes[program] = key
            else:
                self.exact_hits += 1
            if key in self.cache:
                self.fec_hits += 1
                return dict(self.cache[key])
        metrics = evaluate(program, self.tasks, self.sizes, seed=self.seed, fast=self.fast)
        self.evaluations += 1
        if self.fec:
            metrics["fec_hash"] = key
            self.cache[key] = dict(metrics)
        return metrics

    def remember(self, metrics: dict) -> None:
        """Add a result this evaluator (or a copy of it in a worker) reported to the cache, unless its hash is known."""
        key = metrics.get("fec_hash") if isinstance(metrics, dict) else None
        if self.fec and isinstance(key, str) and key not in self.cache:
            self.cache[key] = {k: metrics[k] for k in self.metrics if k in metrics}

    def forget(self) -> None:
        """Empty the cache and the counts."""
        self.cache.clear()
        self.hashes.clear()
        self.fec_hits = self.evaluations = self.exact_hits = 0

    def __repr__(self) -> str:
        return (f"ProgramEvaluator(task={self.task!r}, num_tasks={self.tasks.num_tasks}, seed={self.seed}, "
                f"fec={self.fec}: {self.evaluations} evaluated, {self.fec_hits} FEC hits, {self.exact_hits} of them "
                f"by the pruned program)")
