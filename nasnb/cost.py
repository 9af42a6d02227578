"""What a network costs: parameters, forward FLOPs and inference latency.

Cheap figures computed for an architecture without training it (`TrainEvaluator` reports them for
every architecture, hardware-aware searches minimise them). Also importable from `nasnb.train`.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn

from nasnb.checks import check_bool, check_int, check_positive_int, short
from nasnb.errors import InvalidValueError
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


def measure_latency(model: nn.Module, input_shape, batch_size=1, device="auto", warmup=5, repeats=20) -> dict:
    """Inference time of one forward pass (eval mode, no grad): {"median", "p90"} in seconds.

    The model is moved to `device`. GPU work is asynchronous, so the clock only stops after
    synchronising. Machines are noisy: compare latencies measured in the same session.
    """
    check_model(model)
    shape = image_shape(input_shape)
    batch_size = check_positive_int("batch_size", batch_size)
    warmup = check_int("warmup", warmup, minimum=0, example=5)
    repeats = check_positive_int("repeats", repeats, example=20)
    device = pick_device(device)
    model.to(device)
    x = torch.zeros(batch_size, *shape, device=device)  # (B, C, H, W)
    sync = {"cuda": torch.cuda.synchronize, "mps": lambda: torch.mps.synchronize()}.get(device.type, lambda: None)
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
