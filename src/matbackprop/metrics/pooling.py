"""Data-set pooling of per-image BSDS counts into ODS, OIS, Best and AP, as the official BSR scripts
``collect_eval_reg`` and ``collect_eval_bdry`` pool them (Arbelaez, Maire, Fowlkes & Malik, TPAMI 2011).

* **ODS** (optimal data-set scale): one threshold for the whole data set, the one maximising the
  pooled score (for the boundary F-measure the official search also interpolates linearly between
  consecutive thresholds, 100 steps per interval);
* **OIS** (optimal image scale): each image at its own best threshold, then pooled;
* covering **Best**: every ground-truth region at its best threshold;
* boundary **AP**: area under the pooled precision/recall curve, sampled at recall 0, 0.01, ..., 1.

Covering pools counts over images and annotators; PRI and VI are per-image means over annotators,
averaged over images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .image_eval import ImageBoundaryEval, ImageRegionEval

__all__ = ["count_ratio", "fmeasure", "BoundaryResult", "RegionResult", "collect_boundaries", "collect_regions"]


def count_ratio(cnt: npt.ArrayLike, tot: npt.ArrayLike) -> np.ndarray:
    """``cnt / tot`` elementwise, as a float array, with ``0 / 0`` read as 0 (a recall or precision of
    nothing). The official scripts divide by ``tot + (tot == 0)``; so does this.

    >>> count_ratio([3, 0], [4, 0]).tolist()
    [0.75, 0.0]
    """
    cnt = np.asarray(cnt, dtype=float)
    tot = np.asarray(tot, dtype=float)
    return cnt / (tot + (tot == 0))


def fmeasure(r: npt.ArrayLike, p: npt.ArrayLike) -> np.ndarray:
    """Harmonic mean ``2 P R / (P + R)``, 0 where ``P + R = 0``.

    >>> fmeasure([0.5, 1.0, 0.0], [0.5, 0.25, 0.0]).tolist()
    [0.5, 0.4, 0.0]
    """
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
    """Pool per-image boundary counts into ODS, OIS and AP (``collect_eval_bdry``).

    >>> import numpy as np
    >>> from matbackprop.metrics import evaluate_boundary_maps
    >>> b = np.zeros((4, 4), dtype=bool); b[:, 1] = True
    >>> collect_boundaries([evaluate_boundary_maps([b, ~b], [b])]).ods_f
    1.0
    """
    if not images:
        raise ValueError("no images to collect")
    th = images[0].thresholds
    tot = np.zeros((4, th.size))
    ois = np.zeros(4)
    per_image = []
    for im in images:
        if im.thresholds.size != th.size:
            raise ValueError("all images need the same number of thresholds")
        r = count_ratio(im.cnt_r, im.sum_r)
        p = count_ratio(im.cnt_p, im.sum_p)
        f = fmeasure(r, p)
        per_image.append(_max_f(im.thresholds, r, p))
        stack = np.stack([im.cnt_r, im.sum_r, im.cnt_p, im.sum_p])
        tot += stack
        ois += stack[:, _first_max(f)]
    r = count_ratio(tot[0], tot[1])
    p = count_ratio(tot[2], tot[3])
    f = fmeasure(r, p)
    bt, br, bp, bf = _max_f(th, r, p)
    r_ois = float(count_ratio(ois[0], ois[1]))
    p_ois = float(count_ratio(ois[2], ois[3]))
    return BoundaryResult(
        ods_threshold=bt,
        ods_recall=br,
        ods_precision=bp,
        ods_f=bf,
        ois_recall=r_ois,
        ois_precision=p_ois,
        ois_f=float(fmeasure(r_ois, p_ois)),
        ap=_average_precision(r, p),
        thresholds=th,
        recall=r,
        precision=p,
        f=f,
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
    """Pool per-image region counts into ODS, OIS and Best (``collect_eval_reg``).

    >>> import numpy as np
    >>> from matbackprop.metrics import evaluate_regions
    >>> halves = np.array([[0, 0, 1, 1]] * 4)
    >>> r = collect_regions([evaluate_regions([np.zeros((4, 4), int), halves], [halves])])
    >>> r.cover_ods, r.cover_threshold, r.pri_ods, r.vi_ods
    (1.0, 2.0, 1.0, 0.0)
    """
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
        r = count_ratio(im.cnt_r, im.sum_r)
        p = count_ratio(im.cnt_p, im.sum_p)
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
    cover = count_ratio(tot_cnt, tot_sum)
    kc = _first_max(cover)
    ri /= n
    vi /= n
    kr = _first_max(ri)
    kv = int(np.flatnonzero(vi == vi.min())[0])
    return RegionResult(
        cover_threshold=float(th[kc]),
        cover_ods=float(cover[kc]),
        cover_ois=float(count_ratio(ois_cnt, ois_sum)),
        cover_best=float(best_cnt / tot_sum[0]) if tot_sum[0] > 0 else 0.0,
        pri_threshold=float(th[kr]),
        pri_ods=float(ri[kr]),
        pri_ois=ri_best / n,
        vi_threshold=float(th[kv]),
        vi_ods=float(vi[kv]),
        vi_ois=vi_best / n,
        thresholds=th,
        covering=cover,
        pri=ri,
        vi=vi,
        per_image=np.asarray(per_image, dtype=float),
    )
