"""NumPy references for the CNN attention layers, written from the papers' equations.

Shared by the tests of SqueezeExcitation, ChannelAttention, SpatialAttention and
CBAM; they read the layers' weights but none of their code.
"""

from __future__ import annotations

import keras
import numpy as np


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def randomise(layer, seed=1, scale=0.5):
    """Replaces every weight by N(0, scale²) noise (zero-initialised biases would hide bugs)."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32") * scale)


def excitation_mlp(mlp, z):
    """`W2 · relu(W1 · z + b1) + b2` with the weights of an `ExcitationMLP`."""
    hidden = np.maximum(z @ numpy(mlp.reduce.kernel) + numpy(mlp.reduce.bias), 0.0)
    return hidden @ numpy(mlp.expand.kernel) + numpy(mlp.expand.bias)


def squeeze_excitation(layer, x):
    """Hu et al. (2018), Eqs. 2-4: z = GAP(U), s = σ(W2 δ(W1 z)), Ũ = s · U."""
    axes = tuple(range(1, x.ndim - 1))
    s = sigmoid(excitation_mlp(layer.mlp, x.mean(axis=axes)))
    return x * s.reshape((x.shape[0],) + (1,) * (x.ndim - 2) + (-1,)), s


def channel_attention(layer, x):
    """Woo et al. (2018), Eq. 2: M_c = σ(MLP(AvgPool(F)) + MLP(MaxPool(F))), F' = M_c ⊗ F."""
    axes = tuple(range(1, x.ndim - 1))
    logits = excitation_mlp(layer.mlp, x.mean(axis=axes)) + excitation_mlp(
        layer.mlp, x.max(axis=axes)
    )
    m = sigmoid(logits)
    return x * m.reshape((x.shape[0],) + (1,) * (x.ndim - 2) + (-1,)), m


def conv2d_same(x, kernel, bias):
    """Stride-1 'same' cross-correlation with zero padding; kernel `(k, k, C_in, C_out)`."""
    k = kernel.shape[0]
    pad = k // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],), dtype="float64")
    for i in range(k):
        for j in range(k):
            window = padded[:, i : i + height, j : j + width]
            out += np.einsum("bhwc,co->bhwo", window, kernel[i, j])
    return out + bias


def spatial_attention(layer, x):
    """Woo et al. (2018), Eq. 3: M_s = σ(f^{k×k}([AvgPool_c(F); MaxPool_c(F)])), F'' = M_s ⊗ F."""
    pooled = np.concatenate([x.mean(-1, keepdims=True), x.max(-1, keepdims=True)], axis=-1)
    m = sigmoid(conv2d_same(pooled, numpy(layer.conv.kernel), numpy(layer.conv.bias)))
    return x * m, m


def functional_model(layer, input_shape):
    """`Input -> layer(return_attention_scores=True)`, a model with two outputs."""
    inputs = keras.Input(input_shape)
    outputs, scores = layer(inputs, return_attention_scores=True)
    return keras.Model(inputs, [outputs, scores])
