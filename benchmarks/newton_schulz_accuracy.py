"""Accuracy of the coupled Newton-Schulz square roots against the eigendecomposition-based ones.

For random SPD matrices ``X = Q diag(l) Q^T`` (Haar-random ``Q``, ``n`` eigenvalues log-spaced from 1
down to ``1 / cond``) this measures, for 1..``max_iters`` iterations,

* the forward error   ``||ns(X) - f(X)||_F / ||f(X)||_F``,
* the gradient error  ``||sym(g_ns) - g||_F / ||g||_F`` of the loss ``<G, f(X)>`` for a random
  symmetric ``G`` (``g_ns`` by autograd through the iterations, ``g`` by the Daleckii-Krein backward),

for ``f = sqrt`` (:func:`matbackprop.sqrtm_newton_schulz` vs :func:`matbackprop.sqrtm`) and
``f = 1/sqrt`` (:func:`matbackprop.invsqrtm_newton_schulz` vs :func:`matbackprop.invsqrtm`), in float64
and float32. The reference is always computed in float64 from the very matrix the iteration saw (the
float32 input upcast), so a float32 row measures the total error of the float32 computation. For
comparison, the ``eig float32`` row gives the same errors for the eigendecomposition route run in float32.
Each entry is the worst over ``--trials`` random matrices.

Run from the repository root:

    .venv/bin/python benchmarks/newton_schulz_accuracy.py

It prints Markdown tables and writes ``docs/figures/newton_schulz_accuracy.png``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import matbackprop as mb

CONDS = (1e1, 1e2, 1e3, 1e4, 1e6)
FUNCTIONS = {
    "sqrt": (mb.sqrtm_newton_schulz, mb.sqrtm),
    "invsqrt": (mb.invsqrtm_newton_schulz, mb.invsqrtm),
}
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def spd_with_condition(n: int, cond: float, generator: torch.Generator) -> torch.Tensor:
    """``Q diag(l) Q^T`` in float64 with ``l`` log-spaced in ``[1/cond, 1]`` and Haar-random ``Q``."""
    A = torch.randn(n, n, dtype=torch.float64, generator=generator)
    Q, R = torch.linalg.qr(A)
    Q = Q * torch.sign(torch.diagonal(R)).unsqueeze(-2)
    l = torch.logspace(0.0, -math.log10(cond), n, dtype=torch.float64)
    X = (Q * l) @ Q.mT
    return 0.5 * (X + X.mT)


def random_symmetric(n: int, generator: torch.Generator) -> torch.Tensor:
    A = torch.randn(n, n, dtype=torch.float64, generator=generator)
    return 0.5 * (A + A.mT)


def value_and_grad(fn, X: torch.Tensor, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``f(X)`` and the symmetrised gradient of ``<G, f(X)>``, both in float64."""
    X = X.detach().clone().requires_grad_(True)
    Y = fn(X)
    (g,) = torch.autograd.grad((Y * G.to(Y.dtype)).sum(), X)
    g = 0.5 * (g + g.mT)
    return Y.detach().double(), g.double()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def measure(n: int, max_iters: int, trials: int, seed: int):
    """errors[(func, dtype_name)][cond] = {"fwd": [..per iteration..], "grad": [...], "eig_fwd", "eig_grad"}."""
    errors: dict = {}
    gen = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(trials):
        for cond in CONDS:
            cases.append((cond, spd_with_condition(n, cond, gen), random_symmetric(n, gen)))
    for fname, (ns_fn, ref_fn) in FUNCTIONS.items():
        for dname, dtype in DTYPES.items():
            table = errors.setdefault((fname, dname), {})
            for cond, X64, G in cases:
                X = X64.to(dtype)
                Y_ref, g_ref = value_and_grad(ref_fn, X.double(), G)  # exact f of the matrix actually used
                entry = table.setdefault(
                    cond, {"fwd": [0.0] * max_iters, "grad": [0.0] * max_iters, "eig_fwd": 0.0, "eig_grad": 0.0}
                )
                for k in range(1, max_iters + 1):
                    Y, g = value_and_grad(lambda A, k=k, ns_fn=ns_fn: ns_fn(A, num_iters=k), X, G)
                    entry["fwd"][k - 1] = max(entry["fwd"][k - 1], rel(Y, Y_ref))
                    entry["grad"][k - 1] = max(entry["grad"][k - 1], rel(g, g_ref))
                Y, g = value_and_grad(ref_fn, X, G)  # the eigendecomposition route in this dtype
                entry["eig_fwd"] = max(entry["eig_fwd"], rel(Y, Y_ref))
                entry["eig_grad"] = max(entry["eig_grad"], rel(g, g_ref))
    return errors


def first_below(errs: list[float], tol: float) -> str:
    # The first iteration count from which the error stays below tol up to max_iters.
    for k in range(len(errs)):
        if all(e <= tol for e in errs[k:]):
            return str(k + 1)
    return f">{len(errs)}"


def print_tables(errors, max_iters: int, n: int) -> None:
    for (fname, dname), table in errors.items():
        print(f"\n### f = {fname}, {dname}: relative Frobenius error, forward / gradient\n")
        head = "| iters | " + " | ".join(f"{c:.0e} fwd | {c:.0e} grad" for c in CONDS) + " |"
        print(head)
        print("|" + "---:|" * (1 + 2 * len(CONDS)))
        for k in range(max_iters):
            cells = " | ".join(f"{table[c]['fwd'][k]:.1e} | {table[c]['grad'][k]:.1e}" for c in CONDS)
            print(f"| {k + 1} | {cells} |")
        if dname != "float64":  # in float64 the eigendecomposition route is the reference itself
            cells = " | ".join(f"{table[c]['eig_fwd']:.1e} | {table[c]['eig_grad']:.1e}" for c in CONDS)
            print(f"| eig {dname} | {cells} |")

    print("\n### Iterations needed (error stays at or below the tolerance, forward and gradient)\n")
    print("| f | dtype | tol | " + " | ".join(f"cond {c:.0e}" for c in CONDS) + " |")
    print("|---|---|---|" + "---:|" * len(CONDS))
    for (fname, dname), table in errors.items():
        for tol in (1e-3, 1e-6):
            cells = []
            for c in CONDS:
                worst = [max(a, b) for a, b in zip(table[c]["fwd"], table[c]["grad"])]
                cells.append(first_below(worst, tol))
            print(f"| {fname} | {dname} | {tol:.0e} | " + " | ".join(cells) + " |")

    print(f"\n### Effective conditioning seen by the iteration: tr(X) / lambda_min (n = {n})\n")
    print("| cond | " + " | ".join(f"{c:.0e}" for c in CONDS) + " |")
    print("|---|" + "---:|" * len(CONDS))
    ratios = []
    for c in CONDS:
        l = torch.logspace(0.0, -math.log10(c), n, dtype=torch.float64)
        ratios.append(f"{float(l.sum() / l.min()):.1e}")
    print("| tr/lambda_min | " + " | ".join(ratios) + " |")


def plot(errors, max_iters: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True, sharey=True)
    iters = list(range(1, max_iters + 1))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for col, fname in enumerate(FUNCTIONS):
        for row, kind in enumerate(("fwd", "grad")):
            ax = axes[row, col]
            for ci, cond in enumerate(CONDS):
                for dname, style in (("float64", "-"), ("float32", "--")):
                    errs = [max(e, 1e-17) for e in errors[(fname, dname)][cond][kind]]
                    label = f"cond {cond:.0e}" if dname == "float64" else None
                    ax.semilogy(iters, errs, style, color=colors[ci], label=label)
            ax.axhline(1e-3, color="grey", lw=0.5)
            ax.axhline(1e-6, color="grey", lw=0.5)
            what = "forward" if kind == "fwd" else "gradient"
            ax.set_title(f"{fname}: {what} (solid float64, dashed float32)")
            ax.grid(True, which="major", alpha=0.3)
            ax.set_xticks([1, 5, 10, 15, 20] if max_iters == 20 else iters[:: max(1, max_iters // 5)])
            if row == 1:
                ax.set_xlabel("Newton-Schulz iterations")
            if col == 0:
                ax.set_ylabel("relative Frobenius error")
    axes[0, 0].legend(loc="lower left", fontsize=8)
    axes[0, 0].set_ylim(1e-17, 10.0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=64, help="matrix size (default 64)")
    parser.add_argument("--max-iters", type=int, default=20, help="largest iteration count (default 20)")
    parser.add_argument("--trials", type=int, default=3, help="random matrices per condition number (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, default=Path("docs/figures/newton_schulz_accuracy.png"))
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()

    start = time.perf_counter()
    errors = measure(args.n, args.max_iters, args.trials, args.seed)
    print(
        f"n = {args.n}, trials = {args.trials} (worst case shown), seed = {args.seed}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print_tables(errors, args.max_iters, args.n)
    if not args.no_plot:
        plot(errors, args.max_iters, args.plot)
        print(f"\nplot written to {args.plot}")
    print(f"elapsed {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
