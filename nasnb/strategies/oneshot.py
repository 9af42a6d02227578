"""`OneShotSearch`: what the one-shot searches (DARTS, ENAS) share, whatever they train.

A multi-trial search asks an evaluator to train each architecture it tries. A one-shot search
trains one network instead, the supernet (spaces/supernet.py), in which every architecture of the
space is a sub-network; so it takes data, not an evaluator. Around its own update rule (DARTS: α
and w in turn; ENAS: the shared weights, then a controller), each such search needs the same
machinery, which lives here:

* the data: a nasnb.data.TensorData whose `train` and `val` splits each hold at least one batch;
* the supernet: its arguments (`SMALL_SUPERNETS` by default, num_classes and in_channels from the
  data), built from a seed without touching torch's global random state;
* the batches: an endless, shuffled stream per split, drawn from the search's own
  `torch_generator`, whose position is saved in every checkpoint;
* the learning rate of the weights: a cosine from w_lr down to w_lr_min;
* divergence: a NaN or infinite loss or gradient stops the step with a TrainingDivergedError that
  names the step, the likely cause and the fix, and the step is undone, so nothing is recorded.

A subclass's __init__ calls, in this order: `_check_data`, `_check_batch_size`, `_use_data` (after
checking its own arguments, w_lr, w_lr_min and schedule_steps among them), `_resolve_supernet_kwargs`
and `_seeded_supernet`. Its step() runs its updates inside `with self._undone_if_diverged():`, its
checkpoints hold `_streams_state()` under "streams", and it says in `_lower_learning_rates()`
which learning rates to lower when training diverges.
"""
from __future__ import annotations

import contextlib
import copy
import math

import torch

from nasnb.checks import check_float, check_int, check_positive_float, check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError, TrainingDivergedError
from nasnb.strategies.search import Search
from nasnb.train import check_data, pick_device

# A small supernet per space, so that a step takes well under a second on a CPU with digits-sized
# data (the DARTS paper's search network is DartsSpace().supernet(C=16, layers=8) on CIFAR-10).
SMALL_SUPERNETS = {"nb201": {"C": 8, "N": 1}, "darts": {"C": 8, "layers": 5}}

SPLITS = ("train", "val")  # the weights train on `train`; the architecture is judged on `val`


def cosine_learning_rate(t: int, period: int, lr_max: float, lr_min: float) -> float:
    """lr_max at t = 0 down to lr_min at t = period by half a cosine, lr_min after it (Loshchilov &
    Hutter, 2017, eq. 5): lr_min + (lr_max − lr_min) / 2 · (1 + cos(π t / period))."""
    t = min(t, period)
    return lr_min + (lr_max - lr_min) / 2 * (1 + math.cos(math.pi * t / period))


class OneShotSearch(Search):
    """Base of the searches that train a supernet on data (DARTS, ENAS); see the module docstring.

    Attributes it sets: batch_size, device, data (on the device), data_settings (what settings()
    records of the data), supernet_kwargs, streams. Attributes it reads, which the subclass sets:
    w_lr, w_lr_min and schedule_steps (current_w_lr).
    """

    # ---------------------------------------------------------------- data and supernet, in __init__

    def _check_data(self, data, trains: str) -> None:
        """A TensorData with the splits a one-shot search uses (`trains`: what it trains on them,
        for the error message, e.g. "a supernet")."""
        name = type(self).__name__
        if not hasattr(data, "train") or not hasattr(data, "fingerprint"):
            raise InvalidTypeError(f"data must be a nasnb.data.TensorData, got {short(data)}; {name} trains {trains} "
                                   f"on data (it takes no evaluator): e.g. {name}(space, nasnb.data.load('digits'))")
        check_data(data)

    def _check_batch_size(self, batch_size, data) -> int:
        """`batch_size`, when it is a positive int that neither split is smaller than."""
        batch_size = check_positive_int("batch_size", batch_size, example=64)
        for split in SPLITS:
            n = len(data.split(split)[1])
            if batch_size > n:
                raise InvalidValueError(f"batch_size={batch_size}, but the {split} split has {n} images; "
                                        f"e.g. batch_size={n}")
        return batch_size

    def _set_optimisers(self, *, w_lr, w_lr_min, schedule_steps, w_momentum, w_weight_decay, grad_clip, alpha_lr,
                        alpha_betas, alpha_weight_decay, warmup_steps, paper: dict) -> None:
        """Checks and keeps the settings of the two optimisers every one-shot search here has: SGD
        with momentum and a cosine schedule from `w_lr` to `w_lr_min` for the weights, Adam for α.
        `paper` holds the method's published values (w_weight_decay, alpha_betas, ...), which the
        error messages give as the example of a valid value."""
        self.w_lr = check_positive_float("w_lr", w_lr, example=0.025)
        self.w_lr_min = check_float("w_lr_min", w_lr_min, minimum=0.0, maximum=self.w_lr, example=paper["w_lr_min"])
        self.schedule_steps = (None if schedule_steps is None
                               else check_positive_int("schedule_steps", schedule_steps, example=1000))
        self.w_momentum = check_float("w_momentum", w_momentum, minimum=0.0, maximum=0.999, example=0.9)
        self.w_weight_decay = check_float("w_weight_decay", w_weight_decay, minimum=0.0, maximum=1.0,
                                          example=paper["w_weight_decay"])
        self.grad_clip = None if grad_clip is None else check_positive_float("grad_clip", grad_clip, example=5.0)
        self.alpha_lr = check_positive_float("alpha_lr", alpha_lr, example=paper["alpha_lr"])
        beta1 = paper["alpha_betas"][0]
        if not isinstance(alpha_betas, (tuple, list)) or len(alpha_betas) != 2:
            raise InvalidValueError(f"alpha_betas must be a pair (beta1, beta2), got {short(alpha_betas)}; "
                                    f"e.g. alpha_betas=({beta1}, 0.999)")
        self.alpha_betas = tuple(check_float(f"alpha_betas[{i}]", b, minimum=0.0, maximum=0.9999, example=beta1)
                                 for i, b in enumerate(alpha_betas))
        self.alpha_weight_decay = check_float("alpha_weight_decay", alpha_weight_decay, minimum=0.0, maximum=1.0,
                                              example=paper["alpha_weight_decay"])
        self.warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0, example=100)

    def _use_data(self, data, device) -> None:
        """Puts the data on the device and starts the batch streams (no batch is drawn yet)."""
        self.device = pick_device(device)
        self.data = data.to(self.device)
        self.data_settings = {"name": data.name, "fingerprint": data.fingerprint(),
                              "train_size": len(data.train[1]), "val_size": len(data.val[1])}
        # Where each split's endless shuffled stream is: this epoch's order and the next position.
        self.streams = {split: {"order": torch.zeros(0, dtype=torch.long), "position": 0} for split in SPLITS}

    def _resolve_supernet_kwargs(self, supernet_kwargs: dict | None) -> dict:
        """The arguments of `space.supernet(...)`: `supernet_kwargs` (None: SMALL_SUPERNETS' for the
        space) with num_classes and in_channels from the data, which they may not contradict."""
        if supernet_kwargs is None:
            supernet_kwargs = SMALL_SUPERNETS.get(getattr(self.space, "name", None), {})
        if not isinstance(supernet_kwargs, dict):
            raise InvalidTypeError(f"supernet_kwargs must be a dict (or None), got {short(supernet_kwargs)}; "
                                   "e.g. supernet_kwargs={'C': 8, 'N': 1}")
        kwargs = dict(supernet_kwargs)
        for name, value in (("num_classes", self.data.num_classes), ("in_channels", self.data.in_channels)):
            if kwargs.setdefault(name, value) != value:
                raise InvalidValueError(f"supernet_kwargs sets {name}={short(kwargs[name])}, but the data has "
                                        f"{value}; leave it out (it comes from the data)")
        return kwargs

    def _seeded_supernet(self, kwargs: dict, seed: int) -> torch.nn.Module:
        """`space.supernet(**kwargs)` initialised from `seed`, on the device, in train mode."""
        with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's RNG alone
            torch.manual_seed(seed)
            try:
                net = self.space.supernet(**kwargs)
            except TypeError as err:
                raise InvalidValueError(f"supernet_kwargs={short(self.supernet_kwargs)} do not fit "
                                        f"{type(self.space).__name__}.supernet ({err})") from None
        return net.to(self.device).train()  # train mode throughout: BatchNorm uses batch statistics

    # ---------------------------------------------------------------- what a step uses

    def current_w_lr(self) -> float:
        """The weights' learning rate at this step: cosine_learning_rate from w_lr to w_lr_min over
        schedule_steps, then w_lr_min; w_lr throughout when schedule_steps is None."""
        if self.schedule_steps is None:
            return self.w_lr
        return cosine_learning_rate(len(self.history), self.schedule_steps, self.w_lr, self.w_lr_min)

    def _next_batch(self, split: str) -> tuple:
        """The next batch of `split`'s endless stream: a new shuffled order each epoch, drawn from
        self.torch_generator; the last incomplete batch of an epoch is dropped."""
        x, y = self.data.split(split)
        stream = self.streams[split]
        if stream["position"] + self.batch_size > len(stream["order"]):
            stream["order"] = torch.randperm(len(y), generator=self.torch_generator)
            stream["position"] = 0
        idx = stream["order"][stream["position"]:stream["position"] + self.batch_size].to(x.device)
        stream["position"] += self.batch_size
        return x[idx], y[idx]

    def _check_finite(self, what: str, value: torch.Tensor) -> None:
        """A TrainingDivergedError when `value` (the `what`: a loss, a gradient norm) is NaN or
        infinite, naming the step and the likely cause: non-finite images, or learning rates too high."""
        if bool(torch.isfinite(value)):
            return
        finite_data = all(bool(torch.isfinite(self.data.split(s)[0]).all()) for s in SPLITS)
        if not finite_data:
            cause = (f"the images of {self.data.name!r} hold NaN or infinite values; load them with "
                     "nasnb.data.from_tensors(x, y), which refuses such images")
        else:
            cause = self._lower_learning_rates()
        raise TrainingDivergedError(f"{type(self).__name__} diverged at step {len(self.history)}: the {what} is "
                                    f"{float(value.detach())}. Likely cause: {cause}. "
                                    "Nothing was recorded for this step.")

    def _lower_learning_rates(self) -> str:
        """_check_finite's cause when the data is finite: which learning rates to lower, and to what."""
        return (f"the learning rates are probably too high; try e.g. w_lr={self.w_lr / 10:g} (a tenth), "
                "or a smaller grad_clip")

    @contextlib.contextmanager
    def _undone_if_diverged(self):
        """Runs a step's updates; on a TrainingDivergedError the search is put back as it was before
        them (weights, optimisers, streams, generator) and the error goes on, so nothing is recorded."""
        before = copy.deepcopy(self._extra_state()), self.torch_generator.get_state()
        try:
            yield
        except TrainingDivergedError:
            self._load_extra_state(before[0])
            self.torch_generator.set_state(before[1])
            raise

    # ---------------------------------------------------------------- checkpoints

    def _streams_state(self) -> dict:
        """The streams' orders and positions, for `_extra_state()["streams"]`."""
        return {split: {"order": s["order"].clone(), "position": s["position"]} for split, s in self.streams.items()}

    def _load_streams(self, streams: dict) -> None:
        """The streams back from `_streams_state()`'s output (read from a checkpoint)."""
        self.streams = {split: {"order": s["order"].clone().cpu(), "position": int(s["position"])}
                        for split, s in streams.items()}

    # ---------------------------------------------------------------- scoring on the shared weights

    @contextlib.contextmanager
    def _scoring(self):
        """No gradients, and BatchNorm's running statistics put back afterwards: scoring leaves the
        search exactly as it was."""
        buffers = {name: b.clone() for name, b in self.net.named_buffers()}
        try:
            with torch.no_grad():
                yield
        finally:
            with torch.no_grad():
                for name, b in self.net.named_buffers():
                    b.copy_(buffers[name])

    def _accuracy(self, arch, x, y) -> float:
        with self._scoring():
            return float((self.net(x, arch=arch).argmax(1) == y).float().mean())

    def shared_accuracy(self, arch, split: str = "val") -> float:
        """The accuracy of `arch` (an architecture of the space, or its string) on the supernet's
        shared weights, only its ops run (the "one-shot accuracy" by which weight sharing ranks
        cells; ENAS' reward), over the whole `split` in batches of about batch_size images
        (BatchNorm on batch statistics). Changes nothing in the search."""
        if split not in ("train", "val", "test"):
            raise InvalidValueError(f"split={split!r}; choose 'train', 'val' or 'test', e.g. split='val'")
        arch = self.space.parse(arch) if isinstance(arch, str) else arch
        x, y = self.data.split(split)
        chunks = max(1, round(len(y) / self.batch_size))  # near-equal chunks: no tiny last batch
        correct = 0.0
        for xs, ys in zip(torch.tensor_split(x, chunks), torch.tensor_split(y, chunks)):
            correct += self._accuracy(arch, xs, ys) * len(ys)
        return correct / len(y)
