"""Tests of ResidualAttentionModule (Wang et al. 2017) and its pre-activation residual unit."""


import keras
import numpy as np
import pytest

from keras_attention.layers import ResidualAttentionModule
from keras_attention.layers._residual_unit import ResidualUnit
from tests import layer_checks
from tests.layers import cnn_reference as ref


def _x(shape=(2, 8, 8, 8), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize(
    "shape, mask_depth, r",
    [((2, 8, 8, 8), 2, 1), ((2, 7, 9, 3), 1, 1), ((1, 5, 11, 4), 3, 2), ((1, 3, 3, 8), 4, 1)],
)
def test_shapes_including_odd_sizes(shape, mask_depth, r):
    layer = ResidualAttentionModule(filters=8, p=1, t=1, r=r, mask_depth=mask_depth)
    y, mask = layer(_x(shape), return_attention_scores=True)
    assert y.shape == (*shape[:3], 8) and mask.shape == (*shape[:3], 8)
    mask = ref.numpy(mask)
    assert np.all((mask >= 0) & (mask <= 1))
    assert layer.compute_output_shape(shape) == (*shape[:3], 8)


def test_unit_counts_follow_p_t_r_and_mask_depth():
    layer = ResidualAttentionModule(filters=8, p=2, t=3, r=2, mask_depth=3)
    layer.build((None, 8, 8, 4))
    assert len(layer.pre_units) == 2 and len(layer.post_units) == 2
    assert len(layer.trunk_units) == 3
    assert len(layer.down_units) == 3 * 2 and len(layer.up_units) == 3 * 2
    assert len(layer.skip_units) == 2  # one skip between each pair of matching scales
    # Only the first unit of each branch projects 4 -> 8 channels.
    assert layer.pre_units[0].projection is not None
    assert layer.trunk_units[0].projection is None


@pytest.mark.parametrize("p", [0, 1])
def test_output_is_one_plus_mask_times_trunk(p):
    x = _x((2, 7, 7, 8))
    layer = ResidualAttentionModule(filters=8, p=p, t=2, r=1, mask_depth=2)
    layer.build(x.shape)
    ref.randomise(layer, scale=0.3)
    for weight in layer.non_trainable_weights:  # keep BN moving variances positive
        if "moving_variance" in weight.path:
            weight.assign(np.ones(weight.shape, "float32"))
    out, mask = layer(x, return_attention_scores=True)
    trunk, mask_again = layer.branches(x)
    trunk, mask = ref.numpy(trunk), ref.numpy(mask)
    layer_checks.outputs_close(mask, mask_again)
    combined = (1.0 + mask) * trunk  # Wang et al. (2017), Eq. 3: H = (1 + M(x)) · F(x)
    expected = combined
    for unit in layer.post_units:
        expected = ref.numpy(unit(expected))
    np.testing.assert_allclose(ref.numpy(out), expected, atol=1e-4)
    # The mask is not trivially 0 or 1 and really changes the output.
    assert 0.02 < mask.std() and not np.allclose(combined, trunk, atol=1e-3)


def test_dynamic_odd_spatial_sizes_in_a_model():
    inputs = keras.Input((None, None, 3))
    outputs, mask = ResidualAttentionModule(filters=8, t=1, mask_depth=2)(
        inputs, return_attention_scores=True
    )
    model = keras.Model(inputs, [outputs, mask])
    for size in [(9, 5), (6, 13)]:
        y, m = model(_x((1, *size, 3)))
        assert y.shape == (1, *size, 8) and m.shape == (1, *size, 8)


@pytest.mark.parametrize(
    "layer_cls, kwargs, shape, counts",
    [
        pytest.param(
            ResidualAttentionModule,
            dict(filters=8, p=1, t=1, r=1, mask_depth=2, bottleneck=False),
            (2, 7, 7, 8),
            (56, 36),
            id="module",
            marks=pytest.mark.slow,  # eight residual units, built four times
        ),
        pytest.param(
            ResidualUnit,
            dict(filters=8, strides=2, bottleneck=False),
            (2, 4, 4, 8),
            (7, 4),
            id="residual_unit",
        ),
    ],
)
def test_layer_checks(layer_cls, kwargs, shape, counts, tmp_path):
    inputs = _x((2, 7, 7, 4))
    layer_checks.run_layer_test(
        layer_cls,
        kwargs,
        inputs,
        tmp_path=tmp_path,
        call_kwargs={} if layer_cls is ResidualUnit else {"return_attention_scores": True},
        expected_output_shape=shape,
        expected_num_trainable_weights=counts[0],
        expected_num_non_trainable_weights=counts[1],
        mixed_precision_inputs=inputs * 10.0,
        atol=1e-4,
    )


@pytest.mark.slow
def test_functional_shapes_and_xla():
    layer = ResidualAttentionModule(filters=8, p=0, t=1, mask_depth=2)
    model = ref.functional_model(layer, (7, 7, 4))
    assert model.output_shape == [(None, 7, 7, 8), (None, 7, 7, 8)]
    layer = ResidualAttentionModule(filters=8, p=0, t=1, mask_depth=2)
    layer_checks.runs_under_xla(lambda t: layer(t, return_attention_scores=True), _x((2, 7, 7, 8)))


def test_training_flag_reaches_batch_norm():
    x = _x() * 3.0 + 1.0
    layer = ResidualAttentionModule(filters=8, t=1)
    inference = ref.numpy(layer(x, training=False))
    training = ref.numpy(layer(x, training=True))
    assert not np.allclose(inference, training, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"filters": 0}, "filters=0"),
        ({"filters": 8, "mask_depth": 0}, "mask_depth=0"),
        ({"filters": 8, "t": 0}, "t=0"),
        ({"filters": 8, "r": 0}, "r=0"),
        ({"filters": 8, "p": -1}, "p=-1"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResidualAttentionModule(**kwargs)


def test_wrong_rank_is_named():
    with pytest.raises(ValueError, match="inputs.shape=\\(2, 8, 8\\)"):
        ResidualAttentionModule(filters=8)(np.zeros((2, 8, 8), "float32"))


# The private pre-activation residual unit.


@pytest.mark.parametrize("bottleneck", [True, False])
def test_residual_unit_is_identity_plus_residual(bottleneck):
    """y = F(x) + x: with the last convolution zeroed, F vanishes and y == x."""
    x = _x()
    unit = ResidualUnit(8, bottleneck=bottleneck)
    unit.build(x.shape)
    assert unit.projection is None
    unit.convs[-1].kernel.assign(np.zeros(unit.convs[-1].kernel.shape, "float32"))
    layer_checks.outputs_close(unit(x), x)


def test_residual_unit_projection_strides_and_widths():
    unit = ResidualUnit(16, strides=2)
    y = unit(_x((1, 7, 7, 8)))
    assert y.shape == (1, 4, 4, 16) == unit.compute_output_shape((1, 7, 7, 8))
    assert unit.projection is not None
    assert [conv.kernel.shape for conv in unit.convs] == [(1, 1, 8, 4), (3, 3, 4, 4), (1, 1, 4, 16)]
    basic = ResidualUnit(8, bottleneck=False)
    basic.build((None, 5, 5, 8))
    assert [conv.kernel.shape for conv in basic.convs] == [(3, 3, 8, 8), (3, 3, 8, 8)]


def test_residual_unit_bad_filters():
    with pytest.raises(ValueError, match="filters=0"):
        ResidualUnit(0)
