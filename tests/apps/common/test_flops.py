"""FLOPs counted from the traced graph agree with the textbook formulas."""

import keras

from apps.common.flops import count_flops


def test_conv_dense_and_attention_flops_match_formulas():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 2 * 8*8*4 * 3*3*3
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)  # 2 * 8*8*4 * 3*3
    x = keras.layers.Reshape((64, 4))(x)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=2)(x, x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(5)(x)  # 2 * 4 * 5
    model = keras.Model(inputs, outputs)
    counted = count_flops(model, (8, 8, 3))
    conv = 2 * 64 * 4 * 27
    depthwise = 2 * 64 * 4 * 9
    # q, k, v projections and the output projection: 4 einsums of 64 x 4 x (2 heads * 2).
    projections = 4 * 2 * 64 * 4 * 4
    scores_and_context = 2 * (2 * 2 * 64 * 64 * 2)
    dense = 2 * 4 * 5
    assert counted["by_op"]["Conv2D"] == conv
    assert counted["by_op"]["DepthwiseConv2dNative"] == depthwise
    assert counted["flops"] == conv + depthwise + projections + scores_and_context + dense
