"""Dashboard: step, play, pause, reset and scrub through a search, and watch its panels follow.

The dashboard only observes. It calls the search's public API (`step()`, `run()`, `reset()`,
`subscribe()`, `history`, `space`) and draws what `nasnb.viz` computes from the history; the search
runs the same with or without it. Everything a panel shows is a function of
`search.history`, so the same views exist headless (`nasnb.viz.plot_population(history, upto=t)`
and friends return matplotlib Figures).

Play runs steps on a background daemon thread, so the kernel stays free: other cells run, the
history slider responds, and Pause takes effect after the step in progress (a step is never cut
in half, so the history stays consistent). An evaluator that fails makes a failed trial, which the
panels show, and play goes on; an error of the search itself (a strategy that raises, or the
search's own stop after too many failed trials in a row, which Play gets by stepping with
`search.run(len(history) + 1)`) is shown below the panels and stops playing. The dashboard also
subscribes to the search, so `search.run(50)` in another cell moves it too: redrawn on a timer
thread at most twice a second, so a fast run is neither blocked by drawing nor slowed down to
drawing speed, and the last record is always drawn.

A redraw costs at most a tenth of the steps it shows (`REDRAW_SHARE`): while playing, and for
runs elsewhere, the dashboard skips drawing a step when the last redraw took more than 1/9 of the
time the search has stepped since it, so a search of 0.2 s steps with 60 ms of panels is drawn
every third step, not slowed down by 30% (and at least every MAX_REDRAW_WAIT seconds). The step
that ends a Play is always drawn; Step and the history slider always draw. `redraws` and `drawing_seconds` count what it drew.

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

from nasnb.errors import InvalidValueError
from nasnb.history import Trial
from nasnb.widgets.panels import Panel, make_panel


def goal_html(search) -> str:
    """What the search optimises, for the title: "maximising val_accuracy", "minimising latency_ms",
    or, for several objectives (NSGA2), each with its direction."""
    objectives = search.history.meta.get("objectives")
    if isinstance(objectives, dict) and len(objectives) > 1:
        goals = ", ".join(f"<code>{html.escape(str(name))}</code> {'max' if d != 'min' else 'min'}"
                          for name, d in objectives.items())
        return f"objectives {goals} (Pareto front)"
    verb = "minimising" if search.history.direction(search.metric) == "min" else "maximising"
    return f"{verb} <code>{html.escape(search.metric)}</code>"


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
        self._last_draw = 0.0  # time.perf_counter() at the end of the last redraw that followed the search
        self._last_cost = 0.0  # seconds the last redraw took (any redraw: the slider's too)
        self._behind = False  # a step that Play did not draw is waiting for the next redraw
        self.redraws = 0  # how many times the panels were redrawn
        self.drawing_seconds = 0.0  # and how long that took in all
        self._timer: threading.Timer | None = None  # a pending coalesced redraw
        self._timer_lock = threading.Lock()  # the search's thread and the timer's both set _timer

        self.step_button.on_click(lambda _: self._click(self.step))
        self.reset_button.on_click(lambda _: self._click(self.reset))
        self.play_button.observe(self._on_play_toggle, names="value")
        self.history_slider.observe(self._on_slider, names="value")
        self._unsubscribe = search.subscribe(self._on_trial)

        title = widgets.HTML(f"<b>{html.escape(type(search).__name__)}</b> on {html.escape(repr(search.space))}, "
                             f"{goal_html(search)}")
        boxes = [widgets.VBox([widgets.HTML(f"<b>{html.escape(name)}</b>"), panel.widget],
                              layout=widgets.Layout(flex="1 1 420px", min_width="320px", max_width="720px", margin="4px"))
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
        """One `search.step()`; the panels follow through the subscription. Returns its record (a
        failed evaluation is a failed Trial, not an error)."""
        if self.playing:
            raise RuntimeError("the dashboard is playing; pause() (and wait()) before stepping by hand")
        self.clear_error()
        try:
            return self._step_search()
        except Exception as error:
            self.show_error(error)
            raise

    def _step_search(self, stop_on_failures: bool = False):
        """One step, drawn. stop_on_failures: step through `search.run`, which raises (e.g. an
        EvaluationError after too many failed trials in a row) where the search's own loop would
        stop: the rule stays the search's."""
        self._own_step.active = True  # every step the dashboard takes itself is drawn
        try:
            if stop_on_failures:
                self.search.run(len(self.search.history) + 1, progress=False)
                return self.search.history[-1]
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
        """Run steps on a background thread until pause() (or an error of the search: see the module
        docstring)."""
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
        self._own_step.playing = True  # this thread's steps are drawn when REDRAW_SHARE allows
        try:
            while not stop.is_set():
                self._step_search(stop_on_failures=True)
                if stop.wait(self.speed.value):  # sleeps `delay`, but wakes at once on pause
                    break
        except Exception as error:
            self.show_error(error)
        finally:
            self._own_step.playing = False
            if self._behind:  # the last steps were not drawn: show where Play stopped
                self._follow_trials()
            if not stop.is_set():  # it ended by itself (an error): pop the Play button up
                stop.set()
                self.play_button.value = False
            self._set_controls(playing=False)

    def _set_controls(self, playing: bool) -> None:
        self.step_button.disabled = self.reset_button.disabled = playing
        self.play_button.description, self.play_button.icon = ("Pause", "pause") if playing else ("Play", "play")

    # ---------------------------------------------------------------- showing a step

    def show_step(self, upto: int) -> None:
        """Show the search as it was after `upto` records (0 .. len(history)) in every panel."""
        n = len(self.search.history)
        if not 0 <= upto <= n:
            raise InvalidValueError(f"step {upto} is outside the history: choose 0 .. {n} (the number of records shown)")
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

    # Records that come from elsewhere (`search.run(500)` in another cell) are drawn by a timer thread,
    # never in the thread that runs the search, at most every REDRAW_INTERVAL seconds counted from the
    # end of the last redraw (longer when a redraw is slow: REDRAW_SHARE): an open dashboard cannot slow
    # a fast run down to its drawing speed, even when one redraw takes longer than the interval. Steps
    # taken with Step are always drawn; Play draws a step when drawing takes at most REDRAW_SHARE of
    # the time since the last redraw ended, and always its last step.
    REDRAW_INTERVAL = 0.5
    REDRAW_SHARE = 0.1
    MAX_REDRAW_WAIT = 3.0  # but never longer between redraws (a first redraw that imports matplotlib is slow)

    def _redraw_wait(self) -> float:
        """Seconds of stepping after a redraw before the next one keeps drawing within REDRAW_SHARE
        of the time: cost / (cost + wait) <= share; at most MAX_REDRAW_WAIT."""
        return min(self._last_cost * (1 / self.REDRAW_SHARE - 1), self.MAX_REDRAW_WAIT)

    def _on_trial(self, record) -> None:
        """Called by the search after every step, in the thread that stepped it."""
        if getattr(self._own_step, "active", False):
            if getattr(self._own_step, "playing", False) and \
                    time.perf_counter() - self._last_draw < self._redraw_wait():
                self._behind = True  # drawn by a later step, or when Play stops
                return
            self._follow_trials()
            return
        with self._timer_lock:
            if self._timer is None:  # else a redraw is on its way, and it draws the newest record
                self._start_timer(self._next_timed_draw() - time.perf_counter())

    def _next_timed_draw(self) -> float:
        return self._last_draw + max(self.REDRAW_INTERVAL, self._redraw_wait())

    def _start_timer(self, wait: float) -> None:
        self._timer = threading.Timer(max(0.0, wait), self._follow_later)
        self._timer.daemon = True
        self._timer.start()

    def _follow_later(self) -> None:
        with self._lock:  # waits for a redraw in progress to end
            with self._timer_lock:
                self._timer = None  # from now on a new record schedules the next redraw: none is missed
                wait = self._next_timed_draw() - time.perf_counter()
                if wait > 0:  # a redraw ended while this timer waited: keep the interval
                    self._start_timer(wait)
                    return
            self._follow_trials()

    def _follow_trials(self) -> None:
        try:
            with self._lock:
                self._behind = False
                at_end = self.history_slider.value == self.history_slider.max
                n = len(self.search.history)
                self.show_step(n if at_end else min(self.history_slider.value, n))
        except Exception as error:  # a drawing bug must not break the search: show it, stop playing
            self.show_error(error)
            self._stop.set()
        finally:
            self._last_draw = time.perf_counter()

    def _draw(self, upto: int) -> None:
        start = time.perf_counter()
        for panel in self.panels.values():
            panel.update(self.search, upto)
        self.status.value = self._status_text(upto)
        self._last_cost = time.perf_counter() - start
        self.redraws += 1
        self.drawing_seconds += self._last_cost

    def _status_text(self, upto: int) -> str:
        history, metric = self.search.history, self.search.metric
        shown = history[:upto]
        kind = "step" if shown and not isinstance(shown[-1], Trial) else "trial"
        parts = [f"{kind} {upto} of {len(history)}"]
        failed = sum(isinstance(r, Trial) and r.state == "failed" for r in shown)
        if failed:
            parts.append(f"<span style='color: #CC0000'>{failed} failed</span>")
        best = history.best(upto=upto)  # complete trials only
        if best is not None:
            parts.append(f"best {html.escape(metric)} {best.value(metric):.4g} (trial {best.number})")
        if upto > 0:
            parts.append(f"step {shown[-1].seconds:.3g} s")
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
        self._unsubscribe()
        with self._timer_lock:
            if self._timer is not None:
                self._timer.cancel()
        super().close()
