"""MetaQNN's layer space: a network is a chain of layers, chosen one at a time, ending in a classifier.

Baker, Gupta, Naik & Raskar, "Designing Neural Network Architectures using Reinforcement Learning",
ICLR 2017 (Sec. 3.2, Table 1; the state space parameters of the authors' code, bowenbaker/metaqnn).
A *state* is the layer just placed, with the paper's state parameters: its layer depth i, its
type and settings, and the bin of the representation size n (the side of the feature map). An
*action* is the next layer. The layers, in the paper's notation:

    C(filters,kernel,1)   convolution, 'same' padding, stride always 1, then ReLU
    P(kernel,stride)      max pooling (no padding: n -> floor((n - kernel) / stride) + 1)
    FC(units)             fully connected, then ReLU
    SM  | GAP             the terminal: a linear softmax classifier on the flattened features, or
                          global average pooling (a 1x1 conv to the classes, averaged over the map)

An architecture is the tuple of its tokens, e.g. ('C(16,3,1)', 'P(2,2)', 'FC(32)', 'SM'), written
'[C(16,3,1), P(2,2), FC(32), SM]' (the paper writes SM(10): here the class count is build's).
The transition rules, each checked by `validate` (and so by parse) with its own message:

    1. at most `max_depth` layers before the terminal; the terminal may follow any state
    2. a window (conv kernel, pooling kernel) is no larger than the smallest size of the bin
    3. pooling only after a convolution: never first, never after pooling (the authors' code:
       allow_initial_pooling = allow_consecutive_pooling = False)
    4. FC only from a representation bin of sizes <= `fc_max_size`, or after an FC layer
    5. at most `max_fc` FC layers, consecutive, never wider than the one before (authors' code)
    6. after an FC layer: FC or SM only (no GAP: there is no map left to average)

The rules read the size *bin* only (as the authors' code enumerates a bucketed state's actions),
so a Q-learning state (depth, layer, bin) has the same actions whatever exact size it stands for.
The default is sized for 8x8 digits on a CPU: bins 8-5, 4-3, 2-1 (the paper's three bins for
32x32 CIFAR are n >= 8, 4-7, 1-3), filters 8/16/32 (paper 64-512), units 64/32 (paper 512/256/128).
The space is finite: `len(space)` counts it exactly by dynamic programming over the states.
"""
from __future__ import annotations

import re
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from nasnb.checks import check_distinct_ints, check_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.base import Choice, SpaceValue, as_rng, checked_len

TERMINALS = ("SM", "GAP")
EMPTY = "-"  # a slot of `choices` that holds no layer
ENUMERATE_LIMIT = 10**6


class Layer(NamedTuple):
    """A token's settings: kind 'C', 'P', 'FC' or a terminal; kernel, stride, width (filters, units)."""

    kind: str
    kernel: int = 0
    stride: int = 0
    width: int = 0


class LayerState(NamedTuple):
    """Where a chain stands: `depth` layers placed, the last one `layer` ('start' before any), the
    exact representation size `size` (1 after an FC layer) and `fc` consecutive FC layers."""

    depth: int
    layer: str
    size: int
    fc: int = 0


def _ints(name, value, minimum, maximum, example) -> tuple:
    return check_distinct_ints(name, value, minimum=minimum, maximum=maximum, example=example)


class LayerSpace(SpaceValue):
    """Chains of conv / pool / FC layers and a terminal, under MetaQNN's transition rules.

    Args:
        image_size: side of the square input (digits: 8).
        max_depth: at most this many layers before the terminal (paper: 12 for CIFAR-10).
        conv_filters, conv_kernels: the convolutions' options (paper: 64..512 filters, kernels 1/3/5).
        pool_options: (kernel, stride) pairs (the paper's (5,3), (3,2), (2,2)).
        fc_units: FC widths (paper: 512, 256, 128); max_fc: FC layers at most (paper: 2).
        size_bins: the smallest size of each representation bin, descending, the last 1.
        fc_max_size: FC layers start only from a bin whose sizes are all <= this (authors' code: 4 of 32).
    """

    name = "layers"
    cell_names = ("chain",)

    def __init__(self, image_size: int = 8, max_depth: int = 4, *, conv_filters: Sequence[int] = (8, 16, 32),
                 conv_kernels: Sequence[int] = (1, 3, 5), pool_options: Sequence = ((5, 3), (3, 2), (2, 2)),
                 fc_units: Sequence[int] = (64, 32), max_fc: int = 2, size_bins: Sequence[int] = (5, 3, 1),
                 fc_max_size: int = 4):
        self.image_size = check_int("image_size", image_size, minimum=1, maximum=4096, example=8)
        self.max_depth = check_int("max_depth", max_depth, minimum=0, maximum=32, example=4)
        self.conv_filters = _ints("conv_filters", conv_filters, 1, 4096, (8, 16, 32))
        self.conv_kernels = _ints("conv_kernels", conv_kernels, 1, 15, (1, 3, 5))
        if any(k % 2 == 0 for k in self.conv_kernels):
            raise InvalidValueError(f"conv_kernels={self.conv_kernels} has even sizes; 'same' padding needs odd "
                                    "kernels, e.g. conv_kernels=(1, 3, 5)")
        if not isinstance(pool_options, Sequence) or not all(isinstance(p, Sequence) and len(p) == 2
                                                             for p in pool_options):
            raise InvalidTypeError(f"pool_options must be (kernel, stride) pairs, got {short(pool_options)}; "
                                   "e.g. pool_options=((3, 2), (2, 2)), or () for none")
        self.pool_options = tuple((check_int("pool kernel", k, minimum=1, maximum=64, example=2),
                                   check_int("pool stride", s, minimum=1, maximum=64, example=2)) for k, s in pool_options)
        self.fc_units = tuple(sorted(_ints("fc_units", fc_units, 1, 65536, (64, 32)), reverse=True))
        self.max_fc = check_int("max_fc", max_fc, minimum=0, maximum=8, example=2)
        self.size_bins = _ints("size_bins", size_bins, 1, self.image_size, (5, 3, 1))
        if list(self.size_bins) != sorted(self.size_bins, reverse=True) or self.size_bins[-1] != 1:
            raise InvalidValueError(f"size_bins={self.size_bins} must be the smallest size of each bin, descending, "
                                    "ending with 1; e.g. size_bins=(5, 3, 1) for 8x8 inputs")
        self.fc_max_size = check_int("fc_max_size", fc_max_size, minimum=0, maximum=4096, example=4)
        self.convs = tuple(f"C({f},{k},1)" for f in self.conv_filters for k in self.conv_kernels)
        self.pools = tuple(f"P({k},{s})" for k, s in self.pool_options)
        self.fcs = tuple(f"FC({u})" for u in self.fc_units)
        self.tokens = self.convs + self.pools + self.fcs  # every layer, then the TERMINALS
        self._spec = {t: Layer("C", int(t[2:-1].split(",")[1]), 1, int(t[2:-1].split(",")[0])) for t in self.convs}
        self._spec.update({t: Layer("P", k, s) for t, (k, s) in zip(self.pools, self.pool_options)})
        self._spec.update({t: Layer("FC", width=u) for t, u in zip(self.fcs, self.fc_units)})
        self._spec.update({t: Layer(t) for t in TERMINALS})
        self._spec["start"] = Layer("start")
        self._action_cache: dict = {}  # (layer, depth, bin, fc) -> actions
        self._count_cache: dict = {}  # state -> number of archs that complete it
        self._draw_cache: dict = {}  # state -> (actions, cumulative share of the archs each leads to)

    def __repr__(self) -> str:
        return (f"LayerSpace(image_size={self.image_size}, max_depth={self.max_depth}, conv_filters={self.conv_filters}, "
                f"conv_kernels={self.conv_kernels}, pool_options={self.pool_options}, fc_units={self.fc_units}, "
                f"max_fc={self.max_fc}, size_bins={self.size_bins}, fc_max_size={self.fc_max_size})")

    # ------------------------------------------------------------------ states and the rules

    def bin_of(self, size: int) -> int:
        """The index of the bin holding representation size `size`."""
        return next(b for b, low in enumerate(self.size_bins) if size >= low)

    def bin_label(self, b: int) -> str:
        high = self.image_size if b == 0 else self.size_bins[b - 1] - 1
        return str(high) if high == self.size_bins[b] else f"{high}-{self.size_bins[b]}"

    def start_state(self) -> LayerState:
        return LayerState(0, "start", self.image_size, 0)

    def state_key(self, state: LayerState) -> str:
        """The Q-table's name of a state: depth, layer and size bin (or, after FC, the FC count),
        e.g. '2 C(16,3,1) [8-5]', '3 FC(32) [1 FC]'. Exact sizes of one bin share a key."""
        tag = f"{state.fc} FC" if state.fc else self.bin_label(self.bin_of(state.size))
        return f"{state.depth} {state.layer} [{tag}]"

    def actions(self, state: LayerState) -> tuple:
        """The tokens that may follow `state`: layers (rules 1-6), then the terminals."""
        key = (state.layer, state.depth, self.bin_of(state.size), state.fc)
        if key not in self._action_cache:
            self._action_cache[key] = self._actions(*key)
        return self._action_cache[key]

    def _actions(self, prev: str, depth: int, b: int, fc: int) -> tuple:
        kind, low = self._spec[prev].kind, self.size_bins[b]
        high = self.image_size if b == 0 else self.size_bins[b - 1] - 1
        layers = []
        if depth < self.max_depth:  # rule 1
            if kind != "FC":  # rule 6
                layers += [t for t in self.convs if self._spec[t].kernel <= low]  # rule 2
            if kind == "C":  # rule 3
                layers += [t for t in self.pools if self._spec[t].kernel <= low]
            if kind != "FC" and high <= self.fc_max_size and self.max_fc > 0:  # rule 4
                layers += list(self.fcs)
            if kind == "FC" and fc < self.max_fc:  # rule 5
                layers += [t for t in self.fcs if self._spec[t].width <= self._spec[prev].width]
        return tuple(layers) + (("SM",) if kind == "FC" else TERMINALS)

    def transition(self, state: LayerState, token: str) -> LayerState | None:
        """The state after placing `token` (None after a terminal); an error naming the broken rule."""
        if not isinstance(token, str) or token not in self.actions(state):
            raise InvalidValueError(self._why_not(state, token))
        spec = self._spec[token]
        if spec.kind in TERMINALS:
            return None
        size = (state.size - spec.kernel) // spec.stride + 1 if spec.kind == "P" else 1 if spec.kind == "FC" else state.size
        return LayerState(state.depth + 1, token, size, state.fc + 1 if spec.kind == "FC" else 0)

    def _why_not(self, state: LayerState, token: str) -> str:
        at = f"at layer {state.depth + 1} (after {state.layer}, representation {state.size})"
        known = isinstance(token, str) and (token in self._spec and token != "start")
        spec, prev = self._spec[token] if known else None, self._spec[state.layer].kind
        if spec is None:
            return (f"unknown layer {short(token)}; layers are C(filters,kernel,1) with filters in {self.conv_filters} "
                    f"and kernel in {self.conv_kernels}, P(kernel,stride) in {list(self.pools)}, FC(units) in "
                    f"{list(self.fcs)}, then a terminal SM or GAP, e.g. '[C(16,3,1), P(2,2), SM]'")
        if spec.kind in TERMINALS:
            return f"{token} {at}: global average pooling needs a feature map, and after FC there is none; end with SM"
        if state.depth >= self.max_depth:
            return f"{token} {at}: at most {self.max_depth} layers (max_depth), then a terminal SM or GAP"
        low = self.size_bins[self.bin_of(state.size)]
        if spec.kind in ("C", "P") and prev == "FC":
            return f"{token} {at}: after a fully connected layer only FC or SM may follow"
        if spec.kind == "P" and prev != "C":
            what = "first" if prev == "start" else "after pooling"
            return f"{token} {at}: pooling only follows a convolution, never {what}"
        if spec.kind in ("C", "P"):
            return (f"{token} {at}: its {spec.kernel}x{spec.kernel} window is larger than the bin "
                    f"{self.bin_label(self.bin_of(state.size))} allows (at most {low})")
        if prev == "FC" and state.fc >= self.max_fc:
            return f"{token} {at}: at most {self.max_fc} fully connected layers (max_fc)"
        if prev == "FC":
            return f"{token} {at}: consecutive fully connected layers never widen ({state.layer} before it)"
        return (f"{token} {at}: fully connected layers start only once the representation is at most "
                f"{self.fc_max_size} (fc_max_size), here bin {self.bin_label(self.bin_of(state.size))}")

    # ------------------------------------------------------------------ values and strings

    def states(self, arch) -> list[LayerState]:
        """The state before each token of `arch` (the start state first), checking every rule."""
        arch = self.validate(arch)
        return self._walk(arch)[:-1]

    def _walk(self, tokens) -> list:
        states = [self.start_state()]
        for token in tokens:
            states.append(self.transition(states[-1], token))
        return states

    def validate(self, arch) -> tuple:
        """`arch` as a tuple of tokens ending in a terminal, or an error naming the broken rule."""
        if isinstance(arch, str):
            raise InvalidValueError(f"got the string {short(arch)}; read arch strings with space.parse(text)")
        if not isinstance(arch, (Sequence, np.ndarray)) or len(arch) == 0:
            raise InvalidTypeError(f"a LayerSpace arch is a tuple of layer tokens ending in 'SM' or 'GAP', e.g. "
                                   f"('C(16,3,1)', 'P(2,2)', 'SM'), not {short(arch)}")
        tokens = tuple(str(t) if isinstance(t, (str, np.str_)) else t for t in arch)
        if len(tokens) > self.max_depth + 1:
            raise InvalidValueError(f"arch has {len(tokens) - 1} layers; at most {self.max_depth} (max_depth) "
                                    f"and a terminal, e.g. ('C(16,3,1)', 'SM')")
        for k, token in enumerate(tokens[:-1]):
            if token in TERMINALS:
                raise InvalidValueError(f"terminal {token} at position {k} of {len(tokens)}: it must come last")
        if tokens[-1] not in TERMINALS:
            raise InvalidValueError(f"arch ends with {short(tokens[-1])}; it must end with a terminal, SM or GAP")
        self._walk(tokens)  # every rule, each with its own message
        return tokens

    def format(self, arch) -> str:
        """'[C(16,3,1), P(2,2), FC(32), SM]': the paper's notation (Table 6 of Baker et al.)."""
        return "[" + ", ".join(self.validate(arch)) + "]"

    def parse(self, text: str) -> tuple:
        """The inverse of format(); spaces are ignored and the brackets optional."""
        if not isinstance(text, str):
            raise InvalidTypeError(f"parse expects a string like '[C(16,3,1), P(2,2), SM]', got {short(text)} "
                                   f"({type(text).__name__})")
        if len(text) > 40 * (self.max_depth + 2):
            raise InvalidValueError(f"arch string has {len(text):,} characters, longer than any of this space; "
                                    f"e.g. '[C(16,3,1), P(2,2), SM]'")
        body = re.sub(r"\s+", "", text)
        if body.startswith("[") and body.endswith("]"):
            body = body[1:-1]
        tokens = tuple(re.split(r",(?![^(]*\))", body))  # the commas between tokens, not inside C(16,3,1)
        if not all(tokens):
            raise InvalidValueError(f"cannot read {short(text)} as layers: write tokens such as C(16,3,1), P(2,2), "
                                    f"FC(32) separated by ',' and end with SM or GAP, e.g. '[C(16,3,1), P(2,2), SM]'")
        return self.validate(tuple(tokens))

    def canonical(self, arch) -> tuple:
        """The arch itself: two different chains build two different networks."""
        return self.validate(arch)

    def from_actions(self, actions: Sequence[str]) -> tuple:
        """The arch of a path of actions (what a Q-learning agent took)."""
        return self.validate(tuple(actions))

    # ------------------------------------------------------------------ counting and listing

    def count(self, state: LayerState | None = None) -> int:
        """How many archs complete `state` (the start: the whole space), by dynamic programming."""
        state = self.start_state() if state is None else state
        if state not in self._count_cache:
            self._count_cache[state] = sum(1 if t in TERMINALS else self.count(self.transition(state, t))
                                           for t in self.actions(state))
        return self._count_cache[state]

    def __len__(self) -> int:
        return checked_len(self.count(), self, "space.count()")

    def enumerate(self) -> Iterator[tuple]:
        """Every arch, depth-first in token order; refused above ENUMERATE_LIMIT (10^6)."""
        if self.count() > ENUMERATE_LIMIT:
            raise InvalidValueError(f"{self!r} has {self.count():,} architectures, too many to list (at most "
                                    f"{ENUMERATE_LIMIT:,}); sample them with space.sample(rng)")

        def walk(state, prefix):
            for t in self.actions(state):
                if t in TERMINALS:
                    yield prefix + (t,)
                else:
                    yield from walk(self.transition(state, t), prefix + (t,))

        return walk(self.start_state(), ())

    def sample(self, rng=None) -> tuple:
        """A uniformly random arch: each next token drawn in proportion to the archs it leads to.
        (MetaQNN's exploration, ε = 1, is a different distribution: uniform per step.)"""
        rng, state, tokens = as_rng(rng), self.start_state(), []
        while state is not None:
            if state not in self._draw_cache:
                actions = self.actions(state)
                counts = [1 if t in TERMINALS else self.count(self.transition(state, t)) for t in actions]
                self._draw_cache[state] = (actions, np.cumsum(counts) / sum(counts))
            actions, cumulative = self._draw_cache[state]
            token = actions[min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(actions) - 1)]
            tokens.append(token)
            state = self.transition(state, token)
        return tuple(tokens)

    # ------------------------------------------------------------------ moves of a search

    def neighbors(self, arch) -> list[tuple]:
        """The legal archs one edit away: a layer replaced, inserted or removed, or the terminal swapped."""
        arch = self.validate(arch)
        layers, terminal = arch[:-1], arch[-1]
        candidates = [layers[:k] + (t,) + layers[k + 1:] + (terminal,) for k in range(len(layers)) for t in self.tokens]
        candidates += [layers[:k] + (t,) + layers[k:] + (terminal,) for k in range(len(layers) + 1) for t in self.tokens]
        candidates += [layers[:k] + layers[k + 1:] + (terminal,) for k in range(len(layers))]
        candidates += [layers + (t,) for t in TERMINALS]
        return [c for c in dict.fromkeys(candidates) if c != arch and self._legal(c)]

    def _legal(self, tokens: tuple) -> bool:
        if len(tokens) > self.max_depth + 1 or tokens[-1] not in TERMINALS:
            return False
        state = self.start_state()
        for token in tokens:
            if state is None or token not in self.actions(state):
                return False
            state = self.transition(state, token)
        return state is None

    def mutate(self, arch, rng=None) -> tuple:
        """A uniformly random neighbour (`neighbors`): one layer replaced, inserted or removed, or the terminal."""
        options, rng = self.neighbors(arch), as_rng(rng)
        if not options:
            raise InvalidValueError(f"{self.format(arch)} has no neighbour in {self!r}: nothing to mutate to")
        return options[int(rng.integers(len(options)))]

    def crossover(self, a, b, rng=None) -> tuple:
        """One-point crossover: a's first i layers then b's layers from j on and b's terminal, (i, j)
        uniform among the cuts that give a legal chain (i = 0, j = 0, giving b, always does)."""
        a, b, rng = self.validate(a), self.validate(b), as_rng(rng)
        children = [a[:i] + b[j:] for i in range(len(a)) for j in range(len(b)) if self._legal(a[:i] + b[j:])]
        return children[int(rng.integers(len(children)))]

    @property
    def choices(self) -> list[Choice]:
        """`max_depth` layer slots (each a token or '-', none) and the terminal: a decoder, see from_choices."""
        return [Choice(f"layer {k + 1}", (EMPTY,) + self.tokens) for k in range(self.max_depth)] + \
            [Choice("terminal", TERMINALS)]

    def from_choices(self, values: Sequence[str]) -> tuple:
        """The chain of the slots' layers, in order, *skipping* '-' and any layer the rules forbid
        where it stands; GAP after FC becomes SM. Every combination (a controller's, Optuna's) gives
        a legal arch, and from_choices(to_choices(arch)) == arch."""
        choices = self.choices
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != len(choices):
            raise InvalidValueError(f"from_choices takes {len(choices)} values ({self.max_depth} layer slots and "
                                    f"the terminal), got {short(values)}")
        state, tokens = self.start_state(), []
        for choice, value in zip(choices[:-1], values[:-1]):
            choice.index(value)  # an unknown value is an error, a forbidden one is skipped
            if value != EMPTY and value in self.actions(state):
                tokens.append(str(value))
                state = self.transition(state, value)
        choices[-1].index(values[-1])
        terminal = str(values[-1]) if values[-1] in self.actions(state) else "SM"
        return tuple(tokens) + (terminal,)

    def to_choices(self, arch) -> list:
        arch = self.validate(arch)
        return list(arch[:-1]) + [EMPTY] * (self.max_depth - len(arch) + 1) + [arch[-1]]

    # ------------------------------------------------------------------ graph and network

    def to_graph(self, arch, cell: str | None = None):
        """The chain: node k is the representation after k layers (label 'channels@n×n', or the FC
        width), edge k the token that made it, the last node the logits."""
        arch = self.validate(arch)
        if cell is not None and not (isinstance(cell, str) and cell == "chain"):
            raise InvalidValueError(f"a LayerSpace network is one chain; cell must be None or 'chain', not {short(cell)}")
        from nasnb.spaces.layers_network import layer_graph

        return layer_graph(self, arch, self._walk(arch)[1:], [self._spec[t] for t in arch])

    def build(self, arch, num_classes: int = 10, in_channels: int = 1, batch_norm: bool = True):
        """The network of `arch` (layers_network.py); batch_norm after each conv (the authors' code
        has it as an option, off for CIFAR-10; on here so that a few epochs train on a CPU)."""
        from nasnb.checks import check_bool
        from nasnb.spaces.layers_network import LayerNetwork

        arch = self.validate(arch)
        num_classes = check_int("num_classes", num_classes, minimum=1, example=10)
        in_channels = check_int("in_channels", in_channels, minimum=1, example=1)
        sizes = [s.size for s in self._walk(arch)[:-1]]
        return LayerNetwork(arch, [self._spec[t] for t in arch], sizes, num_classes=num_classes,
                            in_channels=in_channels, batch_norm=check_bool("batch_norm", batch_norm))
