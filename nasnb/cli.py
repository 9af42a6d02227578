"""The `nasnb` command: the notebooks in JupyterLab, or a search headless in a terminal.

    nasnb lab [--dir nasnb-notebooks] [--no-browser --port 8889 ...]
                                             copy the bundled notebooks there and open JupyterLab;
                                             other arguments go to jupyter lab
    nasnb search --strategy evolution        search NB201 cells trained on digits; write history + figures
    nasnb search --space toy --trials 50     a ToySpace search: scored by its formula, nothing trained
    nasnb search --dask tcp://host:8786      trials evaluated by a Dask cluster's workers (--workers N: a local one)
    nasnb search --space programs-linear --strategy automl_zero --population 1000 --trials 3000000 \
                 --restart-after 150000 --stop-at 0.995    AutoML-Zero from random programs until SGD
    nasnb draw '|nor_conv_3x3~0|+|...|' -o cell.svg

A mistake in what was asked (an unknown name, a value out of range, a malformed arch, a checkpoint
of another run) prints one line, ``nasnb: error: ...``, and exits with status 2; a bug in nasnb
shows its traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

from nasnb import registry
from nasnb.checks import check_float, check_int, check_positive_float, check_seed
from nasnb.errors import EvaluationError, InvalidValueError, NasnbError, ResumeMismatchError

USAGE_ERROR = 2  # the exit status of a user's mistake, as argparse uses it
# Errors about a path the user gave (-o, --out, --dir): their message says it all.
PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


# ============================================================================= nasnb lab


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


def running_as_root() -> bool:
    """True for the superuser on POSIX systems (os.geteuid does not exist on Windows)."""
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def jupyter_arguments(extra: list[str]) -> list[str]:
    """The arguments for jupyter lab: `extra` as given, plus --allow-root when running as root.

    JupyterLab refuses to start as root without it, and root is who runs a container or a fresh
    cloud VM. An explicit --allow-root or --ServerApp.allow_root=... is left as it is."""
    decided = any(arg == "--allow-root" or arg.startswith("--ServerApp.allow_root") for arg in extra)
    if running_as_root() and not decided:
        print("running as root: passing --allow-root to jupyter lab")
        return [*extra, "--allow-root"]
    return list(extra)


def wait_for(command: list[str]) -> int:
    """Run `command` and return its exit status. Ctrl-C in the terminal reaches the server too, and
    JupyterLab asks whether to shut down: this process keeps waiting rather than killing it."""
    server = subprocess.Popen(command)
    while True:
        try:
            return server.wait()
        except KeyboardInterrupt:
            continue


def cmd_lab(args) -> int:
    dest = Path(args.dir)
    written = copy_notebooks(dest, force=args.force)
    total = len(bundled_notebooks())
    print(f"{len(written)} of {total} notebooks copied to {dest.resolve()} (existing files kept)")
    if args.no_launch:
        return 0
    if not _has_module("jupyterlab"):  # the server runs in this Python, whatever `jupyter` is on PATH
        print(f"nasnb: error: JupyterLab is not installed in {sys.executable}: pip install 'nasnb[lab]'",
              file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={dest.resolve()}",
               *jupyter_arguments(args.lab_args)]
    return wait_for(command)


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# ============================================================================= nasnb search


def load_data(args):
    """--dataset (cut to --train-size), after checking --device: before anything loads or trains."""
    from nasnb import data as datasets
    from nasnb import train

    try:
        train.pick_device(args.device)
    except ValueError as err:
        raise InvalidValueError(f"--device: {err}") from err
    data = datasets.load(args.dataset, root=args.data_root, seed=args.seed)
    if args.train_size is not None:
        try:
            data = data.subset(train_size=args.train_size, seed=args.seed)
        except ValueError as err:  # larger than the split: the data set's message says how large
            raise InvalidValueError(f"--train-size: {err}") from err
    return data


def make_search(space, args, seed: int):
    """The --strategy: an ask/tell strategy gets an evaluator; a one-shot search (DARTS) trains a
    supernet on the data itself, and --trials counts its steps."""
    from nasnb.strategies import Strategy

    strategy = registry.get("strategy", args.strategy)
    parameters = inspect.signature(strategy.__init__).parameters
    if args.restart_after is not None and "restart_after" not in parameters:
        raise InvalidValueError(f"--restart-after restarts AutoML-Zero's experiments; --strategy {args.strategy} "
                                "has none: use it with --strategy automl_zero")
    if args.population is not None and "population_size" not in parameters:
        raise InvalidValueError(f"--population sets the population of an evolution; --strategy {args.strategy} "
                                "has none: use it with --strategy evolution, automl_zero or nsga2")
    if issubclass(strategy, Strategy):
        evaluator = make_evaluator(space, args)
        reported = tuple(getattr(evaluator, "metrics", None) or ())
        options = {"metric": reported[0]} if reported and "val_accuracy" not in reported else {}  # programs: fitness
        if args.restart_after is not None:
            options["restart_after"] = check_int("--restart-after", args.restart_after, minimum=1, example=150_000)
        if args.population is not None:
            options["population_size"] = check_int("--population", args.population, minimum=1, example=100)
        return strategy(space, evaluator, seed=seed, **options)
    names = getattr(strategy, "space_names", None)  # a one-shot search of its own space (ProxylessNAS)
    if names is not None and args.space not in names:
        raise InvalidValueError(f"--strategy {args.strategy} searches only --space {' or '.join(names)}, "
                                f"not {args.space}; e.g. --strategy {args.strategy} --space {names[0]}")
    if names is None and not hasattr(space, "supernet"):
        raise InvalidValueError(f"--strategy {args.strategy} searches a supernet, which the {args.space} space "
                                f"has not; use --space nb201 or --space darts")
    return strategy(space, load_data(args), seed=seed, device=args.device)


def make_evaluator(space, args):
    """What scores an architecture of `space`: training it on --dataset when the space builds
    networks; the space's own formula when it has one instead (ToySpace: its known optimum, so a
    search runs in a second and the training options do not apply); for AutoML-Zero's programs,
    their fitness on generated linear regression tasks (ProgramEvaluator: no data, no training)."""
    from nasnb.spaces.programs import ProgramSpace

    if isinstance(space, ProgramSpace):
        from nasnb.automl_zero import ProgramEvaluator

        # 10 linear tasks of 100 training and 50 validation examples: benchmarks/automl_zero.py's, whose
        # results the README quotes (the authors validate on 100)
        return ProgramEvaluator(space, task="linear", num_tasks=10, num_train=100, num_valid=50, seed=args.seed)
    if hasattr(space, "build"):
        from nasnb.evaluators import TrainEvaluator

        return TrainEvaluator(load_data(args), epochs=args.epochs, space=space, seed=args.seed, device=args.device,
                              **training_options(space, args))
    if hasattr(space, "evaluate"):
        return space.evaluate
    raise InvalidValueError(f"space {args.space!r} neither builds networks nor scores architectures, so "
                            f"`nasnb search` cannot evaluate them; use one of {registry.names('space')}")


# Each optimiser's learning rate when --lr is not given: DARTS' SGD rate, and Adam's usual 1e-3.
DEFAULT_LR = {"sgd": 0.025, "adam": 1e-3}


def training_options(space, args) -> dict:
    """--optimizer and --lr, else what the space trains best with (`space.training_defaults`: TransformerSpace
    asks for Adam, as transformers are trained; the convolutional spaces take DARTS' SGD)."""
    preferred = dict(getattr(space, "training_defaults", None) or {})
    optimizer = args.optimizer or preferred.get("optimizer", "sgd")
    # the space's other settings (its lr, weight decay) go with its optimiser, not with another one
    options = preferred if preferred.get("optimizer", "sgd") == optimizer else {}
    options = {**options, "optimizer": optimizer, "lr": options.get("lr", DEFAULT_LR[optimizer])}
    if args.lr is not None:
        options["lr"] = args.lr
    return options


def cmd_search(args) -> int:
    """Run a search headless: the same objects a notebook uses, with files instead of widgets."""
    from nasnb import viz
    from nasnb.strategies import Strategy

    # Every number is checked before anything runs; 0 is a value like any other, never "not given".
    # A search of 0 trials would have no best cell to report or draw: at least one is asked for.
    trials = check_int("--trials", args.trials, minimum=1)
    check_int("--epochs", args.epochs, minimum=1)
    if args.lr is not None:
        check_positive_float("--lr", args.lr, example=0.025)
    if args.train_size is not None:
        check_int("--train-size", args.train_size, minimum=1)
    seed = check_seed("--seed", args.seed)
    if args.workers is not None:
        check_int("--workers", args.workers, minimum=1, example=2)
    if args.batch is not None:
        check_int("--batch", args.batch, minimum=1, example=4)
        if args.dask is None and args.workers is None:
            raise InvalidValueError("--batch sets how many trials run at once on --dask or --workers; "
                                    "add one of them, e.g. --workers 2 --batch 4")
    stop_at = None if args.stop_at is None else check_float("--stop-at", args.stop_at, example=0.9999)
    if stop_at is not None and not issubclass(registry.get("strategy", args.strategy), Strategy):
        raise InvalidValueError(f"--stop-at: --strategy {args.strategy} records steps, not trials, so it has no best "
                                "trial to stop at; use a trial-by-trial strategy, e.g. --strategy evolution")
    space = registry.get("space", args.space)()
    search = make_search(space, args, seed)
    if stop_at is not None:
        stop_when_reached(search, stop_at, flag=f"--stop-at {args.stop_at}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "search.ckpt"
    # The checkpoint is written after every trial; running the same command again resumes from it.
    with contextlib.ExitStack() as cluster:  # --dask / --workers: closed (a local cluster shut down) on the way out
        parallel = workers_for(search, args, cluster)
        try:
            search.run(trials, checkpoint=checkpoint, progress=True, **parallel)
        except _Reached as reached:
            print(f"nasnb: {reached}", file=sys.stderr)
        except ResumeMismatchError as err:
            raise ResumeMismatchError(f"{err}. With nasnb search: repeat that run's options to continue it, or "
                                      f"choose another --out (or remove {checkpoint}) to start afresh") from err
        except KeyboardInterrupt:
            print(f"nasnb: interrupted after {len(search.history)} trials; run the same command again to continue",
                  file=sys.stderr)
            return 130  # 128 + SIGINT, as a shell reports it
    search.history.save(out / "history.json")
    best = search.best()
    if best is None and hasattr(search, "derived"):  # a one-shot search: its cell is the derived one
        best = search.history[-1]
        arch = space.format(search.derived())
        summary = f"derived after {len(search.history)} steps ({search.metric}={best.value(search.metric):.3f} on a batch)"
    elif best is None:
        raise EvaluationError(f"none of the {len(search.history)} trials completed; their errors are in "
                              f"{out / 'history.json'}")
    else:
        arch = best.arch
        params = f" params={best.metrics['params']:,}" if "params" in best.metrics else ""
        summary = f"best of {len(search.history)}: {search.metric}={best.value(search.metric):.3f}{params}"
    fmt = "svg" if viz.has_dot() else "png"
    (out / f"best_cell.{fmt}").write_bytes(viz.cell_image(space, space.parse(arch), format=fmt))
    plot_search(search, out / "search.png")
    print(f"{summary}{chr(10) if chr(10) in arch else ' '}{arch}")  # a program on its own lines
    print(f"wrote {out / 'history.json'}, {out / f'best_cell.{fmt}'}, {out / 'search.png'} "
          f"(and {checkpoint}: run the same command again to continue)")
    return 0


class _Reached(Exception):
    """Raised by stop_when_reached's subscriber to end a run early (caught by cmd_search)."""


def stop_when_reached(search, value: float, *, flag: str) -> None:
    """End `search.run` once its best metric reaches `value` (at least it, or at most it where the
    metric is minimised), as the authors' AutoML-Zero demo stops at --sufficient_fitness. Every trial is
    in the checkpoint before the subscriber sees it, so nothing is lost."""
    def check(record) -> None:
        best = search.best()
        if best is None:
            return
        score = best.value(search.metric)
        if (score <= value) if search.history.direction(search.metric) == "min" else (score >= value):
            raise _Reached(f"stopped after trial {record.number}: "
                           f"{search.metric}={score:.6g} reached {flag}")

    search.subscribe(check)


def workers_for(search, args, cluster: contextlib.ExitStack) -> dict:
    """run()'s executor and batch for --dask ADDRESS (a running scheduler's workers) or --workers N
    (a local Dask cluster of N one-thread worker processes), entered on `cluster`; {} for neither."""
    if args.dask is None and args.workers is None:
        return {}
    from nasnb.strategies import Strategy

    flag = f"--dask {args.dask}" if args.dask is not None else f"--workers {args.workers}"
    if not isinstance(search, Strategy):
        raise InvalidValueError(f"{flag}: --strategy {args.strategy} trains one supernet step by step, which "
                                f"does not split into trials; use a trial-by-trial strategy, e.g. --strategy evolution")
    from nasnb.distributed import dask_executor

    try:
        executor = cluster.enter_context(dask_executor(args.dask, workers=args.workers or 2))
    except ModuleNotFoundError as err:
        if err.name != "distributed":
            raise
        raise InvalidValueError(f"{flag}: {err}") from None
    except InvalidValueError as err:  # an address nobody answers at: say which option it came from
        raise InvalidValueError(f"{flag}: {err}") from None
    return {"executor": executor, "batch": args.batch}


def plot_search(search, path: Path) -> None:
    """The strategy's own view of its history: the first of its panels that is not the cell
    (population for evolution, policy for REINFORCE, progress for random search)."""
    view = next((name for name in search.panels if name != "cell"), "progress")
    figure = registry.get("view", view)(search.history)
    figure.savefig(path, dpi=120, bbox_inches="tight")


# ============================================================================= nasnb draw


def resolve_arch(text: str, space_name: str | None = None):
    """(space, arch) from an NB201 arch string, a DARTS Genotype(...) string or a published name."""
    from nasnb.spaces import GENOTYPES

    text = text.strip()
    if space_name is None:
        space_name = "darts" if text in GENOTYPES or text.startswith("Genotype") else "nb201"
    space = registry.get("space", space_name)()
    if space_name == "darts" and text in GENOTYPES:
        return space, GENOTYPES[text]
    try:
        return space, space.parse(text)
    except ValueError as err:  # the user's text: the space's message names what is wrong with it
        raise InvalidValueError(f"cannot read {text!r} as an arch of the {space_name} space: {err}") from err


def cmd_draw(args) -> int:
    from nasnb import viz

    fmt = Path(args.output).suffix.lstrip(".").lower() or "svg"
    if fmt not in ("svg", "png"):
        raise InvalidValueError(f"cannot write {args.output!r}: use a .svg or .png file name")
    space, arch = resolve_arch(args.arch, args.space)
    Path(args.output).write_bytes(viz.cell_image(space, arch, format=fmt))
    print(f"wrote {args.output}")
    return 0


# ============================================================================= the parser


class Parser(argparse.ArgumentParser):
    """argparse, except that a usage mistake raises an InvalidValueError, which `main` prints as
    one line, instead of printing the usage text above the message and exiting."""

    def error(self, message: str):
        raise InvalidValueError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    from nasnb.data import KNOWN as DATASETS

    parser = Parser(prog="nasnb", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    # allow_abbrev=False: a jupyter option such as --no-browser must never be read as a prefix of ours.
    lab = sub.add_parser("lab", allow_abbrev=False, help="copy the notebooks into a folder and open JupyterLab there",
                         epilog="Other arguments (e.g. --no-browser --port 8889) are passed on to jupyter lab; "
                                "after --, all of them are. As root, --allow-root is added.")
    lab.add_argument("--dir", default="nasnb-notebooks", help="working folder (default: ./nasnb-notebooks)")
    lab.add_argument("--force", action="store_true", help="overwrite notebooks already in the folder")
    lab.add_argument("--no-launch", action="store_true", help="only copy the notebooks")
    lab.set_defaults(func=cmd_lab)

    search = sub.add_parser("search", help="run a search headless; write history.json, a checkpoint and figures")
    search.add_argument("--space", default="nb201", choices=registry.names("space"),
                        help="search space (toy: scored by its known formula, no training)")
    search.add_argument("--strategy", default="random", choices=registry.names("strategy"), help="search strategy")
    search.add_argument("--trials", type=int, default=8,
                        help="trials in the finished search; a resumed run continues up to it (at least 1)")
    search.add_argument("--epochs", type=int, default=3, help="training epochs per architecture")
    search.add_argument("--dataset", default="digits", choices=DATASETS,
                        help="digits is bundled, shapes and the seq- tasks are generated; the others download")
    search.add_argument("--data-root", default=None, help="where torchvision data sets are stored")
    search.add_argument("--train-size", type=int, default=None, help="train on a subset of this size")
    search.add_argument("--optimizer", default=None, choices=("sgd", "adam"),
                        help="training optimiser (default: the space's; sgd, adam for --space transformer)")
    search.add_argument("--lr", type=float, default=None,
                        help="learning rate (default: the space's, else 0.025 for sgd and 0.001 for adam)")
    search.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    search.add_argument("--seed", type=int, default=0)
    search.add_argument("--stop-at", type=float, default=None, metavar="VALUE",
                        help="stop once the best trial's metric reaches VALUE (automl_zero: 0.995 is SGD)")
    search.add_argument("--population", type=int, default=None, metavar="P",
                        help="the population of --strategy evolution, automl_zero or nsga2 (default: the strategy's)")
    search.add_argument("--restart-after", type=int, default=None, metavar="N",
                        help="--strategy automl_zero: a new random population after N trials without progress")
    search.add_argument("--out", default="nasnb-runs/search", help="output folder")
    cluster = search.add_mutually_exclusive_group()
    cluster.add_argument("--dask", default=None, metavar="ADDRESS",
                         help="evaluate trials on the workers of a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    cluster.add_argument("--workers", type=int, default=None, metavar="N",
                         help="evaluate trials on a local Dask cluster of N one-thread worker processes")
    search.add_argument("--batch", type=int, default=None,
                        help="with --dask/--workers: trials asked at once (default: the workers' threads); "
                             "the history depends on it")
    search.set_defaults(func=cmd_search)

    draw = sub.add_parser("draw", help="draw a cell given as an arch string or a published genotype's name")
    draw.add_argument("arch", help="NB201 arch string, a DARTS Genotype(...) string, or e.g. DARTS_V2")
    draw.add_argument("--space", default=None, choices=registry.names("space"),
                      help="default: darts for a genotype, else nb201")
    draw.add_argument("-o", "--output", default="cell.svg", help="output file (.svg or .png)")
    draw.set_defaults(func=cmd_draw)
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    """The parsed command line. Arguments `nasnb lab` does not know are kept for jupyter lab (after
    a `--`, all are); any other command refuses them."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "lab":
        if "--" in extra:
            extra.remove("--")  # the first one only: it separated ours from jupyter's
        args.lab_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv=None) -> int:
    """Run one command. A user's mistake prints one line and returns 2; a bug raises."""
    try:
        args = parse_args(argv)
        return args.func(args)
    except NasnbError as err:
        return _fail(str(err))
    except PATH_ERRORS as err:
        return _fail(f"{err.strerror}: {err.filename}" if err.filename else str(err))


def _fail(message: str) -> int:
    print(f"nasnb: error: {' '.join(message.split())}", file=sys.stderr)  # one line, whatever the message
    return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
