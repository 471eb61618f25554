"""Data-set level BSDS500 benchmark: ODS, OIS, Best and AP.

Each image is scored at a series of "thresholds" (the levels of a hierarchy:
thresholds of an ultrametric contour map, or simply the index of each
segmentation in a list), then the per-image counts are pooled exactly as the
official BSR scripts ``collect_eval_reg`` and ``collect_eval_bdry`` pool them
(Arbelaez, Maire, Fowlkes & Malik, TPAMI 2011; data of Martin et al., ICCV
2001):

* **ODS** (optimal data-set scale): one threshold for the whole data set, the
  one maximising the pooled score (for the boundary F-measure the official
  search also interpolates linearly between consecutive thresholds, 100 steps
  per interval);
* **OIS** (optimal image scale): each image at its own best threshold, then
  pooled;
* covering **Best**: every ground-truth region at its best threshold;
* boundary **AP**: area under the pooled precision/recall curve, sampled at
  recall 0, 0.01, ..., 1.

Covering pools counts over images and annotators; PRI and VI are per-image
means over annotators, averaged over images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import ndimage

from .boundaries import MAX_DIST, HumanBoundaries, boundary_counts, seg_to_boundaries
from .regions import region_counts

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
    "fmeasure",
]

_EIGHT = np.ones((3, 3), dtype=bool)


# ---------------------------------------------------------------------------
# Ultrametric contour maps
# ---------------------------------------------------------------------------

def ucm_thresholds(n: int = 99) -> np.ndarray:
    """The benchmark's ``n`` evenly spaced thresholds ``k / (n + 1)``, k = 1..n.

    ``n = 99`` gives 0.01, 0.02, ..., 0.99.
    """
    return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)


def ucm_to_segmentation(ucm2: np.ndarray, t: float) -> np.ndarray:
    """Segmentation of an ultrametric contour map at threshold ``t``.

    The UCM lives on the doubled grid, shape (2H+1, 2W+1): pixels at odd
    coordinates, contour strengths between them at even ones. The regions are
    the 8-connected components of ``ucm2 <= t`` on that grid, read at the pixel
    centres ``ucm2[1::2, 1::2]`` (the official ``bwlabel`` convention).

    Parameters
    ----------
    ucm2 : (2H+1, 2W+1) float array.
    t : threshold.

    Returns
    -------
    (H, W) int32 label map, labels 1..n.
    """
    u = np.asarray(ucm2)
    if u.ndim != 2 or u.shape[0] % 2 == 0 or u.shape[1] % 2 == 0:
        raise ValueError(f"ucm2 must be (2H+1, 2W+1), got shape {u.shape}")
    labels, _ = ndimage.label(u <= t, structure=_EIGHT)
    return labels[1::2, 1::2]


def ucm_boundary_strength(ucm2: np.ndarray) -> np.ndarray:
    """Image-size contour strength of a doubled-grid UCM, ``ucm2[2::2, 2::2]``.

    This is the soft boundary map the official benchmark thresholds with
    ``>= t``: the strength at the lower-right corner of every pixel.
    """
    u = np.asarray(ucm2)
    if u.ndim != 2 or u.shape[0] % 2 == 0 or u.shape[1] % 2 == 0:
        raise ValueError(f"ucm2 must be (2H+1, 2W+1), got shape {u.shape}")
    return u[2::2, 2::2]


# ---------------------------------------------------------------------------
# Per-image evaluations
# ---------------------------------------------------------------------------

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


def _region_eval(thresholds, segs_by_level, gts) -> ImageRegionEval:
    """Score a list of segmentations, reusing the result of repeated ones.

    ``segs_by_level`` yields (key, seg-factory) pairs: equal keys mean equal
    segmentations, which is common along a UCM's threshold series.
    """
    rows = []
    best = None
    areas = None
    last_key, rc = object(), None
    for key, make in segs_by_level:
        if key != last_key:  # repeats are consecutive along a threshold series
            rc = region_counts(make(), gts)
            last_key = key
        c = rc.covering
        rows.append((c.cnt_r, c.sum_r, c.cnt_p, c.sum_p, rc.pri, rc.vi))
        best = c.gt_best.copy() if best is None else np.maximum(best, c.gt_best)
        areas = c.gt_areas
    a = np.asarray(rows, dtype=float).reshape(-1, 6)
    return ImageRegionEval(
        thresholds=np.asarray(thresholds, dtype=float),
        cnt_r=a[:, 0], sum_r=a[:, 1], cnt_p=a[:, 2], sum_p=a[:, 3],
        pri=a[:, 4], vi=a[:, 5],
        cnt_r_best=float(np.dot(areas, best)) if best is not None else 0.0,
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
    """
    if thresholds is None:
        thresholds = np.arange(1, len(segs) + 1, dtype=float)
    if len(thresholds) != len(segs):
        raise ValueError("one threshold per segmentation is needed")
    return _region_eval(
        thresholds, ((k, (lambda s=s: s)) for k, s in enumerate(segs)), gts
    )


def _level_keys(values: np.ndarray, thresholds: np.ndarray, side: str) -> np.ndarray:
    """Index of each threshold among the sorted distinct values of a map.

    Two thresholds with the same key select the same set of values, hence
    the same segmentation (``side="right"``, values <= t) or boundary map
    (``side="left"``, values >= t).
    """
    return np.searchsorted(np.unique(values), thresholds, side=side)


def evaluate_ucm_regions(
    ucm2: np.ndarray, gts: Sequence[np.ndarray], nthresh: int = 99
) -> ImageRegionEval:
    """Region benchmark of one image's UCM at ``ucm_thresholds(nthresh)``."""
    th = ucm_thresholds(nthresh)
    keys = _level_keys(np.asarray(ucm2), th, "right")
    return _region_eval(
        th,
        ((k, (lambda t=t: ucm_to_segmentation(ucm2, t))) for k, t in zip(keys, th)),
        gts,
    )


def evaluate_human_regions(gts: Sequence[np.ndarray]) -> list[ImageRegionEval]:
    """Leave-one-out human scores of one image.

    Each annotator's segmentation is scored as a machine segmentation against
    the remaining annotators: one single-level evaluation per annotator.
    """
    if len(gts) < 2:
        raise ValueError("leave-one-out needs at least two annotators")
    return [
        evaluate_regions([gts[k]], [g for j, g in enumerate(gts) if j != k])
        for k in range(len(gts))
    ]


def evaluate_boundary_maps(
    bmaps: Sequence[np.ndarray],
    gt_boundaries: Sequence[np.ndarray] | HumanBoundaries,
    thresholds: Sequence[float] | None = None,
    max_dist: float = MAX_DIST,
    thin_maps: bool = True,
    min_cost: bool = True,
    keys: Sequence | None = None,
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
    """
    human = (
        gt_boundaries if isinstance(gt_boundaries, HumanBoundaries)
        else HumanBoundaries(gt_boundaries, max_dist)
    )
    if thresholds is None:
        thresholds = np.arange(1, len(bmaps) + 1, dtype=float)
    if keys is None:
        keys = range(len(bmaps))
    rows = []
    last_key, last = object(), None
    for key, b in zip(keys, bmaps):
        if key != last_key:
            bm = b() if callable(b) else b
            last = boundary_counts(bm, human, thin_map=thin_maps, min_cost=min_cost)
            last_key = key
        rows.append((last.cnt_r, last.sum_r, last.cnt_p, last.sum_p))
    a = np.asarray(rows, dtype=float).reshape(-1, 4)
    return ImageBoundaryEval(
        thresholds=np.asarray(thresholds, dtype=float),
        cnt_r=a[:, 0], sum_r=a[:, 1], cnt_p=a[:, 2], sum_p=a[:, 3],
    )


def evaluate_soft_boundaries(
    pb: np.ndarray,
    gt_boundaries: Sequence[np.ndarray] | HumanBoundaries,
    nthresh: int = 99,
    max_dist: float = MAX_DIST,
    thin_maps: bool = True,
    min_cost: bool = True,
) -> ImageBoundaryEval:
    """Boundary benchmark of a soft boundary map in [0, 1] (e.g. a PNG / 255).

    The map is binarised with ``pb >= t`` at ``ucm_thresholds(nthresh)``.
    """
    p = np.asarray(pb, dtype=float)
    th = ucm_thresholds(nthresh)
    keys = _level_keys(p, th, "left")
    return evaluate_boundary_maps(
        [(lambda t=t: p >= t) for t in th], gt_boundaries, th, max_dist,
        thin_maps, min_cost, keys=list(keys),
    )


def evaluate_ucm_boundaries(
    ucm2: np.ndarray,
    gt_boundaries: Sequence[np.ndarray] | HumanBoundaries,
    nthresh: int = 99,
    max_dist: float = MAX_DIST,
    thin_maps: bool = True,
    min_cost: bool = True,
) -> ImageBoundaryEval:
    """Boundary benchmark of a doubled-grid UCM (via :func:`ucm_boundary_strength`)."""
    return evaluate_soft_boundaries(
        ucm_boundary_strength(ucm2), gt_boundaries, nthresh, max_dist, thin_maps, min_cost
    )


def evaluate_segmentation_boundaries(
    segs: Sequence[np.ndarray],
    gt_boundaries: Sequence[np.ndarray] | HumanBoundaries,
    max_dist: float = MAX_DIST,
    thin_maps: bool = True,
    min_cost: bool = True,
) -> ImageBoundaryEval:
    """Boundary benchmark of a list of segmentations (their region boundaries)."""
    return evaluate_boundary_maps(
        [(lambda s=s: seg_to_boundaries(s)) for s in segs], gt_boundaries, None,
        max_dist, thin_maps, min_cost,
    )


# ---------------------------------------------------------------------------
# Data-set aggregation
# ---------------------------------------------------------------------------

def _ratio(cnt: np.ndarray, tot: np.ndarray) -> np.ndarray:
    # the official scripts divide by (sum + (sum == 0)): 0/0 reads as 0
    cnt = np.asarray(cnt, dtype=float)
    tot = np.asarray(tot, dtype=float)
    return cnt / (tot + (tot == 0))


def fmeasure(r, p):
    """Harmonic mean ``2 P R / (P + R)``, 0 where ``P + R = 0``."""
    r = np.asarray(r, dtype=float)
    p = np.asarray(p, dtype=float)
    s = p + r
    return 2 * p * r / (s + (s == 0))


def _max_f(thresholds: np.ndarray, r: np.ndarray, p: np.ndarray) -> tuple[float, float, float, float]:
    """Best F along the PR curve, interpolating 100 steps between thresholds.

    Returns (threshold, recall, precision, F) of the first maximum met when
    scanning the segments in order, as the official ``maxF`` does.
    """
    best = (float(thresholds[0]), float(r[0]), float(p[0]), float(fmeasure(r[0], p[0])))
    if len(thresholds) < 2:
        return best
    d = np.linspace(0.0, 1.0, 100)[None, :]
    t = thresholds[1:, None] * d + thresholds[:-1, None] * (1 - d)
    ri = r[1:, None] * d + r[:-1, None] * (1 - d)
    pi = p[1:, None] * d + p[:-1, None] * (1 - d)
    f = fmeasure(ri, pi).ravel()
    k = int(np.argmax(f))
    if f[k] > best[3]:
        best = (float(t.ravel()[k]), float(ri.ravel()[k]), float(pi.ravel()[k]), float(f[k]))
    return best


def _first_max(x: np.ndarray) -> int:
    return int(np.flatnonzero(x == x.max())[0])


def _last_max(x: np.ndarray) -> int:
    return int(np.flatnonzero(x == x.max())[-1])


@dataclass
class BoundaryResult:
    """Data-set boundary scores, as in ``eval_bdry*.txt``.

    Attributes
    ----------
    ods_threshold, ods_recall, ods_precision, ods_f : optimal data-set scale.
    ois_recall, ois_precision, ois_f : optimal image scale.
    ap : area under the pooled PR curve.
    thresholds, recall, precision, f : (T,) pooled curve (``eval_bdry_thr``).
    per_image : (N, 4) best threshold, recall, precision, F of each image
        (``eval_bdry_img``, interpolated like ODS).
    """

    ods_threshold: float
    ods_recall: float
    ods_precision: float
    ods_f: float
    ois_recall: float
    ois_precision: float
    ois_f: float
    ap: float
    thresholds: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)
    precision: np.ndarray = field(repr=False)
    f: np.ndarray = field(repr=False)
    per_image: np.ndarray = field(repr=False)


def _average_precision(r: np.ndarray, p: np.ndarray, occurrence: str = "last") -> float:
    """Official AP: precision interpolated at recall 0:0.01:1, 0 outside the curve.

    A recall value met at several thresholds keeps the precision of its
    ``occurrence`` ("last" is MATLAB's ``unique`` of the BSR era).
    """
    r = np.asarray(r, dtype=float)
    p = np.asarray(p, dtype=float)
    if occurrence == "last":
        ru, idx = np.unique(r[::-1], return_index=True)
        idx = r.size - 1 - idx
    else:
        ru, idx = np.unique(r, return_index=True)
    if ru.size < 2:
        return 0.0
    grid = np.linspace(0.0, 1.0, 101)
    pi = np.interp(grid, ru, p[idx])
    pi[(grid < ru[0]) | (grid > ru[-1])] = 0.0
    return float(pi.sum() * 0.01)


def collect_boundaries(images: Sequence[ImageBoundaryEval]) -> BoundaryResult:
    """Pool per-image boundary counts into ODS, OIS and AP (``collect_eval_bdry``)."""
    if not images:
        raise ValueError("no images to collect")
    th = images[0].thresholds
    tot = np.zeros((4, th.size))
    ois = np.zeros(4)
    per_image = []
    for im in images:
        if im.thresholds.size != th.size:
            raise ValueError("all images need the same number of thresholds")
        r = _ratio(im.cnt_r, im.sum_r)
        p = _ratio(im.cnt_p, im.sum_p)
        f = fmeasure(r, p)
        per_image.append(_max_f(im.thresholds, r, p))
        stack = np.stack([im.cnt_r, im.sum_r, im.cnt_p, im.sum_p])
        tot += stack
        ois += stack[:, _first_max(f)]
    r = _ratio(tot[0], tot[1])
    p = _ratio(tot[2], tot[3])
    f = fmeasure(r, p)
    bt, br, bp, bf = _max_f(th, r, p)
    r_ois = float(_ratio(ois[0], ois[1]))
    p_ois = float(_ratio(ois[2], ois[3]))
    return BoundaryResult(
        ods_threshold=bt, ods_recall=br, ods_precision=bp, ods_f=bf,
        ois_recall=r_ois, ois_precision=p_ois, ois_f=float(fmeasure(r_ois, p_ois)),
        ap=_average_precision(r, p),
        thresholds=th, recall=r, precision=p, f=f,
        per_image=np.asarray(per_image, dtype=float),
    )


@dataclass
class RegionResult:
    """Data-set region scores, as in ``eval_cover.txt`` and ``eval_RI_VOI.txt``.

    Attributes
    ----------
    cover_threshold, cover_ods, cover_ois, cover_best : covering.
    pri_threshold, pri_ods, pri_ois : Probabilistic Rand Index.
    vi_threshold, vi_ods, vi_ois : Variation of Information (bits; lower is
        better, so ODS/OIS take minima).
    thresholds, covering, pri, vi : (T,) pooled / averaged curves.
    per_image : (N, 3) best threshold, covering and reverse covering of each
        image (``eval_cover_img``).
    """

    cover_threshold: float
    cover_ods: float
    cover_ois: float
    cover_best: float
    pri_threshold: float
    pri_ods: float
    pri_ois: float
    vi_threshold: float
    vi_ods: float
    vi_ois: float
    thresholds: np.ndarray = field(repr=False)
    covering: np.ndarray = field(repr=False)
    pri: np.ndarray = field(repr=False)
    vi: np.ndarray = field(repr=False)
    per_image: np.ndarray = field(repr=False)


def collect_regions(images: Sequence[ImageRegionEval]) -> RegionResult:
    """Pool per-image region counts into ODS, OIS and Best (``collect_eval_reg``)."""
    if not images:
        raise ValueError("no images to collect")
    th = images[0].thresholds
    tot_cnt = np.zeros(th.size)
    tot_sum = np.zeros(th.size)
    ois_cnt = ois_sum = best_cnt = 0.0
    ri = np.zeros(th.size)
    vi = np.zeros(th.size)
    ri_best = vi_best = 0.0
    per_image = []
    for im in images:
        if im.thresholds.size != th.size:
            raise ValueError("all images need the same number of thresholds")
        r = _ratio(im.cnt_r, im.sum_r)
        p = _ratio(im.cnt_p, im.sum_p)
        k = _first_max(r)
        per_image.append((im.thresholds[k], r[k], p[k]))
        tot_cnt += im.cnt_r
        tot_sum += im.sum_r
        k = _last_max(r)  # the official OIS takes the last of tied maxima
        ois_cnt += im.cnt_r[k]
        ois_sum += im.sum_r[k]
        best_cnt += im.cnt_r_best
        ri += im.pri
        vi += im.vi
        ri_best += float(im.pri.max())
        vi_best += float(im.vi.min())
    n = len(images)
    cover = _ratio(tot_cnt, tot_sum)
    kc = _first_max(cover)
    ri /= n
    vi /= n
    kr = _first_max(ri)
    kv = int(np.flatnonzero(vi == vi.min())[0])
    return RegionResult(
        cover_threshold=float(th[kc]), cover_ods=float(cover[kc]),
        cover_ois=float(_ratio(ois_cnt, ois_sum)),
        cover_best=float(best_cnt / tot_sum[0]) if tot_sum[0] > 0 else 0.0,
        pri_threshold=float(th[kr]), pri_ods=float(ri[kr]), pri_ois=ri_best / n,
        vi_threshold=float(th[kv]), vi_ods=float(vi[kv]), vi_ois=vi_best / n,
        thresholds=th, covering=cover, pri=ri, vi=vi,
        per_image=np.asarray(per_image, dtype=float),
    )
