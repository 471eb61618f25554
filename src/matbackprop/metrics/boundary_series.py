"""Boundary counts of a whole threshold series, matched incrementally.

The boundary benchmark scores one machine map per threshold (99 for a UCM) against every annotator,
each time with the min-cost maximum matching of :func:`~matbackprop.metrics.correspond_pixels`.
Consecutive thresholds differ by few pixels, so solving each from scratch repeats almost all of the
work. Here each annotator's assignment problem is built once over the union of the series' machine
pixels, in the same outlier-augmented form as the per-map solver (:mod:`.boundaries`):

- rows: the human pixels, then one outlier row per machine pixel;
- columns: the machine pixels, then one outlier column per human pixel;
- a pair within the radius costs ``rint(100 d) + 1``, the mirrored pair of outliers costs 1, and a pixel
  left with its own outlier costs ``big``.

Moving to the next threshold switches the vanished machine pixels off (with their outlier rows),
switches the new ones on, and re-augments only the rows that lost their partner
(:mod:`.augmenting_paths`). Each step ends at an optimum of that threshold's problem, so the number
of pixels paired (recall) is the same as the per-map solver's, and so is the total cost; where several
pairings share that cost, which machine pixels are paired may differ, and with it the precision by a
few pixels in thousands (the official matcher, which samples its outlier pairs, differs from itself
by about 3e-4 in F on its own test data).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from .augmenting_paths import COMPILED, AssignmentState, free_columns, restore_columns
from .boundaries import BoundaryCounts, HumanBoundaries, _Neighbourhoods

__all__ = ["series_matches", "boundary_counts_series", "resolve_matcher", "Matcher"]

#: ``"incremental"``: this module; ``"scipy"``: one SciPy assignment per map (:mod:`.boundaries`).
Matcher = Literal["auto", "incremental", "scipy"]


def resolve_matcher(matcher: Matcher = "auto") -> Literal["incremental", "scipy"]:
    """The matcher ``"auto"`` stands for: incremental when numba is installed, else SciPy's per map."""
    if matcher == "auto":
        return "incremental" if COMPILED else "scipy"
    if matcher not in ("incremental", "scipy"):
        raise ValueError(f"matcher must be 'auto', 'incremental' or 'scipy', got {matcher!r}")
    return matcher


class _SeriesAssignment:
    """One annotator's outlier-augmented assignment over the machine pixels ``machine_flat``."""

    def __init__(self, nb: _Neighbourhoods, machine_flat: np.ndarray, n_pixels: int) -> None:
        col_id = np.full(n_pixels + 1, -1, dtype=np.int64)  # the last cell: the padding of nb.nbr
        col_id[machine_flat] = np.arange(machine_flat.size)
        cand = col_id[nb.nbr]
        ok = cand >= 0
        # pixels without an admissible pair are unpaired at every threshold: leave them out
        human_rows = np.flatnonzero(ok.any(axis=1))
        cand, ok = cand[human_rows], ok[human_rows]
        machine_cols = np.unique(cand[ok])
        local = np.full(machine_flat.size, -1, dtype=np.int64)
        local[machine_cols] = np.arange(machine_cols.size)
        n_h, n_m = human_rows.size, machine_cols.size
        r = np.repeat(np.arange(n_h), ok.sum(axis=1))
        c = local[cand[ok]]
        w = np.rint(np.broadcast_to(nb.dist, ok.shape)[ok] * 100.0) + 1.0
        rows = np.concatenate([r, np.arange(n_h), n_h + np.arange(n_m), n_h + c])
        cols = np.concatenate([c, n_m + np.arange(n_h), np.arange(n_m), n_m + r])
        cost = np.concatenate([w, np.full(n_h, nb.big), np.full(n_m, nb.big), np.ones(r.size)])
        n = n_h + n_m
        order = np.lexsort((cols, rows))
        self.state = AssignmentState(_pointers(rows[order], n), cols[order], cost[order])
        by_col = np.argsort(cols, kind="stable")
        self.col_ptr = _pointers(cols[by_col], n)
        self.col_rows = rows[by_col].astype(np.int64)
        self.col_cost = cost[by_col]
        self.partner_row = np.full(n, -1, dtype=np.int64)
        self.partner_row[:n_m] = n_h + np.arange(n_m)
        self.n_h, self.n_m = n_h, n_m
        self.human_flat = nb.flat[human_rows]
        self.machine_index = machine_cols  # into machine_flat
        self.on: np.ndarray | None = None  # machine columns switched on

    def update(self, present: np.ndarray) -> None:
        """Re-solve for the machine pixels ``present`` ((len(machine_flat),) bool)."""
        on = present[self.machine_index]
        s = self.state
        if self.on is None:
            s.alive[: self.n_m] = on
            s.augment(np.concatenate([np.arange(self.n_h), self.partner_row[np.flatnonzero(on)]]))
        else:
            gone = np.flatnonzero(self.on & ~on)
            back = np.flatnonzero(~self.on & on)
            freed = np.empty(gone.size, dtype=np.int64)
            n_freed = free_columns(gone, self.partner_row, s.row_of_col, s.col_of_row, s.alive, freed)
            restore_columns(
                back,
                self.partner_row,
                self.col_ptr,
                self.col_rows,
                self.col_cost,
                s.indptr,
                s.indices,
                s.cost,
                s.u,
                s.v,
                s.alive,
            )
            s.augment(np.concatenate([freed[:n_freed], self.partner_row[back]]))
        self.on = on

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices into ``machine_flat`` of the paired machine pixels, and flat indices of their partners."""
        col = self.state.col_of_row[: self.n_h]
        paired = np.flatnonzero(col < self.n_m)
        return self.machine_index[col[paired]], self.human_flat[paired]


def _pointers(sorted_keys: np.ndarray, n: int) -> np.ndarray:
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(sorted_keys, minlength=n), out=ptr[1:])
    return ptr


def series_matches(bmaps: Sequence[np.ndarray], human: HumanBoundaries) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Min-cost maximum matchings of each machine map against each annotator.

    Parameters
    ----------
    bmaps : T (H, W) binary machine maps, already thinned (any order; a series whose consecutive
        maps differ little is fastest).
    human : the image's annotators.

    Returns
    -------
    ``out[t][a]``: flat indices of the machine pixels of map ``t`` paired with annotator ``a``, and of
    their human partners.
    """
    maps = [np.asarray(b, dtype=bool) for b in bmaps]
    if any(b.shape != human.shape for b in maps):
        raise ValueError(f"machine maps must have the human maps' shape {human.shape}")
    n_pixels = int(np.prod(human.shape))
    union = np.zeros(n_pixels, dtype=bool)
    for b in maps:
        union |= b.ravel()
    machine_flat = np.flatnonzero(union)
    problems = [_SeriesAssignment(nb, machine_flat, n_pixels) for nb in human.neighbourhoods]
    out = []
    for b in maps:
        present = b.ravel()[machine_flat]
        step = []
        for p in problems:
            p.update(present)
            m, h = p.pairs()
            step.append((machine_flat[m], h))
        out.append(step)
    return out


def boundary_counts_series(bmaps: Sequence[np.ndarray], human: HumanBoundaries) -> list[BoundaryCounts]:
    """:func:`~matbackprop.metrics.boundary_counts` of every map of a series of thinned maps.

    Recall counts the human pixels paired, summed over annotators (``cnt_r / sum_r``); precision the
    machine pixels paired with any annotator (``cnt_p / sum_p``).

    >>> import numpy as np
    >>> from matbackprop.metrics import HumanBoundaries
    >>> b = np.zeros((6, 6), dtype=bool); b[:, 2] = True
    >>> half = b.copy(); half[3:] = False
    >>> [(c.cnt_r, c.cnt_p, c.sum_p) for c in boundary_counts_series([b, half], HumanBoundaries([b], 0.2))]
    [(6, 6, 6), (3, 3, 3)]
    """
    sum_r = int(sum(human.totals))
    counts = []
    for b, step in zip(bmaps, series_matches(bmaps, human)):
        paired = np.zeros(int(np.prod(human.shape)), dtype=bool)
        cnt_r = 0
        for m, h in step:
            paired[m] = True
            cnt_r += int(h.size)
        counts.append(BoundaryCounts(cnt_r=cnt_r, sum_r=sum_r, cnt_p=int(paired.sum()), sum_p=int(np.count_nonzero(b))))
    return counts
