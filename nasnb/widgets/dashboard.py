"""Dashboard: step, play, pause, reset and scrub through a search, and watch its panels follow.

The dashboard only observes. It calls the strategy's public API (`step()`, `reset()`,
`subscribe()`, `history`, `best()`, `space`) and draws what `nasnb.viz` computes from the history;
the search runs the same with or without it. Everything a panel shows is a function of
`search.history`, so the same views exist headless (`nasnb.viz.plot_population(history, upto=t)`
and friends return matplotlib Figures).

Play runs steps on a background daemon thread, so the kernel stays free: other cells run, the
history slider responds, and Pause takes effect after the step in progress (a step is never cut
in half, so the history stays consistent). The dashboard also subscribes to the search, so
`search.run(50)` in another cell moves it too (redrawn at most twice a second, so a fast run is not
slowed down to drawing speed; the last trial is always drawn).

Core ipywidgets only (no front-end extension), so it works in JupyterLab, Notebook 7, VS Code and
Colab:

    dash = Dashboard(search)      # last expression of a cell: displays it
    dash.step_button.click()      # or dash.step(); dash.play(); dash.pause(); dash.show_step(3)
"""
from __future__ import annotations

import html
import threading
import time
import traceback

import ipywidgets as widgets

from nasnb.widgets.panels import Panel, make_panel


class Dashboard(widgets.VBox):
    """Controls (Step, Play/Pause, Reset, delay, history slider) above the panels of `search`.

    panels: names from `nasnb.widgets.panels.PANELS` or Panel objects; by default the views the
        strategy asks for (`search.panels`, e.g. ("cell", "population") for evolution).
    delay: seconds to wait between steps while playing (the `speed` slider).
    """

    def __init__(self, search, *, panels=None, delay: float = 0.0):
        self.search = search
        names = tuple(search.panels if panels is None else panels)
        self.panels: dict[str, Panel] = {}
        for name in names:
            panel = make_panel(name)
            self.panels[name if isinstance(name, str) else panel.title] = panel

        self.step_button = widgets.Button(description="Step", icon="step-forward", tooltip="run one trial")
        self.play_button = widgets.ToggleButton(description="Play", icon="play", tooltip="run trials until paused")
        self.reset_button = widgets.Button(description="Reset", icon="undo", tooltip="back to the empty history, same seed")
        self.speed = widgets.FloatSlider(value=delay, min=0.0, max=max(2.0, delay), step=0.05,
                                         description="delay (s)", readout_format=".2f")
        self.history_slider = widgets.IntSlider(value=0, min=0, max=0, description="step",
                                                continuous_update=True, layout=widgets.Layout(width="60%"))
        self.status = widgets.HTML()
        self.error_output = widgets.Output()

        self._lock = threading.RLock()  # one redraw at a time (button, slider and play thread all draw)
        self._syncing = False  # True while the dashboard itself moves the slider
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stop.set()
        self._own_step = threading.local()  # .active: True while Step or Play is stepping the search
        self._last_draw = 0.0  # time.perf_counter() of the last redraw caused by a trial
        self._timer: threading.Timer | None = None  # a pending coalesced redraw

        self.step_button.on_click(lambda _: self._click(self.step))
        self.reset_button.on_click(lambda _: self._click(self.reset))
        self.play_button.observe(self._on_play_toggle, names="value")
        self.history_slider.observe(self._on_slider, names="value")
        self._unsubscribe = search.subscribe(self._on_trial)

        title = widgets.HTML(f"<b>{html.escape(type(search).__name__)}</b> on "
                             f"{html.escape(repr(search.space))}, maximising <code>{html.escape(search.metric)}</code>")
        boxes = [widgets.VBox([widgets.HTML(f"<b>{html.escape(name)}</b>"), panel.widget],
                              layout=widgets.Layout(flex="1 1 420px", min_width="320px", margin="4px"))
                 for name, panel in self.panels.items()]
        super().__init__([
            title,
            widgets.HBox([self.step_button, self.play_button, self.reset_button, self.speed]),
            widgets.HBox([self.history_slider, self.status]),
            widgets.HBox(boxes, layout=widgets.Layout(flex_flow="row wrap", width="100%")),
            self.error_output,
        ])
        self.show_step(len(search.history))

    # ---------------------------------------------------------------- driving the search

    @property
    def playing(self) -> bool:
        """True while the play thread runs (it may be finishing its last step after a pause)."""
        return self._thread is not None and self._thread.is_alive()

    def step(self):
        """One `search.step()`; the panels follow through the subscription. Returns the Trial."""
        if self.playing:
            raise RuntimeError("the dashboard is playing; pause() (and wait()) before stepping by hand")
        self.clear_error()
        try:
            return self._step_search()
        except Exception as error:
            self.show_error(error)
            raise

    def _step_search(self):
        self._own_step.active = True  # every step the dashboard takes itself is drawn
        try:
            return self.search.step()
        finally:
            self._own_step.active = False

    def reset(self) -> None:
        """`search.reset()`: the same seed, an empty history."""
        if self.playing:
            raise RuntimeError("the dashboard is playing; pause() (and wait()) before resetting")
        self.clear_error()
        try:
            self.search.reset()
        except Exception as error:
            self.show_error(error)
            raise
        self.show_step(0)

    def play(self) -> None:
        """Run steps on a background thread until pause() (or an error)."""
        self.play_button.value = True

    def pause(self) -> None:
        """Stop playing after the step in progress."""
        self.play_button.value = False

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the play thread to end (after pause() or an error); True when it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.playing

    def _click(self, action) -> None:
        try:
            action()
        except Exception:
            pass  # already shown in error_output (a button callback has nowhere else to report)

    def _on_play_toggle(self, change) -> None:
        if not change["new"]:
            self._stop.set()  # the loop checks it between steps
            return
        if self.playing:  # paused, but its last step is still running: let it finish first
            self._thread.join()
        self.clear_error()
        self._stop = stop = threading.Event()
        self._set_controls(playing=True)
        self._thread = threading.Thread(target=self._play_loop, args=(stop,), daemon=True,
                                        name="nasnb-dashboard-play")
        self._thread.start()

    def _play_loop(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self._step_search()
                if stop.wait(self.speed.value):  # sleeps `delay`, but wakes at once on pause
                    break
        except Exception as error:
            self.show_error(error)
        finally:
            if not stop.is_set():  # it ended by itself (an error): pop the Play button up
                stop.set()
                self.play_button.value = False
            self._set_controls(playing=False)

    def _set_controls(self, playing: bool) -> None:
        self.step_button.disabled = self.reset_button.disabled = playing
        self.play_button.description, self.play_button.icon = ("Pause", "pause") if playing else ("Play", "play")

    # ---------------------------------------------------------------- showing a step

    def show_step(self, upto: int) -> None:
        """Show the search as it was after `upto` trials (0 .. len(history)) in every panel."""
        n = len(self.search.history)
        if not 0 <= upto <= n:
            raise ValueError(f"step {upto} is outside the history: choose 0 .. {n} (the number of trials shown)")
        with self._lock:
            self._syncing = True
            try:
                self.history_slider.max = n
                self.history_slider.value = upto
            finally:
                self._syncing = False
            self._draw(upto)

    def refresh(self) -> None:
        """Follow the latest trial (after the search was changed behind the dashboard's back)."""
        self.show_step(len(self.search.history))

    def _on_slider(self, change) -> None:
        if not self._syncing:
            try:
                with self._lock:
                    self._draw(change["new"])
            except Exception as error:
                self.show_error(error)

    # Trials that come from elsewhere (`search.run(500)` in another cell) are drawn at most every
    # REDRAW_INTERVAL seconds, so an open dashboard cannot slow a fast run down to its drawing speed;
    # a timer draws the last one. Steps taken with Step or Play are always drawn, one by one.
    REDRAW_INTERVAL = 0.5

    def _on_trial(self, trial) -> None:
        """Called by the search after every trial, in the thread that stepped it."""
        wait = self._last_draw + self.REDRAW_INTERVAL - time.perf_counter()
        if getattr(self._own_step, "active", False) or wait <= 0:
            self._follow_trials()
        elif self._timer is None:
            self._timer = threading.Timer(wait, self._follow_trials)
            self._timer.daemon = True
            self._timer.start()

    def _follow_trials(self) -> None:
        try:
            with self._lock:
                self._timer = None
                self._last_draw = time.perf_counter()
                at_end = self.history_slider.value == self.history_slider.max
                n = len(self.search.history)
                self.show_step(n if at_end else min(self.history_slider.value, n))
        except Exception as error:  # a drawing bug must not break the search: show it, stop playing
            self.show_error(error)
            self._stop.set()

    def _draw(self, upto: int) -> None:
        for panel in self.panels.values():
            panel.update(self.search, upto)
        self.status.value = self._status_text(upto)

    def _status_text(self, upto: int) -> str:
        history, metric = self.search.history, self.search.metric
        parts = [f"trial {upto} of {len(history)}"]
        best = history.best(upto=upto)
        if best is not None:
            parts.append(f"best {metric} {best.value(metric):.4g} (trial {best.number})")
        if upto > 0:
            parts.append(f"step {history[upto - 1].seconds:.3g} s")
        drawn = sum(p.last_seconds for p in self.panels.values())
        parts.append(f"redraw {1000 * drawn:.0f} ms")
        return " &nbsp;·&nbsp; ".join(parts)

    # ---------------------------------------------------------------- errors and closing

    def show_error(self, error: BaseException) -> None:
        """Show an exception with its traceback below the panels (replacing the previous one)."""
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.error_output.outputs = ()
        self.error_output.append_stderr(text)

    def clear_error(self) -> None:
        self.error_output.outputs = ()

    @property
    def error_text(self) -> str:
        """The error shown now ('' when none)."""
        return "".join(out.get("text", "") for out in self.error_output.outputs)

    def close(self) -> None:
        """Stop playing, stop listening to the search, and close the widgets."""
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
        self._unsubscribe()
        super().close()
