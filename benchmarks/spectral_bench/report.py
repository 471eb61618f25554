"""Report: plain-text and Markdown tables, the environment lines, and the generated ``docs/benchmarks.md``."""

from __future__ import annotations

import math
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch

import matbackprop

import _timing as T
from .config import BenchConfig
from .goals import Goal, fmt_err
from .o2p import O2PResult
from .spectral import Method, SpectralResult


def fmt_ms(x: float) -> str:
    return "-" if not math.isfinite(x) else (f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 1000 else f"{x:.0f}")


def fmt_mb(b: int | None) -> str:
    return "-" if b is None else f"{b / 2**20:.1f}"


SPEC_HEADER = (
    "function",
    "size",
    "dtype",
    "method",
    "median ms",
    "IQR ms",
    "/ autograd",
    "/ eigh fwd",
    "peak MB",
    "peak / input",
    "Y err",
    "grad err",
    "reps",
)


def spectral_rows(results: list[SpectralResult], multi_device: bool) -> list[tuple[str, ...]]:
    rows = []
    for r in results:
        auto, floor = r.med("autograd"), r.med("eigh forward")
        size = f"{r.batch}x{r.n}" + (f" {r.device}" if multi_device else "")
        for m in r.methods:
            head = (r.func, size, r.dtype, m.name)
            if m.run is None or m.name in r.errors:
                note = m.note if m.run is None else r.errors[m.name]
                rows.append(head + (note,) + ("",) * (len(SPEC_HEADER) - 5))
                continue
            med = r.med(m.name)
            lo, hi = r.timings.quartiles_ms(m.name)
            pk = r.peak_bytes.get(m.name)
            rows.append(
                head
                + (
                    fmt_ms(med),
                    f"{fmt_ms(lo)}-{fmt_ms(hi)}",
                    f"{med / auto:.2f}",
                    f"{med / floor:.2f}",
                    fmt_mb(pk),
                    "-" if pk is None else f"{pk / r.input_bytes:.1f}",
                    fmt_err(r.y_err.get(m.name, float("nan"))),
                    fmt_err(r.g_err.get(m.name, float("nan"))),
                    str(len(r.timings.times.get(m.name, []))),
                )
            )
    return rows


def tie_rows(
    ties: dict[tuple[str, str], dict[str, tuple[float, float]]],
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    names: list[str] = []
    for d in ties.values():
        names += [n for n in d if n not in names]
    header = ("function", "dtype") + tuple(names)
    rows = [(f, dt) + tuple(fmt_err(d.get(n, (float("nan"),))[0]) for n in names) for (f, dt), d in ties.items()]
    return header, rows


def o2p_rows(o: O2PResult) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for label, _, _ in o.routes:
        med = o.timings.median_ms(label)
        rows.append(
            (label, fmt_ms(med), f"{o.shape[0] * o.regions / (med / 1e3):.0f}", str(len(o.timings.times[label])))
        )
    return rows


NCUT_HEADER = (
    "N",
    "d",
    "k",
    "dtype",
    "median ms",
    "IQR ms",
    "reps",
    "features MB",
    "tensor peak MB",
    "RSS peak extra MB",
    "tensor peak / features",
)


def _mb(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def ncut_rows(ncut: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows = []
    for c in ncut:
        head = (f"{c['nodes']:,}", str(c["d"]), str(c["k"]), c["dtype"])
        if "error" in c:
            rows.append(head + (c["error"],) + ("",) * (len(NCUT_HEADER) - 5))
            continue
        rows.append(
            head
            + (
                fmt_ms(c["median_ms"]),
                f"{fmt_ms(c['iqr'][0])}-{fmt_ms(c['iqr'][1])}",
                str(c["reps"]),
                f"{c['feature_mb']:.1f}",
                _mb(c.get("tensor_peak_mb")),
                f"{c['peak_extra_mb']:.1f}",
                "-" if c.get("tensor_peak_mb") is None else f"{c['tensor_peak_mb'] / c['feature_mb']:.2f}",
            )
        )
    return rows


COMPARE_HEADER = (
    "N x d, k",
    "dtype",
    "matbackprop ms",
    "ncut-pytorch exact ms",
    "ratio",
    "grads finite (ours / theirs)",
    "reps",
)


def compare_row(c: dict[str, Any]) -> tuple[str, ...]:
    head = (f"{c['nodes']:,} x {c['d']}, {c['k']}", c["dtype"])
    if "error" in c:
        return head + (c["error"], "", "", "", "")
    return head + (
        fmt_ms(c["ours_ms"]),
        fmt_ms(c["theirs_ms"]),
        f"{c['theirs_ms'] / c['ours_ms']:.1f}x",
        f"{c['ours_finite']} / {c['theirs_finite']}",
        str(c["reps"]),
    )


def environment_lines(cfg: BenchConfig, devices: list[str], at_end: bool = False) -> list[str]:
    lines = [
        f"command: `{cfg.command}`",
        f"python {platform.python_version()}, torch {torch.__version__}, matbackprop {matbackprop.__version__}",
        f"cpu: {T.cpu_name()}, os.cpu_count()={os.cpu_count()}, torch threads={torch.get_num_threads()} ({cfg.thread_note})",
        f"load average at start: {cfg.start_load}" + (f", at end: {T.loadavg()}" if at_end else ""),
        f"repeats={cfg.repeats} (min {cfg.min_repeats}, budget {cfg.budget:g} s per configuration), "
        f"warmup={cfg.warmup}, seed={cfg.seed}",
    ]
    if torch.cuda.is_available():
        lines.append(f"GPU: {torch.cuda.get_device_name()} (devices measured: {', '.join(devices)})")
    else:
        lines.append("no GPU was available: every number is CPU-only")
    peers = []
    for name in ("spd_learn", "torchspd", "geoopt", "ncut_pytorch"):
        try:
            peers.append(f"{name} {version(name.replace('_', '-') if name == 'ncut_pytorch' else name)}")
        except PackageNotFoundError:
            peers.append(f"{name} not installed")
    lines.append("peers: " + ", ".join(peers))
    return lines


METHOD_NOTES = {
    "floor": "lower bound for any eigh route (forward only, no autograd)",
    "baseline": "plain autograd; torch's eigh backward divides by eigenvalue gaps, so it is inexact or non-finite at ties",
    "ours": "Daleckii-Krein backward with tie-safe divided differences (exact at ties)",
    "approx": "GEMM-only iteration, backward by autograd through it; approximate, its error grows with tr(X)/lambda_min",
    "peer": "peer library, its own public API",
}
PEER_NOTES = {  # from reading each package's source (versions pinned in the [peers] extra)
    "spd_learn": "autograd.Function; Loewner-matrix backward, f' (averaged) where eigenvalues are within an adaptive "
    "threshold, so tie-safe",
    "torchspd": "autograd.Function; divided differences, with a series (logm) or 3-point Gauss-Legendre quadrature "
    "of f' for close eigenvalues, so tie-safe",
    "geoopt": "TorchScript eigh + Q f(L) Q^T, differentiated by torch's autograd: the eigh backward, not tie-safe",
}


def write_markdown(
    path: str,
    cfg: BenchConfig,
    env: list[str],
    results: list[SpectralResult],
    ties: dict[tuple[str, str], dict[str, tuple[float, float]]],
    stages: list[tuple[str, list[tuple[str, float]], str]],
    o2p: list[O2PResult],
    ncut: list[dict[str, Any]],
    compare: dict[str, Any] | None,
    goals: list[Goal],
    plot_path: str | None,
    multi_device: bool,
) -> None:
    """Write the generated benchmark page (``docs/benchmarks.md`` by default) from one run's results."""
    out: list[str] = ["# Benchmarks", ""]
    out += [
        "Generated by `benchmarks/bench_spectral.py` (do not edit by hand; rerun the command below). "
        "Absolute times depend on the machine and its load; the ratios, measured side by side in one "
        "process with interleaved, order-rotated repetitions, are the meaningful part.",
        "",
    ]
    if cfg.quick:
        out += [
            "**This page comes from a `--quick` run (small sizes, few repetitions): format only, not results.**",
            "",
        ]
    out += [f"- {line}" for line in env] + [""]
    out += ["## Goals (issue 6)", "", T.format_markdown(("goal", "measured", "status"), [g.row() for g in goals]), ""]
    if results:
        methods: dict[str, Method] = {}
        apis: dict[str, list[str]] = {}  # one row per method, listing its call for each function
        for r in results:
            for m in r.methods:
                methods.setdefault(m.name, m)
                if f"`{m.api}`" not in apis.setdefault(m.name, []):
                    apis[m.name].append(f"`{m.api}`")
        used = {r.device for r in results}
        out += ["## Spectral functions: forward + backward", ""]
        out += [
            "Every method returns `Y = f(X)` and `dL/dX` for the same upstream gradient `G` through "
            "`torch.autograd.grad`. Inputs: random SPD `X = A A^T / n + I` (eigenvalues about 1 to 5).",
            "",
            T.format_markdown(
                ("method", "calls", "what it is"),
                [
                    (
                        name,
                        " / ".join(apis[name]),
                        PEER_NOTES.get(name, METHOD_NOTES[m.kind]) + (f"; {m.note}" if m.run is None else ""),
                    )
                    for name, m in methods.items()
                ],
            ),
            "",
            "Columns: median and interquartile range (25th-75th percentile) of the wall time; ratios of "
            "medians to `autograd` and to the `eigh forward` floor; `peak MB`: peak of live tensor bytes "
            "allocated during one forward+backward call (outputs included, the inputs `X` and `G` not), "
            "measured once per method outside the timed loop"
            + (
                " from `torch.profiler(profile_memory=True)` allocation/free events integrated in time order "
                "(torch's CPU allocator only: LAPACK's internal workspaces are not seen)"
                if "cpu" in used
                else ""
            )
            + (", and `torch.cuda.max_memory_allocated` on CUDA" if "cuda" in used else "")
            + "; `peak / input`: that peak over the bytes of `X`; `Y err`, `grad err`: max over the batch of "
            "`max|a - ref| / max|ref|` against a float64 Daleckii-Krein reference (for the gradient, of its "
            "symmetric part, the part that acts on symmetric perturbations); `reps`: timed repetitions.",
            "",
            T.format_markdown(SPEC_HEADER, spectral_rows(results, multi_device)),
            "",
        ]
        if plot_path:
            rel = os.path.relpath(plot_path, os.path.dirname(os.path.abspath(path)))
            out += [f"![time per method over plain autograd]({rel})", ""]
    if ties:
        header, rows = tie_rows(ties)
        out += [
            "## Ties: an exactly repeated eigenvalue",
            "",
            "`X = R diag(2, 2, 3, 4, 5, 6, 7, 8) R^T` (batch of 4 random rotations `R`), upstream `G` random. "
            "Relative error of `sym(dL/dX)` against the exact Daleckii-Krein gradient built from the known "
            "`R` and eigenvalues (`f'(2)` on the tied pair). Plain autograd divides by the (rounding-level) gap "
            "of the tied pair.",
            "",
            T.format_markdown(header, rows),
            "",
        ]
    if stages:
        out += [
            "## Where the time goes",
            "",
            "Stage timers rebuilt from public torch ops that mirror matbackprop's implementation (apart "
            "from the Loewner matrix they are not the library's code), interleaved medians; then `torch.profiler` on three real "
            "`matbackprop.logm` forward+backward calls. Any eigh route with an exact backward needs the eigh "
            "plus five batched products (one to form `Q f(L) Q^T`, four for `Q (F o Q^T G Q) Q^T`), so "
            "`fwd: eigh` + the product rows bound the best achievable ratio to the eigh floor (the last row "
            "of each table, a ratio, not milliseconds): where it exceeds 1.25, that goal is out of reach for "
            "this formulation on this machine.",
            "",
        ]
    for spec, stage_rows, table in stages:
        total = dict(stage_rows).get("total: matbackprop check=False", float("nan"))
        out += [
            f"### logm at {spec}",
            "",
            T.format_markdown(
                ("stage", "median ms", "% of matbackprop check=False"),
                [
                    (n, f"{t:.2f}x", "") if "ratio" in n else (n, fmt_ms(t), f"{100 * t / total:.0f}%")
                    for n, t in stage_rows
                ],
            ),
            "",
            "```",
            table.strip(),
            "```",
            "",
        ]
    if o2p:
        out += ["## SecondOrderPooling throughput", ""]
        for o in o2p:
            B, C, H, W = o.shape
            out += [
                f"`matbackprop.nn.SecondOrderPooling(output='triu')` forward+backward on features {B}x{C}x{H}x{W} "
                f"float32 with {o.regions} quadrant masks per image ({B * o.regions} regions of {C}x{C} per call).",
                "",
            ]
            out += [T.format_markdown(("route / normalization", "median ms", "regions / s", "reps"), o2p_rows(o)), ""]
    if ncut or compare:
        out += ["## Normalized cuts: ncut_embedding + projector_loss", ""]
        if ncut:
            out += [
                "Forward+backward of `projector_loss(ncut_embedding(F, k), labels)` for non-negative `F (N, d)`, "
                "random labels with 8 segments; each configuration in a fresh process. `tensor peak MB`: peak of live "
                "tensor bytes during one step (torch.profiler memory events, as above; the gradient and the "
                "intermediates, not the input `F`); `RSS peak extra MB`: growth of the process's resident-set "
                "high-water mark (VmHWM) over its size once the inputs were built, which also counts allocator "
                "caching, thread pools and LAPACK workspaces (a fixed few tens of MB that dominate at small N). "
                "On CUDA the step runs on the device: `tensor peak MB` is then `torch.cuda.max_memory_allocated` "
                "growth and the RSS column is host memory only.",
                "",
                T.format_markdown(NCUT_HEADER, ncut_rows(ncut)),
                "",
            ]
        if compare:
            out += [
                "Against ncut-pytorch's exact-gradient path, in one process, interleaved: "
                "`ncut_pytorch.ncut_fn(F, n_eig=k, exact_gradient=True)` (for N > 8192 it samples 1/4 of the "
                "nodes by farthest-point sampling, builds a dense RBF affinity on them and takes the full "
                "`torch.linalg.eigh`, then propagates by Nystrom) followed by the same `projector_loss`. "
                "The two do not compute the same embedding (RBF vs linear affinity); the comparison is the "
                "cost of an exact-gradient normalized-cuts layer at this size.",
                "",
                T.format_markdown(COMPARE_HEADER, [compare_row(compare)]),
                "",
            ]
    out += [
        "## How it was measured",
        "",
        "- Timing: all methods of a configuration in one process; each repetition runs every method once, in "
        "an order rotated from one repetition to the next; garbage collection is off inside a repetition. "
        "The accuracy call and the memory call are the first warm-up calls. Repetitions stop at `--repeats`, or "
        "after `--min-repeats` once the per-configuration `--budget` is spent, so the largest sizes have fewer.",
        "- Threads: torch's default thread count unless a ~2 s probe shows it stalls under CPU contention, then 1 "
        "thread; `--threads N` sets it (N > 1 has been seen to hang inside MKL's batched eigh for n >= ~192 on "
        "small shared machines).",
        "- Peers are installed only through the optional extra `pip install -e .[peers]`; never a core dependency.",
        "",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out))
