"""Checks every layer must pass, written once and called from each layer's tests.

Each helper takes a factory `make()` that returns a fresh layer and the call
inputs, so a test reads as a list of what the layer promises.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf


def _as_list(x):
    if isinstance(x, dict):
        return [x[k] for k in sorted(x)]
    if isinstance(x, (list, tuple)):
        out = []
        for item in x:
            out.extend(_as_list(item))
        return out
    return [x]


def outputs_close(a, b, atol=1e-5, rtol=1e-5):
    for x, y in zip(_as_list(a), _as_list(b), strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y), atol=atol, rtol=rtol
        )


def config_round_trip(layer):
    """`from_config(get_config())` rebuilds a layer with an identical config."""
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    return clone


def keras_file_round_trip(model, inputs, tmp_path, atol=1e-5):
    """Saves `model` to `.keras`, loads it back and checks outputs are equal."""
    path = os.path.join(str(tmp_path), "model.keras")
    expected = model(inputs)
    model.save(path)
    restored = keras.saving.load_model(path)
    outputs_close(expected, restored(inputs), atol=atol)
    return restored


def runs_under_xla(fn, *args, **kwargs):
    """`fn` traced by `tf.function(jit_compile=True)` gives the eager result."""
    eager = fn(*args, **kwargs)
    compiled = tf.function(fn, jit_compile=True)(*args, **kwargs)
    outputs_close(eager, compiled, atol=1e-4, rtol=1e-4)
    return compiled


def runs_in_mixed_float16(make_layer, inputs):
    """Under `mixed_float16` the layer computes in float16 and gives finite outputs."""
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = make_layer()
        out = layer(*inputs) if isinstance(inputs, tuple) else layer(inputs)
    finally:
        keras.config.set_dtype_policy("float32")
    for x in _as_list(out):
        arr = keras.ops.convert_to_numpy(x)
        if np.issubdtype(arr.dtype, np.floating):
            assert np.all(np.isfinite(arr)), "non-finite output under mixed_float16"
    return layer, out


def one_training_step_changes_weights(model, x, y, loss="mse"):
    """A step of SGD moves every trainable weight that gets a gradient and gives finite loss."""
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, epochs=1, batch_size=len(x), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [w.numpy() for w in model.trainable_weights]
    changed = sum(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    assert changed > 0, "no trainable weight moved after a training step"
