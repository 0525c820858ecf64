"""Captioning data: the `emoji_scenes` tfds builder and the input pipelines.

`emoji_scenes` composes scenes of two or three real emoji (Noto Color Emoji,
Apache-2.0, drawn by Google's designers) from a fixed set of 40 recognisable
objects, at random sizes and non-overlapping positions on a canvas with a
random background (a colour, a gradient, stripes, checks or noise). Each scene
is laid out along one axis (a row or a column) and described by two or three
generated captions that name the objects (from their Unicode names,
`unicodedata.name`, shortened to a word or two: "DOG FACE" -> "dog") and their
spatial relations:

    two objects, a row:     "the dog to the left of the red apple"
                            "the red apple to the right of the dog"
                            "the dog on the left and the red apple on the right"
    two objects, a column:  "the dog above the cat", "the cat below the dog",
                            "the dog at the top and the cat at the bottom"
    three objects:          "the dog, the cat and the grapes from left to right"
                            "the grapes, the cat and the dog from right to left"

Every object gets the article "the": with "a" / "an" / "some" the article
would already name the object (a model then looks at the object while emitting
the article and elsewhere while emitting its name), and the object's name is
the word whose attention we score.

The box of every object (its visible pixels) is stored, so the attention of a
captioning model can be scored against the truth.

**Splits by combination.** The 780 unordered pairs of objects are split (seeded)
into training, validation and test pairs: a training scene only holds training
pairs, and every validation / test scene holds at least one pair of its own
split (two-object scenes are exactly such a pair). So the test split measures
captions of object combinations never seen together in training; every object
itself is seen in training.

**Acquisition.** The font comes from Debian's `fonts-noto-color-emoji`. When
`/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf` is missing, the builder
installs the package with `apt-get` if it runs as root (after `apt-get update`
when needed), else it stops with an error naming the package. A font elsewhere
can be given with `font_path=` or `$NOTO_COLOR_EMOJI_FONT`. The font's SHA-256
and the package version are recorded in the dataset's metadata. Every scene is
drawn from its own seed `(config.seed, split, index)`: the same data on every
machine with the same font.

`--dataset=coco_captions` reads the public COCO captions (Karpathy splits)
through `apps.common.data.online_builder` on machines with network access.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import shutil
import subprocess
import unicodedata

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from apps.common import data as common_data
from apps.common import images as common_images
from apps.common import text as common_text

EMBEDDED = "emoji_scenes"
ONLINE = ("coco_captions",)
DATASETS = (EMBEDDED,) + ONLINE

FONT_PACKAGE = "fonts-noto-color-emoji"
FONT_PATH = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
FONT_ENV = "NOTO_COLOR_EMOJI_FONT"
FONT_SIZE = 109  # The only size of the font's colour bitmaps (CBDT).

# The objects: one emoji each. Names come from `unicodedata.name`, shortened by
# `short_name` (the overrides below, else lower case without " face").
OBJECTS = (
    "🐶", "🐱", "🐰", "🐻", "🐸", "🐵", "🐷", "🐔", "🐧", "🐢",
    "🐟", "🦋", "🐘", "🐙", "🍎", "🍏", "🍌", "🍇", "🍋", "🍉",
    "🍒", "🥕", "🍄", "🍕", "🍩", "🎂", "🚗", "🚌", "🚲", "🚀",
    "⛵", "🏠", "⚽", "🔑", "⏰", "☔", "⭐", "🌙", "🌻", "🌲",
)
_SHORT_NAMES = {
    "SLICE OF PIZZA": "pizza",
    "BIRTHDAY CAKE": "cake",
    "AUTOMOBILE": "car",
    "HOUSE BUILDING": "house",
    "SOCCER BALL": "ball",
    "ALARM CLOCK": "clock",
    "UMBRELLA WITH RAIN DROPS": "umbrella",
    "WHITE MEDIUM STAR": "star",
    "CRESCENT MOON": "moon",
    "EVERGREEN TREE": "tree",
    "SAILBOAT": "boat",
}
LAYOUTS = ("row", "column")
_SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}


def short_name(char: str) -> str:
    """The caption name of an emoji: `unicodedata.name`, shortened ("DOG FACE" -> "dog")."""
    name = unicodedata.name(char)
    if name in _SHORT_NAMES:
        return _SHORT_NAMES[name]
    name = name.lower()
    return name[: -len(" face")] if name.endswith(" face") else name


def noun_phrase(name: str) -> str:
    """`name` with its article, the same for every object: "the dog", "the grapes"."""
    return f"the {name}"


def captions_for(names: list[str], layout: str) -> list[str]:
    """The captions of objects `names` in order along `layout` (left->right, top->bottom).

    Three phrasings for two objects, two (both directions) for three.
    """
    p = [noun_phrase(n) for n in names]
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    row = layout == "row"
    if len(p) == 2:
        if row:
            return [f"{p[0]} to the left of {p[1]}", f"{p[1]} to the right of {p[0]}",
                    f"{p[0]} on the left and {p[1]} on the right"]
        return [f"{p[0]} above {p[1]}", f"{p[1]} below {p[0]}",
                f"{p[0]} at the top and {p[1]} at the bottom"]
    if len(p) == 3:
        first, last = ("left", "right") if row else ("top", "bottom")
        return [f"{p[0]}, {p[1]} and {p[2]} from {first} to {last}",
                f"{p[2]}, {p[1]} and {p[0]} from {last} to {first}"]
    raise ValueError(f"Scenes have 2 or 3 objects, got {len(p)}.")


# ---------------------------------------------------------------------------
# The font.


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _apt_get(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, check=False,
                          env=env)


def ensure_font(font_path: str | None = None) -> tuple[str, str]:
    """The path of NotoColorEmoji.ttf and how it was found, installing it if it can.

    Order: `font_path`, `$NOTO_COLOR_EMOJI_FONT`, the Debian path; when the
    Debian file is missing and this process is root with `apt-get`, it installs
    `fonts-noto-color-emoji` (running `apt-get update` first if the package is
    unknown). Otherwise a `RuntimeError` says what to install.
    """
    given = ((font_path, "font_path argument"), (os.environ.get(FONT_ENV), f"${FONT_ENV}"))
    for path, how in given:
        if path:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{how}: {path!r} is not a file (NotoColorEmoji.ttf).")
            return path, how
    if os.path.isfile(FONT_PATH):
        return FONT_PATH, f"Debian package {FONT_PACKAGE}"
    instructions = (
        f"The emoji_scenes dataset needs the Noto Color Emoji font ({FONT_PATH}). Install the "
        f"Debian package {FONT_PACKAGE} (`sudo apt-get install {FONT_PACKAGE}`), or point "
        f"${FONT_ENV} at a copy of NotoColorEmoji.ttf."
    )
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        raise RuntimeError(instructions)
    logging.info("Installing %s with apt-get for the emoji_scenes dataset", FONT_PACKAGE)
    proc = _apt_get("install", "-y", "--no-install-recommends", FONT_PACKAGE)
    if proc.returncode != 0:
        _apt_get("update")
        proc = _apt_get("install", "-y", "--no-install-recommends", FONT_PACKAGE)
    if proc.returncode != 0 or not os.path.isfile(FONT_PATH):
        raise RuntimeError(f"{instructions} apt-get said: {proc.stderr.strip()[-400:]}")
    return FONT_PATH, f"Debian package {FONT_PACKAGE} (installed with apt-get)"


def font_package_version() -> str:
    """The installed version of the Debian font package, or "unknown"."""
    if not shutil.which("dpkg-query"):
        return "unknown"
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", FONT_PACKAGE],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "unknown"


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
                f"is it Noto Color Emoji ({FONT_PACKAGE})?"
            )
        tiles.append(np.asarray(canvas.crop(box)))
    return tiles


# ---------------------------------------------------------------------------
# Scenes.


@dataclasses.dataclass(eq=False)
class EmojiScenesConfig(tfds.core.BuilderConfig):
    """How the scenes are drawn.

    Attributes:
        canvas_size: side of the square image in pixels.
        train_scenes, validation_scenes, test_scenes: scenes per split.
        three_fraction: share of scenes with three objects (the rest have two).
        two_sizes, three_sizes: (min, max) longest side of an object in pixels, in
            two- and three-object scenes.
        validation_pairs, test_pairs: share of the object pairs held out for
            validation / test.
        num_objects: the first `num_objects` of `OBJECTS` are used (tests use few).
        seed: the seed of the pair split and of every scene.
    """

    canvas_size: int = 96
    train_scenes: int = 16000
    validation_scenes: int = 500
    test_scenes: int = 1000
    three_fraction: float = 0.35
    two_sizes: tuple = (26, 40)
    three_sizes: tuple = (22, 30)
    validation_pairs: float = 0.05
    test_pairs: float = 0.2
    num_objects: int = len(OBJECTS)
    seed: int = 2015


def _check_config(config: EmojiScenesConfig) -> None:
    if not 3 <= config.num_objects <= len(OBJECTS):
        raise ValueError(f"num_objects must be in [3, {len(OBJECTS)}], got {config.num_objects}.")
    for name in ("two_sizes", "three_sizes"):
        low, high = getattr(config, name)
        if not 8 <= low <= high:
            raise ValueError(f"{name} must be (min, max) with 8 <= min <= max, got {(low, high)}.")
    if config.canvas_size < 3 * config.three_sizes[1] + 6 or (
        config.canvas_size < 2 * config.two_sizes[1] + 3
    ):
        raise ValueError(
            f"canvas_size={config.canvas_size} is too small for three objects of "
            f"{config.three_sizes[1]} px or two of {config.two_sizes[1]} px in a row."
        )
    if not 0 <= config.three_fraction <= 1:
        raise ValueError(f"three_fraction must be in [0, 1], got {config.three_fraction}.")
    held_out = config.validation_pairs + config.test_pairs
    if config.validation_pairs <= 0 or config.test_pairs <= 0 or held_out >= 0.6:
        raise ValueError(
            "validation_pairs and test_pairs must be > 0 with a sum below 0.6, got "
            f"{config.validation_pairs} and {config.test_pairs}."
        )
    for split in ("train", "validation", "test"):
        if getattr(config, f"{split}_scenes") < 1:
            raise ValueError(f"{split}_scenes must be >= 1.")


def split_pairs(num_objects: int, config: EmojiScenesConfig) -> dict[str, list[tuple[int, int]]]:
    """The unordered object pairs of each split (seeded); every object keeps training pairs."""
    pairs = list(itertools.combinations(range(num_objects), 2))
    rng = np.random.default_rng([config.seed, 7])
    order = rng.permutation(len(pairs))
    n_test = max(1, int(round(len(pairs) * config.test_pairs)))
    n_val = max(1, int(round(len(pairs) * config.validation_pairs)))
    out = {
        "test": [pairs[i] for i in order[:n_test]],
        "validation": [pairs[i] for i in order[n_test : n_test + n_val]],
        "train": [pairs[i] for i in order[n_test + n_val :]],
    }
    # Give back to training any pair whose objects would otherwise never be seen in training.
    for split in ("test", "validation"):
        for pair in list(out[split]):
            seen = {o for p in out["train"] for o in p}
            if not set(pair) <= seen:
                out[split].remove(pair)
                out["train"].append(pair)
    return {k: sorted(v) for k, v in out.items()}


def choose_objects(rng: np.random.Generator, split: str, pairs: dict, three: bool) -> list[int]:
    """Object ids of one scene: a pair of `split` plus, for three, a third one that only
    forms training pairs or pairs of `split` with them."""
    own = pairs[split]
    allowed = set(pairs["train"]) | set(own)
    if not three:
        return list(own[rng.integers(len(own))])
    for _ in range(100):
        a, b = own[rng.integers(len(own))]
        objects = {o for p in allowed for o in p}
        candidates = [c for c in sorted(objects - {a, b})
                      if tuple(sorted((a, c))) in allowed and tuple(sorted((b, c))) in allowed]
        if candidates:
            return [a, b, candidates[rng.integers(len(candidates))]]
    return list(own[rng.integers(len(own))])  # No third object fits: a two-object scene.


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
                  config: EmojiScenesConfig):
    """Draws one scene of `objects` (ids into `tiles`), laid out in a row or a column.

    The order of `objects` is the order along the layout. Consecutive objects are
    separated along the layout axis (their boxes' projections do not overlap) and
    their centres are offset across it by at most half their distance along it,
    so "left of" / "above" is unambiguous.

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


class EmojiScenes(tfds.core.GeneratorBasedBuilder):
    """Scenes of 2-3 real emoji with generated captions and every object's box.

    Builder kwargs: `font_path` (optional) is the NotoColorEmoji.ttf to draw with.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "First release: 40 Noto Color Emoji objects, 96x96 scenes of 2 (65%) or 3 "
        "objects in a row or a column, 3 (two objects) or 2 captions each; object pairs split "
        "75/5/20 between train/validation/test; 16,000 / 500 / 1,000 scenes.",
    }
    BUILDER_CONFIGS = [
        EmojiScenesConfig(
            name="default",
            description="96x96 scenes, 2-3 of 40 objects, test on unseen object pairs.",
        ),
    ]

    def __init__(self, *, font_path: str | None = None, **kwargs):
        self._font_path = font_path
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        names = [short_name(c) for c in OBJECTS[: config.num_objects]]
        size = config.canvas_size
        return self.dataset_info_from_configs(
            description=(
                "Scenes of two or three real emoji (Noto Color Emoji) at random places, sizes "
                "and backgrounds, with 2-3 generated captions naming the objects and their "
                "spatial relations, and the box of every object. The test split holds object "
                "pairs never seen together in training."
            ),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
                "captions": tfds.features.Sequence(tfds.features.Text()),
                "objects": tfds.features.Sequence({
                    "label": tfds.features.ClassLabel(names=names),
                    "bbox": tfds.features.BBoxFeature(),
                }),
                "layout": tfds.features.ClassLabel(names=list(LAYOUTS)),
                "scene_id": np.int64,
            }),
            homepage="https://github.com/googlefonts/noto-emoji",
            citation=(
                "@inproceedings{xu2015show, title={Show, Attend and Tell: Neural Image Caption "
                "Generation with Visual Attention}, author={Xu, Kelvin and Ba, Jimmy and Kiros, "
                "Ryan and Cho, Kyunghyun and Courville, Aaron and Salakhutdinov, Ruslan and "
                "Zemel, Richard and Bengio, Yoshua}, booktitle={ICML}, year={2015}}"
            ),
            metadata=tfds.core.MetadataDict(),
            license="Apache-2.0 (Noto Color Emoji)",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the font comes from a Debian package.
        config = self.builder_config
        _check_config(config)
        font, how = ensure_font(self._font_path)
        chars = OBJECTS[: config.num_objects]
        tiles = render_emoji(chars, font)
        pairs = split_pairs(len(chars), config)
        self.info.metadata.update({
            "font_path": font,
            "font_found_by": how,
            "font_sha256": _sha256(font),
            "font_package": FONT_PACKAGE,
            "font_package_version": font_package_version(),
            "objects": [{"emoji": c, "unicode_name": unicodedata.name(c),
                         "codepoint": f"U+{ord(c):04X}", "caption_name": short_name(c)}
                        for c in chars],
            "pairs_per_split": {k: len(v) for k, v in pairs.items()},
            "test_pairs": [[short_name(chars[a]), short_name(chars[b])]
                           for a, b in pairs["test"]],
            "config": {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                       if f.name not in ("release_notes", "supported_versions", "tags")},
        })
        return {
            split: self._generate_examples(split, tiles, chars, pairs)
            for split in ("train", "validation", "test")
        }

    def _generate_examples(self, split, tiles, chars, pairs):
        config = self.builder_config
        count = getattr(config, f"{split}_scenes")
        for index in range(count):
            rng = np.random.default_rng([config.seed, _SPLIT_CODES[split], index])
            three = bool(rng.random() < config.three_fraction)
            objects = choose_objects(rng, split, pairs, three)
            objects = [objects[i] for i in rng.permutation(len(objects))]
            image, layout, boxes = compose_scene(tiles, objects, rng, config)
            names = [short_name(chars[o]) for o in objects]
            yield index, {
                "image": image,
                "captions": captions_for(names, layout),
                "objects": {
                    "label": objects,
                    "bbox": [tfds.features.BBox(*(float(v) for v in box)) for box in boxes],
                },
                "layout": layout,
                "scene_id": index,
            }


# ---------------------------------------------------------------------------
# Input pipelines.


@dataclasses.dataclass
class Splits:
    """Three `tf.data` splits of a captioning dataset in one format, and their facts.

    Each element is a dict: `image_bytes` (encoded image, string scalar),
    `captions` (string `[k]`), `boxes` (float32 `[n, 4]` normalised
    `(ymin, xmin, ymax, xmax)`) and `box_names` (string `[n]`, the object's name
    in captions). Unbatched, unshuffled.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    sizes: dict
    dataset: str
    metadata: dict


def load_splits(dataset: str = EMBEDDED, data_dir: str | None = None, config=None,
                builder_kwargs: dict | None = None) -> Splits:
    """The splits of `emoji_scenes` (built once, cached) or of `coco_captions` (online).

    Args:
        dataset: `emoji_scenes` or `coco_captions`.
        data_dir: the dataset cache (`apps.common.data.data_dir`).
        config: an `EmojiScenesConfig` (or config name) for the embedded dataset.
        builder_kwargs: more builder arguments (`font_path=...`).
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}.")
    root = common_data.data_dir(data_dir)
    skip = {"image": tfds.decode.SkipDecoding()}
    if dataset == EMBEDDED:
        builder = common_data.prepare(EmojiScenes, root, config=config, **(builder_kwargs or {}))
        names = tf.constant(builder.info.features["objects"]["label"].names)
        names_of = {"train": "train", "validation": "validation", "test": "test"}

        def standard(example):
            return {
                "image_bytes": example["image"],
                "captions": example["captions"],
                "boxes": tf.reshape(example["objects"]["bbox"], [-1, 4]),
                "box_names": tf.gather(names, example["objects"]["label"]),
            }
    else:
        builder = common_data.online_builder(dataset, root)
        names = tf.constant(builder.info.features["objects"]["label"].names)
        names_of = {"train": "train+restval", "validation": "val", "test": "test"}

        def standard(example):
            return {
                "image_bytes": example["image"],
                "captions": example["captions"]["text"],
                "boxes": tf.reshape(example["objects"]["bbox"], [-1, 4]),
                "box_names": tf.gather(names, example["objects"]["label"]),
            }

    out = {}
    for split, name in names_of.items():
        ds = builder.as_dataset(split=name, shuffle_files=False, decoders=skip)
        out[split] = ds.map(standard, num_parallel_calls=tf.data.AUTOTUNE)
    sizes = {k: int(sum(builder.info.splits[p].num_examples for p in v.split("+")))
             for k, v in names_of.items()}
    return Splits(out["train"], out["validation"], out["test"], sizes, dataset,
                  dict(builder.info.metadata or {}))


def caption_texts(ds: tf.data.Dataset, limit: int | None = None) -> list[str]:
    """Every caption of the first `limit` examples (all when None), for the vocabulary."""
    if limit is not None:
        ds = ds.take(limit)
    texts = []
    for captions in ds.map(lambda e: e["captions"]).ragged_batch(512).as_numpy_iterator():
        texts.extend(t.decode("utf-8") for row in _rows(captions) for t in row if t)
    return texts


def make_tokenizer(texts, vocab_size: int, max_length: int) -> common_text.Tokenizer:
    """A word tokenizer (PAD, UNK, START, END + the most frequent words) with START/END."""
    reserved = (common_text.PAD, common_text.UNK, common_text.START, common_text.END)
    vocabulary = common_text.build_vocabulary(texts, vocab_size, reserved=reserved)
    return common_text.Tokenizer(vocabulary, max_length, bos_eos=True)


def decode(image_bytes, image_size: int):
    """Encoded image (scalar string) -> float32 `(S, S, 3)` in [0, 1], as the SavedModel does."""
    return common_images.decode_image(image_bytes, image_size, image_size, 3, keep_aspect=True)


def training_pipeline(ds: tf.data.Dataset, tokenizer: common_text.Tokenizer, image_size: int,
                      batch_size: int, shuffle: bool = False, seed: int = 0,
                      cache: bool = True) -> tf.data.Dataset:
    """Batches `({"image", "tokens"}, targets)` for teacher forcing.

    One caption of each image is drawn per pass (at random when `shuffle`, else
    the first); `tokens` are its ids without the last position (START ... ),
    `targets` the ids shifted by one ( ... END), both int32 `(batch, max_length - 1)`,
    0 at padding.
    """
    if cache:
        ds = ds.cache()  # The encoded images: a few kB each.
    if shuffle:
        ds = ds.shuffle(50_000, seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed) if shuffle else tf.data.Dataset.from_tensors(
        tf.constant(0, tf.int64)).repeat()

    @tf.autograph.experimental.do_not_convert  # Plain TF ops: nothing to convert, faster tracing.
    def prepare(example, draw):
        captions = example["captions"]
        count = tf.maximum(tf.shape(captions, out_type=tf.int64)[0], 1)
        index = tf.math.floormod(draw, count)
        caption = tf.gather(tf.concat([captions, [""]], 0), index)
        _, ids = tokenizer.tokenize(tf.reshape(caption, [1]))
        ids = ids[0]
        image = decode(example["image_bytes"], image_size)
        return {"image": image, "tokens": ids[:-1]}, ids[1:]

    ds = tf.data.Dataset.zip((ds, seeds)).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def evaluation_batches(ds: tf.data.Dataset, image_size: int, batch_size: int,
                       limit: int | None = None):
    """Yields numpy batches `(images (b, S, S, 3), captions, boxes, box_names)` for scoring.

    `captions`, `boxes` and `box_names` are lists (one entry per image) of
    decoded strings / `(n, 4)` arrays.
    """
    if limit is not None:
        ds = ds.take(limit)

    @tf.autograph.experimental.do_not_convert
    def prepare(example):
        return (decode(example["image_bytes"], image_size), example["captions"],
                example["boxes"], example["box_names"])

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.ragged_batch(batch_size)
    for images, captions, boxes, names in ds.as_numpy_iterator():
        yield (
            images,
            [[c.decode("utf-8") for c in row] for row in _rows(captions)],
            [np.asarray(row, np.float32).reshape(-1, 4) for row in _rows(boxes)],
            [[n.decode("utf-8") for n in row] for row in _rows(names)],
        )


def _rows(value) -> list:
    """Rows of a numpy ragged batch (tf.RaggedTensorValue) or of a dense array."""
    if hasattr(value, "to_list"):
        return value.to_list()
    return list(value)
