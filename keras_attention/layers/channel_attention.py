"""CBAM channel attention: a shared MLP over average- and max-pooled descriptors."""

from __future__ import annotations

import keras

from keras_attention.layers import _excitation


@keras.saving.register_keras_serializable(package="keras_attention")
class ChannelAttention(_excitation.ChannelGate):
    """Channel attention of CBAM: which channels matter, from two descriptors.

    For a channels-last feature map `F` with `C` channels:

        MLP(z)  = W1 · relu(W0 · z + b0) + b1          (shared weights)
        M_c(F)  = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))      (batch, C)
        output  = F ⊙ M_c(F)

    The pooling runs over all positions; `W0` maps `C` to
    `max(min_units, C // reduction)` units. Without the max branch this is the
    excitation of `SqueezeExcitation` (the two layers share the MLP code).

    Args:
        reduction: positive int, the reduction ratio `r` of the shared MLP.
        min_units: positive int, the smallest hidden width (keyword-only).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `(batch, *spatial, C)` feature map (sequence, image or volume).
        return_attention_scores: if True, also return the channel weights.

    Returns:
        `(batch, *spatial, C)` refined map, and with
        `return_attention_scores=True` also `M_c` of shape `(batch, C)`.

    Example:

    >>> x = keras.random.normal((2, 8, 8, 32))
    >>> y, m = ChannelAttention(reduction=8)(x, return_attention_scores=True)
    >>> tuple(m.shape)
    (2, 32)

    Reference:
        Woo, Park, Lee, Kweon. "CBAM: Convolutional Block Attention Module",
        ECCV 2018. https://arxiv.org/abs/1807.06521
    """

    pools = ("average", "max")
