"""The shipped table: its file size, load time, lookups per second and the protocol's statistics.

    python benchmarks/table_stats.py                    # the shipped nb201-digits table
    python benchmarks/table_stats.py --shards           # the finished shards of a build in progress

Prints: file size; load time (median of 5 fresh processes, import excluded); `table.query`
lookups per second; and the targets of the protocol: the all-`none` cell against chance, the best
cells against the median, the Spearman rank correlation of the final validation accuracy between
every pair of seeds over all cells (scipy.stats.spearmanr), the same for the 3-seed mean a lookup
returns (Spearman-Brown, checked against each seed's agreement with the mean of the others), and
the build's total training time.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load_seconds() -> float:
    code = ("import time, nasnb.bench as b; s = time.perf_counter(); b.load('nb201-digits'); "
            "print(time.perf_counter() - s)")
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 cwd=ROOT).stdout) for _ in range(5)]
    return statistics.median(runs)


def from_shards(folder: pathlib.Path):
    """(val accuracy per cell and seed, train seconds, arch indices) of the finished shards."""
    from nasnb.bench.build import PROTOCOL, read_shard

    rows = {}
    for path in sorted(folder.glob("shard-*.json")):
        for r in read_shard(path, PROTOCOL)["records"]:
            rows.setdefault(r["index"], {})[r["seed"]] = r
    seeds = PROTOCOL["seeds"]
    cells = sorted(i for i, by_seed in rows.items() if len(by_seed) == len(seeds))
    val = np.array([[rows[c][s]["val_correct"][-1] for s in seeds] for c in cells]) / PROTOCOL["data"]["val_size"]
    seconds = np.array([[rows[c][s]["seconds"] for s in seeds] for c in cells])
    return val, seconds, cells


def spearman_brown(r: float, k: int) -> float:
    """The reliability of the mean of k measurements whose pairwise correlation is r."""
    return k * r / (1 + (k - 1) * r)


def report(val: np.ndarray, seconds: np.ndarray, cells: list[int], workers: int = 2, val_size: int = 397) -> None:
    from scipy.stats import spearmanr

    from nasnb.bench import arch_index

    mean = val.mean(axis=1)
    none = arch_index(("none",) * 6)
    print(f"cells {len(cells)} x seeds {val.shape[1]}")
    if none in cells:
        print(f"all-none cell: val accuracy {mean[cells.index(none)]:.3f} (chance 0.1)")
    print(f"val accuracy (mean over seeds): min {mean.min():.3f}  median {np.median(mean):.3f}  "
          f"p90 {np.quantile(mean, 0.9):.3f}  p99 {np.quantile(mean, 0.99):.3f}  max {mean.max():.3f}")
    pairs = [(i, j) for i in range(val.shape[1]) for j in range(i + 1, val.shape[1])]
    rhos = [spearmanr(val[:, i], val[:, j])[0] for i, j in pairs]
    print("seed-to-seed Spearman over all cells: " + ", ".join(f"{i}-{j}: {r:.3f}" for (i, j), r in zip(pairs, rhos)))
    # What a lookup answers by default is the mean over the seeds: how well does one seed's ranking
    # agree with the mean of the others (an independent estimate of the same ranking)?
    k = val.shape[1]
    if k > 2:
        rest = [spearmanr(val[:, i], np.delete(val, i, axis=1).mean(axis=1))[0] for i in range(k)]
        print(f"Spearman of each seed against the mean of the other {k - 1}: " + ", ".join(f"{r:.3f}" for r in rest))
        # Spearman-Brown: if one seed's ranking has reliability r (its correlation with another seed's),
        # the mean of k seeds has R_k = k r / (1 + (k - 1) r), and two such estimates correlate as
        # sqrt(R_k R_m). The 1-against-(k-1) figure above checks the model; R_k is what a rebuild of
        # the table with k new seeds would give for the ranking a lookup returns.
        r = float(np.mean(rhos))
        predicted = np.sqrt(r * spearman_brown(r, k - 1))
        print(f"Spearman-Brown: one seed against the mean of {k - 1} predicted {predicted:.3f} (measured "
              f"{np.mean(rest):.3f}); the {k}-seed mean against an independent {k}-seed mean: "
              f"{spearman_brown(r, k):.3f}")
    for lo, hi in ((0.0, 0.5), (0.5, 1.01)):  # where the rank noise is: the weak cells or the good ones
        keep = (mean >= lo) & (mean < hi)
        if keep.sum() > 10:
            print(f"  cells with mean val accuracy in [{lo:.1f}, {min(hi, 1):.1f}): {keep.sum()}, seed 0-1 "
                  f"Spearman {spearmanr(val[keep, 0], val[keep, 1])[0]:.3f}")
    # Where the seed noise comes from: the binomial noise of counting val_size images, against all of it
    seed_var, count_var = val.var(axis=1, ddof=1).mean(), (mean * (1 - mean) / val_size).mean()
    print(f"seed-to-seed sd of a cell's accuracy {np.sqrt(seed_var):.3f}; of it, counting {val_size} images "
          f"explains {100 * count_var / seed_var:.0f} % of the variance (the rest is the training seed)")
    print(f"training seconds: {seconds.sum():.0f} s in all, {seconds.mean():.2f} s a training; "
          f"{seconds.sum() / workers / 3600:.2f} h on {workers} one-thread workers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", nargs="?", const=str(ROOT / "benchmarks/tables/nb201-digits"), default=None)
    args = parser.parse_args()
    if args.shards:
        report(*from_shards(pathlib.Path(args.shards)))
        return
    import nasnb.bench as bench

    path = bench.DATA / bench.TABLES["nb201-digits"][0]
    print(f"file {path.relative_to(ROOT)}: {path.stat().st_size / 1e6:.2f} MB; load {load_seconds() * 1000:.0f} ms "
          "(median of 5 fresh processes)")
    table = bench.load("nb201-digits")
    rng = np.random.default_rng(0)
    archs = [bench.arch_at(int(i)) for i in rng.integers(len(table.space), size=20000)]
    start = time.perf_counter()
    for a in archs:
        table.query(a)
    print(f"query: {len(archs) / (time.perf_counter() - start):,.0f} lookups/s")
    val = table.val_correct[:, :, -1] / table.val_size
    report(val, table.train_seconds, [bench.arch_index(c) for c in table.cells], val_size=table.val_size)
    print("protocol:", json.dumps({k: table.meta[k] for k in ("data", "network", "epochs", "fit", "seeds", "threads")}))


if __name__ == "__main__":
    main()
