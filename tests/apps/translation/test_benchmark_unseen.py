"""benchmarks/translation_unseen: exports parsed, a SavedModel called and scored, the table."""

import json
import os

import pytest
import tensorflow as tf
from absl import flags

from benchmarks import translation_unseen as bench

PAIRS = [
    ("Open the file", "Ouvrir le fichier", "pkg-a"),
    ("Save the document now", "Enregistrer le document maintenant", "pkg-a"),
    ("Show hidden files in the folder view", "Afficher les fichiers cachés", "pkg-b"),
    ("VLC media player", "Lecteur multimédia VLC", "pkg-b"),
    ("Print the page", "Imprimer la page", "pkg-b"),
    ("Close all windows of the program at once", "Fermer toutes les fenêtres", "pkg-a"),
]
SET = {"language": "fr", "rows": 6, "sha256": "abc",
       "training": {"dataset": "gettext_translations/fr", "sources": 10, "sha256": "def"},
       "packages": [{"name": "pkg-a", "kept": 3}, {"name": "pkg-b", "kept": 3}],
       "totals": {"removed_seen": 4, "kept": 6}}


class Upper(tf.Module):
    """A stand-in translation export: the source, upper-cased."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        return {"translation": tf.strings.upper(text)}


@pytest.fixture(scope="module")
def export_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("exports")
    module = Upper()
    tf.saved_model.save(module, str(base / "3"), signatures={"serving_default": module.serve})
    os.makedirs(base / "1")  # a version without a SavedModel: passed over
    return str(base)


def test_parse_exports_and_resolve(export_base, tmp_path):
    assert bench.parse_exports("a=x/1, b = y") == {"a": "x/1", "b": "y"}
    for bad, message in (("a", "not NAME=PATH"), ("a=x,a=y", "given twice"),
                         ("copy-source=x", "baseline"), ("=x", "not NAME=PATH")):
        with pytest.raises(ValueError, match=message):
            bench.parse_exports(bad)
    assert bench.resolve_export(export_base) == os.path.join(export_base, "3")
    with pytest.raises(FileNotFoundError, match="neither a SavedModel"):
        bench.resolve_export(str(tmp_path))


def test_sample_is_fixed_and_ordered():
    pairs = [(str(i), str(i), "p") for i in range(50)]
    picked = bench.sample(pairs, 10)
    assert picked == bench.sample(pairs, 10) and len(picked) == 10
    assert picked == sorted(picked, key=lambda p: int(p[0]))
    assert bench.sample(pairs, None) == pairs == bench.sample(pairs, 99)
    with pytest.raises(ValueError, match="--limit=0"):
        bench.sample(pairs, 0)


def test_run_scores_exports_and_the_copy_baseline(export_base, tmp_path):
    record = bench.run({"upper": export_base}, PAIRS, SET, batch_size=4, command="cmd",
                       results_dir=str(tmp_path), limit=None)
    results = record["results"]
    assert list(results) == ["copy-source", "upper"]
    # Case-insensitive scores: the upper-cased source scores as the source does.
    for key in ("bleu", "chrf", "sentences"):
        assert results["upper"][key] == pytest.approx(results["copy-source"][key])
    assert results["copy-source"]["sentences"] == 6 and results["copy-source"]["chrf"] > 0
    assert results["upper"]["empty"] == 0
    assert bench.score(PAIRS[:2], ["", " "])["empty"] == 2
    assert set(results["upper"]["bleu_by_length"]) == {"short", "middle", "long"}
    assert results["upper"]["by_package"]["pkg-b"]["sentences"] == 3
    assert results["upper"]["export"].endswith(os.sep + "3")
    text = record["markdown"]
    assert "| copy-source |" in text and "| upper |" in text and "Command: `cmd`" in text
    assert "6 pairs scored of the unseen-programs set" in text and "pkg-a 3" in text
    assert "case:lc" in text
    with open(tmp_path / "translation_unseen.json", encoding="utf-8") as f:
        written = json.load(f)
    assert written["meta"]["set"]["rows"] == 6 and written["meta"]["rows"] == 6
    assert "cpu_model" in written["meta"]["machine"]
    assert (tmp_path / "translation_unseen.md").read_text() == text


def test_importing_defines_no_flags():
    assert not flags.FLAGS.flags_by_module_dict().get(bench.__name__)


def test_run_also_scores_the_ui_test_split(export_base, tmp_path):
    ui = PAIRS[:3]
    record = bench.run({"upper": export_base}, PAIRS, SET, batch_size=2, command="cmd",
                       results_dir=str(tmp_path), ui_test=ui)
    for name in ("copy-source", "upper"):
        assert record["results"][name]["ui_test"]["sentences"] == 3
    assert record["results"]["upper"]["ui_test"]["bleu"] == pytest.approx(
        record["results"]["copy-source"]["ui_test"]["bleu"])
    assert record["meta"]["ui_test_rows"] == 3
    assert "UI-strings test split of `gettext_translations` 1.0.0 (3 pairs" in record["markdown"]
    plain = bench.run({"upper": export_base}, PAIRS, SET, batch_size=2, command="cmd",
                      results_dir=str(tmp_path))
    assert "ui_test" not in plain["results"]["upper"] and "1.0.0" not in plain["markdown"]


def test_run_scores_the_long_test_split_by_english_words(export_base, tmp_path):
    long_pairs = [(" ".join(["word"] * n), " ".join(["mot"] * n)) for n in (3, 8, 15, 25)]
    record = bench.run({"upper": export_base}, PAIRS, SET, batch_size=3, command="cmd",
                       results_dir=str(tmp_path), long_pairs=long_pairs)
    for name in ("copy-source", "upper"):
        by_words = record["results"][name]["long_test"]["bleu_by_words"]
        assert [by_words[b]["sentences"] for b in ("<=10", "10-20", "20-30")] == [2, 1, 1]
    # Upper-cased in batches sorted by length, the outputs come back in the pairs' order.
    assert record["results"]["upper"]["long_test"]["chrf"] == pytest.approx(
        record["results"]["copy-source"]["long_test"]["chrf"])
    assert record["meta"]["long_test_rows"] == 4
    assert "test split of `long_translations`" in record["markdown"]
    assert "| <=10 (2) |" in record["markdown"]


def test_run_scores_the_manpage_set_apart_from_the_long_test(export_base, tmp_path):
    pages = [(" ".join(["page"] * n), " ".join(["mot"] * n), "tool") for n in (4, 12, 12, 45)]
    picked = [(p[0], p[1]) for p in pages[:2] + pages[3:]]
    record = bench.run({"upper": export_base}, PAIRS, SET, batch_size=2, command="cmd",
                       results_dir=str(tmp_path), manpage_pairs=picked,
                       manpage_record={**SET, "rows": 4,
                                       "packages": [{"name": "tool", "kept": 4},
                                                    {"name": "none", "kept": 0}]})
    by_words = record["results"]["upper"]["manpages"]["bleu_by_words"]
    assert [by_words[b]["sentences"] for b in ("<=10", "10-20", "40-60")] == [1, 1, 1]
    assert "long_test" not in record["results"]["upper"]
    assert record["meta"]["manpages_rows"] == 3 and record["meta"]["manpage_set"]["rows"] == 4
    assert "man pages never trained on" in record["markdown"]
    assert "3 of its 4 pairs" in record["markdown"] and "tool 4)" in record["markdown"]
    assert "none 0" not in record["markdown"] and "| 40-60 (1) |" in record["markdown"]


def test_translate_keeps_the_order_of_sources_of_mixed_lengths(export_base):
    sources = ["a b c d e f", "x", "m n o", "p q", "r s t u"]
    assert bench.translate(os.path.join(export_base, "3"), sources, batch_size=2) == [
        s.upper() for s in sources]
