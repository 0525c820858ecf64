"""The members benchmark joins cached member probabilities as the export's layer would, and
chooses the join on validation only."""

import math

import numpy as np
import pytest

from benchmarks import keyword_spotting_members as members

SETS = ("validation", "validation_telephone", "test", "test_telephone", "pocketsphinx", "ivr")


def _data(seed: int, rnn_good: bool):
    """Two members over three classes; the `attention_rnn` member right on every clip (or on
    none), the embedding member right on the first half; speeds 0.9/1.1 a little worse."""
    rng = np.random.default_rng(seed)
    data = {"members": np.array(["attention_rnn", "speech_embedding"])}
    for name in SETS:
        n = 80 if name == "ivr" else 20
        labels = rng.integers(0, 3, n)
        data[f"{name}/label"] = labels
        for member, right in (("attention_rnn", np.full(n, rnn_good)),
                              ("speech_embedding", np.arange(n) < n // 2)):
            for speed in (0.9, 1.0, 1.1):
                p = np.full((n, 3), 0.1, np.float32)
                target = np.where(right, labels, (labels + 1) % 3)
                p[np.arange(n), target] = 0.8 if speed == 1.0 else 0.6
                p[np.arange(n), (target + 1) % 3] = 0.1 if speed == 1.0 else 0.3
                data[f"{name}/{member}/{speed:g}"] = p
    return data


def test_join_is_the_exports_weighted_product_averaged_over_speeds():
    data = _data(0, rnn_good=True)
    rnn, emb = data["test/attention_rnn/1"], data["test/speech_embedding/1"]
    np.testing.assert_allclose(members.join(data, "test", 0.0, (1.0,)), rnn)
    np.testing.assert_allclose(members.join(data, "test", math.inf, (1.0,)), emb)
    expected = np.sqrt(rnn * emb)
    np.testing.assert_allclose(members.join(data, "test", 1.0, (1.0,)),
                               expected / expected.sum(-1, keepdims=True), atol=1e-6)
    weighted = rnn ** (1 / 1.5) * emb ** (0.5 / 1.5)
    np.testing.assert_allclose(members.join(data, "test", 0.5, (1.0,)),
                               weighted / weighted.sum(-1, keepdims=True), atol=1e-6)
    at_speeds = np.mean([members.join(data, "test", 0.0, (s,)) for s in (0.9, 1.0, 1.1)], 0)
    np.testing.assert_allclose(members.join(data, "test", 0.0, (0.9, 1.0, 1.1)), at_speeds)


def test_score_counts_ivr_digits_and_other_words_apart():
    data = _data(0, rnn_good=True)
    groups = ["digit"] * 10 + ["other"] * 70
    out = members.score(data, 0.0, (1.0,), groups)
    assert out["ivr_digits"] == 10 and out["ivr_other"] == 70
    assert out["test"] == 1.0 and out["ivr_digits_p"] == pytest.approx(0.8)
    embedding = members.score(data, math.inf, (1.0,), groups)
    # The embedding member is right on the first 40 of 80 prompts: the ten digits and 30.
    assert embedding["ivr_digits"] == 10 and embedding["ivr_other"] == 30
    assert embedding["test"] == 0.5


def test_the_table_chooses_on_validation_and_reports_every_join():
    runs = [_data(1, rnn_good=True), _data(2, rnn_good=True)]
    groups = ["digit"] * 10 + ["other"] * 70
    rows, text = members.table(runs, groups)
    assert len(rows) == len(members.EXPONENTS) * len(members.SPEED_SETS)
    chosen = [r for r in rows if r["chosen"]]
    assert len(chosen) == 1
    # attention_rnn is right on every clip, and so is every product that counts it more than
    # the embedding (the plain product ties where they disagree); the choice is among the
    # joins of the clip alone.
    assert chosen[0]["validation"] == 1.0 and chosen[0]["speeds"] == [1.0]
    assert chosen[0]["exponent"] < 1.0
    assert "embedding alone" in text and "test speeds 0.9/1/1.1" in text
    assert text.count("**") == 4  # The chosen row's label and test accuracy, in bold.
    # When the embedding is the better member on validation, a join that counts it wins.
    bad = [_data(1, rnn_good=False)]
    rows, _ = members.table(bad, groups)
    assert next(r for r in rows if r["chosen"])["exponent"] > 1.0


def test_the_telephone_validation_is_reported_not_chosen_on():
    # attention_rnn is right on every clean validation clip, but through the telephone it is
    # wrong on every one and the embedding right on all: the column shows it, the choice
    # stays with the clean clips.
    data = _data(1, rnn_good=True)
    for speed in (0.9, 1.0, 1.1):
        rnn = data[f"validation_telephone/attention_rnn/{speed:g}"]
        data[f"validation_telephone/attention_rnn/{speed:g}"] = np.roll(rnn, 1, axis=1)
        data[f"validation_telephone/speech_embedding/{speed:g}"] = rnn
    rows, text = members.table([data], ["digit"] * 10 + ["other"] * 70)
    chosen = next(r for r in rows if r["chosen"])
    assert chosen["validation"] == 1.0 and chosen["exponent"] < 1.0
    rnn_alone = next(r for r in rows if r["exponent"] == 0.0 and r["speeds"] == [1.0])
    embedding = next(r for r in rows if math.isinf(r["exponent"]) and r["speeds"] == [1.0])
    assert rnn_alone["validation_telephone"] == 0.0 and embedding["validation_telephone"] == 1.0
    row = next(line for line in text.splitlines() if "attention_rnn alone" in line)
    assert "| 100.00% | 0.00% |" in row


def test_the_cache_is_used_recomputed_when_corrupt_and_a_missing_run_is_named(tmp_path,
                                                                              monkeypatch):
    import json

    from benchmarks import keyword_spotting_real

    run = tmp_path / "run"
    with pytest.raises(ValueError, match="metrics.json does not exist"):
        members.probabilities_of(str(run), None, {"test": None})
    run.mkdir()
    export = run / "export" / "1"
    export.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(
        {"embedding_ensemble": True, "export_path": str(export), "model_config": {}}))
    calls = []
    monkeypatch.setattr(keyword_spotting_real, "rebuild",
                        lambda *a: calls.append(a) or (None, {"m": None}))
    computed = []
    monkeypatch.setattr(members, "member_probabilities",
                        lambda m, sets, speeds: computed.append(sorted(sets)) or {
                            f"{name}/label": np.arange(3) + i for i, name in enumerate(sets)})
    first = members.probabilities_of(str(run), None, {"test": None})
    np.testing.assert_array_equal(first["test/label"], np.arange(3))
    members.probabilities_of(str(run), None, {"test": None})
    assert len(calls) == 1  # The second call read the cache.
    # A set the cache lacks is computed alone and added; the cached one is kept.
    both = members.probabilities_of(str(run), None, {"test": None, "validation": None})
    assert computed == [["test"], ["validation"]] and len(calls) == 2
    np.testing.assert_array_equal(both["test/label"], np.arange(3))
    np.testing.assert_array_equal(both["validation/label"], np.arange(3))
    members.probabilities_of(str(run), None, {"test": None, "validation": None})
    assert len(calls) == 2
    (run / members.CACHE).write_bytes(b"not a zip file")
    again = members.probabilities_of(str(run), None, {"test": None})
    assert len(calls) == 3 and np.array_equal(again["test/label"], np.arange(3))
    # One-model runs are refused by name.
    (run / "metrics.json").write_text(json.dumps({"embedding_ensemble": False}))
    with pytest.raises(ValueError, match="not an embedding_ensemble run"):
        members.probabilities_of(str(run), None, {"test": None})
