"""Tests for nasnb/data.py: splits, normalisation, batching, augmentation, torchvision loading."""
import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasnb import data as nd
from nasnb.errors import InvalidTypeError, InvalidValueError, NasnbError, UnknownNameError


@pytest.fixture(scope="module")
def digits():
    return nd.load("digits")


@pytest.fixture(scope="module")
def raw_digits():
    from sklearn.datasets import load_digits

    return load_digits()


def pixels(x, data):
    """Undo the normalisation: back to pixel values in [0, 1]."""
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    return x * std + mean


def image_set(x_uint8):
    return sorted(bytes(img) for img in np.asarray(x_uint8, dtype=np.uint8).reshape(len(x_uint8), -1))


# ----------------------------------------------------------------------------- digits


def test_digits_sizes_shapes_and_dtypes(digits):
    assert [len(digits.split(s)[1]) for s in ("train", "val", "test")] == [1000, 397, 400]
    for split in ("train", "val", "test"):
        x, y = digits.split(split)
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and tuple(x.shape[1:]) == (1, 8, 8)
    assert digits.num_classes == 10 and digits.input_shape == (1, 8, 8)
    assert digits.in_channels == 1 and digits.image_size == (8, 8) and digits.device == torch.device("cpu")
    assert digits.augment is None and digits.name == "digits"


def test_digits_splits_partition_the_sklearn_images(digits, raw_digits):
    xs = torch.cat([pixels(digits.split(s)[0], digits) for s in ("train", "val", "test")])
    ys = torch.cat([digits.split(s)[1] for s in ("train", "val", "test")])
    restored = (xs * 16).round().to(torch.uint8).view(-1, 64)  # back to the 0..16 values
    ours = sorted(bytes(img) + bytes([label]) for img, label in zip(restored.numpy(), ys.numpy()))
    theirs = sorted(bytes(img) + bytes([label]) for img, label in
                    zip(raw_digits.data.astype(np.uint8), raw_digits.target.astype(np.uint8)))
    assert ours == theirs  # every image exactly once, with its label


def test_digits_normalised_with_training_statistics(digits):
    x = digits.train[0]
    assert abs(x.mean().item()) < 1e-5 and abs(x.std().item() - 1) < 1e-4
    # mean/std are those of the training split in [0, 1] pixels, not of all 1797 images
    assert pixels(x, digits).mean().item() == pytest.approx(digits.mean[0], abs=1e-6)
    assert abs(digits.val[0].mean().item()) > 1e-4  # val was normalised with train's numbers


def test_digits_splits_are_stratified(digits, raw_digits):
    freq = np.bincount(raw_digits.target) / len(raw_digits.target)
    for split, size in (("train", 1000), ("val", 397), ("test", 400)):
        counts = np.bincount(digits.split(split)[1].numpy(), minlength=10)
        assert np.all(np.abs(counts - size * freq) <= 2), (split, counts, size * freq)


def test_digits_test_split_is_fixed_and_seed_draws_train_val(digits):
    other, again = nd.load("digits", seed=1), nd.load("digits", seed=0)
    # same test images (normalised with each run's own training statistics)
    assert torch.equal(other.test[1], digits.test[1])
    assert torch.allclose(pixels(other.test[0], other), pixels(digits.test[0], digits), atol=1e-6)
    assert not torch.equal(other.val[1], digits.val[1])
    assert torch.equal(again.train[0], digits.train[0]) and torch.equal(again.val[1], digits.val[1])


def test_load_train_size_and_val_size():
    small = nd.load("digits", train_size=300, val_size=100)
    assert (len(small.train[1]), len(small.val[1]), len(small.test[1])) == (300, 100, 400)
    with pytest.raises(ValueError, match="1397 images"):
        nd.load("digits", train_size=1200, val_size=397)


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownNameError, match=r"'cifar100'.*digits.*mnist.*fashion_mnist.*cifar10"):
        nd.load("cifar100")


def test_repr_names_sizes_shape_and_device(digits):
    text = repr(digits)
    for part in ("digits", "train 1000", "val 397", "test 400", "(1, 8, 8)", "cpu", "10 classes"):
        assert part in text


def test_to_auto_keeps_the_values(digits):
    moved = digits.to("auto")
    assert torch.equal(moved.train[0].cpu(), digits.train[0]) and moved.name == "digits"


# ----------------------------------------------------------------------------- batches and subsets


def test_batches_visit_every_image_once_per_epoch(digits):
    g = torch.Generator().manual_seed(0)
    batches = list(digits.batches("train", 64, shuffle=True, generator=g))
    assert [len(y) for _, y in batches] == [64] * 15 + [40]
    x = torch.cat([b[0] for b in batches])
    assert sorted(map(bytes, x.numpy())) == sorted(map(bytes, digits.train[0].numpy()))
    assert not torch.equal(x, digits.train[0])  # shuffled
    plain = torch.cat([b[0] for b in digits.batches("train", 64)])
    assert torch.equal(plain, digits.train[0])  # no shuffle: the stored order
    assert [len(y) for _, y in digits.batches("train", 64, drop_last=True)] == [64] * 15


def test_shuffle_is_seeded_by_the_generator(digits):
    def order(generator):
        return torch.cat([y for _, y in digits.batches("val", 50, shuffle=True, generator=generator)])

    assert torch.equal(order(torch.Generator().manual_seed(3)), order(torch.Generator().manual_seed(3)))
    assert not torch.equal(order(torch.Generator().manual_seed(3)), order(torch.Generator().manual_seed(4)))
    g = torch.Generator().manual_seed(3)
    assert not torch.equal(order(g), order(g))  # one generator across epochs: a new order each epoch


def test_subset_is_seeded_stratified_and_drawn_from_the_split(digits):
    sub = digits.subset(train_size=300, val_size=100, seed=5)
    assert (len(sub.train[1]), len(sub.val[1])) == (300, 100) and torch.equal(sub.test[0], digits.test[0])
    originals = set(map(bytes, digits.train[0].numpy()))
    assert all(bytes(img) in originals for img in sub.train[0].numpy())
    full = np.bincount(digits.train[1].numpy(), minlength=10) / 1000
    assert np.all(np.abs(np.bincount(sub.train[1].numpy(), minlength=10) - 300 * full) <= 2)
    assert torch.equal(digits.subset(train_size=300, seed=5).train[0], sub.train[0])
    assert not torch.equal(digits.subset(train_size=300, seed=6).train[0], sub.train[0])
    with pytest.raises(ValueError, match="train split has 1000"):
        digits.subset(train_size=2000)


def test_unknown_split_is_named(digits):
    with pytest.raises(UnknownNameError, match=r"split='valid'.*\['train', 'val', 'test'\]"):
        digits.batches("valid", 10)  # at the call, not at the first batch


# ----------------------------------------------------------------------------- torchvision, faked


def fake_dataset(kind, sizes=(60, 30)):
    """A stand-in for a torchvision class, with .data / .targets in that class's real formats."""

    class Fake:
        calls = []

        def __init__(self, root, train=True, download=False):
            Fake.calls.append((root, train, download))
            rng = np.random.default_rng(1 if train else 2)
            n = sizes[0] if train else sizes[1]
            if kind == "cifar":  # CIFAR10: uint8 numpy (N, 32, 32, 3) and a list of ints
                self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
                self.targets = [int(t) for t in rng.integers(0, 10, n)]
            else:  # MNIST, FashionMNIST: uint8 tensor (N, 28, 28) and an int64 tensor
                self.data = torch.as_tensor(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
                self.targets = torch.as_tensor(rng.integers(0, 10, n))

    return Fake


@pytest.fixture
def torchvision(monkeypatch):
    tv = pytest.importorskip("torchvision")
    for cls_name, kind in (("CIFAR10", "cifar"), ("MNIST", "mnist"), ("FashionMNIST", "mnist")):
        monkeypatch.setattr(tv.datasets, cls_name, fake_dataset(kind))
    return tv


def test_cifar10_is_converted_normalised_and_split(torchvision, tmp_path):
    data = nd.load("cifar10", root=tmp_path, val_size=20)
    fake_train, fake_test = torchvision.datasets.CIFAR10(tmp_path), torchvision.datasets.CIFAR10(tmp_path, train=False)
    assert (len(data.train[1]), len(data.val[1]), len(data.test[1])) == (40, 20, 30)
    assert data.input_shape == (3, 32, 32) and data.augment is not None and data.num_classes == 10
    assert data.mean == (0.4914, 0.4822, 0.4465) and data.std == (0.2470, 0.2435, 0.2616)
    # un-normalised, channels last again, the pixels are the fake's uint8 images
    expected_test = torch.as_tensor(fake_test.data).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(pixels(data.test[0], data), expected_test, atol=1e-6)
    assert data.test[1].tolist() == fake_test.targets
    train_val = torch.cat([pixels(data.train[0], data), pixels(data.val[0], data)])
    restored = (train_val * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    assert image_set(restored) == image_set(fake_train.data)
    assert (tmp_path, True, True) in torchvision.datasets.CIFAR10.calls


@pytest.mark.parametrize("name, mean, std", [("mnist", 0.1307, 0.3081), ("fashion_mnist", 0.2860, 0.3530)])
def test_mnist_likes_use_their_constants_and_no_augmentation(torchvision, tmp_path, name, mean, std):
    data = nd.load(name, root=tmp_path, val_size=10, train_size=30, download=False)
    assert (len(data.train[1]), len(data.val[1]), len(data.test[1])) == (30, 10, 30)
    assert data.input_shape == (1, 28, 28) and data.augment is None
    cls = torchvision.datasets.MNIST if name == "mnist" else torchvision.datasets.FashionMNIST
    raw = cls(tmp_path, train=False).data.float() / 255
    assert torch.allclose(data.test[0][:, 0] * std + mean, raw, atol=1e-6)
    assert (tmp_path, False, False) in cls.calls


def test_root_defaults_to_nasnb_data_env(torchvision, tmp_path, monkeypatch):
    monkeypatch.setenv("NASNB_DATA", str(tmp_path / "here"))
    nd.load("mnist", val_size=10)
    assert torchvision.datasets.MNIST.calls[-1][0] == tmp_path / "here"


def test_download_failure_says_what_and_where(monkeypatch, tmp_path):
    tv = pytest.importorskip("torchvision")

    class Offline:
        def __init__(self, root, train=True, download=False):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(tv.datasets, "FashionMNIST", Offline)
    with pytest.raises(RuntimeError) as info:
        nd.load("fashion_mnist", root=tmp_path)
    message = str(info.value)
    assert "fashion_mnist" in message and str(tmp_path) in message and "FashionMNIST/raw" in message


# ----------------------------------------------------------------------------- augmentation


def test_crop_and_flip_gives_a_window_of_the_zero_padded_image(torchvision, tmp_path):
    data = nd.load("cifar10", root=tmp_path, val_size=20)
    x = data.train[0]
    g = torch.Generator().manual_seed(0)
    padded = F.pad(pixels(x, data), (4, 4, 4, 4))  # black (0) border in pixel space, as torchvision pads
    windows = padded.unfold(2, 32, 1).unfold(3, 32, 1)  # (N, C, 9, 9, 32, 32): every possible crop
    seen = []
    for _ in range(3):  # 3 epochs x 40 images: many offsets and both flip states
        augmented = pixels(torch.cat([b[0] for b in data.batches("train", 16, generator=g, augment=True)]), data)
        for i in range(len(x)):
            matches = []
            for flip in (False, True):
                out = augmented[i].flip(2) if flip else augmented[i]  # (C, 32, 32)
                error = (windows[i] - out[:, None, None]).abs().amax(dim=(0, 3, 4))  # (9, 9)
                matches += [(dy, dx, flip) for dy, dx in (error < 1e-5).nonzero().tolist()]
            assert len(matches) == 1, (i, matches)  # exactly one crop (and flip) of its own image
            seen += matches
    assert len({m[:2] for m in seen}) > 30 and {m[2] for m in seen} == {False, True}


def test_augmentation_is_seeded_and_ignored_without_augmentation(torchvision, tmp_path, digits):
    data = nd.load("cifar10", root=tmp_path, val_size=20)

    def epoch(seed):
        return torch.cat([b[0] for b in data.batches("train", 16, generator=seed, augment=True)])

    assert torch.equal(epoch(1), epoch(1)) and not torch.equal(epoch(1), epoch(2))
    assert torch.equal(next(digits.batches("train", 8, augment=True))[0], digits.train[0][:8])


# ----------------------------------------------------------------------------- from_tensors


def test_from_tensors_splits_and_normalises_per_channel():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(100, 3, 5, 5, generator=gen) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    y = torch.arange(100) % 4
    data = nd.from_tensors(x, y, val_fraction=0.2, test_fraction=0.2, name="mine")
    assert (len(data.train[1]), len(data.val[1]), len(data.test[1])) == (60, 20, 20)
    assert data.num_classes == 4 and data.input_shape == (3, 5, 5) and data.name == "mine"
    per_channel = data.train[0].transpose(0, 1).flatten(1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.std(1), torch.ones(3), atol=1e-4)
    assert all(np.bincount(data.split(s)[1].numpy()).tolist() == [n // 4] * 4
               for s, n in (("train", 60), ("val", 20), ("test", 20)))
    restored = torch.cat([pixels(data.split(s)[0], data) for s in ("train", "val", "test")])
    assert sorted(restored.sum((1, 2, 3)).round(decimals=3).tolist()) == \
        sorted(x.sum((1, 2, 3)).round(decimals=3).tolist())


def test_from_tensors_scales_uint8_images():
    x = np.full((20, 1, 4, 4), 255, dtype=np.uint8)
    x[::2] = 0
    data = nd.from_tensors(x, np.arange(20) % 2)
    assert 0.4 < data.mean[0] < 0.6  # half black, half white, in [0, 1] pixels


@pytest.mark.parametrize("x, y, match", [
    (torch.zeros(10, 8, 8), torch.zeros(10), r"\(N, C, H, W\).*x\[:, None\]"),
    (torch.zeros(10, 1, 8, 8), torch.zeros(9), r"\(10,\)"),
    (torch.zeros(10, 1, 8, 8), torch.full((10,), 0.5), "integer class labels"),
    (torch.zeros(10, 1, 8, 8), -torch.ones(10, dtype=torch.long), r"\[0, "),
])
def test_from_tensors_rejects_bad_inputs(x, y, match):
    with pytest.raises(ValueError, match=match):
        nd.from_tensors(x, y)


def test_from_tensors_rejects_labels_beyond_num_classes():
    with pytest.raises(ValueError, match=r"\[0, 3\).*max 4"):
        nd.from_tensors(torch.zeros(10, 1, 2, 2), torch.arange(10) % 5, num_classes=3)


def test_tensor_data_is_immutable(digits):
    with pytest.raises(dataclasses.FrozenInstanceError):
        digits.name = "other"


def test_digits_are_read_exactly_as_sklearn_loads_them_without_importing_sklearn_datasets(raw_digits):
    images, target = nd.digits_arrays()
    assert np.array_equal(images, raw_digits.images) and np.array_equal(target, raw_digits.target)
    assert images.dtype == raw_digits.images.dtype and target.dtype == np.int64
    code = ("import sys, nasnb.data; nasnb.data.load('digits');"
            "print('sklearn.datasets' in sys.modules, 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"], "loading digits imported sklearn.datasets / scipy (~100 MB)"


# ----------------------------------------------------------------------------- data that would train on NaN


def random_images(n=20, channels=1, seed=0):
    return torch.rand(n, channels, 3, 3, generator=torch.Generator().manual_seed(seed))


def test_a_constant_channel_is_refused_by_name():
    x = random_images(channels=3)
    x[:, 1] = 0.5  # channel 1 is the same gray everywhere: its std, the normaliser, is 0
    with pytest.raises(InvalidValueError, match=r"channel 1 of the 12 training images is constant \(std 0.0\)"):
        nd.from_tensors(x, torch.arange(20) % 2)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_pixels_are_refused_with_the_first_bad_image(value):
    x = random_images()
    x[7, 0, 2, 2] = value
    x[11, 0, 0, 0] = value
    with pytest.raises(InvalidValueError, match=r"x hold NaN or infinite values in 2 of 20 images \(the first is image 7\)"):
        nd.from_tensors(x, torch.arange(20) % 2)


def test_non_finite_pixels_of_a_loaded_data_set_are_refused(monkeypatch):
    images, target = nd.digits_arrays()
    images = images.copy()
    images[0, 3, 3] = np.nan
    monkeypatch.setattr(nd, "digits_arrays", lambda: (images, target))
    with pytest.raises(InvalidValueError, match=r"digits: the .*NaN or infinite values in 1 of"):
        nd.load("digits")


@pytest.mark.parametrize("x, y, match", [
    (torch.zeros(0, 1, 3, 3), torch.zeros(0, dtype=torch.long), "no pixels"),
    (random_images(), torch.zeros(20, dtype=torch.long), r"single class \(0\)"),
    (random_images(), torch.full((20,), 3), r"single class \(3\)"),
    (random_images(), torch.full((20,), math.nan), "integer class labels"),
    (["a", "b"], [0, 1], "x must be a tensor or an array of numbers"),
    (random_images(), torch.arange(20) % 2 * 1j, "complex"),
])
def test_from_tensors_refuses_data_it_cannot_learn_from(x, y, match):
    with pytest.raises(NasnbError, match=match):
        nd.from_tensors(x, y)


@pytest.mark.parametrize("kwargs, error, name", [
    ({"val_fraction": 0.0}, InvalidValueError, "val_fraction"),
    ({"val_fraction": 1.2}, InvalidValueError, "val_fraction"),
    ({"test_fraction": math.nan}, InvalidValueError, "test_fraction"),
    ({"test_fraction": "0.2"}, InvalidTypeError, "test_fraction"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, InvalidValueError, "val_fraction=0.5 and test_fraction=0.5"),
    ({"num_classes": 1}, InvalidValueError, "num_classes"),
    ({"num_classes": 2.0}, InvalidTypeError, "num_classes"),
    ({"seed": -1}, InvalidValueError, "seed"),
    ({"seed": 0.5}, InvalidTypeError, "seed"),
    ({"name": ""}, InvalidTypeError, "name"),
    ({"device": "gpu"}, InvalidValueError, "device"),
])
def test_from_tensors_names_a_bad_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        nd.from_tensors(random_images(), torch.arange(20) % 2, **kwargs)


@pytest.mark.parametrize("kwargs, error, name", [
    ({"name": 10}, UnknownNameError, "name"),
    ({"train_size": 0}, InvalidValueError, "train_size"),
    ({"train_size": 300.0}, InvalidTypeError, "train_size"),
    ({"val_size": True}, InvalidTypeError, "val_size"),
    ({"val_size": -5}, InvalidValueError, "val_size"),
    ({"seed": -1}, InvalidValueError, "seed"),
    ({"seed": "0"}, InvalidTypeError, "seed"),
    ({"download": "no"}, InvalidTypeError, "download"),
    ({"root": 3}, InvalidTypeError, "root"),
    ({"device": "cuda:99"}, InvalidValueError, "device"),
])
def test_load_names_a_bad_argument(kwargs, error, name):
    kwargs = {"name": "digits", **kwargs}
    with pytest.raises(error, match=name):
        nd.load(**kwargs)


@pytest.mark.parametrize("kwargs, error, name", [
    ({"train_size": 0}, InvalidValueError, "train_size"),
    ({"train_size": 2.5}, InvalidTypeError, "train_size"),
    ({"val_size": False}, InvalidTypeError, "val_size"),
    ({"val_size": 10**9}, InvalidValueError, "val_size=1000000000, but the val split has 397"),
    ({"seed": -3}, InvalidValueError, "seed"),
])
def test_subset_names_a_bad_argument(digits, kwargs, error, name):
    with pytest.raises(error, match=name):
        digits.subset(**kwargs)


@pytest.mark.parametrize("kwargs, name", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 1.5}, "batch_size"), ({"shuffle": 1}, "shuffle"),
    ({"augment": "yes"}, "augment"), ({"drop_last": None}, "drop_last"), ({"generator": -1}, "generator"),
])
def test_batches_checks_its_arguments_at_the_call(digits, kwargs, name):
    with pytest.raises(NasnbError, match=name):
        digits.batches("train", **{"batch_size": 8, **kwargs})  # no next(): the call itself fails


def test_tensor_data_refuses_empty_or_mismatched_splits(digits):
    with pytest.raises(InvalidValueError, match="the val split is empty"):
        dataclasses.replace(digits, val=(digits.val[0][:0], digits.val[1][:0]))
    with pytest.raises(InvalidValueError, match=r"train labels must be int64 of shape \(1000,\)"):
        dataclasses.replace(digits, train=(digits.train[0], digits.train[1][:10]))
    with pytest.raises(InvalidValueError, match="num_classes"):
        dataclasses.replace(digits, num_classes=1)


# ----------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_equal_for_equal_data_and_differs_for_other_data(digits):
    again = nd.load("digits")
    assert digits.fingerprint() == again.fingerprint() == digits.to("auto").fingerprint()
    assert len(digits.fingerprint()) == 16 and int(digits.fingerprint(), 16) >= 0
    others = [
        nd.load("digits", seed=1),  # other images in train and val
        digits.subset(train_size=999),  # one image fewer
        digits.subset(train_size=1000),  # the same images in another order
        dataclasses.replace(digits, name="other"),
    ]
    y = digits.train[1].clone()
    y[0] = (y[0] + 1) % 10  # one label changed
    others.append(dataclasses.replace(digits, train=(digits.train[0], y)))
    x = digits.test[0].clone()
    x[5, 0, 4, 4] += 1.0  # one centre pixel changed
    others.append(dataclasses.replace(digits, test=(x, digits.test[1])))
    prints = [data.fingerprint() for data in others]
    assert digits.fingerprint() not in prints and len(set(prints)) == len(prints)
