"""The 2:4 compressed layout of CUTLASS, the one torch's semi-structured sparse tensors use.

:func:`to_cutlass` is byte for byte what torch's CPU reference encoder
``torch.sparse._semi_structured_conversions.sparse_semi_structured_from_dense_cutlass``
returns, and :func:`from_cutlass` what ``sparse_semi_structured_to_dense_cutlass``
returns, on every array library (through :mod:`arraysparse._backends`: NumPy
and CPU torch run Numba kernels, the others a standard-only implementation). cuSPARSELt's layout is opaque and
not covered.

The layout
----------
A dense ``(rows, cols)`` matrix with at most 2 non-zeros in every group of 4
consecutive elements of a row (float32: at most 1 in every pair, "1:2", as
the hardware reads a float32 as two 16-bit halves) becomes

* ``values`` ``(rows, cols / 2)``, the dense dtype: the two kept values of
  each group, in their order (float32: the kept one of each pair);
* ``meta``: int16 for float16, bfloat16 and float32, int32 for int8 (shapes
  in the table below).
  Each group's kept positions ``idx0 < idx1`` form a 4-bit code
  ``idx0 | idx1 << 2`` (float32 pairs: ``0b0100`` keeps the first, ``0b1110``
  the second); codes are packed little-endian, 4 per int16 or 8 per int32,
  and the meta matrix is then stored in CUTLASS's interleaved order
  (``reorder_meta``: rows interleaved within bands of 32, 16 for int8, 2 x 2
  blocks transposed, column-major in pairs of columns).

===========  =====  ======================  ============  ===============
dense dtype  group  meta dtype, shape       rows multiple columns multiple
===========  =====  ======================  ============  ===============
float16      2:4    int16, (rows, cols/16)  32            32
bfloat16     2:4    int16, (rows, cols/16)  32            32
int8         2:4    int32, (rows, cols/32)  16            64
float32      1:2    int16, (rows, cols/8)   32            16
===========  =====  ======================  ============  ===============

(The column multiples are those torch's encoder accepts: an even number of
meta columns.) A value is non-zero when ``x != 0``: -0.0 is a zero, NaN is
not. Groups with fewer than two non-zeros keep zero-valued positions
chosen as torch does (the first free ones of 2, 3, then 0, 1 in effect: an
empty group keeps positions 2 and 3; a pair with no non-zero keeps its
second value), and the kept values are copied bit for bit, so a -0.0 there
stays -0.0. ``from_cutlass(*to_cutlass(x))`` equals ``x`` (``==``, with NaN
at the same places); bit for bit except for -0.0 at positions not kept,
which come back as +0.0.

One deliberate difference from torch: its CPU conversions do not move every
bit pattern exactly. The encoder gathers float16/bfloat16 through float32
and the float32 decoder scatters the values as float16 halves, so a 16-bit
signaling NaN comes back as another NaN (for float32 that alters ordinary
numbers whose low or high 16 bits look like a float16 signaling NaN, about
1.5% of random values, by 512 units in the last place). arraysparse moves
bits; everywhere else the results are torch's, byte for byte.

Dask arrays are encoded and decoded lazily by bands of rows (heights a
multiple of the interleave's band); the meta, stored column-major in pairs
over the whole matrix, is gathered from the bands' pieces. The results are
NumPy's byte for byte (see docs/scaling-out.md).

The simple layout ("positions")
-------------------------------
The N:M compressed format describes the same choice without the CUTLASS
reordering. Unpacked (``result.positions()``; the result stores them packed,
2 bits a position for 2:4, see :mod:`arraysparse.formats.nm`), ``positions``
``(rows, cols / 2)`` uint8 holds, for each kept value, its position inside
its group: for 2:4, ``positions[i, 2g]`` and ``positions[i, 2g + 1]`` are
``idx0 < idx1`` of group ``g`` (0..3); for float32 1:2, ``positions[i, g]`` is
0 or 1. :func:`cutlass_meta_from_positions` and
:func:`positions_from_cutlass_meta` convert between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np

from .. import _backends, _compat

__all__ = [
    "cutlass_meta_from_positions",
    "from_cutlass",
    "positions_from_cutlass_meta",
    "to_cutlass",
]

Array = Any


@dataclass(frozen=True)
class _Layout:
    dtype: str  # dense dtype name
    kind: str  # the host kernels' name for the layout
    m: int  # group size: 4, or 2 for float32
    meta: str  # meta dtype name
    row_multiple: int
    col_multiple: int
    codes_per_word: int
    band: int  # rows per interleave band
    interweave: int

    @property
    def pattern(self) -> str:
        return f"{self.m // 2}:{self.m}"

    @property
    def cols_per_word(self) -> int:
        return self.codes_per_word * self.m


_LAYOUTS = {
    "float16": _Layout("float16", "half", 4, "int16", 32, 32, 4, 32, 4),
    "bfloat16": _Layout("bfloat16", "half", 4, "int16", 32, 32, 4, 32, 4),
    "int8": _Layout("int8", "byte", 4, "int32", 16, 64, 8, 16, 2),
    "float32": _Layout("float32", "pair", 2, "int16", 32, 16, 4, 32, 4),
}
_SUPPORTED = "float16, bfloat16, int8 or float32 (1:2)"


# ---------------------------------------------------------------- validation


def _dtype_name(dtype: Any) -> str:
    """Name of a dtype of any library ("float16", ...) or the string itself."""
    if isinstance(dtype, str):
        return dtype
    try:
        return np.dtype(dtype).name  # NumPy, JAX, CuPy, ml_dtypes' bfloat16
    except TypeError:
        return str(dtype).rsplit(".", 1)[-1]  # torch.float16, array_api_strict.float16


def _layout(dtype: Any, what: str) -> _Layout:
    name = _dtype_name(dtype)
    lay = _LAYOUTS.get(name)
    if lay is None:
        msg = f"{what} is {name}; the CUTLASS 2:4 layout holds {_SUPPORTED}"
        raise TypeError(msg)
    return lay


def _check_2d(x: Array, name: str) -> tuple[int, int]:
    if x.ndim != 2:
        msg = f"{name} must be 2-D, got {x.ndim}-D with shape {tuple(x.shape)}"
        raise ValueError(msg)
    return int(x.shape[0]), int(x.shape[1])


def _check_dense_shape(lay: _Layout, rows: int, cols: int, what: str) -> None:
    """The CUTLASS shape rules for a (rows, cols) dense matrix; ``what`` names it."""
    if rows % lay.row_multiple:
        msg = (
            f"{what} has {rows} rows (dimension 0); the CUTLASS layout of {lay.dtype} needs "
            f"a multiple of {lay.row_multiple} rows (its meta rows interleave in bands of {lay.band})"
        )
        raise ValueError(msg)
    if cols % lay.col_multiple:
        msg = (
            f"{what} has {cols} columns (dimension 1); the CUTLASS layout of {lay.dtype} needs "
            f"a multiple of {lay.col_multiple} columns (an even number of {lay.meta} meta "
            f"columns of {lay.cols_per_word} values each)"
        )
        raise ValueError(msg)


def _violation(lay: _Layout, row: int, group: int, count: int) -> ValueError:
    m = lay.m
    msg = (
        f"dense violates the {lay.pattern} pattern the CUTLASS layout of {lay.dtype} needs "
        f"(at most {m // 2} non-zero in every group of {m} along a row): row {row}, group {group} "
        f"(columns {group * m}..{group * m + m - 1}) has {count} non-zero values"
    )
    return ValueError(msg)


def _violation_of(lay: _Layout, v: _backends.Violation) -> ValueError:
    return _violation(lay, v.row, v.group, v.found)


def _bad_code_of(lay: _Layout, name: str, v: _backends.Violation) -> ValueError:
    return _bad_code(lay, v.row, v.group, v.found, name)


def _bad_positions_of(lay: _Layout, v: _backends.Violation) -> ValueError:
    want = "two positions 0 <= idx0 < idx1 <= 3" if lay.m == 4 else "a position 0 or 1"
    msg = f"positions hold {v.found} for row {v.row}, group {v.group}; each group needs {want}"
    return ValueError(msg)


def _bad_nm_code(v: _backends.Violation) -> ValueError:
    from .nm import _bad_positions, packed_layout

    found = _backends.Violation(v.row, v.group, [v.found & 3, v.found >> 2])
    return _bad_positions(found, packed_layout(2, 4))


def _bad_code(lay: _Layout, row: int, group: int, code: int, name: str) -> ValueError:
    m = lay.m
    if m == 4:
        rule = f"idx0={code & 3} >= idx1={code >> 2}; each code must be idx0 | idx1 << 2 with idx0 < idx1"
    else:
        rule = "float32 pairs use 0b0100 (first kept) or 0b1110 (second kept)"
    msg = (
        f"{name} holds the invalid code {code:#06b} for row {row}, group {group} "
        f"(columns {group * m}..{group * m + m - 1}): {rule}"
    )
    return ValueError(msg)


# ---------------------------------------------------------------- public API


def to_cutlass(dense: Array, /) -> tuple[Array, Array]:
    """Compress a 2:4 sparse matrix into CUTLASS's ``(values, meta)``.

    Byte for byte the output of torch's
    ``sparse_semi_structured_from_dense_cutlass`` (see the module docstring for
    the layout, and for signaling NaNs, which torch alters and we keep), in
    ``dense``'s library and device.

    Parameters
    ----------
    dense : array
        2-D, float16, bfloat16 or int8 with at most 2 non-zeros (``!= 0``) in
        every group of 4 consecutive elements of a row, or float32 with at most
        1 in every pair. Rows a multiple of 32 (int8: 16); columns a multiple of
        32 (int8: 64, float32: 16).

    Returns
    -------
    values : array
        ``(rows, cols / 2)``, ``dense``'s dtype: the kept values, bits exact.
    meta : array
        int16 ``(rows, cols / 16)`` (float32: ``cols / 8``) or, for int8, int32
        ``(rows, cols / 32)``, in CUTLASS's interleaved order.

    Raises
    ------
    TypeError
        ``dense`` is not an array, or of another dtype.
    ValueError
        ``dense`` is not 2-D, its shape breaks the rules above (the message
        names the dimension and the multiple), or a group holds too many
        non-zeros (the first such group is named).

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.formats.cutlass import from_cutlass, to_cutlass
    >>> dense = np.zeros((32, 32), np.float16)
    >>> dense[:, 1::4] = 1.5
    >>> values, meta = to_cutlass(dense)
    >>> values.shape, meta.dtype, meta.shape
    ((32, 16), dtype('int16'), (32, 2))
    >>> bool((from_cutlass(values, meta) == dense).all())
    True
    """
    xp = _compat.array_namespace(dense=dense)
    rows, cols = _check_2d(dense, "dense")
    lay = _layout(dense.dtype, "the dtype of dense")
    _check_dense_shape(lay, rows, cols, "dense")
    if rows * cols == 0:
        dev = _compat.device(dense)
        return (
            xp.empty((rows, cols // 2), dtype=dense.dtype, device=dev),
            xp.empty((rows, cols // lay.cols_per_word), dtype=getattr(xp, lay.meta), device=dev),
        )
    try:
        return _backends.cutlass_encode(xp, dense, lay, partial(_violation_of, lay))
    except _backends.Violation as v:
        raise _violation_of(lay, v) from None


def from_cutlass(values: Array, meta: Array, /, *, shape: tuple[int, int] | None = None) -> Array:
    """Dense matrix from CUTLASS's ``(values, meta)``: the inverse of :func:`to_cutlass`.

    Equal, byte for byte, to torch's ``sparse_semi_structured_to_dense_cutlass``,
    except that float32 values whose halves look like float16 signaling NaNs
    come back unchanged (torch's decoder alters them; see the module docstring).

    Parameters
    ----------
    values : array
        ``(rows, cols / 2)``, float16, bfloat16, int8 or float32.
    meta : array
        The meta matrix of ``values`` (dtype and shape as :func:`to_cutlass`
        returns them), same library and device.
    shape : tuple of int, optional
        The dense shape, ``(rows, 2 * values.shape[1])``; only checked.

    Returns
    -------
    array
        ``(rows, cols)`` of ``values``' dtype, zeros where nothing is kept.

    Raises
    ------
    TypeError
        Unsupported dtype of ``values``, wrong meta dtype, mixed libraries.
    ValueError
        Shapes that do not fit, or a meta code that no encoder writes (the
        first one is named).

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.formats.cutlass import from_cutlass, to_cutlass
    >>> dense = np.zeros((32, 16), np.float32)
    >>> dense[:, 1::2] = -2.0
    >>> values, meta = to_cutlass(dense)
    >>> np.array_equal(from_cutlass(values, meta, shape=(32, 16)), dense)
    True
    """
    xp = _compat.array_namespace(values=values, meta=meta)
    rows, half = _check_2d(values, "values")
    _check_2d(meta, "meta")
    lay = _layout(values.dtype, "the dtype of values")
    cols = 2 * half
    if shape is not None and tuple(shape) != (rows, cols):
        msg = f"shape={tuple(shape)} does not fit values of shape {(rows, half)}: expected {(rows, cols)}"
        raise ValueError(msg)
    _check_dense_shape(lay, rows, cols, f"the dense matrix of values {(rows, half)}")
    _check_meta(xp, meta, lay, rows, cols, f"values of shape {(rows, half)}")
    if rows * cols == 0:
        return xp.zeros((rows, cols), dtype=values.dtype, device=_compat.device(values))
    try:
        return _backends.cutlass_decode(xp, values, meta, lay, partial(_bad_code_of, lay, "meta"))
    except _backends.Violation as v:
        raise _bad_code_of(lay, "meta", v) from None


def _check_meta(xp: ModuleType, meta: Array, lay: _Layout, rows: int, cols: int, of: str) -> None:
    if meta.dtype != getattr(xp, lay.meta):
        msg = f"meta has dtype {meta.dtype!s}; {lay.dtype} values need {lay.meta} meta"
        raise TypeError(msg)
    want = (rows, cols // lay.cols_per_word)
    if tuple(meta.shape) != want:
        msg = f"meta has shape {tuple(meta.shape)}; {of} ({lay.dtype}) need meta of shape {want}"
        raise ValueError(msg)


def cutlass_meta_from_positions(positions: Array, /, dtype: Any) -> Array:
    """CUTLASS meta from the simple layout: each kept value's position in its group.

    Parameters
    ----------
    positions : array
        ``(rows, cols / 2)`` integers: for 2:4, ``positions[i, 2g]`` and
        ``positions[i, 2g + 1]`` are the kept positions ``idx0 < idx1`` (0..3)
        of group ``g`` of row ``i``; for float32 (1:2), ``positions[i, g]`` is 0
        or 1. This is what ``positions()`` of an N:M result gives for 2:4 (1:2).
    dtype : dtype or str
        The dtype of the values (any library's, or its name): float16,
        bfloat16, int8 or float32. It fixes the meta dtype and layout.

    Returns
    -------
    array
        The meta matrix :func:`to_cutlass` would return with these positions,
        in ``positions``' library and device.

    Raises
    ------
    TypeError
        Unsupported ``dtype``, or ``positions`` not integers.
    ValueError
        Shape rules (as :func:`to_cutlass`, for the dense matrix
        ``(rows, 2 * positions.shape[1])``), or positions out of order or range
        (the first bad group is named).

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.formats.cutlass import cutlass_meta_from_positions, to_cutlass
    >>> dense = np.zeros((32, 32), np.float16)
    >>> dense[:, 1::4] = 1.0
    >>> dense[:, 3::4] = 2.0
    >>> positions = np.tile(np.array([1, 3], np.uint8), (32, 8))
    >>> np.array_equal(cutlass_meta_from_positions(positions, "float16"), to_cutlass(dense)[1])
    True
    """
    xp = _compat.array_namespace(positions=positions)
    rows, half = _check_2d(positions, "positions")
    lay = _layout(dtype, "dtype")
    if not _compat.isdtype(xp, positions.dtype, "integral"):
        msg = f"positions must hold integers, got dtype {positions.dtype!s}"
        raise TypeError(msg)
    cols = 2 * half
    _check_dense_shape(lay, rows, cols, f"the dense matrix of positions {(rows, half)}")
    try:
        return _backends.cutlass_pack(xp, positions, lay, partial(_bad_positions_of, lay))
    except _backends.Violation as v:
        raise _bad_positions_of(lay, v) from None


def _meta_from_two_four(packed: Array, dtype: Any) -> Array:
    """CUTLASS meta of a 2:4 result from its ``packed_positions`` directly: each nibble of a
    2:4 stream is a group's code ``idx0 | idx1 << 2`` (:mod:`arraysparse.formats.nm`), so
    only the CUTLASS order is left to apply. The shape rules are checked by the caller."""
    xp = _compat.array_namespace(packed_positions=packed)
    lay = _layout(dtype, "the result's dtype")
    try:
        return _backends.cutlass_pack_nm(xp, packed, lay, _bad_nm_code)
    except _backends.Violation as v:
        raise _bad_nm_code(v) from None


def positions_from_cutlass_meta(meta: Array, /, dtype: Any, *, shape: tuple[int, int] | None = None) -> Array:
    """The simple layout from CUTLASS meta: each kept value's position in its group, uint8.

    The inverse of :func:`cutlass_meta_from_positions`.

    Parameters
    ----------
    meta : array
        CUTLASS meta as :func:`to_cutlass` returns it.
    dtype : dtype or str
        The dtype of the values the meta belongs to (float16, bfloat16, int8,
        float32; any library's, or its name).
    shape : tuple of int, optional
        The dense shape ``(rows, cols)``; only checked against ``meta``.

    Returns
    -------
    array
        ``positions`` ``(rows, cols / 2)`` uint8 in ``meta``'s library and
        device (layout: see :func:`cutlass_meta_from_positions`).

    Raises
    ------
    TypeError
        Unsupported ``dtype`` or a meta dtype that does not go with it.
    ValueError
        Shapes that do not fit, or a meta code no encoder writes.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.formats.cutlass import positions_from_cutlass_meta, to_cutlass
    >>> dense = np.zeros((32, 32), np.float16)
    >>> dense[:, 0::4] = 3.0
    >>> _, meta = to_cutlass(dense)
    >>> positions_from_cutlass_meta(meta, np.float16)[0, :4]
    array([0, 2, 0, 2], dtype=uint8)
    """
    xp = _compat.array_namespace(meta=meta)
    rows, ncols = _check_2d(meta, "meta")
    lay = _layout(dtype, "dtype")
    cols = ncols * lay.cols_per_word
    if shape is not None and tuple(shape) != (rows, cols):
        msg = f"shape={tuple(shape)} does not fit meta of shape {(rows, ncols)} ({lay.dtype}): expected {(rows, cols)}"
        raise ValueError(msg)
    if meta.dtype != getattr(xp, lay.meta):
        msg = f"meta has dtype {meta.dtype!s}; {lay.dtype} values need {lay.meta} meta"
        raise TypeError(msg)
    _check_dense_shape(lay, rows, cols, f"the dense matrix of meta {(rows, ncols)}")
    try:
        return _backends.cutlass_unpack(xp, meta, lay, partial(_bad_code_of, lay, "meta"))
    except _backends.Violation as v:
        raise _bad_code_of(lay, "meta", v) from None
