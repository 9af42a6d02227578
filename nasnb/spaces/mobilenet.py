"""The ProxylessNAS / MobileNetV2 chain space: one inverted residual block (or none) per layer.

Cai, Zhu & Han, "ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware",
ICLR 2019 (Sec. 4.2), on the backbone of Sandler et al., "MobileNetV2", CVPR 2018 (Table 2). The
network is a chain: a fixed stem conv and 3x3_MBConv1 block, then stages of layers; stage s has
`depths[s]` layers of `widths[s]` channels, its first layer has stride `strides[s]`. Each layer
picks one block (mobilenet_network.py): an MBConv of kernel 3, 5 or 7 and expansion 3 or 6, named
as ProxylessNAS's code names them ('3x3_MBConv3', '3x3_MBConv6', '5x5_MBConv3', ..., in its
order), or 'Zero' (skip the layer) where the shape allows it: stride 1 and as many channels in as
out, as in the code (SuperProxylessNASNets), so never the first layer of a stage that changes
stride or width. With L6 layers of 6 options and L7 of 7:

    len(space) = 6^L6 * 7^L7;  the paper's ImageNet layout: 6^6 * 7^15 = 2.2e17 (21 layers)

An architecture is a tuple of op names, one per layer. Its string joins a stage's layers with ','
and the stages with '|': '3x3_MBConv6,Zero,5x5_MBConv3|7x7_MBConv6,3x3_MBConv3,Zero'.
"""
from __future__ import annotations

import itertools
from typing import Iterator, NamedTuple, Sequence

import networkx as nx
import numpy as np

from nasnb.checks import check_bool, check_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.base import Choice, SpaceValue, as_rng, checked_len
from nasnb.spaces.mobilenet_network import ZERO, MobileNetNetwork, mbconv_name
from nasnb.spaces.ops import UnknownOpError

ENUMERATE_LIMIT = 10**6  # enumerate() lists spaces up to this size (the default has 86,436)
MAX_STAGES, MAX_DEPTH, MAX_WIDTH = 32, 32, 100_000
FIXED_CONVS = ("3x3_Conv", "1x1_Conv", "Linear")  # to_graph's fixed layers that are no MBConv (no shortcut)


class UnknownLayerOpError(UnknownOpError, InvalidValueError):
    """An op a layer cannot take: an UnknownOpError (KeyError) as in the other spaces, and a ValueError
    as every malformed arch string is."""


class Layer(NamedTuple):
    """One searched layer: where it sits, its shape and the ops it may take."""

    name: str  # 'stage0/layer1'
    stage: int
    in_channels: int
    out_channels: int
    stride: int
    options: tuple  # the MBConv names, then 'Zero' where the shape allows it


def _ints(name: str, value, minimum: int, maximum: int, example) -> tuple:
    """A non-empty tuple of ints in [minimum, maximum]."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise InvalidTypeError(f"{name} must be a non-empty sequence of ints, got {short(value)}; "
                               f"e.g. {name}={example}")
    if len(value) > MAX_STAGES:
        raise InvalidValueError(f"{name} has {len(value)} entries; at most {MAX_STAGES} stages, e.g. {name}={example}")
    return tuple(check_int(f"{name}[{i}]", v, minimum=minimum, maximum=maximum, example=example[0])
                 for i, v in enumerate(value))


def _distinct(name: str, values: tuple, example) -> tuple:
    if len(set(values)) != len(values):
        raise InvalidValueError(f"{name}={values} repeats a value; list each once, e.g. {name}={example}")
    return values


class MobileNetSpace(SpaceValue):
    """Chains of MBConv blocks (ProxylessNAS, Cai et al. 2019): one op per layer, 'Zero' to skip one.

    The default is small, for 8x8 digits on a CPU: stem 8 channels (stride 1), 3x3_MBConv1 to 8,
    two stages of 3 layers at 16 (stride 1) and 32 channels (stride 2), a 1x1 conv to 64, giving
    6^2 * 7^4 = 86,436 architectures. `MobileNetSpace.paper()` is the ImageNet space of the paper
    and `MobileNetSpace.mobilenet_v2()` MobileNetV2's layout.

    Args (the names of ProxylessNAS's code in brackets):
        widths: channels of each stage [width_stages].
        depths: layers in each stage [n_cell_stages].
        strides: stride of each stage's first layer, 1 or 2 [stride_stages].
        stem_width, stem_stride: the 3x3 stem conv [input_channel = 32, stride 2].
        first_width: output of the fixed 3x3_MBConv1 block after the stem [first_cell_width = 16].
        head_width: the 1x1 conv before pooling [feature_mix_layer, last_channel = 1280].
        kernels, expansions: the MBConv options, kernel-major as in the code [conv_candidates].
        zero: offer 'Zero' where the shape allows it.
    """

    name = "mobilenet"
    cell_names = ("chain",)

    def __init__(self, widths: Sequence[int] = (16, 32), depths: Sequence[int] = (3, 3),
                 strides: Sequence[int] = (1, 2), *, stem_width: int = 8, stem_stride: int = 1,
                 first_width: int = 8, head_width: int = 64, kernels: Sequence[int] = (3, 5, 7),
                 expansions: Sequence[int] = (3, 6), zero: bool = True):
        self.widths = _ints("widths", widths, 1, MAX_WIDTH, (16, 32))
        self.depths = _ints("depths", depths, 1, MAX_DEPTH, (3, 3))
        self.strides = _ints("strides", strides, 1, 2, (1, 2))
        for name, values in (("depths", self.depths), ("strides", self.strides)):
            if len(values) != len(self.widths):
                raise InvalidValueError(f"{name} has {len(values)} entries but widths has {len(self.widths)}: "
                                        f"one per stage, e.g. widths=(16, 32), depths=(3, 3), strides=(1, 2)")
        self.stem_width = check_int("stem_width", stem_width, minimum=1, maximum=MAX_WIDTH, example=8)
        self.stem_stride = check_int("stem_stride", stem_stride, minimum=1, maximum=2, example=1)
        self.first_width = check_int("first_width", first_width, minimum=1, maximum=MAX_WIDTH, example=8)
        self.head_width = check_int("head_width", head_width, minimum=1, maximum=MAX_WIDTH, example=64)
        self.kernels = _distinct("kernels", _ints("kernels", kernels, 1, 15, (3, 5, 7)), (3, 5, 7))
        even = [k for k in self.kernels if k % 2 == 0]
        if even:
            raise InvalidValueError(f"kernels={self.kernels} has even sizes {even}; 'same' padding needs odd "
                                    f"kernels, e.g. kernels=(3, 5, 7)")
        self.expansions = _distinct("expansions", _ints("expansions", expansions, 1, 16, (3, 6)), (3, 6))
        self.zero = check_bool("zero", zero)
        self.ops = tuple(mbconv_name(k, e) for k in self.kernels for e in self.expansions)
        self.layers = self._layout()
        self._allowed = [frozenset(layer.options) for layer in self.layers]
        self._max_text = 2 * sum(len(max(layer.options, key=len)) + 1 for layer in self.layers) + 100

    @classmethod
    def paper(cls, **overrides) -> "MobileNetSpace":
        """ProxylessNAS's ImageNet space (Sec. 4.2; search/imagenet_arch_search.py of its code):
        widths 24, 40, 80, 96, 192, 320, depths 4, 4, 4, 4, 4, 1, strides 2, 2, 2, 1, 2, 1, stem 32
        at stride 2, first block to 16, feature mix to 1280. Build it with in_channels=3."""
        layout = dict(widths=(24, 40, 80, 96, 192, 320), depths=(4, 4, 4, 4, 4, 1), strides=(2, 2, 2, 1, 2, 1),
                      stem_width=32, stem_stride=2, first_width=16, head_width=1280)
        return cls(**{**layout, **overrides})

    @classmethod
    def mobilenet_v2(cls, **overrides) -> "MobileNetSpace":
        """MobileNetV2 1.0's layout (Sandler et al. 2018, Table 2): widths 24, 32, 64, 96, 160, 320,
        depths 2, 3, 4, 3, 3, 1, strides 2, 2, 2, 1, 2, 1; every layer 3x3_MBConv6 is MobileNetV2."""
        layout = dict(widths=(24, 32, 64, 96, 160, 320), depths=(2, 3, 4, 3, 3, 1), strides=(2, 2, 2, 1, 2, 1),
                      stem_width=32, stem_stride=2, first_width=16, head_width=1280)
        return cls(**{**layout, **overrides})

    def _layout(self) -> tuple:
        layers, channels = [], self.first_width
        for stage, (width, depth, stride) in enumerate(zip(self.widths, self.depths, self.strides)):
            for i in range(depth):
                s = stride if i == 0 else 1
                same_shape = s == 1 and channels == width  # where ProxylessNAS adds 'Zero' and a shortcut
                options = self.ops + ((ZERO,) if self.zero and same_shape else ())
                layers.append(Layer(f"stage{stage}/layer{i}", stage, channels, width, s, options))
                channels = width
        return tuple(layers)

    def __len__(self) -> int:
        size = 1
        for layer in self.layers:
            size *= len(layer.options)
        return checked_len(size, self, "math.prod(len(c.options) for c in space.choices)")

    def __repr__(self) -> str:  # every setting: a resumed search compares it with its checkpoint's
        return (f"MobileNetSpace(widths={self.widths}, depths={self.depths}, strides={self.strides}, "
                f"stem_width={self.stem_width}, stem_stride={self.stem_stride}, first_width={self.first_width}, "
                f"head_width={self.head_width}, kernels={self.kernels}, expansions={self.expansions}, "
                f"zero={self.zero})")

    @property
    def choices(self) -> list[Choice]:
        return [Choice(layer.name, layer.options) for layer in self.layers]

    # ------------------------------------------------------------------ values and strings

    def _example(self) -> str:
        text = self.format(tuple(layer.options[0] for layer in self.layers))
        return repr(text) if len(text) <= 120 else repr(text.split("|")[0] + "|...")

    def validate(self, arch: Sequence[str]) -> tuple:
        """`arch` as a tuple of one op name per layer, or an error saying which layer is wrong."""
        if (type(arch) is tuple and len(arch) == len(self.layers)
                and all(type(op) is str and op in allowed for op, allowed in zip(arch, self._allowed))):
            return arch  # the common case, at every trial of a search
        if isinstance(arch, str):
            raise InvalidValueError(f"got a string {short(arch)}; read arch strings with space.parse(text)")
        if not isinstance(arch, (Sequence, np.ndarray)):
            raise InvalidTypeError(f"a MobileNetSpace arch is a tuple of {len(self.layers)} op names, one per "
                                   f"layer, not {short(arch)} ({type(arch).__name__}); "
                                   f"e.g. ('3x3_MBConv6',) * {len(self.layers)}")
        if len(arch) != len(self.layers):
            raise InvalidValueError(f"arch has {len(arch)} ops; this space has {len(self.layers)} layers "
                                    f"(depths {self.depths}), e.g. ('3x3_MBConv6',) * {len(self.layers)}")
        for layer, op in zip(self.layers, arch):
            self._check_op(layer, op)
        return tuple(str(op) for op in arch)  # plain str, even from numpy arrays of names

    def _check_op(self, layer: Layer, op) -> None:
        if isinstance(op, str) and op in layer.options:
            return
        if isinstance(op, str) and op == ZERO:  # a known op where the shape forbids it
            raise InvalidValueError(
                f"layer {layer.name} cannot be {ZERO}: it maps {layer.in_channels} to {layer.out_channels} channels "
                f"at stride {layer.stride}, so skipping it would change the shape; choose from {list(layer.options)}")
        raise UnknownLayerOpError(f"unknown op {short(op)} in layer {layer.name}; choose from {list(layer.options)}")

    def format(self, arch: Sequence[str]) -> str:
        """Layers joined by ',' within a stage, stages by '|': '3x3_MBConv6,Zero,...|5x5_MBConv3,...'."""
        arch, stages, start = self.validate(arch), [], 0
        for depth in self.depths:
            stages.append(",".join(arch[start:start + depth]))
            start += depth
        return "|".join(stages)

    def parse(self, text: str) -> tuple:
        """The inverse of format() (spaces around names are ignored); malformed text raises an
        InvalidValueError naming the problem. Text longer than any arch string is refused unread."""
        if not isinstance(text, str):
            raise InvalidTypeError(f"parse expects an arch string like {self._example()}, not {short(text)} "
                                   f"({type(text).__name__}); format an arch tuple with space.format(arch)")
        if len(text) > self._max_text:
            raise InvalidValueError(f"arch string has {len(text):,} characters; those of this space have at most "
                                    f"{self._max_text:,}, e.g. {self._example()}")
        stages = text.split("|")
        if len(stages) != len(self.depths):
            raise InvalidValueError(f"arch string has {len(stages)} stages ('|'-separated); this space has "
                                    f"{len(self.depths)}, of {list(self.depths)} layers: {self._example()}")
        arch, layers = [], iter(self.layers)
        for stage, (part, depth) in enumerate(zip(stages, self.depths)):
            names = [name.strip() for name in part.split(",")]
            if len(names) != depth:
                raise InvalidValueError(f"stage {stage} has {len(names)} layers (','-separated); it has {depth} in "
                                        f"this space: {self._example()}")
            for name in names:
                layer = next(layers)
                self._check_op(layer, name)
                arch.append(name)
        return tuple(arch)

    # ------------------------------------------------------------------ equivalence

    def canonical(self, arch: Sequence[str]) -> tuple:
        """The arch with every 'Zero' moved to the end of its run of same-shape layers.

        Layers that may be Zero all map w channels to w at stride 1, so within a run of such layers
        the network is the chain of its non-Zero blocks, wherever the Zeros sit: (A, Zero, B) and
        (A, B, Zero) build the same modules in the same order (equal weights for the same seed),
        i.e. the same stand-alone network, with Once-for-All's "depth" as its number of blocks.
        This is what a TrainEvaluator may share a training by. In a supernet they differ: there
        B's weights belong to its position, so a one-shot search keeps the arch as it is.
        """
        arch = list(self.validate(arch))
        run = []  # indices of the current run of zero-able layers
        for i in range(len(arch) + 1):
            if i < len(arch) and ZERO in self._allowed[i]:
                run.append(i)
                continue
            blocks = [arch[j] for j in run if arch[j] != ZERO]
            for j, op in zip(run, blocks + [ZERO] * (len(run) - len(blocks))):
                arch[j] = op
            run = []
        return tuple(arch)

    # ------------------------------------------------------------------ moves of a search

    def enumerate(self) -> Iterator[tuple]:
        """Every arch, the first layer varying slowest; refused above ENUMERATE_LIMIT (10^6)."""
        size = 1
        for layer in self.layers:
            size *= len(layer.options)
        if size > ENUMERATE_LIMIT:
            raise InvalidValueError(f"{self!r} has {size:.3g} architectures, too many to list (at most "
                                    f"{ENUMERATE_LIMIT:,}); sample them with space.sample(rng)")
        return itertools.product(*(layer.options for layer in self.layers))

    def sample(self, rng: np.random.Generator | int | None = None) -> tuple:
        """A uniformly random arch: each layer's op uniform among its options, independently."""
        picks = as_rng(rng).integers(0, [len(layer.options) for layer in self.layers]).tolist()
        return tuple(layer.options[k] for layer, k in zip(self.layers, picks))

    def mutate(self, arch: Sequence[str], rng: np.random.Generator | int | None = None) -> tuple:
        """A copy of `arch` with one random layer changed to another of its options."""
        arch, rng = self.validate(arch), as_rng(rng)
        movable = [i for i, layer in enumerate(self.layers) if len(layer.options) > 1]
        if not movable:
            raise InvalidValueError(f"{self!r} has a single architecture; there is nothing to mutate to")
        i = movable[int(rng.integers(len(movable)))]
        others = [op for op in self.layers[i].options if op != arch[i]]
        return arch[:i] + (others[int(rng.integers(len(others)))],) + arch[i + 1:]

    def crossover(self, a: Sequence[str], b: Sequence[str], rng: np.random.Generator | int | None = None) -> tuple:
        """Uniform crossover: each layer's op comes from `a` or `b` with probability 1/2."""
        a, b, rng = self.validate(a), self.validate(b), as_rng(rng)
        from_a = rng.random(len(self.layers)) < 0.5
        return tuple(x if take_a else y for x, y, take_a in zip(a, b, from_a))

    def neighbors(self, arch: Sequence[str]) -> list[tuple]:
        """The archs one layer away, layer by layer, options in their order."""
        arch = self.validate(arch)
        return [arch[:i] + (op,) + arch[i + 1:] for i, layer in enumerate(self.layers)
                for op in layer.options if op != arch[i]]

    def from_choices(self, values: Sequence[str]) -> tuple:
        """The arch that takes `values[k]` for layer k."""
        return self.validate(values)

    def to_choices(self, arch: Sequence[str]) -> list[str]:
        return list(self.validate(arch))

    # ------------------------------------------------------------------ graph and network

    def to_graph(self, arch: Sequence[str], cell: str | None = None) -> nx.DiGraph:
        """The network as a chain DiGraph that `nasnb.viz.cells.draw_cell` draws.

        Nodes 0, 1, ... are the feature maps (attrs label, role, channels, reduction = the stride
        so far); edge (i, i+1) is the layer between them (attrs op, layer, stride, in_channels,
        out_channels, residual, searched). The fixed layers are the stem '3x3_Conv', the first
        '3x3_MBConv1', the feature mix '1x1_Conv' and 'Linear' (pooling and classifier).
        """
        arch = self.validate(arch)
        if cell is not None and not (isinstance(cell, str) and cell == "chain"):
            raise InvalidValueError(f"a MobileNetSpace network is one chain; cell must be None or 'chain', "
                                    f"not {short(cell)}")
        g = nx.DiGraph(space=self.name, cell="chain", arch=self.format(arch))
        g.add_node(0, label="input", role="input", channels=None, reduction=1)
        steps = [("3x3_Conv", "stem", self.stem_stride, self.stem_width, False),
                 ("3x3_MBConv1", "first", 1, self.first_width, False)]
        steps += [(op, layer.name, layer.stride, layer.out_channels, True) for op, layer in zip(arch, self.layers)]
        steps += [("1x1_Conv", "feature_mix", 1, self.head_width, False), ("Linear", "classifier", 1, None, False)]
        channels, reduction = None, 1
        for node, (op, name, stride, out_channels, searched) in enumerate(steps, start=1):
            reduction *= stride
            last = node == len(steps)
            g.add_node(node, label="logits" if last else str(out_channels), role="output" if last else "intermediate",
                       channels=out_channels, reduction=reduction)
            g.add_edge(node - 1, node, op=op, layer=name, stride=stride, in_channels=channels,
                       out_channels=out_channels, searched=searched,
                       residual=op not in FIXED_CONVS and stride == 1 and channels == out_channels)
            channels = out_channels
        return g

    def build(self, arch: Sequence[str], num_classes: int = 10, in_channels: int = 1) -> MobileNetNetwork:
        """The network of `arch` (mobilenet_network.py); the paper's spaces want in_channels=3."""
        arch = self.validate(arch)
        num_classes = check_int("num_classes", num_classes, minimum=1, example=10)
        in_channels = check_int("in_channels", in_channels, minimum=1, example=1)
        layers = [(op, layer.in_channels, layer.out_channels, layer.stride) for op, layer in zip(arch, self.layers)]
        return MobileNetNetwork(arch, layers, stem_width=self.stem_width, stem_stride=self.stem_stride,
                                first_width=self.first_width, head_width=self.head_width,
                                num_classes=num_classes, in_channels=in_channels)
