"""Benchmark ``matbackprop.logm`` (forward + backward) against plain autograd through ``torch.linalg.eigh``.

Methods, all measured in ONE process, interleaved within each repetition (the order is rotated from
one repetition to the next so no method always runs first), reported as medians after warm-up:

* ``eigh forward``        ``torch.linalg.eigh(X)`` alone, no autograd: the floor for any eigh route.
* ``autograd``            ``L, Q = torch.linalg.eigh(X)``; ``Y = Q diag(log L) Q^T``; torch's own autograd
                          (its built-in eigh backward) gives ``dL/dX``.
* ``matbackprop``         ``matbackprop.logm(X, check=False)`` + backward (Daleckii-Krein).
* ``matbackprop (checks)`` ``matbackprop.logm(X)`` with the default input checks + backward.

Every forward+backward method uses the same upstream gradient ``G`` (a random, non-symmetric
matrix) and returns ``dL/dX`` via ``torch.autograd.grad``. Inputs are random SPD matrices
``A A^T / n + I``. The script also checks that the gradients agree (maximum over the batch of
``max|g - g_autograd| / max|g_autograd|``) and, for float32, compares both against a float64 reference.

Threads: by default torch's own thread count is left alone (``torch.set_num_threads`` is never called
with a value > 1). On a small machine that other processes keep busy, multi-threaded OpenMP/MKL
kernels stall on descheduled sibling threads: every op, even a 16x16 eigh, can take 10-100x longer
and a default run then takes over ten minutes. So, unless ``--keep-threads`` is given, a ~2 s probe
times a small eigh + bmm workload at torch's default thread count and in a single-threaded child
process; if the default is more than 2x slower, the benchmark falls back to
``torch.set_num_threads(1)`` (never to a larger value) and says so in its header. ``--threads N``
calls ``torch.set_num_threads(N)`` before any linear algebra; note that an explicit ``N > 1`` has been
seen to hang inside MKL's batched eigh for ``n >= ~192`` on these machines. ``--watchdog SECONDS``
(off by default) aborts with a traceback of every thread if a single size/dtype configuration takes
longer than that.

``--profile 64x128:float32`` instead breaks matbackprop's time down into its stages (input checks,
eigh forward, ``Q f(L) Q^T``, the backward's Loewner matrix, its four products, ...) with simple
timers built from the library's own pieces, and prints a ``torch.profiler`` operator table of the
real call next to plain autograd's.

Examples::

    .venv/bin/python benchmarks/bench_logm.py
    .venv/bin/python benchmarks/bench_logm.py --repeats 21 --sizes 64x128 --dtypes float32 --threads 1
    .venv/bin/python benchmarks/bench_logm.py --markdown /tmp/logm.md
    .venv/bin/python benchmarks/bench_logm.py --profile 64x128:float32
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

import matbackprop

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEFAULT_SIZES = "256x32,64x128,16x512"
DEFAULT_DTYPES = "float32,float64"

METHODS = ("eigh forward", "autograd", "matbackprop", "matbackprop (checks)")


# ---------------------------------------------------------------------------------------------------
# Inputs and the methods under test


def parse_sizes(text: str) -> list[tuple[int, int]]:
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


def make_inputs(batch: int, n: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random SPD ``X = A A^T / n + I`` (eigenvalues in about [1, 5]) and a random upstream gradient."""
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(batch, n, n, generator=gen, dtype=torch.float64)
    X = A @ A.transpose(-2, -1) / n + torch.eye(n, dtype=torch.float64)
    X = 0.5 * (X + X.transpose(-2, -1))  # exactly symmetric
    G = torch.randn(batch, n, n, generator=gen, dtype=torch.float64)
    return X.to(dtype).contiguous(), G.to(dtype).contiguous()


def eigh_forward(X: torch.Tensor, G: torch.Tensor) -> None:
    with torch.no_grad():
        torch.linalg.eigh(X)


def autograd_logm(X: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    Xl = X.detach().requires_grad_(True)
    L, Q = torch.linalg.eigh(Xl)
    Y = (Q * torch.log(L).unsqueeze(-2)) @ Q.transpose(-2, -1)
    (gX,) = torch.autograd.grad(Y, Xl, G)
    return gX


def matbackprop_logm(X: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    Xl = X.detach().requires_grad_(True)
    Y = matbackprop.logm(Xl, check=False)
    (gX,) = torch.autograd.grad(Y, Xl, G)
    return gX


def matbackprop_logm_checked(X: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    Xl = X.detach().requires_grad_(True)
    Y = matbackprop.logm(Xl)
    (gX,) = torch.autograd.grad(Y, Xl, G)
    return gX


RUNNERS: dict[str, Callable[[torch.Tensor, torch.Tensor], object]] = {
    "eigh forward": eigh_forward,
    "autograd": autograd_logm,
    "matbackprop": matbackprop_logm,
    "matbackprop (checks)": matbackprop_logm_checked,
}


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max`` over the batch of ``max|a - b| / max|b|`` (per-matrix, max-norm), computed in float64."""
    a, b = a.double(), b.double()
    num = (a - b).abs().amax(dim=(-2, -1))
    den = b.abs().amax(dim=(-2, -1)).clamp_min(torch.finfo(torch.float64).tiny)
    return float((num / den).max())


# ---------------------------------------------------------------------------------------------------
# Timing


@dataclass
class Result:
    batch: int
    n: int
    dtype: str
    times: dict[str, list[float]] = field(default_factory=dict)  # seconds
    diffs: dict[str, float] = field(default_factory=dict)
    reps: int = 0

    def median_ms(self, method: str) -> float:
        return 1e3 * statistics.median(self.times[method])

    def quartiles_ms(self, method: str) -> tuple[float, float]:
        ts = sorted(self.times[method])
        if len(ts) < 4:
            return 1e3 * ts[0], 1e3 * ts[-1]
        q = statistics.quantiles(ts, n=4, method="inclusive")
        return 1e3 * q[0], 1e3 * q[2]


def time_once(fn: Callable[[torch.Tensor, torch.Tensor], object], X: torch.Tensor, G: torch.Tensor) -> float:
    t0 = time.perf_counter()
    fn(X, G)
    return time.perf_counter() - t0


def gradient_checks(X: torch.Tensor, G: torch.Tensor) -> dict[str, float]:
    g_auto = autograd_logm(X, G)
    g_mbp = matbackprop_logm(X, G)
    g_chk = matbackprop_logm_checked(X, G)
    out = {
        "matbackprop vs autograd": max_rel_diff(g_mbp, g_auto),
        "checks vs no checks": max_rel_diff(g_chk, g_mbp),
        "autograd asymmetry": max_rel_diff(g_auto, g_auto.transpose(-2, -1)),
    }
    if X.dtype != torch.float64:
        g_ref = matbackprop_logm(X.double(), G.double())
        out["matbackprop vs f64 ref"] = max_rel_diff(g_mbp, g_ref)
        out["autograd vs f64 ref"] = max_rel_diff(g_auto, g_ref)
    return out


def bench_config(batch: int, n: int, dtype_name: str, args: argparse.Namespace) -> Result:
    dtype = DTYPES[dtype_name]
    X, G = make_inputs(batch, n, dtype, args.seed)
    res = Result(batch, n, dtype_name, times={m: [] for m in METHODS})

    if args.watchdog > 0:
        faulthandler.dump_traceback_later(args.watchdog, exit=True)

    # The budget covers the whole configuration: gradient checks, warm-up and timed repetitions.
    t_start = time.perf_counter()
    res.diffs = gradient_checks(X, G)  # also a first warm-up round of the autograd-based methods
    for w in range(args.warmup):
        if w > 0 and args.budget > 0 and time.perf_counter() - t_start > args.budget / 3:
            break
        for m in METHODS:
            RUNNERS[m](X, G)

    gc_was_enabled = gc.isenabled()
    for rep in range(args.repeats):
        order = METHODS[rep % len(METHODS):] + METHODS[: rep % len(METHODS)]
        gc.collect()
        gc.disable()
        try:
            for m in order:
                res.times[m].append(time_once(RUNNERS[m], X, G))
        finally:
            if gc_was_enabled:
                gc.enable()
        res.reps = rep + 1
        if args.budget > 0 and res.reps >= args.min_repeats and time.perf_counter() - t_start > args.budget:
            break

    if args.watchdog > 0:
        faulthandler.cancel_dump_traceback_later()
    return res


# ---------------------------------------------------------------------------------------------------
# Reporting


HEADER = ("size", "dtype", "method", "median ms", "IQR ms", "/ autograd", "/ eigh fwd", "reps")


def table_rows(results: list[Result]) -> list[tuple[str, ...]]:
    rows = []
    for r in results:
        auto = r.median_ms("autograd")
        floor = r.median_ms("eigh forward")
        for m in METHODS:
            med = r.median_ms(m)
            lo, hi = r.quartiles_ms(m)
            rows.append(
                (
                    f"{r.batch}x{r.n}",
                    r.dtype,
                    m,
                    f"{med:.2f}",
                    f"{lo:.2f}-{hi:.2f}",
                    f"{med / auto:.2f}",
                    f"{med / floor:.2f}",
                    str(r.reps),
                )
            )
    return rows


DIFF_KEYS = (
    "matbackprop vs autograd",
    "checks vs no checks",
    "matbackprop vs f64 ref",
    "autograd vs f64 ref",
    "autograd asymmetry",
)


def diff_rows(results: list[Result]) -> list[tuple[str, ...]]:
    rows = []
    for r in results:
        rows.append(
            (f"{r.batch}x{r.n}", r.dtype)
            + tuple(f"{r.diffs[k]:.2e}" if k in r.diffs else "-" for k in DIFF_KEYS)
        )
    return rows


def format_plain(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    left = {0, 1, 2} if "method" in header else {0, 1}

    def fmt(row):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    prev = None
    for row in rows:
        key = row[:2]
        if prev is not None and key != prev and "method" in header:
            lines.append("")
        lines.append(fmt(row))
        prev = key
    return "\n".join(lines)


def format_markdown(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _loadavg() -> str:
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def environment_lines(args: argparse.Namespace) -> list[str]:
    return [
        f"python {platform.python_version()}, torch {torch.__version__}, matbackprop {matbackprop.__version__}",
        f"cpu: {platform.processor() or platform.machine()}, os.cpu_count()={os.cpu_count()}, "
        f"torch threads={torch.get_num_threads()} ({args.thread_note})",
        f"repeats={args.repeats} (min {args.min_repeats}, budget {args.budget:g} s/config), warmup={args.warmup}, "
        f"seed={args.seed}, load average at start: {args.start_load}",
    ]


# ---------------------------------------------------------------------------------------------------
# Thread-contention probe


def probe_ms(reps: int = 9, cap_s: float = 2.0) -> float:
    """Median time of a small, fast eigh + bmm workload at the current thread count (ms).

    Stops after ``cap_s`` seconds (with at least one timed run) so that a stalling machine does not make
    the probe itself slow.
    """
    X, _ = make_inputs(64, 48, torch.float32, 1)
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
            [sys.executable, os.path.abspath(__file__), "--_probe"],
            env=env, capture_output=True, text=True, timeout=timeout, check=True,
        )
        return float(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None


def choose_threads(args: argparse.Namespace) -> str:
    """Apply --threads / the contention fallback; return a note for the header."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        return "set by --threads"
    default = torch.get_num_threads()
    if default == 1 or args.keep_threads:
        return "torch default"
    single = single_thread_probe_ms()
    multi = probe_ms()
    if single is None:
        return f"torch default; contention probe failed ({multi:.2f} ms at {default} threads)"
    if multi > 2.0 * single:
        torch.set_num_threads(1)
        print(
            f"warning: the machine looks oversubscribed: the probe took {multi:.2f} ms at torch's default "
            f"{default} threads vs {single:.2f} ms single-threaded, so timings would measure OpenMP stalls. "
            "Falling back to 1 thread (use --keep-threads to keep the default).",
            file=sys.stderr,
        )
        return f"fallback from torch default {default}: probe {multi:.2f} ms vs {single:.2f} ms at 1 thread"
    return f"torch default; probe {multi:.2f} ms vs {single:.2f} ms at 1 thread"


# ---------------------------------------------------------------------------------------------------
# Profiling


def _interleaved_medians_ms(items: list[tuple[str, Callable[[], object]]], repeats: int) -> dict[str, float]:
    """Run every item once per round (so load drift hits all alike); median per item in ms."""
    for _, fn in items:
        fn()
    ts: dict[str, list[float]] = {name: [] for name, _ in items}
    for _ in range(repeats):
        for name, fn in items:
            t0 = time.perf_counter()
            fn()
            ts[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(v) for name, v in ts.items()}


def profile_config(spec: str, args: argparse.Namespace) -> None:
    """Stage timers for matbackprop.logm's forward+backward, plus torch.profiler operator tables."""
    import importlib
    import inspect

    # Private building blocks of the library (the module, not the re-exported function ``funm``).
    funm = importlib.import_module("matbackprop.linalg.funm")
    _checks = importlib.import_module("matbackprop.linalg._checks")
    sym = importlib.import_module("matbackprop.linalg._common").sym

    try:
        size, dtype_name = spec.split(":") if ":" in spec else (spec, "float32")
        ((batch, n),) = parse_sizes(size)
        dtype = DTYPES[dtype_name]
    except (ValueError, KeyError, argparse.ArgumentTypeError):
        sys.exit(f"bad --profile {spec!r}; expected BATCHxN[:DTYPE], e.g. 64x128:float32")

    X, G = make_inputs(batch, n, dtype, args.seed)
    reps = max(args.repeats, 5)
    print(f"\n== matbackprop.logm stage breakdown at {batch}x{n} {dtype_name} (median of {reps}, ms) ==")

    L, Q = torch.linalg.eigh(X)
    fL = torch.log(L)
    E = sym(G)
    F = funm.loewner_matrix(funm.LOG, L)
    QtE = Q.transpose(-2, -1) @ E
    Ehat = QtE @ Q
    H = F * Ehat
    QH = Q @ H
    Y = (Q * fL.unsqueeze(-2)) @ Q.transpose(-2, -1)
    try:  # does this version of the library symmetrise the forward output?
        forward_syms = "sym(" in inspect.getsource(funm._SpectralApply.forward)
    except (AttributeError, OSError, TypeError):
        forward_syms = True
    Qt = Q.transpose(-2, -1)

    stages: list[tuple[str, Callable[[], object]]] = [
        ("checks: finite", lambda: _checks.check_finite(X, "logm")),
        ("checks: symmetric", lambda: _checks.check_symmetric(X, "logm")),
        (
            "checks: eigenvalues > 0",
            lambda: _checks.check_eigenvalues(L, "logm", strict=True, requirement="positive definite"),
        ),
        ("fwd: eigh", lambda: torch.linalg.eigh(X)),
        ("fwd: f(L) = log L", lambda: torch.log(L)),
        ("fwd: (Q * f(L)) @ Q^T", lambda: (Q * fL.unsqueeze(-2)) @ Qt),
        (f"fwd: sym(Y){'' if forward_syms else ' (not in this version)'}", lambda: sym(Y)),
        ("bwd: sym(G)", lambda: sym(G)),
        ("bwd: Loewner matrix F", lambda: funm.loewner_matrix(funm.LOG, L)),
        ("bwd: product 1  Q^T E", lambda: Qt @ E),
        ("bwd: product 2  (Q^T E) Q", lambda: QtE @ Q),
        ("bwd: Hadamard F o E^", lambda: F * Ehat),
        ("bwd: product 3  Q (F o E^)", lambda: Q @ H),
        ("bwd: product 4  (...) Q^T", lambda: QH @ Qt),
    ]
    totals: list[tuple[str, Callable[[], object]]] = [
        ("matbackprop fwd+bwd (no checks)", lambda: matbackprop_logm(X, G)),
        ("matbackprop fwd+bwd (checks)", lambda: matbackprop_logm_checked(X, G)),
        ("autograd fwd+bwd", lambda: autograd_logm(X, G)),
        ("matbackprop fwd only (no checks)", lambda: matbackprop.logm(X, check=False)),
    ]
    med = _interleaved_medians_ms(stages + totals, reps)
    timings = [(name, med[name]) for name, _ in stages]
    total_nocheck, total_check, total_auto, fwd_only = (med[name] for name, _ in totals)

    width = max(len(s) for s, _ in stages) + 2
    stage_sum_nocheck = sum(t for s, t in timings if not s.startswith("checks") and "not in this" not in s)
    for name, t in timings:
        print(f"  {name:<{width}} {t:9.3f}   {100 * t / total_nocheck:5.1f}% of matbackprop (no checks)")
    print(f"  {'sum of non-check stages':<{width}} {stage_sum_nocheck:9.3f}")
    print(f"  {'sum of check stages':<{width}} {sum(t for s, t in timings if s.startswith('checks')):9.3f}")
    print(f"  {'matbackprop fwd only (no checks)':<{width}} {fwd_only:9.3f}")
    print(f"  {'matbackprop fwd+bwd (no checks)':<{width}} {total_nocheck:9.3f}")
    print(f"  {'matbackprop fwd+bwd (checks)':<{width}} {total_check:9.3f}")
    print(f"  {'autograd fwd+bwd':<{width}} {total_auto:9.3f}")
    print(f"  {'unaccounted (autograd/dispatch/alloc)':<{width}} {total_nocheck - stage_sum_nocheck:9.3f}")

    from torch.profiler import ProfilerActivity, profile, record_function

    for label, fn in (
        ("matbackprop (checks)", matbackprop_logm_checked),
        ("matbackprop", matbackprop_logm),
        ("autograd", autograd_logm),
    ):
        for _ in range(2):
            fn(X, G)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(reps):
                with record_function(label):
                    fn(X, G)
        print(f"\n== torch.profiler: {label}, {reps} calls at {batch}x{n} {dtype_name} (top ops by self CPU time) ==")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows))


# ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15, help="timed repetitions per configuration (default 15)")
    p.add_argument("--min-repeats", type=int, default=3, help="repetitions always run even past --budget (default 3)")
    p.add_argument(
        "--budget", type=float, default=20.0,
        help="seconds per configuration (gradient check + warm-up + timing) after which repetitions stop once "
        "--min-repeats are done; 0 = no limit (default 20)",
    )
    p.add_argument(
        "--warmup", type=int, default=2,
        help="untimed warm-up rounds of every method after the gradient check (default 2; rounds after the first "
        "are skipped once a third of --budget is spent)",
    )
    p.add_argument("--sizes", type=parse_sizes, default=parse_sizes(DEFAULT_SIZES), help=f"default {DEFAULT_SIZES}")
    p.add_argument("--dtypes", type=parse_dtypes, default=parse_dtypes(DEFAULT_DTYPES), help=f"default {DEFAULT_DTYPES}")
    p.add_argument(
        "--threads", type=int, default=None,
        help="torch.set_num_threads(N) before any linear algebra. Default: leave torch's default, except that "
        "a ~2 s probe falls back to 1 thread when the default stalls under CPU contention (see --keep-threads). "
        "N > 1 has been seen to hang inside MKL's batched eigh for n >= ~192 on small shared machines.",
    )
    p.add_argument(
        "--keep-threads", action="store_true",
        help="keep torch's default thread count even when the contention probe says it stalls",
    )
    p.add_argument("--_probe", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--watchdog", type=float, default=0.0, help="abort if one configuration takes longer (s); 0 = off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", metavar="PATH", help="also write the tables as Markdown to PATH")
    p.add_argument("--profile", metavar="BxN[:DTYPE]", help="profile matbackprop at one size instead of benchmarking")
    p.add_argument("--profile-rows", type=int, default=15, help="rows of each torch.profiler table (default 15)")
    args = p.parse_args(argv)
    if args._probe:  # child process of the contention probe
        print(f"{probe_ms():.6f}")
        return 0

    if args.repeats < 1 or args.min_repeats < 1 or args.warmup < 0:
        p.error("--repeats and --min-repeats must be >= 1, --warmup >= 0")
    args.min_repeats = min(args.min_repeats, args.repeats)

    if args.threads is not None:
        if args.threads < 1:
            p.error("--threads must be >= 1")
        if args.threads > 1 and max(n for _, n in args.sizes) >= 192:
            print(
                f"warning: torch.set_num_threads({args.threads}) with n >= 192 has been seen to hang in MKL's batched "
                "eigh on these machines; consider --watchdog SECONDS",
                file=sys.stderr,
            )

    args.thread_note = choose_threads(args)
    torch.manual_seed(args.seed)
    args.start_load = _loadavg()
    for line in environment_lines(args):
        print(line)

    if args.profile:
        profile_config(args.profile, args)
        return 0

    results = []
    t0 = time.perf_counter()
    for batch, n in args.sizes:
        for dtype_name in args.dtypes:
            t_cfg = time.perf_counter()
            r = bench_config(batch, n, dtype_name, args)
            results.append(r)
            print(
                f"  done {batch}x{n} {dtype_name}: {r.reps} reps in {time.perf_counter() - t_cfg:.1f} s "
                f"(matbackprop {r.median_ms('matbackprop'):.2f} ms, autograd {r.median_ms('autograd'):.2f} ms)",
                flush=True,
            )

    print(f"\ntotal {time.perf_counter() - t0:.1f} s, load average at end: {_loadavg()}")
    print("\nforward+backward of logm, medians in ms (IQR = 25th-75th percentile); ratios of medians\n")
    rows = table_rows(results)
    print(format_plain(HEADER, rows))
    noisy = [
        f"{r.batch}x{r.n} {r.dtype} {m}"
        for r in results
        for m in METHODS
        if (lambda q: q[1] - q[0])(r.quartiles_ms(m)) > 0.5 * r.median_ms(m)
    ]
    if noisy:
        print(
            f"\nwarning: {len(noisy)} of {len(rows)} timings have an IQR wider than half their median "
            "(CPU contention?): " + "; ".join(noisy[:6]) + ("; ..." if len(noisy) > 6 else "")
        )
        if torch.get_num_threads() > 1:
            print(
                "On a loaded machine with few cores, OpenMP/MKL threads > 1 stall on descheduled siblings: "
                "compare with --threads 1."
            )
    print("\ngradient agreement: max over batch of max|g - g_ref| / max|g_ref| (per matrix)\n")
    drows = diff_rows(results)
    dheader = ("size", "dtype") + DIFF_KEYS
    print(format_plain(dheader, drows))

    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write("# logm forward+backward benchmark\n\n")
            fh.write("\n".join(f"- {line}" for line in environment_lines(args)) + "\n\n")
            fh.write("Medians in ms (IQR = 25th-75th percentile); ratios of medians.\n\n")
            fh.write(format_markdown(HEADER, rows) + "\n\n")
            fh.write("Gradient agreement: max over batch of max|g - g_ref| / max|g_ref| (per matrix).\n\n")
            fh.write(format_markdown(dheader, drows) + "\n")
        print(f"\nwrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
