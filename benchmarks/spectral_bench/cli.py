"""The one benchmark command: spectral functions, second-order pooling and normalized cuts.

Not part of the test suite. Prints tables, and writes ``docs/benchmarks.md`` and
``docs/figures/benchmarks.png`` (see ``--markdown`` / ``--plot``).

Sections (``--sections spectral,o2p,ncut,threads``):

spectral
    ``logm`` and ``sqrtm`` of random SPD batches ``X = A A^T / n + I`` at ``--sizes`` x ``--dtypes``.
    Every method computes ``Y = f(X)`` and ``dL/dX`` for the same upstream gradient ``G`` (random,
    non-symmetric) through ``torch.autograd.grad``:

    * ``eigh forward``        ``torch.linalg.eigh(X)`` alone, no autograd: the floor of any eigh route.
    * ``autograd``            ``L, Q = eigh(X); Y = Q f(L) Q^T``; torch's own eigh backward.
    * ``matbackprop``         ``matbackprop.logm(X)`` / ``sqrtm(X)`` with the default input checks
                              (Daleckii-Krein backward).
    * ``matbackprop check=False`` the same without input checks.
    * ``Newton-Schulz (k it)`` ``matbackprop.sqrtm_newton_schulz(X, num_iters=k)`` (sqrtm only): GEMMs
                              only, backward by autograd through the iterations; approximate.
    * peers (``pip install -e .[peers]``), each through its own public API:
      ``spd_learn.functional.matrix_log`` / ``matrix_sqrt`` (autograd Functions, Loewner-matrix backward),
      ``torchspd.logm`` / ``torchspd.sqrtm`` (custom Function with divided differences),
      ``geoopt.linalg.sym_logm`` / ``sym_sqrtm`` (TorchScript eigh + torch autograd).

    Timing: all methods in one process, interleaved per round with the order rotated each round,
    medians and quartiles; the first (accuracy) call and the memory call serve as warm-up, further
    warm-up rounds follow while a third of the per-configuration budget (``--budget``) is left;
    repetitions stop at ``--repeats`` or, once ``--min-repeats`` are done, when the budget is spent.
    Memory: the peak of live tensor bytes allocated during one forward+backward call, measured once per
    method outside the timed loop (CPU: ``torch.profiler`` memory events integrated in time order;
    CUDA: ``torch.cuda.max_memory_allocated``). Accuracy: ``Y`` and ``sym(dL/dX)`` against a float64
    Daleckii-Krein reference. Ties: ``X = R diag(2, 2, 3, ..., 8) R^T`` (an exactly repeated eigenvalue)
    against the Daleckii-Krein gradient from the known eigen-decomposition.
    A per-stage breakdown of the eigh route at ``--profile-size`` (default 64x128 float32 and 4x1024
    float64; ``--no-profile`` skips it), built from public torch ops that mirror the library's
    implementation, plus a ``torch.profiler`` table of the real call, shows where the time goes and
    the floor any eigh route has relative to the eigh forward alone.

o2p
    ``matbackprop.nn.SecondOrderPooling`` forward+backward throughput (regions/s) for the routes
    ``eig`` / ``svd`` (log) and ``eig`` / ``newton_schulz`` (sqrt) on a batch of feature maps with
    quadrant masks.

ncut
    ``ncut_embedding(F, k)`` + ``projector_loss(Z, labels)`` forward+backward at ``--ncut-nodes`` x 64,
    k = 16, each configuration in a fresh subprocess on the first device measured (peak memory = growth
    of the resident-set high-water mark, VmHWM, over the process after the inputs were built; on CUDA
    also the device's allocator peak). Plus, in one process and
    interleaved: ours against ``ncut_pytorch.ncut_fn(F, n_eig=k, exact_gradient=True)`` (its
    exact-gradient path: full ``torch.linalg.eigh`` of the sampled, normalised RBF affinity) followed by
    the same ``projector_loss``.

threads
    The batch-parallel path (``matbackprop.linalg.parallel``): ``logm``/``sqrtm`` forward+backward
    against plain autograd at 1 thread and at the default count (set per measuring thread, see
    ``spectral_bench/threads.py``), the thread-scaling table with a model for more cores, and
    ``SecondOrderPooling`` regions/s with the split off and on (CPU only).

Threads: torch's default is left alone unless it stalls under CPU contention (a ~2 s probe, then a
fallback to 1 thread); ``--threads N`` sets it explicitly (N > 1 has been seen to hang in MKL's batched
eigh for n >= ~192 on small shared machines).

Examples::

    .venv/bin/python benchmarks/bench_spectral.py --threads 1                 # full run, writes docs
    .venv/bin/python benchmarks/bench_spectral.py --quick --threads 1 --markdown /tmp/b.md --plot /tmp/b.png
    .venv/bin/python benchmarks/bench_spectral.py --sections spectral --sizes 64x128 --dtypes float32
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from typing import Any

import torch

import _timing as T
from . import threads as threads_section
from .config import FULL_SIZES, QUICK_SIZES, ROOT, BenchConfig
from .goals import TIE_TOL, evaluate_goals
from .ncut import CHILDREN, run_child
from .o2p import O2PResult, bench_o2p
from .plot import make_plot
from .report import (
    COMPARE_HEADER,
    NCUT_HEADER,
    SPEC_HEADER,
    compare_row,
    environment_lines,
    fmt_ms,
    ncut_rows,
    o2p_rows,
    spectral_rows,
    tie_rows,
    write_markdown,
)
from .spectral import SCALARS, SpectralResult, bench_spectral_config, profile_stages, tie_test


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small sizes, few repetitions (a 1-2 minute smoke test)")
    p.add_argument(
        "--sections", default="spectral,o2p,ncut,threads", help="comma list of spectral,o2p,ncut,threads (default all)"
    )
    p.add_argument("--functions", default="logm,sqrtm", help="spectral functions (default logm,sqrtm)")
    p.add_argument(
        "--sizes", type=T.parse_sizes, default=None, help=f"BATCHxN list (default {FULL_SIZES}; quick {QUICK_SIZES})"
    )
    p.add_argument("--dtypes", type=T.parse_dtypes, default=T.parse_dtypes("float32,float64"))
    p.add_argument(
        "--repeats", type=int, default=None, help="timed repetitions per configuration (default 15; quick 7)"
    )
    p.add_argument("--min-repeats", type=int, default=3, help="repetitions always run even past --budget (default 3)")
    p.add_argument(
        "--budget", type=float, default=None, help="seconds per configuration, 0 = none (default 20; quick 3)"
    )
    p.add_argument(
        "--warmup", type=int, default=1, help="extra untimed rounds after the accuracy and memory calls (default 1)"
    )
    p.add_argument(
        "--ns-iters", type=int, default=10, help="Newton-Schulz iterations (default 10, the library default)"
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto (cpu, plus cuda when available)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads(N); default: probe, fall back to 1 under contention",
    )
    p.add_argument(
        "--keep-threads", action="store_true", help="keep torch's default threads even if the probe says it stalls"
    )
    p.add_argument("--no-profile", dest="profile", action="store_false", help="skip the stage breakdown")
    p.add_argument(
        "--profile-size",
        default=None,
        help="comma list of BATCHxN:DTYPE for the stage breakdown (default 64x128:float32,4x1024:float64; "
        "quick 64x128:float32)",
    )
    p.add_argument(
        "--o2p-shape", default=None, help="B,C,H,W of the pooling features (default 8,64,28,28; quick 2,16,14,14)"
    )
    p.add_argument("--ncut-nodes", default=None, help="comma list of N (default 10000,154401,1000000; quick 10000)")
    p.add_argument("--ncut-dtypes", type=T.parse_dtypes, default=None, help="default float32,float64; quick float32")
    p.add_argument(
        "--ncut-compare-nodes",
        type=int,
        default=None,
        help="N of the ncut-pytorch comparison (default 10000; quick 2000)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", default=None, help="Markdown report path (default docs/benchmarks.md; '' = none)")
    p.add_argument("--plot", default=None, help="PNG plot path (default docs/figures/benchmarks.png; '' = none)")
    p.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    return p


def parse_args(argv: list[str] | None) -> tuple[BenchConfig, tuple[str, str] | None]:
    """The run configuration (quick/full defaults resolved), and ``(kind, spec)`` when called as a child."""
    p = _parser()
    args = p.parse_args(argv)
    q = args.quick
    sizes = args.sizes or T.parse_sizes(QUICK_SIZES if q else FULL_SIZES)
    repeats = args.repeats or (7 if q else 15)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    functions = [f.strip() for f in args.functions.split(",") if f.strip()]
    unknown = (sections - {"spectral", "o2p", "ncut", "threads"}) | (set(functions) - set(SCALARS))
    if unknown:
        p.error(f"unknown section/function: {', '.join(sorted(unknown))}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch.cuda.is_available() is False")
    if args.threads is not None and args.threads > 1 and max(n for _, n in sizes) >= 192:
        print(
            f"warning: torch.set_num_threads({args.threads}) with n >= 192 has been seen to hang in MKL's batched eigh "
            "on small shared machines",
            file=sys.stderr,
        )
    exe = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT) else "python"
    given = argv if argv is not None else sys.argv[1:]
    cfg = BenchConfig(
        quick=q,
        sections=sections,
        functions=functions,
        sizes=sizes,
        dtypes=args.dtypes,
        repeats=repeats,
        min_repeats=max(1, min(args.min_repeats, repeats)),
        budget=args.budget if args.budget is not None else (3.0 if q else 20.0),
        warmup=args.warmup,
        ns_iters=args.ns_iters,
        device=args.device,
        threads=args.threads,
        keep_threads=args.keep_threads,
        profile=args.profile,
        profile_size=args.profile_size or ("64x128:float32" if q else "64x128:float32,4x1024:float64"),
        o2p_shape=tuple(int(v) for v in (args.o2p_shape or ("2,16,14,14" if q else "8,64,28,28")).split(",")),
        ncut_nodes=[int(v) for v in (args.ncut_nodes or ("10000" if q else "10000,154401,1000000")).split(",")],
        ncut_dtypes=args.ncut_dtypes or (["float32"] if q else ["float32", "float64"]),
        ncut_compare_nodes=args.ncut_compare_nodes or (2000 if q else 10000),
        seed=args.seed,
        markdown=os.path.join(ROOT, "docs", "benchmarks.md") if args.markdown is None else args.markdown,
        plot=os.path.join(ROOT, "docs", "figures", "benchmarks.png") if args.plot is None else args.plot,
        command=f"{exe} benchmarks/bench_spectral.py " + " ".join(shlex.quote(a) for a in given),
    )
    return cfg, ((args._child[0], args._child[1]) if args._child else None)


def main(argv: list[str] | None = None) -> int:
    """Run the sections of ``cfg`` in order, print the tables, write the page and the figure."""
    cfg, child = parse_args(argv)
    if child is not None:
        kind, spec = child
        print(json.dumps(CHILDREN[kind](json.loads(spec))))
        return 0

    cfg.thread_note = T.choose_threads(cfg.threads, cfg.keep_threads)
    cfg.start_load = T.loadavg()
    if cfg.device == "auto":
        devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    else:
        devices = [cfg.device]
    multi_device = len(devices) > 1
    for line in environment_lines(cfg, devices):
        print(line)
    t_all = time.perf_counter()

    results: list[SpectralResult] = []
    ties: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
    stages: list[tuple[str, list[tuple[str, float]], str]] = []
    if "spectral" in cfg.sections:
        for device in devices:
            for func in cfg.functions:
                for batch, n in cfg.sizes:
                    for dtype_name in cfg.dtypes:
                        t0 = time.perf_counter()
                        r = bench_spectral_config(func, batch, n, dtype_name, device, cfg)
                        results.append(r)
                        print(
                            f"  {func} {batch}x{n} {dtype_name} {device}: {r.timings.rounds} rounds in "
                            f"{time.perf_counter() - t0:.1f} s (matbackprop/autograd "
                            f"{r.med('matbackprop') / r.med('autograd'):.2f})",
                            flush=True,
                        )
        for func in cfg.functions:
            for dtype_name in cfg.dtypes:
                ties[(func, dtype_name)] = tie_test(func, dtype_name, devices[0], cfg)
        if cfg.profile:
            for spec in cfg.profile_size.split(","):
                size, _, dt = spec.strip().partition(":")
                ((pb, pn),) = T.parse_sizes(size)
                stages.append(
                    (f"{pb}x{pn} {dt or 'float32'}", *profile_stages(pb, pn, dt or "float32", devices[0], cfg))
                )
        print("\nforward+backward, medians in ms (IQR = 25th-75th percentile); ratios of medians\n")
        print(T.format_plain(SPEC_HEADER, spectral_rows(results, multi_device), left=4, group=3))
        header, rows = tie_rows(ties)
        print("\nties (X with a repeated eigenvalue): relative gradient error vs exact Daleckii-Krein\n")
        print(T.format_plain(header, rows, left=2))
        for label, stage_rows, _ in stages:
            print(f"\nstage breakdown of logm at {label} (median ms)\n")
            print(
                T.format_plain(
                    ("stage", "median ms"), [(nm, f"{t:.2f}x" if "ratio" in nm else fmt_ms(t)) for nm, t in stage_rows]
                )
            )

    o2p: list[O2PResult] = []
    if "o2p" in cfg.sections:
        o2p.append(bench_o2p(cfg, devices[0]))
        print(f"\nSecondOrderPooling forward+backward, features {'x'.join(map(str, cfg.o2p_shape))}, 4 regions each\n")
        print(T.format_plain(("route / normalization", "median ms", "regions / s", "reps"), o2p_rows(o2p[0])))

    ncut: list[dict[str, Any]] = []
    compare: dict[str, Any] | None = None
    if "ncut" in cfg.sections:
        threads = torch.get_num_threads()
        reps = min(cfg.repeats, 3 if cfg.quick else 5)
        for nodes in cfg.ncut_nodes:
            for dt in cfg.ncut_dtypes:
                child_spec: dict[str, Any] = dict(
                    nodes=nodes,
                    d=64,
                    k=16,
                    dtype=dt,
                    segments=8,
                    seed=cfg.seed,
                    repeats=reps,
                    budget=cfg.budget,
                    threads=threads,
                    device=devices[0],
                )
                ncut.append(run_child("ncut", child_spec, timeout=900))
                print(f"  ncut N={nodes} {dt}: {ncut[-1].get('median_ms', ncut[-1].get('error'))}", flush=True)
        compare_spec: dict[str, Any] = dict(
            nodes=cfg.ncut_compare_nodes,
            d=64,
            k=16,
            dtype="float32",
            segments=8,
            seed=cfg.seed,
            repeats=reps,
            budget=cfg.budget,
            threads=threads,
            device=devices[0],
        )
        compare = run_child("compare", compare_spec, timeout=1200)
        print("\nncut_embedding + projector_loss forward+backward (fresh process per row)\n")
        print(T.format_plain(NCUT_HEADER, ncut_rows(ncut), left=0))
        print("\nagainst ncut-pytorch exact_gradient=True (same process, interleaved)\n")
        print(T.format_plain(COMPARE_HEADER, [compare_row(compare)], left=2))

    thread_results: tuple[list[threads_section.ThreadRow], int] | None = None
    thread_o2p = None
    per_call: list[tuple[str, ...]] = []
    if "threads" in cfg.sections and devices[0] == "cpu":
        # a fresh process at torch's default threads
        thread_rows_, thread_count, thread_o2p, per_call = threads_section.run_section(cfg)
        thread_results = (thread_rows_, thread_count)
        print("\nbatch-parallel threads: forward+backward medians (ms), each row at the stated thread count\n")
        print(T.format_plain(*threads_section.thread_rows(*thread_results), left=3))
        print("\nthread scaling of matbackprop (measured, then Amdahl model)\n")
        print(T.format_plain(*threads_section.scaling_rows(*thread_results), left=3))
        print(f"\nSecondOrderPooling before/after the split, {thread_o2p[0]}, {thread_o2p[1]} threads\n")
        print(T.format_plain(threads_section.O2P_HEADER, thread_o2p[2], left=1))
        print(f"\nper-call cost: logm forward+backward of one 8 x 8 matrix, {thread_count} threads (us)\n")
        print(T.format_plain(threads_section.PER_CALL_HEADER, per_call, left=2))

    goals = evaluate_goals(results, ties, ncut, compare, TIE_TOL)
    print(f"\ngoals (issue 6){' - quick run, not meaningful' if cfg.quick else ''}\n")
    print(T.format_plain(("goal", "measured", "status"), [g.row() for g in goals], left=2))
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")

    env = environment_lines(cfg, devices, at_end=True)
    plot_path = cfg.plot if cfg.plot and results and make_plot(cfg.plot, results) else None
    if plot_path:
        print(f"wrote {plot_path}")
    if cfg.markdown:
        write_markdown(
            cfg.markdown, cfg, env, results, ties, stages, o2p, ncut, compare, goals, plot_path, multi_device
        )
        if thread_results is not None:
            with open(cfg.markdown, "a") as fh:
                fh.write("\n".join(threads_section.markdown(*thread_results, thread_o2p, per_call)) + "\n")
        print(f"wrote {cfg.markdown}")
    return 0
