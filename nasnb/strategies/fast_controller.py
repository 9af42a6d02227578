"""REINFORCE's controller arithmetic in numpy: the sampling pass, its gradient by hand, and Adam.

`Controller` (reinforce.py) is the model, written in torch; this module runs the same model without
torch's autograd, because the controller is tiny (vectors of 64, matrices of 256 x 64) and eager torch
spends 5-70 us of bookkeeping on each of the ~60 ops of a pass, ~150 of a backward pass and Adam:
6-10 ms a trial. A numpy op on such arrays costs 1-3 us. The numbers are the same model's (the tests
check them against `Controller` and torch autograd), and `Controller` stays the reference and the
public face: its parameters *are* this module's arrays (below), so `search.controller` always holds
the current θ.

One flat buffer holds every weight, in this order (H = hidden size, K decisions of n_k options):

    start (H) | W_ih (4H, H) | W_hh (4H, H) | b_ih (4H) | b_hh (4H) | embeddings (Σ_{k<K-1} n_k, H)
    | heads' weights (Σ_k n_k, H) | heads' biases (Σ_k n_k)

and each torch parameter of the controller becomes a view of its piece (`p.data = flat[a:b].view(...)`),
so numpy reads and Adam writes the parameters' own memory, and the gradient (`p.grad`) is a view of
a second buffer of the same layout. The heads stacked in one matrix let the backward pass do all
decisions' head gradients in a few array ops. The arithmetic is in the parameters' dtype: float32
for a strategy's controller, like any torch module, which numpy can share without a copy and which
torch's Adam would use too; the tests run it in float64 (`controller.double()`) to check the
gradient to 1e-8.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import torch


class Pass(NamedTuple):
    """One walk through the decisions, with what the backward pass needs (shapes: K decisions, H
    hidden units, R = Σ_k n_k rows of the stacked heads)."""

    actions: list  # one option index per decision
    log_prob: float  # Σ_k log π(a_k | a_<k)
    entropy: float  # Σ_k H(π(· | a_<k)) along this path
    probs: list  # per decision k: π(· | a_<k), an array of shape (n_k,) (views of p below)
    x: np.ndarray  # (K, H) the inputs: the start vector, then the embedding of the previous action
    h: np.ndarray  # (K + 1, H) h[0] = 0, h[k + 1] the LSTM output at decision k
    c: np.ndarray  # (K + 1, H) the cell states likewise
    tanh_pre: np.ndarray  # (K, 4, H) tanh of the gate pre-activations (halved for the sigmoid gates)
    gates: np.ndarray  # (K, 4, H) i, f, g, o
    tanh_c: np.ndarray  # (K, H) tanh(c[k + 1])
    squashed: np.ndarray | None  # (R,) tanh(z / T), when there is a tanh_constant
    p: np.ndarray  # (R,) every decision's probabilities, stacked
    log_p: np.ndarray  # (R,) their logarithms
    entropies: np.ndarray  # (K,)


class FastController:
    """Numpy forward and backward passes of a `Controller`, which it binds (see the module docstring).

    `sample(generator)` draws as `Controller.sample` does: torch.multinomial(p, 1) draws
    E ~ Exp(1) for each option from the generator and takes argmax_j p_j / E_j (torch's one-sample
    path, the "exponential race": P(argmax = j) = p_j). This draws the same E from the same generator,
    all decisions' at once (one exponential_ call of Σ_k n_k numbers gives the numbers of the K calls
    of n_k in a row; a test checks it). The actions are therefore `Controller.sample`'s, except
    where a near-tie is decided the other way by the float rounding of p (numpy's sums against
    torch's). Should torch change how it draws, the sequences would differ, never their distribution.
    """

    def __init__(self, controller):
        self.controller = controller
        self.temperature, self.tanh_constant = controller.temperature, controller.tanh_constant
        self.num_options = list(controller.num_options)
        K, H = len(self.num_options), controller.start.shape[1]
        self.hidden_size = H
        self.starts = np.cumsum([0] + self.num_options)  # decision k's rows: starts[k]:starts[k + 1]
        self.bounds = list(zip(self.starts[:-1].tolist(), self.starts[1:].tolist()))  # plain ints, for the loops
        self.row_decision = np.repeat(np.arange(K), self.num_options)  # (R,) the decision of each row
        self.bind()

    # ---------------------------------------------------------------- the flat layout

    def _pieces(self) -> list:
        """(parameter, its offset in the flat buffer), in the flat order."""
        c = self.controller
        order = [c.start, c.lstm.weight_ih, c.lstm.weight_hh, c.lstm.bias_ih, c.lstm.bias_hh,
                 *[e.weight for e in c.embeddings], *[head.weight for head in c.heads], *[head.bias for head in c.heads]]
        offsets = np.cumsum([0] + [p.numel() for p in order])
        return list(zip(order, offsets[:-1].tolist()))

    def bind(self) -> None:
        """Move the controller's parameters into one flat buffer (their values unchanged) and make
        the numpy views. Called again when the parameters were replaced (`.double()`, `.to()`)."""
        pieces = self._pieces()
        dtype = pieces[0][0].dtype
        flat = torch.cat([p.detach().reshape(-1).to(dtype) for p, _ in pieces])
        grad = torch.zeros_like(flat)
        self.params = [p for p, _ in pieces]
        self._grad_views = []
        with torch.no_grad():
            for p, offset in pieces:
                p.data = flat[offset:offset + p.numel()].view(p.shape)
                self._grad_views.append(grad[offset:offset + p.numel()].view(p.shape))
        self.flat, self.flat_grad = flat.numpy(), grad.numpy()  # the same memory as the parameters
        self.dtype = self.flat.dtype
        # sigmoid(x) = (1 + tanh(x / 2)) / 2: one tanh for all four gates, then a scale and a shift
        self.pre_scale = np.array([0.5, 0.5, 1.0, 0.5], self.dtype)[:, None]  # (4, 1) gates i, f, g, o
        self.shift = np.array([0.5, 0.5, 0.0, 0.5], self.dtype)[:, None]
        self.slope = np.array([0.25, 0.25, 1.0, 0.25], self.dtype)[:, None]  # d gate/d pre = slope (1 - tanh^2)
        self._pointers, self._torch_dtype = [p.data_ptr() for p in self.params], dtype
        self.offsets = {id(p): (offset, p.numel()) for p, offset in pieces}
        name_of = {id(p): name for name, p in self.controller.named_parameters()}
        self._named = [(name_of[id(p)], p, offset) for p, offset in pieces]

        def view(buffer, p):
            offset, n = self.offsets[id(p)]
            return buffer[offset:offset + n].reshape(tuple(p.shape))

        c, K, H, R = self.controller, len(self.num_options), self.hidden_size, self.starts[-1]
        e0 = self.offsets[id(c.embeddings[0].weight)][0] if K > 1 else None
        w0, b0 = self.offsets[id(c.heads[0].weight)][0], self.offsets[id(c.heads[0].bias)][0]
        for name, buffer in (("", self.flat), ("grad_", self.flat_grad)):
            setattr(self, name + "start", view(buffer, c.start)[0])
            setattr(self, name + "w_ih", view(buffer, c.lstm.weight_ih))
            setattr(self, name + "w_hh", view(buffer, c.lstm.weight_hh))
            setattr(self, name + "b_ih", view(buffer, c.lstm.bias_ih))
            setattr(self, name + "b_hh", view(buffer, c.lstm.bias_hh))
            emb = buffer[e0:e0 + (R - self.num_options[-1]) * H].reshape(-1, H) if K > 1 else None
            setattr(self, name + "embeddings", emb)  # (Σ_{k<K-1} n_k, H): decision k's rows from starts[k]
            setattr(self, name + "head_w", buffer[w0:w0 + R * H].reshape(R, H))
            setattr(self, name + "head_b", buffer[b0:b0 + R])
        self.head_ws = [self.head_w[lo:hi] for lo, hi in self.bounds]
        self.head_bs = [self.head_b[lo:hi] for lo, hi in self.bounds]

    def named_pieces(self) -> list:
        """(parameter name, parameter, offset in the flat buffer), in the flat order."""
        return self._named

    def check_bound(self) -> None:
        """Rebind if someone replaced the parameters' tensors (the views would read stale memory)."""
        if [p.data_ptr() for p in self.params] != self._pointers or self.params[0].dtype != self._torch_dtype:
            self.bind()

    def version(self) -> tuple:
        """Changes when torch changes a weight in place (load_state_dict, a hand edit); the caller
        counts its own numpy writes (Adam's steps), which torch does not see."""
        return tuple(p._version for p in self.params)

    # ---------------------------------------------------------------- forward

    def forward(self, actions: Sequence[int] | None = None, generator: torch.Generator | None = None) -> Pass:
        """Take the given actions, or sample them from `generator`; the LSTM equations (PyTorch's
        nn.LSTMCell, gate order i, f, g, o) and the heads of `Controller._walk`, written out."""
        K, H, dtype = len(self.num_options), self.hidden_size, self.dtype
        x, h, c = np.empty((K, H), dtype), np.zeros((K + 1, H), dtype), np.zeros((K + 1, H), dtype)
        tanh_pre, gates, tanh_c = np.empty((K, 4, H), dtype), np.empty((K, 4, H), dtype), np.empty((K, H), dtype)
        R = int(self.starts[-1])
        logits, shifted_exp, maxima = np.empty(R, dtype), np.empty(R, dtype), np.zeros(K, dtype)
        squashed = np.empty(R, dtype) if self.tanh_constant is not None else None
        bias = self.b_ih + self.b_hh  # (4H,)
        if generator is not None:  # torch.multinomial(p, 1)'s draws, all decisions' in one call (class docstring)
            race = torch.empty(R, dtype=torch.float32 if dtype == np.float32 else torch.float64)
            race = race.exponential_(1, generator=generator).numpy()
        taken, x[0] = [], self.start
        for k in range(K):
            lo, hi = self.bounds[k]
            pre = self.w_ih @ x[k] + bias
            if k:  # h_{-1} = 0
                pre += self.w_hh @ h[k]
            np.tanh(pre.reshape(4, H) * self.pre_scale, out=tanh_pre[k])  # (4, H) for the gates i, f, g, o
            np.multiply(tanh_pre[k], self.pre_scale, out=gates[k])
            gates[k] += self.shift  # i, f, o: sigmoid(pre); g: tanh(pre)
            i, f, g, o = gates[k]
            np.multiply(f, c[k], out=c[k + 1])
            c[k + 1] += i * g  # c_k = f ⊙ c_{k-1} + i ⊙ g
            np.tanh(c[k + 1], out=tanh_c[k])
            np.multiply(o, tanh_c[k], out=h[k + 1])  # h_k = o ⊙ tanh(c_k)
            z = self.head_ws[k] @ h[k + 1] + self.head_bs[k]  # (n_k,)
            if squashed is not None:  # logits in [−c, c]: exp cannot overflow, no max to subtract
                np.tanh(z / self.temperature, out=squashed[lo:hi])
                np.multiply(squashed[lo:hi], self.tanh_constant, out=logits[lo:hi])  # c · tanh(z / T)
                np.exp(logits[lo:hi], out=shifted_exp[lo:hi])
            else:
                np.divide(z, self.temperature, out=logits[lo:hi])
                maxima[k] = logits[lo:hi].max()
                np.exp(logits[lo:hi] - maxima[k], out=shifted_exp[lo:hi])  # ∝ p: enough to sample
            if generator is not None:  # argmax p / E, E ~ Exp(1): an exact draw from p
                a = int(np.argmax(shifted_exp[lo:hi] / race[lo:hi]))
            else:
                a = int(actions[k])
            taken.append(a)
            if k + 1 < K:
                x[k + 1] = self.embeddings[lo + a]
        # log-softmax and entropies of all decisions at once, on the stacked rows
        sums = np.add.reduceat(shifted_exp, self.starts[:-1])  # (K,)
        log_p = logits - (maxima + np.log(sums))[self.row_decision]  # (R,)
        p = shifted_exp / sums[self.row_decision]
        entropies = -np.add.reduceat(p * log_p, self.starts[:-1])  # (K,)
        log_prob = float(log_p[self.starts[:-1] + taken].sum())
        probs = [p[lo:hi] for lo, hi in self.bounds]
        return Pass(taken, log_prob, float(entropies.sum()), probs, x, h, c, tanh_pre, gates, tanh_c, squashed,
                    p, log_p, entropies)

    def sample(self, generator: torch.Generator) -> Pass:
        return self.forward(generator=generator)

    # ---------------------------------------------------------------- backward

    def backward(self, passes: Sequence[Pass], advantages: Sequence[float], entropy_weight: float) -> float:
        """Write ∂loss/∂θ into the gradient buffer (and so into every `p.grad`), for

            loss = mean_i [ −A_i Σ_k log π(a_ik) − β Σ_k H_ik ]          (reinforce_loss)

        and return the loss. The chain rule, from the loss back to the weights, per decision k:

          logits l = c · tanh(z / T):   ∂loss/∂l_j = w (A p_j − A [j = a_k] + β p_j (log p_j + H_k)),
              w = 1 / batch, from ∂ log p_a / ∂l_j = [j = a] − p_j and ∂H / ∂l_j = −p_j (log p_j + H);
          ∂l/∂z = (c / T)(1 − tanh²(z / T))   (1 / T without the squash);
          z = W_k h_k + b_k:   ∂W_k = ∂z h_kᵀ,  ∂b_k = ∂z,  and h_k receives W_kᵀ ∂z;
          h_k = o ⊙ tanh(c_k):  ∂o = ∂h ⊙ tanh(c_k);  c_k receives ∂h ⊙ o ⊙ (1 − tanh²(c_k))
              plus what c_{k+1} = f_{k+1} ⊙ c_k + ... sends back, ∂c_{k+1} ⊙ f_{k+1};
          c_k = f ⊙ c_{k-1} + i ⊙ g:   ∂i = ∂c ⊙ g,  ∂f = ∂c ⊙ c_{k-1},  ∂g = ∂c ⊙ i;
          through the gate nonlinearities to the pre-activations G_k (4H,), then
          pre = W_ih x_k + b_ih + W_hh h_{k-1} + b_hh:   ∂W_ih = Σ_k G_k x_kᵀ, ∂W_hh = Σ_k G_k h_{k-1}ᵀ,
              ∂b_ih = ∂b_hh = Σ_k G_k;  h_{k-1} receives W_hhᵀ G_k (the recurrence, so k runs backwards);
              x_k receives W_ihᵀ G_k: the start vector for k = 0, else the embedding row of a_{k-1}.
        """
        K, H, R = len(self.num_options), self.hidden_size, self.starts[-1]
        w = 1.0 / len(passes)
        beta = float(entropy_weight)
        grad = self.flat_grad
        grad.fill(0.0)
        all_g, all_x, all_h, loss = [], [], [], 0.0
        for run, advantage in zip(passes, advantages):
            A = float(advantage)
            loss += w * (-A * run.log_prob - beta * run.entropy)
            taken_rows = self.starts[:-1] + run.actions
            d_logits = run.p * (A + beta * (run.log_p + run.entropies[self.row_decision]))
            d_logits[taken_rows] -= A
            d_logits *= w
            if run.squashed is not None:
                d_z = d_logits * (self.tanh_constant / self.temperature) * (1 - run.squashed * run.squashed)
            else:
                d_z = d_logits / self.temperature
            self.grad_head_b += d_z
            self.grad_head_w += d_z[:, None] * run.h[1:][self.row_decision]  # ∂z_j h_kᵀ, row by row
            d_h_heads = np.add.reduceat(d_z[:, None] * self.head_w, self.starts[:-1], axis=0)  # (K, H) W_kᵀ ∂z
            i, f, g, o = run.gates.transpose(1, 0, 2)  # each (K, H)
            d_c_of_h = o * (1 - run.tanh_c * run.tanh_c)  # ∂c_k/∂h_k-part: o ⊙ (1 − tanh²(c_k))
            slope = self.slope * (1 - run.tanh_pre * run.tanh_pre)  # (K, 4, H) d gate / d pre-activation
            # ∂pre = [∂c ⊙ g, ∂c ⊙ c_{k-1}, ∂c ⊙ i, ∂h ⊙ tanh(c_k)] ⊙ slope: the factors next to ∂c and ∂h
            factors = np.stack([g, run.c[:-1], i, run.tanh_c], axis=1) * slope  # (K, 4, H)
            d_pre = np.empty((K, 4, H), self.dtype)
            d_h_next, d_c_next = np.zeros(H, self.dtype), np.zeros(H, self.dtype)
            for k in range(K - 1, -1, -1):
                d_h = d_h_heads[k] + d_h_next
                d_c = d_h * d_c_of_h[k] + d_c_next
                np.multiply(factors[k], d_c, out=d_pre[k])
                np.multiply(factors[k, 3], d_h, out=d_pre[k, 3])
                d_c_next = d_c * f[k]
                d_h_next = d_pre[k].reshape(4 * H) @ self.w_hh
            d_pre = d_pre.reshape(K, 4 * H)
            d_x = d_pre @ self.w_ih  # (K, H)
            self.grad_start += d_x[0]
            if K > 1:
                self.grad_embeddings[taken_rows[:-1]] += d_x[1:]  # distinct rows: one per decision
            all_g.append(d_pre), all_x.append(run.x), all_h.append(run.h[:-1])
        d_pre, x, h_prev = (np.concatenate(a) if len(a) > 1 else a[0] for a in (all_g, all_x, all_h))
        self.grad_w_ih += d_pre.T @ x
        self.grad_w_hh += d_pre.T @ h_prev
        self.grad_b_ih += d_pre.sum(0)
        self.grad_b_hh[:] = self.grad_b_ih  # the two biases enter the sum alike
        for p, g in zip(self.params, self._grad_views):
            if p.grad is not g:
                p.grad = g  # views of the gradient buffer (zero_grad() may have dropped them)
        return loss


class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1) on a FastController's flat buffer, with torch.optim.Adam's
    arithmetic (no weight decay, not amsgrad), one step for all the weights at once:

        m ← m + (1 − β1)(g − m);   v ← β2 v + (1 − β2) g²;   θ ← θ − (lr / (1 − β1ᵗ)) m / (√v / √(1 − β2ᵗ) + ε)
    """

    def __init__(self, fast: FastController, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.fast, self.lr, self.betas, self.eps = fast, float(lr), tuple(betas), float(eps)
        self.steps = 0
        self.exp_avg, self.exp_avg_sq = np.zeros_like(fast.flat), np.zeros_like(fast.flat)

    def step(self, grad: np.ndarray) -> None:
        beta1, beta2 = self.betas
        theta = self.fast.flat
        if self.exp_avg.dtype != theta.dtype:  # the controller was moved to another dtype
            self.exp_avg, self.exp_avg_sq = self.exp_avg.astype(theta.dtype), self.exp_avg_sq.astype(theta.dtype)
        self.steps += 1
        self.exp_avg += (1 - beta1) * (grad - self.exp_avg)  # torch's lerp
        self.exp_avg_sq *= beta2
        self.exp_avg_sq += (1 - beta2) * grad * grad
        step_size = self.lr / (1 - beta1 ** self.steps)
        denom = np.sqrt(self.exp_avg_sq) / math.sqrt(1 - beta2 ** self.steps) + self.eps
        theta -= (step_size * self.exp_avg) / denom  # torch's addcdiv: (value · m) / denom

    def _views(self, buffer: np.ndarray) -> dict:
        """name -> the parameter's piece of `buffer`, as a tensor of its shape (shared memory)."""
        return {name: torch.from_numpy(buffer[offset:offset + p.numel()]).view(p.shape)
                for name, p, offset in self.fast.named_pieces()}

    @property
    def state(self) -> dict:
        """torch.optim.Adam's view of the same numbers: parameter -> {"step", "exp_avg", "exp_avg_sq"};
        empty before the first step."""
        if not self.steps:
            return {}
        m, v = self._views(self.exp_avg), self._views(self.exp_avg_sq)
        return {p: {"step": torch.tensor(float(self.steps)), "exp_avg": m[name], "exp_avg_sq": v[name]}
                for name, p, _ in self.fast.named_pieces()}

    def state_dict(self) -> dict:
        """Plain ints and tensors by parameter name (live views: the caller copies or writes them at once)."""
        return {"step": self.steps, "exp_avg": self._views(self.exp_avg), "exp_avg_sq": self._views(self.exp_avg_sq)}

    def load_state_dict(self, state: dict) -> None:
        names = [name for name, _, _ in self.fast.named_pieces()]
        if not int(state["step"]) and not state["exp_avg"]:
            self.steps, self.exp_avg, self.exp_avg_sq = 0, np.zeros_like(self.fast.flat), np.zeros_like(self.fast.flat)
            return
        if sorted(state["exp_avg"]) != sorted(names) or sorted(state["exp_avg_sq"]) != sorted(names):
            raise ValueError(f"the Adam state holds the weights {sorted(state['exp_avg'])}, this controller has "
                             f"{sorted(names)}")
        exp_avg, exp_avg_sq = np.zeros_like(self.fast.flat), np.zeros_like(self.fast.flat)
        for target, saved in ((exp_avg, state["exp_avg"]), (exp_avg_sq, state["exp_avg_sq"])):
            views = self._views(target)
            for name in names:
                views[name].copy_(saved[name])  # a shape that differs raises here
        self.steps, self.exp_avg, self.exp_avg_sq = int(state["step"]), exp_avg, exp_avg_sq


def adam_state_from_torch(optimizer_state: dict, names: list) -> dict:
    """A torch.optim.Adam state_dict (checkpoints of nasnb before the numpy controller) as
    `Adam.state_dict()` holds it: its per-parameter moments by name, in `controller.parameters()` order."""
    per_param, groups = optimizer_state["state"], optimizer_state["param_groups"]
    indices = [i for group in groups for i in group["params"]]
    if len(indices) != len(names):
        raise ValueError(f"the saved optimizer holds {len(indices)} weights, this controller has {len(names)}")
    if not per_param:
        return {"step": 0, "exp_avg": {}, "exp_avg_sq": {}}  # no step taken yet
    steps = {float(per_param[i]["step"]) for i in indices if i in per_param}
    if len(steps) != 1 or len(per_param) != len(indices):
        raise ValueError(f"the saved optimizer took different numbers of steps for different weights "
                         f"({sorted(steps)}, {len(per_param)} of {len(indices)} weights); the numpy Adam keeps "
                         "one count for all of them")
    return {"step": int(steps.pop()), "exp_avg": {n: per_param[i]["exp_avg"] for n, i in zip(names, indices)},
            "exp_avg_sq": {n: per_param[i]["exp_avg_sq"] for n, i in zip(names, indices)}}
