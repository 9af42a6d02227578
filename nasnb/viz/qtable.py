"""What a MetaQNN agent had learnt: its Q-values along the sampled path, ε over time, the rewards.

`qtable_data(history, upto)` reads only the History of a `MetaQNN` search: every trial's `info`
holds its ε and its path (state, action, the state's actions, and whether the action was the
argmax), and `history.meta` holds α, γ, the initial Q, the replay batch and the seed. The Q table
is not stored: it is *replayed*, trial by trial, with the strategy's own rule,
`nasnb.strategies.qlearning.replay_step` (the replay memory grows by each complete trial, then
`replay_batch` memories drawn from a generator of (seed, trial number) are updated by eq. (3) of
Baker et al. 2017). A failed or pruned trial never joins the memory, as in the strategy. Pass
`upto=t` to see the table as it was after the first t records, as a history slider does;
`plot_qtable` only draws what `qtable_data` returns.

Replaying costs `replay_batch` path updates per trial, so the replayed tables are kept per
history (every `SNAPSHOT_EVERY` trials, and the last one asked for): a dashboard that shows one
more trial at each step replays only that trial.
"""
from __future__ import annotations

import weakref

from nasnb.errors import InvalidValueError
from nasnb.history import History, Trial
from nasnb.strategies.qlearning import q_value, replay_step
from nasnb.viz.live import LiveFigure, offsets, round_range, steps_axis_end

SNAPSHOT_EVERY = 25
NEEDED = ("alpha", "gamma", "q_init", "replay_batch", "seed")
EPSILON, REWARD, FAILED = "#D55E00", "#0072B2", "#CC0000"
_SNAPSHOTS: dict[int, tuple] = {}  # id(history) -> (weakref to it, {records: (last record, table, memory)})


def _snapshots(history: History) -> dict:
    """The replayed tables kept for `history` (a History compares by value, so it cannot be a dict key)."""
    kept = _SNAPSHOTS.get(id(history))
    if kept is None or kept[0]() is not history:
        kept = _SNAPSHOTS[id(history)] = (weakref.ref(history), {})
        weakref.finalize(history, _SNAPSHOTS.pop, id(history), None)
    return kept[1]


def _replayed(history: History, n: int, metric: str) -> tuple[dict, list]:
    """(Q table, replay memory as (path, reward) pairs) after the first n records, from the nearest
    snapshot of this history at or before n (a history only grows, so earlier records never change)."""
    meta = history.meta
    settings = dict(batch=meta["replay_batch"], alpha=meta["alpha"], gamma=meta["gamma"], q_init=meta["q_init"])
    snapshots = _snapshots(history)
    start = max((k for k, (record, _, _) in snapshots.items() if k <= n and (k == 0 or history[k - 1] is record)),
                default=0)
    table, memory = ({}, []) if start == 0 else (_copy(snapshots[start][1]), list(snapshots[start][2]))
    for k in range(start, n):
        r = history[k]
        if isinstance(r, Trial) and "path" in r.info and r.score(metric) is not None:
            memory.append(([tuple(step) for step in r.info["path"]], r.score(metric)))
            replay_step(table, memory, meta["seed"], r.number, **settings)
        if (k + 1) % SNAPSHOT_EVERY == 0 or k + 1 == n:
            snapshots[k + 1] = (history[k], _copy(table), list(memory))  # memories are never changed: shared
    for k in [k for k in snapshots if k % SNAPSHOT_EVERY and k != n]:  # keep one "last asked" only
        del snapshots[k]
    return table, memory


def _copy(table: dict) -> dict:
    return {state: dict(row) for state, row in table.items()}


def qtable_data(history: History, upto: int | None = None, metric: str | None = None) -> dict:
    """The agent after the first `upto` records (all by default).

    Returns a dict:
        q: the Q table, {state: {action: Q}} for the pairs updated so far (others are at q_init):
            what the MetaQNN search held after those trials;
        path: the sampled path of the last trial, one {state, action, greedy, actions, q (the Q of
            each action now)} per transition, the terminal last; trial: its number (or None);
        number, epsilon, rewards (None for a failed or pruned trial): one entry per trial;
        failed: numbers of trials without a reward; memory: the replay memory's size;
        q_init, metric.
    """
    metric = metric or history.metric
    n = len(history) if upto is None else upto
    if not isinstance(n, int) or not 0 <= n <= len(history):
        raise InvalidValueError(f"upto={upto!r}, but the history has {len(history)} records; use 0..{len(history)}")
    missing = [k for k in NEEDED if k not in history.meta]
    if missing:
        raise InvalidValueError(f"this history has no Q-learning settings ({missing} missing from history.meta): "
                                "qtable_data reads the history of a MetaQNN search")
    trials = [r for r in history[:n] if isinstance(r, Trial)]
    for t in trials:
        if not {"path", "epsilon", "greedy"} <= set(t.info):
            raise InvalidValueError(f"trial {t.number} has no Q-learning path in its info (keys {sorted(t.info)}); "
                                    "qtable_data reads the history of a MetaQNN search")
    table, memory = _replayed(history, n, metric)
    q_init, last = history.meta["q_init"], trials[-1] if trials else None
    path = [] if last is None else [
        {"state": s, "action": a, "greedy": g, "actions": list(actions),
         "q": [q_value(table, s, x, q_init) for x in actions]}
        for (s, a, actions), g in zip(last.info["path"], last.info["greedy"])]
    rewards = [t.score(metric) for t in trials]
    return {"metric": metric, "q_init": q_init, "q": _copy(table), "path": path,
            "trial": None if last is None else last.number, "number": [t.number for t in trials],
            "epsilon": [float(t.info["epsilon"]) for t in trials], "rewards": rewards,
            "failed": [t.number for t, r in zip(trials, rewards) if r is None], "memory": len(memory)}


def plot_qtable(history: History, upto: int | None = None, ax=None, metric: str | None = None):
    """The Q-values of every action along the sampled path (rows: its states, the action taken
    boxed, random ones marked '~'), and ε with the rewards over the trials.

    ax: None (a new Figure with both), one Axes (the table only) or two (table, ε and rewards).
    Returns the Figure."""
    import numpy as np

    data = qtable_data(history, upto, metric)
    if ax is None:
        from nasnb.viz.cells import _figure_class

        fig = _figure_class()(figsize=(11, 4.2), layout="constrained")
        table_ax, curve_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": (1.9, 1)})
    elif isinstance(ax, (list, tuple, np.ndarray)):
        table_ax, curve_ax = list(np.ravel(ax))[:2]
    else:
        table_ax, curve_ax = ax, None
    _draw_table(data, table_ax)
    if curve_ax is not None:
        _draw_curves(data, curve_ax)
    return table_ax.figure


def _draw_table(data: dict, ax) -> None:
    import numpy as np
    from matplotlib.patches import Rectangle

    path = data["path"]
    if not path:
        ax.text(0.5, 0.5, "no trial yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    columns = list(dict.fromkeys(a for step in path for a in step["actions"]))  # first appearance
    grid = np.full((len(path), len(columns)), np.nan)
    for row, step in enumerate(path):
        for action, q in zip(step["actions"], step["q"]):
            grid[row, columns.index(action)] = q
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(bad="#EEEEEE")  # grey: an action the state does not allow
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto", interpolation="nearest")
    for row, step in enumerate(path):
        col = columns.index(step["action"])
        ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="#D55E00", lw=2))
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize="x-small")
    ax.set_yticks(range(len(path)), [s["state"] + ("" if s["greedy"] else " ~") for s in path], fontsize="x-small")
    ax.figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="Q(s, a)")
    ax.set_title(f"Q along the path of trial {data['trial']} (boxed: taken, ~: at random)", fontsize="small")


def _draw_curves(data: dict, ax) -> None:
    number = data["number"]
    ax.step(number, data["epsilon"], where="post", color=EPSILON, lw=1.3, label="ε")
    done = [(n, r) for n, r in zip(number, data["rewards"]) if r is not None]
    if done:
        ax.scatter(*zip(*done), s=10, color=REWARD, label=data["metric"], zorder=3)
    if data["failed"]:
        ax.scatter(data["failed"], [0.0] * len(data["failed"]), marker="x", color=FAILED, label="failed", zorder=3)
    ax.set(xlabel="trial", ylabel=f"ε, {data['metric']}")
    ax.set_title(f"replay memory {data['memory']}", fontsize="small")
    if number:
        ax.legend(loc="best", fontsize="x-small")


# ============================================================================= live (a dashboard)

def qtable_html(data: dict, digits: int = 3) -> str:
    """The Q-values along the sampled path as an HTML table (rows: the path's states, '~' after
    one where the action was random; columns: the actions in order of first appearance), each cell
    coloured on viridis between the table's lowest and highest Q, the action taken outlined, an
    action the state does not allow left blank. The same numbers as `plot_qtable`'s left panel,
    as text: a dashboard updates it at every step for the price of a string."""
    import html

    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    path = data["path"]
    if not path:
        return "<i>no trial yet</i>"
    columns = list(dict.fromkeys(a for step in path for a in step["actions"]))
    values = [q for step in path for q in step["q"]]
    low, high = min(values), max(values)
    cmap = colormaps["viridis"]
    head = "".join(f"<th style='padding: 1px 4px; font-weight: normal'>{html.escape(str(c))}</th>" for c in columns)
    rows = []
    for step in path:
        q = dict(zip(step["actions"], step["q"]))
        cells = []
        for action in columns:
            if action not in q:
                cells.append("<td style='background: #EEEEEE'></td>")
                continue
            shade = 0.5 if high == low else (q[action] - low) / (high - low)
            ink = "#000000" if shade > 0.6 else "#FFFFFF"  # viridis is dark below, light above
            taken = "outline: 2px solid #D55E00; outline-offset: -2px; font-weight: bold; " \
                if action == step["action"] else ""
            cells.append(f"<td style='{taken}background: {to_hex(cmap(shade))}; color: {ink}; padding: 1px 4px; "
                         f"text-align: right'>{q[action]:.{digits}f}</td>")
        label = html.escape(str(step["state"])) + ("" if step["greedy"] else " ~")
        rows.append(f"<tr><th style='text-align: left; padding: 1px 4px; font-weight: normal; white-space: nowrap'>"
                    f"{label}</th>"
                    + "".join(cells) + "</tr>")
    return ("<div style='overflow-x: auto; max-width: 100%'>"  # many actions: the table scrolls, the page does not
            "<table style='border-collapse: collapse; font-size: 11px; font-family: monospace; word-break: normal'>"
            f"<tr><th></th>{head}</tr>" + "".join(rows) + "</table></div>")


class LiveQTable(LiveFigure):
    """`plot_qtable` for a dashboard (nasnb.viz.live): the figure holds ε and the rewards over the
    trials, drawn once and then moved in place; the Q table along the path, whose rows and columns
    change with every sampled path, is `qtable_html(data)`, text a panel shows next to it (drawing
    it in matplotlib cost 0.45 s a trial, three times a trial's own time on the notebook's
    surrogate)."""

    figsize = (6, 2.6)

    def data(self, history, upto):
        return qtable_data(history, upto)

    def frame(self, data: dict):
        rewards = [r for r in data["rewards"] if r is not None]
        return (type(self).__name__, data["metric"], bool(data["failed"]), steps_axis_end(len(data["number"])),
                round_range([*rewards, *data["epsilon"], 0.0]))

    def caption(self, data: dict) -> str:
        done = [r for r in data["rewards"] if r is not None]
        best = f", best {max(done):.4g}" if done else ""
        eps = f"ε {data['epsilon'][-1]:g}" if data["epsilon"] else "ε -"
        return (f"trial {data['trial']}: {eps}; {len(data['number'])} trials, {len(data['failed'])} failed{best}; "
                f"replay memory {data['memory']}")

    def build(self, figure, data: dict) -> list:
        frame = self.frame(data)
        figure.subplots_adjust(left=0.11, right=0.78, bottom=0.18, top=0.95)
        ax = figure.add_subplot()
        a = self.artists = {
            "epsilon": ax.plot([], [], drawstyle="steps-post", color=EPSILON, lw=1.3, label="ε")[0],
            "rewards": ax.scatter([], [], s=10, color=REWARD, label=data["metric"], zorder=3),
            "failed": ax.scatter([], [], marker="x", color=FAILED, label="failed" if frame[2] else None, zorder=3),
        }
        ax.set(xlim=(-0.5, frame[3] + 0.5), ylim=frame[4], xlabel="trial", ylabel=f"ε, {data['metric']}")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="x-small")
        for artist in a.values():
            artist.set_animated(True)
        self.move(data)
        return list(a.values())

    def move(self, data: dict) -> None:
        a, number = self.artists, data["number"]
        a["epsilon"].set_data(number, data["epsilon"])
        done = [(n, r) for n, r in zip(number, data["rewards"]) if r is not None]
        a["rewards"].set_offsets(offsets([n for n, _ in done], [r for _, r in done]))
        a["failed"].set_offsets(offsets(data["failed"], [0.0] * len(data["failed"])))
