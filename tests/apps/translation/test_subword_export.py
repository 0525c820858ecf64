"""The main job with the subword vocabulary on a tiny TSV; its SavedModel served without the
project."""

import os
import re

import numpy as np
import pytest

from apps.common import subword
from apps.translation import builder as translation_builder
from apps.translation import model as translation_model
from apps.translation import train
from tests.apps.serving_checks import replay_warmup, run_isolated
from tests.apps.translation import fixtures
from tests.apps.translation.test_train_export import ANSWERS

# Trains, exports or starts processes: seconds to minutes (runs by default).
pytestmark = pytest.mark.slow

MAX_SOURCE, MAX_TARGET = 24, 20
# Seen only in sources that fall in the test split: never in the vocabulary.
HELD_OUT = "Zyxomma"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("translation_subword")
    pairs = fixtures.sentence_pairs(300, seed=3, max_words=7)
    held = [s for s in (f"{HELD_OUT} number {i}" for i in range(300))
            if translation_builder.split_of(s) == "test"][:15]
    tsv = root / "pairs.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in pairs.items())
                   + "".join(f"{s}\t{s}\n" for s in held), encoding="utf-8")
    model = translation_model.ModelConfig(
        variant="bahdanau", units=32, embedding_dim=16, attention_units=16,
        source_vocab_size=700, max_source_length=MAX_SOURCE, max_target_length=MAX_TARGET,
    )
    config = train.TrainConfig(
        train_tsv=str(tsv), data_dir=str(root / "data"), model_dir=str(root / "run"),
        export_dir=str(root / "export"), model=model, epochs=2, steps_per_epoch=6,
        batch_size=32, beam_width=4, heatmaps=1, verbose=0, vocabulary="subword",
    )
    result = train.run(config)
    return {"result": result, "metrics": result.metrics, "export": result.export_path,
            "run": str(root / "run"), "held": held}


def test_run_trains_a_joint_subword_vocabulary_from_the_training_split(trained):
    metrics, run = trained["metrics"], trained["run"]
    assert metrics["vocabulary"]["kind"] == "subword"
    assert metrics["decoding"]["copy"] is True  # model.copy=None: on with a joint vocabulary
    assert metrics["vocabulary"]["source"] == metrics["vocabulary"]["target"] <= 700
    assert metrics["steps_per_epoch"] == 6 and metrics["epochs"] == 2
    assert set(metrics["test_sets"]) == {"train_tsv"}
    assert metrics["test_sets"]["train_tsv"]["bleu"] == metrics["bleu"]
    assert list(metrics["bleu_by_words"]) == ["<=10", "10-20", "20-30", "30-40", "40-60", ">60"]
    assert metrics["bleu_by_words"]["<=10"]["sentences"] == metrics["pairs"]["test"]
    vocabulary = subword.load_vocabulary(os.path.join(run, "subword", "vocab.txt"))
    assert len(vocabulary) == metrics["vocabulary"]["source"]
    # The held-out word appears only in test-split sources: no piece of it was learnt.
    learnt = {p.removeprefix("##") for p in vocabulary[len(subword.RESERVED) + 512:]}
    assert not any(len(p) > 2 and p in HELD_OUT.lower() for p in learnt)
    assert "fichier" in vocabulary and "window" in vocabulary  # frequent training words
    with open(os.path.join(run, "translations.tsv"), encoding="utf-8") as f:
        sources = [line.split("\t")[0] for line in f][1:]
    assert sum(HELD_OUT in s for s in sources) == len(trained["held"])


LONG_60 = ("open the red file in the new window".split() * 8)[:60]

_SERVE = """
model = tf.saved_model.load(ARGS["path"])
serve = model.signatures["serving_default"]
inputs = [
    " ".join(ARGS["long"]).encode(),             # 60 words
    " ".join(ARGS["long"] * 20).encode(),        # 1,200 words: cut
    b"",                                          # empty
    b"  \\t\\n ",                                 # whitespace only
    b"open \\xff\\xfe the \\xc3 file",             # not UTF-8
    b"open the zyxomma file",                     # a word never seen
    "ouvrir « 東京 » 🙂".encode(),                 # other scripts, emoji
]
out = serve(text=tf.constant(inputs))
""" + ANSWERS


@pytest.fixture(scope="module")
def served(trained):
    return run_isolated(_SERVE, path=trained["export"], long=LONG_60)


def test_long_empty_and_invalid_inputs_have_defined_answers(served):
    n = 7
    assert served["shapes"]["translation"] == [n]
    assert served["shapes"]["source_tokens"] == [n, MAX_SOURCE]
    assert served["shapes"]["attention_weights"] == [n, MAX_TARGET, MAX_SOURCE]
    tokens, targets = served["source_tokens"], served["target_tokens"]
    # 60 and 1,200 words: cut at MAX_SOURCE pieces, the same first pieces, output bounded.
    assert all(tokens[0]) and tokens[1] == tokens[0]
    assert tokens[0][:3] == ["open", "the", "red"]
    for i in (0, 1):
        assert 0 < sum(1 for t in targets[i] if t) <= MAX_TARGET
        assert isinstance(served["translation"][i], str)
    # Empty and whitespace-only: "", no tokens, zero attention.
    for i in (2, 3):
        assert served["translation"][i] == ""
        assert not any(tokens[i]) and not any(targets[i])
        assert not np.any(served["attention"][i])
    # Invalid UTF-8: replaced by U+FFFD, whose UTF-8 bytes are byte pieces.
    assert tokens[4][0] == "open" and "the" in tokens[4]
    assert "<0xEF>" in tokens[4] and "##<0xBF>" in tokens[4]
    assert "\ufffd" not in "".join(tokens[4])
    assert "too_many" in served and "at most 256" in served["too_many"]


def _piece_bytes(piece: str) -> bytes:
    """The text a piece stands for (a byte piece `<0x7A>` or `##<0x7A>` is its byte)."""
    bare = piece.removeprefix("##")
    if re.fullmatch(r"<0x[0-9A-F]{2}>", bare):
        return bytes([int(bare[3:5], 16)])
    return bare.encode("utf-8")


def test_unseen_words_come_out_as_pieces_never_unk(served):
    tokens = served["source_tokens"]
    unseen = [t for t in tokens[5] if t][2:-1]
    assert len(unseen) >= 2 and unseen[0] != "zyxomma"
    assert b"".join(_piece_bytes(t) for t in unseen) == b"zyxomma"
    assert all(t.startswith("##") for t in unseen[1:])
    # Other scripts and emoji: pieces or bytes, never [UNK], on either side.
    assert "<0xF0>" in tokens[6]
    for row in tokens + served["target_tokens"]:
        assert subword.UNK not in row


def test_attention_is_per_target_piece_over_source_pieces(served):
    for i in (0, 5):
        att = np.array(served["attention"][i])
        emitted = sum(1 for t in served["target_tokens"][i] if t)
        real = sum(1 for t in served["source_tokens"][i] if t)
        np.testing.assert_allclose(att[:emitted].sum(-1), 1.0, atol=1e-4)
        assert np.all(att[:, real:] == 0) and np.all(att[emitted:] == 0)


def test_warmup_requests_with_long_and_bad_inputs_replay_through_four_loaders(trained):
    from apps.common import export as common_export

    (name, request), = common_export.read_warmup_requests(trained["export"])
    texts = list(request["text"])
    assert b"" in texts and any(len(t.split()) == 60 for t in texts)
    assert any(not t.strip() and t for t in texts)
    assert any(b"\xff" in t for t in texts)
    answered = replay_warmup(trained["export"])
    assert [n for n, _ in answered] == ["serving_default"]
