"""Shared measurement helpers for the benchmark scripts (not part of the library or its tests).

* Thread choice: a ~2 s probe that falls back to ``torch.set_num_threads(1)`` when torch's default
  thread count stalls on a small, oversubscribed machine (multi-threaded OpenMP/MKL kernels wait on
  descheduled sibling threads; every op can become 10-100x slower). Never sets a count > 1 by itself:
  an explicit ``torch.set_num_threads(N > 1)`` has been seen to hang inside MKL's batched eigh for
  ``n >= ~192`` on these machines.
* Interleaved timing: every method runs once per round, the order rotated from round to round, so
  that load drift on a shared machine hits all methods alike; medians and quartiles are reported.
* Peak memory of one call: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the ``[memory]``
  allocation/free events of ``torch.profiler(profile_memory=True)`` integrated in time order (the
  peak of live bytes allocated during the call through torch's allocator; LAPACK's internal
  workspaces are not seen).

Run as a script (``python _timing.py --probe``) it prints the probe time; the thread choice uses
that in a single-threaded child process.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ---------------------------------------------------------------------------------------------------
# Argument parsing


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"256x32,64x128"`` -> ``[(256, 32), (64, 128)]`` (batch x n)."""
    sizes = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        try:
            b, n = item.split("x")
            sizes.append((int(b), int(n)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad size {item!r}; expected BATCHxN, e.g. 64x128") from None
    if not sizes:
        raise argparse.ArgumentTypeError("no sizes given")
    return sizes


def parse_dtypes(text: str) -> list[str]:
    names = [d.strip() for d in text.split(",") if d.strip()]
    for d in names:
        if d not in DTYPES:
            raise argparse.ArgumentTypeError(f"bad dtype {d!r}; choose from {', '.join(DTYPES)}")
    if not names:
        raise argparse.ArgumentTypeError("no dtypes given")
    return names


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------------------------------------
# Thread-contention probe


def probe_ms(reps: int = 9, cap_s: float = 2.0) -> float:
    """Median time (ms) of a small eigh + bmm workload at the current thread count, capped at ``cap_s``."""
    gen = torch.Generator().manual_seed(1)
    A = torch.randn(64, 48, 48, generator=gen)
    X = A @ A.transpose(-2, -1) / 48 + torch.eye(48)
    ts = []
    start = time.perf_counter()
    for i in range(reps + 1):
        t0 = time.perf_counter()
        L, Q = torch.linalg.eigh(X)
        (Q * L.unsqueeze(-2)) @ Q.transpose(-2, -1)
        if i >= 1:
            ts.append(time.perf_counter() - t0)
            if time.perf_counter() - start > cap_s:
                break
    return 1e3 * statistics.median(ts)


def single_thread_probe_ms(timeout: float = 60.0) -> float | None:
    """``probe_ms`` in a child process limited to one thread (None if the child fails)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--probe"],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return float(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None


def choose_threads(threads: int | None, keep_threads: bool) -> str:
    """Apply ``--threads`` or the contention fallback; return a note for the report header."""
    if threads is not None:
        torch.set_num_threads(threads)
        return "set by --threads"
    default = torch.get_num_threads()
    if default == 1 or keep_threads:
        return "torch default"
    single = single_thread_probe_ms()
    multi = probe_ms()
    if single is None:
        return f"torch default; contention probe failed ({multi:.2f} ms at {default} threads)"
    if multi > 2.0 * single:
        torch.set_num_threads(1)
        print(
            f"warning: the machine looks oversubscribed: the probe took {multi:.2f} ms at torch's default "
            f"{default} threads vs {single:.2f} ms single-threaded; falling back to 1 thread "
            "(--keep-threads keeps the default).",
            file=sys.stderr,
        )
        return f"fallback from torch default {default}: probe {multi:.2f} ms vs {single:.2f} ms at 1 thread"
    return f"torch default; probe {multi:.2f} ms vs {single:.2f} ms at 1 thread"


# ---------------------------------------------------------------------------------------------------
# Timing


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@dataclass
class Timings:
    """Per-method lists of seconds from interleaved rounds."""

    times: dict[str, list[float]] = field(default_factory=dict)
    rounds: int = 0

    def median_ms(self, name: str) -> float:
        ts = self.times.get(name) or []
        return 1e3 * statistics.median(ts) if ts else float("nan")

    def quartiles_ms(self, name: str) -> tuple[float, float]:
        ts = sorted(self.times.get(name) or [])
        if not ts:
            return float("nan"), float("nan")
        if len(ts) < 4:
            return 1e3 * ts[0], 1e3 * ts[-1]
        q = statistics.quantiles(ts, n=4, method="inclusive")
        return 1e3 * q[0], 1e3 * q[2]


def interleaved(
    items: Sequence[tuple[str, Callable[[], object]]],
    *,
    repeats: int,
    min_repeats: int,
    budget_s: float,
    start: float,
    device: torch.device | str = "cpu",
) -> Timings:
    """Time every item once per round, rotating the order; stop after ``repeats`` rounds, or earlier once
    ``min_repeats`` rounds are done and ``budget_s`` seconds have passed since ``start`` (0 = no budget).

    The garbage collector is disabled inside a round (and run between rounds) so that a collection never
    lands inside one method's timing.
    """
    res = Timings(times={name: [] for name, _ in items})
    gc_was_enabled = gc.isenabled()
    for rep in range(repeats):
        k = rep % len(items)
        order = list(items[k:]) + list(items[:k])
        gc.collect()
        gc.disable()
        try:
            for name, fn in order:
                synchronize(device)
                t0 = time.perf_counter()
                fn()
                synchronize(device)
                res.times[name].append(time.perf_counter() - t0)
        finally:
            if gc_was_enabled:
                gc.enable()
        res.rounds = rep + 1
        if budget_s > 0 and res.rounds >= min_repeats and time.perf_counter() - start > budget_s:
            break
    return res


# ---------------------------------------------------------------------------------------------------
# Peak memory of one call


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str) -> int | None:
    """Peak bytes of tensors allocated during one call of ``fn`` (outputs included, inputs allocated
    before the call excluded). None if the measurement failed."""
    device = torch.device(device)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del out
        return int(peak)
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = fn()
            del out  # frees count as negative events, so the peak is the true high-water mark
        fd, path = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        try:
            prof.export_chrome_trace(path)
            with open(path, encoding="utf-8") as fh:
                events = json.load(fh)["traceEvents"]
        finally:
            os.remove(path)
    except Exception:  # noqa: BLE001 - a profiler quirk must not kill the benchmark
        return None
    mem = [e for e in events if e.get("name") == "[memory]" and e.get("args", {}).get("Device Type", 0) == 0]
    live = peak = 0
    for e in sorted(mem, key=lambda e: e["ts"]):
        live += int(e["args"]["Bytes"])
        peak = max(peak, live)
    return peak


# ---------------------------------------------------------------------------------------------------
# Tables


def format_plain(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1, group: int = 0) -> str:
    """Aligned text table; the first ``left`` columns are left-aligned; a blank line whenever the first
    ``group`` columns change."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    prev = None
    for row in rows:
        key = tuple(row[:group])
        if group and prev is not None and key != prev:
            lines.append("")
        lines.append(fmt(row))
        prev = key
    return "\n".join(lines)


def format_markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe"]:
        print(f"{probe_ms():.6f}")
