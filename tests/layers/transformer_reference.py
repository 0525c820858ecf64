"""NumPy reference of the Transformer blocks, written from Vaswani et al. (2017)."""

import keras
import numpy as np


def _np(x):
    return keras.ops.convert_to_numpy(x).astype("float64")


def layer_norm(norm, x):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return _np(norm.gamma) * (x - mean) / np.sqrt(var + norm.epsilon) + _np(norm.beta)


def multi_head_attention(mha, query, value, mask=None):
    """softmax(Q Kᵀ/√d + mask) V per head, then W^O; `mask` `(batch, T_q, T_k)` True=attend."""
    q = np.einsum("btd,dhk->bthk", query, _np(mha.query_dense.kernel)) + _np(mha.query_dense.bias)
    k = np.einsum("btd,dhk->bthk", value, _np(mha.key_dense.kernel)) + _np(mha.key_dense.bias)
    v = np.einsum("btd,dhk->bthk", value, _np(mha.value_dense.kernel)) + _np(mha.value_dense.bias)
    scores = np.einsum("bqhk,bthk->bhqt", q, k) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask[:, None], scores, -np.inf)
    scores = scores - np.max(scores, -1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(-1, keepdims=True)
    context = np.einsum("bhqt,bthk->bqhk", weights, v)
    out = np.einsum("bqhk,hkd->bqd", context, _np(mha.output_dense.kernel))
    return out + _np(mha.output_dense.bias), weights


def feed_forward(block, x):
    hidden = x @ _np(block.feedforward_intermediate_dense.kernel) + _np(
        block.feedforward_intermediate_dense.bias
    )
    hidden = np.maximum(hidden, 0.0)  # relu
    out = hidden @ _np(block.feedforward_output_dense.kernel)
    return out + _np(block.feedforward_output_dense.bias)


def _sublayer(block, norm, x, fn):
    if block.norm_first:
        out, weights = fn(layer_norm(norm, x))
        return x + out, weights
    out, weights = fn(x)
    return layer_norm(norm, x + out), weights


def encoder_block(block, x, mask=None):
    x = x.astype("float64")
    x, weights = _sublayer(
        block,
        block.self_attention_layer_norm,
        x,
        lambda h: multi_head_attention(block.self_attention, h, h, mask),
    )
    x, _ = _sublayer(block, block.feedforward_layer_norm, x, lambda h: (feed_forward(block, h), 0))
    return x, weights


def decoder_block(block, x, encoder=None, encoder_mask=None):
    x = x.astype("float64")
    t = x.shape[1]
    causal = np.broadcast_to(np.tril(np.ones((t, t), bool)), (x.shape[0], t, t))
    x, self_weights = _sublayer(
        block,
        block.self_attention_layer_norm,
        x,
        lambda h: multi_head_attention(block.self_attention, h, h, causal),
    )
    cross_weights = None
    if encoder is not None:
        mask = None
        if encoder_mask is not None:
            mask = np.broadcast_to(encoder_mask[:, None, :], (x.shape[0], t, encoder.shape[1]))
        x, cross_weights = _sublayer(
            block,
            block.cross_attention_layer_norm,
            x,
            lambda h: multi_head_attention(
                block.cross_attention, h, encoder.astype("float64"), mask
            ),
        )
    x, _ = _sublayer(block, block.feedforward_layer_norm, x, lambda h: (feed_forward(block, h), 0))
    return x, self_weights, cross_weights


def randomise(layer, seed=1, scale=0.3):
    """Gives every weight (LayerNorm gains and biases included) a random value."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        if w.trainable:
            w.assign(
                (rng.normal(size=w.shape) * scale + (1.0 if "gamma" in w.path else 0.0)).astype(
                    w.dtype
                )
            )
