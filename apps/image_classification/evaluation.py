"""Scoring attention maps against the digit's true box, and drawing them.

A map `m` of `h x w` cells (non-negative, summing to 1) is read as constant on
equal cells tiling the image. Its *mass inside the box* is

    sum_ij m_ij * |cell_ij ∩ box| / |cell_ij|

and a uniform map would put `|box| / |image|` inside. The localization score
of a test set is the ratio of the means of the two: how many times more
attention falls on the digit than chance.
"""

from __future__ import annotations

import os
import time

import numpy as np


def _overlap(cells: int, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """`(batch, cells)`: the fraction of each of `cells` equal cells of [0, 1] in [low, high]."""
    edges = np.arange(cells + 1, dtype=np.float64) / cells
    start = np.maximum(edges[None, :-1], low[:, None])
    end = np.minimum(edges[None, 1:], high[:, None])
    return np.clip(end - start, 0.0, None) * cells


def mass_in_box(maps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Share of each map's mass inside its box.

    Args:
        maps: `(batch, h, w)` non-negative maps (normalised here to sum 1).
        boxes: `(batch, 4)` normalised `(ymin, xmin, ymax, xmax)`.

    Returns:
        `(batch,)` in [0, 1].
    """
    maps = np.asarray(maps, np.float64)
    boxes = np.asarray(boxes, np.float64)
    maps = maps / np.maximum(maps.sum(axis=(1, 2), keepdims=True), 1e-12)
    rows = _overlap(maps.shape[1], boxes[:, 0], boxes[:, 2])
    cols = _overlap(maps.shape[2], boxes[:, 1], boxes[:, 3])
    return np.einsum("bij,bi,bj->b", maps, rows, cols)


def uniform_in_box(boxes: np.ndarray) -> np.ndarray:
    """What a uniform map puts inside each box: its area over the image's."""
    boxes = np.asarray(boxes, np.float64)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, 1) * np.clip(boxes[:, 3] - boxes[:, 1], 0, 1)


def evaluate(analysis, primary, dataset, class_names, plot_dir=None, plots=8, title=""):
    """Accuracy, localization and timing on `(image, label[, bbox])` batches.

    Args:
        analysis: Keras model images -> {"logits": ..., map name: (batch, h, w), ...}.
        primary: the name of the map that is exported (drawn and reported first).
        dataset: batches `(image, label)` or `(image, label, bbox)`.
        class_names: names of the classes, for plot titles.
        plot_dir: where `plots` overlays (image with its true box in red when known,
            and the primary map) are written; None for no plots.
        plots: how many test images to draw.
        title: prefix of the plot titles.

    Returns:
        {"accuracy", "examples", "primary_map"} and, with boxes, the primary
        map's "attention_in_box", "uniform_in_box", "localization_ratio", and
        "maps": the same for every map of `analysis`.
    """
    correct = total = 0
    inside: dict[str, list] = {}
    uniform = []
    drawn = []
    for batch in dataset:
        images, labels = batch[0].numpy(), batch[1].numpy()
        outputs = analysis.predict_on_batch(images)
        predicted = np.argmax(np.asarray(outputs["logits"]), axis=-1)
        correct += int((predicted == labels).sum())
        total += len(labels)
        boxes = batch[2].numpy() if len(batch) > 2 else None
        if boxes is not None:
            uniform.append(uniform_in_box(boxes))
            for name, maps in outputs.items():
                if name != "logits":
                    inside.setdefault(name, []).append(mass_in_box(np.asarray(maps), boxes))
        for i in range(len(labels)):
            if plot_dir and len(drawn) < plots:
                drawn.append(_draw(images[i], np.asarray(outputs[primary][i]),
                                   None if boxes is None else boxes[i], class_names[labels[i]],
                                   class_names[predicted[i]], plot_dir, len(drawn), title))
    metrics = {
        "accuracy": correct / max(total, 1),
        "examples": total,
        "primary_map": primary,
    }
    if uniform:
        uniform = np.concatenate(uniform)
        scores = {}
        for name, values in inside.items():
            values = np.concatenate(values)
            scores[name] = {
                "attention_in_box": float(values.mean()),
                "localization_ratio": float(values.mean() / max(uniform.mean(), 1e-12)),
            }
        metrics.update({
            "attention_in_box": scores[primary]["attention_in_box"],
            "uniform_in_box": float(uniform.mean()),
            "localization_ratio": scores[primary]["localization_ratio"],
            "maps": scores,
        })
    if drawn:
        metrics["plots"] = drawn
    return metrics


def inference_ms(model, images: np.ndarray, batch_size: int = 100, repeats: int = 3) -> dict:
    """Milliseconds per image of `model.predict_on_batch` (compiled; median of `repeats`).

    Returns {"ms_per_image": at `batch_size`, "ms_batch1": one image per call}.
    """
    images = np.asarray(images, np.float32)
    batch = images[:batch_size]
    model.predict_on_batch(batch)  # trace and compile
    model.predict_on_batch(batch[:1])
    batched, single = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(batch)
        batched.append((time.perf_counter() - start) / len(batch))
        start = time.perf_counter()
        for i in range(10):
            model.predict_on_batch(batch[i % len(batch) : i % len(batch) + 1])
        single.append((time.perf_counter() - start) / 10)
    return {"ms_per_image": 1000.0 * float(np.median(batched)),
            "ms_batch1": 1000.0 * float(np.median(single))}


def draw_box(image: np.ndarray, box) -> np.ndarray:
    """A float RGB copy of `image` (H, W[, C] in [0, 1]) with the box outlined in red."""
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        image = image[..., None]
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3].copy()
    height, width = rgb.shape[:2]
    top = int(np.clip(round(box[0] * height), 0, height - 1))
    left = int(np.clip(round(box[1] * width), 0, width - 1))
    bottom = int(np.clip(round(box[2] * height) - 1, top, height - 1))
    right = int(np.clip(round(box[3] * width) - 1, left, width - 1))
    red = np.array([1.0, 0.0, 0.0], np.float32)
    rgb[top, left : right + 1] = red
    rgb[bottom, left : right + 1] = red
    rgb[top : bottom + 1, left] = red
    rgb[top : bottom + 1, right] = red
    return rgb


def _draw(image, attention, box, truth, predicted, plot_dir, index, title):
    from keras_attention import plot

    caption = f"{title} true {truth}, predicted {predicted}"
    if box is not None:
        share = float(mass_in_box(attention[None], np.asarray(box)[None])[0])
        caption += f"; {share:.0%} of attention in box"
        image = draw_box(image, box)
    path = os.path.join(plot_dir, f"attention_{index:02d}.png")
    return plot.attention_overlay(image, attention, path, title=caption.strip())
