"""The main job: train every application on its embedded data, export, summarize.

Usage:
    python -m apps.main                 # every app, default configuration
    python -m apps.main --quick         # seconds per app, to try the pipeline out
    python -m apps.main --apps=sentiment,translation

Each application runs in its own process (`python -m apps.<app>.train`), so one
app's flags, graphs and memory never leak into the next. Each writes
`<runs_dir>/<app>/metrics.json` (an `apps.common.metrics.RunResult`: `dataset`,
`variant`, `metric`, `value`, `train_seconds`, `export_path`, the same keys for
every app); this job collects them into one table, printed and written to
`results/summary.md` (and `results/summary.json`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags, logging

from apps import APPS
from apps.common.flags import QUICK as _QUICK
from apps.common.metrics import RunResult

_APPS = flags.DEFINE_list("apps", list(APPS), f"Applications to run, from {list(APPS)}.")
_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs", "Parent of each app's run directory.")
_EXPORT_BASE = flags.DEFINE_string("export_base", "saved_models", "Parent of each app's exports.")
_RESULTS_DIR = flags.DEFINE_string("results_dir", "results", "Where the summary table goes.")


def available_apps() -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    return [a for a in APPS if os.path.exists(os.path.join(here, a, "train.py"))]


def run_app(name: str, quick: bool, runs_dir: str, export_base: str) -> dict:
    model_dir = os.path.join(runs_dir, name)
    cmd = [
        sys.executable, "-m", f"apps.{name}.train",
        f"--model_dir={model_dir}", f"--export_dir={os.path.join(export_base, name)}",
    ]
    if quick:
        cmd.append("--quick")
    logging.info("Running %s", " ".join(cmd))
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=False)
    elapsed = time.perf_counter() - start
    row = {"app": name, "wall_seconds": round(elapsed, 1), "status": "ok"}
    if proc.returncode != 0:
        row["status"] = f"failed (exit {proc.returncode})"
        return row
    result = RunResult.read(os.path.join(model_dir, "metrics.json"))
    for key in ("dataset", "variant", "metric", "value", "train_seconds", "export_path"):
        row[key] = getattr(result, key)
    return row


def summary_markdown(rows: list[dict]) -> str:
    lines = [
        "| app | dataset | variant | metric | value | training time (s) | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        value = r.get("value")
        value = f"{value:.4f}" if isinstance(value, (int, float)) else "–"
        secs = r.get("train_seconds")
        secs = f"{secs:.0f}" if isinstance(secs, (int, float)) else "–"
        lines.append(
            f"| {r['app']} | {r.get('dataset') or '–'} | {r.get('variant') or '–'} | "
            f"{r.get('metric') or '–'} | {value} | {secs} | {r['status']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    known = available_apps()
    unknown = [a for a in _APPS.value if a not in APPS]
    if unknown:
        raise app.UsageError(f"--apps has unknown names {unknown}; choose from {list(APPS)}.")
    chosen = [a for a in _APPS.value if a in known]
    missing = [a for a in _APPS.value if a not in known]
    if missing:
        print(f"Not in this checkout yet, skipped: {', '.join(missing)}", flush=True)
    rows = [run_app(a, _QUICK.value, _RUNS_DIR.value, _EXPORT_BASE.value) for a in chosen]
    table = summary_markdown(rows)
    os.makedirs(_RESULTS_DIR.value, exist_ok=True)
    with open(os.path.join(_RESULTS_DIR.value, "summary.md"), "w", encoding="utf-8") as f:
        f.write("# Main job results\n\n" + table)
    with open(os.path.join(_RESULTS_DIR.value, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=2)
    print("\n" + table, flush=True)
    if any(r["status"] != "ok" for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
