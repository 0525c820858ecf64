"""Application benchmarks: training throughput, time to target, SavedModel latency.

For every application with a run (`<runs_dir>/<app>/metrics.json`, written by
its `train.py` or by `python -m apps.main`) and an export
(`<saved_models_dir>/<app>/<latest version>/`):

- training throughput: training examples x epochs / training seconds of that run;
- time to target: the training time at the end of the first epoch whose
  validation metric reached the app's target (from the run's per-epoch
  history: an estimate at epoch granularity, assuming equal epochs), or
  "not reached"; for translation and captioning, whose targets are BLEU on
  the test split, the final test value against the target instead;
- serving: the latest SavedModel, loaded in a fresh interpreter that cannot
  import this project (what TF Serving sees), called through `serving_default`
  with raw inputs (text, PNG bytes, WAV bytes): batch-1 latency p50/p99 over
  `--repeats` calls after warm-up, and batch-32 throughput.

    python -m benchmarks.apps                       # after python -m apps.main
    python -m benchmarks.apps --apps=sentiment --repeats=200

Writes `benchmarks/results/apps.{json,md}` (or `--out_dir`).
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from apps import APPS
from benchmarks import _common

_APPS = flags.DEFINE_list("bench_apps", list(APPS), "Applications to benchmark.")
_RUNS = flags.DEFINE_string("bench_runs_dir", "runs", "Where the apps' run directories are.")
_SAVED = flags.DEFINE_string("bench_saved_models_dir", "saved_models", "Export base directory.")
_REPEATS = flags.DEFINE_integer("repeats", 100, "Batch-1 calls timed per app (after warm-up).")
_OUT = flags.DEFINE_string("out_dir", None, "Results directory (default benchmarks/results).")
_NAME = flags.DEFINE_string("results_name", "apps", "Base name of the result files.")

# (validation metric in the run's history, target, the target's source); translation's
# target is relative to the baseline, so it has no time to target here.
TARGETS = {
    "sentiment": ("val_accuracy", 0.78, "issue 3: movies accuracy >= 0.78"),
    "image_classification": ("val_accuracy", 0.95, "issue 5: accuracy >= 95%"),
    "keyword_spotting": ("val_accuracy", 0.95, "issue 6: accuracy >= 95%"),
    "translation": (None, None,
                    "issue 4: bahdanau BLEU >= seq2seq + 5 (see translation_variants)"),
    "captioning": ("bleu4", 0.6, "issue 5: BLEU-4 >= 0.6"),
}
# Batch-1 p50 latency targets from issue 8, in milliseconds.
LATENCY_TARGET_MS = {"sentiment": 10, "image_classification": 10, "keyword_spotting": 10,
                     "translation": 100, "captioning": 100}

# Runs in a fresh interpreter that cannot import the project.
_SERVE = _common.ISOLATION_PRELUDE + r"""
args = json.loads(sys.argv[1])
fn = tf.saved_model.load(args["path"]).signatures["serving_default"]
name = list(fn.structured_input_signature[1])[0]
rng = np.random.default_rng(0)
kind = args["kind"]

def sample(i):
    if kind == "text":
        words = args["words"]
        return " ".join(words[(i + k) % len(words)] for k in range(8 + i % 5))
    if kind == "image":
        pixels = rng.integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
        return tf.io.encode_png(pixels).numpy()
    audio = (0.05 * rng.standard_normal((16000, 1))).astype(np.float32)
    return tf.audio.encode_wav(audio, 16000).numpy()

pool = [sample(i) for i in range(64)]
def call(batch):
    return fn(**{name: tf.constant(batch, tf.string)})

for i in range(3):
    call(pool[i:i + 1]); call(pool[:32])
def timed(batch):
    start = time.perf_counter()
    call(batch)
    return time.perf_counter() - start

times = [timed(pool[i % 64:i % 64 + 1]) for i in range(args["repeats"])]
batch_times = [timed(pool[i % 32:i % 32 + 32]) for i in range(max(3, args["repeats"] // 10))]
times = np.array(times) * 1000
print("@@" + json.dumps({
    "input": name, "calls": len(times),
    "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
    "batch32_per_s": float(32 / np.median(batch_times)),
}))
"""

_KIND = {"sentiment": "text", "translation": "text", "image_classification": "image",
         "captioning": "image", "keyword_spotting": "audio"}
_WORDS = {
    "sentiment": "a gripping beautifully acted film but the plot is dull and far too long".split(),
    "translation": "open the file and save all changes before you close the window".split(),
}


def latest_version(base: str) -> str | None:
    if not os.path.isdir(base):
        return None
    versions = [int(d) for d in os.listdir(base) if d.isdigit()
                and os.path.exists(os.path.join(base, d, "saved_model.pb"))]
    return os.path.join(base, str(max(versions))) if versions else None


def train_examples(metrics: dict) -> int | None:
    for key in ("split_sizes", "sizes", "splits", "pairs"):
        sizes = metrics.get(key)
        if isinstance(sizes, dict) and isinstance(sizes.get("train"), int):
            return sizes["train"]
    return metrics.get("train_examples")


def training_row(name: str, metrics: dict) -> dict:
    """Throughput and time to target from one run's metrics.json."""
    seconds = metrics.get("train_seconds")
    epochs = metrics.get("epochs") or len(metrics.get("history", {}).get("loss", [])) or None
    examples = train_examples(metrics)
    row = {"dataset": metrics.get("dataset"), "variant": metrics.get("variant"),
           "epochs": epochs, "train_seconds": seconds, "train_examples": examples,
           "metric": metrics.get("metric"), "value": metrics.get("value")}
    if seconds and epochs and examples:
        row["examples_per_s"] = examples * epochs / seconds
    key, target, source = TARGETS[name]
    row["target"] = source
    curve = metrics.get("history", {}).get(key)
    if curve and seconds and epochs:
        reached = [i for i, v in enumerate(curve) if v >= target]
        row["time_to_target_s"] = (reached[0] + 1) * seconds / len(curve) if reached else None
        row["time_to_target_basis"] = f"first epoch with {key} >= {target}"
    elif name == "captioning" and metrics.get("value") is not None and seconds:
        row["time_to_target_s"] = seconds if metrics["value"] >= target else None
        row["time_to_target_basis"] = f"final test {metrics.get('metric')} >= {target}"
    return row


def serving_row(name: str, path: str, repeats: int) -> dict:
    args = {"path": os.path.abspath(path), "kind": _KIND[name], "repeats": repeats,
            "words": _WORDS.get(name, [])}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["CUDA_VISIBLE_DEVICES"] = env.get("CUDA_VISIBLE_DEVICES", "")
    res = _common.run_subprocess([sys.executable, "-c", _SERVE, json.dumps(args)],
                                 timeout_s=1800, env=env, cwd="/")
    if res.status != "ok":
        return {"status": res.status, "error": (res.reason + " " + res.stderr)[-1000:]}
    lines = [ln for ln in (res.stdout or "").splitlines() if ln.startswith("@@")]
    if not lines:
        return {"status": "error", "error": (res.stdout or "")[-1000:]}
    out = json.loads(lines[-1][2:])
    out.update(status="ok", export=path, peak_rss_bytes=res.peak_rss_bytes,
               p50_target_ms=LATENCY_TARGET_MS[name],
               p50_target_met=out["p50_ms"] <= LATENCY_TARGET_MS[name])
    return out


def _fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def markdown(record: dict) -> str:
    rows = []
    for name, r in record["apps"].items():
        t, s = r.get("training", {}), r.get("serving", {})
        ttt = t.get("time_to_target_s", "missing")
        ttt = "not reached" if ttt is None else ("n/a" if ttt == "missing" else f"{ttt:.0f} s")
        ok = s.get("status") == "ok"
        rows.append([
            name, t.get("variant") or "n/a",
            f"{t.get('metric')}={_fmt(t.get('value'), '.4f')}" if t.get("metric") else "n/a",
            _fmt(t.get("examples_per_s"), ".0f"), ttt,
            f"{s['p50_ms']:.1f}" if ok else s.get("status", "no export"),
            f"{s['p99_ms']:.1f}" if ok else "",
            f"{s['batch32_per_s']:.0f}" if ok else "",
            (f"≤ {s['p50_target_ms']} ms: " + ("met" if s["p50_target_met"] else "NOT met"))
            if ok else "",
        ])
    table = _common.markdown_table(
        ["app", "variant", "result", "train ex/s", "time to target", "b1 p50 ms", "b1 p99 ms",
         "b32 ex/s", "latency target"], rows)
    return (f"# Application benchmarks\n\n{_common.machine_line(record['machine'])}\n\n"
            f"Command: `{record['command']}`\n\n{table}\n\nTraining numbers come from each "
            "app's last run (`runs/<app>/metrics.json`); time to target is read off its "
            "per-epoch validation curve. Serving numbers: `serving_default` of the latest "
            "export, raw inputs, in a process that cannot import this project, "
            f"{record['repeats']} batch-1 calls after warm-up.\n")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = [a for a in _APPS.value if a not in APPS]
    if unknown:
        raise app.UsageError(f"--bench_apps has unknown names {unknown}; choose from {APPS}.")
    if _REPEATS.value < 1:
        raise app.UsageError("--repeats must be >= 1.")
    record = {"machine": _common.machine_info(), "repeats": _REPEATS.value,
              "command": "python -m benchmarks.apps " + " ".join(sys.argv[1:]), "apps": {}}
    for name in _APPS.value:
        entry = {}
        metrics_path = os.path.join(_RUNS.value, name, "metrics.json")
        if os.path.exists(metrics_path):
            with open(metrics_path, encoding="utf-8") as f:
                entry["training"] = training_row(name, json.load(f))
        path = latest_version(os.path.join(_SAVED.value, name))
        entry["serving"] = (serving_row(name, path, _REPEATS.value) if path
                            else {"status": "no export"})
        if not entry.get("training") and path is None:
            print(f"{name}: no run and no export; run python -m apps.{name}.train first")
        record["apps"][name] = entry
        print(name, json.dumps(entry, default=str)[:400], flush=True)
    paths = _common.write_results(_NAME.value, record, markdown(record), _OUT.value)
    print(markdown(record))
    print("wrote", paths)


if __name__ == "__main__":
    app.run(main)
