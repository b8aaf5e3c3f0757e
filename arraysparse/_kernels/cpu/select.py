"""Exact top-k selection in linear time: a parallel radix select on keys.

To prune the ``k`` smallest of ``N`` scores (ties: the lower flat index is
pruned first) without sorting:

1. histogram the top 11 bits of every key (one read, per-chunk histograms);
2. find the bucket ``B`` holding the ``k``-th smallest; every key below ``B``
   is pruned and every key above it kept, in one write pass that also gathers
   the indices in ``B``, in index order, into a candidate list (its size and
   each chunk's offset in it are known from step 1, so it is allocated once);
3. repeat on the candidates with the next 11 bits until they share one key,
   then prune the first ``k_left`` candidates: the lowest indices.

Steps 1-2 read the scores twice and write the mask once; the candidate
lists are usually tiny. Worst case (all scores equal) is still linear:
three levels for 32-bit keys, six for 64-bit.
"""

from __future__ import annotations

import numba
import numpy as np

from .keys import as_bits, make_key_functions

RADIX_BITS = 11
_NBINS = 1 << RADIX_BITS
_kernels: dict[type, tuple] = {}


def _build(unsigned: type) -> tuple:
    key, is_nan = make_key_functions(unsigned)
    digit_mask = unsigned(_NBINS - 1)

    @numba.njit(parallel=True, nogil=True)
    def histogram(bits, cand, direct, mode, use_abs, shift, nchunks):
        n = bits.size if direct else cand.size
        hist = np.zeros((nchunks, _NBINS), np.int64)
        nans = np.zeros(nchunks, np.int64)
        step = (n + nchunks - 1) // nchunks
        for c in numba.prange(nchunks):
            h = hist[c]
            bad = 0
            for t in range(c * step, min(n, (c + 1) * step)):
                b = bits[t] if direct else bits[cand[t]]
                bad += is_nan(b, mode)
                h[(key(b, mode, use_abs) >> shift) & digit_mask] += 1
            nans[c] = bad
        return hist, nans.sum()

    @numba.njit(parallel=True, nogil=True)
    def split(bits, cand, direct, mode, use_abs, shift, bucket, offsets, out, nxt):
        # keys below `bucket` are pruned, above kept; the bucket's indices go to
        # `nxt` in index order, each chunk from its precomputed offset.
        n = bits.size if direct else cand.size
        nchunks = offsets.size
        step = (n + nchunks - 1) // nchunks
        for c in numba.prange(nchunks):
            pos = offsets[c]
            for t in range(c * step, min(n, (c + 1) * step)):
                i = t if direct else cand[t]
                d = (key(bits[i], mode, use_abs) >> shift) & digit_mask
                out[i] = d > bucket
                if d == bucket:
                    nxt[pos] = i
                    pos += 1

    @numba.njit(parallel=True, nogil=True)
    def finish(cand, n_prune, out):
        # candidates share one key: the lowest indices are pruned
        for t in numba.prange(cand.size):
            out[cand[t]] = t >= n_prune

    return histogram, split, finish


def _get(unsigned: type) -> tuple:
    if unsigned not in _kernels:
        _kernels[unsigned] = _build(unsigned)
    return _kernels[unsigned]


def topk_keep(scores: np.ndarray, n_prune: int, magnitude: bool) -> tuple[np.ndarray, int]:
    """Keep-mask pruning exactly ``n_prune`` of the smallest scores.

    Returns ``(mask, nan_count)``; the mask is meaningless when ``nan_count``.
    """
    bits, mode = as_bits(np.ravel(scores))
    histogram, split, finish = _get(bits.dtype.type)
    unsigned = bits.dtype.type
    width = bits.dtype.itemsize * 8
    n = bits.size
    out = np.empty(n, dtype=np.bool_)
    nchunks = max(1, min(4 * numba.get_num_threads(), n // 32768))
    cand = np.empty(0, np.int64)
    direct = True
    k = n_prune
    level = 1
    while True:
        shift = max(0, width - RADIX_BITS * level)
        hist, nans = histogram(bits, cand, direct, mode, magnitude, unsigned(shift), nchunks)
        if nans:
            return out.reshape(np.shape(scores)), int(nans)
        if k == 0 or k == (n if direct else cand.size):
            if direct:
                out[:] = k == 0
            else:
                finish(cand, k, out)
            break
        totals = hist.sum(axis=0)
        cumulative = np.cumsum(totals)
        bucket = int(np.searchsorted(cumulative, k))  # first bucket reaching k
        k -= int(cumulative[bucket] - totals[bucket])
        per_chunk = hist[:, bucket]
        offsets = np.concatenate(([0], np.cumsum(per_chunk)[:-1]))
        nxt = np.empty(int(totals[bucket]), np.int64)
        split(bits, cand, direct, mode, magnitude, unsigned(shift), unsigned(bucket), offsets, out, nxt)
        cand, direct = nxt, False
        if shift == 0:
            finish(cand, k, out)
            break
        level += 1
        nchunks = max(1, min(4 * numba.get_num_threads(), cand.size // 32768))
    return out.reshape(np.shape(scores)), 0
