"""COO, CSR and CSC: one value per non-zero plus its coordinates.

Entries are in row-major order (CSR, COO) or column-major order (CSC), with
no duplicates and no explicit zeros: the canonical form scipy.sparse calls
"sorted indices, no duplicates".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._compat import nonzero_mask
from ._common import (
    Host,
    arange,
    counts_to_indptr,
    gather_decode,
    host_array,
    host_indptr,
    take_flat,
)
from .base import index_dtype

Array = Any


# -- encode ---------------------------------------------------------------------
def encode_rows(xp: Any, x2: Array, h: Host | None, *, coo: bool) -> tuple[dict, dict, int]:
    """CSR (``coo=False``) or COO arrays of the 2-D ``x2``."""
    rows, cols = x2.shape
    if h is not None:
        from .._kernels.cpu import sparse

        u, mask = h.bits()
        counts = sparse.row_counts(u, mask)
        nnz = int(counts.sum())
        idt = index_dtype(np, nnz, rows, cols)
        indptr = host_indptr(counts, idt)
        indices = np.empty(nnz, idt)
        data = np.empty(nnz, u.dtype)
        row_ids = np.empty(nnz if coo else 0, idt)
        sparse.csr_fill(u, mask, indptr, indices, data, row_ids)
        if coo:
            arrays = {"row": h.wrap_index(row_ids), "col": h.wrap_index(indices)}
        else:
            arrays = {"indptr": h.wrap_index(indptr), "indices": h.wrap_index(indices)}
        arrays["data"] = h.wrap_values(data)
        return arrays, {}, nnz
    nz = nonzero_mask(xp, x2)
    r, c = xp.nonzero(nz)
    nnz = r.shape[0]
    idt = index_dtype(xp, nnz, rows, cols)
    data = take_flat(xp, x2, xp.astype(r, xp.int64) * cols + xp.astype(c, xp.int64))
    if coo:
        return {"row": xp.astype(r, idt), "col": xp.astype(c, idt), "data": data}, {}, nnz
    counts = xp.sum(xp.astype(nz, xp.int64), axis=1)
    indptr = counts_to_indptr(xp, counts, idt)
    return {"indptr": indptr, "indices": xp.astype(c, idt), "data": data}, {}, nnz


def encode_csc(xp: Any, x2: Array, h: Host | None) -> tuple[dict, dict, int]:
    """CSC arrays of the 2-D ``x2``: ``indices`` are row numbers, column by column."""
    rows, cols = x2.shape
    if h is not None:
        from .._kernels.cpu import sparse

        u, mask = h.bits()
        counts = sparse.col_counts(u, mask)
        nnz = int(counts.sum())
        idt = index_dtype(np, nnz, rows, cols)
        indptr = host_indptr(counts, idt)
        indices = np.empty(nnz, idt)
        data = np.empty(nnz, u.dtype)
        sparse.csc_fill(u, mask, indptr, indices, data)
        arrays = {"indptr": h.wrap_index(indptr), "indices": h.wrap_index(indices), "data": h.wrap_values(data)}
        return arrays, {}, nnz
    nz_t = nonzero_mask(xp, xp.permute_dims(x2, (1, 0)))
    c, r = xp.nonzero(nz_t)
    nnz = r.shape[0]
    idt = index_dtype(xp, nnz, rows, cols)
    data = take_flat(xp, x2, xp.astype(r, xp.int64) * cols + xp.astype(c, xp.int64))
    counts = xp.sum(xp.astype(nz_t, xp.int64), axis=1)
    return {"indptr": counts_to_indptr(xp, counts, idt), "indices": xp.astype(r, idt), "data": data}, {}, nnz


# -- decode ---------------------------------------------------------------------
def _expand_indptr(xp: Any, indptr: Array, nnz: int, like: Array) -> Array:
    """The row (or column) of every entry, from ``indptr``, by a search (no repeat)."""
    p = arange(xp, nnz, like)
    return xp.searchsorted(xp.astype(indptr, xp.int64), p, side="right") - 1


def decode(xp: Any, fmt: str, arrays: dict, shape2: tuple[int, int], h: Host | None) -> Array:
    """Dense 2-D array of a COO / CSR / CSC result."""
    cols = shape2[1]
    data = arrays["data"]
    if h is not None:
        from .._kernels.cpu import sparse

        du, _ = h.bits(host_array(h, data))
        clear = fmt == "csr" and h.target is not None  # the CSR kernel clears rows itself
        out = h.empty_values(shape2) if clear else h.zeros_values(shape2)
        ou = out.view(du.dtype)
        if fmt == "csr":
            sparse.csr_scatter(host_array(h, arrays["indptr"]), host_array(h, arrays["indices"]), du, ou, clear)
        elif fmt == "csc":
            sparse.csc_scatter(host_array(h, arrays["indptr"]), host_array(h, arrays["indices"]), du, ou)
        else:
            sparse.coo_scatter(host_array(h, arrays["row"]), host_array(h, arrays["col"]), du, ou)
        return h.wrap_values(out)
    nnz = data.shape[0]
    if fmt == "coo":
        r, c = xp.astype(arrays["row"], xp.int64), xp.astype(arrays["col"], xp.int64)
    elif fmt == "csr":
        r, c = _expand_indptr(xp, arrays["indptr"], nnz, data), xp.astype(arrays["indices"], xp.int64)
    else:
        c, r = _expand_indptr(xp, arrays["indptr"], nnz, data), xp.astype(arrays["indices"], xp.int64)
    flat = r * cols + c
    if fmt == "csc":
        order = xp.argsort(flat)
        flat, data = xp.take(flat, order), xp.take(data, order)
    return gather_decode(xp, flat, data, shape2)

