"""What a multi-trial search did: its population over time and its anytime curves.

Data functions (`population_data`, `best_so_far_data`) read a `History` and return plain dicts of
numbers; tests check them against hand-built histories. Renderers (`plot_population`,
`plot_best_so_far`) only draw those dicts with matplotlib's object API (no pyplot state), return
the Figure, and draw into `ax` when one is given.

The population of regularized evolution (Real et al., AAAI 2019, Algorithm 1) is not stored step
by step: it is *replayed* from the trials, since who joins (every child) and who dies (the oldest,
or the worst without aging) is decided by the trials alone. Pass `upto=t` to see the search as it
was after its first t trials, as a history slider does.
"""
from __future__ import annotations

import math

from nasnb.history import History


# ============================================================================= data functions


def population_data(history: History, upto: int | None = None, population_size: int | None = None,
                    aging: bool | None = None, metric: str | None = None) -> dict:
    """Every trial of the first `upto` as a point of the population picture, replaying who lived.

    `population_size` and `aging` default to what a `RegularizedEvolution` wrote in
    ``history.meta``; a history without them (random search) has no population: every trial is a
    point, none is alive or removed.

    Returns a dict of per-trial lists (index = trial number = birth step):
        number, fitness, kind ("random" / "mutation" / "crossover" / None), parent (number or None),
        alive (still in the population after trial upto-1), removed_at (the number of the trial
        whose arrival removed it, or None), best_so_far (best fitness of trials 0..i);
    and about the whole picture: metric, population_size, aging, has_population, population (the
    living numbers, oldest first), and last (the last step: child, kind, sampled, parent, parents,
    removed; None for an empty history).
    """
    metric = metric or history.metric
    n = len(history) if upto is None else upto
    if not 0 <= n <= len(history):
        raise ValueError(f"upto={upto}, but the history has {len(history)} trials; use 0..{len(history)}")
    if population_size is None:
        population_size = history.meta.get("population_size")
    if aging is None:
        aging = history.meta.get("aging", True)
    trials = history[:n]
    fitness = [t.value(metric) for t in trials]

    # Replay Algorithm 1's bookkeeping: the child joins, then one member dies if there are too many.
    population: list[int] = []
    removed_at: list[int | None] = [None] * n
    removed_by_last = None
    if population_size is not None:
        for t in range(n):
            population.append(t)
            if len(population) > population_size:
                dead = min(population) if aging else min(population, key=lambda k: (fitness[k], k))
                population.remove(dead)
                removed_at[dead] = t
                if t == n - 1:
                    removed_by_last = dead
    alive = set(population)

    best, curve = -math.inf, []
    for value in fitness:
        best = max(best, value)
        curve.append(best)

    last = None
    if n:
        info = trials[-1].info
        last = {"child": n - 1, "kind": info.get("kind"), "sampled": list(info.get("sampled", [])),
                "parent": info.get("parent"), "parents": list(info.get("parents", [])), "removed": removed_by_last}
    return {
        "metric": metric,
        "population_size": population_size,
        "aging": aging if population_size is not None else None,
        "has_population": population_size is not None,
        "number": list(range(n)),
        "fitness": fitness,
        "kind": [t.info.get("kind") for t in trials],
        "parent": [t.info.get("parent") for t in trials],
        "alive": [t in alive for t in range(n)],
        "removed_at": removed_at,
        "population": population,
        "last": last,
        "best_so_far": curve,
    }


def best_so_far_data(histories, metric: str | None = None) -> dict:
    """Anytime curves of several runs (e.g. seeds) side by side: after k trials, the best metric
    found so far by each run, and their mean, min and max.

    Runs of different lengths are cut to the shortest, so every statistic averages the same runs.
    Returns ``{"trials": [1..n], "curves": [[...] per run], "mean", "min", "max", "runs", "metric"}``.
    """
    histories = list(histories)
    if not histories:
        raise ValueError("best_so_far_data needs at least one history")
    metric = metric or histories[0].metric
    curves = [h.best_so_far(metric) for h in histories]
    n = min(len(c) for c in curves)
    curves = [c[:n] for c in curves]
    columns = list(zip(*curves))  # one tuple per step: the runs' values after k trials
    return {
        "metric": metric,
        "runs": len(curves),
        "trials": list(range(1, n + 1)),
        "curves": curves,
        "mean": [sum(col) / len(col) for col in columns],
        "min": [min(col) for col in columns],
        "max": [max(col) for col in columns],
    }


# ============================================================================= renderers


def _figure_and_axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


ALIVE, REMOVED, SAMPLED, PARENT, CHILD, BEST = "#0072B2", "#999999", "#E69F00", "#D55E00", "#009E73", "#000000"


def plot_population(history: History, upto: int | None = None, ax=None, **kwargs):
    """Fitness against birth step: the living filled, the removed hollow, the last step's sampled
    members ringed, its parent and child highlighted with an arrow, and the best-so-far line.

    kwargs go to `population_data` (population_size, aging, metric)."""
    data = population_data(history, upto, **kwargs)
    fig, ax = _figure_and_axes(ax, (7, 4))
    x, y, alive = data["number"], data["fitness"], data["alive"]
    if data["has_population"]:
        dead = [k for k in x if not alive[k]]
        living = [k for k in x if alive[k]]
        ax.scatter(dead, [y[k] for k in dead], s=22, facecolors="none", edgecolors=REMOVED, label="removed")
        ax.scatter(living, [y[k] for k in living], s=26, color=ALIVE, label=f"alive ({len(living)})")
    else:
        ax.scatter(x, y, s=22, color=ALIVE, label="trials")
    if x:
        ax.step(x, data["best_so_far"], where="post", color=BEST, lw=1.2, label="best so far")
    last = data["last"]
    if last is not None and last["sampled"]:
        sampled = sorted(set(last["sampled"]))
        ax.scatter(sampled, [y[k] for k in sampled], s=110, facecolors="none", edgecolors=SAMPLED, linewidths=1.8,
                   label=f"sampled ({len(last['sampled'])} draws)")
        parents = last["parents"] or ([] if last["parent"] is None else [last["parent"]])
        for parent in parents:  # one arrow per parent: two for a crossover child
            ax.annotate("", xy=(last["child"], y[last["child"]]), xytext=(parent, y[parent]),
                        arrowprops=dict(arrowstyle="->", color=PARENT, lw=1.3, shrinkA=5, shrinkB=5))
        ax.scatter(parents, [y[p] for p in parents], s=60, marker="D", color=PARENT,
                   label="parents" if len(parents) > 1 else "parent", zorder=3)
    if last is not None:
        ax.scatter([last["child"]], [y[last["child"]]], s=90, marker="*", color=CHILD, label="child (newest)",
                   zorder=4)
        if last["removed"] is not None:
            r = last["removed"]
            ax.scatter([r], [y[r]], s=70, marker="x", color=PARENT, label="removed just now", zorder=4)
    title = f"{len(x)} trials (no population)"
    if data["has_population"]:
        rule = "aging" if data["aging"] else "non-aging"
        title = f"{len(x)} trials, population {data['population_size']} ({rule})"
    ax.set(xlabel="birth step (trial number)", ylabel=data["metric"], title=title)
    # Outside the axes, on the right: inside, it covered the first trials (the upper left is not empty
    # when an early random trial happens to be good).
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="x-small")
    return fig


def plot_best_so_far(histories_by_label: dict, ax=None, metric: str | None = None):
    """Anytime curves per label (e.g. "random search", "evolution"): the mean over runs as a line,
    the min-max range over runs as a band. Values are lists of histories (or a single history)."""
    fig, ax = _figure_and_axes(ax, (6, 4))
    colors = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]
    data = None
    for k, (label, histories) in enumerate(histories_by_label.items()):
        histories = [histories] if isinstance(histories, History) else list(histories)
        data = best_so_far_data(histories, metric)
        color = colors[k % len(colors)]
        ax.plot(data["trials"], data["mean"], color=color, drawstyle="steps-post",
                label=f"{label} (mean of {data['runs']})")
        ax.fill_between(data["trials"], data["min"], data["max"], color=color, alpha=0.2, lw=0, step="post")
    ax.set(xlabel="trials evaluated", ylabel=f"best {data['metric'] if data else 'metric'} so far",
           title="anytime performance (band: min to max over runs)")
    if data is not None:
        ax.legend(loc="lower right", fontsize="small")
    return fig
