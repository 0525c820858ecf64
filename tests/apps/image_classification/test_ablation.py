"""The ablation (issue 20): paired-by-seed summary, the claim's verdict, the tables on a fake
record, the budget, the datasets' facts, its flags (defined when it runs, not on import) and a
quick run on fixture garments."""

import json
import math
import os
import subprocess
import sys

import pytest

from apps.image_classification import model as model_lib
from apps.image_classification import train
from benchmarks import image_classification_ablation as ablation
from tests.apps.image_classification.fashion_fixtures import write_fashion_idx

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
_T2 = 4.302653  # t(0.975, 2 degrees of freedom)


def _run(dataset, variant, seed, accuracy, maps=None, primary="activation"):
    maps = {"activation": 4.0} if maps is None else maps
    return {
        "dataset": dataset, "variant": variant, "seed": seed, "epochs": 3,
        "recipe": "small_data" if variant == "vit" else "standard", "train_examples": 540,
        "test_accuracy": accuracy, "validation_accuracy": accuracy - 0.01,
        "parameters": 1000, "flops_per_image": 2_500_000, "ms_per_image": 0.5, "ms_batch1": 2.0,
        "train_seconds": 100.0 + seed, "cpu_seconds": 150.0 + seed, "primary_map": primary,
        "localization_ratio": maps.get(primary), "maps": maps, "plots": [],
    }


def _record():
    runs = []
    for seed, plain, se, vit in [(1, 0.90, 0.92, 0.80), (2, 0.91, 0.94, 0.81),
                                 (3, 0.92, 0.93, 0.85)]:
        runs += [_run("fashion_mnist", "plain", seed, plain),
                 _run("fashion_mnist", "se", seed, se),
                 _run("fashion_mnist", "vit", seed, vit, {"rollout": 2.0 + seed,
                                                          "last_layer": 1.5}, "rollout")]
    runs += [_run("cluttered_fashion_mnist", "plain", 1, 0.80, {"activation": 6.0}),
             _run("cluttered_fashion_mnist", "nonlocal", 1, 0.83,
                  {"nonlocal": 10.0, "activation": 5.0}, "nonlocal")]
    meta = {
        "batch_size": 64, "seeds": [1, 2, 3], "budget": "3 epochs for every variant (--epochs)",
        "command": "python -m benchmarks.image_classification_ablation --epochs=3",
        "machine": {"cpu_model": "AMD EPYC 9B14", "cores": 2, "cores_usable": 2,
                    "tensorflow": "2.21", "keras": "3.15", "load_average_at_start": [1, 1, 1]},
        "datasets": {
            "fashion_mnist": {**ablation.dataset_facts(train.TrainConfig(
                dataset="fashion_mnist")), "train_examples": 540},
            "cluttered_fashion_mnist": {**ablation.dataset_facts(train.TrainConfig(
                dataset="cluttered_fashion_mnist")), "train_examples": 540},
        },
    }
    rows = ablation.summarize(runs)
    return {"meta": meta, "summary": rows, "runs": runs}


def test_summary_pairs_each_variant_with_plain_by_seed():
    rows = {(r["dataset"], r["variant"]): r for r in _record()["summary"]}
    se = rows[("fashion_mnist", "se")]
    # Differences 0.02, 0.03, 0.01: mean 0.02, sd 0.01.
    assert se["vs_plain"]["differences"] == pytest.approx([0.02, 0.03, 0.01])
    half = _T2 * 0.01 / math.sqrt(3)
    assert se["vs_plain"]["mean"] == pytest.approx(0.02)
    assert (se["vs_plain"]["low"], se["vs_plain"]["high"]) == pytest.approx(
        (0.02 - half, 0.02 + half), rel=1e-5)
    assert se["claim"] == "undecided"  # [-0.48, +4.48] points contains +1
    assert rows[("fashion_mnist", "vit")]["claim"] == "fails"  # about -9 points
    assert rows[("fashion_mnist", "plain")]["vs_plain"] is None
    assert rows[("fashion_mnist", "vit")]["maps"]["rollout"] == pytest.approx((4.0, 1.0))
    # One seed: no interval; pairs never cross datasets.
    nonlocal_ = rows[("cluttered_fashion_mnist", "nonlocal")]
    assert nonlocal_["vs_plain"]["differences"] == pytest.approx([0.03])
    assert nonlocal_["claim"] == "undecided (1 seed)"


def test_claim_verdict_reads_the_interval_against_one_point():
    def paired(low, high):
        return {"low": low, "high": high}

    assert ablation.claim_verdict(paired(0.012, 0.05)) == "holds"
    assert ablation.claim_verdict(paired(0.01, 0.05)) == "holds"  # at +1 point
    assert ablation.claim_verdict(paired(-0.02, 0.009)) == "fails"
    assert ablation.claim_verdict(paired(0.0, 0.02)) == "undecided"
    assert ablation.claim_verdict(None) == "–"


def test_markdown_names_the_datasets_the_machine_and_the_verdict():
    record = _record()
    table = ablation.markdown(record)
    assert "Cluttered digits" not in table and "None" not in table
    assert "`fashion_mnist` (28×28, no clutter; builder config `plain`)" in table
    assert ("`cluttered_fashion_mnist` (60×60, 4–8 clutter fragments of 8×8; builder config "
            "`cluttered`)") in table
    assert "540 training images, batch 64, seeds 1, 2, 3" in table
    assert "Command: `python -m benchmarks.image_classification_ablation --epochs=3`" in table
    assert "AMD EPYC 9B14" in table
    half = _T2 * 0.01 / math.sqrt(3) * 100
    assert (f"| se | 93.00% ± 1.00% | +2.00 | [{2 - half:+.2f}, {2 + half:+.2f}] | 3 / 0 "
            "| undecided | standard | 3 | 1,000 | 2.5 | 0.500 | 102 | 152 | activation | 4.00 |"
            ) in table
    assert "| vit | 82.00% ± 2.65% | -9.00 |" in table and "| fails | small_data |" in table
    assert ("`fashion_mnist`: the claim \"each attention variant ≥ plain + 1 point\" "
            "**fails**: the 95% interval of vit lies below +1 point.") in table
    assert ("`cluttered_fashion_mnist`: the claim \"each attention variant ≥ plain + 1 "
            "point\" **undecided**: nonlocal paired on one seed only (no interval).") in table
    # Every map of every variant, the exported one starred.
    assert "| fashion_mnist | vit | rollout * | 4.00 ± 1.00 |" in table
    assert "| fashion_mnist | vit | last_layer | 1.50 ± 0.00 |" in table
    assert "| cluttered_fashion_mnist | nonlocal | nonlocal * | 10.00 |" in table
    assert "| cluttered_fashion_mnist | nonlocal | activation | 5.00 |" in table
    json.dumps(record)  # what write_results writes


def test_the_overlays_come_from_each_datasets_first_recorded_seed(tmp_path):
    record = _record()
    for run in record["runs"]:
        plot = tmp_path / "runs" / f"{run['dataset']}_{run['variant']}_{run['seed']}.png"
        plot.parent.mkdir(exist_ok=True)
        plot.write_bytes(f"seed {run['seed']}".encode())
        run["plots"] = [str(plot)]
    # A command training only seed 2 rewrites the record (its runs first): the overlays
    # stay those of seed 1, the record's first.
    runs = sorted(record["runs"], key=lambda r: r["seed"] != 2)
    ablation._write(record["meta"], runs, str(tmp_path / "out"), "x")
    maps = tmp_path / "out" / "image_classification_maps"
    assert (maps / "fashion_mnist" / "se.png").read_bytes() == b"seed 1"
    assert (maps / "cluttered_fashion_mnist" / "nonlocal.png").read_bytes() == b"seed 1"


def test_markdown_says_when_a_datasets_runs_trained_on_different_machines():
    record = _record()
    assert "different machines" not in ablation.markdown(record)  # none recorded: one kind
    for run in record["runs"]:
        if run["dataset"] == "fashion_mnist":
            run["machine"] = {"cpu": "AMD EPYC (AVX-512)" if run["seed"] == 3
                              else "AMD EPYC (AVX2)"}
    text = ablation.markdown(record)
    assert text.count("different machines") == 1  # the canvases' runs: one kind
    assert "AMD EPYC (AVX-512): plain seed 3, se seed 3, vit seed 3." in text
    assert "AMD EPYC (AVX2): plain seed 1, se seed 1, vit seed 1, plain seed 2" in text


def test_overall_verdict_holds_only_when_every_interval_is_above_one_point():
    runs = [_run("fashion_mnist", v, s, a) for v, s, a in
            [("plain", 1, 0.90), ("plain", 2, 0.91), ("se", 1, 0.93), ("se", 2, 0.941)]]
    rows = ablation.summarize(runs)
    assert "**holds**" in ablation.overall_verdict(rows, "fashion_mnist")
    mixed = ablation.summarize(runs[:2] + [_run("fashion_mnist", "se", 1, 0.91),
                                           _run("fashion_mnist", "se", 2, 0.93),
                                           _run("fashion_mnist", "cbam", 1, 0.95)])
    assert ablation.overall_verdict(mixed, "fashion_mnist").endswith(
        "**undecided**: the interval of se contains +1; cbam paired on one seed only "
        "(no interval).")
    alone = ablation.summarize([_run("fashion_mnist", "se", 1, 0.9)])
    assert "not tested" in ablation.overall_verdict(alone, "fashion_mnist")


def test_merge_from_keeps_another_records_runs_of_the_same_settings(tmp_path):
    identity = {"train_config": {"batch_size": 64}}

    def write(path, runs, ident=identity):
        path.write_text(json.dumps({"meta": {"identity": ident}, "runs": runs}))
        return str(path)

    main = write(tmp_path / "main.json", [_run("fashion_mnist", "plain", 1, 0.90),
                                          _run("fashion_mnist", "plain", 3, 0.50)])
    other = write(tmp_path / "other.json", [_run("fashion_mnist", "plain", 3, 0.92),
                                            _run("fashion_mnist", "se", 3, 0.93)])
    runs = ablation.recorded_runs(main, [other], identity)
    assert [(r["variant"], r["seed"], r["test_accuracy"]) for r in runs] == [
        ("plain", 1, 0.90), ("plain", 3, 0.50), ("se", 3, 0.93)]  # main's wins a clash
    # Only the other record (the main one not written yet) works too.
    assert len(ablation.recorded_runs(str(tmp_path / "none.json"), [other], identity)) == 2
    with pytest.raises(ValueError, match="missing.json is not a file"):
        ablation.recorded_runs(main, [str(tmp_path / "missing.json")], identity)
    stranger = write(tmp_path / "stranger.json", [_run("fashion_mnist", "se", 2, 0.9)],
                     {"train_config": {"batch_size": 32}})
    with pytest.raises(ValueError, match="stranger.json holds no run trained with"):
        ablation.recorded_runs(main, [stranger], identity)


def test_a_narrower_command_carries_the_other_recorded_runs():
    recorded = [_run("fashion_mnist", v, seed, 0.9) for seed in (1, 2) for v in ("plain", "se")]
    recorded.append(_run("cluttered_fashion_mnist", "plain", 1, 0.8))
    carried = ablation.carried_runs(recorded, {"fashion_mnist": None}, [2], ["se", "cbam"])
    # se seed 2 is the command's own (kept or trained); the rest stays, other datasets too.
    assert [(r["dataset"][0], r["variant"], r["seed"]) for r in carried] == [
        ("f", "plain", 1), ("f", "se", 1), ("f", "plain", 2), ("c", "plain", 1)]


def test_recorded_datasets_facts_come_from_the_first_record_naming_them(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"meta": {"datasets": {"fashion_mnist": {"x": 1}}}}))
    second.write_text(json.dumps({"meta": {"datasets": {"fashion_mnist": {"x": 2},
                                                        "cluttered_fashion_mnist": {"x": 3}}}}))
    facts = ablation.recorded_datasets([str(tmp_path / "missing.json"), str(first),
                                        str(second)])
    assert facts == {"fashion_mnist": {"x": 1}, "cluttered_fashion_mnist": {"x": 3}}


def test_budget_epochs_fit_ten_minutes_by_the_documented_estimate():
    for dataset, per_variant in ablation.BUDGET_EPOCHS.items():
        for variant, epochs in per_variant.items():
            epoch_s = ablation.STEPS_PER_EPOCH * ablation.STEP_CPU_MS[dataset][variant] / 1000
            assert epochs * epoch_s <= 0.85 * ablation.BUDGET_SECONDS or epochs == 1
            assert (epochs + 1) * epoch_s > 0.85 * ablation.BUDGET_SECONDS
    assert ablation.budget_epochs("fashion_mnist", "plain", None) == 20
    assert ablation.budget_epochs("fashion_mnist", "vit", 7) == 7  # --epochs: the same for all
    assert ablation.budget_epochs("cifar10", "plain", None) == train.DEFAULT_EPOCHS


def test_the_vit_gets_its_own_budget_patches_and_recipe_unless_told():
    assert ablation.budget_epochs("fashion_mnist", "vit", None) == 30
    assert ablation.budget_epochs("cluttered_fashion_mnist", "vit", None) == 20
    base = train.TrainConfig(dataset="fashion_mnist")
    vit = ablation.variant_config(base, "vit", 2, 30)
    assert (vit.model.variant, vit.model.patch_size, vit.recipe, vit.seed, vit.epochs) == (
        "vit", 7, "augmented", 2, 30)
    assert ablation.planned_key(vit) == ("fashion_mnist", "vit", 2, 30, "augmented", 7)
    # The CNNs are untouched; their key has no patches.
    plain = ablation.variant_config(base, "plain", 2, 20)
    assert (plain.model.patch_size, plain.recipe) == (None, "auto")
    assert ablation.planned_key(plain) == ("fashion_mnist", "plain", 2, 20, "augmented", None)
    # What the user sets wins.
    told = train.TrainConfig(dataset="fashion_mnist", recipe="small_data",
                             model=model_lib.ModelConfig(patch_size=4))
    told = ablation.variant_config(told, "vit", 1, 30)
    assert (told.model.patch_size, told.recipe) == (4, "small_data")
    # A recorded run is kept only with the planned recipe and patches (the 4-epoch ViT of
    # 4x4 patches under small_data is not the 30-epoch one).
    old = {**_run("fashion_mnist", "vit", 2, 0.8), "requested_epochs": 30}
    assert ablation._run_key(old) != ablation.planned_key(vit)
    assert ablation._run_key({**old, "recipe": "augmented", "patch_size": 7}) == (
        ablation.planned_key(vit))


def test_dataset_facts_come_from_the_builder_config():
    facts = ablation.dataset_facts(train.TrainConfig(dataset="cluttered_fashion_mnist",
                                                     canvas_size=100, max_clutter=12))
    assert (facts["canvas_size"], facts["min_clutter"], facts["max_clutter"]) == (100, 4, 12)
    assert facts["builder_config"] == "cluttered_canvas_size_100_max_clutter_12"
    digits = ablation.dataset_facts(train.TrainConfig())
    assert (digits["canvas_size"], digits["builder_config"]) == (60, "default")
    assert ablation.dataset_facts(train.TrainConfig(dataset="cifar10")) == {"dataset": "cifar10"}


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
        "print(flags.FLAGS.seeds, flags.FLAGS.variants, flags.FLAGS.datasets,"
        " flags.FLAGS.runs_dir, base.epochs, base.canvas_size)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=_ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == (
        "['3', '4'] ['plain', 'vit'] ['fashion_mnist', 'cluttered_fashion_mnist'] "
        "runs/image_classification_ablation 2 72")


@pytest.mark.slow
def test_quick_run_over_two_variants_and_one_seed_on_fixture_garments(tmp_path):
    source = write_fashion_idx(tmp_path / "idx")
    results = tmp_path / "results"

    def ablation_run(*extra):
        return subprocess.run(
            [sys.executable, "-m", "benchmarks.image_classification_ablation", "--quick",
             "--variants=plain,vit", "--datasets=cluttered_fashion_mnist",
             f"--data_dir={tmp_path / 'data'}", f"--config=source_dir={source}",
             "--config=canvas_size=32", "--batch_size=16", "--config=jit_compile=false",
             "--config=model.widths=4,8,8", "--config=model.vit_dim=8",
             "--config=model.vit_layers=1", "--config=model.vit_heads=2",
             "--config=model.vit_mlp_dim=8", f"--results_dir={results}",
             f"--runs_dir={tmp_path / 'runs'}", *extra],
            capture_output=True, text=True, timeout=600, cwd=_ROOT)

    proc = ablation_run("--seeds=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((results / "image_classification_ablation.json").read_text())
    assert [(r["variant"], r["seed"], r["epochs"]) for r in record["runs"]] == [
        ("plain", 1, 1), ("vit", 1, 1)]
    # The ViT's own recipe; its 10x10 patches do not divide the 32x32 canvas: the default.
    assert [r["recipe"] for r in record["runs"]] == ["standard", "augmented"]
    assert [r["patch_size"] for r in record["runs"]] == [None, None]
    assert record["runs"][1]["patch_size_used"] == 4
    assert record["runs"][1]["requested_epochs"] == 20  # VIT_BUDGET's (--quick trains 1)
    assert [len(r["validation_by_epoch"]) for r in record["runs"]] == [1, 1]
    assert record["runs"][0]["machine"]["cpu"].startswith(record["meta"]["machine"]["cpu_model"])
    vit = record["summary"][1]
    assert vit["vs_plain"]["seeds"] == [1] and vit["claim"] == "undecided (1 seed)"
    assert set(record["runs"][1]["maps"]) == {"rollout", "last_layer"}
    table = (results / "image_classification_ablation.md").read_text()
    assert "`cluttered_fashion_mnist` (32×32, 4–8 clutter fragments of 8×8" in table
    assert "| vit | rollout * |" in table.replace("| cluttered_fashion_mnist ", "")
    assert "the claim \"each attention variant ≥ plain + 1 point\"" in proc.stdout
    assert os.path.isfile(results / "image_classification_maps" / "cluttered_fashion_mnist"
                          / "vit.png")

    # Run again with one more variant: the two recorded runs are kept as they are (same
    # settings), only `se` trains, and the record holds all three.
    first = json.loads((results / "image_classification_ablation.json").read_text())["runs"]
    again = ablation_run("--seeds=1", "--variants=plain,se,vit")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("Kept the recorded run") == 2
    runs = json.loads((results / "image_classification_ablation.json").read_text())["runs"]
    assert [r["variant"] for r in runs] == ["plain", "se", "vit"]
    assert runs[0] == first[0] and runs[2] == first[1]
    # A narrower command (one variant) keeps its run and carries the others: none is lost.
    narrow = ablation_run("--seeds=1", "--variants=se")
    assert narrow.returncode == 0, narrow.stderr[-3000:]
    assert narrow.stdout.count("Kept the recorded run") == 1
    assert json.loads((results / "image_classification_ablation.json").read_text())[
        "runs"] == runs
    # Other settings (here the batch size) train everything again.
    other = ablation_run("--seeds=1", "--variants=plain", "--batch_size=8")
    assert other.returncode == 0, other.stderr[-3000:]
    assert "Kept the recorded run" not in other.stdout
