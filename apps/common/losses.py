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
        # -sum_v q_v log p(v) with q = (1-ε) onehot(y) + ε/V, the weights made by one
        # comparison with the vocabulary's ids: forward and backward are a few
        # elementwise passes over (..., V). Picking log p(y) with `take_along_axis`
        # gave the same values, but its gradient (a gather's, scattered back into
        # the (..., V) shape with a segment sum) cost more than the rest of the loss
        # on CPU (README, "one training step").
        vocab = ops.shape(log_probs)[-1]
        is_label = ops.equal(ops.arange(vocab, dtype="int32"), labels[..., None])
        spread = label_smoothing / ops.cast(vocab, "float32")
        weights = ops.where(is_label, 1.0 - label_smoothing + spread, spread)
        per_token = -ops.sum(weights * log_probs, axis=-1)
        mask = ops.cast(ops.not_equal(labels, 0), "float32")
        return ops.sum(per_token * mask) / ops.maximum(ops.sum(mask), 1.0)

    loss.__name__ = "masked_cross_entropy"
    return loss


def masked_accuracy(y_true, y_pred):
    """Share of non-padding labels whose most probable token is the label.

    A label counts as predicted when its score is the row's maximum (a label tied
    with another token for the maximum counts too). Compared with the maximum
    rather than found by `ops.argmax`, whose guard against negative zeros costs
    four more passes over the `(..., vocab)` scores on the TensorFlow backend.
    """
    labels = ops.cast(y_true, "int32")
    scores = ops.convert_to_tensor(y_pred)
    picked = ops.take_along_axis(scores, labels[..., None], axis=-1)[..., 0]
    mask = ops.cast(ops.not_equal(labels, 0), "float32")
    hits = ops.cast(picked >= ops.max(scores, axis=-1), "float32") * mask
    return ops.sum(hits) / ops.maximum(ops.sum(mask), 1.0)
