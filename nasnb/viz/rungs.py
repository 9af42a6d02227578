"""The rungs of successive halving and Hyperband: who was trained for how long, and who went on.

Successive halving (nasnb/strategies/halving.py) trains n architectures for r epochs, keeps the
best floor(n / eta) and trains those for eta * r, until the full budget R. The picture that makes
it clear is one column per budget: every architecture a dot at the budget it was trained for, at
the height of its validation accuracy, a line from each promoted dot to the same architecture one
rung up. Most dots sit at the smallest budget; a few climb; one (per bracket) reaches R.

`rung_data(history, upto)` reads only the History (each trial's ``info``: round, bracket, rung,
budget, config, promoted_from, and ``history.meta["schedule"]``, the places per rung). A rung is
*complete* when all its places are told; then its promoted are computed with the strategy's own
rule (`halving.promote`: the best by the metric, the earlier-drawn on a tie, never a failed one),
so a slider at any step shows who goes on as soon as it is decided, before their new trials appear.
The trials of a rung still filling are "waiting"; those of a bracket's last rung are "final".
`plot_rungs` draws it; `LiveRungs` is the same picture for a dashboard, drawn once and then moved
in place (nasnb/viz/live.py).
"""
from __future__ import annotations

from nasnb.errors import InvalidValueError
from nasnb.history import History, Trial, finite_number
from nasnb.strategies.halving import promote
from nasnb.viz.live import BOTTOM, LiveFigure, offsets, round_range

STATUSES = ("waiting", "promoted", "cut", "final", "failed")
COLOURS = {"waiting": "#0072B2", "promoted": "#009E73", "cut": "#999999", "final": "#000000", "failed": "#CC0000"}
DODGE = 0.12  # horizontal offset between brackets that share a budget, in budget columns


def rung_data(history: History, upto: int | None = None, metric: str | None = None) -> dict:
    """Successive halving's rungs after the first `upto` records (all by default).

    Returns a dict:
        metric; budgets: the distinct budgets seen, ascending (the columns);
        rungs: one dict per (round, bracket, rung), in the order they started: round, bracket, rung,
            budget, places (how many evaluations the rung holds: the schedule's n_0 at rung 0, the
            rung below's promoted after), trials, values (None for a failed one), complete (all
            places told), promoted and cut (trial numbers; empty until the rung is complete; at a
            bracket's last rung nothing is either);
        points: per trial, lists number, x (the budget's column, dodged by bracket), value, status
            (one of STATUSES);
        links: (trial below, trial above) for every promotion whose new trial exists;
        counts: {status: how many trials}; last: the last trial's number (None before any).
    """
    metric = metric or history.metric
    n = len(history) if upto is None else upto
    if not isinstance(n, int) or not 0 <= n <= len(history):
        raise InvalidValueError(f"upto={upto!r}, but the history has {len(history)} records; use 0..{len(history)}, "
                                "e.g. upto=None for all")
    trials = [r for r in history[:n] if isinstance(r, Trial)]
    missing = [t.number for t in trials if not {"round", "bracket", "rung", "budget", "config"} <= set(t.info)]
    if missing:
        raise InvalidValueError(f"trial {missing[0]} has no rung in its info (keys {sorted(trials[missing[0]].info)}): "
                                "rung_data reads the history of a SuccessiveHalving or Hyperband search")
    schedule = {b["bracket"]: b["rungs"] for b in history.meta.get("schedule", [])}
    table: dict[tuple, dict] = {}
    for t in trials:
        info = t.info
        key = (info["round"], info["bracket"], info["rung"])
        if key not in table:
            table[key] = {"round": key[0], "bracket": key[1], "rung": key[2], "budget": info["budget"],
                          "places": None, "trials": [], "values": [], "configs": [], "complete": False,
                          "promoted": [], "cut": []}
        entry = table[key]
        value = t.metrics.get(metric)
        entry["trials"].append(t.number)
        entry["values"].append(float(value) if t.state != "failed" and finite_number(value) else None)
        entry["configs"].append(info["config"])
    status: dict[int, str] = {}
    for (r, s, i), entry in table.items():  # in the order the rungs started: rung i - 1 before rung i
        entry["places"] = _places(table, (r, s, i), schedule)
        entry["complete"] = entry["places"] is not None and len(entry["trials"]) >= entry["places"]
        last_rung = i >= s
        for number, value in zip(entry["trials"], entry["values"]):
            status[number] = "failed" if value is None else "final" if last_rung else "waiting"
        if entry["complete"] and not last_rung:
            rungs = schedule.get(s)
            k = rungs[i + 1][0] if rungs and i + 1 < len(rungs) else 0
            scored = [(v, c) for v, c in zip(entry["values"], entry["configs"]) if v is not None]
            winners = set(promote(scored, min(k, len(scored))))
            for number, value, config in zip(entry["trials"], entry["values"], entry["configs"]):
                if value is None:
                    continue
                (entry["promoted"] if config in winners else entry["cut"]).append(number)
                status[number] = "promoted" if config in winners else "cut"
    links = [(t.info["promoted_from"], t.number) for t in trials if t.info.get("promoted_from") is not None]
    budgets = sorted({entry["budget"] for entry in table.values()})
    brackets = sorted({entry["bracket"] for entry in table.values()}, reverse=True)
    column = {b: k for k, b in enumerate(budgets)}
    centre = (len(brackets) - 1) / 2
    dodge = {s: (k - centre) * DODGE for k, s in enumerate(brackets)}
    values = {k: v for e in table.values() for k, v in zip(e["trials"], e["values"])}
    numbers = [t.number for t in trials]
    for entry in table.values():
        del entry["configs"]
    return {
        "metric": metric, "budgets": budgets, "brackets": brackets, "rungs": list(table.values()),
        "points": {"number": numbers,
                   "x": [column[t.info["budget"]] + dodge[t.info["bracket"]] for t in trials],
                   "value": [values[k] for k in numbers], "status": [status[k] for k in numbers]},
        "links": links, "counts": {s: sum(status[k] == s for k in numbers) for s in STATUSES},
        "last": numbers[-1] if numbers else None,
    }


def _places(table: dict, key: tuple, schedule: dict) -> int | None:
    """How many evaluations rung `key` holds: n_0 of the schedule at rung 0, else as many as the
    rung below promoted (fewer than planned when some failed); None without a schedule."""
    r, s, i = key
    if i == 0:
        rungs = schedule.get(s)
        return rungs[0][0] if rungs else None
    below = table.get((r, s, i - 1))
    return len(below["promoted"]) if below is not None and below["complete"] else None


def _segments(data: dict) -> list:
    p = data["points"]
    where = {k: (x, v) for k, x, v in zip(p["number"], p["x"], p["value"])}
    return [[where[a], where[b]] for a, b in data["links"]
            if a in where and b in where and None not in (where[a][1], where[b][1])]


def _split(data: dict) -> dict:
    """Per status, the (x, y) offsets of its trials (failed ones along the bottom, in axes units)."""
    p, out = data["points"], {}
    for status in STATUSES:
        picked = [(x, v) for x, v, s in zip(p["x"], p["value"], p["status"]) if s == status]
        out[status] = offsets([x for x, _ in picked], [BOTTOM if status == "failed" else v for _, v in picked])
    return out


def _style(status: str) -> dict:
    colour = COLOURS[status]
    if status == "cut":
        return dict(s=26, facecolors="none", edgecolors=colour, linewidths=1.0)
    if status == "failed":
        return dict(s=28, marker="x", color=colour, linewidths=1.4, clip_on=False)
    return dict(s=30 if status != "final" else 44, color=colour, zorder=3,
                marker="*" if status == "final" else "o")


def _axes(ax, data: dict, ylim) -> None:
    ax.set_xticks(range(len(data["budgets"])), [str(b) for b in data["budgets"]])
    ax.set(xlim=(-0.5, max(len(data["budgets"]) - 0.5, 0.5)), ylim=ylim, xlabel="budget (epochs)",
           ylabel=data["metric"])
    ax.grid(axis="y", alpha=0.3)


def plot_rungs(history: History, upto: int | None = None, ax=None, metric: str | None = None):
    """Every trial of a successive-halving or Hyperband search at its budget: filled green the
    promoted, hollow grey the cut, blue those of a rung still filling, stars at the full budget,
    red x the failed; grey lines join a promoted trial to the same architecture one rung up.
    Returns the Figure."""
    from matplotlib.collections import LineCollection

    data = rung_data(history, upto, metric)
    if ax is None:
        from nasnb.viz.cells import _figure_class

        fig = _figure_class()(figsize=(7, 4), layout="constrained")
        ax = fig.add_subplot()
    ax.add_collection(LineCollection(_segments(data), colors="#BBBBBB", linewidths=0.8, zorder=1))
    bottom = ax.get_xaxis_transform()
    for status, points in _split(data).items():
        if len(points):
            ax.scatter(points[:, 0], points[:, 1], label=status, **_style(status),
                       **({"transform": bottom} if status == "failed" else {}))
    values = [v for v in data["points"]["value"] if v is not None]
    _axes(ax, data, round_range(values, bottom_row=data["counts"]["failed"] > 0))
    if values or data["counts"]["failed"]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="x-small")
    ax.set_title(f"rungs: {len(data['rungs'])}, trials: {len(data['points']['number'])}", fontsize="medium")
    return ax.figure


class LiveRungs(LiveFigure):
    """`plot_rungs` for a dashboard: the axes, ticks and legend drawn once; at every step only the
    dots (one scatter per status) and the promotion lines move. The whole figure is drawn again
    when a new budget column or bracket appears or the values leave their round y range."""

    figsize = (7, 3.6)

    def data(self, history, upto):
        return rung_data(history, upto)

    def frame(self, data: dict):
        values = [v for v in data["points"]["value"] if v is not None]
        return (type(self).__name__, data["metric"], tuple(data["budgets"]), tuple(data["brackets"]),
                round_range(values, bottom_row=True))

    def caption(self, data: dict) -> str:
        c = data["counts"]
        open_rungs = [e for e in data["rungs"] if not e["complete"]]
        now = open_rungs[-1] if open_rungs else (data["rungs"][-1] if data["rungs"] else None)
        where = "" if now is None else (f"bracket {now['bracket']} rung {now['rung']} ({now['budget']} epochs): "
                                        f"{len(now['trials'])}/{now['places'] if now['places'] is not None else '?'}"
                                        " told; ")
        return where + ", ".join(f"{c[s]} {s}" for s in STATUSES if c[s])

    def build(self, figure, data: dict) -> list:
        from matplotlib.collections import LineCollection

        figure.subplots_adjust(left=0.11, right=0.8, bottom=0.14, top=0.95)
        ax = figure.add_subplot()
        bottom = ax.get_xaxis_transform()
        a = self.artists = {"links": ax.add_collection(LineCollection([], colors="#BBBBBB", linewidths=0.8, zorder=1))}
        for status in STATUSES:
            a[status] = ax.scatter([], [], label=status, **_style(status),
                                   **({"transform": bottom} if status == "failed" else {}))
        _axes(ax, data, self.frame(data)[-1])
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="x-small")
        for artist in a.values():
            artist.set_animated(True)
        self.move(data)
        return list(a.values())

    def move(self, data: dict) -> None:
        self.artists["links"].set_segments(_segments(data))
        for status, points in _split(data).items():
            self.artists[status].set_offsets(points)
