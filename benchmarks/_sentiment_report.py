"""The sentiment benchmark's report: its tables, the seed-paired comparison, its config check.

Kept apart from `sentiment_variants` (which defines absl flags at import) so that
tests can import it next to the other benchmarks.
"""

from __future__ import annotations

import dataclasses
import statistics

from absl import app, flags

from apps.common import config as common_config
from apps.common import flags as common_flags
from apps.sentiment import train
from benchmarks import _common

# TrainConfig fields the benchmark sets for every run itself, and why.
SET_BY_BENCHMARK = {
    "model.variant": "the benchmark runs each of --variants",
    "seed": "the benchmark runs each of --seeds",
    "model_dir": "each run gets its own directory under --runs",
    "export_dir": "benchmark runs are not exported",
}
# The common flags that would set them.
_FLAG_OF = {"variant": "model.variant", "seed": "seed", "model_dir": "model_dir",
            "export_dir": "export_dir"}


def _refuse_benchmark_keys(pairs) -> None:
    for pair in pairs:
        key = pair.partition("=")[0].strip()
        if key in SET_BY_BENCHMARK:
            raise app.UsageError(f"--config={key}: {SET_BY_BENCHMARK[key]}; not settable here.")


def from_scratch_base() -> train.TrainConfig:
    """The app's `TrainConfig` with a from-scratch variant (`bilstm_attention`), the
    starting point of these benchmarks: they compare the variants trained from scratch
    (each run then sets its own), whose fields the app's default, `bert`, refuses (e.g.
    `model.attention_hops`)."""
    return train.TrainConfig(model=dataclasses.replace(train.TrainConfig().model,
                                                       variant="bilstm_attention"))


def parse_config(pairs, base: train.TrainConfig | None = None) -> train.TrainConfig:
    """`--config=KEY=VALUE` pairs applied to `base` (default: `from_scratch_base()`).

    Checked before any run: a bad key or value, or a field the benchmark sets
    itself (`SET_BY_BENCHMARK`), is a `UsageError` naming it.
    """
    pairs = list(pairs or [])
    _refuse_benchmark_keys(pairs)
    try:
        return common_config.apply_overrides(base or from_scratch_base(), pairs)
    except flags.ValidationError as err:
        raise app.UsageError(str(err)) from err


def config_from_flags() -> train.TrainConfig:
    """The `TrainConfig` every run starts from: the app's, with the common flags
    (`--epochs`, `--data_dir`, ...) and every `--config=KEY=VALUE` applied."""
    for flag, field in _FLAG_OF.items():
        if flags.FLAGS[flag].present:
            raise app.UsageError(f"--{flag}: {SET_BY_BENCHMARK[field]}; not settable here.")
    _refuse_benchmark_keys(common_flags.CONFIG.value or [])
    try:
        config = common_config.from_flags(train.TrainConfig, base=from_scratch_base())
    except flags.ValidationError as err:
        raise app.UsageError(str(err)) from err
    # These benchmarks train the from-scratch variants: their budget, written out so the
    # records say it (the app leaves it None, to pick per variant).
    return dataclasses.replace(config, epochs=config.epochs or train.DEFAULT_EPOCHS,
                               batch_size=config.batch_size or train.DEFAULT_BATCH_SIZE)


def _mean(values):
    return statistics.fmean(values) if values else float("nan")


def _fmt(values, digits=3):
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{_mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def markdown(record: dict) -> str:
    variants = list(dict.fromkeys(r["variant"] for r in record["results"]))
    seeds = sorted({r["seed"] for r in record["results"]})
    domains = sorted({d for r in record["results"] for d in r["out_of_domain"]})
    lines = [
        f"Sentiment variants on `{record['dataset']}` ({record['results'][0]['epochs']} epochs, "
        f"best epoch on validation, seeds {', '.join(map(str, seeds))}; "
        f"{record['machine']['cpus_usable']} usable CPU cores, load average at end "
        f"{record['machine']['load_average_at_end'][0]:.1f})"
        + ("; config overrides " + " ".join(f"`--config={p}`" for p in overrides)
           if (overrides := record.get("config_overrides")) else "") + ".",
        "",
        "| variant | movies test acc | " + " | ".join(f"{d} acc (OOD)" for d in domains)
        + " | train time (s) | train CPU time (s) | params |",
        "|---|---|" + "---|" * len(domains) + "---|---|---|",
    ]
    for variant in variants:
        rows = [r for r in record["results"] if r["variant"] == variant]
        cells = [_fmt([r["test_accuracy"] for r in rows])]
        cells += [_fmt([r["out_of_domain"][d] for r in rows]) for d in domains]
        cells += [_fmt([r["train_seconds"] for r in rows], 0),
                  _fmt([r["train_cpu_seconds"] for r in rows], 0), str(rows[0]["params"])]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    paired = paired_differences(record)
    if paired:
        lines += [
            "",
            f"Paired by seed against `{BASELINE}` (a seed fixes the data order and the "
            "initialisation): movies test accuracy difference, mean with a 95% "
            "bootstrap interval over seeds, and how many seeds it won / tied / lost.",
            "",
            "| variant | mean difference | 95% interval | won / tied / lost |",
            "|---|---|---|---|",
        ]
        for variant, p in paired.items():
            interval = ("–" if p["low"] is None
                        else f"[{p['low']:+.4f}, {p['high']:+.4f}]")
            lines.append(f"| {variant} | {p['mean']:+.4f} | {interval} | "
                         f"{p['won']} / {p['tied']} / {p['lost']} |")
    return "\n".join(lines) + "\n"


BASELINE = "mean_pooling"


def paired_differences(record: dict) -> dict:
    """`{variant: mean, low, high, won, tied, lost}`: test accuracy minus the baseline's,
    over the seeds both ran (the interval is None with fewer than 3 seeds)."""
    by_seed = {(r["variant"], r["seed"]): r["test_accuracy"] for r in record["results"]}
    out = {}
    for variant in dict.fromkeys(r["variant"] for r in record["results"]):
        if variant == BASELINE:
            continue
        seeds = sorted(s for v, s in by_seed if v == variant and (BASELINE, s) in by_seed)
        if not seeds:
            continue
        diffs = [by_seed[(variant, s)] - by_seed[(BASELINE, s)] for s in seeds]
        interval = _common.bootstrap_interval(diffs, statistics.fmean)
        out[variant] = {
            "mean": statistics.fmean(diffs),
            "low": interval[1] if interval else None,
            "high": interval[2] if interval else None,
            "won": sum(d > 0 for d in diffs),
            "tied": sum(d == 0 for d in diffs),
            "lost": sum(d < 0 for d in diffs),
            "seeds": seeds,
            "differences": diffs,
        }
    return out
