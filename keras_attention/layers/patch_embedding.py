"""ViT patch embedding: image to a sequence of patch tokens with a class token and positions."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation


def _pair(name, value):
    """An int or a pair of ints -> a tuple of two positive ints."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(
                f"`{name}` must be an int or a pair of ints (height, width). "
                f"Received: {name}={value!r}"
            )
        return tuple(_validation.positive_int(name, v) for v in value)
    size = _validation.positive_int(name, value)
    return (size, size)


@keras.saving.register_keras_serializable(package="keras_attention")
class PatchEmbedding(keras.layers.Layer):
    """Splits an image into non-overlapping patches and embeds them as a token sequence.

    For an image of shape `(H, W, C)` and patches of `P_h × P_w` pixels,
    `N = (H / P_h)(W / P_w)`:

        x_p   = conv_{P×P, stride P}(image), flattened row-major   (batch, N, D)
        z_0   = [x_class ; x_p] + E_pos                           (batch, 1 + N, D)

    where the convolution is the linear projection `E` of every flattened patch,
    `x_class` a learned class token (zeros at init) and `E_pos` a learned
    position embedding (truncated normal, stddev 0.02). The image size must be
    static and divisible by the patch size.

    Args:
        patch_size: int or pair of ints `(P_h, P_w)` (the only positional argument).
        hidden_dim: positive int `D`, the token width.
        use_class_token: whether to prepend the class token.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        images: `(batch, H, W, C)`.

    Returns:
        `(batch, 1 + N, hidden_dim)` (or `(batch, N, hidden_dim)` without the
        class token).

    Example:

    >>> images = keras.random.uniform((2, 32, 32, 3))
    >>> tokens = PatchEmbedding(8, hidden_dim=64)(images)
    >>> tuple(tokens.shape)
    (2, 17, 64)

    Reference:
        Dosovitskiy et al. "An Image is Worth 16x16 Words: Transformers for
        Image Recognition at Scale", ICLR 2021. https://arxiv.org/abs/2010.11929
    """

    def __init__(self, patch_size, *, hidden_dim, use_class_token=True, **kwargs):
        super().__init__(**kwargs)
        self._patch = _pair("patch_size", patch_size)
        self.patch_size = patch_size if isinstance(patch_size, int) else self._patch
        self.hidden_dim = _validation.positive_int("hidden_dim", hidden_dim)
        self.use_class_token = bool(use_class_token)

    def _grid(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        if height is None or width is None:
            raise ValueError(
                "PatchEmbedding needs a static image size (its position embedding has one "
                f"entry per patch). Received: images.shape={tuple(input_shape)}"
            )
        checks = (("height", height, self._patch[0]), ("width", width, self._patch[1]))
        for axis, size, patch in checks:
            if size % patch:
                raise ValueError(
                    f"The image {axis} ({size}) must be divisible by the patch size ({patch}). "
                    f"Received: images.shape={tuple(input_shape)}, patch_size={self.patch_size!r}"
                )
        return height // self._patch[0], width // self._patch[1]

    def build(self, input_shape):
        _validation.rank("images", input_shape, 4)
        grid_h, grid_w = self._grid(input_shape)
        self.num_patches = grid_h * grid_w
        self.projection = keras.layers.Conv2D(
            self.hidden_dim,
            self._patch,
            strides=self._patch,
            padding="valid",
            dtype=self.dtype_policy,
            name="projection",
        )
        self.projection.build(tuple(input_shape))
        self.class_token = None
        if self.use_class_token:
            self.class_token = self.add_weight(
                name="class_token", shape=(1, 1, self.hidden_dim), initializer="zeros"
            )
        self.position_embedding = self.add_weight(
            name="position_embedding",
            shape=(1, self.num_patches + int(self.use_class_token), self.hidden_dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )

    def call(self, images):
        patches = self.projection(images)
        tokens = ops.reshape(patches, (ops.shape(patches)[0], -1, self.hidden_dim))
        if self.class_token is not None:
            cls = ops.cast(self.class_token, tokens.dtype)
            cls = ops.broadcast_to(cls, (ops.shape(tokens)[0], 1, self.hidden_dim))
            tokens = ops.concatenate([cls, tokens], axis=1)
        return tokens + ops.cast(self.position_embedding, tokens.dtype)

    def compute_output_shape(self, input_shape):
        _validation.rank("images", input_shape, 4)
        grid_h, grid_w = self._grid(input_shape)
        return (input_shape[0], grid_h * grid_w + int(self.use_class_token), self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "patch_size": self.patch_size,
                "hidden_dim": self.hidden_dim,
                "use_class_token": self.use_class_token,
            }
        )
        return config
