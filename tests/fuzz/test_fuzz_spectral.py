"""Fuzz the spectral functions ``f(X) = Q f(L) Q^T``: logm, sqrtm, invsqrtm, powm, expm, clamp_eigs, funm.

Valid input: the output and the gradient of ``<G, f(X)>`` are finite and within ``C * scale`` of the
mpmath reference built from the known eigendecomposition (``reference.perturbation_scale`` defines the
scale, ``OUTPUT_BOUND`` and ``GRADIENT_BOUND`` hold the constants ``C``, docs/robustness.md the table). Invalid input: ``ValueError``
whose message names the problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st

import matbackprop as mb

from . import record
from . import reference as ref
from .profiles import fuzz_settings
from .strategies import EXPECTED_MESSAGE, Spectrum, directions, indefinite_spectra, invalid_matrices, spectra

DTYPES = [torch.float32, torch.float64]
POWERS = (-1.0, -0.5, 0.3, 0.5, 2.0, 3.0)
# Constants C of the bounds |error| <= C * scale, measured by benchmarks/fuzz.py (thorough profile,
# worst case over >= 10,000 cases) and rounded up with a safety factor of about 4.
OUTPUT_BOUND = 8.0
GRADIENT_BOUND = 16.0
# funm without a divided-difference formula switches from the quotient to f' at the midpoint at a
# relative gap of eps^(1/3): its gradient error is eps^(2/3) relative, not eps (see funm's docstring).
GENERIC_GRADIENT_EPS_POWER = 2.0 / 3.0


@dataclass(frozen=True)
class SpectralCase:
    """A public spectral function, its mpmath twin and the valid eigenvalue domain."""

    name: str
    apply: Callable[[torch.Tensor], torch.Tensor]
    scalar: ref.ScalarFunction
    domain: str  # "pd", "psd" or "all"
    log_scale: tuple[float, float] = (-8.0, 8.0)
    max_abs: float | None = None
    gradient_eps_power: float = 1.0


def _sin(x: torch.Tensor) -> torch.Tensor:
    return mb.funm(x, torch.sin, torch.cos, d2f=lambda t: -torch.sin(t))


def _cases() -> list[SpectralCase]:
    cases = [
        SpectralCase("logm", mb.logm, ref.LOG, "pd"),
        SpectralCase("sqrtm", mb.sqrtm, ref.power(0.5), "psd"),
        SpectralCase("invsqrtm", mb.invsqrtm, ref.power(-0.5), "pd", log_scale=(-6.0, 8.0)),
        # |l| <= 20 keeps exp(l) and its divided differences far inside float32's range.
        SpectralCase("expm", mb.expm, ref.EXP, "all", max_abs=20.0),
        SpectralCase("funm(sin)", _sin, ref.SIN, "all", max_abs=10.0, gradient_eps_power=GENERIC_GRADIENT_EPS_POWER),
    ]
    for p in POWERS:
        # |p| log10(scale) must stay inside float32's exponent range, gradients included (|p - 2|).
        reach = 30.0 / (abs(p) + 2.0)
        cases.append(
            SpectralCase(
                f"powm(p={p:g})", lambda X, p=p: mb.powm(X, p), ref.power(p), "pd" if p < 0 else "psd", (-reach, reach)
            )
        )
    return cases


CASES = {case.name: case for case in _cases()}


def _spectrum_strategy(case: SpectralCase, dtype: torch.dtype) -> st.SearchStrategy[Spectrum]:
    return spectra(dtype=dtype, domain=case.domain, log_scale=case.log_scale, max_abs=case.max_abs)


def _differentiable(scalar: ref.ScalarFunction, L: tuple[float, ...]) -> bool:
    # sqrt and x^p (p < 1) have infinite slope at an exact zero eigenvalue: the gradient is documented
    # to be infinite there, so only the output is checked.
    return scalar.holder is None or min(L) > 0


def check_spectral(
    name: str,
    apply,
    scalar: ref.ScalarFunction,
    spectrum: Spectrum,
    G: np.ndarray,
    dtype: torch.dtype,
    gradient_eps_power: float = 1.0,
    check_gradient: bool = True,
) -> None:
    """Run ``apply`` on the matrix of ``spectrum`` and compare output and gradient with the reference."""
    record.count(name)
    note(f"{name} {dtype} L={spectrum.eigenvalues} seed={spectrum.seed} identity={spectrum.identity_basis}")
    X, Q = spectrum.matrix(dtype)
    X.requires_grad_(True)
    Y = apply(X)
    assert Y.dtype == dtype and Y.shape == X.shape
    assert bool(torch.isfinite(Y).all()), "non-finite output for valid input"
    L = spectrum.eigenvalues
    eps = torch.finfo(dtype).eps
    scale = ref.perturbation_scale(scalar, L, G, eps, torch.finfo(dtype).tiny)
    err = ref.distance(ref.to_numpy(Y), ref.spectral_output(scalar, L, Q))
    key = f"{name}/{str(dtype)[6:]}"
    measured = record.ratio(f"{key}/output", err, scale.output)
    assert measured <= OUTPUT_BOUND, f"output error {err:.3g} = {measured:.3g} x scale {scale.output:.3g}"
    if not check_gradient:
        return
    (Y * torch.from_numpy(G).to(dtype)).sum().backward()
    g = X.grad
    assert bool(torch.isfinite(g).all()), "non-finite gradient for valid input"
    g_ref = ref.spectral_gradient(scalar, L, Q, G)
    gscale = scale.gradient
    if gradient_eps_power != 1.0:
        gscale = gscale / eps * eps**gradient_eps_power
    gerr = ref.distance(ref.to_numpy(g), g_ref)
    measured = record.ratio(f"{key}/gradient", gerr, gscale)
    assert measured <= GRADIENT_BOUND, f"gradient error {gerr:.3g} = {measured:.3g} x scale {gscale:.3g}"


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_valid_input_matches_reference(name: str, dtype: torch.dtype) -> None:
    case = CASES[name]

    @fuzz_settings(0.5)
    @given(data=st.data())
    def run(data):
        spectrum = data.draw(_spectrum_strategy(case, dtype))
        G = data.draw(directions(spectrum.n))
        check_spectral(
            case.name,
            case.apply,
            case.scalar,
            spectrum,
            G,
            dtype,
            case.gradient_eps_power,
            _differentiable(case.scalar, spectrum.eigenvalues),
        )

    run()


FLOORS = (0.0, 1e-4, 0.5)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@given(data=st.data())
@fuzz_settings(0.5)
def test_clamp_eigs_matches_reference(dtype: torch.dtype, data) -> None:
    """ReEig: any symmetric input; floors at, between and among the eigenvalues (exact ties with the floor)."""
    spectrum = data.draw(spectra(dtype=dtype, domain="all", max_abs=data.draw(st.sampled_from([1e-3, 1.0, 1e3]))))
    L = spectrum.eigenvalues
    floor = data.draw(st.one_of(st.sampled_from(FLOORS), st.sampled_from(L)))
    G = data.draw(directions(spectrum.n))
    # The derivative jumps at the floor: with an eigenvalue within rounding of it the gradient is not
    # determined by the input, so only the output (1-Lipschitz) is checked then.
    kink = min(abs(x - floor) for x in L)
    info = torch.finfo(dtype)
    smooth = kink > 10 * spectrum.n * (info.eps * max(max(abs(x) for x in L), abs(floor)) + info.tiny)
    check_spectral(
        "clamp_eigs", lambda X: mb.clamp_eigs(X, floor), ref.clamp(floor), spectrum, G, dtype, check_gradient=smooth
    )


# ---------------------------------------------------------------------------------------------------
# Invalid input


def _expect_value_error(fn, X, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        fn(X)
    assert fragment in str(info.value), f"message {str(info.value)!r} does not name {fragment!r}"


@pytest.mark.parametrize("name", list(CASES) + ["clamp_eigs", "eigh"])
@given(data=st.data())
@fuzz_settings(0.5)
def test_invalid_input_raises_value_error(name: str, data) -> None:
    """NaN/Inf entries, asymmetry, wrong shape or dtype: ``ValueError`` naming the problem."""
    dtype = data.draw(st.sampled_from(DTYPES))
    kind, X = data.draw(invalid_matrices(dtype=dtype))
    record.count(f"{name}/invalid")
    fn = {"clamp_eigs": lambda A: mb.clamp_eigs(A, 1e-4), "eigh": mb.eigh}.get(name) or CASES[name].apply
    _expect_value_error(fn, X, EXPECTED_MESSAGE[kind])


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.domain != "all"] + ["sqrtm_newton_schulz"])
@given(data=st.data())
@fuzz_settings(0.5)
def test_negative_eigenvalue_raises_value_error(name: str, data) -> None:
    """A clearly negative eigenvalue where the function needs PD/PSD input."""
    dtype = data.draw(st.sampled_from(DTYPES))
    spectrum = data.draw(indefinite_spectra(dtype=dtype))
    record.count(f"{name}/indefinite")
    X, _ = spectrum.matrix(dtype)
    fn = mb.sqrtm_newton_schulz if name == "sqrtm_newton_schulz" else CASES[name].apply
    _expect_value_error(fn, X, "positive")


def test_nan_exponent_raises_value_error() -> None:
    """Regression (found by fuzzing): a NaN exponent gave an all-NaN matrix."""
    with pytest.raises(ValueError):
        mb.powm(2.0 * torch.eye(3, dtype=torch.float64), float("nan"))


def test_nan_floor_raises_value_error() -> None:
    """Regression (found by fuzzing): a NaN floor gave an all-NaN matrix."""
    with pytest.raises(ValueError):
        mb.clamp_eigs(2.0 * torch.eye(3, dtype=torch.float64), float("nan"))


@pytest.mark.parametrize("name", ["logm", "invsqrtm", "powm(p=-1)"])
def test_singular_input_is_clamped_at_the_floor_whatever_the_rotation(name: str) -> None:
    """Regression (found by fuzzing): ``Q diag(0, 1, 2) Q^T``: for about half the rotations eigh returns
    ~+1e-16 for the zero eigenvalue, and logm answered log(1e-16) = -37 for some rotations and raised
    for others. Policy now (issue 12, ``matbackprop.linalg.checks``): a PSD matrix singular to working
    precision is PD up to rounding, and every eigenvalue below the floor ``eps max|L|`` is clamped to
    it, so all twenty rotations give the same, finite Q diag(f(floor), f(1), f(2)) Q^T (relative to its
    largest entry: f(floor) is 1e7 .. 1e15 here, and the rest is resolved only to that scale)."""
    spec = CASES[name]
    floor = torch.finfo(torch.float64).eps * 2.0
    f = torch.tensor([float(spec.scalar.f(mpmath.mpf(v))) for v in (floor, 1.0, 2.0)], dtype=torch.float64)
    for seed in range(20):
        X, Q = Spectrum((0.0, 1.0, 2.0), seed=seed, kind="zero").matrix(torch.float64)
        Y = spec.apply(X)
        Q = torch.from_numpy(Q)
        reference = (Q * f) @ Q.T
        assert torch.allclose(Y, reference, rtol=0, atol=1e-12 * float(reference.abs().max())), seed
