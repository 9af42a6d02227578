"""Time the network of every one of the 15,625 NB201 cells for the shipped table's `latency_ms`.

    python benchmarks/tables/measure_latency.py               # every pass of every shard, resumable
    python benchmarks/tables/measure_latency.py --timing absolute   # the first method (see below)
    python benchmarks/tables/measure_latency.py --shards 2    # a few shard-passes and stop
    python benchmarks/tables/measure_latency.py --assemble    # only rebuild nasnb/bench/data/nb201-digits.npz

The default method is nasnb.bench.build.RELATIVE_LATENCY_METHOD: each cell's network timed
against a fixed reference cell, pass by pass (nasnb.cost.measure_relative_latency, thread clock,
median of 9 per-pair ratios after 2 warm-up pairs), the ratios turned into ms by the reference's
5th-percentile median over the whole run. Shards go to benchmarks/tables/nb201-digits/latency-relative/
and, once complete, replace the absolute ones in the assembled table. A slow spell or another
process on the core cancels in the ratio, so one pass suffices and the run may share the machine.

The first method, `--timing absolute`, is nasnb.bench.build.LATENCY_METHOD: each cell's network as the table's protocol builds
it (C=8, N=1, one 1x8x8 image, 10 classes), batch 1, one torch thread, eval mode, no grad, the
median of 15 calls after 3 warm-up calls (nasnb.cost.measure_latency). All 15,625 cells are timed,
not one per class: members of a class compute the same function, but the built network still runs
the convs of edges whose output is never used.

The cells are cut into shards of `--size` consecutive cells (benchmarks/tables/nb201-digits/
latency-XXXX.json, written atomically). A pass times every shard once, and the next pass starts
only when the previous one is over, so a cell's two timings lie minutes apart: this VM has slow
spells of 1-3 s and other jobs share its cores, so the table keeps each cell's fastest pass. A
later pass goes first to the shards whose previous pass took longest (most likely hit by a slow
spell), so a run cut short still re-times the shards that need it most. Each
pass of a shard records the machine, the torch version, the thread count and the 1-, 5- and
15-minute load averages at its start and end. A rerun continues with the first missing pass.
"""
from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from nasnb.bench import DATA, TABLES  # noqa: E402
from nasnb.bench.build import (LATENCY_METHOD, PROTOCOL, RELATIVE_FOLDER, RELATIVE_LATENCY_METHOD,  # noqa: E402
                               assemble, cell_latency, cell_relative_latency, machine_facts, protocol_hash,
                               write_json_atomic)

FOLDER = ROOT / "benchmarks" / "tables" / "nb201-digits"
CELLS = 15625


def read(path: pathlib.Path, method: dict) -> dict | None:
    import json

    if not path.exists():
        return None
    shard = json.loads(path.read_text())
    if shard.get("method_hash") != protocol_hash(method):
        sys.exit(f"{path} was measured with another method ({shard.get('method_hash')}); delete it or use --folder")
    return shard


def last_seconds(shard: dict | None) -> float:
    return shard["passes"][-1]["seconds"] if shard and shard["passes"] else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=625, help="cells per shard")
    parser.add_argument("--shards", type=int, default=None, help="measure at most this many shard-passes, then stop")
    parser.add_argument("--timing", choices=("relative", "absolute"), default="relative",
                        help="relative (default): each cell against a reference cell, thread clock "
                             "(RELATIVE_LATENCY_METHOD, shards in nb201-digits/latency-relative/); absolute: "
                             "the first method (LATENCY_METHOD)")
    parser.add_argument("--folder", type=pathlib.Path, default=None)
    parser.add_argument("--assemble", action="store_true", help="only rebuild the table with the latency shards")
    args = parser.parse_args()
    relative = args.timing == "relative"
    method = RELATIVE_LATENCY_METHOD if relative else LATENCY_METHOD
    folder = args.folder or (FOLDER / RELATIVE_FOLDER if relative else FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    ranges = [(k, start, min(start + args.size, CELLS)) for k, start in enumerate(range(0, CELLS, args.size))]
    done = 0
    if not args.assemble:
        machine = machine_facts("cpu")
        for p in range(method["passes"]):  # pass-major: a shard's passes are a whole pass apart
            shards = {k: read(folder / f"latency-{k:04d}.json", method) for k, _, _ in ranges}
            # a later pass first times again the shards whose last pass took longest (slow spells, load)
            order = sorted(ranges, key=lambda r: -last_seconds(shards[r[0]]) if p else 0)
            for k, start, stop in order:
                path = folder / f"latency-{k:04d}.json"
                shard = shards[k] or {"method_hash": protocol_hash(method), "method": method,
                                      "indices": [start, stop], "passes": []}
                if shard["indices"] != [start, stop]:
                    sys.exit(f"{path} holds cells {shard['indices']}, not [{start}, {stop}]: another --size")
                if len(shard["passes"]) > p:
                    continue
                if args.shards is not None and done >= args.shards:
                    print(f"stopped after {done} shard-passes; run again to continue", flush=True)
                    return
                load_start, began, t = os.getloadavg(), datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
                if relative:
                    ratios, reference_ms = cell_relative_latency(method, range(start, stop))
                    measured = {"ratio": ratios, "reference_ms": reference_ms}
                    middle = sorted(reference_ms)[len(reference_ms) // 2]
                    times = [r * middle for r in ratios]  # in ms, for the progress line below
                else:
                    times = cell_latency(method, range(start, stop))
                    measured = {"median_ms": times}
                shard["passes"].append({
                    **measured, "machine": {**machine, "threads": method["threads"]},
                    "started": began.isoformat(timespec="seconds"), "seconds": round(time.perf_counter() - t, 1),
                    "load_start": [round(x, 2) for x in load_start],
                    "load_end": [round(x, 2) for x in os.getloadavg()]})
                write_json_atomic(path, shard)
                done += 1
                print(f"pass {p + 1} shard {k}: cells {start}-{stop - 1} in {shard['passes'][-1]['seconds']} s, "
                      f"load {load_start[0]:.2f} -> {os.getloadavg()[0]:.2f}, median "
                      f"{sorted(times)[len(times) // 2]:.3f} ms", flush=True)
    path = DATA / TABLES[PROTOCOL["name"]][0]
    table = assemble(FOLDER, PROTOCOL)  # relative shards (FOLDER/latency-relative/) when there are any
    if table.latency_ms is None:
        sys.exit("no latency shards to assemble")
    table.save(path)
    print(f"assembled {path} ({path.stat().st_size / 1e6:.2f} MB) with latency_ms", flush=True)


if __name__ == "__main__":
    main()
