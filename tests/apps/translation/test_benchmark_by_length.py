"""benchmarks/translation_by_length: the verdicts of issue 17's targets, the table, the plot."""

import json

import pytest
from absl import flags

from benchmarks import translation_by_length as bench


def _run(bleus, params=1000):
    return {"bleu": sum(bleus) / len(bleus), "parameters": params, "train_seconds": 12.0,
            "bleu_by_words": {b: {"bleu": v, "sentences": 10}
                              for b, v in zip(bench.BUCKETS, bleus, strict=True)}}


def test_targets_follow_the_issue():
    results = {
        "seq2seq": _run([30, 20, 12, 8, 4]),        # drops 26
        "bahdanau": _run([32, 28, 25, 22, 20]),     # drops 12 <= 13; margins 13, 14, 16
        "luong": _run([31, 27, 16, 14, 12]),        # drops 19 > 13; margin 4 at 20-30
        "transformer": _run([35, 30, 17, 13.5, 9.0]),  # drops 26; margins 5, 5.5, 5
    }
    checks = bench.targets(results)
    assert set(checks) == {"bahdanau", "luong", "transformer"}
    assert checks["bahdanau"]["drop"] == 12 and checks["bahdanau"]["baseline_drop"] == 26
    assert checks["bahdanau"]["drop_met"] and checks["bahdanau"]["margin_met"]
    assert not checks["luong"]["drop_met"] and not checks["luong"]["margin_met"]
    assert checks["luong"]["margins_past_20"] == {"20-30": 4, "30-40": 6, "40-60": 8}
    assert not checks["transformer"]["drop_met"] and checks["transformer"]["margin_met"]
    assert bench.targets({"bahdanau": results["bahdanau"]}) == {}
    lines = bench.verdict_lines(checks)
    assert "- bahdanau: BLEU drop from <=10 to 40-60 words 12.00 vs seq2seq 26.00" in lines[0]
    assert lines[0].endswith(": met") and lines[3].endswith("NOT met")
    # bahdanau keeps 20 of 32 (62%), seq2seq 4 of 30 (13%)
    assert checks["bahdanau"]["kept"] == 20 / 32 and checks["bahdanau"]["baseline_kept"] == 4 / 30
    assert lines[1] == ("- bahdanau: keeps 62% of its <=10-word BLEU at 40-60 words, seq2seq 13% "
                        "(the relative view; not a target)")
    assert lines[3].startswith("- luong: BLEU drop")


def test_markdown_and_plot(tmp_path):
    results = {"seq2seq": _run([30, 20, 12, 8, 4]), "bahdanau": _run([32, 28, 25, 22, 20])}
    meta = {"dataset": "long_translations/fr", "epochs": 2, "steps_per_epoch": 3,
            "batch_size": 16, "seed": 1, "vocabulary": "subword", "beam_width": 4,
            "length_penalty": 0.6, "command": "cmd", "smoke": True,
            "machine": bench._common.machine_info(), "load_start": 1.0}
    text = bench.markdown(results, bench.targets(results), meta)
    assert "| bahdanau | 32.00 | 28.00 | 25.00 | 22.00 | 20.00 |" in text
    assert "<=10 (10)" in text and "Command: `cmd`" in text and "SMOKE RUN" in text
    path = bench.plot(results, str(tmp_path / "plot.png"), "t")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    json.dumps(meta)


def test_latency_inputs_and_errors(tmp_path):
    assert [len(t.split()) for t in bench.LATENCY_INPUTS.values()] == [40, 60]
    with pytest.raises(FileNotFoundError, match="no numbered SavedModel"):
        bench.latency(str(tmp_path))


def test_importing_defines_no_flags():
    assert not flags.FLAGS.flags_by_module_dict().get(bench.__name__)


def test_every_long_pair_is_trained_on_not_the_apps_sample():
    # The app's default samples 8,000 long pairs beside the UI strings; Fig. 2 trains on
    # all of them (its README rows: 70,557 pairs).
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    config = bench.base_config()
    assert bench.train.TrainConfig().long_train_pairs is not None
    assert config.long_train_pairs is None
    assert (config.model.max_source_length, config.model.max_target_length) == (128, 144)


def test_finished_variants_are_reused_and_only_for_the_same_config(tmp_path, monkeypatch):
    import dataclasses
    import os

    base = bench.train.TrainConfig(dataset=bench.DATASET, epochs=3, steps_per_epoch=7)
    runs = {"seq2seq": [30, 20, 12, 8, 4], "bahdanau": [32, 28, 25, 22, 20]}
    for variant, bleus in runs.items():
        config = dataclasses.replace(
            base, model=dataclasses.replace(base.model, variant=variant),
            model_dir=str(tmp_path / "runs" / variant), export_dir=None)
        assert bench.finished_variant(config) is None
        bench.training._write_json(os.path.join(config.model_dir, bench.FINISHED),
                                   {"config": bench._plain(config), "result": _run(bleus)})
        assert bench.finished_variant(config)["bleu_by_words"]["40-60"]["bleu"] == bleus[-1]
        # Any other setting (here the budget) is another run.
        assert bench.finished_variant(dataclasses.replace(config, epochs=4)) is None

    def no_training(config):
        raise AssertionError(f"{config.model.variant} was trained again")

    monkeypatch.setattr(bench.train, "run", no_training)
    record = bench.run_variants(list(runs), base, str(tmp_path / "results"),
                                str(tmp_path / "runs"), command="cmd")
    assert record["targets"]["bahdanau"]["drop_met"]
    assert (tmp_path / "results" / f"{bench.NAME}.md").exists()

    # A corrupt record is reported and the variant trained again (here: the stub raises).
    (tmp_path / "runs" / "seq2seq" / bench.FINISHED).write_text("{not json")
    with pytest.raises(AssertionError, match="seq2seq was trained again"):
        bench.run_variants(["seq2seq"], base, str(tmp_path / "results"),
                           str(tmp_path / "runs"))


def _write_outputs(runs, variant, rows):
    path = runs / variant / bench.TRANSLATIONS
    path.parent.mkdir(parents=True, exist_ok=True)
    from apps.translation import evaluation

    evaluation.write_translations(str(path), ((s, r, t, t) for s, r, t in rows))
    return path


def test_bootstrap_intervals_from_the_variants_outputs(tmp_path):
    """A variant that copies the reference against one that gets half the words right:
    its margins lie far above 0; a variant identical to seq2seq has [0, 0]."""
    import random

    from apps.translation import evaluation

    rng = random.Random(0)
    french = [f"mot{i}" for i in range(300)]
    sources, references, halves = [], [], []
    for words in (5, 15, 25, 35, 50):  # one length per bucket, 8 sentences each
        for _ in range(8):
            sources.append(" ".join(["word"] * words))
            reference = [rng.choice(french) for _ in range(words)]
            references.append(" ".join(reference))
            halves.append(" ".join(w if i % 2 else "x" for i, w in enumerate(reference)))
    runs = tmp_path / "runs"
    _write_outputs(runs, "seq2seq", zip(sources, references, halves, strict=True))
    _write_outputs(runs, "bahdanau", zip(sources, references, references, strict=True))
    _write_outputs(runs, "luong", zip(sources, references, halves, strict=True))
    statistics = bench.sentence_statistics(halves, references)
    assert bench.bleu_of(statistics.sum(axis=0)) == pytest.approx(
        evaluation.corpus_scores(halves, references)["bleu"])
    record = bench.bootstrap(str(runs), ["seq2seq", "bahdanau", "luong"], resamples=50)
    perfect, same = record["intervals"]["bahdanau"], record["intervals"]["luong"]
    for bucket, (low, high) in perfect["margins_past_20"].items():
        assert 20 < low <= high < 100, (bucket, low, high)
    assert all(interval == [0.0, 0.0] for interval in same["margins_past_20"].values())
    # luong's drop equals seq2seq's, so in every resample it exceeds half of it by half
    # of it: the interval is that of half the drop, around half the observed drop.
    low, high = same["drop_excess"]
    by_words = evaluation.bleu_by_words(sources, halves, references)
    half_drop = 0.5 * (by_words["<=10"]["bleu"] - by_words["40-60"]["bleu"])
    assert low - 1e-9 <= half_drop <= high + 1e-9 and half_drop > 0, (low, half_drop, high)
    lines = bench.interval_lines(record)
    assert lines[0].startswith("- bahdanau, paired bootstrap 95% intervals (50 resamples")
    # Missing outputs, or outputs of other sentences: no intervals, no error.
    assert bench.bootstrap(str(runs), ["seq2seq", "transformer"]) == {}
    _write_outputs(runs, "transformer", zip(sources[::-1], references, halves, strict=True))
    assert bench.bootstrap(str(runs), ["seq2seq", "transformer"]) == {}


def test_a_malformed_outputs_file_is_named(tmp_path):
    path = _write_outputs(tmp_path, "seq2seq", [("a b", "c d", "c d")])
    with open(path, "a", encoding="utf-8") as f:
        f.write("only\ttwo\n")
    with pytest.raises(ValueError, match=r"translations.tsv:3: 2 fields, expected 4"):
        bench.read_translations(str(path))


def test_tabs_and_line_breaks_inside_a_field_keep_the_rows_and_the_scores(tmp_path):
    """`evaluation.evaluate` writes the outputs with `write_translations`: a field holding
    a tab or a line break (a user's pair, a byte piece the model emitted) must not split
    its row, and BLEU read back from the file is that of the strings themselves."""
    from apps.translation import evaluation

    sources = ["open\tthe file", "close it"]
    references = ["ouvrir le\nfichier", "le fermer"]
    translations = ["ouvrir\r\nle fichier", "le\tfermer"]
    path = _write_outputs(tmp_path, "luong", zip(sources, references, translations,
                                                 strict=True))
    read_sources, read_references, read_translations = bench.read_translations(str(path))
    assert read_sources == ["open the file", "close it"]
    assert evaluation.corpus_scores(read_translations, read_references) == \
        evaluation.corpus_scores(translations, references)
