"""Unicode-aware tokenization: accents, Devanagari, no-break spaces, bad bytes."""

import numpy as np
import tensorflow as tf

from apps.translation import text


def _split(s):
    return [t.decode() for t in text.split_words(tf.constant([s])).to_list()[0]]


def test_accented_and_devanagari_words_stay_whole():
    assert _split("Fenêtres déjà ouvertes") == ["fenêtres", "déjà", "ouvertes"]
    assert _split("संख्या काफी बड़ी है") == ["संख्या", "काफी", "बड़ी", "है"]
    assert _split("Größe ändern") == ["größe", "ändern"]


def test_punctuation_apostrophes_and_unicode_spaces():
    assert _split("Largeur\u00a0: «\u202fl’arrière-plan\u202f»") == [
        "largeur", ":", "«", "l’arrière", "-", "plan", "»"]
    assert _split("l'image (copie)") == ["l'image", "(", "copie", ")"]


def test_tokenizer_round_trip_and_bad_bytes():
    vocab = text.build_vocabulary(["Ouvrir la fenêtre.", "Fermer la fenêtre"], 50,
                                  reserved=(text.PAD, text.UNK, text.START, text.END))
    tok = text.Tokenizer(vocab, 8, bos_eos=True)
    tokens, ids = tok.tokenize(tf.constant(["Ouvrir la fenêtre.", b"la \xff fen\xc3"]))
    assert [t.decode() for t in tokens.numpy()[0][:6]] == [
        "[START]", "ouvrir", "la", "fenêtre", ".", "[END]"]
    assert ids.numpy()[1][2] == 1  # U+FFFD: unknown, not an error
    assert tok.detokenize(ids[:1, 1:]).numpy()[0].decode() == "ouvrir la fenêtre."
    empty = tok.tokenize(tf.constant([""]))[1].numpy()
    np.testing.assert_array_equal(empty[0][:2], [tok.start_id, tok.end_id])
