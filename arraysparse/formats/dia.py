"""DIA: the diagonals that hold a non-zero, in scipy.sparse's layout.

``offsets`` (ascending; 0 = main diagonal, > 0 above it) and ``data`` of
shape ``(ndiag, cols)`` with ``data[k, j] = A[j - offsets[k], j]``; slots
that fall outside the matrix are 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._compat import device, nonzero_mask
from ._common import Host, arange, host_array, take_flat
from .base import index_dtype

Array = Any


def encode(xp: Any, x2: Array, h: Host | None) -> tuple[dict, dict, int]:
    rows, cols = x2.shape
    if h is not None:
        u, mask = h.bits()
        r, c = np.nonzero(u & mask)
        offs = c - r
        offsets = np.unique(offs)
        data = np.zeros((offsets.shape[0], cols), u.dtype)
        data[np.searchsorted(offsets, offs), c] = u[r, c]
        idt = index_dtype(np, rows, cols)
        return {"offsets": h.wrap_index(offsets.astype(idt)), "data": h.wrap_values(data)}, {}, r.shape[0]
    r, c = xp.nonzero(nonzero_mask(xp, x2))
    offsets = xp.sort(xp.unique_values(xp.astype(c, xp.int64) - xp.astype(r, xp.int64)))
    i = arange(xp, cols, x2)[None, :] - offsets[:, None]
    inside = (i >= 0) & (i < rows)
    flat = xp.clip(i, 0, max(rows - 1, 0)) * cols + arange(xp, cols, x2)[None, :]
    zero = xp.zeros((), dtype=x2.dtype, device=device(x2))
    if offsets.shape[0]:
        data = xp.where(inside, xp.reshape(take_flat(xp, x2, xp.reshape(flat, (-1,))), flat.shape), zero)
    else:
        data = xp.zeros((0, cols), dtype=x2.dtype, device=device(x2))
    return {"offsets": xp.astype(offsets, index_dtype(xp, rows, cols)), "data": data}, {}, r.shape[0]


def decode(xp: Any, arrays: dict, shape2: tuple[int, int], h: Host | None) -> Array:
    rows, cols = shape2
    offsets, data = arrays["offsets"], arrays["data"]
    if h is not None:
        off = host_array(h, offsets)
        d = host_array(h, data)
        out = h.zeros_values(shape2)
        for k, o in enumerate(off.tolist()):
            j = np.arange(max(0, o), min(cols, rows + o))
            out[j - o, j] = d[k, j]
        return h.wrap_values(out)
    ndiag = offsets.shape[0]
    if ndiag == 0 or rows * cols == 0:
        return xp.zeros(shape2, dtype=data.dtype, device=device(data))
    off = xp.astype(offsets, xp.int64)
    diff = arange(xp, cols, data)[None, :] - arange(xp, rows, data)[:, None]
    k = xp.clip(xp.searchsorted(off, xp.reshape(diff, (-1,))), max=ndiag - 1)
    hit = xp.take(off, k) == xp.reshape(diff, (-1,))
    col = xp.reshape(xp.broadcast_to(arange(xp, cols, data)[None, :], shape2), (-1,))
    vals = take_flat(xp, data, k * cols + col)
    zero = xp.zeros((), dtype=data.dtype, device=device(data))
    return xp.reshape(xp.where(hit, vals, zero), shape2)
