"""Drawing emoji scenes: the emoji tiles, the backgrounds, and one scene's layout and boxes.

Kept apart from `builder.py` (the `emoji_scenes` tfds builder: objects, captions,
splits, features), which would pass 400 lines with the drawing in it. Nothing
here knows about tfds or splits: `compose_scene` takes tiles, object ids, a
seeded `np.random.Generator` and the sizes of an `EmojiScenesConfig`.
"""

from __future__ import annotations

import unicodedata

import numpy as np

from apps.captioning import acquire

FONT_SIZE = 109  # The only size of the font's colour bitmaps (CBDT).
LAYOUTS = ("row", "column")


def render_emoji(chars, font_path: str) -> list[np.ndarray]:
    """Each emoji drawn at the font's native size: RGBA uint8 tiles cropped to their pixels."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path, FONT_SIZE)
    tiles = []
    for char in chars:
        canvas = Image.new("RGBA", (FONT_SIZE + 48, FONT_SIZE + 48), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((8, 8), char, font=font, embedded_color=True)
        box = canvas.getbbox()
        if box is None:
            raise RuntimeError(
                f"The font {font_path} drew nothing for {char!r} ({unicodedata.name(char)}); "
                f"is it Noto Color Emoji ({acquire.FONT_PACKAGE})?"
            )
        tiles.append(np.asarray(canvas.crop(box)))
    return tiles


def draw_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random background, uint8 `(size, size, 3)`: colour, gradient, stripes, checks or noise."""
    kind = rng.integers(5)
    first = rng.integers(0, 256, size=3).astype(np.float32)
    second = np.clip(first + rng.normal(0, 60, size=3), 0, 255).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    if kind == 0:
        mix = np.zeros((size, size), np.float32)
    elif kind == 1:
        angle = rng.uniform(0, 2 * np.pi)
        mix = (np.cos(angle) * xx + np.sin(angle) * yy)
        mix = (mix - mix.min()) / max(float(mix.max() - mix.min()), 1e-6)
    elif kind == 2:
        period = rng.integers(6, 20)
        coord = xx if rng.integers(2) else yy
        mix = ((coord * size // (period / 2)) % 2).astype(np.float32)
    elif kind == 3:
        period = rng.integers(8, 24)
        mix = (((xx * size // period) + (yy * size // period)) % 2).astype(np.float32)
    else:
        mix = rng.random((size, size)).astype(np.float32)
    image = first * (1 - mix[..., None]) + second * mix[..., None]
    image += rng.normal(0, 4, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _place(rng: np.random.Generator, lengths: list[int], size: int, gap: int) -> list[int]:
    """Start coordinates of segments of `lengths` in this order along [0, size), >= gap apart."""
    free = size - sum(lengths) - gap * (len(lengths) - 1)
    spare = rng.dirichlet(np.ones(len(lengths) + 1)) * max(free, 0)
    starts, position = [], 0.0
    for i, length in enumerate(lengths):
        position += spare[i] + (gap if i else 0)
        starts.append(int(position))
        position += length
    return starts


def _resize_tile(tile: np.ndarray, longest: int) -> np.ndarray:
    from PIL import Image

    height, width = tile.shape[:2]
    scale = longest / max(height, width)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(tile).resize(new, Image.LANCZOS))


def compose_scene(tiles: list[np.ndarray], objects: list[int], rng: np.random.Generator,
                  config):
    """Draws one scene of `objects` (ids into `tiles`), laid out in a row or a column.

    The order of `objects` is the order along the layout. Consecutive objects are
    separated along the layout axis (their boxes' projections do not overlap) and
    their centres are offset across it by at most half their distance along it,
    so "left of" / "above" is unambiguous. `config` gives `canvas_size`,
    `two_sizes` and `three_sizes` (an `EmojiScenesConfig`).

    Returns:
        (image uint8 `(S, S, 3)`, layout name, boxes float `(n, 4)` normalised
        `(ymin, xmin, ymax, xmax)` of each object's visible pixels, in order).
    """
    size = config.canvas_size
    layout = LAYOUTS[int(rng.integers(2))]
    low, high = config.three_sizes if len(objects) == 3 else config.two_sizes
    resized = [_resize_tile(tiles[o], int(rng.integers(low, high + 1))) for o in objects]
    if layout == "column":  # Work in transposed coordinates: the layout axis is x.
        resized = [np.transpose(t, (1, 0, 2)) for t in resized]
    along = [t.shape[1] for t in resized]
    across = [t.shape[0] for t in resized]
    xs = _place(rng, along, size, gap=3)
    ys, previous = [], None
    for i in range(len(resized)):
        lo, hi = 0, size - across[i]
        if previous is not None:
            distance = (xs[i] + along[i] / 2) - (xs[i - 1] + along[i - 1] / 2)
            centre = previous + across[i - 1] / 2
            lo = max(lo, int(np.ceil(centre - distance / 2 - across[i] / 2)))
            hi = min(hi, int(np.floor(centre + distance / 2 - across[i] / 2)))
            if lo > hi:  # Cannot happen with the checked sizes; keep the layout sound anyway.
                lo = hi = int(np.clip(round(centre - across[i] / 2), 0, size - across[i]))
        y = int(rng.integers(lo, hi + 1))
        ys.append(y)
        previous = y
    image = draw_background(rng, size).astype(np.float32)
    if layout == "column":
        image = np.transpose(image, (1, 0, 2))
    boxes = []
    for tile, x, y in zip(resized, xs, ys, strict=True):
        h, w = tile.shape[:2]
        alpha = tile[..., 3:4].astype(np.float32) / 255.0
        region = image[y : y + h, x : x + w]
        region[...] = region * (1 - alpha) + tile[..., :3].astype(np.float32) * alpha
        rows = np.flatnonzero(tile[..., 3].max(axis=1) > 24)
        cols = np.flatnonzero(tile[..., 3].max(axis=0) > 24)
        top, bottom = y + rows[0], y + rows[-1] + 1
        left, right = x + cols[0], x + cols[-1] + 1
        if layout == "column":  # Back to image coordinates: swap y and x.
            top, left, bottom, right = left, top, right, bottom
        boxes.append((top / size, left / size, bottom / size, right / size))
    if layout == "column":
        image = np.transpose(image, (1, 0, 2))
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image, layout, np.asarray(boxes, np.float32)
