"""Exchange compressed arrays with scipy.sparse, torch.sparse and cupyx.scipy.sparse.

``to_*`` share the result's arrays where the target library can (no copy for
scipy from NumPy results, torch from torch results); ``from_*`` bring a
foreign sparse object into the canonical form :func:`compress` produces
(sorted, no duplicates, no explicit zeros, index dtype by the int32/int64
rule) without modifying it.

Foreign objects need not be canonical: COO, CSR, CSC and BSR input may hold
duplicates (blocks, for BSR) in any order. They mean their sum, as in scipy
and torch: duplicates are added in their stored order, in the value dtype
(integers wrap, bool is ``or``), which is what the peers' own ``toarray()`` /
``to_dense()`` compute. (scipy's ``sum_duplicates`` and torch's ``coalesce``
group long runs of float duplicates differently and may differ from those in
the last bit.) Entries whose sum is zero, explicit zeros included, are then
dropped like every other zero (for BSR: blocks that are all zero), so the
result equals ``compress(peer.to_dense())``. Every importer (``from_scipy``,
``from_torch``, ``from_cupyx``) goes through that one canonicalisation, which
first checks the index arrays: a malformed ``indptr`` or an index outside the
shape raises ``ValueError`` naming the argument, never a silent drop.
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
            ml = _compat.ml_dtype(a.dtype)
            if ml is not None:  # bfloat16, float8, ... from ml_dtypes
                msg = f"scipy.sparse has no {ml.name}; convert the result's dtype first"
                raise TypeError(msg)
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


def _from_library(obj: Any, library: str) -> bool:
    """Whether ``obj``'s type, or a base of it, comes from ``library`` (read without importing it)."""
    return any((k.__module__ or "").split(".")[0] == library for k in type(obj).__mro__)


# -- scipy ------------------------------------------------------------------------
def to_scipy(result: SparseCompressionResult) -> Any:
    """The scipy.sparse array (``coo/csr/csc/bsr/dia_array``) holding the same matrix.

    The matrix is the result's 2-D view (``result.matrix_shape``).
    """
    _check_format(result, _SCIPY_FORMATS, "scipy.sparse")  # before the import: no scipy, still a clear error
    sp = _compat.optional_import("scipy.sparse", purpose="to_scipy()")
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
    (LIL, DOK) arrive as CSR. Duplicates are summed and zeros dropped (see
    the module docstring); ``ValueError`` for a malformed ``indptr`` or an
    index out of range.
    """
    msg = f"matrix must be a scipy.sparse array or matrix, got {type(matrix).__name__}"
    if not _from_library(matrix, "scipy"):  # checked first: no scipy, still a TypeError
        raise TypeError(msg)
    sp = _compat.optional_import("scipy.sparse", purpose="from_scipy()")
    if not sp.issparse(matrix):
        raise TypeError(msg)
    if matrix.ndim != 2:
        msg = f"matrix must be 2-D, got {matrix.ndim}-D"
        raise ValueError(msg)
    fmt = matrix.format if matrix.format in ("coo", "csr", "csc", "bsr", "dia") else "csr"
    shape = tuple(int(s) for s in matrix.shape)
    if fmt == "dia":
        return _canonical_dia(matrix, shape)
    if matrix.format in ("csr", "csc", "bsr"):
        data = np.asarray(matrix.data)
        block = tuple(matrix.blocksize) if fmt == "bsr" else None
        return _from_compressed(_compat.array_namespace(data=data), fmt, shape, np.asarray(matrix.indptr),
                                np.asarray(matrix.indices), data, "matrix", "indptr", "indices", block=block)
    m = matrix if matrix.format == "coo" else matrix.tocoo()  # LIL, DOK: a new COO, read as CSR
    row, col = m.coords if hasattr(m, "coords") else (m.row, m.col)
    data = np.asarray(m.data)
    return _canonical(_compat.array_namespace(data=data), fmt, shape, np.asarray(row), np.asarray(col), data,
                      "matrix", ("matrix.row", "matrix.col"))


def _canonical_dia(matrix: Any, shape: tuple[int, int]) -> SparseCompressionResult:
    rows, cols = shape
    offsets = np.asarray(matrix.offsets, np.int64)
    raw = np.asarray(matrix.data)
    if offsets.ndim != 1 or raw.ndim != 2 or raw.shape[0] != offsets.shape[0]:
        msg = (
            f"matrix has {offsets.shape[0] if offsets.ndim == 1 else tuple(offsets.shape)} offsets "
            f"but data of shape {tuple(raw.shape)}; DIA needs one data row per offset"
        )
        raise ValueError(msg)
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
    out = {}
    for name, a in result.arrays.items():
        if _compat.is_numpy(a):
            out[name] = _torch_of_numpy(np.ascontiguousarray(a))
        elif _compat.backend_name(a) == "torch":
            out[name] = a
        else:
            msg = f"the result's arrays are {_compat.backend_name(a)} arrays; torch needs NumPy or torch ones"
            raise TypeError(msg)
    return out


def _torch_of_numpy(a: np.ndarray) -> Any:
    """``torch.from_numpy``, which refuses ml_dtypes' types: those torch also has (bfloat16,
    the float8 types) cross as their bits, same memory; the others raise ``TypeError``."""
    torch = _compat.optional_import("torch", purpose="to_torch()")

    ml = _compat.ml_dtype(a.dtype)
    if ml is None:
        return torch.from_numpy(a)
    target = getattr(torch, ml.name, None) if ml.is_float else None
    if not isinstance(target, torch.dtype) or target.itemsize != a.dtype.itemsize:
        msg = f"torch has no {ml.name}; convert the result's dtype first"
        raise TypeError(msg)
    return torch.from_numpy(a.view(np.int16 if a.dtype.itemsize == 2 else np.uint8)).view(target)


def to_torch(result: SparseCompressionResult) -> Any:
    """The torch sparse tensor (``sparse_coo/csr/csc/bsr``) holding the same matrix.

    A 2:4 result becomes a ``torch.sparse.SparseSemiStructuredTensor`` when
    its arrays are CUDA tensors (torch's semi-structured kernels are CUDA-only).
    """
    torch = _compat.optional_import("torch", purpose="to_torch()")

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
    Uncoalesced input is fine: duplicates are summed and zeros dropped (see
    the module docstring); ``ValueError`` for malformed compressed indices
    or an index out of range.
    """
    from .codecs import compress

    msg = f"tensor must be a torch sparse tensor, got {type(tensor).__name__}"
    if not _from_library(tensor, "torch"):  # checked first: no torch, still a TypeError
        raise TypeError(msg)
    torch = _compat.optional_import("torch", purpose="from_torch()")
    if not isinstance(tensor, torch.Tensor):
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
    shape = tuple(int(s) for s in tensor.shape)
    t = tensor.detach()
    if fmt == "coo":
        # the stored entries as they are: indices() refuses uncoalesced tensors, and
        # coalesce() sums long runs of duplicates in another order than to_dense()
        indices, values = t._indices(), t._values()
        xp = _compat.array_namespace(values=values)
        return _canonical(xp, "coo", shape, indices[0], indices[1], values, "tensor",
                          ("tensor.indices()[0]", "tensor.indices()[1]"))
    xp = _compat.array_namespace(values=t.values())
    if fmt == "csc":
        return _from_compressed(xp, "csc", shape, t.ccol_indices(), t.row_indices(), t.values(),
                                "tensor", "ccol_indices()", "row_indices()")
    block = tuple(int(b) for b in t.values().shape[1:]) if fmt == "bsr" else None
    return _from_compressed(xp, fmt, shape, t.crow_indices(), t.col_indices(), t.values(),
                            "tensor", "crow_indices()", "col_indices()", block=block)


# -- the canonical form of foreign input ------------------------------------------
def _from_compressed(
    xp: Any,
    fmt: str,
    shape: tuple[int, int],
    indptr: Array,
    indices: Array,
    data: Array,
    name: str,
    indptr_name: str,
    indices_name: str,
    *,
    block: tuple[int, int] | None = None,
) -> SparseCompressionResult:
    """The canonical result of CSR / CSC / BSR arrays that may be unsorted and hold duplicates."""
    rows, cols = shape
    if block is not None:
        br, bc = block
        if br < 1 or bc < 1 or rows % br or cols % bc:
            msg = f"{name} has blocks of shape {block}, which do not divide its shape {shape}"
            raise ValueError(msg)
        if data.ndim != 3 or tuple(data.shape[1:]) != (br, bc):
            msg = f"{name} has block data of shape {tuple(data.shape)}; blocks of {block} need (nblocks, {br}, {bc})"
            raise ValueError(msg)
        outer_n = rows // br
    else:
        outer_n = cols if fmt == "csc" else rows
    outer = _outer_of(xp, indptr, outer_n, indices, data, f"{name}.{indptr_name}", f"{name}.{indices_name}")
    return _canonical(xp, fmt, shape, outer, indices, data, name,
                      (f"{name}.{indptr_name}", f"{name}.{indices_name}"), block=block)


def _outer_of(xp: Any, indptr: Array, n: int, indices: Array, data: Array, ptr_name: str, idx_name: str) -> Array:
    """The row (column, block row) of every stored entry, after checking ``indptr``."""
    if indptr.ndim != 1 or indptr.shape[0] != n + 1:
        msg = f"{ptr_name} has shape {tuple(indptr.shape)}; this matrix needs {n + 1} entries ({n} + 1)"
        raise ValueError(msg)
    if not _compat.isdtype(xp, indptr.dtype, "integral") or not _compat.isdtype(xp, indices.dtype, "integral"):
        msg = f"{ptr_name} and {idx_name} must hold integers, got {indptr.dtype} and {indices.dtype}"
        raise TypeError(msg)
    nnz = _stored(indices, data, idx_name)
    p = xp.astype(indptr, xp.int64)
    if int(p[0]) != 0:
        msg = f"{ptr_name} must start at 0, got {int(p[0])}"
        raise ValueError(msg)
    if n:
        down = (p[1:] - p[:-1]) < 0
        if bool(xp.any(down)):
            k = int(xp.argmax(xp.astype(down, xp.int8)))
            msg = (
                f"{ptr_name} decreases at position {k + 1} ({int(p[k])} then {int(p[k + 1])}); "
                "it must be non-decreasing"
            )
            raise ValueError(msg)
    if int(p[-1]) != nnz:
        msg = f"{ptr_name} ends at {int(p[-1])} but {nnz} entries are stored in {idx_name} and the values"
        raise ValueError(msg)
    position = xp.arange(nnz, dtype=xp.int64, device=_compat.device(p))
    return xp.searchsorted(p, position, side="right") - 1


def _stored(indices: Array, data: Array, idx_name: str) -> int:
    """The number of stored entries: one value (block) per index."""
    if indices.ndim != 1 or data.ndim < 1 or data.shape[0] != indices.shape[0]:
        msg = (
            f"{idx_name} has shape {tuple(indices.shape)} but the values have shape "
            f"{tuple(data.shape)}; one value per index"
        )
        raise ValueError(msg)
    return int(indices.shape[0])


def _check_range(xp: Any, idx: Array, extent: int, name: str, shape: tuple[int, int]) -> None:
    if idx.shape[0] == 0:
        return
    bad = (idx < 0) | (idx >= extent)
    if bool(xp.any(bad)):
        k = int(xp.argmax(xp.astype(bad, xp.int8)))
        msg = f"{name} holds {int(idx[k])} at stored entry {k}, out of range [0, {extent}) for shape {shape}"
        raise ValueError(msg)


def _sum_runs(xp: Any, values: Array, head: Array) -> Array:
    """The sum of every run of ``values`` (runs start where ``head`` is True), added left to
    right in the value dtype: ``((v0 + v1) + v2) + ...``, as the peers' ``toarray()`` /
    ``to_dense()`` add duplicates; a run of one is its value, bit for bit."""
    (first,) = xp.nonzero(head)
    sums = xp.take(values, first, axis=0)  # a copy, never a view of the caller's data
    nnz = int(values.shape[0])
    if first.shape[0] == nnz:
        return sums
    boolean = sums.dtype == xp.bool
    backend = _compat.backend_name(values)
    if backend in ("numpy", "torch"):
        (rest,) = xp.nonzero(~head)
        slot = xp.take(xp.cumulative_sum(xp.astype(head, xp.int64)) - 1, rest)
        more = xp.take(values, rest, axis=0)
        if boolean:  # a sum of bools is their or; counted in int64, which cannot wrap to 0
            sums, more = xp.astype(sums, xp.int64), xp.astype(more, xp.int64)
        if backend == "numpy":
            np.add.at(sums, slot, more)  # unbuffered, in index order
        else:
            sums.index_add_(0, slot, more)  # in index order on the CPU, as to_dense()
        return sums != 0 if boolean else sums
    # other libraries (CuPy): no ordered scatter-add in the standard, so one gather per
    # position in the runs, O(unique entries x longest run)
    ends = xp.concat([first[1:], xp.asarray([nnz], dtype=first.dtype, device=_compat.device(first))])
    lengths = ends - first
    shape = (-1,) + (1,) * (values.ndim - 1)
    for k in range(1, int(xp.max(lengths))):
        more = xp.take(values, xp.clip(first + k, max=nnz - 1), axis=0)
        step = (sums | more) if boolean else sums + more
        sums = xp.where(xp.reshape(lengths > k, shape), step, sums)
    return sums


def _canonical(
    xp: Any,
    fmt: str,
    shape: tuple[int, int],
    outer: Array,
    inner: Array,
    data: Array,
    name: str,
    index_names: tuple[str, str],
    *,
    block: tuple[int, int] | None = None,
) -> SparseCompressionResult:
    """The result of entries ``data[k]`` at (``outer[k]``, ``inner[k]``), in any order, duplicates
    summed: rows and columns for COO and CSR, columns and rows for CSC, block rows and block
    columns for BSR (``data`` then holds whole blocks). Nothing of the inputs is written."""
    rows, cols = shape
    if block is not None:
        n_outer, n_inner = rows // block[0], cols // block[1]
    elif fmt == "csc":
        n_outer, n_inner = cols, rows
    else:
        n_outer, n_inner = rows, cols
    checked = []
    for a, extent, what in ((outer, n_outer, index_names[0]), (inner, n_inner, index_names[1])):
        if not _compat.isdtype(xp, a.dtype, "integral"):
            msg = f"{what} must hold integers, got dtype {a.dtype}"
            raise TypeError(msg)
        _stored(a, data, what)
        a = xp.astype(a, xp.int64)
        _check_range(xp, a, extent, what, shape)
        checked.append(a)
    outer, inner = checked
    nnz = int(data.shape[0])
    dev = _compat.device(data)
    # sort by position (unless already strictly increasing, the common canonical input); the
    # stable sort keeps duplicates in their stored order
    key = outer * n_inner + inner
    values = data
    if nnz > 1 and not bool(xp.all(key[1:] > key[:-1])):
        order = xp.argsort(key, stable=True)
        key = xp.take(key, order)
        values = xp.take(data, order, axis=0)
    head = xp.ones((nnz,), dtype=xp.bool, device=dev)
    if nnz > 1:
        head = xp.concat([head[:1], key[1:] != key[:-1]])
    sums = _sum_runs(xp, values, head)
    key = xp.take(key, xp.nonzero(head)[0])
    nonzero = _compat.nonzero_mask(xp, sums)
    if block is not None:
        nonzero = xp.any(xp.reshape(nonzero, (sums.shape[0], block[0] * block[1])), axis=1)
    (kept,) = xp.nonzero(nonzero)
    key = xp.take(key, kept)
    sums = xp.take(sums, kept, axis=0)
    count = int(key.shape[0])
    o, i = (key // n_inner, key % n_inner) if count else (key, key)
    if fmt == "coo":
        idt = index_dtype(xp, count, rows, cols)
        arrays = {"row": xp.astype(o, idt), "col": xp.astype(i, idt), "data": sums}
        return SparseCompressionResult("coo", shape, data.dtype, arrays, nnz=count)
    edges = xp.arange(n_outer + 1, dtype=xp.int64, device=dev)
    indptr = xp.searchsorted(o, edges, side="left")
    if block is not None:
        idt = index_dtype(xp, count, n_outer, n_inner)
        arrays = {"indptr": xp.astype(indptr, idt), "indices": xp.astype(i, idt), "data": sums}
        return SparseCompressionResult("bsr", shape, data.dtype, arrays, {"block": tuple(block)})
    idt = index_dtype(xp, count, rows, cols)
    arrays = {"indptr": xp.astype(indptr, idt), "indices": xp.astype(i, idt), "data": sums}
    return SparseCompressionResult(fmt, shape, data.dtype, arrays, nnz=count)


# -- cupyx ------------------------------------------------------------------------
def to_cupyx(result: SparseCompressionResult) -> Any:
    """The cupyx.scipy.sparse matrix (``coo/csr/csc/dia_matrix``) of a CuPy result."""
    _check_format(result, _CUPYX_FORMATS, "cupyx.scipy.sparse")  # before the import: no cupy, still a clear error
    csp = _compat.optional_import("cupyx.scipy.sparse", purpose="to_cupyx()")

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
    """A result (CuPy arrays, same device) from a cupyx.scipy.sparse matrix; ``matrix`` is not modified.

    COO, CSR and CSC go through the canonicalisation of :func:`from_scipy`
    and :func:`from_torch` (duplicates summed, zeros dropped, indices
    checked), on the device; DIA and other formats through their dense
    matrix, also on the device.
    """
    msg = f"matrix must be a cupyx.scipy.sparse matrix, got {type(matrix).__name__}"
    if not type(matrix).__module__.startswith("cupyx."):  # checked first: no cupy, still a TypeError
        raise TypeError(msg)
    csp = _compat.optional_import("cupyx.scipy.sparse", purpose="from_cupyx()")

    from .codecs import compress

    if not csp.issparse(matrix):
        raise TypeError(msg)
    shape = tuple(int(s) for s in matrix.shape)
    if matrix.format not in ("coo", "csr", "csc"):  # DIA and others: through the dense matrix, on the device
        return compress(matrix.toarray(), matrix.format if matrix.format == "dia" else "csr")
    xp = _compat.array_namespace(data=matrix.data)
    if matrix.format == "coo":
        return _canonical(xp, "coo", shape, matrix.row, matrix.col, matrix.data, "matrix",
                          ("matrix.row", "matrix.col"))
    return _from_compressed(xp, matrix.format, shape, matrix.indptr, matrix.indices, matrix.data,
                            "matrix", "indptr", "indices")


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
