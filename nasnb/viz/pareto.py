"""A multi-objective search in objective space: the trials, the Pareto front, the hypervolume.

`pareto_data(history, objectives, upto)` reads a `History` and returns a plain dict of numbers;
`plot_pareto` only draws that dict (matplotlib's object API, no pyplot) and returns the Figure.
`upto=t` shows the search as it was after its first t records, as a dashboard's slider does.

Which trials take part is `nasnb.objectives.pareto_front`'s rule: a complete trial with a finite
value for every objective. Failed, pruned and NaN trials are not placed (they have no point in
objective space); they are counted in `excluded`. Of the placed trials, those that no other beats
on every objective are the *front*; the others are *dominated*.

The hypervolume needs a reference point, the worst corner that counts. Here it is chosen from the
placed trials among the first `upto` records, once per call: per objective, the worst value so far
moved 10 % of the range (best - worst) further in the bad direction, so every placed trial lies
strictly inside and adds to the volume. When all values of an objective are equal the range is
taken as max(|worst|, 1). Because it depends on `upto`, the curve of one call is comparable along
itself, not with the curve of another `upto` (pass `reference=` to fix it across calls).

Objectives default to ``history.meta["objectives"]`` (NSGA2 writes them there), else
``{history.metric: "max"}``. The picture shows the first two objectives; with more, membership of
the front is decided on all of them, so a front point may look dominated in the two shown, and the
front's staircase (which only means something in 2-D) is not drawn. With one objective the x axis
is the trial number.

`LivePareto` is the same picture for a dashboard (`nasnb.viz.live`): drawn once, then its points
and lines moved in place at each step; the dashboard's "pareto" panel (NSGA2's default) uses it.
"""
from __future__ import annotations

import numpy as np

from nasnb.checks import short
from nasnb.errors import InvalidValueError
from nasnb.objectives import hypervolume_so_far, minimised, non_dominated, parse_objectives
from nasnb.viz.live import LiveFigure, offsets, round_range, steps_axis_end
from nasnb.viz.search import ALIVE, BEST, CHILD, REMOVED, _records

MARGIN = 0.10  # the reference point lies this fraction of the range beyond the worst value
RIGHT, UP = {"max": "→", "min": "←"}, {"max": "↑", "min": "↓"}


def default_objectives(history) -> dict:
    """The objectives a history was searched for: meta["objectives"], else {metric: "max"}."""
    return history.meta.get("objectives") or {history.metric: "max"}


def reference_point(values: np.ndarray, objectives) -> list[float]:
    """Per objective: the worst of `values` (n, m) moved MARGIN of its range in the bad direction."""
    objectives = parse_objectives(objectives)
    if len(values) == 0:
        return [0.0] * len(objectives)
    low = minimised(values, objectives)  # every column minimised: the worst is the largest
    worst, best = low.max(axis=0), low.min(axis=0)
    span = np.where(worst > best, worst - best, np.maximum(np.abs(worst), 1.0))
    return [float(v) for v in (worst + MARGIN * span) * np.array([o.sign for o in objectives])]


def _reference(reference, objectives) -> list[float]:
    """A given reference point as a list in the objectives' order, or an error naming it."""
    names = [o.name for o in objectives]
    if isinstance(reference, dict) and set(reference) == set(names):
        reference = [reference[name] for name in names]
    try:
        point = [float(v) for v in reference]
    except (TypeError, ValueError):
        point = []
    if len(point) != len(names) or not np.isfinite(point).all():
        example = {name: 0.0 for name in names}
        raise InvalidValueError(f"reference={short(reference)} must give one finite number per objective {names}; "
                                f"e.g. reference={example!r}")
    return point


def _staircase(front: np.ndarray, reference, objectives) -> list[list[float]]:
    """The boundary of what a 2-D front dominates, from the reference's edge to its other edge:
    in minimised coordinates, sorted by the first objective, each point then a corner below the next."""
    signs = np.array([o.sign for o in objectives])
    low, ref = front * signs, np.array(reference) * signs
    low = low[np.lexsort((low[:, 1], low[:, 0]))]
    path = [[low[0, 0], ref[1]]]
    for k, point in enumerate(low):
        path.append(list(point))
        path.append([low[k + 1, 0], point[1]] if k + 1 < len(low) else [ref[0], point[1]])
    return [[float(x), float(y)] for x, y in (np.array(path) * signs)]


def pareto_data(history, objectives=None, upto: int | None = None, reference=None) -> dict:
    """The trials of the first `upto` records (all by default) in objective space.

    Returns a dict:
        objectives ({name: direction}), names (their order), number (placed trials' numbers, in
        trial order), values (one row per placed trial, one column per objective, raw units),
        on_front (per placed trial), front (its numbers, sorted by the first objective, best first),
        dominated (the other placed numbers), excluded (numbers of trials not placed: failed, pruned
        or without a finite value for some objective), staircase ([x, y] corners of the 2-D front,
        reference edge to edge; [] unless exactly 2 objectives and a front), reference (the point
        used), hypervolume (after each of the first `upto` records), newest (the last record's
        number when it is a placed trial, else None), last (the last record: number, state), upto.
    """
    objectives = parse_objectives(default_objectives(history) if objectives is None else objectives)
    records = _records(history, upto)
    number, rows, excluded = [], [], []
    for record in records:
        if getattr(record, "kind", None) != "trial":
            continue
        row = [record.score(o.name) for o in objectives]  # None unless complete and finite
        if all(v is not None for v in row):
            number.append(record.number)
            rows.append(row)
        else:
            excluded.append(record.number)
    values = np.array(rows, dtype=float).reshape(len(rows), len(objectives))
    reference = reference_point(values, objectives) if reference is None else _reference(reference, objectives)
    front_rows = non_dominated(values, objectives) if len(values) else np.array([], dtype=int)
    on_front = np.zeros(len(number), dtype=bool)
    on_front[front_rows] = True
    first = objectives[0]
    order = sorted(front_rows, key=lambda k: (values[k, 0] * first.sign, number[k]))
    last = records[-1] if records else None
    return {
        "objectives": {o.name: o.direction for o in objectives},
        "names": [o.name for o in objectives],
        "number": number,
        "values": values.tolist(),
        "on_front": on_front.tolist(),
        "front": [number[k] for k in order],
        "dominated": [n for n, f in zip(number, on_front) if not f],
        "excluded": excluded,
        "staircase": _staircase(values[front_rows], reference, objectives)
        if len(objectives) == 2 and len(front_rows) else [],
        "reference": reference,
        "hypervolume": hypervolume_so_far(records, objectives, reference) if records else [],
        "newest": last.number if last is not None and last.number in set(number) else None,
        "last": None if last is None else {"number": last.number, "state": getattr(last, "state", "step")},
        "upto": len(records),
    }


# ============================================================================= renderer


def _axes(ax):
    """(front axes, hypervolume axes or None, Figure) from ax: None, one Axes, or two of them."""
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4), layout="constrained")
        front_ax, hv_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": (1.6, 1)})
        return front_ax, hv_ax, fig
    if isinstance(ax, (list, tuple, np.ndarray)):
        front_ax, hv_ax = list(np.ravel(ax))[:2]
        return front_ax, hv_ax, front_ax.figure
    return ax, None, ax.figure


def _xy(data: dict) -> tuple:
    """(x, y, x label, y label, reference (x or None, y)) of the placed trials: the first two
    objectives, or trial number and the objective when there is one."""
    names, values = data["names"], np.array(data["values"]).reshape(len(data["number"]), len(data["names"]))
    if len(names) == 1:
        return (np.array(data["number"], dtype=float), values[:, 0], "trial number", names[0],
                (None, data["reference"][0]))
    return values[:, 0], values[:, 1], names[0], names[1], tuple(data["reference"][:2])


def _labels(data: dict) -> tuple[str, str]:
    """The axis labels, each objective's with an arrow to where better lies: 'lat (min ↓)'."""
    _, _, xlabel, ylabel, _ = _xy(data)
    direction = data["objectives"]
    return (xlabel if xlabel not in direction else f"{xlabel} ({direction[xlabel]} {RIGHT[direction[xlabel]]})",
            f"{ylabel} ({direction[ylabel]} {UP[direction[ylabel]]})")


def plot_pareto(history, upto: int | None = None, ax=None, objectives=None):
    """The trials in objective space (first two objectives) and the hypervolume over the steps.

    Front points are filled and joined by the staircase of what they dominate; dominated trials are
    faded; the newest trial is a star; the reference point is a cross. The second axes draws the
    hypervolume after each record. ax: None (a new Figure with both), one Axes (the objective space
    only), or two Axes (objective space, hypervolume), as a dashboard panel passes them."""
    data = pareto_data(history, objectives, upto)
    front_ax, hv_ax, fig = _axes(ax)
    names = data["names"]
    xs, ys, _, _, ref = _xy(data)
    at = {n: k for k, n in enumerate(data["number"])}
    dominated = [at[n] for n in data["dominated"]]
    front = [at[n] for n in data["front"]]
    if dominated:
        front_ax.scatter(xs[dominated], ys[dominated], s=18, color=REMOVED, alpha=0.35, lw=0,
                         label=f"dominated ({len(dominated)})")
    if front:
        front_ax.scatter(xs[front], ys[front], s=30, color=ALIVE, zorder=3, label=f"front ({len(front)})")
    if data["staircase"]:
        path = np.array(data["staircase"])
        front_ax.plot(path[:, 0], path[:, 1], color=BEST, lw=1.1, zorder=2)
    if ref[0] is not None and data["number"]:
        front_ax.scatter([ref[0]], [ref[1]], marker="+", s=60, color=BEST, label="reference")
    if data["newest"] is not None:
        k = at[data["newest"]]
        front_ax.scatter([xs[k]], [ys[k]], s=110, marker="*", color=CHILD, zorder=4, label="newest")
    front_ax.set(xlabel=_labels(data)[0], ylabel=_labels(data)[1])
    shown = "" if len(names) <= 2 else f" (front on {len(names)} objectives, first two shown)"
    excluded = f", {len(data['excluded'])} not placed" if data["excluded"] else ""
    front_ax.set_title(f"{len(data['number'])} trials{excluded}{shown}", fontsize="medium")
    if front_ax.get_legend_handles_labels()[0]:
        front_ax.legend(loc="best", fontsize="x-small")
    if hv_ax is not None:
        curve = data["hypervolume"]
        if curve:
            hv_ax.step(range(1, len(curve) + 1), curve, where="post", color=ALIVE, lw=1.2)
        hv_ax.set(xlabel="records", ylabel="hypervolume")
        hv_ax.set_title("reference " + ", ".join(f"{v:.4g}" for v in data["reference"]), fontsize="small")
        hv_ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


# ============================================================================= live, for a dashboard


class LivePareto(LiveFigure):
    """`plot_pareto` for a dashboard (nasnb.viz.live): the axes, labels and legend are drawn once;
    each step moves the points, the staircase, the reference and the hypervolume curve, and draws
    the whole figure again only when a range (round values, `round_range`) or the kinds of points
    change. The counts and the hypervolume are in `caption`."""

    figsize = (9, 4)

    def data(self, history, upto):
        return pareto_data(history, upto=upto)

    @staticmethod
    def kinds(data: dict) -> tuple:
        return tuple(k for k, n in (("dominated", len(data["dominated"])), ("front", len(data["front"])),
                                    ("newest", data["newest"] is not None)) if n)

    def frame(self, data: dict):
        xs, ys, _, _, ref = _xy(data)
        x_range = (-0.5, steps_axis_end(data["upto"])) if ref[0] is None else round_range([*xs, ref[0]])
        return (type(self).__name__, tuple(data["objectives"].items()), self.kinds(data), x_range,
                round_range([*ys, ref[1]]), steps_axis_end(data["upto"]), round_range(data["hypervolume"] + [0.0]))

    def caption(self, data: dict) -> str:
        hv = data["hypervolume"][-1] if data["hypervolume"] else 0.0
        excluded = f", {len(data['excluded'])} not placed" if data["excluded"] else ""
        reference = ", ".join(f"{v:.4g}" for v in data["reference"])
        return (f"{len(data['number'])} trials{excluded}; front {len(data['front'])}; "
                f"hypervolume {hv:.4g} (reference {reference})")

    def build(self, figure, data: dict) -> list:
        frame = self.frame(data)
        space, curve = figure.subplots(1, 2, gridspec_kw=dict(width_ratios=(1.6, 1), left=0.08, right=0.98,
                                                                 bottom=0.13, top=0.86, wspace=0.28))
        kinds = self.kinds(data)
        label = lambda kind, text: text if kind in kinds else None  # noqa: E731
        a = self.artists = {
            "dominated": space.scatter([], [], s=18, color=REMOVED, alpha=0.35, lw=0,
                                       label=label("dominated", "dominated")),
            "front": space.scatter([], [], s=30, color=ALIVE, zorder=3, label=label("front", "front")),
            "staircase": space.plot([], [], color=BEST, lw=1.1, zorder=2)[0],
            "reference": space.scatter([], [], marker="+", s=60, color=BEST, label="reference"),
            "newest": space.scatter([], [], s=110, marker="*", color=CHILD, zorder=4, label=label("newest", "newest")),
            "curve": curve.plot([], [], drawstyle="steps-post", color=ALIVE, lw=1.2)[0],
        }
        for artist in a.values():
            artist.set_animated(True)
        pad = lambda low, high: (low - 0.04 * (high - low), high + 0.04 * (high - low))  # noqa: E731 (edge points)
        xlabel, ylabel = _labels(data)
        space.set(xlim=pad(*frame[3]), ylim=pad(*frame[4]), xlabel=xlabel, ylabel=ylabel)
        curve.set(xlim=(0.5, frame[5] + 0.5), ylim=frame[6], xlabel="records", ylabel="hypervolume")
        curve.xaxis.get_major_locator().set_params(integer=True)
        figure.legend(*space.get_legend_handles_labels(), loc="upper center", ncol=4, fontsize="x-small", frameon=False)
        self.move(data)
        return list(a.values())

    def move(self, data: dict) -> None:
        xs, ys, _, _, ref = _xy(data)
        at = {n: k for k, n in enumerate(data["number"])}
        a = self.artists
        for kind in ("dominated", "front"):
            rows = [at[n] for n in data[kind]]
            a[kind].set_offsets(offsets(xs[rows], ys[rows]))
        newest = [at[data["newest"]]] if data["newest"] is not None else []
        a["newest"].set_offsets(offsets(xs[newest], ys[newest]))
        a["reference"].set_offsets(offsets([ref[0]], [ref[1]]) if ref[0] is not None and data["number"] else
                                   np.empty((0, 2)))
        path = np.array(data["staircase"]).reshape(-1, 2)
        a["staircase"].set_data(path[:, 0], path[:, 1])
        a["curve"].set_data(np.arange(1, len(data["hypervolume"]) + 1), data["hypervolume"])
