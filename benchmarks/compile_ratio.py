"""Compiled vs eager time of the spectral core, forward + backward, with and without input checks.

For each function (``logm``, ``sqrtm``, ``eigh`` through a projector loss, thin ``svd``), batch shape and
dtype, ``torch.compile(fullgraph=True)`` is built once (its compile time is reported separately) and
then timed against eager, interleaved (``_timing.interleaved``), for ``check=False`` and ``check=True``.
The ratio ``compiled / eager`` (< 1: compiled is faster) is what the benchmark page quotes; the
``check=True`` column shows what the checks cost under compile (branch-free assertions,
``docs/transforms.md``).

Use from another benchmark::

    from compile_ratio import compile_ratios
    rows = compile_ratios([(64, 16)], ["float32"], functions=["logm"])

or as a script: ``.venv/bin/python benchmarks/compile_ratio.py --sizes 64x16,8x64 --dtypes float32``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matbackprop as mb

from _timing import format_markdown, format_plain, interleaved, parse_dtypes, parse_sizes


def _eigh_projector(X: torch.Tensor, check: bool) -> torch.Tensor:
    _, Q = mb.eigh(X, check=check)
    k = X.shape[-1] // 2
    return (Q[..., :, k:] @ Q[..., :, k:].mT).diagonal(dim1=-2, dim2=-1).pow(2)


def _svd_values(X: torch.Tensor, check: bool) -> torch.Tensor:
    U, S, Vh = mb.svd(X, check=check)
    return S + (U[..., :1, :] @ Vh[..., :, :1]).squeeze(-1)


FUNCTIONS: dict[str, Callable[[torch.Tensor, bool], torch.Tensor]] = {
    "logm": lambda X, check: mb.logm(X, check=check),
    "sqrtm": lambda X, check: mb.sqrtm(X, check=check),
    "eigh (projector)": _eigh_projector,
    "svd (values)": _svd_values,
}


@dataclass
class Row:
    function: str
    batch: int
    n: int
    dtype: str
    check: bool
    eager_ms: float
    compiled_ms: float
    compile_s: float

    @property
    def ratio(self) -> float:
        return self.compiled_ms / self.eager_ms


def _step(fn: Callable[[torch.Tensor, bool], torch.Tensor], X: torch.Tensor, check: bool) -> Callable[[], object]:
    def run() -> object:
        Y = fn(X, check)
        return torch.autograd.grad(Y.sum(), X)

    return run


def compile_ratios(
    sizes: Sequence[tuple[int, int]],
    dtypes: Sequence[str],
    functions: Sequence[str] = tuple(FUNCTIONS),
    repeats: int = 15,
    budget_s: float = 10.0,
) -> list[Row]:
    """Median forward+backward times (ms) of eager and compiled calls, one :class:`Row` per case."""
    rows = []
    for name in functions:
        fn = FUNCTIONS[name]
        for batch, n in sizes:
            for dtype_name in dtypes:
                dtype = getattr(torch, dtype_name)
                gen = torch.Generator().manual_seed(0)
                A = torch.randn(batch, n, n, dtype=dtype, generator=gen)
                X = (A @ A.mT / n + torch.eye(n, dtype=dtype)).requires_grad_(True)
                for check in (False, True):
                    torch._dynamo.reset()
                    compiled = torch.compile(fn, fullgraph=True)
                    t0 = time.perf_counter()
                    _step(compiled, X, check)()  # compiles forward and backward
                    compile_s = time.perf_counter() - t0
                    timings = interleaved(
                        [("eager", _step(fn, X, check)), ("compiled", _step(compiled, X, check))],
                        repeats=repeats,
                        min_repeats=5,
                        budget_s=budget_s,
                        start=time.perf_counter(),
                    )
                    med = {k: sorted(v)[len(v) // 2] * 1e3 for k, v in timings.times.items()}
                    rows.append(Row(name, batch, n, dtype_name, check, med["eager"], med["compiled"], compile_s))
    return rows


def table(rows: Sequence[Row], markdown: bool = False) -> str:
    header = ["function", "batch x n", "dtype", "check", "eager ms", "compiled ms", "compiled/eager", "compile s"]
    body = [
        [
            r.function,
            f"{r.batch} x {r.n}",
            r.dtype,
            str(r.check),
            f"{r.eager_ms:.2f}",
            f"{r.compiled_ms:.2f}",
            f"{r.ratio:.2f}",
            f"{r.compile_s:.1f}",
        ]
        for r in rows
    ]
    return format_markdown(header, body) if markdown else format_plain(header, body, left=1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64x16,8x64", help="batch x n, comma separated (default 64x16,8x64)")
    parser.add_argument("--dtypes", default="float32", help="comma separated (default float32)")
    parser.add_argument("--functions", default=",".join(FUNCTIONS), help="comma separated names")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = compile_ratios(parse_sizes(args.sizes), parse_dtypes(args.dtypes), args.functions.split(","))
    print(table(rows, markdown=args.markdown))


if __name__ == "__main__":
    main()
