"""From a prepared speech-commands dataset to tf.data.

`load_splits` prepares the dataset once (the embedded
`synthetic_speech_commands` through `apps.common.data.prepare`, with its
builder in `builder.py`; or Google Speech Commands through tfds, online) and
returns its `Splits`: per split, `(waveform float32 (16000,), label int32)`
examples, the class names and the split sizes. `make_dataset` batches one
split for training or evaluation: shuffling with a seed, speed
perturbation (`audio.perturb_speed`) and, if asked, real-world channel
augmentation (`channel.augment_batch`) when training. `Splits.examples` gives the
test clips with their speaker and word span, for evaluation.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tensorflow_datasets as tfds

from apps.common import data as common_data
from apps.keyword_spotting import audio, builder, channel
from apps.keyword_spotting.synth import CLIP_SAMPLES, SPLITS

DATASETS = ("synthetic_speech_commands", "speech_commands")
SPEED_PERTURBATION = (0.9, 1.1)
_SHUFFLE_BUFFER = 20000
# `Dataset.random`'s seed for the batches' speeds is the run's seed plus this, so that
# its stream is not the one that seeds the clips' channel augmentation.
_SPEED_STREAM = 0x9E3779B9


@dataclasses.dataclass
class Splits:
    """A prepared dataset: its builder, class names and split sizes.

    Attributes:
        builder: the prepared tfds builder.
        dataset: one of DATASETS.
        class_names: the label of each class index.
        sizes: examples per split.
    """

    builder: tfds.core.DatasetBuilder
    dataset: str
    class_names: list[str]
    sizes: dict

    @property
    def info(self) -> tfds.core.DatasetInfo:
        return self.builder.info

    def read(self, split: str, training: bool, seed: int = 42) -> tf.data.Dataset:
        """Unbatched `(waveform, label)` of `split` (files shuffled with `seed` when training)."""
        ds = self.builder.as_dataset(split=split, shuffle_files=training,
                                     read_config=tfds.ReadConfig(shuffle_seed=seed))
        ds = ds.map(_to_example, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.cache() if self.dataset == "synthetic_speech_commands" else ds

    def examples(self, split: str, batch_size: int = 64) -> tf.data.Dataset:
        """Batched dicts of `split` in file order: `waveform`, `label` and, for the synthetic
        corpus, `speaker`, `word`, `word_start`, `word_end` (samples; -1 for silence)."""

        def convert(features):
            waveform, label = _to_example(features)
            out = {"waveform": waveform, "label": label}
            for key in ("speaker", "word", "word_start", "word_end"):
                if key in features:
                    out[key] = features[key]
            return out

        ds = self.builder.as_dataset(split=split, shuffle_files=False)
        return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)


def fix_length(waveform: tf.Tensor, samples: int = CLIP_SAMPLES) -> tf.Tensor:
    """Pads (at the end) or crops a 1-D waveform to `samples`."""
    waveform = waveform[:samples]
    return tf.pad(waveform, [[0, samples - tf.shape(waveform)[0]]])


def _to_example(features):
    waveform = tf.cast(features["audio"], tf.float32) / 32768.0
    return fix_length(waveform), tf.cast(features["label"], tf.int32)


def prepare_corpus(data_dir: str | None = None, corpus="default"):
    """The prepared (built once, cached and verified) synthetic corpus builder.

    Args:
        data_dir: the tfds cache root (see `apps.common.data.data_dir`).
        corpus: a config name (`builder.CONFIG_NAMES`) or a `builder.SpeechCommandsConfig`.
    """
    return common_data.prepare(builder.SyntheticSpeechCommands, common_data.data_dir(data_dir),
                               config=corpus)


def load_splits(dataset: str = "synthetic_speech_commands", data_dir: str | None = None,
                corpus="default") -> Splits:
    """Prepares `dataset` (once) and returns its splits.

    Args:
        dataset: `synthetic_speech_commands` (embedded, built here) or
            `speech_commands` (Google Speech Commands v0.02 through tfds; online).
        data_dir: the tfds cache root (see `apps.common.data.data_dir`).
        corpus: the synthetic corpus' builder config (name or object), e.g. `quick`.
    """
    if dataset == "synthetic_speech_commands":
        ds_builder = prepare_corpus(data_dir, corpus)
    elif dataset == "speech_commands":
        ds_builder = common_data.online_builder("speech_commands", common_data.data_dir(data_dir))
    else:
        raise ValueError(f"dataset={dataset!r} is not known; use synthetic_speech_commands "
                         "(built here) or speech_commands (downloaded by tfds).")
    info = ds_builder.info
    return Splits(builder=ds_builder, dataset=dataset,
                  class_names=list(info.features["label"].names),
                  sizes={split: info.splits[split].num_examples for split in SPLITS})


def make_dataset(splits: Splits, split: str, batch_size: int, training: bool = False,
                 seed: int = 42,
                 speed_perturbation: tuple[float, ...] = SPEED_PERTURBATION,
                 channel_augment: float = 0.0, autotune: bool = False) -> tf.data.Dataset:
    """Batches of `(waveform (batch, 16000), label (batch,))` of `split`.

    Args:
        splits: from `load_splits`.
        split: `train`, `validation` or `test`.
        batch_size: examples per batch.
        training: shuffle (with `seed`, anew each epoch) and perturb the speed.
        seed: seeds the order of the files and of the examples, and the augmentations.
        speed_perturbation: `(low, high)`: every training batch is played at a random speed
            in this range (`audio.perturb_speed`), drawn from a seed per batch that is
            reproducible from `seed` and new each epoch; empty: off.
        channel_augment: the probability of each channel augmentation of every training
            clip (room, microphone, level and clipping, telephone line:
            `channel.augment_channel`), after the speed perturbation, with a seed per clip
            drawn from `seed` (anew each epoch); 0: off (the pipeline is then unchanged).
        autotune: let tf.data's autotuner choose the parallel maps' threads and the
            prefetch buffer (`tf.data.Options().autotune`). Off by default: on two cores,
            it settled on a slow configuration for whole epochs at random (an epoch of
            the augmented pipeline alone took 10.6-10.7 s in 8 of 14 epochs after the
            first, 7.2-7.6 s in the others; without it 7.3-7.8 s in all 12 after the
            first; README). Without it every `AUTOTUNE` parallelism is the number of
            cores.
    """
    ds = splits.read(split, training, seed)
    if training:
        ds = ds.shuffle(min(splits.sizes[split], _SHUFFLE_BUFFER), seed=seed,
                        reshuffle_each_iteration=True)
    augment = training and channel_augment > 0
    if augment:  # A seed (2 int64) per clip, reproducible from `seed`, new each epoch.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(lambda example, s: (*example, s))
    ds = ds.batch(batch_size)
    if training and speed_perturbation:
        low, high = speed_perturbation
        # A seed per batch, new each epoch (a random op inside the map, under the global
        # seed that training sets, drew the same speeds every epoch, in an order that
        # varied with the threads).
        speed_seeds = tf.data.Dataset.random(seed=seed + _SPEED_STREAM,
                                             rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, speed_seeds).map(
            lambda example, s: (audio.perturb_speed(example[0], low, high, seed=s),
                                *example[1:]),
            num_parallel_calls=tf.data.AUTOTUNE)
    if augment:
        ds = ds.map(lambda x, y, s: (channel.augment_batch(x, s, channel_augment), y),
                    num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    if not autotune:
        options = tf.data.Options()
        options.autotune.enabled = False
        ds = ds.with_options(options)
    return ds
