"""CUDA conformance of the layers and of what wraps them: normalized cuts, second-order pooling, the
SPD ops and layers, half precision, the input checks, ``torch.func`` and ``torch.compile``, on the
device against the CPU and exact references (set-up and tolerances: :mod:`tests.cuda.common`).
"""

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.func import grad, jacfwd, jacrev, vmap

import matbackprop as mb
from matbackprop.nn import BiMap, LogEig, NormalizedCut, ReEig, SecondOrderPooling, SPDBatchNorm
from tests.cuda.common import (
    CPU,
    CUDA,
    F32,
    F64,
    SPECTRUM,
    TOL,
    assert_close,
    assert_on_device,
    loss_and_grads,
    rel_err,
    requires_device,
    spd,
    value_and_grad,
)
from tests.helpers import random_spd, sym

pytestmark = requires_device

# ---------------------------------------------------------------------------------------------------
# Normalized cuts


def _ncut_loss(k: int, segments: int, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    def loss(F: torch.Tensor) -> torch.Tensor:
        Z = mb.ncut_embedding(F, k)
        return mb.projector_loss(Z, labels.to(F.device), num_segments=segments)

    return loss


def test_ncut_small_matches_cpu():
    """N = 2000 nodes, C = 16 features, k = 4, float64: the functional route and the module."""
    g = torch.Generator().manual_seed(19)
    F = torch.rand(2000, 16, dtype=F64, generator=g)
    labels = torch.randint(0, 4, (2000,), generator=g)
    loss_fn = _ncut_loss(4, 4, labels)
    J, (gF,) = loss_and_grads(loss_fn, (F,), CUDA)
    J0, (gF0,) = loss_and_grads(loss_fn, (F,), CPU)
    assert_on_device(J, F64, "projector loss")
    assert_on_device(gF, F64, "ncut gradient")
    assert_close(J, J0, 1e-12, "ncut loss vs cpu")
    assert_close(gF, gF0, 1e-9, "ncut gradient vs cpu")
    # The eigenvalues of the normalised affinity: the largest is exactly 1 (the constant vector's).
    _, ev = mb.ncut_embedding(F.to(CUDA), 4, return_eigenvalues=True)
    _, ev0 = mb.ncut_embedding(F, 4, return_eigenvalues=True)
    assert_close(ev, ev0, 1e-12, "ncut eigenvalues vs cpu")
    assert abs(float(ev[0]) - 1.0) < 1e-12, f"largest ncut eigenvalue {float(ev[0])!r} is not 1"

    # The module on a (B, C, H, W) feature map (B = 2, N = 40 x 50 = 2000), moved with .to().
    maps = F.T.reshape(1, 16, 40, 50).expand(2, 16, 40, 50).contiguous()
    seg = labels.reshape(1, 40, 50).expand(2, 40, 50).contiguous()
    layer = NormalizedCut(k=4, num_segments=4)

    def module_loss(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        m = copy.deepcopy(layer).to(device)
        x = maps.to(device).requires_grad_(True)
        J = m.loss(m(x), seg.to(device))
        (gx,) = torch.autograd.grad(J, x)
        return J.detach(), gx

    Jm, gm = module_loss(CUDA)
    Jm0, gm0 = module_loss(CPU)
    assert_close(Jm, Jm0, 1e-12, "NormalizedCut loss vs cpu")
    assert_close(gm, gm0, 1e-9, "NormalizedCut gradient vs cpu")
    assert_close(Jm, J0, 1e-12, "NormalizedCut loss vs the functional loss")


def test_ncut_dense_route_matches_cpu():
    g = torch.Generator().manual_seed(20)
    P = torch.rand(300, 2, dtype=F64, generator=g) + 3.0 * torch.randint(0, 3, (300, 1), generator=g).to(F64)
    labels = torch.randint(0, 3, (300,), generator=g)

    def loss(points: torch.Tensor) -> torch.Tensor:
        Z = mb.ncut_embedding_dense(mb.gaussian_affinity(points, 1.0), 3)
        return mb.projector_loss(Z, labels.to(points.device), num_segments=3)

    J, (gP,) = loss_and_grads(loss, (P,), CUDA)
    J0, (gP0,) = loss_and_grads(loss, (P,), CPU)
    assert_on_device(gP, F64, "dense ncut gradient")
    assert_close(J, J0, 1e-11, "dense ncut loss vs cpu")
    assert_close(gP, gP0, 1e-8, "dense ncut gradient vs cpu")


def test_ncut_large_float32_matches_float64():
    """N = 154,401 nodes (a 481 x 321 BSDS image), C = 64, k = 16: float32 on the device against float64 on
    the device (and float64 on the device against the CPU)."""
    g = torch.Generator().manual_seed(21)
    F = torch.rand(154401, 64, dtype=F64, generator=g)
    labels = torch.randint(0, 8, (154401,), generator=g)
    loss_fn = _ncut_loss(16, 8, labels)
    J32, (g32,) = loss_and_grads(loss_fn, (F.float(),), CUDA)
    J64, (g64,) = loss_and_grads(loss_fn, (F,), CUDA)
    assert_on_device(J32, F32, "float32 loss")
    assert_on_device(g32, F32, "float32 gradient")
    assert bool(torch.isfinite(J32)) and bool(torch.isfinite(g32).all())
    assert_close(J32, J64, 1e-5, "float32 loss vs float64")
    assert_close(g32, g64, 1e-3, "float32 gradient vs float64")
    J0, (g0,) = loss_and_grads(loss_fn, (F,), CPU)
    assert_close(J64, J0, 1e-10, "float64 loss vs cpu")
    assert_close(g64, g0, 1e-6, "float64 gradient vs cpu")


# ---------------------------------------------------------------------------------------------------
# Second-order pooling


O2P_CASES = {
    "eig/log": dict(route="eig", normalization="log"),
    "svd/log": dict(route="svd", normalization="log"),
    "eig/sqrt": dict(route="eig", normalization="sqrt"),
    "svd/sqrt": dict(route="svd", normalization="sqrt"),
    "eig/power": dict(route="eig", normalization="power", p=0.3),
    "newton_schulz/sqrt": dict(route="newton_schulz", normalization="sqrt", num_iters=12),
    "none/triu": dict(normalization="none", output="triu"),
    "eig/log/centered/triu": dict(route="eig", normalization="log", centered=True, output="triu"),
}


def _o2p_data(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(22)
    feats = torch.relu(torch.randn(2, 8, 12, 12, dtype=F64, generator=g))
    # two binary masks and a soft one with zeros: the svd route's mask gradient at zero weights is exercised
    masks = torch.zeros((2, 3, 12, 12), dtype=F64)
    soft = torch.rand(2, 12, 12, dtype=F64, generator=g)
    masks[:, 0, :6], masks[:, 1, 6:], masks[:, 2] = 1.0, 1.0, soft * (soft > 0.3)
    return feats.to(dtype), masks.to(dtype)


@pytest.mark.parametrize("case", O2P_CASES)
@pytest.mark.parametrize("dtype", [F64, F32])
def test_second_order_pooling_matches_cpu(case, dtype):
    feats, masks = _o2p_data(dtype)
    layer = SecondOrderPooling(eps=1e-2, **O2P_CASES[case])  # type: ignore[arg-type]

    def run(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = copy.deepcopy(layer).to(device)
        f, w = feats.to(device).requires_grad_(True), masks.to(device).requires_grad_(True)
        Y = m(f, w)
        weight = torch.randn(Y.shape, dtype=F64, generator=torch.Generator().manual_seed(23)).to(device, dtype)
        gf, gw = torch.autograd.grad((Y * weight).sum(), (f, w))
        return Y.detach(), gf, gw

    Y, gf, gw = run(CUDA)
    Y0, gf0, gw0 = run(CPU)
    assert_on_device(Y, dtype, f"O2P {case} output")
    assert_on_device(gf, dtype, f"O2P {case} feature gradient")
    tol = TOL[dtype]
    assert_close(Y, Y0, tol, f"O2P {case} value vs cpu")
    assert_close(gf, gf0, tol, f"O2P {case} feature gradient vs cpu")
    assert_close(gw, gw0, tol, f"O2P {case} mask gradient vs cpu")


@pytest.mark.parametrize("normalization", ["log", "sqrt"])
def test_svd_route_mask_gradient_equals_the_eig_route_at_zero_weights(normalization):
    feats, masks = _o2p_data(F64)
    f, w = feats.to(CUDA).requires_grad_(True), masks.to(CUDA).requires_grad_(True)
    weight = torch.randn(2, 3, 8, 8, dtype=F64, generator=torch.Generator().manual_seed(24)).to(CUDA)
    grads = {}
    for route in ("eig", "svd"):
        Y = SecondOrderPooling(eps=1e-2, normalization=normalization, route=route)(f, w)  # type: ignore[arg-type]
        grads[route] = torch.autograd.grad((Y * weight).sum(), (f, w))
    assert_close(grads["svd"][0], grads["eig"][0], 1e-9, "svd route feature gradient vs eig route")
    assert_close(grads["svd"][1], grads["eig"][1], 1e-9, "svd route mask gradient vs eig route")


def test_second_order_pooling_float64_spectral_step_in_a_float32_network():
    feats, masks = _o2p_data(F32)
    layer = SecondOrderPooling(eps=1e-2, normalization="log", spectral_dtype=F64)
    Y = layer.to(CUDA)(feats.to(CUDA), masks.to(CUDA))
    assert_on_device(Y, F32, "O2P output with spectral_dtype=float64")
    Y64 = SecondOrderPooling(eps=1e-2, normalization="log")(feats.double(), masks.double())
    assert_close(Y, Y64, 1e-6, "float32 network with a float64 spectral step vs float64 on cpu")


# ---------------------------------------------------------------------------------------------------
# SPD operations and layers


def _spd_batch(seed: int, *batch: int, n: int = 4) -> torch.Tensor:
    return random_spd(n, *batch, generator=torch.Generator().manual_seed(seed))


SPD_OPS: dict[str, Callable[..., torch.Tensor]] = {
    "bimap": lambda X, A, B: mb.bimap(X, A[0, :, :3]),
    "spd_geodesic": lambda X, A, B: mb.spd_geodesic(A, B, 0.3),
    "spd_karcher_mean": lambda X, A, B: mb.spd_karcher_mean(X, num_iters=3),
    "spd_recenter": lambda X, A, B: mb.spd_recenter(X, A[0], B[0]),
    "spd_parallel_transport": lambda X, A, B: mb.spd_parallel_transport(sym(X - A), A, B),
}


@pytest.mark.parametrize("name", SPD_OPS)
def test_spd_ops_match_cpu(name):
    X, A, B = _spd_batch(24, 5), _spd_batch(25, 5), _spd_batch(26, 5)

    def loss(X: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        Y = SPD_OPS[name](sym(X), sym(A), sym(B))
        weight = torch.randn(Y.shape, dtype=F64, generator=torch.Generator().manual_seed(27)).to(Y.device)
        return (Y * weight).sum()

    J, grads = loss_and_grads(loss, (X, A, B), CUDA)
    J0, grads0 = loss_and_grads(loss, (X, A, B), CPU)
    assert_close(J, J0, 1e-11, f"{name} value vs cpu")
    for g, g0, what in zip(grads, grads0, "XAB"):
        assert_on_device(g, F64, f"{name} gradient w.r.t. {what}")
        assert_close(g, g0, 1e-9, f"{name} gradient w.r.t. {what} vs cpu")


def test_spd_network_layers_to_device_match_cpu():
    """BiMap -> ReEig -> SPDBatchNorm -> LogEig moved with ``.to(device)``: outputs, parameter gradients,
    the running mean after a training step, and the evaluation-mode output equal the CPU network's."""
    torch.manual_seed(28)
    bn = SPDBatchNorm(4, momentum=0.3)
    net = nn.Sequential(BiMap(6, 4), ReEig(0.05), bn, LogEig("triu")).double()
    with torch.no_grad():
        bn.bias_log.copy_(0.1 * torch.randn(4, 4, dtype=F64))
    X = _spd_batch(29, 8, n=6)
    weight = torch.randn(8, 10, dtype=F64, generator=torch.Generator().manual_seed(30))

    def run(device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        m = copy.deepcopy(net).to(device)
        m_bn = m[2]
        assert isinstance(m_bn, SPDBatchNorm)
        for pname, p in m.named_parameters():
            assert_on_device(p, F64, f"parameter {pname}", device)
        m.train()
        Y = m(X.to(device))
        params = dict(m.named_parameters())
        grads = dict(zip(params, torch.autograd.grad((Y * weight.to(device)).sum(), list(params.values()))))
        m.eval()
        with torch.no_grad():
            Y_eval = m(X.to(device))
        return Y.detach(), grads, m_bn.running_mean.detach(), Y_eval

    Y, grads, running, Y_eval = run(CUDA)
    Y0, grads0, running0, Y_eval0 = run(CPU)
    assert_on_device(Y, F64, "SPD network output")
    assert Y.shape == (8, 10)
    assert_close(Y, Y0, 1e-10, "SPD network output vs cpu")
    assert grads.keys() == grads0.keys()
    for pname in grads:
        assert_on_device(grads[pname], F64, f"gradient of {pname}")
        assert_close(grads[pname], grads0[pname], 1e-9, f"gradient of {pname} vs cpu")
    assert_on_device(running, F64, "running mean")
    assert_close(running, running0, 1e-11, "running mean vs cpu")
    assert rel_err(running, torch.eye(4, dtype=F64)) > 1e-3, "the running mean did not move"
    assert_close(Y_eval, Y_eval0, 1e-10, "evaluation-mode output vs cpu")


def test_tensor_parameters_on_the_cpu_broadcast_to_a_device_input():
    """``powm``'s exponent and ``clamp_eigs``' floor as CPU tensors (one per matrix) with a device input."""
    X = spd(SPECTRUM, 3, seed=31).to(CUDA)
    p = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    Y = mb.powm(X, p)
    for b in range(3):
        assert_close(Y[b], mb.powm(X[b], float(p[b])), 1e-12, f"powm with a tensor exponent, matrix {b}")
    floor = torch.tensor([0.5, 1.5, 5.0], dtype=F64)
    Y = mb.clamp_eigs(X, floor)
    for b in range(3):
        assert_close(Y[b], mb.clamp_eigs(X[b], float(floor[b])), 1e-12, f"clamp_eigs with a tensor floor, matrix {b}")


# ---------------------------------------------------------------------------------------------------
# Half precision and autocast


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_input_is_computed_in_float32(half):
    Xh = spd(SPECTRUM, 2, seed=32).to(half)
    Y = mb.logm(Xh.to(CUDA))
    assert_on_device(Y, F32, f"logm of {half} input")
    assert_close(Y, mb.logm(Xh.float()), 1e-5, f"logm of {half} input vs float32 on cpu")
    L, Q = mb.eigh(Xh.to(CUDA))
    assert_on_device(L, F32, f"eigh of {half} input")
    assert_close(L, torch.linalg.eigvalsh(Xh.float()), 1e-5, f"eigenvalues of {half} input")
    assert_close((Q * L.unsqueeze(-2)) @ Q.mT, Xh.float(), 1e-5, f"eigh reconstruction of {half} input")
    _, S, _ = mb.svd(Xh.to(CUDA))
    assert_on_device(S, F32, f"svd of {half} input")
    assert_close(S, torch.linalg.svdvals(Xh.float()), 1e-5, f"singular values of {half} input")


def test_autocast_keeps_the_spectral_step_in_float32():
    feats, masks = _o2p_data(F32)
    X = spd(SPECTRUM, 2, seed=33, dtype=F32)
    f, w, Xd = feats.to(CUDA), masks.to(CUDA), X.to(CUDA)
    pool = SecondOrderPooling(eps=1e-2, normalization="log").to(CUDA)
    with torch.autocast(device_type=CUDA.type, dtype=torch.bfloat16):
        Y = mb.logm(Xd)
        P = pool(f, w)
    assert_on_device(Y, F32, "logm under autocast")
    assert_on_device(P, F32, "SecondOrderPooling under autocast")
    assert_close(Y, mb.logm(Xd), 1e-6, "logm under autocast vs without")
    assert_close(P, pool(f, w), 1e-5, "SecondOrderPooling under autocast vs without")


# ---------------------------------------------------------------------------------------------------
# Input checks (the device takes another code path than the CPU's host-side fast checks)


def test_input_checks_raise_on_device():
    X = spd(SPECTRUM, 2, seed=34).to(CUDA)
    bad = X.clone()
    bad[1, 0, 1] += 1.0
    with pytest.raises(ValueError, match=r"logm: input is not symmetric at batch index \(1,\)"):
        mb.logm(bad)
    nan = X.clone()
    nan[0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="logm"):
        mb.logm(nan)
    indefinite = spd([-1.0, 1.0, 2.0], 2, seed=35).to(CUDA)
    with pytest.raises(ValueError, match=r"sqrtm: input must be positive semi-definite at batch index \(0,\)"):
        mb.sqrtm(indefinite)
    with pytest.raises(ValueError, match="logm: input must be positive definite"):
        mb.logm(indefinite)
    with pytest.raises(ValueError, match="sqrtm_newton_schulz: input must be positive definite"):
        mb.sqrtm_newton_schulz(indefinite)
    with pytest.raises(ValueError, match="non-negative"):
        mb.ncut_embedding(-torch.rand(50, 4, device=CUDA), 2)


# ---------------------------------------------------------------------------------------------------
# torch.func and torch.compile


def test_torch_func_on_device():
    """vmap of per-sample gradients, vmap of eigh/svd, and jacrev = jacfwd, against the CPU."""
    X = _spd_batch(36, 6, n=5)
    G = torch.randn(6, 5, 5, dtype=F64, generator=torch.Generator().manual_seed(37))

    def scalar(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (mb.logm(x) * g).sum()

    per_sample = vmap(grad(scalar))(X.to(CUDA), G.to(CUDA))
    assert_on_device(per_sample, F64, "vmap(grad(logm))")
    _, ref = value_and_grad(mb.logm, X, G, CPU)
    assert_close(per_sample, ref, 1e-10, "vmap(grad(logm)) vs cpu autograd")

    L, Q = vmap(mb.eigh)(X.to(CUDA))
    L0, _ = mb.eigh(X)
    assert_close(L, L0, 1e-12, "vmap(eigh) eigenvalues vs cpu")
    assert_close((Q * L.unsqueeze(-2)) @ Q.mT, X, 1e-12, "vmap(eigh) reconstruction")
    _, S, _ = vmap(mb.svd)(X[..., :3].to(CUDA))
    assert_close(S, torch.linalg.svdvals(X[..., :3]), 1e-12, "vmap(svd) singular values vs cpu")

    x = X[0].to(CUDA)
    J_rev, J_fwd = jacrev(mb.sqrtm)(x), jacfwd(mb.sqrtm)(x)
    assert_on_device(J_rev, F64, "jacrev(sqrtm)")
    assert_close(J_rev, J_fwd, 1e-11, "jacrev(sqrtm) vs jacfwd(sqrtm)")
    assert_close(J_rev, jacrev(mb.sqrtm)(X[0]), 1e-10, "jacrev(sqrtm) vs cpu")


def _pipeline(X: torch.Tensor) -> torch.Tensor:
    """logm, powm, an eigh projector and svd singular values in one graph (as tests/linalg/test_compile_export.py)."""
    L, Q = mb.eigh(X)
    _, S, _ = mb.svd(X[..., :, :3])
    P = Q[..., :, -2:] @ Q[..., :, -2:].mT
    return mb.logm(X).sum() + mb.powm(X, 0.3).sum() + P.sum() + S.sum() + L.sum()


@pytest.mark.slow
def test_torch_compile_fullgraph_on_device():
    """``torch.compile(fullgraph=True)`` (inductor) on the device: forward and backward equal eager.

    A failure to compile is reported as such (``torch.compile FAILED on ...``), apart from a mismatch."""
    torch._dynamo.reset()
    X = _spd_batch(38, 3, n=5).to(CUDA).requires_grad_(True)
    try:
        compiled = torch.compile(_pipeline, fullgraph=True)
        y = compiled(X)
        (g,) = torch.autograd.grad(y, X)
    except Exception as exc:  # noqa: BLE001 - report any compile failure with its type, not as a test error
        pytest.fail(f"torch.compile FAILED on {CUDA.type}: {type(exc).__name__}: {str(exc)[:2000]}", pytrace=False)
    y_eager = _pipeline(X)
    (g_eager,) = torch.autograd.grad(y_eager, X)
    assert_on_device(g, F64, "compiled gradient")
    assert_close(y, y_eager, 1e-12, "compiled value vs eager")
    assert_close(g, g_eager, 1e-11, "compiled gradient vs eager")
