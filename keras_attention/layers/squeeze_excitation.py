"""Squeeze-and-Excitation channel recalibration (Hu et al. 2018)."""

from __future__ import annotations

import keras

from keras_attention.layers import _excitation


@keras.saving.register_keras_serializable(package="keras_attention")
class SqueezeExcitation(_excitation.ChannelGate):
    """Squeeze-and-Excitation block: rescales each channel by a learned gate.

    For a channels-last feature map `U` with `C` channels:

        z = mean over positions of U                    (squeeze,    (batch, C))
        s = sigmoid(W2 · relu(W1 · z + b1) + b2)        (excitation, (batch, C))
        output = U ⊙ s                                  (channel rescale)

    `W1` maps `C` to `max(min_units, C // reduction)` units and `W2` maps back to
    `C`. Works on any channels-last map: sequences `(batch, T, C)`, images
    `(batch, H, W, C)` and volumes `(batch, D, H, W, C)`.

    Args:
        reduction: positive int, the reduction ratio `r` of the bottleneck.
        min_units: positive int, the smallest hidden width (so that few
            channels with a large `reduction` still give a valid MLP);
            keyword-only.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(batch, *spatial, C)` feature map.
        return_attention_scores: if True, also return the channel weights `s`.

    Returns:
        `(batch, *spatial, C)` rescaled map, and with
        `return_attention_scores=True` also the weights `(batch, C)` in (0, 1).

    Example:

    >>> x = keras.random.normal((2, 8, 8, 32))
    >>> y, s = SqueezeExcitation(reduction=4)(x, return_attention_scores=True)
    >>> tuple(y.shape), tuple(s.shape)
    ((2, 8, 8, 32), (2, 32))

    Reference:
        Hu, Shen, Sun. "Squeeze-and-Excitation Networks", CVPR 2018.
        https://arxiv.org/abs/1709.01507
    """

    pools = ("average",)
