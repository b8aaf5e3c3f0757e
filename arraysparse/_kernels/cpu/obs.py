"""SparseGPT's column sweep within one block (optimal brain surgeon updates), per row.

Within a block every row is independent: its pruned columns, its errors and
its updates depend on that row's values alone (the block's unstructured mask
is chosen before the sweep; N:M groups are chosen from the row's own values).
So the kernels run the reference's column loop for each row, rows in
parallel, instead of one rank-1 update of the whole tile per column. The
arithmetic per element is the reference's: ``err = w_i / U_ii`` for a pruned
column, ``w_j -= err * U_ij`` for the later columns of the block; kept columns
have ``err = 0`` and change nothing, so they are skipped.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, nogil=True)
def sweep_unstructured(w1, keep1, u1, err1):
    """Prune ``~keep1`` column by column in every row of ``w1`` (in place) and record the errors."""
    rows, b = w1.shape
    for r in numba.prange(rows):
        w = w1[r]
        for i in range(b):
            if keep1[r, i]:
                err1[r, i] = 0.0
                continue
            e = w[i] / u1[i, i]
            err1[r, i] = e
            w[i] = 0.0
            for j in range(i + 1, b):
                w[j] -= e * u1[i, j]


@numba.njit(parallel=True, nogil=True)
def sweep_nm(w1, keep1, u1, err1, n, m):
    """N:M: at the first column of each group of ``m`` prune the ``n`` lowest ``w^2 / U_cc^2``.

    Ties prune the lower position first, as :func:`arraysparse.nm_mask` does.
    """
    rows, b = w1.shape
    for r in numba.prange(rows):
        w = w1[r]
        s = np.empty(m, dtype=w1.dtype)
        for i in range(b):
            if i % m == 0:
                for k in range(m):
                    d = u1[i + k, i + k]
                    s[k] = w[i + k] * w[i + k] / (d * d)
                for k in range(m):
                    rank = 0
                    for q in range(m):
                        if s[q] < s[k] or (s[q] == s[k] and q < k):
                            rank += 1
                    keep1[r, i + k] = rank >= n
            if keep1[r, i]:
                err1[r, i] = 0.0
                continue
            e = w[i] / u1[i, i]
            err1[r, i] = e
            w[i] = 0.0
            for j in range(i + 1, b):
                w[j] -= e * u1[i, j]
