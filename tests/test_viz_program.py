"""The best-program view of AutoML-Zero (nasnb.viz.program) and its dashboard panel, on hand-built histories."""
import pytest

from nasnb.errors import InvalidValueError
from nasnb.history import History, Trial
from nasnb.viz.program import best_trial, plot_program, program_data, program_html

EMPTY = "def Setup():\n  pass\ndef Predict():\n  pass\ndef Learn():\n  pass"
HEBB = "def Setup():\n  s2 = 0.01\ndef Predict():\n  s1 = dot(v0, v1)\ndef Learn():\n  s3 = s2 * s0\n  v2 = s3 * v0\n  v1 = v1 + v2"
SGD = HEBB.replace("s3 = s2 * s0", "s3 = s0 - s1\n  s3 = s2 * s3")
SGD_DEAD = SGD + "\n  s3 = s1 * s1"  # a last line nobody reads


def history(rows, metric="fitness"):
    """rows: (program text, fitness or None for a failed trial)."""
    records = [Trial(k, text, {} if v is None else {metric: v}, state="failed" if v is None else "complete",
                     error=None if v is not None else "boom") for k, (text, v) in enumerate(rows)]
    return History(records, metric=metric)


def test_best_program_with_its_changes_and_dead_code():
    h = history([(EMPTY, 0.42), (HEBB, 0.71), (EMPTY, 0.42), (None, None), (SGD_DEAD, 0.9999), (HEBB, 0.5)])
    assert program_data(h, upto=0) is None
    first = program_data(h, upto=1)
    assert (first["trial"], first["previous"], first["changed"], first["size"]) == (0, None, 0, 0)
    hebb = program_data(h, upto=4)
    assert (hebb["trial"], hebb["value"], hebb["previous"], hebb["previous_value"]) == (1, 0.71, 0, 0.42)
    assert hebb["changed"] == hebb["size"] == 5  # everything is new against the empty program
    data = program_data(h)
    assert (data["trial"], data["previous"], data["improvements"]) == (4, 1, [(0, 0.42), (1, 0.71), (4, 0.9999)])
    learn = data["functions"][2]
    assert [f["name"] for f in data["functions"]] == ["Setup", "Predict", "Learn"]
    assert [line["text"] for line in learn["lines"]] == ["s3 = s0 - s1", "s3 = s2 * s3", "v2 = s3 * v0",
                                                         "v1 = v1 + v2", "s3 = s1 * s1"]
    # against HEBB: its 's3 = s2 * s0' became two lines, and the dead line is new
    assert [line["changed"] for line in learn["lines"]] == [True, True, False, False, True]
    assert [line["useful"] for line in learn["lines"]] == [True, True, True, True, False]
    assert not any(line["changed"] for f in data["functions"][:2] for line in f["lines"])
    assert (data["changed"], data["dead"], data["size"]) == (3, 1, 7)
    assert data["pruned"] == SGD
    assert [None if best_trial(h, n) is None else best_trial(h, n).number for n in range(7)] == [None, 0, 1, 1, 1, 4, 4]


def test_minimised_metric_failed_trials_and_errors():
    h = history([(HEBB, 3.0), (None, None), (SGD, 1.0), (EMPTY, 2.0)], metric="loss")
    h.meta["objectives"] = {"loss": "min"}
    assert h.direction("loss") == "min"
    assert program_data(h)["improvements"] == [(0, 3.0), (2, 1.0)]
    with pytest.raises(InvalidValueError, match="upto=9"):
        program_data(h, upto=9)
    with pytest.raises(InvalidValueError, match="not an AutoML-Zero program"):
        program_data(History([Trial(0, "nor_conv_3x3", {"fitness": 1.0})], metric="fitness"))


def test_a_growing_history_is_read_once():
    h = history([(EMPTY, 0.42)])
    assert program_data(h)["trial"] == 0
    h.append(Trial(1, HEBB, {"fitness": 0.8}))
    assert program_data(h)["trial"] == 1 and program_data(h, upto=1)["trial"] == 0  # a prefix stays a prefix
    other = history([(SGD, 0.99)])  # equal-looking histories are told apart by identity
    assert program_data(other)["trial"] == 0 and program_data(other)["value"] == 0.99


def test_html_and_figure():
    data = program_data(history([(HEBB, 0.71), (SGD_DEAD, 0.9999)]))
    text = program_html(data)
    assert text.count("background: #FFF1A8") == 1 + 3  # the legend and the three changed lines
    assert text.count("+   ") == 3 and "color: #9A9A9A'>+   s3 = s1 * s1" in text
    assert "was 0.71000 at trial 0" in text and "no complete trial" in program_html(None)
    assert "&lt;" not in text and "<script" not in program_html(dict(data, metric="<script>")).replace("&lt;", "")
    fig = plot_program(history([(HEBB, 0.71), (SGD_DEAD, 0.9999)]))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[0].startswith("best: trial 1") and "+   s3 = s0 - s1" in texts and len(texts) == 1 + 3 + 7


def test_panel_redraws_only_when_the_best_changes():
    widgets = pytest.importorskip("ipywidgets")
    from nasnb.widgets.program_panel import ProgramPanel

    class Search:
        def __init__(self, h):
            self.history = h

    rows = [(EMPTY, 0.42), (HEBB, 0.71)] + [(EMPTY, 0.42)] * 300 + [(SGD, 0.9999)]
    search, panel = Search(history(rows)), ProgramPanel()
    assert isinstance(panel.widget, widgets.VBox)
    drawn = [panel.update(search, upto) for upto in range(len(rows) + 1)]
    assert drawn.count(True) == 4 and panel.draws == 4  # nothing, EMPTY, HEBB, SGD
    assert "s3 = s0 - s1" in panel.html.value and panel.data_shown["trial"] == len(rows) - 1
    assert panel.update(search, 2) and panel.data_shown["trial"] == 1  # scrubbed back: HEBB again
    for upto in range(3, 300):  # stepping on without a better program: no redraw
        assert not panel.update(search, upto)
    assert panel.draws == 5
