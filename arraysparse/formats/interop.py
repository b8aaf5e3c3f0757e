"""Exchange compressed arrays with scipy.sparse, torch.sparse and cupyx.scipy.sparse.

``to_*`` share the result's arrays where the target library can (no copy for
scipy from NumPy results, torch from torch results); ``from_*`` bring a
foreign sparse object into the canonical form :func:`compress` produces
(sorted, no duplicates, no explicit zeros, index dtype by the int32/int64
rule) without modifying it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _compat
from .base import SparseCompressionResult, SparseFormat, index_dtype

Array = Any

_SCIPY_FORMATS = (SparseFormat.COO, SparseFormat.CSR, SparseFormat.CSC, SparseFormat.BSR, SparseFormat.DIA)
_TORCH_FORMATS = (SparseFormat.COO, SparseFormat.CSR, SparseFormat.CSC, SparseFormat.BSR)
_CUPYX_FORMATS = (SparseFormat.COO, SparseFormat.CSR, SparseFormat.CSC, SparseFormat.DIA)


def _check_format(result: SparseCompressionResult, allowed: tuple[SparseFormat, ...], target: str) -> None:
    if not isinstance(result, SparseCompressionResult):
        msg = f"result must be a SparseCompressionResult, got {type(result).__name__}"
        raise TypeError(msg)
    if result.format not in allowed:
        names = ", ".join(f.value for f in allowed)
        msg = f"{target} has no {result.format} format; compress to one of {names} first"
        raise ValueError(msg)


def _numpy_arrays(result: SparseCompressionResult) -> dict[str, np.ndarray]:
    out = {}
    for name, a in result.arrays.items():
        if _compat.is_numpy(a):
            out[name] = a
        elif _compat.is_torch_cpu_strided(a):
            if str(a.dtype) == "torch.bfloat16":
                msg = "scipy.sparse has no bfloat16; convert the result's dtype first"
                raise TypeError(msg)
            out[name] = a.numpy()
        else:
            msg = (
                f"the result's arrays are {_compat.backend_name(a)} arrays on {_compat.device(a)}; "
                "scipy needs host arrays (use to_cupyx() for CuPy)"
            )
            raise TypeError(msg)
    return out


# -- scipy ------------------------------------------------------------------------
def to_scipy(result: SparseCompressionResult) -> Any:
    """The scipy.sparse array (``coo/csr/csc/bsr/dia_array``) holding the same matrix.

    The matrix is the result's 2-D view (``result.matrix_shape``).
    """
    import scipy.sparse as sp

    _check_format(result, _SCIPY_FORMATS, "scipy.sparse")
    a = _numpy_arrays(result)
    shape = result.matrix_shape
    fmt = result.format
    if fmt is SparseFormat.COO:
        return sp.coo_array((a["data"], (a["row"], a["col"])), shape=shape)
    if fmt is SparseFormat.CSR:
        return sp.csr_array((a["data"], a["indices"], a["indptr"]), shape=shape)
    if fmt is SparseFormat.CSC:
        return sp.csc_array((a["data"], a["indices"], a["indptr"]), shape=shape)
    if fmt is SparseFormat.BSR:
        return sp.bsr_array((a["data"], a["indices"], a["indptr"]), shape=shape, blocksize=result.params["block"])
    return sp.dia_array((a["data"], a["offsets"]), shape=shape)


def from_scipy(matrix: Any, /) -> SparseCompressionResult:
    """A result (NumPy arrays) from any scipy.sparse array or matrix; ``matrix`` is not modified.

    COO, CSR, CSC, BSR and DIA keep their format; other scipy formats
    (LIL, DOK) arrive as CSR.
    """
    import scipy.sparse as sp

    if not sp.issparse(matrix):
        msg = f"matrix must be a scipy.sparse array or matrix, got {type(matrix).__name__}"
        raise TypeError(msg)
    if matrix.ndim != 2:
        msg = f"matrix must be 2-D, got {matrix.ndim}-D"
        raise ValueError(msg)
    fmt = matrix.format if matrix.format in ("coo", "csr", "csc", "bsr", "dia") else "csr"
    shape = tuple(matrix.shape)
    if fmt == "dia":
        return _canonical_dia(matrix, shape)
    m = matrix.asformat(fmt, copy=True)
    m.sum_duplicates()  # also sorts the indices
    m.eliminate_zeros()
    if fmt == "coo":
        nnz = m.nnz
        row, col = m.coords if hasattr(m, "coords") else (m.row, m.col)
        order = np.lexsort((col, row))
        idt = index_dtype(np, nnz, *shape)
        arrays = {"row": row[order].astype(idt), "col": col[order].astype(idt), "data": m.data[order]}
        return SparseCompressionResult("coo", shape, m.dtype, arrays, nnz=nnz)
    if fmt == "bsr":
        br, bc = m.blocksize
        idt = index_dtype(np, m.indices.shape[0], shape[0] // br, shape[1] // bc)
        arrays = {"indptr": m.indptr.astype(idt), "indices": m.indices.astype(idt), "data": m.data}
        return SparseCompressionResult("bsr", shape, m.dtype, arrays, {"block": (br, bc)})
    idt = index_dtype(np, m.nnz, *shape)
    arrays = {"indptr": m.indptr.astype(idt), "indices": m.indices.astype(idt), "data": m.data}
    return SparseCompressionResult(fmt, shape, m.dtype, arrays, nnz=m.nnz)


def _canonical_dia(matrix: Any, shape: tuple[int, int]) -> SparseCompressionResult:
    rows, cols = shape
    offsets = np.asarray(matrix.offsets, np.int64)
    raw = np.asarray(matrix.data)
    data = np.zeros((offsets.shape[0], cols), raw.dtype)
    width = min(cols, raw.shape[1])
    data[:, :width] = raw[:, :width]
    j = np.arange(cols)
    inside = (j[None, :] - offsets[:, None] >= 0) & (j[None, :] - offsets[:, None] < rows)
    data[~inside] = 0
    # repeated offsets add up in scipy; merge them, then drop all-zero diagonals
    uniq, inverse = np.unique(offsets, return_inverse=True)
    merged = np.zeros((uniq.shape[0], cols), raw.dtype)
    np.add.at(merged, inverse, data)
    keep = np.any(merged != 0, axis=1)
    idt = index_dtype(np, rows, cols)
    arrays = {"offsets": uniq[keep].astype(idt), "data": merged[keep]}
    return SparseCompressionResult("dia", shape, raw.dtype, arrays)


# -- torch ------------------------------------------------------------------------
def _torch_arrays(result: SparseCompressionResult) -> dict[str, Any]:
    import torch

    out = {}
    for name, a in result.arrays.items():
        if _compat.is_numpy(a):
            out[name] = torch.from_numpy(np.ascontiguousarray(a))
        elif _compat.backend_name(a) == "torch":
            out[name] = a
        else:
            msg = f"the result's arrays are {_compat.backend_name(a)} arrays; torch needs NumPy or torch ones"
            raise TypeError(msg)
    return out


def to_torch(result: SparseCompressionResult) -> Any:
    """The torch sparse tensor (``sparse_coo/csr/csc/bsr``) holding the same matrix.

    A 2:4 result becomes a ``torch.sparse.SparseSemiStructuredTensor`` when
    its arrays are CUDA tensors (torch's semi-structured kernels are CUDA-only).
    """
    import torch

    if isinstance(result, SparseCompressionResult) and result.format is SparseFormat.STRUCTURED_2_TO_4:
        dense = result.to_dense()
        if _compat.backend_name(dense) != "torch" or dense.device.type != "cuda":
            msg = "torch's semi-structured (2:4) tensors need CUDA tensors; this result is not on a CUDA device"
            raise ValueError(msg)
        return torch.sparse.to_sparse_semi_structured(dense)
    _check_format(result, _TORCH_FORMATS, "torch.sparse")
    a = _torch_arrays(result)
    size = result.matrix_shape
    fmt = result.format
    if fmt is SparseFormat.COO:
        indices = torch.stack([a["row"].to(torch.int64), a["col"].to(torch.int64)])
        return torch.sparse_coo_tensor(indices, a["data"], size, is_coalesced=True, check_invariants=False)
    # results are canonical by construction (sorted, in range, no duplicates): torch's
    # invariant checks would only cost time, and leaving them implicit makes torch warn
    if fmt is SparseFormat.CSR:
        return torch.sparse_csr_tensor(a["indptr"], a["indices"], a["data"], size, check_invariants=False)
    if fmt is SparseFormat.CSC:
        return torch.sparse_csc_tensor(a["indptr"], a["indices"], a["data"], size, check_invariants=False)
    return torch.sparse_bsr_tensor(a["indptr"], a["indices"], a["data"], size, check_invariants=False)


def from_torch(tensor: Any, /) -> SparseCompressionResult:
    """A result (torch arrays, same device) from a torch sparse tensor; ``tensor`` is not modified.

    Layouts sparse_coo, sparse_csr, sparse_csc and sparse_bsr keep their
    format (2-D, no dense dimensions); a semi-structured tensor arrives as 2:4.
    """
    import torch

    from .codecs import compress

    if not isinstance(tensor, torch.Tensor):
        msg = f"tensor must be a torch sparse tensor, got {type(tensor).__name__}"
        raise TypeError(msg)
    if type(tensor).__name__.startswith("SparseSemiStructured"):
        return compress(tensor.to_dense(), "2:4")
    layouts = {
        torch.sparse_coo: "coo",
        torch.sparse_csr: "csr",
        torch.sparse_csc: "csc",
        torch.sparse_bsr: "bsr",
    }
    if tensor.layout not in layouts:
        msg = f"tensor has layout {tensor.layout}; expected one of sparse_coo, sparse_csr, sparse_csc, sparse_bsr"
        raise ValueError(msg)
    if tensor.ndim != 2 or tensor.dense_dim() != 0:
        msg = f"tensor must be a 2-D sparse matrix without batch or dense dimensions, got shape {tuple(tensor.shape)}"
        raise ValueError(msg)
    fmt = layouts[tensor.layout]
    shape = tuple(tensor.shape)
    t = tensor.detach()
    if fmt == "coo":
        t = t.coalesce()  # a new tensor: sorted, duplicates summed
        values = t.values()
        keep = values != 0
        row, col = t.indices()[0][keep], t.indices()[1][keep]
        idt = index_dtype(torch, int(keep.sum()), *shape)
        arrays = {"row": row.to(idt), "col": col.to(idt), "data": values[keep]}
        return SparseCompressionResult("coo", shape, tensor.dtype, arrays, nnz=arrays["data"].shape[0])
    if fmt == "bsr":
        indptr, indices, values = t.crow_indices(), t.col_indices(), t.values()
        br, bc = values.shape[1:]
        keep = (values != 0).flatten(1).any(dim=1)
        indptr, indices = _compact(torch, indptr, indices, keep)
        idt = index_dtype(torch, indices.shape[0], shape[0] // br, shape[1] // bc)
        arrays = {"indptr": indptr.to(idt), "indices": indices.to(idt), "data": values[keep]}
        return SparseCompressionResult("bsr", shape, tensor.dtype, arrays, {"block": (int(br), int(bc))})
    if fmt == "csr":
        indptr, indices = t.crow_indices(), t.col_indices()
    else:
        indptr, indices = t.ccol_indices(), t.row_indices()
    values = t.values()
    keep = values != 0
    indptr, indices = _compact(torch, indptr, indices, keep)
    order = _sorted_within(torch, indptr, indices)
    idt = index_dtype(torch, indices.shape[0], *shape)
    arrays = {"indptr": indptr.to(idt), "indices": indices[order].to(idt), "data": values[keep][order]}
    return SparseCompressionResult(fmt, shape, tensor.dtype, arrays, nnz=indices.shape[0])


def _compact(torch: Any, indptr: Any, indices: Any, keep: Any) -> tuple[Any, Any]:
    """Drop the entries where ``keep`` is False from a compressed (indptr, indices) pair."""
    outer = torch.repeat_interleave(torch.arange(indptr.shape[0] - 1, device=indptr.device), torch.diff(indptr))
    counts = torch.bincount(outer[keep], minlength=indptr.shape[0] - 1)
    new_indptr = torch.zeros(indptr.shape[0], dtype=torch.int64, device=indptr.device)
    new_indptr[1:] = torch.cumsum(counts, 0)
    return new_indptr, indices[keep]


def _sorted_within(torch: Any, indptr: Any, indices: Any) -> Any:
    """Permutation sorting ``indices`` within each row (column) of ``indptr``."""
    outer = torch.repeat_interleave(torch.arange(indptr.shape[0] - 1, device=indptr.device), torch.diff(indptr))
    span = int(indices.max()) + 1 if indices.numel() else 1
    return torch.argsort(outer * span + indices.to(torch.int64), stable=True)


# -- cupyx ------------------------------------------------------------------------
def to_cupyx(result: SparseCompressionResult) -> Any:
    """The cupyx.scipy.sparse matrix (``coo/csr/csc/dia_matrix``) of a CuPy result."""
    _check_format(result, _CUPYX_FORMATS, "cupyx.scipy.sparse")  # before the import: no cupy, still a clear error
    import cupyx.scipy.sparse as csp

    a = dict(result.arrays)
    for name, arr in a.items():
        if _compat.backend_name(arr) != "cupy":
            msg = f"to_cupyx() needs CuPy arrays; array {name!r} is a {_compat.backend_name(arr)} array"
            raise TypeError(msg)
    shape = result.matrix_shape
    fmt = result.format
    if fmt is SparseFormat.COO:
        return csp.coo_matrix((a["data"], (a["row"], a["col"])), shape=shape)
    if fmt is SparseFormat.CSR:
        return csp.csr_matrix((a["data"], a["indices"], a["indptr"]), shape=shape)
    if fmt is SparseFormat.CSC:
        return csp.csc_matrix((a["data"], a["indices"], a["indptr"]), shape=shape)
    return csp.dia_matrix((a["data"], a["offsets"]), shape=shape)


def from_cupyx(matrix: Any, /) -> SparseCompressionResult:
    """A result (CuPy arrays, same device) from a cupyx.scipy.sparse matrix; ``matrix`` is not modified."""
    msg = f"matrix must be a cupyx.scipy.sparse matrix, got {type(matrix).__name__}"
    if not type(matrix).__module__.startswith("cupyx."):  # checked first: no cupy, still a TypeError
        raise TypeError(msg)
    import cupy
    import cupyx.scipy.sparse as csp

    from .codecs import compress

    if not csp.issparse(matrix):
        raise TypeError(msg)
    fmt = matrix.format if matrix.format in ("coo", "csr", "csc") else None
    if fmt is None:  # DIA and others: through the dense matrix, on the device
        return compress(matrix.toarray(), matrix.format if matrix.format == "dia" else "csr")
    m = matrix.asformat(fmt).copy()
    m.sum_duplicates()
    m.eliminate_zeros()
    shape = tuple(matrix.shape)
    idt = index_dtype(cupy, m.nnz, *shape)
    if fmt == "coo":
        order = cupy.lexsort(cupy.stack([m.col, m.row]))
        arrays = {"row": m.row[order].astype(idt), "col": m.col[order].astype(idt), "data": m.data[order]}
    else:
        m.sort_indices()
        arrays = {"indptr": m.indptr.astype(idt), "indices": m.indices.astype(idt), "data": m.data}
    return SparseCompressionResult(fmt, shape, m.dtype, arrays, nnz=int(m.nnz))


def from_sparse(obj: Any, /) -> SparseCompressionResult:
    """A result from a scipy.sparse, torch sparse or cupyx sparse object (detected by type)."""
    module = type(obj).__module__
    if module.startswith("scipy."):
        return from_scipy(obj)
    if module.startswith("cupyx."):
        return from_cupyx(obj)
    if module.startswith("torch"):
        return from_torch(obj)
    msg = f"obj must be a scipy.sparse, torch sparse or cupyx sparse object, got {type(obj).__name__}"
    raise TypeError(msg)
