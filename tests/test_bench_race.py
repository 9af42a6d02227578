"""Anytime regret in simulated seconds: the incumbent, the clock and the band, computed by hand."""
import numpy as np
import pytest

from nasnb.bench.race import incumbent_trace, regret_curve, summarize
from nasnb.errors import InvalidValueError
from nasnb.history import History, Trial


class FakeTable:
    """test accuracy of arch 'a<k>' is k / 10; the best is 0.9."""

    def optimum(self, metric):
        return "a9", 0.9

    def query(self, arch):
        return {"test_accuracy": int(arch[1:]) / 10}


def history(rows):
    h = History()
    for number, (arch, val, seconds, state) in enumerate(rows):
        metrics = {} if state == "failed" else {"val_accuracy": val, "seconds": seconds}
        if state == "failed":
            metrics = {"seconds": seconds}
        h.append(Trial(number, arch, metrics, state=state, error="boom" if state == "failed" else None))
    return h


def test_incumbent_and_clock_by_hand():
    h = history([("a1", 0.5, 10, "complete"), ("a7", 0.4, 5, "complete"), ("a3", 0.9, 20, "failed"),
                 ("a6", 0.8, 1, "complete"), ("a2", 0.8, 4, "complete")])
    seconds, incumbents = incumbent_trace(h)
    assert seconds.tolist() == [10, 15, 35, 36, 40]
    assert incumbents == [0, 0, 0, 3, 3]  # a failed trial costs time, changes nothing; a tie keeps the first
    grid = [0, 9.9, 10, 14, 35, 36, 100]
    regret = regret_curve(h, FakeTable(), grid)
    expected = [np.nan, np.nan, 0.9 - 0.1, 0.8, 0.8, 0.9 - 0.6, 0.3]
    np.testing.assert_allclose(regret, expected)


def test_band_is_mean_plus_minus_1_96_standard_errors():
    curves = np.array([[np.nan, 0.3, 0.1], [np.nan, 0.5, 0.1], [0.2, 0.4, 0.4]])
    s = summarize(curves)
    np.testing.assert_allclose(s["mean"], [0.2, 0.4, 0.2])
    assert s["seeds"].tolist() == [1, 3, 3]
    se = np.std([0.3, 0.5, 0.4], ddof=1) / np.sqrt(3)
    assert s["high"][1] - s["mean"][1] == pytest.approx(1.96 * se)
    assert np.isnan(s["low"][0])  # one seed: no band
    with pytest.raises(InvalidValueError, match="two seeds"):
        summarize([[0.1, 0.2]])
    with pytest.raises(InvalidValueError, match="grid"):
        regret_curve(history([("a1", 0.5, 1, "complete")]), FakeTable(), [3, 1])
