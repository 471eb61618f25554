"""The finite-difference oracle of docs/derivations.md (docs/scripts/derivation_checks.py) holds, and it
can fail: the wrong-transpose eigenvector backward the page warns about is caught."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "scripts" / "derivation_checks.py"


def _oracle():
    spec = importlib.util.spec_from_file_location("derivation_checks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [0, 1])
def test_every_stated_formula_matches_finite_differences(seed):
    errors = _oracle().all_checks(seed)
    assert len(errors) >= 15
    wrong = {k: v for k, v in errors.items() if "must be O(1)" in k}
    right = {k: v for k, v in errors.items() if k not in wrong}
    assert all(v < 1e-6 for v in right.values()), right
    assert wrong and all(v > 0.1 for v in wrong.values()), wrong


def test_the_derivations_page_points_at_the_oracle_inside_the_repository():
    text = (SCRIPT.parents[2] / "docs" / "derivations.md").read_text()
    assert "docs/scripts/derivation_checks.py" in text
    assert "../shared" not in text
