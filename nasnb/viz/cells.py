"""Pictures of architectures and searches: data functions first, renderers after.

Data functions (`cell_data`, ...) return plain dicts of numbers and strings; tests check them.
Renderers (`draw_cell`, `cell_image`, ...) only draw what a data function returned, so the
picture and the tested numbers cannot drift apart.

Cells are drawn like the figures of the papers: NAS-Bench-201 (Dong & Yang, 2020, Fig. 1) and
DARTS (Liu et al., 2019, Figs. 4-5): inputs on the left, intermediate nodes in the middle, the
output on the right, every edge labelled with its operation. Graphviz (the `dot` program) draws
them when it is installed; otherwise matplotlib draws the same cell from `cell_data`, so a missing
system package never breaks a notebook. matplotlib and graphviz load only when a renderer runs.
"""
from __future__ import annotations

import functools
import io
import re
import shutil

# Okabe & Ito (2008) and Tol (2021) colour-blind-safe colours; one hue family per kind of op,
# lighter for the smaller kernel, so "which convolution?" reads at a glance.
OP_COLORS = {
    "none": "#DDDDDD",          # light grey: no connection
    "skip_connect": "#000000",  # black: identity
    "avg_pool_3x3": "#44AA99",  # pools: teal / green
    "max_pool_3x3": "#117733",
    "nor_conv_1x1": "#CC79A7",  # NB201 plain convs: pinks / wine
    "nor_conv_3x3": "#882255",
    "sep_conv_3x3": "#56B4E9",  # separable convs: sky blue -> blue -> indigo
    "sep_conv_5x5": "#0072B2",
    "sep_conv_7x7": "#332288",
    "dil_conv_3x3": "#E69F00",  # dilated convs: orange -> vermillion
    "dil_conv_5x5": "#D55E00",
    "conv_7x1_1x7": "#999933",  # factorized 7x7 conv (NASNet): olive
    "concat": "#999999",        # grey: the output concatenates intermediate nodes, no op
    "3x3_MBConv3": "#56B4E9",   # MobileNetSpace's inverted residual blocks: one hue per kernel,
    "3x3_MBConv6": "#0072B2",   # darker for the wider expansion (blue 3x3, orange 5x5, pink 7x7)
    "5x5_MBConv3": "#E69F00",
    "5x5_MBConv6": "#D55E00",
    "7x7_MBConv3": "#CC79A7",
    "7x7_MBConv6": "#882255",
    "Zero": "#DDDDDD",          # light grey: the layer is skipped (its input passes through)
}
FALLBACK_COLOR = "#777777"  # ops nobody registered still draw, in grey

# Node fills of the DARTS reference figures (graphviz colour names darkseagreen2, lightblue,
# palegoldenrod), shared by both renderers.
ROLE_COLORS = {"input": "#B4EEB4", "intermediate": "#ADD8E6", "output": "#EEE8AA"}
CELL_TITLES = {"normal": "normal cell", "reduce": "reduction cell", "chain": ""}  # a chain: MobileNetSpace


def op_color(op: str) -> str:
    """The colour of an op's edges; unknown ops get `FALLBACK_COLOR`."""
    return OP_COLORS.get(op, FALLBACK_COLOR)


def has_dot() -> bool:
    """True when graphviz's `dot` program is on the PATH (the python package alone cannot draw)."""
    return shutil.which("dot") is not None


# ============================================================================= data functions


def cell_data(space, arch) -> dict:
    """Nodes, edges and a left-to-right layout for every cell of `arch` (pure data).

    Returns ``{"space": name, "cells": [{"name", "nodes": [{"id", "label", "role", "x", "y"}],
    "edges": [{"source", "target", "op", "color", "label"}]}]}``, one cell per `space.cell_names`
    (a DARTS genotype has a normal and a reduction cell). Works for any space whose
    ``to_graph(arch[, cell])`` returns a networkx graph with node attrs ``label``/``role`` and edge
    attr ``op``. ``x`` is a node's layer (0 for inputs, then the longest path from an input; the
    output last), ``y`` its place within the layer (centred on 0, first node on top).
    """
    cell_names = tuple(getattr(space, "cell_names", (None,)))
    cells = []
    for name in cell_names:
        # One-cell spaces take no `cell` argument; multi-cell spaces are asked for each cell by name.
        G = space.to_graph(arch) if len(cell_names) == 1 else space.to_graph(arch, cell=name)
        nodes = [
            {"id": v, "label": str(G.nodes[v].get("label", v)), "role": G.nodes[v].get("role", "intermediate")}
            for v in sorted(G.nodes)
        ]
        edges = [
            {
                "source": u, "target": v, "op": op, "color": op_color(op),
                "label": "" if op == "concat" else op,  # concat is wiring, not an operation
            }
            for u, v, op in G.edges(data="op", default="?")
        ]
        positions = _layered_layout(G, nodes)
        for node in nodes:
            node["x"], node["y"] = positions[node["id"]]
        cells.append({"name": name, "nodes": nodes, "edges": edges})
    return {"space": getattr(space, "name", type(space).__name__), "cells": cells}


def _layered_layout(G, nodes: list[dict]) -> dict:
    """node id -> (layer, row): layer = longest path from an input; the output one past the rest."""
    import networkx as nx

    role = {n["id"]: n["role"] for n in nodes}
    try:
        order = list(nx.topological_sort(G))
    except nx.NetworkXUnfeasible:
        raise ValueError("the cell graph has a cycle; cells must be DAGs (edges from earlier to later nodes)") from None
    layer = {}
    for v in order:  # a node cut off from the inputs (all its edges 'none') still sits right of them
        layer[v] = 0 if role[v] == "input" else max((layer[u] + 1 for u in G.predecessors(v)), default=1)
    last = max([layer[v] for v in order if role[v] != "output"], default=0) + 1
    for v in order:
        if role[v] == "output":  # alone in the last layer, even if some nodes do not feed it
            layer[v] = max(layer[v], last)

    # Rows: sort each layer by the mean row of its predecessors (fewer crossings), then by id.
    row = {}
    for k in sorted(set(layer.values())):
        members = [v for v in sorted(G.nodes) if layer[v] == k]
        def centre(v):
            ys = [row[u] for u in G.predecessors(v) if u in row]
            return -sum(ys) / len(ys) if ys else 0.0
        members.sort(key=centre)  # stable: ties keep id order
        for i, v in enumerate(members):
            row[v] = (len(members) - 1) / 2 - i  # first on top (positive y is up)
    return {v: (float(layer[v]), float(row[v])) for v in layer}


# ============================================================================= renderers


def draw_cell(space, arch, *, backend: str = "auto", ax=None):
    """Draw the cell(s) of `arch` as in the papers' figures.

    backend: "auto" (graphviz when `dot` is installed, else matplotlib), "graphviz" or
    "matplotlib". Returns a `graphviz.Digraph` (shown as SVG in Jupyter; one cluster per cell) or a
    `matplotlib.figure.Figure`. ax: draw into this matplotlib Axes (a sequence of one Axes per cell
    for DARTS genotypes: `ax=(ax_normal, ax_reduce)`); implies the matplotlib backend.
    """
    data = cell_data(space, arch)
    if ax is not None:
        if backend == "graphviz":
            raise ValueError("graphviz cannot draw into a matplotlib Axes; pass ax=None or backend='matplotlib'")
        backend = "matplotlib"
    if _resolve_backend(backend) == "graphviz":
        return _cell_digraph(data)
    return _cell_figure(data, ax)


def cell_image(space, arch, format: str = "svg", backend: str = "auto") -> bytes:
    """The drawing of `arch` as SVG or PNG bytes (for files and ipywidgets.Image)."""
    if format not in ("svg", "png"):
        raise ValueError(f"format must be 'svg' or 'png', not {format!r}")
    drawing = draw_cell(space, arch, backend=backend)
    if hasattr(drawing, "pipe"):  # a graphviz.Digraph
        return drawing.pipe(format=format)
    return _figure_bytes(drawing, format)


def _resolve_backend(backend: str) -> str:
    if backend not in ("auto", "graphviz", "matplotlib"):
        raise ValueError(f"backend must be 'auto', 'graphviz' or 'matplotlib', not {backend!r}")
    if backend == "auto":
        return "graphviz" if has_dot() else "matplotlib"
    if backend == "graphviz" and not has_dot():
        raise RuntimeError(
            "backend='graphviz' needs graphviz's `dot` program, which is not on the PATH. Install it "
            "(`apt-get install graphviz`, `conda install graphviz` or `brew install graphviz`) "
            "or use backend='matplotlib'."
        )
    return backend


def _title(name) -> str:
    return CELL_TITLES.get(name, "" if name in (None, "cell") else f"{name} cell")


# ----------------------------------------------------------------------------- graphviz


def _html_label(label: str) -> str:
    """'c_{k-1}' -> graphviz HTML label c<SUB>k-1</SUB> (as the papers typeset it)."""
    text = label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"_\{([^}]*)\}", r"<SUB>\1</SUB>", text)
    return f"<{text}>"


def _cell_digraph(data: dict):
    import graphviz

    g = graphviz.Digraph(
        name=data["space"],
        graph_attr={"rankdir": "LR", "fontname": "Helvetica", "nodesep": "0.3", "ranksep": "0.6"},
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica", "penwidth": "1.5"},
        edge_attr={"fontname": "Helvetica", "fontsize": "11", "penwidth": "2"},
    )
    previous_output = None
    for cell in data["cells"]:
        prefix = f"{cell['name']}_" if len(data["cells"]) > 1 else ""
        # Clusters (name starts with 'cluster') get a frame and a title: one per DARTS cell.
        with g.subgraph(name=f"cluster_{cell['name'] or 'cell'}") as sub:
            sub.attr(label=_title(cell["name"]), labelloc="t", fontsize="14", style="dashed" if prefix else "invis")
            for node in cell["nodes"]:
                sub.node(f"{prefix}{node['id']}", _html_label(node["label"]), fillcolor=ROLE_COLORS.get(node["role"], "white"))
            for e in cell["edges"]:
                u, v = f"{prefix}{e['source']}", f"{prefix}{e['target']}"
                if e["op"] == "concat":
                    sub.edge(u, v, color=e["color"], penwidth="1", arrowsize="0.6")
                else:
                    sub.edge(u, v, label=e["label"], color=e["color"], fontcolor=e["color"])
            # Invisible edges keep the layers of cell_data when 'none' ops cut a node off: a node
            # with no input still sits right of the inputs, the output right of every node.
            first_input = next((n["id"] for n in cell["nodes"] if n["role"] == "input"), None)
            output = next((n["id"] for n in cell["nodes"] if n["role"] == "output"), None)
            for n in cell["nodes"]:
                if first_input is not None and n["role"] != "input" and all(e["target"] != n["id"] for e in cell["edges"]):
                    sub.edge(f"{prefix}{first_input}", f"{prefix}{n['id']}", style="invis")
                if output is not None and n["role"] != "output" and all(e["source"] != n["id"] for e in cell["edges"]):
                    sub.edge(f"{prefix}{n['id']}", f"{prefix}{output}", style="invis")
        # An invisible edge from one cell's last node (its output) to the next cell's first (an
        # input) puts the clusters side by side instead of stacked.
        if previous_output is not None:
            g.edge(previous_output, f"{prefix}{cell['nodes'][0]['id']}", style="invis")
        previous_output = f"{prefix}{cell['nodes'][-1]['id']}"
    return g


# ----------------------------------------------------------------------------- matplotlib

X_STEP, Y_STEP = 2.8, 1.4   # data units between layers / rows; the gap fits a label like 'sep_conv_3x3'
NODE_W, NODE_H = 0.8, 0.42  # node boxes, data units
LABEL_GAP = 0.34            # vertical room one edge label needs (8 pt text at INCH_PER_UNIT)
INCH_PER_UNIT = 0.6         # scale of the figures draw_cell makes itself


def _cell_figure(data: dict, ax=None):
    cells = data["cells"]
    if ax is None:
        fig = _figure_class()(layout="constrained")
        axes = list(fig.subplots(1, len(cells), squeeze=False)[0])
    else:
        axes = [ax] if hasattr(ax, "plot") else list(ax)
        if len(axes) != len(cells):
            raise ValueError(
                f"this architecture has {len(cells)} cells ({', '.join(str(c['name']) for c in cells)}); "
                f"pass ax as a sequence of {len(cells)} Axes, e.g. ax=(ax_normal, ax_reduce), or ax=None"
            )
    for cell, one_ax in zip(cells, axes):
        _draw_cell_on_axes(cell, one_ax)
    if ax is None:  # one data unit = INCH_PER_UNIT inches, so labels keep their size on any cell
        spans = [(a.get_xlim()[1] - a.get_xlim()[0], a.get_ylim()[1] - a.get_ylim()[0]) for a in axes]
        fig.set_size_inches(INCH_PER_UNIT * sum(w for w, _ in spans) + 0.3 * len(axes),
                            INCH_PER_UNIT * max(h for _, h in spans) + 0.5)
    return axes[0].figure


def _draw_cell_on_axes(cell: dict, ax) -> None:
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    pos = {n["id"]: (n["x"] * X_STEP, n["y"] * Y_STEP) for n in cell["nodes"]}
    boxes = {}
    for n in cell["nodes"]:
        x, y = pos[n["id"]]
        boxes[n["id"]] = ax.add_patch(FancyBboxPatch(
            (x - NODE_W / 2, y - NODE_H / 2), NODE_W, NODE_H, boxstyle="round,pad=0,rounding_size=0.1",
            facecolor=ROLE_COLORS.get(n["role"], "white"), edgecolor="black", linewidth=1.2, zorder=3,
        ))
        ax.text(x, y, _math_label(n["label"]), ha="center", va="center", fontsize=11, zorder=4)

    rads, points = _edge_routes(cell["edges"], pos)
    for e, rad, (lx, ly) in zip(cell["edges"], rads, points):
        concat = e["op"] == "concat"
        # patchA/patchB clip the arrow at the node boxes, so heads stay visible
        ax.add_patch(FancyArrowPatch(
            pos[e["source"]], pos[e["target"]], patchA=boxes[e["source"]], patchB=boxes[e["target"]],
            connectionstyle=f"arc3,rad={rad:.4f}", arrowstyle="-|>", mutation_scale=9 if concat else 13,
            color=e["color"], linewidth=0.8 if concat else 1.8, zorder=2 if concat else 2.5,
        ))
        if e["label"]:
            ax.text(lx, ly, e["label"], ha="center", va="center", fontsize=8, color=e["color"], zorder=5,
                    bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.85))

    # an arc bulges most at its midpoint: keep that inside the axes too
    bulges = [_curve_point(pos[e["source"]], pos[e["target"]], r, 0.5) for e, r in zip(cell["edges"], rads)]
    xs = [p[0] for p in [*pos.values(), *points]]
    ys = [p[1] for p in [*pos.values(), *points, *bulges]]
    ax.set_xlim(min(xs) - NODE_W, max(xs) + NODE_W)
    ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
    ax.set_aspect("equal")  # arc3 bends in display space; equal aspect keeps _curve_point exact
    ax.axis("off")
    ax.set_title(_title(cell["name"]))


def _curve_point(p1, p2, rad: float, t: float) -> tuple[float, float]:
    """Point t of matplotlib's arc3 curve: a quadratic Bezier whose control point is
    mid + rad * (dy, -dx) (equal aspect keeps data and display directions the same)."""
    (x1, y1), (x2, y2) = p1, p2
    bend = 2 * t * (1 - t) * rad  # how far the curve has moved toward the control point
    return x1 + t * (x2 - x1) + bend * (y2 - y1), y1 + t * (y2 - y1) - bend * (x2 - x1)


def _edge_routes(edges: list[dict], pos: dict) -> tuple[list[float], list[tuple]]:
    """arc3 bend and label point per edge, routed roughly as `dot` does it.

    Edges bend only around nodes in their way. Labels that share a column are spread apart,
    keeping their order, and each edge bends to pass through its label. Parallel edges (NASNet
    feeds one input twice into a node) share a column and so fan out.
    """
    rads, ts = [], []
    for e in edges:
        (x1, _), (x2, _) = pos[e["source"]], pos[e["target"]]
        others = [p for w, p in pos.items() if w not in (e["source"], e["target"])]
        up_first = round(x1 / X_STEP) % 2 == 0  # stacked arcs over a line of nodes alternate sides
        candidates = [0.0] + [s * r for r in (0.25, 0.5, 0.75) for s in ((-1, 1) if up_first else (1, -1))]
        rads.append(next((r for r in candidates if not _curve_hits(pos[e["source"]], pos[e["target"]], r, others)), 0.0))
        ts.append(1 - X_STEP / 2 / (x2 - x1))  # label in the gap before the target: 1/2 for neighbours
    points = [_curve_point(pos[e["source"]], pos[e["target"]], r, t) for e, r, t in zip(edges, rads, ts)]

    columns = {}
    for i, e in enumerate(edges):
        if e["label"]:
            x1, x2 = pos[e["source"]][0], pos[e["target"]][0]
            columns.setdefault(round(x1 + ts[i] * (x2 - x1), 3), []).append(i)
    for members in columns.values():
        members.sort(key=lambda i: -points[i][1])  # top first; stable, so twins keep their order
        for i, y in zip(members, _spread([points[i][1] for i in members], LABEL_GAP)):
            (x1, y1), (x2, y2), t = pos[edges[i]["source"]], pos[edges[i]["target"]], ts[i]
            rads[i] = (y1 + t * (y2 - y1) - y) / (2 * t * (1 - t) * (x2 - x1))  # solve point y == y
            points[i] = _curve_point((x1, y1), (x2, y2), rads[i], t)
    return rads, points


def _curve_hits(p1, p2, rad: float, others: list) -> bool:
    """Does the arc3 curve from p1 to p2 pass over (or near) any of the node centres `others`?"""
    samples = [_curve_point(p1, p2, rad, k / 10) for k in range(1, 10)]
    return any(abs(bx - xw) < NODE_W / 2 + 0.2 and abs(by - yw) < NODE_H / 2 + 0.25
               for bx, by in samples for xw, yw in others)


def _spread(ys: list[float], gap: float) -> list[float]:
    """Push sorted (descending) positions apart until neighbours are `gap` apart; order and mean kept."""
    ys = list(ys)
    for _ in range(200):
        worst = 0.0
        for k in range(len(ys) - 1):
            deficit = gap - (ys[k] - ys[k + 1])
            if deficit > 0:
                ys[k] += deficit / 2
                ys[k + 1] -= deficit / 2
                worst = max(worst, deficit)
        if worst < 1e-6:
            break
    return ys


@functools.cache
def _figure_class():
    """matplotlib's Figure, plus `_repr_png_`: Jupyter shows a bare Figure only as text unless
    pyplot's inline backend was loaded, and we never load pyplot (no GUI, no figures piling up)."""
    from matplotlib.figure import Figure

    class NotebookFigure(Figure):
        def _repr_png_(self):
            return _figure_bytes(self, "png")

    return NotebookFigure


def _figure_bytes(fig, format: str) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=format, bbox_inches="tight", dpi=120)
    return buffer.getvalue()


def _math_label(label: str) -> str:
    """'c_{k-1}' -> '$c_{k-1}$' so matplotlib typesets the subscript."""
    return f"${label}$" if re.fullmatch(r"\w+_\{[^}$]*\}", label) else label
