"""What a REINFORCE controller believed: its per-decision probabilities, entropy, reward and baseline.

`policy_data(history, upto)` reads only the History of a `Reinforce` search: every trial's `info`
holds the probability vector of each decision the controller sampled from, the sampled actions and
the path's entropy, and `history.meta` holds the decisions' names and options and the baseline's
decay. The baseline is not stored per trial: it is replayed from the rewards with the strategy's
own rule, `nasnb.strategies.reinforce.baseline_step` (b ← decay · b + (1 − decay) · R, the first
reward starting the average; Zoph & Le 2017, Section 3.2). A failed or pruned trial has no reward:
the controller never learnt from it, so the replay skips it too (its advantage is None), while its
policy and entropy, which were sampled before it failed, are shown like any other's. Pass `upto=t`
to see the policy as it was when it sampled record t − 1, as a history slider does. `plot_policy`
only draws what `policy_data` returns.

An `ENAS` history works the same way: each of its Steps holds several controller samples in
`info["samples"]` (each with its own reward); sample k of step t is placed at t + k / n on the
step axis, and the baseline is replayed over all samples in order, as the search moved it.
"""
from __future__ import annotations

import math

from nasnb.errors import InvalidValueError
from nasnb.history import History, Step, Trial
from nasnb.strategies.reinforce import baseline_step
from nasnb.viz.live import LiveFigure, offsets, round_range, steps_axis_end

# Okabe & Ito colour-blind-safe palette, for options that are not op names (toy ops, input pairs).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
REWARD, BASELINE, ENTROPY, FAILED = "#0072B2", "#D55E00", "#009E73", "#CC0000"
BOTTOM = 0.03  # failed trials sit this far up the reward axes (a fraction of its height): they have no reward


# ============================================================================= data functions


def replay_baselines(rewards: list, decay: float) -> tuple[list, float | None]:
    """(the baseline each reward was judged by, b after the last reward), by the strategy's rule
    `baseline_step`. A missing reward (None: a failed trial) is skipped, as the strategy never sees
    it: its baseline is None and b does not move."""
    judged, b = [], None
    for reward in rewards:
        if reward is None:
            judged.append(None)
            continue
        judged_by, b = baseline_step(b, reward, decay)
        judged.append(judged_by)
    return judged, b


def entropy(probs) -> float:
    """H(p) = −Σ p log p in nats (0 log 0 = 0)."""
    return -sum(p * math.log(p) for p in probs if p > 0)


def policy_data(history: History, upto: int | None = None, metric: str | None = None) -> dict:
    """The controller's policy over the trials among the first `upto` records (all by default).

    Returns a dict:
        decisions: per decision, {name, options, probs (the vector the last trial was sampled from,
            conditional on the actions before it), action (the sampled option's index), entropy
            (of probs, nats), uniform (1 / number of options)}; empty before the first trial;
        number, rewards (None for a failed or pruned trial), baselines (the b each reward was judged
            by; None without a reward), advantages (R − b, None without a reward), entropies
            (Σ_k H(π(· | a_<k)) along each sampled path): one entry per trial;
        baseline: b after these trials (what the live search holds then; None before a reward);
        failed: the numbers of trials without a reward; max_entropy: Σ_k log n_k, the entropy of the
        uniform policy; metric; baseline_decay; unit ("trial", or "step" for an ENAS history, whose
        entries are its controller samples, numbered by position on the step axis); trial (the
        number of the trial, or step, whose policy is shown, or None).
    """
    metric = metric or history.metric
    n = len(history) if upto is None else upto
    if not 0 <= n <= len(history):
        raise InvalidValueError(f"upto={upto}, but the history has {len(history)} records; use 0..{len(history)}")
    if "baseline_decay" not in history.meta:
        raise InvalidValueError("this history has no controller policy (no 'baseline_decay' in history.meta): "
                         "policy_data reads the history of a Reinforce search or an ENAS one")
    samples = _samples(history[:n], metric)  # (position, record number, info, reward) per controller sample
    decay = history.meta["baseline_decay"]
    rewards = [reward for _, _, _, reward in samples]  # what the controller learnt from; None: it never saw it
    baselines, baseline = replay_baselines(rewards, decay)

    decisions = []
    if samples:
        last = samples[-1][2]
        choices = history.meta.get("choices") or [
            {"name": f"decision {k}", "options": [str(i) for i in range(len(p))]} for k, p in enumerate(last["probs"])]
        for choice, probs, action in zip(choices, last["probs"], last["actions"]):
            decisions.append({"name": choice["name"], "options": list(choice["options"]), "probs": list(probs),
                              "action": action, "entropy": entropy(probs), "uniform": 1 / len(probs)})
    if history.meta.get("choices"):
        sizes = [len(c["options"]) for c in history.meta["choices"]]
    else:
        sizes = [len(p) for p in samples[0][2]["probs"]] if samples else []
    return {
        "metric": metric,
        "baseline_decay": decay,
        "trial": samples[-1][1] if samples else None,
        # ENAS writes controller_steps into meta: its axis is steps even before the first one
        "unit": "step" if "controller_steps" in history.meta or any(isinstance(r, Step) for r in history) else "trial",
        "decisions": decisions,
        "number": [position for position, _, _, _ in samples],
        "rewards": rewards,
        "baselines": baselines,
        "advantages": [None if r is None else r - b for r, b in zip(rewards, baselines)],
        "baseline": baseline,
        "failed": [position for position, _, _, r in samples if r is None],
        "entropies": [float(info["entropy"]) for _, _, info, _ in samples],
        "max_entropy": sum(math.log(k) for k in sizes),
    }


def _samples(records, metric: str) -> list[tuple]:
    """(position, record number, info, reward) per controller sample: a Reinforce trial is one
    (its reward is its score, None when it failed), an ENAS step holds several, sample k of n at
    number + k / n (each with its reward)."""
    samples = []
    for r in records:
        if isinstance(r, Trial):
            found = [(r.number, r.info, r.score(metric))]
        elif isinstance(r, Step) and "samples" in r.info:
            n = len(r.info["samples"])
            found = [(r.number + k / n, s, s.get("reward")) for k, s in enumerate(r.info["samples"])]
        else:
            continue
        for position, info, reward in found:
            if not {"actions", "probs", "entropy"} <= set(info):
                raise InvalidValueError(f"{r.kind} {r.number} has no policy in its info (keys {sorted(info)}); "
                                        "policy_data reads the history of a Reinforce search or an ENAS one")
            samples.append((position, r.number, info, reward))
    return samples


# ============================================================================= renderer


def option_color(option: str, index: int) -> str:
    """An op's colour from the cell drawings (nasnb.viz.cells.OP_COLORS), else a palette colour."""
    from nasnb.viz.cells import OP_COLORS

    return OP_COLORS.get(option, PALETTE[index % len(PALETTE)])


def plot_policy(history: History, upto: int | None = None, ax=None, metric: str | None = None):
    """Per-decision probability bars (the sampled option outlined, the uniform level dotted), the
    entropy of each sampled path, and the reward against the baseline.

    ax: None makes a Figure (bars on top, entropy and reward/baseline below); one Axes draws only
    the bars; a sequence of three Axes (bars, entropy, reward) draws all three into them.
    Returns the Figure.
    """
    from nasnb.viz.cells import _figure_class

    data = policy_data(history, upto, metric)
    if ax is None:
        axes = _three_axes(_figure_class(), data)
    elif hasattr(ax, "bar"):
        axes = [ax]
    else:
        axes = list(ax)
        if len(axes) != 3:
            raise InvalidValueError(f"pass ax as one Axes (bars only) or three Axes (bars, entropy, reward), got {len(axes)}")
    _draw_bars(data, axes[0])
    if len(axes) == 3:
        _draw_entropy(data, axes[1])
        _draw_rewards(data, axes[2])
    return axes[0].figure


def _tick_style(data: dict) -> dict:
    """Decision names under the bar groups: flat when they fit, slanted when they do not."""
    names = [d["name"] for d in data["decisions"]]
    bars = sum(len(d["probs"]) for d in data["decisions"])
    many = len(names) > 8
    crowded = sum(len(name) for name in names) > 2 * bars  # longer than the bars they label
    return {"labels": names, "rotation": 60 if many else 25 if crowded else 0,
            "ha": "right" if many or crowded else "center", "fontsize": "x-small" if many else "small"}


def _three_axes(figure_class, data: dict) -> list:
    """Bars on top, entropy and reward below, placed in inches. A fixed layout is drawn once;
    matplotlib's constrained layout draws twice, and a dashboard redraws this at every step."""
    style = _tick_style(data)
    longest = max((len(name) for name in style["labels"]), default=0)
    char = 0.05 if style["fontsize"] == "x-small" else 0.065  # inches per character of a tick label
    labels = 0.3 + char * longest * math.sin(math.radians(style["rotation"]))  # room for slanted names
    width = min(16.0, max(7.0, 0.16 * sum(len(d["probs"]) for d in data["decisions"]) + 2))
    top, bars, gap, lower, bottom = 0.35, 2.3, labels + 0.45, 1.7, 0.5  # inches, top to bottom
    height = top + bars + gap + lower + bottom
    fig = figure_class(figsize=(width, height))
    left, right, middle = 0.75 / width, 1 - 0.15 / width, 0.8 / width
    half = (right - left - middle) / 2
    axes = [fig.add_axes((left, (height - top - bars) / height, right - left, bars / height)),
            fig.add_axes((left, bottom / height, half, lower / height)),
            fig.add_axes((left + half + middle, bottom / height, half, lower / height))]
    return axes


def _draw_bars(data: dict, ax) -> None:
    if not data["decisions"]:
        ax.text(0.5, 0.5, f"no {data['unit']} yet", ha="center", va="center", transform=ax.transAxes)
        ax.set(xticks=[], yticks=[], title="policy")
        return
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Patch

    x, centers, legend = 0, [], {}
    xs, heights, colors, edges, uniform = [], [], [], [], []  # drawn in one call each: a dashboard redraws every step
    for d in data["decisions"]:
        n = len(d["probs"])
        for i, (p, option) in enumerate(zip(d["probs"], d["options"])):
            sampled = i == d["action"]
            color = option_color(option, i)
            xs.append(x + i)
            heights.append(p)
            colors.append(to_rgba(color, 1.0 if sampled else 0.35))
            edges.append("black" if sampled else "none")
            legend.setdefault(option, color)
        uniform.append((d["uniform"], x - 0.45, x + n - 0.55))
        centers.append(x + (n - 1) / 2)
        x += n + 1  # a gap between decisions
    ax.bar(xs, heights, width=0.85, color=colors, edgecolor=edges, linewidth=1.4)
    ax.hlines(*zip(*uniform), colors="#555555", linestyles=":", linewidth=1)
    style = _tick_style(data)
    ax.set_xticks(centers, style.pop("labels"), **style)
    show_legend = len(legend) <= 12
    # A probability is at most 1: the band above 1 is kept free for the legend, which would
    # otherwise cover the bars that matter most (those of a sharpened policy).
    ax.set(ylim=(0, 1.3 if show_legend else 1.02), yticks=[0, 0.2, 0.4, 0.6, 0.8, 1.0],
           xlim=(-1, x - 1), ylabel="probability",
           title=f"π(a_k | a_<k) when {data['unit']} {data['trial']} was sampled (outlined; dotted: uniform)")
    if show_legend:
        ax.legend(handles=[Patch(color=c, label=o) for o, c in legend.items()], fontsize="x-small",
                  ncols=min(len(legend), 6), loc="upper center", framealpha=0.8, borderaxespad=0.2)


def _draw_entropy(data: dict, ax) -> None:
    ax.plot(data["number"], data["entropies"], color=ENTROPY, lw=1.2, marker=".", ms=3, label="sampled path")
    ax.axhline(data["max_entropy"], color="#555555", ls=":", lw=1, label="uniform policy")
    ax.set(xlabel=data["unit"], ylabel="entropy (nats)", ylim=(0, 1.05 * data["max_entropy"] or 1.0),
           xlim=None if data["number"] else (0, 1))
    ax.set_title("entropy Σ_k H(π(·|a_<k))", fontsize="medium")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize="x-small", loc="lower left")


def _draw_rewards(data: dict, ax) -> None:
    rewarded = [k for k, r in enumerate(data["rewards"]) if r is not None]
    ax.scatter([data["number"][k] for k in rewarded], [data["rewards"][k] for k in rewarded], s=12, color=REWARD,
               label=f"reward R ({data['metric']})")
    ax.plot([data["number"][k] for k in rewarded], [data["baselines"][k] for k in rewarded], color=BASELINE, lw=1.5,
            label=f"baseline b (decay {data['baseline_decay']})")
    failed = data["failed"]
    if failed:  # no reward: a red x along the bottom, the baseline line passes them by
        ax.scatter(failed, [BOTTOM] * len(failed), transform=ax.get_xaxis_transform(), marker="x", s=20,
                   color=FAILED, linewidths=1.2, label=f"failed ({len(failed)})", clip_on=False)
    # The title is the legend: rewards are spread over the whole axes, a legend box would hide some.
    ax.set(xlabel=data["unit"], ylabel=data["metric"])
    ax.set_title("reward R (dots), baseline b (line)" + (f", {len(failed)} failed (x)" if failed else ""),
                 fontsize="medium")
    if not rewarded:
        ax.set(ylim=(0, 1))  # nothing to show yet: plain axes rather than matplotlib's ±0.05
    if not data["number"]:
        ax.set(xlim=(0, 1))
    elif failed:  # points in axes coordinates do not widen the x range
        ax.set(xlim=(min(data["number"]) - 0.5, max(data["number"]) + 0.5))
    ax.xaxis.get_major_locator().set_params(integer=True)


# ============================================================================= live, for a dashboard


class LivePolicy(LiveFigure):
    """`plot_policy` live: the per-decision bars (outlined: the sampled option), the entropy of each
    sampled path, the reward against the baseline; the trial whose policy is shown is in the caption."""

    figsize = (7, 5.5)

    def data(self, history, upto):
        return policy_data(history, upto)

    def frame(self, data: dict):
        decisions = tuple((d["name"], tuple(d["options"])) for d in data["decisions"])
        rewards = [r for r in data["rewards"] if r is not None] + [b for b in data["baselines"] if b is not None]
        return (decisions, data["metric"], steps_axis_end(max(data["number"], default=0)),
                round_range(rewards, bottom_row=bool(data["failed"])), bool(data["failed"]), data["max_entropy"],
                data["unit"])

    def caption(self, data: dict) -> str:
        if data["trial"] is None:
            return f"no {data['unit']} yet"
        failed = f", {len(data['failed'])} failed (x)" if data["failed"] else ""
        baseline = "" if data["baseline"] is None else f", baseline b = {data['baseline']:.4g}"
        samples = "trials" if data["unit"] == "trial" else "controller samples"  # an ENAS step holds several
        return (f"policy when {data['unit']} {data['trial']} was sampled; {len(data['number'])} {samples}"
                f"{failed}{baseline}")

    def build(self, figure, data: dict) -> list:
        from matplotlib.colors import to_rgba

        grid = figure.add_gridspec(2, 2, height_ratios=(1.25, 1), left=0.08, right=0.98, bottom=0.08, top=0.94,
                                   hspace=0.4, wspace=0.25)
        bars_ax = figure.add_subplot(grid[0, :])
        entropy_ax, reward_ax = figure.add_subplot(grid[1, 0]), figure.add_subplot(grid[1, 1])
        self.to_rgba = to_rgba
        _draw_bars(data, bars_ax)  # the static view's bars: ticks, uniform levels, legend
        newest = "trial" if data["unit"] == "trial" else "controller sample"
        bars_ax.set_title(f"π(a_k | a_<k) of the newest {newest} (outlined: sampled; dotted: uniform)",
                          fontsize="medium")
        self.bars = list(bars_ax.patches)
        frame = self.frame(data)
        end = frame[2]
        self.entropy = entropy_ax.plot([], [], color=ENTROPY, lw=1.2, marker=".", ms=3, label="sampled path")[0]
        entropy_ax.axhline(data["max_entropy"], color="#555555", ls=":", lw=1, label="uniform policy")
        entropy_ax.set(xlabel=data["unit"], ylabel="entropy (nats)", ylim=(0, 1.05 * data["max_entropy"] or 1.0),
                       xlim=(-0.5, end + 0.5))
        entropy_ax.set_title("entropy Σ_k H(π(·|a_<k))", fontsize="medium")
        entropy_ax.xaxis.get_major_locator().set_params(integer=True)
        entropy_ax.legend(fontsize="x-small", loc="lower left")
        self.rewards = reward_ax.scatter([], [], s=12, color=REWARD)
        self.baseline = reward_ax.plot([], [], color=BASELINE, lw=1.5)[0]
        self.failed = reward_ax.scatter([], [], transform=reward_ax.get_xaxis_transform(), marker="x", s=20,
                                        color=FAILED, linewidths=1.2, clip_on=False)
        reward_ax.set(xlabel=data["unit"], ylabel=data["metric"], xlim=(-0.5, end + 0.5), ylim=frame[3])
        reward_ax.set_title("reward R (dots), baseline b (line)" + (", failed (x)" if data["failed"] else ""),
                            fontsize="medium")
        reward_ax.xaxis.get_major_locator().set_params(integer=True)
        moving = [*self.bars, self.entropy, self.rewards, self.baseline, self.failed]
        for artist in moving:
            artist.set_animated(True)
        self.move(data)
        return moving

    def move(self, data: dict) -> None:
        bars = iter(self.bars)
        for d in data["decisions"]:
            for i, (p, option) in enumerate(zip(d["probs"], d["options"])):
                bar, sampled = next(bars), i == d["action"]
                bar.set_height(p)
                bar.set_facecolor(self.to_rgba(option_color(option, i), 1.0 if sampled else 0.35))
                bar.set_edgecolor("black" if sampled else "none")
        self.entropy.set_data(data["number"], data["entropies"])
        rewarded = [k for k, r in enumerate(data["rewards"]) if r is not None]
        self.rewards.set_offsets(offsets([data["number"][k] for k in rewarded], [data["rewards"][k] for k in rewarded]))
        self.baseline.set_data([data["number"][k] for k in rewarded], [data["baselines"][k] for k in rewarded])
        self.failed.set_offsets(offsets(data["failed"], [BOTTOM] * len(data["failed"])))
