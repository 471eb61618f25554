"""Shortest augmenting paths on a sparse assignment whose columns come and go.

The kernels keep a min-cost perfect assignment and its dual potentials ``(u, v)`` (reduced costs
``cost[i, j] - u[i] - v[j] >= 0``, zero on matched pairs) while columns are switched off and on, so
that a series of closely related problems costs a few augmentations each instead of a solve from
scratch. One augmentation is a Dijkstra search on reduced costs from a free row to the nearest free
column, followed by the dual update that keeps the invariants (Crouse, "On implementing 2D
rectangular assignment algorithms", IEEE TAES 2016, Algorithm 1; the potentials of Jonker &
Volgenant, Computing 1987).

The structure (which rows and columns are paired with which, and which belong together) is the
caller's: :mod:`.boundary_series` builds it for the boundary benchmark. The functions are compiled
with numba when it is installed (``pip install 'matbackprop[metrics]'``); without it they run as
plain Python, with the same results, far slower (:data:`COMPILED` says which).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_njit: Callable[..., Any] | None
try:
    from numba import njit as _njit
except ImportError:  # pragma: no cover - numba is a dependency of the metrics extra
    _njit = None

#: Whether the kernels are compiled by numba (else they run as plain Python).
COMPILED = _njit is not None

__all__ = ["COMPILED", "AssignmentState", "augment_rows", "free_columns", "restore_columns"]


def _compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn if _njit is None else _njit(cache=True, nogil=True)(fn)


class AssignmentState:
    """Arrays of a square sparse assignment problem and its current solution.

    Parameters
    ----------
    indptr, indices, cost : the (n, n) cost matrix in CSR form (only stored pairs are allowed; the
        costs are integers held as float64, so sums of them are exact).
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, cost: np.ndarray) -> None:
        n = indptr.size - 1
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(indices, dtype=np.int64)
        self.cost = np.ascontiguousarray(cost, dtype=np.float64)
        self.u = np.zeros(n)
        self.v = np.zeros(n)
        self.row_of_col = np.full(n, -1, dtype=np.int64)
        self.col_of_row = np.full(n, -1, dtype=np.int64)
        self.alive = np.ones(n, dtype=np.bool_)  # columns that take part
        # scratch space of one augmentation, allocated once
        self.dist = np.full(n, np.inf)
        self.pred = np.full(n, -1, dtype=np.int64)
        self.done = np.zeros(n, dtype=np.bool_)
        self.heap_keys = np.empty(self.indices.size + n)
        self.heap_cols = np.empty(self.indices.size + n, dtype=np.int64)
        self.path_rows = np.empty(n + 1, dtype=np.int64)
        self.path_cols = np.empty(n, dtype=np.int64)

    def augment(self, rows: np.ndarray) -> None:
        """Match each of the free ``rows`` in turn along a shortest augmenting path."""
        augment_rows(
            np.ascontiguousarray(rows, dtype=np.int64),
            self.indptr,
            self.indices,
            self.cost,
            self.u,
            self.v,
            self.row_of_col,
            self.col_of_row,
            self.alive,
            self.dist,
            self.pred,
            self.done,
            self.heap_keys,
            self.heap_cols,
            self.path_rows,
            self.path_cols,
        )


@_compiled
def _heap_push(keys, vals, n, key, val):  # pragma: no cover - compiled
    i = n
    keys[i] = key
    vals[i] = val
    while i > 0:
        p = (i - 1) >> 1
        if keys[p] <= keys[i]:
            break
        keys[p], keys[i] = keys[i], keys[p]
        vals[p], vals[i] = vals[i], vals[p]
        i = p
    return n + 1


@_compiled
def _heap_pop(keys, vals, n):  # pragma: no cover - compiled
    key = keys[0]
    val = vals[0]
    n -= 1
    keys[0] = keys[n]
    vals[0] = vals[n]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        right = left + 1
        c = left if (right >= n or keys[left] <= keys[right]) else right
        if keys[i] <= keys[c]:
            break
        keys[i], keys[c] = keys[c], keys[i]
        vals[i], vals[c] = vals[c], vals[i]
        i = c
    return key, val, n


@_compiled
def _augment(
    i0, indptr, indices, cost, u, v, row_of_col, col_of_row, alive, dist, pred, done, hk, hv, sr, sc
):  # pragma: no cover - compiled
    # Dijkstra from row i0 over reduced costs; a column is settled when popped at its final distance
    n_rows_seen = 1
    n_cols_seen = 0
    heap_n = 0
    shortest = 0.0
    i = i0
    sr[0] = i0
    sink = -1
    while sink == -1:
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            if not alive[j] or done[j]:
                continue
            d = shortest + cost[e] - u[i] - v[j]
            if d < dist[j]:
                dist[j] = d
                pred[j] = i
                heap_n = _heap_push(hk, hv, heap_n, d, j)
        j = -1
        while heap_n > 0:
            key, jj, heap_n = _heap_pop(hk, hv, heap_n)
            if done[jj] or key > dist[jj]:
                continue  # a stale entry
            j = jj
            break
        if j == -1:
            raise ValueError("assignment infeasible: a free row has no augmenting path")
        shortest = dist[j]
        done[j] = True
        sc[n_cols_seen] = j
        n_cols_seen += 1
        if row_of_col[j] == -1:
            sink = j
        else:
            i = row_of_col[j]
            sr[n_rows_seen] = i
            n_rows_seen += 1
    # potentials: settled columns and their rows move by (shortest - their distance)
    u[i0] += shortest
    for k in range(1, n_rows_seen):
        r = sr[k]
        u[r] += shortest - dist[col_of_row[r]]
    for k in range(n_cols_seen):
        c = sc[k]
        v[c] -= shortest - dist[c]
    # flip the path
    j = sink
    while True:
        r = pred[j]
        row_of_col[j] = r
        nxt = col_of_row[r]
        col_of_row[r] = j
        if r == i0:
            break
        j = nxt
    # reset the scratch space of every column reached (settled ones, and those still in the heap)
    for k in range(n_cols_seen):
        c = sc[k]
        done[c] = False
        dist[c] = np.inf
    for k in range(heap_n):
        dist[hv[k]] = np.inf


@_compiled
def augment_rows(
    rows, indptr, indices, cost, u, v, row_of_col, col_of_row, alive, dist, pred, done, hk, hv, sr, sc
):  # pragma: no cover - compiled
    """Augment from each free row of ``rows`` in turn (see :class:`AssignmentState` for the arrays)."""
    for k in range(rows.shape[0]):
        _augment(rows[k], indptr, indices, cost, u, v, row_of_col, col_of_row, alive, dist, pred, done, hk, hv, sr, sc)


@_compiled
def free_columns(cols, partner_row, row_of_col, col_of_row, alive, freed):  # pragma: no cover - compiled
    """Switch off ``cols`` together with their partner rows ``partner_row[cols]``.

    Both leave the assignment: whatever they were matched to becomes free. A freed column needs
    nothing (there is one row fewer), but a freed row other than a removed one must be augmented
    again: those rows are written to ``freed``; returns how many.
    """
    n_freed = 0
    for k in range(cols.shape[0]):
        j = cols[k]
        o = partner_row[j]
        a = row_of_col[j]
        b = col_of_row[o]
        row_of_col[j] = -1
        col_of_row[o] = -1
        alive[j] = False
        if a >= 0 and a != o:
            col_of_row[a] = -1
            freed[n_freed] = a
            n_freed += 1
        if b >= 0 and b != j:
            row_of_col[b] = -1
    return n_freed


@_compiled
def restore_columns(
    cols, partner_row, col_ptr, col_rows, col_cost, indptr, indices, cost, u, v, alive
):  # pragma: no cover - compiled
    """Switch ``cols`` back on, with their partner rows, keeping the potentials feasible.

    ``col_ptr, col_rows, col_cost`` list the stored pairs by column (CSC). A restored column gets the
    largest ``v`` that leaves every pair into it non-negative (capped by its partner row's pair), and
    its partner row the largest ``u`` its own pairs allow; both start free, and the caller augments
    the partner rows. Rows other than partner rows never leave the problem, so their ``u`` is current.
    """
    for k in range(cols.shape[0]):
        alive[cols[k]] = True
    for k in range(cols.shape[0]):
        j = cols[k]
        o = partner_row[j]
        best = np.inf
        for e in range(col_ptr[j], col_ptr[j + 1]):
            r = col_rows[e]
            if r == o:
                best = min(best, col_cost[e])
        for e in range(col_ptr[j], col_ptr[j + 1]):
            r = col_rows[e]
            if r != o:
                best = min(best, col_cost[e] - u[r])
        v[j] = best
    for k in range(cols.shape[0]):
        o = partner_row[cols[k]]
        best = np.inf
        for e in range(indptr[o], indptr[o + 1]):
            c = indices[e]
            if alive[c]:
                best = min(best, cost[e] - v[c])
        u[o] = best
