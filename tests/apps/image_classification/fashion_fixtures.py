"""Tiny stand-ins for Fashion-MNIST's four idx files, written by the tests (no network, no apt)."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np


def fake_garments(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`(images uint8 [N, 28, 28], labels [N])`: a blob of a class-dependent size per garment,
    at a random place, in shades from 60 to 255 (zero background)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(10):
        for _ in range(per_class):
            image = np.zeros((28, 28), np.uint8)
            height, width = 8 + label, 6 + (label % 5) * 3
            top, left = rng.integers(0, 28 - height + 1), rng.integers(0, 28 - width + 1)
            image[top : top + height, left : left + width] = rng.integers(
                60, 256, size=(height, width))
            images.append(image)
            labels.append(label)
    return np.stack(images), np.array(labels, np.uint8)


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """`array` in the idx format (magic 00 00, type `code`, ndim; big-endian sizes; data)."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def write_fashion_idx(directory, train_per_class: int = 12, test_per_class: int = 3,
                      seed: int = 0, gzipped: bool = True) -> str:
    """Writes train-/t10k- images and labels (gzip by default) into `directory`; returns it.

    Train garments come from `seed`, test garments from `seed + 1`.
    """
    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    for prefix, per_class, offset in (("train", train_per_class, 0), ("t10k", test_per_class, 1)):
        images, labels = fake_garments(per_class, seed + offset)
        for name, array in ((f"{prefix}-images-idx3-ubyte", images),
                            (f"{prefix}-labels-idx1-ubyte", labels)):
            data = idx_bytes(array)
            path = os.path.join(directory, name + (".gz" if gzipped else ""))
            with open(path, "wb") as f:
                f.write(gzip.compress(data) if gzipped else data)
    return directory
