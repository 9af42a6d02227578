"""The `nasnb` command: the notebooks in JupyterLab, or a search headless in a terminal.

    nasnb lab [--dir nasnb-notebooks]        copy the bundled notebooks there and open JupyterLab
    nasnb search --strategy evolution        search NB201 cells trained on digits; write history + figures
    nasnb draw '|nor_conv_3x3~0|+|...|' -o cell.svg
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def bundled_notebooks() -> list[Path]:
    """The course notebooks, in order: shipped inside the wheel as nasnb/notebooks/, or found in the
    repository's notebooks/ folder when nasnb runs from a source checkout (an editable install)."""
    package = Path(__file__).resolve().parent
    for folder in (package / "notebooks", package.parent / "notebooks"):
        found = sorted(folder.glob("*.ipynb"))
        if found:
            return found
    raise FileNotFoundError(f"no notebooks found in {package / 'notebooks'}: reinstall nasnb")


def copy_notebooks(dest: Path, force: bool = False) -> list[Path]:
    """Copy the bundled notebooks into `dest`; existing files are kept (your edits are safe)
    unless `force`. Returns the paths written."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for source in bundled_notebooks():
        target = dest / source.name
        if target.exists() and not force:
            continue
        target.write_bytes(source.read_bytes())
        written.append(target)
    return written


def cmd_lab(args) -> int:
    dest = Path(args.dir)
    written = copy_notebooks(dest, force=args.force)
    total = len(bundled_notebooks())
    print(f"{len(written)} of {total} notebooks copied to {dest.resolve()} (existing files kept)")
    if args.no_launch:
        return 0
    if shutil.which("jupyter") is None and not _has_module("jupyterlab"):
        print("JupyterLab is not installed: pip install 'nasnb[lab]'", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={dest.resolve()}", *args.lab_args]
    return subprocess.call(command)


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def make_space(name: str):
    from nasnb.spaces import DartsSpace, NB201Space

    spaces = {"nb201": NB201Space, "darts": DartsSpace}
    if name not in spaces:
        raise SystemExit(f"unknown space {name!r}; choose from {sorted(spaces)}")
    return spaces[name]()


STRATEGIES = {  # CLI name -> class name in nasnb.strategies
    "random": "RandomSearch",
    "evolution": "RegularizedEvolution",
    "reinforce": "Reinforce",
}


def make_strategy(name: str, space, evaluator, seed: int):
    import nasnb.strategies as strategies

    if name not in STRATEGIES:
        raise SystemExit(f"unknown strategy {name!r}; choose from {sorted(STRATEGIES)}")
    return getattr(strategies, STRATEGIES[name])(space, evaluator, seed=seed)


def cmd_search(args) -> int:
    """Run a search headless: the same objects a notebook uses, with files instead of widgets."""
    from nasnb import data as datasets
    from nasnb import viz
    from nasnb.evaluators import TrainEvaluator

    space = make_space(args.space)
    data = datasets.load(args.dataset, root=args.data_root, seed=args.seed)
    if args.train_size:
        data = data.subset(train_size=args.train_size, seed=args.seed)
    evaluator = TrainEvaluator(data, epochs=args.epochs, seed=args.seed, device=args.device)
    search = make_strategy(args.strategy, space, evaluator, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The checkpoint is written after every trial; running the same command again resumes from it.
    search.run(args.trials, checkpoint=out / "search.ckpt", progress=True)
    search.history.save(out / "history.json")
    best = search.best()
    fmt = "svg" if viz.has_dot() else "png"
    (out / f"best_cell.{fmt}").write_bytes(viz.cell_image(space, space.parse(best.arch), format=fmt))
    _plot_history(search, out / "search.png")
    print(f"best of {len(search.history)}: {search.metric}={best.value(search.metric):.3f} "
          f"params={best.metrics.get('params', float('nan')):,} {best.arch}")
    print(f"wrote {out / 'history.json'}, {out / f'best_cell.{fmt}'}, {out / 'search.png'} "
          f"(and {out / 'search.ckpt'}: run the same command again to continue)")
    return 0


def _plot_history(search, path: Path) -> None:
    """The strategy's own view (population, policy) when viz has one, else metric per trial."""
    from matplotlib.figure import Figure

    from nasnb import viz

    panel = next((p for p in search.panels if p != "cell"), "progress")
    plot = {"population": getattr(viz, "plot_population", None), "policy": getattr(viz, "plot_policy", None)}.get(panel)
    if plot is not None:
        fig = plot(search.history)
    else:
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        ax.plot(search.history.values(), "o", alpha=0.6, label="trial")
        ax.plot(search.history.best_so_far(), "-", label="best so far")
        ax.set(xlabel="trial", ylabel=search.metric, title=f"{type(search).__name__} on {search.space.name}")
        ax.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")


def resolve_arch(text: str, space_name: str | None = None):
    """(space, arch) from an NB201 arch string, a DARTS Genotype(...) string or a published name."""
    from nasnb.spaces import GENOTYPES

    text = text.strip()
    if space_name is None:
        space_name = "darts" if text in GENOTYPES or text.startswith("Genotype") else "nb201"
    space = make_space(space_name)
    if space_name == "darts" and text in GENOTYPES:
        return space, GENOTYPES[text]
    return space, space.parse(text)


def cmd_draw(args) -> int:
    from nasnb import viz

    space, arch = resolve_arch(args.arch, args.space)
    fmt = Path(args.output).suffix.lstrip(".").lower() or "svg"
    if fmt not in ("svg", "png"):
        raise SystemExit(f"cannot write {args.output!r}: use a .svg or .png file name")
    Path(args.output).write_bytes(viz.cell_image(space, arch, format=fmt))
    print(f"wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nasnb", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    lab = sub.add_parser("lab", help="copy the notebooks into a folder and open JupyterLab there")
    lab.add_argument("--dir", default="nasnb-notebooks", help="working folder (default: ./nasnb-notebooks)")
    lab.add_argument("--force", action="store_true", help="overwrite notebooks already in the folder")
    lab.add_argument("--no-launch", action="store_true", help="only copy the notebooks")
    lab.add_argument("lab_args", nargs=argparse.REMAINDER, help="passed on to jupyter lab")
    lab.set_defaults(func=cmd_lab)

    search = sub.add_parser("search", help="run a search headless; write history.json, a checkpoint and figures")
    search.add_argument("--space", default="nb201", help="nb201 or darts")
    search.add_argument("--strategy", default="random", choices=sorted(STRATEGIES), help="search strategy")
    search.add_argument("--trials", type=int, default=8, help="architectures to train")
    search.add_argument("--epochs", type=int, default=3, help="training epochs per architecture")
    search.add_argument("--dataset", default="digits", help="digits (bundled), mnist, fashion_mnist, cifar10")
    search.add_argument("--data-root", default=None, help="where torchvision data sets are stored")
    search.add_argument("--train-size", type=int, default=None, help="train on a subset of this size")
    search.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    search.add_argument("--seed", type=int, default=0)
    search.add_argument("--out", default="nasnb-runs/search", help="output folder")
    search.set_defaults(func=cmd_search)

    draw = sub.add_parser("draw", help="draw a cell given as an arch string or a published genotype's name")
    draw.add_argument("arch", help="NB201 arch string, a DARTS Genotype(...) string, or e.g. DARTS_V2")
    draw.add_argument("--space", default=None, help="nb201 or darts (default: guessed from the arch)")
    draw.add_argument("-o", "--output", default="cell.svg", help="output file (.svg or .png)")
    draw.set_defaults(func=cmd_draw)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
