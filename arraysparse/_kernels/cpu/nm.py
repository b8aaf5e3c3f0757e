"""N:M selection: in every group of ``m`` consecutive elements prune the ``n`` smallest.

The array arrives as a 3-D view ``(outer, length, inner)`` whose middle axis
carries the groups, so any axis is handled without a transpose. Ties inside a
group prune the lower position first, the rule of the unstructured selection.

* ``m`` in (2, 4, 8): each element's rank in its group by branch-free
  comparisons, in a kernel compiled for that ``m`` so the loops unroll and the
  compiler vectorises across groups (groups along the last axis, parallel over
  rows) or across the contiguous trailing axis (groups along an inner axis).
* any other ``m``: a quickselect that partitions out of place without
  branching on the data finds each group's ``n``-th smallest key ``t`` in
  per-thread scratch buffers; then the keys below ``t``
  and the first ``n - #below`` keys equal to ``t`` (by position) are pruned.

NaN is detected as a bit pattern (exponent all ones, mantissa non-zero) with
an OR-reduction, which vectorises; the caller counts NaNs only when present.
"""

from __future__ import annotations

import numba
import numpy as np

from .keys import FLOAT, as_bits, float_masks, make_key_function

_RANK_M = (2, 4, 8)
_MIN_ROWS = 64  # rows of work wanted for an even split across threads
_kernels: dict[tuple, object] = {}


def _build_rank(unsigned: type, m: int, inner_axis: bool):
    key = make_key_function(unsigned)
    absmask, inf = float_masks(unsigned)

    @numba.njit(parallel=True, nogil=True)
    def rank_rows(bits, n, mode, use_abs, out):
        rows, length = bits.shape
        nan = np.zeros(max(rows, 1), np.bool_)
        for r in numba.prange(rows):
            bad = False
            for g in range(length // m):
                base = g * m
                for j in range(m):
                    b = bits[r, base + j]
                    bad |= (b & absmask) > inf
                    kj = key(b, mode, use_abs)
                    rank = 0
                    for t in range(m):
                        kt = key(bits[r, base + t], mode, use_abs)
                        rank += (kt < kj) | ((kt == kj) & (t < j))
                    out[r, base + j] = rank >= n
            nan[r] = bad
        return nan.any()

    @numba.njit(parallel=True, nogil=True)
    def rank_inner(bits, n, mode, use_abs, out):
        outer, length, inner = bits.shape
        groups = length // m
        units = outer * groups
        nan = np.zeros(max(units, 1), np.bool_)
        for u in numba.prange(units):
            r = u // groups
            base = (u % groups) * m
            bad = False
            for i in range(inner):
                for j in range(m):
                    b = bits[r, base + j, i]
                    bad |= (b & absmask) > inf
                    kj = key(b, mode, use_abs)
                    rank = 0
                    for t in range(m):
                        kt = key(bits[r, base + t, i], mode, use_abs)
                        rank += (kt < kj) | ((kt == kj) & (t < j))
                    out[r, base + j, i] = rank >= n
            nan[u] = bad
        return nan.any()

    return rank_inner if inner_axis else rank_rows


def _build_select(unsigned: type):
    key = make_key_function(unsigned)
    absmask, inf = float_masks(unsigned)

    @numba.njit(inline="always", nogil=True)
    def nth_smallest(src, lower, upper, m, target):
        # quickselect that partitions out of place, without branches on the data:
        # src splits into lower (< pivot) and upper (> pivot); keys equal to the
        # pivot are only counted, so runs of them end the search, not stall it.
        # Returns the key of rank `target` and how many keys are smaller.
        size = m
        below = 0
        while size > 1:
            a = src[0]
            b = src[size >> 1]
            c = src[size - 1]
            pivot = max(min(a, b), min(max(a, b), c))
            nl = 0
            nu = 0
            for t in range(size):
                v = src[t]
                lower[nl] = v
                upper[nu] = v
                nl += v < pivot
                nu += v > pivot
            if target < nl:
                src, lower = lower, src
                size = nl
            elif target < size - nu:
                return pivot, below + nl
            else:
                target -= size - nu
                below += size - nu
                src, upper = upper, src
                size = nu
        return src[0], below

    @numba.njit(parallel=True, nogil=True)
    def select(bits, n, mode, use_abs, out):
        # bits, out: (units, m, inner); loops index chunk slices from zero, so
        # the compiler drops negative-index checks
        units, m, inner = bits.shape
        nchunks = max(1, min(units, 16 * numba.get_num_threads()))
        step = (units + nchunks - 1) // nchunks
        nan = np.zeros(nchunks, np.bool_)
        for c in numba.prange(nchunks):
            start = c * step
            stop = min(units, start + step)
            src = bits[start:stop]
            dst = out[start:stop]
            keys = np.empty(m, bits.dtype)
            w0 = np.empty(m, bits.dtype)
            w1 = np.empty(m, bits.dtype)
            w2 = np.empty(m, bits.dtype)
            bad = False
            for u in range(stop - start):
                for i in range(inner):
                    for j in range(m):
                        b = src[u, j, i]
                        bad |= (b & absmask) > inf
                        k = key(b, mode, use_abs)
                        keys[j] = k
                        w0[j] = k
                    t, below = nth_smallest(w0, w1, w2, m, n - 1)
                    ties = n - below  # keys equal to t still to prune, first positions first
                    for j in range(m):
                        k = keys[j]
                        equal = k == t
                        dst[u, j, i] = not ((k < t) | (equal & (ties > 0)))
                        ties -= equal
            nan[c] = bad
        return nan.any()

    return select


def _split_rows(bits2: np.ndarray, out2: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut long rows into shorter ones (whole groups each) so threads share the work."""
    rows, length = bits2.shape
    groups = length // m
    if rows >= _MIN_ROWS or groups <= 1 or not bits2.flags.c_contiguous:
        return bits2, out2
    want = -(-_MIN_ROWS // rows)
    parts = next((d for d in range(want, groups + 1) if groups % d == 0), groups)
    shape = (rows * parts, length // parts)
    return bits2.reshape(shape), out2.reshape(shape)


def nm_keep(scores3: np.ndarray, n: int, m: int, magnitude: bool) -> tuple[np.ndarray, bool]:
    """Keep-mask with ``n`` zeros in each group of ``m`` along axis 1 of ``(outer, L, inner)``.

    Returns ``(mask, has_nan)``; the mask is meaningless when ``has_nan``.
    """
    bits, mode = as_bits(scores3)
    unsigned = bits.dtype.type
    out = np.empty(bits.shape, dtype=np.bool_)
    if bits.size == 0:
        return out, False
    if n in (0, m):
        out[...] = n == 0
        return out, bool(mode == FLOAT and np.isnan(scores3).any())
    outer, length, inner = bits.shape
    if m in _RANK_M:
        inner_axis = inner > 1
        spec = (unsigned, m, inner_axis)
        if spec not in _kernels:
            _kernels[spec] = _build_rank(unsigned, m, inner_axis)
        if inner_axis:
            has_nan = _kernels[spec](bits, n, mode, magnitude, out)
        else:
            b2, o2 = _split_rows(bits.reshape(outer, length), out.reshape(outer, length), m)
            has_nan = _kernels[spec](b2, n, mode, magnitude, o2)
    else:
        spec = (unsigned, "select")
        if spec not in _kernels:
            _kernels[spec] = _build_select(unsigned)
        shape3 = (outer * (length // m), m, inner)
        has_nan = _kernels[spec](bits.reshape(shape3), n, mode, magnitude, out.reshape(shape3))
    return out, bool(mode == FLOAT and has_nan)
