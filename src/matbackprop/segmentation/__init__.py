"""Hierarchical segmentation: spectral boundaries from NCuts eigenvectors, ultrametric contour maps.

- :mod:`.spectral`: gPb-style oriented gradients of eigenvectors (sPb) and boundary combination.
- :mod:`.edges`: non-maximum suppression of edge maps, sharpened arc strengths.
- :mod:`.ucm`: oriented watershed + mean-boundary hierarchy (higra) -> ``ucm2`` on the doubled grid.
- :mod:`.hierarchy`: embedding or edge map -> UCM in one call.
- :mod:`.scores`: per-image benchmark counts cached on disk (resumable evaluations).
"""

from .edges import edge_nms, sharpened_edges
from .hierarchy import edges_ucm, embedding_boundaries, embedding_ucm, respace_ucm, upsample_embedding
from .spectral import (
    combine_boundaries,
    ncut_eigenvalues_from_normalized,
    oriented_gradients,
    spectral_boundaries,
)
from .ucm import remove_small_regions, ucm_levels, ultrametric_contour_map

__all__ = [
    "edge_nms",
    "sharpened_edges",
    "edges_ucm",
    "embedding_boundaries",
    "embedding_ucm",
    "respace_ucm",
    "upsample_embedding",
    "combine_boundaries",
    "ncut_eigenvalues_from_normalized",
    "oriented_gradients",
    "spectral_boundaries",
    "ucm_levels",
    "remove_small_regions",
    "ultrametric_contour_map",
]
