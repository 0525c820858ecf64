"""benchmarks/translation_by_length_accelerator.py: the three stages on a tiny corpus (the
train stage on JAX's CPU backend, as it runs on an accelerator), and its parts."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import translation_by_length_accelerator as bench
from tests import _backend_runs
from tests.apps.translation.fixtures import WORDS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def test_learning_rate_is_the_apps_schedule_over_the_steps():
    from apps.translation import model as translation_model

    # The schedule the app compiles (so a change there fails here).
    total = 2000
    config = translation_model.ModelConfig(units=8, embedding_dim=4, attention_units=4,
                                           source_vocab_size=20, target_vocab_size=20)
    model = translation_model.compile_model(translation_model.build_model(config), config,
                                            decay_steps=total)
    apps_schedule = model.optimizer._learning_rate
    peak = 2e-3  # the RNNs' default peak
    warmup = min(bench.WARMUP_STEPS, total // 10)
    for step in (0, 50, warmup, 700, 1400, total - 1, total):
        ours = bench.learning_rate(step, (step - warmup) / (total - warmup), peak, warmup)
        assert ours == pytest.approx(float(apps_schedule(step)), rel=1e-5, abs=1e-9), step
    # The time budget: a fraction past the end stays at the floor (10% of the peak).
    assert bench.learning_rate(10_000, 1.7, peak) == pytest.approx(0.1 * peak)


def test_buckets_are_parsed_sorted_clamped_and_end_with_the_maxima():
    assert bench.parse_buckets("64:72, 32:40", 128, 144) == [(32, 40), (64, 72), (128, 144)]
    assert bench.parse_buckets("", 128, 144) == [(128, 144)]
    assert bench.parse_buckets("200:300", 128, 144) == [(128, 144)]
    for bad in ("32", "a:b", "0:4", "3:4:5"):
        with pytest.raises(ValueError, match="--buckets"):
            bench.parse_buckets(bad, 128, 144)


def test_each_pair_goes_to_the_smallest_bucket_it_fits_and_every_pass_covers_it_once():
    buckets = [(4, 5), (8, 9)]
    # Target lengths count START and END: 6 ids = 5 positions of target_in / target_out.
    ids = bench.bucket_of(np.array([3, 4, 5, 2, 8]), np.array([6, 6, 3, 7, 10]), buckets)
    assert ids.tolist() == [0, 0, 1, 1, 1]
    rng = np.random.default_rng(0)
    many = np.repeat([0, 1, 2], [40, 24, 8])
    stream = bench.batches(rng, many, 8)
    seen = [next(stream) for _ in range(9)]  # one pass: 5 + 3 + 1 batches
    assert all(np.all(many[members] == bucket) for bucket, members in seen)
    assert sorted(np.concatenate([m for _, m in seen]).tolist()) == list(range(72))
    # Fewer pairs than a batch: the stream still gives them.
    bucket, members = next(bench.batches(rng, np.zeros(3, int), 8))
    assert bucket == 0 and sorted(members.tolist()) == [0, 1, 2]


def test_a_missing_or_broken_preparation_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="--stage=prepare"):
        bench.load_corpus(str(tmp_path))
    (tmp_path / bench.CORPUS).write_bytes(b"not an npz")
    (tmp_path / bench.META).write_text("{}")
    with pytest.raises(ValueError, match="unreadable corpus"):
        bench.load_corpus(str(tmp_path))


def _pairs(count, seed):
    """English -> French word-for-word sentences of 2-14 words (the fixture dictionary)."""
    from apps.translation import pipeline

    rng = random.Random(seed)
    words = sorted(WORDS)
    sources, targets = [], []
    for _ in range(count):
        chosen = [rng.choice(words) for _ in range(rng.randint(2, 14))]
        sources.append(" ".join(chosen))
        targets.append(" ".join(WORDS[w] for w in chosen))
    return pipeline.Pairs(sources, targets)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from apps.translation import model as translation_model
    from apps.translation import train as translation_train

    out = str(tmp_path_factory.mktemp("prepared"))
    model = translation_model.ModelConfig(source_vocab_size=600, target_vocab_size=600,
                                          max_source_length=24, max_target_length=24,
                                          units=16, embedding_dim=8, attention_units=8,
                                          intermediate_dim=16, num_layers=1)
    base = dataclasses.replace(translation_train.TrainConfig(), model=model,
                               long_train_pairs=None)
    meta = bench.write_prepared(out, base, {"fixture/fr": _pairs(300, 0)}, _pairs(20, 1),
                                _pairs(12, 2), ["en", "fr"],
                                extra_tests={"pages_fixture/fr": _pairs(6, 3)})
    return out, meta


def test_prepared_corpus_holds_ids_lengths_and_hashes(prepared):
    out, meta = prepared
    arrays, loaded = bench.load_corpus(out)
    assert loaded == meta and meta["pairs"]["train"] == len(arrays["train_source"])
    # The pairs longer than 24 pieces on either side are dropped, as the app drops them.
    assert meta["pairs"]["train"] + meta["pairs"]["dropped_long_pairs"] == 300
    assert 0 < meta["pairs"]["dropped_long_pairs"] < 300
    assert np.all((arrays["train_target"] != 0).sum(1) <= 25)
    assert arrays["train_source"].shape[1] == 24 and arrays["train_target"].shape[1] == 25
    assert np.all(arrays["train_target"][:, 0] == meta["start_id"])
    assert meta["model"]["copy"] is False
    assert meta["hashes"] == bench.corpus_hashes(out)
    # The second test set's rows follow the first's, decoded with them.
    assert meta["test_sets"] == {meta["dataset"]: [0, 12], "pages_fixture/fr": [12, 18]}
    assert meta["pairs"]["test"] == len(arrays["test_source"]) == 18


def test_an_extra_test_set_must_be_named_apart_and_hold_pairs(tmp_path):
    from apps.translation import pipeline
    from apps.translation import train as translation_train

    base = dataclasses.replace(translation_train.TrainConfig(), long_train_pairs=None)
    for extra, message in (({base.dataset_name: _pairs(2, 0)}, "own test set's name"),
                           ({"x/fr": pipeline.Pairs([], [])}, "empty")):
        with pytest.raises(ValueError, match=message):
            bench.write_prepared(str(tmp_path), base, {"fixture/fr": _pairs(30, 0)},
                                 _pairs(4, 1), _pairs(4, 2), ["en", "fr"], extra_tests=extra)


def test_train_on_jax_then_score(prepared, tmp_path):
    """The train stage as it runs on an accelerator (here JAX on the CPU): two variants
    at once, the same steps, then the score stage reads their outputs."""
    data, meta = prepared
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.translation_by_length_accelerator",
         "--stage=train", f"--data={data}", f"--out={out}", f"--work={tmp_path / 'work'}",
         "--variants=seq2seq,bahdanau", "--steps=12", "--batch_size=16",
         "--budget_seconds=400", "--decode_reserve=60", "--buckets=12:12",
         "--decode_batch=8"],
        cwd=ROOT, env=_backend_runs.environment("jax"), capture_output=True, text=True,
        timeout=600, check=False)
    log = (out / "train_log.txt").read_text() if (out / "train_log.txt").exists() else ""
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + log[-3000:]
    decision = json.loads((out / "decision.json").read_text())
    assert decision["returncodes"] == {"seq2seq": 0, "bahdanau": 0}
    records = {}
    for variant in ("seq2seq", "bahdanau"):
        with np.load(out / f"{variant}.npz") as z:
            outputs, records[variant] = z["outputs"], json.loads(str(z["record"]))
        assert outputs.shape == (18, 25) and np.all(outputs[:, 0] == meta["start_id"])
        assert records[variant]["steps"] == 12 and records[variant]["backend"] == "jax"
        assert records[variant]["buckets"] == [[12, 12], [24, 24]]
        assert records[variant]["corpus"] == meta["hashes"]

    results = tmp_path / "results"
    record = bench.score(data, str(out), str(tmp_path / "runs"), str(results), "cmd",
                         name="fig2_test")
    assert set(record["results"]) == {"seq2seq", "bahdanau"}
    assert "bahdanau" in record["targets"]
    rows = (tmp_path / "runs" / "bahdanau" / "translations.tsv").read_text().splitlines()
    assert len(rows) == 1 + 12
    for suffix in ("json", "md", "png"):
        assert (results / f"fig2_test.{suffix}").is_file()
    # The second test set: scored apart, with its own verdicts, translations and plot.
    pages = record["other_test_sets"]["pages_fixture/fr"]
    assert pages["rows"] == [12, 18] and set(pages["results"]) == {"seq2seq", "bahdanau"}
    assert sum(b["sentences"] for b in pages["results"]["bahdanau"]["bleu_by_words"].values()
               ) == 6 and "bahdanau" in pages["targets"]
    rows = (tmp_path / "runs" / "pages_fixture_fr" / "seq2seq" / "translations.tsv"
            ).read_text().splitlines()
    assert len(rows) == 1 + 6 and rows[1].split("\t")[0] == _pairs(6, 3).sources[0]
    assert "## The same models on `pages_fixture/fr` (6 test sentences" in record["markdown"]
    assert (results / "fig2_test_pages_fixture_fr.png").is_file()
    # And both sets together, the most sentences per bucket.
    pooled = record["other_test_sets"][bench.POOLED]
    assert pooled["rows"] == [0, 18] and sum(
        b["sentences"] for b in pooled["results"]["seq2seq"]["bleu_by_words"].values()) == 18
    assert "## The same models on every test set together (18 sentences)" in record["markdown"]
    assert list(record["other_test_sets"]) == ["pages_fixture/fr", bench.POOLED]
    # A preparation from before the test sets (no `test_sets`): every row is one set.
    older = tmp_path / "older"
    shutil.copytree(data, older)
    with open(older / bench.META, encoding="utf-8") as f:
        old_meta = json.load(f)
    del old_meta["test_sets"]
    with open(older / bench.META, "w", encoding="utf-8") as f:
        json.dump(old_meta, f)
    whole = bench.score(str(older), str(out), str(tmp_path / "runs3"), str(results), "cmd",
                        name="fig2_older")
    assert whole["other_test_sets"] == {} and sum(
        b["sentences"] for b in whole["results"]["seq2seq"]["bleu_by_words"].values()) == 18

    # Outputs of another preparation are refused, naming the file.
    other = tmp_path / "other"
    other.mkdir()
    for name in (bench.CORPUS, bench.META, bench.TEST):
        shutil.copy(os.path.join(data, name), other / name)
    shutil.copytree(os.path.join(data, "subword"), other / "subword")
    with open(other / "subword" / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("extra\n")
    with pytest.raises(ValueError, match="another preparation"):
        bench.score(str(other), str(out), str(tmp_path / "runs2"), str(results), "cmd")


def test_the_train_stage_refuses_a_reserve_longer_than_the_budget(prepared, tmp_path):
    data, _ = prepared
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.translation_by_length_accelerator",
         "--stage=train", f"--data={data}", f"--out={tmp_path}", "--budget_seconds=50",
         "--decode_reserve=60"],
        cwd=ROOT, env=_backend_runs.environment("jax"), capture_output=True, text=True,
        timeout=300, check=False)
    assert proc.returncode != 0 and "leaves no time" in proc.stderr


def test_a_failing_variant_stops_the_others_and_the_stage_fails(prepared, tmp_path):
    data, meta = prepared
    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    (broken / bench.META).write_text(json.dumps({**meta, "model": {**meta["model"],
                                                                   "units": 15}}))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.translation_by_length_accelerator",
         "--stage=train", f"--data={broken}", f"--out={out}", "--variants=seq2seq,bahdanau",
         "--budget_seconds=300", "--decode_reserve=60"],
        cwd=ROOT, env=_backend_runs.environment("jax"), capture_output=True, text=True,
        timeout=300, check=False)
    assert proc.returncode != 0 and "variants failed" in proc.stderr
    assert "units must be even" in (out / "train_log.txt").read_text()
    assert not list(out.glob("*.npz"))


def test_bad_buckets_are_refused_before_any_worker_starts(prepared, tmp_path):
    data, _ = prepared
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.translation_by_length_accelerator",
         "--stage=train", f"--data={data}", f"--out={tmp_path}", "--buckets=12"],
        cwd=ROOT, env=_backend_runs.environment("jax"), capture_output=True, text=True,
        timeout=300, check=False)
    assert proc.returncode != 0 and "--buckets: '12' is not SOURCE:TARGET" in proc.stderr
    assert not (tmp_path / "train_log.txt").exists()
