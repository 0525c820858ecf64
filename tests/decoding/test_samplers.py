"""The keras.ops samplers on every backend: cache == recompute, equalities, sampling, errors.

Run on each backend with `KERAS_BACKEND=jax` / `torch` / `tensorflow` in front of pytest.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.decoding import (
    BeamSampler,
    GreedySampler,
    RandomSampler,
    Sampler,
    TopKSampler,
    TopPSampler,
)
from keras_attention.layers import MultiHeadAttention

VOCAB, DIM, HEADS, KEY_DIM, LENGTH = 11, 16, 2, 8, 7
END = 2


class TinyLM:
    """Embedding + positions + one causal `MultiHeadAttention` + Dense to the vocabulary.

    `cached` feeds one token and threads the `(rows, 2, LENGTH, HEADS, KEY_DIM)`
    key/value cache; `full` recomputes the whole prefix at every step.
    """

    def __init__(self, seed=0):
        init = keras.initializers.RandomNormal
        self.emb = keras.layers.Embedding(VOCAB, DIM,
                                          embeddings_initializer=init(stddev=1.0, seed=seed))
        self.pos = keras.layers.Embedding(LENGTH, DIM,
                                          embeddings_initializer=init(stddev=1.0, seed=seed + 1))
        self.mha = MultiHeadAttention(HEADS, KEY_DIM,
                                      kernel_initializer=init(stddev=0.5, seed=seed + 2))
        self.out = keras.layers.Dense(VOCAB, kernel_initializer=init(stddev=0.5, seed=seed + 3))
        h = self.emb(ops.zeros((1, LENGTH), "int32")) + self.pos(ops.arange(LENGTH)[None])
        self.out(h + self.mha(h, h, use_causal_mask=True))

    def cached(self, tokens, cache, index):
        rows = ops.shape(tokens)[0]
        h = self.emb(ops.slice(tokens, [0, index], [rows, 1]))
        h = h + ops.take(self.pos.embeddings, index, axis=0)
        y, cache = self.mha(h, h, cache=cache, cache_update_index=index)
        return self.out(h + y)[:, 0], cache

    def full(self, tokens, cache, index):
        h = self.emb(tokens) + self.pos(ops.arange(LENGTH)[None])
        logits = self.out(h + self.mha(h, h, use_causal_mask=True))
        return ops.take(logits, index, axis=1), cache

    def prefill(self, prompt):
        """The cache holding the keys/values of every prompt position, in one call."""
        h = self.emb(prompt) + self.pos(ops.arange(prompt.shape[1])[None])
        _, cache = self.mha(h, h, cache=self.empty_cache(prompt.shape[0]), cache_update_index=0)
        return cache

    @staticmethod
    def empty_cache(rows):
        return ops.zeros((rows, 2, LENGTH, HEADS, KEY_DIM))


@pytest.fixture(scope="module")
def lm():
    return TinyLM()


@pytest.fixture(scope="module")
def greedy(lm):
    """Greedy decoding of PROMPT with END, computed once."""
    return decode(lm, GreedySampler(), end_token_id=END)


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


PROMPT = np.array([[5, 3], [7, 1], [4, 9]], "int32")


def decode(lm, sampler, cache=True, prompt=PROMPT, **kwargs):
    kwargs.setdefault("max_length", LENGTH)
    if cache:
        return np_(sampler(lm.cached, prompt, lm.empty_cache(len(prompt)), **kwargs))
    return np_(sampler(lm.full, prompt, **kwargs))


def table_next_fn(table):
    """A bigram model: logits = log(table[token at index]) (rows of probabilities)."""
    logits = ops.log(ops.convert_to_tensor(np.asarray(table, "float32") + 1e-9))

    def next_fn(tokens, cache, index):
        return ops.take(logits, ops.take(tokens, index, axis=1), axis=0), cache

    return next_fn


def constant_next_fn(logits):
    logits = ops.convert_to_tensor(np.asarray(logits, "float32"))

    def next_fn(tokens, cache, index):
        return ops.repeat(logits[None], ops.shape(tokens)[0], axis=0), cache

    return next_fn


@pytest.mark.parametrize("sampler", [GreedySampler(), BeamSampler(3), BeamSampler(3, 1.0)],
                         ids=repr)
def test_cached_decoding_equals_recomputing_the_prefix(lm, sampler):
    with_cache = decode(lm, sampler, end_token_id=END)
    without = decode(lm, sampler, cache=False, end_token_id=END)
    np.testing.assert_array_equal(with_cache, without)
    assert with_cache.shape == (3, LENGTH) and with_cache.dtype == np.int32
    np.testing.assert_array_equal(with_cache[:, :2], PROMPT)


def test_beam_of_one_is_greedy(lm, greedy):
    np.testing.assert_array_equal(decode(lm, BeamSampler(1, 1.5), end_token_id=END), greedy)


def test_beam_finds_a_more_probable_sequence_than_greedy():
    # Greedy takes 3 (p .6) then anything (p .25 each); beam finds 4 then 5 (.4 * .9).
    table = np.full((7, 7), 1 / 7)
    table[1] = [0, 0, 0, 0.6, 0.4, 0, 0]
    table[3] = [0, 0, 0.25, 0.25, 0.25, 0.25, 0]
    table[4] = [0, 0, 0.1, 0, 0, 0.9, 0]
    table[5] = table[2] = [0, 0, 1.0, 0, 0, 0, 0]  # then the end token 2
    next_fn = table_next_fn(table)
    greedy = np_(GreedySampler()(next_fn, [[1], [1]], max_length=6, end_token_id=2))
    beam = np_(BeamSampler(2)(next_fn, [[1], [1]], max_length=6, end_token_id=2))
    assert greedy[0, 1] == 3
    np.testing.assert_array_equal(beam, [[1, 4, 5, 2, 0, 0]] * 2)


def test_length_penalty_changes_the_chosen_beam():
    # From 1: end (p .5) or 3 (p .45); 3 -> 4 (.95); 4 -> end (.95).
    # alpha = 0: log .5 = -0.69 beats log(.45 * .95 * .95) = -0.90;
    # alpha = 2: -0.69 / 1 loses to -0.90 / ((5 + 3) / 6)^2 = -0.51.
    table = np.full((7, 7), 1 / 7)
    table[1] = [0, 0, 0.5, 0.45, 0.05, 0, 0]
    table[3] = [0, 0, 0.05, 0, 0.95, 0, 0]
    table[4] = [0, 0, 0.95, 0, 0, 0.05, 0]
    table[2] = [1.0, 0, 0, 0, 0, 0, 0]
    next_fn = table_next_fn(table)
    short = np_(BeamSampler(2, 0.0)(next_fn, [[1], [1]], max_length=6, end_token_id=2))
    long = np_(BeamSampler(2, 2.0)(next_fn, [[1], [1]], max_length=6, end_token_id=2))
    np.testing.assert_array_equal(short, [[1, 2, 0, 0, 0, 0]] * 2)
    np.testing.assert_array_equal(long, [[1, 3, 4, 2, 0, 0]] * 2)


@pytest.mark.parametrize("sampler", [TopKSampler(k=1, seed=3), TopPSampler(p=1e-6, seed=3),
                                     RandomSampler(temperature=1e-4, seed=3)], ids=repr)
def test_degenerate_random_samplers_are_greedy(lm, greedy, sampler):
    np.testing.assert_array_equal(decode(lm, sampler, end_token_id=END), greedy)


@pytest.mark.parametrize("make", [lambda: TopKSampler(k=3, seed=11),
                                  lambda: TopPSampler(p=0.8, seed=11),
                                  lambda: RandomSampler(seed=11)])
def test_a_fixed_seed_repeats_its_tokens(make):
    next_fn = constant_next_fn(np.log([0.3, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02]))
    prompt = np.zeros((16, 1), "int32")
    first = np_(make()(next_fn, prompt, max_length=6))
    np.testing.assert_array_equal(np_(make()(next_fn, prompt, max_length=6)), first)
    sampler = make()  # the same sampler draws new tokens on its next call
    np.testing.assert_array_equal(np_(sampler(next_fn, prompt, max_length=6)), first)
    assert not np.array_equal(np_(sampler(next_fn, prompt, max_length=6)), first)
    assert len(np.unique(first[:, 1:])) > 1


def frequencies(sampler, logits, rows=1000):
    out = np_(sampler(constant_next_fn(logits), np.zeros((rows, 1), "int32"), max_length=2))
    return np.bincount(out[:, 1], minlength=len(logits)) / rows


def test_top_k_draws_only_the_top_k_in_proportion():
    logits = np.array([0.0, 1.0, 2.0, 3.0, 2.5, 1.5, 0.5])
    freq = frequencies(TopKSampler(k=3, seed=1), logits)
    top = [3, 4, 2]
    assert freq[[0, 1, 5, 6]].sum() == 0
    expected = np.exp(logits[top]) / np.exp(logits[top]).sum()
    np.testing.assert_allclose(freq[top], expected, atol=0.06)


def test_top_p_draws_only_the_nucleus_in_proportion():
    probs = np.array([0.1, 0.5, 0.05, 0.3, 0.02, 0.01, 0.02])
    freq = frequencies(TopPSampler(p=0.7, seed=2), np.log(probs))
    assert freq[[0, 2, 4, 5, 6]].sum() == 0  # .5 + .3 reach .7: the nucleus is {1, 3}
    np.testing.assert_allclose(freq[[1, 3]], [0.625, 0.375], atol=0.06)


def test_temperature_flattens_and_sharpens():
    logits = np.array([0.0, 1.0, 2.0, 0.5, 1.5, 0.2, 0.7])
    cold = frequencies(RandomSampler(temperature=0.05, seed=4), logits)
    hot = frequencies(RandomSampler(temperature=100.0, seed=4), logits)
    assert cold[2] == 1.0
    np.testing.assert_allclose(hot, [1 / 7] * 7, atol=0.05)


def test_end_token_stops_a_row_and_pads_after(lm, greedy):
    free = greedy  # with END as the end token; none of it is generated here
    assert not (free[:, 2:] == END).any()
    end = int(free[0, 3])  # row 0 generates `end` at position 3 (maybe earlier too)
    stopped = decode(lm, GreedySampler(), end_token_id=end, pad_token_id=10)
    for row, out in zip(free, stopped, strict=True):
        hits = np.flatnonzero(row[2:] == end)
        stop = LENGTH if not len(hits) else 2 + hits[0] + 1
        np.testing.assert_array_equal(out[:stop], row[:stop])
        assert (out[stop:] == 10).all()
    assert (stopped[0, 4:] == 10).all()


def test_every_row_ended_pads_the_rest_with_beams():
    table = np.eye(7)[[2, 2, 0, 4, 2, 0, 0]]  # 1 -> end 2; 3 -> 4 -> end
    out = np_(BeamSampler(2)(table_next_fn(table), [[1], [3]], max_length=6, end_token_id=2,
                             pad_token_id=0))
    np.testing.assert_array_equal(out, [[1, 2, 0, 0, 0, 0], [3, 4, 2, 0, 0, 0]])


def test_several_stop_ids():
    table = np.eye(7)[[1, 2, 3, 4, 5, 6, 0]]  # counts up
    out = np_(GreedySampler()(table_next_fn(table), [[1], [3]], max_length=6,
                              end_token_id=(3, 5)))
    np.testing.assert_array_equal(out, [[1, 2, 3, 0, 0, 0], [3, 4, 5, 0, 0, 0]])


@pytest.mark.slow  # a new shape per row: many compilations on JAX
@pytest.mark.parametrize("sampler", [GreedySampler(), BeamSampler(3, 0.6)], ids=repr)
def test_prompts_of_different_lengths_in_one_batch(lm, sampler):
    prompt = np.array([[5, 3, 8], [7, 0, 0]], "int32")
    mask = prompt > 0
    batched = decode(lm, sampler, prompt=prompt, prompt_mask=mask, end_token_id=END)
    for row in range(2):
        alone = decode(lm, sampler, prompt=prompt[row : row + 1, : mask[row].sum()],
                       end_token_id=END)
        np.testing.assert_array_equal(batched[row : row + 1], alone)


@pytest.mark.parametrize("sampler", [GreedySampler(), BeamSampler(3)], ids=repr)
def test_a_prefilled_cache_starts_at_index(lm, sampler):
    reference = decode(lm, sampler, end_token_id=END)
    cache = lm.prefill(ops.convert_to_tensor(PROMPT))
    # The cache holds positions 0 and 1: feeding from index 1 rewrites 1, same values.
    out = np_(sampler(lm.cached, PROMPT, cache, max_length=LENGTH, index=1, end_token_id=END))
    np.testing.assert_array_equal(out, reference)


def test_max_length_equal_to_the_prompt_returns_the_prompt(lm):
    out = np_(BeamSampler(2)(lm.full, PROMPT))
    np.testing.assert_array_equal(out, PROMPT)


@pytest.mark.parametrize("sampler", [GreedySampler(), BeamSampler(3, 0.5), RandomSampler(0.7, 1),
                                     TopKSampler(4, 0.5, 2), TopPSampler(0.3, 2.0, None)],
                         ids=repr)
def test_config_round_trip(sampler):
    config = sampler.get_config()
    again = type(sampler).from_config(config)
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(sampler))
    assert type(restored) is type(sampler) and restored.get_config() == config


@pytest.mark.parametrize("make, message", [
    (lambda: TopKSampler(k=0), "k=0"),
    (lambda: TopKSampler(k=2.5), "k=2.5"),
    (lambda: TopPSampler(p=0.0), "p=0.0"),
    (lambda: TopPSampler(p=1.5), "p=1.5"),
    (lambda: BeamSampler(num_beams=0), "num_beams=0"),
    (lambda: BeamSampler(length_penalty=-1), "length_penalty=-1"),
    (lambda: RandomSampler(temperature=0), "temperature=0"),
    (lambda: TopKSampler(temperature=-1.0), "temperature=-1.0"),
    (lambda: RandomSampler(seed=-3), "seed=-3"),
])
def test_bad_arguments_name_argument_and_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("kwargs, message", [
    ({"max_length": 1}, "max_length=1"),
    ({"max_length": 4.0}, "max_length=4.0"),
    ({"index": 2}, "index=2"),
    ({"end_token_id": -1}, "end_token_id=-1"),
    ({"prompt_mask": np.ones((3, 1), bool)}, r"prompt_mask.shape=\(3, 1\)"),
])
def test_bad_call_arguments_name_argument_and_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GreedySampler()(constant_next_fn(np.zeros(3)), PROMPT, **kwargs)


def test_next_fn_must_return_logits_and_cache():
    with pytest.raises(ValueError, match="logits, new_cache"):
        GreedySampler()(lambda tokens, cache, index: tokens, PROMPT, max_length=4)


def test_base_sampler_needs_next_token():
    with pytest.raises(NotImplementedError):
        Sampler(seed=1)(constant_next_fn(np.zeros(3)), PROMPT, max_length=4)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="jax.jit")
@pytest.mark.parametrize("make", [GreedySampler, lambda: BeamSampler(2, 0.5),
                                  lambda: TopKSampler(3, seed=5)], ids=["greedy", "beam", "top_k"])
def test_under_jax_jit_the_loop_is_traced_and_gives_the_eager_tokens(make):
    import jax

    table = np.full((7, 7), 0.1) + np.eye(7)[[3, 2, 0, 4, 2, 6, 1]]
    next_fn = table_next_fn(table / table.sum(axis=1, keepdims=True))
    prompt = np.array([[1], [3]], "int32")

    def generate(prompt):
        return make()(next_fn, prompt, max_length=6, end_token_id=2)

    np.testing.assert_array_equal(np_(jax.jit(generate)(prompt)), np_(generate(prompt)))
