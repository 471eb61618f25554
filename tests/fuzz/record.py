"""Case counter and worst measured error ratios, shared by the fuzz tests and benchmarks/fuzz.py.

Every executed example calls :func:`count`; accuracy checks call :func:`ratio` with ``error / scale``
(the measured constant of the bound). ``conftest.py`` writes the totals to the JSON file named by
``MATBACKPROP_FUZZ_REPORT`` at the end of the session.
"""

from __future__ import annotations

import json
import math
from collections import Counter

COUNTS: Counter[str] = Counter()
WORST: dict[str, float] = {}


def count(name: str) -> None:
    COUNTS[name] += 1


def ratio(key: str, error: float, scale: float) -> float:
    """Record and return ``error / scale`` under ``key`` (``0`` when both are 0)."""
    value = 0.0 if error == 0 else (error / scale if scale > 0 else math.inf)
    if value > WORST.get(key, -1.0):
        WORST[key] = value
    return value


def dump(path: str) -> None:
    with open(path, "w") as fh:
        json.dump({"counts": dict(COUNTS), "worst": WORST}, fh, indent=1, sort_keys=True)
