"""A second small image task that needs no download: 8x8 pictures of ten kinds of shape.

Why this set. Meta-learning a good start (warm-starting a search on one task from what was learned
on another) needs a *second* task that is genuinely different from digits, yet of the same format,
so that the same networks, the same training protocol and the same budgets apply to both:

* same format as scikit-learn's digits: 8x8 gray images with values 0..16, made the same way (a
  32x32 binary drawing, each 4x4 block's count of ink pixels; that is how the digits were made
  from their 32x32 bitmaps), ten classes, about 1,800 images;
* a different task: the classes are geometric (orientation, closed vs open outline, round vs
  angular, filled vs hollow) with random position, size, stroke thickness, rotation and pixel
  noise, not handwriting; nothing in it comes from digits, so it is not digits relabelled;
* generated from a seed in a fraction of a second: nothing to download, nothing to ship.

scikit-learn's other bundled image set (Olivetti faces) must be downloaded, and its tabular sets
(iris, wine) are no images, so a procedural set is the honest choice here.

The ten classes (label: name): 0 horizontal line, 1 vertical line, 2 rising diagonal "/",
3 falling diagonal "\\", 4 plus "+", 5 cross "x", 6 square outline, 7 circle outline (ring),
8 triangle outline, 9 filled disk. Lines and outlines are rotated by up to +-ROTATION degrees
(so "/" and "+" stay what they are), then each of the 32x32 pixels is flipped with probability
`noise` (drawn per image from [0, MAX_NOISE]).

    images, labels = shapes_arrays(seed=0)     # (1800, 8, 8) in 0..16, (1800,) in 0..9
    nasnb.data.load("shapes")                  # as a TensorData, split like digits
"""
from __future__ import annotations

import numpy as np

from nasnb.checks import check_int
from nasnb.spaces.base import as_rng

CLASSES = ("horizontal line", "vertical line", "rising diagonal", "falling diagonal", "plus", "cross",
           "square", "circle", "triangle", "disk")
CANVAS, BLOCK = 32, 4  # drawn at 32x32, counted in 4x4 blocks -> 8x8 values in 0..16 (as digits)
PER_CLASS = 180  # 1,800 images: about digits' 1,797
ROTATION = 12.0  # degrees of random rotation of every shape
MAX_NOISE = 0.04  # the most probability of a pixel flip


def _segments_distance(px: np.ndarray, py: np.ndarray, segments: list) -> np.ndarray:
    """The distance of every pixel centre (px, py) to the nearest of the segments ((x0, y0), (x1, y1))."""
    best = np.full(px.shape, np.inf)
    for (x0, y0), (x1, y1) in segments:
        dx, dy = x1 - x0, y1 - y0
        # the projection of the pixel on the segment's line, clipped to the segment: t in [0, 1]
        t = np.clip(((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        best = np.minimum(best, np.hypot(px - (x0 + t * dx), py - (y0 + t * dy)))
    return best


def _polygon(cx: float, cy: float, r: float, corners: int, angle: float) -> list:
    """The edges of a regular polygon with `corners` corners at radius r, turned by `angle` radians."""
    a = angle + 2 * np.pi * np.arange(corners) / corners
    points = list(zip(cx + r * np.cos(a), cy + r * np.sin(a)))
    return [(points[k], points[(k + 1) % corners]) for k in range(corners)]


def draw(label: int, cx: float, cy: float, r: float, thickness: float, angle: float) -> np.ndarray:
    """One 32x32 binary drawing (bool) of class `label`: centre (cx, cy), half-size r, stroke
    `thickness` in pixels, rotation `angle` in radians. y grows downwards, as in an image."""
    py, px = np.mgrid[0:CANVAS, 0:CANVAS] + 0.5  # pixel centres
    half = thickness / 2

    def line(theta):  # a segment of length 2r through the centre, at angle theta (0: horizontal)
        ux, uy = r * np.cos(theta), -r * np.sin(theta)  # minus: "rising" goes up the image
        return ((cx - ux, cy - uy), (cx + ux, cy + uy))

    if label <= 3:  # lines at 0, 90, 45 and 135 degrees
        return _segments_distance(px, py, [line(np.radians((0, 90, 45, 135)[label]) + angle)]) <= half
    if label in (4, 5):  # plus and cross: two perpendicular lines
        base = angle + (0.0 if label == 4 else np.pi / 4)
        return _segments_distance(px, py, [line(base), line(base + np.pi / 2)]) <= half
    if label == 6:  # square outline: a polygon of 4 corners at radius r * sqrt(2), sides 2r
        return _segments_distance(px, py, _polygon(cx, cy, r * np.sqrt(2), 4, np.pi / 4 + angle)) <= half
    if label == 8:  # triangle outline, pointing up (corner at -90 degrees), radius r * 1.15
        return _segments_distance(px, py, _polygon(cx, cy, r * 1.15, 3, -np.pi / 2 + angle)) <= half
    distance = np.hypot(px - cx, py - cy)
    if label == 7:  # ring
        return np.abs(distance - r) <= half
    return distance <= r * 0.8  # 9: disk, a little smaller so its ink stays near the others'


def block_counts(canvas: np.ndarray) -> np.ndarray:
    """(..., 32, 32) bool -> (..., 8, 8) counts of set pixels in each 4x4 block (0..16)."""
    *lead, H, W = canvas.shape
    blocks = canvas.reshape(*lead, H // BLOCK, BLOCK, W // BLOCK, BLOCK)
    return blocks.sum(axis=(-1, -3))


def shapes_arrays(seed=0, per_class: int = PER_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` images of each of the 10 classes, drawn with `seed` (same seed, same images).

    Returns images (10 * per_class, 8, 8) float64 with integer values 0..16 (as digits_arrays) and
    labels (10 * per_class,) int64, the classes interleaved 0, 1, ..., 9, 0, 1, ...
    Each image draws: size r in [6, 11] pixels (of 32), thickness in [2, 4.5], rotation in
    +-ROTATION degrees, a centre that keeps the shape inside the canvas, and a noise level.
    """
    rng = as_rng(seed, "seed")
    per_class = check_int("per_class", per_class, minimum=1, maximum=100_000, example=PER_CLASS)
    labels = np.tile(np.arange(len(CLASSES), dtype=np.int64), per_class)
    images = np.empty((len(labels), CANVAS // BLOCK, CANVAS // BLOCK))
    for k, label in enumerate(labels):
        r = rng.uniform(6.0, 11.0)
        thickness = rng.uniform(2.0, 4.5)
        angle = np.radians(rng.uniform(-ROTATION, ROTATION))
        margin = 1.2 * r + thickness / 2  # a triangle reaches 1.15 r from its centre
        cx, cy = rng.uniform(margin, CANVAS - margin, size=2)
        canvas = draw(int(label), cx, cy, r, thickness, angle)
        flips = rng.random(canvas.shape) < rng.uniform(0.0, MAX_NOISE)
        images[k] = block_counts(canvas ^ flips)
    return images, labels
