"""Additive attention pooling over time (Yang et al. 2016), multi-hop (Lin et al. 2017)."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation
from keras_attention._masking import masked_softmax
from keras_attention.layers import _common


@keras.saving.register_keras_serializable(package="keras_attention")
class AttentionPooling(_common.ScoresSpec, keras.layers.Layer):
    """Pools a sequence into one vector (or `num_hops` vectors) with learned attention.

    With one hop this is the word/sentence attention of Yang et al. (2016):

        u_t = tanh(W h_t + b)
        α_t = softmax_t(u_tᵀ u_w)
        s   = Σ_t α_t h_t

    With `num_hops = r > 1` it is the structured self-attention of Lin et al.
    (2017), where the context vector `u_w` becomes the `r` rows of `W_s2`:

        A = softmax(W_s2 tanh(W_s1 Hᵀ))      A: (r, T), softmax over T
        M = A H                              M: (r, dim)

    and, when `penalty_coefficient > 0`, the penalty
    `penalty_coefficient · ‖A Aᵀ − I‖²_F` (averaged over the batch) is added to
    the model's losses with `add_loss`, which pushes the hops to attend to
    different positions. Masked time steps get weight exactly 0; a sequence
    whose steps are all masked pools to zeros.

    Args:
        units: size of the hidden projection `W`/`W_s1` (`d_a` in Lin et al.).
            Defaults to the input dimension.
        num_hops: number of attention rows `r`.
        dropout: dropout rate applied to the attention weights while training.
        penalty_coefficient: weight of Lin et al.'s redundancy penalty; 0 adds
            no loss.
        use_bias: whether the hidden projection has the bias `b` of Yang et al.
            (Lin et al. use none).
        kernel_initializer: initializer of `W` and of the context vectors.
        bias_initializer: initializer of `b`.
        score_scale: a positive constant the scores `u_tᵀ u_w` are multiplied by
            before the softmax (an inverse temperature; 1 leaves the layer as
            published). With an optimizer whose steps do not depend on the
            gradient's scale (Adam), it also makes the context vectors learn
            `score_scale` times faster than the rest of the model: a pooling head
            on a pretrained encoder fine-tuned at a small rate (5e-5) otherwise
            hardly leaves its starting weights.
        seed: None or an int, the seed of the dropout.

    Only `units` is positional; the other arguments are keyword-only.

    Call arguments:
        inputs: `(batch, T, dim)`.
        mask: optional boolean `(batch, T)`, True for valid steps. Taken from
            the Keras mask of `inputs` (e.g. `Embedding(mask_zero=True)`) when
            not given.
        return_attention_scores: also return the attention weights.
        training: whether dropout is active.

    Returns:
        `(batch, dim)` if `num_hops == 1` else `(batch, num_hops, dim)`; with
        `return_attention_scores`, also the weights `(batch, T)` or
        `(batch, num_hops, T)`.

    Example:
        >>> x = keras.random.normal((2, 7, 16))
        >>> pooled, weights = AttentionPooling(units=8)(x, return_attention_scores=True)
        >>> tuple(pooled.shape), tuple(weights.shape)
        ((2, 16), (2, 7))

    Reference:
        Yang et al., "Hierarchical Attention Networks for Document
        Classification", NAACL 2016. Lin et al., "A Structured Self-attentive
        Sentence Embedding", ICLR 2017.
    """

    def __init__(
        self,
        units=None,
        *,
        num_hops=1,
        dropout=0.0,
        penalty_coefficient=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        score_scale=1.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _validation.positive_int("units", units, allow_none=True)
        self.num_hops = _validation.positive_int("num_hops", num_hops)
        self.dropout = _validation.rate("dropout", dropout)
        self.penalty_coefficient = _validation.non_negative_float(
            "penalty_coefficient", penalty_coefficient
        )
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.score_scale = _validation.positive_float("score_scale", score_scale)
        self.seed = _validation.seed("seed", seed)
        self.supports_masking = True

    def build(self, inputs_shape, mask_shape=None):
        _validation.rank("inputs", inputs_shape, 3)
        dim = _validation.known_last_dim("inputs", inputs_shape)
        units = self.units or dim
        self.projection_kernel = self.add_weight(
            name="projection_kernel",
            shape=(dim, units),
            initializer=self.kernel_initializer,
        )
        self.projection_bias = (
            self.add_weight(
                name="projection_bias", shape=(units,), initializer=self.bias_initializer
            )
            if self.use_bias
            else None
        )
        # Column k is the context vector u_w of hop k (a row of W_s2).
        self.context_kernel = self.add_weight(
            name="context_kernel",
            shape=(units, self.num_hops),
            initializer=self.kernel_initializer,
        )
        self.weights_dropout = keras.layers.Dropout(
            self.dropout, seed=self.seed, dtype=self.dtype_policy, name="weights_dropout"
        )
        self.weights_dropout.build((None, self.num_hops, inputs_shape[1]))

    def call(self, inputs, mask=None, return_attention_scores=False, training=None):
        hidden = ops.matmul(inputs, self.projection_kernel)
        if self.projection_bias is not None:
            hidden = hidden + self.projection_bias
        hidden = ops.tanh(hidden)
        scores = ops.matmul(hidden, self.context_kernel)  # (batch, T, hops)
        if self.score_scale != 1.0:
            scores = scores * ops.cast(self.score_scale, scores.dtype)
        scores = ops.transpose(scores, (0, 2, 1))  # (batch, hops, T)
        if mask is not None:
            mask = ops.expand_dims(ops.cast(mask, "bool"), 1)
        weights = masked_softmax(scores, mask)
        if self.penalty_coefficient > 0:
            self.add_loss(self._penalty(weights))
        dropped = self.weights_dropout(weights, training=training)
        pooled = ops.matmul(dropped, inputs)  # (batch, hops, dim)
        if self.num_hops == 1:
            pooled = ops.squeeze(pooled, 1)
            weights = ops.squeeze(weights, 1)
        return (pooled, weights) if return_attention_scores else pooled

    def _penalty(self, weights):
        """`penalty_coefficient · mean_batch ‖A Aᵀ − I‖²_F`, computed in float32."""
        a = ops.cast(weights, "float32")
        gram = ops.matmul(a, ops.transpose(a, (0, 2, 1)))
        residual = gram - ops.eye(self.num_hops, dtype="float32")
        return self.penalty_coefficient * ops.mean(ops.sum(ops.square(residual), axis=(1, 2)))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, inputs_shape):
        batch, _, dim = inputs_shape
        if self.num_hops == 1:
            return (batch, dim)
        return (batch, self.num_hops, dim)

    def _scores_shape(self, inputs_shape):
        batch, t = inputs_shape[0], inputs_shape[1]
        return (batch, t) if self.num_hops == 1 else (batch, self.num_hops, t)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "num_hops": self.num_hops,
                "dropout": self.dropout,
                "penalty_coefficient": self.penalty_coefficient,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "score_scale": self.score_scale,
                "seed": self.seed,
            }
        )
        return config
