"""N:M selection: in every group of ``m`` consecutive elements prune the ``n`` smallest.

The array arrives as a 3-D view ``(outer, length, inner)`` whose middle axis
carries the groups, so any axis is handled without a transpose. Ties inside a
group prune the lower position first, the rule of the unstructured selection.

* ``m`` in (2, 4, 8): each element's rank in its group by branch-free
  comparisons, in a kernel compiled for that ``m`` so the loops unroll and the
  compiler vectorises across groups (groups along the last axis, parallel over
  rows) or across the contiguous trailing axis (groups along an inner axis).
* ``m`` in (16, 32): tiles of 64 groups are transposed into a ``(m, 64)``
  buffer of signed keys, so the count ``L_j = #{t : key_t < key_j}`` of every
  element runs as one vector compare-and-add per ``t`` across 64 groups (the
  ``t`` loop unrolls, ``m`` being a constant of the compiled kernel). A group
  whose counts sum to ``m (m - 1) / 2`` is tie-free, and then ``L_j`` is the
  rank; a group with ties goes to the quickselect below.
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
_TILE_M = (16, 32)
_TILE = 64  # groups per transposed tile (16 and 32 measured slower on AVX2)
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


@numba.njit(inline="always", nogil=True)
def _nth_smallest(src, lower, upper, m, target):
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


@numba.njit(inline="always", nogil=True)
def _keep_above(keys, t, below, n, keep, m):
    """The keep-mask of one group whose ``n``-th smallest key is ``t``, ``below`` keys under it."""
    ties = n - below  # keys equal to t still to prune, first positions first
    for j in range(m):
        k = keys[j]
        equal = k == t
        keep[j] = not ((k < t) | (equal & (ties > 0)))
        ties -= equal


def _build_select(unsigned: type):
    key = make_key_function(unsigned)
    absmask, inf = float_masks(unsigned)

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
            keep = np.empty(m, np.bool_)
            bad = False
            for u in range(stop - start):
                for i in range(inner):
                    for j in range(m):
                        b = src[u, j, i]
                        bad |= (b & absmask) > inf
                        k = key(b, mode, use_abs)
                        keys[j] = k
                        w0[j] = k
                    t, below = _nth_smallest(w0, w1, w2, m, n - 1)
                    _keep_above(keys, t, below, n, keep, m)
                    for j in range(m):
                        dst[u, j, i] = keep[j]
            nan[c] = bad
        return nan.any()

    return select


def _build_tiled(unsigned: type, m: int):
    key = make_key_function(unsigned)
    absmask, inf = float_masks(unsigned)
    signed = np.int32 if unsigned == np.uint32 else np.int64
    sign = unsigned(1 << (np.dtype(unsigned).itemsize * 8 - 1))
    pairs = m * (m - 1) // 2  # sum of the counts L_j of a tie-free group
    tile = _TILE

    @numba.njit(parallel=True, nogil=True)
    def tiled(bits, n, mode, use_abs, out):
        # bits, out: (units, m, inner); a lane is one group, (u, i), taken in
        # flat order so consecutive lanes are adjacent in memory for inner > 1
        units, _, inner = bits.shape
        lanes = units * inner
        ntiles = (lanes + tile - 1) // tile
        nchunks = max(1, min(ntiles, 16 * numba.get_num_threads()))
        step = (ntiles + nchunks - 1) // nchunks
        nan = np.zeros(nchunks, np.bool_)
        for c in numba.prange(nchunks):
            keys = np.empty((m, tile), signed)  # transposed: one row per position
            less = np.empty((m, tile), np.int32)  # L_j: keys strictly smaller
            lane_u = np.empty(tile, np.int64)
            lane_i = np.empty(tile, np.int64)
            w0 = np.empty(m, signed)
            w1 = np.empty(m, signed)
            w2 = np.empty(m, signed)
            col = np.empty(m, signed)
            keep = np.empty(m, np.bool_)
            bad = False
            for tl in range(c * step, min(ntiles, (c + 1) * step)):
                first = tl * tile
                count = min(tile, lanes - first)
                u = first // inner  # one division per tile, then step through the lanes
                i = first % inner
                for g in range(tile):  # a short last tile repeats its last lane
                    lane_u[g] = u
                    lane_i[g] = i
                    if g + 1 < count:
                        i += 1
                        if i == inner:
                            i = 0
                            u += 1
                for g in range(tile):
                    u = lane_u[g]
                    i = lane_i[g]
                    for t in range(m):
                        b = bits[u, t, i]
                        bad |= (b & absmask) > inf
                        keys[t, g] = signed(key(b, mode, use_abs) ^ sign)
                for j in range(m):
                    for g in range(tile):
                        kj = keys[j, g]
                        acc = 0
                        for t in range(m):
                            acc += keys[t, g] < kj
                        less[j, g] = acc
                for g in range(count):
                    u = lane_u[g]
                    i = lane_i[g]
                    total = 0
                    for j in range(m):
                        total += less[j, g]
                    if total == pairs:
                        for j in range(m):
                            out[u, j, i] = less[j, g] >= n
                    else:
                        for j in range(m):
                            col[j] = keys[j, g]
                            w0[j] = keys[j, g]
                        t, below = _nth_smallest(w0, w1, w2, m, n - 1)
                        _keep_above(col, t, below, n, keep, m)
                        for j in range(m):
                            out[u, j, i] = keep[j]
            nan[c] = bad
        return nan.any()

    return tiled


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
    elif m in _TILE_M:
        spec = (unsigned, m, "tiled")
        if spec not in _kernels:
            _kernels[spec] = _build_tiled(unsigned, m)
        shape3 = (outer * (length // m), m, inner)
        has_nan = _kernels[spec](bits.reshape(shape3), n, mode, magnitude, out.reshape(shape3))
    else:
        spec = (unsigned, "select")
        if spec not in _kernels:
            _kernels[spec] = _build_select(unsigned)
        shape3 = (outer * (length // m), m, inner)
        has_nan = _kernels[spec](bits.reshape(shape3), n, mode, magnitude, out.reshape(shape3))
    return out, bool(mode == FLOAT and has_nan)
