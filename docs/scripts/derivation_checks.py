"""Finite-difference oracle for the formulas of ``docs/derivations.md`` (float64, numpy only).

Each check builds the closed-form first-order variation (or gradient) that the derivations page states
and compares it with a central finite difference ``(f(X + h E) - f(X - h E)) / 2h`` in a random
direction ``E``. It uses no code of the library, so it checks the formulas themselves; the test suite
checks the implementation against them (``tests/test_derivation_checks.py`` runs this oracle).

Run ``python docs/scripts/derivation_checks.py``: every error printed should be about 1e-7 or smaller,
except the deliberately wrong "K instead of K^T" eigenvector backward, which must be O(1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Array = np.ndarray
H = 1e-6  # central differences: truncation O(H^2), rounding O(eps / H); both about 1e-10 relative


def sym(A: Array) -> Array:
    return 0.5 * (A + A.T)


def inner(A: Array, B: Array) -> float:
    """Frobenius inner product ``A : B = tr(A^T B)``."""
    return float(np.sum(A * B))


def central(f: Callable[[Array], Array], X: Array, E: Array) -> Array:
    return (f(X + H * E) - f(X - H * E)) / (2 * H)


def rel(a: float | Array, b: float | Array) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _signed_eigh(X: Array) -> tuple[Array, Array]:
    """``eigh`` with a deterministic eigenvector sign (largest-magnitude entry positive), so a finite
    difference of ``Q`` compares like with like."""
    w, Q = np.linalg.eigh(X)
    k = np.argmax(np.abs(Q), axis=0)
    return w, Q * np.sign(Q[k, np.arange(Q.shape[1])])


def _signed_svd(A: Array) -> tuple[Array, Array, Array]:
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    V = Vt.T
    k = np.argmax(np.abs(V), axis=0)
    sign = np.sign(V[k, np.arange(V.shape[1])])
    return U * sign, s, V * sign


def _gap_inverse(w: Array, square: bool = False) -> Array:
    """``Kt_ij = 1 / (w_i - w_j)`` (``1 / (w_i^2 - w_j^2)`` with ``square``), 0 on the diagonal."""
    a = w**2 if square else w
    d = a[:, None] - a[None, :]
    np.fill_diagonal(d, np.inf)
    return 1.0 / d


def eigh_checks(rng: np.random.Generator, n: int = 6) -> dict[str, float]:
    """Section 2: ``dL = diag(Q^T dX Q)``, ``dQ = Q (Kt^T o Q^T dX Q)``, and the backward
    ``dL/dX = Q (Kt^T o Q^T g_Q + diag(g_L)) Q^T`` (its symmetric part acts on symmetric directions)."""
    X, E = sym(rng.standard_normal((n, n))), sym(rng.standard_normal((n, n)))
    w, Q = _signed_eigh(X)
    Kt = _gap_inverse(w)
    P = Q.T @ E @ Q
    out = {
        "eigh dL": rel(central(lambda Y: _signed_eigh(Y)[0], X, E), np.diag(P)),
        "eigh dQ": rel(central(lambda Y: _signed_eigh(Y)[1], X, E), Q @ (Kt.T * P)),
    }
    gQ, gL = rng.standard_normal((n, n)), rng.standard_normal(n)

    def loss(Y: Array) -> float:
        wy, Qy = _signed_eigh(Y)
        return inner(gQ, Qy) + float(gL @ wy)

    fd = float(central(lambda Y: np.asarray(loss(Y)), X, E))
    G = Q @ (Kt.T * (Q.T @ gQ) + np.diag(gL)) @ Q.T
    out["eigh backward"] = rel(inner(sym(G), E), fd)
    wrong = Q @ (Kt * (Q.T @ gQ) + np.diag(gL)) @ Q.T  # the transpose the page warns about
    out["eigh backward with K (must be O(1))"] = rel(inner(sym(wrong), E), fd)
    return out


def svd_checks(rng: np.random.Generator, m: int = 7, n: int = 4) -> dict[str, float]:
    """Section 3 (``m >= n``, thin SVD ``A = U S V^T``): ``dS = diag(U^T dA V)``,
    ``dV = 2 V (K^T o sym(S U^T dA V))`` with ``K_ij = 1 / (s_i^2 - s_j^2)``, and the backward for a loss
    of ``S`` and ``V``: ``dL/dA = U (diag(g_S) + 2 S sym(K^T o V^T g_V)) V^T``."""
    A, E = rng.standard_normal((m, n)), rng.standard_normal((m, n))
    U, s, V = _signed_svd(A)
    K = _gap_inverse(s, square=True)
    S = np.diag(s)
    P = U.T @ E @ V
    out = {
        "svd dS": rel(central(lambda B: _signed_svd(B)[1], A, E), np.diag(P)),
        "svd dV": rel(central(lambda B: _signed_svd(B)[2], A, E), 2 * V @ (K.T * sym(S @ P))),
    }
    gV, gS = rng.standard_normal((n, n)), rng.standard_normal(n)

    def loss(B: Array) -> Array:
        _, sb, Vb = _signed_svd(B)
        return np.asarray(inner(gV, Vb) + float(gS @ sb))

    G = U @ (np.diag(gS) + 2 * S @ sym(K.T * (V.T @ gV))) @ V.T
    out["svd backward (S, V)"] = rel(inner(G, E), central(loss, A, E))
    return out


def daleckii_krein_checks(rng: np.random.Generator, n: int = 5) -> dict[str, float]:
    """Section 4: ``Df(X)[E] = Q (F o Q^T E Q) Q^T`` with the Loewner matrix ``F_ij = f[l_i, l_j]``,
    for log, sqrt and exp, including an exactly repeated eigenvalue (``F_ii = f'(l_i)`` on the tie)."""
    out = {}
    R, _ = np.linalg.qr(rng.standard_normal((n, n)))
    spectra = {"distinct": np.array([0.5, 1.0, 2.0, 3.5, 5.0]), "tied": np.array([2.0, 2.0, 3.0, 4.0, 6.0])}
    funcs = {
        "log": (np.log, lambda x: 1 / x),
        "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(x)),
        "exp": (np.exp, np.exp),
    }
    E = sym(rng.standard_normal((n, n)))
    for label, lam in spectra.items():
        X = sym((R * lam) @ R.T)
        for name, (f, df) in funcs.items():

            def fX(Y: Array, f: Callable[[Array], Array] = f) -> Array:
                w, Q = np.linalg.eigh(Y)
                return (Q * f(w)) @ Q.T

            a, b = lam[:, None], lam[None, :]
            same = np.isclose(a, b)
            F = np.where(same, df(a + 0 * b), (f(a) - f(b)) / np.where(same, 1.0, a - b))
            out[f"Daleckii-Krein {name} ({label})"] = rel(central(fX, X, E), R @ (F * (R.T @ E @ R)) @ R.T)
    return out


def o2p_check(rng: np.random.Generator, m: int = 20, n: int = 5, eps: float = 0.1) -> dict[str, float]:
    """Second-order pooling ``Y = log(F^T F + eps I)``: ``dL/dF = 2 F sym(dL/dC)`` with ``dL/dC`` the
    Daleckii-Krein adjoint ``Q (Lw o Q^T sym(G) Q) Q^T`` at ``C = F^T F + eps I``."""
    F0, E, G = rng.standard_normal((m, n)), rng.standard_normal((m, n)), sym(rng.standard_normal((n, n)))

    def loss(F: Array) -> Array:
        w, Q = np.linalg.eigh(F.T @ F + eps * np.eye(n))
        return np.asarray(inner(G, (Q * np.log(w)) @ Q.T))

    w, Q = np.linalg.eigh(F0.T @ F0 + eps * np.eye(n))
    a, b = w[:, None], w[None, :]
    same = np.isclose(a, b)
    Lw = np.where(same, 1 / a, (np.log(a) - np.log(b)) / np.where(same, 1.0, a - b))
    gC = Q @ (Lw * (Q.T @ G @ Q)) @ Q.T
    return {"O2P log(F^T F + eps I) backward": rel(inner(2 * F0 @ sym(gC), E), central(loss, F0, E))}


def projector_checks(rng: np.random.Generator, m: int = 9, k: int = 3) -> dict[str, float]:
    """Section 6: ``Pi = Z (Z^T Z)^-1 Z^T`` has ``dPi = 2 sym((I - Pi) dZ Z^+)`` and the backward
    ``dL/dZ = 2 (I - Pi) sym(G) Z^+T``; the top-``k`` eigenspace projector of symmetric ``M`` has
    ``dP = U (Kh o U^T dM U) U^T`` with ``Kh_ij = 1 / (w_sel - w_unsel)`` on the cross pairs, 0 elsewhere."""
    Z, dZ, G = rng.standard_normal((m, k)), rng.standard_normal((m, k)), rng.standard_normal((m, m))

    def proj(Y: Array) -> Array:
        return Y @ np.linalg.solve(Y.T @ Y, Y.T)

    Pi, Zp = proj(Z), np.linalg.pinv(Z)
    out = {
        "projector dPi": rel(central(proj, Z, dZ), 2 * sym((np.eye(m) - Pi) @ dZ @ Zp)),
        "projector backward": rel(
            inner(2 * (np.eye(m) - Pi) @ sym(G) @ Zp.T, dZ), central(lambda Y: np.asarray(inner(G, proj(Y))), Z, dZ)
        ),
    }
    M, dM = sym(rng.standard_normal((m, m))), sym(rng.standard_normal((m, m)))

    def top(Y: Array) -> Array:
        w, U = np.linalg.eigh(Y)
        Uk = U[:, np.argsort(-w)[:k]]
        return Uk @ Uk.T

    w, U = np.linalg.eigh(M)
    order = np.argsort(-w)
    w, U = w[order], U[:, order]
    sel = np.arange(m) < k
    d = w[:, None] - w[None, :]
    cross = sel[:, None] != sel[None, :]
    Kh = np.where(cross, 1.0 / np.where(cross, np.where(sel[:, None], d, -d), 1.0), 0.0)
    out["top-k eigenspace projector dP"] = rel(central(top, M, dM), U @ (Kh * (U.T @ dM @ U)) @ U.T)
    return out


def all_checks(seed: int = 0) -> dict[str, float]:
    """Every check's relative error (max over entries of ``|formula - finite difference|`` over the
    largest finite-difference entry)."""
    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    for check in (eigh_checks, svd_checks, daleckii_krein_checks, o2p_check, projector_checks):
        out |= check(rng)
    return out


if __name__ == "__main__":
    for name, err in all_checks().items():
        print(f"{name:45s} {err:.1e}")
