"""Keyword-spotting models: a waveform in, class probabilities and attention over time out.

Every variant but `speech_embedding` starts with the same front end, inside the
model so that serving needs nothing but the waveform:

    waveform (batch, 16000) -> log-mel spectrogram (batch, frames, mel)
    -> [cepstral smoothing: the spectral envelope only; `cepstral_keep`, off by default]
    -> per-utterance normalization (zero mean, unit variance over the clip; or,
       `bin_mean_normalization`, zero mean per mel bin: the fixed channel removed)
    -> [time stretch (speaking rate); `time_stretch`, training only, off by default]
    -> frequency warp (vocal tract length perturbation; training only)
    -> SpecAugment (time and frequency masks; training only)

(those layers are in `features.py`).

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
- `speech_embedding` (Lin et al. 2020): no front end of its own. The speech
  embedding pretrained on real speech (`speech_embedding.py`: its log-mel front
  end and network, fixed) turns the clip into 96-dimensional vectors, one per
  775 ms window every `embedding_stride` x 10 ms (6 for 1 s at stride 4); a
  small head learns the keywords: a dense layer, a bidirectional GRU over the
  windows and attention pooling (`keras_attention.layers.AttentionPooling`),
  whose weights over the windows say when the word was heard. Only the head
  trains, on features computed once (`train.fit_embedding_head`); with
  `embedding_heads` (2 by default) several such heads, each with its own
  initial weights, answer with the mean of their probabilities and attention.

`product_of_experts` joins two trained explainers into one: the normalized
geometric mean of their probabilities, the attention of the first.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import keras
from keras import ops

from apps.keyword_spotting import features, speech_embedding
from keras_attention import _validation
from keras_attention.layers import (
    AttentionPooling,
    DotProductAttention,
    PositionEmbedding,
    TransformerEncoderBlock,
)

VARIANTS = ("attention_rnn", "kwt", "cnn", "speech_embedding")
_PACKAGE = "keyword_spotting"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What to build; every field is checked on construction (a ValueError names it).

    Attributes:
        variant: one of VARIANTS.
        num_classes: number of output classes (`train.run` sets it from the dataset).
        clip_samples: samples per clip (1 s at `sample_rate`).
        sample_rate: Hz.
        num_mel_bins, fft_length, frame_length, frame_step, min_freq, max_freq:
            the log-mel front end (frames of 30 ms every 20 ms by default).
        cepstral_keep: keep only each frame's spectral envelope, its first `cepstral_keep`
            cepstral coefficients (`features.CepstralSmoothing`); 0: the full log-mel.
        bin_mean_normalization: subtract each mel bin's mean over the clip (cepstral
            mean normalization) instead of one mean over the whole spectrogram, so that
            a fixed channel (a microphone's colouring, a telephone line's response) is
            removed before the model sees it; off by default.
        frequency_warp: largest relative stretch of the frequency axis while training
            (vocal tract length perturbation); 0 turns it off.
        time_stretch: while training, stretch each clip's time axis by a factor up to
            `1 + time_stretch` either way (`features.TimeStretch`: the speaking rate, with
            pitch and formants kept); 0 turns it off.
        spec_augment: time/frequency masking while training.
        dropout: dropout in the classifier (and the transformer).
        rnn_units: LSTM units per direction (attention_rnn).
        rnn_unroll: unroll the LSTMs over the clip's fixed frames (attention_rnn): the same
            function with no loop to run per frame; a training step takes 0.86x the time
            (`python -m benchmarks.keyword_spotting_step`, AMD EPYC, 2 cores).
        conv_filters: filters of the first convolution (attention_rnn).
        kwt_dim, kwt_depth, kwt_heads, kwt_mlp_dim, kwt_norm_first: transformer size (kwt);
            `kwt_dim` must be divisible by `kwt_heads`.
        cnn_filters: filters of the convolution stages (cnn).
        embedding_stride: log-mel frames (10 ms) between the speech embedding's windows
            (speech_embedding); the published model used 8.
        embedding_units: width of the dense layer and of each GRU direction of the head
            (speech_embedding).
        embedding_heads: heads over the speech embedding's features (speech_embedding),
            each with its own initial weights, trained one after the other on the same
            features; the model answers with the mean of their probabilities and of their
            attention weights.
        seed: seed of the frequency warp and SpecAugment's random masks; None: unseeded
            (`train.run` uses the run's seed).
    """

    variant: Literal["attention_rnn", "kwt", "cnn", "speech_embedding"] = "attention_rnn"
    num_classes: int = 22
    # The front end.
    clip_samples: int = 16000
    sample_rate: int = 16000
    num_mel_bins: int = 64
    fft_length: int = 512
    frame_length: int = 480
    frame_step: int = 320
    min_freq: float = 20.0
    max_freq: float = 7600.0
    cepstral_keep: int = 0
    bin_mean_normalization: bool = False
    # Augmentation and regularization.
    frequency_warp: float = 0.1
    time_stretch: float = 0.0
    spec_augment: bool = True
    dropout: float = 0.1
    # attention_rnn.
    rnn_units: int = 64
    rnn_unroll: bool = True
    conv_filters: int = 10
    # kwt.
    kwt_dim: int = 64
    kwt_depth: int = 4
    kwt_heads: int = 4
    kwt_mlp_dim: int = 128
    kwt_norm_first: bool = True
    # cnn.
    cnn_filters: tuple[int, ...] = (16, 32, 64)
    # speech_embedding.
    embedding_stride: int = 4
    embedding_units: int = 96
    # 2 (with train.TrainConfig.embedding_epochs 10: the training time of one head of 20):
    # over three runs each (seeds 42, 1, 2; benchmarks/keyword_spotting_members.py), the
    # product on unseen synthetic voices 94.9% against 94.8% with one head of 20 epochs,
    # through a telephone 92.1% against 91.5%, other real IVR words rejected 138 of 210
    # against 129; the heads alone 82.3% against 81.5% (README: "Two heads on the speech
    # embedding"; benchmarks/keyword_spotting_heads.py compares heads on the same runs).
    embedding_heads: int = 2
    seed: int | None = None

    def __post_init__(self):
        _validation.one_of("variant", self.variant, VARIANTS)
        for name in ("num_classes", "clip_samples", "sample_rate", "num_mel_bins", "fft_length",
                     "frame_length", "frame_step", "rnn_units", "conv_filters", "kwt_dim",
                     "kwt_depth", "kwt_heads", "kwt_mlp_dim", "embedding_stride",
                     "embedding_units", "embedding_heads"):
            _validation.positive_int(name, getattr(self, name))
        if self.frame_length > self.fft_length:
            raise ValueError(f"`frame_length` ({self.frame_length}) must not exceed `fft_length` "
                             f"({self.fft_length}). Received: frame_length={self.frame_length}")
        _validation.non_negative_float("min_freq", self.min_freq)
        if not self.min_freq < self.max_freq <= self.sample_rate / 2:
            raise ValueError(f"`max_freq` must be above `min_freq` ({self.min_freq}) and at most "
                             f"half the sample rate ({self.sample_rate / 2:g}). Received: "
                             f"max_freq={self.max_freq!r}")
        _validation.non_negative_int("cepstral_keep", self.cepstral_keep)
        if self.cepstral_keep > self.num_mel_bins:
            raise ValueError(f"`cepstral_keep` must not exceed `num_mel_bins` "
                             f"({self.num_mel_bins}). Received: cepstral_keep="
                             f"{self.cepstral_keep}")
        _validation.rate("frequency_warp", self.frequency_warp)
        _validation.non_negative_float("time_stretch", self.time_stretch)
        _validation.rate("dropout", self.dropout)
        if self.kwt_dim % self.kwt_heads:
            raise ValueError(f"`kwt_dim` ({self.kwt_dim}) must be divisible by `kwt_heads` "
                             f"({self.kwt_heads}). Received: kwt_heads={self.kwt_heads}")
        if not self.cnn_filters:
            raise ValueError("`cnn_filters` must name at least one stage. Received: "
                             f"cnn_filters={self.cnn_filters!r}")
        for filters in self.cnn_filters:
            _validation.positive_int("cnn_filters", filters)
        if self.seed is not None:
            _validation.non_negative_int("seed", self.seed)
        if (self.variant == "speech_embedding"
                and self.sample_rate != speech_embedding.SAMPLE_RATE):
            raise ValueError("The speech embedding was trained at 16 kHz. Received: "
                             f"sample_rate={self.sample_rate}")
        if self.variant == "speech_embedding" and self.attention_steps < 1:
            raise ValueError(f"A clip of {self.clip_samples} samples is shorter than one "
                             "window of the speech embedding (775 ms). Received: "
                             f"clip_samples={self.clip_samples}")

    @property
    def frames(self) -> int:
        """Spectrogram frames per clip (centered STFT)."""
        return 1 + self.clip_samples // self.frame_step

    @property
    def attention_steps(self) -> int:
        """Time steps of the attention weights of one clip."""
        if self.variant != "speech_embedding":
            return self.frames
        return speech_embedding.num_windows(speech_embedding.num_frames(self.clip_samples),
                                            self.embedding_stride)

    @property
    def attention_step(self) -> int:
        """Samples between the attention's time steps."""
        if self.variant != "speech_embedding":
            return self.frame_step
        return self.embedding_stride * speech_embedding.HOP

    @property
    def attention_offset(self) -> int:
        """Sample at which the first attention step is centered (step i: offset + i * step)."""
        return speech_embedding.WINDOW_CENTER if self.variant == "speech_embedding" else 0


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
    # speech_embedding only: the fixed pretrained part (waveform -> (batch, windows, 96))
    # and the head that trains on its output (-> {"probabilities", "attention_weights"}).
    features: keras.Model | None = None
    head: keras.Model | None = None


def _front_end(waveform, config: ModelConfig):
    x = features.LogMelSpectrogram(
        sample_rate=config.sample_rate, fft_length=config.fft_length,
        frame_length=config.frame_length, frame_step=config.frame_step,
        num_mel_bins=config.num_mel_bins, min_freq=config.min_freq, max_freq=config.max_freq,
        name="log_mel",
    )(waveform)
    if config.cepstral_keep:
        x = features.CepstralSmoothing(config.cepstral_keep, name="cepstral_smoothing")(x)
    x = features.UtteranceNormalization(per_bin=config.bin_mean_normalization,
                                        name="normalize")(x)
    if config.time_stretch:
        x = features.TimeStretch(config.time_stretch,
                                 seed=None if config.seed is None else config.seed + 2,
                                 name="time_stretch")(x)
    if config.frequency_warp:
        x = features.FrequencyWarp(config.frequency_warp, seed=config.seed,
                                   name="frequency_warp")(x)
    if config.spec_augment:
        x = features.SpecAugment(seed=None if config.seed is None else config.seed + 1,
                                 name="spec_augment")(x)
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
            keras.layers.LSTM(config.rnn_units, return_sequences=True, unroll=config.rnn_unroll),
            name=f"bilstm{i}"
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


def head_suffix(index: int) -> str:
    """The suffix of the layer names of the speech embedding's head `index` (the first has
    none, so a one-head model keeps the names it always had)."""
    return "" if index == 0 else f"_{index}"


def _speech_embedding_head(config: ModelConfig) -> keras.Model:
    embeddings = keras.Input((config.attention_steps, speech_embedding.EMBEDDING_DIM),
                             name="embeddings")
    probabilities, attention = [], []
    for index in range(config.embedding_heads):
        suffix = head_suffix(index)
        x = keras.layers.LayerNormalization(name=f"embedding_norm{suffix}")(embeddings)
        x = keras.layers.Dense(config.embedding_units, activation="relu",
                               name=f"project{suffix}")(x)
        x = keras.layers.Dropout(config.dropout, name=f"project_dropout{suffix}")(x)
        x = keras.layers.Bidirectional(
            keras.layers.GRU(config.embedding_units, return_sequences=True),
            name=f"bigru{suffix}")(x)
        h, weights = AttentionPooling(64, name=f"attention{suffix}")(
            x, return_attention_scores=True)
        h = keras.layers.Dense(128, activation="relu", name=f"dense1{suffix}")(h)
        h = keras.layers.Dropout(config.dropout, name=f"dropout{suffix}")(h)
        probabilities.append(keras.layers.Dense(config.num_classes, activation="softmax",
                                                name=f"probabilities{suffix}")(h))
        attention.append(weights)
    if config.embedding_heads > 1:  # The heads' mean: still probabilities, still weights.
        probabilities = keras.layers.Average(name="heads_probabilities")(probabilities)
        attention = keras.layers.Average(name="heads_attention")(attention)
    else:
        probabilities, attention = probabilities[0], attention[0]
    return keras.Model(embeddings, {"probabilities": probabilities,
                                    "attention_weights": attention},
                       name="kws_speech_embedding_head")


def head_classifiers(head: keras.Model) -> list[keras.Model]:
    """Each head of a speech-embedding `head` model alone: embeddings -> its probabilities
    (sharing the head's layers: what `train.fit_heads` trains, one at a time)."""
    out = []
    index = 0
    while any(layer.name == f"probabilities{head_suffix(index)}" for layer in head.layers):
        out.append(keras.Model(head.input,
                               head.get_layer(f"probabilities{head_suffix(index)}").output,
                               name=f"kws_speech_embedding_head{head_suffix(index)}_classifier"))
        index += 1
    return out


def _build_speech_embedding(config: ModelConfig, pretrained: bool,
                            cache_dir: str | None) -> KeywordSpotter:
    waveform = keras.Input((config.clip_samples,), name="waveform")
    log_mel = speech_embedding.EmbeddingLogMel(name="embedding_log_mel")
    embed = speech_embedding.SpeechEmbedding(config.embedding_stride, name="speech_embedding")
    features = keras.Model(waveform, embed(log_mel(waveform)), name="kws_speech_embedding_features")
    if pretrained:
        speech_embedding.load_pretrained(log_mel, embed, cache_dir)
    head = _speech_embedding_head(config)
    outputs = head(features(waveform))
    classifier = keras.Model(waveform, outputs["probabilities"], name="kws_speech_embedding")
    explainer = keras.Model(waveform, outputs, name="kws_speech_embedding_explainer")
    return KeywordSpotter(classifier=classifier, explainer=explainer, config=config,
                          features=features, head=head)


def build_model(config: ModelConfig, pretrained: bool = True,
                cache_dir: str | None = None) -> KeywordSpotter:
    """Builds the variant named by `config.variant` (see the module docstring).

    `pretrained` (speech_embedding only): fill the speech embedding with the published
    weights (fetched once into `cache_dir`'s downloads); False leaves them zero, for a
    model whose weights are loaded afterwards.
    """
    if config.variant == "speech_embedding":
        return _build_speech_embedding(config, pretrained, cache_dir)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ProductOfExperts(keras.layers.Layer):
    """Probabilities of several models -> their normalized weighted geometric mean (a
    product of experts: a class wins only if no member rules it out).

    Args:
        exponents: one non-negative exponent per member (None: all equal), normalized to sum
            to 1; e.g. `(1.0, 0.5)` counts the second model's log-probabilities half as
            much as the first's.
    """

    def __init__(self, exponents=None, **kwargs):
        super().__init__(**kwargs)
        if exponents is not None:
            exponents = tuple(float(w) for w in exponents)
            if not exponents or any(not w >= 0 for w in exponents) or not sum(exponents) > 0:
                raise ValueError("`exponents` must be non-negative numbers, not all 0. "
                                 f"Received: exponents={exponents!r}")
        self.exponents = exponents

    def call(self, probabilities):
        exponents = self.exponents or (1.0,) * len(probabilities)
        if len(exponents) != len(probabilities):
            raise ValueError(f"{len(exponents)} exponents for {len(probabilities)} members.")
        total = sum(exponents)
        logs = [ops.log(ops.maximum(ops.cast(p, "float32"), 1e-12)) * (w / total)
                for p, w in zip(probabilities, exponents, strict=True)]
        return ops.softmax(ops.sum(ops.stack(logs, 0), axis=0), axis=-1)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return {**super().get_config(), "exponents": self.exponents}


def product_of_experts(explainers: list[keras.Model], name: str = "kws_product_of_experts",
                       exponents=None) -> keras.Model:
    """One explainer from several with the same input: the normalized geometric mean of
    their probabilities (weighted by `exponents`, `ProductOfExperts`), and the attention
    weights of the first."""
    if len(explainers) < 2:
        raise ValueError(f"A product of experts needs two models or more; got {len(explainers)}")
    # Checked here: the layer's own check runs only when it is called on data (building the
    # model uses `compute_output_shape`).
    if exponents is not None and len(exponents) != len(explainers):
        raise ValueError(f"{len(exponents)} exponents for {len(explainers)} models.")
    waveform = keras.Input(tuple(explainers[0].inputs[0].shape[1:]), name="waveform")
    outputs = [explainer(waveform) for explainer in explainers]
    probabilities = ProductOfExperts(exponents, name="product_of_experts")(
        [out["probabilities"] for out in outputs])
    return keras.Model(waveform, {"probabilities": probabilities,
                                  "attention_weights": outputs[0]["attention_weights"]},
                       name=name)


def compile_model(model: keras.Model, learning_rate: float = 3e-3,
                  steps: int | None = None, ema_momentum: float = 0.0) -> keras.Model:
    """Adam (cosine decay over `steps` when given) and sparse cross-entropy; with
    `ema_momentum` > 0 the optimizer keeps an exponential moving average of the weights,
    which `fit` writes into the model when it ends (Keras' `use_ema`)."""
    schedule = learning_rate
    if steps:
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate * 0.1, decay_steps=steps, warmup_target=learning_rate,
            warmup_steps=max(1, steps // 20),
        )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, use_ema=ema_momentum > 0,
                                        ema_momentum=ema_momentum or 0.99),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model
