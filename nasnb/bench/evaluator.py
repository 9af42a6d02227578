"""TableEvaluator: an evaluator that looks a training up in a tabular benchmark instead of running it."""
from __future__ import annotations

import hashlib
import json

from nasnb.checks import check_int, short
from nasnb.errors import InvalidTypeError

TABLE_METRICS = ("val_accuracy", "test_accuracy", "val_curve", "epochs", "seconds", "trained_arch", "params",
                 "flops", "latency_ms")


class TableEvaluator:
    """``evaluator(arch)``: the table's record of `arch`'s training, as a TrainEvaluator reports it.

    Returns ``val_accuracy`` and ``val_curve`` after `epochs` epochs, ``test_accuracy`` (the fully
    trained network's, for plots: a search must not select on it), ``seconds`` (the *simulated*
    training time: what training `arch` for `epochs` epochs took when the table was built),
    ``trained_arch`` (the representative whose training it was), ``params`` and ``flops``, and
    ``latency_ms`` (the measured forward time of one image: table.meta["latency"] says how) when the
    table has it; ``evaluator.metrics`` lists what this one reports, so a search that asks a table
    without latency for ``latency_ms`` is refused when it starts.

    ``evaluator(arch, budget=b)`` looks up `b` epochs instead of `epochs` (successive halving and
    Hyperband evaluate at budgets): ``val_accuracy`` is the learning curve's value after epoch `b` and
    ``seconds`` the simulated cost of `b` epochs (the recorded seconds times b / max_epochs: every
    epoch costs the same). The curve is that of one training of ``max_epochs`` epochs with its
    learning-rate schedule over all of them: the accuracy after epoch `b` is not that of a network
    trained for `b` epochs with its own schedule (nasnb/bench/table.py), which is what a
    TrainEvaluator with a budget does; budgets above ``max_budget`` (the table's epochs) are refused.

    Summing ``seconds`` over a search's trials gives its simulated wall-clock, the x-axis on which
    NAS papers compare strategies on a benchmark (NAS-Bench-201, Sec. 5): a strategy that needs
    fewer or cheaper trainings wins, not one with a faster lookup.

    Args:
        table: a `nasnb.bench.Table`, the name of a shipped one ("nb201-digits"), or the official
            benchmark's adapter (`nasnb.bench.load_nb201`): anything with ``query`` and ``space``.
        epochs: the training budget looked up (None: the table's full protocol, ``max_epochs``).
        seed: which of the table's seeds (None: the mean over its seeds).
    """

    metrics = TABLE_METRICS

    def __init__(self, table="nb201-digits", epochs: int | None = None, *, seed: int | None = None):
        if isinstance(table, str):
            from nasnb.bench import load

            table = load(table)
        if not callable(getattr(table, "query", None)) or not hasattr(table, "space"):
            raise InvalidTypeError(f"table must be a nasnb.bench.Table or a table's name, got {short(table)}; "
                                   "e.g. table=nasnb.bench.load('nb201-digits')")
        self.table = table
        self.space = table.space
        self.latency = getattr(table, "latency_ms", None) is not None
        self.metrics = TABLE_METRICS if self.latency else tuple(m for m in TABLE_METRICS if m != "latency_ms")
        self.epochs = table.max_epochs if epochs is None else check_int(
            "epochs", epochs, minimum=1, maximum=table.max_epochs, example=table.max_epochs)
        self.seed = seed
        self.max_budget = table.max_epochs  # the most epochs a budget may ask for
        table.query(next(iter(table.space.enumerate())), self.epochs, seed)  # a bad seed fails now, not later
        self.lookups = 0

    def __call__(self, arch, budget: int | None = None) -> dict:
        if budget is None:
            epochs = self.epochs
        elif type(budget) is int and 1 <= budget <= self.max_budget:  # the common case, checked cheaply
            epochs = budget
        else:
            epochs = check_int("budget", budget, minimum=1, maximum=self.max_budget, example=self.max_budget)
        q = self.table.query(arch, epochs, self.seed)
        self.lookups += 1
        record = {"val_accuracy": q["val_accuracy"], "test_accuracy": q["test_accuracy"], "val_curve": q["val_curve"],
                  "epochs": q["epochs"], "seconds": q["train_seconds"], "trained_arch": q["arch"],
                  "params": q["params"], "flops": q["flops"]}
        if self.latency:
            record["latency_ms"] = q["latency_ms"]
        return record

    def evaluate(self, arch, budget: int | None = None) -> dict:
        """The same as ``evaluator(arch, budget)``."""
        return self(arch, budget)

    def settings(self) -> dict:
        """Everything that changes this evaluator's results (a resume with other settings is refused)."""
        meta = json.dumps(self.table.meta, sort_keys=True, default=str).encode("utf-8")
        return {"evaluator": type(self).__name__, "table": self.table.name,
                "table_meta_sha1": hashlib.sha1(meta).hexdigest(), "epochs": self.epochs, "seed": self.seed}

    def __repr__(self) -> str:
        return f"TableEvaluator(table={self.table.name!r}, epochs={self.epochs}, seed={self.seed})"
