"""Functional attention ops built on `keras.ops` (backend-agnostic).

`masked_softmax`, `merge_masks` and `causal_mask` are the masking primitives
every layer uses; `scaled_dot_product_attention` is the core attention kernel.
"""

from keras_attention._masking import causal_mask, masked_softmax, merge_masks

__all__ = ["causal_mask", "masked_softmax", "merge_masks"]
