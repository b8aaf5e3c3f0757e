"""BSR: the non-zero (r, c) blocks of a matrix, block row by block row.

A block is kept when it holds any non-zero; kept blocks are stored whole
(their zeros included), as scipy.sparse and torch do.
"""

from __future__ import annotations

from typing import Any

from .. import _backends
from .compressed import index_of

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


def encode(xp: Any, x2: Array, *, block: Any = None) -> tuple[dict, dict, int | None]:
    rows, cols = x2.shape
    br, bc = check_block(block, (rows, cols))
    counted, index = index_of(_backends.count_blocks(xp, x2, (br, bc)), rows // br, cols // bc)
    indptr, indices, data = _backends.encode_bsr(counted, index)
    return {"indptr": indptr, "indices": indices, "data": data}, {"block": (br, bc)}, None


def decode(xp: Any, arrays: dict, params: dict, shape2: tuple[int, int], dtype: Any, target: Any = None) -> Array:
    return _backends.decode_bsr(xp, arrays, shape2, params["block"], dtype, target)
