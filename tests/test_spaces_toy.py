"""ToySpace (nasnb/spaces/toy.py): its size, its known optimum, its strings, and its argument checks.

Also the protocols of nasnb/spaces/base.py, which every shipped space is checked against here.
"""
import itertools

import numpy as np
import pytest

from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.base import BuildableSpace, Choice, EnumerableSpace, SearchSpace
from nasnb.spaces.darts import DartsSpace
from nasnb.spaces.nb201 import NB201Space
from nasnb.spaces.toy import ToySpace

SPACE = ToySpace(length=3, options=3)


def test_size_enumeration_and_default_optimum():
    assert len(SPACE) == 27 == len(set(SPACE.enumerate()))
    assert list(SPACE.enumerate()) == list(itertools.product(("op0", "op1", "op2"), repeat=3))
    assert SPACE.target == ("op2", "op1", "op0")  # options-1, options-2, ... by default
    scores = {arch: SPACE.score(arch) for arch in SPACE.enumerate()}
    assert max(scores, key=scores.get) == SPACE.target and scores[SPACE.target] == 1.0
    assert scores[("op2", "op1", "op1")] == pytest.approx(2 / 3)  # two of three positions match


def test_a_given_target_is_the_optimum_and_is_in_the_repr():
    space = ToySpace(length=4, options=2, target=[1, 0, 0, 1])
    assert space.target == ("op1", "op0", "op0", "op1") and space.score(space.target) == 1.0
    assert repr(space) == "ToySpace(length=4, options=2, target=(1, 0, 0, 1))"
    assert ToySpace(length=4, options=2, target=np.array([1, 0, 0, 1])) == space  # numpy ints are ints
    # the default target, given explicitly, is the same space with the same repr
    assert ToySpace(3, 3, target=(2, 1, 0)) == SPACE and repr(SPACE) == "ToySpace(length=3, options=3)"


def test_different_settings_give_different_reprs():
    spaces = [ToySpace(3, 3), ToySpace(3, 3, target=(0, 0, 0)), ToySpace(3, 3, target=(0, 0, 1)),
              ToySpace(4, 3), ToySpace(3, 4)]
    assert len({repr(s) for s in spaces}) == len(spaces)
    assert len(set(spaces)) == len(spaces) and spaces[1] != spaces[2]
    assert ToySpace(3, 3, target=(0, 0, 1)) == spaces[2] and hash(ToySpace(3, 3, (0, 0, 1))) == hash(spaces[2])


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(length=0), InvalidValueError, "length must be an int >= 1"),
    (dict(length=2.0), InvalidTypeError, r"length .* got 2.0 \(float\)"),
    (dict(length=True), InvalidTypeError, r"got True \(bool\)"),
    (dict(options=1), InvalidValueError, "options must be an int >= 2"),
    (dict(options="4"), InvalidTypeError, "options"),
    (dict(options=10**6), InvalidValueError, "<= 10000"),
    (dict(target=[2.0, 1.0, 0.0]), InvalidTypeError, "not all ints"),
    (dict(target=[True, False, True]), InvalidTypeError, "not all ints"),
    (dict(target="210"), InvalidTypeError, "target must be 3 option indices"),
    (dict(target=[0, 1]), InvalidValueError, "got 2 of them"),
    (dict(target=[0, 1, 3]), InvalidValueError, "out of range"),
    (dict(target=[0, -1, 2]), InvalidValueError, "out of range"),
])
def test_constructor_checks_its_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        ToySpace(**{"length": 3, "options": 3, **kwargs})


def test_len_too_large_for_python_says_how_to_count():
    space = ToySpace(length=64, options=2)  # 2**64 > 2**63 - 1, the most len() returns
    with pytest.raises(InvalidValueError, match=r"2\^63 - 1.*space.options \*\* space.length"):
        len(space)
    assert space.options ** space.length == 2 ** 64


def test_strings_round_trip_and_format_validates_as_parse_does():
    assert SPACE.format(("op0", "op2", "op1")) == "op0-op2-op1"
    assert SPACE.parse(" op0-op2-op1\n") == ("op0", "op2", "op1")
    for arch in SPACE.enumerate():
        assert SPACE.parse(SPACE.format(arch)) == arch
    for bad_arch, bad_text in [(("op0", "op3", "op1"), "op0-op3-op1"), (("op0", "op1"), "op0-op1"),
                               (("op0",) * 4, "op0-op0-op0-op0")]:
        with pytest.raises(InvalidValueError):
            SPACE.format(bad_arch)
        with pytest.raises(InvalidValueError):
            SPACE.parse(bad_text)
    with pytest.raises(InvalidTypeError, match=r"got 5 \(int\)"):
        SPACE.format(5)
    with pytest.raises(InvalidTypeError, match="parse expects a string"):
        SPACE.parse(("op0", "op1", "op2"))
    with pytest.raises(InvalidValueError, match="space.parse"):
        SPACE.format("op0-op1-op2")


def test_a_megabyte_of_dashes_is_refused_quickly_and_echoed_short():
    with pytest.raises(InvalidValueError) as info:
        SPACE.parse("-" * 1_000_000)
    assert len(str(info.value)) < 300


def test_moves_check_their_arguments():
    arch = ("op0", "op1", "op2")
    with pytest.raises(InvalidValueError, match="rng must be an int >= 0, got -1"):
        SPACE.mutate(arch, -1)
    with pytest.raises(InvalidTypeError, match="rng"):
        SPACE.sample(1.5)
    with pytest.raises(InvalidValueError, match="cell must be None or 'cell'"):
        SPACE.to_graph(arch, cell="normal")
    with pytest.raises(InvalidValueError):
        SPACE.from_choices(["op0", "op1"])
    with pytest.raises(InvalidValueError):
        SPACE.crossover(arch, ("op0", "op1", 2), 0)
    assert SPACE.to_graph(arch, cell="cell").number_of_edges() == 3


def test_every_shipped_space_follows_the_protocol_and_only_some_build():
    for space in (NB201Space(), DartsSpace(), ToySpace()):
        assert isinstance(space, SearchSpace), space
    assert isinstance(NB201Space(), BuildableSpace) and isinstance(DartsSpace(), BuildableSpace)
    assert not isinstance(ToySpace(), BuildableSpace)  # a toy has no network
    assert isinstance(ToySpace(), EnumerableSpace) and not isinstance(DartsSpace(), EnumerableSpace)


def test_the_protocol_misses_a_space_without_validate():
    # ToySpace's own class body, less validate(): everything else is there and works
    body = {k: v for k, v in vars(ToySpace).items() if k not in ("validate", "__dict__", "__weakref__")}
    no_validate = type("NoValidate", (), body)(length=3, options=3)
    assert no_validate.choices and len(no_validate) == 27 and hasattr(no_validate, "to_graph")
    assert isinstance(ToySpace(3, 3), SearchSpace) and not isinstance(no_validate, SearchSpace)


def test_a_choice_needs_a_name_and_options():
    assert Choice("a", "xyz").options == ("x", "y", "z") and Choice("b", iter([1, 2])).index(2) == 1
    with pytest.raises(InvalidValueError, match="has no options"):
        Choice("a", [])
    with pytest.raises(InvalidTypeError, match="must be a sequence"):
        Choice("a", 3)
    with pytest.raises(InvalidTypeError, match="name is a string"):
        Choice(("a",), [1, 2])
    with pytest.raises(InvalidValueError, match=r"\[0\] is not an option of choice 'a'; options are \[1, 2\]"):
        Choice("a", [1, 2]).index([0])
