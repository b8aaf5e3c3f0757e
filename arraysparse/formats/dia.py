"""DIA: the diagonals that hold a non-zero, in scipy.sparse's layout.

``offsets`` (ascending; 0 = main diagonal, > 0 above it) and ``data`` of
shape ``(ndiag, cols)`` with ``data[k, j] = A[j - offsets[k], j]``; slots
that fall outside the matrix are 0.
"""

from __future__ import annotations

from typing import Any

from .. import _backends
from .base import index_dtype_name

Array = Any


def encode(xp: Any, x2: Array) -> tuple[dict, dict, int]:
    rows, cols = x2.shape
    offsets, data, nnz = _backends.encode_dia(xp, x2, index_dtype_name(rows, cols))
    return {"offsets": offsets, "data": data}, {}, nnz


def decode(xp: Any, arrays: dict, shape2: tuple[int, int], dtype: Any, target: Any = None) -> Array:
    return _backends.decode_dia(xp, arrays, shape2, dtype, target)
