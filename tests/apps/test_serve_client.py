"""`apps.serve_client.describe`: a server's answer as a person reads it (no server here)."""

from apps import serve_client


def test_sentiment_answers_show_words_weights_and_the_lexicon_score():
    outputs = {  # as REST returns them: lists, strings
        "label": ["positive", "negative"],
        "probabilities": [[0.1, 0.9], [0.8, 0.2]],
        "tokens": [["a", "fine", "film", ""], ["dull", "", "", ""]],
        "attention_weights": [[0.2, 0.7, 0.1, 0.0], [1.0, 0.0, 0.0, 0.0]],
        "lexicon_score": [0.42, -0.5],
    }
    text = serve_client.describe("sentiment", outputs)
    lines = text.splitlines()
    assert lines[0] == "label=positive p(positive)=0.900 lexicon_score=+0.420"
    assert lines[1].split() == ["a[0.20]", "fine[0.70]", "film[0.10]"]
    assert lines[2] == "label=negative p(positive)=0.200 lexicon_score=-0.500"
    del outputs["lexicon_score"]  # a model without the lexicon
    assert serve_client.describe("sentiment", outputs).splitlines()[0] == (
        "label=positive p(positive)=0.900")
