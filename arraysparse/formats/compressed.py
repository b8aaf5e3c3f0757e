"""COO, CSR and CSC: one value per non-zero plus its coordinates.

Entries are in row-major order (CSR, COO) or column-major order (CSC), with
no duplicates and no explicit zeros: the canonical form scipy.sparse calls
"sorted indices, no duplicates".
"""

from __future__ import annotations

from typing import Any

from .. import _backends
from .base import index_dtype_name

Array = Any


def encode_rows(xp: Any, x2: Array, *, coo: bool) -> tuple[dict, dict, int]:
    """CSR (``coo=False``) or COO arrays of the 2-D ``x2``."""
    rows, cols = x2.shape
    counted = _backends.count_rows(xp, x2)
    first, indices, data = _backends.encode_csr(counted, index_dtype_name(counted.nnz, rows, cols), coo=coo)
    if coo:
        return {"row": first, "col": indices, "data": data}, {}, counted.nnz
    return {"indptr": first, "indices": indices, "data": data}, {}, counted.nnz


def encode_csc(xp: Any, x2: Array) -> tuple[dict, dict, int]:
    """CSC arrays of the 2-D ``x2``: ``indices`` are row numbers, column by column."""
    rows, cols = x2.shape
    counted = _backends.count_cols(xp, x2)
    indptr, indices, data = _backends.encode_csc(counted, index_dtype_name(counted.nnz, rows, cols))
    return {"indptr": indptr, "indices": indices, "data": data}, {}, counted.nnz


def decode(xp: Any, fmt: str, arrays: dict, shape2: tuple[int, int], dtype: Any, target: Any = None) -> Array:
    """Dense 2-D array of a COO / CSR / CSC result."""
    return _backends.decode_compressed(xp, fmt, arrays, shape2, dtype, target)
