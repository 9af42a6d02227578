"""Progress, population replay and anytime curves, checked on hand-built histories and against the
live strategy; the renderers are checked for what they drew (points per group, line data, legend)."""
import math

import pytest

from nasnb import registry
from nasnb.history import History, Step, Trial
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import RandomSearch, RegularizedEvolution
from nasnb.viz import (
    best_so_far_data, plot_best_so_far, plot_population, plot_progress, population_data, progress_data,
)
from flaky import Flaky

FAILED, PRUNED = "failed", "pruned"


def hand_history(values, meta=None, infos=None):
    """A Trial per value: a number is a complete trial, FAILED a failed one, ("pruned", v) a pruned
    one with partial value v, ("step", v) a one-shot Step."""
    infos = infos or [{} for _ in values]
    records = []
    for k, (v, info) in enumerate(zip(values, infos)):
        if v == FAILED:
            records.append(Trial(k, f"arch{k}", {}, 0.0, info, state="failed", error="RuntimeError: out of memory"))
        elif isinstance(v, tuple) and v[0] == PRUNED:
            records.append(Trial(k, f"arch{k}", {"val_accuracy": v[1]}, 0.0, info, state="pruned"))
        elif isinstance(v, tuple) and v[0] == "step":
            records.append(Step(k, {"val_accuracy": v[1]}, 0.0, info))
        else:
            records.append(Trial(k, f"arch{k}", {"val_accuracy": v}, 0.0, info))
    return History(records, meta=meta)


FITNESS = [0.5, 0.9, 0.1, 0.7, 0.3, 0.8]  # six trials, population of 3
# trial 1 fails, trial 3 is pruned with a partial value above every complete one
MIXED = [0.5, FAILED, 0.9, (PRUNED, 0.95), 0.1, 0.7]


# ----------------------------------------------------------------------------- population_data


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


@pytest.mark.parametrize("aging, population, removed_at", [
    # joins: 0, 2, 4, 5 (1 failed, 3 pruned). aging: 4 arrives -> 0 dies; 5 arrives -> 2 dies.
    (True, [4, 5], [4, None, 5, None, None, None]),
    # non-aging: 4 arrives in {0:.5, 2:.9, 4:.1} -> 4 dies at once; 5 in {0:.5, 2:.9, 5:.7} -> 0 dies.
    (False, [2, 5], [5, None, None, None, 4, None]),
])
def test_failed_and_pruned_trials_never_join_the_population(aging, population, removed_at):
    data = population_data(hand_history(MIXED), population_size=2, aging=aging)
    assert data["population"] == population and data["removed_at"] == removed_at
    assert data["failed"] == [1] and data["pruned"] == [3]
    assert data["state"] == ["complete", "failed", "complete", "pruned", "complete", "complete"]
    assert data["fitness"] == [0.5, None, 0.9, None, 0.1, 0.7]  # only complete trials are ranked
    assert data["value"] == [0.5, None, 0.9, 0.95, 0.1, 0.7]  # where they are drawn: a pruned one at its partial value
    assert data["best_so_far"] == [0.5, 0.5, 0.9, 0.9, 0.9, 0.9]  # the pruned 0.95 is never the best
    assert not data["alive"][1] and not data["alive"][3]
    assert data["error"][1] == "RuntimeError: out of memory" and data["error"][0] is None


def test_a_failed_last_child_removes_nobody():
    data = population_data(hand_history([0.5, 0.9, FAILED]), population_size=2)
    assert data["population"] == [0, 1] and data["last"]["removed"] is None
    assert data["last"]["state"] == "failed" and data["last"]["child"] == 2


def test_best_so_far_is_none_before_the_first_complete_trial():
    data = population_data(hand_history([FAILED, (PRUNED, 0.8), 0.3, 0.2]), population_size=2)
    assert data["best_so_far"] == [None, None, 0.3, 0.3]
    assert data["population"] == [2, 3]


def test_upto_replays_an_earlier_step():
    data = population_data(hand_history(FITNESS), upto=4, population_size=3)
    assert data["number"] == [0, 1, 2, 3] and data["population"] == [1, 2, 3]
    assert data["removed_at"] == [3, None, None, None] and data["last"] == {
        "child": 3, "state": "complete", "kind": None, "sampled": [], "parent": None, "parents": [], "removed": 0}
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
    assert data["last"] == {"child": 5, "state": "complete", "kind": "crossover", "sampled": [1, 3, 4],
                            "parent": 1, "parents": [1, 3], "removed": 0}
    assert data["kind"] == ["random"] * 3 + ["mutation", "mutation", "crossover"]
    assert data["parent"] == [None, None, None, 1, 3, 1]


def test_a_random_search_history_has_no_population():
    space = ToySpace(length=5, options=3)
    history = RandomSearch(space, space.evaluate, seed=0).run(12, progress=False)
    data = population_data(history)
    assert not data["has_population"] and data["population"] == [] and data["aging"] is None
    assert data["alive"] == [False] * 12 and data["removed_at"] == [None] * 12
    assert data["best_so_far"] == history.best_so_far()


@pytest.mark.parametrize("aging", [True, False])
@pytest.mark.parametrize("evaluator", ["exact", "flaky"])
def test_replay_matches_the_live_population_of_a_search(aging, evaluator):
    space = ToySpace(length=8, options=4)
    evaluate = space.evaluate if evaluator == "exact" else Flaky(space)
    search = RegularizedEvolution(space, evaluate, population_size=5, sample_size=2, aging=aging, seed=3)
    live = []
    search.subscribe(lambda record: live.append(list(search.population)))
    search.run(30, progress=False)
    if evaluator == "flaky":
        assert search.history.count("failed") >= 10  # the replay really had failures to skip
    for t in range(1, 31):
        assert population_data(search.history, upto=t)["population"] == live[t - 1]
    data = population_data(search.history)
    assert data["population"] == [m["number"] for m in search.state()["population"]]
    assert data["failed"] == [t.number for t in search.history if t.state == "failed"]
    assert [data["fitness"][n] for n in data["population"]] == [m["fitness"] for m in search.state()["population"]]


def test_upto_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="upto=7"):
        population_data(hand_history(FITNESS), upto=7)


# ----------------------------------------------------------------------------- progress_data


def test_progress_lists_every_record_kind():
    data = progress_data(hand_history([("step", 0.2), FAILED, ("step", 0.4), 0.3, (PRUNED, 0.9)]))
    assert data["state"] == ["step", "failed", "step", "complete", "pruned"]
    assert data["value"] == [0.2, None, 0.4, 0.3, 0.9]
    assert data["best_so_far"] == [None, None, None, 0.3, 0.3]  # steps are not trials: never the best
    assert data["counts"] == {"complete": 1, "failed": 1, "pruned": 1, "step": 2}
    assert data["failed"] == [1] and data["pruned"] == [4] and data["last"] == 4
    assert progress_data(hand_history([0.1, 0.2]), upto=0)["last"] is None


def test_a_nan_metric_is_none_not_nan():
    history = History([Trial(0, "a", {"val_accuracy": float("nan")}, state="failed", error="NaN"),
                       Step(1, {"val_accuracy": float("inf")}), Trial(2, "b", {"val_accuracy": 0.5})])
    data = progress_data(history)
    assert data["value"] == [None, None, 0.5] and data["best_so_far"] == [None, None, 0.5]


# ----------------------------------------------------------------------------- best_so_far_data


def test_best_so_far_over_runs_is_cut_to_the_shortest():
    data = best_so_far_data([hand_history([0.1, 0.5, 0.3]), hand_history([0.4, 0.2, 0.6, 0.9])])
    assert data["runs"] == 2 and data["trials"] == [1, 2, 3]
    assert data["curves"] == [[0.1, 0.5, 0.5], [0.4, 0.4, 0.6]]
    assert data["mean"] == pytest.approx([0.25, 0.45, 0.55])
    assert data["min"] == [0.1, 0.4, 0.5] and data["max"] == [0.4, 0.5, 0.6]
    with pytest.raises(ValueError, match="at least one"):
        best_so_far_data([])


def test_best_so_far_statistics_skip_runs_without_a_complete_trial_yet():
    runs = [hand_history([FAILED, 0.3, 0.2, 0.6]),  # curve None, 0.3, 0.3, 0.6
            hand_history([0.5, FAILED, 0.4, 0.1]),  # curve 0.5, 0.5, 0.5, 0.5
            hand_history([FAILED, FAILED, (PRUNED, 0.9), FAILED])]  # never a complete trial
    data = best_so_far_data(runs)
    assert data["curves"] == [[None, 0.3, 0.3, 0.6], [0.5, 0.5, 0.5, 0.5], [None] * 4]
    assert data["counted"] == [1, 2, 2, 2]
    assert data["mean"] == pytest.approx([0.5, 0.4, 0.4, 0.55])
    assert data["min"] == [0.5, 0.3, 0.3, 0.5] and data["max"] == [0.5, 0.5, 0.5, 0.6]
    nothing = best_so_far_data([runs[2]])
    assert nothing["mean"] == nothing["min"] == nothing["max"] == [None] * 4 and nothing["counted"] == [0] * 4


# ----------------------------------------------------------------------------- renderers


def by_label(ax) -> dict:
    """The Axes' scatter collections and lines by their legend label."""
    return {artist.get_label(): artist for artist in [*ax.collections, *ax.lines]}


def xs(collection) -> list:
    return [float(x) for x, _ in collection.get_offsets()]


def legend_texts(ax) -> list:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_population_draws_each_group_once_and_failed_along_the_bottom():
    infos = [{"kind": "random"}] * 5 + [{"kind": "mutation", "sampled": [2, 4, 2], "parent": 2}]
    history = hand_history(MIXED, meta={"population_size": 2, "aging": True}, infos=infos)
    fig = plot_population(history)
    ax = fig.axes[0]
    drawn = by_label(ax)
    # aging, population 2: alive 4 and 5; removed 0 and 2; failed 1; pruned 3 (hand replay above)
    assert xs(drawn["alive (2)"]) == [4, 5] and xs(drawn["removed (2)"]) == [0, 2]
    assert xs(drawn["failed (1)"]) == [1] and xs(drawn["pruned (1)"]) == [3]
    assert [float(y) for _, y in drawn["pruned (1)"].get_offsets()] == [0.95]
    failed = drawn["failed (1)"]
    assert failed.get_offset_transform() is ax.get_xaxis_transform()  # y in axes coordinates: the bottom edge
    assert [float(y) for _, y in failed.get_offsets()] == [pytest.approx(0.03)]
    assert xs(drawn["sampled (3 draws)"]) == [2, 4] and xs(drawn["parent"]) == [2]
    assert xs(drawn["removed just now"]) == [2] and xs(drawn["child (newest)"]) == [5]
    best = drawn["best so far"]
    assert list(best.get_xdata()) == [0, 1, 2, 3, 4, 5] and list(best.get_ydata()) == [0.5, 0.5, 0.9, 0.9, 0.9, 0.9]
    assert {"alive (2)", "removed (2)", "failed (1)", "pruned (1)", "best so far"} <= set(legend_texts(ax))
    assert "1 failed" in ax.get_title()
    assert ax.get_xlim()[0] < 0 and ax.get_xlim()[1] > 5  # the failed x at 1 and the newest at 5 are inside


def test_plot_population_of_a_failed_child_marks_it_at_the_bottom():
    infos = [{}] * 2 + [{"kind": "mutation", "sampled": [1], "parent": 1}]
    history = hand_history([0.5, 0.9, FAILED], meta={"population_size": 2, "aging": True}, infos=infos)
    ax = plot_population(history).axes[0]
    drawn = by_label(ax)
    child = drawn["child (failed)"]
    assert xs(child) == [2] and child.get_offset_transform() is ax.get_xaxis_transform()
    assert "removed just now" not in drawn and xs(drawn["alive (2)"]) == [0, 1]


def test_plot_progress_draws_trials_failures_steps_and_the_best_line():
    history = hand_history([FAILED, 0.4, 0.2, FAILED, 0.7, (PRUNED, 0.1)])
    ax = plot_progress(history).axes[0]
    drawn = by_label(ax)
    assert xs(drawn["trials (3)"]) == [1, 2, 4] and [float(y) for _, y in drawn["trials (3)"].get_offsets()] == \
        [0.4, 0.2, 0.7]
    assert xs(drawn["failed (2)"]) == [0, 3] and xs(drawn["pruned (1)"]) == [5]
    best = drawn["best so far"]  # starts at the first complete trial: nothing before it
    assert list(best.get_xdata()) == [1, 2, 3, 4, 5] and list(best.get_ydata()) == [0.4, 0.4, 0.4, 0.7, 0.7]
    assert xs(drawn["newest"]) == [5]
    assert ax.get_title() == "6 trials, 2 failed, 1 pruned"

    steps = hand_history([("step", 0.1), ("step", 0.3), ("step", 0.25)])
    ax = plot_progress(steps, upto=2).axes[0]
    line = by_label(ax)["steps (2)"]
    assert list(line.get_xdata()) == [0, 1] and list(line.get_ydata()) == [0.1, 0.3]
    assert "best so far" not in by_label(ax) and ax.get_title() == "2 steps"


def test_plot_population_without_a_population_is_the_progress_view():
    space = ToySpace(length=5, options=3)
    history = RandomSearch(space, space.evaluate, seed=0).run(7, progress=False)
    ax = plot_population(history).axes[0]
    assert xs(by_label(ax)["trials (7)"]) == list(range(7))
    assert list(by_label(ax)["best so far"].get_ydata()) == history.best_so_far()


def test_renderers_draw_into_given_axes_and_before_any_trial():
    from matplotlib.figure import Figure

    history = hand_history(FITNESS, meta={"population_size": 3, "aging": True})
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_population(history, ax=ax) is fig and plot_progress(history, ax=fig.add_subplot()) is fig
    empty = plot_population(history, upto=0).axes[0]
    assert xs(by_label(empty)["alive (0)"]) == [] and "best so far" not in by_label(empty)
    assert plot_progress(History()).axes[0].get_title() == "no records yet"


def test_plot_best_so_far_draws_the_mean_from_the_first_value_and_the_band():
    runs = [hand_history([FAILED, 0.3, 0.2, 0.6]), hand_history([FAILED, FAILED, 0.4, 0.1])]
    ax = plot_best_so_far({"evolution": runs, "one run": hand_history([0.2, 0.1, 0.5, 0.1])}).axes[0]
    mean, single = ax.lines
    # run 1: None, .3, .3, .6; run 2: None, None, .4, .4 -> the mean starts at trial 2
    assert list(mean.get_xdata()) == [2, 3, 4] and list(mean.get_ydata()) == pytest.approx([0.3, 0.35, 0.5])
    assert list(single.get_ydata()) == [0.2, 0.2, 0.5, 0.5]
    assert legend_texts(ax) == ["evolution (mean of 2)", "one run (mean of 1)"]
    assert len(ax.collections) == 2  # one min-max band per label
    assert not any(math.isnan(y) for line in ax.lines for y in line.get_ydata())


@pytest.mark.parametrize("fixed_margins", [False, True])
def test_population_legend_sits_outside_the_axes(fixed_margins):
    """The legend used to sit in the upper left, over the first trials: it now covers no data point,
    alone (constrained layout) and in the dashboard's fixed-margin panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from nasnb.widgets.panels import one_axes

    space = ToySpace(length=6, options=4)
    search = RegularizedEvolution(space, Flaky(space), population_size=5, sample_size=3, seed=1)
    search.run(12, progress=False)
    if fixed_margins:
        fig = Figure(figsize=(7, 4))
        plot_population(search.history, ax=one_axes(fig))
    else:
        fig = plot_population(search.history)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # lays the figure out as saving it would
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    assert any(text.startswith("failed (") for text in legend_texts(ax))
    legend = ax.get_legend().get_window_extent(renderer)
    axes_box = ax.get_window_extent(renderer)
    assert legend.x0 > axes_box.x1, "the legend overlaps the plotting area"
    assert legend.x1 <= fig.bbox.x1 + 1, "the legend is cut off at the figure's right edge"


def test_progress_view_is_registered():
    assert registry.get("view", "progress") is plot_progress
    assert registry.get("view", "population") is plot_population
