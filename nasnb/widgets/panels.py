"""The views of a Dashboard: each one draws step `upto` of a search's history into ipywidgets.

A panel owns a widget (`panel.widget`) and one method, `update(search, upto)`, which shows what the
first `upto` records of `search.history` looked like. Panels only draw: every number comes from a
function of the history in `nasnb.viz`, so the same pictures are available headless (call
`nasnb.viz.plot_population(history, upto=t)` and save the Figure). Because a history is
append-only, (history, upto) fixes a picture: a panel skips redrawing when neither changed, and the
cell panel keeps the drawings it already made, so scrubbing back and forth costs almost nothing.

`PANELS` names them: "cell" (the candidate of step `upto` and the best cell so far, drawn by
nasnb.viz.cell_image; a failed candidate shows its error, a one-shot step its metrics) and every
view of `nasnb.registry` ("view"):

    progress    metric per trial or step and the best-so-far line (nasnb.viz.plot_progress)
    population  an evolution's population (nasnb.viz.plot_population)
    policy      a controller's per-decision probabilities (nasnb.viz.plot_policy)
    alphas      a one-shot search's softmax(α) per edge and the derived cell (nasnb.viz.plot_alphas)

These four follow the search live (`LivePanel`, `AlphasPanel` in live_panels.py; LIVE_PANELS
here): their figures (nasnb.viz.live) are drawn once and then moved in place, a few milliseconds a
step, where drawing the static view from scratch took 70-400 ms (benchmarks/redraw.py). A view registered later
(`registry.register("view", "mine", "mypackage.plots:plot_mine")`) is a panel too, a `PlotPanel`
that draws it from scratch.

Figures become PNG bytes through matplotlib's Agg canvas, never pyplot, so nothing piles up in a
pyplot figure manager and no GUI backend is touched.
"""
from __future__ import annotations

import functools
import html
import importlib
import io
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Callable

import ipywidgets as widgets

from nasnb import registry
from nasnb.errors import UnknownNameError
from nasnb.history import Trial

WIDE_ASPECT = 3.5  # a cell drawing wider than this many times its height gets the panel's full width
CAPTION_STYLE = "font-family: monospace; font-size: 12px; line-height: 1.3; word-break: break-all"
ERROR_STYLE = "color: #CC0000"
ERROR_LIMIT = 160  # characters of a failed trial's error shown under its cell (the rest in a tooltip)


def figure_png(fig, dpi: int = 72) -> bytes:
    """A matplotlib Figure as PNG bytes (Agg canvas; a low dpi keeps redraws cheap)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def format_metrics(metrics: dict, first: str, limit: int = 4) -> str:
    """'val_accuracy 0.9333 · params 55,218': the searched metric first, numbers only."""
    names = [first] + sorted(k for k in metrics if k != first)
    parts = []
    for name in names:
        value = metrics.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        parts.append(f"{name} {value:,}" if isinstance(value, int) else f"{name} {value:.4g}")
    return " · ".join(parts[:limit])


def shorten(text: str, limit: int = ERROR_LIMIT) -> str:
    """The first line of `text`, cut to `limit` characters with an ellipsis."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[:limit - 1] + "…"


def outcome_html(record, metric: str) -> str:
    """What a record's caption says after its architecture: the metrics, or why it failed."""
    if isinstance(record, Trial) and record.state == "failed":
        error = record.error or "failed"
        return (f"<span style='{ERROR_STYLE}' title='{html.escape(error, quote=True)}'>"
                f"failed: {html.escape(shorten(error))}</span>")
    text = html.escape(format_metrics(record.metrics, metric))
    return f"pruned · {text}" if isinstance(record, Trial) and record.state == "pruned" else text


class Panel:
    """Base of the dashboard's views: `widget` to display, `update(search, upto)` to draw."""

    title = ""

    def __init__(self):
        self.draws = 0  # how many times the panel really redrew (skipped updates do not count)
        self.last_seconds = 0.0  # wall time of the last redraw: the dashboard's overhead, measured
        self.widget = widgets.VBox()

    def update(self, search, upto: int) -> bool:
        """Show trials [0, upto) of `search.history`; returns whether anything was redrawn."""
        raise NotImplementedError

    def _timed(self, draw: Callable[[], None]) -> bool:
        start = time.perf_counter()
        draw()
        self.last_seconds = time.perf_counter() - start
        self.draws += 1
        return True


class CellPanel(Panel):
    """The candidate of the shown step and the best cell so far, drawn as in the papers.

    Spaces that cannot draw (no `to_graph`/`parse`) get a text caption instead of a picture. A
    failed candidate is drawn with its error (shortened) in place of its metrics; a one-shot
    search's Step is drawn when it names an architecture, else it gets its caption only.
    """

    title = "cell"

    def __init__(self, cache_size: int = 256):
        super().__init__()
        self.cache_size = cache_size
        self._png: OrderedDict = OrderedDict()  # (id(space), arch string) -> PNG bytes
        self._shown: tuple | None = None  # what is on screen: (candidate, best) trials
        self.candidate_title, self.candidate_image, self.candidate_caption = self._slot()
        self.best_title, self.best_image, self.best_caption = self._slot()
        self.columns = [  # each its own Layout: _arrange sets their widths
            widgets.VBox(slot, layout=widgets.Layout(width="50%", min_width="220px", padding="0 6px 0 0"))
            for slot in ([self.candidate_title, self.candidate_image, self.candidate_caption],
                         [self.best_title, self.best_image, self.best_caption])
        ]
        self.widget = widgets.HBox(self.columns, layout=widgets.Layout(width="100%", flex_flow="row"))

    @staticmethod
    def _slot():
        image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto", display="none"))
        return widgets.HTML(), image, widgets.HTML()

    def update(self, search, upto: int) -> bool:
        history = search.history
        candidate = history[upto - 1] if upto > 0 else None
        best = history.best(upto=upto)
        if self._shown == (candidate, best):  # Trials are frozen values: equal means same picture
            return False
        return self._timed(lambda: self._draw(search, upto, candidate, best))

    def _draw(self, search, upto, candidate, best) -> None:
        self._fill(search, self.candidate_title, self.candidate_image, self.candidate_caption, candidate,
                   f"candidate of step {upto}" if candidate else "candidate: no trial yet")
        self._fill(search, self.best_title, self.best_image, self.best_caption, best,
                   f"best of the first {upto} trials" if best else "best so far: no trial yet")
        self._shown = (candidate, best)
        self._arrange(self.candidate_image.value or self.best_image.value)

    def _arrange(self, png: bytes) -> None:
        """Side by side, or one above the other when the drawing is a long strip (a chain of
        decisions, as in ToySpace): half the width would shrink it until its labels are unreadable."""
        png = bytes(png)  # the widget hands its value back as a memoryview
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")  # PNG header
        wide = png.startswith(b"\x89PNG") and width > WIDE_ASPECT * height
        self.widget.layout.flex_flow = "column" if wide else "row"
        for column in self.columns:
            column.layout.width = "100%" if wide else "50%"

    def _fill(self, search, title, image, caption, record, heading: str) -> None:
        kind = "trial" if isinstance(record, Trial) else "step"
        title.value = f"<b>{html.escape(heading)}</b>" + (f" ({kind} {record.number})" if record else "")
        if record is None:
            image.value, image.layout.display = b"", "none"
            caption.value = ""
            return
        png = None if record.arch is None else self._drawing(search.space, record.arch)
        image.value, image.layout.display = (png, None) if png is not None else (b"", "none")
        arch = "" if record.arch is None else f"{html.escape(record.arch)}<br>"
        caption.value = f"<div style='{CAPTION_STYLE}'>{arch}{outcome_html(record, search.metric)}</div>"

    def _drawing(self, space, arch: str) -> bytes | None:
        """PNG of the cell `arch`, cached; None when the space has no drawing (text caption only)."""
        if not (hasattr(space, "to_graph") and hasattr(space, "parse")):
            return None
        key = (id(space), arch)
        if key not in self._png:
            from nasnb.viz import cell_image  # loads graphviz / matplotlib only when a cell is drawn

            self._png[key] = cell_image(space, space.parse(arch), format="png")
            if len(self._png) > self.cache_size:
                self._png.popitem(last=False)
        self._png.move_to_end(key)
        return self._png[key]


class PlotPanel(Panel):
    """Any `plot(history, upto=t) -> Figure` shown as a PNG image.

    plot: the function, or "module:function" (imported when the panel first draws, so a
        dashboard does not load matplotlib before it needs it).
    figsize: (width, height) in inches: the panel makes the Figure, with fixed margins, and passes
        its Axes as `ax=`. Fixed margins draw the figure once; the constrained layout the plot
        functions use on their own draws it twice and costs about 40% more per redraw.
        None: call `plot(history, upto=t)` and show the Figure it makes.
    axes: `axes(fig)` returns what to pass as `ax=` (e.g. three Axes for `plot_policy`); by
        default one Axes with fixed margins.
    dpi: pixels per inch of the PNG; 72 keeps redraws and messages small.
    """

    def __init__(self, plot: Callable | str, title: str = "", figsize: tuple | None = None,
                 axes: Callable | None = None, dpi: int = 72):
        super().__init__()
        self.plot, self.title = plot, title or getattr(plot, "__name__", str(plot))
        self.figsize, self.axes, self.dpi = figsize, axes or one_axes, dpi
        self._shown: tuple | None = None  # (history object, upto) on screen
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.caption = widgets.HTML()
        self.widget = widgets.VBox([self.image, self.caption])

    def resolve(self) -> Callable:
        if callable(self.plot):
            return self.plot
        module, _, name = self.plot.partition(":")
        self.plot = getattr(importlib.import_module(module), name)
        return self.plot

    def update(self, search, upto: int) -> bool:
        history = search.history
        if self._shown is not None and self._shown[0] is history and self._shown[1] == upto:
            return False  # append-only: the first `upto` trials of this history have not changed
        return self._timed(lambda: self._draw(history, upto))

    def _draw(self, history, upto: int) -> None:
        if upto == 0:
            self.image.value, self.image.layout.display = b"", "none"
            self.caption.value = "<i>no trials yet: press Step or Play</i>"
        else:
            self.image.value = figure_png(self._figure(history, upto), self.dpi)
            self.image.layout.display = None
            self.caption.value = ""
        self._shown = (history, upto)

    def _figure(self, history, upto: int):
        plot = self.resolve()
        if self.figsize is None:
            return plot(history, upto=upto)
        from matplotlib.figure import Figure

        fig = Figure(figsize=self.figsize)
        plot(history, upto=upto, ax=self.axes(fig))
        return fig


def one_axes(fig):
    """One Axes with fixed margins that leave room for tick labels, axis labels, a title and, on the
    right, a legend outside the axes."""
    fig.subplots_adjust(left=0.1, right=0.8, bottom=0.13, top=0.92)
    return fig.add_subplot()


def policy_axes(fig):
    """Bars across the top, entropy and reward below: plot_policy's own arrangement, fixed margins."""
    grid = fig.add_gridspec(2, 2, height_ratios=(1.25, 1), left=0.08, right=0.98, bottom=0.08, top=0.94,
                            hspace=0.4, wspace=0.25)
    return [fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])]


# How a view's PlotPanel lays its figure out, by the view's "module:function" in the registry;
# a view not listed gets one Axes of 7 x 4 inches.
LAYOUTS: dict[str, tuple] = {
    "nasnb.viz.qtable:plot_qtable": ((11, 4.2), lambda fig: fig.subplots(1, 2, gridspec_kw=dict(  # Q on the path, ε
        width_ratios=(1.9, 1), left=0.2, right=0.98, bottom=0.3, top=0.9, wspace=0.3))),
    "nasnb.viz.policy:plot_policy": ((7, 5.5), policy_axes),
    "nasnb.viz.pareto:plot_pareto": ((9, 4), lambda fig: fig.subplots(1, 2, gridspec_kw=dict(  # space, hypervolume
        width_ratios=(1.6, 1), left=0.08, right=0.98, bottom=0.13, top=0.92, wspace=0.28))),
}


def view_panel(name: str) -> Panel:
    """The panel of the registered view `name`: its live panel when it has one (LIVE_PANELS), else a
    PlotPanel (the view imported when it first draws)."""
    where = registry.target("view", name)
    if where in LIVE_PANELS:
        return LIVE_PANELS[where]()
    figsize, axes = LAYOUTS.get(where, ((7, 4), one_axes))
    return PlotPanel(where, title=name, figsize=figsize, axes=axes)


def live_panel(live: str, title: str) -> Panel:
    """A `LivePanel` of the LiveFigure `live` ("module:Class"). The live panels are Panels, so
    live_panels.py imports this module: this one imports live_panels.py only when it makes one."""
    from nasnb.widgets.live_panels import LivePanel

    return LivePanel(live, title)


def qtable_panel() -> Panel:
    """A `QTablePanel` (live_panels.py, imported when it is made, as in live_panel)."""
    from nasnb.widgets.live_panels import QTablePanel

    return QTablePanel()


def program_panel() -> Panel:
    """A `ProgramPanel` (program_panel.py, imported when it is made, as in live_panel)."""
    from nasnb.widgets.program_panel import ProgramPanel

    return ProgramPanel()


def alphas_panel() -> Panel:
    """An `AlphasPanel` (live_panels.py, imported when it is made, as in live_panel)."""
    from nasnb.widgets.live_panels import AlphasPanel

    return AlphasPanel()


# Views whose panel updates its artists in place instead of drawing the view from scratch, by the
# view's "module:function" in the registry; the static view stays what notebooks and files use.
LIVE_PANELS: dict[str, Callable[[], Panel]] = {
    "nasnb.viz.search:plot_progress": functools.partial(live_panel, "nasnb.viz.live:LiveProgress", "progress"),
    "nasnb.viz.search:plot_population": functools.partial(live_panel, "nasnb.viz.live:LivePopulation", "population"),
    "nasnb.viz.policy:plot_policy": functools.partial(live_panel, "nasnb.viz.policy:LivePolicy", "policy"),
    "nasnb.viz.alphas:plot_alphas": alphas_panel,
    "nasnb.viz.pareto:plot_pareto": functools.partial(live_panel, "nasnb.viz.pareto:LivePareto", "pareto"),
    "nasnb.viz.qtable:plot_qtable": qtable_panel,
    "nasnb.viz.program:plot_program": program_panel,
    "nasnb.viz.rungs:plot_rungs": functools.partial(live_panel, "nasnb.viz.rungs:LiveRungs", "rungs"),
}


class _Panels(Mapping):
    """Panel makers by name: "cell", and every view of the registry, those registered later too."""

    def __getitem__(self, name: str) -> Callable[[], Panel]:
        if name == "cell":
            return CellPanel
        if isinstance(name, str) and name in registry.names("view"):
            return functools.partial(view_panel, name)
        raise UnknownNameError(f"unknown panel {name!r}; choose from {list(self)} or pass a Panel "
                               "(e.g. PlotPanel(my_plot, title='...'), where my_plot(history, upto) returns a Figure)")

    def __iter__(self) -> Iterator[str]:
        return iter(["cell", *registry.names("view")])

    def __len__(self) -> int:
        return 1 + len(registry.names("view"))


PANELS: Mapping[str, Callable[[], Panel]] = _Panels()


def make_panel(panel: str | Panel) -> Panel:
    """A panel from its name in PANELS, or a Panel instance as it is."""
    if isinstance(panel, Panel):
        return panel
    return PANELS[panel]()


def __getattr__(name: str):
    """`from nasnb.widgets.panels import LivePanel` (or AlphasPanel) still works: they moved to
    live_panels.py, which imports this module, so they are looked up there when first asked for."""
    if name in ("LivePanel", "AlphasPanel"):
        from nasnb.widgets import live_panels

        return getattr(live_panels, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
