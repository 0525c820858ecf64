"""From splits to tf.data: the vocabulary and the teacher-forced batches of `make_dataset`."""

import io

import numpy as np
import tensorflow as tf
from PIL import Image

from apps.captioning import pipeline
from apps.common import text as common_text


def test_make_dataset_shifts_tokens_and_draws_captions():
    buffer = io.BytesIO()
    Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(buffer, format="PNG")
    captions = ["the dog above the cat", "the cat below the dog", "the dog at the top and the "
                "cat at the bottom"]
    ds = tf.data.Dataset.from_tensors({
        "image_bytes": tf.constant(buffer.getvalue()),
        "captions": tf.constant(captions),
        "boxes": tf.zeros([2, 4]),
        "box_names": tf.constant(["dog", "cat"]),
    }).repeat(24)
    tokenizer = pipeline.make_tokenizer(captions, 50, 16)
    batch = next(iter(pipeline.make_dataset(ds, tokenizer, 32, 24, training=True, seed=3)))
    inputs, targets = batch
    assert inputs["image"].shape == (24, 32, 32, 3)
    np.testing.assert_allclose(inputs["image"].numpy(), 128 / 255, atol=1e-2)
    tokens, targets = inputs["tokens"].numpy(), targets.numpy()
    assert tokens.shape == targets.shape == (24, 15)
    assert np.all(tokens[:, 0] == tokenizer.start_id)
    np.testing.assert_array_equal(tokens[:, 1:], targets[:, :-1])
    seen = {tokenizer.detokenize(tf.constant(row[None])).numpy()[0].decode() for row in tokens}
    assert seen == set(captions)  # Each caption gets drawn over a few dozen draws.
    assert tokenizer.vocabulary[:4] == [common_text.PAD, common_text.UNK, common_text.START,
                                        common_text.END]
    val = next(iter(pipeline.make_dataset(ds, tokenizer, 32, 24)))
    first = tokenizer.detokenize(val[0]["tokens"][:1]).numpy()[0].decode()
    assert first == captions[0]
