"""A transformer search space: a stack of layers, each choosing its attention, FFN, norm and activation.

The choices of the transformer NAS papers, made small enough to train in seconds on a CPU: the
Evolved Transformer (So, Liang & Le 2019) searched per-block layer types, normalisation and
activations; HAT (Wang et al. 2020) and AutoFormer (Chen et al. 2021) search per-layer head
counts, FFN widths and the depth; Primer (So et al. 2021) found squared ReLU and extra
convolutions. Here, per layer (transformer_network.py has the maths):

    heads       multi-head self-attention with 1, 2 or 4 heads of d_model / heads, or 0: none
    ffn         a feed-forward block of that hidden width (2x or 4x d_model), or 0: none
    norm        'pre' (LayerNorm before each sublayer), 'post' (after the residual), 'rms'
                (pre-norm with RMSNorm)
    activation  of the FFN: 'relu', 'gelu' or 'swish'

and the depth, one of `depths`. An architecture is a tuple of `Layer(heads, ffn, norm, activation)`,
one per layer, its length the depth; written 'L1:h2-f64-pre-gelu|L2:h0-f128-rms-relu'.
With P = |heads| |ffn| |norms| |activations| options per layer,

    len(space) = sum over d in depths of P^d;   default P = 4*3*3*3 = 108: 137,320,380

Some different architectures build the same network (`canonical` maps them to one):
  - without an FFN (ffn 0) the activation is unused: canonical writes the first activation;
  - a layer with neither attention nor FFN is the identity, whatever its norm: it has no
    parameters and (A, I, B), (A, B, I) and (A, B) all compute B(A(x)), with the same weights for
    the same seed. canonical drops identity layers, then pads with 'h0-f0-<first norm>-<first
    activation>' up to the smallest depth in `depths` that holds the real layers.
  `count_canonical()` counts the distinct networks: with m non-identity layer kinds, every k real
  layers (k = 0 .. max depth) are one network each, sum_{k=0..max(depths)} m^k of them; default
  m = 3*3 + 3*2*3*3 = 81 (without an identity option: sum over depths of m^d).

`choices` are the depth, then `max(depths)` slots of four choices; from_choices uses the first
`depth` slots, the others are inactive (to_choices fills them with the first options).
"""
from __future__ import annotations

import itertools
import re
from typing import Iterator, NamedTuple, Sequence

import networkx as nx
import numpy as np

from nasnb.checks import check_bool, check_distinct_ints, check_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.base import Choice, SpaceValue, as_rng, check_name, checked_len, pick

NORMS = ("pre", "post", "rms")
ACTIVATIONS = ("relu", "gelu", "swish")
ENUMERATE_LIMIT = 10**6
_LAYER = re.compile(r"L([0-9]{1,3}):h([0-9]{1,4})-f([0-9]{1,6})-([a-z]{1,8})-([a-z]{1,8})")  # ASCII digits only


class Layer(NamedTuple):
    """One layer's choices: attention heads (0: none), FFN width (0: none), norm, activation."""

    heads: int
    ffn: int
    norm: str
    activation: str


def _ints(name, value, minimum, maximum, example) -> tuple:
    return check_distinct_ints(name, value, minimum=minimum, maximum=maximum, example=example)


def _names(name, value, known, example) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise InvalidTypeError(f"{name} must be a non-empty sequence of names, got {short(value)}; e.g. {name}={example}")
    out = tuple(check_name(name, v, known, name.rstrip("s")) for v in value)
    if len(set(out)) != len(out):
        raise InvalidValueError(f"{name}={out} repeats a value; list each once, e.g. {name}={example}")
    return out


class TransformerSpace(SpaceValue):
    """Stacks of transformer layers (see the module docstring); build() makes the encoder.

    Args:
        depths: the depths to choose from (default 1-4); `max_depth=n` is depths=(1, ..., n).
        heads: attention heads per layer, 0 for none; each must divide d_model.
        ffn: FFN hidden widths, 0 for none (default 0, 2 d_model, 4 d_model).
        norms, activations: subsets of NORMS and ACTIVATIONS.
        d_model: the width of every layer (the token embedding's size).
    """

    name = "transformer"
    cell_names = ("chain",)
    # How these networks train well (`nasnb search` reads it): Adam, as transformers are trained. Two
    # attention layers on seq-count, 4 epochs: val accuracy 0.79 with these, 0.30 with DARTS' SGD (lr 0.025).
    training_defaults = {"optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0}

    def __init__(self, depths: Sequence[int] = (1, 2, 3, 4), heads: Sequence[int] = (0, 1, 2, 4),
                 ffn: Sequence[int] | None = None, norms: Sequence[str] = NORMS,
                 activations: Sequence[str] = ACTIVATIONS, d_model: int = 32, *, max_depth: int | None = None):
        self.d_model = check_int("d_model", d_model, minimum=1, maximum=4096, example=32)
        if max_depth is not None:
            depths = tuple(range(1, check_int("max_depth", max_depth, minimum=1, maximum=64, example=4) + 1))
        self.depths = tuple(sorted(_ints("depths", depths, 1, 64, (1, 2, 3, 4))))
        self.heads = _ints("heads", heads, 0, 256, (0, 1, 2, 4))
        bad = [h for h in self.heads if h and self.d_model % h]
        if bad:
            raise InvalidValueError(f"heads {bad} do not divide d_model={self.d_model}: each head has d_model / heads "
                                    f"dimensions; e.g. heads=(0, 1, 2, 4) with d_model=32")
        self.ffn = _ints("ffn", (0, 2 * self.d_model, 4 * self.d_model) if ffn is None else ffn, 0, 65536,
                         (0, 64, 128))
        self.norms = _names("norms", norms, NORMS, NORMS)
        self.activations = _names("activations", activations, ACTIVATIONS, ACTIVATIONS)
        self.max_depth = self.depths[-1]
        self.per_layer = len(self.heads) * len(self.ffn) * len(self.norms) * len(self.activations)
        self.layer_options = tuple(Layer(*c) for c in itertools.product(self.heads, self.ffn, self.norms, self.activations))

    def __repr__(self) -> str:
        return (f"TransformerSpace(depths={self.depths}, heads={self.heads}, ffn={self.ffn}, norms={self.norms}, "
                f"activations={self.activations}, d_model={self.d_model})")

    def __len__(self) -> int:
        return checked_len(sum(self.per_layer ** d for d in self.depths), self, "sum(P ** d for d in space.depths)")

    def count_canonical(self) -> int:
        """The number of distinct networks (canonical archs), by the module docstring's formula."""
        m = sum(len(self.norms) * (len(self.activations) if f else 1) for h in self.heads for f in self.ffn if h or f)
        if 0 in self.heads and 0 in self.ffn:
            return sum(m ** k for k in range(self.max_depth + 1))
        return sum(m ** d for d in self.depths)

    # ------------------------------------------------------------------ values and strings

    def _example(self) -> str:
        return f"'L1:h{self.heads[-1]}-f{self.ffn[-1]}-{self.norms[0]}-{self.activations[0]}'"

    def validate(self, arch) -> tuple:
        """`arch` as a tuple of Layers, or an error naming the layer and field that is wrong."""
        if isinstance(arch, str):
            raise InvalidValueError(f"got the string {short(arch)}; read arch strings with space.parse(text)")
        if not isinstance(arch, (Sequence, np.ndarray)):
            raise InvalidTypeError(f"a TransformerSpace arch is a tuple of Layer(heads, ffn, norm, activation), "
                                   f"one per layer, not {short(arch)} ({type(arch).__name__}); "
                                   f"e.g. (Layer(2, {self.ffn[-1]}, 'pre', 'gelu'),)")
        if len(arch) not in self.depths:
            raise InvalidValueError(f"arch has {len(arch)} layers; the depth must be one of {self.depths}")
        return tuple(self._layer(k, layer) for k, layer in enumerate(arch, start=1))

    def _layer(self, k: int, layer) -> Layer:
        if isinstance(layer, (str, bytes)) or not isinstance(layer, (Sequence, np.ndarray)) or len(layer) != 4:
            raise InvalidTypeError(f"layer {k} must be (heads, ffn, norm, activation), got {short(layer)}; "
                                   f"e.g. Layer(2, {self.ffn[-1]}, 'pre', 'gelu')")
        h, f, norm, act = layer
        for what, value, options in (("heads", h, self.heads), ("ffn", f, self.ffn)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) not in options:
                raise InvalidValueError(f"layer {k}: {what}={short(value)} is not an option; {what} are {options}")
        for what, value, options in (("norm", norm, self.norms), ("activation", act, self.activations)):
            if not isinstance(value, str) or value not in options:
                raise InvalidValueError(f"layer {k}: {what}={short(value)} is not an option; choose from {options}")
        return Layer(int(h), int(f), str(norm), str(act))

    def format(self, arch) -> str:
        """'L1:h2-f64-pre-gelu|L2:h0-f128-rms-relu': layer k's heads, FFN width, norm, activation."""
        return "|".join(f"L{k}:h{l.heads}-f{l.ffn}-{l.norm}-{l.activation}"
                        for k, l in enumerate(self.validate(arch), start=1))

    def parse(self, text: str) -> tuple:
        """The inverse of format() (spaces are ignored); malformed text names the layer at fault."""
        if not isinstance(text, str):
            raise InvalidTypeError(f"parse expects a string like {self._example()}, got {short(text)} "
                                   f"({type(text).__name__})")
        if len(text) > 40 * (self.max_depth + 1):
            raise InvalidValueError(f"arch string has {len(text):,} characters, longer than any of this space; "
                                    f"e.g. {self._example()}")
        parts = re.sub(r"\s+", "", text).split("|")
        if len(parts) not in self.depths:
            raise InvalidValueError(f"arch string has {len(parts)} layers ('|'-separated); the depth must be one "
                                    f"of {self.depths}, e.g. {self._example()}")
        layers = []
        for k, part in enumerate(parts, start=1):
            match = _LAYER.fullmatch(part)
            if match is None:
                raise InvalidValueError(f"cannot read layer {k} {short(part)}: write L{k}:h<heads>-f<ffn width>-"
                                        f"<norm>-<activation>, e.g. {self._example()}")
            if int(match[1]) != k:
                raise InvalidValueError(f"layer {k} is numbered L{match[1]}; number the layers L1, L2, ... in order")
            layers.append((int(match[2]), int(match[3]), match[4], match[5]))
        return self.validate(layers)

    def canonical(self, arch) -> tuple:
        """One arch per network (module docstring): unused activations written as the first option,
        identity layers dropped, then identities appended up to the smallest depth that holds the rest."""
        layers = [l._replace(activation=self.activations[0]) if l.ffn == 0 else l for l in self.validate(arch)]
        real = tuple(l for l in layers if l.heads or l.ffn)
        depth = min(d for d in self.depths if d >= len(real))
        return real + (Layer(0, 0, self.norms[0], self.activations[0]),) * (depth - len(real))

    # ------------------------------------------------------------------ listing and sampling

    def enumerate(self) -> Iterator[tuple]:
        """Every arch, shallow first; refused above ENUMERATE_LIMIT (10^6)."""
        if sum(self.per_layer ** d for d in self.depths) > ENUMERATE_LIMIT:
            raise InvalidValueError(f"{self!r} has {len(self):,} architectures, too many to list (at most "
                                    f"{ENUMERATE_LIMIT:,}); sample them with space.sample(rng)")
        return (arch for d in self.depths for arch in itertools.product(self.layer_options, repeat=d))

    def sample(self, rng=None) -> tuple:
        """A uniformly random arch: depth d with probability P^d / len(space), then each layer uniform
        (so the deepest depth dominates: 99 % of the default space has 4 layers)."""
        rng = as_rng(rng)
        weights = np.array([float(self.per_layer) ** d for d in self.depths])
        depth = self.depths[int(rng.choice(len(self.depths), p=weights / weights.sum()))]
        return tuple(pick(rng, self.layer_options) for _ in range(depth))

    # ------------------------------------------------------------------ moves of a search

    def neighbors(self, arch) -> list[tuple]:
        """The archs one choice away: one field of one layer changed, or the depth changed (deeper:
        copies of the last layer appended; shallower: the last layers dropped)."""
        arch, out = self.validate(arch), []
        for k, layer in enumerate(arch):
            for field, options in zip(Layer._fields, (self.heads, self.ffn, self.norms, self.activations)):
                out += [arch[:k] + (layer._replace(**{field: v}),) + arch[k + 1:] for v in options if v != getattr(layer, field)]
        out += [arch[:d] + (arch[-1],) * max(0, d - len(arch)) for d in self.depths if d != len(arch)]
        return out

    def mutate(self, arch, rng=None) -> tuple:
        """A uniformly random neighbour (`neighbors`): exactly one choice changed."""
        options = self.neighbors(arch)
        if not options:
            raise InvalidValueError(f"{self!r} has a single architecture; there is nothing to mutate to")
        return options[int(as_rng(rng).integers(len(options)))]

    def crossover(self, a, b, rng=None) -> tuple:
        """Uniform crossover by layer: the depth of a or b (a coin), then layer k of a or b (a coin)
        where both have it, else of the parent that has it."""
        a, b, rng = self.validate(a), self.validate(b), as_rng(rng)
        depth = len(a) if rng.random() < 0.5 else len(b)
        coins = rng.random(depth) < 0.5
        return tuple((a[k] if coins[k] or k >= len(b) else b[k]) if k < len(a) else b[k] for k in range(depth))

    @property
    def choices(self) -> list[Choice]:
        slots = [Choice(f"L{k} {field}", options) for k in range(1, self.max_depth + 1)
                 for field, options in (("heads", self.heads), ("ffn", self.ffn), ("norm", self.norms),
                                        ("activation", self.activations))]
        return [Choice("depth", self.depths)] + slots

    def from_choices(self, values: Sequence) -> tuple:
        """The arch of the first `depth` slots (values[0] is the depth); later slots are ignored."""
        choices = self.choices
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)) or len(values) != len(choices):
            raise InvalidValueError(f"from_choices takes {len(choices)} values (the depth, then heads, ffn, norm, "
                                    f"activation of {self.max_depth} layers), got {short(values)}")
        for choice, value in zip(choices, values):
            choice.index(value)
        depth = int(values[0])
        return self.validate([tuple(values[1 + 4 * k:5 + 4 * k]) for k in range(depth)])

    def to_choices(self, arch) -> list:
        arch = self.validate(arch)
        pad = [self.heads[0], self.ffn[0], self.norms[0], self.activations[0]] * (self.max_depth - len(arch))
        return [len(arch)] + [v for layer in arch for v in layer] + pad

    # ------------------------------------------------------------------ graph and network

    def to_graph(self, arch, cell: str | None = None) -> nx.DiGraph:
        """The layer stack as a chain for `nasnb.viz.cells.draw_cell`: node 0 the tokens, node k the
        representation after layer k (label d_model), the last the logits; edge k layer k's
        notation ('h2-f64-pre-gelu', or 'identity'), the first the embedding, the last the head."""
        arch = self.validate(arch)
        if cell is not None and not (isinstance(cell, str) and cell == "chain"):
            raise InvalidValueError(f"a TransformerSpace network is one chain; cell must be None or 'chain', "
                                    f"not {short(cell)}")
        g = nx.DiGraph(space=self.name, cell="chain", arch=self.format(arch))
        g.add_node(0, label="tokens", role="input")
        ops = ["embed+pos"] + [f"h{l.heads}-f{l.ffn}-{l.norm}" + (f"-{l.activation}" if l.ffn else "")
                               if l.heads or l.ffn else "identity" for l in arch] + ["LN+linear"]
        for node, op in enumerate(ops, start=1):
            last = node == len(ops)
            g.add_node(node, label="logits" if last else str(self.d_model), role="output" if last else "intermediate")
            g.add_edge(node - 1, node, op=op, layer=node - 1, searched=0 < node - 1 <= len(arch))
        return g

    def build(self, arch, num_classes: int = 9, in_channels: int = 1, vocab: int = 4, seq_len: int = 9,
              causal: bool = False):
        """The encoder of `arch` (transformer_network.py). The defaults fit the 'count' task of
        nasnb.data_sequences; other tasks: ``build_kwargs=nasnb.data_sequences.build_kwargs(name)``.
        in_channels must be 1 (one token per position); causal: each position sees only earlier ones."""
        from nasnb.spaces.transformer_network import TransformerNetwork

        arch = self.validate(arch)
        num_classes = check_int("num_classes", num_classes, minimum=1, example=9)
        check_int("in_channels", in_channels, minimum=1, maximum=1, example=1)
        vocab = check_int("vocab", vocab, minimum=1, maximum=10**6, example=4)
        seq_len = check_int("seq_len", seq_len, minimum=1, maximum=10**5, example=9)
        return TransformerNetwork(arch, arch, d_model=self.d_model, vocab=vocab, seq_len=seq_len,
                                  num_classes=num_classes, causal=check_bool("causal", causal))
