"""Non-local block / SAGAN self-attention over the positions of a feature map."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_attention import _validation
from keras_attention._masking import masked_softmax
from keras_attention.layers import _common

_MODES = ("embedded_gaussian", "dot")


@keras.saving.register_keras_serializable(package="keras_attention")
class NonLocalBlock(_common.ScoresSpec, keras.layers.Layer):
    """Non-local block: every position attends to every position, behind a zero-initialised gate.

    For a channels-last map `x` with `N` positions (flattened) and `C` channels,
    with θ, φ, g and W 1×1 convolutions (`C -> C_i`, `W: C_i -> C`):

        f_ij = θ(x_i) · φ(x_j)
        a_ij = softmax_j(f_ij)        mode="embedded_gaussian" (SAGAN's attention)
        a_ij = f_ij / N'              mode="dot"
        y_i  = Σ_j a_ij g(x_j)
        z_i  = γ · W(y_i) + x_i       γ a learned scalar, initialised to 0

    so the block is the identity at initialisation and can be dropped into a
    pretrained network. With `sub_sample=True`, φ and g are max-pooled (2×2,
    stride 2, 'same'), so keys and values cover `N' = ceil(H/2)·ceil(W/2)`
    positions instead of `N' = N`. The softmax is the float16-safe
    `masked_softmax`. Also works on sequences `(batch, T, C)`, where a Keras
    padding mask (e.g. from `Embedding(mask_zero=True)`) removes padded
    positions from the keys (for "dot", `N'` counts the valid ones) and is
    passed on unchanged.

    Args:
        inter_channels: positive int `C_i`, or None for `max(1, C // 2)`.
        mode: "embedded_gaussian" (softmax) or "dot" (scaled by `1 / N'`).
        sub_sample: whether to max-pool φ and g.
            (`mode` and `sub_sample` are keyword-only.)
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C)` (or `(batch, T, C)`).
        mask: optional boolean `(batch, H, W)` (or `(batch, T)`), True for real
            positions; usually set by Keras from the previous layer.
        return_attention_scores: if True, also return the weights `a`.

    Returns:
        `(batch, H, W, C)`, and with `return_attention_scores=True` also the
        weights `(batch, H*W, N')` (rows sum to 1 in "embedded_gaussian" mode).

    Example:

    >>> x = keras.random.normal((2, 8, 8, 16))
    >>> z, a = NonLocalBlock(sub_sample=True)(x, return_attention_scores=True)
    >>> tuple(z.shape), tuple(a.shape)
    ((2, 8, 8, 16), (2, 64, 16))

    Reference:
        Wang, Girshick, Gupta, He. "Non-local Neural Networks", CVPR 2018.
        https://arxiv.org/abs/1711.07971
        Zhang, Goodfellow, Metaxas, Odena. "Self-Attention Generative
        Adversarial Networks", ICML 2019 (the γ gate).
        https://arxiv.org/abs/1805.08318
    """

    def __init__(
        self, inter_channels=None, *, mode="embedded_gaussian", sub_sample=False, **kwargs
    ):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.inter_channels = _validation.positive_int(
            "inter_channels", inter_channels, allow_none=True
        )
        self.mode = _validation.one_of("mode", mode, _MODES)
        self.sub_sample = bool(sub_sample)

    def build(self, input_shape):
        channels = _validation.channels("inputs", input_shape, (3, 4))
        self._inner = self.inter_channels or max(1, channels // 2)
        for name in ("theta", "phi", "g"):
            dense = keras.layers.Dense(self._inner, dtype=self.dtype_policy, name=name)
            dense.build((None, channels))
            setattr(self, name, dense)
        self.w = keras.layers.Dense(channels, dtype=self.dtype_policy, name="w")
        self.w.build((None, self._inner))
        self.pool = None
        if self.sub_sample:
            if len(input_shape) == 4:
                pool_cls = keras.layers.MaxPooling2D
            else:
                pool_cls = keras.layers.MaxPooling1D
            self.pool = pool_cls(2, strides=2, padding="same", dtype=self.dtype_policy, name="pool")
        self.gamma = self.add_weight(name="gamma", shape=(), initializer="zeros")

    def _flatten(self, x):
        return ops.reshape(x, (ops.shape(x)[0], -1, self._inner))

    def call(self, inputs, mask=None, return_attention_scores=False):
        theta = self._flatten(self.theta(inputs))
        phi, g = self.phi(inputs), self.g(inputs)
        key_mask = None
        if mask is not None:  # (batch, *spatial): True where a position is real
            key_mask = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        if self.pool is not None:
            phi, g = self.pool(phi), self.pool(g)
            if key_mask is not None:  # a pooled position is valid if any of its window is
                key_mask = self.pool(key_mask)
        phi, g = self._flatten(phi), self._flatten(g)
        if key_mask is not None:
            key_mask = ops.reshape(key_mask, (ops.shape(key_mask)[0], 1, -1)) > 0
        scores = ops.matmul(theta, ops.transpose(phi, (0, 2, 1)))
        if self.mode == "embedded_gaussian":
            weights = masked_softmax(scores, key_mask, axis=-1)
        elif key_mask is None:
            weights = scores / ops.cast(ops.shape(phi)[1], scores.dtype)
        else:
            valid = ops.cast(key_mask, scores.dtype)
            count = ops.maximum(ops.sum(valid, axis=-1, keepdims=True), 1.0)
            weights = scores * valid / count
        y = ops.matmul(weights, g)
        y = ops.reshape(y, (*ops.shape(inputs)[:-1], self._inner))
        outputs = inputs + ops.cast(self.gamma, inputs.dtype) * self.w(y)
        return (outputs, weights) if return_attention_scores else outputs

    def _scores_shape(self, input_shape):
        spatial = tuple(input_shape[1:-1])
        if self.sub_sample:
            keys = tuple(None if s is None else -(-s // 2) for s in spatial)
        else:
            keys = spatial
        n_q = None if None in spatial else math.prod(spatial)
        n_k = None if None in keys else math.prod(keys)
        return (input_shape[0], n_q, n_k)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "inter_channels": self.inter_channels,
                "mode": self.mode,
                "sub_sample": self.sub_sample,
            }
        )
        return config
