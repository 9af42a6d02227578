"""The paths that make searches fast, checked against what they replace: a resume that replays the
journal's newer trials, a replay that meets a foreign proposal, and REINFORCE's reuse of its
sampling pass (and the replay when θ changed in between)."""
import copy
import json
import warnings

import pytest
import torch

import nasnb.storage as storage
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import RandomSearch, RegularizedEvolution, Reinforce

SPACE = ToySpace(length=5, options=3)
MAKERS = {
    "random": lambda: RandomSearch(SPACE, SPACE.evaluate, seed=4),
    "evolution": lambda: RegularizedEvolution(SPACE, SPACE.evaluate, population_size=5, sample_size=2, seed=4),
    "reinforce": lambda: Reinforce(SPACE, SPACE.evaluate, hidden_size=8, batch_size=2, seed=4),
}


def record(history):
    return [storage.dumps({k: v for k, v in t.to_dict().items() if k != "seconds"}) for t in history]


def lagging_checkpoint(kind, path, n, monkeypatch):
    """A checkpoint whose state.pt covers none of its n trials: as a kill leaves a fast run before
    its first sync (the end-of-run flush is switched off)."""
    with monkeypatch.context() as patch:
        patch.setattr(storage.Checkpoint, "flush", lambda self, state: None)
        MAKERS[kind]().run(n, checkpoint=path, progress=False)
    lines = (path / "journal.jsonl").read_text().splitlines()
    assert len(lines) == n + 1
    assert torch.load(path / "state.pt", weights_only=True)["records"] == 0  # the state lags all n
    return lines


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_resume_replays_the_trials_the_state_does_not_cover(kind, tmp_path, monkeypatch):
    path = tmp_path / "run.ckpt"
    lines = lagging_checkpoint(kind, path, 20, monkeypatch)
    resumed = MAKERS[kind]()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is dropped
        resumed.resume(path)
    assert len(resumed.history) == 20
    assert (path / "journal.jsonl").read_text().splitlines() == lines  # the journal is not rewritten
    resumed.run(35, checkpoint=path, progress=False)
    assert record(resumed.history) == record(MAKERS[kind]().run(35, progress=False))
    assert torch.load(path / "state.pt", weights_only=True)["records"] == 35  # a run that ends flushes


def test_a_replay_stops_at_a_trial_the_search_would_not_propose(tmp_path, monkeypatch):
    """A journal line beyond the state that this search would not have proposed (another version of
    the strategy, a hand edit) is dropped with the lines after it, with a warning; the search is
    left exactly where it was before that trial, and evaluates from there again."""
    path = tmp_path / "run.ckpt"
    lines = lagging_checkpoint("evolution", path, 12, monkeypatch)
    edited = json.loads(lines[9])  # record 8
    edited["info"]["sampled"] = edited["info"]["sampled"][::-1] + [0]
    (path / "journal.jsonl").write_text("\n".join(lines[:9] + [json.dumps(edited)] + lines[10:]) + "\n")
    resumed = MAKERS["evolution"]()
    with pytest.warns(UserWarning, match="held 4 records beyond its state.pt"):
        resumed.resume(path)
    assert len(resumed.history) == 8 and resumed.pending == []
    eight = MAKERS["evolution"]()
    eight.run(8, progress=False)
    assert resumed.state_dict()["rng"] == eight.state_dict()["rng"]  # not one draw further
    assert (path / "journal.jsonl").read_text().splitlines() == lines[:9]
    resumed.run(12, progress=False)
    assert record(resumed.history) == record(MAKERS["evolution"]().run(12, progress=False))


def test_a_proposal_told_after_an_update_is_learnt_from_with_the_new_weights():
    """ask A, ask B, tell A (an update: θ0 -> θ1), tell B: B's update must use log π_θ1(B), a
    replay, not the pass that sampled B under θ0."""
    search = Reinforce(SPACE, SPACE.evaluate, hidden_size=6, entropy_weight=0.1, seed=2)
    search.run(3, progress=False)
    a, b = search.ask(), search.ask()
    search.tell(a, SPACE.evaluate(a.arch))
    theta1 = copy.deepcopy(search.controller)
    baseline = search.baseline
    reward = SPACE.evaluate(b.arch)["val_accuracy"]
    search.tell(b, {"val_accuracy": reward})
    replay = theta1(b.info["actions"])
    loss = -(reward - baseline) * replay.log_prob - 0.1 * replay.entropy
    expected = torch.autograd.grad(loss, list(theta1.parameters()))
    for p, g in zip(search.controller.parameters(), expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-8)  # numpy's gradient vs autograd: float32 rounding


def test_weights_changed_between_ask_and_tell_are_those_the_update_differentiates():
    """The kept sampling pass is used only while θ is the θ that sampled: weights changed in place
    in between (load_state_dict, a hand edit) mean a replay."""
    search = Reinforce(SPACE, SPACE.evaluate, hidden_size=6, entropy_weight=0.1, seed=3)
    search.run(3, progress=False)
    proposal = search.ask()
    with torch.no_grad():
        for p in search.controller.parameters():
            p.mul_(1.5)
    changed = copy.deepcopy(search.controller)
    baseline = search.baseline
    reward = SPACE.evaluate(proposal.arch)["val_accuracy"]
    search.tell(proposal, {"val_accuracy": reward})
    replay = changed(proposal.info["actions"])
    loss = -(reward - baseline) * replay.log_prob - 0.1 * replay.entropy
    expected = torch.autograd.grad(loss, list(changed.parameters()))
    for p, g in zip(search.controller.parameters(), expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-8)  # numpy's gradient vs autograd: float32 rounding


def test_the_sampling_pass_reused_gives_the_replays_gradient():
    """Sequential ask/tell: the update backpropagates through the pass that sampled the actions;
    its gradient is that of a fresh replay of those actions under the same θ (to float32 rounding:
    the update's gradient is fast_controller's numpy arithmetic, the replay's autograd)."""
    search = Reinforce(SPACE, SPACE.evaluate, hidden_size=6, entropy_weight=0.1, seed=5)
    search.run(4, progress=False)
    theta = copy.deepcopy(search.controller)
    baseline = search.baseline
    proposal = search.ask()
    reward = SPACE.evaluate(proposal.arch)["val_accuracy"]
    search.tell(proposal, {"val_accuracy": reward})
    replay = theta(proposal.info["actions"])
    assert float(replay.log_prob.detach()) == pytest.approx(proposal.info["log_prob"], rel=1e-6)
    loss = -(reward - baseline) * replay.log_prob - 0.1 * replay.entropy
    expected = torch.autograd.grad(loss, list(theta.parameters()))
    for p, g in zip(search.controller.parameters(), expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-8)  # numpy's gradient vs autograd: float32 rounding
