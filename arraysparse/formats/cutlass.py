"""The 2:4 compressed layout of CUTLASS, the one torch's semi-structured sparse tensors use.

:func:`to_cutlass` is byte for byte what torch's CPU reference encoder
``torch.sparse._semi_structured_conversions.sparse_semi_structured_from_dense_cutlass``
returns, and :func:`from_cutlass` what ``sparse_semi_structured_to_dense_cutlass``
returns, on every array library (NumPy and CPU torch run Numba kernels, the
others a standard-only implementation). cuSPARSELt's layout is opaque and
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

The simple layout ("positions")
-------------------------------
The N:M compressed format describes the same choice without the CUTLASS
reordering: ``positions`` ``(rows, cols / 2)`` uint8 holds, for each kept
value, its position inside its group: for 2:4, ``positions[i, 2g]`` and
``positions[i, 2g + 1]`` are ``idx0 < idx1`` of group ``g`` (0..3); for
float32 1:2, ``positions[i, g]`` is 0 or 1. :func:`cutlass_meta_from_positions`
and :func:`positions_from_cutlass_meta` convert between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .. import _compat

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
    kind: str  # kernel kind in arraysparse._kernels.cpu.cutlass
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
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32}
_SIGNED = {1: np.int8, 2: np.int16, 4: np.int32}


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


# ---------------------------------------------------------------- host (NumPy, CPU torch)


def _host_bits(x: Array) -> np.ndarray | None:
    """Unsigned NumPy view of ``x``'s bytes (NumPy, CPU torch), else None. bfloat16 stays bits."""
    if _compat.backend_name(x) == "torch":
        import torch

        if x.device.type != "cpu" or x.layout != torch.strided:
            return None
        t = x.detach().resolve_neg()
        signed = {1: torch.int8, 2: torch.int16, 4: torch.int32}.get(t.element_size())
        if signed is None:
            return None
        return t.view(signed).numpy().view(_UNSIGNED[t.element_size()])
    h = _compat.host_view(x)
    if h is None or h.dtype.itemsize not in _UNSIGNED:
        return None
    return h.view(_UNSIGNED[h.dtype.itemsize])


def _wrap(bits: np.ndarray, like: Array, dtype: Any) -> Array:
    """Kernel output ``bits`` as an array of ``like``'s library with dtype ``dtype`` (same width)."""
    if _compat.backend_name(like) == "torch":
        import torch

        t = torch.from_numpy(np.ascontiguousarray(bits).view(_SIGNED[bits.dtype.itemsize]))
        return t.view(dtype)
    return bits.view(dtype)


# ---------------------------------------------------------------- standard-only pieces


def _arange(xp: ModuleType, n: int, like: Array) -> Array:
    return xp.arange(n, device=_compat.device(like))


def _meta_sources(xp: ModuleType, lay: _Layout, rows: int, ncols: int, like: Array) -> Array:
    """For each reordered meta word (flat), the flat index of the meta word it holds."""
    p = _arange(xp, rows * ncols, like)
    rr = (p % (2 * rows)) // 2
    cc = (p // (2 * rows)) * 2 + p % 2
    # undo the 2 x 2 transposition, then the row interleave
    down = (rr % 2 == 1) & (cc % 2 == 0)
    up = (rr % 2 == 0) & (cc % 2 == 1)
    r = xp.where(down, rr - 1, xp.where(up, rr + 1, rr))
    c = xp.where(down, cc + 1, xp.where(up, cc - 1, cc))
    band, iw = lay.band, lay.interweave
    i = r // band * band + (r % iw) * 8 + (r % band) // iw
    return i * ncols + c


def _meta_targets(xp: ModuleType, lay: _Layout, rows: int, ncols: int, like: Array) -> Array:
    """torch's ``_calculate_meta_reordering_scatter_offsets``: where meta word (flat) goes."""
    q = _arange(xp, rows * ncols, like)
    i, j = q // ncols, q % ncols
    band, iw = lay.band, lay.interweave
    r = i // band * band + (i % 8) * iw + (i % band) // 8
    tr = (r % 2 == 0) & (j % 2 == 1)
    bl = (r % 2 == 1) & (j % 2 == 0)
    r = xp.where(tr, r + 1, xp.where(bl, r - 1, r))
    j = xp.where(tr, j - 1, xp.where(bl, j + 1, j))
    return (j // 2) * rows * 2 + r * 2 + j % 2


def _pack_codes(xp: ModuleType, codes: Array, lay: _Layout) -> Array:
    """Codes (rows, groups) int32 -> meta (rows, ncols) in CUTLASS order, lay.meta dtype."""
    rows, groups = codes.shape
    cpw = lay.codes_per_word
    ncols = groups // cpw
    c3 = xp.reshape(codes, (rows, ncols, cpw))
    word = xp.zeros((rows, ncols), dtype=xp.int32, device=_compat.device(codes))
    for q in range(cpw - 1):
        word = word | (c3[:, :, q] << (4 * q))
    # the top nibble carries the sign: add it signed so the word fits the signed dtype
    top = c3[:, :, cpw - 1]
    word = word + xp.where(top >= 8, top - 16, top) * (1 << (4 * (cpw - 1)))
    flat = xp.astype(xp.reshape(word, (-1,)), getattr(xp, lay.meta))
    return xp.reshape(xp.take(flat, _meta_sources(xp, lay, rows, ncols, codes), axis=0), (rows, ncols))


def _unpack_codes(xp: ModuleType, meta: Array, lay: _Layout) -> Array:
    """Meta (rows, ncols) in CUTLASS order -> codes (rows, groups) int32."""
    rows, ncols = meta.shape
    flat = xp.take(xp.reshape(meta, (-1,)), _meta_targets(xp, lay, rows, ncols, meta), axis=0)
    word = xp.astype(xp.reshape(flat, (rows, ncols)), xp.int32)
    codes = [(word >> (4 * q)) & 15 for q in range(lay.codes_per_word)]
    return xp.reshape(xp.stack(codes, axis=-1), (rows, ncols * lay.codes_per_word))


def _first(xp: ModuleType, flags: Array) -> tuple[int, int] | None:
    """(row, column) of the first true element of a 2-D boolean array, or None."""
    if not bool(xp.any(flags)):
        return None
    flat = int(xp.argmax(xp.astype(xp.reshape(flags, (-1,)), xp.int8)))
    return divmod(flat, int(flags.shape[1]))


def _check_codes(xp: ModuleType, codes: Array, lay: _Layout, name: str) -> None:
    if lay.m == 4:
        bad = (codes & 3) >= (codes >> 2)
    else:
        bad = (codes != 4) & (codes != 14)
    hit = _first(xp, bad)
    if hit is not None:
        r, g = hit
        raise _bad_code(lay, r, g, int(codes[r, g]), name)


def _as_bits(xp: ModuleType, x: Array, lay: _Layout) -> tuple[Array, bool]:
    """``x`` bitcast to signed integers where the library can (``.view``), and whether it was.

    Gathers and selects on integers move bits on every library; on floats
    some (XLA on CPU for bfloat16) canonicalise NaN payloads.
    """
    if lay.dtype == "int8":
        return x, False
    try:
        return x.view(xp.int16 if lay.m == 4 else xp.int32), True
    except (AttributeError, TypeError, ValueError):  # no bitcast in the standard
        return x, False


def _encode_reference(xp: ModuleType, dense: Array, lay: _Layout) -> tuple[Array, Array]:
    rows, cols = dense.shape
    m = lay.m
    groups = cols // m
    bits, cast = _as_bits(xp, dense, lay)
    b3 = xp.reshape(bits, (rows, groups, m))
    if cast:  # the sign bit does not make a value non-zero: -0.0 == 0
        nz = (b3 & (0x7FFF if m == 4 else 0x7FFFFFFF)) != 0
    else:
        nz = b3 != 0
    counts = xp.sum(xp.astype(nz, xp.int32), axis=2)
    hit = _first(xp, counts > m // 2)
    if hit is not None:
        raise _violation(lay, hit[0], hit[1], int(counts[hit[0], hit[1]]))
    base = xp.reshape(_arange(xp, rows * groups, dense), (rows, groups)) * m
    if m == 4:
        # torch's encoder (its Espresso-minimised formulas; m2 is not read)
        m0, m1, m3 = nz[:, :, 0], nz[:, :, 1], nz[:, :, 3]

        def bit(b: Array) -> Array:
            return xp.astype(b, xp.int32)

        i0 = bit(~m0 & m1) + 2 * bit(~m0 & ~m1)
        i1 = bit((m0 & m1) | (~m0 & ~m1) | m3) + 2 * bit((~m0 & m1) | ~m1)
        codes = i0 | (i1 << 2)
        index = xp.stack((base + i0, base + i1), axis=-1)
    else:
        second = ~nz[:, :, 0]
        codes = 4 + 10 * xp.astype(second, xp.int32)
        index = base + xp.astype(second, base.dtype)
    values = xp.reshape(xp.take(xp.reshape(bits, (-1,)), xp.reshape(index, (-1,)), axis=0), (rows, cols // 2))
    if cast:
        values = values.view(dense.dtype)
    return values, _pack_codes(xp, xp.astype(codes, xp.int32), lay)


def _decode_reference(xp: ModuleType, values: Array, meta: Array, lay: _Layout) -> Array:
    rows, half = values.shape
    codes = _unpack_codes(xp, meta, lay)
    _check_codes(xp, codes, lay, "meta")
    groups = half * 2 // lay.m
    bits, cast = _as_bits(xp, values, lay)
    if lay.m == 4:
        v = xp.reshape(bits, (rows, groups, 2))
        v0, v1 = v[:, :, 0], v[:, :, 1]
        zero = xp.zeros_like(v0)
        i0, i1 = codes & 3, codes >> 2
        lanes = [xp.where(i0 == k, v0, xp.where(i1 == k, v1, zero)) for k in range(4)]
    else:
        v = xp.reshape(bits, (rows, groups))
        zero = xp.zeros_like(v)
        second = codes == 14
        lanes = [xp.where(second, zero, v), xp.where(second, v, zero)]
    dense = xp.reshape(xp.stack(lanes, axis=-1), (rows, half * 2))
    return dense.view(values.dtype) if cast else dense


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
    bits = _host_bits(dense)
    if bits is None:
        return _encode_reference(xp, dense, lay)
    from .._kernels.cpu import cutlass as kernels

    values, meta, bad = kernels.encode(bits, lay.kind)
    if bad.any():
        r = int(np.argmax(bad))
        nonzero = bits[r] != 0 if lay.dtype == "int8" else (bits[r] << 1) != 0  # floats: -0.0 is 0
        counts = np.count_nonzero(nonzero.reshape(-1, lay.m), axis=1)
        g = int(np.argmax(counts > lay.m // 2))
        raise _violation(lay, r, g, int(counts[g]))
    meta_dtype = _SIGNED[meta.dtype.itemsize]
    if _compat.backend_name(dense) == "torch":
        import torch

        meta_dtype = getattr(torch, lay.meta)
    return _wrap(values, dense, dense.dtype), _wrap(meta, dense, meta_dtype)


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
    vbits, mbits = _host_bits(values), _host_bits(meta)
    if vbits is None or mbits is None:
        return _decode_reference(xp, values, meta, lay)
    from .._kernels.cpu import cutlass as kernels

    dense, bad = kernels.decode(vbits, mbits, lay.kind)
    if bad.any():
        codes = kernels.unpack_codes(mbits, lay.kind)
        _check_codes(_compat.array_namespace(codes=codes), codes.astype(np.int32), lay, "meta")
    return _wrap(dense, values, values.dtype)


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
        or 1. This is the N:M compressed format's ``positions`` for 2:4 (1:2).
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
    if not xp.isdtype(positions.dtype, "integral"):
        msg = f"positions must hold integers, got dtype {positions.dtype!s}"
        raise TypeError(msg)
    cols = 2 * half
    _check_dense_shape(lay, rows, cols, f"the dense matrix of positions {(rows, half)}")
    groups = cols // lay.m
    h = _compat.host_view(positions)
    host = h is not None
    if host:
        xp = _compat.array_namespace(positions=h)
        p = h.astype(np.int32)
    else:
        p = xp.astype(positions, xp.int32)
    if lay.m == 4:
        p3 = xp.reshape(p, (rows, groups, 2))
        p0, p1 = p3[:, :, 0], p3[:, :, 1]
        bad = (p0 < 0) | (p0 >= p1) | (p1 > 3)
        codes = p0 | (p1 << 2)
    else:
        bad = (p < 0) | (p > 1)
        codes = 4 + 10 * xp.astype(p == 1, xp.int32)
    hit = _first(xp, bad) if groups else None
    if hit is not None:
        r, g = hit
        found = [int(v) for v in p[r, g * (lay.m // 2) : (g + 1) * (lay.m // 2)]]
        want = "two positions 0 <= idx0 < idx1 <= 3" if lay.m == 4 else "a position 0 or 1"
        msg = f"positions hold {found} for row {r}, group {g}; each group needs {want}"
        raise ValueError(msg)
    if not host:
        if rows * cols == 0:
            return xp.empty((rows, cols // lay.cols_per_word), dtype=getattr(xp, lay.meta),
                            device=_compat.device(positions))
        return _pack_codes(xp, xp.astype(codes, xp.int32), lay)
    from .._kernels.cpu import cutlass as kernels

    meta = kernels.pack_codes(codes.astype(np.uint8), lay.kind)
    return _compat.from_host(meta.view(_SIGNED[meta.dtype.itemsize]), positions)


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
    mbits = _host_bits(meta)
    if mbits is not None:
        from .._kernels.cpu import cutlass as kernels

        codes = kernels.unpack_codes(mbits, lay.kind).astype(np.int32)
        cxp = _compat.array_namespace(codes=codes)
    else:
        if rows * cols == 0:
            return xp.empty((rows, cols // 2), dtype=xp.uint8, device=_compat.device(meta))
        codes = _unpack_codes(xp, meta, lay)
        cxp = xp
    if rows * cols:
        _check_codes(cxp, codes, lay, "meta")
    if lay.m == 4:
        pos = cxp.reshape(cxp.stack((codes & 3, codes >> 2), axis=-1), (rows, cols // 2))
    else:
        pos = cxp.astype(codes == 14, cxp.int32)
    pos = cxp.astype(pos, cxp.uint8)
    return _compat.from_host(pos, meta) if mbits is not None else pos
