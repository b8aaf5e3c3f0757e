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
from .shared import Stream, resolve_counts

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
class GlobalCut:
    """One threshold over many arrays, one array in memory at a time; then each array's mask.

    Construction finds the threshold value by a selection over the union of
    the arrays of ``source`` (a :class:`.shared.Stream`): each round sorts
    every array (fetched one at a time), takes the median of its remaining
    candidates, and splits the candidates at the weighted median of those
    medians, which removes at least a quarter of them; a last pass counts
    each array's values below and equal to it, and the same tie walk as the
    kernels (:func:`.shared.resolve_counts`) places the cut. :meth:`keep`
    then gives each array's mask (any order); ``unclamped`` is its count
    before its bounds (``pruned`` differs from it only where a bound clamped
    it). Requires ``sum(lo) <= k <= sum(hi)`` and no NaN.
    """

    def __init__(self, xp: ModuleType, source: Stream, k: int, lo: list[int], hi: list[int], magnitude: bool):
        self.xp = xp
        self.source = source
        self.magnitude = magnitude
        self.lo, self.hi = lo, hi
        sizes = source.sizes
        fetch = source.fetch
        order_dtypes = set()
        for i, n in enumerate(sizes):
            a = fetch(i)
            self.dev = device(a)
            order_dtypes.add(_order_values(xp, xp.reshape(a, (-1,))[: min(1, n)], magnitude).dtype)
        self.common = next(iter(order_dtypes)) if len(order_dtypes) == 1 else _accumulator(xp, a)
        integral = isdtype(xp, self.common, "integral")

        def scalar(x: Array) -> int | float:
            return int(x) if integral else float(x)

        self.pivot: Array | None = None
        if k <= sum(lo) or k >= sum(hi):  # every layer at one of its bounds
            self.unclamped = [0] * len(sizes) if k <= sum(lo) else list(sizes)
            self.counts = list(lo if k <= sum(lo) else hi)
            self.own = [True] * len(sizes)
            return
        below: Array | None = None  # candidates lie strictly between below and above
        above: Array | None = None
        count = self._count
        while True:
            medians = []
            for i, n in enumerate(sizes):
                if n == 0:
                    continue
                sorted_values = xp.sort(self._values(fetch(i)))
                a = count(sorted_values <= below) if below is not None else 0
                b = count(sorted_values < above) if above is not None else n
                if b > a:
                    medians.append((scalar(sorted_values[(a + b - 1) // 2]), b - a))
            medians.sort(key=lambda mw: mw[0])
            half, acc = (sum(w for _, w in medians) + 1) // 2, 0
            for value, w in medians:  # noqa: B007 - value is the weighted median after the break
                acc += w
                if acc >= half:
                    break
            pivot = xp.asarray(value, dtype=self.common, device=self.dev)
            f_lt = f_le = 0
            for i in range(len(sizes)):
                v = self._values(fetch(i))
                f_lt += self._clamp(count(v < pivot), i)
                f_le += self._clamp(count(v <= pivot), i)
            if f_lt >= k:
                above = pivot
            elif f_le < k:
                below = pivot
            else:
                break
        self.pivot = pivot
        self.less, self.equal = [], []
        for i in range(len(sizes)):
            v = self._values(fetch(i))
            self.less.append(count(v < pivot))
            self.equal.append(count(v == pivot))
        self.unclamped = resolve_counts(self.less, self.equal, lo, hi, k)
        self.counts = [self._clamp(c, i) for i, c in enumerate(self.unclamped)]
        self.own = [p != c for p, c in zip(self.counts, self.unclamped)]

    def _values(self, a: Array) -> Array:
        v = _order_values(self.xp, self.xp.reshape(a, (-1,)), self.magnitude)
        return v if v.dtype == self.common else self.xp.astype(v, self.common)

    def _count(self, x: Array) -> int:
        return count_true(self.xp, x)

    def _clamp(self, c: int, i: int) -> int:
        return max(self.lo[i], min(self.hi[i], c))

    def keep(self, i: int, x: Array) -> tuple[Array, int, int]:
        """``(keep, pruned, unclamped)`` of array ``i`` (``x``, the data the selection read)."""
        xp = self.xp
        p, c = self.counts[i], self.unclamped[i]
        v = self._values(x)
        if self.own[i]:
            return topk_keep(xp, xp.reshape(v, tuple(x.shape)), p, False), p, c
        eq = v == self.pivot
        keep = v > self.pivot
        if (self._count(v < self.pivot), self._count(eq)) != (self.less[i], self.equal[i]):
            msg = f"{self.source.names[i]} changed between the passes of the global selection"
            raise ValueError(msg)
        j = c - self.less[i]
        if j:
            eq = eq & (xp.cumulative_sum(xp.astype(eq, int_dtype(xp, eq, math.prod(eq.shape)))) > j)
        return xp.reshape(keep | eq, tuple(x.shape)), p, c

    def keep_all(self) -> list[tuple[Array, int, int]]:
        """:meth:`keep` of every array of a source in memory."""
        return [self.keep(i, a) for i, a in enumerate(self.source.arrays)]


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
