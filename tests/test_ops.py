"""Tests of `keras_attention.ops.scaled_dot_product_attention`: plain and chunked paths."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from keras_attention.ops import _dropout_hash, _kernel
from keras_attention.ops import scaled_dot_product_attention as sdpa
from keras_attention.ops._chunked import Tiling
from tests import layer_checks
from tests.test_ops_variants import values_and_grads


def np_attention(q, k, v, mask=None, causal=False, scale=None):
    """Reference from the paper's equations: softmax(scale Q Kᵀ) V, masked rows zero."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = np.einsum("bhqd,bhkd->bhqk", q, k) * scale
    allowed = np.ones(s.shape, bool)
    if mask is not None:
        m = np.asarray(mask, bool)
        if m.ndim == 2:
            m = m[:, None, None, :]
        elif m.ndim == 3:
            m = m[:, None]
        allowed &= m
    if causal:
        allowed &= np.tril(np.ones(s.shape[-2:], bool))
    s = np.where(allowed, s, -np.inf)
    row_max = np.max(s, axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    e = np.where(allowed, np.exp(s - row_max), 0.0)
    denom = e.sum(-1, keepdims=True)
    w = np.where(denom > 0, e / np.where(denom > 0, denom, 1.0), 0.0)
    return np.einsum("bhqk,bhkd->bhqd", w, v), w


def _qkv(b=2, h=2, t_q=7, t_k=11, d=4, d_v=5, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(b, h, t_q, d)).astype(dtype)
    k = rng.normal(size=(b, h, t_k, d)).astype(dtype)
    v = rng.normal(size=(b, h, t_k, d_v)).astype(dtype)
    return q, k, v


def _padding_mask(b, t_k, seed=1, empty_row=None):
    rng = np.random.default_rng(seed)
    m = rng.random((b, t_k)) > 0.35
    m[:, 0] = True
    if empty_row is not None:
        m[empty_row] = False
    return m


def _values_and_grads(fn, q, k, v):
    """`[output, dq, dk, dv]` as NumPy, of the loss `sum(sin(3 · output))`, by the
    backend's autodiff (on TensorFlow with the loss in float32)."""
    if keras.backend.backend() != "tensorflow":
        return values_and_grads(fn, q, k, v)
    q, k, v = (tf.constant(x) for x in (q, k, v))
    with tf.GradientTape() as tape:
        tape.watch([q, k, v])
        out = fn(q, k, v)
        # A non-linear loss, so every output element gets a different upstream grad.
        loss = tf.reduce_sum(tf.sin(3.0 * tf.cast(out, "float32")))
    grads = tape.gradient(loss, [q, k, v])
    return [out.numpy()] + [g.numpy() for g in grads]


# ----------------------------------------------------------------------- plain path
@pytest.mark.parametrize(
    "mask_kind, causal",
    [(None, False), ("padding", False), ("full", False), (None, True), ("padding", True)],
)
def test_plain_path_matches_numpy_reference(mask_kind, causal):
    q, k, v = _qkv(t_q=6, t_k=6)
    mask = None
    if mask_kind == "padding":
        mask = _padding_mask(2, 6)
    elif mask_kind == "full":
        mask = np.random.default_rng(3).random((2, 6, 6)) > 0.3
    out, weights = sdpa(q, k, v, mask=mask, is_causal=causal, return_attention_scores=True)
    ref_out, ref_w = np_attention(q, k, v, mask, causal)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(weights, ref_w, atol=1e-6)


def test_explicit_scale_and_rank4_mask():
    q, k, v = _qkv()
    mask = np.random.default_rng(4).random((2, 1, 7, 11)) > 0.4
    out = sdpa(q, k, v, mask=mask, scale=0.3)
    np.testing.assert_allclose(out, np_attention(q, k, v, mask, scale=0.3)[0], atol=1e-5)


def test_causal_is_top_left_aligned_for_rectangular_scores():
    q, k, v = _qkv(t_q=3, t_k=5)
    _, w = sdpa(q, k, v, is_causal=True, return_attention_scores=True)
    future = np.triu(np.ones((3, 5), bool), k=1)
    assert np.all(np.asarray(w)[..., future] == 0)
    assert np.all(np.asarray(w)[..., ~future] > 0)


def test_plain_dropout_only_in_training():
    q, k, v = _qkv()
    base = sdpa(q, k, v)
    inference = sdpa(q, k, v, dropout_rate=0.5, seed=1, training=False)
    np.testing.assert_array_equal(base, inference)
    dropped = sdpa(q, k, v, dropout_rate=0.5, seed=1, training=True)
    dropped, base = ops.convert_to_numpy(dropped), ops.convert_to_numpy(base)
    assert np.all(np.isfinite(dropped))
    assert not np.allclose(dropped, base)


# --------------------------------------------------------------------- chunked path
CHUNK_CASES = {
    "no_mask": dict(t_q=8, t_k=8, chunk=4, mask=None, causal=False),
    "t_k_not_multiple": dict(t_q=7, t_k=11, chunk=4, mask=None, causal=False),
    "padding": dict(t_q=7, t_k=11, chunk=3, mask="padding", causal=False),
    "causal": dict(t_q=9, t_k=9, chunk=4, mask=None, causal=True),
    "causal_rectangular": dict(t_q=5, t_k=11, chunk=4, mask=None, causal=True),
    "padding_and_causal": dict(t_q=10, t_k=10, chunk=3, mask="padding", causal=True),
    "full_mask": dict(t_q=6, t_k=10, chunk=4, mask="full", causal=False),
    "fully_masked_rows": dict(t_q=6, t_k=10, chunk=4, mask="empty_row", causal=True),
    "chunk_larger_than_t_k": dict(t_q=4, t_k=5, chunk=16, mask="padding", causal=False),
    "chunk_of_one": dict(t_q=4, t_k=5, chunk=1, mask="padding", causal=True),
}


def _case_mask(kind, b, t_q, t_k):
    if kind == "padding":
        return _padding_mask(b, t_k)
    if kind == "full":
        return np.random.default_rng(5).random((b, t_q, t_k)) > 0.3
    if kind == "empty_row":
        return _padding_mask(b, t_k, empty_row=1)
    return None


@pytest.fixture(params=[None, 3], ids=["one_query_block", "query_blocks_of_3"])
def chunked(request):
    """`chunk_size -> keyword arguments` of the chunked path: with the default
    blocks (all queries in one block), and with query and key blocks of 3 (the
    last one padded), so that every case also runs the query and key tiling."""
    blocks = request.param
    if blocks is None:
        return lambda chunk: {"chunk_size": chunk}
    return lambda chunk: {"_tiling": Tiling(chunk, query_block=blocks, key_block=blocks)}


def _slow_unless_tensorflow(test):
    """Marks `test` slow on JAX and PyTorch, whose eager loops retrace every call (the
    cases take about 4 s each on JAX); tests/test_ops_variants.py checks the chunked
    path's gradients on every backend in the default run."""
    return test if layer_checks.backend() == "tensorflow" else pytest.mark.slow(test)


@_slow_unless_tensorflow
@pytest.mark.parametrize("case", sorted(CHUNK_CASES))
def test_chunked_equals_plain_in_values_and_gradients(case, chunked):
    c = CHUNK_CASES[case]
    q, k, v = _qkv(t_q=c["t_q"], t_k=c["t_k"])
    mask = _case_mask(c["mask"], 2, c["t_q"], c["t_k"])

    def plain(q, k, v):
        return sdpa(q, k, v, mask=mask, is_causal=c["causal"])

    def tiled(q, k, v):
        return sdpa(q, k, v, mask=mask, is_causal=c["causal"], **chunked(c["chunk"]))

    expected = _values_and_grads(plain, q, k, v)
    got = _values_and_grads(tiled, q, k, v)
    for name, a, b in zip(["out", "dq", "dk", "dv"], got, expected, strict=True):
        assert np.all(np.isfinite(a)), name
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(expected[0], np_attention(q, k, v, mask, c["causal"])[0], atol=1e-5)


def test_fully_masked_rows_give_zeros_on_both_paths():
    q, k, v = _qkv(t_q=4, t_k=6)
    mask = np.ones((2, 6), bool)
    mask[0] = False
    for chunk in (None, 4):
        out, dq, dk, dv = _values_and_grads(
            lambda q, k, v, chunk=chunk: sdpa(q, k, v, mask=mask, chunk_size=chunk), q, k, v
        )
        assert np.all(out[0] == 0) and np.all(np.isfinite(out))
        assert np.all(dq[0] == 0) and np.all(dk[0] == 0) and np.all(dv[0] == 0)


@layer_checks.tensorflow_only("gradients by tf.GradientTape")
def test_chunked_float16_accumulates_in_float32():
    q, k, v = _qkv(t_q=6, t_k=37, seed=2)
    mask = _padding_mask(2, 37)
    ref = sdpa(q, k, v, mask=mask, is_causal=True)
    half = [x.astype("float16") * 4 for x in (q, k, v)]  # larger logits stress float16
    out = sdpa(*half, mask=mask, is_causal=True, chunk_size=8)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    expected = np_attention(*[x.astype("float32") for x in half], mask, causal=True)[0]
    np.testing.assert_allclose(np.asarray(out, "float32"), expected, atol=2e-2, rtol=1e-2)
    assert np.all(np.isfinite(np.asarray(out, "float32")))
    grads = _values_and_grads(
        lambda q, k, v: sdpa(q, k, v, mask=mask, chunk_size=8), *half
    )[1:]
    assert all(g.dtype == np.float16 and np.all(np.isfinite(g)) for g in grads)
    assert np.asarray(ref).shape == np.asarray(out).shape


@layer_checks.tensorflow_only("tf.function(jit_compile=True) with tf.GradientTape")
@pytest.mark.slow
def test_chunked_runs_under_xla_with_gradients(chunked):
    q, k, v = _qkv(t_q=9, t_k=13)
    mask = tf.constant(_padding_mask(2, 13))

    def fn(q, k, v, mask):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            out = sdpa(q, k, v, mask=mask, is_causal=True, **chunked(4))
            loss = tf.reduce_sum(tf.sin(3.0 * out))
        return [out] + tape.gradient(loss, [q, k, v])

    args = [tf.constant(x) for x in (q, k, v)] + [mask]
    eager = fn(*args)
    compiled = tf.function(fn, jit_compile=True)(*args)
    for a, b in zip(eager, compiled, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


@layer_checks.tensorflow_only("tf.function with unknown dimensions")
def test_chunked_with_unknown_static_shapes(chunked):
    q, k, v = _qkv(t_q=5, t_k=9)
    mask = _padding_mask(2, 9)
    spec = tf.TensorSpec((None, None, None, 4))
    spec_v = tf.TensorSpec((None, None, None, 5))
    fn = tf.function(
        lambda q, k, v, m: sdpa(q, k, v, mask=m, is_causal=True, **chunked(4)),
        input_signature=[spec, spec, spec_v, tf.TensorSpec((None, None), tf.bool)],
    )
    np.testing.assert_allclose(
        fn(q, k, v, mask), sdpa(q, k, v, mask=mask, is_causal=True), atol=1e-5
    )


def _graph_shapes(fn, *args):
    """Static output shapes of every op of `fn`'s graph, loop bodies included."""
    graph = tf.function(fn).get_concrete_function(*args).graph
    shapes, seen = [], set()

    def walk(g):
        for op in g.get_operations():
            shapes.extend(tuple(t.shape.as_list()) for t in op.outputs if t.shape.rank)
            for attr in ("body", "cond", "then_branch", "else_branch", "f"):
                try:
                    name = op.get_attr(attr).name
                except (ValueError, AttributeError):
                    continue
                if name not in seen:
                    seen.add(name)
                    walk(g._get_function(name).graph)

    walk(graph)
    return shapes


def _causal_forward_backward(q, k, v, chunk, tiling=None):
    mask = tf.ones((1, 64), tf.bool)
    with tf.GradientTape() as tape:
        tape.watch([q, k, v])
        out = sdpa(q, k, v, mask=mask, is_causal=True, chunk_size=chunk, _tiling=tiling)
        loss = tf.reduce_sum(out * out)
    return out, tape.gradient(loss, [q, k, v])


def _tiles(shapes, rows, cols):
    return [s for s in shapes if len(s) >= 2 and s[-2:] == (rows, cols)]


@layer_checks.tensorflow_only("inspects the tf.function graph")
def test_chunked_graph_holds_no_t_q_by_t_k_tensor():
    q, k, v = (tf.random.normal((1, 2, 64, 8)) for _ in range(3))
    # The inspection sees the score matrix of the plain path ...
    assert _tiles(_graph_shapes(lambda q, k, v: _causal_forward_backward(q, k, v, None), q, k, v),
                  64, 64)
    # ... and nothing of that size on the chunked path, forward or backward, while
    # the per-chunk scores (64, 16) inside the loops are seen.
    shapes = _graph_shapes(lambda q, k, v: _causal_forward_backward(q, k, v, 16), q, k, v)
    assert _tiles(shapes, 64, 64) == []
    assert _tiles(shapes, 64, 16)


@layer_checks.tensorflow_only("inspects the tf.function graph")
def test_chunked_query_blocks_bound_the_score_tiles():
    q, k, v = (tf.random.normal((1, 2, 64, 5)) for _ in range(3))
    expected = _causal_forward_backward(q, k, v, 16)
    tiling = Tiling(16, query_block=8, key_block=8)
    shapes = _graph_shapes(
        lambda q, k, v: _causal_forward_backward(q, k, v, None, tiling), q, k, v
    )
    # Blocks of 8 query rows forward, of 8 keys backward: no tile holds all 64 rows.
    assert _tiles(shapes, 64, 16) == [] and _tiles(shapes, 64, 8) == []
    assert _tiles(shapes, 8, 16) and _tiles(shapes, 16, 8)
    got = _causal_forward_backward(q, k, v, 16, tiling)
    for a, b in zip(tf.nest.flatten(got), tf.nest.flatten(expected), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_chunked_dropout_is_exact_in_values_and_gradients(chunked):
    b, h, t_q, t_k, rate = 2, 2, 5, 11, 0.3
    q, k, v = _qkv(b, h, t_q, t_k)
    mask = _padding_mask(b, t_k)

    def tiled(q, k, v):
        return sdpa(
            q, k, v, mask=mask, is_causal=True, dropout_rate=rate, seed=7, training=True,
            **chunked(4),
        )

    def reference(q, k, v):
        # The same per-position keep mask, formed in full, applied after the softmax.
        seed = keras.random.randint((2,), 0, 2**31 - 1, dtype="int32", seed=7)
        rows = _dropout_hash.row_keys(seed, b, h, t_q)
        keep = ops.cast(_dropout_hash.keep_mask(rows, ops.arange(t_k), rate), "float32")
        weights = _kernel.attention(q, k, v, mask=mask[:, None, None], causal_offset=0,
                                    return_attention_scores=True)[1]
        return ops.einsum("bhqk,bhkd->bhqd", weights * keep / (1 - rate), v)

    got = _values_and_grads(tiled, q, k, v)
    expected = _values_and_grads(reference, q, k, v)
    for a, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, e, atol=1e-5, rtol=1e-5)
    no_dropout = ops.convert_to_numpy(sdpa(q, k, v, mask=mask, is_causal=True))
    assert not np.allclose(got[0], no_dropout)


def _np_hash32(x):
    """lowbias32 in NumPy uint32 (wraps modulo 2**32): the reference of `hash32`."""
    x = np.asarray(x, np.uint32)
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def _np_keep_mask(seed, b, h, t_q, t_k, rate):
    seed = np.asarray(seed, np.uint32)
    base = _np_hash32(_np_hash32(seed[0]) ^ seed[1])
    bh = (np.arange(b)[:, None] * h + np.arange(h)[None, :]).astype(np.uint32)
    key = _np_hash32(base ^ bh)[..., None]
    rows = _np_hash32(key ^ np.arange(t_q, dtype=np.uint32))[..., None]
    bits = _np_hash32(rows ^ np.arange(t_k, dtype=np.uint32))
    return (bits >> np.uint32(8)) >= np.uint32(round(rate * (1 << 24)))


def test_dropout_hash_is_the_numpy_reference_on_every_backend():
    """The keep mask of a fixed seed is the same bits on TensorFlow, JAX and PyTorch
    (no 32-bit overflow: JAX's default integers are int32, PyTorch's uint32 is int64
    in Keras); seeds and positions near 2**31 reach the high bit."""
    with np.errstate(over="ignore"):
        x = np.array([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 0x9E3779B9], np.uint32)
        np.testing.assert_array_equal(
            ops.convert_to_numpy(_dropout_hash.hash32(ops.convert_to_tensor(
                x.astype(_dropout_hash.work_dtype())))).astype(np.uint32), _np_hash32(x))
        # Pinned values (so that the reference cannot drift with the implementation).
        assert [int(_np_hash32(i)) for i in (1, 2)] == [0x688990C0, 0xD1132181]
        for seed in ([3, 4], [2**31 - 2, 12345]):
            rows = _dropout_hash.row_keys(np.array(seed, np.int32), 2, 3, 17)
            keep = _dropout_hash.keep_mask(rows, ops.arange(29, dtype="int32"), 0.3)
            np.testing.assert_array_equal(ops.convert_to_numpy(keep),
                                          _np_keep_mask(seed, 2, 3, 17, 29, 0.3))


def test_chunked_dropout_keeps_the_expected_fraction():
    rows = _dropout_hash.row_keys(np.array([3, 4], np.int32), 2, 4, 64)
    keep = ops.convert_to_numpy(_dropout_hash.keep_mask(rows, ops.arange(256), 0.2))
    assert abs(keep.mean() - 0.8) < 0.01
    # Different rows and columns are not copies of each other.
    assert not np.array_equal(keep[0, 0, 0], keep[0, 0, 1])
    assert not np.array_equal(keep[0, 0], keep[0, 1])


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(chunk_size=0), "chunk_size"),
        (dict(chunk_size=2.5), "chunk_size"),
        (dict(dropout_rate=1.5), "dropout_rate"),
        (dict(chunk_size=4, return_attention_scores=True), "return_attention_scores"),
        (dict(chunk_size=4, _tiling=Tiling(3)), "_tiling"),
    ],
)
def test_invalid_arguments_raise_naming_them(kwargs, name):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=name):
        sdpa(q, k, v, **kwargs)


@pytest.mark.parametrize("name", ["chunk_size", "query_block", "key_block"])
def test_tiling_sizes_must_be_positive_ints(name):
    sizes = {"chunk_size": 4, "query_block": 8, "key_block": 8, name: 0}
    with pytest.raises(ValueError, match=f"{name}=0"):
        Tiling(**sizes)


def test_wrong_ranks_raise():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="query"):
        sdpa(q[:, 0], k, v)
    with pytest.raises(ValueError, match="mask"):
        sdpa(q, k, v, mask=np.ones((11,), bool))


def test_public_api_is_all():
    """`keras_attention.ops` exports `__all__`; the kernel and helpers are private modules."""
    from keras_attention import ops as ka_ops

    public = {name for name in vars(ka_ops) if not name.startswith("_")}
    assert public == set(ka_ops.__all__)
    assert {"_kernel", "_chunked", "_masks", "_dropout_hash"} <= set(vars(ka_ops))


@pytest.mark.parametrize("shapes, mask_shape, message", [
    (((2, 4, 5, 8), (2, 4, 7, 6), (2, 4, 7, 8)), None, r"same depth.*query.shape=\(2, 4, 5, 8\)"),
    (((2, 4, 5, 8), (2, 4, 7, 8), (2, 4, 6, 8)), None, "`value` must have the same length"),
    (((2, 4, 5, 8), (3, 4, 7, 8), (3, 4, 7, 8)), None, "same batch size"),
    (((2, 4, 5, 8), (2, 4, 7, 8), (2, 4, 7, 8)), (2, 6), r"one entry per key.*mask.shape=\(2, 6\)"),
    (((2, 4, 5, 8), (2, 4, 7, 8), (2, 4, 7, 8)), (2, 5, 9), "one entry per key"),
])
def test_sizes_that_cannot_go_together_are_named(shapes, mask_shape, message):
    q, k, v = (np.zeros(s, "float32") for s in shapes)
    mask = None if mask_shape is None else np.ones(mask_shape, bool)
    for chunk_size in (None, 4):
        with pytest.raises(ValueError, match=message):
            sdpa(q, k, v, mask=mask, chunk_size=chunk_size)
