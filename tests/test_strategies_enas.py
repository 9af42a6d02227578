"""ENAS (nasnb/strategies/enas.py): its two updates against the math, its steps, checkpoints and errors.

The controller's update is checked against a REINFORCE gradient computed here from the definition
(an LSTM walk written out, log-softmax of 2.5·tanh(logits / 5), advantage R − b, entropy bonus),
the reward against the sub-network's accuracy computed here. The validation batch is the whole
validation split (batch_size = its size), so a reward can be recomputed without knowing the order
the search drew: BatchNorm's batch statistics do not depend on it.
"""
import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

import nasnb
from nasnb.errors import NasnbError, ResumeMismatchError, TrainingDivergedError
from nasnb.history import Step
from nasnb.spaces import DartsSpace, NB201Space
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import ENAS
from nasnb.strategies.reinforce import one_thread
from nasnb.viz import plot_policy, policy_data

SPACE = NB201Space()
TINY = {"C": 4, "N": 1}
VAL = 16  # images in the validation split, and the batch size: a reward batch is the whole split


@pytest.fixture(autouse=True)
def single_thread():
    """Small convolutions on a loaded 2-core machine are much faster and steadier on one thread."""
    with one_thread():
        yield


@pytest.fixture(scope="module")
def data():
    return nasnb.data.load("digits").subset(train_size=48, val_size=VAL)


def make(data, **kwargs):
    settings = {"supernet_kwargs": TINY, "batch_size": VAL, "child_steps": 2, "controller_steps": 3,
                "device": "cpu", **kwargs}
    return ENAS(SPACE, data, **settings)


def accuracy_by_hand(search, arch) -> float:
    """The sub-network's accuracy on the whole validation split, in one batch (batch statistics), on
    a copy of the supernet (a forward pass in train mode moves BatchNorm's running statistics)."""
    x, y = search.data.val
    with torch.no_grad():
        return float((copy.deepcopy(search.net)(x, arch=arch).argmax(1) == y).float().mean())


# ============================================================================= the two updates, against the math

def reinforce_loss_by_hand(controller, actions, advantage, entropy_weight):
    """−(R − b) log π(a) − β Σ_k H(π(· | a_<k)), walking the LSTM by hand (ENAS's sampler)."""
    h = c = torch.zeros(1, controller.start.shape[1])
    x, log_prob, entropy = controller.start, 0.0, 0.0
    for k, a in enumerate(actions):
        h, c = controller.lstm(x, (h, c))
        logits = 2.5 * torch.tanh(controller.heads[k](h)[0] / 5.0)  # tanh constant 2.5, temperature 5
        log_p = F.log_softmax(logits, dim=-1)
        log_prob = log_prob + log_p[a]
        entropy = entropy - (log_p.exp() * log_p).sum()
        if k + 1 < len(actions):
            x = controller.embeddings[k](torch.tensor([a]))
    return -advantage * log_prob - entropy_weight * entropy


def test_the_controller_update_is_the_reinforce_gradient_for_a_fixed_sample(data):
    search = make(data, entropy_weight=0.05, controller_lr=0.01)
    search.baseline = 0.3  # not a multiple of 1/16: the advantage cannot vanish
    actions = [3, 2, 1, 3, 0, 4]
    arch = search.arch_of(actions)
    reward = accuracy_by_hand(search, arch)
    before = {name: p.detach().clone() for name, p in search.controller.named_parameters()}
    expected_loss = reinforce_loss_by_hand(search.controller, actions, reward - 0.3, 0.05)
    expected = torch.autograd.grad(expected_loss, list(search.controller.parameters()))

    record = search._controller_step(actions)

    assert record["reward"] == pytest.approx(reward) and record["actions"] == actions
    assert record["loss"] == pytest.approx(expected_loss.item(), rel=1e-5)
    assert search.baseline == pytest.approx(0.99 * 0.3 + 0.01 * reward)  # b moves after judging R
    for (name, p), g in zip(search.controller.named_parameters(), expected):
        assert torch.allclose(p.grad, g, atol=1e-7, rtol=1e-5), name
        # Adam's first step: m̂ = g, v̂ = g², so θ moves by −lr · g / (|g| + ε) (about lr · sign(g))
        assert torch.allclose(p.detach(), before[name] - 0.01 * p.grad / (p.grad.abs() + 1e-8), atol=1e-7), name


def test_the_first_reward_only_starts_the_baseline(data):
    """b starts at the first reward, so its advantage is 0: only the entropy term moves θ."""
    search = make(data, entropy_weight=0.0)
    record = search._controller_step([0, 1, 2, 3, 4, 0])
    assert search.baseline == pytest.approx(record["reward"])
    assert all(float(p.grad.abs().max()) == 0.0 for p in search.controller.parameters())


CONV_ARCH = ("nor_conv_3x3", "nor_conv_1x1", "nor_conv_3x3", "nor_conv_1x1", "nor_conv_3x3", "nor_conv_1x1")
OTHER_ARCH = ("nor_conv_1x1", "nor_conv_3x3", "nor_conv_1x1", "nor_conv_3x3", "nor_conv_1x1", "nor_conv_3x3")


def op_weights(search):
    """(cell index, edge, op name) -> the conv weight of that op, for every conv op of every cell."""
    result = {}
    for i, layer in enumerate(search.net.cells):
        for e, mixed in enumerate(getattr(layer, "mixed", [])):
            for name, op in mixed.ops.items():
                for p in op.parameters():
                    result[i, e, name] = p
    return result


def test_a_shared_step_trains_only_the_sampled_ops(data):
    """Every edge of CONV_ARCH lies on a path to the output, so each chosen op gets a gradient; every
    other op gets none, not even a zero one, and is left exactly as it was (SGD skips it)."""
    search = make(data)
    weights = op_weights(search)
    assert len(weights) == 3 * 6 * 2  # 3 cells x 6 edges x 2 conv ops with a weight each
    before = {key: p.detach().clone() for key, p in weights.items()}
    search._shared_step(CONV_ARCH)
    for (cell, edge, name), p in weights.items():
        if name == CONV_ARCH[edge]:
            assert p.grad is not None and float(p.grad.abs().max()) > 0, (cell, edge, name)
            assert not torch.equal(p.detach(), before[cell, edge, name])
        else:
            assert p.grad is None and torch.equal(p.detach(), before[cell, edge, name]), (cell, edge, name)
    # The next sub-network uses the other conv on each edge: CONV_ARCH's ops, which have momentum
    # now, get no gradient and are not moved by it (SGD steps only parameters with a gradient).
    after_first = {key: p.detach().clone() for key, p in weights.items()}
    search._shared_step(OTHER_ARCH)
    for (cell, edge, name), p in weights.items():
        assert torch.equal(p.detach(), after_first[cell, edge, name]) == (name == CONV_ARCH[edge])


def test_the_shared_weights_take_nesterov_sgd_steps_with_weight_decay(data):
    """buf ← μ·buf + (g + λ·w), w ← w − lr·(g + λ·w + μ·buf): PyTorch's Nesterov form, as the
    authors' MomentumOptimizer(use_nesterov=True), on the classifier (in every sub-network)."""
    lr, mu, wd = 0.05, 0.9, 1e-4
    search = make(data, w_lr=lr, w_momentum=mu, w_weight_decay=wd)
    w = search.net.classifier.weight
    buf = None
    for arch in (CONV_ARCH, OTHER_ARCH, CONV_ARCH):
        before = w.detach().clone()
        search._shared_step(arch)
        d = w.grad + wd * before  # the (clipped) gradient the step used, plus weight decay
        buf = d if buf is None else mu * buf + d
        assert torch.allclose(w.detach(), before - lr * (d + mu * buf), atol=1e-7)


def test_policy_learning_moves_probability_toward_the_rewarded_op(data, monkeypatch):
    """A reward stub: 1 when the first edge holds nor_conv_3x3, else 0. The controller starts near
    uniform (0.2 per op) and, with the seed fixed, ends choosing that op there nearly always."""
    search = make(data, child_steps=1, controller_steps=25)
    monkeypatch.setattr(search, "_reward", lambda arch: float(arch[0] == "nor_conv_3x3"))
    start = [d["probs"][3] for d in search.state()["policy"]]
    assert all(abs(p - 0.2) < 0.05 for p in start)
    search.run(8, progress=False)
    assert search.state()["policy"][0]["probs"][3] > 0.8
    assert search.derived()[0] == "nor_conv_3x3" and search.history[-1].arch == SPACE.format(search.derived())
    first, last = search.history[0].metrics["val_accuracy"], search.history[-1].metrics["val_accuracy"]
    assert first < 0.5 < last  # the share of samples with the rewarded op


# ============================================================================= steps, state, final choice

def test_a_step_records_losses_rewards_the_policy_and_the_greedy_arch(data):
    search = make(data)
    record = search.step()
    assert isinstance(record, Step) and record.number == 0 and len(search.history) == 1
    assert set(record.metrics) == {"shared_loss", "train_accuracy", "val_accuracy", "entropy", "baseline",
                                   "controller_loss", "w_lr"}
    samples, shared = record.info["samples"], record.info["shared_archs"]
    assert len(samples) == 3 and len(shared) == 2 and all(SPACE.parse(a) for a in shared)
    for s in samples:  # ω does not change during the controller updates: each reward recomputes exactly
        assert s["reward"] == pytest.approx(accuracy_by_hand(search, SPACE.parse(s["arch"])))
        assert SPACE.parse(s["arch"]) == search.arch_of(s["actions"])
        assert all(abs(sum(p) - 1) < 1e-5 and len(p) == 5 for p in s["probs"])
        assert s["entropy"] == pytest.approx(sum(-sum(q * math.log(q) for q in p) for p in s["probs"]), rel=1e-4)
    assert record.metrics["val_accuracy"] == pytest.approx(sum(s["reward"] for s in samples) / 3)
    assert record.arch == SPACE.format(search.derived())
    state = search.state()
    assert state["shared_loss"] == record.metrics["shared_loss"] and state["baseline"] == record.metrics["baseline"]
    assert state["greedy_arch"] == record.arch and len(state["policy"]) == 6
    greedy = [max(range(5), key=d["probs"].__getitem__) for d in state["policy"]]
    assert [d["greedy"] for d in state["policy"]] == greedy


def test_a_darts_space_search_samples_genotypes_on_the_darts_supernet(data):
    space = DartsSpace()
    search = ENAS(space, data, supernet_kwargs={"C": 4, "layers": 3}, batch_size=VAL, child_steps=1,
                  controller_steps=2, device="cpu")
    record = search.step()
    assert len(search.choices) == 24 and space.parse(record.arch) == search.derived()
    for s in record.info["samples"]:
        assert s["reward"] == pytest.approx(accuracy_by_hand(search, space.parse(s["arch"])))
    (arch, accuracy), = search.final_architectures(n_samples=2, top=1)
    assert accuracy == pytest.approx(accuracy_by_hand(search, arch))


def test_final_architectures_rerank_the_best_sampled_on_the_validation_split(data):
    search = make(data)
    search.run(2, progress=False)
    state = search.state_dict()
    everything = search.final_architectures(n_samples=6, top=6, seed=3)
    # the same six samples, drawn here from a generator with that seed
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        sampled = [search.arch_of(search.controller.sample(generator).actions) for _ in range(6)]
    distinct = list(dict.fromkeys(sampled))
    by_hand = {arch: accuracy_by_hand(search, arch) for arch in distinct}
    assert sorted(a for a, _ in everything) == sorted(distinct)
    assert [acc for _, acc in everything] == sorted((acc for _, acc in everything), reverse=True)
    for arch, acc in everything:
        assert acc == pytest.approx(by_hand[arch])
    # A minibatch is the whole split here, so the two best by minibatch are the two best overall.
    best_two = search.final_architectures(n_samples=6, top=2, seed=3)
    assert [acc for _, acc in best_two] == pytest.approx(sorted(by_hand.values(), reverse=True)[:2])
    assert best_two[0][1] == pytest.approx(max(by_hand.values()))
    # Scoring changed nothing: generator, BatchNorm statistics, everything
    after = search.state_dict()
    assert torch.equal(after["torch_generator"], state["torch_generator"])
    for name, tensor in state["extra"]["net"].items():
        assert torch.equal(after["extra"]["net"][name], tensor), name
    assert search.shared_accuracy(SPACE.format(distinct[0])) == pytest.approx(by_hand[distinct[0]])


def test_the_policy_view_replays_an_enas_history(data):
    search = make(data)
    search.run(3, progress=False)
    view = policy_data(search.history)
    samples = [s for r in search.history for s in r.info["samples"]]
    assert view["unit"] == "step" and view["trial"] == 2
    assert view["number"] == pytest.approx([t + k / 3 for t in range(3) for k in range(3)])
    assert view["rewards"] == [s["reward"] for s in samples]
    assert view["baseline"] == pytest.approx(search.baseline)  # the replay ends where the live search is
    assert [d["probs"] for d in view["decisions"]] == samples[-1]["probs"]
    assert policy_data(search.history, upto=1)["number"] == pytest.approx([0, 1 / 3, 2 / 3])
    assert policy_data(make(data).history)["unit"] == "step"  # before the first step too
    figure = plot_policy(search.history)
    bars, entropy, reward = figure.axes
    assert len(bars.patches) == 6 * 5 and "step 2" in bars.get_title()
    assert entropy.get_xlabel() == reward.get_xlabel() == "step"


def test_a_dashboard_shows_the_cell_the_policy_and_the_progress(data):
    pytest.importorskip("ipywidgets")
    from nasnb.widgets import Dashboard

    search = make(data)
    dash = Dashboard(search)
    assert list(dash.panels) == ["cell", "policy", "progress"]
    for _ in range(2):
        dash.step_button.click()
    assert len(search.history) == 2
    caption = dash.panels["policy"].caption.value
    assert f"{search.baseline:.4g}" in caption  # the live search's b, replayed
    assert "policy when step 1 was sampled; 6 controller samples" in caption
    from nasnb.viz.policy import LivePolicy

    assert LivePolicy().caption(policy_data(search.history, upto=0)) == "no step yet"


# ============================================================================= checkpoints, reset, settings

def test_a_resumed_run_equals_an_uninterrupted_one(data, tmp_path):
    uninterrupted = make(data).run(4, progress=False)
    path = tmp_path / "enas.ckpt"
    make(data).run(2, checkpoint=path, progress=False)
    state = torch.load(path / "state.pt", weights_only=True)  # plain tensors and types only
    assert state["state"]["strategy"] == "ENAS" and state["records"] == 2
    resumed = make(data)
    resumed.run(4, checkpoint=path, progress=False)
    assert [r.info for r in resumed.history] == [r.info for r in uninterrupted]  # archs, policies, rewards
    assert [r.metrics for r in resumed.history] == [r.metrics for r in uninterrupted]
    assert [r.arch for r in resumed.history] == [r.arch for r in uninterrupted]


def test_reset_goes_back_to_the_start(data):
    search = make(data)
    first = search.step()
    search.step()
    search.reset()
    assert len(search.history) == 0 and search.baseline is None and search.state()["shared_loss"] is None
    again = search.step()
    assert again.info == first.info and again.metrics == first.metrics


def test_settings_name_every_hyperparameter_and_a_mismatch_is_refused(data, tmp_path):
    settings = make(data).settings()
    for name in ("supernet_kwargs", "batch_size", "child_steps", "controller_steps", "w_lr", "w_lr_min",
                 "schedule_steps", "w_momentum", "w_weight_decay", "grad_clip", "hidden_size", "temperature",
                 "tanh_constant", "controller_lr", "baseline_decay", "entropy_weight", "seed"):
        assert name in settings
    assert settings["data"] == {"name": "digits", "fingerprint": data.fingerprint(), "train_size": 48,
                                "val_size": VAL}
    path = tmp_path / "enas.ckpt"
    make(data).run(1, checkpoint=path, progress=False)
    with pytest.raises(ResumeMismatchError, match="controller_lr=0.01 there, 0.02 here"):
        make(data, controller_lr=0.02).run(2, checkpoint=path, progress=False)


def test_the_cosine_schedule_reaches_w_lr_min(data):
    search = make(data, w_lr=0.05, w_lr_min=0.0005, schedule_steps=2)
    lrs = [search.step().metrics["w_lr"] for _ in range(3)]
    assert lrs == pytest.approx([0.05, 0.0005 + (0.05 - 0.0005) / 2, 0.0005])


# ============================================================================= errors

@pytest.mark.parametrize("kwargs, name", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 17}, "batch_size"), ({"child_steps": 0}, "child_steps"),
    ({"controller_steps": 1.5}, "controller_steps"), ({"w_lr": -1}, "w_lr"), ({"w_lr_min": 0.1}, "w_lr_min"),
    ({"schedule_steps": 0}, "schedule_steps"), ({"w_momentum": 1.0}, "w_momentum"),
    ({"w_weight_decay": -1e-3}, "w_weight_decay"), ({"grad_clip": 0}, "grad_clip"), ({"hidden_size": 0}, "hidden_size"),
    ({"temperature": 0}, "temperature"), ({"tanh_constant": -1}, "tanh_constant"),
    ({"controller_lr": 0}, "controller_lr"), ({"baseline_decay": 1.0}, "baseline_decay"),
    ({"entropy_weight": "a"}, "entropy_weight"), ({"supernet_kwargs": [8]}, "supernet_kwargs"),
    ({"supernet_kwargs": {"C": 4, "widht": 2}}, "supernet_kwargs"),
    ({"supernet_kwargs": {"num_classes": 3}}, "num_classes"),
    ({"device": "tpu"}, "device"), ({"seed": -1}, "seed"),
])
def test_every_argument_is_checked_at_the_call(data, kwargs, name):
    with pytest.raises(NasnbError, match=name):
        make(data, **kwargs)


def test_data_must_be_data_and_the_space_must_have_a_supernet(data):
    with pytest.raises(NasnbError, match="data must be a nasnb.data.TensorData"):
        ENAS(SPACE, lambda arch: {"val_accuracy": 0.5})
    with pytest.raises(NasnbError, match="supernet"):
        ENAS(ToySpace(), data)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_samples": 0}, "n_samples"), ({"top": 0}, "top"), ({"n_samples": 3, "top": 4}, "top"), ({"seed": -1}, "seed"),
])
def test_final_architectures_checks_its_arguments(data, kwargs, match):
    with pytest.raises(NasnbError, match=match):
        make(data).final_architectures(**kwargs)


def test_an_absurd_learning_rate_stops_with_an_error_and_records_nothing(data):
    search = make(data, w_lr=1e9, w_momentum=0.0, grad_clip=None)
    with pytest.raises(TrainingDivergedError, match=r"ENAS diverged at step \d+.*w_lr=1e\+08"):
        for _ in range(10):
            search.step()
    steps = len(search.history)
    assert 1 <= steps < 10
    assert search.state()["shared_loss"] == search.history[-1].metrics["shared_loss"]  # as after the last good step
    generator = search.torch_generator.get_state()
    with pytest.raises(TrainingDivergedError, match=f"step {steps}"):
        search.step()
    assert len(search.history) == steps and torch.equal(search.torch_generator.get_state(), generator)


def test_infinite_images_stop_with_an_error_naming_the_data(data):
    x, y = data.train
    search = make(dataclasses.replace(data, train=(torch.full_like(x, float("inf")), y)))
    with pytest.raises(TrainingDivergedError, match="step 0.*NaN or infinite values"):
        search.step()
    assert len(search.history) == 0 and search.baseline is None
