"""nasnb.viz.cells: cell drawings, checked against the papers' published cells and both renderers."""
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter

import networkx as nx
import pytest

from nasnb import viz
from nasnb.spaces import DartsSpace, NB201Space
from nasnb.spaces.ops import DARTS_OPS, NB201_OPS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NB201_EDGES = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]  # order of the arch string '|a~0|+|b~0|c~1|+|...'
NB201_EXAMPLE = ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")
# DARTS_V2 and NASNet as published in the DARTS code (quark0/darts, cnn/genotypes.py): (op, input) pairs,
# two per intermediate node; inputs 0, 1 are c_{k-2}, c_{k-1}, input j >= 2 is intermediate node j - 2.
DARTS_V2_NORMAL = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                   ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)]
DARTS_V2_REDUCE = [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                   ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)]


@pytest.fixture(scope="module")
def nb201():
    return NB201Space()


@pytest.fixture(scope="module")
def darts():
    return DartsSpace()


def nb201_arch(space, ops):
    return space.parse("|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops))


def require_dot():
    # A failure, not a skip: the project's test script installs graphviz, so a missing `dot` is a broken setup.
    if shutil.which("dot") is None:
        pytest.fail("graphviz's `dot` program is missing: install it with `apt-get install graphviz`, "
                    "`conda install graphviz` or `brew install graphviz` (the project's test script does)")


def edge_triples(cell):
    return Counter((e["source"], e["target"], e["op"]) for e in cell["edges"])


# ----------------------------------------------------------------------------- cell_data


@pytest.mark.parametrize("none_edges", [(), (2,), (0, 5), (0, 1, 2), (0, 1, 2, 3, 4, 5)])
def test_nb201_cell_has_one_edge_per_op_that_is_not_none(nb201, none_edges):
    ops = tuple("none" if i in none_edges else op for i, op in enumerate(NB201_EXAMPLE))
    (cell,) = viz.cell_data(nb201, nb201_arch(nb201, ops))["cells"]
    assert len(cell["edges"]) == 6 - len(none_edges)
    expected = Counter((j, i, op) for (j, i), op in zip(NB201_EDGES, ops) if op != "none")
    assert edge_triples(cell) == expected
    assert [(n["id"], n["label"], n["role"]) for n in cell["nodes"]] == [
        (0, "in", "input"), (1, "1", "intermediate"), (2, "2", "intermediate"), (3, "out", "output")]


def test_darts_v2_cells_match_the_published_genotype(darts):
    data = viz.cell_data(darts, darts.GENOTYPES["DARTS_V2"])
    assert data["space"] == "darts"
    assert [c["name"] for c in data["cells"]] == ["normal", "reduce"]
    for cell, pairs in zip(data["cells"], (DARTS_V2_NORMAL, DARTS_V2_REDUCE)):
        ops = [e for e in cell["edges"] if e["op"] != "concat"]
        concat = [e for e in cell["edges"] if e["op"] == "concat"]
        assert len(ops) == 8 and len(concat) == 4
        assert edge_triples({"edges": ops}) == Counter((j, k // 2 + 2, op) for k, (op, j) in enumerate(pairs))
        assert sorted(e["source"] for e in concat) == [2, 3, 4, 5] and {e["target"] for e in concat} == {6}
        assert [n["label"] for n in cell["nodes"]] == ["c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}"]
        assert all(e["label"] == e["op"] for e in ops) and all(e["label"] == "" for e in concat)


def test_nasnet_parallel_edges_are_both_kept(darts):
    normal, reduce = viz.cell_data(darts, darts.GENOTYPES["NASNet"])["cells"]
    triples = edge_triples(normal)
    assert triples[(0, 5, "avg_pool_3x3")] == 2  # node 3 averages c_{k-2} twice
    assert triples[(0, 3, "sep_conv_5x5")] == 1 and triples[(0, 3, "sep_conv_3x3")] == 1
    assert sum(e["op"] != "concat" for e in normal["edges"]) == 10  # 5 nodes x 2 inputs
    assert sum(e["op"] == "concat" for e in reduce["edges"]) == 3  # reduce_concat = [4, 5, 6]


def all_cells(nb201, darts):
    # NB201 with none edges: node 1 cut off from the input; node 2 not feeding the output; nothing at all
    for none_edges in [(), (0,), (5,), (0, 1, 2, 3, 4, 5)]:
        ops = ["none" if i in none_edges else op for i, op in enumerate(NB201_EXAMPLE)]
        yield from viz.cell_data(nb201, nb201_arch(nb201, ops))["cells"]
    for name in darts.GENOTYPES:
        yield from viz.cell_data(darts, darts.GENOTYPES[name])["cells"]


def test_layout_runs_left_to_right_in_layers(nb201, darts):
    for cell in all_cells(nb201, darts):
        x = {n["id"]: n["x"] for n in cell["nodes"]}
        inputs = [n["x"] for n in cell["nodes"] if n["role"] == "input"]
        (output,) = [n["x"] for n in cell["nodes"] if n["role"] == "output"]
        others = [n["x"] for n in cell["nodes"] if n["role"] != "input"]
        assert set(inputs) == {0.0} and min(others) > 0
        assert output == max(x.values()) and sorted(x.values()).count(output) == 1
        assert all(x[e["source"]] < x[e["target"]] for e in cell["edges"])
        positions = [(n["x"], n["y"]) for n in cell["nodes"]]
        assert len(set(positions)) == len(positions), "two nodes share a position"


def test_layer_is_the_longest_path_from_an_input(darts):
    # DARTS_V2 normal: nodes 0, 1, 2 read only inputs (layer 1); node 3 reads node 0 (layer 2); c_{k} last.
    normal = viz.cell_data(darts, darts.GENOTYPES["DARTS_V2"])["cells"][0]
    assert [n["x"] for n in normal["nodes"]] == [0, 0, 1, 1, 1, 2, 3]


def test_cell_data_is_deterministic(darts):
    g = darts.GENOTYPES["NASNet"]
    assert viz.cell_data(darts, g) == viz.cell_data(darts, g)


@pytest.mark.parametrize("op", sorted(set(NB201_OPS) | set(DARTS_OPS)))
def test_every_registered_op_has_its_own_colour(op):
    import matplotlib.colors

    assert op in viz.OP_COLORS and matplotlib.colors.is_color_like(viz.OP_COLORS[op])
    others = {o for o in set(NB201_OPS) | set(DARTS_OPS) | {"concat"} if o != op}
    assert viz.OP_COLORS[op] not in {viz.OP_COLORS[o] for o in others}


def test_edges_carry_their_op_colour_and_unknown_ops_fall_back_to_grey(darts):
    for cell in viz.cell_data(darts, darts.GENOTYPES["AmoebaNet"])["cells"]:
        assert all(e["color"] == viz.OP_COLORS[e["op"]] for e in cell["edges"])

    class ToySpace:  # any space that follows the to_graph contract, with an op nobody registered
        name = "toy"

        def to_graph(self, arch):
            G = nx.DiGraph()
            G.add_node("a", label="in", role="input")
            G.add_node("b", label="out", role="output")
            G.add_edge("a", "b", op=arch)
            return G

    (cell,) = viz.cell_data(ToySpace(), "warp_conv_9x9")["cells"]
    assert cell["name"] is None and cell["edges"][0]["color"] == viz.FALLBACK_COLOR
    from matplotlib.colors import to_hex

    (ax,) = viz.draw_cell(ToySpace(), "warp_conv_9x9", backend="matplotlib").axes
    (arrow,) = [p for p in ax.patches if type(p).__name__ == "FancyArrowPatch"]
    assert to_hex(arrow.get_edgecolor()) == viz.FALLBACK_COLOR.lower()  # drawn grey, not skipped
    assert sorted(t.get_text() for t in ax.texts) == ["in", "out", "warp_conv_9x9"]


def test_a_cycle_is_reported():
    class Cyclic:
        name = "cyclic"

        def to_graph(self, arch):
            return nx.DiGraph([(0, 1, {"op": "x"}), (1, 0, {"op": "x"})])

    with pytest.raises(ValueError, match="cycle"):
        viz.cell_data(Cyclic(), None)


# ----------------------------------------------------------------------------- graphviz


def svg_root(data: bytes):
    root = ET.fromstring(data)  # raises on malformed XML
    assert root.tag.endswith("svg")
    return root


def svg_texts(root):
    return [t.text for t in root.iter() if t.tag.endswith("text") and t.text]


def test_graphviz_draws_the_nb201_cell(nb201):
    require_dot()
    import graphviz

    g = viz.draw_cell(nb201, nb201_arch(nb201, NB201_EXAMPLE), backend="graphviz")
    assert isinstance(g, graphviz.Digraph)
    assert all(op in g.source for op in NB201_EXAMPLE)
    texts = Counter(svg_texts(svg_root(g.pipe(format="svg"))))
    assert texts["nor_conv_3x3"] == 3 and texts["skip_connect"] == 2 and texts["avg_pool_3x3"] == 1
    assert {"in", "1", "2", "out"} <= set(texts)


def test_graphviz_draws_both_darts_cells_side_by_side(darts):
    require_dot()
    g = viz.draw_cell(darts, darts.GENOTYPES["DARTS_V2"], backend="graphviz")
    assert "cluster_normal" in g.source and "cluster_reduce" in g.source
    texts = Counter(svg_texts(svg_root(g.pipe(format="svg"))))
    assert texts["normal cell"] == 1 and texts["reduction cell"] == 1
    expected = Counter(op for op, _ in DARTS_V2_NORMAL + DARTS_V2_REDUCE)  # every op edge labelled, concat not
    assert {op: texts[op] for op in expected} == dict(expected) and texts["concat"] == 0
    assert viz.cell_image(darts, darts.GENOTYPES["DARTS_V2"], format="png", backend="graphviz")[:8] == PNG_SIGNATURE


def test_auto_uses_graphviz_when_dot_exists(nb201):
    require_dot()
    assert viz.has_dot()
    assert type(viz.draw_cell(nb201, nb201_arch(nb201, NB201_EXAMPLE))).__name__ == "Digraph"


# ----------------------------------------------------------------------------- matplotlib


def test_matplotlib_draws_each_cell_on_its_own_axes(nb201, darts):
    from matplotlib.figure import Figure

    fig = viz.draw_cell(nb201, nb201_arch(nb201, NB201_EXAMPLE), backend="matplotlib")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    fig = viz.draw_cell(darts, darts.GENOTYPES["DARTS_V2"], backend="matplotlib")
    assert [ax.get_title() for ax in fig.axes] == ["normal cell", "reduction cell"]
    for ax, pairs in zip(fig.axes, (DARTS_V2_NORMAL, DARTS_V2_REDUCE)):
        labels = Counter(t.get_text() for t in ax.texts)
        assert {op: labels[op] for op, _ in pairs} == dict(Counter(op for op, _ in pairs))
        assert len(ax.patches) == 7 + 12  # 7 node boxes, 8 op arrows + 4 concat arrows
    assert fig._repr_png_()[:8] == PNG_SIGNATURE  # Jupyter shows it without pyplot's inline backend


def test_matplotlib_edge_labels_never_overlap(nb201, darts):
    archs = [(nb201, nb201_arch(nb201, NB201_EXAMPLE)), (darts, darts.GENOTYPES["DARTS_V2"]),
             (darts, darts.GENOTYPES["NASNet"])]
    for space, arch in archs:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = viz.draw_cell(space, arch, backend="matplotlib")
        canvas = FigureCanvasAgg(fig)
        canvas.draw()  # lays the figure out, as saving it would
        renderer = canvas.get_renderer()
        for ax in fig.axes:
            ops = {e for e in viz.OP_COLORS if e != "concat"}
            boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text() in ops]
            for i, a in enumerate(boxes):
                for b in boxes[i + 1:]:
                    assert not a.overlaps(b), f"{space.name} {ax.get_title()}: two edge labels overlap"


def test_auto_falls_back_to_matplotlib_without_dot(nb201, darts, monkeypatch):
    from matplotlib.figure import Figure

    monkeypatch.setattr(shutil, "which", lambda name: None)  # a machine without graphviz
    assert not viz.has_dot()
    fig = viz.draw_cell(nb201, nb201_arch(nb201, NB201_EXAMPLE))
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert len(ax.patches) == 4 + 6  # 4 node boxes, one arrow per edge
    assert {op: n for op, n in Counter(t.get_text() for t in ax.texts).items() if op in NB201_OPS} == \
        dict(Counter(NB201_EXAMPLE))
    fig = viz.draw_cell(darts, darts.GENOTYPES["NASNet"])
    assert isinstance(fig, Figure) and [ax.get_title() for ax in fig.axes] == ["normal cell", "reduction cell"]
    # NASNet-A: 2 inputs, 5 nodes, 1 output; 10 op edges per cell; the normal cell concatenates all 5
    # nodes, the reduction cell only the 3 that no other node reads (DARTS' reduce_concat=[4, 5, 6])
    assert [len(ax.patches) for ax in fig.axes] == [8 + 10 + 5, 8 + 10 + 3]
    assert viz.cell_image(darts, darts.GENOTYPES["DARTS_V2"], format="png")[:8] == PNG_SIGNATURE
    svg_root(viz.cell_image(nb201, nb201_arch(nb201, NB201_EXAMPLE), format="svg"))
    with pytest.raises(RuntimeError, match=r"apt-get install graphviz.*backend='matplotlib'"):
        viz.draw_cell(nb201, nb201_arch(nb201, NB201_EXAMPLE), backend="graphviz")


def test_drawing_into_given_axes(nb201, darts):
    from matplotlib.figure import Figure

    fig = Figure()
    ax_a, ax_b = fig.subplots(1, 2)
    assert viz.draw_cell(nb201, nb201_arch(nb201, NB201_EXAMPLE), ax=ax_a) is fig
    assert len(ax_a.patches) == 4 + 6 and len(ax_b.patches) == 0  # drawn where it was told, nowhere else
    fig = Figure()
    ax_a, ax_b = fig.subplots(1, 2)
    assert viz.draw_cell(darts, darts.GENOTYPES["DARTS_V2"], ax=(ax_a, ax_b)) is fig
    assert [ax.get_title() for ax in (ax_a, ax_b)] == ["normal cell", "reduction cell"]
    assert len(ax_a.patches) == len(ax_b.patches) == 7 + 12 and len(fig.axes) == 2
    with pytest.raises(ValueError, match="2 cells.*sequence of 2 Axes"):
        viz.draw_cell(darts, darts.GENOTYPES["DARTS_V2"], ax=ax_a)
    with pytest.raises(ValueError, match="backend='matplotlib'"):
        viz.draw_cell(nb201, nb201_arch(nb201, NB201_EXAMPLE), backend="graphviz", ax=ax_a)


def test_bad_arguments_name_the_choices(nb201):
    arch = nb201_arch(nb201, NB201_EXAMPLE)
    with pytest.raises(ValueError, match="'svg' or 'png'"):
        viz.cell_image(nb201, arch, format="jpg")
    with pytest.raises(ValueError, match="'auto', 'graphviz' or 'matplotlib'"):
        viz.draw_cell(nb201, arch, backend="plotly")


def test_importing_viz_loads_no_plotting_library():
    code = "import sys, nasnb.viz; print([m for m in ('matplotlib', 'graphviz') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
