"""Population replay and anytime curves, checked on hand-built histories; renderers draw them."""
import pytest

from nasnb.history import History, Trial
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import RandomSearch, RegularizedEvolution
from nasnb.viz import best_so_far_data, plot_best_so_far, plot_population, population_data


def hand_history(values, meta=None, infos=None):
    infos = infos or [{} for _ in values]
    trials = [Trial(k, f"arch{k}", {"val_accuracy": v}, 0.0, info) for k, (v, info) in enumerate(zip(values, infos))]
    return History(trials, meta=meta)


FITNESS = [0.5, 0.9, 0.1, 0.7, 0.3, 0.8]  # six trials, population of 3


def test_aging_removes_the_oldest_each_step():
    data = population_data(hand_history(FITNESS), population_size=3, aging=True)
    # births 3, 4, 5 remove 0, 1, 2 in turn: whatever their fitness
    assert data["population"] == [3, 4, 5]
    assert data["alive"] == [False, False, False, True, True, True]
    assert data["removed_at"] == [3, 4, 5, None, None, None]
    assert data["last"]["removed"] == 2 and data["last"]["child"] == 5
    assert data["best_so_far"] == [0.5, 0.9, 0.9, 0.9, 0.9, 0.9]
    assert data["number"] == list(range(6)) and data["fitness"] == FITNESS and data["has_population"]


def test_non_aging_removes_the_worst_even_the_newborn_child():
    data = population_data(hand_history(FITNESS), population_size=3, aging=False)
    # t=3: {0:.5, 1:.9, 2:.1, 3:.7} -> 2 dies; t=4: {0, 1, 3, 4:.3} -> the child 4 dies at once;
    # t=5: {0:.5, 1, 3, 5:.8} -> 0 dies.
    assert data["population"] == [1, 3, 5]
    assert data["alive"] == [False, True, False, True, False, True]
    assert data["removed_at"] == [5, None, 3, None, 4, None]
    assert data["last"]["removed"] == 0


def test_non_aging_breaks_ties_by_age():
    data = population_data(hand_history([0.2, 0.5, 0.2, 0.2]), population_size=2, aging=False)
    # t=2: {0:.2, 1:.5, 2:.2} -> 0 (oldest of the worst); t=3: {1, 2:.2, 3:.2} -> 2
    assert data["population"] == [1, 3] and data["removed_at"] == [2, None, 3, None]


def test_upto_replays_an_earlier_step():
    data = population_data(hand_history(FITNESS), upto=4, population_size=3)
    assert data["number"] == [0, 1, 2, 3] and data["population"] == [1, 2, 3]
    assert data["removed_at"] == [3, None, None, None] and data["last"] == {
        "child": 3, "kind": None, "sampled": [], "parent": None, "parents": [], "removed": 0}
    before_full = population_data(hand_history(FITNESS), upto=2, population_size=3)
    assert before_full["population"] == [0, 1] and before_full["last"]["removed"] is None
    empty = population_data(hand_history(FITNESS), upto=0, population_size=3)
    assert empty["number"] == [] and empty["last"] is None and empty["population"] == []


def test_settings_are_read_from_the_history_meta_and_the_last_step_from_info():
    infos = [{"kind": "random", "sampled": [], "parent": None}] * 3 + [
        {"kind": "mutation", "sampled": [1, 0, 1], "parent": 1},
        {"kind": "mutation", "sampled": [3, 3], "parent": 3},
        {"kind": "crossover", "sampled": [1, 3, 4], "parent": 1, "parents": [1, 3], "recombined": "x"},
    ]
    history = hand_history(FITNESS, meta={"population_size": 3, "aging": False}, infos=infos)
    data = population_data(history)
    assert data["population"] == [1, 3, 5] and data["aging"] is False and data["population_size"] == 3
    assert data["last"] == {"child": 5, "kind": "crossover", "sampled": [1, 3, 4], "parent": 1,
                            "parents": [1, 3], "removed": 0}
    assert data["kind"] == ["random"] * 3 + ["mutation", "mutation", "crossover"]
    assert data["parent"] == [None, None, None, 1, 3, 1]


def test_a_random_search_history_has_no_population():
    space = ToySpace(length=5, options=3)
    history = RandomSearch(space, space.evaluate, seed=0).run(12, progress=False)
    data = population_data(history)
    assert not data["has_population"] and data["population"] == [] and data["aging"] is None
    assert data["alive"] == [False] * 12 and data["removed_at"] == [None] * 12
    assert data["best_so_far"] == history.best_so_far()


def test_replay_matches_the_live_population_of_a_search():
    space = ToySpace(length=8, options=4)
    for aging in (True, False):
        search = RegularizedEvolution(space, space.evaluate, population_size=5, sample_size=2, aging=aging, seed=3)
        live = []
        search.subscribe(lambda trial: live.append(list(search.population)))
        search.run(30, progress=False)
        for t in range(1, 31):
            assert population_data(search.history, upto=t)["population"] == live[t - 1]


def test_upto_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="upto=7"):
        population_data(hand_history(FITNESS), upto=7)


def test_best_so_far_over_runs_is_cut_to_the_shortest():
    data = best_so_far_data([hand_history([0.1, 0.5, 0.3]), hand_history([0.4, 0.2, 0.6, 0.9])])
    assert data["runs"] == 2 and data["trials"] == [1, 2, 3]
    assert data["curves"] == [[0.1, 0.5, 0.5], [0.4, 0.4, 0.6]]
    assert data["mean"] == pytest.approx([0.25, 0.45, 0.55])
    assert data["min"] == [0.1, 0.4, 0.5] and data["max"] == [0.4, 0.5, 0.6]
    with pytest.raises(ValueError, match="at least one"):
        best_so_far_data([])


def test_renderers_return_figures():
    from matplotlib.figure import Figure

    space = ToySpace(length=6, options=4)
    evolution = RegularizedEvolution(space, space.evaluate, population_size=5, crossover_prob=0.5, seed=0)
    evolution.run(25, progress=False)
    random = RandomSearch(space, space.evaluate, seed=0).run(25, progress=False)
    for history, upto in [(evolution.history, None), (evolution.history, 3), (evolution.history, 0), (random, None)]:
        assert isinstance(plot_population(history, upto=upto), Figure)
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_population(evolution.history, ax=ax) is fig
    assert isinstance(plot_best_so_far({"random": [random], "evolution": evolution.history}), Figure)
    assert plot_best_so_far({"evolution": [evolution.history]}, ax=ax) is fig


@pytest.mark.parametrize("fixed_margins", [False, True])
def test_population_legend_sits_outside_the_axes(fixed_margins):
    """The legend used to sit in the upper left, over the first trials: it now covers no data point,
    alone (constrained layout) and in the dashboard's fixed-margin panel."""
    from matplotlib.figure import Figure

    from nasnb.widgets.panels import one_axes

    space = ToySpace(length=6, options=4)
    search = RegularizedEvolution(space, space.evaluate, population_size=5, sample_size=3, seed=1)
    search.run(12, progress=False)
    if fixed_margins:
        fig = Figure(figsize=(7, 4))
        plot_population(search.history, ax=one_axes(fig))
    else:
        fig = plot_population(search.history)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # lays the figure out as saving it would
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    axes_box = ax.get_window_extent(renderer)
    assert legend.x0 > axes_box.x1, "the legend overlaps the plotting area"
    assert legend.x1 <= fig.bbox.x1 + 1, "the legend is cut off at the figure's right edge"
