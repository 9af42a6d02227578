"""ProgramSpace: AutoML-Zero's search space of whole learning algorithms (Real et al., ICML 2020).

An "architecture" here is a `Program` (nasnb/automl_zero/program.py): the three component
functions Setup, Predict and Learn, each a list of basic maths instructions over a small memory
of scalars, vectors and matrices. The space is not a list of choices but a *grammar*: which ops
(ops.OPS rows) a program may use, how many addresses of each type there are, and how long each
function may grow. A search over it finds a model *and* its training procedure at once.

The moves are the paper's mutations (Sec. 3, Fig. 2; nasnb/automl_zero/mutations.py), picked
uniformly among those that apply: insert or remove an instruction, alter one argument (an
address or a constant), randomize one instruction or a whole component function.

A random program (`sample`) has `init_sizes` random instructions per function; `empty()` is the
paper's other start, with nothing at all. Crossover (each function taken from either parent) is
ours; the paper only mutates. The space is infinite (constants are real numbers), so it has no
`len`, no enumeration and no fixed `choices` for a controller: search it by evolution or at random.
"""
from __future__ import annotations

from typing import Sequence

import networkx as nx
import numpy as np

from nasnb.automl_zero import mutations
from nasnb.automl_zero.interpreter import MemorySizes
from nasnb.automl_zero.mutations import MUTATIONS, round_constant
from nasnb.automl_zero.ops import ALL_OPS, OPS, SGD_OPS, op_spec
from nasnb.automl_zero.program import (FUNCTIONS, Instruction, Program, constants_ok, format_instruction,
                                       format_program, parse_program)
from nasnb.checks import check_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.base import SpaceValue, as_rng

_KNOWN_LIMIT = 100_000  # validated programs a space remembers


class ProgramSpace(SpaceValue):
    """Programs Setup/Predict/Learn over `scalars` s0.., `vectors` v0.. and `matrices` m0.. of
    `features` entries, made of the ops named in `ops` (default: all of Table S1).

    Args:
        init_sizes: instructions per function (Setup, Predict, Learn) of a random program; the
            authors' linear-regression demo uses (10, 2, 8).
        max_sizes: the longest each function may grow by insertions.
        mutations: the mutation kinds `mutate` picks from (MUTATIONS).
        function_ops: optional, three op lists (Setup, Predict, Learn), each function's own menu
            instead of `ops` for all three, as the authors' code allows (setup_ops, predict_ops,
            learn_ops); e.g. their restricted linear example: (["scalar_const_set"],
            ["vector_inner_product"], ["scalar_diff", "scalar_product", "scalar_vector_product",
            "vector_sum"]). `ops` is then ignored.
    """

    name = "programs"
    cell_names = FUNCTIONS

    def __init__(self, *, scalars: int = 4, vectors: int = 3, matrices: int = 1, features: int = 4,
                 ops: Sequence[str] = ALL_OPS, init_sizes: Sequence[int] = (10, 2, 8),
                 max_sizes: Sequence[int] = (20, 10, 20), mutations: Sequence[str] = MUTATIONS,
                 function_ops: Sequence[Sequence[str]] | None = None):
        # at least s0 (the label) and s1 (the prediction), and v0 (the features)
        self.sizes = MemorySizes(check_int("scalars", scalars, minimum=2, maximum=100, example=4),
                                 check_int("vectors", vectors, minimum=1, maximum=100, example=3),
                                 check_int("matrices", matrices, minimum=0, maximum=100, example=1),
                                 check_int("features", features, minimum=1, maximum=256, example=4))
        self.features = self.sizes.features
        self.readable = {"s": range(scalars), "v": range(vectors), "m": range(matrices)}
        self.writable = {"s": range(1, scalars), "v": range(1, vectors), "m": range(matrices)}  # never s0, v0
        if function_ops is None:
            self.ops = self._check_ops(ops)
            self.function_ops = (self.ops,) * 3
            self._split = False
        else:
            if isinstance(function_ops, str) or not isinstance(function_ops, Sequence) or len(function_ops) != 3:
                raise InvalidTypeError(f"function_ops must be three op lists (Setup, Predict, Learn), got "
                                       f"{short(function_ops)}; e.g. function_ops=(['scalar_const_set'], "
                                       "['vector_inner_product'], ['scalar_diff', 'vector_sum'])")
            self.function_ops = tuple(self._check_ops(menu) for menu in function_ops)
            self.ops = tuple(dict.fromkeys(op for menu in self.function_ops for op in menu))
            self._split = True
        self.max_sizes = self._check_sizes("max_sizes", max_sizes, 0, 1000, (20, 10, 20))
        self.init_sizes = self._check_sizes("init_sizes", init_sizes, 0, 1000, (10, 2, 8))
        for k, f in enumerate(FUNCTIONS):
            if self.init_sizes[k] > self.max_sizes[k]:
                fits = tuple(min(a, b) for a, b in zip(self.init_sizes, self.max_sizes))
                raise InvalidValueError(f"init_sizes={self.init_sizes} exceeds max_sizes={self.max_sizes} for {f}; "
                                        f"e.g. init_sizes={fits}")
        if isinstance(mutations, str) or not isinstance(mutations, Sequence) or not mutations:
            raise InvalidTypeError(f"mutations must be a non-empty list of {list(MUTATIONS)}, got {short(mutations)}; "
                                   "e.g. mutations=('insert', 'remove', 'alter_argument')")
        for m in mutations:
            if m not in MUTATIONS:
                raise InvalidValueError(f"unknown mutation {short(m)} in mutations; choose from {list(MUTATIONS)}")
        self.mutations = tuple(dict.fromkeys(mutations))
        self._known: set = set()  # programs validate() has passed (a cache, bounded by _KNOWN_LIMIT)
        self._texts: dict = {}  # text -> the program format() wrote it for (parse reads it back at once)
        self._changeable: dict = {}  # op -> the fields alter_argument may change (mutations.changeable)

    def _check_ops(self, ops) -> tuple:
        if isinstance(ops, str) or not isinstance(ops, Sequence) or not ops:
            raise InvalidTypeError(f"ops must be a non-empty list of op names, got {short(ops)}; "
                                   "e.g. ops=nasnb.automl_zero.ops.SGD_OPS")
        for name in ops:
            spec = op_spec(name)
            if not all(self.readable[t] for t in spec.inputs) or not self.writable[spec.output]:
                raise InvalidValueError(f"op {name!r} needs a writable {spec.output} address and readable "
                                        f"{spec.inputs or 'nothing'}, which this memory {self.sizes} lacks; "
                                        "drop it from ops or enlarge the memory")
        return tuple(dict.fromkeys(ops))

    @staticmethod
    def _check_sizes(name, sizes, low, high, example) -> tuple:
        if isinstance(sizes, str) or not isinstance(sizes, Sequence) or len(sizes) != 3:
            raise InvalidTypeError(f"{name} must be three ints (Setup, Predict, Learn), got {short(sizes)}; "
                                   f"e.g. {name}={example}")
        return tuple(check_int(f"{name}[{k}]", v, minimum=low, maximum=high, example=example[k])
                     for k, v in enumerate(sizes))

    def __repr__(self) -> str:
        s = self.sizes
        return (f"ProgramSpace(scalars={s.scalars}, vectors={s.vectors}, matrices={s.matrices}, features={s.features}, "
                f"ops={list(self.ops)}, init_sizes={self.init_sizes}, max_sizes={self.max_sizes}, "
                f"mutations={list(self.mutations)}"
                + (f", function_ops={[list(m) for m in self.function_ops]})" if self._split else ")"))

    def __len__(self) -> int:
        raise InvalidValueError("ProgramSpace is infinite: constants are real numbers, so programs cannot be "
                                "counted or listed; sample() them or search with AutoMLZero")

    # ---------------------------------------------------------------- values and text

    def empty(self) -> Program:
        """The empty program (the paper's start "from scratch"): it always predicts 0."""
        return Program((), (), ())

    def validate(self, arch) -> Program:
        """`arch` as a Program whose every instruction this space allows, or an error naming the
        function, the instruction and what is wrong."""
        if type(arch) is Program and arch in self._known:  # searches validate the same programs over and over
            return arch
        if isinstance(arch, str):
            raise InvalidValueError(f"got the string {short(arch)}; read program text with space.parse(text)")
        if not isinstance(arch, Sequence) or len(arch) != 3:
            raise InvalidTypeError(f"a program is Program(setup, predict, learn), three tuples of Instructions; "
                                   f"got {short(arch)}")
        functions = []
        for k, (name, body) in enumerate(zip(FUNCTIONS, arch)):
            if isinstance(body, str) or not isinstance(body, Sequence):
                raise InvalidTypeError(f"{name} must be a tuple of Instructions, got {short(body)}")
            if len(body) > self.max_sizes[k]:
                raise InvalidValueError(f"{name} has {len(body)} instructions, more than max_sizes[{k}]="
                                        f"{self.max_sizes[k]} of {self!r}")
            functions.append(tuple(self._check_instruction(ins, name, j) for j, ins in enumerate(body)))
        return self._valid(Program(*functions))

    def _valid(self, program: Program) -> Program:
        """Note `program` as valid (made by validate, or by a move from valid parts), and return it."""
        if len(self._known) >= _KNOWN_LIMIT:
            self._known.clear()
        self._known.add(program)
        return program

    def __getstate__(self) -> dict:  # a copy for a worker process does not need the caches
        return {**self.__dict__, "_known": set(), "_texts": {}}

    def _check_instruction(self, ins, function: str, index: int) -> Instruction:
        where = f"{function}[{index}]"
        if not isinstance(ins, Sequence) or isinstance(ins, str) or len(ins) not in (4, 5):
            raise InvalidTypeError(f"{where} must be an Instruction(op, in1, in2, out, constants), got {short(ins)}")
        ins = Instruction(*ins[:4], tuple(ins[4]) if len(ins) == 5 else ())
        menu = self.function_ops[FUNCTIONS.index(function)]
        if ins.op not in menu:
            raise InvalidValueError(f"{where}: op {short(ins.op)} is not in this space's ops for {function} "
                                    f"{list(menu)}")
        spec = OPS[ins.op]
        if not all(type(a) is int or isinstance(a, np.integer) for a in ins[1:4]):
            raise InvalidTypeError(f"{where}: addresses must be ints, got {short(ins)}")
        used = dict(zip(("in1", "in2"), spec.inputs))
        for field, kind in used.items():
            if getattr(ins, field) not in self.readable[kind]:
                raise InvalidValueError(f"{where}: {field}={getattr(ins, field)} is not a {kind} address of this "
                                        f"memory (0..{len(self.readable[kind]) - 1}) in {format_instruction(ins)!r}")
        if ins.out not in self.writable[spec.output]:
            r = self.writable[spec.output]
            raise InvalidValueError(f"{where}: out={ins.out} is not a writable {spec.output} address "
                                    f"({r.start}..{r.stop - 1}: s0 and v0 hold the label and the features)")
        if not constants_ok(ins):
            raise InvalidValueError(f"{where}: {ins.op} takes {len(spec.constants)} finite constants "
                                    f"({spec.constants or 'none'}), got {short(ins.constants)}")
        for value, kind in zip(ins.constants, spec.constants):
            if kind == "i" and not (float(value).is_integer() and 0 <= value < self.features):
                raise InvalidValueError(f"{where}: index {value} is not in 0..{self.features - 1}")
            if kind == "g" and value < 0:
                raise InvalidValueError(f"{where}: a standard deviation must be >= 0, got {value}")
        constants = tuple(int(c) if k == "i" else float(c) for c, k in zip(ins.constants, spec.constants))
        in1, in2 = (int(getattr(ins, f)) if f in used else 0 for f in ("in1", "in2"))  # unused fields are 0
        return Instruction(ins.op, in1, in2, int(ins.out), constants)

    def format(self, arch) -> str:
        """The program as code (`def Setup(): ...`), as print(program) shows it."""
        program = self.validate(arch)
        text = format_program(program)
        if len(self._texts) >= _KNOWN_LIMIT:
            self._texts.clear()
        self._texts[text] = program  # a search parses its members' texts back when they become parents
        return text

    def parse(self, text: str) -> Program:
        """The inverse of format()."""
        program = self._texts.get(text) if isinstance(text, str) else None
        return program if program is not None else self.validate(parse_program(text))

    def canonical(self, arch) -> Program:
        """The program itself: equivalent programs are found by FEC (interpreter.fec_hash), not by rewriting."""
        return self.validate(arch)

    # ---------------------------------------------------------------- random programs and moves

    def random_instruction(self, rng=None, function: int | None = None) -> Instruction:
        """An instruction of a uniformly drawn op (of `function`'s menu: 0 Setup, 1 Predict, 2 Learn;
        of all `ops` without it), with uniform addresses and the authors' constant ranges: values
        U(-1, 1), an index uniform, a std U(0, 1)."""
        rng = as_rng(rng)
        menu = self.ops if function is None else self.function_ops[function]
        spec = OPS[menu[int(rng.integers(len(menu)))]]
        addresses = [self.pick(rng, self.readable[t]) for t in spec.inputs] + [0] * (2 - len(spec.inputs))
        out = self.pick(rng, self.writable[spec.output])
        constants = tuple(self.constant(rng, k) for k in spec.constants)
        return Instruction(spec.name, addresses[0], addresses[1], out, constants)

    @staticmethod
    def pick(rng, options) -> int:
        """One of `options` (addresses), uniformly."""
        return options[int(rng.integers(len(options)))]

    def constant(self, rng, kind: str):
        """A fresh constant of `kind` (c a value, i an index, g a std)."""
        if kind == "i":
            return int(rng.integers(self.features))
        return round_constant(rng.uniform(0.0, 1.0) if kind == "g" else rng.uniform(-1.0, 1.0))

    def sample(self, rng=None) -> Program:
        """A random program: `init_sizes` random instructions per function."""
        rng = as_rng(rng)
        return self._valid(Program(*(tuple(self.random_instruction(rng, k) for _ in range(n))
                                     for k, n in enumerate(self.init_sizes))))

    def mutate(self, arch, rng=None) -> Program:
        """One of the paper's mutations, picked uniformly among those that apply (module docstring)."""
        return self.mutate_with_kind(arch, rng)[0]

    def mutate_with_kind(self, arch, rng=None, kind: str | None = None) -> tuple[Program, str]:
        """(child, the mutation applied); `kind` forces one (an error where it cannot apply)."""
        child, kind = mutations.mutate(self, self.validate(arch), as_rng(rng), kind)
        return self._valid(child), kind

    def crossover(self, a, b, rng=None) -> Program:
        """Each component function from `a` or `b` at random (ours: the paper does not recombine)."""
        a, b, rng = self.validate(a), self.validate(b), as_rng(rng)
        return Program(*(fa if take_a else fb for fa, fb, take_a in zip(a, b, rng.random(3) < 0.5)))

    def neighbors(self, arch) -> list[Program]:
        """The programs one discrete edit away: one instruction removed, or one address changed
        (constants are real numbers and have no neighbours)."""
        program, result = self.validate(arch), []
        for k, body in enumerate(program):
            for j, ins in enumerate(body):
                result.append(program._replace(**{FUNCTIONS[k]: body[:j] + body[j + 1:]}))
                spec = OPS[ins.op]
                for field, t, bank in [(f, t, self.readable) for f, t in zip(("in1", "in2"), spec.inputs)] + \
                        [("out", spec.output, self.writable)]:
                    for a in bank[t]:
                        if a != getattr(ins, field):
                            changed = body[:j] + (ins._replace(**{field: a}),) + body[j + 1:]
                            result.append(program._replace(**{FUNCTIONS[k]: changed}))
        return result

    # ---------------------------------------------------------------- what a program is not

    @property
    def choices(self):
        raise InvalidValueError("a ProgramSpace has no fixed list of decisions (programs grow and shrink, "
                                "constants are real): search it with AutoMLZero, RegularizedEvolution or RandomSearch")

    def from_choices(self, values):
        return self.choices

    def to_choices(self, arch):
        return self.choices

    def to_graph(self, arch, cell: str | None = None) -> nx.DiGraph:
        """One function's data flow: a node per value read from outside it (inputs) and per
        instruction result, an edge from each operand labelled with the op; the last value written
        to each address is an output."""
        program = self.validate(arch)
        cell = FUNCTIONS[0] if cell is None else cell
        if cell not in FUNCTIONS:
            raise InvalidValueError(f"cell must be one of {list(FUNCTIONS)} (or None: setup), not {short(cell)}")
        g, latest = nx.DiGraph(space=self.name, cell=cell), {}
        for ins in program[FUNCTIONS.index(cell)]:
            spec = OPS[ins.op]
            for t, a in zip(spec.inputs, (ins.in1, ins.in2)):
                if (t, a) not in latest:
                    latest[(t, a)] = len(g)
                    g.add_node(len(g), label=f"{t}{a}", role="input")
            node = len(g)
            g.add_node(node, label=f"{spec.output}{ins.out}", role="intermediate")
            for t, a in zip(spec.inputs, (ins.in1, ins.in2)):
                g.add_edge(latest[(t, a)], node, op=ins.op)
            latest[(spec.output, ins.out)] = node
        for node in set(latest.values()):
            if g.nodes[node]["role"] == "intermediate":
                g.nodes[node]["role"] = "output"
        return g


# The per-function menus of the authors' linear example (run_integration_test_linear.sh of
# google-research/automl_zero, "Linear example with early stopping"): setup_ops, predict_ops, learn_ops.
LINEAR_REGRESSION_MENUS = (("scalar_const_set",), ("vector_inner_product",),
                           ("scalar_diff", "scalar_product", "scalar_vector_product", "vector_sum"))


def linear_regression_space() -> ProgramSpace:
    """The space of the authors' linear integration test: the six SGD ops, each function its own
    menu (Setup: constants; Predict: a dot product; Learn: difference, product, scalar-vector
    product, vector sum), fixed sizes 5, 1, 4, no matrices, and the demo's three mutations
    (alter an argument, randomize an instruction or a function). From random programs, evolution
    must still find SGD's error, step, gradient and update with their addresses, and tune the rate
    (benchmarks/README.md: with restarts, 6 of 8 seeds within 10 CPU-minutes). `nasnb search
    --space programs-linear --strategy automl_zero` searches it."""
    return ProgramSpace(ops=SGD_OPS, matrices=0, init_sizes=(5, 1, 4), max_sizes=(5, 1, 4),
                        function_ops=LINEAR_REGRESSION_MENUS,
                        mutations=("alter_argument", "randomize_instruction", "randomize_function"))
