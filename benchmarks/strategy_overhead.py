"""What a search costs besides its evaluations: strategy steps/s, and the dashboard's redraws.

    python benchmarks/strategy_overhead.py                 # about 45 s on 2 cores
    python benchmarks/strategy_overhead.py --seconds 0.5 --rounds 6   # quicker

1. Strategy overhead: `search.step()` with an evaluator that costs nothing, so all that is timed is
   the strategy's ask/tell (sampling, tournament, controller forward/backward) and the history.
   Two evaluators: `ToySpace().evaluate` (6 positions x 4 ops) and a constant-metrics lambda on
   NB201Space (the real cell space, formatting arch strings). Each configuration runs for
   `--seconds`, `--repeats` times; steps/s is the median.

2. Dashboard redraw: two searches with the same seed, one shown in a `Dashboard` (headless), one
   bare. Each round times `dash.step_button.click()` (step + redraw of every panel) and
   `search.step()` of the bare twin, alternating which goes first, in the same process, so a slow
   spell of the machine hits both. Reported: median ms of each, their ratio (median of per-round
   ratios, with its range), and each panel's median ms per redraw (its own timer, `panel.last_seconds`).
   The searches run on NB201Space with constant metrics, so the cell panel draws real NB201 cells
   (graphviz when `dot` exists). Then `show_step(t)` for earlier steps: what scrubbing back costs.
"""
import argparse
import os
import platform
import statistics
import time
from datetime import datetime, timezone

import torch

import nasnb.strategies as strategies
from nasnb.spaces import NB201Space
from nasnb.spaces.toy import ToySpace
from nasnb.viz import has_dot

NAMES = ("RandomSearch", "RegularizedEvolution", "Reinforce")
CONSTANT = {"val_accuracy": 0.5}  # every architecture equally good: the strategy's own work only


def make(name: str, space, evaluator, seed: int = 0):
    cls = getattr(strategies, name)
    return cls(space, evaluator, seed=seed)


def steps_per_second(name: str, space, evaluator, seconds: float) -> float:
    search = make(name, space, evaluator)
    for _ in range(5):  # warm-up: first-call costs (torch, caches) are not the strategy's
        search.step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        search.step()
        n += 1
    return n / (time.perf_counter() - start)


def strategy_overhead(names, seconds: float, repeats: int) -> None:
    toy, nb201 = ToySpace(), NB201Space()
    evaluators = {"ToySpace.evaluate": (toy, toy.evaluate), "NB201 constant": (nb201, lambda arch: CONSTANT)}
    print(f"\n1. strategy overhead: steps/s with a free evaluator (median of {repeats} x {seconds:g} s)")
    print(f"{'strategy':<22}" + "".join(f"{label:>20}" for label in evaluators) + f"{'us/step (NB201)':>18}")
    for name in names:
        rates = [statistics.median(steps_per_second(name, space, ev, seconds) for _ in range(repeats))
                 for space, ev in evaluators.values()]
        print(f"{name:<22}" + "".join(f"{r:>20,.0f}" for r in rates) + f"{1e6 / rates[-1]:>18,.0f}")


def dashboard_overhead(names, rounds: int) -> None:
    """Time dash.step_button.click() against search.step() of a bare twin, alternating."""
    from nasnb.widgets import Dashboard

    space = NB201Space()
    print(f"\n2. dashboard: step_button.click() vs search.step() alone, NB201 constant metrics, median of "
          f"{rounds} rounds after 2 warm-up rounds; cells drawn with {'graphviz' if has_dot() else 'matplotlib'}")
    print(f"{'strategy':<22}{'step ms':>9}{'click ms':>10}{'ratio':>8}{'  (min-max)':<16}per-panel ms per redraw "
          "(median over steps that redrew it)")
    for name in names:
        bare = make(name, space, lambda arch: CONSTANT)
        shown = make(name, space, lambda arch: CONSTANT)
        dash = Dashboard(shown)
        step_ms, click_ms, ratios = [], [], []
        panel_ms = {p: [] for p in dash.panels}
        for r in range(rounds + 2):
            timings = {}
            for which in (("bare", "dash") if r % 2 == 0 else ("dash", "bare")):
                draws = {p: panel.draws for p, panel in dash.panels.items()}
                start = time.perf_counter()
                bare.step() if which == "bare" else dash.step_button.click()
                timings[which] = time.perf_counter() - start
            if dash.error_text:
                raise RuntimeError(dash.error_text)
            if r < 2:
                continue
            step_ms.append(1000 * timings["bare"])
            click_ms.append(1000 * timings["dash"])
            ratios.append(timings["dash"] / timings["bare"])
            for p, panel in dash.panels.items():
                if panel.draws > draws[p]:  # only steps where the panel really redrew
                    panel_ms[p].append(1000 * panel.last_seconds)
        per_panel = ", ".join(f"{p} {statistics.median(v):.1f}" if v else f"{p} (no redraw)" for p, v in panel_ms.items())
        print(f"{name:<22}{statistics.median(step_ms):>9.2f}{statistics.median(click_ms):>10.1f}"
              f"{statistics.median(ratios):>7.0f}x  ({min(ratios):.0f}-{max(ratios):.0f}x){'':<3}{per_panel}")
        replay = []
        for t in range(1, len(shown.history), max(1, len(shown.history) // 6)):
            start = time.perf_counter()
            dash.show_step(t)
            replay.append(1000 * (time.perf_counter() - start))
        print(f"{'':<22}show_step(t) to scrub back: median {statistics.median(replay):.1f} ms over "
              f"{len(replay)} steps (cell drawings come from the panel's cache)")
        dash.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per steps/s measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per steps/s figure (median)")
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds of the dashboard comparison")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the controller's LSTM)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [n for n in NAMES if hasattr(strategies, n)]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({args.threads} threads), python {platform.python_version()}")
    start = time.perf_counter()
    strategy_overhead(names, args.seconds, args.repeats)
    dashboard_overhead(names, args.rounds)
    print(f"\n# {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
