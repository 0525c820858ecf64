"""Bahdanau et al. (2015), Fig. 2, at an accelerator's budget (issue 17).

`benchmarks/translation_by_length.py` trains the four variants on the long
corpus for 2.2 passes on two CPU cores (an hour each) and finds the attention
models losing about half their BLEU from short to long sentences: the target
"lose at most half as much as `seq2seq`" is not met there. This benchmark runs
the same experiment (the same corpus, vocabulary, models, loss, optimizer,
learning-rate schedule, test sentences and decoding: beam 4, length penalty
0.6, no copying) with many more passes, on any Keras backend with an
accelerator (JAX on a GPU was what it was written for), in three stages:

    # 1. CPU, TensorFlow: the corpus as token ids, the vocabulary, the test pairs (and,
    #    with --manpages_per_bucket, a second test set: man pages of Debian's tools).
    python -m benchmarks.translation_by_length_accelerator --stage=prepare --data=.gpu/fig2 \
        --manpages_per_bucket=500

    # 2. The accelerator, KERAS_BACKEND=jax (no TensorFlow needed): every variant
    #    trained at once, one process each on the one device. Once all have compiled,
    #    each trains for the same wall-clock window (until `--decode_reserve` seconds
    #    before `--budget_seconds` from the start; the learning rate decays over that
    #    time), or `--steps` steps each; then beam search over the test sources. One
    #    file per variant (`<variant>.npz`: output ids and the run's record), the
    #    workers' log and the start decision go to --out.
    KERAS_BACKEND=jax python -m benchmarks.translation_by_length_accelerator --stage=train \\
        --data=.gpu/fig2 --out=OUT --budget_seconds=500

    # 3. CPU, TensorFlow: the outputs detokenized, scored by English length, the two
    #    verdicts with paired bootstrap intervals, a plot.
    python -m benchmarks.translation_by_length_accelerator --stage=score --data=.gpu/fig2 \\
        --outputs=OUT

Results: benchmarks/results/translation_by_length_accelerator.{json,md,png}
(`--name` for another name); the translations in
`--runs_dir/<variant>/translations.tsv`. The score stage refuses outputs made
from another preparation (the vocabulary's and test pairs' SHA-256 differ).

Why a time window and not a step count fixed ahead: the first version timed
each variant's first 60-100 steps and set the steps from them, and the
variants then ran 2-5x slower than timed once all shared the device (README).

Batches are drawn from length buckets (`--buckets`, source:target pieces) in
proportion to the pairs in each, so a batch of short sentences does not run
its recurrences over 144 positions; each bucket is one shape, compiled once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

from absl import app, flags

from apps.common import flags as common_flags  # --seed, --batch_size, --variant (absl only)

NAME = "translation_by_length_accelerator"
VARIANTS = ("seq2seq", "bahdanau", "luong", "transformer")
CORPUS = "corpus.npz"
META = "meta.json"
TEST = "test.tsv"
GO_FILE = "go.json"
#: With more than one test set, every set's sentences together are scored too (the
#: long buckets then have the most sentences, so the narrowest intervals).
POOLED = "all_test_sets"
#: With `--steps`, a worker still past the time window by this much stops (a guard).
GUARD_SECONDS = 30.0
#: Pairs per step (`--batch_size`): four times the CPU benchmark's 64 (the H200 runs of the
#: README used it; the batch size was not varied there).
DEFAULT_BATCH = 256

FLAGS = flags.FLAGS


# ----------------------------------------------------------------------------- prepare
def prepare(out: str, test_per_bucket: int = 500, smoke: bool = False,
            manpages_per_bucket: int = 0) -> dict:
    """Writes the token ids of the long corpus and its vocabulary under `out` (TensorFlow).

    The pairs, vocabulary, lengths and test selection are those of
    `benchmarks.translation_by_length` with `long_test_per_bucket=test_per_bucket`
    (its README run used 500): the training pairs that fit 128 source / 144 target
    pieces, the seeded validation sample, the first `test_per_bucket` test pairs of
    each English-length bucket (sources cut at 128 pieces as the export cuts them).
    With `manpages_per_bucket`, a second test set follows the first: that many pairs
    of each bucket (seeded) of the man pages of Debian's tools, which no split of the
    corpus holds (`apps.translation.unseen_programs`, kind "manpages"), so that the
    long buckets have more sentences than the corpus' test split's 162 at 40-60 words.
    """
    from apps.common import data as common_data
    from apps.translation import pipeline, unseen_programs
    from apps.translation import train as translation_train
    from benchmarks import translation_by_length

    base = translation_by_length.base_config(smoke)
    base = dataclasses.replace(base, long_test_per_bucket=test_per_bucket if not smoke else 8)
    data_dir = common_data.data_dir(base.data_dir)
    trains, validation, tests, languages = translation_train._splits(base, data_dir)
    extra = {}
    if manpages_per_bucket:
        language = base.dataset_name.rsplit("/", 1)[-1]
        pages = unseen_programs.load(language, data_dir, kind="manpages")
        extra[f"{unseen_programs.MANPAGES.name}/{language}"] = translation_train.per_bucket(
            pipeline.Pairs([p[0] for p in pages], [p[1] for p in pages]), manpages_per_bucket,
            seed=0)
    return write_prepared(out, base, trains, validation, next(iter(tests.values())),
                          languages, smoke, extra_tests=extra)


def write_prepared(out: str, base, trains: dict, validation, test, languages,
                   smoke: bool = False, extra_tests: dict | None = None) -> dict:
    """The preparation of `prepare` from given splits (`trains`: {part: Pairs}): the
    WordPiece vocabulary learnt from the training pairs, the ids of the pairs that fit
    `base.model`'s lengths, the validation and test ids, the test pairs, the metadata.

    `extra_tests` (`{name: Pairs}`) are more test sets, decoded with the first and
    scored apart: their rows follow `test`'s, and `meta["test_sets"]` holds each
    set's `[first, end)` rows."""
    import numpy as np

    from apps.common import text as common_text
    from apps.translation import evaluation, pipeline
    from apps.translation import train as translation_train

    m = base.model
    source_tokenizer, target_tokenizer = pipeline.make_tokenizers(
        translation_train._joined(trains.values()), m.source_vocab_size, m.target_vocab_size,
        m.max_source_length, m.max_target_length, min_count=base.min_count,
        vocabulary="subword")
    os.makedirs(out, exist_ok=True)
    pipeline.save_tokenizers(source_tokenizer, target_tokenizer, out)
    train_pairs, dropped, per_part, by_words = translation_train.training_pairs(
        base, trains, source_tokenizer, target_tokenizer)

    def ids(tokenizer, texts):
        return common_text.token_ids(tokenizer, texts).numpy().astype(np.uint16)

    test_sets, rows = {base.dataset_name: [0, len(test)]}, len(test)
    for name, pairs in (extra_tests or {}).items():
        if name in test_sets or not len(pairs):
            raise ValueError(f"extra_tests: {name!r} is " + (
                "the corpus' own test set's name." if name in test_sets else "empty."))
        test_sets[name] = [rows, rows + len(pairs)]
        rows += len(pairs)
    test = translation_train._joined([test, *(extra_tests or {}).values()])

    np.savez_compressed(
        os.path.join(out, CORPUS),
        train_source=ids(source_tokenizer, train_pairs.sources),
        train_target=ids(target_tokenizer, train_pairs.targets),
        validation_source=ids(source_tokenizer, validation.sources),
        validation_target=ids(target_tokenizer, validation.targets),
        test_source=ids(source_tokenizer, test.sources),
    )
    evaluation.write_translations(os.path.join(out, TEST),
                                  zip(test.sources, test.targets, test.targets, test.targets,
                                      strict=True))
    model = dataclasses.replace(m, source_vocab_size=source_tokenizer.vocabulary_size,
                                target_vocab_size=target_tokenizer.vocabulary_size, copy=False)
    meta = {
        "dataset": base.dataset_name, "languages": languages, "seed": base.seed,
        "model": dataclasses.asdict(model),
        "start_id": int(target_tokenizer.start_id), "end_id": int(target_tokenizer.end_id),
        "pairs": {"train": len(train_pairs), "train_parts": per_part,
                  "dropped_long_pairs": dropped, "train_by_words": by_words,
                  "validation": len(validation),
                  "test": len(test)},
        "test_sets": test_sets,
        "test_per_bucket": base.long_test_per_bucket,
        "beam_width": base.beam_width, "length_penalty": base.length_penalty,
        "smoke": smoke, "hashes": corpus_hashes(out),
    }
    with open(os.path.join(out, META), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    return meta


# ------------------------------------------------------------------------------- train
def load_corpus(data: str) -> tuple[dict, dict]:
    """(arrays, meta) written by `prepare`; a clear error when they are missing or broken."""
    import numpy as np

    paths = [os.path.join(data, CORPUS), os.path.join(data, META)]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing: run --stage=prepare --data={data} "
                                    "first (on a machine with TensorFlow).")
    try:
        with np.load(paths[0]) as z:
            arrays = {k: z[k].astype(np.int32) for k in z.files}
        with open(paths[1], encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{data}: unreadable corpus ({error}); run --stage=prepare again.") \
            from error
    missing = {"train_source", "train_target", "validation_source", "validation_target",
               "test_source"} - set(arrays)
    if missing:
        raise ValueError(f"{paths[0]} lacks {sorted(missing)}; run --stage=prepare again.")
    return arrays, meta


def parse_buckets(text: str, max_source: int, max_target: int) -> list[tuple[int, int]]:
    """`"48:56,128:144"` -> [(48, 56), (128, 144)], sorted, the last holding the maxima."""
    buckets = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            source, target = (int(x) for x in part.split(":"))
        except ValueError:
            raise ValueError(f"--buckets: {part!r} is not SOURCE:TARGET (two integers)") \
                from None
        if source < 1 or target < 1:
            raise ValueError(f"--buckets: {part!r} must be positive")
        buckets.append((min(source, max_source), min(target, max_target)))
    buckets.append((max_source, max_target))
    return sorted(set(buckets))


def bucket_of(source_lengths, target_lengths, buckets):
    """Index of the smallest bucket each pair fits (lengths without padding; the target's
    START and END counted: `target_in` and `target_out` are one shorter)."""
    import numpy as np

    out = np.full(len(source_lengths), len(buckets) - 1)
    for i in reversed(range(len(buckets))):
        source, target = buckets[i]
        out[(source_lengths <= source) & (target_lengths - 1 <= target)] = i
    return out


def batches(rng, bucket_ids, batch_size: int):
    """Endless batches of pair indices: each pass shuffles the pairs within each bucket,
    cuts them into full batches and shuffles the batches of all buckets together."""
    import numpy as np

    while True:
        order = []
        for b in np.unique(bucket_ids):
            members = rng.permutation(np.flatnonzero(bucket_ids == b))
            order += [(b, members[i:i + batch_size])
                      for i in range(0, len(members) - batch_size + 1, batch_size)]
        if not order:  # fewer pairs than a batch: one short batch per bucket
            order = [(b, np.flatnonzero(bucket_ids == b)) for b in np.unique(bucket_ids)]
        for i in rng.permutation(len(order)):
            yield order[i]


WARMUP_STEPS = 200  # `apps.translation.model.compile_model`'s warm-up (at most a tenth of a run)


def learning_rate(step: int, fraction: float, peak: float, warmup: int = WARMUP_STEPS) -> float:
    """`apps.translation.model.compile_model`'s schedule: a linear warm-up over `warmup`
    steps, then a cosine decay to 10% of `peak`; `fraction` is how far the decay has gone
    (0 to 1): of the steps after the warm-up (`--steps`) or of the time (the default)."""
    import math

    if warmup and step < warmup:
        return peak * step / warmup
    fraction = min(1.0, max(0.0, fraction))
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * fraction)))


def _wait_for(path: str, timeout: float, what: str) -> dict:
    """The JSON at `path` once another process has written it; SystemExit after `timeout`."""
    end = time.time() + timeout
    while time.time() < end:
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as f:
                    return json.load(f)
            except ValueError:  # being written
                pass
        time.sleep(0.2)
    raise SystemExit(f"no {what} ({path}) after {timeout:.0f} s")


def train_one(variant: str, data: str, work: str, out: str, batch_size: int, seed: int,
              buckets_text: str, steps: int | None, beam_width: int | None,
              decode_batch: int, smoke: bool) -> dict:
    """One variant, in its own process: compiles its training step for each length bucket,
    waits until every variant has (`work/go.json`, from `train_all`), trains, scores the
    validation pairs teacher-forced and decodes the test sources with beam search.

    The budget: `steps` steps (the learning rate decays over them), or, with `steps`
    None, until `go.json`'s `train_until` (the learning rate decays over that time): every
    variant the same wall-clock window on the shared device. Writes `out/<variant>.npz`
    (the output ids and the run's record)."""
    import keras
    import numpy as np
    from keras import ops

    from apps.common import losses, training
    from apps.translation import model as translation_model
    from keras_attention.decoding.samplers import BeamSampler

    backend = keras.backend.backend()
    if backend != "jax":
        raise SystemExit(f"--stage=train needs KERAS_BACKEND=jax (got {backend!r}): the "
                         "training step is compiled with jax.jit.")
    import jax

    arrays, meta = load_corpus(data)
    config = translation_model.ModelConfig(**{**meta["model"], "variant": variant,
                                              "copy": False})
    if smoke:
        config = dataclasses.replace(config, units=32, embedding_dim=16, attention_units=16,
                                     intermediate_dim=32, num_layers=1)
    keras.utils.set_random_seed(seed)
    model = translation_model.build_model(config)
    loss_fn = losses.masked_cross_entropy(config.label_smoothing)
    peak = config.learning_rate or (1e-3 if variant == "transformer" else 2e-3)
    optimizer = keras.optimizers.Adam(learning_rate=peak, clipnorm=1.0)
    optimizer.build(model.trainable_variables)
    lr_index = next(i for i, v in enumerate(optimizer.variables)
                    if v is optimizer._learning_rate)

    buckets = parse_buckets(buckets_text, config.max_source_length, config.max_target_length)
    source, target = arrays["train_source"], arrays["train_target"]
    bucket_ids = bucket_of((source != 0).sum(1), (target != 0).sum(1), buckets)
    record = {"variant": variant, "backend": backend, "device": jax.devices()[0].device_kind,
              "buckets": buckets, "batch_size": batch_size, "seed": seed,
              "pairs_per_bucket": np.bincount(bucket_ids, minlength=len(buckets)).tolist(),
              "learning_rate_peak": peak, "budget": "steps" if steps else "time",
              "parameters": int(model.count_params()), "config": dataclasses.asdict(config),
              "corpus": meta.get("hashes")}

    def compute_loss(trainable, non_trainable, x, y):
        logits, non_trainable = model.stateless_call(trainable, non_trainable, x,
                                                     training=True)
        return loss_fn(y, logits), non_trainable

    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

    @jax.jit
    def train_step(state, x, y, lr):
        trainable, non_trainable, optimizer_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
        optimizer_vars = list(optimizer_vars)
        optimizer_vars[lr_index] = lr.astype(optimizer_vars[lr_index].dtype)
        trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
        return loss, (trainable, non_trainable, optimizer_vars)

    @jax.jit
    def eval_step(trainable, non_trainable, x, y):
        logits, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return loss_fn(y, logits), losses.masked_accuracy(y, logits)

    def batch_of(indices, bucket):
        s, t = buckets[bucket]
        tgt = target[indices, :t + 1]
        return (source[indices, :s], tgt[:, :-1]), tgt[:, 1:]

    state = ([v.value for v in model.trainable_variables],
             [v.value for v in model.non_trainable_variables],
             [v.value for v in optimizer.variables])
    start = time.time()
    # Compile each bucket's shape (learning rate 0: the weights do not move).
    for bucket in range(len(buckets)):
        members = np.flatnonzero(bucket_ids == bucket)[:batch_size]
        if len(members):
            x, y = batch_of(members, bucket)
            loss, _ = train_step(state, x, y, np.float32(0.0))
            loss.block_until_ready()
    record["compile_seconds"] = time.time() - start
    print(f"[{variant}] compiled {len(buckets)} shapes in {record['compile_seconds']:.1f} s",
          flush=True)
    # Written whole or not at all: the parent polls for it (apps.common.training's writer).
    training._write_json(os.path.join(work, f"compiled_{variant}.json"),
                        record["compile_seconds"])
    until = _wait_for(os.path.join(work, GO_FILE), 1800, "start signal")["train_until"]

    stream = batches(np.random.default_rng(seed), bucket_ids, batch_size)
    warmup = min(WARMUP_STEPS, steps // 10) if steps else WARMUP_STEPS
    step, losses_seen, began = 0, [], time.time()
    decay_from = began
    while (step < steps) if steps else (time.time() < until):
        if step == warmup:
            decay_from = time.time()
        if steps:
            fraction = (step - warmup) / max(1, steps - warmup)
        else:
            fraction = (time.time() - decay_from) / max(1e-9, until - decay_from)
        bucket, members = next(stream)
        x, y = batch_of(members, bucket)
        loss, state = train_step(state, x, y, np.float32(learning_rate(step, fraction, peak,
                                                                       warmup)))
        step += 1
        if step % 100 == 0:
            losses_seen.append((step, float(loss)))
            print(f"[{variant}] step {step}{f'/{steps}' if steps else ''} loss "
                  f"{float(loss):.3f} {time.time() - began:.0f} s", flush=True)
        if steps and step % 20 == 0 and time.time() > until + GUARD_SECONDS:
            print(f"[{variant}] DEADLINE: stopped at step {step} of {steps}", flush=True)
            record["stopped_at_deadline"] = True
            break
    jax.block_until_ready(state)
    record["steps"] = step
    record["train_seconds"] = time.time() - began
    record["final_learning_rate"] = learning_rate(step, 1.0 if not steps else (
        (step - warmup) / max(1, steps - warmup)), peak, warmup)
    record["losses"] = losses_seen
    print(f"[{variant}] trained {step} steps in {record['train_seconds']:.0f} s", flush=True)

    trainable, non_trainable, _ = state
    val_loss, val_acc, weight = 0.0, 0.0, 0
    vs, vt = arrays["validation_source"], arrays["validation_target"]
    for i in range(0, len(vs), 256):
        s, t = vs[i:i + 256], vt[i:i + 256]
        loss, acc = eval_step(trainable, non_trainable, (s, t[:, :-1]), t[:, 1:])
        tokens = int((t[:, 1:] != 0).sum())
        val_loss += float(loss) * tokens
        val_acc += float(acc) * tokens
        weight += tokens
    record["validation_loss"] = val_loss / max(weight, 1)
    record["validation_token_accuracy"] = val_acc / max(weight, 1)
    print(f"[{variant}] validation loss {record['validation_loss']:.3f}, token accuracy "
          f"{record['validation_token_accuracy']:.3f}", flush=True)

    for variable, value in zip(model.trainable_variables, trainable, strict=True):
        variable.assign(value)
    for variable, value in zip(model.non_trainable_variables, non_trainable, strict=True):
        variable.assign(value)
    beams = beam_width or meta["beam_width"]
    sampler = BeamSampler(num_beams=beams, length_penalty=meta["length_penalty"])
    max_length = config.max_target_length + 1  # START + the most target pieces

    @jax.jit
    def decode(source_ids):
        state = model.initial_state(model.encode(source_ids, training=False))
        step_fn = model.decoding_step()

        def next_fn(tokens, cache, index):
            logits, cache, _ = step_fn(ops.take(tokens, index, axis=1), cache)
            return logits, cache

        prompt = ops.full((ops.shape(source_ids)[0], 1), meta["start_id"], dtype="int32")
        return sampler(next_fn, prompt, cache=state, max_length=max_length,
                       end_token_id=meta["end_id"])

    decode_start = time.time()
    test = arrays["test_source"]
    order = np.argsort((test != 0).sum(1), kind="stable")
    outputs = np.zeros((len(test), max_length), np.int32)
    for i in range(0, len(test), decode_batch):
        rows = order[i:i + decode_batch]
        chunk = test[rows]
        if len(rows) < decode_batch:  # one shape: pad the last batch with empty sources
            chunk = np.concatenate([chunk, np.zeros((decode_batch - len(rows), test.shape[1]),
                                                    chunk.dtype)])
        outputs[rows] = np.asarray(decode(chunk))[:len(rows)]
    record["decode_seconds"] = time.time() - decode_start
    record["beam_width"], record["length_penalty"] = beams, meta["length_penalty"]
    record["wall_seconds"] = time.time() - start
    print(f"[{variant}] decoded {len(test)} test sources in {record['decode_seconds']:.1f} s",
          flush=True)
    np.savez_compressed(os.path.join(out, f"{variant}.npz"), outputs=outputs,
                        record=np.asarray(json.dumps(record)))
    return record


def train_all(variants, data: str, out: str, budget_seconds: float, decode_reserve: float,
              steps: int | None, argv_common: list[str], work: str | None = None) -> dict:
    """Starts one `train_one` process per variant on the one device; once all have compiled,
    tells them to train (`go.json`: until `budget_seconds - decode_reserve` after this
    call began, or `steps` steps with that time as a guard); waits for them all. Writes
    `out/train_log.txt` (every worker's log) and `out/decision.json`."""
    from apps.common import training  # imports Keras: KERAS_BACKEND is set by `main`

    start = time.time()
    work = work or os.path.join(out, ".work")
    os.makedirs(work, exist_ok=True)
    for name in os.listdir(work):
        os.remove(os.path.join(work, name))
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false", KERAS_BACKEND="jax",
               PYTHONUNBUFFERED="1")
    logs, procs = {}, {}
    for variant in variants:
        logs[variant] = open(os.path.join(work, f"{variant}.log"), "w")  # noqa: SIM115
        procs[variant] = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.translation_by_length_accelerator",
             "--stage=train_one", f"--variant={variant}", f"--data={data}", f"--out={out}",
             f"--work={work}", *([f"--steps={steps}"] if steps else []), *argv_common],
            stdout=logs[variant], stderr=subprocess.STDOUT, env=env)
    train_until = start + budget_seconds - decode_reserve
    compiled, failed = {}, []
    while len(compiled) < len(variants) and not failed:
        for variant in variants:
            path = os.path.join(work, f"compiled_{variant}.json")
            if variant not in compiled and os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    compiled[variant] = json.load(f)
        failed = [v for v, p in procs.items() if p.poll() not in (None, 0)]
        time.sleep(0.2)
    decision = {"budget": f"{steps} steps" if steps else "time", "compile_seconds": compiled,
                "started_training_at_seconds": time.time() - start,
                "train_until_seconds": train_until - start}
    if failed:  # the others would wait for the start signal: stop them all now
        print(f"{failed} failed before training; stopping every variant", flush=True)
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    else:
        training._write_json(os.path.join(work, GO_FILE), {"train_until": train_until})
        print(f"every variant compiled ({compiled}); training "
              + (f"{steps} steps each" if steps else
                 f"for {train_until - time.time():.0f} s each"), flush=True)
    for p in procs.values():
        p.wait()
    for f in logs.values():
        f.close()
    decision["returncodes"] = {v: p.returncode for v, p in procs.items()}
    decision["wall_seconds"] = time.time() - start
    with open(os.path.join(out, "train_log.txt"), "w", encoding="utf-8") as f:
        for variant in variants:
            with open(os.path.join(work, f"{variant}.log"), encoding="utf-8",
                      errors="replace") as g:
                f.write(f"===== {variant} =====\n{g.read()}\n")
        f.write(json.dumps(decision, indent=1) + "\n")
    with open(os.path.join(out, "decision.json"), "w", encoding="utf-8") as f:
        json.dump(decision, f, indent=1)
    return decision


# ------------------------------------------------------------------------------- score
def corpus_hashes(data: str) -> dict:
    """SHA-256 of what scoring depends on: the vocabulary and the test pairs."""
    import hashlib

    out = {}
    for name in (os.path.join("subword", "vocab.txt"), TEST):
        with open(os.path.join(data, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def _slug(set_name: str) -> str:
    return set_name.replace("/", "_")


def _scores(sources, references, hypotheses, directory: str) -> dict:
    """BLEU, chrF, BLEU by English words and over-long outputs of one variant on one test
    set; its `translations.tsv` written under `directory`."""
    from apps.translation import evaluation
    from benchmarks import translation_by_length as by_length

    os.makedirs(directory, exist_ok=True)
    evaluation.write_translations(os.path.join(directory, by_length.TRANSLATIONS),
                                  zip(sources, references, hypotheses, hypotheses, strict=True))
    corpus = evaluation.corpus_scores(hypotheses, references)
    return {"bleu": corpus["bleu"], "chrf": corpus["chrf"],
            "bleu_by_words": evaluation.bleu_by_words(sources, hypotheses, references),
            "over_twice_reference": int(sum(
                len(h.split()) > 2 * len(r.split())
                for h, r in zip(hypotheses, references, strict=True)))}


def _other_set_lines(set_name: str, scored: dict) -> list[str]:
    """A further test set's table, verdicts and intervals (markdown lines)."""
    from benchmarks import _common
    from benchmarks import translation_by_length as by_length

    results = scored["results"]
    counts = next(iter(results.values()))["bleu_by_words"]
    headers = (["variant"] + [f"{b} ({counts[b]['sentences']})" for b in by_length.BUCKETS]
               + ["all", "outputs > 2x ref."])
    rows = [[v] + [f"{r['bleu_by_words'][b]['bleu']:.2f}" for b in by_length.BUCKETS]
            + [f"{r['bleu']:.2f}", r["over_twice_reference"]] for v, r in results.items()]
    first, end = scored["rows"]
    title = (f"every test set together ({end - first} sentences)" if set_name == POOLED else
             f"`{set_name}` ({end - first} test sentences, decoded with the first set)")
    return ["", f"## The same models on {title}", "", _common.markdown_table(headers, rows), "",
            *by_length.verdict_lines(scored["targets"]),
            *by_length.interval_lines(scored["intervals"])]


def score(data: str, outputs: str, runs_dir: str, results_dir: str, command: str,
          name: str = NAME) -> dict:
    """Detokenizes each variant's output ids, scores them by English length and writes the
    results `name`.{json,md,png} (the verdicts and bootstrap of
    `benchmarks.translation_by_length`)."""
    import numpy as np

    from apps.common import subword
    from apps.translation import export as translation_export
    from benchmarks import _common
    from benchmarks import translation_by_length as by_length

    _, meta = load_corpus(data)
    hashes = corpus_hashes(data)
    sources, references, _ = by_length.read_translations(os.path.join(data, TEST))
    tokenizer = subword.SubwordTokenizer.load(
        os.path.join(data, "subword"), max_length=meta["model"]["max_target_length"] + 1,
        bos_eos=True)
    hypotheses_of, records = {}, {}
    for variant in VARIANTS:
        path = os.path.join(outputs, f"{variant}.npz")
        if not os.path.isfile(path):
            continue
        try:
            with np.load(path) as z:
                ids, record = z["outputs"], json.loads(str(z["record"]))
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"{path}: not a train stage's output ({error})") from error
        made_from = record.get("corpus")
        if made_from is not None and made_from != hashes:
            raise ValueError(f"{path} was made from another preparation than {data} "
                             f"(SHA-256 {made_from} vs {hashes}): score it with the --data "
                             "it was trained on.")
        if ids.ndim != 2 or len(ids) != len(sources):
            raise ValueError(f"{path}: outputs of shape {ids.shape} for {len(sources)} test "
                             "sources")
        texts = translation_export.postprocess(tokenizer.detokenize(ids)).numpy()
        hypotheses_of[variant] = [t.decode("utf-8") for t in texts]
        records[variant] = record
    if not hypotheses_of:
        raise FileNotFoundError(f"{outputs}: no <variant>.npz to score")
    sets = dict(meta.get("test_sets") or {meta["dataset"]: [0, len(sources)]})
    if len(sets) > 1:
        sets[POOLED] = [0, len(sources)]
    scored = {}
    for index, (set_name, (first, end)) in enumerate(sets.items()):
        # The corpus' own test set keeps the layout of before: <runs_dir>/<variant>/.
        set_dir = runs_dir if index == 0 else os.path.join(runs_dir, _slug(set_name))
        results = {}
        for variant, hypotheses in hypotheses_of.items():
            record = records[variant]
            results[variant] = _scores(
                sources[first:end], references[first:end], hypotheses[first:end],
                os.path.join(set_dir, variant))
            results[variant].update({
                "parameters": record["parameters"], "train_seconds": record["train_seconds"],
                "steps": record["steps"],
                "passes": record["steps"] * record["batch_size"] / meta["pairs"]["train"],
                "validation_loss": record["validation_loss"],
                "validation_token_accuracy": record["validation_token_accuracy"]})
        scored[set_name] = {
            "rows": [first, end], "results": results,
            "targets": by_length.targets(results),
            "intervals": (by_length.bootstrap(set_dir, list(results))
                          if len(results) > 1 else {})}
    main_set, *other_sets = scored
    results, checks, intervals = (scored[main_set][k] for k in ("results", "targets",
                                                                "intervals"))
    first = next(iter(records.values()))
    counts = next(iter(results.values()))["bleu_by_words"]
    headers = (["variant"] + [f"{b} ({counts[b]['sentences']})" for b in by_length.BUCKETS]
               + ["all", "steps", "passes", "train s", "val. token acc.",
                  "outputs > 2x ref.", "params"])
    rows = [[v] + [f"{r['bleu_by_words'][b]['bleu']:.2f}" for b in by_length.BUCKETS]
            + [f"{r['bleu']:.2f}", f"{r['steps']:,}" + (
                " (guard)" if records[v].get("stopped_at_deadline") else ""),
               f"{r['passes']:.1f}", f"{r['train_seconds']:.0f}",
               f"{r['validation_token_accuracy']:.3f}", r["over_twice_reference"],
               f"{r['parameters']:,}"]
            for v, r in results.items()]
    budget = ("the same wall-clock window on the shared device"
              if first.get("budget") == "time" else "a step count")
    text = "\n".join([
        f"# BLEU by source length at an accelerator's budget ({meta['dataset']}; cf. "
        "Bahdanau et al. 2015, Fig. 2)", "",
        f"Budget: {budget}"
        f" per variant, batches of {first['batch_size']} pairs from length buckets "
        f"{first['buckets']} ({meta['pairs']['train']:,} training pairs), seed "
        f"{first['seed']}, the app's Adam (clipnorm 1), warm-up and cosine decay, label "
        f"smoothing {first['config']['label_smoothing']}, no copying; beam "
        f"{first['beam_width']}, length penalty {first['length_penalty']}; Keras "
        f"{first['backend']} backend on {first.get('device', '?')}, the variants trained at "
        "once on the one device. sacreBLEU, case-insensitive; buckets in English words of "
        "the source (test sentences in brackets). `(guard)`: stopped by the time guard "
        "before its planned steps." + (" SMOKE RUN: the numbers mean nothing."
                                        if meta.get("smoke") else ""), "",
        f"Command: `{command}`", "",
        _common.markdown_table(headers, rows), "",
        *by_length.verdict_lines(checks),
        *by_length.interval_lines(intervals),
        *[line for other in other_sets for line in _other_set_lines(other, scored[other])],
    ]) + "\n"
    record = {"meta": meta, "corpus": hashes, "runs": records, "results": results,
              "targets": checks, "intervals": intervals, "scored_on": _common.machine_info(),
              "other_test_sets": {other: scored[other] for other in other_sets}}
    _common.write_results(name, record, text, results_dir)
    device = first.get("device", "?")
    by_length.plot(results, os.path.join(results_dir, f"{name}.png"),
                   f"{meta['dataset']}: BLEU by source length ({device})")
    for other in other_sets:
        by_length.plot(scored[other]["results"],
                       os.path.join(results_dir, f"{name}_{_slug(other)}.png"),
                       f"{other}: BLEU by source length ({device})")
    return {**record, "markdown": text}


# -------------------------------------------------------------------------------- main
def define_flags() -> None:
    flags.DEFINE_enum("stage", None, ["prepare", "train", "train_one", "score"],
                      "prepare (TensorFlow) | train (an accelerator, KERAS_BACKEND=jax) | "
                      "score (TensorFlow); train_one is train's worker.")
    flags.DEFINE_string("data", os.path.join(".gpu", "fig2"), "The prepared corpus.")
    flags.DEFINE_string("out", None, "train: where the outputs go.")
    flags.DEFINE_string("outputs", None, "score: the train stage's --out.")
    flags.DEFINE_string("work", None, "train: the workers' logs and signal files (default: "
                        "--out/.work).")
    flags.DEFINE_list("variants", list(VARIANTS), "Variants to train, at the same budget.")
    flags.DEFINE_float("budget_seconds", 500.0, "train: wall-clock budget of the whole "
                       "stage; every variant trains until --decode_reserve seconds before "
                       "its end (with --steps, that is a guard).")
    flags.DEFINE_float("decode_reserve", 90.0, "train: seconds kept for the validation "
                       "pass and beam search after training.")
    flags.DEFINE_integer("steps", None, "train: a budget of this many steps for every "
                         "variant instead of the time window (the learning rate decays over "
                         "them).", lower_bound=1)
    flags.DEFINE_string("buckets", "32:40,64:72", "Length buckets SOURCE:TARGET (pieces) besides "
                        "the longest (the model's maxima).")
    flags.DEFINE_integer("beam_width", None, "Beam (default: the prepared corpus', 4).")
    flags.DEFINE_integer("decode_batch", 256, "Test sources per beam-search call.")
    flags.DEFINE_integer("test_per_bucket", 500, "prepare: test pairs per English-length "
                         "bucket.")
    flags.DEFINE_integer("manpages_per_bucket", 0, "prepare: a second test set of this many "
                         "pairs per English-length bucket (seeded) of the man pages of "
                         "Debian's tools (unseen_programs kind=manpages); 0: none.",
                         lower_bound=0)
    flags.DEFINE_string("runs_dir", os.path.join("runs", NAME), "score: translations.tsv "
                        "per variant.")
    flags.DEFINE_string("results_dir", None, "score: where the JSON, markdown, PNG go "
                        "(default benchmarks/results).")
    flags.DEFINE_string("name", NAME, "score: the results' file name (without extension).")
    flags.DEFINE_bool("smoke", False, "A tiny corpus slice and model: a pipeline check.")
    flags.register_validator(
        "variants", lambda names: bool(names) and set(names) <= set(VARIANTS),
        message=f"--variants: pick one or more of {list(VARIANTS)}.")
    flags.mark_flag_as_required("stage")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = FLAGS
    batch_size = common_flags.BATCH_SIZE.value or DEFAULT_BATCH
    seed = common_flags.SEED.value
    if f.stage == "prepare":
        print(json.dumps(prepare(f.data, f.test_per_bucket, f.smoke, f.manpages_per_bucket),
                         indent=1))
    elif f.stage in ("train", "train_one"):
        if not f.out:
            raise app.UsageError(f"--stage={f.stage} needs --out")
        # Before anything imports Keras: a machine without TensorFlow cannot load Keras'
        # default backend. A backend set by the user is kept (train_one names a wrong one).
        os.environ.setdefault("KERAS_BACKEND", "jax")
        os.makedirs(f.out, exist_ok=True)
        common = [f"--batch_size={batch_size}", f"--seed={seed}", f"--buckets={f.buckets}",
                  f"--decode_batch={f.decode_batch}"] + (
            [f"--beam_width={f.beam_width}"] if f.beam_width else []) + (
            ["--smoke"] if f.smoke else [])
        if f.stage == "train":
            _, meta = load_corpus(f.data)  # fails here, before any process starts
            parse_buckets(f.buckets, meta["model"]["max_source_length"],
                          meta["model"]["max_target_length"])
            if f.decode_reserve >= f.budget_seconds:
                raise app.UsageError(f"--decode_reserve={f.decode_reserve:g} leaves no time "
                                     f"of --budget_seconds={f.budget_seconds:g} to train")
            decision = train_all(f.variants, f.data, f.out, f.budget_seconds,
                                 f.decode_reserve, f.steps, common, f.work)
            print(json.dumps(decision, indent=1))
            failed = {v: c for v, c in decision["returncodes"].items() if c != 0}
            if failed:
                raise SystemExit(f"variants failed (exit codes {failed}); their logs are in "
                                 f"{os.path.join(f.out, 'train_log.txt')}")
        else:
            if not (common_flags.VARIANT.value in VARIANTS and f.work):
                raise app.UsageError(f"--stage=train_one needs --variant (one of {VARIANTS}) "
                                     "and --work")
            train_one(common_flags.VARIANT.value, f.data, f.work, f.out, batch_size, seed,
                      f.buckets, f.steps, f.beam_width, f.decode_batch, f.smoke)
    else:
        if not f.outputs:
            raise app.UsageError("--stage=score needs --outputs")
        from benchmarks import _common

        command = (f"python -m benchmarks.translation_by_length_accelerator --stage=score "
                   f"--data={f.data} --outputs={f.outputs}")
        print(score(f.data, f.outputs, f.runs_dir, f.results_dir or _common.RESULTS_DIR,
                    command, f.name)["markdown"])


if __name__ == "__main__":
    define_flags()
    app.run(main)
