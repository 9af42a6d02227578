"""Image classification data as plain tensors: small enough to live on the device, fast to batch.

A NAS run trains hundreds of small networks for a few epochs each. At that scale a `DataLoader`
with worker processes spends more time starting workers and collating PIL images than the network
spends learning, so every data set here is converted *once* into normalised float tensors, and a
batch is an index into them (benchmarks/README.md, "Facts the code relies on").

    data = load("digits")              # bundled with scikit-learn: no download
    data = load("cifar10").to("auto")  # torchvision files, moved to the GPU if there is one
    for x, y in data.batches("train", 64, shuffle=True, generator=g, augment=True): ...

Every split is stratified and seeded: the same seed gives the same images in every split. Data
that would train on NaN is refused when it is made: non-finite pixels, a constant channel (its
standard deviation, the normaliser, is 0), an empty split, a single class.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from nasnb.checks import check_bool, check_float, check_int, check_positive_int, check_str, short
from nasnb.errors import InvalidTypeError, InvalidValueError, UnknownNameError
from nasnb.spaces.base import as_rng
from nasnb.train import MAX_SEED, SPLITS, check_name, pick_device

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
KNOWN = ["digits", "shapes", *TORCHVISION_SETS, "seq-count", "seq-lookup"]  # seq-: nasnb/data_sequences.py
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

    def __post_init__(self):  # shapes and types only: no pass over the pixels, so .to() stays cheap
        check_str("name", self.name, example="digits")
        for split in SPLITS:
            check_split(split, getattr(self, split))
        shapes = {tuple(getattr(self, s)[0].shape[1:]) for s in SPLITS}
        if len(shapes) != 1:
            raise InvalidValueError(f"the splits' images differ in shape (C, H, W): {sorted(shapes)}")
        check_int("num_classes", self.num_classes, minimum=2, example=10)
        channels = self.train[0].shape[1]
        for stat in ("mean", "std"):
            values = getattr(self, stat)
            if not isinstance(values, tuple) or len(values) != channels:
                raise InvalidValueError(f"{stat} must be a tuple of one number per channel ({channels}), "
                                        f"got {short(values)}")
        if self.augment is not None:
            check_str("augment", self.augment, example="random crop (4-pixel zero padding) + horizontal flip")

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
        """The (x, y) of "train", "val" or "test"."""
        return getattr(self, check_name("split", name, SPLITS))

    def to(self, device) -> "TensorData":
        """The same data on `device` ("auto" picks CUDA, then MPS, then CPU)."""
        device = pick_device(device)
        moved = {s: tuple(t.to(device) for t in self.split(s)) for s in ("train", "val", "test")}
        return dataclasses.replace(self, **moved)

    def batches(self, split: str, batch_size: int, shuffle: bool = False, generator=None,
                augment: bool = False, drop_last: bool = False):
        """An iterator of `(x, y)` batches of `split`, already on the data's device.

        generator: a `torch.Generator` (or int seed; None means seed 0) that draws the order and the
            augmentation. Pass the same generator every epoch to get a new order each epoch.
        augment: apply `self.augment` (random crop + flip for CIFAR-10) to training batches; data
            sets without augmentation ignore it.
        """
        x, y = self.split(split)  # the checks run now, not at the first next()
        batch_size = check_positive_int("batch_size", batch_size, example=64)
        shuffle, augment, drop_last = (check_bool(n, v) for n, v in
                                       (("shuffle", shuffle), ("augment", augment), ("drop_last", drop_last)))
        if not isinstance(generator, torch.Generator):
            seed = 0 if generator is None else check_int("generator", generator, minimum=0, maximum=MAX_SEED)
            generator = torch.Generator().manual_seed(seed)
        return self._batches(x, y, batch_size, shuffle, generator, augment, drop_last)

    def _batches(self, x, y, batch_size, shuffle, generator, augment, drop_last):
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
        sizes = {"train": check_size("train_size", train_size), "val": check_size("val_size", val_size)}
        rng = as_rng(seed, "seed")
        new = {}
        for split, size in sizes.items():
            x, y = self.split(split)
            if size is None:
                continue
            if size > len(y):
                raise InvalidValueError(f"{split}_size={size}, but the {split} split has {len(y)} images; "
                                        f"e.g. {split}_size={len(y) // 2 or 1}")
            keep = torch.as_tensor(stratified_order(y.cpu().numpy(), rng)[:size]).to(x.device)
            new[split] = (x[keep], y[keep])
        return dataclasses.replace(self, **new)

    def fingerprint(self) -> str:
        """A short hash of the contents, equal for the same images and labels in the same order on any
        device: every label, the centre pixel of every image and 1024 evenly spaced pixel values.

        Cheap (no pass over all pixels), so a change of a few pixels away from the centre can go
        unseen; a different data set, split, subset or seed cannot. Values are copied, not summed,
        so a GPU and a CPU copy of the data give the same hash.
        """
        digest = hashlib.sha256(repr((self.name, self.num_classes, self.mean, self.std, self.augment)).encode())
        for split in SPLITS:
            x, y = self.split(split)
            _, _, H, W = x.shape
            flat = x.reshape(-1)
            spaced = torch.linspace(0, len(flat) - 1, 1024, device=x.device).long()
            for part in (y, x[:, :, H // 2, W // 2], flat[spaced]):
                digest.update(str(tuple(part.shape)).encode())
                digest.update(part.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def __repr__(self) -> str:
        sizes = " | ".join(f"{s} {len(self.split(s)[1])}" for s in ("train", "val", "test"))
        return (f"TensorData({self.name!r}: {sizes} images of shape {self.input_shape} (C, H, W), "
                f"{self.num_classes} classes, on {self.device}, augmentation: {self.augment or 'none'})")


def check_split(split: str, pair) -> None:
    """A split is a pair (x: float (N, C, H, W), y: int64 (N,)) with N >= 1."""
    if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(t, torch.Tensor) for t in pair)):
        raise InvalidTypeError(f"{split} must be a pair of tensors (x, y), got {short(pair)}")
    x, y = pair
    if x.ndim != 4 or not x.is_floating_point():
        raise InvalidValueError(f"{split} images must be float tensors of shape (N, C, H, W), "
                                f"got {x.dtype} of shape {tuple(x.shape)}")
    if y.ndim != 1 or y.dtype != torch.int64 or len(y) != len(x):
        raise InvalidValueError(f"{split} labels must be int64 of shape ({len(x)},), "
                                f"got {y.dtype} of shape {tuple(y.shape)}")
    if len(y) == 0:
        raise InvalidValueError(f"the {split} split is empty; every split needs at least one image")


def check_size(name: str, size) -> int | None:
    """A split size: None (keep all) or a positive int."""
    return None if size is None else check_positive_int(name, size, example=300)




def check_finite_images(what: str, x: torch.Tensor) -> None:
    """NaN or infinite pixels would make every loss NaN: name how many and the first image."""
    bad = ~torch.isfinite(x.flatten(1)).all(1)  # (N,) True for an image with a non-finite pixel
    if bool(bad.any()):
        first = int(bad.nonzero()[0])
        raise InvalidValueError(f"{what} hold NaN or infinite values in {int(bad.sum())} of {len(x)} images "
                                f"(the first is image {first}); replace them, e.g. x = torch.nan_to_num(x)")


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


def _shapes_arrays():
    from nasnb.data_shapes import shapes_arrays

    return shapes_arrays(seed=0)  # seed 0 always: "shapes" is one fixed set of images, as digits is


def load(name: str, root=None, download: bool = True, device="cpu", seed=0,
         train_size: int | None = None, val_size: int | None = None) -> TensorData:
    """Load a data set by name as a `TensorData`: "digits", "mnist", "fashion_mnist" or "cifar10".

    digits: scikit-learn's 1797 8x8 handwritten digits (no download). Its test split (400 images) is
        fixed; `seed` draws the validation split (397 by default) and training split (1000) from the rest.
    shapes: 1800 generated 8x8 images of ten geometric shapes (nasnb/data_shapes.py), split as digits.
    seq-count / seq-lookup: generated token sequences for TransformerSpace (nasnb/data_sequences.py).
    mnist / fashion_mnist / cifar10: torchvision's files under `root` (default `$NASNB_DATA` or
        ~/.cache/nasnb). The official test set is the test split; `val_size` (5000 by default)
        training images, drawn with `seed`, become the validation split.
    train_size: keep only this many training images (all that remain by default).
    """
    if not isinstance(name, str) or name not in KNOWN:
        raise UnknownNameError(f"unknown data set name={short(name)}; choose from {KNOWN} "
                               "(or use from_tensors(x, y) for your own), e.g. name='digits'")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise InvalidTypeError(f"root must be a folder path (or None), got {short(root)}; e.g. root='~/data'")
    download = check_bool("download", download)
    pick_device(device)  # a bad device fails before anything is read
    rng = as_rng(seed, "seed")
    train_size, val_size = check_size("train_size", train_size), check_size("val_size", val_size)
    if name.startswith("seq-"):  # token sequences generated for TransformerSpace (nasnb/data_sequences.py)
        from nasnb.data_sequences import load_sequences

        return load_sequences(name[4:], seed=rng, train_size=train_size, val_size=val_size, device=device)
    if name in ("digits", "shapes"):  # shapes: nasnb/data_shapes.py, 1,800 8x8 images made like digits
        images, target = digits_arrays() if name == "digits" else _shapes_arrays()
        x = torch.tensor(images, dtype=torch.float32).div(16.0).unsqueeze(1)  # (1797, 1, 8, 8)
        y = torch.tensor(target, dtype=torch.int64)
        order = stratified_order(target, 0)  # seed 0 always: every run tests on the same 400
        test, pool = order[:400], order[400:]
        data = _pack(name, (x[pool], y[pool]), (x[test], y[test]), 10, 397 if val_size is None else val_size,
                     train_size, rng, mean=None, std=None, augment=None)
    else:
        train_set, test_set = _torchvision(name, root, download)
        _, mean, std, augment, _ = TORCHVISION_SETS[name]
        data = _pack(name, train_set, test_set, 10, 5000 if val_size is None else val_size,
                     train_size, rng, mean, std, augment)
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
    [0, num_classes), at least two classes. Means and stds come from the training split only, so
    nothing leaks from the validation or test images.
    """
    x, y = as_tensor("x", x), as_tensor("y", y)
    if x.ndim != 4:
        hint = " For gray images of shape (N, H, W) add a channel axis: x[:, None]." if x.ndim == 3 else ""
        raise InvalidValueError(f"x must have shape (N, C, H, W); got {tuple(x.shape)}.{hint}")
    if len(x) == 0 or x[0].numel() == 0:
        raise InvalidValueError(f"x holds no pixels (shape {tuple(x.shape)}); give at least a few images")
    if x.is_complex() or y.is_complex():
        raise InvalidTypeError("x and y must hold real numbers, not complex ones")
    if y.ndim != 1 or len(y) != len(x):
        raise InvalidValueError(f"y must have shape (N,) = ({len(x)},) to match x; got {tuple(y.shape)}")
    if y.is_floating_point() and not torch.equal(y, y.round()):  # NaN != NaN, so NaN labels land here too
        raise InvalidValueError(f"y must hold integer class labels; got {y.dtype} values like {y[:3].tolist()}")
    y = y.long()
    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, minimum=2, example=10)
    low, high = int(y.min()), int(y.max())  # Python ints: a tensor compared with 2**63 would overflow
    num_classes = high + 1 if num_classes is None else num_classes
    if low < 0 or high >= num_classes:
        raise InvalidValueError(f"labels must lie in [0, {num_classes}); got min {low}, max {high}")
    if len(y.unique()) < 2:
        raise InvalidValueError(f"y holds a single class ({int(y[0])}); a classifier needs at least two")
    name = check_str("name", name, example="custom")
    val_fraction = check_float("val_fraction", val_fraction, minimum=0.0, maximum=1.0, exclusive_minimum=True,
                               example=0.2)
    test_fraction = check_float("test_fraction", test_fraction, minimum=0.0, maximum=1.0,
                                exclusive_minimum=True, example=0.2)
    rng = as_rng(seed, "seed")
    pick_device(device)
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    check_finite_images("x", x)
    n_test, n_val = round(test_fraction * len(y)), round(val_fraction * len(y))
    if n_test < 1 or n_val < 1 or n_test + n_val >= len(y):
        raise InvalidValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} of {len(y)} images "
                                f"leave splits of {n_val} / {n_test} / {len(y) - n_val - n_test}; each needs at "
                                "least one (e.g. val_fraction=0.2, test_fraction=0.2 of at least 5 images)")
    order = stratified_order(y.numpy(), rng)
    test, pool = order[:n_test], order[n_test:]
    return _pack(name, (x[pool], y[pool]), (x[test], y[test]), num_classes, n_val, None, rng,
                 mean=None, std=None, augment=None).to(device)


def as_tensor(name: str, values) -> torch.Tensor:
    """A CPU tensor from a tensor, a numpy array or nested lists of numbers."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu()
    try:
        array = np.asarray(values)
        if array.dtype == object or array.dtype.kind in "USV":  # strings, ragged lists, arbitrary objects
            raise TypeError(array.dtype)
        return torch.as_tensor(array)
    except (TypeError, ValueError, RuntimeError) as err:
        example = "torch.rand(100, 1, 8, 8)" if name == "x" else "torch.arange(100) % 10"
        raise InvalidTypeError(f"{name} must be a tensor or an array of numbers, got {short(values)}; "
                               f"e.g. {name}={example}") from err


def _pack(name, pool, test, num_classes, val_size, train_size, seed, mean, std, augment) -> TensorData:
    """Carve val and train out of `pool` (x in [0, 1]) by a stratified order, then normalise all.

    mean / std None: use the per-channel statistics of the training split.
    """
    x, y = pool
    for what, images in (("images outside the test split", x), ("test images", test[0])):
        check_finite_images(f"{name}: the {what}", images)
    train_size = len(y) - val_size if train_size is None else train_size
    if val_size < 1 or train_size < 1 or val_size + train_size > len(y):
        raise InvalidValueError(f"{name}: val_size={val_size} + train_size={train_size} must be positive and "
                                f"fit in the {len(y)} images outside the test split")
    order = torch.as_tensor(stratified_order(y.numpy(), seed))
    val, train = order[:val_size], order[val_size:val_size + train_size]
    if mean is None:
        xt = x[train].transpose(0, 1).flatten(1)  # (C, N*H*W)
        mean, std = tuple(xt.mean(1).tolist()), tuple(xt.std(1).tolist())
        check_spread(name, std, len(train))
    m, s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)

    def norm(split, xs, ys):  # xs is ours to change: indexing made a copy (CIFAR-10's 50,000 images are 600 MB)
        xs = xs.sub_(m).div_(s).contiguous()
        if not bool(torch.isfinite(xs).all()):  # a tiny std (or huge pixels) overflows float32
            raise InvalidValueError(f"{name}: normalising the {split} images by the training split's per-channel "
                                    f"mean {short(mean)} and std {short(std)} overflows float32; rescale the "
                                    "pixels, e.g. to [0, 1]")
        return xs, ys

    return TensorData(name, norm("train", x[train], y[train]), norm("val", x[val], y[val]), norm("test", *test),
                      num_classes, tuple(mean), tuple(std), augment)


def check_spread(name: str, std: tuple, n_train: int) -> None:
    """Normalising divides by each channel's std: a constant channel (std 0) would make it NaN."""
    for channel, s in enumerate(std):
        if not s > 0:  # also catches NaN: the std of a single pixel, or of values that overflow
            raise InvalidValueError(
                f"{name}: channel {channel} of the {n_train} training images is constant (std {s}), so "
                "normalising it would divide by zero; give images whose pixels vary, or drop that channel")
