"""The generated shapes data set: determinism, balance, range, hand-counted drawings, distinct classes."""
import numpy as np
import pytest
import torch

import nasnb.data
from nasnb.data_shapes import CLASSES, block_counts, draw, shapes_arrays
from nasnb.errors import InvalidValueError


@pytest.fixture(scope="module")
def small():
    return shapes_arrays(seed=5, per_class=30)


def test_the_same_seed_gives_the_same_images_and_another_seed_others(small):
    images, labels = small
    again, again_labels = shapes_arrays(seed=5, per_class=30)
    other, _ = shapes_arrays(seed=6, per_class=30)
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)
    assert (images != other).any(axis=(1, 2)).mean() > 0.95  # nearly every image differs


def test_classes_are_balanced_and_values_are_block_counts(small):
    images, labels = small
    assert images.shape == (300, 8, 8) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [30] * 10
    assert images.min() >= 0 and images.max() <= 16 and np.array_equal(images, images.round())
    assert images.max(axis=(1, 2)).min() >= 4  # every image has ink


def test_a_horizontal_line_covers_the_pixels_counted_by_hand():
    # centre (16, 16), half-length 8, thickness 2: pixel centres within distance 1 of the segment
    # from (8, 16) to (24, 16): rows 15 and 16 (centres 15.5, 16.5), columns 8..23 on the segment
    # plus columns 7 and 24 (distance sqrt(0.5) from an end): 2 rows x 18 columns.
    canvas = draw(0, 16.0, 16.0, 8.0, 2.0, 0.0)
    assert canvas.sum() == 36
    rows, cols = np.nonzero(canvas)
    assert set(rows) == {15, 16} and cols.min() == 7 and cols.max() == 24
    assert np.array_equal(draw(1, 16.0, 16.0, 8.0, 2.0, 0.0), canvas.T)  # vertical: the transpose
    # the 4x4 blocks: rows 15, 16 fall in block row 3 (12..15) and 4 (16..19), one pixel row each
    counts = block_counts(canvas)
    assert counts.sum() == 36 and counts[3].sum() == 18 and counts[4].sum() == 18


def test_ring_and_disk_areas_match_their_formulas():
    ring = draw(7, 16.0, 16.0, 9.0, 3.0, 0.0).sum()  # annulus of radii 7.5 and 10.5
    disk = draw(9, 16.0, 16.0, 9.0, 3.0, 0.0).sum()  # radius 0.8 * 9 = 7.2
    assert abs(ring - np.pi * (10.5 ** 2 - 7.5 ** 2)) < 0.06 * np.pi * (10.5 ** 2 - 7.5 ** 2)
    assert abs(disk - np.pi * 7.2 ** 2) < 0.06 * np.pi * 7.2 ** 2


def test_horizontal_lines_spread_sideways_and_vertical_lines_up_and_down(small):
    images, labels = small
    ys, xs = np.mgrid[0:8, 0:8]

    def spreads(img):  # ink-weighted variance of the column and of the row
        w = img / img.sum()
        return (w * (xs - (w * xs).sum()) ** 2).sum(), (w * (ys - (w * ys).sum()) ** 2).sum()

    horizontal = [np.greater(*spreads(im)) for im in images[labels == 0]]
    vertical = [np.less(*spreads(im)) for im in images[labels == 1]]
    assert np.mean(horizontal) >= 0.9 and np.mean(vertical) >= 0.9


def test_the_classes_are_distinguishable_but_not_trivially():
    """A nearest-centroid classifier (an independent, simple rule) beats chance by far, and a
    classifier on the ink alone (the total) does not tell the classes apart."""
    train_x, train_y = shapes_arrays(seed=1, per_class=40)
    test_x, test_y = shapes_arrays(seed=2, per_class=20)
    centroids = np.stack([train_x[train_y == c].mean(0) for c in range(10)])
    guess = ((test_x[:, None] - centroids[None]) ** 2).sum(axis=(2, 3)).argmin(1)
    accuracy = (guess == test_y).mean()
    assert 0.3 < accuracy < 0.95, accuracy  # chance is 0.1; far from solved by templates
    assert len(CLASSES) == 10 and len({c for c in CLASSES}) == 10


def test_load_shapes_follows_the_digits_conventions():
    data = nasnb.data.load("shapes", seed=0, train_size=500)
    assert data.name == "shapes" and data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert [len(data.split(s)[1]) for s in ("train", "val", "test")] == [500, 397, 400]
    assert torch.bincount(data.test[1]).tolist() == [40] * 10  # stratified fixed test split
    x = data.train[0]
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-2  # normalised by its own stats
    # the same pixels as shapes_arrays(0) / 16 before normalisation
    images, _ = shapes_arrays(seed=0)
    raw = data.test[0] * data.std[0] + data.mean[0]
    generated = {im.astype(np.int64).tobytes() for im in images}
    counts = (raw[:, 0].numpy() * 16).round().astype(np.int64)
    assert np.abs(raw[:, 0].numpy() * 16 - counts).max() < 1e-3  # counts / 16, up to float error
    assert all(c.tobytes() in generated for c in counts)


def test_bad_per_class_is_refused_by_name():
    with pytest.raises(InvalidValueError, match="per_class"):
        shapes_arrays(seed=0, per_class=0)
