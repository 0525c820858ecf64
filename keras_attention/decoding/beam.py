"""Batched beam search with the length penalty of Wu et al. (2016), as TensorFlow ops."""

from __future__ import annotations

import tensorflow as tf

from keras_attention.decoding import _common

_NEG_INF = float("-inf")


def beam_search(step_fn, initial_state, start_tokens, end_token, max_length, beam_width=4,
                length_penalty=0.0, pad_token=0):
    """Decodes with a beam of `beam_width` hypotheses per batch item.

    Each hypothesis Y is scored by `s(Y) = log P(Y|X) / lp(Y)` with the length
    penalty of Wu et al. (2016):

        lp(Y) = (5 + |Y|)^α / (5 + 1)^α           (|Y| counts the end token)

    At each step the `beam_width` alive hypotheses are extended by every token;
    of the `2 * beam_width` best extensions (by log P), those that end with
    `end_token` and rank within the first `beam_width` are finished (as in
    fairseq), and the `beam_width` best that do not end stay alive. The search
    stops for an item when no alive hypothesis can still beat its best finished
    one (log P only falls as Y grows, so the bound is `log P / lp(max_length)`),
    or at `max_length`, where the alive hypotheses are finished as they are.
    The best finished hypothesis under `s` is returned, with the attention
    weights of the steps that produced it. With `beam_width=1` and `α = 0` this
    is exactly greedy search (with `α > 0` it may go on past a greedy ending and
    find a longer hypothesis with a better score).

    The state of each alive hypothesis is reordered (`tf.gather` on the batch
    axis) whenever hypotheses are pruned, so `step_fn` needs no knowledge of
    beams: it sees a batch of `batch * beam_width` rows. The loop is a
    `tf.while_loop`: this runs eagerly, in `tf.function` and in SavedModels.

    Args:
        step_fn: `step_fn(tokens, state) -> (logits, new_state, attention)`:
            `tokens` int32 `(n,)` are the previous tokens; `logits` `(n, vocab)`
            with a static vocab size; `new_state` has the structure of `state` (a
            nest of tensors with the rows first); `attention` `(n, *A)` or None.
            `n` is `batch` at the first step and `batch * beam_width` after.
        initial_state: the state for the first step, rows = `batch` (it is
            expanded to the beams after the first step).
        start_tokens: int `(batch,)`: the first input token of each item.
        end_token: int: the token that ends a hypothesis.
        max_length: Python int: the most tokens generated (the end token counts).
        beam_width: Python int >= 1.
        length_penalty: α >= 0 (0 = no penalty; Wu et al. use 0.6 to 1.0).
        pad_token: written after the end of each sequence.

    Returns:
        A `DecodeResult(sequences (batch, max_length) int32, scores (batch,),
        lengths (batch,) int32, attention (batch, max_length, *A) or None)`.

    Example:
        >>> def step(tokens, state):
        ...     logits = tf.one_hot((tokens + 1) % 5, 5) * 3.0
        ...     return logits, state, None
        >>> result = beam_search(step, {"h": tf.zeros([2, 1])}, tf.constant([1, 2]),
        ...                      end_token=0, max_length=6, beam_width=3)
        >>> result.lengths.numpy()
        array([4, 3], dtype=int32)

    Reference:
        Wu et al., "Google's Neural Machine Translation System: Bridging the Gap
        between Human and Machine Translation", arXiv:1609.08144, 2016, section 7;
        Ott et al., "fairseq: A Fast, Extensible Toolkit for Sequence Modeling",
        NAACL 2019 (the finishing rule).
    """
    _common.check_arguments(max_length, length_penalty, beam_width)
    k = beam_width
    start_tokens = tf.cast(tf.convert_to_tensor(start_tokens), tf.int32)
    end_token = tf.cast(end_token, tf.int32)
    pad = tf.cast(pad_token, tf.int32)
    batch = tf.shape(start_tokens)[0]

    first = _common.call_step(step_fn, start_tokens, initial_state)
    vocab = first[0].shape[-1]
    if vocab is None:
        raise ValueError("`step_fn` must return logits with a static vocabulary size.")
    has_attention = first[2] is not None
    inner = [] if not has_attention else first[2].shape.as_list()[1:]

    def expand(t, parents, alive_log_prob, step_out, alive_seq, alive_att, finished, done):
        """One step: `parents` alive hypotheses per item -> `k` alive, finished merged."""
        logits, state, step_att = step_out
        log_probs = tf.reshape(tf.nn.log_softmax(logits, axis=-1), [batch, parents, vocab])
        candidates = tf.reshape(alive_log_prob[:, :, None] + log_probs, [batch, parents * vocab])
        count = min(2 * k, parents * vocab)
        top_scores, top_index = tf.math.top_k(candidates, k=count)
        if count < k:  # Fewer candidates than beams (tiny vocabularies): pad with -inf.
            top_scores = tf.pad(top_scores, [[0, 0], [0, k - count]], constant_values=_NEG_INF)
            top_index = tf.pad(top_index, [[0, 0], [0, k - count]])
            count = k
        parent = top_index // vocab
        token = top_index % vocab
        rows = tf.range(batch)[:, None] * parents + parent  # (batch, count) rows of step_out
        flat_rows = tf.reshape(rows, [-1])
        # The candidates' histories, with this step written at position t.
        seq = _common.write_time(tf.gather(alive_seq, flat_rows), t, tf.reshape(token, [-1]))
        if has_attention:
            att = _common.write_time(
                tf.gather(alive_att, flat_rows), t, tf.gather(step_att, flat_rows)
            )
        else:
            att = tf.gather(alive_att, flat_rows)
        seq = tf.reshape(seq, [batch, count, max_length])
        att = tf.reshape(att, tf.concat([[batch, count], tf.shape(att)[1:]], 0))

        # Finish the candidates that end within the first k ranks.
        is_end = tf.equal(token, end_token)
        in_beam = tf.range(count)[None, :] < k
        finish = is_end & in_beam & (top_scores > _NEG_INF) & ~done[:, None]
        penalty = _common.length_penalty(t + 1, length_penalty)
        new_scores = tf.where(finish, top_scores / penalty, _NEG_INF)
        new_lengths = tf.fill([batch, count], t + 1)
        finished = _merge(finished, (new_scores, seq, att, new_lengths), k)

        # The k best candidates that do not end stay alive.
        alive_scores = tf.where(is_end, _NEG_INF, top_scores)
        alive_log_prob, pick = tf.math.top_k(alive_scores, k=k)
        # Done when no alive hypothesis can beat the best finished one: log P only
        # falls as a hypothesis grows and lp grows with |Y| (α >= 0), so the best
        # an alive hypothesis can reach is log P / lp(max_length).
        bound = tf.reduce_max(alive_log_prob, axis=1) / final_penalty
        done = done | (tf.reduce_max(finished[0], axis=1) >= bound)
        alive_log_prob = tf.where(done[:, None], _NEG_INF, alive_log_prob)
        alive_token = tf.reshape(tf.gather(token, pick, batch_dims=1), [-1])
        state_rows = tf.reshape(tf.gather(rows, pick, batch_dims=1), [-1])
        state = _common.gather_rows(state, state_rows)
        alive_seq = tf.reshape(tf.gather(seq, pick, batch_dims=1), [batch * k, max_length])
        att = tf.gather(att, pick, batch_dims=1)
        alive_att = tf.reshape(att, tf.concat([[batch * k], tf.shape(att)[2:]], 0))
        return t + 1, alive_token, state, alive_log_prob, alive_seq, alive_att, finished, done

    final_penalty = _common.length_penalty(max_length, length_penalty)
    att_buffer = _common.attention_buffer(first[2], batch, max_length)
    finished = (
        tf.fill([batch, k], _NEG_INF),
        tf.zeros([batch, k, max_length], tf.int32),
        tf.zeros(tf.concat([[batch, k], tf.shape(att_buffer)[1:]], 0)),
        tf.zeros([batch, k], tf.int32),
    )
    loop_vars = expand(
        tf.constant(0), 1, tf.zeros([batch, 1]), first,
        tf.zeros([batch, max_length], tf.int32), att_buffer, finished,
        tf.zeros([batch], tf.bool),
    )

    def cond(t, tokens, state, alive_log_prob, alive_seq, alive_att, finished, done):
        return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(done)))

    def body(t, tokens, state, alive_log_prob, alive_seq, alive_att, finished, done):
        step_out = _common.call_step(step_fn, tokens, state)
        if not has_attention:
            step_out = (step_out[0], step_out[1], None)
        return expand(t, k, alive_log_prob, step_out, alive_seq, alive_att, finished, done)

    shape_invariants = tf.nest.map_structure(lambda x: x.shape, loop_vars)
    shape_invariants = _relax_batch(shape_invariants)
    t, _, _, alive_log_prob, alive_seq, alive_att, finished, _ = tf.while_loop(
        cond, body, loop_vars, shape_invariants=shape_invariants,
        maximum_iterations=max_length - 1,
    )
    # Hypotheses still alive (the loop reached max_length) compete as they are.
    truncated_scores = alive_log_prob / _common.length_penalty(t, length_penalty)
    alive_att = tf.reshape(alive_att, tf.concat([[batch, k], tf.shape(alive_att)[1:]], 0))
    scores, seq, att, lengths = _merge(
        finished,
        (truncated_scores, tf.reshape(alive_seq, [batch, k, max_length]), alive_att,
         tf.fill([batch, k], t)),
        k,
    )
    best = tf.argmax(scores, axis=1, output_type=tf.int32)
    sequences = tf.gather(seq, best, batch_dims=1)
    lengths = tf.gather(lengths, best, batch_dims=1)
    scores = tf.gather(scores, best, batch_dims=1)
    sequences = _common.pad_after(sequences, lengths, pad)
    attention = None
    if has_attention:
        attention = _common.zero_after(tf.gather(att, best, batch_dims=1), lengths)
        attention = tf.ensure_shape(attention, [None, max_length] + inner)
    return _common.DecodeResult(sequences, scores, lengths, attention)


def _merge(finished, new, k):
    """Keeps the k best (by score) of the finished pool and the new candidates."""
    scores, seq, att, lengths = finished
    all_scores = tf.concat([scores, new[0]], axis=1)
    best_scores, pick = tf.math.top_k(all_scores, k=k)  # ties: the older hypothesis first
    seq = tf.gather(tf.concat([seq, new[1]], axis=1), pick, batch_dims=1)
    att = tf.gather(tf.concat([att, new[2]], axis=1), pick, batch_dims=1)
    lengths = tf.gather(tf.concat([lengths, new[3]], axis=1), pick, batch_dims=1)
    return best_scores, seq, att, lengths


def _relax_batch(shapes):
    """Loop-variable shapes with the leading (batch) dimension left unknown."""

    def relax(shape):
        if shape.rank is None or shape.rank == 0:
            return shape
        return tf.TensorShape([None] + shape.as_list()[1:])

    return tf.nest.map_structure(relax, shapes, expand_composites=False)
