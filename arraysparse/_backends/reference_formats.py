"""The standard-only codecs of the sparse formats and of CUTLASS's 2:4 layout.

Array API functions only, on the caller's namespace and device: JAX,
array-api-strict, CuPy, torch on CUDA, and complex128 on every library. The
standard has no scatter, so every decoder gathers: each output element looks
up its own source (``searchsorted`` over the stored positions). "Non-zero" is
:func:`arraysparse._compat.nonzero_mask` (exact on JAX's subnormals).

The ``count_*`` / ``encode_*`` pairs mirror the host's two passes, so the
format decides its index dtype (and ELL its width) between them.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from .._compat import count_true, device, int_dtype, nonzero_mask
from .shared import Violation, nm_group_positions

Array = Any


# -- gathers ------------------------------------------------------------------------------
def _gather_rows(xp: Any, keys: Array, values: Array, n: int) -> Array:
    """``(n, w)`` array whose row ``keys[i]`` is ``values[i]``, other rows zero, by gathers only.

    The array API has no scatter; every output row instead looks up its own
    index among ``keys`` (ascending, :func:`_wide` integers) with ``searchsorted``.
    """
    w = values.shape[1]
    dev = device(values)
    if keys.shape[0] == 0 or n == 0:
        return xp.zeros((n, w), dtype=values.dtype, device=dev)
    where = xp.arange(n, dtype=keys.dtype, device=dev)
    slot = xp.clip(xp.searchsorted(keys, where), max=keys.shape[0] - 1)
    hit = xp.take(keys, slot) == where
    zero = xp.zeros((), dtype=values.dtype, device=dev)
    return xp.where(hit[:, None], xp.take(values, slot, axis=0), zero)


def _gather_decode(xp: Any, flat: Array, values: Array, shape: tuple[int, ...]) -> Array:
    """Dense array of ``shape`` from ``values`` at ascending C-order flat positions ``flat``."""
    out = _gather_rows(xp, flat, xp.reshape(values, (-1, 1)), math.prod(shape))
    return xp.reshape(out, shape)


def _take_flat(xp: Any, x2: Array, flat: Array) -> Array:
    """Elements of ``x2`` at C-order flat positions ``flat``."""
    return xp.take(xp.reshape(x2, (-1,)), flat)


def _wide(xp: Any, like: Array, *shape: int) -> Any:
    """The integers of counts and flat positions in an array of ``shape`` (its size + 1 must fit):
    int64, or int32 for JAX without x64 (which refuses sizes beyond it)."""
    return int_dtype(xp, like, math.prod(shape) + 1)


def _index(xp: Any, index: str, like: Array) -> Any:
    """The format's index dtype by name; ``"int64"`` (extents beyond int32) must exist on ``like``'s
    library (JAX without x64 refuses, by :func:`~arraysparse._compat.int_dtype`)."""
    if index == "int64":
        int_dtype(xp, like, 2**31)
    return getattr(xp, index)


def _arange(xp: Any, n: int, like: Array, dtype: Any = None) -> Array:
    return xp.arange(n, dtype=dtype or _wide(xp, like, n), device=device(like))


def _counts_to_indptr(xp: Any, counts: Array, dtype: Any, total: int) -> Array:
    """``[0, cumsum(counts)...]`` in ``dtype``; ``total`` bounds the sum."""
    wide = _wide(xp, counts, total)
    zero = xp.zeros((1,), dtype=wide, device=device(counts))
    if counts.shape[0] == 0:
        return xp.astype(zero, dtype)
    return xp.astype(xp.concat([zero, xp.cumulative_sum(xp.astype(counts, wide))]), dtype)


def _expand_indptr(xp: Any, indptr: Array, nnz: int, like: Array) -> Array:
    """The row (or column) of every entry, from ``indptr``, by a search (no repeat)."""
    p = _arange(xp, nnz, like)
    return xp.searchsorted(xp.astype(indptr, p.dtype), p, side="right") - 1


def count_nonzero(xp: Any, values: Array) -> int:
    """Non-zeros among ``values``."""
    return count_true(xp, nonzero_mask(xp, values))


# -- COO, CSR, CSC --------------------------------------------------------------------------
def count_rows(xp: Any, x2: Array) -> tuple[int, Any]:
    """``(nnz, state)``: the non-zeros of the 2-D ``x2``, in row-major order."""
    nz = nonzero_mask(xp, x2)
    r, c = xp.nonzero(nz)
    return r.shape[0], (xp, x2, nz, r, c)


def encode_csr(counted: Any, index: str, *, coo: bool) -> tuple[Array, Array, Array]:
    """``(indptr, indices, data)``, or with ``coo`` ``(row, col, data)``."""
    xp, x2, nz, r, c = counted.state
    idt = _index(xp, index, x2)
    rows, cols = x2.shape
    wide = _wide(xp, x2, rows, cols)
    data = _take_flat(xp, x2, xp.astype(r, wide) * cols + xp.astype(c, wide))
    if coo:
        return xp.astype(r, idt), xp.astype(c, idt), data
    counts = xp.sum(xp.astype(nz, wide), axis=1)
    return _counts_to_indptr(xp, counts, idt, rows * cols), xp.astype(c, idt), data


def count_cols(xp: Any, x2: Array) -> tuple[int, Any]:
    """``(nnz, state)``: the non-zeros of the 2-D ``x2``, in column-major order."""
    nz_t = nonzero_mask(xp, xp.permute_dims(x2, (1, 0)))
    c, r = xp.nonzero(nz_t)
    return r.shape[0], (xp, x2, nz_t, r, c)


def encode_csc(counted: Any, index: str) -> tuple[Array, Array, Array]:
    """``(indptr, indices, data)`` column by column; ``indices`` are row numbers."""
    xp, x2, nz_t, r, c = counted.state
    idt = _index(xp, index, x2)
    rows, cols = x2.shape
    wide = _wide(xp, x2, rows, cols)
    data = _take_flat(xp, x2, xp.astype(r, wide) * cols + xp.astype(c, wide))
    counts = xp.sum(xp.astype(nz_t, wide), axis=1)
    return _counts_to_indptr(xp, counts, idt, rows * cols), xp.astype(r, idt), data


def decode_compressed(xp: Any, fmt: str, arrays: dict, shape2: tuple[int, int]) -> Array:
    """Dense 2-D array of a COO / CSR / CSC result."""
    cols = shape2[1]
    data = arrays["data"]
    nnz = data.shape[0]
    wide = _wide(xp, data, *shape2)
    if fmt == "coo":
        r, c = xp.astype(arrays["row"], wide), xp.astype(arrays["col"], wide)
    elif fmt == "csr":
        r, c = xp.astype(_expand_indptr(xp, arrays["indptr"], nnz, data), wide), xp.astype(arrays["indices"], wide)
    else:
        c, r = xp.astype(_expand_indptr(xp, arrays["indptr"], nnz, data), wide), xp.astype(arrays["indices"], wide)
    flat = r * cols + c
    if fmt == "csc":
        order = xp.argsort(flat)
        flat, data = xp.take(flat, order), xp.take(data, order)
    return _gather_decode(xp, flat, data, shape2)


# -- BSR ----------------------------------------------------------------------------------
def count_blocks(xp: Any, x2: Array, br: int, bc: int) -> tuple[int, Any]:
    """``(nblocks, state)``: the ``(br, bc)`` blocks of ``x2`` holding a non-zero."""
    rows, cols = x2.shape
    nbr, nbc = rows // br, cols // bc
    x4 = xp.reshape(x2, (nbr, br, nbc, bc))
    flags = xp.any(nonzero_mask(xp, x4), axis=(1, 3))
    bi, bj = xp.nonzero(flags)
    return bi.shape[0], (xp, x4, flags, bi, bj)


def encode_bsr(counted: Any, index: str) -> tuple[Array, Array, Array]:
    """``(indptr, indices, data)`` of the non-zero blocks, block row by block row."""
    xp, x4, flags, bi, bj = counted.state
    nbr, br, nbc, bc = x4.shape
    idt = _index(xp, index, x4)
    wide = _wide(xp, x4, nbr, nbc)
    tiles = xp.reshape(xp.permute_dims(x4, (0, 2, 1, 3)), (nbr * nbc, br, bc))
    data = xp.take(tiles, xp.astype(bi, wide) * nbc + xp.astype(bj, wide), axis=0)
    indptr = _counts_to_indptr(xp, xp.sum(xp.astype(flags, wide), axis=1), idt, nbr * nbc)
    return indptr, xp.astype(bj, idt), data


def decode_bsr(xp: Any, arrays: dict, shape2: tuple[int, int], block: tuple[int, int]) -> Array:
    br, bc = block
    rows, cols = shape2
    nbr, nbc = rows // br, cols // bc
    data = arrays["data"]
    nblocks = data.shape[0]
    wide = _wide(xp, data, nbr, nbc)
    bi = xp.searchsorted(xp.astype(arrays["indptr"], wide), _arange(xp, nblocks, data, wide), side="right") - 1
    flat = bi * nbc + xp.astype(arrays["indices"], wide)
    # the block grid as a (nbr * nbc, br * bc) "matrix" of whole blocks, then back to rows
    grid = _gather_rows(xp, flat, xp.reshape(data, (nblocks, br * bc)), nbr * nbc)
    return xp.reshape(xp.permute_dims(xp.reshape(grid, (nbr, nbc, br, bc)), (0, 2, 1, 3)), shape2)


# -- ELL ----------------------------------------------------------------------------------
def count_row_lengths(xp: Any, x2: Array) -> tuple[int, int, int, Any]:
    """``(nnz, longest, first_longest, state)``: the row counts and the longest row."""
    rows = x2.shape[0]
    nz = nonzero_mask(xp, x2)
    counts = xp.sum(xp.astype(nz, _wide(xp, x2, *x2.shape)), axis=1)
    nnz = int(xp.sum(counts))
    longest = int(xp.max(counts)) if rows else 0
    first = int(xp.argmax(counts)) if rows else 0
    return nnz, longest, first, (xp, x2, nz, counts)


def encode_ell(counted: Any, width: int, index: str) -> tuple[Array, Array]:
    """``(indices, data)`` of shape ``(rows, width)``, padding index -1 and value 0."""
    xp, x2, nz, counts = counted.state
    rows, cols = x2.shape
    wide = _wide(xp, x2, rows, 2 * cols)  # flat positions, and keys up to 2 * cols
    pos = _arange(xp, cols, x2, wide)
    # non-zeros first in column order, then the zeros: a stable sort on one key
    key = xp.where(nz, pos, pos + cols)
    order = xp.argsort(key, axis=1, stable=True)[:, : min(width, cols)]
    valid = _arange(xp, order.shape[1], x2, wide) < counts[:, None]
    flat = _arange(xp, rows, x2, wide)[:, None] * cols + xp.astype(order, wide)
    zero = xp.zeros((), dtype=x2.dtype, device=device(x2))
    data = xp.where(valid, xp.reshape(_take_flat(xp, x2, xp.reshape(flat, (-1,))), order.shape), zero)
    indices = xp.where(valid, order, -1)
    if width > cols:  # more slots than columns: all padding beyond
        extra = (rows, width - cols)
        data = xp.concat([data, xp.zeros(extra, dtype=x2.dtype, device=device(x2))], axis=1)
        indices = xp.concat([indices, xp.full(extra, -1, dtype=indices.dtype, device=device(x2))], axis=1)
    return xp.astype(indices, _index(xp, index, x2)), data


def decode_ell(xp: Any, arrays: dict, shape2: tuple[int, int]) -> Array:
    rows, cols = shape2
    indices, data = arrays["indices"], arrays["data"]
    size = rows * cols
    wide = _wide(xp, data, 2, size)  # padding sorts past size + row
    idx = xp.astype(indices, wide)
    row = _arange(xp, rows, data, wide)[:, None]
    # padding sorts past every real position; real ones are ascending within a row already
    flat = xp.reshape(xp.where(idx >= 0, row * cols + idx, size + row), (-1,))
    order = xp.argsort(flat, stable=True)
    return _gather_decode(xp, xp.take(flat, order), xp.take(xp.reshape(data, (-1,)), order), shape2)


# -- DIA ----------------------------------------------------------------------------------
def encode_dia(xp: Any, x2: Array, index: str) -> tuple[Array, Array, int]:
    """``(offsets, data, nnz)`` in scipy.sparse's layout."""
    rows, cols = x2.shape
    r, c = xp.nonzero(nonzero_mask(xp, x2))
    wide = _wide(xp, x2, rows, cols)
    offsets = xp.sort(xp.unique_values(xp.astype(c, wide) - xp.astype(r, wide)))
    i = _arange(xp, cols, x2, wide)[None, :] - offsets[:, None]
    inside = (i >= 0) & (i < rows)
    flat = xp.clip(i, 0, max(rows - 1, 0)) * cols + _arange(xp, cols, x2, wide)[None, :]
    zero = xp.zeros((), dtype=x2.dtype, device=device(x2))
    if offsets.shape[0]:
        data = xp.where(inside, xp.reshape(_take_flat(xp, x2, xp.reshape(flat, (-1,))), flat.shape), zero)
    else:
        data = xp.zeros((0, cols), dtype=x2.dtype, device=device(x2))
    return xp.astype(offsets, _index(xp, index, x2)), data, r.shape[0]


def decode_dia(xp: Any, arrays: dict, shape2: tuple[int, int]) -> Array:
    rows, cols = shape2
    offsets, data = arrays["offsets"], arrays["data"]
    ndiag = offsets.shape[0]
    if ndiag == 0 or rows * cols == 0:
        return xp.zeros(shape2, dtype=data.dtype, device=device(data))
    wide = _wide(xp, data, max(rows, ndiag), cols)
    off = xp.astype(offsets, wide)
    diff = _arange(xp, cols, data, wide)[None, :] - _arange(xp, rows, data, wide)[:, None]
    k = xp.clip(xp.searchsorted(off, xp.reshape(diff, (-1,))), max=ndiag - 1)
    hit = xp.take(off, k) == xp.reshape(diff, (-1,))
    col = xp.reshape(xp.broadcast_to(_arange(xp, cols, data, wide)[None, :], shape2), (-1,))
    vals = _take_flat(xp, data, k * cols + col)
    zero = xp.zeros((), dtype=data.dtype, device=device(data))
    return xp.reshape(xp.where(hit, vals, zero), shape2)


# -- N:M ----------------------------------------------------------------------------------
# ``lay`` is the format's packing record (arraysparse.formats.nm.PackedLayout).
def _pack_bits(xp: Any, bits: Array, nbytes: int) -> Array:
    """``(rows, nbytes)`` uint8 holding the 0/1 ``bits`` (rows, t) little-endian, zero-padded."""
    rows, t = bits.shape
    if nbytes * 8 > t:
        bits = xp.concat([bits, xp.zeros((rows, nbytes * 8 - t), dtype=xp.uint8, device=device(bits))], axis=1)
    weights = xp.astype(2 ** _arange(xp, 8, bits), xp.uint8)
    return xp.sum(xp.reshape(bits, (rows, nbytes, 8)) * weights, axis=2, dtype=xp.uint8)


def _unpack_bits(xp: Any, packed: Array, t: int) -> Array:
    """The first ``t`` bits (rows, t) uint8 of little-endian ``packed`` (rows, bytes)."""
    rows, nbytes = packed.shape
    shifts = xp.astype(_arange(xp, 8, packed), xp.uint8)
    bits = (packed[:, :, None] >> shifts) & 1
    return xp.reshape(bits, (rows, nbytes * 8))[:, :t]


def encode_nm(xp: Any, x2: Array, lay: Any) -> tuple[Array, Array]:
    """``(values, packed_positions)``; :class:`.shared.Violation` (row, group, non-zeros) for
    the first group holding more than ``m - n`` non-zeros."""
    rows, cols = x2.shape
    n, m, keep = lay.n, lay.m, lay.keep
    groups = cols // m
    x3 = xp.reshape(x2, (rows, groups, m))
    nz = nonzero_mask(xp, x3)
    wide = _wide(xp, x2, rows, cols)
    counts = xp.sum(xp.astype(nz, wide), axis=2)
    hit = _first(xp, counts > keep)
    if hit is not None:
        raise Violation(*hit, int(counts[hit]))
    # the non-zeros, then as many zeros as the group lacks in the order n, ..., m-1, 0, ..., n-1:
    # rolled by -n that order is ascending, and a running count ranks the zeros in it
    # (positions and ranks fit int16, bits uint8: the intermediates stay small)
    zeros = ~xp.roll(nz, -n, axis=2)
    rank = xp.cumulative_sum(xp.astype(zeros, xp.int16), axis=2)
    pad = zeros & (rank <= xp.astype(keep - counts, xp.int16)[:, :, None])
    taken = nz | xp.roll(pad, n, axis=2)
    pos = _arange(xp, m, x2, xp.int16)
    kept = xp.sort(xp.where(taken, pos, m + pos), axis=2)[:, :, :keep]  # ascending, exactly keep
    base = _arange(xp, rows, x2, wide)[:, None, None] * cols + _arange(xp, groups, x2, wide)[None, :, None] * m
    values = xp.reshape(_take_flat(xp, x2, xp.reshape(base + xp.astype(kept, wide), (-1,))), (rows, groups * keep))
    if lay.bitmask:
        bits = xp.astype(xp.reshape(taken, (rows, groups * m)), xp.uint8)
    else:
        b = lay.position_bits
        bits = (xp.astype(kept, xp.uint8)[:, :, :, None] >> _arange(xp, b, x2, xp.uint8)) & 1
        bits = xp.reshape(bits, (rows, groups * keep * b))
    return values, _pack_bits(xp, bits, lay.row_bytes(cols))


def _kept_positions(xp: Any, packed: Array, shape2: tuple[int, int], lay: Any) -> Array:
    """``(rows, groups, keep)`` int16: each kept value's position, ascending per group;
    :class:`.shared.Violation` (row, group, positions) for the first group whose packed
    field no encoder writes."""
    rows, cols = shape2
    m, keep = lay.m, lay.keep
    groups = cols // m
    pos = _arange(xp, m, packed, xp.int16)  # positions fit int16, bits uint8
    if lay.bitmask:
        mask = xp.reshape(_unpack_bits(xp, packed, groups * m), (rows, groups, m)) == 1
        bad = xp.sum(xp.astype(mask, xp.int16), axis=2) != keep
        kept = xp.sort(xp.where(mask, pos, m + pos), axis=2)[:, :, :keep]
    else:
        b = lay.position_bits
        bits = xp.reshape(_unpack_bits(xp, packed, groups * keep * b), (rows, groups, keep, b))
        kept = xp.sum(bits << _arange(xp, b, packed, xp.uint8), axis=3, dtype=xp.int16)
        bad = xp.any(kept >= m, axis=2)
        if keep > 1:
            bad = bad | xp.any(kept[:, :, 1:] <= kept[:, :, :-1], axis=2)
    hit = _first(xp, bad) if rows * groups else None
    if hit is not None:
        r, g = hit
        raise Violation(r, g, nm_group_positions(lambda j: int(packed[r, j]), g, lay))
    return kept


def decode_nm(xp: Any, arrays: dict, shape2: tuple[int, int], lay: Any) -> Array:
    """The dense matrix; :class:`.shared.Violation` (row, group, positions) for the first group
    whose packed positions no encoder writes."""
    rows, cols = shape2
    values = arrays["values"]
    m, keep = lay.m, lay.keep
    groups = cols // m
    if keep == 0 or rows * cols == 0:
        return xp.zeros(shape2, dtype=values.dtype, device=device(values))
    wide = _wide(xp, values, rows, cols)
    kept = xp.astype(_kept_positions(xp, arrays["packed_positions"], shape2, lay), wide)
    base = _arange(xp, rows, values, wide)[:, None, None] * cols + _arange(xp, groups, values, wide)[None, :, None] * m
    return _gather_decode(xp, xp.reshape(base + kept, (-1,)), xp.reshape(values, (-1,)), shape2)


def unpack_nm_positions(xp: Any, packed: Array, shape2: tuple[int, int], lay: Any) -> Array:
    """Each kept value's position (uint8, rows x kept columns); :class:`.shared.Violation` as
    :func:`decode_nm`."""
    rows, cols = shape2
    kept = _kept_positions(xp, packed, shape2, lay)
    return xp.reshape(xp.astype(kept, xp.uint8), (rows, cols // lay.m * lay.keep))


# -- bitmask ------------------------------------------------------------------------------
def encode_bitmask(xp: Any, x2: Array) -> tuple[Array, Array, int]:
    """``(values, bitmask, nnz)``: row-major non-zeros and one bit per element."""
    rows, cols = x2.shape
    nz = nonzero_mask(xp, x2)
    (flat,) = xp.nonzero(xp.reshape(nz, (-1,)))
    values = _take_flat(xp, x2, flat)
    bits = _pack_bits(xp, xp.astype(nz, xp.uint8), (cols + 7) // 8)
    return values, bits, values.shape[0]


def decode_bitmask(xp: Any, arrays: dict, shape2: tuple[int, int]) -> Array:
    rows, cols = shape2
    values, bits = arrays["values"], arrays["bitmask"]
    nz = _unpack_bits(xp, bits, cols) == 1
    (flat,) = xp.nonzero(xp.reshape(nz, (-1,)))
    return _gather_decode(xp, flat, values, shape2)


# -- CUTLASS 2:4 --------------------------------------------------------------------------
# ``lay`` is the format's layout record (arraysparse.formats.cutlass): dtype name, group
# size m, meta dtype name, codes per meta word, and the interleave's band and interweave.
def _cutlass_arange(xp: ModuleType, n: int, like: Array) -> Array:
    return xp.arange(n, device=device(like))


def meta_sources(xp: ModuleType, lay: Any, rows: int, ncols: int, like: Array) -> Array:
    """For each reordered meta word (flat), the flat index of the meta word it holds."""
    p = _cutlass_arange(xp, rows * ncols, like)
    rr = (p % (2 * rows)) // 2
    cc = (p // (2 * rows)) * 2 + p % 2
    # undo the 2 x 2 transposition, then the row interleave
    down = (rr % 2 == 1) & (cc % 2 == 0)
    up = (rr % 2 == 0) & (cc % 2 == 1)
    r = xp.where(down, rr - 1, xp.where(up, rr + 1, rr))
    c = xp.where(down, cc + 1, xp.where(up, cc - 1, cc))
    band, iw = lay.band, lay.interweave
    i = r // band * band + (r % iw) * 8 + (r % band) // iw
    return i * ncols + c


def meta_targets(xp: ModuleType, lay: Any, rows: int, ncols: int, like: Array) -> Array:
    """torch's ``_calculate_meta_reordering_scatter_offsets``: where meta word (flat) goes."""
    q = _cutlass_arange(xp, rows * ncols, like)
    i, j = q // ncols, q % ncols
    band, iw = lay.band, lay.interweave
    r = i // band * band + (i % 8) * iw + (i % band) // 8
    tr = (r % 2 == 0) & (j % 2 == 1)
    bl = (r % 2 == 1) & (j % 2 == 0)
    r = xp.where(tr, r + 1, xp.where(bl, r - 1, r))
    j = xp.where(tr, j - 1, xp.where(bl, j + 1, j))
    return (j // 2) * rows * 2 + r * 2 + j % 2


def _pack_codes(xp: ModuleType, codes: Array, lay: Any) -> Array:
    """Codes (rows, groups) int32 -> meta (rows, ncols) in CUTLASS order, lay.meta dtype."""
    rows, groups = codes.shape
    cpw = lay.codes_per_word
    ncols = groups // cpw
    c3 = xp.reshape(codes, (rows, ncols, cpw))
    word = xp.zeros((rows, ncols), dtype=xp.int32, device=device(codes))
    for q in range(cpw - 1):
        word = word | (c3[:, :, q] << (4 * q))
    # the top nibble carries the sign: add it signed so the word fits the signed dtype
    top = c3[:, :, cpw - 1]
    word = word + xp.where(top >= 8, top - 16, top) * (1 << (4 * (cpw - 1)))
    flat = xp.astype(xp.reshape(word, (-1,)), getattr(xp, lay.meta))
    return xp.reshape(xp.take(flat, meta_sources(xp, lay, rows, ncols, codes), axis=0), (rows, ncols))


def _unpack_codes(xp: ModuleType, meta: Array, lay: Any) -> Array:
    """Meta (rows, ncols) in CUTLASS order -> codes (rows, groups) int32."""
    rows, ncols = meta.shape
    flat = xp.take(xp.reshape(meta, (-1,)), meta_targets(xp, lay, rows, ncols, meta), axis=0)
    word = xp.astype(xp.reshape(flat, (rows, ncols)), xp.int32)
    codes = [(word >> (4 * q)) & 15 for q in range(lay.codes_per_word)]
    return xp.reshape(xp.stack(codes, axis=-1), (rows, ncols * lay.codes_per_word))


def _first(xp: ModuleType, flags: Array) -> tuple[int, int] | None:
    """(row, column) of the first true element of a 2-D boolean array, or None."""
    if not bool(xp.any(flags)):
        return None
    flat = int(xp.argmax(xp.astype(xp.reshape(flags, (-1,)), xp.int8)))
    return divmod(flat, int(flags.shape[1]))


def cutlass_check_codes(xp: ModuleType, codes: Array, lay: Any) -> None:
    """:class:`.shared.Violation` (row, group, code) for the first code no encoder writes."""
    if lay.m == 4:
        bad = (codes & 3) >= (codes >> 2)
    else:
        bad = (codes != 4) & (codes != 14)
    hit = _first(xp, bad)
    if hit is not None:
        r, g = hit
        raise Violation(r, g, int(codes[r, g]))


def cutlass_codes(xp: ModuleType, p: Array, lay: Any) -> Array:
    """The 4-bit codes (rows, groups) of int32 ``positions`` (rows, cols / 2);
    :class:`.shared.Violation` (row, group, the group's positions) for the first group
    out of order or range."""
    rows, half = p.shape
    groups = 2 * half // lay.m
    if lay.m == 4:
        p3 = xp.reshape(p, (rows, groups, 2))
        p0, p1 = p3[:, :, 0], p3[:, :, 1]
        bad = (p0 < 0) | (p0 >= p1) | (p1 > 3)
        codes = p0 | (p1 << 2)
    else:
        bad = (p < 0) | (p > 1)
        codes = 4 + 10 * xp.astype(p == 1, xp.int32)
    hit = _first(xp, bad) if groups else None
    if hit is not None:
        r, g = hit
        raise Violation(r, g, [int(v) for v in p[r, g * (lay.m // 2) : (g + 1) * (lay.m // 2)]])
    return codes


def cutlass_positions(xp: ModuleType, codes: Array, lay: Any) -> Array:
    """The simple layout's uint8 ``positions`` (rows, cols / 2) of checked codes (rows, groups)."""
    if lay.m == 4:
        pos = xp.reshape(xp.stack((codes & 3, codes >> 2), axis=-1), (codes.shape[0], codes.shape[1] * 2))
    else:
        pos = xp.astype(codes == 14, xp.int32)
    return xp.astype(pos, xp.uint8)


def _as_bits(xp: ModuleType, x: Array, lay: Any) -> tuple[Array, bool]:
    """``x`` bitcast to signed integers where the library can (``.view``), and whether it was.

    Gathers and selects on integers move bits on every library; on floats
    some (XLA on CPU for bfloat16) canonicalise NaN payloads.
    """
    if lay.dtype == "int8":
        return x, False
    try:
        return x.view(xp.int16 if lay.m == 4 else xp.int32), True
    except (AttributeError, TypeError, ValueError):  # no bitcast in the standard
        return x, False


def cutlass_encode(xp: ModuleType, dense: Array, lay: Any) -> tuple[Array, Array]:
    """``(values, meta)`` of a 2-D, non-empty ``dense``; :class:`.shared.Violation` (row, group,
    non-zeros) for the first group with too many non-zeros."""
    rows, cols = dense.shape
    m = lay.m
    groups = cols // m
    bits, cast = _as_bits(xp, dense, lay)
    b3 = xp.reshape(bits, (rows, groups, m))
    if cast:  # the sign bit does not make a value non-zero: -0.0 == 0
        nz = (b3 & (0x7FFF if m == 4 else 0x7FFFFFFF)) != 0
    else:
        nz = b3 != 0
    counts = xp.sum(xp.astype(nz, xp.int32), axis=2)
    hit = _first(xp, counts > m // 2)
    if hit is not None:
        raise Violation(hit[0], hit[1], int(counts[hit[0], hit[1]]))
    base = xp.reshape(_cutlass_arange(xp, rows * groups, dense), (rows, groups)) * m
    if m == 4:
        # torch's encoder (its Espresso-minimised formulas; m2 is not read)
        m0, m1, m3 = nz[:, :, 0], nz[:, :, 1], nz[:, :, 3]

        def bit(b: Array) -> Array:
            return xp.astype(b, xp.int32)

        i0 = bit(~m0 & m1) + 2 * bit(~m0 & ~m1)
        i1 = bit((m0 & m1) | (~m0 & ~m1) | m3) + 2 * bit((~m0 & m1) | ~m1)
        codes = i0 | (i1 << 2)
        index = xp.stack((base + i0, base + i1), axis=-1)
    else:
        second = ~nz[:, :, 0]
        codes = 4 + 10 * xp.astype(second, xp.int32)
        index = base + xp.astype(second, base.dtype)
    values = xp.reshape(xp.take(xp.reshape(bits, (-1,)), xp.reshape(index, (-1,)), axis=0), (rows, cols // 2))
    if cast:
        values = values.view(dense.dtype)
    return values, _pack_codes(xp, xp.astype(codes, xp.int32), lay)


def cutlass_decode(xp: ModuleType, values: Array, meta: Array, lay: Any) -> Array:
    """The dense matrix of non-empty ``values``; :class:`.shared.Violation` (row, group, code)
    for the first code no encoder writes."""
    rows, half = values.shape
    codes = _unpack_codes(xp, meta, lay)
    cutlass_check_codes(xp, codes, lay)
    groups = half * 2 // lay.m
    bits, cast = _as_bits(xp, values, lay)
    if lay.m == 4:
        v = xp.reshape(bits, (rows, groups, 2))
        v0, v1 = v[:, :, 0], v[:, :, 1]
        zero = xp.zeros_like(v0)
        i0, i1 = codes & 3, codes >> 2
        lanes = [xp.where(i0 == k, v0, xp.where(i1 == k, v1, zero)) for k in range(4)]
    else:
        v = xp.reshape(bits, (rows, groups))
        zero = xp.zeros_like(v)
        second = codes == 14
        lanes = [xp.where(second, zero, v), xp.where(second, v, zero)]
    dense = xp.reshape(xp.stack(lanes, axis=-1), (rows, half * 2))
    return dense.view(values.dtype) if cast else dense


def cutlass_pack(xp: ModuleType, positions: Array, lay: Any) -> Array:
    """Meta in CUTLASS's order from the simple layout's ``positions``; :class:`.shared.Violation`
    (row, group, positions) for the first group out of order or range."""
    rows, half = positions.shape
    codes = cutlass_codes(xp, xp.astype(positions, xp.int32), lay)
    if rows * half == 0:
        return xp.empty((rows, 2 * half // lay.cols_per_word), dtype=getattr(xp, lay.meta),
                        device=device(positions))
    return _pack_codes(xp, xp.astype(codes, xp.int32), lay)


def cutlass_pack_nm(xp: ModuleType, packed: Array, lay: Any) -> Array:
    """Meta in CUTLASS's order from a 2:4 result's ``packed_positions``, whose nibbles are the
    4-bit codes; :class:`.shared.Violation` (row, group, code) for the first code no encoder
    writes."""
    rows, nbytes = packed.shape
    if rows * nbytes == 0:
        return xp.empty((rows, 2 * nbytes // lay.codes_per_word), dtype=getattr(xp, lay.meta),
                        device=device(packed))
    p = xp.astype(packed, xp.int32)
    codes = xp.reshape(xp.stack((p & 15, p >> 4), axis=-1), (rows, 2 * nbytes))
    cutlass_check_codes(xp, codes, lay)
    return _pack_codes(xp, codes, lay)


def cutlass_unpack(xp: ModuleType, meta: Array, lay: Any) -> Array:
    """The simple layout's ``positions`` (uint8) from CUTLASS meta; :class:`.shared.Violation`
    (row, group, code) for the first code no encoder writes."""
    rows, ncols = meta.shape
    cols = ncols * lay.cols_per_word
    if rows * cols == 0:
        return xp.empty((rows, cols // 2), dtype=xp.uint8, device=device(meta))
    codes = _unpack_codes(xp, meta, lay)
    cutlass_check_codes(xp, codes, lay)
    return cutlass_positions(xp, codes, lay)
