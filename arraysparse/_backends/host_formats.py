"""The host codecs of the sparse formats and of CUTLASS's 2:4 layout: Numba kernels on exact bits.

Values move bit for bit: a :class:`.bridge.Host` views the data with its own
dtype (bfloat16 and the ml_dtypes types as their unsigned bits) and the
kernels read it as unsigned integers (:func:`_bits`); "is zero" is one AND
with a mask that clears the sign bit of floats, so -0.0 is a zero, as in
scipy.sparse (the ``fnuz`` float8 types have no -0.0: their 0x80 is NaN, a
non-zero). Compression is two passes: the
``count_*`` jobs count, the format sizes its outputs from the counts (index
dtype, ELL width), the ``encode_*`` jobs fill; every output is allocated once.
Decoders write into a fresh array or into the caller's buffer (``Host.target``).

Kernel modules are imported on first use. Positions and codes of the CUTLASS
layout are computed by :mod:`.reference_formats`' standard functions, run on
the NumPy view.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._compat import array_namespace
from . import reference_formats
from .bridge import Host, bits_view, host_view, wrap
from .shared import Violation, nm_group_positions

Array = Any


def _bits(h: Host, a: np.ndarray | None = None) -> tuple[np.ndarray, Any]:
    """Unsigned view of ``a`` (default: the values of ``h``) and its zero mask."""
    from .._kernels.cpu.sparse import value_bits

    a = h.values if a is None else a
    u, mask = value_bits(a)
    if h.nonzero_bits is not None:  # bits carried as unsigned integers (bfloat16, float8, ...)
        mask = u.dtype.type(h.nonzero_bits)
    return u, mask


def _zeros(h: Host, shape: tuple[int, ...]) -> np.ndarray:
    """A zeroed dense output: the target cleared in parallel, or ``np.zeros`` (for large
    outputs fresh pages the OS zeroes on first touch, so nothing is written twice)."""
    if h.target is not None:
        from .._kernels.cpu.sparse import zero_rows

        zero_rows(_bits(h, h.target)[0])
        return h.target
    return np.zeros(shape, h.values.dtype)


def _indptr(counts: np.ndarray, dtype: Any) -> np.ndarray:
    out = np.empty(counts.shape[0] + 1, dtype)
    out[0] = 0
    np.cumsum(counts, out=out[1:])
    return out


def count_nonzero(values: Array) -> int:
    """Non-zeros among ``values`` (1- to 8-byte items)."""
    u, mask = _bits(Host.of(values))
    return int(np.count_nonzero(u & mask))


# -- COO, CSR, CSC --------------------------------------------------------------------------
def count_rows(x2: Array) -> tuple[int, Any]:
    """``(nnz, state)``: the non-zeros of every row of the 2-D ``x2``."""
    from .._kernels.cpu import sparse

    h = Host.of(x2)
    u, mask = _bits(h)
    counts = sparse.row_counts(u, mask)
    return int(counts.sum()), (h, u, mask, counts)


def encode_csr(counted: Any, index: str, *, coo: bool) -> tuple[Array, Array, Array]:
    """``(indptr, indices, data)``, or with ``coo`` ``(row, col, data)``."""
    from .._kernels.cpu import sparse

    h, u, mask, counts = counted.state
    nnz = counted.nnz
    idt = np.dtype(index)
    indptr = _indptr(counts, idt)
    indices = np.empty(nnz, idt)
    data = np.empty(nnz, u.dtype)
    row_ids = np.empty(nnz if coo else 0, idt)
    sparse.csr_fill(u, mask, indptr, indices, data, row_ids)
    first = row_ids if coo else indptr
    return h.wrap_index(first), h.wrap_index(indices), h.wrap_values(data)


def count_cols(x2: Array) -> tuple[int, Any]:
    """``(nnz, state)``: the non-zeros of every column of the 2-D ``x2``."""
    from .._kernels.cpu import sparse

    h = Host.of(x2)
    u, mask = _bits(h)
    counts = sparse.col_counts(u, mask)
    return int(counts.sum()), (h, u, mask, counts)


def encode_csc(counted: Any, index: str) -> tuple[Array, Array, Array]:
    """``(indptr, indices, data)`` column by column; ``indices`` are row numbers."""
    from .._kernels.cpu import sparse

    h, u, mask, counts = counted.state
    idt = np.dtype(index)
    indptr = _indptr(counts, idt)
    indices = np.empty(counted.nnz, idt)
    data = np.empty(counted.nnz, u.dtype)
    sparse.csc_fill(u, mask, indptr, indices, data)
    return h.wrap_index(indptr), h.wrap_index(indices), h.wrap_values(data)


def decode_compressed(h: Host, fmt: str, arrays: dict, shape2: tuple[int, int]) -> Array:
    """Dense 2-D array of a COO / CSR / CSC result."""
    from .._kernels.cpu import sparse

    du, _ = _bits(h, h.view(arrays["data"]))
    clear = fmt == "csr" and h.target is not None  # the CSR kernel clears rows itself
    out = h.empty_values(shape2) if clear else _zeros(h, shape2)
    ou = out.view(du.dtype)
    if fmt == "csr":
        sparse.csr_scatter(h.view(arrays["indptr"]), h.view(arrays["indices"]), du, ou, clear)
    elif fmt == "csc":
        sparse.csc_scatter(h.view(arrays["indptr"]), h.view(arrays["indices"]), du, ou)
    else:
        sparse.coo_scatter(h.view(arrays["row"]), h.view(arrays["col"]), du, ou)
    return h.wrap_values(out)


# -- BSR ----------------------------------------------------------------------------------
def count_blocks(x2: Array, br: int, bc: int) -> tuple[int, Any]:
    """``(nblocks, state)``: the ``(br, bc)`` blocks of ``x2`` holding a non-zero."""
    from .._kernels.cpu import sparse

    h = Host.of(x2)
    u, mask = _bits(h)
    flags = sparse.block_flags(u, mask, br, bc)
    counts = flags.sum(axis=1, dtype=np.int64)
    return int(counts.sum()), (h, u, flags, counts, br, bc)


def encode_bsr(counted: Any, index: str) -> tuple[Array, Array, Array]:
    """``(indptr, indices, data)`` of the non-zero blocks, block row by block row."""
    from .._kernels.cpu import sparse

    h, u, flags, counts, br, bc = counted.state
    idt = np.dtype(index)
    indptr = _indptr(counts, idt)
    indices = np.empty(counted.nnz, idt)
    data = np.empty((counted.nnz, br, bc), u.dtype)
    sparse.bsr_fill(u, flags, indptr, indices, data)
    return h.wrap_index(indptr), h.wrap_index(indices), h.wrap_values(data)


def decode_bsr(h: Host, arrays: dict, shape2: tuple[int, int]) -> Array:
    from .._kernels.cpu import sparse

    du, _ = _bits(h, h.view(arrays["data"]))
    out = h.empty_values(shape2)  # the kernel writes the zeros too
    sparse.bsr_scatter(h.view(arrays["indptr"]), h.view(arrays["indices"]), du, out.view(du.dtype))
    return h.wrap_values(out)


# -- ELL ----------------------------------------------------------------------------------
def count_row_lengths(x2: Array) -> tuple[int, int, int, Any]:
    """``(nnz, longest, first_longest, state)``: the row counts and the longest row."""
    from .._kernels.cpu import sparse

    h = Host.of(x2)
    u, mask = _bits(h)
    counts = sparse.row_counts(u, mask)
    rows = counts.shape[0]
    longest = int(counts.max()) if rows else 0
    first = int(np.argmax(counts)) if rows else 0
    return int(counts.sum()), longest, first, (h, u, mask, counts)


def encode_ell(counted: Any, width: int, index: str) -> tuple[Array, Array]:
    """``(indices, data)`` of shape ``(rows, width)``, padding index -1 and value 0."""
    from .._kernels.cpu import sparse

    h, u, mask, counts = counted.state
    nnz, rows = counted.nnz, counts.shape[0]
    idt = np.dtype(index)
    indptr = np.zeros(rows + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    col = np.empty(nnz, idt)
    val = np.empty(nnz, u.dtype)
    row_ids = np.empty(nnz, idt)
    sparse.csr_fill(u, mask, indptr, col, val, row_ids)
    slot = np.arange(nnz) - indptr[row_ids]
    indices = np.full((rows, width), -1, idt)
    data = np.zeros((rows, width), u.dtype)
    indices[row_ids, slot] = col
    data[row_ids, slot] = val
    return h.wrap_index(indices), h.wrap_values(data)


def decode_ell(h: Host, arrays: dict, shape2: tuple[int, int]) -> Array:
    idx = h.view(arrays["indices"])
    d = h.view(arrays["data"])
    out = _zeros(h, shape2)
    r, s = np.nonzero(idx >= 0)
    out[r, idx[r, s]] = d[r, s]
    return h.wrap_values(out)


# -- DIA ----------------------------------------------------------------------------------
def encode_dia(x2: Array, index: str) -> tuple[Array, Array, int]:
    """``(offsets, data, nnz)`` in scipy.sparse's layout."""
    h = Host.of(x2)
    u, mask = _bits(h)
    cols = u.shape[1]
    r, c = np.nonzero(u & mask)
    offs = c - r
    offsets = np.unique(offs)
    data = np.zeros((offsets.shape[0], cols), u.dtype)
    data[np.searchsorted(offsets, offs), c] = u[r, c]
    return h.wrap_index(offsets.astype(np.dtype(index))), h.wrap_values(data), r.shape[0]


def decode_dia(h: Host, arrays: dict, shape2: tuple[int, int]) -> Array:
    rows, cols = shape2
    off = h.view(arrays["offsets"])
    d = h.view(arrays["data"])
    out = _zeros(h, shape2)
    for k, o in enumerate(off.tolist()):
        j = np.arange(max(0, o), min(cols, rows + o))
        out[j - o, j] = d[k, j]
    return h.wrap_values(out)


# -- N:M ----------------------------------------------------------------------------------
# ``lay`` is the format's packing record (arraysparse.formats.nm.PackedLayout).
def encode_nm(x2: Array, lay: Any) -> tuple[Array, Array]:
    """``(values, packed_positions)``; :class:`.shared.Violation` (row, group, non-zeros) for
    the first group holding more than ``m - n`` non-zeros."""
    from .._kernels.cpu import sparse

    h = Host.of(x2)
    u, mask = _bits(h)
    rows, cols = u.shape
    n, m, keep = lay.n, lay.m, lay.keep
    values = np.empty((rows, cols // m * keep), u.dtype)
    packed = np.empty((rows, lay.row_bytes(cols)), np.uint8)  # every byte is written
    bad = np.empty(rows, np.int64)
    if m <= sparse.TABLE_MAX_M and keep:
        table, fits, fields = sparse.nm_table(n, m, lay.field_bits, lay.bitmask)
        sparse.nm_pack_table(u, mask, m, keep, table, fits, fields, lay.group_bits, values, packed, bad)
    else:
        sparse.nm_pack(u, mask, n, m, lay.field_bits, lay.bitmask, values, packed, bad)
    hit = np.flatnonzero(bad >= 0)
    if hit.size:
        r, g = int(hit[0]), int(bad[hit[0]])
        raise Violation(r, g, int(np.count_nonzero(u[r, g * m : g * m + m] & mask)))
    return h.wrap_values(values), h.wrap_index(packed)


def _raise_corrupt(packed: np.ndarray, shape2: tuple[int, int], lay: Any, bad: np.ndarray) -> None:
    """:class:`.shared.Violation` (row, group, positions) for the first group whose field no
    encoder writes, in the first row a decoder flagged in ``bad`` (the decoders count, they
    do not locate: unpacking that row's positions does)."""
    from .._kernels.cpu import sparse

    r = int(np.flatnonzero(bad)[0])
    first = np.empty(1, np.int64)
    scratch = np.empty((1, shape2[1] // lay.m * lay.keep), np.uint8)
    sparse.nm_positions(packed[r : r + 1], lay.m, lay.keep, lay.field_bits, lay.bitmask, scratch, first)
    g = int(first[0])
    raise Violation(r, g, nm_group_positions(lambda j: int(packed[r, j]), g, lay))


def decode_nm(h: Host, arrays: dict, shape2: tuple[int, int], lay: Any) -> Array:
    """The dense matrix; :class:`.shared.Violation` (row, group, positions) for the first group
    whose packed positions no encoder writes."""
    from .._kernels.cpu import sparse

    vu, _ = _bits(h, h.view(arrays["values"]))
    packed = h.view(arrays["packed_positions"])
    out = h.empty_values(shape2)  # the kernel writes the zeros too
    ou = out.view(vu.dtype)
    bad = np.empty(shape2[0], np.int64)
    if lay.m <= sparse.TABLE_MAX_M:
        tables = sparse.nm_unpack_table(lay.m, lay.keep, lay.field_bits, lay.bitmask)
        sparse.nm_scatter_table(vu, packed, lay.m, lay.group_bits, *tables, ou, bad)
    else:
        sparse.nm_scatter(vu, packed, lay.m, lay.field_bits, lay.bitmask, *sparse.set_bit_table(), ou, bad)
    if bad.any():
        _raise_corrupt(packed, shape2, lay, bad)
    return h.wrap_values(out)


def unpack_nm_positions(packed: Array, shape2: tuple[int, int], lay: Any) -> Array:
    """Each kept value's position (uint8, rows x kept columns); :class:`.shared.Violation`
    as :func:`decode_nm`."""
    from .._kernels.cpu import sparse

    p = host_view(packed)
    rows, cols = shape2
    positions = np.empty((rows, cols // lay.m * lay.keep), np.uint8)
    bad = np.empty(rows, np.int64)
    sparse.nm_positions(p, lay.m, lay.keep, lay.field_bits, lay.bitmask, positions, bad)
    hit = np.flatnonzero(bad >= 0)
    if hit.size:
        r, g = int(hit[0]), int(bad[hit[0]])
        raise Violation(r, g, nm_group_positions(lambda j: int(p[r, j]), g, lay))
    return wrap(positions, packed)


# -- bitmask ------------------------------------------------------------------------------
def encode_bitmask(x2: Array) -> tuple[Array, Array, int]:
    """``(values, bitmask, nnz)``: row-major non-zeros and one bit per element."""
    h = Host.of(x2)
    u, mask = _bits(h)
    nz = (u & mask) != 0
    values = u[nz]
    bits = np.packbits(nz, axis=1, bitorder="little")
    return h.wrap_values(values), h.wrap_index(bits), values.shape[0]


def decode_bitmask(h: Host, arrays: dict, shape2: tuple[int, int]) -> Array:
    cols = shape2[1]
    nz = np.unpackbits(h.view(arrays["bitmask"]), axis=1, count=cols, bitorder="little").view(bool)
    out = _zeros(h, shape2)
    out[nz] = h.view(arrays["values"])
    return h.wrap_values(out)


# -- CUTLASS 2:4 --------------------------------------------------------------------------
# Every CUTLASS codec takes ``(xp, *arrays, lay)``, as the reference's; ``xp`` (the caller's
# library) gives the meta dtype, and decode/unpack, whose results follow their input, ignore it.
def cutlass_encode(xp: Any, dense: Array, lay: Any) -> tuple[Array, Array]:
    """``(values, meta)`` of a 2-D ``dense`` of the layout ``lay``; :class:`.shared.Violation`
    (row, group, non-zeros) for the first group with too many non-zeros."""
    from .._kernels.cpu import cutlass as kernels

    bits = bits_view(dense)
    values, meta, bad = kernels.encode(bits, lay.kind)
    if bad.any():
        r = int(np.argmax(bad))
        nonzero = bits[r] != 0 if lay.dtype == "int8" else (bits[r] << 1) != 0  # floats: -0.0 is 0
        counts = np.count_nonzero(nonzero.reshape(-1, lay.m), axis=1)
        g = int(np.argmax(counts > lay.m // 2))
        raise Violation(r, g, int(counts[g]))
    return wrap(values, dense, dense.dtype), wrap(meta, dense, getattr(xp, lay.meta))


def cutlass_decode(xp: Any, values: Array, meta: Array, lay: Any) -> Array:
    """The dense matrix; :class:`.shared.Violation` (row, group, code) for the first code no
    encoder writes."""
    from .._kernels.cpu import cutlass as kernels

    mbits = bits_view(meta)
    dense, bad = kernels.decode(bits_view(values), mbits, lay.kind)
    if bad.any():
        codes = kernels.unpack_codes(mbits, lay.kind)
        reference_formats.cutlass_check_codes(array_namespace(codes=codes), codes.astype(np.int32), lay)
    return wrap(dense, values, values.dtype)


def cutlass_pack(xp: Any, positions: Array, lay: Any) -> Array:
    """Meta in CUTLASS's order from the simple layout's ``positions``; :class:`.shared.Violation`
    (row, group, positions) for the first group out of order or range."""
    from .._kernels.cpu import cutlass as kernels

    h = host_view(positions)
    codes = reference_formats.cutlass_codes(array_namespace(positions=h), h.astype(np.int32), lay)
    meta = kernels.pack_codes(codes.astype(np.uint8), lay.kind)
    return wrap(meta, positions, getattr(xp, lay.meta))


def cutlass_pack_nm(xp: Any, packed: Array, lay: Any) -> Array:
    """Meta in CUTLASS's order from a 2:4 result's ``packed_positions``, whose nibbles are the
    4-bit codes; :class:`.shared.Violation` (row, group, code) for the first code no encoder
    writes."""
    from .._kernels.cpu import cutlass as kernels

    p = host_view(packed)
    rows, nbytes = p.shape
    codes = np.empty((rows, 2 * nbytes), np.uint8)
    np.bitwise_and(p, 15, out=codes[:, 0::2])
    np.right_shift(p, 4, out=codes[:, 1::2])
    bad = (codes & 3) >= (codes >> 2)  # idx0 < idx1, as cutlass_check_codes
    if bad.any():
        r, g = divmod(int(np.argmax(bad)), codes.shape[1])
        raise Violation(r, g, int(codes[r, g]))
    if codes.size:
        meta = kernels.pack_codes(codes, lay.kind)
    else:
        meta = np.empty((rows, 2 * nbytes // lay.codes_per_word), np.dtype(lay.meta))
    return wrap(meta, packed, getattr(xp, lay.meta))


def cutlass_unpack(xp: Any, meta: Array, lay: Any) -> Array:
    """The simple layout's ``positions`` (uint8) from CUTLASS meta; :class:`.shared.Violation`
    (row, group, code) for the first code no encoder writes."""
    from .._kernels.cpu import cutlass as kernels

    codes = kernels.unpack_codes(bits_view(meta), lay.kind).astype(np.int32)
    cxp = array_namespace(codes=codes)
    if codes.shape[0] * codes.shape[1]:
        reference_formats.cutlass_check_codes(cxp, codes, lay)
    return wrap(reference_formats.cutlass_positions(cxp, codes, lay), meta)
