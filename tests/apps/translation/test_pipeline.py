"""The input pipeline: TSV pairs, tokenizers, teacher-forcing batches."""

import os

import numpy as np
import pytest
import tensorflow as tf

from apps.translation import builder as translation_builder
from apps.translation import pipeline
from tests.apps.translation import fixtures


def test_read_tsv_splits_by_source_and_rejects_bad_lines(tmp_path):
    path = tmp_path / "pairs.tsv"
    pairs = fixtures.sentence_pairs(120, seed=2)
    lines = [f"{s}\t{t}" for s, t in pairs.items()] + ["", "Open the file\tdoublon"]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"bad \xff bytes\tmauvais\n")
    splits = pipeline.read_tsv(str(path))
    total = sum(len(s) for s in splits.values())
    assert total == len(pairs) + 1 or total == len(pairs) + 2
    for name, split in splits.items():
        for source in split.sources:
            assert translation_builder.split_of(source) == name
    (tmp_path / "bad.tsv").write_text("only one column\n", encoding="utf-8")
    with pytest.raises(ValueError, match="source<TAB>target"):
        pipeline.read_tsv(str(tmp_path / "bad.tsv"))
    with pytest.raises(FileNotFoundError, match="train_tsv"):
        pipeline.read_tsv(str(tmp_path / "missing.tsv"))


def test_load_splits_reads_a_tsv_and_names_unknown_datasets(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in fixtures.sentence_pairs(40).items()),
                    encoding="utf-8")
    splits, source, target = pipeline.load_splits("ignored", str(tmp_path), str(path))
    assert (source, target) == ("source", "target") and set(splits) == {"train", "validation",
                                                                        "test"}
    with pytest.raises(ValueError, match="Unknown dataset"):
        pipeline.load_splits("no_such_dataset", str(tmp_path))


def test_make_dataset_teacher_forcing_shapes():
    pairs = pipeline.Pairs(["Open the file", "Close all the new windows now"],
                           ["Ouvrir le fichier", "Fermer toutes les nouvelles fenêtres"])
    src_tok, tgt_tok = pipeline.make_tokenizers(pairs, 100, 100, 8, 8)
    (src, tgt_in), tgt_out = next(iter(pipeline.make_dataset(pairs, src_tok, tgt_tok, 2)))
    assert src.shape == (2, 6) and tgt_in.shape == tgt_out.shape == (2, 6)
    assert np.all(tgt_in.numpy()[:, 0] == tgt_tok.start_id)
    np.testing.assert_array_equal(tgt_in.numpy()[:, 1:], tgt_out.numpy()[:, :-1])
    lengths = np.sum(tgt_out.numpy() != 0, axis=1)
    assert tgt_out.numpy()[0, lengths[0] - 1] == tgt_tok.end_id
    assert tgt_tok.vocabulary[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"]
    assert "fenêtres" in tgt_tok.vocabulary


def test_training_batches_hold_every_pair_once_in_a_seeded_order():
    synthetic = fixtures.sentence_pairs(40, seed=4, max_words=9)
    pairs = pipeline.Pairs(list(synthetic), list(synthetic.values()))
    src_tok, tgt_tok = pipeline.make_tokenizers(pairs, 100, 100, 12, 12)

    def rows(training, seed=1):
        ds = pipeline.make_dataset(pairs, src_tok, tgt_tok, 8, training=training, seed=seed)
        return [tuple(int(i) for i in row if i) for (src, _), _ in ds for row in src.numpy()]

    assert sorted(rows(True)) == sorted(rows(False)) and len(rows(True)) == len(pairs)
    assert rows(True) != rows(False)  # shuffled
    assert rows(True, seed=7) == rows(True, seed=7)  # by the seed


@pytest.mark.parametrize("vocabulary", ["word", "subword"])
def test_a_resumed_run_reads_back_the_interrupted_runs_vocabulary(tmp_path, vocabulary):
    import dataclasses

    from apps.common import training
    from apps.translation import train as translation_train

    pairs = pipeline.Pairs(["open the file now", "close the window", "save the file as"],
                           ["ouvrir le fichier", "fermer la fenêtre", "enregistrer sous"])
    base = translation_train.TrainConfig(vocabulary=vocabulary, min_count=1)
    config = dataclasses.replace(base, model=dataclasses.replace(
        base.model, source_vocab_size=600, target_vocab_size=600, max_source_length=9,
        max_target_length=7))
    model_dir = str(tmp_path / "run")
    assert not training.resumes(model_dir)
    first_source, first_target = translation_train.run_tokenizers(config, pairs, model_dir)
    assert pipeline.load_tokenizers(model_dir, 9, 7, vocabulary) is not None

    other = pipeline.Pairs(["zebra quagga okapi"], ["zèbre couagga okapi"])
    # No backup: the vocabulary is learnt again (here from other pairs).
    fresh = translation_train.run_tokenizers(config, other, str(tmp_path / "fresh"))
    assert fresh[0].vocabulary != first_source.vocabulary
    # A backup of an interrupted run: its vocabulary and lengths, not the data's.
    os.makedirs(os.path.join(model_dir, training.BACKUP_DIR))
    open(os.path.join(model_dir, training.BACKUP_DIR, "latest.weights.h5"), "wb").close()
    assert training.resumes(model_dir)
    source, target = translation_train.run_tokenizers(config, other, model_dir)
    assert source.vocabulary == first_source.vocabulary
    assert target.vocabulary == first_target.vocabulary
    text = tf.constant(["open the file now and close the window again"])
    for resumed, first in ((source, first_source), (target, first_target)):
        np.testing.assert_array_equal(resumed.tokenize(text)[1].numpy(),
                                      first.tokenize(text)[1].numpy())
