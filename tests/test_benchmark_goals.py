"""The benchmark page states the tie tolerances it checks (benchmarks/spectral_bench/goals.py: one source)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def goals(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the benchmark imports its sibling _timing module
    from spectral_bench import goals, spectral

    yield goals, spectral
    for name in [m for m in sys.modules if m == "_timing" or m.startswith("spectral_bench")]:
        monkeypatch.delitem(sys.modules, name)


def _tie_goal(goals, spectral, tol, err):
    result = spectral.SpectralResult("logm", 1, 8, "float32", "cpu", methods=[])
    ties = {("logm", "float32"): {"matbackprop": (err, 0.0)}, ("logm", "float64"): {"matbackprop": (1e-12, 0.0)}}
    rows = goals.evaluate_goals([result], ties, [], None, tol)
    (goal,) = [g for g in rows if "exact at ties" in g.text]
    return goal


def test_tie_goal_text_comes_from_the_tolerances_it_checks(goals):
    goals, spectral = goals
    default = _tie_goal(goals, spectral, goals.TIE_TOL, 5e-5)
    assert default.met is True and "tol 1e-4 f32, 1e-10 f64" in default.measured
    stricter = _tie_goal(goals, spectral, {"float32": 1e-5, "float64": 1e-10}, 5e-5)
    assert stricter.met is False and "tol 1e-5 f32, 1e-10 f64" in stricter.measured
