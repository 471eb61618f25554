"""Region benchmark of a UCM along its thresholds, from the finest level's contingency tables.

The segmentations of an ultrametric contour map are nested: every region at threshold ``t`` is a
union of regions of the finest level ``t_1``. So the joint histogram of a coarse segmentation with a
ground truth is the fine one with its rows summed by the fine -> coarse map: the per-pixel work
(one ``bincount`` over all pixels per annotator) is done once per image instead of once per level,
and every level costs one labelling plus operations on tables of a few thousand cells.

The scores are those of :func:`matbackprop.metrics.evaluate_ucm_regions` (same thresholds, same
pooling; covering, PRI and VI as in :mod:`matbackprop.metrics.regions`). Nesting holds for any map,
ultrametric or not: the sets ``ucm2 <= t`` grow with ``t``, so each of their connected components at
``t_1`` lies inside one component at ``t > t_1``; reading every region at one of its pixels
(``rep``) therefore gives the exact fine -> coarse map.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .image_eval import ImageRegionEval, evaluate_ucm_regions
from .ucm import ucm_thresholds, ucm_to_segmentation

__all__ = ["evaluate_ucm_regions_nested"]


def _entropy_bits(counts: np.ndarray) -> float:
    n = counts.sum()
    p = counts[counts > 0] / n
    return float(-np.sum(p * np.log2(p)))


class _Annotator:
    """Fine-level contingency table with one ground truth, as dense (n_fine + 1, n_gt + 1) counts."""

    def __init__(self, fine: np.ndarray, gt: np.ndarray, n_fine: int) -> None:
        g = np.asarray(gt, dtype=np.int64).ravel()
        self.n_gt = int(g.max()) + 1
        self.table = np.bincount(fine * self.n_gt + g, minlength=(n_fine + 1) * self.n_gt).reshape(
            n_fine + 1, self.n_gt
        )
        self.area_gt = self.table.sum(axis=0).astype(np.float64)
        self.present = self.area_gt > 0
        self.present[0] = False  # label 0 never occurs in BSDS maps; it is never a region here either


def _level_counts(coarse_of_fine: np.ndarray, n_coarse: int, annots: Sequence[_Annotator]):
    """Covering counts, PRI and VI of one level from the fine tables."""
    best_seg = np.zeros(n_coarse + 1)
    cnt_r = sum_r = 0.0
    pri = vi = 0.0
    gt_best = []
    # areas of the coarse regions: the fine areas (row sums of any table) summed by the map
    area_s = np.bincount(coarse_of_fine, weights=annots[0].table.sum(axis=1), minlength=n_coarse + 1)
    for a in annots:
        # rows summed by the fine -> coarse map
        idx = (coarse_of_fine[:, None] * a.n_gt + np.arange(a.n_gt)[None, :]).ravel()
        t = np.bincount(idx, weights=a.table.ravel(), minlength=(n_coarse + 1) * a.n_gt).reshape(n_coarse + 1, a.n_gt)
        # covering: IoU of every (segment, gt region) pair that overlaps
        union = area_s[:, None] + a.area_gt[None, :] - t
        iou = np.where(t > 0, t / np.where(union > 0, union, 1.0), 0.0)
        iou[0, :] = 0.0  # label 0 (absent in UCM segmentations) is never a region
        iou[:, 0] = 0.0
        best_gt = iou.max(axis=0)
        best_seg = np.maximum(best_seg, iou.max(axis=1))
        gt_best.append(best_gt[a.present])
        cnt_r += float(np.dot(a.area_gt[a.present], best_gt[a.present]))
        sum_r += float(a.area_gt[a.present].sum())
        # Rand index and VI on all pixels (no label 0 in either map)
        n = t.sum()
        a2 = float(np.sum(area_s**2))
        b2 = float(np.sum(a.area_gt**2))
        n2 = float(np.sum(t**2))
        pri += 1.0 - (a2 / 2 + b2 / 2 - n2) / (n * (n - 1) / 2) if n >= 2 else 1.0
        h_ab = _entropy_bits(t.ravel())
        vi += max(0.0, 2.0 * h_ab - _entropy_bits(area_s) - _entropy_bits(a.area_gt))
    k = len(annots)
    cnt_p = float(np.dot(area_s[1:], best_seg[1:]))
    return cnt_r, sum_r, cnt_p, float(area_s[1:].sum()), pri / k, vi / k, np.concatenate(gt_best)


def evaluate_ucm_regions_nested(ucm2: np.ndarray, gts: Sequence[np.ndarray], nthresh: int = 99) -> ImageRegionEval:
    """Region benchmark of one image's UCM at ``ucm_thresholds(nthresh)`` (fast, nested levels).

    Same result as :func:`matbackprop.metrics.evaluate_ucm_regions`, to rounding.

    Parameters
    ----------
    ucm2 : (2H+1, 2W+1) ultrametric contour map.
    gts : K (H, W) human label maps (labels >= 1).
    nthresh : number of thresholds (99 in the benchmark).
    """
    u = np.asarray(ucm2)
    th = ucm_thresholds(nthresh)
    if len(gts) == 0:
        raise ValueError("at least one ground-truth segmentation is needed")
    gl = [np.asarray(g) for g in gts]
    if any(g.ndim != 2 or g.min() < 1 for g in gl):
        # label 0 or odd maps: the general path handles (and reports) them
        return evaluate_ucm_regions(ucm2, gts, nthresh)
    fine = ucm_to_segmentation(u, th[0]).astype(np.int64)
    if any(g.shape != fine.shape for g in gl):
        raise ValueError(f"ground truths must have the image's shape {fine.shape}")
    n_fine = int(fine.max())
    flat = fine.ravel()
    rep = np.zeros(n_fine + 1, dtype=np.int64)
    rep[flat[::-1]] = np.arange(flat.size)[::-1]  # one pixel of every fine region
    annots = [_Annotator(flat, g, n_fine) for g in gl]
    keys = np.searchsorted(np.unique(u), th, side="right")
    areas = np.concatenate([x.area_gt[x.present] for x in annots])
    best = np.zeros(areas.size)  # best IoU of every ground-truth region over the levels
    rows: list[tuple[float, ...]] = []
    last_key: object = None
    counts: tuple[float, ...] = (0.0,) * 6
    for key, t in zip(keys, th, strict=True):
        if key != last_key:  # thresholds between the same two UCM values give the same level
            seg = ucm_to_segmentation(u, t).astype(np.int64)
            coarse_of_fine = seg.ravel()[rep]
            coarse_of_fine[0] = 0
            *head, gt_best = _level_counts(coarse_of_fine, int(seg.max()), annots)
            counts = tuple(float(x) for x in head)
            best = np.maximum(best, gt_best)
            last_key = key
        rows.append(counts)
    a = np.asarray(rows, dtype=float)
    return ImageRegionEval(
        thresholds=th,
        cnt_r=a[:, 0],
        sum_r=a[:, 1],
        cnt_p=a[:, 2],
        sum_p=a[:, 3],
        pri=a[:, 4],
        vi=a[:, 5],
        cnt_r_best=float(np.dot(areas, best)),
    )
