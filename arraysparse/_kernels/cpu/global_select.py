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

from collections.abc import Callable, Sequence

import numba
import numpy as np

from .keys import _WIDEN, FLOAT, as_bits, has_nan, make_key_function

#: Digit width with one histogram for all arrays (2 levels for 32-bit keys).
DIGIT_BITS = 16
#: Digit width with one histogram per array (minimum / maximum sparsity).
CLAMP_DIGIT_BITS = 8
_kernels: dict[type, tuple] = {}


def _build(unsigned: type) -> tuple:
    key = make_key_function(unsigned)
    lowest, highest = unsigned(0), unsigned(np.iinfo(unsigned).max)

    @numba.njit(parallel=True, nogil=True)
    def histogram(bits, mode, use_abs, prefix, pmask, shift, dmask, hist):
        # add the digit counts of the keys with (key & pmask) == prefix to
        # hist (one row per chunk); also the extreme keys seen (NaN test)
        n = bits.size
        nchunks = hist.shape[0]
        step = (n + nchunks - 1) // nchunks
        kmin = np.full(nchunks, highest)
        kmax = np.full(nchunks, lowest)
        for c in numba.prange(nchunks):
            start = min(n, c * step)
            src = bits[start : min(n, start + step)]
            h = hist[c]
            lo, hi = highest, lowest
            for t in range(src.size):
                k = key(src[t], mode, use_abs)
                if (k & pmask) == prefix:
                    lo = min(lo, k)
                    hi = max(hi, k)
                    h[(k >> shift) & dmask] += 1
            kmin[c] = lo
            kmax[c] = hi
        return kmin.min(), kmax.max()

    @numba.njit(parallel=True, nogil=True)
    def keep_from(bits, mode, use_abs, threshold, out, nchunks):
        # out = key >= threshold; returns the counts of keys equal to it and below it
        n = bits.size
        step = (n + nchunks - 1) // nchunks
        equal = np.zeros(nchunks, np.int64)
        less = np.zeros(nchunks, np.int64)
        for c in numba.prange(nchunks):
            start = min(n, c * step)
            stop = min(n, start + step)
            src = bits[start:stop]
            dst = out[start:stop]
            eq = 0
            lt = 0
            for t in range(src.size):
                k = key(src[t], mode, use_abs)
                dst[t] = k >= threshold
                eq += k == threshold
                lt += k < threshold
            equal[c] = eq
            less[c] = lt
        return equal.sum(), less.sum()

    @numba.njit(nogil=True)
    def prune_first_equal(bits, mode, use_abs, threshold, count, out):
        # prune the first `count` keys equal to threshold (lowest indices)
        left = count
        for i in range(bits.size):
            if left == 0:
                break
            if key(bits[i], mode, use_abs) == threshold:
                out[i] = False
                left -= 1

    return histogram, keep_from, prune_first_equal


def _get(unsigned: type) -> tuple:
    if unsigned not in _kernels:
        _kernels[unsigned] = _build(unsigned)
    return _kernels[unsigned]


def _key_space(dtype: np.dtype) -> tuple[int, str]:
    d = np.dtype(_WIDEN.get(np.dtype(dtype), dtype))
    return d.itemsize, d.kind


class KeySource:
    """The keys of a list of host arrays, all in one comparable key space.

    ``bits(i)`` gives ``(unsigned bits, mode)`` of array ``i`` (flattened); a
    widened copy, when one is needed, lives only while the caller holds it.
    """

    def __init__(self, arrays: Sequence[np.ndarray]):
        self.arrays = list(arrays)
        spaces = {_key_space(a.dtype) for a in self.arrays}
        self.as_float64 = len(spaces) > 1
        width = 8 if self.as_float64 else next(iter(spaces))[0] if spaces else 8
        self.unsigned = np.uint32 if width == 4 else np.uint64

    def values(self, i: int) -> np.ndarray:
        """Array ``i`` flattened, in the dtype its keys come from (ranks like the keys)."""
        flat = np.ravel(self.arrays[i])
        return flat.astype(np.float64) if self.as_float64 else flat

    def bits(self, i: int) -> tuple[np.ndarray, int]:
        return as_bits(self.values(i))


def _chunks(n: int) -> int:
    return max(1, min(2 * numba.get_num_threads(), n // 16384))


def find_threshold(
    src: KeySource,
    k: int,
    magnitude: bool,
    lo: np.ndarray | None,
    hi: np.ndarray | None,
    on_nan: Callable[[int], None],
) -> tuple[int, np.ndarray, np.ndarray]:
    """The threshold key and, per array, the counts of keys below it and equal to it.

    Without bounds (``lo is None``) the threshold is the k-th smallest key of
    all arrays together (``0 < k <= total``). With bounds it is the smallest
    key ``T`` at which ``sum_t clip(count_t(key <= T), lo_t, hi_t) >= k``;
    the caller guarantees ``sum(lo) < k <= sum(hi)``. ``on_nan(i)`` is called
    (and must raise) when array ``i`` holds a NaN.

    Returns ``(T, less, equal)``; ``less`` and ``equal`` are exact per array
    in the bounded mode and only their sums are meaningful otherwise (the
    write pass counts the rest).
    """
    unsigned = src.unsigned
    histogram, _, _ = _get(unsigned)
    width = np.dtype(unsigned).itemsize * 8
    per_array = lo is not None
    digit = CLAMP_DIGIT_BITS if per_array else DIGIT_BITS
    nbins = 1 << digit
    dmask = unsigned(nbins - 1)
    count = len(src.arrays)
    sizes = [a.size for a in src.arrays]
    kmin = np.zeros(count, dtype=unsigned)
    kmax = np.zeros(count, dtype=unsigned)
    base = np.zeros(count if per_array else 1, np.int64)
    equal = np.zeros(count, np.int64)
    prefix, pmask = 0, 0
    need = k
    nthreads = 2 * numba.get_num_threads()
    shared = None if per_array else np.zeros((nthreads, nbins), np.int64)
    for level, shift in enumerate(range(width - digit, -1, -digit)):
        top = prefix | (((1 << width) - 1) ^ pmask)  # largest key with this prefix
        hist = np.zeros((count, nbins), np.int64) if per_array else None
        if shared is not None:
            shared[:] = 0
        for i in range(count):
            if sizes[i] == 0:
                continue
            if level and (kmax[i] < prefix or kmin[i] > top):
                continue  # no key of this array has the prefix
            bits, mode = src.bits(i)
            buf = shared if shared is not None else np.zeros((_chunks(bits.size), nbins), np.int64)
            lowest, highest = histogram(
                bits, mode, magnitude, unsigned(prefix), unsigned(pmask), unsigned(shift), dmask, buf
            )
            del bits
            if level == 0:
                if has_nan(unsigned, mode, lowest, highest):
                    on_nan(i)
                kmin[i], kmax[i] = lowest, highest
            if per_array:
                hist[i] = buf.sum(axis=0)
        if per_array:
            cum = base[:, None] + np.cumsum(hist, axis=1)
            reached = np.clip(cum, lo[:, None], hi[:, None]).sum(axis=0)
            bucket = int(np.searchsorted(reached, k))  # first boundary reaching k
            if bucket:
                base = cum[:, bucket - 1].copy()
            equal = hist[:, bucket]
        else:
            totals = shared.sum(axis=0)
            cumulative = np.cumsum(totals)
            bucket = int(np.searchsorted(cumulative, need))
            below = int(cumulative[bucket] - totals[bucket])
            need -= below
            base[0] += below
            equal = np.array([totals[bucket]])
        prefix |= bucket << shift
        pmask |= (nbins - 1) << shift
    return prefix, base, equal


def check_nan(src: KeySource, magnitude: bool, on_nan: Callable[[int], None]) -> None:
    """One histogram-free pass for the NaN test (used when no threshold is searched)."""
    histogram, _, _ = _get(src.unsigned)
    for i, a in enumerate(src.arrays):
        if a.size == 0:
            continue
        bits, mode = src.bits(i)
        if mode != FLOAT:
            continue
        hist = np.zeros((1, 1), np.int64)
        lowest, highest = histogram(
            bits, mode, magnitude, src.unsigned(0), src.unsigned(0), src.unsigned(0), src.unsigned(0), hist
        )
        if has_nan(src.unsigned, mode, lowest, highest):
            on_nan(i)


def keep_threshold(src: KeySource, i: int, magnitude: bool, threshold: int, first_equal: int | None):
    """Keep-mask of array ``i``: keys above ``threshold`` kept, below pruned, and of the
    keys equal to it the first ``first_equal`` pruned (``None``: as many as the
    caller decides after seeing the count).

    Returns ``(mask, equal_count, less_count, finish)``; call ``finish(j)`` to
    prune the first ``j`` equal keys when ``first_equal`` was ``None``.
    """
    _, keep_from, prune_first_equal = _get(src.unsigned)
    bits, mode = src.bits(i)
    out = np.empty(bits.size, np.bool_)
    t = src.unsigned(threshold)
    eq, lt = keep_from(bits, mode, magnitude, t, out, _chunks(bits.size))

    def finish(j: int) -> None:
        if j:
            prune_first_equal(bits, mode, magnitude, t, j, out)

    if first_equal is not None:
        finish(first_equal)
    return out, int(eq), int(lt), finish
