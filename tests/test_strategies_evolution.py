"""RegularizedEvolution against Algorithm 1 of Real et al. (AAAI 2019) and plain arithmetic."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from nasnb.spaces import NB201Space
from nasnb.spaces.toy import ToySpace
from nasnb.strategies import RandomSearch, RegularizedEvolution


def hamming(a, b):
    return sum(x != y for x, y in zip(a, b))


def conv_count(arch):
    """A cheap NB201 'evaluator': the fraction of edges that are 3x3 convolutions."""
    return {"val_accuracy": sum(op == "nor_conv_3x3" for op in arch) / 6}


def run_by_hand(search, n, evaluate):
    """ask/tell n times; returns, per trial, the population before the ask and after the tell."""
    steps = []
    for _ in range(n):
        before = list(search.population)
        proposal = search.ask()
        trial = search.tell(proposal, evaluate(proposal.arch))
        steps.append((before, trial, list(search.population)))
    return steps


def test_the_first_population_size_trials_are_random_then_every_child_is_a_mutation():
    space = ToySpace(length=8, options=4)
    search = RegularizedEvolution(space, space.evaluate, population_size=7, sample_size=3, seed=0)
    search.run(40, progress=False)
    kinds = [t.info["kind"] for t in search.history]
    assert kinds == ["random"] * 7 + ["mutation"] * 33
    assert all(t.info["parent"] is None and t.info["sampled"] == [] for t in search.history[:7])


@pytest.mark.parametrize("aging", [True, False])
def test_population_never_exceeds_its_size_and_the_right_member_dies(aging):
    space = ToySpace(length=8, options=4)
    search = RegularizedEvolution(space, space.evaluate, population_size=6, sample_size=3, aging=aging, seed=1)
    fitness = {}
    for before, trial, after in run_by_hand(search, 80, space.evaluate):
        fitness[trial.number] = space.score(space.parse(trial.arch))
        assert len(after) == min(trial.number + 1, 6)
        if len(before) < 6:
            assert after == before + [trial.number]  # still filling up: nobody dies
            continue
        candidates = before + [trial.number]  # the child joins first, then one member dies
        (dead,) = set(candidates) - set(after)
        if aging:
            assert dead == min(candidates)  # the oldest: the smallest trial number alive
        else:
            worst = min(fitness[k] for k in candidates)
            assert fitness[dead] == worst
            assert dead == min(k for k in candidates if fitness[k] == worst)  # tie: the oldest of the worst


def test_with_aging_every_member_lives_exactly_population_size_births():
    space = ToySpace(length=8, options=4)
    search = RegularizedEvolution(space, space.evaluate, population_size=5, sample_size=2, seed=2)
    steps = run_by_hand(search, 30, space.evaluate)
    for before, trial, after in steps:
        if trial.number >= 5:
            assert set(before) - set(after) == {trial.number - 5}


def test_without_aging_the_best_fitness_is_never_lost():
    space = ToySpace(length=8, options=4)
    search = RegularizedEvolution(space, space.evaluate, population_size=5, sample_size=2, aging=False, seed=3)
    best = 0.0
    for _, trial, after in run_by_hand(search, 60, space.evaluate):
        best = max(best, trial.value("val_accuracy"))
        assert max(search.fitness(k) for k in after) == best


def test_the_parent_is_the_fittest_sampled_member_of_the_population():
    space = ToySpace(length=8, options=4)
    search = RegularizedEvolution(space, space.evaluate, population_size=10, sample_size=4, seed=4)
    for before, trial, _ in run_by_hand(search, 60, space.evaluate):
        if trial.info["kind"] == "random":
            continue
        sampled, parent = trial.info["sampled"], trial.info["parent"]
        assert len(sampled) == 4 and set(sampled) <= set(before) and parent in sampled
        assert search.fitness(parent) == max(search.fitness(k) for k in sampled)
        assert parent == next(k for k in sampled if search.fitness(k) == search.fitness(parent))  # tie: first drawn


@pytest.mark.parametrize("space, evaluate", [(ToySpace(length=6, options=5), None), (NB201Space(), conv_count)])
def test_every_mutated_child_is_one_edit_from_its_parent(space, evaluate):
    evaluate = evaluate or space.evaluate
    search = RegularizedEvolution(space, evaluate, population_size=8, sample_size=3, seed=5)
    search.run(50, progress=False)
    for trial in search.history[8:]:
        parent = search.history[trial.info["parent"]]
        assert hamming(space.parse(trial.arch), space.parse(parent.arch)) == 1


def test_the_sample_is_drawn_with_replacement():
    space = ToySpace(length=8, options=4)
    # More draws than members: only drawing with replacement can do it, and repeats are forced.
    small = RegularizedEvolution(space, space.evaluate, population_size=3, sample_size=10, seed=6)
    small.run(10, progress=False)
    for trial in small.history[3:]:
        assert len(trial.info["sampled"]) == 10 and len(set(trial.info["sampled"])) <= 3

    # P=20, S=5: a draw of 5 from 20 with replacement repeats a member with probability
    # 1 - 20*19*18*17*16 / 20**5 = 0.4186 (without replacement: never).
    search = RegularizedEvolution(space, space.evaluate, population_size=20, sample_size=5, seed=7)
    search.run(1020, progress=False)
    repeats = [len(set(t.info["sampled"])) < 5 for t in search.history[20:]]
    expected = 1 - (20 * 19 * 18 * 17 * 16) / 20 ** 5
    assert abs(sum(repeats) / len(repeats) - expected) < 0.08  # 5 standard deviations of 1000 Bernoullis


def test_crossover_children_take_each_position_from_a_parent_then_mutate():
    space = ToySpace(length=10, options=4)
    search = RegularizedEvolution(space, space.evaluate, population_size=10, sample_size=4, crossover_prob=1.0, seed=8)
    search.run(80, progress=False)
    crossed = 0
    for trial in search.history[10:]:
        info = trial.info
        if len(set(info["sampled"])) < 2:  # a sample of one distinct member cannot be recombined
            assert info["kind"] == "mutation"
            continue
        crossed += 1
        assert info["kind"] == "crossover"
        first, second = info["parents"]
        assert first == info["parent"] and first != second and {first, second} <= set(info["sampled"])
        others = set(info["sampled"]) - {first, second}
        assert search.fitness(first) >= search.fitness(second) >= max(map(search.fitness, others), default=0)
        a, b = space.parse(search.history[first].arch), space.parse(search.history[second].arch)
        recombined = space.parse(info["recombined"])
        assert all(r in (x, y) for r, x, y in zip(recombined, a, b))
        assert hamming(space.parse(trial.arch), recombined) == 1  # then one mutation
    assert crossed >= 60


def test_no_crossover_by_default_and_some_with_a_probability():
    space = ToySpace(length=8, options=4)
    mixed = RegularizedEvolution(space, space.evaluate, population_size=10, crossover_prob=0.5, seed=9)
    mixed.run(210, progress=False)
    kinds = [t.info["kind"] for t in mixed.history[10:]]
    assert 60 <= kinds.count("crossover") <= 140  # Binomial(200, 0.5): mean 100, sd 7
    plain = RegularizedEvolution(space, space.evaluate, population_size=10, seed=9).run(60, progress=False)
    assert {t.info["kind"] for t in plain} == {"random", "mutation"}


def test_evolution_beats_random_search_on_a_toy_space_for_the_same_budget():
    # 4**12 = 16.8 million archs; the score counts positions equal to the target. A random
    # arch matches 3 of 12 on average, and 300 random tries rarely reach 8; a mutation moves one
    # position, so tournament selection climbs.
    space = ToySpace(length=12, options=4)
    seeds = range(5)
    evolution = [RegularizedEvolution(space, space.evaluate, seed=s).run(300, progress=False) for s in seeds]
    random = [RandomSearch(space, space.evaluate, seed=s).run(300, progress=False) for s in seeds]
    best = lambda runs: sum(h.best().value("val_accuracy") for h in runs) / len(runs)  # noqa: E731
    assert best(evolution) >= best(random) + 0.15


def test_asynchronous_evolution_selects_only_from_members_told_before_the_ask():
    space = ToySpace(length=8, options=4)
    search = RegularizedEvolution(space, space.evaluate, population_size=6, sample_size=3, seed=10)
    with ThreadPoolExecutor(max_workers=4) as pool:
        search.run(42, executor=pool, batch=4, progress=False)
    assert len(search.history) == 42 and len(search.population) == 6
    for trial in search.history:
        batch_start = trial.number - trial.number % 4  # the batch was asked before any of it was told
        assert all(k < batch_start for k in trial.info["sampled"])


def test_more_proposals_in_flight_than_members_fall_back_to_random():
    space = ToySpace(length=6, options=4)
    search = RegularizedEvolution(space, space.evaluate, population_size=2, sample_size=2, seed=11)
    with ThreadPoolExecutor(max_workers=2) as pool:
        search.run(12, executor=pool, batch=4, progress=False)
    kinds = [t.info["kind"] for t in search.history]
    assert kinds[:4] == ["random"] * 4  # nobody had been told when the first four were asked
    assert set(kinds[4:]) == {"mutation"}


def test_state_lists_the_living_with_fitness_and_age_and_resets():
    space = ToySpace(length=6, options=4)
    search = RegularizedEvolution(space, space.evaluate, population_size=4, sample_size=2, seed=12)
    search.run(10, progress=False)
    state = json.loads(json.dumps(search.state()))
    assert [m["number"] for m in state["population"]] == [6, 7, 8, 9]
    assert [m["age"] for m in state["population"]] == [3, 2, 1, 0]
    for m in state["population"]:
        assert m["fitness"] == space.score(space.parse(m["arch"]))
    assert search.history.meta["population_size"] == 4 and search.history.meta["aging"] is True
    search.reset()
    assert search.population == [] and len(search.history) == 0


@pytest.mark.parametrize("kwargs, words", [
    (dict(population_size=0), "population_size"),
    (dict(sample_size=0), "sample_size"),
    (dict(crossover_prob=1.5), "crossover_prob"),
])
def test_bad_settings_are_named(kwargs, words):
    space = ToySpace()
    with pytest.raises(ValueError, match=words):
        RegularizedEvolution(space, space.evaluate, **kwargs)
