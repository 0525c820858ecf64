"""Samplers for autoregressive generation on every Keras backend (`keras.ops` only).

A sampler runs a generation loop (`keras.ops.while_loop`: a `tf.while_loop` on
TensorFlow, `jax.lax.while_loop` on JAX, a Python loop on PyTorch) around a
user callable

    next_fn(tokens, cache, index) -> (logits, new_cache)

- `tokens`: int32 `(rows, max_length)`, the sequences so far: the prompt, the
  tokens generated up to `index` and padding after. Only positions `<= index`
  are final; a causal model never looks past them.
- `cache`: what `next_fn` returned at the previous step (first: the `cache`
  given to the sampler; None if none was given). Any nest of tensors with the
  rows first whose shapes do not change, e.g. the `(rows, 2, max_length, heads,
  key_dim)` key/value cache of `keras_attention.layers.MultiHeadAttention`,
  one per layer. Beam search reorders it by beam.
- `index`: int32 scalar tensor: the position of the token to feed. With a
  cache: feed `tokens[:, index]` (`keras.ops.slice(tokens, [0, index], [rows,
  1])`) and write its keys/values at `index` (`cache_update_index=index`);
  without one: run the model on all of `tokens` (causally) and keep position
  `index`.
- `logits`: `(rows, vocab)`, the scores of the token at position `index + 1`.

`rows` is the batch size, or `batch * num_beams` for `BeamSampler` (the beams
of item `b` are rows `b * num_beams` to `b * num_beams + num_beams - 1`; the
prompt and the cache are repeated that way before the first step).

The loop starts at `index` (0 by default: the prompt is fed token by token, its
positions are kept as they are) and ends when the sequences are `max_length`
long or every row has produced a stop token. A row that produced one (outside
its prompt) gets `pad_token_id` after it. Every sampler returns the int32
tokens `(batch, max_length)`, prompt included.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_attention.decoding import _shared

# Finite "minus infinity": keeps `x / lp` and `x + log p` free of NaN on every backend.
_NEG = -1e9


def _check_float(name, value, low, high, low_open=True):
    """A number in (low, high] (or [low, high] when `low_open=False`), returned as a float."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok:
        ok = (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {'inf)' if high is None else f'{high}]'}"
        raise ValueError(f"`{name}` must be a number in {interval}. Received: {name}={value!r}")
    return float(value)


def _check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"`seed` must be None or an int >= 0. Received: seed={seed!r}")
    return seed


def _stop_ids(end_token_id):
    """None, or the stop ids as a Python tuple (from an int or a sequence of ints)."""
    if end_token_id is None:
        return None
    ids = (end_token_id,) if isinstance(end_token_id, int) else tuple(end_token_id)
    if not ids or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
        raise ValueError(
            "`end_token_id` must be None, an int >= 0 or a non-empty sequence of them. "
            f"Received: end_token_id={end_token_id!r}"
        )
    return ids


def _is_stop(token, stop_ids):
    if stop_ids is None:
        return ops.zeros_like(token, dtype="bool")
    stop = ops.convert_to_tensor(stop_ids, dtype="int32")
    return ops.any(ops.equal(token[:, None], stop[None, :]), axis=-1)


def _prepare(prompt, prompt_mask, max_length, pad_token_id, index):
    """The `(batch, max_length)` token buffer and prompt mask; checks the arguments."""
    prompt = ops.convert_to_tensor(prompt)
    if len(prompt.shape) != 2 or prompt.shape[1] is None or prompt.shape[1] < 1:
        raise ValueError(
            "`prompt` must be int tokens of shape (batch, prompt_length) with a known "
            f"prompt_length >= 1. Received: prompt.shape={tuple(prompt.shape)}"
        )
    prompt = ops.cast(prompt, "int32")
    prompt_length = prompt.shape[1]
    if max_length is None:
        max_length = prompt_length
    if isinstance(max_length, bool) or not isinstance(max_length, int) or (
        max_length < prompt_length
    ):
        raise ValueError(
            "`max_length` must be a Python int >= the prompt length "
            f"({prompt_length}). Received: max_length={max_length!r}"
        )
    if isinstance(pad_token_id, bool) or not isinstance(pad_token_id, int):
        raise ValueError(f"`pad_token_id` must be an int. Received: pad_token_id={pad_token_id!r}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < prompt_length:
        raise ValueError(
            f"`index` must be a Python int in [0, prompt length - 1 = {prompt_length - 1}]. "
            f"Received: index={index!r}"
        )
    if prompt_mask is None:
        mask = ops.ones(ops.shape(prompt), dtype="bool")
    else:
        mask = ops.cast(ops.convert_to_tensor(prompt_mask), "bool")
        if tuple(mask.shape) != tuple(prompt.shape):
            raise ValueError(
                "`prompt_mask` must have the shape of `prompt`. Received: "
                f"prompt_mask.shape={tuple(mask.shape)}, prompt.shape={tuple(prompt.shape)}"
            )
    extra = max_length - prompt_length
    tokens = ops.pad(prompt, [[0, 0], [0, extra]], constant_values=pad_token_id)
    mask = ops.pad(mask, [[0, 0], [0, extra]], constant_values=False)
    tokens = ops.where(mask, tokens, pad_token_id)
    return tokens, mask, max_length, prompt_length


def _at(x, hot):
    """`x[:, pos]` for a one-hot `(1, L)` position `hot` (int or bool `x`), no dynamic gather."""
    if x.dtype == "bool":
        return ops.any(ops.logical_and(x, hot), axis=1)
    return ops.sum(ops.where(hot, x, ops.zeros_like(x)), axis=1)


def _no_cache(cache):
    return isinstance(cache, tuple) and not cache


def _traced(nest):
    """Whether any tensor of `nest` is a JAX tracer (inside `jax.jit` and the like)."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return any(isinstance(x, jax.core.Tracer) for x in keras.tree.flatten(nest))


def _while_loop(cond, body, loop_vars):
    """`keras.ops.while_loop`, but a Python loop for concrete (untraced) JAX arrays.

    `jax.lax.while_loop` compiles its body at every call (each call makes new
    closures); eagerly, a Python loop of already compiled ops is much faster.
    Under `jax.jit` the loop is `jax.lax.while_loop`.
    """
    if keras.backend.backend() == "jax" and not _traced(loop_vars):
        loop_vars = tuple(loop_vars)
        while bool(cond(*loop_vars)):
            loop_vars = tuple(body(*loop_vars))
        return loop_vars
    return ops.while_loop(cond, body, loop_vars)


def _call_next(next_fn, tokens, cache, index):
    out = next_fn(tokens, None if _no_cache(cache) else cache, index)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError(
            "`next_fn(tokens, cache, index)` must return `(logits, new_cache)`. "
            f"Received: {type(out).__name__} {out!r:.200}"
        )
    logits, new_cache = out
    if len(logits.shape) != 2:
        raise ValueError(
            "`next_fn` must return logits of shape (rows, vocab). Received: "
            f"logits.shape={tuple(logits.shape)}"
        )
    return ops.cast(logits, "float32"), (() if new_cache is None else new_cache)


class Sampler:
    """Base class: the generation loop; subclasses choose the next token.

    A subclass implements `next_token(logits) -> int32 (rows,)`; a random one
    draws from `self.seed_generator` (a `keras.random.SeedGenerator` seeded
    with `seed`), whose state the loop threads through as a loop variable, so
    sampling works inside `jax.lax.while_loop` and a fixed seed gives the same
    tokens on a given backend. Each call advances the generator: a second call
    of the same sampler draws new tokens, a new sampler with the same seed
    repeats the first.

    Args:
        temperature: logits are divided by it before sampling (> 0; lower is
            sharper, 1 leaves them as they are).
        seed: None or an int >= 0.
    """

    def __init__(self, temperature=1.0, seed=None):
        self.temperature = _check_float("temperature", temperature, 0, None)
        self.seed = _check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed) if self.uses_seed else None

    uses_seed = True

    def next_token(self, logits):
        raise NotImplementedError

    def _next_token(self, logits, seed_state):
        """`next_token` with the generator's state passed in and out (no variable written)."""
        if self.seed_generator is None:
            return ops.cast(self.next_token(logits), "int32"), seed_state
        state = self.seed_generator.state
        with keras.StatelessScope(state_mapping=[(state, seed_state)]) as scope:
            token = self.next_token(logits)
            new_state = scope.get_current_value(state)
        return ops.cast(token, "int32"), (seed_state if new_state is None else new_state)

    def _initial_seed_state(self):
        return () if self.seed_generator is None else self.seed_generator.state.value

    def _final_seed_state(self, seed_state):
        # Under `jax.jit` the state is a tracer: the generator is left as it was.
        if self.seed_generator is not None and not _traced(seed_state):
            self.seed_generator.state.assign(seed_state)

    def __call__(self, next_fn, prompt, cache=None, *, max_length=None, prompt_mask=None,
                 end_token_id=None, pad_token_id=0, index=0):
        """Generates tokens after `prompt` with `next_fn` (see the module docstring).

        Args:
            next_fn: `next_fn(tokens, cache, index) -> (logits, new_cache)`.
            prompt: int `(batch, prompt_length)`.
            cache: None or a nest of tensors with the batch first: the cache of
                the first call, holding the positions before `index`.
            max_length: Python int >= prompt_length: the length of the result;
                defaults to prompt_length (the prompt is already padded).
            prompt_mask: None (every prompt token is real) or bool `(batch,
                prompt_length)`, True on each row's prompt (left-aligned,
                padding after): rows of different prompt lengths in one batch.
            end_token_id: None, an int or a sequence of ints that end a row.
            pad_token_id: written after a row's end and where nothing is generated.
            index: Python int, the first position fed to `next_fn` (default 0:
                the whole prompt goes through `next_fn`; pass the number of
                prompt positions already in `cache` to skip them). At most the
                shortest prompt's length minus 1.

        Returns:
            int32 `(batch, max_length)`.
        """
        tokens, mask, max_length, prompt_length = _prepare(
            prompt, prompt_mask, max_length, pad_token_id, index
        )
        stop_ids = _stop_ids(end_token_id)
        if index >= max_length - 1 or (prompt_mask is None and max_length == prompt_length):
            return tokens  # nothing to generate (and no loop body to trace)
        return self._generate(next_fn, tokens, mask, () if cache is None else cache,
                              max_length, stop_ids, pad_token_id, index)

    def _generate(self, next_fn, tokens, mask, cache, max_length, stop_ids, pad, index):
        positions = ops.arange(max_length, dtype="int32")[None, :]
        finished = ops.zeros((ops.shape(tokens)[0],), dtype="bool")

        def cond(index, tokens, cache, finished, seed_state):
            return ops.logical_and(index < max_length - 1,
                                   ops.logical_not(ops.all(finished)))

        def body(index, tokens, cache, finished, seed_state):
            logits, cache = _call_next(next_fn, tokens, cache, index)
            token, seed_state = self._next_token(logits, seed_state)
            hot = ops.equal(positions, index + 1)
            forced = _at(mask, hot)
            token = ops.where(finished, pad, token)
            write = ops.logical_and(hot, ops.logical_not(forced)[:, None])
            tokens = ops.where(write, token[:, None], tokens)
            ended = ops.logical_and(ops.logical_not(forced), _is_stop(token, stop_ids))
            return index + 1, tokens, cache, ops.logical_or(finished, ended), seed_state

        loop_vars = (ops.convert_to_tensor(index, "int32"), tokens, cache, finished,
                     self._initial_seed_state())
        _, tokens, _, _, seed_state = _while_loop(cond, body, loop_vars)
        self._final_seed_state(seed_state)
        return tokens

    def get_config(self):
        return {"temperature": self.temperature, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="keras_attention")
class GreedySampler(Sampler):
    """Takes the most probable token at every step: `y_t = argmax_y p(y | y_<t)`.

    Example:
        >>> import keras
        >>> def next_fn(tokens, cache, index):  # predicts (token + 1) % 5
        ...     token = keras.ops.take(tokens, index, axis=1)
        ...     return keras.ops.one_hot((token + 1) % 5, 5) * 3.0, cache
        >>> out = GreedySampler()(next_fn, [[1], [3]], max_length=5, end_token_id=0)
        >>> keras.ops.convert_to_numpy(out).tolist()
        [[1, 2, 3, 4, 0], [3, 4, 0, 0, 0]]

    Reference:
        Sutskever, Vinyals, Le, "Sequence to Sequence Learning with Neural
        Networks", NeurIPS 2014.
    """

    uses_seed = False

    def __init__(self):
        super().__init__()

    def next_token(self, logits):
        return ops.argmax(logits, axis=-1)

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="keras_attention")
class RandomSampler(Sampler):
    """Samples from the whole distribution `softmax(logits / temperature)`.

    Args:
        temperature: > 0; towards 0 it becomes greedy, above 1 flatter.
        seed: None or an int >= 0 (see `Sampler`).

    Example:
        >>> import keras
        >>> def next_fn(tokens, cache, index):
        ...     return keras.ops.zeros((2, 7)), cache  # uniform over 7 tokens
        >>> out = RandomSampler(seed=1)(next_fn, [[1], [1]], max_length=4)
        >>> tuple(out.shape), bool(keras.ops.all(out < 7))
        ((2, 4), True)

    Reference:
        Ackley, Hinton, Sejnowski, "A Learning Algorithm for Boltzmann
        Machines", Cognitive Science 9, 1985 (the temperature).
    """

    def next_token(self, logits):
        return keras.random.categorical(logits / self.temperature, 1,
                                        seed=self.seed_generator)[:, 0]


@keras.saving.register_keras_serializable(package="keras_attention")
class TopKSampler(Sampler):
    """Samples among the `k` most probable tokens, `softmax(top-k logits / temperature)`.

    Args:
        k: int >= 1 (1 is greedy).
        temperature: > 0.
        seed: None or an int >= 0 (see `Sampler`).

    Example:
        >>> import keras
        >>> def next_fn(tokens, cache, index):  # tokens 3 and 5 are far ahead
        ...     return keras.ops.convert_to_tensor([[0.0, 0, 0, 9, 0, 9]] * 4), cache
        >>> out = TopKSampler(k=2, seed=3)(next_fn, [[1]] * 4, max_length=6)
        >>> sorted(set(keras.ops.convert_to_numpy(out[:, 1:]).ravel().tolist()) - {3, 5})
        []

    Reference:
        Fan, Lewis, Dauphin, "Hierarchical Neural Story Generation", ACL 2018.
    """

    def __init__(self, k=5, temperature=1.0, seed=None):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be an int >= 1. Received: k={k!r}")
        self.k = k
        super().__init__(temperature=temperature, seed=seed)

    def next_token(self, logits):
        k = min(self.k, logits.shape[-1]) if logits.shape[-1] is not None else self.k
        top_logits, top_ids = ops.top_k(logits, k=k, sorted=True)
        pick = keras.random.categorical(top_logits / self.temperature, 1,
                                        seed=self.seed_generator)
        return ops.take_along_axis(top_ids, ops.cast(pick, "int32"), axis=-1)[:, 0]

    def get_config(self):
        return {"k": self.k, **super().get_config()}


@keras.saving.register_keras_serializable(package="keras_attention")
class TopPSampler(Sampler):
    """Nucleus sampling: samples within the smallest set of most probable tokens
    whose probability (after the temperature) reaches `p`.

    The most probable token is always in the set, so a tiny `p` is greedy and
    `p=1` samples from the whole distribution.

    Args:
        p: float in (0, 1].
        temperature: > 0, applied before the probabilities are summed.
        seed: None or an int >= 0 (see `Sampler`).

    Example:
        >>> import keras
        >>> def next_fn(tokens, cache, index):  # p = 0.5, 0.4, 0.05, 0.05
        ...     logits = keras.ops.log(keras.ops.convert_to_tensor([[0.5, 0.4, 0.05, 0.05]]))
        ...     return keras.ops.repeat(logits, 8, axis=0), cache
        >>> out = TopPSampler(p=0.8, seed=0)(next_fn, [[0]] * 8, max_length=5)
        >>> bool(keras.ops.all(out <= 1))
        True

    Reference:
        Holtzman, Buys, Du, Forbes, Choi, "The Curious Case of Neural Text
        Degeneration", ICLR 2020.
    """

    def __init__(self, p=0.9, temperature=1.0, seed=None):
        self.p = _check_float("p", p, 0, 1)
        super().__init__(temperature=temperature, seed=seed)

    def next_token(self, logits):
        vocab = ops.shape(logits)[-1]
        sorted_logits, sorted_ids = ops.top_k(logits / self.temperature, k=vocab, sorted=True)
        probs = ops.softmax(sorted_logits, axis=-1)
        before = ops.cumsum(probs, axis=-1) - probs  # mass of the more probable tokens
        keep = before < self.p
        keep = ops.logical_or(keep, ops.arange(vocab)[None, :] == 0)
        pick = keras.random.categorical(ops.where(keep, sorted_logits, _NEG), 1,
                                        seed=self.seed_generator)
        return ops.take_along_axis(sorted_ids, ops.cast(pick, "int32"), axis=-1)[:, 0]

    def get_config(self):
        return {"p": self.p, **super().get_config()}


@keras.saving.register_keras_serializable(package="keras_attention")
class BeamSampler(Sampler):
    """Beam search with the length penalty of Wu et al. (2016).

    Keeps `num_beams` hypotheses per batch item. At each step every alive
    hypothesis is extended by every token and a finished one (it produced a
    stop token) only by padding; the `num_beams` best extensions are kept,
    ranked by `s(Y) = log P(Y) / lp(|Y|)` with

        lp(|Y|) = ((5 + |Y|) / 6)^α,     |Y| = tokens generated (the stop token counts)

    and the best hypothesis under `s` is returned. The rows of `next_fn` and of
    the cache are the `batch * num_beams` beams; the cache is reordered
    (`keras.ops.take` on the rows) whenever beams are pruned. Positions inside a
    row's prompt are kept for every beam. With `num_beams=1` this is greedy
    search.

    Args:
        num_beams: int >= 1.
        length_penalty: α >= 0 (0: rank by log P; Wu et al. use 0.6 to 1.0;
            larger favours longer hypotheses).

    Example:
        >>> import keras
        >>> def next_fn(tokens, cache, index):  # predicts (token + 1) % 5
        ...     token = keras.ops.take(tokens, index, axis=1)
        ...     return keras.ops.one_hot((token + 1) % 5, 5) * 3.0, cache
        >>> out = BeamSampler(num_beams=3)(next_fn, [[2]], max_length=5, end_token_id=0)
        >>> keras.ops.convert_to_numpy(out).tolist()
        [[2, 3, 4, 0, 0]]

    Reference:
        Wu et al., "Google's Neural Machine Translation System: Bridging the
        Gap between Human and Machine Translation", arXiv:1609.08144, 2016,
        section 7.
    """

    uses_seed = False

    def __init__(self, num_beams=5, length_penalty=0.0):
        if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
            raise ValueError(f"`num_beams` must be an int >= 1. Received: num_beams={num_beams!r}")
        self.num_beams = num_beams
        self.length_penalty = _shared.check_length_penalty(length_penalty)
        super().__init__()

    def _penalty(self, lengths):
        return _shared.gnmt_length_penalty(ops.cast(lengths, "float32"), self.length_penalty)

    def _generate(self, next_fn, tokens, mask, cache, max_length, stop_ids, pad, index):
        k = self.num_beams
        batch = ops.shape(tokens)[0]
        positions = ops.arange(max_length, dtype="int32")[None, :]
        beam_tokens = ops.repeat(tokens, k, axis=0)
        cache = keras.tree.map_structure(lambda x: ops.repeat(x, k, axis=0), cache)
        first = ops.cast(ops.arange(k) == 0, "float32")[None, :]
        log_probs = ops.repeat((1.0 - first) * _NEG, batch, axis=0)  # (batch, k)
        lengths = ops.zeros((batch, k), dtype="int32")
        finished = ops.zeros((batch, k), dtype="bool")
        row_offset = (ops.arange(batch, dtype="int32") * k)[:, None]

        def done(log_probs, finished):
            return ops.logical_or(finished, log_probs < _NEG / 2)

        def cond(index, tokens, cache, log_probs, lengths, finished):
            return ops.logical_and(index < max_length - 1,
                                   ops.logical_not(ops.all(done(log_probs, finished))))

        def body(index, tokens, cache, log_probs, lengths, finished):
            logits, cache = _call_next(next_fn, tokens, cache, index)
            vocab = logits.shape[-1] or ops.shape(logits)[-1]
            step = ops.reshape(ops.log_softmax(logits, axis=-1), (batch, k, vocab))
            # Alive beams: every token; finished beams: padding only, log P unchanged.
            alive = log_probs[:, :, None] + step
            is_pad = ops.arange(vocab, dtype="int32")[None, None, :] == pad
            kept = ops.where(is_pad, log_probs[:, :, None], _NEG)
            candidates = ops.where(finished[:, :, None], kept, alive)
            grown = lengths + ops.cast(ops.logical_not(finished), "int32")
            scores = candidates / self._penalty(grown)[:, :, None]
            _, best = ops.top_k(ops.reshape(scores, (batch, k * vocab)), k=k, sorted=True)
            parent = best // vocab
            token = ops.cast(best % vocab, "int32")
            new_log_probs = ops.take_along_axis(
                ops.reshape(candidates, (batch, k * vocab)), best, axis=1)
            new_lengths = ops.take_along_axis(grown, parent, axis=1)
            was_finished = ops.take_along_axis(finished, parent, axis=1)
            stop = ops.reshape(_is_stop(ops.reshape(token, (-1,)), stop_ids), (batch, k))
            new_finished = ops.logical_or(was_finished, stop)
            # Rows still inside their prompt keep their beams and take the prompt token.
            hot = ops.equal(positions, index + 1)
            forced = _at(mask, hot)[:, None]  # (batch, 1), mask is per item
            prompt_token = ops.reshape(_at(tokens, hot), (batch, k))
            parent = ops.where(forced, ops.arange(k, dtype="int32")[None, :],
                               ops.cast(parent, "int32"))
            token = ops.where(forced, prompt_token, token)
            log_probs = ops.where(forced, log_probs, new_log_probs)
            lengths = ops.where(forced, lengths, new_lengths)
            finished = ops.where(forced, finished, new_finished)
            rows = ops.reshape(row_offset + parent, (-1,))
            tokens = ops.take(tokens, rows, axis=0)
            tokens = ops.where(hot, ops.reshape(token, (-1, 1)), tokens)
            cache = keras.tree.map_structure(lambda x: ops.take(x, rows, axis=0), cache)
            return index + 1, tokens, cache, log_probs, lengths, finished

        loop_vars = (ops.convert_to_tensor(index, "int32"), beam_tokens, cache, log_probs,
                     lengths, finished)
        _, beam_tokens, _, log_probs, lengths, _ = _while_loop(cond, body, loop_vars)
        scores = log_probs / self._penalty(lengths)
        best = ops.cast(ops.argmax(scores, axis=1), "int32")
        return ops.take(beam_tokens, ops.arange(batch, dtype="int32") * k + best, axis=0)

    def get_config(self):
        return {"num_beams": self.num_beams, "length_penalty": self.length_penalty}
