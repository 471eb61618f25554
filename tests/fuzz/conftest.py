"""Fuzz-suite fixtures: one thread per test, and the case/error report for ``benchmarks/fuzz.py``."""

from __future__ import annotations

import os

import pytest
import torch

from . import record


@pytest.fixture(autouse=True)
def _single_thread():
    # The suite shares a 2-core machine; one thread keeps timings stable and avoids oversubscription.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def _fuzz_report():
    yield
    path = os.environ.get("MATBACKPROP_FUZZ_REPORT")
    if path:
        record.dump(path)
