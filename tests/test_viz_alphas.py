"""alpha_data against records read independently; plot_alphas and LiveAlphas draw those numbers."""
import numpy as np
import pytest
import torch

import nasnb
from nasnb import registry
from nasnb.errors import InvalidValueError
from nasnb.history import History, Step, Trial
from nasnb.spaces import DartsSpace, NB201Space
from nasnb.spaces.nb201 import OPS as NB201_OPS
from nasnb.spaces.ops import DARTS_PRIMITIVES
from nasnb.strategies import DARTS
from nasnb.strategies.reinforce import one_thread
from nasnb.viz import LiveAlphas, alpha_data, plot_alphas
from nasnb.viz.alphas import darts_steps, edge_labels, steps_axis_end

NB201 = NB201Space()
ARCHS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|",
         "|skip_connect~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"]


def softmax_rows(rng, edges, ops, dropped=()):
    """Rows of softmax(α) for random α, with the ops in `dropped` (edge, op) weighing exactly 0."""
    logits = rng.normal(size=(edges, ops))
    for e, o in dropped:
        logits[e, o] = -np.inf
    w = np.exp(logits - logits.max(1, keepdims=True))
    return (w / w.sum(1, keepdims=True)).tolist()


def nb201_history(derived=(0, 0, 1, 1, 0), seed=0, dropped=()):
    """Steps as DARTS on NB201 records them: softmax(α) of the one cell type, the derived arch."""
    rng = np.random.default_rng(seed)
    history = History(meta={"strategy": "DARTS", "space": "nb201", "seed": 0})
    for k, d in enumerate(derived):
        history.append(Step(k, {"val_accuracy": 0.1 * k}, 0.01, {"alphas": {"cell": softmax_rows(rng, 6, 5, dropped)},
                                                                 "derived": ARCHS[d]}, arch=ARCHS[d]))
    return history


def drifting_history(steps, seed=0):
    """Steps whose α move slowly from uniform, as DARTS' do (Adam, lr 3e-4): the weights stay near
    1/5, so the live figure's frame (its axes' ranges) does not change for the first 10 steps."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=(6, 5))
    history = History(meta={"strategy": "DARTS", "space": "nb201", "seed": 0})
    for k in range(steps):
        logits = 0.01 * k * direction
        w = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        history.append(Step(k, {}, 0.01, {"alphas": {"cell": w.tolist()}, "derived": ARCHS[0]}, arch=ARCHS[0]))
    return history


def test_alpha_data_reads_every_step_as_recorded():
    history = nb201_history(dropped=[(2, 1)])
    stack = np.array([r.info["alphas"]["cell"] for r in history])  # (steps, edges, ops), read independently
    for upto in range(1, len(history) + 1):
        data = alpha_data(history, upto=upto)
        assert data["step"] == upto - 1 and data["steps"] == list(range(upto))
        assert data["op_names"] == list(NB201_OPS)
        (cell,) = data["cells"]
        assert cell["name"] == "cell" and cell["edges"] == ["0→1", "0→2", "1→2", "0→3", "1→3", "2→3"]
        np.testing.assert_array_equal(cell["weights"], stack[upto - 1])
        np.testing.assert_array_equal(np.array(cell["trajectory"]), stack[:upto].transpose(1, 2, 0))
        assert cell["strongest"] == stack[upto - 1].argmax(1).tolist()
        assert cell["weights"][2][1] == 0.0  # a dropped op weighs exactly 0, in its place
    # derived: A A B B A; it last changed at the step where the current run began
    assert [alpha_data(history, upto=t)["derived_since"] for t in range(1, 6)] == [0, 0, 2, 2, 4]
    assert alpha_data(history)["derived"] == ARCHS[0] and alpha_data(history, upto=4)["derived"] == ARCHS[1]


def test_alpha_data_of_an_empty_or_trial_only_history_has_no_cells():
    history = History(meta={"space": "nb201"})
    assert alpha_data(history)["cells"] == [] and alpha_data(history)["step"] is None
    history.append(Trial(0, ARCHS[0], {"val_accuracy": 0.5}))
    assert alpha_data(history)["cells"] == []
    assert alpha_data(nb201_history(), upto=0)["derived"] is None


def test_alpha_data_shows_stage_and_tau_when_recorded():
    history = History(meta={"space": "nb201"})
    rows = softmax_rows(np.random.default_rng(1), 6, 5)
    history.append(Step(0, {}, 0.0, {"alphas": {"cell": rows}, "derived": ARCHS[0], "stage": 2, "tau": 4.5}))
    data = alpha_data(history)
    assert (data["stage"], data["tau"]) == (2, 4.5)
    assert alpha_data(nb201_history())["stage"] is None


def test_alpha_data_errors_name_the_argument_and_the_step():
    history = nb201_history()
    with pytest.raises(InvalidValueError, match=r"upto=6.*0\.\.5"):
        alpha_data(history, upto=6)
    with pytest.raises(InvalidValueError, match="upto=-1"):
        alpha_data(history, upto=-1)
    history.append(Step(5, {}, 0.0, {"alphas": {"cell": softmax_rows(np.random.default_rng(0), 5, 5)}}))
    with pytest.raises(InvalidValueError, match="step 0 holds α of shape"):
        alpha_data(history)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 8])
def test_darts_edges_are_counted_and_named_as_the_supernet_orders_them(steps):
    num_edges = sum(i + 2 for i in range(steps))  # node i reads the two inputs and nodes 0..i-1
    assert darts_steps(num_edges) == steps and darts_steps(num_edges + 1) is None
    labels = edge_labels("darts", "normal", num_edges)
    assert labels[:2] == ["c_{k-2}→0", "c_{k-1}→0"] and len(set(labels)) == num_edges
    assert labels[-1] == f"{steps - 2}→{steps - 1}" if steps > 1 else labels[-1] == "c_{k-1}→0"
    into_last = [label for label in labels if label.endswith(f"→{steps - 1}")]
    assert len(into_last) == steps + 1


def test_steps_axis_grows_in_round_steps():
    assert [steps_axis_end(t) for t in (0, 9, 10, 14, 15, 29, 49, 50, 74, 75, 99, 100, 250, 7499)] == \
           [10, 10, 15, 15, 20, 30, 50, 75, 75, 100, 100, 150, 300, 7500]


@pytest.fixture(scope="module")
def darts_run():
    """DARTS, first order, on a 2-node DARTS supernet and a digits subset: 3 steps, with softmax(α)
    and the derived genotype read from the supernet itself after every step (not from the history)."""
    data = nasnb.data.load("digits").subset(train_size=64, val_size=32, seed=0)
    space = DartsSpace(steps=2)
    with one_thread():
        search = DARTS(space, data, order=1, batch_size=16, supernet_kwargs={"C": 4, "layers": 3}, seed=0)
        seen = []
        search.subscribe(lambda record: seen.append(({c: torch.softmax(a.detach(), -1).numpy().copy()
                                                      for c, a in search.net.alpha.items()},
                                                     space.format(search.net.derived()))))
        for _ in range(3):
            search.step()
    return search, seen


def test_alpha_data_of_a_darts_run_equals_the_supernets_own_alpha(darts_run):
    search, seen = darts_run
    for upto in (1, 2, 3):
        data = alpha_data(search.history, upto=upto)
        assert [c["name"] for c in data["cells"]] == ["normal", "reduce"]
        assert data["op_names"] == list(DARTS_PRIMITIVES)
        assert data["cells"][0]["edges"] == ["c_{k-2}→0", "c_{k-1}→0", "c_{k-2}→1", "c_{k-1}→1", "0→1"]
        for cell in data["cells"]:
            np.testing.assert_allclose(cell["weights"], seen[upto - 1][0][cell["name"]], rtol=1e-6)
            for t in range(upto):
                np.testing.assert_allclose(np.array(cell["trajectory"])[:, :, t], seen[t][0][cell["name"]], rtol=1e-6)
        assert data["derived"] == seen[upto - 1][1]
    # α moved (Adam's first step moves every α entry by about its learning rate)
    first, last = (np.array(alpha_data(search.history, upto=t)["cells"][0]["weights"]) for t in (1, 3))
    assert np.abs(first - last).max() > 1e-6


def test_alpha_data_is_the_same_from_a_saved_history(darts_run):
    search, _ = darts_run
    copy = History.from_json(search.history.to_json())  # what a resumed search's history holds
    assert alpha_data(copy) == alpha_data(search.history)


def bars_of(ax):
    return [p.get_height() for p in ax.patches]


def test_plot_alphas_draws_the_weights(darts_run):
    history = nb201_history()
    fig = plot_alphas(history, upto=3)
    bar_ax, line_ax, cell_ax = fig.axes[:3]
    expected = np.array(history[2].info["alphas"]["cell"]).ravel()
    np.testing.assert_allclose(bars_of(bar_ax), expected)
    assert len(line_ax.lines) == 6 * 5 and list(line_ax.lines[0].get_xdata()) == [0, 1, 2]
    assert "step 2" in fig._suptitle.get_text()
    assert cell_ax.patches  # the derived cell, drawn by draw_cell
    search, _ = darts_run
    fig = plot_alphas(search.history)  # space rebuilt from the history alone: DartsSpace(steps=2)
    normal_bars, reduce_bars = fig.axes[0], fig.axes[2]
    np.testing.assert_allclose(bars_of(reduce_bars), np.ravel(search.history[-1].info["alphas"]["reduce"]))
    assert len(normal_bars.patches) == 5 * 8 and len(fig.axes) == 6
    fig = plot_alphas(history, draw_derived=False)
    assert len(fig.axes) == 2


def test_plot_alphas_checks_its_axes():
    from matplotlib.figure import Figure

    axes = Figure().subplots(1, 4)
    with pytest.raises(InvalidValueError, match="2 Axes per cell type"):
        plot_alphas(nb201_history(), ax=axes)
    plot_alphas(nb201_history(), ax=axes[:2])
    assert len(axes[0].patches) == 30


def test_live_alphas_moves_the_same_artists():
    history = drifting_history(12)
    live = LiveAlphas()
    live.render(history, upto=1)
    bars, lines = list(live.bars["cell"]), [list(row) for row in live.lines["cell"]]
    for upto in range(2, 10):  # steps 1..8 stay inside the first x axis (0..10): no full redraw
        png = live.render(history, upto=upto)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert all(a is b for a, b in zip(live.bars["cell"], bars))
        assert all(a is b for row, old in zip(live.lines["cell"], lines) for a, b in zip(row, old))
        np.testing.assert_allclose([b.get_height() for b in bars], np.ravel(history[upto - 1].info["alphas"]["cell"]))
        np.testing.assert_allclose(lines[4][3].get_ydata(), [r.info["alphas"]["cell"][4][3] for r in history[:upto]])
    assert live.full_draws == 1 and live.blits == 8
    live.render(history, upto=12)  # step 11 is past the x axis' end: the frame is drawn again
    assert live.full_draws == 2
    # replaying an earlier step shows its values
    live.render(history, upto=3)
    np.testing.assert_allclose([b.get_height() for b in live.bars["cell"]], np.ravel(history[2].info["alphas"]["cell"]))


def test_live_alphas_pixels_follow_the_data():
    """A blitted frame equals a full drawing of the same step (the background holds no stale bars)."""
    history = drifting_history(4)
    live = LiveAlphas()
    live.render(history, upto=1)
    blitted = live.render(history, upto=3)
    assert live.blits == 1
    fresh = LiveAlphas().render(history, upto=3)
    from PIL import Image
    import io
    a, b = (np.asarray(Image.open(io.BytesIO(png))) for png in (blitted, fresh))
    assert a.shape == b.shape and (a != b).any(axis=-1).mean() < 0.001
    assert (a != np.asarray(Image.open(io.BytesIO(live.render(history, upto=1))))).any()


def test_the_registry_names_the_view():
    assert registry.get("view", "alphas") is plot_alphas


def test_a_darts_history_names_its_op_columns_itself():
    from nasnb.strategies import DARTS

    data = nasnb.data.load("digits").subset(train_size=32, val_size=32)
    search = DARTS(DartsSpace(), data, order=1, supernet_kwargs={"C": 4, "layers": 2}, batch_size=16, device="cpu")
    search.step()
    assert search.history.meta["op_names"] == list(search.net.op_names)
    assert alpha_data(search.history)["op_names"] == list(search.net.op_names)
    search.reset()
    assert search.history.meta["op_names"] == list(search.net.op_names)  # kept by reset
