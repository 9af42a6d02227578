"""REINFORCE and its controller, checked against the math: the policy's probabilities, its
gradient, the baseline rule, sampling frequencies; then learning on a toy space and validity on
the NB201 and DARTS spaces."""
import copy
import io
import itertools
import math

import numpy as np
import pytest
import torch

from nasnb.spaces import DartsSpace, NB201Space
from nasnb.spaces.base import Choice
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import Controller, Reinforce
from nasnb.strategies.base import Strategy
from nasnb.strategies.fast_controller import Adam, FastController
from nasnb.strategies.reinforce import reinforce_loss

CHOICES = [Choice("a", "xyz"), Choice("b", ("only",)), Choice("c", "pqrst"), Choice("d", "uv")]  # 3, 1, 5, 2 options


def constant(value):
    return lambda arch: {"val_accuracy": value}


def by_hand(controller: Controller, actions) -> tuple:
    """log π(a) and Σ_k H_k from the LSTM equations written out (Hochreiter & Schmidhuber 1997 with
    a forget gate, PyTorch's gate order i, f, g, o), independent of nn.LSTMCell and F.log_softmax."""
    lstm = controller.lstm
    x, h, c = controller.start[0], torch.zeros(lstm.hidden_size, dtype=torch.float64), torch.zeros(lstm.hidden_size, dtype=torch.float64)
    x = x.double()
    log_prob, entropy = 0.0, 0.0
    for k, a in enumerate(actions):
        gates = lstm.weight_ih.double() @ x + lstm.bias_ih.double() + lstm.weight_hh.double() @ h + lstm.bias_hh.double()
        i, f, g, o = gates.chunk(4)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        head = controller.heads[k]
        z = (head.weight.double() @ h + head.bias.double()) / controller.temperature
        z = controller.tanh_constant * torch.tanh(z)
        log_softmax = z - math.log(sum(math.exp(v) for v in z.tolist()))
        log_prob += float(log_softmax[a])
        entropy += -sum(math.exp(v) * v for v in log_softmax.tolist())
        if k + 1 < len(actions):
            x = controller.embeddings[k].weight[a].double()
    return log_prob, entropy


def test_log_prob_and_entropy_equal_the_equations_by_hand():
    controller = Controller(CHOICES, hidden_size=16, seed=3)
    with torch.no_grad():
        for p in controller.parameters():
            p.mul_(10)  # ENAS's ±0.1 init gives near-uniform policies; make the check non-trivial
    for actions in ([0, 0, 0, 0], [2, 0, 4, 1], [1, 0, 3, 0]):
        replay = controller(actions)
        with torch.no_grad():
            log_prob, entropy = by_hand(controller, actions)
        assert replay.log_prob.item() == pytest.approx(log_prob, abs=1e-5)
        assert controller.log_prob(actions).item() == pytest.approx(log_prob, abs=1e-5)
        assert replay.entropy.item() == pytest.approx(entropy, abs=1e-5)


def test_the_sequence_probabilities_sum_to_one_and_each_step_is_a_distribution():
    controller = Controller(CHOICES, hidden_size=8, seed=0)
    with torch.no_grad():
        total = sum(float(controller.log_prob(a).exp()) for a in itertools.product(range(3), range(1), range(5), range(2)))
        assert total == pytest.approx(1.0, abs=1e-5)  # Σ_a Π_k π(a_k | a_<k) = 1 over all 30 sequences
        sample = controller.sample(torch.Generator().manual_seed(0))
    assert [len(p) for p in sample.probs] == [3, 1, 5, 2]
    for p in sample.probs:
        assert float(p.sum()) == pytest.approx(1.0, abs=1e-6) and bool((p > 0).all())


def test_tanh_constant_bounds_the_odds_between_options():
    # logits c·tanh(z/T) lie in [-c, c], so p_i / p_j <= e^{2c} however large the weights grow
    controller = Controller([Choice("a", "xyzw")], hidden_size=4, tanh_constant=2.5, seed=0)
    with torch.no_grad():
        controller.heads[0].bias.copy_(torch.tensor([1e4, -1e4, 0.0, 0.0]))
        probs = controller.greedy().probs[0]
    assert float(probs.max() / probs.min()) == pytest.approx(math.exp(5.0), rel=1e-4)


def test_sampling_frequencies_match_the_probabilities():
    # Two decisions (3 then 2 options): the joint frequencies of 4000 draws against Π_k π(a_k | a_<k).
    controller = Controller([Choice("a", "xyz"), Choice("b", "uv")], hidden_size=8, temperature=1.0,
                            tanh_constant=None, seed=1)
    with torch.no_grad():
        controller.heads[0].bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
        controller.heads[1].weight.mul_(20)  # make the second decision depend on the first
        expected = {a: float(controller.log_prob(a).exp()) for a in itertools.product(range(3), range(2))}
        generator = torch.Generator().manual_seed(0)
        draws = [tuple(controller.sample(generator).actions) for _ in range(4000)]
    chi2 = sum((draws.count(a) - 4000 * p) ** 2 / (4000 * p) for a, p in expected.items())
    assert chi2 < 20.5  # the 0.999 quantile of chi-square with 5 degrees of freedom


def test_sampling_uses_only_the_generator_and_the_init_only_the_seed():
    before = torch.random.get_rng_state()
    a = Controller(CHOICES, seed=5)
    with torch.no_grad():
        first = [a.sample(torch.Generator().manual_seed(9)).actions for _ in range(3)]
        again = [a.sample(torch.Generator().manual_seed(9)).actions for _ in range(3)]
    assert torch.equal(torch.random.get_rng_state(), before), "the global torch RNG was used"
    assert first == again
    b, c = Controller(CHOICES, seed=5), Controller(CHOICES, seed=6)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def finite_difference_gradient(controller: Controller, f, eps=1e-6) -> list:
    """Central differences of f(controller) with respect to every parameter (float64)."""
    grads = []
    for p in controller.parameters():
        g = torch.zeros_like(p)
        flat, gflat = p.data.view(-1), g.view(-1)
        for i in range(flat.numel()):
            old = float(flat[i])
            flat[i] = old + eps
            up = f(controller)
            flat[i] = old - eps
            down = f(controller)
            flat[i] = old
            gflat[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("entropy_weight", [0.0, 0.2])
def test_the_update_follows_the_reinforce_gradient(entropy_weight):
    # The gradient the strategy applies must be -(R - b) ∇log π(a) - β ∇H(a), each term by finite differences.
    space = ToySpace(length=3, options=3)
    search = Reinforce(space, space.evaluate, hidden_size=6, entropy_weight=entropy_weight, seed=4)
    search.run(5, progress=False)
    proposal = search.ask()
    before = copy.deepcopy(search.controller).double()
    baseline = search.baseline
    reward = space.evaluate(proposal.arch)["val_accuracy"]
    search.tell(proposal, {"val_accuracy": reward})
    actions = proposal.info["actions"]
    advantage = reward - baseline
    assert advantage != 0  # otherwise only the entropy term would be checked
    with torch.no_grad():
        d_log_prob = finite_difference_gradient(before, lambda c: float(c(actions).log_prob))
        d_entropy = finite_difference_gradient(before, lambda c: float(c(actions).entropy))
    for p, dl, dh in zip(search.controller.parameters(), d_log_prob, d_entropy):
        expected = -advantage * dl - entropy_weight * dh
        torch.testing.assert_close(p.grad.double(), expected, rtol=1e-3, atol=1e-6)


def test_one_decision_gradients_equal_the_softmax_formulas():
    # With T = 1 and no tanh, the logits are the head's bias (+ W h): ∂log p_a/∂z = e_a − p and
    # ∂H/∂z = −p (log p + H), the textbook results.
    controller = Controller([Choice("a", "vwxyz")], hidden_size=4, temperature=1.0, tanh_constant=None, seed=2).double()
    with torch.no_grad():
        controller.heads[0].bias.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0], dtype=torch.float64))
    replay = controller([2])
    (grad_log_prob,) = torch.autograd.grad(replay.log_prob, controller.heads[0].bias, retain_graph=True)
    (grad_entropy,) = torch.autograd.grad(replay.entropy, controller.heads[0].bias)
    p = replay.probs[0].detach()
    h = -(p * p.log()).sum()
    torch.testing.assert_close(grad_log_prob, torch.eye(5, dtype=torch.float64)[2] - p)
    torch.testing.assert_close(grad_entropy, -p * (p.log() + h))


def test_baseline_is_the_moving_average_of_rewards():
    rewards = [0.3, 0.9, 0.5, 0.7, 0.1, 0.8]
    decay = 0.8
    search = Reinforce(ToySpace(length=3, options=3), constant(0.0), baseline_decay=decay, batch_size=100, seed=0)
    b = None
    for r in rewards:
        search.tell(search.ask(), {"val_accuracy": r})
        judged_against = r if b is None else b  # the first reward starts the average
        b = decay * judged_against + (1 - decay) * r
        assert search.baseline == pytest.approx(b, abs=1e-12)
        assert search._buffer[-1][1] == pytest.approx(r - judged_against, abs=1e-12)  # R - b, b before R
    assert search.last_reward == rewards[-1]


def test_batches_update_every_batch_size_trials_with_recomputed_log_probs():
    space = ToySpace(length=3, options=3)
    search = Reinforce(space, space.evaluate, hidden_size=6, batch_size=3, entropy_weight=0.1, seed=1)
    initial = copy.deepcopy(search.controller)
    search.run(2, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(search.controller.parameters(), initial.parameters()))
    search.run(3, progress=False)
    assert search._buffer == []
    assert not all(torch.equal(p, q) for p, q in zip(search.controller.parameters(), initial.parameters()))
    # the loss: the mean over the batch of -(R_i - b_i) log π(a_i) - β H(a_i), b_i replayed by hand
    rewards, b, loss = search.history.values(), None, 0
    for trial, reward in zip(search.history, rewards):
        b = reward if b is None else b
        replay = initial(trial.info["actions"])
        loss = loss + (-(reward - b) * replay.log_prob - 0.1 * replay.entropy) / 3
        b = 0.95 * b + 0.05 * reward
    expected = torch.autograd.grad(loss, list(initial.parameters()))
    for p, g in zip(search.controller.parameters(), expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-7)


def test_the_policy_learns_the_toy_optimum():
    space = ToySpace(length=4, options=3)
    target = [space.OPS.index(op) for op in space.target]
    search = Reinforce(space, space.evaluate, entropy_weight=0.03, seed=0)
    with torch.no_grad():
        p_before = float(search.controller.log_prob(target).exp())
    assert p_before == pytest.approx(3 ** -4, rel=0.2)  # ENAS's small init: a near-uniform policy
    search.run(100, progress=False)
    with torch.no_grad():
        p_after = float(search.controller.log_prob(target).exp())
    assert p_after > 0.5 > 20 * p_before
    assert search.greedy_arch() == space.target
    state = search.state()
    assert state["greedy_arch"] == space.format(space.target)
    assert [entry["greedy"] for entry in state["policy"]] == target
    assert all(sum(entry["probs"]) == pytest.approx(1.0, abs=1e-6) for entry in state["policy"])
    assert state["entropy"] < 0.5 * 4 * math.log(3) and state["last_reward"] == search.history[-1].value("val_accuracy")


def test_nb201_samples_are_valid_cells():
    space = NB201Space()
    search = Reinforce(space, constant(0.5), seed=0)
    search.run(6, progress=False)
    for trial in search.history:
        arch = space.parse(trial.arch)
        assert [len(p) for p in trial.info["probs"]] == [5] * 6
        assert list(arch) == [space.OPS[a] for a in trial.info["actions"]]


def test_darts_samples_are_valid_genotypes():
    space = DartsSpace()
    search = Reinforce(space, constant(0.5), seed=0)
    # per cell and node i: C(i+2, 2) input pairs, then 7 ops for each of the two inputs
    per_cell = [n for i in range(4) for n in (math.comb(i + 2, 2), 7, 7)]
    assert search.controller.num_options == per_cell * 2 and len(per_cell * 2) == 24
    search.run(4, progress=False)
    for trial in search.history:
        genotype = space.parse(trial.arch)
        assert genotype == space.validate(genotype)
        assert [len(p) for p in trial.info["probs"]] == per_cell * 2
        assert trial.info["probs"][0] == [1.0]  # node 0 can only read the two cell inputs


def test_checkpoint_mid_batch_loads_with_weights_only_and_resumes_exactly(tmp_path):
    space = ToySpace(length=5, options=3)
    make = lambda: Reinforce(space, space.evaluate, batch_size=2, seed=3)
    uninterrupted = make().run(9, progress=False)
    path = tmp_path / "reinforce.ckpt"
    make().run(5, checkpoint=path, progress=False)  # 5 trials: one trial waits in the buffer
    state = torch.load(path / "state.pt", weights_only=True)["state"]
    assert len(state["extra"]["buffer"]) == 1
    resumed = make()
    resumed.run(9, checkpoint=path, progress=False)
    assert [(t.arch, t.info) for t in resumed.history] == [(t.arch, t.info) for t in uninterrupted]


def test_reset_restores_the_initial_weights():
    space = ToySpace(length=4, options=3)
    search = Reinforce(space, space.evaluate, seed=2)
    fresh = copy.deepcopy(search.controller)
    search.run(10, progress=False)
    search.reset()
    assert all(torch.equal(p, q) for p, q in zip(search.controller.parameters(), fresh.parameters()))
    assert search.baseline is None and not search.optimizer.state


def test_bad_arguments_say_what_to_do():
    space = ToySpace(length=3, options=3)
    controller = Controller(space.choices)
    with pytest.raises(ValueError, match="got 2 actions; this controller takes 3"):
        controller.log_prob([0, 1])
    with pytest.raises(ValueError, match="action 3 for decision 'position 1'"):
        controller.log_prob([0, 3, 0])
    with pytest.raises(ValueError, match="baseline_decay"):
        Reinforce(space, space.evaluate, baseline_decay=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        Reinforce(space, space.evaluate, batch_size=0)
    with pytest.raises(ValueError, match="temperature"):
        Controller(space.choices, temperature=0)
    assert isinstance(Reinforce(space, space.evaluate), Strategy) and Reinforce.panels == ("cell", "policy")


# ---------------------------------------------------------------- the numpy controller (fast_controller.py)
# Each check runs the numpy arithmetic against an independent implementation: `Controller` (torch
# modules, F.log_softmax), torch autograd for the gradient, torch.optim.Adam for the update.

SPACES_OF_CHOICES = {
    "3-1-5-2 options": CHOICES,
    "one decision": [Choice("a", "vwxyz")],
    "nb201": NB201Space().choices,
}


def sharpened(controller: Controller) -> Controller:
    """Weights x10: ENAS's ±0.1 init gives near-uniform policies, which would hide errors."""
    with torch.no_grad():
        for p in controller.parameters():
            p.mul_(10)
    return controller


def some_actions(controller: Controller, count: int, seed: int = 0) -> list:
    generator = torch.Generator().manual_seed(seed)
    return [[int(torch.randint(n, (1,), generator=generator)) for n in controller.num_options] for _ in range(count)]


@pytest.mark.parametrize("tanh_constant", [2.5, None])
@pytest.mark.parametrize("space", sorted(SPACES_OF_CHOICES))
def test_the_numpy_forward_equals_the_controllers(space, tanh_constant):
    reference = sharpened(Controller(SPACES_OF_CHOICES[space], hidden_size=8, tanh_constant=tanh_constant, seed=1))
    for dtype, tolerance in ((torch.float64, 1e-10), (torch.float32, 2e-5)):
        reference = reference.to(dtype)
        fast = FastController(copy.deepcopy(reference))
        for actions in some_actions(reference, 4):
            with torch.no_grad():
                expected = reference(actions)
            run = fast.forward(actions)
            assert run.actions == actions
            assert run.log_prob == pytest.approx(float(expected.log_prob), abs=tolerance)
            assert run.entropy == pytest.approx(float(expected.entropy), abs=tolerance)
            for p, q in zip(run.probs, expected.probs):
                assert p.dtype == np.dtype(str(dtype).removeprefix("torch."))
                np.testing.assert_allclose(p, q.numpy(), rtol=0, atol=tolerance)


@pytest.mark.parametrize("space", sorted(SPACES_OF_CHOICES))
def test_numpy_sampling_draws_what_controller_sample_draws(space):
    # torch.multinomial(p, 1) is argmax p / E with E ~ Exp(1) from the generator: the same draws
    reference = sharpened(Controller(SPACES_OF_CHOICES[space], hidden_size=8, seed=2))
    fast = FastController(copy.deepcopy(reference))
    mine, theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    with torch.no_grad():
        expected = [reference.sample(theirs).actions for _ in range(200)]
    assert [fast.sample(mine).actions for _ in range(200)] == expected
    assert torch.equal(mine.get_state(), theirs.get_state())  # the generator moved exactly as far
    assert len({tuple(a) for a in expected}) > 1 or max(reference.num_options) == 1


@pytest.mark.parametrize("tanh_constant", [2.5, None])
@pytest.mark.parametrize("batch", [1, 3])
def test_the_hand_gradient_equals_autograd(batch, tanh_constant):
    reference = sharpened(Controller(CHOICES, hidden_size=8, tanh_constant=tanh_constant, seed=3)).double()
    fast = FastController(copy.deepcopy(reference))
    actions, advantages, beta = some_actions(reference, batch, seed=batch), [0.7, -1.3, 0.4][:batch], 0.2
    replays = [reference(a) for a in actions]
    loss = reinforce_loss(torch.stack([r.log_prob for r in replays]), torch.stack([r.entropy for r in replays]),
                          torch.tensor(advantages, dtype=torch.float64), beta)
    expected = torch.autograd.grad(loss, list(reference.parameters()))
    assert fast.backward([fast.forward(a) for a in actions], advantages, beta) == pytest.approx(loss.item(), rel=1e-12)
    for (name, _), p, g in zip(reference.named_parameters(), fast.controller.parameters(), expected):
        scale = float(g.abs().max()) or 1.0
        assert float((p.grad - g).abs().max()) <= 1e-8 * scale, name
    # the head of the one-option decision gets no gradient at all: log p = 0 whatever its weights
    assert not fast.controller.heads[1].weight.grad.any() and not fast.controller.heads[1].bias.grad.any()


def test_the_hand_adam_equals_torch_adam():
    reference = Controller(CHOICES, hidden_size=8, seed=4).double()
    mine = copy.deepcopy(reference)
    fast = FastController(mine)
    adam, torch_adam = Adam(fast, lr=0.05), torch.optim.Adam(reference.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(0)
    for _ in range(6):
        grads = [torch.randn(p.shape, generator=generator, dtype=torch.float64) * 10 ** float(torch.randn(1, generator=generator))
                 for p in reference.parameters()]
        for p, g in zip(reference.parameters(), grads):
            p.grad = g
        torch_adam.step()
        for name, p, offset in fast.named_pieces():
            fast.flat_grad[offset:offset + p.numel()] = dict(zip([n for n, _ in reference.named_parameters()], grads))[name].reshape(-1).numpy()
        adam.step(fast.flat_grad)
    for p, q in zip(reference.parameters(), mine.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-12, atol=1e-14)
        theirs, ours = torch_adam.state[p], adam.state[q]
        assert int(ours["step"]) == int(theirs["step"]) == 6
        torch.testing.assert_close(ours["exp_avg_sq"], theirs["exp_avg_sq"], rtol=1e-12, atol=0)


def reference_loop(search: Reinforce, trials, dtype=torch.float32) -> Controller:
    """What the strategy should have done, in torch: Controller + autograd + torch.optim.Adam on the
    actions it sampled, the baseline replayed by hand."""
    controller = Controller(search.choices, search.hidden_size, temperature=search.controller.temperature,
                            tanh_constant=search.controller.tanh_constant, seed=search.seed).to(dtype)
    optimizer = torch.optim.Adam(controller.parameters(), lr=search.lr)
    batch, b = [], None
    for trial in trials:
        reward = trial.value("val_accuracy")
        b = reward if b is None else b
        batch.append((trial.info["actions"], reward - b))
        b = search.baseline_decay * b + (1 - search.baseline_decay) * reward
        if len(batch) == search.batch_size:
            replays = [controller(a) for a, _ in batch]
            loss = reinforce_loss(torch.stack([r.log_prob for r in replays]), torch.stack([r.entropy for r in replays]),
                                  torch.tensor([adv for _, adv in batch], dtype=dtype), search.entropy_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            batch = []
    return controller


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_a_whole_search_ends_with_the_theta_of_the_torch_reference_loop(batch_size, dtype):
    space = ToySpace(length=4, options=3)
    search = Reinforce(space, space.evaluate, entropy_weight=0.03, batch_size=batch_size, seed=6)
    search.controller.to(dtype)
    search.run(30, progress=False)
    reference = reference_loop(search, search.history, dtype)
    initial = Controller(search.choices, seed=6).to(dtype)
    moved = max(float((p - q).detach().abs().max()) for p, q in zip(reference.parameters(), initial.parameters()))
    assert moved > 0.05  # θ went somewhere: 30 // batch_size Adam steps of lr 0.01
    # float64: the two agree to rounding. float32: Adam divides by √v, so a weight whose gradient is
    # all rounding noise (~1e-9) still moves by up to lr per step, in either direction: a tenth of a
    # step is allowed there.
    tolerance = dict(rtol=1e-7, atol=1e-9) if dtype == torch.float64 else dict(rtol=0, atol=search.lr / 10)
    for p, q in zip(search.controller.parameters(), reference.parameters()):
        assert p.dtype == dtype
        torch.testing.assert_close(p, q, **tolerance)
    with torch.no_grad():
        assert search.controller.greedy().actions == reference.greedy().actions


def torch_era_state(search: Reinforce, trials: int):
    """search.state_dict() as nasnb wrote it before the numpy controller: torch.optim.Adam's
    state_dict under "optimizer", after the reference loop's steps; through torch.save and
    torch.load(weights_only=True) like a checkpoint."""
    search.run(trials, progress=False)
    reference = reference_loop(search, search.history)
    optimizer = torch.optim.Adam(reference.parameters(), lr=search.lr)
    optimizer.load_state_dict(reference_optimizer_state(search, search.history))
    state = search.state_dict()
    extra = state["extra"]
    del extra["adam"]
    extra.update(controller=reference.state_dict(), optimizer=optimizer.state_dict(), buffer=[])
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True), reference, optimizer


def reference_optimizer_state(search, trials) -> dict:
    """The torch.optim.Adam state_dict the reference loop ends with (the loop again, keeping the optimizer)."""
    controller = Controller(search.choices, search.hidden_size, seed=search.seed)
    optimizer = torch.optim.Adam(controller.parameters(), lr=search.lr)
    b = None
    for trial in trials:
        reward = trial.value("val_accuracy")
        b = reward if b is None else b
        replay = controller(trial.info["actions"])
        loss = reinforce_loss(replay.log_prob[None], replay.entropy[None], torch.tensor([reward - b]), search.entropy_weight)
        b = search.baseline_decay * b + (1 - search.baseline_decay) * reward
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return optimizer.state_dict()


def test_a_checkpoint_of_torch_adam_loads_and_continues_as_torch_adam_would():
    space = ToySpace(length=3, options=3)
    make = lambda: Reinforce(space, space.evaluate, hidden_size=6, entropy_weight=0.1, seed=1)
    state, reference, optimizer = torch_era_state(make(), 5)
    search = make()
    search.load_state_dict(state)
    assert search.optimizer.steps == 5
    for p, q in zip(search.controller.parameters(), reference.parameters()):
        assert torch.equal(p, q)
    actions, advantage = [2, 0, 1], 0.4  # one more update, in both
    search._buffer = [(actions, advantage)]
    search.update()
    replay = reference(actions)
    loss = reinforce_loss(replay.log_prob[None], replay.entropy[None], torch.tensor([advantage]), 0.1)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for p, q in zip(search.controller.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_a_torch_adam_checkpoint_that_cannot_be_converted_is_refused_with_the_reason():
    space = ToySpace(length=3, options=3)
    make = lambda: Reinforce(space, space.evaluate, hidden_size=6, seed=1)
    state, _, _ = torch_era_state(make(), 3)
    state["extra"]["optimizer"]["state"][0]["step"] = torch.tensor(2.0)  # one weight a step behind
    search = make()
    before = copy.deepcopy(search.controller.state_dict())
    with pytest.raises(ValueError, match="different numbers of steps"):
        search.load_state_dict(state)
    assert all(torch.equal(before[k], v) for k, v in search.controller.state_dict().items())  # left as it was
    assert search.optimizer.steps == 0


def test_the_numpy_path_follows_a_controller_moved_to_float64():
    space = ToySpace(length=3, options=3)
    search = Reinforce(space, space.evaluate, hidden_size=6, entropy_weight=0.1, seed=2)
    search.run(3, progress=False)
    search.controller.double()  # new parameter tensors: the numpy views must follow them
    before = copy.deepcopy(search.controller)
    proposal = search.ask()
    with torch.no_grad():
        assert proposal.info["log_prob"] == pytest.approx(float(before(proposal.info["actions"]).log_prob), abs=1e-12)
    b = search.baseline
    reward = space.evaluate(proposal.arch)["val_accuracy"]
    search.tell(proposal, {"val_accuracy": reward})
    replay = before(proposal.info["actions"])
    expected = torch.autograd.grad(-(reward - b) * replay.log_prob - 0.1 * replay.entropy, list(before.parameters()))
    for p, g in zip(search.controller.parameters(), expected):
        assert p.dtype == torch.float64
        torch.testing.assert_close(p.grad, g, rtol=1e-9, atol=1e-12)
