"""The standard-only implementation of every kernel job.

Written against the Python array API standard alone (``xp`` is the caller's
namespace), so it runs on any conforming library: JAX, array-api-strict, CuPy
and torch-CUDA until their own kernels exist. It sorts where the compiled
kernels select, which makes it slower but short enough to trust: the tests
use it as the oracle for the kernels.

Every selection breaks ties the same documented way: among equal scores the
one with the lower index (flat C order, or position in its group) is pruned
first. A stable ascending sort produces exactly that order.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from .._compat import backend_name, float_order_keys

Array = Any


def count_nan(xp: ModuleType, x: Array) -> int:
    """Number of NaN values in ``x`` (0 for integer dtypes)."""
    if not xp.isdtype(x.dtype, "real floating"):
        return 0
    return int(xp.sum(xp.astype(xp.isnan(x), xp.int64)))


def _order_values(xp: ModuleType, x: Array, magnitude: bool) -> Array:
    """Values whose ascending order is the pruning order."""
    if not magnitude:
        return x
    if xp.isdtype(x.dtype, "signed integer"):
        # abs(MIN) overflows in its own dtype: widen, or for int64 take the
        # two's-complement magnitude as uint64, where |MIN| = 2**63 fits
        if x.dtype != xp.int64:
            return xp.abs(xp.astype(x, xp.int64))
        u = xp.astype(x, xp.uint64)
        return xp.where(x < 0, ~u + 1, u)
    return xp.abs(x)


def _rank_values(xp: ModuleType, x: Array, magnitude: bool) -> Array:
    """:func:`_order_values`, except JAX floats: exact integer keys of their bits
    (XLA's CPU sort ranks subnormals as zero)."""
    if backend_name(x) == "jax" and xp.isdtype(x.dtype, "real floating"):
        return float_order_keys(xp, x, magnitude)
    return _order_values(xp, x, magnitude)


def _inverse_rank(xp: ModuleType, values: Array, axis: int) -> Array:
    """Rank of each element along ``axis`` in stable ascending order."""
    order = xp.argsort(values, axis=axis, stable=True)
    return xp.argsort(order, axis=axis, stable=True)


def topk_keep(xp: ModuleType, x: Array, n_prune: int, magnitude: bool) -> Array:
    """Keep-mask pruning exactly ``n_prune`` of the smallest values of ``x``."""
    flat = xp.reshape(_rank_values(xp, x, magnitude), (-1,))
    if flat.shape[0] == 0:
        return xp.reshape(xp.astype(flat, xp.bool), x.shape)
    rank = _inverse_rank(xp, flat, axis=0)
    return xp.reshape(rank >= n_prune, x.shape)


def nm_keep(xp: ModuleType, x: Array, n: int, m: int, axis: int, magnitude: bool) -> Array:
    """Keep-mask with ``n`` zeros in every group of ``m`` along ``axis``."""
    v = xp.moveaxis(_rank_values(xp, x, magnitude), axis, -1)
    moved = v.shape
    if math.prod(moved) == 0:
        return xp.zeros(x.shape, dtype=xp.bool, device=_device(x))
    groups = xp.reshape(v, (*moved[:-1], moved[-1] // m, m))
    keep = _inverse_rank(xp, groups, axis=-1) >= n
    return xp.moveaxis(xp.reshape(keep, moved), -1, axis)


def _powered(xp: ModuleType, x: Array, ord: float) -> Array:
    # accumulate in float64 where the backend has it, as the CPU kernels do, so
    # sums of squares of float16/float32 values neither overflow nor differ by
    # backend; cast before abs, which overflows on integer MIN
    a = xp.abs(xp.astype(x, _accumulator(xp, x)))
    if ord == 1 or math.isinf(ord):
        return a
    if ord == 2:
        return a * a
    return a**ord


def _finish(xp: ModuleType, s: Array, ord: float) -> Array:
    if ord == 1 or math.isinf(ord):
        return s
    if ord == 2:
        return xp.sqrt(s)
    return s ** (1.0 / ord)


def _reduce(xp: ModuleType, a: Array, axis: tuple[int, ...], ord: float) -> Array:
    if math.isinf(ord):
        return xp.max(a, axis=axis)
    return xp.sum(a, axis=axis)


def slice_norms(xp: ModuleType, x: Array, axis: int, ord: float) -> Array:
    """Lp norm of every slice ``x[..., i, ...]`` along ``axis``: shape ``(x.shape[axis],)``."""
    v = xp.moveaxis(x, axis, 0)
    v = xp.reshape(v, (v.shape[0], -1)) if v.shape[0] else xp.reshape(v, (0, 0))
    if v.shape[1] == 0:
        return xp.zeros((v.shape[0],), dtype=_powered(xp, v, ord).dtype, device=_device(x))
    return _finish(xp, _reduce(xp, _powered(xp, v, ord), (1,), ord), ord)


def block_norms(xp: ModuleType, x: Array, block: tuple[int, ...], ord: float) -> Array:
    """Lp norm of every tile of shape ``block`` laid over the trailing axes.

    Returns shape ``x.shape[:-k] + (x.shape[-k] // block[0], ...)``.
    """
    k = len(block)
    lead = tuple(x.shape[: x.ndim - k])
    split: list[int] = list(lead)
    for size, b in zip(x.shape[x.ndim - k :], block):
        split += [size // b, b]
    v = xp.reshape(x, tuple(split))
    block_axes = tuple(len(lead) + 2 * i + 1 for i in range(k))
    out_shape = lead + tuple(split[len(lead) + 2 * i] for i in range(k))
    if math.prod(out_shape) == 0:
        return xp.zeros(out_shape, dtype=_powered(xp, v, ord).dtype, device=_device(x))
    return _finish(xp, _reduce(xp, _powered(xp, v, ord), block_axes, ord), ord)


def _accumulator(xp: ModuleType, x: Array) -> Any:
    """float64 where ``x``'s device supports it, else the default float."""
    info = xp.__array_namespace_info__()
    if "float64" in info.dtypes(kind="real floating", device=_device(x)):
        return xp.float64
    return default_float(xp, x)


def default_float(xp: ModuleType, x: Array) -> Any:
    """The namespace's default real floating dtype on ``x``'s device."""
    return xp.__array_namespace_info__().default_dtypes(device=_device(x))["real floating"]


def _device(x: Array) -> Any:
    from .._compat import device

    return device(x)
