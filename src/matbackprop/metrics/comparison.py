"""How sure is a difference between two methods scored on the same images?

Covering ODS pools the counts of all images before taking the best threshold, so it is not a mean of
per-image values and a paired t-test does not apply. :func:`covering_ods_gap` resamples the images
with replacement (the same draw for both methods, which keeps the pairing), recomputes both ODS
values on every resample and reports the percentile interval of their difference (Efron & Tibshirani,
"An Introduction to the Bootstrap", 1993, ch. 13). The interval says how much the gap depends on which
test images were drawn; it does not cover the spread between training seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .image_eval import ImageRegionEval
from .pooling import count_ratio

__all__ = ["OdsGap", "covering_ods_gap"]


@dataclass(frozen=True)
class OdsGap:
    """Covering ODS of ``a`` minus that of ``b`` (``gap``), the bootstrap interval ``[low, high]`` at
    ``level``, and the share of resamples in which ``a`` is ahead."""

    gap: float
    low: float
    high: float
    share_ahead: float
    level: float
    resamples: int
    images: int


def _covering_ods(cnt: np.ndarray, tot: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ODS covering for each row of ``weights (B, N)`` (how often each image is drawn); ``cnt, tot (N, T)``."""
    return count_ratio(weights @ cnt, weights @ tot).max(axis=-1)


def covering_ods_gap(
    a: Sequence[ImageRegionEval],
    b: Sequence[ImageRegionEval],
    resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> OdsGap:
    """Paired bootstrap of ``covering_ODS(a) - covering_ODS(b)``; ``a[i]`` and ``b[i]`` must score the
    same image (and the same annotators) at the same thresholds.

    With ``w`` the number of times each of the ``N`` images is drawn (a multinomial draw of ``N``),
    ``ODS(w) = max_t sum_i w_i cnt_i(t) / sum_i w_i tot_i(t)``; ``w = 1`` gives the observed value.

    >>> from matbackprop.metrics import evaluate_regions
    >>> halves = np.array([[0, 0, 1, 1]] * 4)
    >>> good = evaluate_regions([np.zeros((4, 4), int), halves], [halves])
    >>> bad = evaluate_regions([np.zeros((4, 4), int), np.zeros((4, 4), int)], [halves])
    >>> g = covering_ods_gap([good] * 5, [bad] * 5, resamples=100)
    >>> g.gap, g.low, g.high, g.share_ahead
    (0.5, 0.5, 0.5, 1.0)
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"need the same, non-zero number of images on both sides (got {len(a)} and {len(b)})")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if any(x.thresholds.shape != a[0].thresholds.shape for x in (*a, *b)):
        raise ValueError("every image needs the same thresholds on both sides")
    cnt_a, tot_a = np.stack([x.cnt_r for x in a]), np.stack([x.sum_r for x in a])
    cnt_b, tot_b = np.stack([x.cnt_r for x in b]), np.stack([x.sum_r for x in b])
    n = len(a)
    ones = np.ones((1, n))
    gap = float(_covering_ods(cnt_a, tot_a, ones)[0] - _covering_ods(cnt_b, tot_b, ones)[0])
    w = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)
    gaps = _covering_ods(cnt_a, tot_a, w) - _covering_ods(cnt_b, tot_b, w)
    low, high = np.quantile(gaps, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return OdsGap(
        gap=gap,
        low=float(low),
        high=float(high),
        share_ahead=float(np.mean(gaps > 0)),
        level=level,
        resamples=resamples,
        images=n,
    )
