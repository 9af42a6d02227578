"""What a DARTS search believed: softmax(α) on every edge, over the steps, and the cell it derives.

DARTS (Liu, Simonyan & Yang, ICLR 2019) relaxes the choice of an op on an edge (i, j) into the
mixture ō(x) = Σ_o softmax(α_ij)_o · o(x) (eq. 2), and at the end keeps the strongest op(s) (Sec.
2.4). Every `Step` a one-shot search records holds these mixing weights in ``info["alphas"]``
(cell type -> edge -> op, lists of floats) and the discretised architecture in ``info["derived"]``,
so the whole picture is a function of the History: replay any step, or a search resumed from a
checkpoint, and the picture is the same. P-DARTS drops ops between stages: a dropped op weighs
exactly 0 (it still has its place); `info["stage"]` (P-DARTS) and `info["tau"]` (GDAS) are shown
when they are there.

`alpha_data(history, upto=t)` computes (tested); `plot_alphas(history, upto=t)` draws it with
matplotlib: per-edge bars, coloured as the cell drawings colour ops (`nasnb.viz.cells.OP_COLORS`),
the weights' history as lines, and the derived cell drawn by `nasnb.viz.cells.draw_cell`.
`LiveAlphas` is the same bars and lines for a dashboard: it builds the figure once and then only
moves its artists (bar heights, line data) and repaints them over a cached background, so a redraw
costs milliseconds, not the ~100 ms of drawing a figure from scratch.
"""
from __future__ import annotations

import math
import re

from nasnb.errors import InvalidValueError
from nasnb.history import History
from nasnb.viz.live import LiveFigure, steps_axis_end

ARROW = "→"
INPUT_LABELS = ("c_{k-2}", "c_{k-1}")  # a DARTS cell's two inputs, as the papers (and DartsSpace.to_graph) name them


# ============================================================================= data functions


def edge_labels(space: str, cell: str, num_edges: int) -> list[str]:
    """Names of a supernet's edges in α's row order: NB201 "0→1", "0→2", "1→2", ... (nodes 0..3);
    DARTS "c_{k-2}→0", "c_{k-1}→0", "c_{k-2}→1", "c_{k-1}→1", "0→1", ... (node i reads the two
    inputs and nodes 0..i-1)."""
    if space == "nb201" and num_edges == 6:
        from nasnb.spaces.nb201 import EDGES

        return [f"{j}{ARROW}{i}" for j, i in EDGES]
    steps = darts_steps(num_edges)
    if steps is None:
        return [f"edge {e}" for e in range(num_edges)]
    state = lambda j: INPUT_LABELS[j] if j < 2 else str(j - 2)  # noqa: E731
    return [f"{state(j)}{ARROW}{i}" for i in range(steps) for j in range(i + 2)]


def edge_names(history: History, cell: str, num_edges: int) -> list[str]:
    """The labels of a cell type's α rows: `history.meta["edge_names"][cell]` when the search wrote
    them (ProxylessNAS: the layer names of a chain, 'stage0/layer1'), else `edge_labels`."""
    names = (history.meta.get("edge_names") or {}).get(cell)
    if isinstance(names, (list, tuple)) and len(names) == num_edges:
        return [str(name) for name in names]
    return edge_labels(history.meta.get("space"), cell, num_edges)


def darts_steps(num_edges: int) -> int | None:
    """The number of intermediate nodes of a DARTS cell with `num_edges` edges (2 + 3 + ... + (n+1)
    = n(n+3)/2), or None when no n fits."""
    n = round((-3 + math.sqrt(9 + 8 * num_edges)) / 2)
    return n if n >= 1 and n * (n + 3) // 2 == num_edges else None


def op_names_for(history: History, num_ops: int) -> list[str]:
    """The op names of α's columns: `history.meta["op_names"]` when the search wrote them, else the
    space's candidate ops (NB201's 5, DARTS' 8 PRIMITIVES) when their number fits, else "op k"."""
    names = history.meta.get("op_names")
    if names and len(names) == num_ops:
        return [str(n) for n in names]
    space = history.meta.get("space")
    if space == "nb201":
        from nasnb.spaces.nb201 import OPS as known
    elif space == "darts":
        from nasnb.spaces.ops import DARTS_PRIMITIVES as known
    else:
        known = ()
    return list(known) if len(known) == num_ops else [f"op {k}" for k in range(num_ops)]


def _alpha_steps(history: History, upto: int | None) -> list:
    n = len(history) if upto is None else upto
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(history):
        raise InvalidValueError(f"upto={upto!r}, but the history has {len(history)} records; use 0..{len(history)}, "
                                f"e.g. upto={len(history)}")
    return [r for r in history[:n] if isinstance(r.info.get("alphas"), dict)]


def alpha_data(history: History, upto: int | None = None) -> dict:
    """softmax(α) of the records among the first `upto` (all by default) that hold them.

    Returns a dict:
        step: the number of the last of these records (None when there is none); steps: all their
            numbers, in order (the x axis of the trajectories);
        op_names: α's columns (`op_names_for`); space: history.meta["space"];
        cells: per cell type (NB201: "cell"; DARTS: "normal", "reduce"; a chain: "chain"), a dict
            with name, edges (labels, `edge_names`), weights (edge -> op: softmax(α) at `step`),
            strongest (per edge the index of its largest weight) and trajectory (edge -> op -> one
            weight per entry of `steps`);
        derived: the derived architecture at `step` (its text), derived_since: the first step of the
            run of steps that ends at `step` and derives the same architecture (where it last changed);
        stage, tau: the last record's info["stage"] (P-DARTS) and info["tau"] (GDAS), None without.
    """
    records = _alpha_steps(history, upto)
    empty = {"step": None, "steps": [], "op_names": [], "space": history.meta.get("space"), "cells": [],
             "derived": None, "derived_since": None, "stage": None, "tau": None}
    if not records:
        return empty
    last = records[-1]
    names = list(last.info["alphas"])
    shape = {cell: (len(last.info["alphas"][cell]), len(last.info["alphas"][cell][0])) for cell in names}
    for r in records:
        alphas = r.info["alphas"]
        got = {cell: (len(rows), len(rows[0]) if rows else 0) for cell, rows in alphas.items()}
        if got != shape or any(len(row) != shape[c][1] for c, rows in alphas.items() for row in rows):
            raise InvalidValueError(f"step {r.number} holds α of shape {got} (cell: edges, ops), step {last.number} "
                                    f"of shape {shape}: one search keeps one shape (a dropped op weighs 0)")
    num_ops = shape[names[0]][1]
    cells = []
    for cell in names:
        num_edges = shape[cell][0]
        weights = [list(map(float, row)) for row in last.info["alphas"][cell]]
        trajectory = [[[float(r.info["alphas"][cell][e][o]) for r in records] for o in range(num_ops)]
                      for e in range(num_edges)]
        cells.append({"name": cell, "edges": edge_names(history, cell, num_edges),
                      "weights": weights, "strongest": [max(range(num_ops), key=row.__getitem__) for row in weights],
                      "trajectory": trajectory})

    derived = lambda r: r.info.get("derived", r.arch)  # noqa: E731
    since = len(records) - 1
    while since > 0 and derived(records[since - 1]) == derived(last):
        since -= 1
    return {**empty, "step": last.number, "steps": [r.number for r in records],
            "op_names": op_names_for(history, num_ops), "cells": cells, "derived": derived(last),
            "derived_since": records[since].number, "stage": last.info.get("stage"), "tau": last.info.get("tau")}


def space_of(history: History, data: dict):
    """The search space to draw the derived cell in, rebuilt from history.meta["space"] (a DARTS
    space with as many nodes as the supernet's cells have); None when it cannot be rebuilt."""
    name = history.meta.get("space")
    try:
        if name == "nb201":
            from nasnb.spaces.nb201 import NB201Space

            return NB201Space()
        if name == "darts" and data["cells"]:
            from nasnb.spaces.darts import DartsSpace

            return DartsSpace(steps=darts_steps(len(data["cells"][0]["edges"])) or 4)
    except Exception:  # noqa: BLE001 - a view never fails because a drawing is unavailable
        return None
    return None


def title_text(data: dict) -> str:
    """'softmax(α) at step 12 · derived since step 7 · stage 2 · τ 4.2'."""
    if data["step"] is None:
        return "softmax(α): no step yet"
    parts = [f"softmax(α) at step {data['step']}", f"derived cell unchanged since step {data['derived_since']}"]
    if data["stage"] is not None:
        parts.append(f"stage {data['stage']}")
    if data["tau"] is not None:
        parts.append(f"τ {data['tau']:.3g}")
    return " · ".join(parts)


# ============================================================================= renderers


def op_colors(op_names) -> list[str]:
    """An op's colour from the cell drawings (OP_COLORS); ops they do not know get a palette colour."""
    from nasnb.viz.policy import option_color

    return [option_color(op, k) for k, op in enumerate(op_names)]


def bar_positions(num_edges: int, num_ops: int) -> tuple[list[float], list[float]]:
    """x of every bar (edge-major, one group of num_ops bars per edge, a gap between groups) and the
    centre of every group."""
    xs = [e * (num_ops + 1) + o for e in range(num_edges) for o in range(num_ops)]
    centres = [e * (num_ops + 1) + (num_ops - 1) / 2 for e in range(num_edges)]
    return xs, centres


def tick_label(label: str) -> str:
    """'c_{k-2}→0' -> '$c_{k-2}$→0': matplotlib typesets the subscript as the cell drawings do."""
    return re.sub(r"(\w+_\{[^}$]*\})", r"$\1$", label)


def bar_top(data: dict) -> float:
    """Top of the bars' y axis: the first of 0.25, 0.5, 0.75, 1 above every weight, so that weights
    near uniform (1/8 for DARTS' ops) are not squashed at the bottom of a 0..1 axis."""
    high = max((w for cell in data["cells"] for row in cell["weights"] for w in row), default=1.0)
    return next(top for top in (0.25, 0.5, 0.75, 1.0) if high <= 0.96 * top or top == 1.0)


def trajectory_limits(data: dict) -> tuple[float, float]:
    """y range of the trajectories: their min and max rounded out to a multiple of 0.05 (of 0.25
    once they spread over more than 0.5), so the axes change rarely and small moves stay visible."""
    values = [v for cell in data["cells"] for edge in cell["trajectory"] for op in edge for v in op]
    low, high = min(values), max(values)
    q = 0.25 if high - low > 0.5 else 0.05
    low, high = max(0.0, math.floor(low / q) * q), min(1.0, math.ceil(high / q) * q)
    if high <= low:
        low, high = max(0.0, low - q), min(1.0, high + q)
    return round(low, 2), round(high, 2)  # 0.15, not 0.15000000000000002 (equal frames must compare equal)


def draw_weights(data: dict, bar_axes, line_axes, legend_y: float, animated: bool = False) -> dict:
    """Bars and lines of every cell type into its pair of Axes; returns the artists by cell name:
    {"bars": [Rectangle per (edge, op), edge-major], "lines": [[Line2D per op] per edge]}. The op
    legend goes above the rows, its top at `legend_y` (figure coordinates)."""
    from matplotlib.patches import Patch

    colors, num_ops = op_colors(data["op_names"]), len(data["op_names"])
    top, (low, high) = bar_top(data), trajectory_limits(data)
    artists = {}
    for cell, ax_bar, ax_line in zip(data["cells"], bar_axes, line_axes):
        num_edges = len(cell["edges"])
        xs, centres = bar_positions(num_edges, num_ops)
        heights = [w for row in cell["weights"] for w in row]
        bars = ax_bar.bar(xs, heights, width=0.85, color=colors * num_edges, animated=animated)
        ax_bar.axhline(1 / num_ops, color="#555555", ls=":", lw=1)  # uniform: where α starts
        many = num_edges > 8
        ax_bar.set_xticks(centres, [tick_label(e) for e in cell["edges"]], rotation=50 if many else 0,
                          ha="right" if many else "center", fontsize="x-small", rotation_mode="anchor")
        ax_bar.set(xlim=(-1, num_edges * (num_ops + 1) - 1), ylim=(0, top), ylabel="softmax(α)")
        ax_bar.set_title(f"{cell['name']}: weights per edge (dotted: uniform)", fontsize="small")
        lines = [[ax_line.plot(data["steps"], cell["trajectory"][e][o], color=colors[o], lw=0.9, alpha=0.75,
                               animated=animated)[0] for o in range(num_ops)] for e in range(num_edges)]
        ax_line.set(ylim=(low, high), xlabel="step")
        ax_line.set_title(f"{cell['name']}: history of every edge's weights", fontsize="small")
        ax_line.xaxis.get_major_locator().set_params(integer=True)
        artists[cell["name"]] = {"bars": list(bars), "lines": lines}
    if data["cells"]:  # one legend for every row, above them: inside an Axes it covers bars or lines
        bar_axes[0].figure.legend(handles=[Patch(color=c, label=o) for o, c in zip(data["op_names"], colors)],
                                  fontsize="x-small", ncols=min(num_ops, 8), loc="upper center",
                                  bbox_to_anchor=(0.5, legend_y), frameon=False, handlelength=1.2,
                                  columnspacing=1.0)
    return artists


def plot_alphas(history: History, upto: int | None = None, ax=None, space=None, draw_derived: bool = True):
    """Per-edge softmax(α) bars, their history as lines (one row per cell type: for DARTS the
    normal and the reduction cell), and below them the derived cell(s). Returns the Figure.

    ax: None makes a Figure; else a sequence of 2 Axes per cell type (bars, lines), row after row,
        optionally followed by one Axes per cell type for the derived cell.
    space: the space to draw the derived cell in; None rebuilds it from history.meta (`space_of`).
    draw_derived: draw the derived cell with nasnb.viz.cells.draw_cell (matplotlib backend).
    """
    data = alpha_data(history, upto)
    rows = max(len(data["cells"]), 1)
    if ax is None:
        from nasnb.viz.cells import _figure_class

        height = 2.9 * rows + (2.6 if draw_derived else 0) + 0.8
        fig = _figure_class()(figsize=(11, height))
        grid = fig.add_gridspec(rows + draw_derived, 2, width_ratios=(1.6, 1), height_ratios=[1] * rows +
                                [0.9 * rows] * draw_derived, left=0.06, right=0.98, bottom=0.02 if draw_derived
                                else 0.6 / height, top=1 - 0.75 / height, wspace=0.15, hspace=0.6)
        axes = [fig.add_subplot(grid[r, c]) for r in range(rows) for c in range(2)]
        if draw_derived:
            below = [grid[rows, :]] if rows == 1 else [grid[rows, c] for c in range(rows)]  # one per cell type
            axes += [fig.add_subplot(where) for where in below]
    else:
        axes = list(ax)
        if len(axes) not in (2 * rows, 3 * rows):
            raise InvalidValueError(f"ax: pass 2 Axes per cell type (bars, lines), then optionally one per cell type "
                                    f"for the derived cell; this history has {rows} cell type(s), got {len(axes)} Axes")
        draw_derived = len(axes) == 3 * rows
    fig = axes[0].figure
    fig.suptitle(title_text(data), fontsize="medium", y=0.995)
    if not data["cells"]:
        for one in axes:
            one.axis("off")
        axes[0].text(0.5, 0.5, "no step with α yet", ha="center", va="center", transform=axes[0].transAxes)
        return fig
    draw_weights(data, axes[0:2 * rows:2], axes[1:2 * rows:2], legend_y=1 - 0.3 / fig.get_size_inches()[1])
    for one in axes[1:2 * rows:2]:
        one.set_xlim(data["steps"][0] - 0.5, max(data["steps"][-1], data["steps"][0] + 1) + 0.5)
    if draw_derived:
        cell_axes = axes[2 * rows:]
        space = space if space is not None else space_of(history, data)
        try:
            from nasnb.viz.cells import draw_cell

            draw_cell(space, space.parse(data["derived"]), ax=cell_axes if len(cell_axes) > 1 else cell_axes[0])
        except Exception:  # noqa: BLE001 - no space, or an arch it cannot read: show the text instead
            for one in cell_axes:
                one.axis("off")
            cell_axes[0].text(0, 0.5, str(data["derived"]), fontsize="x-small", wrap=True,
                              transform=cell_axes[0].transAxes)
        cell_axes[0].set_title(f"derived at step {data['step']} (unchanged since step {data['derived_since']})"
                               + (f": {cell_axes[0].get_title()}" if cell_axes[0].get_title() else ""),
                               fontsize="small")
    return fig


class LiveAlphas(LiveFigure):
    """plot_alphas' bars and lines for a dashboard (nasnb.viz.live): drawn once, then updated in
    place; `render(history, upto)` returns PNG bytes.

    The figure is drawn in full again only when its frame changes: other cells or ops, the
    trajectories past the end of their x axis (10, 20, 50, 100, ... steps) or out of their y range,
    the bars above their y axis. Every other render sets the bars' heights (`Rectangle.set_height`)
    and the lines' data (`Line2D.set_data`) and repaints only those. `bars` and `lines` hold the
    artists by cell name. The title (`caption`, `title_text`) is left to the caller.
    """

    figsize = None  # fitted to the number of cell types (figure_size)

    def __init__(self, figsize: tuple | None = None, dpi: int = 72):
        super().__init__(figsize, dpi)
        self.bars: dict[str, list] = {}
        self.lines: dict[str, list] = {}

    def data(self, history, upto):
        data = alpha_data(history, upto)
        if not data["cells"]:
            raise InvalidValueError("LiveAlphas draws steps that hold α; this history has none among the first "
                                    f"{len(history) if upto is None else upto} records")
        return data

    def frame(self, data: dict):
        return (tuple(data["op_names"]), tuple((c["name"], tuple(c["edges"])) for c in data["cells"]),
                data["steps"][0], steps_axis_end(data["steps"][-1]), bar_top(data), trajectory_limits(data))

    def caption(self, data: dict) -> str:
        return title_text(data)

    def figure_size(self, data: dict) -> tuple:
        return self.figsize or (9, 2.6 * len(data["cells"]) + 0.3)

    def build(self, figure, data: dict) -> list:
        rows = len(data["cells"])
        height = figure.get_size_inches()[1]
        grid = figure.add_gridspec(rows, 2, width_ratios=(1.6, 1), left=0.07, right=0.98, bottom=0.6 / height,
                                   top=1 - 0.55 / height, wspace=0.18, hspace=0.25 + 0.5 * (rows > 1))
        bar_axes = [figure.add_subplot(grid[r, 0]) for r in range(rows)]
        line_axes = [figure.add_subplot(grid[r, 1]) for r in range(rows)]
        artists = draw_weights(data, bar_axes, line_axes, legend_y=1 - 0.02 / height, animated=True)
        for one in line_axes:
            one.set_xlim(data["steps"][0] - 0.5, self.frame(data)[3] + 0.5)
        self.bars = {name: a["bars"] for name, a in artists.items()}
        self.lines = {name: a["lines"] for name, a in artists.items()}
        return [artist for name in self.bars
                for artist in [*self.bars[name], *(line for row in self.lines[name] for line in row)]]

    def move(self, data: dict) -> None:
        for cell in data["cells"]:
            for bar, height in zip(self.bars[cell["name"]], (w for row in cell["weights"] for w in row)):
                bar.set_height(height)
            for row, ops in zip(self.lines[cell["name"]], cell["trajectory"]):
                for line, ys in zip(row, ops):
                    line.set_data(data["steps"], ys)
