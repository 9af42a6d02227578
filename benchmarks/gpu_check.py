"""Every CUDA path of nasnb, run once on a GPU: one line per path with its figure, PASS or FAIL.

    PYTHONPATH=. python3 benchmarks/gpu_check.py                # on a GPU machine, about 2-4 minutes
    PYTHONPATH=. python3 benchmarks/gpu_check.py --device cpu --quick   # the smoke test, tiny sizes
    PYTHONPATH=. python3 benchmarks/gpu_check.py --only device fit latency --json out.json

The paths: device choice (pick_device("auto") is the GPU), `fit` with AMP on device-resident data
with the random crop + flip done on the device, `measure_latency` (which synchronises before it
stops the clock), DARTS search steps of both orders at the paper's search configuration (DARTS
space, C=16, 8 cells, batch 64 on CIFAR-sized images; random images, the step's cost does not
depend on them) and on NB201 (C=16, N=5), ENAS steps on both spaces, a TrainEvaluator search on
digits, the notebooks' set-up cell (run as it is, in a subprocess), process_pool(devices="all")
running two trainings on pinned workers, and a few trainings of the shipped table's protocol
(nasnb.bench.build.train_record) compared with the CPU-built table within seed noise.

A failed path prints FAIL with its error and the next one runs; the exit code is 1 when any failed.
Each path has a time limit (--limit seconds); the whole run is meant to stay under 5 minutes on
one H200. Nothing in the test suite depends on a GPU: this script is the GPU's test.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import time
import traceback
import warnings

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nasnb  # noqa: E402
from nasnb import train  # noqa: E402

AUGMENT = "random crop (4-pixel zero padding) + horizontal flip"  # CIFAR-10's, see nasnb.data


class Context:
    """What every check reads: the device asked for and the sizes (quick: tiny, for the CPU)."""

    def __init__(self, device: str, quick: bool):
        self.device = train.pick_device(device)
        self.cuda = self.device.type == "cuda"
        self.quick = quick
        self.image = 8 if quick else 32  # CIFAR-10's 32 x 32
        self.darts = dict(C=4, layers=3) if quick else dict(C=16, layers=8)  # the DARTS paper's search network
        self.nb201 = dict(C=4, N=1) if quick else dict(C=16, N=5)  # NAS-Bench-201's
        self.batch = 16 if quick else 64
        self.steps = 1 if quick else 3  # timed steps, after one untimed warm-up step

    def images(self, n: int, augment: bool = False, seed: int = 0):
        """n random CIFAR-sized images of 10 classes as a TensorData on the CPU (60/20/20 split)."""
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(n, 3, self.image, self.image, generator=g)
        data = nasnb.data.from_tensors(x, torch.arange(n) % 10, name="random-cifar", seed=seed)
        return dataclasses.replace(data, augment=AUGMENT) if augment else data

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def peak_mb(self) -> str:
        return f", peak {torch.cuda.max_memory_allocated(self.device) / 2**20:.0f} MB" if self.cuda else ""

    def reset_peak(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)


def expect(condition: bool, what: str):
    if not condition:
        raise AssertionError(what)


# ----------------------------------------------------------------------------- the checks


def check_device(ctx: Context) -> str:
    auto = train.pick_device("auto")
    if ctx.cuda:
        expect(auto.type == "cuda", f"pick_device('auto') is {auto}, not cuda")
        props = torch.cuda.get_device_properties(ctx.device)
        return (f"auto -> {auto}; {torch.cuda.device_count()} GPU(s), {props.name}, "
                f"{props.total_memory / 2**30:.0f} GiB; torch {torch.__version__}, CUDA {torch.version.cuda}, "
                f"cuDNN {torch.backends.cudnn.version()}")
    return f"auto -> {auto} (no GPU asked for); torch {torch.__version__}"


def check_fit(ctx: Context) -> str:
    """fit(amp=True) on data moved to the device, augmented there; AMP's float16 is seen in a conv."""
    from nasnb.data import crop_and_flip
    from nasnb.spaces import NB201Space

    data = ctx.images(512 if ctx.quick else 5000, augment=True).to(ctx.device)
    expect(data.device.type == ctx.device.type, f"the data is on {data.device}")
    x = data.train[0][:256]
    out = crop_and_flip(x, data.pad_value(), torch.Generator().manual_seed(0))
    expect(out.device == x.device and out.shape == x.shape, f"augmented batch on {out.device}, {tuple(out.shape)}")
    arch = ("nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3")
    figures = {}
    for amp in (True, False):
        torch.manual_seed(0)
        model = NB201Space().build(arch, **ctx.nb201, num_classes=10, in_channels=3)
        dtypes = set()
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda m, i, o: dtypes.add(o.dtype) if m.training else None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            records = train.fit(model, data, 2, batch_size=256 if not ctx.quick else 64, amp=amp,
                                device=ctx.device, progress=False)
        expect(all(map(_finite, (r["loss"] for r in records))), f"loss {records[-1]['loss']}")
        amp_warned = any("amp=True needs a CUDA device" in str(w.message) for w in caught)
        if amp and ctx.cuda:
            expect(torch.float16 in dtypes and not amp_warned, f"AMP: conv output dtypes {dtypes}, warned {amp_warned}")
        if amp and not ctx.cuda:
            expect(amp_warned and dtypes == {torch.float32}, "amp=True on the CPU should warn and train in float32")
        n = len(data.train[1])
        figures[amp] = n / records[-1]["seconds"]  # the second epoch: warm
    return (f"NB201 {ctx.nb201} on {len(data.train[1])} augmented {ctx.image}px images: "
            f"amp {figures[True]:,.0f} img/s, float32 {figures[False]:,.0f} img/s "
            f"(x{figures[True] / figures[False]:.2f}){ctx.peak_mb()}")


def _finite(v: float) -> bool:
    return v == v and abs(v) != float("inf")


def check_latency(ctx: Context) -> str:
    """measure_latency synchronises: its median is at least the mean time of a synchronised loop
    of forwards (less a margin), whereas an unsynchronised launch returns far sooner on a GPU."""
    from nasnb.cost import measure_latency
    from nasnb.spaces import NB201Space

    torch.manual_seed(0)
    model = NB201Space().build(("nor_conv_3x3",) * 6, **ctx.nb201, num_classes=10, in_channels=3)
    # a batch large enough that the GPU's work outlasts the kernel launches, so that a clock
    # stopped without synchronising would show it
    shape, batch = (3, ctx.image, ctx.image), 8 if ctx.quick else 1024
    got = measure_latency(model, shape, batch_size=batch, device=ctx.device, repeats=10 if ctx.quick else 30)
    x = torch.zeros(batch, *shape, device=ctx.device)
    model.eval()
    with torch.no_grad():
        ctx.sync()
        start = time.perf_counter()
        for _ in range(10):
            model(x)
        launch = (time.perf_counter() - start) / 10  # unsynchronised: the launches only
        ctx.sync()
        loop = (time.perf_counter() - start) / 10  # synchronised at the end: the work itself
    expect(got["device"].startswith(ctx.device.type), f"measured on {got['device']}")
    expect(got["median"] >= 0.5 * loop, f"median {got['median']:.2e} s < half the synchronised loop's {loop:.2e} s")
    return (f"batch {batch}: median {got['median'] * 1e3:.2f} ms, p90 {got['p90'] * 1e3:.2f} ms; "
            f"synchronised loop {loop * 1e3:.2f} ms/forward, unsynchronised launch {launch * 1e3:.2f} ms")


def _timed_steps(ctx: Context, search) -> tuple[float, object]:
    if not ctx.quick:
        search.step()  # warm-up: cuDNN's algorithm choice, allocator growth
    ctx.sync()
    times = []
    for _ in range(ctx.steps):
        start = time.perf_counter()
        record = search.step()
        ctx.sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), record


def _darts(ctx: Context, space_name: str, order: int) -> str:
    from nasnb.spaces import DartsSpace, NB201Space
    from nasnb.strategies import DARTS

    space, sizes = (DartsSpace(), ctx.darts) if space_name == "darts" else (NB201Space(), ctx.nb201)
    data = ctx.images(10 * ctx.batch)  # 6 training and 2 validation batches
    ctx.reset_peak()
    search = DARTS(space, data, order=order, supernet_kwargs=dict(sizes), batch_size=ctx.batch,
                   device=ctx.device, seed=0)
    expect(next(search.net.parameters()).device.type == ctx.device.type, "the supernet is not on the device")
    seconds, _ = _timed_steps(ctx, search)
    alphas = [a.detach() for a in search.net.arch_parameters()]
    expect(all(bool(torch.isfinite(a).all()) for a in alphas), "alpha is not finite")
    return (f"{space_name} {sizes}, batch {ctx.batch}, {ctx.image}px: {seconds:.3f} s/step "
            f"(w step + order-{order} alpha step){ctx.peak_mb()}")


def check_enas(ctx: Context) -> str:
    from nasnb.spaces import DartsSpace, NB201Space
    from nasnb.strategies import ENAS

    parts = []
    for name, space, sizes in (("nb201", NB201Space(), ctx.nb201), ("darts", DartsSpace(), ctx.darts)):
        ctx.reset_peak()
        search = ENAS(space, ctx.images(10 * ctx.batch), supernet_kwargs=dict(sizes), batch_size=ctx.batch,
                      child_steps=2 if ctx.quick else 10, controller_steps=2 if ctx.quick else 10,
                      device=ctx.device, seed=0)
        seconds, _ = _timed_steps(ctx, search)
        parts.append(f"{name} {sizes}: {seconds:.3f} s/step{ctx.peak_mb()}")
    return "; ".join(parts) + f" (batch {ctx.batch}, child and controller steps per step: {search.child_steps})"


def check_train_evaluator(ctx: Context) -> str:
    """A random search of 3 trainings on digits, the course's data, with TrainEvaluator on the device."""
    from nasnb.evaluators import TrainEvaluator
    from nasnb.spaces import NB201Space
    from nasnb.strategies import RandomSearch

    evaluator = TrainEvaluator(nasnb.data.load("digits"), epochs=2 if ctx.quick else 10, device=ctx.device,
                               amp=ctx.cuda)
    history = RandomSearch(NB201Space(), evaluator, seed=0).run(2 if ctx.quick else 3, progress=False)
    accs = [t.metrics["val_accuracy"] for t in history]
    expect(all(0 <= a <= 1 for a in accs), f"val accuracies {accs}")
    if not ctx.quick:
        expect(max(accs) > 0.3, f"no cell learnt digits in 10 epochs: {accs}")
    seconds = [t.metrics["seconds"] for t in history]
    return (f"{len(accs)} trials, val accuracy {', '.join(f'{a:.3f}' for a in accs)}; "
            f"{statistics.mean(seconds):.2f} s/training of {evaluator.epochs} epochs")


def check_notebook_setup(ctx: Context) -> str:
    """Each notebook's set-up cell as it is (nasnb found on PYTHONPATH, so it installs nothing)."""
    cells = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        first = next(c for c in nb["cells"] if c["cell_type"] == "code")
        cells.setdefault("".join(first["source"]), []).append(path.name)
    expect(bool(cells), "no notebooks found")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    want = "cuda" if ctx.cuda else str(train.pick_device("auto"))
    lines = []
    for source, names in cells.items():
        out = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, env=env, timeout=120,
                             cwd=ROOT / "notebooks")
        expect(out.returncode == 0, f"{names[0]}'s set-up cell failed: {out.stderr[-300:]}")
        line = next((s for s in out.stdout.splitlines() if "training will run on" in s), "")
        expect(line.split("training will run on:")[-1].strip().startswith(want),
               f"{names[0]} says {line!r}, expected {want}")
        lines.append(f"{len(names)} notebook(s): {line.split('|')[-1].strip()}")
    return "; ".join(lines)


def pool_task(evaluator, arch):
    """Runs in a process_pool worker: the worker's pinned device and one training on it."""
    device = train.pick_device("auto")
    current = torch.cuda.current_device() if device.type == "cuda" else None
    metrics = evaluator(arch)
    return {"pid": os.getpid(), "auto": str(device), "current_cuda": current,
            "val_accuracy": metrics["val_accuracy"], "seconds": metrics["seconds"]}


def _pool_run(devices, expected: list[str]) -> tuple[list[dict], float]:
    """Two trainings of digits cells (TrainEvaluator, device="auto") on process_pool(devices=...)."""
    from nasnb.evaluators import TrainEvaluator, process_pool
    from nasnb.spaces import NB201Space

    evaluator = TrainEvaluator(nasnb.data.load("digits"), epochs=2, count_flops=False)  # its data stays on the CPU
    archs = [NB201Space().sample(k) for k in range(2)]
    pool = process_pool(devices=devices)
    start, ok = time.perf_counter(), False
    try:
        results = [f.result(timeout=240) for f in [pool.submit(pool_task, evaluator, a) for a in archs]]
        ok = True
    finally:
        processes = list((pool._processes or {}).values())
        pool.shutdown(wait=ok, cancel_futures=True)
        if not ok:  # a hung worker must not hold the script at exit
            for process in processes:
                process.terminate()
    wall = time.perf_counter() - start
    for r in results:
        expect(r["auto"] in expected, f"a worker trained on {r['auto']}, not one of {expected}")
        if r["current_cuda"] is not None:
            expect(r["auto"] == f"cuda:{r['current_cuda']}", f"auto {r['auto']} but current device {r['current_cuda']}")
    return results, wall


def check_pool(ctx: Context) -> str:
    """process_pool(devices="all") trains two architectures on pinned workers; with one GPU, also
    two workers sharing it (devices=["cuda:0", "cuda:0"]). On the CPU: two "cpu" workers, and "all"
    must be refused with a message that says what to pass instead."""
    from nasnb.errors import InvalidValueError
    from nasnb.evaluators import process_pool

    runs = []
    if ctx.cuda:
        runs.append(("all", [f"cuda:{k}" for k in range(torch.cuda.device_count())]))
        if torch.cuda.device_count() == 1:
            runs.append((["cuda:0", "cuda:0"], ["cuda:0"]))
    else:
        try:
            process_pool(devices="all")
        except InvalidValueError as err:
            expect("devices=None" in str(err), f"the message names no way out: {err}")
        else:
            raise AssertionError("devices='all' was accepted on a machine without a GPU")
        runs.append((["cpu", "cpu"], ["cpu"]))
    parts = []
    for devices, expected in runs:
        results, wall = _pool_run(devices, expected)
        parts.append(f"devices={devices!r}: trainings on {', '.join(r['auto'] for r in results)} "
                     f"(pids {', '.join(str(r['pid']) for r in results)}), "
                     f"{statistics.mean(r['seconds'] for r in results):.2f} s/training, "
                     f"{wall:.1f} s wall with start-up")
    return "; ".join(parts)


def table_reference():
    """The CPU-built figures to compare with: {cell index: final val correct per seed} and the
    protocol. From the shipped table file when it is a real build, else from the build's shards
    (benchmarks/tables/nb201-digits/, committed as the build goes)."""
    import nasnb.bench as bench
    from nasnb.bench.build import PROTOCOL, protocol_hash

    path = bench.DATA / bench.TABLES["nb201-digits"][0]
    if path.exists():
        table = bench.load("nb201-digits")
        if not table.meta.get("DEV"):  # a development stand-in is no reference
            protocol = {k: table.meta[k] for k in PROTOCOL if k in table.meta}
            finals = {bench.arch_index(table.cells[r]): table.val_correct[r, :, -1].tolist() for r in range(len(table))}
            return finals, protocol, f"table {path.name}"
    finals = {}
    for shard_path in sorted((ROOT / "benchmarks" / "tables" / "nb201-digits").glob("shard-*.json")):
        shard = json.loads(shard_path.read_text())
        if shard.get("protocol_hash") != protocol_hash(PROTOCOL):
            continue
        for r in shard["records"]:
            finals.setdefault(r["index"], [None] * len(PROTOCOL["seeds"]))[PROTOCOL["seeds"].index(r["seed"])] = \
                r["val_correct"][-1]
    finals = {k: v for k, v in finals.items() if None not in v}
    return finals, PROTOCOL, f"{len(finals)} cells of the build's shards"


def check_table(ctx: Context) -> str:
    """train_record (seed 0) on the device for a few cells, against the CPU-built figures.

    Seed noise is large on this protocol (a cell's seeds differ by 40 of the 397 validation images
    at the median), and a GPU training is in effect another seed: cuDNN sums in another order. So
    the test is on the mean over the cells: mean(device - mean of the cell's seeds) within 4
    standard errors (each cell's seed variance, ddof=1, times 1 + 1/seeds) + 2 images. On the CPU
    build's own seeds (one seed against the other two, 8 random cells) that fails 1% of the time,
    and training stuck at chance passes 1.4% of the time; a 20% loss of accuracy is not detectable
    with 8 cells. On the CPU the retraining gives the build's seed-0 counts exactly."""
    import numpy as np

    from nasnb.bench.build import train_record

    finals, protocol, source = table_reference()
    expect(bool(finals), "no CPU-built table or shard to compare with")
    device = "cuda" if ctx.cuda else str(ctx.device)
    rng = np.random.default_rng(0)
    chosen = rng.choice(sorted(finals), 1 if ctx.quick else 8, replace=False).tolist()
    got, seconds, exact = [], [], 0
    for index in chosen:
        record = train_record(protocol, index, protocol["seeds"][0], device=device)
        got.append(record["val_correct"][-1])
        seconds.append(record["wall_seconds"])
        exact += got[-1] == finals[index][0]
    ref = np.array([finals[i] for i in chosen], dtype=float)  # (cells, seeds)
    diff = float(np.mean(np.array(got) - ref.mean(1)))
    se = float(np.sqrt(np.sum(ref.var(1, ddof=1) * (1 + 1 / ref.shape[1]))) / len(chosen))
    cells = ", ".join(f"{g} vs {r.mean():.0f}+-{r.std(ddof=1):.0f}" for g, r in zip(got, ref))
    expect(abs(diff) <= 4 * se + 2, f"mean difference {diff:+.1f} images over {len(chosen)} cells, "
                                    f"beyond 4 x {se:.1f} + 2 ({cells})")
    return (f"{len(chosen)} cells vs {source}: final val correct of 397, device vs seeds' mean+-sd: {cells}; "
            f"mean difference {diff:+.1f} (tolerance {4 * se + 2:.1f}), {exact} equal to the CPU's seed 0; "
            f"{statistics.mean(seconds):.2f} s/training (wall)")


CHECKS = {
    "device": check_device,
    "fit": check_fit,
    "latency": check_latency,
    "darts1": lambda ctx: _darts(ctx, "darts", 1),
    "darts2": lambda ctx: _darts(ctx, "darts", 2),
    "nb201_darts1": lambda ctx: _darts(ctx, "nb201", 1),
    "nb201_darts2": lambda ctx: _darts(ctx, "nb201", 2),
    "enas": check_enas,
    "train_evaluator": check_train_evaluator,
    "notebook_setup": check_notebook_setup,
    "pool": check_pool,
    "table": check_table,
}


class TimeLimit(Exception):
    pass


def _alarm(signum, frame):
    raise TimeLimit()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:1, or cpu for the smoke test")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the smoke test on a CPU")
    parser.add_argument("--only", nargs="+", choices=list(CHECKS), help="run only these paths")
    parser.add_argument("--limit", type=int, default=120, help="seconds per path before it counts as failed")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1 if args.quick else max(1, min(8, os.cpu_count() or 1)))
    try:
        ctx = Context(args.device, args.quick)
    except Exception as err:  # noqa: BLE001  (no such device: every path fails)
        print(f"FAIL device: {type(err).__name__}: {err}", flush=True)
        return 1
    results, start = [], time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    for name in args.only or CHECKS:
        t0 = time.perf_counter()
        signal.alarm(args.limit)
        try:
            figure, ok = CHECKS[name](ctx), True
        except TimeLimit:
            figure, ok = f"over the time limit of {args.limit} s", False
        except Exception as err:  # noqa: BLE001  (report it, run the next path)
            figure, ok = f"{type(err).__name__}: {err}".replace("\n", " ")[:500], False
            traceback.print_exc(file=sys.stderr)
        finally:
            signal.alarm(0)
        seconds = time.perf_counter() - t0
        results.append({"path": name, "ok": ok, "figure": figure, "seconds": round(seconds, 2)})
        print(f"{'PASS' if ok else 'FAIL'} {name:16s} {seconds:6.1f} s  {figure}", flush=True)
    failed = [r["path"] for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)} of {len(results)} paths passed on {ctx.device} in "
          f"{time.perf_counter() - start:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"device": str(ctx.device), "quick": args.quick,
                                                       "date": time.strftime("%Y-%m-%d"), "results": results},
                                                      indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
