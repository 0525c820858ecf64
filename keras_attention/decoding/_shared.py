"""What the TensorFlow search functions and the Keras samplers share; needs no TensorFlow.

The result type of `greedy_search`/`beam_search`, the length penalty of Wu et al.
(2016) and the argument checks live here so both paths agree on them.
"""

from __future__ import annotations

import collections

DecodeResult = collections.namedtuple(
    "DecodeResult", ["sequences", "scores", "lengths", "attention"]
)
DecodeResult.__doc__ = """The chosen hypothesis of each batch item.

Fields:
    sequences: int32 `(batch, max_length)`: the generated tokens, the end token
        included when one was generated, `pad_token` after it.
    scores: float32 `(batch,)`: the hypothesis' score, `log P(Y|X) / lp(|Y|)`.
    lengths: int32 `(batch,)`: tokens generated, the end token included.
    attention: float32 `(batch, max_length, *A)`: the attention weights the step
        function returned at each generated token (`A` = its shape per row, e.g.
        `(T_in,)` or `(H', W')`), zeros after the end; None if the step function
        returns None.
"""


def gnmt_length_penalty(length, alpha):
    """`lp(Y) = ((5 + |Y|) / 6)^α` (Wu et al., 2016, section 7) of a float `length`.

    Written with Python operators only, so it works on TensorFlow tensors as on
    any Keras backend's tensors (the caller casts `length` to a float).
    """
    return ((5.0 + length) / 6.0) ** alpha


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive Python int. Received: {name}={value!r}")
    return value


def check_length_penalty(value, name="length_penalty"):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(
            f"`{name}` (alpha) must be a number >= 0. Received: {name}={value!r}"
        )
    return float(value)


def check_arguments(max_length, length_penalty_alpha, beam_width=1):
    """The checks of `greedy_search` and `beam_search`."""
    check_positive_int("max_length", max_length)
    check_positive_int("beam_width", beam_width)
    check_length_penalty(length_penalty_alpha)
