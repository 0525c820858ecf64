"""Eager argument checks shared by every layer; errors name the argument and the value."""

from __future__ import annotations

from collections.abc import Iterable


def boolean(name: str, value):
    """Returns `value` if it is a bool (not 0/1, not a string), else raises."""
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be true or false. Received: {name}={value!r}")
    return value


def positive_int(name: str, value, allow_none: bool = False):
    """Returns `value` if it is a positive int (or None when allowed), else raises."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def non_negative_int(name: str, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer. Received: {name}={value!r}")
    return value


def positive_float(name: str, value):
    """A number > 0 (not a bool), returned as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive float. Received: {name}={value!r}")
    return float(value)


def non_negative_float(name: str, value):
    """A number >= 0 (not a bool), returned as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative float. Received: {name}={value!r}")
    return float(value)


def rate(name: str, value):
    """A probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")
    return float(value)


def one_of(name: str, value, choices: Iterable):
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


def rank(name: str, shape, ranks):
    """Checks that a (possibly partially known) shape has one of `ranks`."""
    ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    if shape is None or len(shape) not in ranks:
        expected = " or ".join(str(r) for r in ranks)
        raise ValueError(
            f"`{name}` must have rank {expected}. Received: {name}.shape={tuple(shape or ())}"
        )
    return shape


def same_dim(name_a: str, dim_a, name_b: str, dim_b):
    """Checks two static dimensions agree (unknown dimensions pass)."""
    if dim_a is not None and dim_b is not None and dim_a != dim_b:
        raise ValueError(
            f"The last dimension of `{name_a}` ({dim_a}) must equal that of `{name_b}` "
            f"({dim_b})."
        )


def scores_without_chunks(return_attention_scores: bool, chunk_size):
    """The memory-efficient (chunked) path never forms the weights it would return."""
    if return_attention_scores and chunk_size is not None:
        raise ValueError(
            "`return_attention_scores=True` cannot be used with the memory-efficient "
            f"path. Received: chunk_size={chunk_size}; use chunk_size=None to get "
            "the weights."
        )


def seed(name: str, value):
    """None or a non-negative int: what `keras.random.SeedGenerator` and `Dropout` take."""
    if value is None:
        return None
    return non_negative_int(name, value)


def known_last_dim(name: str, shape, what: str = "last dimension") -> int:
    """The static last dimension of `shape`; raises, naming `name`, when it is unknown."""
    if shape[-1] is None:
        raise ValueError(
            f"The {what} of `{name}` must be known. Received: {name}.shape={tuple(shape)}"
        )
    return int(shape[-1])


def channels(name: str, shape, ranks) -> int:
    """The static channel count of a channels-last feature map of one of `ranks`."""
    rank(name, shape, ranks)
    return known_last_dim(name, shape, "channel dimension (last axis)")
