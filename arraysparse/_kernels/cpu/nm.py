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

from ._jit import Static, kernel, static_value
from .keys import FLOAT, any_key, as_bits, as_key, as_signed, nan_masks, signed_of

_RANK_M = (2, 4, 8)
_TILE_M = (16, 32)
_TILE = 64  # groups per transposed tile (16 and 32 measured slower on AVX2)
_MIN_ROWS = 64  # rows of work wanted for an even split across threads


@kernel(parallel=True)
def _rank_rows(bits, n, mode, use_abs, out, group):
    # group: Static(m), so the rank loops unroll
    m = static_value(group)
    absmask, inf = nan_masks(bits)
    rows, length = bits.shape
    nan = np.zeros(max(rows, 1), np.bool_)
    for r in numba.prange(rows):
        bad = False
        for g in range(length // m):
            base = g * m
            for j in range(m):
                b = bits[r, base + j]
                bad |= (b & absmask) > inf
                kj = any_key(b, mode, use_abs)
                rank = 0
                for t in range(m):
                    kt = any_key(bits[r, base + t], mode, use_abs)
                    rank += (kt < kj) | ((kt == kj) & (t < j))
                out[r, base + j] = rank >= n
        nan[r] = bad
    return nan.any()


@kernel(parallel=True)
def _rank_inner(bits, n, mode, use_abs, out, group):
    m = static_value(group)
    absmask, inf = nan_masks(bits)
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
                kj = any_key(b, mode, use_abs)
                rank = 0
                for t in range(m):
                    kt = any_key(bits[r, base + t, i], mode, use_abs)
                    rank += (kt < kj) | ((kt == kj) & (t < j))
                out[r, base + j, i] = rank >= n
        nan[u] = bad
    return nan.any()


@kernel(inline="always")
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


@kernel(inline="always")
def _keep_above(keys, t, below, n, keep, m):
    """The keep-mask of one group whose ``n``-th smallest key is ``t``, ``below`` keys under it."""
    ties = n - below  # keys equal to t still to prune, first positions first
    for j in range(m):
        k = keys[j]
        equal = k == t
        keep[j] = not ((k < t) | (equal & (ties > 0)))
        ties -= equal


@kernel(parallel=True)
def _select(bits, n, mode, use_abs, out, threads):
    # bits, out: (units, m, inner); loops index chunk slices from zero, so
    # the compiler drops negative-index checks
    absmask, inf = nan_masks(bits)
    units, m, inner = bits.shape
    nchunks = max(1, min(units, 16 * threads))
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
                    k = any_key(b, mode, use_abs)
                    keys[j] = k
                    w0[j] = k
                t, below = _nth_smallest(w0, w1, w2, m, n - 1)
                _keep_above(keys, t, below, n, keep, m)
                for j in range(m):
                    dst[u, j, i] = keep[j]
        nan[c] = bad
    return nan.any()


@kernel(parallel=True)
def _tiled(bits, n, mode, use_abs, out, group, threads):
    # bits, out: (units, m, inner); a lane is one group, (u, i), taken in
    # flat order so consecutive lanes are adjacent in memory for inner > 1.
    # group: Static(m), so the count loops unroll
    m = static_value(group)
    tile = _TILE
    pairs = m * (m - 1) // 2  # sum of the counts L_j of a tie-free group
    absmask, inf = nan_masks(bits)
    sign = as_key(bits, 1) << as_key(bits, bits.itemsize * 8 - 1)
    units, _, inner = bits.shape
    lanes = units * inner
    ntiles = (lanes + tile - 1) // tile
    nchunks = max(1, min(ntiles, 16 * threads))
    step = (ntiles + nchunks - 1) // nchunks
    nan = np.zeros(nchunks, np.bool_)
    for c in numba.prange(nchunks):
        keys = np.empty((m, tile), signed_of(bits))  # transposed: one row per position
        less = np.empty((m, tile), np.int32)  # L_j: keys strictly smaller
        lane_u = np.empty(tile, np.int64)
        lane_i = np.empty(tile, np.int64)
        w0 = np.empty(m, signed_of(bits))
        w1 = np.empty(m, signed_of(bits))
        w2 = np.empty(m, signed_of(bits))
        col = np.empty(m, signed_of(bits))
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
                    keys[t, g] = as_signed(any_key(b, mode, use_abs) ^ sign)
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
    magnitude = bool(magnitude)
    out = np.empty(bits.shape, dtype=np.bool_)
    if bits.size == 0:
        return out, False
    if n in (0, m):
        out[...] = n == 0
        return out, bool(mode == FLOAT and np.isnan(scores3).any())
    outer, length, inner = bits.shape
    shape3 = (outer * (length // m), m, inner)
    threads = numba.get_num_threads()  # read here: inside a kernel it would block caching
    if m in _RANK_M and inner > 1:
        has_nan = _rank_inner(bits, n, mode, magnitude, out, Static(m))
    elif m in _RANK_M:
        b2, o2 = _split_rows(bits.reshape(outer, length), out.reshape(outer, length), m)
        has_nan = _rank_rows(b2, n, mode, magnitude, o2, Static(m))
    elif m in _TILE_M:
        has_nan = _tiled(bits.reshape(shape3), n, mode, magnitude, out.reshape(shape3), Static(m), threads)
    else:
        has_nan = _select(bits.reshape(shape3), n, mode, magnitude, out.reshape(shape3), threads)
    return out, bool(mode == FLOAT and has_nan)
