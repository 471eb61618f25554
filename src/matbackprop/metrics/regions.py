"""Region benchmarks of the Berkeley Segmentation Data Set (BSDS).

Segmentation covering, the Probabilistic Rand Index (PRI) and the Variation of
Information (VI) of a machine segmentation against several human segmentations
of the same image, following the conventions of the BSR benchmark of
Arbelaez, Maire, Fowlkes & Malik, "Contour Detection and Hierarchical Image
Segmentation", TPAMI 2011 (the data set itself is Martin, Fowlkes, Tal & Malik,
ICCV 2001).

Conventions:

* label maps hold non-negative integers and every label is a region, ``0``
  included, so a 0-based map (k-means output, ``np.unique(..., return_inverse=True)``)
  scores exactly like the same partition shifted to start at 1 (the official
  PRI/VI code shifts labels to start at 1 for the same reason);
* pixels are left out only on request: ``ignore_labels=(0,)`` (scikit-image's
  name) drops every pixel that carries one of those labels in the segmentation
  or in a ground truth from PRI and VI, and such labels are never regions for
  the covering (the official covering skips label 0 only because MATLAB's
  ``bwlabel`` gives it to boundary pixels; the BSDS inputs, UCM segmentations
  read at pixel centres and the human maps, never contain it, so the official
  results are reproduced with the default);
* covering is *pooled*: the covering of the ground truths by a segmentation sums
  the overlap-weighted areas of the regions of every annotator and divides by
  the total area of all of them (``K`` annotators count the image ``K`` times);
* PRI and VI are the means over annotators of the plain Rand index and VI;
* VI is measured in bits (``log2``).

Every function works on contingency tables built with ``np.bincount``: there is
no Python loop over pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ContingencyTable",
    "CoveringCounts",
    "contingency_table",
    "covering_counts",
    "rand_index_from_table",
    "variation_of_information_from_table",
    "segmentation_covering",
    "probabilistic_rand_index",
    "variation_of_information",
    "region_areas",
    "RegionCounts",
    "region_counts",
]

# Above this many cells a dense joint histogram would waste memory and time
# (most cells are empty); the sparse path via np.unique is used instead.
_DENSE_LIMIT = 1 << 22


def _as_labels(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D label map, got shape {a.shape}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{name} must hold integer labels")
    elif a.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer labels, got dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    if a.size and a.min() < 0:
        raise ValueError(f"{name} must hold non-negative labels")
    return a


def _check_gts(seg: np.ndarray, gts: Sequence[np.ndarray]) -> list[np.ndarray]:
    if len(gts) == 0:
        raise ValueError("at least one ground-truth segmentation is needed")
    out = [_as_labels(g, f"gts[{k}]") for k, g in enumerate(gts)]
    for k, g in enumerate(out):
        if g.shape != seg.shape:
            raise ValueError(f"gts[{k}] has shape {g.shape}, seg has shape {seg.shape}")
    return out


def _ignored(size: int, ignore_labels: Iterable[int]) -> np.ndarray:
    """Boolean mask over labels ``0 .. size-1``: which of them are in ``ignore_labels``."""
    mask = np.zeros(size, dtype=bool)
    labels = np.asarray(list(ignore_labels), dtype=np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"ignore_labels must be non-negative labels, got {labels.tolist()}")
    mask[labels[labels < size]] = True
    return mask


def region_areas(labels: np.ndarray) -> np.ndarray:
    """Pixel count of every label ``0 .. labels.max()``.

    Parameters
    ----------
    labels : (H, W) integer array

    Returns
    -------
    (labels.max() + 1,) int64 array; entry ``i`` counts the pixels labelled ``i``.
    """
    a = _as_labels(labels, "labels")
    return np.bincount(a.ravel(), minlength=int(a.max(initial=0)) + 1)


@dataclass(frozen=True)
class ContingencyTable:
    """Sparse joint histogram of two label maps ``a`` and ``b``.

    Attributes
    ----------
    rows, cols : (nnz,) int64
        Label of ``a`` and of ``b`` of each non-empty cell, sorted by
        ``(cols, rows)`` so that the cells of one ``b`` label are contiguous.
    counts : (nnz,) int64
        Number of pixels with ``a == rows[i]`` and ``b == cols[i]``.
    area_a : (a.max()+1,) int64
        Pixel count of each label of ``a`` (marginal, label 0 included).
    area_b : (b.max()+1,) int64
        Pixel count of each label of ``b``.
    """

    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray
    area_a: np.ndarray
    area_b: np.ndarray

    def without_labels(self, ignore_labels: Iterable[int]) -> ContingencyTable:
        """The table restricted to pixels whose labels in ``a`` and in ``b`` are both outside
        ``ignore_labels`` (marginals recomputed from the kept pixels)."""
        ignore = tuple(ignore_labels)
        if not ignore:
            return self
        keep = ~_ignored(self.area_a.size, ignore)[self.rows] & ~_ignored(self.area_b.size, ignore)[self.cols]
        rows, cols, counts = self.rows[keep], self.cols[keep], self.counts[keep]
        area_a = np.bincount(rows, weights=counts, minlength=self.area_a.size).astype(np.int64)
        area_b = np.bincount(cols, weights=counts, minlength=self.area_b.size).astype(np.int64)
        return ContingencyTable(rows, cols, counts, area_a, area_b)

    def without_zero(self) -> ContingencyTable:
        """``without_labels((0,))``: the table restricted to pixels where both labels are non-zero."""
        return self.without_labels((0,))

    @property
    def total(self) -> int:
        return int(self.counts.sum())


def contingency_table(a: np.ndarray, b: np.ndarray) -> ContingencyTable:
    """Joint histogram ``n_ij = #{p : a(p) = i, b(p) = j}`` of two label maps.

    Parameters
    ----------
    a, b : (H, W) non-negative integer label maps of the same shape.

    Returns
    -------
    ContingencyTable holding only the non-empty cells.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop import metrics
    >>> a = np.array([[0, 0, 1], [0, 1, 1]])
    >>> b = np.array([[5, 5, 5], [7, 7, 7]])
    >>> t = metrics.contingency_table(a, b)
    >>> [(int(i), int(j), int(n)) for i, j, n in zip(t.rows, t.cols, t.counts)]   # (a, b, pixels)
    [(0, 5, 2), (1, 5, 1), (0, 7, 1), (1, 7, 2)]
    """
    a = _as_labels(a, "a").ravel()
    b = _as_labels(b, "b").ravel()
    if a.shape != b.shape:
        raise ValueError("label maps differ in shape")
    na = int(a.max(initial=0)) + 1
    nb = int(b.max(initial=0)) + 1
    # b-major key: cells of one ground-truth region end up contiguous, which
    # lets per-region maxima be taken with np.maximum.reduceat.
    key = b * na + a
    if na * nb <= _DENSE_LIMIT:
        hist = np.bincount(key, minlength=na * nb)
        cells = np.flatnonzero(hist)
        counts = hist[cells]
    else:
        cells, counts = np.unique(key, return_counts=True)
    rows, cols = cells % na, cells // na
    area_a = np.bincount(a, minlength=na)
    area_b = np.bincount(b, minlength=nb)
    return ContingencyTable(rows, cols, counts.astype(np.int64), area_a, area_b)


def _best_overlaps(t: ContingencyTable, ignore_labels: Iterable[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Best intersection-over-union of every label with the labels of the other map.

    Labels in ``ignore_labels`` are never candidate matches. Region areas come
    from the full marginals (ignored pixels included), as in the official code.

    Returns
    -------
    best_a : (area_a.size,) float, best IoU of each label of ``a`` over ``b``.
    best_b : (area_b.size,) float, best IoU of each label of ``b`` over ``a``.
    Labels absent from a map get 0.
    """
    ignore = tuple(ignore_labels)
    keep = ~_ignored(t.area_a.size, ignore)[t.rows] & ~_ignored(t.area_b.size, ignore)[t.cols]
    rows, cols, n = t.rows[keep], t.cols[keep], t.counts[keep]
    iou = n / (t.area_a[rows] + t.area_b[cols] - n)
    best_a = np.zeros(t.area_a.size)
    best_b = np.zeros(t.area_b.size)
    if iou.size:
        # cells are sorted by cols, so each b label is one contiguous run
        starts = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
        best_b[cols[starts]] = np.maximum.reduceat(iou, starts)
        np.maximum.at(best_a, rows, iou)
    return best_a, best_b


@dataclass(frozen=True)
class CoveringCounts:
    """Counts behind the covering of one image (pooled over annotators).

    Attributes
    ----------
    cnt_r, sum_r : float
        ``sum_k sum_{R in G_k} |R| max_S IoU(R, S)`` and ``sum_k sum_R |R|``;
        ``cnt_r / sum_r`` is the covering of the ground truths by the
        segmentation (the number the benchmark reports).
    cnt_p, sum_p : float
        The same in the other direction: covering of the segmentation by the
        ground truths, each region of ``seg`` taking its best match over all
        annotators' regions.
    gt_best : (sum_k n_k,) float
        Best IoU of every ground-truth region (annotators concatenated, labels
        ``0..max`` of each less ``ignore_labels``; absent labels have area 0),
        used for the "Best" column of the benchmark.
    gt_areas : (sum_k n_k,) float
        Area of every ground-truth region, in the same order.
    """

    cnt_r: float
    sum_r: float
    cnt_p: float
    sum_p: float
    gt_best: np.ndarray
    gt_areas: np.ndarray


def covering_counts(seg: np.ndarray, gts: Sequence[np.ndarray], *, ignore_labels: Iterable[int] = ()) -> CoveringCounts:
    """Covering counts of a segmentation against several ground truths.

    The covering of ``G`` by ``S`` is
    ``C(S -> G) = 1/N sum_{R in G} |R| max_{R' in S} |R & R'| / |R | R'|``;
    with ``K`` annotators the benchmark pools numerators and denominators over
    them (Arbelaez et al. 2011, Sec. 3.2).

    Parameters
    ----------
    seg : (H, W) integer label map; every label is a region.
    gts : list of (H, W) integer label maps.
    ignore_labels : labels that are never regions, in ``seg`` or in the ground
        truths (e.g. ``(0,)`` for "unlabelled"); default none.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop import metrics
    >>> seg = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]])   # a 0-based label map
    >>> gts = [np.array([[1, 1, 2, 2]] * 3), np.array([[1, 1, 1, 1]] * 2 + [[2, 2, 2, 2]])]   # two annotators
    >>> c = metrics.covering_counts(seg, gts)
    >>> c.cnt_r, c.sum_r                           # covering = cnt_r / sum_r, pooled over annotators
    (16.0, 24.0)
    """
    s = _as_labels(seg, "seg")
    gl = _check_gts(s, gts)
    return _covering_from_tables(s, [contingency_table(s, g) for g in gl], tuple(ignore_labels))


def _covering_from_tables(
    s: np.ndarray, tables: Sequence[ContingencyTable], ignore_labels: tuple[int, ...] = ()
) -> CoveringCounts:
    area_s = np.bincount(s.ravel(), minlength=int(s.max(initial=0)) + 1)
    keep_s = ~_ignored(area_s.size, ignore_labels)
    best_seg = np.zeros(area_s.size)
    gt_best, gt_areas = [], []
    for t in tables:
        b_seg, b_gt = _best_overlaps(t, ignore_labels)
        best_seg = np.maximum(best_seg, b_seg)
        keep_gt = ~_ignored(t.area_b.size, ignore_labels)
        gt_best.append(b_gt[keep_gt])
        gt_areas.append(t.area_b[keep_gt].astype(float))
    gb = np.concatenate(gt_best)
    ga = np.concatenate(gt_areas)
    return CoveringCounts(
        cnt_r=float(np.dot(ga, gb)),
        sum_r=float(ga.sum()),
        cnt_p=float(np.dot(area_s[keep_s], best_seg[keep_s])),
        sum_p=float(area_s[keep_s].sum()),
        gt_best=gb,
        gt_areas=ga,
    )


def rand_index_from_table(t: ContingencyTable, *, ignore_labels: Iterable[int] = ()) -> float:
    """Rand index from a contingency table (pixels with a label in ``ignore_labels`` left out).

    ``RI = 1 - (sum_i a_i^2 / 2 + sum_j b_j^2 / 2 - sum_ij n_ij^2) / C(N, 2)``
    where ``a_i, b_j`` are the marginals: the fraction of pixel pairs on which
    both segmentations agree (same region in both, or different in both).
    """
    t = t.without_labels(ignore_labels)
    n = float(t.total)
    if n < 2:
        return 1.0
    a2 = float(np.sum(t.area_a.astype(float) ** 2))
    b2 = float(np.sum(t.area_b.astype(float) ** 2))
    n2 = float(np.sum(t.counts.astype(float) ** 2))
    return 1.0 - (a2 / 2 + b2 / 2 - n2) / (n * (n - 1) / 2)


def _entropy_bits(counts: np.ndarray, n: float) -> float:
    p = counts[counts > 0] / n
    return float(-np.sum(p * np.log2(p)))


def variation_of_information_from_table(t: ContingencyTable, *, ignore_labels: Iterable[int] = ()) -> float:
    """Variation of information in bits (pixels with a label in ``ignore_labels`` left out).

    ``VI(A, B) = H(A) + H(B) - 2 I(A; B) = 2 H(A, B) - H(A) - H(B)``
    (Meila 2003), with probabilities estimated by pixel frequencies.
    """
    t = t.without_labels(ignore_labels)
    n = float(t.total)
    if n == 0:
        return 0.0
    h_ab = _entropy_bits(t.counts.astype(float), n)
    h_a = _entropy_bits(t.area_a.astype(float), n)
    h_b = _entropy_bits(t.area_b.astype(float), n)
    # clamp tiny negative round-off for identical partitions
    return max(0.0, 2.0 * h_ab - h_a - h_b)


def segmentation_covering(seg: np.ndarray, gts: Sequence[np.ndarray], *, ignore_labels: Iterable[int] = ()) -> float:
    """Covering of the ground truths by ``seg``, pooled over annotators.

    ``C = sum_k sum_{R in G_k} |R| max_{R' in seg} IoU(R, R') / sum_k sum_{R in G_k} |R|``

    Parameters
    ----------
    seg : (H, W) integer label map.
    gts : list of K (H, W) integer label maps.
    ignore_labels : labels that are never regions (default none: every label,
        0 included, is a region).

    Returns
    -------
    float in [0, 1]; 1 when every ground truth equals ``seg`` up to relabelling.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop import metrics
    >>> seg = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]])   # a 0-based label map
    >>> gts = [np.array([[1, 1, 2, 2]] * 3), np.array([[1, 1, 1, 1]] * 2 + [[2, 2, 2, 2]])]   # two annotators
    >>> round(metrics.segmentation_covering(seg, gts), 4)
    0.6667
    >>> metrics.segmentation_covering(gts[0], gts[:1])
    1.0
    """
    c = covering_counts(seg, gts, ignore_labels=ignore_labels)
    return c.cnt_r / c.sum_r if c.sum_r > 0 else 0.0


def probabilistic_rand_index(seg: np.ndarray, gts: Sequence[np.ndarray], *, ignore_labels: Iterable[int] = ()) -> float:
    """Probabilistic Rand Index: the mean Rand index of ``seg`` over annotators.

    ``PRI = 1/K sum_k RI(seg, G_k)`` (Unnikrishnan et al. 2007, as computed by
    the BSDS benchmark).

    Parameters
    ----------
    seg : (H, W) integer label map.
    gts : list of K (H, W) integer label maps.
    ignore_labels : pixels carrying one of these labels in ``seg`` or in a
        ground truth are left out (default none: 0 is a label like any other).

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop import metrics
    >>> seg = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]])   # a 0-based label map
    >>> gts = [np.array([[1, 1, 2, 2]] * 3), np.array([[1, 1, 1, 1]] * 2 + [[2, 2, 2, 2]])]   # two annotators
    >>> round(metrics.probabilistic_rand_index(seg, gts), 4)
    0.7273
    >>> round(metrics.probabilistic_rand_index(seg + 1, gts), 4)   # 1-based: the same (0 is a label)
    0.7273
    """
    s = _as_labels(seg, "seg")
    gl = _check_gts(s, gts)
    ignore = tuple(ignore_labels)
    return float(np.mean([rand_index_from_table(contingency_table(s, g), ignore_labels=ignore) for g in gl]))


def variation_of_information(seg: np.ndarray, gts: Sequence[np.ndarray], *, ignore_labels: Iterable[int] = ()) -> float:
    """Mean variation of information (bits) of ``seg`` over annotators.

    ``VI = 1/K sum_k [H(seg) + H(G_k) - 2 I(seg; G_k)]``

    Parameters
    ----------
    seg : (H, W) integer label map.
    gts : list of K (H, W) integer label maps.
    ignore_labels : pixels carrying one of these labels in ``seg`` or in a
        ground truth are left out (default none).

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop import metrics
    >>> seg = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]])   # a 0-based label map
    >>> gts = [np.array([[1, 1, 2, 2]] * 3), np.array([[1, 1, 1, 1]] * 2 + [[2, 2, 2, 2]])]   # two annotators
    >>> round(metrics.variation_of_information(seg, gts), 4)   # bits, mean over annotators
    0.9591
    >>> metrics.variation_of_information(gts[0], gts[:1])
    0.0
    """
    s = _as_labels(seg, "seg")
    gl = _check_gts(s, gts)
    ignore = tuple(ignore_labels)
    return float(
        np.mean([variation_of_information_from_table(contingency_table(s, g), ignore_labels=ignore) for g in gl])
    )


@dataclass(frozen=True)
class RegionCounts:
    """Everything the region benchmark needs from one segmentation of one image.

    Attributes
    ----------
    covering : CoveringCounts
        Pooled covering counts (see :func:`covering_counts`).
    pri : float
        Mean Rand index over annotators.
    vi : float
        Mean variation of information over annotators (bits).
    """

    covering: CoveringCounts
    pri: float
    vi: float


def region_counts(seg: np.ndarray, gts: Sequence[np.ndarray], *, ignore_labels: Iterable[int] = ()) -> RegionCounts:
    """Covering counts, PRI and VI of ``seg`` from one set of contingency tables.

    Equivalent to calling :func:`covering_counts`,
    :func:`probabilistic_rand_index` and :func:`variation_of_information`, but
    each joint histogram is built once.

    Parameters
    ----------
    seg : (H, W) integer label map.
    gts : list of K (H, W) integer label maps.
    ignore_labels : labels left out of every score (default none), as in
        :func:`covering_counts` and :func:`probabilistic_rand_index`.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop import metrics
    >>> seg = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]])   # a 0-based label map
    >>> gts = [np.array([[1, 1, 2, 2]] * 3), np.array([[1, 1, 1, 1]] * 2 + [[2, 2, 2, 2]])]   # two annotators
    >>> r = metrics.region_counts(seg, gts)
    >>> round(r.pri, 4), round(r.vi, 4), r.covering.cnt_r / r.covering.sum_r
    (0.7273, 0.9591, 0.6666666666666666)
    """
    s = _as_labels(seg, "seg")
    gl = _check_gts(s, gts)
    ignore = tuple(ignore_labels)
    tables = [contingency_table(s, g) for g in gl]
    return RegionCounts(
        covering=_covering_from_tables(s, tables, ignore),
        pri=float(np.mean([rand_index_from_table(t, ignore_labels=ignore) for t in tables])),
        vi=float(np.mean([variation_of_information_from_table(t, ignore_labels=ignore) for t in tables])),
    )
