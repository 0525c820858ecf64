"""In-graph decoding of autoregressive models: greedy and beam search.

Both take a model-agnostic step function
`step_fn(tokens, state) -> (logits, new_state, attention)` and run as
TensorFlow ops (a `tf.while_loop`), so they work eagerly, inside `tf.function`
and inside an exported SavedModel. The state is any nest of tensors with the
rows first; beam search reorders it by beam. A step function that needs the
time step (a position, a cache index) keeps a counter in its state.

It needs TensorFlow (`pip install keras-attention[tensorflow]`); the layers and
`keras_attention.ops` do not.
"""

try:
    import tensorflow  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised in a process without TensorFlow
    raise ImportError(
        "keras_attention.decoding runs greedy and beam search as TensorFlow ops (so they run "
        "inside SavedModels) and needs TensorFlow, which is not installed: "
        "`pip install keras-attention[tensorflow]`. The layers and keras_attention.ops need "
        "only Keras and a backend."
    ) from err

from keras_attention.decoding._common import (  # noqa: F401
    DecodeResult,
    expand_to_beams,
    length_penalty,
)
from keras_attention.decoding.beam_search import beam_search  # noqa: F401
from keras_attention.decoding.greedy import greedy_search  # noqa: F401

__all__ = ["DecodeResult", "beam_search", "expand_to_beams", "greedy_search", "length_penalty"]
