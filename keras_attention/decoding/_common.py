"""What the TensorFlow greedy and beam search share: the length penalty, buffers, steps."""

from __future__ import annotations

import tensorflow as tf

from keras_attention.decoding._shared import (  # noqa: F401
    DecodeResult,
    check_arguments,
    gnmt_length_penalty,
)


def length_penalty(length, alpha):
    """Wu et al. (2016): `lp(Y) = (5 + |Y|)^α / (5 + 1)^α`; `alpha=0` gives 1."""
    return gnmt_length_penalty(tf.cast(length, tf.float32), tf.cast(alpha, tf.float32))


def call_step(step_fn, tokens, state):
    """Calls the step function and checks/normalizes what it returns."""
    out = step_fn(tokens, state)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise ValueError(
            "`step_fn(tokens, state)` must return `(logits, new_state, attention)`; "
            f"received {type(out).__name__!s}: {out!r:.200}"
        )
    logits, new_state, attention = out
    logits = tf.cast(logits, tf.float32)
    if logits.shape.rank != 2:
        raise ValueError(
            f"`step_fn` must return logits of shape (batch, vocab). Received: {logits.shape}"
        )
    tf.nest.assert_same_structure(state, new_state)
    if attention is not None:
        attention = tf.cast(attention, tf.float32)
    return logits, new_state, attention


def one_hot_time(t, length, extra_dims):
    """A `(1, length, 1, ..., 1)` indicator of position `t` (with `extra_dims` trailing 1s)."""
    hot = tf.one_hot(t, length, dtype=tf.float32)
    return tf.reshape(hot, [1, length] + [1] * extra_dims)


def write_time(buffer, t, values):
    """`buffer[:, t] = values` for a buffer `(N, L, ...)` that is zero at `t`."""
    extra = values.shape.rank - 1
    hot = one_hot_time(t, buffer.shape[1], extra)
    return buffer + tf.cast(hot, buffer.dtype) * tf.expand_dims(values, 1)


def pad_after(sequences, lengths, pad_token):
    positions = tf.range(tf.shape(sequences)[1])[None, :]
    return tf.where(positions < lengths[:, None], sequences, tf.cast(pad_token, sequences.dtype))


def zero_after(attention, lengths):
    if attention is None:
        return None
    positions = tf.range(tf.shape(attention)[1])[None, :]
    keep = tf.cast(positions < lengths[:, None], attention.dtype)
    keep = tf.reshape(keep, tf.concat([tf.shape(keep), tf.ones([attention.shape.rank - 2],
                                                                 tf.int32)], 0))
    return attention * keep


def expand_to_beams(nested, beam_width):
    """Repeats every row of every tensor in `nested` `beam_width` times (row b -> b*K..b*K+K-1)."""
    return tf.nest.map_structure(lambda x: tf.repeat(x, beam_width, axis=0), nested)


def gather_rows(nested, indices):
    return tf.nest.map_structure(lambda x: tf.gather(x, indices, axis=0), nested)


def attention_buffer(step_attention, rows, max_length):
    """A zero `(rows, max_length, *A)` buffer for the step attention `(rows, *A)`.

    Without attention (None) a `(rows, max_length, 0)` placeholder keeps the loop
    variables uniform.
    """
    if step_attention is None:
        return tf.zeros([rows, max_length, 0], tf.float32)
    inner = step_attention.shape.as_list()[1:]
    buffer = tf.zeros(tf.concat([[rows, max_length], tf.shape(step_attention)[1:]], 0))
    return tf.ensure_shape(buffer, [None, max_length] + inner)
