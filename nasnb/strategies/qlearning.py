"""MetaQNN: tabular Q-learning picks a network layer by layer (Baker et al., ICLR 2017).

Baker, Gupta, Naik & Raskar, "Designing Neural Network Architectures using Reinforcement
Learning", ICLR 2017 (Sec. 3-4, Algorithms 1-3, Tables 1-2). An agent walks through states (the
layer just placed: depth, type, settings, representation size bin; nasnb/spaces/layers.py) by
actions (the next layer) until it takes a terminal. The walk is ε-greedy on a table Q(s, a):

    with probability ε a uniform action, else argmax_a Q(s, a) (ties broken uniformly)   Alg. 2

The finished network is trained; its validation accuracy is the reward of the *last* transition
only: r_t = 0 inside the chain, r_T = accuracy. Every Q-value starts at 0.5, and the update is

    Q(s_t, a_t) <- (1 - α) Q(s_t, a_t) + α [ r_t + γ max_a' Q(s_t+1, a') ]           eq. (3)

with max over a terminal's successor = 0, α = 0.01, and γ = 1: *no discount within an episode,
as the paper chose*, since a network's value is its accuracy however many layers it took. A
path is updated backwards from its terminal (Alg. 3), so one update carries the reward one
transition back and repeated updates carry it to the first layer.

Experience replay (Alg. 1): every trained network joins a replay memory (path, accuracy); after
each one, `replay_batch` memories drawn uniformly (with replacement) are updated by Alg. 3. The
paper draws 100 (the authors' code 128). The draws come from a generator seeded by (seed, trial
number), so the Q table after t trials is a function of the history alone: the q-table view
(nasnb/viz/qtable.py) replays it with `replay_step`, the very function `observe` calls.

ε follows Table 2: 1.0 for 1500 networks, then 0.9, 0.8, 0.7 for 100 each and 0.6 ... 0.1 for
150 each (2700 in all); `paper_schedule(scale)` shrinks it for a CPU (the default is a tenth:
270 trials), and after the schedule ε stays at its last value. Here every asked trial counts;
the authors' code counts distinct networks, and looks a repeated one up instead of training it
again (a `TrainEvaluator` does the same with its cache).

On a space without MetaQNN's states (ToySpace, NB201Space, ...) the agent walks the space's
`choices` in order: the state after decision k is (k, the option just taken), like a layer depth
and the layer; `ChoiceMDP` is that walk.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from nasnb.checks import check_float, check_int, check_positive_float, check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.history import Trial
from nasnb.strategies.base import Strategy

PAPER_SCHEDULE = ((1.0, 1500), (0.9, 100), (0.8, 100), (0.7, 100), (0.6, 150), (0.5, 150), (0.4, 150), (0.3, 150),
                  (0.2, 150), (0.1, 150))  # Table 2: (ε, models trained at that ε)
REPLAY_STREAM = 0x9E7A  # tags the replay draws' seed, apart from the search's own rng


def paper_schedule(scale: float = 0.1) -> tuple:
    """Table 2 with each count multiplied by `scale` (rounded, at least 1): 0.1 gives 270 trials."""
    scale = check_positive_float("scale", scale, example=0.1)
    return tuple((eps, max(1, round(count * scale))) for eps, count in PAPER_SCHEDULE)


def check_schedule(schedule) -> tuple:
    """`schedule` as a tuple of (ε in [0, 1], count >= 1) pairs, or an error naming the entry."""
    example = "e.g. epsilon_schedule=((1.0, 50), (0.5, 20), (0.1, 30)) or paper_schedule(0.1)"
    if isinstance(schedule, (str, bytes)) or not isinstance(schedule, Sequence) or not schedule:
        raise InvalidTypeError(f"epsilon_schedule must be a non-empty sequence of (epsilon, count) pairs, got "
                               f"{short(schedule)}; {example}")
    pairs = []
    for k, pair in enumerate(schedule):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise InvalidTypeError(f"epsilon_schedule[{k}] must be an (epsilon, count) pair, got {short(pair)}; {example}")
        pairs.append((check_float(f"epsilon_schedule[{k}][0]", pair[0], minimum=0.0, maximum=1.0, example=0.5),
                      check_positive_int(f"epsilon_schedule[{k}][1]", pair[1], example=100)))
    return tuple(pairs)


def epsilon_at(schedule: Sequence, number: int) -> float:
    """ε of trial `number` (0-based) under `schedule`; the last ε once the schedule is spent."""
    for eps, count in schedule:
        if number < count:
            return float(eps)
        number -= count
    return float(schedule[-1][0])


def q_update(q: float, reward: float, next_max: float, alpha: float, gamma: float) -> float:
    """Eq. (3): (1 - α) Q(s, a) + α [r + γ max_a' Q(s', a')]."""
    return (1 - alpha) * q + alpha * (reward + gamma * next_max)


def q_value(table: dict, state: str, action: str, q_init: float) -> float:
    """Q(state, action); `q_init` where the table has no entry yet (every Q starts there)."""
    return table.get(state, {}).get(action, q_init)


def update_path(table: dict, path: Sequence, reward: float, *, alpha: float, gamma: float, q_init: float) -> None:
    """Alg. 3 on `table` (changed in place): the terminal transition gets the reward, then each
    earlier one, last to first, the best Q of the state it led to. `path` lists one
    (state, action, actions of that state) per transition, as `MetaQNN` records them."""
    next_max = 0.0  # the terminal's successor has no actions
    for k in range(len(path) - 1, -1, -1):
        state, action, _ = path[k]
        r = reward if k == len(path) - 1 else 0.0
        row = table.setdefault(state, {})
        row[action] = q_update(row.get(action, q_init), r, next_max, alpha, gamma)
        next_max = max(row.get(a, q_init) for a in path[k][2])  # max_a' Q(s_k, a'): transition k - 1's target


def replay_draws(seed: int, number: int, memory_size: int, batch: int) -> list[int]:
    """The memory indices replayed after trial `number`: `batch` uniform draws with replacement,
    from a generator of (seed, number) alone, so that a view can draw them again."""
    rng = np.random.default_rng([REPLAY_STREAM, seed, number])
    return rng.integers(memory_size, size=batch).tolist()


def replay_step(table: dict, memory: list, seed: int, number: int, *, batch: int, alpha: float, gamma: float,
                q_init: float) -> list[int]:
    """Experience replay after trial `number` joined `memory` (a list of (path, reward)): Alg. 3
    on `batch` drawn memories, in the order drawn. Returns the drawn indices."""
    draws = replay_draws(seed, number, len(memory), batch)
    for m in draws:
        path, reward = memory[m]
        update_path(table, path, reward, alpha=alpha, gamma=gamma, q_init=q_init)
    return draws


class ChoiceMDP:
    """The agent's walk through a space's `choices`: state (k, option just taken), action an option."""

    def __init__(self, space):
        self.space, self.choices = space, list(space.choices)
        self.options = [[str(o) for o in c.options] for c in self.choices]
        for c, names in zip(self.choices, self.options):
            if len(set(names)) != len(names):
                raise InvalidValueError(f"choice {c.name!r} has options that print alike ({names}); MetaQNN names "
                                        "actions by str(option)")

    def start_state(self) -> tuple:
        return (0, None)

    def state_key(self, state: tuple) -> str:
        k, prev = state
        return "0 start" if k == 0 else f"{k} {self.choices[k - 1].name}={prev}"

    def actions(self, state: tuple) -> tuple:
        return tuple(self.options[state[0]])

    def transition(self, state: tuple, action: str):
        k = state[0]
        return (k + 1, action) if k + 1 < len(self.choices) else None

    def from_actions(self, actions: Sequence[str]):
        return self.space.from_choices([c.options[names.index(a)]
                                        for c, names, a in zip(self.choices, self.options, actions)])


def mdp_for(space):
    """The space itself when it has MetaQNN's states (LayerSpace), else a `ChoiceMDP` of its choices."""
    needed = ("start_state", "state_key", "actions", "transition", "from_actions")
    return space if all(callable(getattr(space, m, None)) for m in needed) else ChoiceMDP(space)


class MetaQNN(Strategy):
    """Q-learning with ε-greedy exploration and experience replay (Baker et al. 2017, Alg. 1-3).

    Each step walks the states ε-greedily on the Q table (module docstring) and proposes the
    network of that path; when it is told, the trial joins the replay memory and `replay_batch`
    memories are replayed through eq. (3), backwards along each path. Every trial's `info` holds
    ``epsilon``, ``path`` (one [state, action, actions of the state] per transition, the terminal
    last) and ``greedy`` (per transition: taken by argmax rather than at random).

    Args:
        epsilon_schedule: (ε, trials) pairs, in order; None: `paper_schedule(0.1)` (Table 2 at a
            tenth, 270 trials). ε stays at its last value after the schedule.
        alpha: the Q learning rate α (paper: 0.01). gamma: the discount γ (paper: 1, none).
        q_init: every Q-value's start (paper: 0.5, "around the performance of an average model").
        replay_batch: memories replayed after each trial (paper: 100).
    """

    panels = ("cell", "qtable")
    replayable = True  # propose() reads self.rng, the Q table and the trial count (storage.py)

    def __init__(self, space, evaluator, *, epsilon_schedule=None, alpha: float = 0.01, gamma: float = 1.0,
                 q_init: float = 0.5, replay_batch: int = 100, metric: str = "val_accuracy", seed: int = 0):
        super().__init__(space, evaluator, metric=metric, seed=seed)
        self.epsilon_schedule = check_schedule(paper_schedule(0.1) if epsilon_schedule is None else epsilon_schedule)
        self.alpha = check_float("alpha", alpha, minimum=0.0, maximum=1.0, exclusive_minimum=True, example=0.01)
        self.gamma = check_float("gamma", gamma, minimum=0.0, maximum=1.0, example=1.0)
        self.q_init = check_float("q_init", q_init, example=0.5)
        self.replay_batch = check_positive_int("replay_batch", replay_batch, example=100)
        self.mdp = mdp_for(space)
        self.q: dict[str, dict[str, float]] = {}  # state -> action -> Q, for the pairs updated so far
        self.memory: list[int] = []  # the replay memory: trial numbers, in the order they joined
        self._entries: list[tuple] = []  # (path, reward) of each memory, as replay_step reads them
        # What the q-table view needs to replay the learning from the history alone (nasnb/viz/qtable.py).
        self.history.meta.update(alpha=self.alpha, gamma=self.gamma, q_init=self.q_init, replay_batch=self.replay_batch,
                                 epsilon_schedule=[list(pair) for pair in self.epsilon_schedule])

    def settings(self) -> dict:
        return {**super().settings(), "epsilon_schedule": [list(p) for p in self.epsilon_schedule], "alpha": self.alpha,
                "gamma": self.gamma, "q_init": self.q_init, "replay_batch": self.replay_batch}

    # ---------------------------------------------------------------- ask: an ε-greedy walk (Alg. 2)

    def epsilon(self, number: int | None = None) -> float:
        """ε of trial `number` (by default the next one asked)."""
        return epsilon_at(self.epsilon_schedule, len(self.history) + len(self._pending) if number is None else number)

    def propose(self):
        eps = self.epsilon()
        state, path, greedy = self.mdp.start_state(), [], []
        while state is not None:
            key, actions = self.mdp.state_key(state), self.mdp.actions(state)
            if self.rng.random() < eps:  # explore: any action of this state, uniformly
                action, by_argmax = actions[int(self.rng.integers(len(actions)))], False
            else:  # exploit: the best action, ties broken uniformly (as the authors' code)
                values = [q_value(self.q, key, a, self.q_init) for a in actions]
                best = max(values)
                ties = [a for a, v in zip(actions, values) if v == best]
                action, by_argmax = ties[int(self.rng.integers(len(ties)))], True
            path.append([key, action, list(actions)])
            greedy.append(by_argmax)
            state = self.mdp.transition(state, action)
        arch = self.mdp.from_actions([action for _, action, _ in path])
        return arch, {"epsilon": eps, "path": path, "greedy": greedy}

    # ---------------------------------------------------------------- tell: remember, then replay (Alg. 1, 3)

    def observe(self, trial: Trial) -> None:
        self.memory.append(trial.number)
        self._entries.append(self._entry(trial))
        replay_step(self.q, self._entries, self.seed, trial.number, batch=self.replay_batch, alpha=self.alpha,
                    gamma=self.gamma, q_init=self.q_init)

    def _entry(self, trial: Trial) -> tuple:
        return [tuple(step) for step in trial.info["path"]], trial.value(self.metric)

    # ---------------------------------------------------------------- reading the table

    def greedy_path(self) -> list[dict]:
        """The walk that always takes the best action (the first of equals): state, action, Q."""
        state, path = self.mdp.start_state(), []
        while state is not None:
            key, actions = self.mdp.state_key(state), self.mdp.actions(state)
            values = [q_value(self.q, key, a, self.q_init) for a in actions]
            best = int(np.argmax(values))
            path.append({"state": key, "action": actions[best], "q": values[best]})
            state = self.mdp.transition(state, actions[best])
        return path

    def greedy_arch(self):
        """The architecture the greedy policy builds (ε = 0)."""
        return self.mdp.from_actions([step["action"] for step in self.greedy_path()])

    def state(self) -> dict:
        """The base snapshot plus ε (next trial), the table's size, the replay memory's size, the
        greedy path and architecture, and the last sampled path with each step's Q-values now."""
        last = next((t for t in reversed(self.history.trials) if "path" in t.info), None)
        sampled = [] if last is None else [
            {"state": s, "action": a, "greedy": g, "actions": list(actions),
             "q": [q_value(self.q, s, x, self.q_init) for x in actions]}
            for (s, a, actions), g in zip(last.info["path"], last.info["greedy"])]
        greedy = self.greedy_path()
        return {**super().state(), "epsilon": self.epsilon(), "q_states": len(self.q),
                "q_entries": sum(len(row) for row in self.q.values()), "memory": len(self.memory),
                "greedy_path": greedy, "greedy_arch": self.space.format(self.greedy_arch()),
                "sampled_path": sampled, "sampled_trial": None if last is None else last.number}

    # ---------------------------------------------------------------- checkpoints

    def _extra_state(self) -> dict:
        return {"q": {state: dict(row) for state, row in self.q.items()}, "memory": list(self.memory)}

    def _load_extra_state(self, state: dict) -> None:
        self.q = {str(s): {str(a): float(v) for a, v in row.items()} for s, row in state["q"].items()}
        self.memory = [int(n) for n in state["memory"]]
        self._entries = [self._entry(self.history[n]) for n in self.memory]
