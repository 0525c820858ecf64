"""Pointer-generator output: copy source tokens through the attention (See et al. 2017)."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation


def _valid_ids(source_ids, vocab: int):
    """`(ids, valid)`: the source ids as int32 with those outside `[0, vocab)` set to 0,
    and True where an id is inside (it may be copied)."""
    ids = ops.cast(source_ids, "int32")
    valid = ops.logical_and(ids >= 0, ids < vocab)
    return ops.where(valid, ids, 0), valid


def _scatter_attention(weights, ids, vocab: int, step_wise: bool):
    """`copy[b, (t,) w] = sum of weights[b, (t,) i] over the i with ids[b, i] == w`.

    One segment sum of the `batch (* T_out) * T_in` weights into `batch (* T_out) *
    vocab` segments, laid out as the output: memory and time of the output's size
    (no transpose of it), not of a `(batch, T_in, vocab)` one-hot. `ids` must lie in
    `[0, vocab)` (`_valid_ids`).
    """
    batch = ops.shape(ids)[0]
    if step_wise:  # weights (batch, T_in): rows b
        rows = ops.arange(batch, dtype="int32")[:, None]
        size = batch
    else:  # weights (batch, T_out, T_in): rows b * T_out + t
        t_out = ops.shape(weights)[1]
        rows = (ops.arange(batch, dtype="int32")[:, None, None] * t_out
                + ops.arange(t_out, dtype="int32")[None, :, None])
        ids = ids[:, None, :]
        size = batch * t_out
    segments = ops.reshape(rows * vocab + ids, (-1,))
    summed = ops.segment_sum(ops.reshape(weights, (-1,)), segments, num_segments=size * vocab)
    return ops.reshape(summed, ops.shape(weights)[:-1] + (vocab,))


@keras.saving.register_keras_serializable(package="keras_attention")
class PointerGenerator(keras.layers.Layer):
    """Mixes a decoder's vocabulary distribution with a copy of the attended source tokens.

    At each output step (See, Liu and Manning 2017, eqs. 8-9):

        p_gen  = sigm(wᵀ f + b)
        P(w)   = p_gen · softmax(logits)_w + (1 - p_gen) · Σ_{i: x_i = w} a_i

    where `f` are the step's features (e.g. the attentional vector), `a` the
    attention over the source and `x` the source token ids. A token the
    decoder's softmax barely knows (a name, an identifier, a number) can still
    come out by attending to it. The copy needs source and target ids in one
    vocabulary (a joint subword vocabulary, for instance); a source id outside
    `[0, vocab_size)` copies nothing. Padding positions need attention weight 0.
    The copy distribution is normalized to sum to 1 (weights that sum to less,
    such as local-p attention's, are rescaled); a step whose weights are all 0
    copies nothing (`p_gen` = 1 there), so the output always sums to 1.

    The layer returns log-probabilities, not logits: `log_softmax` leaves them
    unchanged, so a loss with `from_logits=True` and decoders that apply
    `log_softmax` (`keras_attention.decoding`) take them as they are.

    Args:
        epsilon: added to the mixed probabilities before the log, so that a
            token with probability 0 has a finite score.
        kernel_initializer: initializer of `w`.
        bias_initializer: initializer of `b`.

    Every argument is keyword-only.

    Call arguments:
        logits: `(batch, vocab)` or `(batch, T_out, vocab)`, the decoder's scores.
        attention: `(batch, T_in)` or `(batch, T_out, T_in)`, non-negative weights.
        source_ids: int `(batch, T_in)`.
        features: `(batch, dim)` or `(batch, T_out, dim)`, what the gate reads.
        return_gate: also return `p_gen`, `(batch[, T_out])`.

    Returns:
        Log-probabilities shaped like `logits`; with `return_gate`, also `p_gen`.

    Example:
        >>> logits = keras.random.normal((2, 10))
        >>> attention = ops.softmax(keras.random.normal((2, 3)))
        >>> source_ids = ops.convert_to_tensor([[4, 5, 0], [7, 7, 1]])
        >>> log_p = PointerGenerator()(logits, attention, source_ids, keras.random.normal((2, 8)))
        >>> tuple(log_p.shape), round(float(ops.sum(ops.exp(log_p[0]))), 3)
        ((2, 10), 1.0)

    Reference:
        See, Liu, Manning, "Get To The Point: Summarization with
        Pointer-Generator Networks", ACL 2017.
    """

    def __init__(self, *, epsilon=1e-9, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.epsilon = _validation.non_negative_float("epsilon", epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, logits_shape, attention_shape=None, source_ids_shape=None,
              features_shape=None):
        if features_shape is None:
            raise ValueError("PointerGenerator needs `features` (what the gate reads).")
        _validation.known_last_dim("logits", logits_shape)
        dim = _validation.known_last_dim("features", features_shape)
        self.kernel = self.add_weight(name="kernel", shape=(dim, 1),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(1,), initializer=self.bias_initializer)

    def call(self, logits, attention, source_ids, features, return_gate=False):
        vocab = int(logits.shape[-1])
        step_wise = len(logits.shape) == 2
        if len(attention.shape) != len(logits.shape):
            raise ValueError(f"attention {tuple(attention.shape)} must have the rank of logits "
                             f"{tuple(logits.shape)}.")
        gate = ops.sigmoid(ops.matmul(features, ops.cast(self.kernel, features.dtype))
                           + ops.cast(self.bias, features.dtype))
        p_vocab = ops.softmax(logits, axis=-1)
        gate = ops.cast(gate, p_vocab.dtype)
        ids, valid = _valid_ids(source_ids, vocab)
        if not step_wise:
            valid = ops.expand_dims(valid, 1)
        weights = ops.where(valid, ops.cast(attention, p_vocab.dtype), 0.0)
        # The copy's share (1 - p_gen) over its normalized weights, on the small
        # (batch, [T_out,] T_in) weights rather than on the (..., vocab) copy.
        total = ops.sum(weights, axis=-1, keepdims=True)
        copies = total > 0
        gate = ops.where(copies, gate, ops.ones_like(gate))
        share = (1.0 - gate) / ops.where(copies, total, ops.ones_like(total))
        copy = _scatter_attention(weights * share, ids, vocab, step_wise)
        log_p = ops.log(gate * p_vocab + copy + self.epsilon)
        if return_gate:
            return log_p, ops.squeeze(gate, -1)
        return log_p

    def compute_output_spec(self, logits, attention, source_ids, features, return_gate=False):
        out = keras.KerasTensor(logits.shape, dtype=self.compute_dtype)
        if return_gate:
            return out, keras.KerasTensor(logits.shape[:-1], dtype=self.compute_dtype)
        return out

    def get_config(self):
        config = super().get_config()
        config.update({
            "epsilon": self.epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        })
        return config
