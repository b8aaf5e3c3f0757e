"""The host implementation of the selection, norm, calibration and SparseGPT jobs: Numba kernels.

Inputs are NumPy arrays and dense CPU torch tensors (:func:`.bridge.is_host`),
read in place through :func:`.bridge.host_view` (bfloat16 widened to float32:
these kernels rank or sum values); results go back through
:func:`.bridge.wrap`. The kernel modules are imported on first use, so
importing this module compiles nothing and loads no Numba. The formats' host
codecs are in :mod:`.host_formats`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .._compat import device
from .bridge import host_dtype, host_view, wrap
from .shared import Stream, resolve_counts

Array = Any

#: Columns a SparseGPT kernel sweeps before the rest of the block is updated by one matrix product.
SUB_BLOCK = 32


def count_nan(x: Array) -> int:
    """Number of NaN values in ``x`` (0 for integer dtypes)."""
    return _count_nan(host_view(x, widen=True))


def _count_nan(a: np.ndarray) -> int:
    return int(np.count_nonzero(np.isnan(a))) if a.dtype.kind == "f" else 0


def _as_3d(h: np.ndarray, axis: int) -> np.ndarray:
    """``h`` as (before ``axis``, along it, after it): a view for the kernels' loops."""
    shape = h.shape
    return h.reshape(math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :]))


# -- selection ----------------------------------------------------------------------------
def topk_keep(x: Array, n_prune: int, magnitude: bool) -> tuple[Array, int]:
    """``(keep, nan_count)``: the keep-mask pruning ``n_prune`` smallest values; meaningless
    when ``nan_count``."""
    from .._kernels.cpu import select

    keep, nans = select.topk_keep(host_view(x, widen=True), n_prune, magnitude)
    return wrap(keep, x), nans


def nm_keep(x: Array, n: int, m: int, axis: int, magnitude: bool) -> tuple[Array, int]:
    """``(keep, nan_count)``: ``n`` zeros in each group of ``m`` along ``axis``."""
    from .._kernels.cpu import nm

    h = host_view(x, widen=True)
    keep, has_nan = nm.nm_keep(_as_3d(h, axis), n, m, magnitude)
    return wrap(keep.reshape(h.shape), x), _count_nan(h) if has_nan else 0


# -- norms --------------------------------------------------------------------------------
def slice_norms(x: Array, axis: int, ord: float) -> Array:
    """Lp norm of each slice along ``axis`` (float64 accumulation); ``x`` is not empty."""
    from .._kernels.cpu import norms

    return wrap(norms.slice_norms(_as_3d(host_view(x, widen=True), axis), ord), x)


def block_norms(x: Array, block: tuple[int, ...], ord: float) -> Array:
    """Lp norm of each tile of shape ``block`` (one or two trailing axes); ``x`` is not empty."""
    from .._kernels.cpu import norms

    h = host_view(x, widen=True)
    b1, b2 = (1, *block) if len(block) == 1 else block
    rows = h.shape[-2] if len(block) == 2 else 1
    cols = h.shape[-1]
    lead = h.shape[: h.ndim - len(block)]
    h5 = h.reshape(math.prod(lead), rows // b1, b1, cols // b2, b2)
    out = norms.block_norms(h5, ord)
    out_shape = lead + tuple(s // b for s, b in zip(h.shape[h.ndim - len(block) :], block))
    return wrap(out.reshape(out_shape), x)


# -- global threshold over many arrays ----------------------------------------------------
class GlobalCut:
    """One exact threshold over many arrays, found by a radix select; then each array's mask.

    Construction is the selection's first phase: it finds the threshold key
    (or, when every array sits at one of its count bounds, just the counts)
    reading the arrays of ``source`` (a :class:`.shared.Stream`) one level of
    key digits at a time. The second phase gives each array's keep-mask
    against that threshold: :meth:`keep` one array at a time, in order (what
    a streamed model needs), or :meth:`keep_all` for arrays in memory (one
    batched kernel launch). Both place the ties alike: among keys equal to
    the threshold, earlier arrays, then lower flat indices, are pruned first.

    Requires ``sum(lo) <= k <= sum(hi)``. ``on_nan(i, count)`` is called (and
    must raise) when array ``i`` holds NaN.
    """

    def __init__(
        self, source: Stream, k: int, lo: list[int], hi: list[int], magnitude: bool,
        on_nan: Callable[[int, int], None],
    ):
        from .._kernels.cpu import global_select as gs

        self._gs = gs
        self.source = source
        self.magnitude = magnitude
        self.on_nan = on_nan
        self.half = None if source.arrays is not None else _half_kind(source.dtypes)
        if source.arrays is not None:
            self.hosts: list[np.ndarray] | None = [host_view(a, widen=True) for a in source.arrays]
            self.src = gs.KeySource(self.hosts)
        elif self.half is not None:  # 16-bit floats: 16-bit keys, one read finds the threshold
            self.hosts = None
            self.src = gs.KeySource.halves(self.half, source.sizes, self._fetch, magnitude, on_nan)
        else:
            self.hosts = None
            if source.dtypes is None:  # one read learns what the arrays rank as
                dtypes = [self._fetch(i).dtype for i in range(len(source.sizes))]
            else:
                dtypes = [host_dtype(d) for d in source.dtypes]
            self.src = gs.KeySource.streamed(dtypes, source.sizes, self._fetch)
        sizes = self.src.sizes
        n = len(sizes)
        self.threshold: int | None = None
        self.remaining = 0  # unbounded: ties still to prune, in array order
        self.less: list[int] | None = None  # bounded: each array's keys below the threshold ...
        self.equal: list[int] | None = None  # ... and equal to it
        self.next = 0  # the array keep() expects next
        bounded = any(lo) or any(h < s for h, s in zip(hi, sizes))
        if k <= sum(lo) or k >= sum(hi):  # every layer at one of its bounds: its own top-k
            self.pruned = list(lo if k <= sum(lo) else hi)
            self.unclamped = [0] * n if k <= sum(lo) else list(sizes)
            self.own = [True] * n
            return
        if not bounded:
            threshold, less_total, _ = gs.find_threshold(self.src, k, magnitude, None, None, self._nan_in)
            self.threshold = threshold
            self.remaining = k - int(less_total[0])
            self.less_total = int(less_total[0])
            self.seen_less = 0
            self.pruned = self.unclamped = [0] * n  # decided array by array (ties in order)
            self.own = [False] * n
            return
        lo_a, hi_a = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        threshold, less_a, equal_a = gs.find_threshold(self.src, k, magnitude, lo_a, hi_a, self._nan_in)
        self.threshold = threshold
        self.less, self.equal = [int(v) for v in less_a], [int(v) for v in equal_a]
        counts = resolve_counts(self.less, self.equal, lo, hi, k)
        self.unclamped = counts
        self.pruned = [max(lo[i], min(hi[i], c)) for i, c in enumerate(counts)]
        self.own = [self.pruned[i] != c for i, c in enumerate(counts)]  # clamped: its own top-k

    def _fetch(self, i: int) -> np.ndarray:
        return self._view(self.source.fetch(i))

    def _view(self, x: Array) -> np.ndarray:
        """What the key source reads: the raw bits of 16-bit floats, else values widened to rank."""
        return host_view(x) if self.half is not None else host_view(x, widen=True)

    def _nan_in(self, i: int) -> None:
        h = self.hosts[i] if self.hosts is not None else self._fetch(i)
        self.on_nan(i, _count_nan(h))

    def _own_topk(self, src: Any, j: int, i: int) -> np.ndarray:
        from .._kernels.cpu import select

        keep, nans = select.topk_keep(src.values(j), self.pruned[i], self.magnitude)
        if nans:
            self.on_nan(i, nans)
        return keep

    def _cut(self, src: Any, j: int, i: int, keep: np.ndarray, equal: int, less: int) -> tuple[int, int]:
        """Prune array ``i``'s share of the keys equal to the threshold (it is array ``j`` of
        ``src``) in ``keep`` (``key >= threshold``); its ``(pruned, unclamped)``."""
        if self.less is None:  # unbounded: ties to the earlier arrays first
            take = min(equal, self.remaining)
            self.remaining -= take
            self.seen_less += less
            pruned = unclamped = less + take
        else:
            if (less, equal) != (self.less[i], self.equal[i]):
                self._changed(i)
            take = self.unclamped[i] - less
            pruned, unclamped = self.pruned[i], self.unclamped[i]
        self._gs.prune_equal(src, j, self.magnitude, self.threshold, take, keep)
        return pruned, unclamped

    def _changed(self, i: int) -> None:
        msg = f"{self.source.names[i]} changed between the passes of the global selection"
        raise ValueError(msg)

    def keep(self, i: int, x: Array) -> tuple[Array, int, int]:
        """``(keep, pruned, unclamped)`` of array ``i`` (``x``, the same data the first phase
        read); arrays come in order, each once."""
        if i != self.next:
            msg = f"the arrays of a global cut come in order: expected array {self.next}, got {i}"
            raise ValueError(msg)
        self.next += 1
        h = self._view(x)
        one = self.src.single(h, i)
        if self.own[i]:
            keep = self._own_topk(one, 0, i)
            pruned, unclamped = self.pruned[i], self.unclamped[i]
        else:
            keeps, equal, less = self._gs.keep_from(one, [0], self.magnitude, self.threshold)
            keep = keeps[0]
            pruned, unclamped = self._cut(one, 0, i, keep, equal[0], less[0])
        if self.next == len(self.src) and self.less is None and not all(self.own):
            if self.remaining or self.seen_less != self.less_total:
                self._changed(i)
        return wrap(keep.reshape(h.shape), x), pruned, unclamped

    def keep_all(self) -> list[tuple[Array, int, int]]:
        """:meth:`keep` of every array of a source in memory, in batched kernel launches."""
        arrays, hosts = self.source.arrays, self.hosts
        cut = [i for i in range(len(arrays)) if not self.own[i]]
        keeps, equal, less = self._gs.keep_from(self.src, cut, self.magnitude, self.threshold) if cut else ({}, {}, {})
        out = []
        for i, a in enumerate(arrays):
            if self.own[i]:
                keep = self._own_topk(self.src, i, i)
                pruned, unclamped = self.pruned[i], self.unclamped[i]
            else:
                keep = keeps[i]
                pruned, unclamped = self._cut(self.src, i, i, keep, equal[i], less[i])
            out.append((wrap(keep.reshape(hosts[i].shape), a), pruned, unclamped))
        self.next = len(arrays)
        return out


def _half_kind(dtypes: list[Any] | None) -> str | None:
    """``"float16"`` or ``"bfloat16"`` when every dtype is that 16-bit float (NumPy's, ml_dtypes'
    or torch's), else None."""
    if not dtypes:
        return None
    names = {getattr(d, "name", None) or str(d).removeprefix("torch.") for d in dtypes}
    kind = names.pop() if len(names) == 1 else None
    return kind if kind in ("float16", "bfloat16") else None


# -- calibration --------------------------------------------------------------------------
def sum_squares(xp: ModuleType, x2: Array, acc: Any) -> Array:
    """``sum(x2[:, j] ** 2)`` over the rows of the 2-D, non-empty ``x2``, as ``acc`` on ``x2``'s device."""
    from .._kernels.cpu import norms

    h = host_view(x2, widen=True)
    # one parallel pass, float64 accumulation, no float64 copy of the batch
    part = norms.slice_norms(h.reshape(h.shape[0], h.shape[1], 1), 2.0) ** 2
    return xp.asarray(part, dtype=acc, device=device(x2))


# -- SparseGPT ----------------------------------------------------------------------------
def cholesky_inverse_base(k: np.ndarray) -> np.ndarray:
    """``L^-1`` where ``L L^T = k`` (a small NumPy matrix), by one kernel."""
    from .._kernels.cpu import obs

    inv, ok = obs.cholesky_inverse_factor(np.ascontiguousarray(k))
    if not ok:
        msg = "the matrix is not positive definite"
        raise ValueError(msg)
    return inv


def sparsegpt_sweep(
    weights: Array, hessian: Array, prepare: Callable[[ModuleType, Array, Array], tuple[Array, Array]],
    counts: list[int] | None, nm: tuple[int, int] | None, bs: int,
) -> tuple[Array, Array]:
    """SparseGPT on the host: ``prepare`` (dead inputs, dampening, ``U``) runs in NumPy on the
    arrays' memory (copies are ours), then :func:`_sweep`; results in the weights' library."""
    w, u = prepare(np, host_view(weights, widen=True), host_view(hessian, widen=True))
    q, keep = _sweep(np.ascontiguousarray(w), np.ascontiguousarray(u), counts, nm, bs)
    return wrap(q, weights), wrap(keep, weights)


def _sweep(
    w: np.ndarray, u: np.ndarray, counts: list[int] | None, nm: tuple[int, int] | None, bs: int
) -> tuple[np.ndarray, np.ndarray]:
    """The reference's blocks, each swept in sub-blocks by a Numba kernel.

    The lazy batching is taken one level further: a kernel sweeps
    ``SUB_BLOCK`` columns at a time (rows in parallel) and the sub-block's
    errors reach the rest of the block in one matrix product, as the block's
    errors reach the later blocks. Same arithmetic as the column loop, regrouped,
    so nearly all the flops run in BLAS.
    """
    from .._kernels.cpu import obs

    rows, cols = w.shape
    keep = np.empty((rows, cols), dtype=bool)
    sub = SUB_BLOCK if nm is None else nm[1] * max(1, SUB_BLOCK // nm[1])
    for b, i1 in enumerate(range(0, cols, bs)):
        i2 = min(i1 + bs, cols)
        w1 = np.ascontiguousarray(w[:, i1:i2])
        u1 = u[i1:i2, i1:i2]
        e1 = np.empty(w1.shape, dtype=w.dtype)
        k1 = np.empty(w1.shape, dtype=bool)
        if nm is None:
            d = np.diagonal(u1)
            k1[...] = _lowest_pruned(w1**2 / (d**2)[None, :], counts[b])
        for s1 in range(0, i2 - i1, sub):
            s2 = min(s1 + sub, i2 - i1)
            ws = np.ascontiguousarray(w1[:, s1:s2])
            us = np.ascontiguousarray(u1[s1:s2, s1:s2])
            es = np.empty(ws.shape, dtype=w.dtype)
            ks = np.ascontiguousarray(k1[:, s1:s2])
            if nm is None:
                obs.sweep_unstructured(ws, ks, us, es)
            else:
                obs.sweep_nm(ws, ks, us, es, nm[0], nm[1])
            w1[:, s1:s2] = ws
            e1[:, s1:s2] = es
            k1[:, s1:s2] = ks
            if s2 < i2 - i1:
                w1[:, s2:] -= es @ u1[s1:s2, s2:]
        w[:, i1:i2] = w1
        keep[:, i1:i2] = k1
        if i2 < cols:
            w[:, i2:] -= e1 @ u[i1:i2, i2:]
    return w, keep


def _lowest_pruned(scores: np.ndarray, k: int) -> np.ndarray:
    """Keep-mask pruning the ``k`` lowest scores, ties to the lower flat index (as ``topk_mask``).

    NumPy's single-threaded partition: between the BLAS calls of the sweep a
    parallel kernel would wake a second thread pool, which on a busy machine
    costs more than the selection itself.
    """
    flat = scores.ravel()
    if k == 0:
        return np.ones(scores.shape, dtype=bool)
    kth = np.partition(flat, k - 1)[k - 1]
    keep = flat > kth
    ties = np.flatnonzero(flat == kth)
    keep[ties[k - int(np.count_nonzero(flat < kth)) :]] = True
    return keep.reshape(scores.shape)


def kernel_cache() -> tuple[Any, list[tuple[str, str, float]]]:
    """The on-disk cache directory of the kernels, and ``(kernel, signature, seconds)`` of
    every kernel this process compiled so far (a cache load is no compile)."""
    from .._kernels.cpu._jit import _writable_cache_dir, compile_log

    return _writable_cache_dir(), compile_log.compiled
