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
