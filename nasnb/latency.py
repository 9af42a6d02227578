"""A latency lookup table: a network's latency predicted as the sum of its blocks' latencies.

Measuring every candidate network end to end is far too slow for a search, so ProxylessNAS (Cai,
Zhu & Han, ICLR 2019, Sec. 3.3) and nn-Meter (Zhang et al., MobiSys 2021) measure each *block*
once, at each input shape it can meet, and predict a chain network's latency as

    latency(arch) ~= fixed + sum over layers l of table[(op_l, C_in_l, C_out_l, stride_l, H_l, W_l)]

where `fixed` is the stem, the first block and the head (the layers no search changes) and a
'Zero' layer costs 0. In a MobileNetSpace every layer's input shape follows from the layout, so
the table holds one entry per (op, shape) key, each measured once; shapes repeat (all but the
first layer of a stage see the same one), so a space of 10^17 networks needs a few hundred keys.

Each key is timed like `nasnb.cost.measure_latency` times a network: eval mode, no grad,
`warmup` untimed calls, then the median of `repeats` timed calls, with torch's intra-op thread
count set to `threads` for the measurement (and restored). A table is only true for the device,
thread count and batch it was measured with: `save` writes them into a small JSON file, `load`
refuses a table measured for another device or thread count than the one you say you predict for.

`timing="relative"` (differential timing) is for a noisy machine, whose core speed wanders: each
pass of a block alternates with a pass of a fixed reference block (`reference_key`: the middle
key of the space), the block's latency is the median ratio of the two (the slowdown cancels,
`nasnb.cost.measure_relative_latency`), and entries hold ratio x the reference's fastest median
seen, in seconds. `table.measure_network(net)` times a whole network the same way, so that
prediction and measurement are compared in the same units.

    table = LatencyTable.measure(MobileNetSpace(), threads=1, input_shape=(1, 8, 8))
    table.predict(arch)             # seconds
    table.save("latency_cpu.json"); LatencyTable.load("latency_cpu.json", device="cpu", threads=1)
"""
from __future__ import annotations

import json
import math
import os
import platform
import warnings

import numpy as np
import torch
import torch.nn as nn

from nasnb.checks import check_choice, check_int, check_positive_int, short
from nasnb.cost import CLOCKS, image_shape, measure_latency, measure_relative_latency
from nasnb.errors import DamagedFileError, InvalidTypeError, InvalidValueError
from nasnb.spaces.mobilenet import MobileNetSpace
from nasnb.spaces.mobilenet_network import ZERO, MBConv, conv_bn, mbconv_params
from nasnb.train import pick_device

FORMAT = "nasnb-latency-table"
VERSION = 1


class LatencyTableMismatchError(InvalidValueError):
    """A table measured on another device or with another thread count than the one asked for."""


class LatencyTableWarning(UserWarning):
    """A table that may not fit this machine (another CPU or GPU model, another torch version)."""


STATISTIC, ROUNDS_STATISTIC = "median", "min over rounds of the median"
RELATIVE_STATISTIC = ("median over rounds of the median ratio of interleaved passes to the reference's, "
                      "times the reference's fastest median")
TIMINGS = ("absolute", "relative")


def device_name(device: torch.device) -> str:
    """What the hardware is, beyond 'cpu' or 'cuda': the GPU's name, or the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or platform.machine() or "unknown cpu"
    return device.type


def chw(input_shape) -> tuple:
    """One image's (C, H, W): three positive ints, or a TensorData's input_shape."""
    shape = image_shape(input_shape)
    if len(shape) != 3:
        raise InvalidValueError(f"input_shape must be one image's (C, H, W), got {short(input_shape)}; "
                                f"e.g. input_shape=(1, 8, 8) for digits, (3, 224, 224) for ImageNet")
    return shape


def layer_shapes(space: MobileNetSpace, input_shape) -> list[tuple]:
    """(C_in, C_out, stride, H, W) of each searched layer: the input it sees for an image of
    shape (C, H, W). A k x k conv with padding k // 2 and stride s maps H to (H - 1) // s + 1."""
    _, height, width = chw(input_shape)
    height, width = (height - 1) // space.stem_stride + 1, (width - 1) // space.stem_stride + 1
    shapes = []
    for layer in space.layers:
        shapes.append((layer.in_channels, layer.out_channels, layer.stride, height, width))
        height, width = (height - 1) // layer.stride + 1, (width - 1) // layer.stride + 1
    return shapes


def block_keys(space: MobileNetSpace, input_shape) -> list[tuple]:
    """The distinct (op, C_in, C_out, stride, H, W) keys of the space, in layer order ('Zero' has none)."""
    keys = {}
    for layer, shape in zip(space.layers, layer_shapes(space, input_shape)):
        for op in layer.options:
            if op != ZERO:
                keys.setdefault((op, *shape), None)
    return list(keys)


class FixedParts(nn.Module):
    """The layers every arch of the space shares, timed together: stem and first block on the image,
    then feature mix, pooling and classifier on a tensor of the last searched layer's output shape."""

    def __init__(self, space: MobileNetSpace, input_shape, num_classes: int, batch: int):
        super().__init__()
        channels, height, width = chw(input_shape)
        self.stem = conv_bn(channels, space.stem_width, 3, space.stem_stride)
        self.first = MBConv(space.stem_width, space.first_width, 3, 1, 1)
        c_in, c_out, stride, h, w = layer_shapes(space, input_shape)[-1]
        self.register_buffer("head_input", torch.zeros(batch, c_out, (h - 1) // stride + 1, (w - 1) // stride + 1))
        self.feature_mix = conv_bn(c_out, space.head_width, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(space.head_width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        self.first(self.stem(x))  # (B, first_width, H/s, W/s): timed, not passed on
        return self.classifier(self.pool(self.feature_mix(self.head_input)).flatten(1))


def time_module(module: nn.Module, input_shape: tuple, *, batch: int, device, warmup: int, repeats: int) -> float:
    """Median seconds of one forward pass of `module` on a (batch, *input_shape) input.
    Every measurement of this file goes through here (tests replace it by a fake clock)."""
    return measure_latency(module, input_shape, batch_size=batch, device=device, warmup=warmup,
                           repeats=repeats)["median"]


def time_relative(module: nn.Module, input_shape: tuple, reference: nn.Module, reference_shape: tuple, *, batch: int,
                  device, warmup: int, repeats: int, clock: str) -> tuple[float, float]:
    """(ratio of `module`'s latency to `reference`'s, the reference's median seconds meanwhile),
    timed interleaved. The relative measurements of this file go through here (tests fake it)."""
    r = measure_relative_latency(module, input_shape, reference, reference_shape, batch_size=batch, device=device,
                                 warmup=warmup, repeats=repeats, clock=clock)
    return r["ratio"], r["reference_median"]


def _block(key: tuple) -> tuple[nn.Module, tuple]:
    op, c_in, c_out, stride, height, width = key
    kernel_size, expansion = mbconv_params(op)
    return MBConv(c_in, c_out, kernel_size, stride, expansion), (c_in, height, width)


def reference_key(space: MobileNetSpace, input_shape) -> tuple:
    """The reference block of relative timing: the middle one of `block_keys` (layer order, then op
    order), a mid-sized block of the space; ('3x3_MBConv3', 16, 32, 2, 8, 8) for the default one."""
    keys = block_keys(space, input_shape)
    return keys[len(keys) // 2]


def reference_block(key) -> tuple[nn.Module, tuple]:
    """The reference MBConv of `key` and its input's (C, H, W); weights from seed 0 (the same every time)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _block(tuple(key))


class LatencyTable:
    """Per-block latencies of one space on one device, and the sum that predicts a network's.

    `entries` maps (op, C_in, C_out, stride, H, W) to seconds, `fixed` is the shared layers'
    seconds and `layers` the (C_in, C_out, stride, H, W) of each searched layer; `meta` records
    how and where it was measured (device, device_name, torch, threads, batch, input_shape,
    num_classes, method, space).
    """

    def __init__(self, entries: dict, fixed: float, layers: list, meta: dict):
        self.entries, self.fixed, self.meta = dict(entries), float(fixed), dict(meta)
        self.layers = [tuple(shape) for shape in layers]

    def __repr__(self) -> str:
        return (f"LatencyTable({len(self.entries)} blocks, {self.meta['device']} ({self.meta['device_name']}), "
                f"threads={self.meta['threads']}, batch={self.meta['batch']}, input_shape={self.meta['input_shape']}, "
                f"timing={self.timing!r})")

    def __eq__(self, other) -> bool:
        return (isinstance(other, LatencyTable) and self.entries == other.entries and self.fixed == other.fixed
                and self.layers == other.layers and self.meta == other.meta)

    @classmethod
    def measure(cls, space: MobileNetSpace, device="cpu", threads: int = 1, batch: int = 1, warmup: int = 10,
                repeats: int = 50, input_shape=(1, 8, 8), num_classes: int = 10, rounds: int = 1,
                timing: str = "absolute", clock: str = "wall") -> "LatencyTable":
        """Time every block key of `space` and its fixed parts, with `threads` torch threads.

        `input_shape` is one image's (C, H, W): (1, 8, 8) for digits, (3, 224, 224) for
        `MobileNetSpace.paper()`. The default space has 24 keys (seconds on a CPU).

        `rounds` > 1 times every key once per round, all keys in turn, and keeps each key's fastest
        round (the median of `repeats` passes within a round). On a shared or virtual machine a
        neighbour slows everything for a second or two at a time; a key timed only inside such a
        spell would be too slow, and rounds spread over time let every key meet a quiet spell.

        `timing="relative"` times each key interleaved with the reference block (`reference_key`)
        instead: each key's ratio is the median over rounds, and entries are ratio x the fastest
        reference median of all the calls, in seconds. `meta["method"]` records the timing and,
        for relative timing, the reference block, its seconds and the `clock` ("wall", or
        "thread": this thread's CPU time, for one CPU thread on a machine with more processes
        than cores; see `nasnb.cost.measure_relative_latency`).
        """
        if not isinstance(space, MobileNetSpace):
            raise InvalidTypeError(f"LatencyTable.measure needs a MobileNetSpace (a chain of blocks), got "
                                   f"{short(space)} ({type(space).__name__}); e.g. LatencyTable.measure(MobileNetSpace())")
        dev = pick_device(device)
        threads = check_positive_int("threads", threads, example=1)
        batch = check_positive_int("batch", batch, example=1)
        warmup = check_int("warmup", warmup, minimum=0, example=10)
        repeats = check_positive_int("repeats", repeats, example=50)
        shape = chw(input_shape)
        num_classes = check_positive_int("num_classes", num_classes, example=10)
        rounds = check_positive_int("rounds", rounds, example=3)
        timing = check_choice("timing", timing, TIMINGS)
        clock = check_choice("clock", clock, CLOCKS)
        if clock != "wall" and timing != "relative":
            raise InvalidValueError(f"clock={clock!r} is an option of relative timing; use timing='relative', "
                                    f"clock={clock!r}, or clock='wall'")
        if clock == "thread" and (threads != 1 or dev.type != "cpu"):
            raise InvalidValueError(f"clock='thread' counts one thread's CPU time: it needs device='cpu' and "
                                    f"threads=1, not {dev} with threads={threads}; use clock='wall' there")
        how = dict(batch=batch, device=dev, warmup=warmup, repeats=repeats)
        method = dict(timing=timing, warmup=warmup, repeats=repeats, rounds=rounds,
                      statistic=RELATIVE_STATISTIC if timing == "relative" else STATISTIC if rounds == 1 else ROUNDS_STATISTIC)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            blocks = {key: _block(key) for key in block_keys(space, shape)}
            blocks[None] = FixedParts(space, shape, num_classes, batch), shape  # None: the fixed parts
            times = {key: [] for key in blocks}
            if timing == "relative":
                ref_key = reference_key(space, shape)
                reference, reference_shape = reference_block(ref_key)
                reference_seconds = math.inf
            for _ in range(rounds):
                for key, (block, block_shape) in blocks.items():
                    if timing == "absolute":
                        times[key].append(float(time_module(block, block_shape, **how)))
                        continue
                    ratio, seconds = time_relative(block, block_shape, reference, reference_shape, clock=clock, **how)
                    times[key].append(float(ratio))
                    reference_seconds = min(reference_seconds, float(seconds))
        finally:
            torch.set_num_threads(previous)
        if timing == "absolute":
            seconds = {key: min(t) for key, t in times.items()}
        else:
            seconds = {key: float(np.median(t)) * reference_seconds for key, t in times.items()}
            method["reference"] = dict(block=list(ref_key), seconds=reference_seconds, clock=clock)
        meta = dict(device=str(dev), device_name=device_name(dev), torch=torch.__version__, threads=threads,
                    batch=batch, input_shape=list(shape), num_classes=num_classes, method=method, space=repr(space))
        fixed = seconds.pop(None)
        return cls(seconds, fixed, layer_shapes(space, shape), meta)

    @property
    def timing(self) -> str:
        """"absolute" or "relative" (tables saved before relative timing existed are absolute)."""
        return self.meta.get("method", {}).get("timing", "absolute")

    def measure_network(self, model: nn.Module, rounds: int | None = None, warmup: int | None = None,
                        repeats: int | None = None) -> float:
        """Seconds of one forward pass of `model` (a network of the table's space, for its input
        shape and batch), measured the way the table was: same threads and timing; the fastest of
        `rounds` (absolute), or the median ratio over `rounds` to the table's reference block
        times its recorded seconds (relative). `rounds`, `warmup` and `repeats` default to the table's."""
        method = self.meta["method"]
        rounds = method["rounds"] if rounds is None else check_positive_int("rounds", rounds, example=3)
        warmup = method["warmup"] if warmup is None else check_int("warmup", warmup, minimum=0, example=5)
        repeats = method["repeats"] if repeats is None else check_positive_int("repeats", repeats, example=20)
        how = dict(batch=self.meta["batch"], device=self.meta["device"], warmup=warmup, repeats=repeats)
        shape = tuple(self.meta["input_shape"])
        previous = torch.get_num_threads()
        torch.set_num_threads(self.meta["threads"])
        try:
            if self.timing == "absolute":
                return min(float(time_module(model, shape, **how)) for _ in range(rounds))
            recorded = self.meta["method"]["reference"]
            reference, reference_shape = reference_block(recorded["block"])
            ratios = [time_relative(model, shape, reference, reference_shape, clock=recorded["clock"], **how)[0]
                      for _ in range(rounds)]
        finally:
            torch.set_num_threads(previous)
        return float(np.median(ratios)) * self.meta["method"]["reference"]["seconds"]

    def predict(self, arch) -> float:
        """Seconds: the fixed part plus each layer's entry for its op at its shape; 'Zero' adds 0."""
        if isinstance(arch, str) or not isinstance(arch, (tuple, list)):
            raise InvalidTypeError(f"arch must be a tuple of op names, one per layer, got {short(arch)} "
                                   f"({type(arch).__name__}); parse an arch string with space.parse(text) first")
        if len(arch) != len(self.layers):
            raise InvalidValueError(f"arch has {len(arch)} ops; this table's space has {len(self.layers)} layers, "
                                    f"e.g. ('3x3_MBConv6',) * {len(self.layers)}")
        total = self.fixed
        for i, (op, shape) in enumerate(zip(arch, self.layers)):
            if isinstance(op, str) and op == ZERO and shape[0] == shape[1] and shape[2] == 1:
                continue
            key = (op, *shape)
            if key not in self.entries:
                ops = sorted({k[0] for k in self.entries if k[1:] == shape})
                ops += [ZERO] if shape[0] == shape[1] and shape[2] == 1 else []
                raise InvalidValueError(f"layer {i} ({shape[0]}->{shape[1]} channels, stride {shape[2]}, "
                                        f"{shape[3]}x{shape[4]}) has no entry for {short(op)}; choose from {ops}")
            total += self.entries[key]
        return total

    # ------------------------------------------------------------------ file

    def to_dict(self) -> dict:
        entries = [[*key, seconds] for key, seconds in self.entries.items()]
        return dict(format=FORMAT, version=VERSION, **self.meta, fixed=self.fixed,
                    layers=[list(s) for s in self.layers], entries=entries)

    def save(self, path) -> None:
        """A small JSON file (no pickle): how it was measured, then the entries [op, C_in, C_out,
        stride, H, W, seconds]. Written to a temporary file first, then renamed."""
        path = os.fspath(path)
        tmp = f"{path}.tmp"
        data = self.to_dict()
        entries = data.pop("entries")
        lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in data.items()]  # one field a line
        lines.append(' "entries": [\n  ' + ",\n  ".join(json.dumps(e) for e in entries) + "\n ]")
        with open(tmp, "w") as f:
            f.write("{\n" + ",\n".join(lines) + "\n}\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path, device=None, threads: int | None = None, space: MobileNetSpace | None = None,
             timing: str | None = None) -> "LatencyTable":
        """The table saved at `path`, checked against where you will predict.

        Refuses (LatencyTableMismatchError) a table of another device type than `device` or, when
        `device` is a real device here, of another CPU/GPU model; refuses another thread count than
        `threads`; refuses a table of another space than `space` (compared by its repr, which
        lists every setting); refuses another `timing` ("absolute" or "relative": the two read a
        noisy machine differently). Leaving an argument as None skips that check. Warns
        (LatencyTableWarning) when the table was measured with another torch version.
        """
        if threads is not None:
            threads = check_positive_int("threads", threads, example=1)
        dev = None if device is None else pick_device(device)
        if timing is not None:
            timing = check_choice("timing", timing, TIMINGS)
        try:
            with open(os.fspath(path)) as f:
                data = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DamagedFileError(f"{short(os.fspath(path))} is not a latency table (not JSON: {err})") from err
        table = cls._from_dict(data, path)
        meta = table.meta
        if dev is not None:
            if torch.device(meta["device"]).type != dev.type or meta["device_name"] != device_name(dev):
                raise LatencyTableMismatchError(
                    f"{short(os.fspath(path))} was measured on {meta['device']} ({meta['device_name']}); you asked for "
                    f"{dev} ({device_name(dev)}): its latencies do not hold there. Measure a table here with "
                    f"LatencyTable.measure(space, device={str(dev)!r}, threads=...)")
        if threads is not None and meta["threads"] != threads:
            raise LatencyTableMismatchError(
                f"{short(os.fspath(path))} was measured with threads={meta['threads']}; you asked for threads={threads}. "
                f"Latency changes with the thread count: load with threads={meta['threads']} or measure a new table")
        if space is not None and meta["space"] != repr(space):
            raise LatencyTableMismatchError(f"{short(os.fspath(path))} was measured for {meta['space']}, not for "
                                            f"{space!r}; measure a table of this space with LatencyTable.measure(space)")
        if timing is not None and table.timing != timing:
            raise LatencyTableMismatchError(
                f"{short(os.fspath(path))} was measured with timing={table.timing!r}; you asked for timing={timing!r}. "
                f"Load with timing={table.timing!r} or measure a table with LatencyTable.measure(space, timing={timing!r})")
        if meta["torch"] != torch.__version__:
            warnings.warn(f"{os.fspath(path)} was measured with torch {meta['torch']}, this is {torch.__version__}; "
                          "kernels change between versions, so its latencies may be off", LatencyTableWarning)
        return table

    @classmethod
    def _from_dict(cls, data, path) -> "LatencyTable":
        where = short(os.fspath(path))
        fields = ("device", "device_name", "torch", "threads", "batch", "input_shape", "num_classes", "method",
                  "space", "fixed", "layers", "entries")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DamagedFileError(f"{where} is not a latency table (no \"format\": {FORMAT!r})")
        if data.get("version") != VERSION:
            raise DamagedFileError(f"{where} is a latency table of version {short(data.get('version'))}; "
                                   f"this nasnb reads version {VERSION}")
        missing = [k for k in fields if k not in data]
        if missing:
            raise DamagedFileError(f"{where} lacks the fields {missing}")

        def seconds(value) -> bool:
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            return number and math.isfinite(value) and value >= 0

        try:
            entries = {(str(op), int(a), int(b), int(s), int(h), int(w)): t for op, a, b, s, h, w, t in data["entries"]}
            layers = [tuple(int(n) for n in shape) for shape in data["layers"]]
        except (TypeError, ValueError) as err:
            raise DamagedFileError(f"{where} has malformed entries or layers ({err})") from err
        if not all(seconds(t) for t in entries.values()) or not seconds(data["fixed"]):
            raise DamagedFileError(f"{where} holds latencies that are not finite non-negative seconds")
        meta = {k: data[k] for k in fields[:9]}
        return cls({k: float(t) for k, t in entries.items()}, data["fixed"], layers, meta)
