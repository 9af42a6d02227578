"""Image classification data as plain tensors: small enough to live on the device, fast to batch.

A NAS run trains hundreds of small networks for a few epochs each. At that scale a `DataLoader`
with worker processes spends more time starting workers and collating PIL images than the network
spends learning, so every data set here is converted *once* into normalised float tensors, and a
batch is an index into them (see benchmarks/ and PERFORMANCE-NOTES.md).

    data = load("digits")              # bundled with scikit-learn: no download
    data = load("cifar10").to("auto")  # torchvision files, moved to the GPU if there is one
    for x, y in data.batches("train", 64, shuffle=True, generator=g, augment=True): ...

Every split is stratified and seeded: the same seed gives the same images in every split.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from nasnb.spaces.base import as_rng
from nasnb.train import pick_device

# name -> (torchvision class, per-channel mean, per-channel std, augmentation, where the files go)
# Normalisation constants are the ones the community uses for each data set.
TORCHVISION_SETS = {
    "mnist": ("MNIST", (0.1307,), (0.3081,), None, "MNIST/raw/"),
    "fashion_mnist": ("FashionMNIST", (0.2860,), (0.3530,), None, "FashionMNIST/raw/"),
    "cifar10": (
        "CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
        "random crop (4-pixel zero padding) + horizontal flip", "cifar-10-batches-py/",
    ),
}
KNOWN = ["digits", *TORCHVISION_SETS]
CROP_PADDING = 4  # pixels of zero padding before the random 32x32 crop (DARTS, NB201 training)

Split = tuple  # (x: float32 (N, C, H, W), y: int64 (N,))


@dataclasses.dataclass(frozen=True)
class TensorData:
    """Train / val / test splits held as `(x, y)` tensors on one device.

    `mean` and `std` are the per-channel constants x was normalised with: `x * std + mean` gives
    pixels in [0, 1] again (useful for showing images).
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: tuple
    std: tuple
    augment: str | None = None  # None, or what `batches(..., augment=True)` does

    @property
    def input_shape(self) -> tuple:
        return tuple(self.train[0].shape[1:])  # (C, H, W)

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]

    @property
    def image_size(self) -> tuple:
        return self.input_shape[1:]

    @property
    def device(self) -> torch.device:
        return self.train[0].device

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; choose 'train', 'val' or 'test'")
        return getattr(self, name)

    def to(self, device) -> "TensorData":
        """The same data on `device` ("auto" picks CUDA, then MPS, then CPU)."""
        device = pick_device(device)
        moved = {s: tuple(t.to(device) for t in self.split(s)) for s in ("train", "val", "test")}
        return dataclasses.replace(self, **moved)

    def batches(self, split: str, batch_size: int, shuffle: bool = False, generator=None,
                augment: bool = False, drop_last: bool = False):
        """Yield `(x, y)` batches of `split`, already on the data's device.

        generator: a `torch.Generator` (or int seed; None means seed 0) that draws the order and the
            augmentation. Pass the same generator every epoch to get a new order each epoch.
        augment: apply `self.augment` (random crop + flip for CIFAR-10) to training batches; data
            sets without augmentation ignore it.
        """
        x, y = self.split(split)
        if not isinstance(generator, torch.Generator):
            generator = torch.Generator().manual_seed(int(generator or 0))
        n = len(y)
        order = torch.randperm(n, generator=generator).to(x.device) if shuffle else None
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            if order is None:
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            else:
                idx = order[start:start + batch_size]
                xb, yb = x[idx], y[idx]
            if augment and self.augment is not None:
                xb = crop_and_flip(xb, self.pad_value(), generator)
            yield xb, yb

    def pad_value(self) -> torch.Tensor:
        """A black pixel after normalisation, (C, 1, 1): torchvision pads with 0 *before* Normalize."""
        mean, std = torch.tensor(self.mean), torch.tensor(self.std)
        return (-mean / std).view(-1, 1, 1).to(self.device)

    def subset(self, train_size: int | None = None, val_size: int | None = None, seed=0) -> "TensorData":
        """A smaller copy: the first `train_size` / `val_size` images of a seeded stratified order.

        The test split and the normalisation constants stay as they are.
        """
        rng = as_rng(seed)
        new = {}
        for split, size in (("train", train_size), ("val", val_size)):
            x, y = self.split(split)
            if size is None:
                continue
            if not 0 < size <= len(y):
                raise ValueError(f"{split}_size={size}, but the {split} split has {len(y)} images")
            keep = torch.as_tensor(stratified_order(y.cpu().numpy(), rng)[:size]).to(x.device)
            new[split] = (x[keep], y[keep])
        return dataclasses.replace(self, **new)

    def __repr__(self) -> str:
        sizes = " | ".join(f"{s} {len(self.split(s)[1])}" for s in ("train", "val", "test"))
        return (f"TensorData({self.name!r}: {sizes} images of shape {self.input_shape} (C, H, W), "
                f"{self.num_classes} classes, on {self.device}, augmentation: {self.augment or 'none'})")


def crop_and_flip(x: torch.Tensor, pad_value: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop after `CROP_PADDING` pixels of padding, then a random horizontal flip, per image.

    The standard CIFAR-10 augmentation (He et al., 2016; used by DARTS and NAS-Bench-201), done on
    the whole batch at once on its device; the random draws come from `generator` (on the CPU).
    """
    B, C, H, W = x.shape
    p = CROP_PADDING
    padded = pad_value.expand(B, C, H + 2 * p, W + 2 * p).clone()  # (B, C, H+2p, W+2p)
    padded[:, :, p:p + H, p:p + W] = x
    dy = torch.randint(0, 2 * p + 1, (B,), generator=generator).to(x.device)  # crop offsets
    dx = torch.randint(0, 2 * p + 1, (B,), generator=generator).to(x.device)
    flip = (torch.rand(B, generator=generator) < 0.5).to(x.device)
    rows = dy[:, None] + torch.arange(H, device=x.device)  # (B, H)
    cols = dx[:, None] + torch.arange(W, device=x.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # reading columns backwards = flipping
    b = torch.arange(B, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)


def stratified_order(y: np.ndarray, rng) -> np.ndarray:
    """All indices of `y` in a random order whose every prefix has about the class proportions of y.

    Each image gets a key (rank within its class + a per-class offset) / class size; sorting by
    the key interleaves the classes evenly, so any first-k slice is a stratified sample.
    """
    rng = as_rng(rng)
    key = np.empty(len(y))
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        key[members] = (np.arange(len(members)) + rng.random()) / len(members)
    return np.argsort(key, kind="stable")


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: images (1797, 8, 8) with values 0..16, and targets (1797,).

    Read straight from the file scikit-learn's wheel ships (datasets/data/digits.csv.gz), as
    `sklearn.datasets.load_digits` does, without importing `sklearn.datasets`: that import pulls in
    SciPy and most of scikit-learn, about 100 MB of memory and a second of time, which matters in a
    1 GB Binder session (benchmarks/notebook_memory.py). load_digits() is the fallback should the
    file ever move.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None:
        raise ModuleNotFoundError("the digits data set comes with scikit-learn: pip install scikit-learn")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    table = np.loadtxt(path, delimiter=",")  # numpy reads the .gz directly
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def load(name: str, root=None, download: bool = True, device="cpu", seed=0,
         train_size: int | None = None, val_size: int | None = None) -> TensorData:
    """Load a data set by name as a `TensorData`: "digits", "mnist", "fashion_mnist" or "cifar10".

    digits: scikit-learn's 1797 8x8 handwritten digits (no download). Its test split (400 images) is
        fixed; `seed` draws the validation split (397 by default) and training split (1000) from the rest.
    mnist / fashion_mnist / cifar10: torchvision's files under `root` (default `$NASNB_DATA` or
        ~/.cache/nasnb). The official test set is the test split; `val_size` (5000 by default)
        training images, drawn with `seed`, become the validation split.
    train_size: keep only this many training images (all that remain by default).
    """
    if name == "digits":
        images, target = digits_arrays()
        x = torch.tensor(images, dtype=torch.float32).div(16.0).unsqueeze(1)  # (1797, 1, 8, 8)
        y = torch.tensor(target, dtype=torch.int64)
        order = stratified_order(target, 0)  # seed 0 always: every run tests on the same 400
        test, pool = order[:400], order[400:]
        data = _pack("digits", (x[pool], y[pool]), (x[test], y[test]), 10, 397 if val_size is None else val_size,
                     train_size, seed, mean=None, std=None, augment=None)
    elif name in TORCHVISION_SETS:
        train_set, test_set = _torchvision(name, root, download)
        _, mean, std, augment, _ = TORCHVISION_SETS[name]
        data = _pack(name, train_set, test_set, 10, 5000 if val_size is None else val_size,
                     train_size, seed, mean, std, augment)
    else:
        raise ValueError(f"unknown data set {name!r}; known: {KNOWN} (or use from_tensors(x, y) for your own)")
    return data.to(device)


def _torchvision(name: str, root, download: bool) -> tuple:
    """(train, test) as (x in [0, 1] (N, C, H, W), y int64) from torchvision's arrays, no PIL loop."""
    import torchvision.datasets

    cls_name, *_, files = TORCHVISION_SETS[name]
    root = Path(root if root is not None else os.environ.get("NASNB_DATA", "~/.cache/nasnb")).expanduser()
    splits = []
    for train in (True, False):
        try:
            ds = getattr(torchvision.datasets, cls_name)(root, train=train, download=download)
        except (RuntimeError, OSError) as err:  # missing files, or no network to fetch them
            raise RuntimeError(
                f"could not load {name!r} from {root} ({'download failed' if download else 'download=False'}: "
                f"{err}). Without internet, copy the files torchvision downloads into {root / files} "
                f"(e.g. from a machine that ran torchvision.datasets.{cls_name}('{root}', download=True)), "
                f"or pass root= the folder that holds them, or set $NASNB_DATA."
            ) from err
        images = torch.as_tensor(np.asarray(ds.data))  # uint8 (N, H, W) or (N, H, W, C)
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)  # (N, C, H, W)
        splits.append((images.float().div_(255.0), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)))
    return splits[0], splits[1]


def from_tensors(x, y, num_classes: int | None = None, name: str = "custom", val_fraction: float = 0.2,
                 test_fraction: float = 0.2, seed=0, device="cpu") -> TensorData:
    """Your own images as a `TensorData`, split (stratified, seeded) and normalised per channel.

    x: (N, C, H, W) numbers (uint8 images are scaled to [0, 1] first); y: (N,) integer labels in
    [0, num_classes). Means and stds come from the training split only, so nothing leaks from the
    validation or test images.
    """
    x, y = (t.detach().cpu() if isinstance(t, torch.Tensor) else torch.as_tensor(np.asarray(t)) for t in (x, y))
    if x.ndim != 4:
        hint = " For gray images of shape (N, H, W) add a channel axis: x[:, None]." if x.ndim == 3 else ""
        raise ValueError(f"x must have shape (N, C, H, W); got {tuple(x.shape)}.{hint}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"y must have shape (N,) = ({len(x)},) to match x; got {tuple(y.shape)}")
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise ValueError(f"y must hold integer class labels; got {y.dtype} values like {y[:3].tolist()}")
    y = y.long()
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}); got min {int(y.min())}, max {int(y.max())}")
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    n_test, n_val = round(test_fraction * len(y)), round(val_fraction * len(y))
    if n_test < 1 or n_val < 1 or n_test + n_val >= len(y):
        raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} of {len(y)} images "
                         f"leave splits of {n_val} / {n_test} / {len(y) - n_val - n_test}; each needs at least one")
    rng = as_rng(seed)
    order = stratified_order(y.numpy(), rng)
    test, pool = order[:n_test], order[n_test:]
    return _pack(name, (x[pool], y[pool]), (x[test], y[test]), num_classes, n_val, None, rng,
                 mean=None, std=None, augment=None).to(device)


def _pack(name, pool, test, num_classes, val_size, train_size, seed, mean, std, augment) -> TensorData:
    """Carve val and train out of `pool` (x in [0, 1]) by a stratified order, then normalise all.

    mean / std None: use the per-channel statistics of the training split.
    """
    x, y = pool
    train_size = len(y) - val_size if train_size is None else train_size
    if val_size < 1 or train_size < 1 or val_size + train_size > len(y):
        raise ValueError(f"{name}: val_size={val_size} + train_size={train_size} must be positive and "
                         f"fit in the {len(y)} images outside the test split")
    order = torch.as_tensor(stratified_order(y.numpy(), seed))
    val, train = order[:val_size], order[val_size:val_size + train_size]
    if mean is None:
        xt = x[train].transpose(0, 1).flatten(1)  # (C, N*H*W)
        mean, std = tuple(xt.mean(1).tolist()), tuple(xt.std(1).tolist())
    m, s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)

    def norm(xs, ys):  # xs is ours to change: indexing made a copy (CIFAR-10's 50,000 images are 600 MB)
        return xs.sub_(m).div_(s).contiguous(), ys

    return TensorData(name, norm(x[train], y[train]), norm(x[val], y[val]), norm(*test),
                      num_classes, tuple(mean), tuple(std), augment)
