"""Boundary precision/recall of the Berkeley Segmentation benchmark.

A machine boundary map is thinned to one-pixel-wide curves, then every human
boundary map is put in one-to-one correspondence with it: two boundary pixels
may be paired when they lie within ``max_dist`` times the image diagonal of
each other (0.0075 in the benchmark, about 4.3 pixels on a 481x321 image).
Recall is the fraction of human boundary pixels that are paired (summed over
annotators); precision the fraction of machine pixels paired with at least one
annotator (Martin, Fowlkes & Malik, TPAMI 2004; Arbelaez et al., TPAMI 2011).

The official ``correspondPixels`` solves a min-cost assignment in which leaving
a pixel unpaired costs 100 times the radius, far more than any pairing; its
optimum therefore pairs as many pixels as possible, and among such pairings it
prefers short distances. :func:`correspond_pixels` solves that problem exactly
with SciPy's sparse assignment solver (a min-cost matching among the
maximum-cardinality ones); a plain Hopcroft-Karp maximum matching is
available too, with the same recall but a slightly different precision.
A whole threshold series is scored faster, with the same optimum, by
:mod:`~matbackprop.metrics.boundary_series`.

Thinning (:mod:`matbackprop.metrics.thinning`, re-exported here) reproduces MATLAB's
``bwmorph(bw, 'thin', Inf)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import (
    connected_components,
    maximum_bipartite_matching,
    min_weight_full_bipartite_matching,
)

from .thinning import _NEIGHBOUR_WEIGHTS, _THIN_FIRST, _THIN_SECOND, thin  # noqa: F401  (re-exported)

__all__ = [
    "thin",
    "seg_to_boundaries",
    "correspond_pixels",
    "BoundaryCounts",
    "HumanBoundaries",
    "boundary_counts",
    "MAX_DIST",
]

#: Matching tolerance of the benchmark, as a fraction of the image diagonal.
MAX_DIST = 0.0075

# Target size (nodes) of the assignment problems solved in one call.
_BATCH_NODES = 256
# Solved components kept per annotator before the cache is cleared.
_CACHE_LIMIT = 50_000


def seg_to_boundaries(seg: np.ndarray) -> np.ndarray:
    """Boundary map of a segmentation, at image size (the benchmark's ``seg2bdry``).

    Label changes between vertically or horizontally adjacent pixels are
    placed on the doubled grid (an edge between pixels (i, j) and (i+1, j) at
    doubled coordinate (2i+2, 2j+1), counting the border row 0), the junction
    points in between are lit when any of their four edges is, and the map is
    read back at doubled coordinates (2i+2, 2j+2): the lower-right corner of
    pixel (i, j). The last row and column therefore mark only the edges that
    run along them, exactly as in the official code.

    Parameters
    ----------
    seg : (H, W) integer label map.

    Returns
    -------
    (H, W) bool boundary map.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop import metrics
    >>> seg = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3]])
    >>> metrics.seg_to_boundaries(seg).astype(int)
    array([[0, 1, 0, 0],
           [1, 1, 1, 1],
           [0, 0, 0, 0]])
    """
    s = np.asarray(seg)
    if s.ndim != 2:
        raise ValueError(f"seg must be 2-D, got shape {s.shape}")
    h, w = s.shape
    ev = np.zeros((h, w), dtype=bool)  # between (i, j) and (i+1, j)
    eh = np.zeros((h, w), dtype=bool)  # between (i, j) and (i, j+1)
    ev[:-1, :] = s[:-1, :] != s[1:, :]
    eh[:, :-1] = s[:, :-1] != s[:, 1:]
    b = np.zeros((2 * h + 1, 2 * w + 1), dtype=bool)
    b[2::2, 1::2] = ev
    b[1::2, 2::2] = eh
    b[2:-1:2, 2:-1:2] = eh[:-1, :-1] | eh[1:, :-1] | ev[:-1, :-1] | ev[:-1, 1:]
    b[0, :] = b[1, :]
    b[:, 0] = b[:, 1]
    b[-1, :] = b[-2, :]
    b[:, -1] = b[:, -2]
    return b[2::2, 2::2].copy()


# ---------------------------------------------------------------------------
# Correspondence
# ---------------------------------------------------------------------------


def _disk_offsets(radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer offsets (dy, dx) with dy^2 + dx^2 <= radius^2, and their lengths."""
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    d2 = dy * dy + dx * dx
    keep = d2 <= radius * radius
    return dy[keep], dx[keep], np.sqrt(d2[keep])


class _Neighbourhoods:
    """For every pixel of a (human) boundary map, the pixels within the radius.

    Human maps are fixed while the machine map changes with the threshold,
    so this table is built once per annotator and reused: testing a machine
    map then costs one gather of ``n_pixels * n_offsets`` booleans.

    Attributes
    ----------
    flat : (n,) flat indices of the boundary pixels.
    nbr : (n, m) flat index of each pixel's m disk neighbours; neighbours
        falling outside the image point at ``H * W`` (a padding cell).
    dist : (m,) length of each offset.
    """

    def __init__(self, bmap: np.ndarray, radius: float):
        h, w = bmap.shape
        self.shape = (h, w)
        y, x = np.nonzero(bmap)
        dy, dx, self.dist = _disk_offsets(radius)
        yy = y[:, None] + dy[None, :]
        xx = x[:, None] + dx[None, :]
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        self.flat = y * w + x
        self.nbr = np.where(inside, yy * w + xx, h * w)
        # Outlier cost of the assignment: 100 times the dearest possible pair (in 1/100 pixel, +1),
        # a constant so that a component's optimum does not depend on the rest of the map.
        self.big = 100.0 * (float(np.rint(self.dist.max(initial=0.0) * 100.0)) + 1.0)
        # Solved components, keyed by their machine pixels (see _min_cost_matches).
        self.solutions: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}


def _match_count_graph(b1: np.ndarray, nb: _Neighbourhoods):
    """Sparse bipartite graph (human pixel x machine pixel) of admissible pairs.

    Returns the CSR graph, whose rows are the human pixels of ``nb`` and
    whose columns are the machine pixels (numbered in raster order), the
    distance of each stored edge, and the flat indices of the machine pixels.
    """
    h, w = b1.shape
    flat1 = np.flatnonzero(b1)
    # machine pixel -> node id, with the padding cell mapping to "none"
    node1 = np.full(h * w + 1, -1, dtype=np.int64)
    node1[flat1] = np.arange(flat1.size)
    cand = node1[nb.nbr]  # (n2, m): machine node at each neighbour, or -1
    ok = cand >= 0
    # row-major traversal keeps the edges of one human pixel contiguous,
    # so the CSR index pointer is a cumulative count
    indptr = np.r_[0, np.cumsum(ok.sum(axis=1))]
    indices = cand[ok]
    dist = np.broadcast_to(nb.dist, ok.shape)[ok]
    g = csr_matrix(
        (np.ones(indices.size, dtype=np.int8), indices, indptr),
        shape=(nb.flat.size, flat1.size),
    )
    return g, dist, flat1


def _min_cost_matches(
    g: csr_matrix, dist: np.ndarray, flat1: np.ndarray, nb: _Neighbourhoods
) -> tuple[np.ndarray, np.ndarray]:
    """Among maximum-cardinality matchings of ``g``, one of least total distance.

    The official code's construction in exact form: each pixel of either
    side gets a private "outlier" partner at a cost far above any pairing,
    and every real edge (a, b) has a mirrored cheap edge between the two
    outlier partners. A full assignment then always exists; its cost is
    ``sum(pair costs) + big * (#unpaired pixels) + #pairs``, so the optimum
    pairs as many pixels as possible first, then minimises their distances.

    The problem splits over the connected components of the pair graph, and
    a component is fully determined by its machine pixels (its human pixels
    are all those within reach of them, its pairs and costs follow from the
    geometry). Along a threshold series most components recur unchanged, so
    each component's solution is cached on ``nb`` under its machine pixels
    and solved once per annotator.

    Parameters
    ----------
    g : (n_rows, n_cols) CSR graph whose stored entries, in storage order,
        are the admissible pairs (rows: ``nb``'s human pixels; columns: the
        machine pixels ``flat1``).
    dist : (g.nnz,) distance of each stored pair, in pixels.
    flat1 : (n_cols,) flat index of each machine pixel.
    nb : the annotator's neighbourhoods, holding the cache.

    Returns
    -------
    Flat indices of the paired machine pixels and of their human partners.
    """
    n_rows, n_cols = g.shape
    r = np.repeat(np.arange(n_rows), np.diff(g.indptr))
    c = g.indices.astype(np.int64)
    empty = np.empty(0, dtype=np.int64)
    if r.size == 0:
        return empty, empty
    # Integer costs in 1/100 pixel as in the official code (SciPy's LAPJVsp
    # may not terminate on fractional costs); +1 keeps zero-length pairs as
    # stored entries. The official outlier cost is 100 radii, i.e. about 100
    # times the dearest pair: an augmenting path would need ~200 pairs to
    # make leaving two pixels unpaired cheaper.
    w_real = np.rint(np.asarray(dist, dtype=float) * 100.0) + 1.0
    n_nodes = n_rows + n_cols
    adj = coo_matrix((np.ones(r.size), (r, n_rows + c)), shape=(n_nodes, n_nodes))
    _, comp = connected_components(adj, directed=False)
    # machine pixels with a pair, grouped by component; the group's pixels are its cache key
    cols = np.unique(c)
    ccomp = comp[n_rows + cols]
    corder = np.argsort(ccomp, kind="stable")
    cstarts = np.flatnonzero(np.r_[True, ccomp[corder][1:] != ccomp[corder][:-1], True])
    p1, p2 = [], []
    todo = np.zeros(int(comp.max()) + 1, dtype=bool)
    keys: dict[int, bytes] = {}
    for lo, hi in itertools.pairwise(cstarts):
        k = int(ccomp[corder[lo]])
        key = flat1[cols[corder[lo:hi]]].tobytes()  # flat1 is increasing: a canonical order
        hit = nb.solutions.get(key)
        if hit is None:
            todo[k] = True
            keys[k] = key
        else:
            p1.append(hit[0])
            p2.append(hit[1])
    if keys:
        match = _solve_components(r, c, w_real, comp, todo, n_rows, nb.big)
        rows = np.flatnonzero(match >= 0)
        rcomp = comp[rows]
        rorder = np.argsort(rcomp, kind="stable")
        found = {}
        rstarts = np.flatnonzero(np.r_[True, rcomp[rorder][1:] != rcomp[rorder][:-1], True])
        for lo, hi in itertools.pairwise(rstarts):
            sel = rows[rorder[lo:hi]]
            found[int(comp[sel[0]])] = (flat1[match[sel]], nb.flat[sel])
        if len(nb.solutions) > _CACHE_LIMIT:  # bound memory on very long series
            nb.solutions.clear()
        for k, key in keys.items():
            sol = found.get(k, (empty, empty))
            nb.solutions[key] = sol
            p1.append(sol[0])
            p2.append(sol[1])
    if not p1:
        return empty, empty
    return np.concatenate(p1), np.concatenate(p2)


def _solve_components(r, c, w_real, comp, todo, n_rows, big) -> np.ndarray:
    """Min-cost maximum matching restricted to the components flagged in ``todo``.

    The solver's cost grows faster than linearly with size, so the
    components are solved in batches of about _BATCH_NODES nodes (one call
    per component would cost more in Python overhead). Returns the matched
    column of each row (-1: unpaired or not in a flagged component).
    """
    match = np.full(n_rows, -1, dtype=np.int64)
    keep = todo[comp[r]]
    r, c, w_real = r[keep], c[keep], w_real[keep]
    used = np.zeros(comp.size, dtype=bool)
    used[r] = True
    used[n_rows + c] = True
    size = np.bincount(comp[used], minlength=int(comp.max()) + 1)
    batch = (np.cumsum(size) - size) // _BATCH_NODES
    eb = batch[comp[r]]
    order = np.argsort(eb, kind="stable")
    bounds = np.flatnonzero(np.r_[True, eb[order][1:] != eb[order][:-1], True])
    for lo, hi in itertools.pairwise(bounds):
        e = order[lo:hi]
        # nodes without any admissible pair stay out: they can only be unpaired
        ur, rl = np.unique(r[e], return_inverse=True)
        uc, cl = np.unique(c[e], return_inverse=True)
        sub = _solve_with_outliers(rl, cl, w_real[e], ur.size, uc.size, big)
        ok = sub >= 0
        match[ur[ok]] = uc[sub[ok]]
    return match


def _solve_with_outliers(r, c, w, n2, n1, big) -> np.ndarray:
    """Min-cost full assignment of the outlier-augmented graph (see above).

    Left nodes: rows [0, n2), then outlier partners of columns [n2, n2+n1);
    right nodes: columns [0, n1), then outlier partners of rows [n1, n1+n2).
    Returns the matched column of each row, or -1.
    """
    rows = np.concatenate([r, np.arange(n2), n2 + np.arange(n1), n2 + c])
    cols = np.concatenate([c, n1 + np.arange(n2), np.arange(n1), n1 + r])
    wts = np.concatenate([w, np.full(n2, big), np.full(n1, big), np.ones(r.size)])
    full = csr_matrix((wts, (rows, cols)), shape=(n1 + n2, n1 + n2))
    _, col_of_row = min_weight_full_bipartite_matching(full)
    sub = col_of_row[:n2].astype(np.int64)
    sub[sub >= n1] = -1
    return sub


class HumanBoundaries:
    """The human boundary maps of one image, prepared for repeated matching.

    Building the disk neighbourhoods of the human pixels once lets every
    threshold of a machine map be scored against them cheaply.

    Parameters
    ----------
    maps : list of K (H, W) binary human boundary maps.
    max_dist : matching tolerance as a fraction of the image diagonal.
    """

    def __init__(self, maps: Sequence[np.ndarray], max_dist: float = MAX_DIST):
        bm = [np.asarray(m).astype(bool) for m in maps]
        if not bm:
            raise ValueError("at least one human boundary map is needed")
        shape = bm[0].shape
        if any(m.shape != shape or m.ndim != 2 for m in bm):
            raise ValueError("human boundary maps must be 2-D and share one shape")
        self.shape = shape
        self.max_dist = max_dist
        self.radius = max_dist * float(np.hypot(*shape))
        self.neighbourhoods = [_Neighbourhoods(m, self.radius) for m in bm]
        self.totals = [int(m.sum()) for m in bm]

    def __len__(self) -> int:
        return len(self.neighbourhoods)


def _matches(b1: np.ndarray, nb: _Neighbourhoods, min_cost: bool) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the paired machine pixels and of the paired human pixels."""
    g, dist, flat1 = _match_count_graph(b1, nb)
    if g.nnz == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    if min_cost:
        return _min_cost_matches(g, dist, flat1, nb)
    match = maximum_bipartite_matching(g, perm_type="column")
    ok = match >= 0
    return flat1[match[ok]], nb.flat[ok]


def correspond_pixels(
    bmap1: np.ndarray,
    bmap2: np.ndarray,
    max_dist: float = MAX_DIST,
    min_cost: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one correspondence between the pixels of two boundary maps.

    Pixels can be paired when their Euclidean distance is at most
    ``max_dist * sqrt(H^2 + W^2)``. The pairing has maximum cardinality (the
    number of paired pixels is what precision and recall count); with
    ``min_cost`` it also has the least total distance among those, as in the
    official min-cost assignment. That choice decides *which* machine pixels
    are paired when several pairings are equally large, and so the precision,
    which counts machine pixels paired with any annotator.

    Parameters
    ----------
    bmap1, bmap2 : (H, W) binary boundary maps (machine, human).
    max_dist : tolerance as a fraction of the image diagonal.
    min_cost : refine the maximum matching to least total distance (slower);
        ``False`` returns the Hopcroft-Karp maximum matching.

    Returns
    -------
    match1 : (H, W) bool, pixels of ``bmap1`` paired with a pixel of ``bmap2``.
    match2 : (H, W) bool, pixels of ``bmap2`` paired with a pixel of ``bmap1``.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop import metrics
    >>> a = np.zeros((6, 6), dtype=bool); a[:, 2] = True
    >>> b = np.zeros((6, 6), dtype=bool); b[:, 3] = True    # the same line, one pixel to the right
    >>> m1, m2 = metrics.correspond_pixels(a, b, max_dist=0.2)   # max_dist: fraction of the image diagonal
    >>> int(m1.sum()), int(m2.sum())                # every pixel matched
    (6, 6)
    >>> int(metrics.correspond_pixels(a, b, max_dist=0.01)[0].sum())   # closer than one pixel: none
    0
    """
    b1 = np.asarray(bmap1).astype(bool)
    b2 = np.asarray(bmap2).astype(bool)
    if b1.shape != b2.shape or b1.ndim != 2:
        raise ValueError(f"boundary maps must be 2-D and alike, got {b1.shape} and {b2.shape}")
    human = HumanBoundaries([b2], max_dist)
    p1, p2 = _matches(b1, human.neighbourhoods[0], min_cost)
    match1 = np.zeros_like(b1)
    match2 = np.zeros_like(b2)
    match1.flat[p1] = True
    match2.flat[p2] = True
    return match1, match2


@dataclass(frozen=True)
class BoundaryCounts:
    """Boundary counts of one machine map against all annotators of one image.

    ``recall = cnt_r / sum_r`` (human pixels paired, summed over annotators),
    ``precision = cnt_p / sum_p`` (machine pixels paired with any annotator).
    """

    cnt_r: int
    sum_r: int
    cnt_p: int
    sum_p: int


def boundary_counts(
    bmap: np.ndarray,
    gt_boundaries: Sequence[np.ndarray] | HumanBoundaries,
    max_dist: float = MAX_DIST,
    thin_map: bool = True,
    min_cost: bool = True,
) -> BoundaryCounts:
    """Precision/recall counts of a binary machine boundary map.

    Parameters
    ----------
    bmap : (H, W) binary machine boundary map.
    gt_boundaries : list of K (H, W) binary human boundary maps (never
        thinned), or a prepared :class:`HumanBoundaries` (then ``max_dist`` is
        the one it was built with).
    max_dist : matching tolerance as a fraction of the diagonal.
    thin_map : thin ``bmap`` first, as the benchmark does by default.
    min_cost : see :func:`correspond_pixels`.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop import metrics
    >>> seg = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]])   # a 0-based label map
    >>> gts = [np.array([[1, 1, 2, 2]] * 3), np.array([[1, 1, 1, 1]] * 2 + [[2, 2, 2, 2]])]   # two annotators
    >>> human = [metrics.seg_to_boundaries(g) for g in gts]
    >>> metrics.boundary_counts(metrics.seg_to_boundaries(seg), human)   # recall 5/7, precision 4/4
    BoundaryCounts(cnt_r=5, sum_r=7, cnt_p=4, sum_p=4)
    """
    human = gt_boundaries if isinstance(gt_boundaries, HumanBoundaries) else HumanBoundaries(gt_boundaries, max_dist)
    b = np.asarray(bmap).astype(bool)
    if b.shape != human.shape:
        raise ValueError(f"machine map has shape {b.shape}, human maps {human.shape}")
    if thin_map:
        b = thin(b)
    acc = np.zeros(b.size, dtype=bool)
    cnt_r = 0
    for nb in human.neighbourhoods:
        p1, p2 = _matches(b, nb, min_cost)
        acc[p1] = True
        cnt_r += int(p2.size)
    return BoundaryCounts(cnt_r=cnt_r, sum_r=int(sum(human.totals)), cnt_p=int(acc.sum()), sum_p=int(b.sum()))
