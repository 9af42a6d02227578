"""How the shipped table is made: the protocol, one training, shards, and the assembled table.

scripts/build_table.py drives it (resumable, in worker processes); a test retrains a few cells with
`train_record` and the protocol stored in the table's metadata, and finds the table's figures.

A *shard* is a JSON file holding the records of a fixed range of the unique cells (every seed), so a
build that stops loses at most the shards in progress, and a rerun trains only what is missing. Each
shard names the protocol's hash: shards of another protocol are refused, never mixed.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from nasnb.bench.table import FORMAT, MISSING, Table, arch_at, arch_index
from nasnb.errors import DamagedFileError, ResumeMismatchError
from nasnb.spaces.nb201 import NB201Space

# The protocol of "nb201-digits" (benchmarks/README.md, "The shipped table", says why each choice).
PROTOCOL = {
    "name": "nb201-digits",
    "space": "nb201",
    "data": {"name": "digits", "seed": 0, "train_size": 500, "val_size": 397},  # test: digits' fixed 400
    "network": {"C": 8, "N": 1},  # NB201's macro skeleton, 3 stages of one cell at 8, 16, 32 channels
    "epochs": 10,
    "fit": {"batch_size": 256, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "optimizer": "sgd",
            "schedule": "cosine", "grad_clip": 5.0, "augment": False},
    "seeds": [0, 1, 2],
    "threads": 1,
    "canonical_rule": "nb201",
    # a training's seconds: the worker's CPU time (one thread), not wall time, which a busy machine inflates
    "timing": "process_time",
}


# "nb201-shapes": the same training on the generated shapes (nasnb/data_shapes.py), so budgets compare
# epoch for epoch; a partial table of the 496 classes of the cells made of skip, 1x1 and 3x3 convs
# (why this sub-space: benchmarks/README.md, "A second task"), 1 seed (the build had half an hour of a
# shared 2-core machine: 496 trainings at about 1.5 s of CPU each).
SHAPES_PROTOCOL = {**PROTOCOL, "name": "nb201-shapes", "data": {**PROTOCOL["data"], "name": "shapes"},
                   "seeds": [0], "cells": {"ops": ["skip_connect", "nor_conv_1x1", "nor_conv_3x3"]}}
# A smaller sub-space whose 90 classes come first in the build's order (edge 1<-0 a skip): what a build in
# progress can already assemble, assemble(folder, SHAPES_PROTOCOL, ops=SHAPES_SHIPPED_OPS); it shipped until
# all 496 were built.
SHAPES_SHIPPED_OPS = [["skip_connect"]] + [["skip_connect", "nor_conv_1x1", "nor_conv_3x3"]] * 5


def protocol_hash(protocol: dict) -> str:
    return hashlib.sha1(json.dumps(protocol, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def unique_cells(rule: str = "nb201") -> list[int]:
    """The enumerate-order indices of the classes' representatives (6,466 for the nb201 rule)."""
    space = NB201Space()
    return sorted({arch_index(space.canonical(a, rule)) for a in space.enumerate()})


def protocol_cells(protocol: dict, ops=None) -> list[int]:
    """The representatives a protocol trains: every class, or those of its `cells["ops"]` sub-space
    (or of the sub-space `ops`, given as NB201OpsSpace takes it)."""
    rule = protocol["canonical_rule"]
    ops = protocol.get("cells", {}).get("ops") if ops is None else ops
    if ops is None:
        return unique_cells(rule)
    from nasnb.bench.subspace import NB201OpsSpace

    space = NB201OpsSpace(ops)
    return sorted({arch_index(space.canonical(a, rule)) for a in space.enumerate()})


@functools.lru_cache(maxsize=4)
def _data(name: str, seed: int, train_size: int, val_size: int, device: str):
    import nasnb.data

    return nasnb.data.load(name, seed=seed, train_size=train_size, val_size=val_size, device=device)


def evaluator(protocol: dict, seed: int, device: str = "cpu"):
    """The TrainEvaluator that trains one cell with `protocol` and training seed `seed`."""
    from nasnb.evaluators import TrainEvaluator

    d = protocol["data"]
    data = _data(d["name"], d["seed"], d["train_size"], d["val_size"], device)
    return TrainEvaluator(data, protocol["epochs"], space=NB201Space(), build_kwargs=dict(protocol["network"]),
                          seed=seed, test=True, count_flops=False, device=device, **protocol["fit"])


def train_record(protocol: dict, index: int, seed: int, device: str = "cpu") -> dict:
    """Train the cell at enumerate position `index` once; its record as JSON types (counts correct)."""
    import torch

    torch.set_num_threads(protocol["threads"])
    _warm_up(protocol, device)
    ev = evaluator(protocol, seed, device)
    start = time.process_time()
    m = ev(arch_at(index))
    cpu = time.process_time() - start  # training and its evaluations: what a lookup stands for
    val_size, test_size = len(ev.data.val[1]), len(ev.data.test[1])
    seconds = cpu if protocol.get("timing") == "process_time" and device == "cpu" else m["seconds"]
    return {"index": index, "seed": seed, "seconds": seconds, "wall_seconds": m["seconds"],
            "val_correct": [round(a * val_size) for a in m["val_curve"]],
            "test_correct": round(m["test_accuracy"] * test_size)}


@functools.lru_cache(maxsize=None)
def _warm_up_once(protocol_json: str, device: str) -> None:
    """One untimed training per process first: a process's first training also pays one-off set-up
    (oneDNN's kernel choice, allocator growth), 5-10x its time, which the table must not record."""
    protocol = json.loads(protocol_json)
    evaluator(protocol, 0, device)(("nor_conv_3x3",) * 6)


def _warm_up(protocol: dict, device: str) -> None:
    _warm_up_once(json.dumps(protocol, sort_keys=True), device)


def cell_costs(protocol: dict, indices) -> dict:
    """Params and FLOPs of the protocol's network for the cells at `indices` (enumerate positions)."""
    import torch

    from nasnb.cost import count_flops, count_params

    torch.set_num_threads(protocol["threads"])
    space, d = NB201Space(), protocol["data"]
    shape = (1, 8, 8) if d["name"] in ("digits", "shapes") else (3, 32, 32)
    params, flops = [], []
    for index in indices:
        model = space.build(arch_at(index), **protocol["network"], num_classes=10, in_channels=shape[0])
        params.append(count_params(model))
        flops.append(count_flops(model, shape))
    return {"indices": list(indices), "params": params, "flops": flops}


# ----------------------------------------------------------------------------- shards


def shard_ranges(cells: list[int], size: int) -> list[list[int]]:
    return [cells[i:i + size] for i in range(0, len(cells), size)]


def read_shard(path: Path, protocol: dict) -> dict:
    shard = json.loads(Path(path).read_text())
    if shard.get("protocol_hash") != protocol_hash(protocol):
        raise ResumeMismatchError(f"{path} was built with protocol {shard.get('protocol_hash')}, not "
                                  f"{protocol_hash(protocol)}; build into another folder or delete it")
    return shard


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, separators=(",", ":")))
    tmp.replace(path)


def assemble(folder: Path, protocol: dict, machine: dict | None = None, ops=None) -> Table:
    """The Table from a folder of finished shards and costs.json; every cell and seed must be there
    (every cell of `protocol_cells`: a partial table's cells of other classes get class_of MISSING).

    ops: a smaller sub-space (NB201OpsSpace's argument) whose classes alone go into the table; the
    shards' other records are left out, and only this sub-space's must be finished."""
    folder = Path(folder)
    cells = protocol_cells(protocol, ops)
    if ops is not None and not set(cells) <= set(protocol_cells(protocol)):
        raise ResumeMismatchError(f"ops={ops} is not a sub-space of what {protocol['name']} trains")
    row_of = {c: r for r, c in enumerate(cells)}
    seeds, epochs = protocol["seeds"], protocol["epochs"]
    val = np.full((len(cells), len(seeds), epochs), -1, dtype=np.int32)
    test = np.full((len(cells), len(seeds)), -1, dtype=np.int32)
    seconds = np.full((len(cells), len(seeds)), np.nan, dtype=np.float32)
    built = []
    for path in sorted(folder.glob("shard-*.json")):
        shard = read_shard(path, protocol)
        built.append(shard.get("machine", {}))
        for r in shard["records"]:
            if r["index"] not in row_of:
                continue  # a class outside the sub-space `ops`
            row, k = row_of[r["index"]], seeds.index(r["seed"])
            val[row, k], test[row, k], seconds[row, k] = r["val_correct"], r["test_correct"], r["seconds"]
    missing = int((test < 0).sum())
    if missing:
        raise DamagedFileError(f"{folder}: {missing} of {test.size} trainings are missing; run the build again")
    costs = json.loads((folder / "costs.json").read_text())
    space = NB201Space()
    class_of = np.array([row_of.get(arch_index(space.canonical(a, protocol["canonical_rule"])), MISSING)
                         for a in space.enumerate()], dtype=np.uint16)
    data = _data(protocol["data"]["name"], protocol["data"]["seed"], protocol["data"]["train_size"],
                 protocol["data"]["val_size"], "cpu")
    meta = {**protocol, "format": FORMAT, "protocol_hash": protocol_hash(protocol),
            "val_size": len(data.val[1]), "test_size": len(data.test[1]), "train_size": len(data.train[1]),
            "data_fingerprint": data.fingerprint(), "built_on": machine or (built[0] if built else {}),
            "total_train_seconds": float(np.nansum(seconds)),
            "flops_note": "forward FLOPs of one image, multiply-add = 2 (nasnb.cost.count_flops)"}
    if ops is not None:
        meta["cells"] = {**protocol.get("cells", {}), "ops": ops, "built_for": protocol.get("cells", {}).get("ops")}
    latency = read_latency(folder)  # None: no latency-*.json shards, the table has no latency_ms
    if latency is not None:
        meta["latency"] = latency[1]
    return Table(protocol["name"], meta, np.array(cells, dtype=np.int32), class_of, val.astype(np.uint16),
                 test.astype(np.uint16), seconds, np.array(costs["params"], dtype=np.int64),
                 np.array(costs["flops"], dtype=np.int64), latency_ms=None if latency is None else latency[0])


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(device: str = "cpu") -> dict:
    import torch

    facts = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
             "processor": _cpu_name(), "cores": os.cpu_count(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


# ----------------------------------------------------------------------------- latency of every cell

# How benchmarks/tables/measure_latency.py times the 15,625 networks (benchmarks/README.md, "Latency in
# the shipped table"): each cell's network as the protocol builds it, batch 1, one thread, eval mode, no
# grad, nasnb.cost.measure_latency's median of `repeats` calls after `warmup`; every cell in `passes`
# separated passes over all cells, the table keeping each cell's fastest pass (this VM has slow spells).
LATENCY_METHOD = {"function": "nasnb.cost.measure_latency", "batch_size": 1, "warmup": 3, "repeats": 15,
                  "statistic": "median", "mode": "eval, no_grad", "threads": 1, "device": "cpu",
                  "network": PROTOCOL["network"], "num_classes": 10, "input": [1, 8, 8],
                  "passes": 2, "combine": "min over passes"}


def cell_latency(method: dict, indices) -> list[float]:
    """Median forward latency in ms of the network of each cell at `indices` (enumerate positions)."""
    import torch

    from nasnb.cost import measure_latency

    torch.set_num_threads(method["threads"])
    space, shape = NB201Space(), tuple(method["input"])
    times = []
    # the process's first network pays one-off set-up (kernel choice, allocator growth): time one untimed
    warm = space.build(("nor_conv_3x3",) * 6, **method["network"], num_classes=method["num_classes"],
                       in_channels=shape[0])
    measure_latency(warm, shape, device=method["device"], warmup=method["warmup"], repeats=method["repeats"])
    for index in indices:
        model = space.build(arch_at(index), **method["network"], num_classes=method["num_classes"],
                            in_channels=shape[0])
        r = measure_latency(model, shape, batch_size=method["batch_size"], device=method["device"],
                            warmup=method["warmup"], repeats=method["repeats"])
        times.append(round(r["median"] * 1e3, 5))
    return times


# The same networks timed *relative* to a reference network (nasnb.cost.measure_relative_latency):
# each pass of a cell's network is followed at once by a pass of the reference cell's, and the
# cell's latency is the median of the per-pair ratios. A slow spell of the core (this VM's speed
# wanders 2-3x) slows both passes of a pair and cancels; the thread clock leaves out the time the OS
# gives other processes. The ratios become milliseconds through one number for the whole table: the
# reference's median at the 5th percentile of all its medians (a quiet core, not one lucky reading).
RELATIVE_LATENCY_METHOD = {"function": "nasnb.cost.measure_relative_latency", "clock": "thread",
                           "reference": "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_1x1~2|",
                           "batch_size": 1, "warmup": 2, "repeats": 9, "statistic": "median of per-pair ratios",
                           "mode": "eval, no_grad", "threads": 1, "device": "cpu", "network": PROTOCOL["network"],
                           "num_classes": 10, "input": [1, 8, 8], "passes": 1,
                           "combine": "median ratio over passes x the reference's 5th-percentile median (ms)"}
REFERENCE_PERCENTILE = 5
RELATIVE_FOLDER = "latency-relative"  # the relative shards' subfolder of a table's build folder


def cell_relative_latency(method: dict, indices) -> tuple[list[float], list[float]]:
    """(ratios to the reference, the reference's median ms in each measurement) of each cell at
    `indices`, timed as `method` (RELATIVE_LATENCY_METHOD) says."""
    import torch

    from nasnb.cost import measure_relative_latency

    torch.set_num_threads(method["threads"])
    space, shape = NB201Space(), tuple(method["input"])

    def build(arch):
        return space.build(arch, **method["network"], num_classes=method["num_classes"], in_channels=shape[0])

    reference = build(space.parse(method["reference"]))
    timing = dict(batch_size=method["batch_size"], device=method["device"], warmup=method["warmup"],
                  repeats=method["repeats"], clock=method["clock"])
    measure_relative_latency(build(("nor_conv_3x3",) * 6), shape, reference, shape, **timing)  # one-off set-up, untimed
    ratios, reference_ms = [], []
    for index in indices:
        r = measure_relative_latency(build(arch_at(index)), shape, reference, shape, **timing)
        ratios.append(round(r["ratio"], 6))
        reference_ms.append(round(r["reference_median"] * 1e3, 5))
    return ratios, reference_ms


def read_latency(folder: Path, method: dict = LATENCY_METHOD,
                 relative_method: dict = RELATIVE_LATENCY_METHOD) -> tuple[np.ndarray, dict] | None:
    """(latency_ms of the 15,625 cells, a note for the table's meta), None when there is none.

    Relative shards (folder/latency-relative/, `relative_method`) are read when there are any;
    else the absolute ones (folder/latency-*.json, `method`), each cell's fastest pass. A partial
    set is refused."""
    relative = sorted((Path(folder) / RELATIVE_FOLDER).glob("latency-*.json"))
    if relative:
        return read_relative_latency(relative, relative_method)
    paths = sorted(Path(folder).glob("latency-*.json"))
    if not paths:
        return None
    size = len(NB201Space())
    latency = np.full(size, np.inf)
    passes, loads, machines = [], [], []
    for path in paths:
        shard = json.loads(path.read_text())
        if shard.get("method_hash") != protocol_hash(method):
            raise ResumeMismatchError(f"{path} was measured with method {shard.get('method_hash')}, not "
                                      f"{protocol_hash(method)}; measure into another folder or delete it")
        start, stop = shard["indices"]
        for p in shard["passes"]:
            latency[start:stop] = np.minimum(latency[start:stop], p["median_ms"])
            loads += [p["load_start"][0], p["load_end"][0]]
            machines.append(p["machine"])
        passes.append(len(shard["passes"]))
    missing = int(np.isinf(latency).sum())
    if missing:
        raise DamagedFileError(f"{folder}: the latency of {missing} of {size} cells is missing; run "
                               "benchmarks/tables/measure_latency.py again")
    note = {"method": method, "method_hash": protocol_hash(method), "machine": machines[0],
            "passes_per_cell": [min(passes), max(passes)],
            "load_1min": [round(min(loads), 2), round(float(np.median(loads)), 2), round(max(loads), 2)],
            "note": "ms of one forward pass of one image on the machine named, a busy shared VM (load_1min: "
                    "min, median, max at the shards' starts and ends); compare cells, not machines"}
    return latency.astype(np.float32), note


def read_relative_latency(paths, method: dict) -> tuple[np.ndarray, dict]:
    """The relative shards at `paths` as (latency_ms, note): each cell's median ratio over its passes
    times the reference's REFERENCE_PERCENTILE-th percentile median over every measurement."""
    size = len(NB201Space())
    ratios = [[] for _ in range(size)]
    reference_ms, passes, loads, machines = [], [], [], []
    for path in paths:
        shard = json.loads(Path(path).read_text())
        if shard.get("method_hash") != protocol_hash(method):
            raise ResumeMismatchError(f"{path} was measured with method {shard.get('method_hash')}, not "
                                      f"{protocol_hash(method)}; measure into another folder or delete it")
        start, stop = shard["indices"]
        for p in shard["passes"]:
            for i, ratio in zip(range(start, stop), p["ratio"]):
                ratios[i].append(ratio)
            reference_ms += p["reference_ms"]
            loads += [p["load_start"][0], p["load_end"][0]]
            machines.append(p["machine"])
        passes.append(len(shard["passes"]))
    missing = sum(not r for r in ratios)
    if missing:
        raise DamagedFileError(f"{Path(paths[0]).parent}: the latency of {missing} of {size} cells is missing; run "
                               "benchmarks/tables/measure_latency.py again")
    scale = float(np.percentile(reference_ms, REFERENCE_PERCENTILE))
    latency = np.array([np.median(r) for r in ratios]) * scale
    note = {"method": method, "method_hash": protocol_hash(method), "machine": machines[0],
            "passes_per_cell": [min(passes), max(passes)], "reference_ms": round(scale, 5),
            "reference_ms_spread": [round(float(np.percentile(reference_ms, q)), 5) for q in (5, 50, 95)],
            "load_1min": [round(min(loads), 2), round(float(np.median(loads)), 2), round(max(loads), 2)],
            "note": "ms of one forward pass of one image on the machine named: each cell timed against a "
                    "reference cell (ratio), the ratios in ms of the reference on a quiet core; compare "
                    "cells, not machines"}
    return latency.astype(np.float32), note
