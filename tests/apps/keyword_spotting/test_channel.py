"""Channel augmentation (issue 18, item 2): room, microphone, level and clipping, telephone;
and its place in the training pipeline. Tiny inputs: the file runs in seconds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from apps.common import config as common_config
from apps.keyword_spotting import channel, pipeline, train
from tests.apps.keyword_spotting.conftest import clips

N = 16000
T = np.arange(N) / 16000


def _sine(freq, amplitude=0.5):
    return (amplitude * np.sin(2 * np.pi * freq * T)).astype("float32")


def _impulse():
    x = np.zeros(N, np.float32)
    x[0] = 1.0
    return x


def _db(a, b):
    """How much more energy `a` has than `b`, in dB."""
    return 10 * np.log10(np.sum(np.square(np.abs(a))) / max(np.sum(np.square(np.abs(b))), 1e-30))


AUGMENTATIONS = {
    "reverberate": channel.reverberate,
    "microphone_eq": channel.microphone_eq,
    "level_and_clip": lambda x, s: channel.level_and_clip(x, s, clip_probability=1.0,
                                                          gain_db=(0.0, 12.0)),
    "telephone": channel.telephone,
    "augment_channel": lambda x, s: channel.augment_channel(x, s, 1.0),
}


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_shape_range_and_seeding(name):
    fn = AUGMENTATIONS[name]
    x = clips(1, seed=3)[0] * 3.0  # Peak near 1.
    x /= np.abs(x).max()
    a = fn(x, tf.constant([1, 2])).numpy()
    assert a.shape == (N,) and a.dtype == np.float32
    assert np.all(np.isfinite(a)) and np.abs(a).max() <= 1.0
    np.testing.assert_array_equal(a, fn(x, tf.constant([1, 2], tf.int64)).numpy())
    assert not np.allclose(a, fn(x, tf.constant([1, 3])).numpy(), atol=1e-4)
    assert not np.allclose(a, x, atol=1e-4)


def test_random_draws_are_per_clip_and_well_spread():
    """The counter-based draws: a row's numbers depend on its own seed only (every 32-bit
    word of it), and have the moments they should."""
    seeds = tf.constant([[1, 2], [1, 2 + 2**32], [2**32 + 1, 2], [-1, 2], [1, 3]], tf.int64)
    u = channel._uniform(seeds, 1000, 2.0, 4.0).numpy()
    np.testing.assert_array_equal(channel._uniform(seeds[:1], 1000, 2.0, 4.0).numpy()[0], u[0])
    for i in range(1, 5):  # Any word of the seed changes the draws.
        assert np.mean(u[i] == u[0]) < 0.01
    many = channel._uniform(tf.constant([[i, 0] for i in range(200)], tf.int64), 500,
                            0.0, 1.0).numpy()
    assert many.min() >= 0.0 and many.max() < 1.0
    assert abs(many.mean() - 0.5) < 0.01 and abs(many.var() - 1 / 12) < 0.005
    assert abs(np.corrcoef(many[:, :-1].ravel(), many[:, 1:].ravel())[0, 1]) < 0.01
    z = channel._normal(tf.constant([[i, 5] for i in range(50)], tf.int64), 4000).numpy()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert abs(np.mean(z ** 4) - 3.0) < 0.1 and np.all(np.isfinite(z))
    children = channel.split_seeds(seeds, 3).numpy()
    assert children.shape == (5, 3, 2) and len({tuple(c) for c in children[0]}) == 3


def test_seed_must_be_integers():
    with pytest.raises(ValueError, match="seed"):
        channel.microphone_eq(_sine(1000), tf.constant([1.0, 2.0]))


@pytest.mark.parametrize("law", ["mu", "a", None])
def test_telephone_keeps_the_voice_band_and_drops_the_rest(law):
    seed = tf.constant([4, 5])
    assert _db(_sine(5000), channel.telephone(_sine(5000), seed, law=law).numpy()) >= 30.0
    assert abs(_db(_sine(1000), channel.telephone(_sine(1000), seed, law=law).numpy())) < 1.0
    assert _db(_sine(100), channel.telephone(_sine(100), seed, law=law).numpy()) >= 30.0


@pytest.mark.parametrize("law", ["mu", "a"])
def test_g711_round_trip(law):
    x = _sine(200, 0.5) * np.linspace(0.1, 1.0, N, dtype=np.float32)  # Smooth, many levels.
    y = channel.g711(x, law).numpy()
    assert _db(x, x - y) > 30.0
    assert len(np.unique(y)) <= 256
    assert len(np.unique(channel.g711(np.linspace(-1, 1, 100000), law).numpy())) <= 256
    with pytest.raises(ValueError, match="law"):
        channel.g711(x, "b")


def test_reverb_of_an_impulse_is_the_decaying_rir():
    seed = tf.constant([7, 8], tf.int64)
    out = channel.reverberate(_impulse(), seed, wet=(1.0, 1.0)).numpy()
    rir_seed = channel.split_seeds(seed[tf.newaxis], 2)[0, 0]
    rir = channel.room_impulse_response(rir_seed).numpy()
    np.testing.assert_allclose(out, rir[:N], atol=1e-5)
    assert np.argmax(np.abs(out)) < 16  # The direct path leads (within 1 ms).
    energy = [np.sum(np.square(out[i:i + 1600])) for i in range(1, 6401, 1600)]
    assert np.all(np.diff(energy) < 0), energy
    assert energy[-1] > 0.0  # There is a tail.


def test_rt60_sets_the_decay():
    seed = tf.constant([1, 1])
    short = channel.room_impulse_response(seed, rt60=(0.2, 0.2)).numpy()
    long = channel.room_impulse_response(seed, rt60=(0.8, 0.8)).numpy()
    late = slice(4000, 8000)
    assert np.sum(np.square(long[late])) > 100 * np.sum(np.square(short[late]))


def test_reverb_keeps_the_peak():
    x = _sine(440, 0.7)
    out = channel.reverberate(x, tf.constant([2, 2])).numpy()
    assert abs(np.abs(out).max() - 0.7) < 1e-5


def test_eq_changes_the_shape_and_flat_eq_is_the_identity():
    x = np.random.default_rng(0).uniform(-0.5, 0.5, N).astype("float32")
    np.testing.assert_allclose(channel.apply_band_gains(x, tf.zeros([6])).numpy(), x,
                               atol=1e-5)
    np.testing.assert_allclose(channel.microphone_eq(x, tf.constant([1, 2]), 0.0).numpy(), x,
                               atol=1e-5)
    y = channel.microphone_eq(x, tf.constant([1, 2])).numpy()
    bands = [(100, 300), (500, 1000), (1500, 2500), (4000, 7000)]  # Hz = bins here.
    ratios = [_db(np.fft.rfft(y)[a:b], np.fft.rfft(x)[a:b]) for a, b in bands]
    assert max(ratios) - min(ratios) > 3.0, ratios  # Not just a gain: a new shape.
    boost = channel.apply_band_gains(x, [6.0] * 4).numpy()  # +6 dB, peak then limited to 1.
    assert np.abs(boost).max() <= 1.0
    np.testing.assert_allclose(boost / np.abs(boost).max(), x / np.abs(x).max(), atol=1e-4)


def test_clipping_grows_as_the_threshold_lowers():
    x = _sine(300, 0.5)

    def clipped_share(level):
        y = channel.level_and_clip(x, tf.constant([3, 4]), gain_db=(0.0, 0.0),
                                   clip_probability=1.0, clip_level=(level, level)).numpy()
        assert abs(np.abs(y).max() - 0.5) < 1e-5  # Back to the original peak.
        return np.mean(np.abs(y) >= np.abs(y).max() - 1e-6)

    shares = [clipped_share(level) for level in (0.9, 0.6, 0.3)]
    assert shares[0] < shares[1] < shares[2], shares
    untouched = channel.level_and_clip(x, tf.constant([3, 4]), gain_db=(0.0, 0.0),
                                       clip_probability=0.0).numpy()
    np.testing.assert_allclose(untouched, x, atol=1e-6)
    loud = channel.level_and_clip(x, tf.constant([3, 4]), gain_db=(12.0, 12.0),
                                  clip_probability=0.0).numpy()
    assert np.abs(loud).max() == 1.0  # Past full scale: the converter saturates.


def test_augment_channel_probabilities():
    x = clips(1)[0]
    seed = tf.constant([9, 9])
    np.testing.assert_array_equal(channel.augment_channel(x, seed, 0.0).numpy(), x)
    only_eq = channel.augment_channel(x, seed, {"microphone": 1.0}).numpy()
    eq_seed = channel.split_seeds(tf.constant([[9, 9]], tf.int64), 8)[0, 3]
    np.testing.assert_allclose(only_eq, channel.microphone_eq(x, eq_seed).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="echo"):
        channel.augment_channel(x, seed, {"echo": 1.0})
    with pytest.raises(ValueError, match="probability"):
        channel.augment_channel(x, seed, 1.5)


def test_augment_batch_in_a_graph():
    x = tf.constant(clips(3))
    seeds = tf.constant([[1, 2], [1, 2], [5, 6]], tf.int64)
    fn = tf.function(lambda w, s: channel.augment_batch(w, s, 0.7),
                     input_signature=[tf.TensorSpec([None, N]), tf.TensorSpec([None, 2], tf.int64)])
    out = fn(x, seeds).numpy()
    assert out.shape == (3, N) and np.abs(out).max() <= 1.0
    np.testing.assert_allclose(out[0], channel.augment_channel(x[0], seeds[0], 0.7), atol=1e-5)
    np.testing.assert_array_equal(out, fn(x, seeds).numpy())


def test_augment_batch_gives_each_clip_what_it_gets_alone():
    """The batch is processed at once (each augmentation on the clips that drew it), and
    every clip comes out as `augment_channel` makes it alone, chosen or not."""
    x = tf.constant(clips(8, seed=4))
    seeds = tf.constant([[i, 7 * i + 1] for i in range(8)], tf.int64)
    out = channel.augment_batch(x, seeds, 0.5).numpy()
    alone = np.stack([channel.augment_channel(x[i], seeds[i], 0.5).numpy() for i in range(8)])
    np.testing.assert_allclose(out, alone, atol=1e-5)
    changed = [not np.allclose(out[i], x[i]) for i in range(8)]
    assert any(changed) and not all(changed)  # Some clips drew nothing at all.
    # No clip draws it (the batched FFTs then see an empty batch): all unchanged.
    np.testing.assert_array_equal(channel.augment_batch(x, seeds, {"reverb": 1e-9}), x)


@dataclasses.dataclass
class _FixedSplits(pipeline.Splits):
    """`Splits` over clips held in memory (no corpus to build)."""

    waveforms: np.ndarray = None
    labels: np.ndarray = None

    def read(self, split, training, seed=42):
        return tf.data.Dataset.from_tensor_slices((self.waveforms, self.labels))


def _splits(count=12):
    return _FixedSplits(builder=None, dataset="synthetic_speech_commands", class_names=["a"],
                        sizes={"train": count}, waveforms=clips(count, seed=1),
                        labels=np.arange(count, dtype=np.int32))


def _epoch(ds):
    batches = list(ds)
    return (np.concatenate([x.numpy() for x, _ in batches]),
            np.concatenate([y.numpy() for _, y in batches]))


def test_pipeline_without_channel_augmentation_is_unchanged():
    splits = _splits()
    kwargs = dict(training=True, seed=5, speed_perturbation=())
    today = splits.read("train", True, 5).shuffle(12, seed=5, reshuffle_each_iteration=True)
    want_x, want_y = _epoch(today.batch(4))
    got_x, got_y = _epoch(pipeline.make_dataset(splits, "train", 4, channel_augment=0.0,
                                                **kwargs))
    np.testing.assert_array_equal(got_x, want_x)
    np.testing.assert_array_equal(got_y, want_y)
    np.testing.assert_array_equal(_epoch(pipeline.make_dataset(splits, "train", 4, **kwargs))[0],
                                  want_x)


def test_pipeline_with_channel_augmentation():
    splits = _splits()
    plain = pipeline.make_dataset(splits, "train", 4, training=True, seed=5,
                                  speed_perturbation=())
    augmented = pipeline.make_dataset(splits, "train", 4, training=True, seed=5,
                                      speed_perturbation=(), channel_augment=0.5)
    assert augmented.element_spec == plain.element_spec
    plain_x, plain_y = _epoch(plain)
    x, y = _epoch(augmented)
    np.testing.assert_array_equal(y, plain_y)  # Same order, labels untouched.
    assert x.shape == plain_x.shape and x.dtype == np.float32
    assert np.all(np.isfinite(x)) and np.abs(x).max() <= 1.0
    assert not np.allclose(x, plain_x, atol=1e-4)
    again = pipeline.make_dataset(splits, "train", 4, training=True, seed=5,
                                  speed_perturbation=(), channel_augment=0.5)
    np.testing.assert_array_equal(_epoch(again)[0], x)  # A run is reproducible.
    # With speed perturbation the shapes stay (batch, 16000) too.
    sped = pipeline.make_dataset(splits, "train", 4, training=True, seed=5,
                                 channel_augment=1.0)
    waveform, label = next(iter(sped))
    assert waveform.shape == (4, N) and label.dtype == tf.int32
    # Evaluation splits are never augmented.
    evaluation = pipeline.make_dataset(splits, "train", 4, channel_augment=1.0)
    np.testing.assert_array_equal(_epoch(evaluation)[0], clips(12, seed=1))


def test_train_config_field():
    assert train.TrainConfig().channel_augment == 0.5  # The app's default.
    config = common_config.apply_overrides(train.TrainConfig(), ["channel_augment=0.5"])
    assert config.channel_augment == 0.5
    with pytest.raises(flags.ValidationError, match="channel_augment"):
        common_config.apply_overrides(train.TrainConfig(), ["channel_augment=1.5"])
