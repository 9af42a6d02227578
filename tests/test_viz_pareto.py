"""The pareto view: objective space, front and hypervolume checked by hand on a hand-built history;
the renderer checked for what it drew; the dashboard panel of an NSGA2 search built, stepped, replayed."""
import math
import struct
import subprocess
import sys

import numpy as np
import pytest

from nasnb import registry
from nasnb.errors import InvalidValueError
from nasnb.history import History, Step, Trial
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import NSGA2
from nasnb.viz.pareto import LivePareto, pareto_data, plot_pareto

OBJ = {"acc": "max", "lat": "min"}


def hand_built_history(meta=True):
    t = lambda n, acc, lat, **kw: Trial(n, f"a{n}", {"acc": acc, "lat": lat}, **kw)  # noqa: E731
    return History([
        t(0, 0.5, 10.0),
        t(1, 0.6, 12.0),
        Trial(2, "a2", {}, state="failed", error="RuntimeError: out of memory"),
        t(3, 0.9, math.nan),  # no finite latency: not placed
        t(4, 0.7, 8.0, state="pruned"),  # would beat 0 and 1: pruned trials are not placed
        Step(5, {"acc": 0.99, "lat": 1.0}),  # a step is not a trial
        t(6, 0.6, 12.0),  # equal to trial 1
        t(7, 0.8, 9.0),  # beats 0, 1 and 6
        t(8, 0.95, 20.0),
    ], metric="acc", meta={"objectives": OBJ} if meta else {})


def test_every_placed_trial_the_front_and_the_excluded():
    d = pareto_data(hand_built_history())
    assert d["objectives"] == OBJ and d["names"] == ["acc", "lat"]
    assert d["number"] == [0, 1, 6, 7, 8]
    assert d["values"] == [[0.5, 10.0], [0.6, 12.0], [0.6, 12.0], [0.8, 9.0], [0.95, 20.0]]
    assert d["on_front"] == [False, False, False, True, True]
    assert d["front"] == [8, 7], "sorted by the first objective, best (highest acc) first"
    assert d["dominated"] == [0, 1, 6]
    assert d["excluded"] == [2, 3, 4], "failed, NaN and pruned trials are not placed; the step is no trial"
    assert d["newest"] == 8 and d["last"] == {"number": 8, "state": "complete"} and d["upto"] == 9


def test_reference_and_hypervolume_after_each_step_by_hand():
    d = pareto_data(hand_built_history())
    # acc: worst 0.5, range 0.45 -> 0.5 - 0.045; lat: worst 20, range 11 -> 20 + 1.1
    assert d["reference"] == pytest.approx([0.455, 21.1])
    r0 = 0.045 * 11.1  # trial 0 alone: (0.5 - 0.455) x (21.1 - 10)
    both = r0 + 0.145 * 9.1 - 0.045 * 9.1  # + trial 1's box - their overlap
    with7 = 0.345 * 12.1  # trial 7 dominates 0 and 1: its box alone
    with8 = with7 + 0.15 * 1.1  # trial 8 adds the strip acc 0.8..0.95, lat 20..21.1
    assert d["hypervolume"] == pytest.approx([r0, both, both, both, both, both, both, with7, with8])
    # the staircase bounding what the front dominates, from the reference's edge to its other edge
    np.testing.assert_allclose(d["staircase"], [[0.95, 21.1], [0.95, 20.0], [0.8, 20.0], [0.8, 9.0], [0.455, 9.0]])


@pytest.mark.parametrize("upto, front, excluded", [(0, [], []), (1, [0], []), (2, [1, 0], []), (5, [1, 0], [2, 3, 4]),
                                                   (7, [1, 6, 0], [2, 3, 4]), (8, [7], [2, 3, 4])])
def test_upto_replays_the_first_records(upto, front, excluded):
    d = pareto_data(hand_built_history(), upto=upto)
    assert d["front"] == front and d["excluded"] == excluded and d["upto"] == upto
    assert len(d["hypervolume"]) == upto
    assert d["newest"] == ({1: 0, 2: 1, 7: 6, 8: 7}.get(upto)), "a failed / pruned / step last record: no newest"


def test_reference_is_fixed_per_call_from_the_trials_so_far():
    d = pareto_data(hand_built_history(), upto=2)  # trials 0 (0.5, 10) and 1 (0.6, 12)
    assert d["reference"] == pytest.approx([0.49, 12.2])
    r0 = 0.01 * 2.2
    assert d["hypervolume"] == pytest.approx([r0, r0 + 0.11 * 0.2 - 0.01 * 0.2])
    given = pareto_data(hand_built_history(), upto=2, reference={"lat": 15.0, "acc": 0.0})
    assert given["reference"] == [0.0, 15.0]
    assert given["hypervolume"] == pytest.approx([0.5 * 5, 0.5 * 5 + 0.6 * 3 - 0.5 * 3])


def test_directions_flipped_minimise_the_first_and_maximise_the_second():
    d = pareto_data(hand_built_history(), {"acc": "min", "lat": "max"})
    # low acc and high lat are good now: 7 (0.8, 9) is beaten by 0 (0.5, 10); the others stand
    assert d["front"] == [0, 1, 6, 8] and d["dominated"] == [7]
    assert d["reference"] == pytest.approx([0.95 + 0.045, 9.0 - 1.1])
    assert d["hypervolume"][0] == pytest.approx(0.495 * 2.1)


def test_objectives_default_to_the_meta_else_the_metric():
    assert pareto_data(hand_built_history(meta=False))["objectives"] == {"acc": "max"}
    d = pareto_data(hand_built_history(meta=False))
    assert d["front"] == [8] and d["staircase"] == []
    equal = History([Trial(0, "a", {"acc": 0.5}), Trial(1, "b", {"acc": 0.5})], metric="acc")
    assert pareto_data(equal)["reference"] == pytest.approx([0.5 - 0.1 * 1.0]), "equal values: range max(|worst|, 1)"
    slow = History([Trial(0, "a", {"ms": 50.0}), Trial(1, "b", {"ms": 50.0})], metric="ms")
    assert pareto_data(slow, {"ms": "min"})["reference"] == pytest.approx([50.0 + 0.1 * 50.0])


def test_bad_input_names_the_argument():
    with pytest.raises(InvalidValueError, match="upto=10"):
        pareto_data(hand_built_history(), upto=10)
    with pytest.raises(InvalidValueError, match=r"reference=\[1.0\] must give one finite number per objective"):
        pareto_data(hand_built_history(), reference=[1.0])
    with pytest.raises(InvalidValueError, match=r"objectives\['acc'\] is 'up'"):
        pareto_data(hand_built_history(), {"acc": "up"})


def test_plot_pareto_draws_front_dominated_newest_and_the_curve():
    from matplotlib.figure import Figure

    fig = plot_pareto(hand_built_history())
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    space, curve = fig.axes
    labels = space.get_legend_handles_labels()[1]
    assert labels == ["dominated (3)", "front (2)", "reference", "newest"]
    points = {label: c.get_offsets().tolist() for c, label in zip(space.collections, labels)}
    assert points["front (2)"] == [[0.95, 20.0], [0.8, 9.0]] and points["newest"] == [[0.95, 20.0]]
    assert space.collections[0].get_alpha() < 1, "dominated points are faded"
    assert space.get_title() == "5 trials, 3 not placed"
    np.testing.assert_allclose(curve.lines[0].get_ydata()[-1], 4.3395)
    one = Figure().add_subplot()
    assert plot_pareto(hand_built_history(), upto=2, ax=one) is one.figure and len(one.figure.axes) == 1


def test_three_objectives_show_the_first_two_without_staircase():
    rows = [(0.5, 10.0, 3.0), (0.6, 12.0, 1.0), (0.4, 11.0, 5.0)]  # 2 beats nothing; 1 dominated by 0 in 2-D only
    h = History([Trial(k, f"a{k}", dict(zip("abc", r))) for k, r in enumerate(rows)], metric="a")
    obj = {"a": "max", "b": "min", "c": "min"}
    d = pareto_data(h, obj)
    assert d["front"] == [1, 0] and d["dominated"] == [2] and d["staircase"] == []
    assert "front on 3 objectives, first two shown" in plot_pareto(h, objectives=obj).axes[0].get_title()


def test_registered_and_drawn_without_pyplot():
    assert registry.get("view", "pareto") is plot_pareto
    code = (
        "import sys\n"
        "from nasnb.history import History, Trial\n"
        "from nasnb.viz.pareto import LivePareto, plot_pareto\n"
        "h = History([Trial(0, 'a', {'acc': 0.5, 'lat': 3.0}), Trial(1, 'b', {'acc': 0.7, 'lat': 5.0})],\n"
        "            metric='acc')\n"
        "plot_pareto(h, objectives={'acc': 'max', 'lat': 'min'}).savefig(__import__('io').BytesIO(), format='png')\n"
        "LivePareto().render(h, 2)\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def test_live_pareto_moves_the_hand_computed_points_and_blits_what_a_full_draw_draws():
    h = hand_built_history()
    live = LivePareto()
    pngs = [live.render(h, t) for t in range(1, 10)]
    a = live.artists
    assert a["front"].get_offsets().tolist() == [[0.95, 20.0], [0.8, 9.0]]
    assert a["dominated"].get_offsets().tolist() == [[0.5, 10.0], [0.6, 12.0], [0.6, 12.0]]
    assert a["newest"].get_offsets().tolist() == [[0.95, 20.0]]
    np.testing.assert_allclose(a["reference"].get_offsets(), [[0.455, 21.1]])
    np.testing.assert_allclose(np.asarray(a["curve"].get_ydata())[[0, 1, 7, 8]], [0.4995, 1.4095, 4.1745, 4.3395])
    assert live.blits > 0 and live.full_draws < 9
    assert live.caption(live.data(h, 9)) == "5 trials, 3 not placed; front 2; hypervolume 4.34 (reference 0.455, 21.1)"
    for t in (3, 9):  # a blitted step looks as a figure drawn afresh at that step
        assert LivePareto().render(h, t) == pngs[t - 1]


def test_pareto_panel_is_live_and_falls_back_to_a_two_axes_plot_panel(monkeypatch):
    pytest.importorskip("ipywidgets")
    from nasnb.widgets import PlotPanel, make_panel
    from nasnb.widgets import panels as panels_module
    from nasnb.widgets.live_panels import LivePanel

    panel = make_panel("pareto")
    assert isinstance(panel, LivePanel) and panel.live_class == "nasnb.viz.pareto:LivePareto"
    monkeypatch.setattr(panels_module, "LIVE_PANELS", {})
    panel = make_panel("pareto")
    assert isinstance(panel, PlotPanel) and panel.figsize == (9, 4) and panel.resolve() is plot_pareto
    from matplotlib.figure import Figure

    assert len(panel.axes(Figure())) == 2


def toy_nsga2(seed=0):
    space = ToySpace(length=4, options=3)

    def evaluate(arch):
        return {"val_accuracy": space.score(arch), "cost": sum(int(op[2:]) for op in arch)}

    return NSGA2(space, evaluate, objectives={"val_accuracy": "max", "cost": "min"}, population_size=4, seed=seed)


def test_dashboard_of_nsga2_shows_the_pareto_panel_and_its_slider_replays():
    pytest.importorskip("ipywidgets")
    from nasnb.widgets import Dashboard

    search = toy_nsga2()
    dash = Dashboard(search)
    assert tuple(dash.panels) == NSGA2.panels == ("cell", "pareto")
    panel = dash.panels["pareto"]
    views = []
    for _ in range(6):
        dash.step_button.click()
        views.append(bytes(panel.image.value))
    assert dash.error_text == "" and len(search.history) == 6
    assert all(v[:8] == b"\x89PNG\r\n\x1a\n" for v in views)
    assert struct.unpack(">II", views[0][16:24]) == (9 * 72, 4 * 72), "the panel's 9 x 4 inch layout"
    assert len(set(views)) == 6, "every step moves the newest star at least"
    history_before = search.history.to_json()
    for t in (2, 5, 1):
        dash.show_step(t)
        assert bytes(panel.image.value) == views[t - 1], f"step {t} does not look as it did when current"
    dash.history_slider.value = 4
    assert bytes(panel.image.value) == views[3]
    assert search.history.to_json() == history_before
    dash.close()
