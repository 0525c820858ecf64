"""Score variants of `scaled_dot_product_attention` (issue 19): sliding window, logit
soft-capping, ALiBi and the `BTHD` layout, on the plain and the chunked path, against
a NumPy oracle in values and gradients, on whichever backend runs the tests."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.ops import _chunked, _kernel, alibi_slopes
from keras_attention.ops import scaled_dot_product_attention as sdpa
from keras_attention.ops._chunked import Tiling


# --------------------------------------------------------------------------- oracle
def np_reference(q, k, v, mask=None, causal=False, window=None, soft_cap=None, slopes=None,
                 offset=0, scale=None):
    """`(output, weights, grads)` of attention with every variant, from the equations,
    in float64; `grads` are `(dq, dk, dv)` of the loss `sum(sin(3 · output))`.

    Query `i` is at position `i + offset`; `window=(left, right)` keeps keys
    `p − left <= j <= p + right`; causal keeps `j <= p`; fully masked rows are zeros.
    """
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    t_q, t_k = q.shape[2], k.shape[2]
    s = np.einsum("bhqd,bhkd->bhqk", q, k) * scale
    tanh = None
    if soft_cap is not None:
        tanh = np.tanh(s / soft_cap)
        s = soft_cap * tanh
    rel = (np.arange(t_q)[:, None] + offset) - np.arange(t_k)[None, :]
    if slopes is not None:
        s = s - np.asarray(slopes, np.float64)[None, :, None, None] * np.abs(rel)
    allowed = np.ones(s.shape, bool)
    if mask is not None:
        m = np.asarray(mask, bool)
        m = m[:, None, None, :] if m.ndim == 2 else m[:, None] if m.ndim == 3 else m
        allowed &= m
    if causal:
        allowed &= rel >= 0
    if window is not None:
        left, right = (window, window) if isinstance(window, int) else window
        allowed &= (rel <= left) & (rel >= -right)
    s = np.where(allowed, s, -np.inf)
    row_max = np.max(s, axis=-1, keepdims=True)
    e = np.where(allowed, np.exp(s - np.where(np.isfinite(row_max), row_max, 0.0)), 0.0)
    denom = e.sum(-1, keepdims=True)
    w = e / np.where(denom > 0, denom, 1.0)
    out = np.einsum("bhqk,bhkd->bhqd", w, v)
    d_out = 3 * np.cos(3 * out)
    dv = np.einsum("bhqk,bhqd->bhkd", w, d_out)
    dw = np.einsum("bhqd,bhkd->bhqk", d_out, v)
    ds = w * (dw - np.sum(dw * w, axis=-1, keepdims=True))
    if tanh is not None:
        ds = ds * (1 - tanh**2)
    dq = np.einsum("bhqk,bhkd->bhqd", ds, k) * scale
    dk = np.einsum("bhqk,bhqd->bhkd", ds, q) * scale
    return out, w, (dq, dk, dv)


def values_and_grads(fn, q, k, v):
    """`[output, dq, dk, dv]` as NumPy of the loss `sum(sin(3 · fn(q, k, v)))`, with the
    backend's own autodiff."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        q, k, v = (tf.constant(x) for x in (q, k, v))
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            out = fn(q, k, v)
            loss = tf.reduce_sum(tf.sin(3.0 * out))
        return [out.numpy()] + [g.numpy() for g in tape.gradient(loss, [q, k, v])]
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def loss(q, k, v):
            out = fn(q, k, v)
            return jnp.sum(jnp.sin(3.0 * out)), out

        (_, out), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(
            *(jnp.asarray(x) for x in (q, k, v))
        )
        return [np.asarray(out)] + [np.asarray(g) for g in grads]
    if backend == "torch":
        import torch

        q, k, v = (torch.tensor(x, requires_grad=True) for x in (q, k, v))
        out = fn(q, k, v)
        torch.sin(3.0 * out).sum().backward()
        return [out.detach().cpu().numpy()] + [x.grad.cpu().numpy() for x in (q, k, v)]
    pytest.skip(f"no gradient helper for the {backend} backend")


def _qkv(b=2, h=2, t_q=13, t_k=13, d=4, d_v=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(b, h, t_q, d)).astype("float32"),
            rng.normal(size=(b, h, t_k, d)).astype("float32"),
            rng.normal(size=(b, h, t_k, d_v)).astype("float32"))


def _mask(kind, b, t_q, t_k):
    rng = np.random.default_rng(7)
    if kind == "padding":
        m = rng.random((b, t_k)) > 0.3
        m[:, 0] = True
        return m
    if kind == "full":
        return rng.random((b, t_q, t_k)) > 0.25
    return None


def _close(got, expected, names=("out", "dq", "dk", "dv"), atol=2e-5):
    for name, a, e in zip(names, got, expected, strict=True):
        a = np.asarray(a)
        assert np.all(np.isfinite(a)), name
        np.testing.assert_allclose(a, e, atol=atol, rtol=1e-4, err_msg=name)


# ------------------------------------------------------------------ both paths = oracle
CASES = {
    "window_bidirectional": dict(window=(2, 2), chunk=3),
    "window_int_t_k_not_multiple": dict(window=3, chunk=4, t_q=9, t_k=22),
    "causal_window_smaller_than_chunk": dict(causal=True, window=3, chunk=4, t_q=24, t_k=24),
    "causal_window_larger_than_chunk": dict(causal=True, window=6, chunk=4, mask="padding",
                                            t_q=17, t_k=17),
    "window_asymmetric_full_mask": dict(window=(0, 3), chunk=3, mask="full", t_q=11, t_k=14),
    "window_rows_without_keys": dict(window=(1, 1), chunk=2, t_q=9, t_k=5),
    "soft_cap": dict(soft_cap=1.5, chunk=4, causal=True, t_q=9, t_k=11),
    "alibi_bidirectional": dict(alibi=True, chunk=5, t_q=7, t_k=11),
    "alibi_causal_padding": dict(alibi=True, causal=True, mask="padding", chunk=3),
    "everything": dict(causal=True, window=5, soft_cap=2.0, alibi=True, mask="padding",
                       chunk=3, t_q=20, t_k=20),
    "cap_alibi_window_bidirectional": dict(window=(4, 1), soft_cap=1.0, alibi=True, chunk=4,
                                           t_q=18, t_k=15),
}


def _case_args(case):
    c = dict(dict(t_q=13, t_k=13, causal=False, window=None, soft_cap=None, alibi=False,
                  mask=None), **CASES[case])
    q, k, v = _qkv(t_q=c["t_q"], t_k=c["t_k"])
    mask = _mask(c["mask"], 2, c["t_q"], c["t_k"])
    slopes = np.asarray([0.5, 0.125], "float32") if c["alibi"] else None
    kwargs = dict(mask=mask, is_causal=c["causal"], window=c["window"], soft_cap=c["soft_cap"],
                  alibi_slopes=slopes)
    reference = np_reference(q, k, v, mask, c["causal"], c["window"], c["soft_cap"], slopes)
    return c, (q, k, v), kwargs, reference


@pytest.mark.parametrize("case", sorted(CASES))
def test_plain_path_matches_the_oracle(case):
    _, (q, k, v), kwargs, (ref_out, ref_w, ref_grads) = _case_args(case)
    out, weights = sdpa(q, k, v, return_attention_scores=True, **kwargs)
    _close([out, weights], [ref_out, ref_w], names=("out", "weights"))
    _close(values_and_grads(lambda q, k, v: sdpa(q, k, v, **kwargs), q, k, v),
           [ref_out, *ref_grads])


@pytest.mark.parametrize("blocks", [None, (5, 7)], ids=["default_blocks", "blocks_5_7"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_chunked_path_matches_the_oracle(case, blocks):
    c, (q, k, v), kwargs, (ref_out, _, ref_grads) = _case_args(case)
    if blocks is None:
        kwargs["chunk_size"] = c["chunk"]
    else:  # Blocks that are no multiple of the chunk: the band's unaligned start.
        kwargs["_tiling"] = Tiling(c["chunk"], query_block=blocks[0], key_block=blocks[1])
    _close(values_and_grads(lambda q, k, v: sdpa(q, k, v, **kwargs), q, k, v),
           [ref_out, *ref_grads])


@pytest.mark.parametrize("tensor_offset", [False, True], ids=["int_offset", "tensor_offset"])
@pytest.mark.parametrize("chunk", [None, 3])
def test_cached_decoding_offset_shifts_window_and_alibi(chunk, tensor_offset):
    # 4 new queries against a cache of 14 keys: query i is at position i + 10.
    q, k, v = _qkv(t_q=4, t_k=14)
    slopes = alibi_slopes(2)
    offset = ops.convert_to_tensor(10, "int32") if tensor_offset else 10
    tiling = None if chunk is None else Tiling(chunk, query_block=2, key_block=3)

    def fn(q, k, v):
        return _kernel.attention(q, k, v, causal_offset=offset, tiling=tiling, window=(4, 9),
                                 soft_cap=3.0, alibi_slopes=slopes)

    ref_out, _, ref_grads = np_reference(q, k, v, causal=True, window=(4, 9), soft_cap=3.0,
                                         slopes=slopes, offset=10)
    _close(values_and_grads(fn, q, k, v), [ref_out, *ref_grads])


def test_causal_window_counts_the_query_itself():
    """`is_causal=True, window=w`: the query's own key and the `w` before it."""
    q, k, v = _qkv(b=1, h=1, t_q=8, t_k=8)
    _, w = sdpa(q, k, v, is_causal=True, window=2, return_attention_scores=True)
    seen = np.asarray(w)[0, 0] > 0
    expected = np.tril(np.ones((8, 8), bool)) & ~np.tril(np.ones((8, 8), bool), k=-3)
    np.testing.assert_array_equal(seen, expected)
    assert seen.sum(-1).tolist() == [1, 2, 3, 3, 3, 3, 3, 3]
    # Bidirectional: 2w + 1 keys away from the ends.
    _, w = sdpa(q, k, v, window=2, return_attention_scores=True)
    assert (np.asarray(w)[0, 0] > 0).sum(-1).tolist() == [3, 4, 5, 5, 5, 5, 4, 3]


def test_soft_cap_bounds_the_logits_of_returned_weights():
    q, k, v = (x * 10 for x in _qkv(b=1, h=1, t_q=4, t_k=6))
    _, w = sdpa(q, k, v, soft_cap=1.0, return_attention_scores=True)
    w = np.asarray(w)
    # Logits within [-1, 1]: no weight is more than e² times another of its row.
    assert np.all(w.max(-1) / w.min(-1) <= np.exp(2.0) * (1 + 1e-5))


# ----------------------------------------------------------------------- the band
def test_band_visits_a_number_of_tiles_independent_of_t():
    tiling = Tiling(64)
    short = _chunked.tiles_per_block(256 * 4, 256 * 4, tiling, (128, 0), causal_offset=0)
    long = _chunked.tiles_per_block(1024 * 16, 1024 * 16, tiling, (128, 0), causal_offset=0)
    # Blocks of 128 rows (the band's width): keys [r0 − 128, r0 + 127], 4 chunks of 64
    # forward; backward, the rows [j0, j0 + 255] of a key block, 4 blocks of 64.
    assert short == long == (4, 4)
    # Without a window every block visits every chunk (and block).
    assert _chunked.tiles_per_block(1024, 1024, tiling, None, 0) == (16, 16)
    # Blocks that are no multiple of the chunk start at any phase: one chunk more.
    assert _chunked.tiles_per_block(4096, 4096, Tiling(64, 100, 100), (128, 0), 0)[0] == 5


@pytest.mark.parametrize("causal", [True, False])
def test_chunks_outside_the_band_are_never_visited(causal):
    """NaN queries, keys and values far outside the band of the first rows: only a
    pass that skips their tiles (not one that masks them: 0 · NaN = NaN) keeps the
    first rows' outputs and gradients finite."""
    q, k, v = _qkv(b=1, h=2, t_q=64, t_k=64)
    for x in (q, k, v):
        x[:, :, 48:] = np.nan
    window = (3, 0) if causal else (3, 3)
    kwargs = dict(is_causal=causal, window=window,
                  _tiling=Tiling(4, query_block=8, key_block=8))
    rows = 24

    def fn(q, k, v):
        return sdpa(q, k, v, **kwargs)[:, :, :rows]

    got = values_and_grads(fn, q, k, v)
    clean = [x.copy() for x in (q, k, v)]
    for x in clean:
        x[:, :, 48:] = 0
    ref_out, _, ref_grads = np_reference(*clean, causal=causal, window=window)
    _close([got[0]], [ref_out[:, :, :rows]], names=("out",))
    # The loss sees the first `rows` outputs: so do the gradients of the first rows'
    # queries, and of the keys and values that only they see (the window's 3 aside).
    for name, g, e, n in zip(("dq", "dk", "dv"), got[1:], ref_grads, (rows, rows - 3, rows - 3),
                             strict=True):
        assert np.all(np.isfinite(g[:, :, :rows])), name
        _close([g[:, :, :n]], [e[:, :, :n]], names=(name,))


# ---------------------------------------------------------------------------- ALiBi
def test_alibi_slopes_of_powers_of_two_and_others():
    np.testing.assert_allclose(alibi_slopes(8), [2.0**-i for i in range(1, 9)], rtol=1e-7)
    np.testing.assert_allclose(alibi_slopes(4), [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8])
    # 12 heads: the 8 slopes of 8 heads, then the 1st, 3rd, 5th and 7th of 16 heads'
    # (2^-0.5, 2^-1, 2^-1.5, ...).
    expected = [2.0**-i for i in range(1, 9)] + [2.0**-0.5, 2.0**-1.5, 2.0**-2.5, 2.0**-3.5]
    np.testing.assert_allclose(alibi_slopes(12), expected, rtol=1e-6)
    assert alibi_slopes(1).tolist() == [2.0**-8]
    assert alibi_slopes(12).dtype == np.float32


# --------------------------------------------------------------------------- layout
@pytest.mark.parametrize("causal, masked, scale", [(False, False, None), (True, False, None),
                                                   (False, True, 0.3)])
def test_bthd_layout_equals_keras_dot_product_attention(causal, masked, scale):
    rng = np.random.default_rng(3)
    q, k, v = (rng.normal(size=(2, 9, 3, 8)).astype("float32") for _ in range(3))
    mask = (rng.random((2, 1, 9, 9)) > 0.3) | np.eye(9, dtype=bool) if masked else None
    expected = keras.ops.dot_product_attention(q, k, v, mask=mask, scale=scale, is_causal=causal)
    for chunk in (None, 4):
        got = sdpa(q, k, v, mask=mask, scale=scale, is_causal=causal, layout="BTHD",
                   chunk_size=chunk)
        assert tuple(got.shape) == (2, 9, 3, 8)
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-5)


def test_bthd_layout_with_variants_is_the_transposed_bhtd():
    q, k, v = _qkv(t_q=10, t_k=10, d_v=4)
    kwargs = dict(is_causal=True, window=3, soft_cap=2.0, alibi_slopes=alibi_slopes(2))
    expected = np.asarray(sdpa(q, k, v, **kwargs))
    swap = [np.swapaxes(x, 1, 2) for x in (q, k, v)]
    for chunk in (None, 4):
        got = sdpa(*swap, layout="BTHD", chunk_size=chunk, **kwargs)
        np.testing.assert_allclose(np.swapaxes(np.asarray(got), 1, 2), expected, atol=1e-5)
    _, weights = sdpa(*swap, layout="BTHD", return_attention_scores=True, **kwargs)
    assert tuple(weights.shape) == (2, 2, 10, 10)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, message", [
    (dict(window=-1), r"window=-1"),
    (dict(window=2.0), r"window=2\.0"),
    (dict(window=True), r"window=True"),
    (dict(window=(1, 2, 3)), r"window=\(1, 2, 3\)"),
    (dict(window=(1, -2)), r"window=\(1, -2\)"),
    (dict(soft_cap=0.0), r"soft_cap=0\.0"),
    (dict(soft_cap=-3), r"soft_cap=-3"),
    (dict(soft_cap=True), r"soft_cap=True"),
    (dict(soft_cap=float("inf")), r"soft_cap=inf"),
    (dict(alibi_slopes=[0.5, 0.25, 0.125]), r"alibi_slopes.shape=\(3,\), heads=2"),
    (dict(alibi_slopes=np.ones((2, 1))), r"alibi_slopes.shape=\(2, 1\)"),
    (dict(layout="BSHD"), r"layout='BSHD'"),
])
def test_invalid_variant_arguments_raise_naming_them(kwargs, message):
    q, k, v = _qkv()
    for chunk in (None, 4):
        with pytest.raises(ValueError, match=message):
            sdpa(q, k, v, chunk_size=chunk, **kwargs)


def test_alibi_slopes_needs_a_positive_head_count():
    with pytest.raises(ValueError, match="num_heads=0"):
        alibi_slopes(0)


@pytest.mark.parametrize("t, window, causal, tiling", [
    (24, (3, 0), True, Tiling(4, query_block=8, key_block=8)),  # trip 2r: no padding
    (23, (3, 3), False, Tiling(4, query_block=8, key_block=8)),  # base < 0, padded rows
    (26, (2, 0), True, Tiling(2, query_block=8, key_block=6)),  # trip < 2r, tail blocks
    (21, (5, 2), False, Tiling(3, query_block=9, key_block=9)),  # shift not a multiple
])
def test_backward_sliding_dq_accumulation_matches_the_oracle(t, window, causal, tiling):
    """The banded backward that sums dQ in a sliding window of query blocks (a scan
    output of T rows in all) is the one these geometries take, and it is exact."""
    variants_window = _chunked._capped_window(window, 0 if causal else None)
    layout = _chunked._pass_layout(t, t, tiling, variants_window, forward=False)
    band = _chunked._band(variants_window, 0, layout.c, layout.bq, layout.nq, False)
    assert _chunked._sliding(band, layout) is not None
    q, k, v = _qkv(b=1, h=2, t_q=t, t_k=t)
    kwargs = dict(is_causal=causal, window=window, _tiling=tiling)
    ref_out, _, ref_grads = np_reference(q, k, v, causal=causal, window=window)
    _close(values_and_grads(lambda q, k, v: sdpa(q, k, v, **kwargs), q, k, v),
           [ref_out, *ref_grads])
