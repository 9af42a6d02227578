"""Several objectives at once: Pareto dominance, non-dominated fronts, crowding and hypervolume.

A deployed network is judged on more than accuracy: its latency on a phone, its size, its FLOPs.
With several objectives there is usually no single best architecture, only a *Pareto front*: the
architectures that no other beats on every objective at once. This module holds the maths every
multi-objective search and view shares, in numpy only:

    objectives = parse_objectives({"val_accuracy": "max", "latency_ms": "min"})
    dominates(a, b, objectives)           # a is at least as good everywhere and better somewhere
    non_dominated_sort(points)            # the fronts F1, F2, ... (Deb et al. 2002, "fast" sort)
    crowding_distance(front_points)       # how isolated each point of a front is (NSGA-II's diversity)
    pareto_front(history, objectives)     # the non-dominated complete trials of a search, at any step
    hypervolume(points, reference, objectives)   # the volume a front dominates, up to a reference

Objectives are written as a dict, name -> "max" or "min", in order of importance: the first one is
what `best()` ranks by. A dict because it reads as it is said ("maximise accuracy, minimise
latency"), the direction is a word and not a sign to remember, a name cannot appear twice, and it
is plain JSON (it goes into a search's settings and history as it is).

Internally every objective is *minimised*: a maximised column is negated (`minimised`). The
functions that take `points` without `objectives` follow the same convention as the literature's
code (pymoo): every column is minimised.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

from nasnb.checks import short
from nasnb.errors import InvalidTypeError, InvalidValueError, UnknownNameError

DIRECTIONS = ("max", "min")
EXAMPLE = "objectives={'val_accuracy': 'max', 'latency_ms': 'min'}"
MAX_SORTED = 20_000  # distinct points non_dominated_sort accepts: its matrices then take 0.8 GB


@dataclasses.dataclass(frozen=True)
class Objective:
    """One metric and whether it is maximised ("max") or minimised ("min")."""

    name: str
    direction: str = "max"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise InvalidTypeError(f"an objective's name is a non-empty metric name, got {short(self.name)}; "
                                   f"e.g. Objective('val_accuracy', 'max')")
        if self.direction not in DIRECTIONS:
            raise InvalidValueError(f"objective {self.name!r} has direction {short(self.direction)}; it must be "
                                    f"'max' or 'min', e.g. Objective({self.name!r}, 'min')")

    @property
    def sign(self) -> float:
        """-1 for "max", +1 for "min": value * sign is minimised."""
        return -1.0 if self.direction == "max" else 1.0


def parse_objectives(objectives, name: str = "objectives") -> tuple[Objective, ...]:
    """Objectives from a dict {metric: "max" | "min"} (or Objectives, already parsed), in order."""
    if isinstance(objectives, Objective):
        return (objectives,)
    if isinstance(objectives, Mapping):
        if not objectives:
            raise InvalidValueError(f"{name} is empty; give at least one, e.g. {EXAMPLE}")
        parsed = []
        for metric, direction in objectives.items():
            if not isinstance(metric, str) or not metric:
                raise InvalidTypeError(f"{name} maps metric names to 'max' or 'min'; the key {short(metric)} is not "
                                       f"a name; e.g. {EXAMPLE}")
            if direction not in DIRECTIONS:
                raise InvalidValueError(f"{name}[{metric!r}] is {short(direction)}; it must be 'max' or 'min', "
                                        f"e.g. {EXAMPLE}")
            parsed.append(Objective(metric, direction))
        return tuple(parsed)
    if isinstance(objectives, (list, tuple)) and objectives and all(isinstance(o, Objective) for o in objectives):
        names = [o.name for o in objectives]
        if len(set(names)) < len(names):
            raise InvalidValueError(f"{name} names a metric twice: {names}; e.g. {EXAMPLE}")
        return tuple(objectives)
    hint = ""
    if isinstance(objectives, (list, tuple)) and all(isinstance(o, str) for o in objectives):
        as_dict = {o.lstrip("-+"): "min" if o.startswith("-") else "max" for o in objectives}
        hint = f" (did you mean {name}={as_dict!r}?)"
    raise InvalidTypeError(f"{name} must be a dict of metric name -> 'max' or 'min', got {short(objectives)}"
                           f"{hint}; e.g. {EXAMPLE}")


def as_dict(objectives) -> dict:
    """{name: direction}: the JSON form (settings, history meta)."""
    return {o.name: o.direction for o in parse_objectives(objectives)}


def _points(points, name: str = "points") -> np.ndarray:
    """`points` as a finite float array of shape (n, m), or an error naming the argument."""
    try:
        array = np.array(points, dtype=float)
    except (TypeError, ValueError):
        raise InvalidTypeError(f"{name} must be a list of rows of numbers, one row per point, got "
                               f"{short(points)}; e.g. {name}=[[0.9, 12.0], [0.8, 5.0]]") from None
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, 0)
    if array.ndim != 2:
        raise InvalidValueError(f"{name} must be 2-D (one row per point, one column per objective), got shape "
                                f"{array.shape}; e.g. {name}=[[0.9, 12.0], [0.8, 5.0]]")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise InvalidValueError(f"{name} row {bad[0]} is {array[bad[0]].tolist()}: every value must be finite "
                                "(drop failed or NaN trials first, as pareto_front does)")
    return array


def minimised(points, objectives=None, name: str = "points") -> np.ndarray:
    """`points` (n, m) with every maximised column negated: the form in which all are minimised."""
    array = _points(points, name)
    if objectives is None:
        return array
    objectives = parse_objectives(objectives)
    if array.shape[0] and array.shape[1] != len(objectives):
        raise InvalidValueError(f"{name} has {array.shape[1]} columns and there are {len(objectives)} objectives "
                                f"({[o.name for o in objectives]}): one column per objective")
    return array * np.array([o.sign for o in objectives]) if array.size else array


def dominates(a, b, objectives=None) -> bool:
    """True when `a` is at least as good as `b` on every objective and better on one (Pareto dominance)."""
    pair = minimised([a, b], objectives, name="[a, b]")
    return bool((pair[0] <= pair[1]).all() and (pair[0] < pair[1]).any())


def non_dominated_sort(points, objectives=None) -> list[np.ndarray]:
    """The fronts F1, F2, ...: arrays of row indices (ascending), best front first.

    Deb, Pratap, Agarwal & Meyarivan, "A Fast and Elitist Multiobjective Genetic Algorithm:
    NSGA-II", IEEE TEC 2002, section III-A. For each point p: n_p, how many points dominate it, and
    S_p, the points it dominates. F1 is every point with n_p = 0; removing F1 lowers the n_q of what
    it dominates, and the points that reach 0 form F2; and so on. O(m n^2) time; the domination
    matrices take 2 n^2 bytes (one numpy comparison per objective: 50 MB for 5,000 points), for the
    n distinct points (equal points dominate neither, so they share a front and are sorted once).
    More than MAX_SORTED distinct points is refused; `non_dominated` finds the first front of any number.
    """
    P = minimised(points, objectives)
    if len(P) == 0:
        return []
    P, inverse = np.unique(P, axis=0, return_inverse=True)  # equal points share a front: sort each once
    inverse = inverse.reshape(-1)
    n = len(P)
    if n > MAX_SORTED:
        raise InvalidValueError(f"points has {n:,} distinct rows: sorting them all needs two {n:,} x {n:,} matrices "
                                f"({2 * n * n / 1e9:.1f} GB); for the first front alone use non_dominated(points)")
    no_worse = np.ones((n, n), dtype=bool)  # no_worse[p, q]: p <= q on every objective
    better = np.zeros((n, n), dtype=bool)  # better[p, q]: p < q on some objective
    for column in P.T:
        no_worse &= column[:, None] <= column[None, :]
        better |= column[:, None] < column[None, :]
    dominated_by = no_worse & better  # [p, q]: p dominates q
    count = dominated_by.sum(axis=0)  # n_q
    fronts = []
    front = np.flatnonzero(count == 0)
    while front.size:
        fronts.append(np.flatnonzero(np.isin(inverse, front)))  # back to the rows of `points`
        count[front] = -1  # ranked
        count -= dominated_by[front].sum(axis=0)  # each q loses one per dominator in this front
        front = np.flatnonzero(count == 0)
    return fronts


def non_dominated(points, objectives=None) -> np.ndarray:
    """Indices (ascending) of the first front only, without the n^2 matrix: O(n log n + n |F1| m).

    In lexicographic order a point can only be dominated by one before it, and if it is dominated
    at all, then by a point of the front found so far (dominance is transitive)."""
    P = minimised(points, objectives)
    front: list[int] = []
    for i in np.lexsort(P.T[::-1]):
        if front:
            F = P[front]
            if ((F <= P[i]).all(axis=1) & (F < P[i]).any(axis=1)).any():
                continue
        front.append(int(i))
    return np.array(sorted(front), dtype=int)


def crowding_distance(front_points) -> np.ndarray:
    """NSGA-II's crowding distance of each point of one front (Deb et al. 2002, section III-B).

    Per objective, sort the front; each point gets the gap between its two neighbours divided by
    the objective's range (max - min); the two ends get infinity. Its distance is the sum over the
    objectives: a large one means few points nearby, which selection prefers, so the front stays
    spread out. With 2 points or fewer every distance is infinite.

    Ties: the sort is stable (equal values keep their input order, so of equal ends the first gets
    the infinity), and an objective whose values are all equal adds 0 for every point. These are
    pymoo's rules; pymoo divides the sum by the number of objectives, which ranks alike. Maximised
    or minimised makes no difference to a distance.
    """
    F = _points(front_points, "front_points")
    n = len(F)
    if n <= 2:
        return np.full(n, math.inf)
    distance = np.zeros(n)
    for column in F.T:
        order = np.argsort(column, kind="mergesort")
        values = column[order]
        span = values[-1] - values[0]
        if span == 0:
            continue
        gaps = np.empty(n)
        gaps[0] = gaps[-1] = math.inf
        gaps[1:-1] = (values[2:] - values[:-2]) / span
        distance[order] += gaps
    return distance


def _hv2(P: np.ndarray, ref: np.ndarray) -> float:
    """2-D hypervolume by a sweep: in order of the first objective, each point adds the slab
    between its second objective and the best one before it (dominated points add nothing)."""
    P = P[np.lexsort((P[:, 1], P[:, 0]))]
    best_before = np.concatenate([[ref[1]], np.minimum.accumulate(P[:-1, 1])])
    return float(((ref[0] - P[:, 0]) * np.maximum(best_before - P[:, 1], 0.0)).sum())


def _hv(P: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of points that all strictly beat `ref`, by slicing the last objective.

    HSO (While, Hingston, Barone & Huband, IEEE TEC 2006): sort by the last objective; between the
    k-th and the (k+1)-th value lies a slab whose cross-section is the (m-1)-D hypervolume of the
    first k points. Recurse down to the 2-D sweep."""
    m = P.shape[1]
    if m == 1:
        return float(ref[0] - P[:, 0].min())
    if m == 2:
        return _hv2(P, ref)
    P = P[np.argsort(P[:, -1], kind="mergesort")]
    volume = 0.0
    for k in range(len(P)):
        top = P[k + 1, -1] if k + 1 < len(P) else ref[-1]
        if top > P[k, -1]:
            below = P[: k + 1, :-1]  # the 2-D sweep needs no filtering; higher dimensions are faster with it
            volume += (top - P[k, -1]) * _hv(below if m == 3 else below[non_dominated(below)], ref[:-1])
    return volume


def hypervolume(points, reference, objectives=None) -> float:
    """The volume of objective space that `points` dominate and that dominates `reference`.

    The hypervolume indicator (Zitzler & Thiele 1998): one number for a whole front, larger is
    better, and it only grows when a new point joins the front. `reference` is the worst corner
    that counts (a dict {name: value} or a sequence, in the objectives' units, e.g. accuracy 0 and
    the latency budget). Points not strictly better than it on every objective add nothing.

    Exact. 2-D: a sweep, O(n log n) (10,000 points in milliseconds). m-D: slicing (HSO), about
    O(n^(m-1) log n): measured here 0.02 s for 300 points on a 3-D front, 0.16 s for 1,000; 0.25 s
    for 100 points in 4-D, 0.3 s for 30 in 5-D. Not for large fronts in many dimensions.
    """
    parsed = None if objectives is None else parse_objectives(objectives)
    if isinstance(reference, Mapping):
        if parsed is None or set(reference) != {o.name for o in parsed}:
            expected = "objectives" if parsed is None else sorted(o.name for o in parsed)
            raise InvalidValueError(f"reference={short(reference)} must name each objective once ({expected}); "
                                    f"e.g. reference={{'val_accuracy': 0.0, 'latency_ms': 50.0}}")
        reference = [reference[o.name] for o in parsed]
    ref = minimised([reference], parsed, name="reference")[0]
    P = minimised(points, parsed)
    if P.size == 0:
        return 0.0
    if P.shape[1] != ref.size:
        raise InvalidValueError(f"points have {P.shape[1]} objectives and reference={short(reference)} has "
                                f"{ref.size}: give one reference value per objective")
    P = P[(P < ref).all(axis=1)]
    if len(P) == 0:
        return 0.0
    return float(_hv(P if P.shape[1] <= 3 else P[non_dominated(P)], ref))  # dominated points add nothing


# ---------------------------------------------------------------- a search's history


def _complete(history, objectives, upto):
    """(trials, raw values (n, m)): the complete trials among the first `upto` records with a finite
    value for every objective."""
    objectives = parse_objectives(objectives)
    trials, rows = [], []
    for record in history[:upto]:
        if getattr(record, "kind", None) != "trial":
            continue
        row = [record.score(o.name) for o in objectives]  # None unless complete and finite
        if all(v is not None for v in row):
            trials.append(record)
            rows.append(row)
    complete = [r for r in history[:upto] if getattr(r, "kind", None) == "trial" and r.ok]
    if not trials and complete:
        reported = {name for r in complete for name in r.metrics}
        missing = [o.name for o in objectives if o.name not in reported]
        if missing:
            raise UnknownNameError(f"no complete trial reported {missing}; they report {sorted(reported)}")
    return trials, np.array(rows, dtype=float).reshape(len(rows), len(objectives))


def pareto_front(history, objectives, upto: int | None = None) -> list:
    """The non-dominated trials among the first `upto` records (all by default), in trial order.

    Only complete trials with a finite value for every objective take part: failed, pruned and
    NaN trials never count (neither on the front nor as a dominator). Trials with equal values
    are all on the front."""
    trials, values = _complete(history, objectives, upto)
    return [trials[i] for i in non_dominated(values, objectives)] if trials else []


def best_trial(history, objectives, upto: int | None = None):
    """The complete trial with the best finite value of the *first* objective (the earliest of equal
    ones) among the first `upto` records, or None: what a multi-objective search's `best()` is."""
    first = parse_objectives(objectives)[0]
    trials, values = _complete(history, [first], upto)
    if not trials:
        return None
    return trials[int(np.argmin(values[:, 0] * first.sign))]  # argmin: the first of equal ones


def hypervolume_so_far(history, objectives, reference) -> list[float]:
    """The anytime curve of a multi-objective search: after record i, the hypervolume of the front
    of records 0..i (0.0 until a trial beats the reference)."""
    objectives = parse_objectives(objectives)
    signs = np.array([o.sign for o in objectives])
    curve, front, volume = [], np.empty((0, len(objectives))), 0.0  # front: minimised values
    for record in history:
        row = [record.score(o.name) for o in objectives] if getattr(record, "kind", None) == "trial" else [None]
        if all(v is not None for v in row):
            point = np.array(row) * signs
            if not (front <= point).all(axis=1).any():  # neither dominated by nor equal to a front point
                beaten = (point <= front).all(axis=1) & (point < front).any(axis=1)
                front = np.vstack([front[~beaten], point])
                volume = hypervolume(front * signs, reference, objectives)
        curve.append(volume)
    return curve
