"""Metrics JSON and the one results line a person reads at the end of a run."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time

import tensorflow as tf


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def write_metrics(model_dir: str, app: str, metrics: dict, filename: str = "metrics.json") -> str:
    """Writes `metrics` (plus app, time, machine) as JSON under `model_dir`; returns the path."""
    os.makedirs(model_dir, exist_ok=True)
    record = {
        "app": app,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "tensorflow": tf.__version__,
        },
        **_jsonable(metrics),
    }
    path = os.path.join(model_dir, filename)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def results_line(app: str, dataset: str, variant: str, metric: str, value: float, seconds: float):
    """One human-readable line: what was trained on what, how well, how long."""
    return (
        f"[{app}] dataset={dataset} variant={variant} {metric}={value:.4f} "
        f"train_time={seconds:.1f}s"
    )


@dataclasses.dataclass
class RunResult:
    """What every app's `run()` returns, and the keys of every metrics.json that
    `apps/main.py` reads: one headline metric, the time, where the export went."""

    app: str
    dataset: str
    variant: str
    metric: str
    value: float
    train_seconds: float
    export_path: str | None = None
    metrics_path: str | None = None
    metrics: dict = dataclasses.field(default_factory=dict)

    @property
    def line(self) -> str:
        """The one line a person reads at the end of a run."""
        return results_line(self.app, self.dataset, self.variant, self.metric, self.value,
                            self.train_seconds)

    def record(self) -> dict:
        """The metrics with the headline keys, as written to metrics.json."""
        return {**self.metrics, "dataset": self.dataset, "variant": self.variant,
                "metric": self.metric, "value": self.value,
                "train_seconds": self.train_seconds, "export_path": self.export_path}

    def write(self, model_dir: str) -> RunResult:
        """Writes metrics.json under `model_dir`; returns self with `metrics_path` set."""
        self.metrics_path = write_metrics(model_dir, self.app, self.record())
        return self

    @classmethod
    def read(cls, path: str) -> RunResult:
        """The RunResult a metrics.json holds."""
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        names = {f.name for f in dataclasses.fields(cls)} - {"metrics", "metrics_path"}
        head = {k: record.get(k) for k in names}
        return cls(**head, metrics_path=path, metrics=record)
