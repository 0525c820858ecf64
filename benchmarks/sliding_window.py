"""Sliding-window attention on the chunked path: time and memory linear in T.

`keras_attention.ops.scaled_dot_product_attention(..., is_causal=True,
window=W, chunk_size=C)` visits, for each query block, only the key chunks the
band reaches (and backward, for each key block, only the query blocks), a
number that does not depend on T. So, for a fixed window, forward + backward
should cost time proportional to T, and memory `O(T · dim)`.

Each length runs in a process of its own (a new interpreter, TensorFlow backend,
`tf.function`): it builds random `(B, H, T, d)` float32 queries, keys and
values, makes one warm-up call (tracing) of the forward pass + the gradients
with respect to all three (loss `sum(out²)`), then times up to `--repeats`
calls (median). Its peak is the process's resident-set high-water mark
(`ru_maxrss`), reported as is and minus the baseline of a process that started
TensorFlow and ran one tiny op. A last process runs the forward pass alone at
the longest length, for its peak (where the memory goes: forward vs backward).
A check process first compares the chunked banded path with the plain path
(which forms the full masked `(T, T)` scores) at a small T, in values and
gradients.

The work counted per call is that of the tiles the passes visit (from
`_chunked.tiles_per_block`): forward `4·B·H·d` FLOP per visited score entry
(`Q Kᵀ` and `P V`), backward `10·B·H·d` (`S` recomputed, `dP`, `dV`, `dQ`, `dK`).

Usage (from the repository root):

    python benchmarks/sliding_window.py           # T = 8192 and 65536 (~2 min on 2 cores)
    python benchmarks/sliding_window.py --tiny    # seconds (CI)

Writes `benchmarks/results/sliding_window.json` and `.md`
(`sliding_window_tiny.*` with `--tiny`).

Targets (issue 19): the time ratio of the longest to the shortest length within
10% of their length ratio (8 for 65,536 / 8,192), and a peak under 2 GiB at
T = 65,536 (B=1, H=4, d=64, causal window 512).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

_TINY = dict(seq_lens="128,512", window=16, heads=2, dim=8, chunk_size=16, repeats=2,
             check_len=64)


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq_lens", default="8192,65536", help="comma-separated T")
    p.add_argument("--window", type=int, default=512, help="causal window (keys before)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--chunk_size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--check_len", type=int, default=1024,
                   help="T of the check against the plain path")
    p.add_argument("--timeout_s", type=float, default=1200)
    p.add_argument("--mem_cap_gib", type=float, default=8.0)
    p.add_argument("--tiny", action="store_true", help="tiny shapes, seconds (CI)")
    p.add_argument("--out_dir", default=None)
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tiny:
        for name, value in _TINY.items():
            setattr(args, name, value)
    args.seq_lens = [int(t) for t in str(args.seq_lens).split(",")]
    return args


# --------------------------------------------------------------------------- children
def _child(args) -> dict:
    """One measurement (`--_child=baseline | check | <T>`), as a JSON-able dict."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    from keras_attention.ops import scaled_dot_product_attention as sdpa

    if args._child == "baseline":
        tf.reduce_sum(tf.ones((4, 4))).numpy()
        return {}

    if args._child.startswith("forward:"):
        t = int(args._child.split(":")[1])
        rng = np.random.default_rng(0)
        q, k, v = (tf.constant(rng.normal(size=(args.batch, args.heads, t, args.dim)),
                               tf.float32) for _ in range(3))
        fn = tf.function(lambda q, k, v: sdpa(q, k, v, is_causal=True, window=args.window,
                                              chunk_size=args.chunk_size))
        return {"T": t, **_common.time_calls(lambda: fn(q, k, v).numpy(),
                                             repeats=args.repeats, warmup=1)}

    def fwd_bwd(chunk_size):
        @tf.function
        def fn(q, k, v):
            with tf.GradientTape() as tape:
                tape.watch([q, k, v])
                out = sdpa(q, k, v, is_causal=True, window=args.window, chunk_size=chunk_size)
                loss = tf.reduce_sum(out * out)
            return [out, *tape.gradient(loss, [q, k, v])]

        return fn

    t = args.check_len if args._child == "check" else int(args._child)
    rng = np.random.default_rng(0)
    q, k, v = (tf.constant(rng.normal(size=(args.batch, args.heads, t, args.dim)), tf.float32)
               for _ in range(3))
    if args._child == "check":
        got = fwd_bwd(args.chunk_size)(q, k, v)
        expected = fwd_bwd(None)(q, k, v)
        errors = [float(np.max(np.abs(a.numpy() - b.numpy())))
                  for a, b in zip(got, expected, strict=True)]
        return {"T": t, "max_abs_errors": dict(zip(("out", "dq", "dk", "dv"), errors, strict=True)),
                "ok": max(errors) < 1e-4}
    fn = fwd_bwd(args.chunk_size)
    timing = _common.time_calls(lambda: [x.numpy() for x in fn(q, k, v)],
                                repeats=args.repeats, warmup=1)
    return {"T": t, **timing}


def _run_child(args, what):
    argv = [sys.executable, os.path.abspath(__file__), f"--_child={what}",
            f"--window={args.window}", f"--batch={args.batch}", f"--heads={args.heads}",
            f"--dim={args.dim}", f"--chunk_size={args.chunk_size}",
            f"--repeats={args.repeats}", f"--check_len={args.check_len}"]
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = _common.run_subprocess(argv, timeout_s=args.timeout_s,
                                    mem_cap_bytes=int(args.mem_cap_gib * _common.GIB), env=env)
    row = {"status": result.status, "peak_rss_bytes": result.peak_rss_bytes,
           "wall_s": round(result.wall_s, 2)}
    if result.status == "ok":
        row.update(json.loads(result.stdout.strip().splitlines()[-1]))
    else:
        row["reason"] = result.reason
    return row


# ----------------------------------------------------------------------------- parent
def _tile_work(args, t):
    """`(forward, backward)` FLOP of the tiles the passes visit at length `t`."""
    from keras_attention.ops import _chunked

    tiling = _chunked.Tiling(args.chunk_size)
    window = (args.window, 0)
    fwd_trip, bwd_trip = _chunked.tiles_per_block(t, t, tiling, window, causal_offset=0)
    fwd = _chunked._pass_layout(t, t, tiling, window, forward=True)
    bwd = _chunked._pass_layout(t, t, tiling, window, forward=False)
    fwd_entries = fwd.nq * fwd.bq * fwd_trip * fwd.c  # query rows x visited keys
    bwd_entries = bwd.n * bwd.c * bwd_trip * bwd.bq  # keys x visited query rows
    per_entry = args.batch * args.heads * args.dim
    return {"forward_tiles_per_block": fwd_trip, "backward_tiles_per_block": bwd_trip,
            "query_block": fwd.bq, "key_block": bwd.c,
            "flop": 4 * per_entry * fwd_entries + 10 * per_entry * bwd_entries}


def main(argv=None):
    args = _parse(argv)
    if args._child is not None:
        print(json.dumps(_child(args)))
        return 0
    machine = _common.machine_info()
    baseline = _run_child(args, "baseline")
    check = _run_child(args, "check")
    cases = []
    for t in args.seq_lens:
        row = _run_child(args, str(t))
        row.update(_tile_work(args, t))
        if row["status"] == "ok":
            row["gflops"] = round(row["flop"] / row["median_s"] / 1e9, 2)
            if baseline.get("peak_rss_bytes"):
                row["peak_rss_over_baseline_bytes"] = (
                    row["peak_rss_bytes"] - baseline["peak_rss_bytes"])
        row.setdefault("T", t)
        cases.append(row)
    forward = _run_child(args, f"forward:{args.seq_lens[-1]}")
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]

    shortest, longest = cases[0], cases[-1]
    targets = {}
    if all(c["status"] == "ok" for c in cases) and len(cases) > 1:
        length_ratio = longest["T"] / shortest["T"]
        time_ratio = longest["median_s"] / shortest["median_s"]
        targets["time_ratio_within_10pct_of_length_ratio"] = {
            "length_ratio": length_ratio, "time_ratio": round(time_ratio, 3),
            "relative_deviation": round(time_ratio / length_ratio - 1, 3),
            "met": abs(time_ratio / length_ratio - 1) <= 0.10}
    if longest["status"] == "ok":
        targets["peak_under_2GiB_at_longest"] = {
            "T": longest["T"], "peak_rss_bytes": longest["peak_rss_bytes"],
            "met": longest["peak_rss_bytes"] < 2 * _common.GIB}
    config = {k: getattr(args, k) for k in ("window", "batch", "heads", "dim", "chunk_size",
                                            "repeats", "seq_lens", "tiny")}
    record = {"machine": machine, "config": config, "baseline": baseline, "check": check,
              "cases": cases, "forward_only": forward, "targets": targets}
    name = "sliding_window_tiny" if args.tiny else "sliding_window"
    _common.write_results(name, record, _markdown(record), args.out_dir)
    print(_markdown(record))
    return 0 if check.get("ok") and all(c["status"] == "ok" for c in cases) else 1


def _markdown(record) -> str:
    cfg, machine = record["config"], record["machine"]
    lines = [
        "# Sliding-window attention: chunked path, forward + backward"
        + (" (`--tiny`)" if cfg["tiny"] else ""),
        "",
        f"Machine: {_common.machine_line(machine)}.",
        "",
        f"Causal window {cfg['window']} (each query sees itself and the {cfg['window']} keys "
        f"before it), B={cfg['batch']}, H={cfg['heads']}, d={cfg['dim']}, float32, "
        f"chunk_size={cfg['chunk_size']}; TensorFlow backend, `tf.function`; each length in "
        f"a process of its own; median of up to {cfg['repeats']} calls after a warm-up call.",
        "",
    ]
    rows = []
    for c in record["cases"]:
        rows.append([c["T"], c["status"], _common.fmt_seconds(c.get("median_s")),
                     _common.fmt_bytes(c.get("peak_rss_bytes")),
                     _common.fmt_bytes(c.get("peak_rss_over_baseline_bytes")),
                     f"{c['forward_tiles_per_block']} / {c['backward_tiles_per_block']}",
                     c.get("gflops", "–")])
    lines.append(_common.markdown_table(
        ["T", "status", "time (fwd+bwd)", "peak RSS", "over baseline",
         "tiles per block (fwd / bwd)", "GFLOP/s (visited tiles)"], rows))
    lines.append("")
    base = record["baseline"].get("peak_rss_bytes")
    lines.append(f"Baseline (TensorFlow started, one tiny op): {_common.fmt_bytes(base)}.")
    fwd = record.get("forward_only") or {}
    if fwd.get("status") == "ok":
        lines.append(f"Forward pass alone at T={fwd['T']}: {_common.fmt_seconds(fwd['median_s'])}, "
                     f"peak RSS {_common.fmt_bytes(fwd['peak_rss_bytes'])} (the rest of the "
                     "fwd+bwd peak is the backward pass's).")
    check = record["check"]
    if check.get("status") == "ok":
        errs = ", ".join(f"{k} {v:.1e}" for k, v in check["max_abs_errors"].items())
        lines.append(f"Check against the plain path at T={check['T']} (max abs error): {errs} "
                     f"({'ok' if check['ok'] else 'FAILED'}).")
    else:
        lines.append(f"Check against the plain path: {check.get('status')} "
                     f"({check.get('reason')}).")
    lines += ["", "Targets:", ""]
    for name, t in record["targets"].items():
        detail = ", ".join(f"{k}={v}" for k, v in t.items() if k != "met")
        lines.append(f"- {name}: {'met' if t['met'] else 'NOT met'} ({detail})")
    load = machine.get("load_average_at_start") or [0]
    if max(load + machine.get("load_average_at_end", [0])) > 0.8 * (machine.get("cores") or 1):
        lines += ["", "The machine was shared with other work during this run (see the load "
                  "averages above): times are noisy, and ratios less reliable than on an "
                  "idle machine."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
