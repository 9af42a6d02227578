"""REINFORCE: a recurrent controller learns a probability distribution over architectures.

Zoph & Le ("Neural Architecture Search with Reinforcement Learning", ICLR 2017) let a recurrent
network, the *controller*, write an architecture down one decision at a time: which op on this
edge, which input for that node. Each decision is a softmax over its options, and the option it
takes is fed back as the input of the next step, so later decisions can depend on earlier ones.
The architecture is trained and its validation accuracy is the reward R. The controller's weights
θ are trained to make good architectures likely, by REINFORCE (Williams, "Simple statistical
gradient-following algorithms for connectionist reinforcement learning", Machine Learning 1992):

    J(θ)  = E_{a ~ π_θ}[ R(a) ]                                       the expected reward
    ∇J(θ) = E_{a ~ π_θ}[ (R(a) − b) ∇_θ log π_θ(a) ]                 for any b independent of a
    log π_θ(a) = Σ_k log π_θ(a_k | a_<k)                              the chain rule over decisions

One sampled architecture gives an unbiased estimate of ∇J. The baseline b subtracts nothing in
expectation (E[∇ log π] = ∇ Σ_a π(a) = ∇1 = 0) but shrinks the estimate's variance; here it is an
exponential moving average of past rewards, as in Zoph & Le. We minimise, by Adam,

    loss(θ) = −(R − b) log π_θ(a) − β H_θ(a),    then    b ← decay · b + (1 − decay) · R

where H_θ(a) = Σ_k H(π_θ(· | a_<k)) sums the entropy of each decision along the sampled path (its
expectation is the entropy of π_θ, by the chain rule) and β > 0 rewards keeping options open. b is
the average of rewards *before* this one, so it does not depend on the action it judges; the first
reward starts the average (its advantage is 0). The exact gradient of E_a[H_θ(a)] has two terms,
E[∇H_θ(a)] + E[H_θ(a) ∇log π_θ(a)]; like A3C (Mnih et al. 2016) we keep the first, while ENAS's
code keeps the second (it adds β·H to the reward).

The controller is ENAS's simplification (Pham et al., "Efficient Neural Architecture Search via
Parameter Sharing", ICML 2018): one LSTM cell, a learned start input, one embedding and one linear
head per decision, logits divided by a temperature and squashed by `c · tanh(·)` so that no option
becomes impossible too early. Zoph & Le's controller had two LSTM layers of 35 units; NASNet
(Zoph et al., 2018) trained its controller with PPO rather than plain REINFORCE.
"""
from __future__ import annotations

import contextlib
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nasnb.checks import check_float, check_int, check_positive_float, check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.base import Choice
from nasnb.strategies.base import Strategy
from nasnb.strategies.fast_controller import Adam, FastController, Pass, adam_state_from_torch


class Sample(NamedTuple):
    """One walk through the decisions (sampled, greedy, or given)."""

    actions: list  # one option index per decision
    log_prob: torch.Tensor  # scalar: Σ_k log π(a_k | a_<k)
    entropy: torch.Tensor  # scalar: Σ_k H(π(· | a_<k)) along this path
    probs: list  # per decision k: π(· | a_<k), a tensor of shape (n_k,)


class Controller(nn.Module):
    """An LSTM that takes one decision per `Choice`, in order (ENAS's controller, Pham et al. 2018).

    Args:
        choices: the decisions (`space.choices`); they may have different numbers of options.
        hidden_size: width of the LSTM cell and of the action embeddings.
        temperature: logits are divided by it (ENAS: 5.0); higher keeps the policy flatter.
        tanh_constant: logits become `c · tanh(logits)`, bounded in [−c, c] (ENAS: 2.5); None: off.
        seed: seeds the initial weights (uniform in [−0.1, 0.1], as ENAS); the global RNG is untouched.
    """

    def __init__(self, choices: Sequence[Choice], hidden_size: int = 64, *, temperature: float = 5.0,
                 tanh_constant: float | None = 2.5, seed: int = 0):
        super().__init__()
        self.choices = list(choices)
        if not self.choices or not all(isinstance(c, Choice) for c in self.choices):
            raise InvalidValueError(f"a controller needs a non-empty list of Choice decisions (space.choices), "
                                    f"got {short(self.choices)}")
        self.num_options = [len(c.options) for c in self.choices]
        if min(self.num_options) < 1:
            raise InvalidValueError(f"every decision needs at least one option, got {self.num_options}")
        hidden_size = check_positive_int("hidden_size", hidden_size, example=64)
        self.temperature = check_positive_float("temperature", temperature, example=5.0)
        if tanh_constant is not None:
            tanh_constant = check_positive_float("tanh_constant", tanh_constant, example=2.5)
        self.tanh_constant = tanh_constant
        seed = check_int("seed", seed, minimum=0)
        with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's RNG alone
            torch.manual_seed(seed)
            self.start = nn.Parameter(torch.empty(1, hidden_size))  # the first step's input (ENAS's g_emb)
            self.lstm = nn.LSTMCell(hidden_size, hidden_size)
            # decision k's action is embedded as the input of step k+1; the last one feeds nothing
            self.embeddings = nn.ModuleList(nn.Embedding(n, hidden_size) for n in self.num_options[:-1])
            self.heads = nn.ModuleList(nn.Linear(hidden_size, n) for n in self.num_options)
            for p in self.parameters():
                nn.init.uniform_(p, -0.1, 0.1)

    def logits(self, h: torch.Tensor, k: int) -> torch.Tensor:
        """Decision k's logits from the LSTM output h (1, H) -> (1, n_k)."""
        z = self.heads[k](h) / self.temperature
        if self.tanh_constant is not None:
            z = self.tanh_constant * torch.tanh(z)  # bounded: no option's probability collapses to 0
        return z

    def _walk(self, choose) -> Sample:
        """Take the decisions in order; `choose(k, probs) -> int` picks the option at step k."""
        x = self.start  # (1, H)
        h = c = torch.zeros_like(self.start)  # (1, H) each
        actions, log_probs, entropies, probs = [], [], [], []
        for k in range(len(self.num_options)):
            h, c = self.lstm(x, (h, c))
            log_p = F.log_softmax(self.logits(h, k), dim=-1)[0]  # (n_k,)
            p = log_p.exp()
            a = int(choose(k, p))
            actions.append(a)
            log_probs.append(log_p[a])
            entropies.append(-(p * log_p).sum())
            probs.append(p)
            if k + 1 < len(self.num_options):
                x = self.embeddings[k](torch.tensor([a], device=h.device))  # (1, H)
        return Sample(actions, torch.stack(log_probs).sum(), torch.stack(entropies).sum(), probs)

    def sample(self, generator: torch.Generator) -> Sample:
        """Sample a ~ π_θ, drawing only from `generator`."""
        return self._walk(lambda k, p: torch.multinomial(p.detach(), 1, generator=generator).item())

    def greedy(self) -> Sample:
        """The most likely option at each step given the previous ones (greedy decoding)."""
        return self._walk(lambda k, p: p.argmax().item())

    def forward(self, actions: Sequence[int]) -> Sample:
        """Replay given actions (differentiable): their log-probability, entropies and probabilities."""
        actions = self.check_actions(actions)
        return self._walk(lambda k, p: actions[k])

    def log_prob(self, actions: Sequence[int]) -> torch.Tensor:
        """log π_θ(a) = Σ_k log π_θ(a_k | a_<k), differentiable in θ."""
        return self(actions).log_prob

    def check_actions(self, actions: Sequence[int]) -> list:
        if isinstance(actions, (str, bytes)) or not isinstance(actions, Sequence):
            raise InvalidTypeError(f"actions must be a list of option indices, got {short(actions)}")
        actions = [check_int(f"actions[{k}]", a, minimum=0) for k, a in enumerate(actions)]
        if len(actions) != len(self.num_options):
            raise InvalidValueError(f"got {len(actions)} actions; this controller takes {len(self.num_options)} "
                             "decisions, one option index per space.choices entry")
        for choice, n, a in zip(self.choices, self.num_options, actions):
            if not 0 <= a < n:
                raise InvalidValueError(f"action {a} for decision {choice.name!r}, which has options 0..{n - 1}")
        return actions


@contextlib.contextmanager
def one_thread():
    """Run torch on one intra-op thread, then restore the caller's setting. The controller's tensors
    are tiny (1 x hidden_size): a second thread saves nothing, and on a busy 2-core machine waiting
    for it made one controller sample take 28 ms instead of 1.2 ms (measured here, hidden_size=64)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def baseline_step(baseline: float | None, reward: float, decay: float) -> tuple[float, float]:
    """(b this reward is judged by, b afterwards): b ← decay · b + (1 − decay) · R, where the first
    reward starts the average (advantage 0). The one home of this rule: the strategy and its policy
    view both call it."""
    judged_by = reward if baseline is None else baseline
    return judged_by, decay * judged_by + (1 - decay) * reward


def reinforce_loss(log_probs: torch.Tensor, entropies: torch.Tensor, advantages: torch.Tensor,
                   entropy_weight: float) -> torch.Tensor:
    """mean_i [ −(R_i − b_i) log π(a_i) − β H(a_i) ]. Its negative gradient is an unbiased estimate
    of ∇J plus β times the entropy's gradient along the sampled paths (module docstring)."""
    return (-advantages * log_probs - entropy_weight * entropies).mean()


class Reinforce(Strategy):
    """A controller trained by REINFORCE with a moving-average baseline and an entropy bonus.

    Zoph & Le 2017 (Section 3.2) with ENAS's controller (Pham et al. 2018); see the module docstring
    for the equations. Each step samples one architecture from the controller; every `batch_size`
    trials the controller takes one Adam step on the mean loss of those trials.

    The arithmetic runs in numpy (fast_controller.py, float32 like the controller's weights, on the
    weights' own memory), about 10x faster than torch autograd on these tiny arrays; `Controller`
    is the model and the reference it is tested against. It samples with torch.multinomial's draws
    from the same generator, so the sequences are those `Controller.sample` gives, but for near-ties
    that float rounding decides; its gradient and Adam step are torch's to float rounding.

    Args:
        hidden_size, temperature, tanh_constant: the `Controller`'s.
        lr: Adam's learning rate. ENAS's scripts use 0.0035 (CIFAR-10) and 0.001 (Penn Treebank)
            over thousands of controller steps; the default is larger because a search here runs for
            tens to hundreds of trials.
        baseline_decay: b ← decay · b + (1 − decay) · R after each trial.
        entropy_weight: β, the weight of the entropy bonus. It trades off against the advantages
            R − b, so it depends on the reward's scale: the default suits accuracies that differ by a
            few points; a reward that varies more (ToySpace scores, in steps of 1/length) takes ~0.03.
        batch_size: trials per controller update (Zoph & Le's m).
    """

    panels = ("cell", "policy")
    replayable = True  # propose() samples the controller with self.torch_generator only (storage.py)

    def __init__(self, space, evaluator, *, hidden_size: int = 64, temperature: float = 5.0,
                 tanh_constant: float | None = 2.5, lr: float = 0.01, baseline_decay: float = 0.95,
                 entropy_weight: float = 0.003, batch_size: int = 1, metric: str = "val_accuracy", seed: int = 0):
        super().__init__(space, evaluator, metric=metric, seed=seed)
        self.hidden_size = check_positive_int("hidden_size", hidden_size, example=64)
        self.lr = check_positive_float("lr", lr, example=0.01)
        self.baseline_decay = check_float("baseline_decay", baseline_decay, minimum=0.0, maximum=0.999999, example=0.95)
        self.entropy_weight = check_float("entropy_weight", entropy_weight, minimum=0.0, example=0.003)
        self.batch_size = check_positive_int("batch_size", batch_size, example=1)
        self.choices = list(space.choices)
        self.controller = Controller(self.choices, self.hidden_size, temperature=temperature,
                                     tanh_constant=tanh_constant, seed=self.seed)
        # The controller's arithmetic runs in numpy on the controller's own weights (fast_controller.py:
        # eager torch spends more time on bookkeeping than on these tiny arrays); Controller is its reference.
        self._fast = FastController(self.controller)
        self.optimizer = Adam(self._fast, lr=self.lr)  # torch.optim.Adam's arithmetic, on all weights at once
        self.baseline: float | None = None  # the moving average of rewards so far; None before the first
        self.last_reward: float | None = None
        self._buffer: list[tuple[list, float]] = []  # (actions, advantage) of trials not yet learnt from
        self._passes: dict[tuple, tuple] = {}  # actions -> (θ's version, the pass that sampled them)
        # What the policy view needs to replay the history without this object (nasnb.viz.policy).
        self.history.meta.update(
            choices=[{"name": c.name, "options": [str(o) for o in c.options]} for c in self.choices],
            baseline_decay=self.baseline_decay, entropy_weight=self.entropy_weight, batch_size=self.batch_size)

    def settings(self) -> dict:
        return {**super().settings(), "hidden_size": self.hidden_size, "temperature": self.controller.temperature,
                "tanh_constant": self.controller.tanh_constant, "lr": self.lr, "baseline_decay": self.baseline_decay,
                "entropy_weight": self.entropy_weight, "batch_size": self.batch_size}

    # ---------------------------------------------------------------- ask / tell

    def propose(self):
        self._fast.check_bound()
        sample = self._fast.sample(self.torch_generator)  # torch.multinomial's draws (fast_controller.py)
        self._keep_pass(sample)
        info = {
            "actions": sample.actions,
            "probs": [[round(x, 6) for x in p.tolist()] for p in sample.probs],  # what it sampled from
            "log_prob": sample.log_prob,
            "entropy": sample.entropy,
        }
        return self.arch_of(sample.actions), info

    def observe(self, trial) -> None:
        """Only complete trials get here: a failed one (NaN, an exception) never moves θ or b."""
        reward = trial.value(self.metric)
        judged_by, self.baseline = baseline_step(self.baseline, reward, self.baseline_decay)
        self._buffer.append((list(trial.info["actions"]), reward - judged_by))  # b before this reward
        self.last_reward = reward
        if len(self._buffer) >= self.batch_size:
            self.update()

    def update(self) -> float:
        """One Adam step on the buffered trials, their log-probs recomputed with the current θ.
        The gradient of reinforce_loss is taken by hand (FastController.backward writes the chain
        rule out) and stays in the parameters' .grad until the next update."""
        self._fast.check_bound()
        runs = [self._pass_of(actions) for actions, _ in self._buffer]
        loss = self._fast.backward(runs, [adv for _, adv in self._buffer], self.entropy_weight)
        self.optimizer.step(self._fast.flat_grad)
        self._buffer.clear()
        self._passes.clear()  # θ has changed: every kept pass is stale
        return loss

    _update = update  # its name before the numpy controller (notebook 03 prints it)

    # ---------------------------------------------------------------- the sampling pass, reused

    def _theta_version(self) -> tuple:
        """Changes whenever a weight is changed: an Adam step (numpy writes, which torch does not
        count) or an in-place torch op (load_state_dict, a hand edit)."""
        return self.optimizer.steps, self._fast.version()

    def _keep_pass(self, sample: Pass) -> None:
        """Keep the pass that sampled `actions`, for the update. Told at once (a sequential search),
        a trial is learnt from with the θ that sampled it, and replaying it would redo the very same
        arithmetic: the same log π(a), the same gradient."""
        if len(self._passes) > self.batch_size + 16:  # proposals that fail or are dropped are never told
            self._passes.pop(next(iter(self._passes)))
        self._passes[tuple(sample.actions)] = (self._theta_version(), sample)

    def _pass_of(self, actions: list) -> Pass:
        """The pass of `actions` under the current θ: the kept sampling pass while θ has not changed
        since, else a replay (asked before an update and told after it)."""
        kept = self._passes.pop(tuple(actions), None)
        if kept is not None and kept[0] == self._theta_version():
            return kept[1]
        return self._fast.forward(self.controller.check_actions(actions))

    # ---------------------------------------------------------------- reading the policy

    def arch_of(self, actions: Sequence[int]):
        """The architecture that takes option `actions[k]` at decision k."""
        return self.space.from_choices([c.options[a] for c, a in zip(self.choices, actions)])

    def greedy_arch(self):
        """The most likely architecture under the current policy (greedy decoding)."""
        with torch.no_grad(), one_thread():
            return self.arch_of(self.controller.greedy().actions)

    def state(self) -> dict:
        state = super().state()
        with torch.no_grad(), one_thread():
            greedy = self.controller.greedy()
        state.update(
            policy=[{"name": c.name, "options": [str(o) for o in c.options], "probs": p.tolist(), "greedy": a}
                    for c, p, a in zip(self.choices, greedy.probs, greedy.actions)],
            greedy_arch=self.space.format(self.arch_of(greedy.actions)),
            entropy=float(greedy.entropy),  # Σ_k H(π(· | a_<k)) along the greedy path
            baseline=self.baseline, last_reward=self.last_reward)
        return state

    # ---------------------------------------------------------------- checkpoints

    def _extra_state(self) -> dict:
        return {  # live tensors: state_dict() copies them, a checkpoint write serialises them at once
            "controller": self.controller.state_dict(),
            "adam": self.optimizer.state_dict(),
            "baseline": self.baseline,
            "last_reward": self.last_reward,
            "buffer": [[list(actions), float(adv)] for actions, adv in self._buffer],
        }

    def _load_extra_state(self, state: dict) -> None:
        self._fast.check_bound()
        self.controller.load_state_dict(state["controller"])  # copies into the flat buffer
        if "adam" in state:
            adam = state["adam"]
        elif "optimizer" in state:  # written by torch.optim.Adam (before the numpy controller): convert
            adam = adam_state_from_torch(state["optimizer"], [name for name, _ in self.controller.named_parameters()])
        else:
            raise KeyError("the state holds no optimizer state ('adam' or 'optimizer')")
        self.optimizer.load_state_dict(adam)
        self._passes.clear()
        self.baseline, self.last_reward = state["baseline"], state["last_reward"]
        self._buffer = [(list(actions), float(adv)) for actions, adv in state["buffer"]]
