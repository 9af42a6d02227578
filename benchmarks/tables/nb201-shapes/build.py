"""Build the partial table nb201-shapes (nasnb.bench.build.SHAPES_PROTOCOL), resumable, into this folder.

    python benchmarks/tables/nb201-shapes/build.py              # 1 worker process, 1 thread; resumable
    python benchmarks/tables/nb201-shapes/build.py --assemble   # only write nasnb/bench/data/nb201-shapes.npz
    python benchmarks/tables/nb201-shapes/build.py --assemble --subspace   # the 90 classes of a build in progress

The same machinery as scripts/build_table.py (its `build`: shards of `--size` cells x every seed,
written as they finish, a rerun trains only the missing ones): the 496 classes of the NB201 cells
made of skip_connect, nor_conv_1x1 and nor_conv_3x3, trained on the generated shapes with the
nb201-digits protocol, 1 seed. Params and FLOPs: the network and the input shape (1, 8, 8) are
those of nb201-digits, so its costs.json is reused after checking 12 cells against cell_costs.

When every shard is there, the whole table (496 classes) is assembled. Until then, --subspace
assembles the classes of build.SHAPES_SHIPPED_OPS (edge 1<-0 a skip: 90 classes, the first four
shards). The shipped table was built here on 2026-12-01: 496 trainings, 13.3 min of CPU (1.61 s
each, one thread, a busy shared 2-core VM), 36 min of wall time on 2 worker processes.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from build_table import build  # noqa: E402

from nasnb.bench import DATA  # noqa: E402
from nasnb.bench.build import (PROTOCOL, SHAPES_PROTOCOL, SHAPES_SHIPPED_OPS, assemble,  # noqa: E402
                               cell_costs, machine_facts,
                               protocol_cells, protocol_hash, read_shard, shard_ranges, write_json_atomic)

FOLDER = pathlib.Path(__file__).resolve().parent
DIGITS = ROOT / "benchmarks" / "tables" / "nb201-digits" / "costs.json"


def costs(protocol: dict) -> None:
    digits = json.loads(DIGITS.read_text())
    assert {k: v for k, v in PROTOCOL.items() if k in ("network", "space")} == \
        {k: v for k, v in protocol.items() if k in ("network", "space")}
    check = [0, 1, 777, 1234, 5000, 7777, 9999, 11111, 12345, 14000, 15000, 15624]
    mine = cell_costs(protocol, check)
    for k, i in enumerate(check):  # same network, same input: the same counts, or stop
        assert (mine["params"][k], mine["flops"][k]) == (digits["params"][i], digits["flops"][i]), i
    write_json_atomic(FOLDER / "costs.json", {"protocol_hash": protocol_hash(protocol), "params": digits["params"],
                                              "flops": digits["flops"], "note": "nb201-digits' costs, checked on "
                                              f"cells {check} (same network and input shape)"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--size", type=int, default=25, help="cells per shard")
    parser.add_argument("--shards", type=int, default=None)
    parser.add_argument("--assemble", action="store_true")
    parser.add_argument("--subspace", action="store_true", help="assemble SHAPES_SHIPPED_OPS' classes only")
    args = parser.parse_args()
    protocol = SHAPES_PROTOCOL
    ranges = shard_ranges(protocol_cells(protocol), args.size)
    done = {p.name for p in FOLDER.glob("shard-*.json") if read_shard(p, protocol)}
    todo = [(k, r) for k, r in enumerate(ranges) if f"shard-{k:04d}.json" not in done]
    print(f"protocol {protocol_hash(protocol)}: {sum(map(len, ranges))} cells x {len(protocol['seeds'])} seeds "
          f"in {len(ranges)} shards; {len(ranges) - len(todo)} done, {len(todo)} to go", flush=True)
    if not (FOLDER / "costs.json").exists():
        costs(protocol)
    if not args.assemble and todo:
        from nasnb.evaluators import process_pool

        machine = {**machine_facts("cpu"), "workers": args.workers, "executor": "process_pool"}
        with process_pool(args.workers, protocol["threads"]) as pool:
            build(todo[:args.shards] if args.shards else todo, protocol, FOLDER, pool, "cpu", machine)
    path = DATA / "nb201-shapes.npz"
    if len(list(FOLDER.glob("shard-*.json"))) == len(ranges):
        assemble(FOLDER, protocol).save(path)
        print(f"assembled {path} ({path.stat().st_size / 1e6:.2f} MB)")
    elif args.subspace:
        assemble(FOLDER, protocol, ops=SHAPES_SHIPPED_OPS).save(path)
        print(f"assembled {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
