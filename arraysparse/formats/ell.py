"""ELL (ELLPACK): a fixed number of slots per row, padded.

``indices`` and ``data`` have shape ``(rows, width)``; row ``r``'s non-zeros
fill its first slots in column order, the rest hold index -1 and value 0
(cuSPARSE's padding convention). ``width`` defaults to the longest row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._compat import device, nonzero_mask
from .._validation import positive_int
from ._common import Host, arange, gather_decode, host_array, take_flat
from .base import index_dtype

Array = Any


def _check_width(width: Any, counts_max: int, first_long_row: Any) -> int:
    if width is None:
        return counts_max
    w = positive_int(width, "width", minimum=0)
    if w < counts_max:
        msg = f"width={w} is too narrow: row {first_long_row} has {counts_max} non-zeros"
        raise ValueError(msg)
    return w


def encode(xp: Any, x2: Array, h: Host | None, *, width: Any = None) -> tuple[dict, dict, int]:
    rows, cols = x2.shape
    if h is not None:
        from .._kernels.cpu import sparse

        u, mask = h.bits()
        counts = sparse.row_counts(u, mask)
        nnz = int(counts.sum())
        longest = int(counts.max()) if rows else 0
        w = _check_width(width, longest, int(np.argmax(counts)) if rows else 0)
        idt = index_dtype(np, nnz, rows, cols, w)
        indptr = np.zeros(rows + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        col = np.empty(nnz, idt)
        val = np.empty(nnz, u.dtype)
        row_ids = np.empty(nnz, idt)
        sparse.csr_fill(u, mask, indptr, col, val, row_ids)
        slot = np.arange(nnz) - indptr[row_ids]
        indices = np.full((rows, w), -1, idt)
        data = np.zeros((rows, w), u.dtype)
        indices[row_ids, slot] = col
        data[row_ids, slot] = val
        return {"indices": h.wrap_index(indices), "data": h.wrap_values(data)}, {"width": w}, nnz
    nz = nonzero_mask(xp, x2)
    counts = xp.sum(xp.astype(nz, xp.int64), axis=1)
    nnz = int(xp.sum(counts))
    longest = int(xp.max(counts)) if rows else 0
    w = _check_width(width, longest, int(xp.argmax(counts)) if rows else 0)
    idt = index_dtype(xp, nnz, rows, cols, w)
    pos = arange(xp, cols, x2)
    # non-zeros first in column order, then the zeros: a stable sort on one key
    key = xp.where(nz, pos, pos + cols)
    order = xp.argsort(key, axis=1, stable=True)[:, : min(w, cols)]
    valid = arange(xp, order.shape[1], x2) < counts[:, None]
    flat = arange(xp, rows, x2)[:, None] * cols + order
    zero = xp.zeros((), dtype=x2.dtype, device=device(x2))
    data = xp.where(valid, xp.reshape(take_flat(xp, x2, xp.reshape(flat, (-1,))), order.shape), zero)
    indices = xp.where(valid, order, -1)
    if w > cols:  # more slots than columns: all padding beyond
        extra = (rows, w - cols)
        data = xp.concat([data, xp.zeros(extra, dtype=x2.dtype, device=device(x2))], axis=1)
        indices = xp.concat([indices, xp.full(extra, -1, dtype=indices.dtype, device=device(x2))], axis=1)
    return {"indices": xp.astype(indices, idt), "data": data}, {"width": w}, nnz


def decode(xp: Any, arrays: dict, shape2: tuple[int, int], h: Host | None) -> Array:
    rows, cols = shape2
    indices, data = arrays["indices"], arrays["data"]
    if h is not None:
        idx = host_array(h, indices)
        d = host_array(h, data)
        out = h.zeros_values(shape2)
        r, s = np.nonzero(idx >= 0)
        out[r, idx[r, s]] = d[r, s]
        return h.wrap_values(out)
    idx = xp.astype(indices, xp.int64)
    size = rows * cols
    row = arange(xp, rows, data)[:, None]
    # padding sorts past every real position; real ones are ascending within a row already
    flat = xp.reshape(xp.where(idx >= 0, row * cols + idx, size + row), (-1,))
    order = xp.argsort(flat, stable=True)
    return gather_decode(xp, xp.take(flat, order), xp.take(xp.reshape(data, (-1,)), order), shape2)
