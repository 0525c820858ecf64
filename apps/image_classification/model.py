"""Small image classifiers with CNN attention, and the spatial map each one exposes.

Variants (`ModelConfig.variant`), all for small inputs such as 60x60 digits:

- `plain`: a small ResNet. Stem 5x5/2, three stages of basic residual blocks
  (widths 16, 32, 64; strides 1, 2, 2), global average pooling, a dense layer.
- `se`: the same, with `SqueezeExcitation` on every block's residual branch.
- `cbam`: the same, with `CBAM` on every block's residual branch.
- `nonlocal`: the plain ResNet with a `NonLocalBlock` after the second stage.
- `residual_attention`: stem, a `ResidualAttentionModule` at each of the
  first two scales between strided residual blocks (Wang et al. 2017).
- `vit`: `PatchEmbedding` (6x6 patches on 60x60, 7x7 on 28x28, class token)
  and pre-norm `TransformerEncoderBlock`s; the class token's final state is
  classified.

How a variant is trained is its `Recipe` (`RECIPES`; `compile_model` and the
input pipeline use it): `standard` for the CNNs on the canvases (AdamW 3e-3, a
short warm-up then cosine decay, no augmentation: the canvases already place
each object at random), `augmented` for every variant on plain `fashion_mnist` (the
same plus shifts of up to 2 pixels and horizontal flips), `small_data` for the ViT
elsewhere (the practices
that make a ViT converge on small data: AdamW 1e-3 with weight decay 0.05, a
linear warm-up over 10% of the steps then cosine decay to 0, label
smoothing 0.1, random translation by up to 4 pixels, horizontal flips where
they keep the class).

`build_model(config)` returns a `Classifier`: `model` maps images to logits (trained),
`explainer` (the same layers and weights) maps images to `(logits,
attention_map)` where `attention_map` is `(batch, h, w)`, non-negative and
summing to 1 over `h x w` (the map the SavedModel exports), and `analysis`
maps images to every map the variant has, by name (all CNNs also have
`activation`, the last stage's activation map; the ViT also `last_layer`, the
class token's attention in the last layer). The exported map per variant:

- `cbam`: CBAM's spatial map `M_s` of the block chosen by `map_stage`.
- `residual_attention`: the soft mask `M` of the module chosen by `map_stage`,
  averaged over channels.
- `nonlocal`: the attention each position receives, averaged over all queries.
- `vit`: attention rollout (Abnar & Zuidema 2020) from the class token to the
  patches, heads averaged, residual identity added, through every layer.
- `plain`, `se` (no spatial attention): a gradient-free activation map, the
  channel-sum of squared activations of the last stage (Zagoruyko & Komodakis
  2017, "attention transfer").
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

import keras
from keras import ops

from keras_attention import layers as attention_layers

Variant = Literal["plain", "se", "cbam", "nonlocal", "residual_attention", "vit"]
VARIANTS = typing.get_args(Variant)
DEFAULT_VARIANT = "nonlocal"
DEFAULT_INPUT_SHAPE = (60, 60, 1)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The size of every variant (defaults: small enough to train on two CPU cores).

    `input_shape` and `num_classes` are the dataset's (`train.run` sets them);
    built without one, the model takes `DEFAULT_INPUT_SHAPE` (the embedded digits).
    """

    variant: Variant = DEFAULT_VARIANT  # one of VARIANTS
    input_shape: tuple[int, ...] | None = None  # (H, W, C) of the images
    num_classes: int = 10
    # The ResNets.
    widths: tuple[int, ...] = (16, 32, 64)  # channels of the three stages
    blocks_per_stage: int = 1  # residual blocks per stage
    stem_kernel: int = 5  # the stem convolution's side (stride 2)
    reduction: int = 4  # channel reduction of SE and CBAM's MLP
    cbam_kernel: int = 7  # side of CBAM's spatial convolution
    # The stage (0, 1, 2) whose CBAM block / residual attention module (0 or 1)
    # gives the exported map.
    map_stage: int = 1
    # The ViT.
    patch_size: int | None = None  # None: `default_patch_size` of the image
    vit_dim: int = 64  # the tokens' width
    vit_layers: int = 4
    vit_heads: int = 4
    vit_mlp_dim: int = 128  # the MLP's hidden width
    dropout: float = 0.1  # before the classifier (and in the ViT)
    # Peak learning rate (AdamW, warm-up then cosine decay) and AdamW's decoupled weight
    # decay; None: the training recipe's (`Recipe`).
    learning_rate: float | None = None
    weight_decay: float | None = None

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}.")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
            if len(self.input_shape) != 3 or min(self.input_shape) < 1:
                raise ValueError(f"input_shape must be (H, W, C), got {self.input_shape!r}.")
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ValueError(f"widths must be three positive ints, got {self.widths!r}.")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}.")
        for name in ("blocks_per_stage", "stem_kernel", "reduction", "cbam_kernel", "vit_dim",
                     "vit_layers", "vit_heads", "vit_mlp_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.map_stage not in (0, 1, 2):
            raise ValueError(f"map_stage must be 0, 1 or 2, got {self.map_stage!r}.")
        if self.variant == "residual_attention" and self.map_stage == 2:
            raise ValueError("residual_attention has modules at stages 0 and 1; map_stage=2 "
                             "is not one of them.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0 (or None), got {self.learning_rate}.")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0 (or None), got {self.weight_decay}.")
        if self.patch_size is not None and self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1 (or None), got {self.patch_size}.")
        if self.variant == "vit":
            h, w, _ = self.input_shape or (0, 0, 0)  # Unknown size: checked when it is set.
            if self.patch_size is not None and (h % self.patch_size or w % self.patch_size):
                raise ValueError(f"The image size {h}x{w} must be divisible by patch_size="
                                 f"{self.patch_size}.")
            if self.vit_dim % self.vit_heads:
                raise ValueError(f"vit_dim={self.vit_dim} must be divisible by "
                                 f"vit_heads={self.vit_heads}.")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a variant is trained (optimizer, schedule, loss and augmentation).

    Attributes:
        name: the key in `RECIPES`.
        learning_rate: AdamW's peak learning rate (unless `ModelConfig.learning_rate`).
        weight_decay: AdamW's decoupled weight decay (unless `ModelConfig.weight_decay`).
        warmup_fraction: None: a short warm-up from `learning_rate / 10` over
            `min(steps // 20, 200)` steps, then cosine decay to 1% of the peak; a
            fraction: a linear warm-up over that share of the steps (from `peak / its
            steps`, so that the first step already learns), then cosine decay to 0.
        label_smoothing: the share of the target spread evenly over the classes.
        translate: the training images are shifted by up to this many pixels each
            way (zero padding, then a random crop back to the image's size); 0: none.
        flip: random horizontal flips, on datasets where a mirror image keeps its
            class (`pipeline.flip_keeps_class`: garments, CIFAR-10; not digits).
    """

    name: str
    learning_rate: float
    weight_decay: float
    warmup_fraction: float | None
    label_smoothing: float
    translate: int
    flip: bool


RECIPES = {
    "standard": Recipe("standard", learning_rate=3e-3, weight_decay=1e-4, warmup_fraction=None,
                       label_smoothing=0.0, translate=0, flip=False),
    # `standard` plus small shifts and mirror images: on the plain 28x28 garments the
    # unaugmented CNNs overfit (plain: 99.4% train, 91.79% test in 20 epochs).
    "augmented": Recipe("augmented", learning_rate=3e-3, weight_decay=1e-4,
                        warmup_fraction=None, label_smoothing=0.0, translate=2, flip=True),
    "small_data": Recipe("small_data", learning_rate=1e-3, weight_decay=0.05,
                         warmup_fraction=0.1, label_smoothing=0.1, translate=4, flip=True),
}


# Datasets whose training images are not already drawn at random places on a canvas:
# the CNNs get `augmented` there (shifts and flips) rather than `standard`.
UNCANVASED = frozenset({"fashion_mnist"})


def default_recipe(variant: str, dataset: str | None = None) -> Recipe:
    """The recipe a variant trains with unless told otherwise: `augmented` on a dataset
    in `UNCANVASED` (the plain garments), for every variant (the ViT too: +5.1 points
    over `small_data` there at 10 epochs, `benchmarks/results/vit_recipe/`); elsewhere
    `small_data` for the ViT and `standard` for the CNNs (the canvases already place
    each object at random)."""
    if dataset in UNCANVASED:
        return RECIPES["augmented"]
    return RECIPES["small_data" if variant == "vit" else "standard"]


def learning_rate_schedule(peak: float, steps: int, warmup_fraction: float | None = None):
    """Warm-up then cosine decay over `steps` optimizer steps in all (see `Recipe`).

    `warmup_fraction=None`: from `peak / 10` over `max(1, min(steps // 20, 200))`
    steps, then cosine decay to `peak / 100`; a fraction in [0, 1): linear from
    `peak / w` to `peak` over `w = max(1, round(fraction * steps))` steps (the first
    step already learns), then cosine decay to 0.
    """
    if not peak > 0:
        raise ValueError(f"peak must be > 0, got {peak}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    if warmup_fraction is None:
        warmup = max(1, min(steps // 20, 200))
        start, alpha = peak / 10, 0.01
    elif 0 <= warmup_fraction < 1:
        warmup = max(1, round(warmup_fraction * steps))
        start, alpha = peak / warmup, 0.0
    else:
        raise ValueError(f"warmup_fraction must be in [0, 1) or None, got {warmup_fraction}.")
    return keras.optimizers.schedules.CosineDecay(
        start, max(1, steps - warmup), alpha=alpha, warmup_target=peak, warmup_steps=warmup,
    )


@keras.saving.register_keras_serializable(package="image_classification")
class SparseCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy on logits from integer labels, with label smoothing (Keras'
    sparse cross-entropy has none): the target is `(1 - s) * one_hot + s / classes`."""

    def __init__(self, num_classes: int, label_smoothing: float = 0.0,
                 name="sparse_crossentropy_with_smoothing", **kwargs):
        super().__init__(name=name, **kwargs)
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.num_classes)
        return keras.losses.categorical_crossentropy(
            labels, y_pred, from_logits=True, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "label_smoothing": self.label_smoothing}


def default_patch_size(height: int, width: int) -> int:
    """A ViT patch side dividing the image: 6 for 60x60 digits, 7 for 28x28 garments
    (16 patches: 0.4x the CPU per epoch of 4x4, and in the same time the same
    accuracy, `benchmarks/results/vit_recipe/`), 4 for 32x32 CIFAR-10."""
    for size in (6, 7, 4, 8, 5, 3, 2):
        if height % size == 0 and width % size == 0:
            return size
    return 1


@dataclasses.dataclass
class Classifier:
    """The trained model and two views of it (shared layers and weights).

    `model`: images -> logits (trained). `explainer`: images -> (logits,
    attention_map `(batch, h, w)`), the map named `primary_map` (exported).
    `analysis`: images -> {"logits": ..., every map by name} (evaluation).
    """

    model: keras.Model
    explainer: keras.Model
    analysis: keras.Model
    primary_map: str
    config: ModelConfig


def _normalize_map(attention):
    """(batch, h, w) non-negative -> sums to 1 over (h, w)."""
    attention = ops.maximum(ops.cast(attention, "float32"), 0.0)
    total = ops.sum(attention, axis=(1, 2), keepdims=True)
    return attention / (total + 1e-9)


def _conv(filters, size, strides, name):
    return keras.layers.Conv2D(filters, size, strides=strides, padding="same", use_bias=False,
                               kernel_initializer="he_normal", name=name)


def _basic_block(x, filters, strides, name, attention=None, config=None):
    """Conv-BN-ReLU-Conv-BN [attention] + shortcut, ReLU. Returns (output, spatial map or None)."""
    shortcut = x
    y = _conv(filters, 3, strides, f"{name}_conv1")(x)
    y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(filters, 3, 1, f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
    spatial = None
    if attention:
        y, spatial = _attention(y, attention, name, config)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, strides, f"{name}_proj")(x)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    out = keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([y, shortcut]))
    return out, spatial


def _attention(x, attention, name, config):
    """SE or CBAM on `x`; returns (refined, CBAM's spatial map (batch, H, W, 1) or None)."""
    if attention == "se":
        return attention_layers.SqueezeExcitation(reduction=config.reduction,
                                                  name=f"{name}_se")(x), None
    return attention_layers.CBAM(
        reduction=config.reduction, kernel_size=config.cbam_kernel, name=f"{name}_cbam"
    )(x, return_attention_scores=True)


def _stem(inputs, config):
    x = _conv(config.widths[0], config.stem_kernel, 2, "stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    return keras.layers.ReLU(name="stem_relu")(x)


def _activation_map(features):
    """Gradient-free activation attention: sum over channels of squared activations."""
    return ops.sum(ops.square(ops.cast(features, "float32")), axis=-1)


def _head(x, config):
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(config.dropout, name="head_dropout")(x)
    return keras.layers.Dense(config.num_classes, name="logits")(x)


def _resnet(inputs, config):
    attention = config.variant if config.variant in ("se", "cbam") else None
    x = _stem(inputs, config)
    maps = {}
    for stage, width in enumerate(config.widths):
        for block in range(config.blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            x, spatial = _basic_block(x, width, strides, f"stage{stage}_block{block}",
                                      attention, config)
            if spatial is not None and block == config.blocks_per_stage - 1:
                maps[f"cbam_stage{stage}"] = spatial[..., 0]
        if stage == 1 and config.variant == "nonlocal":
            x, weights = attention_layers.NonLocalBlock(
                inter_channels=max(1, width // 2), name="nonlocal"
            )(x, return_attention_scores=True)
            received = ops.mean(weights, axis=1)  # (batch, positions): attention received
            maps["nonlocal"] = ops.reshape(received, (-1, x.shape[1], x.shape[2]))
    maps["activation"] = _activation_map(x)
    primary = {"cbam": f"cbam_stage{config.map_stage}", "nonlocal": "nonlocal"}.get(
        config.variant, "activation"
    )
    return _head(x, config), maps, primary


def _residual_attention(inputs, config):
    w0, w1, w2 = config.widths
    x = _stem(inputs, config)
    maps = {}
    x, mask = attention_layers.ResidualAttentionModule(
        w0, p=0, t=1, r=1, mask_depth=2, bottleneck=False, name="attention0"
    )(x, return_attention_scores=True)
    maps["soft_mask_stage0"] = ops.mean(mask, axis=-1)
    x, _ = _basic_block(x, w1, 2, "down1")
    x, mask = attention_layers.ResidualAttentionModule(
        w1, p=0, t=1, r=1, mask_depth=1, bottleneck=False, name="attention1"
    )(x, return_attention_scores=True)
    maps["soft_mask_stage1"] = ops.mean(mask, axis=-1)
    x, _ = _basic_block(x, w2, 2, "down2")
    maps["activation"] = _activation_map(x)
    return _head(x, config), maps, f"soft_mask_stage{config.map_stage}"


def attention_rollout(scores):
    """Attention rollout (Abnar & Zuidema 2020) of a list of `(batch, heads, T, T)` weights.

    Per layer: A = mean over heads, A' = (A + I) / 2 rows renormalised; the rollout is
    A'_L ... A'_1. Returns `(batch, T, T)`: row i is how much token i's final
    state draws on each input token.
    """
    rollout = None
    for weights in scores:
        a = ops.mean(ops.cast(weights, "float32"), axis=1)
        a = 0.5 * a + 0.5 * ops.eye(a.shape[-1], dtype="float32")[None]
        a = a / ops.sum(a, axis=-1, keepdims=True)
        rollout = a if rollout is None else ops.matmul(a, rollout)
    return rollout


def _vit(inputs, config):
    h, w, _ = config.input_shape
    grid_h, grid_w = h // config.patch_size, w // config.patch_size
    x = attention_layers.PatchEmbedding(config.patch_size, hidden_dim=config.vit_dim,
                                        name="patches")(inputs)
    scores = []
    for i in range(config.vit_layers):
        x, s = attention_layers.TransformerEncoderBlock(
            num_heads=config.vit_heads, intermediate_dim=config.vit_mlp_dim,
            dropout=config.dropout, activation="gelu", norm_first=True, name=f"encoder{i}",
        )(x, return_attention_scores=True)
        scores.append(s)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    cls = x[:, 0]
    cls = keras.layers.Dropout(config.dropout, name="head_dropout")(cls)
    logits = keras.layers.Dense(config.num_classes, name="logits")(cls)
    rollout = attention_rollout(scores)
    last = ops.mean(ops.cast(scores[-1], "float32"), axis=1)
    maps = {
        "rollout": ops.reshape(rollout[:, 0, 1:], (-1, grid_h, grid_w)),
        "last_layer": ops.reshape(last[:, 0, 1:], (-1, grid_h, grid_w)),
    }
    return logits, maps, "rollout"


def build_model(config: ModelConfig | None = None, **overrides) -> Classifier:
    """Builds the variant named by `config.variant` (or `overrides`, e.g. `variant="se"`).

    The returned `Classifier.config` has `input_shape` and `patch_size` resolved.
    """
    config = dataclasses.replace(config or ModelConfig(), **overrides)
    if config.input_shape is None:
        config = dataclasses.replace(config, input_shape=DEFAULT_INPUT_SHAPE)
    if config.patch_size is None:
        config = dataclasses.replace(config, patch_size=default_patch_size(*config.input_shape[:2]))
    inputs = keras.Input(config.input_shape, name="image")
    if config.variant == "vit":
        logits, maps, primary = _vit(inputs, config)
    elif config.variant == "residual_attention":
        logits, maps, primary = _residual_attention(inputs, config)
    else:
        logits, maps, primary = _resnet(inputs, config)
    maps = {name: _normalize_map(m) for name, m in maps.items()}
    model = keras.Model(inputs, logits, name=f"classifier_{config.variant}")
    explainer = keras.Model(inputs, [logits, maps[primary]], name=f"explainer_{config.variant}")
    analysis = keras.Model(inputs, {"logits": logits, **maps}, name=f"analysis_{config.variant}")
    return Classifier(model=model, explainer=explainer, analysis=analysis, primary_map=primary,
                      config=config)


def compile_model(model: keras.Model, config: ModelConfig, decay_steps: int,
                  jit_compile="auto", recipe: Recipe | None = None) -> None:
    """AdamW with `recipe`'s warm-up then cosine decay over `decay_steps` (the training
    steps), clipped at norm 1; cross-entropy on logits, label-smoothed by the recipe.

    `recipe` None: `default_recipe(config.variant)`. `config.learning_rate` and
    `config.weight_decay`, when set, replace the recipe's.
    """
    recipe = recipe or default_recipe(config.variant)
    peak = recipe.learning_rate if config.learning_rate is None else config.learning_rate
    decay = recipe.weight_decay if config.weight_decay is None else config.weight_decay
    schedule = learning_rate_schedule(peak, max(1, int(decay_steps)), recipe.warmup_fraction)
    if recipe.label_smoothing:
        loss = SparseCrossentropyWithSmoothing(config.num_classes, recipe.label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=decay, clipnorm=1.0),
        loss=loss,
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
    )
