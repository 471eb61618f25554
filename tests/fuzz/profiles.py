"""Hypothesis profiles for the fuzz suite; choose one with ``MATBACKPROP_FUZZ_PROFILE``.

``ci`` (default): few examples per property, derandomized so every CI run sees the same cases, no
deadline (first calls pay for lazy initialisation). ``thorough``: the benchmark-style run of
``benchmarks/fuzz.py`` (>= 10,000 cases over the suite). The profiles are applied per test through
:func:`fuzz_settings`, never loaded globally, so the rest of the test suite keeps its own settings.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.register_profile("matbackprop-fuzz-ci", max_examples=60, derandomize=True, database=None, **_COMMON)
# MATBACKPROP_FUZZ_EXAMPLES overrides the thorough example count (benchmarks/fuzz.py --examples).
_THOROUGH = int(os.environ.get("MATBACKPROP_FUZZ_EXAMPLES", "400"))
settings.register_profile(
    "matbackprop-fuzz-thorough", max_examples=_THOROUGH, derandomize=False, database=None, **_COMMON
)
PROFILE = os.environ.get("MATBACKPROP_FUZZ_PROFILE", "ci")
if PROFILE not in ("ci", "thorough"):
    raise ValueError(f"MATBACKPROP_FUZZ_PROFILE must be 'ci' or 'thorough', got {PROFILE!r}")


def fuzz_settings(weight: float = 1.0) -> settings:
    """Settings of the active profile; ``weight`` scales the example count (cheap or costly properties)."""
    parent = settings.get_profile(f"matbackprop-fuzz-{PROFILE}")
    return settings(parent, max_examples=max(2, round(parent.max_examples * weight)))
