"""keras_attention: attention mechanisms for Keras 3.

Layers live in `keras_attention.layers`, functional attention in
`keras_attention.ops`, in-graph decoding in `keras_attention.decoding` and
attention plots in `keras_attention.plot` (imported on demand, it needs
matplotlib).
"""

from keras_attention import layers, ops

__version__ = "0.1.0"

__all__ = ["layers", "ops", "__version__"]
