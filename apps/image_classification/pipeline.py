"""From a prepared image dataset to `tf.data`: the splits, then batches.

    splits = load_splits("cluttered_digits", data_dir, config=builder.config_with(canvas_size=100))
    train = make_dataset(splits.train, 64, training=True, seed=42)   # (image, label)
    test_boxes = make_dataset(splits.test, 64, boxes=True)           # (image, label, bbox)

`load_splits` builds an embedded dataset once (verified cache,
`apps.common.data.prepare`): `cluttered_digits`, or Fashion-MNIST from Debian's
package as `fashion_mnist` (28x28) and `cluttered_fashion_mnist` (on 60x60
canvases; `apps.image_classification.fashion`). Any other name (`cifar10`, or
any tfds image classification dataset with `image` and `label`) loads the
public dataset through `apps.common.data.online_builder`; one without a
validation split keeps the last 10% of train for it. `make_dataset` scales images to
float32 in [0, 1], shuffles training data with a seed, and batches; it can also
augment training data (random translation, horizontal flips: the ViT's
`small_data` recipe, `model.Recipe`).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from apps.common import data as common_data
from apps.image_classification import builder as builder_lib
from apps.image_classification import fashion
from apps.image_classification.builder import EMBEDDED

# The datasets built here (no network but a package registry's): name -> builder class.
EMBEDDED_DATASETS = {EMBEDDED: builder_lib.ClutteredDigits,
                     **{name: fashion.FashionMnistCanvases for name in fashion.DATASETS}}

_SHUFFLE_BUFFER = 20_000


@dataclasses.dataclass
class Splits:
    """A prepared dataset's three splits and their facts.

    `train`, `validation` and `test` yield unbatched `(image uint8 [H, W, C],
    label)` examples, with the digit's `bbox` (normalised `(ymin, xmin, ymax,
    xmax)`) as a third element when `has_boxes`; they are cached after the
    first pass.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    image_shape: tuple[int, int, int]
    class_names: list[str]
    train_examples: int
    dataset: str
    has_boxes: bool


def _builder(dataset: str, root: str, config, builder_kwargs):
    """The tfds builder and the split names to read as (train, validation, test)."""
    if dataset in EMBEDDED_DATASETS:
        if config is None and dataset in fashion.DATASETS:
            config = fashion.DATASETS[dataset]
        builder = common_data.prepare(EMBEDDED_DATASETS[dataset], root, config=config,
                                      **(builder_kwargs or {}))
        return builder, {"train": "train", "validation": "validation", "test": "test"}
    builder = common_data.online_builder(dataset, root)
    if "validation" in set(builder.info.splits):
        return builder, {"train": "train", "validation": "validation", "test": "test"}
    # cifar10 and the like: hold out the last 10% of train.
    return builder, {"train": "train[:90%]", "validation": "train[90%:]", "test": "test"}


def load_splits(dataset: str = EMBEDDED, data_dir: str | None = None, *, config=None,
                builder_kwargs: dict | None = None, take: int | None = None) -> Splits:
    """The splits of an embedded dataset or of a public tfds image dataset (`cifar10`).

    Args:
        dataset: an embedded dataset (`EMBEDDED_DATASETS`: `cluttered_digits`,
            `fashion_mnist`, `cluttered_fashion_mnist`) or a tfds name with `image`
            and `label`.
        data_dir: the dataset cache (see `apps.common.data.data_dir`).
        config: the embedded builder's config (a `builder.CanvasConfig` or its name);
            None for the dataset's own (`cluttered_digits`' default, Fashion-MNIST's
            `plain` or `cluttered`).
        builder_kwargs: more keyword arguments for the builder (`source_csv=...`,
            `source_dir=...`).
        take: keep the first `take` examples of each split (a quick run).
    """
    builder, names = _builder(dataset, common_data.data_dir(data_dir), config, builder_kwargs)
    features = builder.info.features
    has_boxes = "bbox" in features

    def split(name):
        ds = builder.as_dataset(split=names[name], shuffle_files=False)
        if take is not None:
            ds = ds.take(take)
        if has_boxes:
            return ds.map(lambda e: (e["image"], e["label"], e["bbox"])).cache()
        return ds.map(lambda e: (e["image"], e["label"])).cache()

    train = split("train")
    n_train = int(train.cardinality())
    if n_train < 0:  # unknown cardinality
        n_train = builder.info.splits[names["train"]].num_examples
    return Splits(
        train=train,
        validation=split("validation"),
        test=split("test"),
        image_shape=tuple(int(d) for d in features["image"].shape),
        class_names=list(features["label"].names),
        train_examples=int(n_train),
        dataset=dataset,
        has_boxes=has_boxes,
    )


def flip_keeps_class(dataset: str) -> bool:
    """Whether a mirrored image keeps its class: not for digits (a mirrored 2 is no 2);
    for garments (`fashion_mnist`, `cluttered_fashion_mnist`) and natural images."""
    return dataset != EMBEDDED


def augment(image, translate: int = 0, flip: bool = False, seed: int = 42):
    """One uint8 `[H, W, C]` image shifted by up to `translate` pixels each way (zero
    padding, then a random `H x W` crop) and, with `flip`, mirrored with probability 1/2."""
    if translate:
        padded = tf.pad(image, [[translate, translate], [translate, translate], [0, 0]])
        image = tf.image.random_crop(padded, tf.shape(image), seed=seed)
    if flip:
        image = tf.image.random_flip_left_right(image, seed=seed + 1)
    return image


def make_dataset(split: tf.data.Dataset, batch_size: int, *, training: bool = False,
                 seed: int = 42, boxes: bool = False, translate: int = 0,
                 flip: bool = False) -> tf.data.Dataset:
    """Batches of one split: `(image, label)`, or `(image, label, bbox)` with `boxes`.

    Images become float32 in [0, 1]. A training split is reshuffled every epoch
    (from `seed`) and, with `translate` (pixels) or `flip`, augmented (`augment`;
    the draws follow `seed` and TensorFlow's global seed). `boxes=True` needs a
    split with boxes (`Splits.has_boxes`) and no augmentation (it would move the
    object off its box).
    """
    if isinstance(translate, bool) or not isinstance(translate, int) or translate < 0:
        raise ValueError(f"translate must be a non-negative integer (pixels), got {translate!r}.")
    if (translate or flip) and not training:
        raise ValueError("translate and flip augment training data; training=False was given.")
    if (translate or flip) and boxes:
        raise ValueError("boxes=True with translate or flip: augmentation would move the "
                         "object off its box.")
    if training:
        split = split.shuffle(_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    if not boxes:
        split = split.map(lambda image, label, *_: (image, label))
    if translate or flip:
        split = split.map(lambda image, label: (augment(image, translate, flip, seed), label))
    ds = split.batch(batch_size)
    ds = ds.map(lambda image, *rest: (tf.cast(image, tf.float32) / 255.0, *rest),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
