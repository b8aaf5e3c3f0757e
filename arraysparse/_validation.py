"""Argument checks shared by every public function.

Each check names the argument and the bad value in its message; ``TypeError``
is for the wrong kind of object, ``ValueError`` for a wrong value.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np

from ._compat import isdtype, ml_dtype

__all__ = [
    "check_has_zero",
    "check_known_shape",
    "check_nm",
    "check_real",
    "check_same_shape",
    "normalize_axis",
    "positive_int",
    "prune_count",
]


def prune_count(sparsity: Any, size: int, *, name: str = "sparsity") -> int:
    """How many of ``size`` items a target sparsity prunes.

    The one rule used everywhere, the same as ``torch.nn.utils.prune``: an
    integer is a count of items to prune (``0 <= count <= size``); a float is a
    fraction in ``[0, 1]`` and prunes ``round(sparsity * size)`` items, Python's
    ``round`` (half to even: 0.5 of 5 items prunes 2, 0.5 of 7 prunes 4).
    ``bool`` is refused, as torch refuses it, because ``True`` reads as neither.
    """
    if isinstance(sparsity, (bool, np.bool_)):
        msg = f"{name}={sparsity!r} is a bool; give a fraction in [0, 1] or an int count"
        raise TypeError(msg)
    if isinstance(sparsity, numbers.Integral):
        count = operator.index(sparsity)
        if not 0 <= count <= size:
            msg = f"{name}={count} is a count of items to prune and must lie in [0, {size}]"
            raise ValueError(msg)
        return count
    if isinstance(sparsity, numbers.Real):
        s = float(sparsity)
        if math.isnan(s):
            msg = f"{name}=nan; give a fraction in [0, 1]"
            raise ValueError(msg)
        if not 0.0 <= s <= 1.0:
            msg = f"{name}={sparsity!r} must be a fraction in [0, 1] (or an int count)"
            raise ValueError(msg)
        return min(size, round(s * size))
    msg = f"{name} must be a float fraction or an int count, got {type(sparsity).__name__}"
    raise TypeError(msg)


def positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int no smaller than ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        msg = f"{name} must be an int, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    v = operator.index(value)
    if v < minimum:
        msg = f"{name}={v} must be >= {minimum}"
        raise ValueError(msg)
    return v


def check_nm(n: Any, m: Any) -> tuple[int, int]:
    """Validate an N:M pair: ``m >= 1`` items per group, ``0 <= n <= m`` zeros."""
    m = positive_int(m, "m")
    n = positive_int(n, "n", minimum=0)
    if n > m:
        msg = f"n={n} zeros per group cannot exceed the group size m={m}"
        raise ValueError(msg)
    return n, m


def normalize_axis(axis: Any, ndim: int, *, name: str = "axis") -> int:
    """``axis`` in ``[0, ndim)``; negative values count from the end."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        msg = f"{name} must be an int, got {type(axis).__name__} {axis!r}"
        raise TypeError(msg)
    a = operator.index(axis)
    if not -ndim <= a < ndim:
        msg = f"{name}={a} is out of range for an array of {ndim} dimension(s)"
        raise ValueError(msg)
    return a % ndim


def check_known_shape(x: Any, name: str) -> None:
    """Refuse a lazy array whose shape is not known (a Dask array of unknown chunk sizes)."""
    shape = tuple(x.shape)
    if any(s is None or (isinstance(s, float) and math.isnan(s)) for s in shape):
        msg = (
            f"{name} has an unknown shape {shape} (a lazy array whose chunk sizes are not known); "
            f"compute them first, e.g. {name}.compute_chunk_sizes()"
        )
        raise ValueError(msg)


def check_real(xp: Any, x: Any, name: str) -> None:
    """Refuse arrays whose values have no order (bool, complex), or whose shape is unknown."""
    check_known_shape(x, name)
    if x.dtype == xp.bool:
        msg = f"{name} has dtype bool; scores must be real numbers (cast with astype first)"
        raise TypeError(msg)
    if isdtype(xp, x.dtype, "complex floating"):
        msg = f"{name} has complex dtype {x.dtype}, which has no order; pass abs({name})"
        raise TypeError(msg)
    if not isdtype(xp, x.dtype, ("integral", "real floating")):
        msg = f"{name} has dtype {x.dtype}; a real numeric dtype is required"
        raise TypeError(msg)


def check_has_zero(x: Any, name: str, needs: str) -> None:
    """Refuse a dtype without a zero (ml_dtypes' float8_e8m0fnu: 0.0 becomes NaN in it),
    which ``needs`` (say what the caller must write or store) cannot do without."""
    info = ml_dtype(x.dtype)
    if info is not None and info.nonzero_bits is None:
        msg = f"{name} has dtype {info.name}, which has no zero; {needs}: cast {name} to a float dtype first"
        raise TypeError(msg)


def check_same_shape(a: Any, b: Any, name_a: str, name_b: str) -> None:
    """Two arrays of one shape, or a ``ValueError`` naming both."""
    if tuple(a.shape) != tuple(b.shape):
        msg = f"{name_b} has shape {tuple(b.shape)} but {name_a} has shape {tuple(a.shape)}"
        raise ValueError(msg)
