"""Greedy decoding of an autoregressive model, as TensorFlow ops (tf.function/SavedModel)."""

from __future__ import annotations

import tensorflow as tf

from keras_attention.decoding import _common


def greedy_search(step_fn, initial_state, start_tokens, end_token, max_length,
                  length_penalty=0.0, pad_token=0):
    """Decodes by taking the most probable token at every step.

    For each batch item: y_t = argmax_y log p(y | y_<t, X), until the end token or
    `max_length` tokens. The score of the result is `Σ_t log p(y_t) / lp(|Y|)`,
    with the length penalty of Wu et al. (2016), `lp(Y) = ((5 + |Y|) / 6)^α`, so
    it can be compared with `beam_search` scores (greedy's choices do not depend
    on α).

    The loop is a `tf.while_loop`, so this runs eagerly, inside `tf.function`
    and inside an exported SavedModel. It stops when every item has ended.

    Args:
        step_fn: `step_fn(tokens, state) -> (logits, new_state, attention)`:
            `tokens` int32 `(batch,)` are the previous tokens (the start tokens at
            the first step); `logits` `(batch, vocab)`; `new_state` has the
            structure of `state` (any nest of tensors with batch first);
            `attention` `(batch, *A)` (e.g. `(batch, T_in)` or `(batch, H', W')`)
            or None. Shapes other than the batch must not change between steps.
        initial_state: the state for the first step (nest of `(batch, ...)` tensors).
        start_tokens: int `(batch,)`: the first input token of each item.
        end_token: int: the token that ends a hypothesis.
        max_length: Python int: the most tokens generated (the end token counts).
        length_penalty: α >= 0 used for the reported score only.
        pad_token: written after the end of each sequence.

    Returns:
        A `DecodeResult(sequences (batch, max_length) int32, scores (batch,),
        lengths (batch,) int32, attention (batch, max_length, *A) or None)`.

    Example:
        >>> def step(tokens, state):
        ...     logits = tf.one_hot((tokens + 1) % 5, 5) * 3.0
        ...     return logits, state, None
        >>> result = greedy_search(step, {"h": tf.zeros([2, 1])}, tf.constant([1, 2]),
        ...                        end_token=0, max_length=6)
        >>> result.sequences.numpy()
        array([[2, 3, 4, 0, 0, 0],
               [3, 4, 0, 0, 0, 0]], dtype=int32)

    Reference:
        Sutskever, Vinyals, Le, "Sequence to Sequence Learning with Neural
        Networks", NeurIPS 2014; length penalty: Wu et al., "Google's Neural
        Machine Translation System", arXiv:1609.08144, 2016, section 7.
    """
    _common.check_arguments(max_length, length_penalty)
    start_tokens = tf.cast(tf.convert_to_tensor(start_tokens), tf.int32)
    end_token = tf.cast(end_token, tf.int32)
    pad = tf.cast(pad_token, tf.int32)
    batch = tf.shape(start_tokens)[0]

    def choose(t, finished, log_prob, lengths, sequences, attention, step_out):
        logits, state, step_attention = step_out
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        chosen = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        chosen_log_prob = tf.gather(log_probs, chosen, axis=1, batch_dims=1)
        alive = tf.logical_not(finished)
        token = tf.where(alive, chosen, pad)
        log_prob = log_prob + tf.where(alive, chosen_log_prob, 0.0)
        lengths = lengths + tf.cast(alive, tf.int32)
        sequences = _common.write_time(sequences, t, token)
        if step_attention is not None:
            mask = tf.reshape(tf.cast(alive, tf.float32),
                              [-1] + [1] * (step_attention.shape.rank - 1))
            attention = _common.write_time(attention, t, step_attention * mask)
        finished = tf.logical_or(finished, tf.equal(token, end_token))
        return t + 1, token, state, finished, log_prob, lengths, sequences, attention

    # The first step runs outside the loop: it fixes the shape of the attention buffer.
    first = _common.call_step(step_fn, start_tokens, initial_state)
    has_attention = first[2] is not None
    attention = _common.attention_buffer(first[2], batch, max_length)
    loop_vars = choose(
        tf.constant(0), tf.zeros([batch], tf.bool), tf.zeros([batch]),
        tf.zeros([batch], tf.int32), tf.zeros([batch, max_length], tf.int32), attention,
        first,
    )

    def cond(t, tokens, state, finished, *_):
        return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

    def body(t, tokens, state, finished, log_prob, lengths, sequences, attention):
        step_out = _common.call_step(step_fn, tokens, state)
        if not has_attention:
            step_out = (step_out[0], step_out[1], None)
        return choose(t, finished, log_prob, lengths, sequences, attention, step_out)

    _, _, _, _, log_prob, lengths, sequences, attention = tf.while_loop(
        cond, body, loop_vars, maximum_iterations=max_length - 1
    )
    sequences = _common.pad_after(sequences, lengths, pad)
    scores = log_prob / _common.length_penalty(tf.maximum(lengths, 1), length_penalty)
    return _common.DecodeResult(
        sequences, scores, lengths, attention if has_attention else None
    )
