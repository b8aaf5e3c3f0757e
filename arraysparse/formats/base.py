"""SparseFormat, SparseCompressionResult and the rules every format shares.

Shared rules
------------
* **2-D view.** The matrix formats work on a 2-D view of the input: a rank-1
  array of length ``n`` is ``(1, n)``, a rank > 2 array is
  ``(shape[0], prod(shape[1:]))`` (C order). :meth:`SparseCompressionResult.to_dense`
  restores the original shape.
* **Zero.** An element is stored when it is non-zero: ``x != 0``, so ``-0.0``
  is a zero (as in scipy.sparse) and NaN is not. Decompressing gives an array
  equal (``==``, NaN aside) to the input; values that are stored come back
  bit for bit.
* **Index dtype.** int32 while every index, count and extent fits in
  ``INDEX32_LIMIT`` (2**31 - 1), int64 beyond. :func:`index_dtype` is the one
  place that decides.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._compat import array_namespace, backend_name, isdtype

Array = Any

INDEX32_LIMIT = 2**31 - 1
"""Largest value an int32 index array may hold; beyond it indices are int64 (lowered in tests)."""


class SparseFormat(str, enum.Enum):
    """The compressed layouts :func:`arraysparse.compress` produces.

    Members compare equal to their lower-case names (``SparseFormat.CSR == "csr"``).
    """

    COO = "coo"
    """Coordinates: ``row``, ``col``, ``data``, in row-major order."""
    CSR = "csr"
    """Compressed rows: ``indptr`` (rows + 1), ``indices`` (columns, sorted per row), ``data``."""
    CSC = "csc"
    """Compressed columns: ``indptr`` (cols + 1), ``indices`` (row numbers), ``data``."""
    BSR = "bsr"
    """Blocked rows (``block=(r, c)``): ``indptr``, ``indices`` (block columns), ``data`` ``(nblocks, r, c)``."""
    ELL = "ell"
    """ELLPACK: ``indices`` and ``data`` of shape ``(rows, width)``; padding has index -1 and value 0."""
    DIA = "dia"
    """Diagonals, scipy's layout: ``offsets``, ``data`` ``(ndiag, cols)``, ``data[k, j] = A[j - offsets[k], j]``."""
    STRUCTURED_N_TO_M = "n:m"
    """``n`` zeros in every ``m``: ``values`` ``(rows, cols * (m - n) / m)``, ``packed_positions`` uint8."""
    STRUCTURED_2_TO_4 = "2:4"
    """N:M with ``n = 2``, ``m = 4`` (4 bits a group), plus the CUTLASS export ``to_cutlass()``."""
    BITMASK = "bitmask"
    """``values`` (the non-zeros, row-major) and ``bitmask`` ``(rows, ceil(cols / 8))`` uint8, little bit order."""

    @classmethod
    def parse(cls, value: Any) -> SparseFormat:
        """The member named by ``value`` (a member, or its name or value, any case)."""
        if isinstance(value, SparseFormat):
            return value
        if isinstance(value, str):
            key = value.strip().lower()
            aliases = {"nm": "n:m", "n_m": "n:m", "structured_n_to_m": "n:m", "structuredntom": "n:m",
                       "2to4": "2:4", "two_four": "2:4", "structured_2_to_4": "2:4",
                       "structured2to4": "2:4", "24": "2:4"}
            key = aliases.get(key, key)
            for member in cls:
                if member.value == key:
                    return member
        names = ", ".join(repr(m.value) for m in cls)
        msg = f"format={value!r} is not a sparse format; choose one of {names}"
        raise ValueError(msg)

    def __str__(self) -> str:
        return self.value


def index_dtype(xp: Any, *extents: int) -> Any:
    """int32 if every extent fits in :data:`INDEX32_LIMIT`, else int64 (``xp``'s dtype)."""
    return getattr(xp, index_dtype_name(*extents))


def index_dtype_name(*extents: int) -> str:
    """``"int32"`` if every extent fits in :data:`INDEX32_LIMIT`, else ``"int64"``: the one rule."""
    return "int32" if max(extents, default=0) <= INDEX32_LIMIT else "int64"


def matrix_shape(shape: tuple[int, ...], *, name: str = "x") -> tuple[int, int]:
    """The 2-D view of ``shape`` used by the matrix formats."""
    if len(shape) == 0:
        msg = f"{name} is 0-d; sparse formats need at least one axis"
        raise ValueError(msg)
    if len(shape) == 1:
        return (1, shape[0])
    return (shape[0], math.prod(shape[1:]))


class SparseCompressionResult:
    """A compressed array: its format, its arrays and what it saves.

    Built by :func:`arraysparse.compress` (or the ``from_*`` interop
    functions); the arrays live in the input's library and device.

    Attributes
    ----------
    format : SparseFormat
    shape : tuple of int
        Shape of the original array (``to_dense()`` returns this shape).
    matrix_shape : tuple of int
        The 2-D view the format describes.
    dtype
        The original dtype, in the original library's terms.
    arrays : Mapping[str, array]
        The format's arrays by name, also readable as attributes
        (``result.indptr``).
    params : Mapping[str, Any]
        Format parameters (``block`` for BSR, ``n``/``m`` for N:M, ``width`` for ELL).
    """

    __slots__ = ("_arrays", "_nnz", "_params", "dtype", "format", "matrix_shape", "shape")

    def __init__(
        self,
        format: SparseFormat | str,
        shape: tuple[int, ...],
        dtype: Any,
        arrays: Mapping[str, Array],
        params: Mapping[str, Any] | None = None,
        *,
        nnz: int | None = None,
    ):
        self.format = SparseFormat.parse(format)
        self.shape = tuple(int(s) for s in shape)
        self.matrix_shape = matrix_shape(self.shape)
        self.dtype = dtype
        self._arrays = MappingProxyType(dict(arrays))
        self._params = MappingProxyType(dict(params or {}))
        self._nnz = nnz

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # the arrays and params live in read-only mapping proxies, which do not pickle:
        # rebuild from plain dicts (deepcopy goes this way too, copying the arrays)
        args = (self.format.value, self.shape, self.dtype, dict(self._arrays), dict(self._params), self._nnz)
        return _rebuild_result, args

    # -- content ----------------------------------------------------------------
    @property
    def arrays(self) -> Mapping[str, Array]:
        """The format's arrays by name, read-only (``{"indptr": ..., "indices": ..., "data": ...}`` for CSR).

        Each is also an attribute: ``result.indptr is result.arrays["indptr"]``.
        Which arrays a format has is listed on :class:`SparseFormat`.
        """
        return self._arrays

    @property
    def params(self) -> Mapping[str, Any]:
        """The format's parameters, read-only: ``block`` (BSR), ``width`` (ELL), ``n`` and ``m`` (N:M)."""
        return self._params

    def __getattr__(self, name: str) -> Array:
        try:
            return object.__getattribute__(self, "_arrays")[name]
        except (KeyError, AttributeError):
            msg = f"{type(self).__name__} ({self.format}) has no attribute or array {name!r}"
            raise AttributeError(msg) from None

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._arrays))

    @property
    def size(self) -> int:
        """Number of elements of the original array."""
        return math.prod(self.shape)

    @property
    def nnz(self) -> int:
        """Non-zero values of the original array (stored explicit zeros not counted)."""
        if self._nnz is None:
            from .codecs import count_nonzero

            self._nnz = count_nonzero(self)
        return self._nnz

    @property
    def sparsity(self) -> float:
        """Fraction of zeros in the original array (0 for an empty array)."""
        return 1.0 - self.nnz / self.size if self.size else 0.0

    @property
    def nbytes(self) -> int:
        """Bytes the compressed arrays really occupy."""
        return sum(_nbytes(a) for a in self._arrays.values())

    @property
    def dense_nbytes(self) -> int:
        """Bytes of the original dense array."""
        return self.size * _itemsize(next(iter(self._arrays.values())), self.dtype)

    @property
    def compression_ratio(self) -> float:
        """``dense_nbytes / nbytes`` (> 1: the compressed form is smaller)."""
        return self.dense_nbytes / self.nbytes if self.nbytes else math.inf

    @property
    def backend(self) -> str:
        """Library of the arrays (``"numpy"``, ``"torch"``, ...)."""
        return backend_name(next(iter(self._arrays.values())))

    def positions(self) -> Array:
        """Each kept value's position inside its group, for an N:M or 2:4 result.

        The ``packed_positions`` array unpacked (its layout is in
        :mod:`arraysparse.formats.nm`): uint8 of the shape of ``values``,
        ``(rows, cols * (m - n) / m)``, ascending within each group, in the
        result's library and device. For 2:4 (float32: 1:2) it is what
        :func:`arraysparse.cutlass_meta_from_positions` takes.

        Examples
        --------
        >>> import numpy as np, arraysparse as asp
        >>> r = asp.compress(np.array([[0.0, 5.0, 0.0, 7.0, 1.0, 0.0, 0.0, 0.0]]), "2:4")
        >>> r.values
        array([[5., 7., 1., 0.]])
        >>> r.positions()
        array([[1, 3, 0, 2]], dtype=uint8)
        >>> r.packed_positions  # 1 | 3 << 2, then (0 | 2 << 2) << 4
        array([[141]], dtype=uint8)
        """
        from .nm import positions

        if self.format not in (SparseFormat.STRUCTURED_N_TO_M, SparseFormat.STRUCTURED_2_TO_4):
            msg = f"positions() is for N:M and 2:4 results; this one is {self.format}"
            raise ValueError(msg)
        arrays = dict(self._arrays)
        xp = array_namespace(**arrays)
        return positions(xp, arrays, dict(self._params), self.matrix_shape)

    # -- conversions --------------------------------------------------------------
    def to_dense(self, out: Array | None = None) -> Array:
        """The original array: same shape, dtype, library and device.

        Parameters
        ----------
        out : array, optional
            A writable array of the result's shape, dtype, library and device
            to decode into (every element is overwritten); it is returned. It
            saves allocating, and on NumPy and CPU torch, with ``out``
            C-contiguous, the kernels write straight into it: decoding
            repeatedly into one buffer skips the page faults of a fresh output.
            JAX arrays are immutable and cannot be ``out``.
        """
        from .codecs import decode

        return decode(self, out)

    def to_scipy(self) -> Any:
        """The scipy.sparse array of the same format (COO, CSR, CSC, BSR, DIA)."""
        from .interop import to_scipy

        return to_scipy(self)

    def to_torch(self) -> Any:
        """The torch sparse tensor of the same format (COO, CSR, CSC, BSR)."""
        from .interop import to_torch

        return to_torch(self)

    def to_cupyx(self) -> Any:
        """The cupyx.scipy.sparse matrix of the same format (COO, CSR, CSC, DIA)."""
        from .interop import to_cupyx

        return to_cupyx(self)

    def to_cutlass(self) -> tuple[Array, Array]:
        """``(values, meta)`` in CUTLASS's 2:4 layout, as :func:`arraysparse.to_cutlass` of the dense matrix.

        For 2:4 results of float16, bfloat16 and int8 the values are reused and
        the packed positions, whose 4-bit groups are CUTLASS's codes, are only
        reordered (the padding rule of this format is CUTLASS's); float32, which
        CUTLASS reads as 1:2, goes through the dense matrix. The shape rules of
        :func:`arraysparse.to_cutlass` apply.
        """
        from .cutlass import _check_dense_shape, _layout, _meta_from_two_four, to_cutlass
        from .nm import _checked

        is_24 = self.format is SparseFormat.STRUCTURED_2_TO_4 or (
            self.format is SparseFormat.STRUCTURED_N_TO_M and (self._params["n"], self._params["m"]) == (2, 4)
        )
        if not is_24:
            msg = f"to_cutlass() needs a 2:4 result, this one is {self.format} {dict(self._params)}"
            raise ValueError(msg)
        if len(self.shape) != 2:
            msg = f"the CUTLASS layout is for 2-D matrices; this result has shape {self.shape}"
            raise ValueError(msg)
        if "float32" in str(self.dtype):
            return to_cutlass(self.to_dense())
        # the dense-side shape and dtype checks, without building the dense matrix
        _check_dense_shape(_layout(self.dtype, "the result's dtype"), *self.shape, "the result")
        _checked(dict(self._arrays), dict(self._params), self.matrix_shape)
        return self._arrays["values"], _meta_from_two_four(self._arrays["packed_positions"], self.dtype)

    def __repr__(self) -> str:
        params = "".join(f", {k}={v}" for k, v in self._params.items())
        arrays = ", ".join(f"{k}: {_describe(a)}" for k, a in self._arrays.items())
        dtype = getattr(self.dtype, "name", None) or str(self.dtype).removeprefix("torch.")
        return (
            f"SparseCompressionResult(format={self.format}, shape={self.shape}, dtype={dtype}{params}, "
            f"nnz={self.nnz}, sparsity={self.sparsity:.3g}, nbytes={self.nbytes}, "
            f"dense_nbytes={self.dense_nbytes}, ratio={self.compression_ratio:.3g}x; {arrays})"
        )


def _rebuild_result(
    format: str, shape: tuple[int, ...], dtype: Any, arrays: dict, params: dict, nnz: int | None
) -> SparseCompressionResult:
    """Unpickle a :class:`SparseCompressionResult` (see its ``__reduce__``)."""
    return SparseCompressionResult(format, shape, dtype, arrays, params, nnz=nnz)


def _nbytes(a: Array) -> int:
    n = getattr(a, "nbytes", None)
    if isinstance(n, int):
        return n
    return math.prod(a.shape) * _itemsize(a, a.dtype)


def _itemsize(a: Array, dtype: Any) -> int:
    size = getattr(dtype, "itemsize", None)
    if isinstance(size, int):
        return size
    xp = array_namespace(a=a)
    info = xp.finfo(dtype) if isdtype(xp, dtype, ("real floating", "complex floating")) else None
    if info is not None:
        return info.bits // 8 * (2 if isdtype(xp, dtype, "complex floating") else 1)
    if dtype == xp.bool:
        return 1
    return xp.iinfo(dtype).bits // 8


def _describe(a: Array) -> str:
    dtype = getattr(a.dtype, "name", None) or str(a.dtype).removeprefix("torch.")
    return f"{dtype}{tuple(a.shape)}"
