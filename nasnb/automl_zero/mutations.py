"""The paper's mutations of AutoML-Zero programs (Sec. 3, Fig. 2), on a ProgramSpace's memory.

    insert                  a random instruction at a random place of one function
    remove                  one instruction of one function
    alter_argument          one argument of one instruction: an input or output address, or a
                            constant (its sign flipped, with probability FLIP_PROB, else scaled
                            by a log-uniform factor in [0.1, 10]: the authors' code, too, mutates
                            constants on a log scale or by a flip)
    randomize_instruction   one instruction replaced by a random one (its op too)
    randomize_function      every instruction of one function replaced, the length kept

Each changes what it says and nothing else: a changed argument takes another value than it had,
a redrawn instruction or function differs from the old one. `space` is the ProgramSpace whose
addresses, sizes and random instructions these use (nasnb/spaces/programs.py calls them).
"""
from __future__ import annotations

import numpy as np

from nasnb.automl_zero.ops import OPS
from nasnb.automl_zero.program import FUNCTIONS, Instruction, Program
from nasnb.checks import short
from nasnb.errors import InvalidValueError

MUTATIONS = ("insert", "remove", "alter_argument", "randomize_instruction", "randomize_function")
FLIP_PROB = 0.25  # alter_argument on a constant: flip its sign (else scale it); our choice
_RETRIES = 100  # redraws until a randomised instruction differs from the one it replaces


def round_constant(value: float) -> float:
    """Constants keep 4 significant digits: they print short and read back exactly."""
    return float(f"{value:.4g}")


def mutate(space, program: Program, rng: np.random.Generator, kind: str | None = None) -> tuple[Program, str]:
    """(child, the mutation applied) of a valid `program`: a kind drawn uniformly among the
    space's `mutations` that apply, then a function uniformly among those it can change; `kind`
    forces one (an error where it cannot apply)."""
    kinds = [m for m in space.mutations if applicable(space, program, m)] if kind is None else [kind]
    if kind is not None and (kind not in MUTATIONS or not applicable(space, program, kind)):
        raise InvalidValueError(f"mutation {short(kind)} cannot change this program (kinds: {list(MUTATIONS)}; "
                                "insert needs room, the others an instruction)")
    if not kinds:
        raise InvalidValueError(f"no mutation of {list(space.mutations)} applies to this program "
                                f"({program.size} instructions); allow 'insert' in mutations")
    kind = kinds[int(rng.integers(len(kinds)))]
    where = applicable(space, program, kind)
    k = where[int(rng.integers(len(where)))]
    body = list(program[k])
    if kind == "insert":
        body.insert(int(rng.integers(len(body) + 1)), space.random_instruction(rng, k))
    elif kind == "remove":
        del body[int(rng.integers(len(body)))]
    elif kind == "randomize_function":
        new = body
        for _ in range(_RETRIES):
            new = [space.random_instruction(rng, k) for _ in body]
            if new != body:
                break
        body = new
    else:
        candidates = [j for j, i in enumerate(body) if kind == "randomize_instruction" or changeable(space, i)]
        j = candidates[int(rng.integers(len(candidates)))]
        body[j] = alter(space, body[j], rng) if kind == "alter_argument" else redraw(space, body[j], rng, k)
    return program._replace(**{FUNCTIONS[k]: tuple(body)}), kind


def changeable(space, ins: Instruction) -> list[str]:
    """The fields of `ins` that alter_argument can change (an address with one option cannot)."""
    cache = getattr(space, "_changeable", None)  # a ProgramSpace's: op -> fields (they depend on the op alone)
    if cache is None:
        return _changeable(space, ins)
    fields = cache.get(ins.op)
    if fields is None:
        fields = cache[ins.op] = tuple(_changeable(space, ins))
    return fields


def _changeable(space, ins: Instruction) -> list[str]:
    spec = OPS[ins.op]
    fields = [f for f, t in zip(("in1", "in2"), spec.inputs) if len(space.readable[t]) > 1]
    fields += ["out"] if len(space.writable[spec.output]) > 1 else []
    return fields + [f"c{k}" for k, kind in enumerate(spec.constants) if kind != "i" or space.features > 1]


def applicable(space, program: Program, kind: str) -> list[int]:
    """The functions (0 setup, 1 predict, 2 learn) mutation `kind` can change."""
    if kind == "insert":
        return [k for k, f in enumerate(program) if len(f) < space.max_sizes[k]]
    if kind == "alter_argument":
        return [k for k, f in enumerate(program) if any(changeable(space, i) for i in f)]
    return [k for k, f in enumerate(program) if f]


def redraw(space, ins: Instruction, rng, function: int | None = None) -> Instruction:
    """A random instruction (of `function`'s menu) other than `ins` (after _RETRIES equal draws, the last one)."""
    for _ in range(_RETRIES):
        new = space.random_instruction(rng, function)
        if new != ins:
            return new
    return new


def alter(space, ins: Instruction, rng) -> Instruction:
    """`ins` with one changeable field changed (to another value than it had)."""
    fields = changeable(space, ins)
    field = fields[int(rng.integers(len(fields)))]
    spec = OPS[ins.op]
    if field in ("in1", "in2", "out"):
        kind = spec.output if field == "out" else spec.inputs[int(field[-1]) - 1]
        options = [a for a in (space.writable if field == "out" else space.readable)[kind] if a != getattr(ins, field)]
        return ins._replace(**{field: space.pick(rng, options)})
    k = int(field[1:])
    constants, kind, value = list(ins.constants), spec.constants[k], ins.constants[k]
    if kind == "i":
        constants[k] = space.pick(rng, [i for i in range(space.features) if i != value])
    elif value == 0.0:  # nothing to scale or flip: a fresh draw
        constants[k] = space.constant(rng, kind) or 0.5
    elif kind != "g" and rng.random() < FLIP_PROB:
        constants[k] = -value
    else:
        new = round_constant(value * 10.0 ** rng.uniform(-1.0, 1.0))
        constants[k] = new if new != value else round_constant(value * 2.0)
    return ins._replace(constants=tuple(constants))

