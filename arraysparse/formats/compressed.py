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


def index_of(counted: _backends.Counted, *extents: int) -> tuple[_backends.Counted, str]:
    """The first pass and the index dtype it gives. A lazy (Dask) pass counts nothing: its
    upper bound decides while it fits int32; beyond, the bands are counted first."""
    index = index_dtype_name(counted.nnz, *extents)
    if index == "int64" and not counted.exact:
        counted = _backends.count_exactly(counted)
        index = index_dtype_name(counted.nnz, *extents)
    return counted, index


def encode_rows(xp: Any, x2: Array, *, coo: bool) -> tuple[dict, dict, int | None]:
    """CSR (``coo=False``) or COO arrays of the 2-D ``x2`` (and their count, if it was taken)."""
    rows, cols = x2.shape
    counted, index = index_of(_backends.count_rows(xp, x2), rows, cols)
    first, indices, data = _backends.encode_csr(counted, index, coo=coo)
    nnz = counted.nnz if counted.exact else None
    if coo:
        return {"row": first, "col": indices, "data": data}, {}, nnz
    return {"indptr": first, "indices": indices, "data": data}, {}, nnz


def encode_csc(xp: Any, x2: Array) -> tuple[dict, dict, int | None]:
    """CSC arrays of the 2-D ``x2``: ``indices`` are row numbers, column by column."""
    rows, cols = x2.shape
    counted, index = index_of(_backends.count_cols(xp, x2), rows, cols)
    indptr, indices, data = _backends.encode_csc(counted, index)
    return {"indptr": indptr, "indices": indices, "data": data}, {}, counted.nnz if counted.exact else None


def decode(xp: Any, fmt: str, arrays: dict, shape2: tuple[int, int], dtype: Any, target: Any = None) -> Array:
    """Dense 2-D array of a COO / CSR / CSC result."""
    return _backends.decode_compressed(xp, fmt, arrays, shape2, dtype, target)
