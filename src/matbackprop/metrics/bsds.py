"""The BSDS500 benchmark protocol in one namespace: ODS, OIS, Best and AP of segmentations and boundaries.

The work is split by job; this module gathers their public names (``metrics.bsds.X`` as before):

- :mod:`~matbackprop.metrics.ucm`: ultrametric contour maps (thresholds, segmentation at a threshold, boundary strength);
- :mod:`~matbackprop.metrics.image_eval`: per-image region and boundary counts at every threshold;
- :mod:`~matbackprop.metrics.pooling`: data-set pooling into ODS / OIS / Best / AP, as the official BSR scripts
  ``collect_eval_reg`` and ``collect_eval_bdry`` do (Arbelaez, Maire, Fowlkes & Malik, TPAMI 2011;
  data of Martin et al., ICCV 2001).
"""

from __future__ import annotations

from .image_eval import (
    ImageBoundaryEval,
    ImageRegionEval,
    evaluate_boundary_maps,
    evaluate_human_regions,
    evaluate_regions,
    evaluate_segmentation_boundaries,
    evaluate_soft_boundaries,
    evaluate_ucm_boundaries,
    evaluate_ucm_regions,
)
from .pooling import BoundaryResult, RegionResult, collect_boundaries, collect_regions, count_ratio, fmeasure
from .ucm import ucm_boundary_strength, ucm_thresholds, ucm_to_segmentation

__all__ = [
    "ucm_thresholds",
    "ucm_to_segmentation",
    "ucm_boundary_strength",
    "ImageRegionEval",
    "ImageBoundaryEval",
    "evaluate_regions",
    "evaluate_ucm_regions",
    "evaluate_boundary_maps",
    "evaluate_soft_boundaries",
    "evaluate_ucm_boundaries",
    "evaluate_segmentation_boundaries",
    "evaluate_human_regions",
    "RegionResult",
    "BoundaryResult",
    "collect_regions",
    "collect_boundaries",
    "count_ratio",
    "fmeasure",
]
