"""How long `import nasnb` takes once torch is loaded, and what it drags in.

    python benchmarks/import_time.py [--repeats 7]

Each measurement is a fresh interpreter that imports torch first (its 1.5-3 s are not nasnb's),
then times `import nasnb`. Prints the median and the heavy modules that got imported (none expected).
"""
import argparse
import statistics
import subprocess
import sys

PROBE = r"""
import sys, time
import torch
start = time.perf_counter()
import nasnb
elapsed = time.perf_counter() - start
heavy = [m for m in ("torchvision", "matplotlib", "ipywidgets", "IPython", "sklearn", "pandas") if m in sys.modules]
print(elapsed, ",".join(heavy))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    times, heavy = [], set()
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
        times.append(float(out[0]))
        heavy.update(out[1].split(",") if len(out) > 1 else [])
    print(f"import nasnb after torch: median {statistics.median(times) * 1000:.0f} ms, "
          f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {args.repeats} runs")
    print(f"heavy modules imported: {sorted(heavy) or 'none'}")


if __name__ == "__main__":
    main()
