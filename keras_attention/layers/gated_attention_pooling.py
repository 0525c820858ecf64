"""Gated attention pooling for multiple-instance learning (Ilse et al. 2018)."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation
from keras_attention._masking import masked_softmax
from keras_attention.layers import _common


@keras.saving.register_keras_serializable(package="keras_attention")
class GatedAttentionPooling(_common.ScoresSpec, keras.layers.Layer):
    """Pools a bag (or sequence) of instances with (gated) attention-based MIL pooling.

    For instance embeddings `h_1..h_K` (Ilse et al. 2018, eqs. 9-10):

        gated:     a_k = softmax_k( wᵀ (tanh(V h_k) ⊙ sigm(U h_k)) )
        not gated: a_k = softmax_k( wᵀ tanh(V h_k) )
        z = Σ_k a_k h_k

    Masked instances get weight exactly 0; a bag whose instances are all
    masked pools to zeros.

    Args:
        units: hidden size `L` of `V` and `U`.
        gated: use the sigmoid gate `sigm(U h_k)`; False gives the plain
            attention-MIL pooling.
        dropout: dropout rate applied to the attention weights while training.
        use_bias: whether `V` and `U` have biases (the equations have none;
            the authors' code uses them).
        kernel_initializer: initializer of `V`, `U` and `w`.
        bias_initializer: initializer of the biases of `V` and `U`.
        seed: None or an int, the seed of the dropout.

    Only `units` is positional; the other arguments are keyword-only.

    Call arguments:
        inputs: `(batch, K, dim)`.
        mask: optional boolean `(batch, K)`, True for valid instances; taken
            from the Keras mask of `inputs` when not given.
        return_attention_scores: also return the weights.
        training: whether dropout is active.

    Returns:
        `(batch, dim)`; with `return_attention_scores`, also the weights
        `(batch, K)`.

    Example:
        >>> bags = keras.random.normal((2, 9, 32))
        >>> z, a = GatedAttentionPooling(units=16)(bags, return_attention_scores=True)
        >>> tuple(z.shape), tuple(a.shape)
        ((2, 32), (2, 9))

    Reference:
        Ilse, Tomczak, Welling, "Attention-based Deep Multiple Instance
        Learning", ICML 2018.
    """

    def __init__(
        self,
        units,
        *,
        gated=True,
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _validation.positive_int("units", units)
        self.gated = bool(gated)
        self.dropout = _validation.rate("dropout", dropout)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = _validation.seed("seed", seed)
        self.supports_masking = True

    def build(self, inputs_shape, mask_shape=None):
        _validation.rank("inputs", inputs_shape, 3)
        dim = _validation.known_last_dim("inputs", inputs_shape)
        self.v_kernel = self.add_weight(
            name="v_kernel", shape=(dim, self.units), initializer=self.kernel_initializer
        )
        self.v_bias = (
            self.add_weight(name="v_bias", shape=(self.units,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )
        if self.gated:
            self.u_kernel = self.add_weight(
                name="u_kernel", shape=(dim, self.units), initializer=self.kernel_initializer
            )
            self.u_bias = (
                self.add_weight(
                    name="u_bias", shape=(self.units,), initializer=self.bias_initializer
                )
                if self.use_bias
                else None
            )
        self.w_kernel = self.add_weight(
            name="w_kernel", shape=(self.units, 1), initializer=self.kernel_initializer
        )
        self.weights_dropout = keras.layers.Dropout(
            self.dropout, seed=self.seed, dtype=self.dtype_policy, name="weights_dropout"
        )
        self.weights_dropout.build((None, inputs_shape[1]))

    def call(self, inputs, mask=None, return_attention_scores=False, training=None):
        hidden = ops.matmul(inputs, self.v_kernel)
        if self.v_bias is not None:
            hidden = hidden + self.v_bias
        hidden = ops.tanh(hidden)
        if self.gated:
            gate = ops.matmul(inputs, self.u_kernel)
            if self.u_bias is not None:
                gate = gate + self.u_bias
            hidden = hidden * ops.sigmoid(gate)
        scores = ops.squeeze(ops.matmul(hidden, self.w_kernel), -1)  # (batch, K)
        weights = masked_softmax(scores, None if mask is None else ops.cast(mask, "bool"))
        dropped = self.weights_dropout(weights, training=training)
        pooled = ops.squeeze(ops.matmul(ops.expand_dims(dropped, 1), inputs), 1)
        return (pooled, weights) if return_attention_scores else pooled

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0], inputs_shape[-1])

    def _scores_shape(self, inputs_shape):
        return tuple(inputs_shape[:2])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "gated": self.gated,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "seed": self.seed,
            }
        )
        return config
