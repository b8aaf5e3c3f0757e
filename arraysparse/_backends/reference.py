"""The standard-only implementation of the selection, norm, calibration and SparseGPT jobs.

Written against the Python array API standard alone (``xp`` is the caller's
namespace), so it runs on any conforming library: JAX, array-api-strict, CuPy
and torch-CUDA until their own kernels exist. It sorts where the compiled
kernels select, which makes it slower but short enough to trust: the tests
use it as the oracle for the kernels. The formats' standard-only codecs are
in :mod:`.reference_formats`.

Every selection breaks ties the same documented way: among equal scores the
one with the lower index (flat C order, or position in its group) is pruned
first. A stable ascending sort produces exactly that order.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from .._compat import backend_name, count_true, device, float_order_keys, int_dtype, isdtype
from .shared import resolve_counts

Array = Any


def count_nan(xp: ModuleType, x: Array) -> int:
    """Number of NaN values in ``x`` (0 for integer dtypes)."""
    if not isdtype(xp, x.dtype, "real floating"):
        return 0
    return count_true(xp, xp.isnan(x))


def _order_values(xp: ModuleType, x: Array, magnitude: bool) -> Array:
    """Values whose ascending order is the pruning order."""
    if not magnitude:
        return x
    if isdtype(xp, x.dtype, "signed integer"):
        # abs(MIN) overflows in its own dtype: widen, or for the widest integers the
        # library has (int64; int32 for JAX without x64) take the two's-complement
        # magnitude as the unsigned type of that width, where |MIN| fits
        wide = int_dtype(xp, x)
        bits = xp.iinfo(x.dtype).bits
        if bits < xp.iinfo(wide).bits:
            return xp.abs(xp.astype(x, wide))
        u = xp.astype(x, getattr(xp, f"uint{bits}"))
        return xp.where(x < 0, ~u + 1, u)
    return xp.abs(x)


def _rank_values(xp: ModuleType, x: Array, magnitude: bool) -> Array:
    """:func:`_order_values`, except JAX floats: exact integer keys of their bits
    (XLA's CPU sort ranks subnormals as zero)."""
    if backend_name(x) == "jax" and isdtype(xp, x.dtype, "real floating"):
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
        return xp.zeros(x.shape, dtype=xp.bool, device=device(x))
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
        return xp.zeros((v.shape[0],), dtype=_powered(xp, v, ord).dtype, device=device(x))
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
        return xp.zeros(out_shape, dtype=_powered(xp, v, ord).dtype, device=device(x))
    return _finish(xp, _reduce(xp, _powered(xp, v, ord), block_axes, ord), ord)


def _accumulator(xp: ModuleType, x: Array) -> Any:
    """float64 where ``x``'s device supports it, else the default float."""
    info = xp.__array_namespace_info__()
    if "float64" in info.dtypes(kind="real floating", device=device(x)):
        return xp.float64
    return default_float(xp, x)


def default_float(xp: ModuleType, x: Array) -> Any:
    """The namespace's default real floating dtype on ``x``'s device."""
    return xp.__array_namespace_info__().default_dtypes(device=device(x))["real floating"]


# -- global threshold over many arrays ----------------------------------------------------
def global_keep(
    xp: ModuleType, arrays: list[Array], k: int, lo: list[int], hi: list[int], magnitude: bool
) -> list[tuple[Array, int, int]]:
    """``(keep, pruned, unclamped)`` per array: one threshold over all, one array in memory at a time.

    Requires ``sum(lo) <= k <= sum(hi)`` and no NaN. The threshold value is
    found by a selection over the union of the arrays: each round sorts every
    array (one at a time), takes the median of its remaining candidates, and
    splits the candidates at the weighted median of those medians, which
    removes at least a quarter of them. The same tie walk as the kernels
    (:func:`.shared.resolve_counts`) then places the cut. ``unclamped`` is the
    array's count before its bounds (``pruned`` differs from it only where a
    bound clamped it).
    """
    dev = device(arrays[0])
    sizes = [math.prod(a.shape) for a in arrays]
    flats = [xp.reshape(a, (-1,)) for a in arrays]
    order_dtypes = {_order_values(xp, f[: min(1, n)], magnitude).dtype for f, n in zip(flats, sizes)}
    common = next(iter(order_dtypes)) if len(order_dtypes) == 1 else _accumulator(xp, arrays[0])
    integral = isdtype(xp, common, "integral")

    def values(i: int) -> Array:
        v = _order_values(xp, flats[i], magnitude)
        return v if v.dtype == common else xp.astype(v, common)

    def count(x: Array) -> int:
        return count_true(xp, x)

    def scalar(x: Array) -> int | float:
        return int(x) if integral else float(x)

    def clamp(c: int, i: int) -> int:
        return max(lo[i], min(hi[i], c))

    def own_topk(i: int, p: int) -> Array:
        return topk_keep(xp, xp.reshape(values(i), tuple(arrays[i].shape)), p, False)

    if k <= sum(lo) or k >= sum(hi):  # every layer at one of its bounds
        counts, cut = (lo, [0] * len(sizes)) if k <= sum(lo) else (hi, sizes)
        return [(own_topk(i, p), p, cut[i]) for i, p in enumerate(counts)]

    below: Array | None = None  # candidates lie strictly between below and above
    above: Array | None = None
    while True:
        medians = []
        for i, n in enumerate(sizes):
            if n == 0:
                continue
            s = xp.sort(values(i))
            a = count(s <= below) if below is not None else 0
            b = count(s < above) if above is not None else n
            if b > a:
                medians.append((scalar(s[(a + b - 1) // 2]), b - a))
        medians.sort(key=lambda mw: mw[0])
        half, acc = (sum(w for _, w in medians) + 1) // 2, 0
        for value, w in medians:  # noqa: B007 - value is the weighted median after the break
            acc += w
            if acc >= half:
                break
        pivot = xp.asarray(value, dtype=common, device=dev)
        f_lt = f_le = 0
        for i in range(len(arrays)):
            v = values(i)
            f_lt += clamp(count(v < pivot), i)
            f_le += clamp(count(v <= pivot), i)
        if f_lt >= k:
            above = pivot
        elif f_le < k:
            below = pivot
        else:
            break
    less, equal = [], []
    for i in range(len(arrays)):
        v = values(i)
        less.append(count(v < pivot))
        equal.append(count(v == pivot))
    out = []
    for i, c in enumerate(resolve_counts(less, equal, lo, hi, k)):
        p = clamp(c, i)
        if p != c:
            keep = own_topk(i, p)
        else:
            v = values(i)
            eq = v == pivot
            keep = v > pivot
            j = c - less[i]
            if j:
                eq = eq & (xp.cumulative_sum(xp.astype(eq, int_dtype(xp, eq, sizes[i]))) > j)
            keep = xp.reshape(keep | eq, tuple(arrays[i].shape))
        out.append((keep, p, c))
    return out


# -- calibration --------------------------------------------------------------------------
def sum_squares(xp: ModuleType, x2: Array, acc: Any) -> Array:
    """``sum(x2[:, j] ** 2)`` over the rows of the 2-D ``x2``, accumulated in ``acc``."""
    xf = xp.astype(x2, acc)
    return xp.sum(xf * xf, axis=0)


# -- SparseGPT ----------------------------------------------------------------------------
def cholesky_inverse_base(xp: ModuleType, k: Array) -> Array:
    """``L^-1`` where ``L L^T = k``, by the library's own ``cholesky`` and ``inv``."""
    return xp.linalg.inv(xp.linalg.cholesky(k))


def sparsegpt_sweep(
    xp: ModuleType, w: Array, u: Array, counts: list[int] | None, nm: tuple[int, int] | None, bs: int
) -> tuple[Array, Array]:
    """SparseGPT's column sweep, standard functions only (no item assignment: JAX arrays are immutable).

    ``w`` the prepared weights, ``u`` the upper Cholesky factor of ``H^-1``,
    ``counts`` the pruned count of every block of ``bs`` columns
    (unstructured) or ``nm = (n, m)``. Returns ``(updated_weights, keep)``.
    The masks are this module's selections: the scores ``w^2 / U_cc^2`` of
    finite weights and a positive-definite ``U`` hold no NaN.
    """
    rows, cols = (int(s) for s in w.shape)
    if rows * cols == 0:
        return w, xp.ones(tuple(w.shape), dtype=xp.bool, device=device(w))
    rest = w
    qs, keeps = [], []
    for b, i1 in enumerate(range(0, cols, bs)):
        i2 = min(i1 + bs, cols)
        count = i2 - i1
        w1 = rest[:, :count]
        u1 = u[i1:i2, i1:i2]
        d = xp.linalg.diagonal(u1)
        if nm is None:
            k1 = topk_keep(xp, w1**2 / (d**2)[None, :], counts[b], False)
        groups = []
        q_cols, e_cols = [], []
        for i in range(count):
            if nm is not None:
                n, m = nm
                if i % m == 0:
                    g = nm_keep(xp, w1[:, i : i + m] ** 2 / (d[i : i + m] ** 2)[None, :], n, m, 1, False)
                    groups.append(g)
                kept = g[:, i % m]
            else:
                kept = k1[:, i]
            col = w1[:, i]
            q = xp.where(kept, col, xp.zeros_like(col))
            e = (col - q) / d[i]
            # U is upper triangular: row i is zero before column i, so the
            # whole-row update leaves the columns already done unchanged
            w1 = w1 - e[:, None] * u1[i, :][None, :]
            q_cols.append(q)
            e_cols.append(e)
        qs.append(xp.stack(q_cols, axis=1))
        keeps.append(k1 if nm is None else xp.concat(groups, axis=1))
        if i2 < cols:
            rest = rest[:, count:] - xp.matmul(xp.stack(e_cols, axis=1), u[i1:i2, i2:])
    return xp.concat(qs, axis=1), xp.concat(keeps, axis=1)
