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

from .. import _backends
from .._validation import check_nm

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


def encode(xp: Any, x2: Array, *, n: Any = None, m: Any = None) -> tuple[dict, dict, None]:
    if n is None or m is None:
        msg = "the N:M format needs n (zeros per group) and m (group size), e.g. n=2, m=4"
        raise ValueError(msg)
    n, m = check_params(n, m, tuple(x2.shape))
    try:
        values, positions = _backends.encode_nm(xp, x2, n, m)
    except _backends.Violation as v:
        raise _violation(v.row, v.group, v.found, n, m) from None
    return {"values": values, "positions": positions}, {"n": n, "m": m}, None


def decode(xp: Any, arrays: dict, params: dict, shape2: tuple[int, int], dtype: Any, target: Any = None) -> Array:
    return _backends.decode_nm(xp, arrays, shape2, params["n"], params["m"], dtype, target)
