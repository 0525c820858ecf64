"""What every benchmark shares: the machine, timing, isolated runs, result files.

- `machine_info()`: CPU model, cores, memory, load average, Python / TensorFlow /
  Keras versions (read from the installed metadata: nothing is imported).
- `time_calls(fn, ...)`: median of repeated calls with the warm-up excluded;
  `time_interleaved({name: fn}, ...)`: the same for several functions called
  in turn (fair ratios when the machine's load changes).
- `run_forked(fn, ...)` / `run_subprocess(argv, ...)`: one measurement in a
  process of its own, with its peak resident set size (the child's own
  high-water mark from `wait4`, i.e. `ru_maxrss`), a wall-clock limit and a
  memory cap. Running out of memory is reported as such (`status="oom"`:
  TensorFlow's `ResourceExhaustedError`, `MemoryError`, the cap, or a SIGKILL
  from the kernel), never as a hang or a missing row.
- `paired_by_seed(...)` / `paired_t_interval(...)`: differences from a baseline
  paired by seed, their mean and Student-t interval (`t_quantile`).
- `write_results(...)`: `<name>.json` and `<name>.md` under `benchmarks/results/`.

`run_forked` forks the calling process: call it from a parent that has
imported TensorFlow but never executed an op (the TensorFlow runtime and its
thread pools then start in each child, as in a fresh process, without paying
for the import again). `run_subprocess` starts a new interpreter instead (for
measurements that must not share anything with the parent, e.g. a SavedModel
loaded in a process that does not import the project).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import os
import pickle
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

GIB = 1024**3
MIB = 1024**2
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# Put first in a `python -c` script: from then on nothing of this project can be
# imported (the project is installed in editable mode), as where TF Serving runs
# a SavedModel: TensorFlow, numpy, and nothing of ours.
ISOLATION_PRELUDE = """
import importlib.abc, sys
class _Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("keras_attention", "apps", "tests", "benchmarks"):
            raise ImportError(f"{name} must not be importable where models are served")
        return None
sys.meta_path.insert(0, _Refuse())
sys.path = [p for p in sys.path if p not in ("", ".")]
import json, os, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
"""

_OOM_MARKERS = ("ResourceExhausted", "OOM", "out of memory", "bad_alloc", "MemoryError")


# ----------------------------------------------------------------------------- machine
def _cpuinfo() -> dict:
    info = {"model": platform.processor() or platform.machine(), "flags": []}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and "model_name" not in info:
            info["model_name"] = value
        elif key == "cache size" and "cache" not in info:
            info["cache"] = value
        elif key == "flags" and not info["flags"]:
            wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile")
            info["flags"] = [f for f in wanted if f in value.split()]
    if "model_name" in info:
        info["model"] = info.pop("model_name")
    return info


def _meminfo() -> dict:
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    """The machine a benchmark ran on; call it at the start (it records the load)."""
    cpu = _cpuinfo()
    mem = _meminfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {
        "cpu_model": cpu.get("model"),
        "cpu_cache": cpu.get("cache"),
        "cpu_flags": cpu.get("flags", []),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_total_bytes": mem.get("MemTotal"),
        "memory_available_bytes_at_start": mem.get("MemAvailable"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow") or _version("tensorflow-cpu"),
        "keras": _version("keras"),
        "started_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def cpu_kind(machine: dict) -> str:
    """The CPU model and its widest vector extension, e.g. "AMD EPYC (AVX-512)": machines
    of one model name differ in it, and timings compare only within one kind."""
    cpu_flags = machine.get("cpu_flags")
    if not cpu_flags:
        return f"{machine.get('cpu_model')}"
    isa = ("AMX" if "amx_tile" in cpu_flags else "AVX-512" if "avx512f" in cpu_flags
           else "AVX2" if "avx2" in cpu_flags else "no AVX2")
    return f"{machine.get('cpu_model')} ({isa})"


def machine_line(machine: dict) -> str:
    """One markdown line describing `machine_info()` (plus the load at the end if known)."""
    load = machine.get("load_average_at_start") or []
    end = machine.get("load_average_at_end")
    mem = machine.get("memory_total_bytes")
    parts = [
        cpu_kind(machine),
        f"{machine.get('cores_usable')} usable of {machine.get('cores')} cores",
        f"{mem / GIB:.1f} GiB RAM" if mem else None,
        f"TensorFlow {machine.get('tensorflow')}, Keras {machine.get('keras')}",
        f"load average (1/5/15 min) {'/'.join(str(x) for x in load)} at start"
        + (f", {'/'.join(str(x) for x in end)} at end" if end else ""),
        machine.get("started_utc"),
    ]
    return "; ".join(p for p in parts if p)


def peak_rss_self() -> int | None:
    """This process's resident set size high-water mark (VmHWM) in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _rss_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# ------------------------------------------------------------------------------ timing
def time_calls(fn, repeats=5, warmup=1, budget_s=None, single_call_s=None) -> dict:
    """Median wall time of `fn()` over `repeats` calls after `warmup` untimed calls.

    Args:
        fn: the call to time; it must block until its result exists.
        repeats: the most timed calls.
        warmup: calls before timing (tracing, compilation, caches), excluded.
        budget_s: stop timing once the timed calls add up to this (at least one
            timed call is made).
        single_call_s: if the first warm-up call alone takes at least this long,
            it is the measurement (one call, flagged `first_call=True`): one-off
            costs are then small next to the call, and a second call would double
            the run.

    Returns:
        `{"median_s", "times_s", "n", "warmup_s", "first_call"}`.
    """
    warm = []
    for i in range(max(warmup, 0)):
        start = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - start)
        if i == 0 and single_call_s is not None and warm[0] >= single_call_s:
            return {
                "median_s": warm[0],
                "times_s": [warm[0]],
                "n": 1,
                "warmup_s": [],
                "first_call": True,
            }
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if budget_s is not None and sum(times) >= budget_s:
            break
    return {
        "median_s": statistics.median(times),
        "times_s": times,
        "n": len(times),
        "warmup_s": warm,
        "first_call": False,
    }


def time_interleaved(fns: dict, repeats=5, warmup=1, budget_s=None) -> dict:
    """`time_calls` for several functions called in turn, for fair ratios on a busy machine.

    Each round calls every function once (the order rotates from round to round),
    so a change in the machine's load hits all of them alike. `budget_s` is per
    function: timing stops once all timed calls add up to `budget_s * len(fns)`.

    Returns:
        `{name: {"median_s", "times_s", "n", "warmup_s", "first_call": False}}`.
    """
    names = list(fns)
    warm = {n: [] for n in names}
    for _ in range(max(warmup, 0)):
        for n in names:
            start = time.perf_counter()
            fns[n]()
            warm[n].append(time.perf_counter() - start)
    times = {n: [] for n in names}
    for r in range(max(repeats, 1)):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            start = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - start)
        total = sum(sum(t) for t in times.values())
        if budget_s is not None and total >= budget_s * len(names):
            break
    return {
        n: {"median_s": statistics.median(times[n]), "times_s": times[n], "n": len(times[n]),
            "warmup_s": warm[n], "first_call": False}
        for n in names
    }


def bootstrap_interval(values, statistic=statistics.median, confidence=0.95, resamples=2000,
                       seed=0):
    """`(statistic(values), low, high)`: a percentile bootstrap interval of the statistic.

    Returns None with fewer than 3 values.
    """
    values = list(values)
    n = len(values)
    if n < 3:
        return None
    rng = random.Random(seed)
    stats = sorted(statistic(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1.0 - confidence) / 2.0
    low = stats[int(tail * (resamples - 1))]
    high = stats[int(round((1.0 - tail) * (resamples - 1)))]
    return statistic(values), low, high


def paired_ratio_interval(times, reference_times, confidence=0.95, resamples=2000, seed=0):
    """Median of the per-round ratios `times[i] / reference_times[i]`, with a bootstrap interval.

    The two lists come from `time_interleaved` (round `i` called both functions
    back to back), so pairing them cancels most load changes. Returns
    `(median, low, high)`, or None with fewer than 3 pairs. A ratio whose whole
    interval lies above 1.0 is slower beyond the measurement's noise.
    """
    n = min(len(times), len(reference_times))
    ratios = [a / b for a, b in zip(times[:n], reference_times[:n], strict=True)]
    return bootstrap_interval(ratios, statistics.median, confidence, resamples, seed)


# Two-sided 95% quantiles (the 97.5% point) of Student's t by degrees of freedom, for
# when scipy is not installed.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228}


def t_quantile(df: int, confidence: float = 0.95) -> float:
    """The two-sided `confidence` quantile of Student's t with `df` degrees of freedom.

    scipy's `stats.t.ppf` when scipy is installed; else, for 95% only, a table for
    df 1..10 and its Cornish-Fisher expansion beyond (2.2009 for 2.2010 at df = 11,
    closer beyond). Raises ValueError for df < 1, a confidence outside (0, 1), or
    another confidence without scipy.
    """
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be a positive integer, got {df!r}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    try:
        from scipy import stats
    except ImportError:
        stats = None
    if stats is not None:
        return float(stats.t.ppf(0.5 + confidence / 2, df))
    if confidence != 0.95:
        raise ValueError(f"confidence={confidence} needs scipy (without it: 0.95 only).")
    if df in _T975:
        return _T975[df]
    z = 1.959964
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def paired_t_interval(differences, confidence: float = 0.95,
                      test_train_ratio: float = 0.0) -> dict:
    """Mean of paired differences (one per seed, or per cross-validation fold) with its
    Student-t interval.

    `half_width = t(confidence, n - 1) * sd * sqrt(1/n + test_train_ratio)` over the
    n differences: `sd / sqrt(n)` for independent runs (ratio 0); for the folds of
    a cross-validation, whose training sets overlap, the ratio of test to training
    examples of a fold widens it (Nadeau & Bengio 2003, the corrected resampled
    t-test), since the folds' differences are correlated. `half_width`, `low` and
    `high` are None with one difference. Returns `{"mean", "half_width", "low",
    "high", "n", "won", "tied", "lost"}` (won: differences > 0). Raises ValueError
    for no differences.
    """
    differences = [float(d) for d in differences]
    n = len(differences)
    if not n:
        raise ValueError("paired_t_interval needs at least one difference, got none.")
    mean = statistics.fmean(differences)
    if test_train_ratio < 0:
        raise ValueError(f"test_train_ratio must be >= 0, got {test_train_ratio!r}.")
    half = (t_quantile(n - 1, confidence) * statistics.stdev(differences)
            * (1.0 / n + test_train_ratio) ** 0.5 if n > 1 else None)
    return {"mean": mean, "half_width": half, "low": None if half is None else mean - half,
            "high": None if half is None else mean + half, "n": n,
            "won": sum(d > 0 for d in differences), "tied": sum(d == 0 for d in differences),
            "lost": sum(d < 0 for d in differences)}


def paired_by_seed(runs, arm_key: str, arm: str, baseline: str, value: str,
                   confidence: float = 0.95, unit: str = "seed",
                   test_train_ratio: float = 0.0) -> dict | None:
    """`arm`'s `value` minus `baseline`'s over the seeds both ran, with a t interval.

    `runs` are dicts with `"seed"`, `arm_key` (e.g. `"variant"`) and `value`
    (e.g. `"test_accuracy"`); a seed fixes the initialisation and the data
    order, so the same seed pairs two runs. `unit` names another key to pair by
    (`"fold"` for a cross-validation, with its `test_train_ratio`: see
    `paired_t_interval`). Returns `paired_t_interval`'s dict plus `"seeds"` (the
    units paired) and `"differences"`, or None when no seed has both. Raises
    ValueError when an arm ran one seed twice (the pairing would be ambiguous).
    """
    values = {}
    for r in runs:
        key = (r[arm_key], r[unit])
        if key in values:
            raise ValueError(f"{arm_key}={key[0]!r} has two runs with {unit} {key[1]}; "
                             f"expected one per {unit}.")
        values[key] = r[value]
    seeds = sorted(s for a, s in values if a == arm and (baseline, s) in values)
    if not seeds:
        return None
    diffs = [values[(arm, s)] - values[(baseline, s)] for s in seeds]
    return {**paired_t_interval(diffs, confidence, test_train_ratio), "seeds": seeds,
            "differences": diffs}


def claim_verdict(paired: dict | None, claim: float) -> str:
    """A claim "arm >= baseline + `claim`" read on a paired 95% interval
    (`paired_by_seed`'s dict): `holds` when the interval lies at or above `claim`,
    `fails` when it lies below, else `undecided`; one seed gives no interval:
    `undecided (1 seed)`; no pair: `–`."""
    if paired is None:
        return "–"
    if paired["low"] is None:
        return "undecided (1 seed)"
    if paired["low"] >= claim:
        return "holds"
    if paired["high"] < claim:
        return "fails"
    return "undecided"


# ---------------------------------------------------------------------- isolated runs
@dataclasses.dataclass
class RunResult:
    """The outcome of one isolated run.

    `status` is `"ok"`, `"oom"` (out of memory: an allocation failed, the memory
    cap was passed, or the kernel killed the process), `"timeout"` or `"error"`.
    `peak_rss_bytes` is the child's own resident set size high-water mark.
    """

    status: str
    value: object = None
    peak_rss_bytes: int | None = None
    wall_s: float = 0.0
    reason: str = ""
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""


def is_oom(exc: BaseException) -> bool:
    """Whether `exc` means the process ran out of memory."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    if name in ("ResourceExhaustedError", "ResourceExhausted"):
        return True
    return any(m in str(exc)[:2000] for m in _OOM_MARKERS)


def _watch(pid, timeout_s, mem_cap_bytes, poll_s):
    """Waits for `pid`; kills it past the time limit or the memory cap.

    Returns `(wait_status, peak_bytes, killed_reason)`.
    """
    start = time.monotonic()
    seen = 0
    killed = ""
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            peak = max(seen, usage.ru_maxrss * 1024)  # ru_maxrss is in KiB on Linux
            return status, peak, killed
        rss = _rss_of(pid)
        if rss:
            seen = max(seen, rss)
        if not killed:
            if mem_cap_bytes and rss and rss > mem_cap_bytes:
                killed = (
                    f"out of memory: resident set {rss / GIB:.2f} GiB passed the cap of "
                    f"{mem_cap_bytes / GIB:.2f} GiB"
                )
            elif timeout_s and time.monotonic() - start > timeout_s:
                killed = f"timeout: still running after {timeout_s:.0f} s"
            if killed:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(poll_s)


def _status_from_wait(status: int, killed: str, fallback_reason: str = ""):
    if killed:
        return ("oom" if killed.startswith("out of memory") else "timeout"), killed, None
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGKILL:
            return "oom", "killed by SIGKILL (the kernel's out-of-memory killer)", -sig
        return "error", f"killed by signal {sig}", -sig
    code = os.WEXITSTATUS(status)
    return ("ok" if code == 0 else "error"), fallback_reason, code


def run_forked(fn, *args, timeout_s=None, mem_cap_bytes=None, poll_s=0.05) -> RunResult:
    """Runs `fn(*args)` in a forked child; returns its (picklable) value and peak RSS.

    An exception in `fn` gives `status="oom"` if it means out of memory (see
    `is_oom`) and `"error"` otherwise, with the message in `reason`.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    fd, path = tempfile.mkstemp(prefix="bench-", suffix=".pkl")
    os.close(fd)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            try:
                payload = ("ok", fn(*args))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                kind = "oom" if is_oom(exc) else "error"
                msg = f"{type(exc).__name__}: {str(exc).strip()[:500]}"
                payload = (kind, msg + "\n" + traceback.format_exc(limit=6)[-1500:])
                code = 3
            with open(path, "wb") as f:
                pickle.dump(payload, f)
        except BaseException:  # noqa: BLE001
            code = 4
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    status, peak, killed = _watch(pid, timeout_s, mem_cap_bytes, poll_s)
    wall = time.monotonic() - start
    payload = None
    try:
        with open(path, "rb") as f:
            payload = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        pass
    finally:
        os.unlink(path)
    kind, reason, code = _status_from_wait(status, killed)
    result = RunResult(kind, peak_rss_bytes=peak or None, wall_s=wall, reason=reason,
                       returncode=code)
    if payload is not None and not killed:
        if payload[0] == "ok":
            result.value = payload[1]
        else:
            result.status, result.reason = payload[0], payload[1]
    elif result.status == "ok":
        result.status, result.reason = "error", "the child exited without a result"
    return result


def run_subprocess(argv, timeout_s=None, mem_cap_bytes=None, env=None, cwd=None,
                   poll_s=0.05) -> RunResult:
    """Runs `argv` in a new process; `stdout`/`stderr` captured, peak RSS measured.

    `status` is `"ok"` for exit code 0; `"oom"` when the cap was passed, the
    process was SIGKILLed, or its stderr names an out-of-memory error; else
    `"error"` / `"timeout"`.
    """
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
        status, peak, killed = _watch(proc.pid, timeout_s, mem_cap_bytes, poll_s)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by _watch
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    kind, reason, code = _status_from_wait(status, killed)
    if kind == "error":
        tail = stderr.strip().splitlines()[-3:]
        reason = reason or " | ".join(tail)[-500:]
        if any(m in stderr[-5000:] for m in _OOM_MARKERS):
            kind = "oom"
    return RunResult(kind, peak_rss_bytes=peak or None, wall_s=time.monotonic() - start,
                     reason=reason, returncode=code, stdout=stdout, stderr=stderr)


# ----------------------------------------------------------------------------- output
def markdown_table(headers, rows) -> str:
    """A GitHub markdown table; cells are converted with `str`."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join("" if c is None else str(c) for c in row) + " |")
    return "\n".join(lines)


def fmt_bytes(n) -> str:
    if n is None:
        return "–"
    if abs(n) >= GIB:
        return f"{n / GIB:.2f} GiB"
    return f"{n / MIB:.0f} MiB"


def fmt_seconds(s) -> str:
    if s is None:
        return "–"
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 1:
        return f"{s:.2f} s"
    return f"{s * 1000:.3g} ms"


def recorded_runs(path: str, identity: dict) -> list[dict]:
    """The `"runs"` of the `write_results` JSON at `path` when it was written with the same
    `identity` (its `meta["identity"]`, compared as JSON), so a benchmark that was stopped
    (or that spans sessions) goes on where it stopped; [] when there is no such file or it
    records another setting. A file that is not such a JSON is a ValueError naming it
    (nothing is overwritten)."""
    if not os.path.exists(path):
        return []
    try:
        with open(path) as f:
            record = json.load(f)
        recorded = record["meta"].get("identity")
        runs = record["runs"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} is not a benchmark record to resume from ({err!r}); move "
                         "it away, or pass --noresume to start again.") from None
    if recorded != json.loads(json.dumps(identity)):
        return []
    return list(runs)


def write_results(name: str, record: dict, markdown: str, out_dir: str | None = None):
    """Writes `<out_dir>/<name>.json` and `<name>.md` (each atomically); returns both paths."""
    out_dir = out_dir or RESULTS_DIR
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for ext, text in (("json", json.dumps(record, indent=1, sort_keys=False) + "\n"),
                      ("md", markdown.rstrip() + "\n")):
        path = os.path.join(out_dir, f"{name}.{ext}")
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        paths.append(path)
    return tuple(paths)


def publish(name: str, record: dict, table: str, out_dir: str | None = None) -> tuple:
    """Prints `table` and writes the record and the table (`write_results`), saying where."""
    print(table)
    paths = write_results(name, record, table, out_dir=out_dir)
    print("Wrote", ", ".join(paths))
    return paths


def parse_arm(text: str) -> dict:
    """`'a=1;b=true'` -> `{'a': 1, 'b': True}` (ints, floats, booleans and None parsed)."""
    out = {}
    for item in filter(None, text.split(";")):
        if "=" not in item:
            raise ValueError(f"An arm's {item!r} is not field=value.")
        key, value = item.split("=", 1)
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            out[key.strip()] = lowered == "true"
        elif lowered == "none":
            out[key.strip()] = None
        else:
            try:
                out[key.strip()] = int(value)
            except ValueError:
                try:
                    out[key.strip()] = float(value)
                except ValueError:
                    out[key.strip()] = value.strip()
    return out


def write_step_results(benchmark: str, results: dict, meta: dict, output: str,
                       unit: str = "s / step", scale: float = 1.0,
                       extra_columns: dict | None = None):
    """Prints and writes an A/B step-time table (`output` JSON and its `.md`).

    Args:
        benchmark: the module under `benchmarks` (for the command line in the markdown).
        results: `{arm: {"seconds_per_step", ...}}`, the first arm the reference; a
            `params` column when every arm has `params`.
        meta: what the run was (sizes, counts); the machine and load are added.
        output: the JSON path; the markdown goes beside it.
        unit, scale: the time column's heading and the factor from seconds to it.
        extra_columns: `{heading: key}` further columns from each arm's results.
    """
    extra = {"params": "params"} if all("params" in r for r in results.values()) else {}
    extra.update(extra_columns or {})
    first = next(iter(results.values()))["seconds_per_step"]
    lines = [f"| arm | {unit} (median) | vs first |" + "".join(f" {h} |" for h in extra),
             "|---|---|---|" + "---|" * len(extra)]
    for name, r in results.items():
        lines.append(f"| {name} | {scale * r['seconds_per_step']:.4f} | "
                     f"{r['seconds_per_step'] / first:.2f}x |"
                     + "".join(f" {r[k]:,} |" if isinstance(r[k], int) else f" {r[k]} |"
                               for k in extra.values()))
    meta = {"machine": machine_info(), "load_average": os.getloadavg(), **meta}
    print("\n".join(lines))
    print(json.dumps(meta))
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    with open(output, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    with open(os.path.splitext(output)[0] + ".md", "w") as f:
        f.write(f"`python -m benchmarks.{benchmark} {' '.join(sys.argv[1:])}`, "
                f"CPU: {meta['machine']['cpu_model']}, "
                f"load average {meta['load_average'][0]:.1f}\n\n")
        f.write("\n".join(lines) + "\n")
