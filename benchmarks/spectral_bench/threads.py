"""Threads section: batch-parallel spectral layers (``matbackprop.linalg.parallel``) against plain autograd.

Every row runs at a stated intra-op thread count, set for the measuring thread only (OpenMP and MKL
per-thread counts, as the library's workers do), so one process measures 1 thread and the default
count side by side without ``torch.set_num_threads`` (which is process-global and has stalled MKL's
batched eigh here). Per size, interleaved and order-rotated:

* ``matbackprop``        ``logm``/``sqrtm`` with the batch-parallel path (the default);
* ``split off``          the same with ``matbackprop.linalg.parallel.set_enabled(False)``: the serial path;
* ``autograd``           ``L, Q = torch.linalg.eigh(X); Y = Q f(L) Q^T`` with torch's eigh backward.

The scaling model: from the 1-thread and T-thread times of ``matbackprop``, Amdahl's parallel fraction
``p = (1 - t_T / t_1) / (1 - 1 / T)`` and the projected speedup ``1 / ((1 - p) + p / P)`` at P cores
(capped at the batch size). It is a model, not a measurement: memory bandwidth and the hand-off cost
grow with P.

The section runs in a fresh child process that never calls ``torch.set_num_threads``: once a process
has called it (as ``--threads 1`` does), MKL's dynamic threading is off for good and a multi-threaded
batched ``eigh`` there stalls, which would flatter the batch-parallel rows against autograd.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

import matbackprop as mb
from matbackprop.linalg import parallel
from matbackprop.nn import SecondOrderPooling

import _timing as T
from .config import BenchConfig
from .per_call import PER_CALL_GOAL, PER_CALL_HEADER, bench_per_call, spd_inputs
from .spectral import PEERS, resolve_peer

GOAL_SIZES = "1024x32,512x64,256x32,64x128,4x512,4x1024,1x1024"
QUICK_GOAL_SIZES = "64x16,4x64"
#: Sizes whose goal is >= 1.6x against autograd (the others: never slower).
FAST_GOAL = {(1024, 32), (512, 64), (256, 32), (64, 128)}
PROJECTED_CORES = (4, 8, 16)
#: Rounds and seconds per (size, thread count) at most: 64 configurations at two thread counts must fit
#: in a page regeneration; sizes of 2^30 n^3-work and more get 3 rounds.
REPEATS, BUDGET_S = 5, 6.0
FUNCS: dict[str, tuple[Callable[..., torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]] = {
    "logm": (mb.logm, torch.log),
    "sqrtm": (mb.sqrtm, torch.sqrt),
}


def default_threads() -> int:
    """torch's default intra-op count for this process (the usable cores), at least 2."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(2, cores)


def at_threads(threads: int, fn: Callable[[], Any]) -> Any:
    """``fn()`` on a fresh thread whose own intra-op count is ``threads`` (process-wide count untouched)."""
    control = parallel._thread_control()
    out: list[Any] = []

    def body() -> None:
        saved = control.set(threads) if control.ok else None
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the caller
            out.append(exc)
        finally:
            if saved is not None:
                control.restore(saved)

    if not control.ok:
        raise RuntimeError("per-thread OpenMP/MKL control is unavailable in this torch build")
    t = threading.Thread(target=body)
    t.start()
    t.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


@dataclass
class ThreadRow:
    func: str
    batch: int
    n: int
    dtype: str
    ms: dict[tuple[str, int], float] = field(default_factory=dict)  # (method, threads) -> median ms
    rounds: dict[int, int] = field(default_factory=dict)


def _methods(func: str, X: torch.Tensor, G: torch.Tensor) -> list[tuple[str, Callable[[], object]]]:
    ours, scalar = FUNCS[func]

    def grad(y: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], object]:
        def run() -> object:
            Xl = X.detach().requires_grad_(True)
            return torch.autograd.grad(y(Xl), Xl, G)

        return run

    def plain(Xl: torch.Tensor) -> torch.Tensor:
        L, Q = torch.linalg.eigh(Xl)
        return (Q * scalar(L).unsqueeze(-2)) @ Q.mT

    def serial_run() -> object:  # the split is off for the backward too
        parallel.set_enabled(False)
        try:
            return grad(ours)()
        finally:
            parallel.set_enabled(True)

    peers = [(name, resolve_peer(module, attrs[func])[0]) for name, (module, attrs) in PEERS.items()]
    return [("matbackprop", grad(ours)), ("split off", serial_run), ("autograd", grad(plain))] + [
        (name, grad(fn)) for name, fn in peers if fn is not None
    ]


def bench_threads(cfg: BenchConfig | types.SimpleNamespace) -> tuple[list[ThreadRow], int]:
    """Goal rows at 1 thread and the default count; returns the rows and the default count."""
    sizes = T.parse_sizes(QUICK_GOAL_SIZES if cfg.quick else GOAL_SIZES)
    threads = default_threads()
    rows = []
    for func in cfg.functions:
        for batch, n in sizes:
            for dtype_name in cfg.dtypes:
                X, G = spd_inputs(batch, n, T.DTYPES[dtype_name], cfg.seed)
                row = ThreadRow(func, batch, n, dtype_name)
                big = batch * n**3 >= 2**30  # a few seconds per call at 1 thread: fewer rounds
                for k in (1, threads):
                    # At one thread nothing is split: "split off" would time the same path again.
                    items = [m for m in _methods(func, X, G) if k > 1 or m[0] != "split off"]

                    def measure(items: list[tuple[str, Callable[[], object]]] = items, big: bool = big) -> T.Timings:
                        start = time.perf_counter()
                        for _, fn in items:  # warm-up
                            fn()
                        return T.interleaved(
                            items,
                            repeats=3 if big else min(cfg.repeats, REPEATS),
                            min_repeats=min(3, cfg.min_repeats),
                            budget_s=min(cfg.budget, BUDGET_S),
                            start=start,
                        )

                    tm = at_threads(k, measure)
                    row.rounds[k] = tm.rounds
                    for name, _ in items:
                        row.ms[(name, k)] = tm.median_ms(name)
                    row.ms.setdefault(("split off", k), row.ms[("matbackprop", k)])
                rows.append(row)
                print(
                    f"  threads {func} {batch}x{n} {dtype_name}: autograd/matbackprop "
                    f"{row.ms[('autograd', threads)] / row.ms[('matbackprop', threads)]:.2f} at {threads} threads, "
                    f"{row.ms[('autograd', 1)] / row.ms[('matbackprop', 1)]:.2f} at 1",
                    flush=True,
                )
    return rows, threads


def projected(row: ThreadRow, threads: int, cores: int) -> float:
    """Amdahl projection of ``matbackprop``'s speedup over 1 thread at ``cores`` cores."""
    t1, tT = row.ms[("matbackprop", 1)], row.ms[("matbackprop", threads)]
    p = min(1.0, max(0.0, (1.0 - tT / t1) / (1.0 - 1.0 / threads)))
    return 1.0 / ((1.0 - p) + p / min(cores, row.batch))


def thread_rows(rows: list[ThreadRow], threads: int) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The goal table: per size, medians and the autograd / matbackprop ratio at each thread count."""
    header = (
        "function",
        "size",
        "dtype",
        "threads",
        "matbackprop ms",
        "split off ms",
        "autograd ms",
        "autograd / matbackprop",
        "fastest peer / matbackprop",
        "goal",
    )
    out = []
    for r in rows:
        for k in (threads, 1):
            ratio = r.ms[("autograd", k)] / r.ms[("matbackprop", k)]
            need = 1.6 if (r.batch, r.n) in FAST_GOAL and k == threads else 1.0
            peer_ms = {name: ms for (name, kk), ms in r.ms.items() if kk == k and name in PEERS}
            peer = min(peer_ms, key=peer_ms.__getitem__) if peer_ms else None
            peer_ratio = peer_ms[peer] / r.ms[("matbackprop", k)] if peer else None
            ok = ratio >= need and (peer_ratio is None or peer_ratio >= 1.0)
            status = "met" if ok else "MISSED"
            out.append(
                (
                    r.func,
                    f"{r.batch}x{r.n}",
                    r.dtype,
                    str(k),
                    f"{r.ms[('matbackprop', k)]:.2f}",
                    f"{r.ms[('split off', k)]:.2f}",
                    f"{r.ms[('autograd', k)]:.2f}",
                    f"{ratio:.2f}x",
                    f"{peer_ratio:.2f}x ({peer})" if peer else "no peer installed",
                    f">= {need:.1f}x autograd, >= 1.0x peers: {status}",
                )
            )
    return header, out


def scaling_rows(rows: list[ThreadRow], threads: int) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Thread scaling of ``matbackprop`` (measured 1 -> T, projected to more cores)."""
    header = (
        "function",
        "size",
        "dtype",
        f"1 -> {threads} threads (measured)",
        *(f"{p} cores (model)" for p in PROJECTED_CORES),
    )
    out = []
    for r in rows:
        measured = r.ms[("matbackprop", 1)] / r.ms[("matbackprop", threads)]
        out.append(
            (
                r.func,
                f"{r.batch}x{r.n}",
                r.dtype,
                f"{measured:.2f}x",
                *(f"{projected(r, threads, p):.2f}x" for p in PROJECTED_CORES),
            )
        )
    return header, out


def bench_o2p_split(cfg: BenchConfig | types.SimpleNamespace) -> tuple[str, int, list[tuple[str, ...]]]:
    """``SecondOrderPooling`` regions/s with the split off (before) and on (after), MSRC-sized batches:
    8 images of 64 channels at 15 x 20 (the stride-16 features), 8 regions each."""
    B, C, H, W, R = (2, 16, 8, 10, 4) if cfg.quick else (8, 64, 15, 20, 8)
    g = torch.Generator().manual_seed(cfg.seed)
    feats = torch.relu(torch.randn(B, C, H, W, generator=g))
    labels = torch.randint(0, R, (B, H, W), generator=g)
    labels[:, :R, 0] = torch.arange(R)  # every region non-empty
    masks = torch.nn.functional.one_hot(labels, R).permute(0, 3, 1, 2).float()
    threads = default_threads()
    out = []
    for route in ("eig", "svd"):
        layer = SecondOrderPooling(normalization="log", route=route, output="triu")
        weight = torch.randn(B, R, C * (C + 1) // 2, generator=g)

        def step(split: bool, layer: SecondOrderPooling = layer, weight: torch.Tensor = weight) -> Callable[[], object]:
            def run() -> object:
                parallel.set_enabled(split)
                try:
                    f = feats.detach().requires_grad_(True)
                    return torch.autograd.grad((layer(f, masks) * weight).sum(), f)
                finally:
                    parallel.set_enabled(True)

            return run

        items = [("before (split off)", step(False)), ("after (split on)", step(True))]

        def measure(items: list[tuple[str, Callable[[], object]]] = items) -> T.Timings:
            start = time.perf_counter()
            for _, fn in items:
                fn()
            return T.interleaved(
                items, repeats=cfg.repeats, min_repeats=cfg.min_repeats, budget_s=cfg.budget, start=start
            )

        tm = at_threads(threads, measure)
        before, after = tm.median_ms(items[0][0]), tm.median_ms(items[1][0])
        out.append(
            (
                f"{route} / log",
                f"{1e3 * B * R / before:.0f}",
                f"{1e3 * B * R / after:.0f}",
                f"{before / after:.2f}x",
                str(tm.rounds),
            )
        )
    return f"{B}x{C}x{H}x{W}, {R} regions each", threads, out


IDLE_NOTE = (
    "**Read with the load average in the header.** On this run the second thread gave no speedup "
    "(`matbackprop` from 1 to {threads} threads: median {median:.2f}x): the machine was shared, so there "
    "was no idle core to run a second chunk on. The ratios against autograd at {threads} threads then come "
    "from torch's own multi-threaded path being slower than its single-threaded one under contention "
    "(compare the autograd columns at 1 and {threads} threads), which the batch-parallel path avoids by "
    "running every chunk single-threaded; they are not a parallel speedup, and the scaling model below "
    "projects nothing (1.0x) from such a run."
)
O2P_HEADER = ("route / normalization", "regions/s before", "regions/s after", "after / before", "rounds")


def markdown(
    rows: list[ThreadRow],
    threads: int,
    o2p: tuple[str, int, list[tuple[str, ...]]] | None,
    per_call: list[tuple[str, ...]] | None = None,
) -> list[str]:
    """The page's "Batch-parallel threads" section (appended after the generated page)."""
    out = [
        "",
        "## Batch-parallel threads (issue 13)",
        "",
        "`matbackprop.linalg.parallel` splits a batch into chunks that run on separate threads with one "
        "intra-op thread each (torch's batched `eigh`/`svd` are serial loops over the batch). Each row "
        "states its thread count: set for the measuring thread only, so 1 thread and the default count "
        f"({threads}, the usable cores) are measured side by side in one fresh child process that never "
        "calls `torch.set_num_threads` (so `--threads` does not apply here), interleaved with "
        "rotated order; medians. `split off` is the same call with the batch-parallel path disabled; the "
        "peers (spd_learn, torchspd, geoopt, where installed) run at the same thread counts. Goal: "
        ">= 1.6x against plain autograd at the default count for 1024x32, 512x64, 256x32 and 64x128, never "
        "slower than autograd or any peer anywhere.",
        "",
    ]
    if rows:
        header, body = thread_rows(rows, threads)
        out += [T.format_markdown(header, body), ""]
        header, body = scaling_rows(rows, threads)
        gains = sorted(r.ms[("matbackprop", 1)] / r.ms[("matbackprop", threads)] for r in rows)
        if gains[len(gains) // 2] < 1.1:
            out += [IDLE_NOTE.format(threads=threads, median=gains[len(gains) // 2]), ""]
        out += [
            "### Thread scaling",
            "",
            f"`matbackprop` forward+backward speedup from 1 to {threads} threads (measured), and Amdahl's "
            "law with the parallel fraction fitted to that measurement for more cores (a model, capped at "
            "the batch size; memory bandwidth and hand-off costs are not in it).",
            "",
            T.format_markdown(header, body),
            "",
        ]
    if o2p is not None:
        shape, k, body = o2p
        out += [
            f"### SecondOrderPooling, before and after ({k} threads)",
            "",
            f'Forward+backward of `SecondOrderPooling(normalization="log", output="triu")` on {shape} '
            "(MSRC-sized: 8 images of 64 channels at the stride-16 feature size), float32.",
            "",
            T.format_markdown(O2P_HEADER, body),
            "",
        ]
    if per_call:
        out += [
            f"### Per-call cost ({threads} threads)",
            "",
            "`logm` forward+backward of a single 8 x 8 matrix (the fixed cost of a call: checks, the "
            "autograd Function, the divided differences), microseconds per call, against plain autograd. "
            f"Goal: within {PER_CALL_GOAL}x of plain autograd with the checks on.",
            "",
            T.format_markdown(PER_CALL_HEADER, per_call),
            "",
        ]
    return out


_FIELDS = ("quick", "functions", "dtypes", "repeats", "min_repeats", "budget", "seed")


def run_section(
    cfg: BenchConfig,
) -> tuple[list[ThreadRow], int, tuple[str, int, list[tuple[str, ...]]], list[tuple[str, ...]]]:
    """Both measurements in a fresh child process (see the module docstring); progress goes to stderr."""
    spec = json.dumps({f: getattr(cfg, f) for f in _FIELDS})
    bench_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        f"import sys; sys.path.insert(0, {bench_dir!r}); "
        "from spectral_bench.threads import child_main; child_main(sys.argv[1])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code, spec], stdout=subprocess.PIPE, text=True, check=True, env=env)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    rows = []
    for r in data["rows"]:
        row = ThreadRow(r["func"], r["batch"], r["n"], r["dtype"])
        row.ms = {(name, int(k)): v for name, k, v in r["ms"]}
        row.rounds = {int(k): v for k, v in r["rounds"].items()}
        rows.append(row)
    o2p = data["o2p"]
    per_call = [tuple(x) for x in data["per_call"]]
    return rows, data["threads"], (o2p[0], o2p[1], [tuple(x) for x in o2p[2]]), per_call


def child_main(spec: str) -> None:
    """Entry point of the child: run the section, print its results as one JSON line on stdout."""
    cfg = types.SimpleNamespace(**json.loads(spec))
    stdout, sys.stdout = sys.stdout, sys.stderr  # progress lines to stderr, the result alone on stdout
    try:
        rows, threads = bench_threads(cfg)
        o2p = bench_o2p_split(cfg)
        per_call = bench_per_call(cfg)
    finally:
        sys.stdout = stdout
    print(
        json.dumps(
            {
                "threads": threads,
                "rows": [
                    {
                        "func": r.func,
                        "batch": r.batch,
                        "n": r.n,
                        "dtype": r.dtype,
                        "ms": [[name, k, v] for (name, k), v in r.ms.items()],
                        "rounds": r.rounds,
                    }
                    for r in rows
                ],
                "o2p": [o2p[0], o2p[1], [list(x) for x in o2p[2]]],
                "per_call": [list(x) for x in per_call],
            }
        )
    )
