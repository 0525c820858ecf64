"""The input pipeline: the prepared corpus as batches of waveforms and labels."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from apps.keyword_spotting import pipeline, synth


def test_input_pipeline(tiny_corpus):
    root, config = tiny_corpus
    splits = pipeline.load_splits(data_dir=root, corpus=config)
    assert splits.class_names == list(synth.CLASSES)
    assert splits.sizes == {"train": 46, "validation": 22, "test": 22}
    train = pipeline.make_dataset(splits, "train", 8, training=True, seed=1)
    waveform, label = next(iter(train))
    assert waveform.shape == (8, 16000) and waveform.dtype.name == "float32"
    assert label.dtype.name == "int32"
    assert np.abs(waveform.numpy()).max() <= 1.0
    test = pipeline.make_dataset(splits, "test", 8)
    labels = np.concatenate([y.numpy() for _, y in test])
    again = np.concatenate([y.numpy() for _, y in test])
    np.testing.assert_array_equal(labels, again)  # Evaluation order is the file order.
    assert labels.size == 22
    details = next(iter(splits.examples("test", 22)))
    assert set(details) >= {"waveform", "label", "speaker", "word_start", "word_end"}
    assert details["waveform"].shape == (22, 16000)
    np.testing.assert_array_equal(details["label"].numpy(), labels)


def test_training_order_follows_the_seed(tiny_corpus):
    root, config = tiny_corpus
    splits = pipeline.load_splits(data_dir=root, corpus=config)

    def order(seed):
        ds = pipeline.make_dataset(splits, "train", 46, training=True, seed=seed,
                                   speed_perturbation=())
        return next(iter(ds))[1].numpy()

    np.testing.assert_array_equal(order(3), order(3))
    assert not np.array_equal(order(3), order(4))


def test_fix_length_pads_or_crops():
    assert pipeline.fix_length(tf.ones([100]), 160).numpy().tolist() == [1.0] * 100 + [0.0] * 60
    assert pipeline.fix_length(tf.ones([200]), 160).shape == (160,)


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="speech_commands"):
        pipeline.load_splits("librispeech")
