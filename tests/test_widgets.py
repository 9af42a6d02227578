"""The Dashboard, driven from the kernel side (no browser): `button.click()` runs the callback."""
import html
import re
import struct
import subprocess
import sys
import threading
import time

import pytest

import nasnb.strategies as strategies
from nasnb import registry
from nasnb.history import Step
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import RandomSearch, Search
from nasnb.viz import plot_progress
from nasnb.widgets import PANELS, Dashboard, Panel, PlotPanel, figure_png, make_panel
from nasnb.widgets.panels import one_axes, policy_axes

SPACE = ToySpace(length=4, options=3)


def snapshot(dash) -> dict:
    """Everything the panels show: image bytes and captions."""
    shown = {}
    for name, panel in dash.panels.items():
        for attr in ("candidate_image", "best_image", "candidate_caption", "best_caption", "image", "caption"):
            if hasattr(panel, attr):
                shown[f"{name}.{attr}"] = bytes(getattr(panel, attr).value) if attr.endswith("image") \
                    else getattr(panel, attr).value
    return shown


def sleepy_evaluator(seconds):
    def evaluate(arch):
        time.sleep(seconds)
        return SPACE.evaluate(arch)
    return evaluate


def failing_after(n_ok):
    calls = []

    def evaluate(arch):
        calls.append(arch)
        if len(calls) > n_ok:
            raise ValueError(f"boom: evaluator failed on call {len(calls)}")
        return SPACE.evaluate(arch)
    return evaluate


def failing_every(k):
    """An evaluator whose calls k, 2k, 3k, ... raise; the others score as ToySpace does."""
    calls = []

    def evaluate(arch):
        calls.append(arch)
        if len(calls) % k == 0:
            raise ValueError(f"boom: evaluator failed on call {len(calls)}")
        return SPACE.evaluate(arch)
    return evaluate


class OneShot(Search):
    """A one-shot search in miniature: every step records a Step (a training curve), not a trial;
    with `derive`, every step also names the architecture it derives."""

    def __init__(self, space, derive=False, **kwargs):
        super().__init__(space, **kwargs)
        self.derive = derive

    def step(self):
        k = len(self.history)
        arch = self.space.format(self.space.sample(self.rng)) if self.derive else None
        return self._record(Step(k, {"val_accuracy": 0.1 * k, "train_loss": 2.0 / (k + 1)}, 0.001, {}, arch=arch))


def shows(dash, upto, total, timeout=5.0) -> bool:
    """Wait until the dashboard shows step `upto` of `total` (redraws of runs elsewhere are coalesced)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if f"trial {upto} of {total}" in dash.status.value and dash.history_slider.value == upto:
            return True
        time.sleep(0.02)
    return False


def test_panels_are_the_ones_the_strategy_asks_for():
    dash = Dashboard(RandomSearch(SPACE, SPACE.evaluate, seed=0))
    assert tuple(dash.panels) == RandomSearch.panels == ("cell", "progress")
    chosen = Dashboard(RandomSearch(SPACE, SPACE.evaluate, seed=0), panels=["cell"])
    assert tuple(chosen.panels) == ("cell",)
    with pytest.raises(KeyError, match="choose from"):
        make_panel("histogram")


def test_live_panels_import_from_where_they_live_and_from_where_they_were():
    import nasnb.widgets as package
    from nasnb.widgets import live_panels, panels

    for name in ("LivePanel", "AlphasPanel"):
        cls = getattr(live_panels, name)
        assert getattr(panels, name) is cls and getattr(package, name) is cls and name in package.__all__
        assert issubclass(cls, Panel)
    assert isinstance(make_panel("progress"), live_panels.LivePanel)
    with pytest.raises(AttributeError, match="no attribute 'LiveFigure'"):
        panels.LiveFigure  # noqa: B018 (a name that never was there is still an AttributeError)


def test_plot_panels_are_the_registry_views(monkeypatch):
    from nasnb.widgets import panels as panels_module
    from nasnb.widgets.panels import LivePanel

    assert list(PANELS) == ["cell", "alphas", "pareto", "policy", "population", "program", "progress", "qtable", "rungs"]
    # the registry's views follow a search live: drawn once, then moved in place (nasnb.viz.live)
    for name, live in (("progress", "live:LiveProgress"), ("population", "live:LivePopulation"),
                       ("policy", "policy:LivePolicy"), ("rungs", "rungs:LiveRungs")):
        panel = make_panel(name)
        assert isinstance(panel, LivePanel) and panel.title == name and panel.live_class == f"nasnb.viz.{live}"
    # a view without a live panel is drawn from scratch by a PlotPanel, with its layout
    monkeypatch.setattr(panels_module, "LIVE_PANELS", {})
    for name in ("population", "progress", "policy", "qtable"):
        panel = make_panel(name)
        assert isinstance(panel, PlotPanel) and panel.title == name
        assert panel.resolve() is registry.get("view", name)
    assert make_panel("progress").resolve() is plot_progress
    assert make_panel("policy").axes is policy_axes and make_panel("policy").figsize == (7, 5.5)
    assert make_panel("population").axes is one_axes and make_panel("population").figsize == (7, 4)
    monkeypatch.setitem(registry.REGISTRIES["view"], "my-progress", "nasnb.viz.search:plot_progress")
    assert "my-progress" in PANELS and make_panel("my-progress").resolve() is plot_progress
    dash = Dashboard(RandomSearch(SPACE, SPACE.evaluate, seed=0), panels=["my-progress"])
    dash.step_button.click()
    assert bytes(dash.panels["my-progress"].image.value)[:8] == b"\x89PNG\r\n\x1a\n"


def test_dashboard_displays_as_a_widget(monkeypatch):
    dash = Dashboard(RandomSearch(SPACE, SPACE.evaluate, seed=0))
    if hasattr(dash, "_repr_mimebundle_"):  # ipywidgets 8
        bundle = dash._repr_mimebundle_()
    else:  # ipywidgets 7 (Colab's): _ipython_display_ hands the same bundle to IPython's display
        import ipywidgets.widgets.widget as widget_module
        shown = []
        monkeypatch.setattr(widget_module, "display", lambda data, **kw: shown.append(data))
        dash._ipython_display_()
        (bundle,) = shown
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == dash.model_id


def test_step_appends_one_trial_and_redraws():
    search = RandomSearch(SPACE, SPACE.evaluate, seed=0)
    dash = Dashboard(search)
    before = snapshot(dash)
    dash.step_button.click()
    assert len(search.history) == 1 and dash.history_slider.value == dash.history_slider.max == 1
    after = snapshot(dash)
    assert after["cell.candidate_image"][:8] == b"\x89PNG\r\n\x1a\n"
    assert after["progress.image"][:8] == b"\x89PNG\r\n\x1a\n"
    assert after["cell.candidate_image"] != before["cell.candidate_image"]
    assert after["progress.image"] != before["progress.image"]
    assert "trial 1 of 1" in dash.status.value and "best val_accuracy" in dash.status.value
    assert search.history[0].arch in after["cell.candidate_caption"]
    dash.step_button.click()
    assert len(search.history) == 2 and snapshot(dash)["progress.image"] != after["progress.image"]


def test_slider_replays_a_past_step_without_touching_the_search():
    search = RandomSearch(SPACE, SPACE.evaluate, seed=1)
    dash = Dashboard(search)
    seen = [snapshot(dash)]
    for _ in range(5):
        dash.step_button.click()
        seen.append(snapshot(dash))
    history_before, rng_before = search.history.to_json(), search.rng.bit_generator.state
    for t in (2, 0, 4, 1, 5):
        dash.show_step(t)
        assert snapshot(dash) == seen[t], f"step {t} does not look as it did when it was current"
        assert f"trial {t} of 5" in dash.status.value
    dash.history_slider.value = 3  # what dragging the slider in the browser does
    assert snapshot(dash) == seen[3]
    assert search.history.to_json() == history_before and search.rng.bit_generator.state == rng_before
    with pytest.raises(ValueError, match="0 .. 5"):
        dash.show_step(6)


def test_scrubbed_back_dashboard_stays_put_while_the_search_runs_on():
    search = RandomSearch(SPACE, SPACE.evaluate, seed=2)
    dash = Dashboard(search, panels=["cell"])
    search.run(3, progress=False)  # steps taken outside the dashboard move it too
    assert shows(dash, 3, 3) and dash.history_slider.max == 3
    dash.show_step(1)
    search.run(5, progress=False)
    time.sleep(2 * Dashboard.REDRAW_INTERVAL)
    assert (dash.history_slider.max, dash.history_slider.value) == (5, 1)


def test_play_then_pause_stops_within_one_step():
    search = RandomSearch(SPACE, sleepy_evaluator(0.02), seed=0)
    dash = Dashboard(search, panels=["cell"])
    dash.play()
    deadline = time.monotonic() + 20
    while len(search.history) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dash.playing and dash.step_button.disabled and dash.reset_button.disabled
    with pytest.raises(RuntimeError, match="pause"):
        dash.step()
    dash.pause()
    at_pause = len(search.history)
    assert dash.wait(timeout=20)
    assert at_pause <= len(search.history) <= at_pause + 1
    assert not dash.step_button.disabled and not dash.reset_button.disabled and not dash.play_button.value
    assert sum(t.name == "nasnb-dashboard-play" for t in threading.enumerate()) == 0
    assert dash.history_slider.max == len(search.history)


def test_reset_empties_the_history_and_replays_trial_zero():
    search = RandomSearch(SPACE, SPACE.evaluate, seed=3)
    dash = Dashboard(search)
    dash.step_button.click()
    first, first_view = search.history[0], snapshot(dash)
    for _ in range(3):
        dash.step_button.click()
    dash.reset_button.click()
    assert len(search.history) == 0 and dash.history_slider.max == 0 and "trial 0 of 0" in dash.status.value
    dash.step_button.click()
    again = search.history[0]
    assert (again.number, again.arch, again.metrics, again.info) == (first.number, first.arch, first.metrics, first.info)
    assert snapshot(dash) == first_view


def test_an_evaluator_error_is_a_failed_trial_in_the_panels_and_play_goes_on():
    search = RandomSearch(SPACE, failing_every(3), seed=0)
    dash = Dashboard(search)
    dash.play()
    deadline = time.monotonic() + 30
    while len(search.history) < 7 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dash.playing, "an evaluator error stopped playing"
    dash.pause()
    assert dash.wait(timeout=20) and dash.error_text == ""
    assert [t.state for t in search.history[:6]] == ["complete", "complete", "failed"] * 2
    dash.show_step(3)  # trial 2 (call 3) failed
    cell = dash.panels["cell"]
    assert "failed: ValueError: boom: evaluator failed on call 3" in cell.candidate_caption.value
    assert "val_accuracy" not in cell.candidate_caption.value and search.history[2].arch in cell.candidate_caption.value
    first, second = (t.value("val_accuracy") for t in search.history[:2])
    assert f"(trial {0 if first >= second else 1})" in dash.status.value  # the best of the complete ones
    assert "1 failed" in dash.status.value
    dash.show_step(6)
    assert "2 failed" in dash.status.value
    before = len(search.history)
    while len(search.history) % 3 != 2:  # the next call fails
        dash.step_button.click()
    trial = dash.step()  # from code too, a failed evaluation is a trial, not an error
    assert trial.state == "failed" and dash.error_text == "" and len(search.history) > before


def test_a_long_error_is_shortened_under_the_cell():
    def evaluate(arch):
        raise RuntimeError("CUDA out of memory. " + "Tried to allocate 20.00 MiB. " * 30)

    dash = Dashboard(RandomSearch(SPACE, evaluate, seed=0), panels=["cell"])
    dash.step_button.click()
    caption = dash.panels["cell"].candidate_caption.value
    shown = caption.split("failed: ", 1)[1].split("</span>")[0]
    assert shown.startswith("RuntimeError: CUDA out of memory.") and shown.endswith("…") and len(shown) <= 160
    assert caption.count("Tried to allocate 20.00 MiB.") >= 30  # the whole text stays in the tooltip


class BrokenAfter(RandomSearch):
    """A strategy whose own propose() raises after `n_ok` proposals (a bug of the strategy)."""

    def __init__(self, *args, n_ok=2, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_ok = n_ok

    def propose(self):
        if len(self.history) >= self.n_ok:
            raise ZeroDivisionError(f"strategy bug at trial {len(self.history)}")
        return super().propose()


def test_an_error_of_the_strategy_is_shown_and_stops_playing():
    search = BrokenAfter(SPACE, SPACE.evaluate, seed=0)
    dash = Dashboard(search, panels=["cell"])
    dash.play()
    assert dash.wait(timeout=20)
    assert len(search.history) == 2 and not dash.play_button.value and not dash.step_button.disabled
    assert "strategy bug at trial 2" in dash.error_text and "Traceback" in dash.error_text
    dash.clear_error()
    dash.step_button.click()  # a click cannot raise into the browser: the error is shown instead
    assert "strategy bug at trial 2" in dash.error_text
    with pytest.raises(ZeroDivisionError, match="trial 2"):
        dash.step()  # from code, the error is shown *and* raised


def test_play_stops_where_run_stops_after_too_many_failures_in_a_row():
    from nasnb.errors import EvaluationError

    search = RandomSearch(SPACE, failing_after(2), seed=0)
    dash = Dashboard(search, panels=["cell"])
    dash.play()
    assert dash.wait(timeout=30)
    # run()'s rule (max_failures=10 in a row), not a copy of it in the dashboard
    assert len(search.history) == 12 and search.history.count("failed") == 10
    assert EvaluationError.__name__ in dash.error_text and "boom: evaluator failed on call 12" in dash.error_text
    assert not dash.play_button.value and "10 failed" in dash.status.value


class TextOnlySpace:
    """A space with no drawing (no to_graph): the cell panel must fall back to text. A search needs
    sample, format and parse (parse reads proposals back from a checkpoint)."""

    name = "text-only"

    def sample(self, rng):
        return SPACE.sample(rng)

    def format(self, arch):
        return SPACE.format(arch)

    def parse(self, text):
        return SPACE.parse(text)


def test_space_without_drawings_gets_text_captions():
    search = RandomSearch(TextOnlySpace(), SPACE.evaluate, seed=0)
    dash = Dashboard(search)
    dash.step_button.click()
    cell = dash.panels["cell"]
    assert cell.candidate_image.layout.display == "none" and bytes(cell.candidate_image.value) == b""
    assert search.history[0].arch in cell.candidate_caption.value
    assert f"val_accuracy {search.history[0].value('val_accuracy'):.4g}" in cell.candidate_caption.value
    assert dash.error_text == ""


def test_a_search_of_steps_has_a_dashboard():
    search = OneShot(SPACE, seed=0)
    dash = Dashboard(search, panels=["cell", "progress"])
    assert tuple(Dashboard(OneShot(SPACE, seed=0)).panels) == Search.panels == ("progress",)
    views = []
    for _ in range(3):
        dash.step_button.click()
        views.append(bytes(dash.panels["progress"].image.value))
    assert dash.error_text == "" and len(set(views)) == 3 and views[0][:8] == b"\x89PNG\r\n\x1a\n"
    assert "step 3 of 3" in dash.status.value and "best" not in dash.status.value  # no trial, no best
    cell = dash.panels["cell"]
    assert cell.candidate_image.layout.display == "none" and "(step 2)" in cell.candidate_title.value
    assert "val_accuracy 0.2" in cell.candidate_caption.value and "train_loss 0.6667" in cell.candidate_caption.value
    line = next(line for line in plot_progress(search.history).axes[0].lines if line.get_label() == "steps (3)")
    assert list(line.get_ydata()) == pytest.approx([0.0, 0.1, 0.2])  # each Step's metric
    dash.show_step(1)
    assert bytes(dash.panels["progress"].image.value) == views[0]
    derived = OneShot(SPACE, derive=True, seed=0)
    dash = Dashboard(derived, panels=["cell"])
    dash.step_button.click()
    assert bytes(dash.panels["cell"].candidate_image.value)[:8] == b"\x89PNG\r\n\x1a\n"
    assert derived.history[0].arch in dash.panels["cell"].candidate_caption.value


def test_custom_plot_panel_and_figure_png():
    from matplotlib.figure import Figure

    def plot_count(history, upto=None, ax=None):
        fig = Figure(figsize=(4, 3))
        fig.add_subplot().bar([0], [upto])
        return fig

    panel = PlotPanel(plot_count, title="count", dpi=50)
    dash = Dashboard(RandomSearch(SPACE, SPACE.evaluate, seed=0), panels=["cell", panel])
    dash.step_button.click()
    png = bytes(panel.image.value)
    assert struct.unpack(">II", png[16:24]) == (200, 150)  # 4 x 3 inches at 50 dpi
    draws = panel.draws
    dash.show_step(1)  # unchanged input: no redraw
    assert panel.draws == draws
    assert figure_png(plot_count(None, upto=1), dpi=50) == png


@pytest.mark.parametrize("name", ["RegularizedEvolution", "Reinforce", "MetaQNN"])
def test_dashboard_for_learning_strategies(name):
    cls = getattr(strategies, name)
    options = {"population_size": 3, "sample_size": 2} if name == "RegularizedEvolution" else {}
    search = cls(SPACE, failing_every(3), seed=0, **options)  # trials 2 and 5 fail
    dash = Dashboard(search)
    assert tuple(dash.panels) == cls.panels and cls.panels[1] in ("population", "policy", "qtable")
    plot = dash.panels[cls.panels[1]]
    views = []
    for _ in range(6):
        dash.step_button.click()
        views.append(bytes(plot.image.value))
    assert dash.error_text == "" and len(search.history) == 6 and "2 failed" in dash.status.value
    assert len(set(views)) == 6  # every step changes the picture, a failed one too
    dash.show_step(2)
    assert bytes(plot.image.value) == views[1]
    if name == "MetaQNN":  # the Q-values along trial 1's path, as an HTML table beside the figure
        from nasnb.viz.qtable import qtable_data, qtable_html

        assert "trial 1 " in plot.table.value and plot.table.value.endswith(qtable_html(qtable_data(search.history, 2)))


def test_widgets_use_no_pyplot():
    code = (
        "import sys\n"
        "from nasnb.spaces.toy import ToySpace\n"
        "from nasnb.strategies import RandomSearch\n"
        "from nasnb.widgets import Dashboard\n"
        "space = ToySpace()\n"
        "dash = Dashboard(RandomSearch(space, space.evaluate, seed=0))\n"
        "dash.step_button.click(); dash.step_button.click()\n"
        "assert dash.error_text == '', dash.error_text\n"
        "print('matplotlib.pyplot' in sys.modules, 'matplotlib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_a_fast_run_elsewhere_is_drawn_coalesced_and_ends_on_the_last_trial():
    search = RandomSearch(SPACE, SPACE.evaluate, seed=0)
    dash = Dashboard(search)
    progress = dash.panels["progress"]
    draws_before = progress.draws
    search.run(300, progress=False)  # e.g. in another cell: ~30 us a trial, far faster than drawing
    assert progress.draws - draws_before < 30, "every trial of a fast run was redrawn"
    assert shows(dash, 300, 300), "the last trial must be drawn (by a timer, REDRAW_INTERVAL after the run)"
    assert dash.history_slider.max == 300
    dash.step_button.click()  # the dashboard's own steps are still drawn one by one
    assert dash.history_slider.value == 301
    dash.close()


def test_a_slow_redraw_runs_on_a_timer_and_never_holds_the_search_up():
    """A redraw slower than REDRAW_INTERVAL used to run in the searching thread and, since the interval
    was counted from its start, straight after the previous one: every trial of the run was drawn."""
    threads = []

    def slow_plot(history, upto=None, ax=None):
        threads.append(threading.get_ident())
        time.sleep(0.6)  # longer than REDRAW_INTERVAL, as on a busy machine
        return plot_progress(history, upto=upto, ax=ax)

    panel = PlotPanel(slow_plot, title="slow", figsize=(3, 2))
    search = RandomSearch(SPACE, SPACE.evaluate, seed=0)
    dash = Dashboard(search, panels=[panel])
    search.run(300, progress=False)
    assert threading.get_ident() not in threads, "the search's own thread waited for a redraw"
    assert shows(dash, 300, 300, timeout=15)
    assert panel.draws < 10, f"{panel.draws} redraws of one fast run"
    dash.close()


def visible(caption: str) -> str:
    """The text a caption shows: tags dropped (a line break as ' | '), entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", caption.replace("<br>", " | ")))


class Shown:
    """What a CellPanel reads of a search: its space, metric and history."""

    def __init__(self, history):
        self.space, self.metric, self.history = SPACE, "val_accuracy", history


def test_cell_panel_caption_for_each_record_kind():
    from nasnb.history import History, Trial

    history = History([
        Trial(0, "op0-op1-op2-op0", {"val_accuracy": 0.5, "params": 1200}),
        Trial(1, "op1-op1-op1-op1", {"val_accuracy": float("nan")}, state="failed",
              error="the evaluator returned nan for the metric 'val_accuracy'\nsecond line"),
        Trial(2, "op2-op2-op2-op2", {"val_accuracy": 0.9}, state="pruned"),
        Step(3, {"val_accuracy": 0.25}),
    ])
    panel = make_panel("cell")
    captions = []
    for upto in range(1, 5):
        panel.update(Shown(history), upto)
        captions.append(panel.candidate_caption.value)
    assert visible(captions[0]) == "op0-op1-op2-op0 | val_accuracy 0.5 · params 1,200"
    # the error's first line instead of the metrics; the whole error in the tooltip
    assert visible(captions[1]) == "op1-op1-op1-op1 | failed: the evaluator returned nan for the metric 'val_accuracy'"
    assert "second line" in html.unescape(captions[1])
    assert visible(captions[2]) == "op2-op2-op2-op2 | pruned · val_accuracy 0.9"
    assert visible(captions[3]) == "val_accuracy 0.25"  # no arch: the caption only
    assert panel.candidate_image.layout.display == "none" and "(step 3)" in panel.candidate_title.value
    assert "(trial 0)" in panel.best_title.value  # pruned 0.9 and failed are never the best


def png_of_size(width, height) -> bytes:
    """A PNG signature and IHDR chunk with this size (all the panel reads)."""
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", width, height) + b"\x08\x06\x00\x00\x00"


@pytest.mark.parametrize("size, flow, width", [((900, 100), "column", "100%"), ((400, 300), "row", "50%"),
                                               ((350, 100), "row", "50%"), ((351, 100), "column", "100%")])
def test_cell_panel_stacks_long_strip_drawings(size, flow, width):
    """A drawing wider than WIDE_ASPECT (3.5) times its height gets the full width: candidate above best."""
    panel = make_panel("cell")
    panel._arrange(png_of_size(*size))
    assert panel.widget.layout.flex_flow == flow
    assert [c.layout.width for c in panel.columns] == [width, width]


def test_toy_chain_is_drawn_full_width_in_the_dashboard():
    dash = Dashboard(RandomSearch(ToySpace(length=6, options=4), ToySpace(6, 4).evaluate, seed=0))
    dash.step_button.click()
    cell = dash.panels["cell"]
    w, h = struct.unpack(">II", bytes(cell.candidate_image.value)[16:24])
    assert w > 3.5 * h and cell.widget.layout.flex_flow == "column"


@pytest.mark.parametrize("name", ["RandomSearch", "RegularizedEvolution", "Reinforce"])
def test_dashboard_uses_only_core_widget_models(name):
    """Colab, VS Code, Notebook 7 and JupyterLab render the core models (@jupyter-widgets/base,
    controls, output) with no extension installed; a third-party model would show as text there."""
    import ipywidgets

    factory = {"RandomSearch": lambda: RandomSearch(SPACE, SPACE.evaluate, seed=0),
               "RegularizedEvolution": lambda: strategies.RegularizedEvolution(SPACE, SPACE.evaluate, population_size=3,
                                                                               sample_size=2, seed=0),
               "Reinforce": lambda: strategies.Reinforce(SPACE, SPACE.evaluate, seed=0)}[name]
    dash = Dashboard(factory())
    dash.step_button.click()

    def tree(widget):  # every widget the dashboard displays, children and layouts included
        yield widget
        for trait in widget.keys:
            value = getattr(widget, trait)
            for child in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(child, ipywidgets.Widget):
                    yield from tree(child)

    modules = {w._model_module for w in tree(dash)} | {w._view_module for w in tree(dash) if w._view_module}
    assert modules <= {"@jupyter-widgets/base", "@jupyter-widgets/controls", "@jupyter-widgets/output"}, modules
    assert len(list(tree(dash))) > 20  # the walk did reach the panels


# ---------------------------------------------------------------- the alphas panel

ALPHA_ARCHS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|",
               "|skip_connect~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"]


class AlphaSteps(Search):
    """A one-shot search in miniature on NB201: each step records softmax(α) (drifting slowly from
    uniform, as DARTS' do) and derives ALPHA_ARCHS[derived[k]]."""

    def __init__(self, derived, **kwargs):
        from nasnb.spaces import NB201Space

        super().__init__(NB201Space(), **kwargs)
        self.derived_sequence = list(derived)
        self.direction = self.rng.normal(size=(6, 5))

    def step(self):
        import numpy as np

        k = len(self.history)
        logits = 0.01 * k * self.direction
        weights = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).tolist()
        arch = ALPHA_ARCHS[self.derived_sequence[k]]
        return self._record(Step(k, {"val_accuracy": 0.1 * k}, 0.001, {"alphas": {"cell": weights}, "derived": arch},
                                 arch=arch))


def flat(rows):
    return [w for row in rows for w in row]


def test_alphas_panel_is_the_registry_view_drawn_live():
    from nasnb.widgets.panels import AlphasPanel

    assert isinstance(make_panel("alphas"), AlphasPanel)
    dash = Dashboard(AlphaSteps([0] * 3, seed=0), panels=("alphas", "progress"))
    assert tuple(dash.panels) == ("alphas", "progress") and "no step with α yet" in dash.panels["alphas"].caption.value


def test_alphas_panel_moves_its_artists_in_place():
    search = AlphaSteps([0] * 8, seed=0)
    dash = Dashboard(search, panels=("alphas", "progress"))
    panel = dash.panels["alphas"]
    dash.step_button.click()
    bars, lines = list(panel.live.bars["cell"]), [list(row) for row in panel.live.lines["cell"]]
    for k in range(1, 6):
        dash.step_button.click()
        assert all(a is b for a, b in zip(panel.live.bars["cell"], bars))
        assert all(a is b for row, old in zip(panel.live.lines["cell"], lines) for a, b in zip(row, old))
        assert [b.get_height() for b in bars] == flat(search.history[k].info["alphas"]["cell"])
        assert list(lines[2][4].get_ydata()) == [r.info["alphas"]["cell"][2][4] for r in search.history]
        assert f"at step {k}" in panel.caption.value
    assert panel.live.full_draws == 1 and panel.live.blits == 5 and panel.draws == 7  # with the empty step 0


def test_alphas_panel_redraws_the_derived_cell_only_when_it_changes(monkeypatch):
    import nasnb.viz as viz

    drawn = []
    real = viz.cell_image
    monkeypatch.setattr(viz, "cell_image",
                        lambda space, arch, **kw: drawn.append(space.format(arch)) or real(space, arch, **kw))
    search = AlphaSteps([0, 0, 1, 1, 1, 0], seed=0)
    dash = Dashboard(search, panels=("alphas",))
    panel = dash.panels["alphas"]
    images = []
    for _ in range(6):
        dash.step_button.click()
        images.append(bytes(panel.derived_image.value))
    assert drawn == [ALPHA_ARCHS[0], ALPHA_ARCHS[1]]  # back to the first: from the cache, not drawn again
    assert panel.cell_draws == 2
    assert images[0] == images[1] == images[5] != images[2] == images[3] == images[4]
    assert "derived cell unchanged since step 5" in panel.caption.value


def test_alphas_panel_slider_replays_step_t():
    search = AlphaSteps([0, 0, 1, 1, 0, 0], seed=0)
    dash = Dashboard(search, panels=("alphas", "progress"))
    for _ in range(6):
        dash.step_button.click()
    panel = dash.panels["alphas"]
    live_png = bytes(panel.image.value)
    dash.history_slider.value = 3  # the first 3 records: step 2 on screen
    assert [b.get_height() for b in panel.live.bars["cell"]] == flat(search.history[2].info["alphas"]["cell"])
    assert "at step 2" in panel.caption.value and "since step 2" in panel.caption.value
    assert ALPHA_ARCHS[1] in panel.derived_caption.value and bytes(panel.image.value) != live_png
    dash.history_slider.value = 6
    assert bytes(panel.image.value) == live_png


def test_alphas_panel_follows_a_real_darts_search():
    import nasnb
    from nasnb.spaces import NB201Space
    from nasnb.strategies import DARTS
    from nasnb.strategies.reinforce import one_thread

    data = nasnb.data.load("digits").subset(train_size=64, val_size=32, seed=0)
    with one_thread():
        search = DARTS(NB201Space(), data, order=1, batch_size=16, supernet_kwargs={"C": 4, "N": 1}, seed=0)
        dash = Dashboard(search, panels=("alphas", "progress"))
        for _ in range(3):
            dash.step_button.click()
    panel = dash.panels["alphas"]
    assert [b.get_height() for b in panel.live.bars["cell"]] == flat(search.state()["alphas"]["cell"])
    assert bytes(panel.derived_image.value)[:8] == b"\x89PNG\r\n\x1a\n"
    assert search.state()["derived"] in panel.derived_caption.value


# ---------------------------------------------------------------- redraws within a tenth of the time

class FakeClock:
    """perf_counter for the dashboard: it moves only when a step or a panel says so."""

    def __init__(self):
        self.now, self.lock = 1000.0, threading.Lock()

    def __call__(self):
        return self.now

    def advance(self, seconds):
        with self.lock:
            self.now += seconds


class SlowPanel(Panel):
    """A panel whose every redraw takes `cost` seconds of the fake clock; it remembers what it drew."""

    def __init__(self, clock, cost):
        super().__init__()
        self.clock, self.cost, self.drawn = clock, cost, []

    def update(self, search, upto):
        self.clock.advance(self.cost)
        self.drawn.append(upto)
        self.draws += 1
        return True


def test_play_draws_a_step_only_when_drawing_stays_within_a_tenth_of_the_time(monkeypatch):
    import types

    import nasnb.widgets.dashboard as dashboard_module

    clock = FakeClock()
    monkeypatch.setattr(dashboard_module, "time", types.SimpleNamespace(perf_counter=clock))

    def evaluate(arch):  # a 10 ms step
        clock.advance(0.01)
        return SPACE.evaluate(arch)

    search = BrokenAfter(SPACE, evaluate, seed=0, n_ok=100)  # Play stops by itself after 100 steps
    panel = SlowPanel(clock, cost=0.05)  # a 50 ms redraw: at most one per 9 x 50 ms = 45 steps
    dash = Dashboard(search, panels=[panel])
    dash.play()
    assert dash.wait(timeout=60)
    assert len(search.history) == 100
    drawn = panel.drawn
    assert drawn[0] == 0 and drawn[1] == 1 and drawn[-1] == 100  # the empty start, the first step, where it stopped
    gaps = [b - a for a, b in zip(drawn[1:-1], drawn[2:-1])]
    assert gaps and all(45 <= gap <= 46 for gap in gaps), drawn
    assert dash.redraws == len(drawn) and abs(dash.drawing_seconds - 0.05 * len(drawn)) < 1e-6
    assert dash.history_slider.max == dash.history_slider.value == 100
    # Step by hand always draws
    search.n_ok = 103
    for _ in range(3):
        dash.step_button.click()
    assert panel.drawn[-3:] == [101, 102, 103]


def test_play_draws_every_step_when_drawing_is_cheap(monkeypatch):
    import types

    import nasnb.widgets.dashboard as dashboard_module

    clock = FakeClock()
    monkeypatch.setattr(dashboard_module, "time", types.SimpleNamespace(perf_counter=clock))

    def evaluate(arch):
        clock.advance(0.1)
        return SPACE.evaluate(arch)

    search = BrokenAfter(SPACE, evaluate, seed=0, n_ok=20)
    panel = SlowPanel(clock, cost=0.005)  # 5 ms next to 100 ms steps
    dash = Dashboard(search, panels=[panel])
    dash.play()
    assert dash.wait(timeout=60)
    assert panel.drawn == list(range(21))


def test_play_redraws_at_least_every_max_redraw_wait_seconds(monkeypatch):
    import types

    import nasnb.widgets.dashboard as dashboard_module

    clock = FakeClock()
    monkeypatch.setattr(dashboard_module, "time", types.SimpleNamespace(perf_counter=clock))

    def evaluate(arch):
        clock.advance(0.01)
        return SPACE.evaluate(arch)

    search = BrokenAfter(SPACE, evaluate, seed=0, n_ok=700)
    panel = SlowPanel(clock, cost=1.0)  # 9 s of stepping per redraw would keep 10%; the cap is 3 s
    dash = Dashboard(search, panels=[panel])
    dash.play()
    assert dash.wait(timeout=120)
    gaps = [b - a for a, b in zip(panel.drawn[1:-1], panel.drawn[2:-1])]
    assert gaps and all(300 <= gap <= 301 for gap in gaps), panel.drawn


def test_the_title_says_what_the_search_optimises_and_in_which_direction():
    from nasnb.strategies.nsga2 import NSGA2

    def two(arch):
        return {"val_accuracy": SPACE.evaluate(arch)["val_accuracy"], "latency_ms": float(sum(arch))}

    def title(search) -> str:
        dash = Dashboard(search)
        text = html.unescape(re.sub("<[^>]+>", "", dash.children[0].value))
        dash.close()
        return text

    assert title(RandomSearch(SPACE, SPACE.evaluate)).endswith("maximising val_accuracy")
    both = title(NSGA2(SPACE, two, objectives={"val_accuracy": "max", "latency_ms": "min"}, population_size=4))
    assert both.endswith("objectives val_accuracy max, latency_ms min (Pareto front)") and "maximising" not in both
    fastest = title(NSGA2(SPACE, two, objectives={"latency_ms": "min"}, population_size=4))
    assert fastest.endswith("minimising latency_ms")
