"""Compress and decompress kernels of the sparse formats (CSR, CSC, COO, BSR, N:M with packed positions).

Every kernel works on the *bits* of the values: the caller views its data as
unsigned integers of the same width (:func:`value_bits`), so values are moved
bit for bit (float16, bfloat16, NaN payloads all survive) and "is zero" is one
AND: ``(bits & zero_mask) != 0`` with the sign bit cleared for floats, so that
-0.0 counts as zero as it does in scipy.sparse.

Compression is two passes: count per row (or block row, or column), then, after
the caller's prefix sum has sized the outputs exactly once, fill. Both passes
run in parallel over rows. A CSR/COO row under a quarter non-zero is filled
by visiting the set bits of a 64-bit word per 64 columns (vectorised test,
no per-element branch); a denser row writes every element branch-free and
advances over the non-zeros.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from ._jit import kernel, writable
from .bitscan import gather_set_bits

_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def value_bits(a: np.ndarray) -> tuple[np.ndarray, object]:
    """``(bits, zero_mask)`` viewing ``a`` (items of 1, 2, 4 or 8 bytes) as unsigned integers.

    Floats clear the sign bit in the mask (so -0.0 is zero); complex64 clears
    both parts' sign bits; integers and bool use every bit.
    """
    kind, size = a.dtype.kind, a.dtype.itemsize
    unsigned = _UNSIGNED[size]
    a = writable(a)
    if kind == "f":
        mask = (1 << (8 * size - 1)) - 1
    elif kind == "c":
        half = 4 * size
        mask = ((1 << (half - 1)) - 1) | (((1 << (half - 1)) - 1) << half)
    else:
        mask = (1 << (8 * size)) - 1
    return a.view(unsigned), unsigned(mask)


def _chunks(rows: int) -> int:
    return max(1, min(rows, 8 * numba.get_num_threads()))


# -- CSR / COO ----------------------------------------------------------------
@kernel(parallel=True)
def row_counts(u, zero_mask):
    """Non-zeros of every row of the 2-D bits ``u``."""
    rows, cols = u.shape
    out = np.empty(rows, np.int64)
    for r in numba.prange(rows):
        row = u[r]
        c = 0
        for j in range(cols):
            c += np.int64((row[j] & zero_mask) != 0)
        out[r] = c
    return out


@kernel(inline="always")
def _fill_row_checked(row, zero_mask, indices, data):
    pos = np.uint64(0)
    for j in range(row.shape[0]):
        v = row[j]
        if (v & zero_mask) != 0:
            indices[pos] = j
            data[pos] = v
            pos += np.uint64(1)


@kernel(inline="always")
def _fill_row_branchless(row, zero_mask, indices, data):
    # writes every element and advances over the non-zeros only: no
    # mispredicted branch on random data; the write after the row's last
    # non-zero lands on the next row's first slot, which that row rewrites.
    # Unsigned positions into slices that start at 0: no wraparound checks.
    pos = np.uint64(0)
    for j in range(row.shape[0]):
        v = row[j]
        indices[pos] = j
        data[pos] = v
        pos += np.uint64((v & zero_mask) != 0)


@kernel(inline="always")
def _fill_row_sparse(row, zero_mask, indices, data):
    # for rows mostly zero: blocks of 64 are tested branch-free (vectorised)
    # into a 64-bit word of non-zeros, whose set bits alone are then visited
    pos = 0
    for b0 in range(0, row.shape[0], 64):
        block = row[b0 : min(row.shape[0], b0 + 64)]
        word = np.uint64(0)
        for t in range(block.shape[0]):
            word |= np.uint64((block[t] & zero_mask) != 0) << np.uint64(t)
        pos = gather_set_bits(word, block, b0, indices, data, pos)


def csr_fill(u, zero_mask, indptr, indices, data, row_ids) -> None:
    """Fill CSR ``indices``/``data`` (and COO ``row_ids`` unless it is empty)."""
    _csr_fill(u, zero_mask, indptr, indices, data, row_ids, _chunks(u.shape[0]))


@kernel(parallel=True)
def _csr_fill(u, zero_mask, indptr, indices, data, row_ids, nchunks):
    rows, cols = u.shape
    step = (rows + nchunks - 1) // nchunks
    for c in numba.prange(nchunks):
        r0 = c * step
        r1 = min(rows, r0 + step)
        for r in range(r0, r1):
            start, end = indptr[r], indptr[r + 1]
            if 4 * (end - start) < cols:  # under 25% non-zeros: visit the non-zeros only
                _fill_row_sparse(u[r], zero_mask, indices[start:end], data[start:end])
            # branch-free only where the overshoot slot belongs to a later row of this chunk
            elif end < indptr[r1]:
                _fill_row_branchless(u[r], zero_mask, indices[start:], data[start:])
            else:
                _fill_row_checked(u[r], zero_mask, indices[start:], data[start:])
            if row_ids.shape[0]:
                row_ids[start:end] = r


@kernel(parallel=True)
def zero_rows(out):
    """Clear the 2-D ``out`` in parallel over rows."""
    for r in numba.prange(out.shape[0]):
        out[r, :] = 0


@kernel(parallel=True)
def csr_scatter(indptr, indices, data, out, clear):
    """Write the CSR entries into the 2-D ``out``, in parallel over rows.

    ``clear=False``: ``out`` comes zeroed (``np.zeros``, whose fresh pages the
    OS zeroes on first touch) and only the non-zeros are written.
    ``clear=True``: ``out`` holds anything (a caller's buffer) and each row
    is cleared just before its scatter, while it sits in cache.
    """
    for r in numba.prange(out.shape[0]):
        row = out[r]
        if clear:
            row[:] = 0
        start, end = indptr[r], indptr[r + 1]
        ind = indices[start:end]
        dat = data[start:end]
        for p in range(end - start):
            row[ind[p]] = dat[p]


@kernel(parallel=True)
def coo_scatter(row_ids, col_ids, data, out):
    """Write COO entries (no duplicates) into the zeroed 2-D ``out``."""
    for p in numba.prange(data.shape[0]):
        out[row_ids[p], col_ids[p]] = data[p]


# -- CSC: parallel over column panels, reading rows contiguously ----------------
_PANEL = 256


@kernel(parallel=True)
def col_counts(u, zero_mask):
    """Non-zeros of every column of the 2-D bits ``u``."""
    rows, cols = u.shape
    out = np.zeros(cols, np.int64)
    npanels = (cols + _PANEL - 1) // _PANEL
    for p in numba.prange(npanels):
        j0 = p * _PANEL
        j1 = min(cols, j0 + _PANEL)
        acc = out[j0:j1]
        for r in range(rows):
            seg = u[r, j0:j1]
            for j in range(j1 - j0):
                acc[j] += np.int64((seg[j] & zero_mask) != 0)
    return out


@kernel(parallel=True)
def csc_fill(u, zero_mask, indptr, indices, data):
    """Fill CSC ``indices`` (row numbers) and ``data`` column by column."""
    rows, cols = u.shape
    npanels = (cols + _PANEL - 1) // _PANEL
    for p in numba.prange(npanels):
        j0 = p * _PANEL
        j1 = min(cols, j0 + _PANEL)
        cursor = indptr[j0:j1].copy()
        for r in range(rows):
            seg = u[r, j0:j1]
            for j in range(j1 - j0):
                v = seg[j]
                if (v & zero_mask) != 0:
                    k = cursor[j]
                    indices[k] = r
                    data[k] = v
                    cursor[j] = k + 1


@kernel(parallel=True)
def csc_scatter(indptr, indices, data, out):
    """Write the CSC entries into the zeroed 2-D ``out``."""
    for j in numba.prange(out.shape[1]):
        for p in range(indptr[j], indptr[j + 1]):
            out[indices[p], j] = data[p]


# -- BSR ----------------------------------------------------------------------
@kernel(parallel=True)
def block_flags(u, zero_mask, br, bc):
    """``flags[i, j]`` = 1 where block (i, j) of shape (br, bc) holds a non-zero."""
    rows, cols = u.shape
    nbr, nbc = rows // br, cols // bc
    flags = np.zeros((nbr, nbc), np.uint8)
    for i in numba.prange(nbr):
        for j in range(nbc):
            hit = False
            for a in range(br):
                seg = u[i * br + a, j * bc : (j + 1) * bc]
                for b in range(bc):
                    if (seg[b] & zero_mask) != 0:
                        hit = True
                        break
                if hit:
                    break
            flags[i, j] = hit
    return flags


@kernel(parallel=True)
def bsr_fill(u, flags, indptr, indices, data):
    """Copy the flagged blocks into ``data`` (nblocks, br, bc), block columns into ``indices``."""
    nbr, nbc = flags.shape
    br, bc = data.shape[1], data.shape[2]
    for i in numba.prange(nbr):
        k = indptr[i]
        for j in range(nbc):
            if flags[i, j]:
                indices[k] = j
                blk = data[k]
                for a in range(br):
                    src = u[i * br + a, j * bc : (j + 1) * bc]
                    dst = blk[a]
                    for b in range(bc):
                        dst[b] = src[b]
                k += 1


@kernel(parallel=True)
def bsr_scatter(indptr, indices, data, out):
    """Write the BSR matrix into the 2-D ``out`` (zeros included)."""
    br, bc = data.shape[1], data.shape[2]
    for i in numba.prange(indptr.shape[0] - 1):
        out[i * br : (i + 1) * br] = 0
        for k in range(indptr[i], indptr[i + 1]):
            j = indices[k]
            blk = data[k]
            for a in range(br):
                dst = out[i * br + a, j * bc : (j + 1) * bc]
                src = blk[a]
                for b in range(bc):
                    dst[b] = src[b]


# -- N:M ----------------------------------------------------------------------
# The positions of a row are packed into one little-endian bit stream (the layout is
# documented in arraysparse.formats.nm): bit k of the stream is bit k % 8 of byte
# k // 8, fields are written lowest bit first, and the last byte is padded with zero
# bits. A field is either one kept value's position (``bits`` = ceil(log2 m) bits, the
# positions layout) or one mask bit per slot of the group (the bitmask layout). The
# pack and unpack run inside the compress and decompress loops: no array of one byte
# per position is ever built.


@kernel(inline="always")
def _put_bits(out, at, acc, nacc, field, width):
    # append `width` (<= 8) bits of `field` to the stream; `acc` holds the `nacc` (< 8)
    # bits not yet written, `at` is the next byte of `out`
    acc |= np.uint64(field) << np.uint64(nacc)
    nacc += width
    if nacc >= 8:
        out[at] = np.uint8(acc & np.uint64(0xFF))
        acc >>= np.uint64(8)
        nacc -= 8
        at += 1
    return at, acc, nacc


@kernel(inline="always")
def _get_bits(src, at, acc, nacc, width):
    # the next `width` (<= 8) bits of the stream, the inverse of _put_bits; a byte is
    # read only when needed, so a row's reads end at its last byte
    if nacc < width:
        acc |= np.uint64(src[at]) << np.uint64(nacc)
        at += 1
        nacc += 8
    field = np.int64(acc & ((np.uint64(1) << np.uint64(width)) - np.uint64(1)))
    return field, at, acc >> np.uint64(width), nacc - width


@kernel(parallel=True)
def nm_pack(u, zero_mask, n, m, bits, bitmask, values, packed, bad):
    """Pack each group of ``m`` into its ``m - n`` kept slots and their packed positions.

    Kept slots are the group's non-zeros plus, where it has fewer, zero
    positions taken in the order n, n+1, ..., m-1, 0, ..., n-1 (for 2:4 this is
    the choice CUTLASS's encoder makes), written in ascending position order.
    ``packed`` gets each kept slot's position in ``bits`` bits or, with
    ``bitmask``, one bit per slot (1 = kept). ``bad[r]`` gets the first group of
    row r with more than ``m - n`` non-zeros (-1 if none); such a group is left
    out (the row's stream is then incomplete).
    """
    rows, cols = u.shape
    keep = m - n
    groups = cols // m
    for r in numba.prange(rows):
        row = u[r]
        vrow = values[r]
        prow = packed[r]
        taken = np.zeros(m, np.bool_)
        vbuf = np.empty(m + 1, u.dtype)
        pbuf = np.empty(m + 1, np.int64)
        bad[r] = -1
        at, acc, nacc = 0, np.uint64(0), 0
        for g in range(groups):
            base = g * m
            nnz = 0
            for i in range(m):
                t = (row[base + i] & zero_mask) != 0
                taken[i] = t
                nnz += t
            if nnz > keep:
                if bad[r] < 0:
                    bad[r] = g
                continue
            need = keep - nnz
            i = n
            while need > 0:
                if not taken[i]:
                    taken[i] = True
                    need -= 1
                i += 1
                if i == m:
                    i = 0
            # compact branch-free into the row's scratch (a write per slot, advancing over
            # the kept ones), then copy the kept values out
            c = 0
            for i in range(m):
                vbuf[c] = row[base + i]
                pbuf[c] = i
                c += taken[i]
            vrow[g * keep : (g + 1) * keep] = vbuf[:keep]
            if not bitmask:
                for s in range(keep):
                    at, acc, nacc = _put_bits(prow, at, acc, nacc, pbuf[s], bits)
            else:  # the mask 8 bits at a time
                for q in range(0, m, 8):
                    w = min(8, m - q)
                    chunk = 0
                    for t in range(w):
                        chunk |= np.int64(taken[q + t]) << t
                    at, acc, nacc = _put_bits(prow, at, acc, nacc, chunk, w)
        if nacc > 0:
            prow[at] = np.uint8(acc)


TABLE_MAX_M = 8


@functools.lru_cache(maxsize=64)
def nm_table(n: int, m: int, bits: int, bitmask: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every non-zero bit pattern of a group (m <= 8): its kept positions, whether it
    fits, and the group's packed field (``keep * bits`` bits, or the m-bit mask).

    The same rule as :func:`nm_pack`: non-zeros, then padding from n, n+1, ...
    Cached (the kernels only read the arrays; left writable, since Numba compiles a
    read-only array as another type).
    """
    keep = m - n
    table = np.zeros((1 << m, max(keep, 1)), np.uint8)
    fits = np.zeros(1 << m, np.bool_)
    fields = np.zeros(1 << m, np.uint64)
    pad_order = [*range(n, m), *range(n)]
    for code in range(1 << m):
        kept = [i for i in range(m) if code >> i & 1]
        if len(kept) > keep:
            continue
        fits[code] = True
        kept = sorted(kept + [i for i in pad_order if i not in kept][: keep - len(kept)])
        table[code, :keep] = kept
        if bitmask:
            fields[code] = sum(1 << i for i in kept)
        else:
            fields[code] = sum(p << (s * bits) for s, p in enumerate(kept))
    return table, fits, fields


@kernel(parallel=True)
def nm_pack_table(u, zero_mask, m, keep, table, fits, fields, group_bits, values, packed, bad):
    """:func:`nm_pack` for m <= 8 through a lookup table indexed by the group's non-zero bits:
    its kept slots and its packed field (``group_bits`` <= 8 bits)."""
    rows, cols = u.shape
    groups = cols // m
    for r in numba.prange(rows):
        row = u[r]
        vrow = values[r]
        prow = packed[r]
        first_bad = -1
        at, acc, nacc = 0, np.uint64(0), 0
        for g in range(groups):
            grp = row[g * m : (g + 1) * m]
            code = 0
            for i in range(m):
                code |= np.int64((grp[i] & zero_mask) != 0) << i
            if not fits[code]:
                if first_bad < 0:
                    first_bad = g
                continue
            slots = table[code]
            vout = vrow[g * keep : (g + 1) * keep]
            for s in range(keep):
                vout[s] = grp[slots[s]]
            at, acc, nacc = _put_bits(prow, at, acc, nacc, fields[code], group_bits)
        if nacc > 0:
            prow[at] = np.uint8(acc)
        bad[r] = first_bad


@functools.lru_cache(maxsize=64)
def nm_unpack_table(m: int, keep: int, bits: int, bitmask: bool) -> tuple[np.ndarray, ...]:
    """Decode tables for m <= 8 (a group's field has at most 8 bits). Cached, as :func:`nm_table`.

    ``slots[f]``, ``valid[f]``: the kept positions of the group field ``f`` and
    whether an encoder writes it (positions ascending and below m; a mask of
    ``keep`` bits). Where fields tile a byte (their width divides 8) also, for
    every byte ``b``, the columns of its ``8 / width`` groups' kept values
    relative to the byte's first column (``byte_cols[b]``) and whether all its
    fields are valid (``byte_valid[b]``): a byte is then decoded with one lookup.
    """
    group_bits = m if bitmask else keep * bits
    slots = np.zeros((1 << group_bits, max(keep, 1)), np.uint8)
    valid = np.zeros(1 << group_bits, np.bool_)
    for field in range(1 << group_bits):
        if bitmask:
            kept = [i for i in range(m) if field >> i & 1]
            ok = len(kept) == keep
        else:
            kept = [field >> (s * bits) & ((1 << bits) - 1) for s in range(keep)]
            ok = all(p < m for p in kept) and all(a < b for a, b in zip(kept, kept[1:]))
        if ok:
            valid[field] = True
            slots[field, :keep] = kept
    per = 8 // group_bits if group_bits and 8 % group_bits == 0 else 0
    byte_cols = np.zeros((256 if per else 1, max(per * keep, 1)), np.uint8)
    byte_valid = np.zeros(256 if per else 1, np.bool_)
    for byte in range(256 if per else 0):
        fields = [byte >> (t * group_bits) & ((1 << group_bits) - 1) for t in range(per)]
        byte_valid[byte] = all(valid[f] for f in fields)
        for t, f in enumerate(fields):
            byte_cols[byte, t * keep : (t + 1) * keep] = t * m + slots[f, :keep]
    return slots, valid, byte_cols, byte_valid


@kernel(parallel=True)
def nm_scatter_table(values, packed, m, group_bits, slots, valid, byte_cols, byte_valid, out, bad):
    """Write packed N:M values back into the 2-D ``out`` (zeros included), m <= 8, with the
    tables of :func:`nm_unpack_table`: a byte (``8 / group_bits`` groups) at a time where
    the fields tile bytes, else group by group. ``bad[r]``: how many bytes or groups of
    row r hold a field no encoder writes (they are left zero)."""
    rows = out.shape[0]
    groups = out.shape[1] // m
    keep = values.shape[1] // groups if groups else 0
    per = 8 // group_bits if group_bits and 8 % group_bits == 0 else 0
    whole = groups // per if per else 0  # bytes holding `per` groups
    for r in numba.prange(rows):
        orow = out[r]
        orow[:] = 0
        vrow = values[r]
        prow = packed[r]
        nbad = 0
        for j in range(whole):
            byte = prow[j]
            if not byte_valid[byte]:
                nbad += 1
                continue
            cols = byte_cols[byte]
            dst = orow[j * per * m : (j + 1) * per * m]
            src = vrow[j * per * keep : (j + 1) * per * keep]
            for t in range(per * keep):
                dst[cols[t]] = src[t]
        # the groups after the whole bytes (all of them where fields do not tile bytes)
        at, acc, nacc = whole, np.uint64(0), 0
        for g in range(whole * per, groups):
            field, at, acc, nacc = _get_bits(prow, at, acc, nacc, group_bits)
            if not valid[field]:
                nbad += 1
                continue
            for s in range(keep):
                orow[g * m + slots[field, s]] = vrow[g * keep + s]
        bad[r] = nbad


def set_bit_table() -> tuple[np.ndarray, np.ndarray]:
    """For every byte: the positions of its set bits, lowest first (padded with 0), and
    how many there are."""
    return _SET_BITS, _SET_BIT_COUNTS


_SET_BITS = np.zeros((256, 8), np.uint8)
_SET_BIT_COUNTS = np.zeros(256, np.int64)
for _byte in range(256):
    _set = [i for i in range(8) if _byte >> i & 1]
    _SET_BITS[_byte, : len(_set)] = _set
    _SET_BIT_COUNTS[_byte] = len(_set)
del _byte, _set


@kernel(parallel=True)
def nm_scatter(values, packed, m, bits, bitmask, set_bits, set_bit_counts, out, bad):
    """Write packed N:M values back into the 2-D ``out`` (zeros included), any ``m``.

    A mask is read 8 bits at a time, each chunk's set bits appended to the
    group's list of positions through :func:`set_bit_table` (a fixed 8 writes a
    chunk, so no branch depends on the data); then the values are scattered.
    ``bad[r]``: how many groups of row r hold a field no encoder writes (the
    row's output is then unspecified, but nothing is written outside it).
    """
    rows = out.shape[0]
    groups = out.shape[1] // m
    keep = values.shape[1] // groups if groups else 0
    for r in numba.prange(rows):
        orow = out[r]
        orow[:] = 0
        vrow = values[r]
        prow = packed[r]
        nbad = 0
        at, acc, nacc = 0, np.uint64(0), 0
        if bitmask:
            pos = np.zeros(m + 8, np.int64)
            for g in range(groups):
                c = 0
                for q in range(0, m, 8):
                    chunk, at, acc, nacc = _get_bits(prow, at, acc, nacc, min(8, m - q))
                    cols = set_bits[chunk]
                    for t in range(8):
                        pos[c + t] = q + cols[t]
                    c += set_bit_counts[chunk]
                nbad += c != keep
                for s in range(keep):
                    orow[g * m + pos[s]] = vrow[g * keep + s]
        else:
            top = 0  # the largest position: one check per row that all are below m
            for g in range(groups):
                prev = -1
                for s in range(keep):
                    p, at, acc, nacc = _get_bits(prow, at, acc, nacc, bits)
                    nbad += p <= prev
                    top = max(top, p)
                    prev = p
                    orow[g * m + min(p, m - 1)] = vrow[g * keep + s]
            nbad += top >= m
        bad[r] = nbad


@kernel(parallel=True)
def nm_positions(packed, m, keep, bits, bitmask, positions, bad):
    """Unpack the position of every kept value into ``positions`` (rows, groups * keep)
    uint8; ``bad[r]``: the first group of row r whose field no encoder writes (-1 if none;
    its positions are then unspecified)."""
    rows = positions.shape[0]
    groups = positions.shape[1] // keep if keep else 0
    for r in numba.prange(rows):
        prow = packed[r]
        orow = positions[r]
        first_bad = -1
        at, acc, nacc = 0, np.uint64(0), 0
        for g in range(groups):
            out = orow[g * keep : (g + 1) * keep]
            ok = True
            if bitmask:
                c = 0
                for i in range(m):
                    bit, at, acc, nacc = _get_bits(prow, at, acc, nacc, 1)
                    if bit:
                        out[min(c, keep - 1)] = i
                        c += 1
                ok = c == keep
            else:
                prev = -1
                for s in range(keep):
                    p, at, acc, nacc = _get_bits(prow, at, acc, nacc, bits)
                    ok &= (p > prev) & (p < m)
                    prev = p
                    out[s] = p
            if not ok and first_bad < 0:
                first_bad = g
        bad[r] = first_bad
