"""Property-based tests of the spaces' public API: whatever comes in, a NasnbError or a right answer.

Hypothesis throws malformed input at NB201Space, DartsSpace and ToySpace: random text, valid
strings with characters dropped, added or swapped ('|', '~', '+', non-ASCII digits, huge indices,
unicode op names), very long strings, genotypes with junk in every field, and random arguments for
the constructors, `build`, rngs, rules and cells. Every call must either raise a `NasnbError` whose
message is non-empty and short, or return a correct result: what parses formats back to a string
that parses to the same arch, an argument is accepted exactly when a plain rule written here says
it is valid, and format() fails exactly when parse() fails on the same arch written out.

A run tries the sum of the `max_examples` below (each test's `budget`).
"""
from __future__ import annotations

import numbers
import re

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasnb.errors import InvalidTypeError, InvalidValueError, NasnbError
from nasnb.spaces.base import as_rng
from nasnb.spaces.darts import CANDIDATE_OPS, GENOTYPES, DartsSpace, Genotype
from nasnb.spaces.nb201 import NB201Space
from nasnb.spaces.ops import DARTS_OPS
from nasnb.spaces.toy import ToySpace
from nasnb.strategies.reinforce import one_thread  # a tiny forward pass: a second thread only waits

NB201 = NB201Space()
DARTS = DartsSpace()
TOY = ToySpace(length=4, options=3)
SPACES = {"nb201": NB201, "darts": DARTS, "toy": TOY}
MAX_MESSAGE = 500  # characters: an error names the problem, it does not echo the input back


def budget(examples: int):
    """Hypothesis settings for a test that tries `examples` inputs (no deadline: CI machines vary)."""
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def outcome(call, *args, **kwargs):
    """(result, None) or (None, the NasnbError's class); any other exception fails the test."""
    try:
        return call(*args, **kwargs), None
    except NasnbError as err:
        message = str(err)
        assert 0 < len(message) <= MAX_MESSAGE, f"{type(err).__name__} of {len(message)} chars: {message[:300]}"
        return None, type(err)


def is_int(value) -> bool:
    """The test's own rule for "an int": numpy ints yes, bools and floats no."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# ----------------------------------------------------------------------------- what junk looks like

NON_ASCII_DIGITS = ["\u00b2", "\u0663", "\uff10", "\u0660", "\u2460", "\U0001d7ce"]  # ², ٣, ０, ٠, ①, 𝟎
PIECES = ["|", "~", "+", "-", "||", "~~", "++", "|+|", "~0", "~1", "~2", "~3", "~-1", "~01", "~" + "9" * 40,
          " ", "\t", "\x00", "none", "nor_conv_3x3", "nоne", "skip_cónnect", "op0", "op3", "Genotype(", ")",
          "(", "[", "]", ",", "'", "True", "0x" + "f" * 20, "-1", "1e3", "2.0", "range(2, 6)", "*", "=",
          "__import__('os')", "sep_conv_3x3", "conv_9x9", *NON_ASCII_DIGITS]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 9), st.integers(-10**30, 10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(sorted(DARTS_OPS) + ["conv_9x9", "sép_conv_3x3", ""]))
junk = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner)),
                    max_leaves=10)


@st.composite
def mutated(draw, valid_texts):
    """A valid string with 1-4 random edits: a piece inserted, a run deleted, a character replaced."""
    text = draw(valid_texts)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.one_of(st.sampled_from(PIECES), st.text(min_size=1, max_size=3)))
        edit = draw(st.sampled_from(["insert", "delete", "replace"]))
        if edit == "insert":
            text = text[:at] + piece + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 8)):]
        else:
            text = text[:at] + piece + text[at + 1:]
    return text


# what may stand where an index or an op name was: unicode digits (str.isdigit() is True for them)
index_pieces = st.one_of(st.sampled_from(NON_ASCII_DIGITS + ["", "-1", "01", "00", "3", "9" * 40, "0.0", "True",
                                                             "None", "0x1f", "'0'", "[0]", "1_0", " 0"]),
                         st.text(alphabet=st.characters(whitelist_categories=("Nd",)), min_size=1, max_size=3))
name_pieces = st.one_of(st.sampled_from(["n\u043ene", "skip_c\u00f3nnect", "NONE", "none ", "", "op\u0663",
                                         "nor_conv_3x3\u200b", "sep_conv_3x3", "op0", "none"]), st.text(max_size=8))


@st.composite
def edited(draw, valid_texts, pattern: str, pieces):
    """A valid string with one match of `pattern` (its group 1: an index or an op name) replaced."""
    text = draw(valid_texts)
    start, end = draw(st.sampled_from([m.span(1) for m in re.finditer(pattern, text)]))
    return text[:start] + draw(pieces) + text[end:]


def long_strings(valid_texts):
    """Up to 2 MB: a piece repeated 1,000 to 50,000 times, alone or after a valid string."""
    return st.builds(lambda prefix, piece, times: prefix + piece * times,
                     st.one_of(st.just(""), valid_texts), st.sampled_from(PIECES), st.integers(1_000, 50_000))


nb201_archs = st.tuples(*[st.sampled_from(NB201.OPS)] * 6)
nb201_texts = nb201_archs.map(NB201.format)
toy_archs = st.tuples(*[st.sampled_from(TOY.OPS)] * TOY.length)
toy_texts = toy_archs.map(TOY.format)
darts_genotypes = st.one_of(st.sampled_from(sorted(GENOTYPES.values(), key=repr)),
                            st.integers(0, 2**32).map(DARTS.sample))
darts_texts = darts_genotypes.map(DARTS.format)
TEXTS = {"nb201": nb201_texts, "darts": darts_texts, "toy": toy_texts}
INDEX_PATTERNS = {"nb201": r"~(\d+)\|", "darts": r"(\d+)", "toy": r"op(\d+)"}
NAME_PATTERNS = {"nb201": r"\|([^|~+]+)~", "darts": r"'([^']+)'", "toy": r"(op\d+)"}


def any_text(space: str):
    valid = TEXTS[space]
    return st.one_of(st.text(max_size=60), mutated(valid), long_strings(valid),
                     edited(valid, INDEX_PATTERNS[space], index_pieces),
                     edited(valid, NAME_PATTERNS[space], name_pieces))


# ----------------------------------------------------------------------------- strings


def check_parse(space, text: str):
    """parse(text) is a NasnbError or an arch that format() writes back and parse() reads again."""
    arch, error = outcome(space.parse, text)
    if error is None:
        assert space.validate(arch) == arch
        assert space.parse(space.format(arch)) == arch
    return arch


@budget(400)
@given(any_text("nb201"))
def test_nb201_parse_of_junk(text):
    arch = check_parse(NB201, text)
    if arch is not None:  # accepted text is the formatted string, up to whitespace and leading zeros
        assert re.sub(r"~0+(?=\d)", "~", text.strip()) == NB201.format(arch)


@budget(300)
@given(any_text("toy"))
def test_toy_parse_of_junk(text):
    arch = check_parse(TOY, text)
    if arch is not None:
        assert text.strip() == TOY.format(arch)


@budget(200)
@given(any_text("darts"))
def test_darts_parse_of_junk(text):
    check_parse(DARTS, text)


@budget(60)
@given(st.sampled_from(sorted(SPACES)), junk.filter(lambda value: not isinstance(value, str)))
def test_parse_of_a_non_string_is_a_type_error(name, value):
    _, error = outcome(SPACES[name].parse, value)
    assert error is not None and issubclass(error, InvalidTypeError)


# ----------------------------------------------------------------------------- format fails as parse does

op_names = st.one_of(st.sampled_from(NB201.OPS + TOY.OPS), st.sampled_from(CANDIDATE_OPS),
                     st.text(alphabet=st.characters(blacklist_characters="|~+-", blacklist_categories=("Z", "C")),
                             min_size=1, max_size=8),
                     st.integers(-2, 5), st.none())


def nb201_written_out(ops) -> str:
    """The community string of any number of op names, without checking them (1, 2, then the rest)."""
    tokens = [f"{op}~{j}" for op, j in zip(ops, [0, 0, 1, 0, 1, 2] + [3] * len(ops))]
    return "+".join("|" + "|".join(group) + "|" for group in (tokens[:1], tokens[1:3], tokens[3:]))


@budget(300)
@given(st.lists(op_names, min_size=0, max_size=9))
def test_nb201_format_fails_as_parse_does(ops):
    _, format_error = outcome(NB201.format, tuple(ops))
    _, parse_error = outcome(NB201.parse, nb201_written_out(ops))
    assert format_error == parse_error, (format_error, parse_error)


@budget(200)
@given(st.lists(op_names, min_size=0, max_size=7))
def test_toy_format_fails_as_parse_does(ops):
    _, format_error = outcome(TOY.format, tuple(ops))
    _, parse_error = outcome(TOY.parse, "-".join(map(str, ops)))
    assert format_error == parse_error, (format_error, parse_error)


indices = st.one_of(st.integers(-2, 9), st.booleans(), st.integers(-10**25, 10**25), st.floats(), st.text(max_size=2))
edges = st.one_of(st.tuples(op_names, indices), st.lists(st.tuples(op_names, indices), min_size=2, max_size=2), junk)
cells = st.one_of(st.lists(edges, max_size=12), st.lists(st.lists(st.tuples(op_names, indices), min_size=2,
                                                                    max_size=2), max_size=5), junk)
concats = st.one_of(st.lists(st.integers(-1, 8), max_size=6), st.lists(indices, max_size=4), junk)
raw_genotypes = st.tuples(cells, concats, cells, concats)


@budget(250)
@given(raw_genotypes)
def test_darts_format_fails_as_parse_does(fields):
    """A genotype's fields written as Python literals parse exactly when format() takes them."""
    written, format_error = outcome(DARTS.format, fields)
    text = "Genotype(normal={!r}, normal_concat={!r}, reduce={!r}, reduce_concat={!r})".format(*fields)
    parsed, parse_error = outcome(DARTS.parse, text)
    assert format_error == parse_error, (format_error, parse_error)
    if parsed is not None:
        assert parsed == DARTS.validate(fields) and DARTS.format(parsed) == written


# ----------------------------------------------------------------------------- every method validates


def methods(space):
    """Every public method that takes an arch, as a call on that arch alone."""
    valid = space.sample(0)
    calls = {"validate": space.validate, "format": space.format, "canonical": space.canonical,
             "mutate": lambda a: space.mutate(a, 0), "neighbors": space.neighbors,
             "crossover a": lambda a: space.crossover(a, valid, 0),
             "crossover b": lambda a: space.crossover(valid, a, 0),
             "to_choices": space.to_choices, "to_graph": space.to_graph}
    if space is NB201:
        calls["expression"] = space.expression
    if space is TOY:
        calls["score"] = space.score
    return calls


def archs_for(name):
    near = {"nb201": st.lists(op_names, max_size=8), "toy": st.lists(op_names, max_size=6), "darts": raw_genotypes}
    return st.one_of(junk, near[name], st.builds(list, {"nb201": nb201_archs, "toy": toy_archs,
                                                         "darts": darts_genotypes}[name]))


# A valid DARTS genotype of another node count (or with ops outside candidate_ops) still cannot be
# crossed with this space's 4-node cells or written as its choices: these may refuse what validates.
MAY_REFUSE_VALID = {("darts", "to_choices"), ("darts", "crossover a"), ("darts", "crossover b")}


@budget(100)
@given(st.data())
def test_every_method_validates_as_validate_does(data):
    name = data.draw(st.sampled_from(sorted(SPACES)))
    space, arch = SPACES[name], data.draw(archs_for(name))
    _, expected = outcome(space.validate, arch)
    for method, call in methods(space).items():
        _, error = outcome(call, arch)
        if expected is None and (name, method) in MAY_REFUSE_VALID:
            assert error in (None, InvalidValueError), (method, error)
        else:
            assert error == expected, (method, error, expected)


# ----------------------------------------------------------------------------- arguments

int_like = st.one_of(st.integers(-3, 12), st.integers(-10**20, 10**20), st.booleans(), st.floats(),
                     st.text(max_size=3), st.none(), st.integers(0, 4).map(np.int64), st.just(10_000),
                     st.just(10_001), st.integers(1, 4).map(float))
size_args = st.one_of(st.integers(-2, 0), st.integers(1, 3), st.booleans(), st.floats(-1, 4), st.none(),
                      st.text(max_size=2), st.integers(1, 3).map(np.int64), st.integers(1, 3).map(float))
probabilities = st.one_of(st.floats(-0.5, 1.5), st.just(1.0), st.just(0.0), st.floats(allow_nan=True),
                          st.booleans(), st.integers(-1, 2), st.text(max_size=3), st.none())
# no np.bool_ here: nasnb.checks.check_bool refuses it under numpy 2 (its type is called "bool" there)
flags = st.one_of(st.booleans(), st.integers(0, 1), st.none(), st.text(max_size=3), st.just("True"))


@st.composite
def mostly_valid(draw, valid: dict, replacements: dict):
    """Valid keyword arguments with 0 to 2 of them replaced by draws from `replacements` (valid or not):
    each wrong value then meets otherwise right ones, and right calls happen too."""
    kwargs = {name: draw(strategy) for name, strategy in valid.items()}
    for name in draw(st.lists(st.sampled_from(sorted(replacements)), max_size=2, unique=True)):
        kwargs[name] = draw(replacements[name])
    return kwargs


@st.composite
def toy_settings(draw):
    """ToySpace arguments; the target, when valid, fits the length and options drawn."""
    kwargs = draw(mostly_valid({"length": st.integers(1, 6), "options": st.integers(2, 5)},
                               {"length": int_like, "options": int_like}))
    fit = int(kwargs["length"]) if is_int(kwargs["length"]) and 0 <= kwargs["length"] <= 20 else 3
    kwargs["target"] = draw(st.one_of(st.none(), st.lists(st.integers(-1, 5), min_size=fit, max_size=fit),
                                      st.lists(st.integers(0, 1), min_size=fit, max_size=fit).map(tuple),
                                      st.lists(int_like, max_size=8), junk))
    return kwargs


@budget(200)
@given(toy_settings())
def test_toy_constructor(kwargs):
    length, options, target = kwargs["length"], kwargs["options"], kwargs["target"]
    space, error = outcome(ToySpace, **kwargs)
    valid = (is_int(length) and 1 <= length <= 10_000 and is_int(options) and 2 <= options <= 10_000
             and (target is None or (isinstance(target, (list, tuple)) and len(target) == length
                                     and all(is_int(t) and 0 <= t < options for t in target))))
    assert (error is None) == valid, (kwargs, error)
    if valid:
        assert space.score(space.target) == 1.0 and len(space.target) == length
        assert space == ToySpace(**kwargs) and repr(space) == repr(ToySpace(**kwargs))
        assert repr(space).startswith(f"ToySpace(length={length}, options={options}")
        default = tuple(options - 1 - (k % options) for k in range(length))
        if target is None or tuple(target) == default:
            assert "target=" not in repr(space)
        else:  # the repr tells this target apart from any other
            assert repr(space).endswith(f", target={tuple(int(t) for t in target)})")


op_lists = st.one_of(st.lists(st.sampled_from(sorted(DARTS_OPS) + ["nor_conv_3x3", "Sep_conv_3x3"]), max_size=9),
                     st.lists(st.sampled_from(CANDIDATE_OPS), min_size=1, max_size=4).map(lambda ops: ops + ops[-1:]),
                     st.text(max_size=12), junk, st.just(CANDIDATE_OPS), st.just(()))


distinct_ops = st.lists(st.sampled_from(sorted(DARTS_OPS)), min_size=1, max_size=5, unique=True)


@budget(120)
@given(mostly_valid({"steps": st.integers(1, 6), "candidate_ops": distinct_ops},
                    {"steps": int_like, "candidate_ops": op_lists}))
def test_darts_constructor(kwargs):
    steps, ops = kwargs["steps"], kwargs["candidate_ops"]
    space, error = outcome(DartsSpace, **kwargs)
    valid = (is_int(steps) and 1 <= steps <= 64 and isinstance(ops, (list, tuple)) and len(ops) > 0
             and all(isinstance(op, str) and op in DARTS_OPS for op in ops) and len(set(ops)) == len(ops))
    assert (error is None) == valid, (kwargs, error)
    if valid:
        assert len(space.choices) == 6 * steps and space.candidate_ops == tuple(ops)
        assert repr(space) == repr(DartsSpace(int(steps), tuple(ops)))
        assert ("candidate_ops=" in repr(space)) == (tuple(ops) != CANDIDATE_OPS)
        genotype = space.sample(0)
        assert space.parse(space.format(genotype)) == genotype and len(genotype.normal) == 2 * steps


@budget(60)
@given(mostly_valid({"C": st.integers(1, 3), "N": st.integers(1, 2), "num_classes": st.integers(1, 5),
                     "in_channels": st.integers(1, 3)},
                    dict.fromkeys(["C", "N", "num_classes", "in_channels"], size_args)))
def test_nb201_build_arguments(kwargs):
    net, error = outcome(NB201.build, ("nor_conv_3x3",) * 6, **kwargs)
    assert (error is None) == all(is_int(v) and v >= 1 for v in kwargs.values()), (kwargs, error)
    if net is not None:
        assert len(net.cells) == 3 * kwargs["N"] + 2  # 3 stages of N cells, 2 ResNet blocks between them
        assert net.stem[0].in_channels == kwargs["in_channels"]
        assert net.classifier.out_features == kwargs["num_classes"] and net.classifier.in_features == 4 * kwargs["C"]


DARTS_SIZES = ["C", "layers", "num_classes", "in_channels", "stem_multiplier"]
ONE_NODE = Genotype([("sep_conv_3x3", 0), ("skip_connect", 1)], [2], [("max_pool_3x3", 0), ("skip_connect", 1)], [2])


@budget(40)
@given(mostly_valid({"C": st.integers(1, 3), "layers": st.integers(1, 4), "num_classes": st.integers(1, 5),
                     "in_channels": st.integers(1, 3), "stem_multiplier": st.integers(1, 3),
                     "auxiliary": st.booleans(), "drop_path_prob": st.floats(0, 0.9)},
                    {**dict.fromkeys(DARTS_SIZES, size_args), "auxiliary": flags, "drop_path_prob": probabilities}))
def test_darts_build_arguments(kwargs):
    net, error = outcome(DARTS.build, ONE_NODE, **kwargs)  # one node per cell: quick to build
    p = kwargs["drop_path_prob"]
    valid = (all(is_int(kwargs[name]) and kwargs[name] >= 1 for name in DARTS_SIZES)
             and isinstance(kwargs["auxiliary"], (bool, np.bool_))
             and isinstance(p, numbers.Real) and not isinstance(p, bool) and 0 <= p < 1)
    assert (error is None) == valid, (kwargs, error)
    if net is not None:
        assert len(net.cells) == kwargs["layers"] and net.classifier.out_features == kwargs["num_classes"]
        assert net.stem[0].in_channels == kwargs["in_channels"]
        assert net.stem[0].out_channels == kwargs["stem_multiplier"] * kwargs["C"]
        assert (net.auxiliary_head is not None) == kwargs["auxiliary"] and net.drop_path_prob == p
        with torch.no_grad(), one_thread():
            assert net.eval()(torch.zeros(1, kwargs["in_channels"], 8, 8)).shape == (1, kwargs["num_classes"])


rngs = st.one_of(st.none(), st.integers(-10, 10), st.integers(-2**70, 2**70), st.booleans(), st.floats(),
                 st.text(max_size=3), st.integers(0, 9).map(np.int32), st.integers(0, 9).map(np.random.default_rng),
                 st.just(np.random.RandomState(0)), st.just(np.bool_(False)))


@budget(150)
@given(st.sampled_from(sorted(SPACES)), rngs)
def test_rng_arguments(name, rng):
    space = SPACES[name]
    valid = rng is None or isinstance(rng, np.random.Generator) or (is_int(rng) and rng >= 0)
    for call in (lambda: as_rng(rng), lambda: space.sample(rng), lambda: space.mutate(space.sample(1), rng),
                 lambda: space.crossover(space.sample(1), space.sample(2), rng)):
        result, error = outcome(call)
        assert (error is None) == valid, (rng, error)
        if result is not None and not isinstance(result, np.random.Generator):
            assert space.validate(result) == result


names = st.one_of(st.sampled_from(["nb201", "algebra", "normal", "reduce", "cell", "NB201", "graph", "", "cell "]),
                  junk, st.just(np.array(["normal"])))


@budget(150)
@given(names)
def test_rule_and_cell_arguments(value):
    arch, genotype = NB201.sample(0), DARTS.sample(0)
    checks = [(lambda: NB201.canonical(arch, rule=value), ("nb201", "algebra")),
              (lambda: NB201.expression(arch, rule=value), ("nb201", "algebra")),
              (lambda: NB201.to_graph(arch, cell=value), ("cell", None)),
              (lambda: TOY.to_graph(TOY.sample(0), cell=value), ("cell", None)),
              (lambda: DARTS.to_graph(genotype, cell=value), ("normal", "reduce", None))]  # None: normal
    for call, options in checks:
        _, error = outcome(call)
        valid = (isinstance(value, str) or value is None) and value in options
        assert (error is None) == valid, (value, options, error)


@budget(100)
@given(st.data())
def test_from_choices_arguments(data):
    name = data.draw(st.sampled_from(sorted(SPACES)))
    space = SPACES[name]
    choices = space.choices
    # one option per choice (a few too many or too few at times), then 0-2 of them replaced by junk
    # or by an option of another choice (an op where an input pair goes, a later node's pair)
    length = data.draw(st.one_of(st.just(len(choices)), st.integers(0, len(choices) + 2)))
    values = [data.draw(st.sampled_from(choices[k % len(choices)].options)) for k in range(length)]
    others = st.one_of(junk, st.sampled_from(choices[0].options), st.sampled_from(choices[-1].options),
                       st.sampled_from(choices[-3].options))
    for k in data.draw(st.lists(st.integers(0, max(length - 1, 0)), max_size=2)) if values else []:
        values[k] = data.draw(others)
    result, error = outcome(space.from_choices, values)
    if name == "darts":  # a controller's values are read as the options they equal: (0.0, 1.0) is (0, 1)
        fits = [any(v == option for option in c.options) for c, v in zip(choices, values)]
    else:
        fits = [isinstance(v, str) and v in c.options for c, v in zip(choices, values)]
    assert (error is None) == (length == len(choices) and all(fits)), (values, error)
    if result is not None:
        normalised = [c.options[c.options.index(v)] for c, v in zip(choices, values)]
        assert space.to_choices(result) == normalised and space.validate(result) == result

