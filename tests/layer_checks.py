"""Checks every layer must pass, written once and called from each layer's tests.

`run_layer_test` runs the checks every layer shares (config, `.keras` file,
weight counts, a training step, mixed precision, seeded dropout) from the
layer's class, constructor arguments and call inputs; each layer's test file
calls it once. The smaller helpers are for the layer-specific tests.

Nothing here imports TensorFlow unless the backend is TensorFlow: the layer tests
run on JAX and PyTorch too (tests/test_backends.py).
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest


def _as_list(x):
    if isinstance(x, dict):
        return [x[k] for k in sorted(x)]
    if isinstance(x, (list, tuple)):
        out = []
        for item in x:
            out.extend(_as_list(item))
        return out
    return [x]


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def outputs_close(a, b, atol=1e-5, rtol=1e-5):
    for x, y in zip(_as_list(a), _as_list(b), strict=True):
        np.testing.assert_allclose(_numpy(x), _numpy(y), atol=atol, rtol=rtol)


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


def backend():
    return keras.backend.backend()


def tensorflow_only(why):
    """Marks a test (or, as `pytestmark`, a module) that tests something TensorFlow has and
    the other backends do not; `why` names it. Skipped on JAX and PyTorch."""
    return pytest.mark.skipif(backend() != "tensorflow", reason=f"TensorFlow only: {why}")


def runs_under_xla(fn, *args, **kwargs):
    """`fn` compiled by XLA gives the eager result: traced by
    `tf.function(jit_compile=True)` on TensorFlow, by `jax.jit` on JAX (array arguments
    traced, the rest static; the first eager call builds the layers). PyTorch has no XLA
    compiler: the test is skipped there, after the eager call."""
    eager = fn(*args, **kwargs)
    if backend() == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(fn, jit_compile=True)(*args, **kwargs)
    elif backend() == "jax":
        import jax

        traced = [i for i, a in enumerate(args) if hasattr(a, "shape")]

        def with_arrays(*arrays):
            full = list(args)
            for i, a in zip(traced, arrays, strict=True):
                full[i] = a
            return fn(*full, **kwargs)

        arrays = [keras.ops.convert_to_tensor(_numpy(args[i])) for i in traced]
        compiled = jax.jit(with_arrays)(*arrays)
    else:
        pytest.skip(f"XLA compilation: the {backend()} backend has no XLA compiler")
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
        arr = _numpy(x)
        if np.issubdtype(arr.dtype, np.floating):
            assert np.all(np.isfinite(arr)), "non-finite output under mixed_float16"
    return layer, out


def one_training_step_changes_weights(model, x, y, loss="mse"):
    """A step of SGD moves every trainable weight that gets a gradient and gives finite loss."""
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(x, y, epochs=1, batch_size=len(_as_list(x)[0]), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [w.numpy() for w in model.trainable_weights]
    changed = sum(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    assert changed > 0, "no trainable weight moved after a training step"


def seed_generators(layer):
    """The `keras.random.SeedGenerator`s of `layer` and its sub-layers."""
    found = {}
    for sublayer in layer._flatten_layers(include_self=True, recursive=True):
        for generator in sublayer._seed_generators:
            found[id(generator)] = generator
    return list(found.values())


def _randomise_trainable(layer, seed=1, scale=0.3):
    """Moves the trainable weights off their initial values (zero biases, a zero gate ...)."""
    rng = np.random.default_rng(seed)
    for weight in layer.trainable_weights:
        weight.assign(_numpy(weight) + rng.normal(size=weight.shape).astype("float32") * scale)


def _functional(layer, inputs, call_kwargs):
    """A model from `inputs`-shaped `keras.Input`s through `layer` to all its outputs."""
    symbolic = tuple(keras.Input(x.shape[1:], dtype=x.dtype) for x in inputs)
    outputs = layer(*symbolic, **call_kwargs)
    return keras.Model(list(symbolic), list(outputs) if isinstance(outputs, tuple) else outputs)


def run_layer_test(
    layer_cls,
    init_kwargs,
    inputs,
    *,
    tmp_path,
    call_kwargs=None,
    expected_output_shape=None,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights=0,
    expected_num_seed_generators=None,
    run_training_check=True,
    mixed_precision_inputs=None,
    atol=1e-5,
):
    """The checks every layer passes, for `layer_cls(**init_kwargs)` called on `inputs`.

    1. config: `from_config(get_config())` has the same config, which holds every
       constructor argument (those not serialized to a dict: initializers are);
    2. weights: called on `inputs`, the layer has `expected_num_trainable_weights`
       trainable and `expected_num_non_trainable_weights` non-trainable weights
       (and `expected_num_seed_generators` seed generators, when given), and its
       first output has `expected_output_shape` (when given);
    3. `.keras` file: a functional model around the layer (its trainable weights
       moved off their initial values) saved and loaded gives the same outputs;
    4. training (unless `run_training_check=False`): one SGD step on the first
       output changes a trainable weight and gives a finite loss;
    5. mixed precision: under `mixed_float16` (on `mixed_precision_inputs`, by
       default `inputs`) every floating output is float16 and finite, and every
       weight float32;
    6. seed: with a `seed` in `init_kwargs`, two layers from one config with the
       same weights give the same outputs while training (dropout included).

    `inputs` is an array or a tuple of arrays: the positional call arguments, the
    first axis the batch. `call_kwargs` are further call arguments (not tensors).
    Returns the layer built in step 2.
    """
    call_kwargs = dict(call_kwargs or {})
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)

    # 1. config
    layer = layer_cls(**init_kwargs)
    config = config_round_trip(layer).get_config()
    for name, value in init_kwargs.items():
        if not isinstance(config[name], dict):
            assert config[name] == value, (name, config[name], value)

    # 2. weights, seed generators and output shape
    outputs = layer(*inputs, **call_kwargs)
    assert len(layer.trainable_weights) == expected_num_trainable_weights, [
        w.path for w in layer.trainable_weights
    ]
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, [
        w.path for w in layer.non_trainable_weights
    ]
    if expected_num_seed_generators is not None:
        assert len(seed_generators(layer)) == expected_num_seed_generators
    first = _as_list(outputs)[0]
    if expected_output_shape is not None:
        assert tuple(first.shape) == tuple(expected_output_shape), first.shape

    # 3. `.keras` file
    saved = layer_cls(**init_kwargs)
    model = _functional(saved, inputs, call_kwargs)
    _randomise_trainable(saved)
    keras_file_round_trip(model, list(inputs), tmp_path, atol=atol)

    # 4. one training step
    if run_training_check:
        trained = layer_cls(**init_kwargs)
        model = _functional(trained, inputs, call_kwargs)
        model = keras.Model(model.inputs, _as_list(model.outputs)[0])
        # (A seed of its own: tests often make their inputs with seed 0.)
        target = np.random.default_rng(1234).normal(size=first.shape).astype("float32")
        one_training_step_changes_weights(model, list(inputs), target)

    # 5. mixed precision
    half_inputs = inputs if mixed_precision_inputs is None else mixed_precision_inputs
    half_inputs = half_inputs if isinstance(half_inputs, tuple) else (half_inputs,)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        half = layer_cls(**init_kwargs)
        half_outputs = half(*half_inputs, **call_kwargs)
    finally:
        keras.config.set_dtype_policy("float32")
    for x in _as_list(half_outputs):
        if keras.backend.is_float_dtype(x.dtype):
            assert keras.backend.standardize_dtype(x.dtype) == "float16", x.dtype
            assert np.all(np.isfinite(_numpy(x).astype("float32"))), "non-finite float16 output"
    for weight in half.weights:
        assert keras.backend.standardize_dtype(weight.dtype) == "float32", weight.path

    # 6. seeded randomness
    if init_kwargs.get("seed") is not None:
        a, b = layer_cls(**init_kwargs), layer_cls(**init_kwargs)
        a(*inputs, **call_kwargs)
        b(*inputs, **call_kwargs)
        b.set_weights(a.get_weights())
        kwargs = dict(call_kwargs, training=True)
        outputs_close(a(*inputs, **kwargs), b(*inputs, **kwargs), atol=0, rtol=0)
    return layer
