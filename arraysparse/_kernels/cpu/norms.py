"""Lp norms of slices and of blocks, accumulated in float64 in one pass.

``ord`` 1, 2 and inf avoid ``pow``; any other positive ``ord`` uses it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._jit import kernel


@kernel(inline="always")
def _term(v, p):
    a = abs(np.float64(v))
    if p == 1.0:
        return a
    if p == 2.0:
        return a * a
    return a**p


@kernel(inline="always")
def _combine(acc, term, is_max):
    return max(acc, term) if is_max else acc + term


@kernel(inline="always")
def _root(s, p, is_max):
    if is_max or p == 1.0:
        return s
    if p == 2.0:
        return math.sqrt(s)
    return s ** (1.0 / p)


@kernel(parallel=True)
def _slices_by_slice(x, p, is_max, out):
    outer, count, inner = x.shape
    for a in numba.prange(count):
        acc = 0.0
        for o in range(outer):
            for i in range(inner):
                acc = _combine(acc, _term(x[o, a, i], p), is_max)
        out[a] = _root(acc, p, is_max)


@kernel(parallel=True)
def _slices_by_outer(x, p, is_max, out, threads):
    # many short rows: each chunk of rows accumulates all slices, then a reduction
    outer, count, inner = x.shape
    nchunks = min(outer, 4 * threads)
    step = (outer + nchunks - 1) // nchunks
    partial = np.zeros((nchunks, count))
    for c in numba.prange(nchunks):
        acc = partial[c]
        for o in range(c * step, min(outer, (c + 1) * step)):
            for a in range(count):
                s = acc[a]
                for i in range(inner):
                    s = _combine(s, _term(x[o, a, i], p), is_max)
                acc[a] = s
    for a in range(count):
        s = 0.0
        for c in range(nchunks):
            s = _combine(s, partial[c, a], is_max)
        out[a] = _root(s, p, is_max)


def slice_plan(shape3: tuple[int, int, int]) -> tuple[bool, int]:
    """How :func:`slice_norms` sums an array of this 3-D shape: ``(by_outer, threads)``.

    The plan fixes the order of the float64 additions, so the slices of a
    part of the array (some of its slices, all their rows) summed with the
    whole array's plan come out bit for bit as in the whole.
    """
    threads = numba.get_num_threads()
    return shape3[0] >= 4 * threads and shape3[1] < 4 * shape3[0], threads


def slice_norms(x3: np.ndarray, ord: float, plan: tuple[bool, int] | None = None) -> np.ndarray:
    """Norm of every ``x3[:, a, :]``; float64 of shape ``(x3.shape[1],)``; ``plan`` (from
    :func:`slice_plan`) defaults to ``x3``'s own."""
    x3 = _kernel_dtype(x3)
    out = np.empty(x3.shape[1], np.float64)
    is_max = math.isinf(ord)
    p = 1.0 if is_max else float(ord)
    by_outer, threads = slice_plan(x3.shape) if plan is None else plan
    if by_outer:
        _slices_by_outer(x3, p, is_max, out, threads)
    else:
        _slices_by_slice(x3, p, is_max, out)
    return out


@kernel(parallel=True)
def _blocks(x, p, is_max, out):
    lead, n1, b1, n2, b2 = x.shape
    for t in numba.prange(lead * n1):
        q = t // n1
        i = t % n1
        acc = np.zeros(n2)
        for r in range(b1):  # row by row, so memory is read in order
            for j in range(n2):
                s = acc[j]
                for c in range(b2):
                    s = _combine(s, _term(x[q, i, r, j, c], p), is_max)
                acc[j] = s
        for j in range(n2):
            out[q, i, j] = _root(acc[j], p, is_max)


def block_norms(x5: np.ndarray, ord: float) -> np.ndarray:
    """Norm of every ``x5[q, i, :, j, :]``; float64 of shape ``(lead, n1, n2)``."""
    x5 = _kernel_dtype(x5)
    out = np.empty((x5.shape[0], x5.shape[1], x5.shape[3]), np.float64)
    is_max = math.isinf(ord)
    _blocks(x5, 1.0 if is_max else float(ord), is_max, out)
    return out


def _kernel_dtype(x: np.ndarray) -> np.ndarray:
    # numba has no float16 arithmetic; float32 holds every float16 exactly
    return x.astype(np.float32) if x.dtype == np.float16 else x
