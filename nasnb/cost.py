"""What a network costs: parameters, forward FLOPs and inference latency.

Cheap figures computed for an architecture without training it (`TrainEvaluator` reports them for
every architecture, hardware-aware searches minimise them). Also importable from `nasnb.train`.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn

from nasnb.checks import check_bool, check_choice, check_int, check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.train import check_model, pick_device


def count_params(model: nn.Module, include_auxiliary: bool = False) -> int:
    """Number of parameters. The auxiliary head (parameters named "auxiliary...") is left out by
    default, as DARTS and the papers after it report sizes."""
    check_model(model)
    check_bool("include_auxiliary", include_auxiliary)
    return sum(p.numel() for name, p in model.named_parameters() if include_auxiliary or "auxiliary" not in name)


def image_shape(input_shape) -> tuple:
    """(C, H, W) from a TensorData or a sequence of positive ints."""
    shape = getattr(input_shape, "input_shape", input_shape)
    ok = isinstance(shape, (tuple, list, torch.Size)) and len(shape) > 0 and all(
        not isinstance(n, bool) and isinstance(n, (int, np.integer)) and n > 0 for n in shape)
    if not ok:
        raise InvalidValueError(f"input_shape must be (C, H, W), positive ints, or a TensorData; "
                                f"got {short(input_shape)}; e.g. input_shape=(1, 8, 8)")
    return tuple(int(n) for n in shape)


def count_flops(model: nn.Module, input_shape) -> int:
    """Forward FLOPs for one image of shape (C, H, W) (or a TensorData's), in eval mode.

    Counted by `torch.utils.flop_counter.FlopCounterMode`: convolutions and matrix products only,
    one multiply-add = 2 FLOPs (halve it for the "multi-adds" of the DARTS and NASNet tables).
    Only the forward pass: FlopCounterMode miscounts the backward of grouped convolutions.
    """
    from torch.utils.flop_counter import FlopCounterMode

    check_model(model)
    shape = image_shape(input_shape)
    param = next(model.parameters(), None)
    x = torch.zeros(1, *shape, device=param.device if param is not None else "cpu")  # (1, C, H, W)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def _timing_setup(device):
    device = pick_device(device)
    sync = {"cuda": torch.cuda.synchronize, "mps": lambda: torch.mps.synchronize()}.get(device.type, lambda: None)
    return device, sync


def measure_latency(model: nn.Module, input_shape, batch_size=1, device="auto", warmup=5, repeats=20) -> dict:
    """Inference time of one forward pass (eval mode, no grad): {"median", "p90"} in seconds.

    The model is moved to `device`. GPU work is asynchronous, so the clock only stops after
    synchronising. Machines are noisy: compare latencies measured in the same session, or use
    `measure_relative_latency`, which cancels a machine-wide slowdown.
    """
    check_model(model)
    shape = image_shape(input_shape)
    batch_size = check_positive_int("batch_size", batch_size)
    warmup = check_int("warmup", warmup, minimum=0, example=5)
    repeats = check_positive_int("repeats", repeats, example=20)
    device, sync = _timing_setup(device)
    model.to(device)
    x = torch.zeros(batch_size, *shape, device=device)  # (B, C, H, W)
    was_training = model.training
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:  # the first calls pay for memory allocation and kernel selection
                times.append(time.perf_counter() - start)
    model.train(was_training)
    return {"median": float(np.median(times)), "p90": float(np.percentile(times, 90)),
            "batch_size": batch_size, "device": str(device)}


CLOCKS = ("wall", "thread")


def measure_relative_latency(model: nn.Module, input_shape, reference: nn.Module, reference_shape, batch_size=1,
                             device="auto", warmup=5, repeats=20, clock="wall") -> dict:
    """`model`'s latency in units of a fixed `reference` module's, timed interleaved (differential timing).

    On a shared or virtual machine the core's speed wanders (2-3x here, in spells of seconds), so
    two absolute timings of one network disagree. A slowdown that lasts longer than a pass hits
    the model and the reference alike, so pass i times both, one after the other:

        t_i = s_i * T_model,   r_i = s_i * T_reference    (s_i: the machine's slowness then)
        ratio = median over i of t_i / r_i = T_model / T_reference

    and s_i cancels. The median ignores the few pairs in which the speed changed between the two
    passes. Eval mode, no grad, `warmup` untimed pairs, then `repeats` timed pairs; `reference`
    runs on a (batch_size, *reference_shape) input. Returns {"ratio" (reference units, no
    dimension), "median" and "reference_median" (the two modules' median seconds during the
    measurement, slowdown included), "batch_size", "device", "clock"}. To read the ratio in seconds,
    multiply it by the reference's latency measured on a quiet machine (LatencyTable does).

    `clock="thread"` reads this thread's CPU time (`time.thread_time`) instead of the wall clock:
    time the OS gives to other processes in between is not counted, which matters when more
    processes than cores run (load average above the core count). CPU with one torch thread only:
    the work of other threads, or of a GPU, would not be counted.
    """
    check_model(model)
    if not isinstance(reference, nn.Module):
        raise InvalidTypeError(f"reference must be a torch.nn.Module timed with the model, got {short(reference)} "
                               f"({type(reference).__name__}); e.g. reference=MBConv(16, 16, 3, 1, 3)")
    shape = image_shape(input_shape)
    try:
        ref_shape = image_shape(reference_shape)
    except InvalidValueError:
        raise InvalidValueError(f"reference_shape must be the reference's input (C, H, W), positive ints; got "
                                f"{short(reference_shape)}; e.g. reference_shape=(16, 8, 8)") from None
    batch_size = check_positive_int("batch_size", batch_size)
    warmup = check_int("warmup", warmup, minimum=0, example=5)
    repeats = check_positive_int("repeats", repeats, example=20)
    device, sync = _timing_setup(device)
    check_choice("clock", clock, CLOCKS)
    if clock == "thread" and (device.type != "cpu" or torch.get_num_threads() != 1):
        raise InvalidValueError(f"clock='thread' counts this thread's CPU time only; it needs device='cpu' and one "
                                f"torch thread (torch.set_num_threads(1)), not {device} with {torch.get_num_threads()} "
                                f"threads; use clock='wall' there")
    now = time.thread_time if clock == "thread" else time.perf_counter
    modes = [(m, m.training) for m in (model, reference)]
    x = torch.zeros(batch_size, *shape, device=device)  # (B, C, H, W)
    x_ref = torch.zeros(batch_size, *ref_shape, device=device)  # (B, C', H', W')
    times, ref_times = [], []
    try:
        for m, _ in modes:
            m.to(device).eval()
        with torch.no_grad():
            for i in range(warmup + repeats):
                sync()
                start = now()
                model(x)
                sync()
                middle = now()
                reference(x_ref)
                sync()
                if i >= warmup:
                    times.append(middle - start)
                    ref_times.append(now() - middle)
    finally:
        for m, training in modes:
            m.train(training)
    times, ref_times = np.array(times), np.array(ref_times)
    if np.any(ref_times <= 0):
        raise InvalidValueError("the reference took no measurable time; choose a reference module that computes "
                                "something, e.g. one MBConv block")
    return {"ratio": float(np.median(times / ref_times)), "median": float(np.median(times)),
            "reference_median": float(np.median(ref_times)), "batch_size": batch_size, "device": str(device),
            "clock": clock}
