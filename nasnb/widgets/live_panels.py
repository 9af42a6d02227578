"""The dashboard panels that follow a search live: a figure drawn once, then its artists moved in place.

`LivePanel` shows a `nasnb.viz.live.LiveFigure` (LiveProgress, LivePopulation, LivePolicy,
LiveAlphas): the figure is built at the first draw and every later step only moves its points,
lines and bar heights over a cached background, a few milliseconds a step, where drawing the
static view from scratch took 70-400 ms (benchmarks/redraw.py). `AlphasPanel` adds the cell
derived from a one-shot search's α, drawn only when it changes. Which view gets which panel is
`LIVE_PANELS` in panels.py; the base class and the other panels are there too.
"""
from __future__ import annotations

import html
import importlib
from collections import OrderedDict
from typing import Callable

import ipywidgets as widgets

from nasnb.widgets.panels import CAPTION_STYLE, Panel


class LivePanel(Panel):
    """A view drawn by a `nasnb.viz.live.LiveFigure`: built once, then its artists moved in place at
    every step (points, lines, bar heights) and repainted over a cached background, so a redraw
    costs a few to a few tens of milliseconds instead of the 70-400 ms of a figure drawn from
    scratch (benchmarks/redraw.py). The numbers that change every step (counts, the trial shown)
    are in the caption, as HTML.

    live: the LiveFigure class, or "module:Class" (imported when the panel first draws).
    """

    def __init__(self, live: Callable | str, title: str = "", figsize: tuple | None = None, dpi: int = 72):
        super().__init__()
        self.live_class, self.title = live, title
        self.figsize, self.dpi = figsize, dpi
        self.live = None  # made at the first draw
        self.data_shown: dict | None = None  # what the live figure drew last (None: nothing yet)
        self._shown: tuple | None = None  # (history object, upto) on screen
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.widget = widgets.VBox([self.caption, self.image])

    def _live(self):
        if self.live is None:
            live = self.live_class
            if isinstance(live, str):
                module, _, name = live.partition(":")
                live = getattr(importlib.import_module(module), name)
            self.live = live(figsize=self.figsize, dpi=self.dpi)
        return self.live

    def update(self, search, upto: int) -> bool:
        history = search.history
        if self._shown is not None and self._shown[0] is history and self._shown[1] == upto:
            return False  # append-only: the first `upto` records of this history have not changed
        return self._timed(lambda: self._draw(search, upto))

    def _draw(self, search, upto: int) -> None:
        self._shown = (search.history, upto)
        self.data_shown = data = self._data(search, upto)
        if data is None:
            self.image.value, self.image.layout.display = b"", "none"
            self.caption.value = "<i>no trials yet: press Step or Play</i>"
            return
        live = self._live()
        self.image.value = live.render(search.history, upto, data=data)
        self.image.layout.display = None
        self.caption.value = f"<span style='font-size: 12px'>{html.escape(live.caption(data))}</span>"

    def _data(self, search, upto: int) -> dict | None:
        """What the live figure draws; None when there is nothing to draw yet."""
        return None if upto == 0 else self._live().data(search.history, upto)


class AlphasPanel(LivePanel):
    """A one-shot search's softmax(α) per edge as bars, their history as lines (LiveAlphas), and
    the derived cell: drawn by `nasnb.viz.cell_image` (graphviz when `dot` exists; both cells for
    DARTS) only when the derived architecture changes, and cached, so scrubbing back with the
    slider draws nothing twice. `cell_draws` counts the cell drawings actually made.
    """

    def __init__(self, figsize: tuple | None = None, dpi: int = 72, cache_size: int = 64):
        super().__init__("nasnb.viz.alphas:LiveAlphas", title="alphas", figsize=figsize, dpi=dpi)
        self.cache_size = cache_size
        self.cell_draws = 0
        self._cells: OrderedDict = OrderedDict()  # (id(space), derived text) -> PNG bytes (None: not drawable)
        self._derived_shown: tuple | None = None  # (id(space), derived text) on screen
        self.derived_caption = widgets.HTML()
        self.derived_image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.widget = widgets.VBox([self.caption, self.image, self.derived_caption, self.derived_image])

    def _data(self, search, upto: int) -> dict | None:
        from nasnb.viz.alphas import alpha_data

        data = alpha_data(search.history, upto)
        return data if data["cells"] else None

    def _draw(self, search, upto: int) -> None:
        super()._draw(search, upto)
        data = self.data_shown
        if data is None:
            self.caption.value = "<i>no step with α yet: press Step or Play</i>"
            self.derived_image.layout.display = "none"
            self.derived_caption.value = ""
            return
        self.caption.value = f"<b>{self.caption.value}</b>"
        self.derived_caption.value = (f"<div style='{CAPTION_STYLE}'>derived at step {data['step']}: "
                                      f"{html.escape(str(data['derived']))}</div>")
        self._show_derived(search.space, data["derived"])

    def _show_derived(self, space, derived) -> None:
        key = (id(space), derived)
        if key == self._derived_shown:
            return  # the derived architecture did not change: its drawing is on screen
        if key not in self._cells:
            self._cells[key] = self._drawing(space, derived)
            if len(self._cells) > self.cache_size:
                self._cells.popitem(last=False)
        self._cells.move_to_end(key)
        png = self._cells[key]
        self.derived_image.value, self.derived_image.layout.display = (png, None) if png else (b"", "none")
        self._derived_shown = key

    def _drawing(self, space, derived) -> bytes | None:
        if derived is None or not (hasattr(space, "to_graph") and hasattr(space, "parse")):
            return None
        from nasnb.viz import cell_image

        self.cell_draws += 1
        return cell_image(space, space.parse(derived), format="png")


class QTablePanel(LivePanel):
    """A MetaQNN agent live: ε and the rewards as a moving figure (LiveQTable) and, above it, the
    Q-values along the last sampled path as an HTML table (`qtable_html`): the rows and columns
    change with every path, which as text costs a string, where a matplotlib table took 0.45 s."""

    def __init__(self, figsize: tuple | None = None, dpi: int = 72):
        super().__init__("nasnb.viz.qtable:LiveQTable", title="qtable", figsize=figsize, dpi=dpi)
        self.table = widgets.HTML()
        self.widget = widgets.VBox([self.caption, self.table, self.image])

    def _draw(self, search, upto: int) -> None:
        super()._draw(search, upto)
        if self.data_shown is None:
            self.table.value = ""
            return
        from nasnb.viz.qtable import qtable_html

        self.table.value = (f"<div style='{CAPTION_STYLE}'>Q along the path of trial {self.data_shown['trial']} "
                            f"(outlined: taken; ~: a random action)</div>{qtable_html(self.data_shown)}")
