"""Exact top-k selection in linear time: a parallel radix select on keys, by counting.

To prune the ``k`` smallest of ``N`` scores (ties: the lower flat index is
pruned first) without sorting, and with scratch memory independent of ``N``
and of the ties:

1. histogram the top 11 bits of every key (one read, per-chunk histograms),
   find the bucket holding the ``k``-th smallest key, and repeat on the next
   11 bits counting only the keys with the prefix found so far, until every
   bit of the ``k``-th smallest key ``T`` is known (three passes for 32-bit
   keys, six for 64-bit, one for 8-bit). Nothing is gathered: the scratch is
   the per-chunk histograms, whatever the data;
2. one write pass: keys above ``T`` are kept, below pruned, and of the keys
   equal to ``T`` the first ``k - #below`` in index order are pruned. The
   last level's per-chunk counts of ``T`` give each chunk its quota of them,
   so the chunks run in parallel; a chunk pruning all or none of its ``T``
   keys needs no counter (``key > T`` or ``key >= T``).

Keys keep the input's width: 8- and 16-bit data is never widened, so the
mask (one byte per element) is the only allocation the size of the input.

Large inputs first try one pass instead of several (Floyd and Rivest's
idea): a sorted sample of 65536 keys brackets the k-th smallest between two
keys ``lo <= hi`` that hold it with overwhelming probability. One pass then
writes the mask of every key outside the bracket and counts the keys below
it, in blocks of 64 the compiler vectorises, each leaving a 64-bit word that
marks its keys inside the bracket; the set bits alone are then visited to
gather those keys (into per-chunk buffers sized from the sample, at most 7.5%
of the input), so the gather costs per candidate, not per key. The counting
select finishes on the gathered values. If the sample finds the bracket
crowded (many ties), the bracket missed or a buffer overflowed (adversarial
data), the counting select runs on the whole input instead: the result is
exact either way.
"""

from __future__ import annotations

import numba
import numpy as np

from ._jit import kernel
from .bitscan import gather_set_bits
from .keys import as_bits, as_key, has_nan, key_kind, key_limits, order_key

RADIX_BITS = 11
_NBINS = 1 << RADIX_BITS
_SAMPLE = 1 << 16
_SAMPLE_MIN_SIZE = 1 << 20  # below this the two radix passes are cheap anyway


# Loops run over slices of each chunk from index 0, so the compiler knows
# indices are non-negative and drops the negative-index wraparound checks.
# `kind` is the key kind (keys.key_kind), a compile-time constant.


@kernel(parallel=True)
def _histogram(bits, prefix, pmask, shift, nchunks, kind):
    # per-chunk histograms of one digit of the keys with (key & pmask) == prefix;
    # also the extreme keys (NaN test at the first level, where pmask is 0)
    lowest, highest = key_limits(bits)
    digit_mask = as_key(bits, _NBINS - 1)
    n = bits.size
    hist = np.zeros((nchunks, _NBINS), np.int64)
    kmin = np.full(nchunks, highest)
    kmax = np.full(nchunks, lowest)
    step = (n + nchunks - 1) // nchunks
    for c in numba.prange(nchunks):
        start = c * step
        src = bits[start : min(n, start + step)]
        h = hist[c]
        lo, hi = highest, lowest
        for t in range(src.size):
            k = order_key(src[t], kind)
            lo = min(lo, k)
            hi = max(hi, k)
            if (k & pmask) == prefix:
                h[(k >> shift) & digit_mask] += 1
        kmin[c] = lo
        kmax[c] = hi
    return hist, kmin.min(), kmax.max()


@kernel(parallel=True)
def _keep_threshold(bits, threshold, quota, equal, out, kind):
    # out = key > threshold, except that of the keys equal to it chunk c prunes
    # its first quota[c] (of equal[c]) and keeps the rest
    n = bits.size
    nchunks = quota.size
    step = (n + nchunks - 1) // nchunks
    for c in numba.prange(nchunks):
        start = c * step
        stop = min(n, start + step)
        src = bits[start:stop]
        dst = out[start:stop]
        q = quota[c]
        if q == equal[c]:  # every equal key pruned
            for t in range(stop - start):
                dst[t] = order_key(src[t], kind) > threshold
        elif q == 0:  # every equal key kept
            for t in range(stop - start):
                dst[t] = order_key(src[t], kind) >= threshold
        else:
            seen = 0
            for t in range(stop - start):
                k = order_key(src[t], kind)
                e = k == threshold
                dst[t] = (k > threshold) | (e & (seen >= q))
                seen += e


@kernel
def _sample(bits, size, kind):
    # evenly spread positions, jittered so periodic data cannot alias. No
    # division in the loop (it dominated): slot s starts at s * n / size in
    # 20-bit fixed point, and 31 random bits are scaled to the slot's span
    # by a multiply and a shift. Exact for n < 2**43.
    n = bits.size
    keys = np.empty(size, bits.dtype)
    state = np.uint64(0x9E3779B97F4A7C15)
    step = np.uint64((n << 20) // size)
    for s in range(size):
        first = np.int64((np.uint64(s) * step) >> np.uint64(20))
        nxt = np.int64((np.uint64(s + 1) * step) >> np.uint64(20))
        span = np.uint64(max(1, nxt - first))
        state = state * np.uint64(6364136223846793005) + np.uint64(1442695040888963407)
        jitter = np.int64(((state >> np.uint64(33)) * span) >> np.uint64(31))
        keys[s] = order_key(bits[first + jitter], kind)
    return keys


@kernel(inline="always")
def _bracket_chunk(src, dst, lo, hi, ri, rv, base, kind):
    # One chunk of the bracket pass. Blocks of 64 run branch-free (the
    # compiler vectorises them) and leave a 64-bit word with one bit per key
    # inside [lo, hi]; the set bits are then visited one by one, so the
    # gather costs per candidate, not per key. The buffers hold 64 slots
    # past the capacity, so a block that starts within it always fits;
    # past the capacity the gather stops (the caller then falls back to
    # the radix). No count of the keys inside rides in the vector loop:
    # that extra reduction cost more than a third of the pass.
    lowest, highest = key_limits(src)
    width = hi - lo
    cap = ri.size - 64
    pos = 0
    low = 0
    kl, kh = highest, lowest
    for b0 in range(0, src.size, 64):
        block = src[b0 : min(src.size, b0 + 64)]
        out = dst[b0 : min(src.size, b0 + 64)]
        word = np.uint64(0)
        for t in range(block.size):
            k = order_key(block[t], kind)
            out[t] = k > hi
            low += k < lo
            word |= np.uint64(as_key(src, k - lo) <= width) << np.uint64(t)
            kl = min(kl, k)
            kh = max(kh, k)
        if pos <= cap:
            pos = gather_set_bits(word, block, base + b0, ri, rv, pos)
    return pos, low, kl, kh


@kernel(parallel=True)
def _bracket(bits, lo, hi, slots, nchunks, out, idx, vals, counts, kind):
    # keep above hi, prune below lo, gather [lo, hi] per chunk into its
    # `slots` slots of idx and vals, in index order
    lowest, highest = key_limits(bits)
    n = bits.size
    step = (n + nchunks - 1) // nchunks
    below = np.zeros(nchunks, np.int64)
    kmin = np.full(nchunks, highest)
    kmax = np.full(nchunks, lowest)
    for c in numba.prange(nchunks):
        start = c * step
        stop = min(n, start + step)
        pos, low, kl, kh = _bracket_chunk(
            bits[start:stop], out[start:stop], lo, hi,
            idx[c * slots : (c + 1) * slots], vals[c * slots : (c + 1) * slots], start, kind,
        )
        counts[c] = pos
        below[c] = low
        kmin[c] = kl
        kmax[c] = kh
    return below.sum(), kmin.min(), kmax.max()


def topk_keep(scores: np.ndarray, n_prune: int, magnitude: bool) -> tuple[np.ndarray, int]:
    """Keep-mask pruning exactly ``n_prune`` of the smallest scores.

    Returns ``(mask, nan_count)``; the mask is meaningless when ``nan_count``.
    """
    flat = np.ravel(scores)
    bits, mode = as_bits(flat, widen=False)
    kind = key_kind(mode, magnitude)
    out = np.empty(bits.size, dtype=np.bool_)
    nan = None
    if bits.size >= _SAMPLE_MIN_SIZE and 0 < n_prune < bits.size:
        nan = _bracketed(kind, bits, mode, n_prune, out)
    if nan is None:
        nan = _radix(kind, bits, mode, n_prune, out, bits.dtype.itemsize * 8)
    nans = int(np.count_nonzero(np.isnan(flat))) if nan else 0
    return out.reshape(np.shape(scores)), nans


def _chunks(n: int) -> int:
    return max(1, min(4 * numba.get_num_threads(), n // 32768))


def _bracketed(kind, bits, mode, k, out) -> bool | None:
    """One pass around a sampled bracket, then the radix on what it gathered.

    Returns whether NaN was seen, or ``None`` when the bracket missed.
    """
    unsigned = bits.dtype.type
    n = bits.size
    keys = np.sort(_sample(bits, _SAMPLE, kind))
    p = k / n
    spread = 4.0 * (_SAMPLE * p * (1.0 - p)) ** 0.5 + 16
    lo_at = int(p * _SAMPLE - spread)
    hi_at = int(p * _SAMPLE + spread) + 1
    lo = keys[lo_at] if lo_at >= 0 else unsigned(0)
    hi = keys[hi_at] if hi_at < _SAMPLE else unsigned(np.iinfo(unsigned).max)
    inside = np.count_nonzero((keys >= lo) & (keys <= hi)) / _SAMPLE
    if inside > 0.05:
        return None  # many keys near the k-th (ties): counting needs no candidate buffers
    nchunks = _chunks(n)
    step = -(-n // nchunks)
    cap = min(step, int(step * inside * 1.5) + 4096)
    slots = cap + 64  # a block starting at the capacity still fits
    idx = np.empty(nchunks * slots, np.int64)
    vals = np.empty(nchunks * slots, bits.dtype)
    counts = np.empty(nchunks, np.int64)
    below, kmin, kmax = _bracket(bits, lo, hi, slots, nchunks, out, idx, vals, counts, kind)
    if has_nan(unsigned, mode, kmin, kmax):
        return True
    if counts.max() > cap or not below < k <= below + counts.sum():
        return None
    total = _close_gaps(idx, vals, counts, slots)
    top = int(lo ^ hi).bit_length()  # every key in [lo, hi] shares lo's bits from here up
    return _solve_candidates(kind, idx[:total], vals[:total], mode, k - int(below), out, top)


def _radix(kind, bits, mode, k, out, top) -> bool:
    """Counting radix select on ``bits`` whose keys agree on every bit from ``top`` up; writes
    ``out``, returns whether NaN was seen. Scratch: per-chunk histograms only."""
    unsigned = bits.dtype.type
    n = bits.size
    nchunks = _chunks(n)
    shift = max(0, top - RADIX_BITS)
    ones = (1 << (bits.dtype.itemsize * 8)) - 1
    hist, kmin, kmax = _histogram(bits, unsigned(0), unsigned(0), unsigned(shift), nchunks, kind)
    if has_nan(unsigned, mode, kmin, kmax):
        return True
    if k == 0 or k == n:
        out[:] = k == 0
        return False
    # every key shares the lowest key's bits from `top` up (none when `top` is the width)
    pmask = ones ^ ((1 << top) - 1)
    prefix = int(kmin) & pmask
    while True:
        totals = hist.sum(axis=0)
        cumulative = np.cumsum(totals)
        bucket = int(np.searchsorted(cumulative, k))  # first bucket reaching k
        k -= int(cumulative[bucket] - totals[bucket])
        prefix |= bucket << shift
        pmask |= (_NBINS - 1) << shift & ones
        if shift == 0:  # every bit of the threshold is known; k of its keys are pruned
            equal = hist[:, bucket].copy()
            before = np.concatenate(([0], np.cumsum(equal)[:-1]))
            quota = np.clip(k - before, 0, equal)
            _keep_threshold(bits, unsigned(prefix), quota, equal, out, kind)
            return False
        shift = max(0, shift - RADIX_BITS)
        hist = _histogram(bits, unsigned(prefix), unsigned(pmask), unsigned(shift), nchunks, kind)[0]


def _solve_candidates(kind, idx, vals, mode, k, out, top) -> bool:
    """Select among gathered candidates (``vals`` at ``idx``, in index order); scatter into ``out``."""
    sub = np.empty(vals.size, dtype=np.bool_)
    nan = _radix(kind, vals, mode, k, sub, top)
    _scatter(out, idx, sub)
    return nan


@kernel
def _close_gaps(idx, vals, counts, slots):
    """Move each chunk's ``counts[c]`` candidates (at ``c * slots``) down after the previous
    chunk's, in place (forward copies: the destination never passes the source); the total."""
    pos = 0
    for c in range(counts.size):
        src = c * slots
        for t in range(counts[c]):
            idx[pos + t] = idx[src + t]
            vals[pos + t] = vals[src + t]
        pos += counts[c]
    return pos


@kernel(parallel=True)
def _scatter(out, idx, values):
    """``out[idx] = values`` for distinct indices, in parallel."""
    for i in numba.prange(idx.size):
        out[idx[i]] = values[i]
