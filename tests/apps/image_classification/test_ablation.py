"""The ablation's summary table (means over seeds, one row per variant, every column), and
its flags (defined when it runs, not on import)."""

import os
import subprocess
import sys

from benchmarks import image_classification_ablation as ablation

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _run(variant, seed, accuracy, localization):
    return {
        "variant": variant, "seed": seed, "test_accuracy": accuracy,
        "validation_accuracy": accuracy - 0.01, "parameters": 1000,
        "flops_per_image": 2_500_000, "ms_per_image": 0.5, "ms_batch1": 2.0,
        "train_seconds": 100.0 + seed, "primary_map": "cbam_stage1",
        "localization_ratio": localization, "activation_localization_ratio": 4.0,
    }


def test_summary_averages_seeds_and_table_has_a_row_per_variant():
    runs = [_run("plain", 1, 0.90, None), _run("cbam", 1, 0.96, 3.0), _run("cbam", 2, 0.98, 5.0)]
    rows = ablation.summarize(runs)
    assert [r["variant"] for r in rows] == ["plain", "cbam"]
    cbam = rows[1]
    assert cbam["seeds"] == 2
    assert abs(cbam["test_accuracy"] - 0.97) < 1e-12
    assert abs(cbam["localization_ratio"] - 4.0) < 1e-12
    assert cbam["train_seconds"] == 101.5
    meta = {"epochs": 3, "batch_size": 64, "seeds": ["1", "2"], "cpu_count": 2,
            "load_before": [1.0, 1.0, 1.0], "load_after": [2.0, 2.0, 2.0],
            "tensorflow": "2.21", "command": "python -m benchmarks.image_classification_ablation"}
    table = ablation.markdown(rows, meta)
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(lines) == 3  # header + two variants
    assert "| plain | 90.00% | 89.00% | 1,000 | 2.5 |" in table
    assert "97.00% ± 1.41%" in table
    assert "| – |" in table  # plain has no localization of its own here


def test_importing_defines_no_flags_so_other_benchmarks_import_beside_it():
    from absl import flags

    assert ablation.__name__ not in flags.FLAGS.flags_by_module_dict()


def test_its_flags_are_defined_when_it_runs_beside_another_seeds_flag():
    # As `python -m benchmarks.image_classification_ablation` does, after another module
    # (benchmarks/sentiment_variants.py) has defined --seeds: that one is reused.
    code = (
        "from absl import flags\n"
        "flags.DEFINE_list('seeds', ['1'], 'defined by another benchmark')\n"
        "from benchmarks import image_classification_ablation as ablation\n"
        "from apps.common import config\n"
        "from apps.image_classification import train\n"
        "ablation.define_flags()\n"
        "flags.FLAGS(['x', '--seeds=3,4', '--variants=plain,vit', '--epochs=2',"
        " '--config=canvas_size=72'])\n"
        "base = config.from_flags(train.TrainConfig)\n"
        "print(flags.FLAGS.seeds, flags.FLAGS.variants, flags.FLAGS.runs_dir, base.epochs,"
        " base.canvas_size)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=_ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == (
        "['3', '4'] ['plain', 'vit'] runs/image_classification_ablation 2 72")
