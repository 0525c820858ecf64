"""benchmarks/translation_variants: no flags on import, re-scoring, targets, the command line."""

import json
import os
import subprocess
import sys

import pytest
from absl import flags

from benchmarks import translation_variants as bench

ROWS = [
    ("Open the file", "Ouvrir le fichier", "ouvrir le fichier"),
    ("Close all the windows now", "Fermer toutes les fenêtres maintenant",
     "fermer toutes les fenêtres"),
    ("Save the large red image in the folder", "Enregistrer la grande image rouge dans le "
     "dossier", "enregistrer la grande image rouge dans le dossier"),
    ("Show the menu", "Afficher le menu", "afficher le menu"),
    ("Copy the text of the small blue window to a new file", "Copier le texte de la petite "
     "fenêtre bleue dans un nouveau fichier", "copier le texte"),
    ("Delete all", "Tout supprimer", "supprimer"),
]


def _fake_run(directory, variant, good):
    """A run directory as `train.run` leaves it: metrics.json and translations.tsv."""
    os.makedirs(directory)
    with open(os.path.join(directory, "translations.tsv"), "w", encoding="utf-8") as f:
        f.write("source\treference\ttranslation\tmodel_output\n")
        for source, reference, hypothesis in ROWS:
            hypothesis = hypothesis if good else "le"
            f.write(f"{source}\t{reference}\t{hypothesis}\t{hypothesis}\n")
    with open(os.path.join(directory, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"variant": variant, "bleu": -1.0, "train_seconds": 3.0,
                   "train_cpu_seconds": 5.0, "parameters": 1000, "final_loss": 2.0,
                   "pairs": {"train": 10, "validation": 2, "test": len(ROWS)}, "epochs": 1},
                  f)


@pytest.fixture
def runs(tmp_path):
    _fake_run(str(tmp_path / "runs" / "seq2seq"), "seq2seq", good=False)
    _fake_run(str(tmp_path / "runs" / "bahdanau"), "bahdanau", good=True)
    return tmp_path


def test_importing_defines_no_flags():
    assert not flags.FLAGS.flags_by_module_dict().get(bench.__name__)
    for name in ("variants", "results_dir", "runs_dir", "rescore"):
        owner = flags.FLAGS.find_module_defining_flag(name) if name in flags.FLAGS else None
        assert owner != bench.__name__


def test_rescore_writes_the_table_and_checks_the_targets(runs):
    base = bench.train.TrainConfig(epochs=1)
    record = bench.run_variants(["seq2seq", "bahdanau"], base, str(runs / "results"),
                                str(runs / "runs"), rescore_only=True, command="cmd")
    results, checks = record["results"], record["targets"]
    assert results["bahdanau"]["bleu"] > results["seq2seq"]["bleu"] >= 0.0
    assert results["seq2seq"]["wall_seconds"] is None
    assert checks["bleu_gain"] == pytest.approx(
        results["bahdanau"]["bleu"] - results["seq2seq"]["bleu"])
    assert checks["bleu_gain_met"]
    for name in ("translation_variants.json", "translation_variants.md",
                 "translation_bleu_by_length.png"):
        assert os.path.getsize(runs / "results" / name) > 0
    table = (runs / "results" / "translation_variants.md").read_text(encoding="utf-8")
    assert "| bahdanau |" in table and "Command: `cmd`" in table
    assert bench.targets({"bahdanau": results["bahdanau"]}) == {}


def _benchmark(*args):
    return subprocess.run([sys.executable, "-m", "benchmarks.translation_variants", *args],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_command_line_uses_the_common_flags(runs):
    ran = _benchmark("--variants=seq2seq,bahdanau", "--rescore", "--epochs=3", "--seed=7",
                     f"--runs_dir={runs / 'runs'}", f"--results_dir={runs / 'out'}",
                     "--config=beam_width=2")
    assert ran.returncode == 0, ran.stderr[-2000:]
    with open(runs / "out" / "translation_variants.json", encoding="utf-8") as f:
        meta = json.load(f)["meta"]
    assert (meta["epochs"], meta["seed"], meta["beam_width"]) == (3, 7, 2)
    assert meta["command"].endswith("--config=beam_width=2 --rescore")
    bad = _benchmark("--variants=seq2seq,lstm")
    assert bad.returncode != 0 and "--variants: pick one or more of" in bad.stderr
