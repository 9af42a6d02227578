"""Peak memory and time of each notebook's kernel: does it fit mybinder.org?

Binder guarantees about 1 GB of memory per user (2 GB at most), shared by the JupyterLab server
and every open kernel. This script runs each notebook headless (nbclient, as the tests do) and
appends one cell that reports the kernel's peak resident set (`ru_maxrss`) and whether torchvision
was imported. Run it with the Python whose torch you want to measure: the CUDA build that pip
installs on Linux maps several hundred MB more than the CPU-only build Binder uses (binder/).

    python benchmarks/notebook_memory.py               # quick budget (NASNB_QUICK=1), all notebooks
    python benchmarks/notebook_memory.py --full 02     # default budget, notebooks whose name has "02"

Baseline in the same process: the peak of a bare kernel that only imports torch, so the table
shows what the notebook adds on top of torch itself.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
REPORT = ("import resource, sys, torch\n"
          "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'torchvision' in sys.modules,"
          " torch.__version__)")


def run(nb, workdir: Path) -> tuple[float, bool, str, float]:
    """Execute `nb` with the report cell appended: (peak MB, torchvision imported, torch version, seconds)."""
    nb.cells.append(nbformat.v4.new_code_cell(REPORT))
    start = time.perf_counter()
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    seconds = time.perf_counter() - start
    peak, torchvision, version = nb.cells[-1].outputs[0]["text"].split()
    return float(peak), torchvision == "True", version, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="run only notebooks whose file name contains one of these")
    parser.add_argument("--full", action="store_true", help="the default budget instead of NASNB_QUICK=1")
    args = parser.parse_args()
    if args.full:
        os.environ.pop("NASNB_QUICK", None)
    else:
        os.environ["NASNB_QUICK"] = "1"
    notebooks = [p for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
                 if not args.only or any(o in p.name for o in args.only)]
    workdir = ROOT / "nasnb-runs" / "notebook_memory"
    workdir.mkdir(parents=True, exist_ok=True)

    base, _, version, _ = run(nbformat.v4.new_notebook(), workdir)
    print(f"python {sys.version.split()[0]}, torch {version}, budget {'full' if args.full else 'quick'}")
    print(f"{'kernel':<24} {'peak MB':>8} {'over torch':>10} {'seconds':>8}  torchvision imported")
    print(f"{'bare (import torch)':<24} {base:>8.0f} {0:>10.0f} {'':>8}")
    for path in notebooks:
        peak, torchvision, _, seconds = run(nbformat.read(path, as_version=4), workdir)
        print(f"{path.stem:<24} {peak:>8.0f} {peak - base:>10.0f} {seconds:>8.0f}  {torchvision}")


if __name__ == "__main__":
    main()
