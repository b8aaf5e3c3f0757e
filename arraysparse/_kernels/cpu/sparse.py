"""Compress and decompress kernels of the sparse formats (CSR, CSC, COO, BSR, N:M).

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
@kernel(parallel=True)
def nm_pack(u, zero_mask, n, m, values, positions, bad):
    """Pack each group of ``m`` into its ``m - n`` kept slots.

    Kept slots are the group's non-zeros plus, where it has fewer, zero
    positions taken in the order n, n+1, ..., m-1, 0, ..., n-1 (for 2:4 this is
    the choice CUTLASS's encoder makes), written in ascending position order.
    ``bad[r]`` gets the first group of row r with more than ``m - n`` non-zeros
    (-1 if none); such a group is left unfilled.
    """
    rows, cols = u.shape
    keep = m - n
    groups = cols // m
    for r in numba.prange(rows):
        row = u[r]
        vrow = values[r]
        prow = positions[r]
        taken = np.zeros(m, np.bool_)
        bad[r] = -1
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
            out = g * keep
            for i in range(m):
                if taken[i]:
                    vrow[out] = row[base + i]
                    prow[out] = i
                    out += 1


TABLE_MAX_M = 8


def nm_table(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """For every non-zero bit pattern of a group (m <= 8): its kept positions and whether it fits.

    The same rule as :func:`nm_pack`: non-zeros, then padding from n, n+1, ...
    """
    keep = m - n
    table = np.zeros((1 << m, max(keep, 1)), np.uint8)
    fits = np.zeros(1 << m, np.bool_)
    pad_order = [*range(n, m), *range(n)]
    for code in range(1 << m):
        kept = [i for i in range(m) if code >> i & 1]
        if len(kept) > keep:
            continue
        fits[code] = True
        kept += [i for i in pad_order if i not in kept][: keep - len(kept)]
        table[code, :keep] = sorted(kept)
    return table, fits


@kernel(parallel=True)
def nm_pack_table(u, zero_mask, m, keep, table, fits, values, positions, bad):
    """:func:`nm_pack` for m <= 8 through a lookup table indexed by the group's non-zero bits."""
    rows, cols = u.shape
    groups = cols // m
    for r in numba.prange(rows):
        row = u[r]
        vrow = values[r]
        prow = positions[r]
        first_bad = -1
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
            pout = prow[g * keep : (g + 1) * keep]
            for s in range(keep):
                q = slots[s]
                vout[s] = grp[q]
                pout[s] = q
        bad[r] = first_bad


@kernel(parallel=True)
def nm_scatter(values, positions, m, out):
    """Write packed N:M values back into the 2-D ``out`` (zeros included)."""
    rows, kept_cols = values.shape
    groups = out.shape[1] // m
    keep = kept_cols // groups if groups else 0
    for r in numba.prange(rows):
        orow = out[r]
        orow[:] = 0
        vrow = values[r]
        prow = positions[r]
        for g in range(groups):
            for s in range(keep):
                k = g * keep + s
                orow[g * m + prow[k]] = vrow[k]
