"""Per-image BSDS evaluation: region counts (covering, PRI, VI) and boundary counts at every threshold.

Each image is scored at a series of "thresholds" (the levels of a hierarchy: thresholds of an
ultrametric contour map, or simply the index of each segmentation in a list). The results are pooled
over a data set by :mod:`~matbackprop.metrics.pooling`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np

from .boundaries import MAX_DIST, BoundaryCounts, HumanBoundaries, boundary_counts, seg_to_boundaries, thin
from .boundary_series import Matcher, boundary_counts_series, resolve_matcher
from .regions import RegionCounts, region_counts
from .ucm import ucm_boundary_strength, ucm_thresholds, ucm_to_segmentation

__all__ = [
    "ImageRegionEval",
    "ImageBoundaryEval",
    "evaluate_regions",
    "evaluate_ucm_regions",
    "evaluate_human_regions",
    "evaluate_boundary_maps",
    "evaluate_soft_boundaries",
    "evaluate_ucm_boundaries",
    "evaluate_segmentation_boundaries",
]


@dataclass
class ImageRegionEval:
    """Region counts of one image at every threshold.

    Attributes
    ----------
    thresholds : (T,) threshold (or level index) of each segmentation.
    cnt_r, sum_r : (T,) pooled covering counts of the ground truths by the
        segmentation (covering = cnt_r / sum_r).
    cnt_p, sum_p : (T,) the same in the reverse direction.
    pri, vi : (T,) mean Rand index and mean VI (bits) over annotators.
    cnt_r_best : area-weighted sum of each ground-truth region's best overlap
        over all thresholds (numerator of the covering "Best" column).
    """

    thresholds: np.ndarray
    cnt_r: np.ndarray
    sum_r: np.ndarray
    cnt_p: np.ndarray
    sum_p: np.ndarray
    pri: np.ndarray
    vi: np.ndarray
    cnt_r_best: float


@dataclass
class ImageBoundaryEval:
    """Boundary counts of one image at every threshold.

    Attributes
    ----------
    thresholds : (T,)
    cnt_r, sum_r : (T,) paired / all human boundary pixels, over annotators.
    cnt_p, sum_p : (T,) paired / all machine boundary pixels (after thinning).
    """

    thresholds: np.ndarray
    cnt_r: np.ndarray
    sum_r: np.ndarray
    cnt_p: np.ndarray
    sum_p: np.ndarray


def _region_eval(
    thresholds: Sequence[float] | np.ndarray,
    segs_by_level: Iterable[tuple[Hashable, Callable[[], np.ndarray]]],
    gts: Sequence[np.ndarray],
) -> ImageRegionEval:
    """Score a list of segmentations, reusing the result of repeated ones.

    ``segs_by_level`` yields (key, seg-factory) pairs: equal keys mean equal
    segmentations, which is common along a UCM's threshold series.
    """
    rows = []
    best: np.ndarray | None = None
    areas: np.ndarray | None = None
    last_key: Hashable = object()
    rc: RegionCounts | None = None
    for key, make in segs_by_level:
        if rc is None or key != last_key:  # repeats are consecutive along a threshold series
            rc = region_counts(make(), gts)
            last_key = key
        c = rc.covering
        rows.append((c.cnt_r, c.sum_r, c.cnt_p, c.sum_p, rc.pri, rc.vi))
        best = c.gt_best.copy() if best is None else np.maximum(best, c.gt_best)
        areas = c.gt_areas
    a = np.asarray(rows, dtype=float).reshape(-1, 6)
    return ImageRegionEval(
        thresholds=np.asarray(thresholds, dtype=float),
        cnt_r=a[:, 0],
        sum_r=a[:, 1],
        cnt_p=a[:, 2],
        sum_p=a[:, 3],
        pri=a[:, 4],
        vi=a[:, 5],
        cnt_r_best=float(np.dot(areas, best)) if best is not None and areas is not None else 0.0,
    )


def evaluate_regions(
    segs: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    thresholds: Sequence[float] | None = None,
) -> ImageRegionEval:
    """Region benchmark of one image given one segmentation per level.

    Parameters
    ----------
    segs : list of T (H, W) integer label maps (the levels of a hierarchy).
    gts : list of K (H, W) human label maps.
    thresholds : (T,) values reported for the levels; default 1..T, as the
        official code does for a cell of segmentations.

    >>> import numpy as np
    >>> halves = np.array([[0, 0, 1, 1]] * 4)
    >>> ev = evaluate_regions([np.zeros((4, 4), int), halves], [halves])
    >>> (ev.cnt_r / ev.sum_r).tolist(), ev.vi.tolist()
    ([0.5, 1.0], [1.0, 0.0])
    """
    th = np.arange(1, len(segs) + 1, dtype=float) if thresholds is None else np.asarray(thresholds, dtype=float)
    if len(th) != len(segs):
        raise ValueError("one threshold per segmentation is needed")
    return _region_eval(th, ((k, partial(np.asarray, s)) for k, s in enumerate(segs)), gts)


def _level_keys(values: np.ndarray, thresholds: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
    """Index of each threshold among the sorted distinct values of a map.

    Two thresholds with the same key select the same set of values, hence
    the same segmentation (``side="right"``, values <= t) or boundary map
    (``side="left"``, values >= t).
    """
    return np.searchsorted(np.unique(values), thresholds, side=side)


def evaluate_ucm_regions(ucm2: np.ndarray, gts: Sequence[np.ndarray], nthresh: int = 99) -> ImageRegionEval:
    """Region benchmark of one image's UCM at ``ucm_thresholds(nthresh)``.

    >>> import numpy as np
    >>> ucm2 = np.zeros((9, 9)); ucm2[:, 4] = 0.5  # a 4x4 image split by a contour of strength 0.5
    >>> ev = evaluate_ucm_regions(ucm2, [np.array([[0, 0, 1, 1]] * 4)], nthresh=3)
    >>> ev.thresholds.tolist(), (ev.cnt_r / ev.sum_r).tolist()
    ([0.25, 0.5, 0.75], [1.0, 0.5, 0.5])
    """
    th = ucm_thresholds(nthresh)
    keys = _level_keys(np.asarray(ucm2), th, "right")
    return _region_eval(
        th,
        ((k, partial(ucm_to_segmentation, ucm2, float(t))) for k, t in zip(keys, th)),
        gts,
    )


def evaluate_human_regions(gts: Sequence[np.ndarray]) -> list[ImageRegionEval]:
    """Leave-one-out human scores of one image.

    Each annotator's segmentation is scored as a machine segmentation against
    the remaining annotators: one single-level evaluation per annotator.

    >>> import numpy as np
    >>> halves, whole = np.array([[0, 0, 1, 1]] * 4), np.zeros((4, 4), int)
    >>> [round(float(ev.pri[0]), 3) for ev in evaluate_human_regions([halves, halves, whole])]
    [0.733, 0.733, 0.467]
    """
    if len(gts) < 2:
        raise ValueError("leave-one-out needs at least two annotators")
    return [evaluate_regions([gts[k]], [g for j, g in enumerate(gts) if j != k]) for k in range(len(gts))]


def evaluate_boundary_maps(
    bmaps: Sequence[np.ndarray | Callable[[], np.ndarray]],
    gt_boundaries: Sequence[np.ndarray] | HumanBoundaries,
    thresholds: Sequence[float] | np.ndarray | None = None,
    max_dist: float = MAX_DIST,
    thin_maps: bool = True,
    min_cost: bool = True,
    keys: Sequence[Hashable] | None = None,
    matcher: Matcher = "auto",
) -> ImageBoundaryEval:
    """Boundary benchmark of one image given one binary map per threshold.

    Parameters
    ----------
    bmaps : T binary (H, W) machine maps, or zero-argument callables
        returning them (evaluated lazily).
    gt_boundaries : K human boundary maps, or a prepared HumanBoundaries.
    thresholds : (T,) values reported; default 1..T.
    keys : optional equality keys: maps with equal consecutive keys are
        known to be identical and scored once.
    matcher : how the min-cost matchings are found: ``"incremental"`` solves
        the whole series at once (:mod:`~matbackprop.metrics.boundary_series`,
        needs numba to be fast), ``"scipy"`` one assignment per map, ``"auto"``
        the first when numba is installed. Both give the same recall; the
        precision may differ by a few pixels where pairings tie.

    >>> import numpy as np
    >>> b = np.zeros((4, 4), dtype=bool); b[:, 1] = True
    >>> ev = evaluate_boundary_maps([b, np.zeros_like(b)], [b])
    >>> ev.cnt_r.tolist(), ev.sum_r.tolist(), ev.cnt_p.tolist(), ev.sum_p.tolist()
    ([4.0, 0.0], [4.0, 4.0], [4.0, 0.0], [4.0, 0.0])
    """
    human = gt_boundaries if isinstance(gt_boundaries, HumanBoundaries) else HumanBoundaries(gt_boundaries, max_dist)
    th = np.arange(1, len(bmaps) + 1, dtype=float) if thresholds is None else np.asarray(thresholds, dtype=float)
    if keys is None:
        keys = range(len(bmaps))
    distinct: list[np.ndarray] = []  # one map per run of equal keys
    which: list[int] = []
    last_key: Hashable = object()
    for key, b in zip(keys, bmaps):
        if not distinct or key != last_key:
            bm = np.asarray(b() if callable(b) else b).astype(bool)
            if bm.shape != human.shape:
                raise ValueError(f"machine map has shape {bm.shape}, human maps {human.shape}")
            distinct.append(bm)
            last_key = key
        which.append(len(distinct) - 1)
    counts: list[BoundaryCounts]
    if resolve_matcher(matcher) == "incremental" and min_cost:
        counts = boundary_counts_series([thin(b) if thin_maps else b for b in distinct], human)
    else:
        counts = [boundary_counts(b, human, thin_map=thin_maps, min_cost=min_cost) for b in distinct]
    rows = [(c.cnt_r, c.sum_r, c.cnt_p, c.sum_p) for c in (counts[k] for k in which)]
    a = np.asarray(rows, dtype=float).reshape(-1, 4)
    return ImageBoundaryEval(
        thresholds=th,
        cnt_r=a[:, 0],
        sum_r=a[:, 1],
        cnt_p=a[:, 2],
        sum_p=a[:, 3],
    )


def evaluate_soft_boundaries(
    pb: np.ndarray,
    gt_boundaries: Sequence[np.ndarray] | HumanBoundaries,
    nthresh: int = 99,
    max_dist: float = MAX_DIST,
    thin_maps: bool = True,
    min_cost: bool = True,
    matcher: Matcher = "auto",
) -> ImageBoundaryEval:
    """Boundary benchmark of a soft boundary map in [0, 1] (e.g. a PNG / 255).

    The map is binarised with ``pb >= t`` at ``ucm_thresholds(nthresh)``; ``matcher`` as in
    :func:`evaluate_boundary_maps`.

    >>> import numpy as np
    >>> b = np.zeros((4, 4), dtype=bool); b[:, 1] = True
    >>> ev = evaluate_soft_boundaries(0.8 * b, [b], nthresh=3)
    >>> ev.thresholds.tolist(), ev.cnt_p.tolist()
    ([0.25, 0.5, 0.75], [4.0, 4.0, 4.0])
    """
    p = np.asarray(pb, dtype=float)
    th = ucm_thresholds(nthresh)
    keys = _level_keys(p, th, "left")
    return evaluate_boundary_maps(
        [partial(np.greater_equal, p, float(t)) for t in th],
        gt_boundaries,
        th,
        max_dist,
        thin_maps,
        min_cost,
        keys=list(keys),
        matcher=matcher,
    )


def evaluate_ucm_boundaries(
    ucm2: np.ndarray,
    gt_boundaries: Sequence[np.ndarray] | HumanBoundaries,
    nthresh: int = 99,
    max_dist: float = MAX_DIST,
    thin_maps: bool = True,
    min_cost: bool = True,
    matcher: Matcher = "auto",
) -> ImageBoundaryEval:
    """Boundary benchmark of a doubled-grid UCM (via :func:`~matbackprop.metrics.ucm.ucm_boundary_strength`).

    >>> import numpy as np
    >>> ucm2 = np.zeros((9, 9)); ucm2[:, 4] = 0.5
    >>> b = np.zeros((4, 4), dtype=bool); b[:, 1] = True
    >>> evaluate_ucm_boundaries(ucm2, [b], nthresh=3).cnt_r.tolist()  # the contour is gone above 0.5
    [4.0, 4.0, 0.0]
    """
    return evaluate_soft_boundaries(
        ucm_boundary_strength(ucm2), gt_boundaries, nthresh, max_dist, thin_maps, min_cost, matcher
    )


def evaluate_segmentation_boundaries(
    segs: Sequence[np.ndarray],
    gt_boundaries: Sequence[np.ndarray] | HumanBoundaries,
    max_dist: float = MAX_DIST,
    thin_maps: bool = True,
    min_cost: bool = True,
    matcher: Matcher = "auto",
) -> ImageBoundaryEval:
    """Boundary benchmark of a list of segmentations (their region boundaries; ``matcher`` as in
    :func:`evaluate_boundary_maps`).

    >>> import numpy as np
    >>> b = np.zeros((4, 4), dtype=bool); b[:, 1] = True
    >>> halves = np.array([[0, 0, 1, 1]] * 4)
    >>> evaluate_segmentation_boundaries([halves, np.zeros((4, 4), int)], [b]).cnt_r.tolist()
    [4.0, 0.0]
    """
    return evaluate_boundary_maps(
        [partial(seg_to_boundaries, s) for s in segs],
        gt_boundaries,
        None,
        max_dist,
        thin_maps,
        min_cost,
        matcher=matcher,
    )
