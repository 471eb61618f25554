"""Mixed precision: under ``torch.autocast`` the structured layers compute their spectral step (and the
matrix products feeding it) in float32, so parameter gradients match a float32 run to bfloat16/float16
accuracy of the preceding layer, and eigenvalues are not quantised to the low-precision format.

Each case puts a small conv or linear layer in front of the structured layer, so that autocast really
hands it low-precision activations, and compares the gradients of that layer's parameters with a
float32 run of the same model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn

import matbackprop as mb
from matbackprop.nn import BiMap, LogEig, NormalizedCut, ReEig, SecondOrderPooling, SPDBatchNorm


def _cpu_autocast_dtypes() -> list[torch.dtype]:
    """bfloat16 always; float16 where this torch's CPU autocast accepts it (2.x does)."""
    dtypes = [torch.bfloat16]
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            x = torch.ones(2, 2)
            if (x @ x).dtype == torch.float16:
                dtypes.append(torch.float16)
    except (RuntimeError, AssertionError):
        pass
    return dtypes


AUTOCAST_DTYPES = _cpu_autocast_dtypes()
# A bfloat16 activation carries 8 significant bits (relative error 2^-8 = 3.9e-3); the gradient of the
# front layer inherits a few such roundings. float16 has 11 bits.
GRAD_RTOL = {torch.bfloat16: 3e-2, torch.float16: 5e-3}


def _spd_batch(n: int, batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(batch, n, 2 * n, generator=g)
    return A @ A.mT / (2 * n) + 0.5 * torch.eye(n)


class _Front(nn.Module):
    """Linear map of SPD inputs, ``A X A^T``, through an ``nn.Linear``: produces low-precision
    activations under autocast, as a conv would."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.lin = nn.Linear(n, n, bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(torch.eye(n) + 0.1 * torch.randn(n, n, generator=torch.Generator().manual_seed(1)))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = self.lin(self.lin(X).mT)  # A (A X)^T = A X A^T, symmetric in exact arithmetic
        return 0.5 * (Y + Y.mT)


def _o2p_model(route: str) -> tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]:
    torch.manual_seed(0)
    normalization = "sqrt" if route == "newton_schulz" else "log"
    model = nn.Sequential(nn.Conv2d(3, 4, 1), SecondOrderPooling(eps=1e-2, normalization=normalization, route=route))
    x = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(2))
    target = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    return model, lambda m: ((m(x) - target) ** 2).sum()


def _spd_stack_model() -> tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(_Front(6), BiMap(6, 4), ReEig(1e-2), LogEig(output="triu"), nn.Linear(10, 3))
    X = _spd_batch(6, 4, 4)
    return model, lambda m: m(X).pow(2).sum()


def _batchnorm_model() -> tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(_Front(4), SPDBatchNorm(4), LogEig())
    with torch.no_grad():
        model[1].bias_log.copy_(0.1 * torch.randn(4, 4, generator=torch.Generator().manual_seed(5)))
    X = _spd_batch(4, 6, 6)
    return model, lambda m: m(X).pow(2).sum()


class _NCutHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 1)
        self.ncut = NormalizedCut(k=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ncut(torch.relu(self.conv(x)) + 0.1)


def _ncut_model() -> tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]:
    torch.manual_seed(0)
    model = _NCutHead()
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(7))
    labels = (torch.arange(36) // 12).expand(2, 36)
    return model, lambda m: m.ncut.loss(m(x), labels)


def _funm_model(fn: Callable[[torch.Tensor], torch.Tensor]) -> tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]:
    torch.manual_seed(0)
    model = _Front(5)
    X = _spd_batch(5, 3, 8)
    return model, lambda m: fn(m(X)).pow(2).sum()


MODELS = {
    "o2p-eig": lambda: _o2p_model("eig"),
    "o2p-svd": lambda: _o2p_model("svd"),
    "o2p-newton_schulz": lambda: _o2p_model("newton_schulz"),
    "bimap-reeig-logeig": _spd_stack_model,
    "spd_batchnorm": _batchnorm_model,
    "ncut": _ncut_model,
    "logm": lambda: _funm_model(mb.logm),
    "sqrtm": lambda: _funm_model(mb.sqrtm),
}


def _gradients(
    model: nn.Module, loss_fn, autocast_dtype: torch.dtype | None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    if autocast_dtype is None:
        loss = loss_fn(model)
    else:
        with torch.autocast("cpu", dtype=autocast_dtype):
            loss = loss_fn(model)
    loss.backward()
    return loss.detach(), [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("autocast_dtype", AUTOCAST_DTYPES, ids=[str(d)[6:] for d in AUTOCAST_DTYPES])
@pytest.mark.parametrize("name", list(MODELS))
def test_gradients_match_float32(name: str, autocast_dtype: torch.dtype) -> None:
    model, loss_fn = MODELS[name]()
    low = copy.deepcopy(model)
    loss32, grads32 = _gradients(model, loss_fn, None)
    loss_low, grads_low = _gradients(low, loss_fn, autocast_dtype)
    assert torch.isfinite(loss_low) and all(bool(torch.isfinite(g).all()) for g in grads_low)
    assert len(grads_low) == len(grads32) > 0
    rtol = GRAD_RTOL[autocast_dtype]
    assert abs(float(loss_low) - float(loss32)) <= rtol * abs(float(loss32)) + 1e-6
    # The whole parameter gradient as one vector: SPDBatchNorm makes the loss nearly invariant to the
    # front layer (affine invariance of the Karcher mean), so that block alone is rounding noise.
    g_low = torch.cat([g.float().flatten() for g in grads_low])
    g32 = torch.cat([g.flatten() for g in grads32])
    rel = float((g_low - g32).norm() / g32.norm())
    assert rel <= rtol, f"{name}: gradient differs from float32 by {rel:.3g} (bound {rtol})"


def _pooled_spectrum(features: torch.Tensor, route: str, autocast_dtype: torch.dtype | None) -> torch.Tensor:
    ctx = torch.autocast("cpu", dtype=autocast_dtype) if autocast_dtype else torch.autocast("cpu", enabled=False)
    with ctx:
        Y = mb.second_order_pooling(features, eps=1e-4, normalization="power", p=1.0, route=route)
    return Y


@pytest.mark.parametrize("autocast_dtype", AUTOCAST_DTYPES, ids=[str(d)[6:] for d in AUTOCAST_DTYPES])
@pytest.mark.parametrize("route", ["eig", "svd"])
def test_spectral_step_runs_in_float32(route: str, autocast_dtype: torch.dtype) -> None:
    """The pooled matrix (power p = 1: Y = C itself) under autocast equals the float32 one to float32
    accuracy for the same (low-precision) features: pooling and eigenvalues are not quantised to
    bfloat16/float16, whose spacing near 1 (2^-7 / 2^-10) the differences stay far below."""
    features = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(9)).to(autocast_dtype)
    Y_low = _pooled_spectrum(features, route, autocast_dtype)
    Y_32 = _pooled_spectrum(features.float(), route, None)
    assert Y_low.dtype == torch.float32, "half-precision input is computed and returned in float32"
    L_low = torch.linalg.eigvalsh(Y_low.float()[0, 0])
    L_32 = torch.linalg.eigvalsh(Y_32[0, 0])
    assert float((L_low - L_32).abs().max()) <= 1e-5 * float(L_32.abs().max())


def test_logm_under_autocast_returns_float32_eigenvalues() -> None:
    """logm of a bfloat16 activation: float32 output whose eigenvalues are those of the (upcast)
    input's logarithm to float32 accuracy, not bfloat16's 3 digits."""
    X = _spd_batch(5, 1, 10)[0]
    lin = nn.Linear(5, 5, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        A = lin(X)  # bfloat16
        Y = mb.logm(0.5 * (A + A.mT))
    assert A.dtype == torch.bfloat16 and Y.dtype == torch.float32
    ref = torch.log(torch.linalg.eigvalsh(0.5 * (A.float() + A.float().mT))).detach()
    assert float((torch.linalg.eigvalsh(Y.detach()) - ref).abs().max()) <= 1e-5


def _bimap_case(X: torch.Tensor) -> torch.Tensor:
    W = torch.linalg.qr(torch.randn(6, 4, generator=torch.Generator().manual_seed(11)))[0]
    return mb.bimap(X, W)


LOW_PRECISION_INPUT = {
    "bimap": (_bimap_case, lambda: _spd_batch(6, 3, 12)),
    "spd_karcher_mean": (mb.spd_karcher_mean, lambda: _spd_batch(4, 5, 13)),
    "SPDBatchNorm": (SPDBatchNorm(4), lambda: _spd_batch(4, 5, 14)),
    "ncut_embedding": (
        lambda F: mb.ncut_embedding(F, 2),
        lambda: torch.rand(12, 4, generator=torch.Generator().manual_seed(15)),
    ),
}


@pytest.mark.parametrize("autocast_dtype", AUTOCAST_DTYPES, ids=[str(d)[6:] for d in AUTOCAST_DTYPES])
@pytest.mark.parametrize("name", list(LOW_PRECISION_INPUT))
def test_low_precision_input_is_computed_in_float32(name: str, autocast_dtype: torch.dtype) -> None:
    """Fed a bfloat16/float16 activation under autocast, the layer returns float32 equal to a float32
    run on the same (upcast) values: no product inside it was rounded to the low-precision format."""
    fn, make = LOW_PRECISION_INPUT[name]
    X = make().to(autocast_dtype)
    with torch.autocast("cpu", dtype=autocast_dtype):
        Y_low = fn(X).detach()
    Y_32 = fn(X.float()).detach()
    assert Y_low.dtype == torch.float32
    assert float((Y_low - Y_32).abs().max()) <= 1e-5 * float(Y_32.abs().max())
