"""Packed bitmask: the non-zero values in row-major order plus one bit per element.

``bitmask`` has shape ``(rows, ceil(cols / 8))``, uint8, bit ``j % 8`` of byte
``j // 8`` set where element ``(r, j)`` is non-zero (``numpy.packbits(...,
bitorder="little")`` along the rows, as compressed-tensors' bitmask formats).
"""

from __future__ import annotations

from typing import Any

from .. import _backends

Array = Any


def encode(xp: Any, x2: Array) -> tuple[dict, dict, int]:
    values, bits, nnz = _backends.encode_bitmask(xp, x2)
    return {"values": values, "bitmask": bits}, {}, nnz


def decode(xp: Any, arrays: dict, shape2: tuple[int, int], dtype: Any, target: Any = None) -> Array:
    return _backends.decode_bitmask(xp, arrays, shape2, dtype, target)
