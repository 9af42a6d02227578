"""Training one network: device choice, fit/evaluate (its costs, parameters, FLOPs, latency: cost.py).

`fit` is the training loop of the DARTS evaluation code (Liu et al., 2019, Sec. 3.3 and their
train.py): SGD with momentum, cosine learning rate annealed to zero, gradient clipping, an optional
auxiliary head and a linearly growing drop-path probability. Searches call it once per architecture
(through `TrainEvaluator`), so it is also written to be fast on small data: batches come from
tensors already on the device (`TensorData.batches`) and the loss is read back once per epoch.
"""
from __future__ import annotations

import inspect
import math
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasnb.checks import (check_bool, check_choice, check_float, check_int, check_positive_float,
                          check_positive_int, short)
from nasnb.errors import InvalidTypeError, InvalidValueError, TrainingDivergedError, UnknownNameError

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "constant")
SPLITS = ("train", "val", "test")
MAX_SEED = 2**64 - 1  # torch.manual_seed takes seeds up to 2**64 - 1
# The device of this process when it is a worker of nasnb.evaluators.process_pool(devices=...): what
# "auto" means in it. None elsewhere.
PINNED_DEVICE: torch.device | None = None


def pick_device(device="auto") -> torch.device:
    """A `torch.device`: "auto" takes CUDA, then Apple's MPS, then the CPU (in a worker of
    ``process_pool(devices=...)``: that worker's device); anything else is checked."""
    if PINNED_DEVICE is not None and isinstance(device, str) and device == "auto":
        return PINNED_DEVICE
    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu")
    hint = "use 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps'"
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int, np.integer)):
        raise InvalidTypeError(f"device must be a string or a torch.device, got {short(device)} "
                               f"({type(device).__name__}); {hint}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise InvalidValueError(f"unknown device {short(device)}; {hint}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidValueError(f"device {short(device)} was asked for, but torch sees no CUDA GPU here "
                                "(torch.cuda.is_available() is False); use device='cpu', or 'auto' to take what there is")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InvalidValueError(f"device {short(device)} was asked for, but there are {torch.cuda.device_count()} "
                                "CUDA GPUs; e.g. device='cuda:0'")
    if dev.type == "mps" and not mps_ok:
        raise InvalidValueError(f"device {short(device)} was asked for, but MPS is not available; use 'cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InvalidValueError(f"device {short(device)} is not one nasnb trains on; {hint}")
    return dev


def learning_rate(epoch: int, epochs: int, lr: float, schedule: str = "cosine") -> float:
    """The learning rate of epoch `epoch` (0-based): cosine annealing lr/2 * (1 + cos(pi * t / T))
    (Loshchilov & Hutter, 2017, eq. 5 with eta_min = 0), or `lr` throughout for "constant"."""
    epochs = check_positive_int("epochs", epochs)
    check_int("epoch", epoch, minimum=0, maximum=epochs)
    lr = check_positive_float("lr", lr, example=0.025)
    check_name("schedule", schedule, SCHEDULES)
    if schedule == "constant":
        return lr
    return lr / 2 * (1 + math.cos(math.pi * epoch / epochs))


def check_name(name: str, value, options) -> str:
    """`value` if it is one of the string `options`; anything else (a typo, a number) is named."""
    if not isinstance(value, str):  # before comparing: an array compared with a string is ambiguous
        raise InvalidTypeError(f"{name} must be one of {list(options)}, got {short(value)} ({type(value).__name__})")
    return check_choice(name, value, options)


def check_data(data) -> None:
    """`data` must be a `nasnb.data.TensorData` (what `load` and `from_tensors` return)."""
    from nasnb.data import TensorData  # data.py imports this module: import at call time

    if not isinstance(data, TensorData):
        raise InvalidTypeError(f"data must be a nasnb.data.TensorData, got {short(data)} ({type(data).__name__}); "
                               "e.g. data=nasnb.data.load('digits') or nasnb.data.from_tensors(x, y)")


def check_model(model) -> None:
    if not isinstance(model, nn.Module):
        raise InvalidTypeError(f"model must be a torch.nn.Module, got {short(model)} ({type(model).__name__}); "
                               "e.g. model=NB201Space().build(arch, C=8, N=1, in_channels=1)")


def check_fit_settings(settings: dict) -> dict:
    """fit's keyword settings, checked and completed with fit's defaults (a new dict).

    `fit` calls it first, and `TrainEvaluator` calls it on its ``**fit_kwargs`` when it is
    constructed, so that a bad lr fails at once and not at the first of a hundred trainings.
    """
    defaults = {name: p.default for name, p in inspect.signature(fit).parameters.items()
                if p.kind is p.KEYWORD_ONLY}
    unknown = [name for name in settings if name not in defaults]
    if unknown:
        raise UnknownNameError(f"nasnb.train.fit has no setting {short(unknown[0])}; its settings are "
                               f"{list(defaults)}, e.g. lr=0.025")
    s = {**defaults, **settings}
    s["batch_size"] = check_positive_int("batch_size", s["batch_size"], example=64)
    s["lr"] = check_positive_float("lr", s["lr"], example=0.025)
    s["momentum"] = check_float("momentum", s["momentum"], minimum=0.0, maximum=1.0, example=0.9)
    if s["momentum"] == 1.0:  # a velocity that never decays sums every gradient ever seen
        raise InvalidValueError("momentum must be below 1, got 1.0; e.g. momentum=0.9")
    s["weight_decay"] = check_float("weight_decay", s["weight_decay"], minimum=0.0, maximum=1.0, example=3e-4)
    s["optimizer"] = check_name("optimizer", s["optimizer"], OPTIMIZERS)
    s["schedule"] = check_name("schedule", s["schedule"], SCHEDULES)
    if s["grad_clip"] is not None:  # None switches clipping off; 0 would clip every gradient to nothing
        s["grad_clip"] = check_positive_float("grad_clip", s["grad_clip"], example=5.0)
    s["aux_weight"] = check_float("aux_weight", s["aux_weight"], minimum=0.0, maximum=1.0, example=0.4)
    s["label_smoothing"] = check_float("label_smoothing", s["label_smoothing"], minimum=0.0, maximum=1.0,
                                       example=0.1)
    for flag in ("amp", "progress", "channels_last"):
        s[flag] = check_bool(flag, s[flag])
    if s["augment"] is not None:
        s["augment"] = check_bool("augment", s["augment"])
    pick_device(s["device"])  # fails now on a device this machine does not have
    s["seed"] = check_int("seed", s["seed"], minimum=0, maximum=MAX_SEED, example=0)
    s["eval_split"] = check_name("eval_split", s["eval_split"], SPLITS)
    if s["callback"] is not None and not callable(s["callback"]):
        raise InvalidTypeError(f"callback must be a function of one record (or None), got {short(s['callback'])}; "
                               "e.g. callback=print")
    return s


def fit(model: nn.Module, data, epochs: int, *, batch_size=64, lr=0.025, momentum=0.9, weight_decay=3e-4,
        optimizer="sgd", schedule="cosine", grad_clip=5.0, aux_weight=0.4, label_smoothing=0.0,
        amp=False, device="auto", seed=0, eval_split="val", progress=True, augment=None,
        callback=None, channels_last=True) -> list[dict]:
    """Train `model` on `data.train` for `epochs` epochs; return one record per epoch.

    Each record: {"epoch", "loss", "train_accuracy", f"{eval_split}_accuracy", f"{eval_split}_loss",
    "lr", "seconds"}. Accuracies are fractions in [0, 1] (multiply by 100 for the papers' percent);
    "loss" and "train_accuracy" are running averages over the epoch's (augmented) training batches,
    "seconds" is the epoch's wall time, evaluation included.

    optimizer: "sgd" (momentum, no Nesterov, as in DARTS) or "adam" (give it a smaller lr, ~1e-3).
    schedule: "cosine" (annealed to 0 over `epochs`) or "constant".
    grad_clip: clip the gradient norm to this (None: no clipping).
    aux_weight: a model that returns `(logits, aux_logits)` while training is trained on
        CE(logits) + aux_weight * CE(aux_logits), the auxiliary tower of Szegedy et al. used by DARTS.
    amp: mixed precision (float16 autocast + gradient scaling); CUDA only, ignored elsewhere.
    seed: draws the batch order, the augmentation and dropout / drop-path; the initial weights are
        the caller's (call `torch.manual_seed` before building the model). The caller's global
        random state is left as it was.
    augment: None uses the data's own augmentation if it has one (CIFAR-10), else True / False.
    callback: called with each record after its epoch.
    channels_last: train in NHWC layout, which the small convolutions of NAS cells run 1.1-1.7x
        faster in (benchmarks/README.md); the weights and results are the same model either way.

    A model with a `drop_path_prob` attribute has it ramped linearly as in DARTS: epoch e uses
    p_max * e / epochs, where p_max is the value when fit starts (restored at the end).

    Every argument is checked before the first step (a `NasnbError` names a bad one). A loss that
    turns NaN or infinite stops training with `TrainingDivergedError`, checked once per epoch.
    """
    check_model(model)
    check_data(data)
    epochs = check_positive_int("epochs", epochs, example=3)
    s = check_fit_settings(dict(
        batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay, optimizer=optimizer,
        schedule=schedule, grad_clip=grad_clip, aux_weight=aux_weight, label_smoothing=label_smoothing,
        amp=amp, device=device, seed=seed, eval_split=eval_split, progress=progress, augment=augment,
        callback=callback, channels_last=channels_last))
    # plain Python numbers from here on: a numpy int64 batch size would make numpy bools of its tests
    batch_size, lr, momentum, weight_decay, grad_clip, aux_weight, label_smoothing, seed = (
        s[k] for k in ("batch_size", "lr", "momentum", "weight_decay", "grad_clip", "aux_weight",
                       "label_smoothing", "seed"))
    device = pick_device(device)
    use_amp = bool(amp) and device.type == "cuda"
    if amp and not use_amp:
        warnings.warn(f"amp=True needs a CUDA device; training in float32 on {device}", stacklevel=2)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InvalidValueError("model has no trainable parameters (every requires_grad is False, or it has none); "
                                "e.g. model=nn.Sequential(nn.Flatten(), nn.Linear(64, 10))")
    model.to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    data = data.to(device)
    augment = data.augment is not None if augment is None else augment
    check_input_shape(model, data)

    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    generator = torch.Generator().manual_seed(seed)  # batch order and augmentation
    p_max = getattr(model, "drop_path_prob", None)
    n_train = len(data.train[1])
    drop_last = n_train > 1 and n_train % batch_size == 1  # BatchNorm cannot train on a batch of one

    from tqdm.auto import tqdm

    records = []
    bar = tqdm(range(epochs), desc="fit", unit="epoch", disable=not progress)
    cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda_devices, device_type="cuda"):
            torch.manual_seed(seed)  # dropout and drop-path draw from the global generator
            for epoch in bar:
                start = time.perf_counter()
                for group in opt.param_groups:
                    group["lr"] = learning_rate(epoch, epochs, lr, schedule)
                if p_max is not None:
                    model.drop_path_prob = p_max * epoch / epochs
                loss, accuracy, bad_batch = _train_epoch(model, data, opt, scaler, generator, batch_size, augment,
                                                         drop_last, grad_clip, aux_weight, label_smoothing,
                                                         use_amp, memory_format)
                if bad_batch is not None:
                    raise _diverged(f"the training loss became {loss} in epoch {epoch}, batch {bad_batch} "
                                    "(both counted from 0, as in the records)", data, lr)
                scores = evaluate(model, data, split=eval_split, device=device)
                if not math.isfinite(scores["loss"]):
                    raise _diverged(f"the {eval_split} loss became {scores['loss']} after epoch {epoch} "
                                    f"(counting from 0), though the training loss was {loss}", data, lr)
                record = {"epoch": epoch, "loss": loss, "train_accuracy": accuracy,
                          f"{eval_split}_accuracy": scores["accuracy"], f"{eval_split}_loss": scores["loss"],
                          "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - start}
                records.append(record)
                bar.set_postfix(loss=f"{loss:.3f}", **{f"{eval_split}_acc": f"{scores['accuracy']:.3f}"})
                if callback is not None:
                    callback(record)
    finally:
        bar.close()
        if p_max is not None:
            model.drop_path_prob = p_max
    return records


def _diverged(what: str, data, lr: float) -> TrainingDivergedError:
    """The error for a NaN or infinite loss, with its likely cause: bad data, or too high a learning rate."""
    finite = all(bool(torch.isfinite(data.split(s)[0]).all()) for s in SPLITS)  # once, after the fact
    if not finite:
        cause = (f"the images of {data.name!r} hold NaN or infinite values; load them with "
                 "nasnb.data.from_tensors(x, y), which refuses such images")
    else:
        cause = (f"the learning rate lr={lr:g} is probably too high for this network; "
                 f"try e.g. lr={lr / 10:g} (a tenth), or a smaller grad_clip")
    return TrainingDivergedError(f"training diverged: {what}. Likely cause: {cause}.")


def _train_epoch(model, data, opt, scaler, generator, batch_size, augment, drop_last, grad_clip,
                 aux_weight, label_smoothing, use_amp, memory_format) -> tuple[float, float, int | None]:
    """One pass over the training split: (mean loss, accuracy in [0, 1], first batch whose loss was
    NaN or infinite, or None)."""
    model.train()
    device = data.device
    # Each batch's loss is written on the device and read back once at the end of the epoch, not per
    # batch (a read waits for the GPU); kept per batch, it also tells which batch went wrong.
    n = len(data.train[1])
    batch_losses = torch.zeros(n // batch_size if drop_last else -(-n // batch_size), device=device)
    sizes = []
    correct = torch.zeros((), device=device, dtype=torch.long)
    batches = data.batches("train", batch_size, shuffle=True, generator=generator, augment=augment,
                           drop_last=drop_last)
    for i, (x, y) in enumerate(batches):
        x = x.contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            logits, aux_logits = split_outputs(model(x))
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
            if aux_logits is not None and aux_weight:
                loss = loss + aux_weight * F.cross_entropy(aux_logits, y, label_smoothing=label_smoothing)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(opt)
        scaler.update()
        batch_losses[i] = loss.detach().float()
        sizes.append(len(y))
        correct += (logits.argmax(1) == y).sum()
    losses = batch_losses.cpu().double()  # the epoch's one read of the losses; float64: a sum cannot overflow
    seen = sum(sizes)
    mean_loss = float((losses * torch.tensor(sizes, dtype=torch.float64)).sum()) / seen
    finite = torch.isfinite(losses)
    bad_batch = None if bool(finite.all()) else int((~finite).nonzero()[0])
    return mean_loss, correct.item() / seen, bad_batch


def split_outputs(out) -> tuple:
    """(logits, aux_logits or None) from a model's output: a tensor, or a tuple with an auxiliary head."""
    if isinstance(out, (tuple, list)):
        return out[0], (out[1] if len(out) > 1 else None)
    return out, None


@torch.no_grad()
def evaluate(model: nn.Module, data, split="val", batch_size=256, device="auto") -> dict:
    """Mean cross-entropy and accuracy (a fraction in [0, 1]) of `model` on a split, in eval mode."""
    check_model(model)
    check_data(data)
    check_name("split", split, SPLITS)
    batch_size = check_positive_int("batch_size", batch_size, example=256)
    device = pick_device(device)
    model.to(device)
    data = data.to(device)
    was_training = model.training
    model.eval()
    total_loss, correct = torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long)
    for x, y in data.batches(split, batch_size):
        logits, _ = split_outputs(model(x))
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    n = len(data.split(split)[1])
    return {"loss": total_loss.item() / n, "accuracy": correct.item() / n}


def check_input_shape(model: nn.Module, data) -> None:
    """Run two images through the model; turn a shape mismatch into an error a student can act on."""
    check_model(model)
    check_data(data)
    x = data.train[0][:2]
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    was_training = model.training
    model.eval()  # no BatchNorm statistics or dropout draws are spent on this check
    try:
        with torch.no_grad():
            logits, _ = split_outputs(model(x))
    except RuntimeError as err:
        if isinstance(first, nn.Conv2d):
            expected = f"the model's first convolution expects {first.in_channels} input channels"
        elif isinstance(first, nn.Linear):
            expected = f"the model's first linear layer expects {first.in_features} inputs"
        else:
            expected = "the model expects something else"
        raise InvalidValueError(
            f"the model cannot read {data.name!r} images of shape {data.input_shape} (C, H, W): {expected}. "
            f"Build it for this data (e.g. in_channels={data.in_channels}, num_classes={data.num_classes}). "
            f"The error was: {err}") from err
    finally:
        model.train(was_training)
    if logits.shape[-1] != data.num_classes:
        raise InvalidValueError(f"the model outputs {logits.shape[-1]} class scores, but {data.name!r} has "
                         f"{data.num_classes} classes; build it with num_classes={data.num_classes}")


# Re-exported: nasnb.train.count_params & co. are the names users know (README, notebooks).
from nasnb.cost import count_flops, count_params, image_shape, measure_latency  # noqa: E402,F401
