"""compress(): dense array -> SparseCompressionResult, and the way back.

One codec module per format family; this module routes to them. NumPy and
CPU torch inputs run the Numba kernels on an exact host view (no copy);
everything else runs the standard-only code of the same module, on the
caller's device.
"""

from __future__ import annotations

from typing import Any

from .._compat import array_namespace
from . import bitmask, blocked, compressed, dia, ell, nm
from ._common import Host, host_of, nonzero
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
    x2 = xp.reshape(x, shape2)
    h = Host.of(x)
    if h is not None:
        h.values = h.values.reshape(shape2)
    if fmt in (SparseFormat.CSR, SparseFormat.COO):
        arrays, params, nnz = compressed.encode_rows(xp, x2, h, coo=fmt is SparseFormat.COO)
    elif fmt is SparseFormat.CSC:
        arrays, params, nnz = compressed.encode_csc(xp, x2, h)
    elif fmt is SparseFormat.BSR:
        arrays, params, nnz = blocked.encode(xp, x2, h, block=block)
    elif fmt is SparseFormat.ELL:
        arrays, params, nnz = ell.encode(xp, x2, h, width=width)
    elif fmt is SparseFormat.DIA:
        arrays, params, nnz = dia.encode(xp, x2, h)
    elif fmt is SparseFormat.BITMASK:
        arrays, params, nnz = bitmask.encode(xp, x2, h)
    else:
        if fmt is SparseFormat.STRUCTURED_2_TO_4:
            n, m = 2, 4
        arrays, params, nnz = nm.encode(xp, x2, h, n=n, m=m)
    return SparseCompressionResult(fmt, shape, x.dtype, arrays, params, nnz=nnz)


def decode(result: SparseCompressionResult) -> Array:
    """The dense array of ``result``, in its original shape."""
    arrays = dict(result.arrays)
    xp = array_namespace(**arrays)
    h = host_of(arrays, result.dtype)
    shape2, fmt = result.matrix_shape, result.format
    if fmt in (SparseFormat.CSR, SparseFormat.CSC, SparseFormat.COO):
        x2 = compressed.decode(xp, fmt.value, arrays, shape2, h)
    elif fmt is SparseFormat.BSR:
        x2 = blocked.decode(xp, arrays, dict(result.params), shape2, h)
    elif fmt is SparseFormat.ELL:
        x2 = ell.decode(xp, arrays, shape2, h)
    elif fmt is SparseFormat.DIA:
        x2 = dia.decode(xp, arrays, shape2, h)
    elif fmt is SparseFormat.BITMASK:
        x2 = bitmask.decode(xp, arrays, shape2, h)
    else:
        x2 = nm.decode(xp, arrays, dict(result.params), shape2, h)
    return xp.reshape(x2, result.shape)


def count_nonzero(result: SparseCompressionResult) -> int:
    """Non-zeros among the stored values (formats that also store zeros)."""
    values = result.arrays.get("data", result.arrays.get("values"))
    xp = array_namespace(values=values)
    return int(xp.sum(xp.astype(nonzero(xp, values), xp.int64)))
