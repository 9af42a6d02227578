"""The network of a TransformerSpace architecture: a small encoder over a sequence of tokens.

    tokens (B, L) -embed + position-> (B, L, d) -layer 1 ... layer n-> LayerNorm -> last position
    -Linear-> (B, num_classes)

The data come as the float tensors every nasnb data set is (`nasnb.data_sequences`): x of shape
(B, 1, 1, L) holding token ids, so TrainEvaluator, `nasnb.train.fit` and the FLOP counter use
them unchanged; `forward` rounds them back to ints. The answer is read at the last position,
where the tasks put their query: a network without attention sees nothing else there.

A layer (Vaswani et al. 2017, "Attention is all you need"; Xiong et al. 2020 for the norms):

    pre   x = x + Attn(LN(x));   x = x + FFN(LN(x))       GPT-2's order: trains without warm-up
    post  x = LN(x + Attn(x));   x = LN(x + FFN(x))       the original transformer's order
    rms   x = x + Attn(RMS(x));  x = x + FFN(RMS(x))      pre-norm with RMSNorm (T5, LLaMA)

    Attn(x) = concat_h softmax(Q_h K_h^T / sqrt(d/h) [+ causal mask]) V_h  W_o,  h heads of d/h
    FFN(x)  = act(x W_1 + b_1) W_2 + b_2,  W_1 of d x width

A sublayer with 0 heads or width 0 is left out, norm and residual with it, so a layer with
neither is the identity (it has no parameters), whatever its norm says.
"""
from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU}  # swish = x * sigmoid(x) (SiLU)


class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich 2019): y = g * x / sqrt(mean(x^2) + eps).

    LayerNorm without the mean subtraction and the bias: cheaper, and as good in T5 and LLaMA.
    """

    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


class SelfAttention(nn.Module):
    """Multi-head self-attention written out: one projection for Q, K, V, then `heads` softmaxes."""

    def __init__(self, d: int, heads: int, causal: bool):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.last_weights = None  # (B, heads, L, L) of the last forward: what the notebook plots

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, d) -> (B, L, d)
        B, L, d = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, L, d/h)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)  # (B, h, L, L)
        if self.causal:  # position i sees positions <= i only
            scores = scores.masked_fill(torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
        weights = scores.softmax(-1)
        self.last_weights = weights.detach()
        return self.out((weights @ v).transpose(1, 2).reshape(B, L, d))


class TransformerLayer(nn.Module):
    """One searched layer: attention with `heads` heads (0: none), an FFN of `width` (0: none)."""

    def __init__(self, d: int, heads: int, width: int, norm: str, activation: str, causal: bool = False):
        super().__init__()
        self.norm_kind = norm
        make_norm = RMSNorm if norm == "rms" else nn.LayerNorm
        self.attn = SelfAttention(d, heads, causal) if heads else None
        self.attn_norm = make_norm(d) if heads else None
        self.ffn = nn.Sequential(nn.Linear(d, width), ACTIVATIONS[activation](), nn.Linear(width, d)) if width else None
        self.ffn_norm = make_norm(d) if width else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for sublayer, norm in ((self.attn, self.attn_norm), (self.ffn, self.ffn_norm)):
            if sublayer is None:
                continue
            x = norm(x + sublayer(x)) if self.norm_kind == "post" else x + sublayer(norm(x))
        return x


class TransformerNetwork(nn.Module):
    """Token and position embeddings, the layers of `arch`, a LayerNorm and a linear head read at the
    last position. `layers` holds one (heads, width, norm, activation) per layer."""

    def __init__(self, arch, layers, *, d_model: int, vocab: int, seq_len: int, num_classes: int,
                 causal: bool = False):
        super().__init__()
        self.arch, self.vocab, self.seq_len = arch, vocab, seq_len
        self.embed = nn.Embedding(vocab, d_model)
        self.position = nn.Embedding(seq_len, d_model)
        self.layers = nn.ModuleList(TransformerLayer(d_model, *layer, causal=causal) for layer in layers)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 1, L) float token ids (a nasnb sequence data set) or (B, L) ints -> (B, L) long."""
        if x.ndim == 4:
            x = x.reshape(x.shape[0], -1)
        if x.ndim != 2 or x.shape[1] != self.seq_len:
            raise ValueError(f"this network reads sequences of {self.seq_len} tokens, shape (B, 1, 1, {self.seq_len}) "
                             f"or (B, {self.seq_len}); got {tuple(x.shape)}: build it with seq_len=...")
        tokens = x.round().long() if x.is_floating_point() else x.long()
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab):
            raise ValueError(f"token ids must lie in [0, {self.vocab - 1}] (vocab={self.vocab}); got "
                             f"[{int(tokens.min())}, {int(tokens.max())}]")
        return tokens

    def features(self, x: torch.Tensor) -> torch.Tensor:  # -> (B, L, d) before the final norm
        tokens = self.tokens(x)
        h = self.embed(tokens) + self.position(torch.arange(tokens.shape[1], device=tokens.device))
        for layer in self.layers:
            h = layer(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # -> (B, num_classes)
        return self.head(self.norm(self.features(x))[:, -1])
