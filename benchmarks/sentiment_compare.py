"""Several configurations' `sentiment_domains.py` records side by side, paired by seed.

Each arm is one record of `benchmarks/sentiment_domains.py` (run with the same
`--seeds`); every row (held-out domain, or a domain's test split when trained
on all four) shows each arm's accuracy (mean over seeds), the VADER lexicon's,
and each arm minus the baseline arm paired by seed with a 95% Student-t
interval. Two summary rows average the four held-out domains and the four
in-domain test splits per seed first.

    python benchmarks/sentiment_domains.py --seeds=1,2,3 --name=domains_none
    python benchmarks/sentiment_domains.py --seeds=1,2,3 --name=domains_prior \\
        --config=model.lexicon=vader --config=model.lexicon_prior=4
    python benchmarks/sentiment_compare.py --baseline=none \\
        --arms=none=benchmarks/results/domains_none.json,prior=benchmarks/results/domains_prior.json

Writes `benchmarks/results/<name>.{json,md}` (default `sentiment_compare`).
"""

from __future__ import annotations

import json
import os
import statistics
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import _common  # noqa: E402

_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
HELD_OUT_MEAN = "mean of the 4 held-out domains"
IN_DOMAIN_MEAN = "mean of the 4 test splits"


def scores(record: dict) -> dict:
    """`{(row, seed): (accuracy, lexicon accuracy)}` of one sentiment_domains record; a row
    is `"<domain> held out"` or `"<domain> test (all four)"`, plus the two mean rows."""
    out = {}
    for run in record["rows"]:
        for domain, s in run["scores"].items():
            row = f"{domain} test (all four)" if run["run"] == "all" else f"{domain} held out"
            key = (row, run["seed"])
            if key in out:
                raise ValueError(f"{row!r} appears twice for seed {run['seed']}.")
            out[key] = (s["accuracy"], s["lexicon_accuracy"])
    for name, suffix in ((HELD_OUT_MEAN, " held out"), (IN_DOMAIN_MEAN, " test (all four)")):
        for seed in {s for _, s in out}:
            parts = [v for (row, s), v in out.items() if s == seed and row.endswith(suffix)]
            if parts:
                out[(name, seed)] = tuple(statistics.fmean(p[i] for p in parts) for i in (0, 1))
    return out


def compare(arms: dict[str, dict], baseline: str) -> list[dict]:
    """One dict per row: each arm's mean accuracy, the lexicon's, and each arm's paired
    difference from `baseline` (`_common.paired_t_interval`), over the seeds all arms ran."""
    if baseline not in arms:
        raise ValueError(f"baseline={baseline!r} is not one of the arms {sorted(arms)}.")
    by_arm = {name: scores(record) for name, record in arms.items()}
    rows = []
    names = sorted({row for table in by_arm.values() for row, _ in table},
                   key=lambda r: (r in (HELD_OUT_MEAN, IN_DOMAIN_MEAN), "test" in r, r))
    for row in names:
        seeds = sorted(set.intersection(*({s for r, s in t if r == row}
                                          for t in by_arm.values())))
        if not seeds:
            continue
        entry = {"row": row, "seeds": seeds,
                 "lexicon": statistics.fmean(by_arm[baseline][(row, s)][1] for s in seeds),
                 "arms": {}}
        for name, table in by_arm.items():
            values = [table[(row, s)][0] for s in seeds]
            diffs = [v - by_arm[baseline][(row, s)][0] for v, s in zip(values, seeds,
                                                                       strict=True)]
            entry["arms"][name] = {"mean": statistics.fmean(values), "values": values,
                                   "vs_baseline": _common.paired_t_interval(diffs)}
        rows.append(entry)
    return rows


def _interval(d: dict) -> str:
    if d["half_width"] is None:
        return f"{100 * d['mean']:+.1f}"
    return f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"


def table(rows: list[dict], baseline: str) -> str:
    """Markdown: accuracy per arm (mean over seeds), the lexicon, differences in points."""
    arms = list(rows[0]["arms"]) if rows else []
    others = [a for a in arms if a != baseline]
    head = (["row", "seeds"] + arms + ["VADER lexicon"]
            + [f"{a} − {baseline} (points, 95% CI)" for a in others])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["row"], str(len(r["seeds"]))]
        cells += [f"{r['arms'][a]['mean']:.3f}" for a in arms] + [f"{r['lexicon']:.3f}"]
        cells += [_interval(r["arms"][a]["vs_baseline"]) for a in others]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    arms = {}
    for item in _ARMS.value:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise app.UsageError(f"--arms entry {item!r} is not NAME=PATH.json")
        with open(path, encoding="utf-8") as f:
            arms[name] = json.load(f)
    rows = compare(arms, _BASELINE.value)
    record = {"command": " ".join(sys.argv), "baseline": _BASELINE.value,
              "sources": {n: r.get("command") for n, r in arms.items()},
              "machine": next(iter(arms.values())).get("machine"), "rows": rows}
    os.makedirs(_OUT, exist_ok=True)
    with open(os.path.join(_OUT, f"{_NAME.value}.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    markdown = (f"# Sentiment configurations compared\n\nCommand: `{record['command']}`\n\n"
                + "".join(f"- {n}: `{c}`\n" for n, c in record["sources"].items()) + "\n"
                + table(rows, _BASELINE.value))
    with open(os.path.join(_OUT, f"{_NAME.value}.md"), "w", encoding="utf-8") as f:
        f.write(markdown)
    print(markdown)


if __name__ == "__main__":
    _ARMS = flags.DEFINE_list("arms", [], "NAME=PATH.json of sentiment_domains records.")
    _BASELINE = flags.DEFINE_string("baseline", None, "The arm the others are paired with.")
    _NAME = flags.DEFINE_string("name", "sentiment_compare",
                                "Results file name under benchmarks/results/ (no suffix).")
    flags.mark_flags_as_required(["arms", "baseline"])
    app.run(main)
