"""The options of DARTS (nasnb/strategies/darts.py): warm-up, PC-DARTS, GDAS, P-DARTS and the skip cap.

Each is checked against its paper's maths or the authors' code, written out here independently:
GDAS' straight-through gradient against the softmax Jacobian by hand and its samples against
softmax(α) (chi-square); P-DARTS' op dropping against train_search.py's get_min_k, its skip cap
against the authors' delete_min_sk_prob / keep_1_on / keep_2_branches loop, its dropout and
learning-rate schedules against their formulas; resumes across a stage boundary against an
uninterrupted run.
"""
import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F

import nasnb
import nasnb.strategies.darts as darts_module
from nasnb.errors import NasnbError, ResumeMismatchError
from nasnb.spaces import DartsSpace, NB201Space
from nasnb.spaces.supernet import NB201SearchCell
from nasnb.strategies.darts import DARTS, loss_at
from nasnb.strategies.darts_variants import (GDASConfig, PDARTSConfig, derive_with_skip_cap, gumbel_hard_weights,
                                             keep_top_ops, linear_tau, pdarts_skip_dropout)
from nasnb.strategies.reinforce import one_thread

NB201, DARTS_SPACE = NB201Space(), DartsSpace()
TINY = {"C": 4, "N": 1}


@pytest.fixture(autouse=True)
def single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def data():
    return nasnb.data.load("digits").subset(train_size=64, val_size=64)  # 4 steps per epoch at batch 16


def make(data, space=NB201, **kwargs):
    small = TINY if space is NB201 else {"C": 4, "layers": 3}
    if "pdarts" in kwargs:  # P-DARTS sets the depth of each stage
        small = {"C": 4}
    settings = {"supernet_kwargs": small, "batch_size": 16, "device": "cpu", "order": 1, **kwargs}
    return DARTS(space, data, **settings)


# ============================================================================= warm-up

def test_alpha_stays_put_during_the_warmup_and_w_trains(data):
    darts = make(data, warmup_steps=2)
    alpha0 = darts.net.alpha["cell"].detach().clone()
    weights0 = [p.detach().clone() for p in darts.net.weight_parameters()]
    records = darts.run(3, progress=False)
    assert [r.info["warmup"] for r in records] == [True, True, False]
    assert records[0].info["alphas"] == records[1].info["alphas"] == {"cell": F.softmax(alpha0, -1).tolist()}
    assert records[2].info["alphas"] != records[1].info["alphas"]
    assert any(not torch.equal(a, b) for a, b in zip(weights0, darts.net.weight_parameters()))


def test_a_second_order_warmup_computes_no_alpha_gradient(data, monkeypatch):
    calls = []
    real = darts_module.unrolled_alpha_gradient
    monkeypatch.setattr(darts_module, "unrolled_alpha_gradient", lambda *a, **k: calls.append(1) or real(*a, **k))
    make(data, order=2, warmup_steps=2).run(3, progress=False)
    assert len(calls) == 1


# ============================================================================= PC-DARTS

def test_partial_channels_trains_beta_with_alpha_by_adam(data):
    darts = make(data, DARTS_SPACE, partial_channels=2, alpha_weight_decay=0.0)
    assert darts.net.partial_channels == 2 and darts.settings()["partial_channels"] == 2
    assert darts.settings()["supernet_kwargs"]["partial_channels"] == 2
    batches = []
    draw = darts._next_batch
    darts._next_batch = lambda split: batches.append(draw(split)) or batches[-1]
    before = {k: v.detach().clone() for k, v in darts.net.state_dict().items()}
    reference = DARTS_SPACE.supernet(C=4, layers=3, num_classes=10, in_channels=1, partial_channels=2).train()
    reference.load_state_dict(before)
    darts.step()
    x, y = batches[1]  # train first, then val
    betas = list(reference.beta.values())
    grads = torch.autograd.grad(F.cross_entropy(reference(x), y), betas)
    for cell, g in zip(reference.beta, grads):
        moved = darts.net.beta[cell].detach() - before[f"beta.{cell}"]
        torch.testing.assert_close(moved, -3e-4 * g / (g.abs() + 1e-8), rtol=1e-3, atol=1e-9)  # Adam, step 1
        assert moved.abs().max() > 1e-4


# ============================================================================= GDAS

def test_gumbel_sample_is_one_hot_at_argmax_of_alpha_plus_gumbel_noise():
    alpha = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    generator = torch.Generator().manual_seed(3)
    copy = torch.Generator().manual_seed(3)
    hard, index = gumbel_hard_weights(alpha, 0.7, generator)
    g = -torch.log(-torch.log(torch.rand(alpha.shape, generator=copy, dtype=torch.float64)))
    assert torch.equal(index, (alpha + g).argmax(-1))
    assert torch.equal(hard.detach(), F.one_hot(index, 5).double())  # exactly 0 and 1


def test_gumbel_gradient_is_the_softmax_jacobian_by_hand():
    tau = 0.7
    alpha = torch.randn(6, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64).requires_grad_()
    c = torch.randn(6, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    hard, _ = gumbel_hard_weights(alpha, tau, torch.Generator().manual_seed(4))
    (grad,) = torch.autograd.grad((c * hard).sum(), alpha)
    u = torch.rand(6, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    logits = (alpha.detach() - torch.log(-torch.log(u))) / tau
    for e in range(6):
        p = (logits[e].exp() / logits[e].exp().sum()).numpy()
        jacobian = (np.diag(p) - np.outer(p, p)) / tau  # d p_k / d α_j = p_k (δ_kj − p_j) / τ
        np.testing.assert_allclose(grad[e].numpy(), jacobian.T @ c[e].numpy(), rtol=1e-12, atol=1e-15)


def test_gumbel_samples_follow_softmax_alpha():
    """argmax(α + g) is a sample of softmax(α) (Gumbel-max), whatever τ: a chi-square test, fixed seed."""
    alpha = torch.tensor([1.0, 0.0, -1.0, 0.5, -0.5], dtype=torch.float64)
    n = 20000
    _, index = gumbel_hard_weights(alpha.expand(n, 5), 0.1, torch.Generator().manual_seed(0))
    counts = torch.bincount(index, minlength=5).numpy()
    expected = n * F.softmax(alpha, -1).numpy()
    assert scipy.stats.chisquare(counts, expected).pvalue > 1e-3
    uniform = np.full(5, n / 5)  # the test can fail: these samples are far from uniform
    assert scipy.stats.chisquare(counts, uniform).pvalue < 1e-12


def test_tau_falls_linearly_from_10_to_0_1():
    assert linear_tau(0, 10.0, 0.1, 5) == 10.0
    assert [linear_tau(t, 10.0, 0.1, 5) for t in (1, 2, 3)] == pytest.approx([7.525, 5.05, 2.575], rel=1e-12)
    assert linear_tau(4, 10.0, 0.1, 5) == pytest.approx(0.1, rel=1e-12) and linear_tau(99, 10.0, 0.1, 5) == 0.1


def test_a_gdas_search_records_tau_and_trains_only_the_sampled_ops(data, monkeypatch):
    samples = []
    real = darts_module.gumbel_hard_weights
    monkeypatch.setattr(darts_module, "gumbel_hard_weights", lambda *a: samples.append(real(*a)) or samples[-1])
    darts = make(data, gumbel=True, schedule_steps=5)
    taus = [r.info["tau"] for r in darts.run(3, progress=False)]
    assert taus == pytest.approx([10.0, 7.525, 5.05], rel=1e-12)
    _, index = samples[-1]  # the sample of the last w step
    trained = 0
    for cell in (m for m in darts.net.modules() if isinstance(m, NB201SearchCell)):
        for e, mixed in enumerate(cell.mixed):
            for name, op in mixed.ops.items():
                grads = [p.grad for p in op.parameters()]
                if name == darts.net.op_names[index[e]]:
                    assert all(g is not None for g in grads), (e, name)
                    trained += len(grads)
                else:
                    assert all(g is None for g in grads), (e, name)  # never ran
    assert trained > 0  # some sampled op has weights (a convolution)
    assert darts.derived() == darts.net.derived()  # argmax α, as DARTS


def test_a_gdas_search_on_the_darts_space_samples_both_cells(data, monkeypatch):
    samples = []
    real = darts_module.gumbel_hard_weights
    monkeypatch.setattr(darts_module, "gumbel_hard_weights", lambda *a: samples.append(real(*a)) or samples[-1])
    darts = make(data.subset(train_size=16, val_size=16), DARTS_SPACE, gumbel=True, schedule_steps=10,
                 supernet_kwargs={"C": 2, "layers": 3})
    record = darts.step()
    assert len(samples) == 4 and all(h.shape == (14, 8) for h, _ in samples)  # α and w step, normal and reduce
    assert record.info["tau"] == 10.0 and DARTS_SPACE.parse(record.arch) == darts.net.derived()


def test_a_resumed_gdas_run_draws_the_same_samples(data, tmp_path):
    uninterrupted = make(data, gumbel=GDASConfig(steps=4)).run(4, progress=False)
    make(data, gumbel=GDASConfig(steps=4)).run(2, checkpoint=tmp_path / "g", progress=False)
    resumed = make(data, gumbel=GDASConfig(steps=4)).run(4, checkpoint=tmp_path / "g", progress=False)
    assert [r.info for r in resumed] == [r.info for r in uninterrupted]
    assert [r.metrics for r in resumed] == [r.metrics for r in uninterrupted]


# ============================================================================= the skip cap

def authors_cap(W, keep, op_names, max_skip):
    """The authors' train_search.py after the last stage, written for any op mask: 'none' and dropped
    ops count 0; per edge the strongest op stays (keep_1_on), per node the two edges with the largest
    weight (keep_2_branches); while the normal cell has more than max_skip skips, the kept skip of
    smallest weight gets weight 0 (delete_min_sk_prob). Returns per node the set of (op, input)."""
    none, skip = op_names.index("none"), op_names.index("skip_connect")
    probs = [[w if keep[e][k] and k != none else 0.0 for k, w in enumerate(row)] for e, row in enumerate(W)]
    while True:
        op = [int(np.argmax(row)) for row in probs]
        final = [max(row) for row in probs]
        kept_edges, start, n = [], 0, 2
        for _ in range(4):
            edges = sorted(range(n), key=lambda x: final[start + x])
            kept_edges += [start + edges[-1], start + edges[-2]]
            start, n = start + n, n + 1
        skips = [e for e in kept_edges if op[e] == skip]
        if len(skips) <= max_skip:
            break
        sk_prob = [probs[e][skip] if e in skips else 1.0 for e in range(len(W))]
        probs[int(np.argmin(sk_prob))][skip] = 0.0
    nodes, start = [], 0
    for i in range(4):
        nodes.append({(op_names[op[e]], e - start) for e in kept_edges if start <= e < start + i + 2})
        start += i + 2
    return nodes


@pytest.mark.parametrize("seed", range(12))
def test_the_skip_cap_of_a_darts_cell_follows_the_authors_loop(seed):
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        keep = torch.rand(14, 8, generator=g) < 0.7
        keep[:, 3] = True  # skip_connect everywhere, and one more op
        keep[:, 4] = True
        net = DARTS_SPACE.supernet(C=2, layers=2, keep={"normal": keep, "reduce": keep})
    with torch.no_grad():
        for a in net.alpha.values():
            a.copy_(torch.randn(14, 8, generator=g))
            a[:, 3] += 1.5  # skip connections strong: the cap matters
    W = net.mixing_weights()["normal"].tolist()
    for max_skip in (0, 1, 2, 3):
        genotype = derive_with_skip_cap(net, max_skip)
        mine = [set(genotype.normal[2 * i:2 * i + 2]) for i in range(4)]
        assert mine == authors_cap(W, keep.tolist(), net.op_names, max_skip)
        assert sum(op == "skip_connect" for op, _ in genotype.normal) <= max_skip
        assert genotype.reduce == net.derived().reduce  # the reduction cell is not capped
    assert derive_with_skip_cap(net, 8) == net.derived()  # no cap: the supernet's own rule


def test_without_a_binding_cap_the_rule_is_the_supernets_own_with_pc_darts_beta():
    g = torch.Generator().manual_seed(5)
    net = DARTS_SPACE.supernet(C=4, layers=2, partial_channels=2)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    assert derive_with_skip_cap(net, 8) == net.derived()
    capped = derive_with_skip_cap(net, 0)
    assert all(op != "skip_connect" for op, _ in capped.normal) and capped.reduce == net.derived().reduce


def test_the_skip_cap_of_a_nb201_cell_gives_the_weakest_skips_their_next_op():
    net = NB201.supernet(C=2, N=1)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        net.alpha["cell"].copy_(torch.randn(6, 5, generator=g))
        net.alpha["cell"][:, 1] += 3.0  # skip_connect strongest on every edge
    W = net.mixing_weights()["cell"].detach()
    order = sorted(range(6), key=lambda e: float(W[e, 1]))  # weakest skip first
    for max_skip in range(7):
        expected = list(net.derived())
        for e in order[:6 - max_skip]:  # these lose their skip for their second-strongest op
            expected[e] = net.op_names[int(W[e].topk(2).indices[1])]
        assert derive_with_skip_cap(net, max_skip) == tuple(expected)


def test_max_skip_on_a_search_caps_every_recorded_cell(data):
    darts = make(data, max_skip=0)
    for record in darts.run(2, progress=False):
        assert "skip_connect" not in record.arch and record.arch == record.info["derived"]
    assert darts.settings()["max_skip"] == 0


# ============================================================================= P-DARTS

def authors_get_min_k(probs, k):
    """train_search.py's get_min_k: the k smallest, one at a time (np.argmin: the first of equals)."""
    probs, index = list(probs), []
    for _ in range(k):
        idx = int(np.argmin(probs))
        index.append(idx)
        probs[idx] = 1
    return index


def test_keep_top_ops_drops_the_ops_train_search_drops():
    g = torch.Generator().manual_seed(0)
    for trial in range(20):
        keep = torch.rand(14, 8, generator=g) < 0.8
        keep[:, 0] = True
        alpha = torch.randn(14, 8, generator=g)
        if trial % 2:
            alpha = alpha.round()  # many ties
        for k in (1, 2, 3):
            k = min(k, int(keep.sum(-1).min()))
            weights = F.softmax(alpha.masked_fill(~keep, float("-inf")), -1)
            new = keep_top_ops(weights, keep, k)
            for e in range(14):
                idxs = [o for o in range(8) if keep[e, o]]
                probs = F.softmax(alpha[e, idxs], -1).numpy()  # the authors' α has only the kept ops
                dropped = {idxs[i] for i in authors_get_min_k(probs, len(idxs) - k)}
                assert new[e].tolist() == [o in idxs and o not in dropped for o in range(8)]


def test_skip_dropout_follows_train_search():
    rate, E, W = 0.4, 25, 10
    expected = [rate * (E - e - 1) / E for e in range(W)] + [rate * math.exp(-(e - W) * 0.2) for e in range(W, E)]
    assert [pdarts_skip_dropout(rate, e, E, W) for e in range(E)] == pytest.approx(expected, rel=1e-15)
    assert pdarts_skip_dropout(rate, 0, E, W) == pytest.approx(0.384) and pdarts_skip_dropout(rate, W, E, W) == rate


CONFIG = PDARTSConfig(depths=(1, 2), ops=(5, 3), skip_dropout=(0.2, 0.5), stage_epochs=2, warmup_epochs=1)


def test_a_pdarts_run_follows_its_stages_schedules_and_drops_ops(data):
    darts = make(data, pdarts=CONFIG, alpha_lr=3e-2)  # 4 steps per epoch: stages of 8 steps
    lrs, keeps = [], []
    darts.subscribe(lambda r: (lrs.append(darts.w_optimizer.param_groups[0]["lr"]), keeps.append(darts.net.keep)))
    records = darts.run(16, progress=False)
    assert [r.info["stage"] for r in records] == [0] * 8 + [1] * 8
    assert [r.info["warmup"] for r in records] == ([True] * 4 + [False] * 4) * 2
    dropout = [pdarts_skip_dropout(rate, epoch, 2, 1) for rate in (0.2, 0.5) for epoch in (0, 0, 0, 0, 1, 1, 1, 1)]
    assert [r.info["skip_dropout"] for r in records] == pytest.approx(dropout, rel=1e-15)
    assert dropout[:5] == pytest.approx([0.1] * 4 + [0.2]) and dropout[8] == pytest.approx(0.25)
    cosine = [0.001 + 0.024 / 2 * (1 + math.cos(math.pi * t / 8)) for t in range(8)] * 2  # restarts per stage
    assert lrs == pytest.approx(cosine, rel=1e-12)
    # α froze in each warm-up; the stage-1 supernet started from fresh α (uniform over its kept ops)
    assert records[0].info["alphas"] == records[3].info["alphas"] != records[4].info["alphas"]
    assert records[8].info["alphas"] == records[11].info["alphas"] != records[7].info["alphas"]
    assert all(torch.equal(keeps[t]["cell"], torch.ones(6, 5, dtype=torch.bool)) for t in range(8))
    probs = records[7].info["alphas"]["cell"]  # α at the end of stage 0 chooses the ops of stage 1
    for e in range(6):
        dropped = set(authors_get_min_k(probs[e], 2))
        assert keeps[8]["cell"][e].tolist() == [o not in dropped for o in range(5)]
        assert sum(w > 0 for w in records[8].info["alphas"]["cell"][e]) == 3
        assert max(records[8].info["alphas"]["cell"][e]) < 0.34  # fresh α ≈ 0: about 1/3 each
    assert sum(isinstance(m, NB201SearchCell) for m in darts.net.modules()) == 3 * 2  # N = 2 in stage 1
    assert darts.state()["stage"] == 1 and darts.settings()["pdarts"]["depths"] == (1, 2)
    assert all(r.arch.count("skip_connect") <= 2 for r in records)  # M = 2 by default


def test_a_pdarts_darts_space_search_derives_capped_genotypes(data):
    config = PDARTSConfig(depths=(2, 3), ops=(8, 4), skip_dropout=(0.0, 0.3), stage_epochs=1, warmup_epochs=0,
                          max_skip=1)
    small = data.subset(train_size=32, val_size=32)  # 2 steps per epoch
    darts = make(small, DARTS_SPACE, pdarts=config, supernet_kwargs={"C": 2})
    records = darts.run(3, progress=False)
    assert [r.info["stage"] for r in records] == [0, 0, 1]
    assert all(int(mask.sum(-1).max()) == 4 == int(mask.sum(-1).min()) for mask in darts.net.keep.values())
    assert len(darts.net.cells) == 3
    for r in records:
        assert [op for op, _ in DARTS_SPACE.parse(r.arch).normal].count("skip_connect") <= 1


@pytest.mark.parametrize("split", [8, 10])
def test_a_pdarts_run_resumed_across_a_stage_boundary_equals_an_uninterrupted_one(data, tmp_path, split):
    uninterrupted = make(data, pdarts=CONFIG).run(12, progress=False)
    path = tmp_path / f"pdarts{split}"
    make(data, pdarts=CONFIG).run(split, checkpoint=path, progress=False)
    state = torch.load(path / "state.pt", weights_only=True)
    assert state["state"]["extra"]["stage"] == (0 if split == 8 else 1)
    resumed = make(data, pdarts=CONFIG)
    resumed.run(12, checkpoint=path, progress=False)
    assert [r.info for r in resumed.history] == [r.info for r in uninterrupted]
    assert [r.metrics for r in resumed.history] == [r.metrics for r in uninterrupted]
    resumed.reset()
    assert resumed.stage == 0 and sum(isinstance(m, NB201SearchCell) for m in resumed.net.modules()) == 3
    assert [r.info for r in resumed.run(2, progress=False)] == [r.info for r in uninterrupted[:2]]


def test_pdarts_dropout_leaves_the_global_rng_alone(data):
    darts = make(data, pdarts=CONFIG)
    state = torch.random.get_rng_state()
    darts.run(2, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_pdarts_true_takes_the_papers_stages(data):
    darts = make(data, DARTS_SPACE, pdarts=True, supernet_kwargs={"C": 4})
    assert darts.pdarts == PDARTSConfig(depths=(5, 11, 17), ops=(8, 5, 3), skip_dropout=(0.0, 0.4, 0.7),
                                        stage_epochs=25, warmup_epochs=10, max_skip=2)
    assert len(darts.net.cells) == 5 and darts.max_skip == 2
    assert make(data, pdarts={"stage_epochs": 2, "warmup_epochs": 1}).pdarts.ops == (5, 3, 2)


def test_a_resume_with_other_options_is_refused(data, tmp_path):
    make(data, pdarts=CONFIG).run(1, checkpoint=tmp_path / "p", progress=False)
    other = PDARTSConfig(depths=(1, 3), ops=(5, 3), skip_dropout=(0.2, 0.5), stage_epochs=2, warmup_epochs=1)
    with pytest.raises(ResumeMismatchError, match="pdarts.depths"):
        make(data, pdarts=other).run(2, checkpoint=tmp_path / "p", progress=False)
    make(data, warmup_steps=1).run(1, checkpoint=tmp_path / "w", progress=False)
    with pytest.raises(ResumeMismatchError, match="warmup_steps"):
        make(data, warmup_steps=2).run(2, checkpoint=tmp_path / "w", progress=False)


def test_alpha_grad_clip_clips_the_alpha_gradient(data):
    darts = make(data, alpha_grad_clip=1e-6, alpha_weight_decay=0.0)
    darts.step()
    # Adam's first step: exp_avg = (1 − β1) g, so the gradient it was given is exp_avg / 0.5.
    norm = torch.cat([s["exp_avg"].flatten() / 0.5 for s in darts.alpha_optimizer.state.values()]).norm()
    assert float(norm) == pytest.approx(1e-6, rel=1e-4)


# ============================================================================= errors

@pytest.mark.parametrize("kwargs, name", [
    ({"warmup_steps": -1}, "warmup_steps"), ({"warmup_steps": 1.5}, "warmup_steps"),
    ({"alpha_grad_clip": 0}, "alpha_grad_clip"),
    ({"partial_channels": 0}, "partial_channels"), ({"partial_channels": 3}, "partial_channels"),
    ({"partial_channels": 2, "supernet_kwargs": {"C": 4, "N": 1, "partial_channels": 4}}, "partial_channels"),
    ({"gumbel": "yes", "schedule_steps": 9}, "gumbel"), ({"gumbel": {"tau": 1.0}, "schedule_steps": 9}, "tau"),
    ({"gumbel": True}, "schedule_steps"), ({"gumbel": True, "schedule_steps": 9, "order": 2}, "order=1"),
    ({"gumbel": GDASConfig(tau_min=20.0), "schedule_steps": 9}, "tau_min"),
    ({"gumbel": GDASConfig(steps=1)}, "gumbel.steps"),
    ({"gumbel": True, "schedule_steps": 9, "partial_channels": 2}, "partial_channels"),
    ({"gumbel": True, "schedule_steps": 9, "pdarts": True}, "pdarts"),
    ({"pdarts": {"depth": (1, 2)}}, "depth"), ({"pdarts": "yes"}, "pdarts"),
    ({"pdarts": PDARTSConfig(depths=(0, 1), ops=(5, 3), skip_dropout=(0, 0))}, "depths"),
    ({"pdarts": PDARTSConfig(depths=(1, 2), ops=(5, 3, 2), skip_dropout=(0, 0))}, "ops"),
    ({"pdarts": PDARTSConfig(depths=(1, 2), ops=(4, 3), skip_dropout=(0, 0))}, "ops"),
    ({"pdarts": PDARTSConfig(depths=(1, 2), ops=(5, 6), skip_dropout=(0, 0))}, "ops"),
    ({"pdarts": PDARTSConfig(depths=(1, 2), ops=(5, 3), skip_dropout=(1.0, 0))}, "skip_dropout"),
    ({"pdarts": PDARTSConfig(depths=(1, 2), ops=(5, 3))}, "skip_dropout"),
    ({"pdarts": PDARTSConfig(depths=(1, 2), ops=(5, 3), skip_dropout=(0, 0), stage_epochs=2, warmup_epochs=2)},
     "warmup_epochs"),
    ({"pdarts": CONFIG, "warmup_steps": 3}, "warmup_epochs"),
    ({"pdarts": PDARTSConfig(depths=(1, 2), ops=(8, 1), skip_dropout=(0, 0)), "space": DARTS_SPACE}, "at least 2"),
    ({"pdarts": CONFIG, "supernet_kwargs": {"C": 4, "N": 2}}, "N"),
    ({"pdarts": CONFIG, "max_skip": 3}, "max_skip"),
    ({"max_skip": -1}, "max_skip"), ({"max_skip": True}, "max_skip"),
])
def test_every_option_is_checked_at_the_call(data, kwargs, name):
    with pytest.raises(NasnbError, match=name):
        make(data, **kwargs)


def test_loss_at_passes_the_supernets_other_arguments(data):
    net = NB201.supernet(C=2, N=1, in_channels=1).train()
    x, y = data.train[0][:4], data.train[1][:4]
    ops = {"cell": (1, 1, 1, 1, 1, 1)}
    loss, logits = loss_at(net, {}, (x, y), ops=ops)
    assert torch.equal(logits, net(x, ops=ops)) and loss == F.cross_entropy(logits, y)
