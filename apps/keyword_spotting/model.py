"""Keyword-spotting models: a waveform in, class probabilities and attention over time out.

Every variant starts with the same front end, inside the model so that serving
needs nothing but the waveform:

    waveform (batch, 16000) -> log-mel spectrogram (batch, frames, mel)
    -> per-utterance normalization (zero mean, unit variance over the clip)
    -> frequency warp (vocal tract length perturbation; training only)
    -> SpecAugment (time and frequency masks; training only)

Variants (`ModelConfig.variant`):

- `attention_rnn` (de Andrade et al. 2018): two convolutions along time over the
  spectrogram, two bidirectional LSTMs, a query projected from the middle
  frame's state, dot-product attention of that query over all frames
  (`keras_attention.layers.DotProductAttention`), dense classifier. The
  attention weights say when the word was heard.
- `kwt` (Berg et al. 2021, the Keyword Transformer): every spectrogram frame is a
  patch (a token), linearly embedded, with a learned class token and learned
  position embeddings, through `TransformerEncoderBlock`s; the class token
  classifies. Its attention over time is the last block's class-token
  attention over the frames, averaged over heads.
- `cnn`: the same front end, a small convolutional network with global average
  pooling and no attention: the baseline. Its "attention" is uniform (global
  average pooling weighs every frame alike).
"""

from __future__ import annotations

import dataclasses

import keras
from keras import ops

from keras_attention.layers import DotProductAttention, PositionEmbedding, TransformerEncoderBlock

VARIANTS = ("attention_rnn", "kwt", "cnn")
_PACKAGE = "keyword_spotting"


@dataclasses.dataclass
class ModelConfig:
    """What to build.

    Attributes:
        variant: one of VARIANTS.
        num_classes: number of output classes.
        clip_samples: samples per clip (1 s at `sample_rate`).
        sample_rate: Hz.
        num_mel_bins, fft_length, frame_length, frame_step, min_freq, max_freq:
            the log-mel front end (frames of 30 ms every 20 ms by default).
        frequency_warp: largest relative stretch of the frequency axis while training
            (vocal tract length perturbation); 0 turns it off.
        spec_augment: time/frequency masking while training.
        dropout: dropout in the classifier (and the transformer).
        rnn_units: LSTM units per direction (attention_rnn).
        conv_filters: filters of the first convolution (attention_rnn).
        kwt_dim, kwt_depth, kwt_heads, kwt_mlp_dim, kwt_norm_first: transformer size (kwt).
        cnn_filters: filters of the three convolution stages (cnn).
        seed: seed of SpecAugment's random masks.
    """

    variant: str = "attention_rnn"
    num_classes: int = 22
    clip_samples: int = 16000
    sample_rate: int = 16000
    num_mel_bins: int = 64
    fft_length: int = 512
    frame_length: int = 480
    frame_step: int = 320
    min_freq: float = 20.0
    max_freq: float = 7600.0
    frequency_warp: float = 0.1
    spec_augment: bool = True
    dropout: float = 0.1
    rnn_units: int = 64
    conv_filters: int = 10
    kwt_dim: int = 64
    kwt_depth: int = 4
    kwt_heads: int = 4
    kwt_mlp_dim: int = 128
    kwt_norm_first: bool = True
    cnn_filters: tuple = (16, 32, 64)
    seed: int = 42

    @property
    def frames(self) -> int:
        """Spectrogram frames per clip (centered STFT)."""
        return 1 + self.clip_samples // self.frame_step


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogMelSpectrogram(keras.layers.Layer):
    """`(batch, samples)` waveform -> `(batch, frames, num_mel_bins)` natural-log mel power.

    Uses `keras.layers.MelSpectrogram` for the STFT and mel filters, without its
    decibel scaling (whose `top_db` floor is taken over the whole batch, which
    would make one clip's features depend on the others in its batch).
    """

    def __init__(self, sample_rate=16000, fft_length=512, frame_length=480, frame_step=320,
                 num_mel_bins=40, min_freq=20.0, max_freq=7600.0, floor=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate = sample_rate
        self.fft_length = fft_length
        self.frame_length = frame_length
        self.frame_step = frame_step
        self.num_mel_bins = num_mel_bins
        self.min_freq = min_freq
        self.max_freq = max_freq
        self.floor = floor

    def build(self, input_shape):
        self.mel = keras.layers.MelSpectrogram(
            fft_length=self.fft_length, sequence_stride=self.frame_step,
            sequence_length=self.frame_length, sampling_rate=self.sample_rate,
            num_mel_bins=self.num_mel_bins, min_freq=self.min_freq, max_freq=self.max_freq,
            power_to_db=False, name="mel",
        )

    def call(self, waveform):
        power = self.mel(ops.cast(waveform, "float32"))  # (batch, mel, frames)
        return ops.transpose(ops.log(power + self.floor), (0, 2, 1))

    def compute_output_shape(self, input_shape):
        frames = None if input_shape[1] is None else 1 + input_shape[1] // self.frame_step
        return (input_shape[0], frames, self.num_mel_bins)

    def get_config(self):
        config = super().get_config()
        config.update(sample_rate=self.sample_rate, fft_length=self.fft_length,
                      frame_length=self.frame_length, frame_step=self.frame_step,
                      num_mel_bins=self.num_mel_bins, min_freq=self.min_freq,
                      max_freq=self.max_freq, floor=self.floor)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UtteranceNormalization(keras.layers.Layer):
    """Zero mean, unit variance over each utterance's whole spectrogram.

    `(x - mean) / sqrt(var + epsilon)` with the statistics of each example over
    frames and mel bins: the input level (gain) does not matter, and a silent
    clip (a constant spectrogram) gives zeros.
    """

    def __init__(self, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        var = ops.var(x, axis=(1, 2), keepdims=True)
        return (x - mean) / ops.sqrt(var + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpecAugment(keras.layers.Layer):
    """SpecAugment's masks (Park et al. 2019): zero random bands of mel bins and of frames.

    Each of `freq_masks` masks covers `f ~ U{0..freq_width}` consecutive mel bins
    at a random start, each of `time_masks` covers `t ~ U{0..time_width}` frames;
    masked values become 0 (the mean after normalization). Identity outside training.
    """

    def __init__(self, freq_masks=2, freq_width=6, time_masks=2, time_width=5, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.freq_masks = freq_masks
        self.freq_width = freq_width
        self.time_masks = time_masks
        self.time_width = time_width
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _bands(self, batch, size, count, width):
        positions = ops.arange(size)[None, :]
        masked = ops.zeros((batch, size), dtype="bool")
        for _ in range(count):
            w = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator) * (width + 1))
            start = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator)
                              * (ops.cast(size, "float32") - w + 1.0))
            pos = ops.cast(positions, "float32")
            masked = ops.logical_or(masked, ops.logical_and(pos >= start, pos < start + w))
        return masked

    def call(self, x, training=None):
        if not training:
            return x
        shape = ops.shape(x)
        batch, frames, bins = shape[0], shape[1], shape[2]
        freq = self._bands(batch, bins, self.freq_masks, self.freq_width)
        time = self._bands(batch, frames, self.time_masks, self.time_width)
        masked = ops.logical_or(freq[:, None, :], time[:, :, None])
        return ops.where(masked, ops.zeros_like(x), x)

    def get_config(self):
        config = super().get_config()
        config.update(freq_masks=self.freq_masks, freq_width=self.freq_width,
                      time_masks=self.time_masks, time_width=self.time_width, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrequencyWarp(keras.layers.Layer):
    """Vocal tract length perturbation (Jaitly & Hinton 2013) on a `(batch, frames, bins)`
    spectrogram: each example's frequency axis is stretched by its own random factor
    `alpha ~ U(1 - max_warp, 1 + max_warp)` (bin k takes the value at k / alpha, linearly
    interpolated), as a longer or shorter vocal tract would shift the formants. Identity
    outside training.
    """

    def __init__(self, max_warp=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.max_warp = max_warp
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or not self.max_warp:
            return x
        shape = ops.shape(x)
        batch, frames, bins = shape[0], shape[1], shape[2]
        alpha = 1.0 + keras.random.uniform((batch, 1), -self.max_warp, self.max_warp,
                                           seed=self.seed_generator)
        last = ops.cast(bins - 1, "float32")
        source = ops.clip(ops.cast(ops.arange(bins), "float32")[None, :] / alpha, 0.0, last)
        low = ops.floor(source)
        frac = (source - low)[:, None, :]
        low = ops.cast(low, "int32")
        high = ops.minimum(low + 1, bins - 1)
        gather_shape = (batch, frames, bins)
        x_low = ops.take_along_axis(x, ops.broadcast_to(low[:, None, :], gather_shape), axis=2)
        x_high = ops.take_along_axis(x, ops.broadcast_to(high[:, None, :], gather_shape), axis=2)
        return x_low * (1.0 - frac) + x_high * frac

    def get_config(self):
        return {**super().get_config(), "max_warp": self.max_warp, "seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SelectStep(keras.layers.Layer):
    """`(batch, T, dim)` -> `(batch, dim)`: the step at `index` (negative counts from the end)."""

    def __init__(self, index, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    def call(self, x):
        return x[:, self.index]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClassToken(keras.layers.Layer):
    """Prepends a learned token: `(batch, T, dim)` -> `(batch, 1 + T, dim)` (Dosovitskiy et al.)."""

    def build(self, input_shape):
        self.token = self.add_weight(name="token", shape=(1, 1, input_shape[-1]),
                                     initializer="zeros")

    def call(self, x):
        token = ops.broadcast_to(ops.cast(self.token, x.dtype), (ops.shape(x)[0], 1, x.shape[-1]))
        return ops.concatenate([token, x], axis=1)

    def compute_output_shape(self, input_shape):
        steps = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], steps, input_shape[2])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ClassTokenAttention(keras.layers.Layer):
    """Scores `(batch, heads, 1 + T, 1 + T)` -> `(batch, T)`: the class token's attention
    over the other tokens, averaged over heads and renormalized to sum to 1."""

    def call(self, scores):
        weights = ops.mean(scores[:, :, 0, 1:], axis=1)
        return weights / (ops.sum(weights, axis=-1, keepdims=True) + 1e-9)

    def compute_output_shape(self, input_shape):
        steps = None if input_shape[-1] is None else input_shape[-1] - 1
        return (input_shape[0], steps)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UniformWeights(keras.layers.Layer):
    """`(batch, T, ...)` -> `(batch, T)` all `1/T`: what average pooling attends to."""

    def call(self, x):
        steps = ops.shape(x)[1]
        return ops.ones((ops.shape(x)[0], steps), dtype="float32") / ops.cast(steps, "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1])


@dataclasses.dataclass
class KeywordSpotter:
    """Two views of one set of weights.

    Attributes:
        classifier: waveform `(batch, samples)` -> probabilities `(batch, classes)`;
            what `fit` trains.
        explainer: waveform -> `{"probabilities", "attention_weights" (batch, frames)}`;
            what export and plots use.
        config: the ModelConfig.
    """

    classifier: keras.Model
    explainer: keras.Model
    config: ModelConfig


def _front_end(waveform, config: ModelConfig):
    x = LogMelSpectrogram(
        sample_rate=config.sample_rate, fft_length=config.fft_length,
        frame_length=config.frame_length, frame_step=config.frame_step,
        num_mel_bins=config.num_mel_bins, min_freq=config.min_freq, max_freq=config.max_freq,
        name="log_mel",
    )(waveform)
    x = UtteranceNormalization(name="normalize")(x)
    if config.frequency_warp:
        x = FrequencyWarp(config.frequency_warp, seed=config.seed, name="frequency_warp")(x)
    if config.spec_augment:
        x = SpecAugment(seed=config.seed + 1, name="spec_augment")(x)
    return x


def _attention_rnn(x, config: ModelConfig):
    frames, bins = config.frames, config.num_mel_bins
    x = keras.layers.Reshape((frames, bins, 1), name="add_channel")(x)
    x = keras.layers.Conv2D(config.conv_filters, (5, 1), padding="same", activation="relu",
                            name="conv1")(x)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Conv2D(1, (5, 1), padding="same", name="conv2")(x)  # Linear: no dead ReLU.
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.Reshape((frames, bins), name="drop_channel")(x)
    for i in (1, 2):
        x = keras.layers.Bidirectional(
            keras.layers.LSTM(config.rnn_units, return_sequences=True), name=f"bilstm{i}"
        )(x)
    middle = SelectStep(frames // 2, name="middle_frame")(x)
    query = keras.layers.Dense(2 * config.rnn_units, name="query")(middle)
    context, weights = DotProductAttention(name="attention")(
        query, x, return_attention_scores=True
    )
    h = keras.layers.Dense(64, activation="relu", name="dense1")(context)
    h = keras.layers.Dropout(config.dropout, name="dropout")(h)
    h = keras.layers.Dense(32, name="dense2")(h)
    return h, weights


def _kwt(x, config: ModelConfig):
    x = keras.layers.Dense(config.kwt_dim, name="patch_embedding")(x)
    x = ClassToken(name="class_token")(x)
    positions = PositionEmbedding(config.frames + 1, name="position_embedding")(x)
    x = keras.layers.Add(name="add_positions")([x, positions])
    scores = None
    for i in range(config.kwt_depth):
        x, scores = TransformerEncoderBlock(
            num_heads=config.kwt_heads, intermediate_dim=config.kwt_mlp_dim,
            dropout=config.dropout, activation="gelu", norm_first=config.kwt_norm_first,
            name=f"encoder{i}",
        )(x, return_attention_scores=True)
    if config.kwt_norm_first:
        x = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    h = SelectStep(0, name="class_output")(x)
    return h, ClassTokenAttention(name="class_attention")(scores)


def _cnn(x, config: ModelConfig):
    x = keras.layers.Reshape((config.frames, config.num_mel_bins, 1), name="add_channel")(x)
    weights = UniformWeights(name="uniform_weights")(x)
    for i, filters in enumerate(config.cnn_filters):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i}")(x)
        if i < len(config.cnn_filters) - 1:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    h = keras.layers.GlobalAveragePooling2D(name="average")(x)
    h = keras.layers.Dropout(config.dropout, name="dropout")(h)
    return h, weights


def build(config: ModelConfig) -> KeywordSpotter:
    """Builds the variant named by `config.variant` (see the module docstring)."""
    if config.variant not in VARIANTS:
        raise ValueError(f"variant={config.variant!r} is not one of {VARIANTS}.")
    waveform = keras.Input((config.clip_samples,), name="waveform")
    x = _front_end(waveform, config)
    body = {"attention_rnn": _attention_rnn, "kwt": _kwt, "cnn": _cnn}[config.variant]
    h, weights = body(x, config)
    probabilities = keras.layers.Dense(config.num_classes, activation="softmax",
                                       name="probabilities")(h)
    classifier = keras.Model(waveform, probabilities, name=f"kws_{config.variant}")
    explainer = keras.Model(
        waveform, {"probabilities": probabilities, "attention_weights": weights},
        name=f"kws_{config.variant}_explainer",
    )
    return KeywordSpotter(classifier=classifier, explainer=explainer, config=config)


def compile_for_training(model: keras.Model, learning_rate=2e-3, steps=None) -> None:
    """Adam (cosine decay over `steps` when given) and sparse cross-entropy."""
    schedule = learning_rate
    if steps:
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate * 0.1, decay_steps=steps, warmup_target=learning_rate,
            warmup_steps=max(1, steps // 20),
        )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
