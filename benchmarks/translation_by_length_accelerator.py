"""Bahdanau et al. (2015), Fig. 2, at an accelerator's budget (issue 17).

`benchmarks/translation_by_length.py` trains the four variants on the long
corpus for 2.2 passes on two CPU cores (an hour each) and finds the attention
models losing about half their BLEU from short to long sentences: the target
"lose at most half as much as `seq2seq`" is not met there. This benchmark runs
the same experiment (the same corpus, vocabulary, models, loss, optimizer,
learning-rate schedule, test sentences and decoding: beam 4, length penalty
0.6, no copying) with many more passes, on any Keras backend with an
accelerator (JAX on a GPU was what it was written for), in three stages:

    # 1. CPU, TensorFlow: the corpus as token ids, the vocabulary, the test pairs.
    python -m benchmarks.translation_by_length_accelerator --stage=prepare --data=.gpu/fig2

    # 2. The accelerator, KERAS_BACKEND=jax (no TensorFlow needed): every variant
    #    trained at once, one process each on the one device, for the same number of
    #    steps: a calibration of `--calibration_steps` steps times them all together,
    #    then the steps that fit `--budget_seconds` are set for all; then beam search
    #    over the test sources. One file per variant (`<variant>.npz`: output ids and
    #    the run's record) and a log go to --out.
    KERAS_BACKEND=jax python -m benchmarks.translation_by_length_accelerator --stage=train \\
        --data=.gpu/fig2 --out=OUT --budget_seconds=520

    # 3. CPU, TensorFlow: the outputs detokenized, scored by English length, the two
    #    verdicts with paired bootstrap intervals, a plot.
    python -m benchmarks.translation_by_length_accelerator --stage=score --data=.gpu/fig2 \\
        --outputs=OUT

Results: benchmarks/results/translation_by_length_accelerator.{json,md,png};
the translations in `--runs_dir/<variant>/translations.tsv`.

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
STEPS_FILE = "steps.json"
#: Pairs per step (`--batch_size`): four times the CPU benchmark's 64; on an accelerator
#: a recurrent step costs about the same at either size.
DEFAULT_BATCH = 256

FLAGS = flags.FLAGS


# ----------------------------------------------------------------------------- prepare
def prepare(out: str, test_per_bucket: int = 500, smoke: bool = False) -> dict:
    """Writes the token ids of the long corpus and its vocabulary under `out` (TensorFlow).

    The pairs, vocabulary, lengths and test selection are those of
    `benchmarks.translation_by_length` with `long_test_per_bucket=test_per_bucket`
    (its README run used 500): the training pairs that fit 128 source / 144 target
    pieces, the seeded validation sample, the first `test_per_bucket` test pairs of
    each English-length bucket (sources cut at 128 pieces as the export cuts them).
    """
    import numpy as np

    from apps.common import data as common_data
    from apps.common import text as common_text
    from apps.translation import evaluation, pipeline
    from apps.translation import train as translation_train
    from benchmarks import translation_by_length

    base = translation_by_length.base_config(smoke)
    base = dataclasses.replace(base, long_test_per_bucket=test_per_bucket if not smoke else 8)
    trains, validation, tests, languages = translation_train._splits(
        base, common_data.data_dir(base.data_dir))
    m = base.model
    source_tokenizer, target_tokenizer = pipeline.make_tokenizers(
        translation_train._joined(trains.values()), m.source_vocab_size, m.target_vocab_size,
        m.max_source_length, m.max_target_length, min_count=base.min_count,
        vocabulary="subword")
    os.makedirs(out, exist_ok=True)
    pipeline.save_tokenizers(source_tokenizer, target_tokenizer, out)
    train_pairs, dropped, per_part = translation_train.training_pairs(
        base, trains, source_tokenizer, target_tokenizer)
    test = next(iter(tests.values()))

    def ids(tokenizer, texts):
        return common_text.token_ids(tokenizer, texts).numpy().astype(np.uint16)

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
        "model": dataclasses.asdict(model), "batch_size": base.batch_size,
        "start_id": int(target_tokenizer.start_id), "end_id": int(target_tokenizer.end_id),
        "pairs": {"train": len(train_pairs), "train_parts": per_part,
                  "dropped_long_pairs": dropped, "validation": len(validation),
                  "test": len(test)},
        "test_per_bucket": base.long_test_per_bucket,
        "beam_width": base.beam_width, "length_penalty": base.length_penalty,
        "smoke": smoke,
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


def learning_rate(step: int, total: int, peak: float) -> float:
    """`apps.translation.model.compile_model`'s schedule, as a function of the step:
    a linear warm-up of min(200, total // 10) steps, then a cosine decay to 10%."""
    import math

    warmup = min(200, total // 10)
    if warmup and step < warmup:
        return peak * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _wait_for(path: str, timeout: float) -> dict | None:
    end = time.time() + timeout
    while time.time() < end:
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as f:
                    return json.load(f)
            except ValueError:  # being written
                pass
        time.sleep(0.5)
    return None


def train_one(variant: str, data: str, work: str, out: str, batch_size: int, seed: int,
              buckets_text: str, calibration_steps: int, beam_width: int | None,
              decode_batch: int, smoke: bool) -> dict:
    """One variant: trains (the steps come from `work/steps.json`, written by `train_all`
    after every variant has timed its calibration steps), scores the validation pairs
    teacher-forced, decodes the test sources with beam search. Writes `out/<variant>.npz`."""
    import keras
    import numpy as np
    from keras import ops

    from apps.common import losses
    from apps.translation import model as translation_model
    from keras_attention.decoding.samplers import BeamSampler

    backend = keras.backend.backend()
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
    record = {"variant": variant, "backend": backend, "buckets": buckets,
              "pairs_per_bucket": np.bincount(bucket_ids, minlength=len(buckets)).tolist(),
              "batch_size": batch_size, "seed": seed, "learning_rate_peak": peak,
              "parameters": int(model.count_params()), "config": dataclasses.asdict(config)}

    if backend != "jax":
        raise SystemExit(f"--stage=train needs KERAS_BACKEND=jax (got {backend!r}): the "
                         "training step is compiled with jax.jit.")
    import jax

    record["device"] = str(jax.devices()[0].device_kind)

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
    rng = np.random.default_rng(seed)
    stream = batches(rng, bucket_ids, batch_size)
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

    step, losses_seen, total = 0, [], None
    timed_from = time.time()
    lr_guess = 10 ** 9  # the schedule's warm-up does not depend on the total beyond 2,000 steps
    while total is None or step < total:
        bucket, members = next(stream)
        x, y = batch_of(members, bucket)
        lr = learning_rate(step, total or lr_guess, peak)
        loss, state = train_step(state, x, y, np.float32(lr))
        step += 1
        if step % 100 == 0 or step == calibration_steps:
            losses_seen.append((step, float(loss)))
            print(f"[{variant}] step {step}/{total or '?'} loss {float(loss):.3f} "
                  f"{time.time() - start:.0f} s", flush=True)
        if total is None and step == calibration_steps:
            loss.block_until_ready()
            record["calibration_step_seconds"] = (time.time() - timed_from) / step
            with open(os.path.join(work, f"calibrated_{variant}.json"), "w") as f:
                json.dump({"step_seconds": record["calibration_step_seconds"]}, f)
            decided = _wait_for(os.path.join(work, STEPS_FILE), timeout=600)
            if decided is None:
                raise SystemExit(f"[{variant}] no {STEPS_FILE} from the parent in 600 s")
            total = max(calibration_steps, int(decided["steps"]))
            deadline = decided["deadline"]
            print(f"[{variant}] training {total} steps in all", flush=True)
        if total is not None and step % 20 == 0 and time.time() > deadline:
            # A guard, not the plan: the step count was set to end well before it.
            print(f"[{variant}] DEADLINE: stopped at step {step} of {total}", flush=True)
            record["stopped_at_deadline"] = True
            break
    jax.block_until_ready(state)
    record["steps"] = step
    record["train_seconds"] = time.time() - start
    record["losses"] = losses_seen

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
              calibration_steps: int, max_steps: int, argv_common: list[str],
              work: str | None = None) -> dict:
    """Starts one `train_one` process per variant on the one device, waits for their
    calibrations, writes the common step count (what fits the budget at the slowest
    variant's calibrated speed, at most `max_steps`), waits for them all."""
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
             f"--work={work}", f"--calibration_steps={calibration_steps}", *argv_common],
            stdout=logs[variant], stderr=subprocess.STDOUT, env=env)
    calibrated = {}
    while len(calibrated) < len(variants):
        for variant in variants:
            path = os.path.join(work, f"calibrated_{variant}.json")
            if variant not in calibrated and os.path.isfile(path):
                calibrated[variant] = _wait_for(path, 5)["step_seconds"]
        failed = [v for v, p in procs.items() if p.poll() not in (None, 0)]
        if failed:  # the others would wait for a step count: stop them all now
            print(f"{failed} failed before calibrating; stopping every variant", flush=True)
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
            break
        time.sleep(0.5)
    decision = {"calibrated_step_seconds": calibrated, "decided_at_seconds": time.time() - start}
    if len(calibrated) == len(variants):
        left = budget_seconds - decode_reserve - (time.time() - start)
        slowest = max(calibrated.values())
        decision["steps"] = int(min(max_steps, calibration_steps + max(0, left) / slowest))
        decision["deadline"] = start + budget_seconds - 0.5 * decode_reserve
        with open(os.path.join(work, STEPS_FILE), "w") as f:
            json.dump(decision, f)
        print(f"calibrated (s/step): {calibrated}; every variant trains "
              f"{decision['steps']} steps", flush=True)
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
def score(data: str, outputs: str, runs_dir: str, results_dir: str, command: str) -> dict:
    """Detokenizes each variant's output ids, scores them by English length and writes the
    results (the verdicts and bootstrap of `benchmarks.translation_by_length`)."""
    import numpy as np

    from apps.common import subword
    from apps.translation import evaluation
    from apps.translation import export as translation_export
    from benchmarks import _common
    from benchmarks import translation_by_length as by_length

    _, meta = load_corpus(data)
    sources, references, _ = by_length.read_translations(os.path.join(data, TEST))
    tokenizer = subword.SubwordTokenizer.load(
        os.path.join(data, "subword"), max_length=meta["model"]["max_target_length"] + 1,
        bos_eos=True)
    results, records = {}, {}
    for variant in VARIANTS:
        path = os.path.join(outputs, f"{variant}.npz")
        if not os.path.isfile(path):
            continue
        with np.load(path) as z:
            ids, record = z["outputs"], json.loads(str(z["record"]))
        if len(ids) != len(sources):
            raise ValueError(f"{path}: {len(ids)} outputs for {len(sources)} test sources")
        texts = translation_export.postprocess(tokenizer.detokenize(ids)).numpy()
        hypotheses = [t.decode("utf-8") for t in texts]
        directory = os.path.join(runs_dir, variant)
        os.makedirs(directory, exist_ok=True)
        evaluation.write_translations(os.path.join(directory, by_length.TRANSLATIONS),
                                      zip(sources, references, hypotheses, hypotheses,
                                          strict=True))
        corpus = evaluation.corpus_scores(hypotheses, references)
        results[variant] = {
            "bleu": corpus["bleu"], "chrf": corpus["chrf"],
            "bleu_by_words": evaluation.bleu_by_words(sources, hypotheses, references),
            "parameters": record["parameters"], "train_seconds": record["train_seconds"],
            "steps": record["steps"], "validation_loss": record["validation_loss"],
            "validation_token_accuracy": record["validation_token_accuracy"],
            "over_twice_reference": int(sum(
                len(h.split()) > 2 * len(r.split()) for h, r in zip(hypotheses, references,
                                                                    strict=True))),
        }
        records[variant] = record
    if not results:
        raise FileNotFoundError(f"{outputs}: no <variant>.npz to score")
    checks = by_length.targets(results)
    intervals = by_length.bootstrap(runs_dir, list(results)) if len(results) > 1 else {}
    first = next(iter(records.values()))
    passes = first["steps"] * first["batch_size"] / meta["pairs"]["train"]
    counts = next(iter(results.values()))["bleu_by_words"]
    headers = (["variant"] + [f"{b} ({counts[b]['sentences']})" for b in by_length.BUCKETS]
               + ["all", "val. token acc.", "outputs > 2x ref.", "params"])
    rows = [[v] + [f"{r['bleu_by_words'][b]['bleu']:.2f}" for b in by_length.BUCKETS]
            + [f"{r['bleu']:.2f}", f"{r['validation_token_accuracy']:.3f}",
               r["over_twice_reference"], f"{r['parameters']:,}"]
            for v, r in results.items()]
    steps = sorted({r["steps"] for r in records.values()})
    text = "\n".join([
        f"# BLEU by source length at an accelerator's budget ({meta['dataset']}; cf. "
        "Bahdanau et al. 2015, Fig. 2)", "",
        f"Every variant: {'/'.join(map(str, steps))} steps of {first['batch_size']} pairs "
        f"({passes:.1f} passes over {meta['pairs']['train']:,} training pairs), batches "
        f"from length buckets {first['buckets']}, seed {first['seed']}, the app's Adam "
        "(clipnorm 1) and warm-up + cosine schedule, label smoothing "
        f"{first['config']['label_smoothing']}, no copying; beam {first['beam_width']}, "
        f"length penalty {first['length_penalty']}; Keras {first['backend']} backend on "
        f"{first.get('device', '?')}, the variants trained at once on the one device. "
        "sacreBLEU, case-insensitive; buckets in English words of the source (test "
        "sentences in brackets)." + (" SMOKE RUN: the numbers mean nothing."
                                     if meta.get("smoke") else ""), "",
        f"Command: `{command}`", "",
        _common.markdown_table(headers, rows), "",
        *by_length.verdict_lines(checks),
        *by_length.interval_lines(intervals),
    ]) + "\n"
    record = {"meta": meta, "runs": records, "results": results, "targets": checks,
              "intervals": intervals, "scored_on": _common.machine_info()}
    _common.write_results(NAME, record, text, results_dir)
    by_length.plot(results, os.path.join(results_dir, f"{NAME}.png"),
                   f"{meta['dataset']}: BLEU by source length ({passes:.0f} passes)")
    return {**record, "markdown": text}


# -------------------------------------------------------------------------------- main
def define_flags() -> None:
    flags.DEFINE_enum("stage", None, ["prepare", "train", "train_one", "score"],
                      "prepare (TensorFlow) | train (an accelerator, KERAS_BACKEND=jax) | "
                      "score (TensorFlow); train_one is train's worker.")
    flags.DEFINE_string("data", os.path.join(".gpu", "fig2"), "The prepared corpus.")
    flags.DEFINE_string("out", None, "train: where the outputs go.")
    flags.DEFINE_string("outputs", None, "score: the train stage's --out.")
    flags.DEFINE_string("work", None, "The workers' logs and calibration files (default: "
                        "--out/.work).")
    flags.DEFINE_list("variants", list(VARIANTS), "Variants to train, at the same budget.")
    flags.DEFINE_float("budget_seconds", 520.0, "train: wall-clock budget of the whole stage.")
    flags.DEFINE_float("decode_reserve", 110.0, "train: seconds kept for the validation "
                       "pass and beam search after training.")
    flags.DEFINE_integer("calibration_steps", 60, "Steps timed (all variants at once) "
                         "before the step count is set.")
    flags.DEFINE_integer("max_steps", 50000, "The most steps, whatever the budget.")
    flags.DEFINE_string("buckets", "32:40,64:72", "Length buckets SOURCE:TARGET (pieces) besides "
                        "the longest (the model's maxima).")
    flags.DEFINE_integer("beam_width", None, "Beam (default: the prepared corpus', 4).")
    flags.DEFINE_integer("decode_batch", 256, "Test sources per beam-search call.")
    flags.DEFINE_integer("test_per_bucket", 500, "prepare: test pairs per English-length "
                         "bucket.")
    flags.DEFINE_string("runs_dir", os.path.join("runs", NAME), "score: translations.tsv "
                        "per variant.")
    flags.DEFINE_string("results_dir", None, "score: where the JSON, markdown, PNG go "
                        "(default benchmarks/results).")
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
        print(json.dumps(prepare(f.data, f.test_per_bucket, f.smoke), indent=1))
    elif f.stage in ("train", "train_one"):
        if not f.out:
            raise app.UsageError(f"--stage={f.stage} needs --out")
        os.makedirs(f.out, exist_ok=True)
        common = [f"--batch_size={batch_size}", f"--seed={seed}", f"--buckets={f.buckets}",
                  f"--decode_batch={f.decode_batch}"] + (
            [f"--beam_width={f.beam_width}"] if f.beam_width else []) + (
            ["--smoke"] if f.smoke else [])
        if f.stage == "train":
            load_corpus(f.data)  # fails here, before any process starts
            print(json.dumps(train_all(f.variants, f.data, f.out, f.budget_seconds,
                                       f.decode_reserve, f.calibration_steps, f.max_steps,
                                       common, f.work), indent=1))
        else:
            train_one(common_flags.VARIANT.value, f.data, f.work, f.out, batch_size, seed,
                      f.buckets,
                      f.calibration_steps, f.beam_width, f.decode_batch, f.smoke)
    else:
        if not f.outputs:
            raise app.UsageError("--stage=score needs --outputs")
        from benchmarks import _common

        command = (f"python -m benchmarks.translation_by_length_accelerator --stage=score "
                   f"--data={f.data} --outputs={f.outputs}")
        print(score(f.data, f.outputs, f.runs_dir, f.results_dir or _common.RESULTS_DIR,
                    command)["markdown"])


if __name__ == "__main__":
    define_flags()
    app.run(main)
