"""What a dashboard redraw costs next to the step it shows, panel by panel, at the notebooks' settings.

    python benchmarks/redraw.py                      # about 4 minutes on 2 cores
    python benchmarks/redraw.py --quick              # fewer steps, about 1 minute
    python benchmarks/redraw.py --configs darts-nb201 --steps 100

Configurations (the notebooks' search settings; one torch thread, as the notebooks set):

    evolution    02_evolution.ipynb: NB201Space, digits with 300 training images, TrainEvaluator(epochs=6),
                 RegularizedEvolution(population_size=10, sample_size=3); panels cell, population, progress;
                 the notebook's budget is 60 trials
    reinforce    03_reinforce.ipynb: the same data and evaluator, Reinforce(space, evaluator); panels
                 cell, policy; budget 150 trials
    darts-nb201  DARTS(NB201Space(), nasnb.data.load("digits")), its default small supernet (C=8, N=1),
                 second order; panels cell, progress, alphas
    darts-darts  DARTS(DartsSpace(), nasnb.data.load("digits")), default small supernet (C=8, layers=5),
                 second order; panels cell, progress, alphas
    enas         05_enas.ipynb: ENAS(NB201Space(), nasnb.data.load("digits", seed=0), child_steps=10,
                 controller_steps=10, schedule_steps=40), its default small supernet; its default panels
                 cell, policy (10 controller samples per step), progress; the notebook runs 40 steps

How it measures: a Dashboard is opened on the search and stepped by hand (`dash.step()`), which
steps the search and then redraws every panel in the same thread, as Step and Play do. A step's
time is the wall time of `dash.step()` minus its redraws; each panel's redraw is its own timer
(`panel.last_seconds`, counted only when the panel really redrew). The ratio is the median of the
per-step ratios redraw / step. The plots of multi-trial searches grow with the history, so they are
also timed at the notebook's budget: a twin search with a free evaluator (seeded random metrics,
the same strategy) is run to the budget and `dash.show_step(t)` redraws its last steps; that cost
is divided by the real step's median time ("at budget"). Beside each live panel, "scratch" is the
same view drawn from scratch by a PlotPanel at the same step (what the dashboard did before its
live panels), timed after the step in the same run. Play also redraws at most as often as
keeps drawing under `Dashboard.REDRAW_SHARE` of the time (see dashboard.py): the last column,
`play`, is the share of a Play run's time spent drawing, measured on the real search.
"""
import argparse
import os
import platform
import statistics
import time
from datetime import datetime, timezone

import numpy as np
import torch

import nasnb
from nasnb.evaluators import TableEvaluator, TrainEvaluator
from nasnb.spaces import DartsSpace, LayerSpace, NB201Space
from nasnb.strategies import DARTS, ENAS, NSGA2, MetaQNN, RegularizedEvolution, Reinforce
from nasnb.strategies.qlearning import paper_schedule
from nasnb.viz import has_dot
from nasnb import registry
from nasnb.widgets import Dashboard
from nasnb.widgets.panels import LAYOUTS, PlotPanel, one_axes

SEED = 0


def notebook_evaluator():
    data = nasnb.data.load("digits", seed=SEED).subset(train_size=300, seed=SEED)
    return TrainEvaluator(data, epochs=6, seed=SEED, count_flops=False)


def free_evaluator(seed=0):
    rng = np.random.default_rng(seed)
    return lambda arch: {"val_accuracy": float(rng.uniform(0.5, 1.0)), "flops": float(rng.uniform(1e5, 1e6))}


CONFIGS = {
    "evolution": {"make": lambda ev: RegularizedEvolution(NB201Space(), ev, population_size=10, sample_size=3,
                                                          seed=SEED),
                  "panels": ("cell", "population", "progress"), "budget": 60, "trials": True},
    "reinforce": {"make": lambda ev: Reinforce(NB201Space(), ev, seed=SEED), "panels": ("cell", "policy"),
                  "budget": 150, "trials": True},
    "darts-nb201": {"make": lambda _: DARTS(NB201Space(), nasnb.data.load("digits"), seed=SEED),
                    "panels": ("cell", "progress", "alphas"), "budget": None, "trials": False},
    "darts-darts": {"make": lambda _: DARTS(DartsSpace(), nasnb.data.load("digits"), seed=SEED),
                    "panels": ("cell", "progress", "alphas"), "budget": None, "trials": False},
    "enas": {"make": lambda _: ENAS(NB201Space(), nasnb.data.load("digits", seed=SEED), child_steps=10,
                                    controller_steps=10, schedule_steps=40, seed=SEED),
             "panels": ENAS.panels, "budget": None, "trials": False},
    # 07_hardware_aware: NSGA-II on the shipped table (a step is a lookup, about 2 ms)
    "nsga2": {"make": lambda ev: NSGA2(NB201Space(), ev, objectives={"val_accuracy": "max", "flops": "min"},
                                       population_size=20, seed=SEED),
              "evaluator": lambda: TableEvaluator(nasnb.bench.load("nb201-digits")),
              "panels": NSGA2.panels, "budget": 200, "trials": True},
    # 09_metaqnn at its default budget: MetaQNN on LayerSpace, networks trained 3 epochs on the 1,000 training digits
    "metaqnn": {"make": lambda ev: MetaQNN(LayerSpace(), ev, epsilon_schedule=paper_schedule(0.02), seed=SEED),
                "evaluator": lambda: TrainEvaluator(nasnb.data.load("digits", seed=SEED),
                                                    epochs=3, space=LayerSpace(), seed=SEED, count_flops=False),
                "panels": MetaQNN.panels, "budget": 54, "trials": True},
}


def scratch_panels(names) -> dict:
    """For each view, a PlotPanel that draws the static view from scratch at every step (what the
    dashboard did before its live panels): the figure to compare a live redraw with."""
    panels = {}
    for name in names:
        if name == "cell":
            continue
        where = registry.target("view", name)
        figsize, axes = LAYOUTS.get(where, ((7, 4), one_axes))
        panels[name] = PlotPanel(where, title=name, figsize=None if name == "alphas" else figsize, axes=axes)
    return panels


def stepped(dash, steps: int) -> tuple[list, dict, dict]:
    """Step `steps` times; per step the step's own seconds, per panel its redraw seconds, and per
    view the seconds of drawing it from scratch (after the step, not counted in it)."""
    step_times, redraws = [], {name: [] for name in dash.panels}
    scratch = scratch_panels(dash.panels)
    from_scratch = {name: [] for name in scratch}
    for _ in range(steps):
        before = {name: panel.draws for name, panel in dash.panels.items()}
        start = time.perf_counter()
        dash.step()
        total = time.perf_counter() - start
        drawn = {name: p.last_seconds for name, p in dash.panels.items() if p.draws > before[name]}
        step_times.append(total - sum(drawn.values()))
        for name in dash.panels:
            redraws[name].append(drawn.get(name))
        for name, panel in scratch.items():
            panel.update(dash.search, len(dash.search.history))
            from_scratch[name].append(panel.last_seconds)
    return step_times, redraws, from_scratch


def at_budget(config: dict, budget: int) -> dict:
    """Each panel's redraw at the notebook's budget: the median of show_step(t) for its last 3 steps."""
    search = config["make"](free_evaluator())
    search.run(budget, progress=False)
    dash = Dashboard(search, panels=config["panels"])  # draws step `budget` once (first draw)
    scratch = scratch_panels(dash.panels)
    times = {name: [] for name in [*dash.panels, *(f"{name} scratch" for name in scratch)]}
    for t in (budget - 3, budget - 2, budget - 1, budget):
        dash.show_step(t)
        for name, panel in scratch.items():
            panel.update(search, t)
        if t > budget - 3:  # the first one moved from `budget` back: caches of the panels are warm now
            for name, panel in dash.panels.items():
                times[name].append(panel.last_seconds)
            for name, panel in scratch.items():
                times[f"{name} scratch"].append(panel.last_seconds)
    dash.close()
    return {name: statistics.median(v) for name, v in times.items()}


def play_share(config: dict, steps: int) -> tuple[float, int]:
    """Play a fresh search for `steps` steps; (share of the wall time spent redrawing, redraws)."""
    search = config["make"](config.get("evaluator", notebook_evaluator)() if config["trials"] else None)
    dash = Dashboard(search, panels=config["panels"])
    start = time.perf_counter()
    dash.play()
    while len(search.history) < steps and dash.playing:
        time.sleep(0.01)
    dash.pause()
    dash.wait()
    wall = time.perf_counter() - start
    share, redraws = dash.drawing_seconds / wall, dash.redraws
    dash.close()
    return share, redraws


def report(name: str, config: dict, steps: int, play_steps: int) -> None:
    evaluator = config.get("evaluator", notebook_evaluator)() if config["trials"] else None
    search = config["make"](evaluator)
    dash = Dashboard(search, panels=config["panels"])
    step_times, redraws, from_scratch = stepped(dash, steps)
    dash.close()
    budget = config["budget"]
    late = at_budget(config, budget) if budget else None
    step = statistics.median(step_times)
    play = play_share(config, play_steps) if play_steps else None
    where = f"{len(search.history)} steps" if budget is None else f"{steps} trials; at budget: {budget} trials"
    print(f"\n{name}: {type(search).__name__} on {search.space!r}, {where}; step {step:.3f} s (median, "
          f"{min(step_times):.3f}-{max(step_times):.3f})")
    header = f"  {'panel':<11}{'redraw ms':>10}{'ratio':>8}{'max ratio':>10}{'scratch ms':>11}{'ratio':>8}"
    print(header + (f"{'at budget ms':>14}{'ratio':>8}{'scratch ms':>11}{'ratio':>8}" if late else ""))
    totals = [0.0] * len(step_times)
    for panel, values in redraws.items():
        ratios = [v / s for v, s in zip(values, step_times) if v is not None]
        for k, v in enumerate(values):
            totals[k] += v or 0.0
        drawn = [v for v in values if v is not None]
        line = f"  {panel:<11}{1000 * statistics.median(drawn):>10.1f}{statistics.median(ratios):>8.1%}" \
               f"{max(ratios):>10.1%}"
        if panel in from_scratch:
            scratch = [v / s for v, s in zip(from_scratch[panel], step_times)]
            line += f"{1000 * statistics.median(from_scratch[panel]):>11.1f}{statistics.median(scratch):>8.1%}"
        else:
            line += " " * 19
        if late:
            line += f"{1000 * late[panel]:>14.1f}{late[panel] / step:>8.1%}"
            if f"{panel} scratch" in late:
                line += f"{1000 * late[panel + ' scratch']:>11.1f}{late[panel + ' scratch'] / step:>8.1%}"
        print(line)
    ratios = [t / s for t, s in zip(totals, step_times)]
    line = f"  {'dashboard':<11}{1000 * statistics.median(totals):>10.1f}{statistics.median(ratios):>8.1%}" \
           f"{max(ratios):>10.1%}"
    line += " " * 19
    if late:
        live = sum(v for name, v in late.items() if not name.endswith("scratch"))
        line += f"{1000 * live:>14.1f}{live / step:>8.1%}"
    print(line)
    if play is not None:
        print(f"  Play, {play_steps} steps: {play[0]:.1%} of the wall time spent redrawing ({play[1]} redraws)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=None, help="steps per configuration (default: 8 for the "
                        "multi-trial searches, 40 for DARTS on NB201, ENAS and NSGA2, 4 on DARTS' space)")
    parser.add_argument("--play", type=int, default=None, help="steps of the Play measurement (0: skip it; default "
                        "20 trials, 60 DARTS steps on NB201, 4 on DARTS' space, 40 ENAS steps)")
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    default_steps = {"evolution": 8, "reinforce": 8, "darts-nb201": 40, "darts-darts": 4, "enas": 40, "nsga2": 40,
                     "metaqnn": 8}
    if args.quick:
        default_steps = {"evolution": 4, "reinforce": 4, "darts-nb201": 15, "darts-darts": 2, "enas": 15,
                         "nsga2": 15, "metaqnn": 4}
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} thread), python "
          f"{platform.python_version()}, cells drawn with {'graphviz' if has_dot() else 'matplotlib'}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    default_play = {"evolution": 20, "reinforce": 20, "darts-nb201": 60, "darts-darts": 4, "enas": 40, "nsga2": 200,
                    "metaqnn": 20}
    for name in args.configs:
        steps = args.steps or default_steps[name]
        play = args.play if args.play is not None else (0 if args.quick else default_play[name])
        report(name, CONFIGS[name], steps, play)


if __name__ == "__main__":
    main()
