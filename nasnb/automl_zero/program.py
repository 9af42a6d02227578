"""AutoML-Zero programs as plain data: instructions, three component functions, readable code.

An `Instruction` is a small immutable record (op, in1, in2, out, constants): the name of a row of
ops.OPS, the memory addresses it reads and writes (ints: which scalar, vector or matrix; the op
says which type each is), and its constants (a learning rate, an index, a mean and a std). A
`Program` is three tuples of them, the paper's component functions (Sec. 3, Fig. 1):

    def Setup():    run once per task, on a zeroed memory (initialise weights, set constants)
    def Predict():  run on every example; v0 holds the features, s1 must hold the prediction
    def Learn():    run after Predict on every *training* example; s0 holds the label

Both are hashable values (tuples), so a program can be a search space's architecture, a history
record (its text) and a dictionary key. `format_program` writes a program as code and
`parse_program` reads that code back, through the table's templates and regular expressions:
the text is *parsed*, never evaluated.
"""
from __future__ import annotations

import functools
import math
import re
from typing import NamedTuple

from nasnb.automl_zero.ops import OPS, op_spec
from nasnb.checks import short
from nasnb.errors import InvalidTypeError, InvalidValueError

FUNCTIONS = ("setup", "predict", "learn")
HEADERS = {"setup": "Setup", "predict": "Predict", "learn": "Learn"}
LABEL, PREDICTION, FEATURES = 0, 1, 0  # s0, s1, v0: the paper's fixed addresses


class Instruction(NamedTuple):
    """One instruction. Unused fields are 0 (addresses) or () (constants), so that two equal
    instructions are equal records: `Instruction("vector_inner_product", 0, 1, 3)` is s3 = dot(v0, v1)."""

    op: str
    in1: int = 0
    in2: int = 0
    out: int = 0
    constants: tuple = ()

    def __str__(self) -> str:
        return format_instruction(self)


class Program(NamedTuple):
    """Setup, Predict and Learn: three tuples of Instructions. `print(program)` shows the code."""

    setup: tuple = ()
    predict: tuple = ()
    learn: tuple = ()

    def __str__(self) -> str:
        return format_program(self)

    @property
    def size(self) -> int:
        """How many instructions the three functions hold together."""
        return len(self.setup) + len(self.predict) + len(self.learn)


def format_constant(value: float) -> str:
    """The shortest text that reads back as exactly `value` (Python's float repr)."""
    return repr(float(value))


def format_instruction(instruction: Instruction) -> str:
    """'s3 = dot(v0, v1)': the op's template with typed addresses and constants filled in."""
    if 0.0 in instruction.constants:  # 0.0 == -0.0: a cache keyed by the record could print the other one
        return _format_instruction(instruction)
    text = _FORMATTED.get(instruction)
    if text is None:
        if len(_FORMATTED) >= 100_000:
            _FORMATTED.clear()
        text = _FORMATTED[instruction] = _format_instruction(instruction)
    return text


_FORMATTED: dict = {}  # instruction -> its text (a search formats the same instructions again and again)


def _format_instruction(instruction: Instruction) -> str:
    spec = op_spec(instruction.op)
    names = {"out": f"{spec.output}{instruction.out}"}
    if len(spec.inputs) >= 1:
        names["in1"] = f"{spec.inputs[0]}{instruction.in1}"
    if len(spec.inputs) == 2:
        names["in2"] = f"{spec.inputs[1]}{instruction.in2}"
    for k, kind in enumerate(spec.constants):
        value = instruction.constants[k]
        names[f"c{k}"] = str(int(value)) if kind == "i" else format_constant(value)
    return spec.template.format(**names)


def format_program(program: Program, indent: str = "  ") -> str:
    """The program as code: one `def` per component function, one instruction per line."""
    lines = []
    for name, body in zip(FUNCTIONS, program):
        lines.append(f"def {HEADERS[name]}():")
        if body:
            lines.extend(f"{indent}{format_instruction(i)}" for i in body)
        else:
            lines.append(f"{indent}pass")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- parsing

_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


@functools.lru_cache(maxsize=None)
def _patterns() -> tuple:
    """(op name, compiled regex, groups) for every op: its template with the fields made groups."""
    patterns = []
    for spec in OPS.values():
        groups, regex, pos = [], "", 0
        for field in re.finditer(r"\{(\w+)\}", spec.template):
            regex += re.escape(spec.template[pos:field.start()]).replace(r"\ ", r"\s*")
            key = field.group(1)
            if key in ("out", "in1", "in2"):
                kind = spec.output if key == "out" else spec.inputs[int(key[-1]) - 1]
                regex += kind + r"(\d+)"
            else:
                regex += r"(\d+)" if spec.constants[int(key[1:])] == "i" else _NUMBER
            groups.append(key)
            pos = field.end()
        regex += re.escape(spec.template[pos:]).replace(r"\ ", r"\s*")
        patterns.append((spec.name, re.compile(regex), tuple(groups)))
    return tuple(patterns)


def parse_instruction(text: str) -> Instruction:
    """The Instruction `text` writes ('s3 = dot(v0, v1)'), or an InvalidValueError."""
    return _parse_statement(text.strip())


@functools.lru_cache(maxsize=65536)  # a search reads the same lines again and again
def _parse_statement(statement: str) -> Instruction:
    for name, pattern, groups in _patterns():
        match = pattern.fullmatch(statement)
        if match is None:
            continue
        fields = dict(zip(groups, match.groups()))
        spec = OPS[name]
        constants = tuple(int(fields[f"c{k}"]) if kind == "i" else float(fields[f"c{k}"])
                          for k, kind in enumerate(spec.constants))
        return Instruction(name, int(fields.get("in1", 0)), int(fields.get("in2", 0)), int(fields["out"]), constants)
    raise InvalidValueError(f"cannot read the instruction {short(statement)}; instructions look like "
                            "'s3 = dot(v0, v1)', 's2 = 0.01', 'v2 = s3 * v0' (see nasnb.automl_zero.ops.OPS)")


_HEADER = re.compile(r"def\s+(\w+)\s*\(\s*\)\s*:")


def parse_program(text: str) -> Program:
    """The inverse of `format_program`. Statements are separated by new lines or ';' and `pass`
    is an empty function, so the one-line form 'def Setup(): s2 = 0.01 def Predict(): ...' reads too."""
    if not isinstance(text, str):
        raise InvalidTypeError(f"a program is read from a string like 'def Setup(): pass ...', got {short(text)} "
                               f"({type(text).__name__}); write a program as text with format_program(program)")
    headers = list(_HEADER.finditer(text))
    found = [h.group(1) for h in headers]
    wanted = [HEADERS[f] for f in FUNCTIONS]
    example = "'def Setup():\\n  s2 = 0.01\\ndef Predict():\\n  s1 = dot(v0, v1)\\ndef Learn():\\n  pass'"
    before = text[:headers[0].start()] if headers else text
    if found != wanted or before.strip():
        raise InvalidValueError(f"a program is the three functions {wanted} in this order, each once, and nothing "
                                f"before them; found {found or 'no def'} in {short(text)}; e.g. {example}")
    bodies = []
    for k, header in enumerate(headers):
        end = headers[k + 1].start() if k + 1 < len(headers) else len(text)
        statements = [s.strip() for s in re.split(r"[;\n]", text[header.end():end])]
        bodies.append(tuple(parse_instruction(s) for s in statements if s and s != "pass"))
    return Program(*bodies)


def constants_ok(instruction: Instruction) -> bool:
    """True when the instruction has one finite constant per constant its op takes."""
    spec = OPS.get(instruction.op)
    return (spec is not None and isinstance(instruction.constants, tuple)
            and len(instruction.constants) == len(spec.constants)
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
                    for c in instruction.constants))
