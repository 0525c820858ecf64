"""Scores by source length."""

from apps.translation import evaluation


def test_source_length_thirds():
    sources = ["a b", "a b c", "a b c d", "a b c d e f", "a b", "a b c d e f g h"]
    buckets, bounds = evaluation.source_length_thirds(sources)
    assert list(buckets) == [0, 1, 1, 2, 0, 2]
    assert bounds[0][0] == 2 and bounds[2][1] == 8
    assert evaluation.source_length_thirds([])[0].shape == (0,)


def test_corpus_scores_are_case_insensitive():
    scores = evaluation.corpus_scores(["Ouvrir le grand fichier rouge"],
                                        ["ouvrir le grand fichier rouge"])
    assert scores["bleu"] > 99 and "case:lc" in scores["bleu_signature"]
    assert evaluation.corpus_scores([], [])["bleu"] == 0.0
