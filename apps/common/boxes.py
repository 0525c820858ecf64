"""Scoring spatial attention against true object boxes (localization, attention correctness).

A map `m` of `h x w` cells (non-negative, summing to 1) is read as constant on
equal cells tiling the image. Its *mass inside a box* is

    sum_ij m_ij * |cell_ij ∩ box| / |cell_ij|

and a uniform map puts `|box| / |image|` inside. Apps report the mean of the
first next to the mean of the second ("how many times chance").
Boxes are normalised `(ymin, xmin, ymax, xmax)`, as in `tfds.features.BBoxFeature`.
"""

from __future__ import annotations

import numpy as np


def _overlap(cells: int, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """`(n, cells)`: the share of each of `cells` equal cells of [0, 1] that lies in [low, high]."""
    edges = np.arange(cells + 1, dtype=np.float64) / cells
    start = np.maximum(edges[None, :-1], low[:, None])
    end = np.minimum(edges[None, 1:], high[:, None])
    return np.clip(end - start, 0.0, None) * cells


def mass_in_box(maps, boxes) -> np.ndarray:
    """Share of each map's mass inside its box.

    Args:
        maps: `(n, h, w)` non-negative maps (normalised here to sum 1; an all-zero
            map scores 0).
        boxes: `(n, 4)` normalised `(ymin, xmin, ymax, xmax)`.

    Returns:
        `(n,)` floats in [0, 1].
    """
    maps = np.asarray(maps, np.float64)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if maps.ndim != 3 or maps.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"maps must be (n, h, w) and boxes (n, 4) with the same n; got {maps.shape} "
            f"and {boxes.shape}."
        )
    maps = maps / np.maximum(maps.sum(axis=(1, 2), keepdims=True), 1e-12)
    rows = _overlap(maps.shape[1], boxes[:, 0], boxes[:, 2])
    cols = _overlap(maps.shape[2], boxes[:, 1], boxes[:, 3])
    return np.einsum("bij,bi,bj->b", maps, rows, cols)


def uniform_in_box(boxes) -> np.ndarray:
    """What a uniform map puts inside each box: its area over the image's, `(n,)`."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, 1) * np.clip(boxes[:, 3] - boxes[:, 1], 0, 1)
