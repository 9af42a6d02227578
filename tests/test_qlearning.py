"""MetaQNN against hand computations of eq. (3) and Algorithm 3, the paper's Table 2, and a toy
chain whose best path only a max-backup (not an average of rewards) finds."""
import itertools
import json

import pytest
import torch

from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.layers import LayerSpace
from nasnb.spaces.toy import ToySpace
from nasnb.strategies.qlearning import (
    PAPER_SCHEDULE, ChoiceMDP, MetaQNN, epsilon_at, paper_schedule, q_update, replay_draws, update_path,
)

# Baker et al. 2017, Table 2, typed from the paper: epsilon and the number of models trained at it.
TABLE_2 = [(1.0, 1500), (0.9, 100), (0.8, 100), (0.7, 100), (0.6, 150), (0.5, 150), (0.4, 150), (0.3, 150),
           (0.2, 150), (0.1, 150)]


def test_q_update_is_equation_3_by_hand():
    # (1 - 0.01) * 0.5 + 0.01 * (0 + 1 * 0.8) = 0.495 + 0.008
    assert q_update(0.5, 0.0, 0.8, 0.01, 1.0) == pytest.approx(0.503, abs=1e-15)
    assert q_update(0.5, 0.9, 0.0, 0.01, 1.0) == pytest.approx(0.504, abs=1e-15)
    assert q_update(0.2, 0.1, 0.6, 0.5, 0.5) == pytest.approx(0.5 * 0.2 + 0.5 * (0.1 + 0.3), abs=1e-15)


def test_a_path_is_updated_backwards_from_its_terminal_by_hand():
    path = [("s0", "a", ["a", "b"]), ("s1", "c", ["c", "d"]), ("s2", "SM", ["SM"])]
    table = {}
    update_path(table, path, 0.9, alpha=0.01, gamma=1.0, q_init=0.5)
    # terminal: 0.99 * 0.5 + 0.01 * 0.9 = 0.504; then r = 0 and the best Q of the next state
    assert table["s2"]["SM"] == pytest.approx(0.504, abs=1e-15)
    assert table["s1"]["c"] == pytest.approx(0.495 + 0.01 * 0.504, abs=1e-15)  # 0.50004
    assert table["s0"]["a"] == pytest.approx(0.495 + 0.01 * 0.50004, abs=1e-15)  # max(0.50004, Q(s1, d) = 0.5)
    assert set(table) == {"s0", "s1", "s2"} and "b" not in table["s0"] and "d" not in table["s1"]
    # a better untaken action of the next state is what the max picks: Q(s1, d) = 0.7
    table = {"s1": {"d": 0.7}}
    update_path(table, path, 0.9, alpha=0.01, gamma=1.0, q_init=0.5)
    assert table["s0"]["a"] == pytest.approx(0.495 + 0.007, abs=1e-15)
    table = {"s1": {"d": 0.7}}
    update_path(table, path, 0.9, alpha=0.1, gamma=0.5, q_init=0.5)
    assert table["s0"]["a"] == pytest.approx(0.9 * 0.5 + 0.1 * 0.5 * 0.7, abs=1e-15)


def test_the_schedule_is_table_2_of_the_paper():
    assert [tuple(p) for p in PAPER_SCHEDULE] == TABLE_2 and sum(c for _, c in TABLE_2) == 2700
    expected = [eps for eps, count in TABLE_2 for _ in range(count)]
    assert [epsilon_at(PAPER_SCHEDULE, n) for n in range(2700)] == expected
    assert epsilon_at(PAPER_SCHEDULE, 2700) == epsilon_at(PAPER_SCHEDULE, 10**6) == 0.1  # stays at its last value
    assert paper_schedule(0.1) == ((1.0, 150), (0.9, 10), (0.8, 10), (0.7, 10), (0.6, 15), (0.5, 15), (0.4, 15),
                                   (0.3, 15), (0.2, 15), (0.1, 15))


def test_trials_follow_the_schedule_and_epsilon_zero_is_greedy():
    space = ToySpace(length=3, options=2)
    search = MetaQNN(space, space.evaluate, epsilon_schedule=((1.0, 3), (0.5, 2), (0.0, 3)), seed=0)
    search.run(8, progress=False)
    assert [t.info["epsilon"] for t in search.history] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.0]
    assert not any(any(t.info["greedy"]) for t in search.history[:3])  # epsilon 1: every action at random
    assert all(all(t.info["greedy"]) for t in search.history[5:])


class TreeSpace:
    """Three decisions among a, b, c; a state is the whole prefix, so the walk is Markov."""

    name = "tree"

    def __init__(self):
        # the trap: every network under 'a' scores 0.8, under 'b' 0.1 but for one, the best, 0.95
        self.rewards = {leaf: {"a": 0.8, "b": 0.1, "c": 0.3}[leaf[0]] for leaf in itertools.product("abc", repeat=3)}
        self.rewards[("b", "a", "c")] = 0.95

    def __repr__(self):
        return "TreeSpace()"

    def validate(self, arch):
        if tuple(arch) not in self.rewards:
            raise InvalidValueError(f"not a leaf: {arch}")
        return tuple(arch)

    def sample(self, rng):
        return tuple("abc"[i] for i in rng.integers(3, size=3))

    def format(self, arch):
        return "".join(self.validate(arch))

    def parse(self, text):
        return self.validate(tuple(text))

    def evaluate(self, arch):
        return {"val_accuracy": self.rewards[self.validate(arch)]}

    def start_state(self):
        return ()

    def state_key(self, state):
        return "".join(state) or "start"

    def actions(self, state):
        return ("a", "b", "c")

    def transition(self, state, action):
        return state + (action,) if len(state) < 2 else None

    def from_actions(self, actions):
        return self.validate(actions)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_greedy_policy_finds_the_best_path_of_a_toy_chain(seed):
    space = TreeSpace()
    mean_under = {a: sum(r for leaf, r in space.rewards.items() if leaf[0] == a) / 9 for a in "abc"}
    assert max(mean_under, key=mean_under.get) == "a"  # averaging rewards would pick the trap
    search = MetaQNN(space, space.evaluate, epsilon_schedule=((1.0, 60), (0.5, 30), (0.1, 60)), seed=seed)
    search.run(150, progress=False)  # the paper's alpha 0.01, gamma 1, replay 100
    assert search.greedy_arch() == ("b", "a", "c")
    assert [step["state"] for step in search.greedy_path()] == ["start", "b", "ba"]


def test_replay_memory_holds_complete_trials_and_draws_depend_on_seed_and_number():
    space = ToySpace(length=3, options=2)
    fails = lambda arch: {"val_accuracy": float("nan")} if arch[0] == "op0" else space.evaluate(arch)  # noqa: E731
    search = MetaQNN(space, fails, replay_batch=5, seed=3)
    search.run(12, progress=False)
    assert search.memory == [t.number for t in search.history if t.state == "complete"]
    assert len(search.memory) < 12  # some failed, and never joined
    a, b = replay_draws(3, 7, 10, 100), replay_draws(3, 8, 10, 100)
    assert a == replay_draws(3, 7, 10, 100) and a != b and min(a) >= 0 and max(a) <= 9 and len(a) == 100


def test_choice_walk_states_by_hand():
    mdp = ChoiceMDP(ToySpace(length=3, options=2))
    state, keys = mdp.start_state(), []
    for action in ("op1", "op0", "op1"):
        keys.append(mdp.state_key(state))
        assert mdp.actions(state) == ("op0", "op1")
        state = mdp.transition(state, action)
    assert state is None and keys == ["0 start", "1 position 0=op1", "2 position 1=op0"]
    assert mdp.from_actions(["op1", "op0", "op1"]) == ("op1", "op0", "op1")


def test_resume_on_the_layer_space_equals_the_uninterrupted_run(tmp_path):
    space = LayerSpace(max_depth=3)
    score = lambda arch: {"val_accuracy": 0.2 + 0.15 * len(arch) - 0.1 * (arch[-1] == "GAP")}  # noqa: E731
    make = lambda: MetaQNN(space, score, epsilon_schedule=((1.0, 8), (0.3, 20)), replay_batch=20, seed=5)  # noqa: E731
    uninterrupted = make().run(20, progress=False)
    make().run(9, checkpoint=tmp_path / "ckpt", progress=False)
    state = torch.load(tmp_path / "ckpt" / "state.pt", weights_only=True)
    json.dumps(state["state"]["extra"])  # the Q table and the memory are plain JSON
    resumed = make()
    resumed.run(20, checkpoint=tmp_path / "ckpt", progress=False)
    assert [(t.arch, t.info) for t in resumed.history] == [(t.arch, t.info) for t in uninterrupted]
    fresh = make()
    fresh.load_state_dict(resumed.state_dict())
    assert fresh.q == resumed.q and fresh.memory == resumed.memory
    state = resumed.state()
    json.dumps(state)
    assert state["memory"] == 20 and space.parse(state["greedy_arch"]) == resumed.greedy_arch()
    assert [s["state"] for s in state["sampled_path"]] == [p[0] for p in resumed.history[-1].info["path"]]


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(epsilon_schedule="fast"), "epsilon_schedule"),
    (dict(epsilon_schedule=[(1.5, 10)]), "epsilon_schedule[0][0]"),
    (dict(epsilon_schedule=[(0.5, 0)]), "epsilon_schedule[0][1]"),
    (dict(alpha=0.0), "alpha"),
    (dict(gamma=2.0), "gamma"),
    (dict(replay_batch=0), "replay_batch"),
])
def test_bad_arguments_are_named(kwargs, fragment):
    space = ToySpace(length=3, options=2)
    with pytest.raises((InvalidValueError, InvalidTypeError), match=fragment.replace("[", r"\[").replace("]", r"\]")):
        MetaQNN(space, space.evaluate, **kwargs)
