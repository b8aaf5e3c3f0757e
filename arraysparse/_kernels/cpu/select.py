"""Exact top-k selection in linear time: a parallel radix select on keys.

To prune the ``k`` smallest of ``N`` scores (ties: the lower flat index is
pruned first) without sorting:

1. histogram the top 11 bits of every key (one read, per-chunk histograms);
2. find the bucket ``B`` holding the ``k``-th smallest; every key below ``B``
   is pruned and every key above it kept, in one write pass that also gathers
   the indices in ``B`` and their values, in index order, into a compact
   candidate array (its size and each chunk's offset in it are known from
   step 1, so it is allocated once);
3. repeat on the candidate array (contiguous: no random reads) with the next
   11 bits until the candidates share one key, then prune the first
   ``k_left`` of them, the lowest indices, and scatter the candidates' mask
   back.

Steps 1-2 read the scores twice and write the mask once; the candidate
lists are usually tiny. Worst case (all scores equal) is still linear:
three levels for 32-bit keys, six for 64-bit.

Large inputs first try one pass instead of two (Floyd and Rivest's idea): a
sorted sample of 65536 keys brackets the k-th smallest between two keys
``lo <= hi`` that hold it with overwhelming probability. One pass then writes
the mask of every key outside the bracket and counts the keys below it, in
blocks of 64 the compiler vectorises, each leaving a 64-bit word that marks
its keys inside the bracket; the set bits alone are then visited to gather
those keys (into per-chunk buffers sized from the sample), so the gather
costs per candidate, not per key. The radix select finishes on the gathered
values. If the bracket missed or a buffer
overflowed (adversarial data), the plain radix select runs instead: the
result is exact either way.
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
def _histogram(bits, shift, nchunks, kind):
    # per-chunk histograms of one digit; also the extreme keys (NaN test)
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
            h[(k >> shift) & digit_mask] += 1
        kmin[c] = lo
        kmax[c] = hi
    return hist, kmin.min(), kmax.max()


@kernel(parallel=True)
def _split(bits, shift, bucket, offsets, out, idx, vals, kind):
    # keys below `bucket` are pruned, above kept; the bucket's indices and
    # values go to `idx`, `vals` in index order, each chunk from its offset
    digit_mask = as_key(bits, _NBINS - 1)
    n = bits.size
    nchunks = offsets.size
    step = (n + nchunks - 1) // nchunks
    for c in numba.prange(nchunks):
        start = c * step
        stop = min(n, start + step)
        src = bits[start:stop]
        dst = out[start:stop]
        pos = offsets[c]
        for t in range(stop - start):
            b = src[t]
            d = (order_key(b, kind) >> shift) & digit_mask
            dst[t] = d > bucket
            if d == bucket:
                idx[pos] = start + t
                vals[pos] = b
                pos += 1


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
    bits, mode = as_bits(flat)
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
    if inside > 0.25:
        return None  # a flat distribution around the k-th key: the radix does better
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
    """Radix select on ``bits`` whose keys agree on every bit from ``top`` up; writes ``out``,
    returns whether NaN was seen. The digit is the ``RADIX_BITS`` bits below ``top``."""
    unsigned = bits.dtype.type
    shift = max(0, top - RADIX_BITS)
    nchunks = _chunks(bits.size)
    hist, kmin, kmax = _histogram(bits, unsigned(shift), nchunks, kind)
    if has_nan(unsigned, mode, kmin, kmax):
        return True
    if k == 0 or k == bits.size:
        out[:] = k == 0
        return False
    totals = hist.sum(axis=0)
    cumulative = np.cumsum(totals)
    bucket = int(np.searchsorted(cumulative, k))  # first bucket reaching k
    k -= int(cumulative[bucket] - totals[bucket])
    offsets = np.concatenate(([0], np.cumsum(hist[:, bucket])[:-1]))
    idx = np.empty(int(totals[bucket]), np.int64)
    vals = np.empty(idx.size, bits.dtype)
    _split(bits, unsigned(shift), unsigned(bucket), offsets, out, idx, vals, kind)
    if shift == 0:  # the bucket's keys are all equal: the lowest indices go
        out[idx] = np.arange(idx.size) >= k
        return False
    return _solve_candidates(kind, idx, vals, mode, k, out, shift)


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
