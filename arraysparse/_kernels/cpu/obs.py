"""SparseGPT's column sweep within one block (optimal brain surgeon updates), per row.

Within a block every row is independent: its pruned columns, its errors and
its updates depend on that row's values alone (the block's unstructured mask
is chosen before the sweep; N:M groups are chosen from the row's own values).
So the kernels run the reference's column loop row by row over a narrow
slab of columns (the caller moves the slab's errors on to the rest of the
block with one matrix product), instead of one rank-1 update of the whole
tile per column. They are serial on purpose: the slab is small, and a
parallel kernel between two multithreaded BLAS calls wakes a second thread
pool, which on a busy machine costs more than the kernel. The arithmetic per element is the reference's:
``err = w_i / U_ii`` for a pruned
column, ``w_j -= err * U_ij`` for the later columns of the block; kept columns
have ``err = 0`` and change nothing, so they are skipped.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel


@kernel
def sweep_unstructured(w1, keep1, u1, err1):
    """Prune ``~keep1`` column by column in every row of ``w1`` (in place) and record the errors."""
    rows, b = w1.shape
    for r in range(rows):
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


@kernel
def sweep_nm(w1, keep1, u1, err1, n, m):
    """N:M: at the first column of each group of ``m`` prune the ``n`` lowest ``w^2 / U_cc^2``.

    Ties prune the lower position first, as :func:`arraysparse.nm_mask` does.
    """
    rows, b = w1.shape
    for r in range(rows):
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


@kernel
def cholesky_inverse_factor(a):
    """``(L^-1, ok)`` for the lower Cholesky factor ``L`` of a small SPD matrix ``a``.

    The base case of SparseGPT's factorisation by halves on the host: plain
    loops, serial, no LAPACK call (a multithreaded LAPACK call on a small
    matrix costs more in thread hand-offs than in flops). ``ok`` is False when
    ``a`` is not positive definite.
    """
    n = a.shape[0]
    low = np.zeros_like(a)
    inv = np.zeros_like(a)
    for j in range(n):
        s = np.float64(a[j, j])
        for k in range(j):
            s -= np.float64(low[j, k]) * low[j, k]
        if not s > 0.0:
            return inv, False
        d = np.sqrt(s)
        low[j, j] = d
        for i in range(j + 1, n):
            t = np.float64(a[i, j])
            for k in range(j):
                t -= np.float64(low[i, k]) * low[j, k]
            low[i, j] = t / d
    for c in range(n):
        inv[c, c] = 1.0 / np.float64(low[c, c])
        for i in range(c + 1, n):
            t = 0.0
            for k in range(c, i):
                t -= np.float64(low[i, k]) * inv[k, c]
            inv[i, c] = t / low[i, i]
    return inv, True
