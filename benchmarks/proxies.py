"""Zero-cost proxies on the NB201-digits table: rank correlations, seconds per cell, a pre-filtered search.

    nice -n 19 python benchmarks/proxies.py                # every unique cell (6,466; resumable), then the table
    python benchmarks/proxies.py --cells 300               # a seeded random sample of the unique cells
    python benchmarks/proxies.py --synthetic --cells 12    # check the script on a small synthetic table
    python benchmarks/proxies.py --analyse-only            # the saved scores against the shipped table
    python benchmarks/proxies.py --analyse-only --shards   # ... against the finished shards of a build

Scoring: each unique cell's network exactly as the table trains it for its seed 0 (C=8, N=1, the
protocol's digits splits; `nasnb.proxies.build_seeded(..., seed=0)`), one batch of 64 training
images drawn with seed 0, every proxy of `nasnb.proxies.PROXIES` timed on its own (one thread,
perf_counter). The scores go to benchmarks/results/proxies-nb201-digits.npz as they are made
(every 200 cells, in a seeded random order, so the cells of a stopped run are a uniform sample;
`--analyse-only` analyses them, a rerun continues where it stopped); a notebook reads the same file
(`index`: arch indices, `proxies`: names, `scores` (cells, proxies), `seconds` (cells, proxies)).

Analysis (needs the table): Spearman and Kendall tau (scipy) of each proxy against the final test
and validation accuracy (mean of the table's 3 seeds), next to reduced training (seed 0's validation
accuracy after 1 and 3 of 10 epochs: one third of the truth's own trainings) and another training
(seed 0's final validation accuracy against the mean test accuracy of seeds 1 and 2). Then a search
on the table over `--runs` seeds: plain random search against random search that samples
`--candidates` archs per lookup and looks up only the one the proxy ranks best (Abdelfattah et al.'s
"zero-cost warmup" is a cousin); the regret (best mean test accuracy minus that of the best-by-
validation cell found) after N lookups, and the simulated seconds: trainings' recorded CPU seconds
plus the proxies' measured seconds for every candidate scored.

A candidate is any of the 15,625 cells (restricted to the classes that were scored); its score is
its class representative's (the network the table trained).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "proxies-nb201-digits.npz"
BATCH_SIZE, SEED = 64, 0
BUDGETS = (10, 25, 50, 100)  # lookups after which the searches' regrets are compared


# ----------------------------------------------------------------------------- scoring


def settings() -> dict:
    import torch
    from nasnb.bench.build import PROTOCOL
    from nasnb.proxies import PROXIES

    return {"proxies": list(PROXIES), "batch_size": BATCH_SIZE, "seed": SEED, "data": PROTOCOL["data"],
            "network": PROTOCOL["network"], "threads": 1, "torch": torch.__version__}


def load_results(path: pathlib.Path, want: dict) -> dict:
    """index -> (scores, seconds, build seconds) of a previous run with the same settings."""
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(f["meta_json"].tobytes().decode("utf-8"))
        if {k: meta.get(k) for k in want} != want:
            print(f"{path.name} was made with other settings; starting again")
            return {}
        return {int(i): (s, t, b) for i, s, t, b in zip(f["index"], f["scores"], f["seconds"], f["build_seconds"])}


def save_results(path: pathlib.Path, done: dict, meta: dict) -> None:
    index = sorted(done)
    text = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, meta_json=text, index=np.array(index, dtype=np.int32),
                        proxies=np.array(meta["proxies"]),
                        scores=np.array([done[i][0] for i in index], dtype=np.float64),
                        seconds=np.array([done[i][1] for i in index], dtype=np.float32),
                        build_seconds=np.array([done[i][2] for i in index], dtype=np.float32))
    os.replace(tmp, path)


def score_cells(cells: list[int], path: pathlib.Path) -> dict:
    import torch

    import nasnb.data
    from nasnb.bench import arch_at
    from nasnb.proxies import PROXIES, batch, build_seeded
    from nasnb.spaces import NB201Space

    torch.set_num_threads(1)
    meta = settings()
    done = load_results(path, meta)
    todo = [c for c in cells if c not in done]
    todo = [todo[k] for k in np.random.default_rng(SEED).permutation(len(todo))]  # any prefix: a random sample
    print(f"scoring {len(todo)} cells ({len(cells) - len(todo)} of {len(cells)} already in {path.name})", flush=True)
    if not todo:
        return done
    d = meta["data"]
    data = nasnb.data.load(d["name"], seed=d["seed"], train_size=d["train_size"], val_size=d["val_size"])
    space, names = NB201Space(), list(PROXIES)
    batch_x, batch_y = batch(data, BATCH_SIZE, SEED)
    for name in names:  # warm-up: the first call of each pays for lazy imports and allocations
        PROXIES[name](build_seeded(space, arch_at(todo[0]), data, SEED), batch_x, batch_y)
    start = time.perf_counter()
    for k, index in enumerate(todo, 1):
        t0 = time.perf_counter()
        net = build_seeded(space, arch_at(index), data, SEED, **meta["network"])
        build = time.perf_counter() - t0
        values, seconds = [], []
        for name in names:
            t0 = time.perf_counter()
            values.append(PROXIES[name](net, batch_x, batch_y))
            seconds.append(time.perf_counter() - t0)
        done[index] = (np.array(values), np.array(seconds), build)
        if k % 200 == 0 or k == len(todo):
            save_results(path, done, meta)
            rate = (time.perf_counter() - start) / k
            print(f"  {k}/{len(todo)} cells, {rate:.3f} s a cell, about {rate * (len(todo) - k) / 60:.0f} min to go",
                  flush=True)
    return done


# ----------------------------------------------------------------------------- truth


def synthetic_table(scored: list[int]):
    """A Table whose test accuracy is a function of the representative's parameter count (so the
    params proxy must rank it perfectly: a check that rows line up), validation = test + noise."""
    from nasnb.bench import Table, arch_at, arch_index
    from nasnb.bench.build import PROTOCOL, unique_cells
    from nasnb.spaces import NB201Space

    space, cells = NB201Space(), unique_cells()
    rng = np.random.default_rng(0)
    row_of = {c: r for r, c in enumerate(cells)}
    class_of = np.array([row_of[arch_index(space.canonical(a))] for a in space.enumerate()], dtype=np.uint16)
    params = np.array([sum(p.numel() for p in space.build(arch_at(c), C=8, N=1, in_channels=1).parameters())
                       if c in set(scored) else 0 for c in cells])
    test = (400 * params / max(params.max(), 1)).astype(np.uint16)[:, None].repeat(3, axis=1)
    val = np.clip(test[:, :, None] + rng.integers(-5, 6, size=(len(cells), 3, 10)), 0, 397).astype(np.uint16)
    meta = {"name": "synthetic", "seeds": [0, 1, 2], "val_size": 397, "test_size": 400, "epochs": 10,
            "data": PROTOCOL["data"]}
    zeros = np.zeros(len(space), dtype=np.int64)
    return Table("synthetic", meta, np.array(cells, dtype=np.int32), class_of, val, test,
                 np.ones((len(cells), 3), dtype=np.float32), zeros, zeros)


def shards_table(folder: pathlib.Path):
    """(Table, arch indices of the cells it holds) from the finished shards of a build in progress:
    the cells with every seed trained; the other rows hold zeros and are left out of the analysis."""
    from nasnb.bench import Table, arch_index
    from nasnb.bench.build import PROTOCOL, read_shard, unique_cells
    from nasnb.spaces import NB201Space

    space, cells, seeds = NB201Space(), unique_cells(), PROTOCOL["seeds"]
    row_of = {c: r for r, c in enumerate(cells)}
    val = np.zeros((len(cells), len(seeds), PROTOCOL["epochs"]), dtype=np.uint16)
    test = np.zeros((len(cells), len(seeds)), dtype=np.uint16)
    seconds = np.zeros((len(cells), len(seeds)), dtype=np.float32)
    have = np.zeros((len(cells), len(seeds)), dtype=bool)
    for path in sorted(folder.glob("shard-*.json")):
        for r in read_shard(path, PROTOCOL)["records"]:
            row, k = row_of[r["index"]], seeds.index(r["seed"])
            val[row, k], test[row, k], seconds[row, k], have[row, k] = (r["val_correct"], r["test_correct"],
                                                                        r["seconds"], True)
    class_of = np.array([row_of[arch_index(space.canonical(a))] for a in space.enumerate()], dtype=np.uint16)
    meta = {**PROTOCOL, "val_size": PROTOCOL["data"]["val_size"], "test_size": 400}
    zeros = np.zeros(len(space), dtype=np.int64)
    table = Table("nb201-digits (shards)", meta, np.array(cells, dtype=np.int32), class_of, val, test, seconds,
                  zeros, zeros)
    return table, {c for c, full in zip(cells, have.all(axis=1)) if full}


# ----------------------------------------------------------------------------- analysis


def correlations(table, index: np.ndarray, names: list, scores: np.ndarray, seconds: np.ndarray) -> dict:
    from scipy.stats import kendalltau, spearmanr

    from nasnb.bench import arch_at

    rows = np.array([table.row(arch_at(int(i))) for i in index])
    test, val = table.test_accuracy()[rows], table.val_accuracy()[rows]
    mean_seconds = table.train_seconds[rows].mean()
    out = {}
    print(f"\n{len(rows)} cells; truth: final test (and val) accuracy, mean of {len(table.seeds)} seeds")
    print(f"{'proxy':<24} {'Spearman':>9} {'Kendall':>8} {'Sp. val':>8} {'s/cell':>8} {'x 6,466':>9}")

    def line(name, values, cost, truth=test, against_val=True):
        values = np.asarray(values, dtype=float)
        rho, tau = spearmanr(values, truth)[0], kendalltau(values, truth)[0]
        rho_val = spearmanr(values, val)[0] if against_val else float("nan")
        out[name] = {"spearman": float(rho), "kendall": float(tau), "spearman_val": float(rho_val), "seconds": cost}
        print(f"{name:<24} {rho:>9.3f} {tau:>8.3f} {rho_val:>8.3f} {cost:>8.3f} {cost * 6466 / 60:>7.1f} min")

    for k, name in enumerate(names):
        line(name, scores[:, k], float(np.median(seconds[:, k])))
    k0 = 0
    for epochs in (1, 3):
        line(f"val after {epochs} ep (seed 0)", table.val_correct[rows, k0, epochs - 1],
             mean_seconds * epochs / table.max_epochs)
    others = table.test_correct[rows, 1:].mean(axis=1)
    line("another training", table.val_correct[rows, k0, -1], mean_seconds, truth=others, against_val=False)
    print("(another training: seed 0's final val accuracy against the mean test accuracy of seeds 1, 2)")
    return out


def search(table, index: np.ndarray, names: list, scores: np.ndarray, seconds: np.ndarray, runs: int,
           candidates: int) -> dict:
    """Random search against proxy-filtered random search: regret after BUDGETS lookups."""
    from nasnb.bench import arch_at

    rows_scored = np.array([table.row(arch_at(int(i))) for i in index])
    by_row = np.full((len(table), len(names)), np.nan)
    by_row[rows_scored] = scores
    pool_rows = table.class_of[np.isin(table.class_of, rows_scored)].astype(np.int64)  # every arch of a scored class
    val, test = table.val_accuracy(), table.test_accuracy()
    best = test[rows_scored].max()  # the best the searches can find among the scored cells
    train_s = table.train_seconds.mean(axis=1)
    n = max(BUDGETS)
    out = {}
    print(f"\nsearch over {len(pool_rows)} archs ({len(rows_scored)} classes), {runs} seeds; regret = best mean "
          f"test accuracy ({best:.3f}) - that of the best-by-val cell found; mean (sem) over seeds")
    print(f"{'strategy':<24} " + " ".join(f"{f'N={b}':>14}" for b in BUDGETS) + f" {'sim. s at N=' + str(n):>16}")

    def report(name, picked, proxy_seconds):
        v, t = val[picked], test[picked]  # (runs, n)
        order = np.maximum.accumulate(v, axis=1)
        found = np.take_along_axis(t, np.argmax(v[:, :, None] >= order[:, None, :], axis=1), axis=1)  # test of the first best-by-val
        regret = best - found
        sim = train_s[picked].sum(axis=1) + proxy_seconds
        out[name] = {f"N={b}": [float(regret[:, b - 1].mean()), float(regret[:, b - 1].std(ddof=1) / np.sqrt(runs))]
                     for b in BUDGETS}
        out[name]["simulated_seconds"] = float(sim.mean())
        cells = " ".join(f"{regret[:, b - 1].mean():>7.4f} ({regret[:, b - 1].std(ddof=1) / np.sqrt(runs):.4f})"
                         for b in BUDGETS)
        print(f"{name:<24} {cells} {sim.mean():>16.0f}")

    rng = np.random.default_rng(0)
    draws = pool_rows[rng.integers(len(pool_rows), size=(runs, n, candidates))]  # (runs, n, candidates) rows
    report("random", draws[:, :, 0], 0.0)
    for k, name in enumerate(names):
        s = by_row[draws, k]
        pick = np.argmax(np.where(np.isnan(s), -np.inf, s), axis=2)
        report(f"{name} best of {candidates}", np.take_along_axis(draws, pick[:, :, None], axis=2)[:, :, 0],
               n * candidates * float(np.median(seconds[:, k])))
    if "params" in names:  # the sign is the data's, not the proxy's: on digits small cells train best
        s = by_row[draws, names.index("params")]
        pick = np.argmin(np.where(np.isnan(s), np.inf, s), axis=2)
        report(f"fewest params of {candidates}*", np.take_along_axis(draws, pick[:, :, None], axis=2)[:, :, 0],
               n * candidates * float(np.median(seconds[:, names.index("params")])))
        print("* chosen after seeing the correlations' sign: a post-hoc line, not a fair competitor")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=None, help="a seeded random sample of this many unique cells")
    parser.add_argument("--synthetic", action="store_true", help="analyse against a synthetic table (a check)")
    parser.add_argument("--analyse-only", action="store_true", help="no scoring: the saved scores only")
    parser.add_argument("--runs", type=int, default=200, help="seeds of each search")
    parser.add_argument("--candidates", type=int, default=10, help="candidates the proxy ranks per lookup")
    parser.add_argument("--shards", nargs="?", const=str(ROOT / "benchmarks/tables/nb201-digits"), default=None,
                        help="analyse against the finished shards of a table build in progress")
    parser.add_argument("--out", default=None, help=f"scores file (default {RESULTS.relative_to(ROOT)}; "
                                                    "--synthetic: a temporary file)")
    args = parser.parse_args()
    from nasnb.bench.build import unique_cells

    cells = unique_cells()
    if args.cells is not None:
        cells = sorted(np.random.default_rng(0).choice(cells, size=args.cells, replace=False).tolist())
    path = pathlib.Path(args.out) if args.out else (
        pathlib.Path("/tmp/proxies-synthetic.npz") if args.synthetic else RESULTS)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = load_results(path, settings()) if args.analyse_only else score_cells(cells, path)
    index = np.array(sorted(i for i in done if i in set(cells)))
    if len(index) < 3:
        sys.exit(f"only {len(index)} of the cells are scored in {path}; run without --analyse-only first")
    scores = np.array([done[i][0] for i in index])
    seconds = np.array([done[i][1] for i in index])
    names = settings()["proxies"]
    print(f"seconds a cell (median): build {np.median([done[i][2] for i in index]):.3f}; "
          + ", ".join(f"{n} {np.median(seconds[:, k]):.3f}" for k, n in enumerate(names)))
    if args.synthetic:
        table = synthetic_table(index.tolist())
    elif args.shards:
        table, held = shards_table(pathlib.Path(args.shards))
        index = np.array([i for i in index if i in held])
        keep = np.isin(np.array(sorted(i for i in done if i in set(cells))), index)
        scores, seconds = scores[keep], seconds[keep]
        print(f"the finished shards hold {len(held)} cells; {len(index)} of them are scored")
    else:
        import nasnb.bench

        table = nasnb.bench.load("nb201-digits")
    summary = {"correlations": correlations(table, index, names, scores, seconds),
               "search": search(table, index, names, scores, seconds, args.runs, args.candidates)}
    if not args.synthetic and len(index) == len(unique_cells()):
        with np.load(path, allow_pickle=False) as f:
            arrays = dict(f)
        meta = json.loads(arrays["meta_json"].tobytes().decode("utf-8"))
        meta["summary"] = summary
        arrays["meta_json"] = np.frombuffer(json.dumps(meta, sort_keys=True, default=float).encode("utf-8"),
                                            dtype=np.uint8)  # numpy scalars as floats
        np.savez_compressed(path, **arrays)
        print(f"\nsummary saved in {path.relative_to(ROOT)} (meta_json['summary'])")


if __name__ == "__main__":
    main()
