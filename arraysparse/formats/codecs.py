"""compress(): dense array -> SparseCompressionResult, and the way back.

One codec module per format family; this module routes to them. Each holds
its format's rules (parameters, violations, the result's arrays) and calls the
backend seam (:mod:`arraysparse._backends`) for the work: NumPy and CPU torch
inputs run the Numba kernels on an exact host view (no copy), everything else
the standard-only codecs, on the caller's device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backends
from .._compat import array_namespace, backend_name, check_array, is_numpy, is_writable, optional_import
from .._validation import check_has_zero, check_known_shape
from . import bitmask, blocked, compressed, dia, ell, nm
from .base import SparseCompressionResult, SparseFormat, matrix_shape

Array = Any

_PARAMS: dict[SparseFormat, tuple[str, ...]] = {
    SparseFormat.BSR: ("block",),
    SparseFormat.ELL: ("width",),
    SparseFormat.STRUCTURED_N_TO_M: ("n", "m"),
    SparseFormat.STRUCTURED_2_TO_4: (),
}


def compress(
    x: Array,
    /,
    format: SparseFormat | str = SparseFormat.CSR,
    *,
    block: tuple[int, int] | None = None,
    n: int | None = None,
    m: int | None = None,
    width: int | None = None,
) -> SparseCompressionResult:
    """Compress ``x`` into a sparse ``format``; ``to_dense()`` gives ``x`` back.

    Parameters
    ----------
    x : array
        Any dtype (bool, integers, floats, complex), any rank >= 1: rank 1 is
        read as one row, rank > 2 as ``(shape[0], prod(shape[1:]))``.
        ``x`` is only read.
    format : SparseFormat or str
        ``"coo"``, ``"csr"``, ``"csc"``, ``"bsr"``, ``"ell"``, ``"dia"``,
        ``"n:m"``, ``"2:4"`` or ``"bitmask"``.
    block : (int, int)
        BSR block shape; it must divide the 2-D shape.
    n, m : int
        N:M: ``n`` zeros in every ``m`` consecutive elements along the last
        axis (``m <= 256``); the input must already follow the pattern
        (e.g. pruned with :func:`arraysparse.nm_mask`).
    width : int, optional
        ELL slots per row (default: the longest row).

    Returns
    -------
    SparseCompressionResult
        The format's arrays in ``x``'s library and device, and what they cost.

    Notes
    -----
    A Dask ``x`` gives a lazy result, encoded band by band on the workers
    (row bands; column bands for CSC and DIA): nothing is computed, except
    the first pass of ELL (its width is the longest row) and of DIA (its
    diagonals), and the band counts when a matrix of more than 2**31 - 1
    elements needs them to choose the index dtype. Its ``nnz``, ``nbytes``,
    ``sparsity`` and ``repr`` compute (counts); ``to_dense()`` is lazy;
    :func:`arraysparse.to_zarr` writes it band by band from the workers.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> r = asp.compress(np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]]), "csr")
    >>> r.indptr, r.indices, r.data
    (array([0, 1, 3], dtype=int32), array([1, 0, 2], dtype=int32), array([2., 1., 3.]))
    >>> r.to_dense()
    array([[0., 2., 0.],
           [1., 0., 3.]])
    """
    xp = array_namespace(x=x)
    check_known_shape(x, "x")
    check_has_zero(x, "x", "a sparse format stores the non-zeros only")
    fmt = SparseFormat.parse(format)
    given = {"block": block, "n": n, "m": m, "width": width}
    allowed = _PARAMS.get(fmt, ())
    for key, value in given.items():
        if value is not None and key not in allowed:
            where = ", ".join(f.value for f, keys in _PARAMS.items() if key in keys)
            msg = f"{key}={value!r} does not apply to format {fmt}; it is a parameter of {where}"
            raise ValueError(msg)
    shape = tuple(x.shape)
    shape2 = matrix_shape(shape)
    x2 = _backends.reshape(xp, x, shape2)
    if fmt in (SparseFormat.CSR, SparseFormat.COO):
        arrays, params, nnz = compressed.encode_rows(xp, x2, coo=fmt is SparseFormat.COO)
    elif fmt is SparseFormat.CSC:
        arrays, params, nnz = compressed.encode_csc(xp, x2)
    elif fmt is SparseFormat.BSR:
        arrays, params, nnz = blocked.encode(xp, x2, block=block)
    elif fmt is SparseFormat.ELL:
        arrays, params, nnz = ell.encode(xp, x2, width=width)
    elif fmt is SparseFormat.DIA:
        arrays, params, nnz = dia.encode(xp, x2)
    elif fmt is SparseFormat.BITMASK:
        arrays, params, nnz = bitmask.encode(xp, x2)
    else:
        if fmt is SparseFormat.STRUCTURED_2_TO_4:
            n, m = 2, 4
        arrays, params, nnz = nm.encode(xp, x2, n=n, m=m)
    return SparseCompressionResult(fmt, shape, x.dtype, arrays, params, nnz=nnz)


def decode(result: SparseCompressionResult, out: Array | None = None) -> Array:
    """The dense array of ``result``, in its original shape; written into ``out`` if given."""
    arrays = dict(result.arrays)
    if out is not None:
        return _decode_into(result, arrays, out)
    xp = array_namespace(**arrays)
    return _backends.reshape(xp, _decode_matrix(result, arrays, xp), result.shape)


def _decode_matrix(result: SparseCompressionResult, arrays: dict, xp: Any, target: Any = None) -> Array:
    """The 2-D matrix (``result.matrix_shape``), by the format's decoder; into ``target``
    (from :func:`arraysparse._backends.decode_target`) if given."""
    shape2, fmt, dtype = result.matrix_shape, result.format, result.dtype
    if fmt in (SparseFormat.CSR, SparseFormat.CSC, SparseFormat.COO):
        return compressed.decode(xp, fmt.value, arrays, shape2, dtype, target)
    if fmt is SparseFormat.BSR:
        return blocked.decode(xp, arrays, dict(result.params), shape2, dtype, target)
    if fmt is SparseFormat.ELL:
        return ell.decode(xp, arrays, shape2, dtype, target)
    if fmt is SparseFormat.DIA:
        return dia.decode(xp, arrays, shape2, dtype, target)
    if fmt is SparseFormat.BITMASK:
        return bitmask.decode(xp, arrays, shape2, dtype, target)
    return nm.decode(xp, arrays, dict(result.params), shape2, dtype, target)


def _decode_into(result: SparseCompressionResult, arrays: dict, out: Array) -> Array:
    """``to_dense(out=...)``: decode straight into a NumPy / CPU torch buffer that is
    C-contiguous; anything else gets the dense array copied in. Returns ``out``."""
    xp = _check_out(result, arrays, out)
    target = _backends.decode_target(arrays, result.dtype, out, result.matrix_shape)
    if target is not None:
        name = _backends.shared_array(target, arrays)
        if name is not None:
            msg = (
                f"out shares memory with the result's {name!r} array; decoding into it "
                "would overwrite what it reads"
            )
            raise ValueError(msg)
        _decode_matrix(result, arrays, xp, target)
        return out
    dense = _backends.reshape(xp, _decode_matrix(result, arrays, xp), result.shape)
    if is_numpy(out):
        np.copyto(out, dense)
    elif backend_name(out) == "torch":
        torch = optional_import("torch", purpose="reading a torch tensor")
        with torch.no_grad():
            out.copy_(dense)
    else:
        out[...] = dense
    return out


def _check_out(result: SparseCompressionResult, arrays: dict, out: Array) -> Any:
    """The namespace, after checking that ``out`` can take the result: a writable array of
    the result's library, device, shape and dtype."""
    layout = getattr(out, "layout", None)
    if backend_name(out) == "torch" and str(layout) != "torch.strided":
        msg = f"out must be a dense (strided) torch tensor, got layout {layout}"
        raise TypeError(msg)
    check_array(out, "out", importers=False)
    if backend_name(out) == "jax":
        msg = "out cannot be a JAX array: JAX arrays are immutable; call to_dense() without out"
        raise TypeError(msg)
    first = next(iter(arrays))
    xp = array_namespace(**{f"the result's {first!r} array": arrays[first], "out": out})
    if tuple(out.shape) != tuple(result.shape):
        msg = f"out has shape {tuple(out.shape)}; the result's dense shape is {tuple(result.shape)}"
        raise ValueError(msg)
    if out.dtype != result.dtype:
        msg = f"out has dtype {out.dtype}; the result's dtype is {result.dtype}"
        raise TypeError(msg)
    if not is_writable(out):
        msg = f"out is read-only ({backend_name(out)} array)"
        raise ValueError(msg)
    if getattr(out, "requires_grad", False):
        msg = "out requires grad: decoding into it would bypass autograd; pass a tensor without grad"
        raise ValueError(msg)
    return xp


def count_nonzero(result: SparseCompressionResult) -> int:
    """Non-zeros among the stored values (formats that also store zeros)."""
    values = result.arrays.get("data", result.arrays.get("values"))
    xp = array_namespace(values=values)
    return _backends.count_nonzero(xp, values)
