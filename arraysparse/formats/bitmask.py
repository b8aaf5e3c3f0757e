"""Packed bitmask: the non-zero values in row-major order plus one bit per element.

``bitmask`` has shape ``(rows, ceil(cols / 8))``, uint8, bit ``j % 8`` of byte
``j // 8`` set where element ``(r, j)`` is non-zero (``numpy.packbits(...,
bitorder="little")`` along the rows, as compressed-tensors' bitmask formats).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._compat import device, nonzero_mask
from ._common import Host, arange, gather_decode, host_array, take_flat

Array = Any


def encode(xp: Any, x2: Array, h: Host | None) -> tuple[dict, dict, int]:
    rows, cols = x2.shape
    if h is not None:
        u, mask = h.bits()
        nz = (u & mask) != 0
        values = u[nz]
        bits = np.packbits(nz, axis=1, bitorder="little")
        return {"values": h.wrap_values(values), "bitmask": h.wrap_index(bits)}, {}, values.shape[0]
    nz = nonzero_mask(xp, x2)
    (flat,) = xp.nonzero(xp.reshape(nz, (-1,)))
    values = take_flat(xp, x2, flat)
    nbytes = (cols + 7) // 8
    pad = nbytes * 8 - cols
    b = xp.astype(nz, xp.uint8)
    if pad:
        b = xp.concat([b, xp.zeros((rows, pad), dtype=xp.uint8, device=device(x2))], axis=1)
    weights = xp.astype(2 ** arange(xp, 8, x2), xp.uint8)
    bits = xp.sum(xp.reshape(b, (rows, nbytes, 8)) * weights, axis=2, dtype=xp.uint8)
    return {"values": values, "bitmask": bits}, {}, values.shape[0]


def decode(xp: Any, arrays: dict, shape2: tuple[int, int], h: Host | None) -> Array:
    rows, cols = shape2
    values, bits = arrays["values"], arrays["bitmask"]
    if h is not None:
        nz = np.unpackbits(host_array(h, bits), axis=1, count=cols, bitorder="little").view(bool)
        out = h.zeros_values(shape2)
        out[nz] = host_array(h, values)
        return h.wrap_values(out)
    shifts = xp.astype(arange(xp, 8, values), xp.uint8)
    unpacked = (bits[:, :, None] >> shifts) & xp.asarray(1, dtype=xp.uint8)
    # the width spelled out: -1 is ambiguous (and refused) when there are no rows
    nz = xp.reshape(unpacked, (rows, bits.shape[1] * 8))[:, :cols] == 1
    (flat,) = xp.nonzero(xp.reshape(nz, (-1,)))
    return gather_decode(xp, flat, values, shape2)
