"""Exact top-k over many arrays at once, without concatenating them.

Global pruning ranks every value of a model together. Concatenating the
model costs a copy of it; instead the threshold key ``T`` (the k-th smallest
key of all arrays together) is found digit by digit, as in :mod:`.select`,
but by counting only: each level histograms one digit of the keys that share
the prefix found so far, array by array, into one histogram. No candidate is
gathered, so the extra memory is the histograms plus, for narrow or mixed
dtypes, one widened copy of one array at a time.

Keys are those of :mod:`.keys`. Arrays whose keys share a width and a kind
(float16 with float32, int8 with int32, ...) are compared on those keys;
otherwise every array is ranked by its float64 value (exact for every float
and every integer up to 2**53).

With per-array bounds on the pruned count (minimum / maximum sparsity) the
histograms are kept per array, with narrower digits, so that the clamped
count ``sum_t clamp(count_t(<= key), lo_t, hi_t)`` can be read at every
bucket boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numba
import numpy as np

from ..digits import pick_bucket
from ._jit import addresses, array_at, kernel
from .keys import _WIDEN, UNSIGNED, any_key, as_bits, has_nan, key_limits

#: Digit width with one histogram for all arrays (2 levels for 32-bit keys).
DIGIT_BITS = 16
#: Digit width with one histogram per array (minimum / maximum sparsity).
CLAMP_DIGIT_BITS = 8


# The kernels take a list of arrays and split their total length evenly
# between workers, so one launch covers the whole model however many
# arrays it has; `offsets` holds the arrays' starts in that total.


@kernel(parallel=True)
def _histogram(addrs, proto, offsets, active, mode, use_abs, prefix, pmask, shift, dmask, hist, kmin, kmax):
    # add the digit counts of the keys with (key & pmask) == prefix in the
    # active arrays to hist (one row per worker); also the extreme keys
    # seen per worker and array (NaN test, later levels' skipping)
    lowest, highest = key_limits(proto)
    size = proto.itemsize
    nworkers = hist.shape[0]
    total = offsets[-1]
    step = (total + nworkers - 1) // nworkers
    for c in numba.prange(nworkers):
        g = min(total, c * step)
        g1 = min(total, g + step)
        t = np.searchsorted(offsets, g, side="right") - 1
        h = hist[c]
        while g < g1:
            end = min(g1, offsets[t + 1])
            if active[t] and end > g:
                src = array_at(addrs[t] + (g - offsets[t]) * size, end - g, proto)
                lo, hi = highest, lowest
                for i in range(src.size):
                    k = any_key(src[i], mode, use_abs)
                    if (k & pmask) == prefix:
                        lo = min(lo, k)
                        hi = max(hi, k)
                        h[(k >> shift) & dmask] += 1
                kmin[c, t] = lo
                kmax[c, t] = hi
            g = end
            t += 1

@kernel(parallel=True)
def _keep_from(addrs, proto, out_addrs, out_proto, offsets, mode, use_abs, threshold, equal, less):
    # outs[t] = key >= threshold; counts of keys equal to it and below it
    # per worker and array
    size = proto.itemsize
    nworkers = equal.shape[0]
    total = offsets[-1]
    step = (total + nworkers - 1) // nworkers
    for c in numba.prange(nworkers):
        g = min(total, c * step)
        g1 = min(total, g + step)
        t = np.searchsorted(offsets, g, side="right") - 1
        while g < g1:
            end = min(g1, offsets[t + 1])
            if end > g:
                src = array_at(addrs[t] + (g - offsets[t]) * size, end - g, proto)
                dst = array_at(out_addrs[t] + (g - offsets[t]), end - g, out_proto)
                eq = 0
                lt = 0
                for i in range(src.size):
                    k = any_key(src[i], mode, use_abs)
                    dst[i] = k >= threshold
                    eq += k == threshold
                    lt += k < threshold
                equal[c, t] = eq
                less[c, t] = lt
            g = end
            t += 1

@kernel
def _prune_first_equal(bits, mode, use_abs, threshold, count, out):
    # prune the first `count` keys equal to threshold (lowest indices)
    left = count
    for i in range(bits.size):
        if left == 0:
            break
        if any_key(bits[i], mode, use_abs) == threshold:
            out[i] = False
            left -= 1


def _key_space(dtype: np.dtype) -> tuple[int, str]:
    d = np.dtype(_WIDEN.get(np.dtype(dtype), dtype))
    return d.itemsize, d.kind


#: The 16-bit floats whose keys can stay 16 bits wide, by the bits of their +inf.
HALF_INF = {"float16": 0x7C00, "bfloat16": 0x7F80}


class KeySource:
    """The keys of a list of host arrays, all in one comparable key space.

    ``bits(i)`` gives ``(unsigned bits, mode)`` of array ``i`` (flattened); a
    widened copy, when one is needed, lives only while the caller holds it.
    Arrays whose bits are a view of their data are processed together in one
    kernel launch; the others one at a time, so at most one copy exists.

    Built over arrays in memory (``KeySource(arrays)``) or streamed
    (:meth:`streamed`): then ``fetch(i)`` gives array ``i`` afresh on every
    pass (from a memory-mapped file, say) and nothing outlives its use, so a
    pass holds one array (and its keys) at a time. A streamed source of
    16-bit floats of one kind (:meth:`halves`) keeps its keys 16 bits wide:
    one digit level, so one read of the model finds the threshold.
    """

    def __init__(self, arrays: Sequence[np.ndarray], *, like: KeySource | None = None):
        self._init([a.dtype for a in arrays], [a.size for a in arrays], list(arrays).__getitem__, like)
        self.direct = [
            not self.as_float64 and a.dtype not in _WIDEN and a.flags.c_contiguous and self.half is None
            for a in arrays
        ]

    @classmethod
    def streamed(
        cls, dtypes: Sequence[np.dtype], sizes: Sequence[int], fetch: Callable[[int], np.ndarray]
    ) -> KeySource:
        """Arrays fetched one at a time, never batched nor kept between passes."""
        src = cls.__new__(cls)
        src._init(dtypes, sizes, fetch, None)
        src.direct = [False] * len(src.sizes)
        return src

    @classmethod
    def halves(
        cls, kind: str, sizes: Sequence[int], fetch: Callable[[int], np.ndarray], magnitude: bool,
        on_nan: Callable[[int, int], None],
    ) -> KeySource:
        """Streamed 16-bit floats of one ``kind`` (``"float16"`` or ``"bfloat16"``, a key of
        :data:`HALF_INF`): ``fetch(i)`` gives their bits (uint16). Their order keys, with the
        magnitude folded in, are computed here as 16-bit values in uint32 (mode unsigned), so
        the selection needs one digit level; ``on_nan(i, count)`` (which raises) sees NaNs,
        which unsigned keys cannot flag."""
        src = cls.streamed([np.dtype(np.float32)] * len(sizes), sizes, fetch)
        src.half, src.magnitude, src.on_nan, src.key_bits = kind, bool(magnitude), on_nan, 16
        return src

    def single(self, a: np.ndarray, index: int) -> KeySource:
        """A source of the one array ``a`` (array ``index`` of this one) in this key space."""
        if self.half is None:
            return KeySource([a], like=self)
        src = KeySource.halves(self.half, [a.size], [a].__getitem__, self.magnitude,
                               lambda _, count: self.on_nan(index, count))
        return src

    def _init(self, dtypes: Sequence[np.dtype], sizes: Sequence[int], fetch: Callable, like: KeySource | None) -> None:
        if like is None:
            spaces = {_key_space(d) for d in dtypes}
            self.as_float64 = len(spaces) > 1
            width = 8 if self.as_float64 or not spaces else next(iter(spaces))[0]
            self.unsigned = np.uint32 if width == 4 else np.uint64
        else:  # the key space of a larger source (a streamed model's), for one of its arrays
            self.as_float64, self.unsigned = like.as_float64, like.unsigned
        self.key_bits = np.dtype(self.unsigned).itemsize * 8  # the width the keys span
        self.half: str | None = None
        self.fetch = fetch
        self.sizes = [int(n) for n in sizes]
        self._loaded: dict[tuple[int, ...], tuple] = {}

    def __len__(self) -> int:
        return len(self.sizes)

    def values(self, i: int) -> np.ndarray:
        """Array ``i`` flattened, in the dtype its keys come from (ranks like the keys)."""
        flat = np.ravel(self.fetch(i))
        if self.half == "float16":
            return flat.view(np.float16).astype(np.float32)
        if self.half == "bfloat16":
            return (flat.astype(np.uint32) << 16).view(np.float32)
        return flat.astype(np.float64) if self.as_float64 else flat

    def bits(self, i: int) -> tuple[np.ndarray, int]:
        if self.half is None:
            return as_bits(self.values(i))
        return self._half_keys(i), UNSIGNED

    def _half_keys(self, i: int) -> np.ndarray:
        """The 16-bit order keys of array ``i`` (a float's key, as :mod:`.keys` builds it from
        its sign and bits: -0.0 equal to +0.0, infinities at the ends), in uint32."""
        raw = np.ravel(self.fetch(i)).view(np.uint16)
        nans = int(np.count_nonzero((raw & 0x7FFF) > HALF_INF[self.half]))
        if nans:
            self.on_nan(i, nans)
        keys = raw.astype(np.uint32)
        if self.magnitude:
            np.bitwise_and(keys, 0x7FFF, out=keys)
            return keys
        keys[keys == 0x8000] = 0
        negative = keys >= 0x8000
        np.bitwise_xor(keys, 0xFFFF, out=keys, where=negative)
        np.bitwise_or(keys, 0x8000, out=keys, where=~negative)
        return keys

    def groups(self, indices: Iterable[int] | None = None, *, batch: bool = True) -> list[list[int]]:
        """Non-empty arrays of ``indices`` in launch groups: the views together, the rest alone."""
        chosen = [i for i in (range(len(self)) if indices is None else indices) if self.sizes[i]]
        together = [i for i in chosen if batch and self.direct[i]]
        alone = [[i] for i in chosen if not (batch and self.direct[i])]
        return ([together] if together else []) + alone

    def load(self, group: list[int]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, int]:
        """The group's bits, their addresses (the kernels' way of taking a list), their
        offsets in the group's total, and the key mode. The caller keeps the bits
        alive while a kernel reads them.

        Views are kept for the next pass (they hold no copy); a group holding a
        widened copy, or a streamed array, is built afresh each time.
        """
        key = tuple(group)
        if key in self._loaded:
            return self._loaded[key]
        arrs = []
        mode = 0
        for i in group:
            bits, mode = self.bits(i)
            arrs.append(np.ascontiguousarray(bits))
        loaded = arrs, addresses(arrs), _offsets([self.sizes[i] for i in group]), mode
        if all(self.direct[i] for i in group):
            self._loaded[key] = loaded
        return loaded


def _offsets(sizes: list[int]) -> np.ndarray:
    out = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=out[1:])
    return out


def _workers(n: int) -> int:
    return max(1, min(2 * numba.get_num_threads(), n // 16384))


def find_threshold(
    src: KeySource,
    k: int,
    magnitude: bool,
    lo: np.ndarray | None,
    hi: np.ndarray | None,
    on_nan: Callable[[int], None],
) -> tuple[int, np.ndarray, np.ndarray]:
    """The threshold key and the counts of keys below it and equal to it.

    Without bounds (``lo is None``) the threshold is the k-th smallest key of
    all arrays together (``0 < k <= total``) and the counts are totals (one
    entry). With bounds it is the smallest key ``T`` at which
    ``sum_t clip(count_t(key <= T), lo_t, hi_t) >= k`` (the caller
    guarantees ``sum(lo) < k <= sum(hi)``) and the counts are per array.
    ``on_nan(i)`` is called (and must raise) when array ``i`` holds a NaN.
    """
    unsigned = src.unsigned
    width = src.key_bits
    per_array = lo is not None
    digit = CLAMP_DIGIT_BITS if per_array else DIGIT_BITS
    nbins = 1 << digit
    dmask = unsigned(nbins - 1)
    count = len(src)
    kmin = np.zeros(count, dtype=unsigned)
    kmax = np.zeros(count, dtype=unsigned)
    base = np.zeros(count if per_array else 1, np.int64)
    equal = base.copy()
    prefix, pmask = 0, 0
    need = k
    shared = None if per_array else np.zeros((2 * numba.get_num_threads(), nbins), np.int64)
    groups = src.groups(batch=not per_array)
    for level, shift in enumerate(range(width - digit, -1, -digit)):
        top = prefix | (((1 << width) - 1) ^ pmask)  # largest key with this prefix
        hist = np.zeros((count, nbins), np.int64) if per_array else None
        if shared is not None:
            shared[:] = 0
        for group in groups:
            active = np.array([level == 0 or not (kmax[i] < prefix or kmin[i] > top) for i in group])
            if not active.any():
                continue  # no key of these arrays has the prefix
            arrs, addrs, offsets, mode = src.load(group)
            nw = _workers(int(offsets[-1]))
            buf = shared[:nw] if shared is not None else np.zeros((nw, nbins), np.int64)
            gmin = np.full((nw, len(group)), unsigned(np.iinfo(unsigned).max))
            gmax = np.zeros((nw, len(group)), unsigned)
            _histogram(
                addrs, arrs[0], offsets, active, mode, bool(magnitude), unsigned(prefix), unsigned(pmask),
                unsigned(shift), dmask, buf, gmin, gmax,
            )
            del arrs
            if level == 0:
                for j, i in enumerate(group):
                    kmin[i], kmax[i] = gmin[:, j].min(), gmax[:, j].max()
                    if has_nan(unsigned, mode, kmin[i], kmax[i]):
                        on_nan(i)
            if per_array:
                hist[group[0]] = buf.sum(axis=0)
        bucket, base, equal, need = pick_bucket(
            hist if per_array else shared.sum(axis=0), base, equal, need, k, lo, hi)
        prefix |= bucket << shift
        pmask |= (nbins - 1) << shift
    return prefix, base, equal


def keep_from(
    src: KeySource, indices: Iterable[int], magnitude: bool, threshold: int
) -> tuple[dict[int, np.ndarray], dict[int, int], dict[int, int]]:
    """Keep-masks ``key >= threshold`` of the arrays ``indices`` (flat), with their counts
    of keys equal to the threshold and below it: ``(masks, equal, less)`` keyed by index.
    """
    indices = list(indices)
    masks = {i: np.empty(src.sizes[i], np.bool_) for i in indices}
    equal = dict.fromkeys(indices, 0)
    less = dict.fromkeys(indices, 0)
    t = src.unsigned(threshold)
    for group in src.groups(indices):
        arrs, addrs, offsets, mode = src.load(group)
        outs = [masks[i] for i in group]
        nw = _workers(int(offsets[-1]))
        eq = np.zeros((nw, len(group)), np.int64)
        lt = np.zeros((nw, len(group)), np.int64)
        _keep_from(addrs, arrs[0], addresses(outs), outs[0], offsets, mode, bool(magnitude), t, eq, lt)
        for j, i in enumerate(group):
            equal[i] = int(eq[:, j].sum())
            less[i] = int(lt[:, j].sum())
    return masks, equal, less


def prune_equal(src: KeySource, i: int, magnitude: bool, threshold: int, count: int, out: np.ndarray) -> None:
    """Prune, in ``out``, the first ``count`` keys of array ``i`` equal to ``threshold``."""
    if count:
        bits, mode = src.bits(i)
        _prune_first_equal(bits, mode, bool(magnitude), src.unsigned(threshold), count, out)
