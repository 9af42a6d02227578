"""The q-table view: its replayed table equals the one the search held after every trial, a
hand-built one-trial history is replayed as computed by hand, and the renderer draws those numbers."""
import pytest

from nasnb.errors import InvalidValueError
from nasnb.history import History, Trial
from nasnb.spaces.layers import LayerSpace
from nasnb.strategies.qlearning import MetaQNN
from nasnb.viz.qtable import qtable_data, plot_qtable

SPACE = LayerSpace(max_depth=3)


def score(arch):
    if arch[-1] == "GAP" and len(arch) == 1:
        raise RuntimeError("no features to average")  # a failed trial: it must never join the memory
    return {"val_accuracy": 0.2 + 0.2 * (len(arch) - 1) - 0.1 * (arch[-1] == "GAP")}


def test_the_replayed_table_is_the_one_the_search_had_after_each_trial():
    search = MetaQNN(SPACE, score, epsilon_schedule=((1.0, 15), (0.3, 25)), replay_batch=30, seed=4)
    held = {0: {}}
    search.subscribe(lambda trial: held.__setitem__(len(search.history),
                                                    {s: dict(row) for s, row in search.q.items()}))
    search.run(40, progress=False)
    assert any(t.state == "failed" for t in search.history)
    for t in (40, 3, 0, 26, 1, 39, 12, 40):  # out of order: the snapshots must not leak between calls
        data = qtable_data(search.history, upto=t)
        assert data["q"] == held[t], t
        assert data["memory"] == sum(trial.ok for trial in search.history[:t])
    data = qtable_data(search.history)
    assert data["epsilon"] == [1.0] * 15 + [0.3] * 25 and data["number"] == list(range(40))
    assert data["failed"] == [t.number for t in search.history if t.state == "failed"]
    assert [r is None for r in data["rewards"]] == [t.state == "failed" for t in search.history]
    state = search.state()
    assert [s["q"] for s in data["path"]] == [s["q"] for s in state["sampled_path"]]


def one_trial_history(replay_batch):
    path = [["0 start", "C", ["C", "SM"]], ["1 C", "SM", ["SM"]]]
    meta = {"alpha": 0.01, "gamma": 1.0, "q_init": 0.5, "replay_batch": replay_batch, "seed": 0}
    trial = Trial(0, "[C, SM]", {"val_accuracy": 0.9}, info={"epsilon": 1.0, "path": path, "greedy": [False, True]})
    return History([trial], metric="val_accuracy", meta=meta)


def test_a_one_trial_history_replayed_by_hand():
    # one memory: every draw is it. First pass: Q(1 C, SM) = 0.99*0.5 + 0.01*0.9 = 0.504,
    # Q(0 start, C) = 0.99*0.5 + 0.01*0.504 = 0.50004
    data = qtable_data(one_trial_history(1))
    assert data["q"] == {"1 C": {"SM": pytest.approx(0.504)}, "0 start": {"C": pytest.approx(0.50004)}}
    # second pass: Q(1 C, SM) = 0.99*0.504 + 0.009 = 0.50796, Q(0 start, C) = 0.99*0.50004 + 0.01*0.50796
    data = qtable_data(one_trial_history(2))
    assert data["q"]["1 C"]["SM"] == pytest.approx(0.50796)
    assert data["q"]["0 start"]["C"] == pytest.approx(0.99 * 0.50004 + 0.01 * 0.50796)
    assert data["path"] == [
        {"state": "0 start", "action": "C", "greedy": False, "actions": ["C", "SM"],
         "q": [pytest.approx(0.99 * 0.50004 + 0.01 * 0.50796), 0.5]},  # SM from the start: never updated
        {"state": "1 C", "action": "SM", "greedy": True, "actions": ["SM"], "q": [pytest.approx(0.50796)]}]
    assert qtable_data(one_trial_history(2), upto=0)["q"] == {} and qtable_data(one_trial_history(2), upto=0)["path"] == []


def test_errors_name_the_problem():
    with pytest.raises(InvalidValueError, match="MetaQNN"):
        qtable_data(History([], metric="val_accuracy"))
    with pytest.raises(InvalidValueError, match="upto"):
        qtable_data(one_trial_history(1), upto=2)


def test_the_renderer_draws_the_path_table_and_the_curves():
    history = one_trial_history(2)
    fig = plot_qtable(history)
    table_ax, curve_ax = fig.axes[:2]
    grid = table_ax.images[0].get_array()
    data = qtable_data(history)
    assert grid.shape == (2, 2) and grid[0, 0] == pytest.approx(data["path"][0]["q"][0])
    assert bool(grid.mask[1, 0]) and grid[1, 1] == pytest.approx(data["q"]["1 C"]["SM"])  # C not allowed after C here
    assert [t.get_text() for t in table_ax.get_yticklabels()] == ["0 start ~", "1 C"]
    assert list(curve_ax.lines[0].get_ydata()) == [1.0]
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert plot_qtable(history, upto=0, ax=ax) is fig and ax.texts[0].get_text() == "no trial yet"


def test_the_html_table_holds_the_paths_q_values_and_marks_the_taken_action():
    import re

    from nasnb.viz.qtable import qtable_html

    data = qtable_data(one_trial_history(2))
    text = qtable_html(data)
    rows = re.findall(r"<tr>(.*?)</tr>", text)
    assert len(rows) == 1 + 2  # the header, then one row per state of the path
    assert re.findall(r"<th[^>]*>([^<]*)</th>", rows[0]) == ["", "C", "SM"]
    first = re.findall(r"<td([^>]*)>([^<]*)</td>", rows[1])
    second = re.findall(r"<td([^>]*)>([^<]*)</td>", rows[2])
    assert [float(v) for _, v in first] == [round(q, 3) for q in data["path"][0]["q"]]
    assert "outline" in first[0][0] and "outline" not in first[1][0]  # C was taken from the start
    assert second[0][1] == "" and "#EEEEEE" in second[0][0]  # C is not allowed after C here
    assert float(second[1][1]) == round(data["q"]["1 C"]["SM"], 3) and "outline" in second[1][0]
    assert "0 start ~" in rows[1] and "1 C ~" not in rows[2]  # the start's action was random
    assert qtable_html(qtable_data(one_trial_history(2), upto=0)) == "<i>no trial yet</i>"


def test_live_qtable_moves_the_curves_and_a_blit_is_the_fresh_picture():
    from nasnb.viz.qtable import LiveQTable

    search = MetaQNN(SPACE, score, epsilon_schedule=((1.0, 15), (0.3, 25)), replay_batch=30, seed=4)
    search.run(40, progress=False)
    live = LiveQTable()
    live.render(search.history, 31)
    blits = live.blits
    for upto in (32, 33, 34):
        png = live.render(search.history, upto)
        data = qtable_data(search.history, upto)
        assert list(live.artists["epsilon"].get_ydata()) == data["epsilon"]
        done = [[n, r] for n, r in zip(data["number"], data["rewards"]) if r is not None]
        assert live.artists["rewards"].get_offsets().tolist() == done
        assert png == LiveQTable().render(search.history, upto)
    assert live.blits == blits + 3
    fresh = LiveQTable()
    for upto in range(1, 41):
        fresh.render(search.history, upto)
    assert fresh.full_draws <= 6 and fresh.full_draws + fresh.blits == 40
