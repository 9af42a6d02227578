"""Build the shipped NB201-digits table: train every unique NB201 cell with nasnb.bench.build.PROTOCOL.

    python scripts/build_table.py                      # all of it, 2 worker processes, resumable
    python scripts/build_table.py --workers 1 --shards 3   # a few shards and stop
    python scripts/build_table.py --assemble           # only write nasnb/bench/data/nb201-digits.npz

Finished shards (JSON, `--size` cells x every seed) land in benchmarks/tables/nb201-digits/ as
they finish; a rerun skips them, so a build that stops loses only the shards in progress. Shards
of another protocol are refused. Trainings run through a concurrent.futures executor: the
executors a search runs on. By default nasnb.evaluators.process_pool (one-thread worker processes);
with --devices all (or cuda:0,cuda:1) one worker per GPU; with --dask ADDRESS the workers of a
running Dask scheduler (nasnb.distributed.dask_executor; `pip install "nasnb[dask]"`). --device
cuda trains on the GPU in every worker. When every shard is there, the table is assembled into
the package.

    python scripts/build_table.py --devices all --device cuda      # one worker per GPU
    python scripts/build_table.py --dask tcp://10.0.0.5:8786        # a cluster's workers
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time
from concurrent.futures import as_completed

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nasnb.bench import DATA, TABLES  # noqa: E402
from nasnb.bench.build import (PROTOCOL, assemble, cell_costs, machine_facts, protocol_hash, read_shard,  # noqa: E402
                               shard_ranges, train_record, unique_cells, write_json_atomic)

FOLDER = ROOT / "benchmarks" / "tables" / "nb201-digits"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=50, help="unique cells per shard")
    parser.add_argument("--shards", type=int, default=None, help="build at most this many shards, then stop")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--folder", type=pathlib.Path, default=FOLDER)
    parser.add_argument("--assemble", action="store_true", help="only assemble the finished shards")
    parser.add_argument("--devices", default=None,
                        help="one worker per device: 'all' (every GPU) or a list, e.g. cuda:0,cuda:1")
    parser.add_argument("--dask", default=None, metavar="ADDRESS",
                        help="train on the workers of a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    args = parser.parse_args()
    if args.dask and args.devices:
        parser.error("--dask and --devices exclude each other: a Dask worker's GPU is pinned where it starts "
                     "(CUDA_VISIBLE_DEVICES=k dask worker ...)")
    folder = args.folder
    folder.mkdir(parents=True, exist_ok=True)
    protocol = PROTOCOL
    cells = unique_cells(protocol["canonical_rule"])
    ranges = shard_ranges(cells, args.size)
    done = {p.name for p in folder.glob("shard-*.json") if read_shard(p, protocol)}
    todo = [(k, r) for k, r in enumerate(ranges) if f"shard-{k:04d}.json" not in done]
    print(f"protocol {protocol_hash(protocol)}: {len(cells)} cells x {len(protocol['seeds'])} seeds in "
          f"{len(ranges)} shards; {len(ranges) - len(todo)} done, {len(todo)} to go", flush=True)
    if not args.assemble:
        machine = {**machine_facts(args.device), "workers": args.workers,
                   "executor": "dask" if args.dask else "process_pool"}
        with executor_for(args, protocol) as pool:
            build(todo[:args.shards] if args.shards else todo, protocol, folder, pool, args.device, machine)
        if not (folder / "costs.json").exists():
            costs(protocol, folder, args.workers)
    finished = len(list(folder.glob("shard-*.json")))
    if finished == len(ranges):
        path = DATA / TABLES[protocol["name"]][0]
        path.parent.mkdir(parents=True, exist_ok=True)  # nasnb/bench/data: git keeps no empty folder
        assemble(folder, protocol).save(path)
        print(f"assembled {path} ({path.stat().st_size / 1e6:.2f} MB)")
    else:
        print(f"{finished} of {len(ranges)} shards finished; run again to continue")


def costs(protocol, folder, workers) -> None:
    """Params and FLOPs of all 15,625 cells, in chunks on the workers, into costs.json."""
    from nasnb.evaluators import process_pool

    start = time.perf_counter()
    chunks = [range(k, min(k + 625, 15625)) for k in range(0, 15625, 625)]
    with process_pool(workers, protocol["threads"]) as pool:
        parts = list(pool.map(cell_costs, [protocol] * len(chunks), chunks))
    merged = {"protocol_hash": protocol_hash(protocol), "params": [], "flops": []}
    for part in parts:
        merged["params"] += part["params"]
        merged["flops"] += part["flops"]
    write_json_atomic(folder / "costs.json", merged)
    print(f"params and FLOPs of 15,625 cells: {time.perf_counter() - start:.0f} s", flush=True)


def executor_for(args, protocol):
    """The executor the trainings run on (a context manager that shuts it down)."""
    if args.dask:
        from nasnb.distributed import dask_executor

        return dask_executor(args.dask, torch_threads=protocol["threads"])
    from nasnb.evaluators import process_pool

    if args.devices:
        devices = args.devices if args.devices == "all" else args.devices.split(",")
        return process_pool(threads_per_worker=protocol["threads"], devices=devices)
    return process_pool(args.workers, protocol["threads"])


def build(todo, protocol, folder, pool, device, machine) -> None:
    """Train the shards `todo` ([(k, cell indices)]) on the executor `pool`; write each shard as it finishes."""
    from tqdm.auto import tqdm

    jobs = {}
    for k, cells in todo:
        for index in cells:
            for seed in protocol["seeds"]:
                jobs[pool.submit(train_record, protocol, index, seed, device)] = k
    remaining = {k: len(cells) * len(protocol["seeds"]) for k, cells in todo}
    records = {k: [] for k, _ in todo}
    start = time.perf_counter()
    for future in tqdm(as_completed(jobs), total=len(jobs), desc="trainings", mininterval=30):
        k = jobs[future]
        records[k].append(future.result())
        remaining[k] -= 1
        if remaining[k] == 0:
            shard = {"protocol_hash": protocol_hash(protocol), "protocol": protocol, "machine": machine,
                     "wall_seconds_so_far": time.perf_counter() - start,
                     "records": sorted(records.pop(k), key=lambda r: (r["index"], r["seed"]))}
            write_json_atomic(folder / f"shard-{k:04d}.json", shard)


if __name__ == "__main__":
    main()
