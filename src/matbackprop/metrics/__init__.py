"""Segmentation and boundary benchmarks (BSDS500 conventions).

The region scores of :mod:`~matbackprop.metrics.regions` (covering, PRI, VI) need numpy only and are
imported with the package. The boundary benchmark and the BSDS protocol (:mod:`.boundaries`,
:mod:`.bsds`) need scipy (``pip install 'matbackprop[metrics]'``); they are imported on first use,
which says so if scipy is missing.
"""

from __future__ import annotations

import importlib
from typing import Any

from .regions import (
    ContingencyTable,
    CoveringCounts,
    RegionCounts,
    contingency_table,
    covering_counts,
    probabilistic_rand_index,
    region_counts,
    segmentation_covering,
    variation_of_information,
)

# name -> submodule, for the parts that need scipy
_NEEDS_SCIPY = {
    **dict.fromkeys(
        (
            "MAX_DIST",
            "BoundaryCounts",
            "HumanBoundaries",
            "boundary_counts",
            "correspond_pixels",
            "seg_to_boundaries",
            "thin",
        ),
        "boundaries",
    ),
    **dict.fromkeys(
        (
            "BoundaryResult",
            "ImageBoundaryEval",
            "ImageRegionEval",
            "RegionResult",
            "collect_boundaries",
            "collect_regions",
            "evaluate_boundary_maps",
            "evaluate_human_regions",
            "evaluate_regions",
            "evaluate_segmentation_boundaries",
            "evaluate_soft_boundaries",
            "evaluate_ucm_boundaries",
            "evaluate_ucm_regions",
            "fmeasure",
            "ucm_boundary_strength",
            "ucm_thresholds",
            "ucm_to_segmentation",
        ),
        "bsds",
    ),
    **dict.fromkeys(("OdsGap", "covering_ods_gap"), "comparison"),
}


def __getattr__(name: str) -> Any:
    if name in _NEEDS_SCIPY or name in ("boundaries", "bsds", "comparison"):
        from .._extras import require

        require("scipy", extra="metrics", feature=f"matbackprop.metrics.{name}")
        module = importlib.import_module(f"{__name__}.{_NEEDS_SCIPY.get(name, name)}")
        value = module if name in ("boundaries", "bsds", "comparison") else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_NEEDS_SCIPY})


__all__ = [
    *_NEEDS_SCIPY,
    "ContingencyTable",
    "CoveringCounts",
    "RegionCounts",
    "contingency_table",
    "covering_counts",
    "probabilistic_rand_index",
    "region_counts",
    "segmentation_covering",
    "variation_of_information",
]
