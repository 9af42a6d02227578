"""The policy view: numbers replayed from a Reinforce history, checked by hand and against the live
search (failed trials included); the renderer is checked for what it drew."""
import math

import pytest

from nasnb.history import History, Trial
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import RandomSearch, Reinforce
from nasnb.viz import plot_policy, policy_data
from flaky import Flaky

FAILED = "failed"


def policy_history(rewards, decay=0.5):
    """A Reinforce-like history over one decision of two options; FAILED is a failed trial."""
    trials = []
    for k, reward in enumerate(rewards):
        info = {"actions": [k % 2], "probs": [[0.25, 0.75]], "entropy": 0.5 + k / 100}
        if reward == FAILED:
            trials.append(Trial(k, "b", {}, info=info, state="failed", error="RuntimeError: boom"))
        else:
            trials.append(Trial(k, "b", {"val_accuracy": reward}, info=info))
    return History(trials, meta={"baseline_decay": decay, "choices": [{"name": "op", "options": ["a", "b"]}]})


@pytest.fixture(scope="module")
def search():
    space = ToySpace(length=4, options=3)
    search = Reinforce(space, space.evaluate, baseline_decay=0.9, seed=0)
    search.run(12, progress=False)
    return search


def test_policy_data_replays_the_last_policy_and_the_curves(search):
    history = search.history
    data = policy_data(history)
    last = history[-1]
    assert data["trial"] == 11 and data["number"] == list(range(12))
    assert [d["name"] for d in data["decisions"]] == [f"position {k}" for k in range(4)]
    assert all(d["options"] == ["op0", "op1", "op2"] for d in data["decisions"])
    assert [d["probs"] for d in data["decisions"]] == last.info["probs"]
    assert [d["action"] for d in data["decisions"]] == last.info["actions"]
    for d in data["decisions"]:
        assert d["entropy"] == pytest.approx(-sum(p * math.log(p) for p in d["probs"]))
        assert d["uniform"] == pytest.approx(1 / 3)
    assert data["rewards"] == history.values()
    assert data["entropies"] == [t.info["entropy"] for t in history]
    assert data["max_entropy"] == pytest.approx(4 * math.log(3))
    # b_0 = R_0; b_t = 0.9 b_{t-1} + 0.1 R_{t-1}: the value each trial's advantage used
    b, expected = history.values()[0], []
    for r in history.values():
        expected.append(b)
        b = 0.9 * b + 0.1 * r
    assert data["baselines"] == pytest.approx(expected)
    assert data["advantages"] == pytest.approx([r - e for r, e in zip(history.values(), expected)])
    assert search.baseline == pytest.approx(b)  # the replay ends where the live search is


def test_a_failed_trial_has_no_reward_and_does_not_move_the_baseline():
    data = policy_data(policy_history([0.2, FAILED, 0.6, 1.0], decay=0.5))
    # b judges 0.2 by itself (the first reward), then b = .5*.2 + .5*.2 = .2; trial 1 failed: skipped;
    # 0.6 is judged by .2, then b = .5*.2 + .5*.6 = .4; 1.0 is judged by .4, then b = .5*.4 + .5*1 = .7
    assert data["rewards"] == [0.2, None, 0.6, 1.0]
    assert data["baselines"][1] is None and data["advantages"][1] is None
    assert [data["baselines"][k] for k in (0, 2, 3)] == pytest.approx([0.2, 0.2, 0.4])
    assert [data["advantages"][k] for k in (0, 2, 3)] == pytest.approx([0.0, 0.4, 0.6])
    assert data["baseline"] == pytest.approx(0.7) and data["failed"] == [1]
    assert data["entropies"] == [0.5, 0.51, 0.52, 0.53]  # sampled before it failed: still shown
    last_failed = policy_data(policy_history([0.2, 0.6, FAILED]), upto=3)
    assert last_failed["trial"] == 2 and last_failed["decisions"][0]["action"] == 0  # its policy is shown
    assert policy_data(policy_history([FAILED]))["baseline"] is None


def test_replay_follows_the_live_baseline_through_failed_trials():
    space = ToySpace(length=4, options=3)
    search = Reinforce(space, Flaky(space), baseline_decay=0.8, seed=1)
    live = []
    search.subscribe(lambda record: live.append((search.baseline, record.state)))
    search.run(20, progress=False)
    assert search.history.count("failed") >= 6  # the replay really had failures to skip
    for t in range(1, 21):
        data = policy_data(search.history, upto=t)
        assert data["baseline"] == pytest.approx(live[t - 1][0])
        assert (data["rewards"][-1] is None) == (live[t - 1][1] == "failed")


def test_upto_shows_the_search_as_it_was(search):
    data = policy_data(search.history, upto=3)
    assert data["trial"] == 2 and len(data["rewards"]) == 3
    assert [d["probs"] for d in data["decisions"]] == search.history[2].info["probs"]
    empty = policy_data(search.history, upto=0)
    assert empty["decisions"] == [] and empty["rewards"] == [] and empty["trial"] is None
    with pytest.raises(ValueError, match="upto=13, but the history has 12 records"):
        policy_data(search.history, upto=13)


def test_a_history_without_a_policy_is_refused_with_a_reason():
    space = ToySpace(length=3, options=3)
    history = RandomSearch(space, space.evaluate).run(3, progress=False)
    with pytest.raises(ValueError, match="Reinforce search"):
        policy_data(history)
    forged = History([Trial(0, "op0-op0-op0", {"val_accuracy": 0.1}, info={})], meta={"baseline_decay": 0.9})
    with pytest.raises(ValueError, match="trial 0 has no policy"):
        policy_data(forged)


def test_option_names_fall_back_to_indices():
    info = {"actions": [1], "probs": [[0.25, 0.75]], "entropy": 0.56}
    history = History([Trial(0, "b", {"val_accuracy": 0.5}, info=info)], meta={"baseline_decay": 0.5})
    (decision,) = policy_data(history)["decisions"]
    assert decision["options"] == ["0", "1"] and decision["name"] == "decision 0"
    assert policy_data(history)["max_entropy"] == pytest.approx(math.log(2))


def test_plot_policy_draws_one_bar_per_option_and_outlines_the_sampled_one(search):
    from matplotlib.figure import Figure

    fig = plot_policy(search.history)
    bars_ax, entropy_ax, reward_ax = fig.axes[:3]
    bars = bars_ax.patches  # the legend's patches are not the Axes'; these are the bars, in order
    assert len(bars) == 4 * 3
    outlined = [i for i, p in enumerate(bars) if p.get_linewidth() > 0 and p.get_edgecolor()[3] > 0]
    assert outlined == [3 * k + a for k, a in enumerate(search.history[-1].info["actions"])]
    assert [round(p.get_height(), 6) for p in bars] == [p for probs in search.history[-1].info["probs"] for p in probs]
    assert list(entropy_ax.lines[0].get_ydata()) == [t.info["entropy"] for t in search.history]
    # into given Axes: one Axes takes the bars only, three take everything
    target = Figure()
    assert plot_policy(search.history, upto=5, ax=target.add_subplot()) is target
    axes = Figure().subplots(1, 3)
    plot_policy(search.history, ax=axes)
    assert len(axes[2].collections) == 1 and len(axes[2].lines) == 1  # rewards (points), baseline (line)
    with pytest.raises(ValueError, match="three Axes"):
        plot_policy(search.history, ax=axes[:2])
    assert plot_policy(search.history, upto=0) is not None  # before the first trial: an empty picture


def test_plot_policy_shows_failed_trials_apart_and_the_baseline_only_where_it_judged():
    history = policy_history([0.2, FAILED, 0.6, 1.0, FAILED], decay=0.5)
    bars_ax, entropy_ax, reward_ax = plot_policy(history).axes[:3]
    rewards, failed = reward_ax.collections
    assert [tuple(map(float, p)) for p in rewards.get_offsets()] == [(0, 0.2), (2, 0.6), (3, 1.0)]
    assert [float(x) for x, _ in failed.get_offsets()] == [1, 4] and failed.get_label() == "failed (2)"
    assert failed.get_offset_transform() is reward_ax.get_xaxis_transform()  # along the bottom edge
    (baseline,) = reward_ax.lines
    assert list(baseline.get_xdata()) == [0, 2, 3] and list(baseline.get_ydata()) == pytest.approx([0.2, 0.2, 0.4])
    assert list(entropy_ax.lines[0].get_ydata()) == [0.5, 0.51, 0.52, 0.53, 0.54]
    assert "2 failed" in reward_ax.get_title()
    assert [p.get_height() for p in bars_ax.patches] == [0.25, 0.75]
    assert [t.get_text() for t in bars_ax.get_legend().get_texts()] == ["a", "b"]


def test_policy_legend_covers_no_bar_and_reward_plot_has_none(search):
    """The options' legend sits in the band above probability 1 (it used to cover the tallest bars);
    the reward plot names its dots and line in the title instead of a box over the points."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = plot_policy(search.history)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    bars_ax, _, reward_ax = fig.axes[:3]
    box = bars_ax.get_legend().get_window_extent(canvas.get_renderer())
    bottom_in_data = bars_ax.transData.inverted().transform((box.x0, box.y0))[1]
    assert bottom_in_data >= 1.0, f"the legend reaches down to probability {bottom_in_data:.2f}"
    assert bars_ax.get_ylim()[1] > 1.0 and max(bars_ax.get_yticks()) == 1.0
    assert reward_ax.get_legend() is None and "baseline b" in reward_ax.get_title()
