"""From a prepared captioning dataset to `tf.data`: splits, vocabulary, batches.

`load_splits` builds `emoji_scenes` once (`apps.common.data.prepare`, the
builder in `builder.py`) or reads the public COCO captions (Karpathy splits,
`--dataset=coco_captions`, through `apps.common.data.online_builder` on machines
with network access) and gives both in one format. `make_tokenizer` builds the
word vocabulary from training captions; `make_dataset` gives the teacher-forced
batches `model.fit` takes, and `evaluation_batches` the numpy batches that
scoring and plotting read.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from apps.captioning import builder as builder_lib
from apps.common import data as common_data
from apps.common import images as common_images
from apps.common import text as common_text

EMBEDDED = "emoji_scenes"
ONLINE = ("coco_captions",)
DATASETS = (EMBEDDED,) + ONLINE


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
        builder = common_data.prepare(builder_lib.EmojiScenes, root, config=config,
                                      **(builder_kwargs or {}))
        names_of = {"train": "train", "validation": "validation", "test": "test"}
    else:
        builder = common_data.online_builder(dataset, root)
        names_of = {"train": "train+restval", "validation": "val", "test": "test"}
    names = tf.constant(builder.info.features["objects"]["label"].names)

    def standard(example):
        captions = example["captions"]
        return {
            "image_bytes": example["image"],
            "captions": captions if dataset == EMBEDDED else captions["text"],
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


def make_dataset(split: tf.data.Dataset, tokenizer: common_text.Tokenizer, image_size: int,
                 batch_size: int, training: bool = False, seed: int = 0,
                 cache: bool = True, attribute_ids=None) -> tf.data.Dataset:
    """Batches `({"image", "tokens"}, targets)` of a split for teacher forcing.

    One caption of each image is drawn per pass: at random, the examples
    shuffled (seeded, reshuffled every pass), when `training`; else the first,
    in order. `tokens` are its ids without the last position (START ... ),
    `targets` the ids shifted by one ( ... END), both int32
    `(batch, max_length - 1)`, 0 at padding. `cache` keeps the encoded images
    in memory (a few kB per emoji scene). With `attribute_ids` (token ids of the
    attribute words, `semantic.attribute_ids`) the inputs also hold
    `attributes` float32 `(batch, A)`: 1 where any caption of the image mentions
    the attribute (`semantic.image_targets`).
    """
    if attribute_ids is not None:
        from apps.captioning import semantic  # semantic imports the model: only when needed

    ds = split.cache() if cache else split
    if training:
        ds = ds.shuffle(50_000, seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed) if training else tf.data.Dataset.from_tensors(
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
        inputs = {"image": image, "tokens": ids[:-1]}
        if attribute_ids is not None:
            inputs["attributes"] = semantic.image_targets(captions, tokenizer, attribute_ids)
        return inputs, ids[1:]

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
