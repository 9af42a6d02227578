"""History: append-only, JSON round trip, best and the anytime curve."""
import math

import pytest

from nasnb.history import History, Trial


def make_history(values):
    return History([Trial(i, f"a{i}", {"val_accuracy": v, "params": 10 * i}, 0.5, {"kind": "random"})
                    for i, v in enumerate(values)], meta={"strategy": "X", "seed": 0})


def test_best_and_best_so_far_against_hand_computation():
    h = make_history([0.2, 0.5, 0.4, 0.5, 0.9, 0.1])
    assert h.best_so_far() == [0.2, 0.5, 0.5, 0.5, 0.9, 0.9]
    assert h.best().number == 4
    assert h.best(upto=4).number == 1, "ties go to the earliest trial"
    assert h.best("params").number == 5
    assert History().best() is None


def test_json_round_trip_is_exact():
    h = make_history([0.1, math.inf, 0.3])
    again = History.from_json(h.to_json())
    assert again == h and again[1].metrics["val_accuracy"] == math.inf


def test_append_only_numbering_and_clear_errors():
    h = make_history([0.1])
    with pytest.raises(ValueError, match="append-only"):
        h.append(Trial(5, "x", {"val_accuracy": 1.0}))
    with pytest.raises(KeyError, match="no metric 'latency'"):
        h[0].value("latency")
    with pytest.raises(ValueError, match="not a nasnb history"):
        History.from_dict({"trials": []})


def test_save_and_load(tmp_path):
    h = make_history([0.3, 0.6])
    h.save(tmp_path / "h.json")
    assert History.load(tmp_path / "h.json") == h


def test_to_dataframe_has_a_row_per_trial():
    pytest.importorskip("pandas")
    df = make_history([0.3, 0.6]).to_dataframe()
    assert list(df.index) == [0, 1] and list(df["val_accuracy"]) == [0.3, 0.6]


# ---------------------------------------------------------------- trial states and step records

from hypothesis import given, settings, strategies as st  # noqa: E402

from nasnb.history import Step  # noqa: E402

OUTCOMES = st.sampled_from(["complete", "failed", "pruned"])
VALUES = st.one_of(st.floats(-1, 1), st.just(math.nan), st.just(math.inf), st.none())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(OUTCOMES, VALUES, st.booleans()), max_size=25))
def test_best_values_and_curve_skip_failed_pruned_and_non_finite_records(rows):
    """Against a brute-force reading of the definitions: best is the earliest complete trial with
    the highest finite value; Steps and everything else never count."""
    records = []
    for number, (state, value, is_step) in enumerate(rows):
        metrics = {} if value is None else {"val_accuracy": value}
        records.append(Step(number, metrics) if is_step else Trial(number, f"a{number}", metrics, state=state))
    h = History(records)
    scored = [(r.metrics["val_accuracy"], r.number) for r in records
              if isinstance(r, Trial) and r.state == "complete" and "val_accuracy" in r.metrics
              and math.isfinite(r.metrics["val_accuracy"])]
    best = max(scored, key=lambda vn: (vn[0], -vn[1]), default=None)
    assert (h.best().number if h.best() else None) == (best[1] if best else None)
    for upto in range(len(records) + 1):  # the running best equals the scan at every prefix
        prefix = History(records[:upto]).best()
        assert h.best(upto=upto) == prefix
    curve, running = [], None
    for r in records:
        v = r.metrics.get("val_accuracy") if isinstance(r, Trial) and r.state == "complete" else None
        if v is not None and math.isfinite(v):
            running = v if running is None else max(running, v)
        curve.append(running)
    assert h.best_so_far() == curve
    assert h.count("failed") == sum(isinstance(r, Trial) and r.state == "failed" for r in records)
    assert History.from_json(h.to_json()).to_json() == h.to_json()


def test_a_record_of_an_unknown_kind_or_state_is_refused():
    with pytest.raises(ValueError, match="unknown record kind"):
        History.from_dict({"metric": "m", "records": [{"kind": "epoch", "number": 0, "metrics": {}}]})
    with pytest.raises(ValueError, match="trial state 'done'"):
        Trial(0, "a", {}, state="done")
    with pytest.raises(ValueError, match="unknown"):
        History.from_dict({"metric": "m", "records": [{"number": 0, "metrics": {}, "arch": "a", "colour": 1}]})


def test_a_minimised_objective_makes_best_and_the_anytime_curve_take_the_lowest():
    latencies = [5.0, 3.0, float("nan"), 4.0, 1.5, 1.5, 2.0]
    records = [Trial(i, f"a{i}", {"latency_ms": v}) for i, v in enumerate(latencies)]
    h = History(records, metric="latency_ms", meta={"objectives": {"latency_ms": "min", "val_accuracy": "max"}})
    assert h.direction() == "min" and h.direction("val_accuracy") == "max" and h.direction("params") == "max"
    assert h.best().number == 4  # the lowest; the earlier of the two 1.5 s
    assert h.best(upto=4).number == 1
    assert h.best_so_far() == [5.0, 3.0, 3.0, 3.0, 1.5, 1.5, 1.5]
    again = History.from_json(h.to_json())
    assert again.best().number == 4 and again.best_so_far() == h.best_so_far()
    plain = History(records, metric="latency_ms")  # no objectives: maximised, as before
    assert plain.direction() == "max" and plain.best().number == 0
