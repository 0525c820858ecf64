"""Attention plots: weight-matrix heatmaps and spatial maps over images, written as PNG.

Every function draws on its own `matplotlib.figure.Figure` attached to the Agg
(file-only) canvas, so it works without a display and never changes the
process-wide matplotlib backend or leaves figures open in `pyplot` (importing
this module does not import pyplot). Inputs may be NumPy arrays or eager
tensors; every function checks shapes, creates the parent directories of
`path`, writes a PNG and returns `path` as a string.

- `attention_heatmap`: a `(T_q, T_k)` matrix with token labels (translation,
  self-attention of one head, ...).
- `attention_overlay`: one spatial map `(h, w)` stretched over an image.
- `attention_grid`: one overlay per word, for image captioning.
"""

from __future__ import annotations

import math
import os

import numpy as np

_DPI = 100


def _figure(width, height, layout=None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path):
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    figure.savefig(path, format="png", dpi=_DPI)
    return path


def _numeric(name, value):
    array = np.asarray(value)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"`{name}` must be numeric. Received: {name}.dtype={array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return array


def _labels(name, labels, count, what):
    if labels is None:
        return [str(i) for i in range(count)]
    labels = [str(label) for label in labels]
    if len(labels) != count:
        raise ValueError(
            f"`{name}` must have one label per {what}: expected {count}, received {len(labels)}."
        )
    return labels


def _image(image):
    """`(H, W)`, `(H, W, 1)`, `(H, W, 3)` or `(H, W, 4)`, uint8 or float -> floats in [0, 1]."""
    array = _numeric("image", image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(
            "`image` must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4). "
            f"Received: image.shape={np.shape(image)}"
        )
    if min(array.shape[:2]) == 0:
        raise ValueError(f"`image` is empty. Received: image.shape={np.shape(image)}")
    array = array.astype("float32")
    if np.issubdtype(np.asarray(image).dtype, np.integer) or array.max() > 1.0:
        array = array / 255.0
    return np.clip(array, 0.0, 1.0)


def _spatial_map(name, value):
    """`(h, w)`, `(h, w, 1)` or a flat square `(h*h,)` -> `(h, w)` float."""
    array = _numeric(name, value).astype("float32")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 1:
        side = math.isqrt(array.shape[0])
        if side * side != array.shape[0] or side == 0:
            raise ValueError(
                f"A flat `{name}` must have a square number of positions (h*h). "
                f"Received: {name}.shape={np.shape(value)}"
            )
        array = array.reshape(side, side)
    if array.ndim != 2 or min(array.shape) == 0:
        raise ValueError(
            f"`{name}` must have shape (h, w), (h, w, 1) or (h*h,). "
            f"Received: {name}.shape={np.shape(value)}"
        )
    return array


def _resize_bilinear(array, height, width):
    """Bilinear resize of a 2-D array with half-pixel centres (like `tf.image.resize`)."""
    in_h, in_w = array.shape

    def coords(out_size, in_size):
        pos = np.clip((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0, in_size - 1)
        low = np.floor(pos).astype(int)
        high = np.minimum(low + 1, in_size - 1)
        return low, high, (pos - low).astype("float32")

    y0, y1, wy = coords(height, in_h)
    x0, x1, wx = coords(width, in_w)
    top = array[y0][:, x0] * (1 - wx) + array[y0][:, x1] * wx
    bottom = array[y1][:, x0] * (1 - wx) + array[y1][:, x1] * wx
    return top * (1 - wy)[:, None] + bottom * wy[:, None]


def _normalize(array):
    low, high = float(array.min()), float(array.max())
    if high - low <= 0:
        return np.zeros_like(array)
    return (array - low) / (high - low)


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"`alpha` must be a float in [0, 1]. Received: alpha={alpha!r}")
    return float(alpha)


def _draw_overlay(axes, image, attention, alpha):
    height, width = image.shape[:2]
    heat = _normalize(_resize_bilinear(attention, height, width))
    axes.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0)
    axes.imshow(heat, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
    axes.set_axis_off()


def attention_heatmap(weights, x_labels, y_labels, path, title=None):
    """Draws a `(T_q, T_k)` attention matrix as a labelled heatmap and writes a PNG.

    Rows are queries (`y_labels`, e.g. target tokens), columns are keys
    (`x_labels`, e.g. source tokens); a colour bar gives the weight scale.

    Args:
        weights: `(T_q, T_k)` array or tensor (one head, one example: index
            `scores[0, head]` out of a `(batch, heads, T_q, T_k)` tensor).
        x_labels: `T_k` key labels, or None for indices.
        y_labels: `T_q` query labels, or None for indices.
        path: PNG file to write (parent directories are created).
        title: optional figure title.

    Returns:
        `path`, as a string.

    Example:

    >>> attention_heatmap(np.eye(3), ["a", "b", "c"], ["x", "y", "z"], "/tmp/att.png")
    '/tmp/att.png'
    """
    weights = _numeric("weights", weights).astype("float32")
    if weights.ndim != 2 or min(weights.shape) == 0:
        raise ValueError(
            "`weights` must be a non-empty 2-D (T_q, T_k) matrix; index a batch and a head "
            f"first. Received: weights.shape={weights.shape}"
        )
    t_q, t_k = weights.shape
    x_labels = _labels("x_labels", x_labels, t_k, "key (column)")
    y_labels = _labels("y_labels", y_labels, t_q, "query (row)")
    width = min(30.0, max(3.5, 0.35 * t_k + 2.5))
    height = min(30.0, max(2.5, 0.35 * t_q + 1.5 + (0.4 if title else 0.0)))
    figure = _figure(width, height, layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(
        weights,
        cmap="viridis",
        aspect="auto",
        interpolation="nearest",
        vmin=min(0.0, float(weights.min())),
        vmax=max(float(weights.max()), 1e-12),
    )
    axes.set_xticks(range(t_k), x_labels, rotation=90)
    axes.set_yticks(range(t_q), y_labels)
    axes.set_xlabel("keys")
    axes.set_ylabel("queries")
    figure.colorbar(image, ax=axes)
    if title:
        axes.set_title(title)
    return _save(figure, path)


def attention_overlay(image, attention_map, path, title=None, alpha=0.5):
    """Overlays a spatial attention map on an image and writes a PNG.

    The map (any `h × w`, e.g. a 7×7 CNN grid) is resized bilinearly to the
    image, min-max normalised to [0, 1] and drawn with the "jet" colour map at
    opacity `alpha`; the figure has the image's aspect ratio.

    Args:
        image: `(H, W)`, `(H, W, 1)`, `(H, W, 3)` or `(H, W, 4)`; uint8 in
            [0, 255] or float in [0, 1] (floats above 1 are read as [0, 255]).
        attention_map: `(h, w)`, `(h, w, 1)`, or a flat `(h*h,)` square grid.
        path: PNG file to write (parent directories are created).
        title: optional title above the image.
        alpha: opacity of the heat map, in [0, 1].

    Returns:
        `path`, as a string.

    Example:

    >>> image = np.zeros((64, 64, 3), "uint8")
    >>> attention_overlay(image, np.random.rand(7, 7), "/tmp/overlay.png", title="dog")
    '/tmp/overlay.png'
    """
    image = _image(image)
    attention = _spatial_map("attention_map", attention_map)
    alpha = _check_alpha(alpha)
    height, width = image.shape[:2]
    scale = 5.0 / max(height, width)
    title_room = 0.4 if title else 0.0
    figure = _figure(width * scale, height * scale + title_room)
    room = title_room / (height * scale + title_room)  # fraction of the figure height
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0 - room))
    _draw_overlay(axes, image, attention, alpha)
    if title:
        figure.suptitle(title, y=1.0 - room / 2, va="center")
    return _save(figure, path)


def attention_grid(image, maps, words, path, title=None, alpha=0.5, columns=5):
    """One overlay per word (captioning), after the image itself, and writes a PNG.

    Args:
        image: as in `attention_overlay`.
        maps: `(n, h, w)` maps, or `(n, L)` flat maps with `L = h*h` (the
            attention weights a captioning decoder returns per generated word).
        words: `n` words, one title per map.
        path: PNG file to write (parent directories are created).
        title: optional figure title (e.g. the whole caption).
        alpha: opacity of the heat maps, in [0, 1].
        columns: panels per row (positive int).

    Returns:
        `path`, as a string.

    Example:

    >>> image = np.zeros((64, 64, 3), "uint8")
    >>> attention_grid(image, np.random.rand(3, 49), ["a", "dog", "runs"], "/tmp/grid.png")
    '/tmp/grid.png'
    """
    image = _image(image)
    maps = _numeric("maps", maps)
    if maps.ndim not in (2, 3) or maps.shape[0] == 0:
        raise ValueError(
            "`maps` must have shape (n, h, w) or (n, h*h) with n >= 1. "
            f"Received: maps.shape={maps.shape}"
        )
    words = [str(word) for word in words]
    if len(words) != maps.shape[0]:
        raise ValueError(
            f"`words` must have one word per map: expected {maps.shape[0]}, received {len(words)}."
        )
    alpha = _check_alpha(alpha)
    if isinstance(columns, bool) or not isinstance(columns, int) or columns <= 0:
        raise ValueError(f"`columns` must be a positive integer. Received: columns={columns!r}")
    attention = [_spatial_map(f"maps[{i}]", m) for i, m in enumerate(maps)]
    panels = len(attention) + 1
    cols = min(columns, panels)
    rows = math.ceil(panels / cols)
    height, width = image.shape[:2]
    panel = 2.5
    scale = panel / max(height, width)
    figure = _figure(
        cols * width * scale + 0.2,
        rows * (height * scale + 0.4) + (0.4 if title else 0.0),
        layout="constrained",
    )
    for index in range(rows * cols):
        axes = figure.add_subplot(rows, cols, index + 1)
        axes.set_axis_off()
        if index == 0:
            axes.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0)
            axes.set_title("image")
        elif index < panels:
            _draw_overlay(axes, image, attention[index - 1], alpha)
            axes.set_title(words[index - 1])
    if title:
        figure.suptitle(title)
    return _save(figure, path)
