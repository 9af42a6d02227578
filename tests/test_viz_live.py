"""The live views (nasnb.viz.live) draw what the records say, move the same artists, and a blitted
frame is the same picture as a figure drawn fresh at that step."""
import numpy as np
import pytest

from nasnb.spaces import NB201Space
from nasnb.strategies import RandomSearch, RegularizedEvolution, Reinforce
from nasnb.viz.live import LivePopulation, LiveProgress, png_bytes, round_range, steps_axis_end
from nasnb.viz.policy import LivePolicy

SPACE = NB201Space()


def scored(seed=0, fail_every=7):
    """Seeded random metrics; every `fail_every`-th call fails (a failed trial)."""
    rng, calls = np.random.default_rng(seed), []

    def evaluate(arch):
        calls.append(arch)
        if len(calls) % fail_every == 0:
            raise ValueError("boom")
        return {"val_accuracy": float(rng.uniform(0.5, 1.0))}
    return evaluate


def points(collection) -> list:
    return [tuple(p) for p in np.asarray(collection.get_offsets()).tolist()]


@pytest.fixture(scope="module")
def runs():
    return {"random": RandomSearch(SPACE, scored(), seed=0).run(40, progress=False),
            "evolution": RegularizedEvolution(SPACE, scored(1), population_size=10, sample_size=3, seed=0)
            .run(40, progress=False),
            "reinforce": Reinforce(SPACE, scored(2), seed=0).run(30, progress=False)}


def test_round_range_holds_every_value_on_a_round_grid():
    rng = np.random.default_rng(0)
    for _ in range(200):
        values = list(rng.normal(rng.uniform(-5, 5), 10 ** rng.uniform(-3, 2), size=rng.integers(1, 20)))
        low, high = round_range(values)
        assert low <= min(values) and high >= max(values) and high > low
        fraction = 0 <= min(values) and max(values) <= 1
        assert high - low <= (1.5 if fraction else 4 * max(max(values) - min(values), abs(max(values)) / 4))
        bottom_low, bottom_high = round_range(values, bottom_row=True)
        assert bottom_low < low and bottom_high == high
    assert round_range([]) == (0.0, 1.0) and round_range([0.61, 0.97]) == (0.5, 1.0)
    assert round_range([12.1, 19.7]) == (12.0, 20.0)


def test_live_progress_draws_the_trials(runs):
    history = runs["random"]
    live = LiveProgress()
    for upto in (5, 17, 40):
        live.render(history, upto)
        records = history[:upto]
        complete = [(t.number, t.metrics["val_accuracy"]) for t in records if t.state == "complete"]
        failed = [t.number for t in records if t.state == "failed"]
        assert points(live.artists["complete"]) == complete
        assert [x for x, _ in points(live.artists["failed"])] == failed
        best = np.maximum.accumulate([v for _, v in complete])
        assert max(live.artists["best"].get_ydata()) == best[-1]
        assert points(live.artists["newest"]) + points(live.artists["newest_bottom"]) != []
        low, high = live.ax.get_ylim()
        assert low <= min(v for _, v in complete) and high >= best[-1]  # the frame holds every point
    assert "35 complete, 5 failed" in live.caption(live.data(history, 40))  # calls 7, 14, ..., 35 failed


def test_live_population_shows_the_last_population_size_complete_trials_alive(runs):
    history = runs["evolution"]
    live = LivePopulation()
    for upto in (12, 25, 40):
        live.render(history, upto)
        complete = [t for t in history[:upto] if t.state == "complete"]
        alive = [(t.number, t.metrics["val_accuracy"]) for t in complete[-10:]]  # aging: the oldest die
        assert points(live.artists["alive"]) == alive
        assert len(points(live.artists["removed"])) == len(complete) - 10
        last = history[upto - 1]
        if last.state == "complete" and len(complete) > 10:  # the status says who died: the oldest alive before
            assert f"this step removed trial {complete[-11].number} (the oldest)" in live.caption(live.data(history, upto))
        if last.state == "complete" and last.info.get("kind") == "mutation":
            parent = last.info["parent"]
            assert points(live.artists["parents"]) == [(parent, history[parent].metrics["val_accuracy"])]
            assert live.arrows[0].get_visible() and not live.arrows[1].get_visible()


def test_live_policy_bars_are_the_policy_the_trial_was_sampled_from(runs):
    history = runs["reinforce"]
    live = LivePolicy()
    for upto in (1, 10, 30):
        live.render(history, upto)
        last = history[upto - 1]
        probs = [p for decision in last.info["probs"] for p in decision]
        assert [bar.get_height() for bar in live.bars] == pytest.approx(probs)
        outlined = [k for k, bar in enumerate(live.bars) if bar.get_edgecolor()[3] > 0]
        sizes = np.cumsum([0] + [len(d) for d in last.info["probs"]])
        assert outlined == [int(start + action) for start, action in zip(sizes, last.info["actions"])]
        assert list(live.entropy.get_ydata()) == [t.info["entropy"] for t in history[:upto]]
        rewarded = [(t.number, t.metrics["val_accuracy"]) for t in history[:upto] if t.state == "complete"]
        assert points(live.rewards) == rewarded
    assert "trial 29" in live.caption(live.data(history, 30))


@pytest.mark.parametrize("kind, live_class", [("random", LiveProgress), ("evolution", LivePopulation),
                                              ("reinforce", LivePolicy)])
def test_a_blitted_frame_is_the_fresh_picture_and_the_artists_stay(runs, kind, live_class):
    history = runs[kind]
    live = live_class()
    live.render(history, 11)
    moving = list(live.moving)
    blits = live.blits
    for upto in (12, 13, 14):  # inside one frame (x axis 0..15) once the y range has settled
        png = live.render(history, upto)
        if live.blits > blits:
            assert all(a is b for a, b in zip(live.moving, moving))
            assert png == live_class().render(history, upto), f"step {upto} blitted differs from a fresh drawing"
    assert live.blits > blits, "no step was blitted"
    # a long run redraws its frame a few times, not at every step
    fresh = live_class()
    for upto in range(1, len(history) + 1):
        fresh.render(history, upto)
    assert fresh.full_draws <= 12 and fresh.full_draws + fresh.blits == len(history)


def test_steps_axis_end_is_above_the_last_step():
    assert all(steps_axis_end(t) > t for t in range(2000))


def test_png_bytes_decode_to_the_canvas_pixels():
    """png_bytes writes its PNG by hand: Pillow's decoder (and its CRC checks) must read back every
    pixel, the half-transparent ones too, of a frame that is not square."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    figure = Figure(figsize=(3.1, 1.7), dpi=50)
    figure.patch.set_alpha(0.4)  # the background half transparent: alpha is kept, not flattened
    canvas = FigureCanvasAgg(figure)
    figure.add_subplot().plot([0, 1, 3], [2, 0, 1], color="#D55E00", lw=3)
    canvas.draw()
    png = png_bytes(canvas)
    image = Image.open(io.BytesIO(png))
    image.load()  # decodes the whole stream: a wrong length, CRC or row raises here
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and image.mode == "RGBA" and image.size == (155, 85)
    pixels = np.asarray(canvas.buffer_rgba())
    assert len(np.unique(pixels[..., 3])) > 1  # the test sees transparent and opaque pixels
    np.testing.assert_array_equal(np.asarray(image), pixels)

