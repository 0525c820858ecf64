"""Show, Attend and Tell (Xu et al. 2015): a CNN grid encoder and an LSTM decoder with
soft attention, and the spatial attention of Lu et al. 2017.

The encoder turns an image into a grid of L = H' x W' feature vectors a_i of
size D (a small CNN trained from scratch, or a `keras.applications` backbone);
a learned position embedding is added to every cell, so that "left of" can be
read from the attended features. The decoder is an LSTM whose every step t

    e_ti = f_att(a_i, h_{t-1})           Bahdanau attention (`BahdanauAttention`)
    α_t  = softmax_i(e_ti)               the attention map over the grid
    β_t  = σ(f_β(h_{t-1}))               the gating scalar (section 4.2.1)
    ẑ_t  = β_t Σ_i α_ti a_i              the gated context vector
    h_t, c_t = LSTM([E y_{t-1}; ẑ_t], (h_{t-1}, c_{t-1}))
    p(y_t) = softmax(L_o(E y_{t-1} + L_h h_t + L_z ẑ_t))   the deep output layer (eq. 7)

starts from h_0 = tanh(f_init,h(ā)), c_0 = tanh(f_init,c(ā)) with ā the mean
feature vector (section 3.1.2). Training is teacher-forced and minimises the
mean token cross-entropy plus the doubly stochastic regularization

    λ Σ_i (1 − Σ_t α_ti)²                (eq. 14; t over the caption's tokens)

which pushes the model to look at every part of the image over a caption.

That is `attend_from="previous"`. Trained so, the decoder learns to look at an
object one step early (while it emits "the") and to carry it to the noun in
its LSTM state: on emoji_scenes the attention at the step that names an object
was 2.1x uniform inside its box, and 7.1x at the step before. The default,
`attend_from="current"`, is the "spatial attention" of Lu et al. 2017:

    h_t, c_t = LSTM([E y_{t-1}; ā], (h_{t-1}, c_{t-1}))
    α_t, ẑ_t from h_t (as above, with h_t for h_{t-1})
    p(y_t) = softmax(L_o(E y_{t-1} + L_h h_t + L_z ẑ_t))

The context reaches only the output layer of its own step, so a word can only
be read from where that step looks: 6.6x uniform, and BLEU-4 0.914 against
0.843, at the same budget (README).
With "previous", the LSTM's copy of ẑ_t can be dropped for whole steps while
training (`context_dropout`, off by default: at 0.5 it cut test BLEU-4 from
0.78 to 0.45 and left the attention at uniform).
Decoding (greedy or beam search) runs `keras_attention.decoding` with the step
function `ShowAttendTell.step`, inside the graph (SavedModel).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import keras
import tensorflow as tf
from keras import ops

from apps.common import losses
from keras_attention import decoding
from keras_attention.layers import BahdanauAttention, PositionEmbedding

# keras.applications backbones: (constructor name, preprocess module).
BACKBONES = {
    "small_cnn": None,
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2"),
    "resnet50": ("ResNet50", "resnet"),
    "efficientnet_b0": ("EfficientNetB0", "efficientnet"),
    "vgg16": ("VGG16", "vgg16"),
}
Backbone = Literal["small_cnn", "mobilenet_v2", "resnet50", "efficientnet_b0", "vgg16"]

# Which state queries the attention: h_{t-1} before the LSTM step (Xu et al. 2015),
# or h_t after it, the LSTM fed the mean feature instead of the context (the
# "spatial attention" of Lu et al. 2017, "Knowing when to look").
ATTEND_FROM = ("previous", "current")
# `semantic_attention` adds the attribute predictor and the input / output attention over
# the predicted attributes of You et al. 2016 (`apps/captioning/semantic.py`).
VARIANTS = ("soft_attention", "semantic_attention")
# What queries semantic attention's output attention: h_t, or h_t and the step's context ẑ_t.
ATTRIBUTE_QUERIES = ("hidden", "hidden_and_context")

# The tokenizer's reserved ids (`pipeline.make_tokenizer`: PAD, UNK, START, END).
START_ID, END_ID = 2, 3


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The captioner's sizes and options (`--config=model.FIELD=VALUE`).

    Attributes:
        variant: the attention: `soft_attention` (deterministic, Xu et al.'s
            section 4.2; their stochastic "hard" attention is not implemented),
            or `semantic_attention`: the same decoder with You et al. 2016's
            attribute predictor and input / output attention over the top
            `attribute_top_k` predicted attributes (`semantic.py`).
        vocab_size: words in the vocabulary (PAD=0, UNK=1, START, END included).
        max_length: caption length in tokens with START and END (the decoder
            emits at most `max_length - 1` tokens).
        image_size: side of the square input image.
        backbone: `small_cnn` (trained from scratch) or a `keras.applications`
            name in `BACKBONES`.
        backbone_weights: for an applications backbone: None (random
            initialisation), "imagenet" (downloaded by Keras, needs the network)
            or the path of a local weights file.
        filters: channels of the small CNN's stem (a 4x4 convolution of stride 4),
            second stage (stride 4, then pooled to 8) and third stage (stride 8,
            followed by a convolution to `feature_dim`).
        feature_dim: D, the size of each grid feature.
        position_embedding: add a learned embedding of each grid cell.
        embed_dim: m, the word embedding (and deep output) size.
        units: n, the LSTM size.
        attention_units: hidden size of the attention MLP.
        attend_from: "previous" (Xu et al.: α_t from h_{t-1}, ẑ_t fed to the LSTM)
            or "current" (Lu et al. 2017: h_t = LSTM([E y_{t-1}; ā]), α_t and ẑ_t
            from h_t, ẑ_t used by the output layer only, so a word can only be
            read from the context of its own step).
        dropout: dropout on h_t and on the deep output.
        context_dropout: while training, the probability that the LSTM's copy of
            the context ẑ_t is zeroed for a whole step of one caption (the output
            layer still gets ẑ_t). Without it the decoder learns to look at an
            object one step early (while emitting "the") and to carry it in its
            memory, so the map of the step that names the object points elsewhere;
            with it, naming an object reliably needs the object in the context of
            that very step.
        doubly_stochastic: λ of the doubly stochastic regularization.
        learning_rate: Adam's initial learning rate (cosine decay in training).
        attribute_top_k: `semantic_attention`: how many predicted attributes (the
            highest sigmoid scores) the decoder attends to. 5: a scene names 2-3
            objects (up to 4 attribute words, "red apple"), with room for one
            wrong guess.
        attribute_units: `semantic_attention`: hidden size of the attribute
            predictor's MLP.
        attribute_loss_weight: `semantic_attention`: weight of the predictor's
            binary cross-entropy in the training loss.
        attribute_query: `semantic_attention`: what queries the output attention
            over the attributes: `hidden`, h_t (You et al.), or
            `hidden_and_context`, [h_t; ẑ_t] (h_t and the spatial context of the
            same step: with `attend_from="current"` h_t has not seen what its
            step looks at).
    """

    variant: Literal["soft_attention", "semantic_attention"] = "soft_attention"
    vocab_size: int = 64
    max_length: int = 16
    image_size: int = 96
    backbone: Backbone = "small_cnn"
    backbone_weights: str | None = None
    filters: tuple[int, ...] = (32, 64, 128)
    feature_dim: int = 128
    position_embedding: bool = True
    embed_dim: int = 64
    units: int = 256
    attention_units: int = 128
    attend_from: Literal["previous", "current"] = "current"
    dropout: float = 0.2
    context_dropout: float = 0.0
    doubly_stochastic: float = 0.01
    learning_rate: float = 2e-3
    attribute_top_k: int = 5
    attribute_units: int = 128
    attribute_loss_weight: float = 1.0
    attribute_query: Literal["hidden", "hidden_and_context"] = "hidden"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}.")
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"backbone must be one of {sorted(BACKBONES)}, got {self.backbone!r}."
            )
        for name in ("vocab_size", "image_size", "feature_dim", "embed_dim", "units",
                     "attention_units", "attribute_top_k", "attribute_units"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if self.max_length < 3:
            raise ValueError(f"max_length must be >= 3 (START, a word, END), got "
                             f"{self.max_length}.")
        if self.backbone == "small_cnn" and self.image_size % 8:
            raise ValueError(
                f"image_size must be a multiple of 8 for the small CNN, got {self.image_size}."
            )
        if len(self.filters) != 3 or any(int(f) <= 0 for f in self.filters):
            raise ValueError(f"filters must be three positive ints, got {self.filters!r}.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if not 0 <= self.context_dropout < 1:
            raise ValueError(f"context_dropout must be in [0, 1), got {self.context_dropout}.")
        if self.attend_from not in ATTEND_FROM:
            raise ValueError(f"attend_from must be one of {ATTEND_FROM}, got "
                             f"{self.attend_from!r}.")
        if self.context_dropout and self.attend_from != "previous":
            raise ValueError("context_dropout drops the LSTM's copy of the context, which only "
                             'attend_from="previous" has.')
        if self.doubly_stochastic < 0:
            raise ValueError(f"doubly_stochastic (λ) must be >= 0, got {self.doubly_stochastic}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if self.attribute_query not in ATTRIBUTE_QUERIES:
            raise ValueError(f"attribute_query must be one of {ATTRIBUTE_QUERIES}, got "
                             f"{self.attribute_query!r}.")
        if not self.attribute_loss_weight >= 0:
            raise ValueError(f"attribute_loss_weight must be >= 0, got "
                             f"{self.attribute_loss_weight}.")


def _conv_block(filters, strides=1, name=None):
    return [
        keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                            name=f"{name}_conv"),
        keras.layers.BatchNormalization(name=f"{name}_bn"),
        keras.layers.ReLU(name=f"{name}_relu"),
    ]


def build_encoder(config: ModelConfig) -> keras.Model:
    """Images `(batch, S, S, 3)` in [0, 1] -> the feature grid `(batch, H', W', D)`."""
    inputs = keras.Input((config.image_size, config.image_size, 3), name="image")
    if config.backbone == "small_cnn":
        f1, f2, f3 = (int(f) for f in config.filters)
        layers = (
            [keras.layers.Conv2D(f1, 4, strides=4, use_bias=False, name="stem_conv"),
             keras.layers.BatchNormalization(name="stem_bn"), keras.layers.ReLU(name="stem_relu")]
            + _conv_block(f2, 1, "stage2")
            + [keras.layers.MaxPooling2D(2, name="pool2")]
            + _conv_block(f3, 1, "stage3a")
            + _conv_block(config.feature_dim, 1, "stage3b")
        )
        x = inputs
        for layer in layers:
            x = layer(x)
        return keras.Model(inputs, x, name="encoder")
    constructor, module = BACKBONES[config.backbone]
    weights = config.backbone_weights
    backbone = getattr(keras.applications, constructor)(
        include_top=False, weights=weights,
        input_shape=(config.image_size, config.image_size, 3),
    )
    preprocess = getattr(keras.applications, module).preprocess_input
    x = preprocess(inputs * 255.0)
    x = backbone(x)
    x = keras.layers.Conv2D(config.feature_dim, 1, activation="relu", name="project")(x)
    return keras.Model(inputs, x, name="encoder")


class ShowAttendTell(keras.Model):
    """The captioner: `call({"image", "tokens"})` gives teacher-forced logits.

    Call arguments:
        inputs: dict with `image` float32 `(batch, S, S, 3)` in [0, 1] and `tokens`
            int32 `(batch, T)`: START and the caption's words (0 = padding).
        training: dropout and batch-norm mode.

    Returns:
        Logits `(batch, T, vocab_size)` of the next token at every position. The
        doubly stochastic regularization of the attention maps is added with
        `add_loss`, over the non-padding positions.
    """

    def __init__(self, config: ModelConfig, start_id: int = START_ID, end_id: int = END_ID,
                 **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.start_id = int(start_id)
        self.end_id = int(end_id)
        self.encoder = build_encoder(config)
        grid = self.encoder.output.shape
        self.grid_shape = (int(grid[1]), int(grid[2]))
        self.locations = self.grid_shape[0] * self.grid_shape[1]
        c = config
        self.positions = (PositionEmbedding(self.locations, name="grid_positions")
                          if c.position_embedding else None)
        self.init_h = keras.layers.Dense(c.units, activation="tanh", name="init_h")
        self.init_c = keras.layers.Dense(c.units, activation="tanh", name="init_c")
        self.embedding = keras.layers.Embedding(c.vocab_size, c.embed_dim, name="embedding")
        self.attention = BahdanauAttention(c.attention_units, name="attention")
        self.gate = keras.layers.Dense(1, activation="sigmoid", name="f_beta")
        self.lstm = keras.layers.LSTMCell(c.units, name="lstm")
        self.hidden_dropout = keras.layers.Dropout(c.dropout, name="hidden_dropout")
        self.out_hidden = keras.layers.Dense(c.embed_dim, name="L_h")
        self.out_context = keras.layers.Dense(c.embed_dim, name="L_z")
        self.output_dropout = keras.layers.Dropout(c.dropout, name="output_dropout")
        self.out_logits = keras.layers.Dense(c.vocab_size, name="L_o")
        self.seed_generator = keras.random.SeedGenerator(1234, name="context_dropout_seed")

    # ------------------------------------------------------------------ pieces
    def encode(self, images, training=False):
        """Images -> the annotation vectors `(batch, L, D)` (with positions, when enabled)."""
        grid = self.encoder(images, training=training)
        features = ops.reshape(grid, (-1, self.locations, self.config.feature_dim))
        if self.positions is not None:
            features = features + self.positions(features)
        return features

    def initial_state(self, features):
        """`{"h", "c", "features", "keys"}` of the first step, from the mean feature ā."""
        if not self.attention.built:
            self.attention.build((None, self.config.units), tuple(features.shape))
        mean = ops.mean(features, axis=1)
        state = {
            "h": self.init_h(mean),
            "c": self.init_c(mean),
            "features": features,
            "keys": self.attention.project_keys(features),
        }
        if self.config.attend_from == "current":
            state["mean"] = mean
        return state

    def step(self, tokens, state, training=False):
        """One decoder step: previous tokens `(batch,)` -> `(logits, new_state, α (batch, L))`."""
        embedded = self.embedding(tokens)
        output, new_state, context, alpha = self._recur(embedded, state, training)
        logits = self._deep_output(embedded, output, context, training)
        return logits, new_state, alpha

    def _recur(self, lstm_word, state, training):
        """The LSTM step and the spatial attention, for either `attend_from`.

        `lstm_word` is the word input of the LSTM (E y_{t-1}; a subclass adds to
        it). Returns `(h_t, new_state, gated context ẑ_t, α_t)`.
        """
        if self.config.attend_from == "current":  # LSTM first (fed ā), then h_t queries.
            output, (h, c) = self.lstm(ops.concatenate([lstm_word, state["mean"]], axis=-1),
                                       [state["h"], state["c"]], training=training)
            context, alpha = self.attention(
                h, state["features"], projected_keys=state["keys"], return_attention_scores=True
            )
            return output, dict(state, h=h, c=c), self.gate(h) * context, alpha
        h = state["h"]
        context, alpha = self.attention(
            h, state["features"], projected_keys=state["keys"], return_attention_scores=True
        )
        context = self.gate(h) * context
        lstm_context = context
        if training and self.config.context_dropout > 0:
            draw = keras.random.uniform(ops.shape(context)[:1], seed=self.seed_generator)
            keep = ops.cast(draw >= self.config.context_dropout, context.dtype)
            lstm_context = context * keep[:, None]
        output, (h, c) = self.lstm(ops.concatenate([lstm_word, lstm_context], axis=-1),
                                   [h, state["c"]], training=training)
        return output, dict(state, h=h, c=c), context, alpha

    def _deep_output(self, embedded, output, context, training, extra=None):
        """Logits of L_o(E y_{t-1} + L_h h_t + L_z ẑ_t [+ extra]) (eq. 7), with dropout."""
        deep = (embedded + self.out_hidden(self.hidden_dropout(output, training=training))
                + self.out_context(context))
        if extra is not None:
            deep = deep + extra
        return self.out_logits(self.output_dropout(deep, training=training))

    # -------------------------------------------------------------- training
    def call(self, inputs, training=False):
        features = self.encode(inputs["image"], training=training)
        return self._teacher_forced(self.initial_state(features), inputs["tokens"], training)

    def _teacher_forced(self, state, tokens, training):
        """Logits `(batch, T, vocab)` of every step from `state`; adds the doubly stochastic
        penalty."""
        tokens = ops.cast(tokens, "int32")
        steps = tokens.shape[1]
        if steps is None:
            raise ValueError("`tokens` must have a static length (pad captions to max_length).")
        logits, alphas = [], []
        for t in range(steps):
            step_logits, state, alpha = self.step(tokens[:, t], state, training=training)
            logits.append(step_logits)
            alphas.append(alpha)
        logits = ops.stack(logits, axis=1)
        if self.config.doubly_stochastic > 0:
            alphas = ops.stack(alphas, axis=1)  # (batch, T, L)
            mask = ops.cast(ops.not_equal(tokens, 0), alphas.dtype)[:, :, None]
            self.add_loss(self.config.doubly_stochastic * doubly_stochastic_penalty(alphas, mask))
        return logits

    # -------------------------------------------------------------- decoding
    def decode(self, images, max_length=None, beam_width=1, length_penalty=0.0):
        """Captions images with greedy (`beam_width=1`) or beam search, as TF ops.

        Returns:
            `keras_attention.decoding.DecodeResult` with `sequences` int32
            `(batch, max_length)` (END included, 0 after it) and `attention`
            `(batch, max_length, H', W')`.
        """
        features = self.encode(images, training=False)
        height, width = self.grid_shape

        def step_fn(tokens, state):
            logits, state, alpha = self.step(tokens, state, training=False)
            return logits, state, tf.reshape(alpha, [-1, height, width])

        return self._search(self.initial_state(features), step_fn, max_length, beam_width,
                            length_penalty)

    def _search(self, state, step_fn, max_length, beam_width, length_penalty):
        """Greedy or beam search from `state` with `step_fn` (TF ops)."""
        max_length = self.config.max_length - 1 if max_length is None else int(max_length)
        batch = tf.shape(state["features"])[0]
        start = tf.fill([batch], tf.constant(self.start_id, tf.int32))
        if beam_width == 1:
            return decoding.greedy_search(step_fn, state, start, self.end_id, max_length,
                                          length_penalty=length_penalty)
        return decoding.beam_search(step_fn, state, start, self.end_id, max_length,
                                    beam_width=beam_width, length_penalty=length_penalty)


def doubly_stochastic_penalty(alphas, mask):
    """Mean over the batch of Σ_i (1 − Σ_t mask_t α_ti)².

    α is `(batch, T, L)`, the mask of real (non-padding) steps `(batch, T, 1)`.
    """
    coverage = ops.sum(alphas * mask, axis=1)  # (batch, L)
    return ops.mean(ops.sum(ops.square(1.0 - coverage), axis=-1))


def build_model(config: ModelConfig, start_id: int = START_ID, end_id: int = END_ID,
                attribute_ids=None) -> ShowAttendTell:
    """A built `ShowAttendTell` (weights created by one call on zeros).

    `start_id` / `end_id` are the tokenizer's (`pipeline.make_tokenizer` reserves 2 and 3).
    `attribute_ids` (token ids of the attribute words, `semantic.attribute_ids`) are
    needed by, and only by, `variant="semantic_attention"`, which builds a
    `semantic.SemanticAttentionCaptioner`.
    """
    if config.variant == "semantic_attention":
        from apps.captioning import semantic  # semantic.py subclasses ShowAttendTell

        if attribute_ids is None:
            raise ValueError('variant="semantic_attention" needs attribute_ids: the token ids '
                             "of the attribute words (semantic.attribute_ids).")
        model = semantic.SemanticAttentionCaptioner(config, attribute_ids, start_id=start_id,
                                                    end_id=end_id, name="semantic_attention")
    elif attribute_ids is not None:
        raise ValueError(f"attribute_ids are for variant='semantic_attention'; this config's "
                         f"variant is {config.variant!r}.")
    else:
        model = ShowAttendTell(config, start_id=start_id, end_id=end_id,
                               name="show_attend_tell")
    size = config.image_size
    model({"image": ops.zeros((1, size, size, 3)),
           "tokens": ops.zeros((1, config.max_length - 1), "int32")})
    return model


def compile_model(model: ShowAttendTell, config: ModelConfig, decay_steps: int | None = None,
                  jit_compile="auto") -> None:
    """Adam (clipnorm 5) at `config.learning_rate`, decayed by a cosine to 2% over
    `decay_steps` (constant when None); the shared masked token cross-entropy and
    `masked_accuracy` (logged as `masked_accuracy` / `val_masked_accuracy`)."""
    rate = config.learning_rate
    if decay_steps:
        rate = keras.optimizers.schedules.CosineDecay(rate, int(decay_steps), alpha=0.02)
    model.compile(
        optimizer=keras.optimizers.Adam(rate, clipnorm=5.0),
        loss=losses.masked_cross_entropy(),
        metrics=[losses.masked_accuracy],
        jit_compile=jit_compile,
    )
