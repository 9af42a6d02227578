"""The straightforward DARTS search network, written the way the paper's code writes it.

    python benchmarks/darts_baseline.py                 # one training step of each, CPU, tiny sizes
    python benchmarks/darts_baseline.py --device cuda --C 16 --layers 8 --size 32 --batch-size 64

The reference for nasnb's DartsSupernet (nasnb/spaces/darts_supernet.py): the structure of
`Network` in cnn/model_search.py of quark0/darts (Liu et al., 2019), with its own copies of the ops
(no nasnb code), so tests/test_spaces_supernet.py can check that the two give the same outputs and
gradients on the same weights. Every op of every edge runs and is multiplied by its softmax weight,
the zero op included (as x.mul(0)); α are plain tensors that require gradients, as in the original,
so `named_parameters()` are the weights only and their count is what the authors' train_search log
prints as "param size" (utils.count_parameters_in_MB). Two changes from the original: the stem
takes `in_channels` (the original hard-codes 3), and nothing calls .cuda().

`Architect` is the authors' cnn/architect.py: the α step, first order (the validation loss's
gradient) or second order (DARTS eq. 7-8: a copy of the model at w' = w − ξ(μ·buf + ∇w + λw), its
validation gradient, then the finite-difference Hessian-vector product with w moved in place to
w ± εv and back). benchmarks/darts_step.py times it beside nasnb's unrolled_alpha_gradient.

The main program times one training step (forward, backward) of each network on the same input.
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRIMITIVES = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
              "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]


class ReLUConvBN(nn.Module):
    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine))

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    def __init__(self, C_in, C_out, kernel_size, stride, padding, dilation, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=C_in,
                      bias=False),
            nn.Conv2d(C_in, C_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine))

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=1, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine))

    def forward(self, x):
        return self.op(x)


class Identity(nn.Module):
    def forward(self, x):
        return x


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.)
        return x[:, :, ::self.stride, ::self.stride].mul(0.)


class FactorizedReduce(nn.Module):
    def __init__(self, C_in, C_out, affine=True):
        super().__init__()
        assert C_out % 2 == 0
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


OPS = {
    "none": lambda C, stride, affine: Zero(stride),
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "skip_connect": lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine=affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine=affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine=affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine=affine),
}


class MixedOp(nn.Module):
    def __init__(self, C, stride):
        super().__init__()
        self._ops = nn.ModuleList()
        for primitive in PRIMITIVES:
            op = OPS[primitive](C, stride, False)
            if "pool" in primitive:
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            self._ops.append(op)

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self._ops))  # every op, 'none' too


class Cell(nn.Module):
    def __init__(self, steps, multiplier, C_prev_prev, C_prev, C, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False)
        self._steps, self._multiplier = steps, multiplier
        self._ops = nn.ModuleList()
        for i in range(steps):
            for j in range(2 + i):
                self._ops.append(MixedOp(C, 2 if reduction and j < 2 else 1))

    def forward(self, s0, s1, weights):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for i in range(self._steps):
            s = sum(self._ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self._multiplier:], dim=1)


class Network(nn.Module):
    def __init__(self, C, num_classes, layers, steps=4, multiplier=4, stem_multiplier=3, in_channels=3):
        super().__init__()
        self._steps, self._multiplier = steps, multiplier
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in [layers // 3, 2 * layers // 3]
            if reduction:
                C_curr *= 2
            self.cells.append(Cell(steps, multiplier, C_prev_prev, C_prev, C_curr, reduction, reduction_prev))
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, multiplier * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        self._C, self._num_classes, self._layers, self._in_channels = C, num_classes, layers, in_channels
        self._stem_multiplier = stem_multiplier
        k = sum(2 + i for i in range(steps))
        self.alphas_normal = (1e-3 * torch.randn(k, len(PRIMITIVES))).requires_grad_()
        self.alphas_reduce = (1e-3 * torch.randn(k, len(PRIMITIVES))).requires_grad_()

    def arch_parameters(self):
        return [self.alphas_normal, self.alphas_reduce]

    def new(self):
        model_new = Network(self._C, self._num_classes, self._layers, self._steps, self._multiplier,
                            self._stem_multiplier, self._in_channels).to(self.alphas_normal)  # device, dtype
        # the original copies α's values into the new model's; a copy as a new leaf keeps the dtype too
        model_new.alphas_normal = self.alphas_normal.detach().clone().requires_grad_()
        model_new.alphas_reduce = self.alphas_reduce.detach().clone().requires_grad_()
        return model_new

    def _loss(self, input, target):
        return F.cross_entropy(self(input), target)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            alphas = self.alphas_reduce if cell.reduction else self.alphas_normal
            s0, s1 = s1, cell(s0, s1, F.softmax(alphas, dim=-1))
        out = self.global_pooling(s1)
        return self.classifier(out.view(out.size(0), -1))


def _concat(xs):
    return torch.cat([x.view(-1) for x in xs])


class Architect:
    """cnn/architect.py of quark0/darts: Adam on α (lr 3e-4, betas (0.5, 0.999), weight decay 1e-3)."""

    def __init__(self, model, momentum=0.9, weight_decay=3e-4, arch_learning_rate=3e-4, arch_weight_decay=1e-3):
        self.network_momentum = momentum
        self.network_weight_decay = weight_decay
        self.model = model
        self.optimizer = torch.optim.Adam(self.model.arch_parameters(), lr=arch_learning_rate, betas=(0.5, 0.999),
                                          weight_decay=arch_weight_decay)

    def _compute_unrolled_model(self, input, target, eta, network_optimizer):
        loss = self.model._loss(input, target)
        theta = _concat(self.model.parameters()).data
        try:
            moment = _concat(network_optimizer.state[v]["momentum_buffer"]
                             for v in self.model.parameters()).mul_(self.network_momentum)
        except KeyError:  # before the first weight step
            moment = torch.zeros_like(theta)
        dtheta = _concat(torch.autograd.grad(loss, self.model.parameters())).data + self.network_weight_decay * theta
        return self._construct_model_from_theta(theta.sub(eta * (moment + dtheta)))

    def step(self, input_train, target_train, input_valid, target_valid, eta, network_optimizer, unrolled):
        self.optimizer.zero_grad()
        if unrolled:
            self._backward_step_unrolled(input_train, target_train, input_valid, target_valid, eta, network_optimizer)
        else:
            self._backward_step(input_valid, target_valid)
        self.optimizer.step()

    def _backward_step(self, input_valid, target_valid):
        loss = self.model._loss(input_valid, target_valid)
        loss.backward()

    def _backward_step_unrolled(self, input_train, target_train, input_valid, target_valid, eta, network_optimizer):
        unrolled_model = self._compute_unrolled_model(input_train, target_train, eta, network_optimizer)
        unrolled_loss = unrolled_model._loss(input_valid, target_valid)
        unrolled_loss.backward()
        dalpha = [v.grad for v in unrolled_model.arch_parameters()]
        vector = [v.grad.data for v in unrolled_model.parameters()]
        implicit_grads = self._hessian_vector_product(vector, input_train, target_train)
        for g, ig in zip(dalpha, implicit_grads):
            g.data.sub_(eta * ig.data)
        for v, g in zip(self.model.arch_parameters(), dalpha):
            if v.grad is None:
                v.grad = g.data.clone()
            else:
                v.grad.data.copy_(g.data)

    def _construct_model_from_theta(self, theta):
        model_new = self.model.new()
        model_dict = self.model.state_dict()
        params, offset = {}, 0
        for k, v in self.model.named_parameters():
            v_length = v.numel()
            params[k] = theta[offset: offset + v_length].view(v.size())
            offset += v_length
        assert offset == len(theta)
        model_dict.update(params)
        model_new.load_state_dict(model_dict)
        return model_new

    def _hessian_vector_product(self, vector, input, target, r=1e-2):
        R = r / _concat(vector).norm()
        for p, v in zip(self.model.parameters(), vector):
            p.data.add_(R * v)
        loss = self.model._loss(input, target)
        grads_p = torch.autograd.grad(loss, self.model.arch_parameters())
        for p, v in zip(self.model.parameters(), vector):
            p.data.sub_(2 * R * v)
        loss = self.model._loss(input, target)
        grads_n = torch.autograd.grad(loss, self.model.arch_parameters())
        for p, v in zip(self.model.parameters(), vector):
            p.data.add_(R * v)
        return [(x - y).div_(2 * R) for x, y in zip(grads_p, grads_n)]


def count_parameters(model) -> int:
    """utils.count_parameters_in_MB of the DARTS code, times 1e6: parameters not named 'auxiliary'."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name)


def copy_weights(source: nn.Module, target: nn.Module) -> None:
    """Copy a state dict into a network of the same layout but other names, entry by entry in order.

    The two networks register their tensors in the same order (stem, then per cell preprocess0,
    preprocess1 and the edges' ops in PRIMITIVES order, then the classifier); a shape mismatch
    means the layouts differ, and is an error. The source's architecture parameters (nasnb's
    entries alpha.* and beta.*) are left out: copy α on its own.
    """
    src = [v for k, v in source.state_dict().items() if not k.startswith(("alpha.", "beta."))]
    dst = target.state_dict()
    if len(src) != len(dst):
        raise ValueError(f"{len(src)} tensors to copy into {len(dst)}: the layouts differ")
    for value, (name, old) in zip(src, dst.items()):
        if value.shape != old.shape:
            raise ValueError(f"{name}: shape {tuple(value.shape)} does not fit {tuple(old.shape)}")
        old.copy_(value)


def main():
    from nasnb.spaces import DartsSpace

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--C", type=int, default=8)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--size", type=int, default=8, help="input height and width")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    ours = DartsSpace().supernet(C=args.C, layers=args.layers).to(args.device)
    theirs = Network(args.C, 10, args.layers).to(args.device)
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=args.device)
    for name, net in (("nasnb DartsSupernet", ours), ("baseline Network", theirs)):
        times = []
        for _ in range(args.repeats + 1):  # the first step warms up
            start = time.perf_counter()
            net(x).sum().backward()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        print(f"{name:20s} {min(times[1:]) * 1e3:8.1f} ms per forward+backward (best of {args.repeats})")


if __name__ == "__main__":
    main()
