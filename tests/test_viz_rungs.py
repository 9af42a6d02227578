"""rung_data against small successive-halving runs worked out by hand, and the live view's redraws."""
import zlib

import pytest

from nasnb.errors import InvalidValueError
from nasnb.history import History, Trial
from nasnb.spaces.toy import ToySpace
from nasnb.strategies.halving import Hyperband, SuccessiveHalving
from nasnb.viz.rungs import DODGE, LiveRungs, plot_rungs, rung_data

# R = 4, eta = 2: s = 2, one bracket of 4 architectures at 1 epoch, 2 at 2, 1 at 4.
SCHEDULE = [{"bracket": 2, "rungs": [[4, 1], [2, 2], [1, 4]]}]


def trial(number, rung, budget, config, value, promoted_from=None, state=None):
    info = {"round": 0, "bracket": 2, "rung": rung, "budget": budget, "config": config,
            "promoted_from": promoted_from}
    state = state or ("complete" if rung == 2 else "pruned")
    metrics = {} if state == "failed" else {"val_accuracy": value}
    return Trial(number, f"a{config}", metrics, info=info, state=state)


def by_hand():
    """Rung 0 scores 0.7, 0.5, 0.7, 0.7 (configs 0-3): two places, a three-way tie at 0.7, so the
    two drawn first (configs 0 and 2) go on. Rung 1: 0.6 (config 0), 0.8 (config 2): config 2 goes
    on and reaches 4 epochs with 0.9."""
    records = [trial(0, 0, 1, 0, 0.7), trial(1, 0, 1, 1, 0.5), trial(2, 0, 1, 2, 0.7), trial(3, 0, 1, 3, 0.7),
               trial(4, 1, 2, 0, 0.6, promoted_from=0), trial(5, 1, 2, 2, 0.8, promoted_from=2),
               trial(6, 2, 4, 2, 0.9, promoted_from=5)]
    return History(records, meta={"schedule": SCHEDULE})


def test_a_rung_still_filling_is_waiting_and_promotes_nobody():
    data = rung_data(by_hand(), upto=3)
    (rung,) = data["rungs"]
    assert (rung["places"], rung["complete"], rung["promoted"], rung["cut"]) == (4, False, [], [])
    assert data["points"]["status"] == ["waiting"] * 3


def test_promotions_are_known_as_soon_as_the_rung_is_full_ties_to_the_first_drawn():
    data = rung_data(by_hand(), upto=4)  # rung 1 has no trial yet
    (rung,) = data["rungs"]
    assert rung["complete"] and rung["promoted"] == [0, 2] and rung["cut"] == [1, 3]
    assert data["points"]["status"] == ["promoted", "cut", "promoted", "cut"]
    half = rung_data(by_hand(), upto=5)
    assert half["rungs"][1]["places"] == 2 and not half["rungs"][1]["complete"]
    assert half["links"] == [(0, 4)]


def test_the_whole_bracket_by_hand():
    data = rung_data(by_hand())
    assert [(r["rung"], r["budget"], r["places"], r["promoted"], r["cut"]) for r in data["rungs"]] == [
        (0, 1, 4, [0, 2], [1, 3]), (1, 2, 2, [5], [4]), (2, 4, 1, [], [])]
    assert data["points"]["status"] == ["promoted", "cut", "promoted", "cut", "cut", "promoted", "final"]
    assert data["counts"] == {"waiting": 0, "promoted": 3, "cut": 3, "final": 1, "failed": 0}
    assert data["links"] == [(0, 4), (2, 5), (5, 6)]
    assert data["budgets"] == [1, 2, 4] and data["points"]["x"] == [0, 0, 0, 0, 1, 1, 2]  # one bracket: no dodge
    assert data["last"] == 6


def test_a_failed_trial_is_never_promoted_and_a_short_rung_promotes_fewer():
    records = [trial(0, 0, 1, 0, 0.4), trial(1, 0, 1, 1, None, state="failed"),
               trial(2, 0, 1, 2, None, state="failed"), trial(3, 0, 1, 3, None, state="failed"),
               trial(4, 1, 2, 0, 0.5, promoted_from=0)]
    data = rung_data(History(records, meta={"schedule": SCHEDULE}))
    assert data["rungs"][0]["promoted"] == [0] and data["rungs"][0]["cut"] == []
    # rung 1 holds the one survivor instead of 2; the schedule's one place at rung 2 still takes it
    assert data["rungs"][1]["places"] == 1 and data["rungs"][1]["complete"] and data["rungs"][1]["promoted"] == [4]
    assert data["points"]["status"] == ["promoted", "failed", "failed", "failed", "promoted"]
    assert data["points"]["value"][1] is None


class Checksum:
    """A fake evaluator: a value from (arch, budget) that ranks differently at each budget."""

    def __call__(self, arch, budget=None):
        return {"val_accuracy": (zlib.crc32(f"{arch}|{budget}".encode()) % 97) / 96}


def test_a_real_bracket_has_the_papers_counts_and_matches_the_strategys_promotions():
    space = ToySpace(length=8, options=4)
    search = SuccessiveHalving(space, Checksum(), max_budget=9, eta=3, seed=1)
    for _ in range(13):  # one bracket: 9 at 1 epoch, 3 at 3, 1 at 9
        search.step()
    data = rung_data(search.history)
    assert data["counts"] == {"waiting": 0, "promoted": 4, "cut": 8, "final": 1, "failed": 0}
    promoted = {n for r in data["rungs"] for n in r["promoted"]}
    assert promoted == {t.info["promoted_from"] for t in search.history.trials if t.info["promoted_from"] is not None}


def test_hyperband_brackets_sharing_a_budget_sit_side_by_side():
    search = Hyperband(ToySpace(length=8, options=4), Checksum(), max_budget=9, eta=3, seed=0)
    for _ in range(14):  # bracket 2 (13 trials), then bracket 1's first trial at 3 epochs
        search.step()
    data = rung_data(search.history)
    xs = {(t.info["bracket"], t.info["budget"]): x for t, x in zip(search.history.trials, data["points"]["x"])}
    assert xs[(1, 3)] - xs[(2, 3)] == pytest.approx(DODGE)  # brackets 2, 1 centred on column 1


def test_bad_input_is_refused_clearly():
    with pytest.raises(InvalidValueError, match="upto=99"):
        rung_data(by_hand(), upto=99)
    other = History([Trial(0, "a", {"val_accuracy": 0.5}, info={"kind": "random"})])
    with pytest.raises(InvalidValueError, match="SuccessiveHalving or Hyperband"):
        rung_data(other)


def test_live_view_draws_once_then_moves_and_the_static_view_draws():
    history, live = by_hand(), LiveRungs()
    first = live.render(history, 2)
    second = live.render(history, 3)  # same budgets, bracket and y range: moved in place
    assert first.startswith(b"\x89PNG") and second.startswith(b"\x89PNG") and first != second
    assert (live.full_draws, live.blits) == (1, 1)
    assert "final" in live.caption(rung_data(history))
    figure = plot_rungs(history)
    assert len(figure.axes[0].collections) == 1 + 3  # the links, then promoted, cut and final dots
