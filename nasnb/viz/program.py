"""The best program of an AutoML-Zero search as readable code, and what changed since the previous best.

`program_data(history, upto)` reads only the History of an `AutoMLZero` search (every trial's
`arch` is its program as text, nasnb/automl_zero/program.py) and returns the best program among
the first `upto` records as lines of code, Setup / Predict / Learn, each line marked

    changed   not in the previous best program at this place: what evolution found last (the
              lines of each function are matched with difflib, as `diff` matches a file's lines)
    useful    it matters for the predictions (nasnb.automl_zero.liveness): a grey line is dead
              code, an instruction whose result nothing reads. Evolved programs carry plenty.

together with its fitness, the previous best's, and every improvement so far. `program_html`
writes that as HTML (the dashboard's ProgramPanel shows it), `plot_program` draws it as a
matplotlib Figure (the static view, for files and the registry).

The best-so-far improvements are found once per history and extended as it grows (a history is
append-only), so a dashboard that shows one more trial at each step reads only that trial.
"""
from __future__ import annotations

import bisect
import difflib
import html
import weakref

from nasnb.automl_zero.liveness import prune, useful
from nasnb.automl_zero.program import FUNCTIONS, HEADERS, format_instruction, format_program, parse_program
from nasnb.errors import InvalidValueError
from nasnb.history import History, Trial

CHANGED, DEAD = "#FFF1A8", "#9A9A9A"  # a changed line's background, a dead line's text colour
_SCANS: dict[int, tuple] = {}  # id(history) -> (weakref, {"n": records read, "at": [k], "trials": [Trial]})


def _improvements(history: History, n: int, metric: str) -> tuple[list, list]:
    """(record indexes, trials) where the best complete trial improved, among the first n records."""
    kept = _SCANS.get(id(history))
    if kept is None or kept[0]() is not history:
        kept = _SCANS[id(history)] = (weakref.ref(history), {"n": 0, "at": [], "trials": [], "metric": metric})
        weakref.finalize(history, _SCANS.pop, id(history), None)
    scan = kept[1]
    if scan["metric"] != metric or scan["n"] > len(history):  # another metric, or a history that was reset
        scan.update(n=0, at=[], trials=[], metric=metric)
    sign = -1.0 if history.direction(metric) == "min" else 1.0
    for k in range(scan["n"], max(n, scan["n"])):
        record = history[k]
        value = record.score(metric) if isinstance(record, Trial) else None
        if value is not None and (not scan["trials"] or sign * value > sign * scan["trials"][-1].score(metric)):
            scan["at"].append(k)
            scan["trials"].append(record)
    scan["n"] = max(n, scan["n"])
    cut = bisect.bisect_left(scan["at"], n)  # improvements made within the first n records
    return scan["at"][:cut], scan["trials"][:cut]


def best_trial(history: History, upto: int | None = None, metric: str | None = None) -> Trial | None:
    """The best complete trial of the first `upto` records, from the kept scan (a look-up when
    the history grew by a record): what a panel checks before it builds `program_data`."""
    metric = metric or history.metric
    n = len(history) if upto is None else upto
    _, trials = _improvements(history, n, metric)
    return trials[-1] if trials else None


def _program(trial: Trial):
    try:
        return parse_program(trial.arch)
    except (TypeError, ValueError) as err:
        raise InvalidValueError(f"trial {trial.number}'s arch is not an AutoML-Zero program ({err}); "
                                "program_data reads the history of an AutoMLZero search") from None


def program_data(history: History, upto: int | None = None, metric: str | None = None) -> dict | None:
    """The best program of the first `upto` records (all by default), or None before any complete trial.

    Returns a dict:
        trial, value: the best trial's number and its metric; previous, previous_value: those of
            the best before it (None for the first);
        functions: [{"name": "Setup", "lines": [{"text", "changed", "useful"}, ...]}, ...], the
            three functions in order;
        changed, dead, size: how many lines changed since the previous best, are dead code, are there;
        pruned: the program without its dead code, as text;
        improvements: [(trial number, value)] of every best so far; upto, metric.
    """
    metric = metric or history.metric
    n = len(history) if upto is None else upto
    if not isinstance(n, int) or not 0 <= n <= len(history):
        raise InvalidValueError(f"upto={upto}, but the history has {len(history)} records; use 0..{len(history)}")
    _, trials = _improvements(history, n, metric)
    if not trials:
        return None
    best = trials[-1]
    program = _program(best)
    before = _program(trials[-2]) if len(trials) > 1 else None
    keep = useful(program)
    functions = []
    for k, name in enumerate(FUNCTIONS):
        texts = [format_instruction(i) for i in program[k]]
        old = [] if before is None else [format_instruction(i) for i in before[k]]
        changed = [before is not None] * len(texts)
        for a, _, size in difflib.SequenceMatcher(a=texts, b=old, autojunk=False).get_matching_blocks():
            changed[a:a + size] = [False] * size
        functions.append({"name": HEADERS[name], "lines": [{"text": t, "changed": c, "useful": u}
                                                           for t, c, u in zip(texts, changed, keep[k])]})
    lines = [line for f in functions for line in f["lines"]]
    return {"trial": best.number, "value": best.score(metric), "metric": metric, "upto": n,
            "previous": trials[-2].number if len(trials) > 1 else None,
            "previous_value": trials[-2].score(metric) if len(trials) > 1 else None,
            "functions": functions, "changed": sum(line["changed"] for line in lines),
            "dead": sum(not line["useful"] for line in lines), "size": len(lines),
            "pruned": format_program(prune(program)),
            "improvements": [(t.number, t.score(metric)) for t in trials]}


def summary(data: dict) -> str:
    """'best: trial 812, fitness 0.99981 (was 0.95120 at trial 640); 2 lines changed, 5 dead'."""
    text = f"best: trial {data['trial']}, {data['metric']} {data['value']:.5f}"
    if data["previous"] is not None:
        text += f" (was {data['previous_value']:.5f} at trial {data['previous']})"
    return text + f"; {data['changed']} line{'s' * (data['changed'] != 1)} changed, {data['dead']} dead"


def program_html(data: dict | None) -> str:
    """The program as an HTML <pre>: changed lines on yellow with a '+', dead lines grey."""
    if data is None:
        return "<i>no complete trial yet: press Step or Play</i>"
    rows = []
    for function in data["functions"]:
        rows.append(f"<b>def {function['name']}():</b>")
        for line in function["lines"] or [{"text": "pass", "changed": False, "useful": True}]:
            style = [f"background: {CHANGED}"] if line["changed"] else []
            style += [] if line["useful"] else [f"color: {DEAD}"]
            mark = "+ " if line["changed"] else "  "
            rows.append(f"<span style='{'; '.join(style)}'>{mark}  {html.escape(line['text'])}</span>")
    legend = (f"<span style='background: {CHANGED}'>+ changed since the previous best</span> · "
              f"<span style='color: {DEAD}'>grey: dead code (nothing reads its result)</span>")
    return (f"<div style='font-family: monospace; font-size: 12px'>{html.escape(summary(data))}<br>{legend}"
            f"<pre style='margin: 4px 0; line-height: 1.35'>{chr(10).join(rows)}</pre></div>")


def plot_program(history: History, upto: int | None = None, ax=None, metric: str | None = None):
    """The best program as text in a matplotlib Figure (changed lines bold on yellow, dead ones grey)."""
    from matplotlib.figure import Figure

    data = program_data(history, upto, metric)
    lines = []  # (text, changed, useful)
    if data is not None:
        for f in data["functions"]:
            lines.append((f"def {f['name']}():", False, True))
            lines += [(("+ " if x["changed"] else "  ") + "  " + x["text"], x["changed"], x["useful"])
                      for x in f["lines"] or [{"text": "pass", "changed": False, "useful": True}]]
    if ax is None:
        fig = Figure(figsize=(7, 0.6 + 0.22 * max(len(lines), 3)))
        ax = fig.add_axes((0, 0, 1, 1))
    else:
        fig = ax.figure
    ax.set_axis_off()
    ax.text(0.01, 0.99, "no complete trial yet" if data is None else summary(data), va="top", fontsize=9,
            transform=ax.transAxes)
    for k, (text, changed, alive) in enumerate(lines):
        ax.text(0.01, 0.99 - (k + 1.5) / (len(lines) + 2), text, va="top", family="monospace", fontsize=9,
                transform=ax.transAxes, color="black" if alive else DEAD, weight="bold" if changed else "normal",
                backgroundcolor=CHANGED if changed else "none")
    return fig
