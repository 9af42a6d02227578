"""AutoML-Zero: the interpreter against hand computations and an independent numpy SGD, the label
rule, NaN handling, FEC, every mutation kind, text round trips, reproducibility, resume, errors."""
import math
import pathlib
import re

import numpy as np
import pytest
import torch

from nasnb.automl_zero.evaluator import ProgramEvaluator
from nasnb.automl_zero.interpreter import evaluate, execute, fec_hash, task_fitness
from nasnb.automl_zero.liveness import RANDOM_OPS, prune, useful
from nasnb.automl_zero.ops import ALL_OPS, OPS, SGD_OPS
from nasnb.automl_zero.program import Instruction, Program, format_program, parse_program
from nasnb.automl_zero.tasks import Tasks, make_tasks
from nasnb.errors import InvalidTypeError, InvalidValueError, ResumeMismatchError, UnknownNameError
from nasnb.spaces.programs import MUTATIONS, ProgramSpace
from nasnb.spaces.toy import ToySpace
from nasnb.strategies.automl_zero import AutoMLZero, fec_hits

SGD = """def Setup():
  s2 = 0.1
def Predict():
  s1 = dot(v0, v1)
def Learn():
  s3 = s0 - s1
  s3 = s2 * s3
  v2 = s3 * v0
  v1 = v1 + v2"""
FULL = ProgramSpace(ops=ALL_OPS, scalars=5, vectors=4, matrices=2)
SMALL = ProgramSpace(ops=SGD_OPS, matrices=0, init_sizes=(2, 1, 4), max_sizes=(4, 2, 6))


def hand_tasks(x_train, y_train, x_valid, y_valid) -> Tasks:
    """One task from plain lists (examples x features)."""
    return Tasks(*(np.asarray(a, dtype=float)[None] for a in (x_train, y_train, x_valid, y_valid)))


def squash(rms):
    return 1 - 2 / math.pi * math.atan(rms)


# ----------------------------------------------------------------------------- the interpreter


def test_sgd_program_equals_numpy_sgd_and_reaches_low_loss():
    tasks = make_tasks("linear", num_tasks=3, features=4, num_train=100, num_valid=50, seed=5)
    train_pred, valid_pred = execute(SMALL.parse(SGD), tasks, SMALL.sizes)
    for b in range(3):  # the same algorithm written out in numpy, one task at a time
        w, seen = np.zeros(4), []
        for x, y in zip(tasks.x_train[b], tasks.y_train[b]):
            seen.append(w @ x)
            w = w + 0.1 * (y - w @ x) * x
        np.testing.assert_allclose(train_pred[b], seen, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(valid_pred[b], tasks.x_valid[b] @ w, rtol=1e-12, atol=1e-12)
    metrics = evaluate(SMALL.parse(SGD), tasks, SMALL.sizes)
    rms = np.sqrt(((valid_pred - tasks.y_valid) ** 2).mean(axis=1))
    assert metrics["rms_error"] < 1e-2 and metrics["failed_tasks"] == 0
    assert metrics["fitness"] == pytest.approx(np.mean([squash(r) for r in rms]), abs=1e-12)
    assert metrics["fitness"] > 0.99 > evaluate(SMALL.empty(), tasks, SMALL.sizes)["fitness"]


def test_a_few_instructions_by_hand():
    program = FULL.parse("""def Setup():
  s2 = 0.5
  v1[1] = 2.0
def Predict():
  s3 = dot(v0, v1)
  m1 = outer(v0, v1)
  v2 = dot(m1, v0)
  s4 = norm(v2)
  s1 = s3 * s2
  s1 = s1 + s4
def Learn():
  v1 = s0 * v0""")
    tasks = hand_tasks([[1, 3, 0, 0], [0, 1, 0, 0]], [10, 0], [[2, 0, 0, 0]], [0])
    train, valid = execute(program, tasks, FULL.sizes)
    # example 1: v1 = (0, 2, 0, 0): s3 = 6, m1 = x v1^T, v2 = m1 x = x (v1 . x) = 6 x, |v2| = 6 sqrt(10)
    assert train[0, 0] == pytest.approx(0.5 * 6 + 6 * math.sqrt(10))
    # Learn set v1 = 10 * x1 = (10, 30, 0, 0); example 2, x = (0, 1, 0, 0): s3 = 30, |v2| = 30
    assert train[0, 1] == pytest.approx(15 + 30)
    # Learn set v1 = 0 * x2 = 0: validation predicts 0
    assert valid[0, 0] == 0.0


def test_linear_tasks_are_linear_and_nonlinear_ones_are_not():
    def residual(tasks, b):  # least squares of the labels on the inputs: 0 for a linear function
        x, y = tasks.x_train[b], tasks.y_train[b]
        coef = np.linalg.lstsq(x, y, rcond=None)[0]
        return np.abs(x @ coef - y).max() / np.abs(y).max()

    linear = make_tasks("linear", num_tasks=2, features=3, num_train=40, num_valid=2, seed=1)
    nonlinear = make_tasks("nonlinear", num_tasks=2, features=3, num_train=40, num_valid=2, seed=1)
    assert all(residual(linear, b) < 1e-10 for b in range(2))
    assert all(residual(nonlinear, b) > 1e-2 for b in range(2))
    again = make_tasks("nonlinear", num_tasks=2, features=3, num_train=40, num_valid=2, seed=1)
    np.testing.assert_array_equal(again.y_valid, nonlinear.y_valid)
    with pytest.raises(InvalidValueError, match="unknown task kind"):
        make_tasks("quadratic")


def test_label_is_invisible_to_predict():
    reads_label = FULL.parse("def Setup(): pass\ndef Predict(): s1 = s0 + s0\ndef Learn(): pass")
    tasks = make_tasks(num_tasks=2, features=4, num_train=20, num_valid=10, seed=0)
    train, valid = execute(reads_label, tasks, FULL.sizes)
    assert not train.any() and not valid.any()  # s0 is 0 whenever Predict runs
    # Learn may keep the label: Predict then sees the previous example's label, never the current one
    keeps = FULL.parse("def Setup(): pass\ndef Predict(): s1 = s2 + s3\ndef Learn(): s2 = s0 + s3")
    train, _ = execute(keeps, tasks, FULL.sizes)
    np.testing.assert_array_equal(train[:, 0], 0.0)
    np.testing.assert_array_equal(train[:, 1:], tasks.y_train[:, :-1])


@pytest.mark.parametrize("setup, predict", [("s2 = -1.0", "s1 = log(s2)"), ("s2 = 0.0", "s1 = 1 / s2"),
                                            ("s2 = 1000.0", "s1 = exp(s2)")])
def test_nan_or_inf_predictions_get_the_worst_fitness(setup, predict):
    program = FULL.parse(f"def Setup(): {setup}\ndef Predict(): {predict}\ndef Learn(): pass")
    evaluator = ProgramEvaluator(FULL, num_tasks=3, num_train=5, num_valid=5)
    metrics = evaluator(program)
    assert metrics["fitness"] == 0.0 and metrics["failed_tasks"] == 3 and math.isinf(metrics["rms_error"])
    search = AutoMLZero(FULL, evaluator, population_size=2, init=program, seed=0)
    trial = search.step()
    assert trial.state == "complete" and trial.metrics["fitness"] == 0.0  # a worst trial, not a failed one


def test_task_fitness_zeroes_only_the_broken_task():
    predictions = np.array([[1.0, 2.0], [np.nan, 0.0]])
    labels = np.array([[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(task_fitness(predictions, labels), [squash(math.sqrt(2.0)), 0.0])


# ----------------------------------------------------------------------------- FEC


def test_fec_reuses_the_fitness_of_an_equivalent_program():
    a = SMALL.parse(SGD)
    dead_and_swapped = "s3 = s2 * s2\n  s3 = s0 - s1\n  s3 = s3 * s2"  # a dead instruction, a product reordered
    b = SMALL.parse(SGD.replace("s3 = s2 * s3", dead_and_swapped))
    c = SMALL.parse(SGD.replace("0.1", "0.2"))
    assert a != b and SMALL.format(a) != SMALL.format(b)
    evaluator = ProgramEvaluator(SMALL, num_tasks=3, num_train=30, num_valid=10)
    first = evaluator(a)
    assert (evaluator.evaluations, evaluator.fec_hits) == (1, 0)
    assert evaluator(b) == first and (evaluator.evaluations, evaluator.fec_hits) == (1, 1)
    assert evaluator(c)["fec_hash"] != first["fec_hash"] and (evaluator.evaluations, evaluator.fec_hits) == (2, 1)
    no_fec = ProgramEvaluator(SMALL, num_tasks=3, num_train=30, num_valid=10, fec=False)
    assert no_fec(b)["fitness"] == pytest.approx(first["fitness"], abs=1e-12)  # truly equivalent
    assert "fec_hash" not in no_fec(a)
    probe = evaluator.probe
    assert fec_hash(a, probe, SMALL.sizes) == fec_hash(b, probe, SMALL.sizes) != fec_hash(c, probe, SMALL.sizes)
    evaluator.forget()
    assert (evaluator.evaluations, evaluator.fec_hits, evaluator.cache) == (0, 0, {})


def test_one_task_at_a_time_equals_all_tasks_at_once():
    # the paper's interpreter runs one task at a time; ours runs a batch: the same numbers per task
    space = ProgramSpace(ops=[o for o in ALL_OPS if o not in RANDOM_OPS], scalars=5, vectors=4, matrices=2,
                         init_sizes=(5, 4, 5))
    tasks = make_tasks("nonlinear", num_tasks=3, features=4, num_train=6, num_valid=4, seed=2)
    rng = np.random.default_rng(1)
    for _ in range(40):
        program = space.sample(rng)
        together = execute(program, tasks, space.sizes)
        for b in range(3):
            alone = execute(program, Tasks(*(a[b:b + 1] for a in tasks)), space.sizes)
            for x, y in zip(together, alone):
                np.testing.assert_allclose(x[b:b + 1], y, rtol=1e-12, atol=1e-300, equal_nan=True)


# ----------------------------------------------------------------------------- dead code


def test_prune_removes_exactly_the_dead_instructions():
    dead = SGD.replace("s2 = 0.1", "s3 = 0.5\n  s2 = 0.1")  # s3 is overwritten in Learn before anyone reads it
    dead = dead.replace("s1 = dot(v0, v1)", "s1 = dot(v0, v1)\n  s3 = dot(v0, v2)")  # ditto
    dead = dead.replace("v2 = s3 * v0", "v2[1] = 0.5\n  v2 = s3 * v0") + "\n  v2 = v1 + v1"  # v2 overwritten
    program = FULL.parse(dead)
    assert program.size == 6 + 4
    assert prune(program) == FULL.parse(SGD)
    assert useful(program) == ((False, True), (True, False), (True, True, False, True, True, False))
    # live only across the loop: s2 set in Learn is read by the next Learn; s3 by the next Predict
    loop = SMALL.parse("def Setup(): pass\ndef Predict(): s1 = s3 * s1\ndef Learn(): s3 = s2 - s0; s2 = s0 * s0")
    assert prune(loop) == loop
    assert prune(SMALL.parse("def Setup(): s2 = 0.3\ndef Predict(): pass\ndef Learn(): s3 = s2 * s0")) == SMALL.empty()
    random_kept = FULL.parse("def Setup(): s2 = uniform(-1.0, 1.0)\ndef Predict(): pass\ndef Learn(): pass")
    assert prune(random_kept) == random_kept  # a draw moves the generator on: never removed


def test_pruned_programs_predict_bit_for_bit_the_same():
    space = ProgramSpace(ops=ALL_OPS, scalars=5, vectors=4, matrices=2, init_sizes=(6, 6, 6))
    tasks = make_tasks("linear", num_tasks=3, features=4, num_train=8, num_valid=5, seed=1)
    rng, removed = np.random.default_rng(0), 0
    for _ in range(60):
        program = space.sample(rng)
        pruned = prune(program)
        removed += program.size - pruned.size
        for x, y in zip(execute(program, tasks, space.sizes, seed=3), execute(pruned, tasks, space.sizes, seed=3)):
            assert np.array_equal(x, y, equal_nan=True)
    assert removed > 60 * 18 / 2  # random programs are mostly dead code


def test_evaluator_looks_pruned_programs_up_without_running_them():
    evaluator = ProgramEvaluator(SMALL, num_tasks=3, num_train=30, num_valid=10)
    first = evaluator(SMALL.parse(SGD))
    again = evaluator(SMALL.parse(SGD + "\n  s3 = s1 * s1"))  # one dead instruction more
    assert again == first and (evaluator.evaluations, evaluator.fec_hits, evaluator.exact_hits) == (1, 1, 1)
    whole = evaluate(SMALL.parse(SGD + "\n  s3 = s1 * s1"), evaluator.tasks, SMALL.sizes)
    assert whole["fitness"] == first["fitness"]  # the unpruned program scores exactly alike


# ----------------------------------------------------------------------------- mutations


def _one_removed(short, long) -> bool:
    return any(long[:j] + long[j + 1:] == short for j in range(len(long)))


@pytest.mark.parametrize("kind", MUTATIONS)
def test_each_mutation_changes_what_it_should(kind):
    space = ProgramSpace(ops=ALL_OPS, matrices=2)
    parent = space.sample(3)
    for seed in range(25):
        child, done = space.mutate_with_kind(parent, np.random.default_rng(seed), kind=kind)
        assert done == kind and space.validate(child) == child and space.parse(space.format(child)) == child
        changed = [k for k in range(3) if child[k] != parent[k]]
        assert len(changed) == 1, (kind, seed, changed)
        old, new = parent[changed[0]], child[changed[0]]
        if kind == "insert":
            assert _one_removed(old, new)
        elif kind == "remove":
            assert _one_removed(new, old)
        elif kind == "randomize_function":
            assert len(new) == len(old)
        else:
            diff = [j for j in range(len(old)) if old[j] != new[j]]
            assert len(new) == len(old) and len(diff) == 1
            if kind == "alter_argument":
                a, b = old[diff[0]], new[diff[0]]
                assert a.op == b.op
                fields = [f for f in ("in1", "in2", "out") if getattr(a, f) != getattr(b, f)]
                fields += [k for k, (x, y) in enumerate(zip(a.constants, b.constants)) if x != y]
                assert len(fields) == 1


def test_mutate_picks_only_what_applies():
    space = ProgramSpace(ops=SGD_OPS, init_sizes=(0, 0, 0), max_sizes=(1, 1, 1))
    kinds = {space.mutate_with_kind(space.empty(), seed)[1] for seed in range(20)}
    assert kinds == {"insert"}  # nothing to remove or alter in an empty program
    with pytest.raises(InvalidValueError, match="cannot change"):
        space.mutate_with_kind(space.empty(), 0, kind="remove")
    fixed = ProgramSpace(ops=SGD_OPS, mutations=("remove",))
    with pytest.raises(InvalidValueError, match="allow 'insert'"):
        fixed.mutate(fixed.empty(), 0)
    full = space.parse("def Setup(): s2 = 0.5\ndef Predict(): s1 = dot(v0, v1)\ndef Learn(): v1 = v1 + v2")
    assert all(space.mutate_with_kind(full, seed)[1] != "insert" for seed in range(20))  # at max_sizes


def test_crossover_takes_each_function_from_a_parent():
    a, b = FULL.sample(1), FULL.sample(2)
    for seed in range(10):
        child = FULL.crossover(a, b, seed)
        assert all(child[k] in (a[k], b[k]) for k in range(3))


# ----------------------------------------------------------------------------- text


def test_every_op_formats_and_parses_back():
    rng = np.random.default_rng(0)
    for name in ALL_OPS:
        space = ProgramSpace(ops=[name], scalars=5, vectors=4, matrices=2, features=3)
        for _ in range(5):
            ins = space.random_instruction(rng)
            program = Program((), (ins,), ())
            assert space.parse(space.format(program)) == program, format_program(program)
    assert len(ALL_OPS) == 64 and sorted(s.paper for s in OPS.values()) == list(range(1, 65))


def test_program_text_round_trip_and_one_line_form():
    program = SMALL.parse(SGD)
    assert str(program) == SGD and SMALL.format(program) == SGD
    one_line = ("def Setup(): s2 = 0.1 def Predict(): s1 = dot(v0, v1) "
                "def Learn(): s3 = s0 - s1; s3 = s2 * s3; v2 = s3 * v0; v1 = v1 + v2")
    assert parse_program(one_line) == program
    assert program.learn[0] == Instruction("scalar_diff", 0, 1, 3) and program.size == 6
    for seed in range(20):
        p = FULL.sample(seed)
        assert FULL.parse(FULL.format(p)) == p
    assert FULL.format(FULL.empty()) == "def Setup():\n  pass\ndef Predict():\n  pass\ndef Learn():\n  pass"


@pytest.mark.parametrize("text, match", [
    ("def Setup(): s2 = foo(s1)\ndef Predict(): pass\ndef Learn(): pass", "cannot read"),
    ("def Predict(): pass\ndef Setup(): pass\ndef Learn(): pass", "in this order"),
    ("x = 1\ndef Setup(): pass\ndef Predict(): pass\ndef Learn(): pass", "nothing before"),
    ("def Setup(): s0 = 0.5\ndef Predict(): pass\ndef Learn(): pass", "label and the features"),
    ("def Setup(): v0 = v1 + v2\ndef Predict(): pass\ndef Learn(): pass", "writable"),
    ("def Setup(): s9 = 0.5\ndef Predict(): pass\ndef Learn(): pass", "writable s address"),
    ("def Setup(): s2 = dot(v0, v7)\ndef Predict(): pass\ndef Learn(): pass", "in2=7"),
    ("def Setup(): v1[9] = 0.5\ndef Predict(): pass\ndef Learn(): pass", "index 9"),
    ("def Setup(): s2 = sin(s1)\ndef Predict(): pass\ndef Learn(): pass", "not in this space's ops"),
])
def test_bad_programs_are_refused_with_the_reason(text, match):
    with pytest.raises(InvalidValueError, match=match):
        SMALL.parse(text) if "sin" in text else ProgramSpace(ops=ALL_OPS).parse(text)


def test_space_errors_name_the_argument():
    with pytest.raises(UnknownNameError, match="unknown AutoML-Zero op 'relu'"):
        ProgramSpace(ops=["relu"])
    with pytest.raises(InvalidValueError, match="matrix"):
        ProgramSpace(ops=["matrix_sum"], matrices=0)
    with pytest.raises(InvalidValueError, match="init_sizes"):
        ProgramSpace(init_sizes=(5, 5, 5), max_sizes=(4, 4, 4))
    with pytest.raises(InvalidValueError, match="unknown mutation"):
        ProgramSpace(mutations=["swap"])
    with pytest.raises(InvalidValueError, match="infinite"):
        len(SMALL)
    with pytest.raises(InvalidValueError, match="no fixed list of decisions"):
        SMALL.choices
    with pytest.raises(InvalidTypeError, match="ProgramSpace"):
        ProgramEvaluator(ToySpace())
    with pytest.raises(InvalidValueError, match="space.parse"):
        SMALL.validate(SGD)


def test_to_graph_is_the_data_flow():
    g = SMALL.to_graph(SMALL.parse(SGD), cell="learn")
    labels = sorted(g.nodes[v]["label"] for v in g if g.nodes[v]["role"] == "input")
    assert labels == ["s0", "s1", "s2", "v0", "v1"]
    assert g.number_of_nodes() == 9 and g.number_of_edges() == 8
    assert sorted(g.nodes[v]["label"] for v in g if g.nodes[v]["role"] == "output") == ["s3", "v1", "v2"]


# ----------------------------------------------------------------------------- the search


def small_search(seed=0, **kwargs):
    evaluator = ProgramEvaluator(SMALL, num_tasks=2, num_train=10, num_valid=5, fec_train=3, fec_valid=3)
    return AutoMLZero(SMALL, evaluator, **{"population_size": 8, "tournament_size": 3, **kwargs, "seed": seed})


def record(history):
    return [(t.number, t.arch, t.metrics, t.info) for t in history]


def test_same_seed_same_history_and_fec_counted():
    a, b, c = small_search(3), small_search(3), small_search(4)
    for s in (a, b, c):
        s.run(60, progress=False)
    assert record(a.history) == record(b.history) != record(c.history)
    kinds = {t.info.get("mutation") for t in a.history}
    assert kinds - {None} <= set(MUTATIONS) | {"copy"} and len(kinds) > 2
    assert fec_hits(a.history) == a.evaluator.fec_hits > 0
    assert a.evaluator.evaluations + a.evaluator.fec_hits == 60
    assert all(SMALL.parse(t.arch) for t in a.history)  # every trial holds its program as code


def test_resume_equals_uninterrupted_run(tmp_path):
    whole = small_search(7)
    whole.run(50, progress=False)
    part = small_search(7)
    part.run(23, checkpoint=tmp_path / "az", progress=False)
    torch.load(tmp_path / "az" / "state.pt", weights_only=True)
    resumed = small_search(7)  # a fresh evaluator: its FEC cache is rebuilt from the history
    resumed.run(50, checkpoint=tmp_path / "az", progress=False)
    assert record(resumed.history) == record(whole.history)
    resumed.reset()
    assert resumed.evaluator.cache == {} and len(resumed.history) == 0


def test_evolution_tunes_a_slow_learning_rate():
    space = ProgramSpace(ops=SGD_OPS, matrices=0, mutations=("alter_argument",))
    start = space.parse(SGD.replace("0.1", "0.01"))  # learns too slowly in 60 examples
    evaluator = ProgramEvaluator(space, num_tasks=3, num_train=60, num_valid=10)
    search = AutoMLZero(space, evaluator, population_size=10, tournament_size=3, init=start, seed=0)
    search.run(200, progress=False)
    assert search.history[0].metrics["fitness"] < 0.7
    assert search.best().metrics["fitness"] > 0.95
    assert 0.03 < space.parse(search.best().arch).setup[0].constants[0] < 0.5  # a working learning rate
    assert search.state()["best_program"].startswith("def Setup():")


def test_empty_start_and_strategy_errors():
    search = small_search(0, init="empty")
    search.run(12, progress=False)
    assert search.history[0].arch == SMALL.format(SMALL.empty())
    assert search.history[0].info["init"] == "empty"
    with pytest.raises(InvalidValueError, match="init must be"):
        small_search(init="scratch")
    with pytest.raises(InvalidValueError, match="not a program of this space"):
        small_search(init="def Setup(): s2 = sin(s1)\ndef Predict(): pass\ndef Learn(): pass")
    with pytest.raises(InvalidValueError, match="tournament_size"):
        small_search(tournament_size=0)
    with pytest.raises(InvalidValueError, match="mutate_prob"):
        small_search(mutate_prob=1.5)
    with pytest.raises(InvalidValueError, match="init='empty'"):
        AutoMLZero(ToySpace(), ToySpace().evaluate, init="empty", metric="val_accuracy")


def test_on_toy_space_it_is_aging_evolution():
    space = ToySpace(length=4, options=3)
    search = AutoMLZero(space, space.evaluate, population_size=10, tournament_size=3, metric="val_accuracy", seed=0)
    search.run(300, progress=False)
    assert search.best().metrics["val_accuracy"] == 1.0


def test_no_eval_or_exec_in_the_sources():
    root = pathlib.Path(__file__).resolve().parents[1] / "nasnb"
    files = [*(root / "automl_zero").glob("*.py"), root / "spaces" / "programs.py",
             root / "strategies" / "automl_zero.py"]
    assert len(files) >= 8
    for path in files:
        text = path.read_text()
        assert not re.search(r"(?<![\w.])(eval|exec|compile|__import__)\s*\(", text), path


# ----------------------------------------------------------------------------- the faster interpreter and caches


def test_compiled_interpreter_equals_the_reference_bit_for_bit():
    from nasnb.automl_zero import compiled

    space = ProgramSpace(ops=ALL_OPS, scalars=5, vectors=4, matrices=2, init_sizes=(6, 4, 6))
    tasks = make_tasks("nonlinear", num_tasks=3, features=4, num_train=8, num_valid=5, seed=1)
    broken = 0
    for seed in range(100):  # random programs of every op: overflows, 0/0, log of negatives included
        program = space.sample(seed)
        reference, fast = execute(program, tasks, space.sizes, seed=seed), compiled.execute(program, tasks,
                                                                                            space.sizes, seed=seed)
        for x, y in zip(reference, fast):
            assert x.shape == y.shape and np.array_equal(x, y, equal_nan=True), format_program(program)
            assert np.array_equal(np.signbit(x), np.signbit(y))  # -0.0 stays -0.0
        broken += not np.isfinite(reference[1]).all()
        assert compiled.execute(program, tasks, space.sizes, seed=seed, train=False)[0] is None
    assert 5 < broken < 95  # both kinds of program were compared
    sgd = SMALL.parse(SGD)  # and on a learner whose numbers matter: the hand SGD against numpy's, as above
    _, valid = compiled.execute(sgd, tasks, SMALL.sizes)
    np.testing.assert_array_equal(valid, execute(sgd, tasks, SMALL.sizes)[1])


def test_fast_and_reference_evaluators_give_the_same_search():
    def run(fast):
        evaluator = ProgramEvaluator(SMALL, num_tasks=2, num_train=10, num_valid=5, fec_train=3, fec_valid=3, fast=fast)
        search = AutoMLZero(SMALL, evaluator, population_size=8, tournament_size=3, seed=5)
        search.run(60, progress=False)
        return record(search.history), evaluator.evaluations
    fast, reference = run(True), run(False)
    assert fast == reference and fast[1] > 5
    with pytest.raises(InvalidTypeError, match="fast"):
        ProgramEvaluator(SMALL, fast="yes")


def test_cached_text_and_oldest_member_are_what_the_uncached_code_gives():
    from nasnb.automl_zero.program import _format_instruction
    from nasnb.strategies.evolution import member_to_remove

    negative_zero = Instruction("scalar_const_set", out=2, constants=(-0.0,))
    assert str(Instruction("scalar_const_set", out=2, constants=(0.0,))) == "s2 = 0.0"
    assert str(negative_zero) == "s2 = -0.0"  # 0.0 == -0.0: not confused by the cache
    rng = np.random.default_rng(0)
    for _ in range(50):
        ins = FULL.random_instruction(rng)
        assert str(ins) == str(ins) == _format_instruction(ins)
        program = FULL.sample(rng)
        assert FULL.parse(FULL.format(program)) == program == parse_program(FULL.format(program))
    search = small_search(2)
    search.run(40, progress=False)
    members = list(search.population)
    assert search.to_remove(members) == member_to_remove(members, search.fitness, True) == min(members)


MENUS = (("scalar_const_set",), ("vector_inner_product",),
         ("scalar_diff", "scalar_product", "scalar_vector_product", "vector_sum"))


def test_function_ops_give_each_function_its_own_menu():
    space = ProgramSpace(ops=SGD_OPS, matrices=0, init_sizes=(5, 1, 4), max_sizes=(6, 2, 5), function_ops=MENUS)
    assert space.ops == ("scalar_const_set", "vector_inner_product", "scalar_diff", "scalar_product",
                         "scalar_vector_product", "vector_sum")
    rng = np.random.default_rng(3)
    programs = [space.sample(rng) for _ in range(20)]
    for _ in range(300):  # every mutation kind, on and on
        programs.append(space.mutate(programs[int(rng.integers(len(programs)))], rng))
    used = [set(), set(), set()]
    for program in programs:
        for k, body in enumerate(program):
            used[k] |= {i.op for i in body}
    assert used == [set(m) for m in MENUS]  # each menu fully used, and nothing outside it
    assert space.parse(SGD) == SMALL.parse(SGD)  # SGD fits these menus
    with pytest.raises(InvalidValueError, match="not in this space's ops for predict"):
        space.parse(SGD.replace("s1 = dot(v0, v1)", "s1 = s0 - s2"))
    with pytest.raises(InvalidTypeError, match="function_ops must be three op lists"):
        ProgramSpace(function_ops=MENUS[:2])
    with pytest.raises(UnknownNameError, match="unknown AutoML-Zero op"):
        ProgramSpace(function_ops=(("scalar_const_set",), ("dot",), ("vector_sum",)))
    assert "function_ops" in repr(space) and "function_ops" not in repr(SMALL)  # old checkpoints still resume


# ----------------------------------------------------------------------------- restarts


def experiments(history):
    """(first trial, last trial) of each experiment, read from the trials' info alone."""
    spans, numbers = [], [t.info["experiment"] for t in history]
    for n, k in enumerate(numbers):
        if not spans or k != numbers[spans[-1][0]]:
            spans.append([n, n])
        spans[-1][1] = n
    return [tuple(s) for s in spans]


def test_restarts_begin_where_the_stall_rule_says():
    patience = 40
    search = small_search(5, population_size=8, restart_after=patience, restart_delta=0.0)
    search.run(400, progress=False)
    spans = experiments(search.history)
    assert len(spans) >= 3 and [k for k, _ in enumerate(spans)] == [search.history[a].info["experiment"]
                                                                       for a, _ in spans]
    fitness = np.array([t.metrics["fitness"] for t in search.history])
    for a, b in spans[:-1]:  # every finished experiment: its best last rose exactly `patience` trials before its end
        best = np.maximum.accumulate(fitness[a:b + 1])
        rises = np.flatnonzero(np.diff(best) > 0) + 1  # where the experiment's best went up (0: its first trial)
        last_rise = a + (rises[-1] if len(rises) else 0)
        assert b - last_rise == patience
        gaps = np.diff(np.concatenate([[0], rises, [b - a]]))
        assert gaps[:-1].max(initial=0) < patience  # and never stalled that long before
    for a, _ in spans:  # each experiment starts afresh: P random programs first
        assert [t.info["kind"] for t in search.history[a:a + 8]] == ["random"] * 8
    last_start = spans[-1][0]
    assert search.experiment == len(spans) - 1 and search.experiment_start == last_start
    assert search.population and min(search.population) >= last_start


def test_without_restarts_nothing_changes():
    a, b = small_search(3), small_search(3, restart_after=10_000)
    a.run(60, progress=False)
    b.run(60, progress=False)
    assert [(t.arch, t.metrics) for t in a.history] == [(t.arch, t.metrics) for t in b.history]
    assert "experiment" not in a.history[0].info and b.history[0].info["experiment"] == 0
    assert "restart_after" not in a.settings() and b.settings()["restart_after"] == 10_000


def test_population_view_replays_the_restarts():
    from nasnb.viz.search import population_data
    search = small_search(5, population_size=8, restart_after=40, restart_delta=0.0)
    search.run(300, progress=False)
    assert search.experiment >= 2
    data = population_data(search.history)
    assert data["population"] == search.population
    start = search.experiment_start
    assert all(data["removed_at"][n] is not None for n in range(start))  # nobody of an older experiment lives
    ended = [a for a, _ in experiments(search.history)][1:]
    assert all(data["removed_at"][a - 1] == a for a in ended if search.history[a - 1].ok)


def test_resume_with_restarts_equals_uninterrupted_run(tmp_path):
    whole = small_search(5, population_size=8, restart_after=40, restart_delta=0.0)
    whole.run(260, progress=False)
    assert whole.experiment >= 2
    part = small_search(5, population_size=8, restart_after=40, restart_delta=0.0)
    part.run(97, checkpoint=tmp_path / "az", progress=False)
    resumed = small_search(5, population_size=8, restart_after=40, restart_delta=0.0)
    resumed.run(260, checkpoint=tmp_path / "az", progress=False)
    assert record(resumed.history) == record(whole.history)
    assert (resumed.experiment, resumed.population) == (whole.experiment, whole.population)
    with pytest.raises(ResumeMismatchError, match="restart_after"):
        small_search(5, population_size=8, restart_after=41, restart_delta=0.0).run(300, checkpoint=tmp_path / "az",
                                                                                   progress=False)
    state = whole.state_dict()
    again = small_search(5, population_size=8, restart_after=40, restart_delta=0.0)
    again.load_state_dict(state)
    again.run(320, progress=False)
    whole.run(320, progress=False)
    assert record(again.history) == record(whole.history)


def test_restart_arguments_are_checked():
    with pytest.raises(InvalidValueError, match="restart_after"):
        small_search(restart_after=0)
    with pytest.raises(InvalidValueError, match="restart_delta"):
        small_search(restart_after=10, restart_delta=-0.1)
