"""nasnb.objectives: dominance, fronts, crowding and hypervolume, against pymoo and hand counts."""
import ast
import importlib.util
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

import nasnb.objectives as mo
from nasnb.errors import NasnbError
from nasnb.history import History, Step, Trial
from nasnb.objectives import (Objective, crowding_distance, dominates, hypervolume, hypervolume_so_far,
                              non_dominated, non_dominated_sort, pareto_front, parse_objectives)

needs_pymoo = pytest.mark.skipif(importlib.util.find_spec("pymoo") is None,
                                 reason='pymoo is not installed: pip install "nasnb[test]"')
OBJ = {"acc": "max", "lat": "min"}


def random_sets(count=60, seed=0):
    """Point sets of 1-60 points in 1-4 objectives: continuous, on a small integer grid (many ties),
    and with rows repeated (duplicates)."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        n, m = int(rng.integers(1, 61)), int(rng.integers(1, 5))
        if k % 3 == 0:
            yield rng.random((n, m))
        elif k % 3 == 1:
            yield rng.integers(0, 4, size=(n, m)).astype(float)
        else:
            base = rng.random((max(1, n // 3), m))
            yield base[rng.integers(len(base), size=n)]


# ---------------------------------------------------------------- objectives and their errors

def test_objectives_are_a_dict_of_directions_in_order():
    parsed = parse_objectives({"val_accuracy": "max", "latency_ms": "min"})
    assert parsed == (Objective("val_accuracy", "max"), Objective("latency_ms", "min"))
    assert [o.sign for o in parsed] == [-1.0, 1.0]
    assert parse_objectives(parsed) == parsed and parse_objectives(parsed[1]) == parsed[1:]
    assert mo.as_dict(parsed) == {"val_accuracy": "max", "latency_ms": "min"}


@pytest.mark.parametrize("bad, match", [
    (["val_accuracy", "-params"], r"objectives must be a dict.*did you mean objectives=\{'val_accuracy': 'max', "
                                  r"'params': 'min'\}"),
    ({"val_accuracy": "up"}, r"objectives\['val_accuracy'\] is 'up'; it must be 'max' or 'min', e.g. objectives="),
    ({}, r"objectives is empty.*e.g. objectives="),
    ({3: "max"}, r"the key 3 is not a name"),
    ("val_accuracy", r"objectives must be a dict .* got 'val_accuracy'"),
    ([Objective("a"), Objective("a", "min")], r"names a metric twice"),
])
def test_bad_objectives_are_refused_naming_the_value_and_an_example(bad, match):
    with pytest.raises(NasnbError, match=match):
        parse_objectives(bad)


def test_bad_points_and_references_are_refused_clearly():
    with pytest.raises(ValueError, match=r"points row 1 is \[nan, 1.0\]: every value must be finite"):
        non_dominated_sort([[0, 1], [math.nan, 1]])
    with pytest.raises(ValueError, match="must be 2-D"):
        non_dominated_sort([[[1]]])
    with pytest.raises(TypeError, match="list of rows of numbers"):
        crowding_distance([["a", "b"]])
    with pytest.raises(ValueError, match="3 columns and there are 2 objectives"):
        dominates([1, 2, 3], [1, 2, 3], OBJ)
    with pytest.raises(ValueError, match="reference=.* must name each objective once"):
        hypervolume([[0.5, 3.0]], {"acc": 0.0}, OBJ)
    with pytest.raises(ValueError, match="one reference value per objective"):
        hypervolume([[0.5, 3.0]], [0.0, 1.0, 2.0])


def test_sorting_too_many_distinct_points_is_refused_with_the_alternative(monkeypatch):
    monkeypatch.setattr(mo, "MAX_SORTED", 3)
    assert len(non_dominated_sort([[1, 2], [2, 1], [1, 2], [2, 1], [3, 3]])) == 2, "duplicates are sorted once"
    with pytest.raises(ValueError, match="4 distinct rows.*use non_dominated"):
        non_dominated_sort([[1, 2], [2, 1], [3, 3], [0, 5]])
    with pytest.raises(ValueError, match="one reference value per objective"):
        hypervolume([[0.5, 3.0]], [0.0, 1.0, 2.0])


def test_no_pymoo_or_other_extra_imported_by_the_module():
    tree = ast.parse(Path(mo.__file__).read_text())
    imported = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses", "math", "typing", "numpy", "nasnb"}, imported


# ---------------------------------------------------------------- dominance and sorting

def test_dominance_by_hand_with_directions():
    assert dominates([0.9, 10], [0.8, 10], OBJ)  # better accuracy, same latency
    assert not dominates([0.8, 10], [0.9, 10], OBJ)
    assert not dominates([0.9, 12], [0.8, 10], OBJ) and not dominates([0.8, 10], [0.9, 12], OBJ)  # a trade-off
    assert not dominates([0.9, 10], [0.9, 10], OBJ), "equal points do not dominate each other"
    assert dominates([1, 1], [2, 1]) and not dominates([2, 1], [1, 1]), "without objectives every column is minimised"


def test_sorting_by_hand():
    points = [[1, 5], [2, 4], [3, 3], [2, 5], [5, 5], [2, 4]]
    assert [f.tolist() for f in non_dominated_sort(points)] == [[0, 1, 2, 5], [3], [4]]
    assert non_dominated(points).tolist() == [0, 1, 2, 5]
    # maximising the first column: (3, 3) and (5, 5) trade off; (3, 3) beats both (2, 4), which beat
    # (2, 5) (equal first, better second), which beats (1, 5)
    assert [f.tolist() for f in non_dominated_sort(points, {"a": "max", "b": "min"})] == [[2, 4], [1, 5], [3], [0]]
    assert non_dominated_sort(np.empty((0, 2))) == [] and non_dominated(np.empty((0, 2))).tolist() == []


@needs_pymoo
def test_sorting_equals_pymoos_on_random_sets_with_ties_and_duplicates():
    from pymoo.util.nds.fast_non_dominated_sort import fast_non_dominated_sort
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    for points in random_sets():
        mine = [f.tolist() for f in non_dominated_sort(points)]
        assert mine == [sorted(f.tolist()) for f in NonDominatedSorting().do(points)]  # moocore's pareto_rank
        assert mine == [sorted(f) for f in fast_non_dominated_sort(points)]  # pymoo's Deb et al. loop
        assert non_dominated(points).tolist() == mine[0]
        flipped = {f"o{k}": "max" for k in range(points.shape[1])}  # maximise all = minimise the negatives
        assert [f.tolist() for f in non_dominated_sort(points, flipped)] == \
            [sorted(f.tolist()) for f in NonDominatedSorting().do(-points)]


# ---------------------------------------------------------------- crowding distance

def test_crowding_distance_by_hand():
    front = [[0, 4], [1, 2], [3, 1], [4, 0]]  # ranges 4 and 4
    # (1, 2): (3 - 0) / 4 on the first objective, (4 - 1) / 4 on the second; (3, 1): 3/4 + 2/4
    assert crowding_distance(front).tolist() == [math.inf, 1.5, 1.25, math.inf]
    assert crowding_distance([[1, 2], [3, 4]]).tolist() == [math.inf, math.inf]
    # an objective with one value for all adds nothing; of equal ends the first gets the infinity
    assert crowding_distance([[1, 7], [2, 7], [2, 7], [3, 7]]).tolist() == [math.inf, 0.5, 0.5, math.inf]
    assert crowding_distance([[1, 1], [1, 1], [1, 1]]).tolist() == [0, 0, 0]


@needs_pymoo
def test_crowding_distance_equals_pymoos_on_every_front_of_random_sets():
    from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function

    pymoo_cd = get_crowding_function("cd")  # NSGA-II's, as pymoo's NSGA2 uses it
    compared = 0
    for points in random_sets(seed=1):
        for front in non_dominated_sort(points):
            F = points[front]
            theirs = pymoo_cd.do(F) * F.shape[1]  # pymoo divides the sum by the number of objectives
            np.testing.assert_allclose(crowding_distance(F), theirs, rtol=1e-12, atol=1e-12)
            compared += len(F) > 2
    assert compared > 30


# ---------------------------------------------------------------- hypervolume

def grid_count(points, reference):
    """Hypervolume of integer points by counting unit cells: the cell with lower corner c (integers,
    c < reference) is dominated when some point p <= c on every objective (all minimised)."""
    points = np.asarray(points)
    ranges = [range(int(lo), int(hi)) for lo, hi in zip(points.min(axis=0), reference)]
    return sum(bool((points <= np.array(cell)).all(axis=1).any()) for cell in itertools.product(*ranges))


def inclusion_exclusion(points, reference):
    """Volume of the union of boxes [p, reference]: the sum over non-empty subsets S of
    (-1)^(|S|+1) times the volume of their intersection [max of S, reference]."""
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(points, size):
            corner = np.max(subset, axis=0)
            total += (-1) ** (size + 1) * np.prod(np.maximum(np.asarray(reference) - corner, 0))
    return total


def test_hypervolume_against_a_hand_count_on_small_grids():
    rng = np.random.default_rng(2)
    for m in (1, 2, 3, 4):
        for _ in range(8):
            points = rng.integers(0, 5, size=(int(rng.integers(1, 8)), m))
            reference = [6] * m
            assert hypervolume(points, reference) == grid_count(points, reference)
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == 6  # a staircase: 3 + 2 + 1 cells


def test_hypervolume_against_inclusion_exclusion_in_four_and_five_dimensions():
    rng = np.random.default_rng(3)
    for m in (4, 5):
        for _ in range(5):
            points = rng.random((int(rng.integers(1, 9)), m))
            assert hypervolume(points, [1.0] * m) == pytest.approx(inclusion_exclusion(points, [1.0] * m), abs=1e-12)


def test_hypervolume_directions_reference_and_points_that_add_nothing():
    # maximise accuracy, minimise latency: the box of (0.8, 10) up to (0, 30) is 0.8 * 20
    assert hypervolume([[0.8, 10]], {"acc": 0.0, "lat": 30.0}, OBJ) == pytest.approx(16.0)
    assert hypervolume([[0.8, 10]], [0.0, 30.0], OBJ) == pytest.approx(16.0)
    # a point no better than the reference on one objective adds nothing; so does a dominated one
    assert hypervolume([[0.8, 10], [0.9, 40], [0.5, 20]], [0.0, 30.0], OBJ) == pytest.approx(16.0)
    assert hypervolume(np.empty((0, 2)), [0.0, 30.0], OBJ) == 0.0


@needs_pymoo
@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_equals_pymoos_hv_indicator(m):
    from pymoo.indicators.hv import HV

    rng = np.random.default_rng(m)
    for k in range(40):
        n = int(rng.integers(1, 80))
        points = rng.random((n, m)) if k % 2 else np.abs(rng.normal(size=(n, m)))
        if k % 4 == 3:  # points on a sphere: every one of them on the front
            points /= np.linalg.norm(points, axis=1, keepdims=True)
        if k % 5 == 4:  # a grid with ties and duplicates
            points = rng.integers(0, 4, size=(n, m)).astype(float)
        reference = points.max(axis=0) + rng.random(m)
        assert hypervolume(points, reference) == pytest.approx(HV(ref_point=reference)(points), rel=1e-12, abs=1e-12)


# ---------------------------------------------------------------- the front of a history

def hand_built_history():
    t = lambda n, acc, lat, **kw: Trial(n, f"a{n}", {"acc": acc, "lat": lat}, **kw)  # noqa: E731
    return History([
        t(0, 0.5, 10.0),
        t(1, 0.6, 12.0),
        Trial(2, "a2", {}, state="failed", error="RuntimeError: out of memory"),
        t(3, 0.9, math.nan),  # complete for acc, but no latency: it cannot be placed
        t(4, 0.7, 8.0, state="pruned"),  # would beat 0 and 1: pruned trials never count
        Step(5, {"acc": 0.99, "lat": 1.0}),  # a step is not a trial
        t(6, 0.6, 12.0),  # equal to trial 1
        t(7, 0.8, 9.0),  # beats 0, 1 and 6
        t(8, 0.95, 20.0),
    ], metric="acc", meta={"objectives": OBJ})


@pytest.mark.parametrize("upto, front", [(0, []), (1, [0]), (2, [0, 1]), (5, [0, 1]), (6, [0, 1]), (7, [0, 1, 6]),
                                         (8, [7]), (None, [7, 8])])
def test_pareto_front_of_a_history_at_several_steps(upto, front):
    h = hand_built_history()
    assert [t.number for t in pareto_front(h, OBJ, upto=upto)] == front
    assert [t.number for t in h.front(upto=upto)] == front  # the objectives the history's meta names


def test_front_with_one_objective_is_the_best_and_its_equals():
    h = hand_built_history()
    assert [t.number for t in h.front({"acc": "max"})] == [8]
    assert [t.number for t in h.front({"lat": "min"})] == [7]
    assert [t.number for t in History(h.records[:7], metric="acc").front()] == [3], "default: {metric: 'max'}"
    assert mo.best_trial(h, {"lat": "min", "acc": "max"}).number == 7, "best by the first objective"
    assert mo.best_trial(History(), OBJ) is None
    with pytest.raises(KeyError, match=r"no complete trial reported \['latency_ms'\]; they report \['acc', 'lat'\]"):
        h.front({"acc": "max", "latency_ms": "min"})


def test_hypervolume_so_far_by_hand():
    # boxes up to (acc 0, lat 30): trial 0 is 0.5 x 20 = 10; trial 1 adds 0.6 x 18 less the overlap
    # 0.5 x 18: 11.8; trial 7 (0.8 x 21 = 16.8) covers both; trial 8 adds 0.95 x 10 less 0.8 x 10: 18.3
    curve = hypervolume_so_far(hand_built_history(), OBJ, {"acc": 0.0, "lat": 30.0})
    assert curve == pytest.approx([10, 11.8, 11.8, 11.8, 11.8, 11.8, 11.8, 16.8, 18.3])
