"""The Dask backend: the selection, norm and calibration jobs on dask arrays, chunk by chunk.

A Dask array is a grid of NumPy chunks, possibly on other machines. Every
job here runs the host kernels on one chunk at a time (through
:mod:`.host`) and answers with a dask array: nothing is gathered on the
client, and what is computed before the answer is documented per job.

Chunk-local jobs are lazy (``map_blocks``): building their result computes
nothing.

* **N:M** (:func:`nm_keep`): the axis is rechunked so that every chunk holds
  whole groups (chunk sizes along it a multiple of ``m``).
* **Slice norms** (:func:`slice_norms`): the other axes are rechunked whole,
  so each chunk holds whole slices, and each chunk is summed in the order the
  whole array would be (:func:`.host.slice_plan`): the norms equal NumPy's
  bit for bit. **Block norms** (:func:`block_norms`): chunk sizes along the
  tiled axes are made multiples of the tile.

The exact top-k (:func:`topk_keep`, :func:`global_keep`) needs a threshold,
a scalar of the data: it is the one eager part. As :mod:`.global_select`
does in one process, the threshold key ``T`` is found digit by digit, but
each pass is one ``dask.compute`` of per-chunk histograms summed on the
workers (a tree of additions), so only a histogram reaches the client:

* 16-bit digits, one histogram for all arrays: 2 passes for 32-bit keys
  (float16/32, integers up to 32 bits), 4 for 64-bit keys (float64, int64,
  and pools of mixed key spaces, ranked as float64);
* with per-array bounds (``min_sparsity`` / ``max_sparsity``) 8-bit digits
  and one histogram per array (256 counts each): 4 or 8 passes.

Among keys equal to ``T`` the first ones in C order are pruned (earlier
arrays first). When the cut falls inside the ties, one more pass counts,
per chunk and per *run* (a stretch of the chunk that is contiguous in the
array's C order: the whole chunk when only the first axis is split, one per
row of the chunk when a later axis is), the keys equal to ``T``; the client
walks those counts in C order and finds the run where the cut falls. A
global threshold over many arrays always takes this pass, because the report
needs every array's pruned count. The mask itself is then lazy: each chunk
compares its keys with ``T`` and knows from its position which of its runs
lie before, at or after the cut.

Arrays under :data:`PERSIST_BELOW` bytes (structure or tile norms, small
layers) are persisted before the passes, so they are not recomputed by each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask import delayed

from . import host, reference
from .shared import resolve_counts

Array = Any

#: Digit width of the summed histograms (65536 counts: 2 passes for 32-bit keys).
DIGIT_BITS = 16
#: Digit width of the per-array histograms (bounded global pruning).
CLAMP_DIGIT_BITS = 8
#: Inputs of a selection smaller than this (bytes) are persisted first.
PERSIST_BELOW = 1 << 24
#: Partial results added by one task of a reduction tree.
FAN_IN = 8


# -- arguments ------------------------------------------------------------------------------
def check(x: Array, name: str) -> None:
    """A dask array of known shape and NumPy chunks, or ``ValueError`` / ``TypeError`` naming it."""
    if any(isinstance(s, float) and math.isnan(s) for s in x.shape):
        msg = f"{name} has unknown chunk sizes (shape {x.shape}); call {name}.compute_chunk_sizes() first"
        raise ValueError(msg)
    meta = getattr(x, "_meta", None)
    if not isinstance(meta, np.ndarray):
        kind = f"{type(meta).__module__}.{type(meta).__name__}"
        msg = f"{name} is a Dask array of {kind} chunks; the Dask backend runs on NumPy chunks"
        raise TypeError(msg)


def _raise_nan(name: str, count: int) -> None:
    from . import _raise_nan as raise_nan

    raise_nan(name, count)


def _meta(ndim: int, dtype: Any) -> np.ndarray:
    return np.empty((0,) * ndim, dtype=dtype)


def _blocks(x: Array) -> list[Any]:
    """The chunks of ``x`` as delayed objects, in C order of their block indices."""
    return x.to_delayed().ravel().tolist()


def _tree(parts: list[Any], combine: Any) -> Any:
    """One delayed result of ``combine`` over ``parts``, added up :data:`FAN_IN` at a time."""
    while len(parts) > 1:
        parts = [delayed(combine, pure=True)(*parts[i : i + FAN_IN]) for i in range(0, len(parts), FAN_IN)]
    return parts[0]


def _small_persisted(arrays: list[Array]) -> list[Array]:
    if sum(a.nbytes for a in arrays) < PERSIST_BELOW:
        return list(dask.persist(*arrays))
    return arrays


# -- NaN, and masks that need no selection --------------------------------------------------
def count_nan(x: Array) -> int:
    """NaN values in ``x``: an eager count (one integer per chunk reaches the client)."""
    if x.dtype.kind not in "fV" or not x.size:
        return 0
    return int(sum(dask.compute(*[delayed(host.count_nan, pure=True)(b) for b in _blocks(x)])))


def _filled_block(block: np.ndarray, value: bool, name: str, block_info: Any = None) -> np.ndarray:
    nans = host.count_nan(block) if block.size else 0
    if nans:
        _raise_nan(f"{name}[chunk {tuple(block_info[0]['chunk-location'])}]", nans)
    return np.full(block.shape, value, dtype=bool)


def _filled(x: Array, value: bool, name: str) -> Array:
    """All-keep or all-prune, with the NaN test of a selection done chunk by chunk when computed."""
    return x.map_blocks(_filled_block, value, name, dtype=bool, meta=_meta(x.ndim, bool))


# -- runs: where a chunk's elements lie in the array's C order --------------------------------
@dataclass(frozen=True)
class Runs:
    """How the chunks of an array cut its C order into runs.

    ``axis`` is the last axis split into several chunks (0 if none). A run
    is a chunk's elements sharing their indices before ``axis``: contiguous
    in the whole array's C order. Runs are ordered by ``(P, j)``: ``P`` the
    flat index of those leading indices, ``j`` the chunk's block index along
    ``axis``; position ``P * blocks + j`` numbers them.
    """

    axis: int
    blocks: int
    lead: tuple[int, ...]

    @classmethod
    def of(cls, x: Array) -> Runs:
        split = [ax for ax in range(x.ndim) if x.numblocks[ax] > 1]
        axis = split[-1] if split else 0
        blocks = x.numblocks[axis] if x.ndim else 1
        return cls(axis, blocks, tuple(x.shape[:axis]))

    @property
    def total(self) -> int:
        return math.prod(self.lead) * self.blocks

    def positions(self, location: list[tuple[int, int]], index: tuple[int, ...]) -> np.ndarray:
        """Positions of the runs of the chunk at ``location`` (``(start, stop)`` per axis),
        block ``index``, in its own C order."""
        j = index[self.axis] if index else 0
        if not self.axis:
            return np.array([j], np.int64)
        ranges = [np.arange(start, stop) for start, stop in location[: self.axis]]
        grid = np.meshgrid(*ranges, indexing="ij")
        flat = np.ravel_multi_index([g.ravel() for g in grid], self.lead) if grid[0].size else np.zeros(0, np.int64)
        return flat.astype(np.int64) * self.blocks + j


def _locations(x: Array) -> list[tuple[list[tuple[int, int]], tuple[int, ...]]]:
    """``(location, index)`` of every chunk of ``x``, in C order of the block indices."""
    starts = [np.concatenate(([0], np.cumsum(c))).astype(int).tolist() for c in x.chunks]
    out = []
    for index in np.ndindex(*x.numblocks):
        location = [(starts[ax][i], starts[ax][i + 1]) for ax, i in enumerate(index)]
        out.append((location, tuple(index)))
    return out


def _cut(equal: np.ndarray, need: int) -> tuple[int, int]:
    """``(position, partial)``: runs before ``position`` prune all their ties, the run at it
    the first ``partial``, later runs none, so that ``need`` ties are pruned in run order."""
    if need <= 0:
        return -1, 0
    cumulative = np.cumsum(equal)
    if need >= int(cumulative[-1]):
        return len(equal), 0
    pos = int(np.searchsorted(cumulative, need))
    return pos, need - int(cumulative[pos] - equal[pos])


def _keep_block(
    block: np.ndarray, as_float64: bool, magnitude: bool, threshold: int, runs: Runs, cut: int, partial: int,
    block_info: Any = None,
) -> np.ndarray:
    info = block_info[0]
    pos = runs.positions(info["array-location"], tuple(info["chunk-location"]))
    quota = np.where(pos < cut, 1, np.where(pos == cut, partial, 0))
    equal = np.where(pos == cut, np.iinfo(np.int64).max, 1)  # quota == equal: every tie pruned
    return host.key_keep(block, as_float64, magnitude, threshold, quota, equal)


# -- the threshold search -------------------------------------------------------------------
@dataclass
class Pool:
    """Arrays ranked in one key space (:func:`.host.key_space`), with their names for errors."""

    arrays: list[Array]
    names: list[str]
    magnitude: bool
    as_float64: bool = field(init=False)
    key_bits: int = field(init=False)

    def __post_init__(self) -> None:
        self.as_float64, self.key_bits = host.key_space([a.dtype for a in self.arrays])

    def check_nan(self, ranges: dict[int, tuple[int, int]]) -> None:
        """Raise for the first array whose extreme keys say NaN (counting its NaN eagerly)."""
        for i in sorted(ranges):
            mode = host.key_mode(self.arrays[i].dtype, self.as_float64)
            if host.nan_keys(self.key_bits, mode, *ranges[i]):
                _raise_nan(self.names[i], count_nan(self.arrays[i]))


def _histogram_block(
    block: np.ndarray, i: int, as_float64: bool, magnitude: bool, prefix: int, pmask: int, shift: int, digit: int
) -> tuple[np.ndarray, dict[int, tuple[int, int]]]:
    hist, lo, hi = host.key_histogram(block, as_float64, magnitude, prefix, pmask, shift, digit)
    return hist, {i: (lo, hi)}


def _add_histograms(*parts: tuple[np.ndarray, dict]) -> tuple[np.ndarray, dict]:
    hist = parts[0][0].copy()
    ranges = dict(parts[0][1])
    for h, r in parts[1:]:
        hist += h
        for i, (lo, hi) in r.items():
            old = ranges.get(i)
            ranges[i] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    return hist, ranges


def _histograms(pool: Pool, i: int, prefix: int, pmask: int, shift: int, digit: int) -> list[Any]:
    return [
        delayed(_histogram_block, pure=True)(b, i, pool.as_float64, pool.magnitude, prefix, pmask, shift, digit)
        for b in _blocks(pool.arrays[i])
    ]


@dataclass
class Search:
    """The ``k``-th smallest key of the pool's arrays ``indices`` together (``0 < k < size``).

    After :func:`search`: ``prefix`` is the threshold key ``T``, ``less`` the
    keys below it, ``equal`` the keys equal to it, ``need`` how many of those
    are pruned.
    """

    pool: Pool
    indices: list[int]
    k: int
    prefix: int = 0
    pmask: int = 0
    less: int = 0
    equal: int = 0
    need: int = field(init=False)

    def __post_init__(self) -> None:
        self.need = self.k

    @property
    def shifts(self) -> list[int]:
        return list(range(self.pool.key_bits - DIGIT_BITS, -1, -DIGIT_BITS))


def search(searches: list[Search]) -> None:
    """Find every search's threshold: one ``dask.compute`` per digit for all of them."""
    nbins = 1 << DIGIT_BITS
    level = 0
    while True:
        active = [s for s in searches if level < len(s.shifts)]
        if not active:
            return
        graphs = []
        for s in active:
            parts = [
                p for i in s.indices
                for p in _histograms(s.pool, i, s.prefix, s.pmask, s.shifts[level], DIGIT_BITS)
            ]
            graphs.append(_tree(parts, _add_histograms))
        results = dask.compute(*graphs)
        for s, (hist, ranges) in zip(active, results):
            if level == 0:
                s.pool.check_nan(ranges)
            cumulative = np.cumsum(hist)
            bucket = int(np.searchsorted(cumulative, s.need))  # first bucket reaching need
            below = int(cumulative[bucket] - hist[bucket])
            s.need -= below
            s.less += below
            s.equal = int(hist[bucket])
            shift = s.shifts[level]
            s.prefix |= bucket << shift
            s.pmask |= (nbins - 1) << shift
        level += 1


def search_bounded(pool: Pool, k: int, lo: list[int], hi: list[int]) -> tuple[int, list[int], list[int]]:
    """``(T, less, equal)``: the smallest key ``T`` with ``sum_t clip(count_t(<= T), lo_t, hi_t) >= k``
    and each array's keys below and equal to it (``sum(lo) < k <= sum(hi)``), as
    :func:`.global_select.find_threshold` with bounds: per-array histograms, 8-bit digits."""
    nbins = 1 << CLAMP_DIGIT_BITS
    count = len(pool.arrays)
    lo_a, hi_a = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
    base = np.zeros(count, np.int64)
    equal = np.zeros(count, np.int64)
    prefix = pmask = 0
    for level, shift in enumerate(range(pool.key_bits - CLAMP_DIGIT_BITS, -1, -CLAMP_DIGIT_BITS)):
        graphs = [
            _tree(_histograms(pool, i, prefix, pmask, shift, CLAMP_DIGIT_BITS), _add_histograms)
            for i in range(count)
        ]
        results = dask.compute(*graphs)
        if level == 0:
            ranges: dict[int, tuple[int, int]] = {}
            for _, r in results:
                ranges.update(r)
            pool.check_nan(ranges)
        hist = np.stack([h for h, _ in results])
        cum = base[:, None] + np.cumsum(hist, axis=1)
        reached = np.clip(cum, lo_a[:, None], hi_a[:, None]).sum(axis=0)
        bucket = int(np.searchsorted(reached, k))  # first boundary reaching k
        if bucket:
            base = cum[:, bucket - 1].copy()
        equal = hist[:, bucket].copy()
        prefix |= bucket << shift
        pmask |= (nbins - 1) << shift
    return prefix, [int(v) for v in base], [int(v) for v in equal]


# -- the tie pass and the masks -------------------------------------------------------------
def _tie_block(block: np.ndarray, as_float64: bool, magnitude: bool, threshold: int, runs: int) -> tuple:
    return host.key_tie_counts(block, as_float64, magnitude, threshold, runs)


def tie_counts(pool: Pool, thresholds: dict[int, int]) -> dict[int, tuple[int, np.ndarray]]:
    """``{i: (less, equal)}``: array ``i``'s keys below its threshold and, per run (in run
    position order, :class:`Runs`), equal to it. One ``dask.compute`` for all; one integer
    per run reaches the client."""
    plans = {}
    graphs = []
    for i, t in thresholds.items():
        x = pool.arrays[i]
        runs = Runs.of(x)
        places = [runs.positions(loc, index) for loc, index in _locations(x)]
        parts = [
            delayed(_tie_block, pure=True)(b, pool.as_float64, pool.magnitude, t, len(p))
            for b, p in zip(_blocks(x), places)
        ]
        plans[i] = (runs, places)
        graphs.append(parts)
    results = dask.compute(*graphs)
    out = {}
    for (i, (runs, places)), parts in zip(plans.items(), results):
        equal = np.zeros(runs.total, np.int64)
        less = 0
        for p, (lt, eq) in zip(places, parts):
            less += lt
            equal[p] = eq
        out[i] = (less, equal)
    return out


def keep_mask(pool: Pool, i: int, threshold: int, cut: int, partial: int) -> Array:
    """Array ``i``'s lazy keep-mask: ``key > T``, its ties pruned before the run position
    ``cut``, the first ``partial`` at it, none after."""
    x = pool.arrays[i]
    return x.map_blocks(
        _keep_block, pool.as_float64, pool.magnitude, threshold, Runs.of(x), cut, partial,
        dtype=bool, meta=_meta(x.ndim, bool),
    )


def _masks_of(pool: Pool, items: dict[int, tuple[int, int, int, int]]) -> dict[int, Array]:
    """Masks of arrays ``i`` whose threshold is known: ``items[i] = (T, need, equal)``, ``need``
    of its ``equal`` ties pruned; the runs' tie counts are taken (one pass for all) only where
    the cut falls inside the ties."""
    split = {i: t for i, (t, need, equal) in items.items() if 0 < need < equal}
    counted = tie_counts(pool, split) if split else {}
    out = {}
    for i, (t, need, _) in items.items():
        x = pool.arrays[i]
        if i in counted:
            cut, partial = _cut(counted[i][1], need)
        else:
            cut, partial = (Runs.of(x).total, 0) if need else (-1, 0)
        out[i] = keep_mask(pool, i, t, cut, partial)
    return out


def own_topk(pool: Pool, counts: dict[int, int]) -> dict[int, Array]:
    """Each array ``i``'s own top-k mask pruning ``counts[i]`` (ranked in the pool's key space);
    the searches of all of them share their passes."""
    out = {}
    searches = []
    for i, k in counts.items():
        x = pool.arrays[i]
        if k in (0, x.size):
            out[i] = _filled(x, k == 0, pool.names[i])
        else:
            searches.append(Search(pool, [i], k))
    search(searches)
    out.update(_masks_of(pool, {s.indices[0]: (s.prefix, s.need, s.equal) for s in searches}))
    return out


# -- the jobs -------------------------------------------------------------------------------
def topk_keep(x: Array, n_prune: int, magnitude: bool, name: str) -> Array:
    """Keep-mask pruning the ``n_prune`` smallest values (ties: lower flat index first).

    Eager: the threshold (2 histogram passes for 32-bit keys, 4 for 64-bit),
    a tie pass when the cut splits the ties, and a persist of inputs under
    :data:`PERSIST_BELOW` bytes. The mask is lazy.
    """
    check(x, name)
    if n_prune in (0, x.size):
        return _filled(x, n_prune == 0, name)
    pool = Pool(_small_persisted([x]), [name], magnitude)
    return own_topk(pool, {0: n_prune})[0]


def global_keep(
    arrays: list[Array], names: list[str], k: int, lo: list[int], hi: list[int], magnitude: bool
) -> list[tuple[Array, int, int]]:
    """``(keep, pruned, unclamped)`` per array for one exact threshold over all (see
    :func:`arraysparse._backends.global_keep`); the masks are lazy, the counts exact."""
    for a, name in zip(arrays, names):
        check(a, name)
    pool = Pool(_small_persisted(arrays), names, magnitude)
    sizes = [a.size for a in arrays]
    everything = range(len(arrays))
    if k <= sum(lo) or k >= sum(hi):  # every layer at one of its bounds
        counts, cut = (lo, [0] * len(sizes)) if k <= sum(lo) else (hi, sizes)
        masks = own_topk(pool, dict(enumerate(counts)))
        return [(masks[i], counts[i], cut[i]) for i in everything]
    bounded = any(lo) or any(h < n for h, n in zip(hi, sizes))
    if not bounded:
        s = Search(pool, [i for i in everything if sizes[i]], k)
        search([s])
        counted = tie_counts(pool, {i: s.prefix for i in s.indices})
        remaining = s.need
        out = []
        for i in everything:
            if i not in counted:  # empty
                out.append((_filled(pool.arrays[i], True, names[i]), 0, 0))
                continue
            less, equal = counted[i]
            j = min(int(equal.sum()), remaining)  # ties: earlier arrays, then lower indices, first
            remaining -= j
            cut, partial = _cut(equal, j)
            out.append((keep_mask(pool, i, s.prefix, cut, partial), less + j, less + j))
        return out
    threshold, less, equal = search_bounded(pool, k, lo, hi)
    counts = resolve_counts(less, equal, lo, hi, k)
    pruned = [max(lo[i], min(hi[i], c)) for i, c in enumerate(counts)]
    at_cut = {i: (threshold, counts[i] - less[i], equal[i]) for i in everything if pruned[i] == counts[i]}
    masks = _masks_of(pool, at_cut)
    masks.update(own_topk(pool, {i: pruned[i] for i in everything if i not in at_cut}))
    return [(masks[i], pruned[i], counts[i]) for i in everything]


def _nm_block(
    block: np.ndarray, n: int, m: int, axis: int, magnitude: bool, name: str, block_info: Any = None
) -> np.ndarray:
    keep, nans = host.nm_keep(block, n, m, axis, magnitude)
    if nans:
        _raise_nan(f"{name}[chunk {tuple(block_info[0]['chunk-location'])}]", nans)
    return np.asarray(keep)


def whole_groups(x: Array, axis: int, m: int) -> Array:
    """``x`` rechunked, if needed, so that its chunks along ``axis`` hold whole groups of ``m``."""
    sizes = x.chunks[axis]
    if all(c % m == 0 for c in sizes):
        return x
    return x.rechunk({axis: max(m, max(sizes) // m * m)})


def nm_keep(x: Array, n: int, m: int, axis: int, magnitude: bool, name: str) -> Array:
    """Lazy N:M keep-mask, chunk by chunk; NaN raises when a chunk holding it is computed."""
    check(x, name)
    x = whole_groups(x, axis, m)
    return x.map_blocks(_nm_block, n, m, axis, magnitude, name, dtype=bool, meta=_meta(x.ndim, bool))


def _slice_block(block: np.ndarray, axis: int, ord: float, plan: tuple[bool, int], dtype: Any) -> np.ndarray:
    return np.asarray(host.slice_norms(block, axis, ord, plan)).astype(dtype)


def slice_norms(x: Array, axis: int, ord: float, dtype: Any) -> Array:
    """Lazy Lp norms of the slices along ``axis`` (as ``dtype``), equal to NumPy's bit for bit:
    the other axes are rechunked whole and every chunk sums in the whole array's order."""
    check(x, "x")
    others = [ax for ax in range(x.ndim) if ax != axis]
    if any(x.numblocks[ax] > 1 for ax in others):
        x = x.rechunk({**dict.fromkeys(others, -1), axis: "auto"})
    plan = host.slice_plan(tuple(x.shape), axis)
    return x.map_blocks(
        _slice_block, axis, ord, plan, np.dtype(dtype), drop_axis=others, dtype=dtype, meta=_meta(1, dtype)
    )


def _tile_block(block: np.ndarray, tiles: tuple[int, ...], ord: float, dtype: Any) -> np.ndarray:
    if len(tiles) <= 2 and block.size:
        return np.asarray(host.block_norms(block, tiles, ord)).astype(dtype)
    return reference.block_norms(np, block, tiles, ord).astype(dtype)


def block_norms(x: Array, tiles: tuple[int, ...], ord: float, dtype: Any) -> Array:
    """Lazy Lp norms of the tiles (one or two trailing axes), chunks along them rechunked to
    whole tiles; every tile is summed as in one process."""
    check(x, "x")
    lead = x.ndim - len(tiles)
    fix = {}
    for ax, b in zip(range(lead, x.ndim), tiles):
        if any(c % b for c in x.chunks[ax]):
            fix[ax] = max(b, max(x.chunks[ax]) // b * b)
    if fix:
        x = x.rechunk(fix)
    chunks = x.chunks[:lead] + tuple(tuple(c // b for c in x.chunks[ax]) for ax, b in zip(range(lead, x.ndim), tiles))
    return x.map_blocks(_tile_block, tiles, ord, np.dtype(dtype), chunks=chunks, dtype=dtype, meta=_meta(x.ndim, dtype))


def _squares_block(block: np.ndarray, plan: tuple[bool, int], acc: Any) -> np.ndarray:
    return (np.asarray(host.slice_norms(block, 1, 2.0, plan)) ** 2).astype(acc)


def sum_squares(x2: Array, acc: Any) -> Array:
    """Lazy ``sum(x2[:, j] ** 2)``, equal to NumPy's bit for bit: the rows (a batch's tokens) are
    rechunked whole, and each band of features is summed in the whole batch's order, with the
    host's kernel (as :func:`slice_norms`)."""
    check(x2, "x")
    if x2.numblocks[0] > 1:
        x2 = x2.rechunk({0: -1, 1: "auto"})
    plan = host.slice_plan(tuple(x2.shape), 1)
    return x2.map_blocks(_squares_block, plan, np.dtype(acc), drop_axis=[0], dtype=acc, meta=_meta(1, acc))


def sparsegpt_sweep(weights: Array, hessian: Array, prepare: Any, counts: Any, nm: Any, block_size: int) -> tuple:
    """SparseGPT of a Dask layer, eagerly: the weights and the Hessian are computed together,
    swept by the host, and sent back in the weights' chunks (see the seam for why not by bands)."""
    from . import sparsegpt_sweep as sweep

    check(weights, "weights")
    w, h = dask.compute(weights, hessian)
    q, keep = sweep(np, np.asarray(w), np.asarray(h), prepare, counts, nm, block_size)
    return from_numpy(np.asarray(q), weights), from_numpy(np.asarray(keep), weights)


def empty(shape: tuple[int, ...], dtype: Any) -> Array:
    """An array of no elements (``prod(shape) == 0``) of ``shape`` and ``dtype``."""
    return da.from_array(np.empty(shape, dtype))


def from_numpy(a: np.ndarray, like: Array, *, whole: bool = False) -> Array:
    """The client's NumPy array ``a`` as a dask array chunked as ``like`` (or in one chunk
    with ``whole``), sent to the workers."""
    return da.from_array(a, chunks=-1 if whole else like.chunks)


def _permutation(seed: Any, size: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).permutation(size).reshape(shape)


def permutation(like: Array, seed: Any) -> Array:
    """``default_rng(seed).permutation(size)`` in ``like``'s shape and chunks, drawn by one task
    on a worker (an int seed or ``None``; ``None`` draws its entropy here)."""
    check(like, "like")
    if seed is None:
        seed = np.random.SeedSequence().entropy
    shape = tuple(like.shape)
    one = da.from_delayed(delayed(_permutation, pure=True)(seed, like.size, shape), shape, dtype=np.int64)
    return one.rechunk(like.chunks)
