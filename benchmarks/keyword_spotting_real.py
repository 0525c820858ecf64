"""Keyword spotting meets real speech and real channels: what voices and channel augmentation add.

Trains the keyword spotter once per run spec (corpus config, channel
augmentation probability, variant; the app's defaults otherwise: same epochs,
batch size, schedule, seed), exports it, loads the SavedModel back (its
`waveform` signature, as a server would run it) and scores it on:

- `synthetic test`: the corpus' test split (voices never heard in training);
- the same clips through a simulated telephone line (`channel.telephone`:
  300-3400 Hz, 8 kHz, G.711) and through a simulated room (`channel.reverberate`),
  each clip with a fixed channel seed (the same channel in every run);
- `synthetic, 1.1.0 voices`: the test split of the corpus without the MBROLA
  voices (`no_mbrola`, the same clips as version 1.1.0), so models trained on
  either corpus are compared on the same clips (the default corpus' test split
  also holds the unseen MBROLA voice us3);
- `real speech`: the 24 words cut from real recordings of three people in
  PocketSphinx's test data (`apps.keyword_spotting.real_speech`: 13 vocabulary
  words, 11 other words that should come out as `_unknown_`), as recorded and
  through the telephone line. Never used in training.

A run spec is `corpus:channel_augment[:variant]`, e.g. `default:0.5` (corpus
with the MBROLA voices, channel augmentation at 0.5, attention_rnn),
`no_mbrola:0` (the version-1.1.0 voices, no channel augmentation: the old
default), `default:0.5:cnn` (the no-attention baseline). Writes

    benchmarks/results/keyword_spotting_real.json   every run, with the machine and load
    benchmarks/results/keyword_spotting_real.md     the table

Usage (from the repository root):

    python -m benchmarks.keyword_spotting_real
    python -m benchmarks.keyword_spotting_real --kws_real_runs=default:0.5,default:0.5:cnn
    python -m benchmarks.keyword_spotting_real --kws_real_quick   # pipeline check, seconds
    python -m benchmarks.keyword_spotting_real --kws_real_rescore # score the recorded exports again
    python -m benchmarks.keyword_spotting_real --kws_real_runs=no_mbrola:0.5 --kws_real_append
    python -m benchmarks.keyword_spotting_real \\
        --kws_real_runs=default:0.5:attention_rnn:model.cepstral_keep=20   # any app setting
    python -m benchmarks.keyword_spotting_real --kws_real_score=default:0.5@runs/keyword_spotting
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time

import numpy as np
from absl import app, flags

from apps.common import config as common_config
from benchmarks import _common

NAME = "keyword_spotting_real"
DEFAULT_RUNS = ["default:0.5", "no_mbrola:0", "default:0", "default:0.5:cnn"]
CHANNELS = {"clean": None, "telephone": {"telephone": 1.0}, "room": {"reverb": 1.0}}

_RUNS = flags.DEFINE_list("kws_real_runs", DEFAULT_RUNS,
                          "Run specs `corpus:channel_augment[:variant]`.")
_SEED = flags.DEFINE_integer("kws_real_seed", 42, "Seed of every run.")
_EPOCHS = flags.DEFINE_integer("kws_real_epochs", None, "Epochs (default: the app's).")
_DATA_DIR = flags.DEFINE_string("kws_real_data_dir", None, "Dataset cache (default: shared).")
_RUNS_DIR = flags.DEFINE_string("kws_real_runs_dir",
                                os.path.join("runs", "benchmarks", "keyword_spotting_real"),
                                "Run directories (logs, plots, exports).")
_QUICK = flags.DEFINE_bool("kws_real_quick", False, "The quick corpus and 1 epoch.")
_RESCORE = flags.DEFINE_bool("kws_real_rescore", False,
                             "Score the exports recorded in the results JSON again (no training).")
_SCORE = flags.DEFINE_list(
    "kws_real_score", [], "Score runs already trained by the app instead of training: "
    "`SPEC@RUN_DIR`, the spec the run was trained with and its --model_dir.")
_SPEEDS = flags.DEFINE_list(
    "kws_real_speeds", [], "With --kws_real_score: export each run's own weights again with "
    "these test-time speeds (`ensemble.SpeedEnsemble`, e.g. 0.9,1,1.1; 1: the clip alone) "
    "and score that export: the same weights either way, so an A/B of the ensemble alone.")
_EXPONENT = flags.DEFINE_float(
    "kws_real_embedding_exponent", None, "With --kws_real_score, for runs whose export joins "
    "the speech-embedding model: export each run's own weights again with this exponent of "
    "the embedding in the product (`train.TrainConfig.embedding_exponent`) and score that.")
_APPEND = flags.DEFINE_bool("kws_real_append", False,
                            "Add the rows to those of the results JSON instead of replacing it.")
REFERENCE_CORPUS = "no_mbrola"  # The 1.1.0 voices: one test split for every model.


@dataclasses.dataclass(frozen=True)
class RunSpec:
    corpus: str
    channel_augment: float
    variant: str = "attention_rnn"
    overrides: tuple[str, ...] = ()  # `KEY=VALUE` settings of the app's TrainConfig.

    @classmethod
    def parse(cls, text: str) -> RunSpec:
        parts = text.split(":")
        if len(parts) < 2 or any("=" not in p for p in parts[3:]):
            raise ValueError(f"Run spec {text!r}: expected corpus:channel_augment[:variant"
                             "[:KEY=VALUE...]], e.g. default:0.5, default:0.5:cnn or "
                             "default:0.5:attention_rnn:model.cepstral_keep=20.")
        try:
            augment = float(parts[1])
        except ValueError:
            raise ValueError(f"Run spec {text!r}: channel_augment {parts[1]!r} is not a "
                             "number.") from None
        return cls(parts[0], augment, *parts[2:3], overrides=tuple(parts[3:]))

    @property
    def name(self) -> str:
        return ":".join([self.corpus, f"{self.channel_augment:g}", self.variant,
                         *self.overrides])


class _Served:
    """A loaded SavedModel's `waveform` signature with the explainer's call convention."""

    def __init__(self, path: str):
        import tensorflow as tf

        self.loaded = tf.saved_model.load(path)
        self.signature = self.loaded.signatures["waveform"]
        self.serve_wav = self.loaded.signatures["serving_default"]

    def explainer(self, waveform, training=False):
        del training
        import tensorflow as tf

        return self.signature(waveform=tf.convert_to_tensor(waveform, tf.float32))


def _accuracy(results, keep=None) -> float:
    correct = results["label"] == results["prediction"]
    if keep is not None:
        correct = correct[keep]
    return float(correct.mean()) if correct.size else float("nan")


def corpus_version(splits) -> str | None:
    """The version of the corpus `splits` were read from (1.2.1 mended MBROLA us3's test
    clips of on/off: scores on 1.2.0 and 1.2.1 differ for the same model), or None."""
    builder = getattr(splits, "builder", None)
    return str(builder.version) if builder is not None else None


def _corpus_cell(row: dict) -> str:
    """The corpus column: its config and, for rows scored since versions were recorded
    (1.2.1 on), its version."""
    version = row.get("corpus_version")
    return f"{row['corpus']} {version}" if version else row["corpus"]


def evaluate(served, splits, real_clips, reference=None, prompts=None,
             batch_size: int = 64) -> dict:
    """Every score of the table for one exported model (`reference`: the splits of
    REFERENCE_CORPUS, scored clean and through the telephone line; `prompts`: the
    `ivr_prompts.prompts`, their WAV files sent to the `serving_default` signature)."""
    from apps.keyword_spotting import evaluation, ivr_prompts, real_speech
    from apps.keyword_spotting.synth import CLASSES, UNKNOWN

    out = {"corpus_version": corpus_version(splits)}
    for channel_name, channel in CHANNELS.items():
        results = evaluation.predict(served, splits, "test", batch_size, channel=channel)
        out[f"synthetic_{channel_name}"] = _accuracy(results)
    if reference is not None:
        for channel_name in ("clean", "telephone"):
            results = evaluation.predict(served, reference, "test", batch_size,
                                         channel=CHANNELS[channel_name])
            out[f"reference_{channel_name}"] = _accuracy(results)
    unknown = CLASSES.index(UNKNOWN)
    for channel_name in ("clean", "telephone"):
        results = evaluation.predict_batches(
            served, real_speech.batches(real_clips, batch_size), CHANNELS[channel_name])
        keywords = results["label"] != unknown
        out[f"real_{channel_name}_keywords"] = _accuracy(results, keywords)
        out[f"real_{channel_name}_unknown"] = _accuracy(results, ~keywords)
        out[f"real_{channel_name}_all"] = _accuracy(results)
        out[f"real_{channel_name}_predictions"] = [
            f"{c.word}->{CLASSES[int(p)]}" for c, p in zip(real_clips, results["prediction"],
                                                          strict=True)]
    out["real_clips"] = {"keywords": int(keywords.sum()), "unknown": int((~keywords).sum())}
    if prompts is not None:
        out["ivr_prompts"] = ivr_prompts.score(served.serve_wav, prompts)
    return out


def benchmark(specs: list[RunSpec], seed: int, epochs: int | None, data_dir, runs_dir: str,
              quick: bool, on_row=None) -> dict:
    """Trains, exports and scores every spec; `on_row(record)` after each (partial results
    survive an interrupted benchmark)."""
    from apps.keyword_spotting import ivr_prompts, pipeline, real_speech, train
    from apps.keyword_spotting.model import ModelConfig

    machine = _common.machine_info()
    real_clips = real_speech.clips(real_speech.fetch(data_dir))
    prompts = ivr_prompts.prompts(ivr_prompts.fetch(data_dir))
    reference = None if quick else pipeline.load_splits(
        "synthetic_speech_commands", data_dir, REFERENCE_CORPUS)
    rows = []
    for spec in specs:
        corpus = "quick" if quick else spec.corpus
        stamp = f"{spec.name.replace(':', '_')}-{int(time.time())}"
        config = common_config.apply_overrides(train.TrainConfig(
            data_dir=data_dir, corpus=corpus, channel_augment=spec.channel_augment,
            model=ModelConfig(variant=spec.variant), seed=seed,
            epochs=1 if quick else (epochs or train.TrainConfig.epochs),
            model_dir=os.path.join(runs_dir, stamp),
            export_dir=os.path.join(runs_dir, stamp, "export"), backup=False, sample_clips=2),
            spec.overrides)
        result = train.run(config)
        row = _row(spec, corpus, config.seed, config.epochs, result.train_seconds,
                   result.export_path, result.metrics)
        row["scored_on"] = _common.cpu_kind(machine)
        splits = pipeline.load_splits(config.dataset, data_dir, corpus)
        scores = evaluate(_Served(result.export_path), splits, real_clips, reference, prompts)
        row.update(scores)
        print(f"[{NAME}] {spec.name}: synthetic {scores['synthetic_clean']:.4f} telephone "
              f"{scores['synthetic_telephone']:.4f} real keywords "
              f"{scores['real_clean_keywords']:.3f} train {result.train_seconds:.0f} s",
              flush=True)
        rows.append(row)
        record = {"benchmark": NAME, "machine": {**machine, "load_average_at_end": [
                      round(x, 2) for x in os.getloadavg()]}, "rows": rows,
                  "command": "python -m benchmarks.keyword_spotting_real --kws_real_runs="
                             + ",".join(s.name for s in specs)
                             + (f" --kws_real_seed={seed}" if seed != _SEED.default else "")}
        if on_row:
            on_row(record)
    return record


def _row(spec: RunSpec, corpus: str, seed: int, epochs: int, train_seconds: float,
         export_path: str, metrics: dict) -> dict:
    return {"spec": spec.name, "corpus": corpus, "channel_augment": spec.channel_augment,
            "variant": spec.variant, "overrides": list(spec.overrides), "seed": seed,
            "epochs": epochs, "train_seconds": train_seconds, "export_path": export_path,
            "test_accuracy_in_run": metrics["test_accuracy"],
            "split_sizes": metrics["split_sizes"],
            # The export's test-time speeds (`ensemble.SpeedEnsemble`); runs before it: none.
            "test_speeds": metrics.get("test_speeds", [1.0]),
            # Runs whose export joins the speech-embedding model (`embedding_ensemble`);
            # runs before it: none.
            "embedding_ensemble": bool(metrics.get("embedding_ensemble", False)),
            "member_test_accuracy": metrics.get("member_test_accuracy", {}),
            # The embedding's exponent in the product; runs before it: 1 (or one model).
            "embedding_exponent": metrics.get("embedding_exponent")}


def read_run_metrics(run_dir: str, where: str) -> dict:
    """The `metrics.json` of an app's run directory; a ValueError naming `where` (the flag
    that gave it) when there is none."""
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(path):
        raise ValueError(f"{where}: {path} does not exist (a run directory of `python -m "
                         "apps.keyword_spotting.train`).")
    with open(path) as f:
        return json.load(f)


def run_model_config(metrics: dict):
    """The `model.ModelConfig` a run's `metrics.json` records (lists back to tuples; runs
    from before `embedding_heads` existed had one head)."""
    from apps.keyword_spotting.model import ModelConfig

    fields = {k: tuple(v) if isinstance(v, list) else v
              for k, v in metrics["model_config"].items()}
    return ModelConfig(**{"embedding_heads": 1, **fields})


def run_export(run_dir: str, metrics: dict) -> str:
    """The export a run's `metrics.json` names (a relative path is tried from the working
    directory, then from the directory that holds `runs/`)."""
    path = metrics["export_path"]
    if os.path.isabs(path) or os.path.isdir(path):
        return path
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(run_dir))), path)


def rebuild(run_dir: str, metrics: dict, data_dir=None):
    """The run's explainer rebuilt from its `model_config` with the weights of its export:
    `(explainer, members)`, `members` each model by name (one, or the variant and
    `speech_embedding` of an `embedding_ensemble` run, whose explainer is their product).
    Checks that the rebuilt model answers as the export does (at the export's own speeds)."""
    import tensorflow as tf

    from apps.keyword_spotting import ensemble
    from apps.keyword_spotting.model import build_model, product_of_experts

    config = run_model_config(metrics)
    members = {config.variant: build_model(config, cache_dir=data_dir).explainer}
    explainer = members[config.variant]
    if metrics.get("embedding_ensemble"):
        members["speech_embedding"] = build_model(
            dataclasses.replace(config, variant="speech_embedding"),
            cache_dir=data_dir).explainer
        explainer = product_of_experts(
            list(members.values()), exponents=(1.0, metrics.get("embedding_exponent") or 1.0))
    loaded = tf.saved_model.load(run_export(run_dir, metrics))
    weights = [w for w in loaded.weights
               if w.name.split(":")[0] not in ("class_names", "test_speeds")]
    if len(weights) != len(explainer.weights) or any(
            tuple(a.shape) != tuple(b.shape) for a, b in zip(explainer.weights, weights,
                                                             strict=False)):
        raise ValueError(f"{run_dir}: the export's weights do not fit the model its "
                         "metrics.json describes.")
    for variable, value in zip(explainer.weights, weights, strict=True):
        variable.assign(value.numpy())
    probe = tf.random.stateless_normal([4, 16000], seed=[1, 2], stddev=0.1)
    theirs = loaded.signatures["waveform"](waveform=probe)["probabilities"].numpy()
    ours = ensemble.SpeedEnsemble(explainer, metrics.get("test_speeds", [1.0]))(probe)
    if np.abs(theirs - np.asarray(ours["probabilities"])).max() > 1e-4:
        raise ValueError(f"{run_dir}: the rebuilt model does not answer as the export does.")
    return explainer, members


def reexport(run_dir: str, metrics: dict, speeds, out_dir: str,
             embedding_exponent: float | None = None, data_dir=None) -> str:
    """The run's explainer (`rebuild`) exported again to `out_dir` with `speeds` (empty: the
    export's own) and, for a run whose export joins the speech-embedding model,
    `embedding_exponent` (None: the export's own); returns the version directory."""
    from apps.keyword_spotting import export
    from apps.keyword_spotting.model import product_of_experts

    explainer, members = rebuild(run_dir, metrics, data_dir)
    if embedding_exponent is not None:
        if len(members) < 2:
            raise ValueError(f"{run_dir}: its export is one model ({', '.join(members)}); "
                             "an embedding exponent needs the two of embedding_ensemble.")
        explainer = product_of_experts(list(members.values()),
                                       exponents=(1.0, embedding_exponent))
    return export.export(explainer, metrics["class_names"], out_dir,
                         speeds=speeds or metrics.get("test_speeds", [1.0]))


def _speeds_flag(speeds) -> str:
    return " --kws_real_speeds=" + ",".join(f"{x:g}" for x in speeds) if speeds else ""


def score_runs(pairs: list[str], data_dir, on_row=None, speeds=(),
               embedding_exponent: float | None = None) -> dict:
    """Scores runs the app already trained, each `SPEC@RUN_DIR` (the spec it was trained
    with; its `metrics.json` gives the export, epochs and training time), as `benchmark`
    would have scored them."""
    from apps.keyword_spotting import ivr_prompts, pipeline, real_speech

    machine = _common.machine_info()
    real_clips = real_speech.clips(real_speech.fetch(data_dir))
    prompts = ivr_prompts.prompts(ivr_prompts.fetch(data_dir))
    reference = pipeline.load_splits("synthetic_speech_commands", data_dir, REFERENCE_CORPUS)
    rows = []
    for pair in pairs:
        text, sep, run_dir = pair.partition("@")
        if not sep:
            raise ValueError(f"--kws_real_score={pair!r}: expected SPEC@RUN_DIR.")
        spec = RunSpec.parse(text)
        metrics = read_run_metrics(run_dir, f"--kws_real_score={pair!r}")
        row = _row(spec, spec.corpus, metrics["model_config"]["seed"], metrics["epochs"],
                   metrics["train_seconds"], metrics["export_path"], metrics)
        # The machine that scored it (the table's header names only the last one); the
        # training time is the run's own, on the machine that trained it.
        row["scored_on"] = _common.cpu_kind(machine)
        splits = pipeline.load_splits("synthetic_speech_commands", data_dir, spec.corpus)
        with tempfile.TemporaryDirectory() as tmp:
            path = run_export(run_dir, metrics)
            if speeds or embedding_exponent is not None:
                path = reexport(run_dir, metrics, speeds, tmp, embedding_exponent, data_dir)
                row.update(reexported=True)
                if speeds:
                    row.update(test_speeds=list(speeds))
                if embedding_exponent is not None:
                    row.update(embedding_exponent=embedding_exponent)
            row.update(evaluate(_Served(path), splits, real_clips, reference, prompts))
        rows.append(row)
        record = {"benchmark": NAME, "machine": {**machine, "load_average_at_end": [
                      round(x, 2) for x in os.getloadavg()]}, "rows": rows,
                  "command": "python -m benchmarks.keyword_spotting_real --kws_real_score="
                             + ",".join(pairs) + _speeds_flag(speeds)
                             + ("" if embedding_exponent is None else
                                f" --kws_real_embedding_exponent={embedding_exponent:g}")}
        if on_row:
            on_row(record)
    return record


def rescore(record: dict, data_dir) -> dict:
    """`record` with every row's scores recomputed from its export (rows without one kept)."""
    from apps.keyword_spotting import ivr_prompts, pipeline, real_speech

    real_clips = real_speech.clips(real_speech.fetch(data_dir))
    prompts = ivr_prompts.prompts(ivr_prompts.fetch(data_dir))
    reference = pipeline.load_splits("synthetic_speech_commands", data_dir, REFERENCE_CORPUS)
    rows = []
    for row in record["rows"]:
        if row.get("reexported"):
            print(f"Not rescored (its export was made again for the run): {row['spec']}")
        elif row.get("export_path") and os.path.isdir(row["export_path"]):
            splits = pipeline.load_splits("synthetic_speech_commands", data_dir, row["corpus"])
            row = {**row, **evaluate(_Served(row["export_path"]), splits, real_clips,
                                     reference, prompts)}
        rows.append(row)
    return {**record, "rows": rows, "rescored": _common.machine_info()}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ivr_cells(scores: dict | None) -> str:
    """The IVR columns: digits right, and every other word called `_unknown_`."""
    if not scores:
        return "– | –"
    digits, others = scores["digit"], _other_words(scores)
    p_true = f" (p {digits['p_true']:.2f})" if "p_true" in digits else ""
    return (f"{digits['correct']}/{digits['clips']}{p_true} | "
            f"{others['correct']}/{others['clips']}")


def _other_words(scores: dict) -> dict[str, int]:
    """The IVR words other than digits, all groups together: how many, how many rejected."""
    groups = [scores[g] for g in scores if g not in ("digit", "predictions")]
    return {k: sum(g[k] for g in groups) for k in ("correct", "clips")}


def _digit_p_true(row: dict) -> str:
    """The mean probability of the right digit on the IVR digits, or `–` (older rows)."""
    p_true = row["ivr_prompts"]["digit"].get("p_true")
    return "–" if p_true is None else f"{p_true:.2f}"


def _spec_label(row: dict) -> str:
    speeds = row.get("test_speeds", [1.0])
    tta = [] if list(speeds) == [1.0] else [
        "test speeds " + "/".join(f"{s:g}" for s in speeds)]
    joined = ["+ speech_embedding"] if row.get("embedding_ensemble") else []
    if row.get("embedding_exponent") not in (None, 1.0):
        joined = [f"+ speech_embedding^{row['embedding_exponent']:g}"]
    return " ".join([row["variant"], *joined, *row.get("overrides", []), *tta])


def _ivr_counts(row: dict) -> tuple[int, int] | None:
    """(digits right, other words called `_unknown_`) of a row scored on the IVR prompts."""
    scores = row.get("ivr_prompts")
    if not scores:
        return None
    return scores["digit"]["correct"], _other_words(scores)["correct"]


def over_seeds(rows: list[dict]) -> list[str]:
    """A table of the run specs trained with more than one seed: the mean and range of the
    synthetic accuracy, and every seed's IVR counts side by side (seed order), so a change
    is judged on all its seeds and not on its best one."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if _ivr_counts(r) is not None:
            key = (_corpus_cell(r), r["channel_augment"], _spec_label(r))
            groups.setdefault(key, []).append(r)
    groups = {k: sorted(v, key=lambda r: r["seed"]) for k, v in groups.items()
              if len({r["seed"] for r in v}) > 1}
    if not groups:
        return []
    lines = ["", "Over seeds (the rows above with the IVR columns, by run spec):", "",
             "| corpus | channel augment | variant | seeds | synthetic, mean [min, max] | "
             "IVR digits, each seed | IVR digits, total | IVR digits, p(right), each seed | "
             "IVR other words, each seed | train s, mean |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (corpus, augment, label), runs in groups.items():
        synthetic = [r["synthetic_clean"] for r in runs]
        counts = [_ivr_counts(r) for r in runs]
        n_digits = runs[0]["ivr_prompts"]["digit"]["clips"]
        lines.append(
            f"| {corpus} | {augment:g} | {label} | {', '.join(str(r['seed']) for r in runs)} | "
            f"{_pct(float(np.mean(synthetic)))} [{_pct(min(synthetic))}, "
            f"{_pct(max(synthetic))}] | {', '.join(str(d) for d, _ in counts)} | "
            f"{sum(d for d, _ in counts)}/{n_digits * len(runs)} | "
            f"{', '.join(_digit_p_true(r) for r in runs)} | "
            f"{', '.join(str(o) for _, o in counts)} | "
            f"{np.mean([r['train_seconds'] for r in runs]):.0f} |")
    return lines


def markdown(record: dict) -> str:
    machine = record["machine"]
    first = record["rows"][0]
    n_kw, n_unk = first["real_clips"]["keywords"], first["real_clips"]["unknown"]
    seeds = sorted({r["seed"] for r in record["rows"]})
    lines = [
        f"Keyword spotting on real speech and real channels ({first['epochs']} epochs, seed"
        f"{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}; "
        f"{_common.machine_line(machine)}). Synthetic: the test split's "
        "unseen voices as built, through a telephone line, through a room. Real: "
        f"{n_kw} vocabulary words and {n_unk} other words (`_unknown_`) cut from "
        "PocketSphinx's test recordings of three people, as recorded and through the "
        "telephone line. IVR: one professional speaker's telephone prompts (Asterisk, 8 kHz "
        "WAV files sent as they are to `serving_default`; `apps.keyword_spotting."
        "ivr_prompts`): the ten digits, and 70 other words (numbers, calendar, phonetic "
        "alphabet) that should be `_unknown_`; \"p\" is the mean probability the model gave "
        "the right digit. A corpus without a version predates 1.2.1, whose test split "
        "mends 31 clips of the MBROLA voice us3 (on, off, coffee: a silence where the vowel "
        "belongs in 1.2.0).",
        "",
        f"`{record['command']}`",
        "",
        "| corpus | channel augment | variant | seed | synthetic | synthetic, telephone | "
        "synthetic, room | synthetic, 1.1.0 voices (telephone) | "
        f"real words (of {n_kw}) | real unknown (of {n_unk}) | "
        "real words, telephone | IVR digits | IVR other words | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in record["rows"]:
        lines.append(
            f"| {_corpus_cell(r)} | {r['channel_augment']:g} | {_spec_label(r)} | {r['seed']} | "
            f"{_pct(r['synthetic_clean'])} | {_pct(r['synthetic_telephone'])} | "
            f"{_pct(r['synthetic_room'])} | "
            + (f"{_pct(r['reference_clean'])} ({_pct(r['reference_telephone'])}) | "
               if "reference_clean" in r else "– | ") +
            f"{round(r['real_clean_keywords'] * n_kw)}/{n_kw} | "
            f"{round(r['real_clean_unknown'] * n_unk)}/{n_unk} | "
            f"{round(r['real_telephone_keywords'] * n_kw)}/{n_kw} | "
            f"{_ivr_cells(r.get('ivr_prompts'))} | {r['train_seconds']:.0f} |")
    return "\n".join(lines + over_seeds(record["rows"])) + "\n"


def main(argv):
    del argv
    if _RESCORE.value:
        path = os.path.join(_common.RESULTS_DIR, f"{NAME}.json")
        with open(path) as f:
            record = rescore(json.load(f), _DATA_DIR.value)
        _common.write_results(NAME, record, markdown(record))
        print(markdown(record))
        return
    specs = [RunSpec.parse(text) for text in _RUNS.value]
    earlier = []
    if _APPEND.value:
        with open(os.path.join(_common.RESULTS_DIR, f"{NAME}.json")) as f:
            previous = json.load(f)
        earlier = previous["rows"]

    def write(record):
        if earlier:
            record = {**record, "rows": earlier + record["rows"],
                      "command": f"{previous['command']}; then {record['command']} "
                                 "--kws_real_append"}
        _common.write_results(NAME, record, markdown(record))
        return record

    if _SCORE.value:
        speeds = tuple(float(x) for x in _SPEEDS.value)
        record = score_runs(_SCORE.value, _DATA_DIR.value, write, speeds, _EXPONENT.value)
    else:
        record = benchmark(specs, _SEED.value, _EPOCHS.value, _DATA_DIR.value,
                           _RUNS_DIR.value, _QUICK.value, write)
    print(markdown(write(record)))


if __name__ == "__main__":
    app.run(main)
