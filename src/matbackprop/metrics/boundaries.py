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

Thinning reproduces MATLAB's ``bwmorph(bw, 'thin', Inf)`` (checked pixel for
pixel against scikit-image's ``thin``, which implements the same algorithm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import (
    connected_components,
    maximum_bipartite_matching,
    min_weight_full_bipartite_matching,
)

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

# ---------------------------------------------------------------------------
# Thinning (the algorithm behind MATLAB's bwmorph(bw, 'thin', Inf))
# ---------------------------------------------------------------------------

# Weights that pack the 8 neighbours of a pixel into one byte. Bit k holds
# neighbour x_{k+1} of Lam, Lee & Suen (1992): x1 east, then anticlockwise.
_NEIGHBOUR_WEIGHTS = np.array(
    [[8, 4, 2],
     [16, 0, 1],
     [32, 64, 128]], dtype=np.int32)


def _thin_tables() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables of the two sub-iterations, indexed by neighbour byte.

    A pixel p is deleted in the first sub-iteration when
    G1: its crossing number X_H(p) is 1 (it is a simple, non-end point),
    G2: 2 <= min(n1(p), n2(p)) <= 3 (it is not an end point of a stroke),
    G3: (x2 | x3 | ~x8) & x1 == 0 (it lies on a south-east boundary);
    the second sub-iteration uses G3': (x6 | x7 | ~x4) & x5 == 0.
    Lam, Lee & Suen, "Thinning methodologies - a comprehensive survey",
    PAMI 1992, p. 879 (the algorithm MATLAB documents for bwmorph 'thin').
    """
    codes = np.arange(256)
    x = [(codes >> k) & 1 for k in range(8)]  # x[0] is x1, ... x[7] is x8

    def nb(i: int) -> np.ndarray:  # 1-based, cyclic
        return x[(i - 1) % 8]

    crossing = sum(
        ((1 - nb(2 * i - 1)) & (nb(2 * i) | nb(2 * i + 1))) for i in range(1, 5)
    )
    n1 = sum((nb(2 * k - 1) | nb(2 * k)) for k in range(1, 5))
    n2 = sum((nb(2 * k) | nb(2 * k + 1)) for k in range(1, 5))
    mn = np.minimum(n1, n2)
    g12 = (crossing == 1) & (mn >= 2) & (mn <= 3)
    g3 = ((nb(2) | nb(3) | (1 - nb(8))) & nb(1)) == 0
    g3p = ((nb(6) | nb(7) | (1 - nb(4))) & nb(5)) == 0
    return g12 & g3, g12 & g3p


_THIN_FIRST, _THIN_SECOND = _thin_tables()


def thin(bw: np.ndarray, max_iter: int | None = None) -> np.ndarray:
    """Thin binary shapes to one-pixel-wide, 8-connected curves.

    Reproduces MATLAB's ``bwmorph(bw, 'thin', Inf)``, which the benchmark
    applies to machine boundaries before matching: two parallel
    sub-iterations, each deleting the pixels its table marks, repeated until
    nothing changes. Pixels outside the image count as background.

    Parameters
    ----------
    bw : (H, W) array, non-zero = foreground.
    max_iter : number of full iterations, ``None`` for "until stable".

    Returns
    -------
    (H, W) bool array.
    """
    skel = np.asarray(bw).astype(bool)
    if skel.ndim != 2:
        raise ValueError(f"thin expects a 2-D map, got shape {skel.shape}")
    skel = skel.copy()
    it = 0
    while max_iter is None or it < max_iter:
        before = int(skel.sum())
        for table in (_THIN_FIRST, _THIN_SECOND):
            code = ndimage.correlate(skel.astype(np.int32), _NEIGHBOUR_WEIGHTS, mode="constant")
            skel &= ~table[code]
        it += 1
        if int(skel.sum()) == before:
            break
    return skel


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
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
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


def _match_count_graph(b1: np.ndarray, nb: "_Neighbourhoods"):
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


def _min_cost_max_matching(g: csr_matrix, dist: np.ndarray) -> np.ndarray:
    """Among maximum-cardinality matchings of ``g``, one of least total distance.

    The official code's construction in exact form: each pixel of either
    side gets a private "outlier" partner at a cost far above any pairing,
    and every real edge (a, b) has a mirrored cheap edge between the two
    outlier partners. A full assignment then always exists; its cost is
    ``sum(pair costs) + big * (#unpaired pixels) + #pairs``, so the optimum
    pairs as many pixels as possible first, then minimises their distances.

    Parameters
    ----------
    g : (n_rows, n_cols) CSR graph whose stored entries, in storage order,
        are the admissible pairs.
    dist : (g.nnz,) distance of each stored pair, in pixels.

    Returns
    -------
    (n_rows,) int array: the matched column of each row, or -1.
    """
    n_rows, _ = g.shape
    match = np.full(n_rows, -1, dtype=np.int64)
    r = np.repeat(np.arange(n_rows), np.diff(g.indptr))
    c = g.indices.astype(np.int64)
    if r.size == 0:
        return match
    # Integer costs in 1/100 pixel as in the official code (SciPy's LAPJVsp
    # may not terminate on fractional costs); +1 keeps zero-length pairs as
    # stored entries. The official outlier cost is 100 radii, i.e. about 100
    # times the dearest pair: an augmenting path would need ~200 pairs to
    # make leaving two pixels unpaired cheaper.
    w_real = np.rint(np.asarray(dist, dtype=float) * 100.0) + 1.0
    big = 100.0 * float(w_real.max())
    # The problem splits over the connected components of the pair graph.
    # The solver's cost grows faster than linearly with size, so the
    # components are solved in batches of about _BATCH_NODES nodes (one
    # call per component would cost more in Python overhead).
    n_nodes = n_rows + g.shape[1]
    adj = coo_matrix((np.ones(r.size), (r, n_rows + c)), shape=(n_nodes, n_nodes))
    _, comp = connected_components(adj, directed=False)
    used = np.zeros(n_nodes, dtype=bool)
    used[r] = True
    used[n_rows + c] = True
    size = np.bincount(comp[used], minlength=int(comp.max()) + 1)
    batch = (np.cumsum(size) - size) // _BATCH_NODES
    eb = batch[comp[r]]
    order = np.argsort(eb, kind="stable")
    bounds = np.flatnonzero(np.r_[True, eb[order][1:] != eb[order][:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
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
        match = _min_cost_max_matching(g, dist)
    else:
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
    """
    human = (
        gt_boundaries if isinstance(gt_boundaries, HumanBoundaries)
        else HumanBoundaries(gt_boundaries, max_dist)
    )
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
    return BoundaryCounts(
        cnt_r=cnt_r, sum_r=int(sum(human.totals)), cnt_p=int(acc.sum()), sum_p=int(b.sum())
    )
