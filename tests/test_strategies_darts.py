"""DARTS (nasnb/strategies/darts.py): its α gradients against the math, its steps, checkpoints and errors.

The second-order gradient is checked against central differences of the unrolled objective
L_val(w − ξ (∇_w L_train(w, α) + μ·buf + λ·w), α) in α, and against the exact gradient of that
objective by double backpropagation, in float64 on a tiny NB201 supernet.
"""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

import nasnb
from nasnb.errors import NasnbError, TrainingDivergedError
from nasnb.history import Step
from nasnb.spaces import DartsSpace, NB201Space
from nasnb.strategies.darts import (DARTS, FINITE_DIFFERENCE_SCALE, first_order_alpha_gradient, loss_at,
                                    unrolled_alpha_gradient)
from nasnb.strategies.reinforce import one_thread

SPACE = NB201Space()
TINY = {"C": 4, "N": 1}  # a step in ~0.1 s on one CPU thread


@pytest.fixture(autouse=True)
def single_thread():
    """Small convolutions on a loaded 2-core machine are much faster and steadier on one thread."""
    with one_thread():
        yield


@pytest.fixture(scope="module")
def data():
    return nasnb.data.load("digits").subset(train_size=64, val_size=64)


def make(data, **kwargs):
    settings = {"supernet_kwargs": TINY, "batch_size": 16, "device": "cpu", **kwargs}
    return DARTS(SPACE, data, **settings)


# ============================================================================= the α gradients, against the math

def tiny_problem():
    """A float64 NB201 supernet (C=2, N=1) with random α, two batches of 4 8x8 images, momentum buffers."""
    g = torch.Generator().manual_seed(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = SPACE.supernet(C=2, N=1, num_classes=3, in_channels=1).double().train()
    with torch.no_grad():
        net.alpha["cell"].copy_(torch.randn(6, 5, generator=g, dtype=torch.float64))  # far from uniform
    batch = lambda: (torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64),  # noqa: E731
                     torch.randint(0, 3, (4,), generator=g))
    buffers = {name: 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64)
               for name, p in net.named_parameters() if not name.startswith("alpha")}
    return net, batch(), batch(), buffers


XI, MOMENTUM, WEIGHT_DECAY = 0.5, 0.9, 3e-4  # a large ξ, so that the second-order term matters


def unrolled_objective(net, alpha, train_batch, val_batch, buffers, create_graph=False):
    """L_val(w', α) with w' = w − ξ (∇_w L_train(w, α) + μ·buf + λ·w), written out independently."""
    w = {name: p.detach() for name, p in net.named_parameters() if not name.startswith("alpha")}
    w = {name: t.requires_grad_() for name, t in w.items()}
    train_loss = F.cross_entropy(torch.func.functional_call(net, {**w, "alpha.cell": alpha}, (train_batch[0],)),
                                 train_batch[1])
    grads = torch.autograd.grad(train_loss, list(w.values()), create_graph=create_graph)
    w_next = {name: t - XI * (gt + MOMENTUM * buffers[name] + WEIGHT_DECAY * t)
              for (name, t), gt in zip(w.items(), grads)}
    logits = torch.func.functional_call(net, {**w_next, "alpha.cell": alpha}, (val_batch[0],))
    return F.cross_entropy(logits, val_batch[1])


def central_differences(net, train_batch, val_batch, buffers, h=1e-6) -> torch.Tensor:
    alpha0 = net.alpha["cell"].detach().clone()
    grad = torch.zeros_like(alpha0)
    for index in range(alpha0.numel()):
        step = torch.zeros_like(alpha0).view(-1)
        step[index] = h
        up = unrolled_objective(net, alpha0 + step.view_as(alpha0), train_batch, val_batch, buffers)
        down = unrolled_objective(net, alpha0 - step.view_as(alpha0), train_batch, val_batch, buffers)
        grad.view(-1)[index] = (up - down).item() / (2 * h)
    return grad


def darts_gradient(net, train_batch, val_batch, buffers, epsilon_scale):
    (grad,) = unrolled_alpha_gradient(net, train_batch, val_batch, XI, momentum=MOMENTUM, momentum_buffers=buffers,
                                      weight_decay=WEIGHT_DECAY, epsilon_scale=epsilon_scale)
    return grad


def test_second_order_gradient_equals_finite_differences_of_the_unrolled_objective():
    net, train_batch, val_batch, buffers = tiny_problem()
    numeric = central_differences(net, train_batch, val_batch, buffers)
    alpha = net.alpha["cell"].detach().clone().requires_grad_()
    (exact,) = torch.autograd.grad(unrolled_objective(net, alpha, train_batch, val_batch, buffers, create_graph=True),
                                   alpha)
    scale = exact.abs().max()
    # The objective and its exact gradient agree (h = 1e-6 in float64: error ~1e-10 of the gradient).
    torch.testing.assert_close(numeric, exact, rtol=0, atol=1e-7 * scale)
    # With a tiny ε (‖w± − w‖ = 1e-6) eq. 8's finite difference is exact to ~1e-12: DARTS' gradient is
    # the gradient of the unrolled objective.
    torch.testing.assert_close(darts_gradient(net, train_batch, val_batch, buffers, 1e-6), exact,
                               rtol=0, atol=1e-7 * scale)
    # The paper's ε = 0.01/‖v‖ moves w by 0.01, across ReLU kinks: on this net its Hessian-vector
    # product is off by more than the gradient itself (measured: 1.2 against 0.29), and the O(ε²)
    # regime starts near ε‖v‖ = 1e-4 (4e-8 off). That is DARTS' approximation, not checked here.
    assert FINITE_DIFFERENCE_SCALE == 0.01
    torch.testing.assert_close(darts_gradient(net, train_batch, val_batch, buffers, 1e-4), exact,
                               rtol=0, atol=1e-5 * scale)
    # ... and the second-order term matters here: eq. 7's first term alone is off by far more.
    first = _first_term(net, train_batch, val_batch, buffers)
    assert (exact - first).abs().max() > 0.05 * scale
    # Exact = first term + second term (by double backpropagation): eq. 7 as written.
    torch.testing.assert_close(first + _second_term_exact(net, train_batch, val_batch, buffers), exact,
                               rtol=0, atol=1e-9 * scale)


def _unrolled_weights(net, alpha, train_batch, buffers, create_graph=False):
    w = {name: p.detach().clone().requires_grad_() for name, p in net.named_parameters()
         if not name.startswith("alpha")}
    train_loss = loss_at(net, {**w, "alpha.cell": alpha}, train_batch)[0]
    grads = torch.autograd.grad(train_loss, list(w.values()), create_graph=create_graph)
    w_next = {name: (t - XI * (gt + MOMENTUM * buffers[name] + WEIGHT_DECAY * t)).detach().requires_grad_()
              for (name, t), gt in zip(w.items(), grads)}
    return grads, w_next


def _first_term(net, train_batch, val_batch, buffers):
    """∇_α L_val(w', α) with w' held fixed: eq. 7 without its second term."""
    alpha = net.alpha["cell"].detach().clone().requires_grad_()
    _, w_next = _unrolled_weights(net, alpha.detach(), train_batch, buffers)
    return torch.autograd.grad(loss_at(net, {**w_next, "alpha.cell": alpha}, val_batch)[0], alpha)[0]


def _second_term_exact(net, train_batch, val_batch, buffers):
    """−ξ ∇²_{α,w} L_train(w, α) v, with v = ∇_{w'} L_val(w', α), by double backpropagation."""
    alpha = net.alpha["cell"].detach().clone().requires_grad_()
    grads, w_next = _unrolled_weights(net, alpha, train_batch, buffers, create_graph=True)
    v = torch.autograd.grad(loss_at(net, {**w_next, "alpha.cell": alpha.detach()}, val_batch)[0],
                            list(w_next.values()))
    dot = sum((gt * vt).sum() for gt, vt in zip(grads, v))  # (∇_w L_train) · v, differentiated in α
    (hvp,) = torch.autograd.grad(dot, alpha)
    return -XI * hvp


def test_first_order_gradient_is_the_validation_loss_gradient_at_the_current_weights():
    net, _, val_batch, _ = tiny_problem()
    (grad,) = first_order_alpha_gradient(net, val_batch)
    alpha = net.alpha["cell"]
    (expected,) = torch.autograd.grad(F.cross_entropy(net(val_batch[0]), val_batch[1]), alpha)
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=0)


def test_an_order_1_step_moves_alpha_by_adams_first_step_on_the_validation_gradient(data):
    darts = make(data, order=1, alpha_weight_decay=0.0)
    batches = []
    draw = darts._next_batch
    darts._next_batch = lambda split: batches.append(draw(split)) or batches[-1]
    before = {k: v.detach().clone() for k, v in darts.net.state_dict().items()}
    reference = NB201Space().supernet(**{**TINY, "num_classes": 10, "in_channels": 1}).train()
    reference.load_state_dict(before)
    darts.step()
    x, y = batches[1]  # train first, then val
    (g,) = torch.autograd.grad(F.cross_entropy(reference(x), y), [reference.alpha["cell"]])
    moved = darts.net.alpha["cell"].detach() - before["alpha.cell"]
    torch.testing.assert_close(moved, -3e-4 * g / (g.abs() + 1e-8), rtol=1e-4, atol=1e-9)  # Adam, step 1


def test_an_order_2_step_unrolls_with_the_current_lr_and_the_optimizers_momentum(data, monkeypatch):
    import nasnb.strategies.darts as module

    seen = []
    real = module.unrolled_alpha_gradient
    monkeypatch.setattr(module, "unrolled_alpha_gradient",
                        lambda *args, **kwargs: seen.append((args[3], kwargs)) or real(*args, **kwargs))
    darts = make(data, order=2, schedule_steps=4)
    darts.run(3, progress=False)
    lrs = [xi for xi, _ in seen]
    assert lrs[0] == 0.025 and lrs[2] == pytest.approx(0.001 + 0.024 / 2) and lrs[0] > lrs[1] > lrs[2]
    assert seen[0][1]["momentum_buffers"] == {}  # no buffer before the first w step
    weight_names = {name for name, p in darts.net.named_parameters() if not name.startswith("alpha")}
    assert set(seen[1][1]["momentum_buffers"]) == weight_names
    assert seen[1][1]["momentum"] == 0.9 and seen[1][1]["weight_decay"] == 3e-4


# ============================================================================= steps, state, settings

def test_a_step_records_losses_alphas_and_the_derived_arch(data):
    darts = make(data)
    record = darts.step()
    assert isinstance(record, Step) and record.number == 0 and len(darts.history) == 1
    assert set(record.metrics) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    alphas = record.info["alphas"]["cell"]
    assert len(alphas) == 6 and all(len(row) == 5 and abs(sum(row) - 1) < 1e-6 for row in alphas)
    assert record.arch == record.info["derived"] == SPACE.format(darts.derived())
    state = darts.state()
    assert state["alphas"] == record.info["alphas"] and SPACE.parse(state["derived"]) == darts.derived()


def test_settings_name_every_hyperparameter_and_the_data(data):
    settings = make(data).settings()
    for name in ("order", "supernet_kwargs", "batch_size", "w_lr", "w_lr_min", "schedule_steps", "w_momentum",
                 "w_weight_decay", "grad_clip", "alpha_lr", "alpha_betas", "alpha_weight_decay", "seed"):
        assert name in settings
    assert settings["data"] == {"name": "digits", "fingerprint": data.fingerprint(), "train_size": 64, "val_size": 64}
    assert settings["supernet_kwargs"] == {**TINY, "num_classes": 10, "in_channels": 1}


def test_the_seeded_init_leaves_the_global_rng_alone(data):
    state = torch.random.get_rng_state()
    a, b, c = make(data, seed=1), make(data, seed=1), make(data, seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.net.alpha["cell"], b.net.alpha["cell"])
    assert not torch.equal(a.net.alpha["cell"], c.net.alpha["cell"])


def test_a_darts_space_search_derives_genotypes(data):
    darts = DARTS(DartsSpace(), data, order=2, supernet_kwargs={"C": 2, "layers": 3}, batch_size=8, device="cpu")
    record = darts.step()
    initial = torch.softmax(darts._initial_state["extra"]["net"]["alpha.normal"], -1).tolist()
    assert record.info["alphas"]["normal"] != initial  # the normal cell's α moved
    assert DartsSpace().parse(record.arch) == darts.derived()
    assert set(record.info["alphas"]) == {"normal", "reduce"} and len(record.info["alphas"]["normal"]) == 14


# ============================================================================= checkpoints

def test_a_resumed_run_equals_an_uninterrupted_one(data, tmp_path):
    uninterrupted = make(data).run(6, progress=False)
    path = tmp_path / "darts.ckpt"
    make(data).run(3, checkpoint=path, progress=False)
    state = torch.load(path / "state.pt", weights_only=True)  # plain tensors and types only
    assert state["state"]["strategy"] == "DARTS" and state["records"] == 3
    resumed = make(data)
    resumed.run(6, checkpoint=path, progress=False)
    assert [r.info for r in resumed.history] == [r.info for r in uninterrupted]  # the α trajectory
    assert [r.metrics for r in resumed.history] == [r.metrics for r in uninterrupted]
    resumed.reset()
    assert [r.info for r in resumed.run(2, progress=False)] == [r.info for r in uninterrupted[:2]]


# ============================================================================= errors

@pytest.mark.parametrize("kwargs, name", [
    ({"order": 3}, "order"), ({"order": 1.0}, "order"), ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 65}, "batch_size"), ({"w_lr": -1}, "w_lr"), ({"w_lr_min": 0.1}, "w_lr_min"),
    ({"schedule_steps": 0}, "schedule_steps"), ({"w_momentum": 1.0}, "w_momentum"),
    ({"w_weight_decay": -1e-3}, "w_weight_decay"), ({"grad_clip": 0}, "grad_clip"), ({"alpha_lr": 0}, "alpha_lr"),
    ({"alpha_betas": (0.5,)}, "alpha_betas"), ({"alpha_betas": (0.5, 1.5)}, "alpha_betas"),
    ({"alpha_weight_decay": "a"}, "alpha_weight_decay"), ({"supernet_kwargs": [8]}, "supernet_kwargs"),
    ({"supernet_kwargs": {"C": 4, "widht": 2}}, "supernet_kwargs"), ({"supernet_kwargs": {"C": 0}}, "C"),
    ({"supernet_kwargs": {"num_classes": 3}}, "num_classes"), ({"device": "tpu"}, "device"),
    ({"metric": ""}, "metric"), ({"seed": -1}, "seed"),
])
def test_every_argument_is_checked_at_the_call(data, kwargs, name):
    with pytest.raises(NasnbError, match=name):
        make(data, **kwargs)


def test_data_must_be_data_not_an_evaluator():
    with pytest.raises(NasnbError, match="data must be a nasnb.data.TensorData"):
        DARTS(SPACE, lambda arch: {"val_accuracy": 0.5}, seed=0)


def test_an_absurd_learning_rate_stops_with_an_error_and_records_nothing(data):
    darts = make(data, w_lr=1e9, grad_clip=None)
    with pytest.raises(TrainingDivergedError, match=r"step \d+.*w_lr=1e\+08"):
        for _ in range(10):
            darts.step()
    steps = len(darts.history)
    assert 1 <= steps < 10
    assert darts.state()["alphas"] == darts.history[-1].info["alphas"]  # put back as after the last good step
    with pytest.raises(TrainingDivergedError):
        darts.step()
    assert len(darts.history) == steps


@pytest.mark.parametrize("order", [1, 2])
def test_infinite_images_stop_with_an_error_naming_the_data(data, order):
    x, y = data.train
    bad = dataclasses.replace(data, train=(torch.full_like(x, float("inf")), y))
    darts = make(bad, order=order)
    alphas = darts.state()["alphas"]
    with pytest.raises(TrainingDivergedError, match="step 0.*NaN or infinite values"):
        darts.step()
    assert len(darts.history) == 0 and darts.state()["alphas"] == alphas


def test_a_supernet_without_normal_cells_leaves_their_alpha_alone(data):
    """DARTS layers=2: both cells reduce, so the normal α gets no gradient (zero, not an error)."""
    darts = DARTS(DartsSpace(), data, order=2, supernet_kwargs={"C": 2, "layers": 2}, batch_size=8,
                  alpha_weight_decay=0.0, device="cpu")
    normal = darts.net.alpha["normal"].detach().clone()
    darts.step()
    assert torch.equal(darts.net.alpha["normal"].detach(), normal)


def test_a_darts_dashboard_shows_the_alphas_and_the_progress(data):
    from nasnb.widgets import Dashboard

    search = make(data, order=1)
    dash = Dashboard(search)
    assert list(dash.panels) == ["alphas", "progress"]
    dash.step()
    assert len(search.history) == 1
    dash.close()


def test_shared_accuracy_is_the_relaxation_with_one_hot_weights_and_changes_nothing(data):
    """The one-shot accuracy of a cell (only its ops run) equals the relaxation's accuracy with α's
    softmax replaced by the cell's one-hot weights: the zero weights silence every other op."""
    search = make(data)
    search.run(3, progress=False)
    before = {k: v.clone() for k, v in search.net.state_dict().items()}
    x, y = search.data.split("val")
    for arch in (SPACE.sample(0), SPACE.sample(1), ("nor_conv_3x3",) * 6):
        onehot = torch.zeros(6, len(SPACE.OPS))
        onehot[torch.arange(6), [SPACE.OPS.index(op) for op in arch]] = 1.0
        chunks = max(1, round(len(y) / search.batch_size))
        correct = 0.0
        with torch.no_grad():
            for xs, ys in zip(torch.tensor_split(x, chunks), torch.tensor_split(y, chunks)):
                correct += float((search.net(xs, weights={"cell": onehot}).argmax(1) == ys).sum())
        search.net.load_state_dict(before)  # the manual pass updated BatchNorm's statistics
        assert search.shared_accuracy(SPACE.format(arch)) == pytest.approx(correct / len(y))
        after = search.net.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)  # scoring leaves the search as it was
