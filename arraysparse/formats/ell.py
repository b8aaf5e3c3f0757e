"""ELL (ELLPACK): a fixed number of slots per row, padded.

``indices`` and ``data`` have shape ``(rows, width)``; row ``r``'s non-zeros
fill its first slots in column order, the rest hold index -1 and value 0
(cuSPARSE's padding convention). ``width`` defaults to the longest row.
"""

from __future__ import annotations

from typing import Any

from .. import _backends
from .._validation import positive_int
from .base import index_dtype_name

Array = Any


def _check_width(width: Any, counts_max: int, first_long_row: Any) -> int:
    if width is None:
        return counts_max
    w = positive_int(width, "width", minimum=0)
    if w < counts_max:
        msg = f"width={w} is too narrow: row {first_long_row} has {counts_max} non-zeros"
        raise ValueError(msg)
    return w


def encode(xp: Any, x2: Array, *, width: Any = None) -> tuple[dict, dict, int]:
    rows, cols = x2.shape
    counted = _backends.count_row_lengths(xp, x2)
    w = _check_width(width, counted.longest, counted.first_longest)
    indices, data = _backends.encode_ell(counted, w, index_dtype_name(counted.nnz, rows, cols, w))
    return {"indices": indices, "data": data}, {"width": w}, counted.nnz


def decode(xp: Any, arrays: dict, shape2: tuple[int, int], dtype: Any, target: Any = None) -> Array:
    return _backends.decode_ell(xp, arrays, shape2, dtype, target)
