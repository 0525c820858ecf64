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


def _tone_splits(clips: int):
    """A stand-in for `Splits` whose every training clip is the same 1 kHz tone, so that a
    batch's peak frequency tells the speed it was played at."""
    import types

    t = np.arange(16000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    waveforms = np.tile(tone, (clips, 1))
    labels = np.zeros(clips, np.int32)
    return types.SimpleNamespace(
        read=lambda split, training, seed: tf.data.Dataset.from_tensor_slices((waveforms,
                                                                              labels)),
        sizes={"train": clips}, class_names=list(synth.CLASSES))


def _peaks(dataset) -> list[float]:
    """The peak frequency (Hz) of the first clip of each batch of one epoch."""
    return [float(np.argmax(np.abs(np.fft.rfft(x.numpy()[0])))) for x, _ in dataset]


def test_speeds_are_drawn_anew_each_epoch_and_follow_the_seed():
    import keras

    # As training sets it: with a global seed, a random op inside the map drew the same
    # speeds every epoch (in an order that varied with the threads).
    keras.utils.set_random_seed(0)
    splits = _tone_splits(16)

    def dataset(seed):
        return pipeline.make_dataset(splits, "train", 2, training=True, seed=seed,
                                     speed_perturbation=(0.7, 1.3))

    ds = dataset(3)
    first, second = _peaks(ds), _peaks(ds)
    assert len(first) == 8 and 700 <= min(first) and max(first) <= 1300
    assert len(set(first)) > 1  # Each batch its own speed...
    assert sorted(first) != sorted(second)  # ...and each epoch anew.
    again = dataset(3)
    assert _peaks(again) == first and _peaks(again) == second  # A run is reproducible.
    assert _peaks(dataset(4)) != first


def test_autotune_is_off_unless_asked():
    splits = _tone_splits(4)
    assert pipeline.make_dataset(splits, "train", 2).options().autotune.enabled is False
    assert pipeline.make_dataset(splits, "train", 2, training=True,
                                 autotune=True).options().autotune.enabled is not False


def test_data_autotune_must_be_a_bool():
    from apps.keyword_spotting import train

    assert train.TrainConfig(data_autotune=True).data_autotune is True
    with pytest.raises(ValueError, match="data_autotune"):
        train.TrainConfig(data_autotune="yes")
