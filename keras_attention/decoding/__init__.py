"""Decoding of autoregressive models: Keras samplers on every backend, in-graph TF search.

Two families:

- The samplers (`GreedySampler`, `BeamSampler`, `RandomSampler`, `TopKSampler`,
  `TopPSampler`, see `keras_attention.decoding.samplers`) are written with
  `keras.ops` only and run on TensorFlow, JAX and PyTorch. They drive a
  `next_fn(tokens, cache, index) -> (logits, new_cache)` callable, e.g. a
  decoder with the key/value cache of `keras_attention.layers.MultiHeadAttention`.
- `greedy_search` and `beam_search` (with `expand_to_beams` and `length_penalty`)
  take a `step_fn(tokens, state) -> (logits, new_state, attention)` and run as
  TensorFlow ops (a `tf.while_loop`), so they work eagerly, inside `tf.function`
  and inside an exported SavedModel. They need TensorFlow
  (`pip install keras-attention[tensorflow]`) and are imported on first use, so
  this package imports without it.
"""

import importlib

from keras_attention.decoding._shared import DecodeResult
from keras_attention.decoding.samplers import (
    BeamSampler,
    GreedySampler,
    RandomSampler,
    Sampler,
    TopKSampler,
    TopPSampler,
)

# Name -> (module, attribute) of what needs TensorFlow, imported on first access.
_TENSORFLOW_NAMES = {
    "beam_search": ("keras_attention.decoding.beam", "beam_search"),
    "expand_to_beams": ("keras_attention.decoding._common", "expand_to_beams"),
    "greedy_search": ("keras_attention.decoding.greedy", "greedy_search"),
    "length_penalty": ("keras_attention.decoding._common", "length_penalty"),
}


def __getattr__(name):
    if name not in _TENSORFLOW_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        import tensorflow  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"keras_attention.decoding.{name} runs as TensorFlow ops (so it runs inside "
            "SavedModels) and needs TensorFlow, which is not installed: "
            "`pip install keras-attention[tensorflow]`. The samplers of "
            "keras_attention.decoding (GreedySampler, BeamSampler, TopKSampler, ...), the "
            "layers and keras_attention.ops need only Keras and a backend."
        ) from err
    found = {
        key: getattr(importlib.import_module(module), attr)
        for key, (module, attr) in _TENSORFLOW_NAMES.items()
    }
    globals().update(found)  # later look-ups skip this function
    return found[name]


def __dir__():
    return sorted(set(globals()) | set(_TENSORFLOW_NAMES))


__all__ = [
    "BeamSampler",
    "DecodeResult",
    "GreedySampler",
    "RandomSampler",
    "Sampler",
    "TopKSampler",
    "TopPSampler",
    *sorted(_TENSORFLOW_NAMES),
]
