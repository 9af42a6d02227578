"""ENAS: efficient neural architecture search via parameter sharing (Pham et al., ICML 2018).

Zoph & Le's REINFORCE search (reinforce.py) trains every sampled architecture from scratch, so one
reward costs one training run. ENAS trains none of them from scratch: every architecture of the
space is a sub-network of one supernet (spaces/supernet.py) and they all share its weights ω. A
sampled architecture m runs only its own ops, on ω. Two sets of parameters are trained in turn
(Sec. 2.2 of the paper):

    ω, the shared weights: for each training minibatch a fresh m ~ π(·; θ), one SGD step on
        ∇_ω L_train(m; ω)                  (one sample per minibatch: the paper's M = 1)
    θ, the controller: REINFORCE with ω fixed, on the reward R(m, ω) = the accuracy of m on a
        validation minibatch,
        ∇_θ E_m[R] ≈ (R − b) ∇_θ log π(m; θ)

The controller, its loss and its baseline are those of reinforce.py (`Controller`, `reinforce_loss`,
`baseline_step`): the only difference from `Reinforce` is where R comes from, a forward pass on
shared weights instead of a training run. That is what makes ENAS about 1000x cheaper than NAS,
and also its weakness: a sub-network's accuracy on shared weights need not rank architectures the
way stand-alone training does (the notebook measures Kendall τ between the two). The authors' code
moves b before it judges R, so its advantage is R − b_new = 0.99 · (R − b_old): the same sign, a
slightly smaller step.

Deriving the architecture (Sec. 2.2): sample several architectures from the trained policy, score
each on one validation minibatch, keep the best. `final_architectures` does that, then re-scores
the best few on the whole validation split, so that one lucky minibatch does not decide.

BatchNorm uses batch statistics throughout, the reward's forward pass included (the authors' code
builds the reward's child with is_training=True): running statistics of weights that every
sub-network shares describe none of them. Scoring never changes the running statistics or any
random state of the search, so a score taken in the middle of a run leaves that run unchanged.
"""
from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F

from nasnb.checks import check_float, check_int, check_positive_float, check_positive_int, check_seed, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.history import Step
from nasnb.strategies.oneshot import OneShotSearch
from nasnb.strategies.reinforce import Controller, baseline_step, one_thread, reinforce_loss


class ENAS(OneShotSearch):
    """ENAS (Pham et al., ICML 2018, Sec. 2.2 and 3.2): shared weights and a controller, in turn.

    Each `step()` is one ENAS iteration at a small scale: `child_steps` training minibatches, each
    on a freshly sampled sub-network, update the shared weights; then `controller_steps` REINFORCE
    updates, each on one sampled sub-network whose reward is its accuracy on one validation
    minibatch. One `Step` is recorded (see step()). The data, the supernet's arguments, the batch
    streams, ω's cosine schedule and the divergence checks are every one-shot search's
    (OneShotSearch, strategies/oneshot.py).

    Defaults, and the paper's (Sec. 3.2, CIFAR-10) and the authors' micro-search script's
    (melodyguan/enas, scripts/cifar10_micro_search.sh) where they differ:
      * shared weights: SGD with Nesterov momentum 0.9, lr 0.05 annealed by a cosine to 0.0005
        (the authors restart the cosine: T_0 = 10 epochs, T_mul = 2), weight decay 1e-4 (the
        authors add 1e-4·Σw² to the loss: 2e-4 in PyTorch's terms), gradient norm clipped to 5
        (the authors' flag; their clipping code keeps the unclipped gradient, so it never
        clips). The paper trains ω for one pass over the training data per
        iteration (about 15 minibatches of 64 of digits' 1,000 training images); child_steps=10.
      * controller: the `Controller`'s LSTM with 64 hidden units (the authors' code; the paper
        says 100), logits divided by a temperature of 5 and squashed by 2.5·tanh (the paper; the
        micro-search script uses 1.1, and 1.1 / 2.5 for the ops), Adam. The paper's learning rate
        is 3.5e-4 and the script's 3.5e-3, over thousands of controller updates (the paper takes
        2000 per iteration, the script 30 updates of 10 samples each); the default 0.01 is
        Reinforce's, because a search here takes hundreds. Moving-average baseline decay 0.99
        (the authors' default). Entropy weight 1e-4 (the script; the paper: 0.1), on the A3C
        form of reinforce.py (the authors add β·H to the reward instead).

    Args:
        space: NB201Space() or DartsSpace() (a space with supernet(), choices and from_choices()).
        data: a nasnb.data.TensorData; ω trains on `data.train`, rewards come from `data.val`.
        supernet_kwargs: passed to `space.supernet(...)`; num_classes and in_channels come from
            the data. None: SMALL_SUPERNETS' size for the space (strategies/oneshot.py).
        child_steps, controller_steps: shared-weight minibatches and controller updates per step.
        schedule_steps: the number of steps over which ω's learning rate falls from w_lr to
            w_lr_min by a cosine; None keeps w_lr constant.
        hidden_size, temperature, tanh_constant: the `Controller`'s.
        device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", ... (the controller stays on
            the CPU: its tensors are 1 x hidden_size).

    `state()` holds the controller's policy (along its greedy path) and the shared loss;
    `derived()` is the greedy architecture, what every Step records as its arch;
    `final_architectures()` the paper's final choice; `shared_accuracy(arch)` scores any
    architecture of the space on the shared weights.
    """

    panels = ("cell", "policy", "progress")

    def __init__(self, space, data, *, supernet_kwargs: dict | None = None, batch_size: int = 64,
                 child_steps: int = 10, controller_steps: int = 10, w_lr: float = 0.05, w_lr_min: float = 0.0005,
                 schedule_steps: int | None = None, w_momentum: float = 0.9, w_weight_decay: float = 1e-4,
                 grad_clip: float | None = 5.0, hidden_size: int = 64, temperature: float = 5.0,
                 tanh_constant: float | None = 2.5, controller_lr: float = 0.01, baseline_decay: float = 0.99,
                 entropy_weight: float = 1e-4, device="auto", metric: str = "val_accuracy", seed: int = 0):
        super().__init__(space, metric=metric, seed=seed)
        for needed in ("supernet", "from_choices"):
            if not callable(getattr(space, needed, None)):
                raise InvalidTypeError(f"ENAS needs a space with a supernet and choices, e.g. NB201Space() or "
                                       f"DartsSpace(); got {short(space)}, which has no {needed}()")
        self._check_data(data, trains="shared weights")
        self.batch_size = self._check_batch_size(batch_size, data)
        self.child_steps = check_positive_int("child_steps", child_steps, example=10)
        self.controller_steps = check_positive_int("controller_steps", controller_steps, example=10)
        self.w_lr = check_positive_float("w_lr", w_lr, example=0.05)
        self.w_lr_min = check_float("w_lr_min", w_lr_min, minimum=0.0, maximum=self.w_lr, example=0.0005)
        self.schedule_steps = (None if schedule_steps is None
                               else check_positive_int("schedule_steps", schedule_steps, example=100))
        self.w_momentum = check_float("w_momentum", w_momentum, minimum=0.0, maximum=0.999, example=0.9)
        self.w_weight_decay = check_float("w_weight_decay", w_weight_decay, minimum=0.0, maximum=1.0, example=1e-4)
        self.grad_clip = None if grad_clip is None else check_positive_float("grad_clip", grad_clip, example=5.0)
        self.hidden_size = check_positive_int("hidden_size", hidden_size, example=64)
        self.controller_lr = check_positive_float("controller_lr", controller_lr, example=0.01)
        self.baseline_decay = check_float("baseline_decay", baseline_decay, minimum=0.0, maximum=0.999999,
                                          example=0.99)
        self.entropy_weight = check_float("entropy_weight", entropy_weight, minimum=0.0, example=1e-4)
        self._use_data(data, device)
        self.supernet_kwargs = self._resolve_supernet_kwargs(supernet_kwargs)
        self.net = self._seeded_supernet(self.supernet_kwargs, self.seed)
        # Nesterov momentum, as the authors' MomentumOptimizer(use_nesterov=True). The supernet's α
        # are DARTS' and are left alone: ENAS has no architecture parameters in the network.
        self.w_optimizer = torch.optim.SGD(self.net.weight_parameters(), lr=self.w_lr, momentum=self.w_momentum,
                                           nesterov=self.w_momentum > 0, weight_decay=self.w_weight_decay)
        self.choices = list(space.choices)
        self.controller = Controller(self.choices, self.hidden_size, temperature=temperature,
                                     tanh_constant=tanh_constant, seed=self.seed)
        self.controller_optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.controller_lr)
        self.baseline: float | None = None  # the moving average of rewards so far; None before the first
        self.last_reward: float | None = None
        self.last_shared_loss: float | None = None
        # What the policy view needs to replay the history without this object (nasnb.viz.policy).
        self.history.meta.update(
            choices=[{"name": c.name, "options": [str(o) for o in c.options]} for c in self.choices],
            baseline_decay=self.baseline_decay, entropy_weight=self.entropy_weight,
            controller_steps=self.controller_steps)

    # ---------------------------------------------------------------- the pieces of one iteration

    def arch_of(self, actions):
        """The architecture that takes option `actions[k]` at decision k."""
        return self.space.from_choices([c.options[a] for c, a in zip(self.choices, actions)])

    def _sample_actions(self, generator: torch.Generator) -> list:
        with torch.no_grad(), one_thread():
            return self.controller.sample(generator).actions

    def _shared_step(self, arch) -> tuple[float, float]:
        """One SGD step of the shared weights on the next training batch, through `arch`'s ops only
        (the others get no gradient and are not touched). Returns (loss, accuracy) of the batch."""
        x, y = self._next_batch("train")
        logits = self.net(x, arch=arch)  # (B, num_classes): only the sub-network runs
        loss = F.cross_entropy(logits, y)
        self._check_finite("shared weights' training loss", loss)
        weights = self.net.weight_parameters()
        self.w_optimizer.zero_grad(set_to_none=True)  # unused ops keep grad None: SGD skips them
        loss.backward()  # reaches only the sub-network's weights (the α are not in its graph)
        norm = torch.nn.utils.clip_grad_norm_(weights, self.grad_clip if self.grad_clip is not None else math.inf)
        self._check_finite("shared weights' gradient", norm)
        self.w_optimizer.step()
        return float(loss.detach()), float((logits.argmax(1) == y).float().mean())

    def _reward(self, arch) -> float:
        """R(m, ω): the accuracy of `arch` on the shared weights, on the next validation batch."""
        return self._accuracy(arch, *self._next_batch("val"))

    def _controller_step(self, actions=None) -> dict:
        """One REINFORCE update of the controller on one architecture (sampled from the policy when
        `actions` is None): R from `_reward`, the advantage R − b with b before this reward
        (`baseline_step`), then one Adam step on `reinforce_loss`. Returns what the record keeps."""
        if actions is None:
            actions = self._sample_actions(self.torch_generator)
        arch = self.arch_of(actions)
        reward = self._reward(arch)
        judged_by, self.baseline = baseline_step(self.baseline, reward, self.baseline_decay)
        self.last_reward = reward
        with one_thread():
            replay = self.controller(actions)  # log π(a), entropies and probabilities, differentiable in θ
            loss = reinforce_loss(replay.log_prob[None], replay.entropy[None], torch.tensor([reward - judged_by]),
                                  self.entropy_weight)
            self._check_finite("controller loss", loss)
            self.controller_optimizer.zero_grad()
            loss.backward()  # the gradients stay in .grad until the next update (tests read them)
            self.controller_optimizer.step()
        return {"arch": self.space.format(arch), "actions": list(replay.actions),
                "probs": [[round(x, 6) for x in p.tolist()] for p in replay.probs],  # what it was sampled from
                "log_prob": float(replay.log_prob.detach()), "entropy": float(replay.entropy.detach()),
                "reward": reward, "loss": float(loss.detach())}

    def _lower_learning_rates(self) -> str:
        return (f"the learning rates are probably too high; try e.g. w_lr={self.w_lr / 10:g} or "
                f"controller_lr={self.controller_lr / 10:g} (a tenth), or a smaller grad_clip")

    # ---------------------------------------------------------------- one step

    def step(self) -> Step:
        """One ENAS iteration, recorded as a Step.

        metrics: shared_loss and train_accuracy (means over the child_steps training batches),
        val_accuracy (the mean reward: accuracy of the sampled sub-networks on their validation
        batches), entropy (mean Σ_k H along the sampled paths), baseline (b after the step),
        controller_loss (mean), w_lr. info: shared_archs (the architectures ω was trained
        through) and samples (per controller update: arch, actions, the probabilities it was
        sampled from, log_prob, entropy, reward, loss). arch: the greedy architecture after the
        step. A NaN or infinite loss or gradient raises TrainingDivergedError and leaves the
        search as it was before the step; nothing is recorded.
        """
        start = time.perf_counter()
        with self._undone_if_diverged():
            metrics, info = self._iterate()
        arch = self.space.format(self.derived())
        return self._record(Step(len(self.history), metrics, seconds=time.perf_counter() - start, info=info,
                                 arch=arch))

    def _iterate(self) -> tuple[dict, dict]:
        lr = self.current_w_lr()
        for group in self.w_optimizer.param_groups:
            group["lr"] = lr
        shared_archs, losses, accuracies = [], [], []
        for _ in range(self.child_steps):  # train ω (Sec. 2.2, "Training the shared parameters ω")
            arch = self.arch_of(self._sample_actions(self.torch_generator))
            loss, accuracy = self._shared_step(arch)
            shared_archs.append(self.space.format(arch))
            losses.append(loss)
            accuracies.append(accuracy)
        self.last_shared_loss = sum(losses) / len(losses)
        samples = [self._controller_step() for _ in range(self.controller_steps)]  # train θ, ω fixed
        mean = lambda key: sum(s[key] for s in samples) / len(samples)  # noqa: E731
        metrics = {"shared_loss": self.last_shared_loss, "train_accuracy": sum(accuracies) / len(accuracies),
                   "val_accuracy": mean("reward"), "entropy": mean("entropy"), "baseline": self.baseline,
                   "controller_loss": mean("loss"), "w_lr": lr}
        return metrics, {"shared_archs": shared_archs, "samples": samples}

    # ---------------------------------------------------------------- reading the policy and the weights

    def derived(self):
        """The greedy architecture: the controller's most likely option at each decision, given
        the options before it. (The paper's final choice is `final_architectures`.)"""
        with torch.no_grad(), one_thread():
            return self.arch_of(self.controller.greedy().actions)

    def final_architectures(self, n_samples: int = 20, top: int = 5, seed: int = 0) -> list[tuple]:
        """The paper's derivation (Sec. 2.2), then a re-ranking: sample `n_samples` architectures
        from the policy, score each on one random validation batch, and re-score the `top` best
        distinct ones on the whole validation split. Returns (arch, accuracy) pairs, best first
        (ties in sampling order). `seed` drives the sampling and the batches, not the search's
        generators: the search is left exactly as it was."""
        n_samples = check_positive_int("n_samples", n_samples, example=20)
        top = check_int("top", top, minimum=1, maximum=n_samples, example=min(5, n_samples))
        generator = torch.Generator().manual_seed(check_seed("seed", seed))
        archs = [self.arch_of(self._sample_actions(generator)) for _ in range(n_samples)]
        x, y = self.data.split("val")
        scores = []
        for arch in archs:
            idx = torch.randperm(len(y), generator=generator)[:self.batch_size].to(x.device)
            scores.append(self._accuracy(arch, x[idx], y[idx]))
        candidates = []
        for k in sorted(range(n_samples), key=lambda k: -scores[k]):  # stable: ties in sampling order
            if archs[k] not in candidates:
                candidates.append(archs[k])
        ranked = [(arch, self.shared_accuracy(arch, "val")) for arch in candidates[:top]]
        return sorted(ranked, key=lambda pair: -pair[1])

    def state(self) -> dict:
        state = super().state()
        with torch.no_grad(), one_thread():
            greedy = self.controller.greedy()
        state.update(
            policy=[{"name": c.name, "options": [str(o) for o in c.options], "probs": p.tolist(), "greedy": a}
                    for c, p, a in zip(self.choices, greedy.probs, greedy.actions)],
            greedy_arch=self.space.format(self.arch_of(greedy.actions)),
            entropy=float(greedy.entropy),  # Σ_k H(π(· | a_<k)) along the greedy path
            baseline=self.baseline, last_reward=self.last_reward, shared_loss=self.last_shared_loss)
        return state

    # ---------------------------------------------------------------- checkpoints

    def settings(self) -> dict:
        # The device is left out: a run continued on another device is the same run.
        return {**super().settings(), "supernet_kwargs": self.supernet_kwargs, "batch_size": self.batch_size,
                "child_steps": self.child_steps, "controller_steps": self.controller_steps, "w_lr": self.w_lr,
                "w_lr_min": self.w_lr_min, "schedule_steps": self.schedule_steps, "w_momentum": self.w_momentum,
                "w_weight_decay": self.w_weight_decay, "grad_clip": self.grad_clip, "hidden_size": self.hidden_size,
                "temperature": self.controller.temperature, "tanh_constant": self.controller.tanh_constant,
                "controller_lr": self.controller_lr, "baseline_decay": self.baseline_decay,
                "entropy_weight": self.entropy_weight, "data": self.data_settings}

    def _extra_state(self) -> dict:
        return {"net": self.net.state_dict(), "w_optimizer": self.w_optimizer.state_dict(),
                "controller": self.controller.state_dict(),
                "controller_optimizer": self.controller_optimizer.state_dict(),
                "baseline": self.baseline, "last_reward": self.last_reward, "last_shared_loss": self.last_shared_loss,
                "streams": self._streams_state()}

    def _load_extra_state(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.w_optimizer.load_state_dict(copy.deepcopy(state["w_optimizer"]))
        self.controller.load_state_dict(state["controller"])
        self.controller_optimizer.load_state_dict(copy.deepcopy(state["controller_optimizer"]))
        self.baseline, self.last_reward = state["baseline"], state["last_reward"]
        self.last_shared_loss = state["last_shared_loss"]
        self._load_streams(state["streams"])
