"""benchmarks/translation_step.py: arms parsed from flags and timed on a tiny model."""

import pytest

from apps.common import flags as common_flags  # noqa: F401  (its flags are defined too)
from benchmarks import _common, translation_step


def test_its_flags_do_not_clash_with_the_apps_common_flags():
    # Both modules define flags at import (the suite imports them into one process).
    assert translation_step.FLAGS["step_count"].default == 20
    assert "batch_size" in translation_step.FLAGS  # the apps' flag, not this benchmark's


def test_arms_are_parsed_into_typed_fields():
    assert _common.parse_arm("tie_embeddings=true;units=64;learning_rate=0.001;"
                             "variant=luong;copy=none") == {
        "tie_embeddings": True, "units": 64, "learning_rate": 0.001, "variant": "luong",
        "copy": None}
    assert _common.parse_arm("") == {}
    with pytest.raises(ValueError, match="'units' is not field=value"):
        _common.parse_arm("units")


@pytest.mark.slow
def test_every_arm_is_timed_in_turns():
    tiny = dict(source_vocab_size=40, target_vocab_size=40, embedding_dim=8, units=16,
                attention_units=8)
    arms = {"untied, generic loss": {"loss_log_softmax": True, "tie_embeddings": False},
            "tied": {"tie_embeddings": True}}
    out = translation_step.time_arms(arms, steps=2, rounds=2, batch_size=4, source_length=5,
                                     target_length=6, base=tiny)
    assert list(out) == list(arms)
    for result in out.values():
        assert len(result["turns"]) == 2 and result["seconds_per_step"] > 0
    assert out["tied"]["params"] == out["untied, generic loss"]["params"] - 16 * 40 + 16 * 8


@pytest.mark.slow
def test_decoding_arms_time_a_beam_search_each():
    tiny = dict(source_vocab_size=40, target_vocab_size=40, embedding_dim=8, units=16,
                attention_units=8, max_target_length=5)
    arms = {"per step": {"kernel_per_step": True}, "once": {}}
    out = translation_step.time_arms(arms, steps=1, rounds=1, batch_size=1, source_length=4,
                                     target_length=6, base=tiny, decode=True)
    assert list(out) == list(arms)
    for result in out.values():
        assert result["seconds_per_step"] > 0 and 1 <= result["decoded_steps"] <= 5
    assert out["per step"]["params"] == out["once"]["params"]


def test_the_gather_arm_computes_what_the_shared_loss_and_accuracy_compute():
    import numpy as np
    import tensorflow as tf

    from apps.common import losses

    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(3, 5, 9)), tf.float32)
    labels = tf.constant(rng.integers(0, 9, (3, 5)))
    for smoothing in (0.0, 0.1):
        for log_probabilities, scores in ((False, logits), (True, tf.nn.log_softmax(logits))):
            shared = losses.masked_cross_entropy(smoothing, log_probabilities)(labels, scores)
            gather = translation_step._gather_loss(smoothing, log_probabilities)(labels, scores)
            assert float(gather) == pytest.approx(float(shared), rel=1e-6)
    assert float(translation_step._argmax_accuracy(labels, logits)) == pytest.approx(
        float(losses.masked_accuracy(labels, logits)))
