"""Peak memory of a ProxylessNAS step beside training one sub-network and a DARTS-style all-paths step.

    python benchmarks/proxyless_memory.py                          # digits and the paper's space at 64x64, CPU
    python benchmarks/proxyless_memory.py --configs paper224 --device cuda

ProxylessNAS's claim (Cai et al., ICLR 2019, Sec. 3.1): with binarised paths a search step needs
the memory of training ONE sub-network, where DARTS' relaxation keeps every candidate's
activations. Three steps on the same batch, each in a fresh subprocess:

* `subnet`: MobileNetSpace.build(X) trained for one step (SGD, Nesterov momentum), where X is
  the heaviest sub-network (every layer its largest MBConv, 7x7_MBConv6 in the paper's space);
* `proxyless`: one `ProxylessNAS.step()` of the real search (weight step with one path, α step
  with two paths), with α set so that the weight step and the α step's active path are X;
* `darts`: the same supernet run as DARTS' relaxation Σ_i softmax(α)_i o_i(x) (every block),
  backward to weights and α, one SGD step.

Two measures of memory:

* activations: the bytes autograd saves for backward (torch.autograd.graph.saved_tensors_hooks,
  distinct storages, parameters left out): exact and deterministic. ProxylessNAS's figure is
  the larger of its two phases (weight step; α step), run on the supernet as the search runs them;
* peak RSS growth (CPU): the process's peak resident set (ru_maxrss) over the step, above its
  resident set just before (network, optimisers and batch built, no step taken yet), glibc told
  to return freed memory (MALLOC_MMAP_THRESHOLD_=65536, MALLOC_TRIM_THRESHOLD_=0); on CUDA:
  torch.cuda.max_memory_allocated over the step, above memory_allocated before it.
  This includes parameters' gradients and optimiser state created by the step, so the
  supernet's larger parameter set shows in `proxyless` and `darts`.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

CONFIGS = {  # name: (space factory, batch, image shape)
    "digits": ("default", 64, (1, 8, 8)),
    "paper64": ("paper", 32, (3, 64, 64)),
    "paper224": ("paper", 8, (3, 224, 224)),
}
MODES = ("subnet", "proxyless", "darts")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class SavedBytes:
    """Bytes of the distinct storages autograd saves for backward inside the `with` block,
    parameters excluded (they are memory the network holds anyway)."""

    def __init__(self, params):
        import torch

        self.torch, self.skip = torch, {p.untyped_storage().data_ptr() for p in params}
        self.storages: dict[int, int] = {}

    def __enter__(self):
        def pack(t):
            storage = t.untyped_storage()
            if storage.data_ptr() not in self.skip:
                self.storages[storage.data_ptr()] = storage.nbytes()
            return t

        self.context = self.torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
        self.context.__enter__()
        return self

    def __exit__(self, *exc):
        self.context.__exit__(*exc)

    @property
    def total(self) -> int:
        return sum(self.storages.values())


def measure(mode: str, config: str, device: str, threads: int) -> dict:
    """One measurement, in this (fresh) process."""
    import torch
    import torch.nn.functional as F

    import nasnb
    from nasnb.spaces import MobileNetSpace
    from nasnb.strategies.proxyless import ProxylessNAS

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    kind, batch, shape = CONFIGS[config]
    space = MobileNetSpace() if kind == "default" else MobileNetSpace.paper()
    heavy = tuple(space.ops[-1] for _ in space.layers)  # the largest MBConv in every layer
    x = torch.randn(5 * batch, *shape)
    data = nasnb.data.from_tensors(x, torch.arange(5 * batch) % 10, test_fraction=0.2, val_fraction=0.2)
    search = ProxylessNAS(space, data, batch_size=batch, device=device, seed=0)
    net = search.net
    with torch.no_grad():  # the weight step's path and the α step's active path are `heavy`
        columns = net.arch_to_ops(heavy)
        net.alpha["chain"][torch.arange(len(columns)), list(columns)] = 20.0
    xb, yb = (t.to(search.device) for t in search._next_batch("train"))
    weights = net.weight_parameters()
    params = list(net.parameters())
    cuda = search.device.type == "cuda"

    if mode == "subnet":
        model = space.build(heavy, num_classes=10, in_channels=shape[0]).to(search.device).train()
        params = list(model.parameters())
        optimizer = torch.optim.SGD(params, lr=0.025, momentum=0.9, nesterov=True, weight_decay=4e-5)

        def step():
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            optimizer.step()
    elif mode == "proxyless":
        step = search.step
    else:
        optimizer = torch.optim.SGD(weights, lr=0.025, momentum=0.9, nesterov=True, weight_decay=4e-5)
        alpha_optimizer = torch.optim.Adam(net.arch_parameters(), lr=1e-3, betas=(0.0, 0.999))

        def step():
            optimizer.zero_grad(set_to_none=True)
            alpha_optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(xb), yb).backward()  # the relaxation: every block, weighted by softmax(α)
            optimizer.step()
            alpha_optimizer.step()

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = rss_bytes()
    step()
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before

    # activations saved for backward, measured once more on the same batch (deterministic)
    if mode == "proxyless":
        with SavedBytes(params) as weight_phase:
            loss = F.cross_entropy(net(xb, ops=columns), yb)
        del loss
        others = [next(c for c in layer.columns if c != a) for layer, a in zip(net.layers, columns)]
        gates = torch.zeros(net.available.shape, device=search.device)
        gates[torch.arange(len(columns)), list(columns)] = 1.0
        gates.requires_grad_()
        with SavedBytes(params) as alpha_phase:
            loss = F.cross_entropy(net(xb, ops=columns, gates=gates, others=others), yb)
        del loss
        saved = {"weight_phase": weight_phase.total, "alpha_phase": alpha_phase.total}
        activations = max(saved.values())
    else:
        model_ = model if mode == "subnet" else net
        with SavedBytes(params) as counter:
            loss = F.cross_entropy(model_(xb), yb)
        del loss
        saved, activations = {}, counter.total
    return {"mode": mode, "config": config, "device": str(search.device), "peak_bytes": peak,
            "activation_bytes": activations, "phases": saved,
            "param_bytes": sum(p.numel() * p.element_size() for p in params),
            "arch": space.format(heavy) if len(space.layers) <= 8 else f"{space.ops[-1]} in every layer"}


def in_subprocess(mode: str, config: str, device: str, threads: int) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    out = subprocess.run([sys.executable, __file__, "--one", mode, config, "--device", device,
                          "--threads", str(threads)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{mode} {config} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["digits", "paper64"], choices=sorted(CONFIGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print every measurement as JSON too")
    parser.add_argument("--one", nargs=2, metavar=("MODE", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.device, args.threads)))
        return
    mb = lambda b: f"{b / 2**20:8.1f}"  # noqa: E731
    measure_name = "CUDA max allocated" if args.device.startswith("cuda") else "peak RSS growth"
    print(f"{'config':9} {'step':10} {'activations MB':>14} {'x subnet':>8} {measure_name + ' MB':>22} "
          f"{'x subnet':>8} {'params MB':>9}")
    results = []
    for config in args.configs:
        rows = {mode: in_subprocess(mode, config, args.device, args.threads) for mode in MODES}
        base = rows["subnet"]
        for mode in MODES:
            r = rows[mode]
            print(f"{config:9} {mode:10} {mb(r['activation_bytes']):>14} "
                  f"{r['activation_bytes'] / base['activation_bytes']:8.2f} {mb(r['peak_bytes']):>22} "
                  f"{r['peak_bytes'] / base['peak_bytes']:8.2f} {mb(r['param_bytes']):>9}")
        phases = rows["proxyless"]["phases"]
        print(f"{'':9} proxyless phases: weight step {mb(phases['weight_phase']).strip()} MB, "
              f"α step {mb(phases['alpha_phase']).strip()} MB of activations; sub-network {base['arch']}")
        results += rows.values()
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
