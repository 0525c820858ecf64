"""Issue 17 in the app: subword ids, joined datasets, the length filter, BLEU by English words."""

import dataclasses

import numpy as np
import pytest
import sacrebleu
import tensorflow as tf

from apps.common import subword
from apps.translation import evaluation, pipeline
from apps.translation import model as translation_model
from tests.apps.translation import fixtures


def _pairs(count, seed=0, max_words=7):
    synthetic = fixtures.sentence_pairs(count, seed=seed, max_words=max_words)
    return pipeline.Pairs(list(synthetic), list(synthetic.values()))


def test_dataset_parts_join_with_plus_and_name_what_is_wrong():
    assert pipeline.dataset_parts("gettext_translations/fr") == ("gettext_translations/fr",)
    assert pipeline.dataset_parts("gettext_translations/fr+long_translations/fr") == (
        "gettext_translations/fr", "long_translations/fr")
    for bad, named in (("mnist", "Unknown dataset"),
                       ("gettext_translations/fr+mnist", "part 'mnist'"),
                       ("gettext_translations/fr+wmt14_translate/fr-en", "part 'wmt14"),
                       ("long_translations/fr+long_translations/fr", "twice"),
                       ("gettext_translations/fr+long_translations/de", "mixes target")):
        with pytest.raises(ValueError, match=named):
            pipeline.dataset_parts(bad)


def test_subword_tokenizers_share_one_vocabulary_and_never_emit_unk():
    pairs = _pairs(200, seed=5)
    source, target = pipeline.make_tokenizers(pairs, 700, 100, 32, 12, vocabulary="subword")
    assert isinstance(source, subword.SubwordTokenizer) and source.vocabulary == target.vocabulary
    assert len(source.vocabulary) <= 700 and target.bos_eos and not source.bos_eos
    pieces, ids = source.tokenize(tf.constant(["Open the xylophagous file"]))
    ids = ids.numpy()[0]
    assert subword.UNK not in [p.decode() for p in pieces.numpy()[0]]
    assert np.all(ids[ids != 0] != source.unk_id)
    # The unseen word is several pieces, which read back as the word.
    assert sum(1 for p in pieces.numpy()[0] if p) > 4
    assert source.detokenize(ids[None]).numpy()[0].decode() == "open the xylophagous file"
    with pytest.raises(ValueError, match="vocabulary must be one of"):
        pipeline.make_tokenizers(pairs, 700, 100, 12, 12, vocabulary="bpe")


def test_vocabulary_comes_from_the_given_training_pairs_only():
    train = _pairs(150, seed=6)
    held_out = "Quetzalcoatl zyxomma"
    # Seen only outside the training pairs: no piece of it longer than 2 characters is learnt.
    source, _ = pipeline.make_tokenizers(train, 800, 100, 12, 12, vocabulary="subword")
    learnt = {p.removeprefix("##") for p in source.vocabulary}
    assert not any(len(p) > 2 and p in held_out.lower() for p in learnt)
    both = pipeline.Pairs(train.sources + [held_out] * 50, train.targets + [held_out] * 50)
    source, _ = pipeline.make_tokenizers(both, 800, 100, 12, 12, vocabulary="subword")
    assert "quetzalcoatl" in source.vocabulary


def test_fitting_pairs_counts_pieces_and_drops_what_does_not_fit():
    pairs = pipeline.Pairs(["Open the file", "Open the file " * 4, "Close"],
                           ["Ouvrir le fichier", "Ouvrir", "Fermer " * 6])
    source, target = pipeline.make_tokenizers(_pairs(200, seed=7), 700, 100, 6, 5,
                                              vocabulary="subword")
    counts = pipeline.token_counts(source, pairs.sources)
    assert counts[0] == 3 and counts[1] == 12  # not cut at max_length
    kept, dropped = pipeline.fitting_pairs(pairs, source, target)
    # Source of 12 pieces > 6; target of 6 pieces > 5 - 1 (END takes a place).
    assert kept.sources == ["Open the file"] and dropped == 2
    words_source, words_target = pipeline.make_tokenizers(_pairs(50), 100, 100, 6, 5)
    assert list(pipeline.token_counts(words_source, ["a, b c", ""])) == [4, 0]


@pytest.mark.parametrize("variant", ["bahdanau", "transformer"])
def test_a_train_step_on_subword_ids_lowers_the_loss(variant):
    pairs = _pairs(64, seed=8)
    source, target = pipeline.make_tokenizers(pairs, 700, 100, 12, 12, vocabulary="subword")
    config = translation_model.ModelConfig(
        variant=variant, units=32, embedding_dim=16, attention_units=16, num_layers=1,
        intermediate_dim=32, source_vocab_size=source.vocabulary_size,
        target_vocab_size=target.vocabulary_size, max_source_length=12, max_target_length=12,
        dropout=0.0, learning_rate=1e-2)
    model = translation_model.compile_model(translation_model.build_model(config), config, 20)
    (src, tgt_in), tgt_out = next(iter(pipeline.make_dataset(pairs, source, target, 64)))
    assert int(tf.reduce_max(src)) >= 512  # learnt pieces, past the reserved and byte ids
    losses = [float(model.train_on_batch((src, tgt_in), tgt_out)[0]) for _ in range(15)]
    assert losses[-1] < 0.8 * losses[0], losses


def test_bleu_by_words_matches_a_hand_partition():
    def sentence(n):
        return " ".join(["word"] * n)

    # Bucket bounds: 10 | 11, 20 | 21, 60 | 61 words.
    sources = [sentence(n) for n in (3, 10, 11, 20, 21, 35, 60, 61)]
    references = ["le chat est sur le tapis", "il fait beau aujourd'hui", "ouvrir le fichier",
                  "fermer toutes les fenêtres", "le programme lit le fichier",
                  "la page de manuel", "une longue phrase ici", "trop long"]
    hypotheses = ["le chat est sur le tapis", "il fait beau", "ouvrir un fichier",
                  "fermer les fenêtres", "le programme lit le fichier", "page",
                  "une longue phrase ici", "non"]
    by_hand = {"<=10": [0, 1], "10-20": [2, 3], "20-30": [4], "30-40": [5], "40-60": [6],
               ">60": [7]}
    got = evaluation.bleu_by_words(sources, hypotheses, references)
    assert list(got) == ["<=10", "10-20", "20-30", "30-40", "40-60", ">60"]
    for name, picked in by_hand.items():
        expected = sacrebleu.metrics.BLEU(lowercase=True).corpus_score(
            [hypotheses[i] for i in picked], [[references[i] for i in picked]]).score
        assert got[name]["sentences"] == len(picked)
        assert got[name]["bleu"] == pytest.approx(expected), name
    assert got["20-30"]["bleu"] == pytest.approx(100.0)
    assert got["10-20"]["words"] == [11, 20] and got[">60"]["words"] == [61, None]
    empty = evaluation.bleu_by_words(sources[:1], hypotheses[:1], references[:1])
    assert empty["40-60"] == {"bleu": 0.0, "chrf": 0.0, "sentences": 0, "words": [41, 60]}
    with pytest.raises(ValueError, match="must be as many"):
        evaluation.bleu_by_words(sources, hypotheses[:2], references)


def test_train_config_takes_joined_datasets_and_a_vocabulary_kind():
    from apps.translation import train

    config = train.TrainConfig()
    # Both corpora by default, the long one sampled; room for 40-word inputs.
    assert config.dataset == train.LONG_DATASET == "gettext_translations/fr+long_translations/fr"
    assert config.long_train_pairs == 8000 and config.steps_per_epoch == 625
    assert (config.model.max_source_length, config.model.max_target_length) == (64, 72)
    assert train.TrainConfig(dataset=train.UI_DATASET).dataset == "gettext_translations/fr"
    assert config.vocabulary == "subword"
    assert train.TrainConfig(dataset=train.LONG_DATASET).dataset == train.LONG_DATASET
    assert train.TrainConfig(dataset="long_translations/de").dataset == "long_translations/de"
    with pytest.raises(ValueError, match="dataset: .*part 'mnist'"):
        train.TrainConfig(dataset="long_translations/fr+mnist")
    with pytest.raises(ValueError, match="vocabulary must be one of"):
        train.TrainConfig(vocabulary="bpe")
    with pytest.raises(ValueError, match="model.copy with vocabulary='word'"):
        train.TrainConfig(vocabulary="word", model=translation_model.ModelConfig(copy=True))
    assert train.TrainConfig(vocabulary="word").vocabulary == "word"  # copy=None: off there
    with pytest.raises(ValueError, match="steps_per_epoch must be >= 1"):
        train.TrainConfig(steps_per_epoch=0)


def test_training_pairs_fit_each_part_and_sample_the_long_corpus():
    from apps.translation import train

    source, target = pipeline.make_tokenizers(_pairs(200, seed=7), 700, 100, 6, 5,
                                              vocabulary="subword")
    ui = pipeline.Pairs(["Open the file", "Open the file " * 4, "Close"],
                        ["Ouvrir le fichier", "Ouvrir", "Fermer"])
    long = pipeline.Pairs([f"Open file {i}" for i in range(10)] + ["Open the file " * 4],
                          [f"Ouvrir {i}" for i in range(10)] + ["Ouvrir"])
    trains = {"gettext_translations/fr": ui, "long_translations/fr": long}
    config = train.TrainConfig(dataset=train.LONG_DATASET, long_train_pairs=4, seed=3)
    kept, dropped, per_part, by_words = train.training_pairs(config, trains, source, target)
    # One too long in each part; the long corpus's 10 that fit sampled down to 4.
    assert dropped == 2 and per_part == {"gettext_translations/fr": 2, "long_translations/fr": 4}
    # Per English-length bucket: how many there are, fit the lengths, and are trained on.
    assert by_words["long_translations/fr"]["<=10"] == {"pairs": 10, "fit": 10, "trained": 4}
    assert by_words["long_translations/fr"]["10-20"] == {"pairs": 1, "fit": 0, "trained": 0}
    assert by_words["gettext_translations/fr"]["<=10"] == {"pairs": 2, "fit": 2, "trained": 2}
    assert list(by_words["long_translations/fr"]) == ["<=10", "10-20", "20-30", "30-40",
                                                      "40-60", ">60"]
    assert kept.sources[:2] == ["Open the file", "Close"]
    assert set(kept.sources[2:]) < {f"Open file {i}" for i in range(10)}
    assert kept.sources == train.training_pairs(config, trains, source, target)[0].sources
    everything = dataclasses.replace(config, long_train_pairs=None)
    assert train.training_pairs(everything, trains, source, target)[2][
        "long_translations/fr"] == 10
    with pytest.raises(ValueError, match="long_train_pairs must be >= 1"):
        train.TrainConfig(long_train_pairs=0)


def test_per_bucket_keeps_the_first_pairs_of_each_length_bucket():
    from apps.translation import train

    lengths = [3, 25, 4, 5, 30, 45, 2, 26, 27]
    pairs = pipeline.Pairs([" ".join(["w"] * n) for n in lengths], [str(n) for n in lengths])
    kept = train.per_bucket(pairs, 2)
    assert kept.targets == ["3", "25", "4", "30", "45"]


def test_per_bucket_with_a_seed_draws_each_bucket_at_random_and_keeps_the_order():
    from apps.translation import train

    lengths = [3] * 50 + [15] * 5 + [45] * 2
    pairs = pipeline.Pairs([" ".join([f"w{i}"] * n) for i, n in enumerate(lengths)],
                           [str(i) for i in range(len(lengths))])
    picked = train.per_bucket(pairs, 4, seed=0)
    index = [int(t) for t in picked.targets]
    assert len(index) == 4 + 4 + 2 and index == sorted(index)
    assert index[:4] != [0, 1, 2, 3]  # not the first of the bucket
    assert picked.targets == train.per_bucket(pairs, 4, seed=0).targets
    assert picked.targets != train.per_bucket(pairs, 4, seed=1).targets
    assert train.per_bucket(pairs, 100, seed=0).targets == pairs.targets
