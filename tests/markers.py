"""Markers shared by the test suite: ``data`` (needs a real dataset) and ``slow`` (registered in pyproject.toml).

``needs_dataset("bsds500", "BSDS500")`` marks a test ``data`` and skips it, with the reason, when the
dataset (or the given entry inside it) is absent; the location comes from :mod:`matbackprop.data.locations`
(environment override, else ``../shared`` beside the project root), the same as the commands use.
``pytest -m "not data"`` / ``-m "not slow"`` deselect them; ``-ra`` (the default options) lists every
skip with its reason at the end of a run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from matbackprop.data.locations import DATASETS, data_dir

F = TypeVar("F", bound=Callable[..., object])


def dataset_path(name: str, *inside: str) -> Path:
    """Where dataset ``name`` (a key of ``DATASETS``) is looked for, joined with ``inside``."""
    return data_dir(name).joinpath(*inside)


def missing_reason(name: str, *inside: str) -> str | None:
    """``None`` when ``dataset_path(name, *inside)`` exists, else why the test is skipped."""
    path = dataset_path(name, *inside)
    if path.exists():
        return None
    return (
        f"{name} not found at {path} (set {DATASETS[name]}=DIR to point elsewhere; default: "
        "the 'shared' folder beside the project root)"
    )


def dataset_marks(name: str, *inside: str) -> list[pytest.MarkDecorator]:
    """``[data, skipif(absent)]`` for a module's ``pytestmark``."""
    reason = missing_reason(name, *inside)
    return [pytest.mark.data, pytest.mark.skipif(reason is not None, reason=reason or "")]


def needs_dataset(name: str, *inside: str) -> Callable[[F], F]:
    """Decorator for a test or a class: mark ``data`` and skip, with the reason, when the data is absent."""
    marks = dataset_marks(name, *inside)

    def mark(obj: F) -> F:
        for m in marks:
            obj = m(obj)
        return obj

    return mark
