"""N:M compressed: the ``m - n`` kept values of every group of ``m``, with their positions.

Groups are ``m`` consecutive elements along the last axis of the 2-D view
(for an ``(out, in)`` weight: along the input features, as sparse tensor
cores read them). ``values`` and ``positions`` have shape
``(rows, cols * (m - n) / m)``; ``positions`` holds each value's index inside
its group (0 .. m-1, ascending within a group) as uint8, enough for any
``m <= 256``.

A group with more than ``m - n`` non-zeros violates the pattern and raises,
naming the first such group. A group with fewer non-zeros is padded with
zero-valued slots taken in the order n, n+1, ..., m-1, 0, ..., n-1; for 2:4
this is exactly the choice of CUTLASS's (and torch's) encoder, so a 2:4
result converts to the CUTLASS layout by re-encoding its positions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._compat import device, nonzero_mask
from .._validation import check_nm
from ._common import Host, arange, gather_decode, host_array, take_flat

Array = Any

MAX_M = 256


def check_params(n: Any, m: Any, shape2: tuple[int, int]) -> tuple[int, int]:
    n, m = check_nm(n, m)
    if m > MAX_M:
        msg = f"m={m} is too large for the N:M format (positions are uint8: m <= {MAX_M})"
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


def encode(xp: Any, x2: Array, h: Host | None, *, n: Any = None, m: Any = None) -> tuple[dict, dict, None]:
    rows, cols = x2.shape
    if n is None or m is None:
        msg = "the N:M format needs n (zeros per group) and m (group size), e.g. n=2, m=4"
        raise ValueError(msg)
    n, m = check_params(n, m, (rows, cols))
    keep = m - n
    shape = (rows, cols // m * keep)
    params = {"n": n, "m": m}
    if h is not None:
        from .._kernels.cpu import sparse

        u, mask = h.bits()
        values = np.empty(shape, u.dtype)
        positions = np.empty(shape, np.uint8)
        bad = np.empty(rows, np.int64)
        if m <= sparse.TABLE_MAX_M and keep:
            table, fits = sparse.nm_table(n, m)
            sparse.nm_pack_table(u, mask, m, keep, table, fits, values, positions, bad)
        else:
            sparse.nm_pack(u, mask, n, m, values, positions, bad)
        hit = np.flatnonzero(bad >= 0)
        if hit.size:
            r, g = int(hit[0]), int(bad[hit[0]])
            raise _violation(r, g, int(np.count_nonzero(u[r, g * m : g * m + m] & mask)), n, m)
        return {"values": h.wrap_values(values), "positions": h.wrap_index(positions)}, params, None
    groups = cols // m
    x3 = xp.reshape(x2, (rows, groups, m))
    nz = nonzero_mask(xp, x3)
    counts = xp.sum(xp.astype(nz, xp.int64), axis=2)
    over = counts > keep
    if bool(xp.any(over)):
        flat = int(xp.argmax(xp.astype(xp.reshape(over, (-1,)), xp.int8)))
        r, g = divmod(flat, groups)
        raise _violation(r, g, int(xp.reshape(counts, (-1,))[flat]), n, m)
    pos = arange(xp, m, x2)
    # non-zeros first (by position), then zeros in the order n, ..., m-1, 0, ..., n-1
    key = xp.where(nz, pos, m + (pos - n) % m)
    kept = xp.sort(xp.argsort(key, axis=2, stable=True)[:, :, :keep], axis=2)
    base = arange(xp, rows, x2)[:, None, None] * cols + arange(xp, groups, x2)[None, :, None] * m
    values = xp.reshape(take_flat(xp, x2, xp.reshape(base + kept, (-1,))), shape)
    return {"values": values, "positions": xp.reshape(xp.astype(kept, xp.uint8), shape)}, params, None


def decode(xp: Any, arrays: dict, params: dict, shape2: tuple[int, int], h: Host | None) -> Array:
    rows, cols = shape2
    m = params["m"]
    values, positions = arrays["values"], arrays["positions"]
    if h is not None:
        from .._kernels.cpu import sparse

        vu, _ = h.bits(host_array(h, values))
        out = h.empty_values(shape2)  # the kernel writes the zeros too
        sparse.nm_scatter(vu, host_array(h, positions), m, out.view(vu.dtype))
        return h.wrap_values(out)
    keep = m - params["n"]
    groups = cols // m
    if keep == 0 or rows * cols == 0:
        return xp.zeros(shape2, dtype=values.dtype, device=device(values))
    base = arange(xp, rows, values)[:, None, None] * cols + arange(xp, groups, values)[None, :, None] * m
    flat = base + xp.reshape(xp.astype(positions, xp.int64), (rows, groups, keep))
    return gather_decode(xp, xp.reshape(flat, (-1,)), xp.reshape(values, (-1,)), shape2)
