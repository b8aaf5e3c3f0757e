"""N:M compressed: the ``m - n`` kept values of every group of ``m``, and their packed positions.

Groups are ``m`` consecutive elements along the last axis of the 2-D view
(for an ``(out, in)`` weight: along the input features, as sparse tensor
cores read them). A result holds two arrays:

* ``values`` ``(rows, cols * (m - n) / m)``, the input's dtype: the kept
  values of every group, in ascending position order;
* ``packed_positions`` ``(rows, ceil(groups * bits_per_group / 8))`` uint8,
  ``groups = cols / m``: where in its group each kept value sits, packed.

The packed layout (:func:`packed_layout`)
-----------------------------------------
Let ``keep = m - n`` and ``b = ceil(log2 m)`` (0 for ``m = 1``). Each group
contributes the bits of one of two fields, the same for every group:

* **positions** (when ``keep * b <= m``): its ``keep`` positions, ascending,
  ``b`` bits each, the first position in the lowest bits;
* **bitmask** (when ``m < keep * b``, strictly smaller): ``m`` bits, bit ``i``
  set when position ``i`` is kept (exactly ``keep`` bits set).

A row's groups are concatenated in order into one little-endian bit stream:
bit ``k`` of the stream is bit ``k % 8`` of byte ``k // 8`` of that row of
``packed_positions``, and every field is written lowest bit first. The last
byte of a row is padded with zero bits; no field crosses into the next row.
For 2:4 (``b = 2``, positions, 4 bits a group) byte ``j`` holds group ``2j``
in its low nibble and group ``2j + 1`` in its high nibble, each nibble being
``idx0 | idx1 << 2``, which is the 4-bit code of CUTLASS's metadata. 4:8
stores one byte per group (its bitmask), 12:16 two 4-bit positions a byte.
Positions cost ``min(keep * b, m)`` bits a group instead of ``8 * keep``.

A group with more than ``m - n`` non-zeros violates the pattern and raises,
naming the first such group. A group with fewer non-zeros is padded with
zero-valued slots taken in the order n, n+1, ..., m-1, 0, ..., n-1; for 2:4
this is exactly the choice of CUTLASS's (and torch's) encoder, so a 2:4
result converts to the CUTLASS layout by re-encoding its positions.
:meth:`~arraysparse.formats.base.SparseCompressionResult.positions` unpacks
them: one uint8 per kept value, the layout
:func:`~arraysparse.formats.cutlass.cutlass_meta_from_positions` takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import _backends
from .._validation import check_nm

Array = Any

MAX_M = 256


@dataclass(frozen=True)
class PackedLayout:
    """How an ``n:m`` result packs its positions (see the module docstring)."""

    n: int
    """Zeros in every group."""
    m: int
    """Group size."""

    @property
    def keep(self) -> int:
        """Values kept per group: ``m - n``."""
        return self.m - self.n

    @property
    def position_bits(self) -> int:
        """``b = ceil(log2 m)``: the bits of one position (0 for ``m = 1``)."""
        return (self.m - 1).bit_length()

    @property
    def bitmask(self) -> bool:
        """Whether each group is stored as its ``m``-bit mask (strictly fewer bits than
        ``keep`` positions); else as its ``keep`` positions of :attr:`position_bits` bits."""
        return self.m < self.keep * self.position_bits

    @property
    def field_bits(self) -> int:
        """Bits of one field of the stream: 1 (a mask bit) or :attr:`position_bits`."""
        return 1 if self.bitmask else self.position_bits

    @property
    def group_bits(self) -> int:
        """Bits a group takes in the stream: ``min(keep * b, m)`` (never more than ``m``)."""
        return self.m if self.bitmask else self.keep * self.position_bits

    def row_bytes(self, cols: int) -> int:
        """Bytes of one row of ``packed_positions`` for a row of ``cols`` elements."""
        return math.ceil(cols // self.m * self.group_bits / 8)


def packed_layout(n: int, m: int) -> PackedLayout:
    """The packing of the positions of an ``n:m`` result (``n`` zeros in every ``m``).

    Examples
    --------
    >>> from arraysparse.formats.nm import packed_layout
    >>> lay = packed_layout(2, 4)
    >>> lay.bitmask, lay.group_bits, lay.row_bytes(4096)
    (False, 4, 512)
    >>> packed_layout(4, 8).bitmask, packed_layout(4, 8).group_bits
    (True, 8)
    """
    return PackedLayout(int(n), int(m))


def check_params(n: Any, m: Any, shape2: tuple[int, int]) -> tuple[int, int]:
    n, m = check_nm(n, m)
    if m > MAX_M:
        msg = f"m={m} is too large for the N:M format (positions of up to 8 bits: m <= {MAX_M})"
        raise ValueError(msg)
    cols = shape2[1]
    if cols % m:
        msg = (
            f"m={m} must divide the length {cols} of the last axis (of the 2-D view {shape2}); "
            "groups never cross rows"
        )
        raise ValueError(msg)
    return n, m


def _violation(row: int, group: int, count: int, n: int, m: int) -> ValueError:
    msg = (
        f"x violates the {n}:{m} pattern ({n} zeros in every {m}): group {group} of row {row} "
        f"(columns {group * m}..{group * m + m - 1}) has {count} non-zeros, at most {m - n} allowed"
    )
    return ValueError(msg)


def encode(xp: Any, x2: Array, *, n: Any = None, m: Any = None) -> tuple[dict, dict, None]:
    if n is None or m is None:
        msg = "the N:M format needs n (zeros per group) and m (group size), e.g. n=2, m=4"
        raise ValueError(msg)
    n, m = check_params(n, m, tuple(x2.shape))
    try:
        values, packed = _backends.encode_nm(xp, x2, packed_layout(n, m))
    except _backends.Violation as v:
        raise _violation(v.row, v.group, v.found, n, m) from None
    return {"values": values, "packed_positions": packed}, {"n": n, "m": m}, None


def _checked(arrays: dict, params: dict, shape2: tuple[int, int]) -> PackedLayout:
    """The layout, after checking that the arrays have the shapes it gives."""
    lay = packed_layout(params["n"], params["m"])
    rows, cols = shape2
    want = {"values": (rows, cols // lay.m * lay.keep), "packed_positions": (rows, lay.row_bytes(cols))}
    for name, shape in want.items():
        a = arrays.get(name)
        if a is None:
            msg = f"the {lay.n}:{lay.m} format needs the arrays 'values' and 'packed_positions'; {name!r} is missing"
            raise ValueError(msg)
        if tuple(a.shape) != shape:
            msg = f"{name} has shape {tuple(a.shape)}; {lay.n}:{lay.m} of a {rows} x {cols} matrix needs {shape}"
            raise ValueError(msg)
    if "uint8" not in str(arrays["packed_positions"].dtype):
        msg = f"packed_positions has dtype {arrays['packed_positions'].dtype}; it must be uint8"
        raise TypeError(msg)
    return lay


def _bad_positions(v: _backends.Violation, lay: PackedLayout) -> ValueError:
    if lay.bitmask:
        held, want = f"a mask of the positions {v.found}", f"{lay.keep} of the {lay.m} mask bits set"
    else:
        held, want = f"the positions {v.found}", f"{lay.keep} ascending positions below {lay.m}"
    msg = (
        f"packed_positions is corrupt: group {v.group} of row {v.row} holds {held}; "
        f"every {lay.n}:{lay.m} group needs {want}"
    )
    return ValueError(msg)


def decode(xp: Any, arrays: dict, params: dict, shape2: tuple[int, int], dtype: Any, target: Any = None) -> Array:
    lay = _checked(arrays, params, shape2)
    try:
        return _backends.decode_nm(xp, arrays, shape2, lay, dtype, target)
    except _backends.Violation as v:
        raise _bad_positions(v, lay) from None


def positions(xp: Any, arrays: dict, params: dict, shape2: tuple[int, int]) -> Array:
    """Each kept value's position in its group, uint8 ``(rows, cols * (m - n) / m)``."""
    lay = _checked(arrays, params, shape2)
    try:
        return _backends.unpack_nm_positions(xp, arrays["packed_positions"], shape2, lay)
    except _backends.Violation as v:
        raise _bad_positions(v, lay) from None
