"""BSR: the non-zero (r, c) blocks of a matrix, block row by block row.

A block is kept when it holds any non-zero; kept blocks are stored whole
(their zeros included), as scipy.sparse and torch do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._compat import nonzero_mask
from ._common import (
    Host,
    arange,
    counts_to_indptr,
    gather_rows,
    host_array,
    host_indptr,
)
from .base import index_dtype

Array = Any


def check_block(block: Any, shape2: tuple[int, int]) -> tuple[int, int]:
    """``block`` as two positive ints dividing the 2-D shape."""
    if block is None:
        msg = "BSR needs block=(r, c), the block shape; it must divide the matrix shape"
        raise ValueError(msg)
    try:
        br, bc = (int(b) for b in block)
    except (TypeError, ValueError):
        msg = f"block={block!r} must be a pair of positive ints (r, c)"
        raise TypeError(msg) from None
    if isinstance(block, str) or any(isinstance(b, bool) for b in block) or br < 1 or bc < 1:
        msg = f"block={block!r} must be a pair of positive ints (r, c)"
        raise ValueError(msg)
    rows, cols = shape2
    if rows % br or cols % bc:
        msg = f"block={(br, bc)} does not divide the matrix shape {shape2}"
        raise ValueError(msg)
    return br, bc


def encode(xp: Any, x2: Array, h: Host | None, *, block: Any = None) -> tuple[dict, dict, int | None]:
    rows, cols = x2.shape
    br, bc = check_block(block, (rows, cols))
    nbr, nbc = rows // br, cols // bc
    if h is not None:
        from .._kernels.cpu import sparse

        u, mask = h.bits()
        flags = sparse.block_flags(u, mask, br, bc)
        counts = flags.sum(axis=1, dtype=np.int64)
        nblocks = int(counts.sum())
        idt = index_dtype(np, nblocks, nbr, nbc)
        indptr = host_indptr(counts, idt)
        indices = np.empty(nblocks, idt)
        data = np.empty((nblocks, br, bc), u.dtype)
        sparse.bsr_fill(u, flags, indptr, indices, data)
        arrays = {"indptr": h.wrap_index(indptr), "indices": h.wrap_index(indices), "data": h.wrap_values(data)}
        return arrays, {"block": (br, bc)}, None
    x4 = xp.reshape(x2, (nbr, br, nbc, bc))
    flags = xp.any(nonzero_mask(xp, x4), axis=(1, 3))
    bi, bj = xp.nonzero(flags)
    nblocks = bi.shape[0]
    idt = index_dtype(xp, nblocks, nbr, nbc)
    tiles = xp.reshape(xp.permute_dims(x4, (0, 2, 1, 3)), (nbr * nbc, br, bc))
    data = xp.take(tiles, xp.astype(bi, xp.int64) * nbc + xp.astype(bj, xp.int64), axis=0)
    indptr = counts_to_indptr(xp, xp.sum(xp.astype(flags, xp.int64), axis=1), idt)
    return {"indptr": indptr, "indices": xp.astype(bj, idt), "data": data}, {"block": (br, bc)}, None


def decode(xp: Any, arrays: dict, params: dict, shape2: tuple[int, int], h: Host | None) -> Array:
    br, bc = params["block"]
    rows, cols = shape2
    nbr, nbc = rows // br, cols // bc
    data = arrays["data"]
    if h is not None:
        from .._kernels.cpu import sparse

        du, _ = h.bits(host_array(h, data))
        out = h.empty_values(shape2)  # the kernel writes the zeros too
        sparse.bsr_scatter(host_array(h, arrays["indptr"]), host_array(h, arrays["indices"]), du, out.view(du.dtype))
        return h.wrap_values(out)
    nblocks = data.shape[0]
    bi = xp.searchsorted(xp.astype(arrays["indptr"], xp.int64), arange(xp, nblocks, data), side="right") - 1
    flat = bi * nbc + xp.astype(arrays["indices"], xp.int64)
    # the block grid as a (nbr * nbc, br * bc) "matrix" of whole blocks, then back to rows
    grid = gather_rows(xp, flat, xp.reshape(data, (nblocks, br * bc)), nbr * nbc)
    return xp.reshape(xp.permute_dims(xp.reshape(grid, (nbr, nbc, br, bc)), (0, 2, 1, 3)), shape2)
