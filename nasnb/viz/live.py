"""Views for a dashboard that follows a search: drawn once, then moved in place (blitting).

Drawing a matplotlib figure from scratch costs 70-400 ms here, most of it laying out and
rasterising text (tick labels, titles, legends), while a search step at the notebooks' settings
takes 0.3-0.5 s: a dashboard that redrew its plots from scratch after every step spent 15-45% of
the time drawing (benchmarks/redraw.py). A `LiveFigure` draws its figure once, keeps the pixels of
everything that does not move (the *background*: axes, ticks, labels, legend), and at every later
step only updates the artists that move (`set_offsets` of scatters, `set_data` of lines,
`set_height` of bars), paints them over the background and encodes the PNG. It draws the whole
figure again only when its *frame* changes: the axes' ranges (chosen from a few round values, so
that happens rarely), the decisions or ops shown, the kinds of points in the legend.

Numbers that change every step (trial counts, the trial a policy belongs to) are in `caption`,
which a dashboard shows as HTML; text is what matplotlib draws slowest. The numbers come from the
same data functions as the static views (`progress_data`, `population_data`, `policy_data`), and
the static views (`plot_progress`, ...) stay what a notebook or a saved figure uses. Here: the
base and LiveProgress, LivePopulation; LivePolicy is in policy.py, LiveAlphas in alphas.py.
"""
from __future__ import annotations

import math
import struct
import zlib

import numpy as np

from nasnb.history import History

BOTTOM = 0.03  # records without a value sit this far up the axes, as in the static views
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_bytes(canvas, compress_level: int = 1) -> bytes:
    """The Agg canvas's pixels as PNG bytes, without drawing the figure again (savefig would).

    Written here rather than by Pillow: every row unfiltered (PNG filter type 0) and deflated at
    `compress_level`. A plot is mostly flat colour, which deflate packs about as well without the
    per-row filters that Pillow picks adaptively, and those took two thirds of its time: a 504 x 396
    frame of the policy view took 6 ms with Pillow, 2 ms here, and 36 kB against 39 kB."""
    width, height = canvas.get_width_height(physical=True)
    pixels = np.asarray(canvas.buffer_rgba()).reshape(height, 4 * width)  # (H, W*4): 8-bit RGBA
    rows = np.zeros((height, 1 + 4 * width), dtype=np.uint8)  # each row: its filter type (0: none), its pixels
    rows[:, 1:] = pixels
    # bit depth 8, colour type 6 (RGBA), compression 0 (deflate), filter method 0, no interlace
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(rows.tobytes(), compress_level)) + png_chunk(b"IEND", b""))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """A PNG chunk: payload length, type, payload, CRC-32 of type and payload (PNG spec, 5.3)."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def steps_axis_end(last: int) -> int:
    """Right end of an axis of steps: the first of 10, 15, 20, 30, 50, 75, 100, 150, ... above
    `last`, so the axis (and its tick labels) changes a few times per run, not at every step."""
    decade = 1
    while True:
        for mantissa in (10, 15, 20, 30, 50, 75):
            if mantissa * decade > last:
                return mantissa * decade
        decade *= 10


def round_range(values, bottom_row: bool = False) -> tuple[float, float]:
    """A y range around `values` on a coarse round grid (a step of 1, 2 or 5 times a power of ten,
    a fifth to a half of their spread, or of a quarter of their size when that is larger; at least
    0.25 for values in 0..1), so it stays put while the values move inside it.
    bottom_row: one more step below, where the points without a value sit."""
    values = [v for v in values if v is not None]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    # At least a quarter of their size: the first few points (spread ~0) would move the grid at every step.
    spread = max(high - low, abs(high) / 4) or 1.0
    step = 10 ** math.floor(math.log10(spread / 2))  # spread / step in [2, 20)
    step *= 5 if spread / step >= 10 else 2 if spread / step >= 4 else 1
    if 0 <= low and high <= 1:  # an accuracy: quarters of 0..1, which new best or worst trials rarely cross
        step = max(step, 0.25)
    digits = max(0, 1 - math.floor(math.log10(step)))  # 0.6, not 0.6000000000000001
    low, high = round(math.floor(low / step) * step, digits), round(math.ceil(high / step) * step, digits)
    if high - low < 2 * step:  # a single value: a little room on both sides
        low, high = low - step, high + step
    return (low - step if bottom_row else low), high


def offsets(xs, ys) -> np.ndarray:
    """(n, 2) points for `PathCollection.set_offsets`; (0, 2) for none."""
    return np.column_stack([np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)]) if len(xs) else np.empty((0, 2))


class LiveFigure:
    """Base of the live views: `render(history, upto)` returns PNG bytes of step `upto`.

    A subclass implements `data(history, upto)` (a data function's dict), `frame(data)` (what the
    background depends on: hashable), `build(figure, data)` (draws everything, the moving artists
    with animated=True, and returns those) and `move(data)` (sets the moving artists' data), and
    `caption(data)` (the text that changes every step). `full_draws` and `blits` count the two
    kinds of render; `figure` is the matplotlib Figure.
    """

    figsize = (7, 4)

    def __init__(self, figsize: tuple | None = None, dpi: int = 72):
        self.figsize, self.dpi = figsize or self.figsize, dpi  # figsize None: the class's (or figure_size's)
        self.figure = self.canvas = None
        self.moving: list = []
        self.full_draws = self.blits = 0
        self._frame = self._background = None

    def data(self, history: History, upto: int | None) -> dict:
        raise NotImplementedError

    def frame(self, data: dict):
        raise NotImplementedError

    def build(self, figure, data: dict) -> list:
        raise NotImplementedError

    def move(self, data: dict) -> None:
        raise NotImplementedError

    def caption(self, data: dict) -> str:
        return ""

    def figure_size(self, data: dict) -> tuple:
        """Width and height in inches of a new figure (a subclass may fit it to the data)."""
        return self.figsize

    def render(self, history: History, upto: int | None = None, data: dict | None = None) -> bytes:
        """PNG of the first `upto` records; `data`: self.data(history, upto) when the caller has it."""
        data = self.data(history, upto) if data is None else data
        frame = self.frame(data)
        if frame != self._frame:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            figure = Figure(figsize=self.figure_size(data), dpi=self.dpi)
            canvas = FigureCanvasAgg(figure)
            self.moving = self.build(figure, data)
            self.figure, self.canvas, self._frame = figure, canvas, frame
            canvas.draw()  # every artist that is not animated: the background
            self._background = canvas.copy_from_bbox(figure.bbox)
            self.full_draws += 1
        else:
            self.move(data)
            self.canvas.restore_region(self._background)
            self.blits += 1
        for artist in self.moving:
            artist.axes.draw_artist(artist)
        return png_bytes(self.canvas)


# ============================================================================= progress and population


class LiveProgress(LiveFigure):
    """`plot_progress` live: complete trials as dots, failed ones as red x along the bottom, pruned
    ones hollow, a one-shot search's steps as a line, the best so far, the newest record a star."""

    def data(self, history, upto):
        from nasnb.viz.search import progress_data

        return progress_data(history, upto)

    def kinds(self, data: dict) -> tuple:
        counts = data["counts"]
        return tuple(kind for kind in ("complete", "step", "failed", "pruned") if counts[kind])

    def frame(self, data: dict):
        values = data["value"]
        bottom = None in values and any(v is not None for v in values)
        return (type(self).__name__, data["metric"], self.kinds(data), steps_axis_end(len(values)),
                round_range(values + data["best_so_far"], bottom_row=bottom), data["best_so_far"][-1:] != [None])

    def caption(self, data: dict) -> str:
        counts = data["counts"]
        parts = [f"{n} {what}" for n, what in ((counts["complete"], "complete"), (counts["failed"], "failed"),
                                                 (counts["pruned"], "pruned"), (counts["step"], "steps")) if n]
        return ", ".join(parts) or "no records yet"

    def build(self, figure, data: dict) -> list:
        from nasnb.viz.search import ALIVE, BEST, CHILD, FAILED, PRUNED, STEP

        figure.subplots_adjust(left=0.1, right=0.8, bottom=0.13, top=0.95)
        ax = self.ax = figure.add_subplot()
        bottom = ax.get_xaxis_transform()
        kinds = self.kinds(data)
        a = self.artists = {
            "complete": ax.scatter([], [], s=22, color=ALIVE, label="trials" if "complete" in kinds else None),
            "step": ax.plot([], [], color=STEP, lw=1.2, marker=".", ms=4,
                            label="steps" if "step" in kinds else None)[0],
            "failed": ax.scatter([], [], transform=bottom, marker="x", s=28, color=FAILED, linewidths=1.4,
                                 label="failed" if "failed" in kinds else None, zorder=3, clip_on=False),
            "pruned": ax.scatter([], [], s=22, facecolors="none", edgecolors=PRUNED, linestyles="--",
                                 label="pruned" if "pruned" in kinds else None),
            "pruned_bottom": ax.scatter([], [], transform=bottom, s=22, facecolors="none", edgecolors=PRUNED,
                                        linestyles="--", clip_on=False),
            "best": ax.plot([], [], drawstyle="steps-post", color=BEST, lw=1.2,
                            label="best so far" if self._frame_best(data) else None)[0],
            "newest": ax.scatter([], [], s=90, marker="*", color=CHILD, label="newest", zorder=4, clip_on=False),
            "newest_bottom": ax.scatter([], [], transform=bottom, s=90, marker="*", color=CHILD, zorder=4,
                                        clip_on=False),
        }
        self.finish(ax, data, "record number")
        for artist in a.values():
            artist.set_animated(True)
        self.move(data)
        return list(a.values())

    @staticmethod
    def _frame_best(data: dict) -> bool:
        return any(v is not None for v in data["best_so_far"])

    def finish(self, ax, data: dict, xlabel: str) -> None:
        frame = self.frame(data)
        ax.set_xlim(-0.5, frame[3] + 0.5)
        ax.set_ylim(*frame[4])
        ax.set(xlabel=xlabel, ylabel=data["metric"])
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="x-small")

    def move(self, data: dict) -> None:
        a, values, numbers = self.artists, data["value"], data["number"]
        complete = [k for k, s in zip(numbers, data["state"]) if s == "complete" and values[k] is not None]
        steps = [k for k, s in zip(numbers, data["state"]) if s == "step" and values[k] is not None]
        pruned = [k for k in data["pruned"] if values[k] is not None]
        a["complete"].set_offsets(offsets(complete, [values[k] for k in complete]))
        a["step"].set_data(steps, [values[k] for k in steps])
        a["failed"].set_offsets(offsets(data["failed"], [BOTTOM] * len(data["failed"])))
        a["pruned"].set_offsets(offsets(pruned, [values[k] for k in pruned]))
        unmeasured = [k for k in data["pruned"] if values[k] is None]
        a["pruned_bottom"].set_offsets(offsets(unmeasured, [BOTTOM] * len(unmeasured)))
        curve = data["best_so_far"]
        first = next((k for k, v in enumerate(curve) if v is not None), len(curve))
        a["best"].set_data(numbers[first:], curve[first:])
        last = data["last"]
        at_value = last is not None and values[last] is not None
        a["newest"].set_offsets(offsets([last], [values[last]]) if at_value else offsets([], []))
        a["newest_bottom"].set_offsets(offsets([last], [BOTTOM]) if last is not None and not at_value
                                       else offsets([], []))


class LivePopulation(LiveProgress):
    """`plot_population` live: the living filled, the removed hollow, the last step's sampled
    members ringed, its parent(s) and child joined by arrows, the member it removed crossed. A
    history without a population is drawn as LiveProgress draws it."""

    def data(self, history, upto):
        from nasnb.viz.search import population_data

        return population_data(history, upto)

    def frame(self, data: dict):
        return (*super().frame(data), data["has_population"])

    def caption(self, data: dict) -> str:
        if not data["has_population"]:
            return super().caption(data)
        rule = "aging" if data["aging"] else "non-aging"
        alive = sum(data["alive"])
        failed = f", {len(data['failed'])} failed" if data["failed"] else ""
        last = data.get("last") or {}
        died = "" if last.get("removed") is None else \
            f"; this step removed trial {last['removed']} ({'the oldest' if data['aging'] else 'the worst'})"
        return (f"{len(data['number'])} trials{failed}, population {data['population_size']} ({rule}): "
                f"{alive} alive, {len(data['number']) - alive - len(data['failed'])} removed{died}")

    def build(self, figure, data: dict) -> list:
        if not data["has_population"]:
            self.population = False
            return super().build(figure, data)
        from matplotlib.patches import FancyArrowPatch

        from nasnb.viz.search import ALIVE, BEST, CHILD, FAILED, PARENT, PRUNED, REMOVED, SAMPLED

        self.population = True
        figure.subplots_adjust(left=0.1, right=0.8, bottom=0.13, top=0.95)
        ax = self.ax = figure.add_subplot()
        bottom = ax.get_xaxis_transform()
        kinds = self.kinds(data)
        a = self.artists = {
            "removed": ax.scatter([], [], s=22, facecolors="none", edgecolors=REMOVED, label="removed"),
            "alive": ax.scatter([], [], s=26, color=ALIVE, label="alive"),
            "failed": ax.scatter([], [], transform=bottom, marker="x", s=28, color=FAILED, linewidths=1.4,
                                 label="failed" if "failed" in kinds else None, zorder=3, clip_on=False),
            "pruned": ax.scatter([], [], s=22, facecolors="none", edgecolors=PRUNED, linestyles="--",
                                 label="pruned" if "pruned" in kinds else None),
            "pruned_bottom": ax.scatter([], [], transform=bottom, s=22, facecolors="none", edgecolors=PRUNED,
                                        linestyles="--", clip_on=False),
            "best": ax.plot([], [], drawstyle="steps-post", color=BEST, lw=1.2,
                            label="best so far" if self._frame_best(data) else None)[0],
            "sampled": ax.scatter([], [], s=110, facecolors="none", edgecolors=SAMPLED, linewidths=1.8,
                                  label="sampled"),
            "parents": ax.scatter([], [], s=60, marker="D", color=PARENT, label="parent(s)", zorder=3),
            "removed_now": ax.scatter([], [], s=70, marker="x", color=PARENT, label="removed just now", zorder=4),
            "newest": ax.scatter([], [], s=90, marker="*", color=CHILD, label="child (newest)", zorder=4,
                                 clip_on=False),
            "newest_bottom": ax.scatter([], [], transform=bottom, s=90, marker="*", color=CHILD, zorder=4,
                                        clip_on=False),
        }
        # Arrows in display coordinates (the axes' limits are fixed between full draws): one per parent.
        self.arrows = [ax.add_patch(FancyArrowPatch((0, 0), (0, 0), transform=None, arrowstyle="->",
                                                    color=PARENT, lw=1.3, shrinkA=5, shrinkB=5, mutation_scale=10,
                                                    visible=False)) for _ in range(2)]
        self.finish(ax, data, "birth step (trial number)")
        moving = [*a.values(), *self.arrows]
        for artist in moving:
            artist.set_animated(True)
        self.move(data)
        return moving

    def move(self, data: dict) -> None:
        if not self.population:
            return super().move(data)
        a, x, y, alive = self.artists, data["number"], data["fitness"], data["alive"]
        dead = [k for k in x if y[k] is not None and not alive[k]]
        living = [k for k in x if alive[k]]
        a["removed"].set_offsets(offsets(dead, [y[k] for k in dead]))
        a["alive"].set_offsets(offsets(living, [y[k] for k in living]))
        values = data["value"]
        pruned = [k for k in data["pruned"] if values[k] is not None]
        unmeasured = [k for k in data["pruned"] if values[k] is None]
        a["failed"].set_offsets(offsets(data["failed"], [BOTTOM] * len(data["failed"])))
        a["pruned"].set_offsets(offsets(pruned, [values[k] for k in pruned]))
        a["pruned_bottom"].set_offsets(offsets(unmeasured, [BOTTOM] * len(unmeasured)))
        curve = data["best_so_far"]
        first = next((k for k, v in enumerate(curve) if v is not None), len(curve))
        a["best"].set_data(x[first:], curve[first:])
        last = data["last"] or {"child": None, "sampled": [], "parents": [], "parent": None, "removed": None}
        child = last["child"]
        at_value = child is not None and values[child] is not None
        a["newest"].set_offsets(offsets([child], [values[child]]) if at_value else offsets([], []))
        a["newest_bottom"].set_offsets(offsets([child], [BOTTOM]) if child is not None and not at_value
                                       else offsets([], []))
        sampled = sorted(set(last["sampled"]))
        parents = (last["parents"] or ([] if last["parent"] is None else [last["parent"]])) if sampled else []
        a["sampled"].set_offsets(offsets(sampled, [y[k] for k in sampled]))
        a["parents"].set_offsets(offsets(parents, [y[p] for p in parents]))
        removed = last["removed"]
        a["removed_now"].set_offsets(offsets([removed], [y[removed]]) if removed is not None else offsets([], []))
        if child is not None:
            head = (self.ax.transData if at_value else self.ax.get_xaxis_transform()).transform(
                (child, values[child] if at_value else BOTTOM))
        for k, arrow in enumerate(self.arrows):
            arrow.set_visible(k < len(parents) and child is not None)
            if arrow.get_visible():
                arrow.set_positions(self.ax.transData.transform((parents[k], y[parents[k]])), head)
