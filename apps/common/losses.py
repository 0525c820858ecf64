"""Token losses and metrics for sequence outputs whose label 0 is padding (translation,
captioning): every position with a non-zero label counts once, padding never."""

from __future__ import annotations

from keras import ops


def masked_cross_entropy(label_smoothing: float = 0.0, log_probabilities: bool = False):
    """Token cross-entropy from logits over non-padding labels, with optional smoothing.

    `loss = -(1-ε) log p(y) - ε · mean_v log p(v)`, averaged over the tokens whose
    label != 0 (0 when there are none). Returns a Keras loss function.

    With `log_probabilities=True` the predictions are taken to be normalized
    log-probabilities already (a pointer-generator's output), and the
    `log_softmax` (an identity on them, up to rounding, that costs several
    vocabulary-sized passes forward and backward) is skipped.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")

    def loss(y_true, y_pred):
        log_probs = ops.cast(y_pred, "float32")
        if not log_probabilities:
            log_probs = ops.log_softmax(log_probs, axis=-1)
        labels = ops.cast(y_true, "int32")
        picked = ops.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
        per_token = -(1.0 - label_smoothing) * picked
        if label_smoothing:
            per_token = per_token - label_smoothing * ops.mean(log_probs, axis=-1)
        mask = ops.cast(ops.not_equal(labels, 0), "float32")
        return ops.sum(per_token * mask) / ops.maximum(ops.sum(mask), 1.0)

    loss.__name__ = "masked_cross_entropy"
    return loss


def masked_accuracy(y_true, y_pred):
    """Share of non-padding labels whose most probable token is the label."""
    labels = ops.cast(y_true, "int32")
    predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
    mask = ops.cast(ops.not_equal(labels, 0), "float32")
    hits = ops.cast(ops.equal(labels, predicted), "float32") * mask
    return ops.sum(hits) / ops.maximum(ops.sum(mask), 1.0)
