"""What a search did: its progress, an evolution's population over time, and anytime curves.

Data functions (`progress_data`, `population_data`, `best_so_far_data`) read a `History` and return
plain dicts of numbers; tests check them against hand-built histories. Renderers (`plot_progress`,
`plot_population`, `plot_best_so_far`) only draw those dicts with matplotlib's object API (no
pyplot state), return the Figure, and draw into `ax` when one is given.

Every record of a history has a place in the pictures: a complete trial is a point at its metric;
a failed trial has no metric, so it is a red x along the bottom of the axes; a pruned trial (stopped
early) is a hollow grey point at its partial metric; a one-shot search's `Step` is a point of its
training curve. A dict lists None where a record has no value, never NaN.

The population of regularized evolution (Real et al., AAAI 2019, Algorithm 1) is not stored step
by step: it is *replayed* from the trials, with the strategy's own rule for who dies
(`nasnb.strategies.evolution.member_to_remove`): every complete trial joins, and when the
population is one too many the oldest (or, without aging, the worst) is removed. Failed and pruned
trials never join, exactly as in the strategy. Pass `upto=t` to see the search as it was after its
first t records, as a history slider does.
"""
from __future__ import annotations

from nasnb.errors import InvalidValueError
from nasnb.history import History, Trial, finite_number
from nasnb.strategies.evolution import member_to_remove

# ============================================================================= data functions


def _records(history: History, upto: int | None) -> list:
    n = len(history) if upto is None else upto
    if not 0 <= n <= len(history):
        raise InvalidValueError(f"upto={upto}, but the history has {len(history)} records; use 0..{len(history)}")
    return history[:n]


def record_state(record) -> str:
    """A trial's state ("complete", "failed" or "pruned"), or "step" for a Step."""
    return record.state if isinstance(record, Trial) else "step"


def drawn_value(record, metric: str) -> float | None:
    """The height a record is drawn at: the finite metric of a complete or pruned trial (a pruned
    one's is partial) or of a step; None for a failed trial or a missing / NaN value."""
    if isinstance(record, Trial) and record.state == "failed":
        return None
    value = record.metrics.get(metric)
    return float(value) if finite_number(value) else None


def progress_data(history: History, upto: int | None = None, metric: str | None = None) -> dict:
    """The metric of every record of the first `upto` (all by default), and the best so far.

    Returns a dict of per-record lists (index = record number):
        number, state ("complete" / "failed" / "pruned" / "step"), value (`drawn_value`: None for a
        failed trial), best_so_far (best complete trial among 0..i, None before the first one),
        error (a failed trial's error text, else None);
    and metric, counts ({state: how many records}), failed and pruned (their numbers), last (the
    number of the last record, or None).
    """
    metric = metric or history.metric
    records = _records(history, upto)
    states = [record_state(r) for r in records]
    return {
        "metric": metric,
        "number": [r.number for r in records],
        "state": states,
        "value": [drawn_value(r, metric) for r in records],
        "best_so_far": history.best_so_far(metric)[:len(records)],
        "error": [getattr(r, "error", None) for r in records],
        "counts": {state: states.count(state) for state in ("complete", "failed", "pruned", "step")},
        "failed": [r.number for r, state in zip(records, states) if state == "failed"],
        "pruned": [r.number for r, state in zip(records, states) if state == "pruned"],
        "last": records[-1].number if records else None,
    }


def population_data(history: History, upto: int | None = None, population_size: int | None = None,
                    aging: bool | None = None, metric: str | None = None) -> dict:
    """Every trial of the first `upto` as a point of the population picture, replaying who lived.

    `population_size` and `aging` default to what a `RegularizedEvolution` wrote in
    ``history.meta``; a history without them (random search) has no population: every trial is a
    point, none is alive or removed.

    A history of restarts (AutoMLZero's ``restart_after``: trials with ``info["experiment"]``) is
    replayed as the strategy runs it: the first complete trial of a new experiment removes every
    living member, and a late trial of an older experiment never joins.

    Returns, besides `progress_data`'s lists (state, value, best_so_far, error), per record:
        fitness (the metric of a complete trial, None for the others: the only ones that join),
        kind ("random" / "mutation" / "crossover" / None), parent (number or None), alive (still in
        the population after record upto-1), removed_at (the number of the trial whose arrival
        removed it, or None);
    and about the whole picture: metric, population_size, aging, has_population, population (the
    living numbers, oldest first), failed and pruned (their numbers), and last (the last record:
    child, state, kind, sampled, parent, parents, removed; None for an empty history).
    """
    progress = progress_data(history, upto, metric)
    metric = progress["metric"]
    records = history[:len(progress["number"])]
    if population_size is None:
        population_size = history.meta.get("population_size")
    if aging is None:
        aging = history.meta.get("aging", True)
    fitness = [r.score(metric) if isinstance(r, Trial) else None for r in records]

    # Replay Algorithm 1's bookkeeping with the strategy's own rule: a complete trial joins, then one
    # member dies if there are too many. A failed or pruned trial never joins (the strategy's observe
    # never sees it), so it neither lives nor kills.
    population: list[int] = []
    removed_at: list[int | None] = [None] * len(records)
    removed_by_last = None
    experiment = 0  # restarts (AutoMLZero(restart_after=...)): a trial of a new experiment kills all
    if population_size is not None:
        for t, value in enumerate(fitness):
            if value is None:
                continue
            if records[t].info.get("experiment", experiment) != experiment:
                if records[t].info["experiment"] < experiment:
                    continue  # asked before a restart, told after: it joined no population
                experiment = records[t].info["experiment"]
                for dead in population:
                    removed_at[dead] = t
                population = []
            population.append(t)
            if len(population) > population_size:
                dead = member_to_remove(population, lambda k: fitness[k], aging)
                population.remove(dead)
                removed_at[dead] = t
                if t == len(records) - 1:
                    removed_by_last = dead
    alive = set(population)

    last = None
    if records:
        info = records[-1].info
        last = {"child": records[-1].number, "state": progress["state"][-1], "kind": info.get("kind"),
                "sampled": list(info.get("sampled", [])), "parent": info.get("parent"),
                "parents": list(info.get("parents", [])), "removed": removed_by_last}
    return {
        **progress,
        "population_size": population_size,
        "aging": aging if population_size is not None else None,
        "has_population": population_size is not None,
        "fitness": fitness,
        "kind": [r.info.get("kind") for r in records],
        "parent": [r.info.get("parent") for r in records],
        "alive": [t in alive for t in range(len(records))],
        "removed_at": removed_at,
        "population": population,
        "last": last,
    }


def best_so_far_data(histories, metric: str | None = None) -> dict:
    """Anytime curves of several runs (e.g. seeds) side by side: after k records, the best metric
    of the complete trials found so far by each run, and their mean, min and max.

    A run has no value (None) until its first complete trial; mean, min and max are taken over the
    runs that have one (`counted` says how many) and are None where no run has one yet. Runs of
    different lengths are cut to the shortest, so every statistic looks at the same runs.
    Returns ``{"trials": [1..n], "curves": [[...] per run], "mean", "min", "max", "counted", "runs",
    "metric"}``.
    """
    histories = list(histories)
    if not histories:
        raise InvalidValueError("best_so_far_data needs at least one history")
    metric = metric or histories[0].metric
    curves = [h.best_so_far(metric) for h in histories]
    n = min(len(c) for c in curves)
    curves = [c[:n] for c in curves]
    columns = [[v for v in column if v is not None] for column in zip(*curves)]  # per k: the runs with a value
    return {
        "metric": metric,
        "runs": len(curves),
        "trials": list(range(1, n + 1)),
        "curves": curves,
        "counted": [len(col) for col in columns],
        "mean": [sum(col) / len(col) if col else None for col in columns],
        "min": [min(col) if col else None for col in columns],
        "max": [max(col) if col else None for col in columns],
    }


# ============================================================================= renderers


def _figure_and_axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


ALIVE, REMOVED, SAMPLED, PARENT, CHILD, BEST = "#0072B2", "#999999", "#E69F00", "#D55E00", "#009E73", "#000000"
FAILED, PRUNED, STEP = "#CC0000", "#999999", "#56B4E9"
BOTTOM = 0.03  # records without a value sit this far up the axes (a fraction of its height)


def _where(ax, number: int, value: float | None):
    """(x, y, transform) of a record's point: at its value, or along the bottom of the axes."""
    return (number, value, ax.transData) if value is not None else (number, BOTTOM, ax.get_xaxis_transform())


def _draw_failed_and_pruned(ax, data: dict) -> None:
    """Failed trials: red x along the bottom (they have no metric); pruned ones: hollow grey at their
    partial value. One scatter call per group: a dashboard redraws this at every step."""
    failed, pruned = data["failed"], data["pruned"]
    if failed:
        ax.scatter(failed, [BOTTOM] * len(failed), transform=ax.get_xaxis_transform(), marker="x", s=28,
                   color=FAILED, linewidths=1.4, label=f"failed ({len(failed)})", zorder=3, clip_on=False)
    if pruned:
        label = f"pruned ({len(pruned)})"
        at_value = [k for k in pruned if data["value"][k] is not None]
        if at_value:
            ax.scatter(at_value, [data["value"][k] for k in at_value], s=22, facecolors="none", edgecolors=PRUNED,
                       linestyles="--", label=label)
            label = "_nolegend_"
        without = [k for k in pruned if data["value"][k] is None]  # stopped before it measured anything
        if without:
            ax.scatter(without, [BOTTOM] * len(without), transform=ax.get_xaxis_transform(), s=22,
                       facecolors="none", edgecolors=PRUNED, linestyles="--", label=label, clip_on=False)


def _draw_best_so_far(ax, data: dict) -> None:
    curve = data["best_so_far"]
    first = next((k for k, v in enumerate(curve) if v is not None), None)
    if first is not None:  # before the first complete trial there is no best yet
        ax.step(data["number"][first:], curve[first:], where="post", color=BEST, lw=1.2, label="best so far")


def _draw_newest(ax, number: int, value: float | None, label: str) -> tuple:
    x, y, transform = _where(ax, number, value)
    ax.scatter([x], [y], s=90, marker="*", color=CHILD, label=label, zorder=4, transform=transform, clip_on=False)
    return x, y, transform


def _finish(ax, data: dict, xlabel: str, title: str) -> None:
    n = len(data["number"])
    # Points along the bottom are placed in axes coordinates, which do not widen the x range.
    ax.set_xlim(-0.5 - 0.02 * n, max(n, 1) - 0.5 + 0.02 * n)
    if None in data["value"] and any(v is not None for v in data["value"]):
        low, high = ax.get_ylim()  # room below the lowest point for the row of points without a value
        ax.set_ylim(low - 0.1 * (high - low), high)
    ax.set(xlabel=xlabel, ylabel=data["metric"], title=title)
    ax.xaxis.get_major_locator().set_params(integer=True)  # record numbers: no tick at 12.5
    # Outside the axes, on the right: inside, it covered the first trials (the upper left is not empty
    # when an early random trial happens to be good).
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="x-small")


def plot_progress(history: History, upto: int | None = None, ax=None, metric: str | None = None):
    """The metric of every trial or step and the best-so-far line: the view of any search.

    Complete trials are dots, failed ones red x along the bottom, pruned ones hollow grey, a one-shot
    search's steps a line; the newest record is a star."""
    data = progress_data(history, upto, metric)
    fig, ax = _figure_and_axes(ax, (7, 4))
    values = data["value"]
    complete, steps = ([k for k, state in zip(data["number"], data["state"]) if state == kind and values[k] is not None]
                       for kind in ("complete", "step"))
    if complete:
        ax.scatter(complete, [values[k] for k in complete], s=22, color=ALIVE, label=f"trials ({len(complete)})")
    if steps:
        ax.plot(steps, [values[k] for k in steps], color=STEP, lw=1.2, marker=".", ms=4, label=f"steps ({len(steps)})")
    _draw_failed_and_pruned(ax, data)
    _draw_best_so_far(ax, data)
    if data["last"] is not None:
        _draw_newest(ax, data["last"], values[data["last"]], "newest")
    counts = data["counts"]
    parts = [f"{n} {what}" for n, what in ((len(data["number"]) - counts["step"], "trials"), (counts["failed"], "failed"),
                                             (counts["pruned"], "pruned"), (counts["step"], "steps")) if n]
    _finish(ax, data, "record number", ", ".join(parts) or "no records yet")
    return fig


def plot_population(history: History, upto: int | None = None, ax=None, **kwargs):
    """Fitness against birth step: the living filled, the removed hollow, the failed as red x along
    the bottom, the last step's sampled members ringed, its parent and child highlighted with an
    arrow, and the best-so-far line. A history without a population is drawn as `plot_progress` does.

    kwargs go to `population_data` (population_size, aging, metric)."""
    data = population_data(history, upto, **kwargs)
    if not data["has_population"]:
        return plot_progress(history, upto, ax=ax, metric=kwargs.get("metric"))
    fig, ax = _figure_and_axes(ax, (7, 4))
    x, y, alive = data["number"], data["fitness"], data["alive"]
    dead = [k for k in x if y[k] is not None and not alive[k]]
    living = [k for k in x if alive[k]]
    ax.scatter(dead, [y[k] for k in dead], s=22, facecolors="none", edgecolors=REMOVED, label=f"removed ({len(dead)})")
    ax.scatter(living, [y[k] for k in living], s=26, color=ALIVE, label=f"alive ({len(living)})")
    _draw_failed_and_pruned(ax, data)
    _draw_best_so_far(ax, data)
    last = data["last"]
    if last is not None:
        label = "child (newest)" if last["state"] == "complete" else f"child ({last['state']})"
        child_x, child_y, child_coords = _draw_newest(ax, last["child"], data["value"][last["child"]], label)
        sampled = sorted(set(last["sampled"]))
        if sampled:
            ax.scatter(sampled, [y[k] for k in sampled], s=110, facecolors="none", edgecolors=SAMPLED,
                       linewidths=1.8, label=f"sampled ({len(last['sampled'])} draws)")
            parents = last["parents"] or ([] if last["parent"] is None else [last["parent"]])
            for parent in parents:  # one arrow per parent: two for a crossover child
                ax.annotate("", xy=(child_x, child_y), xycoords=child_coords, xytext=(parent, y[parent]),
                            textcoords="data",
                            arrowprops=dict(arrowstyle="->", color=PARENT, lw=1.3, shrinkA=5, shrinkB=5))
            ax.scatter(parents, [y[p] for p in parents], s=60, marker="D", color=PARENT,
                       label="parents" if len(parents) > 1 else "parent", zorder=3)
        if last["removed"] is not None:
            r = last["removed"]
            ax.scatter([r], [y[r]], s=70, marker="x", color=PARENT, label="removed just now", zorder=4)
    rule = "aging" if data["aging"] else "non-aging"
    failed = f", {len(data['failed'])} failed" if data["failed"] else ""
    _finish(ax, data, "birth step (trial number)",
            f"{len(x)} trials{failed}, population {data['population_size']} ({rule})")
    return fig


def plot_best_so_far(histories_by_label: dict, ax=None, metric: str | None = None):
    """Anytime curves per label (e.g. "random search", "evolution"): the mean over runs as a line,
    the min-max range over runs as a band, both starting where the first run has a complete trial.
    Values are lists of histories (or a single history)."""
    fig, ax = _figure_and_axes(ax, (6, 4))
    colors = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]
    data = None
    for k, (label, histories) in enumerate(histories_by_label.items()):
        histories = [histories] if isinstance(histories, History) else list(histories)
        data = best_so_far_data(histories, metric)
        color = colors[k % len(colors)]
        first = next((i for i, v in enumerate(data["mean"]) if v is not None), len(data["mean"]))
        x = data["trials"][first:]
        ax.plot(x, data["mean"][first:], color=color, drawstyle="steps-post", label=f"{label} (mean of {data['runs']})")
        ax.fill_between(x, data["min"][first:], data["max"][first:], color=color, alpha=0.2, lw=0, step="post")
    ax.set(xlabel="trials evaluated", ylabel=f"best {data['metric'] if data else 'metric'} so far",
           title="anytime performance (band: min to max over runs)")
    if data is not None:
        ax.legend(loc="lower right", fontsize="small")
    return fig
