"""Which instructions of a program matter: dead-code elimination by liveness analysis.

Most instructions of an evolved (or random) program compute something nobody reads: a value
overwritten before it is used, a scalar that never reaches the prediction s1. Removing them
changes nothing the program predicts, so `prune(program)` is the program a student should read,
and the key a search can cache on: two programs with the same pruned form score alike, exactly,
without running either (evaluator.py uses this before FEC, which has to run the program).

Liveness is the compiler textbook's backward analysis. A value is *live* at a point if some
later instruction that matters reads it before anything overwrites it. Walking a function
backwards from what is live at its end:

    an instruction matters  if it writes a live address (or draws random numbers: see below)
    then                    its output is no longer live before it (it is overwritten here),
                            and its inputs are

The program is a loop, so what is live at a function's end depends on the functions after it:

    Setup -> Predict -> [s1 is read] -> Learn -> Predict -> ...   (training)
                        Predict -> [s1 is read] -> Predict -> ...  (validation: no Learn)

and the interpreter writes v0 (the features) and s0 (0 before Predict, the label before Learn)
in between, which kills them. So with L(f) the addresses live at the start of function f:

    live at the end of Predict = {s1} + (L(Learn) - {s0}) + (L(Predict) - {s0, v0})
    live at the end of Learn   = L(Predict) - {s0, v0}
    live at the end of Setup   = L(Predict) - {s0, v0}

Predict's and Learn's sets depend on each other, so the analysis repeats until nothing changes
(the sets only grow, and there are finitely many addresses, so it stops).

Two kinds of instruction are kept whatever they write: the random ones (uniform, gaussian),
because each draw moves the random generator on, and removing one would change every later draw;
and the element setters (v2[1] = 0.5), which keep the rest of their output: they read it too.
"""
from __future__ import annotations

from nasnb.automl_zero.ops import OPS
from nasnb.automl_zero.program import FEATURES, LABEL, PREDICTION, Instruction, Program

# ops whose result depends on the random generator, and ops that change only part of their output
RANDOM_OPS = frozenset(name for name, spec in OPS.items() if "uniform" in name or "gaussian" in name)
PARTIAL_OPS = frozenset({"vector_const_set", "matrix_const_set"})
_HARNESS = frozenset({("s", LABEL), ("v", FEATURES)})  # what the interpreter writes before Predict


def reads(ins: Instruction) -> set:
    """The addresses (type, index) an instruction reads."""
    spec = OPS[ins.op]
    found = {(kind, address) for kind, address in zip(spec.inputs, (ins.in1, ins.in2))}
    if ins.op in PARTIAL_OPS:
        found.add((spec.output, ins.out))
    return found


def writes(ins: Instruction) -> tuple:
    """The address (type, index) an instruction writes."""
    return OPS[ins.op].output, ins.out


def effects(ins: Instruction) -> tuple:
    """(what it writes, what it reads, kept whatever it writes?, overwrites its output whole?),
    remembered per op and addresses: liveness runs on every program a search meets."""
    key = ins[:4]
    found = _EFFECTS.get(key)
    if found is None:
        if len(_EFFECTS) >= 100_000:
            _EFFECTS.clear()
        found = _EFFECTS[key] = (writes(ins), frozenset(reads(ins)), ins.op in RANDOM_OPS, ins.op not in PARTIAL_OPS)
    return found


_EFFECTS: dict = {}


def backward(body, live_at_end: set) -> tuple[set, list]:
    """(what is live at the start of `body`, which of its instructions matter), walking backwards."""
    live, keep = set(live_at_end), [False] * len(body)
    for j in range(len(body) - 1, -1, -1):
        written, read, random, whole = effects(body[j])
        if written in live or random:
            keep[j] = True
            if whole:
                live.discard(written)
            live |= read
    return live, keep


def live_sets(program: Program) -> dict:
    """{function: (live at its start, live at its end, which instructions matter)} at the fixed point."""
    setup, predict, learn = program
    live_predict, live_learn = set(), set()
    while True:
        end_predict = {("s", PREDICTION)} | (live_learn - {("s", LABEL)}) | (live_predict - _HARNESS)
        new_predict, keep_predict = backward(predict, end_predict)
        end_learn = live_predict - _HARNESS
        new_learn, keep_learn = backward(learn, end_learn)
        if new_predict == live_predict and new_learn == live_learn:
            break
        live_predict, live_learn = new_predict | live_predict, new_learn | live_learn
    end_setup = live_predict - _HARNESS
    live_setup, keep_setup = backward(setup, end_setup)
    return {"setup": (live_setup, end_setup, keep_setup), "predict": (live_predict, end_predict, keep_predict),
            "learn": (live_learn, end_learn, keep_learn)}


def useful(program: Program) -> tuple:
    """Per function, a tuple of booleans: does instruction j matter?"""
    sets = live_sets(program)
    return tuple(tuple(sets[name][2]) for name in ("setup", "predict", "learn"))


def prune(program: Program) -> Program:
    """The program without the instructions that do not matter: it predicts exactly the same."""
    return Program(*(tuple(i for i, k in zip(body, keep) if k) for body, keep in zip(program, useful(program))))
