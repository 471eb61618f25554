"""torch.func transforms on the math core: vmap, jacrev, jacfwd, jvp, hessian (float64).

References are independent of the code under test: central finite differences along symmetric
directions (the derivative convention of every spectral function: ``Df(X)[sym(dX)]``), and the
Daleckii-Krein formula evaluated on an eigendecomposition that the test builds itself.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import grad, hessian, jacfwd, jacrev, jvp, linearize, vmap

import matbackprop as mb

DT = torch.float64
N = 4

SPECTRAL = {
    "logm": (mb.logm, math.log, lambda x: 1 / x),
    "sqrtm": (mb.sqrtm, math.sqrt, lambda x: 0.5 / math.sqrt(x)),
    "invsqrtm": (mb.invsqrtm, lambda x: x**-0.5, lambda x: -0.5 * x**-1.5),
    "expm": (mb.expm, math.exp, math.exp),
    "powm(0.7)": (lambda X: mb.powm(X, 0.7), lambda x: x**0.7, lambda x: 0.7 * x**-0.3),
    "powm(-1.5)": (lambda X: mb.powm(X, -1.5), lambda x: x**-1.5, lambda x: -1.5 * x**-2.5),
    "clamp_eigs(1.2)": (lambda X: mb.clamp_eigs(X, 1.2), lambda x: max(x, 1.2), lambda x: float(x > 1.2)),
    "funm(sin)": (
        lambda X: mb.funm(X, torch.sin, torch.cos),
        math.sin,
        math.cos,
    ),
}


def _rotation(seed: int, n: int = N) -> torch.Tensor:
    Q, _ = torch.linalg.qr(torch.randn(n, n, dtype=DT, generator=torch.Generator().manual_seed(seed)))
    return Q


def _matrix(values: list[float], seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``X = Q diag(values) Q^T`` (exactly symmetrised) with the exact ``(L, Q)`` used to build it."""
    Q = _rotation(seed, len(values))
    L = torch.tensor(values, dtype=DT)
    X = Q @ torch.diag(L) @ Q.T
    return 0.5 * (X + X.T), L, Q


GENERIC = [0.5, 1.1, 2.0, 3.7]
TIED = [0.8, 2.0, 2.0, 2.0]  # a triple eigenvalue: plain autograd through eigh divides by zero here


def _sym_basis(i: int, j: int, n: int = N) -> torch.Tensor:
    E = torch.zeros(n, n, dtype=DT)
    E[i, j] += 0.5
    E[j, i] += 0.5
    return E


def _fd_jacobian(f, X: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """``J[..., i, j] = (f(X + h E_ij) - f(X - h E_ij)) / 2h`` along ``E_ij = sym(e_i e_j^T)``."""
    n = X.shape[-1]
    cols = [
        [(f(X + h * _sym_basis(i, j, n)) - f(X - h * _sym_basis(i, j, n))) / (2 * h) for j in range(n)]
        for i in range(n)
    ]
    return torch.stack([torch.stack(row, dim=-1) for row in cols], dim=-2)


def _dk_reference(L: torch.Tensor, Q: torch.Tensor, f, df, E: torch.Tensor) -> torch.Tensor:
    """Daleckii-Krein ``Q (K o Q^T sym(E) Q) Q^T`` from the exact spectrum; ``f'`` on exact ties."""
    n = L.shape[-1]
    K = torch.empty(n, n, dtype=DT)
    for i in range(n):
        for j in range(n):
            a, b = float(L[i]), float(L[j])
            K[i, j] = df(a) if a == b else (f(a) - f(b)) / (a - b)
    return Q @ (K * (Q.T @ (0.5 * (E + E.T)) @ Q)) @ Q.T


# ---------------------------------------------------------------------------------------------------
# vmap


@pytest.mark.parametrize("name", list(SPECTRAL))
def test_vmap_equals_batched_call(name):
    fn = SPECTRAL[name][0]
    X = torch.stack([_matrix(GENERIC, s)[0] for s in range(3)] + [_matrix(TIED, 7)[0]])
    assert torch.allclose(vmap(fn)(X), fn(X), atol=1e-13, rtol=0)
    # vmapped over a middle dimension, and nested
    assert torch.allclose(
        vmap(fn, in_dims=1, out_dims=1)(X.unsqueeze(1).transpose(0, 1)), fn(X.unsqueeze(0)), atol=1e-13
    )
    assert torch.allclose(vmap(vmap(fn))(X.reshape(2, 2, N, N)), fn(X).reshape(2, 2, N, N), atol=1e-13)


def test_vmap_eigh_svd_and_per_sample_gradients():
    X = torch.stack([_matrix(GENERIC, s)[0] for s in range(3)])
    L, Q = vmap(mb.eigh)(X)
    Lb, Qb = mb.eigh(X)
    assert torch.allclose(L, Lb, atol=1e-14) and torch.allclose(Q.abs(), Qb.abs(), atol=1e-12)
    A = torch.randn(3, 5, 3, dtype=DT, generator=torch.Generator().manual_seed(3))
    for got, want in zip(vmap(mb.svd)(A), mb.svd(A)):
        assert torch.allclose(got.abs(), want.abs(), atol=1e-12)
    per_sample = vmap(grad(lambda x: mb.logm(x).pow(2).sum()))(X)
    for b in range(3):
        Xb = X[b].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(mb.logm(Xb).pow(2).sum(), Xb)
        assert torch.allclose(per_sample[b], g, atol=1e-12)


def test_checks_under_vmap_name_the_batch_index():
    """vmap sees one matrix at a time; the checks read the whole physical batch and keep their errors."""
    X = torch.stack([_matrix(GENERIC, s)[0] for s in range(4)])
    X[2, 0, 1] += 1e-3
    with pytest.raises(ValueError, match=r"logm: input is not symmetric at batch index \(2,\)"):
        vmap(mb.logm)(X)
    Y = torch.stack([_matrix(GENERIC, s)[0] for s in range(3)])
    Y[1] = -Y[1]
    with pytest.raises(ValueError, match=r"logm: input must be positive definite at batch index \(1,\)"):
        vmap(mb.logm)(Y)


# ---------------------------------------------------------------------------------------------------
# Jacobians: reverse == forward == finite differences, generic and tied spectra


@pytest.mark.parametrize("spectrum", ["generic", "tied"])
@pytest.mark.parametrize("name", list(SPECTRAL))
def test_jacrev_equals_jacfwd_equals_finite_differences(name, spectrum):
    fn = SPECTRAL[name][0]
    X, _, _ = _matrix(GENERIC if spectrum == "generic" else TIED, seed=11)
    J_rev, J_fwd = jacrev(fn)(X), jacfwd(fn)(X)
    # jacrev/jacfwd differentiate w.r.t. each entry X_ij; by the symmetric convention that is the
    # derivative along sym(e_i e_j^T), which is what the finite differences perturb.
    J_fd = _fd_jacobian(fn, X)
    scale = J_fd.abs().max()
    assert torch.allclose(J_rev, J_fwd, atol=1e-12 * scale, rtol=0)
    assert torch.allclose(J_fwd, J_fd, atol=1e-7 * scale, rtol=0)


def _eigh_projector_loss(X: torch.Tensor) -> torch.Tensor:
    """Loss through the eigenvectors of a tied cluster only via its projector (well defined at ties)."""
    L, Q = mb.eigh(X)
    P = Q[..., 1:] @ Q[..., 1:].transpose(-2, -1)  # projector onto the top three (tied) eigenvectors
    W = torch.arange(N * N, dtype=DT).reshape(N, N) / (N * N)
    return (W * P).sum() + (L**2).sum()


def _svd_projector_loss(X: torch.Tensor) -> torch.Tensor:
    U, S, Vh = mb.svd(X)
    P = U[..., :, :2] @ U[..., :, :2].transpose(-2, -1)  # the two tied leading singular vectors
    R = Vh.transpose(-2, -1)[..., :, :2] @ Vh[..., :2, :]
    W = torch.arange(P.shape[-1] ** 2, dtype=DT).reshape(P.shape[-1], -1) / 10
    return (W * P).sum() + R[..., 0, :].sum() + (S**3).sum()


@pytest.mark.parametrize("spectrum", ["generic", "tied"])
def test_eigh_projector_loss_jacobians(spectrum):
    X, _, _ = _matrix([0.5, 1.1, 2.0, 3.7] if spectrum == "generic" else [0.5, 2.0, 2.0, 2.0], seed=5)
    g_rev, g_fwd = jacrev(_eigh_projector_loss)(X), jacfwd(_eigh_projector_loss)(X)
    g_fd = _fd_jacobian(_eigh_projector_loss, X)
    assert torch.allclose(g_rev, g_fwd, atol=1e-12)
    assert torch.allclose(g_fwd, g_fd, atol=1e-7)


@pytest.mark.parametrize("spectrum", ["generic", "tied"])
def test_svd_projector_loss_jacobians(spectrum):
    """Tall 5 x 3 input; "tied": singular values (2, 2, 0.5)."""
    U = torch.linalg.qr(torch.randn(5, 3, dtype=DT, generator=torch.Generator().manual_seed(2)))[0]
    V = _rotation(4, 3)
    S = torch.tensor([3.0, 2.0, 0.5] if spectrum == "generic" else [2.0, 2.0, 0.5], dtype=DT)
    X = U @ torch.diag(S) @ V.T
    g_rev, g_fwd = jacrev(_svd_projector_loss)(X), jacfwd(_svd_projector_loss)(X)
    h = 1e-6
    g_fd = torch.zeros_like(X)
    for i in range(5):
        for j in range(3):
            E = torch.zeros_like(X)
            E[i, j] = h
            g_fd[i, j] = (_svd_projector_loss(X + E) - _svd_projector_loss(X - E)) / (2 * h)
    assert torch.allclose(g_rev, g_fwd, atol=1e-12)
    assert torch.allclose(g_fwd, g_fd, atol=1e-7)


@pytest.mark.parametrize("full_matrices", [False, True])
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4)])
def test_svd_jvp_is_the_adjoint_of_the_backward(shape, full_matrices):
    """<gU, dU> + <gS, dS> + <gVh, dVh> = <backward(gU, gS, gVh), dX> for random cotangents and tangents."""
    gen = torch.Generator().manual_seed(8)
    X, dX = (torch.randn(*shape, dtype=DT, generator=gen) for _ in range(2))
    outs, tangents = jvp(lambda A: mb.svd(A, full_matrices=full_matrices), (X,), (dX,))
    cot = [torch.randn(o.shape, dtype=DT, generator=gen) for o in outs]
    Xg = X.clone().requires_grad_(True)
    (gX,) = torch.autograd.grad(mb.svd(Xg, full_matrices=full_matrices), Xg, cot)
    lhs = sum((c * t).sum() for c, t in zip(cot, tangents))
    assert torch.allclose(lhs, (gX * dX).sum(), atol=1e-11, rtol=1e-11)


# ---------------------------------------------------------------------------------------------------
# Forward mode against the Daleckii-Krein reference


@pytest.mark.parametrize("name", list(SPECTRAL))
def test_jvp_at_scalar_matrix_and_at_ties(name):
    fn, f, df = SPECTRAL[name]
    E = torch.randn(N, N, dtype=DT, generator=torch.Generator().manual_seed(1))
    c = 1.7
    # X = cI: every pair is tied and Df(cI)[E] = f'(c) sym(E)
    _, dY = jvp(fn, (c * torch.eye(N, dtype=DT),), (E,))
    assert torch.allclose(dY, df(c) * 0.5 * (E + E.T), atol=1e-13, rtol=1e-13)
    X, L, Q = _matrix(TIED, seed=3)
    _, dY = jvp(fn, (X,), (E,))
    assert torch.allclose(dY, _dk_reference(L, Q, f, df, E), atol=1e-12, rtol=1e-10)
    _, lin = linearize(fn, X)
    assert torch.allclose(lin(E), dY, atol=1e-14)


def test_tie_exact_jacfwd_where_plain_autograd_gives_nan():
    """The README example: torch.linalg.eigh's autograd divides by the zero gap at cI."""
    X = 2.0 * torch.eye(3, dtype=DT)

    def plain_logm(A: torch.Tensor) -> torch.Tensor:
        L, Q = torch.linalg.eigh(A)
        return Q @ torch.diag_embed(L.log()) @ Q.mT

    assert torch.isnan(jacfwd(plain_logm)(X)).any()
    J = jacfwd(mb.logm)(X)
    assert torch.allclose(J, jacrev(mb.logm)(X), atol=1e-15)
    assert torch.allclose(J[0, 1, 0, 1], torch.tensor(0.25, dtype=DT))  # f'(2) * 1/2 of sym(e_0 e_1^T)


# ---------------------------------------------------------------------------------------------------
# Second order


@pytest.mark.parametrize("spectrum", ["generic", "tied"])
def test_hessian_of_logm_against_finite_differences_of_the_gradient(spectrum):
    X, _, _ = _matrix(GENERIC if spectrum == "generic" else TIED, seed=9)
    W = torch.randn(N, N, dtype=DT, generator=torch.Generator().manual_seed(4))

    def scalar(A: torch.Tensor) -> torch.Tensor:
        return (W * mb.logm(A)).sum() + mb.logm(A).pow(2).sum()

    H = hessian(scalar)(X)  # forward-over-reverse
    assert torch.allclose(H, jacrev(jacrev(scalar))(X), atol=1e-11)
    H_fd = _fd_jacobian(grad(scalar), X, h=1e-5)
    assert torch.allclose(H, H_fd, atol=1e-7 * H_fd.abs().max(), rtol=0)


def test_karcher_mean_in_user_code_converges():
    """A user's Karcher-mean loop with our logm/expm/sqrtm/invsqrtm (checks on) reaches the fixed point
    sum_i logm(G^-1/2 X_i G^-1/2) = 0; near convergence the tangent is tiny and only rounding-symmetric."""
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(6, 5, 5, dtype=DT, generator=gen)
    X = A @ A.mT + 0.5 * torch.eye(5, dtype=DT)
    G = X.mean(0)
    step = 0
    for step in range(100):  # noqa: B007 (the count is asserted after the loop)
        root, inv_root = mb.sqrtm(G), mb.invsqrtm(G)
        # written as a user would: the tangent is mapped back to G and the step taken from there,
        # so every intermediate carries rounding asymmetry
        T = root @ mb.logm(inv_root @ X @ inv_root).mean(0) @ root
        G = root @ mb.expm(inv_root @ T @ inv_root) @ root
        if (inv_root @ T @ inv_root).norm() < 1e-13:
            break
    assert step < 50
    residual = mb.logm(mb.invsqrtm(G) @ X @ mb.invsqrtm(G)).sum(0)
    assert residual.abs().max() < 1e-12


@pytest.mark.parametrize("shape", [(6, 3), (2, 4)])
def test_gram_route_jacobians_and_vmap(shape):
    """f(A^T A + r I) through the SVD of A (the O2P svd route): forward mode == reverse mode ==
    finite differences, also for wide A (singular A^T A, ridge 0 for sqrt); vmap == batched call."""
    from matbackprop.linalg.divided_differences import LOG, SQRT
    from matbackprop.linalg.gram import gram_spectral_apply

    A = torch.randn(*shape, dtype=DT, generator=torch.Generator().manual_seed(6))
    for spec, ridge in ((LOG, 0.1), (SQRT, 0.0)):

        def fn(a: torch.Tensor, spec=spec, ridge=ridge) -> torch.Tensor:
            return gram_spectral_apply(a, spec, ridge)

        J_rev, J_fwd = jacrev(fn)(A), jacfwd(fn)(A)
        h = 1e-6
        J_fd = torch.zeros_like(J_fwd)
        for i in range(shape[0]):
            for j in range(shape[1]):
                E = torch.zeros_like(A)
                E[i, j] = h
                J_fd[..., i, j] = (fn(A + E) - fn(A - E)) / (2 * h)
        assert torch.allclose(J_rev, J_fwd, atol=1e-13)
        assert torch.allclose(J_fwd, J_fd, atol=1e-7)
        batch = torch.stack([A, 2 * A, -A])
        assert torch.allclose(vmap(fn)(batch), fn(batch), atol=1e-14)


def test_newton_schulz_under_vmap_and_jacfwd():
    X = torch.stack([_matrix(GENERIC, s)[0] for s in range(3)])
    assert torch.allclose(vmap(mb.sqrtm_newton_schulz)(X), mb.sqrtm_newton_schulz(X), atol=1e-14)
    assert torch.allclose(jacfwd(mb.sqrtm_newton_schulz)(X[0]), jacrev(mb.sqrtm_newton_schulz)(X[0]), atol=1e-12)
    Y = X.clone()
    Y[2] = -Y[2]
    with pytest.raises(ValueError, match=r"positive definite, but it is not at batch index \(2,\)"):
        vmap(mb.sqrtm_newton_schulz)(Y)


def test_forward_ad_dual_numbers_match_func_jvp():
    """torch.autograd.forward_ad (dual tensors, outside torch.func) uses the same analytic jvp."""
    import torch.autograd.forward_ad as fwAD

    X, _, _ = _matrix(TIED, seed=2)
    E = torch.randn(N, N, dtype=DT, generator=torch.Generator().manual_seed(3))
    with fwAD.dual_level():
        Y = mb.expm(fwAD.make_dual(X, E))
        tangent = fwAD.unpack_dual(Y).tangent
    assert torch.allclose(tangent, jvp(mb.expm, (X,), (E,))[1], atol=1e-13)


@pytest.mark.parametrize(
    "name",
    ["eigh", "svd thin", "svd full", "svd wide", "svd gram", "svd gram float32", "ncut_embedding (gram route)"],
)
def test_linearize_equals_jvp(name):
    """torch.func.linearize (the jvp traced once, then replayed) gives func.jvp's tangents. Regression: an
    output of a custom Function that is a view (svd(gram=True)'s Vh was V^T) failed the trace with torch's
    internal assert "has_fw_view", and with it ncut_embedding with N >= d."""
    gen = torch.Generator().manual_seed(12)
    tall = torch.rand(10, 4, dtype=DT, generator=gen)
    cases = {
        "eigh": (mb.eigh, _matrix(GENERIC, seed=5)[0]),
        "svd thin": (mb.svd, tall),
        "svd full": (lambda A: mb.svd(A, full_matrices=True), tall),
        "svd wide": (mb.svd, tall.T.contiguous()),
        "svd gram": (lambda A: mb.svd(A, gram=True), tall),
        "svd gram float32": (lambda A: mb.svd(A, gram=True), tall.float()),
        "ncut_embedding (gram route)": (lambda F: mb.ncut_embedding(F, 3), tall),
    }
    fn, X = cases[name]
    dX = torch.randn(X.shape, dtype=X.dtype, generator=gen)
    out, lin = linearize(fn, X)
    want_out, want = jvp(fn, (X,), (dX,))
    tol = 1e-12 if X.dtype == DT else 1e-5
    got = lin(dX)
    for a, b in zip(torch.utils._pytree.tree_leaves((out, got)), torch.utils._pytree.tree_leaves((want_out, want))):
        assert torch.allclose(a, b, atol=tol * max(1.0, b.abs().max().item()), rtol=0)
